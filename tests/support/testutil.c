/*
** testutil.c — temp directories, file helpers and byte searches for tests.
** Tests may call the OS directly: they check what veld left on disk.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

char *veld_test_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *veld_test_tmpdir(const char *tag)
{
	const char *base = getenv("VELD_TEST_TMP");
	char buf[4096];
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[6];
	char suffix[13];
	size_t i;
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0700);
	randombytes_buf(rnd, sizeof rnd);
	for (i = 0; i < sizeof rnd; i++) {
		suffix[2 * i] = hex[rnd[i] >> 4];
		suffix[2 * i + 1] = hex[rnd[i] & 15];
	}
	suffix[12] = '\0';
	snprintf(buf, sizeof buf, "%s/%s-%d-%s", base, tag, (int)getpid(), suffix);
	assert_int_equal(mkdir(buf, 0700), 0);
	return strdup(buf);
}

void veld_test_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		char *sub;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		sub = veld_test_path(path, e->d_name);
		veld_test_rmtree(sub);
		free(sub);
	}
	closedir(d);
	rmdir(path);
}

void veld_test_copytree(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *e;
	if (!d) {
		size_t len = 0;
		unsigned char *buf = veld_test_read_file(from, &len);
		assert_non_null(buf);
		assert_int_equal(veld_test_write_file(to, buf, len), 0);
		free(buf);
		return;
	}
	assert_int_equal(mkdir(to, 0700), 0);
	while ((e = readdir(d))) {
		char *sub_from, *sub_to;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		sub_from = veld_test_path(from, e->d_name);
		sub_to = veld_test_path(to, e->d_name);
		veld_test_copytree(sub_from, sub_to);
		free(sub_from);
		free(sub_to);
	}
	closedir(d);
}

unsigned char *veld_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0'; /* callers search it as text */
	*len = (size_t)n;
	return buf;
}

int veld_test_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	if (len && fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

int veld_test_grep_tree(const char *dir, const void *needle, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	if (!d) {
		size_t len;
		unsigned char *buf = veld_test_read_file(dir, &len);
		if (buf && len >= n && memmem(buf, len, needle, n))
			found = 1;
		free(buf);
		return found;
	}
	while ((e = readdir(d))) {
		char *sub;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		sub = veld_test_path(dir, e->d_name);
		found += veld_test_grep_tree(sub, needle, n);
		free(sub);
	}
	closedir(d);
	return found;
}

void veld_test_flip_byte(const char *path, long off)
{
	veld_test_flip_bit(path, off, 0);
}

void veld_test_flip_bit(const char *path, long off, int bit)
{
	FILE *f = fopen(path, "r+b");
	int c;
	assert_non_null(f);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	c = fgetc(f);
	assert_true(c != EOF);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	fputc(c ^ (1 << bit), f);
	fclose(f);
}

void veld_test_fast_options(veld_store_options *o)
{
	veld_store_options_init(o);
	o->pwhash_opslimit = 1;            /* crypto_pwhash_OPSLIMIT_MIN */
	o->pwhash_memlimit = 8192;         /* crypto_pwhash_MEMLIMIT_MIN */
	o->device_name = "test-device";
	o->device_role = "assistant";
}

double veld_test_time_scale(void)
{
	const char *e = getenv("VELD_TEST_TIME_SCALE");
	double scale = e && *e ? strtod(e, NULL) : 1.0;
	return scale >= 1.0 ? scale : 1.0;
}

/* ---- sync fixtures ------------------------------------------------------------ */

veld_store *veld_test_office(const char *dir, const char *hub)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_test_fast_options(&o);
	o.device_name = "office";
	if (veld_org_init(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), "Testorganisatie", hub, &o))
		fail_msg("org init: %s", veld_errmsg(s));
	return s;
}

json_t *veld_test_sync(veld_store *s, int want)
{
	char *sum = NULL;
	json_t *j;
	int rc = veld_sync(&sum, s, NULL);
	if (rc != want)
		fail_msg("sync returned %d, wanted %d: %s (%s)", rc, want, veld_errmsg(s), sum ? sum : "");
	j = sum ? json_loads(sum, 0, NULL) : json_object();
	veld_free(sum);
	return j;
}

/* A new device store in `dir`, enrolled by the office for `region`; its id
** into id (VELD_IDSIZE). */
static veld_store *device_enrolled(char *id, veld_store *office, const char *dir, const char *role,
                                   const char *region)
{
	veld_store_options o;
	veld_store *s = NULL;
	char *req = NULL;
	veld_test_fast_options(&o);
	o.device_role = role;
	o.device_name = role;
	if (veld_store_create(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		fail_msg("device create: %s", veld_errmsg(s));
	if (veld_store_device_json(&req, s))
		fail_msg("device json: %s", veld_errmsg(s));
	if (veld_enroll(id, office, req, region))
		fail_msg("enroll: %s", veld_errmsg(office));
	veld_free(req);
	return s;
}

veld_store *veld_test_device(char *id_out, veld_store *office, const char *dir, const char *role,
                             const char *region, const char *hub)
{
	char id[VELD_IDSIZE];
	veld_store *s = device_enrolled(id, office, dir, role, region);
	json_decref(veld_test_sync(office, VELD_OK));
	if (veld_join(s, hub, NULL))
		fail_msg("join: %s", veld_errmsg(s));
	if (id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	return s;
}

char *veld_test_export(veld_store *s)
{
	char *out = NULL;
	assert_int_equal(veld_export_json(&out, s), VELD_OK);
	return out;
}

void veld_test_net_up(veld_test_net *n, const char *tag, const char *a_role, const char *a_region,
                      const char *b_role, const char *b_region)
{
	char *d;
	memset(n, 0, sizeof *n);
	n->root = veld_test_tmpdir(tag);
	n->hub = veld_test_path(n->root, "hub.git");
	d = veld_test_path(n->root, "office");
	n->office = veld_test_office(d, n->hub);
	free(d);
	d = veld_test_path(n->root, "a");
	n->a = veld_test_device(n->a_id, n->office, d, a_role, a_region, n->hub);
	free(d);
	d = veld_test_path(n->root, "b");
	n->b = veld_test_device(n->b_id, n->office, d, b_role, b_region, n->hub);
	free(d);
}

void veld_test_stale_own_entry(veld_store *s, const char *id, const char *role)
{
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE devices SET role = '%s', region = '1000-9999' WHERE id = '%s'", role, id);
	assert_int_equal(sqlite3_exec(veld_store__db(s), sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_changes(veld_store__db(s)), 1);
}

void veld_test_refused_at_once(veld_store *s, int rc, const char *why, const char *export_before)
{
	char *after;
	assert_int_equal(rc, VELD_EDENIED);
	if (!strstr(veld_errmsg(s), why))
		fail_msg("refused with \"%s\", expected \"%s\"", veld_errmsg(s), why);
	after = veld_test_export(s);
	assert_string_equal(after, export_before);
	veld_free(after);
}

void veld_test_net_down(veld_test_net *n)
{
	veld_store_close(n->office);
	veld_store_close(n->a);
	veld_store_close(n->b);
	veld_test_rmtree(n->root);
	free(n->root);
	free(n->hub);
}

/* ---- hubs: a path, or the smart-HTTP hub of tools/hub ------------------------- */

#include <signal.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/wait.h>

#define HUB_MAX_USERS 64
#define HUB_MAX_LIVE  8

typedef struct hub_user {
	char id[VELD_IDSIZE];
	veld_sync_options opts;
	struct veld_test_hub *hub;
} hub_user;

struct veld_test_hub {
	int http;
	char *dir;  /* http: the tools/hub directory */
	char *url;  /* what stores are given: the path or the URL */
	char *repo; /* the bare repository on disk */
	char pass[33];
	char office[VELD_IDSIZE];
	long watchdog;
	pid_t owner; /* the process that started the server */
	hub_user users[HUB_MAX_USERS];
	int n_users;
};

static veld_test_hub *hub_live[HUB_MAX_LIVE];

static const char *hub_src(void)
{
	const char *s = getenv("VELD_SRC");
	if (s && *s)
		return s;
#ifdef VELD_TEST_SRC_DIR
	return VELD_TEST_SRC_DIR;
#else
	return ".";
#endif
}

int veld_test_sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	fflush(NULL);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *veld_test_sh_line(const char *cmd)
{
	char buf[4096] = "";
	FILE *p;
	fflush(NULL);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(buf, sizeof buf, p))
		buf[0] = '\0';
	while (fgetc(p) != EOF)
		;
	pclose(p);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

int veld_test_hub_http_available(void)
{
	return veld_test_sh("{ command -v lighttpd || test -x /usr/sbin/lighttpd; } >/dev/null 2>&1") == 0 &&
	       veld_test_sh("test -x '%s/tools/hub'", hub_src()) == 0;
}

static void hub_adduser(veld_test_hub *h, const char *user)
{
	int rc;
	/* The password through the environment, never on a command line. */
	setenv("VELD_HUB_PASSWORD", h->pass, 1);
	rc = veld_test_sh("'%s/tools/hub' adduser '%s' '%s'", hub_src(), h->dir, user);
	unsetenv("VELD_HUB_PASSWORD");
	if (rc)
		fail_msg("tools/hub adduser %s %s failed (%d)", h->dir, user, rc);
}

static void hub_stop(veld_test_hub *h)
{
	if (!h->http || !h->dir || h->owner != getpid())
		return;
	if (veld_test_sh("'%s/tools/hub' stop '%s' >/dev/null 2>&1", hub_src(), h->dir))
		print_message("tools/hub stop %s failed\n", h->dir);
	if (h->watchdog > 0) {
		kill((pid_t)h->watchdog, SIGTERM);
		h->watchdog = 0;
	}
	h->owner = 0;
}

veld_test_hub *veld_test_hub_new(const char *kind, const char *root)
{
	veld_test_hub *h;
	char cmd[8192];
	int i;
	if (strcmp(kind, "path") && strcmp(kind, "http"))
		fail_msg("hub kind %s: want path or http", kind);
	if (!strcmp(kind, "http") && !veld_test_hub_http_available()) {
		print_message("[  SKIPPED ] lighttpd is not installed (tools/setup installs it): the smart-HTTP hub "
		              "variant does not run here\n");
		skip();
	}
	h = calloc(1, sizeof *h);
	assert_non_null(h);
	if (!strcmp(kind, "path")) {
		h->url = veld_test_path(root, "hub.git");
		h->repo = strdup(h->url);
		return h;
	}
	h->http = 1;
	h->dir = veld_test_path(root, "hub");
	h->repo = veld_test_path(h->dir, "veld.git");
	{
		static const char hex[] = "0123456789abcdef";
		unsigned char rnd[16];
		randombytes_buf(rnd, sizeof rnd);
		for (i = 0; i < 16; i++) {
			h->pass[2 * i] = hex[rnd[i] >> 4];
			h->pass[2 * i + 1] = hex[rnd[i] & 15];
		}
		h->pass[32] = '\0';
	}
	/* The office user is a placeholder until the office exists. */
	if (veld_test_sh("'%s/tools/hub' init '%s' --office office >/dev/null", hub_src(), h->dir))
		fail_msg("tools/hub init %s failed", h->dir);
	snprintf(cmd, sizeof cmd, "'%s/tools/hub' start '%s'", hub_src(), h->dir);
	h->url = veld_test_sh_line(cmd);
	if (strncmp(h->url, "http://", 7)) {
		veld_test_sh("tail -n 20 '%s/logs/error.log' '%s/logs/start.log' >&2", h->dir, h->dir);
		fail_msg("tools/hub start %s: no URL (%s)", h->dir, h->url);
	}
	h->owner = getpid();
	/* If this process dies without its teardown (killed by a timeout), a
	** watchdog in a session of its own stops the server anyway. */
	snprintf(cmd, sizeof cmd,
	         "setsid sh -c 'while kill -0 %d 2>/dev/null; do sleep 1; done; exec \"$0\" stop \"$1\"' "
	         "'%s/tools/hub' '%s' </dev/null >/dev/null 2>&1 & echo $!",
	         (int)getpid(), hub_src(), h->dir);
	{
		char *w = veld_test_sh_line(cmd);
		h->watchdog = atol(w);
		free(w);
	}
	for (i = 0; i < HUB_MAX_LIVE; i++)
		if (!hub_live[i]) {
			hub_live[i] = h;
			break;
		}
	return h;
}

const char *veld_test_hub_kind(const veld_test_hub *h)
{
	return h->http ? "http" : "path";
}

const char *veld_test_hub_url(const veld_test_hub *h)
{
	return h->url;
}

const char *veld_test_hub_repo(const veld_test_hub *h)
{
	return h->repo;
}

static int hub_cred(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	hub_user *u = payload;
	(void)url;
	snprintf(user, ucap, "%s", u->id);
	snprintf(pass, pcap, "%s", u->hub->pass);
	return 0;
}

/* The device id of store `s`. */
static void hub_store_id(char *id, veld_store *s)
{
	char *dev = NULL;
	json_t *j;
	const char *v;
	if (veld_store_device_json(&dev, s))
		fail_msg("device json: %s", veld_errmsg(s));
	j = json_loads(dev, 0, NULL);
	veld_free(dev);
	v = json_string_value(json_object_get(j, "id"));
	if (!v || strlen(v) != VELD_IDSIZE - 1)
		fail_msg("device json without an id");
	memcpy(id, v, VELD_IDSIZE);
	json_decref(j);
}

const veld_sync_options *veld_test_hub_opts(veld_test_hub *h, veld_store *s)
{
	char id[VELD_IDSIZE];
	hub_user *u;
	int i;
	if (!h->http)
		return NULL;
	hub_store_id(id, s);
	for (i = 0; i < h->n_users; i++)
		if (!strcmp(h->users[i].id, id))
			return &h->users[i].opts;
	assert_true(h->n_users < HUB_MAX_USERS);
	u = &h->users[h->n_users++];
	memcpy(u->id, id, VELD_IDSIZE);
	u->hub = h;
	u->opts.version = VELD_SYNC_OPTIONS_VERSION;
	u->opts.credentials = hub_cred;
	u->opts.payload = u;
	return &u->opts;
}

json_t *veld_test_hub_sync(veld_test_hub *h, veld_store *s, int want)
{
	char *sum = NULL;
	json_t *j;
	int rc = veld_sync(&sum, s, veld_test_hub_opts(h, s));
	if (rc != want)
		fail_msg("sync (%s hub) returned %d, wanted %d: %s (%s)", veld_test_hub_kind(h), rc, want, veld_errmsg(s),
		         sum ? sum : "");
	j = sum ? json_loads(sum, 0, NULL) : json_object();
	veld_free(sum);
	return j;
}

veld_store *veld_test_hub_office(veld_test_hub *h, const char *dir)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_test_fast_options(&o);
	o.device_name = "office";
	if (veld_org_init(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), "Testorganisatie", h->url, &o))
		fail_msg("org init (%s hub): %s", veld_test_hub_kind(h), veld_errmsg(s));
	if (h->http) {
		/* The office's login is its device id, and it is the hub's office
		** user; its first sync publishes the registry. */
		hub_store_id(h->office, s);
		hub_adduser(h, h->office);
		if (veld_test_sh("git -C '%s' config veld.office '%s'", h->repo, h->office))
			fail_msg("git config veld.office on %s failed", h->repo);
		json_decref(veld_test_hub_sync(h, s, VELD_OK));
	}
	return s;
}

veld_store *veld_test_hub_device(veld_test_hub *h, char *id_out, veld_store *office, const char *dir,
                                 const char *role, const char *region)
{
	char id[VELD_IDSIZE];
	veld_store *s = device_enrolled(id, office, dir, role, region);
	if (h->http)
		hub_adduser(h, id);
	json_decref(veld_test_hub_sync(h, office, VELD_OK));
	if (veld_join(s, h->url, veld_test_hub_opts(h, s)))
		fail_msg("join (%s hub): %s", veld_test_hub_kind(h), veld_errmsg(s));
	if (id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	return s;
}

int veld_test_hub_fsck(const veld_test_hub *h)
{
	return veld_test_sh("git --git-dir='%s' fsck --strict --no-progress >/dev/null 2>&1", h->repo);
}

void veld_test_hub_free(veld_test_hub *h)
{
	int i;
	if (!h)
		return;
	hub_stop(h);
	for (i = 0; i < HUB_MAX_LIVE; i++)
		if (hub_live[i] == h)
			hub_live[i] = NULL;
	free(h->dir);
	free(h->url);
	free(h->repo);
	free(h);
}

int veld_test_hub_teardown(void **state)
{
	int i;
	(void)state;
	for (i = 0; i < HUB_MAX_LIVE; i++)
		if (hub_live[i]) {
			veld_test_hub *h = hub_live[i];
			/* A test that failed did not free its hub: stop the
			** server; the files stay on disk for a look. */
			veld_test_hub_free(h);
		}
	return 0;
}

uint64_t veld_test_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

unsigned veld_test_rng_below(uint64_t *state, unsigned n)
{
	return n ? (unsigned)(veld_test_rng_next(state) % n) : 0;
}

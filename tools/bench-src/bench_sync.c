/*
** bench_sync.c — what a sync costs, and whether that cost grows with the
** change (docs/design.md, invariant 9) or with the hub.  Not a test: it measures
** and prints; docs/benchmarks.md ("tools/bench sync") says how to read it.
**
** Two scenarios, through the public API (veld.h) on hubs that are bare
** repositories on a path (the embedded default):
**
**  1. Hub size.  For each size N (-s, default 100,10000): an office and two
**     assistants A and B of one region.  A creates N cases (a header and one
**     contactregistratie record each) with veld_import in one transaction
**     and syncs once; the office syncs once; B syncs once.  Then, -r times:
**     A edits K records (-k, default 20) of K random cases, A syncs (push),
**     the office syncs (fetch, verify, merge, push main), B syncs (fetch
**     and merge).  Each sync is timed, split into phases from the progress
**     callback (commit / fetch / verify+merge / push), and its bytes are
**     counted (below).
**  2. Office merge.  An office and D assistants (-m, default 50), each with
**     its own region and C cases of its own (-c, default 100).  Per round:
**     every device edits its C records and syncs; then the office's one
**     sync that merges all of them is timed, beside the git CLI fetching
**     the same refs (every refs/veld/devices/<id>) from the hub into a fresh bare
**     repository and into a mirror of the hub taken before the round (the
**     fair comparison: the office already has the previous state).
**
** Bytes on the wire.  On a path hub veld moves packs itself (sync/git/,
** the path hub): a push writes one pack into the hub's objects/pack, a
** fetch indexes one pack into the fetching repository's objects/pack.  Those packs are exactly what a smart
** transport would carry, without the protocol framing (pkt-lines, sideband,
** ref advertisement).  So the bytes of a push are the sizes of the packs
** that appear in the hub during that sync, and the bytes of a fetch the
** sizes of the packs that appear in the fetcher's repository during its
** sync (its own commits are written as loose objects, never as packs; a
** periodic repack would write a pack too: it is reported by the progress
** callback and such a run is flagged).  Loose objects appearing in the hub
** are counted as well, so a transport that wrote them would not go unseen.
** The reference for "the size of the changed records": each changed
** record's blob read from A's device ref after the edit, zlib-compressed at
** the default level (as git stores it), summed.
**
** Over HTTP (-t TOOLS/HUB, which tools/bench passes when lighttpd is
** installed): after the path rounds of every size, each hub is served by
** tools/hub, A and B join the URL and the round runs again; bytes are the
** web server's count from its access log (see http_round).
**
** Repetition: every measurement is taken -r times (default 3) and the
** table shows medians.  All hubs are set up first and their runs take
** turns (run r of every size, then run r + 1), so that a noisy machine
** weighs on every size alike; "x smallest" is the median of the per-run
** ratios.  Before each measured sync the bench flushes its own writes
** (sync(2)), and the phase table shows what each sync read from the disk
** (getrusage's inblock: page cache misses).  Commands run through
** posix_spawn (run_cmd), so no fork leaves the measured syncs copy-on-write
** faults to take.  Everything runs in one
** process on one disk; the stores use the minimum Argon2id cost (the key
** file is not what is measured).  libgit2 writes with fsync (the store
** switches it on), git CLI's defaults do not fsync objects: part of any
** time difference.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <git2.h>
#include <jansson.h>
#include <zlib.h>

#include "veld.h"

extern char **environ;

#define PASS        "bench-passphrase"
#define MAX_SIZES   8
#define MAX_RUNS    15
#define FORM        "contactregistratie"
#define RECORD_JSON "{\"datum\":\"2017-01-02\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}"
#define PATHCAP     4096

/* ---- small helpers ------------------------------------------------------- */

static void die(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2), noreturn))
#endif
	;
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench sync: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory (%zu bytes)", n);
	return q;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("out of memory");
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *st)
{
	uint64_t x = *st;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *st = x;
}

static void path_join(char *out, const char *a, const char *b)
{
	if ((size_t)snprintf(out, PATHCAP, "%s/%s", a, b) >= PATHCAP)
		die("path too long: %s/%s", a, b);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];
	if (n <= 0)
		return 0;
	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Run a command (argv, NULL-terminated) with stdout to /dev/null; returns
** its wall time.  Dies on failure.  posix_spawn, not fork: a fork of this
** process (hundreds of MB once a large hub is set up) marks all its pages
** copy-on-write, and the syncs measured next would pay a fault for every
** page they write. */
static double run_cmd(char *const argv[])
{
	double t0 = now_s();
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rc;
	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) != 0)
		die("posix_spawn_file_actions: out of memory");
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("spawn %s: %s", argv[0], strerror(rc));
	if (waitpid(pid, &st, 0) < 0)
		die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s %s %s failed (status %d)", argv[0], argv[1] ? argv[1] : "", argv[2] ? argv[2] : "", st);
	return now_s() - t0;
}

static void rmtree(const char *path)
{
	char *argv[] = {"rm", "-rf", (char *)path, NULL};
	run_cmd(argv);
}

/* ---- packs and loose objects of a repository ----------------------------- */

typedef struct packsnap {
	char (*names)[80];
	long long *sizes;
	size_t n;
	long long loose_n, loose_bytes; /* only when asked for */
} packsnap;

static void snap_free(packsnap *p)
{
	free(p->names);
	free(p->sizes);
	memset(p, 0, sizeof *p);
}

static void snap_take(packsnap *p, const char *gitdir, int with_loose)
{
	char dir[PATHCAP], f[PATHCAP];
	DIR *d;
	struct dirent *e;
	struct stat st;
	size_t cap = 0;
	memset(p, 0, sizeof *p);
	path_join(dir, gitdir, "objects/pack");
	if ((d = opendir(dir))) {
		while ((e = readdir(d))) {
			size_t len = strlen(e->d_name);
			if (len < 6 || len >= sizeof p->names[0] || strcmp(e->d_name + len - 5, ".pack"))
				continue;
			path_join(f, dir, e->d_name);
			if (stat(f, &st))
				continue;
			if (p->n == cap) {
				cap = cap ? 2 * cap : 16;
				p->names = xrealloc(p->names, cap * sizeof *p->names);
				p->sizes = xrealloc(p->sizes, cap * sizeof *p->sizes);
			}
			memcpy(p->names[p->n], e->d_name, len + 1);
			p->sizes[p->n++] = (long long)st.st_size;
		}
		closedir(d);
	}
	if (!with_loose)
		return;
	for (int i = 0; i < 256; i++) {
		char sub[8];
		snprintf(sub, sizeof sub, "%02x", i);
		path_join(f, gitdir, "objects");
		path_join(dir, f, sub);
		if (!(d = opendir(dir)))
			continue;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			path_join(f, dir, e->d_name);
			if (stat(f, &st) == 0) {
				p->loose_n++;
				p->loose_bytes += (long long)st.st_size;
			}
		}
		closedir(d);
	}
}

/* Bytes of the packs in `b` that were not in `a`. */
static long long snap_new_bytes(const packsnap *a, const packsnap *b, int *n_new)
{
	long long sum = 0;
	int n = 0;
	for (size_t i = 0; i < b->n; i++) {
		size_t j;
		for (j = 0; j < a->n; j++)
			if (!strcmp(a->names[j], b->names[i]))
				break;
		if (j == a->n) {
			sum += b->sizes[i];
			n++;
		}
	}
	if (n_new)
		*n_new = n;
	return sum;
}

/* ---- stores and timed syncs ----------------------------------------------- */

typedef struct node {
	veld_store *s;
	char dir[PATHCAP];
	char repo[PATHCAP]; /* the store's git repository */
	char id[VELD_IDSIZE];
} node;

static void fast_options(veld_store_options *o, const char *name, const char *role)
{
	veld_store_options_init(o);
	o->pwhash_opslimit = 1;    /* crypto_pwhash_OPSLIMIT_MIN */
	o->pwhash_memlimit = 8192; /* crypto_pwhash_MEMLIMIT_MIN */
	o->device_name = name;
	o->device_role = role;
}

static void node_paths(node *n, const char *dir)
{
	snprintf(n->dir, sizeof n->dir, "%s", dir);
	path_join(n->repo, dir, "repo");
}

/* Phases of one sync, from the first progress call of each stage. */
enum { PH_COMMIT, PH_FETCH, PH_MERGE, PH_PUSH, N_PH };
static const char *const phase_names[N_PH] = {"commit", "fetch", "verify+merge", "push"};

typedef struct sync_stat {
	double total;
	double ph[N_PH];
	int repacked;
	long long fetched_bytes; /* packs that appeared in the syncing store's repository */
	long long pushed_bytes;  /* packs that appeared in the hub */
	long long hub_loose;     /* loose objects that appeared in the hub */
	long long disk_read;     /* bytes this process read from the disk (page cache misses) */
	long merged;             /* records merged (the summary's "merged") */
	int rejected;            /* refs rejected (the summary's "rejected") */
} sync_stat;

/* The first reason a sync gave for rejecting a ref (shown in the report). */
static char first_reject[512];

/* Read the summary of a sync; VELD_EINTEGRITY (something fetched was
** rejected, everything else merged and pushed) is tolerated only when
** `tolerate` is set.  Dies otherwise. */
static void check_summary(long *merged, int *rejected, int rc, const char *sum, node *n, int tolerate)
{
	json_t *j = sum ? json_loads(sum, 0, NULL) : NULL, *rej;
	if (rc != VELD_OK && !(rc == VELD_EINTEGRITY && tolerate && j))
		die("sync of %s: %d %s (%s)", n->dir, rc, veld_errmsg(n->s), sum ? sum : "");
	*merged = j ? (long)json_integer_value(json_object_get(j, "merged")) : 0;
	rej = j ? json_object_get(j, "rejected") : NULL;
	*rejected = (int)json_array_size(rej);
	if (*rejected && !first_reject[0])
		snprintf(first_reject, sizeof first_reject, "%s",
		         json_string_value(json_object_get(json_array_get(rej, 0), "reason")));
	json_decref(j);
}

typedef struct progress_rec {
	double at[N_PH];
	int seen[N_PH];
	int repacked;
	const node *who; /* whose credentials an HTTP hub gets */
} progress_rec;

#define HUB_PASS "bench-hub-password"

/* An HTTP hub's user is the device id (docs/hub.md). */
static int on_credentials(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	const progress_rec *p = payload;
	(void)url;
	snprintf(user, ucap, "%s", p->who->id);
	snprintf(pass, pcap, "%s", HUB_PASS);
	return 0;
}

/* Sync options that give an HTTP hub n's credentials (and pr the progress). */
static void node_options(veld_sync_options *so, progress_rec *pr, const node *n)
{
	memset(so, 0, sizeof *so);
	memset(pr, 0, sizeof *pr);
	so->version = VELD_SYNC_OPTIONS_VERSION;
	so->credentials = on_credentials;
	so->payload = pr;
	pr->who = n;
}

static int on_progress(const char *stage, size_t done, size_t total, void *payload)
{
	progress_rec *p = payload;
	int ph = -1;
	(void)done;
	(void)total;
	if (!strcmp(stage, "commit"))
		ph = PH_COMMIT;
	else if (!strcmp(stage, "fetch"))
		ph = PH_FETCH;
	else if (!strcmp(stage, "verify"))
		ph = PH_MERGE;
	else if (!strcmp(stage, "push"))
		ph = PH_PUSH;
	else if (!strcmp(stage, "repack"))
		p->repacked = 1;
	if (ph >= 0 && !p->seen[ph]) {
		p->seen[ph] = 1;
		p->at[ph] = now_s();
	}
	return 0;
}

/* One sync of `n`, timed and with its packs counted.  Dies unless it
** returns VELD_OK. */
static void timed_sync(sync_stat *out, node *n, const char *hub, int tolerate)
{
	veld_sync_options so;
	progress_rec pr;
	packsnap own0, own1, hub0, hub1;
	struct rusage ru0, ru1;
	char *sum = NULL;
	double t0, t1;
	int rc;
	memset(out, 0, sizeof *out);
	node_options(&so, &pr, n);
	so.progress = on_progress;
	snap_take(&own0, n->repo, 0);
	snap_take(&hub0, hub, 1);
	/* what the bench itself wrote (a mirror, a fetch) goes to disk first,
	** not during the measured sync */
	sync();
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_s();
	rc = veld_sync(&sum, n->s, &so);
	t1 = now_s();
	getrusage(RUSAGE_SELF, &ru1);
	out->disk_read = 512LL * (ru1.ru_inblock - ru0.ru_inblock);
	check_summary(&out->merged, &out->rejected, rc, sum, n, tolerate);
	veld_free(sum);
	snap_take(&own1, n->repo, 0);
	snap_take(&hub1, hub, 1);
	out->total = t1 - t0;
	{
		double mark[N_PH + 1];
		int i;
		for (i = 0; i < N_PH; i++)
			mark[i] = pr.seen[i] ? pr.at[i] : -1;
		mark[PH_COMMIT] = t0;
		mark[N_PH] = t1;
		for (i = N_PH - 1; i >= 0; i--)
			if (mark[i] < 0)
				mark[i] = mark[i + 1];
		for (i = 0; i < N_PH; i++)
			out->ph[i] = mark[i + 1] - mark[i];
	}
	out->repacked = pr.repacked;
	out->fetched_bytes = snap_new_bytes(&own0, &own1, NULL);
	out->pushed_bytes = snap_new_bytes(&hub0, &hub1, NULL);
	out->hub_loose = hub1.loose_bytes - hub0.loose_bytes;
	snap_free(&own0);
	snap_free(&own1);
	snap_free(&hub0);
	snap_free(&hub1);
}

static int quiet_sync(node *n, int tolerate)
{
	veld_sync_options so;
	progress_rec pr;
	char *sum = NULL;
	long merged;
	int rejected, rc;
	node_options(&so, &pr, n);
	rc = veld_sync(&sum, n->s, &so);
	check_summary(&merged, &rejected, rc, sum, n, tolerate);
	veld_free(sum);
	return rejected;
}

static void make_office(node *office, const char *dir, const char *hub)
{
	veld_store_options o;
	char *dev = NULL;
	json_t *j;
	fast_options(&o, "office", "office");
	node_paths(office, dir);
	if (veld_org_init(&office->s, dir, PASS, strlen(PASS), "Benchorganisatie", hub, &o))
		die("org init: %s", veld_errmsg(office->s));
	if (veld_store_device_json(&dev, office->s) || !(j = json_loads(dev, 0, NULL)))
		die("office device json: %s", veld_errmsg(office->s));
	snprintf(office->id, sizeof office->id, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	veld_free(dev);
}

/* Create a device store and enrol it at the office (published at the
** office's next sync; join it with join_device afterwards). */
static void make_device(node *d, node *office, const char *dir, const char *name, const char *region)
{
	veld_store_options o;
	char *req = NULL;
	fast_options(&o, name, "assistant");
	node_paths(d, dir);
	if (veld_store_create(&d->s, dir, PASS, strlen(PASS), &o))
		die("device create: %s", veld_errmsg(d->s));
	if (veld_store_device_json(&req, d->s))
		die("device json: %s", veld_errmsg(d->s));
	if (veld_enroll(d->id, office->s, req, region))
		die("enroll: %s", veld_errmsg(office->s));
	veld_free(req);
}

static void join_device(node *d, const char *hub)
{
	veld_sync_options so;
	progress_rec pr;
	node_options(&so, &pr, d);
	if (veld_join(d->s, hub, &so))
		die("join: %s", veld_errmsg(d->s));
}

static void close_node(node *n)
{
	veld_store_close(n->s);
	n->s = NULL;
}

/* n cases, one contact record each, postcodes in [pc_lo, pc_lo + pc_n). */
static void import_cases(node *d, long n, int pc_lo, int pc_n, const char *tag)
{
	size_t cap = (size_t)n * 200 + 1, len = 0;
	char *buf = xmalloc(cap);
	long count = 0;
	for (long i = 0; i < n; i++) {
		int w = snprintf(buf + len, cap - len,
		                 "{\"case\":{\"ref\":\"%s-%ld\",\"name\":\"Client %s %ld\",\"postcode\":\"%d\"},"
		                 "\"form\":\"" FORM "\",\"fields\":" RECORD_JSON "}\n",
		                 tag, i, tag, i, pc_lo + (int)(i % pc_n));
		if (w < 0 || (size_t)w >= cap - len)
			die("import buffer too small");
		len += (size_t)w;
	}
	if (veld_import(&count, d->s, buf, len, NULL, NULL) || count != n)
		die("import of %ld cases: %s", n, veld_errmsg(d->s));
	free(buf);
}

/* The (case, contact record) pairs a store can read. */
typedef struct caserec {
	char case_id[VELD_IDSIZE];
	char rec_id[VELD_IDSIZE];
} caserec;

static caserec *list_records(size_t *n_out, node *d)
{
	char *txt = NULL;
	json_t *arr;
	caserec *v;
	size_t i, n;
	if (veld_case_list_json(&txt, d->s) || !(arr = json_loads(txt, 0, NULL)))
		die("case list: %s", veld_errmsg(d->s));
	veld_free(txt);
	n = json_array_size(arr);
	v = xmalloc(n * sizeof *v);
	memset(v, 0, n * sizeof *v);
	for (i = 0; i < n; i++)
		snprintf(v[i].case_id, VELD_IDSIZE, "%s",
		         json_string_value(json_object_get(json_array_get(arr, i), "id")));
	json_decref(arr);
	*n_out = n;
	return v;
}

/* Fill rec_id of one case (its first record). */
static void find_record(caserec *c, node *d)
{
	char *txt = NULL;
	json_t *j;
	const char *rid;
	if (veld_case_show_json(&txt, d->s, c->case_id) || !(j = json_loads(txt, 0, NULL)))
		die("case show: %s", veld_errmsg(d->s));
	veld_free(txt);
	rid = json_string_value(json_object_get(json_array_get(json_object_get(j, "records"), 0), "id"));
	if (!rid)
		die("case %s has no record", c->case_id);
	snprintf(c->rec_id, VELD_IDSIZE, "%s", rid);
	json_decref(j);
}

/* K distinct random cases of `all` (shuffled in place) into pick. */
static void pick_cases(caserec *pick, int k, caserec *all, size_t n_all, uint64_t *seed, node *d)
{
	for (int i = 0; i < k; i++) {
		size_t j = (size_t)(rnd(seed) % (n_all - (size_t)i)) + (size_t)i;
		caserec swap = all[i];
		all[i] = all[j];
		all[j] = swap;
		if (!all[i].rec_id[0])
			find_record(&all[i], d);
		pick[i] = all[i];
	}
}

static void edit_record(node *d, const caserec *c, int round, int k)
{
	char fields[256], id[VELD_IDSIZE];
	/* a new date every round: a real change of one field (a contact cannot
	** lie in the future: 8 years of dates from 2010 cover 96 rounds, then
	** they come round again, still each different from the last) */
	round %= 96;
	snprintf(fields, sizeof fields,
	         "{\"datum\":\"20%02d-%02d-%02d\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}",
	         10 + round / 12, 1 + round % 12, 1 + k % 28);
	if (veld_record_put(id, d->s, c->case_id, FORM, c->rec_id, fields))
		die("record put: %s", veld_errmsg(d->s));
}

/* Raw and zlib-compressed size of the blobs of `recs` on `ref` of `repo`. */
static void blob_sizes(long long *raw, long long *zsize, const char *repo, const char *ref, const caserec *recs,
                       size_t n)
{
	git_repository *r = NULL;
	git_reference *rf = NULL;
	git_commit *c = NULL;
	git_tree *t = NULL;
	*raw = *zsize = 0;
	if (git_repository_open_bare(&r, repo) < 0 || git_reference_lookup(&rf, r, ref) < 0 ||
	    git_commit_lookup(&c, r, git_reference_target(rf)) < 0 || git_commit_tree(&t, c) < 0)
		die("%s %s: %s", repo, ref, git_error_last() ? git_error_last()->message : "?");
	for (size_t i = 0; i < n; i++) {
		char path[128];
		git_tree_entry *e = NULL;
		git_blob *b = NULL;
		uLongf zl;
		Bytef *zb;
		size_t len;
		snprintf(path, sizeof path, "cases/%.2s/%c/%s/%s", recs[i].case_id, recs[i].case_id[2], recs[i].case_id,
		         recs[i].rec_id);
		if (git_tree_entry_bypath(&e, t, path) < 0 || git_blob_lookup(&b, r, git_tree_entry_id(e)) < 0)
			die("blob %s: %s", path, git_error_last() ? git_error_last()->message : "?");
		len = (size_t)git_blob_rawsize(b);
		zl = compressBound((uLong)len);
		zb = xmalloc(zl);
		if (compress2(zb, &zl, git_blob_rawcontent(b), (uLong)len, Z_DEFAULT_COMPRESSION) != Z_OK)
			die("zlib failed");
		*raw += (long long)len;
		*zsize += (long long)zl;
		free(zb);
		git_blob_free(b);
		git_tree_entry_free(e);
	}
	git_tree_free(t);
	git_commit_free(c);
	git_reference_free(rf);
	git_repository_free(r);
}

static void reopen_node(node *n)
{
	veld_store_options o;
	fast_options(&o, NULL, NULL);
	if (veld_store_open(&n->s, n->dir, PASS, strlen(PASS), &o))
		die("open %s: %s", n->dir, veld_errmsg(n->s));
}

/* Building a large hub writes hundreds of thousands of loose objects, each
** with fsync: hours on a real disk for 100,000 cases.  So the set-up runs
** in `tmp` (tmpfs) behind a symlink at `real`, the path every store and
** the hub were given; then the tree is copied to the real disk under the
** same path, and every store repository is packed the way a periodic
** repack leaves it.  The measured syncs run on the real disk. */
static void make_base(const char *real, const char *tmp)
{
	rmtree(real);
	if (tmp) {
		rmtree(tmp);
		if (mkdir(tmp, 0700) || symlink(tmp, real))
			die("mkdir %s / symlink %s: %s", tmp, real, strerror(errno));
	} else if (mkdir(real, 0700)) {
		die("mkdir %s: %s", real, strerror(errno));
	}
}

static void settle_base(const char *real, const char *tmp)
{
	char *cp[] = {"cp", "-a", (char *)tmp, (char *)real, NULL};
	if (!tmp)
		return;
	if (unlink(real))
		die("unlink %s: %s", real, strerror(errno));
	run_cmd(cp);
	rmtree(tmp);
	sync();
}

static void repack(const char *repo)
{
	char *argv[] = {"git", "-C", (char *)repo, "-c", "repack.writeBitmaps=false", "repack", "-a", "-d", "-q", NULL};
	run_cmd(argv);
}

/* ---- scenario 1: hub size ------------------------------------------------- */

typedef struct size_result {
	long cases;
	double build_import, build_sync_a, build_sync_o, build_sync_b, build_settle;
	long long hub_bytes;
	sync_stat a[MAX_RUNS], o[MAX_RUNS], b[MAX_RUNS];
	double round[MAX_RUNS];
	long long rec_raw[MAX_RUNS], rec_z[MAX_RUNS];
	long long git_bytes[MAX_RUNS]; /* git's thin pack for A's push */
	double git_time[MAX_RUNS];     /* git fetch of it into the previous state */
	int any_repack;
	/* the same round with A and B on the smart-HTTP hub (tools/hub) */
	int http;
	sync_stat ha[MAX_RUNS], ho[MAX_RUNS], hb[MAX_RUNS];
	long long h_rec_z[MAX_RUNS];
	long long h_push[MAX_RUNS];  /* A: the receive-pack request, as the server counted it */
	long long h_a_all[MAX_RUNS]; /* A: every request and reply of its sync */
	long long h_fetch[MAX_RUNS]; /* B: the upload-pack replies */
	long long h_b_all[MAX_RUNS]; /* B: every request and reply of its sync */
} size_result;

typedef struct bench_opts {
	const char *workdir;
	const char *hubtool; /* tools/hub: the HTTP round runs when set */
	const char *builddir; /* tmpfs for the set-up, or NULL */
	long sizes[MAX_SIZES];
	int n_sizes;
	int runs;
	int k;
	int devices, changes;
	int do_sizes, do_merge, keep, reuse;
} bench_opts;

static long long dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long long sum = 0;
	char f[PATHCAP];
	struct stat st;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		path_join(f, dir, e->d_name);
		if (lstat(f, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			sum += dir_bytes(f);
		else
			sum += (long long)st.st_size;
	}
	closedir(d);
	return sum;
}

/* git fetch of every ref of the hub into `clone`; the bytes of the pack it
** kept (transfer.unpackLimit=1 keeps every non-empty pack). */
static double git_fetch(long long *bytes, const char *clone, const char *hub, const char *refspec)
{
	packsnap a, b;
	double t;
	/* no automatic gc: it would run detached, into the next measurement */
	char *argv[] = {"git", "-C", (char *)clone, "-c", "transfer.unpackLimit=1", "-c", "gc.auto=0", "-c",
	                "maintenance.auto=false", "fetch", "-q", "--no-tags",
	                "--no-write-fetch-head", (char *)hub, (char *)refspec, NULL};
	snap_take(&a, clone, 0);
	t = run_cmd(argv);
	snap_take(&b, clone, 0);
	*bytes = snap_new_bytes(&a, &b, NULL);
	snap_free(&a);
	snap_free(&b);
	return t;
}

/* The refs under `prefix` of a repository, as "<oid>\n" lines. */
static char *ref_heads(const char *repo, const char *prefix, const char *neg)
{
	char cmd[PATHCAP * 2], line[256];
	size_t cap = 4096, len = 0;
	char *out = xmalloc(cap);
	FILE *f;
	snprintf(cmd, sizeof cmd, "git -C '%s' for-each-ref --format='%%(objectname)' '%s'", repo, prefix);
	if (!(f = popen(cmd, "r")))
		die("popen: %s", strerror(errno));
	out[0] = '\0';
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		if (len + n + 2 > cap)
			out = xrealloc(out, cap *= 2);
		len += (size_t)sprintf(out + len, "%s%s", neg, line);
	}
	if (pclose(f) != 0)
		die("%s failed", cmd);
	return out;
}

/* What git would send for the refs under `prefix` to a client that holds
** `prev` (a mirror of the hub's previous state): the size of the thin pack
** git pack-objects writes for "new heads, not old heads", which is what
** upload-pack sends (without the sideband framing).  The pack a git fetch
** keeps is no measure: index-pack --fix-thin appends the delta bases. */
static long long thin_pack_bytes(const char *hub, const char *prev, const char *prefix, const char *tmpdir)
{
	char revs[PATHCAP], cmd[PATHCAP * 3];
	char *a = ref_heads(hub, prefix, ""), *b = ref_heads(prev, prefix, "^");
	long long n = -1;
	FILE *f;
	path_join(revs, tmpdir, "revs.txt");
	if (!(f = fopen(revs, "w")) || fputs(a, f) < 0 || fputs(b, f) < 0 || fclose(f))
		die("write %s: %s", revs, strerror(errno));
	free(a);
	free(b);
	snprintf(cmd, sizeof cmd, "git -C '%s' pack-objects --revs --thin --stdout --delta-base-offset -q < '%s' | wc -c", hub,
	         revs);
	if (!(f = popen(cmd, "r")) || fscanf(f, "%lld", &n) != 1 || pclose(f) != 0)
		die("%s failed", cmd);
	unlink(revs);
	return n;
}

static void mirror(const char *hub, const char *dst)
{
	char *argv[] = {"git", "clone", "-q", "--mirror", (char *)hub, (char *)dst, NULL};
	rmtree(dst);
	run_cmd(argv);
}

/* ---- the smart-HTTP hub ---------------------------------------------------
** The hub of the size scenario is moved into a tools/hub directory (its
** objects and refs into the repository `hub init` made, with the update
** hook and the server's settings) and its old path becomes a link, so the
** office keeps syncing on the path while A and B join the URL.  The bytes
** on the wire are the web server's count: the access log's %I (request,
** headers included) and %O (reply) of every request (docs/hub.md). */

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Bytes in the access log after offset `from`: requests whose line holds
** `what` (NULL: every one), counting the request (%I) or the reply (%O). */
static long long log_bytes(const char *log, long from, const char *what, int reply)
{
	FILE *f = fopen(log, "r");
	char line[8192];
	long long sum = 0;
	if (!f || fseek(f, from, SEEK_SET))
		die("read %s", log);
	while (fgets(line, sizeof line, f)) {
		long long in = 0, out = 0;
		char *end = line + strlen(line), *sp;
		while (end > line && (end[-1] == '\n' || end[-1] == ' '))
			*--end = '\0';
		if ((what && !strstr(line, what)) || strstr(line, "/bench-mark-"))
			continue;
		if (!(sp = strrchr(line, ' ')))
			continue;
		out = atoll(sp + 1);
		*sp = '\0';
		if (!(sp = strrchr(line, ' ')))
			continue;
		in = atoll(sp + 1);
		sum += reply ? out : in;
	}
	fclose(f);
	return sum;
}

/* lighttpd writes its access log in batches, in the order of the requests:
** ask for a marker URL (refused: no login) and wait until its line is in
** the log after `from` (at most 10 s); every earlier line is then there. */
static void log_wait(const char *log, long from, const char *url)
{
	static int serial;
	char what[64], mark[PATHCAP + 64];
	CURL *c = curl_easy_init();
	snprintf(what, sizeof what, "/bench-mark-%d-%d ", (int)getpid(), ++serial);
	snprintf(mark, sizeof mark, "%s%.*s", url, (int)strlen(what) - 1, what);
	if (!c)
		die("curl");
	curl_easy_setopt(c, CURLOPT_URL, mark);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (curl_easy_perform(c) != CURLE_OK)
		die("GET %s failed", mark);
	curl_easy_cleanup(c);
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(log, "r");
		char line[8192];
		int found = 0;
		if (f && fseek(f, from, SEEK_SET) == 0)
			while (!found && fgets(line, sizeof line, f))
				found = strstr(line, what) != NULL;
		if (f)
			fclose(f);
		if (found)
			return;
		usleep(50000);
	}
	die("no \"%s\" in %s", what, log);
}

static void hub_tool(const bench_opts *o, const char *cmd, const char *dir, const char *arg)
{
	char *argv[] = {(char *)o->hubtool, (char *)cmd, (char *)dir, (char *)arg, NULL};
	run_cmd(argv);
}

/* Serve `hub` from `web` (a tools/hub directory); the URL into url. */
static void http_up(const bench_opts *o, const char *hub, const char *web, const char *office_id,
                    const node *const *users, int n_users, char *url, size_t cap)
{
	char repo[PATHCAP], cmd[PATHCAP * 12];
	FILE *f;
	char *argv_init[] = {(char *)o->hubtool, "init", (char *)web, "--office", (char *)office_id, NULL};
	rmtree(web);
	run_cmd(argv_init);
	path_join(repo, web, "veld.git");
	snprintf(cmd, sizeof cmd,
	         "set -e; rm -rf '%s/objects' '%s/refs'; mv '%s/objects' '%s/refs' '%s/'; "
	         "if [ -e '%s/packed-refs' ]; then mv '%s/packed-refs' '%s/'; fi; rm -rf '%s'; ln -s '%s' '%s'",
	         repo, repo, hub, hub, repo, hub, hub, repo, hub, repo, hub);
	if (system(cmd) != 0)
		die("move the hub into %s", web);
	setenv("VELD_HUB_PASSWORD", HUB_PASS, 1);
	for (int i = 0; i < n_users; i++)
		hub_tool(o, "adduser", web, users[i]->id);
	snprintf(cmd, sizeof cmd, "'%s' start '%s'", o->hubtool, web);
	if (!(f = popen(cmd, "r")) || !fgets(url, (int)cap, f) || pclose(f) != 0)
		die("%s failed", cmd);
	url[strcspn(url, "\n")] = '\0';
}

static void http_round(size_result *res, int r, const char *url, const char *log, node *office, node *a, node *b, const char *hub,
                       const char *ref_a, const caserec *pick, int k)
{
	long at;
	for (int i = 0; i < k; i++)
		edit_record(a, &pick[i], 100 + r, i);
	at = file_size(log);
	timed_sync(&res->ha[r], a, hub, 0);
	log_wait(log, at, url);
	res->h_push[r] = log_bytes(log, at, "git-receive-pack HTTP", 0);
	res->h_a_all[r] = log_bytes(log, at, NULL, 0) + log_bytes(log, at, NULL, 1);
	blob_sizes(&res->rec_raw[r], &res->h_rec_z[r], a->repo, ref_a, pick, (size_t)k);
	timed_sync(&res->ho[r], office, hub, 0);
	at = file_size(log);
	timed_sync(&res->hb[r], b, hub, 0);
	log_wait(log, at, url);
	res->h_fetch[r] = log_bytes(log, at, "POST /veld.git/git-upload-pack ", 1);
	res->h_b_all[r] = log_bytes(log, at, NULL, 0) + log_bytes(log, at, NULL, 1);
	fprintf(stderr, "bench sync: %ld cases over HTTP, run %d: A %.3f s (push request %lld B), B %.3f s (fetch %lld B)\n",
	        res->cases, r + 1, res->ha[r].total, res->h_push[r], res->hb[r].total, res->h_fetch[r]);
}

/* One hub size while it is measured: its stores stay open from the set-up
** to the end, so that the runs of every size can take turns (below). */
typedef struct size_bench {
	char base[PATHCAP], hub[PATHCAP], prev[PATHCAP], ref_a[160];
	node office, a, b;
	caserec *all, *pick;
	size_t n_all;
	uint64_t seed;
} size_bench;

/* Build the hub of `n_cases` cases (or open the one an earlier --keep run
** left) with its office and the assistants A and B. */
static void size_open(size_bench *sb, size_result *res, const bench_opts *o, long n_cases, uint64_t seed)
{
	char tmp[PATHCAP], p[PATHCAP];
	node *office = &sb->office, *a = &sb->a, *b = &sb->b;
	double t;
	memset(sb, 0, sizeof *sb);
	memset(res, 0, sizeof *res);
	sb->seed = seed;
	res->cases = n_cases;
	snprintf(p, sizeof p, "size-%ld", n_cases);
	path_join(sb->base, o->workdir, p);
	path_join(sb->hub, sb->base, "hub.git");
	path_join(sb->prev, sb->base, "prev.git");
	if (o->reuse) {
		/* a hub kept by an earlier run (--keep): no build, no HTTP round */
		const char *names[3] = {"office", "a", "b"};
		node *nodes[3] = {office, a, b};
		for (int i = 0; i < 3; i++) {
			char *dev = NULL;
			json_t *j;
			path_join(p, sb->base, names[i]);
			node_paths(nodes[i], p);
			reopen_node(nodes[i]);
			if (veld_store_device_json(&dev, nodes[i]->s) || !(j = json_loads(dev, 0, NULL)))
				die("device json: %s", veld_errmsg(nodes[i]->s));
			snprintf(nodes[i]->id, sizeof nodes[i]->id, "%s", json_string_value(json_object_get(j, "id")));
			json_decref(j);
			veld_free(dev);
		}
		join_device(a, sb->hub);
		join_device(b, sb->hub);
		quiet_sync(a, 0);
		quiet_sync(office, 0);
		quiet_sync(b, 0);
		snprintf(sb->ref_a, sizeof sb->ref_a, "refs/veld/devices/%s", a->id);
		res->hub_bytes = dir_bytes(sb->hub);
		goto ready;
	}
	if (o->builddir)
		path_join(tmp, o->builddir, p);
	make_base(sb->base, o->builddir ? tmp : NULL);
	path_join(p, sb->base, "office");
	make_office(office, p, sb->hub);
	path_join(p, sb->base, "a");
	make_device(a, office, p, "tablet-a", "1000-9999");
	path_join(p, sb->base, "b");
	make_device(b, office, p, "tablet-b", "1000-9999");
	quiet_sync(office, 0);
	join_device(a, sb->hub);
	join_device(b, sb->hub);
	snprintf(sb->ref_a, sizeof sb->ref_a, "refs/veld/devices/%s", a->id);

	fprintf(stderr, "bench sync: hub of %ld cases: building ...", n_cases);
	t = now_s();
	import_cases(a, n_cases, 1000, 9000, "c");
	res->build_import = now_s() - t;
	t = now_s();
	quiet_sync(a, 0);
	res->build_sync_a = now_s() - t;
	t = now_s();
	quiet_sync(office, 0);
	res->build_sync_o = now_s() - t;
	t = now_s();
	quiet_sync(b, 0);
	res->build_sync_b = now_s() - t;
	/* every store sees every other's first push once (each one a full
	** catch-up), so the measured runs start from a steady state */
	t = now_s();
	quiet_sync(a, 0);
	quiet_sync(office, 0);
	quiet_sync(b, 0);
	res->build_settle = now_s() - t;
	close_node(office);
	close_node(a);
	close_node(b);
	settle_base(sb->base, o->builddir ? tmp : NULL);
	repack(office->repo);
	repack(a->repo);
	repack(b->repo);
	reopen_node(office);
	reopen_node(a);
	reopen_node(b);
	res->hub_bytes = dir_bytes(sb->hub);
	fprintf(stderr, " import %.1f s, syncs A %.1f s, office %.1f s, B %.1f s, second round %.1f s; hub %.1f MB\n",
	        res->build_import, res->build_sync_a, res->build_sync_o, res->build_sync_b, res->build_settle,
	        (double)res->hub_bytes / 1e6);
ready:
	sb->all = list_records(&sb->n_all, a);
	if (sb->n_all < (size_t)o->k)
		die("only %zu cases for %d changes", sb->n_all, o->k);
	sb->pick = xmalloc((size_t)o->k * sizeof *sb->pick);
}

/* Run r on the path hub: A edits K records and syncs, the office and B
** sync after it. */
static void size_round(size_bench *sb, size_result *res, const bench_opts *o, int r)
{
	long long kept;
	pick_cases(sb->pick, o->k, sb->all, sb->n_all, &sb->seed, &sb->a);
	mirror(sb->hub, sb->prev);
	for (int i = 0; i < o->k; i++)
		edit_record(&sb->a, &sb->pick[i], r, i);
	timed_sync(&res->a[r], &sb->a, sb->hub, 0);
	blob_sizes(&res->rec_raw[r], &res->rec_z[r], sb->a.repo, sb->ref_a, sb->pick, (size_t)o->k);
	res->git_bytes[r] = thin_pack_bytes(sb->hub, sb->prev, "refs/veld/devices/", sb->base);
	res->git_time[r] = git_fetch(&kept, sb->prev, sb->hub, "+refs/veld/devices/*:refs/veld/devices/*");
	timed_sync(&res->o[r], &sb->office, sb->hub, 0);
	timed_sync(&res->b[r], &sb->b, sb->hub, 0);
	res->round[r] = res->a[r].total + res->o[r].total + res->b[r].total;
	res->any_repack |= res->a[r].repacked | res->o[r].repacked | res->b[r].repacked;
	fprintf(stderr, "bench sync: %ld cases, run %d: A %.3f s (%lld B out), office %.3f s, B %.3f s (%lld B in)\n",
	        res->cases, r + 1, res->a[r].total, res->a[r].pushed_bytes, res->o[r].total, res->b[r].total,
	        res->b[r].fetched_bytes);
}

/* The same rounds with A and B on the smart-HTTP hub (tools/hub). */
static void size_http(size_bench *sb, size_result *res, const bench_opts *o)
{
	char web[PATHCAP], url[PATHCAP], log[PATHCAP];
	const node *users[3] = {&sb->office, &sb->a, &sb->b};
	path_join(web, sb->base, "web");
	path_join(log, web, "logs/access.log");
	http_up(o, sb->hub, web, sb->office.id, users, 3, url, sizeof url);
	join_device(&sb->a, url);
	join_device(&sb->b, url);
	/* one untimed round: each store's first sync over HTTP */
	quiet_sync(&sb->a, 0);
	quiet_sync(&sb->office, 0);
	quiet_sync(&sb->b, 0);
	res->http = 1;
	for (int r = 0; r < o->runs; r++) {
		pick_cases(sb->pick, o->k, sb->all, sb->n_all, &sb->seed, &sb->a);
		http_round(res, r, url, log, &sb->office, &sb->a, &sb->b, sb->hub, sb->ref_a, sb->pick, o->k);
	}
	hub_tool(o, "stop", web, NULL);
}

static void size_close(size_bench *sb, const bench_opts *o)
{
	free(sb->pick);
	free(sb->all);
	close_node(&sb->office);
	close_node(&sb->a);
	close_node(&sb->b);
	if (!o->keep && !o->reuse)
		rmtree(sb->base);
}

/* Every size is set up first; then run r of each size in turn, so that
** the sizes are compared under the same conditions of a noisy machine
** (the ratio to the smallest hub is taken run by run). */
static void run_sizes(size_result *res, const bench_opts *o)
{
	size_bench *sb = xmalloc((size_t)o->n_sizes * sizeof *sb);
	for (int i = 0; i < o->n_sizes; i++)
		size_open(&sb[i], &res[i], o, o->sizes[i], 0x9e3779b97f4a7c15ULL + (uint64_t)i);
	for (int r = 0; r < o->runs; r++)
		for (int i = 0; i < o->n_sizes; i++)
			size_round(&sb[i], &res[i], o, r);
	if (o->hubtool && !o->reuse)
		for (int i = 0; i < o->n_sizes; i++)
			size_http(&sb[i], &res[i], o);
	for (int i = 0; i < o->n_sizes; i++)
		size_close(&sb[i], o);
	free(sb);
}

/* ---- scenario 2: the office merge ----------------------------------------- */

typedef struct merge_result {
	double office[MAX_RUNS];
	sync_stat ost[MAX_RUNS];
	double git_fresh[MAX_RUNS], git_prev[MAX_RUNS];
	long long git_fresh_bytes[MAX_RUNS], git_prev_bytes[MAX_RUNS];
	double dev_sync[MAX_RUNS]; /* median device sync of the round */
	long long dev_push[MAX_RUNS];
	int dev_rejects[MAX_RUNS]; /* refs the devices' syncs of the round rejected */
	int build_rejects;
	int any_repack;
} merge_result;

static void run_merge(merge_result *res, const bench_opts *o)
{
	char base[PATHCAP], tmp[PATHCAP], hub[PATHCAP], p[PATHCAP], prev[PATHCAP], fresh[PATHCAP];
	node office, *dev;
	caserec **recs;
	int D = o->devices, C = o->changes;
	long long kept;
	double t;
	memset(res, 0, sizeof *res);
	path_join(base, o->workdir, "merge");
	if (o->builddir)
		path_join(tmp, o->builddir, "merge");
	make_base(base, o->builddir ? tmp : NULL);
	path_join(hub, base, "hub.git");
	path_join(prev, base, "prev.git");
	path_join(fresh, base, "fresh.git");
	path_join(p, base, "office");
	make_office(&office, p, hub);
	dev = xmalloc((size_t)D * sizeof *dev);
	recs = xmalloc((size_t)D * sizeof *recs);
	fprintf(stderr, "bench sync: office merge: %d devices x %d cases: building ...", D, C);
	t = now_s();
	for (int d = 0; d < D; d++) {
		char name[32], region[32];
		snprintf(name, sizeof name, "dev%02d", d);
		snprintf(region, sizeof region, "%d-%d", 1000 + 10 * d, 1009 + 10 * d);
		path_join(p, base, name);
		make_device(&dev[d], &office, p, name, region);
	}
	quiet_sync(&office, 0);
	for (int d = 0; d < D; d++) {
		char tag[16];
		size_t n;
		join_device(&dev[d], hub);
		snprintf(tag, sizeof tag, "d%d", d);
		import_cases(&dev[d], C, 1000 + 10 * d, 10, tag);
		res->build_rejects += quiet_sync(&dev[d], 1);
		recs[d] = list_records(&n, &dev[d]);
		if (n != (size_t)C)
			die("device %d reads %zu cases, expected %d", d, n, C);
		for (size_t i = 0; i < n; i++)
			find_record(&recs[d][i], &dev[d]);
	}
	res->build_rejects += quiet_sync(&office, 1);
	close_node(&office);
	for (int d = 0; d < D; d++)
		close_node(&dev[d]);
	settle_base(base, o->builddir ? tmp : NULL);
	repack(office.repo);
	reopen_node(&office);
	for (int d = 0; d < D; d++) {
		repack(dev[d].repo);
		reopen_node(&dev[d]);
	}
	fprintf(stderr, " %.1f s\n", now_s() - t);

	for (int r = 0; r < o->runs; r++) {
		double ds[256];
		int nd = 0;
		char *init[] = {"git", "init", "-q", "--bare", fresh, NULL};
		mirror(hub, prev);
		for (int d = 0; d < D; d++) {
			sync_stat st;
			for (int i = 0; i < C; i++)
				edit_record(&dev[d], &recs[d][i], r, i);
			timed_sync(&st, &dev[d], hub, 1);
			if (nd < (int)(sizeof ds / sizeof ds[0]))
				ds[nd++] = st.total;
			res->dev_push[r] += st.pushed_bytes;
			res->dev_rejects[r] += st.rejected;
			res->any_repack |= st.repacked;
		}
		qsort(ds, (size_t)nd, sizeof ds[0], cmp_double);
		res->dev_sync[r] = ds[nd / 2];
		/* the git CLI: the same refs, from the same hub state */
		rmtree(fresh);
		run_cmd(init);
		res->git_fresh[r] = git_fetch(&res->git_fresh_bytes[r], fresh, hub, "+refs/veld/devices/*:refs/veld/devices/*");
		res->git_prev_bytes[r] = thin_pack_bytes(hub, prev, "refs/veld/devices/", base);
		res->git_prev[r] = git_fetch(&kept, prev, hub, "+refs/veld/devices/*:refs/veld/devices/*");
		timed_sync(&res->ost[r], &office, hub, 1);
		res->office[r] = res->ost[r].total;
		res->any_repack |= res->ost[r].repacked;
		fprintf(stderr,
		        "bench sync: merge run %d: office %.3f s (%ld records merged, %d refs rejected), git fetch fresh %.3f s,"
		        " into previous %.3f s\n",
		        r + 1, res->office[r], res->ost[r].merged, res->ost[r].rejected, res->git_fresh[r], res->git_prev[r]);
	}
	for (int d = 0; d < D; d++) {
		close_node(&dev[d]);
		free(recs[d]);
	}
	close_node(&office);
	free(dev);
	free(recs);
	if (!o->keep)
		rmtree(base);
}

/* ---- report --------------------------------------------------------------- */

/* Medians of one figure over the runs. */
enum { F_TOTAL, F_FETCHED, F_PUSHED, F_MERGED, F_REJECTED, F_DISK, F_PH0 };

static double stat_field(const sync_stat *s, int f)
{
	switch (f) {
	case F_TOTAL:
		return s->total;
	case F_FETCHED:
		return (double)s->fetched_bytes;
	case F_PUSHED:
		return (double)s->pushed_bytes;
	case F_MERGED:
		return (double)s->merged;
	case F_REJECTED:
		return (double)s->rejected;
	case F_DISK:
		return (double)s->disk_read;
	default:
		return s->ph[f - F_PH0];
	}
}

static double med_stat(const sync_stat *s, int n, int f)
{
	double v[MAX_RUNS];
	for (int i = 0; i < n; i++)
		v[i] = stat_field(&s[i], f);
	return median(v, n);
}

static double med_int(const int *x, int n)
{
	double v[MAX_RUNS];
	for (int i = 0; i < n; i++)
		v[i] = (double)x[i];
	return median(v, n);
}

static double med_ll(const long long *x, int n)
{
	double v[MAX_RUNS];
	for (int i = 0; i < n; i++)
		v[i] = (double)x[i];
	return median(v, n);
}

static void report_sizes(const size_result *res, int n, const bench_opts *o)
{
	const size_result *small = &res[0];
	printf("\n## Syncing %d changed records, by hub size (median of %d runs)\n\n", o->k, o->runs);
	printf("| cases | hub MB | A sync s | office sync s | B sync s | round s | x smallest | "
	       "records zlib B | A push B | x records | office fetch B | office push B | B fetch B | B push B | "
	       "git thin pack for A's push B |\n");
	printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int i = 0; i < n; i++) {
		const size_result *r = &res[i];
		double round = median(r->round, o->runs), z = med_ll(r->rec_z, o->runs), ratio[MAX_RUNS];
		double apush = med_stat(r->a, o->runs, F_PUSHED);
		for (int k = 0; k < o->runs; k++) /* run k of each size was taken in turn */
			ratio[k] = r->round[k] / small->round[k];
		printf("| %ld | %.1f | %.3f | %.3f | %.3f | %.3f | %.2f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
		       r->cases, (double)r->hub_bytes / 1e6, med_stat(r->a, o->runs, F_TOTAL), med_stat(r->o, o->runs, F_TOTAL),
		       med_stat(r->b, o->runs, F_TOTAL), round, median(ratio, o->runs), z, apush, apush / z,
		       med_stat(r->o, o->runs, F_FETCHED), med_stat(r->o, o->runs, F_PUSHED),
		       med_stat(r->b, o->runs, F_FETCHED), med_stat(r->b, o->runs, F_PUSHED), med_ll(r->git_bytes, o->runs));
	}
	if (res[0].http) {
		printf("\n## The same over the smart-HTTP hub: bytes on the wire (median of %d runs)\n\n", o->runs);
		printf("A and B on tools/hub (lighttpd + git http-backend), the office on the path; bytes as the web\n"
		       "server counts them (requests and replies, headers included).\n\n");
		printf("| cases | records zlib B | A push request B | x records | A sync all B | A sync s | office sync s | "
		       "B fetch reply B | B sync all B | B sync s |\n");
		printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
		for (int i = 0; i < n; i++) {
			const size_result *r = &res[i];
			double z = med_ll(r->h_rec_z, o->runs), push = med_ll(r->h_push, o->runs);
			if (!r->http)
				continue;
			printf("| %ld | %.0f | %.0f | %.2f | %.0f | %.3f | %.3f | %.0f | %.0f | %.3f |\n", r->cases, z, push,
			       push / z, med_ll(r->h_a_all, o->runs), med_stat(r->ha, o->runs, F_TOTAL),
			       med_stat(r->ho, o->runs, F_TOTAL), med_ll(r->h_fetch, o->runs), med_ll(r->h_b_all, o->runs),
			       med_stat(r->hb, o->runs, F_TOTAL));
		}
	}
	printf("\nPhases (median seconds: commit / fetch / verify+merge / push), and what the three syncs read\n"
	       "from the disk (median kB: page cache misses):\n\n");
	printf("| cases | A | office | B | read kB A / office / B |\n| ---: | --- | --- | --- | --- |\n");
	for (int i = 0; i < n; i++) {
		const size_result *r = &res[i];
		const sync_stat *s3[3] = {r->a, r->o, r->b};
		printf("| %ld |", r->cases);
		for (int w = 0; w < 3; w++) {
			for (int ph = 0; ph < N_PH; ph++)
				printf(" %.3f%s", med_stat(s3[w], o->runs, F_PH0 + ph), ph + 1 < N_PH ? " /" : " |");
		}
		printf(" %.0f / %.0f / %.0f |\n", med_stat(r->a, o->runs, F_DISK) / 1e3, med_stat(r->o, o->runs, F_DISK) / 1e3,
		       med_stat(r->b, o->runs, F_DISK) / 1e3);
	}
	printf("\nBuild of each hub (once, on the set-up directory): import, first syncs of A, office, B, then a\n"
	       "second round of the three (each store catches up with the others' first push):\n\n");
	for (int i = 0; i < n; i++)
		printf("- %ld cases: import %.1f s; sync A %.1f s, office %.1f s, B %.1f s; second round %.1f s\n",
		       res[i].cases, res[i].build_import, res[i].build_sync_a, res[i].build_sync_o, res[i].build_sync_b,
		       res[i].build_settle);
	for (int i = 0; i < n; i++) {
		long long loose = 0;
		for (int r = 0; r < o->runs; r++)
			loose += res[i].a[r].hub_loose + res[i].o[r].hub_loose + res[i].b[r].hub_loose;
		if (loose)
			printf("\nnote: %lld bytes of loose objects appeared in the %ld-case hub (not in the pack figures)\n", loose,
			       res[i].cases);
		if (res[i].any_repack)
			printf("\nnote: a periodic repack ran during a measured sync of the %ld-case hub\n", res[i].cases);
	}
	(void)phase_names;
}

static void report_merge(const merge_result *r, const bench_opts *o)
{
	double off = median(r->office, o->runs), gf = median(r->git_fresh, o->runs), gp = median(r->git_prev, o->runs);
	printf("\n## Office merge of %d devices x %d changed records (median of %d runs)\n\n", o->devices, o->changes,
	       o->runs);
	printf("| what | s | x git fetch into previous state | pack bytes |\n| --- | ---: | ---: | ---: |\n");
	printf("| veld office sync (commit, fetch, verify, merge, push) | %.3f | %.1f | %.0f fetched, %.0f pushed |\n", off,
	       off / gp, med_stat(r->ost, o->runs, F_FETCHED), med_stat(r->ost, o->runs, F_PUSHED));
	for (int ph = 0; ph < N_PH; ph++)
		printf("| - %s | %.3f | %.1f | |\n", phase_names[ph], med_stat(r->ost, o->runs, F_PH0 + ph),
		       med_stat(r->ost, o->runs, F_PH0 + ph) / gp);
	printf("| git fetch refs/veld/devices/* into a fresh bare repository | %.3f | %.1f | %.0f |\n", gf, gf / gp,
	       med_ll(r->git_fresh_bytes, o->runs));
	printf("| git fetch refs/veld/devices/* into a mirror of the previous state | %.3f | 1.0 | %.0f (thin pack) |\n", gp,
	       med_ll(r->git_prev_bytes, o->runs));
	printf("\nDevices: median sync of one device pushing %d changed records: %.3f s; all %d pushes: %.0f pack bytes\n",
	       o->changes, median(r->dev_sync, o->runs), o->devices, med_ll(r->dev_push, o->runs));
	printf("\nThe office's sync merged %ld records (median) and rejected %d device refs (median); the devices'\n"
	       "syncs of a round rejected %d refs (median), the set-up %d.\n",
	       (long)med_stat(r->ost, o->runs, F_MERGED), (int)med_stat(r->ost, o->runs, F_REJECTED),
	       (int)med_int(r->dev_rejects, o->runs), r->build_rejects);
	if (first_reject[0])
		printf("\nFirst rejection: %s\n", first_reject);
	if (r->any_repack)
		printf("\nnote: a periodic repack ran during a measured sync\n");
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: veld_bench_sync -d DIR [-b TMPFS-DIR] [-s 100,10000] [-r RUNS] [-k CHANGES] [-m DEVICES] [-c CHANGES]\n"
	                "                       [-t TOOLS/HUB] [--only sizes|merge] [--keep] [--reuse]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bench_opts o;
	size_result *res;
	merge_result *mres;
	memset(&o, 0, sizeof o);
	o.sizes[0] = 100;
	o.sizes[1] = 10000;
	o.n_sizes = 2;
	o.runs = 3;
	o.k = 20;
	o.devices = 50;
	o.changes = 100;
	o.do_sizes = o.do_merge = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--keep")) {
			o.keep = 1;
			continue;
		}
		if (!strcmp(a, "--reuse")) {
			o.reuse = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "-d")) {
			o.workdir = v;
		} else if (!strcmp(a, "-b")) {
			o.builddir = v;
		} else if (!strcmp(a, "-t")) {
			o.hubtool = v;
		} else if (!strcmp(a, "-s")) {
			char *s = xstrdup(v), *tok, *save = NULL;
			o.n_sizes = 0;
			for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (o.n_sizes == MAX_SIZES || atol(tok) < 1)
					usage();
				o.sizes[o.n_sizes++] = atol(tok);
			}
			free(s);
		} else if (!strcmp(a, "-r")) {
			o.runs = atoi(v);
		} else if (!strcmp(a, "-k")) {
			o.k = atoi(v);
		} else if (!strcmp(a, "-m")) {
			o.devices = atoi(v);
		} else if (!strcmp(a, "-c")) {
			o.changes = atoi(v);
		} else if (!strcmp(a, "--only")) {
			o.do_sizes = !strcmp(v, "sizes");
			o.do_merge = !strcmp(v, "merge");
			if (!o.do_sizes && !o.do_merge)
				usage();
		} else {
			usage();
		}
	}
	if (!o.workdir || o.runs < 1 || o.runs > MAX_RUNS || o.k < 1 || o.devices < 1 || o.devices > 256 ||
	    o.changes < 1 || o.n_sizes < 1)
		usage();
	mkdir(o.workdir, 0700);
	if (o.builddir)
		mkdir(o.builddir, 0700);
	git_libgit2_init();
	res = xmalloc((size_t)o.n_sizes * sizeof *res);
	mres = xmalloc(sizeof *mres);
	if (o.do_sizes)
		run_sizes(res, &o);
	if (o.do_merge)
		run_merge(mres, &o);
	if (o.do_sizes)
		report_sizes(res, o.n_sizes, &o);
	if (o.do_merge)
		report_merge(mres, &o);
	free(res);
	free(mres);
	git_libgit2_shutdown();
	return 0;
}

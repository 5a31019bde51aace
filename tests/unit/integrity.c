/*
** integrity.c — every damaged byte is found, and told right: exit 4's
** VELD_EINTEGRITY (VELD_EAUTH only where the key file's passphrase check
** is what fails), a message naming the file and the page or object, never
** a pass of verify, never a local fault blamed on the hub nor the hub's on
** this store (docs/operations.md, "Checking a store").
**
** One small organisation is built once: the office and devices a and b on
** a hub on a path; a writes a case and records, the office merges them, a
** takes main, and b stays a sync behind (so its next sync must read what
** is new on the hub).  Each trial then copies the store it needs and the
** hub with plain file copies to paths no trial used before, points the
** store at its hub copy, flips one random bit of one file, and asks:
**   db     veld.db: open or veld_store_verify is VELD_EINTEGRITY naming
**          "page N of veld.db" (or, for page 1's header in the clear, the
**          file and what is wrong with it); a record put on a's case
**          either works or is VELD_EINTEGRITY, never "no case";
**   key    veld.key: open fails, VELD_EINTEGRITY naming veld.key (or
**          VELD_EAUTH), never opens;
**   idx, pack   a pack index or a pack of a's repository:
**          veld_repository_verify is VELD_EINTEGRITY naming the file of
**          this store's repository; a's sync succeeds (it needed nothing
**          damaged) or fails VELD_EINTEGRITY saying this store's own
**          repository is damaged: never a rejected or rewound ref, never
**          the hub;
**   hub idx, hub pack   of the hub: the office's verify (it looks after a
**          hub on a path) is VELD_EINTEGRITY naming the hub's file; b's
**          sync succeeds or fails VELD_EINTEGRITY naming the hub, never its
**          own repository.
** TRIALS of each kind from one seeded PRNG; the seed is printed, and
** VELD_TEST_SEED=N replays it.
**
** libgit2 1.5 leaks a little memory when a history walk meets a damaged
** commit (git_graph_reachable_from_any and git_revwalk_next on their error
** paths): the syncs over damage run with the leak checker paused.
*/
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TRIALS 200 /* of each kind; VELD_TEST_TRIALS=N runs N */
#define REGION "3000-3499"
#define CONTACT(plaats) "{\"datum\":\"2017-01-02\",\"plaats\":\"" plaats "\",\"problematiek\":[\"financieel\"]}"

/* What a sync over damage allocates is left out of the leak report (see
** above); everything else, verify included, is checked.  An allocation
** the allocator cannot make returns NULL, as the C library's does: a
** damaged index can make libgit2 read an object's size from the wrong
** place and ask for hundreds of gigabytes, which ASan would otherwise
** answer by ending the process. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LIBGIT2_LEAKS_BEGIN() __lsan_disable()
#define LIBGIT2_LEAKS_END() __lsan_enable()
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}
#else
#define LIBGIT2_LEAKS_BEGIN() ((void)0)
#define LIBGIT2_LEAKS_END() ((void)0)
#endif

/* The organisation at rest (stores closed) and the trial copies. */
typedef struct world {
	veld_test_net n;
	char case_id[VELD_IDSIZE];
	char *hub_good, *a_good, *b_good, *office_good; /* pristine copies */
	char trial[4096], hub[4096];                     /* this trial's store and hub */
	int n_trial;
	uint64_t rng;
	int trials;
	int met;                                         /* syncs that met the damage */
} world;

static world W;

static void copy_tree(const char *from, const char *to)
{
	veld_test_rmtree(to);
	veld_test_copytree(from, to);
}

static char *keep(const char *dir, const char *name)
{
	char *good = veld_test_path(W.n.root, name);
	copy_tree(dir, good);
	return good;
}

static int setup(void **state)
{
	char *d;
	json_t *sum;
	const char *seed = getenv("VELD_TEST_SEED"), *trials = getenv("VELD_TEST_TRIALS");
	struct stat st;
	(void)state;
	memset(&W, 0, sizeof W);
	/* Every sync fsyncs: on a disk that is most of a trial. */
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		setenv("VELD_TEST_TMP", "/dev/shm", 1);
	W.trials = trials ? atoi(trials) : TRIALS;
	W.rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
	print_message("integrity: seed %" PRIu64 " (VELD_TEST_SEED=%" PRIu64 " replays it)\n", W.rng, W.rng);
	veld_test_net_up(&W.n, "integrity", "assistant", REGION, "assistant", REGION);
	assert_int_equal(veld_case_new(W.case_id, W.n.a, "{\"name\":\"Xavier Claes\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, W.n.a, W.case_id, "contactregistratie", NULL, CONTACT("huisbezoek")),
	                 VELD_OK);
	json_decref(veld_test_sync(W.n.a, VELD_OK));
	json_decref(veld_test_sync(W.n.office, VELD_OK));
	json_decref(veld_test_sync(W.n.b, VELD_OK));
	assert_int_equal(veld_record_put(NULL, W.n.a, W.case_id, "contactregistratie", NULL, CONTACT("zitdag")), VELD_OK);
	json_decref(veld_test_sync(W.n.a, VELD_OK));
	json_decref(veld_test_sync(W.n.office, VELD_OK));
	sum = veld_test_sync(W.n.a, VELD_OK);
	json_decref(sum);
	veld_store_close(W.n.office);
	veld_store_close(W.n.a);
	veld_store_close(W.n.b);
	W.n.office = W.n.a = W.n.b = NULL;
	W.hub_good = keep(W.n.hub, "hub.good");
	d = veld_test_path(W.n.root, "a");
	W.a_good = keep(d, "a.good");
	free(d);
	d = veld_test_path(W.n.root, "b");
	W.b_good = keep(d, "b.good");
	free(d);
	d = veld_test_path(W.n.root, "office");
	W.office_good = keep(d, "office.good");
	free(d);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	veld_test_net_down(&W.n);
	free(W.hub_good);
	free(W.a_good);
	free(W.b_good);
	free(W.office_good);
	return 0;
}

/* ---- one trial ------------------------------------------------------------------- */

typedef struct damage {
	char file[4096];
	long off;
	int bit;
} damage;

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* A random file of `dir` whose name ends in `ext`. */
static void pick_file(char *out, size_t cap, const char *dir, const char *ext)
{
	char names[64][256];
	size_t n = 0, el = strlen(ext);
	struct dirent *e;
	DIR *d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < 64) {
		size_t l = strlen(e->d_name);
		if (l > el && !strcmp(e->d_name + l - el, ext) && l < sizeof names[0])
			snprintf(names[n++], sizeof names[0], "%s", e->d_name);
	}
	closedir(d);
	assert_true(n > 0);
	qsort(names, n, sizeof names[0], by_name); /* not the order of the directory */
	assert_true((size_t)snprintf(out, cap, "%s/%s", dir, names[veld_test_rng_below(&W.rng, (unsigned)n)]) < cap);
}

/* Flip a random bit of `file`. */
static void flip(damage *d, const char *file)
{
	struct stat st;
	snprintf(d->file, sizeof d->file, "%s", file);
	assert_int_equal(stat(file, &st), 0);
	assert_true(st.st_size > 0);
	d->off = (long)veld_test_rng_below(&W.rng, (unsigned)st.st_size);
	d->bit = (int)veld_test_rng_below(&W.rng, 8);
	assert_int_equal(chmod(file, 0644), 0);
	veld_test_flip_bit(file, d->off, d->bit);
}

/* A random pack file (`ext` ".idx" or ".pack") of the repository `gitdir`. */
static void flip_pack_file(damage *d, const char *gitdir, const char *ext)
{
	char dir[4096], file[4096];
	assert_true((size_t)snprintf(dir, sizeof dir, "%s/objects/pack", gitdir) < sizeof dir);
	pick_file(file, sizeof file, dir, ext);
	flip(d, file);
}

static veld_store *open_trial(int *rc)
{
	veld_store *s = NULL;
	*rc = veld_store_open(&s, W.trial, VELD_TEST_PASS, strlen(VELD_TEST_PASS), NULL);
	return s;
}

#define FAIL(d, ...)                                                                                              \
	fail_msg("%s, byte %ld, bit %d: %s", (d)->file, (d)->off, (d)->bit, __VA_ARGS__)

/* A sync after damage: 0, or VELD_EINTEGRITY saying `side` and never
** `never` (nor a rewound ref). */
static void sync_tells(const damage *d, veld_store *s, const char *side, const char *never)
{
	char *sum = NULL;
	const char *msg;
	int rc;
	LIBGIT2_LEAKS_BEGIN();
	rc = veld_sync(&sum, s, NULL);
	LIBGIT2_LEAKS_END();
	msg = veld_errmsg(s);
	if (sum && strstr(sum, "rewound"))
		FAIL(d, sum);
	veld_free(sum);
	if (rc == VELD_OK)
		return;
	W.met++;
	if (rc != VELD_EINTEGRITY || !strstr(msg, side) || strstr(msg, never) || strstr(msg, "rewound"))
		FAIL(d, msg);
}

/* ---- the kinds --------------------------------------------------------------------- */

/* a's store copied for a trial, a bit of its file `name` flipped, opened
** (*rc: what the open said). */
static veld_store *open_damaged(damage *d, const char *name, int *rc)
{
	char *file = veld_test_path(W.trial, name);
	copy_tree(W.a_good, W.trial);
	flip(d, file);
	free(file);
	return open_trial(rc);
}

static void db_trial(const char *ext)
{
	damage d;
	int rc;
	veld_store *s = open_damaged(&d, "veld.db", &rc);
	(void)ext;
	if (rc == VELD_OK) {
		int put = veld_record_put(NULL, s, W.case_id, "contactregistratie", NULL, CONTACT("werkplaats"));
		if (put != VELD_OK && put != VELD_EINTEGRITY)
			FAIL(&d, veld_errmsg(s));
		rc = veld_store_verify(s);
	}
	/* The first 24 bytes are page 1's header in the clear (magic, page
	** size): the open names the file and what is wrong with it. */
	if (rc != VELD_EINTEGRITY || !strstr(veld_errmsg(s), "veld.db") ||
	    (d.off >= 24 && (!strstr(veld_errmsg(s), "page ") || !strstr(veld_errmsg(s), "fails authentication"))))
		FAIL(&d, veld_errmsg(s));
	veld_store_close(s);
}

static void key_trial(const char *ext)
{
	damage d;
	int rc;
	veld_store *s = open_damaged(&d, "veld.key", &rc);
	(void)ext;
	if (!(rc == VELD_EINTEGRITY && strstr(veld_errmsg(s), "veld.key")) && rc != VELD_EAUTH)
		FAIL(&d, veld_errmsg(s));
	veld_store_close(s);
}

/* The store at W.trial, opened, its hub this trial's copy. */
static veld_store *open_on_trial_hub(void)
{
	veld_store *s;
	int rc;
	s = open_trial(&rc);
	assert_int_equal(rc, VELD_OK);
	assert_int_equal(veld_store__meta_put(s, "hub", W.hub, (int)strlen(W.hub)), 0);
	return s;
}

/* veld_repository_verify of `s` names `side` and the damaged file. */
static void verify_names(const damage *d, veld_store *s, const char *side)
{
	if (veld_repository_verify(s) != VELD_EINTEGRITY || !strstr(veld_errmsg(s), side) ||
	    !strstr(veld_errmsg(s), strrchr(d->file, '/') + 1))
		FAIL(d, veld_errmsg(s));
}

/* A pack file of a's repository: "this store's" damage, never the hub's. */
static void device_trial(const char *ext)
{
	damage d;
	char *repo = veld_test_path(W.trial, "repo");
	veld_store *s;
	copy_tree(W.a_good, W.trial);
	flip_pack_file(&d, repo, ext);
	s = open_on_trial_hub();
	verify_names(&d, s, "this store's ");
	sync_tells(&d, s, "this store's own repository", "the hub ");
	veld_store_close(s);
	free(repo);
}

/* A pack file of the hub: the office's verify names the hub; b's sync
** blames the hub or needs nothing damaged. */
static void hub_trial(const char *ext)
{
	damage d;
	veld_store *s;
	flip_pack_file(&d, W.hub, ext);
	copy_tree(W.office_good, W.trial);
	s = open_on_trial_hub();
	verify_names(&d, s, "the hub ");
	veld_store_close(s);
	copy_tree(W.b_good, W.trial);
	s = open_on_trial_hub();
	sync_tells(&d, s, "the hub ", "this store's own repository");
	veld_store_close(s);
}

/* ---- the tests: one per kind ----------------------------------------------------- */

typedef struct kind {
	const char *name;
	void (*trial)(const char *ext);
	const char *ext;
} kind;

static const kind KINDS[] = {
	{"test_integrity__damaged_page_of_veld_db", db_trial, NULL},
	{"test_integrity__damaged_key_file", key_trial, NULL},
	{"test_integrity__damaged_pack_index_of_this_store", device_trial, ".idx"},
	{"test_integrity__damaged_pack_of_this_store", device_trial, ".pack"},
	{"test_integrity__damaged_pack_index_of_the_hub", hub_trial, ".idx"},
	{"test_integrity__damaged_pack_of_the_hub", hub_trial, ".pack"},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

/* W.trials of a kind; says how many syncs met the damage. */
static void run_kind(void **state)
{
	const kind *k = *state;
	int i;
	W.met = 0;
	for (i = 0; i < W.trials; i++) {
		/* Paths are never used twice: libgit2 keeps the packs it opened in
		** one table per process, by path. */
		W.n_trial++;
		snprintf(W.trial, sizeof W.trial, "%s/trial-%d", W.n.root, W.n_trial);
		snprintf(W.hub, sizeof W.hub, "%s/hub-%d", W.n.root, W.n_trial);
		copy_tree(W.hub_good, W.hub);
		k->trial(k->ext);
		veld_test_rmtree(W.trial);
		veld_test_rmtree(W.hub);
	}
	if (k->ext)
		print_message("integrity: %d trials, %d syncs met the damage\n", W.trials, W.met);
}

int main(void)
{
	struct CMUnitTest tests[N_KINDS];
	size_t i;
	for (i = 0; i < N_KINDS; i++) {
		struct CMUnitTest t = {KINDS[i].name, run_kind, NULL, NULL, (void *)&KINDS[i]};
		tests[i] = t;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}

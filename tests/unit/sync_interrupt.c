/*
** sync_interrupt.c — a device killed with SIGKILL while it writes and
** syncs, at random points, then simply run again (docs/design.md, invariant 7
** "Crash safe": a kill at any instant loses no committed change, leaves a
** store that opens, and an interrupted sync is run again).
**
** The network: an office, tablet A (the one that gets killed) and tablet B
** of the same region.  The whole run is made twice: through a hub on a path
** and through the smart-HTTP hub (tools/hub: git http-backend behind
** lighttpd, Basic auth, the veld update hook), with the same checks; over
** HTTP a kill can also land while the server still receives or applies a
** push that its client will never see answered.  A's store is opened only
** by the child processes; the parent keeps the office and B open.
**
** One iteration:
**   1. B writes a little (so A's sync has something to fetch and merge).
**   2. A child process opens A, makes new records and updates records of
**      earlier iterations (enough dirty records that commit, merge and push
**      take a while), then syncs.  Through a pipe it reports each put
**      before it starts ("try N") and after it returned VELD_OK ("ok N"),
**      the sync's stages from the progress callback (commit, fetch, verify,
**      merge, push) and the end of the sync ("done"); then it waits to be
**      killed.
**   3. The parent picks a target: a stage (puts, commit, fetch, verify,
**      merge, push, done) plus a random delay of 0..15 ms after the child
**      reported it, or a plain random delay after the fork.  It kills the
**      child with SIGKILL there.  Over the iterations kills land before,
**      during and after the push; the stage each kill followed is counted
**      and printed.
**   4. A opens again (it must: crash safety), veld_store_verify and
**      veld_repository_verify pass, its sync runs again to completion.
**   5. Everything converges: A, B, the office, A, B sync.
** Checks after every iteration:
**   - nothing lost: every put reported "ok" is in the store of A, and in
**     every store after convergence: new records by the id the put
**     returned, updates as the shown value of their field (only A writes
**     "doorverwezen_naar");
**   - nothing duplicated: every such record is there once, and the number
**     of A's records (home visits; B records office days) is the number of
**     puts that returned OK, plus at most one per kill: the put killed after
**     it committed and before it reported;
**   - the exports of the office, A and B are byte-identical, no conflict
**     appeared (nobody wrote the same field concurrently), every store
**     verifies, and `git fsck --strict` passes on the hub.
**
** VELD_INTERRUPT_ITERS sets the number of iterations (default 8: every
** target once, on each hub); VELD_INTERRUPT_SEED replays a run (the seed is
** printed; the kill delays follow it, the timing of the child does not);
** VELD_INTERRUPT_HUB=path or =http runs on that hub only.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define NEW_PER_ITER 24 /* new records A makes in one iteration */
#define UPD_PER_ITER 12 /* updates of older records */
#define MAX_ITERS    200

static const char *const targets[] = {"puts", "commit", "fetch", "verify", "merge", "push", "done"};
#define N_TARGETS (sizeof targets / sizeof *targets)

/* ---- the world ------------------------------------------------------------------- */

typedef struct known_record {
	char id[VELD_IDSIZE];
	char text[48]; /* the last value A's puts gave "doorverwezen_naar" (only A writes it) */
	char alt[48];  /* a later update killed before it reported: it may have committed */
} known_record;

typedef struct world {
	uint64_t seed, rng;
	char *root, *dir_a;
	veld_test_hub *hub;
	const veld_sync_options *a_opts; /* A's credentials (NULL on a path hub) */
	veld_store *office, *b;
	char case_id[VELD_IDSIZE];
	known_record *recs; /* records A's puts made (reported ok) */
	size_t n_recs;
	size_t maybe; /* puts killed between commit and report, at most one per iteration */
	size_t b_records;
	unsigned hits[N_TARGETS + 1]; /* the stage each kill followed; last: "before anything" */
} world;

static uint64_t w_rand(world *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void w_fail(const world *w, int iter, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void w_fail(const world *w, int iter, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fail_msg("sync_interrupt seed %" PRIu64 " iteration %d, %s hub (VELD_INTERRUPT_HUB=%s VELD_INTERRUPT_SEED=%" PRIu64
	         "; stores left in %s):\n%s",
	         w->seed, iter, veld_test_hub_kind(w->hub), veld_test_hub_kind(w->hub), w->seed, w->root, msg);
}

static veld_store *open_a(const world *w, int iter)
{
	veld_store_options o;
	veld_store *s = NULL;
	int rc;
	veld_test_fast_options(&o);
	rc = veld_store_open(&s, w->dir_a, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o);
	if (rc)
		w_fail(w, iter, "store A does not open after the kill: %d %s", rc, veld_errmsg(s));
	return s;
}

static void must_sync(const world *w, int iter, veld_store *s, const char *who)
{
	char *sum = NULL;
	int rc = veld_sync(&sum, s, veld_test_hub_opts(w->hub, s));
	if (rc)
		w_fail(w, iter, "sync of %s returned %d: %s (%s)", who, rc, veld_errmsg(s), sum ? sum : "");
	veld_free(sum);
}

/* ---- the child -------------------------------------------------------------------- */

typedef struct child_ctx {
	int fd;
	char last[16];
	const veld_sync_options *hub; /* A's credentials, or NULL */
} child_ctx;

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, buf, (size_t)n) < 0)
		_exit(3);
}

static int child_progress(const char *stage, size_t done, size_t total, void *payload)
{
	child_ctx *c = payload;
	(void)done;
	(void)total;
	if (strcmp(c->last, stage)) { /* each stage once, at its start */
		snprintf(c->last, sizeof c->last, "%s", stage);
		say(c->fd, "stage %s\n", stage);
	}
	return 0;
}

static int child_credentials(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	child_ctx *c = payload;
	if (!c->hub || !c->hub->credentials)
		return -1;
	return c->hub->credentials(user, ucap, pass, pcap, url, c->hub->payload);
}

/* Open A, write, sync, report; never returns. */
static void child_run(const world *w, int iter, int fd)
{
	veld_store_options o;
	veld_sync_options so;
	veld_store *s = NULL;
	child_ctx c;
	char *sum = NULL;
	size_t i;
	memset(&c, 0, sizeof c);
	c.fd = fd;
	c.hub = w->a_opts;
	veld_test_fast_options(&o);
	if (veld_store_open(&s, w->dir_a, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		_exit(2);
	say(fd, "stage puts\n");
	for (i = 0; i < NEW_PER_ITER + UPD_PER_ITER; i++) {
		char id[VELD_IDSIZE], fields[200];
		int rc;
		say(fd, "try %zu\n", i);
		if (i < NEW_PER_ITER) {
			snprintf(fields, sizeof fields,
			         "{\"datum\":\"2024-03-01\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"administratief\"],"
			         "\"wijze_van_hulpverlening\":[\"doorverwijzing\"],\"doorverwezen_naar\":\"i%d-n%zu\"}",
			         iter, i);
			rc = veld_record_put(id, s, w->case_id, "contactregistratie", NULL, fields);
		} else {
			/* update an older record (the parent picked none if there are none) */
			size_t k = (size_t)(iter * 7 + (int)i * 13) % (w->n_recs ? w->n_recs : 1);
			if (!w->n_recs)
				continue;
			snprintf(fields, sizeof fields, "{\"doorverwezen_naar\":\"i%d-u%zu\"}", iter, i);
			rc = veld_record_put(id, s, w->case_id, "contactregistratie", w->recs[k].id, fields);
		}
		if (rc)
			_exit(4);
		say(fd, "ok %zu %s\n", i, id);
	}
	memset(&so, 0, sizeof so);
	so.version = VELD_SYNC_OPTIONS_VERSION;
	so.progress = child_progress;
	so.credentials = child_credentials;
	so.payload = &c;
	if (veld_sync(&sum, s, &so))
		_exit(5);
	say(fd, "stage done\n");
	for (;;)
		pause(); /* killed here, after the sync, with the store still open */
}

/* ---- the parent --------------------------------------------------------------------- */

typedef struct report {
	char line[256];
	size_t len;
	int stage;           /* index in targets of the last stage reported, -1 none */
	int tried, ok;       /* last put tried and reported ok, -1 none */
	char ok_ids[NEW_PER_ITER + UPD_PER_ITER][VELD_IDSIZE];
	int ok_seen[NEW_PER_ITER + UPD_PER_ITER];
	int eof;
} report;

static void parse_line(report *r, const char *line)
{
	size_t i;
	int n;
	char id[VELD_IDSIZE + 1];
	if (!strncmp(line, "stage ", 6)) {
		for (i = 0; i < N_TARGETS; i++)
			if (!strcmp(line + 6, targets[i]))
				r->stage = (int)i;
	} else if (sscanf(line, "try %d", &n) == 1 && n >= 0 && n < NEW_PER_ITER + UPD_PER_ITER) {
		r->tried = n;
	} else if (sscanf(line, "ok %d %32s", &n, id) == 2 && n >= 0 && n < NEW_PER_ITER + UPD_PER_ITER) {
		memcpy(r->ok_ids[n], id, VELD_IDSIZE);
		r->ok_ids[n][VELD_IDSIZE - 1] = '\0';
		r->ok_seen[n] = 1;
		r->ok = n;
	}
}

/* Read what the child reported, waiting at most `ms` (0: just drain). */
static void pump(report *r, int fd, int ms)
{
	struct pollfd p;
	char buf[512];
	ssize_t n, i;
	p.fd = fd;
	p.events = POLLIN;
	while (!r->eof && poll(&p, 1, ms) > 0) {
		n = read(fd, buf, sizeof buf);
		if (n <= 0) {
			r->eof = 1;
			break;
		}
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n' || r->len == sizeof r->line - 1) {
				r->line[r->len] = '\0';
				parse_line(r, r->line);
				r->len = 0;
			} else {
				r->line[r->len++] = buf[i];
			}
		}
		ms = 0;
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run one child and kill it: at `target` (a stage, + 0..15 ms), or after a
** plain random delay when target is N_TARGETS. */
static void kill_child(world *w, int iter, unsigned target, report *r)
{
	int fds[2], status;
	pid_t pid;
	double t0, delay;
	memset(r, 0, sizeof *r);
	r->stage = r->tried = r->ok = -1;
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_run(w, iter, fds[1]);
		_exit(0);
	}
	close(fds[1]);
	t0 = now_ms();
	if (target < N_TARGETS) {
		/* Wait for the stage (or anything later), then a little more. */
		while (!r->eof && (r->stage < (int)target) && now_ms() - t0 < 60000)
			pump(r, fds[0], 50);
		delay = (double)(w_rand(w) % 15000) / 1000.0;
	} else {
		delay = (double)(w_rand(w) % 1500000) / 1000.0; /* 0..1.5 s after the fork */
	}
	t0 = now_ms();
	while (!r->eof && now_ms() - t0 < delay)
		pump(r, fds[0], (int)(delay - (now_ms() - t0)) + 1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	pump(r, fds[0], 0);
	close(fds[0]);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		w_fail(w, iter, "the child ended by itself (status %d): it could not open, write or sync", status);
	w->hits[r->stage >= 0 ? (unsigned)r->stage : N_TARGETS]++;
}

/* Take the child's reported puts into the world. */
static void absorb(world *w, int iter, const report *r)
{
	int i;
	size_t n_before = w->n_recs; /* what the child picked its updates from */
	for (i = 0; i < NEW_PER_ITER + UPD_PER_ITER; i++) {
		if (!r->ok_seen[i])
			continue;
		if (i < NEW_PER_ITER) {
			known_record *k = &w->recs[w->n_recs++];
			memcpy(k->id, r->ok_ids[i], VELD_IDSIZE);
			snprintf(k->text, sizeof k->text, "i%d-n%d", iter, i);
		} else {
			size_t j;
			for (j = 0; j < w->n_recs; j++)
				if (!strcmp(w->recs[j].id, r->ok_ids[i])) {
					snprintf(w->recs[j].text, sizeof w->recs[j].text, "i%d-u%d", iter, i);
					w->recs[j].alt[0] = '\0';
				}
		}
	}
	/* A put tried and not reported may or may not have committed: a new
	** record may be there or not, an update may show either value (the
	** child picks its target as below). */
	if (r->tried >= 0 && !r->ok_seen[r->tried] && r->tried < NEW_PER_ITER)
		w->maybe++;
	if (r->tried >= NEW_PER_ITER && !r->ok_seen[r->tried] && n_before > 0) {
		size_t k = (size_t)(iter * 7 + r->tried * 13) % n_before;
		snprintf(w->recs[k].alt, sizeof w->recs[k].alt, "i%d-u%d", iter, r->tried);
	}
}

/* Every put reported ok is in store `s`, once; counts add up. */
static void check_store(const world *w, int iter, veld_store *s, const char *who)
{
	char *out = NULL;
	json_t *c, *recs, *rv;
	size_t i, j, n_a = 0;
	if (veld_case_show_json(&out, s, w->case_id))
		w_fail(w, iter, "%s: case show: %s", who, veld_errmsg(s));
	c = json_loads(out, 0, NULL);
	veld_free(out);
	assert_non_null(c);
	recs = json_object_get(c, "records");
	for (i = 0; i < w->n_recs; i++) {
		const known_record *k = &w->recs[i];
		int found = 0;
		json_array_foreach(recs, j, rv)
		{
			const json_t *f = json_object_get(rv, "fields");
			const char *text = json_string_value(json_object_get(f, "doorverwezen_naar"));
			if (strcmp(json_string_value(json_object_get(rv, "id")) ?: "", k->id))
				continue;
			found++;
			if (strcmp(text ? text : "", k->text) && !(k->alt[0] && !strcmp(text ? text : "", k->alt)))
				w_fail(w, iter,
				       "%s: LOST UPDATE: record %s shows doorverwezen_naar=%s, the last put that returned OK wrote %s",
				       who, k->id, text ? text : "(none)", k->text);
		}
		if (found != 1)
			w_fail(w, iter, "%s: record %s is there %d times, want once%s", who, k->id, found,
			       found ? "" : ": LOST");
	}
	json_array_foreach(recs, j, rv)
	{
		/* A's records are the home visits (B records office days) */
		n_a += !strcmp(json_string_value(json_object_get(json_object_get(rv, "fields"), "plaats")) ?: "", "huisbezoek");
	}
	if (n_a < w->n_recs || n_a > w->n_recs + w->maybe)
		w_fail(w, iter, "%s: %zu records of A, want %zu (+ at most %zu killed before they reported)", who, n_a,
		       w->n_recs, w->maybe);
	if (json_array_size(json_object_get(c, "conflicts")) != 0)
		w_fail(w, iter, "%s: conflicts appeared where nobody wrote a field concurrently", who);
	json_decref(c);
	if (veld_store_verify(s))
		w_fail(w, iter, "%s: verify: %s", who, veld_errmsg(s));
	if (veld_repository_verify(s))
		w_fail(w, iter, "%s: repository verify: %s", who, veld_errmsg(s));
}

static char *export_of(const world *w, int iter, veld_store *s)
{
	char *out = NULL;
	if (veld_export_json(&out, s))
		w_fail(w, iter, "export: %s", veld_errmsg(s));
	return out;
}

static void hub_fsck(const world *w, int iter)
{
	int rc = veld_test_hub_fsck(w->hub);
	if (rc != 0)
		w_fail(w, iter, "git fsck --strict on the hub failed (%d): run `git --git-dir=%s fsck --strict`", rc,
		        veld_test_hub_repo(w->hub));
}

static void b_writes(world *w, int iter)
{
	char id[VELD_IDSIZE], fields[120];
	size_t i;
	/* B: a record of its own, and another field of two of A's records. */
	snprintf(fields, sizeof fields,
	         "{\"datum\":\"2024-04-01\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"],\"duur_min\":%d}",
	         iter % 1440);
	if (veld_record_put(id, w->b, w->case_id, "contactregistratie", NULL, fields))
		w_fail(w, iter, "B put: %s", veld_errmsg(w->b));
	w->b_records++;
	for (i = 0; i < 2 && w->n_recs; i++) {
		const known_record *k = &w->recs[w_rand(w) % w->n_recs];
		char *out = NULL;
		/* Only records B has already (A's records reach B after convergence). */
		if (veld_record_show_json(&out, w->b, k->id) == VELD_OK) {
			snprintf(fields, sizeof fields, "{\"initiatief\":\"%s\"}", i ? "derde" : "cliënt");
			if (veld_record_put(NULL, w->b, w->case_id, "contactregistratie", k->id, fields))
				w_fail(w, iter, "B update: %s", veld_errmsg(w->b));
		}
		veld_free(out);
	}
}

static void killed_syncs(const char *kind)
{
	world w;
	char *d;
	veld_store *a;
	int iters = getenv("VELD_INTERRUPT_ITERS") ? atoi(getenv("VELD_INTERRUPT_ITERS")) : 8, iter;
	unsigned i;
	double t0 = now_ms();
	const char *only = getenv("VELD_INTERRUPT_HUB");
	if (only && *only && strcmp(only, kind)) {
		print_message("VELD_INTERRUPT_HUB=%s: the %s hub run is left out\n", only, kind);
		skip();
	}
	memset(&w, 0, sizeof w);
	if (iters < 1 || iters > MAX_ITERS)
		iters = 8;
	if (getenv("VELD_INTERRUPT_SEED")) {
		w.seed = strtoull(getenv("VELD_INTERRUPT_SEED"), NULL, 0);
	} else {
		randombytes_buf(&w.seed, sizeof w.seed);
		w.seed %= 1000000;
	}
	w.rng = w.seed;
	print_message("sync_interrupt: seed %" PRIu64 ", %d iterations, %s hub (replay: VELD_INTERRUPT_HUB=%s "
	              "VELD_INTERRUPT_SEED=%" PRIu64 ")\n",
	              w.seed, iters, kind, kind, w.seed);
	w.recs = calloc((size_t)iters * NEW_PER_ITER + 1, sizeof *w.recs);
	assert_non_null(w.recs);
	w.root = veld_test_tmpdir("sync-interrupt");
	w.hub = veld_test_hub_new(kind, w.root);
	d = veld_test_path(w.root, "office");
	w.office = veld_test_hub_office(w.hub, d);
	free(d);
	w.dir_a = veld_test_path(w.root, "a");
	a = veld_test_hub_device(w.hub, NULL, w.office, w.dir_a, "assistant", "3000-3499");
	w.a_opts = veld_test_hub_opts(w.hub, a);
	d = veld_test_path(w.root, "b");
	w.b = veld_test_hub_device(w.hub, NULL, w.office, d, "assistant", "3000-3499");
	free(d);
	/* The case everyone works on, known everywhere before the first kill
	** (A first learns that B is enrolled: it seals the case's key to B). */
	must_sync(&w, 0, a, "A");
	assert_int_equal(veld_case_new(w.case_id, a, "{\"name\":\"Mira Peeters\",\"postcode\":\"3010\"}"), VELD_OK);
	must_sync(&w, 0, a, "A");
	must_sync(&w, 0, w.b, "B");
	must_sync(&w, 0, w.office, "office");
	must_sync(&w, 0, w.b, "B");
	veld_store_close(a); /* from now on only the children and the recovery open A */

	for (iter = 1; iter <= iters; iter++) {
		report r;
		/* Every target in turn, the plain random delay too. */
		unsigned target = (unsigned)((iter - 1) % (int)(N_TARGETS + 1));
		b_writes(&w, iter);
		must_sync(&w, iter, w.b, "B");
		kill_child(&w, iter, target, &r);
		absorb(&w, iter, &r);
		/* Crash safety: A opens, verifies, and its sync simply runs again. */
		a = open_a(&w, iter);
		if (veld_store_verify(a))
			w_fail(&w, iter, "A after the kill: verify: %s", veld_errmsg(a));
		if (veld_repository_verify(a))
			w_fail(&w, iter, "A after the kill: repository verify: %s", veld_errmsg(a));
		check_store(&w, iter, a, "A after the kill");
		must_sync(&w, iter, a, "A (run again)");
		/* Convergence with the office and B. */
		must_sync(&w, iter, w.b, "B");
		must_sync(&w, iter, w.office, "office");
		must_sync(&w, iter, a, "A");
		must_sync(&w, iter, w.b, "B");
		check_store(&w, iter, a, "A");
		check_store(&w, iter, w.b, "B");
		check_store(&w, iter, w.office, "office");
		{
			char *ea = export_of(&w, iter, a), *eb = export_of(&w, iter, w.b), *eo = export_of(&w, iter, w.office);
			if (strcmp(ea, eo) || strcmp(eb, eo))
				w_fail(&w, iter, "exports differ after convergence:\nA      %s\nB      %s\noffice %s", ea, eb, eo);
			veld_free(ea);
			veld_free(eb);
			veld_free(eo);
		}
		hub_fsck(&w, iter);
		veld_store_close(a);
	}
	print_message("sync_interrupt (%s hub): %d kills in %.1f s, %zu records of A, %zu of them maybe-committed; the kills followed:",
	              kind, iters, (now_ms() - t0) / 1000.0, w.n_recs, w.maybe);
	for (i = 0; i < N_TARGETS; i++)
		print_message(" %s %u", targets[i], w.hits[i]);
	print_message(" (nothing yet) %u\n", w.hits[N_TARGETS]);
	veld_store_close(w.office);
	veld_store_close(w.b);
	veld_test_hub_free(w.hub);
	veld_test_rmtree(w.root);
	free(w.root);
	free(w.dir_a);
	free(w.recs);
}

static void test_sync__killed_sync_runs_again_and_loses_nothing(void **state)
{
	(void)state;
	killed_syncs("path");
}

static void test_sync__killed_sync_runs_again_and_loses_nothing_over_http(void **state)
{
	(void)state;
	killed_syncs("http");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync__killed_sync_runs_again_and_loses_nothing),
		cmocka_unit_test_teardown(test_sync__killed_sync_runs_again_and_loses_nothing_over_http,
		                          veld_test_hub_teardown),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sync_interrupt", tests, NULL, NULL);
}

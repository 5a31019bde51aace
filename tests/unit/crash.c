/*
** crash.c — invariant 7, "crash safe": a kill or a power loss at any
** instant loses no committed change and leaves a store that opens.
**
** Every test runs the same workload (cases, new contact records, updates of
** earlier records, with values that can be checked) and keeps a model of
** what must be there: a change is committed once its call returned
** VELD_OK.  An update whose call failed or was cut off may or may not have
** landed, so a record's value must be its last committed one or one of the
** attempts after it.  After the crash the store is reopened with the plain
** OS table; it must open, pass veld_store_verify, and hold the model.
**
**   kill_9          a child process runs the workload and reports each
**                   committed change on a pipe only after the call returned;
**                   the parent SIGKILLs it after a random delay.
**   power_loss_*    the workload runs on the fault-injection table
**                   (platform/faulty.c) with power loss just before the
**                   N-th fsync or the N-th write, for N over the whole range
**                   the workload uses (closing the store included, so the
**                   checkpoint is covered) and a different seed each run
**                   (unsynced writes dropped, kept or torn).
**   io_error_*      the N-th write, fsync or read fails: the call reports an
**                   error, later calls carry on, the store opens afterwards.
**
** VELD_CRASH_ITER=n multiplies the number of runs (default 1: 25 kills,
** power loss before every fsync with three seeds and before every write,
** and 48 I/O error runs; about 40 s under ASan).  VELD_CRASH_SEED fixes the seeds;
** VELD_CRASH_PLAN="crash_at_fsync=3 seed=7" replays one failing run.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#define PASS "correct horse battery staple"
#define PASS_LEN (sizeof PASS - 1)
#define MAX_IDS 4096 /* per workload run */
#define MAX_TRIES 8

/* ---- the model ----------------------------------------------------------- */

typedef struct mrec {
	char id[VELD_IDSIZE];
	char case_id[VELD_IDSIZE];
	int is_case;
	long seq;                /* last committed seq (the case's number for a case) */
	long tries[MAX_TRIES];   /* updates attempted after it, not known to be committed */
	int n_tries;
} mrec;

typedef struct model {
	mrec *recs;
	int n, cap;
} model;

static void model_init(model *m)
{
	memset(m, 0, sizeof *m);
}

static void model_free(model *m)
{
	free(m->recs);
	memset(m, 0, sizeof *m);
}

static mrec *model_find(model *m, const char *id)
{
	int i;
	for (i = 0; i < m->n; i++)
		if (!strcmp(m->recs[i].id, id))
			return &m->recs[i];
	return NULL;
}

static mrec *model_add(model *m, const char *id)
{
	mrec *r;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->recs = realloc(m->recs, (size_t)m->cap * sizeof *m->recs);
		assert_non_null(m->recs);
	}
	r = &m->recs[m->n++];
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", id);
	return r;
}

/*
** Apply one report line:
**   C <case> <seq>          case created (committed)
**   R <record> <case> <seq> record created (committed)
**   T <record> <seq>        update attempted
**   U <record> <seq>        update committed
*/
static void model_apply(model *m, const char *line)
{
	char a[VELD_IDSIZE], b[VELD_IDSIZE];
	long seq;
	mrec *r;
	if (sscanf(line, "C %32s %ld", a, &seq) == 2) {
		r = model_add(m, a);
		r->is_case = 1;
		r->seq = seq;
	} else if (sscanf(line, "R %32s %32s %ld", a, b, &seq) == 3) {
		r = model_add(m, a);
		snprintf(r->case_id, sizeof r->case_id, "%s", b);
		r->seq = seq;
	} else if (sscanf(line, "T %32s %ld", a, &seq) == 2) {
		r = model_find(m, a);
		assert_non_null(r);
		if (r->n_tries < MAX_TRIES)
			r->tries[r->n_tries++] = seq;
	} else if (sscanf(line, "U %32s %ld", a, &seq) == 2) {
		r = model_find(m, a);
		assert_non_null(r);
		r->seq = seq;
		r->n_tries = 0;
	} else {
		print_message("bad report line: %s\n", line);
		fail();
	}
}

/* ---- the workload ---------------------------------------------------------- */

typedef void (*report_fn)(void *payload, const char *line);

typedef struct workload {
	char (*cases)[VELD_IDSIZE];
	char (*recs)[VELD_IDSIZE];
	char (*rec_case)[VELD_IDSIZE];
	int n_cases, n_recs;
	report_fn report;
	void *payload;
} workload;

static void wl_init(workload *w, report_fn report, void *payload)
{
	memset(w, 0, sizeof *w);
	w->cases = calloc(MAX_IDS, sizeof *w->cases);
	w->recs = calloc(MAX_IDS, sizeof *w->recs);
	w->rec_case = calloc(MAX_IDS, sizeof *w->rec_case);
	w->report = report;
	w->payload = payload;
}

static void wl_free(workload *w)
{
	free(w->cases);
	free(w->recs);
	free(w->rec_case);
}

static void note_for(char *buf, size_t n, long seq)
{
	snprintf(buf, n,
	         "contact %ld: home visit, talked about the rent arrears and the letter from "
	         "the housing corporation; next step is a budget plan (%ld)",
	         seq, seq * 7919 % 1000);
}

static void reportf(workload *w, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
static void reportf(workload *w, const char *fmt, ...)
{
	char line[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	w->report(w->payload, line);
}

/*
** Step `i` of the workload: a case every sixth step, an update of an earlier
** record every third, else a new contact record in the newest case.
** Returns the veld return code of the call it made.
*/
static int wl_step(workload *w, veld_store *s, long i)
{
	char id[VELD_IDSIZE], note[256], json[512];
	int rc;
	if (w->n_cases == 0 || i % 6 == 0) {
		snprintf(json, sizeof json, "{\"name\":\"Client %ld\",\"postcode\":\"9000\"}", i);
		rc = veld_case_new(id, s, json);
		if (rc == VELD_OK && w->n_cases < MAX_IDS) {
			memcpy(w->cases[w->n_cases++], id, VELD_IDSIZE);
			reportf(w, "C %s %ld\n", id, i);
		}
		return rc;
	}
	note_for(note, sizeof note, i);
	if (w->n_recs > 0 && i % 3 == 0) {
		long k = (i * 7) % w->n_recs;
		const char *rid = w->recs[k];
		/* The step number travels inside the note ("contact <step>: ..."). */
		snprintf(json, sizeof json, "{\"doorverwezen_naar\":\"%s\"}", note);
		reportf(w, "T %s %ld\n", rid, i);
		rc = veld_record_put(id, s, w->rec_case[k], "contactregistratie", rid, json);
		if (rc == VELD_OK)
			reportf(w, "U %s %ld\n", rid, i);
		return rc;
	}
	snprintf(json, sizeof json,
	         "{\"datum\":\"2017-05-04\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"],"
	         "\"wijze_van_hulpverlening\":[\"doorverwijzing\"],\"doorverwezen_naar\":\"%s\"}",
	         note);
	rc = veld_record_put(id, s, w->cases[w->n_cases - 1], "contactregistratie", NULL, json);
	if (rc == VELD_OK && w->n_recs < MAX_IDS) {
		memcpy(w->rec_case[w->n_recs], w->cases[w->n_cases - 1], VELD_IDSIZE);
		memcpy(w->recs[w->n_recs++], id, VELD_IDSIZE);
		reportf(w, "R %s %s %ld\n", id, w->cases[w->n_cases - 1], i);
	}
	return rc;
}

static void model_report(void *payload, const char *line)
{
	model_apply(payload, line);
}

/* ---- checking a reopened store ----------------------------------------- */

static int seq_allowed(const mrec *r, long seq)
{
	int k;
	if (seq == r->seq)
		return 1;
	for (k = 0; k < r->n_tries; k++)
		if (r->tries[k] == seq)
			return 1;
	return 0;
}

/* A failed check names the run and what is wrong, counts, and jumps to the
** function's cleanup, so one bad run does not hide the others. */
#define CHECK(cond, ...)                                                \
	do {                                                            \
		if (!(cond)) {                                          \
			print_message("FAIL %s: ", what);               \
			print_message(__VA_ARGS__);                     \
			print_message("\n");                            \
			bad = 1;                                        \
			goto done;                                      \
		}                                                       \
	} while (0)

/* Reopen `dir` with the default table and check it against the model.
** Returns 0 if everything committed is there, 1 otherwise. */
static int check_store(const char *dir, const model *m, const char *what)
{
	veld_store_options o;
	veld_store *s = NULL;
	char *out = NULL;
	json_t *j = NULL;
	int rc, i, bad = 0;
	veld_test_fast_options(&o);
	rc = veld_store_open(&s, dir, PASS, PASS_LEN, &o);
	CHECK(rc == VELD_OK, "reopen failed (%d): %s", rc, veld_errmsg(s));
	rc = veld_store_verify(s);
	CHECK(rc == VELD_OK, "verify failed (%d): %s", rc, veld_errmsg(s));
	for (i = 0; i < m->n; i++) {
		const mrec *r = &m->recs[i];
		json_t *f;
		json_error_t jerr;
		if (r->is_case) {
			char name[64];
			rc = veld_case_show_json(&out, s, r->id);
			CHECK(rc == VELD_OK, "committed case %s (step %ld) is missing (%d): %s",
			      r->id, r->seq, rc, veld_errmsg(s));
			j = json_loads(out, 0, &jerr);
			CHECK(j != NULL, "case %s: bad JSON", r->id);
			f = json_object_get(j, "header");
			snprintf(name, sizeof name, "Client %ld", r->seq);
			CHECK(json_is_string(json_object_get(f, "name")) &&
			          !strcmp(json_string_value(json_object_get(f, "name")), name),
			      "case %s: header name is not %s", r->id, name);
		} else {
			long seq;
			char note[256];
			rc = veld_record_show_json(&out, s, r->id);
			CHECK(rc == VELD_OK, "committed record %s (step %ld) is missing (%d): %s",
			      r->id, r->seq, rc, veld_errmsg(s));
			j = json_loads(out, 0, &jerr);
			CHECK(j != NULL, "record %s: bad JSON", r->id);
			CHECK(json_is_string(json_object_get(j, "case")) &&
			          !strcmp(json_string_value(json_object_get(j, "case")), r->case_id),
			      "record %s: not in case %s", r->id, r->case_id);
			f = json_object_get(j, "fields");
			CHECK(json_is_string(json_object_get(f, "doorverwezen_naar")) &&
			          sscanf(json_string_value(json_object_get(f, "doorverwezen_naar")), "contact %ld:", &seq) == 1,
			      "record %s: no note", r->id);
			CHECK(seq_allowed(r, seq), "record %s: seq %ld, committed %ld", r->id, seq, r->seq);
			note_for(note, sizeof note, seq);
			CHECK(!strcmp(json_string_value(json_object_get(f, "doorverwezen_naar")), note),
			      "record %s: note does not match seq %ld", r->id, seq);
			CHECK(json_is_string(json_object_get(f, "plaats")) &&
			          !strcmp(json_string_value(json_object_get(f, "plaats")), "huisbezoek"),
			      "record %s: place lost", r->id);
		}
		json_decref(j);
		j = NULL;
		veld_free(out);
		out = NULL;
	}
done:
	json_decref(j);
	veld_free(out);
	veld_store_close(s);
	return bad;
}

static char *make_store(const char *tag)
{
	veld_store_options o;
	veld_store *s = NULL;
	char *dir = veld_test_tmpdir(tag);
	char *sdir = veld_test_path(dir, "store");
	int rc;
	free(dir);
	veld_test_fast_options(&o);
	rc = veld_store_create(&s, sdir, PASS, PASS_LEN, &o);
	if (rc != VELD_OK)
		print_message("create: %s\n", veld_errmsg(s));
	assert_int_equal(rc, VELD_OK);
	veld_store_close(s);
	return sdir;
}

static void remove_store(char *sdir)
{
	char *parent = strdup(sdir);
	char *slash;
	assert_non_null(parent);
	slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	veld_test_rmtree(parent);
	free(parent);
	free(sdir);
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v && *v ? atol(v) : dflt;
}

static int replaying(void)
{
	const char *p = getenv("VELD_CRASH_PLAN");
	return p && *p;
}

static unsigned base_seed(void)
{
	long s = env_long("VELD_CRASH_SEED", 0);
	return s ? (unsigned)s : randombytes_random();
}

/* ---- kill -9 ------------------------------------------------------------- */

typedef struct pipe_report {
	int fd;
} pipe_report;

/* In the child: one line per write(2), short enough to be atomic. */
static void pipe_write(void *payload, const char *line)
{
	pipe_report *p = payload;
	size_t n = strlen(line);
	if (write(p->fd, line, n) != (ssize_t)n)
		_exit(3);
}

#define CHILD_MAX_STEPS 3000

static void child_run(const char *dir, int wfd)
{
	veld_store_options o;
	veld_store *s = NULL;
	pipe_report p = {wfd};
	workload w;
	long i;
	veld_test_fast_options(&o);
	if (veld_store_open(&s, dir, PASS, PASS_LEN, &o) != VELD_OK)
		_exit(2);
	wl_init(&w, pipe_write, &p);
	if (!w.cases || !w.recs || !w.rec_case)
		_exit(2);
	for (i = 0; i < CHILD_MAX_STEPS; i++)
		if (wl_step(&w, s, i) != VELD_OK)
			_exit(4);
	veld_store_close(s);
	_exit(0);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read from `fd` into the growing buffer until EOF or `deadline` (ms). */
static void slurp(int fd, char **buf, size_t *len, size_t *cap, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
		ssize_t r;
		if (deadline >= 0 && wait <= 0)
			return;
		if (poll(&pfd, 1, wait) <= 0)
			continue;
		if (*len + 4096 + 1 > *cap) {
			*cap = 2 * *cap + 8192;
			*buf = realloc(*buf, *cap);
			assert_non_null(*buf);
		}
		r = read(fd, *buf + *len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		*len += (size_t)r;
	}
}

/* Runs in a row on one store before a fresh one: the store must also
** survive being killed again and again, and the model stays small. */
#define KILLS_PER_STORE 5

static void test_crash__kill_9(void **state)
{
	long iters = 25 * env_long("VELD_CRASH_ITER", 1);
	unsigned seed = base_seed();
	long it, total_committed = 0, finished = 0, bad = 0;
	char *dir = NULL;
	model m;
	(void)state;
	if (replaying())
		skip();
	model_init(&m);
	srand(seed);
	print_message("kill_9: %ld runs, VELD_CRASH_SEED=%u\n", iters, seed);
	for (it = 0; it < iters; it++) {
		int pfd[2], status = 0;
		pid_t pid;
		char *buf = NULL, *line, *save = NULL;
		size_t len = 0, cap = 0;
		long delay = rand() % 400;
		char what[64];
		if (it % KILLS_PER_STORE == 0) {
			if (dir)
				remove_store(dir);
			model_free(&m);
			dir = make_store("crash-kill");
		}
		snprintf(what, sizeof what, "kill_9 run %ld (delay %ld ms)", it, delay);
		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child_run(dir, pfd[1]);
		}
		close(pfd[1]);
		slurp(pfd[0], &buf, &len, &cap, now_ms() + delay);
		kill(pid, SIGKILL);
		slurp(pfd[0], &buf, &len, &cap, -1);
		close(pfd[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
			print_message("FAIL %s: child failed on its own (status %d)\n", what, status);
			bad++;
		}
		finished += WIFEXITED(status);
		/* The runs on one store accumulate in the model: a child updates
		** only records it made, and nothing committed by any run may vanish. */
		if (buf) {
			buf[len] = '\0';
			for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
				if (line[0] == 'C' || line[0] == 'R' || line[0] == 'U')
					total_committed++;
				model_apply(&m, line);
			}
		}
		free(buf);
		bad += check_store(dir, &m, what);
	}
	print_message("kill_9: %ld committed changes checked, %ld children finished before the kill\n",
	              total_committed, finished);
	model_free(&m);
	if (dir)
		remove_store(dir);
	if (bad)
		fail_msg("%ld of %ld kill runs lost data or left a store that does not open", bad, iters);
}

/* ---- power loss and I/O errors through the platform table ---------------- */

#define PL_STEPS 18

typedef struct run_result {
	long fsyncs, writes, reads;
	int crashed;
	int failed_calls;
	int bad;          /* the reopened store failed a check */
} run_result;

/*
** One run on a fresh store: open it through a faulty table with `plan`, do
** PL_STEPS steps (stop at the power loss), close, power loss if it did not
** come yet, then reopen with the plain table and check the model.
*/
static void faulty_run(run_result *res, const veld_os_fault_plan *plan, const char *what)
{
	char *dir = make_store("crash-pl");
	veld_os_faulty *f = NULL;
	veld_store_options o;
	veld_store *s = NULL;
	workload w;
	model m;
	long i;
	int rc;

	memset(res, 0, sizeof *res);
	model_init(&m);
	wl_init(&w, model_report, &m);
	assert_non_null(w.cases);
	assert_non_null(w.recs);
	assert_non_null(w.rec_case);
	assert_int_equal(veld_os_faulty_new(&f, veld_os_default()), 0);
	veld_os_faulty_set(f, plan);
	veld_test_fast_options(&o);
	o.os = veld_os_faulty_table(f);
	rc = veld_store_open(&s, dir, PASS, PASS_LEN, &o);
	if (rc == VELD_OK) {
		for (i = 0; i < PL_STEPS && !veld_os_faulty_crashed(f); i++) {
			rc = wl_step(&w, s, i);
			if (rc != VELD_OK) {
				res->failed_calls++;
				/* the call failed with a code and a message */
				if (veld_errcode(s) != rc || veld_errmsg(s)[0] == '\0') {
					print_message("FAIL %s: step %ld failed (%d) without a message\n", what, i, rc);
					res->bad = 1;
				}
			}
		}
	} else {
		res->failed_calls++;
	}
	veld_store_close(s);
	res->fsyncs = veld_os_faulty_count(f, 's');
	res->writes = veld_os_faulty_count(f, 'w');
	res->reads = veld_os_faulty_count(f, 'r');
	res->crashed = veld_os_faulty_crashed(f);
	veld_os_faulty_crash(f); /* power loss after the close, if none came yet */
	veld_os_faulty_free(f);
	res->bad |= check_store(dir, &m, what);
	wl_free(&w);
	model_free(&m);
	remove_store(dir);
}

static void plan_init(veld_os_fault_plan *p, unsigned seed)
{
	memset(p, 0, sizeof *p);
	p->version = 1;
	p->seed = seed;
}

/* How much I/O the workload does with no fault at all. */
static void calibrate(run_result *res)
{
	veld_os_fault_plan plan;
	plan_init(&plan, 1);
	faulty_run(res, &plan, "calibration");
	assert_int_equal(res->bad, 0);
	assert_int_equal(res->failed_calls, 0);
	assert_false(res->crashed);
	assert_true(res->fsyncs > 0 && res->writes > 0);
}

/* `count` points spread over 1..range (every point if range is small). */
static long spread(long k, long count, long range)
{
	if (range <= count)
		return k + 1;
	return 1 + k * (range - 1) / (count - 1);
}

static void test_crash__power_loss_at_every_fsync(void **state)
{
	run_result cal, res;
	unsigned seed = base_seed();
	long mult = env_long("VELD_CRASH_ITER", 1), n, k, crashed = 0, bad = 0, runs = 0;
	(void)state;
	if (replaying())
		skip();
	calibrate(&cal);
	print_message("power loss at fsync: workload does %ld fsyncs, %ld writes; seed %u\n",
	              cal.fsyncs, cal.writes, seed);
	for (k = 0; k < 3 * mult; k++) { /* three seeds for every fsync */
		for (n = 1; n <= cal.fsyncs + 1; n++) {
			veld_os_fault_plan plan;
			char what[96];
			plan_init(&plan, seed + (unsigned)(n * 131 + k));
			plan.crash_at_fsync = n;
			snprintf(what, sizeof what, "crash_at_fsync=%ld seed=%u", n, plan.seed);
			faulty_run(&res, &plan, what);
			crashed += res.crashed;
			bad += res.bad;
			runs++;
		}
	}
	print_message("power loss at fsync: %ld runs, %ld crashed before the workload ended\n", runs, crashed);
	if (bad)
		fail_msg("%ld of %ld power-loss runs lost data or left a store that does not open", bad, runs);
	assert_true(crashed >= 3 * cal.fsyncs * mult);
}

static void test_crash__power_loss_at_writes(void **state)
{
	run_result cal, res;
	unsigned seed = base_seed() ^ 0x5bd1e995u;
	long mult = env_long("VELD_CRASH_ITER", 1), count, n, k, crashed = 0, bad = 0, runs = 0;
	(void)state;
	if (replaying())
		skip();
	calibrate(&cal);
	count = 256 * mult; /* every write, if the workload does fewer */
	print_message("power loss at write: %ld of %ld writes; seed %u\n", count < cal.writes ? count : cal.writes,
	              cal.writes, seed);
	for (k = 0; k < count && k < cal.writes; k++) {
		veld_os_fault_plan plan;
		char what[96];
		n = spread(k, count, cal.writes);
		plan_init(&plan, seed + (unsigned)k * 7919u);
		plan.crash_at_write = n;
		snprintf(what, sizeof what, "crash_at_write=%ld seed=%u", n, plan.seed);
		faulty_run(&res, &plan, what);
		crashed += res.crashed;
		bad += res.bad;
		runs++;
	}
	if (bad)
		fail_msg("%ld of %ld power-loss runs lost data or left a store that does not open", bad, runs);
	assert_true(crashed > 0);
}

/* The N-th write, fsync or read fails: that call reports an error, the
** rest of the workload carries on, and every committed change is kept. */
static void test_crash__io_errors(void **state)
{
	run_result cal, res;
	long mult = env_long("VELD_CRASH_ITER", 1), k, failed = 0, bad = 0, runs = 0;
	const long count = 16 * mult;
	(void)state;
	if (replaying())
		skip();
	calibrate(&cal);
	for (k = 0; k < count; k++) {
		veld_os_fault_plan plan;
		char what[96];
		long nw = spread(k, count, cal.writes), ns = spread(k, count, cal.fsyncs),
		     nr = spread(k, count, cal.reads);

		plan_init(&plan, (unsigned)k);
		plan.fail_write_at = nw;
		snprintf(what, sizeof what, "fail_write_at=%ld seed=%u", nw, plan.seed);
		faulty_run(&res, &plan, what);
		failed += res.failed_calls > 0;
		bad += res.bad;
		runs++;

		if (k < cal.fsyncs) {
			plan_init(&plan, (unsigned)k);
			plan.fail_fsync_at = ns;
			snprintf(what, sizeof what, "fail_fsync_at=%ld seed=%u", ns, plan.seed);
			faulty_run(&res, &plan, what);
			failed += res.failed_calls > 0;
			bad += res.bad;
			runs++;
		}

		plan_init(&plan, (unsigned)k);
		plan.fail_read_at = nr;
		snprintf(what, sizeof what, "fail_read_at=%ld seed=%u", nr, plan.seed);
		faulty_run(&res, &plan, what);
		failed += res.failed_calls > 0;
		bad += res.bad;
		runs++;
	}
	if (bad)
		fail_msg("%ld of %ld I/O-error runs lost data or left a store that does not open", bad, runs);
	/* Injected errors must reach the caller: at least some calls failed. */
	assert_true(failed > 0);
}

/* VELD_CRASH_PLAN="crash_at_fsync=3 seed=7" (the words the failure
** messages print) runs that one plan alone, to reproduce a failure. */
static void test_crash__one_plan(void **state)
{
	const char *spec = getenv("VELD_CRASH_PLAN"), *all = spec;
	veld_os_fault_plan plan;
	run_result res;
	char key[32];
	long val;
	int used;
	(void)state;
	if (!spec || !*spec)
		skip();
	plan_init(&plan, 1);
	while (sscanf(spec, " %31[a-z_]=%ld%n", key, &val, &used) == 2) {
		if (!strcmp(key, "seed"))
			plan.seed = (unsigned)val;
		else if (!strcmp(key, "crash_at_fsync"))
			plan.crash_at_fsync = val;
		else if (!strcmp(key, "crash_at_write"))
			plan.crash_at_write = val;
		else if (!strcmp(key, "fail_write_at"))
			plan.fail_write_at = val;
		else if (!strcmp(key, "fail_fsync_at"))
			plan.fail_fsync_at = val;
		else if (!strcmp(key, "fail_read_at"))
			plan.fail_read_at = val;
		else
			fail_msg("VELD_CRASH_PLAN: unknown key %s", key);
		spec += used;
	}
	faulty_run(&res, &plan, all);
	print_message("plan: %ld fsyncs, %ld writes, %ld reads, crashed %d, failed calls %d\n", res.fsyncs,
	              res.writes, res.reads, res.crashed, res.failed_calls);
	assert_int_equal(res.bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash__one_plan),
		cmocka_unit_test(test_crash__kill_9),
		cmocka_unit_test(test_crash__power_loss_at_every_fsync),
		cmocka_unit_test(test_crash__power_loss_at_writes),
		cmocka_unit_test(test_crash__io_errors),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

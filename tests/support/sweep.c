/*
** sweep.c — fault sweeps: run one operation of the library again and again
** with the N-th event of one kind made to fail, for N = 1, 2, ... up to the
** number of such events the operation makes (SQLite's malloc and I/O fault
** simulation, curl's "torture" runs).  An event is whatever the test
** counts: an allocation (tests/unit/faults_alloc.c), a write, fsync, read,
** listing or removal of the fault-injecting OS table (faults_io.c).
**
** The fixture is an office and one assistant device joined on a hub on a
** path; every operation runs on the device's store, opened with the test's
** OS table, with the fault armed around the one call under test only (the
** store is opened and closed unarmed, except by "open" and "create").
** After every run the contract is checked:
**   - the call returned VELD_OK, or a negative code with a message on the
**     handle (a NULL handle only with VELD_ERROR: out of memory);
**   - the store opens with the default OS and the plain allocator, and holds
**     every record and case a call committed (a put's id, an import's
**     count) and nothing a failed call made, unless the test says a failed
**     call may have landed (an fsync that failed after the write);
**   - after a failed sync, the next sync without the fault succeeds;
**   - nothing leaks (in a sanitized build LeakSanitizer looks after every
**     run, so a leak is pinned to its run).
** At the end of a sync sweep the office and the device sync until both
** hold the same export: nothing lost or doubled.
**
** What it owns: the fixture's directories and the model of what must be
** in the store.  What it must not do: know what the events are (the test's
** arm and disarm say it).
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PASS VELD_TEST_PASS
#define PASS_LEN (sizeof VELD_TEST_PASS - 1)
#define REGION "3000-3499"
#define FORM "contactregistratie" /* what put, import and sync write */

static void sweep_options(veld_store_options *o, const veld_os *os)
{
	veld_test_fast_options(o);
	o->os = os;
}

static veld_store *open_store(const char *dir, const veld_os *os)
{
	veld_store_options o;
	veld_store *s = NULL;
	sweep_options(&o, os);
	if (veld_store_open(&s, dir, PASS, PASS_LEN, &o))
		fail_msg("open %s: %s", dir, veld_errmsg(s));
	return s;
}

void veld_test_sweep_up(veld_test_sweep *w, const char *tag)
{
	veld_store *office, *dev;
	char *d;
	memset(w, 0, sizeof *w);
	w->root = veld_test_tmpdir(tag);
	w->hub = veld_test_path(w->root, "hub.git");
	w->office_dir = veld_test_path(w->root, "office");
	w->dir = veld_test_path(w->root, "device");
	office = veld_test_office(w->office_dir, w->hub);
	dev = veld_test_device(NULL, office, w->dir, "assistant", REGION, w->hub);
	if (veld_case_new(w->case_id, dev, "{\"name\":\"An Peeters\",\"postcode\":\"3000\"}"))
		fail_msg("case: %s", veld_errmsg(dev));
	json_decref(veld_test_sync(dev, VELD_OK));
	veld_store_close(dev);
	veld_store_close(office);
	w->n_min = w->n_max = 1;
	d = getenv("VELD_TEST_LONG");
	w->exhaustive = d && *d && strcmp(d, "0");
	w->dense = 40;
	w->runs = 60;
}

void veld_test_sweep_down(veld_test_sweep *w)
{
	int i;
	for (i = 0; i < w->n_ids; i++)
		free(w->ids[i]);
	free(w->ids);
	veld_test_rmtree(w->root);
	free(w->root);
	free(w->hub);
	free(w->office_dir);
	free(w->dir);
	memset(w, 0, sizeof *w);
}

static void note_id(veld_test_sweep *w, const char *id)
{
	char **grown;
	if (w->n_ids % 64 == 0) {
		grown = realloc(w->ids, (size_t)(w->n_ids + 64) * sizeof *grown);
		assert_non_null(grown);
		w->ids = grown;
	}
	assert_non_null(w->ids[w->n_ids] = strdup(id));
	w->n_ids++;
}

/* Live cases and live records of the form the operations write, in an
** export (a case's other records, if any, are the store's business). */
static long count_items(const char *export_json)
{
	json_t *j = json_loads(export_json, 0, NULL), *c, *r;
	size_t i, k;
	long n = 0;
	assert_non_null(j);
	json_array_foreach(json_object_get(j, "cases"), i, c) {
		n += !json_is_true(json_object_get(c, "deleted"));
		json_array_foreach(json_object_get(c, "records"), k, r) {
			const char *form = json_string_value(json_object_get(r, "form"));
			n += !json_is_true(json_object_get(r, "deleted")) && form && !strcmp(form, FORM);
		}
	}
	json_decref(j);
	return n;
}

/* The store opens with the default OS and holds what the model says. */
static void check_store(veld_test_sweep *w, const char *what)
{
	veld_store *s = open_store(w->dir, NULL);
	char *ex = NULL;
	long n;
	int i;
	if (veld_export_json(&ex, s))
		fail_msg("%s: export afterwards: %s", what, veld_errmsg(s));
	n = count_items(ex);
	for (i = 0; i < w->n_ids; i++)
		if (!strstr(ex, w->ids[i]))
			fail_msg("%s: committed %s is gone", what, w->ids[i]);
	if (n < w->n_min || n > w->n_max)
		fail_msg("%s: %ld cases and records, wanted %ld..%ld", what, n, w->n_min, w->n_max);
	w->n_min = w->n_max = n;
	veld_free(ex);
	veld_store_close(s);
}

/* A failed call says why: a code, and a message on the handle. */
static void check_failure(veld_test_sweep *w, const veld_store *s, int rc, const char *what)
{
	if (rc >= 0 || rc < VELD_ECANCELED)
		fail_msg("%s: returned %d", what, rc);
	if (!s && rc != VELD_ERROR)
		fail_msg("%s: no handle with %d", what, rc);
	if (s && !*veld_errmsg(s))
		fail_msg("%s: failed with %d and no message", what, rc);
	if ((rc == VELD_EAUTH || rc == VELD_ENOTFOUND || rc == VELD_EEXISTS || rc == VELD_EDENIED) &&
	    !(w->misreported && *w->misreported))
		fail_msg("%s: a fault reported as %d: %s", what, rc, veld_errmsg(s));
	if (rc != VELD_ERROR && !w->failed[-rc])
		printf("# %s: %d, \"%s\"\n", what, rc, veld_errmsg(s));
	w->failed[0]++;
	w->failed[-rc]++;
}

/* ---- the operations -------------------------------------------------------------- */

/* veld_store_create in a new directory; after a failure nothing half-made is
** left: the same directory takes a new store. */
static void op_create(veld_test_sweep *w, long n, const char *what)
{
	veld_store_options o;
	veld_store *s = NULL;
	char name[32], *dir;
	int rc;
	snprintf(name, sizeof name, "create-%ld", n);
	dir = veld_test_path(w->root, name);
	sweep_options(&o, w->os);
	w->arm(w->payload, n);
	rc = veld_store_create(&s, dir, PASS, PASS_LEN, &o);
	w->events = w->disarm(w->payload);
	if (rc)
		check_failure(w, s, rc, what);
	veld_store_close(s);
	s = NULL;
	sweep_options(&o, NULL);
	rc = rc ? veld_store_create(&s, dir, PASS, PASS_LEN, &o) : veld_store_open(&s, dir, PASS, PASS_LEN, &o);
	if (rc)
		fail_msg("%s: the store cannot be made or opened afterwards: %s", what, veld_errmsg(s));
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void op_open(veld_test_sweep *w, long n, const char *what)
{
	veld_store_options o;
	veld_store *s = NULL;
	int rc;
	sweep_options(&o, w->os);
	w->arm(w->payload, n);
	rc = veld_store_open(&s, w->dir, PASS, PASS_LEN, &o);
	w->events = w->disarm(w->payload);
	if (rc)
		check_failure(w, s, rc, what);
	veld_store_close(s);
}

/* One armed call on the open store; `adds` cases and records on success. */
static int armed_call(veld_test_sweep *w, veld_store *s, const char *op, long n, long adds)
{
	char id[VELD_IDSIZE], line[512], *out = NULL;
	long count = 0;
	int rc;
	w->arm(w->payload, n);
	if (!strcmp(op, "put")) {
		rc = veld_record_put(id, s, w->case_id, FORM, NULL,
		                     "{\"datum\":\"2017-03-02\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}");
	} else if (!strcmp(op, "import")) {
		snprintf(line, sizeof line,
		         "{\"case\":{\"ref\":\"imp-%ld\",\"name\":\"Jan Claes\",\"postcode\":\"3010\"},"
		         "\"form\":\"contactregistratie\",\"fields\":{\"datum\":\"2017-05-04\",\"plaats\":\"zitdag\","
		         "\"problematiek\":[\"materieel\"]}}\n"
		         "{\"case\":\"%s\",\"form\":\"contactregistratie\",\"fields\":{\"datum\":\"2017-06-01\","
		         "\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}}\n",
		         w->n_runs, w->case_id);
		rc = veld_import(&count, s, line, strlen(line), NULL, NULL);
		if (!rc && count != adds - 1)
			fail_msg("import stored %ld records", count);
	} else if (!strcmp(op, "sync")) {
		rc = veld_sync(&out, s, NULL);
	} else {
		rc = veld_report(&out, s, "jaarcijfers", "{\"year\":2017}", "text");
	}
	w->events = w->disarm(w->payload);
	veld_free(out);
	if (!rc && !strcmp(op, "put"))
		note_id(w, id);
	return rc;
}

/* A put (committed before the sync, unarmed) for the sync to carry. */
static void put_plain(veld_test_sweep *w, veld_store *s)
{
	char id[VELD_IDSIZE];
	if (veld_record_put(id, s, w->case_id, FORM, NULL,
	                    "{\"datum\":\"2017-04-03\",\"plaats\":\"telefonisch\",\"problematiek\":[\"financieel\"]}"))
		fail_msg("put before sync: %s", veld_errmsg(s));
	note_id(w, id);
	w->n_min++;
	w->n_max++;
}

/* put, import, sync, report: open unarmed, one armed call, close. */
static void op_call(veld_test_sweep *w, const char *op, long n, const char *what)
{
	long adds = !strcmp(op, "put") ? 1 : !strcmp(op, "import") ? 3 : 0;
	veld_store *s = open_store(w->dir, w->os);
	int rc;
	if (!strcmp(op, "sync"))
		put_plain(w, s);
	rc = armed_call(w, s, op, n, adds);
	if (rc)
		check_failure(w, s, rc, what);
	veld_store_close(s);
	if (!rc || w->may_land)
		w->n_max += adds;
	if (!rc)
		w->n_min += adds;
	if (rc && !strcmp(op, "sync")) {
		/* The next sync without the fault goes on from there. */
		s = open_store(w->dir, NULL);
		json_decref(veld_test_sync(s, VELD_OK));
		veld_store_close(s);
	}
}

/* ---- the sweep ------------------------------------------------------------------- */

/* In a sanitized build: LeakSanitizer's check, now (non-zero: leaks). */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* One run with the n-th event failing (0: none); the events it made. */
static long run_once(veld_test_sweep *w, const char *op, long n)
{
	char what[96];
	snprintf(what, sizeof what, "%s %s, event %ld", w->kind ? w->kind : "", op, n);
	w->events = 0;
	w->n_runs++;
	if (!strcmp(op, "create"))
		op_create(w, n, what);
	else if (!strcmp(op, "open"))
		op_open(w, n, what);
	else
		op_call(w, op, n, what);
	check_store(w, what);
	if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
		fail_msg("%s: leaked (above)", what);
	return w->events;
}

/* Office and device sync until they agree: nothing lost or doubled. */
static void converge(veld_test_sweep *w)
{
	veld_store *office = open_store(w->office_dir, NULL), *dev = open_store(w->dir, NULL);
	char *a, *b;
	json_decref(veld_test_sync(dev, VELD_OK));
	json_decref(veld_test_sync(office, VELD_OK));
	json_decref(veld_test_sync(dev, VELD_OK));
	a = veld_test_export(office);
	b = veld_test_export(dev);
	assert_string_equal(a, b);
	veld_free(a);
	veld_free(b);
	veld_store_close(dev);
	veld_store_close(office);
	check_store(w, "after the last sync");
}

/* VELD_TEST_SWEEP="KIND OP N" replays one run: true when it names another
** sweep, or after running this one. */
static int replay(veld_test_sweep *w, const char *op)
{
	const char *env = getenv("VELD_TEST_SWEEP");
	char kind[32], name[32];
	long n;
	if (!env || !*env)
		return 0;
	if (sscanf(env, "%31s %31s %ld", kind, name, &n) != 3)
		fail_msg("VELD_TEST_SWEEP=\"%s\": wanted \"KIND OP N\"", env);
	if (!strcmp(kind, w->kind ? w->kind : "") && !strcmp(name, op)) {
		run_once(w, op, n);
		printf("# %s: %ld events, %s\n", env, w->events, w->failed[0] ? "failed" : "done");
	}
	return 1;
}

void veld_test_sweep_run(veld_test_sweep *w, const char *op)
{
	long total, n, step, runs = 0;
	int i;
	memset(w->failed, 0, sizeof w->failed);
	if (replay(w, op))
		return;
	total = run_once(w, op, 0);
	if (!total) {
		printf("# %s %s: no events\n", w->kind ? w->kind : "", op);
		return;
	}
	step = w->exhaustive || total <= w->dense ? 1 : (total - w->dense + w->runs - 1) / w->runs;
	for (n = 1; n <= total; n += n < w->dense ? 1 : step, runs++)
		run_once(w, op, n);
	if (step > 1 && (total - w->dense) % step)
		run_once(w, op, total), runs++;
	printf("# %s %s: %ld events, %ld runs (stride %ld after %ld); failures:", w->kind ? w->kind : "", op, total,
	       runs, step, w->dense);
	for (i = 1; i < (int)(sizeof w->failed / sizeof w->failed[0]); i++)
		if (w->failed[i])
			printf(" %d x %ld", -i, w->failed[i]);
	printf("\n");
	fflush(stdout);
	if (!strcmp(op, "sync"))
		converge(w);
}

/* ---- the tests of a sweep file --------------------------------------------------- */

typedef struct sweep_case {
	const char *op;
	void (*sweep)(const char *op);
} sweep_case;

static void run_case(void **state)
{
	const sweep_case *c = *state;
	c->sweep(c->op);
}

int veld_test_sweep_main(const char *group, void (*sweep)(const char *op))
{
	static const char *const ops[] = {"create", "open", "put", "import", "sync", "report"};
	enum { N_OPS = sizeof ops / sizeof ops[0] };
	sweep_case cases[N_OPS];
	struct CMUnitTest tests[N_OPS];
	char names[N_OPS][64];
	int i;
	for (i = 0; i < N_OPS; i++) {
		cases[i].op = ops[i];
		cases[i].sweep = sweep;
		snprintf(names[i], sizeof names[i], "test_%s__%s", group, ops[i]);
		memset(&tests[i], 0, sizeof tests[i]);
		tests[i].name = names[i];
		tests[i].test_func = run_case;
		tests[i].initial_state = &cases[i];
	}
	return _cmocka_run_group_tests(group, tests, N_OPS, NULL, NULL);
}

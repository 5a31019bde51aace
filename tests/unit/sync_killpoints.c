/*
** sync_killpoints.c — git and SQLite stay consistent at every kill point of
** a sync (docs/design.md, invariant 7; docs/sync.md, "Keys").
**
** A device with new cases syncs through the fault-injecting OS table
** (platform/faulty.c) and loses power just before its N-th fsync or write,
** for every N its sync reaches.  libgit2 writes the repository itself, so what git
** did survives the power loss while SQLite loses every write it had not
** synced: git ahead of SQLite, as a kill leaves it.  After each loss the
** device reopens and syncs normally; then every one of its records must
** reach the office and the other assistant, with no ref refused.
**
** Each is tried on the device's sync and on the office's merge of it, with
** three seeds for what the unsynced writes keep (dropped, kept, torn).
** The device also shares one of its cases with a volunteer in the sync
** under test (its keys ref rebuilt), whose record must reach the volunteer.
** VELD_KILLPOINTS="SIDE KIND AT SEED" ("1 w 12 2": the office, its 12th
** write, seed 2) runs one trial, as a failure message names it.
**
** Then real kills: a child process runs `veld_sync` of the device (or of
** the office) and is sent SIGKILL after a random delay, again and again
** with new work in between; then one normal sync everywhere and the same
** checks.  A kill inside a push leaves a lock on the path hub's ref, which
** the next sync removes once it is stale (10 s): the test ages those locks
** instead of waiting.  VELD_KILL_SEED fixes the delays.
*/
#include "testutil.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define N_CASES 3
#define CONTACT "{\"datum\":\"2018-02-03\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"administratief\"]}"
#define WOONZOEK "{\"datum\":\"2018-02-04\",\"activiteit\":\"online_zoeken\",\"duur_min\":30}"

static veld_store *open_store(const char *dir, const veld_os *os)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_test_fast_options(&o);
	o.os = os;
	if (veld_store_open(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		fail_msg("open %s: %s", dir, veld_errmsg(s));
	return s;
}

typedef struct counts {
	long fsyncs, writes;
} counts;

/* Sync `*s` (in `dir`) through a faulty table that loses power just before
** its `at`-th fsync or write (`kind` 's' or 'w'; at 0: never), then reopen
** it with the plain table.  Returns what the sync did through the table. */
static counts sync_with_loss(veld_store **s, const char *dir, int kind, long at, unsigned seed)
{
	veld_os_fault_plan plan;
	veld_os_faulty *f = NULL;
	char *summary = NULL;
	counts c;
	veld_store_close(*s);
	assert_int_equal(veld_os_faulty_new(&f, NULL), 0);
	memset(&plan, 0, sizeof plan);
	plan.version = 2;
	plan.seed = seed;
	if (kind == 's')
		plan.crash_at_fsync = at;
	else
		plan.crash_at_write = at;
	*s = open_store(dir, veld_os_faulty_table(f));
	veld_os_faulty_set(f, &plan); /* counted from here: the sync only */
	c.fsyncs = -veld_os_faulty_count(f, 's');
	c.writes = -veld_os_faulty_count(f, 'w');
	(void)veld_sync(&summary, *s, NULL);
	veld_free(summary);
	veld_store_close(*s);
	c.fsyncs += veld_os_faulty_count(f, 's');
	c.writes += veld_os_faulty_count(f, 'w');
	veld_os_faulty_crash(f);
	veld_os_faulty_free(f);
	*s = open_store(dir, NULL);
	return c;
}

/* One trial: A has new cases; the power loss hits A's sync (`office` 0) or
** the office's merge of it (1).  Then everyone syncs normally: every
** record is at the office and at B, no ref is refused, A's repository
** verifies. */
static counts trial(int office, int kind, long at, unsigned seed)
{
	veld_test_net n;
	char cid[N_CASES][VELD_IDSIZE], rid[N_CASES][VELD_IDSIZE], v_id[VELD_IDSIZE], zoek[VELD_IDSIZE], *dir;
	char *out = NULL;
	veld_store *v;
	counts c;
	json_t *sum;
	int i;
	veld_test_net_up(&n, "sync-killpoints", "assistant", "3000-3499", "assistant", "3000-3499");
	dir = veld_test_path(n.root, "v");
	v = veld_test_device(v_id, n.office, dir, "volunteer", NULL, n.hub);
	free(dir);
	/* A knows B and V; its first case has its keys already, to share. */
	assert_int_equal(veld_case_new(cid[0], n.a, "{\"name\":\"Els\",\"postcode\":\"3000\"}"), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	assert_int_equal(veld_record_put(zoek, n.a, cid[0], "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_case_consent(n.a, cid[0], "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, cid[0], v_id, "huiswijs"), VELD_OK);
	for (i = 0; i < N_CASES; i++) {
		if (i > 0)
			assert_int_equal(veld_case_new(cid[i], n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"),
			                 VELD_OK);
		assert_int_equal(veld_record_put(rid[i], n.a, cid[i], "contactregistratie", NULL, CONTACT), VELD_OK);
	}
	if (office) {
		json_decref(veld_test_sync(n.a, VELD_OK));
		dir = veld_test_path(n.root, "office");
		c = sync_with_loss(&n.office, dir, kind, at, seed);
	} else {
		dir = veld_test_path(n.root, "a");
		c = sync_with_loss(&n.a, dir, kind, at, seed);
	}
	json_decref(veld_test_sync(n.a, VELD_OK));
	sum = veld_test_sync(n.office, VELD_OK);
	if (json_array_size(json_object_get(sum, "rejected")) != 0)
		fail_msg("loss at %c%ld (seed %u) on %s: a ref was refused", kind, at, seed, office ? "the office" : "A");
	json_decref(sum);
	json_decref(veld_test_sync(n.b, VELD_OK));
	json_decref(veld_test_sync(v, VELD_OK));
	for (i = 0; i < N_CASES; i++) {
		if (veld_record_show_json(&out, n.office, rid[i]) != VELD_OK)
			fail_msg("loss at %c%ld on %s: record %d not at the office", kind, at, office ? "the office" : "A", i);
		veld_free(out);
		if (veld_record_show_json(&out, n.b, rid[i]) != VELD_OK)
			fail_msg("loss at %c%ld on %s: record %d not at B", kind, at, office ? "the office" : "A", i);
		veld_free(out);
	}
	if (veld_record_show_json(&out, v, zoek) != VELD_OK)
		fail_msg("loss at %c%ld on %s: the shared record is not at the volunteer", kind, at,
		         office ? "the office" : "A");
	veld_free(out);
	assert_int_equal(veld_repository_verify(n.a), VELD_OK);
	assert_int_equal(veld_repository_verify(n.office), VELD_OK);
	free(dir);
	veld_store_close(v);
	veld_test_net_down(&n);
	return c;
}

/* Every fsync and every write of the sync through the seam, on the device
** and on the office, each with SEEDS choices of what unsynced writes keep. */
#define SEEDS 3
static void test_sync_killpoints__power_loss_at_every_write_and_fsync(void **state)
{
	const char *only = getenv("VELD_KILLPOINTS"); /* "SIDE KIND AT SEED": "0 s 3 1" */
	long at, points = 0;
	int office;
	(void)state;
	if (only) {
		char kind = 's';
		long a = 0;
		unsigned seed = 1;
		office = 0;
		sscanf(only, "%d %c %ld %u", &office, &kind, &a, &seed);
		trial(office, kind, a, seed);
		return;
	}
	for (office = 0; office <= 1; office++) {
		counts all = trial(office, 's', 0, 1);
		unsigned seed;
		assert_true(all.fsyncs > 0 && all.writes > 0);
		for (seed = 1; seed <= SEEDS; seed++) {
			for (at = 1; at <= all.fsyncs; at++, points++)
				trial(office, 's', at, seed);
			for (at = 1; at <= all.writes; at++, points++)
				trial(office, 'w', at, seed);
		}
	}
	print_message("%ld power losses in a sync (device and office): every record arrived\n", points);
	assert_true(points >= 200);
}

/* ---- SIGKILL at random times ------------------------------------------------------ */

/* Age every lock file under `dir` (recursively) past the stale limit. */
static void age_locks(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *p;
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		p = veld_test_path(dir, e->d_name);
		if (l > 5 && !strcmp(e->d_name + l - 5, ".lock")) {
			struct utimbuf old;
			old.actime = old.modtime = time(NULL) - 60;
			(void)utime(p, &old);
		} else {
			age_locks(p);
		}
		free(p);
	}
	closedir(d);
}

/* A child syncs the store in `dir` and is killed after `delay_ms` (the
** parent's handle is closed meanwhile: one process per store). */
static int killed_sync(veld_store **s, const char *dir, long delay_ms)
{
	pid_t pid;
	int status = 0;
	veld_store_close(*s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		veld_store *c = open_store(dir, NULL);
		char *summary = NULL;
		(void)veld_sync(&summary, c, NULL);
		_exit(0);
	}
	usleep((useconds_t)delay_ms * 1000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*s = open_store(dir, NULL);
	return WIFSIGNALED(status);
}

#define KILLS 24
static void test_sync_killpoints__sigkill_at_random_times(void **state)
{
	veld_test_net n;
	char cid[KILLS][VELD_IDSIZE], rid[KILLS][VELD_IDSIZE], *adir, *odir, *hubrefs, *out = NULL;
	unsigned seed = getenv("VELD_KILL_SEED") ? (unsigned)atoi(getenv("VELD_KILL_SEED")) : (unsigned)time(NULL);
	int i, killed = 0;
	json_t *sum;
	(void)state;
	srand(seed);
	print_message("sigkill: VELD_KILL_SEED=%u\n", seed);
	veld_test_net_up(&n, "sync-sigkill", "assistant", "3000-3499", "assistant", "3000-3499");
	adir = veld_test_path(n.root, "a");
	odir = veld_test_path(n.root, "office");
	hubrefs = veld_test_path(n.hub, "refs");
	json_decref(veld_test_sync(n.a, VELD_OK));
	for (i = 0; i < KILLS; i++) {
		long delay = rand() % 250;
		assert_int_equal(veld_case_new(cid[i], n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"), VELD_OK);
		assert_int_equal(veld_record_put(rid[i], n.a, cid[i], "contactregistratie", NULL, CONTACT), VELD_OK);
		if (i % 3 == 2)
			killed += killed_sync(&n.office, odir, delay);
		else
			killed += killed_sync(&n.a, adir, delay);
	}
	age_locks(hubrefs);
	json_decref(veld_test_sync(n.a, VELD_OK));
	sum = veld_test_sync(n.office, VELD_OK);
	if (json_array_size(json_object_get(sum, "rejected")) != 0)
		fail_msg("seed %u: a change was refused after the kills", seed);
	json_decref(sum);
	json_decref(veld_test_sync(n.b, VELD_OK));
	for (i = 0; i < KILLS; i++) {
		if (veld_record_show_json(&out, n.office, rid[i]) != VELD_OK)
			fail_msg("seed %u: record %d not at the office", seed, i);
		veld_free(out);
		if (veld_record_show_json(&out, n.b, rid[i]) != VELD_OK)
			fail_msg("seed %u: record %d not at B", seed, i);
		veld_free(out);
	}
	assert_int_equal(veld_store_verify(n.a), VELD_OK);
	assert_int_equal(veld_repository_verify(n.a), VELD_OK);
	assert_int_equal(veld_repository_verify(n.office), VELD_OK);
	print_message("sigkill: %d of %d syncs killed midway; every record arrived\n", killed, KILLS);
	free(adir);
	free(odir);
	free(hubrefs);
	veld_test_net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_killpoints__power_loss_at_every_write_and_fsync),
		cmocka_unit_test(test_sync_killpoints__sigkill_at_random_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

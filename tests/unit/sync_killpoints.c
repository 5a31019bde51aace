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
** VELD_KILLPOINTS="SIDE KIND AT SEED" ("1 w 12 2": the office, its 12th
** write, seed 2) runs one trial, as a failure message names it.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CASES 3
#define CONTACT "{\"datum\":\"2018-02-03\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"administratief\"]}"

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
	char cid[N_CASES][VELD_IDSIZE], rid[N_CASES][VELD_IDSIZE], *dir, *out = NULL;
	counts c;
	json_t *sum;
	int i;
	veld_test_net_up(&n, "sync-killpoints", "assistant", "3000-3499", "assistant", "3000-3499");
	json_decref(veld_test_sync(n.a, VELD_OK)); /* A knows B: B gets the keys of A's cases */
	for (i = 0; i < N_CASES; i++) {
		assert_int_equal(veld_case_new(cid[i], n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"), VELD_OK);
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
	for (i = 0; i < N_CASES; i++) {
		if (veld_record_show_json(&out, n.office, rid[i]) != VELD_OK)
			fail_msg("loss at %c%ld on %s: record %d not at the office", kind, at, office ? "the office" : "A", i);
		veld_free(out);
		if (veld_record_show_json(&out, n.b, rid[i]) != VELD_OK)
			fail_msg("loss at %c%ld on %s: record %d not at B", kind, at, office ? "the office" : "A", i);
		veld_free(out);
	}
	assert_int_equal(veld_repository_verify(n.a), VELD_OK);
	assert_int_equal(veld_repository_verify(n.office), VELD_OK);
	free(dir);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_killpoints__power_loss_at_every_write_and_fsync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

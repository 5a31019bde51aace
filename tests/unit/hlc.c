/*
** tests/unit/hlc.c — the hybrid logical clock: stamps keep a device's edits
** in order whatever its wall clock does, remote stamps are folded in, the
** counter cannot overflow, and the stamp order is total.
*/
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define DEV_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HOUR_MS ((int64_t)3600 * 1000)
#define T0 ((int64_t)1700000000000) /* a plausible "now" in ms */

static veld_stamp mk(int64_t wall, uint32_t counter, const char *dev)
{
	veld_stamp s;
	memset(&s, 0, sizeof s);
	s.wall = wall;
	s.counter = counter;
	memcpy(s.device, dev, VELD_DEVICE_ID_LEN);
	return s;
}

static void test_hlc__first_stamp_takes_the_clock(void **state)
{
	veld_stamp last, s;
	(void)state;
	memset(&last, 0, sizeof last);
	veld_hlc__next(&s, &last, T0, DEV_A);
	assert_true(s.wall == T0);
	assert_int_equal(s.counter, 0);
	assert_string_equal(s.device, DEV_A);
	assert_int_equal(veld_stamp__cmp(&s, &last), 0);
}

static void test_hlc__same_millisecond_bumps_counter(void **state)
{
	veld_stamp last, s1, s2, s3;
	(void)state;
	memset(&last, 0, sizeof last);
	veld_hlc__next(&s1, &last, T0, DEV_A);
	veld_hlc__next(&s2, &last, T0, DEV_A);
	veld_hlc__next(&s3, &last, T0 + 5, DEV_A);
	assert_int_equal(s2.counter, 1);
	assert_true(s2.wall == T0);
	assert_true(veld_stamp__cmp(&s1, &s2) < 0);
	assert_true(veld_stamp__cmp(&s2, &s3) < 0);
	assert_true(s3.wall == T0 + 5);
	assert_int_equal(s3.counter, 0); /* the counter restarts when the wall advances */
}

/* A tablet whose clock jumps back an hour keeps ordering its own edits: the
** write made after the jump wins over the write made before it. */
static void test_hlc__clock_jumps_back_an_hour(void **state)
{
	veld_stamp last, before, after, prev;
	veld_record *r = NULL;
	json_t *v1 = json_string("voor de sprong"), *v2 = json_string("na de sprong");
	const json_t *shown;
	size_t n = 0;
	int i;
	(void)state;
	memset(&last, 0, sizeof last);
	veld_hlc__next(&before, &last, T0, DEV_A);
	prev = before;
	for (i = 0; i < 1000; i++) { /* an hour back, then the clock runs on */
		veld_stamp s;
		veld_hlc__next(&s, &last, T0 - HOUR_MS + i, DEV_A);
		assert_true(veld_stamp__cmp(&prev, &s) < 0);
		assert_true(s.wall == T0); /* the wall waits for the clock */
		prev = s;
	}
	after = prev;
	assert_true(veld_stamp__cmp(&before, &after) < 0);
	/* Once the clock passes the old wall, the wall follows it again. */
	veld_hlc__next(&prev, &last, T0 + 1, DEV_A);
	assert_true(prev.wall == T0 + 1);
	assert_int_equal(prev.counter, 0);

	/* And in a record: the later write is the one shown, no conflict. */
	assert_int_equal(veld_record__new(&r, "0123456789abcdef0123456789abcdef",
	                                  "fedcba9876543210fedcba9876543210", "contactregistratie"), 0);
	assert_int_equal(veld_record__set(r, "plaats", v1, &before), 0);
	assert_int_equal(veld_record__set(r, "plaats", v2, &after), 0);
	shown = veld_record__value(r, "plaats", &n);
	assert_int_equal(n, 1);
	assert_true(json_equal((json_t *)shown, v2));
	veld_record__free(r);
	json_decref(v1);
	json_decref(v2);
}

/* A stamp from a device whose clock runs ahead: local stamps follow it. */
static void test_hlc__observe_remote_ahead(void **state)
{
	veld_stamp last, remote, s, mine;
	(void)state;
	memset(&last, 0, sizeof last);
	veld_hlc__next(&mine, &last, T0, DEV_A);
	remote = mk(T0 + 2 * HOUR_MS, 7, DEV_B);
	veld_hlc__observe(&last, &remote, T0 + 1);
	assert_string_equal(last.device, DEV_A); /* still our clock */
	veld_hlc__next(&s, &last, T0 + 2, DEV_A);
	assert_true(veld_stamp__cmp(&remote, &s) < 0);
	assert_true(s.wall == remote.wall);
	assert_int_equal(s.counter, 8);
	assert_string_equal(s.device, DEV_A);

	/* Observing an older stamp changes nothing. */
	remote = mk(T0, 99, DEV_B);
	mine = last;
	veld_hlc__observe(&last, &remote, T0 + 3);
	assert_int_equal(veld_stamp__cmp(&mine, &last), 0);

	/* Same wall and counter from another device: the next stamp is after it. */
	remote = mk(last.wall, last.counter, "ffffffffffffffffffffffffffffffff");
	veld_hlc__observe(&last, &remote, T0 + 3);
	veld_hlc__next(&s, &last, T0 + 3, DEV_A);
	assert_true(veld_stamp__cmp(&remote, &s) < 0);
}

static void test_hlc__counter_overflow_bumps_wall(void **state)
{
	veld_stamp last = mk(T0, UINT32_MAX - 1, DEV_A), s1, s2, s3;
	(void)state;
	veld_hlc__next(&s1, &last, T0 - 10, DEV_A);
	assert_true(s1.counter == UINT32_MAX && s1.wall == T0);
	veld_hlc__next(&s2, &last, T0 - 10, DEV_A);
	assert_true(s2.wall == T0 + 1);
	assert_int_equal(s2.counter, 0);
	assert_true(veld_stamp__cmp(&s1, &s2) < 0);
	veld_hlc__next(&s3, &last, T0 - 10, DEV_A);
	assert_true(veld_stamp__cmp(&s2, &s3) < 0);

	/* A remote stamp at the counter's limit: still strictly after it. */
	last = mk(T0, 0, DEV_A);
	s1 = mk(T0 + 100, UINT32_MAX, DEV_B);
	veld_hlc__observe(&last, &s1, T0);
	veld_hlc__next(&s2, &last, T0, DEV_A);
	assert_true(veld_stamp__cmp(&s1, &s2) < 0);
	assert_true(s2.wall == T0 + 101);
}

static void test_hlc__cmp_is_a_total_order(void **state)
{
	veld_stamp s[8];
	size_t i, j, k;
	(void)state;
	s[0] = mk(1, 0, DEV_A);
	s[1] = mk(1, 0, DEV_B);
	s[2] = mk(1, 1, DEV_A);
	s[3] = mk(2, 0, DEV_A);
	s[4] = mk(2, 0, DEV_B);
	s[5] = mk(2, UINT32_MAX, DEV_A);
	s[6] = mk(T0, 3, "0000000000000000000000000000000f");
	s[7] = mk(VELD_HLC_WALL_MAX, 0, DEV_A);
	/* Listed in increasing order: cmp agrees with the index order. */
	for (i = 0; i < 8; i++) {
		for (j = 0; j < 8; j++) {
			int c = veld_stamp__cmp(&s[i], &s[j]);
			int want = (i > j) - (i < j);
			assert_int_equal(c, want);
			assert_int_equal(veld_stamp__cmp(&s[j], &s[i]), -want);
			for (k = 0; k < 8; k++) { /* transitivity */
				if (c < 0 && veld_stamp__cmp(&s[j], &s[k]) < 0)
					assert_true(veld_stamp__cmp(&s[i], &s[k]) < 0);
			}
		}
	}
}

static void test_hlc__json_round_trip(void **state)
{
	veld_stamp a = mk(T0, 42, DEV_B), b;
	json_t *j = veld_stamp__to_json(&a);
	char *txt;
	(void)state;
	assert_non_null(j);
	txt = json_dumps(j, JSON_COMPACT);
	assert_string_equal(txt, "[1700000000000,42,\"" DEV_B "\"]");
	assert_int_equal(veld_stamp__from_json(&b, j), 0);
	assert_int_equal(veld_stamp__cmp(&a, &b), 0);
	free(txt);
	json_decref(j);
}

static void test_hlc__json_rejects_malformed(void **state)
{
	static const char *bad[] = {
	        "[]",
	        "{}",
	        "[1,2]",
	        "[1,2,\"" DEV_A "\",4]",
	        "[-1,0,\"" DEV_A "\"]",
	        "[9007199254740992,0,\"" DEV_A "\"]",
	        "[1.5,0,\"" DEV_A "\"]",
	        "[1,-1,\"" DEV_A "\"]",
	        "[1,4294967296,\"" DEV_A "\"]",
	        "[1,0,\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]",
	        "[1,0,\"aaaa\"]",
	        "[1,0,\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]",
	        "[1,0,\"gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]",
	        "[1,0,7]",
	        "[\"1\",0,\"" DEV_A "\"]",
	        "[1,null,\"" DEV_A "\"]",
	};
	size_t i;
	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_error_t e;
		json_t *j = json_loads(bad[i], 0, &e);
		veld_stamp s;
		assert_non_null(j);
		if (veld_stamp__from_json(&s, j) != VELD_EINTEGRITY)
			fail_msg("accepted malformed stamp %s", bad[i]);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hlc__first_stamp_takes_the_clock),
	        cmocka_unit_test(test_hlc__same_millisecond_bumps_counter),
	        cmocka_unit_test(test_hlc__clock_jumps_back_an_hour),
	        cmocka_unit_test(test_hlc__observe_remote_ahead),
	        cmocka_unit_test(test_hlc__counter_overflow_bumps_wall),
	        cmocka_unit_test(test_hlc__cmp_is_a_total_order),
	        cmocka_unit_test(test_hlc__json_round_trip),
	        cmocka_unit_test(test_hlc__json_rejects_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

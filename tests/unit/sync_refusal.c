/*
** sync_refusal.c — a refusal never jams (docs/sync.md, "Refusals").
**
** Each case is one the organisation meets: a volunteer writing a social
** record, an assistant making a case outside its region, an erasure
** racing offline edits of a shared case.  First the device's own library
** refuses the write at once (VELD_EDENIED, the reason, nothing stored).
** Then the same write is made by a client that does not know better (its
** own registry row widened, as an older client or a stale registry would
** leave it: veld_test_stale_own_entry) and reaches the office through the
** library's real sync with the device's real key.  The office refuses that
** change alone; the device's valid changes, in the same commit and after,
** arrive at the office and at the other devices; every sync on every store
** returns VELD_OK; the writer learns of the refusal at its next sync (once)
** and `veld refused` lists it while the data stays readable on the writer.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTACT  "{\"datum\":\"2018-04-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"materieel\"]}"
#define WOONZOEK "{\"datum\":\"2018-04-06\",\"activiteit\":\"online_zoeken\",\"duur_min\":45}"

typedef veld_test_net net;

static json_t *sync_of(veld_store *s)
{
	return veld_test_sync(s, VELD_OK);
}

static void sync_ok(veld_store *s)
{
	json_decref(sync_of(s));
}

static int can_show(veld_store *s, const char *rid)
{
	char *out = NULL;
	int rc = veld_record_show_json(&out, s, rid);
	veld_free(out);
	return rc == VELD_OK;
}

/* The entry of `summary`'s "rejected" for record `rid`, or NULL. */
static json_t *rejected_entry(json_t *summary, const char *rid)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(summary, "rejected"), i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "record")) ?: "", rid))
			return e;
	}
	return NULL;
}

/* A sync of `s` that lists `rid` refused with `code` (NULL: any). */
static void sync_reports(veld_store *s, const char *rid, const char *code)
{
	json_t *sum = sync_of(s), *e = rejected_entry(sum, rid);
	if (!e)
		fail_msg("record %s is not reported: %s", rid, json_dumps(sum, JSON_COMPACT));
	if (code && strcmp(json_string_value(json_object_get(e, "code")), code))
		fail_msg("record %s refused as %s, wanted %s", rid, json_string_value(json_object_get(e, "code")), code);
	json_decref(sum);
}

/* A sync of `s` that reports nothing refused. */
static void sync_quiet(veld_store *s)
{
	json_t *sum = sync_of(s);
	if (json_array_size(json_object_get(sum, "rejected")) != 0)
		fail_msg("reported again: %s", json_dumps(sum, JSON_COMPACT));
	json_decref(sum);
}

/* `s`'s veld_refused_json entry for `rid`, or fail; its "held" and "code". */
static void listed(veld_store *s, const char *rid, int held, const char *code)
{
	char *out = NULL;
	json_t *arr, *e;
	size_t i;
	int found = 0;
	assert_int_equal(veld_refused_json(&out, s), VELD_OK);
	arr = json_loads(out, 0, NULL);
	json_array_foreach(arr, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "record")), rid))
			continue;
		found++;
		assert_int_equal(json_is_true(json_object_get(e, "held")), held);
		if (code)
			assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	}
	if (found != 1)
		fail_msg("record %s listed %d times: %s", rid, found, out);
	json_decref(arr);
	veld_free(out);
}

/* 1. A volunteer writes a social record in a case shared with it. */
static void test_refusal__volunteer_social_record_is_refused_alone(void **state)
{
	net n;
	char cid[VELD_IDSIZE], zoek[VELD_IDSIZE], social[VELD_IDSIZE], later[VELD_IDSIZE], other[VELD_IDSIZE], *before;
	(void)state;
	veld_test_net_up(&n, "refusal-volunteer", "assistant", "3000-3499", "volunteer", NULL);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Els Wouters\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(zoek, n.a, cid, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.a); /* the case's keys are made by its first sync */
	assert_int_equal(veld_case_consent(n.a, cid, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, cid, n.b_id, "huiswijs"), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(n.b);
	assert_true(can_show(n.b, zoek));

	/* The volunteer's library refuses at once. */
	before = veld_test_export(n.b);
	veld_test_refused_at_once(n.b, veld_record_put(NULL, n.b, cid, "contactregistratie", NULL, CONTACT),
	                "a volunteer cannot write contactregistratie (compartment social)", before);
	veld_test_refused_at_once(n.b, veld_case_new(other, n.b, "{\"name\":\"Jan\",\"postcode\":\"3000\"}"),
	                "a volunteer cannot write the header", before);
	veld_free(before);

	/* A client that writes it all the same: the social record and a valid
	** woonzoek entry in one commit, another valid entry in the next. */
	veld_test_stale_own_entry(n.b, n.b_id, "assistant");
	assert_int_equal(veld_record_put(social, n.b, cid, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "woonzoek", zoek, "{\"resultaat\":\"geen_reactie\"}"), VELD_OK);
	sync_ok(n.b);
	assert_int_equal(veld_record_put(later, n.b, cid, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.b);

	sync_reports(n.office, social, NULL);
	assert_false(can_show(n.office, social));
	assert_true(can_show(n.office, later));
	sync_ok(n.a);
	assert_true(can_show(n.a, later));
	assert_false(can_show(n.a, social));
	{
		char *out = NULL;
		assert_int_equal(veld_record_show_json(&out, n.a, zoek), VELD_OK);
		assert_non_null(strstr(out, "geen_reactie"));
		veld_free(out);
	}
	/* The writer is told once; its data stays readable there. */
	sync_reports(n.b, social, NULL);
	sync_quiet(n.b);
	listed(n.b, social, 1, NULL);
	assert_true(can_show(n.b, social));
	/* Nobody's sync fails, now or later. */
	sync_quiet(n.office);
	sync_ok(n.a);
	listed(n.office, social, 0, NULL);
	veld_test_net_down(&n);
}

/* 2. An assistant of 3000-3099 makes a case with postcode 3500. */
static void test_refusal__case_outside_the_region_is_refused_alone(void **state)
{
	net n;
	char far[VELD_IDSIZE], near[VELD_IDSIZE], rec[VELD_IDSIZE], *before, *out = NULL;
	(void)state;
	veld_test_net_up(&n, "refusal-region", "assistant", "3000-3099", "assistant", "3000-3099");
	before = veld_test_export(n.a);
	veld_test_refused_at_once(n.a, veld_case_new(far, n.a, "{\"name\":\"Zeno\",\"postcode\":\"3500\"}"),
	                "postcode 3500 is outside the region 3000-3099 of this device", before);
	veld_free(before);
	veld_test_stale_own_entry(n.a, n.a_id, "assistant");
	assert_int_equal(veld_case_new(far, n.a, "{\"name\":\"Zeno\",\"postcode\":\"3500\"}"), VELD_OK);
	assert_int_equal(veld_case_new(near, n.a, "{\"name\":\"Nora\",\"postcode\":\"3050\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rec, n.a, near, "contactregistratie", NULL, CONTACT), VELD_OK);
	sync_ok(n.a);
	sync_reports(n.office, far, "region");
	sync_ok(n.b);
	sync_ok(n.office);
	sync_ok(n.b);
	/* The case inside the region arrives everywhere; the other header nowhere. */
	assert_true(can_show(n.office, rec));
	assert_true(can_show(n.b, rec));
	assert_int_equal(veld_case_show_json(&out, n.office, near), VELD_OK);
	assert_non_null(strstr(out, "Nora"));
	veld_free(out);
	out = NULL;
	if (veld_case_show_json(&out, n.office, far) == VELD_OK)
		assert_null(strstr(out, "Zeno"));
	veld_free(out);
	out = NULL;
	sync_reports(n.a, far, "region");
	listed(n.a, far, 1, "region");
	assert_int_equal(veld_case_show_json(&out, n.a, far), VELD_OK); /* still readable on the writer */
	assert_non_null(strstr(out, "Zeno"));
	veld_free(out);
	veld_test_net_down(&n);
}

/* 3. The office erases a shared case while the volunteer and the
** assistant (which merged the volunteer's entry) hold offline edits of it,
** and of another case. */
static void test_refusal__erasure_racing_offline_edits_jams_nothing(void **state)
{
	net n;
	char x[VELD_IDSIZE], y[VELD_IDSIZE], zoek[VELD_IDSIZE], cx[VELD_IDSIZE], cy[VELD_IDSIZE];
	char late[VELD_IDSIZE];
	(void)state;
	veld_test_net_up(&n, "refusal-erase", "assistant", "3000-3499", "volunteer", NULL);
	assert_int_equal(veld_case_new(x, n.a, "{\"name\":\"Els\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_case_new(y, n.a, "{\"name\":\"Wim\",\"postcode\":\"3010\"}"), VELD_OK);
	assert_int_equal(veld_record_put(zoek, n.a, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_record_put(cx, n.a, x, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(cy, n.a, y, "contactregistratie", NULL, CONTACT), VELD_OK);
	sync_ok(n.a); /* the case's keys are made by its first sync */
	assert_int_equal(veld_case_consent(n.a, x, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, x, n.b_id, "huiswijs"), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(n.b);
	sync_ok(n.a);
	/* The volunteer logs an activity; the assistant merges it, then works
	** offline on both cases. */
	assert_int_equal(veld_record_put(late, n.b, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.b);
	sync_ok(n.a);
	assert_true(can_show(n.a, late));
	assert_int_equal(veld_record_put(NULL, n.a, x, "contactregistratie", cx, "{\"duur_min\":20}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.a, y, "contactregistratie", cy, "{\"duur_min\":35}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, x, "woonzoek", late, "{\"duur_min\":50}"), VELD_OK);
	/* The office erases X, and meets the volunteer's and the assistant's
	** refs holding changes to it. */
	assert_int_equal(veld_case_erase(n.office, x), VELD_OK);
	sync_ok(n.office);
	sync_ok(n.a);
	sync_ok(n.b);
	sync_ok(n.office);
	sync_ok(n.a);
	sync_ok(n.b);
	sync_ok(n.office);
	/* The edit of the other case arrived; nothing of X is anywhere. */
	{
		char *out = NULL;
		assert_int_equal(veld_record_show_json(&out, n.office, cy), VELD_OK);
		assert_non_null(strstr(out, "\"duur_min\":35"));
		veld_free(out);
	}
	assert_false(can_show(n.office, cx));
	assert_false(can_show(n.a, cx));
	assert_false(can_show(n.b, late));
	assert_int_equal(veld_store_verify(n.office), VELD_OK);
	veld_test_net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusal__volunteer_social_record_is_refused_alone),
		cmocka_unit_test(test_refusal__case_outside_the_region_is_refused_alone),
		cmocka_unit_test(test_refusal__erasure_racing_offline_edits_jams_nothing),
	};
	if (getenv("VELD_TEST_FILTER"))
		cmocka_set_test_filter(getenv("VELD_TEST_FILTER"));
	return cmocka_run_group_tests_name("sync_refusal", tests, NULL, NULL);
}

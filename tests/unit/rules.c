/*
** rules.c — who may write what (core/rules.c): the one rule a device applies
** when it writes and the office applies when it verifies.
**
** First the rule itself, case by case (veld_rules__check); then a real
** office, an assistant and a volunteer: every write the office would refuse
** is refused on the device at once, with VELD_EDENIED, a reason in words,
** and the store exactly as before (its export the same bytes); the writes
** the rule allows go through.  sync_tamper.c shows the verifier's side:
** the same refusals when a client that does not apply the rule syncs.
*/
#include "testutil.h"

#include "core.h"

#include <stdlib.h>
#include <string.h>

#define CONTACT  "{\"datum\":\"2018-04-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"materieel\"],\"detail\":[\"huisvesting\"]}"
#define WOONZOEK "{\"datum\":\"2018-04-06\",\"activiteit\":\"online_zoeken\",\"duur_min\":45}"
#define CASE_ID  "0123456789abcdef0123456789abcdef"
#define REC_ID   "fedcba9876543210fedcba9876543210"

/* ---- the rule ------------------------------------------------------------------- */

static int check(char *why, const char *role, const char *region, const veld_change *c)
{
	veld_range ranges[VELD_MAX_RANGES];
	veld_writer w;
	int n = -1;
	memset(&w, 0, sizeof w);
	if (region)
		assert_int_equal(veld_region__parse(ranges, VELD_MAX_RANGES, &n, region, NULL), 0);
	w.role = role;
	w.ranges = ranges;
	w.n_ranges = n;
	w.region = region;
	w.who = "device x";
	why[0] = '\0';
	return veld_rules__check(NULL, why, 256, &w, c);
}

static veld_change header(const char *postcode, int creates)
{
	veld_change c;
	memset(&c, 0, sizeof c);
	c.case_id = c.record_id = CASE_ID;
	c.form = VELD_CASE_FORM;
	c.postcode = postcode;
	c.creates = creates;
	c.readable = 1;
	return c;
}

static veld_change record(const char *form, const char *compartment)
{
	veld_change c;
	memset(&c, 0, sizeof c);
	c.case_id = CASE_ID;
	c.record_id = REC_ID;
	c.form = form;
	c.compartment = compartment;
	c.readable = 1;
	return c;
}

static void test_rules__by_role(void **state)
{
	char why[256];
	veld_change c;
	(void)state;
	/* The office writes anything, also a header outside every region. */
	c = header("3500", 1);
	assert_int_equal(check(why, "office", NULL, &c), 0);
	c = record("contactregistratie", "social");
	assert_int_equal(check(why, "office", NULL, &c), 0);

	/* A volunteer: huiswijs records only, never a header. */
	c = record("woonzoek", "huiswijs");
	assert_int_equal(check(why, "volunteer", NULL, &c), 0);
	c = record("contactregistratie", "social");
	assert_int_equal(check(why, "volunteer", NULL, &c), VELD_EDENIED);
	assert_string_equal(why, "a volunteer cannot write contactregistratie (compartment social)");
	c = header("3000", 0);
	assert_int_equal(check(why, "volunteer", NULL, &c), VELD_EDENIED);
	assert_string_equal(why, "a volunteer cannot write the header of case " CASE_ID);
	/* What a verifier cannot read (no compartment known) is left to those who can. */
	c = record(NULL, "");
	c.readable = 0;
	assert_int_equal(check(why, "volunteer", NULL, &c), 0);

	/* An assistant: a header it creates or moves lies in its region. */
	c = header("3050", 1);
	assert_int_equal(check(why, "assistant", "3000-3099,9000", &c), 0);
	c = header("9000", 1);
	assert_int_equal(check(why, "assistant", "3000-3099,9000", &c), 0);
	c = header("3500", 1);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), VELD_EDENIED);
	assert_string_equal(why, "postcode 3500 is outside the region 3000-3099 of device x");
	c = header("3500", 0);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), VELD_EDENIED);
	c = header("35000", 1);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), VELD_EDENIED);
	assert_string_equal(why, "case " CASE_ID " has no valid postcode");
	/* Every header write is judged, also one that leaves the postcode alone
	** (consent, a phone number): a case outside the region is not its to
	** describe. */
	c = header("3500", 0);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), VELD_EDENIED);
	c = header("3050", 0);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), 0);
	/* Before its enrolment reached it, a device does not know its region. */
	c = header("3500", 1);
	assert_int_equal(check(why, "assistant", NULL, &c), 0);
	/* Records of every compartment it holds keys for. */
	c = record("contactregistratie", "social");
	assert_int_equal(check(why, "assistant", "3000-3099", &c), 0);

	/* A case's contact part follows its header: the office writes it. */
	c = record(VELD_CONTACT_FORM, "huiswijs");
	assert_int_equal(check(why, "office", NULL, &c), 0);
	assert_int_equal(check(why, "assistant", "3000-3099", &c), VELD_EDENIED);
	assert_string_equal(why, "the contact part of case " CASE_ID " is written by the office only");
	assert_int_equal(check(why, "volunteer", NULL, &c), VELD_EDENIED);

	/* A role the registry does not know writes nothing. */
	c = record("woonzoek", "huiswijs");
	assert_int_equal(check(why, "auditor", NULL, &c), VELD_EDENIED);
	assert_string_equal(why, "role auditor may not write");
}

/* ---- the rule on the devices ----------------------------------------------------- */

typedef veld_test_net net;

static void net_up(net *n)
{
	/* a: an assistant of 3000-3099; b: a volunteer */
	veld_test_net_up(n, "rules", "assistant", "3000-3099", "volunteer", NULL);
}

static void net_down(net *n)
{
	veld_test_net_down(n);
}

/* `rc` is the refusal of a write: VELD_EDENIED, the message starting with `why`,
** and the store as it was (`before`, its export). */
static void refused(veld_store *s, int rc, const char *why, const char *before)
{
	char *after;
	assert_int_equal(rc, VELD_EDENIED);
	if (strncmp(veld_errmsg(s), why, strlen(why)))
		fail_msg("refused with \"%s\", expected \"%s\"", veld_errmsg(s), why);
	after = veld_test_export(s);
	assert_string_equal(after, before);
	veld_free(after);
}

static void test_rules__assistant_writes_in_its_region(void **state)
{
	net n;
	char cid[VELD_IDSIZE], other[VELD_IDSIZE], *before;
	(void)state;
	net_up(&n);
	before = veld_test_export(n.a);
	refused(n.a, veld_case_new(other, n.a, "{\"name\":\"Zeno\",\"postcode\":\"3500\"}"),
	        "postcode 3500 is outside the region 3000-3099 of this device", before);
	veld_free(before);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Zeno\",\"postcode\":\"3000\"}"), VELD_OK);
	/* Moving it out of the region is the office's to do. */
	before = veld_test_export(n.a);
	refused(n.a, veld_case_update(n.a, cid, "{\"postcode\":\"3500\"}"),
	        "postcode 3500 is outside the region 3000-3099 of this device", before);
	veld_free(before);
	assert_int_equal(veld_case_update(n.a, cid, "{\"postcode\":\"3010\",\"phone\":\"016 00 00 00\"}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.a, cid, "contactregistratie", NULL, CONTACT), VELD_OK);
	/* What the device wrote, the office accepts. */
	json_decref(veld_test_sync(n.a, VELD_OK));
	json_decref(veld_test_sync(n.office, VELD_OK));
	{
		char *out = NULL;
		assert_int_equal(veld_case_show_json(&out, n.office, cid), VELD_OK);
		assert_non_null(strstr(out, "\"3010\""));
		veld_free(out);
	}
	/* The office may write outside every region. */
	assert_int_equal(veld_case_new(other, n.office, "{\"name\":\"Zeno\",\"postcode\":\"3500\"}"), VELD_OK);
	net_down(&n);
}

static void test_rules__volunteer_writes_huiswijs_only(void **state)
{
	net n;
	char cid[VELD_IDSIZE], zoek[VELD_IDSIZE], msg[200], *before;
	(void)state;
	net_up(&n);
	before = veld_test_export(n.b);
	refused(n.b, veld_case_new(cid, n.b, "{\"name\":\"Wout\",\"postcode\":\"3000\"}"),
	        "a volunteer cannot write the header of case ", before);
	veld_free(before);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Wout\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(zoek, n.a, cid, "woonzoek", NULL, WOONZOEK), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK)); /* the volunteer's enrolment reaches A */
	assert_int_equal(veld_case_consent(n.a, cid, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, cid, n.b_id, "huiswijs"), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	json_decref(veld_test_sync(n.office, VELD_OK));
	json_decref(veld_test_sync(n.a, VELD_OK));
	json_decref(veld_test_sync(n.b, VELD_OK));

	before = veld_test_export(n.b);
	refused(n.b, veld_record_put(NULL, n.b, cid, "contactregistratie", NULL, CONTACT),
	        "a volunteer cannot write contactregistratie (compartment social)", before);
	/* The header is not the volunteer's to read, let alone to write. */
	snprintf(msg, sizeof msg, "no case %s", cid);
	assert_int_equal(veld_case_update(n.b, cid, "{\"phone\":\"016 00 00 00\"}"), VELD_ENOTFOUND);
	assert_string_equal(veld_errmsg(n.b), msg);
	assert_int_equal(veld_case_consent(n.b, cid, "huiswijs"), VELD_ENOTFOUND);
	{
		char line[256];
		long count = -1;
		snprintf(line, sizeof line, "{\"case\":\"%s\",\"form\":\"contactregistratie\",\"fields\":%s}\n", cid, CONTACT);
		assert_int_equal(veld_import(&count, n.b, line, strlen(line), NULL, NULL), VELD_EDENIED);
		assert_non_null(strstr(veld_errmsg(n.b), "line 1: a volunteer cannot write contactregistratie"));
		assert_int_equal(count, 0);
	}
	veld_free(before);
	/* Its own compartment: a new log entry and an edit of the one shared. */
	assert_int_equal(veld_record_put(NULL, n.b, cid, "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "woonzoek", zoek, "{\"resultaat\":\"geen_reactie\"}"), VELD_OK);
	json_decref(veld_test_sync(n.b, VELD_OK));
	json_decref(veld_test_sync(n.office, VELD_OK));
	net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules__by_role),
		cmocka_unit_test(test_rules__assistant_writes_in_its_region),
		cmocka_unit_test(test_rules__volunteer_writes_huiswijs_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

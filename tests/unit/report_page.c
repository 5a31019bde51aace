/*
** report_page.c — what a report's page says of itself: which year
** jaarcijfers is about when none is asked for (the last full year by the
** run's clock, said in the subtitle), the date it was made and, on an
** office store, the organisation's name (the byline); and counts of one
** in the singular ("1 contact", "In 2016 was er 1 contact").
**
** The clock is the store's OS table's: the test swaps in a fixed one.
** Sentences are read from the HTML, where a paragraph is one line.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t clock_2018(void *ctx)
{
	(void)ctx;
	return 1520683200000LL; /* 2018-03-10 12:00 UTC */
}

static char *page(veld_store *s, const char *params, const char *format)
{
	char *out = NULL;
	if (veld_report(&out, s, "jaarcijfers", params, format))
		fail_msg("jaarcijfers %s: %s", params ? params : "(none)", veld_errmsg(s));
	return out;
}

static void has(const char *out, const char *needle)
{
	if (!strstr(out, needle))
		fail_msg("the page lacks \"%s\":\n%s", needle, out);
}

static void put_contacts(veld_store *s, const char *const *fields)
{
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE];
	if (veld_case_new(cid, s, "{\"name\": \"A\", \"postcode\": \"1500\"}"))
		fail_msg("case: %s", veld_errmsg(s));
	for (; *fields; fields++)
		if (veld_record_put(rid, s, cid, "contactregistratie", NULL, *fields))
			fail_msg("put: %s (%s)", veld_errmsg(s), *fields);
}

/* Without a year, jaarcijfers is about the last full year by the run's
** clock, and says so; the page says when it was made.  Counts of one read
** in the singular ("1 contact", "was er"). */
static void test_report_page__last_full_year_and_singulars(void **state)
{
	static const char *const contacts[] = {
		"{\"datum\": \"2017-05-01\", \"plaats\": \"huisbezoek\", \"problematiek\": [\"financieel\"]}",
		"{\"datum\": \"2017-06-01\", \"plaats\": \"zitdag\", \"problematiek\": [\"materieel\"],"
		" \"detail\": [\"burn_out\", \"stress\", \"werking_sociale_dienst\"]}",
		"{\"datum\": \"2016-02-01\", \"plaats\": \"zitdag\", \"problematiek\": [\"financieel\"], \"detail\": [\"stress\"]}",
		"{\"datum\": \"2018-02-01\", \"plaats\": \"elders\", \"problematiek\": [\"financieel\"]}",
		NULL};
	char *dir = veld_test_tmpdir("rep-page"), *out;
	veld_os os = *veld_os_default();
	veld_store_options o;
	veld_store *s = NULL;
	json_t *r;
	(void)state;
	veld_test_fast_options(&o);
	o.os = &os;
	o.device_role = "office";
	if (veld_store_create(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		fail_msg("create: %s", veld_errmsg(s));
	put_contacts(s, contacts);
	os.xClockMs = clock_2018;

	/* no parameters, or no year: 2017, in March 2018 */
	out = page(s, NULL, "json");
	r = json_loads(out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "title")), "Jaarcijfers 2017");
	assert_string_equal(json_string_value(json_object_get(r, "subtitle")),
	                    "Contactregistraties van 2017 (het laatste volledige jaar), naast 2016.");
	assert_string_equal(json_string_value(json_object_get(r, "byline")), "Opgemaakt op 10/03/2018");
	json_decref(r);
	veld_free(out);
	out = page(s, "{}", "text");
	has(out, "Jaarcijfers 2017\n================\n");
	has(out, "(het laatste volledige jaar)");
	has(out, "\nOpgemaakt op 10/03/2018\n");
	veld_free(out);
	/* one and many */
	out = page(s, "{}", "html");
	has(out, "<h1>Jaarcijfers 2017</h1>");
	has(out, "<p class=\"by\">Opgemaakt op 10/03/2018</p>");
	has(out, "<p>In 2017 waren er 2 contacten: 1 huisbezoek en 1 contact op een zitdag.</p>");
	has(out, "<p>In 2016 was er 1 contact.</p>");
	has(out, "Materiële noden komen voor in 1 (50,0%) contact in 2017 t.o.v. 0 contacten (0,0%) in 2016.");
	has(out, "Vermoeden van burn-out: 1 contact in 2017 t.o.v. 0 in 2016.");
	has(out, "Stress: 1 (50,0%) contact in 2017 t.o.v. 1 contact (100,0%) in 2016.");
	assert_null(strstr(out, " 1 contacten"));
	assert_null(strstr(out, " 1 huisbezoeken"));
	veld_free(out);
	/* a year asked for is that year, without the note */
	out = page(s, "{\"year\": 2018}", "html");
	has(out, "Contactregistraties van 2018, naast 2017.");
	has(out, "<p>In 2018 was er 1 contact: 1 elders.</p>");
	veld_free(out);
	/* the clock moves on: the default follows */
	os.xClockMs = veld_os_default()->xClockMs;
	out = page(s, NULL, "text");
	assert_null(strstr(out, "Jaarcijfers 2017"));
	veld_free(out);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

/* An office store knows the organisation's name (veld_org_init): its
** reports carry it, with the date they were made. */
static void test_report_page__names_the_organisation(void **state)
{
	static const char *const contacts[] = {
		"{\"datum\": \"2017-05-01\", \"plaats\": \"zitdag\", \"problematiek\": [\"financieel\"]}", NULL};
	char *dir = veld_test_tmpdir("rep-org"), *store = veld_test_path(dir, "office"), *hub = veld_test_path(dir, "hub");
	char today[16], want[128], *out;
	veld_store *s = veld_test_office(store, hub);
	time_t now = time(NULL);
	struct tm tm;
	(void)state;
	put_contacts(s, contacts);
	out = page(s, "{\"year\": 2017}", "html");
	strftime(today, sizeof today, "%d/%m/%Y", localtime_r(&now, &tm));
	snprintf(want, sizeof want, "<p class=\"by\">Testorganisatie · opgemaakt op %s</p>", today);
	has(out, want);
	veld_free(out);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(hub);
	free(store);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_page__last_full_year_and_singulars),
		cmocka_unit_test(test_report_page__names_the_organisation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

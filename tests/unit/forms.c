/*
** forms.c — the shipped forms (scripts/forms/NAME.lua) against FORMS.md:
** valid records pass, each rule fails when it should, every failing field is
** listed at once, computed values are exact, and a newer form version reads
** records written with an older one.
*/
#include "testutil.h"

#include "../../scripts/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static veld_form *shipped(const char *name)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	if (veld_form__load_shipped(&f, name, NULL, &err) != VELD_OK)
		fail_msg("cannot load %s: %s", name, err.msg);
	return f;
}

/* Validate; the errors JSON must equal `expect` ("[]" for a valid record). */
static void expect_errors(veld_form *f, const char *fields, const char *ctx, const char *expect)
{
	char *out = NULL;
	int rc = veld_form__validate(&out, f, fields, ctx);
	if (rc != VELD_OK && rc != VELD_EINVALID)
		fail_msg("validate failed (%d): %s", rc, veld_form__errmsg(f));
	assert_non_null(out);
	if (strcmp(out, expect) != 0)
		fail_msg("errors\n  %s\nexpected\n  %s\nfor %s", out, expect, fields);
	assert_int_equal(rc, strcmp(expect, "[]") == 0 ? VELD_OK : VELD_EINVALID);
	free(out);
}

static void expect_valid(veld_form *f, const char *fields, const char *ctx)
{
	expect_errors(f, fields, ctx, "[]");
}

/* The errors must include exactly one with this field and message. */
static void expect_error(veld_form *f, const char *fields, const char *ctx, const char *field,
                         const char *message)
{
	char *out = NULL, needle[1024];
	int rc = veld_form__validate(&out, f, fields, ctx);
	assert_int_equal(rc, VELD_EINVALID);
	snprintf(needle, sizeof needle, "{\"field\":\"%s\",\"message\":\"%s\"}", field, message);
	if (!out || !strstr(out, needle))
		fail_msg("errors %s lack %s", out ? out : veld_form__errmsg(f), needle);
	free(out);
}

static void expect_computed(veld_form *f, const char *fields, const char *ctx, const char *expect)
{
	char *out = NULL;
	int rc = veld_form__compute(&out, f, fields, ctx);
	if (rc != VELD_OK)
		fail_msg("compute failed: %s", veld_form__errmsg(f));
	if (strcmp(out, expect) != 0)
		fail_msg("computed\n  %s\nexpected\n  %s", out, expect);
	free(out);
}

/* ---- contactregistratie ---------------------------------------------------------- */

#define CONTACT_OK "\"datum\":\"2024-03-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]"

static void test_forms__contactregistratie_valid(void **state)
{
	veld_form *f = shipped("contactregistratie");
	(void)state;
	assert_string_equal(veld_form__compartment(f), "social");
	assert_int_equal(veld_form__version(f), 2);
	expect_valid(f, "{" CONTACT_OK "}", NULL);
	expect_valid(f,
	             "{" CONTACT_OK ",\"duur_min\":45,\"initiatief\":\"cliënt\","
	             "\"detail\":[\"schulden\",\"stress\"],"
	             "\"wijze_van_hulpverlening\":[\"informatie_advies\",\"doorverwijzing\"],"
	             "\"doorverwezen_naar\":\"CAW\",\"_form_version\":1}",
	             NULL);
	veld_form__free(f);
}

static void test_forms__contactregistratie_every_failure_at_once(void **state)
{
	veld_form *f = shipped("contactregistratie");
	(void)state;
	expect_errors(f,
	              "{\"datum\":\"2023-02-29\",\"duur_min\":-5,\"problematiek\":[\"financieel\",\"financieel\"],"
	              "\"detail\":[\"verveling\"],\"initiatief\":3}",
	              NULL,
	              "[{\"field\":\"datum\",\"message\":\"Datum moet een geldige datum zijn (JJJJ-MM-DD).\"},"
	              "{\"field\":\"duur_min\",\"message\":\"Duur (minuten) moet minstens 0 zijn.\"},"
	              "{\"field\":\"initiatief\",\"message\":\"Initiatief is geen geldige keuze.\"},"
	              "{\"field\":\"plaats\",\"message\":\"Plaats is verplicht.\"},"
	              "{\"field\":\"problematiek\",\"message\":\"Problematiek bevat een keuze meer dan één keer.\"},"
	              "{\"field\":\"detail\",\"message\":\"Detail is geen geldige keuze.\"}]");
	veld_form__free(f);
}

static void test_forms__contactregistratie_doorverwezen_naar(void **state)
{
	veld_form *f = shipped("contactregistratie");
	(void)state;
	/* required when the help includes a referral */
	expect_errors(f, "{" CONTACT_OK ",\"wijze_van_hulpverlening\":[\"bemiddeling\",\"doorverwijzing\"]}", NULL,
	              "[{\"field\":\"doorverwezen_naar\",\"message\":\"Doorverwezen naar is verplicht.\"}]");
	expect_errors(f, "{" CONTACT_OK ",\"wijze_van_hulpverlening\":[\"doorverwijzing\"],\"doorverwezen_naar\":\"\"}", NULL,
	              "[{\"field\":\"doorverwezen_naar\",\"message\":\"Doorverwezen naar is verplicht.\"}]");
	expect_valid(f, "{" CONTACT_OK ",\"wijze_van_hulpverlening\":[\"doorverwijzing\"],\"doorverwezen_naar\":\"OCMW\"}", NULL);
	/* not asked otherwise: neither required nor checked */
	expect_valid(f, "{" CONTACT_OK ",\"wijze_van_hulpverlening\":[\"bemiddeling\"]}", NULL);
	expect_valid(f, "{" CONTACT_OK ",\"wijze_van_hulpverlening\":[\"bemiddeling\"],\"doorverwezen_naar\":42}", NULL);
	veld_form__free(f);
}

/* Version 2: what happened (verslag), what was agreed (afspraken) and the
** next planned contact.  The contact's own date cannot lie in the future;
** the planned one can.  A record written with version 1 stays valid. */
static void test_forms__contactregistratie_verslag_and_dates(void **state)
{
	veld_form *f = shipped("contactregistratie");
	static const char TODAY[] = "{\"vandaag\":\"2024-03-05\"}";
	(void)state;
	expect_valid(f,
	             "{" CONTACT_OK ",\"verslag\":\"Huisbezoek bij mevrouw.\\nDe aanmaning van de energieleverancier"
	             " besproken; zij schrikt van de brief.\",\"afspraken\":\"Zij bezorgt de afrekening;"
	             " wij bellen de leverancier voor een afbetalingsplan.\",\"volgend_contact\":\"2024-04-02\","
	             "\"_form_version\":2}",
	             TODAY);
	/* a planned date far ahead is fine; the contact itself today is fine */
	expect_valid(f, "{" CONTACT_OK ",\"volgend_contact\":\"2031-12-31\"}", TODAY);
	/* the contact tomorrow is not: a message naming the field, not the value */
	expect_errors(f, "{\"datum\":\"2024-03-06\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"]}", TODAY,
	              "[{\"field\":\"datum\",\"message\":\"Datum kan niet in de toekomst liggen.\"}]");
	/* without a context the device's date is today */
	expect_error(f, "{\"datum\":\"2999-01-01\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"]}", NULL,
	             "datum", "Datum kan niet in de toekomst liggen.");
	expect_error(f, "{" CONTACT_OK ",\"volgend_contact\":\"2024-02-30\"}", TODAY, "volgend_contact",
	             "Volgend contact moet een geldige datum zijn (JJJJ-MM-DD).");
	expect_error(f, "{" CONTACT_OK ",\"verslag\":12}", TODAY, "verslag", "Verslag moet tekst zijn.");
	/* version 1 records (no report, no agreements) stay valid; a version 1
	** record never carried these fields, a version 2 record may not carry
	** fields the form does not know */
	expect_valid(f, "{" CONTACT_OK ",\"_form_version\":1}", TODAY);
	expect_error(f, "{" CONTACT_OK ",\"verslagen\":\"x\",\"_form_version\":2}", TODAY, "verslagen",
	             "Onbekend veld in versie 2 van dit formulier.");
	veld_form__free(f);
}

/* ---- sociale_balans ------------------------------------------------------------------- */

static const char *const DOMAINS[] = {
	"familiale_situatie", "huisvesting", "gezondheid_lichamelijk", "gezondheid_psychisch",
	"inkomen", "budget_schulden", "administratie", "mobiliteit", "opleiding_vorming", "werk",
	"vrije_tijd", "zelfvertrouwen", "communicatie", "ict_vaardigheden", "sociaal_netwerk",
	"organisatie_planning"};

/* A balance scoring every domain 4, with the members of `extra` (an object
** body) set over it. */
static char *balance(const char *extra)
{
	char buf[8192];
	json_t *r = json_pack("{s:s,s:s,s:b}", "afnamedatum", "2024-05-02", "context", "opmaak",
	                      "client_betrokken", 1);
	json_t *more;
	size_t i;
	char *out;
	for (i = 0; i < sizeof DOMAINS / sizeof *DOMAINS; i++) {
		snprintf(buf, sizeof buf, "%s.score", DOMAINS[i]);
		json_object_set_new(r, buf, json_integer(4));
	}
	snprintf(buf, sizeof buf, "{%s}", extra);
	more = json_loads(buf, 0, NULL);
	assert_non_null(more);
	json_object_update(r, more);
	out = json_dumps(r, JSON_COMPACT);
	json_decref(more);
	json_decref(r);
	return out;
}

#define ACTION(id, dom) \
	"\"actievoorstellen." id ".domein\":\"" dom "\",\"actievoorstellen." id ".doelstelling\":\"Stabiel wonen\"," \
	"\"actievoorstellen." id ".actie\":\"Aanvraag sociale woning\",\"actievoorstellen." id ".status\":\"gepland\""

static void test_forms__sociale_balans_valid(void **state)
{
	veld_form *f = shipped("sociale_balans");
	char *r;
	(void)state;
	r = balance("");
	expect_valid(f, r, NULL);
	free(r);
	/* score 2 with an action, a priority with an action, n.v.t. without */
	r = balance("\"huisvesting.score\":2,\"werk.prioriteit\":true,\"werk.score\":\"nvt\","
	            "\"vrije_tijd.score\":\"nvt\",\"huisvesting.destabiliserend\":\"Huur te hoog\","
	            "\"synthese\":\"Woonsituatie eerst\"," ACTION("a1", "huisvesting") "," ACTION("a2", "werk") ","
	            "\"actievoorstellen.a2.verantwoordelijke\":\"partner\",\"actievoorstellen.a2.partner\":\"VDAB\"");
	expect_valid(f, r, NULL);
	free(r);
	veld_form__free(f);
}

static void test_forms__sociale_balans_scores_required(void **state)
{
	veld_form *f = shipped("sociale_balans");
	(void)state;
	expect_error(f, "{\"afnamedatum\":\"2024-05-02\"}", NULL, "huisvesting.score",
	             "Huisvesting – Score is verplicht.");
	expect_error(f, "{\"afnamedatum\":\"2024-05-02\",\"werk.score\":6}", NULL, "werk.score",
	             "Werk – Score is geen geldige keuze.");
	veld_form__free(f);
}

static void test_forms__sociale_balans_rule_action_per_weak_domain(void **state)
{
	veld_form *f = shipped("sociale_balans");
	char *r;
	(void)state;
	/* a score of 1 or 2 without an action for that domain */
	r = balance("\"huisvesting.score\":1,\"inkomen.score\":2," ACTION("a1", "werk"));
	expect_errors(f, r, NULL,
	              "[{\"field\":\"huisvesting\",\"message\":\"Huisvesting: een domein met prioriteit of een score van 2 of lager heeft minstens één actievoorstel nodig.\"},"
	              "{\"field\":\"inkomen\",\"message\":\"Inkomen: een domein met prioriteit of een score van 2 of lager heeft minstens één actievoorstel nodig.\"}]");
	free(r);
	/* a priority domain with a good score still needs one */
	r = balance("\"mobiliteit.prioriteit\":true");
	expect_error(f, r, NULL, "mobiliteit",
	             "Mobiliteit: een domein met prioriteit of een score van 2 of lager heeft minstens één actievoorstel nodig.");
	free(r);
	/* score 3 without priority needs none */
	r = balance("\"mobiliteit.score\":3,\"mobiliteit.prioriteit\":false");
	expect_valid(f, r, NULL);
	free(r);
	veld_form__free(f);
}

static void test_forms__sociale_balans_action_fields(void **state)
{
	veld_form *f = shipped("sociale_balans");
	char *r;
	(void)state;
	r = balance("\"actievoorstellen.a1.domein\":\"huisvesting\",\"actievoorstellen.a1.verantwoordelijke\":\"partner\","
	            "\"actievoorstellen.a1.status\":\"klaar\",\"actievoorstellen.a2\":\"geen item\"");
	expect_errors(f, r, NULL,
	              "[{\"field\":\"actievoorstellen.a1.doelstelling\",\"message\":\"Actievoorstellen – Doelstelling is verplicht.\"},"
	              "{\"field\":\"actievoorstellen.a1.actie\",\"message\":\"Actievoorstellen – Actie is verplicht.\"},"
	              "{\"field\":\"actievoorstellen.a1.partner\",\"message\":\"Actievoorstellen – Partner is verplicht.\"},"
	              "{\"field\":\"actievoorstellen.a1.status\",\"message\":\"Actievoorstellen – Status is geen geldige keuze.\"},"
	              "{\"field\":\"actievoorstellen.a2\",\"message\":\"Actievoorstellen: een item heeft een ongeldige vorm.\"}]");
	free(r);
	veld_form__free(f);
}

static void test_forms__sociale_balans_change_since_previous(void **state)
{
	veld_form *f = shipped("sociale_balans");
	char *r;
	(void)state;
	r = balance("\"huisvesting.score\":3,\"werk.score\":\"nvt\",\"inkomen.score\":2," ACTION("a1", "inkomen"));
	expect_computed(f, r, NULL, "{}");
	expect_computed(f, r,
	                "{\"vorige\":{\"huisvesting.score\":1,\"werk.score\":2,\"inkomen.score\":4,"
	                "\"mobiliteit.score\":\"nvt\",\"_form_version\":1}}",
	                "{\"verandering\":{"
	                "\"administratie\":{\"nu\":4},"
	                "\"budget_schulden\":{\"nu\":4},"
	                "\"communicatie\":{\"nu\":4},"
	                "\"familiale_situatie\":{\"nu\":4},"
	                "\"gezondheid_lichamelijk\":{\"nu\":4},"
	                "\"gezondheid_psychisch\":{\"nu\":4},"
	                "\"huisvesting\":{\"nu\":3,\"verschil\":2,\"vorige\":1},"
	                "\"ict_vaardigheden\":{\"nu\":4},"
	                "\"inkomen\":{\"nu\":2,\"verschil\":-2,\"vorige\":4},"
	                "\"mobiliteit\":{\"nu\":4,\"vorige\":\"nvt\"},"
	                "\"opleiding_vorming\":{\"nu\":4},"
	                "\"organisatie_planning\":{\"nu\":4},"
	                "\"sociaal_netwerk\":{\"nu\":4},"
	                "\"vrije_tijd\":{\"nu\":4},"
	                "\"werk\":{\"nu\":\"nvt\",\"vorige\":2},"
	                "\"zelfvertrouwen\":{\"nu\":4}}}");
	free(r);
	veld_form__free(f);
}

/* ---- woonzoek and zoekprofiel ------------------------------------------------------------- */

static void test_forms__woonzoek(void **state)
{
	veld_form *f = shipped("woonzoek");
	(void)state;
	assert_string_equal(veld_form__compartment(f), "huiswijs");
	expect_valid(f,
	             "{\"datum\":\"2024-04-10\",\"duur_min\":60,\"activiteit\":\"bezichtiging\",\"pand_postcode\":2060,"
	             "\"type\":\"appartement\",\"slaapkamers\":2,\"huurprijs\":\"825.00\",\"bron\":\"immoweb\","
	             "\"verhuurder\":\"particulier\",\"resultaat\":\"wachtlijst\"}",
	             NULL);
	/* reden_afwijzing: required when afgewezen */
	expect_errors(f, "{\"datum\":\"2024-04-10\",\"resultaat\":\"afgewezen\"}", NULL,
	              "[{\"field\":\"reden_afwijzing\",\"message\":\"Reden van afwijzing is verplicht.\"}]");
	expect_valid(f, "{\"datum\":\"2024-04-10\",\"resultaat\":\"afgewezen\",\"reden_afwijzing\":\"inkomen_ocmw\"}", NULL);
	/* and not asked otherwise */
	expect_valid(f, "{\"datum\":\"2024-04-10\",\"resultaat\":\"geen_reactie\"}", NULL);
	expect_errors(f, "{\"datum\":\"2024-04-10\",\"pand_postcode\":999,\"huurprijs\":\"825.555\"}", NULL,
	              "[{\"field\":\"pand_postcode\",\"message\":\"Postcode van het pand moet minstens 1000 zijn.\"},"
	              "{\"field\":\"huurprijs\",\"message\":\"Huurprijs per maand moet een getal zijn met hoogstens 2 cijfers na de komma.\"}]");
	veld_form__free(f);
}

static void test_forms__zoekprofiel_rent_premium(void **state)
{
	veld_form *f = shipped("zoekprofiel");
	(void)state;
	assert_string_equal(veld_form__compartment(f), "huiswijs");
	expect_valid(f, "{\"gezinsgrootte\":3,\"max_huur\":750,\"regios\":[\"antwerpen\"],\"wachtlijst_sinds\":\"2020-06-15\"}",
	             "{\"vandaag\":\"2024-06-14\"}");
	expect_computed(f, "{\"gezinsgrootte\":3,\"wachtlijst_sinds\":\"2020-06-15\"}", "{\"vandaag\":\"2024-06-14\"}",
	                "{\"huurpremie\":{\"recht\":false,\"vanaf\":\"2024-06-15\"}}");
	expect_computed(f, "{\"gezinsgrootte\":3,\"wachtlijst_sinds\":\"2020-06-15\"}", "{\"vandaag\":\"2024-06-15\"}",
	                "{\"huurpremie\":{\"recht\":true,\"vanaf\":\"2024-06-15\"}}");
	expect_computed(f, "{\"gezinsgrootte\":3}", "{\"vandaag\":\"2024-06-15\"}", "{}");
	/* rule: not on the list in the future */
	expect_errors(f, "{\"gezinsgrootte\":3,\"wachtlijst_sinds\":\"2024-07-01\"}", "{\"vandaag\":\"2024-06-15\"}",
	              "[{\"field\":\"wachtlijst_sinds\",\"message\":\"De inschrijving op de wachtlijst kan niet in de toekomst liggen.\"}]");
	expect_errors(f, "{}", NULL, "[{\"field\":\"gezinsgrootte\",\"message\":\"Gezinsgrootte (personen) is verplicht.\"}]");
	veld_form__free(f);
}

/* ---- vrijetijdspas ---------------------------------------------------------------------------- */

/* Two dependants, one with a 66% disability: 3 shares. */
#define HOUSEHOLD "\"aanvraagdatum\":\"2024-03-01\",\"grond\":\"inkomenstoets\"," \
	"\"personen_ten_laste.p1.voornaam\":\"Amira\",\"personen_ten_laste.p2.voornaam\":\"Bram\"," \
	"\"personen_ten_laste.p2.handicap_66pct\":true"

static void test_forms__vrijetijdspas_income_limit(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	/* 25630.67 + 3 x 4744.94 = 39865.49: at the limit granted, a cent over refused */
	expect_computed(f, "{" HOUSEHOLD ",\"belastbaar_inkomen\":\"39865.49\"}", NULL,
	                "{\"beslissing\":\"toegekend\",\"geldig_tot\":\"2025-02-28\",\"inkomensgrens\":\"39865.49\"}");
	expect_computed(f, "{" HOUSEHOLD ",\"belastbaar_inkomen\":39865.5}", NULL,
	                "{\"beslissing\":\"geweigerd\",\"geldig_tot\":\"2025-02-28\",\"inkomensgrens\":\"39865.49\"}");
	expect_computed(f, "{" HOUSEHOLD ",\"belastbaar_inkomen\":\"39865,50\"}", NULL,
	                "{\"beslissing\":\"geweigerd\",\"geldig_tot\":\"2025-02-28\",\"inkomensgrens\":\"39865.49\"}");
	/* without the disability: 2 shares */
	expect_computed(f,
	                "{\"aanvraagdatum\":\"2024-03-01\",\"grond\":\"inkomenstoets\",\"belastbaar_inkomen\":35120.55,"
	                "\"personen_ten_laste.p1.voornaam\":\"Amira\",\"personen_ten_laste.p2.voornaam\":\"Bram\"}",
	                NULL, "{\"beslissing\":\"toegekend\",\"geldig_tot\":\"2025-02-28\",\"inkomensgrens\":\"35120.55\"}");
	expect_valid(f, "{" HOUSEHOLD ",\"belastbaar_inkomen\":\"39865.50\"}", NULL);
	/* income required with the income test */
	expect_errors(f, "{" HOUSEHOLD "}", NULL,
	              "[{\"field\":\"belastbaar_inkomen\",\"message\":\"Gezamenlijk belastbaar inkomen is verplicht.\"}]");
	veld_form__free(f);
}

static void test_forms__vrijetijdspas_ground(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	expect_computed(f, "{\"aanvraagdatum\":\"2024-01-01\",\"grond\":\"leefloon\",\"belastbaar_inkomen\":\"99999\"}", NULL,
	                "{\"beslissing\":\"toegekend\",\"geldig_tot\":\"2024-12-31\"}");
	expect_valid(f, "{\"aanvraagdatum\":\"2024-01-01\",\"grond\":\"verhoogde_tegemoetkoming\"}", NULL);
	veld_form__free(f);
}

static void test_forms__vrijetijdspas_rule_year_parameters(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	expect_errors(f, "{\"aanvraagdatum\":\"2031-03-01\",\"grond\":\"inkomenstoets\",\"belastbaar_inkomen\":\"1000\"}",
	              "{\"vandaag\":\"2031-12-31\"}", /* a date that has passed by then */
	              "[{\"field\":\"aanvraagdatum\",\"message\":\"Er zijn nog geen inkomensgrenzen voor het jaar van de aanvraagdatum in de parametertabel.\"}]");
	veld_form__free(f);
}

#define REFUND(id, type, bedrag, pct, plafond, terug) \
	"\"terugbetalingen." id ".activiteit_type\":\"" type "\",\"terugbetalingen." id ".bedrag\":\"" bedrag "\"," \
	"\"terugbetalingen." id ".percentage\":" pct ",\"terugbetalingen." id ".jaarplafond\":\"" plafond "\"," \
	"\"terugbetalingen." id ".terugbetaald\":\"" terug "\""

/* Dates of what happened are declared `past`: not after ctx.vandaag, in
** every shipped form; planned dates (a termijn, an einddatum) may be. */
static void test_forms__dates_of_what_happened_not_in_the_future(void **state)
{
	static const char TODAY[] = "{\"vandaag\":\"2024-05-02\"}";
	veld_form *f = shipped("sociale_balans");
	veld_err err = {0, ""};
	char *r;
	(void)state;
	r = balance("\"afnamedatum\":\"2024-05-03\"");
	expect_errors(f, r, TODAY, "[{\"field\":\"afnamedatum\",\"message\":\"Afnamedatum kan niet in de toekomst liggen.\"}]");
	free(r);
	r = balance("\"huisvesting.score\":2," ACTION("a1", "huisvesting") ",\"actievoorstellen.a1.termijn\":\"2031-01-01\"");
	expect_valid(f, r, TODAY);
	free(r);
	veld_form__free(f);

	f = shipped("woonzoek");
	expect_valid(f, "{\"datum\":\"2024-05-02\"}", TODAY);
	expect_errors(f, "{\"datum\":\"2024-05-03\"}", TODAY,
	              "[{\"field\":\"datum\",\"message\":\"Datum kan niet in de toekomst liggen.\"}]");
	veld_form__free(f);

	/* in a repeating group: every item, named by its path and its group's label */
	f = shipped("vrijetijdspas");
	expect_errors(f,
	              "{\"aanvraagdatum\":\"2024-05-01\",\"grond\":\"leefloon\"," REFUND("t1", "sport", "10", "50", "150", "5") ","
	              REFUND("t2", "sport", "10", "50", "150", "5") ",\"terugbetalingen.t1.datum\":\"2024-05-01\","
	              "\"terugbetalingen.t2.datum\":\"2024-06-01\"}",
	              TODAY,
	              "[{\"field\":\"terugbetalingen.t2.datum\",\"message\":\"Terugbetalingen \xe2\x80\x93 Datum kan niet in de toekomst liggen.\"}]");
	veld_form__free(f);

	/* budgetplan: a plan may start and end later */
	f = shipped("budgetplan");
	assert_int_not_equal(veld_form__validate(&r, f, "{\"vorm\":\"budgetbegeleiding\",\"startdatum\":\"2031-06-01\","
	                                              "\"einddatum\":\"2032-01-01\"}", TODAY), VELD_ERROR);
	assert_null(strstr(r, "toekomst"));
	free(r);
	veld_form__free(f);

	/* an author's mistake */
	f = NULL;
	assert_int_equal(veld_form__load(&f, "x",
	                                 "form { name = 'x', version = 1, compartment = 'social', label = 'X',\n"
	                                 " fields = { field.date { 'd', label = 'D', past = 3 } } }",
	                                 strlen("form { name = 'x', version = 1, compartment = 'social', label = 'X',\n"
	                                        " fields = { field.date { 'd', label = 'D', past = 3 } } }"),
	                                 NULL, &err),
	                 VELD_EINVALID);
	assert_non_null(strstr(err.msg, "past must be true, false or a message"));
	veld_form__free(f);
}

static void test_forms__vrijetijdspas_rule_refund_percentage(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	expect_valid(f, "{\"aanvraagdatum\":\"2024-01-01\",\"grond\":\"leefloon\"," REFUND("t1", "sport", "120.00", "50", "150", "60.00") "}", NULL);
	expect_errors(f, "{\"aanvraagdatum\":\"2024-01-01\",\"grond\":\"leefloon\"," REFUND("t1", "sport", "120.00", "50", "150", "60.01") "}", NULL,
	              "[{\"field\":\"terugbetalingen.t1.terugbetaald\",\"message\":\"Terugbetaald is meer dan het percentage van het bedrag.\"}]");
	veld_form__free(f);
}

static void test_forms__vrijetijdspas_rule_yearly_ceiling(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	expect_errors(f,
	              "{\"aanvraagdatum\":\"2024-01-01\",\"grond\":\"leefloon\","
	              REFUND("t1", "sport", "200", "50", "150", "100") "," REFUND("t2", "sport", "120", "50", "150", "60") ","
	              REFUND("t3", "cultuur", "100", "80", "150", "80") "}",
	              NULL,
	              "[{\"field\":\"terugbetalingen.t2.terugbetaald\",\"message\":\"De terugbetalingen voor dit soort activiteit overschrijden het jaarplafond.\"}]");
	veld_form__free(f);
}

static void test_forms__vrijetijdspas_rule_refunds_need_a_granted_pass(void **state)
{
	veld_form *f = shipped("vrijetijdspas");
	(void)state;
	expect_errors(f, "{" HOUSEHOLD ",\"belastbaar_inkomen\":\"50000\"," REFUND("t1", "sport", "100", "50", "150", "50") "}", NULL,
	              "[{\"field\":\"terugbetalingen\",\"message\":\"Terugbetalingen zijn enkel mogelijk met een toegekende vrijetijdspas.\"}]");
	veld_form__free(f);
}

/* ---- budgetplan ---------------------------------------------------------------------------------- */

#define PLAN_MONEY \
	"\"inkomsten.i1.omschrijving\":\"Loon\",\"inkomsten.i1.bedrag\":\"1500.00\"," \
	"\"inkomsten.i2.omschrijving\":\"Kinderbijslag\",\"inkomsten.i2.bedrag\":\"450.30\",\"inkomsten.i2.frequentie\":\"kwartaal\"," \
	"\"vaste_kosten.k1.omschrijving\":\"Huur\",\"vaste_kosten.k1.bedrag\":\"750\"," \
	"\"vaste_kosten.k2.omschrijving\":\"Verzekering\",\"vaste_kosten.k2.bedrag\":\"240\",\"vaste_kosten.k2.frequentie\":\"jaar\"," \
	"\"schulden.s1.schuldeiser\":\"Energiebedrijf\",\"schulden.s1.type\":\"energie\",\"schulden.s1.hoofdsom\":\"2400\",\"schulden.s1.status\":\"afbetalingsplan\"," \
	"\"aflossingen.a1.schuldeiser\":\"Energiebedrijf\",\"aflossingen.a1.maandbedrag\":\"100\",\"aflossingen.a1.termijnen\":24"

static void test_forms__budgetplan_balanced(void **state)
{
	veld_form *f = shipped("budgetplan");
	(void)state;
	/* income 1500 + 450.30/3 = 1650.10; costs 750 + 20 + 100; leefgeld 150/week = 650 a month:
	** balance 130.10 */
	expect_valid(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                ",\"leefgeld.bedrag\":\"150\",\"leefgeld.frequentie\":\"week\"}", NULL);
	expect_computed(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                   ",\"leefgeld.bedrag\":\"150\",\"leefgeld.frequentie\":\"week\"}", NULL,
	                "{\"inkomsten_per_maand\":\"1650.10\",\"maandbalans\":\"130.10\",\"uitgaven_per_maand\":\"1520.00\"}");
	veld_form__free(f);
}

static void test_forms__budgetplan_rule_shortfall_named(void **state)
{
	veld_form *f = shipped("budgetplan");
	(void)state;
	/* leefgeld 180/week = 780 a month: shortfall 1650.10 - 1650.00 - 20 - ... = 0.10 short?
	** income 1650.10, costs 870 + 780 = 1650: balanced by 0.10 */
	expect_valid(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                ",\"leefgeld.bedrag\":\"180\",\"leefgeld.frequentie\":\"week\"}", NULL);
	/* 180.03 a week: 780.13 a month, short 0.03 */
	expect_errors(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                 ",\"leefgeld.bedrag\":\"180.03\",\"leefgeld.frequentie\":\"week\"}", NULL,
	              "[{\"field\":\"maandbalans\",\"message\":\"Het plan sluit niet: de uitgaven zijn hoger dan de inkomsten.\"}]");
	/* a large shortfall, monthly leefgeld */
	expect_errors(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                 ",\"leefgeld.bedrag\":\"2000\"}", NULL,
	              "[{\"field\":\"maandbalans\",\"message\":\"Het plan sluit niet: de uitgaven zijn hoger dan de inkomsten.\"}]");
	expect_computed(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-01-01\"," PLAN_MONEY
	                   ",\"leefgeld.bedrag\":\"2000\"}", NULL,
	                "{\"inkomsten_per_maand\":\"1650.10\",\"maandbalans\":\"-1219.90\",\"uitgaven_per_maand\":\"2870.00\"}");
	veld_form__free(f);
}

static void test_forms__budgetplan_rule_seven_years(void **state)
{
	veld_form *f = shipped("budgetplan");
	(void)state;
	expect_valid(f, "{\"vorm\":\"csr\",\"startdatum\":\"2024-02-29\",\"einddatum\":\"2031-02-28\"}", NULL);
	expect_errors(f, "{\"vorm\":\"csr\",\"startdatum\":\"2024-02-29\",\"einddatum\":\"2031-03-01\"}", NULL,
	              "[{\"field\":\"einddatum\",\"message\":\"Een collectieve schuldenregeling duurt hoogstens 7 jaar: de einddatum ligt te ver na de startdatum.\"}]");
	expect_errors(f, "{\"vorm\":\"schuldbemiddeling\",\"startdatum\":\"2024-05-10\",\"einddatum\":\"2031-05-11\"}", NULL,
	              "[{\"field\":\"einddatum\",\"message\":\"Een schuldbemiddeling duurt hoogstens 7 jaar: de einddatum ligt te ver na de startdatum.\"}]");
	/* budget guidance is not limited; the end date is required for the two limited forms */
	expect_valid(f, "{\"vorm\":\"budgetbegeleiding\",\"startdatum\":\"2024-05-10\",\"einddatum\":\"2040-01-01\"}", NULL);
	expect_errors(f, "{\"vorm\":\"csr\",\"startdatum\":\"2024-05-10\"}", NULL,
	              "[{\"field\":\"einddatum\",\"message\":\"Einddatum is verplicht.\"}]");
	veld_form__free(f);
}

static void test_forms__budgetplan_rule_end_after_start(void **state)
{
	veld_form *f = shipped("budgetplan");
	(void)state;
	expect_errors(f, "{\"vorm\":\"budgetbeheer\",\"startdatum\":\"2024-05-10\",\"einddatum\":\"2024-05-09\"}", NULL,
	              "[{\"field\":\"einddatum\",\"message\":\"De einddatum ligt vóór de startdatum.\"}]");
	veld_form__free(f);
}

/* ---- versions ------------------------------------------------------------------------------------- */

static const char V1[] =
	"form { name = 'huisbezoek', version = 1, compartment = 'social', label = 'Huisbezoek',\n"
	"  fields = {\n"
	"    field.date { 'datum', label = 'Datum', required = true },\n"
	"    field.text { 'indruk', label = 'Indruk' },\n"
	"    field.group { 'acties', label = 'Acties', repeating = true,\n"
	"      fields = { field.text { 'wat', label = 'Wat' }, field.bool { 'dringend', label = 'Dringend' } } },\n"
	"  } }\n";
/* version 2 drops `indruk` and acties.dringend, adds an optional field */
static const char V2[] =
	"form { name = 'huisbezoek', version = 2, compartment = 'social', label = 'Huisbezoek',\n"
	"  fields = {\n"
	"    field.date { 'datum', label = 'Datum', required = true },\n"
	"    field.int { 'aanwezigen', label = 'Aanwezigen', min = 1 },\n"
	"    field.group { 'acties', label = 'Acties', repeating = true,\n"
	"      fields = { field.text { 'wat', label = 'Wat' } } },\n"
	"  } }\n";

static void test_forms__newer_version_reads_older_record(void **state)
{
	veld_form *v1 = NULL, *v2 = NULL;
	veld_err err = {0, ""};
	char *out = NULL;
	static const char old_record[] =
		"{\"_form_version\":1,\"datum\":\"2023-11-20\",\"indruk\":\"Rommelig\","
		"\"acties.x1.wat\":\"Bellen\",\"acties.x1.dringend\":true}";
	(void)state;
	assert_int_equal(veld_form__load(&v1, "huisbezoek", V1, strlen(V1), NULL, &err), VELD_OK);
	assert_int_equal(veld_form__load(&v2, "huisbezoek", V2, strlen(V2), NULL, &err), VELD_OK);
	assert_int_equal(veld_form__version(v2), 2);
	expect_valid(v1, old_record, NULL);
	/* the newer version reads it: no errors for the fields it no longer has */
	expect_valid(v2, old_record, NULL);
	/* ... and reports them, so they are kept and shown as such */
	assert_int_equal(veld_form__unknown_json(&out, v2, old_record), VELD_OK);
	assert_string_equal(out, "[\"acties.x1.dringend\",\"indruk\"]");
	free(out);
	/* a record that claims version 2 may not carry them */
	expect_errors(v2, "{\"_form_version\":2,\"datum\":\"2024-01-02\",\"indruk\":\"x\"}", NULL,
	              "[{\"field\":\"indruk\",\"message\":\"Onbekend veld in versie 2 van dit formulier.\"}]");
	/* a record from a newer version than this device knows is read too */
	expect_valid(v1, "{\"_form_version\":2,\"datum\":\"2024-01-02\",\"aanwezigen\":3}", NULL);
	/* shipped forms as well */
	veld_form__free(v1);
	v1 = shipped("contactregistratie");
	expect_valid(v1, "{\"_form_version\":0," CONTACT_OK ",\"verouderd_veld\":\"x\"}", NULL);
	veld_form__free(v1);
	veld_form__free(v2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms__contactregistratie_valid),
		cmocka_unit_test(test_forms__contactregistratie_every_failure_at_once),
		cmocka_unit_test(test_forms__contactregistratie_doorverwezen_naar),
		cmocka_unit_test(test_forms__contactregistratie_verslag_and_dates),
		cmocka_unit_test(test_forms__sociale_balans_valid),
		cmocka_unit_test(test_forms__sociale_balans_scores_required),
		cmocka_unit_test(test_forms__sociale_balans_rule_action_per_weak_domain),
		cmocka_unit_test(test_forms__sociale_balans_action_fields),
		cmocka_unit_test(test_forms__sociale_balans_change_since_previous),
		cmocka_unit_test(test_forms__woonzoek),
		cmocka_unit_test(test_forms__zoekprofiel_rent_premium),
		cmocka_unit_test(test_forms__vrijetijdspas_income_limit),
		cmocka_unit_test(test_forms__vrijetijdspas_ground),
		cmocka_unit_test(test_forms__vrijetijdspas_rule_year_parameters),
		cmocka_unit_test(test_forms__dates_of_what_happened_not_in_the_future),
		cmocka_unit_test(test_forms__vrijetijdspas_rule_refund_percentage),
		cmocka_unit_test(test_forms__vrijetijdspas_rule_yearly_ceiling),
		cmocka_unit_test(test_forms__vrijetijdspas_rule_refunds_need_a_granted_pass),
		cmocka_unit_test(test_forms__budgetplan_balanced),
		cmocka_unit_test(test_forms__budgetplan_rule_shortfall_named),
		cmocka_unit_test(test_forms__budgetplan_rule_seven_years),
		cmocka_unit_test(test_forms__budgetplan_rule_end_after_start),
		cmocka_unit_test(test_forms__newer_version_reads_older_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

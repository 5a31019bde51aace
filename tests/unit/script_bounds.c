/*
** script_bounds.c — what C builds from a script's values stays bounded and
** says nothing of the client (scripts/, the limits of scripts.h).
**
** A string a script holds once may be referenced many times: converted to
** JSON, rendered or stored, it is bounded as it grows and the call fails
** naming the limit.  Messages name the field and the rule, never a value,
** and quote a path or a name cut short.  Names and paths a script hands to
** C hold no NUL or control character.  A call that runs past its wall
** clock stops at the next hook, whatever the instruction budget says.
*/
#include "testutil.h"

#include "../../scripts/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG 100000 /* bytes of a hostile value */

/* A string of `n` copies of `c` (malloc'd). */
static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Validate `record` with form `f`; the error list (caller frees). */
static char *errors_of(veld_form *f, const char *record, int want)
{
	char *out = NULL;
	int rc = veld_form__validate(&out, f, record, "{\"vandaag\":\"2020-01-01\"}");
	if (rc != want)
		fail_msg("validate: %d, wanted %d: %s", rc, want, veld_form__errmsg(f));
	return out;
}

/* ---- messages name the field, never the value -------------------------------------------- */

static void test_script_bounds__messages_quote_no_values(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *big = filled(BIG, 'g'), *rec = malloc(2 * BIG + 512), *out;
	(void)state;
	assert_non_null(rec);
	assert_int_equal(veld_form__load_shipped(&f, "contactregistratie", NULL, &err), VELD_OK);
	/* a choice, a duplicated multi-choice option: the field, no value */
	out = errors_of(f, "{\"datum\":\"2017-03-02\",\"plaats\":\"GEHEIM-ADRES\",\"initiatief\":\"GEHEIM\","
	                   "\"problematiek\":[\"financieel\",\"financieel\"]}", VELD_EINVALID);
	assert_null(strstr(out, "GEHEIM"));
	assert_null(strstr(out, "\xe2\x80\x98")); /* no quoted value at all */
	assert_non_null(strstr(out, "\"Plaats is geen geldige keuze.\""));
	assert_non_null(strstr(out, "\"Initiatief is geen geldige keuze.\""));
	assert_non_null(strstr(out, "\"Problematiek bevat een keuze meer dan één keer.\""));
	free(out);
	/* a value of 100 kB is not echoed either */
	snprintf(rec, 2 * BIG + 512, "{\"datum\":\"2017-03-02\",\"plaats\":\"%s\",\"problematiek\":[\"financieel\"]}", big);
	out = errors_of(f, rec, VELD_EINVALID);
	assert_true(strlen(out) < 200);
	free(out);
	veld_form__free(f);

	/* an item id of 100 kB: refused as a key, neither echoed nor stored */
	assert_int_equal(veld_form__load_shipped(&f, "sociale_balans", NULL, &err), VELD_OK);
	snprintf(rec, 2 * BIG + 512, "{\"afnamedatum\":\"2019-01-02\",\"actievoorstellen\":{\"%s\":{\"status\":\"x\"}}}", big);
	out = errors_of(f, rec, VELD_EINVALID);
	assert_null(strstr(out, "ggggggggggggggggggggggggggggggggggggggggggggggggg"));
	assert_non_null(strstr(out, "Actievoorstellen: een item heeft een ongeldige sleutel."));
	free(out);
	/* a path the engine cannot fold: quoted, cut */
	snprintf(rec, 2 * BIG + 512, "{\"%s.x\": 1}", big);
	assert_int_equal(veld_form__validate(&out, f, rec, NULL), VELD_EINVALID);
	assert_null(out);
	assert_true(strlen(veld_form__errmsg(f)) < 120);
	veld_form__free(f);
	free(rec);
	free(big);
}

static void test_script_bounds__rule_messages_are_cut(void **state)
{
	static const char src[] =
		"form { name = 'lang', version = 1, compartment = 'social', label = 'Lang',\n"
		"  fields = { field.text { 'x', label = 'X' } },\n"
		"  rules = { function(r, err)\n"
		"    err('x', ('\\u{e9}'):rep(100000))\n"
		"    err(('p'):rep(10000), 'kort')\n"
		"  end } }\n";
	veld_form *f = NULL;
	veld_err err = {0, ""};
	json_t *list, *e;
	char *out;
	const char *m;
	(void)state;
	assert_int_equal(veld_form__load(&f, "lang", src, strlen(src), NULL, &err), VELD_OK);
	out = errors_of(f, "{}", VELD_EINVALID);
	list = json_loads(out, 0, NULL);
	assert_int_equal(json_array_size(list), 2);
	/* the message: at most VELD_FORM_MESSAGE_MAX bytes, cut between characters */
	e = json_array_get(list, 0);
	m = json_string_value(json_object_get(e, "message"));
	assert_true(strlen(m) <= VELD_FORM_MESSAGE_MAX && strlen(m) > VELD_FORM_MESSAGE_MAX - 8);
	assert_string_equal(m + strlen(m) - 3, "\xe2\x80\xa6");
	assert_memory_equal(m, "\xc3\xa9\xc3\xa9", 4);
	/* the path: at most a field path long */
	e = json_array_get(list, 1);
	assert_true(json_string_length(json_object_get(e, "field")) <= VELD_ENGINE_PATH_BYTES);
	assert_string_equal(json_string_value(json_object_get(e, "message")), "kort");
	json_decref(list);
	free(out);
	veld_form__free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_script_bounds__messages_quote_no_values),
		cmocka_unit_test(test_script_bounds__rule_messages_are_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

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

/* ---- what C converts and renders grows within a bound ------------------------------------ */

static const char amp_src[] =
	"form { name = 'amp', version = 1, compartment = 'social', label = 'Amp',\n"
	"  fields = { field.text { 'modus', label = 'Modus' } },\n"
	"  computed = { groot = function(r)\n"
	"    if r.modus ~= 'groot' then return nil end\n"
	"    local s, t = ('x'):rep(200000), {} for i = 1, 100 do t[i] = s end return t end,\n"
	"    nul = function(r) if r.modus == 'nul' then return 'a\\0b' end end },\n"
	"  rules = { function(r, err)\n"
	"    if r.modus == 'veel' then local m = ('y'):rep(3000) for i = 1, 1000 do err('modus', m) end end\n"
	"    if r.modus == 'lus' then while true do end end\n"
	"  end } }\n";

static void test_script_bounds__form_results_bounded(void **state)
{
	/* the wall clock long: the bound, not the clock, must end each call */
	veld_sandbox_limits lim = {0, 0, 60000, 0, 0, NULL};
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *out = NULL, *vals = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "amp", amp_src, strlen(amp_src), &lim, &err), VELD_OK);
	/* a computed value of 100 references to one string: 20 MB of JSON */
	assert_int_equal(veld_form__compute(&out, f, "{\"modus\":\"groot\"}", NULL), VELD_ERROR);
	assert_null(out);
	assert_non_null(strstr(veld_form__errmsg(f), "amp.lua: result exceeds 1 MiB as JSON"));
	/* a check is valid, its computed values are not there (see scripts.h) */
	assert_int_equal(veld_form__check(&out, &vals, f, "{\"modus\":\"groot\"}", NULL), VELD_OK);
	assert_null(vals);
	assert_non_null(strstr(veld_form__errmsg(f), "amp.lua: result exceeds 1 MiB as JSON"));
	free(out);
	/* a thousand failures of a long message: each cut, the list bounded */
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"veel\"}", NULL), VELD_ERROR);
	assert_null(out);
	if (!strstr(veld_form__errmsg(f), "result exceeds 1 MiB as JSON"))
		fail_msg("%s", veld_form__errmsg(f));
	/* a NUL in a value C would read as a C string */
	assert_int_equal(veld_form__compute(&out, f, "{\"modus\":\"nul\"}", NULL), VELD_ERROR);
	assert_non_null(strstr(veld_form__errmsg(f), "a string holds a NUL byte"));
	/* and the form works on */
	assert_int_equal(veld_form__compute(&out, f, "{\"modus\":\"klein\"}", NULL), VELD_OK);
	assert_string_equal(out, "{}");
	free(out);
	veld_form__free(f);
}

static void test_script_bounds__form_wall_clock(void **state)
{
	/* a budget that never runs out: the clock stops the callback */
	veld_sandbox_limits lim = {0, (uint64_t)1 << 60, 200, 0, 0, NULL};
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *out = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "amp", amp_src, strlen(amp_src), &lim, &err), VELD_OK);
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"lus\"}", NULL), VELD_ERROR);
	assert_null(out);
	assert_non_null(strstr(veld_form__errmsg(f), "amp.lua:9: time limit exceeded (200 ms)"));
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"x\"}", NULL), VELD_OK);
	free(out);
	veld_form__free(f);
}

/* Render `result` (JSON text) as `format` within `max` bytes. */
static int render(char **out, const char *result, const char *format, size_t max, veld_err *err)
{
	json_t *r = json_loads(result, 0, NULL);
	int rc;
	assert_non_null(r);
	rc = veld_report__render(out, r, format, "amp.lua", max, err);
	json_decref(r);
	return rc;
}

static void test_script_bounds__rendering_bounded(void **state)
{
	veld_err err = {0, ""};
	char *wide = filled(50000, 'w'), *lt = filled(300000, '<'), *q = filled(600000, '"'), *doc, *out = NULL;
	size_t i, n = 0, cap = 2 * 1000000;
	json_t *r;
	(void)state;
	doc = malloc(cap);
	assert_non_null(doc);
	/* one wide cell pads every row of a text table: 51 kB of JSON, 5 MB of text */
	n += (size_t)snprintf(doc + n, cap - n, "{\"title\":\"t\",\"sections\":[{\"table\":{\"columns\":[\"a\",\"b\"],"
	                                       "\"rows\":[[\"%s\",1]", wide);
	for (i = 0; i < 100; i++)
		n += (size_t)snprintf(doc + n, cap - n, ",[\"k\",%zu]", i);
	snprintf(doc + n, cap - n, "]}}]}");
	assert_int_equal(render(&out, doc, "text", 1 << 20, &err), VELD_EINVALID);
	assert_null(out);
	assert_string_equal(err.msg, "amp.lua: output exceeds 1 MiB");
	assert_int_equal(render(&out, doc, "json", 1 << 20, &err), VELD_OK);
	assert_true(strlen(out) < 1 << 20);
	free(out);
	assert_int_equal(render(&out, doc, "text", 0, &err), VELD_OK); /* the default bound: 64 MiB */
	free(out);
	/* escaping grows HTML four times, CSV twice */
	snprintf(doc, cap, "{\"title\":\"%s\",\"sections\":[]}", lt);
	assert_int_equal(render(&out, doc, "html", 1 << 20, &err), VELD_EINVALID);
	assert_string_equal(err.msg, "amp.lua: output exceeds 1 MiB");
	r = json_pack("{s:s, s:[{s:{s:[s], s:[[s]]}}]}", "title", "t", "sections", "table", "columns", "a", "rows", q);
	assert_non_null(r);
	assert_int_equal(veld_report__render(&out, r, "csv", "amp.lua", 1 << 20, &err), VELD_EINVALID);
	assert_string_equal(err.msg, "amp.lua: output exceeds 1 MiB");
	assert_int_equal(veld_report__render(&out, r, "csv", "amp.lua", 2 << 20, &err), VELD_OK);
	free(out);
	json_decref(r);
	free(doc);
	free(wide);
	free(lt);
	free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_script_bounds__messages_quote_no_values),
		cmocka_unit_test(test_script_bounds__rule_messages_are_cut),
		cmocka_unit_test(test_script_bounds__form_results_bounded),
		cmocka_unit_test(test_script_bounds__form_wall_clock),
		cmocka_unit_test(test_script_bounds__rendering_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** form_engine.c — the form engine (scripts/form.c, scripts/prelude.lua):
** the schema export against golden files, form-author mistakes reported
** with file and line, record input shapes, and scripts that fail at run
** time.
**
** Golden files: tests/resources/forms-NAME.json.  After an intended change
** of a shipped form, regenerate them with VELD_UPDATE_GOLDEN=1 and review
** the diff.
*/
#include "testutil.h"

#include "../../scripts/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *resource_path(const char *name)
{
	/* this file lives in tests/unit/; resources in tests/resources/ */
	const char *file = getenv("VELD_TEST_RESOURCES") ? getenv("VELD_TEST_RESOURCES") : __FILE__;
	const char *slash = strrchr(file, '/');
	size_t dir = slash ? (size_t)(slash - file) : 0;
	char *p = malloc(dir + strlen(name) + 32);
	assert_non_null(p);
	sprintf(p, "%.*s/../resources/%s", (int)dir, file, name);
	return p;
}

/* ---- schema export ------------------------------------------------------------------ */

static void test_form_engine__schema_golden_files(void **state)
{
	const char *name, *src;
	size_t i, len, count = 0;
	int update = getenv("VELD_UPDATE_GOLDEN") != NULL;
	(void)state;
	for (i = 0; veld_form__shipped(i, &name, &src, &len); i++) {
		veld_form *f = NULL;
		veld_err err = {0, ""};
		char file[128], *path, *out = NULL;
		unsigned char *golden;
		size_t glen = 0;
		if (veld_form__load_shipped(&f, name, NULL, &err) != VELD_OK)
			fail_msg("%s: %s", name, err.msg);
		assert_int_equal(veld_form__schema_json(&out, f), VELD_OK);
		snprintf(file, sizeof file, "forms-%s.json", name);
		path = resource_path(file);
		if (update)
			assert_int_equal(veld_test_write_file(path, out, strlen(out)), 0);
		golden = veld_test_read_file(path, &glen);
		if (!golden)
			fail_msg("missing golden file %s (run with VELD_UPDATE_GOLDEN=1)", path);
		if (glen != strlen(out) || memcmp(golden, out, glen) != 0)
			fail_msg("schema of %s differs from %s:\n%s", name, path, out);
		/* the same form gives the same bytes every time */
		free(out);
		assert_int_equal(veld_form__schema_json(&out, f), VELD_OK);
		assert_memory_equal(golden, out, glen);
		free(out);
		free(golden);
		free(path);
		veld_form__free(f);
		count++;
	}
	assert_int_equal(count, 6);
}

static void test_form_engine__schema_shapes(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *out = NULL;
	json_t *s, *fields, *doorverwezen;
	(void)state;
	assert_int_equal(veld_form__load_shipped(&f, "contactregistratie", NULL, &err), VELD_OK);
	assert_int_equal(veld_form__schema_json(&out, f), VELD_OK);
	s = json_loads(out, 0, NULL);
	assert_non_null(s);
	fields = json_object_get(s, "fields");
	assert_int_equal(json_array_size(fields), 11);
	doorverwezen = json_array_get(fields, 7);
	assert_string_equal(json_string_value(json_object_get(doorverwezen, "name")), "doorverwezen_naar");
	/* a static condition is data an app can evaluate */
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(json_object_get(doorverwezen, "required"), "when"), "op")), "has");
	json_decref(s);
	free(out);
	veld_form__free(f);

	/* a condition written as a function is flagged as computed */
	{
		static const char src[] =
			"form { name = 'f', version = 3, compartment = 'social', label = 'F', fields = {\n"
			"  field.int { 'a', label = 'A' },\n"
			"  field.int { 'b', label = 'B', required = function(r) return (r.a or 0) > 2 end },\n"
			"} }\n";
		assert_int_equal(veld_form__load(&f, "f", src, strlen(src), NULL, &err), VELD_OK);
		assert_int_equal(veld_form__schema_json(&out, f), VELD_OK);
		assert_non_null(strstr(out, "\"required\": {\n        \"computed\": true\n      }"));
		free(out);
		/* and it decides at validation */
		assert_int_equal(veld_form__validate(&out, f, "{\"a\":3}", NULL), VELD_EINVALID);
		assert_string_equal(out, "[{\"field\":\"b\",\"message\":\"B is verplicht.\"}]");
		free(out);
		assert_int_equal(veld_form__validate(&out, f, "{\"a\":1}", NULL), VELD_OK);
		free(out);
		veld_form__free(f);
	}
}

/* ---- form-author mistakes ---------------------------------------------------------------- */

static void expect_author_error(const char *src, const char *message)
{
	/* the default limits, the wall clock scaled under an emulator */
	veld_sandbox_limits lim = {0, 0, (uint32_t)(VELD_SANDBOX_WALL_MS * veld_test_time_scale()), 0, 0, NULL};
	veld_form *f = NULL;
	veld_err err = {0, ""};
	int rc = veld_form__load(&f, "bad", src, strlen(src), &lim, &err);
	if (rc == VELD_OK)
		fail_msg("loaded a bad form; expected \"%s\"\n%s", message, src);
	assert_null(f);
	assert_int_equal(rc, VELD_EINVALID);
	if (!strstr(err.msg, message))
		fail_msg("message \"%s\" lacks \"%s\"\n%s", err.msg, message, src);
}

#define HEAD "form { name = 'bad', version = 1, compartment = 'social', label = 'Bad', fields = {\n"

static void test_form_engine__author_mistakes_with_lines(void **state)
{
	(void)state;
	expect_author_error(HEAD "  field.text { 'a', label = 'A' },\n"
	                         "  field.textarea { 'b', label = 'B' },\n} }\n",
	                    "bad.lua:3: unknown field type \"textarea\"");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' },\n"
	                         "  field.int { 'b', label = 'B' },\n"
	                         "  field.date { 'a', label = 'A again' },\n} }\n",
	                    "bad.lua:4: duplicate field 'a' (first declared at bad.lua:2)");
	expect_author_error(HEAD "  field.group { 'g', label = 'G', fields = {\n"
	                         "    field.int { 'x', label = 'X' },\n"
	                         "    field.int { 'x', label = 'X' } } },\n} }\n",
	                    "bad.lua:4: duplicate field 'x' (first declared at bad.lua:3)");
	expect_author_error(HEAD "  field.choice { 'c', label = 'C',\n"
	                         "    options = { {'a', 'A'}, 'b' } },\n} }\n",
	                    "bad.lua:2: field 'c': option 2 is not a pair {value, \"Label\"}");
	expect_author_error(HEAD "  field.choice { 'c', label = 'C', options = { {'a', 'A', 'extra'} } },\n} }\n",
	                    "bad.lua:2: field 'c': option 1 is not a pair");
	expect_author_error(HEAD "  field.choice { 'c', label = 'C', options = { {'a', 'A'}, {'a', 'B'} } },\n} }\n",
	                    "bad.lua:2: field 'c': option \"a\" appears twice");
	expect_author_error(HEAD "  field.multi { 'c', label = 'C' },\n} }\n",
	                    "bad.lua:2: field 'c' needs options");
	expect_author_error(HEAD "  field.text { 'a', lable = 'A' },\n} }\n",
	                    "bad.lua:2: field 'a': unknown option \"lable\" for a text field");
	expect_author_error(HEAD "  field.text { 'a' },\n} }\n", "bad.lua:2: field 'a' has no label");
	expect_author_error(HEAD "  field.text { 'Naam', label = 'A' },\n} }\n",
	                    "bad.lua:2: field.text: the first entry must be the field name");
	expect_author_error(HEAD "  field.int { 'a', label = 'A', min = 1.5 },\n} }\n",
	                    "bad.lua:2: field 'a': min must be an integer");
	expect_author_error(HEAD "  field.decimal { 'a', label = 'A', max = '12.345' },\n} }\n",
	                    "bad.lua:2: field 'a': max is not a number with at most 2 decimals");
	expect_author_error(HEAD "  field.multi { 'm', label = 'M', options = { {'x', 'X'} } },\n"
	                         "  field.text { 't', label = 'T',\n"
	                         "    visible = when('m', 'has', 'y') },\n} }\n",
	                    "bad.lua:4: field 't': \"y\" is not an option of 'm'");
	expect_author_error(HEAD "  field.text { 't', label = 'T', required = when('nope', '=', 1) },\n} }\n",
	                    "bad.lua:2: field 't': when(\"nope\", ...) names no other field");
	expect_author_error(HEAD "  field.text { 't', label = 'T', required = 'yes' },\n} }\n",
	                    "bad.lua:2: field 't': required must be true, false, a function or when(...)");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' },\n"
	                         "  { 'b', type = 'int' },\n} }\n",
	                    "bad.lua:1: fields: entry 2 is not a field.<type>{...} declaration");
	/* the form itself */
	expect_author_error("form { version = 1, compartment = 'social', label = 'X',\n"
	                    "  fields = { field.text { 'a', label = 'A' } } }\n",
	                    "bad.lua:1: form: name is missing");
	expect_author_error("\n\nform { name = 'bad', compartment = 'social', label = 'X',\n"
	                    "  fields = { field.text { 'a', label = 'A' } } }\n",
	                    "bad.lua:3: form 'bad': version is missing or not a positive integer");
	expect_author_error("form { name = 'bad', version = 1, label = 'X',\n"
	                    "  fields = { field.text { 'a', label = 'A' } } }\n",
	                    "bad.lua:1: form 'bad': compartment is missing");
	expect_author_error("form { name = 'bad', version = 1, compartment = 'social', label = 'X', fields = {} }\n",
	                    "bad.lua:1: form 'bad': fields is missing or empty");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' } },\n  rulez = {} }\n",
	                    "bad.lua:1: form: unknown key \"rulez\"");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' } },\n  computed = { a = function() end } }\n",
	                    "bad.lua:1: form 'bad': computed 'a' has the name of a field");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' } } }\n"
	                    "form { name = 'bad', version = 2, compartment = 'social', label = 'X',\n"
	                    "  fields = { field.text { 'a', label = 'A' } } }\n",
	                    "bad.lua:3: form{} is declared twice (first at bad.lua:1)");
	expect_author_error("local x = 1\n", "the script declares no form");
	expect_author_error("form { name = 'bad' \n fields = {} }\n", "bad.lua:2: '}' expected");
	expect_author_error(HEAD "  field.text { 'a', label = 'A' } } }\nlocal t = nil\nt.x = 1\n",
	                    "bad.lua:4: attempt to index a nil value (local 't')");
	expect_author_error("form { name = 'other', version = 1, compartment = 'social', label = 'X',\n"
	                    "  fields = { field.text { 'a', label = 'A' } } }\n",
	                    "bad.lua: declares form 'other', expected 'bad'");
	expect_author_error("while true do end\n", "instruction limit exceeded");
	expect_author_error("os.exit(1)\n", "bad.lua:1: attempt to index a nil value (global 'os')");
}

/* ---- scripts failing at run time ---------------------------------------------------------- */

static void test_form_engine__rule_failures_are_reported_and_survived(void **state)
{
	static const char src[] =
		"form { name = 'fragiel', version = 1, compartment = 'social', label = 'Fragiel',\n"
		"  fields = { field.text { 'modus', label = 'Modus' } },\n"
		"  rules = {\n"
		"    function(r, err)\n"
		"      if r.modus == 'crash' then local t = nil; return t.x end\n"
		"      if r.modus == 'lus' then while true do end end\n"
		"      if r.modus == 'geheugen' then local t = {} while true do t[#t + 1] = ('x'):rep(100) .. #t end end\n"
		"      if r.modus == 'slecht' then err(1, 2) end\n"
		"      if r.modus == 'fout' then err('modus', 'Deze modus is niet toegestaan.') end\n"
		"    end,\n"
		"  } }\n";
	/* a wall clock far beyond the default: filling the memory cap must end
	** on the memory limit even on a loaded machine under sanitizers */
	veld_sandbox_limits lim = {0, 0, 60000, 0, 0, NULL};
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *out = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "fragiel", src, strlen(src), &lim, &err), VELD_OK);
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"crash\"}", NULL), VELD_ERROR);
	assert_null(out);
	assert_non_null(strstr(veld_form__errmsg(f), "fragiel.lua:5: attempt to index a nil value (local 't')"));
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"lus\"}", NULL), VELD_ERROR);
	assert_non_null(strstr(veld_form__errmsg(f), "fragiel.lua:6: instruction limit exceeded"));
	/* the spent state is replaced: the next record validates */
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"fout\"}", NULL), VELD_EINVALID);
	assert_string_equal(out, "[{\"field\":\"modus\",\"message\":\"Deze modus is niet toegestaan.\"}]");
	free(out);
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"geheugen\"}", NULL), VELD_ERROR);
	assert_non_null(strstr(veld_form__errmsg(f), "memory limit exceeded"));
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"slecht\"}", NULL), VELD_ERROR);
	assert_non_null(strstr(veld_form__errmsg(f), "fragiel.lua:8: err(field, message): both must be strings"));
	assert_int_equal(veld_form__validate(&out, f, "{\"modus\":\"goed\"}", NULL), VELD_OK);
	assert_string_equal(out, "[]");
	free(out);
	veld_form__free(f);
}

/* ---- record input --------------------------------------------------------------------------- */

static void test_form_engine__record_shapes(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *flat = NULL, *nested = NULL;
	(void)state;
	assert_int_equal(veld_form__load_shipped(&f, "sociale_balans", NULL, &err), VELD_OK);
	/* flat paths and nested objects mean the same record */
	assert_int_equal(veld_form__validate(&flat, f,
	                 "{\"afnamedatum\":\"2024-01-01\",\"huisvesting.score\":1,\"actievoorstellen.a1.status\":\"x\"}", NULL),
	                 VELD_EINVALID);
	assert_int_equal(veld_form__validate(&nested, f,
	                 "{\"afnamedatum\":\"2024-01-01\",\"huisvesting\":{\"score\":1},\"actievoorstellen\":{\"a1\":{\"status\":\"x\"}}}", NULL),
	                 VELD_EINVALID);
	assert_string_equal(flat, nested);
	free(flat);
	free(nested);
	/* malformed input */
	assert_int_equal(veld_form__validate(&flat, f, "[1,2]", NULL), VELD_EINVALID);
	assert_null(flat);
	assert_non_null(strstr(veld_form__errmsg(f), "not a JSON object"));
	assert_int_equal(veld_form__validate(&flat, f, "{\"huisvesting\":1,\"huisvesting.score\":2}", NULL),
	                 VELD_EINVALID);
	assert_null(flat);
	assert_non_null(strstr(veld_form__errmsg(f), "both a value and a group"));
	assert_int_equal(veld_form__validate(&flat, f, "{\"huisvesting..score\":2}", NULL), VELD_EINVALID);
	assert_non_null(strstr(veld_form__errmsg(f), "malformed"));
	assert_int_equal(veld_form__validate(&flat, f, "{}", "[]"), VELD_EINVALID);
	assert_non_null(strstr(veld_form__errmsg(f), "context is not a JSON object"));
	/* a repeating group given as a list, and a bad item id */
	assert_int_equal(veld_form__validate(&flat, f, "{\"actievoorstellen\":[{\"status\":\"gepland\"}]}", NULL),
	                 VELD_EINVALID);
	assert_non_null(strstr(flat, "{\"field\":\"actievoorstellen\",\"message\":\"Actievoorstellen moet items met een sleutel bevatten.\"}"));
	free(flat);
	veld_form__free(f);
}

static void test_form_engine__decimals_and_dates(void **state)
{
	static const char src[] =
		"form { name = 'getallen', version = 1, compartment = 'social', label = 'Getallen',\n"
		"  fields = {\n"
		"    field.decimal { 'bedrag', label = 'Bedrag', unit = 'euro', min = '0.01', max = '10000000' },\n"
		"    field.decimal { 'factor', label = 'Factor', scale = 3 },\n"
		"    field.date { 'dag', label = 'Dag', min = '2000-01-01' },\n"
		"  },\n"
		"  computed = {\n"
		"    som = function(r) return r.bedrag and euro.string(r.bedrag * 3) end,\n"
		"    toon = function(r) return r.bedrag and euro.show(r.bedrag) end,\n"
		"    dagen = function(r) return r.dag and date.days(r.dag) end,\n"
		"    later = function(r) return r.dag and date.add_days(r.dag, 366) end,\n"
		"  } }\n";
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *out = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "getallen", src, strlen(src), NULL, &err), VELD_OK);
	/* 0.1 + 0.2 style amounts stay exact */
	assert_int_equal(veld_form__compute(&out, f, "{\"bedrag\":\"0.10\",\"dag\":\"2024-02-29\"}", NULL), VELD_OK);
	assert_string_equal(out, "{\"dagen\":19782,\"later\":\"2025-03-01\",\"som\":\"0.30\",\"toon\":\"€ 0,10\"}");
	free(out);
	assert_int_equal(veld_form__compute(&out, f, "{\"bedrag\":1234567.8}", NULL), VELD_OK);
	assert_string_equal(out, "{\"som\":\"3703703.40\",\"toon\":\"€ 1.234.567,80\"}");
	free(out);
	assert_int_equal(veld_form__validate(&out, f, "{\"bedrag\":\"12,5\",\"factor\":\"1.125\",\"dag\":\"2000-01-01\"}", NULL), VELD_OK);
	free(out);
	assert_int_equal(veld_form__validate(&out, f,
	                 "{\"bedrag\":\"0.001\",\"factor\":1.0005,\"dag\":\"1999-12-31\"}", NULL), VELD_EINVALID);
	assert_string_equal(out,
	                    "[{\"field\":\"bedrag\",\"message\":\"Bedrag moet een getal zijn met hoogstens 2 cijfers na de komma.\"},"
	                    "{\"field\":\"factor\",\"message\":\"Factor moet een getal zijn met hoogstens 3 cijfers na de komma.\"},"
	                    "{\"field\":\"dag\",\"message\":\"Dag mag niet vóór 01/01/2000 liggen.\"}]");
	free(out);
	assert_int_equal(veld_form__validate(&out, f, "{\"bedrag\":\"0\",\"dag\":\"2023-13-01\"}", NULL), VELD_EINVALID);
	assert_string_equal(out,
	                    "[{\"field\":\"bedrag\",\"message\":\"Bedrag moet minstens € 0,01 zijn.\"},"
	                    "{\"field\":\"dag\",\"message\":\"Dag moet een geldige datum zijn (JJJJ-MM-DD).\"}]");
	free(out);
	veld_form__free(f);
}

/* ---- loading --------------------------------------------------------------------------------- */

static void test_form_engine__load_file_and_shipped(void **state)
{
	char *dir = veld_test_tmpdir("forms");
	char *path = veld_test_path(dir, "kort.lua");
	static const char src[] = "form { name = 'kort', version = 4, compartment = 'huiswijs', label = 'Kort',\n"
	                          "  fields = { field.bool { 'ja', label = 'Ja' } } }\n"
	                          "error('kapot')\n";
	veld_form *f = NULL;
	veld_err err = {0, ""};
	(void)state;
	/* the first two lines */
	assert_int_equal(veld_test_write_file(path, src, (size_t)(strstr(src, "error(") - src)), 0);
	assert_int_equal(veld_form__load_file(&f, NULL, path, NULL, &err), VELD_OK);
	assert_string_equal(veld_form__name(f), "kort");
	assert_string_equal(veld_form__compartment(f), "huiswijs");
	assert_string_equal(veld_form__label(f), "Kort");
	assert_int_equal(veld_form__version(f), 4);
	veld_form__free(f);
	assert_int_equal(veld_test_write_file(path, src, strlen(src)), 0);
	assert_int_equal(veld_form__load_file(&f, NULL, path, NULL, &err), VELD_EINVALID);
	assert_string_equal(err.msg, "kort.lua:3: kapot");
	assert_int_equal(veld_form__load_file(&f, NULL, "/nonexistent/x.lua", NULL, &err), VELD_ENOTFOUND);
	assert_int_equal(veld_form__load_shipped(&f, "bestaat_niet", NULL, &err), VELD_ENOTFOUND);
	veld_test_rmtree(dir);
	free(path);
	free(dir);
}

/* ---- a large record ------------------------------------------------------------------------ */

/* A full Sociale Balans given in the store's flat form, sixteen actions:
** valid, the same verdict every time (speed is tools/bench forms's). */
static void test_form_engine__full_balance_flat(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	json_t *r = json_object();
	char key[64], *fields, *out = NULL;
	int i;
	static const char *const domains[] = {
		"familiale_situatie", "huisvesting", "gezondheid_lichamelijk", "gezondheid_psychisch",
		"inkomen", "budget_schulden", "administratie", "mobiliteit", "opleiding_vorming", "werk",
		"vrije_tijd", "zelfvertrouwen", "communicatie", "ict_vaardigheden", "sociaal_netwerk",
		"organisatie_planning"};
	(void)state;
	json_object_set_new(r, "afnamedatum", json_string("2024-05-02"));
	json_object_set_new(r, "synthese", json_string("Een volledige balans."));
	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof key, "%s.score", domains[i]);
		json_object_set_new(r, key, json_integer(1 + i % 5));
		snprintf(key, sizeof key, "%s.stabiliserend", domains[i]);
		json_object_set_new(r, key, json_string("Steun van familie"));
		snprintf(key, sizeof key, "%s.prioriteit", domains[i]);
		json_object_set_new(r, key, json_boolean(i % 3 == 0));
		snprintf(key, sizeof key, "actievoorstellen.a%02d.domein", i);
		json_object_set_new(r, key, json_string(domains[i]));
		snprintf(key, sizeof key, "actievoorstellen.a%02d.doelstelling", i);
		json_object_set_new(r, key, json_string("Doel"));
		snprintf(key, sizeof key, "actievoorstellen.a%02d.actie", i);
		json_object_set_new(r, key, json_string("Actie"));
		snprintf(key, sizeof key, "actievoorstellen.a%02d.status", i);
		json_object_set_new(r, key, json_string("lopend"));
	}
	fields = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	assert_int_equal(veld_form__load_shipped(&f, "sociale_balans", NULL, &err), VELD_OK);
	for (i = 0; i < 3; i++) {
		assert_int_equal(veld_form__validate(&out, f, fields, "{\"vandaag\":\"2024-05-02\"}"), VELD_OK);
		assert_string_equal(out, "[]");
		free(out);
	}
	free(fields);
	veld_form__free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_engine__schema_golden_files),
		cmocka_unit_test(test_form_engine__schema_shapes),
		cmocka_unit_test(test_form_engine__author_mistakes_with_lines),
		cmocka_unit_test(test_form_engine__rule_failures_are_reported_and_survived),
		cmocka_unit_test(test_form_engine__record_shapes),
		cmocka_unit_test(test_form_engine__decimals_and_dates),
		cmocka_unit_test(test_form_engine__load_file_and_shipped),
		cmocka_unit_test(test_form_engine__full_balance_flat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

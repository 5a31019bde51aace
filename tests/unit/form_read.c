/*
** form_read.c — the form engine's reading of records (scripts/engine_read.c
** and engine_input.c), randomised.
**
** A record reaches the engine nested (what an app sends), flat (what the
** store keeps: "groep.veld", "acties.<id>.status") or mixed.  Nested input
** is read as it is; flat input is folded into groups first.  Both must mean
** the same record: for thousands of random records over a form that uses
** every field kind, conditions, groups and repeating groups (with wrong
** types, empty values, nulls, empty objects, unknown fields and bad item
** ids mixed in), the nested, the flat and a mixed form of each record must
** give the same verdict, the same failures in the same order, and the same
** typed record as rules see it (the form's computed value echoes it, and
** the previous record from the context too).
**
** VELD_TEST_SEED replays one seed; VELD_PROP_ITER multiplies the count.
*/
#include "testutil.h"

#include "../../scripts/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char FORM[] =
	"local function nonempty(r, v) return v.naam ~= nil end\n"
	"form { name = 'alles', version = 3, compartment = 'social', label = 'Alles',\n"
	"  fields = {\n"
	"    field.text { 'naam', label = 'Naam', max_length = 8 },\n"
	"    field.int { 'aantal', label = 'Aantal', min = 0, max = 9 },\n"
	"    field.decimal { 'bedrag', label = 'Bedrag', unit = 'euro', min = '-5', max = '99.5' },\n"
	"    field.date { 'datum', label = 'Datum', required = true, min = '2000-01-01' },\n"
	"    field.bool { 'akkoord', label = 'Akkoord' },\n"
	"    field.choice { 'soort', label = 'Soort', options = { { 'a', 'A' }, { 'b', 'B' }, { 3, 'Drie' } } },\n"
	"    field.multi { 'tags', label = 'Tags', options = { { 'x', 'X' }, { 'y', 'Y' }, { 7, 'Zeven' } } },\n"
	"    field.text { 'uitleg', label = 'Uitleg', required = when('soort', '=', 'b'),\n"
	"      visible = when('soort', 'in', { 'b', 3 }) },\n"
	"    field.group { 'woning', label = 'Woning', fields = {\n"
	"      field.choice { 'type', label = 'Type', required = true, options = { { 'huur', 'Huur' }, { 'eigen', 'Eigen' } } },\n"
	"      field.decimal { 'huur', label = 'Huur', visible = when('type', '=', 'huur'), scale = 0 },\n"
	"      field.multi { 'gebreken', label = 'Gebreken', options = { { 'vocht', 'Vocht' }, { 'lek', 'Lek' } } },\n"
	"      field.text { 'detail', label = 'Detail', visible = when('gebreken', 'has', 'vocht') },\n"
	"      field.group { 'adres', label = 'Adres', fields = {\n"
	"        field.text { 'straat', label = 'Straat', required = true },\n"
	"        field.int { 'nummer', label = 'Nummer', visible = nonempty },\n"
	"      } },\n"
	"    } },\n"
	"    field.group { 'acties', label = 'Acties', repeating = true, required = true, fields = {\n"
	"      field.text { 'wat', label = 'Wat', required = true },\n"
	"      field.choice { 'wie', label = 'Wie', options = { { 'ik', 'Ik' }, { 'partner', 'Partner' } } },\n"
	"      field.text { 'partner', label = 'Partner', required = when('wie', '=', 'partner'),\n"
	"        visible = when('wie', '~=', 'ik') },\n"
	"      field.date { 'tegen', label = 'Tegen', required = function(r) return r.akkoord == true end },\n"
	"    } },\n"
	"  },\n"
	"  computed = { echo = function(r, ctx) return { r = r, vorige = ctx.vorige } end },\n"
	"}\n";

/* ---- random records ------------------------------------------------------------------ */

static json_t *random_scalar(uint64_t *s)
{
	static const char *const strings[] = {"", "a", "b", "x", "y", "huur", "eigen", "vocht", "lek", "ik",
	                                      "partner", "2024-02-29", "2023-02-29", "1999-12-31", "12,5",
	                                      "99.50", "-5", "1.234", "ééééééééé", "Naam", "12."};
	switch (veld_test_rng_below(s, 8)) {
	case 0: return json_string(strings[veld_test_rng_below(s, sizeof strings / sizeof *strings)]);
	case 1: return json_integer((json_int_t)veld_test_rng_below(s, 12) - 1);
	case 2: return json_real((double)veld_test_rng_below(s, 2000) / 16.0 - 10.0);
	case 3: return json_boolean(veld_test_rng_below(s, 2));
	case 4: return json_null();
	case 5: return json_integer(3);
	case 6: return json_integer(7);
	default: return json_string("2024-05-01");
	}
}

static json_t *random_value(uint64_t *s, int depth);

static json_t *random_list(uint64_t *s)
{
	json_t *a = json_array();
	unsigned i, n = veld_test_rng_below(s, 4);
	static const char *const opts[] = {"x", "y", "vocht", "lek"};
	for (i = 0; i < n; i++)
		json_array_append_new(a, veld_test_rng_below(s, 4) ? json_string(opts[veld_test_rng_below(s, 4)])
		                                                 : random_scalar(s));
	return a;
}

/* An object with some of `names` (and now and then an unknown member). */
static json_t *random_object(uint64_t *s, const char *const *names, size_t n, int depth)
{
	json_t *o = json_object();
	size_t i;
	for (i = 0; i < n; i++)
		if (veld_test_rng_below(s, 3))
			json_object_set_new(o, names[i], random_value(s, depth + 1));
	if (veld_test_rng_below(s, 8) == 0)
		json_object_set_new(o, veld_test_rng_below(s, 2) ? "onbekend" : "_intern", random_value(s, depth + 1));
	return o;
}

static json_t *random_value(uint64_t *s, int depth)
{
	static const char *const any[] = {"p", "q"};
	switch (veld_test_rng_below(s, depth > 3 ? 6 : 9)) {
	case 0: return random_list(s);
	case 6: return json_object(); /* folds to nothing */
	case 7: return random_object(s, any, 2, depth);
	case 8: {
		json_t *o = json_object(); /* nothing but a null inside: folds to nothing too */
		json_object_set_new(o, "leeg", json_null());
		return o;
	}
	default: return random_scalar(s);
	}
}

static json_t *random_woning(uint64_t *s)
{
	static const char *const adres[] = {"straat", "nummer"};
	json_t *w = json_object();
	static const char *const types[] = {"huur", "eigen", "kot"};
	if (veld_test_rng_below(s, 4))
		json_object_set_new(w, "type", veld_test_rng_below(s, 5) ? json_string(types[veld_test_rng_below(s, 3)])
		                                                         : random_value(s, 2));
	if (veld_test_rng_below(s, 2))
		json_object_set_new(w, "huur", veld_test_rng_below(s, 3) ? json_integer(650) : random_value(s, 2));
	if (veld_test_rng_below(s, 2))
		json_object_set_new(w, "gebreken", random_list(s));
	if (veld_test_rng_below(s, 2))
		json_object_set_new(w, "detail", random_value(s, 2));
	if (veld_test_rng_below(s, 3))
		json_object_set_new(w, "adres", veld_test_rng_below(s, 6) ? random_object(s, adres, 2, 2) : random_value(s, 2));
	if (veld_test_rng_below(s, 10) == 0)
		json_object_set_new(w, "extra", random_value(s, 2));
	return w;
}

static json_t *random_acties(uint64_t *s)
{
	static const char *const item[] = {"wat", "wie", "partner", "tegen"};
	static const char *const ids[] = {"a1", "a2", "B-3", "x_4", "bad id", "é"};
	json_t *a = json_object();
	unsigned i, n = veld_test_rng_below(s, 4);
	for (i = 0; i < n; i++) {
		const char *id = ids[veld_test_rng_below(s, veld_test_rng_below(s, 6) ? 4 : 6)];
		json_object_set_new(a, id, veld_test_rng_below(s, 8) ? random_object(s, item, 4, 2) : random_value(s, 2));
	}
	return a;
}

/* A record that passes, to start from. */
static json_t *valid_record(uint64_t *s)
{
	json_t *r = json_pack("{s:s, s:s, s:i, s:{s:s, s:{s:s}}, s:{s:{s:s, s:s}}}", "datum", "2024-03-04", "naam",
	                      "Jan", "aantal", (int)veld_test_rng_below(s, 10), "woning", "type", "eigen", "adres",
	                      "straat", "Markt", "acties", "a1", "wat", "bellen", "wie", "ik");
	if (veld_test_rng_below(s, 2))
		json_object_set_new(r, "bedrag", json_string("12,50"));
	if (veld_test_rng_below(s, 2))
		json_object_set_new(r, "tags", json_pack("[s, i]", "x", 7));
	if (veld_test_rng_below(s, 2)) {
		json_object_set_new(r, "soort", json_string("b"));
		json_object_set_new(r, "uitleg", json_string("omdat"));
	}
	return r;
}

static json_t *random_record(uint64_t *s)
{
	static const char *const top[] = {"naam", "aantal", "bedrag", "datum", "akkoord", "soort", "tags", "uitleg"};
	json_t *r;
	if (veld_test_rng_below(s, 3) == 0) {
		/* a valid record, now and then with one field changed */
		r = valid_record(s);
		if (veld_test_rng_below(s, 2))
			json_object_set_new(r, top[veld_test_rng_below(s, 8)], random_value(s, 1));
		return r;
	}
	if (veld_test_rng_below(s, 20) == 0) {
		/* a path that is both a value and a group: refused as input */
		r = json_pack("{s:s, s:i, s:s}", "datum", "2024-03-04", "woning", 1, "woning.type", "eigen");
		return r;
	}
	r = random_object(s, top, sizeof top / sizeof *top, 0);
	if (veld_test_rng_below(s, 4))
		json_object_set_new(r, "woning", veld_test_rng_below(s, 8) ? random_woning(s) : random_value(s, 1));
	if (veld_test_rng_below(s, 4))
		json_object_set_new(r, "acties", veld_test_rng_below(s, 8) ? random_acties(s) : random_value(s, 1));
	if (veld_test_rng_below(s, 5) == 0)
		json_object_set_new(r, "_form_version", json_integer(veld_test_rng_below(s, 2) ? 3 : 2));
	return r;
}

/* ---- the same record, flat or mixed ---------------------------------------------------------------- */

/* Objects become dotted paths below `prefix`: all of them (flat) or, for
** mixed, each object by a coin flip. */
static void flatten_into(json_t *out, const char *prefix, json_t *obj, uint64_t *coin)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		char path[512];
		snprintf(path, sizeof path, "%s%s%s", prefix && *prefix ? prefix : "", prefix && *prefix ? "." : "", k);
		if (json_is_object(v) && json_object_size(v) > 0 && (!coin || veld_test_rng_below(coin, 2)))
			flatten_into(out, path, v, coin);
		else
			json_object_set(out, path, v);
	}
}

static json_t *reshaped(json_t *nested, uint64_t *coin)
{
	json_t *out = json_object();
	flatten_into(out, NULL, nested, coin);
	return out;
}

/* ---- the property ------------------------------------------------------------------------------------ */

typedef struct verdict {
	int rc;
	char *errors;
	char *values;
	char msg[256];
} verdict;

static void judge(verdict *v, veld_form *f, json_t *rec, json_t *ctx)
{
	json_t *errors = NULL, *values = NULL;
	v->rc = veld_form__check_json(&errors, &values, f, rec, ctx);
	v->errors = errors ? json_dumps(errors, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	v->values = values ? json_dumps(values, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	snprintf(v->msg, sizeof v->msg, "%s", v->rc == VELD_OK ? "" : veld_form__errmsg(f));
	json_decref(errors);
	json_decref(values);
}

static void verdict_free(verdict *v)
{
	free(v->errors);
	free(v->values);
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void test_form_read__nested_flat_and_mixed_read_alike(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	uint64_t seed = getenv("VELD_TEST_SEED") ? strtoull(getenv("VELD_TEST_SEED"), NULL, 0) : 0x5eed;
	long iter, n = 3000 * (getenv("VELD_PROP_ITER") ? atol(getenv("VELD_PROP_ITER")) : 1);
	long valid = 0, invalid = 0, refused = 0, with_unknown = 0;
	(void)state;
	if (veld_form__load(&f, "alles", FORM, sizeof FORM - 1, NULL, &err) != VELD_OK)
		fail_msg("%s", err.msg);
	for (iter = 0; iter < n; iter++) {
		uint64_t s = seed + (uint64_t)iter * 7919, coin = s ^ 0xc0ffee;
		json_t *rec = random_record(&s), *prev = random_record(&s);
		json_t *flat = reshaped(rec, NULL), *mixed = reshaped(rec, &coin);
		json_t *ctx = json_pack("{s:s, s:O}", "vandaag", "2024-06-01", "vorige", prev);
		json_t *ctx_flat = json_pack("{s:s, s:o}", "vandaag", "2024-06-01", "vorige", reshaped(prev, NULL));
		verdict a, b, c;
		judge(&a, f, rec, ctx);
		judge(&b, f, flat, ctx_flat);
		judge(&c, f, mixed, ctx);
		if (a.rc != b.rc || a.rc != c.rc || !same(a.errors, b.errors) || !same(a.errors, c.errors) ||
		    !same(a.values, b.values) || !same(a.values, c.values) || strcmp(a.msg, b.msg) || strcmp(a.msg, c.msg)) {
			char *t1 = json_dumps(rec, JSON_COMPACT), *t2 = json_dumps(flat, JSON_COMPACT);
			fail_msg("seed 0x%llx, record %ld read differently:\n  nested %s\n  flat   %s\n"
			         "  rc %d / %d / %d\n  errors %s\n         %s\n         %s\n  values %s\n         %s\n"
			         "  msg %s | %s | %s",
			         (unsigned long long)seed, iter, t1, t2, a.rc, b.rc, c.rc, a.errors, b.errors, c.errors,
			         a.values, b.values, a.msg, b.msg, c.msg);
		}
		if (a.rc == VELD_OK)
			valid++;
		else if (a.errors)
			invalid++;
		else
			refused++;
		if (a.errors && strstr(a.errors, "Onbekend veld"))
			with_unknown++;
		verdict_free(&a);
		verdict_free(&b);
		verdict_free(&c);
		json_decref(rec);
		json_decref(prev);
		json_decref(flat);
		json_decref(mixed);
		json_decref(ctx);
		json_decref(ctx_flat);
	}
	printf("%ld records: %ld valid, %ld with failures (%ld with unknown fields), %ld refused as input\n", n, valid,
	       invalid, with_unknown, refused);
	/* the generator reaches every outcome */
	assert_true(valid > n / 20);
	assert_true(invalid > n / 4);
	assert_true(with_unknown > 0);
	assert_true(refused > 0);
	veld_form__free(f);
}

/* The typed record: decimals in units, hidden fields gone, an absent fixed
** group present and empty, items keyed by id, the previous record typed too. */
static void test_form_read__typed_record(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *errors = NULL, *values = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "alles", FORM, sizeof FORM - 1, NULL, &err), VELD_OK);
	assert_int_equal(veld_form__check(&errors, &values, f,
	                 "{\"datum\":\"2024-01-02\",\"bedrag\":\"12,5\",\"soort\":\"a\",\"uitleg\":\"weg\","
	                 "\"woning.type\":\"eigen\",\"woning.huur\":500,\"woning.adres\":{\"straat\":\"Kerkstraat\"},"
	                 "\"acties\":{\"a2\":{\"wat\":\"bellen\",\"wie\":\"ik\",\"partner\":\"weg\"},"
	                 "\"a1\":{\"wat\":\"schrijven\"}},\"tags\":[\"y\",7]}",
	                 "{\"vandaag\":\"2024-06-01\",\"vorige\":{\"aantal\":4.0,\"woning\":{\"type\":\"huur\",\"huur\":\"650\"}}}"),
	                 VELD_OK);
	assert_string_equal(errors, "[]");
	assert_string_equal(values,
	                    "{\"echo\":{\"r\":{\"acties\":{\"a1\":{\"wat\":\"schrijven\"},\"a2\":{\"wat\":\"bellen\",\"wie\":\"ik\"}},"
	                    "\"bedrag\":1250,\"datum\":\"2024-01-02\",\"soort\":\"a\",\"tags\":[\"y\",7],"
	                    "\"woning\":{\"adres\":{\"straat\":\"Kerkstraat\"},\"type\":\"eigen\"}},"
	                    "\"vorige\":{\"aantal\":4,\"woning\":{\"adres\":{},\"huur\":650,\"type\":\"huur\"}}}}");
	free(errors);
	free(values);
	veld_form__free(f);
}

/* Failures come in form order, with the groups' labels, items in id order. */
static void test_form_read__failures_in_form_order(void **state)
{
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *errors = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "alles", FORM, sizeof FORM - 1, NULL, &err), VELD_OK);
	assert_int_equal(veld_form__validate(&errors, f,
	                 "{\"naam\":\"veel te lang\",\"aantal\":10,\"bedrag\":\"1.234\",\"soort\":\"b\",\"akkoord\":true,"
	                 "\"tags\":[\"x\",\"x\"],\"woning\":{\"adres\":{\"nummer\":1}},"
	                 "\"acties\":{\"b\":{\"wie\":\"partner\"},\"a\":5},\"zomaar\":1,\"_form_version\":3}",
	                 NULL),
	                 VELD_EINVALID);
	assert_string_equal(errors,
	                    "[{\"field\":\"naam\",\"message\":\"Naam mag hoogstens 8 tekens bevatten.\"},"
	                    "{\"field\":\"aantal\",\"message\":\"Aantal mag hoogstens 9 zijn.\"},"
	                    "{\"field\":\"bedrag\",\"message\":\"Bedrag moet een getal zijn met hoogstens 2 cijfers na de komma.\"},"
	                    "{\"field\":\"datum\",\"message\":\"Datum is verplicht.\"},"
	                    "{\"field\":\"tags\",\"message\":\"Tags bevat een keuze meer dan één keer.\"},"
	                    "{\"field\":\"uitleg\",\"message\":\"Uitleg is verplicht.\"},"
	                    "{\"field\":\"woning.type\",\"message\":\"Woning – Type is verplicht.\"},"
	                    "{\"field\":\"woning.adres.straat\",\"message\":\"Woning – Adres – Straat is verplicht.\"},"
	                    "{\"field\":\"acties.a\",\"message\":\"Acties: een item heeft een ongeldige vorm.\"},"
	                    "{\"field\":\"acties.b.wat\",\"message\":\"Acties – Wat is verplicht.\"},"
	                    "{\"field\":\"acties.b.partner\",\"message\":\"Acties – Partner is verplicht.\"},"
	                    "{\"field\":\"acties.b.tegen\",\"message\":\"Acties – Tegen is verplicht.\"},"
	                    "{\"field\":\"zomaar\",\"message\":\"Onbekend veld in versie 3 van dit formulier.\"}]");
	free(errors);
	veld_form__free(f);
}

/* Condition functions are guest code: one that empties r and the items
** while they are being checked, or that fails, changes nothing the reader
** relies on (ids are anchored, tables re-read), and the failure comes back
** as the script's. */
static void test_form_read__conditions_that_change_r(void **state)
{
	static const char src[] =
		"local function wreck(r, v)\n"
		"  for k in pairs(r.acties or {}) do r.acties[k] = nil end\n"
		"  for k in pairs(r) do r[k] = nil end\n"
		"  collectgarbage('count')\n"
		"  return true\n"
		"end\n"
		"form { name = 'stuk', version = 1, compartment = 'social', label = 'Stuk',\n"
		"  fields = {\n"
		"    field.text { 'naam', label = 'Naam' },\n"
		"    field.group { 'acties', label = 'Acties', repeating = true, fields = {\n"
		"      field.text { 'wat', label = 'Wat', required = true, visible = wreck },\n"
		"      field.text { 'fout', label = 'Fout', visible = function(r, v) if v.wat == 'boem' then error('stuk') end return true end },\n"
		"    } },\n"
		"  },\n"
		"}\n";
	veld_form *f = NULL;
	veld_err err = {0, ""};
	char *errors = NULL;
	(void)state;
	assert_int_equal(veld_form__load(&f, "stuk", src, sizeof src - 1, NULL, &err), VELD_OK);
	assert_int_equal(veld_form__validate(&errors, f,
	                 "{\"naam\":\"x\",\"acties\":{\"b\":{\"fout\":\"\"},\"a\":{\"x\":1},\"c\":{\"wat\":\"w\"}}}", NULL),
	                 VELD_EINVALID);
	/* item a is checked first (id order) and its condition empties r: the
	** items it removed are no longer there to check, nothing else breaks */
	assert_string_equal(errors,
	                    "[{\"field\":\"acties.a.wat\",\"message\":\"Acties – Wat is verplicht.\"},"
	                    "{\"field\":\"acties.a.x\",\"message\":\"Onbekend veld in versie 1 van dit formulier.\"}]");
	free(errors);
	errors = NULL;
	assert_int_equal(veld_form__validate(&errors, f, "{\"acties\":{\"a\":{\"wat\":\"boem\"}}}", NULL), VELD_ERROR);
	assert_null(errors);
	assert_non_null(strstr(veld_form__errmsg(f), "stuk"));
	/* and the form works on */
	assert_int_equal(veld_form__validate(&errors, f, "{\"acties\":{\"a\":{\"wat\":\"w\"}}}", NULL), VELD_OK);
	free(errors);
	veld_form__free(f);
}

/* {"key":{"n":{"n": ... inner}}} with `levels` objects "n" (malloc'd). */
static char *nest(const char *key, int levels, const char *inner)
{
	size_t n = strlen(key) + strlen(inner) + (size_t)levels * 8 + 16;
	char *out = malloc(n), *p = out;
	int i;
	assert_non_null(out);
	p += sprintf(p, "{\"%s\":", key);
	for (i = 0; i < levels; i++)
		p += sprintf(p, "{\"n\":");
	p += sprintf(p, "%s", inner);
	for (i = 0; i <= levels; i++)
		*p++ = '}';
	*p = '\0';
	return out;
}

static int validate_nest(char **errors, veld_form *f, const char *key, int levels, const char *inner)
{
	char *rec = nest(key, levels, inner);
	int rc;
	*errors = NULL;
	rc = veld_form__validate(errors, f, rec, NULL);
	free(rec);
	return rc;
}

/* A verdict: valid with no failure, or (`empty` 0) refused as input for
** its depth.  Frees `errors`. */
static void expect_empty_or_too_deep(veld_form *f, int rc, char *errors, int empty)
{
	if (empty) {
		assert_int_equal(rc, VELD_OK);
		assert_string_equal(errors, "[]");
	} else {
		assert_int_equal(rc, VELD_EINVALID);
		assert_null(errors);
		assert_non_null(strstr(veld_form__errmsg(f), "is nested too deep"));
	}
	free(errors);
}

/* Objects that hold nothing (nulls, empty objects) are no fields, however
** deep; objects nested deeper than a field path may be are refused as
** input, whether the form knows the outer member or not. */
static void test_form_read__empty_and_deep_objects(void **state)
{
	static const char src[] =
		"form { name = 'klein', version = 1, compartment = 'social', label = 'Klein',\n"
		"  fields = {\n"
		"    field.text { 'naam', label = 'Naam' },\n"
		"    field.group { 'g', label = 'G', fields = { field.text { 't', label = 'T' } } },\n"
		"  },\n"
		"}\n";
	veld_form *f = NULL;
	veld_err err = {0, ""};
	int levels, i;
	(void)state;
	assert_int_equal(veld_form__load(&f, "klein", src, sizeof src - 1, NULL, &err), VELD_OK);
	for (levels = 0; levels < 24; levels++) {
		char *e, want[256];
		int rc, n;
		/* nothing but a null at the bottom: no field, until the fold refuses the depth */
		rc = validate_nest(&e, f, "leeg", levels, "{\"x\":null}");
		expect_empty_or_too_deep(f, rc, e, levels < 16);
		/* empty objects inside a group the form declares */
		rc = validate_nest(&e, f, "g", levels, "{}");
		expect_empty_or_too_deep(f, rc, e, levels < 17);
		/* a value at the bottom: an unknown field, as deep as a path may go */
		rc = validate_nest(&e, f, "vol", levels, "1");
		if (levels >= 17) {
			expect_empty_or_too_deep(f, rc, e, 0);
			continue;
		}
		assert_int_equal(rc, VELD_EINVALID);
		n = snprintf(want, sizeof want, "[{\"field\":\"vol");
		for (i = 0; i < levels; i++)
			n += snprintf(want + n, sizeof want - (size_t)n, ".n");
		snprintf(want + n, sizeof want - (size_t)n,
		         "\",\"message\":\"Onbekend veld in versie 1 van dit formulier.\"}]");
		assert_string_equal(e, want);
		free(e);
	}
	veld_form__free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_read__nested_flat_and_mixed_read_alike),
		cmocka_unit_test(test_form_read__typed_record),
		cmocka_unit_test(test_form_read__failures_in_form_order),
		cmocka_unit_test(test_form_read__conditions_that_change_r),
		cmocka_unit_test(test_form_read__empty_and_deep_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

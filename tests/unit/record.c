/*
** tests/unit/record.c — the record model: writes, shown values, conflicts,
** delete against edit, flatten, strict parsing and the canonical bytes
** (golden vectors in tests/resources/record-*.json).
**
** VELD_GOLDEN_WRITE=1 rewrites the golden files from the current code
** instead of comparing; review the diff before committing it.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_A   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV_B   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DEV_C   "0123456789abcdef0123456789abcdef"
#define REC_ID  "11111111111111111111111111111111"
#define CASE_ID "22222222222222222222222222222222"
#define T0      ((int64_t)1700000000000)

static veld_stamp st(int64_t wall, uint32_t counter, const char *dev)
{
	veld_stamp s;
	memset(&s, 0, sizeof s);
	s.wall = wall;
	s.counter = counter;
	memcpy(s.device, dev, VELD_DEVICE_ID_LEN);
	return s;
}

static veld_record *mk(void)
{
	veld_record *r = NULL;
	assert_int_equal(veld_record__new(&r, REC_ID, CASE_ID, "sociale_balans"), 0);
	return r;
}

/* Set `path` to the JSON text `value` ("null" clears). */
static void put(veld_record *r, const char *path, const char *value, veld_stamp s)
{
	json_error_t e;
	json_t *v = json_loads(value, JSON_DECODE_ANY, &e);
	assert_non_null(v);
	assert_int_equal(veld_record__set(r, path, v, &s), 0);
	json_decref(v);
}

static veld_record *copy(const veld_record *r)
{
	veld_record *c = mk();
	assert_int_equal(veld_record__merge(c, r), 0);
	return c;
}

/* The shown value of `path` as compact JSON text ("" if unset). */
static void assert_shown(const veld_record *r, const char *path, const char *want, size_t want_live)
{
	size_t n = 99;
	const json_t *v = veld_record__value(r, path, &n);
	char *txt = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	assert_int_equal(n, want_live);
	assert_string_equal(txt ? txt : "", want);
	free(txt);
}

/* A key of the view as compact sorted JSON text ("" if absent). */
static char *view_part(const veld_record *r, const char *key)
{
	json_t *view = veld_record__view(r);
	json_t *part;
	char *txt;
	assert_non_null(view);
	part = json_object_get(view, key);
	txt = part ? json_dumps(part, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("");
	json_decref(view);
	assert_non_null(txt);
	return txt;
}

static void assert_view(const veld_record *r, const char *key, const char *want)
{
	char *got = view_part(r, key);
	if (strcmp(got, want))
		fail_msg("view.%s is %s, want %s", key, got, want);
	free(got);
}

/* ---- writes and shown values --------------------------------------------- */

static void test_record__set_show_view(void **state)
{
	veld_record *r = mk();
	veld_stamp top;
	(void)state;
	assert_string_equal(veld_record__id(r), REC_ID);
	assert_string_equal(veld_record__case(r), CASE_ID);
	assert_string_equal(veld_record__form(r), "sociale_balans");
	assert_int_equal(veld_record__max_stamp(r, &top), VELD_ENOTFOUND);
	assert_shown(r, "afnamedatum", "", 0);

	put(r, "afnamedatum", "\"2024-03-01\"", st(T0, 0, DEV_A));
	put(r, "huisvesting.score", "3", st(T0, 0, DEV_A)); /* one stamp, one put */
	put(r, "context", "\"opmaak\"", st(T0 + 5, 0, DEV_A));
	put(r, "context", "\"evaluatie\"", st(T0 + 9, 0, DEV_A));
	put(r, "detail", "[\"schulden\",\"huisvesting\"]", st(T0 + 9, 1, DEV_A));
	put(r, "_form_version", "2", st(T0 + 9, 1, DEV_A));
	assert_shown(r, "context", "\"evaluatie\"", 1);
	assert_shown(r, "detail", "[\"schulden\",\"huisvesting\"]", 1);

	/* A clear is a version: the value is JSON null, the view omits it. */
	put(r, "afnamedatum", "null", st(T0 + 10, 0, DEV_A));
	assert_shown(r, "afnamedatum", "null", 1);
	assert_view(r, "fields",
	            "{\"context\":\"evaluatie\",\"detail\":[\"schulden\",\"huisvesting\"],\"huisvesting.score\":3}");
	assert_view(r, "conflicts", "{}");
	assert_view(r, "deleted", "false");
	assert_view(r, "concurrent_edits", "");
	assert_int_equal(veld_record__is_deleted(r), 0);

	assert_int_equal(veld_record__max_stamp(r, &top), 0);
	assert_true(top.wall == T0 + 10 && top.counter == 0);
	assert_string_equal(top.device, DEV_A);
	veld_record__free(r);
}

static void test_record__set_rejects_bad_input(void **state)
{
	veld_record *r = mk(), *bad = NULL;
	veld_stamp s = st(T0, 5, DEV_A), old = st(T0, 4, DEV_A), badev = st(T0, 0, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	json_t *obj = json_pack("{s:i}", "a", 1), *nested = json_pack("[{s:i}]", "a", 1);
	json_t *str = json_string("x"), *one = json_integer(1);
	char *before;
	(void)state;
	assert_int_equal(veld_record__set(r, "naam", str, &s), 0);
	before = veld_record__canonical(r);
	assert_int_equal(veld_record__set(r, "_verborgen", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "a..b", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, ".a", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "a.", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "a\nb", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "\xff\xfe", str, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "groep", obj, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "lijst", nested, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "_deleted", one, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "_deleted", NULL, &s), VELD_EINVALID);
	assert_int_equal(veld_record__set(r, "naam", str, &badev), VELD_EINVALID);
	/* Older than what the record holds from this device: refused. */
	assert_int_equal(veld_record__set(r, "naam", str, &old), VELD_EINVALID);
	{
		char *after = veld_record__canonical(r);
		assert_string_equal(before, after); /* nothing changed */
		free(after);
	}
	assert_int_equal(veld_record__new(&bad, "xyz", CASE_ID, "f"), VELD_EINVALID);
	assert_int_equal(veld_record__new(&bad, REC_ID, CASE_ID, "Form"), VELD_EINVALID);
	assert_int_equal(veld_record__new(&bad, REC_ID, CASE_ID, ""), VELD_EINVALID);
	assert_null(bad);
	assert_int_equal(veld_record__new(&bad, REC_ID, REC_ID, "_case"), 0);
	veld_record__free(bad);
	free(before);
	json_decref(obj);
	json_decref(nested);
	json_decref(str);
	json_decref(one);
	veld_record__free(r);
}

/* ---- concurrent edits --------------------------------------------------------- */

static void test_record__concurrent_edits_of_different_fields_both_survive(void **state)
{
	veld_record *base = mk(), *a, *b;
	(void)state;
	put(base, "plaats", "\"zitdag\"", st(T0, 0, DEV_C));
	a = copy(base);
	b = copy(base);
	put(a, "duur_min", "45", st(T0 + 100, 0, DEV_A));
	put(b, "plaats", "\"huisbezoek\"", st(T0 + 50, 0, DEV_B));
	assert_int_equal(veld_record__merge(a, b), 0);
	assert_view(a, "fields", "{\"duur_min\":45,\"plaats\":\"huisbezoek\"}");
	assert_view(a, "conflicts", "{}");
	veld_record__free(base);
	veld_record__free(a);
	veld_record__free(b);
}

static void test_record__conflict_listing_and_resolution(void **state)
{
	veld_record *base = mk(), *a, *b, *c, *ab;
	char *x, *y;
	(void)state;
	put(base, "plaats", "\"zitdag\"", st(T0, 0, DEV_C));
	a = copy(base);
	b = copy(base);
	c = copy(base);
	/* Three devices edit the same field without seeing each other; B's
	** clock is behind, C clears it. */
	put(a, "plaats", "\"huisbezoek\"", st(T0 + 100, 0, DEV_A));
	put(b, "plaats", "\"werkplaats\"", st(T0 + 20, 0, DEV_B));
	put(c, "plaats", "null", st(T0 + 100, 0, DEV_C));
	ab = copy(a);
	assert_int_equal(veld_record__merge(ab, b), 0);
	assert_int_equal(veld_record__merge(ab, c), 0);
	/* Highest stamp shown: same wall, so the device id decides (c's id
	** "0123..." sorts before "aaaa..."). */
	assert_shown(ab, "plaats", "\"huisbezoek\"", 3);
	assert_view(ab, "conflicts", "{\"plaats\":[\"huisbezoek\",null,\"werkplaats\"]}");
	assert_view(ab, "fields", "{\"plaats\":\"huisbezoek\"}");

	/* The same in another order gives the same bytes. */
	assert_int_equal(veld_record__merge(c, b), 0);
	assert_int_equal(veld_record__merge(c, a), 0);
	x = veld_record__canonical(ab);
	y = veld_record__canonical(c);
	assert_string_equal(x, y);
	free(x);
	free(y);

	/* A write that saw all three resolves it, also on a replica that still
	** holds an old version. */
	put(ab, "plaats", "\"zitdag\"", st(T0 + 200, 0, DEV_B));
	assert_shown(ab, "plaats", "\"zitdag\"", 1);
	assert_view(ab, "conflicts", "{}");
	assert_int_equal(veld_record__merge(a, ab), 0);
	assert_shown(a, "plaats", "\"zitdag\"", 1);
	veld_record__free(base);
	veld_record__free(a);
	veld_record__free(b);
	veld_record__free(c);
	veld_record__free(ab);
}

/* ---- delete against edit ---------------------------------------------------- */

static void test_record__delete_seen_edits_are_no_conflict(void **state)
{
	veld_record *r = mk();
	veld_stamp d = st(T0 + 10, 0, DEV_A);
	(void)state;
	put(r, "plaats", "\"zitdag\"", st(T0, 0, DEV_B));
	assert_int_equal(veld_record__delete(r, &d), 0);
	assert_int_equal(veld_record__is_deleted(r), 1);
	assert_view(r, "deleted", "true");
	assert_view(r, "conflicts", "{}");
	assert_view(r, "fields", "{\"plaats\":\"zitdag\"}"); /* a tombstone keeps the fields */
	veld_record__free(r);
}

static void test_record__delete_against_edit_is_a_conflict(void **state)
{
	veld_record *base = mk(), *a, *b, *m, *again, *undel;
	veld_stamp del = st(T0 + 100, 0, DEV_A), redel = st(T0 + 300, 0, DEV_B);
	json_t *f = json_false();
	(void)state;
	put(base, "plaats", "\"zitdag\"", st(T0, 0, DEV_C));
	put(base, "duur_min", "30", st(T0, 0, DEV_C));
	a = copy(base);
	b = copy(base);
	assert_int_equal(veld_record__delete(a, &del), 0);
	put(b, "duur_min", "45", st(T0 + 50, 0, DEV_B)); /* earlier stamp, concurrent */

	m = copy(a);
	assert_int_equal(veld_record__merge(m, b), 0);
	assert_int_equal(veld_record__is_deleted(m), 1);
	assert_view(m, "conflicts", "{\"_deleted\":[true,false]}");
	assert_view(m, "concurrent_edits", "[\"duur_min\"]");
	assert_view(m, "fields", "{\"duur_min\":45,\"plaats\":\"zitdag\"}"); /* the edit is kept */
	{
		/* Symmetric: the editor's side sees the same. */
		veld_record *m2 = copy(b);
		char *x, *y;
		assert_int_equal(veld_record__merge(m2, a), 0);
		x = veld_record__canonical(m);
		y = veld_record__canonical(m2);
		assert_string_equal(x, y);
		free(x);
		free(y);
		veld_record__free(m2);
	}

	/* Resolved by deleting again from a state that holds the edit ... */
	again = copy(m);
	assert_int_equal(veld_record__delete(again, &redel), 0);
	assert_int_equal(veld_record__is_deleted(again), 1);
	assert_view(again, "conflicts", "{}");
	assert_view(again, "concurrent_edits", "");
	/* ... or by undeleting: the record is back with every field. */
	undel = copy(m);
	assert_int_equal(veld_record__set(undel, "_deleted", f, &redel), 0);
	assert_int_equal(veld_record__is_deleted(undel), 0);
	assert_view(undel, "conflicts", "{}");
	assert_view(undel, "fields", "{\"duur_min\":45,\"plaats\":\"zitdag\"}");

	/* An edit after the delete that did not look at it stays a conflict
	** until "_deleted" is written again. */
	put(m, "plaats", "\"elders\"", st(T0 + 400, 0, DEV_C));
	assert_view(m, "concurrent_edits", "[\"duur_min\",\"plaats\"]");
	veld_record__free(base);
	veld_record__free(a);
	veld_record__free(b);
	veld_record__free(m);
	veld_record__free(again);
	veld_record__free(undel);
	json_decref(f);
}

static void test_record__concurrent_delete_and_undelete(void **state)
{
	veld_record *base = mk(), *a, *b, *c;
	veld_stamp d0 = st(T0 + 10, 0, DEV_C), da = st(T0 + 100, 0, DEV_A), db = st(T0 + 200, 0, DEV_B);
	json_t *f = json_false();
	(void)state;
	put(base, "plaats", "\"zitdag\"", st(T0, 0, DEV_C));
	assert_int_equal(veld_record__delete(base, &d0), 0);
	a = copy(base);
	b = copy(base);
	c = copy(base);
	assert_int_equal(veld_record__delete(a, &da), 0); /* agrees: deleted again */
	assert_int_equal(veld_record__set(b, "_deleted", f, &db), 0); /* undelete */
	assert_int_equal(veld_record__merge(c, a), 0);
	assert_view(c, "conflicts", "{}"); /* concurrent deletes that agree */
	assert_int_equal(veld_record__merge(c, b), 0);
	assert_int_equal(veld_record__is_deleted(c), 0); /* the undelete has the higher stamp */
	assert_view(c, "conflicts", "{\"_deleted\":[false,true]}");
	veld_record__free(base);
	veld_record__free(a);
	veld_record__free(b);
	veld_record__free(c);
	json_decref(f);
}

static void test_record__merge_refuses_another_record(void **state)
{
	veld_record *a = mk(), *b = NULL;
	char *before, *after;
	(void)state;
	put(a, "plaats", "\"zitdag\"", st(T0, 0, DEV_A));
	assert_int_equal(veld_record__new(&b, CASE_ID, CASE_ID, "sociale_balans"), 0);
	before = veld_record__canonical(a);
	assert_int_equal(veld_record__merge(a, b), VELD_EINVALID);
	after = veld_record__canonical(a);
	assert_string_equal(before, after);
	free(before);
	free(after);
	veld_record__free(a);
	veld_record__free(b);
}

/* ---- flatten ----------------------------------------------------------------------- */

static void test_record__flatten_groups(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: rejected */
	} cases[] = {
	        {"{}", "{}"},
	        {"{\"datum\":\"2024-03-01\",\"duur_min\":30}", "{\"datum\":\"2024-03-01\",\"duur_min\":30}"},
	        {"{\"huisvesting\":{\"score\":3,\"prioriteit\":true}}",
	         "{\"huisvesting.prioriteit\":true,\"huisvesting.score\":3}"},
	        {"{\"acties\":{\"a1\":{\"status\":\"lopend\",\"termijn\":null},\"b7\":{\"domein\":\"werk\"}}}",
	         "{\"acties.a1.status\":\"lopend\",\"acties.a1.termijn\":null,\"acties.b7.domein\":\"werk\"}"},
	        {"{\"problematiek\":[\"financieel\",\"materieel\"]}", "{\"problematiek\":[\"financieel\",\"materieel\"]}"},
	        {"{\"acties.a1.status\":\"bereikt\"}", "{\"acties.a1.status\":\"bereikt\"}"}, /* a path as key */
	        {"{\"acties.a1\":{\"status\":\"bereikt\"}}", "{\"acties.a1.status\":\"bereikt\"}"},
	        {"{\"leeg\":{}}", NULL},                             /* an empty group */
	        {"{\"acties\":{\"a1\":{}}}", NULL},
	        {"{\"\":1}", NULL},                                   /* empty key */
	        {"{\"acties\":{\"\":{\"status\":1}}}", NULL},         /* empty item id */
	        {"{\"acties\":{\"a.1\":{\"status\":1}}}", NULL},      /* dotted item id */
	        {"{\"a..b\":1}", NULL},                               /* empty segment */
	        {"{\".a\":1}", NULL},
	        {"{\"a.\":1}", NULL},
	        {"{\"a.b\":1,\"a\":{\"b\":2}}", NULL},                /* the same path twice */
	        {"{\"lijst\":[{\"a\":1}]}", NULL},                    /* an object in an array */
	        {"{\"lijst\":[[1]]}", NULL},                          /* nested arrays */
	        {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{"
	         "\"o\":{\"p\":{\"q\":{\"r\":1}}}}}}}}}}}}}}}}}}",
	         NULL}, /* deeper than any form */
	};
	size_t i;
	json_t *arr = json_array();
	(void)state;
	assert_null(veld_record__flatten(arr)); /* not an object */
	assert_null(veld_record__flatten(NULL));
	json_decref(arr);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_error_t e;
		json_t *in = json_loads(cases[i].in, 0, &e), *out;
		assert_non_null(in);
		out = veld_record__flatten(in);
		if (!cases[i].out) {
			if (out)
				fail_msg("flatten accepted %s", cases[i].in);
		} else {
			char *txt;
			if (!out)
				fail_msg("flatten rejected %s", cases[i].in);
			txt = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
			if (strcmp(txt, cases[i].out))
				fail_msg("flatten %s gave %s, want %s", cases[i].in, txt, cases[i].out);
			free(txt);
		}
		json_decref(in);
		json_decref(out);
	}
}

/* ---- parse ------------------------------------------------------------------------ */

#define HDR "\"id\":\"" REC_ID "\",\"case\":\"" CASE_ID "\",\"form\":\"contact\""
#define CTX_A "\"ctx\":{\"" DEV_A "\":[10,0]}"
#define S(w, c) "[" #w "," #c ",\"" DEV_A "\"]"

static void test_record__parse_rejects_malformed(void **state)
{
	static const struct {
		const char *why, *json;
	} cases[] = {
	        {"not JSON", "{\"id\":"},
	        {"trailing data", "{" HDR "," CTX_A ",\"fields\":{}} x"},
	        {"not an object", "[]"},
	        {"duplicate key", "{" HDR "," CTX_A ",\"fields\":{},\"fields\":{}}"},
	        {"missing fields", "{" HDR "," CTX_A "}"},
	        {"unknown key", "{" HDR "," CTX_A ",\"fields\":{},\"extra\":1}"},
	        {"id not hex", "{\"id\":\"x\",\"case\":\"" CASE_ID "\",\"form\":\"c\"," CTX_A ",\"fields\":{}}"},
	        {"id uppercase", "{\"id\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"case\":\"" CASE_ID
	                         "\",\"form\":\"c\"," CTX_A ",\"fields\":{}}"},
	        {"case a number", "{\"id\":\"" REC_ID "\",\"case\":7,\"form\":\"c\"," CTX_A ",\"fields\":{}}"},
	        {"form empty", "{\"id\":\"" REC_ID "\",\"case\":\"" CASE_ID "\",\"form\":\"\"," CTX_A ",\"fields\":{}}"},
	        {"form with space", "{\"id\":\"" REC_ID "\",\"case\":\"" CASE_ID "\",\"form\":\"a b\"," CTX_A
	                            ",\"fields\":{}}"},
	        {"ctx not object", "{" HDR ",\"ctx\":[],\"fields\":{}}"},
	        {"ctx bad device", "{" HDR ",\"ctx\":{\"abc\":[1,0]},\"fields\":{}}"},
	        {"ctx entry shape", "{" HDR ",\"ctx\":{\"" DEV_A "\":[1,0,2]},\"fields\":{}}"},
	        {"ctx negative wall", "{" HDR ",\"ctx\":{\"" DEV_A "\":[-1,0]},\"fields\":{}}"},
	        {"ctx real counter", "{" HDR ",\"ctx\":{\"" DEV_A "\":[1,0.5]},\"fields\":{}}"},
	        {"fields not object", "{" HDR "," CTX_A ",\"fields\":[]}"},
	        {"versions not array", "{" HDR "," CTX_A ",\"fields\":{\"a\":{\"s\":" S(1, 0) ",\"v\":1}}}"},
	        {"no versions", "{" HDR "," CTX_A ",\"fields\":{\"a\":[]}}"},
	        {"version not object", "{" HDR "," CTX_A ",\"fields\":{\"a\":[1]}}"},
	        {"version without v", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) "}]}}"},
	        {"version extra key", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) ",\"v\":1,\"x\":2}]}}"},
	        {"stamp short", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":[1,0],\"v\":1}]}}"},
	        {"stamp bad device", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":[1,0,\"A\"],\"v\":1}]}}"},
	        {"stamp wall too big", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(9007199254740992, 0)
	                               ",\"v\":1}]}}"},
	        {"stamp not covered", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(11, 0) ",\"v\":1}]}}"},
	        {"stamp of unknown device", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":[1,0,\"" DEV_B
	                                    "\"],\"v\":1}]}}"},
	        {"two versions of one device", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0)
	                                       ",\"v\":1},{\"s\":" S(2, 0) ",\"v\":2}]}}"},
	        {"same stamp twice", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) ",\"v\":1},{\"s\":" S(1, 0)
	                             ",\"v\":1}]}}"},
	        {"object value", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) ",\"v\":{\"b\":1}}]}}"},
	        {"nested array value", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) ",\"v\":[[1]]}]}}"},
	        {"empty path", "{" HDR "," CTX_A ",\"fields\":{\"\":[{\"s\":" S(1, 0) ",\"v\":1}]}}"},
	        {"empty segment", "{" HDR "," CTX_A ",\"fields\":{\"a..b\":[{\"s\":" S(1, 0) ",\"v\":1}]}}"},
	        {"control char in path", "{" HDR "," CTX_A ",\"fields\":{\"a\\tb\":[{\"s\":" S(1, 0) ",\"v\":1}]}}"},
	        {"unknown reserved path", "{" HDR "," CTX_A ",\"fields\":{\"_x\":[{\"s\":" S(1, 0) ",\"v\":1}]}}"},
	        {"NUL in a string", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0) ",\"v\":\"a\\u0000b\"}]}}"},
	        {"_deleted not boolean", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(1, 0) ",\"v\":1}]}}"},
	        {"delete without k", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(1, 0) ",\"v\":true}]}}"},
	        {"undelete with k", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(1, 0)
	                            ",\"v\":false,\"k\":{\"" DEV_A "\":[1,0]}}]}}"},
	        {"k on an ordinary field", "{" HDR "," CTX_A ",\"fields\":{\"a\":[{\"s\":" S(1, 0)
	                                   ",\"v\":true,\"k\":{\"" DEV_A "\":[1,0]}}]}}"},
	        {"k not covering its stamp", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(5, 0)
	                                     ",\"v\":true,\"k\":{\"" DEV_A "\":[4,0]}}]}}"},
	        {"k ahead of ctx", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(5, 0)
	                           ",\"v\":true,\"k\":{\"" DEV_A "\":[10,1]}}]}}"},
	        {"k malformed", "{" HDR "," CTX_A ",\"fields\":{\"_deleted\":[{\"s\":" S(5, 0) ",\"v\":true,\"k\":[]}]}}"},
	        {"invalid JSON with a name in it", "{\"naam\": Janssens}"},
	};
	size_t i;
	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		veld_record *r = NULL;
		veld_err err = {0, ""};
		int rc = veld_record__parse(&r, cases[i].json, strlen(cases[i].json), &err);
		if (rc != VELD_EINTEGRITY)
			fail_msg("case '%s': rc %d, want VELD_EINTEGRITY", cases[i].why, rc);
		assert_null(r);
		assert_int_equal(err.code, VELD_EINTEGRITY);
		if (!err.msg[0])
			fail_msg("case '%s': no message", cases[i].why);
		if (strstr(err.msg, "Janssens"))
			fail_msg("case '%s': the message quotes the data: %s", cases[i].why, err.msg);
	}
	{
		/* Not even a length: a NUL byte inside the buffer. */
		static const char withnul[] = "{\"id\"\0:1}";
		veld_record *r = NULL;
		veld_err err = {0, ""};
		assert_int_equal(veld_record__parse(&r, withnul, sizeof withnul - 1, &err), VELD_EINTEGRITY);
	}
}

static void test_record__parse_recanonicalises(void **state)
{
	/* Versions out of order, keys unsorted, whitespace: accepted, and the
	** canonical bytes come out sorted. */
	static const char in[] =
	        "{ \"fields\": {\"plaats\": [ {\"v\": \"zitdag\", \"s\": [5, 0, \"" DEV_B "\"]},\n"
	        "                           {\"s\": [3, 2, \"" DEV_A "\"], \"v\": \"huisbezoek\"} ] },\n"
	        "  \"form\": \"contactregistratie\", \"ctx\": {\"" DEV_B "\": [5, 0], \"" DEV_A "\": [3, 2]},\n"
	        "  \"case\": \"" CASE_ID "\", \"id\": \"" REC_ID "\" }";
	static const char want[] =
	        "{\"case\":\"" CASE_ID "\",\"ctx\":{\"" DEV_A "\":[3,2],\"" DEV_B "\":[5,0]},\"fields\":{\"plaats\":"
	        "[{\"s\":[3,2,\"" DEV_A "\"],\"v\":\"huisbezoek\"},{\"s\":[5,0,\"" DEV_B "\"],\"v\":\"zitdag\"}]},"
	        "\"form\":\"contactregistratie\",\"id\":\"" REC_ID "\"}";
	veld_record *r = NULL;
	veld_err err = {0, ""};
	char *c;
	(void)state;
	assert_int_equal(veld_record__parse(&r, in, strlen(in), &err), 0);
	c = veld_record__canonical(r);
	assert_string_equal(c, want);
	assert_shown(r, "plaats", "\"zitdag\"", 2);
	free(c);
	veld_record__free(r);
}

/* ---- golden vectors ------------------------------------------------------------------ */

/* File helpers of our own: this test needs nothing of the store. */
static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

static int write_all(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	if (fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static char *resource_path(const char *name)
{
	const char *env = getenv("VELD_TEST_RESOURCES");
	char dir[4096];
	if (env && *env) {
		snprintf(dir, sizeof dir, "%s", env);
	} else {
		/* tests/unit/record.c -> tests/resources */
		char *slash;
		snprintf(dir, sizeof dir, "%s", __FILE__);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof dir, "tests");
		strncat(dir, "/resources", sizeof dir - strlen(dir) - 1);
	}
	{
		size_t n = strlen(dir) + strlen(name) + 2;
		char *p = malloc(n);
		assert_non_null(p);
		snprintf(p, n, "%s/%s", dir, name);
		return p;
	}
}

/* The canonical bytes of `r`, then a newline, are the file's bytes; and the
** file parses back to the same bytes. */
static void check_golden(const veld_record *r, const char *name)
{
	char *path = resource_path(name), *c = veld_record__canonical(r), *want;
	const char *w = getenv("VELD_GOLDEN_WRITE");
	unsigned char *file;
	size_t len = 0, n;
	veld_record *back = NULL;
	veld_err err = {0, ""};
	assert_non_null(c);
	n = strlen(c);
	want = malloc(n + 2);
	assert_non_null(want);
	memcpy(want, c, n);
	want[n] = '\n';
	want[n + 1] = '\0';
	if (w && !strcmp(w, "1"))
		assert_int_equal(write_all(path, want, n + 1), 0);
	file = read_all(path, &len);
	if (!file)
		fail_msg("golden file %s is missing", path);
	if (len != n + 1 || memcmp(file, want, n + 1))
		fail_msg("canonical bytes differ from %s:\n got: %s", path, c);
	assert_int_equal(veld_record__parse(&back, (const char *)file, len, &err), 0);
	{
		char *again = veld_record__canonical(back);
		assert_string_equal(again, c);
		free(again);
	}
	veld_record__free(back);
	free(file);
	free(want);
	free(c);
	free(path);
}

static void test_record__golden_basic(void **state)
{
	veld_record *r = NULL;
	(void)state;
	assert_int_equal(veld_record__new(&r, REC_ID, CASE_ID, "contactregistratie"), 0);
	put(r, "_form_version", "1", st(T0, 0, DEV_A));
	put(r, "datum", "\"2024-03-01\"", st(T0, 0, DEV_A));
	put(r, "plaats", "\"huisbezoek\"", st(T0, 0, DEV_A));
	put(r, "problematiek", "[\"financieel\",\"materieel\"]", st(T0, 0, DEV_A));
	put(r, "duur_min", "45", st(T0 + 60000, 0, DEV_A));
	put(r, "initiatief", "null", st(T0 + 60000, 0, DEV_A));
	check_golden(r, "record-basic.json");
	veld_record__free(r);
}

static void test_record__golden_conflict(void **state)
{
	veld_record *a = mk(), *b;
	(void)state;
	put(a, "huisvesting.score", "2", st(T0, 0, DEV_C));
	put(a, "acties.a1.status", "\"gepland\"", st(T0, 0, DEV_C));
	b = copy(a);
	put(a, "huisvesting.score", "3", st(T0 + 5, 0, DEV_A));
	put(b, "huisvesting.score", "4", st(T0 + 5, 0, DEV_B));
	put(b, "acties.a1.status", "\"lopend\"", st(T0 + 5, 0, DEV_B));
	assert_int_equal(veld_record__merge(a, b), 0);
	assert_view(a, "conflicts", "{\"huisvesting.score\":[4,3]}");
	check_golden(a, "record-conflict.json");
	veld_record__free(a);
	veld_record__free(b);
}

static void test_record__golden_deleted(void **state)
{
	veld_record *a = mk(), *b;
	veld_stamp d = st(T0 + 100, 1, DEV_A);
	(void)state;
	put(a, "synthese", "\"tekst\"", st(T0, 0, DEV_B));
	b = copy(a);
	assert_int_equal(veld_record__delete(a, &d), 0);
	put(b, "synthese", "\"andere tekst\"", st(T0 + 50, 0, DEV_B));
	assert_int_equal(veld_record__merge(a, b), 0);
	assert_view(a, "concurrent_edits", "[\"synthese\"]");
	check_golden(a, "record-deleted.json");
	veld_record__free(a);
	veld_record__free(b);
}

static void test_record__golden_values(void **state)
{
	veld_record *r = mk();
	(void)state;
	/* One number rule: integers as integers, reals with 17 significant
	** digits (an integral real keeps ".0"); UTF-8 as is; escapes minimal. */
	put(r, "bedrag", "25630.67", st(T0, 0, DEV_A));
	put(r, "percentage", "0.1", st(T0, 0, DEV_A));
	put(r, "geheel", "3.0", st(T0, 0, DEV_A));
	put(r, "groot", "-9007199254740993", st(T0, 0, DEV_A));
	put(r, "klein", "1e-300", st(T0, 0, DEV_A));
	put(r, "naam", "\"Cliënt \\\"Ø\\\" \\\\ /\\n\\t\\u0001 \\u2028 😀\"", st(T0, 0, DEV_A));
	put(r, "leeg", "\"\"", st(T0, 0, DEV_A));
	put(r, "lijst", "[true,false,null,1,\"x\"]", st(T0, 0, DEV_A));
	put(r, "geen", "[]", st(T0, 0, DEV_A));
	put(r, "ja", "true", st(T0, 0, DEV_A));
	put(r, "Zebra", "1", st(T0, 0, DEV_A)); /* keys sort bytewise: 'Z' < 'a' */
	put(r, "énorm", "2", st(T0, 0, DEV_A));  /* and UTF-8 after ASCII */
	check_golden(r, "record-values.json");
	veld_record__free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_record__set_show_view),
	        cmocka_unit_test(test_record__set_rejects_bad_input),
	        cmocka_unit_test(test_record__concurrent_edits_of_different_fields_both_survive),
	        cmocka_unit_test(test_record__conflict_listing_and_resolution),
	        cmocka_unit_test(test_record__delete_seen_edits_are_no_conflict),
	        cmocka_unit_test(test_record__delete_against_edit_is_a_conflict),
	        cmocka_unit_test(test_record__concurrent_delete_and_undelete),
	        cmocka_unit_test(test_record__merge_refuses_another_record),
	        cmocka_unit_test(test_record__flatten_groups),
	        cmocka_unit_test(test_record__parse_rejects_malformed),
	        cmocka_unit_test(test_record__parse_recanonicalises),
	        cmocka_unit_test(test_record__golden_basic),
	        cmocka_unit_test(test_record__golden_conflict),
	        cmocka_unit_test(test_record__golden_deleted),
	        cmocka_unit_test(test_record__golden_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** gate.c — one gate for every value: veld_resolve is checked by the form
** like a put (nothing stored when refused); a value written to a hidden
** field is refused by put, import and resolve; text fields and records
** have size bounds (a text without max_length VELD_TEXT_MAX characters, a
** record's canonical state VELD_RECORD_MAX bytes), on put, import and
** resolve and on a merge, which refuses a larger record; the conflicts
** name who wrote each value and when; a case header's birth date is a day
** of the calendar, not in the future.
*/
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define CONTACT "{\"datum\":\"2018-02-03\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"administratief\"],\"duur_min\":30}"

typedef struct one {
	char *dir;
	veld_store *s;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE];
} one;

/* A store with one case and one contact in it. */
static void one_up(one *o)
{
	veld_store_options opt;
	veld_test_fast_options(&opt);
	o->dir = veld_test_tmpdir("gate");
	assert_int_equal(veld_store_create(&o->s, o->dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &opt), VELD_OK);
	assert_int_equal(veld_case_new(o->cid, o->s, "{\"name\":\"Jan\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(o->rid, o->s, o->cid, "contactregistratie", NULL, CONTACT), VELD_OK);
}

static void one_down(one *o)
{
	veld_store_close(o->s);
	veld_test_rmtree(o->dir);
	free(o->dir);
}

/* The shown value of `field` of record `rid` (or of the header of case
** `rid`) as compact JSON ("" when absent). */
static char *shown(veld_store *s, const char *rid, const char *field)
{
	char *out = NULL, *v;
	json_t *j, *f;
	if (veld_record_show_json(&out, s, rid) == VELD_ENOTFOUND)
		assert_int_equal(veld_case_show_json(&out, s, rid), VELD_OK);
	assert_non_null(out);
	j = json_loads(out, 0, NULL);
	f = json_object_get(json_object_get(j, "fields"), field);
	if (!f)
		f = json_object_get(json_object_get(j, "header"), field);
	v = f ? json_dumps(f, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("");
	json_decref(j);
	veld_free(out);
	return v;
}

static void assert_shown(veld_store *s, const char *rid, const char *field, const char *want)
{
	char *v = shown(s, rid, field);
	assert_string_equal(v, want);
	free(v);
}

/* A refusal with VELD_EINVALID whose message names `what`. */
static void assert_refused(veld_store *s, int rc, const char *what)
{
	if (rc != VELD_EINVALID)
		fail_msg("rc %d, wanted VELD_EINVALID naming '%s': %s", rc, what, veld_errmsg(s));
	if (!strstr(veld_errmsg(s), what))
		fail_msg("message '%s' does not name '%s'", veld_errmsg(s), what);
}

/* A text of `n` bytes 'a' as a JSON string (malloc'd). */
static char *long_text(size_t n)
{
	char *t = malloc(n + 3);
	assert_non_null(t);
	t[0] = '"';
	memset(t + 1, 'a', n);
	t[n + 1] = '"';
	t[n + 2] = '\0';
	return t;
}

/* ---- resolve goes through the form ---------------------------------------------- */

static void test_gate__resolve_is_checked_by_the_form(void **state)
{
	one o;
	(void)state;
	one_up(&o);
	assert_refused(o.s, veld_resolve(o.s, o.rid, "plaats", "\"maan\""), "plaats");
	assert_refused(o.s, veld_resolve(o.s, o.rid, "duur_min", "99999"), "duur_min");
	assert_refused(o.s, veld_resolve(o.s, o.rid, "duur_min", "\"lang\""), "duur_min");
	assert_refused(o.s, veld_resolve(o.s, o.rid, "problematiek", "\"financieel\""), "problematiek");
	/* Nothing stored. */
	assert_shown(o.s, o.rid, "plaats", "\"huisbezoek\"");
	assert_shown(o.s, o.rid, "duur_min", "30");
	/* A value the form accepts is written. */
	assert_int_equal(veld_resolve(o.s, o.rid, "duur_min", "1440"), VELD_OK);
	assert_shown(o.s, o.rid, "duur_min", "1440");
	assert_int_equal(veld_resolve(o.s, o.rid, "plaats", "\"zitdag\""), VELD_OK);
	assert_shown(o.s, o.rid, "plaats", "\"zitdag\"");
	/* A required field cannot be resolved away. */
	assert_refused(o.s, veld_resolve(o.s, o.rid, "plaats", "null"), "plaats");
	/* "_deleted" still settles with true or false, and a deleted record's
	** fields are still checked. */
	assert_int_equal(veld_record_delete(o.s, o.rid), VELD_OK);
	assert_refused(o.s, veld_resolve(o.s, o.rid, "duur_min", "-1"), "duur_min");
	assert_int_equal(veld_resolve(o.s, o.rid, "_deleted", "false"), VELD_OK);
	assert_refused(o.s, veld_resolve(o.s, o.rid, "_deleted", "\"no\""), "_deleted");
	/* A case header's field by the header's rules. */
	assert_int_equal(veld_case_update(o.s, o.cid, "{\"birth\":\"1980-05-06\"}"), VELD_OK);
	assert_refused(o.s, veld_resolve(o.s, o.cid, "birth", "\"2023-02-29\""), "birth");
	assert_refused(o.s, veld_resolve(o.s, o.cid, "postcode", "\"123\""), "postcode");
	assert_refused(o.s, veld_resolve(o.s, o.cid, "name", "null"), "name");
	assert_refused(o.s, veld_resolve(o.s, o.cid, "name", "[\"a\"]"), "name");
	assert_int_equal(veld_resolve(o.s, o.cid, "birth", "\"1980-05-07\""), VELD_OK);
	one_down(&o);
}

/* ---- hidden fields --------------------------------------------------------------- */

static void test_gate__hidden_field_refused_by_put_import_and_resolve(void **state)
{
	one o;
	char *errs = NULL, *big, line[400];
	long n = -1;
	(void)state;
	one_up(&o);
	/* doorverwezen_naar is asked only when the help includes a referral. */
	assert_refused(o.s, veld_record_put(NULL, o.s, o.cid, "contactregistratie", o.rid, "{\"doorverwezen_naar\":\"OCMW\"}"),
	               "doorverwezen_naar");
	assert_refused(o.s, veld_record_put(NULL, o.s, o.cid, "contactregistratie", o.rid, "{\"doorverwezen_naar\":[\"x\"]}"),
	               "doorverwezen_naar");
	assert_shown(o.s, o.rid, "doorverwezen_naar", "");
	/* Apps see it in the list of failures. */
	assert_int_equal(veld_record_validate_json(&errs, o.s, o.cid, "contactregistratie", o.rid,
	                                           "{\"doorverwezen_naar\":\"OCMW\"}"),
	                 VELD_EINVALID);
	assert_non_null(strstr(errs, "\"field\":\"doorverwezen_naar\""));
	veld_free(errs);
	/* An import line with a large hidden value: refused by its line, nothing stored. */
	big = long_text(300000);
	snprintf(line, sizeof line, "{\"case\":\"%s\",\"form\":\"contactregistratie\",\"fields\":{\"datum\":\"2018-01-01\","
	                            "\"plaats\":\"zitdag\",\"problematiek\":[\"materieel\"],\"doorverwezen_naar\":",
	         o.cid);
	{
		size_t a = strlen(line), b = strlen(big);
		char *jl = malloc(a + b + 4);
		assert_non_null(jl);
		memcpy(jl, line, a);
		memcpy(jl + a, big, b);
		memcpy(jl + a + b, "}}\n", 4);
		assert_refused(o.s, veld_import(&n, o.s, jl, strlen(jl), NULL, NULL), "line 1");
		assert_non_null(strstr(veld_errmsg(o.s), "doorverwezen_naar"));
		assert_int_equal(n, 0);
		free(jl);
	}
	free(big);
	/* Visible, it is taken; hidden again by a later put, the stored value
	** stays (the form ignores it) and a new value for it is refused. */
	assert_int_equal(veld_record_put(NULL, o.s, o.cid, "contactregistratie", o.rid,
	                                 "{\"wijze_van_hulpverlening\":[\"doorverwijzing\"],\"doorverwezen_naar\":\"OCMW\"}"),
	                 VELD_OK);
	assert_int_equal(veld_record_put(NULL, o.s, o.cid, "contactregistratie", o.rid, "{\"wijze_van_hulpverlening\":null}"),
	                 VELD_OK);
	assert_shown(o.s, o.rid, "doorverwezen_naar", "\"OCMW\"");
	assert_refused(o.s, veld_resolve(o.s, o.rid, "doorverwezen_naar", "\"CAW\""), "doorverwezen_naar");
	assert_refused(o.s, veld_resolve(o.s, o.rid, "doorverwezen_naar", "[1]"), "doorverwezen_naar");
	assert_int_equal(veld_resolve(o.s, o.rid, "doorverwezen_naar", "null"), VELD_OK);
	assert_shown(o.s, o.rid, "doorverwezen_naar", "");
	one_down(&o);
}

/* ---- size bounds ------------------------------------------------------------------ */

/* A Sociale Balans with every domain scored "nvt" and `n_texts` of its
** domain texts (32 at most) `len` characters long; malloc'd JSON. */
static char *balans(size_t n_texts, size_t len)
{
	static const char *const dom[] = {"familiale_situatie", "huisvesting", "gezondheid_lichamelijk",
	                                  "gezondheid_psychisch", "inkomen", "budget_schulden", "administratie",
	                                  "mobiliteit", "opleiding_vorming", "werk", "vrije_tijd", "zelfvertrouwen",
	                                  "communicatie", "ict_vaardigheden", "sociaal_netwerk",
	                                  "organisatie_planning"};
	json_t *j = json_pack("{s:s}", "afnamedatum", "2024-03-01");
	char *text = malloc(len + 1), *out;
	size_t i;
	assert_non_null(text);
	memset(text, 'b', len);
	text[len] = '\0';
	for (i = 0; i < 16; i++) {
		json_t *g = json_pack("{s:s}", "score", "nvt");
		if (i < n_texts)
			json_object_set_new(g, "stabiliserend", json_string(text));
		if (i + 16 < n_texts)
			json_object_set_new(g, "destabiliserend", json_string(text));
		json_object_set_new(j, dom[i], g);
	}
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(text);
	return out;
}

static void test_gate__text_and_record_bounds(void **state)
{
	one o;
	char bid[VELD_IDSIZE], *rec, *jl, *t;
	long n = -1;
	size_t len;
	(void)state;
	one_up(&o);
	/* A text field without max_length: VELD_TEXT_MAX characters. */
	rec = balans(1, VELD_TEXT_MAX + 1);
	assert_refused(o.s, veld_record_put(NULL, o.s, o.cid, "sociale_balans", NULL, rec), "10000");
	free(rec);
	rec = balans(1, VELD_TEXT_MAX);
	assert_int_equal(veld_record_put(bid, o.s, o.cid, "sociale_balans", NULL, rec), VELD_OK);
	free(rec);
	t = long_text(VELD_TEXT_MAX + 1);
	assert_refused(o.s, veld_resolve(o.s, bid, "familiale_situatie.stabiliserend", t), "stabiliserend");
	free(t);
	/* A record: VELD_RECORD_MAX bytes of canonical state, on put ... */
	rec = balans(30, 9000);
	assert_refused(o.s, veld_record_put(NULL, o.s, o.cid, "sociale_balans", NULL, rec), "256 KiB");
	/* ... on import (by its line, nothing stored) ... */
	len = strlen(rec) + 200;
	jl = malloc(len);
	assert_non_null(jl);
	snprintf(jl, len, "{\"case\":\"%s\",\"form\":\"sociale_balans\",\"fields\":%s}\n", o.cid, rec);
	assert_refused(o.s, veld_import(&n, o.s, jl, strlen(jl), NULL, NULL), "line 1");
	assert_non_null(strstr(veld_errmsg(o.s), "256 KiB"));
	assert_int_equal(n, 0);
	free(jl);
	free(rec);
	/* ... and on resolve: a record just under the bound cannot grow past it. */
	rec = balans(28, 9000);
	assert_int_equal(veld_record_put(bid, o.s, o.cid, "sociale_balans", bid, rec), VELD_OK);
	free(rec);
	assert_int_equal(veld_record_put(bid, o.s, o.cid, "sociale_balans", bid, "{\"synthese\":\"kort\"}"), VELD_OK);
	t = long_text(9000);
	assert_refused(o.s, veld_resolve(o.s, bid, "synthese", t), "256 KiB");
	free(t);
	assert_shown(o.s, bid, "synthese", "\"kort\"");
	one_down(&o);
}

/* Syncs of the stores named in `order` ('o' office, 'a', 'b'), in turn. */
static void syncs(veld_test_net *n, const char *order)
{
	for (; *order; order++)
		json_decref(veld_test_sync(*order == 'o' ? n->office : *order == 'a' ? n->a : n->b, VELD_OK));
}

/* An office and two assistants of one region; a case and a contact made
** on A, and synced as far as `order` says. */
static void net_with_contact(veld_test_net *n, const char *tag, char *cid, char *rid, const char *order)
{
	veld_test_net_up(n, tag, "assistant", "3000-3499", "assistant", "3000-3499");
	syncs(n, "ab");
	assert_int_equal(veld_case_new(cid, n->a, "{\"name\":\"An\",\"postcode\":\"3001\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, n->a, cid, "contactregistratie", NULL, CONTACT), VELD_OK);
	syncs(n, order);
}

/* A record larger than the bound that reaches a store through sync (its
** writer's store bypassed) is refused by the merge: the sync succeeds, the
** record stays as it was. */
static void test_gate__merge_refuses_a_record_over_the_bound(void **state)
{
	veld_test_net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *big;
	veld_record *r = NULL;
	veld_stamp st;
	json_t *v;
	sqlite3_stmt *q = NULL;
	(void)state;
	net_with_contact(&n, "gate-merge", cid, rid, "ao");
	assert_shown(n.office, rid, "plaats", "\"huisbezoek\"");
	/* A's record gains 300 kB in a hidden field, written past the gate. */
	assert_int_equal(veld_store__record_load(&r, n.a, rid), VELD_OK);
	big = malloc(300001);
	assert_non_null(big);
	memset(big, 'x', 300000);
	big[300000] = '\0';
	v = json_string(big);
	assert_int_equal(veld_store__stamp(n.a, &st), VELD_OK);
	assert_int_equal(veld_record__set(r, "doorverwezen_naar", v, &st), VELD_OK);
	json_decref(v);
	free(big);
	big = veld_record__canonical(r);
	assert_true(strlen(big) > VELD_RECORD_MAX);
	assert_int_equal(sqlite3_prepare_v2(veld_store__db(n.a), "UPDATE records SET state = ?1, dirty = 1 WHERE id = ?2",
	                                    -1, &q, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(q, 1, big, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, rid, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	free(big);
	/* The store itself refuses to save it. */
	assert_refused(n.a, veld_store__record_save(n.a, r, 1, NULL), "256 KiB");
	veld_record__free(r);
	/* Synced: the office and B do not take it. */
	syncs(&n, "aob");
	assert_shown(n.office, rid, "doorverwezen_naar", "");
	assert_shown(n.office, rid, "plaats", "\"huisbezoek\"");
	assert_shown(n.b, rid, "doorverwezen_naar", "");
	veld_test_net_down(&n);
}

/* ---- who wrote each value of a conflict --------------------------------------------- */

static void test_gate__conflicts_name_the_writer_and_the_time(void **state)
{
	veld_test_net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *out = NULL;
	json_t *arr, *c, *vers, *e;
	size_t i;
	(void)state;
	net_with_contact(&n, "gate-conflicts", cid, rid, "aob");
	assert_int_equal(veld_record_put(NULL, n.a, cid, "contactregistratie", rid, "{\"plaats\":\"zitdag\"}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "contactregistratie", rid, "{\"plaats\":\"werkplaats\"}"), VELD_OK);
	syncs(&n, "aboa");
	assert_int_equal(veld_conflicts_json(&out, n.a), VELD_OK);
	arr = json_loads(out, 0, NULL);
	veld_free(out);
	assert_int_equal(json_array_size(arr), 1);
	c = json_array_get(arr, 0);
	vers = json_object_get(c, "versions");
	assert_int_equal(json_array_size(vers), 2);
	json_array_foreach(vers, i, e)
	{
		const char *dev = json_string_value(json_object_get(e, "device"));
		const char *val = json_string_value(json_object_get(e, "value"));
		/* the same order as "values"; each writer named, with its time */
		assert_true(json_equal(json_object_get(e, "value"), json_array_get(json_object_get(c, "values"), i)));
		assert_non_null(dev);
		assert_string_equal(dev, !strcmp(val, "zitdag") ? n.a_id : n.b_id);
		assert_string_equal(json_string_value(json_object_get(e, "device_name")), "assistant");
		assert_true(json_integer_value(json_object_get(e, "at")) > 1700000000000LL);
	}
	json_decref(arr);
	/* Delete against edit: `true` by the deleter, `false` by the editor. */
	assert_int_equal(veld_resolve(n.a, rid, "plaats", "\"zitdag\""), VELD_OK);
	syncs(&n, "aob");
	assert_int_equal(veld_record_delete(n.a, rid), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "contactregistratie", rid, "{\"duur_min\":15}"), VELD_OK);
	syncs(&n, "aboa");
	assert_int_equal(veld_conflicts_json(&out, n.a), VELD_OK);
	arr = json_loads(out, 0, NULL);
	veld_free(out);
	c = json_array_get(arr, 0);
	assert_string_equal(json_string_value(json_object_get(c, "field")), "_deleted");
	vers = json_object_get(c, "versions");
	assert_int_equal(json_array_size(vers), 2);
	assert_true(json_is_true(json_object_get(json_array_get(vers, 0), "value")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(vers, 0), "device")), n.a_id);
	assert_true(json_is_false(json_object_get(json_array_get(vers, 1), "value")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(vers, 1), "device")), n.b_id);
	json_decref(arr);
	veld_test_net_down(&n);
}

/* ---- birth dates ------------------------------------------------------------------- */

static void test_gate__birth_is_a_real_date_not_in_the_future(void **state)
{
	one o;
	char id[VELD_IDSIZE];
	(void)state;
	one_up(&o);
	assert_refused(o.s, veld_case_new(id, o.s, "{\"name\":\"X\",\"postcode\":\"3000\",\"birth\":\"2024-02-30\"}"),
	               "birth");
	assert_refused(o.s, veld_case_new(id, o.s, "{\"name\":\"X\",\"postcode\":\"3000\",\"birth\":\"2023-02-29\"}"),
	               "birth");
	assert_refused(o.s, veld_case_new(id, o.s, "{\"name\":\"X\",\"postcode\":\"3000\",\"birth\":\"2199-01-01\"}"),
	               "future");
	assert_int_equal(veld_case_new(id, o.s, "{\"name\":\"X\",\"postcode\":\"3000\",\"birth\":\"2024-02-29\"}"), VELD_OK);
	assert_refused(o.s, veld_case_update(o.s, id, "{\"birth\":\"2001-04-31\"}"), "birth");
	assert_refused(o.s, veld_case_update(o.s, id, "{\"birth\":\"2199-01-01\"}"), "future");
	assert_refused(o.s, veld_resolve(o.s, id, "birth", "\"2199-01-01\""), "future");
	assert_int_equal(veld_case_update(o.s, id, "{\"birth\":\"2001-04-30\"}"), VELD_OK);
	assert_shown(o.s, id, "birth", "\"2001-04-30\"");
	one_down(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_gate__resolve_is_checked_by_the_form),
	        cmocka_unit_test(test_gate__hidden_field_refused_by_put_import_and_resolve),
	        cmocka_unit_test(test_gate__text_and_record_bounds),
	        cmocka_unit_test(test_gate__merge_refuses_a_record_over_the_bound),
	        cmocka_unit_test(test_gate__conflicts_name_the_writer_and_the_time),
	        cmocka_unit_test(test_gate__birth_is_a_real_date_not_in_the_future),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** drafts.c — records being filled in (core/drafts.c, veld.h "Drafts"):
** put, get, list and delete; what a put refuses; a draft stays on its
** device through a sync, and goes when its case is erased.
*/
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const char PASS[] = "correct horse battery staple";

#define MARK "concept-notitie-QWERTY"

/* A store with two cases, for the tests that need no sync. */
typedef struct fixture {
	char *dir;
	veld_store *s;
	char cid[VELD_IDSIZE], other[VELD_IDSIZE];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	veld_store_options o;
	assert_non_null(f);
	f->dir = veld_test_tmpdir("drafts");
	veld_test_fast_options(&o);
	assert_int_equal(veld_store_create(&f->s, f->dir, PASS, strlen(PASS), &o), VELD_OK);
	assert_int_equal(veld_case_new(f->cid, f->s, "{\"name\":\"Concept\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_case_new(f->other, f->s, "{\"name\":\"Ander\",\"postcode\":\"3001\"}"), VELD_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	veld_store_close(f->s);
	veld_test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static json_t *list(veld_store *s, const char *case_id, const char *form)
{
	char *out = NULL;
	json_t *j;
	assert_int_equal(veld_draft_list_json(&out, s, case_id, form), VELD_OK);
	j = json_loads(out, 0, NULL);
	assert_true(json_is_array(j));
	veld_free(out);
	return j;
}

static void test_drafts__put_get_list_delete(void **state)
{
	fixture *f = *state;
	veld_store *s = f->s;
	const char *cid = f->cid, *other = f->other;
	char d1[VELD_IDSIZE], d2[VELD_IDSIZE], again[VELD_IDSIZE], *out = NULL;
	json_t *j, *e;
	assert_int_equal(veld_draft_put(d1, s, NULL, cid, "sociale_balans",
	                                "{\"fields\":{\"afnamedatum\":\"2024-01-10\",\"synthese\":\"" MARK
	                                "\",\"context\":null},\"asked\":[\"afnamedatum\"]}"),
	                 VELD_OK);
	assert_true(strlen(d1) == VELD_IDSIZE - 1);
	assert_int_equal(veld_draft_put(d2, s, NULL, other, "contactregistratie", NULL), VELD_OK);

	/* get: the draft as put, two answers (a null is none) */
	assert_int_equal(veld_draft_get(&out, s, d1), VELD_OK);
	j = json_loads(out, 0, NULL);
	veld_free(out);
	assert_string_equal(json_string_value(json_object_get(j, "case")), cid);
	assert_string_equal(json_string_value(json_object_get(j, "form")), "sociale_balans");
	assert_int_equal(json_integer_value(json_object_get(j, "answers")), 2);
	assert_true(json_integer_value(json_object_get(j, "updated")) > 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(j, "draft"), "fields"),
	                                                      "synthese")),
	                    MARK);
	json_decref(j);

	/* list: all, by case, by case and form; no answers in it */
	j = list(s, NULL, NULL);
	assert_int_equal(json_array_size(j), 2);
	json_decref(j);
	j = list(s, cid, NULL);
	assert_int_equal(json_array_size(j), 1);
	e = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(e, "id")), d1);
	assert_null(json_object_get(e, "draft"));
	json_decref(j);
	j = list(s, cid, "contactregistratie");
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);

	/* replace: same id, new answers */
	assert_int_equal(veld_draft_put(again, s, d1, cid, "sociale_balans", "{\"fields\":{\"afnamedatum\":\"2024-01-11\"}}"),
	                 VELD_OK);
	assert_string_equal(again, d1);
	j = list(s, cid, "sociale_balans");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "answers")), 1);
	json_decref(j);

	/* delete */
	assert_int_equal(veld_draft_delete(s, d1), VELD_OK);
	assert_int_equal(veld_draft_delete(s, d1), VELD_ENOTFOUND);
	assert_int_equal(veld_draft_get(&out, s, d1), VELD_ENOTFOUND);
	assert_null(out);
	j = list(s, NULL, NULL);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);

	/* the store is sealed: the draft's text is nowhere in plaintext */
	veld_store_close(s);
	f->s = NULL;
	assert_false(veld_test_grep_tree(f->dir, MARK, strlen(MARK)));
}

static void test_drafts__put_refuses(void **state)
{
	fixture *f = *state;
	veld_store *s = f->s;
	const char *cid = f->cid, *other = f->other;
	char d[VELD_IDSIZE];
	json_t *j;
	assert_int_equal(veld_draft_put(d, s, NULL, "0123456789abcdef0123456789abcdef", "woonzoek", NULL),
	                 VELD_ENOTFOUND);
	assert_int_equal(veld_draft_put(d, s, NULL, "not an id", "woonzoek", NULL), VELD_ENOTFOUND);
	assert_int_equal(veld_draft_put(d, s, NULL, cid, "Bad Form", NULL), VELD_EINVALID);
	assert_int_equal(veld_draft_put(d, s, NULL, cid, "woonzoek", "[1]"), VELD_EINVALID);
	assert_int_equal(veld_draft_put(d, s, NULL, cid, "woonzoek", "{\"fields\":3}"), VELD_EINVALID);
	assert_int_equal(veld_draft_put(d, s, NULL, cid, "woonzoek", "{not json"), VELD_EINVALID);
	assert_int_equal(veld_draft_put(d, s, "0123456789abcdef0123456789abcdef", cid, "woonzoek", NULL),
	                 VELD_ENOTFOUND);
	assert_int_equal(veld_draft_put(d, s, NULL, cid, "woonzoek", "{}"), VELD_OK);
	/* a draft belongs to its case and form */
	assert_int_equal(veld_draft_put(d, s, d, other, "woonzoek", "{}"), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "another case or form"));
	assert_int_equal(veld_draft_put(d, s, d, cid, "budgetplan", "{}"), VELD_EINVALID);
	j = list(s, NULL, NULL);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);
}

/* A draft never syncs; an erased case takes its drafts along. */
static void test_drafts__stay_on_the_device(void **state)
{
	veld_test_net n;
	char cid[VELD_IDSIZE], d[VELD_IDSIZE];
	json_t *j;
	(void)state;
	veld_test_net_up(&n, "drafts-sync", "assistant", "3000-3499", "assistant", "3000-3499");
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Concept\",\"postcode\":\"3001\"}"), VELD_OK);
	assert_int_equal(veld_draft_put(d, n.a, NULL, cid, "contactregistratie", "{\"fields\":{\"verslag\":\"" MARK "\"}}"),
	                 VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	json_decref(veld_test_sync(n.office, VELD_OK));
	json_decref(veld_test_sync(n.b, VELD_OK));
	j = list(n.office, NULL, NULL);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	j = list(n.b, NULL, NULL);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	j = list(n.a, cid, NULL);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);

	assert_int_equal(veld_case_erase(n.office, cid), VELD_OK);
	json_decref(veld_test_sync(n.office, VELD_OK));
	json_decref(veld_test_sync(n.a, VELD_OK));
	j = list(n.a, NULL, NULL);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	veld_test_net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_drafts__put_get_list_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drafts__put_refuses, setup, teardown),
		cmocka_unit_test(test_drafts__stay_on_the_device),
	};
	return cmocka_run_group_tests_name("drafts", tests, NULL, NULL);
}

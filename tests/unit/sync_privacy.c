/*
** sync_privacy.c — need to know and erasure (docs/design.md, invariant 6 and
** "Keys, roles, privacy"): a volunteer gets the Huiswijs part of a case only
** after consent, and nothing else of it; an erased case is gone from every
** device, its keys are gone from every keys ref, and the keys refs' old
** commits are pruned from the hub.
*/
#include "testutil.h"

#include "sync.h"

#include <stdlib.h>
#include <string.h>

#define CONTACT "{\"datum\":\"2018-04-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"materieel\"],\"detail\":[\"huisvesting\"]}"
#define WOONZOEK "{\"datum\":\"2018-04-06\",\"activiteit\":\"online_zoeken\",\"duur_min\":45}"

typedef veld_test_net net;

static void net_up(net *n)
{
	/* a: an assistant of 3000-3499; b: a volunteer */
	veld_test_net_up(n, "sync-privacy", "assistant", "3000-3499", "volunteer", NULL);
}

static void net_down(net *n)
{
	veld_test_net_down(n);
}

static void sync_all(net *n)
{
	json_decref(veld_test_sync(n->a, VELD_OK));
	json_decref(veld_test_sync(n->office, VELD_OK));
	json_decref(veld_test_sync(n->a, VELD_OK));
	json_decref(veld_test_sync(n->b, VELD_OK));
}

static int can_show(veld_store *s, const char *rid)
{
	char *out = NULL;
	int rc = veld_record_show_json(&out, s, rid);
	veld_free(out);
	return rc == VELD_OK;
}

static void test_sync__volunteer_sees_only_huiswijs_after_consent(void **state)
{
	net n;
	char cid[VELD_IDSIZE], contact[VELD_IDSIZE], zoek[VELD_IDSIZE], *out = NULL;
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a,
	                               "{\"name\":\"Els Wouters\",\"postcode\":\"3000\",\"phone\":\"0470 12 34 56\","
	                               "\"birth\":\"1961-03-04\",\"address\":\"Kerkstraat 1\"}"),
	                 VELD_OK);
	assert_int_equal(veld_record_put(contact, n.a, cid, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(zoek, n.a, cid, "woonzoek", NULL, WOONZOEK), VELD_OK);

	/* No consent yet: refused, and nothing was shared. */
	assert_int_equal(veld_case_share(n.a, cid, n.b_id, "huiswijs"), VELD_EDENIED);
	assert_non_null(strstr(veld_errmsg(n.a), "consent"));
	sync_all(&n);
	assert_false(can_show(n.b, zoek));

	/* Consent; a volunteer still cannot get the social compartment. */
	assert_int_equal(veld_case_consent(n.a, cid, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, cid, n.b_id, "social"), VELD_EDENIED);
	assert_int_equal(veld_case_share(n.a, cid, n.b_id, "huiswijs"), VELD_OK);
	sync_all(&n);
	assert_true(can_show(n.b, zoek));
	assert_false(can_show(n.b, contact));
	/* The volunteer finds the case with its contact part (name, phone,
	** postcode: to reach the client) in the header's place, and its
	** Huiswijs records; not the rest of the header, not the social records. */
	assert_int_equal(veld_case_show_json(&out, n.b, cid), VELD_OK);
	{
		json_t *j = json_loads(out, 0, NULL), *h = json_object_get(j, "header");
		assert_string_equal(json_string_value(json_object_get(h, "name")), "Els Wouters");
		assert_string_equal(json_string_value(json_object_get(h, "postcode")), "3000");
		assert_string_equal(json_string_value(json_object_get(h, "phone")), "0470 12 34 56");
		assert_int_equal(json_object_size(h), 3);
		assert_int_equal(json_array_size(json_object_get(j, "records")), 1);
		assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "records"), 0), "id")), zoek);
		json_decref(j);
	}
	assert_null(strstr(out, "1961-03-04"));
	assert_null(strstr(out, "Kerkstraat"));
	veld_free(out);
	out = NULL;
	assert_int_equal(veld_case_list_json(&out, n.b), VELD_OK);
	assert_non_null(strstr(out, cid));
	assert_non_null(strstr(out, "\"header\":false"));
	assert_non_null(strstr(out, "Els Wouters"));
	assert_null(strstr(out, "Kerkstraat"));
	veld_free(out);
	out = NULL;
	out = veld_test_export(n.b);
	assert_non_null(strstr(out, cid));
	assert_non_null(strstr(out, zoek));
	assert_null(strstr(out, contact));
	assert_null(strstr(out, "1961-03-04"));
	veld_free(out);
	out = NULL;
	/* The contact part follows the header; only the office writes it. */
	assert_int_equal(veld_case_update(n.a, cid, "{\"phone\":\"0470 65 43 21\"}"), VELD_OK);
	sync_all(&n);
	assert_int_equal(veld_case_list_json(&out, n.b), VELD_OK);
	assert_non_null(strstr(out, "0470 65 43 21"));
	veld_free(out);
	out = NULL;
	{
		char part[VELD_IDSIZE];
		veld_contact__id(part, cid);
		assert_int_equal(veld_record_put(NULL, n.a, cid, "_contact", part, "{\"name\":\"X\"}") != VELD_OK, 1);
	}

	/* The volunteer's own log entry reaches the social worker. */
	assert_int_equal(veld_record_put(NULL, n.b, cid, "woonzoek", zoek, "{\"resultaat\":\"geen_reactie\"}"), VELD_OK);
	json_decref(veld_test_sync(n.b, VELD_OK));
	json_decref(veld_test_sync(n.office, VELD_OK));
	json_decref(veld_test_sync(n.a, VELD_OK));
	assert_int_equal(veld_record_show_json(&out, n.a, zoek), VELD_OK);
	assert_non_null(strstr(out, "geen_reactie"));
	veld_free(out);
	net_down(&n);
}

/* Number of entries in every keys ref tree of `repo` whose name ends in
** one of the case's key ids, and the head of `ref` (zero if absent). */
typedef struct countctx {
	int n;
} countctx;

static int count_entry(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	countctx *c = payload;
	(void)path;
	(void)old_id;
	if (new_id)
		c->n++;
	return 0;
}

static int keys_entries(const char *hub, const char *dev)
{
	veld_repo *r = NULL;
	veld_err e;
	git_oid head, tree;
	countctx c = {0};
	char ref[128];
	memset(&e, 0, sizeof e);
	snprintf(ref, sizeof ref, "refs/veld-keys/%s", dev);
	assert_int_equal(veld_repo__open(&r, veld_os_default(), hub, &e), VELD_OK);
	if (veld_repo__ref_get(&head, r, ref, &e) == 0 && veld_repo__commit_tree(&tree, r, &head, &e) == 0)
		veld_repo__diff(r, NULL, &tree, count_entry, &c, &e);
	veld_repo__free(r);
	return c.n;
}

static int hub_has(const char *hub, const git_oid *id)
{
	veld_repo *r = NULL;
	veld_err e;
	git_oid tree;
	int yes;
	memset(&e, 0, sizeof e);
	assert_int_equal(veld_repo__open(&r, veld_os_default(), hub, &e), VELD_OK);
	yes = veld_repo__commit_tree(&tree, r, id, &e) == 0;
	veld_repo__free(r);
	return yes;
}

static void test_sync__erased_case_is_gone_everywhere(void **state)
{
	net n;
	char cid[VELD_IDSIZE], keep[VELD_IDSIZE], rid[VELD_IDSIZE], *out = NULL, ref[128];
	veld_repo *r = NULL;
	veld_err e;
	git_oid old_keys;
	veld_sync_options o;
	int before, after;
	(void)state;
	memset(&e, 0, sizeof e);
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Te Wissen\",\"postcode\":\"3001\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_case_new(keep, n.a, "{\"name\":\"Blijft\",\"postcode\":\"3002\"}"), VELD_OK);
	sync_all(&n);
	assert_true(can_show(n.office, rid));
	before = keys_entries(n.hub, n.a_id);
	assert_true(before >= 4); /* both cases' keys (social, huiswijs), sealed to the office */
	snprintf(ref, sizeof ref, "refs/veld-keys/%s", n.a_id);
	assert_int_equal(veld_repo__open(&r, veld_os_default(), n.hub, &e), VELD_OK);
	assert_int_equal(veld_repo__ref_get(&old_keys, r, ref, &e), VELD_OK);
	veld_repo__free(r);

	/* Only the office erases. */
	assert_int_equal(veld_case_erase(n.a, cid), VELD_EDENIED);
	assert_int_equal(veld_case_erase(n.office, cid), VELD_OK);
	assert_false(can_show(n.office, rid));
	sync_all(&n);
	/* Gone on the device, the other case untouched. */
	assert_false(can_show(n.a, rid));
	assert_int_equal(veld_case_show_json(&out, n.a, cid), VELD_ENOTFOUND);
	veld_free(out);
	out = NULL;
	/* A write to it is refused as the office would refuse it, not "no case". */
	{
		char *exported = veld_test_export(n.a), *now;
		assert_int_equal(veld_record_put(NULL, n.a, cid, "contactregistratie", NULL, CONTACT), VELD_EDENIED);
		assert_non_null(strstr(veld_errmsg(n.a), "was erased by the office"));
		assert_int_equal(veld_case_update(n.a, cid, "{\"phone\":\"016 00 00 00\"}"), VELD_EDENIED);
		now = veld_test_export(n.a);
		assert_string_equal(now, exported);
		veld_free(now);
		veld_free(exported);
	}
	assert_int_equal(veld_case_show_json(&out, n.a, keep), VELD_OK);
	veld_free(out);
	/* The device rewrote its keys ref without the erased case's keys (the
	** two cases have one key per compartment each, so half remain). */
	after = keys_entries(n.hub, n.a_id);
	assert_true(before % 2 == 0);
	assert_int_equal(after, before / 2);
	/* The old keys commit is unreachable now; the office prunes it from the hub. */

	memset(&o, 0, sizeof o);
	o.version = VELD_SYNC_OPTIONS_VERSION;
	o.flags = VELD_SYNC_PRUNE;
	{
		char *sum = NULL;
		assert_int_equal(veld_sync(&sum, n.office, &o), VELD_OK);
		veld_free(sum);
	}
	assert_false(hub_has(n.hub, &old_keys));
	/* Records of the erased case arriving late (an old copy) stay erased. */
	json_decref(veld_test_sync(n.a, VELD_OK));
	assert_false(can_show(n.a, rid));
	assert_int_equal(veld_store_verify(n.a), VELD_OK);
	assert_int_equal(veld_repository_verify(n.a), VELD_OK);
	net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync__volunteer_sees_only_huiswijs_after_consent),
		cmocka_unit_test(test_sync__erased_case_is_gone_everywhere),
	};
	return cmocka_run_group_tests_name("sync_privacy", tests, NULL, NULL);
}

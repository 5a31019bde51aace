/*
** sync_rotation.c — revocation rotates keys (docs/sync.md, "Key epochs").
**
** A tablet is lost.  The office revokes it; its next sync rotates every
** case key the tablet held: what the others write once they have synced
** is sealed with keys of the next epoch, which the revoked tablet never
** gets.  Checked the hard way: the key id each new blob on the hub claims
** is looked up among every key the revoked store holds, and is not there;
** the volunteer that shares the case still reads what is written for it.
** Then the race: a tablet that had not heard of the revocation makes a
** case and seals its keys to the revoked tablet too; the office sees that
** in the tablet's keys ref and rotates that case again.
*/
#include "testutil.h"

#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CONTACT  "{\"datum\":\"2018-04-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"materieel\"]}"
#define WOONZOEK "{\"datum\":\"2018-04-06\",\"activiteit\":\"online_zoeken\",\"duur_min\":45}"

static void sync_ok(veld_store *s)
{
	json_decref(veld_test_sync(s, VELD_OK));
}

/* The key id the blob of `record_id` claims in main on the hub. */
static void key_id_in_main(unsigned char *key_id, const char *hub, const char *case_id, const char *record_id)
{
	veld_repo *r = NULL;
	veld_err e;
	git_oid head, tree, blob;
	char path[128];
	unsigned char *bytes = NULL;
	size_t len = 0;
	memset(&e, 0, sizeof e);
	snprintf(path, sizeof path, "cases/%.2s/%c/%s/%s", case_id, case_id[2], case_id, record_id);
	if (veld_repo__open(&r, veld_os_default(), hub, &e) || veld_repo__ref_get(&head, r, "refs/heads/main", &e) ||
	    veld_repo__commit_tree(&tree, r, &head, &e) || veld_repo__tree_lookup(&blob, r, &tree, path, &e) ||
	    veld_repo__blob_read(&bytes, &len, r, &blob, &e))
		fail_msg("record %s in main: %s", record_id, e.msg);
	assert_int_equal(veld_env__key_id(key_id, bytes, len), 0);
	free(bytes);
	veld_repo__free(r);
}

/* Does store `s` hold the key the blob of `record_id` in main claims? */
static int holds_key_of(veld_store *s, const char *hub, const char *case_id, const char *record_id)
{
	unsigned char key_id[VELD_KEYIDBYTES], *key = sodium_malloc(VELD_KEYBYTES);
	char comp[32];
	int elsewhere = 0, rc;
	key_id_in_main(key_id, hub, case_id, record_id);
	rc = veld_state__case_key_find(key, comp, sizeof comp, &elsewhere, s, case_id, key_id);
	sodium_free(key);
	return rc == 0;
}

static int shows(veld_store *s, const char *rid, const char *text)
{
	char *out = NULL;
	int yes = veld_record_show_json(&out, s, rid) == VELD_OK && strstr(out, text) != NULL;
	veld_free(out);
	return yes;
}

static json_t *find_access(json_t *arr, const char *device, const char *compartment)
{
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "device")), device) &&
		    !strcmp(json_string_value(json_object_get(e, "compartment")), compartment))
			return e;
	}
	return NULL;
}

/* veld_case_access_json of case `cid` on the office, parsed. */
static json_t *access_of(veld_store *office, const char *cid)
{
	char *out = NULL;
	json_t *arr;
	assert_int_equal(veld_case_access_json(&out, office, cid), VELD_OK);
	arr = json_loads(out, 0, NULL);
	veld_free(out);
	assert_non_null(arr);
	return arr;
}

static void expect_access(json_t *arr, const char *device, const char *compartment, const char *why, int newest,
                          int revoked)
{
	json_t *e = find_access(arr, device, compartment);
	if (!e)
		fail_msg("device %s is not listed for %s: %s", device, compartment, json_dumps(arr, JSON_COMPACT));
	assert_string_equal(json_string_value(json_object_get(e, "why")), why);
	assert_int_equal(json_is_true(json_object_get(e, "newest")), newest);
	assert_int_equal(json_is_true(json_object_get(e, "revoked")), revoked);
}

/* One more device of the organisation, enrolled and joined. */
static veld_store *device(char *id, veld_test_net *n, const char *name, const char *role, const char *region)
{
	char *dir = veld_test_path(n->root, name);
	veld_store *s = veld_test_device(id, n->office, dir, role, region, n->hub);
	free(dir);
	return s;
}

/* Case `x` at 3000 made on `a`, with contact `rec` and woonzoek entry
** `zoek`, consent for huiswijs and a share with volunteer `v_id`; synced. */
static void shared_case(char *x, char *rec, char *zoek, veld_store *a, const char *v_id)
{
	assert_int_equal(veld_case_new(x, a, "{\"name\":\"Els\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rec, a, x, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(zoek, a, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(a);
	assert_int_equal(veld_case_consent(a, x, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(a, x, v_id, "huiswijs"), VELD_OK);
	sync_ok(a);
}

static void test_rotation__revoked_tablet_holds_no_key_of_what_is_written_after(void **state)
{
	veld_test_net n;
	char x[VELD_IDSIZE], rec[VELD_IDSIZE], zoek[VELD_IDSIZE], later[VELD_IDSIZE], v_id[VELD_IDSIZE];
	char c_id[VELD_IDSIZE], y[VELD_IDSIZE], yrec[VELD_IDSIZE];
	veld_store *v, *c;
	(void)state;
	veld_test_net_up(&n, "sync-rotation", "assistant", "3000-3499", "assistant", "3000-3499");
	v = device(v_id, &n, "v", "volunteer", NULL);
	c = device(c_id, &n, "c", "assistant", "3000-3499");
	sync_ok(n.a);
	sync_ok(c);
	/* A's case X, a contact and a woonzoek entry shared with the volunteer;
	** everyone holds what they may. */
	shared_case(x, rec, zoek, n.a, v_id);
	sync_ok(n.office);
	sync_ok(n.b);
	sync_ok(v);
	sync_ok(c);
	assert_true(shows(n.b, rec, "huisbezoek"));
	assert_true(holds_key_of(n.b, n.hub, x, rec));
	assert_true(holds_key_of(n.b, n.hub, x, zoek));

	/* B is lost: revoked, and the office's sync rotates X. */
	assert_int_equal(veld_device_revoke(n.office, n.b_id), VELD_OK);
	sync_ok(n.office);
	assert_int_equal(veld_state__case_key_epoch(n.office, x, "social"), 1);
	assert_int_equal(veld_state__case_key_epoch(n.office, x, "huiswijs"), 1);

	/* The race: C had not synced since; it makes case Y and seals Y's
	** keys to its region, B included, before its sync hears of B. */
	assert_int_equal(veld_case_new(y, c, "{\"name\":\"Wim\",\"postcode\":\"3010\"}"), VELD_OK);
	assert_int_equal(veld_record_put(yrec, c, y, "contactregistratie", NULL, CONTACT), VELD_OK);
	sync_ok(c);
	sync_ok(n.office); /* sees Y's newest key sealed to B: rotates Y */
	assert_int_equal(veld_state__case_key_epoch(n.office, y, "social"), 1);

	/* After their syncs, A and C write with the new keys. */
	sync_ok(n.a);
	sync_ok(c);
	assert_int_equal(veld_state__case_key_epoch(n.a, x, "social"), 1);
	assert_int_equal(veld_record_put(later, n.a, x, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.a, x, "woonzoek", zoek, "{\"resultaat\":\"geen_reactie\"}"), VELD_OK);
	assert_int_equal(veld_record_put(NULL, c, y, "contactregistratie", yrec, "{\"duur_min\":25}"), VELD_OK);
	sync_ok(n.a);
	sync_ok(c);
	sync_ok(n.office);
	sync_ok(v);
	sync_ok(n.a);
	sync_ok(c);

	/* Nothing written after the revocation opens with a key B holds; what
	** was written before still does (B keeps what it had). */
	assert_false(holds_key_of(n.b, n.hub, x, later));
	assert_false(holds_key_of(n.b, n.hub, x, zoek));
	assert_false(holds_key_of(n.b, n.hub, y, yrec));
	assert_true(holds_key_of(n.b, n.hub, x, rec));
	/* The entitled read it all: the office, A, C, and the volunteer its part. */
	assert_true(shows(n.office, later, "huisbezoek"));
	assert_true(shows(c, later, "huisbezoek"));
	assert_true(shows(n.a, yrec, "\"duur_min\":25"));
	assert_true(shows(v, zoek, "geen_reactie"));
	assert_false(shows(v, later, "huisbezoek"));
	assert_int_equal(veld_repository_verify(n.office), VELD_OK);

	/* The office sees who holds X's keys, and why. */
	{
		char *out = NULL;
		json_t *arr;
		assert_int_equal(veld_case_access_json(&out, n.office, x), VELD_OK);
		arr = json_loads(out, 0, NULL);
		expect_access(arr, n.b_id, "social", "region", 0, 1);
		expect_access(arr, n.a_id, "social", "region", 1, 0);
		expect_access(arr, c_id, "huiswijs", "region", 1, 0);
		expect_access(arr, v_id, "huiswijs", "share", 1, 0);
		assert_null(find_access(arr, v_id, "social"));
		assert_non_null(json_object_get(find_access(arr, v_id, "huiswijs"), "consent"));
		assert_false(json_is_null(json_object_get(find_access(arr, v_id, "huiswijs"), "consent")));
		json_decref(arr);
		veld_free(out);
		out = NULL;
		assert_int_equal(veld_case_access_json(&out, n.a, x), VELD_EDENIED);
		assert_null(out);
	}
	veld_store_close(v);
	veld_store_close(c);
	veld_test_net_down(&n);
}

/* Does `s` list case `cid` (veld_case_list_json)? */
static int lists_case(veld_store *s, const char *cid)
{
	char *out = NULL;
	int yes;
	assert_int_equal(veld_case_list_json(&out, s), VELD_OK);
	yes = strstr(out, cid) != NULL;
	veld_free(out);
	return yes;
}

/* A share taken back, a consent withdrawn, a share sealed without consent:
** each volunteer concerned loses the case at its next sync, holds no key
** of what is written after, and a write it makes meanwhile is refused
** alone; the others keep what they may read. */
static void test_rotation__access_taken_back(void **state)
{
	veld_test_net n;
	char x[VELD_IDSIZE], y[VELD_IDSIZE], z[VELD_IDSIZE], wx[VELD_IDSIZE], wz[VELD_IDSIZE], late[VELD_IDSIZE];
	char after[VELD_IDSIZE], v2_id[VELD_IDSIZE], wy[VELD_IDSIZE], w2[VELD_IDSIZE];
	veld_store *v2, *v1;
	json_t *sum;
	(void)state;
	veld_test_net_up(&n, "sync-access", "assistant", "3000-3499", "volunteer", NULL);
	v1 = n.b;
	v2 = device(v2_id, &n, "v2", "volunteer", NULL);
	sync_ok(n.a);
	/* X shared with both volunteers, Z with V1 only, Y with nobody yet. */
	assert_int_equal(veld_case_new(x, n.a, "{\"name\":\"Els\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_case_new(y, n.a, "{\"name\":\"Wim\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_case_new(z, n.a, "{\"name\":\"Ann\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(wx, n.a, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_record_put(wy, n.a, y, "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_record_put(wz, n.a, z, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.a);
	assert_int_equal(veld_case_consent(n.a, x, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_consent(n.a, z, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, x, n.b_id, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, x, v2_id, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, z, n.b_id, "huiswijs"), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(v1);
	sync_ok(v2);
	assert_true(shows(v1, wx, "online_zoeken") && shows(v2, wx, "online_zoeken") && shows(v1, wz, "online_zoeken"));

	/* 1. A takes X back from V2; the office's sync takes the keys away. */
	assert_int_equal(veld_case_unshare(n.a, x, v2_id, "huiswijs"), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	assert_true(veld_state__access_lost_has(n.office, v2_id, x));
	/* V2, offline, still writes to X; its sync pushes that, then drops X. */
	assert_int_equal(veld_record_put(w2, v2, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(v2);
	assert_false(lists_case(v2, x));
	assert_false(shows(v2, wx, "online_zoeken"));
	sum = veld_test_sync(n.office, VELD_OK);
	{
		char *txt = json_dumps(sum, JSON_COMPACT);
		assert_non_null(strstr(txt, "\"code\":\"access\""));
		free(txt);
	}
	json_decref(sum);
	assert_false(shows(n.office, w2, "online_zoeken"));
	sync_ok(n.a);
	sync_ok(v1);
	assert_int_equal(veld_record_put(late, n.a, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(v1);
	sync_ok(v2);
	assert_false(holds_key_of(v2, n.hub, x, late));
	assert_true(shows(v1, late, "online_zoeken")); /* V1 keeps X */
	{
		json_t *arr = access_of(n.office, x);
		expect_access(arr, v2_id, "huiswijs", "taken back", 0, 0);
		expect_access(arr, n.b_id, "huiswijs", "share", 1, 0);
		json_decref(arr);
	}

	/* 2. The consent for X is withdrawn: V1 loses X, keeps Z. */
	assert_int_equal(veld_case_consent_withdraw(n.a, x, "huiswijs"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, x, n.b_id, "huiswijs"), VELD_EDENIED);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(v1);
	assert_false(lists_case(v1, x));
	assert_true(lists_case(v1, z));
	sync_ok(n.a);
	assert_int_equal(veld_record_put(after, n.a, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.a, z, "woonzoek", wz, "{\"resultaat\":\"geen_reactie\"}"), VELD_OK);
	sync_ok(n.a);
	sync_ok(n.office);
	sync_ok(v1);
	assert_false(holds_key_of(v1, n.hub, x, after));
	assert_true(shows(v1, wz, "geen_reactie"));
	{
		json_t *arr = access_of(n.office, x);
		expect_access(arr, n.b_id, "huiswijs", "taken back", 0, 0);
		expect_access(arr, n.a_id, "huiswijs", "region", 1, 0);
		json_decref(arr);
	}

	/* 3. A share of Y sealed without consent (through the library's own
	**    calls, past veld_case_share's check): refused by the office. */
	{
		unsigned char *key = sodium_malloc(VELD_KEYBYTES), kid[VELD_KEYIDBYTES];
		char hex[2 * VELD_KEYIDBYTES + 1];
		assert_int_equal(veld_state__case_key_get(key, kid, n.a, y, "huiswijs"), 0);
		sodium_free(key);
		sodium_bin2hex(hex, sizeof hex, kid, sizeof kid);
		assert_int_equal(veld_state__share_add(n.a, hex, n.b_id), 0);
	}
	sync_ok(n.a);
	sync_ok(n.office);
	assert_true(veld_state__access_lost_has(n.office, n.b_id, y));
	assert_int_equal(veld_state__case_key_epoch(n.office, y, "huiswijs"), 1);
	{
		json_t *arr = access_of(n.office, y);
		expect_access(arr, n.b_id, "huiswijs", "taken back", 0, 0);
		json_decref(arr);
	}
	sync_ok(v1);
	assert_false(lists_case(v1, y));

	/* 4. The consent for Z ends (its end date is past): V1 loses Z at the
	**    office's next sync, and a new share is refused.  A bad end date or
	**    an over-long note is refused at once. */
	{
		char *big = calloc(1, 1002), *before = veld_test_export(n.a);
		memset(big, 'x', 1001);
		assert_int_equal(veld_case_consent_ext(n.a, z, "huiswijs", "2024-02-30", NULL), VELD_EINVALID);
		assert_int_equal(veld_case_consent_ext(n.a, z, "huiswijs", NULL, big), VELD_EINVALID);
		{
			char *after_bad = veld_test_export(n.a);
			assert_string_equal(before, after_bad);
			veld_free(after_bad);
		}
		free(big);
		veld_free(before);
	}
	assert_int_equal(veld_case_consent_ext(n.a, z, "huiswijs", "2001-01-01", "mondeling, huisbezoek"), VELD_OK);
	assert_int_equal(veld_case_share(n.a, z, v2_id, "huiswijs"), VELD_EDENIED);
	assert_non_null(strstr(veld_errmsg(n.a), "ended"));
	assert_true(lists_case(v1, z));
	sync_ok(n.a);
	sync_ok(n.office);
	assert_true(veld_state__access_lost_has(n.office, n.b_id, z));
	sync_ok(v1);
	assert_false(lists_case(v1, z));
	veld_store_close(v2);
	veld_test_net_down(&n);
}

/* A case moves: the office changes its postcode to another region.  After
** everyone's sync the new region's assistant reads the case, history
** included; the old region's assistant no longer lists it, holds no key of
** what is written after, and what it wrote before it heard of the move is
** refused alone; the volunteer the case is shared with keeps its part. */
static void test_rotation__case_moves_to_another_region(void **state)
{
	veld_test_net n;
	char x[VELD_IDSIZE], before[VELD_IDSIZE], stale[VELD_IDSIZE], after[VELD_IDSIZE], w[VELD_IDSIZE];
	char wafter[VELD_IDSIZE], v_id[VELD_IDSIZE], *out = NULL;
	veld_store *v;
	json_t *sum, *arr;
	(void)state;
	veld_test_net_up(&n, "sync-move", "assistant", "3000-3099", "assistant", "3400-3499");
	v = device(v_id, &n, "v", "volunteer", NULL);
	sync_ok(n.a);
	sync_ok(n.b);
	shared_case(x, before, w, n.a, v_id);
	sync_ok(n.office);
	sync_ok(n.b);
	sync_ok(v);
	assert_false(lists_case(n.b, x));
	assert_true(shows(v, w, "online_zoeken"));

	/* The client moves to 3400.  A, offline, still writes to X. */
	assert_int_equal(veld_case_update(n.office, x, "{\"postcode\":\"3400\"}"), VELD_OK);
	sync_ok(n.office);
	assert_true(veld_state__access_lost_has(n.office, n.a_id, x));
	assert_int_equal(veld_record_put(stale, n.a, x, "contactregistratie", NULL, CONTACT), VELD_OK);
	sync_ok(n.a);
	assert_false(lists_case(n.a, x));
	assert_false(shows(n.a, before, "huisbezoek"));
	sum = veld_test_sync(n.office, VELD_OK);
	{
		char *txt = json_dumps(sum, JSON_COMPACT);
		assert_non_null(strstr(txt, "\"code\":\"access\""));
		assert_non_null(strstr(txt, stale));
		free(txt);
	}
	json_decref(sum);
	assert_int_equal(veld_record_show_json(&out, n.office, stale), VELD_ENOTFOUND);
	veld_free(out);
	out = NULL;

	/* B, of the new region, reads the case and its history, and writes. */
	sync_ok(n.b);
	assert_true(lists_case(n.b, x));
	assert_true(shows(n.b, before, "huisbezoek"));
	assert_int_equal(veld_record_put(after, n.b, x, "contactregistratie", NULL, CONTACT), VELD_OK);
	assert_int_equal(veld_record_put(wafter, n.b, x, "woonzoek", NULL, WOONZOEK), VELD_OK);
	sync_ok(n.b);
	sync_ok(n.office);
	sync_ok(n.a);
	sync_ok(v);
	assert_true(shows(n.office, after, "huisbezoek"));
	assert_false(lists_case(n.a, x));
	assert_false(holds_key_of(n.a, n.hub, x, after));
	assert_false(holds_key_of(n.a, n.hub, x, wafter));
	assert_true(shows(v, wafter, "online_zoeken")); /* the share stays */

	/* Who holds what, and why. */
	arr = access_of(n.office, x);
	expect_access(arr, n.a_id, "social", "taken back", 0, 0);
	expect_access(arr, n.b_id, "social", "region", 1, 0);
	expect_access(arr, n.b_id, "huiswijs", "region", 1, 0);
	expect_access(arr, v_id, "huiswijs", "share", 1, 0);
	json_decref(arr);
	veld_store_close(v);
	veld_test_net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rotation__revoked_tablet_holds_no_key_of_what_is_written_after),
		cmocka_unit_test(test_rotation__access_taken_back),
		cmocka_unit_test(test_rotation__case_moves_to_another_region),
	};
	return cmocka_run_group_tests_name("sync_rotation", tests, NULL, NULL);
}

/*
** sync_org.c — need to know over a whole organisation, checked the hard way.
**
** Fifty cases over two regions, two assistants a region, three volunteers
** with different shares (one of them sealed past veld_case_share, without
** consent).  After everyone has synced, each volunteer's repository is
** opened blob by blob with every key its store holds, under every record
** id of that key's case: exactly the Huiswijs records and the contact parts
** of the consenting cases shared with it open, nothing else; its case list
** names exactly those clients; and no other client's name is found
** anywhere in its store directory (repository included).
*/
#include "testutil.h"

#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define N_CASES  50
#define CONTACT  "{\"datum\":\"2018-04-05\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"materieel\"]}"
#define WOONZOEK "{\"datum\":\"2018-04-06\",\"activiteit\":\"online_zoeken\",\"duur_min\":45}"

typedef struct org_case {
	char id[VELD_IDSIZE], social[VELD_IDSIZE], huiswijs[VELD_IDSIZE], contact[VELD_IDSIZE];
	char name[32];
	int consent;
	int shared[3]; /* with volunteer 0..2 (through veld_case_share or not) */
} org_case;

typedef struct org {
	veld_test_net n;
	veld_store *dev[4]; /* A1, A2 (3000-3099), B1, B2 (3400-3499) */
	veld_store *vol[3];
	char vol_id[3][VELD_IDSIZE];
	org_case cases[N_CASES];
} org;

static void sync_ok(veld_store *s)
{
	json_decref(veld_test_sync(s, VELD_OK));
}

static veld_store *device(char *id, org *o, const char *name, const char *role, const char *region)
{
	char *dir = veld_test_path(o->n.root, name);
	veld_store *s = veld_test_device(id, o->n.office, dir, role, region, o->n.hub);
	free(dir);
	return s;
}

/* May volunteer `v` read case `c`'s Huiswijs part at the end? */
static int entitled(const org_case *c, int v)
{
	return c->shared[v] && c->consent;
}

static void make_cases(org *o)
{
	int i;
	for (i = 0; i < N_CASES; i++) {
		org_case *c = &o->cases[i];
		veld_store *maker = o->dev[(i % 2) * 2 + (i / 2) % 2];
		char header[128];
		snprintf(c->name, sizeof c->name, "Klant%02dZoeknaam", i);
		snprintf(header, sizeof header, "{\"name\":\"%s\",\"postcode\":\"%s%02d\",\"phone\":\"04%08d\"}", c->name,
		         i % 2 ? "34" : "30", i, i);
		assert_int_equal(veld_case_new(c->id, maker, header), VELD_OK);
		assert_int_equal(veld_record_put(c->social, maker, c->id, "contactregistratie", NULL, CONTACT), VELD_OK);
		assert_int_equal(veld_record_put(c->huiswijs, maker, c->id, "woonzoek", NULL, WOONZOEK), VELD_OK);
		veld_contact__id(c->contact, c->id);
		c->consent = i % 5 != 4;
		if (c->consent)
			assert_int_equal(veld_case_consent(maker, c->id, "huiswijs"), VELD_OK);
		/* V1: cases of region 3000; V2: of 3400; V3: of both. */
		c->shared[0] = i % 2 == 0 && i < 20 && c->consent;
		c->shared[1] = i % 2 == 1 && i < 20 && c->consent;
		c->shared[2] = i >= 40 && c->consent;
		for (int v = 0; v < 3; v++)
			if (c->shared[v])
				assert_int_equal(veld_case_share(maker, c->id, o->vol_id[v], "huiswijs"), VELD_OK);
	}
	/* Case 44 has no consent: V3 gets its key anyway, sealed by the maker
	** through the library's own calls, past veld_case_share's check. */
	{
		org_case *c = &o->cases[44];
		veld_store *maker = o->dev[(44 % 2) * 2 + (44 / 2) % 2];
		unsigned char *key = sodium_malloc(VELD_KEYBYTES), kid[VELD_KEYIDBYTES];
		char hex[2 * VELD_KEYIDBYTES + 1];
		assert_false(c->consent);
		sync_ok(maker); /* its keys are made when it first syncs */
		assert_int_equal(veld_state__case_key_get(key, kid, maker, c->id, "huiswijs"), 0);
		sodium_free(key);
		sodium_bin2hex(hex, sizeof hex, kid, sizeof kid);
		assert_int_equal(veld_state__share_add(maker, hex, o->vol_id[2]), 0);
		c->shared[2] = 1;
	}
}

static void sync_everyone(org *o)
{
	int i, round;
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 4; i++)
			sync_ok(o->dev[i]);
		sync_ok(o->n.office);
		for (i = 0; i < 3; i++)
			sync_ok(o->vol[i]);
	}
	sync_ok(o->n.office);
	for (i = 0; i < 3; i++)
		sync_ok(o->vol[i]);
}

/* ---- every blob with every key ---------------------------------------------------- */

typedef struct trial {
	veld_store *s;
	json_t *keys; /* [[case id, key id hex]] */
} trial;

static int note_key(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	trial *t = payload;
	(void)compartment;
	json_array_append_new(t->keys, json_pack("[s,s]", case_id, key_hex));
	return 0;
}

/* The record of `o` that `blob` opens as, with one of the volunteer's keys:
** its index * 4 + kind (0 social, 1 huiswijs, 2 contact, 3 header), or -1. */
static int opens_as(org *o, trial *t, const unsigned char *blob, size_t len)
{
	unsigned char *key = sodium_malloc(VELD_KEYBYTES), kid[VELD_KEYIDBYTES];
	size_t k, i;
	int found = -1;
	for (k = 0; k < json_array_size(t->keys) && found < 0; k++) {
		const char *cid = json_string_value(json_array_get(json_array_get(t->keys, k), 0));
		const char *hex = json_string_value(json_array_get(json_array_get(t->keys, k), 1));
		char comp[32];
		int elsewhere = 0;
		assert_int_equal(sodium_hex2bin(kid, sizeof kid, hex, strlen(hex), NULL, NULL, NULL), 0);
		assert_int_equal(veld_state__case_key_find(key, comp, sizeof comp, &elsewhere, t->s, cid, kid), 0);
		for (i = 0; i < N_CASES && found < 0; i++) {
			const char *ids[4] = {o->cases[i].social, o->cases[i].huiswijs, o->cases[i].contact, o->cases[i].id};
			int kind;
			if (strcmp(o->cases[i].id, cid))
				continue;
			for (kind = 0; kind < 4; kind++) {
				unsigned char *pt = NULL;
				size_t ptlen = 0;
				veld_err e;
				memset(&e, 0, sizeof e);
				if (veld_env__open(&pt, &ptlen, blob, len, key, cid, ids[kind], &e) == 0) {
					free(pt);
					found = (int)i * 4 + kind;
					break;
				}
			}
		}
	}
	sodium_free(key);
	return found;
}

/* Try every blob of volunteer `v`'s repository; fail on any that opens and
** should not, and on any entitled record that nothing opens as. */
static void every_blob(org *o, int v)
{
	trial t;
	char *dir = veld_test_path(veld_store__dir(o->vol[v]), "repo"), cmd[600], line[128];
	int seen[N_CASES * 4] = {0}, opened = 0, tried = 0, i;
	veld_repo *r = NULL;
	veld_err e;
	FILE *p;
	t.s = o->vol[v];
	t.keys = json_array();
	assert_int_equal(veld_state__case_keys_each(t.s, NULL, note_key, &t), 0);
	memset(&e, 0, sizeof e);
	assert_int_equal(veld_repo__open(&r, veld_os_default(), dir, &e), VELD_OK);
	snprintf(cmd, sizeof cmd,
	         "git --git-dir='%s' cat-file --batch-all-objects --batch-check='%%(objectname) %%(objecttype)'", dir);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof line, p)) {
		git_oid id;
		unsigned char *blob = NULL;
		size_t len = 0;
		int as;
		if (!strstr(line, " blob"))
			continue;
		assert_int_equal(git_oid_fromstrn(&id, line, GIT_OID_HEXSZ), 0);
		assert_int_equal(veld_repo__blob_read(&blob, &len, r, &id, &e), VELD_OK);
		tried++;
		as = opens_as(o, &t, blob, len);
		free(blob);
		if (as < 0)
			continue;
		opened++;
		seen[as] = 1;
		if (!entitled(&o->cases[as / 4], v) || (as % 4 != 1 && as % 4 != 2))
			fail_msg("volunteer %d opens a blob of case %d (kind %d) it may not read", v + 1, as / 4, as % 4);
	}
	assert_int_equal(pclose(p), 0);
	for (i = 0; i < N_CASES; i++)
		if (entitled(&o->cases[i], v) && (!seen[i * 4 + 1] || !seen[i * 4 + 2]))
			fail_msg("volunteer %d cannot open the Huiswijs part of case %d shared with it", v + 1, i);
	print_message("volunteer %d: %d blobs tried with %zu keys, %d open, all of cases shared with it\n", v + 1, tried,
	              json_array_size(t.keys), opened);
	assert_true(opened > 0);
	json_decref(t.keys);
	veld_repo__free(r);
	free(dir);
}

/* The volunteer's case list names exactly its clients; no other client's
** name is anywhere in its store directory. */
static void names(org *o, int v)
{
	char *out = NULL;
	int i;
	assert_int_equal(veld_case_list_json(&out, o->vol[v]), VELD_OK);
	for (i = 0; i < N_CASES; i++) {
		int listed = strstr(out, o->cases[i].name) != NULL;
		if (listed != entitled(&o->cases[i], v))
			fail_msg("volunteer %d %s case %d", v + 1, listed ? "lists" : "does not list", i);
		if (!entitled(&o->cases[i], v))
			assert_int_equal(veld_test_grep_tree(veld_store__dir(o->vol[v]), o->cases[i].name,
			                                     strlen(o->cases[i].name)),
			                 0);
	}
	veld_free(out);
}

static void test_org__volunteers_hold_exactly_what_is_shared_with_them(void **state)
{
	org *o = calloc(1, sizeof *o);
	const char *names_[3] = {"v1", "v2", "v3"};
	int v;
	(void)state;
	veld_test_net_up(&o->n, "sync-org", "assistant", "3000-3099", "assistant", "3400-3499");
	o->dev[0] = o->n.a;
	o->dev[2] = o->n.b;
	o->dev[1] = device(NULL, o, "a2", "assistant", "3000-3099");
	o->dev[3] = device(NULL, o, "b2", "assistant", "3400-3499");
	for (v = 0; v < 3; v++)
		o->vol[v] = device(o->vol_id[v], o, names_[v], "volunteer", NULL);
	for (v = 0; v < 4; v++)
		sync_ok(o->dev[v]);
	make_cases(o);
	sync_everyone(o);
	/* The share sealed without consent was taken back by the office. */
	assert_true(veld_state__access_lost_has(o->n.office, o->vol_id[2], o->cases[44].id));
	for (v = 0; v < 3; v++) {
		every_blob(o, v);
		names(o, v);
	}
	veld_store_close(o->dev[1]);
	veld_store_close(o->dev[3]);
	for (v = 0; v < 3; v++)
		veld_store_close(o->vol[v]);
	veld_test_net_down(&o->n);
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_org__volunteers_hold_exactly_what_is_shared_with_them),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sync_org", tests, NULL, NULL);
}

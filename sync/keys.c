/*
** keys.c — case keys: who holds which, and how they travel
** (docs/sync.md, "Keys").
**
** A case has one key per compartment ("social", "huiswijs").  The store
** that seals a case first makes both (ensure_key) and shares them with the
** office and the assistants whose region holds the case's postcode
** (share_by_region; volunteers get a key only by veld_case_share).  A share
** is a row of key_shares; the commit stage seals each share to its
** recipient's box key in this store's keys ref (commit.c).  From the keys
** refs of others this store takes the entries sealed to it (take_keys), and
** for a case whose keys just arrived merges what main already holds of it
** (rescan_new_keys); the office shares such a key with the case's region.
**
** Owns: nothing beyond a call.  Keys are copied into guarded memory (the
** caller's, or the context's blob_key) and wiped after use.  Must not: open
** a transaction or reach the tables other than through state.c.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- sharing -------------------------------------------------------------------- */

int veld_sync__add_share(veld_syncctx *c, const char *key_hex, const char *recipient)
{
	if (!strcmp(recipient, c->me))
		return 0;
	return veld_state__share_add(c->s, key_hex, recipient);
}

int veld_sync__case_postcode(veld_store *s, const char *case_id)
{
	veld_record *h = NULL;
	const json_t *v;
	size_t n;
	int pc = -1;
	if (veld_store__record_load(&h, s, case_id))
		return -1;
	v = veld_record__value(h, "postcode", &n);
	if (json_is_string(v))
		pc = atoi(json_string_value(v));
	veld_record__free(h);
	return pc;
}

typedef struct regionctx {
	veld_syncctx *c;
	const char *key_hex;
	int postcode;
} regionctx;

/* The office, and the assistants whose region holds the case's postcode,
** hold both compartments: the assistants coordinate the Huiswijs volunteers
** of their cases.  Volunteers get a key only by an explicit share
** (veld_case_share). */
int veld_sync__region_holds(const char *role, const char *region, int postcode)
{
	veld_range ranges[VELD_MAX_RANGES];
	int n = 0;
	if (!strcmp(role, "office"))
		return 1;
	return !strcmp(role, "assistant") && postcode > 0 &&
	       veld_region__parse(ranges, VELD_MAX_RANGES, &n, region, NULL) == 0 &&
	       veld_region__contains(ranges, n, postcode);
}

static int share_with(const veld_device_row *d, void *payload)
{
	regionctx *r = payload;
	return veld_sync__region_holds(d->role, d->region, r->postcode) ? veld_sync__add_share(r->c, r->key_hex, d->id)
	                                                                 : 0;
}

/* Share `key_hex` with the office and the assistants whose region holds
** the case's postcode. */
int veld_sync__share_by_region(veld_syncctx *c, const char *key_hex, const char *case_id)
{
	regionctx r;
	r.c = c;
	r.key_hex = key_hex;
	r.postcode = veld_sync__case_postcode(c->s, case_id);
	return veld_state__devices_each(c->s, VELD_STATE_ACTIVE, share_with, &r);
}

/* A new key for (case, compartment), stored and shared by region. */
static int make_key(veld_syncctx *c, const char *case_id, const char *compartment, unsigned char *key,
                    unsigned char *key_id)
{
	veld_case_key k;
	char hex[2 * VELD_KEYIDBYTES + 1];
	int rc, added = 0;
	memset(&k, 0, sizeof k);
	if (veld_case_key__new(&k))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	snprintf(k.case_id, sizeof k.case_id, "%s", case_id);
	snprintf(k.compartment, sizeof k.compartment, "%s", compartment);
	sodium_bin2hex(hex, sizeof hex, k.key_id, VELD_KEYIDBYTES);
	rc = veld_state__case_key_add(&added, c->s, &k);
	if (!rc && !added)
		rc = veld_store__db_fail(c->s, SQLITE_CONSTRAINT, "store case key");
	if (!rc)
		rc = veld_sync__share_by_region(c, hex, case_id);
	if (!rc) {
		memcpy(key, k.key, VELD_KEYBYTES);
		memcpy(key_id, k.key_id, VELD_KEYIDBYTES);
	}
	veld_case_key__clear(&k);
	return rc;
}

int veld_sync__ensure_key(veld_syncctx *c, const char *case_id, const char *compartment, unsigned char *key,
                          unsigned char *key_id)
{
	const char *other = !strcmp(compartment, "social") ? "huiswijs" : "social";
	unsigned char *k2, id2[VELD_KEYIDBYTES];
	int rc = veld_state__case_key_get(key, key_id, c->s, case_id, compartment);
	if (rc != VELD_ENOTFOUND)
		return rc;
	if ((rc = make_key(c, case_id, compartment, key, key_id)))
		return rc;
	/* Whoever makes a case's first key makes the other compartment's too,
	** so every device of the region seals with the same keys (two devices
	** minting a key for one compartment would split the case).  If the
	** other one is there, ensure_key only reads it. */
	if (!(k2 = sodium_malloc(VELD_KEYBYTES)))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	rc = veld_sync__ensure_key(c, case_id, other, k2, id2);
	sodium_free(k2);
	return rc;
}

/* ---- keys before the records they seal ---------------------------------------- */

static int key_for_dirty(const char *case_id, const char *compartment, void *payload)
{
	veld_syncctx *c = payload;
	unsigned char key_id[VELD_KEYIDBYTES];
	return veld_sync__ensure_key(c, case_id, compartment, c->blob_key, key_id);
}

/* Git and SQLite at every kill point: the commit stage moves this store's
** refs before its transaction commits, so git may keep a commit whose
** transaction was lost.  Its records are sealed again, identically, by the
** next sync, as long as the keys are the same: so every key the dirty
** records need is made and stored here first, in a transaction of its own
** that commits before anything is sealed with it. */
int veld_sync__keys_stage(veld_syncctx *c)
{
	int rc = veld_store__begin(c->s);
	if (rc)
		return rc;
	rc = veld_state__dirty_keys_each(c->s, key_for_dirty, c);
	sodium_memzero(c->blob_key, VELD_KEYBYTES);
	return veld_store__finish(c->s, rc);
}

/* ---- keys refs ------------------------------------------------------------------ */

/* Keys ref of `owner`: a signed root commit; open entries addressed to us. */
typedef struct keyctx {
	veld_syncctx *c;
	const char *ref, *owner;
	char commit[GIT_OID_HEXSZ + 1];
	int owner_office; /* only the office's keys ref may carry rotated keys */
	int rc;
} keyctx;

/* An entry (or the whole ref, path "") its owner signed but that is not a
** sealed key for us: refused alone, noted once; the other entries count. */
static int refuse_entry(keyctx *k, const char *path, const git_oid *blob, const char *why)
{
	veld_refusal_row r;
	memset(&r, 0, sizeof r);
	r.path = path;
	r.device = k->owner;
	r.code = VELD_REFUSED_KEY;
	r.reason = why;
	r.commit = k->commit;
	r.published = 1; /* what only the recipient can judge is not published */
	return k->rc = veld_sync__refuse_change(k->c, &r, blob, k->ref);
}

static int key_entry(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	keyctx *k = payload;
	veld_syncctx *c = k->c;
	size_t ml = strlen(c->me), len = 0;
	unsigned char *blob = NULL;
	veld_case_key ck;
	veld_err e;
	char hex[2 * VELD_KEYIDBYTES + 1];
	int added = 0;
	(void)old_id;
	if (!new_id || strncmp(path, c->me, ml) || path[ml] != '/')
		return 0;
	memset(&ck, 0, sizeof ck);
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, new_id, c->err))
		return (k->rc = c->err->code), 1;
	if (veld_keyring__open_into(&ck, c->blob_key, blob, len, c->box_pk, c->box_sk, &e)) {
		free(blob);
		return refuse_entry(k, path, new_id, "a sealed key entry does not open") ? 1 : 0;
	}
	free(blob);
	sodium_bin2hex(hex, sizeof hex, ck.key_id, VELD_KEYIDBYTES);
	if (strcmp(path + ml + 1, hex)) {
		sodium_memzero(c->blob_key, VELD_KEYBYTES);
		return refuse_entry(k, path, new_id, "a sealed key entry is stored under another key id") ? 1 : 0;
	}
	if (veld_state__access_lost_has(c->s, c->me, ck.case_id)) {
		sodium_memzero(c->blob_key, VELD_KEYBYTES);
		return 0; /* this device's access to the case was taken back */
	}
	if (ck.epoch > 0 && !k->owner_office) {
		sodium_memzero(c->blob_key, VELD_KEYBYTES);
		return refuse_entry(k, path, new_id, "a rotated case key from a device other than the office") ? 1 : 0;
	}
	/* A key for a case, compartment and epoch that already has one is
	** ignored: nobody replaces a case's key.  (A failure to store it leaves the key
	** unread here; the ref is taken again at the next sync.) */
	if (veld_state__case_key_add(&added, c->s, &ck) == 0 && added)
		json_array_append_new(c->new_key_cases, json_string(ck.case_id));
	sodium_memzero(c->blob_key, VELD_KEYBYTES);
	return k->rc ? 1 : 0;
}

int veld_sync__take_keys(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head)
{
	git_oid last, tree, parents[2];
	size_t np = 0;
	char signer[72];
	keyctx k;
	if (veld_sync__synced_get(&last, c, ref) == 0 && git_oid_equal(&last, head))
		return 0;
	/* A revoked device's keys are taken like any other: a colleague may
	** carry its commits, sealed with keys only its keys ref holds. */
	c->keys_moved = 1;
	memset(&k, 0, sizeof k);
	k.c = c;
	k.ref = ref;
	k.owner = owner;
	veld_sync__oid_hex(k.commit, head);
	{
		char role[32];
		int n = 0;
		k.owner_office = veld_state__device_role(role, sizeof role, NULL, &n, c->s, owner) == 0 &&
		                 !strcmp(role, "office");
		veld_err__clear(c->err);
	}
	if (veld_repo__commit_verify(signer, sizeof signer, c->repo, head, veld_sync__pubkey_revoked, c, c->err) ||
	    strcmp(signer, owner)) {
		veld_sync__reject(c, ref, head, "keys ref not signed by its owner");
		veld_err__clear(c->err);
		return 0;
	}
	if (veld_repo__commit_parents(parents, 2, &np, c->repo, head, c->err) || np != 0) {
		veld_err__clear(c->err);
		if (refuse_entry(&k, "", NULL, "keys ref is not a root commit"))
			return k.rc;
		return veld_sync__synced_set(c, ref, head);
	}
	if (veld_repo__commit_tree(&tree, c->repo, head, c->err))
		return c->err->code;
	if (veld_repo__diff(c->repo, NULL, &tree, key_entry, &k, c->err) && !k.rc)
		return c->err->code;
	if (k.rc)
		return k.rc;
	return veld_sync__synced_set(c, ref, head);
}

/* ---- cases whose keys arrived ----------------------------------------------------- */

typedef struct rescanctx {
	veld_syncctx *c;
	const char *case_id;
	int rc;
} rescanctx;

static int rescan_blob(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	rescanctx *r = payload;
	(void)old_id;
	if (!new_id || strlen(path) != 32)
		return 0;
	r->rc = veld_sync__merge_blob(r->c, r->case_id, path, new_id);
	return r->rc ? 1 : 0;
}

static int reshare(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	(void)compartment;
	return veld_sync__share_by_region(payload, key_hex, case_id);
}

/* Merge every blob main holds of case `cid` (tree: main's). */
static int rescan_case(veld_syncctx *c, const git_oid *tree, const char *cid)
{
	char dir[80];
	git_oid sub;
	rescanctx r;
	veld_sync__case_dir(dir, sizeof dir, cid);
	if (veld_repo__tree_lookup_dir(&sub, c->repo, tree, dir, c->err)) {
		veld_err__clear(c->err);
		return 0;
	}
	memset(&r, 0, sizeof r);
	r.c = c;
	r.case_id = cid;
	if (veld_repo__diff(c->repo, NULL, &sub, rescan_blob, &r, c->err) && !r.rc)
		veld_err__clear(c->err);
	return r.rc;
}

/* On the office: share each new key with the assistants of its case's
** region (now that the case headers of this sync are merged).  On a
** device: merge what main already holds of those cases.  Only main: the
** office has checked every record in it (it reads them all), whereas a
** peer's blob that was unreadable here when it was verified has had no
** one's check yet; it comes through main. */
int veld_sync__rescan_new_keys(veld_syncctx *c)
{
	size_t i;
	git_oid head, tree;
	int rc = 0, have_main;
	if (json_array_size(c->new_key_cases) == 0)
		return 0;
	have_main = veld_sync__synced_get(&head, c, VELD_REF_MAIN) == 0 &&
	            veld_repo__commit_tree(&tree, c->repo, &head, c->err) == 0;
	veld_err__clear(c->err);
	for (i = 0; i < json_array_size(c->new_key_cases) && !rc; i++) {
		const char *cid = json_string_value(json_array_get(c->new_key_cases, i));
		if (c->office)
			rc = veld_state__case_keys_each(c->s, cid, reshare, c);
		else if (have_main)
			rc = rescan_case(c, &tree, cid);
	}
	return rc;
}

/*
** commit.c — the commit stage: what this store changed becomes a signed
** commit on its own ref (docs/sync.md, "Commit").
**
** Every dirty record is sealed into its blob with its case's key (made now
** if the case has none), the office adds the registry entries, the
** refusals (docs/sync.md, "Refusals"), the access taken back and the
** published forms and reports (scripts_dist.c) not yet in main, every store
** drops the directories of cases it erased (the office also writes the
** signed erasure marker); the tree is updated at those
** paths only and committed, signed by this device (the office: on main,
** by the organisation key), with the heads merged in this sync as extra
** parents.  A commit is made only when the tree changed: an interrupted
** sync run again, or devices merging each other's merges, make no empty
** commits.  Then the keys ref, when keys_dirty: a fresh root commit with
** one sealed entry per (key, recipient).
**
** The refs are staged in the context, not moved: the caller moves them
** with veld_sync__refs_apply inside its transaction once nothing can undo
** the transaction any more (run.c).  So a stage canceled after a commit
** leaves only unreachable objects, which the next repack drops.
**
** Owns: the changeset, a tree update in the making.  Must not: read the
** sync tables other than through state.c, or open a transaction.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- tree changes ------------------------------------------------------------ */

struct veld_changeset {
	veld_tree_change *changes;
	char **paths;
	git_oid *oids; /* zero: remove the path */
	size_t n, cap;
};

static void changeset_free(veld_changeset *cs)
{
	size_t i;
	for (i = 0; i < cs->n; i++)
		free(cs->paths[i]);
	free(cs->changes);
	free(cs->paths);
	free(cs->oids);
	memset(cs, 0, sizeof *cs);
}

int veld_sync__changeset_put(veld_syncctx *c, veld_changeset *cs, const char *path, const git_oid *id)
{
	if (cs->n == cs->cap) {
		size_t ncap = cs->cap ? 2 * cs->cap : 64;
		void *a = realloc(cs->changes, ncap * sizeof *cs->changes);
		void *b = a ? realloc(cs->paths, ncap * sizeof *cs->paths) : NULL;
		void *d = b ? realloc(cs->oids, ncap * sizeof *cs->oids) : NULL;
		if (a)
			cs->changes = a;
		if (b)
			cs->paths = b;
		if (d)
			cs->oids = d;
		if (!a || !b || !d)
			return veld_err__set(c->err, VELD_ERROR, "out of memory");
		cs->cap = ncap;
	}
	if (id)
		cs->oids[cs->n] = *id;
	else
		memset(&cs->oids[cs->n], 0, sizeof cs->oids[cs->n]);
	cs->paths[cs->n] = strdup(path);
	if (!cs->paths[cs->n])
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	cs->n++;
	return 0;
}

/* Write `blob` and set `path` to it. */
static int changeset_add(veld_syncctx *c, veld_changeset *cs, const char *path, const void *blob, size_t len)
{
	git_oid id;
	if (veld_repo__blob_write(&id, c->repo, blob, len, c->err))
		return c->err->code ? c->err->code : VELD_ERROR;
	return veld_sync__changeset_put(c, cs, path, &id);
}

int veld_sync__changeset_add_signed(veld_syncctx *c, veld_changeset *cs, const char *path, json_t *body)
{
	char *text = body ? veld_registry__sign(body, c->org_sk) : NULL;
	int rc;
	json_decref(body);
	if (!text)
		return veld_err__set(c->err, VELD_ERROR, "cannot sign %s", path);
	rc = changeset_add(c, cs, path, text, strlen(text));
	free(text);
	return rc;
}

/* New tree: `base` (NULL: empty) with the changes applied. */
static int changeset_tree(git_oid *tree, veld_syncctx *c, veld_changeset *cs, const git_oid *base)
{
	size_t i;
	for (i = 0; i < cs->n; i++) {
		cs->changes[i].path = cs->paths[i];
		cs->changes[i].id = git_oid_is_zero(&cs->oids[i]) ? NULL : &cs->oids[i];
	}
	return veld_repo__tree_update(tree, c->repo, base, cs->changes, cs->n, c->err);
}

/* ---- staged refs ----------------------------------------------------------------- */

static int stage_ref(veld_syncctx *c, const char *name, const git_oid *id)
{
	size_t i;
	for (i = 0; i < c->n_staged && strcmp(c->staged[i].name, name); i++)
		;
	if (i == VELD_STAGED_REFS)
		return veld_err__set(c->err, VELD_ERROR, "too many refs staged");
	snprintf(c->staged[i].name, sizeof c->staged[i].name, "%s", name);
	c->staged[i].id = *id;
	if (i == c->n_staged)
		c->n_staged++;
	return 0;
}

int veld_sync__refs_apply(veld_syncctx *c)
{
	size_t i;
	int rc = 0;
	for (i = 0; i < c->n_staged && !rc; i++)
		rc = veld_repo__ref_set(c->repo, c->staged[i].name, &c->staged[i].id, c->err);
	c->n_staged = 0;
	return rc;
}

int veld_sync__refs_tip(git_oid *out, veld_syncctx *c, const char *name)
{
	size_t i;
	for (i = 0; i < c->n_staged; i++)
		if (!strcmp(c->staged[i].name, name)) {
			*out = c->staged[i].id;
			return 0;
		}
	return veld_repo__ref_get(out, c->repo, name, c->err);
}

/* What the iterations below add to: the changeset, and a guarded buffer
** for a key being sealed (VELD_KEYBYTES; NULL where none is). */
typedef struct commitctx {
	veld_syncctx *c;
	veld_changeset *cs;
	unsigned char *key;
} commitctx;

/* ---- the registry (office) ------------------------------------------------------ */

static int registry_entry(const veld_device_row *d, void *payload)
{
	commitctx *x = payload;
	veld_syncctx *c = x->c;
	char path[128], spk[65], bpk[65];
	json_t *body;
	snprintf(path, sizeof path, "registry/%s/%s", d->revoked ? "revoked" : "devices", d->id);
	if (d->revoked) {
		body = json_pack("{s:s, s:b}", "id", d->id, "revoked", 1);
	} else {
		sodium_bin2hex(spk, sizeof spk, d->sign_pk, 32);
		sodium_bin2hex(bpk, sizeof bpk, d->box_pk, 32);
		body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", d->id, "name", d->name, "role", d->role, "region",
		                 d->region, "sign_pk", spk, "box_pk", bpk);
	}
	return veld_sync__changeset_add_signed(c, x->cs, path, body);
}

/* Office: registry entries not yet in main become tree changes. */
static int registry_changes(veld_syncctx *c, veld_changeset *cs)
{
	commitctx x;
	x.c = c;
	x.cs = cs;
	x.key = NULL;
	return veld_state__devices_each(c->s, VELD_STATE_UNPUBLISHED, registry_entry, &x);
}

/* ---- refusals (office) ------------------------------------------------------------ */

/* What a published refusal says in words: by its code only, so main
** carries no client data (the office's own row may name a postcode). */
static const char *refusal_phrase(const char *code)
{
	static const char *const phrases[][2] = {
		{VELD_RULE_ROLE, "the writer's role may not write this compartment"},
		{VELD_RULE_HEADER, "a volunteer may not write a case header"},
		{VELD_RULE_REGION, "the case's postcode is outside the writer's region"},
		{VELD_RULE_POSTCODE, "the case header has no valid postcode"},
		{VELD_REFUSED_PATH, "a path outside the cases a device may write"},
		{VELD_REFUSED_REMOVE, "a record removed instead of deleted with a tombstone"},
		{VELD_REFUSED_ERASED, "the case was erased by the office"},
		{VELD_REFUSED_KEY, "sealed with a key the office does not hold for the case"},
		{VELD_REFUSED_OPEN, "the record does not open with its key"},
		{VELD_REFUSED_REVOKED, "written by a revoked device"},
		{VELD_REFUSED_ACCESS, "the writer's access to the case was taken back"},
		{VELD_REFUSED_FORM, "the record does not pass the rules of its form"},
	};
	size_t i;
	for (i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
		if (!strcmp(code, phrases[i][0]))
			return phrases[i][1];
	return "refused by the office";
}

/* One refusal the office made: refused/<device>/<hash of path and blob>,
** signed like a registry entry. */
static int refusal_entry(const veld_refusal_row *r, void *payload)
{
	commitctx *x = payload;
	unsigned char h[16];
	char name[33], path[160];
	json_t *body;
	crypto_generichash_state st;
	if (!veld_hex__is(r->device, 32))
		return 0; /* not a device id: nothing a device could learn from */
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	crypto_generichash_update(&st, (const unsigned char *)r->path, strlen(r->path) + 1);
	crypto_generichash_update(&st, (const unsigned char *)r->blob, strlen(r->blob));
	crypto_generichash_final(&st, h, sizeof h);
	sodium_bin2hex(name, sizeof name, h, sizeof h);
	snprintf(path, sizeof path, VELD_REFUSED_DIR "%s/%s", r->device, name);
	body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "path", r->path, "blob", r->blob, "device",
	                 r->device, "case", r->case_id, "record", r->record_id, "code", r->code, "reason",
	                 refusal_phrase(r->code), "commit", r->commit, "at", (json_int_t)r->at);
	return veld_sync__changeset_add_signed(x->c, x->cs, path, body);
}

/* Office: a device's access to a case taken back, access/<device>/<case>. */
static int access_entry(const char *device, const char *case_id, void *payload)
{
	commitctx *x = payload;
	char path[128];
	if (!veld_hex__is(device, 32) || !veld_id__is(case_id))
		return 0;
	snprintf(path, sizeof path, VELD_ACCESS_DIR "%s/%s", device, case_id);
	return veld_sync__changeset_add_signed(x->c, x->cs, path,
	                                       json_pack("{s:s, s:s}", "device", device, "case", case_id));
}

/* Office: refusals not yet in main become tree changes. */
static int refusal_changes(veld_syncctx *c, veld_changeset *cs)
{
	commitctx x;
	x.c = c;
	x.cs = cs;
	x.key = NULL;
	int rc = veld_state__refusals_each(c->s, VELD_STATE_UNPUBLISHED, NULL, refusal_entry, &x);
	return rc ? rc : veld_state__access_lost_each(c->s, access_entry, &x);
}

/* ---- the keys ref ----------------------------------------------------------------- */

static int seal_share(const veld_share_row *r, void *payload)
{
	commitctx *x = payload;
	veld_case_key k;
	unsigned char *sealed = NULL;
	size_t slen = 0, bl = 0;
	char path[128];
	int rc;
	memset(&k, 0, sizeof k);
	snprintf(k.case_id, sizeof k.case_id, "%s", r->case_id);
	snprintf(k.compartment, sizeof k.compartment, "%s", r->compartment);
	sodium_hex2bin(k.key_id, sizeof k.key_id, r->key_hex, 32, NULL, &bl, NULL);
	if (r->key_len == VELD_KEYBYTES)
		memcpy(x->key, r->key, VELD_KEYBYTES);
	k.key = x->key;
	k.epoch = r->epoch;
	if (r->key_len != VELD_KEYBYTES || r->box_pk_len != crypto_box_PUBLICKEYBYTES ||
	    veld_keyring__seal(&sealed, &slen, &k, r->box_pk))
		return veld_err__set(x->c->err, VELD_ERROR, "cannot seal a case key");
	snprintf(path, sizeof path, "%s/%s", r->recipient, r->key_hex);
	rc = changeset_add(x->c, x->cs, path, sealed, slen);
	free(sealed);
	return rc;
}

/* Rebuild this store's keys ref: one sealed entry per (key, recipient). */
static int commit_keys(veld_syncctx *c)
{
	veld_changeset cs;
	commitctx x;
	git_oid tree, commit;
	char ref[128];
	int rc;
	memset(&cs, 0, sizeof cs);
	if (!veld_state__keys_dirty(c->s))
		return 0;
	x.c = c;
	x.cs = &cs;
	if (!(x.key = sodium_malloc(VELD_KEYBYTES)))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	rc = veld_state__shares_each(c->s, seal_share, &x);
	sodium_free(x.key);
	if (rc)
		goto done;
	/* A fresh root commit: the keys ref keeps no history (docs/sync.md). */
	if ((rc = changeset_tree(&tree, c, &cs, NULL)))
		goto done;
	if ((rc = veld_repo__commit(&commit, c->repo, &tree, NULL, 0, c->me,
	                            veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx), "veld keys",
	                            veld_sync__sign, c->dev_sk, c->err)))
		goto done;
	snprintf(ref, sizeof ref, VELD_REF_KEY_PREFIX "%s", c->me);
	if ((rc = stage_ref(c, ref, &commit)))
		goto done;
	rc = veld_state__keys_dirty_set(c->s, 0);
done:
	changeset_free(&cs);
	return rc;
}

/* ---- this store's ref ---------------------------------------------------------------- */

/* One dirty record: sealed with its case's key at its path. */
static int seal_record(const char *id, const char *case_id, const char *compartment, const unsigned char *state,
                       size_t len, void *payload)
{
	commitctx *x = payload;
	unsigned char key_id[VELD_KEYIDBYTES], *blob = NULL;
	size_t blen = 0;
	char path[128];
	int rc = veld_sync__ensure_key(x->c, case_id, compartment, x->key, key_id);
	if (!rc)
		rc = veld_env__seal(&blob, &blen, x->key, key_id, case_id, id, state, len);
	if (rc)
		return rc;
	veld_sync__record_path(path, sizeof path, case_id, id);
	rc = changeset_add(x->c, x->cs, path, blob, blen);
	free(blob);
	if (!rc)
		x->c->pushed++;
	return rc;
}

/* This store's head, then the heads merged in this sync (no duplicates,
** at most VELD_MAX_PARENTS).  *parents malloc'd. */
static int commit_parents(git_oid **parents, size_t *np, veld_syncctx *c, const git_oid *head)
{
	size_t i, j;
	*np = 0;
	if (!(*parents = calloc(1 + c->n_merged_heads, sizeof **parents)))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	if (head)
		(*parents)[(*np)++] = *head;
	for (i = 0; i < c->n_merged_heads && *np < VELD_MAX_PARENTS; i++) {
		int dup = 0;
		for (j = 0; j < *np; j++)
			dup |= git_oid_equal(&(*parents)[j], &c->merged_heads[i]);
		if (!dup)
			(*parents)[(*np)++] = c->merged_heads[i];
	}
	return 0;
}

int veld_sync__commit_local(veld_syncctx *c)
{
	veld_changeset cs;
	commitctx x;
	git_oid head, base_tree, tree, commit, *parents = NULL;
	int have_head, rc;
	char ref[128];
	size_t np = 0;
	memset(&cs, 0, sizeof cs);
	x.c = c;
	x.cs = &cs;
	if (!(x.key = sodium_malloc(VELD_KEYBYTES)))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	veld_sync__own_ref(c, ref, sizeof ref);
	rc = veld_sync__refs_tip(&head, c, ref);
	have_head = rc == 0;
	if (rc && rc != VELD_ENOTFOUND)
		goto done;
	veld_err__clear(c->err);
	rc = 0;
	if (have_head && (rc = veld_repo__commit_tree(&base_tree, c->repo, &head, c->err)))
		goto done;
	if ((rc = veld_state__dirty_each(c->s, seal_record, &x)))
		goto done;
	if (c->office && ((rc = registry_changes(c, &cs)) || (rc = refusal_changes(c, &cs)) ||
	                  (rc = veld_sync__scripts_changes(c, &cs))))
		goto done;
	if ((rc = veld_sync__erasure_changes(c, &cs)))
		goto done;
	if ((rc = changeset_tree(&tree, c, &cs, have_head ? &base_tree : NULL)))
		goto done;
	if ((rc = commit_parents(&parents, &np, c, have_head ? &head : NULL)))
		goto done;
	/* Commit only when the tree changed (what was merged is recorded in
	** sync_refs either way). */
	if (!have_head || !git_oid_equal(&tree, &base_tree)) {
		rc = veld_repo__commit(&commit, c->repo, &tree, parents, np, c->office ? VELD_ORG_SIGNER : c->me,
		                       veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx),
		                       np > 1 ? "veld merge" : "veld sync", veld_sync__sign,
		                       c->office ? c->org_sk : c->dev_sk, c->err);
		if (rc || (rc = stage_ref(c, ref, &commit)))
			goto done;
	}
	if (!(rc = veld_state__mark_committed(c->s)))
		rc = commit_keys(c);
	c->n_merged_heads = 0;
done:
	changeset_free(&cs);
	free(parents);
	sodium_free(x.key);
	return rc;
}

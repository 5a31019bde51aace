/*
** erase.c — erasure: a case crypto-shredded everywhere (docs/sync.md,
** "Erasure").
**
** The office erases a case here (veld_case_erase -> erase_local): its
** records, its keys and their shares leave the store, and the case is
** marked erased, unpublished.  The next commit drops the case's directory
** from this store's tree and, on the office, writes the org-signed marker
** erased/<case> into main (erasure_changes); the keys ref is rewritten
** without the keys.  A device that merges main meets the marker
** (apply_erasure, from merge.c) and erases its copy the same way; older
** copies that arrive later stay erased (merge.c).  Unreachable objects are
** pruned after the sync that published the erasure (run.c).
**
** Must not: touch the tables other than through state.c.
*/
#include "sync.h"

#include <stdio.h>
#include <string.h>

/* Crypto-shred a case in this store: its records and keys go. */
static int erase_local(veld_syncctx *c, const char *case_id)
{
	int rc = veld_state__erase(c->s, case_id);
	if (!rc)
		rc = veld_state__keys_dirty_set(c->s, 1);
	if (!rc)
		rc = veld_store__audit(c->s, "erase", case_id, NULL);
	return rc;
}

static int erasure_change(const char *cid, void *payload)
{
	veld_changectx *x = payload;
	char path[128];
	int rc;
	x->c->prune_due = 1;
	veld_sync__case_dir(path, sizeof path, cid);
	rc = veld_sync__changeset_put(x->c, x->cs, path, NULL);
	if (!rc && x->c->office) {
		snprintf(path, sizeof path, "erased/%s", cid);
		rc = veld_sync__changeset_add_signed(x->c, x->cs, path, json_pack("{s:s}", "case", cid));
	}
	return rc;
}

int veld_sync__erasure_changes(veld_syncctx *c, veld_changeset *cs)
{
	veld_changectx x;
	x.c = c;
	x.cs = cs;
	return veld_state__erased_each(c->s, erasure_change, &x);
}

int veld_sync__apply_erasure(veld_syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	const char *cid;
	int rc;
	if ((rc = veld_sync__read_signed(&body, c, path, id)))
		return rc;
	cid = json_string_value(json_object_get(body, "case"));
	if (!cid || strcmp(cid, path + 7) || !veld_id__is(cid))
		rc = veld_err__set(c->err, VELD_EINTEGRITY, "erasure marker %s is malformed", path + 7);
	else if (!veld_state__erased_has(c->s, cid))
		rc = erase_local(c, cid);
	json_decref(body);
	return rc;
}

int veld_case_erase(veld_store *s, const char *case_id)
{
	veld_syncctx c;
	veld_record *h = NULL;
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)))
		goto done;
	if (!c.office) {
		rc = veld_err__set(c.err, VELD_EDENIED, "only the office erases cases");
		goto done;
	}
	if ((rc = veld_store__record_load(&h, s, case_id ? case_id : "")) || strcmp(veld_record__form(h), VELD_CASE_FORM)) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
		goto done;
	}
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__finish(s, erase_local(&c, case_id));
done:
	veld_record__free(h);
	veld_sync__ctx_free(&c);
	return rc;
}

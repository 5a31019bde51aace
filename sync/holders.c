/*
** holders.c — who holds which case key, as far as this store can see.
**
** A key reaches a device only sealed in someone's keys ref, at the path
** <recipient>/<key id> (docs/sync.md, "Keys tree").  So the paths say who
** holds what, without opening a single entry: this store's own shares
** (key_shares, revoked recipients included) and every entry of every keys
** ref fetched from the hub.  On the office, which fetches them all, that is
** everyone.  Used by rotate.c (who keeps a key, whose revocation calls for
** a new epoch) and access.c (veld_case_access_json).
**
** Reads only; the result is a JSON object: key id -> {recipient: true}.
*/
#include "sync.h"

#include <string.h>

typedef struct holdctx {
	veld_syncctx *c;
	json_t *holders;
	int rc;
} holdctx;

static int note_holder(const char *key_hex, const char *recipient, void *payload)
{
	holdctx *h = payload;
	json_t *set = json_object_get(h->holders, key_hex);
	if (!set && (!(set = json_object()) || json_object_set_new(h->holders, key_hex, set)))
		return h->rc = veld_err__set(h->c->err, VELD_ERROR, "out of memory");
	if (json_object_set_new(set, recipient, json_true()))
		return h->rc = veld_err__set(h->c->err, VELD_ERROR, "out of memory");
	return 0;
}

/* An entry <recipient>/<key id> of a keys ref. */
static int keys_entry(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	const char *slash = strchr(path, '/');
	char recipient[VELD_IDSIZE];
	(void)old_id;
	if (!new_id || !slash || slash - path != VELD_IDSIZE - 1 || !veld_hex__is(slash + 1, 32))
		return 0;
	memcpy(recipient, path, VELD_IDSIZE - 1);
	recipient[VELD_IDSIZE - 1] = '\0';
	return note_holder(slash + 1, recipient, payload) ? 1 : 0;
}

static int scan_keys_ref(const char *name, const git_oid *id, void *payload)
{
	holdctx *h = payload;
	git_oid tree;
	(void)name;
	if (veld_repo__commit_tree(&tree, h->c->repo, id, h->c->err)) {
		veld_err__clear(h->c->err); /* not a commit: take_keys reported it */
		return 0;
	}
	if (veld_repo__diff(h->c->repo, NULL, &tree, keys_entry, h, h->c->err) && !h->rc)
		veld_err__clear(h->c->err);
	return h->rc ? 1 : 0;
}

int veld_sync__holders(json_t **out, veld_syncctx *c)
{
	holdctx h;
	int rc;
	*out = NULL;
	memset(&h, 0, sizeof h);
	h.c = c;
	if (!(h.holders = json_object()))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	rc = veld_state__share_pairs_each(c->s, note_holder, &h);
	if (!rc)
		rc = veld_repo__ref_list(c->repo, VELD_HUB_PREFIX "veld-keys/", scan_keys_ref, &h, c->err);
	if (!rc)
		rc = h.rc;
	if (rc) {
		json_decref(h.holders);
		return rc;
	}
	*out = h.holders;
	return 0;
}

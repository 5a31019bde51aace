/*
** context.c — the sync context every stage works on (veld_syncctx, sync.h):
** the store, its repository, the secret keys of this device (and of the
** organisation on the office), the hub, the caller's options, and what the
** sync found.  Also the small things every stage needs: progress and
** cancellation, the signing callbacks, where a record lives in a tree.
**
** Owns: the secret keys, held in sodium_malloc'd memory for the length of
** a call and freed by ctx_free; the results (rejected refs, new keys,
** merged heads).  It does not own the repository: the store's repository
** is opened once per store handle and stays open in the handle's sync slot
** until veld_store_close (the store's lock keeps every other process out
** of it), so libgit2's caches outlive one sync.
**
** Cancellation: veld_sync__progress asks the caller's callback; a non-zero
** answer marks the context canceled and returns VELD_ECANCELED, and so does
** every later progress call.  A transfer canceled from its own progress
** fails inside libgit2 with whatever libgit2 makes of it;
** veld_sync__transfer_rc turns that back into VELD_ECANCELED.  Where a
** stage may stop without changing the store is run.c's business.
**
** Must not: touch the store's tables (state.c does) or open transactions.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define REPO_DIR "repo"

/* ---- progress and cancellation ------------------------------------------------ */

static int canceled(veld_syncctx *c)
{
	return veld_err__set(c->err, VELD_ECANCELED, "sync canceled during %s", c->cancel_stage);
}

int veld_sync__progress(veld_syncctx *c, const char *stage, size_t done, size_t total)
{
	if (c->canceled)
		return canceled(c);
	if (c->opts && c->opts->progress && c->opts->progress(stage, done, total, c->opts->payload)) {
		c->canceled = 1;
		snprintf(c->cancel_stage, sizeof c->cancel_stage, "%s", stage);
		return canceled(c);
	}
	return 0;
}

int veld_sync__transfer_rc(veld_syncctx *c, int rc)
{
	return rc && c->canceled ? canceled(c) : rc;
}

static int cred_cb(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	veld_syncctx *c = payload;
	if (!c->opts || !c->opts->credentials)
		return -1;
	return c->opts->credentials(user, ucap, pass, pcap, url, c->opts->payload);
}

static int transfer_progress(const char *stage, size_t done, size_t total, void *payload)
{
	return veld_sync__progress(payload, stage, done, total);
}

void veld_sync__remote_opts(veld_syncctx *c, veld_remote_opts *ro)
{
	memset(ro, 0, sizeof *ro);
	ro->cred = cred_cb;
	ro->progress = transfer_progress;
	ro->payload = c;
}

/* ---- records in a tree ------------------------------------------------------------ */

void veld_sync__oid_hex(char *out, const git_oid *id)
{
	git_oid_tostr(out, GIT_OID_HEXSZ + 1, id);
}

void veld_sync__case_dir(char *out, size_t cap, const char *case_id)
{
	snprintf(out, cap, "cases/%.2s/%c/%.32s", case_id, case_id[2], case_id);
}

/* Well formed: two ids of 32 lowercase hex digits, the directory exactly
** the case's. */
int veld_sync__parse_record_path(const char *path, char *case_id, char *record_id)
{
	char dir[VELD_CASE_DIR_LEN + 1];
	const char *c = path + VELD_CASE_DIR_LEN - 32, *r = path + VELD_CASE_DIR_LEN + 1;
	if (strlen(path) != VELD_CASE_DIR_LEN + 1 + 32 || path[VELD_CASE_DIR_LEN] != '/' || !veld_hex__is(c, 32) ||
	    !veld_hex__is(r, 32))
		return -1;
	veld_sync__case_dir(dir, sizeof dir, c);
	if (memcmp(path, dir, VELD_CASE_DIR_LEN))
		return -1;
	memcpy(case_id, c, 32);
	case_id[32] = '\0';
	memcpy(record_id, r, 32);
	record_id[32] = '\0';
	return 0;
}

void veld_sync__record_path(char *out, size_t cap, const char *case_id, const char *record_id)
{
	char dir[VELD_CASE_DIR_LEN + 1];
	veld_sync__case_dir(dir, sizeof dir, case_id);
	snprintf(out, cap, "%s/%s", dir, record_id);
}

void veld_sync__reject(veld_syncctx *c, const char *ref, const git_oid *commit, const char *reason)
{
	char hex[GIT_OID_HEXSZ + 1] = "";
	if (commit)
		veld_sync__oid_hex(hex, commit);
	json_array_append_new(c->rejected, json_pack("{s:s, s:s, s:s}", "ref", ref, "commit", hex, "reason", reason));
	c->forged++;
}

int veld_sync__refuse_change(veld_syncctx *c, veld_refusal_row *r, const git_oid *blob, const char *ref)
{
	char hex[GIT_OID_HEXSZ + 1] = "";
	if (blob)
		veld_sync__oid_hex(hex, blob);
	r->blob = hex;
	r->case_id = r->case_id ? r->case_id : "";
	r->record_id = r->record_id ? r->record_id : "";
	r->at = veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx);
	return veld_sync__refusal_note(c, r, ref, 1);
}

int veld_sync__refusal_note(veld_syncctx *c, const veld_refusal_row *r, const char *ref, int report)
{
	int is_new = 0, rc = veld_state__refusal_add(&is_new, c->s, r);
	if (rc || !is_new || !report)
		return rc;
	json_array_append_new(c->rejected, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ref", ref, "device",
	                                             r->device, "case", r->case_id, "record", r->record_id, "commit",
	                                             r->commit, "code", r->code, "reason", r->reason));
	return 0;
}

const char *veld_sync__own_ref(veld_syncctx *c, char *buf, size_t cap)
{
	if (c->office)
		snprintf(buf, cap, "%s", VELD_REF_MAIN);
	else
		snprintf(buf, cap, VELD_REF_DEV_PREFIX "%s", c->me);
	return buf;
}

int veld_sync__key_from_hex(unsigned char *out32, const char *hex)
{
	size_t len = 0;
	if (!hex || sodium_hex2bin(out32, 32, hex, strlen(hex), NULL, &len, NULL) || len != 32)
		return -1;
	return 0;
}

int veld_sync__own_head(git_oid *out, int *have, veld_syncctx *c)
{
	char ref[128];
	int rc = veld_repo__ref_get(out, c->repo, veld_sync__own_ref(c, ref, sizeof ref), c->err);
	*have = rc == 0;
	if (rc != VELD_ENOTFOUND)
		return rc;
	veld_err__clear(c->err);
	return 0;
}

/* ---- signatures ---------------------------------------------------------------- */

int veld_sync__sign(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload)
{
	const unsigned char *sk = payload;
	return crypto_sign_detached(sig64, NULL, msg, len, sk) == 0 ? 0 : -1;
}

int veld_sync__pubkey(unsigned char *pk32, const char *signer, void *payload)
{
	veld_syncctx *c = payload;
	if (!strcmp(signer, VELD_ORG_SIGNER)) {
		if (!c->have_org)
			return VELD_ENOTFOUND;
		memcpy(pk32, c->org_pk, 32);
		return 0;
	}
	return veld_state__device_sign_pk(pk32, c->s, signer, 0);
}

int veld_sync__pubkey_revoked(unsigned char *pk32, const char *signer, void *payload)
{
	veld_syncctx *c = payload;
	if (!strcmp(signer, VELD_ORG_SIGNER))
		return veld_sync__pubkey(pk32, signer, payload);
	return veld_state__device_sign_pk(pk32, c->s, signer, 1);
}

int veld_sync__header_signer(char *out, size_t cap, veld_syncctx *c, const git_oid *id)
{
	git_commit *gc = NULL;
	git_buf field = {0};
	int rc = -1;
	out[0] = '\0';
	if (git_commit_lookup(&gc, veld_repo__git(c->repo), id) == 0 &&
	    git_commit_header_field(&field, gc, "veldsig") == 0 && field.ptr) {
		size_t n = strcspn(field.ptr, " ");
		if (n > 0 && n < cap) {
			memcpy(out, field.ptr, n);
			out[n] = '\0';
			rc = 0;
		}
	}
	git_buf_dispose(&field);
	git_commit_free(gc);
	return rc;
}

/* ---- open and free ----------------------------------------------------------- */

/* Load a secret from meta into sodium_malloc'd memory. */
static int load_secret(unsigned char **out, veld_syncctx *c, const char *key, int len)
{
	unsigned char *buf = sodium_malloc((size_t)len);
	int n;
	*out = NULL;
	if (!buf)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	n = veld_store__meta_get(c->s, key, buf, len);
	if (n != len) {
		sodium_free(buf);
		return n < 0 ? n : veld_err__set(c->err, VELD_EINTEGRITY, "store key '%s' is malformed", key);
	}
	*out = buf;
	return 0;
}

static int load_keys(veld_syncctx *c)
{
	char role[32];
	int rc, n = veld_store__meta_get(c->s, "device_role", role, (int)sizeof role - 1);
	if (n < 0)
		return n;
	role[n] = '\0';
	c->office = !strcmp(role, "office");
	if ((rc = load_secret(&c->dev_sk, c, "sign_sk", crypto_sign_SECRETKEYBYTES)) ||
	    (rc = load_secret(&c->box_sk, c, "box_sk", crypto_box_SECRETKEYBYTES)))
		return rc;
	if ((n = veld_store__meta_get(c->s, "box_pk", c->box_pk, sizeof c->box_pk)) != sizeof c->box_pk)
		return n < 0 ? n : veld_err__set(c->err, VELD_EINTEGRITY, "store box key is malformed");
	if (c->office && (rc = load_secret(&c->org_sk, c, "org_sign_sk", crypto_sign_SECRETKEYBYTES)))
		return rc;
	/* Absent before the first join; any other failure (out of memory) must
	** not pass for "no organisation key yet". */
	n = veld_store__meta_get(c->s, "org_sign_pk", c->org_pk, sizeof c->org_pk);
	if (n < 0 && n != VELD_ENOTFOUND)
		return n;
	c->have_org = n == sizeof c->org_pk;
	return 0;
}

static void repo_slot_free(void *r)
{
	veld_repo__free(r);
}

/* The repository stays open with the store handle, from the first
** operation that needs it to veld_store_close: libgit2's caches (parsed
** objects, pack indexes, pack windows) then serve the next sync too. */
static int open_repo(veld_syncctx *c)
{
	const veld_os *os = veld_store__os(c->s);
	char path[4096];
	int rc, flags = 0;
	if ((c->repo = veld_store__slot(c->s, VELD_STORE_SLOT_SYNC)) == NULL) {
		snprintf(path, sizeof path, "%s/%s", veld_store__dir(c->s), REPO_DIR);
		if (os->xStat(os->ctx, path, &flags, NULL) != 0)
			rc = veld_repo__init(&c->repo, os, path, c->err);
		else
			rc = veld_repo__open(&c->repo, os, path, c->err);
		if (rc == VELD_EINTEGRITY) /* a pack index (repo.c checks them at open) */
			return veld_err__set(c->err, rc,
			                     "this store's own repository is damaged (a fault on this device, not the hub's): %s",
			                     c->err->msg);
		if (rc)
			return rc;
		veld_store__set_slot(c->s, VELD_STORE_SLOT_SYNC, c->repo, repo_slot_free);
	}
	/* The store is open here, so no other process uses its repository: a
	** lock file in it is what a killed sync left behind. */
	veld_repo__clear_stale_locks(c->repo);
	return 0;
}

int veld_sync__ctx_open(veld_syncctx *c, veld_store *s, const veld_sync_options *opts, int need_hub)
{
	int n, rc;
	memset(c, 0, sizeof *c);
	c->s = s;
	c->err = veld_store__err(s);
	c->opts = opts;
	c->me = veld_store__device_id(s);
	c->rejected = json_array();
	c->new_key_cases = json_array();
	c->blob_key = sodium_malloc(VELD_KEYBYTES);
	if (!c->rejected || !c->new_key_cases || !c->blob_key)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	if ((rc = load_keys(c)))
		return rc;
	n = veld_store__meta_get(s, "hub", c->hub, (int)sizeof c->hub - 1);
	if (n < 0 && n != VELD_ENOTFOUND)
		return n;
	if (n < 0) {
		if (need_hub)
			return veld_err__set(c->err, VELD_ENOTFOUND, "this store has no hub yet: run `veld join --hub HUB`");
		n = 0;
	}
	c->hub[n] = '\0';
	veld_err__clear(c->err);
	return open_repo(c);
}

void veld_sync__ctx_free(veld_syncctx *c)
{
	/* c->repo stays open with the store (open_repo) */
	sodium_free(c->dev_sk);
	sodium_free(c->org_sk);
	sodium_free(c->box_sk);
	sodium_free(c->blob_key);
	json_decref(c->rejected);
	json_decref(c->new_key_cases);
	free(c->merged_heads);
	memset(c, 0, sizeof *c);
}

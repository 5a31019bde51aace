/*
** run.c — one sync (veld_sync), stage by stage (docs/sync.md):
**
**   commit   seal every dirty record into a commit on this store's ref
**            (commit.c; one short transaction);
**   fetch    main, every device ref and every keys ref, into refs/veld-hub/
**            (no transaction);
**   verify   every commit a ref brought (verify.c), and
**   merge    the verified refs into the store (merge.c, keys.c), then the
**            merge commit (commit.c): all one transaction;
**   push     this device's refs (the office: main);
**   upkeep   a repack every REPACK_EVERY syncs, a prune after an erasure.
**
** Every stage can be interrupted and run again: commits are made only when
** the tree changed, merges are idempotent, pushes of pushed refs are no-ops.
** The store is changed only inside transactions, after verification.
**
** Cancellation (the progress callback returns non-zero): veld_sync returns
** VELD_ECANCELED and the store is as it was, except for what a later sync
** would do first anyway.  Stage by stage:
**   commit   asked before the transaction: nothing has changed.
**   fetch    asked after the commit stage.  That stage is complete in
**            itself (its transaction committed, its refs moved): the
**            next sync's commit step finds nothing dirty and makes no
**            commit, and its push sends this one.  Records, exports and
**            the hub are unchanged; nothing is marked pushed.  A fetch
**            canceled in the transfer leaves refs/veld-hub/ as it was or
**            partly updated, which the next fetch overwrites.
**   verify, merge
**            asked inside the merge transaction: it rolls back; nothing
**            was merged, sync_refs is as it was.
**   push     asked inside the same transaction, after the merge commit was
**            written but before any ref moved (commit.c stages refs): the
**            transaction rolls back and the commit stays an unreachable
**            object, dropped by the next repack.
** After the push question the store is committed; a transfer canceled
** while it sends (the transport's own progress) returns VELD_ECANCELED
** with the merge kept: the next sync pushes it, as after a failed push.
** The upkeep comes after the push: a cancel there skips it (a repack due
** stays due; a prune is left to the next repack) and the sync returns what
** it did.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fetch --------------------------------------------------------------------- */

typedef struct lsctx {
	veld_syncctx *c;
	int rc;
} lsctx;

/* Fetch one advertised ref on its own; a ref whose objects do not arrive
** intact is rejected by name, the others go on. */
static int fetch_one(const char *name, const git_oid *id, void *payload)
{
	lsctx *l = payload;
	veld_syncctx *c = l->c;
	char spec[400];
	const char *specs[1];
	veld_remote_opts ro;
	if (strcmp(name, VELD_REF_MAIN) && strncmp(name, VELD_REF_DEV_PREFIX, strlen(VELD_REF_DEV_PREFIX)) &&
	    strncmp(name, VELD_REF_KEY_PREFIX, strlen(VELD_REF_KEY_PREFIX)))
		return 0;
	snprintf(spec, sizeof spec, "+%s:" VELD_HUB_PREFIX "%s", name, name + 5); /* "refs/" stripped */
	specs[0] = spec;
	veld_sync__remote_opts(c, &ro);
	if (veld_repo__fetch(c->repo, c->hub, specs, 1, &ro, c->err)) {
		if (c->err->code == VELD_EAUTH || c->canceled) {
			l->rc = c->err->code;
			return 1;
		}
		veld_sync__reject(c, name, id, c->err->msg);
		veld_err__clear(c->err);
	}
	return 0;
}

static int fetch_all(veld_syncctx *c)
{
	static const char *const specs[] = {
		"+" VELD_REF_MAIN ":" VELD_HUB_PREFIX "heads/main",
		"+refs/veld/devices/*:" VELD_HUB_PREFIX "veld/devices/*",
		"+refs/veld-keys/*:" VELD_HUB_PREFIX "veld-keys/*",
	};
	veld_remote_opts ro;
	lsctx l;
	int rc;
	if ((rc = veld_sync__progress(c, "fetch", 0, 1)))
		return rc;
	veld_sync__remote_opts(c, &ro);
	rc = veld_sync__transfer_rc(c, veld_repo__fetch(c->repo, c->hub, specs, 3, &ro, c->err));
	if (rc != VELD_EINTEGRITY)
		return rc;
	/* Something arrived damaged: fetch ref by ref to name the bad one and
	** still take the others. */
	veld_err__clear(c->err);
	memset(&l, 0, sizeof l);
	l.c = c;
	rc = veld_repo__ls_remote(c->repo, c->hub, &ro, fetch_one, &l, c->err);
	return veld_sync__transfer_rc(c, rc ? rc : l.rc);
}

/* ---- verify and merge ------------------------------------------------------------ */

typedef struct refctx {
	char (*names)[160];
	git_oid *ids;
	size_t n, cap;
} refctx;

static int collect_ref(const char *name, const git_oid *id, void *payload)
{
	refctx *r = payload;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? 2 * r->cap : 32;
		void *a = realloc(r->names, ncap * sizeof *r->names), *b = a ? realloc(r->ids, ncap * sizeof *r->ids) : NULL;
		if (a)
			r->names = a;
		if (b)
			r->ids = b;
		if (!a || !b)
			return -1;
		r->cap = ncap;
	}
	snprintf(r->names[r->n], sizeof r->names[r->n], "%s", name);
	r->ids[r->n++] = *id;
	return 0;
}

/* The fetched refs under `hub_prefix` but this store's own, as
** `ref_prefix`<owner>. */
typedef int (*ref_step)(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head, size_t i,
                        size_t n);

static int each_fetched(veld_syncctx *c, const char *hub_prefix, const char *ref_prefix, ref_step step)
{
	refctx r;
	size_t i, pl = strlen(hub_prefix);
	int rc;
	memset(&r, 0, sizeof r);
	rc = veld_repo__ref_list(c->repo, hub_prefix, collect_ref, &r, c->err);
	for (i = 0; !rc && i < r.n; i++) {
		const char *owner = r.names[i] + pl;
		char ref[160];
		if (!strcmp(owner, c->me))
			continue;
		snprintf(ref, sizeof ref, "%s%s", ref_prefix, owner);
		rc = step(c, ref, owner, &r.ids[i], i, r.n);
	}
	free(r.names);
	free(r.ids);
	return rc;
}

static int keys_step(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head, size_t i, size_t n)
{
	(void)i;
	(void)n;
	return veld_sync__take_keys(c, ref, owner, head);
}

/* The office merges every device ref into main; devices merge their peers
** too, so they converge without waiting. */
static int device_step(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head, size_t i, size_t n)
{
	int rc;
	if ((rc = veld_sync__progress(c, "verify", i + 1, n)))
		return rc;
	if (veld_sync__verify_ref(c, ref, owner, head) == 0)
		return veld_sync__merge_ref(c, ref, head, 0, 1);
	return 0;
}

/* Verify and merge everything fetched (inside the caller's transaction). */
static int merge_fetched(veld_syncctx *c)
{
	git_oid main_head;
	int rc;
	if ((rc = veld_sync__progress(c, "verify", 0, 1)))
		return rc;
	/* 1. main: signed by the organisation; carries the registry. */
	if (veld_repo__ref_get(&main_head, c->repo, VELD_HUB_PREFIX "heads/main", c->err) == 0) {
		if (!c->have_org)
			return veld_err__set(c->err, VELD_EINTEGRITY, "the organisation key is unknown: run `veld join` first");
		/* The office is the author of main: its own registry is already loaded. */
		if (veld_sync__verify_ref(c, VELD_REF_MAIN, VELD_ORG_SIGNER, &main_head) == 0 &&
		    (rc = veld_sync__merge_ref(c, VELD_REF_MAIN, &main_head, !c->office, 1)))
			return rc;
	}
	veld_err__clear(c->err);
	/* 2. keys refs: keys sealed to this device.  3. device refs. */
	if ((rc = each_fetched(c, VELD_HUB_PREFIX "veld-keys/", VELD_REF_KEY_PREFIX, keys_step)) ||
	    (rc = each_fetched(c, VELD_HUB_PREFIX "veld/devices/", VELD_REF_DEV_PREFIX, device_step)))
		return rc;
	/* 4. cases whose keys just arrived: merge what the hub already had. */
	if ((rc = veld_sync__progress(c, "merge", 0, 1)))
		return rc;
	return veld_sync__rescan_new_keys(c);
}

/* ---- push ------------------------------------------------------------------------ */

typedef struct pushplan {
	char own[300], keys[300];
	const char *specs[2];
	size_t n;
} pushplan;

/* 1 if the hub's copy of `ref` (fetched into refs/veld-hub/) is `id`. */
static int hub_has_ref(veld_syncctx *c, const char *ref, const git_oid *id)
{
	char name[300];
	git_oid got;
	snprintf(name, sizeof name, VELD_HUB_PREFIX "%s", ref + 5); /* "refs/" stripped */
	if (veld_repo__ref_get(&got, c->repo, name, c->err) != 0) {
		veld_err__clear(c->err);
		return 0;
	}
	return git_oid_equal(&got, id);
}

/* Only refs the hub does not have as they are (its copy was fetched in this
** sync): a push costs a walk even when nothing is new.  Reads the refs as
** the staged commit will leave them. */
static void push_plan(pushplan *p, veld_syncctx *c)
{
	char ownref[128], keyref[128];
	git_oid tmp;
	memset(p, 0, sizeof *p);
	veld_sync__own_ref(c, ownref, sizeof ownref);
	snprintf(keyref, sizeof keyref, VELD_REF_KEY_PREFIX "%s", c->me);
	if (veld_sync__refs_tip(&tmp, c, ownref) == 0 && !hub_has_ref(c, ownref, &tmp)) {
		snprintf(p->own, sizeof p->own, "%s:%s", ownref, ownref);
		p->specs[p->n++] = p->own;
	}
	if (veld_sync__refs_tip(&tmp, c, keyref) == 0 && !hub_has_ref(c, keyref, &tmp)) {
		snprintf(p->keys, sizeof p->keys, "+%s:%s", keyref, keyref);
		p->specs[p->n++] = p->keys;
	}
	veld_err__clear(c->err);
}

static int push_own(veld_syncctx *c, const pushplan *p)
{
	veld_remote_opts ro;
	int rc;
	if (p->n == 0)
		return 0;
	veld_sync__remote_opts(c, &ro);
	rc = veld_sync__transfer_rc(c, veld_repo__push(c->repo, c->hub, p->specs, p->n, &ro, c->err));
	if (rc)
		c->pushed = 0; /* the summary never claims a push that did not happen */
	return rc;
}

/* ---- the stages that change the store ----------------------------------------- */

/* 1. commit local changes (short transaction). */
static int commit_stage(veld_syncctx *c)
{
	int rc;
	if ((rc = veld_sync__progress(c, "commit", 0, 1)) || (rc = veld_sync__keys_stage(c)) ||
	    (rc = veld_store__begin(c->s)))
		return rc;
	c->headers_changed = veld_state__dirty_headers(c->s);
	rc = c->office ? veld_contact__refresh_dirty(c->s) : 0; /* contact parts follow their headers */
	if (!rc)
		rc = veld_sync__rotate_revoked(c); /* before a revocation goes out */
	if (!rc)
		rc = veld_sync__commit_local(c);
	if (!rc)
		rc = veld_sync__refs_apply(c);
	return veld_store__finish(c->s, rc);
}

/* 3-4. verify and merge, the merge commit, and the last question before
** the push: one transaction. */
static int merge_stage(veld_syncctx *c, pushplan *p)
{
	size_t pushed = c->pushed, rejected;
	int rc;
	if ((rc = veld_store__begin(c->s)))
		return rc;
	rejected = json_array_size(c->rejected);
	rc = merge_fetched(c);
	/* Damage of our own repository is no ref's fault: nothing is merged
	** or refused on its account (the transaction rolls back). */
	if (rc || json_array_size(c->rejected) > rejected)
		rc = veld_sync__fault_side(c, rc, 0);
	if (!rc && c->self_revoked) {
		/* Main revokes this device: what it holds of cases goes, in the
		** transaction that records the revocation; nothing is pushed. */
		rc = veld_state__purge_cases(c->s);
		c->pushed = 0;
		p->n = 0;
		return veld_store__finish(c->s, rc);
	}
	if (!rc && c->office)
		rc = veld_contact__refresh_dirty(c->s);
	if (!rc)
		rc = veld_sync__rotate_revoked(c);
	if (!rc)
		rc = veld_sync__commit_local(c);
	c->pushed = pushed; /* merged records are counted as merged, not pushed */
	if (!rc)
		rc = veld_store__audit(c->s, "sync", NULL, NULL);
	if (!rc) {
		push_plan(p, c);
		if (p->n)
			rc = veld_sync__progress(c, "push", 0, p->n);
	}
	if (!rc)
		rc = veld_sync__refs_apply(c);
	c->n_staged = 0; /* canceled or failed: the refs stay where they are */
	return veld_store__finish(c->s, rc);
}

/* ---- upkeep ------------------------------------------------------------------------ */

/* veld_repo__maintain on this store's repository and, for the office with a
** hub on a path (which it can reach), on the hub. */
static int maintain_all(veld_syncctx *c, int prune_age_s)
{
	veld_repo *hub = NULL;
	int rc = veld_repo__maintain(c->repo, prune_age_s, c->err);
	if (rc || !c->office || veld_repo__is_url(c->hub))
		return rc;
	veld_repo__hub_release(c->repo); /* its packs are about to go */
	if ((rc = veld_repo__open(&hub, veld_store__os(c->s), c->hub, c->err)) == 0)
		rc = veld_repo__maintain(hub, prune_age_s, c->err);
	veld_repo__free(hub);
	return rc;
}

/* Report an upkeep stage; 0 if the caller canceled it (skipped: the sync
** itself is done and stays done). */
static int upkeep_wanted(veld_syncctx *c, const char *stage)
{
	if (!veld_sync__progress(c, stage, 0, 1))
		return 1;
	veld_err__clear(c->err);
	return 0;
}

/* Periodic repack: every REPACK_EVERY syncs, pack what is reachable and
** drop the rest (loose objects pile up otherwise; unreachable sealed keys
** must disappear for crypto-shredding).  Not every sync: a repack costs in
** proportion to the whole history. */
#define REPACK_EVERY 50
static int maybe_maintain(veld_syncctx *c)
{
	char buf[16];
	int n = veld_store__meta_get(c->s, "syncs_since_repack", buf, (int)sizeof buf - 1), count = 0, rc;
	if (n > 0) {
		buf[n] = '\0';
		count = atoi(buf);
	}
	veld_err__clear(c->err);
	if (++count >= REPACK_EVERY && upkeep_wanted(c, "repack")) {
		if ((rc = maintain_all(c, 3600)))
			return rc;
		count = 0;
	}
	n = snprintf(buf, sizeof buf, "%d", count);
	return veld_store__meta_put(c->s, "syncs_since_repack", buf, n);
}

/* After an erasure: objects only the old keys refs and trees reached are
** pruned now, here and (for a hub on a path, which the office can reach)
** on the hub.  A hosted hub prunes with its own gc (docs/hub.md). */
static int prune_erased(veld_syncctx *c)
{
	return upkeep_wanted(c, "prune") ? maintain_all(c, 0) : 0;
}

/* ---- veld_sync ------------------------------------------------------------------- */

void veld_sync_options_init(veld_sync_options *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof *opts);
	opts->version = VELD_SYNC_OPTIONS_VERSION;
}

/* The reason of the first ref refused whole (entries without a "code":
** changes refused alone carry one). */
static const char *first_forged(veld_syncctx *c)
{
	size_t i;
	json_t *e;
	json_array_foreach(c->rejected, i, e)
	{
		if (!json_object_get(e, "code"))
			return json_string_value(json_object_get(e, "reason"));
	}
	return "";
}

static char *summary(veld_syncctx *c)
{
	char *text;
	json_t *sum = json_pack("{s:I, s:I, s:I, s:i, s:O}", "pushed", (json_int_t)c->pushed, "fetched",
	                        (json_int_t)c->fetched, "merged", (json_int_t)c->merged, "conflicts",
	                        veld_state__conflicts(c->s), "rejected", c->rejected);
	text = sum ? json_dumps(sum, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	json_decref(sum);
	return text;
}

int veld_sync(char **summary_json, veld_store *s, const veld_sync_options *opts)
{
	veld_syncctx c;
	pushplan plan;
	int rc;
	if (summary_json)
		*summary_json = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = veld_sync__ctx_open(&c, s, opts, 1)))
		goto done;
	if (veld_state__device_revoked(s, c.me)) {
		rc = veld_err__set(c.err, VELD_EDENIED, "device %s was revoked by the office: it syncs no more", c.me);
		goto done;
	}
	c.prune_due = opts && (opts->flags & VELD_SYNC_PRUNE);
	if ((rc = commit_stage(&c)) || (rc = fetch_all(&c)) || (rc = merge_stage(&c, &plan)) ||
	    (rc = push_own(&c, &plan)))
		goto done;
	if (c.self_revoked) {
		rc = veld_err__set(c.err, VELD_EDENIED,
		                   "device %s was revoked by the office: its case data was removed from this store", c.me);
		goto done;
	}
	rc = maybe_maintain(&c);
	if (!rc && c.prune_due)
		rc = prune_erased(&c);
	if (!rc && c.forged > 0)
		rc = veld_err__set(c.err, VELD_EINTEGRITY, "%zu ref(s) rejected: %s", c.forged, first_forged(&c));
done:
	if (rc)
		rc = veld_sync__fault_side(&c, rc, 1); /* this store's damage, or a hub's on a path */
	if (summary_json && c.rejected)
		*summary_json = summary(&c);
	veld_sync__ctx_free(&c);
	return rc;
}

/*
** verify.c — the verify stage: may a fetched ref be merged?
**
** Every commit a ref brought (reachable from its new head, not from a head
** already trusted) must be signed by an enrolled, unrevoked device or the
** organisation; a device may write only the paths its role allows (record
** paths, and of those what the write rule of core's rules.c allows: the
** rule the writer applied when it made the change), and every blob it writes
** must open with the key it claims, at its own path.  A ref never goes
** back: its new head must descend from the last one verified.  The head
** itself must be signed by the ref's owner.  A ref that fails one of
** these (forgery: a bad or unknown signature, a rewound ref) is rejected
** whole (the context's `rejected`, with the reason); nothing of it is
** merged.  A change that fails the write rule (on the office also the
** form check the caller gives: scripts_dist.c), or does not open, or
** touches an erased case, or was written by a revoked device, is refused
** alone (docs/sync.md, "Refusals"): recorded in the refusals table, which
** merge.c consults, and reported the first time; the ref's other changes
** merge as usual.  The ref of a revoked device is not read at all.
**
** Also open_blob, which merge.c and repoverify.c use too: a record blob
** opened with the key this store holds for it.
**
** Must not: change the store beyond the refusals it records (state.c).
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- blobs ------------------------------------------------------------------------ */

const char *veld_sync__open_blob(veld_syncctx *c, const git_oid *id, const char *case_id,
                                 const char *record_id, veld_record **rec, char *compartment, size_t ccap,
                                 const char **code, char *why, size_t wcap)
{
	unsigned char *blob = NULL, *pt = NULL, key_id[VELD_KEYIDBYTES];
	unsigned char *key = c->blob_key;
	size_t len = 0, ptlen = 0;
	int elsewhere = 0;
	veld_err e;
	const char *reason = NULL;
	*rec = NULL;
	*code = VELD_REFUSED_OPEN;
	compartment[0] = '\0';
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, id, &e)) {
		reason = "a blob is missing or unreadable";
		goto done;
	}
	if (veld_env__key_id(key_id, blob, len)) {
		snprintf(why, wcap, "record %s is not a veld envelope", record_id);
		reason = why;
		goto done;
	}
	if (veld_state__case_key_find(key, compartment, ccap, &elsewhere, c->s, case_id, key_id)) {
		*code = VELD_REFUSED_KEY;
		if (elsewhere) {
			snprintf(why, wcap, "record %s claims the key of another case", record_id);
			reason = why;
		} else if (c->office) {
			snprintf(why, wcap, "record %s is sealed with a key the office does not know", record_id);
			reason = why;
		}
		goto done; /* unreadable here: someone who holds the key checks it */
	}
	if (veld_env__open(&pt, &ptlen, blob, len, key, case_id, record_id, &e)) {
		snprintf(why, wcap, "record %s does not open with its key (tampered or moved)", record_id);
		reason = why;
		goto done;
	}
	if (veld_record__parse(rec, (const char *)pt, ptlen, &e) || strcmp(veld_record__id(*rec), record_id) ||
	    strcmp(veld_record__case(*rec), case_id)) {
		veld_record__free(*rec);
		*rec = NULL;
		snprintf(why, wcap, "record %s holds another record's state", record_id);
		reason = why;
	}
done:
	if (pt)
		sodium_memzero(pt, ptlen);
	free(pt);
	free(blob);
	sodium_memzero(key, VELD_KEYBYTES);
	return reason;
}

/* ---- paths a signer may write ---------------------------------------------------- */

typedef struct checkctx {
	veld_syncctx *c;
	const char *ref;
	const char *signer;
	char commit[GIT_OID_HEXSZ + 1];
	git_oid main_tree; /* main as merged here: its blobs are accepted already */
	int have_main;
	git_oid merged[VELD_MAX_PARENTS]; /* trees of the commit's other parents */
	size_t n_merged;
	char role[32];
	veld_range ranges[VELD_MAX_RANGES];
	int n_ranges;
	int rc; /* an error, not a refusal */
	char whybuf[256];
} checkctx;

/* The write rule (core's rules.c, which the writer applied too) for one
** record the signer wrote; `rec` NULL when this store cannot read it. */
static const char *rule_forbids(checkctx *ck, const char **code, const veld_record *rec, const char *comp,
                                const git_oid *old_id, const char *case_id, const char *record_id)
{
	veld_writer w;
	veld_change ch;
	char who[64];
	size_t n;
	memset(&w, 0, sizeof w);
	memset(&ch, 0, sizeof ch);
	snprintf(who, sizeof who, "device %s", ck->signer);
	w.role = ck->role;
	w.ranges = ck->ranges;
	w.n_ranges = ck->n_ranges;
	w.who = who;
	ch.case_id = case_id;
	ch.record_id = record_id;
	ch.form = rec ? veld_record__form(rec) : NULL;
	ch.compartment = comp;
	ch.postcode = rec ? json_string_value(veld_record__value(rec, "postcode", &n)) : NULL;
	ch.creates = !old_id;
	ch.readable = rec != NULL;
	return veld_rules__check(code, ck->whybuf, sizeof ck->whybuf, &w, &ch) ? ck->whybuf : NULL;
}

/* Refuse one change alone: recorded, reported the first time, never
** merged (merge.c looks the blob up); the diff goes on. */
static int refuse(checkctx *ck, const char *path, const git_oid *blob, const char *case_id, const char *record_id,
                  const char *code, const char *reason)
{
	veld_refusal_row r;
	memset(&r, 0, sizeof r);
	r.path = path;
	r.device = ck->signer;
	r.case_id = case_id;
	r.record_id = record_id;
	r.code = code;
	r.reason = reason;
	r.commit = ck->commit;
	r.published = !ck->c->office; /* only the office publishes */
	ck->rc = veld_sync__refuse_change(ck->c, &r, blob, ck->ref);
	return ck->rc ? 1 : 0;
}

static int tree_holds(checkctx *ck, const git_oid *tree, const char *path, const git_oid *id)
{
	git_oid got;
	veld_err e;
	memset(&e, 0, sizeof e);
	return veld_repo__tree_lookup(&got, ck->c->repo, tree, path, &e) == 0 && git_oid_equal(&got, id);
}

/* 1 if blob `id` at `path` was merged, not written, by the signer: main,
** as merged here, holds it there (the office checked it when it wrote
** main), or one of the commit's other parents (main or a peer's head, as
** the signer merged them: verified in their own right) does.  A header
** the office moved out of an assistant's region, or a case's contact part
** (the office's alone), carried by a device that merged it, is no
** refusal. */
static int in_main(checkctx *ck, const char *path, const git_oid *id)
{
	size_t i;
	if (ck->have_main && tree_holds(ck, &ck->main_tree, path, id))
		return 1;
	for (i = 0; i < ck->n_merged; i++)
		if (tree_holds(ck, &ck->merged[i], path, id))
			return 1;
	return 0;
}

/* One changed path of a commit by ck->signer: may that signer write it? */
static int check_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	checkctx *ck = payload;
	veld_syncctx *c = ck->c;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE], comp[32];
	veld_record *rec = NULL;
	const char *why, *code = NULL;
	int rc;
	if (!strcmp(ck->signer, VELD_ORG_SIGNER))
		return 0; /* the office writes the registry, erasures, refusals and merges */
	if (veld_sync__parse_record_path(path, case_id, record_id)) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "writes %.80s, outside the cases it may write", path);
		return refuse(ck, path, new_id, NULL, NULL, VELD_REFUSED_PATH, ck->whybuf);
	}
	if (veld_state__erased_has(c->s, case_id)) {
		if (!new_id)
			return 0; /* the case was erased by the office: its paths go */
		snprintf(ck->whybuf, sizeof ck->whybuf, "record %s: case %s was erased by the office", record_id, case_id);
		return refuse(ck, path, new_id, case_id, record_id, VELD_REFUSED_ERASED, ck->whybuf);
	}
	if (veld_state__access_lost_has(c->s, ck->signer, case_id) && !(new_id && in_main(ck, path, new_id))) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "record %s: device %s no longer has access to case %s", record_id,
		         ck->signer, case_id);
		return refuse(ck, path, new_id, case_id, record_id, VELD_REFUSED_ACCESS, ck->whybuf);
	}
	if (new_id && in_main(ck, path, new_id))
		return 0; /* what main holds there: merged, not written, by the signer */
	if (!new_id) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "removes record %s (records are deleted with a tombstone)",
		         record_id);
		return refuse(ck, path, new_id, case_id, record_id, VELD_REFUSED_REMOVE, ck->whybuf);
	}
	why = veld_sync__open_blob(c, new_id, case_id, record_id, &rec, comp, sizeof comp, &code, ck->whybuf,
	                           sizeof ck->whybuf);
	if (!why)
		why = rule_forbids(ck, &code, rec, comp, old_id, case_id, record_id);
	if (!why && rec) /* the office: the record by its form's rules */
		why = veld_sync__form_forbids(c, &code, rec, ck->whybuf, sizeof ck->whybuf);
	veld_record__free(rec);
	rc = why ? refuse(ck, path, new_id, case_id, record_id, code, why) : 0;
	return rc;
}

/* ---- a ref --------------------------------------------------------------------------- */

typedef struct headsctx {
	veld_err *err;
	git_oid *v;
	size_t n, cap; /* cap >= n + 1 after every call: room for one more */
} headsctx;

static int add_head(const char *hex, void *payload)
{
	headsctx *h = payload;
	if (h->n + 2 > h->cap) {
		void *p = realloc(h->v, (h->cap = h->cap ? 2 * h->cap : 16) * sizeof *h->v);
		if (!p)
			return veld_err__set(h->err, VELD_ERROR, "out of memory");
		h->v = p;
	}
	if (git_oid_fromstr(&h->v[h->n], hex) == 0)
		h->n++;
	return 0;
}

/* Every head already trusted (sync_refs, this store's own): stops for the
** walk over new commits.  *out malloc'd. */
static int trusted_heads(veld_syncctx *c, git_oid **out, size_t *n)
{
	headsctx h;
	git_oid own;
	char ref[128];
	int rc;
	memset(&h, 0, sizeof h);
	h.err = c->err;
	*out = NULL;
	*n = 0;
	/* "" adds no head but makes room for one, as every call does. */
	if ((rc = add_head("", &h)) || (rc = veld_state__synced_each(c->s, add_head, &h))) {
		free(h.v);
		return rc;
	}
	if (veld_repo__ref_get(&own, c->repo, veld_sync__own_ref(c, ref, sizeof ref), c->err) == 0)
		h.v[h.n++] = own;
	veld_err__clear(c->err);
	*out = h.v;
	*n = h.n;
	return 0;
}

/* A ref never goes back: its new head must descend from the one verified
** last time (a hub replaying old history is refused).  1 if rewound. */
static int rewound(veld_syncctx *c, const char *ref, const git_oid *head)
{
	char hex[GIT_OID_HEXSZ + 1];
	git_oid last;
	return veld_state__synced_get(hex, c->s, ref) == 0 && git_oid_fromstr(&last, hex) == 0 &&
	       !git_oid_equal(&last, head) && git_graph_descendant_of(veld_repo__git(c->repo), head, &last) != 1;
}

/* The role and region the registry gives `signer`, revoked or not: a
** revoked device's commits that a colleague carries are judged by the rule
** like any other (docs/sync.md, "Revocation"). */
static int signer_role(checkctx *ck, const char *signer)
{
	char name[8], region[256];
	int revoked = 0;
	ck->n_ranges = 0;
	if (veld_state__device_info(name, sizeof name, ck->role, sizeof ck->role, region, sizeof region, &revoked,
	                            ck->c->s, signer))
		return VELD_ENOTFOUND;
	if (*region)
		veld_region__parse(ck->ranges, VELD_MAX_RANGES, &ck->n_ranges, region, NULL);
	return 0;
}

/* One new commit of a ref: its signature and signer (a failure refuses
** the ref whole: NULL, or the reason in `msg` or the context's error),
** then its paths (each refused alone, in the refusals).  ck->rc: an error. */
static const char *check_commit(checkctx *ck, const git_oid *id, char *msg, size_t cap)
{
	veld_syncctx *c = ck->c;
	char signer[72];
	git_oid parents[VELD_MAX_PARENTS], tree, ptree;
	size_t np = 0;
	if (veld_repo__commit_verify(signer, sizeof signer, c->repo, id, veld_sync__pubkey_revoked, c, c->err))
		return c->err->msg;
	ck->signer = signer;
	veld_sync__oid_hex(ck->commit, id);
	if (strcmp(signer, VELD_ORG_SIGNER) && signer_role(ck, signer))
		return "signed by a device that is not enrolled";
	if (veld_repo__commit_tree(&tree, c->repo, id, c->err) ||
	    veld_repo__commit_parents(parents, VELD_MAX_PARENTS, &np, c->repo, id, c->err) ||
	    (np > 0 && veld_repo__commit_tree(&ptree, c->repo, &parents[0], c->err)))
		return c->err->msg;
	for (ck->n_merged = 0; ck->n_merged + 1 < np; ck->n_merged++)
		if (veld_repo__commit_tree(&ck->merged[ck->n_merged], c->repo, &parents[ck->n_merged + 1], c->err))
			return c->err->msg;
	if (veld_repo__diff(c->repo, np > 0 ? &ptree : NULL, &tree, check_path, ck, c->err) && !ck->rc) {
		snprintf(msg, cap, "commit by %.72s: %.600s", signer, c->err->msg);
		return msg;
	}
	ck->signer = NULL;
	return NULL;
}

/* The owner of a device ref is revoked: the ref is not read any more;
** noted (and reported) once. */
static int ignore_revoked(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head)
{
	veld_refusal_row r;
	char hex[GIT_OID_HEXSZ + 1], why[160];
	veld_sync__oid_hex(hex, head);
	snprintf(why, sizeof why, "device %s is revoked: its commits are ignored", owner);
	memset(&r, 0, sizeof r);
	r.path = "";
	r.device = owner;
	r.code = VELD_REFUSED_REVOKED;
	r.reason = why;
	r.commit = hex;
	r.published = 1; /* every verifier sees the revocation in main itself */
	return veld_sync__refuse_change(c, &r, NULL, ref);
}

int veld_sync__verify_ref(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head)
{
	git_oid *stops = NULL, *commits = NULL;
	size_t n_stops = 0, n = 0, i;
	checkctx ck;
	int bad = 0;
	if (strcmp(owner, VELD_ORG_SIGNER) && veld_state__device_revoked(c->s, owner))
		return ignore_revoked(c, ref, owner, head) ? -1 : 2;
	if (rewound(c, ref, head)) {
		veld_sync__reject(c, ref, head, "the ref was rewound: its new head does not descend from the last one verified");
		return 1;
	}
	if (trusted_heads(c, &stops, &n_stops))
		return -1;
	if (veld_repo__new_commits(&commits, &n, c->repo, head, stops, n_stops, c->err)) {
		free(stops);
		veld_sync__reject(c, ref, head, c->err->msg);
		veld_err__clear(c->err);
		return 1;
	}
	c->fetched += n;
	memset(&ck, 0, sizeof ck);
	ck.c = c;
	ck.ref = ref;
	{
		git_oid main_head;
		ck.have_main = strcmp(owner, VELD_ORG_SIGNER) && veld_sync__synced_get(&main_head, c, VELD_REF_MAIN) == 0 &&
		               veld_repo__commit_tree(&ck.main_tree, c->repo, &main_head, c->err) == 0;
		veld_err__clear(c->err);
	}
	for (i = 0; i < n && !bad && !ck.rc; i++) {
		char signer[72], msg[700];
		const char *why;
		/* Device commits inside main's history were verified by the office
		** before it merged them; the organisation's signatures on main's own
		** commits cover them through the parent hashes. */
		if (!strcmp(owner, VELD_ORG_SIGNER) && veld_sync__header_signer(signer, sizeof signer, c, &commits[i]) == 0 &&
		    strcmp(signer, VELD_ORG_SIGNER))
			continue;
		if ((why = check_commit(&ck, &commits[i], msg, sizeof msg)) && !ck.rc) {
			veld_sync__reject(c, ref, &commits[i], why);
			bad = 1;
		}
	}
	if (!bad && !ck.rc) {
		char signer[72];
		if (veld_repo__commit_verify(signer, sizeof signer, c->repo, head, veld_sync__pubkey, c, c->err) ||
		    strcmp(signer, owner)) {
			veld_sync__reject(c, ref, head, "the head of the ref is not signed by the ref's owner");
			bad = 1;
		}
	}
	if (!ck.rc)
		veld_err__clear(c->err);
	free(stops);
	free(commits);
	return ck.rc ? ck.rc : bad;
}

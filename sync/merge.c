/*
** merge.c — the merge stage: what a verified ref changed comes into the
** store.
**
** merge_ref diffs the ref's new head against the last head merged from it
** (a ref seen for the first time against main as merged here) and merges
** each changed record blob this store can read through the record CRDT
** (core's veld_record__merge), marking the merged record dirty so the next
** commit seals the merged state, but never a blob verification refused
** (the refusals table, verify.c); on main it also applies the registry
** (devices enrolled and revoked, signed by the organisation), erasure
** markers, the office's published refusals and its published forms and
** reports (scripts_dist.c).  Then the head goes into sync_refs: a later sync starts there.
** A record that would pass core's size bound is refused, not merged (its
** save says VELD_EINVALID).
** Merges are idempotent; an erased case stays erased whatever old copies
** arrive; an id collision across forms is refused, not merged.
**
** Must not: merge what verify.c did not pass, or open a transaction (the
** whole of verify and merge is one, run.c's).
*/
#include "sync.h"

#include <stdlib.h>
#include <string.h>

/* ---- sync_refs as git ids ---------------------------------------------------- */

int veld_sync__synced_get(git_oid *out, veld_syncctx *c, const char *ref)
{
	char hex[GIT_OID_HEXSZ + 1];
	int rc = veld_state__synced_get(hex, c->s, ref);
	if (!rc && git_oid_fromstr(out, hex))
		rc = VELD_ENOTFOUND;
	return rc;
}

int veld_sync__synced_set(veld_syncctx *c, const char *ref, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	veld_sync__oid_hex(hex, id);
	return veld_state__synced_set(c->s, ref, hex);
}

/* ---- records ------------------------------------------------------------------ */

/* Merge `remote` into the store's copy (or store it).  Takes `remote`.
** What changed is committed again (dirty), but for a case's contact part
** on a device: the office alone writes it (core/contact.c), and a device
** that sealed its copy again (with another key epoch) would be judged as
** writing it. */
static int merge_record(veld_syncctx *c, veld_record *remote, const char *record_id, const char *comp)
{
	veld_record *local = NULL;
	veld_stamp max;
	int dirty = c->office || strcmp(veld_record__form(remote), VELD_CONTACT_FORM);
	int rc = veld_store__record_load(&local, c->s, record_id);
	if (rc == VELD_ENOTFOUND) {
		veld_err__clear(c->err);
		if (!strcmp(record_id, veld_record__case(remote)))
			c->headers_changed = 1;
		rc = veld_store__record_save(c->s, remote, dirty, comp);
		c->merged += rc == 0;
	} else if (rc == 0) {
		char *before = veld_record__canonical(local), *after = NULL;
		if (!strcmp(record_id, veld_record__case(local)))
			c->headers_changed = 1;
		if (strcmp(veld_record__form(local), veld_record__form(remote)) ||
		    strcmp(veld_record__case(local), veld_record__case(remote))) {
			rc = 0; /* an id collision across forms is refused, not merged */
		} else if ((rc = veld_record__merge(local, remote)) == 0) {
			after = veld_record__canonical(local);
			if (!before || !after || strcmp(before, after)) {
				rc = veld_store__record_save(c->s, local, dirty, NULL);
				c->merged += rc == 0;
			}
		}
		free(before);
		free(after);
	}
	if (rc == VELD_EINVALID) { /* larger than a record may be: refused, not merged */
		veld_err__clear(c->err);
		rc = 0;
	}
	if (!rc && veld_record__max_stamp(remote, &max) == 0)
		veld_store__observe(c->s, &max);
	veld_record__free(remote);
	veld_record__free(local);
	return rc;
}

int veld_sync__merge_blob(veld_syncctx *c, const char *case_id, const char *record_id, const git_oid *id)
{
	veld_record *remote = NULL;
	char comp[32], why[256];
	const char *code;
	if (veld_state__erased_has(c->s, case_id))
		return 0; /* older copies of an erased case stay erased */
	if (veld_sync__open_blob(c, id, case_id, record_id, &remote, comp, sizeof comp, &code, why, sizeof why) ||
	    !remote)
		return 0; /* unreadable or already rejected by verification */
	return merge_record(c, remote, record_id, comp);
}

/* ---- the registry ------------------------------------------------------------- */

int veld_sync__read_signed(json_t **body, veld_syncctx *c, const char *path, const git_oid *id)
{
	unsigned char *blob = NULL;
	size_t len = 0;
	veld_err e;
	int rc;
	*body = NULL;
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, id, c->err))
		return c->err->code;
	rc = veld_registry__verify(body, (const char *)blob, len, c->org_pk, &e);
	free(blob);
	return rc ? veld_err__set(c->err, VELD_EINTEGRITY, "%s: %s", path, e.msg) : 0;
}

/* A registry/devices/<id> entry into devices. */
static int apply_device(veld_syncctx *c, const char *path, const json_t *body)
{
	veld_device_row d;
	const char *spk = json_string_value(json_object_get(body, "sign_pk"));
	const char *bpk = json_string_value(json_object_get(body, "box_pk"));
	unsigned char sbin[32], bbin[32];
	memset(&d, 0, sizeof d);
	d.id = json_string_value(json_object_get(body, "id"));
	d.name = json_string_value(json_object_get(body, "name"));
	d.role = json_string_value(json_object_get(body, "role"));
	d.region = json_string_value(json_object_get(body, "region"));
	d.sign_pk = sbin;
	d.box_pk = bbin;
	if (!d.id || strcmp(d.id, path + 17) || veld_sync__key_from_hex(sbin, spk) || veld_sync__key_from_hex(bbin, bpk))
		return veld_err__set(c->err, VELD_EINTEGRITY, "registry entry %s is malformed", path + 9);
	return veld_state__device_put(c->s, &d, VELD_STATE_REGISTRY);
}

/* Registry entries of main, verified with the org key. */
static int apply_registry(veld_syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	int rc, changed = 0;
	if (strncmp(path, "registry/devices/", 17) && strncmp(path, "registry/revoked/", 17))
		return 0;
	if ((rc = veld_sync__read_signed(&body, c, path, id)))
		return rc;
	if (!strncmp(path, "registry/revoked/", 17)) {
		const char *dev = json_string_value(json_object_get(body, "id"));
		rc = veld_state__device_revoke(&changed, c->s, dev, VELD_STATE_REGISTRY);
		if (dev && !strcmp(dev, c->me))
			c->self_revoked = 1; /* run.c purges this store's case data */
	} else
		rc = apply_device(c, path, body);
	json_decref(body);
	return rc;
}

/* ---- refusals the office published ---------------------------------------------- */

/* A refused/<device>/<name> entry of main, verified with the org key: into
** the refusals table, so this store never merges that blob from any ref;
** the writer itself reports it once (its `veld refused` lists it). */
static int apply_refusal(veld_syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	veld_refusal_row r;
	int rc;
	if ((rc = veld_sync__read_signed(&body, c, path, id)))
		return rc;
	memset(&r, 0, sizeof r);
	r.path = json_string_value(json_object_get(body, "path"));
	r.blob = json_string_value(json_object_get(body, "blob"));
	r.device = json_string_value(json_object_get(body, "device"));
	r.case_id = json_string_value(json_object_get(body, "case"));
	r.record_id = json_string_value(json_object_get(body, "record"));
	r.code = json_string_value(json_object_get(body, "code"));
	r.reason = json_string_value(json_object_get(body, "reason"));
	r.commit = json_string_value(json_object_get(body, "commit"));
	r.at = json_integer_value(json_object_get(body, "at"));
	r.published = 1;
	if (!r.path || !r.blob || !r.device || !r.case_id || !r.record_id || !r.code || !r.reason || !r.commit)
		rc = veld_err__set(c->err, VELD_EINTEGRITY, "refusal entry %.80s is malformed", path);
	else
		rc = veld_sync__refusal_note(c, &r, VELD_REF_MAIN, !strcmp(r.device, c->me));
	json_decref(body);
	return rc;
}

/* An access/<device>/<case> entry of main: that device may no longer read
** the case.  Every store refuses its writes to it from now on (verify.c);
** the device itself drops the case. */
static int apply_access(veld_syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	const char *dev, *cid;
	int rc, added = 0;
	if ((rc = veld_sync__read_signed(&body, c, path, id)))
		return rc;
	dev = json_string_value(json_object_get(body, "device"));
	cid = json_string_value(json_object_get(body, "case"));
	if (!dev || !cid || !veld_id__is(cid))
		rc = veld_err__set(c->err, VELD_EINTEGRITY, "access entry %.80s is malformed", path);
	else if (!(rc = veld_state__access_lost_add(&added, c->s, dev, cid, 1)) && !strcmp(dev, c->me))
		rc = veld_state__drop_case(c->s, cid);
	json_decref(body);
	return rc;
}

/* ---- a ref ---------------------------------------------------------------------- */

typedef struct mergectx {
	veld_syncctx *c;
	int registry; /* apply registry entries (main only) */
	int records;  /* merge record blobs */
	int main;     /* main: the office's, never holds a refused blob */
	int rc;
} mergectx;

static int merge_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	mergectx *m = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE];
	(void)old_id;
	if (!new_id)
		return 0;
	if (m->registry && !strncmp(path, "registry/", 9))
		m->rc = apply_registry(m->c, path, new_id);
	else if (m->registry && !strncmp(path, "erased/", 7))
		m->rc = veld_sync__apply_erasure(m->c, path, new_id);
	else if (m->registry && !strncmp(path, VELD_REFUSED_DIR, strlen(VELD_REFUSED_DIR)))
		m->rc = apply_refusal(m->c, path, new_id);
	else if (m->registry && !strncmp(path, VELD_ACCESS_DIR, strlen(VELD_ACCESS_DIR)))
		m->rc = apply_access(m->c, path, new_id);
	else if (m->registry && (!strncmp(path, "forms/", 6) || !strncmp(path, "reports/", 8)))
		m->rc = veld_sync__apply_script(m->c, path, new_id);
	else if (m->records && veld_sync__parse_record_path(path, case_id, record_id) == 0) {
		char hex[GIT_OID_HEXSZ + 1];
		veld_sync__oid_hex(hex, new_id);
		if (m->main || !veld_state__refused_has(m->c->s, path, hex)) /* refused changes are never merged */
			m->rc = veld_sync__merge_blob(m->c, case_id, record_id, new_id);
	}
	return m->rc ? 1 : 0;
}

int veld_sync__merge_ref(veld_syncctx *c, const char *ref, const git_oid *head, int registry, int records)
{
	git_oid last, old_tree, new_tree;
	mergectx m;
	int have_last = veld_sync__synced_get(&last, c, ref) == 0;
	memset(&m, 0, sizeof m);
	m.c = c;
	m.registry = registry;
	m.records = records;
	m.main = !strcmp(ref, VELD_REF_MAIN);
	if (have_last && git_oid_equal(&last, head))
		return 0;
	/* A ref seen for the first time is compared with main as merged here:
	** everything in that tree is in the store already, and a device's tree
	** shares main's blobs (sealing is deterministic), so the diff holds only
	** what the device changed, not its whole tree. */
	if (!have_last && strcmp(ref, VELD_REF_MAIN))
		have_last = veld_sync__synced_get(&last, c, VELD_REF_MAIN) == 0;
	if ((have_last && veld_repo__commit_tree(&old_tree, c->repo, &last, c->err)) ||
	    veld_repo__commit_tree(&new_tree, c->repo, head, c->err))
		return c->err->code ? c->err->code : VELD_ERROR;
	if (veld_repo__diff(c->repo, have_last ? &old_tree : NULL, &new_tree, merge_path, &m, c->err) && !m.rc)
		return c->err->code ? c->err->code : VELD_ERROR;
	if (m.rc)
		return m.rc;
	if (records) {
		git_oid *p = realloc(c->merged_heads, (c->n_merged_heads + 1) * sizeof *p);
		if (!p)
			return veld_err__set(c->err, VELD_ERROR, "out of memory");
		c->merged_heads = p;
		p[c->n_merged_heads++] = *head;
	}
	return veld_sync__synced_set(c, ref, head);
}

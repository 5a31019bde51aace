/*
** repoverify.c — veld_repository_verify: is this store's repository
** intact?
**
** Every object is read back (libgit2 checks each one's hash against its
** id), this store's own commits on its ref verify with its key (the
** office's: the organisation's), and every record blob in the head's tree
** that this store can read opens with its key at its path.  Commits of
** others were verified when they were merged.  Reads only; must not change
** the store or the repository.
*/
#include "sync.h"

#include <stdlib.h>
#include <string.h>

typedef struct objctx {
	git_odb *odb;
	size_t n;
	int bad;
	git_oid bad_id;
} objctx;

static int read_object(const git_oid *id, void *payload)
{
	objctx *o = payload;
	git_odb_object *obj = NULL;
	/* git_odb_read checks the object's hash against its id. */
	if (git_odb_read(&obj, o->odb, id) < 0) {
		o->bad = 1;
		o->bad_id = *id;
		return 1;
	}
	git_odb_object_free(obj);
	o->n++;
	return 0;
}

/* Every object of the repository reads back intact. */
static int check_objects(veld_syncctx *c)
{
	objctx o;
	char hex[GIT_OID_HEXSZ + 1];
	memset(&o, 0, sizeof o);
	if (git_repository_odb(&o.odb, veld_repo__git(c->repo)) < 0)
		return veld_err__set(c->err, VELD_ERROR, "cannot open the object database");
	git_odb_foreach(o.odb, read_object, &o);
	git_odb_free(o.odb);
	if (!o.bad)
		return 0;
	veld_sync__oid_hex(hex, &o.bad_id);
	return veld_err__set(c->err, VELD_EINTEGRITY, "git object %s is damaged", hex);
}

typedef struct blobcheck {
	veld_syncctx *c;
	const char *why;
	char whybuf[256];
} blobcheck;

static int check_blob(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	blobcheck *b = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE], comp[32];
	veld_record *rec = NULL;
	const char *code;
	(void)old_id;
	if (!new_id || veld_sync__parse_record_path(path, case_id, record_id))
		return 0;
	b->why = veld_sync__open_blob(b->c, new_id, case_id, record_id, &rec, comp, sizeof comp, &code, b->whybuf,
	                              sizeof b->whybuf);
	veld_record__free(rec);
	return b->why ? 1 : 0;
}

/* This store's own commits up to `head` verify. */
static int check_commits(veld_syncctx *c, const git_oid *head)
{
	git_oid *commits = NULL;
	size_t n = 0, i;
	int rc;
	if ((rc = veld_repo__new_commits(&commits, &n, c->repo, head, NULL, 0, c->err)))
		return rc;
	for (i = 0; i < n && !rc; i++) {
		char signer[72];
		/* Only this store's own commits: others were verified when merged. */
		if (veld_sync__header_signer(signer, sizeof signer, c, &commits[i]) ||
		    strcmp(signer, c->office ? VELD_ORG_SIGNER : c->me))
			continue;
		/* A store revoked since still signed its own commits with its key. */
		if (veld_repo__commit_verify(signer, sizeof signer, c->repo, &commits[i], veld_sync__pubkey_revoked, c,
		                             c->err))
			rc = veld_err__set(c->err, VELD_EINTEGRITY, "%s", c->err->msg);
	}
	free(commits);
	return rc;
}

int veld_repository_verify(veld_store *s)
{
	veld_syncctx c;
	git_oid head, tree;
	int rc, have = 0;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)) || (rc = check_objects(&c)))
		goto done;
	if ((rc = veld_sync__own_head(&head, &have, &c)) || !have || (rc = check_commits(&c, &head)))
		goto done;
	if ((rc = veld_repo__commit_tree(&tree, c.repo, &head, c.err)) == 0) {
		blobcheck b;
		memset(&b, 0, sizeof b);
		b.c = &c;
		if (veld_repo__diff(c.repo, NULL, &tree, check_blob, &b, c.err) || b.why)
			rc = veld_err__set(c.err, VELD_EINTEGRITY, "%s", b.why ? b.why : c.err->msg);
	}
done:
	veld_sync__ctx_free(&c);
	return rc;
}

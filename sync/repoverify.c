/*
** repoverify.c — veld_repository_verify: is this store's repository
** intact?  And, for a sync that failed: which side is damaged?
**
** The repository is checked whole by the git layer (veld_repo__check:
** every pack index against its pack by git's checksums, every object read
** back, every object a ref, commit or tree names present); for the office
** with a hub on a path, the hub too.  Then this store's own commits on its
** ref verify with its key (the office's: the organisation's), and every
** record blob in the head's tree that this store can read opens with its
** key at its path.  Commits of others were verified when they were merged.
**
** A sync that failed or refused a ref asks veld_sync__fault_side first:
** damage in this store's own repository is said to be that, never blamed
** on the hub (a ref "rewound" or "rejected"); damage in a hub on a path is
** said to be the hub's.
**
** Reads only; must not change the store or the repository.
*/
#include "sync.h"

#include <stdlib.h>
#include <string.h>

/* The hub on a path, checked whole (veld_repo__check); one on a URL
** cannot be.  0 if it is intact or out of reach, else the error in err. */
static int check_hub(veld_syncctx *c, veld_err *err)
{
	veld_repo *hub = NULL;
	int rc = 0;
	if (!c->hub[0] || veld_repo__is_url(c->hub))
		return 0;
	/* Opening checks its pack indexes (repo.c): damage fails it already. */
	if ((rc = veld_repo__open(&hub, veld_store__os(c->s), c->hub, err)) == 0)
		rc = veld_repo__check(hub, err);
	veld_repo__free(hub);
	return rc == VELD_EINTEGRITY ? rc : 0;
}

/* This store's repository and, for the office with a hub on a path (which
** it looks after: it repacks it too), the hub: each names itself. */
static int check_repositories(veld_syncctx *c)
{
	veld_err e;
	int rc;
	memset(&e, 0, sizeof e);
	if ((rc = veld_repo__check(c->repo, &e)))
		return veld_err__set(c->err, rc, "this store's repository: %s", e.msg);
	if (c->office && check_hub(c, &e))
		return veld_err__set(c->err, VELD_EINTEGRITY, "the hub %s: %s", c->hub, e.msg);
	return 0;
}

int veld_sync__fault_side(veld_syncctx *c, int rc, int hub_too)
{
	veld_err e;
	memset(&e, 0, sizeof e);
	/* A ref refused whole may leave a refused push behind it (main built on
	** the main this store had): the refusal is the question then. */
	if (c->fault_checked || !c->repo ||
	    (rc != 0 && rc != VELD_ERROR && rc != VELD_ENOTFOUND && rc != VELD_EINTEGRITY && !c->forged))
		return rc;
	if (veld_repo__check(c->repo, &e) == VELD_EINTEGRITY) {
		/* What was rejected in this sync is no ref's fault: not listed. */
		json_array_clear(c->rejected);
		c->forged = 0;
		c->fault_checked = 1;
		return veld_err__set(c->err, VELD_EINTEGRITY,
		                     "this store's own repository is damaged (a fault on this device, not the hub's): %s",
		                     e.msg);
	}
	if (hub_too && check_hub(c, &e)) {
		c->fault_checked = 1;
		return veld_err__set(c->err, VELD_EINTEGRITY, "the hub %s is damaged: %s", c->hub, e.msg);
	}
	return rc;
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
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)) || (rc = check_repositories(&c)))
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

/*
** maintain.c — repack and prune: the thing that makes crypto-shredding real.
**
** libgit2 has no gc.  This file collects what the refs reach into one new
** pack (libgit2's packbuilder, which deltifies and compresses what is
** kept), makes it durable, then removes the loose objects and old packs it
** makes redundant, and what is unreachable and old enough.
** libgit2 1.5 behaviour this relies on (checked by tests/unit/sync_repo.c):
** git_packbuilder_insert_walk inserts every commit of the walk and, for
** each, its whole tree (subtrees and blobs); refs to non-commits need
** git_packbuilder_insert_recur.
** What it owns: one maintenance run's snapshot of the repository's files.
** What it must not do: touch the OS itself (listings, removals, fsync and
** mtimes go through files.c and the handle's veld_os table) or remove
** anything it did not see in its snapshot.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2/sys/odb_backend.h>

/* An odb holding one pack only, for membership tests. */
static int open_one_pack(git_odb **out, const char *packdir, const char *name, veld_err *err)
{
	git_odb_backend *be = NULL;
	char idx[VELD_GIT_PATHBUF];
	int grc;
	*out = NULL;
	snprintf(idx, sizeof idx, "%s/%s.idx", packdir, name);
	if ((grc = git_odb_new(out)) < 0)
		return veld_git__fail(err, grc, 0, "maintain: cannot create an object database");
	if ((grc = git_odb_backend_one_pack(&be, idx)) < 0)
		goto fail;
	if ((grc = git_odb_add_backend(*out, be, 1)) < 0) {
		be->free(be); /* not owned by the odb yet */
		goto fail;
	}
	return 0;
fail:
	git_odb_free(*out);
	*out = NULL;
	return veld_git__fail(err, grc, 0, "maintain: cannot open pack %s", name);
}

typedef struct pack_check {
	git_odb *fresh;   /* the new pack */
	size_t missing;   /* objects of the old pack that the new one lacks */
} pack_check;

static int pack_check_cb(const git_oid *id, void *payload)
{
	pack_check *pc = payload;
	if (!pc->fresh || !git_odb_exists(pc->fresh, id))
		pc->missing++;
	return 0;
}

/* Fill the packbuilder with everything reachable from every ref. */
static int insert_reachable(git_packbuilder *pb, veld_repo *r, veld_err *err)
{
	git_reference_iterator *it = NULL;
	git_revwalk *walk = NULL;
	const char *name;
	int rc = 0, grc;

	if ((grc = git_revwalk_new(&walk, r->git)) < 0 || (grc = git_reference_iterator_new(&it, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "maintain: cannot walk the refs");
		goto done;
	}
	while ((grc = git_reference_next_name(&name, it)) == 0) {
		git_oid id;
		git_object *o = NULL;
		if (git_reference_name_to_id(&id, r->git, name) < 0) {
			git_error_clear(); /* dangling symbolic ref */
			continue;
		}
		if ((grc = git_object_lookup(&o, r->git, &id, GIT_OBJECT_ANY)) < 0) {
			rc = veld_git__fail(err, grc, VELD_EINTEGRITY, "maintain: ref %s points at a missing object", name);
			goto done;
		}
		if (git_object_type(o) == GIT_OBJECT_COMMIT)
			grc = git_revwalk_push(walk, &id);
		else
			grc = git_packbuilder_insert_recur(pb, &id, NULL);
		git_object_free(o);
		if (grc < 0) {
			rc = veld_git__fail(err, grc, 0, "maintain: cannot add what %s reaches", name);
			goto done;
		}
	}
	if (grc != GIT_ITEROVER) {
		rc = veld_git__fail(err, grc, 0, "maintain: cannot list refs");
		goto done;
	}
	/* A detached HEAD is a root too (a symbolic one names a ref seen above). */
	{
		git_reference *head = NULL;
		if (git_reference_lookup(&head, r->git, "HEAD") == 0 && git_reference_type(head) == GIT_REFERENCE_DIRECT &&
		    (grc = git_revwalk_push(walk, git_reference_target(head))) < 0) {
			git_reference_free(head);
			rc = veld_git__fail(err, grc, 0, "maintain: cannot add what HEAD reaches");
			goto done;
		}
		git_reference_free(head);
		git_error_clear();
	}
	/* Every commit of the walk with its whole tree (subtrees and blobs). */
	if ((grc = git_packbuilder_insert_walk(pb, walk)) < 0) {
		rc = veld_git__fail(err, grc, 0, "maintain: cannot collect reachable objects");
		goto done;
	}
done:
	git_reference_iterator_free(it);
	git_revwalk_free(walk);
	return rc;
}

/* One run: where the objects are, what was there when it began, the new
** pack once it is written and durable. */
typedef struct maint {
	veld_repo *r;
	char objdir[PATH_MAX], packdir[PATH_MAX];
	veld_strlist loose, packs; /* the snapshot (step 1) */
	char newpack[128];         /* "pack-<hex>", "" when nothing was written */
	git_odb *fresh;            /* the new pack alone, for membership tests */
	int prune, age_s;
	int64_t now_ms;
	veld_err *err;
} maint;

/* objects/ and objects/pack of the repository, without a trailing '/'. */
static int maint_paths(maint *t)
{
	git_buf objbuf = {0};
	size_t len;
	int rc = 0, grc;
	if ((grc = git_repository_item_path(&objbuf, t->r->git, GIT_REPOSITORY_ITEM_OBJECTS)) < 0)
		return veld_git__fail(t->err, grc, 0, "maintain: no objects directory");
	len = objbuf.size;
	if (len && objbuf.ptr[len - 1] == '/')
		len--;
	if (len + sizeof "/pack/" + 64 >= sizeof t->objdir) {
		rc = veld_err__set(t->err, VELD_EINVALID, "maintain: repository path too long");
	} else {
		memcpy(t->objdir, objbuf.ptr, len);
		t->objdir[len] = '\0';
		memcpy(t->packdir, t->objdir, len);
		memcpy(t->packdir + len, "/pack", sizeof "/pack");
	}
	git_buf_dispose(&objbuf);
	return rc;
}

/* fsync one file of the new pack, or the pack directory. */
static int maint_fsync(maint *t, const char *path, int is_dir)
{
	int rc = veld_git__fsync(t->r->os, path, is_dir);
	if (rc < 0)
		return veld_err__set(t->err, VELD_ERROR, "maintain: cannot fsync %s: %s", path, strerror(-rc));
	return 0;
}

/* Steps 2 and 3: everything reachable into one new pack, made durable. */
static int maint_write(maint *t)
{
	git_packbuilder *pb = NULL;
	char p[sizeof t->packdir + sizeof t->newpack + 8];
	const char *name;
	int rc = 0, grc;
	if ((grc = git_packbuilder_new(&pb, t->r->git)) < 0) {
		rc = veld_git__fail(t->err, grc, 0, "maintain: cannot start a pack");
		goto done;
	}
	if ((rc = insert_reachable(pb, t->r, t->err)) < 0 || git_packbuilder_object_count(pb) == 0)
		goto done;
	if ((grc = git_packbuilder_write(pb, t->packdir, 0, NULL, NULL)) < 0) {
		rc = veld_git__fail(t->err, grc, 0, "maintain: cannot write the pack");
		goto done;
	}
	if (!(name = git_packbuilder_name(pb))) {
		rc = veld_err__set(t->err, VELD_ERROR, "maintain: the new pack has no name");
		goto done;
	}
	snprintf(t->newpack, sizeof t->newpack, "pack-%s", name);
	snprintf(p, sizeof p, "%s/%s.pack", t->packdir, t->newpack);
	if ((rc = maint_fsync(t, p, 0)))
		goto done;
	snprintf(p, sizeof p, "%s/%s.idx", t->packdir, t->newpack);
	if ((rc = maint_fsync(t, p, 0)) || (rc = maint_fsync(t, t->packdir, 1)))
		goto done;
	rc = open_one_pack(&t->fresh, t->packdir, t->newpack, t->err);
done:
	git_packbuilder_free(pb);
	return rc;
}

/* Step 4: loose objects of the snapshot, and empty fan-out directories. */
static int maint_loose(maint *t)
{
	const veld_os *os = t->r->os;
	char p[VELD_GIT_PATHBUF];
	size_t i;
	int one;
	for (i = 0; i < t->loose.n; i++) {
		git_oid id;
		int keep;
		snprintf(p, sizeof p, "%s/%.2s/%s", t->objdir, t->loose.v[i], t->loose.v[i] + 2);
		if (git_oid_fromstr(&id, t->loose.v[i]) < 0) {
			git_error_clear();
			continue;
		}
		if (t->fresh && git_odb_exists(t->fresh, &id))
			keep = 0;
		else
			keep = !(t->prune && veld_git__old_enough(os, p, t->age_s, t->now_ms));
		if (!keep && (one = veld_git__unlink(os, p)) < 0)
			return veld_err__set(t->err, VELD_ERROR, "maintain: cannot remove %s: %s", p, strerror(-one));
	}
	for (i = 0; i < 256; i++) {
		snprintf(p, sizeof p, "%s/%02x", t->objdir, (unsigned)i);
		(void)os->xRmdir(os->ctx, p); /* only succeeds when empty */
	}
	return 0;
}

/* Step 5: old packs of the snapshot that the new one covers, or whose
** rest may be pruned. */
static int maint_packs(maint *t)
{
	const veld_os *os = t->r->os;
	char p[VELD_GIT_PATHBUF];
	size_t i;
	int rc, grc;
	for (i = 0; i < t->packs.n; i++) {
		git_odb *old = NULL;
		pack_check pc;
		if (t->newpack[0] && strcmp(t->packs.v[i], t->newpack) == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s.keep", t->packdir, t->packs.v[i]);
		if (os->xStat(os->ctx, p, NULL, NULL) == 0)
			continue;
		if ((rc = open_one_pack(&old, t->packdir, t->packs.v[i], t->err)) < 0)
			return rc;
		pc.fresh = t->fresh;
		pc.missing = 0;
		grc = git_odb_foreach(old, pack_check_cb, &pc);
		git_odb_free(old);
		if (grc < 0)
			return veld_git__fail(t->err, grc, 0, "maintain: cannot read pack %s", t->packs.v[i]);
		snprintf(p, sizeof p, "%s/%s.pack", t->packdir, t->packs.v[i]);
		if (pc.missing && !(t->prune && veld_git__old_enough(os, p, t->age_s, t->now_ms)))
			continue;
		if ((rc = veld_git__unlink_pack(os, t->packdir, t->packs.v[i])) < 0)
			return veld_err__set(t->err, VELD_ERROR, "maintain: cannot remove pack %s: %s", t->packs.v[i],
			                     strerror(-rc));
	}
	rc = veld_git__fsync(os, t->packdir, 1);
	if (rc < 0 && rc != -ENOENT)
		return veld_err__set(t->err, VELD_ERROR, "maintain: cannot fsync %s: %s", t->packdir, strerror(-rc));
	return 0;
}

/* Step 6: a fresh libgit2 repository, which forgets the deleted packs and
** its cached objects, with a fresh batch in front. */
static int maint_reopen(maint *t)
{
	git_repository *reopened = NULL;
	int grc;
	if ((grc = git_repository_open_bare(&reopened, t->r->path)) < 0)
		return veld_git__fail(t->err, grc, 0, "maintain: cannot reopen %s", t->r->path);
	git_repository_free(t->r->git); /* its batch (flushed, empty) with it */
	t->r->git = reopened;
	t->r->batch = NULL;
	return veld_git__batch_attach(t->r, t->err);
}

/*
** The algorithm (libgit2 has no gc):
**  1. Snapshot what is there now: the loose object ids under objects/ and
**     the packs under objects/pack.  Only these are candidates for removal,
**     so an object written while we work is never touched.
**  2. Collect everything reachable from every ref: commits through a
**     revwalk that pushes every ref to a commit (git_packbuilder_insert_walk
**     adds each commit with its whole tree), other objects with
**     git_packbuilder_insert_recur.
**  3. Write those objects as one new pack into objects/pack and fsync the
**     .pack, the .idx and the directory: nothing is deleted before the new
**     pack is durable.
**  4. Loose objects of the snapshot: the new pack holds it -> delete it;
**     it does not (unreachable) -> delete it if pruning (prune_age_s >= 0)
**     and the file is at least prune_age_s old.  Empty fan-out dirs go too.
**  5. Old packs of the snapshot (except one with the new pack's name and
**     any with a .keep file): delete if every object in it is in the new
**     pack, or if the rest are prunable (pruning, pack file old enough).
**     Otherwise keep it whole.
**  6. Reopen the repository so that libgit2 forgets the deleted packs and
**     its cached objects.
** With prune_age_s 0 the repository afterwards holds exactly the objects
** reachable from its refs: an old root commit of a keys ref, replaced by a
** new one, is gone with its trees and blobs.  The caller must make sure
** that nothing else writes to the repository while maintain runs with
** prune_age_s 0 (the store's write lock): an object written by another
** process but not yet referenced would look unreachable.
*/
int veld_repo__maintain(veld_repo *r, int prune_age_s, veld_err *err)
{
	maint t;
	int rc = veld_repo__flush(r, err);
	if (rc)
		return rc;
	memset(&t, 0, sizeof t);
	t.r = r;
	t.err = err;
	t.prune = prune_age_s >= 0;
	t.age_s = prune_age_s;
	t.now_ms = r->os->xClockMs(r->os->ctx);
	if ((rc = maint_paths(&t)) == 0 && (rc = veld_git__list_loose(&t.loose, r->os, t.objdir, err)) == 0 &&
	    (rc = veld_git__list_packs(&t.packs, r->os, t.packdir, err)) == 0 && (rc = maint_write(&t)) == 0 &&
	    (rc = maint_loose(&t)) == 0 && (rc = maint_packs(&t)) == 0)
		rc = maint_reopen(&t);
	git_odb_free(t.fresh);
	veld_strlist__free(&t.loose);
	veld_strlist__free(&t.packs);
	return rc;
}

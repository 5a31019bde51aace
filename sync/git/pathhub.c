/*
** pathhub.c — fetch from and push to a hub on a path, without a transport.
**
** For a hub on a path both sides are at hand, so the objects to move are
** found from the commits down (move.c) rather than by libgit2's walk, whose
** cost grows with the hub.  They go over as one pack (veld_git__pack_store:
** whole objects, written with its index straight into the receiving
** repository), and refs move after their objects: a push updates each hub
** ref with a compare-and-swap against the value it read, a fetch updates
** and prunes its copies as git fetch would.  No hooks run on the other
** side: a refusal comes from its refdb (a ref that moved meanwhile).  A
** ref locked in the hub is locked by another process's update or left by a
** killed one: a lock older than VELD_GIT_STALE_LOCK_S is removed and the
** update tried once more; a younger one fails the push with VELD_ERROR and
** a message naming the ref, never as a refusal.
**
** What it owns: the hub handle kept in the veld_repo between syncs
** (hub_get) and the list of its packs then.  What it must not do: call the
** OS itself (files.c lists the packs) or call up into transport.c.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 if every name of `old` is in `now`. */
static int strlist_covers(const veld_strlist *now, const veld_strlist *old)
{
	size_t i, j;
	for (i = 0; i < old->n; i++) {
		int found = 0;
		for (j = 0; j < now->n && !found; j++)
			found = !strcmp(now->v[j], old->v[i]);
		if (!found)
			return 0;
	}
	return 1;
}

/* The hub on `path`, open.  The handle stays with `r` between syncs: its
** pack indexes and windows stay mapped and its parsed trees cached (opened
** afresh, every sync mapped and faulted in the hub's packs again, and
** unmapped them, at a cost that grows with the hub).  Another process may
** add packs (libgit2 reads the pack directory again on a miss, and a push
** refreshes it) or repack the hub: when a pack the handle may hold is gone,
** it is opened again, since a handle keeps a removed pack's file, and its
** disk space, alive. */
static int hub_get(git_repository **out, veld_repo *r, const char *path, veld_err *err)
{
	veld_strlist now = {0};
	char packdir[VELD_GIT_PATHBUF];
	int grc, listed;
	*out = NULL;
	snprintf(packdir, sizeof packdir, "%s/objects/pack", path);
	listed = veld_git__list_packs(&now, r->os, packdir, err) == 0;
	veld_err__clear(err);
	if (!listed || !r->hub || strcmp(r->hub_path, path) || !strlist_covers(&now, &r->hub_packs)) {
		veld_repo__hub_release(r);
		if ((grc = git_repository_open_bare(&r->hub, path)) < 0) {
			r->hub = NULL;
			veld_strlist__free(&now);
			return veld_git__fail(err, grc, grc == GIT_ENOTFOUND ? VELD_ENOTFOUND : 0, "open the hub %s", path);
		}
		/* Its pack indexes checked before libgit2 reads through them
		** (check.c): once per opening, not per sync of a kept handle. */
		if (veld_git__check_indexes(r->os, git_repository_path(r->hub), err)) {
			veld_repo__hub_release(r);
			veld_strlist__free(&now);
			return VELD_EINTEGRITY;
		}
		if (!(r->hub_path = strdup(path))) {
			veld_repo__hub_release(r);
			veld_strlist__free(&now);
			return veld_err__oom(err);
		}
	}
	veld_strlist__free(&r->hub_packs);
	r->hub_packs = now;
	*out = r->hub;
	return 0;
}

typedef struct ref_update {
	char *name;
	git_oid id;
} ref_update;

static void updates_free(ref_update *u, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		free(u[i].name);
	free(u);
}

/* The refs of the hub that refspec `spec` (forced, as every fetch refspec
** of sync is) takes: each one's local name and id into *ups, and the
** objects of those that moved into the moveset. */
static int fetch_collect(ref_update **ups, size_t *nups, size_t *cap, veld_moveset *m, veld_repo *r,
                         git_repository *hub, const char *url, const char *refspec, veld_err *err)
{
	git_refspec *spec = NULL;
	git_reference_iterator *it = NULL;
	git_reference *ref;
	int rc = 0, grc;
	if ((grc = git_refspec_parse(&spec, refspec, 1)) < 0)
		return veld_git__fail(err, grc, VELD_EINVALID, "refspec %s", refspec);
	if ((grc = git_reference_iterator_glob_new(&it, hub, git_refspec_src(spec))) < 0) {
		git_refspec_free(spec);
		return veld_git__fail(err, grc, 0, "list the refs of %s", url);
	}
	while (rc == 0 && (grc = git_reference_next(&ref, it)) == 0) {
		git_buf dst = GIT_BUF_INIT;
		git_oid want, have;
		int has;
		if (git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
			git_reference_free(ref);
			continue;
		}
		git_oid_cpy(&want, git_reference_target(ref));
		if ((grc = git_refspec_transform(&dst, spec, git_reference_name(ref))) < 0) {
			rc = veld_git__fail(err, grc, 0, "map %s", git_reference_name(ref));
		} else {
			has = git_reference_name_to_id(&have, r->git, dst.ptr) == 0;
			git_error_clear();
			if (*nups == *cap) {
				ref_update *more = realloc(*ups, (*cap ? 2 * *cap : 16) * sizeof **ups);
				if (!more)
					rc = veld_err__oom(err);
				else
					*ups = more, *cap = *cap ? 2 * *cap : 16;
			}
			if (rc == 0 && !((*ups)[*nups].name = strdup(dst.ptr)))
				rc = veld_err__oom(err);
			if (rc == 0) {
				git_oid_cpy(&(*ups)[(*nups)++].id, &want);
				if (!has || !git_oid_equal(&have, &want))
					rc = veld_git__move_commits(m, &want, has ? &have : NULL);
			}
		}
		git_buf_dispose(&dst);
		git_reference_free(ref);
	}
	if (rc == 0 && grc != GIT_ITEROVER)
		rc = veld_git__fail(err, grc, 0, "list the refs of %s", url);
	git_reference_iterator_free(it);
	git_refspec_free(spec);
	return rc;
}

/* The local copies set as the hub has them, then the pruning of copies
** under a refspec's destination whose ref the hub no longer has. */
static int fetch_update(veld_repo *r, const ref_update *ups, size_t nups, const char *const *refspecs, size_t n,
                        veld_err *err)
{
	size_t i, k;
	int rc = 0, grc;
	for (i = 0; i < nups && rc == 0; i++) {
		git_reference *ref = NULL;
		git_oid have;
		if (git_reference_name_to_id(&have, r->git, ups[i].name) == 0 && git_oid_equal(&have, &ups[i].id))
			continue;
		git_error_clear();
		if ((grc = git_reference_create(&ref, r->git, ups[i].name, &ups[i].id, 1, "fetch")) < 0)
			rc = veld_git__fail(err, grc, 0, "update %s", ups[i].name);
		git_reference_free(ref);
	}
	for (k = 0; k < n && rc == 0; k++) {
		git_refspec *spec = NULL;
		git_reference_iterator *it = NULL;
		git_reference *ref;
		if (git_refspec_parse(&spec, refspecs[k], 1) < 0 ||
		    git_reference_iterator_glob_new(&it, r->git, git_refspec_dst(spec)) < 0) {
			git_refspec_free(spec);
			git_error_clear();
			continue;
		}
		while (rc == 0 && git_reference_next(&ref, it) == 0) {
			int kept = 0;
			for (i = 0; i < nups && !kept; i++)
				kept = strcmp(ups[i].name, git_reference_name(ref)) == 0;
			if (!kept && (grc = git_reference_delete(ref)) < 0)
				rc = veld_git__fail(err, grc, 0, "prune %s", git_reference_name(ref));
			git_reference_free(ref);
		}
		git_error_clear();
		git_reference_iterator_free(it);
		git_refspec_free(spec);
	}
	return rc;
}

/* Fetch from a hub on a path: refs matching each refspec's source, their
** new objects as one pack, then the local copies and the pruning.  A
** cancel from the progress report comes before anything is written. */
int veld_git__fetch_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                         const veld_remote_opts *opts, veld_err *err)
{
	git_repository *hub = NULL;
	veld_moveset m;
	ref_update *ups = NULL;
	size_t nups = 0, cap = 0, k;
	char what[600];
	int rc;
	memset(&m, 0, sizeof m);
	if ((rc = hub_get(&hub, r, url, err)))
		return rc;
	if ((rc = veld_git__move_open(&m, hub, r->git, err)))
		goto done;
	for (k = 0; k < n && rc == 0; k++)
		rc = fetch_collect(&ups, &nups, &cap, &m, r, hub, url, refspecs[k], err);
	snprintf(what, sizeof what, "fetch from %s", url);
	if (rc == 0)
		rc = veld_git__progress(opts, "receiving objects", veld_pack__count(m.pack), veld_pack__count(m.pack),
		                        what, err);
	if (rc == 0 && (rc = veld_git__pack_store(r->git, m.pack, err)) == 0) {
		git_odb *odb = NULL;
		if (git_repository_odb(&odb, r->git) == 0)
			git_odb_refresh(odb);
		git_odb_free(odb);
	}
	if (rc == 0)
		rc = fetch_update(r, ups, nups, refspecs, n, err);
done:
	veld_git__move_close(&m);
	updates_free(ups, nups);
	return rc;
}

/* A ref's lock file in the hub older than VELD_GIT_STALE_LOCK_S is left by
** a killed process (git holds a ref's lock for the moment of one update):
** remove it.  1 if one was removed, so the update may be tried again. */
static int stale_lock_removed(veld_repo *r, git_repository *hub, const char *refname)
{
	char path[4096];
	int n = snprintf(path, sizeof path, "%s%s.lock", git_repository_path(hub), refname);
	if (n < 0 || (size_t)n >= sizeof path)
		return 0;
	if (!veld_git__old_enough(r->os, path, VELD_GIT_STALE_LOCK_S, r->os->xClockMs(r->os->ctx)))
		return 0;
	return veld_git__unlink(r->os, path) == 0;
}

/* Push to a hub on a path: for each refspec the hub's ref is read, the
** update checked (a fast-forward unless forced), the new objects written
** as one pack, and only then every ref moved with a compare-and-swap
** against the value read: a ref that moved meanwhile is refused.  A
** cancel from the progress report comes before anything is written. */
int veld_git__push_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                        const veld_remote_opts *opts, veld_err *err)
{
	git_repository *hub = NULL;
	veld_moveset m;
	char what[600];
	ref_update *ups = NULL;
	git_oid *olds = NULL;
	unsigned char *had = NULL;
	size_t nups = 0, i, k;
	int rc, grc;
	if ((rc = hub_get(&hub, r, url, err)))
		return rc;
	ups = calloc(n ? n : 1, sizeof *ups);
	olds = calloc(n ? n : 1, sizeof *olds);
	had = calloc(n ? n : 1, 1);
	if (!ups || !olds || !had) {
		rc = veld_err__oom(err);
		goto done;
	}
	if ((rc = veld_git__move_open(&m, r->git, hub, err)))
		goto done;
	for (k = 0; k < n && rc == 0; k++) {
		git_refspec *spec = NULL;
		git_oid want;
		if ((grc = git_refspec_parse(&spec, refspecs[k], 0)) < 0) {
			rc = veld_git__fail(err, grc, VELD_EINVALID, "refspec %s", refspecs[k]);
			break;
		}
		if ((grc = git_reference_name_to_id(&want, r->git, git_refspec_src(spec))) < 0) {
			rc = veld_git__fail(err, grc, 0, "read %s", git_refspec_src(spec));
		} else if (!(ups[nups].name = strdup(git_refspec_dst(spec)))) {
			rc = veld_err__oom(err);
		} else {
			git_oid_cpy(&ups[nups].id, &want);
			had[nups] = git_reference_name_to_id(&olds[nups], hub, ups[nups].name) == 0;
			git_error_clear();
			if (had[nups] && git_oid_equal(&olds[nups], &want)) {
				free(ups[nups].name); /* the hub has it as it is */
			} else if (had[nups] && !git_refspec_force(spec) &&
			           git_graph_descendant_of(r->git, &want, &olds[nups]) != 1) {
				git_error_clear();
				rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused: not a fast-forward",
				                   ups[nups].name, url);
				free(ups[nups].name);
			} else {
				rc = veld_git__move_commits(&m, &want, had[nups] ? &olds[nups] : NULL);
				nups++;
			}
		}
		git_refspec_free(spec);
	}
	snprintf(what, sizeof what, "push to %s", url);
	if (rc == 0)
		rc = veld_git__progress(opts, "sending objects", veld_pack__count(m.pack), veld_pack__count(m.pack), what,
		                        err);
	if (rc == 0)
		rc = veld_git__pack_store(hub, m.pack, err);
	for (i = 0; i < nups && rc == 0; i++) {
		git_reference *ref = NULL;
		int tries = 0;
		do {
			grc = had[i] ? git_reference_create_matching(&ref, hub, ups[i].name, &ups[i].id, 1, &olds[i], "push")
			             : git_reference_create(&ref, hub, ups[i].name, &ups[i].id, 0, "push");
		} while (grc == GIT_ELOCKED && tries++ == 0 && stale_lock_removed(r, hub, ups[i].name));
		if (grc == GIT_EMODIFIED || grc == GIT_EEXISTS)
			rc = veld_git__fail(err, grc, VELD_EDENIED, "push of %s to %s refused: the ref moved meanwhile", ups[i].name,
			              url);
		else if (grc == GIT_ELOCKED)
			rc = veld_err__set(err, VELD_ERROR,
			                   "push of %s to %s: the ref is locked (%s.lock): another process is writing it, or one "
			                   "was killed; a lock older than %d s is removed as stale: sync again later",
			                   ups[i].name, url, ups[i].name, VELD_GIT_STALE_LOCK_S);
		else if (grc < 0)
			rc = veld_git__fail(err, grc, 0, "push of %s to %s", ups[i].name, url);
		git_error_clear();
		git_reference_free(ref);
	}
	veld_git__move_close(&m);
done:
	updates_free(ups, nups);
	free(olds);
	free(had);
	return rc;
}

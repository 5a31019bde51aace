/*
** repo.c — the repository handle of the git layer: libgit2 set up, a bare
** repository created or opened with its object batch in front (odb.c),
** lock files a killed process left behind, and the handle freed.
**
** What it owns: struct veld_repo (declared in git.h, for the layer's files)
** and the one git_libgit2_init() each handle holds.
** Global state: none of ours.  libgit2 keeps process-wide state that this
** file touches in two ways only: git_libgit2_init() once per handle,
** balanced by git_libgit2_shutdown() in veld_repo__free (libgit2 counts
** them), and GIT_OPT_ENABLE_FSYNC_GITDIR switched on (process-wide, and
** never switched off again: every repository the process opens is then
** written with fsync, which is what a crash-safe store wants), with the
** size of tree libgit2 caches raised.
** What it must not do: know about records, devices or roles; call the OS
** itself (files.c does, through the handle's veld_os table).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE_CACHE_LIMIT (64 * 1024) /* largest tree libgit2 keeps in its object cache */

static int lib_init(veld_repo *r, veld_err *err)
{
	int grc = git_libgit2_init();
	if (grc < 0)
		return veld_git__fail(err, grc, VELD_ERROR, "cannot initialise libgit2");
	r->lib_inited = 1;
	grc = git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	if (grc < 0)
		return veld_git__fail(err, grc, VELD_ERROR, "cannot switch on fsync in libgit2");
	/* libgit2 caches no tree over 4 kB by default; `cases/` (256 entries,
	** ~7.4 kB) would be read, inflated and hashed again by every diff and
	** tree update of a sync. */
	grc = git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)TREE_CACHE_LIMIT);
	if (grc < 0)
		return veld_git__fail(err, grc, VELD_ERROR, "cannot set libgit2's tree cache limit");
	return 0;
}

static int handle_new(veld_repo **out, const veld_os *os, const char *path, veld_err *err)
{
	veld_repo *r;
	int rc;
	*out = NULL;
	if (!path || !*path)
		return veld_err__set(err, VELD_EINVALID, "repository path is empty");
	r = calloc(1, sizeof *r);
	if (!r)
		return veld_err__oom(err);
	/* A table from before version 2 has no directory entries: the default
	** table's do that part (veld_platform.h). */
	r->os = os && os->version >= 2 ? os : veld_os_default();
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return veld_err__oom(err);
	}
	if ((rc = lib_init(r, err)) < 0) {
		veld_repo__free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int veld_repo__clear_stale_locks(veld_repo *r)
{
	const char *gitdir = git_repository_path(r->git);
	char p[VELD_GIT_PATHBUF];
	int n = 0;
	static const char *const files[] = {"packed-refs.lock", "config.lock", "HEAD.lock", "index.lock"};
	size_t i;
	if ((size_t)snprintf(p, sizeof p, "%srefs", gitdir) < sizeof p)
		n += veld_git__remove_locks(r->os, p);
	for (i = 0; i < sizeof files / sizeof files[0]; i++)
		if ((size_t)snprintf(p, sizeof p, "%s%s", gitdir, files[i]) < sizeof p &&
		    r->os->xUnlink(r->os->ctx, p) == 0)
			n++;
	return n;
}

/* Create the bare repository at r->path: only where nothing is yet. */
static int create(veld_repo *r, veld_err *err)
{
	git_repository_init_options io;
	int grc, empty = veld_git__dir_is_empty(r->os, r->path);
	if (empty == 0)
		return veld_err__set(err, VELD_EEXISTS, "cannot create repository at %s: the directory is not empty",
		                     r->path);
	if (empty < 0)
		return veld_err__set(err, VELD_ERROR, "cannot create repository at %s: %s", r->path, strerror(-empty));
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	if ((grc = git_repository_init_ext(&r->git, r->path, &io)) < 0)
		return veld_git__fail(err, grc, 0, "cannot create repository at %s", r->path);
	return 0;
}

/* A handle on a repository created (`make`) or opened, with its batch. */
static int start(veld_repo **out, const veld_os *os, const char *path, int make, veld_err *err)
{
	veld_repo *r = NULL;
	int rc, grc;

	if ((rc = handle_new(&r, os, path, err)) < 0)
		goto done;
	if (make) {
		if ((rc = create(r, err)))
			goto done;
	} else if ((grc = git_repository_open_bare(&r->git, path)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot open repository at %s", path);
		goto done;
	} else if ((rc = veld_git__check_indexes(r->os, git_repository_path(r->git), err))) {
		goto done; /* never handed to libgit2 to read through */
	}
	/* Who moves a ref, for libgit2's reflog: fixed, so libgit2 never reads
	** the user's git configuration to find out (and a config snapshot that
	** runs out of memory frees a pointer it never set, in libgit2 1.5). */
	if ((grc = git_repository_set_ident(r->git, "veld", "veld@veld.invalid")) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot set up repository at %s", path);
		goto done;
	}
	if ((rc = veld_git__batch_attach(r, err)))
		goto done;
	*out = r;
	r = NULL;
done:
	veld_repo__free(r);
	return rc;
}

int veld_repo__init(veld_repo **out, const veld_os *os, const char *path, veld_err *err)
{
	return start(out, os, path, 1, err);
}

int veld_repo__open(veld_repo **out, const veld_os *os, const char *path, veld_err *err)
{
	return start(out, os, path, 0, err);
}

void veld_repo__free(veld_repo *r)
{
	veld_err ignored;
	if (!r)
		return;
	/* Objects no ref names yet still go to disk: an unnamed pack costs
	** nothing and goes with the next repack. */
	if (r->git)
		veld_repo__flush(r, &ignored);
	git_repository_free(r->git); /* the batch goes with its object database */
	veld_repo__hub_release(r);
	free(r->path);
	if (r->lib_inited)
		git_libgit2_shutdown();
	free(r);
}

void veld_repo__hub_release(veld_repo *r)
{
	if (!r)
		return;
	git_repository_free(r->hub);
	r->hub = NULL;
	free(r->hub_path);
	r->hub_path = NULL;
	veld_strlist__free(&r->hub_packs);
}

git_repository *veld_repo__git(veld_repo *r)
{
	return r ? r->git : NULL;
}

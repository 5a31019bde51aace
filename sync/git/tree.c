/*
** tree.c — blobs and trees: write and read a blob, update a tree at a few
** paths, look up the blob or the directory at a path.
**
** A tree update goes through git_tree_create_updated, so its cost grows
** with the changes, not with the tree.  libgit2 1.5 behaviour this relies
** on (checked by tests/unit/sync_repo.c): it creates intermediate trees
** and, on removal, drops trees that become empty, all the way up; removing
** a path that is not there is an error, so such removals are skipped here
** (a removal is idempotent).
** What it owns: nothing beyond the call.  What it must not do: give a
** path a meaning (sync.c lays out cases/...).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdlib.h>
#include <string.h>

int veld_repo__blob_write(git_oid *out, veld_repo *r, const void *buf, size_t len, veld_err *err)
{
	int grc = git_blob_create_from_buffer(out, r->git, len ? buf : "", len);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot write blob");
	return 0;
}

int veld_repo__blob_read(unsigned char **buf, size_t *len, veld_repo *r, const git_oid *id, veld_err *err)
{
	git_blob *blob = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	unsigned char *copy;
	size_t n;
	int rc = 0, grc;

	*buf = NULL;
	*len = 0;
	git_oid_tostr(hex, sizeof hex, id);
	if ((grc = git_blob_lookup(&blob, r->git, id)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot read blob %s", hex);
		goto done;
	}
	n = (size_t)git_blob_rawsize(blob);
	copy = malloc(n ? n : 1);
	if (!copy) {
		rc = veld_err__oom(err);
		goto done;
	}
	if (n)
		memcpy(copy, git_blob_rawcontent(blob), n);
	*buf = copy;
	*len = n;
done:
	git_blob_free(blob);
	return rc;
}

/* ---- trees -------------------------------------------------------------- */

/* A tree path: non-empty components separated by single '/', none of them
** "." or "..", no leading or trailing '/'. */
static int path_ok(const char *path)
{
	const char *p = path, *start;
	if (!p || !*p)
		return 0;
	for (;;) {
		start = p;
		while (*p && *p != '/')
			p++;
		if (p == start)
			return 0;
		if ((p - start == 1 && start[0] == '.') || (p - start == 2 && start[0] == '.' && start[1] == '.'))
			return 0;
		if (!*p)
			return 1;
		p++;
	}
}

static int cmp_change_path(const void *a, const void *b)
{
	const veld_tree_change *x = *(const veld_tree_change *const *)a;
	const veld_tree_change *y = *(const veld_tree_change *const *)b;
	return strcmp(x->path, y->path);
}

int veld_git__lookup_tree(git_tree **out, veld_repo *r, const git_oid *id, veld_err *err)
{
	char hex[GIT_OID_HEXSZ + 1];
	int grc;
	*out = NULL;
	if (!id)
		return 0;
	if ((grc = git_tree_lookup(out, r->git, id)) < 0)
		return veld_git__fail(err, grc, 0, "cannot read tree %s", git_oid_tostr(hex, sizeof hex, id));
	return 0;
}

int veld_repo__tree_update(git_oid *out, veld_repo *r, const git_oid *base,
                           const veld_tree_change *changes, size_t n, veld_err *err)
{
	git_tree *tree = NULL;
	git_tree_update *ups = NULL;
	const veld_tree_change **sorted = NULL;
	size_t i, m = 0;
	int rc = 0, grc;

	if ((rc = veld_git__lookup_tree(&tree, r, base, err)) < 0)
		goto done;
	if (n) {
		sorted = malloc(n * sizeof *sorted);
		ups = calloc(n, sizeof *ups);
		if (!sorted || !ups) {
			rc = veld_err__oom(err);
			goto done;
		}
	}
	for (i = 0; i < n; i++) {
		if (!path_ok(changes[i].path)) {
			rc = veld_err__set(err, VELD_EINVALID, "tree update: malformed path \"%s\"",
			                   changes[i].path ? changes[i].path : "(null)");
			goto done;
		}
		sorted[i] = &changes[i];
	}
	if (n)
		qsort(sorted, n, sizeof *sorted, cmp_change_path);
	for (i = 0; i < n; i++) {
		const veld_tree_change *c = sorted[i];
		if (i > 0 && strcmp(sorted[i - 1]->path, c->path) == 0) {
			rc = veld_err__set(err, VELD_EINVALID, "tree update: path %s changed twice", c->path);
			goto done;
		}
		if (!c->id) {
			/* libgit2 fails on removing an absent path: make it a no-op. */
			git_tree_entry *e = NULL;
			if (!tree)
				continue;
			grc = git_tree_entry_bypath(&e, tree, c->path);
			git_tree_entry_free(e);
			if (grc == GIT_ENOTFOUND)
				continue;
			if (grc < 0) {
				rc = veld_git__fail(err, grc, 0, "tree update: cannot look up %s", c->path);
				goto done;
			}
			ups[m].action = GIT_TREE_UPDATE_REMOVE;
		} else {
			ups[m].action = GIT_TREE_UPDATE_UPSERT;
			git_oid_cpy(&ups[m].id, c->id);
			ups[m].filemode = GIT_FILEMODE_BLOB;
		}
		ups[m].path = c->path;
		m++;
	}
	if ((grc = git_tree_create_updated(out, r->git, tree, m, ups)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot update tree");
		goto done;
	}
done:
	free(ups);
	free(sorted);
	git_tree_free(tree);
	return rc;
}

static int lookup_entry(git_oid *out, veld_repo *r, const git_oid *tree_id, const char *path,
                        git_object_t want, veld_err *err)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	int rc = 0, grc;

	if (!path_ok(path)) {
		rc = veld_err__set(err, VELD_EINVALID, "tree lookup: malformed path \"%s\"", path ? path : "(null)");
		goto done;
	}
	if (!tree_id) {
		rc = veld_err__set(err, VELD_ENOTFOUND, "%s: not in the (empty) tree", path);
		goto done;
	}
	if ((rc = veld_git__lookup_tree(&tree, r, tree_id, err)) < 0)
		goto done;
	grc = git_tree_entry_bypath(&e, tree, path);
	if (grc == GIT_ENOTFOUND || (grc == 0 && git_tree_entry_type(e) != want)) {
		rc = veld_err__set(err, VELD_ENOTFOUND, "%s: no such %s in the tree", path,
		                   want == GIT_OBJECT_TREE ? "directory" : "file");
		goto done;
	}
	if (grc < 0) {
		rc = veld_git__fail(err, grc, 0, "tree lookup of %s", path);
		goto done;
	}
	git_oid_cpy(out, git_tree_entry_id(e));
done:
	git_tree_entry_free(e);
	git_tree_free(tree);
	return rc;
}

int veld_repo__tree_lookup(git_oid *out, veld_repo *r, const git_oid *tree_id, const char *path,
                           veld_err *err)
{
	return lookup_entry(out, r, tree_id, path, GIT_OBJECT_BLOB, err);
}

int veld_repo__tree_lookup_dir(git_oid *out, veld_repo *r, const git_oid *tree_id, const char *path,
                               veld_err *err)
{
	return lookup_entry(out, r, tree_id, path, GIT_OBJECT_TREE, err);
}

/*
** move.c — which objects a change made: the selection behind the two
** transfers of our own (pathhub.c, push_http.c).
**
** libgit2's transports (its local one included) pack by walking: every head
** the other side already has is hidden, and the whole tree of each is marked
** before the few new objects are packed, so a sync's cost grows with the
** hub (docs/benchmarks.md).  Here the objects to move are found from the
** commits down instead: a new commit's tree is compared with the trees of
** its parents and of what the other side holds for the ref now, entry by
** entry, and only subtrees that differ are entered; an object the other
** side has (when its object store is at hand) is never taken.  What is
** taken goes into a veld_pack (pack.c): whole, or over HTTP a tree as a
** delta against the tree at the same path in a base.
** What it owns: the moveset (its pack, the other side's object database).
** What it must not do: write a pack or move a ref (its callers do).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdlib.h>
#include <string.h>


/* Whether dst has the object.  Its packs were read once when the move
** began: libgit2 would otherwise read the pack directory again after every
** miss, and most objects of a move are misses. */
static int dst_has(veld_moveset *m, const git_oid *id)
{
	return m->dst_odb && git_odb_exists_ext(m->dst_odb, id, GIT_ODB_LOOKUP_NO_REFRESH);
}

/* Take object `id` into the pack; `base`, a tree dst has at the same path
** (or NULL), is what a thin pack may send it as a delta against. */
static int move_insert(veld_moveset *m, const git_oid *id, const git_oid *base)
{
	return veld_pack__add(m->pack, id, m->thin ? base : NULL, m->err);
}

/* A tree of src (else of dst), or NULL: a base that cannot be read is no
** base (the objects are then checked one by one). */
static git_tree *base_tree(veld_moveset *m, const git_oid *id)
{
	git_tree *t = NULL;
	if (git_tree_lookup(&t, m->src, id) < 0 && (!m->dst || git_tree_lookup(&t, m->dst, id) < 0))
		t = NULL;
	git_error_clear();
	return t;
}

/* A commit or tree of src that src cannot read: what a ref, a commit or a
** tree of src names is missing or damaged there (the side that is at
** fault, not this move). */
static int src_fail(veld_moveset *m, int grc, const char *what, const git_oid *id)
{
	return veld_git__fail(m->err, grc, grc == GIT_ENOTFOUND ? VELD_EINTEGRITY : 0, "read %s %s of %s", what,
	                      git_oid_tostr_s(id), git_repository_path(m->src));
}

#define MOVE_DEPTH 64

/* Tree `id` and what it holds that dst lacks, skipping every entry that a
** base tree (one dst has or gets in this move) holds as it is. */
static int move_tree(veld_moveset *m, const git_oid *id, git_tree *const *bases, size_t nb, int depth)
{
	git_tree *t = NULL;
	size_t i, j, k;
	int grc, rc = 0;
	for (i = 0; i < nb; i++)
		if (git_oid_equal(git_tree_id(bases[i]), id))
			return 0;
	if (dst_has(m, id))
		return 0;
	if (depth > MOVE_DEPTH)
		return veld_err__set(m->err, VELD_EINTEGRITY, "a tree is nested more than %d deep", MOVE_DEPTH);
	if ((grc = git_tree_lookup(&t, m->src, id)) < 0)
		return src_fail(m, grc, "tree", id);
	if ((rc = move_insert(m, id, nb ? git_tree_id(bases[0]) : NULL))) {
		git_tree_free(t);
		return rc;
	}
	for (i = 0; i < git_tree_entrycount(t) && rc == 0; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		const git_oid *eid = git_tree_entry_id(e);
		git_tree *sub[VELD_GIT_MOVE_BASES];
		size_t ns = 0;
		int same = 0;
		for (j = 0; j < nb && !same; j++) {
			const git_tree_entry *be = git_tree_entry_byname(bases[j], git_tree_entry_name(e));
			if (!be)
				continue;
			if (git_oid_equal(git_tree_entry_id(be), eid))
				same = 1;
			else if (git_tree_entry_type(e) == GIT_OBJECT_TREE && git_tree_entry_type(be) == GIT_OBJECT_TREE &&
			         (sub[ns] = base_tree(m, git_tree_entry_id(be))) != NULL)
				ns++;
		}
		if (!same && git_tree_entry_type(e) == GIT_OBJECT_TREE) {
			rc = move_tree(m, eid, sub, ns, depth + 1);
		} else if (!same && !dst_has(m, eid)) {
			rc = move_insert(m, eid, NULL); /* a blob, or a commit of a submodule */
		}
		for (k = 0; k < ns; k++)
			git_tree_free(sub[k]);
	}
	git_tree_free(t);
	return rc;
}

/* A commit of src, looked up in src, else in dst. */
static int any_commit(git_commit **out, veld_moveset *m, const git_oid *id)
{
	int grc = git_commit_lookup(out, m->src, id);
	if (grc < 0 && m->dst && git_commit_lookup(out, m->dst, id) == 0)
		grc = 0;
	if (grc == 0)
		git_error_clear();
	return grc;
}

/* The tree of commit `id` as a base, or NULL. */
git_tree *veld_git__move_base(veld_moveset *m, const git_oid *id)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	if (any_commit(&c, m, id) == 0)
		t = base_tree(m, git_commit_tree_id(c));
	git_commit_free(c);
	git_error_clear();
	return t;
}

/* Commit `id` and what its tree adds to its parents' trees and to
** `oldtree` (or NULL); its parents go to parents[] (*np of them). */
int veld_git__move_commit(veld_moveset *m, const git_oid *id, git_tree *oldtree, git_oid *parents, size_t *np)
{
	git_commit *c = NULL;
	git_tree *bases[VELD_GIT_MOVE_BASES] = {NULL};
	size_t nb = 0, i, n;
	int grc, rc;
	*np = 0;
	if ((grc = git_commit_lookup(&c, m->src, id)) < 0)
		return src_fail(m, grc, "commit", id);
	if ((rc = move_insert(m, id, NULL))) {
		git_commit_free(c);
		return rc;
	}
	n = git_commit_parentcount(c);
	if (n > VELD_GIT_MOVE_BASES - 1) {
		git_commit_free(c);
		return veld_err__set(m->err, VELD_EINTEGRITY, "commit %s has %zu parents", git_oid_tostr_s(id), n);
	}
	for (i = 0; i < n; i++) {
		const git_oid *pid = git_commit_parent_id(c, (unsigned int)i);
		if ((bases[nb] = veld_git__move_base(m, pid)) != NULL)
			nb++;
		git_oid_cpy(&parents[i], pid);
	}
	*np = n;
	n = nb; /* the parents' trees are ours to free; oldtree is not */
	if (oldtree)
		bases[nb++] = oldtree;
	rc = move_tree(m, git_commit_tree_id(c), bases, nb, 0);
	for (i = 0; i < n; i++)
		git_tree_free(bases[i]);
	git_commit_free(c);
	return rc;
}

/* The commits from `tip` down to those dst has, with their trees; `old` (or
** NULL) is what dst holds for the ref now, a base for every tree. */
int veld_git__move_commits(veld_moveset *m, const git_oid *tip, const git_oid *old)
{
	git_oid *stack = NULL, *done = NULL;
	size_t nstack = 0, ndone = 0, cap = 16, i;
	git_tree *oldtree = old ? veld_git__move_base(m, old) : NULL;
	int rc = 0;
	stack = malloc(cap * sizeof *stack);
	done = malloc(cap * sizeof *done);
	if (!stack || !done) {
		rc = veld_err__oom(m->err);
		goto out;
	}
	git_oid_cpy(&stack[nstack++], tip);
	while (nstack && rc == 0) {
		git_oid id = stack[--nstack];
		size_t np = 0;
		int seen = 0;
		for (i = 0; i < ndone && !seen; i++)
			seen = git_oid_equal(&done[i], &id);
		if (seen || dst_has(m, &id))
			continue;
		if (ndone == cap || nstack + VELD_GIT_MOVE_BASES >= cap) {
			git_oid *a = realloc(stack, 2 * cap * sizeof *stack), *b;
			if (a)
				stack = a;
			b = a ? realloc(done, 2 * cap * sizeof *done) : NULL;
			if (!a || !b) {
				rc = veld_err__oom(m->err);
				break;
			}
			done = b;
			cap *= 2;
		}
		git_oid_cpy(&done[ndone++], &id);
		rc = veld_git__move_commit(m, &id, oldtree, stack + nstack, &np);
		nstack += np;
	}
out:
	git_tree_free(oldtree);
	free(stack);
	free(done);
	return rc;
}

/* dst NULL: a hub over HTTP (a thin pack, sent by push_http). */
int veld_git__move_open(veld_moveset *m, git_repository *src, git_repository *dst, veld_err *err)
{
	int grc, rc;
	memset(m, 0, sizeof *m);
	m->src = src;
	m->dst = dst;
	m->err = err;
	m->thin = dst == NULL;
	if (dst && ((grc = git_repository_odb(&m->dst_odb, dst)) < 0 || (grc = git_odb_refresh(m->dst_odb)) < 0))
		return veld_git__fail(err, grc, 0, "open an object database");
	if ((rc = veld_pack__new(&m->pack, src, err)))
		return rc;
	if (m->thin)
		veld_pack__for_the_wire(m->pack);
	return 0;
}

void veld_git__move_close(veld_moveset *m)
{
	veld_pack__free(m->pack);
	git_odb_free(m->dst_odb);
}

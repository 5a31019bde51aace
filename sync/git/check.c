/*
** check.c — is a repository intact?  What `veld verify` asks of the git
** layer for this store's repository (and the office's for a hub on a
** path), and what a sync that failed asks of each side before it says
** which one is damaged.
**
** Three passes, the cheapest first, each stopping at the first fault:
**   packs    every pack index against its pack, by git's own checksums:
**            the index's trailing SHA-1 over everything before it, the
**            pack's trailing SHA-1 over everything before it, and the copy
**            of the pack's checksum the index holds; then the index's
**            header, fan-out and size, the pack's header and object count.
**            A flipped bit anywhere in either file fails one of these.
**            libgit2 itself checks none of the SHA-1s when it reads: a
**            damaged index otherwise points at a wrong place and an object
**            reads as missing ("object not found"), or is never noticed.
**   objects  every object (loose, packed, the batch in memory) read back:
**            libgit2 checks each one's hash against its id.
**   links    every ref names an object that is there, every commit its
**            tree and parents, every tree its entries (git fsck's
**            connectivity): whatever a ref reaches can be read.
** Every fault is VELD_EINTEGRITY with a message naming the file or the
** object; a file that cannot be read at all is VELD_ERROR.
**
** The pack indexes alone (their checksums, and every offset inside its
** pack) are checked each time a repository is opened (repo.c, and the hub
** on a path in pathhub.c): libgit2 reads through an index unchecked, and
** a damaged one can make it read outside the pack and crash.
**
** What it owns: nothing beyond a call.  What it must not do: change the
** repository, read a file but through files.c, or call the files listed
** below it in git.h (it uses libgit2's refs directly).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>

#define SUM_LEN      20                       /* SHA-1 */
#define IDX_HEAD     (8 + 256 * 4)            /* magic, version, fan-out */
#define IDX_PER_OBJ  (SUM_LEN + 4 + 4)        /* name, CRC-32, offset */
#define IDX_TAIL     (2 * SUM_LEN)            /* the pack's checksum, the index's */
#define PACK_HEAD    12                       /* "PACK", version, count */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- packs --------------------------------------------------------------------- */

/* A file read whole (an index) or summed as it streams by (a pack). */
typedef struct sumfile {
	mbedtls_sha1_context sha;
	unsigned char *data;             /* the whole file, when kept */
	unsigned char head[PACK_HEAD];
	unsigned char tail[SUM_LEN];     /* its last 20 bytes, as stored */
	int64_t size;
	int keep;
} sumfile;

/* Everything but the last 20 bytes goes into the SHA-1; those are kept. */
static int sum_chunk(const unsigned char *data, size_t len, int64_t off, int64_t size, void *payload)
{
	sumfile *f = payload;
	int64_t body = size > SUM_LEN ? size - SUM_LEN : 0, end = off + (int64_t)len, i;
	if (f->keep && !f->data && !(f->data = malloc((size_t)size)))
		return 1;
	if (f->data)
		memcpy(f->data + off, data, len);
	f->size = size;
	for (i = off; i < end && i < PACK_HEAD; i++)
		f->head[i] = data[i - off];
	if (off < body && mbedtls_sha1_update_ret(&f->sha, data, (size_t)((end < body ? end : body) - off)))
		return 1;
	for (i = off > body ? off : body; i < end; i++)
		f->tail[i - body] = data[i - off];
	return 0;
}

/* Read `path`, summing it; 1 if its trailing checksum is what it holds. */
static int sum_read(sumfile *f, const veld_os *os, const char *path, int keep, veld_err *err)
{
	unsigned char got[SUM_LEN];
	int rc;
	memset(f, 0, sizeof *f);
	f->keep = keep;
	mbedtls_sha1_init(&f->sha);
	if (mbedtls_sha1_starts_ret(&f->sha))
		return veld_err__set(err, VELD_ERROR, "checksum %s", path);
	rc = veld_git__read_file(os, path, sum_chunk, f);
	if (rc == -ENOENT)
		return veld_err__set(err, VELD_EINTEGRITY, "%s is missing", path);
	if (rc < 0)
		return veld_err__set(err, VELD_ERROR, "cannot read %s: %s", path, strerror(-rc));
	if (rc > 0)
		return veld_err__set(err, VELD_ERROR, "cannot checksum %s: out of memory", path);
	if (f->size < SUM_LEN + PACK_HEAD)
		return veld_err__set(err, VELD_EINTEGRITY, "%s is damaged: %lld bytes is too short", path,
		                     (long long)f->size);
	if (mbedtls_sha1_finish_ret(&f->sha, got))
		return veld_err__set(err, VELD_ERROR, "checksum %s", path);
	if (memcmp(got, f->tail, SUM_LEN))
		return veld_err__set(err, VELD_EINTEGRITY, "%s is damaged: its checksum does not match its contents", path);
	return 0;
}

static void sum_free(sumfile *f)
{
	mbedtls_sha1_free(&f->sha);
	free(f->data);
}

/* The index's header, fan-out and size: the count of objects, or -1. */
static int64_t idx_count(const sumfile *x)
{
	static const unsigned char magic[8] = {0xff, 't', 'O', 'c', 0, 0, 0, 2};
	const unsigned char *offs;
	uint32_t prev = 0, n, i, large = 0;
	if (x->size < IDX_HEAD + IDX_TAIL || memcmp(x->data, magic, sizeof magic))
		return -1;
	for (i = 0; i < 256; i++) {
		uint32_t v = be32(x->data + 8 + 4 * i);
		if (v < prev)
			return -1;
		prev = v;
	}
	n = prev;
	if ((uint64_t)x->size < (uint64_t)IDX_HEAD + (uint64_t)n * IDX_PER_OBJ + IDX_TAIL)
		return -1;
	offs = x->data + IDX_HEAD + (size_t)n * (SUM_LEN + 4);
	for (i = 0; i < n; i++)
		large += offs[4 * (size_t)i] >> 7;
	if ((uint64_t)x->size != (uint64_t)IDX_HEAD + (uint64_t)n * IDX_PER_OBJ + 8ull * large + IDX_TAIL)
		return -1;
	return n;
}

/* A pack's two files, its index read whole and summed. */
typedef struct packidx {
	char ipath[VELD_GIT_PATHBUF], ppath[VELD_GIT_PATHBUF];
	sumfile x;
	int64_t n; /* the objects the index names */
} packidx;

/* Read "<packdir>/<name>.idx": its checksum, header, fan-out and size.
** sum_free(&k->x) whatever it returns. */
static int index_read(packidx *k, const veld_os *os, const char *packdir, const char *name, veld_err *err)
{
	int rc;
	memset(&k->x, 0, sizeof k->x);
	if ((size_t)snprintf(k->ipath, sizeof k->ipath, "%s/%s.idx", packdir, name) >= sizeof k->ipath ||
	    (size_t)snprintf(k->ppath, sizeof k->ppath, "%s/%s.pack", packdir, name) >= sizeof k->ppath)
		return veld_err__set(err, VELD_ERROR, "%s: the path is too long", packdir);
	if ((rc = sum_read(&k->x, os, k->ipath, 1, err)))
		return rc;
	if ((k->n = idx_count(&k->x)) < 0)
		return veld_err__set(err, VELD_EINTEGRITY, "pack index %s is damaged: not a version 2 index", k->ipath);
	return 0;
}

/* One pack: the index against the pack. */
static int check_pack(const veld_os *os, const char *packdir, const char *name, veld_err *err)
{
	packidx k;
	sumfile p;
	int64_t size;
	int rc, flags;
	memset(&p, 0, sizeof p);
	if ((rc = index_read(&k, os, packdir, name, err)))
		goto done;
	/* An index whose pack is not there is what a process killed between
	** the two renames of libgit2's indexer leaves (the index goes first):
	** libgit2 and git pass it by, and so does this check.  An object that
	** is then missing is found by the links. */
	if (os->xStat(os->ctx, k.ppath, &flags, &size) != 0 || (rc = sum_read(&p, os, k.ppath, 0, err)))
		goto done;
	if (memcmp(p.head, "PACK", 4) || (be32(p.head + 4) != 2 && be32(p.head + 4) != 3))
		rc = veld_err__set(err, VELD_EINTEGRITY, "pack %s is damaged: not a pack", k.ppath);
	else if (be32(p.head + 8) != (uint64_t)k.n)
		rc = veld_err__set(err, VELD_EINTEGRITY, "pack %s holds %u objects, its index %s names %lld", k.ppath,
		                   (unsigned)be32(p.head + 8), k.ipath, (long long)k.n);
	else if (memcmp(k.x.data + k.x.size - IDX_TAIL, p.tail, SUM_LEN))
		rc = veld_err__set(err, VELD_EINTEGRITY, "pack index %s is not the index of %s: the pack's checksum differs",
		                   k.ipath, k.ppath);
done:
	sum_free(&k.x);
	sum_free(&p);
	return rc;
}

/* One pack index alone: its checksum, header, fan-out and size, and every
** offset inside its pack (libgit2 reads through an index unchecked). */
static int check_index(const veld_os *os, const char *packdir, const char *name, veld_err *err)
{
	packidx k;
	const unsigned char *offs;
	int64_t i, psize = 0;
	int flags = 0, rc;
	if ((rc = index_read(&k, os, packdir, name, err)))
		goto done;
	if (os->xStat(os->ctx, k.ppath, &flags, &psize) != 0)
		goto done; /* no pack yet: see check_pack */
	offs = k.x.data + IDX_HEAD + (size_t)k.n * (SUM_LEN + 4);
	for (i = 0; i < k.n && rc == 0; i++)
		if (!(offs[4 * i] & 0x80) && (int64_t)be32(offs + 4 * i) >= psize - SUM_LEN)
			rc = veld_err__set(err, VELD_EINTEGRITY, "pack index %s names a place past the end of its pack",
			                   k.ipath);
done:
	sum_free(&k.x);
	return rc;
}

int veld_git__check_indexes(const veld_os *os, const char *gitdir, veld_err *err)
{
	veld_strlist names = {0};
	char packdir[VELD_GIT_PATHBUF];
	size_t i;
	int rc;
	snprintf(packdir, sizeof packdir, "%sobjects/pack", gitdir);
	rc = veld_git__list_packs(&names, os, packdir, err);
	for (i = 0; i < names.n && rc == 0; i++)
		rc = check_index(os, packdir, names.v[i], err);
	veld_strlist__free(&names);
	return rc;
}

static int check_packs(veld_repo *r, veld_err *err)
{
	veld_strlist names = {0};
	char packdir[VELD_GIT_PATHBUF];
	size_t i;
	int rc;
	snprintf(packdir, sizeof packdir, "%sobjects/pack", git_repository_path(r->git));
	rc = veld_git__list_packs(&names, r->os, packdir, err);
	for (i = 0; i < names.n && rc == 0; i++)
		rc = check_pack(r->os, packdir, names.v[i], err);
	veld_strlist__free(&names);
	return rc;
}

/* ---- objects and links ------------------------------------------------------------ */

typedef struct objwalk {
	git_repository *git;
	git_odb *odb;
	veld_err *err;
	int rc;
} objwalk;

/* `id`, named by `by` (what names it), must be there. */
static int present(objwalk *w, const git_oid *id, const char *what, const git_oid *by)
{
	char hex[GIT_OID_HEXSZ + 1], byhex[GIT_OID_HEXSZ + 1];
	if (git_odb_exists(w->odb, id))
		return 0;
	git_oid_tostr(hex, sizeof hex, id);
	git_oid_tostr(byhex, sizeof byhex, by);
	w->rc = veld_err__set(w->err, VELD_EINTEGRITY, "git object %s, the %s of %s, is missing", hex, what, byhex);
	return 1;
}

/* What a commit or a tree names. */
static int links_of(objwalk *w, const git_oid *id, git_object_t type)
{
	git_object *o = NULL;
	size_t i, n;
	int stop = 0, grc;
	if (type != GIT_OBJECT_COMMIT && type != GIT_OBJECT_TREE)
		return 0;
	if ((grc = git_object_lookup(&o, w->git, id, type)) < 0) {
		w->rc = veld_git__fail(w->err, grc, VELD_EINTEGRITY, "git object %s is damaged",
		                       git_oid_tostr_s(id));
		return 1;
	}
	if (type == GIT_OBJECT_COMMIT) {
		const git_commit *c = (const git_commit *)o;
		stop = present(w, git_commit_tree_id(c), "tree", id);
		for (i = 0, n = git_commit_parentcount(c); i < n && !stop; i++)
			stop = present(w, git_commit_parent_id(c, (unsigned)i), "parent", id);
	} else {
		const git_tree *t = (const git_tree *)o;
		for (i = 0, n = git_tree_entrycount(t); i < n && !stop; i++) {
			const git_tree_entry *e = git_tree_entry_byindex(t, i);
			if (git_tree_entry_type(e) != GIT_OBJECT_COMMIT) /* a submodule's commit lives elsewhere */
				stop = present(w, git_tree_entry_id(e), "entry", id);
		}
	}
	git_object_free(o);
	return stop;
}

/* One object of the database: it reads back (libgit2 checks its hash
** against its id) and what it names is there. */
static int check_object(const git_oid *id, void *payload)
{
	objwalk *w = payload;
	git_odb_object *obj = NULL;
	git_object_t type;
	int grc;
	if ((grc = git_odb_read(&obj, w->odb, id)) < 0) {
		w->rc = veld_git__fail(w->err, grc, VELD_EINTEGRITY, "git object %s is damaged", git_oid_tostr_s(id));
		return 1;
	}
	type = git_odb_object_type(obj);
	git_odb_object_free(obj);
	return links_of(w, id, type);
}

/* Every ref (symbolic ones resolved, dangling ones skipped) names an
** object that is there. */
static void check_refs(objwalk *w)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int grc;
	if ((grc = git_reference_iterator_new(&it, w->git)) < 0) {
		w->rc = veld_git__fail(w->err, grc, 0, "cannot list the refs");
		return;
	}
	while (!w->rc && (grc = git_reference_next(&ref, it)) == 0) {
		git_reference *res = NULL;
		if (git_reference_resolve(&res, ref) == 0 && !git_odb_exists(w->odb, git_reference_target(res)))
			w->rc = veld_err__set(w->err, VELD_EINTEGRITY, "git object %s, named by %s, is missing",
			                      git_oid_tostr(hex, sizeof hex, git_reference_target(res)), git_reference_name(ref));
		git_reference_free(res);
		git_reference_free(ref);
	}
	if (!w->rc && grc != GIT_ITEROVER)
		w->rc = veld_git__fail(w->err, grc, 0, "cannot list the refs");
	git_error_clear();
	git_reference_iterator_free(it);
}

static int check_objects(veld_repo *r, veld_err *err)
{
	objwalk w;
	int grc;
	memset(&w, 0, sizeof w);
	w.git = r->git;
	w.err = err;
	if ((grc = git_repository_odb(&w.odb, r->git)) < 0)
		return veld_git__fail(err, grc, VELD_ERROR, "cannot open the object database of %s", r->path);
	grc = git_odb_foreach(w.odb, check_object, &w);
	if (grc < 0 && !w.rc)
		w.rc = veld_git__fail(err, grc, VELD_EINTEGRITY, "cannot list the objects of %s", r->path);
	if (!w.rc)
		check_refs(&w);
	git_odb_free(w.odb);
	return w.rc;
}

int veld_repo__check(veld_repo *r, veld_err *err)
{
	int rc = check_packs(r, err);
	return rc ? rc : check_objects(r, err);
}

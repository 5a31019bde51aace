/*
** repo.c — the git plumbing of sync/: a thin layer over libgit2 that knows
** git, not veld.
**
** What it owns: one bare repository per handle (struct veld_repo) and the
** translation of libgit2's results into veld's error codes and messages.
** What it does: blobs; trees updated at a few paths (git_tree_create_updated,
** so the cost grows with the changes, not with the tree); commits signed in
** a custom "veldsig" header and their verification; the commits a fetch
** brought; diffs of two trees as a list of changed blob paths; refs; fetch
** and push with credentials, progress and server refusals surfaced (to a
** hub on a path without a transport: the objects a change made, found from
** its trees); and a repack with prune, the thing that makes
** crypto-shredding real.
** What it must not do: know about records, envelopes, devices or roles.
** The caller (sync.c) decides what a path, a ref or a signer means.
**
** Global state: none of ours.  libgit2 keeps process-wide state that this
** file touches in two ways only: git_libgit2_init() once per handle,
** balanced by git_libgit2_shutdown() in veld_repo__free (libgit2 counts
** them), and GIT_OPT_ENABLE_FSYNC_GITDIR switched on (process-wide, and
** never switched off again: every repository the process opens is then
** written with fsync, which is what a crash-safe store wants).
**
** Errors: every failure sets the handle-free veld_err passed in.  The text
** of git_error_last() is copied at once, next to what we were doing; it is
** never used to decide whether something failed (the return code does).
** libgit2 codes map to veld codes as follows: not found -> VELD_ENOTFOUND;
** hash mismatch, unparsable or undecompressable objects -> VELD_EINTEGRITY;
** authentication -> VELD_EAUTH; a ref the server refused or a non-fast-
** forward push -> VELD_EDENIED; a malformed ref name or path ->
** VELD_EINVALID; everything else -> VELD_ERROR.
**
** libgit2 1.5 behaviour this file relies on (each one checked by
** tests/unit/sync_repo.c):
**  - git_tree_create_updated creates intermediate trees and, on removal,
**    drops trees that become empty, all the way up; removing a path that is
**    not there is an error, so such removals are skipped here (a removal is
**    idempotent).
**  - git_remote_push returns 0 when the server refuses a ref; the refusal
**    is only in the push_update_reference callback, whose status from
**    git http-backend is just "hook declined": the hook's own reason
**    arrives as a sideband message ("remote: ...").  A non-fast-forward
**    push without force is refused by libgit2 before anything is sent
**    (GIT_ENONFASTFORWARD).
**  - A hub on a path is not reached through libgit2's transports at all
**    (see "a hub on a path" below): no hooks run there, and a refusal comes
**    from its refdb (a locked ref, a ref that moved meanwhile).
**  - git_packbuilder_insert_walk inserts every commit of the walk and, for
**    each, its whole tree (subtrees and blobs); refs to non-commits need
**    git_packbuilder_insert_recur.
*/
#include "sync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/odb_backend.h>
#include <sodium.h>

#define SIG_FIELD       "veldsig"
#define SIG_B64LEN      88 /* base64 (original, padded) of 64 bytes */
#define SIGNER_MAX      64
#define EMAIL_DOMAIN    "@veld.invalid"
#define CRED_FIELD_SIZE 256
#define PATHBUF         (PATH_MAX + 128) /* a path under objects/ */
#define TREE_CACHE_LIMIT (64 * 1024) /* largest tree libgit2 keeps in its object cache */

typedef struct batch batch;

/* A growable list of strings. */
typedef struct strlist {
	char **v;
	size_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		char **nv = realloc(l->v, ncap * sizeof *nv);
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = ncap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return -1;
	l->n++;
	return 0;
}

static void strlist_free(strlist *l)
{
	size_t i;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

struct veld_repo {
	git_repository *git;
	char *path;     /* as given to init/open */
	int lib_inited; /* this handle holds one git_libgit2_init() */
	batch *batch;   /* new objects, held until a ref names them */
	/* A hub on a path, kept open between syncs (hub_get). */
	git_repository *hub;
	char *hub_path;
	strlist hub_packs; /* its packs when it was last used */
};

static int list_packs(strlist *out, const char *packdir, veld_err *err);

/* ---- errors ------------------------------------------------------------- */

/* Map the libgit2 return code `grc` (already known to be < 0) to a veld code,
** using the error class for the generic -1 only. */
static int map_code(int grc, int klass)
{
	switch (grc) {
	case GIT_ENOTFOUND:
		return VELD_ENOTFOUND;
	case GIT_EAUTH:
		return VELD_EAUTH;
	case GIT_ENONFASTFORWARD:
		return VELD_EDENIED;
	case GIT_EINVALIDSPEC:
		return VELD_EINVALID;
	case GIT_EEXISTS:
		return VELD_EEXISTS;
	case GIT_ELOCKED:
		return VELD_EBUSY;
	case GIT_EMISMATCH:
		return VELD_EINTEGRITY;
	default:
		break;
	}
	if (klass == GIT_ERROR_ZLIB || klass == GIT_ERROR_OBJECT || klass == GIT_ERROR_ODB)
		return VELD_EINTEGRITY;
	return VELD_ERROR;
}

int veld_git__fail(veld_err *err, int grc, int code, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	char what[256];
	va_list ap;
	int klass = e ? e->klass : GIT_ERROR_NONE;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (!code)
		code = map_code(grc, klass);
	if (e && e->message && e->message[0])
		return veld_err__set(err, code, "%s: %s", what, e->message);
	return veld_err__set(err, code, "%s (libgit2 error %d)", what, grc);
}

/* A URL fit for messages: the user-info part ("user:secret@") left out. */
static void redact_url(char *out, size_t cap, const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *host = scheme ? scheme + 3 : url;
	const char *at = NULL, *p;
	for (p = host; *p && *p != '/'; p++)
		if (*p == '@')
			at = p;
	if (scheme && at)
		snprintf(out, cap, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, cap, "%s", url);
}

/* ---- new objects: held in memory, written as one pack -------------------
**
** A sync writes some sixty objects (the changed records' blobs, the trees on
** their paths, a commit).  As loose objects that is sixty files, directory
** entries and fsyncs.  Instead they go to an object backend of ours in
** front of the repository's own: a table in memory that serves them back to
** every reader, and that veld_repo__flush writes as one pack (pack.c's
** writer, whole objects, indexed by libgit2's indexer: pack_store) when a
** ref is about to name them.  Until then a crash loses only objects
** nothing refers to.
*/

typedef struct batch_obj {
	git_oid id;
	git_object_t type;
	size_t len;
	unsigned char *data; /* len bytes and a NUL, as libgit2's own backends give */
} batch_obj;

struct batch {
	git_odb_backend parent;
	batch_obj *v;
	size_t n, cap;
	size_t *slot;   /* open addressing: index + 1 into v, 0 free */
	size_t nslot;   /* a power of two, at least twice n */
};

static size_t batch_hash(const git_oid *id)
{
	size_t h;
	memcpy(&h, id->id, sizeof h);
	return h;
}

static batch_obj *batch_find(batch *b, const git_oid *id)
{
	size_t i;
	if (!b->nslot)
		return NULL;
	for (i = batch_hash(id) & (b->nslot - 1); b->slot[i]; i = (i + 1) & (b->nslot - 1))
		if (git_oid_equal(&b->v[b->slot[i] - 1].id, id))
			return &b->v[b->slot[i] - 1];
	return NULL;
}

static int batch_grow(batch *b)
{
	size_t nslot = b->nslot ? 2 * b->nslot : 256, i, j;
	size_t *slot = calloc(nslot, sizeof *slot);
	batch_obj *v = realloc(b->v, nslot / 2 * sizeof *v);
	if (!slot || !v) {
		free(slot);
		if (v)
			b->v = v;
		return -1;
	}
	b->v = v;
	b->cap = nslot / 2;
	for (i = 0; i < b->n; i++) {
		for (j = batch_hash(&v[i].id) & (nslot - 1); slot[j]; j = (j + 1) & (nslot - 1))
			;
		slot[j] = i + 1;
	}
	free(b->slot);
	b->slot = slot;
	b->nslot = nslot;
	return 0;
}

static int batch_read(void **data, size_t *len, git_object_t *type, git_odb_backend *be, const git_oid *id)
{
	batch_obj *o = batch_find((batch *)be, id);
	unsigned char *copy;
	if (!o)
		return GIT_ENOTFOUND;
	if (!(copy = git_odb_backend_data_alloc(be, o->len + 1)))
		return -1;
	memcpy(copy, o->data, o->len + 1);
	*data = copy;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int batch_read_header(size_t *len, git_object_t *type, git_odb_backend *be, const git_oid *id)
{
	batch_obj *o = batch_find((batch *)be, id);
	if (!o)
		return GIT_ENOTFOUND;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int batch_exists(git_odb_backend *be, const git_oid *id)
{
	return batch_find((batch *)be, id) != NULL;
}

static int batch_write(git_odb_backend *be, const git_oid *id, const void *data, size_t len, git_object_t type)
{
	batch *b = (batch *)be;
	batch_obj *o;
	size_t j;
	if (batch_find(b, id))
		return 0;
	if ((b->n + 1) * 2 > b->nslot && batch_grow(b)) {
		git_error_set_oom();
		return -1;
	}
	o = &b->v[b->n];
	if (!(o->data = malloc(len + 1))) {
		git_error_set_oom();
		return -1;
	}
	memcpy(o->data, data, len);
	o->data[len] = '\0';
	o->len = len;
	o->type = type;
	git_oid_cpy(&o->id, id);
	for (j = batch_hash(id) & (b->nslot - 1); b->slot[j]; j = (j + 1) & (b->nslot - 1))
		;
	b->slot[j] = ++b->n;
	return 0;
}

static int batch_foreach(git_odb_backend *be, git_odb_foreach_cb cb, void *payload)
{
	batch *b = (batch *)be;
	size_t i;
	int rc;
	for (i = 0; i < b->n; i++)
		if ((rc = cb(&b->v[i].id, payload)) != 0)
			return rc;
	return 0;
}

static void batch_clear(batch *b)
{
	size_t i;
	for (i = 0; i < b->n; i++)
		free(b->v[i].data);
	b->n = 0;
	if (b->slot)
		memset(b->slot, 0, b->nslot * sizeof *b->slot);
}

static void batch_free(git_odb_backend *be)
{
	batch *b = (batch *)be;
	batch_clear(b);
	free(b->v);
	free(b->slot);
	free(b);
}

/* Put a batch in front of r's object database (which then owns it). */
static int batch_attach(veld_repo *r, veld_err *err)
{
	git_odb *odb = NULL;
	batch *b = calloc(1, sizeof *b);
	int grc;
	if (!b)
		return veld_err__oom(err);
	if ((grc = git_odb_init_backend(&b->parent, GIT_ODB_BACKEND_VERSION)) < 0 ||
	    (grc = git_repository_odb(&odb, r->git)) < 0) {
		free(b);
		return veld_git__fail(err, grc, 0, "cannot set up the object store of %s", r->path);
	}
	b->parent.read = batch_read;
	b->parent.read_header = batch_read_header;
	b->parent.write = batch_write;
	b->parent.exists = batch_exists;
	b->parent.foreach = batch_foreach;
	b->parent.free = batch_free;
	if ((grc = git_odb_add_backend(odb, &b->parent, 999)) < 0) {
		free(b);
		git_odb_free(odb);
		return veld_git__fail(err, grc, 0, "cannot set up the object store of %s", r->path);
	}
	git_odb_free(odb);
	r->batch = b;
	return 0;
}

/* The pack as pack.c writes it, chunk by chunk, into libgit2's indexer. */
typedef struct index_sink {
	git_indexer *idx;
	git_indexer_progress st;
} index_sink;

static int to_indexer(const void *data, size_t len, void *payload, veld_err *err)
{
	index_sink *k = payload;
	int grc = git_indexer_append(k->idx, data, len, &k->st);
	return grc < 0 ? veld_git__fail(err, grc, 0, "write a pack") : 0;
}

/* Write the objects of `p` (whole: no base is given to a local pack) into
** dst's objects/pack as one pack with its index (libgit2's indexer, which
** fsyncs what it writes when GIT_OPT_ENABLE_FSYNC_GITDIR is on), then let
** dst's object database see it.  Not libgit2's packbuilder: it searches
** deltas among every pair of a window of the objects, which for a sync's
** sealed blobs and differently named trees finds nothing and costs most
** of the write (docs/benchmarks.md). */
static int pack_store(git_repository *dst, veld_pack *p, veld_err *err)
{
	git_indexer_options io;
	index_sink k;
	git_odb *odb = NULL;
	char dir[PATHBUF];
	int rc = 0, grc;
	if (veld_pack__count(p) == 0)
		return 0;
	memset(&k, 0, sizeof k);
	snprintf(dir, sizeof dir, "%sobjects/pack", git_repository_path(dst));
	git_indexer_options_init(&io, GIT_INDEXER_OPTIONS_VERSION);
	if ((grc = git_indexer_new(&k.idx, dir, 0, NULL, &io)) < 0)
		rc = veld_git__fail(err, grc, 0, "write a pack");
	if (rc == 0)
		rc = veld_pack__stream(p, to_indexer, &k, err);
	if (rc == 0 && ((grc = git_indexer_commit(k.idx, &k.st)) < 0 || (grc = git_repository_odb(&odb, dst)) < 0 ||
	                (grc = git_odb_refresh(odb)) < 0))
		rc = veld_git__fail(err, grc, 0, "write a pack");
	git_indexer_free(k.idx);
	git_odb_free(odb);
	return rc;
}

int veld_repo__flush(veld_repo *r, veld_err *err)
{
	veld_pack *p = NULL;
	size_t i;
	int rc;
	if (!r->batch || r->batch->n == 0)
		return 0;
	if ((rc = veld_pack__new(&p, r->git, err)))
		return rc;
	for (i = 0; i < r->batch->n && rc == 0; i++)
		rc = veld_pack__add(p, &r->batch->v[i].id, NULL, err);
	if (rc == 0)
		rc = pack_store(r->git, p, err);
	veld_pack__free(p);
	if (rc)
		return rc;
	batch_clear(r->batch);
	return 0;
}

/* ---- handle ------------------------------------------------------------- */

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

static int handle_new(veld_repo **out, const char *path, veld_err *err)
{
	veld_repo *r;
	int rc;
	*out = NULL;
	if (!path || !*path)
		return veld_err__set(err, VELD_EINVALID, "repository path is empty");
	r = calloc(1, sizeof *r);
	if (!r)
		return veld_err__oom(err);
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

/* 1 if `path` does not exist or is an empty directory, 0 if it has
** entries, -1 if it is not a directory or cannot be read. */
static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int empty = 1;
	if (!d)
		return errno == ENOENT ? 1 : -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

/* Remove "*.lock" files below `dir` (recursively); returns how many. */
static int remove_locks(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char p[PATH_MAX];
		size_t len = strlen(de->d_name);
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p)
			continue;
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += remove_locks(p);
		else if (len > 5 && !strcmp(de->d_name + len - 5, ".lock") && unlink(p) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int veld_repo__clear_stale_locks(veld_repo *r)
{
	const char *gitdir = git_repository_path(r->git);
	char p[PATH_MAX];
	int n = 0;
	static const char *const files[] = {"packed-refs.lock", "config.lock", "HEAD.lock", "index.lock"};
	size_t i;
	if ((size_t)snprintf(p, sizeof p, "%srefs", gitdir) < sizeof p)
		n += remove_locks(p);
	for (i = 0; i < sizeof files / sizeof files[0]; i++)
		if ((size_t)snprintf(p, sizeof p, "%s%s", gitdir, files[i]) < sizeof p && unlink(p) == 0)
			n++;
	return n;
}

int veld_repo__init(veld_repo **out, const char *path, veld_err *err)
{
	git_repository_init_options io;
	veld_repo *r = NULL;
	int rc, grc, empty;

	if ((rc = handle_new(&r, path, err)) < 0)
		goto done;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	empty = dir_is_empty(path);
	if (empty == 0) {
		rc = veld_err__set(err, VELD_EEXISTS, "cannot create repository at %s: the directory is not empty", path);
		goto done;
	}
	if (empty < 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot create repository at %s: %s", path, strerror(errno));
		goto done;
	}
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	if ((grc = git_repository_init_ext(&r->git, path, &io)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot create repository at %s", path);
		goto done;
	}
	if ((rc = batch_attach(r, err)))
		goto done;
	*out = r;
	r = NULL;
done:
	veld_repo__free(r);
	return rc;
}

int veld_repo__open(veld_repo **out, const char *path, veld_err *err)
{
	veld_repo *r = NULL;
	int rc, grc;

	if ((rc = handle_new(&r, path, err)) < 0)
		goto done;
	if ((grc = git_repository_open_bare(&r->git, path)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot open repository at %s", path);
		goto done;
	}
	if ((rc = batch_attach(r, err)))
		goto done;
	*out = r;
	r = NULL;
done:
	veld_repo__free(r);
	return rc;
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

git_repository *veld_repo__git(veld_repo *r)
{
	return r ? r->git : NULL;
}

/* ---- blobs -------------------------------------------------------------- */

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

static int lookup_tree(git_tree **out, veld_repo *r, const git_oid *id, veld_err *err)
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

	if ((rc = lookup_tree(&tree, r, base, err)) < 0)
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
	if ((rc = lookup_tree(&tree, r, tree_id, err)) < 0)
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

/* ---- signed commits ----------------------------------------------------- */

/* A signer id: 1..64 of [A-Za-z0-9._-] (device ids are hex, "org"). */
static int signer_ok(const char *s, size_t len)
{
	size_t i;
	if (len == 0 || len > SIGNER_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int veld_repo__commit(git_oid *out, veld_repo *r, const git_oid *tree_id, const git_oid *parents,
                      size_t n_parents, const char *signer, int64_t when_ms, const char *msg,
                      veld_sign_cb sign, void *payload, veld_err *err)
{
	git_tree *tree = NULL;
	git_commit **pc = NULL;
	git_signature *who = NULL;
	git_buf buf = {0};
	char email[SIGNER_MAX + sizeof EMAIL_DOMAIN];
	char header[SIGNER_MAX + 1 + SIG_B64LEN + 1];
	unsigned char sig[crypto_sign_BYTES];
	size_t i, slen;
	int rc = 0, grc;

	slen = signer ? strlen(signer) : 0;
	if (!signer_ok(signer ? signer : "", slen)) {
		rc = veld_err__set(err, VELD_EINVALID, "commit: signer id must be 1-%d of [A-Za-z0-9._-]", SIGNER_MAX);
		goto done;
	}
	if (!msg || !tree_id || !sign || (n_parents && !parents)) {
		rc = veld_err__set(err, VELD_EINVALID, "commit: missing tree, message, parents or signing callback");
		goto done;
	}
	if ((rc = lookup_tree(&tree, r, tree_id, err)) < 0)
		goto done;
	if (n_parents) {
		pc = calloc(n_parents, sizeof *pc);
		if (!pc) {
			rc = veld_err__oom(err);
			goto done;
		}
	}
	for (i = 0; i < n_parents; i++) {
		char hex[GIT_OID_HEXSZ + 1];
		if ((grc = git_commit_lookup(&pc[i], r->git, &parents[i])) < 0) {
			rc = veld_git__fail(err, grc, 0, "commit: cannot read parent %s",
			              git_oid_tostr(hex, sizeof hex, &parents[i]));
			goto done;
		}
	}
	snprintf(email, sizeof email, "%s%s", signer, EMAIL_DOMAIN);
	if ((grc = git_signature_new(&who, signer, email, (git_time_t)(when_ms / 1000), 0)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: bad author");
		goto done;
	}
	if ((grc = git_commit_create_buffer(&buf, r->git, who, who, NULL, msg, tree, n_parents,
	                                     (const git_commit **)pc)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: cannot build the commit");
		goto done;
	}
	if (sign(sig, (const unsigned char *)buf.ptr, buf.size, payload) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "commit: signing failed for signer %s", signer);
		goto done;
	}
	memcpy(header, signer, slen);
	header[slen] = ' ';
	sodium_bin2base64(header + slen + 1, SIG_B64LEN + 1, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	if ((grc = git_commit_create_with_signature(out, r->git, buf.ptr, header, SIG_FIELD)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: cannot store the signed commit");
		goto done;
	}
done:
	sodium_memzero(sig, sizeof sig);
	git_buf_dispose(&buf);
	git_signature_free(who);
	for (i = 0; pc && i < n_parents; i++)
		git_commit_free(pc[i]);
	free(pc);
	git_tree_free(tree);
	return rc;
}

int veld_repo__commit_verify(char *signer_out, size_t signer_cap, veld_repo *r, const git_oid *commit,
                             veld_pubkey_cb pubkey, void *payload, veld_err *err)
{
	git_buf sigbuf = {0}, data = {0};
	git_oid id;
	char hex[GIT_OID_HEXSZ + 1];
	char signer[SIGNER_MAX + 1];
	char again[SIG_B64LEN + 1];
	unsigned char sig[crypto_sign_BYTES], pk[crypto_sign_PUBLICKEYBYTES];
	const char *sp, *b64;
	size_t slen, blen, siglen = 0;
	const char *end = NULL;
	int rc = 0, grc;

	if (signer_out && signer_cap)
		signer_out[0] = '\0';
	git_oid_cpy(&id, commit);
	git_oid_tostr(hex, sizeof hex, commit);
	grc = git_commit_extract_signature(&sigbuf, &data, r->git, &id, SIG_FIELD);
	if (grc == GIT_ENOTFOUND) {
		/* Absent commit or absent header: tell which. */
		git_commit *c = NULL;
		int lrc = git_commit_lookup(&c, r->git, commit);
		git_commit_free(c);
		if (lrc < 0)
			rc = veld_git__fail(err, lrc, 0, "commit %s", hex);
		else
			rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s is not signed (no %s header)", hex, SIG_FIELD);
		goto done;
	}
	if (grc < 0) {
		rc = veld_git__fail(err, grc, VELD_EINTEGRITY, "commit %s: cannot read its signature", hex);
		goto done;
	}

	/* "<signer> <base64>", one line, exactly one space. */
	sp = memchr(sigbuf.ptr, ' ', sigbuf.size);
	slen = sp ? (size_t)(sp - sigbuf.ptr) : 0;
	if (!sp || !signer_ok(sigbuf.ptr, slen)) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: malformed %s header (bad signer id)", hex, SIG_FIELD);
		goto done;
	}
	memcpy(signer, sigbuf.ptr, slen);
	signer[slen] = '\0';
	if (signer_out && signer_cap) {
		if (signer_cap <= slen) {
			rc = veld_err__set(err, VELD_EINVALID, "commit %s: signer id longer than the caller's buffer", hex);
			goto done;
		}
		memcpy(signer_out, signer, slen + 1);
	}
	b64 = sp + 1;
	blen = sigbuf.size - slen - 1;
	if (blen != SIG_B64LEN ||
	    sodium_base642bin(sig, sizeof sig, b64, blen, NULL, &siglen, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    siglen != sizeof sig || end != b64 + blen) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s signed by %s: malformed signature (not 64 bytes of base64)",
		                   hex, signer);
		goto done;
	}
	/* Only the canonical spelling: no second encoding of the same bytes. */
	sodium_bin2base64(again, sizeof again, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	if (memcmp(again, b64, SIG_B64LEN) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s signed by %s: non-canonical base64 signature", hex, signer);
		goto done;
	}
	rc = pubkey(pk, signer, payload);
	if (rc == VELD_ENOTFOUND) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: unknown signer %s", hex, signer);
		goto done;
	}
	if (rc != 0) {
		rc = veld_err__set(err, rc < 0 ? rc : VELD_ERROR, "commit %s: cannot get the public key of signer %s", hex,
		                   signer);
		goto done;
	}
	if (crypto_sign_verify_detached(sig, (const unsigned char *)data.ptr, data.size, pk) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: bad signature by %s", hex, signer);
		goto done;
	}
done:
	sodium_memzero(sig, sizeof sig);
	git_buf_dispose(&sigbuf);
	git_buf_dispose(&data);
	return rc;
}

static int lookup_commit(git_commit **out, veld_repo *r, const git_oid *id, veld_err *err)
{
	char hex[GIT_OID_HEXSZ + 1];
	int grc = git_commit_lookup(out, r->git, id);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot read commit %s", git_oid_tostr(hex, sizeof hex, id));
	return 0;
}

int veld_repo__commit_tree(git_oid *tree_out, veld_repo *r, const git_oid *commit, veld_err *err)
{
	git_commit *c = NULL;
	int rc = lookup_commit(&c, r, commit, err);
	if (rc == 0)
		git_oid_cpy(tree_out, git_commit_tree_id(c));
	git_commit_free(c);
	return rc;
}

int veld_repo__commit_parents(git_oid *parents, size_t cap, size_t *n, veld_repo *r, const git_oid *commit,
                              veld_err *err)
{
	git_commit *c = NULL;
	size_t i, count;
	int rc;

	*n = 0;
	if ((rc = lookup_commit(&c, r, commit, err)) < 0)
		goto done;
	count = git_commit_parentcount(c);
	for (i = 0; i < count && i < cap; i++)
		git_oid_cpy(&parents[i], git_commit_parent_id(c, (unsigned int)i));
	*n = count;
	if (count > cap) {
		char hex[GIT_OID_HEXSZ + 1];
		rc = veld_err__set(err, VELD_EINVALID, "commit %s has %zu parents, more than %zu",
		                   git_oid_tostr(hex, sizeof hex, commit), count, cap);
	}
done:
	git_commit_free(c);
	return rc;
}

/* ---- history ------------------------------------------------------------ */

int veld_repo__new_commits(git_oid **out, size_t *n, veld_repo *r, const git_oid *head, const git_oid *stop,
                           size_t n_stop, veld_err *err)
{
	git_revwalk *walk = NULL;
	git_oid id, *list = NULL;
	size_t len = 0, cap = 0, i;
	char hex[GIT_OID_HEXSZ + 1];
	int rc = 0, grc;

	*out = NULL;
	*n = 0;
	if ((grc = git_revwalk_new(&walk, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot start a history walk");
		goto done;
	}
	if ((grc = git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot sort a history walk");
		goto done;
	}
	if ((grc = git_revwalk_push(walk, head)) < 0) {
		rc = veld_git__fail(err, grc, 0, "history walk from %s", git_oid_tostr(hex, sizeof hex, head));
		goto done;
	}
	for (i = 0; i < n_stop; i++) {
		git_object *o = NULL;
		/* A stop that is not here (or is no commit) hides nothing. */
		if (git_object_lookup(&o, r->git, &stop[i], GIT_OBJECT_COMMIT) < 0) {
			git_error_clear();
			continue;
		}
		git_object_free(o);
		if ((grc = git_revwalk_hide(walk, &stop[i])) < 0) {
			rc = veld_git__fail(err, grc, 0, "history walk: cannot hide %s", git_oid_tostr(hex, sizeof hex, &stop[i]));
			goto done;
		}
	}
	while ((grc = git_revwalk_next(&id, walk)) == 0) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			git_oid *nl = realloc(list, ncap * sizeof *nl);
			if (!nl) {
				rc = veld_err__oom(err);
				goto done;
			}
			list = nl;
			cap = ncap;
		}
		git_oid_cpy(&list[len++], &id);
	}
	if (grc != GIT_ITEROVER) {
		rc = veld_git__fail(err, grc, 0, "history walk from %s", git_oid_tostr(hex, sizeof hex, head));
		goto done;
	}
	*out = list;
	*n = len;
	list = NULL;
done:
	free(list);
	git_revwalk_free(walk);
	return rc;
}

/* ---- diff --------------------------------------------------------------- */

/*
** Why not git_diff_tree_to_tree: libgit2 1.5's tree iterator expands every
** subtree, equal or not, so a diff of two 10,000-record trees that differ in
** one record reads all 10,000 case trees (0.4 s in the unit test).  This
** walk compares the two trees entry by entry in git's order and descends
** only where the ids differ, so its cost grows with the change.  It reports
** what git_diff_tree_to_tree reports with no rename detection (added,
** deleted, modified blobs; a blob replaced by a tree is a delete plus adds),
** in the same order: byte order of the full paths.  The unit test checks it
** against git_diff_tree_to_tree.
*/

typedef struct diff_walk {
	veld_repo *r;
	veld_diff_cb cb;
	void *payload;
	veld_err *err;
	char *path; /* current directory prefix, "" or "a/b/" */
	size_t len, cap;
} diff_walk;

static int is_file_mode(git_filemode_t mode)
{
	return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE || mode == GIT_FILEMODE_LINK;
}

/* git's order of tree entries: names compared bytewise, a tree's name
** compared as if it ended in '/'. */
static int entry_cmp(const git_tree_entry *x, const git_tree_entry *y)
{
	const char *a = git_tree_entry_name(x), *b = git_tree_entry_name(y);
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
	int c = memcmp(a, b, n);
	unsigned char ca, cb;
	if (c)
		return c;
	ca = la > n ? (unsigned char)a[n] : (git_tree_entry_filemode(x) == GIT_FILEMODE_TREE ? '/' : 0);
	cb = lb > n ? (unsigned char)b[n] : (git_tree_entry_filemode(y) == GIT_FILEMODE_TREE ? '/' : 0);
	return ca < cb ? -1 : ca > cb;
}

/* Append `name` (and "/" for a directory) to the path; returns the old
** length to restore, or (size_t)-1 on allocation failure. */
static size_t path_push(diff_walk *w, const char *name, int dir)
{
	size_t old = w->len, nl = strlen(name), need = w->len + nl + 2;
	if (need > w->cap) {
		size_t ncap = w->cap ? w->cap : 256;
		char *np;
		while (ncap < need)
			ncap *= 2;
		if (!(np = realloc(w->path, ncap)))
			return (size_t)-1;
		w->path = np;
		w->cap = ncap;
	}
	memcpy(w->path + w->len, name, nl);
	w->len += nl;
	if (dir)
		w->path[w->len++] = '/';
	w->path[w->len] = '\0';
	return old;
}

static int diff_level(diff_walk *w, git_tree *a, git_tree *b);

/* One entry present on one side only (or replaced by another type):
** report it, or every file under it. */
static int diff_side(diff_walk *w, const git_tree_entry *e, int is_new)
{
	git_tree *t = NULL;
	size_t old;
	int rc, grc;
	git_filemode_t mode = git_tree_entry_filemode(e);

	if (mode != GIT_FILEMODE_TREE && !is_file_mode(mode))
		return 0; /* a gitlink: not ours */
	if ((old = path_push(w, git_tree_entry_name(e), mode == GIT_FILEMODE_TREE)) == (size_t)-1)
		return veld_err__oom(w->err);
	if (mode != GIT_FILEMODE_TREE) {
		rc = w->cb(w->path, is_new ? NULL : git_tree_entry_id(e), is_new ? git_tree_entry_id(e) : NULL, w->payload);
	} else if ((grc = git_tree_lookup(&t, w->r->git, git_tree_entry_id(e))) < 0) {
		rc = veld_git__fail(w->err, grc, 0, "diff: cannot read tree %s", w->path);
	} else {
		rc = is_new ? diff_level(w, NULL, t) : diff_level(w, t, NULL);
	}
	git_tree_free(t);
	w->len = old;
	w->path[old] = '\0';
	return rc;
}

static int diff_level(diff_walk *w, git_tree *a, git_tree *b)
{
	size_t i = 0, j = 0, na = a ? git_tree_entrycount(a) : 0, nb = b ? git_tree_entrycount(b) : 0;
	int rc = 0;

	while (rc == 0 && (i < na || j < nb)) {
		const git_tree_entry *ea = i < na ? git_tree_entry_byindex(a, i) : NULL;
		const git_tree_entry *eb = j < nb ? git_tree_entry_byindex(b, j) : NULL;
		int c = !ea ? 1 : !eb ? -1 : entry_cmp(ea, eb);
		if (c < 0) {
			rc = diff_side(w, ea, 0);
			i++;
		} else if (c > 0) {
			rc = diff_side(w, eb, 1);
			j++;
		} else {
			git_filemode_t ma = git_tree_entry_filemode(ea), mb = git_tree_entry_filemode(eb);
			i++;
			j++;
			if (ma == mb && git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)))
				continue; /* the same subtree or file: nothing below differs */
			if (ma == GIT_FILEMODE_TREE) {
				git_tree *ta = NULL, *tb = NULL;
				size_t old;
				int grc;
				if ((old = path_push(w, git_tree_entry_name(ea), 1)) == (size_t)-1)
					return veld_err__oom(w->err);
				if ((grc = git_tree_lookup(&ta, w->r->git, git_tree_entry_id(ea))) < 0 ||
				    (grc = git_tree_lookup(&tb, w->r->git, git_tree_entry_id(eb))) < 0)
					rc = veld_git__fail(w->err, grc, 0, "diff: cannot read tree %s", w->path);
				else
					rc = diff_level(w, ta, tb);
				git_tree_free(ta);
				git_tree_free(tb);
				w->len = old;
				w->path[old] = '\0';
			} else if (is_file_mode(ma) && is_file_mode(mb)) {
				size_t old = path_push(w, git_tree_entry_name(ea), 0);
				if (old == (size_t)-1)
					return veld_err__oom(w->err);
				rc = w->cb(w->path, git_tree_entry_id(ea), git_tree_entry_id(eb), w->payload);
				w->len = old;
				w->path[old] = '\0';
			}
		}
	}
	return rc;
}

int veld_repo__diff(veld_repo *r, const git_oid *old_tree, const git_oid *new_tree, veld_diff_cb cb,
                    void *payload, veld_err *err)
{
	diff_walk w;
	git_tree *a = NULL, *b = NULL;
	int rc;

	if (old_tree && new_tree && git_oid_equal(old_tree, new_tree))
		return 0;
	memset(&w, 0, sizeof w);
	w.r = r;
	w.cb = cb;
	w.payload = payload;
	w.err = err;
	if ((rc = lookup_tree(&a, r, old_tree, err)) < 0 || (rc = lookup_tree(&b, r, new_tree, err)) < 0)
		goto done;
	if (path_push(&w, "", 0) == (size_t)-1) {
		rc = veld_err__oom(err);
		goto done;
	}
	rc = diff_level(&w, a, b);
done:
	free(w.path);
	git_tree_free(a);
	git_tree_free(b);
	return rc;
}

/* ---- refs --------------------------------------------------------------- */

int veld_repo__ref_get(git_oid *out, veld_repo *r, const char *name, veld_err *err)
{
	int grc = git_reference_name_to_id(out, r->git, name);
	if (grc == GIT_ENOTFOUND)
		return veld_err__set(err, VELD_ENOTFOUND, "no ref %s", name);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot read ref %s", name);
	return 0;
}

int veld_repo__ref_set(veld_repo *r, const char *name, const git_oid *id, veld_err *err)
{
	git_reference *ref = NULL;
	int grc;
	/* what the ref names goes to disk first */
	if (veld_repo__flush(r, err))
		return err->code;
	grc = git_reference_create(&ref, r->git, name, id, 1, NULL);
	git_reference_free(ref);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot set ref %s", name);
	return 0;
}

typedef struct ref_item {
	char *name;
	git_oid id;
} ref_item;

static int cmp_ref_item(const void *a, const void *b)
{
	return strcmp(((const ref_item *)a)->name, ((const ref_item *)b)->name);
}

int veld_repo__ref_list(veld_repo *r, const char *prefix, veld_ref_cb cb, void *payload, veld_err *err)
{
	git_reference_iterator *it = NULL;
	ref_item *items = NULL;
	size_t n = 0, cap = 0, i, plen = prefix ? strlen(prefix) : 0;
	const char *name;
	int rc = 0, grc;

	if ((grc = git_reference_iterator_new(&it, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot list refs");
		goto done;
	}
	while ((grc = git_reference_next_name(&name, it)) == 0) {
		git_oid id;
		if (plen && strncmp(name, prefix, plen) != 0)
			continue;
		if (git_reference_name_to_id(&id, r->git, name) < 0) {
			git_error_clear(); /* a dangling symbolic ref (HEAD of an empty repo) */
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ref_item *ni = realloc(items, ncap * sizeof *ni);
			if (!ni) {
				rc = veld_err__oom(err);
				goto done;
			}
			items = ni;
			cap = ncap;
		}
		items[n].name = strdup(name);
		if (!items[n].name) {
			rc = veld_err__oom(err);
			goto done;
		}
		git_oid_cpy(&items[n].id, &id);
		n++;
	}
	if (grc != GIT_ITEROVER) {
		rc = veld_git__fail(err, grc, 0, "cannot list refs");
		goto done;
	}
	if (n)
		qsort(items, n, sizeof *items, cmp_ref_item);
	for (i = 0; i < n; i++)
		if ((rc = cb(items[i].name, &items[i].id, payload)) != 0)
			goto done;
done:
	for (i = 0; i < n; i++)
		free(items[i].name);
	free(items);
	git_reference_iterator_free(it);
	return rc;
}

/* ---- fetch and push ----------------------------------------------------- */

/* One transfer's state, the payload of every libgit2 callback. */
typedef struct xfer {
	const veld_remote_opts *opts;
	char url[512];          /* redacted, for messages */
	const char *real_url;   /* for the credential callback */
	int userpass_tries;
	int ssh_tries;
	int user_tries;
	int auth_failed;        /* we gave up on credentials */
	char refused_ref[256];  /* first ref the server refused */
	char refused_msg[256];
	int n_refused;
	char remote_text[1024]; /* the tail of what the server said ("remote: ...") */
	size_t remote_len;
} xfer;

/* libgit2 asks again after every 401 and never gives up by itself (short of
** its replay limit): each kind of credential is offered once.  A second
** request means the first was rejected. */
static int cred_cb(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
                   void *payload)
{
	xfer *x = payload;
	const char *user = user_from_url && *user_from_url ? user_from_url : "git";
	(void)url;

	if (allowed & GIT_CREDENTIAL_USERNAME) {
		if (x->user_tries++ > 0)
			goto fail;
		return git_credential_username_new(out, user);
	}
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		if (x->ssh_tries++ > 0)
			goto fail;
		return git_credential_ssh_key_from_agent(out, user);
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		char u[CRED_FIELD_SIZE], p[CRED_FIELD_SIZE];
		int crc;
		if (x->userpass_tries++ > 0 || !x->opts || !x->opts->cred)
			goto fail;
		snprintf(u, sizeof u, "%s", user_from_url ? user_from_url : "");
		p[0] = '\0';
		crc = x->opts->cred(u, sizeof u, p, sizeof p, x->real_url, x->opts->payload);
		u[sizeof u - 1] = '\0';
		p[sizeof p - 1] = '\0';
		if (crc == 0)
			crc = git_credential_userpass_plaintext_new(out, u, p);
		else
			crc = -1;
		sodium_memzero(p, sizeof p);
		if (crc < 0)
			goto fail;
		return 0;
	}
fail:
	x->auth_failed = 1;
	git_error_set_str(GIT_ERROR_NET, "authentication failed");
	return GIT_EUSER;
}

static int fetch_progress_cb(const git_indexer_progress *st, void *payload)
{
	xfer *x = payload;
	if (!x->opts || !x->opts->progress)
		return 0;
	if (st->received_objects < st->total_objects)
		return x->opts->progress("receiving objects", st->received_objects, st->total_objects, x->opts->payload);
	return x->opts->progress("indexing objects", st->indexed_objects, st->total_objects, x->opts->payload);
}

static int push_progress_cb(unsigned int current, unsigned int total, size_t bytes, void *payload)
{
	xfer *x = payload;
	(void)bytes;
	if (x->opts && x->opts->progress)
		return x->opts->progress("sending objects", current, total, x->opts->payload);
	return 0;
}

/* The server's messages (sideband 2): a hook's reason for a refusal is
** only here; the ref status itself just says "hook declined".  Keep the
** last 1 KB. */
static int sideband_cb(const char *text, int len, void *payload)
{
	xfer *x = payload;
	size_t n = len > 0 ? (size_t)len : 0, cap = sizeof x->remote_text - 1;
	if (n > cap) {
		text += n - cap;
		n = cap;
	}
	if (x->remote_len + n > cap) {
		size_t drop = x->remote_len + n - cap;
		memmove(x->remote_text, x->remote_text + drop, x->remote_len - drop);
		x->remote_len -= drop;
	}
	memcpy(x->remote_text + x->remote_len, text, n);
	x->remote_len += n;
	x->remote_text[x->remote_len] = '\0';
	return 0;
}

/* What the server said about `ref`: the first line naming it other than
** receive-pack's own "hook declined to update <ref>", else the line just
** before that one (a hook that did not name the ref).  Into out, printable
** ASCII only. */
void veld_repo__remote_reason(char *out, size_t cap, const char *remote_text, const char *ref)
{
	const char *line = remote_text, *pick = NULL, *prev = NULL;
	size_t o = 0, len = 0;
	out[0] = '\0';
	while (*line && !pick) {
		size_t n = strcspn(line, "\r\n");
		char buf[1024];
		size_t m = n < sizeof buf ? n : sizeof buf - 1;
		memcpy(buf, line, m);
		buf[m] = '\0';
		if (strstr(buf, "hook declined")) {
			if (prev && !strstr(prev, ref))
				pick = prev, len = strcspn(prev, "\r\n");
		} else if (n && strstr(buf, ref)) {
			pick = line, len = n;
		}
		if (n)
			prev = line;
		line += n;
		line += strspn(line, "\r\n");
	}
	for (; pick && len && o + 1 < cap; pick++, len--)
		out[o++] = (*pick >= 0x20 && *pick < 0x7f) ? *pick : '?';
	out[o] = '\0';
}

static int push_ref_cb(const char *refname, const char *status, void *payload)
{
	xfer *x = payload;
	if (status) {
		if (x->n_refused++ == 0) {
			snprintf(x->refused_ref, sizeof x->refused_ref, "%s", refname);
			snprintf(x->refused_msg, sizeof x->refused_msg, "%s", status);
		}
	}
	return 0;
}

static int xfer_start(git_remote **remote, xfer *x, veld_repo *r, const char *url, const veld_remote_opts *opts,
                      git_remote_callbacks *cbs, veld_err *err)
{
	git_remote_create_options co;
	int grc;
	memset(x, 0, sizeof *x);
	x->opts = opts;
	x->real_url = url;
	redact_url(x->url, sizeof x->url, url ? url : "");
	if (!url || !*url)
		return veld_err__set(err, VELD_EINVALID, "remote URL is empty");
	/* Anonymous (no name, nothing in the config) and without url.insteadOf
	** rewriting: the URL is used as given.  (libgit2 1.5's insteadOf scan
	** also leaks a PCRE2 match block per config entry it does not match.) */
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = r->git;
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if ((grc = git_remote_create_with_opts(remote, url, &co)) < 0)
		return veld_git__fail(err, grc, 0, "cannot use remote %s", x->url);
	cbs->credentials = cred_cb;
	cbs->payload = x;
	return 0;
}

/* The error of a failed transfer: authentication first (libgit2 reports it
** as a user abort or as its own replay limit), then the mapped code. */
static int xfer_fail(veld_err *err, const xfer *x, int grc, const char *what)
{
	if (x->auth_failed || grc == GIT_EAUTH)
		return veld_err__set(err, VELD_EAUTH, "authentication failed for %s", x->url);
	return veld_git__fail(err, grc, 0, "%s %s", what, x->url);
}

/* ---- a hub on a path: objects moved without a transport ------------------
**
** libgit2's transports (its local one included) pack by walking: every head
** the other side already has is hidden, and the whole tree of each is marked
** before the few new objects are packed, so a sync's cost grows with the
** hub (docs/benchmarks.md).  For a hub on a path both sides are at hand, so
** the objects to move are found from the commits down instead: a new
** commit's tree is compared with the trees of its parents and of what the
** other side holds for the ref now, entry by entry, and only subtrees that
** differ are entered; an object the other side has is never taken.  They
** go over as one pack (pack_store: whole objects, written with its index
** straight into the receiving repository), and refs move after their
** objects: a push updates each hub ref with a compare-and-swap against the
** value it read, a fetch updates and prunes its copies as git fetch would.
*/

int veld_repo__is_url(const char *hub)
{
	return strstr(hub, "://") != NULL || (strchr(hub, '@') && strchr(hub, ':'));
}

static int is_path_hub(const char *url)
{
	return url && *url && !veld_repo__is_url(url);
}

typedef struct moveset {
	veld_pack *pack;       /* what moves (pack.c) */
	int thin;              /* over HTTP: trees as deltas against the hub's */
	git_repository *src;   /* where the objects are */
	git_repository *dst;   /* where they go */
	git_odb *dst_odb;
	veld_err *err;
} moveset;

/* Whether dst has the object.  Its packs were read once when the move
** began: libgit2 would otherwise read the pack directory again after every
** miss, and most objects of a move are misses. */
static int dst_has(moveset *m, const git_oid *id)
{
	return m->dst_odb && git_odb_exists_ext(m->dst_odb, id, GIT_ODB_LOOKUP_NO_REFRESH);
}

/* Take object `id` into the pack; `base`, a tree dst has at the same path
** (or NULL), is what a thin pack may send it as a delta against. */
static int move_insert(moveset *m, const git_oid *id, const git_oid *base)
{
	return veld_pack__add(m->pack, id, m->thin ? base : NULL, m->err);
}

/* A tree of src (else of dst), or NULL: a base that cannot be read is no
** base (the objects are then checked one by one). */
static git_tree *base_tree(moveset *m, const git_oid *id)
{
	git_tree *t = NULL;
	if (git_tree_lookup(&t, m->src, id) < 0 && (!m->dst || git_tree_lookup(&t, m->dst, id) < 0))
		t = NULL;
	git_error_clear();
	return t;
}

#define MOVE_BASES 34  /* parents of a merge (at most 32) and the ref's old value */
#define MOVE_DEPTH 64

/* Tree `id` and what it holds that dst lacks, skipping every entry that a
** base tree (one dst has or gets in this move) holds as it is. */
static int move_tree(moveset *m, const git_oid *id, git_tree *const *bases, size_t nb, int depth)
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
		return veld_git__fail(m->err, grc, 0, "read tree %s", git_oid_tostr_s(id));
	if ((rc = move_insert(m, id, nb ? git_tree_id(bases[0]) : NULL))) {
		git_tree_free(t);
		return rc;
	}
	for (i = 0; i < git_tree_entrycount(t) && rc == 0; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		const git_oid *eid = git_tree_entry_id(e);
		git_tree *sub[MOVE_BASES];
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
static int any_commit(git_commit **out, moveset *m, const git_oid *id)
{
	int grc = git_commit_lookup(out, m->src, id);
	if (grc < 0 && m->dst && git_commit_lookup(out, m->dst, id) == 0)
		grc = 0;
	if (grc == 0)
		git_error_clear();
	return grc;
}

/* The tree of commit `id` as a base, or NULL. */
static git_tree *commit_base(moveset *m, const git_oid *id)
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
static int move_commit(moveset *m, const git_oid *id, git_tree *oldtree, git_oid *parents, size_t *np)
{
	git_commit *c = NULL;
	git_tree *bases[MOVE_BASES] = {NULL};
	size_t nb = 0, i, n;
	int grc, rc;
	*np = 0;
	if ((grc = git_commit_lookup(&c, m->src, id)) < 0)
		return veld_git__fail(m->err, grc, 0, "read commit %s", git_oid_tostr_s(id));
	if ((rc = move_insert(m, id, NULL))) {
		git_commit_free(c);
		return rc;
	}
	n = git_commit_parentcount(c);
	if (n > MOVE_BASES - 1) {
		git_commit_free(c);
		return veld_err__set(m->err, VELD_EINTEGRITY, "commit %s has %zu parents", git_oid_tostr_s(id), n);
	}
	for (i = 0; i < n; i++) {
		const git_oid *pid = git_commit_parent_id(c, (unsigned int)i);
		if ((bases[nb] = commit_base(m, pid)) != NULL)
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
static int move_commits(moveset *m, const git_oid *tip, const git_oid *old)
{
	git_oid *stack = NULL, *done = NULL;
	size_t nstack = 0, ndone = 0, cap = 16, i;
	git_tree *oldtree = old ? commit_base(m, old) : NULL;
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
		if (ndone == cap || nstack + MOVE_BASES >= cap) {
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
		rc = move_commit(m, &id, oldtree, stack + nstack, &np);
		nstack += np;
	}
out:
	git_tree_free(oldtree);
	free(stack);
	free(done);
	return rc;
}

/* Write the moved objects into dst as one pack (nothing when none). */
static int move_write(moveset *m)
{
	return pack_store(m->dst, m->pack, m->err);
}

/* dst NULL: a hub over HTTP (a thin pack, sent by push_http). */
static int move_open(moveset *m, git_repository *src, git_repository *dst, veld_err *err)
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

static void move_close(moveset *m)
{
	veld_pack__free(m->pack);
	git_odb_free(m->dst_odb);
}

void veld_repo__hub_release(veld_repo *r)
{
	if (!r)
		return;
	git_repository_free(r->hub);
	r->hub = NULL;
	free(r->hub_path);
	r->hub_path = NULL;
	strlist_free(&r->hub_packs);
}

/* 1 if every name of `old` is in `now`. */
static int strlist_covers(const strlist *now, const strlist *old)
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
	strlist now = {0};
	char packdir[PATH_MAX];
	int grc, listed;
	*out = NULL;
	snprintf(packdir, sizeof packdir, "%s/objects/pack", path);
	listed = list_packs(&now, packdir, err) == 0;
	veld_err__clear(err);
	if (!listed || !r->hub || strcmp(r->hub_path, path) || !strlist_covers(&now, &r->hub_packs)) {
		veld_repo__hub_release(r);
		if ((grc = git_repository_open_bare(&r->hub, path)) < 0) {
			r->hub = NULL;
			strlist_free(&now);
			return veld_git__fail(err, grc, grc == GIT_ENOTFOUND ? VELD_ENOTFOUND : 0, "open the hub %s", path);
		}
		if (!(r->hub_path = strdup(path))) {
			veld_repo__hub_release(r);
			strlist_free(&now);
			return veld_err__oom(err);
		}
	}
	strlist_free(&r->hub_packs);
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

/* Fetch from a hub on a path: refs matching each refspec's source, their
** new objects, then the local copies (forced: every fetch refspec of sync
** is) and the pruning of copies whose ref is gone. */
static int fetch_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                      const veld_remote_opts *opts, veld_err *err)
{
	git_repository *hub = NULL;
	moveset m;
	ref_update *ups = NULL;
	size_t nups = 0, cap = 0, i, k;
	int rc, grc;
	if ((rc = hub_get(&hub, r, url, err)))
		return rc;
	if ((rc = move_open(&m, hub, r->git, err)))
		goto done;
	for (k = 0; k < n && rc == 0; k++) {
		git_refspec *spec = NULL;
		git_reference_iterator *it = NULL;
		git_reference *ref;
		if ((grc = git_refspec_parse(&spec, refspecs[k], 1)) < 0) {
			rc = veld_git__fail(err, grc, VELD_EINVALID, "refspec %s", refspecs[k]);
			break;
		}
		if ((grc = git_reference_iterator_glob_new(&it, hub, git_refspec_src(spec))) < 0) {
			git_refspec_free(spec);
			rc = veld_git__fail(err, grc, 0, "list the refs of %s", url);
			break;
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
				if (nups == cap) {
					ref_update *more = realloc(ups, (cap ? 2 * cap : 16) * sizeof *ups);
					if (!more)
						rc = veld_err__oom(err);
					else
						ups = more, cap = cap ? 2 * cap : 16;
				}
				if (rc == 0 && !(ups[nups].name = strdup(dst.ptr)))
					rc = veld_err__oom(err);
				if (rc == 0) {
					git_oid_cpy(&ups[nups++].id, &want);
					if (!has || !git_oid_equal(&have, &want))
						rc = move_commits(&m, &want, has ? &have : NULL);
				}
			}
			git_buf_dispose(&dst);
			git_reference_free(ref);
		}
		if (rc == 0 && grc != GIT_ITEROVER)
			rc = veld_git__fail(err, grc, 0, "list the refs of %s", url);
		git_reference_iterator_free(it);
		git_refspec_free(spec);
	}
	if (rc == 0 && opts && opts->progress)
		opts->progress("receiving objects", veld_pack__count(m.pack), veld_pack__count(m.pack), opts->payload);
	if (rc == 0 && (rc = move_write(&m)) == 0) {
		git_odb *odb = NULL;
		if (git_repository_odb(&odb, r->git) == 0)
			git_odb_refresh(odb);
		git_odb_free(odb);
	}
	/* the copies, then the pruning */
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
done:
	move_close(&m);
	updates_free(ups, nups);
	return rc;
}

/* Push to a hub on a path: for each refspec the hub's ref is read, the
** update checked (a fast-forward unless forced), the new objects written
** as one pack, and only then every ref moved with a compare-and-swap
** against the value read: a ref that moved meanwhile is refused. */
static int push_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err)
{
	git_repository *hub = NULL;
	moveset m;
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
	if ((rc = move_open(&m, r->git, hub, err)))
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
				rc = move_commits(&m, &want, had[nups] ? &olds[nups] : NULL);
				nups++;
			}
		}
		git_refspec_free(spec);
	}
	if (rc == 0 && opts && opts->progress)
		opts->progress("sending objects", veld_pack__count(m.pack), veld_pack__count(m.pack), opts->payload);
	if (rc == 0)
		rc = move_write(&m);
	for (i = 0; i < nups && rc == 0; i++) {
		git_reference *ref = NULL;
		grc = had[i] ? git_reference_create_matching(&ref, hub, ups[i].name, &ups[i].id, 1, &olds[i], "push")
		             : git_reference_create(&ref, hub, ups[i].name, &ups[i].id, 0, "push");
		if (grc == GIT_EMODIFIED || grc == GIT_EEXISTS)
			rc = veld_git__fail(err, grc, VELD_EDENIED, "push of %s to %s refused: the ref moved meanwhile", ups[i].name,
			              url);
		else if (grc == GIT_ELOCKED)
			rc = veld_git__fail(err, grc, VELD_EDENIED, "push of %s to %s refused by the server", ups[i].name, url);
		else if (grc < 0)
			rc = veld_git__fail(err, grc, 0, "push of %s to %s", ups[i].name, url);
		git_reference_free(ref);
	}
	move_close(&m);
done:
	updates_free(ups, nups);
	free(olds);
	free(had);
	return rc;
}

/* ---- a push over smart HTTP: our pack, http.c's exchange ------------------
**
** The same objects a push to a path sends, found the same way, except that
** the hub's object store cannot be asked: the commits to send are those of
** the new head that no advertised head reaches (a walk over commits only),
** and a tree entry is left out when a parent's tree or the hub's current
** value of the ref holds it as it is.  Packed in memory and sent with the
** ref updates (docs/sync.md, "Hubs"). */

typedef struct advert {
	strlist names;
	git_oid *ids;
	size_t idcap;
} advert;

static int advert_add(const char *name, const char *hex, void *payload)
{
	advert *a = payload;
	git_oid id;
	if (git_oid_fromstr(&id, hex) < 0 || strlist_add(&a->names, name))
		return -1;
	if (a->idcap < a->names.cap) {
		git_oid *ni = realloc(a->ids, a->names.cap * sizeof *ni);
		if (!ni)
			return -1;
		a->ids = ni;
		a->idcap = a->names.cap;
	}
	git_oid_cpy(&a->ids[a->names.n - 1], &id);
	return 0;
}

static void advert_free(advert *a)
{
	strlist_free(&a->names);
	free(a->ids);
}

static int push_http(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err)
{
	veld_http *h = NULL;
	advert adv;
	moveset m;
	veld_http_update *ups = NULL;
	char **names = NULL;
	git_odb *odb = NULL;
	unsigned char *pack = NULL;
	size_t nups = 0, i, k, plen = 0;
	int rc, grc;
	memset(&adv, 0, sizeof adv);
	memset(&m, 0, sizeof m);
	if ((rc = veld_http__open(&h, url, opts, err)))
		return rc;
	if ((rc = veld_http__refs(h, advert_add, &adv, err))) {
		if (rc == VELD_ERROR && !err->msg[0])
			rc = veld_err__oom(err);
		goto done;
	}
	ups = calloc(n ? n : 1, sizeof *ups);
	names = calloc(n ? n : 1, sizeof *names);
	if (!ups || !names) {
		rc = veld_err__oom(err);
		goto done;
	}
	if ((rc = move_open(&m, r->git, NULL, err)) || (grc = git_repository_odb(&odb, r->git)) < 0) {
		rc = rc ? rc : veld_git__fail(err, grc, 0, "open an object database");
		goto done;
	}
	for (k = 0; k < n && rc == 0; k++) {
		git_refspec *spec = NULL;
		git_oid want, old;
		int had = 0;
		if ((grc = git_refspec_parse(&spec, refspecs[k], 0)) < 0) {
			rc = veld_git__fail(err, grc, VELD_EINVALID, "refspec %s", refspecs[k]);
			break;
		}
		if ((grc = git_reference_name_to_id(&want, r->git, git_refspec_src(spec))) < 0) {
			rc = veld_git__fail(err, grc, 0, "read %s", git_refspec_src(spec));
			git_refspec_free(spec);
			break;
		}
		memset(&old, 0, sizeof old);
		for (i = 0; i < adv.names.n && !had; i++)
			if (!strcmp(adv.names.v[i], git_refspec_dst(spec))) {
				git_oid_cpy(&old, &adv.ids[i]);
				had = 1;
			}
		if (had && git_oid_equal(&old, &want)) {
			git_refspec_free(spec);
			continue;
		}
		if (had && !git_refspec_force(spec) &&
		    (!git_odb_exists(odb, &old) || git_graph_descendant_of(r->git, &want, &old) != 1)) {
			git_error_clear();
			rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused: not a fast-forward",
			                   git_refspec_dst(spec), url);
			git_refspec_free(spec);
			break;
		}
		if (!(names[nups] = strdup(git_refspec_dst(spec)))) {
			rc = veld_err__oom(err);
			git_refspec_free(spec);
			break;
		}
		ups[nups].name = names[nups];
		git_oid_tostr(ups[nups].old_hex, sizeof ups[nups].old_hex, &old);
		git_oid_tostr(ups[nups].new_hex, sizeof ups[nups].new_hex, &want);
		nups++;
		git_refspec_free(spec);
		{
			/* the new commits: reachable from want, from no advertised head */
			git_revwalk *w = NULL;
			git_tree *oldtree = had ? commit_base(&m, &old) : NULL;
			git_oid id, parents[MOVE_BASES];
			size_t np;
			if ((grc = git_revwalk_new(&w, r->git)) < 0 || (grc = git_revwalk_push(w, &want)) < 0) {
				rc = veld_git__fail(err, grc, 0, "walk %s", ups[nups - 1].name);
			} else {
				for (i = 0; i < adv.names.n; i++)
					if (git_odb_exists(odb, &adv.ids[i]))
						git_revwalk_hide(w, &adv.ids[i]);
				git_error_clear();
				while (rc == 0 && (grc = git_revwalk_next(&id, w)) == 0)
					rc = move_commit(&m, &id, oldtree, parents, &np);
				if (rc == 0 && grc != GIT_ITEROVER)
					rc = veld_git__fail(err, grc, 0, "walk %s", ups[nups - 1].name);
			}
			git_tree_free(oldtree);
			git_revwalk_free(w);
		}
	}
	if (rc || nups == 0)
		goto done;
	if (opts && opts->progress)
		opts->progress("sending objects", veld_pack__count(m.pack), veld_pack__count(m.pack), opts->payload);
	if ((rc = veld_pack__write(&pack, &plen, m.pack, err)))
		goto done;
	rc = veld_http__push(h, ups, nups, pack, plen, err);
done:
	free(pack);
	git_odb_free(odb);
	move_close(&m);
	for (i = 0; names && i < nups; i++)
		free(names[i]);
	free(names);
	free(ups);
	advert_free(&adv);
	veld_http__free(h);
	return rc;
}

int veld_repo__fetch(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	git_strarray specs;
	xfer x;
	int rc, grc;

	if (is_path_hub(url) && n)
		return fetch_path(r, url, refspecs, n, opts, err);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &fo.callbacks, err)) < 0)
		goto done;
	if (!n) {
		rc = veld_err__set(err, VELD_EINVALID, "fetch from %s: no refspecs", x.url);
		goto done;
	}
	fo.callbacks.transfer_progress = fetch_progress_cb;
	/* Refs gone from the hub go from our copy of it too (refs/veld-hub/),
	** so a forged ref that was removed stops being rejected forever. */
	fo.prune = GIT_FETCH_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	specs.strings = (char **)refspecs;
	specs.count = n;
	if ((grc = git_remote_fetch(remote, &specs, &fo, NULL)) < 0) {
		rc = xfer_fail(err, &x, grc, "fetch from");
		goto done;
	}
done:
	git_remote_free(remote);
	return rc;
}

int veld_repo__ls_remote(veld_repo *r, const char *url, const veld_remote_opts *opts, veld_ref_cb cb,
                         void *payload, veld_err *err)
{
	git_remote_callbacks cbs;
	git_remote *remote = NULL;
	const git_remote_head **heads = NULL;
	size_t nh = 0, i;
	xfer x;
	int rc, grc;

	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &cbs, err)) < 0)
		goto done;
	if ((grc = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cbs, NULL, NULL)) < 0 ||
	    (grc = git_remote_ls(&heads, &nh, remote)) < 0) {
		rc = xfer_fail(err, &x, grc, "list refs of");
		goto done;
	}
	for (i = 0; i < nh; i++)
		if ((rc = cb(heads[i]->name, &heads[i]->oid, payload)) != 0)
			break;
done:
	if (remote)
		git_remote_disconnect(remote);
	git_remote_free(remote);
	return rc;
}

/* After GIT_ENONFASTFORWARD: name the first refspec whose remote side is not
** an ancestor of what we push. */
static void name_nonff(char *ref, size_t cap, veld_repo *r, git_remote *remote, const char *const *refspecs, size_t n)
{
	const git_remote_head **heads = NULL;
	size_t nh = 0, i, j;
	ref[0] = '\0';
	if (git_remote_ls(&heads, &nh, remote) < 0) {
		git_error_clear();
		return;
	}
	for (i = 0; i < n && !ref[0]; i++) {
		const char *spec = refspecs[i], *colon, *src, *dst;
		char srcname[256];
		git_oid local;
		if (spec[0] == '+')
			continue;
		colon = strchr(spec, ':');
		src = spec;
		dst = colon ? colon + 1 : spec;
		snprintf(srcname, sizeof srcname, "%.*s", colon ? (int)(colon - src) : (int)strlen(src), src);
		if (git_reference_name_to_id(&local, r->git, srcname) < 0) {
			git_error_clear();
			continue;
		}
		for (j = 0; j < nh; j++) {
			if (strcmp(heads[j]->name, dst) != 0)
				continue;
			if (!git_oid_equal(&heads[j]->oid, &local) &&
			    git_graph_descendant_of(r->git, &local, &heads[j]->oid) != 1)
				snprintf(ref, cap, "%s", dst);
			git_error_clear();
		}
	}
}

int veld_repo__push(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                    const veld_remote_opts *opts, veld_err *err)
{
	git_push_options po;
	git_remote *remote = NULL;
	git_strarray specs;
	xfer x;
	int rc, grc;

	if (is_path_hub(url) && n)
		return push_path(r, url, refspecs, n, opts, err);
	if (url && n && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)))
		return push_http(r, url, refspecs, n, opts, err);
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &po.callbacks, err)) < 0)
		goto done;
	if (!n) {
		rc = veld_err__set(err, VELD_EINVALID, "push to %s: no refspecs", x.url);
		goto done;
	}
	po.callbacks.push_transfer_progress = push_progress_cb;
	po.callbacks.push_update_reference = push_ref_cb;
	po.callbacks.sideband_progress = sideband_cb;
	specs.strings = (char **)refspecs;
	specs.count = n;
	grc = git_remote_push(remote, &specs, &po);
	if (grc == GIT_ENONFASTFORWARD) {
		char ref[256];
		const git_error *e = git_error_last();
		char why[256];
		snprintf(why, sizeof why, "%s", e && e->message ? e->message : "not a fast-forward");
		name_nonff(ref, sizeof ref, r, remote, refspecs, n);
		rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused: %s", ref[0] ? ref : "a ref", x.url, why);
		goto done;
	}
	if (grc < 0) {
		rc = xfer_fail(err, &x, grc, "push to");
		goto done;
	}
	if (x.n_refused) {
		char why[300], more[48] = "";
		veld_repo__remote_reason(why, sizeof why, x.remote_text, x.refused_ref);
		if (x.n_refused > 1)
			snprintf(more, sizeof more, " (and %d more refs)", x.n_refused - 1);
		rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused by the server: %s%s%s%s%s", x.refused_ref,
		                   x.url, x.refused_msg, why[0] ? " (" : "", why, why[0] ? ")" : "", more);
		goto done;
	}
done:
	git_remote_free(remote);
	return rc;
}

/* ---- maintenance: repack and prune -------------------------------------- */

/* Loose objects under objects/: their 40-hex ids. */
static int list_loose(strlist *out, const char *objdir, veld_err *err)
{
	char sub[PATHBUF], id[GIT_OID_HEXSZ + 1];
	int i;
	for (i = 0; i < 256; i++) {
		DIR *d;
		struct dirent *de;
		snprintf(sub, sizeof sub, "%s/%02x", objdir, i);
		if (!(d = opendir(sub))) {
			if (errno == ENOENT)
				continue;
			return veld_err__set(err, VELD_ERROR, "maintain: cannot read %s: %s", sub, strerror(errno));
		}
		while ((de = readdir(d)) != NULL) {
			if (strlen(de->d_name) != GIT_OID_HEXSZ - 2 || !veld_hex__is(de->d_name, GIT_OID_HEXSZ - 2))
				continue;
			snprintf(id, sizeof id, "%02x%s", i, de->d_name);
			if (strlist_add(out, id) < 0) {
				closedir(d);
				return veld_err__oom(err);
			}
		}
		closedir(d);
	}
	return 0;
}

/* Packs under objects/pack: their names "pack-<hex>" (from the .idx). */
static int list_packs(strlist *out, const char *packdir, veld_err *err)
{
	DIR *d = opendir(packdir);
	struct dirent *de;
	int rc = 0;
	if (!d)
		return errno == ENOENT ? 0
		                       : veld_err__set(err, VELD_ERROR, "maintain: cannot read %s: %s", packdir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char name[256];
		if (len < 9 || strncmp(de->d_name, "pack-", 5) != 0 || strcmp(de->d_name + len - 4, ".idx") != 0 ||
		    len - 4 >= sizeof name)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(len - 4), de->d_name);
		if (strlist_add(out, name) < 0) {
			rc = veld_err__oom(err);
			break;
		}
	}
	closedir(d);
	return rc;
}

static int fsync_path(const char *path, int is_dir)
{
	int fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
	int rc;
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* An odb holding one pack only, for membership tests. */
static int open_one_pack(git_odb **out, const char *packdir, const char *name, veld_err *err)
{
	git_odb_backend *be = NULL;
	char idx[PATHBUF];
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

/* 1 if the file at `path` was last modified at least `age_s` seconds ago
** (age_s 0: always); 0 otherwise or if it cannot be read. */
static int old_enough(const char *path, int age_s, time_t now)
{
	struct stat st;
	if (age_s <= 0)
		return 1;
	if (stat(path, &st) != 0)
		return 0;
	return st.st_mtime <= now - age_s;
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

static int unlink_pack(const char *packdir, const char *name)
{
	/* The .idx first: readers find packs by their index. */
	static const char *const ext[] = {".idx", ".pack", ".rev", ".bitmap", ".mtimes", ".promisor"};
	char p[PATHBUF];
	size_t i;
	int rc = 0;
	for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		snprintf(p, sizeof p, "%s/%s%s", packdir, name, ext[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			rc = -1;
	}
	return rc;
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
	git_packbuilder *pb = NULL;
	git_odb *fresh = NULL;
	git_repository *reopened = NULL;
	git_buf objbuf = {0};
	strlist loose = {0}, packs = {0};
	char objdir[PATH_MAX], packdir[PATH_MAX], p[PATHBUF];
	char newpack[128] = "";
	int prune = prune_age_s >= 0;
	time_t now = time(NULL);
	size_t i, len;
	int rc = veld_repo__flush(r, err), grc;
	if (rc)
		return rc;

	if ((grc = git_repository_item_path(&objbuf, r->git, GIT_REPOSITORY_ITEM_OBJECTS)) < 0) {
		rc = veld_git__fail(err, grc, 0, "maintain: no objects directory");
		goto done;
	}
	len = objbuf.size;
	if (len && objbuf.ptr[len - 1] == '/')
		len--;
	if (len + sizeof "/pack/" + 64 >= sizeof objdir) {
		rc = veld_err__set(err, VELD_EINVALID, "maintain: repository path too long");
		goto done;
	}
	memcpy(objdir, objbuf.ptr, len);
	objdir[len] = '\0';
	memcpy(packdir, objdir, len);
	memcpy(packdir + len, "/pack", sizeof "/pack");

	/* 1. */
	if ((rc = list_loose(&loose, objdir, err)) < 0 || (rc = list_packs(&packs, packdir, err)) < 0)
		goto done;

	/* 2. */
	if ((grc = git_packbuilder_new(&pb, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "maintain: cannot start a pack");
		goto done;
	}
	if ((rc = insert_reachable(pb, r, err)) < 0)
		goto done;

	/* 3. */
	if (git_packbuilder_object_count(pb) > 0) {
		const char *name;
		if ((grc = git_packbuilder_write(pb, packdir, 0, NULL, NULL)) < 0) {
			rc = veld_git__fail(err, grc, 0, "maintain: cannot write the pack");
			goto done;
		}
		name = git_packbuilder_name(pb);
		if (!name) {
			rc = veld_err__set(err, VELD_ERROR, "maintain: the new pack has no name");
			goto done;
		}
		snprintf(newpack, sizeof newpack, "pack-%s", name);
		snprintf(p, sizeof p, "%s/%s.pack", packdir, newpack);
		if (fsync_path(p, 0) != 0) {
			rc = veld_err__set(err, VELD_ERROR, "maintain: cannot fsync %s: %s", p, strerror(errno));
			goto done;
		}
		snprintf(p, sizeof p, "%s/%s.idx", packdir, newpack);
		if (fsync_path(p, 0) != 0 || fsync_path(packdir, 1) != 0) {
			rc = veld_err__set(err, VELD_ERROR, "maintain: cannot fsync the new pack: %s", strerror(errno));
			goto done;
		}
		if ((rc = open_one_pack(&fresh, packdir, newpack, err)) < 0)
			goto done;
	}

	/* 4. */
	for (i = 0; i < loose.n; i++) {
		git_oid id;
		int keep;
		snprintf(p, sizeof p, "%s/%.2s/%s", objdir, loose.v[i], loose.v[i] + 2);
		if (git_oid_fromstr(&id, loose.v[i]) < 0) {
			git_error_clear();
			continue;
		}
		if (fresh && git_odb_exists(fresh, &id))
			keep = 0;
		else
			keep = !(prune && old_enough(p, prune_age_s, now));
		if (!keep && unlink(p) != 0 && errno != ENOENT) {
			rc = veld_err__set(err, VELD_ERROR, "maintain: cannot remove %s: %s", p, strerror(errno));
			goto done;
		}
	}
	for (i = 0; i < 256; i++) {
		snprintf(p, sizeof p, "%s/%02x", objdir, (unsigned)i);
		(void)rmdir(p); /* only succeeds when empty */
	}

	/* 5. */
	for (i = 0; i < packs.n; i++) {
		git_odb *old = NULL;
		pack_check pc;
		if (newpack[0] && strcmp(packs.v[i], newpack) == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s.keep", packdir, packs.v[i]);
		if (access(p, F_OK) == 0)
			continue;
		if ((rc = open_one_pack(&old, packdir, packs.v[i], err)) < 0)
			goto done;
		pc.fresh = fresh;
		pc.missing = 0;
		grc = git_odb_foreach(old, pack_check_cb, &pc);
		git_odb_free(old);
		if (grc < 0) {
			rc = veld_git__fail(err, grc, 0, "maintain: cannot read pack %s", packs.v[i]);
			goto done;
		}
		snprintf(p, sizeof p, "%s/%s.pack", packdir, packs.v[i]);
		if (pc.missing && !(prune && old_enough(p, prune_age_s, now)))
			continue;
		if (unlink_pack(packdir, packs.v[i]) != 0) {
			rc = veld_err__set(err, VELD_ERROR, "maintain: cannot remove pack %s: %s", packs.v[i], strerror(errno));
			goto done;
		}
	}
	if (fsync_path(packdir, 1) != 0 && errno != ENOENT) {
		rc = veld_err__set(err, VELD_ERROR, "maintain: cannot fsync %s: %s", packdir, strerror(errno));
		goto done;
	}

	/* 6. */
	if ((grc = git_repository_open_bare(&reopened, r->path)) < 0) {
		rc = veld_git__fail(err, grc, 0, "maintain: cannot reopen %s", r->path);
		goto done;
	}
	git_repository_free(r->git); /* its batch (flushed, empty) with it */
	r->git = reopened;
	r->batch = NULL;
	rc = batch_attach(r, err);
done:
	git_odb_free(fresh);
	git_packbuilder_free(pb);
	git_buf_dispose(&objbuf);
	strlist_free(&loose);
	strlist_free(&packs);
	return rc;
}

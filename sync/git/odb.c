/*
** odb.c — new objects held in memory and written as one pack (libgit2's
** odb_mempack.c, with a flush).
**
** A sync writes some sixty objects (the changed records' blobs, the trees on
** their paths, a commit).  As loose objects that is sixty files, directory
** entries and fsyncs.  Instead they go to an object backend of ours in
** front of the repository's own: a table in memory that serves them back to
** every reader, and that veld_repo__flush writes as one pack (pack.c's
** writer, whole objects, indexed by libgit2's indexer: veld_git__pack_store)
** when a ref is about to name them.  Until then a crash loses only objects
** nothing refers to.
**
** What it owns: the batch (an open-addressing table of objects), which the
** repository's object database owns once attached and frees with it.
** veld_git__pack_store is here too because a move from or to a hub on a
** path (pathhub.c) writes its pack the same way.
** What it must not do: decide when to flush (refs.c, maintain.c and
** repo.c's free do) or touch files other than through libgit2.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdlib.h>
#include <string.h>

#include <git2/sys/odb_backend.h>

typedef struct batch_obj {
	git_oid id;
	git_object_t type;
	size_t len;
	unsigned char *data; /* len bytes and a NUL, as libgit2's own backends give */
} batch_obj;

struct veld_git_batch {
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

static batch_obj *batch_find(veld_git_batch *b, const git_oid *id)
{
	size_t i;
	if (!b->nslot)
		return NULL;
	for (i = batch_hash(id) & (b->nslot - 1); b->slot[i]; i = (i + 1) & (b->nslot - 1))
		if (git_oid_equal(&b->v[b->slot[i] - 1].id, id))
			return &b->v[b->slot[i] - 1];
	return NULL;
}

static int batch_grow(veld_git_batch *b)
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
	batch_obj *o = batch_find((veld_git_batch *)be, id);
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
	batch_obj *o = batch_find((veld_git_batch *)be, id);
	if (!o)
		return GIT_ENOTFOUND;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int batch_exists(git_odb_backend *be, const git_oid *id)
{
	return batch_find((veld_git_batch *)be, id) != NULL;
}

static int batch_write(git_odb_backend *be, const git_oid *id, const void *data, size_t len, git_object_t type)
{
	veld_git_batch *b = (veld_git_batch *)be;
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
	veld_git_batch *b = (veld_git_batch *)be;
	size_t i;
	int rc;
	for (i = 0; i < b->n; i++)
		if ((rc = cb(&b->v[i].id, payload)) != 0)
			return rc;
	return 0;
}

static void batch_clear(veld_git_batch *b)
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
	veld_git_batch *b = (veld_git_batch *)be;
	batch_clear(b);
	free(b->v);
	free(b->slot);
	free(b);
}

/* Put a batch in front of r's object database (which then owns it). */
int veld_git__batch_attach(veld_repo *r, veld_err *err)
{
	git_odb *odb = NULL;
	veld_git_batch *b = calloc(1, sizeof *b);
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

/* The pack is written whole (no base is given to a local pack) with its
** index by libgit2's indexer, which fsyncs what it writes when
** GIT_OPT_ENABLE_FSYNC_GITDIR is on.  Not libgit2's packbuilder: it searches
** deltas among every pair of a window of the objects, which for a sync's
** sealed blobs and differently named trees finds nothing and costs most
** of the write (docs/benchmarks.md). */
int veld_git__pack_store(git_repository *dst, veld_pack *p, veld_err *err)
{
	git_indexer_options io;
	index_sink k;
	git_odb *odb = NULL;
	char dir[VELD_GIT_PATHBUF];
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
		rc = veld_git__pack_store(r->git, p, err);
	veld_pack__free(p);
	if (rc)
		return rc;
	batch_clear(r->batch);
	return 0;
}

/*
** pack.c — the packs sync writes: the thin one a push over HTTP sends, with
** trees as deltas, and the whole-object packs that odb.c indexes into a
** repository (a sync's new objects, objects moved to or from a hub on a
** path), where a tree is given no base.
**
** A changed record rewrites every tree on its path, and each of those trees
** differs from the tree the hub already has at the same path by one entry
** or a few.  Sent whole, those trees cost more than the records themselves
** (docs/benchmarks.md); sent as a delta against the hub's tree, an entry
** costs its 20-byte id and a few bytes of copy instructions.  libgit2's
** packbuilder deltifies only against objects inside the pack it writes
** (no "thin" packs), so this file writes the pack itself, in git's pack
** format version 2 (gitformat-pack(5)):
**
**   "PACK" | version 2 (be32) | object count (be32)
**   per object: type and size (git's varint), then
**     a whole object: its zlib-compressed content;
**     a tree delta (OBJ_REF_DELTA, type 7): the base's 20-byte id, then the
**     zlib-compressed delta: base size, result size (little-endian base-128),
**     then copy (0x80 | which offset and size bytes follow) and insert
**     (1..127 literal bytes) instructions;
**   the SHA-1 of everything before it.
**
** The base of a tree is a tree the caller names: one at the same path in
** a parent commit or in what the hub holds for the ref.  A base that is
** itself in the pack is not used, so every base is one the hub has, and
** receive-pack completes the "thin" pack with it (index-pack --fix-thin).
** The delta is computed entry by entry (both trees are sorted the same
** way): a run of entries the base holds byte for byte becomes one copy;
** an entry whose mode and name the base holds with another id copies
** those and inserts the 20-byte id; every other entry is inserted.  It is
** only ever a shorter way to write the same bytes: a delta that, with the
** base's 20-byte id it carries, is no shorter than the tree is not used.
**
** Blobs are sealed records (random-looking bytes) and commits are small,
** so both go whole.  A pack written to disk (a sync's new objects, a move
** to or from a hub on a path) is not compressed: its objects are zlib
** streams of stored blocks (level 0), because a sealed record does not
** compress at all and a tree is mostly 20-byte ids, while deflating and
** then inflating the trees on a changed record's path, pack after pack,
** was the largest part of what a sync's cost grew by with the hub
** (docs/benchmarks.md).  The periodic repack (libgit2's packbuilder)
** compresses what is kept.  A pack that goes over the wire is deflated at
** zlib's default level.  The pack's trailing checksum is git's format, not
** veld's cryptography (which is libsodium's alone): it is SHA-1 from
** mbedTLS, the library libgit2 itself links for its hashes and TLS.
*/
#include <stdlib.h>
#include <string.h>

#include <git2.h>
#include <mbedtls/sha1.h>
#include <zlib.h>

#include "git.h"

typedef struct pack_obj {
	git_oid id;
	git_oid base;
	int has_base;
} pack_obj;

struct veld_pack {
	git_odb *odb;
	pack_obj *v;
	size_t n, cap;
	int level; /* zlib's compression level */
};

static int put_byte(veld_buf *b, unsigned c)
{
	unsigned char x = (unsigned char)c;
	return veld_buf__add(b, &x, 1);
}

int veld_pack__new(veld_pack **out, git_repository *repo, veld_err *err)
{
	veld_pack *p = calloc(1, sizeof *p);
	int grc;
	*out = NULL;
	if (!p)
		return veld_err__oom(err);
	if ((grc = git_repository_odb(&p->odb, repo)) < 0) {
		free(p);
		return veld_git__fail(err, grc, 0, "open an object database");
	}
	p->level = Z_NO_COMPRESSION;
	*out = p;
	return 0;
}

void veld_pack__for_the_wire(veld_pack *p)
{
	p->level = Z_DEFAULT_COMPRESSION;
}

void veld_pack__free(veld_pack *p)
{
	if (!p)
		return;
	git_odb_free(p->odb);
	free(p->v);
	free(p);
}

size_t veld_pack__count(const veld_pack *p)
{
	return p->n;
}

int veld_pack__add(veld_pack *p, const git_oid *id, const git_oid *base, veld_err *err)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		pack_obj *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return veld_err__oom(err);
		p->v = v;
		p->cap = cap;
	}
	git_oid_cpy(&p->v[p->n].id, id);
	p->v[p->n].has_base = base != NULL;
	if (base)
		git_oid_cpy(&p->v[p->n].base, base);
	else
		memset(&p->v[p->n].base, 0, sizeof p->v[p->n].base);
	p->n++;
	return 0;
}

/* ---- tree deltas --------------------------------------------------------- */

typedef struct tree_entry {
	size_t off, len;  /* the whole entry: "<mode> <name>\0<20-byte id>" */
	size_t name, nlen;
	int is_tree;
} tree_entry;

/* The entries of a raw tree; -1 if it does not parse. */
static int tree_parse(tree_entry **out, size_t *n, const unsigned char *d, size_t len)
{
	size_t at = 0, cap = 16;
	tree_entry *v = malloc(cap * sizeof *v);
	*out = NULL;
	*n = 0;
	if (!v)
		return -1;
	while (at < len) {
		const unsigned char *sp = memchr(d + at, ' ', len - at), *nul;
		if (!sp || !(nul = memchr(sp, '\0', len - (size_t)(sp - d))) || (size_t)(nul - d) + 1 + GIT_OID_RAWSZ > len) {
			free(v);
			return -1;
		}
		if (*n == cap) {
			tree_entry *w = realloc(v, 2 * cap * sizeof *v);
			if (!w) {
				free(v);
				return -1;
			}
			v = w;
			cap *= 2;
		}
		v[*n].off = at;
		v[*n].name = (size_t)(sp - d) + 1;
		v[*n].nlen = (size_t)(nul - sp) - 1;
		v[*n].is_tree = (size_t)(sp - d) - at == 5 && !memcmp(d + at, "40000", 5);
		at = (size_t)(nul - d) + 1 + GIT_OID_RAWSZ;
		v[*n].len = at - v[*n].off;
		(*n)++;
	}
	*out = v;
	return 0;
}

/* git's tree order: names compared bytewise, a tree's as if it ended in '/'. */
static int entry_cmp(const unsigned char *a, const tree_entry *x, const unsigned char *b, const tree_entry *y)
{
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int c = memcmp(a + x->name, b + y->name, n);
	unsigned ca, cb;
	if (c)
		return c;
	ca = x->nlen > n ? a[x->name + n] : (x->is_tree ? '/' : 0);
	cb = y->nlen > n ? b[y->name + n] : (y->is_tree ? '/' : 0);
	return (int)ca - (int)cb;
}

static int put_size(veld_buf *b, size_t v)
{
	do {
		unsigned c = v & 0x7f;
		v >>= 7;
		if (put_byte(b, c | (v ? 0x80 : 0)))
			return -1;
	} while (v);
	return 0;
}

/* Copy [off, off+len) of the base; git's decoder takes at most 0x10000 a copy
** as written here (a size of zero means 0x10000). */
static int put_copy(veld_buf *b, size_t off, size_t len)
{
	while (len) {
		size_t n = len > 0x10000 ? 0x10000 : len;
		unsigned char op[8];
		size_t k = 1, i;
		op[0] = 0x80;
		for (i = 0; i < 4; i++)
			if ((off >> (8 * i)) & 0xff) {
				op[k++] = (unsigned char)(off >> (8 * i));
				op[0] |= (unsigned char)(1u << i);
			}
		if (n != 0x10000)
			for (i = 0; i < 2; i++)
				if ((n >> (8 * i)) & 0xff) {
					op[k++] = (unsigned char)(n >> (8 * i));
					op[0] |= (unsigned char)(0x10u << i);
				}
		if (veld_buf__add(b, op, k))
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static int put_insert(veld_buf *b, const unsigned char *p, size_t len)
{
	while (len) {
		size_t n = len > 127 ? 127 : len;
		if (put_byte(b, (unsigned)n) || veld_buf__add(b, p, n))
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* A delta being written: the pending copy (from the base) and insert (from
** the target) runs, each extended while the next piece is contiguous. */
typedef struct delta_run {
	veld_buf *out;
	const unsigned char *t;
	size_t copy_off, copy_len, ins_off, ins_len;
	int rc;
} delta_run;

static void flush_copy(delta_run *d)
{
	if (d->copy_len && put_copy(d->out, d->copy_off, d->copy_len))
		d->rc = -1;
	d->copy_len = 0;
}

static void flush_insert(delta_run *d)
{
	if (d->ins_len && put_insert(d->out, d->t + d->ins_off, d->ins_len))
		d->rc = -1;
	d->ins_len = 0;
}

static void run_copy(delta_run *d, size_t off, size_t len)
{
	flush_insert(d);
	if (d->copy_len && d->copy_off + d->copy_len != off)
		flush_copy(d);
	if (!d->copy_len)
		d->copy_off = off;
	d->copy_len += len;
}

static void run_insert(delta_run *d, size_t off, size_t len)
{
	flush_copy(d);
	if (d->ins_len && d->ins_off + d->ins_len != off)
		flush_insert(d);
	if (!d->ins_len)
		d->ins_off = off;
	d->ins_len += len;
}

/* The delta that makes tree `t` from tree `base`; 1 if the trees do not
** parse (no delta then), -1 out of memory. */
static int tree_delta(veld_buf *out, const unsigned char *base, size_t blen, const unsigned char *t, size_t tlen)
{
	tree_entry *be = NULL, *te = NULL;
	size_t nb, nt, i = 0, j;
	delta_run d = {out, t, 0, 0, 0, 0, 0};
	if (tree_parse(&be, &nb, base, blen) || tree_parse(&te, &nt, t, tlen)) {
		free(be);
		return 1;
	}
	if (put_size(out, blen) || put_size(out, tlen))
		d.rc = -1;
	for (j = 0; j < nt && d.rc == 0; j++) {
		while (i < nb && entry_cmp(base, &be[i], t, &te[j]) < 0)
			i++;
		if (i < nb && be[i].len == te[j].len && !memcmp(base + be[i].off, t + te[j].off, te[j].len)) {
			run_copy(&d, be[i].off, be[i].len);
			i++;
		} else if (i < nb && be[i].len == te[j].len &&
		           !memcmp(base + be[i].off, t + te[j].off, te[j].len - GIT_OID_RAWSZ)) {
			/* the same mode and name, another id: copy all but the id */
			run_copy(&d, be[i].off, be[i].len - GIT_OID_RAWSZ);
			run_insert(&d, te[j].off + te[j].len - GIT_OID_RAWSZ, GIT_OID_RAWSZ);
			i++;
		} else {
			run_insert(&d, te[j].off, te[j].len);
		}
	}
	flush_copy(&d);
	flush_insert(&d);
	free(be);
	free(te);
	return d.rc;
}

/* ---- the pack ------------------------------------------------------------ */

static int put_header(veld_buf *b, unsigned type, size_t size)
{
	unsigned c = (type << 4) | (unsigned)(size & 15);
	size >>= 4;
	while (size) {
		if (put_byte(b, c | 0x80))
			return -1;
		c = size & 0x7f;
		size >>= 7;
	}
	return put_byte(b, c);
}

static int put_deflated(veld_buf *b, const void *p, size_t n, int level)
{
	uLongf zl = compressBound((uLong)n);
	if (veld_buf__room(b, zl))
		return -1;
	if (compress2(b->p + b->n, &zl, p, (uLong)n, level) != Z_OK)
		return -1;
	b->n += zl;
	return 0;
}

static int oid_cmp(const void *a, const void *b)
{
	return git_oid_cmp(&((const pack_obj *)a)->id, &((const pack_obj *)b)->id);
}


/* One object: whole, or as a delta against its base when that is shorter. */
static int write_object(veld_buf *b, veld_buf *delta, veld_pack *p, const pack_obj *o, veld_err *err)
{
	git_odb_object *obj = NULL, *base = NULL;
	const unsigned char *data;
	size_t len;
	int rc = 0, d = 1, grc;
	if ((grc = git_odb_read(&obj, p->odb, &o->id)) < 0)
		return veld_git__fail(err, grc, 0, "read object %s", git_oid_tostr_s(&o->id));
	data = git_odb_object_data(obj);
	len = git_odb_object_size(obj);
	if (o->has_base && git_odb_object_type(obj) == GIT_OBJECT_TREE) {
		if ((grc = git_odb_read(&base, p->odb, &o->base)) < 0) {
			git_odb_object_free(obj);
			return veld_git__fail(err, grc, 0, "read object %s", git_oid_tostr_s(&o->base));
		}
		delta->n = 0;
		if (git_odb_object_type(base) == GIT_OBJECT_TREE)
			d = tree_delta(delta, git_odb_object_data(base), git_odb_object_size(base), data, len);
		if (d == 0 && delta->n + GIT_OID_RAWSZ >= len)
			d = 1; /* the base's id makes it no shorter */
	}
	if (d < 0)
		rc = veld_err__oom(err);
	else if (d == 0)
		rc = put_header(b, 7, delta->n) || veld_buf__add(b, o->base.id, GIT_OID_RAWSZ) ||
		             put_deflated(b, delta->p, delta->n, p->level)
		         ? veld_err__oom(err) : 0;
	else
		rc = put_header(b, (unsigned)git_odb_object_type(obj), len) || put_deflated(b, data, len, p->level)
		         ? veld_err__oom(err) : 0;
	git_odb_object_free(base);
	git_odb_object_free(obj);
	return rc;
}

/* A chunk of the pack: into the checksum, then to the caller. */
static int emit(mbedtls_sha1_context *sha, const void *buf, size_t len, veld_pack_write_cb cb, void *payload,
                veld_err *err)
{
	if (mbedtls_sha1_update_ret(sha, buf, len))
		return veld_err__set(err, VELD_ERROR, "checksum a pack");
	return cb(buf, len, payload, err);
}

int veld_pack__stream(veld_pack *p, veld_pack_write_cb cb, void *payload, veld_err *err)
{
	veld_buf b = {NULL, 0, 0}, delta = {NULL, 0, 0};
	unsigned char hdr[12] = {'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 0}, sum[20];
	mbedtls_sha1_context sha;
	size_t i, n = 0;
	int rc = 0;
	/* one entry per object; an object added twice keeps a base if it got one */
	if (p->n)
		qsort(p->v, p->n, sizeof *p->v, oid_cmp);
	for (i = 0; i < p->n; i++) {
		if (n && git_oid_equal(&p->v[n - 1].id, &p->v[i].id)) {
			if (!p->v[n - 1].has_base && p->v[i].has_base)
				p->v[n - 1] = p->v[i];
			continue;
		}
		p->v[n++] = p->v[i];
	}
	p->n = n;
	/* A base in the pack itself is not used: a base is then always one the
	** hub has (a tree of a commit it has, or the tree of what it holds for
	** the ref), never a chain or a cycle of deltas inside the pack. */
	for (i = 0; i < n; i++)
		if (p->v[i].has_base) {
			pack_obj key;
			git_oid_cpy(&key.id, &p->v[i].base);
			if (bsearch(&key, p->v, n, sizeof *p->v, oid_cmp))
				p->v[i].has_base = 0;
		}
	if (n > 0xffffffffu)
		return veld_err__set(err, VELD_EINVALID, "too many objects for one pack");
	hdr[8] = (unsigned char)(n >> 24);
	hdr[9] = (unsigned char)(n >> 16);
	hdr[10] = (unsigned char)(n >> 8);
	hdr[11] = (unsigned char)n;
	mbedtls_sha1_init(&sha);
	if (mbedtls_sha1_starts_ret(&sha))
		rc = veld_err__set(err, VELD_ERROR, "checksum a pack");
	if (rc == 0)
		rc = emit(&sha, hdr, sizeof hdr, cb, payload, err);
	/* object by object: the pack is never whole in memory */
	for (i = 0; i < n && rc == 0; i++) {
		b.n = 0;
		if ((rc = write_object(&b, &delta, p, &p->v[i], err)) == 0)
			rc = emit(&sha, b.p, b.n, cb, payload, err);
	}
	if (rc == 0 && mbedtls_sha1_finish_ret(&sha, sum))
		rc = veld_err__set(err, VELD_ERROR, "checksum a pack");
	if (rc == 0)
		rc = cb(sum, sizeof sum, payload, err);
	mbedtls_sha1_free(&sha);
	free(b.p);
	free(delta.p);
	return rc;
}

static int to_buf(const void *data, size_t len, void *payload, veld_err *err)
{
	return veld_buf__add(payload, data, len) ? veld_err__oom(err) : 0;
}

int veld_pack__write(unsigned char **out, size_t *out_len, veld_pack *p, veld_err *err)
{
	veld_buf b = {NULL, 0, 0};
	int rc = veld_pack__stream(p, to_buf, &b, err);
	*out = NULL;
	*out_len = 0;
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	*out_len = b.n;
	return 0;
}

/*
** files.c — every file operation of the git layer, through the veld_os
** table: listing a directory (a repository's packs and loose objects, its
** lock files), removing files and empty directories, fsync of a file or a
** directory, modification times, and a file read through in chunks (the
** pack checks of check.c).  Plus the string list the listings fill.
**
** Why one file: the OS seam of sync/git is then this file alone.  libgit2
** does its own file I/O (and is set up to fsync it); only our direct calls
** go through the table, so a test can hand veld_repo__open a fault-
** injecting table (platform/faulty.c) and make a listing or a removal of
** maintain fail.
**
** What it must not do: know what a pack or an object means beyond its file
** name, or call libgit2.  No #ifdef for an OS here: that stays in
** platform/.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int veld_strlist__add(veld_strlist *l, const char *s)
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

void veld_strlist__free(veld_strlist *l)
{
	size_t i;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int any_entry(const char *name, int flags, void *payload)
{
	(void)name;
	(void)flags;
	(void)payload;
	return 1;
}

int veld_git__dir_is_empty(const veld_os *os, const char *path)
{
	int rc = os->xListDir(os->ctx, path, any_entry, NULL);
	if (rc == -ENOENT)
		return 1;
	if (rc < 0)
		return rc;
	return rc == 0;
}

typedef struct lock_sweep {
	const veld_os *os;
	const char *dir;
	int n;
} lock_sweep;

static int sweep_entry(const char *name, int flags, void *payload)
{
	lock_sweep *w = payload;
	char p[VELD_GIT_PATHBUF];
	size_t len = strlen(name);
	if ((size_t)snprintf(p, sizeof p, "%s/%s", w->dir, name) >= sizeof p)
		return 0;
	if (flags & VELD_OS_ISDIR)
		w->n += veld_git__remove_locks(w->os, p);
	else if (len > 5 && !strcmp(name + len - 5, ".lock") && w->os->xUnlink(w->os->ctx, p) == 0)
		w->n++;
	return 0;
}

int veld_git__remove_locks(const veld_os *os, const char *dir)
{
	lock_sweep w;
	w.os = os;
	w.dir = dir;
	w.n = 0;
	(void)os->xListDir(os->ctx, dir, sweep_entry, &w); /* an unreadable directory holds none we can remove */
	return w.n;
}

/* A listing collected into a string list (pack_entry, loose_entry). */
typedef struct name_list {
	veld_strlist *out;
	const char *prefix; /* list_loose: the fan-out directory's two digits */
	int oom;
} name_list;

static int pack_entry(const char *name, int flags, void *payload)
{
	name_list *l = payload;
	size_t len = strlen(name);
	char base[256];
	(void)flags;
	if (len < 9 || strncmp(name, "pack-", 5) != 0 || strcmp(name + len - 4, ".idx") != 0 || len - 4 >= sizeof base)
		return 0;
	snprintf(base, sizeof base, "%.*s", (int)(len - 4), name);
	if (veld_strlist__add(l->out, base) < 0) {
		l->oom = 1;
		return 1;
	}
	return 0;
}

static int loose_entry(const char *name, int flags, void *payload)
{
	name_list *l = payload;
	char id[GIT_OID_HEXSZ + 1];
	(void)flags;
	if (strlen(name) != GIT_OID_HEXSZ - 2 || !veld_hex__is(name, GIT_OID_HEXSZ - 2))
		return 0;
	snprintf(id, sizeof id, "%s%s", l->prefix, name);
	if (veld_strlist__add(l->out, id) < 0) {
		l->oom = 1;
		return 1;
	}
	return 0;
}

/* List `dir` through `cb`; a missing directory is empty. */
static int list_names(name_list *l, const veld_os *os, const char *dir,
                      int (*cb)(const char *, int, void *), veld_err *err)
{
	int rc = os->xListDir(os->ctx, dir, cb, l);
	if (l->oom)
		return veld_err__oom(err);
	if (rc < 0 && rc != -ENOENT)
		return veld_err__set(err, VELD_ERROR, "maintain: cannot read %s: %s", dir, strerror(-rc));
	return 0;
}

int veld_git__list_packs(veld_strlist *out, const veld_os *os, const char *packdir, veld_err *err)
{
	name_list l;
	l.out = out;
	l.prefix = "";
	l.oom = 0;
	return list_names(&l, os, packdir, pack_entry, err);
}

int veld_git__list_loose(veld_strlist *out, const veld_os *os, const char *objdir, veld_err *err)
{
	char sub[VELD_GIT_PATHBUF], prefix[3];
	name_list l;
	int i, rc;
	for (i = 0; i < 256; i++) {
		snprintf(sub, sizeof sub, "%s/%02x", objdir, i);
		snprintf(prefix, sizeof prefix, "%02x", i);
		l.out = out;
		l.prefix = prefix;
		l.oom = 0;
		if ((rc = list_names(&l, os, sub, loose_entry, err)) < 0)
			return rc;
	}
	return 0;
}

int veld_git__fsync(const veld_os *os, const char *path, int is_dir)
{
	int fd, rc;
	if (is_dir)
		return os->xSyncDir(os->ctx, path);
	if ((fd = os->xOpen(os->ctx, path, VELD_OS_READ, 0)) < 0)
		return fd;
	rc = os->xFsync(os->ctx, fd);
	os->xClose(os->ctx, fd);
	return rc;
}

int veld_git__old_enough(const veld_os *os, const char *path, int age_s, int64_t now_ms)
{
	int64_t mtime_ms;
	if (age_s <= 0)
		return 1;
	if (os->xMtime(os->ctx, path, &mtime_ms) != 0)
		return 0;
	return mtime_ms <= now_ms - (int64_t)age_s * 1000;
}

int veld_git__unlink(const veld_os *os, const char *path)
{
	int rc = os->xUnlink(os->ctx, path);
	return rc == -ENOENT ? 0 : rc;
}

int veld_git__unlink_pack(const veld_os *os, const char *packdir, const char *name)
{
	/* The .idx first: readers find packs by their index. */
	static const char *const ext[] = {".idx", ".pack", ".rev", ".bitmap", ".mtimes", ".promisor"};
	char p[VELD_GIT_PATHBUF];
	size_t i;
	int rc = 0, one;
	for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		snprintf(p, sizeof p, "%s/%s%s", packdir, name, ext[i]);
		if ((one = veld_git__unlink(os, p)) < 0 && rc == 0)
			rc = one;
	}
	return rc;
}

#define READ_CHUNK (64 * 1024)

int veld_git__read_file(const veld_os *os, const char *path, veld_git_chunk_cb cb, void *payload)
{
	unsigned char *buf = malloc(READ_CHUNK);
	int64_t size = 0, off = 0, got;
	int fd, rc;
	if (!buf)
		return -ENOMEM;
	if ((fd = os->xOpen(os->ctx, path, VELD_OS_READ, 0)) < 0) {
		free(buf);
		return fd;
	}
	rc = os->xFileSize(os->ctx, fd, &size);
	while (rc == 0 && off < size) {
		got = os->xPread(os->ctx, fd, buf, READ_CHUNK, off);
		if (got <= 0) {
			rc = got < 0 ? (int)got : -EIO; /* shorter than its size said */
			break;
		}
		if (got > size - off)
			got = size - off;
		rc = cb(buf, (size_t)got, off, size, payload);
		off += got;
	}
	os->xClose(os->ctx, fd);
	free(buf);
	return rc;
}

/*
** faulty.c — a `veld_os` table for tests that injects I/O errors and
** simulates power loss (declared at the end of veld_platform.h).
**
** The table forwards every call to a base table and keeps all of its state
** in the `veld_os_faulty` object that is the table's ctx: no global state,
** so several faulty tables can live side by side.  It is meant for one
** thread at a time, like the store handle that uses it.
**
** Errors.  A plan (veld_os_fault_plan) names the N-th pwrite, fsync,
** pread, directory listing or removal (unlink or rmdir; 1-based, counted
** since the object was made) that fails with -EIO without touching the
** file.
**
** Power loss.  The model is the one of SQLite's crash tests (src/test6.c):
** what a file held at its last fsync is safe; every write (and truncate)
** since then is "unsynced" and may or may not have reached the platter.
** Rather than buffering, each write goes through to the base table at once
** and leaves an undo record: offset, the bytes it replaced, the file size
** before and after.  At power loss (just before the N-th fsync or pwrite
** of the plan, or when the test calls veld_os_faulty_crash) a seeded PRNG
** decides for each unsynced write whether it was dropped, kept, or torn
** (kept for a prefix of its 512-byte sectors).  A disk writes whole
** sectors, each a snapshot of the page cache at some moment, so every
** sector ends up as it was after some prefix of the write sequence: the
** newest write whose choice keeps that sector.  The restore walks the undo
** records newest first and rolls a sector back only past writes newer than
** that one, so a kept newer write is never clobbered by restoring an older
** overlapping one.  The file size becomes the size after the newest write
** that kept anything.  From then on every call fails with -EIO (close still
** releases the base handle, so a store can be closed and reopened with
** another table).
**
** State is per file, not per handle: two handles on one path share it (an
** fsync through either clears the file's undo records).  Files are known by
** their resolved path, remembered at open; rename moves the state with the
** file, unlink drops it.
**
** Limitations, on purpose: names are durable at once.  Creating, renaming
** and unlinking a file are assumed to survive power loss even without
** xSyncDir (which is forwarded but changes nothing in the model); torn
** sectors hold old or new bytes, never garbage; and a write that is short
** of its sector boundary is treated as touching the whole sector.
*/
#define _GNU_SOURCE
#include "veld_platform.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FAULTY_SECTOR 512

/* One unsynced change to a file: a write or a truncate.  `old` holds the
** bytes [off, off+len) as they were before (zeros past the old end). */
typedef struct fundo {
	int64_t off;
	size_t len;
	unsigned char *old;
	int64_t old_size;
	int64_t new_size;
} fundo;

/* A file identity: every handle on the same path points here. */
typedef struct ffile {
	char *path;
	int refs;          /* open handles */
	int unlinked;
	fundo *undo;       /* oldest first */
	size_t n_undo, cap_undo;
	struct ffile *next;
} ffile;

typedef struct ffd {
	int fd;
	ffile *file;
} ffd;

struct veld_os_faulty {
	veld_os table;     /* ctx points back here */
	const veld_os *base;
	veld_os_fault_plan plan;
	long n_write, n_fsync, n_read, n_list, n_remove;
	int crashed;
	uint64_t rng;
	ffile *files;
	ffd *fds;
	size_t n_fds, cap_fds;
};

/* ---- helpers ----------------------------------------------------------- */

/* splitmix64: small, seedable, good enough to vary the choices. */
static uint64_t rng_next(veld_os_faulty *f)
{
	uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The resolved path of `path` (malloc'd), or a copy of it if it cannot be
** resolved (missing file).  NULL only when out of memory. */
static char *path_key(const char *path)
{
	char *r = realpath(path, NULL);
	if (r)
		return r;
	return strdup(path);
}

static void undo_clear(ffile *file)
{
	size_t i;
	for (i = 0; i < file->n_undo; i++)
		free(file->undo[i].old);
	file->n_undo = 0;
}

static void file_free(ffile *file)
{
	if (!file)
		return;
	undo_clear(file);
	free(file->undo);
	free(file->path);
	free(file);
}

static ffile *file_find(veld_os_faulty *f, const char *key)
{
	ffile *p;
	for (p = f->files; p; p = p->next)
		if (!p->unlinked && strcmp(p->path, key) == 0)
			return p;
	return NULL;
}

/* Drop a file that is gone from the namespace and has no handle left. */
static void file_release(veld_os_faulty *f, ffile *file)
{
	ffile **pp;
	if (!file->unlinked || file->refs > 0)
		return;
	for (pp = &f->files; *pp; pp = &(*pp)->next) {
		if (*pp == file) {
			*pp = file->next;
			file_free(file);
			return;
		}
	}
}

static void file_unlinked(veld_os_faulty *f, ffile *file)
{
	file->unlinked = 1;
	undo_clear(file);
	file_release(f, file);
}

static ffile *fd_file(veld_os_faulty *f, int fd)
{
	size_t i;
	for (i = 0; i < f->n_fds; i++)
		if (f->fds[i].fd == fd)
			return f->fds[i].file;
	return NULL;
}

static int fd_add(veld_os_faulty *f, int fd, ffile *file)
{
	if (f->n_fds == f->cap_fds) {
		size_t cap = f->cap_fds ? 2 * f->cap_fds : 8;
		ffd *n = realloc(f->fds, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		f->fds = n;
		f->cap_fds = cap;
	}
	f->fds[f->n_fds].fd = fd;
	f->fds[f->n_fds].file = file;
	f->n_fds++;
	return 0;
}

static ffile *fd_remove(veld_os_faulty *f, int fd)
{
	size_t i;
	for (i = 0; i < f->n_fds; i++) {
		if (f->fds[i].fd == fd) {
			ffile *file = f->fds[i].file;
			f->fds[i] = f->fds[f->n_fds - 1];
			f->n_fds--;
			return file;
		}
	}
	return NULL;
}

/* Read [off, off+n) through the base table, zeros past the end of file. */
static int read_zero_filled(veld_os_faulty *f, int fd, unsigned char *buf, size_t n, int64_t off)
{
	int64_t got = f->base->xPread(f->base->ctx, fd, buf, n, off);
	if (got < 0)
		return (int)got;
	if ((size_t)got < n)
		memset(buf + got, 0, n - (size_t)got);
	return 0;
}

/* Remember what [off, off+len) held before a change that leaves the file
** `new_size` bytes long (-1 for a write: the old size or its end, whichever
** is larger).  Called before the change reaches the base. */
static int undo_push(veld_os_faulty *f, ffile *file, int fd, int64_t off, size_t len,
                     int64_t new_size)
{
	int rc = 0;
	int64_t old_size = 0;
	unsigned char *old = NULL;
	fundo *u;

	rc = f->base->xFileSize(f->base->ctx, fd, &old_size);
	if (rc < 0)
		goto done;
	if (len > 0) {
		old = malloc(len);
		if (!old) {
			rc = -ENOMEM;
			goto done;
		}
		rc = read_zero_filled(f, fd, old, len, off);
		if (rc < 0)
			goto done;
	}
	if (file->n_undo == file->cap_undo) {
		size_t cap = file->cap_undo ? 2 * file->cap_undo : 16;
		fundo *n = realloc(file->undo, cap * sizeof *n);
		if (!n) {
			rc = -ENOMEM;
			goto done;
		}
		file->undo = n;
		file->cap_undo = cap;
	}
	u = &file->undo[file->n_undo++];
	u->off = off;
	u->len = len;
	u->old = old;
	u->old_size = old_size;
	u->new_size = new_size < 0 ? (off + (int64_t)len > old_size ? off + (int64_t)len : old_size)
	                           : new_size;
	old = NULL;
done:
	free(old);
	return rc;
}

/* ---- power loss -------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Index of sector `s` in the sorted, unique array `sec` of `n` entries. */
static size_t sector_index(const int64_t *sec, size_t n, int64_t s)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sec[mid] < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int64_t first_sector(const fundo *u) { return u->off / FAULTY_SECTOR; }
static int64_t last_sector(const fundo *u)
{
	return (u->off + (int64_t)u->len - 1) / FAULTY_SECTOR;
}

/*
** Draw the fate of each unsynced change of `file`: kept[i] sectors of
** change i (from its first) reached the disk: none (dropped), all (kept) or
** a proper prefix (torn).  *n_sectors gets the sectors the changes touch.
** Returns the newest change with a kept part (1-based; 0: none).
*/
static size_t choose_kept(veld_os_faulty *f, const ffile *file, int64_t *kept, size_t *n_sectors)
{
	size_t i, newest_kept = 0;
	*n_sectors = 0;
	for (i = 0; i < file->n_undo; i++) {
		const fundo *u = &file->undo[i];
		int64_t n = u->len ? last_sector(u) - first_sector(u) + 1 : 0;
		uint64_t r = rng_next(f);
		switch (r % 3) {
		case 0: kept[i] = 0; break;            /* dropped */
		case 1: kept[i] = n; break;            /* kept */
		default:                               /* torn: a proper prefix */
			kept[i] = n > 1 ? 1 + (int64_t)((r >> 8) % (uint64_t)(n - 1)) : (int64_t)((r >> 8) & 1);
			break;
		}
		/* A change that touches no bytes (a growing truncate) is kept or
		** dropped as a whole by its size alone. */
		if (n == 0)
			kept[i] = (int64_t)((r >> 8) & 1);
		if (kept[i] > 0)
			newest_kept = i + 1;
		*n_sectors += (size_t)n;
	}
	return newest_kept;
}

/*
** Decide what of `file`'s unsynced changes survives and write that state to
** disk.  keep[i] is the number of sectors of change i (from its first) that
** reached the disk; keeper[k] the newest change whose kept part holds sector
** k; each sector is rolled back through every change newer than its keeper.
*/
static int crash_file(veld_os_faulty *f, ffile *file)
{
	const veld_os *b = f->base;
	int rc = 0, fd = -1;
	size_t i, k, n_sec = 0, n_uniq = 0, cap = 0;
	int64_t *sec = NULL, *kept = NULL;
	size_t *keeper = NULL;
	unsigned char *img = NULL;
	int64_t final_size;
	size_t newest_kept = 0; /* 1-based; 0: nothing kept */

	if (file->n_undo == 0 || file->unlinked)
		goto done;

	kept = calloc(file->n_undo, sizeof *kept);
	if (!kept) {
		rc = -ENOMEM;
		goto done;
	}
	newest_kept = choose_kept(f, file, kept, &cap);

	if (cap > 0) {
		sec = malloc(cap * sizeof *sec);
		if (!sec) {
			rc = -ENOMEM;
			goto done;
		}
		for (i = 0; i < file->n_undo; i++) {
			const fundo *u = &file->undo[i];
			int64_t s;
			if (!u->len)
				continue;
			for (s = first_sector(u); s <= last_sector(u); s++)
				sec[n_sec++] = s;
		}
		qsort(sec, n_sec, sizeof *sec, cmp_i64);
		for (k = 0; k < n_sec; k++)
			if (n_uniq == 0 || sec[n_uniq - 1] != sec[k])
				sec[n_uniq++] = sec[k];
		keeper = calloc(n_uniq, sizeof *keeper);
		img = malloc(n_uniq * FAULTY_SECTOR);
		if (!keeper || !img) {
			rc = -ENOMEM;
			goto done;
		}
		for (i = 0; i < file->n_undo; i++) {
			const fundo *u = &file->undo[i];
			if (!u->len || kept[i] == 0)
				continue;
			k = sector_index(sec, n_uniq, first_sector(u));
			for (int64_t j = 0; j < kept[i]; j++)
				keeper[k + (size_t)j] = i + 1; /* ascending i: newest wins */
		}
	}

	fd = b->xOpen(b->ctx, file->path, VELD_OS_READ | VELD_OS_WRITE, 0600);
	if (fd < 0) {
		rc = fd;
		fd = -1;
		goto done;
	}
	/* The sectors as they are now, i.e. after every change. */
	for (k = 0; k < n_uniq; k++) {
		rc = read_zero_filled(f, fd, img + k * FAULTY_SECTOR, FAULTY_SECTOR, sec[k] * FAULTY_SECTOR);
		if (rc < 0)
			goto done;
	}
	/* Roll back, newest first, only the sectors whose keeper is older. */
	for (i = file->n_undo; i-- > 0;) {
		const fundo *u = &file->undo[i];
		int64_t s;
		if (!u->len)
			continue;
		k = sector_index(sec, n_uniq, first_sector(u));
		for (s = first_sector(u); s <= last_sector(u); s++, k++) {
			int64_t lo = s * FAULTY_SECTOR, hi = lo + FAULTY_SECTOR;
			int64_t a = u->off > lo ? u->off : lo;
			int64_t e = u->off + (int64_t)u->len < hi ? u->off + (int64_t)u->len : hi;
			if (keeper[k] > i)
				continue; /* a change at or after this one holds the sector */
			memcpy(img + k * FAULTY_SECTOR + (a - lo), u->old + (a - u->off), (size_t)(e - a));
		}
	}
	for (k = 0; k < n_uniq; k++) {
		int64_t w = b->xPwrite(b->ctx, fd, img + k * FAULTY_SECTOR, FAULTY_SECTOR, sec[k] * FAULTY_SECTOR);
		if (w < 0) {
			rc = (int)w;
			goto done;
		}
	}
	final_size = newest_kept ? file->undo[newest_kept - 1].new_size : file->undo[0].old_size;
	rc = b->xTruncate(b->ctx, fd, final_size);
	if (rc < 0)
		goto done;
	rc = b->xFsync(b->ctx, fd);
done:
	if (fd >= 0)
		b->xClose(b->ctx, fd);
	free(img);
	free(keeper);
	free(sec);
	free(kept);
	undo_clear(file);
	return rc;
}

static void do_crash(veld_os_faulty *f)
{
	ffile *p;
	if (f->crashed)
		return;
	f->crashed = 1;
	for (p = f->files; p; p = p->next)
		crash_file(f, p); /* best effort: a file that vanished has nothing to restore */
}

/* ---- the table --------------------------------------------------------- */

static int fy_open(void *ctx, const char *path, int flags, int mode)
{
	veld_os_faulty *f = ctx;
	const veld_os *b = f->base;
	int fd = -1, rc = 0, truncate = 0;
	char *key = NULL;
	ffile *file = NULL, *made = NULL;
	int64_t size = 0;

	if (f->crashed)
		return -EIO;
	/* Writable handles are opened for reading too, to keep undo records;
	** O_TRUNC of a file with content is done as a recorded truncate. */
	if (flags & VELD_OS_WRITE)
		flags |= VELD_OS_READ;
	if ((flags & VELD_OS_TRUNC) && b->xStat(b->ctx, path, NULL, &size) == 0 && size > 0) {
		flags &= ~VELD_OS_TRUNC;
		truncate = 1;
	}
	fd = b->xOpen(b->ctx, path, flags, mode);
	if (fd < 0) {
		rc = fd;
		fd = -1;
		goto done;
	}
	key = path_key(path);
	if (!key) {
		rc = -ENOMEM;
		goto done;
	}
	file = file_find(f, key);
	if (!file) {
		made = calloc(1, sizeof *made);
		if (!made) {
			rc = -ENOMEM;
			goto done;
		}
		made->path = key;
		key = NULL;
		made->next = f->files;
		f->files = made;
		file = made;
		made = NULL;
	}
	rc = fd_add(f, fd, file);
	if (rc < 0)
		goto done;
	file->refs++;
	if (truncate) {
		rc = undo_push(f, file, fd, 0, (size_t)size, 0);
		if (rc == 0)
			rc = b->xTruncate(b->ctx, fd, 0);
		if (rc < 0) {
			fd_remove(f, fd);
			file->refs--;
			goto done;
		}
	}
done:
	free(key);
	if (rc < 0) {
		if (fd >= 0)
			b->xClose(b->ctx, fd);
		return rc;
	}
	return fd;
}

static int fy_close(void *ctx, int fd)
{
	veld_os_faulty *f = ctx;
	ffile *file = fd_remove(f, fd);
	int rc;
	if (file) {
		file->refs--;
		file_release(f, file);
	}
	/* Always release the base handle: after a crash the caller must still
	** be able to give back its descriptors and locks. */
	rc = f->base->xClose(f->base->ctx, fd);
	return f->crashed ? -EIO : rc;
}

static int64_t fy_pread(void *ctx, int fd, void *buf, size_t n, int64_t off)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	f->n_read++;
	if (f->plan.fail_read_at && f->n_read == f->plan.fail_read_at)
		return -EIO;
	return f->base->xPread(f->base->ctx, fd, buf, n, off);
}

static int64_t fy_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off)
{
	veld_os_faulty *f = ctx;
	ffile *file;
	int rc;
	if (f->crashed)
		return -EIO;
	f->n_write++;
	if (f->plan.crash_at_write && f->n_write == f->plan.crash_at_write) {
		do_crash(f);
		return -EIO;
	}
	if (f->plan.fail_write_at && f->n_write == f->plan.fail_write_at)
		return -EIO;
	file = fd_file(f, fd);
	if (file && n > 0) {
		rc = undo_push(f, file, fd, off, n, -1);
		if (rc < 0)
			return rc;
	}
	return f->base->xPwrite(f->base->ctx, fd, buf, n, off);
}

static int fy_fsync(void *ctx, int fd)
{
	veld_os_faulty *f = ctx;
	ffile *file;
	int rc;
	if (f->crashed)
		return -EIO;
	f->n_fsync++;
	if (f->plan.crash_at_fsync && f->n_fsync == f->plan.crash_at_fsync) {
		do_crash(f);
		return -EIO;
	}
	if (f->plan.fail_fsync_at && f->n_fsync == f->plan.fail_fsync_at)
		return -EIO;
	rc = f->base->xFsync(f->base->ctx, fd);
	file = fd_file(f, fd);
	if (rc == 0 && file)
		undo_clear(file);
	return rc;
}

static int fy_truncate(void *ctx, int fd, int64_t size)
{
	veld_os_faulty *f = ctx;
	ffile *file;
	int64_t cur = 0;
	int rc;
	if (f->crashed)
		return -EIO;
	file = fd_file(f, fd);
	if (file) {
		rc = f->base->xFileSize(f->base->ctx, fd, &cur);
		if (rc < 0)
			return rc;
		/* A cut keeps the bytes it removes; a growth only the old size. */
		if (size < cur)
			rc = undo_push(f, file, fd, size, (size_t)(cur - size), size);
		else
			rc = undo_push(f, file, fd, cur, 0, size);
		if (rc < 0)
			return rc;
	}
	return f->base->xTruncate(f->base->ctx, fd, size);
}

static int fy_filesize(void *ctx, int fd, int64_t *size)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xFileSize(f->base->ctx, fd, size);
}

static int fy_lock(void *ctx, int fd, int kind, int wait_ms)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xLock(f->base->ctx, fd, kind, wait_ms);
}

static int fy_stat(void *ctx, const char *path, int *flags, int64_t *size)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xStat(f->base->ctx, path, flags, size);
}

static int fy_rename(void *ctx, const char *from, const char *to)
{
	veld_os_faulty *f = ctx;
	char *kfrom = NULL, *kto = NULL;
	ffile *src, *dst;
	int rc;
	if (f->crashed)
		return -EIO;
	kfrom = path_key(from);
	if (!kfrom)
		return -ENOMEM;
	rc = f->base->xRename(f->base->ctx, from, to);
	if (rc < 0)
		goto done;
	kto = path_key(to);
	if (!kto)
		goto done; /* renamed; only the model loses track of the file */
	src = file_find(f, kfrom);
	dst = file_find(f, kto);
	if (dst && dst != src)
		file_unlinked(f, dst);
	if (src) {
		free(src->path);
		src->path = kto;
		kto = NULL;
	}
done:
	free(kfrom);
	free(kto);
	return rc;
}

/* Count a removal (unlink, rmdir); 1 if the plan fails this one. */
static int removal_fails(veld_os_faulty *f)
{
	f->n_remove++;
	return f->plan.fail_remove_at && f->n_remove == f->plan.fail_remove_at;
}

static int fy_unlink(void *ctx, const char *path)
{
	veld_os_faulty *f = ctx;
	char *key;
	ffile *file;
	int rc;
	if (f->crashed)
		return -EIO;
	if (removal_fails(f))
		return -EIO;
	key = path_key(path);
	if (!key)
		return -ENOMEM;
	rc = f->base->xUnlink(f->base->ctx, path);
	if (rc == 0 && (file = file_find(f, key)) != NULL)
		file_unlinked(f, file);
	free(key);
	return rc;
}

static int fy_mkdir(void *ctx, const char *path, int mode)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xMkdir(f->base->ctx, path, mode);
}

static int fy_syncdir(void *ctx, const char *path)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xSyncDir(f->base->ctx, path);
}

static int fy_listdir(void *ctx, const char *path, int (*cb)(const char *name, int flags, void *payload),
                      void *payload)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	f->n_list++;
	if (f->plan.fail_list_at && f->n_list == f->plan.fail_list_at)
		return -EIO;
	return f->base->xListDir(f->base->ctx, path, cb, payload);
}

static int fy_rmdir(void *ctx, const char *path)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	if (removal_fails(f))
		return -EIO;
	return f->base->xRmdir(f->base->ctx, path);
}

static int fy_mtime(void *ctx, const char *path, int64_t *mtime_ms)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xMtime(f->base->ctx, path, mtime_ms);
}

static int64_t fy_clock(void *ctx)
{
	veld_os_faulty *f = ctx;
	return f->base->xClockMs(f->base->ctx);
}

static void fy_sleep(void *ctx, int ms)
{
	veld_os_faulty *f = ctx;
	f->base->xSleepMs(f->base->ctx, ms);
}

static void fy_random(void *ctx, void *buf, size_t n)
{
	veld_os_faulty *f = ctx;
	f->base->xRandom(f->base->ctx, buf, n);
}

static int fy_prompt(void *ctx, const char *prompt, char *buf, size_t n)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xPrompt(f->base->ctx, prompt, buf, n);
}

static int fy_keywrap(void *ctx, const unsigned char *key, size_t key_len,
                      unsigned char *blob, size_t *blob_len)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xKeyWrap(f->base->ctx, key, key_len, blob, blob_len);
}

static int fy_keyunwrap(void *ctx, const unsigned char *blob, size_t blob_len,
                        unsigned char *key, size_t key_len)
{
	veld_os_faulty *f = ctx;
	if (f->crashed)
		return -EIO;
	return f->base->xKeyUnwrap(f->base->ctx, blob, blob_len, key, key_len);
}

/* ---- public ------------------------------------------------------------ */

int veld_os_faulty_new(veld_os_faulty **out, const veld_os *base)
{
	veld_os_faulty *f;
	*out = NULL;
	if (!base)
		base = veld_os_default();
	f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->base = base;
	f->plan.version = 2;
	f->table.version = VELD_OS_VERSION;
	f->table.ctx = f;
	f->table.xOpen = fy_open;
	f->table.xClose = fy_close;
	f->table.xPread = fy_pread;
	f->table.xPwrite = fy_pwrite;
	f->table.xFsync = fy_fsync;
	f->table.xTruncate = fy_truncate;
	f->table.xFileSize = fy_filesize;
	f->table.xLock = fy_lock;
	f->table.xStat = fy_stat;
	f->table.xRename = fy_rename;
	f->table.xUnlink = fy_unlink;
	f->table.xMkdir = fy_mkdir;
	f->table.xSyncDir = fy_syncdir;
	f->table.xClockMs = fy_clock;
	f->table.xSleepMs = fy_sleep;
	f->table.xRandom = fy_random;
	f->table.xPrompt = fy_prompt;
	f->table.xKeyWrap = base->xKeyWrap ? fy_keywrap : NULL;
	f->table.xKeyUnwrap = base->xKeyUnwrap ? fy_keyunwrap : NULL;
	/* A base older than version 2 has none of these: neither has the copy. */
	f->table.xListDir = base->version >= 2 ? fy_listdir : NULL;
	f->table.xRmdir = base->version >= 2 ? fy_rmdir : NULL;
	f->table.xMtime = base->version >= 2 ? fy_mtime : NULL;
	if (base->version < 2)
		f->table.version = 1;
	*out = f;
	return 0;
}

void veld_os_faulty_free(veld_os_faulty *f)
{
	ffile *p, *next;
	if (!f)
		return;
	for (p = f->files; p; p = next) {
		next = p->next;
		file_free(p);
	}
	free(f->fds);
	free(f);
}

const veld_os *veld_os_faulty_table(veld_os_faulty *f)
{
	return &f->table;
}

void veld_os_faulty_set(veld_os_faulty *f, const veld_os_fault_plan *plan)
{
	/* A version 1 plan ends before the version 2 fields. */
	if (plan->version >= 2) {
		f->plan = *plan;
	} else {
		memset(&f->plan, 0, sizeof f->plan);
		memcpy(&f->plan, plan, offsetof(veld_os_fault_plan, fail_list_at));
	}
	f->rng = (uint64_t)plan->seed * 0x2545F4914F6CDD1Dull + 1;
}

long veld_os_faulty_count(const veld_os_faulty *f, int which)
{
	switch (which) {
	case 'w': return f->n_write;
	case 's': return f->n_fsync;
	case 'r': return f->n_read;
	case 'l': return f->n_list;
	case 'd': return f->n_remove;
	default: return -1;
	}
}

int veld_os_faulty_crashed(const veld_os_faulty *f)
{
	return f->crashed;
}

void veld_os_faulty_crash(veld_os_faulty *f)
{
	do_crash(f);
}

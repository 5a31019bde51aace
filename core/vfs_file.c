/*
** vfs_file.c — one file opened through the VFS: its sqlite3_io_methods and
** the main database's pages.
**
** What it is for.  xOpen (veld_vfs__xopen) makes a file object of one of
** three kinds: the main database, which takes the exclusive lock on the
** store and its page key; its WAL; its rollback journal.  Reads and writes
** go by kind to the main database's page I/O below or to the logs
** (vfs_log.c); everything else a file does (sync, size, truncate, the WAL
** index in heap memory, file controls, the checkpoint brackets) is here.
** The top of vfs.c explains why locks are bookkeeping and the WAL index
** needs no -shm file.
**
** What it owns: the file object and its scratch pages (plaintext wiped
** before it is freed), the page key of a main file that got it from the key
** callback (guarded memory, freed at close), the WAL index regions, the
** checkpoint stash and the counters of VELD_FCNTL_STATS.  All I/O goes
** through the VFS's `veld_os` table.
**
** What it must not do: write a page it has not sealed (a checkpoint copy
** is a page sealed in the WAL), extend a file with unsealed zeros, or map
** the file into memory.
*/
#include "core.h"

#ifdef VELD_SQLITE_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const sqlite3_io_methods vfile_methods;

/* ---- helpers ----------------------------------------------------------- */

int veld_vfs__scratch(veld_vfs_file *f, int pgsz)
{
	int need = pgsz + VELD_VFS_FRAME_HDR;
	if (f->scratch_sz >= need)
		return SQLITE_OK;
	if (f->plain) {
		sodium_memzero(f->plain, (size_t)f->scratch_sz);
		free(f->plain);
	}
	free(f->sealed);
	f->plain = malloc((size_t)need);
	f->sealed = malloc((size_t)need);
	if (!f->plain || !f->sealed) {
		free(f->plain);
		free(f->sealed);
		f->plain = f->sealed = NULL;
		f->scratch_sz = 0;
		return SQLITE_NOMEM;
	}
	f->scratch_sz = need;
	return SQLITE_OK;
}

/* Read exactly n bytes at off from the OS; *got is what was there. */
int veld_vfs__pread(veld_vfs_file *f, void *buf, size_t n, int64_t off, int64_t *got)
{
	const veld_os *os = f->vfs->os;
	int64_t r = os->xPread(os->ctx, f->fd, buf, n, off);
	if (r < 0) {
		*got = 0;
		return SQLITE_IOERR_READ;
	}
	*got = r;
	return SQLITE_OK;
}

int veld_vfs__pwrite(veld_vfs_file *f, const void *buf, size_t n, int64_t off)
{
	const veld_os *os = f->vfs->os;
	int64_t r = os->xPwrite(os->ctx, f->fd, buf, n, off);
	if (r == -ENOSPC)
		return SQLITE_FULL;
	if (r != (int64_t)n)
		return SQLITE_IOERR_WRITE;
	return SQLITE_OK;
}

/* ---- the main database ------------------------------------------------- */

/* Learn the page size from page 1's plaintext bytes 16-17 on disk.  Leaves
** pgsz 0 for an empty file. */
int veld_vfs__main_page_size(veld_vfs_file *m)
{
	unsigned char h[24];
	int64_t got;
	int rc, n;
	if (m->pgsz)
		return SQLITE_OK;
	if ((rc = veld_vfs__pread(m, h, sizeof h, 0, &got)) != SQLITE_OK)
		return rc;
	if (got == 0)
		return SQLITE_OK;
	if (got < 24 || memcmp(h, VELD_VFS_MAGIC, 16) != 0) {
		if (got >= 16 && memcmp(h, VELD_VFS_SQLITE_MAGIC, 16) == 0)
			return veld_vfs__fail(m->vfs, SQLITE_NOTADB,
			                      "%s is a plain SQLite database, not a veld store", m->label);
		return veld_vfs__fail(m->vfs, SQLITE_NOTADB, "%s is not a veld database", m->label);
	}
	n = veld_vfs__header_page_size(h);
	if (!veld_vfs__page_size_ok(n))
		return veld_vfs__fail(m->vfs, SQLITE_NOTADB, "%s has an unsupported page size", m->label);
	if (h[20] < m->reserve)
		return veld_vfs__fail(m->vfs, SQLITE_NOTADB, "%s reserves %d bytes per page, veld needs %d",
		                      m->label, h[20], m->reserve);
	m->pgsz = n;
	m->stats.page_size = n;
	return veld_vfs__scratch(m, n);
}

static int main_read(veld_vfs_file *m, unsigned char *buf, int n, int64_t off)
{
	int rc, pgsz, is_short = 0;
	int64_t pos = off, end = off + n;

	if ((rc = veld_vfs__main_page_size(m)) != SQLITE_OK)
		return rc;
	pgsz = m->pgsz;
	if (pgsz == 0) {
		memset(buf, 0, (size_t)n);
		return SQLITE_IOERR_SHORT_READ;
	}
	while (pos < end) {
		int64_t pstart = pos - pos % pgsz, got;
		uint32_t pgno = (uint32_t)(pstart / pgsz) + 1;
		int64_t cend = end < pstart + pgsz ? end : pstart + pgsz;
		int why;
		if ((rc = veld_vfs__pread(m, m->sealed, (size_t)pgsz, pstart, &got)) != SQLITE_OK)
			return rc;
		if (got == 0) {
			memset(buf + (pos - off), 0, (size_t)(end - pos));
			is_short = 1;
			break;
		}
		if (got < pgsz)
			return veld_vfs__fail(m->vfs, SQLITE_IOERR_DATA, "page %u of %s is truncated", pgno,
			                      m->label);
		if ((why = veld_vfs__open_page(m, pgno, m->sealed, m->plain, pgsz)) != 0) {
			if (pgno == 1 && why == -1 && end <= 100) {
				/* The header read SQLite does at open, for the page size
				** and reserve only.  After a crash page 1 may be torn here
				** while its good copy is in the WAL or the hot journal;
				** the real read of page 1 comes later and is checked. */
				memset(m->plain, 0, 100);
				memcpy(m->plain, VELD_VFS_SQLITE_MAGIC, 16);
				memcpy(m->plain + 16, m->sealed + 16, 8);
			} else {
				return veld_vfs__open_fail(m, why, pgno, 0);
			}
		}
		if (pgno == 1)
			m->stats.page1_reserve = m->plain[20];
		memcpy(buf + (pos - off), m->plain + (pos - pstart), (size_t)(cend - pos));
		pos = cend;
	}
	return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int main_write(veld_vfs_file *m, const unsigned char *buf, int n, int64_t off)
{
	int rc, pgsz, i;

	if ((rc = veld_vfs__main_page_size(m)) != SQLITE_OK)
		return rc;
	if (m->pgsz == 0) {
		/* A new database: the first write is page 1, whole. */
		if (off != 0 || !veld_vfs__page_size_ok(n) || veld_vfs__header_page_size(buf) != n)
			return veld_vfs__fail(m->vfs, SQLITE_IOERR_WRITE,
			                      "%s: first write is not page 1 with a page size of at least %d",
			                      m->label, VELD_VFS_MIN_PAGE);
		if ((rc = veld_vfs__scratch(m, n)) != SQLITE_OK)
			return rc;
		m->pgsz = n;
		m->stats.page_size = n;
	}
	pgsz = m->pgsz;
	if (n % pgsz != 0 || off % pgsz != 0)
		return veld_vfs__fail(m->vfs, SQLITE_IOERR_WRITE,
		                      "%s: write of %d bytes at %lld is not whole pages", m->label, n,
		                      (long long)off);
	for (i = 0; i < n / pgsz; i++) {
		const unsigned char *p = buf + (size_t)i * (size_t)pgsz, *out = m->sealed;
		uint32_t pgno = (uint32_t)(off / pgsz) + (uint32_t)i + 1;
		if (m->in_ckpt && m->stash_valid && m->stash_pgno == pgno &&
		    memcmp(m->stash_sealed, p, (size_t)pgsz) == 0) {
			/* A checkpoint copying a sealed WAL page: write it as it is. */
			m->stash_valid = 0;
			m->stats.ckpt_copied++;
			out = p;
		} else {
			if ((rc = veld_vfs__check_plain(m, pgno, p, pgsz)) != SQLITE_OK)
				return rc;
			veld_vfs__seal_page(m, pgno, p, m->sealed, pgsz);
			if (m->in_ckpt)
				m->stats.ckpt_sealed++;
		}
		if ((rc = veld_vfs__pwrite(m, out, (size_t)pgsz, off + (int64_t)i * pgsz)) != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* ---- sqlite3_io_methods ------------------------------------------------ */

static void shm_free(veld_vfs_file *f)
{
	int i;
	for (i = 0; i < f->n_shm; i++)
		free(f->shm[i]);
	free(f->shm);
	f->shm = NULL;
	f->n_shm = 0;
	f->shm_sz = 0;
}

static int vf_close(sqlite3_file *pf)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	const veld_os *os = f->vfs->os;
	int rc = SQLITE_OK;

	if (f->kind == VELD_VFS_MAIN) {
		shm_free(f);
		if (f->own_key && f->key)
			sodium_free(f->key);
		free(f->stash_sealed);
	}
	if (f->plain) {
		sodium_memzero(f->plain, (size_t)f->scratch_sz);
		free(f->plain);
	}
	free(f->sealed);
	if (f->fd >= 0 && os->xClose(os->ctx, f->fd) != 0)
		rc = SQLITE_IOERR_CLOSE;
	f->fd = -1;
	f->key = NULL;
	f->plain = f->sealed = f->stash_sealed = NULL;
	return rc;
}

/* Reads and writes by kind of file.  The main database is read and written
** in whole pages; the logs mix plaintext headers and pages. */
static const struct {
	int (*read)(veld_vfs_file *f, unsigned char *buf, int n, int64_t off);
	int (*write)(veld_vfs_file *f, const unsigned char *buf, int n, int64_t off);
} kind_io[] = {
	[VELD_VFS_MAIN] = {main_read, main_write},
	[VELD_VFS_JOURNAL] = {veld_vfs__journal_read, veld_vfs__journal_write},
	[VELD_VFS_WAL] = {veld_vfs__wal_read, veld_vfs__wal_write},
};

static int vf_read(sqlite3_file *pf, void *buf, int n, sqlite3_int64 off)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	return kind_io[f->kind].read(f, buf, n, off);
}

static int vf_write(sqlite3_file *pf, const void *buf, int n, sqlite3_int64 off)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	return kind_io[f->kind].write(f, buf, n, off);
}

static int vf_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	const veld_os *os = f->vfs->os;
	f->have_last = 0;
	return os->xTruncate(os->ctx, f->fd, size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

static int vf_sync(sqlite3_file *pf, int flags)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	const veld_os *os = f->vfs->os;
	(void)flags;
	return os->xFsync(os->ctx, f->fd) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int vf_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	const veld_os *os = f->vfs->os;
	int64_t s = 0;
	if (os->xFileSize(os->ctx, f->fd, &s) != 0)
		return SQLITE_IOERR_FSTAT;
	*size = s;
	return SQLITE_OK;
}

/* Ownership is exclusive (taken in xOpen), so SQLite's lock levels are
** only bookkeeping. */
static int vf_lock(sqlite3_file *pf, int level)
{
	((veld_vfs_file *)pf)->lock = level;
	return SQLITE_OK;
}

static int vf_unlock(sqlite3_file *pf, int level)
{
	((veld_vfs_file *)pf)->lock = level;
	return SQLITE_OK;
}

static int vf_check_reserved(sqlite3_file *pf, int *out)
{
	(void)pf;
	*out = 0;
	return SQLITE_OK;
}

static int vf_file_control(sqlite3_file *pf, int op, void *arg)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	switch (op) {
	case SQLITE_FCNTL_VFSNAME:
		*(char **)arg = sqlite3_mprintf("%s", f->vfs->name);
		return SQLITE_OK;
	case SQLITE_FCNTL_CKPT_START:
		if (f->kind == VELD_VFS_MAIN) {
			if (!f->stash_sealed && f->pgsz)
				f->stash_sealed = malloc(VELD_VFS_MAX_PAGE);
			f->in_ckpt = f->stash_sealed != NULL;
			f->stash_valid = 0;
		}
		return SQLITE_OK;
	case SQLITE_FCNTL_CKPT_DONE:
		f->in_ckpt = 0;
		f->stash_valid = 0;
		return SQLITE_OK;
	case SQLITE_FCNTL_SIZE_HINT:
	case SQLITE_FCNTL_CHUNK_SIZE:
		return SQLITE_OK; /* hints only: never pre-extend with unsealed zeros */
	case SQLITE_FCNTL_HAS_MOVED:
		*(int *)arg = 0;
		return SQLITE_OK;
	case VELD_FCNTL_STATS:
		if (f->kind != VELD_VFS_MAIN)
			return SQLITE_NOTFOUND;
		*(veld_vfs_stats *)arg = f->stats;
		return SQLITE_OK;
	default:
		return SQLITE_NOTFOUND;
	}
}

static int vf_sector_size(sqlite3_file *pf)
{
	(void)pf;
	return VELD_VFS_SECTOR;
}

static int vf_device_characteristics(sqlite3_file *pf)
{
	(void)pf;
	/* Writes never change bytes outside their range, so SQLite need not pad
	** WAL frames to sectors (padding would split writes mid-page). */
	return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int vf_shm_map(sqlite3_file *pf, int region, int size, int extend, void volatile **pp)
{
	veld_vfs_file *f = (veld_vfs_file *)pf;
	*pp = NULL;
	if (f->kind != VELD_VFS_MAIN)
		return SQLITE_IOERR_SHMMAP;
	if (f->shm_sz && f->shm_sz != size)
		return SQLITE_IOERR_SHMSIZE;
	if (region >= f->n_shm) {
		unsigned char **grown;
		int i;
		if (!extend)
			return SQLITE_OK;
		grown = realloc(f->shm, sizeof *grown * (size_t)(region + 1));
		if (!grown)
			return SQLITE_NOMEM;
		f->shm = grown;
		for (i = f->n_shm; i <= region; i++) {
			f->shm[i] = calloc(1, (size_t)size);
			if (!f->shm[i])
				return SQLITE_NOMEM;
			f->n_shm = i + 1;
		}
		f->shm_sz = size;
	}
	*pp = f->shm[region];
	return SQLITE_OK;
}

static int vf_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
	(void)pf;
	(void)offset;
	(void)n;
	(void)flags;
	return SQLITE_OK; /* the only connection: nobody to exclude */
}

static void vf_shm_barrier(sqlite3_file *pf)
{
	(void)pf;
	atomic_thread_fence(memory_order_seq_cst);
}

static int vf_shm_unmap(sqlite3_file *pf, int delete_flag)
{
	(void)delete_flag;
	shm_free((veld_vfs_file *)pf);
	return SQLITE_OK;
}

static const sqlite3_io_methods vfile_methods = {
	2, /* shared memory, no xFetch/xUnfetch: memory-mapped I/O stays off */
	vf_close,
	vf_read,
	vf_write,
	vf_truncate,
	vf_sync,
	vf_file_size,
	vf_lock,
	vf_unlock,
	vf_check_reserved,
	vf_file_control,
	vf_sector_size,
	vf_device_characteristics,
	vf_shm_map,
	vf_shm_lock,
	vf_shm_barrier,
	vf_shm_unmap,
	NULL,
	NULL,
};

/* ---- opening ----------------------------------------------------------- */

static void set_label(veld_vfs_file *f, const char *name)
{
	const char *s = strrchr(name, '/');
	snprintf(f->label, sizeof f->label, "%s", s ? s + 1 : name);
}

static void set_cipher(veld_vfs_file *m, int cipher)
{
	m->cipher = cipher;
	m->reserve = veld_vfs__reserve_bytes(cipher);
	m->nonce_len = m->reserve - VELD_VFS_TAGBYTES;
	m->stats.reserve = m->reserve;
	m->stats.page1_reserve = -1;
}

/* The kind of file SQLite opens (0: one veld refuses). */
static int file_kind(int flags)
{
	if (flags & SQLITE_OPEN_MAIN_DB)
		return VELD_VFS_MAIN;
	if (flags & SQLITE_OPEN_MAIN_JOURNAL)
		return VELD_VFS_JOURNAL;
	if (flags & SQLITE_OPEN_WAL)
		return VELD_VFS_WAL;
	return 0;
}

/* SQLite's open flags as the OS table's. */
static int os_flags(int flags)
{
	int oflags = 0;
	if (flags & SQLITE_OPEN_READWRITE)
		oflags |= VELD_OS_READ | VELD_OS_WRITE;
	else
		oflags |= VELD_OS_READ;
	if (flags & SQLITE_OPEN_CREATE)
		oflags |= VELD_OS_CREATE;
	if (flags & SQLITE_OPEN_EXCLUSIVE)
		oflags |= VELD_OS_EXCL;
	return oflags;
}

/* A main database: take the store (exclusive lock), then its page key, the
** VFS's own or the key callback's.  On failure the caller closes `f`. */
static int open_main(veld_vfs_file *f, const char *name)
{
	veld_vfs *v = f->vfs;
	const veld_os *os = v->os;
	int64_t size = 0;
	int cipher = VELD_CIPHER_XCHACHA20, rc, r;

	f->main = f;
	r = os->xLock(os->ctx, f->fd, VELD_OS_LOCK_EX, v->busy_ms);
	if (r != 0) {
		rc = r == -EBUSY ? SQLITE_BUSY : SQLITE_IOERR_LOCK;
		if (r == -EBUSY)
			veld_vfs__fail(v, rc, "%s is in use by another connection", f->label);
		return rc;
	}
	if (os->xFileSize(os->ctx, f->fd, &size) != 0)
		return SQLITE_IOERR_FSTAT;
	if (v->key) {
		f->key = v->key;
		set_cipher(f, v->cipher);
		return SQLITE_OK;
	}
	f->key = sodium_malloc(VELD_KEYBYTES);
	if (!f->key)
		return SQLITE_NOMEM;
	f->own_key = 1;
	rc = v->key_cb ? v->key_cb(v->payload, name, size == 0, f->key, &cipher) : SQLITE_AUTH;
	if (rc != SQLITE_OK)
		return rc;
	if (cipher != VELD_CIPHER_XCHACHA20 && cipher != VELD_CIPHER_AES256GCM)
		return SQLITE_CANTOPEN;
	set_cipher(f, cipher);
	return SQLITE_OK;
}

/* A WAL or journal belongs to a main database open through the same VFS. */
static int open_log(veld_vfs_file *f, const char *name)
{
	sqlite3_file *mf = sqlite3_database_file_object(name);
	veld_vfs_file *m = (veld_vfs_file *)mf;
	if (!mf || mf->pMethods != &vfile_methods || m->vfs != f->vfs)
		return veld_vfs__fail(f->vfs, SQLITE_CANTOPEN, "%s: no open veld database owns it",
		                      f->label);
	f->main = m;
	return SQLITE_OK;
}

int veld_vfs__xopen(sqlite3_vfs *pv, const char *name, sqlite3_file *pf, int flags,
                    int *out_flags)
{
	veld_vfs *v = pv->pAppData;
	const veld_os *os = v->os;
	veld_vfs_file *f = (veld_vfs_file *)pf;
	int rc;

	memset(f, 0, sizeof *f);
	f->fd = -1;
	f->vfs = v;
	f->kind = file_kind(flags);
	if (!f->kind || !name)
		return veld_vfs__fail(v, SQLITE_CANTOPEN,
		                      "temporary files must stay in memory (temp_store=MEMORY)");
	set_label(f, name);
	f->fd = os->xOpen(os->ctx, name, os_flags(flags), 0600);
	if (f->fd < 0) {
		f->fd = -1;
		return SQLITE_CANTOPEN;
	}
	rc = f->kind == VELD_VFS_MAIN ? open_main(f, name) : open_log(f, name);
	if (rc != SQLITE_OK) {
		if (f->own_key && f->key)
			sodium_free(f->key);
		f->key = NULL;
		os->xClose(os->ctx, f->fd);
		f->fd = -1;
		return rc;
	}
	f->base.pMethods = &vfile_methods;
	if (out_flags)
		*out_flags = flags;
	return SQLITE_OK;
}

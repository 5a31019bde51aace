/*
** vfs.c — a SQLite VFS that seals every page of a veld store.
**
** What it is for.  Debian's SQLite has no codec API, so veld encrypts the
** database below SQLite: this VFS sits between the pager and the OS and
** seals each page on its way to disk and opens (decrypts and authenticates)
** it on its way back.  Main database, WAL and rollback journal are covered;
** every other file type is refused (SQLITE_CANTOPEN), so temp files must
** stay in memory (temp_store=MEMORY, set by veld_vfs__open_db).  All file
** I/O goes through the `veld_os` table, so tests can inject faults; only
** names, time, randomness and dlopen are delegated to the default VFS.
**
** Page format.  Every page keeps R reserved bytes at its end (SQLite's
** "reserved space", SQLITE_FCNTL_RESERVE_BYTES on a new database):
** R = nonce + 16-byte tag, 40 for XChaCha20-Poly1305 (24-byte nonce), 28 for
** AES-256-GCM (12-byte nonce).  On disk a page is
**     ciphertext of bytes [0, P-R) | nonce | tag
** with a fresh random nonce per write and the page number (4 bytes, big
** endian) as associated data.  Page 1 differs: bytes 0-15 hold a veld magic
** instead of "SQLite format 3\0" (restored on read, so stock SQLite calls the
** file "not a database"), bytes 16-23 (page size, format versions, reserve
** byte, ...) stay in the clear because SQLite reads them before anything
** else, and the ciphertext covers [24, P-R); those 8 plaintext bytes join the
** associated data.  A page that fails to open is never handed to SQLite:
** xRead returns SQLITE_IOERR_DATA and veld_vfs__last_error() names it
** ("page 7 of veld.db fails authentication").  One exception: SQLite's
** open-time read of page 1's first 100 bytes, which only needs the clear
** bytes 16-23, gets them even if page 1 does not open, because after a crash
** page 1 may be torn in the database file while its good copy sits in the
** WAL or the hot journal; SQLite's real read of page 1 follows and is
** checked like any other.  An all-zero page is treated
** the same way: a sealed page is never all zeros, and SQLite never reads a
** page it has not written, so zeros mean a wiped page.
**
** Reserved bytes.  SQLite must read back exactly what it wrote (WAL frame
** and journal checksums cover whole pages), so reads return zeros in the
** reserved bytes and writes insist that SQLite left them zero; anything else
** means the database lacks the reserve and is refused (SQLITE_IOERR_WRITE).
**
** WAL.  The 32-byte header and each 24-byte frame header stay plaintext; the
** page after a frame header is sealed exactly as in the database (same
** associated data: the page number from that frame header).  The page
** number of a page write is taken from the frame header written just before
** it (cached) or read back from disk.  Because the sealed forms agree, a
** checkpoint (bracketed by SQLITE_FCNTL_CKPT_START/CKPT_DONE, reading each
** page from the WAL and then writing it to the database) copies sealed pages
** without opening or sealing them: during a checkpoint a page read from the
** WAL hands SQLite the sealed bytes (SQLite only copies them on), and the
** database write that follows for the same page number with the same bytes
** writes them as they are.  Nothing is lost by not opening them there: a
** frame damaged on disk lands damaged in the database and fails
** authentication at its next read, naming the page.  WAL recovery reads whole frames: there a frame that fails to
** open is either the torn tail of the last transaction (SQLite discards
** it: we return zeros so its checksum fails) or tampering, which we report
** as an error instead of letting SQLite silently cut the log.  A bad frame is
** tampering when the log still holds a valid commit frame of a later
** transaction after it (with synchronous=FULL only the last transaction can
** be torn).  Frame headers themselves are protected by SQLite's checksums
** only: a documented limit.
**
** Rollback journal (journal_mode=DELETE etc., e.g. from the shell).  Headers
** stay plaintext; a record is a 4-byte page number, the page, a 4-byte
** checksum.  A page-size write or read at an offset that is not a multiple
** of the sector size (512) is a record's page, sealed with the page number
** from the 4 bytes before it.
**
** Exclusive ownership.  Opening a main database takes an exclusive lock on
** the whole file (waiting up to the busy timeout, else SQLITE_BUSY), so one
** connection in one process owns a store at a time.  Hence the WAL index
** lives in heap memory owned by the main file object (I/O methods version 2
** with xShm* over heap regions, no -shm file; no xFetch, so no mmap), and
** xLock/xUnlock/xCheckReservedLock are trivial.
**
** Backups.  sqlite3_backup copies pages as the source VFS returns them, in
** plaintext, and nothing in SQLite 3.40's backup.c lets the source refuse
** (it only refuses a WAL or in-memory destination with another page size).
** So: the library never exposes its sqlite3 handle; a backup, VACUUM INTO or
** ATTACH whose destination goes through a veld VFS is sealed like any
** database; and veld_vfs__guard_attach denies ATTACH/VACUUM INTO of a URI
** naming any other VFS.  The shell extension (ext.c) adds the rest.
**
** What it must not do: keep global state (each instance has its own name,
** key and error text; SQLite's VFS registry is the only shared thing), print,
** or return a page it could not authenticate.
*/
#include "core.h"

#ifdef VELD_SQLITE_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define VFS_MAGIC        "veld-store-db-1" /* 15 chars + NUL = 16 bytes */
#define SQLITE_MAGIC     "SQLite format 3"
#define VFS_TAGBYTES     16
#define VFS_SECTOR       512
#define VFS_MIN_PAGE     1024
#define VFS_MAX_PAGE     65536
#define WAL_HDR          32
#define WAL_FRAME_HDR    24
#define VFS_BUSY_DEFAULT 5000

enum { VF_MAIN = 1, VF_JOURNAL = 2, VF_WAL = 3 };

typedef struct vfile vfile;

struct veld_vfs {
	sqlite3_vfs base;       /* registered with SQLite; pAppData points here */
	sqlite3_vfs *root;      /* the default VFS: names, time, randomness, dlopen */
	const veld_os *os;
	char name[48];
	unsigned char *key;     /* fixed page key (sodium_malloc), or NULL */
	int cipher;
	veld_vfs_key_cb key_cb; /* or a callback for each main database */
	void *payload;
	int busy_ms;
	int registered;
	char last_error[256];
};

struct vfile {
	sqlite3_file base;
	veld_vfs *vfs;
	int fd;
	int kind;
	int lock;
	char label[80];         /* file name for messages (last path component) */
	vfile *main;            /* the main database file (itself for a main db) */
	int pgsz;               /* 0 until known */
	unsigned char *plain;   /* scratch: one page of plaintext */
	unsigned char *sealed;  /* scratch: one frame (header + sealed page) */
	int scratch_sz;

	/* main database only */
	unsigned char *key;     /* page key: owned when from the callback */
	int own_key;
	int cipher, nonce_len, reserve;
	unsigned char **shm;    /* WAL index regions in heap memory */
	int n_shm, shm_sz;
	int in_ckpt;            /* between SQLITE_FCNTL_CKPT_START and CKPT_DONE */
	int stash_valid;        /* stash_sealed holds the page a checkpoint just read */
	uint32_t stash_pgno;
	unsigned char *stash_sealed; /* the sealed page handed to a checkpoint */
	veld_vfs_stats stats;

	/* WAL: the frame header written last; journal: the last 4-byte write */
	int64_t last_off;
	unsigned char last_hdr[WAL_FRAME_HDR];
	int have_last;
};

static const sqlite3_io_methods vfile_methods;

/* ---- helpers ----------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int vfs_fail(veld_vfs *v, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int vfs_fail(veld_vfs *v, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->last_error, sizeof v->last_error, fmt, ap);
	va_end(ap);
	return rc;
}

static int valid_page_size(int64_t n)
{
	return n >= VFS_MIN_PAGE && n <= VFS_MAX_PAGE && (n & (n - 1)) == 0;
}

/* SQLite stores the page size in bytes 16-17, big endian, 1 meaning 65536. */
static int header_page_size(const unsigned char *h)
{
	int n = (h[16] << 8) | (h[17] << 16);
	return n;
}

int veld_vfs__reserve_bytes(int cipher)
{
	if (cipher == VELD_CIPHER_AES256GCM)
		return (int)crypto_aead_aes256gcm_NPUBBYTES + VFS_TAGBYTES;
	return (int)crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + VFS_TAGBYTES;
}

static int ensure_scratch(vfile *f, int pgsz)
{
	int need = pgsz + WAL_FRAME_HDR;
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
static int os_read(vfile *f, void *buf, size_t n, int64_t off, int64_t *got)
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

static int os_write(vfile *f, const void *buf, size_t n, int64_t off)
{
	const veld_os *os = f->vfs->os;
	int64_t r = os->xPwrite(os->ctx, f->fd, buf, n, off);
	if (r == -ENOSPC)
		return SQLITE_FULL;
	if (r != (int64_t)n)
		return SQLITE_IOERR_WRITE;
	return SQLITE_OK;
}

/* ---- sealing pages ----------------------------------------------------- */

/* Associated data: page number, plus page 1's plaintext bytes 16-23. */
static size_t page_ad(unsigned char *ad, uint32_t pgno, const unsigned char *hdr16)
{
	put32(ad, pgno);
	if (pgno == 1) {
		memcpy(ad + 4, hdr16, 8);
		return 12;
	}
	return 4;
}

/* Seal plaintext page `in` (pgsz bytes, reserved bytes zero) into `out`. */
static void seal_page(vfile *m, uint32_t pgno, const unsigned char *in, unsigned char *out,
                      int pgsz)
{
	const veld_os *os = m->vfs->os;
	int start = pgno == 1 ? 24 : 0;
	int usable = pgsz - m->reserve;
	unsigned char ad[12];
	size_t adlen = page_ad(ad, pgno, in + 16);
	unsigned char *nonce = out + usable, *tag = out + usable + m->nonce_len;

	if (pgno == 1) {
		memcpy(out, VFS_MAGIC, 16);
		memcpy(out + 16, in + 16, 8);
	}
	os->xRandom(os->ctx, nonce, (size_t)m->nonce_len);
	if (m->cipher == VELD_CIPHER_AES256GCM)
		crypto_aead_aes256gcm_encrypt_detached(out + start, tag, NULL, in + start,
		                                       (unsigned long long)(usable - start), ad, adlen,
		                                       NULL, nonce, m->key);
	else
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
		    out + start, tag, NULL, in + start, (unsigned long long)(usable - start), ad, adlen,
		    NULL, nonce, m->key);
	m->stats.pages_sealed++;
}

/* Open sealed page `in` into `out`.  0 on success, -1 if it fails
** authentication, -2 if it is all zeros, -3 if page 1 lacks the magic. */
static int open_page(vfile *m, uint32_t pgno, const unsigned char *in, unsigned char *out,
                     int pgsz)
{
	int start = pgno == 1 ? 24 : 0;
	int usable = pgsz - m->reserve;
	unsigned char ad[12];
	size_t adlen;
	const unsigned char *nonce = in + usable, *tag = in + usable + m->nonce_len;
	int r;

	if (pgno == 1) {
		if (memcmp(in, VFS_MAGIC, 16) != 0)
			return sodium_is_zero(in, (size_t)pgsz) ? -2 : -3;
		memcpy(out, SQLITE_MAGIC, 16);
		memcpy(out + 16, in + 16, 8);
	}
	adlen = page_ad(ad, pgno, in + 16);
	if (m->cipher == VELD_CIPHER_AES256GCM)
		r = crypto_aead_aes256gcm_decrypt_detached(out + start, NULL, in + start,
		                                           (unsigned long long)(usable - start), tag, ad,
		                                           adlen, nonce, m->key);
	else
		r = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    out + start, NULL, in + start, (unsigned long long)(usable - start), tag, ad, adlen,
		    nonce, m->key);
	/* An all-zero page never authenticates; tell it apart only on failure
	** (checking every page first would cost more than the decryption). */
	if (r != 0)
		return sodium_is_zero(in, (size_t)pgsz) ? -2 : -1;
	memset(out + usable, 0, (size_t)m->reserve);
	m->stats.pages_opened++;
	return 0;
}

static int open_fail(vfile *f, int why, uint32_t pgno, long frame)
{
	veld_vfs *v = f->vfs;
	const char *what = why == -2 ? "is all zeros (wiped)"
	                 : why == -3 ? "lacks the veld magic"
	                             : "fails authentication";
	if (frame > 0)
		return vfs_fail(v, SQLITE_IOERR_DATA, "page %u in frame %ld of %s %s", pgno, frame,
		                f->label, what);
	if (f->kind == VF_JOURNAL)
		return vfs_fail(v, SQLITE_IOERR_DATA, "page %u in %s %s", pgno, f->label, what);
	return vfs_fail(v, SQLITE_IOERR_DATA, "page %u of %s %s", pgno, f->label, what);
}

/* Check a plaintext page SQLite hands us before sealing it. */
static int check_plain(vfile *f, uint32_t pgno, const unsigned char *p, int pgsz)
{
	vfile *m = f->main;
	if (!sodium_is_zero(p + pgsz - m->reserve, (size_t)m->reserve))
		return vfs_fail(f->vfs, SQLITE_IOERR_WRITE,
		                "page %u of %s uses the %d reserved bytes veld needs (database "
		                "created without SQLITE_FCNTL_RESERVE_BYTES?)",
		                pgno, f->label, m->reserve);
	if (pgno == 1) {
		if (memcmp(p, SQLITE_MAGIC, 16) != 0 || header_page_size(p) != pgsz)
			return vfs_fail(f->vfs, SQLITE_IOERR_WRITE, "page 1 of %s has a bad header",
			                f->label);
		if (p[20] < m->reserve)
			return vfs_fail(f->vfs, SQLITE_IOERR_WRITE,
			                "%s reserves %d bytes per page, veld needs %d", f->label, p[20],
			                m->reserve);
		m->stats.page1_reserve = p[20];
	}
	return SQLITE_OK;
}

/* ---- the main database ------------------------------------------------- */

/* Learn the page size from page 1's plaintext bytes 16-17 on disk.  Leaves
** pgsz 0 for an empty file. */
static int main_page_size(vfile *m)
{
	unsigned char h[24];
	int64_t got;
	int rc, n;
	if (m->pgsz)
		return SQLITE_OK;
	if ((rc = os_read(m, h, sizeof h, 0, &got)) != SQLITE_OK)
		return rc;
	if (got == 0)
		return SQLITE_OK;
	if (got < 24 || memcmp(h, VFS_MAGIC, 16) != 0) {
		if (got >= 16 && memcmp(h, SQLITE_MAGIC, 16) == 0)
			return vfs_fail(m->vfs, SQLITE_NOTADB,
			                "%s is a plain SQLite database, not a veld store", m->label);
		return vfs_fail(m->vfs, SQLITE_NOTADB, "%s is not a veld database", m->label);
	}
	n = header_page_size(h);
	if (!valid_page_size(n))
		return vfs_fail(m->vfs, SQLITE_NOTADB, "%s has an unsupported page size", m->label);
	if (h[20] < m->reserve)
		return vfs_fail(m->vfs, SQLITE_NOTADB, "%s reserves %d bytes per page, veld needs %d",
		                m->label, h[20], m->reserve);
	m->pgsz = n;
	m->stats.page_size = n;
	return ensure_scratch(m, n);
}

static int main_read(vfile *m, unsigned char *buf, int n, int64_t off)
{
	int rc, pgsz, is_short = 0;
	int64_t pos = off, end = off + n;

	if ((rc = main_page_size(m)) != SQLITE_OK)
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
		if ((rc = os_read(m, m->sealed, (size_t)pgsz, pstart, &got)) != SQLITE_OK)
			return rc;
		if (got == 0) {
			memset(buf + (pos - off), 0, (size_t)(end - pos));
			is_short = 1;
			break;
		}
		if (got < pgsz)
			return vfs_fail(m->vfs, SQLITE_IOERR_DATA, "page %u of %s is truncated", pgno,
			                m->label);
		if ((why = open_page(m, pgno, m->sealed, m->plain, pgsz)) != 0) {
			if (pgno == 1 && why == -1 && end <= 100) {
				/* The header read SQLite does at open, for the page size
				** and reserve only.  After a crash page 1 may be torn here
				** while its good copy is in the WAL or the hot journal;
				** the real read of page 1 comes later and is checked. */
				memset(m->plain, 0, 100);
				memcpy(m->plain, SQLITE_MAGIC, 16);
				memcpy(m->plain + 16, m->sealed + 16, 8);
			} else {
				return open_fail(m, why, pgno, 0);
			}
		}
		if (pgno == 1)
			m->stats.page1_reserve = m->plain[20];
		memcpy(buf + (pos - off), m->plain + (pos - pstart), (size_t)(cend - pos));
		pos = cend;
	}
	return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int main_write(vfile *m, const unsigned char *buf, int n, int64_t off)
{
	int rc, pgsz, i;

	if ((rc = main_page_size(m)) != SQLITE_OK)
		return rc;
	if (m->pgsz == 0) {
		/* A new database: the first write is page 1, whole. */
		if (off != 0 || !valid_page_size(n) || header_page_size(buf) != n)
			return vfs_fail(m->vfs, SQLITE_IOERR_WRITE,
			                "%s: first write is not page 1 with a page size of at least %d",
			                m->label, VFS_MIN_PAGE);
		if ((rc = ensure_scratch(m, n)) != SQLITE_OK)
			return rc;
		m->pgsz = n;
		m->stats.page_size = n;
	}
	pgsz = m->pgsz;
	if (n % pgsz != 0 || off % pgsz != 0)
		return vfs_fail(m->vfs, SQLITE_IOERR_WRITE,
		                "%s: write of %d bytes at %lld is not whole pages", m->label, n,
		                (long long)off);
	for (i = 0; i < n / pgsz; i++) {
		const unsigned char *p = buf + (size_t)i * (size_t)pgsz;
		uint32_t pgno = (uint32_t)(off / pgsz) + (uint32_t)i + 1;
		const unsigned char *out = m->sealed;
		if (m->in_ckpt && m->stash_valid && m->stash_pgno == pgno &&
		    memcmp(m->stash_sealed, p, (size_t)pgsz) == 0) {
			/* A checkpoint copying a sealed WAL page: write it as it is. */
			m->stash_valid = 0;
			m->stats.ckpt_copied++;
			if ((rc = os_write(m, p, (size_t)pgsz, off + (int64_t)i * pgsz)) != SQLITE_OK)
				return rc;
			continue;
		}
		if ((rc = check_plain(m, pgno, p, pgsz)) != SQLITE_OK)
			return rc;
		{
			seal_page(m, pgno, p, m->sealed, pgsz);
			if (m->in_ckpt)
				m->stats.ckpt_sealed++;
		}
		if ((rc = os_write(m, out, (size_t)pgsz, off + (int64_t)i * pgsz)) != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* ---- the WAL ----------------------------------------------------------- */

/* Page size of the WAL: its header's bytes 8-11, else the database's. */
static int wal_page_size(vfile *w)
{
	unsigned char h[WAL_HDR];
	int64_t got;
	int rc;
	if (w->pgsz)
		return SQLITE_OK;
	if ((rc = os_read(w, h, sizeof h, 0, &got)) != SQLITE_OK)
		return rc;
	if (got == WAL_HDR && valid_page_size(get32(h + 8)))
		w->pgsz = (int)get32(h + 8);
	else if ((rc = main_page_size(w->main)) == SQLITE_OK)
		w->pgsz = w->main->pgsz;
	if (rc == SQLITE_OK && w->pgsz)
		rc = ensure_scratch(w, w->pgsz);
	return rc;
}

/* A frame read by WAL recovery failed to open.  Return 1 if it is the torn
** tail of the last transaction (SQLite may discard it), 0 if a valid commit
** frame of a later transaction follows it, which means tampering. */
static int wal_bad_frame_is_tail(vfile *w, int64_t fstart, const unsigned char *fhdr)
{
	vfile *m = w->main;
	const veld_os *os = w->vfs->os;
	unsigned char whdr[WAL_HDR];
	unsigned char *frame = NULL, *plain = NULL;
	int64_t got, size = 0, fsz = w->pgsz + WAL_FRAME_HDR, off;
	int need = get32(fhdr + 4) != 0 ? 1 : 2, found = 0, tail = 1;

	if (os_read(w, whdr, sizeof whdr, 0, &got) != SQLITE_OK || got != WAL_HDR)
		goto done;
	if (memcmp(whdr + 16, fhdr + 8, 8) != 0)
		goto done; /* not a frame of this log: SQLite stops here anyway */
	if (os->xFileSize(os->ctx, w->fd, &size) != 0)
		goto done;
	frame = malloc((size_t)fsz);
	plain = malloc((size_t)w->pgsz);
	if (!frame || !plain)
		goto done;
	for (off = fstart + fsz; off + fsz <= size; off += fsz) {
		uint32_t pgno;
		if (os_read(w, frame, (size_t)fsz, off, &got) != SQLITE_OK || got != fsz)
			break;
		pgno = get32(frame);
		if (memcmp(whdr + 16, frame + 8, 8) != 0 || get32(frame + 4) == 0 || pgno == 0)
			continue;
		if (open_page(m, pgno, frame + WAL_FRAME_HDR, plain, w->pgsz) == 0 && ++found >= need) {
			tail = 0;
			break;
		}
	}
done:
	if (plain) {
		sodium_memzero(plain, (size_t)w->pgsz);
		free(plain);
	}
	free(frame);
	return tail;
}

static int wal_read(vfile *w, unsigned char *buf, int n, int64_t off)
{
	vfile *m = w->main;
	int rc, is_short = 0, fsz;
	int64_t got, pos, end = off + n;

	/* Everything in the clear first, then replace the page parts. */
	if ((rc = os_read(w, buf, (size_t)n, off, &got)) != SQLITE_OK)
		return rc;
	if (got < n) {
		memset(buf + got, 0, (size_t)(n - got));
		is_short = 1;
		end = off + got;
	}
	if (end <= WAL_HDR)
		return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
	if ((rc = wal_page_size(w)) != SQLITE_OK)
		return rc;
	if (w->pgsz == 0)
		return vfs_fail(w->vfs, SQLITE_IOERR_DATA, "%s has no valid header", w->label);
	fsz = w->pgsz + WAL_FRAME_HDR;
	pos = off > WAL_HDR ? off : WAL_HDR;
	while (pos < end) {
		int64_t fstart = WAL_HDR + ((pos - WAL_HDR) / fsz) * fsz;
		int64_t pstart = fstart + WAL_FRAME_HDR, fend = fstart + fsz;
		int64_t cend = end < fend ? end : fend;
		long frame = (long)((fstart - WAL_HDR) / fsz) + 1;
		if (cend > pstart) {
			/* Part of this frame's page is wanted: open the whole page. */
			int64_t from = pos > pstart ? pos : pstart;
			uint32_t pgno;
			int why;
			if ((rc = os_read(w, w->sealed, (size_t)fsz, fstart, &got)) != SQLITE_OK)
				return rc;
			if (got < fsz)
				return vfs_fail(w->vfs, SQLITE_IOERR_DATA, "frame %ld of %s is truncated",
				                frame, w->label);
			pgno = get32(w->sealed);
			if (pgno != 0 && m->in_ckpt && off == pstart && n == w->pgsz && m->pgsz == w->pgsz) {
				/* A checkpoint reads a page only to write it to the
				** database: hand over the sealed bytes (see the top). */
				memcpy(buf, w->sealed + WAL_FRAME_HDR, (size_t)w->pgsz);
				memcpy(m->stash_sealed, w->sealed + WAL_FRAME_HDR, (size_t)w->pgsz);
				m->stash_pgno = pgno;
				m->stash_valid = 1;
				pos = cend;
				continue;
			}
			why = pgno == 0 ? -1
			                : open_page(m, pgno, w->sealed + WAL_FRAME_HDR, w->plain, w->pgsz);
			if (why != 0) {
				/* Whole-frame reads come from recovery (see the top). */
				if (off <= fstart && wal_bad_frame_is_tail(w, fstart, w->sealed)) {
					memset(buf + (from - off), 0, (size_t)(cend - from));
					pos = cend;
					continue;
				}
				return open_fail(w, why, pgno, frame);
			}
			memcpy(buf + (from - off), w->plain + (from - pstart), (size_t)(cend - from));
			if (pgno == 1)
				m->stats.page1_reserve = w->plain[20];
		}
		pos = cend;
	}
	return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int wal_write(vfile *w, const unsigned char *buf, int n, int64_t off)
{
	vfile *m = w->main;
	int rc, fsz;
	int64_t within;

	if (off == 0 && n == WAL_HDR) {
		if (valid_page_size(get32(buf + 8))) {
			w->pgsz = (int)get32(buf + 8);
			if ((rc = ensure_scratch(w, w->pgsz)) != SQLITE_OK)
				return rc;
		}
		w->have_last = 0;
		return os_write(w, buf, (size_t)n, off);
	}
	if ((rc = wal_page_size(w)) != SQLITE_OK)
		return rc;
	if (w->pgsz == 0 || off < WAL_HDR)
		return vfs_fail(w->vfs, SQLITE_IOERR_WRITE, "%s: write before the WAL header",
		                w->label);
	fsz = w->pgsz + WAL_FRAME_HDR;
	within = (off - WAL_HDR) % fsz;
	if (within == 0 && n == WAL_FRAME_HDR) {
		memcpy(w->last_hdr, buf, WAL_FRAME_HDR);
		w->last_off = off;
		w->have_last = 1;
		return os_write(w, buf, (size_t)n, off);
	}
	if (within == WAL_FRAME_HDR && n == w->pgsz) {
		uint32_t pgno;
		unsigned char hdr[WAL_FRAME_HDR];
		if (w->have_last && w->last_off == off - WAL_FRAME_HDR) {
			pgno = get32(w->last_hdr);
		} else {
			int64_t got;
			if ((rc = os_read(w, hdr, sizeof hdr, off - WAL_FRAME_HDR, &got)) != SQLITE_OK)
				return rc;
			if (got != WAL_FRAME_HDR)
				return vfs_fail(w->vfs, SQLITE_IOERR_WRITE,
				                "%s: page written before its frame header", w->label);
			pgno = get32(hdr);
		}
		if (pgno == 0)
			return vfs_fail(w->vfs, SQLITE_IOERR_WRITE, "%s: frame for page 0", w->label);
		if ((rc = check_plain(w, pgno, buf, w->pgsz)) != SQLITE_OK)
			return rc;
		seal_page(m, pgno, buf, w->sealed, w->pgsz);
		return os_write(w, w->sealed, (size_t)n, off);
	}
	return vfs_fail(w->vfs, SQLITE_IOERR_WRITE, "%s: unexpected write of %d bytes at %lld",
	                w->label, n, (long long)off);
}

/* ---- the rollback journal ---------------------------------------------- */

static int is_journal_page(vfile *j, int n, int64_t off)
{
	return j->pgsz && n == j->pgsz && off % VFS_SECTOR != 0 && off >= 4;
}

static int journal_page_size(vfile *j)
{
	int rc = main_page_size(j->main);
	if (rc == SQLITE_OK && !j->pgsz && j->main->pgsz) {
		j->pgsz = j->main->pgsz;
		rc = ensure_scratch(j, j->pgsz);
	}
	return rc;
}

/* The page number stored in the 4 bytes before offset `off`. */
static int journal_pgno(vfile *j, int64_t off, uint32_t *pgno)
{
	unsigned char b[4];
	int64_t got;
	int rc;
	if (j->have_last && j->last_off == off - 4) {
		*pgno = get32(j->last_hdr);
		return SQLITE_OK;
	}
	if ((rc = os_read(j, b, 4, off - 4, &got)) != SQLITE_OK)
		return rc;
	*pgno = got == 4 ? get32(b) : 0;
	return SQLITE_OK;
}

static int journal_read(vfile *j, unsigned char *buf, int n, int64_t off)
{
	int rc, why;
	int64_t got;
	uint32_t pgno;

	if ((rc = journal_page_size(j)) != SQLITE_OK)
		return rc;
	if (!is_journal_page(j, n, off)) {
		if ((rc = os_read(j, buf, (size_t)n, off, &got)) != SQLITE_OK)
			return rc;
		if (got < n) {
			memset(buf + got, 0, (size_t)(n - got));
			return SQLITE_IOERR_SHORT_READ;
		}
		return SQLITE_OK;
	}
	if ((rc = journal_pgno(j, off, &pgno)) != SQLITE_OK)
		return rc;
	if ((rc = os_read(j, j->sealed, (size_t)n, off, &got)) != SQLITE_OK)
		return rc;
	if (got < n) {
		memset(buf, 0, (size_t)n);
		return SQLITE_IOERR_SHORT_READ;
	}
	if (pgno == 0)
		return vfs_fail(j->vfs, SQLITE_IOERR_DATA, "%s: record for page 0", j->label);
	if ((why = open_page(j->main, pgno, j->sealed, j->plain, n)) != 0)
		return open_fail(j, why, pgno, 0);
	memcpy(buf, j->plain, (size_t)n);
	return SQLITE_OK;
}

static int journal_write(vfile *j, const unsigned char *buf, int n, int64_t off)
{
	int rc;
	uint32_t pgno;

	if ((rc = journal_page_size(j)) != SQLITE_OK)
		return rc;
	if (!is_journal_page(j, n, off)) {
		if (n == 4) {
			memcpy(j->last_hdr, buf, 4);
			j->last_off = off;
			j->have_last = 1;
		}
		return os_write(j, buf, (size_t)n, off);
	}
	if ((rc = journal_pgno(j, off, &pgno)) != SQLITE_OK)
		return rc;
	if (pgno == 0)
		return vfs_fail(j->vfs, SQLITE_IOERR_WRITE, "%s: record for page 0", j->label);
	if ((rc = check_plain(j, pgno, buf, n)) != SQLITE_OK)
		return rc;
	seal_page(j->main, pgno, buf, j->sealed, n);
	return os_write(j, j->sealed, (size_t)n, off);
}

/* ---- sqlite3_io_methods ------------------------------------------------ */

static void shm_free(vfile *f)
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
	vfile *f = (vfile *)pf;
	const veld_os *os = f->vfs->os;
	int rc = SQLITE_OK;

	if (f->kind == VF_MAIN) {
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

static int vf_read(sqlite3_file *pf, void *buf, int n, sqlite3_int64 off)
{
	vfile *f = (vfile *)pf;
	switch (f->kind) {
	case VF_MAIN:
		return main_read(f, buf, n, off);
	case VF_WAL:
		return wal_read(f, buf, n, off);
	default:
		return journal_read(f, buf, n, off);
	}
}

static int vf_write(sqlite3_file *pf, const void *buf, int n, sqlite3_int64 off)
{
	vfile *f = (vfile *)pf;
	switch (f->kind) {
	case VF_MAIN:
		return main_write(f, buf, n, off);
	case VF_WAL:
		return wal_write(f, buf, n, off);
	default:
		return journal_write(f, buf, n, off);
	}
}

static int vf_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
	vfile *f = (vfile *)pf;
	const veld_os *os = f->vfs->os;
	f->have_last = 0;
	return os->xTruncate(os->ctx, f->fd, size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

static int vf_sync(sqlite3_file *pf, int flags)
{
	vfile *f = (vfile *)pf;
	const veld_os *os = f->vfs->os;
	(void)flags;
	return os->xFsync(os->ctx, f->fd) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int vf_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
	vfile *f = (vfile *)pf;
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
	((vfile *)pf)->lock = level;
	return SQLITE_OK;
}

static int vf_unlock(sqlite3_file *pf, int level)
{
	((vfile *)pf)->lock = level;
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
	vfile *f = (vfile *)pf;
	switch (op) {
	case SQLITE_FCNTL_VFSNAME:
		*(char **)arg = sqlite3_mprintf("%s", f->vfs->name);
		return SQLITE_OK;
	case SQLITE_FCNTL_CKPT_START:
		if (f->kind == VF_MAIN) {
			if (!f->stash_sealed && f->pgsz)
				f->stash_sealed = malloc(VFS_MAX_PAGE);
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
		if (f->kind != VF_MAIN)
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
	return VFS_SECTOR;
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
	vfile *f = (vfile *)pf;
	*pp = NULL;
	if (f->kind != VF_MAIN)
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
	shm_free((vfile *)pf);
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

/* ---- sqlite3_vfs ------------------------------------------------------- */

static void set_label(vfile *f, const char *name)
{
	const char *s = strrchr(name, '/');
	snprintf(f->label, sizeof f->label, "%s", s ? s + 1 : name);
}

static void set_cipher(vfile *m, int cipher)
{
	m->cipher = cipher;
	m->reserve = veld_vfs__reserve_bytes(cipher);
	m->nonce_len = m->reserve - VFS_TAGBYTES;
	m->stats.reserve = m->reserve;
	m->stats.page1_reserve = -1;
}

static int vx_open(sqlite3_vfs *pv, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
	veld_vfs *v = pv->pAppData;
	const veld_os *os = v->os;
	vfile *f = (vfile *)pf;
	int kind, oflags = 0, rc = SQLITE_OK, r;
	int64_t size = 0;

	memset(f, 0, sizeof *f);
	f->fd = -1;
	f->vfs = v;
	if (flags & SQLITE_OPEN_MAIN_DB)
		kind = VF_MAIN;
	else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
		kind = VF_JOURNAL;
	else if (flags & SQLITE_OPEN_WAL)
		kind = VF_WAL;
	else
		kind = 0;
	if (!kind || !name)
		return vfs_fail(v, SQLITE_CANTOPEN,
		                "temporary files must stay in memory (temp_store=MEMORY)");
	f->kind = kind;
	set_label(f, name);

	if (flags & SQLITE_OPEN_READWRITE)
		oflags |= VELD_OS_READ | VELD_OS_WRITE;
	else
		oflags |= VELD_OS_READ;
	if (flags & SQLITE_OPEN_CREATE)
		oflags |= VELD_OS_CREATE;
	if (flags & SQLITE_OPEN_EXCLUSIVE)
		oflags |= VELD_OS_EXCL;
	f->fd = os->xOpen(os->ctx, name, oflags, 0600);
	if (f->fd < 0) {
		f->fd = -1;
		return SQLITE_CANTOPEN;
	}

	if (kind == VF_MAIN) {
		f->main = f;
		r = os->xLock(os->ctx, f->fd, VELD_OS_LOCK_EX, v->busy_ms);
		if (r != 0) {
			rc = r == -EBUSY ? SQLITE_BUSY : SQLITE_IOERR_LOCK;
			if (r == -EBUSY)
				vfs_fail(v, rc, "%s is in use by another connection", f->label);
			goto fail;
		}
		if (os->xFileSize(os->ctx, f->fd, &size) != 0) {
			rc = SQLITE_IOERR_FSTAT;
			goto fail;
		}
		if (v->key) {
			f->key = v->key;
			set_cipher(f, v->cipher);
		} else {
			int cipher = VELD_CIPHER_XCHACHA20;
			f->key = sodium_malloc(VELD_KEYBYTES);
			if (!f->key) {
				rc = SQLITE_NOMEM;
				goto fail;
			}
			f->own_key = 1;
			rc = v->key_cb ? v->key_cb(v->payload, name, size == 0, f->key, &cipher)
			               : SQLITE_AUTH;
			if (rc != SQLITE_OK)
				goto fail;
			if (cipher != VELD_CIPHER_XCHACHA20 && cipher != VELD_CIPHER_AES256GCM) {
				rc = SQLITE_CANTOPEN;
				goto fail;
			}
			set_cipher(f, cipher);
		}
	} else {
		sqlite3_file *mf = sqlite3_database_file_object(name);
		vfile *m = (vfile *)mf;
		if (!mf || mf->pMethods != &vfile_methods || m->vfs != v) {
			rc = vfs_fail(v, SQLITE_CANTOPEN, "%s: no open veld database owns it", f->label);
			goto fail;
		}
		f->main = m;
	}
	f->base.pMethods = &vfile_methods;
	if (out_flags)
		*out_flags = flags;
	return SQLITE_OK;

fail:
	if (f->own_key && f->key)
		sodium_free(f->key);
	f->key = NULL;
	if (f->fd >= 0)
		os->xClose(os->ctx, f->fd);
	f->fd = -1;
	return rc;
}

static int dir_of(char *dir, size_t n, const char *path)
{
	const char *s = strrchr(path, '/');
	size_t len;
	if (!s) {
		snprintf(dir, n, ".");
		return 0;
	}
	len = s == path ? 1 : (size_t)(s - path);
	if (len >= n)
		return -1;
	memcpy(dir, path, len);
	dir[len] = '\0';
	return 0;
}

static int vx_delete(sqlite3_vfs *pv, const char *name, int sync_dir)
{
	veld_vfs *v = pv->pAppData;
	const veld_os *os = v->os;
	int r = os->xUnlink(os->ctx, name);
	if (r == -ENOENT)
		return SQLITE_IOERR_DELETE_NOENT;
	if (r != 0)
		return SQLITE_IOERR_DELETE;
	if (sync_dir) {
		char dir[4096];
		if (dir_of(dir, sizeof dir, name) != 0 || os->xSyncDir(os->ctx, dir) != 0)
			return SQLITE_IOERR_DIR_FSYNC;
	}
	return SQLITE_OK;
}

static int vx_access(sqlite3_vfs *pv, const char *name, int flags, int *out)
{
	veld_vfs *v = pv->pAppData;
	const veld_os *os = v->os;
	int kind = 0;
	int64_t size = 0;
	int r = os->xStat(os->ctx, name, &kind, &size);
	if (flags == SQLITE_ACCESS_EXISTS)
		*out = r == 0 && (!(kind & VELD_OS_ISREG) || size > 0);
	else
		*out = r == 0;
	return SQLITE_OK;
}

static int vx_full_pathname(sqlite3_vfs *pv, const char *name, int n, char *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xFullPathname(root, name, n, out);
}

static void *vx_dlopen(sqlite3_vfs *pv, const char *name)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xDlOpen(root, name);
}

static void vx_dlerror(sqlite3_vfs *pv, int n, char *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	root->xDlError(root, n, out);
}

static void (*vx_dlsym(sqlite3_vfs *pv, void *h, const char *sym))(void)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xDlSym(root, h, sym);
}

static void vx_dlclose(sqlite3_vfs *pv, void *h)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	root->xDlClose(root, h);
}

static int vx_randomness(sqlite3_vfs *pv, int n, char *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xRandomness(root, n, out);
}

static int vx_sleep(sqlite3_vfs *pv, int us)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xSleep(root, us);
}

static int vx_current_time(sqlite3_vfs *pv, double *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xCurrentTime(root, out);
}

static int vx_get_last_error(sqlite3_vfs *pv, int n, char *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	return root->xGetLastError ? root->xGetLastError(root, n, out) : 0;
}

static int vx_current_time_int64(sqlite3_vfs *pv, sqlite3_int64 *out)
{
	sqlite3_vfs *root = ((veld_vfs *)pv->pAppData)->root;
	if (root->iVersion >= 2 && root->xCurrentTimeInt64)
		return root->xCurrentTimeInt64(root, out);
	{
		double d = 0;
		int rc = root->xCurrentTime(root, &d);
		*out = (sqlite3_int64)(d * 86400000.0);
		return rc;
	}
}

/* ---- creating and destroying ------------------------------------------- */

static int vfs_new(veld_vfs **out, const veld_os *os, const char *name, int make_default,
                   const unsigned char *key, int cipher, veld_vfs_key_cb cb, void *payload,
                   veld_err *err)
{
	veld_vfs *v = NULL;
	sqlite3_vfs *root;
	int rc = 0, src;

	*out = NULL;
	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "libsodium failed to initialise");
		goto done;
	}
	if (key && cipher != VELD_CIPHER_XCHACHA20 && cipher != VELD_CIPHER_AES256GCM) {
		rc = veld_err__set(err, VELD_EINVALID, "unknown page cipher %d", cipher);
		goto done;
	}
	if (cipher == VELD_CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		rc = veld_err__set(err, VELD_ERROR, "AES-256-GCM is not available on this CPU");
		goto done;
	}
	root = sqlite3_vfs_find(NULL);
	if (root && root->xOpen == vx_open)
		root = ((veld_vfs *)root->pAppData)->root;
	if (!root) {
		rc = veld_err__set(err, VELD_ERROR, "SQLite has no default VFS");
		goto done;
	}
	v = calloc(1, sizeof *v);
	if (!v) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	if (key) {
		v->key = sodium_malloc(VELD_KEYBYTES);
		if (!v->key) {
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
			goto done;
		}
		memcpy(v->key, key, VELD_KEYBYTES);
	}
	if (name)
		snprintf(v->name, sizeof v->name, "%s", name);
	else
		snprintf(v->name, sizeof v->name, "veld-%llx",
		         (unsigned long long)(uintptr_t)v);
	v->root = root;
	v->os = os ? os : veld_os_default();
	v->cipher = cipher;
	v->key_cb = cb;
	v->payload = payload;
	v->busy_ms = VFS_BUSY_DEFAULT;

	v->base.iVersion = 2;
	v->base.szOsFile = (int)sizeof(vfile);
	v->base.mxPathname = root->mxPathname;
	v->base.zName = v->name;
	v->base.pAppData = v;
	v->base.xOpen = vx_open;
	v->base.xDelete = vx_delete;
	v->base.xAccess = vx_access;
	v->base.xFullPathname = vx_full_pathname;
	v->base.xDlOpen = vx_dlopen;
	v->base.xDlError = vx_dlerror;
	v->base.xDlSym = vx_dlsym;
	v->base.xDlClose = vx_dlclose;
	v->base.xRandomness = vx_randomness;
	v->base.xSleep = vx_sleep;
	v->base.xCurrentTime = vx_current_time;
	v->base.xGetLastError = vx_get_last_error;
	v->base.xCurrentTimeInt64 = vx_current_time_int64;

	src = sqlite3_vfs_register(&v->base, make_default);
	if (src != SQLITE_OK) {
		rc = veld_err__set(err, VELD_ERROR, "cannot register the veld VFS (%s)",
		                   sqlite3_errstr(src));
		goto done;
	}
	v->registered = 1;
	*out = v;
	v = NULL;

done:
	veld_vfs__destroy(v);
	return rc;
}

int veld_vfs__create(veld_vfs **out, const veld_os *os, const unsigned char *page_key,
                     int cipher, veld_err *err)
{
	if (!page_key)
		return veld_err__set(err, VELD_EINVALID, "no page key");
	return vfs_new(out, os, NULL, 0, page_key, cipher, NULL, NULL, err);
}

int veld_vfs__create_cb(veld_vfs **out, const veld_os *os, const char *name,
                        veld_vfs_key_cb key_cb, void *payload, int make_default, veld_err *err)
{
	if (!key_cb || !name)
		return veld_err__set(err, VELD_EINVALID, "a key callback and a name are required");
	return vfs_new(out, os, name, make_default, NULL, VELD_CIPHER_XCHACHA20, key_cb, payload,
	               err);
}

const char *veld_vfs__name(const veld_vfs *vfs)
{
	return vfs ? vfs->name : "";
}

void veld_vfs__clear_error(veld_vfs *vfs)
{
	if (vfs)
		vfs->last_error[0] = '\0';
}

const char *veld_vfs__last_error(const veld_vfs *vfs)
{
	return vfs ? vfs->last_error : "";
}

void veld_vfs__set_busy_timeout(veld_vfs *vfs, int ms)
{
	if (vfs)
		vfs->busy_ms = ms > 0 ? ms : VFS_BUSY_DEFAULT;
}

void veld_vfs__destroy(veld_vfs *vfs)
{
	if (!vfs)
		return;
	if (vfs->registered)
		sqlite3_vfs_unregister(&vfs->base);
	if (vfs->key)
		sodium_free(vfs->key);
	sodium_memzero(vfs, sizeof *vfs);
	free(vfs);
}

/* ---- guarding copies --------------------------------------------------- */

/* 1 if `uri` (an ATTACH argument) would be opened through a veld VFS. */
static int uri_is_veld(const char *uri)
{
	const char *q, *p;
	if (sqlite3_strnicmp(uri, "file:", 5) != 0)
		return 1; /* a plain name: the connection's own (veld) VFS */
	q = strchr(uri, '?');
	if (!q)
		return 1;
	for (p = q + 1; p && *p;) {
		if (strncmp(p, "vfs=", 4) == 0)
			return strncmp(p + 4, "veld", 4) == 0;
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return 1;
}

static int guard_auth(void *arg, int action, const char *a1, const char *a2, const char *a3,
                      const char *a4)
{
	(void)arg;
	(void)a2;
	(void)a3;
	(void)a4;
	if (action == SQLITE_ATTACH && (!a1 || !uri_is_veld(a1)))
		return SQLITE_DENY;
	return SQLITE_OK;
}

void veld_vfs__guard_attach(sqlite3 *db)
{
	sqlite3_set_authorizer(db, guard_auth, NULL);
}

/* ---- opening a veld database ------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql, veld_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		veld_err__set(err, VELD_ERROR, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

static int open_error(veld_vfs *vfs, sqlite3 *db, int rc, veld_err *err)
{
	const char *detail = vfs->last_error[0] ? vfs->last_error : sqlite3_errmsg(db);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return veld_err__set(err, VELD_EBUSY, "the database is in use elsewhere");
	case SQLITE_AUTH:
		return veld_err__set(err, VELD_EAUTH, "wrong passphrase");
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return veld_err__set(err, VELD_EINTEGRITY, "%s", detail);
	case SQLITE_IOERR:
		if ((rc == SQLITE_IOERR_DATA) && vfs->last_error[0])
			return veld_err__set(err, VELD_EINTEGRITY, "%s", vfs->last_error);
		return veld_err__set(err, VELD_ERROR, "I/O error opening the database (%s)",
		                     sqlite3_errstr(rc));
	case SQLITE_CANTOPEN:
		return veld_err__set(err, VELD_ENOTFOUND, "cannot open the database");
	default:
		return veld_err__set(err, VELD_ERROR, "cannot open the database (%s)",
		                     sqlite3_errstr(rc));
	}
}

int veld_vfs__open_db(sqlite3 **out, veld_vfs *vfs, const char *path, int create,
                      veld_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_file *file = NULL;
	sqlite3_int64 size = 0;
	veld_vfs_stats st;
	int rc = 0, src, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE;
	char sql[64];

	*out = NULL;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	vfs->last_error[0] = '\0';
	src = sqlite3_open_v2(path, &db, flags, vfs->name);
	if (src != SQLITE_OK) {
		rc = open_error(vfs, db, src, err);
		goto done;
	}
	sqlite3_extended_result_codes(db, 1);
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
	    !file || !file->pMethods || file->pMethods->xFileSize(file, &size) != SQLITE_OK) {
		rc = veld_err__set(err, VELD_ERROR, "cannot inspect the database file");
		goto done;
	}
	if (size == 0) {
		/* A new database: page size and reserve before anything is written. */
		int n = veld_vfs__reserve_bytes(((vfile *)file)->cipher);
		if (exec_sql(db, "PRAGMA page_size=4096", err) != SQLITE_OK) {
			rc = VELD_ERROR;
			goto done;
		}
		if (sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n) != SQLITE_OK) {
			rc = veld_err__set(err, VELD_ERROR, "cannot reserve bytes for the page seal");
			goto done;
		}
	}
	/* temp_store first: nothing below may spill to a temp file.  A 16 MB
	** page cache keeps the B-tree interiors of a large store in memory
	** between transactions (docs/store-format.md). */
	if ((src = exec_sql(db, "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0; PRAGMA cache_size=-16384", err)) !=
	        SQLITE_OK ||
	    (src = exec_sql(db, "PRAGMA journal_mode=WAL", err)) != SQLITE_OK ||
	    (src = exec_sql(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", err)) !=
	        SQLITE_OK) {
		int xrc = sqlite3_extended_errcode(db);
		if (vfs->last_error[0])
			rc = open_error(vfs, db, xrc, err);
		else if ((xrc & 0xff) == SQLITE_CORRUPT || (xrc & 0xff) == SQLITE_NOTADB)
			rc = veld_err__set(err, VELD_EINTEGRITY, "veld.db is damaged (%s)",
			                   sqlite3_errmsg(db));
		else if ((xrc & 0xff) == SQLITE_BUSY)
			rc = veld_err__set(err, VELD_EBUSY, "the database is in use elsewhere");
		else
			rc = VELD_ERROR; /* exec_sql set the message */
		goto done;
	}
	snprintf(sql, sizeof sql, "PRAGMA busy_timeout=%d", vfs->busy_ms);
	if (exec_sql(db, sql, err) != SQLITE_OK) {
		rc = VELD_ERROR;
		goto done;
	}

	/* Check what took effect: WAL, and the reserve in page 1's byte 20. */
	{
		sqlite3_stmt *st_jm = NULL;
		int wal = 0;
		if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st_jm, NULL) == SQLITE_OK &&
		    sqlite3_step(st_jm) == SQLITE_ROW)
			wal = sqlite3_stricmp((const char *)sqlite3_column_text(st_jm, 0), "wal") == 0;
		sqlite3_finalize(st_jm);
		if (!wal) {
			rc = veld_err__set(err, VELD_ERROR, "the database did not switch to WAL mode");
			goto done;
		}
	}
	if ((src = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		rc = open_error(vfs, db, src, err);
		goto done;
	}
	memset(&st, 0, sizeof st);
	if (sqlite3_file_control(db, "main", VELD_FCNTL_STATS, &st) != SQLITE_OK ||
	    st.page1_reserve < st.reserve) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "the database does not reserve %d bytes per page", st.reserve);
		goto done;
	}
	veld_vfs__guard_attach(db);
	*out = db;
	db = NULL;

done:
	sqlite3_close(db);
	return rc;
}

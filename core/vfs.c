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
** Files.  vfs.c is the VFS object: registration, the sqlite3_vfs methods
** but xOpen, the last integrity error, the ATTACH guard, and opening a
** connection with the pragmas veld needs.  vfs_page.c seals and opens one
** page (the page format above); vfs_file.c is one open file (xOpen, the
** sqlite3_io_methods, the main database's pages, the WAL index in heap
** memory); vfs_log.c is the WAL and the rollback journal.  They share the
** layouts of the VFS and of an open file through core.h, nothing else.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define VFS_BUSY_DEFAULT 5000

/* ---- sqlite3_vfs ------------------------------------------------------- */

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
	if (root && root->xOpen == veld_vfs__xopen)
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
	v->base.szOsFile = (int)sizeof(veld_vfs_file);
	v->base.mxPathname = root->mxPathname;
	v->base.zName = v->name;
	v->base.pAppData = v;
	v->base.xOpen = veld_vfs__xopen;
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

int veld_vfs__fail(veld_vfs *v, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->last_error, sizeof v->last_error, fmt, ap);
	va_end(ap);
	return rc;
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

/* A new database: page size and reserve before anything is written. */
static int prepare_new(sqlite3 *db, sqlite3_file *file, veld_err *err)
{
	int n = veld_vfs__reserve_bytes(((veld_vfs_file *)file)->cipher);
	if (exec_sql(db, "PRAGMA page_size=4096", err) != SQLITE_OK)
		return VELD_ERROR;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n) != SQLITE_OK)
		return veld_err__set(err, VELD_ERROR, "cannot reserve bytes for the page seal");
	return 0;
}

/* The pragmas of every veld connection.  temp_store first: nothing below
** may spill to a temp file.  A 16 MB page cache keeps the B-tree interiors
** of a large store in memory between transactions (docs/store-format.md). */
static int set_pragmas(veld_vfs *vfs, sqlite3 *db, veld_err *err)
{
	char sql[64];
	if (exec_sql(db, "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0; PRAGMA cache_size=-16384", err) !=
	        SQLITE_OK ||
	    exec_sql(db, "PRAGMA journal_mode=WAL", err) != SQLITE_OK ||
	    exec_sql(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", err) != SQLITE_OK) {
		int xrc = sqlite3_extended_errcode(db);
		if (vfs->last_error[0])
			return open_error(vfs, db, xrc, err);
		if ((xrc & 0xff) == SQLITE_CORRUPT || (xrc & 0xff) == SQLITE_NOTADB)
			return veld_err__set(err, VELD_EINTEGRITY, "veld.db is damaged (%s)",
			                     sqlite3_errmsg(db));
		if ((xrc & 0xff) == SQLITE_BUSY)
			return veld_err__set(err, VELD_EBUSY, "the database is in use elsewhere");
		return VELD_ERROR; /* exec_sql set the message */
	}
	snprintf(sql, sizeof sql, "PRAGMA busy_timeout=%d", vfs->busy_ms);
	if (exec_sql(db, sql, err) != SQLITE_OK)
		return VELD_ERROR;
	return 0;
}

/* Check what took effect: WAL, a readable schema, and the reserve in page
** 1's byte 20. */
static int check_effects(veld_vfs *vfs, sqlite3 *db, veld_err *err)
{
	sqlite3_stmt *st_jm = NULL;
	veld_vfs_stats st;
	int wal = 0, src;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st_jm, NULL) == SQLITE_OK &&
	    sqlite3_step(st_jm) == SQLITE_ROW)
		wal = sqlite3_stricmp((const char *)sqlite3_column_text(st_jm, 0), "wal") == 0;
	sqlite3_finalize(st_jm);
	if (!wal)
		return veld_err__set(err, VELD_ERROR, "the database did not switch to WAL mode");
	if ((src = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL)) !=
	    SQLITE_OK)
		return open_error(vfs, db, src, err);
	memset(&st, 0, sizeof st);
	if (sqlite3_file_control(db, "main", VELD_FCNTL_STATS, &st) != SQLITE_OK ||
	    st.page1_reserve < st.reserve)
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "the database does not reserve %d bytes per page", st.reserve);
	return 0;
}

int veld_vfs__open_db(sqlite3 **out, veld_vfs *vfs, const char *path, int create,
                      veld_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_file *file = NULL;
	sqlite3_int64 size = 0;
	int rc = 0, src, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE;

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
	if ((size == 0 && (rc = prepare_new(db, file, err))) || (rc = set_pragmas(vfs, db, err)) ||
	    (rc = check_effects(vfs, db, err)))
		goto done;
	veld_vfs__guard_attach(db);
	*out = db;
	db = NULL;

done:
	sqlite3_close(db);
	return rc;
}

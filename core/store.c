/*
** store.c — the store handle: what veld.h promises, built from the pieces
** of core/.
**
**
** A store is one directory:
**   veld.key   the master key, wrapped by the passphrase (keyfile.c)
**   veld.db    the SQLite database, every page sealed (vfs.c), in WAL mode;
**              its tables and their migrations are schema.c's
**   repo/      the device's git repository (sync/)
**
** The handle owns the open database and its VFS, the master key (in
** sodium_malloc'd memory from open to close, wiped on every path), this
** device's identity and hybrid logical clock, the error state, nested
** transactions, the audit log and the slots where sync/ and scripts/ keep
** per-handle state.  It also runs a query into a JSON array of rows
** (veld_store__rows_json) for every listing of core/.  Cases and records
** are cases.c's; this file must not know what a record holds.
**
** Every public call that changes something runs in one IMMEDIATE
** transaction: it all happens or none of it does.  Errors are reported on
** the handle (veld_errmsg); messages name ids, fields and files, never
** personal data.  Every public entry point starts with veld_store__enter.
*/
#include "core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

struct veld_store {
	veld_err err;
	const veld_os *os;
	char *dir;
	char *db_path;
	char *key_path;
	unsigned char *master; /* VELD_KEYBYTES, sodium_malloc */
	int cipher;
	veld_keyfile_params kparams;
	int busy_ms;
	int tx_depth; /* open transactions: 1 = BEGIN, more = savepoints */
	void *slot[VELD_STORE_SLOTS];
	void (*slot_free[VELD_STORE_SLOTS])(void *);
	veld_vfs *vfs;
	sqlite3 *db;
	char device_id[VELD_DEVICE_ID_LEN + 1];
	veld_stamp hlc;
};

/* ---- small helpers ------------------------------------------------------- */

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void hex_encode(char *out, const unsigned char *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

/* A fresh random id: 16 random bytes as 32 lowercase hex digits. */
void veld_store__new_id(veld_store *s, char *out)
{
	unsigned char rnd[16];
	s->os->xRandom(s->os->ctx, rnd, sizeof rnd);
	hex_encode(out, rnd, sizeof rnd);
}

/* Map a SQLite failure to a veld error with a message. */
static int db_fail(veld_store *s, int rc, const char *what)
{
	const char *vmsg = s->vfs ? veld_vfs__last_error(s->vfs) : "";
	int code = VELD_ERROR;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = VELD_EBUSY;
		return veld_err__set(&s->err, code, "%s: the store is in use by another process", what);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_IOERR:
		if (vmsg && *vmsg) {
			code = veld_err__set(&s->err, VELD_EINTEGRITY, "%s: %s", what, vmsg);
			veld_vfs__clear_error(s->vfs);
			return code;
		}
		if ((rc & 0xff) != SQLITE_IOERR)
			code = VELD_EINTEGRITY;
		break;
	default:
		break;
	}
	return veld_err__set(&s->err, code, "%s: %s", what,
	                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int exec_sql(veld_store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_fail(s, rc, what);
}

/* Transactions nest: the outermost is BEGIN IMMEDIATE ... COMMIT, inner
** ones are savepoints, so a bulk operation (import) can wrap many calls
** that each open their own and still be all or nothing. */
static int begin(veld_store *s)
{
	char sql[48];
	int rc;
	if (s->tx_depth == 0)
		rc = exec_sql(s, "BEGIN IMMEDIATE", "begin transaction");
	else {
		snprintf(sql, sizeof sql, "SAVEPOINT veld_%d", s->tx_depth);
		rc = exec_sql(s, sql, "begin transaction");
	}
	if (rc == 0)
		s->tx_depth++;
	return rc;
}

static int finish(veld_store *s, int rc)
{
	char sql[64];
	if (s->tx_depth <= 0)
		return rc ? rc : veld_err__set(&s->err, VELD_ERROR, "no transaction to finish");
	s->tx_depth--;
	if (s->tx_depth > 0) {
		if (rc)
			snprintf(sql, sizeof sql, "ROLLBACK TO veld_%d; RELEASE veld_%d", s->tx_depth, s->tx_depth);
		else
			snprintf(sql, sizeof sql, "RELEASE veld_%d", s->tx_depth);
		sqlite3_exec(s->db, sql, NULL, NULL, NULL);
		return rc;
	}
	if (rc == 0) {
		int r = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
		if (r != SQLITE_OK) {
			rc = db_fail(s, r, "commit");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		}
	} else {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

static int meta_put(veld_store *s, const char *key, const void *val, int n)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
	                            -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, val, n, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, "write store metadata");
}

/* Read meta `key` into buf (at most cap bytes); returns its length or an error. */
static int meta_get(veld_store *s, const char *key, void *buf, int cap)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
	int n = 0;
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "read store metadata");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_bytes(st, 0);
		if (n > cap) {
			n = veld_err__set(&s->err, VELD_EINTEGRITY, "store metadata '%s' is too long", key);
		} else {
			memcpy(buf, sqlite3_column_blob(st, 0), (size_t)n);
		}
	} else if (rc == SQLITE_DONE) {
		n = veld_err__set(&s->err, VELD_EINTEGRITY, "store metadata '%s' is missing", key);
	} else {
		n = db_fail(s, rc, "read store metadata");
	}
	sqlite3_finalize(st);
	return n;
}

/* Next HLC stamp for a local write; persisted in the same transaction. */
static int next_stamp(veld_store *s, veld_stamp *out)
{
	char buf[64];
	int n;
	veld_hlc__next(out, &s->hlc, s->os->xClockMs(s->os->ctx), s->device_id);
	n = snprintf(buf, sizeof buf, "%lld:%u", (long long)s->hlc.wall, (unsigned)s->hlc.counter);
	return meta_put(s, "hlc", buf, n);
}

static int load_hlc(veld_store *s)
{
	char buf[64];
	long long wall = 0;
	unsigned counter = 0;
	int n = meta_get(s, "hlc", buf, (int)sizeof buf - 1);
	if (n < 0)
		return n;
	buf[n] = '\0';
	if (sscanf(buf, "%lld:%u", &wall, &counter) != 2)
		return veld_err__set(&s->err, VELD_EINTEGRITY, "store clock is malformed");
	memset(&s->hlc, 0, sizeof s->hlc);
	s->hlc.wall = wall;
	s->hlc.counter = counter;
	memcpy(s->hlc.device, s->device_id, sizeof s->hlc.device);
	return 0;
}

static int audit(veld_store *s, const char *action, const char *case_id, const char *record_id)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db,
	                            "INSERT INTO audit(at, device, action, case_id, record_id)"
	                            " VALUES(?1, ?2, ?3, ?4, ?5)",
	                            -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, s->os->xClockMs(s->os->ctx));
		sqlite3_bind_text(st, 2, s->device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, case_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, record_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, "write audit log");
}

/* ---- opening and closing --------------------------------------------------- */

void veld_store_options_init(veld_store_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->version = VELD_STORE_OPTIONS_VERSION;
}

static veld_store *store_alloc(const char *dir, const veld_store_options *opts)
{
	veld_store *s;
	if (sodium_init() < 0)
		return NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->os = (opts && opts->os) ? opts->os : veld_os_default();
	s->dir = strdup(dir ? dir : "");
	s->db_path = join_path(s->dir ? s->dir : "", VELD_DB_NAME);
	s->key_path = join_path(s->dir ? s->dir : "", VELD_KEYFILE_NAME);
	s->master = sodium_malloc(VELD_KEYBYTES);
	s->busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
	if (opts) {
		s->kparams.cipher = opts->cipher;
		s->kparams.opslimit = opts->pwhash_opslimit;
		s->kparams.memlimit = opts->pwhash_memlimit;
	}
	if (!s->dir || !s->db_path || !s->key_path || !s->master) {
		veld_store_close(s);
		return NULL;
	}
	return s;
}

/* Open the database through a VFS keyed with the page subkey. */
static int open_database(veld_store *s, int create)
{
	unsigned char *page_key = sodium_malloc(VELD_KEYBYTES);
	int rc;
	if (!page_key)
		return veld_err__set(&s->err, VELD_ERROR, "out of memory");
	veld_key__derive(page_key, s->master, VELD_SUBKEY_PAGES);
	rc = veld_vfs__create(&s->vfs, s->os, page_key, s->cipher, &s->err);
	sodium_free(page_key);
	if (rc != 0)
		return rc;
	veld_vfs__set_busy_timeout(s->vfs, s->busy_ms);
	return veld_vfs__open_db(&s->db, s->vfs, s->db_path, create, &s->err);
}

static int check_role(veld_store *s, const char *role)
{
	if (!role || (strcmp(role, "office") && strcmp(role, "assistant") && strcmp(role, "volunteer")))
		return veld_err__set(&s->err, VELD_EINVALID,
		                     "role must be office, assistant or volunteer");
	return 0;
}

/* Generate this device's identity: Ed25519 signing keys and X25519 box keys.
** The device id is the first 16 bytes of BLAKE2b(signing public key). */
static int create_identity(veld_store *s, const veld_store_options *opts)
{
	unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES], box_pk[crypto_box_PUBLICKEYBYTES];
	unsigned char *sign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	unsigned char *box_sk = sodium_malloc(crypto_box_SECRETKEYBYTES);
	unsigned char idbin[16];
	const char *name = opts && opts->device_name ? opts->device_name : "device";
	int rc = 0;
	if (!sign_sk || !box_sk) {
		rc = veld_err__set(&s->err, VELD_ERROR, "out of memory");
		goto done;
	}
	crypto_sign_keypair(sign_pk, sign_sk);
	crypto_box_keypair(box_pk, box_sk);
	crypto_generichash(idbin, sizeof idbin, sign_pk, sizeof sign_pk, NULL, 0);
	hex_encode(s->device_id, idbin, sizeof idbin);
	if ((rc = meta_put(s, "device_id", s->device_id, VELD_DEVICE_ID_LEN)) ||
	    (rc = meta_put(s, "device_name", name, (int)strlen(name))) ||
	    (rc = meta_put(s, "device_role", opts->device_role, (int)strlen(opts->device_role))) ||
	    (rc = meta_put(s, "sign_pk", sign_pk, sizeof sign_pk)) ||
	    (rc = meta_put(s, "sign_sk", sign_sk, crypto_sign_SECRETKEYBYTES)) ||
	    (rc = meta_put(s, "box_pk", box_pk, sizeof box_pk)) ||
	    (rc = meta_put(s, "box_sk", box_sk, crypto_box_SECRETKEYBYTES)) ||
	    (rc = meta_put(s, "hlc", "0:0", 3)))
		goto done;
done:
	sodium_free(sign_sk); /* sodium_free wipes before freeing */
	sodium_free(box_sk);
	return rc;
}

static int load_identity(veld_store *s)
{
	int n = veld_schema__check(s);
	if (n < 0)
		return n;
	n = meta_get(s, "device_id", s->device_id, VELD_DEVICE_ID_LEN);
	if (n < 0)
		return n;
	if (n != VELD_DEVICE_ID_LEN)
		return veld_err__set(&s->err, VELD_EINTEGRITY, "store device id is malformed");
	s->device_id[VELD_DEVICE_ID_LEN] = '\0';
	return load_hlc(s);
}

int veld_store_create(veld_store **out, const char *dir, const char *pass, size_t pass_len,
                      const veld_store_options *opts)
{
	veld_store_options defaults;
	veld_store *s;
	int rc = 0, made_key = 0, flags = 0;
	*out = NULL;
	if (!opts) {
		veld_store_options_init(&defaults);
		opts = &defaults;
	}
	s = store_alloc(dir, opts);
	if (!s)
		return VELD_ERROR;
	*out = s;
	if (!dir || !*dir)
		return veld_err__set(&s->err, VELD_EINVALID, "no store directory given");
	if ((rc = check_role(s, opts->device_role)))
		return rc;
	if (s->os->xStat(s->os->ctx, dir, &flags, NULL) != 0) {
		int r = s->os->xMkdir(s->os->ctx, dir, 0700);
		if (r != 0)
			return veld_err__set(&s->err, VELD_ERROR, "cannot create %s: %s", dir, strerror(-r));
	} else if (!(flags & VELD_OS_ISDIR)) {
		return veld_err__set(&s->err, VELD_EINVALID, "%s is not a directory", dir);
	}
	if (s->os->xStat(s->os->ctx, s->key_path, NULL, NULL) == 0 ||
	    s->os->xStat(s->os->ctx, s->db_path, NULL, NULL) == 0)
		return veld_err__set(&s->err, VELD_EEXISTS, "%s already holds a store", dir);

	rc = veld_keyfile__create(s->master, &s->cipher, s->os, s->key_path, pass, pass_len,
	                          &s->kparams, &s->err);
	if (rc)
		goto done;
	made_key = 1;
	if ((rc = open_database(s, 1)))
		goto done;
	if ((rc = begin(s)))
		goto done;
	rc = veld_schema__create(s);
	if (!rc)
		rc = create_identity(s, opts);
	if (!rc)
		rc = load_hlc(s);
	if (!rc)
		rc = audit(s, "create-store", NULL, NULL);
	rc = finish(s, rc);
done:
	if (rc && made_key) {
		/* All or nothing: a half-made store is removed again. */
		char *wal = NULL;
		sqlite3_close(s->db);
		s->db = NULL;
		s->os->xUnlink(s->os->ctx, s->db_path);
		wal = malloc(strlen(s->db_path) + 5);
		if (wal) {
			sprintf(wal, "%s-wal", s->db_path);
			s->os->xUnlink(s->os->ctx, wal);
			free(wal);
		}
		s->os->xUnlink(s->os->ctx, s->key_path);
	}
	return rc;
}

int veld_store_open(veld_store **out, const char *dir, const char *pass, size_t pass_len,
                    const veld_store_options *opts)
{
	veld_store *s;
	int rc, flags = 0;
	*out = NULL;
	s = store_alloc(dir, opts);
	if (!s)
		return VELD_ERROR;
	*out = s;
	if (!dir || !*dir)
		return veld_err__set(&s->err, VELD_EINVALID, "no store directory given");
	if (s->os->xStat(s->os->ctx, dir, &flags, NULL) != 0 || !(flags & VELD_OS_ISDIR))
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no store at %s", dir);
	rc = veld_keyfile__open(s->master, &s->cipher, s->os, s->key_path, pass, pass_len, &s->err);
	if (rc)
		return rc;
	if (s->os->xStat(s->os->ctx, s->db_path, NULL, NULL) != 0)
		return veld_err__set(&s->err, VELD_EINTEGRITY, "%s is missing", s->db_path);
	if ((rc = open_database(s, 0)) || (rc = veld_schema__migrate(s)))
		return rc;
	return load_identity(s);
}

void veld_store_close(veld_store *s)
{
	int i;
	if (!s)
		return;
	for (i = 0; i < VELD_STORE_SLOTS; i++)
		if (s->slot[i] && s->slot_free[i])
			s->slot_free[i](s->slot[i]);
	if (s->db)
		sqlite3_close(s->db);
	veld_vfs__destroy(s->vfs);
	sodium_free(s->master);
	sodium_memzero(&s->hlc, sizeof s->hlc);
	free(s->dir);
	free(s->db_path);
	free(s->key_path);
	free(s);
}

const char *veld_errmsg(const veld_store *s)
{
	if (!s)
		return "out of memory";
	return s->err.msg;
}

int veld_errcode(const veld_store *s)
{
	return s ? s->err.code : VELD_ERROR;
}

const char *veld_version(void)
{
	return VELD_VERSION_STRING;
}

int veld_version_number(void)
{
	return VELD_VERSION_NUMBER;
}

void veld_free(void *p)
{
	free(p);
}

int veld_store__enter(veld_store *s)
{
	if (!s)
		return VELD_ERROR;
	veld_err__clear(&s->err);
	if (!s->db)
		return veld_err__set(&s->err, VELD_ERROR, "store is not open");
	return 0;
}

int veld_store_passwd(veld_store *s, const char *new_pass, size_t new_len)
{
	int rc = veld_store__enter(s);
	if (rc)
		return rc;
	return veld_keyfile__rewrap(s->os, s->key_path, s->master, s->cipher, new_pass, new_len,
	                            &s->kparams, &s->err);
}

int veld_store_compact(veld_store *s)
{
	int rc;
	if ((rc = veld_store__enter(s)) || (rc = exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint")))
		return rc;
	if ((rc = exec_sql(s, "VACUUM", "compact")))
		return rc;
	return exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
}

/* ---- JSON results ---------------------------------------------------------- */

int veld_store__json_out(char **out, veld_store *s, json_t *j)
{
	char *txt;
	if (!j)
		return veld_err__set(&s->err, VELD_ERROR, "out of memory");
	txt = json_dumps(j, VELD_RECORD_CANON_FLAGS);
	json_decref(j);
	if (!txt)
		return veld_err__set(&s->err, VELD_ERROR, "out of memory");
	*out = txt;
	return 0;
}

int veld_store_device_json(char **out, veld_store *s)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], bpk[crypto_box_PUBLICKEYBYTES];
	char hex1[2 * sizeof pk + 1], hex2[2 * sizeof bpk + 1], name[256], role[32];
	int n1, n2, rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = meta_get(s, "sign_pk", pk, sizeof pk)) < 0 || (rc = meta_get(s, "box_pk", bpk, sizeof bpk)) < 0)
		return rc;
	if ((n1 = meta_get(s, "device_name", name, (int)sizeof name - 1)) < 0)
		return n1;
	if ((n2 = meta_get(s, "device_role", role, (int)sizeof role - 1)) < 0)
		return n2;
	name[n1] = '\0';
	role[n2] = '\0';
	hex_encode(hex1, pk, sizeof pk);
	hex_encode(hex2, bpk, sizeof bpk);
	return veld_store__json_out(out, s,
	                json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", s->device_id, "name", name, "role",
	                          role, "sign_pk", hex1, "box_pk", hex2));
}

static int rows_v(json_t *arr, veld_store *s, const char *what, veld_store_row_fn row, void *payload,
                  const char *sql, const char *binds, va_list ap)
{
	sqlite3_stmt *st = NULL;
	int rc, i;
	if (!arr)
		return veld_err__oom(&s->err);
	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) != SQLITE_OK)
		return db_fail(s, rc, what);
	for (i = 0; binds[i]; i++) {
		if (binds[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
		else
			sqlite3_bind_int(st, i + 1, va_arg(ap, int));
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = row(arr, s, st, payload)))
			goto done;
	rc = rc == SQLITE_DONE ? 0 : db_fail(s, rc, what);
done:
	sqlite3_finalize(st);
	return rc;
}

int veld_store__rows_json(json_t *arr, veld_store *s, const char *what, veld_store_row_fn row, void *payload,
                          const char *sql, const char *binds, ...)
{
	va_list ap;
	int rc;
	va_start(ap, binds);
	rc = rows_v(arr, s, what, row, payload, sql, binds, ap);
	va_end(ap);
	return rc;
}

int veld_store__list_json(char **out, veld_store *s, const char *what, veld_store_row_fn row, void *payload,
                          const char *sql, const char *binds, ...)
{
	json_t *arr;
	va_list ap;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	arr = json_array();
	va_start(ap, binds);
	rc = rows_v(arr, s, what, row, payload, sql, binds, ap);
	va_end(ap);
	if (!rc)
		return veld_store__json_out(out, s, arr);
	json_decref(arr);
	return rc;
}

/* ---- audit log, verify ------------------------------------------------------- */

static int audit_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	json_t *e = json_pack("{s:I, s:I, s:s, s:s}", "seq", (json_int_t)sqlite3_column_int64(st, 0), "at",
	                      (json_int_t)sqlite3_column_int64(st, 1), "device", (const char *)sqlite3_column_text(st, 2),
	                      "action", (const char *)sqlite3_column_text(st, 3));
	(void)payload;
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		json_object_set_new(e, "case", json_string((const char *)sqlite3_column_text(st, 4)));
	if (sqlite3_column_type(st, 5) != SQLITE_NULL)
		json_object_set_new(e, "record", json_string((const char *)sqlite3_column_text(st, 5)));
	return json_array_append_new(arr, e) ? veld_err__oom(&s->err) : 0;
}

int veld_audit_json(char **out, veld_store *s, const char *case_id)
{
	return veld_store__list_json(out, s, "read audit log", audit_row, NULL,
	                             "SELECT seq, at, device, action, case_id, record_id FROM audit"
	                             " WHERE ?1 IS NULL OR case_id = ?1 ORDER BY seq",
	                             "t", case_id);
}

/* What integrity_check found, in one line: a page that failed to
** authenticate as the VFS names it ("page 15 of veld.db fails
** authentication"), else the first line of SQLite's report. */
static int integrity_failed(veld_store *s, const char *report)
{
	static const char head[] = "*** in database main ***\n";
	const char *vmsg = s->vfs ? veld_vfs__last_error(s->vfs) : "";
	size_t n;
	int rc;
	if (vmsg && *vmsg) {
		rc = veld_err__set(&s->err, VELD_EINTEGRITY, "%s", vmsg);
		veld_vfs__clear_error(s->vfs);
		return rc;
	}
	if (!strncmp(report, head, sizeof head - 1))
		report += sizeof head - 1;
	n = strcspn(report, "\n");
	return veld_err__set(&s->err, VELD_EINTEGRITY, "database integrity check failed: %.*s", (int)(n < 200 ? n : 200),
	                     report);
}

int veld_store_verify(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc;
	long n = 0;
	if ((rc = veld_store__enter(s)))
		return rc;
	/* integrity_check reads every page, so every page's tag is checked. */
	rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "verify");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_fail(s, rc, "verify");
		sqlite3_finalize(st);
		return rc;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ok")) {
		rc = integrity_failed(s, (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	/* Every record parses and is stored in canonical form. */
	rc = sqlite3_prepare_v2(s->db, "SELECT id, state FROM records", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "verify");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_record *r = NULL;
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *state = (const char *)sqlite3_column_text(st, 1);
		char *canon;
		int prc = veld_record__parse(&r, state, (size_t)sqlite3_column_bytes(st, 1), &s->err);
		if (prc) {
			char why[sizeof s->err.msg];
			memcpy(why, s->err.msg, sizeof why); /* not formatted into itself */
			veld_err__set(&s->err, VELD_EINTEGRITY, "record %s: %s", id, why);
			sqlite3_finalize(st);
			return VELD_EINTEGRITY;
		}
		canon = veld_record__canonical(r);
		prc = !canon || strcmp(canon, state) || strcmp(veld_record__id(r), id);
		free(canon);
		veld_record__free(r);
		if (prc) {
			sqlite3_finalize(st);
			return veld_err__set(&s->err, VELD_EINTEGRITY, "record %s is not in canonical form", id);
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "verify");
	return 0;
}

/* ---- internals for sync/ and scripts/ -------------------------------------- */

sqlite3 *veld_store__db(veld_store *s) { return s->db; }
veld_err *veld_store__err(veld_store *s) { return &s->err; }
const veld_os *veld_store__os(veld_store *s) { return s->os; }
const char *veld_store__dir(veld_store *s) { return s->dir; }
const char *veld_store__device_id(veld_store *s) { return s->device_id; }
int veld_store__begin(veld_store *s) { return begin(s); }
int veld_store__finish(veld_store *s, int rc) { return finish(s, rc); }
int veld_store__db_fail(veld_store *s, int sqlite_rc, const char *what) { return db_fail(s, sqlite_rc, what); }
int veld_store__exec(veld_store *s, const char *sql, const char *what) { return exec_sql(s, sql, what); }

int veld_store__meta_get(veld_store *s, const char *key, void *buf, int cap)
{
	int n = meta_get(s, key, buf, cap);
	if (n < 0 && strstr(s->err.msg, "is missing"))
		n = veld_err__set(&s->err, VELD_ENOTFOUND, "store metadata '%s' is missing", key);
	return n;
}

int veld_store__meta_put(veld_store *s, const char *key, const void *val, int n)
{
	return meta_put(s, key, val, n);
}

void veld_store__observe(veld_store *s, const veld_stamp *stamp)
{
	veld_hlc__observe(&s->hlc, stamp, s->os->xClockMs(s->os->ctx));
}

int veld_store__stamp(veld_store *s, veld_stamp *out)
{
	return next_stamp(s, out);
}

void veld_store__today(char out[11], veld_store *s)
{
	time_t now = (time_t)(s->os->xClockMs(s->os->ctx) / 1000);
	struct tm tmv;
	if (!gmtime_r(&now, &tmv) || !strftime(out, 11, "%Y-%m-%d", &tmv))
		snprintf(out, 11, "1970-01-01");
}

int veld_store__audit(veld_store *s, const char *action, const char *case_id, const char *record_id)
{
	return audit(s, action, case_id, record_id);
}

void *veld_store__slot(veld_store *s, int which)
{
	return which >= 0 && which < VELD_STORE_SLOTS ? s->slot[which] : NULL;
}

void veld_store__set_slot(veld_store *s, int which, void *ptr, void (*free_fn)(void *))
{
	if (which < 0 || which >= VELD_STORE_SLOTS)
		return;
	if (s->slot[which] && s->slot_free[which])
		s->slot_free[which](s->slot[which]);
	s->slot[which] = ptr;
	s->slot_free[which] = free_fn;
}

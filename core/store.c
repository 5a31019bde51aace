/*
** store.c — the store handle: what veld.h promises, built from the pieces
** of core/.
**
** A store is one directory:
**   veld.key   the master key, wrapped by the passphrase (keyfile.c)
**   veld.db    the SQLite database, every page sealed (vfs.c), in WAL mode
**   repo/      the device's git repository (sync/, later)
**
** The database holds:
**   meta(key, value)     schema version, this device's identity and keys,
**                        the hybrid logical clock's last stamp
**   records(id, case_id, form, state, deleted, conflicts, dirty)
**                        one row per record; `state` is the record's
**                        canonical JSON (record.c).  A case's header (name,
**                        postcode, ...) is itself a record with form "_case"
**                        and id == case id, so cases merge like records.
**   audit(seq, at, device, action, case_id, record_id)
**                        every open, change, share and export of a case
**   case_keys, key_shares, devices, sync_refs, erased
**                        sync state (sync/, docs/sync.md)
**
** meta's schema_version says which of these layouts a file has; an older
** one is migrated when the store is opened (migrate), in one transaction.
**
** Every public call that changes something runs in one IMMEDIATE
** transaction: it all happens or none of it does.  Errors are reported on
** the handle (veld_errmsg); messages name ids, fields and files, never
** personal data.  The master key lives in sodium_malloc'd memory from open
** to close and is wiped on every path.
*/
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* 2: case_keys keyed by (case_id, compartment), WITHOUT ROWID (migrate_1_2). */
#define SCHEMA_VERSION 2

/* A case's keys sit together in the table itself: the lookups of a sync
** (by case, and by case and compartment) read one leaf, not an index leaf
** and then a row.  key_shares points at key_id, hence UNIQUE. */
#define CASE_KEYS_SQL(name)                                                                                            \
	"CREATE TABLE " name "("                                                                                       \
	"  case_id TEXT NOT NULL,"                                                                                     \
	"  compartment TEXT NOT NULL,"                                                                                 \
	"  key_id TEXT NOT NULL UNIQUE,"                                                                               \
	"  key BLOB NOT NULL,"                                                                                         \
	"  PRIMARY KEY(case_id, compartment)) WITHOUT ROWID;"

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

static const char *const schema_sql =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE records("
	"  id TEXT PRIMARY KEY,"
	"  case_id TEXT NOT NULL,"
	"  form TEXT NOT NULL,"
	"  compartment TEXT NOT NULL DEFAULT 'social',"
	"  state TEXT NOT NULL,"
	"  deleted INTEGER NOT NULL DEFAULT 0,"
	"  conflicts INTEGER NOT NULL DEFAULT 0,"
	"  dirty INTEGER NOT NULL DEFAULT 1);"
	"CREATE INDEX records_case ON records(case_id, form);"
	/* What the next sync must commit, and the conflicts: both small sets. */
	"CREATE INDEX records_dirty ON records(id) WHERE dirty;"
	"CREATE INDEX records_conflicts ON records(case_id, id) WHERE conflicts > 0;"
	"CREATE TABLE audit("
	"  seq INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  device TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  case_id TEXT,"
	"  record_id TEXT);"
	"CREATE INDEX audit_case ON audit(case_id);"
	/* Sync state (sync/, docs/sync.md). */
	CASE_KEYS_SQL("case_keys")
	"CREATE TABLE key_shares("
	"  key_id TEXT NOT NULL REFERENCES case_keys(key_id) ON DELETE CASCADE,"
	"  recipient TEXT NOT NULL,"
	"  PRIMARY KEY(key_id, recipient)) WITHOUT ROWID;"
	"CREATE TABLE devices("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  role TEXT NOT NULL,"
	"  region TEXT NOT NULL,"
	"  sign_pk BLOB NOT NULL,"
	"  box_pk BLOB NOT NULL,"
	"  revoked INTEGER NOT NULL DEFAULT 0,"
	"  published INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE sync_refs(ref TEXT PRIMARY KEY, oid TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE erased(case_id TEXT PRIMARY KEY, published INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;";

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
static void new_id(veld_store *s, char *out)
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

/* Load a record by id.  VELD_ENOTFOUND if absent. */
static int load_record(veld_record **out, veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*out = NULL;
	rc = sqlite3_prepare_v2(s->db, "SELECT state FROM records WHERE id = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "read record");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = veld_record__parse(out, (const char *)sqlite3_column_text(st, 0),
		                        (size_t)sqlite3_column_bytes(st, 0), &s->err);
	} else if (rc == SQLITE_DONE) {
		rc = veld_err__set(&s->err, VELD_ENOTFOUND, "no record %s", id);
	} else {
		rc = db_fail(s, rc, "read record");
	}
	sqlite3_finalize(st);
	return rc;
}

/* The record whose state is in column `col` of the current row. */
static int row_record(veld_record **out, veld_store *s, sqlite3_stmt *st, int col)
{
	return veld_record__parse(out, (const char *)sqlite3_column_text(st, col),
	                          (size_t)sqlite3_column_bytes(st, col), &s->err);
}

static int count_conflicts(const veld_record *r)
{
	json_t *view = veld_record__view(r);
	int n = view ? (int)json_object_size(json_object_get(view, "conflicts")) : 0;
	json_decref(view);
	return n;
}

/* Write a record row from its state; `dirty` marks it for the next sync's
** commit.  `compartment` (NULL: keep the row's, or "social" for a new row)
** says which case key seals it. */
static int save_record(veld_store *s, const veld_record *r, int dirty, const char *compartment)
{
	sqlite3_stmt *st = NULL;
	char *canon = veld_record__canonical(r);
	int rc;
	if (!canon)
		return veld_err__set(&s->err, VELD_ERROR, "out of memory");
	rc = sqlite3_prepare_v2(s->db,
	                        "INSERT INTO records(id, case_id, form, compartment, state, deleted, conflicts, dirty)"
	                        " VALUES(?1, ?2, ?3, coalesce(?8, 'social'), ?4, ?5, ?6, ?7)"
	                        " ON CONFLICT(id) DO UPDATE SET state = excluded.state, deleted = excluded.deleted,"
	                        " conflicts = excluded.conflicts, dirty = excluded.dirty,"
	                        " compartment = coalesce(?8, compartment)",
	                        -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, veld_record__id(r), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, veld_record__case(r), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, veld_record__form(r), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, canon, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, veld_record__is_deleted(r));
		sqlite3_bind_int(st, 6, count_conflicts(r));
		sqlite3_bind_int(st, 7, dirty);
		sqlite3_bind_text(st, 8, compartment, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	free(canon);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, "write record");
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
	char ver[16];
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
	snprintf(ver, sizeof ver, "%d", SCHEMA_VERSION);
	if ((rc = meta_put(s, "schema_version", ver, (int)strlen(ver))) ||
	    (rc = meta_put(s, "device_id", s->device_id, VELD_DEVICE_ID_LEN)) ||
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

/* meta's schema_version into *ver (its text, for messages, in buf). */
static int schema_version(veld_store *s, int *ver, char *buf, int cap)
{
	int n = meta_get(s, "schema_version", buf, cap - 1);
	if (n < 0)
		return n;
	buf[n] = '\0';
	*ver = atoi(buf);
	return 0;
}

static int load_identity(veld_store *s)
{
	char buf[16];
	int ver = 0, n = schema_version(s, &ver, buf, (int)sizeof buf);
	if (n < 0)
		return n;
	if (ver != SCHEMA_VERSION)
		return veld_err__set(&s->err, VELD_EINTEGRITY, "store schema version %s is not supported", buf);
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
	rc = exec_sql(s, schema_sql, "create schema");
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

/* Schema 1 to 2: case_keys rebuilt WITHOUT ROWID (SQLite's way to change
** a table: make the new one, copy, drop the old, rename), in one
** transaction, so a store is either as it was or migrated.  Foreign keys
** are off around it, or dropping the old table would delete every
** key_shares row through its ON DELETE CASCADE; they are checked before
** the commit. */
static int migrate_1_2(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc, on;
	if ((rc = exec_sql(s, "PRAGMA foreign_keys=OFF", "migrate the store")))
		return rc;
	rc = begin(s);
	if (!rc)
		rc = exec_sql(s,
		              CASE_KEYS_SQL("case_keys_2") "INSERT INTO case_keys_2(case_id, compartment, key_id, key)"
		                                           " SELECT case_id, compartment, key_id, key FROM case_keys;"
		                                           "DROP TABLE case_keys;"
		                                           "ALTER TABLE case_keys_2 RENAME TO case_keys;",
		              "migrate the store to schema 2");
	if (!rc && (on = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL)) != SQLITE_OK)
		rc = db_fail(s, on, "check the store's foreign keys");
	else if (!rc && (on = sqlite3_step(st)) == SQLITE_ROW)
		rc = veld_err__set(&s->err, VELD_EINTEGRITY, "store migration: a key share names no key");
	else if (!rc && on != SQLITE_DONE)
		rc = db_fail(s, on, "check the store's foreign keys");
	sqlite3_finalize(st);
	if (!rc)
		rc = meta_put(s, "schema_version", "2", 1);
	rc = finish(s, rc);
	on = exec_sql(s, "PRAGMA foreign_keys=ON", "migrate the store");
	return rc ? rc : on;
}

/* Bring an older store's schema to SCHEMA_VERSION (load_identity refuses
** any other). */
static int migrate(veld_store *s)
{
	char buf[16];
	int ver = 0, rc = schema_version(s, &ver, buf, (int)sizeof buf);
	if (rc < 0)
		return rc;
	return ver == 1 ? migrate_1_2(s) : 0;
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
	if ((rc = open_database(s, 0)) || (rc = migrate(s)))
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

#define CHECK_OPEN(s)                                  \
	do {                                           \
		int enter_rc_ = veld_store__enter(s);  \
		if (enter_rc_)                         \
			return enter_rc_;              \
	} while (0)

int veld_store_passwd(veld_store *s, const char *new_pass, size_t new_len)
{
	CHECK_OPEN(s);
	return veld_keyfile__rewrap(s->os, s->key_path, s->master, s->cipher, new_pass, new_len,
	                            &s->kparams, &s->err);
}

int veld_store_compact(veld_store *s)
{
	int rc;
	CHECK_OPEN(s);
	if ((rc = exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint")))
		return rc;
	if ((rc = exec_sql(s, "VACUUM", "compact")))
		return rc;
	return exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
}

/* ---- JSON results ---------------------------------------------------------- */

static int dump_out(char **out, veld_store *s, json_t *j)
{
	char *txt;
	if (!j)
		return veld_err__set(&s->err, VELD_ERROR, "out of memory");
	txt = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
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
	CHECK_OPEN(s);
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
	return dump_out(out, s,
	                json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", s->device_id, "name", name, "role",
	                          role, "sign_pk", hex1, "box_pk", hex2));
}

/* ---- cases ------------------------------------------------------------------ */

static int valid_date(const char *d)
{
	int y, m, day;
	char tail;
	if (!d || strlen(d) != 10 || sscanf(d, "%4d-%2d-%2d%c", &y, &m, &day, &tail) != 3)
		return 0;
	return y >= 1900 && y <= 2200 && m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

/* Check a case header object; names the field at fault. */
static int check_header(veld_store *s, json_t *h, int creating)
{
	const char *key;
	json_t *v;
	json_object_foreach(h, key, v)
	{
		if (!strncmp(key, "toestemming.", 12)) {
			if (!json_is_string(v) || !valid_date(json_string_value(v)))
				return veld_err__set(&s->err, VELD_EINVALID, "case field '%s' must be a date YYYY-MM-DD", key);
			continue;
		}
		if (strcmp(key, "name") && strcmp(key, "postcode") && strcmp(key, "birth") &&
		    strcmp(key, "address") && strcmp(key, "phone") && strcmp(key, "ref"))
			return veld_err__set(&s->err, VELD_EINVALID, "case field '%s' is unknown", key);
		if (!json_is_string(v) && !json_is_null(v))
			return veld_err__set(&s->err, VELD_EINVALID, "case field '%s' must be text", key);
	}
	v = json_object_get(h, "name");
	if (creating && (!json_is_string(v) || !*json_string_value(v)))
		return veld_err__set(&s->err, VELD_EINVALID, "case field 'name' is required");
	v = json_object_get(h, "postcode");
	if (creating && !json_is_string(v))
		return veld_err__set(&s->err, VELD_EINVALID, "case field 'postcode' is required");
	if (json_is_string(v)) {
		const char *pc = json_string_value(v);
		if (strlen(pc) != 4 || strspn(pc, "0123456789") != 4 || pc[0] == '0')
			return veld_err__set(&s->err, VELD_EINVALID,
			                     "case field 'postcode' must be a Belgian postcode (4 digits, 1000-9999)");
	}
	v = json_object_get(h, "birth");
	if (json_is_string(v) && !valid_date(json_string_value(v)))
		return veld_err__set(&s->err, VELD_EINVALID, "case field 'birth' must be a date YYYY-MM-DD");
	return 0;
}

/* Apply every field of flat object `fields` to `r` with one stamp. */
static int apply_fields(veld_store *s, veld_record *r, json_t *fields)
{
	veld_stamp st;
	const char *path;
	json_t *v;
	int rc = next_stamp(s, &st);
	if (rc)
		return rc;
	json_object_foreach(fields, path, v)
	{
		if ((rc = veld_record__set(r, path, v, &st)))
			return veld_err__set(&s->err, rc, "field '%s' cannot be set", path);
	}
	return 0;
}

int veld_case_new(char *id_out, veld_store *s, const char *header_json)
{
	json_error_t jerr;
	json_t *h = NULL;
	veld_record *r = NULL;
	char id[VELD_IDSIZE];
	int rc;
	CHECK_OPEN(s);
	h = json_loads(header_json ? header_json : "", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(h)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "case header is not a JSON object: %s", jerr.text);
		goto done;
	}
	if ((rc = check_header(s, h, 1)))
		goto done;
	new_id(s, id);
	if ((rc = veld_record__new(&r, id, id, VELD_CASE_FORM)))
		goto nomem;
	if ((rc = begin(s)))
		goto done;
	rc = apply_fields(s, r, h);
	if (!rc)
		rc = save_record(s, r, 1, NULL);
	if (!rc)
		rc = audit(s, "create-case", id, NULL);
	rc = finish(s, rc);
	if (!rc && id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	goto done;
nomem:
	rc = veld_err__set(&s->err, VELD_ERROR, "out of memory");
done:
	json_decref(h);
	veld_record__free(r);
	return rc;
}

static int load_case(veld_record **out, veld_store *s, const char *case_id);

int veld_case_update(veld_store *s, const char *case_id, const char *header_json)
{
	json_error_t jerr;
	json_t *h = NULL;
	veld_record *c = NULL;
	int rc;
	CHECK_OPEN(s);
	h = json_loads(header_json ? header_json : "", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(h)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "case header is not a JSON object: %s", jerr.text);
		goto done;
	}
	if ((rc = check_header(s, h, 0)))
		goto done;
	if (json_is_null(json_object_get(h, "name")) || json_is_null(json_object_get(h, "postcode"))) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "case fields 'name' and 'postcode' cannot be cleared");
		goto done;
	}
	if ((rc = load_case(&c, s, case_id)))
		goto done;
	if ((rc = begin(s)))
		goto done;
	rc = apply_fields(s, c, h);
	if (!rc)
		rc = save_record(s, c, 1, NULL);
	if (!rc)
		rc = audit(s, "update-case", case_id, NULL);
	rc = finish(s, rc);
done:
	json_decref(h);
	veld_record__free(c);
	return rc;
}

/* Shown header fields of a case record as a JSON object. */
static json_t *case_header(const veld_record *r)
{
	json_t *view = veld_record__view(r);
	json_t *fields = view ? json_incref(json_object_get(view, "fields")) : NULL;
	json_decref(view);
	return fields;
}

int veld_case_list_json(char **out, veld_store *s)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT c.state,"
	                        " (SELECT count(*) FROM records r WHERE r.case_id = c.id AND r.form <> '" VELD_CASE_FORM "' AND NOT r.deleted),"
	                        " (SELECT coalesce(sum(r.conflicts), 0) FROM records r WHERE r.case_id = c.id)"
	                        " FROM records c WHERE c.form = '" VELD_CASE_FORM "' AND NOT c.deleted ORDER BY c.id",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "list cases");
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_record *r = NULL;
		json_t *item;
		int prc = row_record(&r, s, st, 0);
		if (prc) {
			rc = prc;
			goto done;
		}
		item = case_header(r);
		json_object_set_new(item, "id", json_string(veld_record__id(r)));
		json_object_set_new(item, "records", json_integer(sqlite3_column_int64(st, 1)));
		json_object_set_new(item, "conflicts", json_integer(sqlite3_column_int64(st, 2)));
		json_array_append_new(arr, item);
		veld_record__free(r);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "list cases");
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Cases this store holds records of but not the header (a volunteer's
	** Huiswijs cases): listed by id, without name or postcode. */
	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT case_id, count(*), coalesce(sum(conflicts), 0) FROM records r"
	                        " WHERE NOT deleted AND NOT EXISTS(SELECT 1 FROM records c WHERE c.id = r.case_id)"
	                        " GROUP BY case_id ORDER BY case_id",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "list cases");
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:b}", "id", (const char *)sqlite3_column_text(st, 0),
		                                     "records", (json_int_t)sqlite3_column_int64(st, 1), "conflicts",
		                                     (json_int_t)sqlite3_column_int64(st, 2), "header", 0));
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "list cases");
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = dump_out(out, s, arr);
	arr = NULL;
done:
	sqlite3_finalize(st);
	json_decref(arr);
	return rc;
}

/* The view of one record as shown to users: id, form, fields, conflicts. */
static json_t *record_view(const veld_record *r)
{
	json_t *view = veld_record__view(r);
	const json_t *fv;
	size_t n;
	if (!view)
		return NULL;
	json_object_set_new(view, "id", json_string(veld_record__id(r)));
	json_object_set_new(view, "case", json_string(veld_record__case(r)));
	json_object_set_new(view, "form", json_string(veld_record__form(r)));
	json_object_set_new(view, "deleted", json_boolean(veld_record__is_deleted(r)));
	fv = veld_record__value(r, "_form_version", &n);
	if (fv)
		json_object_set_new(view, "form_version", json_deep_copy(fv));
	return view;
}

/* Records of a case (without the header), ordered by id; `with_deleted`. */
static int case_records(json_t **out, veld_store *s, const char *case_id, int with_deleted)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc = sqlite3_prepare_v2(s->db,
	                            "SELECT state FROM records WHERE case_id = ?1 AND form <> '" VELD_CASE_FORM "'"
	                            " AND (?2 OR NOT deleted) ORDER BY id",
	                            -1, &st, NULL);
	*out = NULL;
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "read records");
		goto done;
	}
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, with_deleted);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_record *r = NULL;
		int prc = row_record(&r, s, st, 0);
		if (prc) {
			rc = prc;
			goto done;
		}
		json_array_append_new(arr, record_view(r));
		veld_record__free(r);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "read records");
		goto done;
	}
	rc = 0;
	*out = arr;
	arr = NULL;
done:
	sqlite3_finalize(st);
	json_decref(arr);
	return rc;
}

/* Load a case's header record, checking the id names a case. */
static int load_case(veld_record **out, veld_store *s, const char *case_id)
{
	int rc;
	if (!veld_id__is(case_id))
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
	rc = load_record(out, s, case_id);
	if (rc == VELD_ENOTFOUND || (!rc && strcmp(veld_record__form(*out), VELD_CASE_FORM))) {
		veld_record__free(*out);
		*out = NULL;
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no case %s", case_id);
	}
	return rc;
}

int veld_case_show_json(char **out, veld_store *s, const char *case_id)
{
	veld_record *c = NULL;
	json_t *res = NULL, *recs = NULL, *view = NULL, *conf;
	size_t i;
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	/* Without the header (a volunteer holds only the Huiswijs part of a
	** case) the case shows the records this store can read, header null. */
	rc = load_case(&c, s, case_id);
	if (rc == VELD_ENOTFOUND && veld_store__case_known(s, case_id) == 0)
		rc = 0;
	if (rc)
		goto done;
	if ((rc = case_records(&recs, s, case_id, 0)))
		goto done;
	view = c ? veld_record__view(c) : json_pack("{s:n, s:{}}", "fields", "conflicts");
	conf = json_array();
	for (i = 0; i < json_array_size(recs); i++) {
		json_t *rv = json_array_get(recs, i);
		const char *path;
		json_t *vals;
		json_object_foreach(json_object_get(rv, "conflicts"), path, vals)
		{
			json_array_append_new(conf, json_pack("{s:O, s:s, s:O}", "record", json_object_get(rv, "id"),
			                                      "field", path, "values", vals));
		}
	}
	res = json_pack("{s:s, s:O, s:O, s:o, s:O}", "id", case_id, "header", json_object_get(view, "fields"),
	                "records", recs, "conflicts", conf, "header_conflicts",
	                json_object_get(view, "conflicts"));
	if ((rc = begin(s)))
		goto done;
	rc = finish(s, audit(s, "open-case", case_id, NULL));
	if (!rc)
		rc = dump_out(out, s, res);
	res = NULL;
done:
	json_decref(res);
	json_decref(recs);
	json_decref(view);
	veld_record__free(c);
	return rc;
}

/* ---- records ---------------------------------------------------------------- */

/* Reject reserved ("_") and malformed paths before anything is written. */
static int check_paths(veld_store *s, json_t *flat)
{
	const char *path;
	json_t *v;
	json_object_foreach(flat, path, v)
	{
		if (!*path || path[0] == '_' || strlen(path) > 200)
			return veld_err__set(&s->err, VELD_EINVALID, "field name '%.60s' is not allowed", path);
		if (json_is_object(v))
			return veld_err__set(&s->err, VELD_EINVALID, "field '%s' has an object value", path);
	}
	return 0;
}

int veld_store__record_put(char *id_out, veld_store *s, const char *case_id, const char *form,
                           const char *record_id, const char *fields_json, const char *compartment,
                           int form_version)
{
	json_error_t jerr;
	json_t *fields = NULL, *flat = NULL;
	veld_record *c = NULL, *r = NULL;
	char id[VELD_IDSIZE];
	int rc;
	CHECK_OPEN(s);
	if (!veld_name__is_form(form)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "form name '%.60s' is not valid", form ? form : "");
		goto done;
	}
	fields = json_loads(fields_json ? fields_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(fields)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "fields are not a JSON object: %s (line %d)",
		                   jerr.text, jerr.line);
		goto done;
	}
	flat = veld_record__flatten(fields);
	if (!flat) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "fields cannot be flattened (empty or dotted group key)");
		goto done;
	}
	if ((rc = check_paths(s, flat)))
		goto done;
	if ((rc = veld_store__case_known(s, case_id)))
		goto done;
	if (load_case(&c, s, case_id) == 0 && veld_record__is_deleted(c)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "case %s is deleted", case_id);
		goto done;
	}
	veld_err__clear(&s->err);
	if (record_id) {
		if (!veld_id__is(record_id)) {
			rc = veld_err__set(&s->err, VELD_ENOTFOUND, "no record %s", record_id);
			goto done;
		}
		if ((rc = load_record(&r, s, record_id)))
			goto done;
		if (strcmp(veld_record__case(r), case_id) || strcmp(veld_record__form(r), form)) {
			rc = veld_err__set(&s->err, VELD_EINVALID, "record %s is a %s record of another case or form",
			                   record_id, veld_record__form(r));
			goto done;
		}
		if (veld_record__is_deleted(r)) {
			rc = veld_err__set(&s->err, VELD_EINVALID, "record %s is deleted", record_id);
			goto done;
		}
		memcpy(id, record_id, VELD_IDSIZE);
	} else {
		new_id(s, id);
		if (veld_record__new(&r, id, case_id, form)) {
			rc = veld_err__set(&s->err, VELD_ERROR, "out of memory");
			goto done;
		}
	}
	if (form_version > 0 && json_object_set_new(flat, "_form_version", json_integer(form_version))) {
		rc = veld_err__set(&s->err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = begin(s)))
		goto done;
	rc = apply_fields(s, r, flat);
	if (!rc)
		rc = save_record(s, r, 1, compartment);
	if (!rc)
		rc = audit(s, record_id ? "update-record" : "create-record", case_id, id);
	rc = finish(s, rc);
	if (!rc && id_out)
		memcpy(id_out, id, VELD_IDSIZE);
done:
	json_decref(fields);
	json_decref(flat);
	veld_record__free(c);
	veld_record__free(r);
	return rc;
}

int veld_record_show_json(char **out, veld_store *s, const char *record_id)
{
	veld_record *r = NULL;
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	if (!veld_id__is(record_id))
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no record %s", record_id ? record_id : "(none)");
	if ((rc = load_record(&r, s, record_id)))
		return rc;
	if (!strcmp(veld_record__form(r), VELD_CASE_FORM)) {
		veld_record__free(r);
		return veld_err__set(&s->err, VELD_ENOTFOUND, "%s is a case, not a record", record_id);
	}
	if ((rc = begin(s)) == 0)
		rc = finish(s, audit(s, "open-record", veld_record__case(r), record_id));
	if (!rc)
		rc = dump_out(out, s, record_view(r));
	veld_record__free(r);
	return rc;
}

int veld_record_delete(veld_store *s, const char *record_id)
{
	veld_record *r = NULL;
	veld_stamp st;
	int rc;
	CHECK_OPEN(s);
	if (!veld_id__is(record_id))
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no record %s", record_id ? record_id : "(none)");
	if ((rc = load_record(&r, s, record_id)))
		return rc;
	if (!strcmp(veld_record__form(r), VELD_CASE_FORM)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "%s is a case: cases are erased, not deleted", record_id);
		goto done;
	}
	if (veld_record__is_deleted(r)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "record %s is already deleted", record_id);
		goto done;
	}
	if ((rc = begin(s)))
		goto done;
	rc = next_stamp(s, &st);
	if (!rc && veld_record__delete(r, &st))
		rc = veld_err__set(&s->err, VELD_ERROR, "out of memory");
	if (!rc)
		rc = save_record(s, r, 1, NULL);
	if (!rc)
		rc = audit(s, "delete-record", veld_record__case(r), record_id);
	rc = finish(s, rc);
done:
	veld_record__free(r);
	return rc;
}

/* ---- export, audit, verify --------------------------------------------------- */

int veld_export_json(char **out, veld_store *s)
{
	sqlite3_stmt *st = NULL;
	json_t *cases = json_array();
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT state FROM records WHERE form = '" VELD_CASE_FORM "' ORDER BY id", -1,
	                        &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "export");
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_record *c = NULL;
		json_t *recs = NULL, *view;
		int prc = row_record(&c, s, st, 0);
		if (prc) {
			rc = prc;
			goto done;
		}
		prc = case_records(&recs, s, veld_record__id(c), 1);
		if (prc) {
			veld_record__free(c);
			rc = prc;
			goto done;
		}
		view = veld_record__view(c);
		json_array_append_new(cases, json_pack("{s:s, s:b, s:O, s:O, s:o}", "id", veld_record__id(c),
		                                       "deleted", veld_record__is_deleted(c), "header",
		                                       json_object_get(view, "fields"), "header_conflicts",
		                                       json_object_get(view, "conflicts"), "records", recs));
		json_decref(view);
		veld_record__free(c);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "export");
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = begin(s)) == 0)
		rc = finish(s, audit(s, "export", NULL, NULL));
	if (!rc)
		rc = dump_out(out, s, json_pack("{s:i, s:o}", "format", 1, "cases", cases));
	cases = NULL;
done:
	sqlite3_finalize(st);
	json_decref(cases);
	return rc;
}

int veld_audit_json(char **out, veld_store *s, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT seq, at, device, action, case_id, record_id FROM audit"
	                        " WHERE ?1 IS NULL OR case_id = ?1 ORDER BY seq",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "read audit log");
		goto done;
	}
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = json_pack("{s:I, s:I, s:s, s:s}", "seq", (json_int_t)sqlite3_column_int64(st, 0), "at",
		                      (json_int_t)sqlite3_column_int64(st, 1), "device",
		                      (const char *)sqlite3_column_text(st, 2), "action",
		                      (const char *)sqlite3_column_text(st, 3));
		if (sqlite3_column_type(st, 4) != SQLITE_NULL)
			json_object_set_new(e, "case", json_string((const char *)sqlite3_column_text(st, 4)));
		if (sqlite3_column_type(st, 5) != SQLITE_NULL)
			json_object_set_new(e, "record", json_string((const char *)sqlite3_column_text(st, 5)));
		json_array_append_new(arr, e);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "read audit log");
		goto done;
	}
	rc = dump_out(out, s, arr);
	arr = NULL;
done:
	sqlite3_finalize(st);
	json_decref(arr);
	return rc;
}

int veld_store_verify(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc;
	long n = 0;
	CHECK_OPEN(s);
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
		rc = veld_err__set(&s->err, VELD_EINTEGRITY, "database integrity check failed: %.200s",
		                   (const char *)sqlite3_column_text(st, 0));
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
			veld_err__set(&s->err, VELD_EINTEGRITY, "record %s: %s", id, s->err.msg);
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

/* ---- conflicts ---------------------------------------------------------------- */

int veld_conflicts_json(char **out, veld_store *s)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc;
	*out = NULL;
	CHECK_OPEN(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT state FROM records WHERE conflicts > 0 ORDER BY case_id, id", -1,
	                        &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_fail(s, rc, "list conflicts");
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_record *r = NULL;
		json_t *view;
		const char *path;
		json_t *vals;
		int prc = row_record(&r, s, st, 0);
		if (prc) {
			rc = prc;
			goto done;
		}
		view = veld_record__view(r);
		json_object_foreach(json_object_get(view, "conflicts"), path, vals)
		{
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:O}", "case", veld_record__case(r),
			                                     "record", veld_record__id(r), "form", veld_record__form(r),
			                                     "field", path, "values", vals));
		}
		json_decref(view);
		veld_record__free(r);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(s, rc, "list conflicts");
		goto done;
	}
	rc = dump_out(out, s, arr);
	arr = NULL;
done:
	sqlite3_finalize(st);
	json_decref(arr);
	return rc;
}

int veld_resolve(veld_store *s, const char *record_id, const char *field, const char *value_json)
{
	json_error_t jerr;
	json_t *v = NULL;
	veld_record *r = NULL;
	veld_stamp st;
	size_t n_live = 0;
	int rc;
	CHECK_OPEN(s);
	if (!field || !*field || (field[0] == '_' && strcmp(field, "_deleted")))
		return veld_err__set(&s->err, VELD_EINVALID, "field '%.60s' cannot be resolved", field ? field : "");
	v = json_loads(value_json ? value_json : "", JSON_DECODE_ANY, &jerr);
	if (!v || json_is_object(v)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "value for '%s' is not a JSON value", field);
		goto done;
	}
	if (!strcmp(field, "_deleted") && !json_is_boolean(v)) {
		rc = veld_err__set(&s->err, VELD_EINVALID, "'_deleted' is resolved with true or false");
		goto done;
	}
	if (!veld_id__is(record_id)) {
		rc = veld_err__set(&s->err, VELD_ENOTFOUND, "no record %s", record_id ? record_id : "(none)");
		goto done;
	}
	if ((rc = load_record(&r, s, record_id)))
		goto done;
	if (!veld_record__value(r, field, &n_live) && strcmp(field, "_deleted")) {
		rc = veld_err__set(&s->err, VELD_ENOTFOUND, "record %s has no field '%s'", record_id, field);
		goto done;
	}
	if ((rc = begin(s)))
		goto done;
	rc = next_stamp(s, &st);
	if (!rc && veld_record__set(r, field, v, &st))
		rc = veld_err__set(&s->err, VELD_ERROR, "field '%s' cannot be set", field);
	if (!rc)
		rc = save_record(s, r, 1, NULL);
	if (!rc)
		rc = audit(s, "resolve", veld_record__case(r), record_id);
	rc = finish(s, rc);
done:
	json_decref(v);
	veld_record__free(r);
	return rc;
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

int veld_store__record_load(veld_record **out, veld_store *s, const char *id)
{
	return load_record(out, s, id);
}

int veld_store__record_save(veld_store *s, const veld_record *r, int dirty, const char *compartment)
{
	return save_record(s, r, dirty, compartment);
}

void veld_store__observe(veld_store *s, const veld_stamp *stamp)
{
	veld_hlc__observe(&s->hlc, stamp, s->os->xClockMs(s->os->ctx));
}

int veld_store__stamp(veld_store *s, veld_stamp *out)
{
	return next_stamp(s, out);
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

int veld_store__case_known(veld_store *s, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!veld_id__is(case_id))
		return veld_err__set(&s->err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
	/* The header, any record of the case, or a key of it: a volunteer
	** holds the Huiswijs part of a case without its header. */
	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT EXISTS(SELECT 1 FROM records WHERE case_id = ?1)"
	                        " OR EXISTS(SELECT 1 FROM case_keys WHERE case_id = ?1)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "look up case");
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) ? 0
	     : veld_err__set(&s->err, VELD_ENOTFOUND, "no case %s", case_id);
	sqlite3_finalize(st);
	return rc;
}

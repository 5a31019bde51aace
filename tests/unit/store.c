/*
** store.c — the store handle through the public API: create, open, wrong
** passphrase, damaged files, cases and records, the audit log, export, and
** no plaintext anywhere in the store directory.
*/
#include "testutil.h"

#include "core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char PASS[] = "correct horse battery staple";

/* Markers written into cases and records, searched for afterwards. */
static const char NAME_MARK[] = "Zoe Vandenbroucke-Marker";
static const char TEXT_MARK[] = "schuldbemiddeling-notitie-XYZZY";
static const char ADDR_MARK[] = "Kerkstraat 42 Markerdorp";

/* A complete, valid Sociale Balans: every domain scored (n.v.t. unless
** given), `extra` spliced in (JSON members, leading comma included). */
static char *balans_json(const char *afname, const char *extra)
{
	static const char *const domains[] = {
		"familiale_situatie", "huisvesting", "gezondheid_lichamelijk", "gezondheid_psychisch",
		"inkomen", "budget_schulden", "administratie", "mobiliteit", "opleiding_vorming", "werk",
		"vrije_tijd", "zelfvertrouwen", "communicatie", "ict_vaardigheden", "sociaal_netwerk",
		"organisatie_planning", NULL};
	char *buf = malloc(4096);
	size_t used;
	int i;
	assert_non_null(buf);
	used = (size_t)snprintf(buf, 4096, "{\"afnamedatum\":\"%s\"", afname);
	for (i = 0; domains[i]; i++)
		if (strcmp(domains[i], "huisvesting"))
			used += (size_t)snprintf(buf + used, 4096 - used, ",\"%s\":{\"score\":\"nvt\"}", domains[i]);
	snprintf(buf + used, 4096 - used, "%s}", extra);
	return buf;
}

static veld_store *create_store(const char *dir)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_test_fast_options(&o);
	assert_int_equal(veld_store_create(&s, dir, PASS, strlen(PASS), &o), VELD_OK);
	return s;
}

static veld_store *open_store(const char *dir)
{
	veld_store *s = NULL;
	int rc = veld_store_open(&s, dir, PASS, strlen(PASS), NULL);
	if (rc)
		fail_msg("open failed: %s", veld_errmsg(s));
	return s;
}

static void new_case(veld_store *s, char *id, const char *name)
{
	char hdr[512];
	snprintf(hdr, sizeof hdr, "{\"name\":\"%s\",\"postcode\":\"1500\",\"address\":\"%s\"}", name, ADDR_MARK);
	if (veld_case_new(id, s, hdr))
		fail_msg("case new: %s", veld_errmsg(s));
}

static void test_store__create_open_roundtrip(void **state)
{
	char *dir = veld_test_tmpdir("store-rt");
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *out = NULL;
	veld_store *s = create_store(dir);
	json_t *j;
	(void)state;
	new_case(s, cid, NAME_MARK);
	assert_int_equal(veld_record_put(rid, s, cid, "contactregistratie", NULL,
	                                 "{\"datum\":\"2017-03-02\",\"plaats\":\"huisbezoek\","
	                                 "\"problematiek\":[\"financieel\",\"materieel\"],\"duur_min\":45}"),
	                 VELD_OK);
	veld_store_close(s);

	s = open_store(dir);
	assert_int_equal(veld_record_show_json(&out, s, rid), VELD_OK);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "fields"), "plaats")), "huisbezoek");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "fields"), "duur_min")), 45);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "fields"), "problematiek")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "case")), cid);
	json_decref(j);
	veld_free(out);

	/* Update one field, the other stays. */
	assert_int_equal(veld_record_put(NULL, s, cid, "contactregistratie", rid, "{\"plaats\":\"zitdag\"}"), VELD_OK);
	assert_int_equal(veld_record_show_json(&out, s, rid), VELD_OK);
	j = json_loads(out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "fields"), "plaats")), "zitdag");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "fields"), "datum")), "2017-03-02");
	assert_int_equal(json_object_size(json_object_get(j, "conflicts")), 0);
	json_decref(j);
	veld_free(out);

	assert_int_equal(veld_store_verify(s), VELD_OK);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__wrong_passphrase_touches_nothing(void **state)
{
	char *dir = veld_test_tmpdir("store-wrongpass");
	char *kp = veld_test_path(dir, "veld.key"), *dbp = veld_test_path(dir, "veld.db");
	unsigned char *k1, *k2, *d1, *d2;
	size_t kl1, kl2, dl1, dl2;
	veld_store *s = create_store(dir);
	char cid[VELD_IDSIZE];
	(void)state;
	new_case(s, cid, "Someone");
	veld_store_close(s);
	k1 = veld_test_read_file(kp, &kl1);
	d1 = veld_test_read_file(dbp, &dl1);
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, "wrong", 5, NULL), VELD_EAUTH);
	assert_non_null(strstr(veld_errmsg(s), "passphrase"));
	veld_store_close(s);
	k2 = veld_test_read_file(kp, &kl2);
	d2 = veld_test_read_file(dbp, &dl2);
	assert_true(kl1 == kl2 && memcmp(k1, k2, kl1) == 0);
	assert_true(dl1 == dl2 && memcmp(d1, d2, dl1) == 0);
	free(k1), free(k2), free(d1), free(d2), free(kp), free(dbp);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__missing_and_damaged(void **state)
{
	char *dir = veld_test_tmpdir("store-damaged");
	char *missing = veld_test_path(dir, "nothing-here");
	char *kp = veld_test_path(dir, "veld.key"), *dbp = veld_test_path(dir, "veld.db");
	veld_store *s = NULL;
	unsigned char *buf;
	size_t len;
	char cid[VELD_IDSIZE];
	int i;
	(void)state;

	assert_int_equal(veld_store_open(&s, missing, PASS, strlen(PASS), NULL), VELD_ENOTFOUND);
	assert_non_null(strstr(veld_errmsg(s), "no store"));
	veld_store_close(s);

	s = create_store(dir);
	for (i = 0; i < 50; i++)
		new_case(s, cid, "Filler Name");
	veld_store_close(s);

	/* A second create in the same place refuses. */
	{
		veld_store_options o;
		veld_test_fast_options(&o);
		s = NULL;
		assert_int_equal(veld_store_create(&s, dir, PASS, strlen(PASS), &o), VELD_EEXISTS);
		veld_store_close(s);
	}

	/* Truncated database: an error, never a silently smaller store. */
	buf = veld_test_read_file(dbp, &len);
	assert_true(len > 3 * 4096);
	assert_int_equal(veld_test_write_file(dbp, buf, len - 4096 - 100), 0);
	s = NULL;
	{
		int rc = veld_store_open(&s, dir, PASS, strlen(PASS), NULL);
		if (rc == VELD_OK)
			rc = veld_store_verify(s);
		if (rc != VELD_EINTEGRITY)
			fail_msg("truncated database: rc %d, %s", rc, veld_errmsg(s));
		assert_true(strlen(veld_errmsg(s)) > 0);
	}
	veld_store_close(s);
	assert_int_equal(veld_test_write_file(dbp, buf, len), 0);
	free(buf);

	/* Corrupt key file: an integrity error or a wrong-key error, clearly. */
	buf = veld_test_read_file(kp, &len);
	veld_test_flip_byte(kp, (long)len / 2);
	s = NULL;
	{
		int rc = veld_store_open(&s, dir, PASS, strlen(PASS), NULL);
		assert_true(rc == VELD_EINTEGRITY || rc == VELD_EAUTH);
	}
	veld_store_close(s);
	assert_int_equal(veld_test_write_file(kp, buf, len), 0);
	free(buf);

	/* Missing database next to a key file. */
	buf = veld_test_read_file(dbp, &len);
	unlink(dbp);
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, PASS, strlen(PASS), NULL), VELD_EINTEGRITY);
	veld_store_close(s);
	assert_int_equal(veld_test_write_file(dbp, buf, len), 0);
	free(buf);

	s = open_store(dir);
	assert_int_equal(veld_store_verify(s), VELD_OK);
	veld_store_close(s);
	free(missing), free(kp), free(dbp);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__bad_input_changes_nothing(void **state)
{
	char *dir = veld_test_tmpdir("store-badinput");
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *before = NULL, *after = NULL;
	veld_store *s = create_store(dir);
	(void)state;
	new_case(s, cid, "Input Tester");
	assert_int_equal(veld_record_put(rid, s, cid, "contactregistratie", NULL,
	                                 "{\"datum\":\"2018-01-01\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"]}"),
	                 VELD_OK);
	assert_int_equal(veld_export_json(&before, s), VELD_OK);
	/* The form's rules: every failing field at once, nothing stored. */
	assert_int_equal(veld_record_put(NULL, s, cid, "contactregistratie", NULL, "{\"datum\":\"2018-13-01\"}"),
	                 VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "datum"));
	assert_non_null(strstr(veld_errmsg(s), "plaats"));
	assert_non_null(strstr(veld_errmsg(s), "problematiek"));
	assert_int_equal(veld_record_put(NULL, s, cid, "contactregistratie", rid, "{\"plaats\":\"maan\"}"), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "plaats"));

	assert_int_equal(veld_case_new(cid, s, "{\"name\":\"X\"}"), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "postcode"));
	assert_int_equal(veld_case_new(cid, s, "{\"name\":\"X\",\"postcode\":\"15\"}"), VELD_EINVALID);
	assert_int_equal(veld_case_new(cid, s, "{\"name\":\"X\",\"postcode\":\"1500\",\"birth\":\"1-1-1990\"}"), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "birth"));
	assert_int_equal(veld_case_new(cid, s, "not json"), VELD_EINVALID);
	assert_int_equal(veld_record_put(NULL, s, cid, "contactregistratie", NULL, "{\"_deleted\":true}"), VELD_EINVALID);
	assert_int_equal(veld_record_put(NULL, s, cid, "Bad Form", NULL, "{}"), VELD_EINVALID);
	assert_int_equal(veld_record_put(NULL, s, "00000000000000000000000000000000", "contactregistratie", NULL, "{}"),
	                 VELD_ENOTFOUND);
	assert_int_equal(veld_record_put(NULL, s, cid, "sociale_balans", rid, "{\"x\":1}"), VELD_EINVALID);
	assert_int_equal(veld_record_put(NULL, s, cid, "contactregistratie", NULL, "{\"a\":{\"b\":{}}}") != VELD_OK, 1);
	assert_int_equal(veld_record_show_json(&after, s, "nope"), VELD_ENOTFOUND);

	/* The export did not change (the audit log is not part of it). */
	assert_int_equal(veld_export_json(&after, s), VELD_OK);
	assert_string_equal(before, after);
	veld_free(before);
	veld_free(after);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__delete_and_groups(void **state)
{
	char *dir = veld_test_tmpdir("store-delete");
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *out = NULL;
	veld_store *s = create_store(dir);
	json_t *j, *f;
	(void)state;
	new_case(s, cid, "Group Tester");
	{
		char *b = balans_json("2019-05-01", ",\"huisvesting\":{\"score\":2,\"prioriteit\":true},"
		                                    "\"actievoorstellen\":{\"a1\":{\"domein\":\"huisvesting\",\"doelstelling\":\"Woning\",\"actie\":\"Zoeken\",\"status\":\"gepland\"}}");
		if (veld_record_put(rid, s, cid, "sociale_balans", NULL, b))
			fail_msg("balans: %s", veld_errmsg(s));
		free(b);
	}
	assert_int_equal(veld_record_put(NULL, s, cid, "sociale_balans", rid, "{\"actievoorstellen\":{\"a1\":{\"status\":\"lopend\"}}}"),
	                 VELD_OK);
	assert_int_equal(veld_record_show_json(&out, s, rid), VELD_OK);
	j = json_loads(out, 0, NULL);
	f = json_object_get(j, "fields");
	assert_string_equal(json_string_value(json_object_get(f, "actievoorstellen.a1.status")), "lopend");
	assert_string_equal(json_string_value(json_object_get(f, "actievoorstellen.a1.domein")), "huisvesting");
	assert_int_equal(json_integer_value(json_object_get(f, "huisvesting.score")), 2);
	json_decref(j);
	veld_free(out);

	assert_int_equal(veld_record_delete(s, rid), VELD_OK);
	assert_int_equal(veld_record_delete(s, rid), VELD_EINVALID);
	assert_int_equal(veld_record_put(NULL, s, cid, "sociale_balans", rid, "{\"synthese\":\"x\"}"), VELD_EINVALID);
	/* The rule of the form: a priority domain without an action is refused. */
	{
		char *b = balans_json("2020-01-01", ",\"huisvesting\":{\"score\":1,\"prioriteit\":true}");
		assert_int_equal(veld_record_put(NULL, s, cid, "sociale_balans", NULL, b), VELD_EINVALID);
		free(b);
	}
	assert_int_equal(veld_case_show_json(&out, s, cid), VELD_OK);
	j = json_loads(out, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "records")), 0);
	json_decref(j);
	veld_free(out);
	/* The export keeps the tombstone: a deleted record is still a record. */
	assert_int_equal(veld_export_json(&out, s), VELD_OK);
	assert_non_null(strstr(out, rid));
	assert_non_null(strstr(out, "\"deleted\":true"));
	veld_free(out);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__audit_log(void **state)
{
	char *dir = veld_test_tmpdir("store-audit");
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], *out = NULL, *tmp = NULL;
	veld_store *s = create_store(dir);
	json_t *arr, *e;
	size_t i;
	int seen_create = 0, seen_record = 0, seen_open = 0, seen_export = 0;
	(void)state;
	new_case(s, cid, "Audit Tester");
	assert_int_equal(veld_record_put(rid, s, cid, "contactregistratie", NULL,
	                                 "{\"datum\":\"2020-02-02\",\"plaats\":\"elders\",\"problematiek\":[\"gezondheid\"]}"),
	                 VELD_OK);
	assert_int_equal(veld_case_show_json(&tmp, s, cid), VELD_OK);
	veld_free(tmp);
	assert_int_equal(veld_export_json(&tmp, s), VELD_OK);
	veld_free(tmp);
	assert_int_equal(veld_audit_json(&out, s, NULL), VELD_OK);
	arr = json_loads(out, 0, NULL);
	json_array_foreach(arr, i, e)
	{
		const char *a = json_string_value(json_object_get(e, "action"));
		const char *c = json_string_value(json_object_get(e, "case"));
		seen_create += !strcmp(a, "create-case") && c && !strcmp(c, cid);
		seen_record += !strcmp(a, "create-record") && c && !strcmp(c, cid);
		seen_open += !strcmp(a, "open-case") && c && !strcmp(c, cid);
		seen_export += !strcmp(a, "export");
		assert_non_null(json_string_value(json_object_get(e, "device")));
	}
	assert_int_equal(seen_create, 1);
	assert_int_equal(seen_record, 1);
	assert_int_equal(seen_open, 1);
	assert_int_equal(seen_export, 1);
	json_decref(arr);
	veld_free(out);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__passwd_rewraps(void **state)
{
	char *dir = veld_test_tmpdir("store-passwd");
	char cid[VELD_IDSIZE];
	veld_store *s = create_store(dir);
	(void)state;
	new_case(s, cid, "Passwd Tester");
	assert_int_equal(veld_store_passwd(s, "new secret", 10), VELD_OK);
	veld_store_close(s);
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, PASS, strlen(PASS), NULL), VELD_EAUTH);
	veld_store_close(s);
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, "new secret", 10, NULL), VELD_OK);
	assert_int_equal(veld_store_verify(s), VELD_OK);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

static void test_store__second_open_is_busy(void **state)
{
	char *dir = veld_test_tmpdir("store-busy");
	veld_store *a = create_store(dir), *b = NULL;
	veld_store_options o;
	(void)state;
	veld_store_options_init(&o);
	o.busy_timeout_ms = 100;
	assert_int_equal(veld_store_open(&b, dir, PASS, strlen(PASS), &o), VELD_EBUSY);
	veld_store_close(b);
	veld_store_close(a);
	b = open_store(dir);
	veld_store_close(b);
	veld_test_rmtree(dir);
	free(dir);
}

/* Write known names and texts, checkpoint, compact, crash mid-transaction,
** then search every byte of the store directory. */
static void test_store__no_plaintext_on_disk(void **state)
{
	char *dir = veld_test_tmpdir("store-plain");
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE];
	veld_store *s = create_store(dir);
	char fields[512];
	int i, status;
	pid_t pid;
	(void)state;
	for (i = 0; i < 200; i++) {
		new_case(s, cid, NAME_MARK);
		snprintf(fields, sizeof fields,
		         "{\"doorverwezen_naar\":\"%s %d\",\"wijze_van_hulpverlening\":[\"doorverwijzing\"],"
		         "\"datum\":\"2021-01-01\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}",
		         TEXT_MARK, i);
		assert_int_equal(veld_record_put(rid, s, cid, "contactregistratie", NULL, fields), VELD_OK);
	}
	assert_int_equal(veld_store_compact(s), VELD_OK);
	veld_store_close(s);

	/* A child writes more and is killed in the middle of it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		veld_store *c = NULL;
		if (veld_store_open(&c, dir, PASS, strlen(PASS), NULL))
			_exit(2);
		for (;;) {
			char id[VELD_IDSIZE];
			new_case(c, id, NAME_MARK);
		}
	}
	usleep(300 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status));

	assert_int_equal(veld_test_grep_tree(dir, NAME_MARK, strlen(NAME_MARK)), 0);
	assert_int_equal(veld_test_grep_tree(dir, TEXT_MARK, strlen(TEXT_MARK)), 0);
	assert_int_equal(veld_test_grep_tree(dir, ADDR_MARK, strlen(ADDR_MARK)), 0);
	assert_int_equal(veld_test_grep_tree(dir, "schuldbemiddeling", 17), 0);

	/* And the killed store still opens and verifies. */
	s = open_store(dir);
	assert_int_equal(veld_store_verify(s), VELD_OK);
	veld_store_close(s);
	assert_int_equal(veld_test_grep_tree(dir, NAME_MARK, strlen(NAME_MARK)), 0);
	veld_test_rmtree(dir);
	free(dir);
}

/* ---- schema migration ---------------------------------------------------- */

/* One string of everything a query returns (columns '|', rows '\n'). */
static char *query_text(veld_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(veld_store__db(s), sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int i;
		for (i = 0; i < sqlite3_column_count(st); i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			size_t n = strlen(v ? v : "") + 2;
			if (len + n + 1 > cap) {
				cap = 2 * (len + n + 1);
				out = realloc(out, cap);
				assert_non_null(out);
			}
			len += (size_t)snprintf(out + len, cap - len, "%s%c", v ? v : "", i + 1 < sqlite3_column_count(st) ? '|' : '\n');
		}
	}
	sqlite3_finalize(st);
	return out;
}

static void exec_ok(veld_store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(veld_store__db(s), sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

#define KEYS_DUMP   "SELECT case_id, compartment, key_id, hex(key) FROM case_keys ORDER BY key_id"
#define SHARES_DUMP "SELECT key_id, recipient FROM key_shares ORDER BY key_id, recipient"
#define KEYS_DDL    "SELECT sql FROM sqlite_master WHERE name = 'case_keys'"

/* Turn a store back into schema 1 (case_keys keyed by key_id, a rowid
** table), as stores made before schema 2 are. */
static void make_schema_1(veld_store *s)
{
	exec_ok(s, "PRAGMA foreign_keys=OFF; BEGIN;"
	           "CREATE TABLE case_keys_1(key_id TEXT PRIMARY KEY, case_id TEXT NOT NULL,"
	           " compartment TEXT NOT NULL, key BLOB NOT NULL, UNIQUE(case_id, compartment));"
	           "INSERT INTO case_keys_1 SELECT key_id, case_id, compartment, key FROM case_keys;"
	           "DROP TABLE case_keys; ALTER TABLE case_keys_1 RENAME TO case_keys;"
	           "DROP TABLE refusals; DROP TABLE access_lost; DROP TABLE scripts; DROP TABLE drafts;"
	           "UPDATE meta SET value = CAST('1' AS BLOB) WHERE key = 'schema_version';"
	           "COMMIT; PRAGMA foreign_keys=ON;");
}

/* A schema-1 store is migrated when opened: the keys and their shares as
** they were, case_keys WITHOUT ROWID, foreign keys still in force.  A
** store whose migration cannot pass its checks is refused and left as it
** was. */
static void test_store__schema_1_is_migrated(void **state)
{
	char *dir = veld_test_tmpdir("store-migrate"), *keys, *shares, *ddl, *after;
	veld_store *s = create_store(dir);
	int i;
	(void)state;
	exec_ok(s, "INSERT INTO devices(id, name, role, region, sign_pk, box_pk)"
	           " VALUES('dev1', 'tablet', 'assistant', '1500-1599', x'00', x'00'),"
	           " ('dev2', 'tablet', 'assistant', '1500-1599', x'00', x'00')");
	for (i = 0; i < 40; i++) {
		char sql[512];
		snprintf(sql, sizeof sql,
		         "INSERT INTO case_keys(key_id, case_id, compartment, key) VALUES"
		         " ('k%02d', 'case%02d', '%s', randomblob(32));"
		         "INSERT INTO key_shares(key_id, recipient) VALUES('k%02d', 'dev%d')",
		         i, i / 2, i % 2 ? "huiswijs" : "social", i, 1 + i % 2);
		exec_ok(s, sql);
	}
	keys = query_text(s, KEYS_DUMP);
	shares = query_text(s, SHARES_DUMP);
	ddl = query_text(s, KEYS_DDL);
	assert_non_null(strstr(ddl, "WITHOUT ROWID"));
	make_schema_1(s);
	after = query_text(s, KEYS_DDL);
	assert_null(strstr(after, "WITHOUT ROWID"));
	free(after);
	/* Damaged as well: a share whose key is gone. */
	exec_ok(s, "PRAGMA foreign_keys=OFF; INSERT INTO key_shares(key_id, recipient) VALUES('nokey', 'dev1');"
	           " PRAGMA foreign_keys=ON");
	veld_store_close(s);

	/* Refused, and nothing changed (a refused open leaves its handle's
	** database open: read through it, then mend the damage). */
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, PASS, strlen(PASS), NULL), VELD_EINTEGRITY);
	assert_non_null(strstr(veld_errmsg(s), "migration"));
	veld_store_close(s);
	s = NULL;
	assert_int_equal(veld_store_open(&s, dir, PASS, strlen(PASS), NULL), VELD_EINTEGRITY);
	after = query_text(s, KEYS_DUMP);
	assert_string_equal(after, keys);
	free(after);
	after = query_text(s, KEYS_DDL);
	assert_null(strstr(after, "WITHOUT ROWID"));
	free(after);
	after = query_text(s, "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'schema_version'");
	assert_string_equal(after, "1\n");
	free(after);
	exec_ok(s, "DELETE FROM key_shares WHERE key_id = 'nokey'");
	veld_store_close(s);

	/* Sound: migrated on open. */
	s = open_store(dir);
	after = query_text(s, KEYS_DUMP);
	assert_string_equal(after, keys);
	free(after);
	after = query_text(s, SHARES_DUMP);
	assert_string_equal(after, shares);
	free(after);
	after = query_text(s, KEYS_DDL); /* the rename quotes the name */
	assert_non_null(strstr(after, "WITHOUT ROWID"));
	assert_non_null(strstr(after, "PRIMARY KEY(case_id, compartment, epoch)"));
	free(after);
	after = query_text(s, "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'schema_version'");
	assert_string_equal(after, "6\n");
	free(after);
	after = query_text(s, "SELECT count(*) FROM refusals"); /* schema 3: there, empty */
	assert_string_equal(after, "0\n");
	free(after);
	after = query_text(s, "SELECT count(*) FROM scripts"); /* schema 5: there, empty */
	assert_string_equal(after, "0\n");
	free(after);
	after = query_text(s, "SELECT count(*) FROM drafts"); /* schema 6: there, empty */
	assert_string_equal(after, "0\n");
	free(after);
	after = query_text(s, "PRAGMA foreign_key_check");
	assert_string_equal(after, "");
	free(after);
	/* Foreign keys hold: a key's shares go with it, an unknown key is refused. */
	exec_ok(s, "DELETE FROM case_keys WHERE key_id = 'k07'");
	after = query_text(s, "SELECT count(*) FROM key_shares WHERE key_id = 'k07'");
	assert_string_equal(after, "0\n");
	free(after);
	assert_int_not_equal(
	        sqlite3_exec(veld_store__db(s), "INSERT INTO key_shares VALUES('nokey', 'dev1')", NULL, NULL, NULL),
	        SQLITE_OK);
	veld_store_close(s);
	/* Opened again: nothing left to migrate. */
	s = open_store(dir);
	after = query_text(s, "SELECT count(*) FROM case_keys");
	assert_string_equal(after, "39\n");
	free(after);
	veld_store_close(s);
	free(keys);
	free(shares);
	free(ddl);
	veld_test_rmtree(dir);
	free(dir);
}

/* A flipped byte in any page: verify fails with VELD_EINTEGRITY and one
** line naming that page, never SQLite's own report. */
static void test_store__verify_names_a_damaged_page(void **state)
{
	char *dir = veld_test_tmpdir("store-verify-page");
	char *db = veld_test_path(dir, "veld.db"), id[VELD_IDSIZE], name[32], want[80];
	unsigned char *good;
	size_t len = 0, pages, pg, named = 0;
	veld_store *s = create_store(dir);
	int i;
	(void)state;
	for (i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "Case %d", i);
		new_case(s, id, name);
	}
	veld_store_close(s);
	good = veld_test_read_file(db, &len);
	assert_non_null(good);
	pages = len / 4096;
	assert_true(pages > 4);
	for (pg = 2; pg <= pages; pg++) { /* page 1 is read at open */
		assert_int_equal(veld_test_write_file(db, good, len), 0);
		veld_test_flip_byte(db, (long)((pg - 1) * 4096 + 300));
		s = NULL;
		if (veld_store_open(&s, dir, PASS, strlen(PASS), NULL) == VELD_OK) {
			assert_int_equal(veld_store_verify(s), VELD_EINTEGRITY);
			named++;
		}
		snprintf(want, sizeof want, "page %zu of veld.db fails authentication", pg);
		if (!strstr(veld_errmsg(s), want) || strchr(veld_errmsg(s), '\n'))
			fail_msg("page %zu flipped: \"%s\"", pg, veld_errmsg(s));
		veld_store_close(s);
	}
	assert_true(named > 0);
	assert_int_equal(veld_test_write_file(db, good, len), 0);
	free(good);
	free(db);
	veld_test_rmtree(dir);
	free(dir);
}

/* ---- import -------------------------------------------------------------------- */

/* The store's export (what an import must leave as it was when it fails). */
#define CONTACT_FIELDS "{\"datum\":\"2018-01-01\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"]}"

/* A bad line is reported once by its number, with the message of what
** failed (a record refused, a case header refused), and nothing is stored. */
static void test_store__import_bad_line_message(void **state)
{
	static const char bad_form[] =
		"{\"case\":{\"ref\":\"r1\",\"name\":\"Import Tester\",\"postcode\":\"1500\"},"
		"\"form\":\"contactregistratie\",\"fields\":" CONTACT_FIELDS "}\n"
		"\n"
		"{\"case\":{\"ref\":\"r1\"},\"form\":\"nope\",\"fields\":{}}\n";
	static const char bad_case[] =
		"{\"case\":{\"ref\":\"r1\",\"name\":\"Import Tester\",\"postcode\":\"1500\"},"
		"\"form\":\"contactregistratie\",\"fields\":" CONTACT_FIELDS "}\n"
		"{\"case\":{\"ref\":\"r2\",\"name\":\"Other\",\"postcode\":\"15\"},"
		"\"form\":\"contactregistratie\",\"fields\":" CONTACT_FIELDS "}\n";
	char *dir = veld_test_tmpdir("store-import-msg");
	char *before = NULL, *after = NULL;
	veld_store *s = create_store(dir);
	long count = -1;
	(void)state;
	before = veld_test_export(s);

	assert_int_equal(veld_import(&count, s, bad_form, strlen(bad_form), NULL, NULL), VELD_EINVALID);
	assert_string_equal(veld_errmsg(s), "line 3: unknown form 'nope' (see `veld form list`)");
	assert_int_equal(count, 0);
	assert_int_equal(veld_import(&count, s, bad_case, strlen(bad_case), NULL, NULL), VELD_EINVALID);
	assert_string_equal(veld_errmsg(s),
	                    "line 2: case field 'postcode' must be a Belgian postcode (4 digits, 1000-9999)");

	after = veld_test_export(s);
	assert_string_equal(before, after);
	veld_free(after);
	veld_free(before);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

/* A line's case id is a case this store holds, given whole: a longer id is
** not cut to 32 digits (that would be another case), and an unknown one is
** bad input (VELD_EINVALID, exit 5), both reported by line and without
** echoing the id. */
static void test_store__import_case_ids_checked_whole(void **state)
{
	char *dir = veld_test_tmpdir("store-import-ids");
	veld_store *s = create_store(dir);
	char cid[VELD_IDSIZE], line[1024], *before, *after, *big;
	long count = -1;
	(void)state;
	assert_int_equal(veld_case_new(cid, s, "{\"name\":\"Import Tester\",\"postcode\":\"1500\"}"), VELD_OK);
	before = veld_test_export(s);
	snprintf(line, sizeof line, "{\"case\":\"%s0\",\"form\":\"contactregistratie\",\"fields\":%s}\n", cid,
	         CONTACT_FIELDS);
	assert_int_equal(veld_import(&count, s, line, strlen(line), NULL, NULL), VELD_EINVALID);
	assert_string_equal(veld_errmsg(s), "line 1: \"case\" is not a case id (32 lowercase hex digits)");
	snprintf(line, sizeof line, "{\"case\":\"%.31s0\",\"form\":\"contactregistratie\",\"fields\":%s}\n",
	         cid[0] == '0' ? "1111111111111111111111111111111" : "0000000000000000000000000000000", CONTACT_FIELDS);
	assert_int_equal(veld_import(&count, s, line, strlen(line), NULL, NULL), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(s), "line 1: no case "));
	/* A 100 kB id is refused without being echoed. */
	big = malloc(100010);
	assert_non_null(big);
	memset(big, 'a', 100000);
	big[100000] = '\0';
	{
		size_t n = strlen(big) + 200;
		char *l = malloc(n);
		assert_non_null(l);
		snprintf(l, n, "{\"case\":\"%s\",\"form\":\"contactregistratie\",\"fields\":{}}\n", big);
		assert_int_equal(veld_import(&count, s, l, strlen(l), NULL, NULL), VELD_EINVALID);
		assert_true(strlen(veld_errmsg(s)) < 100);
		free(l);
	}
	free(big);
	assert_int_equal(count, 0);
	after = veld_test_export(s);
	assert_string_equal(before, after);
	veld_free(after);
	veld_free(before);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

typedef struct progress_log {
	long calls, last_done, total, cancel_at; /* cancel_at 0: never */
} progress_log;

static int import_progress(long done, long total, void *payload)
{
	progress_log *log = payload;
	log->calls++;
	log->last_done = done;
	log->total = total;
	return log->cancel_at && done >= log->cancel_at;
}

/* A progress callback that returns non-zero cancels the import: nothing of
** it is stored, and the same import without cancelling then succeeds. */
static void test_store__import_canceled_from_progress(void **state)
{
	char *dir = veld_test_tmpdir("store-import-cancel");
	char cid[VELD_IDSIZE], line[256], *before = NULL, *after = NULL;
	veld_buf jsonl = {0};
	veld_store *s = create_store(dir);
	progress_log log = {0, 0, 0, 2000};
	long count = -1, i;
	json_t *j;
	(void)state;
	new_case(s, cid, "Import Cancel Tester");
	for (i = 0; i < 2500; i++) {
		int n = snprintf(line, sizeof line, "{\"case\":\"%s\",\"form\":\"contactregistratie\",\"fields\":%s}\n",
		                 cid, CONTACT_FIELDS);
		assert_int_equal(veld_buf__add(&jsonl, line, (size_t)n), 0);
	}
	before = veld_test_export(s);

	assert_int_equal(veld_import(&count, s, (const char *)jsonl.p, jsonl.n, import_progress, &log), VELD_ECANCELED);
	assert_int_equal(veld_errcode(s), VELD_ECANCELED);
	assert_string_equal(veld_errmsg(s), "import canceled after line 2000");
	assert_int_equal(count, 0);
	assert_int_equal(log.calls, 2);
	assert_int_equal(log.last_done, 2000);
	assert_int_equal(log.total, 2500);
	after = veld_test_export(s);
	assert_string_equal(before, after);
	veld_free(after);

	memset(&log, 0, sizeof log);
	assert_int_equal(veld_import(&count, s, (const char *)jsonl.p, jsonl.n, import_progress, &log), VELD_OK);
	assert_int_equal(count, 2500);
	assert_int_equal(log.calls, 3); /* lines 1000, 2000 and the last */
	assert_int_equal(log.last_done, 2500);
	after = veld_test_export(s);
	j = json_loads(after, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "cases"), 0), "records")), 2500);
	json_decref(j);
	veld_free(before);
	veld_free(after);
	free(jsonl.p);
	veld_store_close(s);
	veld_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store__create_open_roundtrip),
		cmocka_unit_test(test_store__wrong_passphrase_touches_nothing),
		cmocka_unit_test(test_store__missing_and_damaged),
		cmocka_unit_test(test_store__bad_input_changes_nothing),
		cmocka_unit_test(test_store__delete_and_groups),
		cmocka_unit_test(test_store__audit_log),
		cmocka_unit_test(test_store__passwd_rewraps),
		cmocka_unit_test(test_store__second_open_is_busy),
		cmocka_unit_test(test_store__no_plaintext_on_disk),
		cmocka_unit_test(test_store__schema_1_is_migrated),
		cmocka_unit_test(test_store__verify_names_a_damaged_page),
		cmocka_unit_test(test_store__import_bad_line_message),
		cmocka_unit_test(test_store__import_case_ids_checked_whole),
		cmocka_unit_test(test_store__import_canceled_from_progress),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}

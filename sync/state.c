/*
** state.c — the sync state: every SQL statement sync/ runs on the store.
**
** core/store.c creates these tables (and stays the place that does); sync/
** reads and writes them only through the functions below, so what the sync
** keeps in the store is read in one file:
**
**   devices(id, name, role, region, sign_pk, box_pk, revoked, published)
**       the registry as this store knows it: every enrolled device with
**       its role ("office", "assistant", "volunteer"), its region
**       ("3000-3499,..." or ""), its Ed25519 and X25519 public keys (32
**       bytes each), revoked 1 once revoked.  published 0: the office has
**       not yet committed the row's registry entry to main.  Written by
**       org.c (org init: the office itself; enroll; revoke) and by merge.c
**       from main's verified registry (published 1).
**   case_keys(case_id, compartment, epoch, key_id, key)
**       the keys this store holds: one per (case, compartment, epoch),
**       key_id 32 hex digits (unique), key 32 bytes.  Epoch 0 is the key
**       the case was made with; the office rotates a compartment to the
**       next epoch (docs/sync.md, "Key epochs"): records are sealed with
**       the newest epoch held, and read with whichever their blob names.  Made by keys.c (ensure_key)
**       for a case this store seals first; taken from keys refs sealed to
**       this device (keys.c); deleted by an erasure.
**   key_shares(key_id, recipient)
**       which key this store seals to which device in its keys ref;
**       deleted with the key (ON DELETE CASCADE, and explicitly by an
**       erasure).  Written by keys.c (by region, and veld_case_share).
**   sync_refs(ref, oid)
**       per ref ("refs/heads/main", "refs/veld/devices/<id>",
**       "refs/veld-keys/<id>"): the last head verified and merged, as 40
**       hex digits.  A ref never goes back behind it; verification stops
**       at these heads.  Written by merge.c and keys.c; cleared by join.
**   erased(case_id, published)
**       cases crypto-shredded here; published 0 until this store's tree
**       has dropped the case (commit.c).  Written by erase.c.
**   records: dirty (1: the next commit seals the record) and conflicts
**       (the number of fields in conflict) are read and cleared here; an
**       erasure deletes a case's rows.  Everything else of a record goes
**       through core's veld_store__record_* functions.
**   drafts: never read here (a draft stays on its device); dropping a
**       case, or every case of a revoked device, deletes its drafts too.
**   refusals(path, blob, device, case_id, record_id, code, reason,
**            commit_id, at, published)
**       changes verification refused (docs/sync.md, "Refusals"): the tree
**       path and the refused blob (40 hex; "" for a removal, and path ""
**       for a revoked device's whole ref), the writer, the ids the path
**       names, a code (core's VELD_RULE_* or sync's VELD_REFUSED_*), the
**       reason in words, the commit, when it was recorded (ms), and on
**       the office published 0 until main carries it.  Written by
**       verify.c (what this store refused) and merge.c (what main
**       publishes); read by merge.c (a refused blob is never merged) and
**       veld_refused_json.
**   access_lost(device, case_id, published)
**       a device that may no longer read a case: its consent was withdrawn
**       or its share taken back (docs/sync.md, "Access taken back").  The
**       office writes the rows (rotate.c) and publishes them in main
**       (published 0 until then); every store takes them from main
**       (merge.c), and verify.c refuses that device's writes to the case.
**   meta "keys_dirty" ("1": the keys ref must be rebuilt).
**
** What this file must not do: decide anything.  No roles, no git, no
** crypto: the stage files do that and call these.  Every function runs
** inside the caller's transaction (or none); none opens one.
*/
#include "sync.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define KEY_HEX_LEN (2 * VELD_KEYIDBYTES)

/* ---- statements ------------------------------------------------------------ */

static int prepare(veld_store *s, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(veld_store__db(s), sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(s, rc, "sync");
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

/* Run a statement whose parameters are bound: 0, or the failure as
** `what`.  Finalizes it. */
static int run(veld_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, what);
}

/* Prepare `sql`, bind text parameters 1..n and run it. */
static int exec_text(veld_store *s, const char *sql, const char *what, int n, const char *a, const char *b)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = prepare(s, &st, sql)))
		return rc;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
	if (n > 1)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
	return run(s, st, what);
}

/* The callback an iteration calls, and its payload. */
typedef struct rowctx {
	union {
		veld_device_cb device;
		veld_case_key_cb key;
		veld_share_cb share;
		veld_text_cb text;
		veld_dirty_cb dirty;
		veld_dirty_key_cb dirty_key;
		veld_refusal_cb refusal;
		veld_pair_cb pair;
	} cb;
	void *payload;
} rowctx;

/* Run `sql` (its ?1 bound to `arg` unless NULL) and call `row` for each
** row; a non-zero return stops and is returned. */
static int query(veld_store *s, const char *sql, const char *arg, int (*row)(sqlite3_stmt *st, rowctx *x),
                 rowctx *x, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = prepare(s, &st, sql)))
		return rc;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int r2 = row(st, x);
		if (r2) {
			sqlite3_finalize(st);
			return r2;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, what);
}

/* ---- devices ----------------------------------------------------------------- */

int veld_state__device_put(veld_store *s, const veld_device_row *d, int origin)
{
	static const char local_sql[] = "INSERT INTO devices(id, name, role, region, sign_pk, box_pk, published)"
	                                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0)";
	static const char registry_sql[] = "INSERT INTO devices(id, name, role, region, sign_pk, box_pk, published)"
	                                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1)"
	                                   " ON CONFLICT(id) DO UPDATE SET name = ?2, role = ?3, region = ?4,"
	                                   " sign_pk = ?5, box_pk = ?6";
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = prepare(s, &st, origin == VELD_STATE_REGISTRY ? registry_sql : local_sql)))
		return rc;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, d->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, d->role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, d->region, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 5, d->sign_pk, 32, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 6, d->box_pk, 32, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT && origin == VELD_STATE_LOCAL) /* extended codes are on */
		return veld_err__set(veld_store__err(s), VELD_EEXISTS, "device %s is already enrolled", d->id);
	return veld_store__db_fail(s, rc, origin == VELD_STATE_REGISTRY ? "registry" : "enrol");
}

int veld_state__device_revoke(int *changed, veld_store *s, const char *id, int origin)
{
	int rc = exec_text(s,
	                   origin == VELD_STATE_LOCAL
	                       ? "UPDATE devices SET revoked = 1, published = 0 WHERE id = ?1 AND NOT revoked"
	                       : "UPDATE devices SET revoked = 1 WHERE id = ?1",
	                   "revoke", 1, id, NULL);
	*changed = rc ? 0 : sqlite3_changes(veld_store__db(s)) > 0;
	return rc;
}

int veld_state__device_sign_pk(unsigned char *pk32, veld_store *s, const char *id, int revoked_too)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (prepare(s, &st, "SELECT sign_pk FROM devices WHERE id = ?1 AND (NOT revoked OR ?2)"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, revoked_too);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(pk32, sqlite3_column_blob(st, 0), 32);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int veld_state__device_info(char *name, size_t ncap, char *role, size_t rcap, char *region, size_t gcap,
                            int *revoked, veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (prepare(s, &st, "SELECT name, role, region, revoked FROM devices WHERE id = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(name, ncap, "%s", col_text(st, 0));
		snprintf(role, rcap, "%s", col_text(st, 1));
		snprintf(region, gcap, "%s", col_text(st, 2));
		*revoked = sqlite3_column_int(st, 3);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int veld_state__device_revoked(veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (prepare(s, &st, "SELECT 1 FROM devices WHERE id = ?1 AND revoked"))
		return 0;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

int veld_state__device_role(char *role, size_t cap, veld_range *ranges, int *n_ranges, veld_store *s,
                            const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (prepare(s, &st, "SELECT role, region FROM devices WHERE id = ?1 AND NOT revoked"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(role, cap, "%s", col_text(st, 0));
		*n_ranges = 0;
		if (ranges && sqlite3_column_bytes(st, 1) > 0)
			veld_region__parse(ranges, VELD_MAX_RANGES, n_ranges, col_text(st, 1), NULL);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int device_row(sqlite3_stmt *st, rowctx *x)
{
	veld_device_row d;
	d.id = col_text(st, 0);
	d.name = col_text(st, 1);
	d.role = col_text(st, 2);
	d.region = col_text(st, 3);
	d.sign_pk = sqlite3_column_blob(st, 4);
	d.box_pk = sqlite3_column_blob(st, 5);
	d.revoked = sqlite3_column_int(st, 6);
	return x->cb.device(&d, x->payload);
}

int veld_state__devices_each(veld_store *s, int which, veld_device_cb cb, void *payload)
{
	rowctx x;
	x.cb.device = cb;
	x.payload = payload;
	if (which == VELD_STATE_UNPUBLISHED)
		return query(s, "SELECT id, name, role, region, sign_pk, box_pk, revoked FROM devices WHERE published = 0",
		             NULL, device_row, &x, "registry");
	if (which == VELD_STATE_REVOKED)
		return query(s, "SELECT id, name, role, region, sign_pk, box_pk, revoked FROM devices WHERE revoked", NULL,
		             device_row, &x, "registry");
	return query(s, "SELECT id, name, role, region, sign_pk, box_pk, revoked FROM devices WHERE NOT revoked", NULL,
	             device_row, &x, "share keys");
}

/* ---- case keys ------------------------------------------------------------- */

int veld_state__case_key_get(unsigned char *key, unsigned char *key_id, veld_store *s, const char *case_id,
                             const char *compartment)
{
	sqlite3_stmt *st = NULL;
	size_t bin_len = 0;
	int rc = VELD_ENOTFOUND;
	if ((rc = prepare(s, &st,
	                  "SELECT key_id, key FROM case_keys WHERE case_id = ?1 AND compartment = ?2"
	                  " ORDER BY epoch DESC LIMIT 1")))
		return rc;
	rc = VELD_ENOTFOUND;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, compartment, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == VELD_KEYBYTES) {
		memcpy(key, sqlite3_column_blob(st, 1), VELD_KEYBYTES);
		sodium_hex2bin(key_id, VELD_KEYIDBYTES, col_text(st, 0), KEY_HEX_LEN, NULL, &bin_len, NULL);
		rc = bin_len == VELD_KEYIDBYTES ? 0 : veld_err__set(veld_store__err(s), VELD_EINTEGRITY, "malformed key id");
	}
	sqlite3_finalize(st);
	return rc;
}

/* Looked up by case: case_keys is keyed by (case_id, compartment), so a
** case's keys sit in one leaf, the one ensure_key reads again when the
** merged record is sealed (a lookup by key id would read the key_id index
** as well). */
int veld_state__case_key_find(unsigned char *key, char *compartment, size_t ccap, int *elsewhere, veld_store *s,
                              const char *case_id, const unsigned char *key_id)
{
	sqlite3_stmt *st = NULL;
	char hex[KEY_HEX_LEN + 1];
	int rc = VELD_ENOTFOUND;
	*elsewhere = 0;
	sodium_bin2hex(hex, sizeof hex, key_id, VELD_KEYIDBYTES);
	if (prepare(s, &st, "SELECT key_id, compartment, key FROM case_keys WHERE case_id = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	while (rc && sqlite3_step(st) == SQLITE_ROW)
		if (!strcmp(col_text(st, 0), hex) && sqlite3_column_bytes(st, 2) == VELD_KEYBYTES) {
			memcpy(key, sqlite3_column_blob(st, 2), VELD_KEYBYTES);
			snprintf(compartment, ccap, "%s", col_text(st, 1));
			rc = 0;
		}
	sqlite3_finalize(st);
	if (rc && !prepare(s, &st, "SELECT 1 FROM case_keys WHERE key_id = ?1 AND case_id <> ?2")) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
		*elsewhere = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return rc;
}

int veld_state__case_key_add(int *added, veld_store *s, const veld_case_key *k)
{
	sqlite3_stmt *st = NULL;
	char hex[KEY_HEX_LEN + 1];
	int rc;
	*added = 0;
	sodium_bin2hex(hex, sizeof hex, k->key_id, VELD_KEYIDBYTES);
	if ((rc = prepare(s, &st,
	                  "INSERT OR IGNORE INTO case_keys(key_id, case_id, compartment, key, epoch)"
	                  " VALUES(?1, ?2, ?3, ?4, ?5)")))
		return rc;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k->case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->compartment, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, k->key, VELD_KEYBYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)k->epoch);
	if ((rc = run(s, st, "store case key")))
		return rc;
	*added = sqlite3_changes(veld_store__db(s)) > 0;
	return 0;
}

int veld_state__case_key_epoch(veld_store *s, const char *case_id, const char *compartment)
{
	sqlite3_stmt *st = NULL;
	int epoch = -1;
	if (prepare(s, &st, "SELECT max(epoch) FROM case_keys WHERE case_id = ?1 AND compartment = ?2"))
		return -1;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, compartment, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		epoch = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return epoch;
}

int veld_state__key_of(char *case_id, char *compartment, size_t ccap, int *newest, veld_store *s,
                       const char *key_hex)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (prepare(s, &st,
	            "SELECT case_id, compartment, epoch = (SELECT max(epoch) FROM case_keys m WHERE m.case_id = k.case_id"
	            " AND m.compartment = k.compartment) FROM case_keys k WHERE key_id = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, key_hex, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(case_id, VELD_IDSIZE, "%s", col_text(st, 0));
		snprintf(compartment, ccap, "%s", col_text(st, 1));
		*newest = sqlite3_column_int(st, 2);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int case_key_row(sqlite3_stmt *st, rowctx *x)
{
	return x->cb.key(col_text(st, 0), col_text(st, 1), col_text(st, 2), x->payload);
}

int veld_state__case_keys_each(veld_store *s, const char *case_id, veld_case_key_cb cb, void *payload)
{
	rowctx x;
	x.cb.key = cb;
	x.payload = payload;
	return query(s,
	             case_id ? "SELECT key_id, case_id, compartment FROM case_keys WHERE case_id = ?1"
	                     : "SELECT key_id, case_id, compartment FROM case_keys",
	             case_id, case_key_row, &x, "case keys");
}

/* ---- key shares ------------------------------------------------------------ */

int veld_state__share_add(veld_store *s, const char *key_hex, const char *recipient)
{
	int rc = exec_text(s, "INSERT OR IGNORE INTO key_shares(key_id, recipient) VALUES(?1, ?2)", "share key", 2,
	                   key_hex, recipient);
	if (!rc && sqlite3_changes(veld_store__db(s)) > 0)
		rc = veld_state__keys_dirty_set(s, 1);
	return rc;
}

static int pair_row(sqlite3_stmt *st, rowctx *x)
{
	return x->cb.pair(col_text(st, 0), col_text(st, 1), x->payload);
}

static int share_row(sqlite3_stmt *st, rowctx *x)
{
	veld_share_row r;
	r.key_hex = col_text(st, 0);
	r.case_id = col_text(st, 1);
	r.compartment = col_text(st, 2);
	r.key = sqlite3_column_blob(st, 3);
	r.key_len = sqlite3_column_bytes(st, 3);
	r.recipient = col_text(st, 4);
	r.box_pk = sqlite3_column_blob(st, 5);
	r.box_pk_len = sqlite3_column_bytes(st, 5);
	r.epoch = (uint32_t)sqlite3_column_int64(st, 6);
	return x->cb.share(&r, x->payload);
}

int veld_state__shares_each(veld_store *s, veld_share_cb cb, void *payload)
{
	rowctx x;
	x.cb.share = cb;
	x.payload = payload;
	return query(s,
	             "SELECT k.key_id, k.case_id, k.compartment, k.key, s.recipient, d.box_pk, k.epoch"
	             " FROM key_shares s JOIN case_keys k USING (key_id) JOIN devices d ON d.id = s.recipient"
	             " WHERE NOT d.revoked ORDER BY s.recipient, k.key_id",
	             NULL, share_row, &x, "key shares");
}

int veld_state__share_pairs_each(veld_store *s, veld_pair_cb cb, void *payload)
{
	rowctx x;
	x.cb.pair = cb;
	x.payload = payload;
	return query(s, "SELECT key_id, recipient FROM key_shares", NULL, pair_row, &x, "key shares");
}

int veld_state__keys_dirty(veld_store *s)
{
	char flag[4] = "";
	int n = veld_store__meta_get(s, "keys_dirty", flag, 3);
	if (n <= 0) {
		veld_err__clear(veld_store__err(s));
		return 0;
	}
	return flag[0] == '1';
}

int veld_state__keys_dirty_set(veld_store *s, int dirty)
{
	return veld_store__meta_put(s, "keys_dirty", dirty ? "1" : "0", 1);
}

int veld_state__keys_dirty_touch(veld_store *s)
{
	int rc = sqlite3_exec(veld_store__db(s), "UPDATE meta SET value = '1' WHERE key = 'keys_dirty'", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(s, rc, "revoke");
}

/* ---- sync_refs ------------------------------------------------------------- */

int veld_state__synced_get(char *hex, veld_store *s, const char *ref)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (prepare(s, &st, "SELECT oid FROM sync_refs WHERE ref = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == GIT_OID_HEXSZ) {
		memcpy(hex, sqlite3_column_text(st, 0), GIT_OID_HEXSZ + 1);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int veld_state__synced_set(veld_store *s, const char *ref, const char *hex)
{
	return exec_text(s, "INSERT OR REPLACE INTO sync_refs(ref, oid) VALUES(?1, ?2)", "record sync state", 2, ref,
	                 hex);
}

/* A row of one text column. */
static int text_row(sqlite3_stmt *st, rowctx *x)
{
	return x->cb.text(col_text(st, 0), x->payload);
}

int veld_state__synced_each(veld_store *s, veld_text_cb cb, void *payload)
{
	rowctx x;
	x.cb.text = cb;
	x.payload = payload;
	return query(s, "SELECT oid FROM sync_refs", NULL, text_row, &x, "sync state");
}

int veld_state__synced_clear(veld_store *s)
{
	return sqlite3_exec(veld_store__db(s), "DELETE FROM sync_refs", NULL, NULL, NULL) == SQLITE_OK
	           ? 0
	           : veld_store__db_fail(s, SQLITE_ERROR, "join");
}

/* ---- erased ---------------------------------------------------------------- */

int veld_state__erased_has(veld_store *s, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (prepare(s, &st, "SELECT 1 FROM erased WHERE case_id = ?1"))
		return 0;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

int veld_state__erase(veld_store *s, const char *case_id)
{
	int rc = veld_state__drop_case(s, case_id);
	return rc ? rc : exec_text(s, "INSERT OR IGNORE INTO erased(case_id, published) VALUES(?1, 0)", "erase", 1, case_id, NULL);
}

int veld_state__purge_cases(veld_store *s)
{
	int rc = sqlite3_exec(veld_store__db(s),
	                      "DELETE FROM key_shares; DELETE FROM case_keys; DELETE FROM records; DELETE FROM drafts;"
	                      " DELETE FROM meta WHERE key = 'keys_dirty'",
	                      NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(s, rc, "remove the case data of a revoked device");
}

int veld_state__erased_each(veld_store *s, veld_text_cb cb, void *payload)
{
	rowctx x;
	x.cb.text = cb;
	x.payload = payload;
	return query(s, "SELECT case_id FROM erased WHERE published = 0", NULL, text_row, &x, "erasure");
}

/* ---- refusals ----------------------------------------------------------------- */

/* 1 if `sql` (?1, ?2 bound to a, b) returns a row; 0 also on error. */
static int exists2(veld_store *s, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (prepare(s, &st, sql))
		return 0;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

int veld_state__refusal_add(int *is_new, veld_store *s, const veld_refusal_row *r)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*is_new = !exists2(s, "SELECT 1 FROM refusals WHERE path = ?1 AND device = ?2", r->path, r->device);
	if ((rc = prepare(s, &st,
	                  "INSERT OR IGNORE INTO refusals(path, blob, device, case_id, record_id, code, reason, commit_id,"
	                  " at, published) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")))
		return rc;
	sqlite3_bind_text(st, 1, r->path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, r->blob, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, r->device, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, r->case_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, r->record_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 6, r->code, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 7, r->reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 8, r->commit, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 9, r->at);
	sqlite3_bind_int(st, 10, r->published);
	return run(s, st, "record a refusal");
}

int veld_state__refused_has(veld_store *s, const char *path, const char *blob)
{
	return exists2(s, "SELECT 1 FROM refusals WHERE path = ?1 AND blob = ?2", path, blob);
}

static int refusal_row(sqlite3_stmt *st, rowctx *x)
{
	veld_refusal_row r;
	r.path = col_text(st, 0);
	r.blob = col_text(st, 1);
	r.device = col_text(st, 2);
	r.case_id = col_text(st, 3);
	r.record_id = col_text(st, 4);
	r.code = col_text(st, 5);
	r.reason = col_text(st, 6);
	r.commit = col_text(st, 7);
	r.at = sqlite3_column_int64(st, 8);
	r.published = sqlite3_column_int(st, 9);
	return x->cb.refusal(&r, x->payload);
}

int veld_state__refusals_each(veld_store *s, int which, const char *device, veld_refusal_cb cb, void *payload)
{
	static const char cols[] = "SELECT path, blob, device, case_id, record_id, code, reason, commit_id, at, published"
	                           " FROM refusals";
	char sql[256];
	rowctx x;
	x.cb.refusal = cb;
	x.payload = payload;
	snprintf(sql, sizeof sql, "%s%s ORDER BY at, device, path, blob", cols,
	         which == VELD_STATE_UNPUBLISHED ? " WHERE NOT published"
	         : device                        ? " WHERE device = ?1"
	                                         : "");
	return query(s, sql, which == VELD_STATE_UNPUBLISHED ? NULL : device, refusal_row, &x, "read refusals");
}

/* ---- access taken back ---------------------------------------------------- */

int veld_state__access_lost_add(int *added, veld_store *s, const char *device, const char *case_id, int published)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*added = 0;
	if ((rc = prepare(s, &st, "INSERT OR IGNORE INTO access_lost(device, case_id, published) VALUES(?1, ?2, ?3)")))
		return rc;
	sqlite3_bind_text(st, 1, device, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, case_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, published);
	if ((rc = run(s, st, "record a device's lost access")))
		return rc;
	*added = sqlite3_changes(veld_store__db(s)) > 0;
	return 0;
}

int veld_state__access_lost_has(veld_store *s, const char *device, const char *case_id)
{
	return exists2(s, "SELECT 1 FROM access_lost WHERE device = ?1 AND case_id = ?2", device, case_id);
}

int veld_state__access_lost_each(veld_store *s, veld_pair_cb cb, void *payload)
{
	rowctx x;
	x.cb.pair = cb;
	x.payload = payload;
	return query(s, "SELECT device, case_id FROM access_lost WHERE NOT published", NULL, pair_row, &x,
	             "lost access");
}

int veld_state__drop_case(veld_store *s, const char *case_id)
{
	static const char *const sql[] = {
		"DELETE FROM key_shares WHERE key_id IN (SELECT key_id FROM case_keys WHERE case_id = ?1)",
		"DELETE FROM case_keys WHERE case_id = ?1",
		"DELETE FROM records WHERE case_id = ?1",
		"DELETE FROM drafts WHERE case_id = ?1",
	};
	size_t i;
	int rc = 0;
	for (i = 0; i < sizeof sql / sizeof sql[0] && !rc; i++)
		rc = exec_text(s, sql[i], "drop a case", 1, case_id, NULL);
	return rc;
}

int veld_state__dirty_headers(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (prepare(s, &st, "SELECT 1 FROM records INDEXED BY records_dirty WHERE dirty AND id = case_id LIMIT 1"))
		return 0;
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* ---- records' sync flags --------------------------------------------------- */

static int dirty_row(sqlite3_stmt *st, rowctx *x)
{
	return x->cb.dirty(col_text(st, 0), col_text(st, 1), col_text(st, 2), sqlite3_column_text(st, 3),
	             (size_t)sqlite3_column_bytes(st, 3), x->payload);
}

int veld_state__dirty_each(veld_store *s, veld_dirty_cb cb, void *payload)
{
	rowctx x;
	x.cb.dirty = cb;
	x.payload = payload;
	return query(s, "SELECT id, case_id, compartment, state FROM records WHERE dirty ORDER BY id", NULL, dirty_row,
	             &x, "read dirty records");
}

static int dirty_key_row(sqlite3_stmt *st, rowctx *x)
{
	return x->cb.dirty_key(col_text(st, 0), col_text(st, 1), x->payload);
}

int veld_state__dirty_keys_each(veld_store *s, veld_dirty_key_cb cb, void *payload)
{
	rowctx x;
	x.cb.dirty_key = cb;
	x.payload = payload;
	/* The partial index of dirty records, named: left to itself the planner
	** walks records_case, the whole table, for the DISTINCT. */
	return query(s,
	             "SELECT DISTINCT case_id, compartment FROM records INDEXED BY records_dirty WHERE dirty"
	             " ORDER BY case_id, compartment",
	             NULL, dirty_key_row, &x, "read dirty records");
}

int veld_state__mark_committed(veld_store *s)
{
	int rc = sqlite3_exec(veld_store__db(s),
	                      "UPDATE records SET dirty = 0 WHERE dirty; UPDATE devices SET published = 1;"
	                      " UPDATE erased SET published = 1; UPDATE refusals SET published = 1 WHERE NOT published;"
	                      " UPDATE access_lost SET published = 1 WHERE NOT published",
	                      NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(s, rc, "clear dirty flags");
}

int veld_state__conflicts(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (prepare(s, &st, "SELECT coalesce(sum(conflicts), 0) FROM records WHERE conflicts > 0"))
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

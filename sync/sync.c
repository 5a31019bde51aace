/*
** sync.c — one sync, and the calls around it: org init, enroll, join,
** revoke, log.  docs/sync.md is the design; this file follows it step by
** step:
**
**   commit   seal every dirty record into its blob, update the tree at those
**            paths, sign a commit on this device's ref (the office: on main,
**            signed by the organisation key) and rewrite the keys ref when
**            keys were shared;
**   fetch    main, every device ref and every keys ref, into refs/veld-hub/;
**   verify   every commit a ref brought: signature of an enrolled, unrevoked
**            device, paths that device may write, blobs that open with the
**            key they claim; a ref that fails is rejected whole;
**   merge    the records that changed on verified refs, through the record
**            CRDT, into the store (marking them dirty so the next commit
**            step seals the merged state);
**   push     this device's refs (the office: main too).
**
** Every step can be interrupted and run again: commits are made only when
** the tree changed, merges are idempotent, pushes of pushed refs are no-ops.
** The store is changed only inside transactions, after verification.
** Secret keys are held in sodium_malloc'd memory for the length of a call.
** The store's repository is opened once per store handle and stays open in
** the handle's sync slot until veld_store_close (the store's lock keeps
** every other process out of it), so libgit2's caches outlive one sync.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define REPO_DIR       "repo"
#define REF_MAIN       "refs/heads/main"
#define REF_DEV_PREFIX "refs/veld/devices/"
#define REF_KEY_PREFIX "refs/veld-keys/"
#define HUB_PREFIX     "refs/veld-hub/"
#define ORG_SIGNER     "org"
#define MAX_RANGES     32
/* Parents a merge commit may have: this store's head and at most
** MAX_PARENTS - 1 merged heads (the rest are recorded in sync_refs all the
** same); verification accepts that many. */
#define MAX_PARENTS    32

typedef struct syncctx {
	veld_store *s;
	veld_err *err;
	veld_repo *repo;
	const veld_sync_options *opts;
	const char *me;
	int office;
	unsigned char *dev_sk;  /* this device's signing key */
	unsigned char *org_sk;  /* the organisation's (office only) */
	unsigned char *box_sk;
	unsigned char *blob_key; /* a case key being read (open_blob, key_entry), wiped after each use */
	unsigned char box_pk[crypto_box_PUBLICKEYBYTES];
	unsigned char org_pk[crypto_sign_PUBLICKEYBYTES];
	int have_org;
	char hub[1024];
	/* results */
	json_t *rejected;
	size_t pushed, fetched, merged;
	json_t *new_key_cases; /* case ids whose keys arrived in this sync */
	git_oid *merged_heads; /* heads merged this sync: extra parents */
	size_t n_merged_heads;
	int prune_due; /* an erasure left this store's tree: prune unreachable objects */
} syncctx;


/* ---- small helpers ---------------------------------------------------------- */

/* Tell the caller; a non-zero answer asks to cancel (VELD_ECANCELED). */
static int progress(syncctx *c, const char *stage, size_t done, size_t total)
{
	if (c->opts && c->opts->progress && c->opts->progress(stage, done, total, c->opts->payload))
		return veld_err__set(c->err, VELD_ECANCELED, "sync canceled during %s", stage);
	return 0;
}

static void oid_hex(char *out, const git_oid *id)
{
	git_oid_tostr(out, GIT_OID_HEXSZ + 1, id);
}

/* The case's directory: "cases/<c0c1>/<c2>/<case>" (docs/sync.md,
** "Trees"). */
#define CASE_DIR_LEN (6 + 3 + 2 + 32)

static void case_dir(char *out, size_t cap, const char *case_id)
{
	snprintf(out, cap, "cases/%.2s/%c/%.32s", case_id, case_id[2], case_id);
}

/* "<case_dir>/<record>" -> case and record ids; 0 if well formed: two ids
** of 32 lowercase hex digits, the directory exactly the case's. */
static int parse_record_path(const char *path, char *case_id, char *record_id)
{
	char dir[CASE_DIR_LEN + 1];
	const char *c = path + CASE_DIR_LEN - 32, *r = path + CASE_DIR_LEN + 1;
	if (strlen(path) != CASE_DIR_LEN + 1 + 32 || path[CASE_DIR_LEN] != '/' || !veld_hex__is(c, 32) ||
	    !veld_hex__is(r, 32))
		return -1;
	case_dir(dir, sizeof dir, c);
	if (memcmp(path, dir, CASE_DIR_LEN))
		return -1;
	memcpy(case_id, c, 32);
	case_id[32] = '\0';
	memcpy(record_id, r, 32);
	record_id[32] = '\0';
	return 0;
}

static void record_path(char *out, size_t cap, const char *case_id, const char *record_id)
{
	char dir[CASE_DIR_LEN + 1];
	case_dir(dir, sizeof dir, case_id);
	snprintf(out, cap, "%s/%s", dir, record_id);
}

static int reject(syncctx *c, const char *ref, const git_oid *commit, const char *reason)
{
	char hex[GIT_OID_HEXSZ + 1] = "";
	if (commit)
		oid_hex(hex, commit);
	json_array_append_new(c->rejected, json_pack("{s:s, s:s, s:s}", "ref", ref, "commit", hex, "reason", reason));
	return 0;
}

static int sql_prepare(syncctx *c, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(veld_store__db(c->s), sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(c->s, rc, "sync");
}

/* Load a secret from meta into sodium_malloc'd memory. */
static int load_secret(unsigned char **out, syncctx *c, const char *key, int len)
{
	unsigned char *buf = sodium_malloc((size_t)len);
	int n;
	*out = NULL;
	if (!buf)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	n = veld_store__meta_get(c->s, key, buf, len);
	if (n != len) {
		sodium_free(buf);
		return n < 0 ? n : veld_err__set(c->err, VELD_EINTEGRITY, "store key '%s' is malformed", key);
	}
	*out = buf;
	return 0;
}

static int sign_cb(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload)
{
	const unsigned char *sk = payload;
	return crypto_sign_detached(sig64, NULL, msg, len, sk) == 0 ? 0 : -1;
}

/* Public key of a signer: "org" or an enrolled, unrevoked device. */
static int pubkey_cb(unsigned char *pk32, const char *signer, void *payload)
{
	syncctx *c = payload;
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (!strcmp(signer, ORG_SIGNER)) {
		if (!c->have_org)
			return VELD_ENOTFOUND;
		memcpy(pk32, c->org_pk, 32);
		return 0;
	}
	if (sql_prepare(c, &st, "SELECT sign_pk FROM devices WHERE id = ?1 AND NOT revoked"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, signer, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(pk32, sqlite3_column_blob(st, 0), 32);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int device_role(syncctx *c, const char *id, char *role, size_t cap, veld_range *ranges, int *n_ranges)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (sql_prepare(c, &st, "SELECT role, region FROM devices WHERE id = ?1 AND NOT revoked"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(role, cap, "%s", (const char *)sqlite3_column_text(st, 0));
		*n_ranges = 0;
		if (ranges && sqlite3_column_bytes(st, 1) > 0)
			veld_region__parse(ranges, MAX_RANGES, n_ranges, (const char *)sqlite3_column_text(st, 1), NULL);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- case keys ------------------------------------------------------------------ */

/* The key `key_id` of case `case_id`, and its compartment.  Looked up by
** case: case_keys is keyed by (case_id, compartment), so a case's keys sit
** in one leaf, the one ensure_key reads again when the merged record is
** sealed (a lookup by key id would read the key_id index as well).
** VELD_ENOTFOUND if the case has no such key; *elsewhere is then 1 if
** another case has it. */
static int case_key(syncctx *c, const char *case_id, const unsigned char *key_id, unsigned char *key,
                    char *compartment, size_t ccap, int *elsewhere)
{
	sqlite3_stmt *st = NULL;
	char hex[2 * VELD_KEYIDBYTES + 1];
	int rc = VELD_ENOTFOUND;
	*elsewhere = 0;
	sodium_bin2hex(hex, sizeof hex, key_id, VELD_KEYIDBYTES);
	if (sql_prepare(c, &st, "SELECT key_id, compartment, key FROM case_keys WHERE case_id = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	while (rc && sqlite3_step(st) == SQLITE_ROW)
		if (!strcmp((const char *)sqlite3_column_text(st, 0), hex) && sqlite3_column_bytes(st, 2) == VELD_KEYBYTES) {
			memcpy(key, sqlite3_column_blob(st, 2), VELD_KEYBYTES);
			snprintf(compartment, ccap, "%s", (const char *)sqlite3_column_text(st, 1));
			rc = 0;
		}
	sqlite3_finalize(st);
	if (rc && !sql_prepare(c, &st, "SELECT 1 FROM case_keys WHERE key_id = ?1 AND case_id <> ?2")) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
		*elsewhere = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return rc;
}

static int add_share(syncctx *c, const char *key_hex, const char *recipient)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!strcmp(recipient, c->me))
		return 0;
	if ((rc = sql_prepare(c, &st, "INSERT OR IGNORE INTO key_shares(key_id, recipient) VALUES(?1, ?2)")))
		return rc;
	sqlite3_bind_text(st, 1, key_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, recipient, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return veld_store__db_fail(c->s, rc, "share key");
	if (sqlite3_changes(veld_store__db(c->s)) > 0)
		return veld_store__meta_put(c->s, "keys_dirty", "1", 1);
	return 0;
}

/* The postcode of a case from its header record (-1 if unknown). */
static int case_postcode(syncctx *c, const char *case_id)
{
	veld_record *h = NULL;
	const json_t *v;
	size_t n;
	int pc = -1;
	if (veld_store__record_load(&h, c->s, case_id))
		return -1;
	v = veld_record__value(h, "postcode", &n);
	if (json_is_string(v))
		pc = atoi(json_string_value(v));
	veld_record__free(h);
	return pc;
}

/* Share `key_hex` of `case_id` with the office and, for the social
** compartment, every assistant whose region holds the case's postcode. */
static int share_by_region(syncctx *c, const char *key_hex, const char *case_id, const char *compartment)
{
	sqlite3_stmt *st = NULL;
	int pc = case_postcode(c, case_id), rc;
	if ((rc = sql_prepare(c, &st, "SELECT id, role, region FROM devices WHERE NOT revoked")))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *role = (const char *)sqlite3_column_text(st, 1);
		veld_range ranges[MAX_RANGES];
		int n = 0, share = !strcmp(role, "office");
		/* Assistants of the region hold both compartments: they coordinate
		** the Huiswijs volunteers of their cases.  Volunteers get a key only
		** by an explicit share (veld_case_share). */
		(void)compartment;
		if (!share && !strcmp(role, "assistant") && pc > 0 &&
		    veld_region__parse(ranges, MAX_RANGES, &n, (const char *)sqlite3_column_text(st, 2), NULL) == 0)
			share = veld_region__contains(ranges, n, pc);
		if (share && (rc = add_share(c, key_hex, id))) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, rc, "share keys");
}

/* The key of (case, compartment), made now if this store has none. */
static int ensure_key(syncctx *c, const char *case_id, const char *compartment, unsigned char *key,
                      unsigned char *key_id)
{
	sqlite3_stmt *st = NULL;
	veld_case_key k;
	char hex[2 * VELD_KEYIDBYTES + 1];
	int rc;
	if ((rc = sql_prepare(c, &st, "SELECT key_id, key FROM case_keys WHERE case_id = ?1 AND compartment = ?2")))
		return rc;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, compartment, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == VELD_KEYBYTES) {
		size_t bin_len = 0;
		memcpy(key, sqlite3_column_blob(st, 1), VELD_KEYBYTES);
		sodium_hex2bin(key_id, VELD_KEYIDBYTES, (const char *)sqlite3_column_text(st, 0), 32, NULL, &bin_len, NULL);
		sqlite3_finalize(st);
		return bin_len == VELD_KEYIDBYTES ? 0 : veld_err__set(c->err, VELD_EINTEGRITY, "malformed key id");
	}
	sqlite3_finalize(st);
	memset(&k, 0, sizeof k);
	if (veld_case_key__new(&k))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	sodium_bin2hex(hex, sizeof hex, k.key_id, VELD_KEYIDBYTES);
	rc = sql_prepare(c, &st, "INSERT INTO case_keys(key_id, case_id, compartment, key) VALUES(?1, ?2, ?3, ?4)");
	if (!rc) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, compartment, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, k.key, VELD_KEYBYTES, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, SQLITE_ERROR, "store case key");
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = share_by_region(c, hex, case_id, compartment);
	if (!rc) {
		memcpy(key, k.key, VELD_KEYBYTES);
		memcpy(key_id, k.key_id, VELD_KEYIDBYTES);
	}
	veld_case_key__clear(&k);
	/* Whoever makes a case's first key makes the other compartment's too,
	** so every device of the region seals with the same keys (two devices
	** minting a key for one compartment would split the case). */
	if (!rc) {
		const char *other = !strcmp(compartment, "social") ? "huiswijs" : "social";
		unsigned char *k2 = sodium_malloc(VELD_KEYBYTES), id2[VELD_KEYIDBYTES];
		sqlite3_stmt *chk = NULL;
		int have = 1;
		if (!k2)
			return veld_err__set(c->err, VELD_ERROR, "out of memory");
		if (!sql_prepare(c, &chk, "SELECT 1 FROM case_keys WHERE case_id = ?1 AND compartment = ?2")) {
			sqlite3_bind_text(chk, 1, case_id, -1, SQLITE_STATIC);
			sqlite3_bind_text(chk, 2, other, -1, SQLITE_STATIC);
			have = sqlite3_step(chk) == SQLITE_ROW;
			sqlite3_finalize(chk);
		}
		if (!have)
			rc = ensure_key(c, case_id, other, k2, id2);
		sodium_free(k2);
	}
	return rc;
}

/* ---- tree changes ------------------------------------------------------------ */

/* The changes one commit makes to a tree: paths and the blob each gets (a
** zero id removes the path). */
typedef struct changeset {
	veld_tree_change *changes;
	char **paths;
	git_oid *oids;
	size_t n, cap;
} changeset;

static void changeset_free(changeset *cs)
{
	size_t i;
	for (i = 0; i < cs->n; i++)
		free(cs->paths[i]);
	free(cs->changes);
	free(cs->paths);
	free(cs->oids);
	memset(cs, 0, sizeof *cs);
}

/* Set `path` to `id` (NULL: remove it). */
static int changeset_put(syncctx *c, changeset *cs, const char *path, const git_oid *id)
{
	if (cs->n == cs->cap) {
		size_t ncap = cs->cap ? 2 * cs->cap : 64;
		void *a = realloc(cs->changes, ncap * sizeof *cs->changes);
		void *b = a ? realloc(cs->paths, ncap * sizeof *cs->paths) : NULL;
		void *d = b ? realloc(cs->oids, ncap * sizeof *cs->oids) : NULL;
		if (a)
			cs->changes = a;
		if (b)
			cs->paths = b;
		if (d)
			cs->oids = d;
		if (!a || !b || !d)
			return veld_err__set(c->err, VELD_ERROR, "out of memory");
		cs->cap = ncap;
	}
	if (id)
		cs->oids[cs->n] = *id;
	else
		memset(&cs->oids[cs->n], 0, sizeof cs->oids[cs->n]);
	cs->paths[cs->n] = strdup(path);
	if (!cs->paths[cs->n])
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	cs->n++;
	return 0;
}

/* Write `blob` and set `path` to it. */
static int changeset_add(syncctx *c, changeset *cs, const char *path, const void *blob, size_t len)
{
	git_oid id;
	if (veld_repo__blob_write(&id, c->repo, blob, len, c->err))
		return c->err->code ? c->err->code : VELD_ERROR;
	return changeset_put(c, cs, path, &id);
}

/* Sign `body` (a new reference, consumed) with the organisation key and set
** `path` to the signed entry. */
static int changeset_add_signed(syncctx *c, changeset *cs, const char *path, json_t *body)
{
	char *text = body ? veld_registry__sign(body, c->org_sk) : NULL;
	int rc;
	json_decref(body);
	if (!text)
		return veld_err__set(c->err, VELD_ERROR, "cannot sign %s", path);
	rc = changeset_add(c, cs, path, text, strlen(text));
	free(text);
	return rc;
}

/* ---- erasure --------------------------------------------------------------------- */

static int is_erased(syncctx *c, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (sql_prepare(c, &st, "SELECT 1 FROM erased WHERE case_id = ?1"))
		return 0;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Crypto-shred a case in this store: its records and every key of it go;
** the keys ref is rewritten without them at the next commit, and the case's
** paths leave this store's tree (erased.published = 0 until then). */
static int erase_local(syncctx *c, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	static const char *const sql[] = {
		"DELETE FROM key_shares WHERE key_id IN (SELECT key_id FROM case_keys WHERE case_id = ?1)",
		"DELETE FROM case_keys WHERE case_id = ?1",
		"DELETE FROM records WHERE case_id = ?1",
		"INSERT OR IGNORE INTO erased(case_id, published) VALUES(?1, 0)",
	};
	size_t i;
	int rc = 0;
	for (i = 0; i < sizeof sql / sizeof sql[0] && !rc; i++) {
		if ((rc = sql_prepare(c, &st, sql[i])))
			break;
		sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, SQLITE_ERROR, "erase");
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = veld_store__meta_put(c->s, "keys_dirty", "1", 1);
	if (!rc)
		rc = veld_store__audit(c->s, "erase", case_id, NULL);
	return rc;
}

/* Tree changes for erased cases not yet out of this store's tree: the
** case's directory goes; the office also writes the signed marker. */
static int erasure_changes(syncctx *c, changeset *cs)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = sql_prepare(c, &st, "SELECT case_id FROM erased WHERE published = 0")))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *cid = (const char *)sqlite3_column_text(st, 0);
		char path[128];
		int r2;
		c->prune_due = 1;
		case_dir(path, sizeof path, cid);
		r2 = changeset_put(c, cs, path, NULL);
		if (!r2 && c->office) {
			snprintf(path, sizeof path, "erased/%s", cid);
			r2 = changeset_add_signed(c, cs, path, json_pack("{s:s}", "case", cid));
		}
		if (r2) {
			sqlite3_finalize(st);
			return r2;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, rc, "erasure");
}

/* ---- registry -------------------------------------------------------------------- */

static json_t *device_body(sqlite3_stmt *st)
{
	char spk[65], bpk[65];
	sodium_bin2hex(spk, sizeof spk, sqlite3_column_blob(st, 4), 32);
	sodium_bin2hex(bpk, sizeof bpk, sqlite3_column_blob(st, 5), 32);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", (const char *)sqlite3_column_text(st, 0), "name",
	                 (const char *)sqlite3_column_text(st, 1), "role", (const char *)sqlite3_column_text(st, 2),
	                 "region", (const char *)sqlite3_column_text(st, 3), "sign_pk", spk, "box_pk", bpk);
}

/* Office: registry entries not yet in main become tree changes. */
static int registry_changes(syncctx *c, changeset *cs)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = sql_prepare(c, &st,
	                      "SELECT id, name, role, region, sign_pk, box_pk, revoked FROM devices WHERE published = 0")))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int revoked = sqlite3_column_int(st, 6);
		char path[128];
		int r2;
		snprintf(path, sizeof path, "registry/%s/%s", revoked ? "revoked" : "devices",
		         (const char *)sqlite3_column_text(st, 0));
		r2 = changeset_add_signed(c, cs, path,
		                          revoked ? json_pack("{s:s, s:b}", "id", (const char *)sqlite3_column_text(st, 0),
		                                              "revoked", 1)
		                                  : device_body(st));
		if (r2) {
			sqlite3_finalize(st);
			return r2;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, rc, "registry");
}

/* ---- commit ---------------------------------------------------------------------- */

static const char *own_ref(syncctx *c, char *buf, size_t cap)
{
	if (c->office)
		snprintf(buf, cap, "%s", REF_MAIN);
	else
		snprintf(buf, cap, REF_DEV_PREFIX "%s", c->me);
	return buf;
}

/* Rebuild this store's keys ref: one sealed entry per (key, recipient). */
static int commit_keys(syncctx *c)
{
	sqlite3_stmt *st = NULL;
	changeset cs;
	git_oid tree, commit;
	char flag[4] = "", ref[128];
	unsigned char *key = sodium_malloc(VELD_KEYBYTES);
	size_t i;
	int rc, n = veld_store__meta_get(c->s, "keys_dirty", flag, 3);
	memset(&cs, 0, sizeof cs);
	if (!key)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	if (n <= 0 || flag[0] != '1') {
		sodium_free(key);
		veld_err__clear(c->err);
		return 0;
	}
	rc = sql_prepare(c, &st,
	                 "SELECT k.key_id, k.case_id, k.compartment, k.key, s.recipient, d.box_pk"
	                 " FROM key_shares s JOIN case_keys k USING (key_id) JOIN devices d ON d.id = s.recipient"
	                 " WHERE NOT d.revoked ORDER BY s.recipient, k.key_id");
	while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		veld_case_key k;
		unsigned char *sealed = NULL;
		size_t slen = 0, bl = 0;
		char path[128];
		memset(&k, 0, sizeof k);
		snprintf(k.case_id, sizeof k.case_id, "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(k.compartment, sizeof k.compartment, "%s", (const char *)sqlite3_column_text(st, 2));
		sodium_hex2bin(k.key_id, sizeof k.key_id, (const char *)sqlite3_column_text(st, 0), 32, NULL, &bl, NULL);
		memcpy(key, sqlite3_column_blob(st, 3), VELD_KEYBYTES);
		k.key = key;
		if (sqlite3_column_bytes(st, 5) != crypto_box_PUBLICKEYBYTES ||
		    veld_keyring__seal(&sealed, &slen, &k, sqlite3_column_blob(st, 5))) {
			rc = veld_err__set(c->err, VELD_ERROR, "cannot seal a case key");
			break;
		}
		snprintf(path, sizeof path, "%s/%s", (const char *)sqlite3_column_text(st, 4),
		         (const char *)sqlite3_column_text(st, 0));
		rc = changeset_add(c, &cs, path, sealed, slen);
		free(sealed);
	}
	sqlite3_finalize(st);
	sodium_free(key);
	if (rc != SQLITE_DONE && rc != 0)
		goto done;
	rc = 0;
	for (i = 0; i < cs.n; i++) {
		cs.changes[i].path = cs.paths[i];
		cs.changes[i].id = &cs.oids[i];
	}
	/* A fresh root commit: the keys ref keeps no history (docs/sync.md). */
	if ((rc = veld_repo__tree_update(&tree, c->repo, NULL, cs.changes, cs.n, c->err)))
		goto done;
	if ((rc = veld_repo__commit(&commit, c->repo, &tree, NULL, 0, c->me,
	                            veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx), "veld keys",
	                            sign_cb, c->dev_sk, c->err)))
		goto done;
	snprintf(ref, sizeof ref, REF_KEY_PREFIX "%s", c->me);
	if ((rc = veld_repo__ref_set(c->repo, ref, &commit, c->err)))
		goto done;
	rc = veld_store__meta_put(c->s, "keys_dirty", "0", 1);
done:
	changeset_free(&cs);
	return rc;
}

/* Seal dirty records (and, on the office, unpublished registry entries)
** into a commit on this store's ref, with `extra` heads as merge parents. */
static int commit_local(syncctx *c)
{
	sqlite3_stmt *st = NULL;
	changeset cs;
	git_oid head, base_tree, tree, commit, *parents = NULL;
	int have_head, rc;
	char ref[128];
	unsigned char *key = sodium_malloc(VELD_KEYBYTES);
	size_t i, np = 0;
	memset(&cs, 0, sizeof cs);
	if (!key)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	own_ref(c, ref, sizeof ref);
	rc = veld_repo__ref_get(&head, c->repo, ref, c->err);
	have_head = rc == 0;
	if (rc && rc != VELD_ENOTFOUND)
		goto done;
	veld_err__clear(c->err);
	rc = 0;
	if (have_head && (rc = veld_repo__commit_tree(&base_tree, c->repo, &head, c->err)))
		goto done;
	if ((rc = sql_prepare(c, &st, "SELECT id, case_id, compartment, state FROM records WHERE dirty ORDER BY id")))
		goto done;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *case_id = (const char *)sqlite3_column_text(st, 1);
		const char *compartment = (const char *)sqlite3_column_text(st, 2);
		unsigned char key_id[VELD_KEYIDBYTES], *blob = NULL;
		size_t blen = 0;
		char path[128];
		int r2 = ensure_key(c, case_id, compartment, key, key_id);
		if (!r2)
			r2 = veld_env__seal(&blob, &blen, key, key_id, case_id, id, sqlite3_column_text(st, 3),
			                    (size_t)sqlite3_column_bytes(st, 3));
		if (r2) {
			rc = r2 ? r2 : VELD_ERROR;
			goto done;
		}
		record_path(path, sizeof path, case_id, id);
		r2 = changeset_add(c, &cs, path, blob, blen);
		free(blob);
		if (r2) {
			rc = r2;
			goto done;
		}
		c->pushed++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = veld_store__db_fail(c->s, rc, "read dirty records");
		goto done;
	}
	rc = 0;
	if (c->office && (rc = registry_changes(c, &cs)))
		goto done;
	if ((rc = erasure_changes(c, &cs)))
		goto done;
	for (i = 0; i < cs.n; i++) {
		cs.changes[i].path = cs.paths[i];
		cs.changes[i].id = git_oid_is_zero(&cs.oids[i]) ? NULL : &cs.oids[i];
	}
	if ((rc = veld_repo__tree_update(&tree, c->repo, have_head ? &base_tree : NULL, cs.changes, cs.n, c->err)))
		goto done;
	parents = calloc(1 + c->n_merged_heads, sizeof *parents);
	if (!parents) {
		rc = veld_err__set(c->err, VELD_ERROR, "out of memory");
		goto done;
	}
	if (have_head)
		parents[np++] = head;
	for (i = 0; i < c->n_merged_heads && np < MAX_PARENTS; i++) {
		size_t j;
		int dup = 0;
		for (j = 0; j < np; j++)
			dup |= git_oid_equal(&parents[j], &c->merged_heads[i]);
		if (!dup)
			parents[np++] = c->merged_heads[i];
	}
	/* Commit only when the tree changed: an interrupted sync run again, or
	** devices merging each other's merges, make no empty commits (what was
	** merged is recorded in sync_refs either way). */
	if (!have_head || !git_oid_equal(&tree, &base_tree)) {
		rc = veld_repo__commit(&commit, c->repo, &tree, parents, np, c->office ? ORG_SIGNER : c->me,
		                       veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx),
		                       np > 1 ? "veld merge" : "veld sync", sign_cb, c->office ? c->org_sk : c->dev_sk,
		                       c->err);
		if (rc)
			goto done;
		if ((rc = veld_repo__ref_set(c->repo, ref, &commit, c->err)))
			goto done;
	}
	rc = sqlite3_exec(veld_store__db(c->s),
	                  "UPDATE records SET dirty = 0 WHERE dirty; UPDATE devices SET published = 1;"
	                  " UPDATE erased SET published = 1",
	                  NULL, NULL, NULL);
	rc = rc == SQLITE_OK ? 0 : veld_store__db_fail(c->s, rc, "clear dirty flags");
	if (!rc)
		rc = commit_keys(c);
	c->n_merged_heads = 0;
done:
	sqlite3_finalize(st);
	changeset_free(&cs);
	free(parents);
	sodium_free(key);
	return rc;
}

/* ---- verify and merge --------------------------------------------------------- */

/* Last verified and merged head of a ref (sync_refs). */
static int synced_get(syncctx *c, const char *ref, git_oid *out)
{
	sqlite3_stmt *st = NULL;
	int rc = VELD_ENOTFOUND;
	if (sql_prepare(c, &st, "SELECT oid FROM sync_refs WHERE ref = ?1"))
		return VELD_ERROR;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && git_oid_fromstr(out, (const char *)sqlite3_column_text(st, 0)) == 0)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

static int synced_set(syncctx *c, const char *ref, const git_oid *id)
{
	sqlite3_stmt *st = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc;
	oid_hex(hex, id);
	if ((rc = sql_prepare(c, &st, "INSERT OR REPLACE INTO sync_refs(ref, oid) VALUES(?1, ?2)")))
		return rc;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, rc, "record sync state");
}

/* Every head already trusted: stops for the walk over new commits. */
static int trusted_heads(syncctx *c, git_oid **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	git_oid *v = NULL, own;
	size_t cap = 0;
	char ref[128];
	int rc;
	*n = 0;
	if ((rc = sql_prepare(c, &st, "SELECT oid FROM sync_refs")))
		return rc;
	for (;;) {
		if (*n + 2 > cap) {
			void *p = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
			if (!p) {
				sqlite3_finalize(st);
				free(v);
				return veld_err__set(c->err, VELD_ERROR, "out of memory");
			}
			v = p;
		}
		if (sqlite3_step(st) != SQLITE_ROW)
			break;
		if (git_oid_fromstr(&v[*n], (const char *)sqlite3_column_text(st, 0)) == 0)
			(*n)++;
	}
	sqlite3_finalize(st);
	if (veld_repo__ref_get(&own, c->repo, own_ref(c, ref, sizeof ref), c->err) == 0)
		v[(*n)++] = own;
	veld_err__clear(c->err);
	*out = v;
	return 0;
}

typedef struct checkctx {
	syncctx *c;
	const char *signer;
	char role[32];
	veld_range ranges[MAX_RANGES];
	int n_ranges;
	const char *why; /* first reason to reject */
	char whybuf[256];
} checkctx;

/* Open the blob `id` at record path (case_id, record_id) if a key is held.
** Returns 0 with *rec set (NULL when unreadable), or a rejection reason. */
static const char *open_blob(syncctx *c, const git_oid *id, const char *case_id, const char *record_id,
                             veld_record **rec, char *compartment, size_t ccap, char *why, size_t wcap)
{
	unsigned char *blob = NULL, *pt = NULL, key_id[VELD_KEYIDBYTES];
	unsigned char *key = c->blob_key;
	size_t len = 0, ptlen = 0;
	int elsewhere = 0;
	veld_err e;
	const char *reason = NULL;
	*rec = NULL;
	compartment[0] = '\0';
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, id, &e)) {
		reason = "a blob is missing or unreadable";
		goto done;
	}
	if (veld_env__key_id(key_id, blob, len)) {
		snprintf(why, wcap, "record %s is not a veld envelope", record_id);
		reason = why;
		goto done;
	}
	if (case_key(c, case_id, key_id, key, compartment, ccap, &elsewhere)) {
		if (elsewhere) {
			snprintf(why, wcap, "record %s claims the key of another case", record_id);
			reason = why;
		} else if (c->office) {
			snprintf(why, wcap, "record %s is sealed with a key the office does not know", record_id);
			reason = why;
		}
		goto done; /* unreadable here: someone who holds the key checks it */
	}
	if (veld_env__open(&pt, &ptlen, blob, len, key, case_id, record_id, &e)) {
		snprintf(why, wcap, "record %s does not open with its key (tampered or moved)", record_id);
		reason = why;
		goto done;
	}
	if (veld_record__parse(rec, (const char *)pt, ptlen, &e) || strcmp(veld_record__id(*rec), record_id) ||
	    strcmp(veld_record__case(*rec), case_id)) {
		veld_record__free(*rec);
		*rec = NULL;
		snprintf(why, wcap, "record %s holds another record's state", record_id);
		reason = why;
	}
done:
	if (pt)
		sodium_memzero(pt, ptlen);
	free(pt);
	free(blob);
	sodium_memzero(key, VELD_KEYBYTES);
	return reason;
}

/* One changed path of a commit by ck->signer: may that signer write it? */
static int check_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	checkctx *ck = payload;
	syncctx *c = ck->c;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE], comp[32];
	veld_record *rec = NULL;
	const char *why;
	if (!strcmp(ck->signer, ORG_SIGNER))
		return 0; /* the office writes the registry, erasures and merges */
	if (parse_record_path(path, case_id, record_id)) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "writes %.80s, outside the cases it may write", path);
		ck->why = ck->whybuf;
		return 1;
	}
	if (!new_id && is_erased(c, case_id))
		return 0; /* the case was erased by the office: its paths go */
	if (!new_id) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "removes record %s (records are deleted with a tombstone)", record_id);
		ck->why = ck->whybuf;
		return 1;
	}
	why = open_blob(c, new_id, case_id, record_id, &rec, comp, sizeof comp, ck->whybuf, sizeof ck->whybuf);
	if (why) {
		ck->why = why;
		return 1;
	}
	if (!strcmp(ck->role, "volunteer") && comp[0] && strcmp(comp, "huiswijs")) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "volunteer writes record %s outside the huiswijs compartment", record_id);
		ck->why = ck->whybuf;
	} else if (rec && !old_id && !strcmp(record_id, case_id) && !strcmp(ck->role, "assistant")) {
		size_t n;
		const json_t *pc = veld_record__value(rec, "postcode", &n);
		if (!json_is_string(pc) || !veld_region__contains(ck->ranges, ck->n_ranges, atoi(json_string_value(pc)))) {
			snprintf(ck->whybuf, sizeof ck->whybuf, "creates case %s outside its region", case_id);
			ck->why = ck->whybuf;
		}
	} else if (!strcmp(ck->role, "volunteer") && !strcmp(record_id, case_id)) {
		snprintf(ck->whybuf, sizeof ck->whybuf, "volunteer writes the header of case %s", case_id);
		ck->why = ck->whybuf;
	}
	veld_record__free(rec);
	return ck->why ? 1 : 0;
}

/* The signer a commit names in its veldsig header (not yet verified). */
static int header_signer(char *out, size_t cap, syncctx *c, const git_oid *id)
{
	git_commit *gc = NULL;
	git_buf field = {0};
	int rc = -1;
	out[0] = '\0';
	if (git_commit_lookup(&gc, veld_repo__git(c->repo), id) == 0 &&
	    git_commit_header_field(&field, gc, "veldsig") == 0 && field.ptr) {
		size_t n = strcspn(field.ptr, " ");
		if (n > 0 && n < cap) {
			memcpy(out, field.ptr, n);
			out[n] = '\0';
			rc = 0;
		}
	}
	git_buf_dispose(&field);
	git_commit_free(gc);
	return rc;
}

/* Verify every new commit of `head` (fetched as `ref`, owned by `owner`:
** a device id or ORG_SIGNER).  Returns 0 if all pass; otherwise records
** the rejection and returns 1. */
static int verify_ref(syncctx *c, const char *ref, const char *owner, const git_oid *head)
{
	git_oid *stops = NULL, *commits = NULL;
	size_t n_stops = 0, n = 0, i;
	int bad = 0;
	{
		/* A ref never goes back: its new head must descend from the one
		** verified last time (a hub replaying old history is refused). */
		git_oid last;
		if (synced_get(c, ref, &last) == 0 && !git_oid_equal(&last, head) &&
		    git_graph_descendant_of(veld_repo__git(c->repo), head, &last) != 1) {
			reject(c, ref, head, "the ref was rewound: its new head does not descend from the last one verified");
			return 1;
		}
	}
	if (trusted_heads(c, &stops, &n_stops))
		return -1;
	if (veld_repo__new_commits(&commits, &n, c->repo, head, stops, n_stops, c->err)) {
		free(stops);
		reject(c, ref, head, c->err->msg);
		veld_err__clear(c->err);
		return 1;
	}
	c->fetched += n;
	for (i = 0; i < n && !bad; i++) {
		checkctx ck;
		char signer[72];
		git_oid parents[MAX_PARENTS], tree, ptree;
		size_t np = 0;
		memset(&ck, 0, sizeof ck);
		ck.c = c;
		/* Device commits inside main's history were verified by the office
		** before it merged them; the organisation's signatures on main's own
		** commits cover them through the parent hashes. */
		if (!strcmp(owner, ORG_SIGNER) && header_signer(signer, sizeof signer, c, &commits[i]) == 0 &&
		    strcmp(signer, ORG_SIGNER))
			continue;
		if (veld_repo__commit_verify(signer, sizeof signer, c->repo, &commits[i], pubkey_cb, c, c->err)) {
			reject(c, ref, &commits[i], c->err->msg);
			bad = 1;
			break;
		}
		ck.signer = signer;
		if (strcmp(signer, ORG_SIGNER) &&
		    device_role(c, signer, ck.role, sizeof ck.role, ck.ranges, &ck.n_ranges)) {
			reject(c, ref, &commits[i], "signed by a device that is not enrolled");
			bad = 1;
			break;
		}
		if (veld_repo__commit_tree(&tree, c->repo, &commits[i], c->err) ||
		    veld_repo__commit_parents(parents, MAX_PARENTS, &np, c->repo, &commits[i], c->err) ||
		    (np > 0 && veld_repo__commit_tree(&ptree, c->repo, &parents[0], c->err))) {
			reject(c, ref, &commits[i], c->err->msg);
			bad = 1;
			break;
		}
		if (veld_repo__diff(c->repo, np > 0 ? &ptree : NULL, &tree, check_path, &ck, c->err) || ck.why) {
			char msg[700];
			snprintf(msg, sizeof msg, "commit by %.72s %.600s", signer, ck.why ? ck.why : c->err->msg);
			reject(c, ref, &commits[i], msg);
			bad = 1;
		}
	}
	if (!bad) {
		char signer[72];
		if (veld_repo__commit_verify(signer, sizeof signer, c->repo, head, pubkey_cb, c, c->err) ||
		    strcmp(signer, owner)) {
			reject(c, ref, head, "the head of the ref is not signed by the ref's owner");
			bad = 1;
		}
	}
	veld_err__clear(c->err);
	free(stops);
	free(commits);
	return bad;
}

/* Merge one record blob into the store (if this store can read it). */
static int merge_blob(syncctx *c, const char *case_id, const char *record_id, const git_oid *id)
{
	veld_record *remote = NULL, *local = NULL;
	char comp[32], why[256];
	veld_stamp max;
	int rc = 0;
	if (is_erased(c, case_id))
		return 0; /* older copies of an erased case stay erased */
	if (open_blob(c, id, case_id, record_id, &remote, comp, sizeof comp, why, sizeof why) || !remote)
		return 0; /* unreadable or already rejected by verification */
	rc = veld_store__record_load(&local, c->s, record_id);
	if (rc == VELD_ENOTFOUND) {
		veld_err__clear(c->err);
		rc = veld_store__record_save(c->s, remote, 1, comp);
		c->merged++;
	} else if (rc == 0) {
		char *before = veld_record__canonical(local), *after = NULL;
		if (strcmp(veld_record__form(local), veld_record__form(remote)) ||
		    strcmp(veld_record__case(local), veld_record__case(remote))) {
			rc = 0; /* an id collision across forms is refused, not merged */
		} else if ((rc = veld_record__merge(local, remote)) == 0) {
			after = veld_record__canonical(local);
			if (!before || !after || strcmp(before, after)) {
				rc = veld_store__record_save(c->s, local, 1, NULL);
				c->merged++;
			}
		}
		free(before);
		free(after);
	}
	if (!rc && veld_record__max_stamp(remote, &max) == 0)
		veld_store__observe(c->s, &max);
	veld_record__free(remote);
	veld_record__free(local);
	return rc;
}

/* The org-signed entry in blob `id` at `path` (registry entries, erasure
** markers); *body is a new reference.  VELD_EINTEGRITY if it does not verify. */
static int read_signed(json_t **body, syncctx *c, const char *path, const git_oid *id)
{
	unsigned char *blob = NULL;
	size_t len = 0;
	veld_err e;
	int rc;
	*body = NULL;
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, id, c->err))
		return c->err->code;
	rc = veld_registry__verify(body, (const char *)blob, len, c->org_pk, &e);
	free(blob);
	return rc ? veld_err__set(c->err, VELD_EINTEGRITY, "%s: %s", path, e.msg) : 0;
}

/* Registry entries of main, verified with the org key. */
static int apply_registry(syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	int rc;
	if (strncmp(path, "registry/devices/", 17) && strncmp(path, "registry/revoked/", 17))
		return 0;
	if ((rc = read_signed(&body, c, path, id)))
		return rc;
	if (!strncmp(path, "registry/revoked/", 17)) {
		sqlite3_stmt *st = NULL;
		if (!(rc = sql_prepare(c, &st, "UPDATE devices SET revoked = 1 WHERE id = ?1"))) {
			sqlite3_bind_text(st, 1, json_string_value(json_object_get(body, "id")), -1, SQLITE_TRANSIENT);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, SQLITE_ERROR, "registry");
			sqlite3_finalize(st);
		}
	} else {
		const char *did = json_string_value(json_object_get(body, "id"));
		const char *spk = json_string_value(json_object_get(body, "sign_pk"));
		const char *bpk = json_string_value(json_object_get(body, "box_pk"));
		unsigned char sbin[32], bbin[32];
		size_t l1 = 0, l2 = 0;
		sqlite3_stmt *st = NULL;
		if (!did || !spk || !bpk || strcmp(did, path + 17) ||
		    sodium_hex2bin(sbin, 32, spk, strlen(spk), NULL, &l1, NULL) || l1 != 32 ||
		    sodium_hex2bin(bbin, 32, bpk, strlen(bpk), NULL, &l2, NULL) || l2 != 32) {
			json_decref(body);
			return veld_err__set(c->err, VELD_EINTEGRITY, "registry entry %s is malformed", path + 9);
		}
		if (!(rc = sql_prepare(c, &st,
		                       "INSERT INTO devices(id, name, role, region, sign_pk, box_pk, published)"
		                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1)"
		                       " ON CONFLICT(id) DO UPDATE SET name = ?2, role = ?3, region = ?4,"
		                       " sign_pk = ?5, box_pk = ?6"))) {
			sqlite3_bind_text(st, 1, did, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 2, json_string_value(json_object_get(body, "name")), -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 3, json_string_value(json_object_get(body, "role")), -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 4, json_string_value(json_object_get(body, "region")), -1, SQLITE_TRANSIENT);
			sqlite3_bind_blob(st, 5, sbin, 32, SQLITE_TRANSIENT);
			sqlite3_bind_blob(st, 6, bbin, 32, SQLITE_TRANSIENT);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(c->s, SQLITE_ERROR, "registry");
			sqlite3_finalize(st);
		}
	}
	json_decref(body);
	return rc;
}

/* An org-signed erasure marker in main: erase the case here too. */
static int apply_erasure(syncctx *c, const char *path, const git_oid *id)
{
	json_t *body = NULL;
	const char *cid;
	int rc;
	if ((rc = read_signed(&body, c, path, id)))
		return rc;
	cid = json_string_value(json_object_get(body, "case"));
	if (!cid || strcmp(cid, path + 7) || !veld_id__is(cid))
		rc = veld_err__set(c->err, VELD_EINTEGRITY, "erasure marker %s is malformed", path + 7);
	else if (!is_erased(c, cid))
		rc = erase_local(c, cid);
	json_decref(body);
	return rc;
}

typedef struct mergectx {
	syncctx *c;
	int registry; /* apply registry entries (main only) */
	int records;  /* merge record blobs */
	int rc;
} mergectx;

static int merge_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	mergectx *m = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE];
	(void)old_id;
	if (!new_id)
		return 0;
	if (m->registry && !strncmp(path, "registry/", 9))
		m->rc = apply_registry(m->c, path, new_id);
	else if (m->registry && !strncmp(path, "erased/", 7))
		m->rc = apply_erasure(m->c, path, new_id);
	else if (m->records && parse_record_path(path, case_id, record_id) == 0)
		m->rc = merge_blob(m->c, case_id, record_id, new_id);
	return m->rc ? 1 : 0;
}

/* Merge what `head` changed since the last merged head of `ref`. */
static int merge_ref(syncctx *c, const char *ref, const git_oid *head, int registry, int records)
{
	git_oid last, old_tree, new_tree;
	mergectx m;
	int have_last = synced_get(c, ref, &last) == 0;
	memset(&m, 0, sizeof m);
	m.c = c;
	m.registry = registry;
	m.records = records;
	if (have_last && git_oid_equal(&last, head))
		return 0;
	/* A ref seen for the first time is compared with main as merged here:
	** everything in that tree is in the store already, and a device's tree
	** shares main's blobs (sealing is deterministic), so the diff holds only
	** what the device changed, not its whole tree. */
	if (!have_last && strcmp(ref, REF_MAIN))
		have_last = synced_get(c, REF_MAIN, &last) == 0;
	if ((have_last && veld_repo__commit_tree(&old_tree, c->repo, &last, c->err)) ||
	    veld_repo__commit_tree(&new_tree, c->repo, head, c->err))
		return c->err->code ? c->err->code : VELD_ERROR;
	if (veld_repo__diff(c->repo, have_last ? &old_tree : NULL, &new_tree, merge_path, &m, c->err) && !m.rc)
		return c->err->code ? c->err->code : VELD_ERROR;
	if (m.rc)
		return m.rc;
	if (records) {
		git_oid *p = realloc(c->merged_heads, (c->n_merged_heads + 1) * sizeof *p);
		if (!p)
			return veld_err__set(c->err, VELD_ERROR, "out of memory");
		c->merged_heads = p;
		p[c->n_merged_heads++] = *head;
	}
	return synced_set(c, ref, head);
}

/* Keys ref of `owner`: a signed root commit; open entries addressed to us. */
typedef struct keyctx {
	syncctx *c;
	int rc;
	const char *why;
} keyctx;

static int key_entry(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	keyctx *k = payload;
	syncctx *c = k->c;
	size_t ml = strlen(c->me);
	unsigned char *blob = NULL;
	size_t len = 0;
	veld_case_key ck;
	veld_err e;
	char hex[2 * VELD_KEYIDBYTES + 1];
	sqlite3_stmt *st = NULL;
	(void)old_id;
	if (!new_id || strncmp(path, c->me, ml) || path[ml] != '/')
		return 0;
	memset(&ck, 0, sizeof ck);
	memset(&e, 0, sizeof e);
	if (veld_repo__blob_read(&blob, &len, c->repo, new_id, c->err))
		return (k->rc = c->err->code), 1;
	if (veld_keyring__open_into(&ck, c->blob_key, blob, len, c->box_pk, c->box_sk, &e)) {
		free(blob);
		k->why = "a sealed key entry does not open";
		return 1;
	}
	free(blob);
	sodium_bin2hex(hex, sizeof hex, ck.key_id, VELD_KEYIDBYTES);
	if (strcmp(path + ml + 1, hex)) {
		sodium_memzero(c->blob_key, VELD_KEYBYTES);
		k->why = "a sealed key entry is stored under another key id";
		return 1;
	}
	if (!sql_prepare(c, &st, "INSERT OR IGNORE INTO case_keys(key_id, case_id, compartment, key) VALUES(?1, ?2, ?3, ?4)")) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ck.case_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ck.compartment, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, ck.key, VELD_KEYBYTES, SQLITE_STATIC);
		/* A key for a case and compartment that already has one is ignored:
		** nobody replaces a case's key. */
		if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(veld_store__db(c->s)) > 0)
			json_array_append_new(c->new_key_cases, json_string(ck.case_id));
		sqlite3_finalize(st);
	}
	sodium_memzero(c->blob_key, VELD_KEYBYTES);
	return k->rc ? 1 : 0;
}

static int take_keys(syncctx *c, const char *ref, const char *owner, const git_oid *head)
{
	git_oid last, tree, parents[2];
	size_t np = 0;
	char signer[72];
	keyctx k;
	if (synced_get(c, ref, &last) == 0 && git_oid_equal(&last, head))
		return 0;
	memset(&k, 0, sizeof k);
	k.c = c;
	if (veld_repo__commit_verify(signer, sizeof signer, c->repo, head, pubkey_cb, c, c->err) ||
	    strcmp(signer, owner)) {
		reject(c, ref, head, "keys ref not signed by its owner");
		veld_err__clear(c->err);
		return 0;
	}
	if (veld_repo__commit_parents(parents, 2, &np, c->repo, head, c->err) || np != 0) {
		reject(c, ref, head, "keys ref is not a root commit");
		veld_err__clear(c->err);
		return 0;
	}
	if (veld_repo__commit_tree(&tree, c->repo, head, c->err))
		return c->err->code;
	if (veld_repo__diff(c->repo, NULL, &tree, key_entry, &k, c->err) && !k.why && !k.rc)
		return c->err->code;
	if (k.rc)
		return k.rc;
	if (k.why) {
		reject(c, ref, head, k.why);
		return 0;
	}
	return synced_set(c, ref, head);
}

/* New keys arrived: merge every blob of those cases from the trusted heads. */
typedef struct rescanctx {
	syncctx *c;
	const char *case_id;
	int rc;
} rescanctx;

static int rescan_blob(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	rescanctx *r = payload;
	(void)old_id;
	if (!new_id || strlen(path) != 32)
		return 0;
	r->rc = merge_blob(r->c, r->case_id, path, new_id);
	return r->rc ? 1 : 0;
}

/* Keys that arrived in this sync.  On the office: share each with the
** assistants of its case's region (now that the case headers of this sync
** are merged).  On a device: merge what main already holds of those cases.
** Only main: the office has checked every record in it (it reads them all),
** whereas a peer's blob that was unreadable here when it was verified has
** had no one's check yet; it comes through main. */
static int rescan_new_keys(syncctx *c)
{
	size_t i;
	git_oid head, tree;
	int rc = 0, have_main;
	if (json_array_size(c->new_key_cases) == 0)
		return 0;
	have_main = synced_get(c, REF_MAIN, &head) == 0 && veld_repo__commit_tree(&tree, c->repo, &head, c->err) == 0;
	veld_err__clear(c->err);
	for (i = 0; i < json_array_size(c->new_key_cases) && !rc; i++) {
		const char *cid = json_string_value(json_array_get(c->new_key_cases, i));
		char dir[80];
		git_oid sub;
		rescanctx r;
		if (c->office) {
			sqlite3_stmt *st = NULL;
			if ((rc = sql_prepare(c, &st, "SELECT key_id, compartment FROM case_keys WHERE case_id = ?1")))
				break;
			sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
			while (!rc && sqlite3_step(st) == SQLITE_ROW)
				rc = share_by_region(c, (const char *)sqlite3_column_text(st, 0), cid,
				                     (const char *)sqlite3_column_text(st, 1));
			sqlite3_finalize(st);
			continue;
		}
		if (!have_main)
			continue;
		case_dir(dir, sizeof dir, cid);
		if (veld_repo__tree_lookup_dir(&sub, c->repo, &tree, dir, c->err)) {
			veld_err__clear(c->err);
			continue;
		}
		memset(&r, 0, sizeof r);
		r.c = c;
		r.case_id = cid;
		if (veld_repo__diff(c->repo, NULL, &sub, rescan_blob, &r, c->err) && !r.rc)
			veld_err__clear(c->err);
		rc = r.rc;
	}
	return rc;
}

/* ---- the hub ------------------------------------------------------------------- */

static int cred_cb(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	syncctx *c = payload;
	if (!c->opts || !c->opts->credentials)
		return -1;
	return c->opts->credentials(user, ucap, pass, pcap, url, c->opts->payload);
}

static int transfer_progress(const char *stage, size_t done, size_t total, void *payload)
{
	return progress(payload, stage, done, total);
}

static void remote_opts(syncctx *c, veld_remote_opts *ro)
{
	memset(ro, 0, sizeof *ro);
	ro->cred = cred_cb;
	ro->progress = transfer_progress;
	ro->payload = c;
}

typedef struct lsctx {
	syncctx *c;
	int rc;
} lsctx;

/* Fetch one advertised ref on its own; a ref whose objects do not arrive
** intact is rejected by name, the others go on. */
static int fetch_one(const char *name, const git_oid *id, void *payload)
{
	lsctx *l = payload;
	syncctx *c = l->c;
	char spec[400];
	const char *specs[1];
	veld_remote_opts ro;
	(void)id;
	if (strcmp(name, REF_MAIN) && strncmp(name, REF_DEV_PREFIX, strlen(REF_DEV_PREFIX)) &&
	    strncmp(name, REF_KEY_PREFIX, strlen(REF_KEY_PREFIX)))
		return 0;
	snprintf(spec, sizeof spec, "+%s:" HUB_PREFIX "%s", name, name + 5); /* "refs/" stripped */
	specs[0] = spec;
	remote_opts(c, &ro);
	if (veld_repo__fetch(c->repo, c->hub, specs, 1, &ro, c->err)) {
		if (c->err->code == VELD_EAUTH) {
			l->rc = c->err->code;
			return 1;
		}
		reject(c, name, id, c->err->msg);
		veld_err__clear(c->err);
	}
	return 0;
}

static int fetch_all(syncctx *c)
{
	static const char *const specs[] = {
		"+" REF_MAIN ":" HUB_PREFIX "heads/main",
		"+refs/veld/devices/*:" HUB_PREFIX "veld/devices/*",
		"+refs/veld-keys/*:" HUB_PREFIX "veld-keys/*",
	};
	veld_remote_opts ro;
	lsctx l;
	int rc;
	remote_opts(c, &ro);
	progress(c, "fetch", 0, 1);
	rc = veld_repo__fetch(c->repo, c->hub, specs, 3, &ro, c->err);
	if (rc != VELD_EINTEGRITY)
		return rc;
	/* Something arrived damaged: fetch ref by ref to name the bad one and
	** still take the others. */
	veld_err__clear(c->err);
	memset(&l, 0, sizeof l);
	l.c = c;
	if ((rc = veld_repo__ls_remote(c->repo, c->hub, &ro, fetch_one, &l, c->err)))
		return rc;
	return l.rc;
}

/* 1 if the hub's copy of `ref` (fetched into refs/veld-hub/) is `id`. */
static int hub_has_ref(syncctx *c, const char *ref, const git_oid *id)
{
	char name[300];
	git_oid got;
	snprintf(name, sizeof name, HUB_PREFIX "%s", ref + 5); /* "refs/" stripped */
	if (veld_repo__ref_get(&got, c->repo, name, c->err) != 0) {
		veld_err__clear(c->err);
		return 0;
	}
	return git_oid_equal(&got, id);
}

static int push_own(syncctx *c)
{
	char own[300], keys[300], ownref[128], keyref[128];
	const char *specs[2];
	size_t n = 0;
	git_oid tmp;
	veld_remote_opts ro;
	own_ref(c, ownref, sizeof ownref);
	snprintf(keyref, sizeof keyref, REF_KEY_PREFIX "%s", c->me);
	/* Only refs the hub does not have as they are (its copy was fetched in
	** this sync): a push costs a walk even when nothing is new. */
	if (veld_repo__ref_get(&tmp, c->repo, ownref, c->err) == 0 && !hub_has_ref(c, ownref, &tmp)) {
		snprintf(own, sizeof own, "%s:%s", ownref, ownref);
		specs[n++] = own;
	}
	if (veld_repo__ref_get(&tmp, c->repo, keyref, c->err) == 0 && !hub_has_ref(c, keyref, &tmp)) {
		snprintf(keys, sizeof keys, "+%s:%s", keyref, keyref);
		specs[n++] = keys;
	}
	veld_err__clear(c->err);
	if (n == 0)
		return 0;
	remote_opts(c, &ro);
	progress(c, "push", 0, n);
	return veld_repo__push(c->repo, c->hub, specs, n, &ro, c->err);
}

/* ---- set-up of a sync context -------------------------------------------------- */

static void ctx_free(syncctx *c)
{
	/* c->repo stays open with the store (ctx_open) */
	sodium_free(c->dev_sk);
	sodium_free(c->org_sk);
	sodium_free(c->box_sk);
	sodium_free(c->blob_key);
	json_decref(c->rejected);
	json_decref(c->new_key_cases);
	free(c->merged_heads);
	memset(c, 0, sizeof *c);
}

static void repo_slot_free(void *r)
{
	veld_repo__free(r);
}

/* Open (or create) the store's repository and load the keys a sync needs. */
static int ctx_open(syncctx *c, veld_store *s, const veld_sync_options *opts, int need_hub)
{
	char path[4096], role[32];
	int n, rc, flags = 0;
	const veld_os *os = veld_store__os(s);
	memset(c, 0, sizeof *c);
	c->s = s;
	c->err = veld_store__err(s);
	c->opts = opts;
	c->me = veld_store__device_id(s);
	c->rejected = json_array();
	c->new_key_cases = json_array();
	c->blob_key = sodium_malloc(VELD_KEYBYTES);
	if (!c->rejected || !c->new_key_cases || !c->blob_key)
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	n = veld_store__meta_get(s, "device_role", role, (int)sizeof role - 1);
	if (n < 0)
		return n;
	role[n] = '\0';
	c->office = !strcmp(role, "office");
	if ((rc = load_secret(&c->dev_sk, c, "sign_sk", crypto_sign_SECRETKEYBYTES)) ||
	    (rc = load_secret(&c->box_sk, c, "box_sk", crypto_box_SECRETKEYBYTES)))
		return rc;
	if (veld_store__meta_get(s, "box_pk", c->box_pk, sizeof c->box_pk) != sizeof c->box_pk)
		return veld_err__set(c->err, VELD_EINTEGRITY, "store box key is malformed");
	if (c->office && (rc = load_secret(&c->org_sk, c, "org_sign_sk", crypto_sign_SECRETKEYBYTES)))
		return rc;
	c->have_org = veld_store__meta_get(s, "org_sign_pk", c->org_pk, sizeof c->org_pk) == sizeof c->org_pk;
	n = veld_store__meta_get(s, "hub", c->hub, (int)sizeof c->hub - 1);
	if (n < 0) {
		if (need_hub)
			return veld_err__set(c->err, VELD_ENOTFOUND, "this store has no hub yet: run `veld join --hub HUB`");
		n = 0;
	}
	c->hub[n] = '\0';
	veld_err__clear(c->err);
	/* The repository stays open with the store handle, from the first
	** operation that needs it to veld_store_close: libgit2's caches (parsed
	** objects, pack indexes, pack windows) then serve the next sync too. */
	if ((c->repo = veld_store__slot(s, VELD_STORE_SLOT_SYNC)) == NULL) {
		snprintf(path, sizeof path, "%s/%s", veld_store__dir(s), REPO_DIR);
		if (os->xStat(os->ctx, path, &flags, NULL) != 0)
			rc = veld_repo__init(&c->repo, os, path, c->err);
		else
			rc = veld_repo__open(&c->repo, os, path, c->err);
		if (rc)
			return rc;
		veld_store__set_slot(s, VELD_STORE_SLOT_SYNC, c->repo, repo_slot_free);
	}
	/* The store is open here, so no other process uses its repository: a
	** lock file in it is what a killed sync left behind. */
	veld_repo__clear_stale_locks(c->repo);
	return 0;
}

/* ---- sync ---------------------------------------------------------------------- */

typedef struct refctx {
	syncctx *c;
	char (*names)[160];
	git_oid *ids;
	size_t n, cap;
} refctx;

static int collect_ref(const char *name, const git_oid *id, void *payload)
{
	refctx *r = payload;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? 2 * r->cap : 32;
		void *a = realloc(r->names, ncap * sizeof *r->names), *b = a ? realloc(r->ids, ncap * sizeof *r->ids) : NULL;
		if (a)
			r->names = a;
		if (b)
			r->ids = b;
		if (!a || !b)
			return -1;
		r->cap = ncap;
	}
	snprintf(r->names[r->n], sizeof r->names[r->n], "%s", name);
	r->ids[r->n++] = *id;
	return 0;
}

/* Verify and merge everything fetched (one transaction, before any push). */
static int merge_fetched(syncctx *c)
{
	refctx keys, devs;
	git_oid main_head;
	size_t i, dl = strlen(HUB_PREFIX "veld/devices/"), kl = strlen(HUB_PREFIX "veld-keys/");
	int rc = 0;
	memset(&keys, 0, sizeof keys);
	memset(&devs, 0, sizeof devs);
	progress(c, "verify", 0, 1);
	/* 1. main: signed by the organisation; carries the registry. */
	if (veld_repo__ref_get(&main_head, c->repo, HUB_PREFIX "heads/main", c->err) == 0) {
		if (!c->have_org) {
			rc = veld_err__set(c->err, VELD_EINTEGRITY, "the organisation key is unknown: run `veld join` first");
			goto done;
		}
		if (verify_ref(c, REF_MAIN, ORG_SIGNER, &main_head) == 0) {
			/* The office is the author of main: its own registry is already loaded. */
			if ((rc = merge_ref(c, REF_MAIN, &main_head, !c->office, 1)))
				goto done;
		}
	}
	veld_err__clear(c->err);
	/* 2. keys refs: keys sealed to this device. */
	if ((rc = veld_repo__ref_list(c->repo, HUB_PREFIX "veld-keys/", collect_ref, &keys, c->err)))
		goto done;
	for (i = 0; i < keys.n; i++) {
		const char *owner = keys.names[i] + kl;
		char ref[160];
		if (!strcmp(owner, c->me))
			continue;
		snprintf(ref, sizeof ref, REF_KEY_PREFIX "%s", owner);
		if ((rc = take_keys(c, ref, owner, &keys.ids[i])))
			goto done;
	}
	/* 3. device refs (the office merges all of them into main; devices
	**    merge their peers too, so they converge without waiting). */
	if ((rc = veld_repo__ref_list(c->repo, HUB_PREFIX "veld/devices/", collect_ref, &devs, c->err)))
		goto done;
	for (i = 0; i < devs.n; i++) {
		const char *owner = devs.names[i] + dl;
		char ref[160];
		if (!strcmp(owner, c->me))
			continue;
		snprintf(ref, sizeof ref, REF_DEV_PREFIX "%s", owner);
		progress(c, "verify", i + 1, devs.n);
		if (verify_ref(c, ref, owner, &devs.ids[i]) == 0 && (rc = merge_ref(c, ref, &devs.ids[i], 0, 1)))
			goto done;
	}
	/* 4. cases whose keys just arrived: merge what the hub already had. */
	progress(c, "merge", 0, 1);
	rc = rescan_new_keys(c);
done:
	free(keys.names);
	free(keys.ids);
	free(devs.names);
	free(devs.ids);
	return rc;
}

static int count_conflicts(syncctx *c)
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sql_prepare(c, &st, "SELECT coalesce(sum(conflicts), 0) FROM records WHERE conflicts > 0"))
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* veld_repo__maintain on this store's repository and, for the office with a
** hub on a path (which it can reach), on the hub. */
static int maintain_all(syncctx *c, int prune_age_s)
{
	veld_repo *hub = NULL;
	int rc = veld_repo__maintain(c->repo, prune_age_s, c->err);
	if (rc || !c->office || veld_repo__is_url(c->hub))
		return rc;
	veld_repo__hub_release(c->repo); /* its packs are about to go */
	if ((rc = veld_repo__open(&hub, veld_store__os(c->s), c->hub, c->err)) == 0)
		rc = veld_repo__maintain(hub, prune_age_s, c->err);
	veld_repo__free(hub);
	return rc;
}

/* Periodic repack: every REPACK_EVERY syncs, pack what is reachable and
** drop the rest (loose objects pile up otherwise; unreachable sealed keys
** must disappear for crypto-shredding).  Not every sync: a repack costs in
** proportion to the whole history. */
#define REPACK_EVERY 50
static int maybe_maintain(syncctx *c)
{
	char buf[16];
	int n = veld_store__meta_get(c->s, "syncs_since_repack", buf, (int)sizeof buf - 1), count = 0, rc;
	if (n > 0) {
		buf[n] = '\0';
		count = atoi(buf);
	}
	veld_err__clear(c->err);
	if (++count >= REPACK_EVERY) {
		progress(c, "repack", 0, 1);
		if ((rc = maintain_all(c, 3600)))
			return rc;
		count = 0;
	}
	n = snprintf(buf, sizeof buf, "%d", count);
	return veld_store__meta_put(c->s, "syncs_since_repack", buf, n);
}

/* After an erasure: objects only the old keys refs and trees reached are
** pruned now, here and (for a hub on a path, which the office can reach)
** on the hub.  A hosted hub prunes with its own gc (docs/hub.md). */
static int prune_erased(syncctx *c)
{
	progress(c, "prune", 0, 1);
	return maintain_all(c, 0);
}

void veld_sync_options_init(veld_sync_options *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof *opts);
	opts->version = VELD_SYNC_OPTIONS_VERSION;
}

int veld_sync(char **summary_json, veld_store *s, const veld_sync_options *opts)
{
	syncctx c;
	int rc;
	if (summary_json)
		*summary_json = NULL;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	if ((rc = ctx_open(&c, s, opts, 1)))
		goto done;
	c.prune_due = opts && (opts->flags & VELD_SYNC_PRUNE);
	/* 1. commit local changes (short transaction) */
	progress(&c, "commit", 0, 1);
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__finish(s, commit_local(&c));
	if (rc)
		goto done;
	/* 2. fetch (no transaction) */
	if ((rc = fetch_all(&c)))
		goto done;
	/* 3-4. verify and merge (one transaction), then the merge commit */
	if ((rc = veld_store__begin(s)))
		goto done;
	{
		size_t pushed = c.pushed;
		rc = merge_fetched(&c);
		if (!rc)
			rc = commit_local(&c);
		c.pushed = pushed; /* merged records are counted as merged, not pushed */
		if (!rc)
			rc = veld_store__audit(s, "sync", NULL, NULL);
	}
	if ((rc = veld_store__finish(s, rc)))
		goto done;
	/* 5. push */
	if ((rc = push_own(&c)))
		goto done;
	rc = maybe_maintain(&c);
	if (!rc && c.prune_due)
		rc = prune_erased(&c);
	if (!rc && json_array_size(c.rejected) > 0)
		rc = veld_err__set(c.err, VELD_EINTEGRITY, "%zu ref(s) rejected: %s", json_array_size(c.rejected),
		                   json_string_value(json_object_get(json_array_get(c.rejected, 0), "reason")));
done:
	if (summary_json && c.rejected) {
		json_t *sum = json_pack("{s:I, s:I, s:I, s:i, s:O}", "pushed", (json_int_t)c.pushed, "fetched",
		                        (json_int_t)c.fetched, "merged", (json_int_t)c.merged, "conflicts",
		                        count_conflicts(&c), "rejected", c.rejected);
		*summary_json = sum ? json_dumps(sum, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
		json_decref(sum);
	}
	ctx_free(&c);
	return rc;
}

/* ---- organisation, enrolment, join ------------------------------------------------ */

static int org_entry(syncctx *c, const char *name)
{
	char hex[65];
	json_t *body;
	char *text;
	git_oid blob, tree, commit, head;
	veld_tree_change ch;
	int rc;
	sodium_bin2hex(hex, sizeof hex, c->org_pk, 32);
	body = json_pack("{s:s, s:s}", "name", name, "sign_pk", hex);
	/* Self-signed: a device pins this key when it joins. */
	text = body ? veld_registry__sign(body, c->org_sk) : NULL;
	json_decref(body);
	if (!text)
		return veld_err__set(c->err, VELD_ERROR, "cannot sign the organisation entry");
	rc = veld_repo__blob_write(&blob, c->repo, text, strlen(text), c->err);
	free(text);
	if (rc)
		return rc;
	ch.path = "registry/org";
	ch.id = &blob;
	if ((rc = veld_repo__tree_update(&tree, c->repo, NULL, &ch, 1, c->err)))
		return rc;
	if ((rc = veld_repo__commit(&commit, c->repo, &tree, NULL, 0, ORG_SIGNER,
	                            veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx), "veld registry",
	                            sign_cb, c->org_sk, c->err)))
		return rc;
	(void)head;
	return veld_repo__ref_set(c->repo, REF_MAIN, &commit, c->err);
}

int veld_org_init(veld_store **out, const char *dir, const char *pass, size_t pass_len, const char *org_name,
                  const char *hub, const veld_store_options *opts)
{
	veld_store_options o;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char *sk = NULL;
	veld_store *s = NULL;
	syncctx c;
	char *summary = NULL;
	int rc;
	memset(&c, 0, sizeof c);
	if (opts)
		o = *opts;
	else
		veld_store_options_init(&o);
	o.device_role = "office";
	if (!o.device_name)
		o.device_name = "office";
	rc = veld_store_create(&s, dir, pass, pass_len, &o);
	*out = s;
	if (rc)
		return rc;
	if (!org_name || !*org_name || !hub || !*hub)
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "org init needs --name and --hub");
	sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!sk)
		return veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
	crypto_sign_keypair(pk, sk);
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__meta_put(s, "org_sign_pk", pk, sizeof pk);
	if (!rc)
		rc = veld_store__meta_put(s, "org_sign_sk", sk, crypto_sign_SECRETKEYBYTES);
	if (!rc)
		rc = veld_store__meta_put(s, "org_name", org_name, (int)strlen(org_name));
	if (!rc)
		rc = veld_store__meta_put(s, "hub", hub, (int)strlen(hub));
	if (!rc) {
		/* The office is the first enrolled device. */
		char *dev = NULL;
		json_t *d;
		rc = veld_store_device_json(&dev, s);
		d = dev ? json_loads(dev, 0, NULL) : NULL;
		veld_free(dev);
		if (!rc && d) {
			unsigned char spk[32], bpk[32];
			size_t l1 = 0, l2 = 0;
			sqlite3_stmt *st = NULL;
			sodium_hex2bin(spk, 32, json_string_value(json_object_get(d, "sign_pk")), 64, NULL, &l1, NULL);
			sodium_hex2bin(bpk, 32, json_string_value(json_object_get(d, "box_pk")), 64, NULL, &l2, NULL);
			rc = sqlite3_prepare_v2(veld_store__db(s),
			                        "INSERT INTO devices(id, name, role, region, sign_pk, box_pk, published)"
			                        " VALUES(?1, ?2, 'office', '', ?3, ?4, 0)",
			                        -1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_text(st, 1, json_string_value(json_object_get(d, "id")), -1, SQLITE_TRANSIENT);
				sqlite3_bind_text(st, 2, json_string_value(json_object_get(d, "name")), -1, SQLITE_TRANSIENT);
				sqlite3_bind_blob(st, 3, spk, 32, SQLITE_TRANSIENT);
				sqlite3_bind_blob(st, 4, bpk, 32, SQLITE_TRANSIENT);
				rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(s, SQLITE_ERROR, "enrol office");
			} else {
				rc = veld_store__db_fail(s, rc, "enrol office");
			}
			sqlite3_finalize(st);
		} else if (!rc) {
			rc = veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
		}
		json_decref(d);
	}
	if ((rc = veld_store__finish(s, rc)))
		goto done;
	/* The hub: a path gets a new bare repository. */
	if (!veld_repo__is_url(hub)) {
		veld_repo *h = NULL;
		rc = veld_repo__init(&h, veld_store__os(s), hub, veld_store__err(s));
		veld_repo__free(h);
		if (rc)
			goto done;
	}
	if ((rc = ctx_open(&c, s, NULL, 1)))
		goto done;
	if ((rc = org_entry(&c, org_name)))
		goto done;
	ctx_free(&c);
	/* A hub on a path is published now; a URL hub needs credentials, which
	** the caller's first veld_sync brings (the CLI does it at once). */
	if (!veld_repo__is_url(hub))
		rc = veld_sync(&summary, s, NULL);
done:
	free(summary);
	ctx_free(&c);
	sodium_free(sk);
	return rc;
}

int veld_enroll(char *id_out, veld_store *s, const char *request_json, const char *region)
{
	json_error_t jerr;
	json_t *req = NULL;
	const char *id, *name, *role, *spk, *bpk;
	unsigned char sbin[32], bbin[32], idbin[16];
	char idhex[33], myrole[32];
	veld_range ranges[MAX_RANGES];
	size_t l1 = 0, l2 = 0;
	sqlite3_stmt *st = NULL;
	veld_err *err;
	int n = 0, rc;
	if (!s)
		return VELD_ERROR;
	err = veld_store__err(s);
	veld_err__clear(err);
	n = veld_store__meta_get(s, "device_role", myrole, (int)sizeof myrole - 1);
	if (n < 0)
		return n;
	myrole[n] = '\0';
	if (strcmp(myrole, "office"))
		return veld_err__set(err, VELD_EDENIED, "only the office enrols devices");
	req = json_loads(request_json ? request_json : "", 0, &jerr);
	id = json_string_value(json_object_get(req, "id"));
	name = json_string_value(json_object_get(req, "name"));
	role = json_string_value(json_object_get(req, "role"));
	spk = json_string_value(json_object_get(req, "sign_pk"));
	bpk = json_string_value(json_object_get(req, "box_pk"));
	if (!id || !name || !role || !spk || !bpk ||
	    sodium_hex2bin(sbin, 32, spk, strlen(spk), NULL, &l1, NULL) || l1 != 32 ||
	    sodium_hex2bin(bbin, 32, bpk, strlen(bpk), NULL, &l2, NULL) || l2 != 32) {
		rc = veld_err__set(err, VELD_EINVALID, "enrolment request is malformed (needs id, name, role, sign_pk, box_pk)");
		goto done;
	}
	crypto_generichash(idbin, sizeof idbin, sbin, sizeof sbin, NULL, 0);
	sodium_bin2hex(idhex, sizeof idhex, idbin, sizeof idbin);
	if (strcmp(idhex, id)) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "enrolment request: the device id does not match its key");
		goto done;
	}
	if (strcmp(role, "assistant") && strcmp(role, "volunteer")) {
		rc = veld_err__set(err, VELD_EINVALID, "enrolment request: role must be assistant or volunteer");
		goto done;
	}
	n = 0;
	if (region && *region && (rc = veld_region__parse(ranges, MAX_RANGES, &n, region, err)))
		goto done;
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = sqlite3_prepare_v2(veld_store__db(s),
	                        "INSERT INTO devices(id, name, role, region, sign_pk, box_pk, published)"
	                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0)",
	                        -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, region ? region : "", -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 5, sbin, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 6, bbin, 32, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0
		     : rc == SQLITE_CONSTRAINT ? veld_err__set(err, VELD_EEXISTS, "device %s is already enrolled", id)
		                               : veld_store__db_fail(s, rc, "enrol");
	} else {
		rc = veld_store__db_fail(s, rc, "enrol");
	}
	sqlite3_finalize(st);
	st = NULL;
	/* An assistant gets the keys of its region's existing cases. */
	if (!rc && !strcmp(role, "assistant") && n > 0) {
		syncctx c;
		memset(&c, 0, sizeof c);
		c.s = s;
		c.err = err;
		c.me = veld_store__device_id(s);
		rc = sqlite3_prepare_v2(veld_store__db(s), "SELECT key_id, case_id FROM case_keys",
		                        -1, &st, NULL);
		while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			int pc = case_postcode(&c, (const char *)sqlite3_column_text(st, 1));
			if (pc > 0 && veld_region__contains(ranges, n, pc))
				rc = add_share(&c, (const char *)sqlite3_column_text(st, 0), id);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (!rc)
		rc = veld_store__audit(s, "enroll", NULL, NULL);
	rc = veld_store__finish(s, rc);
	if (!rc && id_out)
		memcpy(id_out, id, VELD_IDSIZE);
done:
	json_decref(req);
	return rc;
}

int veld_device_revoke(veld_store *s, const char *device_id)
{
	sqlite3_stmt *st = NULL;
	veld_err *err;
	char myrole[32];
	int n, rc;
	if (!s)
		return VELD_ERROR;
	err = veld_store__err(s);
	veld_err__clear(err);
	n = veld_store__meta_get(s, "device_role", myrole, (int)sizeof myrole - 1);
	if (n < 0)
		return n;
	myrole[n] = '\0';
	if (strcmp(myrole, "office"))
		return veld_err__set(err, VELD_EDENIED, "only the office revokes devices");
	if (!device_id || !strcmp(device_id, veld_store__device_id(s)))
		return veld_err__set(err, VELD_EINVALID, "the office cannot revoke itself");
	if ((rc = veld_store__begin(s)))
		return rc;
	rc = sqlite3_prepare_v2(veld_store__db(s), "UPDATE devices SET revoked = 1, published = 0 WHERE id = ?1 AND NOT revoked",
	                        -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : veld_store__db_fail(s, SQLITE_ERROR, "revoke");
		if (!rc && sqlite3_changes(veld_store__db(s)) == 0)
			rc = veld_err__set(err, VELD_ENOTFOUND, "no enrolled device %s", device_id);
	} else {
		rc = veld_store__db_fail(s, rc, "revoke");
	}
	sqlite3_finalize(st);
	if (!rc && sqlite3_exec(veld_store__db(s), "UPDATE meta SET value = '1' WHERE key = 'keys_dirty'", NULL, NULL, NULL))
		rc = veld_store__db_fail(s, SQLITE_ERROR, "revoke");
	if (!rc)
		rc = veld_store__audit(s, "revoke", NULL, NULL);
	return veld_store__finish(s, rc);
}

int veld_join(veld_store *s, const char *hub, const veld_sync_options *opts)
{
	static const char *const specs[] = {"+" REF_MAIN ":" HUB_PREFIX "heads/main"};
	syncctx c;
	veld_remote_opts ro;
	git_oid head, tree, blob;
	unsigned char *text = NULL;
	size_t len = 0;
	json_t *entry = NULL, *body = NULL;
	veld_err e;
	int rc;
	char role[32], myrole[32];
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	memset(&e, 0, sizeof e);
	if ((rc = ctx_open(&c, s, opts, 0)))
		goto done;
	snprintf(c.hub, sizeof c.hub, "%s", hub ? hub : "");
	remote_opts(&c, &ro);
	if ((rc = veld_repo__fetch(c.repo, c.hub, specs, 1, &ro, c.err)))
		goto done;
	if ((rc = veld_repo__ref_get(&head, c.repo, HUB_PREFIX "heads/main", c.err))) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "the hub has no organisation yet (no main)");
		goto done;
	}
	if ((rc = veld_repo__commit_tree(&tree, c.repo, &head, c.err)) ||
	    (rc = veld_repo__tree_lookup(&blob, c.repo, &tree, "registry/org", c.err)) ||
	    (rc = veld_repo__blob_read(&text, &len, c.repo, &blob, c.err)))
		goto done;
	/* Trust on first use: the organisation key signs its own entry; from
	** now on only main commits signed by it are accepted. */
	entry = json_loadb((const char *)text, len, 0, NULL);
	body = json_object_get(entry, "body");
	{
		const char *pkhex = json_string_value(json_object_get(body, "sign_pk"));
		size_t l = 0;
		json_t *vb = NULL;
		if (!pkhex || sodium_hex2bin(c.org_pk, 32, pkhex, strlen(pkhex), NULL, &l, NULL) || l != 32 ||
		    veld_registry__verify(&vb, (const char *)text, len, c.org_pk, &e)) {
			rc = veld_err__set(c.err, VELD_EINTEGRITY, "the hub's organisation entry does not verify");
			goto done;
		}
		json_decref(vb);
	}
	c.have_org = 1;
	if ((rc = veld_store__begin(s)))
		goto done;
	if (verify_ref(&c, REF_MAIN, ORG_SIGNER, &head)) {
		rc = veld_err__set(c.err, VELD_EINTEGRITY, "main on the hub does not verify: %s",
		                   json_string_value(json_object_get(json_array_get(c.rejected, 0), "reason")));
	}
	if (!rc)
		rc = merge_ref(&c, REF_MAIN, &head, 1, 0);
	if (!rc) {
		int n = 0;
		rc = device_role(&c, c.me, role, sizeof role, NULL, &n);
		if (rc == VELD_ENOTFOUND)
			rc = veld_err__set(c.err, VELD_ENOTFOUND,
			                   "device %s is not enrolled yet: the office runs `veld enroll` and syncs", c.me);
	}
	if (!rc) {
		int n = veld_store__meta_get(s, "device_role", myrole, (int)sizeof myrole - 1);
		myrole[n > 0 ? n : 0] = '\0';
		if (strcmp(role, myrole))
			rc = veld_err__set(c.err, VELD_EINTEGRITY, "the registry enrols this device as %s, not %s", role, myrole);
	}
	/* Only the registry was applied; the records of main merge at the first sync. */
	if (!rc)
		rc = sqlite3_exec(veld_store__db(s), "DELETE FROM sync_refs", NULL, NULL, NULL) == SQLITE_OK
		     ? 0 : veld_store__db_fail(s, SQLITE_ERROR, "join");
	if (!rc)
		rc = veld_store__meta_put(s, "org_sign_pk", c.org_pk, 32);
	if (!rc)
		rc = veld_store__meta_put(s, "hub", c.hub, (int)strlen(c.hub));
	if (!rc)
		rc = veld_store__audit(s, "join", NULL, NULL);
	rc = veld_store__finish(s, rc);
done:
	free(text);
	json_decref(entry);
	ctx_free(&c);
	return rc;
}

/* ---- log ------------------------------------------------------------------------ */

typedef struct logctx {
	json_t *records;
	const char *case_id;
} logctx;

static int log_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	logctx *l = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE];
	(void)old_id;
	(void)new_id;
	if (parse_record_path(path, case_id, record_id))
		return 0;
	if (l->case_id && strcmp(l->case_id, case_id))
		return 0;
	json_array_append_new(l->records, json_pack("{s:s, s:s}", "case", case_id, "record", record_id));
	return 0;
}

/* Newest first by commit time (a stable insertion sort: the walk's order
** breaks ties). */
static void sort_log(json_t *arr)
{
	size_t i, j, n = json_array_size(arr);
	for (i = 1; i < n; i++) {
		json_t *e = json_incref(json_array_get(arr, i));
		json_int_t at = json_integer_value(json_object_get(e, "at"));
		for (j = i; j > 0 && json_integer_value(json_object_get(json_array_get(arr, j - 1), "at")) < at; j--)
			json_array_set(arr, j, json_array_get(arr, j - 1));
		json_array_set_new(arr, j, e);
	}
}

int veld_log_json(char **out, veld_store *s, const char *case_id)
{
	syncctx c;
	git_oid head, *commits = NULL;
	size_t n = 0, i;
	json_t *arr = json_array();
	char ref[128];
	int rc;
	*out = NULL;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	if ((rc = ctx_open(&c, s, NULL, 0)))
		goto done;
	rc = veld_repo__ref_get(&head, c.repo, own_ref(&c, ref, sizeof ref), c.err);
	if (rc == VELD_ENOTFOUND) {
		veld_err__clear(c.err);
		rc = 0;
		goto emit;
	}
	if (rc || (rc = veld_repo__new_commits(&commits, &n, c.repo, &head, NULL, 0, c.err)))
		goto done;
	/* Newest first; merges are left out (the commits they merge are listed). */
	for (i = n; i-- > 0;) {
		git_commit *gc = NULL;
		git_oid parents[2], tree, ptree;
		size_t np = 0;
		logctx l;
		char hex[GIT_OID_HEXSZ + 1], signer[80] = "";
		if (veld_repo__commit_parents(parents, 2, &np, c.repo, &commits[i], c.err) || np > 1)
			continue;
		l.records = json_array();
		l.case_id = case_id;
		if (veld_repo__commit_tree(&tree, c.repo, &commits[i], c.err) ||
		    (np == 1 && veld_repo__commit_tree(&ptree, c.repo, &parents[0], c.err)) ||
		    veld_repo__diff(c.repo, np ? &ptree : NULL, &tree, log_path, &l, c.err)) {
			json_decref(l.records);
			continue;
		}
		if (json_array_size(l.records) == 0) {
			json_decref(l.records);
			continue;
		}
		if (git_commit_lookup(&gc, veld_repo__git(c.repo), &commits[i]) == 0) {
			header_signer(signer, sizeof signer, &c, &commits[i]);
			oid_hex(hex, &commits[i]);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:o}", "commit", hex, "signer", signer, "at",
			                                     (json_int_t)git_commit_time(gc) * 1000, "records", l.records));
			git_commit_free(gc);
		} else {
			json_decref(l.records);
		}
	}
emit:
	sort_log(arr);
	*out = json_dumps(arr, JSON_SORT_KEYS | JSON_COMPACT);
	if (!*out)
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
done:
	json_decref(arr);
	free(commits);
	ctx_free(&c);
	return rc;
}

/* ---- verify ------------------------------------------------------------------- */

typedef struct objctx {
	git_odb *odb;
	size_t n;
	int bad;
	git_oid bad_id;
} objctx;

static int read_object(const git_oid *id, void *payload)
{
	objctx *o = payload;
	git_odb_object *obj = NULL;
	/* git_odb_read checks the object's hash against its id. */
	if (git_odb_read(&obj, o->odb, id) < 0) {
		o->bad = 1;
		o->bad_id = *id;
		return 1;
	}
	git_odb_object_free(obj);
	o->n++;
	return 0;
}

typedef struct blobcheck {
	syncctx *c;
	const char *why;
	char whybuf[256];
} blobcheck;

static int check_blob(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	blobcheck *b = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE], comp[32];
	veld_record *rec = NULL;
	(void)old_id;
	if (!new_id || parse_record_path(path, case_id, record_id))
		return 0;
	b->why = open_blob(b->c, new_id, case_id, record_id, &rec, comp, sizeof comp, b->whybuf, sizeof b->whybuf);
	veld_record__free(rec);
	return b->why ? 1 : 0;
}

int veld_repository_verify(veld_store *s)
{
	syncctx c;
	git_oid head, tree, *commits = NULL;
	size_t n = 0, i;
	objctx o;
	char ref[128];
	int rc;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	memset(&o, 0, sizeof o);
	if ((rc = ctx_open(&c, s, NULL, 0)))
		goto done;
	if (git_repository_odb(&o.odb, veld_repo__git(c.repo)) < 0) {
		rc = veld_err__set(c.err, VELD_ERROR, "cannot open the object database");
		goto done;
	}
	git_odb_foreach(o.odb, read_object, &o);
	if (o.bad) {
		char hex[GIT_OID_HEXSZ + 1];
		oid_hex(hex, &o.bad_id);
		rc = veld_err__set(c.err, VELD_EINTEGRITY, "git object %s is damaged", hex);
		goto done;
	}
	rc = veld_repo__ref_get(&head, c.repo, own_ref(&c, ref, sizeof ref), c.err);
	if (rc == VELD_ENOTFOUND) {
		veld_err__clear(c.err);
		rc = 0;
		goto done;
	}
	if (rc || (rc = veld_repo__new_commits(&commits, &n, c.repo, &head, NULL, 0, c.err)))
		goto done;
	for (i = 0; i < n; i++) {
		char signer[72];
		/* Only this store's own commits: others were verified when merged. */
		if (header_signer(signer, sizeof signer, &c, &commits[i]) ||
		    strcmp(signer, c.office ? ORG_SIGNER : c.me))
			continue;
		if (veld_repo__commit_verify(signer, sizeof signer, c.repo, &commits[i], pubkey_cb, &c, c.err)) {
			rc = veld_err__set(c.err, VELD_EINTEGRITY, "%s", c.err->msg);
			goto done;
		}
	}
	if ((rc = veld_repo__commit_tree(&tree, c.repo, &head, c.err)) == 0) {
		blobcheck b;
		memset(&b, 0, sizeof b);
		b.c = &c;
		if (veld_repo__diff(c.repo, NULL, &tree, check_blob, &b, c.err) || b.why)
			rc = veld_err__set(c.err, VELD_EINTEGRITY, "%s", b.why ? b.why : c.err->msg);
	}
done:
	git_odb_free(o.odb);
	free(commits);
	ctx_free(&c);
	return rc;
}

/* ---- consent and sharing --------------------------------------------------------- */

static int valid_scope(const char *scope)
{
	return scope && (!strcmp(scope, "social") || !strcmp(scope, "huiswijs"));
}

int veld_case_consent(veld_store *s, const char *case_id, const char *scope)
{
	char field[64], date[16], fields[128];
	time_t now;
	struct tm tmv;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	if (!valid_scope(scope))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "scope must be social or huiswijs");
	now = (time_t)(veld_store__os(s)->xClockMs(veld_store__os(s)->ctx) / 1000);
	strftime(date, sizeof date, "%Y-%m-%d", gmtime_r(&now, &tmv));
	snprintf(field, sizeof field, "toestemming.%s", scope);
	snprintf(fields, sizeof fields, "{\"%s\":\"%s\"}", field, date);
	/* The consent lives in the case header, which merges like any record. */
	return veld_case_update(s, case_id, fields);
}

int veld_case_share(veld_store *s, const char *case_id, const char *device_id, const char *scope)
{
	syncctx c;
	veld_record *h = NULL;
	char role[32], field[64], key_hex[2 * VELD_KEYIDBYTES + 1];
	unsigned char *key = NULL, key_id[VELD_KEYIDBYTES];
	const json_t *v;
	size_t n_live = 0;
	int n = 0, rc;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	if ((rc = ctx_open(&c, s, NULL, 0)))
		goto done;
	if (!valid_scope(scope)) {
		rc = veld_err__set(c.err, VELD_EINVALID, "scope must be social or huiswijs");
		goto done;
	}
	if ((rc = veld_store__record_load(&h, s, case_id ? case_id : "")) || strcmp(veld_record__form(h), VELD_CASE_FORM)) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
		goto done;
	}
	snprintf(field, sizeof field, "toestemming.%s", scope);
	v = veld_record__value(h, field, &n_live);
	if (!json_is_string(v)) {
		rc = veld_err__set(c.err, VELD_EDENIED, "case %s has no recorded consent for %s: run `veld case consent` first",
		                   case_id, scope);
		goto done;
	}
	if (device_role(&c, device_id ? device_id : "", role, sizeof role, NULL, &n)) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "no enrolled device %s", device_id ? device_id : "(none)");
		goto done;
	}
	if (!strcmp(role, "volunteer") && strcmp(scope, "huiswijs")) {
		rc = veld_err__set(c.err, VELD_EDENIED, "a volunteer may only hold the huiswijs compartment");
		goto done;
	}
	key = sodium_malloc(VELD_KEYBYTES);
	if (!key) {
		rc = veld_err__set(c.err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = ensure_key(&c, case_id, scope, key, key_id);
	if (!rc) {
		sodium_bin2hex(key_hex, sizeof key_hex, key_id, VELD_KEYIDBYTES);
		rc = add_share(&c, key_hex, device_id);
	}
	if (!rc)
		rc = veld_store__audit(s, "share", case_id, NULL);
	rc = veld_store__finish(s, rc);
done:
	sodium_free(key);
	veld_record__free(h);
	ctx_free(&c);
	return rc;
}

/* ---- erasure (office) ------------------------------------------------------------ */

int veld_case_erase(veld_store *s, const char *case_id)
{
	syncctx c;
	veld_record *h = NULL;
	int rc;
	if (!s)
		return VELD_ERROR;
	veld_err__clear(veld_store__err(s));
	if ((rc = ctx_open(&c, s, NULL, 0)))
		goto done;
	if (!c.office) {
		rc = veld_err__set(c.err, VELD_EDENIED, "only the office erases cases");
		goto done;
	}
	if ((rc = veld_store__record_load(&h, s, case_id ? case_id : "")) || strcmp(veld_record__form(h), VELD_CASE_FORM)) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
		goto done;
	}
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__finish(s, erase_local(&c, case_id));
done:
	veld_record__free(h);
	ctx_free(&c);
	return rc;
}

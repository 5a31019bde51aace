/*
** schema.c — the layout of veld.db and its migrations.
**
** The database holds:
**   meta(key, value)     schema version, this device's identity and keys,
**                        the hybrid logical clock's last stamp
**   records(id, case_id, form, compartment, state, deleted, conflicts, dirty)
**                        one row per record; `state` is the record's
**                        canonical JSON (record.c).  A case's header (name,
**                        postcode, ...) is itself a record with form "_case"
**                        and id == case id, so cases merge like records.
**   audit(seq, at, device, action, case_id, record_id)
**                        every open, change, share and export of a case
**   case_keys, key_shares, devices, sync_refs, erased
**                        sync state (sync/, docs/sync.md)
**   scripts(kind, name, version, source, published)
**                        form and report scripts the office published
**                        (core/published.c)
**   drafts(id, case_id, form, updated, answers, draft)
**                        records being filled in (drafts.c): this
**                        device's only, never synced
**
** meta's schema_version says which of these layouts a file has.  This file
** owns that number: it writes the layout of a new store, migrates an older
** one when the store is opened (each step in one transaction, so a store is
** either as it was or migrated), and refuses any version it does not know.
** It must not read or write rows of its own accord beyond a migration's
** copy: cases and records are cases.c's, the handle is store.c's.
*/
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2: case_keys keyed by (case_id, compartment), WITHOUT ROWID.
** 3: refusals.
** 4: case_keys has an epoch per (case_id, compartment): keys rotate;
**    access_lost: devices that no longer may read a case.
** 5: scripts: the form and report versions the office published.
** 6: drafts.
** migrate() takes a store of any older version to this one. */
#define SCHEMA_VERSION 6

/* A case's keys sit together in the table itself: the lookups of a sync
** (by case, and by case and compartment, newest epoch first) read one
** leaf, not an index leaf and then a row.  key_shares points at key_id,
** hence UNIQUE. */
#define CASE_KEYS_SQL(name)                                                                                            \
	"CREATE TABLE " name "("                                                                                       \
	"  case_id TEXT NOT NULL,"                                                                                     \
	"  compartment TEXT NOT NULL,"                                                                                 \
	"  epoch INTEGER NOT NULL DEFAULT 0,"                                                                          \
	"  key_id TEXT NOT NULL UNIQUE,"                                                                               \
	"  key BLOB NOT NULL,"                                                                                         \
	"  PRIMARY KEY(case_id, compartment, epoch)) WITHOUT ROWID;"

/* Changes verification refused, one row per (path, blob, writer): see
** sync/state.c.  Looked up by (path, blob) when a merge meets a path. */
#define REFUSALS_SQL                                                                                                   \
	"CREATE TABLE refusals("                                                                                       \
	"  path TEXT NOT NULL,"                                                                                        \
	"  blob TEXT NOT NULL,"                                                                                        \
	"  device TEXT NOT NULL,"                                                                                      \
	"  case_id TEXT NOT NULL,"                                                                                     \
	"  record_id TEXT NOT NULL,"                                                                                   \
	"  code TEXT NOT NULL,"                                                                                        \
	"  reason TEXT NOT NULL,"                                                                                      \
	"  commit_id TEXT NOT NULL,"                                                                                   \
	"  at INTEGER NOT NULL,"                                                                                       \
	"  published INTEGER NOT NULL DEFAULT 0,"                                                                      \
	"  PRIMARY KEY(path, blob, device)) WITHOUT ROWID;"                                                            \
	"CREATE INDEX refusals_device ON refusals(device, at);"

/* A device that may no longer read a case (consent withdrawn, share taken
** back): sync/state.c. */
#define ACCESS_LOST_SQL                                                                                                \
	"CREATE TABLE access_lost("                                                                                    \
	"  device TEXT NOT NULL,"                                                                                      \
	"  case_id TEXT NOT NULL,"                                                                                     \
	"  published INTEGER NOT NULL DEFAULT 0,"                                                                      \
	"  PRIMARY KEY(device, case_id)) WITHOUT ROWID;"

/* Every version of a form or report script the office published, as the
** office wrote it or as main carried it (verified): core/published.c. */
#define SCRIPTS_SQL                                                                                                    \
	"CREATE TABLE scripts("                                                                                        \
	"  kind TEXT NOT NULL,"                                                                                        \
	"  name TEXT NOT NULL,"                                                                                        \
	"  version INTEGER NOT NULL,"                                                                                  \
	"  source TEXT NOT NULL,"                                                                                      \
	"  published INTEGER NOT NULL DEFAULT 0,"                                                                      \
	"  PRIMARY KEY(kind, name, version)) WITHOUT ROWID;"

/* Records being filled in (core/drafts.c), newest first per case and form.
** Read by nothing in sync/: a draft stays on the device. */
#define DRAFTS_SQL                                                                                                     \
	"CREATE TABLE drafts("                                                                                         \
	"  id TEXT PRIMARY KEY,"                                                                                       \
	"  case_id TEXT NOT NULL,"                                                                                     \
	"  form TEXT NOT NULL,"                                                                                        \
	"  updated INTEGER NOT NULL,"                                                                                  \
	"  answers INTEGER NOT NULL,"                                                                                  \
	"  draft TEXT NOT NULL);"                                                                                      \
	"CREATE INDEX drafts_case ON drafts(case_id, form, updated);"

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
	"CREATE TABLE erased(case_id TEXT PRIMARY KEY, published INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	REFUSALS_SQL ACCESS_LOST_SQL SCRIPTS_SQL DRAFTS_SQL;

int veld_schema__create(veld_store *s)
{
	char ver[16];
	int rc = veld_store__exec(s, schema_sql, "create schema");
	snprintf(ver, sizeof ver, "%d", SCHEMA_VERSION);
	return rc ? rc : veld_store__meta_put(s, "schema_version", ver, (int)strlen(ver));
}

/* meta's schema_version into *ver (its text, for messages, in buf).  A
** store without one is damaged, not merely missing a setting. */
static int schema_version(veld_store *s, int *ver, char *buf, int cap)
{
	int n = veld_store__meta_get(s, "schema_version", buf, cap - 1);
	if (n == VELD_ENOTFOUND)
		n = veld_err__set(veld_store__err(s), VELD_EINTEGRITY, "store metadata 'schema_version' is missing");
	if (n < 0)
		return n;
	buf[n] = '\0';
	*ver = atoi(buf);
	return 0;
}

int veld_schema__check(veld_store *s)
{
	char buf[16];
	int ver = 0, rc = schema_version(s, &ver, buf, (int)sizeof buf);
	if (rc == 0 && ver != SCHEMA_VERSION)
		rc = veld_err__set(veld_store__err(s), VELD_EINTEGRITY, "store schema version %s is not supported", buf);
	return rc;
}

/* PRAGMA foreign_key_check: any row it returns is a dangling reference. */
static int check_foreign_keys(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(veld_store__db(s), "PRAGMA foreign_key_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = veld_err__set(veld_store__err(s), VELD_EINTEGRITY, "store migration: a key share names no key");
	else if (rc != SQLITE_DONE)
		rc = veld_store__db_fail(s, rc, "check the store's foreign keys");
	else
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

/* Any older schema to this one, in one transaction, so a store is either
** as it was or migrated.  case_keys is rebuilt (SQLite's way to change a
** table: make the new one, copy, drop the old, rename): schema 1 keyed it
** by key_id in a rowid table, schemas 1 to 3 had no epoch (every key so far
** is epoch 0).  Foreign keys are off around it, or dropping the old table
** would delete every key_shares row through its ON DELETE CASCADE; they
** are checked before the commit.  Schemas 1 and 2 also get refusals,
** schemas 1 to 3 access_lost, schemas 1 to 4 scripts, schemas 1 to 5 drafts. */
static int migrate(veld_store *s, int from)
{
	char ver[16];
	int rc, on;
	if ((rc = veld_store__exec(s, "PRAGMA foreign_keys=OFF", "migrate the store")))
		return rc;
	rc = veld_store__begin(s);
	if (!rc)
		rc = veld_store__exec(s,
		                      CASE_KEYS_SQL("case_keys_new") "INSERT INTO case_keys_new(case_id, compartment, key_id, key)"
		                                                     " SELECT case_id, compartment, key_id, key FROM case_keys;"
		                                                     "DROP TABLE case_keys;"
		                                                     "ALTER TABLE case_keys_new RENAME TO case_keys;",
		                      "migrate the store");
	if (!rc && from < 3)
		rc = veld_store__exec(s, REFUSALS_SQL, "migrate the store");
	if (!rc && from < 4)
		rc = veld_store__exec(s, ACCESS_LOST_SQL, "migrate the store");
	if (!rc && from < 5)
		rc = veld_store__exec(s, SCRIPTS_SQL, "migrate the store");
	if (!rc && from < 6)
		rc = veld_store__exec(s, DRAFTS_SQL, "migrate the store");
	if (!rc)
		rc = check_foreign_keys(s);
	snprintf(ver, sizeof ver, "%d", SCHEMA_VERSION);
	if (!rc)
		rc = veld_store__meta_put(s, "schema_version", ver, (int)strlen(ver));
	rc = veld_store__finish(s, rc);
	on = veld_store__exec(s, "PRAGMA foreign_keys=ON", "migrate the store");
	return rc ? rc : on;
}

int veld_schema__migrate(veld_store *s)
{
	char buf[16];
	int ver = 0, rc = schema_version(s, &ver, buf, (int)sizeof buf);
	if (rc < 0)
		return rc;
	return ver >= 1 && ver < SCHEMA_VERSION ? migrate(s, ver) : 0;
}

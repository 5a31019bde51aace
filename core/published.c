/*
** published.c — the form and report scripts the office published: the
** `scripts` table (schema.c), one row per (kind, name, version).
**
** The office writes a row when it publishes (scripts/publish.c, after the
** script passed its checks), unpublished; its next sync signs the row into
** main as forms/<name>/<version> or reports/<name>/<version> and marks it
** published (sync/scripts_dist.c).  Every other store writes a row when it
** merges such an entry from main, after its signature verified, published
** from the start.  The form engine and the report runner read the rows
** back by name and version (scripts/).  A row is never changed: a version
** once published keeps its text, so records written with it read the same
** everywhere.
**
** Owns: every SQL statement on `scripts`.  Must not: judge a script (the
** scripts layer loads and checks it) or a signature (sync/ checks it).
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

static int prepare(veld_store *s, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(veld_store__db(s), sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : veld_store__db_fail(s, rc, "published scripts");
}

int veld_published__put(int *added, veld_store *s, const veld_script_row *r)
{
	sqlite3_stmt *st = NULL;
	char *held = NULL;
	size_t len = 0;
	int rc;
	*added = 0;
	rc = veld_published__get(&held, &len, s, r->kind, r->name, r->version);
	if (rc == 0) {
		rc = len == r->len && !memcmp(held, r->source, len)
		             ? 0
		             : veld_err__set(veld_store__err(s), VELD_EEXISTS, "%s %s version %d is published already",
		                             r->kind, r->name, r->version);
		free(held);
		return rc;
	}
	if (rc != VELD_ENOTFOUND)
		return rc;
	veld_err__clear(veld_store__err(s));
	if ((rc = prepare(s, &st, "INSERT INTO scripts(kind, name, version, source, published) VALUES(?1, ?2, ?3, ?4, ?5)")))
		return rc;
	sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, r->version);
	sqlite3_bind_text(st, 4, r->source, (int)r->len, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, r->published != 0);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "store a published script");
	sqlite3_finalize(st);
	*added = rc == 0;
	return rc;
}

int veld_published__get(char **source, size_t *len, veld_store *s, const char *kind, const char *name, int version)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*source = NULL;
	*len = 0;
	if ((rc = prepare(s, &st, "SELECT source FROM scripts WHERE kind = ?1 AND name = ?2 AND version = ?3")))
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if ((*source = malloc(n + 1))) {
			memcpy(*source, sqlite3_column_text(st, 0), n);
			(*source)[n] = '\0';
			*len = n;
			rc = 0;
		} else
			rc = veld_err__oom(veld_store__err(s));
	} else if (rc == SQLITE_DONE)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no %s %s version %d", kind, name, version);
	else
		rc = veld_store__db_fail(s, rc, "read a published script");
	sqlite3_finalize(st);
	return rc;
}

int veld_published__newest(veld_store *s, const char *kind, const char *name, int below)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = prepare(s, &st,
	                  "SELECT max(version) FROM scripts WHERE kind = ?1 AND name = ?2 AND (?3 <= 0 OR version < ?3)")))
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, below);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : veld_store__db_fail(s, rc, "read the published scripts");
	sqlite3_finalize(st);
	return rc;
}

int veld_published__each(veld_store *s, const char *kind, int unpublished, veld_script_cb cb, void *payload)
{
	sqlite3_stmt *st = NULL;
	veld_script_row r;
	int rc, stop = 0;
	if ((rc = prepare(s, &st,
	                  "SELECT kind, name, version, source, published FROM scripts"
	                  " WHERE (?1 IS NULL OR kind = ?1) AND (?2 = 0 OR published = 0) ORDER BY kind, name, version")))
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, unpublished != 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.kind = (const char *)sqlite3_column_text(st, 0);
		r.name = (const char *)sqlite3_column_text(st, 1);
		r.version = sqlite3_column_int(st, 2);
		r.source = (const char *)sqlite3_column_text(st, 3);
		r.len = (size_t)sqlite3_column_bytes(st, 3);
		r.published = sqlite3_column_int(st, 4);
		if (r.kind && r.name && r.source && (stop = cb(&r, payload)))
			break;
	}
	if (stop)
		rc = stop;
	else
		rc = rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "read the published scripts");
	sqlite3_finalize(st);
	return rc;
}

int veld_published__mark(veld_store *s)
{
	return veld_store__exec(s, "UPDATE scripts SET published = 1 WHERE published = 0", "mark scripts published");
}

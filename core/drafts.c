/*
** drafts.c — records being filled in, kept on this device only.
**
** A draft is what an app (the CLI's `form fill`) has gathered of a record
** that is not stored yet: the answers so far, so that a closed terminal, a
** flat battery or a record the form still refuses loses nothing.  It lives
** in the table `drafts` (schema.c): one row per draft, its case and form,
** when it last changed and the app's JSON as text.  veld.db is sealed page
** by page like the rest of the store; the table is not read by sync/, so a
** draft never leaves the device.  Dropping a case (erased, access lost) or
** every case (a revoked device) drops its drafts with it (sync/state.c).
**
** This file owns the four calls of veld.h on drafts and the one thing the
** library reads in an app's JSON: the number of answers (the members of
** its "fields" object that are not null).  It must not check answers
** against a form (core/ does not know forms; the app validates and puts
** the record through veld_record_put), nor delete a draft on its own: the
** app deletes it once the record is stored.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* Answers in a draft: the non-null members of its "fields" object. */
static int count_answers(const json_t *draft)
{
	const char *k;
	json_t *v;
	int n = 0;
	json_object_foreach(json_object_get(draft, "fields"), k, v) {
		n += !json_is_null(v);
	}
	return n;
}

/* The draft `draft_id` belongs to `case_id` and `form`; VELD_ENOTFOUND
** when there is no such draft, VELD_EINVALID when it is another's. */
static int check_owner(veld_store *s, const char *draft_id, const char *case_id, const char *form)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(veld_store__db(s), "SELECT case_id, form FROM drafts WHERE id = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "read draft");
	sqlite3_bind_text(st, 1, draft_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no draft %s", draft_id);
	else if (rc != SQLITE_ROW)
		rc = veld_store__db_fail(s, rc, "read draft");
	else if (strcmp((const char *)sqlite3_column_text(st, 0), case_id) ||
	         strcmp((const char *)sqlite3_column_text(st, 1), form))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "draft %s is a draft of another case or form",
		                   draft_id);
	else
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

/* What a put names: a known, undeleted case, a form name, a JSON object. */
static int check_put(json_t **draft, veld_store *s, const char *case_id, const char *form, const char *draft_json)
{
	veld_record *none = NULL;
	json_error_t jerr;
	int rc;
	*draft = NULL;
	if (!case_id || !veld_id__is(case_id))
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no case %.40s", case_id ? case_id : "");
	if (!veld_name__is_form(form))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "form name '%.60s' is not valid", form ? form : "");
	if ((rc = veld_store__put_target(&none, s, case_id, form, NULL)))
		return rc;
	*draft = json_loads(draft_json ? draft_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(*draft) ||
	    (json_object_get(*draft, "fields") && !json_is_object(json_object_get(*draft, "fields")))) {
		json_decref(*draft);
		*draft = NULL;
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "a draft is a JSON object, its \"fields\" an object");
	}
	return 0;
}

int veld_draft_put(char *id_out, veld_store *s, const char *draft_id, const char *case_id, const char *form,
                   const char *draft_json)
{
	sqlite3_stmt *st = NULL;
	json_t *draft = NULL;
	char id[VELD_IDSIZE], *text = NULL;
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = check_put(&draft, s, case_id, form, draft_json)))
		goto done;
	if (draft_id && (rc = veld_id__is(draft_id) ? check_owner(s, draft_id, case_id, form)
	                                            : veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no draft %.40s",
	                                                            draft_id)))
		goto done;
	if (draft_id)
		memcpy(id, draft_id, VELD_IDSIZE);
	else
		veld_store__new_id(s, id);
	if (!(text = json_dumps(draft, JSON_COMPACT | JSON_SORT_KEYS))) {
		rc = veld_err__oom(veld_store__err(s));
		goto done;
	}
	rc = sqlite3_prepare_v2(veld_store__db(s),
	                        "INSERT OR REPLACE INTO drafts(id, case_id, form, updated, answers, draft)"
	                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	                        -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, form, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, veld_store__os(s)->xClockMs(veld_store__os(s)->ctx));
		sqlite3_bind_int(st, 5, count_answers(draft));
		sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	rc = rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "write draft");
	if (!rc)
		memcpy(id_out, id, VELD_IDSIZE);
done:
	sqlite3_finalize(st);
	free(text);
	json_decref(draft);
	return rc;
}

/* One row of a listing: id, case, form, updated, answers (and, for
** veld_draft_get, the draft itself in column 5). */
static int draft_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:i}", "id", (const char *)sqlite3_column_text(st, 0), "case",
	                      (const char *)sqlite3_column_text(st, 1), "form", (const char *)sqlite3_column_text(st, 2),
	                      "updated", (json_int_t)sqlite3_column_int64(st, 3), "answers", sqlite3_column_int(st, 4));
	(void)payload;
	if (e && sqlite3_column_count(st) > 5 &&
	    json_object_set_new(e, "draft", json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL))) {
		json_decref(e);
		e = NULL;
	}
	return e && !json_array_append_new(arr, e) ? 0 : veld_err__oom(veld_store__err(s));
}

int veld_draft_list_json(char **out, veld_store *s, const char *case_id, const char *form)
{
	return veld_store__list_json(out, s, "list drafts", draft_row, NULL,
	                             "SELECT id, case_id, form, updated, answers FROM drafts"
	                             " WHERE (?1 IS NULL OR case_id = ?1) AND (?2 IS NULL OR form = ?2)"
	                             " ORDER BY updated DESC, id",
	                             "tt", case_id, form);
}

int veld_draft_get(char **out, veld_store *s, const char *draft_id)
{
	json_t *arr;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!(arr = json_array()))
		return veld_err__oom(veld_store__err(s));
	rc = veld_store__rows_json(arr, s, "read draft", draft_row, NULL,
	                           "SELECT id, case_id, form, updated, answers, draft FROM drafts WHERE id = ?1", "t",
	                           draft_id ? draft_id : "");
	if (!rc && json_array_size(arr) == 0)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no draft %.40s", draft_id ? draft_id : "");
	if (!rc)
		rc = veld_store__json_out(out, s, json_incref(json_array_get(arr, 0)));
	json_decref(arr);
	return rc;
}

int veld_draft_delete(veld_store *s, const char *draft_id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	rc = sqlite3_prepare_v2(veld_store__db(s), "DELETE FROM drafts WHERE id = ?1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, draft_id ? draft_id : "", -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		rc = veld_store__db_fail(s, rc, "delete draft");
	else if (sqlite3_changes(veld_store__db(s)) == 0)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no draft %.40s", draft_id ? draft_id : "");
	else
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

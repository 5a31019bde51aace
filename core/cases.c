/*
** cases.c — cases and records in the store: the rows of `records`, and the
** veld.h calls that read and change them (cases, records without their
** forms, export, conflicts, and the part of resolve no form decides).
**
** A record row holds the record's canonical state (record.c) and columns
** derived from it for queries (case, form, deleted, number of conflicts,
** dirty: to be committed at the next sync).  A case's header is a record
** of form "_case" whose id is the case id.  Every change here runs in one
** transaction with its audit entry and a fresh clock stamp; the checks
** come first, so a refused call changes nothing.
**
** This file owns what a case header may hold (check_header) and the rule
** that a put names an existing, undeleted case and record of its form
** (veld_store__put_target).  It does not know forms: scripts/records.c
** validates a put (and a resolve of a form's field) against its form and
** hands the result to veld_store__record_put.  It reaches the handle only through core.h
** (store.c), and the schema is schema.c's.
*/
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows -------------------------------------------------------------------- */

/* The record whose state is in column 0 of the current row. */
static int row_record(veld_record **out, veld_store *s, sqlite3_stmt *st)
{
	return veld_record__parse(out, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0),
	                          veld_store__err(s));
}

/* Append `item` (reference stolen) to `arr`; out of memory when it fails. */
static int append(json_t *arr, veld_store *s, json_t *item)
{
	return json_array_append_new(arr, item) ? veld_err__oom(veld_store__err(s)) : 0;
}

int veld_store__record_load(veld_record **out, veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*out = NULL;
	rc = sqlite3_prepare_v2(veld_store__db(s), "SELECT state FROM records WHERE id = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "read record");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = row_record(out, s, st);
	else if (rc == SQLITE_DONE)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no record %s", id);
	else
		rc = veld_store__db_fail(s, rc, "read record");
	sqlite3_finalize(st);
	return rc;
}

static int count_conflicts(const veld_record *r)
{
	json_t *view = veld_record__view(r);
	int n = view ? (int)json_object_size(json_object_get(view, "conflicts")) : 0;
	json_decref(view);
	return n;
}

int veld_store__record_save(veld_store *s, const veld_record *r, int dirty, const char *compartment)
{
	sqlite3_stmt *st = NULL;
	char *canon = veld_record__canonical(r);
	size_t n = canon ? strlen(canon) : 0;
	int rc;
	if (!canon)
		return veld_err__oom(veld_store__err(s));
	if (n > VELD_RECORD_MAX) {
		free(canon);
		return veld_err__set(veld_store__err(s), VELD_EINVALID,
		                     "record %s would hold %zu bytes, more than the %zu KiB a record may hold",
		                     veld_record__id(r), n, VELD_RECORD_MAX >> 10);
	}
	rc = sqlite3_prepare_v2(veld_store__db(s),
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
	return rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "write record");
}

/* Apply every field of flat object `fields` to `r` with one stamp, and
** "_form_version" when `form_version` > 0.  Inside the caller's transaction. */
static int apply_fields(veld_store *s, veld_record *r, json_t *fields, int form_version)
{
	veld_stamp st;
	const char *path;
	json_t *v;
	int rc = veld_store__stamp(s, &st);
	if (rc)
		return rc;
	json_object_foreach(fields, path, v)
	{
		if ((rc = veld_record__set(r, path, v, &st)))
			return veld_err__set(veld_store__err(s), rc, "field '%s' cannot be set", path);
	}
	if (form_version > 0) {
		json_t *ver = json_integer(form_version);
		rc = ver ? veld_record__set(r, VELD_RECORD_FORM_VERSION, ver, &st) : VELD_ERROR;
		json_decref(ver);
		if (rc)
			return veld_err__set(veld_store__err(s), rc, "field '_form_version' cannot be set");
	}
	return 0;
}

/* ---- the write rule --------------------------------------------------------- */

/* This device as a writer: its role and region as the registry has them
** (its own entry, once a sync brought it), else the role it was created
** with and no region yet. */
typedef struct own_writer {
	veld_writer w;
	veld_range ranges[VELD_MAX_RANGES];
	char role[16], region[256];
} own_writer;

static int load_writer(own_writer *o, veld_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc, n;
	memset(o, 0, sizeof *o);
	o->w.n_ranges = -1;
	o->w.who = "this device";
	rc = sqlite3_prepare_v2(veld_store__db(s), "SELECT role, region FROM devices WHERE id = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "read this device's enrolment");
	sqlite3_bind_text(st, 1, veld_store__device_id(s), -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(o->role, sizeof o->role, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(o->region, sizeof o->region, "%s", (const char *)sqlite3_column_text(st, 1));
		if (veld_region__parse(o->ranges, VELD_MAX_RANGES, &n, o->region, NULL) == 0)
			o->w.n_ranges = n;
		rc = SQLITE_DONE;
	} else if (rc == SQLITE_DONE && (n = veld_store__meta_get(s, "device_role", o->role, sizeof o->role - 1)) >= 0) {
		o->role[n] = '\0';
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return veld_store__db_fail(s, rc, "read this device's enrolment");
	o->w.role = o->role[0] ? o->role : NULL;
	o->w.ranges = o->ranges;
	o->w.region = o->region;
	return 0;
}

/* The compartment a stored record was written in ("" if none is stored). */
static int stored_compartment(char *out, size_t cap, veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(veld_store__db(s), "SELECT compartment FROM records WHERE id = ?1", -1, &st, NULL);
	out[0] = '\0';
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "read a record's compartment");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "read a record's compartment");
}

/* May this device write `r` as it now is (rules.c, the rule the office's
** verification applies too)?  VELD_EDENIED with the reason. */
static int check_rule(veld_store *s, const veld_record *r, const char *compartment, int creates)
{
	own_writer o;
	veld_change c;
	char comp[32], why[256];
	size_t n;
	const json_t *pc = veld_record__value(r, "postcode", &n);
	int rc;
	memset(&c, 0, sizeof c);
	if ((rc = load_writer(&o, s)))
		return rc;
	c.case_id = veld_record__case(r);
	c.record_id = veld_record__id(r);
	c.form = veld_record__form(r);
	if (!compartment && (rc = stored_compartment(comp, sizeof comp, s, c.record_id)))
		return rc;
	c.compartment = compartment ? compartment : comp;
	c.postcode = json_string_value(pc);
	c.creates = creates;
	c.readable = 1;
	if (veld_rules__check(NULL, why, sizeof why, &o.w, &c))
		return veld_err__set(veld_store__err(s), VELD_EDENIED, "%s", why);
	return 0;
}

/* Write a changed record with its audit entry, in one transaction, if the
** write rule lets this device make it. */
static int write_record(veld_store *s, veld_record *r, json_t *fields, int form_version, const char *compartment,
                        const char *action, const char *case_id, const char *record_id)
{
	veld_stamp last;
	int creates = veld_record__max_stamp(r, &last) != 0;
	int rc = veld_store__begin(s);
	if (rc)
		return rc;
	rc = apply_fields(s, r, fields, form_version);
	if (!rc)
		rc = check_rule(s, r, compartment, creates);
	if (!rc)
		rc = veld_store__record_save(s, r, 1, compartment);
	if (!rc)
		rc = veld_store__audit(s, action, case_id, record_id);
	return veld_store__finish(s, rc);
}

/* A change of one field (`v` borrowed) of a stored record, written. */
static int write_field(veld_store *s, veld_record *r, const char *path, json_t *v, const char *action,
                       const char *record_id)
{
	json_t *f = json_object();
	int rc = f && !json_object_set(f, path, v)
	                 ? write_record(s, r, f, 0, NULL, action, veld_record__case(r), record_id)
	                 : veld_err__oom(veld_store__err(s));
	json_decref(f);
	return rc;
}

/* ---- cases ------------------------------------------------------------------- */

/* A date of the calendar in the years a case header holds. */
static int valid_date(const char *d)
{
	return d && veld_date__is(d, strlen(d)) && strncmp(d, "1900", 4) >= 0 && strncmp(d, "2200", 4) <= 0;
}

/* Check a case header object (`today`: "YYYY-MM-DD"); names the field at
** fault.  `creating`: name and postcode are required; otherwise a change,
** which may not clear them. */
static int check_header(veld_err *err, json_t *h, int creating, const char *today)
{
	const char *key;
	json_t *v;
	json_object_foreach(h, key, v)
	{
		if (!strncmp(key, "toestemming.", 12)) {
			if (!json_is_string(v) || !valid_date(json_string_value(v)))
				return veld_err__set(err, VELD_EINVALID, "case field '%s' must be a date YYYY-MM-DD", key);
			continue;
		}
		/* Consent as data, and access taken back (sync/share.c): a date,
		** or null when cleared; who recorded a consent, by device id; a
		** note of at most 1000 bytes. */
		if (!strncmp(key, "toestemming_notitie.", 20)) {
			if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 1000))
				return veld_err__set(err, VELD_EINVALID, "case field '%.40s' must be text of at most 1000 bytes",
				                     key);
			continue;
		}
		if (!strncmp(key, "toestemming_ingetrokken.", 24) || !strncmp(key, "toegang_ingetrokken.", 20) ||
		    !strncmp(key, "toestemming_tot.", 16)) {
			if (!json_is_null(v) && (!json_is_string(v) || !valid_date(json_string_value(v))))
				return veld_err__set(err, VELD_EINVALID, "case field '%.40s' must be a date YYYY-MM-DD or null",
				                     key);
			continue;
		}
		if (!strncmp(key, "toestemming_door.", 17)) {
			if (!json_is_string(v) || !veld_hex__is(json_string_value(v), 32))
				return veld_err__set(err, VELD_EINVALID, "case field '%.40s' must be a device id", key);
			continue;
		}
		if (strcmp(key, "name") && strcmp(key, "postcode") && strcmp(key, "birth") &&
		    strcmp(key, "address") && strcmp(key, "phone") && strcmp(key, "ref"))
			return veld_err__set(err, VELD_EINVALID, "case field '%s' is unknown", key);
		if (!json_is_string(v) && !json_is_null(v))
			return veld_err__set(err, VELD_EINVALID, "case field '%s' must be text", key);
	}
	if (!creating && (json_is_null(json_object_get(h, "name")) || json_is_null(json_object_get(h, "postcode"))))
		return veld_err__set(err, VELD_EINVALID, "case fields 'name' and 'postcode' cannot be cleared");
	v = json_object_get(h, "name");
	if (creating && (!json_is_string(v) || !*json_string_value(v)))
		return veld_err__set(err, VELD_EINVALID, "case field 'name' is required");
	v = json_object_get(h, "postcode");
	if (creating && !json_is_string(v))
		return veld_err__set(err, VELD_EINVALID, "case field 'postcode' is required");
	if (json_is_string(v)) {
		const char *pc = json_string_value(v);
		if (strlen(pc) != 4 || strspn(pc, "0123456789") != 4 || pc[0] == '0')
			return veld_err__set(err, VELD_EINVALID,
			                     "case field 'postcode' must be a Belgian postcode (4 digits, 1000-9999)");
	}
	v = json_object_get(h, "birth");
	if (json_is_string(v) && !valid_date(json_string_value(v)))
		return veld_err__set(err, VELD_EINVALID, "case field 'birth' must be a date YYYY-MM-DD of the calendar");
	if (json_is_string(v) && strcmp(json_string_value(v), today) > 0)
		return veld_err__set(err, VELD_EINVALID, "case field 'birth' cannot lie in the future");
	return 0;
}

/* Parse and check a header given to veld_case_new or veld_case_update. */
static int parse_header(json_t **out, veld_store *s, const char *header_json, int creating)
{
	json_error_t jerr;
	json_t *h = json_loads(header_json ? header_json : "", JSON_REJECT_DUPLICATES, &jerr);
	char today[11];
	int rc = 0;
	veld_store__today(today, s);
	if (!h && veld_err__json_oom(veld_store__err(s), &jerr))
		rc = VELD_ERROR;
	else if (!json_is_object(h))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "case header is not a JSON object: %s", jerr.text);
	else
		rc = check_header(veld_store__err(s), h, creating, today);
	if (rc)
		json_decref(h);
	*out = rc ? NULL : h;
	return rc;
}

int veld_case_new(char *id_out, veld_store *s, const char *header_json)
{
	json_t *h = NULL;
	veld_record *r = NULL;
	char id[VELD_IDSIZE];
	int rc;
	if ((rc = veld_store__enter(s)) || (rc = parse_header(&h, s, header_json, 1)))
		return rc;
	veld_store__new_id(s, id);
	if (veld_record__new(&r, id, id, VELD_CASE_FORM))
		rc = veld_err__oom(veld_store__err(s));
	else
		rc = write_record(s, r, h, 0, NULL, "create-case", id, NULL);
	if (!rc && id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	json_decref(h);
	veld_record__free(r);
	return rc;
}

/* Load a case's header record, checking the id names a case. */
static int load_case(veld_record **out, veld_store *s, const char *case_id)
{
	int rc;
	*out = NULL;
	if (!veld_id__is(case_id))
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
	rc = veld_store__record_load(out, s, case_id);
	if (rc == VELD_ENOTFOUND || (!rc && strcmp(veld_record__form(*out), VELD_CASE_FORM))) {
		veld_record__free(*out);
		*out = NULL;
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no case %s", case_id);
	}
	return rc;
}

/* A case this store does not hold (`rc` VELD_ENOTFOUND) because the office
** erased it: a write to it is refused, as the office's verification
** refuses it, rather than answered "no case".  Other codes pass through. */
static int refuse_if_erased(veld_store *s, const char *case_id, int rc)
{
	sqlite3_stmt *st = NULL;
	int erased = 0, src;
	if (rc != VELD_ENOTFOUND || !veld_id__is(case_id))
		return rc;
	src = sqlite3_prepare_v2(veld_store__db(s), "SELECT 1 FROM erased WHERE case_id = ?1", -1, &st, NULL);
	if (src != SQLITE_OK)
		return veld_store__db_fail(s, src, "look up an erasure");
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	src = sqlite3_step(st);
	erased = src == SQLITE_ROW;
	sqlite3_finalize(st);
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return veld_store__db_fail(s, src, "look up an erasure");
	return erased ? veld_err__set(veld_store__err(s), VELD_EDENIED, "case %s was erased by the office", case_id) : rc;
}

int veld_case_update(veld_store *s, const char *case_id, const char *header_json)
{
	json_t *h = NULL;
	veld_record *c = NULL;
	int rc;
	if ((rc = veld_store__enter(s)) || (rc = parse_header(&h, s, header_json, 0)))
		return rc;
	if (!(rc = refuse_if_erased(s, case_id, load_case(&c, s, case_id))))
		rc = write_record(s, c, h, 0, NULL, "update-case", case_id, NULL);
	json_decref(h);
	veld_record__free(c);
	return rc;
}

/* 0 if this store knows case `case_id` (its header, a record of it or a
** key of it), else VELD_ENOTFOUND with a message. */
static int case_known(veld_store *s, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!veld_id__is(case_id))
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
	/* The header, any record of the case, or a key of it: a volunteer
	** holds the Huiswijs part of a case without its header. */
	rc = sqlite3_prepare_v2(veld_store__db(s),
	                        "SELECT EXISTS(SELECT 1 FROM records WHERE case_id = ?1)"
	                        " OR EXISTS(SELECT 1 FROM case_keys WHERE case_id = ?1)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "look up case");
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0)
	             ? 0
	             : veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no case %s", case_id);
	sqlite3_finalize(st);
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

static int case_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	veld_record *r = NULL;
	json_t *item;
	int rc = row_record(&r, s, st);
	(void)payload;
	if (rc)
		return rc;
	item = case_header(r);
	json_object_set_new(item, "id", json_string(veld_record__id(r)));
	json_object_set_new(item, "records", json_integer(sqlite3_column_int64(st, 1)));
	json_object_set_new(item, "conflicts", json_integer(sqlite3_column_int64(st, 2)));
	veld_record__free(r);
	return append(arr, s, item);
}

/* A case this store holds records of but not the header (a volunteer's
** Huiswijs cases): listed by id, with the contact part's name, phone and
** postcode when it holds that (contact.c). */
static int headerless_case_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);
	json_t *item = json_pack("{s:s, s:I, s:I, s:b}", "id", id, "records", (json_int_t)sqlite3_column_int64(st, 1),
	                         "conflicts", (json_int_t)sqlite3_column_int64(st, 2), "header", 0);
	json_t *contact = veld_contact__fields(s, id);
	(void)payload;
	if (item && contact)
		json_object_update_missing(item, contact);
	json_decref(contact);
	return append(arr, s, item);
}

int veld_case_list_json(char **out, veld_store *s)
{
	json_t *arr = NULL;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	arr = json_array();
	rc = veld_store__rows_json(arr, s, "list cases", case_row, NULL,
	                           "SELECT c.state,"
	                           " (SELECT count(*) FROM records r WHERE r.case_id = c.id AND substr(r.form, 1, 1) <> '_'"
	                           " AND NOT r.deleted),"
	                           " (SELECT coalesce(sum(r.conflicts), 0) FROM records r WHERE r.case_id = c.id)"
	                           " FROM records c WHERE c.form = '" VELD_CASE_FORM "' AND NOT c.deleted ORDER BY c.id",
	                           "");
	if (!rc)
		rc = veld_store__rows_json(arr, s, "list cases", headerless_case_row, NULL,
		                           "SELECT case_id, sum(substr(form, 1, 1) <> '_'), coalesce(sum(conflicts), 0) FROM records r"
		                           " WHERE NOT deleted AND NOT EXISTS(SELECT 1 FROM records c WHERE c.id = r.case_id)"
		                           " GROUP BY case_id ORDER BY case_id",
		                           "");
	if (!rc)
		return veld_store__json_out(out, s, arr);
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
	fv = veld_record__value(r, VELD_RECORD_FORM_VERSION, &n);
	if (fv)
		json_object_set_new(view, "form_version", json_deep_copy(fv));
	return view;
}

static int record_view_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	veld_record *r = NULL;
	int rc = row_record(&r, s, st);
	(void)payload;
	if (rc)
		return rc;
	rc = append(arr, s, record_view(r));
	veld_record__free(r);
	return rc;
}

/* Records of a case (without the header), ordered by id; `with_deleted`. */
static int case_records(json_t **out, veld_store *s, const char *case_id, int with_deleted)
{
	json_t *arr = json_array();
	int rc = veld_store__rows_json(arr, s, "read records", record_view_row, NULL,
	                               "SELECT state FROM records WHERE case_id = ?1 AND substr(form, 1, 1) <> '_'"
	                               " AND (?2 OR NOT deleted) ORDER BY id",
	                               "ti", case_id, with_deleted);
	if (rc) {
		json_decref(arr);
		arr = NULL;
	}
	*out = arr;
	return rc;
}

/* The conflicts of a case's records: [{"record","field","values"}]. */
static json_t *record_conflicts(const json_t *recs)
{
	json_t *conf = json_array(), *rv, *vals;
	const char *path;
	size_t i;
	json_array_foreach(recs, i, rv)
	{
		json_object_foreach(json_object_get(rv, "conflicts"), path, vals)
		{
			json_array_append_new(conf, json_pack("{s:O, s:s, s:O}", "record", json_object_get(rv, "id"),
			                                      "field", path, "values", vals));
		}
	}
	return conf;
}

int veld_case_show_json(char **out, veld_store *s, const char *case_id)
{
	veld_record *c = NULL;
	json_t *res = NULL, *recs = NULL, *view = NULL;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	/* Without the header (a volunteer holds only the Huiswijs part of a
	** case) the case shows the records this store can read, header null. */
	rc = load_case(&c, s, case_id);
	if (rc == VELD_ENOTFOUND && case_known(s, case_id) == 0)
		rc = 0;
	if (rc || (rc = case_records(&recs, s, case_id, 0)))
		goto done;
	view = c ? veld_record__view(c) : json_pack("{s:o?, s:{}}", "fields", veld_contact__fields(s, case_id), "conflicts");
	res = json_pack("{s:s, s:O, s:O, s:o, s:O}", "id", case_id, "header", json_object_get(view, "fields"),
	                "records", recs, "conflicts", record_conflicts(recs), "header_conflicts",
	                json_object_get(view, "conflicts"));
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__finish(s, veld_store__audit(s, "open-case", case_id, NULL));
	if (!rc) {
		rc = veld_store__json_out(out, s, res);
		res = NULL; /* json_out took it */
	}
done:
	json_decref(res);
	json_decref(recs);
	json_decref(view);
	veld_record__free(c);
	return rc;
}

/* ---- records ------------------------------------------------------------------ */

/* Reject reserved ("_") and malformed paths before anything is written. */
static int check_paths(veld_err *err, json_t *flat)
{
	const char *path;
	json_t *v;
	json_object_foreach(flat, path, v)
	{
		if (!*path || path[0] == '_' || strlen(path) > 200)
			return veld_err__set(err, VELD_EINVALID, "field name '%.60s' is not allowed", path);
		if (json_is_object(v))
			return veld_err__set(err, VELD_EINVALID, "field '%s' has an object value", path);
	}
	return 0;
}

/* The case of a put: known here, and its header (when held) not deleted. */
static int check_put_case(veld_store *s, const char *case_id)
{
	veld_record *c = NULL;
	int rc = load_case(&c, s, case_id);
	if (rc == VELD_ENOTFOUND)
		rc = refuse_if_erased(s, case_id, case_known(s, case_id)); /* records or a key, no header */
	else if (!rc && veld_record__is_deleted(c))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "case %s is deleted", case_id);
	veld_record__free(c);
	if (!rc)
		veld_err__clear(veld_store__err(s));
	return rc;
}

int veld_store__put_target(veld_record **out, veld_store *s, const char *case_id, const char *form,
                           const char *record_id)
{
	veld_err *err = veld_store__err(s);
	veld_record *r = NULL;
	int rc;
	*out = NULL;
	if ((rc = check_put_case(s, case_id)) || !record_id)
		return rc;
	if (!veld_id__is(record_id))
		return veld_err__set(err, VELD_ENOTFOUND, "no record %s", record_id);
	if ((rc = veld_store__record_load(&r, s, record_id)))
		return rc;
	if (strcmp(veld_record__case(r), case_id) || strcmp(veld_record__form(r), form ? form : ""))
		rc = veld_err__set(err, VELD_EINVALID, "record %s is a %s record of another case or form", record_id,
		                   veld_record__form(r));
	else if (veld_record__is_deleted(r))
		rc = veld_err__set(err, VELD_EINVALID, "record %s is deleted", record_id);
	if (rc)
		veld_record__free(r);
	else
		*out = r;
	return rc;
}

int veld_store__record_put(char *id_out, veld_store *s, veld_record *stored, const char *case_id, const char *form,
                           json_t *flat, const char *compartment, int form_version, const char *action)
{
	veld_record *made = NULL;
	char id[VELD_IDSIZE];
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!veld_name__is_form(form))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "form name '%.60s' is not valid", form ? form : "");
	if ((rc = check_paths(veld_store__err(s), flat)))
		return rc;
	if (stored) {
		memcpy(id, veld_record__id(stored), VELD_IDSIZE);
	} else {
		veld_store__new_id(s, id);
		if (veld_record__new(&made, id, case_id, form))
			return veld_err__oom(veld_store__err(s));
	}
	if (!action)
		action = stored ? "update-record" : "create-record";
	rc = write_record(s, stored ? stored : made, flat, form_version, compartment, action, case_id, id);
	if (!rc && id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	veld_record__free(made);
	return rc;
}

/* A record named by a public call: a valid id of a stored record that is
** not a case header (VELD_ENOTFOUND, or `case_rc` with `case_msg`). */
static int load_named(veld_record **out, veld_store *s, const char *record_id, int case_rc, const char *case_msg)
{
	int rc;
	if (!veld_id__is(record_id))
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no record %s", record_id ? record_id : "(none)");
	if ((rc = veld_store__record_load(out, s, record_id)))
		return rc;
	if (case_msg && !strcmp(veld_record__form(*out), VELD_CASE_FORM)) {
		veld_record__free(*out);
		*out = NULL;
		return veld_err__set(veld_store__err(s), case_rc, "%s %s", record_id, case_msg);
	}
	return 0;
}

int veld_record_show_json(char **out, veld_store *s, const char *record_id)
{
	veld_record *r = NULL;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)) || (rc = load_named(&r, s, record_id, VELD_ENOTFOUND, "is a case, not a record")))
		return rc;
	if ((rc = veld_store__begin(s)) == 0)
		rc = veld_store__finish(s, veld_store__audit(s, "open-record", veld_record__case(r), record_id));
	if (!rc)
		rc = veld_store__json_out(out, s, record_view(r));
	veld_record__free(r);
	return rc;
}

int veld_record_delete(veld_store *s, const char *record_id)
{
	veld_record *r = NULL;
	int rc;
	if ((rc = veld_store__enter(s)) ||
	    (rc = load_named(&r, s, record_id, VELD_EINVALID, "is a case: cases are erased, not deleted")))
		return rc;
	if (veld_record__is_deleted(r))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "record %s is already deleted", record_id);
	else
		rc = write_field(s, r, VELD_RECORD_DELETED, json_true(), "delete-record", record_id);
	veld_record__free(r);
	return rc;
}

/* ---- export, conflicts, resolve ---------------------------------------------- */

/* One case of the export: its header (`c`), or when this store holds none
** (a volunteer) the contact part in its place, and its records. */
static int export_case(json_t *arr, veld_store *s, const char *case_id, const veld_record *c)
{
	json_t *recs = NULL, *view;
	int rc = case_records(&recs, s, case_id, 1);
	if (rc)
		return rc;
	view = c ? veld_record__view(c) : json_pack("{s:o?, s:{}}", "fields", veld_contact__fields(s, case_id), "conflicts");
	rc = append(arr, s,
	            json_pack("{s:s, s:b, s:O, s:O, s:o}", "id", case_id, "deleted", c && veld_record__is_deleted(c),
	                      "header", json_object_get(view, "fields"), "header_conflicts",
	                      json_object_get(view, "conflicts"), "records", recs));
	json_decref(view);
	return rc;
}

static int export_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	veld_record *c = NULL;
	int rc = row_record(&c, s, st);
	(void)payload;
	if (!rc)
		rc = export_case(arr, s, veld_record__id(c), c);
	veld_record__free(c);
	return rc;
}

static int export_headerless_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	(void)payload;
	return export_case(arr, s, (const char *)sqlite3_column_text(st, 0), NULL);
}

int veld_export_json(char **out, veld_store *s)
{
	json_t *cases;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	cases = json_array();
	rc = veld_store__rows_json(cases, s, "export", export_row, NULL,
	                           "SELECT state FROM records WHERE form = '" VELD_CASE_FORM "' ORDER BY id", "");
	if (!rc)
		rc = veld_store__rows_json(cases, s, "export", export_headerless_row, NULL,
		                           "SELECT DISTINCT case_id FROM records r WHERE NOT EXISTS(SELECT 1 FROM records c"
		                           " WHERE c.id = r.case_id) ORDER BY case_id",
		                           "");
	if (!rc && (rc = veld_store__begin(s)) == 0)
		rc = veld_store__finish(s, veld_store__audit(s, "export", NULL, NULL));
	if (!rc)
		return veld_store__json_out(out, s, json_pack("{s:i, s:o}", "format", 1, "cases", cases));
	json_decref(cases);
	return rc;
}

/* The name the registry gives device `id` (a new string), or null. */
static json_t *device_name(veld_store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	json_t *name = NULL;
	if (sqlite3_prepare_v2(veld_store__db(s), "SELECT name FROM devices WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id ? id : "", -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
			name = json_string((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	return name ? name : json_null();
}

/* The versions behind a conflict of `path`, each with its writer's name. */
static json_t *conflict_versions(veld_store *s, const veld_record *r, const char *path)
{
	json_t *vers = veld_record__conflict_versions(r, path), *e;
	size_t i;
	json_array_foreach(vers, i, e)
	{
		if (json_object_set_new(e, "device_name", device_name(s, json_string_value(json_object_get(e, "device")))))
			break;
	}
	return vers;
}

static int conflict_row(json_t *arr, veld_store *s, sqlite3_stmt *st, void *payload)
{
	veld_record *r = NULL;
	json_t *view, *vals;
	const char *path;
	int rc = row_record(&r, s, st);
	(void)payload;
	if (rc)
		return rc;
	view = veld_record__view(r);
	json_object_foreach(json_object_get(view, "conflicts"), path, vals)
	{
		if ((rc = append(arr, s,
		                 json_pack("{s:s, s:s, s:s, s:s, s:O, s:o*}", "case", veld_record__case(r), "record",
		                           veld_record__id(r), "form", veld_record__form(r), "field", path, "values", vals,
		                           "versions", conflict_versions(s, r, path)))))
			break;
	}
	json_decref(view);
	veld_record__free(r);
	return rc;
}

int veld_conflicts_json(char **out, veld_store *s)
{
	return veld_store__list_json(out, s, "list conflicts", conflict_row, NULL,
	                             "SELECT state FROM records WHERE conflicts > 0 ORDER BY case_id, id", "");
}

int veld_store__resolve(veld_record **form_rec, json_t **value, veld_store *s, const char *record_id,
                        const char *field, const char *value_json)
{
	veld_err *err = veld_store__err(s);
	json_error_t jerr;
	json_t *v = NULL, *h = NULL;
	veld_record *r = NULL;
	char today[11];
	size_t n_live = 0;
	int rc = 0, deleted = field && !strcmp(field, VELD_RECORD_DELETED);
	*form_rec = NULL;
	*value = NULL;
	if (!field || !*field || (field[0] == '_' && !deleted))
		return veld_err__set(err, VELD_EINVALID, "field '%.60s' cannot be resolved", field ? field : "");
	v = json_loads(value_json ? value_json : "", JSON_DECODE_ANY, &jerr);
	if (!v || json_is_object(v))
		rc = veld_err__set(err, VELD_EINVALID, "value for '%s' is not a JSON value", field);
	else if (deleted && !json_is_boolean(v))
		rc = veld_err__set(err, VELD_EINVALID, "'_deleted' is resolved with true or false");
	else if (!(rc = load_named(&r, s, record_id, 0, NULL)) && !deleted && !veld_record__value(r, field, &n_live))
		rc = veld_err__set(err, VELD_ENOTFOUND, "record %s has no field '%s'", record_id, field);
	if (rc || (!deleted && strcmp(veld_record__form(r), VELD_CASE_FORM))) {
		*form_rec = rc ? NULL : r; /* a form's field: the form checks it */
		*value = rc ? NULL : v;
		goto done;
	}
	/* "_deleted", or a header's field checked by the header's rules. */
	veld_store__today(today, s);
	if (!deleted && (!(h = json_object()) || json_object_set(h, field, v)))
		rc = veld_err__oom(err);
	else if (!deleted)
		rc = check_header(err, h, 0, today);
	if (!rc)
		rc = write_field(s, r, field, v, "resolve", record_id);
done:
	if (!*form_rec) {
		veld_record__free(r);
		json_decref(v);
	}
	json_decref(h);
	return rc;
}

/*
** records.c — records through their forms: the public veld_record_put,
** validation for apps, veld_resolve, the form catalogue, and bulk import.
**
** core/ stores records without knowing forms; this file puts the form's
** rules in front of it.  A put is validated against the record as it will
** be (the fields it has, with the new ones applied), with every failing
** field reported at once; the form's computed values are stored with it;
** the record remembers the form version ("_form_version") and is sealed
** with the key of the form's compartment.  A rejected put changes nothing.
**
** A put, a validation, every line of an import and the resolve of a
** form's field take one path (check_put): core checks what the put names
** and loads the stored record once (veld_store__put_target; a resolve,
** veld_store__resolve), the form checks the record as it will be, and
** core writes the parsed, flattened fields into that same record
** (veld_store__record_put).  Nothing crosses into core/ as text.  This file
** must not write records itself, nor know how they are stored.
**
** Forms come from the library (the shipped forms) or from the office,
** which publishes new versions through sync (publish.c): a put uses the
** newest version held.  Loaded forms are cached on the store handle (its
** scripts slot) by name and version, so a put does not load its form
** again.  The office checks what devices write with the same engine
** (veld_form_validate_merged): the version each record was written with.
*/
#include "scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORM_CACHE 16

typedef struct formcache {
	veld_form *forms[FORM_CACHE];
	json_t *schema[FORM_CACHE]; /* each form's schema: its computed values, its renamed fields */
	size_t n;
} formcache;

static void cache_destroy(void *p)
{
	formcache *fc = p;
	size_t i;
	for (i = 0; i < fc->n; i++) {
		veld_form__free(fc->forms[i]);
		json_decref(fc->schema[i]);
	}
	free(fc);
}

/* The handle's form cache (made on first use); NULL when out of memory. */
static formcache *cache_of(veld_store *s)
{
	formcache *fc = veld_store__slot(s, VELD_STORE_SLOT_SCRIPTS);
	if (!fc && (fc = calloc(1, sizeof *fc)))
		veld_store__set_slot(s, VELD_STORE_SLOT_SCRIPTS, fc, cache_destroy);
	return fc;
}

/* The cached form `name` of `version`, or with version 0 the newest one
** cached, if it is as new as the newest published version; NULL if none. */
static veld_form *cache_find(formcache *fc, veld_store *s, const char *name, int version)
{
	veld_form *best = NULL;
	size_t i;
	for (i = 0; i < fc->n; i++)
		if (!strcmp(veld_form__name(fc->forms[i]), name) &&
		    (version ? veld_form__version(fc->forms[i]) == version
		             : !best || veld_form__version(fc->forms[i]) > veld_form__version(best)))
			best = fc->forms[i];
	if (best && !version && veld_published__newest(s, VELD_SCRIPT_FORM, name, 0) > veld_form__version(best))
		return NULL; /* a newer version arrived */
	return best;
}

/* Keep `f` in the cache (the oldest entry leaves a full one). */
static void cache_add(formcache *fc, veld_form *f)
{
	char *schema = NULL;
	if (fc->n == FORM_CACHE) {
		veld_form__free(fc->forms[0]);
		json_decref(fc->schema[0]);
		memmove(fc->forms, fc->forms + 1, (FORM_CACHE - 1) * sizeof fc->forms[0]);
		memmove(fc->schema, fc->schema + 1, (FORM_CACHE - 1) * sizeof fc->schema[0]);
		fc->n--;
	}
	fc->schema[fc->n] = veld_form__schema_json(&schema, f) == 0 ? json_loads(schema, 0, NULL) : NULL;
	free(schema);
	fc->forms[fc->n++] = f;
}

int veld_form__get(veld_form **out, veld_store *s, const char *name, int version, veld_err *err)
{
	formcache *fc = cache_of(s);
	int rc;
	*out = NULL;
	if (!fc)
		return veld_err__oom(err);
	if ((*out = cache_find(fc, s, name, version)))
		return 0;
	if ((rc = veld_form__load_held(out, s, name, version, err)))
		return rc;
	cache_add(fc, *out);
	return 0;
}

/* The newest form `name` this store holds (VELD_EINVALID naming it when
** unknown). */
static int form_get(veld_form **out, veld_store *s, const char *name)
{
	veld_err *err = veld_store__err(s);
	int rc = veld_form__get(out, s, name, 0, err);
	if (rc == VELD_ENOTFOUND)
		return veld_err__set(err, VELD_EINVALID, "unknown form '%.60s' (see `veld form list`)", name);
	return rc;
}

/* What the schema of a cached form says under `key` (borrowed; may be
** NULL): "computed", the names of its computed values; "renamed", its
** renamed fields [{"version","from","to"}]. */
static json_t *schema_of(formcache *fc, const veld_form *f, const char *key)
{
	size_t i;
	for (i = 0; fc && i < fc->n; i++) /* no cache: out of memory, the caller fails later */
		if (fc->forms[i] == f)
			return json_object_get(fc->schema[i], key);
	return NULL;
}

/* 1 if path `k` is a computed value of the form (NAME or NAME.*), one of
** `names`. */
static int is_computed(const char *k, const json_t *names)
{
	json_t *name;
	size_t i;
	json_array_foreach(names, i, name)
	{
		const char *nm = json_string_value(name);
		size_t n = nm ? strlen(nm) : 0;
		if (n && !strncmp(k, nm, n) && (k[n] == '\0' || k[n] == '.'))
			return 1;
	}
	return 0;
}

/* Drop the stored computed values from a record before it is checked: the
** form computes them again; they are not input. */
static void strip_computed(json_t *fields, const json_t *names)
{
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(fields, tmp, k, v)
	{
		if (is_computed(k, names))
			json_object_del(fields, k);
	}
}

/* Shown fields of a stored record (new reference), or an empty object
** for a new record. */
static json_t *shown_fields(const veld_record *r)
{
	json_t *view = r ? veld_record__view(r) : NULL;
	json_t *fields = view ? json_incref(json_object_get(view, "fields")) : NULL;
	json_decref(view);
	return fields ? fields : json_object();
}

static const char *date_of(const json_t *fields)
{
	const char *d = json_string_value(json_object_get(fields, "afnamedatum"));
	return d ? d : json_string_value(json_object_get(fields, "datum"));
}

/* The shown fields of the record of `form` in the case that comes last
** before `fields` by date (afnamedatum, else datum), or NULL.  SQLite reads
** each candidate's shown date; only the one chosen is parsed. */
static json_t *previous_record(veld_store *s, const char *case_id, const char *form, const char *record_id,
                               const json_t *fields)
{
	sqlite3_stmt *st = NULL;
	const char *mine = date_of(fields);
	char *best_state = NULL, best_date[64] = "";
	size_t best_len = 0;
	json_t *best = NULL;
	if (sqlite3_prepare_v2(veld_store__db(s),
	                       "SELECT state, coalesce(state ->> '$.fields.\"afnamedatum\"[#-1].v',"
	                       " state ->> '$.fields.\"datum\"[#-1].v') FROM records"
	                       " WHERE case_id = ?1 AND form = ?2 AND id <> ?3 AND NOT deleted",
	                       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, form, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, record_id ? record_id : "", -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		char *copy;
		if (sqlite3_column_type(st, 1) != SQLITE_TEXT || !d || strlen(d) >= sizeof best_date)
			continue;
		if ((mine && strcmp(d, mine) >= 0) || (best_date[0] && strcmp(d, best_date) <= 0))
			continue;
		if (!(copy = malloc(n + 1)))
			break;
		memcpy(copy, sqlite3_column_text(st, 0), n + 1);
		free(best_state);
		best_state = copy;
		best_len = n;
		snprintf(best_date, sizeof best_date, "%s", d);
	}
	sqlite3_finalize(st);
	if (best_state) {
		veld_record *r = NULL;
		veld_err e;
		if (veld_record__parse(&r, best_state, best_len, &e) == VELD_OK) {
			json_t *view = veld_record__view(r);
			best = json_incref(json_object_get(view, "fields"));
			json_decref(view);
		}
		veld_record__free(r);
		free(best_state);
	}
	return best;
}

/* Parse the caller's fields: a JSON object, VELD_EINVALID with a message. */
static int parse_fields(json_t **out, veld_store *s, const char *fields_json)
{
	json_error_t jerr;
	json_t *j = json_loads(fields_json ? fields_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	*out = NULL;
	if (!j && veld_err__json_oom(veld_store__err(s), &jerr))
		return VELD_ERROR;
	if (!json_is_object(j)) {
		json_decref(j);
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "fields are not a JSON object: %s (line %d)",
		                     jerr.text, jerr.line);
	}
	*out = j;
	return 0;
}

/* Join the engine's error list into one line for the handle. */
static int rejected(veld_store *s, const json_t *arr)
{
	json_t *e;
	char msg[sizeof veld_store__err(s)->msg], q[VELD_ECHO_BUF];
	size_t i, used;
	used = (size_t)snprintf(msg, sizeof msg, "%zu field(s) rejected:", json_array_size(arr));
	json_array_foreach(arr, i, e)
	{
		/* the path may be one the form does not know: quoted, cut */
		if (used < sizeof msg)
			used += (size_t)snprintf(msg + used, sizeof msg - used, "%s %s: %s", i ? ";" : "",
			                         veld_sandbox__echo(q, json_string_value(json_object_get(e, "field"))),
			                         json_string_value(json_object_get(e, "message")));
	}
	return veld_err__set(veld_store__err(s), VELD_EINVALID, "%s", msg);
}

/* A put as it is checked and then written: what it names, its form, and
** the flat fields to store (the caller's plus the form's computed values). */
typedef struct put {
	veld_form *form;     /* cached on the handle */
	veld_record *stored; /* the record updated, NULL for a new one */
	json_t *flat;
} put;

static void put_clear(put *p)
{
	veld_record__free(p->stored);
	json_decref(p->flat);
	memset(p, 0, sizeof *p);
}

/* The engine's verdict as the caller wants it: the list in *errors, or one
** line on the handle. */
static int verdict(char **errors, veld_store *s, veld_form *form, const char *form_name, int rc, json_t *errs)
{
	if (rc == VELD_EINVALID && errs) {
		if (!errors)
			return rejected(s, errs);
		*errors = json_dumps(errs, JSON_COMPACT | JSON_PRESERVE_ORDER);
		return veld_err__set(veld_store__err(s), *errors ? VELD_EINVALID : VELD_ERROR,
		                     *errors ? "record rejected by form %s" : "out of memory", form_name);
	}
	if (rc)
		return veld_err__set(veld_store__err(s), rc == VELD_EINVALID ? VELD_EINVALID : VELD_ERROR, "form %s: %s",
		                     form_name, veld_form__errmsg(form));
	if (errors && !(*errors = strdup("[]")))
		return veld_err__oom(veld_store__err(s));
	return 0;
}

/* What the form's rules see besides the record: today's date, and the
** previous record of the form in the case when the form asks for it. */
static json_t *rule_context(veld_store *s, const veld_form *form, const char *case_id, const char *form_name,
                            const char *record_id, const json_t *merged)
{
	char today[11];
	json_t *ctx, *prev;
	veld_store__today(today, s);
	ctx = json_pack("{s:s}", "vandaag", today);
	prev = veld_form__previous(form) ? previous_record(s, case_id, form_name, record_id, merged) : NULL;
	if (prev)
		json_object_set_new(ctx, "vorige", prev);
	return ctx;
}

/* A record written with an older version of the form, edited with this
** one: the fields renamed since (form { renamed = ... }: docs/forms.md)
** move to their new names, in `stored` (what the form reads) and in
** p->flat (what the put writes: the old path cleared, the value written
** at the new one unless the put or the record gives it). */
static int upgrade(put *p, formcache *fc, veld_store *s, json_t *stored)
{
	size_t n, i;
	const json_t *ver = veld_record__value(p->stored, VELD_RECORD_FORM_VERSION, &n);
	json_int_t from = json_is_integer(ver) ? json_integer_value(ver) : 0;
	json_t *e, *snap = NULL, *v;
	const char *k;
	int rc = 0;
	json_array_foreach(schema_of(fc, p->form, "renamed"), i, e)
	{
		const char *old = json_string_value(json_object_get(e, "from")), *to = json_string_value(json_object_get(e, "to"));
		size_t ol = old ? strlen(old) : 0;
		if (!old || !to || json_integer_value(json_object_get(e, "version")) <= from)
			continue;
		json_decref(snap);
		if (!(snap = json_copy(stored)))
			return veld_err__oom(veld_store__err(s));
		json_object_foreach(snap, k, v)
		{
			char path[512]; /* above any path a record holds (256 bytes, records.md) */
			if (strncmp(k, old, ol) || (k[ol] && k[ol] != '.') ||
			    (size_t)snprintf(path, sizeof path, "%s%s", to, k + ol) >= sizeof path)
				continue;
			if ((!json_object_get(p->flat, k) && json_object_set_new(p->flat, k, json_null())) ||
			    (!json_object_get(p->flat, path) && !json_object_get(stored, path) && json_object_set(p->flat, path, v)) ||
			    (!json_object_get(stored, path) && json_object_set(stored, path, v)) || json_object_del(stored, k))
				rc = veld_err__oom(veld_store__err(s));
		}
	}
	json_decref(snap);
	return rc;
}

/*
** Check a put: what it names (once, through core), then the record as it
** will be (the stored record's shown fields with `fields` applied) by the
** form, which also refuses a value the put gives a field that is hidden in
** that record.  `fields` is the caller's object, borrowed.  A resolve
** loads the record itself (p->stored set: core checked what it names).  On
** success p->flat holds what to store (the caller's fields plus the
** computed values that changed or are in conflict); `errors` NULL: a put,
** whose failure is one line on the handle; otherwise validation only,
** *errors receiving the engine's list.
*/
static int check_put(put *p, char **errors, formcache *fc, veld_store *s, const char *case_id, const char *form_name,
                     const char *record_id, json_t *fields)
{
	json_t *merged = NULL, *stored = NULL, *ctx = NULL, *computed = NULL, *errs = NULL, *merged_flat;
	const char *k;
	json_t *v;
	int rc;
	/* The case first: "no such case" says more than the rules would. */
	if ((!p->stored && (rc = veld_store__put_target(&p->stored, s, case_id, form_name, record_id))) ||
	    (rc = form_get(&p->form, s, form_name)))
		goto done;
	if (!(p->flat = veld_record__flatten(fields))) {
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID,
		                   "fields cannot be flattened (an empty or dotted group key)");
		goto done;
	}
	stored = shown_fields(p->stored);
	if (p->stored && (rc = upgrade(p, fc, s, stored)))
		goto done;
	merged = json_deep_copy(stored);
	strip_computed(merged, schema_of(fc, p->form, "computed"));
	json_object_foreach(p->flat, k, v)
	{
		if (json_is_null(v))
			json_object_del(merged, k);
		else
			json_object_set(merged, k, v);
	}
	ctx = rule_context(s, p->form, case_id, form_name, record_id, merged);
	/* Validation and the computed values in one pass over the record. */
	rc = veld_form__check_put(&errs, errors ? NULL : &computed, p->form, merged, ctx, p->flat);
	if ((rc = verdict(errors, s, p->form, form_name, rc, errs)) || errors)
		goto done;
	/* One encoding per value: an int field's 45.0 is stored as 45. */
	if (veld_form__canonical(p->form, p->flat)) {
		rc = veld_err__oom(veld_store__err(s));
		goto done;
	}
	/* Computed values are stored with the record, as fields; one in
	** conflict is settled by writing what the form computes now. */
	if (!computed) {
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "form %s: %s", form_name, veld_form__errmsg(p->form));
		goto done;
	}
	json_object_foreach(computed, k, v)
	{
		size_t live = 0;
		if (p->stored)
			veld_record__value(p->stored, k, &live);
		if ((live > 1 || !json_equal(v, json_object_get(stored, k))) && json_object_set(p->flat, k, v)) {
			rc = veld_err__oom(veld_store__err(s));
			goto done;
		}
	}
	/* A computed value may be a group ({"domain": change, ...}): stored as
	** its paths, like the caller's groups. */
	merged_flat = veld_record__flatten(p->flat);
	json_decref(p->flat);
	if (!(p->flat = merged_flat))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID,
		                   "fields cannot be flattened (empty or dotted group key)");
done:
	json_decref(merged);
	json_decref(stored);
	json_decref(ctx);
	json_decref(computed);
	json_decref(errs);
	return rc;
}

/* A put of parsed fields (borrowed): checked by the form, then written by
** core with what the check loaded. */
static int put_one(char *id_out, formcache *fc, veld_store *s, const char *case_id, const char *form_name,
                   const char *record_id, json_t *fields)
{
	put p = {NULL, NULL, NULL};
	int rc = check_put(&p, NULL, fc, s, case_id, form_name, record_id, fields);
	if (!rc)
		rc = veld_store__record_put(id_out, s, p.stored, case_id, form_name, p.flat, veld_form__compartment(p.form),
		                            veld_form__version(p.form), NULL);
	put_clear(&p);
	return rc;
}

int veld_record_put(char *id_out, veld_store *s, const char *case_id, const char *form, const char *record_id,
                    const char *fields_json)
{
	json_t *fields = NULL;
	int rc;
	if ((rc = veld_store__enter(s)) || (rc = parse_fields(&fields, s, fields_json)))
		return rc;
	rc = put_one(id_out, cache_of(s), s, case_id, form, record_id, fields);
	json_decref(fields);
	return rc;
}

int veld_record_validate_json(char **errors_json, veld_store *s, const char *case_id, const char *form,
                              const char *record_id, const char *fields_json)
{
	put p = {NULL, NULL, NULL};
	json_t *fields = NULL;
	int rc;
	*errors_json = NULL;
	if ((rc = veld_store__enter(s)) || (rc = parse_fields(&fields, s, fields_json)))
		return rc;
	rc = check_put(&p, errors_json, cache_of(s), s, case_id, form, record_id, fields);
	put_clear(&p);
	json_decref(fields);
	return rc;
}

/* A resolve of field `field` of form record `r` (taken) with `v` (taken):
** checked by the form like a put of that one field, then written over
** every value held. */
static int resolve_field(formcache *fc, veld_store *s, veld_record *r, const char *field, json_t *v)
{
	put p = {NULL, r, NULL};
	json_t *fields = json_object();
	char case_id[VELD_IDSIZE], id[VELD_IDSIZE], form[VELD_FORM_NAME_MAX + 1];
	int rc;
	snprintf(case_id, sizeof case_id, "%s", veld_record__case(r));
	snprintf(id, sizeof id, "%s", veld_record__id(r));
	snprintf(form, sizeof form, "%s", veld_record__form(r));
	if (!fields || json_object_set(fields, field, v))
		rc = veld_err__oom(veld_store__err(s));
	else if (!(rc = form_get(&p.form, s, form)) && is_computed(field, schema_of(fc, p.form, "computed")))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID,
		                   "field '%.60s' is computed by form %s: a change of the record computes it again", field,
		                   form);
	if (!rc)
		rc = check_put(&p, NULL, fc, s, case_id, form, id, fields);
	if (!rc)
		rc = veld_store__record_put(NULL, s, p.stored, case_id, form, p.flat, veld_form__compartment(p.form),
		                            veld_form__version(p.form), "resolve");
	put_clear(&p);
	json_decref(fields);
	json_decref(v);
	return rc;
}

int veld_resolve(veld_store *s, const char *record_id, const char *field, const char *value_json)
{
	veld_record *r = NULL;
	json_t *v = NULL;
	int rc;
	if ((rc = veld_store__enter(s)) || (rc = veld_store__resolve(&r, &v, s, record_id, field, value_json)) || !r)
		return rc;
	return resolve_field(cache_of(s), s, r, field, v);
}

/* ---- the office's check of a record that arrived ------------------------------- */

/* A record of a form version this store does not hold: its texts within
** the bound every text has (VELD_TEXT_MAX characters).  1 if one is over. */
static int text_over(const json_t *fields)
{
	const char *k, *p;
	json_t *v;
	json_object_foreach((json_t *)fields, k, v)
	{
		size_t chars = 0;
		for (p = json_string_value(v); p && *p; p++)
			chars += ((unsigned char)*p & 0xC0) != 0x80;
		if (chars > VELD_TEXT_MAX)
			return 1;
	}
	return 0;
}

/* The verdict on a record's shown fields `fields` (taken) by form `name`
** of `version` (0: the newest), as one line in `why`. */
static int check_merged(char *why, size_t cap, veld_store *s, const veld_record *r, const char *name, int version,
                        json_t *fields)
{
	veld_form *f = NULL;
	json_t *ctx = NULL, *errs = NULL, *first;
	veld_err e;
	int rc;
	memset(&e, 0, sizeof e);
	rc = veld_form__get(&f, s, name, version, &e);
	if (rc == VELD_ENOTFOUND && version > 0 && veld_form__get(&f, s, name, 0, &e) == 0) {
		/* not held here: the bounds alone */
		rc = text_over(fields) ? VELD_EINVALID : 0;
		snprintf(why, cap, "record %s: a text passes %d characters", veld_record__id(r), VELD_TEXT_MAX);
		goto done;
	}
	if (rc) {
		snprintf(why, cap, "record %s: %s", veld_record__id(r), e.msg);
		goto done;
	}
	strip_computed(fields, schema_of(cache_of(s), f, "computed"));
	if (version > 0)
		json_object_set_new(fields, VELD_RECORD_FORM_VERSION, json_integer(version));
	ctx = rule_context(s, f, veld_record__case(r), name, veld_record__id(r), fields);
	rc = veld_form__validate_json(&errs, f, fields, ctx);
	first = json_array_get(errs, 0);
	if (rc == VELD_EINVALID && json_is_string(json_object_get(first, "field")) &&
	    json_is_string(json_object_get(first, "message")))
		snprintf(why, cap, "record %s: form %s version %d: %zu field(s) rejected: %.60s: %.200s", veld_record__id(r),
		         name, veld_form__version(f), json_array_size(errs), json_string_value(json_object_get(first, "field")),
		         json_string_value(json_object_get(first, "message")));
	else if (rc)
		snprintf(why, cap, "record %s: form %s: %s", veld_record__id(r), name, veld_form__errmsg(f));
done:
	json_decref(fields);
	json_decref(ctx);
	json_decref(errs);
	return rc;
}

int veld_form_validate_merged(char *why, size_t why_cap, veld_store *s, const char *record_json, size_t len,
                              const char *form, int form_version, void *payload)
{
	veld_record *r = NULL;
	veld_err e;
	char none[1];
	int rc = 0;
	(void)payload;
	if (!why || !why_cap) {
		why = none;
		why_cap = sizeof none;
	}
	why[0] = '\0';
	memset(&e, 0, sizeof e);
	if (!s || !record_json || !form)
		rc = VELD_EINVALID;
	else if (len > VELD_RECORD_MAX) {
		snprintf(why, why_cap, "the record passes %zu KiB", VELD_RECORD_MAX >> 10);
		rc = VELD_EINVALID;
	} else if (veld_record__parse(&r, record_json, len, &e)) {
		snprintf(why, why_cap, "the record does not parse: %s", e.msg);
		rc = VELD_EINVALID;
	} else if (form[0] != '_' && !veld_record__is_deleted(r)) /* the store's own (header, contact part): core checks them */
		rc = check_merged(why, why_cap, s, r, form, form_version, shown_fields(r));
	veld_record__free(r);
	return rc;
}

/* ---- the form catalogue -------------------------------------------------------- */

int veld_form_schema_json(char **out, veld_store *s, const char *form)
{
	veld_form *f = NULL;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	rc = form_get(&f, s, form ? form : "");
	if (rc == VELD_EINVALID)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "unknown form '%.60s'", form ? form : "");
	if (!rc && veld_form__schema_json(out, f))
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "form %s: %s", form, veld_form__errmsg(f));
	return rc;
}

int veld_form_check(char **out, const char *path)
{
	veld_form *f = NULL;
	veld_err err;
	int rc;
	memset(&err, 0, sizeof err);
	*out = NULL;
	rc = veld_form__load_file(&f, NULL, path ? path : "", NULL, &err);
	if (!rc && veld_form__schema_json(out, f))
		rc = veld_err__set(&err, VELD_ERROR, "%s", veld_form__errmsg(f));
	if (rc)
		*out = strdup(err.msg[0] ? err.msg : "cannot load the form");
	veld_form__free(f);
	return rc;
}

/* ---- import ----------------------------------------------------------------- */

/* Prefix the handle's message with the line it is about.  The message is
** copied first: formatted into itself it would repeat the prefix. */
static int at_line(veld_err *err, int rc, long line)
{
	char msg[sizeof err->msg];
	memcpy(msg, err->msg, sizeof msg);
	return veld_err__set(err, rc, "line %ld: %s", line, msg);
}

/* Find or make the case of an import line: an id, or {"ref","name","postcode"}. */
static int import_case(char *case_id, veld_store *s, json_t *c, json_t *refs, long line)
{
	veld_err *err = veld_store__err(s);
	const char *ref;
	json_t *known;
	char *txt;
	int rc;
	if (json_is_string(c)) {
		/* Checked whole: a longer id cut to 32 digits would name another case. */
		if (!veld_id__is(json_string_value(c)))
			return veld_err__set(err, VELD_EINVALID, "line %ld: \"case\" is not a case id (32 lowercase hex digits)",
			                     line);
		memcpy(case_id, json_string_value(c), VELD_IDSIZE);
		return 0;
	}
	if (!json_is_object(c) || !(ref = json_string_value(json_object_get(c, "ref"))))
		return veld_err__set(err, VELD_EINVALID, "line %ld: \"case\" must be a case id or {\"ref\": ...}", line);
	known = json_object_get(refs, ref);
	if (known) {
		snprintf(case_id, VELD_IDSIZE, "%s", json_string_value(known));
		return 0;
	}
	if (!json_is_string(json_object_get(c, "name")) || !json_is_string(json_object_get(c, "postcode")))
		return veld_err__set(err, VELD_EINVALID, "line %ld: the first line of a ref needs \"name\" and \"postcode\"", line);
	if (!(txt = json_dumps(c, JSON_COMPACT)))
		return veld_err__oom(err);
	rc = veld_case_new(case_id, s, txt);
	free(txt);
	if (rc)
		return at_line(err, rc, line);
	if (json_object_set_new(refs, ref, json_string(case_id)))
		return veld_err__oom(err);
	return 0;
}

/* Store one line of an import (`n` bytes at `p`, without its newline). */
static int import_line(formcache *fc, veld_store *s, json_t *refs, const char *p, size_t n, long line)
{
	veld_err *err = veld_store__err(s);
	json_error_t jerr;
	json_t *obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr), *fields;
	const char *form;
	char case_id[VELD_IDSIZE];
	int rc;
	if (!obj && (rc = veld_err__json_oom(err, &jerr)))
		goto done;
	if (!json_is_object(obj)) {
		rc = veld_err__set(err, VELD_EINVALID, "line %ld: not a JSON object (%s)", line, jerr.text);
		goto done;
	}
	form = json_string_value(json_object_get(obj, "form"));
	fields = json_object_get(obj, "fields");
	if (!form || !json_is_object(fields))
		rc = veld_err__set(err, VELD_EINVALID, "line %ld: needs \"form\" and a \"fields\" object", line);
	else if (!(rc = import_case(case_id, s, json_object_get(obj, "case"), refs, line)) &&
	         (rc = put_one(NULL, fc, s, case_id, form, NULL, fields)))
		/* A line naming a case or record the store does not hold is bad
		** input, like any other bad line (exit 5, not 1). */
		rc = at_line(err, rc == VELD_ENOTFOUND ? VELD_EINVALID : rc, line);
done:
	json_decref(obj);
	return rc;
}

/* Lines of `len` bytes of text, the last one with or without its newline. */
static long count_lines(const char *text, size_t len)
{
	long total = len && text[len - 1] != '\n';
	const char *q;
	for (q = text; q < text + len; q++)
		total += *q == '\n';
	return total;
}

int veld_import(long *count, veld_store *s, const char *jsonl, size_t len,
                int (*progress)(long done, long total, void *payload), void *payload)
{
	formcache *fc;
	json_t *refs = NULL;
	const char *p = jsonl, *end = jsonl + len;
	long line = 0, total = count_lines(jsonl, len), done = 0;
	int rc;
	if (count)
		*count = 0;
	if ((rc = veld_store__enter(s)))
		return rc;
	fc = cache_of(s);
	if (!(refs = json_object()))
		return veld_err__oom(veld_store__err(s));
	/* One transaction around everything: all lines or none. */
	if ((rc = veld_store__begin(s)))
		goto out;
	while (!rc && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		line++;
		if (n == 0 || (n == 1 && p[0] == '\r')) {
			p += n + 1;
			continue;
		}
		rc = import_line(fc, s, refs, p, n, line);
		p += n + 1;
		done++;
		if (!rc && progress && (done % 1000 == 0 || p >= end) && progress(done, total, payload))
			rc = veld_err__set(veld_store__err(s), VELD_ECANCELED, "import canceled after line %ld", line);
	}
	if (!rc)
		rc = veld_store__audit(s, "import", NULL, NULL);
	rc = veld_store__finish(s, rc);
	if (!rc && count)
		*count = done;
out:
	json_decref(refs);
	return rc;
}

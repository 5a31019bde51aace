/*
** record_json.c — a record state as bytes: the canonical encoding, the strict
** parse, and the checks of paths, values and form names.
**
** What it is for.  A state (record.c explains the model) is stored in the
** local database and synced, sealed, through git as its canonical JSON; the
** bytes must be a function of the state alone, and a state from another
** device must be refused before anything merges it.  The checks that decide
** what a path, a value and a record's form may be live here too: local
** writes (record.c) apply them, flatten applies them to a client's fields,
** and the parse applies them to every version it reads.
**
** Canonical serialisation (veld_record__canonical).  jansson with
** JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17): keys sorted
** bytewise, no whitespace, UTF-8 written as is (only '"', '\\' and control
** characters are escaped), integers as integers, reals with 17 significant
** digits ("%.17g", which round-trips every double; an integral real keeps
** ".0").  Versions are sorted by stamp, ascending.  Every state the record
** files build is kept in that shape, so equal states give equal bytes,
** whatever the operations that led to them.  Fixed vectors: tests/resources/record-*.
**
** Parsing (veld_record__parse) is strict, because states arrive from other
** devices: exact key sets, types and ranges, device ids of 32 lowercase hex
** digits, non-empty version lists, no two versions with one stamp or from
** one device in a path, every stamp and every "k" covered by ctx, "k" on and
** only on deleting versions.  Any of these fails with VELD_EINTEGRITY and a
** message that names the place, never a value.  Input order is free; the
** result is re-canonicalised.
**
** What it must not do: quote a value or the input in a message (states
** hold personal data), or hand out a state it has not checked whole.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define VELD_RECORD_PATH_MAX  256 /* bytes */
#define VELD_RECORD_DEPTH_MAX 16  /* nesting of groups in flatten's input */

/* ---- paths, values, forms ------------------------------------------------ */

/* A record's form: a form name, the store's case header or its contact part. */
int veld_record__is_form(const char *s)
{
	return veld_name__is_form(s) || (s && (!strcmp(s, VELD_CASE_FORM) || !strcmp(s, VELD_CONTACT_FORM)));
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int rec_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k, len;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += len;
	}
	return 1;
}

/* '.'-separated non-empty segments, no control characters, UTF-8. */
static int rec_segments_ok(const char *p, size_t n)
{
	size_t i, seg = 0;
	if (n == 0 || n > VELD_RECORD_PATH_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == '.') {
			if (seg == 0)
				return 0;
			seg = 0;
		} else {
			seg++;
		}
	}
	return seg > 0 && rec_utf8_ok((const unsigned char *)p, n);
}

/* A path a record may hold: well formed, and '_' only for our registers. */
int veld_record__path_ok(const char *p)
{
	if (!p)
		return 0;
	if (p[0] == '_')
		return !strcmp(p, VELD_RECORD_DELETED) || !strcmp(p, VELD_RECORD_FORM_VERSION);
	return rec_segments_ok(p, strlen(p));
}

static int rec_is_scalar(const json_t *v)
{
	return json_is_null(v) || json_is_boolean(v) || json_is_number(v) || json_is_string(v);
}

/* A field value: a scalar or an array of scalars. */
int veld_record__value_ok(const json_t *v)
{
	size_t i;
	const json_t *e;
	if (rec_is_scalar(v))
		return 1;
	if (!json_is_array(v))
		return 0;
	json_array_foreach(v, i, e)
	{
		if (!rec_is_scalar(e))
			return 0;
	}
	return 1;
}

/* ---- flatten ------------------------------------------------------------------- */

static int rec_flatten_into(json_t *out, const char *prefix, const json_t *obj, int depth)
{
	const char *key;
	json_t *v;
	char *full = NULL;
	int rc = 0;
	if (depth > VELD_RECORD_DEPTH_MAX)
		return VELD_EINVALID;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t np = prefix ? strlen(prefix) + 1 : 0, nk = strlen(key);
		/* Top-level keys may be dotted paths; a group key or item id is
		** one segment. */
		if (!rec_segments_ok(key, nk) || np + nk > VELD_RECORD_PATH_MAX ||
		    (prefix && memchr(key, '.', nk))) {
			rc = VELD_EINVALID;
			goto done;
		}
		full = malloc(np + nk + 1);
		if (!full) {
			rc = VELD_ERROR;
			goto done;
		}
		if (prefix) {
			memcpy(full, prefix, np - 1);
			full[np - 1] = '.';
		}
		memcpy(full + np, key, nk + 1);
		if (json_is_object(v)) {
			if (json_object_size(v) == 0) { /* a group with nothing in it */
				rc = VELD_EINVALID;
				goto done;
			}
			if ((rc = rec_flatten_into(out, full, v, depth + 1)))
				goto done;
		} else {
			if (!veld_record__value_ok(v) || json_object_get(out, full)) {
				rc = VELD_EINVALID;
				goto done;
			}
			if (json_object_set_new(out, full, json_deep_copy(v))) {
				rc = VELD_ERROR;
				goto done;
			}
		}
		free(full);
		full = NULL;
	}
done:
	free(full);
	return rc;
}

json_t *veld_record__flatten(const json_t *fields)
{
	json_t *out;
	if (!json_is_object(fields))
		return NULL;
	out = json_object();
	if (out && rec_flatten_into(out, NULL, fields, 0)) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/* ---- canonical bytes ------------------------------------------------------------ */

char *veld_record__canonical(const veld_record *r)
{
	return json_dumps(veld_record__state(r), VELD_RECORD_CANON_FLAGS);
}

/* ---- parsing -------------------------------------------------------------------- */

typedef struct rec_sorted {
	veld_stamp s;
	json_t *v;
} rec_sorted;

static int rec_sorted_cmp(const void *a, const void *b)
{
	return veld_stamp__cmp(&((const rec_sorted *)a)->s, &((const rec_sorted *)b)->s);
}

/* An object has exactly the keys listed (NULL-terminated), `opt` optional. */
static int rec_has_keys(const json_t *o, const char *const *keys, const char *opt)
{
	size_t n = 0;
	if (!json_is_object(o))
		return 0;
	for (; *keys; keys++, n++) {
		if (!json_object_get(o, *keys))
			return 0;
	}
	if (opt && json_object_get(o, opt))
		n++;
	return json_object_size(o) == n;
}

/* A context: {"<device>":[wall,counter]}.  `within` (if not NULL) must
** cover every entry. */
static int rec_check_ctx(const json_t *ctx, const json_t *within, const char *what,
                         const char *path, veld_err *err)
{
	const char *dev;
	json_t *e;
	if (!json_is_object(ctx))
		return veld_err__set(err, VELD_EINTEGRITY, "record state: %s of '%.80s' is not an object", what,
		                     path);
	json_object_foreach((json_t *)ctx, dev, e)
	{
		json_t *full;
		veld_stamp s;
		int rc;
		if (!json_is_array(e) || json_array_size(e) != 2)
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' has an entry that is not [wall, counter]",
			                     what, path);
		full = json_pack("[OOs]", json_array_get(e, 0), json_array_get(e, 1), dev);
		if (!full) /* e holds two values and dev is a key: out of memory */
			return veld_err__oom(err);
		rc = veld_stamp__from_json(&s, full);
		json_decref(full);
		if (rc)
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' has a malformed entry (device id of 32 "
			                     "lowercase hex digits, wall 0..2^53-1, counter 0..2^32-1)",
			                     what, path);
		if (within && !veld_record__covers(within, &s))
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' is ahead of the record's context", what,
			                     path);
	}
	return 0;
}

/* Check version `i` of `path` (`v`, in a list under context `ctx`) and
** read its stamp into `*stamp`. */
static int rec_check_version(veld_stamp *stamp, const char *path, size_t i, const json_t *v,
                             const json_t *ctx, veld_err *err)
{
	static const char *const keys[] = {"s", "v", NULL};
	int is_del = !strcmp(path, VELD_RECORD_DELETED);
	const json_t *val, *k;
	if (!rec_has_keys(v, keys, is_del ? "k" : NULL))
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "record state: version %zu of '%.80s' must be an object with exactly "
		                     "\"s\" and \"v\"%s",
		                     i, path, is_del ? " (and \"k\" when deleting)" : "");
	if (veld_stamp__from_json(stamp, json_object_get(v, "s")))
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "record state: version %zu of '%.80s' has a malformed stamp (want "
		                     "[wall, counter, \"32 lowercase hex digits\"])",
		                     i, path);
	if (!veld_record__covers(ctx, stamp))
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "record state: version %zu of '%.80s' is not covered by the record's "
		                     "context",
		                     i, path);
	val = json_object_get(v, "v");
	if (!veld_record__value_ok(val) || (is_del && !json_is_boolean(val)))
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "record state: version %zu of '%.80s' has a value of the wrong type", i,
		                     path);
	k = json_object_get(v, "k");
	if (is_del && json_is_true(val) != (k != NULL))
		return veld_err__set(err, VELD_EINTEGRITY,
		                     "record state: version %zu of '%.80s': \"k\" must be present exactly "
		                     "when the value is true",
		                     i, path);
	if (k) {
		int rc = rec_check_ctx(k, ctx, "the delete's knowledge", path, err);
		if (rc)
			return rc;
		if (!veld_record__covers(k, stamp))
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: version %zu of '%.80s': \"k\" does not cover its "
			                     "stamp",
			                     i, path);
	}
	return 0;
}

/* Validate the version list of `path` and return it sorted in `*out`. */
static int rec_parse_versions(json_t **out, const char *path, const json_t *list, const json_t *ctx,
                              veld_err *err)
{
	size_t n = json_array_size(list), i;
	rec_sorted *vs = NULL;
	json_t *sorted = NULL;
	int rc = 0;
	if (!veld_record__path_ok(path)) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state: field path '%.80s' is not allowed", path);
		goto done;
	}
	if (!json_is_array(list) || n == 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "record state: field '%.80s' is not a non-empty list of versions", path);
		goto done;
	}
	vs = calloc(n, sizeof *vs);
	if (!vs) {
		rc = veld_err__oom(err);
		goto done;
	}
	for (i = 0; i < n; i++) {
		vs[i].v = json_array_get(list, i);
		if ((rc = rec_check_version(&vs[i].s, path, i, vs[i].v, ctx, err)))
			goto done;
	}
	/* One live version per device: a device's own write supersedes its
	** earlier ones everywhere (this also rules out a repeated stamp). */
	for (i = 0; i < n; i++) {
		size_t j;
		for (j = i + 1; j < n; j++) {
			if (!memcmp(vs[i].s.device, vs[j].s.device, VELD_DEVICE_ID_LEN)) {
				rc = veld_err__set(err, VELD_EINTEGRITY,
				                   "record state: field '%.80s' holds two live versions from one device",
				                   path);
				goto done;
			}
		}
	}
	qsort(vs, n, sizeof *vs, rec_sorted_cmp);
	sorted = json_array();
	if (!sorted) {
		rc = veld_err__oom(err);
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (json_array_append(sorted, vs[i].v)) {
			rc = veld_err__oom(err);
			goto done;
		}
	}
	*out = sorted;
	sorted = NULL;
done:
	free(vs);
	json_decref(sorted);
	return rc;
}

/* jansson's message without the part that quotes the input (which may hold
** personal data). */
static void rec_json_error(char *buf, size_t n, const json_error_t *e)
{
	char *near;
	snprintf(buf, n, "%s", e->text);
	near = strstr(buf, " near ");
	if (near)
		*near = '\0';
}

int veld_record__parse(veld_record **out, const char *json, size_t len, veld_err *err)
{
	static const char *const top_keys[] = {"id", "case", "form", "ctx", "fields", NULL};
	json_error_t jerr;
	json_t *j = NULL, *fields = NULL, *list, *sorted = NULL, *ctx;
	const char *path;
	char msg[JSON_ERROR_TEXT_LENGTH];
	int rc = 0;
	*out = NULL;
	if (!json) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state is missing");
		goto done;
	}
	j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j && (rc = veld_err__json_oom(err, &jerr)))
		goto done;
	if (!j) {
		rec_json_error(msg, sizeof msg, &jerr);
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state is not valid JSON: %s (line %d, column %d)",
		                   msg, jerr.line, jerr.column);
		goto done;
	}
	if (!rec_has_keys(j, top_keys, NULL)) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "record state must be an object with exactly id, case, form, ctx and fields");
		goto done;
	}
	if (!veld_id__is(json_string_value(json_object_get(j, "id"))) ||
	    !veld_id__is(json_string_value(json_object_get(j, "case")))) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "record state: id and case must be 32 lowercase hex digits");
		goto done;
	}
	if (!veld_record__is_form(json_string_value(json_object_get(j, "form")))) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state: form must be a form name ([a-z0-9_]{1,64}), " VELD_CASE_FORM
		                   " or " VELD_CONTACT_FORM);
		goto done;
	}
	ctx = json_object_get(j, "ctx");
	if ((rc = rec_check_ctx(ctx, NULL, "the context", "(record)", err)))
		goto done;
	if (!json_is_object(json_object_get(j, "fields"))) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state: fields is not an object");
		goto done;
	}
	fields = json_object();
	if (!fields) {
		rc = veld_err__oom(err);
		goto done;
	}
	json_object_foreach(json_object_get(j, "fields"), path, list)
	{
		if ((rc = rec_parse_versions(&sorted, path, list, ctx, err)))
			goto done;
		if (json_object_set_new(fields, path, sorted)) {
			rc = veld_err__oom(err);
			goto done;
		}
	}
	if (json_object_set_new(j, "fields", fields)) {
		fields = NULL;
		rc = veld_err__oom(err);
		goto done;
	}
	fields = NULL;
	/* The state is the record's from here, also when wrapping fails. */
	if (veld_record__wrap(out, j))
		rc = veld_err__oom(err);
	j = NULL;
done:
	json_decref(j);
	json_decref(fields);
	return rc;
}

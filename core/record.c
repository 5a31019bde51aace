/*
** record.c — the record model: multi-value registers, merge, canonical JSON.
**
** A record (a case header, a contact, a Sociale Balans, ...) is a map of
** field paths to multi-value registers, plus a causal context.  Its state is
** one JSON object, stored as is in the local database and synced as is
** (sealed) through git:
**
**   {"id":"<32 hex>","case":"<32 hex>","form":"<name>",
**    "ctx":{"<device>":[wall,counter], ...},
**    "fields":{"<path>":[{"s":[wall,counter,"<device>"],"v":<value>}, ...]}}
**
** Versions and dots.  Every write creates one version of one path: a value
** and the hybrid-logical-clock stamp of the write (hlc.c).  The stamp is the
** version's identity (its "dot").  A device's stamps strictly increase, so
** for a given device "stamp s" and "all of that device's writes up to s" are
** the same thing.
**
** Causal context.  ctx[d] is the highest stamp of device d that this state
** has seen for this record.  States travel whole (state-based replication),
** so whoever holds a state holds everything that state's writers had seen:
** every state is causally closed, and "the state has seen write s" is exactly
** "ctx covers s" (ctx[s.device] >= s on (wall, counter)).
**
** Local write (veld_record__set).  Writing `value` to `path` with stamp s
** replaces every live version of the path by the single version {s, value}
** and raises ctx[s.device] to s.  The writer had seen the versions it
** replaces: that is what supersedes them.  A JSON null value is a clear: it
** is a version like any other (so a clear concurrent with an edit is a
** conflict), and a cleared path shows no value.  The same stamp may be used
** for several paths of one atomic change (the store stamps a whole `put`
** once); a stamp older than ctx[own device] is refused (VELD_EINVALID),
** since it would look "already seen" to every replica that saw the newer one.
**
** Merge (veld_record__merge).  Per path, with A, B the version lists and
** ctxA, ctxB the contexts:
**     keep v in A and B;
**     keep v in A only  if ctxB does not cover v  (B never saw it);
**     keep v in B only  if ctxA does not cover v  (A never saw it);
**     ctx = pointwise max (ctxA, ctxB).
** A version that one side saw and no longer holds was superseded there and
** stays dropped.  This is the dotted multi-value register with a causal
** context (Almeida, Shoker, Baquero, "Delta state replicated data types",
** 2018): a join semilattice, so merge is commutative, associative and
** idempotent and any order of syncs converges.  Paths left with no live
** version disappear.  Two versions with the same stamp are the same write
** and carry the same payload; should a buggy or hostile peer send a
** different payload under the same stamp, the bytewise larger canonical
** encoding wins, which keeps merge a join (parsing cannot detect this case:
** it needs both states).
**
** Shown value and conflicts.  The shown value of a path is the live version
** with the highest stamp (veld_stamp__cmp: wall, counter, device id).  More
** than one live version is a conflict: the writers did not see each other.
** Writing the path again with a state that holds all of them resolves it.
**
** Reserved registers.  Paths that start with '_' are the record's own:
**   "_deleted"       boolean; true = the record is deleted (a tombstone that
**                    keeps every field), false = undeleted.
**   "_form_version"  the version of the form the record was written with.
** No other '_' path is accepted.  veld_record__view leaves them out.
**
** Delete against edit.  A delete is the write "_deleted" = true; its version
** also records "k", the writer's causal context at the moment of the delete
** (the ctx including the delete's own stamp):
**     {"s":[...],"v":true,"k":{"<device>":[wall,counter], ...}}
** "k" is part of the version's immutable payload, so the merge above is
** unchanged and stays a join.  A field version e is "seen by the delete" if
** the k of some live `true` version of "_deleted" covers e's stamp.  The
** record shows a delete-against-edit conflict when
**     the shown "_deleted" is true, and
**     some live version of some other path is not seen by the delete
** — an edit made concurrently with the delete (or made later without
** looking at it).  The edit is never lost: its versions live on, the record
** is shown deleted, and veld_record__view reports
**     "conflicts":{"_deleted":[true,false], ...}   alternatives, shown first
**     "concurrent_edits":["<path>", ...]           the paths the delete missed
** A later write of "_deleted" from a state that holds the edits resolves it:
** delete again (its k now covers the edits) or undelete ("_deleted" = false,
** the record is shown again with every field).  A concurrent delete and
** undelete is the ordinary conflict of "_deleted" ([true,false] or
** [false,true], shown first).  Concurrent deletes that agree are no conflict.
**
** Canonical serialisation (veld_record__canonical).  jansson with
** JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17): keys sorted
** bytewise, no whitespace, UTF-8 written as is (only '"', '\\' and control
** characters are escaped), integers as integers, reals with 17 significant
** digits ("%.17g", which round-trips every double; an integral real keeps
** ".0").  Versions are sorted by stamp, ascending.  Every state this file
** builds is kept in that shape, so equal states give equal bytes, whatever
** the operations that led to them.  Fixed vectors: tests/resources/record-*.
**
** Values.  A value is null, a boolean, a number, a string, or an array of
** those (a multi-choice answer).  Objects are never values: groups are
** flattened into paths (veld_record__flatten).  "_deleted" holds booleans.
**
** Paths.  A path is 1..VELD_RECORD_PATH_MAX bytes of UTF-8, made of
** '.'-separated segments; no segment is empty, and no byte is a control
** character.  Repeating groups are "group.<item id>.field" and domain groups
** "huisvesting.score".  A group key or item id therefore cannot contain '.':
** flatten rejects an empty or dotted segment rather than guess, and an empty
** group (it would write nothing, and is a client's mistake).
**
** Parsing (veld_record__parse) is strict, because states arrive from other
** devices: exact key sets, types and ranges, device ids of 32 lowercase hex
** digits, non-empty version lists, no two versions with one stamp or from
** one device in a path, every stamp and every "k" covered by ctx, "k" on and
** only on deleting versions.  Any of these fails with VELD_EINTEGRITY and a
** message that names the place, never a value.  Input order is free; the
** result is re-canonicalised.
**
** Every operation builds the new state beside the old one and swaps it in
** at the end, so a failure (out of memory, invalid input) leaves the record
** as it was.  States share immutable sub-objects by reference; nothing here
** modifies a version, a list or a context in place.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define VELD_RECORD_PATH_MAX  256 /* bytes */
#define VELD_RECORD_DEPTH_MAX 16  /* nesting of groups in flatten's input */
#define REC_DELETED      "_deleted"
#define REC_FORM_VERSION "_form_version"
#define REC_CANON_FLAGS  (JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17))

struct veld_record {
	json_t *state; /* always in canonical shape */
};

/* ---- small checks -------------------------------------------------------- */

/* A record's form: a form name, or the store's case header. */
static int rec_is_form(const char *s)
{
	return veld_name__is_form(s) || (s && !strcmp(s, VELD_CASE_FORM));
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
static int rec_path_ok(const char *p)
{
	if (!p)
		return 0;
	if (p[0] == '_')
		return !strcmp(p, REC_DELETED) || !strcmp(p, REC_FORM_VERSION);
	return rec_segments_ok(p, strlen(p));
}

static int rec_is_scalar(const json_t *v)
{
	return json_is_null(v) || json_is_boolean(v) || json_is_number(v) || json_is_string(v);
}

/* A field value: a scalar or an array of scalars. */
static int rec_value_ok(const json_t *v)
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

/* ---- contexts and stamps ------------------------------------------------- */

/* The stamp of a version of a valid state. */
static void rec_vstamp(veld_stamp *out, const json_t *version)
{
	if (veld_stamp__from_json(out, json_object_get(version, "s")))
		memset(out, 0, sizeof *out); /* unreachable: states are validated */
}

/* Does context `ctx` cover stamp `s`? */
static int rec_covers(const json_t *ctx, const veld_stamp *s)
{
	const json_t *e = json_object_get(ctx, s->device);
	int64_t w;
	uint32_t c;
	if (!e)
		return 0;
	w = (int64_t)json_integer_value(json_array_get(e, 0));
	c = (uint32_t)json_integer_value(json_array_get(e, 1));
	return s->wall < w || (s->wall == w && s->counter <= c);
}

/* Context entry [wall, counter] of a stamp. */
static json_t *rec_ctx_entry(const veld_stamp *s)
{
	return json_pack("[II]", (json_int_t)s->wall, (json_int_t)s->counter);
}

/* Is entry `a` ([wall, counter]) after entry `b`? */
static int rec_entry_after(const json_t *a, const json_t *b)
{
	json_int_t aw = json_integer_value(json_array_get(a, 0));
	json_int_t bw = json_integer_value(json_array_get(b, 0));
	return aw > bw || (aw == bw && json_integer_value(json_array_get(a, 1)) >
	                                       json_integer_value(json_array_get(b, 1)));
}

/* Pointwise maximum of two contexts (entries shared, never modified). */
static json_t *rec_ctx_join(const json_t *a, const json_t *b)
{
	json_t *out = json_copy((json_t *)a);
	const char *dev;
	json_t *e;
	if (!out)
		return NULL;
	json_object_foreach((json_t *)b, dev, e)
	{
		json_t *mine = json_object_get(out, dev);
		if (!mine || rec_entry_after(e, mine)) {
			if (json_object_set(out, dev, e)) {
				json_decref(out);
				return NULL;
			}
		}
	}
	return out;
}

/* ---- construction and access ---------------------------------------------- */

int veld_record__new(veld_record **out, const char *id, const char *case_id, const char *form)
{
	veld_record *r = NULL;
	int rc = 0;
	*out = NULL;
	if (!veld_id__is(id) || !veld_id__is(case_id) || !rec_is_form(form)) {
		rc = VELD_EINVALID;
		goto done;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		rc = VELD_ERROR;
		goto done;
	}
	r->state = json_pack("{s:s, s:s, s:s, s:{}, s:{}}", "id", id, "case", case_id, "form", form,
	                     "ctx", "fields");
	if (!r->state) {
		rc = VELD_ERROR;
		goto done;
	}
	*out = r;
	r = NULL;
done:
	veld_record__free(r);
	return rc;
}

void veld_record__free(veld_record *r)
{
	if (!r)
		return;
	json_decref(r->state);
	free(r);
}

const char *veld_record__id(const veld_record *r)
{
	return json_string_value(json_object_get(r->state, "id"));
}

const char *veld_record__case(const veld_record *r)
{
	return json_string_value(json_object_get(r->state, "case"));
}

const char *veld_record__form(const veld_record *r)
{
	return json_string_value(json_object_get(r->state, "form"));
}

char *veld_record__canonical(const veld_record *r)
{
	return json_dumps(r->state, REC_CANON_FLAGS);
}

/* Replace the state's ctx and fields by `ctx` and `fields` (references
** stolen, also on failure).  The old state is released on success. */
static int rec_swap(veld_record *r, json_t *ctx, json_t *fields)
{
	json_t *st = json_copy(r->state);
	int rc = 0;
	if (!st || !ctx || !fields) {
		json_decref(ctx);
		json_decref(fields);
		rc = VELD_ERROR;
		goto done;
	}
	if (json_object_set_new(st, "ctx", ctx) || json_object_set_new(st, "fields", fields)) {
		rc = VELD_ERROR;
		goto done;
	}
	json_decref(r->state);
	r->state = st;
	st = NULL;
done:
	json_decref(st);
	return rc;
}

/* ---- local writes ---------------------------------------------------------- */

int veld_record__set(veld_record *r, const char *path, const json_t *value,
                     const veld_stamp *stamp)
{
	json_t *ctx = NULL, *fields = NULL, *version = NULL, *list = NULL, *v = NULL, *e;
	json_t *cur_ctx = json_object_get(r->state, "ctx");
	int rc = 0;
	if (!rec_path_ok(path) || !stamp ||
	    !veld_stamp__is_device(stamp->device, strnlen(stamp->device, VELD_DEVICE_ID_LEN + 1)) ||
	    stamp->wall < 0 || stamp->wall > VELD_HLC_WALL_MAX) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (value && !rec_value_ok(value)) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (!strcmp(path, REC_DELETED) && !json_is_boolean(value)) {
		rc = VELD_EINVALID;
		goto done;
	}
	/* Never older than what this record already holds from the device. */
	e = json_object_get(cur_ctx, stamp->device);
	if (e) {
		json_t *mine = rec_ctx_entry(stamp);
		int older = mine ? rec_entry_after(e, mine) : 0;
		json_decref(mine);
		if (!mine) {
			rc = VELD_ERROR;
			goto done;
		}
		if (older) {
			rc = VELD_EINVALID;
			goto done;
		}
	}
	ctx = json_copy(cur_ctx);
	fields = json_copy(json_object_get(r->state, "fields"));
	v = value ? json_deep_copy(value) : json_null();
	if (!ctx || !fields || !v || json_object_set_new(ctx, stamp->device, rec_ctx_entry(stamp))) {
		rc = VELD_ERROR;
		goto done;
	}
	version = json_pack("{s:o, s:O}", "s", veld_stamp__to_json(stamp), "v", v);
	if (!version) {
		rc = VELD_ERROR;
		goto done;
	}
	if (json_is_true(v) && !strcmp(path, REC_DELETED)) {
		/* The deleter's knowledge: what this delete supersedes. */
		if (json_object_set_new(version, "k", json_copy(ctx))) {
			rc = VELD_ERROR;
			goto done;
		}
	}
	list = json_array();
	if (!list || json_array_append(list, version) || json_object_set(fields, path, list)) {
		rc = VELD_ERROR;
		goto done;
	}
	rc = rec_swap(r, ctx, fields);
	ctx = fields = NULL;
done:
	json_decref(ctx);
	json_decref(fields);
	json_decref(version);
	json_decref(list);
	json_decref(v);
	return rc;
}

int veld_record__delete(veld_record *r, const veld_stamp *stamp)
{
	return veld_record__set(r, REC_DELETED, json_true(), stamp);
}

/* The live versions of `path` (NULL if none), ascending by stamp. */
static const json_t *rec_versions(const veld_record *r, const char *path)
{
	return json_object_get(json_object_get(r->state, "fields"), path);
}

const json_t *veld_record__value(const veld_record *r, const char *path, size_t *n_live)
{
	const json_t *list = path ? rec_versions(r, path) : NULL;
	size_t n = json_array_size(list);
	if (n_live)
		*n_live = n;
	if (n == 0)
		return NULL;
	return json_object_get(json_array_get(list, n - 1), "v");
}

int veld_record__is_deleted(const veld_record *r)
{
	return json_is_true(veld_record__value(r, REC_DELETED, NULL));
}

/* ---- merge ------------------------------------------------------------------ */

/* Same stamp on both sides: normally the same payload; if not, the larger
** canonical encoding, so that the choice does not depend on the side. */
static int rec_pick(json_t **out, json_t *a, json_t *b)
{
	char *ea = NULL, *eb = NULL;
	int rc = 0;
	if (json_equal(a, b)) {
		*out = a;
		goto done;
	}
	ea = json_dumps(a, REC_CANON_FLAGS);
	eb = json_dumps(b, REC_CANON_FLAGS);
	if (!ea || !eb) {
		rc = VELD_ERROR;
		goto done;
	}
	*out = strcmp(ea, eb) >= 0 ? a : b;
done:
	free(ea);
	free(eb);
	return rc;
}

/* Merge the version lists `va` and `vb` (either may be NULL) of one path
** into a new list `*out` (empty if nothing survives). */
static int rec_merge_versions(json_t **out, const json_t *va, const json_t *ctx_a,
                              const json_t *vb, const json_t *ctx_b)
{
	size_t i = 0, j = 0, na = json_array_size(va), nb = json_array_size(vb);
	json_t *list = json_array();
	int rc = 0;
	if (!list) {
		rc = VELD_ERROR;
		goto done;
	}
	while (i < na || j < nb) {
		json_t *x = i < na ? json_array_get(va, i) : NULL;
		json_t *y = j < nb ? json_array_get(vb, j) : NULL;
		json_t *keep = NULL;
		veld_stamp sx, sy;
		int c;
		if (x)
			rec_vstamp(&sx, x);
		if (y)
			rec_vstamp(&sy, y);
		c = !y ? -1 : !x ? 1 : veld_stamp__cmp(&sx, &sy);
		if (c == 0) {
			if ((rc = rec_pick(&keep, x, y)))
				goto done;
			i++;
			j++;
		} else if (c < 0) {
			if (!rec_covers(ctx_b, &sx))
				keep = x;
			i++;
		} else {
			if (!rec_covers(ctx_a, &sy))
				keep = y;
			j++;
		}
		if (keep && json_array_append(list, keep)) {
			rc = VELD_ERROR;
			goto done;
		}
	}
	*out = list;
	list = NULL;
done:
	json_decref(list);
	return rc;
}

int veld_record__merge(veld_record *r, const veld_record *other)
{
	json_t *ctx_a = json_object_get(r->state, "ctx");
	json_t *ctx_b = json_object_get(other->state, "ctx");
	json_t *fa = json_object_get(r->state, "fields");
	json_t *fb = json_object_get(other->state, "fields");
	json_t *ctx = NULL, *fields = NULL, *list = NULL, *vers;
	const char *path;
	int rc = 0;
	if (strcmp(veld_record__id(r), veld_record__id(other)) ||
	    strcmp(veld_record__case(r), veld_record__case(other)) ||
	    strcmp(veld_record__form(r), veld_record__form(other))) {
		rc = VELD_EINVALID;
		goto done;
	}
	ctx = rec_ctx_join(ctx_a, ctx_b);
	fields = json_object();
	if (!ctx || !fields) {
		rc = VELD_ERROR;
		goto done;
	}
	json_object_foreach(fa, path, vers)
	{
		if ((rc = rec_merge_versions(&list, vers, ctx_a, json_object_get(fb, path), ctx_b)))
			goto done;
		if (json_array_size(list) > 0 && json_object_set(fields, path, list)) {
			rc = VELD_ERROR;
			goto done;
		}
		json_decref(list);
		list = NULL;
	}
	json_object_foreach(fb, path, vers)
	{
		if (json_object_get(fa, path))
			continue;
		if ((rc = rec_merge_versions(&list, NULL, ctx_a, vers, ctx_b)))
			goto done;
		if (json_array_size(list) > 0 && json_object_set(fields, path, list)) {
			rc = VELD_ERROR;
			goto done;
		}
		json_decref(list);
		list = NULL;
	}
	rc = rec_swap(r, ctx, fields);
	ctx = fields = NULL;
done:
	json_decref(ctx);
	json_decref(fields);
	json_decref(list);
	return rc;
}

int veld_record__max_stamp(const veld_record *r, veld_stamp *out)
{
	const char *dev;
	json_t *e;
	int found = 0;
	json_object_foreach(json_object_get(r->state, "ctx"), dev, e)
	{
		veld_stamp s;
		memset(&s, 0, sizeof s);
		s.wall = (int64_t)json_integer_value(json_array_get(e, 0));
		s.counter = (uint32_t)json_integer_value(json_array_get(e, 1));
		memcpy(s.device, dev, VELD_DEVICE_ID_LEN);
		if (!found || veld_stamp__cmp(&s, out) > 0)
			*out = s;
		found = 1;
	}
	return found ? 0 : VELD_ENOTFOUND;
}

/* ---- the view ------------------------------------------------------------------ */

static int rec_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is the version `v` seen by some live deleting version in `dels`? */
static int rec_seen_by_delete(const json_t *v, const json_t *dels)
{
	veld_stamp s;
	size_t i;
	const json_t *d;
	rec_vstamp(&s, v);
	json_array_foreach(dels, i, d)
	{
		if (json_is_true(json_object_get(d, "v")) && rec_covers(json_object_get(d, "k"), &s))
			return 1;
	}
	return 0;
}

/* The values of a version list, highest stamp first (new reference). */
static json_t *rec_values_desc(const json_t *list)
{
	json_t *out = json_array();
	size_t i = json_array_size(list);
	if (!out)
		return NULL;
	while (i-- > 0) {
		if (json_array_append_new(out, json_deep_copy(json_object_get(json_array_get(list, i), "v")))) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* Delete-against-edit: add "conflicts"."_deleted" and "concurrent_edits". */
static int rec_view_delete(json_t *view, json_t *conflicts, const json_t *fields)
{
	const json_t *dels = json_object_get(fields, REC_DELETED);
	size_t nd = json_array_size(dels), n = 0, i;
	const char **paths = NULL;
	json_t *alts = NULL, *edits = NULL, *list;
	const char *path;
	int shown, has_true = 0, has_false = 0, rc = 0;
	if (nd == 0)
		goto done;
	shown = json_is_true(json_object_get(json_array_get(dels, nd - 1), "v"));
	for (i = 0; i < nd; i++) {
		if (json_is_true(json_object_get(json_array_get(dels, i), "v")))
			has_true = 1;
		else
			has_false = 1;
	}
	if (shown) {
		paths = calloc(json_object_size(fields) + 1, sizeof *paths);
		if (!paths) {
			rc = VELD_ERROR;
			goto done;
		}
		json_object_foreach((json_t *)fields, path, list)
		{
			const json_t *v;
			if (!strcmp(path, REC_DELETED))
				continue;
			json_array_foreach(list, i, v)
			{
				if (!rec_seen_by_delete(v, dels)) {
					paths[n++] = path;
					break;
				}
			}
		}
	}
	if (!(has_true && has_false) && n == 0)
		goto done;
	/* The alternatives, shown first: concurrent delete and undelete, or a
	** delete and the edits that keep the record alive. */
	alts = json_pack("[bb]", shown, !shown);
	if (!alts || json_object_set(conflicts, REC_DELETED, alts)) {
		rc = VELD_ERROR;
		goto done;
	}
	if (n > 0) {
		qsort(paths, n, sizeof *paths, rec_strcmp_p);
		edits = json_array();
		if (!edits) {
			rc = VELD_ERROR;
			goto done;
		}
		for (i = 0; i < n; i++) {
			if (json_array_append_new(edits, json_string(paths[i]))) {
				rc = VELD_ERROR;
				goto done;
			}
		}
		if (json_object_set(view, "concurrent_edits", edits)) {
			rc = VELD_ERROR;
			goto done;
		}
	}
done:
	free(paths);
	json_decref(alts);
	json_decref(edits);
	return rc;
}

json_t *veld_record__view(const veld_record *r)
{
	const json_t *fields = json_object_get(r->state, "fields");
	json_t *view = json_object(), *shown = json_object(), *conflicts = json_object();
	json_t *list, *out = NULL;
	const char *path;
	if (!view || !shown || !conflicts)
		goto done;
	json_object_foreach((json_t *)fields, path, list)
	{
		size_t n = json_array_size(list);
		const json_t *v;
		if (path[0] == '_' || n == 0)
			continue;
		v = json_object_get(json_array_get(list, n - 1), "v");
		if (!json_is_null(v) && json_object_set_new(shown, path, json_deep_copy(v)))
			goto done;
		if (n > 1 && json_object_set_new(conflicts, path, rec_values_desc(list)))
			goto done;
	}
	if (rec_view_delete(view, conflicts, fields))
		goto done;
	if (json_object_set(view, "fields", shown) || json_object_set(view, "conflicts", conflicts) ||
	    json_object_set_new(view, "deleted", json_boolean(veld_record__is_deleted(r))))
		goto done;
	out = view;
	view = NULL;
done:
	json_decref(view);
	json_decref(shown);
	json_decref(conflicts);
	return out;
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
			if (!rec_value_ok(v) || json_object_get(out, full)) {
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
		if (!full)
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' has a malformed entry", what, path);
		rc = veld_stamp__from_json(&s, full);
		json_decref(full);
		if (rc)
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' has a malformed entry (device id of 32 "
			                     "lowercase hex digits, wall 0..2^53-1, counter 0..2^32-1)",
			                     what, path);
		if (within && !rec_covers(within, &s))
			return veld_err__set(err, VELD_EINTEGRITY,
			                     "record state: %s of '%.80s' is ahead of the record's context", what,
			                     path);
	}
	return 0;
}

/* Validate the version list of `path` and return it sorted in `*out`. */
static int rec_parse_versions(json_t **out, const char *path, const json_t *list, const json_t *ctx,
                              veld_err *err)
{
	static const char *const keys[] = {"s", "v", NULL};
	size_t n = json_array_size(list), i;
	rec_sorted *vs = NULL;
	json_t *sorted = NULL;
	int is_del = !strcmp(path, REC_DELETED), rc = 0;
	if (!rec_path_ok(path)) {
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
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		json_t *v = json_array_get(list, i), *val, *k;
		if (!rec_has_keys(v, keys, is_del ? "k" : NULL)) {
			rc = veld_err__set(err, VELD_EINTEGRITY,
			                   "record state: version %zu of '%.80s' must be an object with exactly "
			                   "\"s\" and \"v\"%s",
			                   i, path, is_del ? " (and \"k\" when deleting)" : "");
			goto done;
		}
		if (veld_stamp__from_json(&vs[i].s, json_object_get(v, "s"))) {
			rc = veld_err__set(err, VELD_EINTEGRITY,
			                   "record state: version %zu of '%.80s' has a malformed stamp (want "
			                   "[wall, counter, \"32 lowercase hex digits\"])",
			                   i, path);
			goto done;
		}
		if (!rec_covers(ctx, &vs[i].s)) {
			rc = veld_err__set(err, VELD_EINTEGRITY,
			                   "record state: version %zu of '%.80s' is not covered by the record's context",
			                   i, path);
			goto done;
		}
		val = json_object_get(v, "v");
		if (!rec_value_ok(val) || (is_del && !json_is_boolean(val))) {
			rc = veld_err__set(err, VELD_EINTEGRITY,
			                   "record state: version %zu of '%.80s' has a value of the wrong type", i, path);
			goto done;
		}
		k = json_object_get(v, "k");
		if (is_del && json_is_true(val) != (k != NULL)) {
			rc = veld_err__set(err, VELD_EINTEGRITY,
			                   "record state: version %zu of '%.80s': \"k\" must be present exactly "
			                   "when the value is true",
			                   i, path);
			goto done;
		}
		if (k) {
			if ((rc = rec_check_ctx(k, ctx, "the delete's knowledge", path, err)))
				goto done;
			if (!rec_covers(k, &vs[i].s)) {
				rc = veld_err__set(err, VELD_EINTEGRITY,
				                   "record state: version %zu of '%.80s': \"k\" does not cover its stamp", i,
				                   path);
				goto done;
			}
		}
		vs[i].v = v;
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
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (json_array_append(sorted, vs[i].v)) {
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
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
	veld_record *r = NULL;
	const char *path;
	char msg[JSON_ERROR_TEXT_LENGTH];
	int rc = 0;
	*out = NULL;
	if (!json) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state is missing");
		goto done;
	}
	j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
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
	if (!rec_is_form(json_string_value(json_object_get(j, "form")))) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record state: form must be a form name ([a-z0-9_]{1,64}) or " VELD_CASE_FORM);
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
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	json_object_foreach(json_object_get(j, "fields"), path, list)
	{
		if ((rc = rec_parse_versions(&sorted, path, list, ctx, err)))
			goto done;
		if (json_object_set_new(fields, path, sorted)) {
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
			goto done;
		}
	}
	r = calloc(1, sizeof *r);
	if (!r || json_object_set_new(j, "fields", fields)) {
		fields = NULL;
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	fields = NULL;
	r->state = j;
	j = NULL;
	*out = r;
	r = NULL;
done:
	json_decref(j);
	json_decref(fields);
	veld_record__free(r);
	return rc;
}

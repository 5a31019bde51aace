/*
** record.c — the record model: state, contexts, local writes, the view.
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
** Files.  This file owns the state object and everything that reads or
** writes one state: contexts, stamps of versions, local writes, shown
** values, the view.  record_merge.c joins two states (the rules above);
** record_json.c holds the canonical encoding, the strict parse of states
** from other devices, and the checks of paths, values and form names that
** both this file and the parse apply.  They share the state through the
** few veld_record__ functions core.h lists for them, never its layout.
**
** Every operation builds the new state beside the old one and swaps it in
** at the end, so a failure (out of memory, invalid input) leaves the record
** as it was.  States share immutable sub-objects by reference; nothing here
** modifies a version, a list or a context in place.
**
** What it must not do: modify a state in place, accept a state it has not
** validated, or print.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

struct veld_record {
	json_t *state; /* always in canonical shape */
};

/* ---- contexts and stamps ------------------------------------------------- */

/* The stamp of a version of a valid state. */
void veld_record__vstamp(veld_stamp *out, const json_t *version)
{
	if (veld_stamp__from_json(out, json_object_get(version, "s")))
		memset(out, 0, sizeof *out); /* unreachable: states are validated */
}

/* Does context `ctx` cover stamp `s`? */
int veld_record__covers(const json_t *ctx, const veld_stamp *s)
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

/* A shallow copy of an object, whole or NULL.  jansson's json_copy leaves
** out the members it could not add when memory runs out and still returns
** the object: a state copied that way would be stored without them. */
static json_t *rec_copy(const json_t *o)
{
	json_t *c = json_copy((json_t *)o);
	if (c && json_object_size(c) != json_object_size(o)) {
		json_decref(c);
		c = NULL;
	}
	return c;
}

/* Pointwise maximum of two contexts (entries shared, never modified). */
json_t *veld_record__ctx_join(const json_t *a, const json_t *b)
{
	json_t *out = rec_copy(a);
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

/* ---- the state object ------------------------------------------------------ */

int veld_record__wrap(veld_record **out, json_t *state)
{
	veld_record *r = NULL;
	*out = NULL;
	if (!state)
		return VELD_ERROR;
	r = calloc(1, sizeof *r);
	if (!r) {
		json_decref(state);
		return VELD_ERROR;
	}
	r->state = state;
	*out = r;
	return 0;
}

const json_t *veld_record__state(const veld_record *r)
{
	return r->state;
}

int veld_record__new(veld_record **out, const char *id, const char *case_id, const char *form)
{
	*out = NULL;
	if (!veld_id__is(id) || !veld_id__is(case_id) || !veld_record__is_form(form))
		return VELD_EINVALID;
	return veld_record__wrap(out, json_pack("{s:s, s:s, s:s, s:{}, s:{}}", "id", id, "case",
	                                        case_id, "form", form, "ctx", "fields"));
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

/* Replace the state's ctx and fields by `ctx` and `fields` (references
** stolen, also on failure).  The old state is released on success. */
int veld_record__swap(veld_record *r, json_t *ctx, json_t *fields)
{
	json_t *st = rec_copy(r->state);
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
	if (!veld_record__path_ok(path) || !stamp ||
	    !veld_stamp__is_device(stamp->device, strnlen(stamp->device, VELD_DEVICE_ID_LEN + 1)) ||
	    stamp->wall < 0 || stamp->wall > VELD_HLC_WALL_MAX) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (value && !veld_record__value_ok(value)) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (!strcmp(path, VELD_RECORD_DELETED) && !json_is_boolean(value)) {
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
	ctx = rec_copy(cur_ctx);
	fields = rec_copy(json_object_get(r->state, "fields"));
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
	if (json_is_true(v) && !strcmp(path, VELD_RECORD_DELETED)) {
		/* The deleter's knowledge: what this delete supersedes. */
		if (json_object_set_new(version, "k", rec_copy(ctx))) {
			rc = VELD_ERROR;
			goto done;
		}
	}
	list = json_array();
	if (!list || json_array_append(list, version) || json_object_set(fields, path, list)) {
		rc = VELD_ERROR;
		goto done;
	}
	rc = veld_record__swap(r, ctx, fields);
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
	return veld_record__set(r, VELD_RECORD_DELETED, json_true(), stamp);
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
	return json_is_true(veld_record__value(r, VELD_RECORD_DELETED, NULL));
}

/* The context's largest entry is the state's largest stamp: every version's
** stamp is covered by the context. */
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
	veld_record__vstamp(&s, v);
	json_array_foreach(dels, i, d)
	{
		if (json_is_true(json_object_get(d, "v")) && veld_record__covers(json_object_get(d, "k"), &s))
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
	const json_t *dels = json_object_get(fields, VELD_RECORD_DELETED);
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
			if (!strcmp(path, VELD_RECORD_DELETED))
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
	if (!alts || json_object_set(conflicts, VELD_RECORD_DELETED, alts)) {
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

/* The newest live delete holding `value` in `dels` ("_deleted"); for
** `false` with none, the newest version of another path that no live
** delete saw (the edit that keeps the record).  NULL if none. */
static const json_t *rec_delete_alt(const json_t *fields, const json_t *dels, int value)
{
	const json_t *best = NULL, *v, *l;
	const char *path;
	veld_stamp bs, vs;
	size_t i;
	int edits;
	for (edits = 0; edits < 2 && !best; edits++) {
		json_object_foreach((json_t *)fields, path, l)
		{
			if (edits == !strcmp(path, VELD_RECORD_DELETED) || (edits && value))
				continue;
			json_array_foreach(l, i, v)
			{
				if (edits ? rec_seen_by_delete(v, dels) : json_is_true(json_object_get(v, "v")) != value)
					continue;
				veld_record__vstamp(&vs, v);
				if (!best || veld_stamp__cmp(&vs, &bs) > 0) {
					best = v;
					bs = vs;
				}
			}
		}
	}
	return best;
}

/* Append {"value","device","at"} of version `ver` (value `value`). */
static int rec_add_version(json_t *out, const json_t *ver, const json_t *value)
{
	veld_stamp st;
	veld_record__vstamp(&st, ver);
	return json_array_append_new(out, json_pack("{s:O, s:s, s:I}", "value", (json_t *)value, "device", st.device,
	                                            "at", (json_int_t)st.wall));
}

json_t *veld_record__conflict_versions(const veld_record *r, const char *path)
{
	const json_t *fields = json_object_get(r->state, "fields"), *list, *ver, *alt;
	json_t *view = veld_record__view(r), *out = json_array(), *alts;
	size_t i;
	int rc = view && out ? 0 : -1;
	path = path ? path : "";
	list = json_object_get(fields, path);
	alts = json_object_get(json_object_get(view, "conflicts"), path);
	if (strcmp(path, VELD_RECORD_DELETED)) {
		/* the view's values are the versions, newest first */
		for (i = json_array_size(alts) ? json_array_size(list) : 0; !rc && i-- > 0;)
			rc = rec_add_version(out, json_array_get(list, i), json_object_get(json_array_get(list, i), "v"));
	} else {
		json_array_foreach(alts, i, alt)
		{
			if (!rc && (ver = rec_delete_alt(fields, list, json_is_true(alt))))
				rc = rec_add_version(out, ver, alt);
		}
	}
	json_decref(view);
	if (rc) {
		json_decref(out);
		out = NULL;
	}
	return out;
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

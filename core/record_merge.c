/*
** record_merge.c — the merge of two states of one record.
**
** What it is for.  veld_record__merge is the join of the semilattice that
** record.c describes: per path, a version both sides hold stays, a version
** one side holds stays unless the other side's context covers it (that side
** saw it and no longer holds it: it was superseded there), and the context
** becomes the pointwise maximum of both.  Because the rule is a join, merge
** is commutative, associative and idempotent, and any order of syncs
** converges (tests/unit/merge_props.c checks the three laws on random
** histories).
**
** How.  Both version lists of a path are sorted by stamp, so one pass over
** the two lists in step decides every version.  Two versions with one stamp
** are one write; should their payloads differ (a buggy or hostile peer), the
** bytewise larger canonical encoding wins, so the result does not depend on
** which side is which.  Paths left with no live version disappear.  The
** result is built beside `r` and swapped in at the end (veld_record__swap),
** sharing versions and context entries with the inputs by reference.
**
** What it must not do: modify either input state in place, drop a version
** that the other side never saw, or depend on the order of its arguments.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

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
	ea = json_dumps(a, VELD_RECORD_CANON_FLAGS);
	eb = json_dumps(b, VELD_RECORD_CANON_FLAGS);
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
			veld_record__vstamp(&sx, x);
		if (y)
			veld_record__vstamp(&sy, y);
		c = !y ? -1 : !x ? 1 : veld_stamp__cmp(&sx, &sy);
		if (c == 0) {
			if ((rc = rec_pick(&keep, x, y)))
				goto done;
			i++;
			j++;
		} else if (c < 0) {
			if (!veld_record__covers(ctx_b, &sx))
				keep = x;
			i++;
		} else {
			if (!veld_record__covers(ctx_a, &sy))
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

/* Merge the versions of `path` on both sides (either list may be NULL)
** and add the result to `fields` unless nothing survives. */
static int rec_merge_path(json_t *fields, const char *path, const json_t *va, const json_t *ctx_a,
                          const json_t *vb, const json_t *ctx_b)
{
	json_t *list = NULL;
	int rc = rec_merge_versions(&list, va, ctx_a, vb, ctx_b);
	if (rc == 0 && json_array_size(list) > 0 && json_object_set(fields, path, list))
		rc = VELD_ERROR;
	json_decref(list);
	return rc;
}

/* The fields of the merge: every path of either side, merged, unless
** nothing survives of it. */
static int rec_merge_fields(json_t **out, json_t *fa, const json_t *ctx_a, json_t *fb,
                            const json_t *ctx_b)
{
	json_t *fields = json_object(), *vers;
	const char *path;
	int rc = 0;
	if (!fields) {
		rc = VELD_ERROR;
		goto done;
	}
	json_object_foreach(fa, path, vers)
	{
		if ((rc = rec_merge_path(fields, path, vers, ctx_a, json_object_get(fb, path), ctx_b)))
			goto done;
	}
	json_object_foreach(fb, path, vers)
	{
		if (json_object_get(fa, path))
			continue;
		if ((rc = rec_merge_path(fields, path, NULL, ctx_a, vers, ctx_b)))
			goto done;
	}
	*out = fields;
	fields = NULL;
done:
	json_decref(fields);
	return rc;
}

int veld_record__merge(veld_record *r, const veld_record *other)
{
	const json_t *ctx_a = json_object_get(veld_record__state(r), "ctx");
	const json_t *ctx_b = json_object_get(veld_record__state(other), "ctx");
	json_t *fields = NULL;
	int rc;
	if (strcmp(veld_record__id(r), veld_record__id(other)) ||
	    strcmp(veld_record__case(r), veld_record__case(other)) ||
	    strcmp(veld_record__form(r), veld_record__form(other)))
		return VELD_EINVALID;
	if ((rc = rec_merge_fields(&fields, json_object_get(veld_record__state(r), "fields"), ctx_a,
	                           json_object_get(veld_record__state(other), "fields"), ctx_b)))
		return rc;
	/* The swap takes both references, also when the join ran out of memory. */
	return veld_record__swap(r, veld_record__ctx_join(ctx_a, ctx_b), fields);
}

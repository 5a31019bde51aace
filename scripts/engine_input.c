/*
** engine_input.c — the form engine's view of a record as plain JSON.
**
** A record comes as JSON with field paths the way the store keeps them
** ("huisvesting.score", "acties.<item id>.status"), as nested objects, or
** both.  This file owns what the engine does to the input without Lua:
**   step 0  veld_engine__fold: the input as nested groups (nulls absent,
**           objects merged member by member, a path that is both a value
**           and a group refused), for input that engine_read.c cannot read
**           as it is;
**   step 3  veld_engine__unknown: the paths the form's declarations do not
**           know, sorted;
**   values  the checks step 1 makes of one value (an integer, a decimal, a
**           date, an option of a choice), which follow prelude.lua's
**           (decimal.parse, date.valid) to the letter;
** and the walks these and engine_read.c share (members of an object or an
** array, what nested objects hold); and, for a record about to be stored,
** veld_engine__canonical: one encoding per value (an int field's 45.0 is
** stored as 45).  It runs no Lua and changes neither the input it reads
** nor the declarations (engine.c); every path it builds is bounded by
** VELD_ENGINE_PATH_BYTES and VELD_ENGINE_PATH_DEPTH, and out of memory is a
** return value, never a Lua error.
*/
#include "scripts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- step 0: the input as nested groups ----------------------------------------------- */

static int fold_path(json_t *root, char *path, size_t plen, json_t *value, veld_err *err, int depth);

static int fold_members(json_t *root, char *path, size_t plen, json_t *obj, veld_err *err, int depth)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		size_t n = strlen(k), at = plen;
		if (plen + (plen ? 1 : 0) + n >= VELD_ENGINE_PATH_BYTES)
			return veld_err__set(err, VELD_EINVALID, "a field path is too long");
		if (plen)
			path[at++] = '.';
		memcpy(path + at, k, n + 1);
		if (fold_path(root, path, at + n, v, err, depth + 1))
			return err->code;
		path[plen] = '\0';
	}
	return VELD_OK;
}

/* Put `value` at the dotted `path` under root, creating groups. */
static int fold_path(json_t *root, char *path, size_t plen, json_t *value, veld_err *err, int depth)
{
	json_t *g = root;
	const char *p = path;
	char q[VELD_ECHO_BUF];
	int nseg = 0;
	if (depth > VELD_ENGINE_PATH_DEPTH)
		return veld_err__set(err, VELD_EINVALID, "field '%s' is nested too deep", veld_sandbox__echo(q, path));
	if (json_is_null(value))
		return VELD_OK; /* a cleared field is absent */
	if (json_is_object(value))
		return fold_members(root, path, plen, value, err, depth);
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		json_t *next;
		if (n == 0 || n > VELD_ENGINE_SEGMENT_MAX || ++nseg > VELD_ENGINE_PATH_DEPTH)
			return veld_err__set(err, VELD_EINVALID, "field path '%s' is malformed", veld_sandbox__echo(q, path));
		next = json_object_getn(g, p, n);
		if (!dot) {
			if (next)
				return veld_err__set(err, VELD_EINVALID, "field '%s' is both a value and a group",
				                     veld_sandbox__echo(q, path));
			if (json_object_setn(g, p, n, value))
				return veld_err__set(err, VELD_ERROR, "out of memory");
			return VELD_OK;
		}
		if (!next) {
			next = json_object();
			if (!next || json_object_setn_new(g, p, n, next))
				return veld_err__set(err, VELD_ERROR, "out of memory");
		} else if (!json_is_object(next)) {
			return veld_err__set(err, VELD_EINVALID, "field '%s' is both a value and a group",
			                     veld_sandbox__echo(q, path));
		}
		g = next;
		p = dot + 1;
	}
}

json_t *veld_engine__fold(const json_t *fields, veld_err *err)
{
	const char *k;
	json_t *v, *root;
	char path[VELD_ENGINE_PATH_BYTES];
	if (!(root = json_object())) {
		veld_err__set(err, VELD_ERROR, "out of memory");
		return NULL;
	}
	json_object_foreach((json_t *)fields, k, v) {
		size_t n = strlen(k);
		if (k[0] == '_')
			continue; /* not a field */
		if (n >= VELD_ENGINE_PATH_BYTES) {
			veld_err__set(err, VELD_EINVALID, "a field path is too long");
			json_decref(root);
			return NULL;
		}
		memcpy(path, k, n + 1);
		if (fold_path(root, path, n, v, err, 0)) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

/* ---- walking the input ---------------------------------------------------------- */

void veld_engine__members_init(veld_members *m, const json_t *v)
{
	m->v = v;
	m->i = 0;
	m->it = json_is_object(v) ? json_object_iter((json_t *)v) : NULL;
}

int veld_engine__members_next(veld_members *m, const char **k, json_t **val)
{
	for (;;) {
		if (json_is_object(m->v)) {
			if (!m->it)
				return 0;
			*k = json_object_iter_key(m->it);
			*val = json_object_iter_value(m->it);
			m->it = json_object_iter_next((json_t *)m->v, m->it);
		} else if (json_is_array(m->v)) {
			if (m->i >= json_array_size(m->v))
				return 0;
			*val = json_array_get(m->v, m->i++);
			snprintf(m->key, sizeof m->key, "%zu", m->i);
			*k = m->key;
		} else {
			return 0;
		}
		if (!json_is_null(*val))
			return 1;
	}
}

/* One walk for both questions: whether an object folds to nothing (no
** member but nulls and such objects) and whether objects nest deeper than a
** path may be (the fold refuses them).  Neither answer changes once an
** object deeper than the limit is seen and a member is not void. */
int veld_engine__nested(const json_t *v, int level)
{
	const char *k;
	json_t *m;
	int r = VELD_NESTED_VOID;
	if (!json_is_object(v))
		return 0;
	if (level > VELD_ENGINE_PATH_DEPTH)
		return VELD_NESTED_DEEP;
	json_object_foreach((json_t *)v, k, m) {
		int in;
		if (json_is_null(m))
			continue;
		in = veld_engine__nested(m, level + 1);
		r = (r & in & VELD_NESTED_VOID) | ((r | in) & VELD_NESTED_DEEP);
		if (r == VELD_NESTED_DEEP)
			break;
	}
	return r;
}

/* ---- step 3: unknown paths ---------------------------------------------------------------- */

/* Unknown paths of `raw` (folded, or read as it is: the paths come out the
** same) into `out`, unsorted.  Nulls and objects that fold to nothing are
** absent; the top level's "_" members are not fields. */
static int unknown_into(const veld_scope *sc, const json_t *raw, char *path, size_t plen, json_t *out, int depth)
{
	veld_members m;
	const char *k;
	json_t *v;
	size_t hint = 0;
	if (depth > VELD_ENGINE_PATH_DEPTH + 2)
		return -1;
	veld_engine__members_init(&m, raw);
	while (veld_engine__members_next(&m, &k, &v)) {
		const veld_decl *f;
		size_t n = strlen(k), at = plen;
		if ((depth == 0 && k[0] == '_') || (veld_engine__nested(v, 0) & VELD_NESTED_VOID))
			continue;
		f = sc && n ? veld_engine__find(sc, k, n, &hint) : NULL;
		if (plen + n + 2 >= VELD_ENGINE_PATH_BYTES + 64)
			return -1;
		memcpy(path + at, k, n);
		at += n;
		path[at] = '\0';
		if (!f) {
			if (json_is_object(v)) {
				path[at++] = '.';
				if (unknown_into(NULL, v, path, at, out, depth + 1))
					return -1;
			} else if (json_array_append_new(out, json_string(path))) {
				return -1;
			}
		} else if (f->kind == VELD_FIELD_GROUP && (json_is_object(v) || json_is_array(v))) {
			path[at++] = '.';
			if (f->repeating) {
				veld_members im;
				const char *id;
				json_t *item;
				veld_engine__members_init(&im, v);
				while (veld_engine__members_next(&im, &id, &item)) {
					size_t idn = strlen(id);
					if (at + idn + 2 >= VELD_ENGINE_PATH_BYTES + 64)
						return -1;
					if ((!json_is_object(item) && !json_is_array(item)) ||
					    (veld_engine__nested(item, 0) & VELD_NESTED_VOID))
						continue;
					memcpy(path + at, id, idn);
					path[at + idn] = '.';
					if (unknown_into(&f->sub, item, path, at + idn + 1, out, depth + 1))
						return -1;
				}
			} else if (unknown_into(&f->sub, v, path, at, out, depth + 1)) {
				return -1;
			}
		}
		path[plen] = '\0';
	}
	return 0;
}

static int cmp_json_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *veld_engine__unknown(const veld_decls *d, const json_t *raw)
{
	char path[VELD_ENGINE_PATH_BYTES + 64];
	json_t *out = json_array(), *sorted, **items;
	size_t i, n;
	path[0] = '\0';
	if (!out || unknown_into(&d->top, raw, path, 0, out, 0)) {
		json_decref(out);
		return NULL;
	}
	n = json_array_size(out);
	if (n < 2)
		return out;
	items = malloc(n * sizeof *items);
	sorted = json_array();
	if (!items || !sorted) {
		free(items);
		json_decref(sorted);
		json_decref(out);
		return NULL;
	}
	for (i = 0; i < n; i++)
		items[i] = json_array_get(out, i);
	qsort(items, n, sizeof *items, cmp_json_str);
	for (i = 0; i < n; i++)
		json_array_append(sorted, items[i]);
	free(items);
	json_decref(out);
	return sorted;
}

/* ---- values ------------------------------------------------------------------------ */

/* A value of a choice: one of the options, numbers by value (2.0 is 2). */
int veld_engine__is_option(const veld_decl *f, const json_t *v)
{
	size_t i;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		for (i = 0; i < f->nopts; i++)
			if (!f->opts[i].is_int && f->opts[i].n == n && !memcmp(f->opts[i].s, s, n))
				return 1;
		return 0;
	}
	if (json_is_number(v)) {
		long long x;
		if (json_is_integer(v)) {
			x = (long long)json_integer_value(v);
		} else {
			double d = json_real_value(v);
			if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || floor(d) != d)
				return 0;
			x = (long long)d;
		}
		for (i = 0; i < f->nopts; i++)
			if (f->opts[i].is_int && f->opts[i].i == x)
				return 1;
	}
	return 0;
}

/* An integer value (JSON integers, and reals with an integral value). */
int veld_engine__int_of(const json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = (long long)json_integer_value(v);
		return 1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && floor(d) == d) {
			*out = (long long)d;
			return 1;
		}
	}
	return 0;
}

static const long long POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
#define DECIMAL_MAX 9007199254740992.0 /* 2^53 */

/* prelude.lua's decimal.parse: a number or "25630,67" -> units of 10^-scale. */
int veld_engine__decimal_of(const json_t *v, int scale, long long *out)
{
	long long p = POW10[scale < 0 || scale > 6 ? 2 : scale];
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		double lim = floor(DECIMAL_MAX / (double)p);
		if ((double)x > lim || (double)x < -lim)
			return 0;
		*out = (long long)x * p;
		return 1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v), x, r;
		if (d != d || d > DECIMAL_MAX / (double)p || d < -DECIMAL_MAX / (double)p)
			return 0;
		x = d * (double)p;
		r = x >= 0 ? floor(x + 0.5) : -floor(-x + 0.5);
		if (x - r > 1e-6 * (double)p || r - x > 1e-6 * (double)p)
			return 0;
		*out = (long long)r;
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v), *q;
		size_t len = json_string_length(v), nint = 0, nfrac = 0, i;
		int neg = 0, sep = 0;
		long long n = 0;
		q = s;
		if (q < s + len && *q == '-')
			neg = 1, q++;
		while (q < s + len && *q >= '0' && *q <= '9')
			q++, nint++;
		if (q < s + len && (*q == '.' || *q == ','))
			q++, sep = 1;
		while (q < s + len && *q >= '0' && *q <= '9')
			q++, nfrac++;
		if (q != s + len || nint == 0 || nint + (size_t)scale > 15 || nfrac > (size_t)scale ||
		    (sep && nfrac == 0))
			return 0;
		for (i = 0, q = s + neg; i < nint + nfrac + (size_t)sep; i++, q++)
			if (*q != '.' && *q != ',')
				n = n * 10 + (*q - '0');
		for (i = nfrac; i < (size_t)scale; i++)
			n *= 10;
		*out = neg ? -n : n;
		return 1;
	}
	return 0;
}

/* prelude.lua's date.valid: "YYYY-MM-DD", a real calendar date, year >= 1000
** (core's one definition). */
int veld_engine__date_ok(const json_t *v)
{
	return json_is_string(v) && veld_date__is(json_string_value(v), json_string_length(v));
}

/* Characters of a UTF-8 string (jansson holds valid UTF-8 only). */
size_t veld_engine__utf8_chars(const char *s, size_t n)
{
	size_t i, c = 0;
	for (i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

/* ---- one encoding per value ------------------------------------------------------------ */

/* The declaration of the flat path `path` ("huisvesting.score",
** "acties.<item id>.status"), or NULL when the form does not know it. */
static const veld_decl *decl_of(const veld_decls *d, const char *path)
{
	const veld_scope *sc = &d->top;
	const veld_decl *f = NULL;
	const char *p = path, *dot;
	int item = 0;
	for (;; p = dot + 1) {
		size_t n, at = 0;
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (item) {
			item = 0; /* the item id of a repeating group */
		} else {
			if (!sc || !(f = veld_engine__find(sc, p, n, &at)))
				return NULL;
			sc = f->kind == VELD_FIELD_GROUP ? &f->sub : NULL;
			item = f->kind == VELD_FIELD_GROUP && f->repeating;
		}
		if (!dot)
			return f;
	}
}

/* `v` with each integral real as the integer it is (new reference), or a
** new reference to `v` itself when there is none; NULL: out of memory. */
static json_t *integers_of(json_t *v)
{
	long long n;
	json_t *copy, *x;
	size_t i;
	if (json_is_real(v) && veld_engine__int_of(v, &n))
		return json_integer((json_int_t)n);
	if (!json_is_array(v))
		return json_incref(v);
	if (!(copy = json_array()))
		return NULL;
	json_array_foreach(v, i, x) {
		if (json_array_append_new(copy, integers_of(x))) {
			json_decref(copy);
			return NULL;
		}
	}
	return copy;
}

int veld_engine__canonical(const veld_decls *d, json_t *flat)
{
	const char *k;
	json_t *v;
	json_object_foreach(flat, k, v) {
		const veld_decl *f;
		if (!json_is_real(v) && !json_is_array(v))
			continue;
		f = decl_of(d, k);
		if (!f || (f->kind != VELD_FIELD_INT && f->kind != VELD_FIELD_CHOICE && f->kind != VELD_FIELD_MULTI))
			continue;
		/* replacing the value of a key leaves the iteration as it was */
		if (json_object_set_new(flat, k, integers_of(v)))
			return VELD_ERROR;
	}
	return VELD_OK;
}

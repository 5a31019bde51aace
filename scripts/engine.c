/*
** engine.c — the form engine's reading of a record, in C.
**
** A form declares its fields in Lua (prelude.lua: field.text { ... }, groups,
** repeating groups, when(...) conditions).  After a form script has run,
** veld_engine__compile copies those declarations into C (kinds, names,
** labels, bounds, options, conditions) so that reading a record does not
** interpret Lua for every field: a full Sociale Balans has some 100 values,
** and validation runs on every save.
**
** Reading a record (veld_engine__read) is what the prelude's engine did in
** Lua before, in the same order and with the same results:
**   0. the input (field paths as the store keeps them, "huisvesting.score",
**      or nested objects, or both) is folded into nested groups: nulls are
**      absent, objects given as values are merged member by member, a path
**      both a value and a group is refused (VELD_EINVALID);
**   1. types: every declared field is typed (texts, integers, decimals in
**      units of 10^-scale, dates, booleans, choices, lists, groups, items
**      keyed by id) into a new Lua table, the typed record `r` that rules
**      and computed values see; a value of the wrong type is absent from r
**      and its failure is kept by path;
**   2. visibility and required, in form order: hidden fields are dropped
**      from r, failures are reported in form order (items in id order), an
**      absent fixed group becomes an empty one;
**   3. unknown paths (fields this version of the form does not declare),
**      sorted, when the record claims this version or none.
** Conditions written as functions, and the Dutch text of every failure
** (engine.message in prelude.lua), stay in Lua: C calls them, the first
** only where a form uses one and the second only when something fails.
**
** Everything here runs inside a protected call into the form's sandbox
** (form.c), so a Lua error raised on the way (out of memory, a condition
** function that fails or hits a limit) unwinds cleanly.  The C memory a
** read allocates hangs off a userdata or is freed before any call that can
** raise, so nothing leaks on that path.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PATH_DEPTH   16   /* segments of a field path */
#define PATH_BYTES   512  /* bytes of a field path */
#define SEGMENT_MAX  255  /* bytes of one segment */

enum { K_TEXT, K_INT, K_DECIMAL, K_DATE, K_BOOL, K_CHOICE, K_MULTI, K_GROUP };
enum { C_TRUE, C_FALSE, C_FUNC, C_WHEN };
enum { OP_EQ, OP_NE, OP_HAS, OP_IN };

typedef struct cond {
	int kind;
	int op;            /* C_WHEN */
	int ref;           /* C_FUNC: the function; C_WHEN: the when(...) table */
	int key;           /* C_WHEN: the field of the same group it reads (names[key]) */
} cond;

typedef struct option {
	int is_int;
	lua_Integer i;
	char *s;
	size_t n;
} option;

typedef struct decl decl;

typedef struct scope {
	decl *f;
	size_t n;
} scope;

struct decl {
	char *name;
	size_t nlen;
	char *label;
	int kind;
	int repeating;
	int ref;           /* the declaration table (messages) */
	int key;           /* its name in the names table */
	cond required, visible;
	int has_min, has_max;
	lua_Integer min, max; /* int, decimal (scaled) */
	char dmin[11], dmax[11];
	int scale;
	lua_Integer max_length; /* 0: none */
	option *opts;
	size_t nopts;
	scope sub;
};

struct veld_decls {
	scope top;
	int engine;        /* registry reference to the engine table */
	int names;         /* registry reference to the names table */
	int nnames;
};

/* ---- declarations: Lua -> C ------------------------------------------------------- */

static void scope_free(scope *sc)
{
	size_t i, j;
	for (i = 0; i < sc->n; i++) {
		decl *f = &sc->f[i];
		free(f->name);
		free(f->label);
		for (j = 0; j < f->nopts; j++)
			free(f->opts[j].s);
		free(f->opts);
		scope_free(&f->sub);
	}
	free(sc->f);
	sc->f = NULL;
	sc->n = 0;
}

void veld_engine__free(veld_decls *d)
{
	if (!d)
		return;
	scope_free(&d->top);
	free(d);
}

/* String field `k` of the table on top (or NULL). */
static const char *get_str(lua_State *L, const char *k, size_t *n)
{
	const char *s;
	lua_getfield(L, -1, k);
	s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
	lua_pop(L, 1);
	return s; /* the declaration table keeps the string alive */
}

static int get_int(lua_State *L, const char *k, lua_Integer *v)
{
	int ok;
	lua_getfield(L, -1, k);
	ok = lua_isinteger(L, -1);
	if (ok)
		*v = lua_tointeger(L, -1);
	lua_pop(L, 1);
	return ok;
}

static int compile_cond(lua_State *L, cond *c, const char *key, const char **field, veld_err *err)
{
	lua_getfield(L, -1, key);
	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		c->kind = lua_toboolean(L, -1) ? C_TRUE : C_FALSE;
		lua_pop(L, 1);
		return VELD_OK;
	case LUA_TFUNCTION:
		c->kind = C_FUNC;
		c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		return VELD_OK;
	case LUA_TTABLE: {
		const char *op;
		c->kind = C_WHEN;
		*field = get_str(L, "field", NULL);
		op = get_str(L, "op", NULL);
		c->op = !op ? -1 : !strcmp(op, "=") ? OP_EQ : !strcmp(op, "~=") ? OP_NE : !strcmp(op, "has") ? OP_HAS
		        : !strcmp(op, "in") ? OP_IN : -1;
		if (!*field || c->op < 0) {
			lua_pop(L, 1);
			return veld_err__set(err, VELD_ERROR, "form engine: a malformed condition");
		}
		c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		return VELD_OK;
	}
	default:
		lua_pop(L, 1);
		return veld_err__set(err, VELD_ERROR, "form engine: a malformed condition");
	}
}

static int compile_options(lua_State *L, decl *f, veld_err *err)
{
	lua_Integer i, n;
	lua_getfield(L, -1, "options");
	n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
	f->opts = calloc((size_t)n + 1, sizeof *f->opts);
	if (!f->opts) {
		lua_pop(L, 1);
		return veld_err__set(err, VELD_ERROR, "out of memory");
	}
	for (i = 1; i <= n; i++) {
		option *o = &f->opts[f->nopts];
		lua_rawgeti(L, -1, i);
		lua_rawgeti(L, -1, 1);
		if (lua_isinteger(L, -1)) {
			o->is_int = 1;
			o->i = lua_tointeger(L, -1);
			f->nopts++;
		} else if (lua_type(L, -1) == LUA_TSTRING) {
			const char *s = lua_tolstring(L, -1, &o->n);
			if (!(o->s = strndup(s, o->n))) {
				lua_pop(L, 3);
				return veld_err__set(err, VELD_ERROR, "out of memory");
			}
			f->nopts++;
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return VELD_OK;
}

static const char *const KIND_NAMES[] = {"text", "int", "decimal", "date", "bool", "choice", "multi", "group"};

/* The scope table ({list = ..., byname = ...}) on top of the stack. */
static int compile_scope(lua_State *L, veld_decls *d, int names, scope *sc, veld_err *err, int depth)
{
	lua_Integer i, n;
	size_t j, k2;
	int rc = VELD_OK;
	const char **reqf, **visf; /* when(...) fields, resolved once the scope is read */
	if (depth > PATH_DEPTH)
		return veld_err__set(err, VELD_EINVALID, "form groups are nested too deep");
	luaL_checkstack(L, 8, "out of memory");
	lua_getfield(L, -1, "list");
	n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
	/* a userdata, so that a Lua error on the way leaks nothing */
	reqf = lua_newuserdatauv(L, 2 * ((size_t)n + 1) * sizeof *reqf, 0);
	memset(reqf, 0, 2 * ((size_t)n + 1) * sizeof *reqf);
	visf = reqf + n + 1;
	lua_insert(L, -2); /* scope userdata list */
	sc->f = calloc((size_t)n + 1, sizeof *sc->f);
	if (!sc->f) {
		lua_pop(L, 2);
		return veld_err__set(err, VELD_ERROR, "out of memory");
	}
	for (i = 1; i <= n && rc == VELD_OK; i++) {
		decl *f = &sc->f[sc->n++];
		const char *s;
		size_t len, k;
		lua_Integer v;
		f->ref = LUA_NOREF;
		f->required.ref = f->visible.ref = LUA_NOREF;
		lua_rawgeti(L, -1, i);
		s = get_str(L, "kind", NULL);
		for (k = 0; s && k < sizeof KIND_NAMES / sizeof *KIND_NAMES; k++)
			if (!strcmp(s, KIND_NAMES[k]))
				break;
		if (!s || k == sizeof KIND_NAMES / sizeof *KIND_NAMES) {
			lua_pop(L, 1);
			rc = veld_err__set(err, VELD_ERROR, "form engine: a field of unknown kind");
			break;
		}
		f->kind = (int)k;
		s = get_str(L, "name", &len);
		f->name = s ? strndup(s, len) : NULL;
		f->nlen = len;
		s = get_str(L, "label", &len);
		f->label = s ? strndup(s, len) : NULL;
		if (!f->name || !f->label) {
			lua_pop(L, 1);
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
			break;
		}
		lua_pushlstring(L, f->name, f->nlen);
		f->key = ++d->nnames;
		lua_rawseti(L, names, f->key);
		if ((rc = compile_cond(L, &f->required, "required", &reqf[sc->n - 1], err)) ||
		    (rc = compile_cond(L, &f->visible, "visible", &visf[sc->n - 1], err))) {
			lua_pop(L, 1);
			break;
		}
		if (f->kind == K_DATE) {
			if ((s = get_str(L, "min", &len)) && len < sizeof f->dmin)
				f->has_min = 1, memcpy(f->dmin, s, len + 1);
			if ((s = get_str(L, "max", &len)) && len < sizeof f->dmax)
				f->has_max = 1, memcpy(f->dmax, s, len + 1);
		} else {
			f->has_min = get_int(L, "min", &f->min);
			f->has_max = get_int(L, "max", &f->max);
		}
		if (get_int(L, "scale", &v))
			f->scale = (int)v;
		if (get_int(L, "max_length", &v))
			f->max_length = v;
		lua_getfield(L, -1, "repeating");
		f->repeating = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if ((f->kind == K_CHOICE || f->kind == K_MULTI) && (rc = compile_options(L, f, err))) {
			lua_pop(L, 1);
			break;
		}
		if (f->kind == K_GROUP) {
			lua_getfield(L, -1, "scope");
			rc = compile_scope(L, d, names, &f->sub, err, depth + 1);
			lua_pop(L, 1);
		}
		f->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the declaration */
	}
	lua_pop(L, 1); /* the list */
	/* when(field, ...) names a field of the same group (prelude.lua checked) */
	for (j = 0; j < sc->n && rc == VELD_OK; j++)
		for (k2 = 0; k2 < sc->n; k2++) {
			if (reqf[j] && !strcmp(reqf[j], sc->f[k2].name))
				sc->f[j].required.key = sc->f[k2].key;
			if (visf[j] && !strcmp(visf[j], sc->f[k2].name))
				sc->f[j].visible.key = sc->f[k2].key;
		}
	lua_pop(L, 1); /* the userdata */
	return rc;
}

typedef struct compile_ctx {
	veld_decls *d;
	int rc;
	veld_err *err;
} compile_ctx;

static int compile_run(lua_State *L)
{
	compile_ctx *cc = lua_touserdata(L, 1);
	int names;
	lua_newtable(L);
	names = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, cc->d->engine);
	lua_getfield(L, -1, "scope");
	lua_call(L, 0, 1);
	luaL_checktype(L, -1, LUA_TTABLE);
	cc->rc = compile_scope(L, cc->d, names, &cc->d->top, cc->err, 0);
	lua_pushvalue(L, names);
	cc->d->names = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int veld_engine__compile(veld_decls **out, veld_sandbox *sb, int engine, veld_err *err)
{
	compile_ctx cc;
	int rc;
	*out = NULL;
	cc.d = calloc(1, sizeof *cc.d);
	if (!cc.d)
		return veld_err__set(err, VELD_ERROR, "out of memory");
	cc.d->engine = engine;
	cc.rc = VELD_OK;
	cc.err = err;
	rc = veld_sandbox__ccall(sb, compile_run, &cc);
	if (rc != VELD_OK)
		rc = veld_err__set(err, VELD_ERROR, "cannot read the form's fields: %s", veld_sandbox__errmsg(sb));
	else
		rc = cc.rc;
	if (rc != VELD_OK) {
		veld_engine__free(cc.d);
		return rc;
	}
	*out = cc.d;
	return VELD_OK;
}

/* ---- step 0: the input as nested groups ----------------------------------------------- */

static int fold_path(json_t *root, char *path, size_t plen, json_t *value, veld_err *err, int depth);

static int fold_members(json_t *root, char *path, size_t plen, json_t *obj, veld_err *err, int depth)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		size_t n = strlen(k), at = plen;
		if (plen + (plen ? 1 : 0) + n >= PATH_BYTES)
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
	int nseg = 0;
	if (depth > PATH_DEPTH)
		return veld_err__set(err, VELD_EINVALID, "field '%s' is nested too deep", path);
	if (json_is_null(value))
		return VELD_OK; /* a cleared field is absent */
	if (json_is_object(value))
		return fold_members(root, path, plen, value, err, depth);
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		json_t *next;
		if (n == 0 || n > SEGMENT_MAX || ++nseg > PATH_DEPTH)
			return veld_err__set(err, VELD_EINVALID, "field path '%s' is malformed", path);
		next = json_object_getn(g, p, n);
		if (!dot) {
			if (next)
				return veld_err__set(err, VELD_EINVALID, "field '%s' is both a value and a group", path);
			if (json_object_setn(g, p, n, value))
				return veld_err__set(err, VELD_ERROR, "out of memory");
			return VELD_OK;
		}
		if (!next) {
			next = json_object();
			if (!next || json_object_setn_new(g, p, n, next))
				return veld_err__set(err, VELD_ERROR, "out of memory");
		} else if (!json_is_object(next)) {
			return veld_err__set(err, VELD_EINVALID, "field '%s' is both a value and a group", path);
		}
		g = next;
		p = dot + 1;
	}
}

json_t *veld_engine__fold(const json_t *fields, veld_err *err)
{
	const char *k;
	json_t *v, *root;
	char path[PATH_BYTES];
	if (!(root = json_object())) {
		veld_err__set(err, VELD_ERROR, "out of memory");
		return NULL;
	}
	json_object_foreach((json_t *)fields, k, v) {
		size_t n = strlen(k);
		if (k[0] == '_')
			continue; /* not a field */
		if (n >= PATH_BYTES) {
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

/* ---- steps 1 and 2: reading ---------------------------------------------------------------- */

typedef struct reader {
	lua_State *L;
	const veld_decls *d;
	int r;        /* stack index of the typed record (during step 2) */
	int bad;      /* stack index of the failures by path (a table) */
	int anybad;
	int bail;     /* the input needs folding first */
	int unknown;  /* the input has paths the form does not declare */
	int errors;   /* stack index of the list failures go to, or 0 */
	int names;    /* stack index of the names table (keys pushed without hashing) */
	char path[PATH_BYTES + 64];
	size_t plen;
	const decl *stack[PATH_DEPTH + 2]; /* the groups above the field being read */
	int depth;
} reader;

/* Append ".name" (or "name" at the top) to the path; returns the old length. */
static size_t path_push(reader *rd, const char *s, size_t n)
{
	size_t old = rd->plen, at = old;
	if (at + n + 2 >= sizeof rd->path)
		n = sizeof rd->path - at - 2; /* cut: plen stays below the size - 2 */
	if (at)
		rd->path[at++] = '.';
	memcpy(rd->path + at, s, n);
	rd->plen = at + n;
	rd->path[rd->plen] = '\0';
	return old;
}

static void path_pop(reader *rd, size_t old)
{
	rd->plen = old;
	rd->path[old] = '\0';
}

/* Push the label of `f` with its groups' labels before it. */
static void push_label(reader *rd, const decl *f)
{
	luaL_Buffer b;
	int i;
	luaL_buffinit(rd->L, &b);
	for (i = 0; i < rd->depth; i++) {
		luaL_addstring(&b, rd->stack[i]->label);
		luaL_addstring(&b, " \xe2\x80\x93 "); /* " – " */
	}
	luaL_addstring(&b, f->label);
	luaL_pushresult(&b);
}

/* Push engine.message(code, label, decl, arg) for `f`; the argument is on
** top of the stack when has_arg (and is replaced by the message). */
static void push_message(reader *rd, const decl *f, const char *code, int has_arg)
{
	lua_State *L = rd->L;
	luaL_checkstack(L, 6, "out of memory");
	lua_rawgeti(L, LUA_REGISTRYINDEX, rd->d->engine);
	lua_getfield(L, -1, "message");
	lua_remove(L, -2);
	lua_pushstring(L, code);
	if (f) {
		push_label(rd, f);
		lua_rawgeti(L, LUA_REGISTRYINDEX, f->ref);
	} else {
		lua_pushliteral(L, "");
		lua_pushnil(L);
	}
	if (has_arg) {
		lua_pushvalue(L, -5);
		lua_call(L, 4, 1);
		lua_remove(L, -2);
	} else {
		lua_call(L, 3, 1);
	}
}

/* bad[path] = the message for `f` (the argument on top when has_arg). */
static void fail(reader *rd, const decl *f, const char *code, int has_arg)
{
	lua_State *L = rd->L;
	push_message(rd, f, code, has_arg);
	lua_setfield(L, rd->bad, rd->path);
	rd->anybad = 1;
}

/* Append {field = path, message = <top>} to the errors list (pops). */
static void add_error(reader *rd)
{
	lua_State *L = rd->L;
	if (!rd->errors) {
		lua_pop(L, 1);
		return;
	}
	lua_createtable(L, 0, 2);
	lua_pushstring(L, rd->path);
	lua_setfield(L, -2, "field");
	lua_insert(L, -2);
	lua_setfield(L, -2, "message");
	lua_rawseti(L, rd->errors, (lua_Integer)lua_rawlen(L, rd->errors) + 1);
}

static int is_option(const decl *f, const json_t *v)
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
		lua_Integer x;
		if (json_is_integer(v)) {
			x = (lua_Integer)json_integer_value(v);
		} else {
			double d = json_real_value(v);
			if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || floor(d) != d)
				return 0;
			x = (lua_Integer)d;
		}
		for (i = 0; i < f->nopts; i++)
			if (f->opts[i].is_int && f->opts[i].i == x)
				return 1;
	}
	return 0;
}

/* An integer value (JSON integers, and reals with an integral value). */
static int int_of(const json_t *v, lua_Integer *out)
{
	if (json_is_integer(v)) {
		*out = (lua_Integer)json_integer_value(v);
		return 1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && floor(d) == d) {
			*out = (lua_Integer)d;
			return 1;
		}
	}
	return 0;
}

static const lua_Integer POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
#define DECIMAL_MAX 9007199254740992.0 /* 2^53 */

/* prelude.lua's decimal.parse: a number or "25630,67" -> units of 10^-scale. */
static int decimal_of(const json_t *v, int scale, lua_Integer *out)
{
	lua_Integer p = POW10[scale < 0 || scale > 6 ? 2 : scale];
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		double lim = floor(DECIMAL_MAX / (double)p);
		if ((double)x > lim || (double)x < -lim)
			return 0;
		*out = (lua_Integer)x * p;
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
		*out = (lua_Integer)r;
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v), *q;
		size_t len = json_string_length(v), nint = 0, nfrac = 0, i;
		int neg = 0, sep = 0;
		lua_Integer n = 0;
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

static int leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* prelude.lua's date.valid: "YYYY-MM-DD", a real calendar date, year >= 1000. */
static int date_ok(const json_t *v)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *s = json_string_value(v);
	long y, m, d;
	int i;
	if (!s || json_string_length(v) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !(s[i] >= '0' && s[i] <= '9'))
			return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1000 || m < 1 || m > 12 || d < 1)
		return 0;
	return d <= (m == 2 && leap(y) ? 29 : mdays[m - 1]);
}

/* Characters of a UTF-8 string (jansson holds valid UTF-8 only). */
static size_t utf8_chars(const char *s, size_t n)
{
	size_t i, c = 0;
	for (i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

/* Members of an object, or elements of an array keyed "1", "2", ... (what a
** Lua table of the array has).  Nulls are absent.  Returns 0 at the end. */
typedef struct members {
	const json_t *v;
	void *it;
	size_t i;
	char key[24];
} members;

static void members_init(members *m, const json_t *v)
{
	m->v = v;
	m->i = 0;
	m->it = json_is_object(v) ? json_object_iter((json_t *)v) : NULL;
}

static int members_next(members *m, const char **k, json_t **val)
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

static int any_member(const json_t *v)
{
	members m;
	const char *k;
	json_t *x;
	members_init(&m, v);
	return members_next(&m, &k, &x);
}

static int item_id_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return 0;
	return 1;
}

/* An object that folds to nothing: no member but nulls and such objects. */
static int is_void(const json_t *v, int depth)
{
	const char *k;
	json_t *m;
	if (!json_is_object(v))
		return 0;
	if (depth > PATH_DEPTH)
		return 0;
	json_object_foreach((json_t *)v, k, m) {
		if (!json_is_null(m) && !is_void(m, depth + 1))
			return 0;
	}
	return 1;
}

/* Objects nested deeper than a path may be (the fold refuses them). */
static int too_deep(const json_t *v, int level)
{
	const char *k;
	json_t *m;
	if (!json_is_object(v))
		return 0;
	if (level > PATH_DEPTH)
		return 1;
	json_object_foreach((json_t *)v, k, m) {
		if (too_deep(m, level + 1))
			return 1;
	}
	return 0;
}

static void read_scope(reader *rd, const scope *sc, const json_t *raw, int level);

/* Push the typed value of `v` for field `f` (nil if absent or wrong; a
** failure goes to bad[path]).  The path ends with the field's name. */
static void read_value(reader *rd, const decl *f, const json_t *v, int level)
{
	lua_State *L = rd->L;
	lua_Integer n;
	if (!v) {
		lua_pushnil(L);
		return;
	}
	switch (f->kind) {
	case K_TEXT:
		if (!json_is_string(v)) {
			fail(rd, f, "text", 0);
			break;
		}
		if (json_string_length(v) == 0)
			break;
		if (f->max_length && (lua_Integer)utf8_chars(json_string_value(v), json_string_length(v)) > f->max_length) {
			fail(rd, f, "max_length", 0);
			break;
		}
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		return;
	case K_INT:
	case K_DECIMAL:
		if (f->kind == K_INT ? !int_of(v, &n) : !decimal_of(v, f->scale, &n)) {
			fail(rd, f, f->kind == K_INT ? "int" : "decimal", 0);
			break;
		}
		if (f->has_min && n < f->min) {
			fail(rd, f, "min", 0);
			break;
		}
		if (f->has_max && n > f->max) {
			fail(rd, f, "max", 0);
			break;
		}
		lua_pushinteger(L, n);
		return;
	case K_DATE:
		if (!date_ok(v)) {
			fail(rd, f, "date", 0);
			break;
		}
		if (f->has_min && strcmp(json_string_value(v), f->dmin) < 0) {
			fail(rd, f, "min", 0);
			break;
		}
		if (f->has_max && strcmp(json_string_value(v), f->dmax) > 0) {
			fail(rd, f, "max", 0);
			break;
		}
		lua_pushlstring(L, json_string_value(v), 10);
		return;
	case K_BOOL:
		if (!json_is_boolean(v)) {
			fail(rd, f, "bool", 0);
			break;
		}
		lua_pushboolean(L, json_is_true(v));
		return;
	case K_CHOICE:
		if (!is_option(f, v)) {
			veld_sandbox__push_json(L, v);
			fail(rd, f, "choice", 1);
			break;
		}
		veld_sandbox__push_json(L, v);
		return;
	case K_MULTI: {
		size_t i, j, cnt;
		if (json_is_object(v)) {
			if (any_member(v))
				fail(rd, f, "list", 0);
			break;
		}
		if (!json_is_array(v) || (cnt = json_array_size(v)) == 0) {
			if (!json_is_array(v))
				fail(rd, f, "list", 0);
			break;
		}
		for (i = 0; i < cnt; i++)
			if (json_is_null(json_array_get(v, i))) {
				fail(rd, f, "list", 0);
				goto absent;
			}
		for (i = 0; i < cnt; i++) {
			json_t *x = json_array_get(v, i);
			if (!is_option(f, x)) {
				veld_sandbox__push_json(L, x);
				fail(rd, f, "choice", 1);
				goto absent;
			}
			for (j = 0; j < i; j++)
				if (json_equal(json_array_get(v, j), x) ||
				    (json_is_number(x) && json_is_number(json_array_get(v, j)) &&
				     json_number_value(x) == json_number_value(json_array_get(v, j)))) {
					veld_sandbox__push_json(L, x);
					fail(rd, f, "twice", 1);
					goto absent;
				}
		}
		lua_createtable(L, (int)cnt, 0);
		for (i = 0; i < cnt; i++) {
			veld_sandbox__push_json(L, json_array_get(v, i));
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		veld_sandbox__mark_array(L, -1);
		return;
	}
	case K_GROUP: {
		members m;
		const char *id;
		json_t *item;
		int any = 0;
		if (!json_is_object(v) && !json_is_array(v)) {
			fail(rd, f, "shape", 0);
			break;
		}
		rd->stack[rd->depth++] = f;
		if (!f->repeating) {
			read_scope(rd, &f->sub, v, level + 1);
			rd->depth--;
			return;
		}
		if (json_is_array(v) && any_member(v)) {
			rd->depth--;
			fail(rd, f, "keys", 0);
			break;
		}
		members_init(&m, v);
		while (members_next(&m, &id, &item))
			if (!is_void(item, 0) && !item_id_ok(id)) {
				rd->depth--;
				lua_pushstring(L, id);
				fail(rd, f, "item_key", 1);
				goto absent;
			}
		lua_newtable(L);
		members_init(&m, v);
		while (members_next(&m, &id, &item)) {
			size_t old;
			if (is_void(item, 0))
				continue; /* folds to nothing */
			old = path_push(rd, id, strlen(id));
			if (!json_is_object(item) && !json_is_array(item)) {
				rd->depth--;
				lua_pushstring(L, id);
				fail(rd, f, "item_shape", 1);
				rd->stack[rd->depth++] = f;
			} else {
				read_scope(rd, &f->sub, item, level + 2);
				lua_setfield(L, -2, id);
				any = 1;
			}
			path_pop(rd, old);
		}
		rd->depth--;
		if (!any) {
			lua_pop(L, 1);
			break;
		}
		return;
	}
	}
absent:
	lua_pushnil(L);
}

/* The declaration named k, looked for from *at on: input mostly comes in
** form order (an app's, the store's sorted paths in a group), so the next
** member is usually the next field. */
static const decl *find_decl(const scope *sc, const char *k, size_t n, size_t *at)
{
	size_t i, j;
	for (i = 0; i < sc->n; i++) {
		j = (*at + i) % sc->n;
		if (sc->f[j].nlen == n && sc->f[j].name[0] == k[0] && !memcmp(sc->f[j].name, k, n)) {
			*at = j + 1 < sc->n ? j + 1 : 0;
			return &sc->f[j];
		}
	}
	return NULL;
}

/* Push the typed table of a scope for `raw` (an object; an array or NULL:
** every field absent), reading the input as it is.  Input in the store's
** flat form ("huisvesting.score") or otherwise in need of folding sets
** rd->bail: the caller folds it and reads again. */
static void read_scope(reader *rd, const scope *sc, const json_t *raw, int level)
{
	lua_State *L = rd->L;
	void *it;
	size_t at = 0;
	luaL_checkstack(L, 8, "out of memory");
	lua_createtable(L, 0, (int)sc->n);
	if (!json_is_object(raw) || rd->bail)
		return;
	if (level > PATH_DEPTH) {
		rd->bail = 1;
		return;
	}
	for (it = json_object_iter((json_t *)raw); it && !rd->bail; it = json_object_iter_next((json_t *)raw, it)) {
		const char *k = json_object_iter_key(it);
		size_t n = json_object_iter_key_len(it), old;
		json_t *v = json_object_iter_value(it);
		const decl *f;
		if (n == 0 || n > SEGMENT_MAX || memchr(k, '.', n) || strlen(k) != n) {
			rd->bail = 1;
			break;
		}
		if (json_is_null(v) || (level == 0 && k[0] == '_'))
			continue;
		f = find_decl(sc, k, n, &at);
		if (!f || f->kind != K_GROUP) {
			if (json_is_object(v) && too_deep(v, level + 1)) {
				rd->bail = 1;
				break;
			}
			if (is_void(v, 0))
				continue; /* folds to nothing */
			if (!f) {
				rd->unknown = 1;
				continue;
			}
		}
		old = path_push(rd, f->name, f->nlen);
		lua_rawgeti(L, rd->names, f->key);
		read_value(rd, f, v, level);
		path_pop(rd, old);
		if (lua_isnil(L, -1))
			lua_pop(L, 2);
		else
			lua_rawset(L, -3);
	}
}

static int has_value(lua_State *L, int list, int value)
{
	lua_Integer i;
	int found = 0;
	if (lua_type(L, list) != LUA_TTABLE)
		return 0;
	for (i = 1; !found; i++) {
		if (lua_rawgeti(L, list, i) == LUA_TNIL) {
			lua_pop(L, 1);
			break;
		}
		found = lua_rawequal(L, -1, value);
		lua_pop(L, 1);
	}
	return found;
}

/* prelude.lua's holds(c, scope_values, r). */
static int holds(reader *rd, const cond *c, int values)
{
	lua_State *L = rd->L;
	int ok = 0;
	switch (c->kind) {
	case C_TRUE:
		return 1;
	case C_FALSE:
		return 0;
	case C_FUNC:
		luaL_checkstack(L, 4, "out of memory");
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
		lua_pushvalue(L, rd->r);
		lua_pushvalue(L, values);
		lua_call(L, 2, 1);
		ok = lua_toboolean(L, -1);
		lua_pop(L, 1);
		return ok;
	default:
		luaL_checkstack(L, 4, "out of memory");
		lua_rawgeti(L, rd->names, c->key);
		lua_rawget(L, values);                /* v */
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
		lua_getfield(L, -1, "value");         /* v cond value */
		lua_remove(L, -2);                    /* v value */
		switch (c->op) {
		case OP_EQ: ok = lua_rawequal(L, -2, -1); break;
		case OP_NE: ok = !lua_rawequal(L, -2, -1); break;
		case OP_HAS: ok = has_value(L, lua_absindex(L, -2), lua_absindex(L, -1)); break;
		default: ok = has_value(L, lua_absindex(L, -1), lua_absindex(L, -2)); break;
		}
		lua_pop(L, 2);
		return ok;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Push a bad[path] message, or nil (and return 0). */
static int bad_here(reader *rd)
{
	if (!rd->anybad)
		return 0;
	if (lua_getfield(rd->L, rd->bad, rd->path) == LUA_TNIL) {
		lua_pop(rd->L, 1);
		return 0;
	}
	return 1;
}

static void check_scope(reader *rd, const scope *sc, int values);

/* Step 2 over the items of a repeating group (`items`: their typed table,
** or 0), in id order; ids of items that were no table come from bad.  The
** ids are anchored in a table of this function's own: a condition function
** may change r while the items are checked. */
static void check_items(reader *rd, const decl *f, int items)
{
	lua_State *L = rd->L;
	const char **ids;
	lua_Integer n = 0, i;
	int list;
	luaL_checkstack(L, 8, "out of memory");
	lua_newtable(L);
	list = lua_gettop(L);
	if (items) {
		lua_pushnil(L);
		while (lua_next(L, items)) {
			lua_pop(L, 1);
			if (lua_type(L, -1) == LUA_TSTRING) {
				lua_pushvalue(L, -1);
				lua_rawseti(L, list, ++n);
			}
		}
	}
	if (rd->anybad) {
		lua_pushnil(L);
		while (lua_next(L, rd->bad)) {
			const char *p;
			lua_pop(L, 1);
			if (lua_type(L, -1) != LUA_TSTRING)
				continue;
			p = lua_tostring(L, -1);
			if (strncmp(p, rd->path, rd->plen) || p[rd->plen] != '.' || strchr(p + rd->plen + 1, '.'))
				continue;
			if (items) {
				int t = lua_getfield(L, items, p + rd->plen + 1);
				lua_pop(L, 1);
				if (t != LUA_TNIL)
					continue;
			}
			lua_pushstring(L, p + rd->plen + 1);
			lua_rawseti(L, list, ++n);
		}
	}
	ids = lua_newuserdatauv(L, (size_t)n * sizeof *ids + 1, 0);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, list, i + 1);
		ids[i] = lua_tostring(L, -1); /* anchored by list */
		lua_pop(L, 1);
	}
	qsort(ids, (size_t)n, sizeof *ids, cmp_str);
	rd->stack[rd->depth++] = f;
	for (i = 0; i < n; i++) {
		size_t old = path_push(rd, ids[i], strlen(ids[i]));
		if (items && lua_getfield(L, items, ids[i]) == LUA_TTABLE) {
			check_scope(rd, &f->sub, lua_gettop(L));
			lua_pop(L, 1);
		} else {
			if (items)
				lua_pop(L, 1);
			if (bad_here(rd))
				add_error(rd);
		}
		path_pop(rd, old);
	}
	rd->depth--;
	lua_pop(L, 2);
}

/* Step 2 over the typed table at `values`. */
static void check_scope(reader *rd, const scope *sc, int values)
{
	lua_State *L = rd->L;
	size_t i;
	luaL_checkstack(L, 8, "out of memory");
	for (i = 0; i < sc->n; i++) {
		const decl *f = &sc->f[i];
		size_t old;
		int present, bad;
		/* Nothing to decide for an always visible, optional value when
		** nothing failed: most fields of most records. */
		if (f->visible.kind == C_TRUE && f->required.kind == C_FALSE && f->kind != K_GROUP && !rd->anybad)
			continue;
		old = path_push(rd, f->name, f->nlen);
		if (f->visible.kind != C_TRUE && !holds(rd, &f->visible, values)) {
			lua_rawgeti(L, rd->names, f->key);
			lua_pushnil(L);
			lua_rawset(L, values);
			path_pop(rd, old);
			continue;
		}
		lua_rawgeti(L, rd->names, f->key);
		present = lua_rawget(L, values) != LUA_TNIL;
		lua_pop(L, 1);
		bad = bad_here(rd);
		if (bad) {
			add_error(rd);
		} else if (!present && f->required.kind != C_FALSE && holds(rd, &f->required, values)) {
			if (f->kind == K_GROUP && f->repeating) {
				push_message(rd, f, "items", 0);
				add_error(rd);
			} else if (f->kind != K_GROUP) {
				push_message(rd, f, "required", 0);
				add_error(rd);
			}
		}
		if (f->kind == K_GROUP && !bad) {
			if (f->repeating) {
				int items = 0;
				if (present) {
					lua_rawgeti(L, rd->names, f->key);
					lua_rawget(L, values);
					items = lua_gettop(L);
				}
				check_items(rd, f, items);
				if (items)
					lua_pop(L, 1);
			} else {
				if (!present) {
					/* an absent fixed group: its required fields are still required */
					lua_rawgeti(L, rd->names, f->key);
					read_scope(rd, &f->sub, NULL, 0);
					lua_pushvalue(L, -1);
					lua_insert(L, -3);
					lua_rawset(L, values);
				} else {
					lua_rawgeti(L, rd->names, f->key);
					lua_rawget(L, values);
				}
				rd->stack[rd->depth++] = f;
				check_scope(rd, &f->sub, lua_gettop(L));
				rd->depth--;
				lua_pop(L, 1);
			}
		}
		path_pop(rd, old);
	}
}

int veld_engine__read(struct lua_State *L, const veld_decls *d, const json_t *raw, int errors, int *unknown)
{
	reader rd;
	memset(&rd, 0, sizeof rd);
	rd.L = L;
	rd.d = d;
	rd.errors = errors ? lua_absindex(L, errors) : 0;
	luaL_checkstack(L, 8, "out of memory");
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->names);
	rd.names = lua_gettop(L);
	lua_newtable(L);
	rd.bad = lua_gettop(L);
	read_scope(&rd, &d->top, raw, 0);
	if (rd.bail) {
		lua_settop(L, rd.names - 1);
		return 1;
	}
	rd.r = lua_gettop(L);
	check_scope(&rd, &d->top, rd.r);
	lua_replace(L, rd.names); /* r where the names were */
	lua_settop(L, rd.names);
	if (unknown)
		*unknown = rd.unknown;
	return 0;
}

/* ---- step 3: unknown paths ---------------------------------------------------------------- */

/* Unknown paths of `raw` (folded, or read as it is: the paths come out the
** same) into `out`, unsorted.  Nulls and objects that fold to nothing are
** absent; the top level's "_" members are not fields. */
static int unknown_into(const scope *sc, const json_t *raw, char *path, size_t plen, json_t *out, int depth)
{
	members m;
	const char *k;
	json_t *v;
	size_t hint = 0;
	if (depth > PATH_DEPTH + 2)
		return -1;
	members_init(&m, raw);
	while (members_next(&m, &k, &v)) {
		const decl *f;
		size_t n = strlen(k), at = plen;
		if ((depth == 0 && k[0] == '_') || is_void(v, 0))
			continue;
		f = sc && n ? find_decl(sc, k, n, &hint) : NULL;
		if (plen + n + 2 >= PATH_BYTES + 64)
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
		} else if (f->kind == K_GROUP && (json_is_object(v) || json_is_array(v))) {
			path[at++] = '.';
			if (f->repeating) {
				members im;
				const char *id;
				json_t *item;
				members_init(&im, v);
				while (members_next(&im, &id, &item)) {
					size_t idn = strlen(id);
					if (at + idn + 2 >= PATH_BYTES + 64)
						return -1;
					if ((!json_is_object(item) && !json_is_array(item)) || is_void(item, 0))
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
	char path[PATH_BYTES + 64];
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

void veld_engine__push_unknown(struct lua_State *L, const veld_decls *d, const json_t *unknown, int errors)
{
	size_t i;
	json_t *p;
	reader rd;
	memset(&rd, 0, sizeof rd);
	rd.L = L;
	rd.d = d;
	rd.errors = lua_absindex(L, errors);
	json_array_foreach(unknown, i, p) {
		snprintf(rd.path, sizeof rd.path, "%s", json_string_value(p));
		push_message(&rd, NULL, "unknown", 0);
		add_error(&rd);
	}
}

/*
** engine.c — the form engine in C: a form's declarations, read out of Lua.
**
** A form declares its fields in Lua (prelude.lua: field.text { ... }, groups,
** repeating groups, when(...) conditions).  After a form script has run,
** veld_engine__compile copies those declarations into C (kinds, names,
** labels, bounds, options, conditions) so that reading a record does not
** interpret Lua for every field: a full Sociale Balans has some 100 values,
** and validation runs on every save.
**
** Reading a record is what the prelude's engine did in Lua before, in the
** same order and with the same results:
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
** The engine is three files, one per thing it does, around the declarations
** (scripts.h, "inside the form engine"), which only this file writes:
**   engine.c        the declarations: compiled from the engine's Lua tables
**                   in one protected call when a form loads, looked up by
**                   name (veld_engine__find), freed with the form;
**   engine_read.c   steps 1 and 2, the hot path: a record read against the
**                   declarations into `r`, with its failures in form order;
**   engine_input.c  the input as plain JSON, no Lua: step 0 (folded into
**                   groups), step 3 (the paths no declaration knows) and
**                   the checks step 1 makes of one value.
** Reading and the paths never change a declaration; this file never sees a
** record.
**
** Everything here runs inside a protected call into the form's sandbox
** (form.c), so a Lua error raised on the way (out of memory, a malformed
** declaration) unwinds cleanly.  The C memory compiling allocates hangs off
** the declarations being built or off a userdata, so nothing leaks on that
** path: the caller frees what was built when the call fails.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdlib.h>
#include <string.h>

/* ---- declarations: Lua -> C ------------------------------------------------------- */

static void scope_free(veld_scope *sc)
{
	size_t i, j;
	for (i = 0; i < sc->n; i++) {
		veld_decl *f = &sc->f[i];
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

static int compile_cond(lua_State *L, veld_decl_cond *c, const char *key, const char **field, veld_err *err)
{
	lua_getfield(L, -1, key);
	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		c->kind = lua_toboolean(L, -1) ? VELD_COND_TRUE : VELD_COND_FALSE;
		lua_pop(L, 1);
		return VELD_OK;
	case LUA_TFUNCTION:
		c->kind = VELD_COND_FUNC;
		c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		return VELD_OK;
	case LUA_TTABLE: {
		const char *op;
		c->kind = VELD_COND_WHEN;
		*field = get_str(L, "field", NULL);
		op = get_str(L, "op", NULL);
		c->op = !op ? -1 : !strcmp(op, "=") ? VELD_WHEN_EQ : !strcmp(op, "~=") ? VELD_WHEN_NE : !strcmp(op, "has") ? VELD_WHEN_HAS
		        : !strcmp(op, "in") ? VELD_WHEN_IN : -1;
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

static int compile_options(lua_State *L, veld_decl *f, veld_err *err)
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
		veld_option *o = &f->opts[f->nopts];
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

static int compile_scope(lua_State *L, veld_decls *d, int names, veld_scope *sc, veld_err *err, int depth);

/* The declaration table on top of the stack (left there) into f; its name
** goes to the names table and the field names of its when(...) conditions
** to *reqf and *visf, for compile_scope to resolve. */
static int compile_field(lua_State *L, veld_decls *d, int names, veld_decl *f, const char **reqf,
                         const char **visf, veld_err *err, int depth)
{
	const char *s;
	size_t len, k;
	lua_Integer v;
	int rc;
	s = get_str(L, "kind", NULL);
	for (k = 0; s && k < sizeof KIND_NAMES / sizeof *KIND_NAMES; k++)
		if (!strcmp(s, KIND_NAMES[k]))
			break;
	if (!s || k == sizeof KIND_NAMES / sizeof *KIND_NAMES)
		return veld_err__set(err, VELD_ERROR, "form engine: a field of unknown kind");
	f->kind = (int)k;
	s = get_str(L, "name", &len);
	f->name = s ? strndup(s, len) : NULL;
	f->nlen = len;
	s = get_str(L, "label", &len);
	f->label = s ? strndup(s, len) : NULL;
	if (!f->name || !f->label)
		return veld_err__set(err, VELD_ERROR, "out of memory");
	lua_pushlstring(L, f->name, f->nlen);
	f->key = ++d->nnames;
	lua_rawseti(L, names, f->key);
	if ((rc = compile_cond(L, &f->required, "required", reqf, err)) ||
	    (rc = compile_cond(L, &f->visible, "visible", visf, err)))
		return rc;
	if (f->kind == VELD_FIELD_DATE) {
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
	else if (f->kind == VELD_FIELD_TEXT)
		f->max_length = VELD_TEXT_MAX;
	lua_getfield(L, -1, "repeating");
	f->repeating = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if ((f->kind == VELD_FIELD_CHOICE || f->kind == VELD_FIELD_MULTI) && (rc = compile_options(L, f, err)))
		return rc;
	if (f->kind == VELD_FIELD_GROUP) {
		lua_getfield(L, -1, "scope");
		rc = compile_scope(L, d, names, &f->sub, err, depth + 1);
		lua_pop(L, 1);
	}
	return rc;
}

/* The scope table ({list = ..., byname = ...}) on top of the stack. */
static int compile_scope(lua_State *L, veld_decls *d, int names, veld_scope *sc, veld_err *err, int depth)
{
	lua_Integer i, n;
	size_t j, k;
	int rc = VELD_OK;
	const char **reqf, **visf; /* when(...) fields, resolved once the scope is read */
	if (depth > VELD_ENGINE_PATH_DEPTH)
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
	for (i = 1; i <= n; i++) {
		veld_decl *f = &sc->f[sc->n++];
		f->ref = LUA_NOREF;
		f->required.ref = f->visible.ref = LUA_NOREF;
		lua_rawgeti(L, -1, i);
		rc = compile_field(L, d, names, f, &reqf[sc->n - 1], &visf[sc->n - 1], err, depth);
		if (rc != VELD_OK) {
			lua_pop(L, 1);
			break;
		}
		f->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the declaration */
	}
	lua_pop(L, 1); /* the list */
	/* when(field, ...) names a field of the same group (prelude.lua checked) */
	for (j = 0; j < sc->n && rc == VELD_OK; j++)
		for (k = 0; k < sc->n; k++) {
			if (reqf[j] && !strcmp(reqf[j], sc->f[k].name))
				sc->f[j].required.key = sc->f[k].key;
			if (visf[j] && !strcmp(visf[j], sc->f[k].name))
				sc->f[j].visible.key = sc->f[k].key;
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

/* ---- looking a field up ---------------------------------------------------------- */

/* The declaration named k, looked for from *at on: input mostly comes in
** form order (an app's, the store's sorted paths in a group), so the next
** member is usually the next field. */
const veld_decl *veld_engine__find(const veld_scope *sc, const char *k, size_t n, size_t *at)
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

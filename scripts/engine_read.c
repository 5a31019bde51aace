/*
** engine_read.c — the form engine's steps 1 and 2: a record read into `r`.
**
** veld_engine__read types every declared field of a record (step 1) into a
** new Lua table, the typed record `r` that rules and computed values see,
** then decides visibility and required fields in form order (step 2: a
** value a put writes to a hidden field fails there); see
** engine.c for the steps and the declarations they read.  This is the hot
** path of every save, so it reads the input as it comes: input in the
** store's flat form ("huisvesting.score") or otherwise in need of folding
** makes it stop at once (rd->bail) and the caller folds it first
** (engine_input.c) and reads again.
**
** It owns the reader (the path being read, the groups above it, the
** failures by path) and the value checks, which follow prelude.lua's
** (decimal.parse, date.valid) to the letter.  It must not change the
** declarations or the input.  Everything runs inside a protected call into
** the form's sandbox (form.c), so a Lua error raised on the way (out of
** memory, a condition function that fails or hits a limit) unwinds
** cleanly; the C memory a read allocates hangs off a userdata, so nothing
** leaks on that path.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	const json_t *written; /* the flat paths a put writes, or NULL */
	char path[VELD_ENGINE_PATH_BYTES + 64];
	size_t plen;
	const veld_decl *stack[VELD_ENGINE_PATH_DEPTH + 2]; /* the groups above the field being read */
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
static void push_label(reader *rd, const veld_decl *f)
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

/* Push engine.message(code, label, decl) for `f`: the field's label and
** what is wrong with it, never the value (messages carry no client data). */
static void push_message(reader *rd, const veld_decl *f, const char *code)
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
	lua_call(L, 3, 1);
}

/* bad[path] = the message for `f`. */
static void fail(reader *rd, const veld_decl *f, const char *code)
{
	lua_State *L = rd->L;
	push_message(rd, f, code);
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

/* Whether an object or array has a member that is not null. */
static int any_member(const json_t *v)
{
	veld_members m;
	const char *k;
	json_t *x;
	veld_engine__members_init(&m, v);
	return veld_engine__members_next(&m, &k, &x);
}

/* An item id: letters, digits, '_' and '-', at most a path segment long. */
static int item_id_ok(const char *s)
{
	size_t n;
	for (n = 0; s[n]; n++)
		if (n == VELD_ENGINE_SEGMENT_MAX ||
		    !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '_' || s[n] == '-'))
			return 0;
	return n > 0;
}

static void read_scope(reader *rd, const veld_scope *sc, const json_t *raw, int level);

/* A multi-choice value: a list of distinct options; an empty list, or an
** object with no member, is absent.  Pushes the list or nil. */
static void read_multi(reader *rd, const veld_decl *f, const json_t *v)
{
	lua_State *L = rd->L;
	size_t i, j, cnt;
	if (json_is_object(v)) {
		if (any_member(v))
			fail(rd, f, "list");
		goto absent;
	}
	if (!json_is_array(v) || (cnt = json_array_size(v)) == 0) {
		if (!json_is_array(v))
			fail(rd, f, "list");
		goto absent;
	}
	for (i = 0; i < cnt; i++)
		if (json_is_null(json_array_get(v, i))) {
			fail(rd, f, "list");
			goto absent;
		}
	for (i = 0; i < cnt; i++) {
		json_t *x = json_array_get(v, i);
		if (!veld_engine__is_option(f, x)) {
			fail(rd, f, "choice");
			goto absent;
		}
		for (j = 0; j < i; j++)
			if (json_equal(json_array_get(v, j), x) ||
			    (json_is_number(x) && json_is_number(json_array_get(v, j)) &&
			     json_number_value(x) == json_number_value(json_array_get(v, j)))) {
				fail(rd, f, "twice");
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
absent:
	lua_pushnil(L);
}

/* A group: its fields' table; a repeating group: {id = the item's table}
** (absent when no item holds anything).  Pushes the table or nil. */
static void read_group(reader *rd, const veld_decl *f, const json_t *v, int level)
{
	lua_State *L = rd->L;
	veld_members m;
	const char *id;
	json_t *item;
	int any = 0;
	if (!json_is_object(v) && !json_is_array(v)) {
		fail(rd, f, "shape");
		goto absent;
	}
	rd->stack[rd->depth++] = f;
	if (!f->repeating) {
		read_scope(rd, &f->sub, v, level + 1);
		rd->depth--;
		return;
	}
	if (json_is_array(v) && any_member(v)) {
		rd->depth--;
		fail(rd, f, "keys");
		goto absent;
	}
	veld_engine__members_init(&m, v);
	while (veld_engine__members_next(&m, &id, &item))
		if (!(veld_engine__nested(item, 0) & VELD_NESTED_VOID) && !item_id_ok(id)) {
			rd->depth--;
			fail(rd, f, "item_key");
			goto absent;
		}
	lua_newtable(L);
	veld_engine__members_init(&m, v);
	while (veld_engine__members_next(&m, &id, &item)) {
		size_t old;
		if (veld_engine__nested(item, 0) & VELD_NESTED_VOID)
			continue; /* folds to nothing */
		old = path_push(rd, id, strlen(id));
		if (!json_is_object(item) && !json_is_array(item)) {
			rd->depth--;
			fail(rd, f, "item_shape");
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
		goto absent;
	}
	return;
absent:
	lua_pushnil(L);
}

/* Push the typed value of `v` for field `f` (nil if absent or wrong; a
** failure goes to bad[path]).  The path ends with the field's name. */
static void read_value(reader *rd, const veld_decl *f, const json_t *v, int level)
{
	lua_State *L = rd->L;
	lua_Integer n;
	if (!v) {
		lua_pushnil(L);
		return;
	}
	switch (f->kind) {
	case VELD_FIELD_TEXT:
		if (!json_is_string(v)) {
			fail(rd, f, "text");
			break;
		}
		if (json_string_length(v) == 0)
			break;
		if (f->max_length &&
		    (lua_Integer)veld_engine__utf8_chars(json_string_value(v), json_string_length(v)) > f->max_length) {
			fail(rd, f, "max_length");
			break;
		}
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		return;
	case VELD_FIELD_INT:
	case VELD_FIELD_DECIMAL:
		if (f->kind == VELD_FIELD_INT ? !veld_engine__int_of(v, &n)
		                              : !veld_engine__decimal_of(v, f->scale, &n)) {
			fail(rd, f, f->kind == VELD_FIELD_INT ? "int" : "decimal");
			break;
		}
		if (f->has_min && n < f->min) {
			fail(rd, f, "min");
			break;
		}
		if (f->has_max && n > f->max) {
			fail(rd, f, "max");
			break;
		}
		lua_pushinteger(L, n);
		return;
	case VELD_FIELD_DATE:
		if (!veld_engine__date_ok(v)) {
			fail(rd, f, "date");
			break;
		}
		if (f->has_min && strcmp(json_string_value(v), f->dmin) < 0) {
			fail(rd, f, "min");
			break;
		}
		if (f->has_max && strcmp(json_string_value(v), f->dmax) > 0) {
			fail(rd, f, "max");
			break;
		}
		lua_pushlstring(L, json_string_value(v), 10);
		return;
	case VELD_FIELD_BOOL:
		if (!json_is_boolean(v)) {
			fail(rd, f, "bool");
			break;
		}
		lua_pushboolean(L, json_is_true(v));
		return;
	case VELD_FIELD_CHOICE:
		if (!veld_engine__is_option(f, v)) {
			fail(rd, f, "choice");
			break;
		}
		veld_sandbox__push_json(L, v);
		return;
	case VELD_FIELD_MULTI:
		read_multi(rd, f, v);
		return;
	case VELD_FIELD_GROUP:
		read_group(rd, f, v, level);
		return;
	}
	lua_pushnil(L);
}

/* Push the typed table of a scope for `raw` (an object; an array or NULL:
** every field absent), reading the input as it is.  Input in the store's
** flat form ("huisvesting.score") or otherwise in need of folding sets
** rd->bail: the caller folds it and reads again. */
static void read_scope(reader *rd, const veld_scope *sc, const json_t *raw, int level)
{
	lua_State *L = rd->L;
	void *it;
	size_t at = 0;
	luaL_checkstack(L, 8, "out of memory");
	lua_createtable(L, 0, (int)sc->n);
	if (!json_is_object(raw) || rd->bail)
		return;
	if (level > VELD_ENGINE_PATH_DEPTH) {
		rd->bail = 1;
		return;
	}
	for (it = json_object_iter((json_t *)raw); it && !rd->bail; it = json_object_iter_next((json_t *)raw, it)) {
		const char *k = json_object_iter_key(it);
		size_t n = json_object_iter_key_len(it), old;
		json_t *v = json_object_iter_value(it);
		const veld_decl *f;
		if (n == 0 || n > VELD_ENGINE_SEGMENT_MAX || memchr(k, '.', n) || strlen(k) != n) {
			rd->bail = 1;
			break;
		}
		if (json_is_null(v) || (level == 0 && k[0] == '_'))
			continue;
		f = veld_engine__find(sc, k, n, &at);
		if (!f || f->kind != VELD_FIELD_GROUP) {
			int nest = veld_engine__nested(v, level + 1);
			if (nest & VELD_NESTED_DEEP) {
				rd->bail = 1;
				break;
			}
			if (nest & VELD_NESTED_VOID)
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
static int holds(reader *rd, const veld_decl_cond *c, int values)
{
	lua_State *L = rd->L;
	int ok = 0;
	switch (c->kind) {
	case VELD_COND_TRUE:
		return 1;
	case VELD_COND_FALSE:
		return 0;
	case VELD_COND_FUNC:
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
		case VELD_WHEN_EQ: ok = lua_rawequal(L, -2, -1); break;
		case VELD_WHEN_NE: ok = !lua_rawequal(L, -2, -1); break;
		case VELD_WHEN_HAS: ok = has_value(L, lua_absindex(L, -2), lua_absindex(L, -1)); break;
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

static void check_scope(reader *rd, const veld_scope *sc, int values);

/* Does the put write a value to hidden field `f` (at rd->path, or under
** it), a value the record holds (typed into `values`, or failed)?  Such a
** value is refused, not stored unseen. */
static int hidden_written(reader *rd, const veld_decl *f, int values)
{
	lua_State *L = rd->L;
	const char *k;
	json_t *v;
	int held;
	lua_rawgeti(L, rd->names, f->key);
	held = lua_rawget(L, values) != LUA_TNIL;
	lua_pop(L, 1);
	if (!held && bad_here(rd)) {
		lua_pop(L, 1);
		held = 1;
	}
	if (held)
		json_object_foreach((json_t *)rd->written, k, v)
		{
			if (!json_is_null(v) && !strncmp(k, rd->path, rd->plen) && (k[rd->plen] == '\0' || k[rd->plen] == '.'))
				return 1;
		}
	return 0;
}

/* Step 2 over the items of a repeating group (`items`: their typed table,
** or 0), in id order; ids of items that were no table come from bad.  The
** ids are anchored in a table of this function's own: a condition function
** may change r while the items are checked. */
static void check_items(reader *rd, const veld_decl *f, int items)
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
static void check_scope(reader *rd, const veld_scope *sc, int values)
{
	lua_State *L = rd->L;
	size_t i;
	luaL_checkstack(L, 8, "out of memory");
	for (i = 0; i < sc->n; i++) {
		const veld_decl *f = &sc->f[i];
		size_t old;
		int present, bad;
		/* Nothing to decide for an always visible, optional value when
		** nothing failed: most fields of most records. */
		if (f->visible.kind == VELD_COND_TRUE && f->required.kind == VELD_COND_FALSE && f->kind != VELD_FIELD_GROUP && !rd->anybad)
			continue;
		old = path_push(rd, f->name, f->nlen);
		if (f->visible.kind != VELD_COND_TRUE && !holds(rd, &f->visible, values)) {
			if (rd->written && hidden_written(rd, f, values)) {
				push_message(rd, f, "hidden");
				add_error(rd);
			}
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
		} else if (!present && f->required.kind != VELD_COND_FALSE && holds(rd, &f->required, values)) {
			if (f->kind == VELD_FIELD_GROUP && f->repeating) {
				push_message(rd, f, "items");
				add_error(rd);
			} else if (f->kind != VELD_FIELD_GROUP) {
				push_message(rd, f, "required");
				add_error(rd);
			}
		}
		if (f->kind == VELD_FIELD_GROUP && !bad) {
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

int veld_engine__read(struct lua_State *L, const veld_decls *d, const json_t *raw, int errors, int *unknown,
                      const json_t *written)
{
	reader rd;
	memset(&rd, 0, sizeof rd);
	rd.L = L;
	rd.d = d;
	rd.written = written;
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

/* ---- step 3 in the errors list ---------------------------------------------------- */

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
		push_message(&rd, NULL, "unknown");
		add_error(&rd);
	}
}

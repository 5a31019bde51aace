/*
** report_query.c — a report's query: read from the script, checked, matched.
**
** records{}, each{} and tally{} take a spec table that names a form and
** narrows it: case = id, year = 2017 (on the date field `date`, default
** "datum"), where = {field = value | {from=, to=} | {has = value}},
** fields = {paths} (only these fields: the fast path), and for tally
** by = {paths} and group = "year" | path.  This file reads that table into
** a veld_query (scripts.h), refusing what an author got wrong with a
** message ("unknown key 'fom' in the query"), and decides whether a shown
** value passes a condition.
**
** Every name that later reaches SQL is checked here: a field path is
** segments of letters, digits, '_' and '-' joined by '.', and never starts
** a segment with '_' (the record's own registers); the form is a form name.
** The query lives in a Lua userdata, so an error while reading it leaks
** nothing.  This file owns no state and never touches the store.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- reading a query ------------------------------------------------------------- */

/* Field paths: segments of letters, digits, '_' and '-', joined by '.';
** no segment starts with '_' (the record's own registers). */
static int valid_path(const char *s)
{
	size_t i, n = strlen(s);
	int seg_start = 1;
	if (n == 0 || n > VELD_QUERY_PATH_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (seg_start)
				return 0;
			seg_start = 1;
			continue;
		}
		if (seg_start && ch == '_')
			return 0;
		if (!(isalnum(ch) || ch == '_' || ch == '-'))
			return 0;
		seg_start = 0;
	}
	return !seg_start;
}

/* Column of `path` in the spec, added if new. */
static int spec_col(lua_State *L, veld_query *sp, const char *path, const char *what)
{
	size_t i;
	if (!valid_path(path))
		luaL_error(L, "%s: '%s' is not a field path", what, path);
	for (i = 0; i < sp->npaths; i++)
		if (!strcmp(sp->paths[i], path))
			return (int)i;
	if (sp->npaths == VELD_QUERY_PATHS)
		luaL_error(L, "%s: too many fields (at most %d)", what, VELD_QUERY_PATHS);
	snprintf(sp->paths[sp->npaths], sizeof sp->paths[0], "%s", path);
	return (int)sp->npaths++;
}

static void read_cval(lua_State *L, int idx, veld_cval *v, const char *what)
{
	size_t n;
	const char *s;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		if (n > VELD_QUERY_VALUE_MAX)
			luaL_error(L, "%s: value too long", what);
		memcpy(v->s, s, n);
		v->s[n] = '\0';
		v->n = n;
		v->kind = VELD_TOK_STR;
		break;
	case LUA_TNUMBER:
		v->kind = VELD_TOK_NUM;
		v->num = (double)lua_tonumber(L, idx);
		break;
	case LUA_TBOOLEAN:
		v->kind = lua_toboolean(L, idx) ? VELD_TOK_TRUE : VELD_TOK_FALSE;
		break;
	case LUA_TNIL:
		v->kind = VELD_TOK_NONE;
		break;
	default:
		luaL_error(L, "%s: a value must be a string, number or boolean", what);
	}
}

static const char *const SPEC_KEYS[] = {"form", "case", "year", "date", "where", "fields",
                                        "by", "group", NULL};

/* Unknown keys of the spec at `idx` are author mistakes. */
static void check_keys(lua_State *L, int idx)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int k, known = 0;
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING) {
			size_t n;
			const char *key = lua_tolstring(L, -1, &n);
			for (k = 0; SPEC_KEYS[k]; k++)
				known |= strlen(SPEC_KEYS[k]) == n && !memcmp(key, SPEC_KEYS[k], n);
		}
		if (!known) {
			lua_pushvalue(L, -1);
			luaL_error(L, "unknown key '%s' in the query", luaL_tolstring(L, -1, NULL));
		}
	}
}

/* where = {...}, the table at the top: one condition per field. */
static void read_where(lua_State *L, veld_query *sp)
{
	luaL_checktype(L, -1, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		veld_cond *cd;
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "where: keys are field paths");
		if (sp->nconds == VELD_QUERY_PATHS)
			luaL_error(L, "where: too many conditions");
		cd = &sp->conds[sp->nconds];
		cd->col = spec_col(L, sp, veld_sandbox__name(L, -2, "where"), "where");
		if (lua_type(L, -1) == LUA_TTABLE) {
			if (lua_getfield(L, -1, "has") != LUA_TNIL) {
				cd->op = VELD_OP_HAS;
				read_cval(L, -1, &cd->a, "where");
				lua_pop(L, 1);
			} else {
				lua_pop(L, 1);
				cd->op = VELD_OP_RANGE;
				lua_getfield(L, -1, "from");
				read_cval(L, -1, &cd->a, "where");
				lua_getfield(L, -2, "to");
				read_cval(L, -1, &cd->b, "where");
				lua_pop(L, 2);
				if (cd->a.kind == VELD_TOK_NONE && cd->b.kind == VELD_TOK_NONE)
					luaL_error(L, "where: use {from = ..., to = ...} or {has = ...}");
			}
		} else {
			cd->op = VELD_OP_EQ;
			read_cval(L, -1, &cd->a, "where");
		}
		sp->nconds++;
		lua_pop(L, 1);
	}
}

/* A list of field paths (fields = or by =, the table at the top) into
** `cols`; `bad` is the message for an element that is no path. */
static void read_paths(lua_State *L, veld_query *sp, int *cols, size_t *ncols, const char *what,
                       const char *bad)
{
	lua_Integer i, n;
	luaL_checktype(L, -1, LUA_TTABLE);
	n = (lua_Integer)lua_rawlen(L, -1);
	if (n > VELD_QUERY_PATHS)
		luaL_error(L, "%s: at most %d", what, VELD_QUERY_PATHS);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (lua_type(L, -1) != LUA_TSTRING || (bad[0] && !strcmp(lua_tostring(L, -1), "n")))
			luaL_error(L, "%s: a list of field paths%s", what, bad);
		cols[(*ncols)++] = spec_col(L, sp, veld_sandbox__name(L, -1, what), what);
		lua_pop(L, 1);
	}
}

/* by = and group = of a tally; `date` is the date field (group = "year"). */
static void read_tally(lua_State *L, veld_query *sp, int idx, const char *date)
{
	sp->fields_mode = 1;
	if (lua_getfield(L, idx, "by") != LUA_TTABLE)
		luaL_error(L, "tally needs by = {field, ...}");
	read_paths(L, sp, sp->by, &sp->nby, "by", " (not \"n\")");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "group") != LUA_TNIL) {
		const char *g;
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "group = \"year\" or a field path");
		g = veld_sandbox__name(L, -1, "group");
		if (!strcmp(g, "year")) {
			sp->group_col = spec_col(L, sp, date, "date");
			sp->group_year = 1;
		} else {
			sp->group_col = spec_col(L, sp, g, "group");
		}
	}
	lua_pop(L, 1);
}

/* year = Y: a condition on the date field, from Y-01-01 to Y-12-31. */
static void add_year(lua_State *L, veld_query *sp, const char *date, lua_Integer year)
{
	veld_cond *cd = &sp->conds[sp->nconds++];
	cd->col = spec_col(L, sp, date, "date");
	cd->op = VELD_OP_RANGE;
	cd->a.kind = cd->b.kind = VELD_TOK_STR;
	cd->a.n = (size_t)snprintf(cd->a.s, sizeof cd->a.s, "%04d-01-01", (int)year);
	cd->b.n = (size_t)snprintf(cd->b.s, sizeof cd->b.s, "%04d-12-31", (int)year);
}

veld_query *veld_query__read(lua_State *L, int idx, int for_tally)
{
	veld_query *sp;
	const char *date = "datum";
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	sp = lua_newuserdatauv(L, sizeof *sp, 0);
	memset(sp, 0, sizeof *sp);
	sp->group_col = -1;
	check_keys(L, idx);

	if (lua_getfield(L, idx, "form") != LUA_TSTRING || !veld_name__is_form(veld_sandbox__name(L, -1, "form")))
		luaL_error(L, "the query needs form = \"<form name>\"");
	snprintf(sp->form, sizeof sp->form, "%s", lua_tostring(L, -1));
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "case") != LUA_TNIL) {
		const char *id = lua_type(L, -1) == LUA_TSTRING ? veld_sandbox__name(L, -1, "case") : NULL;
		if (!id || strlen(id) != VELD_IDSIZE - 1)
			luaL_error(L, "case = must be a case id");
		memcpy(sp->case_id, id, VELD_IDSIZE);
	}
	lua_pop(L, 1);

	/* the date field's name stays on the stack until the end */
	if (lua_getfield(L, idx, "date") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "date = must name a date field");
		date = veld_sandbox__name(L, -1, "date");
	}
	if (lua_getfield(L, idx, "year") != LUA_TNIL) {
		int isnum = 0;
		lua_Integer year = lua_tointegerx(L, -1, &isnum);
		if (!isnum || year < 1 || year > 9999)
			luaL_error(L, "year = must be a year (e.g. 2017)");
		add_year(L, sp, date, year);
	}
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "where") != LUA_TNIL)
		read_where(L, sp);
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "fields") != LUA_TNIL) {
		read_paths(L, sp, sp->out, &sp->nout, "fields", "");
		sp->fields_mode = 1;
	}
	lua_pop(L, 1);

	if (for_tally) {
		read_tally(L, sp, idx, date);
	} else {
		if (lua_getfield(L, idx, "by") != LUA_TNIL || lua_getfield(L, idx, "group") != LUA_TNIL)
			luaL_error(L, "by and group belong to tally{}");
		lua_pop(L, 2);
	}
	lua_pop(L, 1); /* date */
	return sp;
}

/* ---- conditions ------------------------------------------------------------------------ */

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb)
{
	int r = memcmp(a, b, na < nb ? na : nb);
	if (r)
		return r < 0 ? -1 : 1; /* memcmp's sign only: -2 means "not comparable" here */
	return na < nb ? -1 : na > nb;
}

/* Compare a shown value with a condition value: -2 when they cannot be
** compared (different types), else -1/0/1. */
static int cmp_json(const json_t *j, const veld_cval *v)
{
	switch (v->kind) {
	case VELD_TOK_STR:
		return json_is_string(j) ? cmp_bytes(json_string_value(j), json_string_length(j), v->s, v->n) : -2;
	case VELD_TOK_NUM: {
		double d;
		if (!json_is_number(j))
			return -2;
		d = json_number_value(j);
		return d < v->num ? -1 : d > v->num;
	}
	case VELD_TOK_TRUE:
		return json_is_true(j) ? 0 : -2;
	case VELD_TOK_FALSE:
		return json_is_false(j) ? 0 : -2;
	default:
		return -2;
	}
}

static int in_range(int lo, int hi, const veld_cond *cd)
{
	if (cd->a.kind != VELD_TOK_NONE && (lo == -2 || lo < 0))
		return 0;
	if (cd->b.kind != VELD_TOK_NONE && (hi == -2 || hi > 0))
		return 0;
	return 1;
}

int veld_query__match(const veld_cond *cd, const json_t *j)
{
	size_t i;
	json_t *e;
	if (!j)
		return 0;
	switch (cd->op) {
	case VELD_OP_EQ:
		return cmp_json(j, &cd->a) == 0;
	case VELD_OP_RANGE:
		return in_range(cd->a.kind != VELD_TOK_NONE ? cmp_json(j, &cd->a) : 0,
		                cd->b.kind != VELD_TOK_NONE ? cmp_json(j, &cd->b) : 0, cd);
	default:
		json_array_foreach(j, i, e)
			if (cmp_json(e, &cd->a) == 0)
				return 1;
		return 0;
	}
}


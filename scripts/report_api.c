/*
** report_api.c — what a report script sees: the functions over the store.
**
** The globals of a report's state (set by veld_report__setup):
**   params            the caller's parameters ({year = 2017} or {case = id})
**   records(spec)     a list of records as tables (shown values, groups nested)
**   each(spec)        the same one at a time: for r in each{...} do ... end
**   tally(spec)       counts of field values, computed here in C in one scan
**   case(id)          a case's header (name, postcode, ...) or nil
**   schema(form)      the schema of a shipped form (labels of fields, options)
**   nl.count/decimal/pct/date, pct(part, whole)   Dutch formatting helpers
**   today             the date of the run, "YYYY-MM-DD" (report.c's clock)
**   organisation      the organisation's name, or nil where the store has none
** plus the reports' prelude (reports/_prelude.lua).  A spec is read by
** report_query.c and scanned by report_scan.c; this file turns rows into
** Lua tables (values through the sandbox's one JSON -> Lua conversion) and
** counts tallies.
**
** Every function reaches the run's veld_report_ctx through its upvalue.
** Once a limit of the scans is hit, every later call fails again with the
** same message (the stop sticks).  Memory allocated here while Lua may
** raise an error hangs off the context (the tally) and is freed with it.
** Nothing here writes to the store or talks to SQLite directly.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TALLY_KEYS 10000 /* distinct values one tally may count */

/* ---- the run context ------------------------------------------------------------ */

/* A tally: its groups (one when nothing groups), each a key with its row
** count and, per `by` field, the counts of that field's values.  Keys keep
** the order they were first seen in. */
typedef struct tally_counts {
	struct tally_key *keys;
	size_t n, cap;
} tally_counts;

typedef struct tally_key {
	int kind;           /* VELD_TOK_NONE (a group of all rows), STR, NUM, TRUE, FALSE */
	char *s;            /* the value's text, NUL added */
	size_t n;
	long long count;
	tally_counts *by;   /* a group's: VELD_QUERY_PATHS counts, one per `by` field */
} tally_key;

typedef struct veld_report_tally {
	tally_counts groups;
	size_t keys;        /* distinct keys over all groups and fields */
} veld_report_tally;

static veld_report_ctx *ctx_of(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int fail_stop(lua_State *L, veld_report_ctx *c)
{
	return luaL_error(L, "%s", c->scan.stop_msg);
}

/* ---- records as tables ------------------------------------------------------------ */

/* t[seg1][seg2]... = value at the top (popped); the table is at `t`. */
static void set_path(lua_State *L, int t, const char *path)
{
	const char *dot;
	int depth = 0;
	luaL_checkstack(L, 8, "path too deep");
	lua_pushvalue(L, t);
	while ((dot = strchr(path, '.')) != NULL && depth < 16) {
		lua_pushlstring(L, path, (size_t)(dot - path));
		if (lua_rawget(L, -2) != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushlstring(L, path, (size_t)(dot - path));
			lua_pushvalue(L, -2);
			lua_rawset(L, -4);
		}
		lua_remove(L, -2);
		path = dot + 1;
		depth++;
	}
	lua_pushstring(L, path);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 2);
}

/* Push the row as a record table: {_id, _case, fields nested by path}. */
static void push_row(lua_State *L, const veld_query *sp, const veld_scan_row *r)
{
	int t;
	lua_newtable(L);
	t = lua_gettop(L);
	lua_pushstring(L, r->id);
	lua_setfield(L, t, "_id");
	lua_pushstring(L, r->case_id);
	lua_setfield(L, t, "_case");
	if (sp->fields_mode) {
		size_t i;
		for (i = 0; i < sp->nout; i++) {
			const veld_tok *v = &r->vals[sp->out[i]];
			if (v->kind == VELD_TOK_NULL)
				continue;
			veld_sandbox__push_json_with(L, v->j, 0, VELD_SANDBOX_WHOLE_REALS);
			set_path(L, t, sp->paths[sp->out[i]]);
		}
	} else {
		const char *path;
		json_t *v;
		json_object_foreach((json_t *)r->fields, path, v)
		{
			veld_sandbox__push_json(L, v);
			set_path(L, t, path);
		}
	}
}

/* ---- the API functions ---------------------------------------------------------------------- */

static int api_records(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	veld_query *sp;
	veld_scan_row r;
	int slot;
	lua_Integer n = 0;
	if (c->scan.stop)
		return fail_stop(L, c);
	sp = veld_query__read(L, 1, 0);
	slot = veld_scan__open(L, &c->scan, sp);
	lua_newtable(L);
	veld_sandbox__mark_array(L, -1);
	while (veld_scan__next(L, &c->scan, sp, slot, &r)) {
		push_row(L, sp, &r);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

/* The iterator of each(): upvalues ctx, spec, slot. */
static int each_next(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	veld_query *sp = lua_touserdata(L, lua_upvalueindex(2));
	int slot = (int)lua_tointeger(L, lua_upvalueindex(3));
	veld_scan_row r;
	if (c->scan.stop)
		return fail_stop(L, c);
	if (slot < 0 || !veld_scan__next(L, &c->scan, sp, slot, &r)) {
		lua_pushinteger(L, -1);
		lua_replace(L, lua_upvalueindex(3));
		lua_pushnil(L);
		return 1;
	}
	push_row(L, sp, &r);
	return 1;
}

static int api_each(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	int slot;
	veld_query *sp;
	if (c->scan.stop)
		return fail_stop(L, c);
	sp = veld_query__read(L, 1, 0);
	slot = veld_scan__open(L, &c->scan, sp);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, -2);
	lua_pushinteger(L, slot);
	lua_pushcclosure(L, each_next, 3);
	return 1;
}

/* -- tally -- */

static void counts_free(tally_counts *tc)
{
	size_t k;
	for (k = 0; k < tc->n; k++) {
		free(tc->keys[k].s);
		if (tc->keys[k].by) {
			size_t b;
			for (b = 0; b < VELD_QUERY_PATHS; b++)
				counts_free(&tc->keys[k].by[b]);
			free(tc->keys[k].by);
		}
	}
	free(tc->keys);
}

static void tally_free(veld_report_tally *ts)
{
	if (!ts)
		return;
	counts_free(&ts->groups);
	free(ts);
}

/* Find or add the key (kind, s, n) in `tc`. */
static tally_key *tally_find(lua_State *L, veld_report_tally *ts, tally_counts *tc, int kind,
                             const char *s, size_t n)
{
	size_t i;
	tally_key *k;
	for (i = 0; i < tc->n; i++)
		if (tc->keys[i].kind == kind && tc->keys[i].n == n && !memcmp(tc->keys[i].s, s, n))
			return &tc->keys[i];
	if (++ts->keys > TALLY_KEYS)
		luaL_error(L, "tally: more than %d distinct values", TALLY_KEYS);
	if (tc->n == tc->cap) {
		size_t cap = tc->cap ? tc->cap * 2 : 8;
		tally_key *p = realloc(tc->keys, cap * sizeof *p);
		if (!p)
			luaL_error(L, "out of memory");
		tc->keys = p;
		tc->cap = cap;
	}
	k = &tc->keys[tc->n];
	memset(k, 0, sizeof *k);
	if (!(k->s = malloc(n + 1)))
		luaL_error(L, "out of memory");
	memcpy(k->s, s, n);
	k->s[n] = '\0';
	k->kind = kind;
	k->n = n;
	tc->n++;
	return k;
}

static void tally_value(lua_State *L, veld_report_tally *ts, tally_counts *tc, const veld_tok *t)
{
	switch (t->kind) {
	case VELD_TOK_STR:
	case VELD_TOK_NUM:
		tally_find(L, ts, tc, t->kind, t->p, t->n)->count++;
		break;
	case VELD_TOK_TRUE:
	case VELD_TOK_FALSE: {
		const char *b = t->kind == VELD_TOK_TRUE ? "true" : "false";
		tally_find(L, ts, tc, t->kind, b, strlen(b))->count++;
		break;
	}
	case VELD_TOK_ARR: {
		veld_tok e;
		size_t k;
		for (k = 0; veld_scan__elem(t, k, &e); k++)
			tally_value(L, ts, tc, &e);
		break;
	}
	default:
		break;
	}
}

/* The group of a row (NULL: the row belongs to none, e.g. it has no date). */
static tally_key *tally_group_of(lua_State *L, veld_report_tally *ts, const veld_query *sp,
                                 const veld_scan_row *r)
{
	int kind = VELD_TOK_NONE;
	const char *s = "";
	size_t n = 0;
	tally_key *g;
	if (sp->group_col >= 0) {
		const veld_tok *t = &r->vals[sp->group_col];
		if (sp->group_year) {
			if (t->kind != VELD_TOK_STR || t->n < 4 || !isdigit((unsigned char)t->p[0]) ||
			    !isdigit((unsigned char)t->p[1]) || !isdigit((unsigned char)t->p[2]) ||
			    !isdigit((unsigned char)t->p[3]))
				return NULL;
			kind = VELD_TOK_NUM;
			s = t->p;
			n = 4;
		} else if (t->kind == VELD_TOK_NUM || t->kind == VELD_TOK_STR) {
			kind = t->kind;
			s = t->p;
			n = t->n;
		} else {
			return NULL;
		}
	}
	g = tally_find(L, ts, &ts->groups, kind, s, n);
	if (!g->by && !(g->by = calloc(VELD_QUERY_PATHS, sizeof *g->by)))
		luaL_error(L, "out of memory");
	return g;
}

static void push_key(lua_State *L, const tally_key *k)
{
	if (k->kind == VELD_TOK_NUM) {
		if (!lua_stringtonumber(L, k->s))
			lua_pushlstring(L, k->s, k->n);
	} else if (k->kind == VELD_TOK_TRUE || k->kind == VELD_TOK_FALSE) {
		lua_pushboolean(L, k->kind == VELD_TOK_TRUE);
	} else {
		lua_pushlstring(L, k->s, k->n);
	}
}

/* {n = rows, <by path> = {value = count, ...}, ...}; `g` NULL: no rows. */
static void push_group(lua_State *L, const veld_query *sp, const tally_key *g)
{
	size_t b, k;
	lua_newtable(L);
	lua_pushinteger(L, g ? (lua_Integer)g->count : 0);
	lua_setfield(L, -2, "n");
	for (b = 0; b < sp->nby; b++) {
		lua_newtable(L);
		for (k = 0; g && k < g->by[b].n; k++) {
			push_key(L, &g->by[b].keys[k]);
			lua_pushinteger(L, (lua_Integer)g->by[b].keys[k].count);
			lua_rawset(L, -3);
		}
		set_path(L, lua_gettop(L) - 1, sp->paths[sp->by[b]]);
	}
}

static int api_tally(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	veld_query *sp;
	veld_scan_row r;
	int slot;
	size_t g, b;
	veld_report_tally *ts;
	if (c->scan.stop)
		return fail_stop(L, c);
	sp = veld_query__read(L, 1, 1);
	slot = veld_scan__open(L, &c->scan, sp);
	tally_free(c->tally);
	c->tally = ts = calloc(1, sizeof *ts);
	if (!ts)
		return luaL_error(L, "out of memory");
	while (veld_scan__next(L, &c->scan, sp, slot, &r)) {
		tally_key *gr = tally_group_of(L, ts, sp, &r);
		if (!gr)
			continue;
		gr->count++;
		for (b = 0; b < sp->nby; b++)
			tally_value(L, ts, &gr->by[b], &r.vals[sp->by[b]]);
	}
	if (sp->group_col < 0) {
		push_group(L, sp, ts->groups.n ? &ts->groups.keys[0] : NULL);
	} else {
		lua_newtable(L);
		for (g = 0; g < ts->groups.n; g++) {
			push_key(L, &ts->groups.keys[g]);
			push_group(L, sp, &ts->groups.keys[g]);
			lua_rawset(L, -3);
		}
	}
	tally_free(c->tally);
	c->tally = NULL;
	return 1;
}

/* case(id): the header of a readable case, or nil. */
static int api_case(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	const char *id = veld_sandbox__name(L, 1, "case");
	veld_scan_row r;
	veld_query none;
	if (c->scan.stop)
		return fail_stop(L, c);
	if (!veld_scan__case(L, &c->scan, id, &r)) {
		lua_pushnil(L);
		return 1;
	}
	memset(&none, 0, sizeof none);
	push_row(L, &none, &r);
	return 1;
}

/* schema(form): the shipped form's schema (labels of fields and options). */
static int api_schema(lua_State *L)
{
	veld_report_ctx *c = ctx_of(L);
	const char *name = veld_sandbox__name(L, 1, "schema");
	json_t *sch = json_object_get(c->schemas, name);
	if (c->scan.stop)
		return fail_stop(L, c);
	if (!sch) {
		veld_form *f = NULL;
		veld_err err;
		char *text = NULL;
		int rc = veld_name__is_form(name) ? veld_form__load_shipped(&f, name, NULL, &err) : VELD_ENOTFOUND;
		if (rc == VELD_OK)
			rc = veld_form__schema_json(&text, f);
		veld_form__free(f);
		if (rc == VELD_OK) {
			sch = json_loads(text, 0, NULL);
			free(text);
			if (!sch || json_object_set_new(c->schemas, name, sch))
				return luaL_error(L, "out of memory");
		} else {
			free(text);
			return luaL_error(L, "schema: no form '%s'", name);
		}
	}
	veld_sandbox__push_json(L, sch);
	return 1;
}

/* -- Dutch formatting (the same functions the renderers use) -- */

static int nl_count(lua_State *L)
{
	char buf[64];
	veld_report__fmt_count(buf, sizeof buf, (long long)luaL_checknumber(L, 1));
	lua_pushstring(L, buf);
	return 1;
}

static int nl_decimal(lua_State *L)
{
	char buf[64];
	int d = (int)luaL_optinteger(L, 2, 1);
	veld_report__fmt_decimal(buf, sizeof buf, (double)luaL_checknumber(L, 1), d < 0 || d > 6 ? 1 : d, 1);
	lua_pushstring(L, buf);
	return 1;
}

static int nl_pct(lua_State *L)
{
	char buf[64];
	veld_report__fmt_decimal(buf, sizeof buf, (double)luaL_checknumber(L, 1), 1, 1);
	lua_pushfstring(L, "%s%%", buf);
	return 1;
}

static int nl_date(lua_State *L)
{
	char buf[32];
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	veld_report__fmt_date(buf, sizeof buf, s, n);
	lua_pushstring(L, buf);
	return 1;
}

/* pct(part, whole): the share in percent, rounded to one decimal (0 when
** whole is 0).  Computed as integers so 173/2329 gives exactly 7.4. */
static int api_pct(lua_State *L)
{
	lua_Number part = luaL_checknumber(L, 1), whole = luaL_checknumber(L, 2);
	if (whole == 0) {
		lua_pushnumber(L, 0.0);
		return 1;
	}
	lua_pushnumber(L, veld_render__floor(part * 1000.0 / whole + 0.5) / 10.0);
	return 1;
}

/* ---- the state of a run ------------------------------------------------------------------------ */

int veld_report__setup(lua_State *L)
{
	static const luaL_Reg api[] = {{"records", api_records}, {"each", api_each}, {"tally", api_tally},
	                               {"case", api_case},       {"schema", api_schema}, {"pct", api_pct},
	                               {NULL, NULL}};
	static const luaL_Reg nl[] = {{"count", nl_count}, {"decimal", nl_decimal}, {"pct", nl_pct},
	                              {"date", nl_date},   {NULL, NULL}};
	veld_report_ctx *c = lua_touserdata(L, 1);
	const veld_embedded *p = &veld_embedded__reports_prelude;
	veld_sandbox__push_json(L, c->params);
	lua_setglobal(L, "params");
	/* the API's functions reach the context as their one upvalue */
	lua_pushglobaltable(L);
	lua_pushlightuserdata(L, c);
	luaL_setfuncs(L, api, 1);
	lua_pop(L, 1);
	luaL_newlib(L, nl);
	lua_setglobal(L, "nl");
	lua_pushstring(L, c->today);
	lua_setglobal(L, "today");
	if (c->organisation[0])
		lua_pushstring(L, c->organisation);
	else
		lua_pushnil(L);
	lua_setglobal(L, "organisation");
	if (luaL_loadbufferx(L, (const char *)p->src, p->len, "=report_prelude.lua", "t") != LUA_OK)
		return lua_error(L);
	lua_call(L, 0, 0);
	return 0;
}

/* The whole run is one protected, budgeted call (veld_sandbox__call). */
int veld_report__call(lua_State *L)
{
	veld_report_ctx *c = lua_touserdata(L, 2);
	lua_settop(L, 1);
	lua_call(L, 0, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "a report returns a table ({title = ..., sections = {...}})");
	c->result = veld_sandbox__to_json(L, -1, c->result_max);
	return 0;
}

void veld_report__release(veld_report_ctx *c)
{
	tally_free(c->tally);
	c->tally = NULL;
}

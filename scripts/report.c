/*
** report.c — reports: a Lua script over the store, read-only, rendered by C.
**
** A report (scripts/reports/NAME.lua, shipped and embedded at build time, or
** a file an author is writing) runs in a sandbox with larger limits than a
** form: it may scan many records.  It reads the store through the API below
** and returns a table of sections that render.c turns into text, CSV, JSON
** or HTML.  docs/reports.md is the author's guide.
**
** What a report can reach (globals of its state):
**   params            the caller's parameters ({year = 2017} or {case = id})
**   records(spec)     a list of records as tables (shown values, groups nested)
**   each(spec)        the same one at a time: for r in each{...} do ... end
**   tally(spec)       counts of field values, computed here in C in one scan
**   case(id)          a case's header (name, postcode, ...) or nil
**   schema(form)      the schema of a shipped form (labels of fields, options)
**   nl.count/decimal/pct/date, pct(part, whole)   Dutch formatting helpers
** A spec names a form and narrows it: case = id, year = 2017 (on the date
** field `date`, default "datum"), where = {field = value | {from=, to=} |
** {has = value}}, fields = {paths} (only these fields: the fast path).
**
** Read-only.  The C side alone talks to SQLite, with statements it builds
** from validated names (no SQL ever comes from a script), inside a read
** transaction (BEGIN ... ROLLBACK) on a connection switched to
** PRAGMA query_only for the run.  Only records of readable cases are seen:
** the case header must exist and not be deleted.
**
** Speed.  A record's state is its CRDT form (record.c): every field a list
** of versions with stamps, the shown value the last one.  Parsing a whole
** state with jansson costs several times the SQLite scan itself, so with
** `fields` (and always for tally) the one SQL statement asks SQLite's own
** JSON parser for exactly the shown values needed: a column per path a scan
** filters or groups on, `state -> '$.fields."datum"[#-1].v'`, and one
** `json_extract(state, ...)` for the rest.  Those short texts repeat from
** row to row (places, problem lists, dates), so jansson parses each
** distinct text once per scan (the memo below).  Filters are evaluated here
** on those values, so a row is read once.  Without `fields` a record is
** parsed whole (veld_record__parse), for small per-case reads.
**
** Limits.  The sandbox bounds Lua (memory, instructions, wall clock, depth).
** Work done here in C on a script's behalf is bounded too: every row
** scanned counts against `rows`, and the clock is checked as rows go by.
** Once a limit is hit every later call into this API fails again (the stop
** sticks, as the sandbox's does) and the report fails whatever it returns.
** Memory this file allocates while Lua may raise an error hangs off the run
** context and is released at the end of the run, so a script error never
** leaks a statement or a buffer.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_PATHS    32   /* fields a spec may name (fields + where + by) */
#define PATH_MAX_LEN  120  /* bytes of a field path */
#define VALUE_MAX_LEN 200  /* bytes of a value in a where clause */
#define OPEN_ITERS    16   /* each() loops open at once */
#define TALLY_KEYS    10000 /* distinct values one tally may count */
#define CLOCK_EVERY   512  /* rows between two looks at the clock */
#define REPORT_SOURCE_MAX ((int64_t)1 << 20)


/* ---- values of a row ------------------------------------------------------------ */

enum { T_NONE, T_NULL, T_STR, T_NUM, T_TRUE, T_FALSE, T_ARR, T_BAD };

/* One shown value of a record.  T_STR: p..p+n are the string's bytes;
** T_NUM: the number's text; T_ARR: `arr`, a JSON array (owned by the row
** that was read). */
typedef struct tok {
	int kind;
	const char *p;
	size_t n;
	const json_t *arr;
	char num[40]; /* the text of a number taken from an array */
} tok;

/* A value from jansson.  Strings point into `j`'s storage and numbers get
** their text in t->num, so the token lives as long as `j` and stays where
** it was filled in. */
static void tok_from_json(tok *t, const json_t *j)
{
	memset(t, 0, sizeof *t);
	if (!j || json_is_null(j)) {
		t->kind = T_NULL;
	} else if (json_is_string(j)) {
		t->kind = T_STR;
		t->p = json_string_value(j);
		t->n = json_string_length(j);
	} else if (json_is_integer(j)) {
		t->kind = T_NUM;
		t->n = (size_t)snprintf(t->num, sizeof t->num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		t->p = t->num;
	} else if (json_is_real(j)) {
		t->kind = T_NUM;
		t->n = (size_t)snprintf(t->num, sizeof t->num, "%.17g", json_real_value(j));
		t->p = t->num;
	} else if (json_is_boolean(j)) {
		t->kind = json_is_true(j) ? T_TRUE : T_FALSE;
	} else if (json_is_array(j)) {
		t->kind = T_ARR;
		t->arr = j;
	} else {
		t->kind = T_BAD;
	}
}

/* The shown values of a row.  SQLite's JSON functions give them as short
** JSON texts, parsed by jansson.  Paths a scan filters or groups on (dates,
** mostly) get a column each (`state -> path`, SQL NULL when absent); the
** others, the values a report counts or shows, come together in one
** `json_extract(state, p1, p2, ...)` array, so SQLite renders them in one
** call.  Such values repeat (places, problem lists, dates), so each
** distinct text is parsed once per scan and kept in a memo with its tokens:
** a table of (column, text) -> parsed value, bounded in entries and text
** size; a value not kept is parsed for its row alone (keep[]). */
#define MEMO_CAP      2048 /* entries of one scan's memo (a power of two) */
#define MEMO_TEXT_MAX 512  /* bytes of a text worth keeping */

typedef struct memo_ent {
	uint64_t h;     /* 0: free */
	size_t col, len;
	char *text;
	json_t *val;
	tok *toks;      /* the tokens of its paths */
} memo_ent;

typedef struct memo {
	memo_ent *e;    /* MEMO_CAP entries, allocated with the first value */
	size_t n;
	size_t ncols;
	int col_of[SPEC_PATHS];    /* path -> its column (from 0), or -1: in the array */
	int in_arr[SPEC_PATHS];    /* the paths of the array column, in order */
	size_t narr;
	int arr_col;               /* the array column, or -1 */
	json_t *keep[SPEC_PATHS + 1]; /* values of the current row that are not kept */
	tok tmp[SPEC_PATHS + 1][SPEC_PATHS];
} memo;

static void memo_free(memo *m)
{
	size_t i;
	if (!m)
		return;
	for (i = 0; m->e && i < MEMO_CAP; i++) {
		free(m->e[i].text);
		free(m->e[i].toks);
		json_decref(m->e[i].val);
	}
	for (i = 0; i <= SPEC_PATHS; i++)
		json_decref(m->keep[i]);
	free(m->e);
	free(m);
}

static uint64_t memo_hash(size_t col, const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)col;
	size_t i;
	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
	return h ? h : 1;
}

/* Tokens of a parsed column value: one, or one per element of the array
** column.  -1 when the array does not have one value per path. */
static int memo_toks(const memo *m, size_t col, const json_t *v, tok *toks)
{
	size_t k;
	if ((int)col != m->arr_col) {
		tok_from_json(&toks[0], v);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) != m->narr)
		return -1;
	for (k = 0; k < m->narr; k++)
		tok_from_json(&toks[k], json_array_get(v, k));
	return 0;
}

/* The tokens of column `col`'s text (they live as long as the memo, or
** until the column's next value); NULL when it is no JSON of the shape. */
static const tok *memo_value(memo *m, size_t col, const char *p, size_t n)
{
	uint64_t h = memo_hash(col, p, n);
	size_t j, nt = (int)col == m->arr_col ? m->narr : 1;
	json_t *v;
	if (m->e) {
		for (j = h & (MEMO_CAP - 1); m->e[j].h; j = (j + 1) & (MEMO_CAP - 1))
			if (m->e[j].h == h && m->e[j].col == col && m->e[j].len == n && !memcmp(m->e[j].text, p, n))
				return m->e[j].toks;
	}
	json_decref(m->keep[col]);
	m->keep[col] = NULL;
	if (!(v = json_loadb(p, n, JSON_DECODE_ANY, NULL)))
		return NULL;
	if (!m->e)
		m->e = calloc(MEMO_CAP, sizeof *m->e);
	if (m->e && n <= MEMO_TEXT_MAX && (m->n + 1) * 4 <= MEMO_CAP * 3) {
		memo_ent *e;
		for (j = h & (MEMO_CAP - 1); m->e[j].h; j = (j + 1) & (MEMO_CAP - 1))
			;
		e = &m->e[j];
		e->text = malloc(n ? n : 1);
		e->toks = calloc(nt, sizeof *e->toks);
		if (e->text && e->toks && memo_toks(m, col, v, e->toks) == 0) {
			memcpy(e->text, p, n);
			e->h = h;
			e->col = col;
			e->len = n;
			e->val = v;
			m->n++;
			return e->toks;
		}
		free(e->text);
		free(e->toks);
		e->text = NULL;
		e->toks = NULL;
	}
	m->keep[col] = v;
	return memo_toks(m, col, v, m->tmp[col]) == 0 ? m->tmp[col] : NULL;
}

/* The row's values; the columns start at `first`. */
static int row_values(tok *vals, size_t npaths, sqlite3_stmt *st, int first, memo *m)
{
	size_t i, k;
	for (i = 0; i < m->ncols; i++) {
		int c = first + (int)i;
		const tok *t;
		if (sqlite3_column_type(st, c) == SQLITE_NULL) {
			t = NULL; /* no such field in this record */
		} else if (!(t = memo_value(m, i, (const char *)sqlite3_column_text(st, c),
		                            (size_t)sqlite3_column_bytes(st, c)))) {
			return -1;
		}
		if ((int)i == m->arr_col) {
			for (k = 0; k < m->narr; k++) {
				if (t)
					vals[m->in_arr[k]] = t[k];
				else
					tok_from_json(&vals[m->in_arr[k]], NULL);
			}
		} else {
			for (k = 0; k < npaths; k++)
				if (m->col_of[k] == (int)i) {
					if (t)
						vals[k] = t[0];
					else
						tok_from_json(&vals[k], NULL);
				}
		}
	}
	return 0;
}

/* Element `i` of an array value; 0 past the end.  The element token is
** filled in place and lives as long as the array. */
static int arr_elem(const tok *t, size_t i, tok *e)
{
	if (t->kind != T_ARR || i >= json_array_size(t->arr)) {
		memset(e, 0, sizeof *e);
		return 0;
	}
	tok_from_json(e, json_array_get(t->arr, i));
	return 1;
}

static double tok_number(const tok *t)
{
	char buf[48];
	size_t n = t->n < sizeof buf - 1 ? t->n : sizeof buf - 1;
	memcpy(buf, t->p, n);
	buf[n] = '\0';
	return strtod(buf, NULL);
}

/* ---- the run context ------------------------------------------------------------ */

typedef struct readable {
	char id[VELD_IDSIZE];
	int ok;
} readable;

typedef struct tally_key {
	int kind;      /* T_STR or T_NUM */
	char *s;
	size_t n;
	long long count;
} tally_key;

typedef struct tally_counts {
	tally_key *keys;
	size_t n, cap;
} tally_counts;

typedef struct tally_group {
	int kind;      /* T_NONE (no grouping), T_STR, T_NUM */
	char *s;
	size_t n;
	long long count;
	tally_counts by[SPEC_PATHS];
} tally_group;

typedef struct tally_state {
	tally_group *groups;
	size_t n, cap;
	size_t keys;   /* distinct keys over all groups and fields */
} tally_state;

typedef struct report_ctx {
	veld_store *s;
	sqlite3 *db;
	veld_sandbox *sb;
	veld_report_limits lim;
	json_t *params;
	int64_t deadline_ms;
	uint64_t rows;
	int stop;                  /* sticky: a limit of this API was hit */
	char stop_msg[200];
	sqlite3_stmt *iters[OPEN_ITERS];
	memo *memos[OPEN_ITERS];   /* the parsed shown values of each loop's scan */
	sqlite3_stmt *case_st;     /* is a case readable */
	readable *cases;           /* open addressing, power of two */
	size_t ncases, cap_cases;
	tally_state *tally;        /* the tally being computed, if any */
	veld_record *rec;          /* the record being pushed (full mode) */
	json_t *view;
	json_t *schemas;           /* name -> schema, loaded on demand */
	json_t *result;            /* what the script returned */
} report_ctx;

static report_ctx *ctx_of(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int fail_stop(lua_State *L, report_ctx *c)
{
	return luaL_error(L, "%s", c->stop_msg);
}

/* Count a scanned row against the limits; raise the sticky stop when over. */
static void charge_row(lua_State *L, report_ctx *c)
{
	const veld_os *os = veld_store__os(c->s);
	if (!c->stop && ++c->rows > c->lim.rows) {
		c->stop = 1;
		snprintf(c->stop_msg, sizeof c->stop_msg, "row limit exceeded (%llu rows read)",
		         (unsigned long long)c->lim.rows);
	}
	if (!c->stop && c->rows % CLOCK_EVERY == 0 && os->xClockMs(os->ctx) > c->deadline_ms) {
		c->stop = 1;
		snprintf(c->stop_msg, sizeof c->stop_msg, "time limit exceeded (%u ms)",
		         (unsigned)c->lim.sandbox.wall_ms);
	}
	if (c->stop)
		fail_stop(L, c);
}

/* The bytes of a string value; NULL if it is not a string. */
static const char *tok_string(lua_State *L, report_ctx *c, const tok *t, size_t *len)
{
	(void)L;
	(void)c;
	if (t->kind == T_STR) {
		*len = t->n;
		return t->p;
	}
	return NULL;
}

static void push_tok(lua_State *L, report_ctx *c, const tok *t)
{
	size_t n;
	const char *s;
	luaL_checkstack(L, 4, "too many values");
	switch (t->kind) {
	case T_STR:
		s = tok_string(L, c, t, &n);
		lua_pushlstring(L, s, n);
		break;
	case T_NUM: {
		char buf[48];
		size_t k = t->n < sizeof buf - 1 ? t->n : sizeof buf - 1;
		memcpy(buf, t->p, k);
		buf[k] = '\0';
		if (!lua_stringtonumber(L, buf))
			lua_pushnil(L);
		break;
	}
	case T_TRUE:
		lua_pushboolean(L, 1);
		break;
	case T_FALSE:
		lua_pushboolean(L, 0);
		break;
	case T_ARR: {
		tok e;
		size_t k;
		lua_newtable(L);
		for (k = 0; arr_elem(t, k, &e); k++) {
			push_tok(L, c, &e);
			lua_rawseti(L, -2, (lua_Integer)k + 1);
		}
		veld_sandbox__mark_array(L, -1);
		break;
	}
	default:
		lua_pushnil(L);
		break;
	}
}

/* ---- readable cases ---------------------------------------------------------------- */

static size_t id_hash(const char *id)
{
	size_t h = 14695981039346656037ull;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ull;
	return h;
}

static int cases_grow(report_ctx *c)
{
	size_t cap = c->cap_cases ? c->cap_cases * 2 : 256, i;
	readable *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (i = 0; i < c->cap_cases; i++) {
		size_t j;
		if (!c->cases[i].id[0])
			continue;
		for (j = id_hash(c->cases[i].id) & (cap - 1); t[j].id[0]; j = (j + 1) & (cap - 1))
			;
		t[j] = c->cases[i];
	}
	free(c->cases);
	c->cases = t;
	c->cap_cases = cap;
	return 0;
}

/* 1 if the case exists here and its header is not deleted. */
static int case_readable(lua_State *L, report_ctx *c, const char *id)
{
	size_t j;
	int ok = 0, rc;
	if (!id || strlen(id) != VELD_IDSIZE - 1)
		return 0;
	if (c->cap_cases) {
		for (j = id_hash(id) & (c->cap_cases - 1); c->cases[j].id[0]; j = (j + 1) & (c->cap_cases - 1))
			if (!strcmp(c->cases[j].id, id))
				return c->cases[j].ok;
	}
	if (!c->case_st && sqlite3_prepare_v2(c->db,
	                                      "SELECT deleted FROM records WHERE id = ?1 AND form = '_case'",
	                                      -1, &c->case_st, NULL) != SQLITE_OK)
		luaL_error(L, "cannot read cases: %s", sqlite3_errmsg(c->db));
	sqlite3_reset(c->case_st);
	sqlite3_bind_text(c->case_st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(c->case_st);
	if (rc == SQLITE_ROW)
		ok = sqlite3_column_int(c->case_st, 0) == 0;
	else if (rc != SQLITE_DONE)
		luaL_error(L, "cannot read cases: %s", sqlite3_errmsg(c->db));
	sqlite3_reset(c->case_st);
	if ((c->ncases + 1) * 2 > c->cap_cases && cases_grow(c))
		luaL_error(L, "out of memory");
	for (j = id_hash(id) & (c->cap_cases - 1); c->cases[j].id[0]; j = (j + 1) & (c->cap_cases - 1))
		;
	memcpy(c->cases[j].id, id, VELD_IDSIZE);
	c->cases[j].ok = ok;
	c->ncases++;
	return ok;
}

/* ---- specs --------------------------------------------------------------------------- */

enum { OP_EQ, OP_RANGE, OP_HAS };

/* A value of a condition, copied out of Lua. */
typedef struct cval {
	int kind;   /* T_STR, T_NUM, T_TRUE, T_FALSE, T_NONE (absent bound) */
	char s[VALUE_MAX_LEN + 1];
	size_t n;
	double num;
} cval;

typedef struct cond {
	int col;    /* index into paths */
	int op;
	cval a, b;  /* EQ/HAS: a; RANGE: from a to b */
} cond;

/* Lives in a Lua userdata: nothing to free when a script error unwinds. */
typedef struct spec {
	char form[64];
	char case_id[VELD_IDSIZE];
	char paths[SPEC_PATHS][PATH_MAX_LEN + 1];
	size_t npaths;
	int fields_mode;          /* 1: only `fields` (fast path) */
	int out[SPEC_PATHS];      /* the `fields` columns, in order */
	size_t nout;
	cond conds[SPEC_PATHS];
	size_t nconds;
	int by[SPEC_PATHS];       /* tally */
	size_t nby;
	int group_col;            /* tally: -1, or the column grouped by */
	int group_year;           /* group by the year of a date */
} spec;

/* Field paths: segments of letters, digits, '_' and '-', joined by '.';
** no segment starts with '_' (the record's own registers). */
static int valid_path(const char *s)
{
	size_t i, n = strlen(s);
	int seg_start = 1;
	if (n == 0 || n > PATH_MAX_LEN)
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
static int spec_col(lua_State *L, spec *sp, const char *path, const char *what)
{
	size_t i;
	if (!valid_path(path))
		luaL_error(L, "%s: '%s' is not a field path", what, path);
	for (i = 0; i < sp->npaths; i++)
		if (!strcmp(sp->paths[i], path))
			return (int)i;
	if (sp->npaths == SPEC_PATHS)
		luaL_error(L, "%s: too many fields (at most %d)", what, SPEC_PATHS);
	snprintf(sp->paths[sp->npaths], sizeof sp->paths[0], "%s", path);
	return (int)sp->npaths++;
}

static void read_cval(lua_State *L, int idx, cval *v, const char *what)
{
	size_t n;
	const char *s;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		if (n > VALUE_MAX_LEN)
			luaL_error(L, "%s: value too long", what);
		memcpy(v->s, s, n);
		v->s[n] = '\0';
		v->n = n;
		v->kind = T_STR;
		break;
	case LUA_TNUMBER:
		v->kind = T_NUM;
		v->num = (double)lua_tonumber(L, idx);
		break;
	case LUA_TBOOLEAN:
		v->kind = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
		break;
	case LUA_TNIL:
		v->kind = T_NONE;
		break;
	default:
		luaL_error(L, "%s: a value must be a string, number or boolean", what);
	}
}

static const char *const SPEC_KEYS[] = {"form", "case", "year", "date", "where", "fields",
                                        "by", "group", NULL};

/* Read the spec table at `idx` into a new userdata pushed on the stack. */
static spec *read_spec(lua_State *L, int idx, int for_tally)
{
	spec *sp;
	const char *date = "datum";
	int has_year = 0;
	lua_Integer year = 0;
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	sp = lua_newuserdatauv(L, sizeof *sp, 0);
	memset(sp, 0, sizeof *sp);
	sp->group_col = -1;

	/* unknown keys are author mistakes */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int k, known = 0;
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING)
			for (k = 0; SPEC_KEYS[k]; k++)
				known |= !strcmp(lua_tostring(L, -1), SPEC_KEYS[k]);
		if (!known) {
			lua_pushvalue(L, -1);
			luaL_error(L, "unknown key '%s' in the query", luaL_tolstring(L, -1, NULL));
		}
	}

	if (lua_getfield(L, idx, "form") != LUA_TSTRING || !veld_name__is_form(lua_tostring(L, -1)))
		luaL_error(L, "the query needs form = \"<form name>\"");
	snprintf(sp->form, sizeof sp->form, "%s", lua_tostring(L, -1));
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "case") != LUA_TNIL) {
		const char *id = lua_tostring(L, -1);
		if (lua_type(L, -1) != LUA_TSTRING || strlen(id) != VELD_IDSIZE - 1)
			luaL_error(L, "case = must be a case id");
		memcpy(sp->case_id, id, VELD_IDSIZE);
	}
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "date") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "date = must name a date field");
		date = lua_tostring(L, -1);
	}
	if (lua_getfield(L, idx, "year") != LUA_TNIL) {
		int isnum = 0;
		year = lua_tointegerx(L, -1, &isnum);
		if (!isnum || year < 1 || year > 9999)
			luaL_error(L, "year = must be a year (e.g. 2017)");
		has_year = 1;
	}
	lua_pop(L, 1);
	if (has_year) {
		cond *cd = &sp->conds[sp->nconds++];
		cd->col = spec_col(L, sp, date, "date");
		cd->op = OP_RANGE;
		cd->a.kind = cd->b.kind = T_STR;
		cd->a.n = (size_t)snprintf(cd->a.s, sizeof cd->a.s, "%04d-01-01", (int)year);
		cd->b.n = (size_t)snprintf(cd->b.s, sizeof cd->b.s, "%04d-12-31", (int)year);
	}

	if (lua_getfield(L, idx, "where") != LUA_TNIL) {
		luaL_checktype(L, -1, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			cond *cd;
			if (lua_type(L, -2) != LUA_TSTRING)
				luaL_error(L, "where: keys are field paths");
			if (sp->nconds == SPEC_PATHS)
				luaL_error(L, "where: too many conditions");
			cd = &sp->conds[sp->nconds];
			cd->col = spec_col(L, sp, lua_tostring(L, -2), "where");
			if (lua_type(L, -1) == LUA_TTABLE) {
				if (lua_getfield(L, -1, "has") != LUA_TNIL) {
					cd->op = OP_HAS;
					read_cval(L, -1, &cd->a, "where");
					lua_pop(L, 1);
				} else {
					lua_pop(L, 1);
					cd->op = OP_RANGE;
					lua_getfield(L, -1, "from");
					read_cval(L, -1, &cd->a, "where");
					lua_getfield(L, -2, "to");
					read_cval(L, -1, &cd->b, "where");
					lua_pop(L, 2);
					if (cd->a.kind == T_NONE && cd->b.kind == T_NONE)
						luaL_error(L, "where: use {from = ..., to = ...} or {has = ...}");
				}
			} else {
				cd->op = OP_EQ;
				read_cval(L, -1, &cd->a, "where");
			}
			sp->nconds++;
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);

	if (lua_getfield(L, idx, "fields") != LUA_TNIL) {
		lua_Integer i, n;
		luaL_checktype(L, -1, LUA_TTABLE);
		n = (lua_Integer)lua_rawlen(L, -1);
		if (n > SPEC_PATHS)
			luaL_error(L, "fields: at most %d", SPEC_PATHS);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, i);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "fields: a list of field paths");
			sp->out[sp->nout++] = spec_col(L, sp, lua_tostring(L, -1), "fields");
			lua_pop(L, 1);
		}
		sp->fields_mode = 1;
	}
	lua_pop(L, 1);

	if (for_tally) {
		lua_Integer i, n;
		sp->fields_mode = 1;
		if (lua_getfield(L, idx, "by") != LUA_TTABLE)
			luaL_error(L, "tally needs by = {field, ...}");
		n = (lua_Integer)lua_rawlen(L, -1);
		if (n > SPEC_PATHS)
			luaL_error(L, "by: at most %d", SPEC_PATHS);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, i);
			if (lua_type(L, -1) != LUA_TSTRING || !strcmp(lua_tostring(L, -1), "n"))
				luaL_error(L, "by: a list of field paths (not \"n\")");
			sp->by[sp->nby++] = spec_col(L, sp, lua_tostring(L, -1), "by");
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		if (lua_getfield(L, idx, "group") != LUA_TNIL) {
			const char *g = lua_tostring(L, -1);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "group = \"year\" or a field path");
			if (!strcmp(g, "year")) {
				sp->group_col = spec_col(L, sp, date, "date");
				sp->group_year = 1;
			} else {
				sp->group_col = spec_col(L, sp, g, "group");
			}
		}
		lua_pop(L, 1);
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

/* Compare a stored scalar with a condition value: -2 when they cannot be
** compared (different types), else -1/0/1. */
static int cmp_tok(lua_State *L, report_ctx *c, const tok *t, const cval *v)
{
	size_t n;
	const char *s;
	switch (v->kind) {
	case T_STR:
		s = tok_string(L, c, t, &n);
		return s ? cmp_bytes(s, n, v->s, v->n) : -2;
	case T_NUM: {
		double d;
		if (t->kind != T_NUM)
			return -2;
		d = tok_number(t);
		return d < v->num ? -1 : d > v->num;
	}
	case T_TRUE:
	case T_FALSE:
		return t->kind == v->kind ? 0 : -2;
	default:
		return -2;
	}
}

static int cmp_json(const json_t *j, const cval *v)
{
	switch (v->kind) {
	case T_STR:
		return json_is_string(j) ? cmp_bytes(json_string_value(j), json_string_length(j), v->s, v->n) : -2;
	case T_NUM: {
		double d;
		if (!json_is_number(j))
			return -2;
		d = json_number_value(j);
		return d < v->num ? -1 : d > v->num;
	}
	case T_TRUE:
		return json_is_true(j) ? 0 : -2;
	case T_FALSE:
		return json_is_false(j) ? 0 : -2;
	default:
		return -2;
	}
}

static int in_range(int lo, int hi, const cond *cd)
{
	if (cd->a.kind != T_NONE && (lo == -2 || lo < 0))
		return 0;
	if (cd->b.kind != T_NONE && (hi == -2 || hi > 0))
		return 0;
	return 1;
}

static int match_tok(lua_State *L, report_ctx *c, const cond *cd, const tok *t)
{
	switch (cd->op) {
	case OP_EQ:
		return cmp_tok(L, c, t, &cd->a) == 0;
	case OP_RANGE:
		return in_range(cd->a.kind != T_NONE ? cmp_tok(L, c, t, &cd->a) : 0,
		                cd->b.kind != T_NONE ? cmp_tok(L, c, t, &cd->b) : 0, cd);
	default: {
		tok e;
		size_t k;
		for (k = 0; arr_elem(t, k, &e); k++)
			if (cmp_tok(L, c, &e, &cd->a) == 0)
				return 1;
		return 0;
	}
	}
}

static int match_json(const cond *cd, const json_t *j)
{
	size_t i;
	json_t *e;
	if (!j)
		return 0;
	switch (cd->op) {
	case OP_EQ:
		return cmp_json(j, &cd->a) == 0;
	case OP_RANGE:
		return in_range(cd->a.kind != T_NONE ? cmp_json(j, &cd->a) : 0,
		                cd->b.kind != T_NONE ? cmp_json(j, &cd->b) : 0, cd);
	default:
		json_array_foreach(j, i, e)
			if (cmp_json(e, &cd->a) == 0)
				return 1;
		return 0;
	}
}

/* ---- queries -------------------------------------------------------------------------------- */

/* The JSON path of the shown value of field `path`: the last version of its
** register (versions are kept sorted by stamp, ascending). */
static void shown_path(char *buf, size_t n, const char *path)
{
	snprintf(buf, n, "$.fields.\"%s\"[#-1].v", path);
}

static int iter_slot(report_ctx *c)
{
	int i;
	for (i = 0; i < OPEN_ITERS; i++)
		if (!c->iters[i])
			return i;
	return -1;
}

static void iter_close(report_ctx *c, int slot)
{
	if (slot >= 0 && slot < OPEN_ITERS) {
		memo_free(c->memos[slot]);
		c->memos[slot] = NULL;
	}
	if (slot >= 0 && slot < OPEN_ITERS && c->iters[slot]) {
		sqlite3_finalize(c->iters[slot]);
		c->iters[slot] = NULL;
	}
}

/* Which path goes to which column: see above. */
static memo *memo_new(const spec *sp)
{
	memo *m = calloc(1, sizeof *m);
	size_t i, j;
	if (!m)
		return NULL;
	m->arr_col = -1;
	for (i = 0; i < sp->npaths; i++) {
		int solo = (int)i == sp->group_col;
		for (j = 0; j < sp->nconds; j++)
			solo |= sp->conds[j].col == (int)i;
		m->col_of[i] = solo ? (int)m->ncols++ : -1;
		if (!solo)
			m->in_arr[m->narr++] = (int)i;
	}
	if (m->narr == 1) {
		m->col_of[m->in_arr[0]] = (int)m->ncols++;
		m->narr = 0;
	} else if (m->narr > 1) {
		m->arr_col = (int)m->ncols++;
	}
	return m;
}

/* Prepare the scan for `sp` into a free iterator slot; returns the slot. */
static int query_open(lua_State *L, report_ctx *c, const spec *sp)
{
	char sql[256 + SPEC_PATHS * 20];
	char path[PATH_MAX_LEN + 40];
	size_t i, off;
	int slot = iter_slot(c), rc, col;
	sqlite3_stmt *st = NULL;
	memo *m;
	if (slot < 0)
		luaL_error(L, "too many open each() loops (at most %d)", OPEN_ITERS);
	memo_free(c->memos[slot]);
	c->memos[slot] = NULL;
	off = (size_t)snprintf(sql, sizeof sql, "SELECT id, case_id");
	if (!sp->fields_mode) {
		off += (size_t)snprintf(sql + off, sizeof sql - off, ", state");
	} else {
		if (!(m = memo_new(sp)))
			luaL_error(L, "out of memory");
		c->memos[slot] = m; /* freed with the slot, also on an error below */
		for (col = 0; col < (int)m->ncols; col++) {
			if (col == m->arr_col) {
				off += (size_t)snprintf(sql + off, sizeof sql - off, ", json_extract(state");
				for (i = 0; i < m->narr; i++)
					off += (size_t)snprintf(sql + off, sizeof sql - off, ", ?%d", m->in_arr[i] + 3);
				off += (size_t)snprintf(sql + off, sizeof sql - off, ")");
				continue;
			}
			for (i = 0; i < sp->npaths; i++)
				if (m->col_of[i] == col)
					off += (size_t)snprintf(sql + off, sizeof sql - off, ", state -> ?%zu", i + 3);
		}
	}
	snprintf(sql + off, sizeof sql - off, " FROM records WHERE form = ?1 AND NOT deleted%s",
	         sp->case_id[0] ? " AND case_id = ?2" : "");
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		luaL_error(L, "cannot read records: %s", sqlite3_errmsg(c->db));
	c->iters[slot] = st;
	sqlite3_bind_text(st, 1, sp->form, -1, SQLITE_TRANSIENT);
	if (sp->case_id[0])
		sqlite3_bind_text(st, 2, sp->case_id, -1, SQLITE_TRANSIENT);
	if (sp->fields_mode)
		for (i = 0; i < sp->npaths; i++) {
			shown_path(path, sizeof path, sp->paths[i]);
			sqlite3_bind_text(st, (int)i + 3, path, -1, SQLITE_TRANSIENT);
		}
	return slot;
}

/* One row of a scan, decoded. */
typedef struct row {
	const char *id, *case_id;
	tok vals[SPEC_PATHS];      /* fields mode */
	const json_t *fields;      /* full mode: the view's shown values */
} row;

/* Step to the next row that passes the spec's filters.  1: a row, 0: the
** end (the statement is closed). */
static int query_next(lua_State *L, report_ctx *c, const spec *sp, int slot, row *r)
{
	sqlite3_stmt *st = c->iters[slot];
	int rc;
	if (!st)
		return 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t i;
		int pass = 1;
		charge_row(L, c);
		r->id = (const char *)sqlite3_column_text(st, 0);
		r->case_id = (const char *)sqlite3_column_text(st, 1);
		if (!case_readable(L, c, r->case_id))
			continue;
		if (sp->fields_mode) {
			if (row_values(r->vals, sp->npaths, st, 2, c->memos[slot]))
				luaL_error(L, "record %s cannot be read", r->id);
			for (i = 0; i < sp->npaths; i++)
				if (r->vals[i].kind == T_BAD)
					luaL_error(L, "record %s cannot be read", r->id);
			for (i = 0; i < sp->nconds && pass; i++)
				pass = match_tok(L, c, &sp->conds[i], &r->vals[sp->conds[i].col]);
		} else {
			veld_err err;
			veld_record__free(c->rec);
			c->rec = NULL;
			json_decref(c->view);
			c->view = NULL;
			if (veld_record__parse(&c->rec, (const char *)sqlite3_column_text(st, 2),
			                       (size_t)sqlite3_column_bytes(st, 2), &err) != VELD_OK)
				luaL_error(L, "record %s cannot be read", r->id);
			c->view = veld_record__view(c->rec);
			if (!c->view)
				luaL_error(L, "out of memory");
			r->fields = json_object_get(c->view, "fields");
			for (i = 0; i < sp->nconds && pass; i++)
				pass = match_json(&sp->conds[i],
				                  json_object_get(r->fields, sp->paths[sp->conds[i].col]));
		}
		if (pass)
			return 1;
	}
	iter_close(c, slot);
	if (rc != SQLITE_DONE)
		luaL_error(L, "cannot read records: %s", sqlite3_errmsg(c->db));
	return 0;
}

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
static void push_row(lua_State *L, report_ctx *c, const spec *sp, const row *r)
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
			const tok *v = &r->vals[sp->out[i]];
			if (v->kind == T_NULL)
				continue;
			push_tok(L, c, v);
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
	report_ctx *c = ctx_of(L);
	spec *sp;
	row r;
	int slot;
	lua_Integer n = 0;
	if (c->stop)
		return fail_stop(L, c);
	sp = read_spec(L, 1, 0);
	slot = query_open(L, c, sp);
	lua_newtable(L);
	veld_sandbox__mark_array(L, -1);
	while (query_next(L, c, sp, slot, &r)) {
		push_row(L, c, sp, &r);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

/* The iterator of each(): upvalues ctx, spec, slot. */
static int each_next(lua_State *L)
{
	report_ctx *c = ctx_of(L);
	spec *sp = lua_touserdata(L, lua_upvalueindex(2));
	int slot = (int)lua_tointeger(L, lua_upvalueindex(3));
	row r;
	if (c->stop)
		return fail_stop(L, c);
	if (slot < 0 || !query_next(L, c, sp, slot, &r)) {
		lua_pushinteger(L, -1);
		lua_replace(L, lua_upvalueindex(3));
		lua_pushnil(L);
		return 1;
	}
	push_row(L, c, sp, &r);
	return 1;
}

static int api_each(lua_State *L)
{
	report_ctx *c = ctx_of(L);
	int slot;
	spec *sp;
	if (c->stop)
		return fail_stop(L, c);
	sp = read_spec(L, 1, 0);
	slot = query_open(L, c, sp);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, -2);
	lua_pushinteger(L, slot);
	lua_pushcclosure(L, each_next, 3);
	return 1;
}

/* -- tally -- */

static void tally_free(tally_state *ts)
{
	size_t g, b, k;
	if (!ts)
		return;
	for (g = 0; g < ts->n; g++) {
		free(ts->groups[g].s);
		for (b = 0; b < SPEC_PATHS; b++) {
			for (k = 0; k < ts->groups[g].by[b].n; k++)
				free(ts->groups[g].by[b].keys[k].s);
			free(ts->groups[g].by[b].keys);
		}
	}
	free(ts->groups);
	free(ts);
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Find or add the key (kind, s, n) in `tc`. */
static tally_key *tally_find(lua_State *L, tally_state *ts, tally_counts *tc, int kind,
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
	k->s = dup_bytes(s, n);
	if (!k->s)
		luaL_error(L, "out of memory");
	k->kind = kind;
	k->n = n;
	k->count = 0;
	tc->n++;
	return k;
}

static void tally_value(lua_State *L, report_ctx *c, tally_state *ts, tally_counts *tc, const tok *t)
{
	const char *s;
	size_t n;
	switch (t->kind) {
	case T_STR:
		s = tok_string(L, c, t, &n);
		tally_find(L, ts, tc, T_STR, s, n)->count++;
		break;
	case T_NUM:
		tally_find(L, ts, tc, T_NUM, t->p, t->n)->count++;
		break;
	case T_TRUE:
	case T_FALSE: {
		const char *b = t->kind == T_TRUE ? "true" : "false";
		tally_find(L, ts, tc, t->kind, b, strlen(b))->count++;
		break;
	}
	case T_ARR: {
		tok e;
		size_t k;
		for (k = 0; arr_elem(t, k, &e); k++)
			tally_value(L, c, ts, tc, &e);
		break;
	}
	default:
		break;
	}
}

static tally_group *tally_group_of(lua_State *L, report_ctx *c, tally_state *ts, const spec *sp,
                                   const row *r)
{
	int kind = T_NONE;
	const char *s = "";
	size_t n = 0, i;
	char year[8];
	if (sp->group_col >= 0) {
		const tok *t = &r->vals[sp->group_col];
		if (sp->group_year) {
			s = tok_string(L, c, t, &n);
			if (!s || n < 4 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
			    !isdigit((unsigned char)s[2]) || !isdigit((unsigned char)s[3]))
				return NULL;
			memcpy(year, s, 4);
			year[4] = '\0';
			s = year;
			n = 4;
			kind = T_NUM;
		} else if (t->kind == T_NUM) {
			kind = T_NUM;
			s = t->p;
			n = t->n;
		} else {
			s = tok_string(L, c, t, &n);
			if (!s)
				return NULL;
			kind = T_STR;
		}
	}
	for (i = 0; i < ts->n; i++)
		if (ts->groups[i].kind == kind && ts->groups[i].n == n && !memcmp(ts->groups[i].s, s, n))
			return &ts->groups[i];
	if (++ts->keys > TALLY_KEYS)
		luaL_error(L, "tally: more than %d distinct values", TALLY_KEYS);
	if (ts->n == ts->cap) {
		size_t cap = ts->cap ? ts->cap * 2 : 4;
		tally_group *p = realloc(ts->groups, cap * sizeof *p);
		if (!p)
			luaL_error(L, "out of memory");
		ts->groups = p;
		ts->cap = cap;
	}
	memset(&ts->groups[ts->n], 0, sizeof ts->groups[0]);
	ts->groups[ts->n].s = dup_bytes(s, n);
	if (!ts->groups[ts->n].s)
		luaL_error(L, "out of memory");
	ts->groups[ts->n].kind = kind;
	ts->groups[ts->n].n = n;
	return &ts->groups[ts->n++];
}

static void push_key(lua_State *L, int kind, const char *s, size_t n)
{
	if (kind == T_NUM) {
		if (!lua_stringtonumber(L, s))
			lua_pushlstring(L, s, n);
	} else if (kind == T_TRUE || kind == T_FALSE) {
		lua_pushboolean(L, kind == T_TRUE);
	} else {
		lua_pushlstring(L, s, n);
	}
}

static void push_group(lua_State *L, const spec *sp, const tally_group *g)
{
	size_t b, k;
	lua_newtable(L);
	lua_pushinteger(L, (lua_Integer)g->count);
	lua_setfield(L, -2, "n");
	for (b = 0; b < sp->nby; b++) {
		lua_newtable(L);
		for (k = 0; k < g->by[b].n; k++) {
			push_key(L, g->by[b].keys[k].kind, g->by[b].keys[k].s, g->by[b].keys[k].n);
			lua_pushinteger(L, (lua_Integer)g->by[b].keys[k].count);
			lua_rawset(L, -3);
		}
		set_path(L, lua_gettop(L) - 1, sp->paths[sp->by[b]]);
	}
}

static int api_tally(lua_State *L)
{
	report_ctx *c = ctx_of(L);
	spec *sp;
	row r;
	int slot;
	size_t g, b;
	tally_state *ts;
	if (c->stop)
		return fail_stop(L, c);
	sp = read_spec(L, 1, 1);
	slot = query_open(L, c, sp);
	tally_free(c->tally);
	c->tally = ts = calloc(1, sizeof *ts);
	if (!ts)
		return luaL_error(L, "out of memory");
	while (query_next(L, c, sp, slot, &r)) {
		tally_group *gr = tally_group_of(L, c, ts, sp, &r);
		if (!gr)
			continue;
		gr->count++;
		for (b = 0; b < sp->nby; b++)
			tally_value(L, c, ts, &gr->by[b], &r.vals[sp->by[b]]);
	}
	if (sp->group_col < 0) {
		if (ts->n)
			push_group(L, sp, &ts->groups[0]);
		else {
			tally_group empty;
			memset(&empty, 0, sizeof empty);
			push_group(L, sp, &empty);
		}
	} else {
		lua_newtable(L);
		for (g = 0; g < ts->n; g++) {
			push_key(L, ts->groups[g].kind, ts->groups[g].s, ts->groups[g].n);
			push_group(L, sp, &ts->groups[g]);
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
	report_ctx *c = ctx_of(L);
	const char *id = luaL_checkstring(L, 1);
	sqlite3_stmt *st = NULL;
	int slot, rc;
	row r;
	if (c->stop)
		return fail_stop(L, c);
	if (strlen(id) != VELD_IDSIZE - 1 || !case_readable(L, c, id)) {
		lua_pushnil(L);
		return 1;
	}
	slot = iter_slot(c);
	if (slot < 0)
		return luaL_error(L, "too many open each() loops (at most %d)", OPEN_ITERS);
	rc = sqlite3_prepare_v2(c->db, "SELECT state FROM records WHERE id = ?1 AND form = '_case'", -1,
	                        &st, NULL);
	if (rc != SQLITE_OK)
		return luaL_error(L, "cannot read cases: %s", sqlite3_errmsg(c->db));
	c->iters[slot] = st;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	charge_row(L, c);
	if (sqlite3_step(st) != SQLITE_ROW) {
		iter_close(c, slot);
		lua_pushnil(L);
		return 1;
	}
	{
		veld_err err;
		spec none;
		veld_record__free(c->rec);
		c->rec = NULL;
		json_decref(c->view);
		c->view = NULL;
		if (veld_record__parse(&c->rec, (const char *)sqlite3_column_text(st, 0),
		                       (size_t)sqlite3_column_bytes(st, 0), &err) != VELD_OK)
			return luaL_error(L, "case %s cannot be read", id);
		iter_close(c, slot);
		c->view = veld_record__view(c->rec);
		if (!c->view)
			return luaL_error(L, "out of memory");
		memset(&none, 0, sizeof none);
		r.id = id;
		r.case_id = id;
		r.fields = json_object_get(c->view, "fields");
		push_row(L, c, &none, &r);
	}
	return 1;
}

/* schema(form): the shipped form's schema (labels of fields and options). */
static int api_schema(lua_State *L)
{
	report_ctx *c = ctx_of(L);
	const char *name = luaL_checkstring(L, 1);
	json_t *sch = json_object_get(c->schemas, name);
	if (c->stop)
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

/* ---- running a report ------------------------------------------------------------------------ */

static void set_fn(lua_State *L, report_ctx *c, const char *name, lua_CFunction fn)
{
	lua_pushlightuserdata(L, c);
	lua_pushcclosure(L, fn, 1);
	lua_setglobal(L, name);
}

static int setup(lua_State *L)
{
	report_ctx *c = lua_touserdata(L, 1);
	const veld_embedded *p = &veld_embedded__reports_prelude;
	veld_sandbox__push_json(L, c->params);
	lua_setglobal(L, "params");
	set_fn(L, c, "records", api_records);
	set_fn(L, c, "each", api_each);
	set_fn(L, c, "tally", api_tally);
	set_fn(L, c, "case", api_case);
	set_fn(L, c, "schema", api_schema);
	set_fn(L, c, "pct", api_pct);
	lua_newtable(L);
	lua_pushcfunction(L, nl_count);
	lua_setfield(L, -2, "count");
	lua_pushcfunction(L, nl_decimal);
	lua_setfield(L, -2, "decimal");
	lua_pushcfunction(L, nl_pct);
	lua_setfield(L, -2, "pct");
	lua_pushcfunction(L, nl_date);
	lua_setfield(L, -2, "date");
	lua_setglobal(L, "nl");
	if (luaL_loadbufferx(L, (const char *)p->src, p->len, "=report_prelude.lua", "t") != LUA_OK)
		return lua_error(L);
	lua_call(L, 0, 0);
	return 0;
}

/* Run the report chunk (argument 1) and keep what it returns as JSON; the
** whole run is one protected, budgeted call.  Argument 2 is the context. */
static int run_report(lua_State *L)
{
	report_ctx *c = lua_touserdata(L, 2);
	lua_settop(L, 1);
	lua_call(L, 0, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "a report returns a table ({title = ..., sections = {...}})");
	c->result = veld_sandbox__to_json(L, -1);
	return 0;
}

void veld_report_limits_init(veld_report_limits *lim)
{
	memset(lim, 0, sizeof *lim);
	lim->sandbox.memory = VELD_REPORT_MEMORY;
	lim->sandbox.instructions = VELD_REPORT_INSTRUCTIONS;
	lim->sandbox.wall_ms = VELD_REPORT_WALL_MS;
	lim->rows = VELD_REPORT_ROWS;
}

static void ctx_release(report_ctx *c)
{
	int i;
	for (i = 0; i < OPEN_ITERS; i++)
		iter_close(c, i);
	sqlite3_finalize(c->case_st);
	c->case_st = NULL;
	free(c->cases);
	c->cases = NULL;
	tally_free(c->tally);
	c->tally = NULL;
	veld_record__free(c->rec);
	c->rec = NULL;
	json_decref(c->view);
	c->view = NULL;
}

int veld_report__run(json_t **result, veld_store *s, const char *chunk, const char *src,
                     size_t len, const char *params_json, const veld_report_limits *limits)
{
	veld_err *err = veld_store__err(s);
	report_ctx c;
	json_error_t jerr;
	int rc, began = 0, query_only = 0;
	*result = NULL;
	memset(&c, 0, sizeof c);
	c.s = s;
	c.db = veld_store__db(s);
	if (limits)
		c.lim = *limits;
	else
		veld_report_limits_init(&c.lim);
	if (!c.lim.sandbox.memory)
		c.lim.sandbox.memory = VELD_REPORT_MEMORY;
	if (!c.lim.sandbox.instructions)
		c.lim.sandbox.instructions = VELD_REPORT_INSTRUCTIONS;
	if (!c.lim.sandbox.wall_ms)
		c.lim.sandbox.wall_ms = VELD_REPORT_WALL_MS;
	if (!c.lim.sandbox.os)
		c.lim.sandbox.os = veld_store__os(s);
	if (!c.lim.rows)
		c.lim.rows = VELD_REPORT_ROWS;
	c.params = json_loads(params_json && *params_json ? params_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(c.params)) {
		rc = veld_err__set(err, VELD_EINVALID, "report parameters are not a JSON object");
		goto done;
	}
	c.schemas = json_object();
	if (!c.db || !c.schemas) {
		rc = veld_err__set(err, VELD_ERROR, c.db ? "out of memory" : "the store is closed");
		goto done;
	}
	if (veld_sandbox__new(&c.sb, &c.lim.sandbox) != VELD_OK) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	rc = veld_sandbox__reset(c.sb);
	if (rc == VELD_OK)
		rc = veld_sandbox__ccall(c.sb, setup, &c);
	if (rc != VELD_OK) {
		rc = veld_err__set(err, VELD_ERROR, "%s", veld_sandbox__errmsg(c.sb));
		goto done;
	}

	/* Read-only from here on: the connection refuses writes, and whatever
	** the run sees is one snapshot. */
	if (sqlite3_exec(c.db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
		rc = veld_store__db_fail(s, sqlite3_errcode(c.db), "start a report");
		goto done;
	}
	query_only = 1;
	if (sqlite3_get_autocommit(c.db)) {
		if (sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			rc = veld_store__db_fail(s, sqlite3_errcode(c.db), "start a report");
			goto done;
		}
		began = 1;
	}
	c.deadline_ms = c.lim.sandbox.os->xClockMs(c.lim.sandbox.os->ctx) + c.lim.sandbox.wall_ms;

	rc = veld_sandbox__load(c.sb, chunk, src, len);
	if (rc == VELD_OK) {
		lua_State *L = veld_sandbox__state(c.sb);
		/* runner, chunk, context: pushing a light C function and a light
		** userdata allocates nothing once the stack has room */
		if (!lua_checkstack(L, 3)) {
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
			goto done;
		}
		lua_pushcfunction(L, run_report);
		lua_insert(L, -2);
		lua_pushlightuserdata(L, &c);
		rc = veld_sandbox__call(c.sb, 2, 0);
	}
	if (c.stop) {
		rc = veld_err__set(err, VELD_EINVALID, "%s: %s", chunk, c.stop_msg);
		goto done;
	}
	if (rc != VELD_OK) {
		rc = veld_err__set(err, rc == VELD_EINVALID ? VELD_EINVALID : VELD_ERROR, "%s",
		                   veld_sandbox__errmsg(c.sb));
		goto done;
	}
	*result = c.result;
	c.result = NULL;
done:
	ctx_release(&c);
	veld_sandbox__free(c.sb);
	if (began)
		sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL);
	if (query_only)
		sqlite3_exec(c.db, "PRAGMA query_only = 0", NULL, NULL, NULL);
	json_decref(c.result);
	json_decref(c.params);
	json_decref(c.schemas);
	return rc;
}

/* ---- shipped reports, files, the public call ------------------------------------------------ */

int veld_report__shipped(size_t i, const char **name, const char **source, size_t *len)
{
	size_t n;
	for (n = 0; veld_embedded__reports[n].name; n++)
		;
	if (i >= n)
		return 0;
	*name = veld_embedded__reports[i].name;
	*source = (const char *)veld_embedded__reports[i].src;
	*len = veld_embedded__reports[i].len;
	return 1;
}

/* A name with a '/' or ending in ".lua" is a file (an author's report). */
static int is_file_name(const char *name)
{
	size_t n = strlen(name);
	return strchr(name, '/') != NULL || (n > 4 && !strcmp(name + n - 4, ".lua"));
}

int veld_report(char **out, veld_store *store, const char *name, const char *params_json,
                const char *format)
{
	veld_err *err;
	char *file_src = NULL, chunk[128];
	const char *src = NULL, *base;
	size_t len = 0, i;
	json_t *result = NULL;
	int rc;
	if (out)
		*out = NULL;
	if (!store)
		return VELD_EINVALID;
	err = veld_store__err(store);
	veld_err__clear(err);
	if (!out || !name || !*name) {
		rc = veld_err__set(err, VELD_EINVALID, "a report needs a name and an output");
		goto done;
	}
	if (veld_report__format(format ? format : "text") < 0) {
		rc = veld_err__set(err, VELD_EINVALID, "unknown report format '%.20s' (text, csv, json, html)",
		                   format);
		goto done;
	}
	if (is_file_name(name)) {
		if ((rc = veld_sandbox__read_file(&file_src, &len, veld_store__os(store), name, REPORT_SOURCE_MAX, "report",
		                                   veld_store__err(store))))
			goto done;
		src = file_src;
		base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
		snprintf(chunk, sizeof chunk, "%s", base);
	} else {
		const char *n;
		for (i = 0; veld_report__shipped(i, &n, &src, &len); i++)
			if (!strcmp(n, name))
				break;
		if (!veld_report__shipped(i, &n, &src, &len)) {
			rc = veld_err__set(err, VELD_ENOTFOUND, "no report '%.60s'", name);
			goto done;
		}
		snprintf(chunk, sizeof chunk, "%s.lua", n);
	}
	if ((rc = veld_report__run(&result, store, chunk, src, len, params_json, NULL)))
		goto done;
	rc = veld_report__render(out, result, format ? format : "text", chunk, err);
done:
	json_decref(result);
	free(file_src);
	return rc;
}

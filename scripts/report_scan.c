/*
** report_scan.c — the scans of a report: SQL over the store, read-only.
**
** A report's query (report_query.c) becomes one SQL statement over the
** records table, built here from checked names only (the paths are bound
** as parameters; no SQL ever comes from a script).  Only records of
** readable cases are seen: the case header must exist and not be deleted
** (a table of case ids answers that after the first look).
**
** Speed.  A record's state is its CRDT form (record.c): every field a list
** of versions with stamps, the shown value the last one.  Parsing a whole
** state with jansson costs several times the SQLite scan itself, so with
** `fields` (and always for tally) the one SQL statement asks SQLite's own
** JSON parser for exactly the shown values needed: a column per path a scan
** filters or groups on, `state -> '$.fields."datum"[#-1].v'`, and one
** `json_extract(state, ...)` for the rest.  Those short texts repeat from
** row to row (places, problem lists, dates), so jansson parses each
** distinct text once per scan (the memo below) and the row's values are
** tokens into the parsed values (veld_tok).  Conditions are evaluated here
** on those values, so a row is read once.  Without `fields` a record is
** parsed whole (veld_record__parse), for small per-case reads.
**
** Limits.  Every row scanned counts against the run's `rows`, and the clock
** is checked as rows go by; once a limit is hit the stop sticks (the caller
** fails every later call).  Statements and memos hang off the veld_scan
** and are released with it, so a script error never leaks one.  This file
** pushes nothing on the Lua stack: it only raises errors there.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOCK_EVERY 512 /* rows between two looks at the clock */

/* ---- values of a row ------------------------------------------------------------ */

/* A value from jansson.  Strings point into `j`'s storage and numbers get
** their text in t->num, so the token lives as long as `j` and stays where
** it was filled in. */
static void tok_from_json(veld_tok *t, const json_t *j)
{
	memset(t, 0, sizeof *t);
	t->j = j;
	if (!j || json_is_null(j)) {
		t->kind = VELD_TOK_NULL;
	} else if (json_is_string(j)) {
		t->kind = VELD_TOK_STR;
		t->p = json_string_value(j);
		t->n = json_string_length(j);
	} else if (json_is_integer(j)) {
		t->kind = VELD_TOK_NUM;
		t->n = (size_t)snprintf(t->num, sizeof t->num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		t->p = t->num;
	} else if (json_is_real(j)) {
		t->kind = VELD_TOK_NUM;
		t->n = (size_t)snprintf(t->num, sizeof t->num, "%.17g", json_real_value(j));
		t->p = t->num;
	} else if (json_is_boolean(j)) {
		t->kind = json_is_true(j) ? VELD_TOK_TRUE : VELD_TOK_FALSE;
	} else if (json_is_array(j)) {
		t->kind = VELD_TOK_ARR;
	} else {
		t->kind = VELD_TOK_BAD;
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
	veld_tok *toks;      /* the tokens of its paths */
} memo_ent;

typedef struct veld_scan_memo {
	memo_ent *e;    /* MEMO_CAP entries, allocated with the first value */
	size_t n;
	size_t ncols;
	int col_of[VELD_QUERY_PATHS];    /* path -> its column (from 0), or -1: in the array */
	int in_arr[VELD_QUERY_PATHS];    /* the paths of the array column, in order */
	size_t narr;
	int arr_col;               /* the array column, or -1 */
	json_t *keep[VELD_QUERY_PATHS + 1]; /* values of the current row that are not kept */
	veld_tok tmp[VELD_QUERY_PATHS + 1][VELD_QUERY_PATHS];
} veld_scan_memo;

static void memo_free(veld_scan_memo *m)
{
	size_t i;
	if (!m)
		return;
	for (i = 0; m->e && i < MEMO_CAP; i++) {
		free(m->e[i].text);
		free(m->e[i].toks);
		json_decref(m->e[i].val);
	}
	for (i = 0; i <= VELD_QUERY_PATHS; i++)
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
static int memo_toks(const veld_scan_memo *m, size_t col, const json_t *v, veld_tok *toks)
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
static const veld_tok *memo_value(veld_scan_memo *m, size_t col, const char *p, size_t n)
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
static int row_values(veld_tok *vals, size_t npaths, sqlite3_stmt *st, int first, veld_scan_memo *m)
{
	size_t i, k;
	for (i = 0; i < m->ncols; i++) {
		int c = first + (int)i;
		const veld_tok *t;
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

int veld_scan__elem(const veld_tok *t, size_t i, veld_tok *e)
{
	if (t->kind != VELD_TOK_ARR || i >= json_array_size(t->j)) {
		memset(e, 0, sizeof *e);
		return 0;
	}
	tok_from_json(e, json_array_get(t->j, i));
	return 1;
}

/* ---- limits -------------------------------------------------------------------- */

/* Count a scanned row against the limits; raise the sticky stop when over. */
/* The host failed (the store could not be read, memory ran out), not the
** script: raise the error for the script's position, and mark the run so
** it fails with VELD_ERROR rather than as the script's fault. */
static int host_error(lua_State *L, veld_scan *sc, const char *fmt, const char *detail)
{
	sc->host_failed = 1;
	return luaL_error(L, fmt, detail);
}

static void charge_row(lua_State *L, veld_scan *sc)
{
	const veld_os *os = sc->os;
	if (!sc->stop && ++sc->rows > sc->max_rows) {
		sc->stop = 1;
		snprintf(sc->stop_msg, sizeof sc->stop_msg, "row limit exceeded (%llu rows read)",
		         (unsigned long long)sc->max_rows);
	}
	if (!sc->stop && sc->rows % CLOCK_EVERY == 0 && veld_sandbox__now(os) > sc->deadline_ms) {
		sc->stop = 1;
		snprintf(sc->stop_msg, sizeof sc->stop_msg, "time limit exceeded (%u ms)",
		         (unsigned)sc->wall_ms);
	}
	if (sc->stop)
		luaL_error(L, "%s", sc->stop_msg);
}

/* ---- readable cases ---------------------------------------------------------------- */

typedef struct veld_scan_case {
	char id[VELD_IDSIZE];
	int ok; /* the header exists and is not deleted */
} veld_scan_case;

static size_t id_hash(const char *id)
{
	size_t h = 14695981039346656037ull;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ull;
	return h;
}

static int cases_grow(veld_scan *sc)
{
	size_t cap = sc->cap_cases ? sc->cap_cases * 2 : 256, i;
	veld_scan_case *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (i = 0; i < sc->cap_cases; i++) {
		size_t j;
		if (!sc->cases[i].id[0])
			continue;
		for (j = id_hash(sc->cases[i].id) & (cap - 1); t[j].id[0]; j = (j + 1) & (cap - 1))
			;
		t[j] = sc->cases[i];
	}
	free(sc->cases);
	sc->cases = t;
	sc->cap_cases = cap;
	return 0;
}

/* 1 if the case exists here and its header is not deleted. */
static int case_readable(lua_State *L, veld_scan *sc, const char *id)
{
	size_t j;
	int ok = 0, rc;
	if (!id || strlen(id) != VELD_IDSIZE - 1)
		return 0;
	if (sc->cap_cases) {
		for (j = id_hash(id) & (sc->cap_cases - 1); sc->cases[j].id[0]; j = (j + 1) & (sc->cap_cases - 1))
			if (!strcmp(sc->cases[j].id, id))
				return sc->cases[j].ok;
	}
	if (!sc->case_st && sqlite3_prepare_v2(sc->db,
	                                      "SELECT deleted FROM records WHERE id = ?1 AND form = '" VELD_CASE_FORM "'",
	                                      -1, &sc->case_st, NULL) != SQLITE_OK)
		host_error(L, sc, "cannot read cases: %s", sqlite3_errmsg(sc->db));
	sqlite3_reset(sc->case_st);
	sqlite3_bind_text(sc->case_st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(sc->case_st);
	if (rc == SQLITE_ROW)
		ok = sqlite3_column_int(sc->case_st, 0) == 0;
	else if (rc != SQLITE_DONE)
		host_error(L, sc, "cannot read cases: %s", sqlite3_errmsg(sc->db));
	sqlite3_reset(sc->case_st);
	if ((sc->ncases + 1) * 2 > sc->cap_cases && cases_grow(sc))
		host_error(L, sc, "%s", "out of memory");
	for (j = id_hash(id) & (sc->cap_cases - 1); sc->cases[j].id[0]; j = (j + 1) & (sc->cap_cases - 1))
		;
	memcpy(sc->cases[j].id, id, VELD_IDSIZE);
	sc->cases[j].ok = ok;
	sc->ncases++;
	return ok;
}

/* ---- scans -------------------------------------------------------------------------------- */

/* The JSON path of the shown value of field `path`: the last version of its
** register (versions are kept sorted by stamp, ascending). */
static void shown_path(char *buf, size_t n, const char *path)
{
	snprintf(buf, n, "$.fields.\"%s\"[#-1].v", path);
}

static int loop_slot(veld_scan *sc)
{
	int i;
	for (i = 0; i < VELD_SCAN_LOOPS; i++)
		if (!sc->loops[i])
			return i;
	return -1;
}

/* Finish the statement of `slot` (a new scan may take it). */
static void scan_close(veld_scan *sc, int slot)
{
	if (slot >= 0 && slot < VELD_SCAN_LOOPS) {
		memo_free(sc->memos[slot]);
		sc->memos[slot] = NULL;
	}
	if (slot >= 0 && slot < VELD_SCAN_LOOPS && sc->loops[slot]) {
		sqlite3_finalize(sc->loops[slot]);
		sc->loops[slot] = NULL;
	}
}

/* Which path goes to which column: see above. */
static veld_scan_memo *memo_new(const veld_query *sp)
{
	veld_scan_memo *m = calloc(1, sizeof *m);
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

int veld_scan__open(lua_State *L, veld_scan *sc, const veld_query *sp)
{
	char sql[256 + VELD_QUERY_PATHS * 20];
	char path[VELD_QUERY_PATH_MAX + 40];
	size_t i, off;
	int slot = loop_slot(sc), rc, col;
	sqlite3_stmt *st = NULL;
	veld_scan_memo *m;
	if (slot < 0)
		luaL_error(L, "too many open each() loops (at most %d)", VELD_SCAN_LOOPS);
	memo_free(sc->memos[slot]);
	sc->memos[slot] = NULL;
	off = (size_t)snprintf(sql, sizeof sql, "SELECT id, case_id");
	if (!sp->fields_mode) {
		off += (size_t)snprintf(sql + off, sizeof sql - off, ", state");
	} else {
		if (!(m = memo_new(sp)))
			host_error(L, sc, "%s", "out of memory");
		sc->memos[slot] = m; /* freed with the slot, also on an error below */
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
	rc = sqlite3_prepare_v2(sc->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		host_error(L, sc, "cannot read records: %s", sqlite3_errmsg(sc->db));
	sc->loops[slot] = st;
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

/* Read the state in column `col` of `st` as the scan's current record and
** point the row at its shown values. */
static void load_record(lua_State *L, veld_scan *sc, sqlite3_stmt *st, int col, const char *what,
                        veld_scan_row *r)
{
	veld_err err;
	veld_record__free(sc->rec);
	sc->rec = NULL;
	json_decref(sc->view);
	sc->view = NULL;
	if (veld_record__parse(&sc->rec, (const char *)sqlite3_column_text(st, col),
	                       (size_t)sqlite3_column_bytes(st, col), &err) != VELD_OK)
		luaL_error(L, "%s %s cannot be read", what, r->id);
	sc->view = veld_record__view(sc->rec);
	if (!sc->view)
		host_error(L, sc, "%s", "out of memory");
	r->fields = json_object_get(sc->view, "fields");
}

int veld_scan__next(lua_State *L, veld_scan *sc, const veld_query *sp, int slot, veld_scan_row *r)
{
	sqlite3_stmt *st = sc->loops[slot];
	int rc;
	if (!st)
		return 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t i;
		int pass = 1;
		charge_row(L, sc);
		r->id = (const char *)sqlite3_column_text(st, 0);
		r->case_id = (const char *)sqlite3_column_text(st, 1);
		if (!case_readable(L, sc, r->case_id))
			continue;
		if (sp->fields_mode) {
			if (row_values(r->vals, sp->npaths, st, 2, sc->memos[slot]))
				luaL_error(L, "record %s cannot be read", r->id);
			for (i = 0; i < sp->npaths; i++)
				if (r->vals[i].kind == VELD_TOK_BAD)
					luaL_error(L, "record %s cannot be read", r->id);
			for (i = 0; i < sp->nconds && pass; i++)
				pass = veld_query__match(&sp->conds[i], r->vals[sp->conds[i].col].j);
		} else {
			load_record(L, sc, st, 2, "record", r);
			for (i = 0; i < sp->nconds && pass; i++)
				pass = veld_query__match(&sp->conds[i],
				                         json_object_get(r->fields, sp->paths[sp->conds[i].col]));
		}
		if (pass)
			return 1;
	}
	scan_close(sc, slot);
	if (rc != SQLITE_DONE)
		host_error(L, sc, "cannot read records: %s", sqlite3_errmsg(sc->db));
	return 0;
}

int veld_scan__case(lua_State *L, veld_scan *sc, const char *id, veld_scan_row *r)
{
	sqlite3_stmt *st = NULL;
	int slot;
	if (strlen(id) != VELD_IDSIZE - 1 || !case_readable(L, sc, id))
		return 0;
	/* the statement takes a loop slot, so an error below frees it */
	if ((slot = loop_slot(sc)) < 0)
		luaL_error(L, "too many open each() loops (at most %d)", VELD_SCAN_LOOPS);
	if (sqlite3_prepare_v2(sc->db, "SELECT state FROM records WHERE id = ?1 AND form = '" VELD_CASE_FORM "'",
	                       -1, &st, NULL) != SQLITE_OK)
		host_error(L, sc, "cannot read cases: %s", sqlite3_errmsg(sc->db));
	sc->loops[slot] = st;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	charge_row(L, sc);
	if (sqlite3_step(st) != SQLITE_ROW) {
		scan_close(sc, slot);
		return 0;
	}
	memset(r, 0, sizeof *r);
	r->id = id;
	r->case_id = id;
	load_record(L, sc, st, 0, "case", r);
	scan_close(sc, slot);
	return 1;
}

void veld_scan__release(veld_scan *sc)
{
	int i;
	for (i = 0; i < VELD_SCAN_LOOPS; i++)
		scan_close(sc, i);
	sqlite3_finalize(sc->case_st);
	sc->case_st = NULL;
	free(sc->cases);
	sc->cases = NULL;
	veld_record__free(sc->rec);
	sc->rec = NULL;
	json_decref(sc->view);
	sc->view = NULL;
}

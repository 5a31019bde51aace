/*
** report.c — reports: a Lua script over the store, read-only, rendered by C.
**
** A report (scripts/reports/NAME.lua, shipped and embedded at build time,
** or a file an author is writing) runs in a sandbox with larger limits than
** a form: it may scan many records.  It reads the store through the
** functions of report_api.c and returns a table of sections that render.c
** turns into text, CSV, JSON or HTML.  docs/reports.md is the author's
** guide.  The pieces:
**   report.c        the run: limits, sandbox, read-only snapshot; the
**                   public calls veld_report (by name) and veld_report_file
**   report_api.c    the functions a script sees (records, each, tally, ...)
**   report_query.c  a script's query, read and checked; conditions
**   report_scan.c   the scans: SQL over the store, values of rows
**   render.c, render_html.c   the result as text, CSV, JSON, HTML
**
** Read-only.  The C side alone talks to SQLite, with statements it builds
** from validated names (no SQL ever comes from a script), inside a read
** transaction (BEGIN ... ROLLBACK) on a connection switched to
** PRAGMA query_only for the run.
**
** Limits.  The sandbox bounds Lua (memory, instructions, wall clock, depth).
** Work done in C on a script's behalf is bounded too: every row scanned
** counts against `rows`, and the clock is checked as rows go by.  Once a
** limit is hit every later call into the API fails again (the stop sticks,
** as the sandbox's does) and the report fails whatever it returns.  What
** the run allocates hangs off its context and is released here at the end,
** so a script error never leaks a statement or a buffer.
**
** A report is named (veld_report: the newest version the office published
** (publish.c), else the shipped report) or given as a path
** (veld_report_file), never both in one argument.
**
** "Today" is the run's OS table's wall clock (the store's, unless the
** limits name another table), so a report that defaults to "last year"
** or prints the date it was made on is as testable as a form's rules.
*/
#include "scripts.h"

#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_SOURCE_MAX ((int64_t)1 << 20)

/* ---- one run ------------------------------------------------------------------------------ */

void veld_report_limits_init(veld_report_limits *lim)
{
	memset(lim, 0, sizeof *lim);
	lim->sandbox.memory = VELD_REPORT_MEMORY;
	lim->sandbox.instructions = VELD_REPORT_INSTRUCTIONS;
	lim->sandbox.wall_ms = VELD_REPORT_WALL_MS;
	lim->rows = VELD_REPORT_ROWS;
	lim->output = VELD_REPORT_OUTPUT_MAX;
}

/* `limits` (NULL: the defaults) with its zero fields filled in. */
static void run_limits(veld_report_limits *lim, const veld_report_limits *limits, veld_store *s)
{
	if (limits)
		*lim = *limits;
	else
		veld_report_limits_init(lim);
	if (!lim->sandbox.memory)
		lim->sandbox.memory = VELD_REPORT_MEMORY;
	if (!lim->sandbox.instructions)
		lim->sandbox.instructions = VELD_REPORT_INSTRUCTIONS;
	if (!lim->sandbox.wall_ms)
		lim->sandbox.wall_ms = VELD_REPORT_WALL_MS;
	if (!lim->sandbox.os)
		lim->sandbox.os = veld_store__os(s);
	if (!lim->rows)
		lim->rows = VELD_REPORT_ROWS;
	if (!lim->output)
		lim->output = VELD_REPORT_OUTPUT_MAX;
}

/* What the page says of itself: today by the run's clock, and the
** organisation's name where the store knows it (an office store keeps it
** from veld_org_init; a device's store does not, and its report has none). */
static void run_header(veld_report_ctx *c, veld_store *s, const veld_os *os)
{
	int n;
	veld_sandbox__today(c->today, sizeof c->today, os);
	n = veld_store__meta_get(s, "org_name", c->organisation, (int)sizeof c->organisation - 1);
	c->organisation[n > 0 ? n : 0] = '\0';
	if (n < 0)
		veld_err__clear(veld_store__err(s)); /* none (or unreadable): the page goes without */
}

/* Compile and call the chunk in the prepared state, protected and
** budgeted; what it returns lands in c->result. */
static int run_chunk(veld_report_ctx *c, veld_sandbox *sb, const char *chunk, const char *src, size_t len,
                     veld_err *err)
{
	int rc = veld_sandbox__load(sb, chunk, src, len);
	if (rc == VELD_OK) {
		lua_State *L = veld_sandbox__state(sb);
		/* runner, chunk, context: pushing a light C function and a light
		** userdata allocates nothing once the stack has room */
		if (!lua_checkstack(L, 3))
			return veld_err__set(err, VELD_ERROR, "out of memory");
		lua_pushcfunction(L, veld_report__call);
		lua_insert(L, -2);
		lua_pushlightuserdata(L, c);
		rc = veld_sandbox__call(sb, 2, 0);
	}
	if (c->scan.stop)
		return veld_err__set(err, VELD_EINVALID, "%s: %s", chunk, c->scan.stop_msg);
	/* A scan that could not read the store failed the script: the host's
	** failure (VELD_ERROR), not the script's. */
	if (rc != VELD_OK)
		return veld_err__set(err, rc == VELD_EINVALID && !c->scan.host_failed ? VELD_EINVALID : VELD_ERROR,
		                     "%s", veld_sandbox__errmsg(sb));
	return VELD_OK;
}

int veld_report__run(json_t **result, veld_store *s, const char *chunk, const char *src,
                     size_t len, const char *params_json, const veld_report_limits *limits)
{
	veld_err *err = veld_store__err(s);
	veld_report_limits lim;
	veld_report_ctx c;
	veld_sandbox *sb = NULL;
	sqlite3 *db = veld_store__db(s);
	json_error_t jerr;
	int rc, began = 0, query_only = 0;
	*result = NULL;
	memset(&c, 0, sizeof c);
	run_limits(&lim, limits, s);
	c.params = json_loads(params_json && *params_json ? params_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!c.params && (rc = veld_err__json_oom(err, &jerr)))
		goto done;
	if (!json_is_object(c.params)) {
		rc = veld_err__set(err, VELD_EINVALID, "report parameters are not a JSON object");
		goto done;
	}
	run_header(&c, s, lim.sandbox.os);
	c.schemas = json_object();
	if (!db || !c.schemas) {
		rc = veld_err__set(err, VELD_ERROR, db ? "out of memory" : "the store is closed");
		goto done;
	}
	if (veld_sandbox__new(&sb, &lim.sandbox) != VELD_OK) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	rc = veld_sandbox__reset(sb);
	if (rc == VELD_OK)
		rc = veld_sandbox__ccall(sb, veld_report__setup, &c);
	if (rc != VELD_OK) {
		rc = veld_err__set(err, VELD_ERROR, "%s", veld_sandbox__errmsg(sb));
		goto done;
	}

	/* Read-only from here on: the connection refuses writes, and whatever
	** the run sees is one snapshot. */
	if (sqlite3_exec(db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
		rc = veld_store__db_fail(s, sqlite3_errcode(db), "start a report");
		goto done;
	}
	query_only = 1;
	if (sqlite3_get_autocommit(db)) {
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			rc = veld_store__db_fail(s, sqlite3_errcode(db), "start a report");
			goto done;
		}
		began = 1;
	}
	c.result_max = lim.output;
	c.scan.db = db;
	c.scan.os = lim.sandbox.os;
	c.scan.max_rows = lim.rows;
	c.scan.wall_ms = lim.sandbox.wall_ms;
	c.scan.deadline_ms = veld_sandbox__now(lim.sandbox.os) + lim.sandbox.wall_ms;
	if ((rc = run_chunk(&c, sb, chunk, src, len, err)))
		goto done;
	*result = c.result;
	c.result = NULL;
done:
	veld_scan__release(&c.scan);
	veld_report__release(&c);
	veld_sandbox__free(sb);
	if (began)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (query_only)
		sqlite3_exec(db, "PRAGMA query_only = 0", NULL, NULL, NULL);
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

static int report_render(char **out, veld_store *store, const char *chunk, const char *src, size_t len,
                         const char *params_json, const char *format)
{
	json_t *result = NULL;
	int rc = veld_report__run(&result, store, chunk, src, len, params_json, NULL);
	if (rc == VELD_OK)
		rc = veld_report__render(out, result, format ? format : "text", chunk, VELD_REPORT_OUTPUT_MAX,
		                         veld_store__err(store));
	json_decref(result);
	return rc;
}

/* The prologue of both public calls: the store, the output, the format. */
static int report_enter(char **out, veld_store *store, const char *what, const char *format)
{
	int rc;
	if (out)
		*out = NULL;
	if ((rc = veld_store__enter(store)))
		return rc;
	if (!out || !what || !*what)
		return veld_err__set(veld_store__err(store), VELD_EINVALID, "a report needs a name and an output");
	if (veld_report__format(format ? format : "text") < 0)
		return veld_err__set(veld_store__err(store), VELD_EINVALID,
		                     "unknown report format '%.20s' (text, csv, json, html)", format);
	return 0;
}

int veld_report(char **out, veld_store *store, const char *name, const char *params_json,
                const char *format)
{
	const char *n = NULL, *src = NULL;
	char chunk[128], *held = NULL;
	size_t len = 0, i;
	int rc, newest;
	if ((rc = report_enter(out, store, name, format)))
		return rc;
	/* The newest version the office published, if any: it replaces the
	** library's (publish.c). */
	if ((newest = veld_published__newest(store, VELD_SCRIPT_REPORT, name, 0)) < 0)
		return newest;
	if (newest > 0) {
		if ((rc = veld_published__get(&held, &len, store, VELD_SCRIPT_REPORT, name, newest)))
			return rc;
		snprintf(chunk, sizeof chunk, "%.100s.lua", name);
		rc = report_render(out, store, chunk, held, len, params_json, format);
		free(held);
		return rc;
	}
	for (i = 0; veld_report__shipped(i, &n, &src, &len); i++)
		if (!strcmp(n, name))
			break;
	if (!veld_report__shipped(i, &n, &src, &len))
		return veld_err__set(veld_store__err(store), VELD_ENOTFOUND, "no report '%.60s'", name);
	snprintf(chunk, sizeof chunk, "%s.lua", n);
	return report_render(out, store, chunk, src, len, params_json, format);
}

int veld_report_file(char **out, veld_store *store, const char *path, const char *params_json,
                     const char *format)
{
	char *src = NULL, chunk[128];
	size_t len = 0;
	int rc;
	if ((rc = report_enter(out, store, path, format)))
		return rc;
	rc = veld_sandbox__read_file(&src, &len, veld_store__os(store), path, REPORT_SOURCE_MAX, "report",
	                             veld_store__err(store));
	if (rc == VELD_OK) {
		/* messages name the file as "mine.lua:12: ..." */
		snprintf(chunk, sizeof chunk, "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
		rc = report_render(out, store, chunk, src, len, params_json, format);
	}
	free(src);
	return rc;
}

/*
** sandbox.c — Lua 5.4 states for guest scripts.
**
** A script (a form, a report) is a guest: it may compute, and nothing else.
** This file owns the Lua states scripts run in and every limit on them; the
** engines (form.c) only ever reach Lua through the calls declared in
** scripts.h, which all run protected (lua_pcall) and budgeted.
**
** What a state holds (base, string, table, math and utf8, the functions left
** out, replaced or guarded) is sandbox_lib.c's: it opens the libraries into
** a fresh state and charges what they do in C through veld_sandbox__charge.
** Here are the state, its allocator, its hook and the budget they and the
** guards share, the protected calls and the error messages; JSON <-> Lua,
** bounded, is sandbox_json.c's.
** The split follows what must hold the handle: sandbox_lib.c never sees the
** handle's fields, only the few calls scripts.h names for it.
**
** Limits, per state and per call:
**   memory        a lua_Alloc that counts bytes and refuses beyond the cap;
**                 once Lua's emergency collection could not make room (the
**                 same request is refused twice) the stop sticks;
**   instructions  a LUA_MASKCOUNT hook every HOOK_COUNT instructions, set on
**                 every thread (new threads inherit it; create/wrap set it
**                 again); the library functions that loop in C (pattern
**                 matching, rep, table.concat/insert/remove/move/unpack/sort,
**                 utf8 scans, load) charge their worst-case work to the same
**                 budget before they start, so a backtracking pattern over a
**                 long subject is refused instead of run;
**   time          the hook and every charge check a wall-clock deadline
**                 (veld_sandbox__now: a monotonic clock), so C work that
**                 runs long without returning to Lua is stopped at the
**                 next hook or charge;
**   depth         the hook refuses Lua call stacks deeper than `depth`; C
**                 recursion (metamethods, gsub callbacks) is bounded by Lua's
**                 LUAI_MAXCCALLS (200).
** A stop sticks: once a limit is hit every later hook call raises the same
** error at once (the count drops to 1), so a `pcall` that swallows it gains
** one instruction at most, and the call fails even if the script returns.
** Closing a state first sets the stop, so `<close>` handlers left pending
** die at their first instruction; there are no finalizers to run.
**
** Known 5.4.4 bugs we stay clear of: "Lua-stack overflow when C stack
** overflows while handling an error" needs a message handler (no xpcall,
** and lua_pcall here never uses one); "C-stack overflow with deep nesting of
** coroutine.close" (close depth counter, sandbox_lib.c); "wrong code when
** _ENV is <const>" (sources and `load` chunks naming _ENV are refused).
**
** Errors come back as "name:line: message".  Every call into Lua goes
** through lua_pcall; host code that allocates in a state runs inside
** veld_sandbox__ccall, so Lua's panic (abort) is never reached.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_COUNT    1000 /* instructions between two hook calls */
#define REFUSALS_MAX  8    /* refused allocations before the stop sticks anyway */

struct veld_sandbox {
	veld_sandbox_limits lim;
	lua_State *L;
	size_t used;             /* bytes held by L */
	/* the current call */
	int depth;               /* nesting of call/ccall (the budget is per outer call) */
	uint64_t spent;          /* instructions executed plus C work charged */
	int64_t deadline_ms;
	int stop;                /* VELD_SANDBOX_STOP_*, sticky until reset */
	char stop_where[160];    /* "name:line" where the stop was first seen */
	char err_where[160];     /* "name:line" of the last error() with a non-string */
	/* the allocator's view of refusals */
	const void *refused_ptr;
	size_t refused_size;
	int refusals;
	char chunk[96];          /* name of the last chunk loaded, for messages */
	veld_err err;
};

/* ---- small helpers -------------------------------------------------------- */

static veld_sandbox *sb_of(lua_State *L)
{
	void *ud = NULL;
	lua_getallocf(L, &ud);
	return ud;
}

int64_t veld_sandbox__now(const veld_os *os)
{
	struct timespec ts;
	/* The OS table's clock is the wall clock (stamps, "today"), which may
	** jump; a deadline wants a clock that only moves forward.  A table a
	** caller built (a test's clock, fault injection) is asked as it is. */
	if (os == veld_os_default() && clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return os->xClockMs(os->ctx);
}

void veld_sandbox__today(char *out, size_t n, const veld_os *os)
{
	time_t t = (time_t)(os->xClockMs(os->ctx) / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d", &tm))
		snprintf(out, n, "1970-01-01");
}

static int64_t sb_now(const veld_sandbox *sb)
{
	return veld_sandbox__now(sb->lim.os);
}

static const char *stop_text(int stop)
{
	switch (stop) {
	case VELD_SANDBOX_STOP_INSTRUCTIONS: return "instruction limit exceeded";
	case VELD_SANDBOX_STOP_TIME:         return "time limit exceeded";
	case VELD_SANDBOX_STOP_MEMORY:       return "memory limit exceeded";
	case VELD_SANDBOX_STOP_CLOSING:      return "script state closed";
	default:                             return "stopped";
	}
}

/* "name:line" of the function at `level` (1 = the caller of the running C
** function); "" when there is no Lua function there. */
static void where_of(char *buf, size_t n, lua_State *L, int level)
{
	lua_Debug ar;
	buf[0] = '\0';
	if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
		snprintf(buf, n, "%s:%d", ar.short_src, ar.currentline);
}

/* ---- the allocator ------------------------------------------------------------ */

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	veld_sandbox *sb = ud;
	size_t old = ptr ? osize : 0;
	void *p;
	if (nsize == 0) {
		free(ptr);
		sb->used -= old;
		return NULL;
	}
	/* Lua assumes shrinking never fails. */
	if (nsize > old && nsize - old > sb->lim.memory - sb->used) {
		/* Sticks when it can never fit, or when Lua's emergency collection
		** did not make room (the same request comes back at once). */
		if (nsize > sb->lim.memory || (sb->refused_ptr == ptr && sb->refused_size == nsize))
			sb->stop = sb->stop ? sb->stop : VELD_SANDBOX_STOP_MEMORY;
		if (++sb->refusals >= REFUSALS_MAX && !sb->stop)
			sb->stop = VELD_SANDBOX_STOP_MEMORY;
		sb->refused_ptr = ptr;
		sb->refused_size = nsize;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (!p) {
		if (nsize <= old)
			return ptr; /* keep the larger block rather than fail a shrink */
		return NULL;
	}
	sb->used = sb->used - old + nsize;
	sb->refused_ptr = NULL;
	sb->refused_size = 0;
	return p;
}

/* ---- budget, hook and stops ---------------------------------------------------- */

static void hook(lua_State *L, lua_Debug *ar);

/* Make the stop stick on thread L and raise it. */
static int raise_stop(lua_State *L, veld_sandbox *sb)
{
	lua_sethook(L, hook, LUA_MASKCOUNT, 1);
	if (!sb->stop_where[0])
		where_of(sb->stop_where, sizeof sb->stop_where, L, 1);
	return luaL_error(L, "%s", stop_text(sb->stop));
}

static void hook(lua_State *L, lua_Debug *ar)
{
	veld_sandbox *sb = sb_of(L);
	lua_Debug deep;
	char at[160];
	if (!sb->stop) {
		sb->spent += (uint64_t)lua_gethookcount(L);
		if (sb->spent > sb->lim.instructions)
			sb->stop = VELD_SANDBOX_STOP_INSTRUCTIONS;
		else if (sb_now(sb) > sb->deadline_ms)
			sb->stop = VELD_SANDBOX_STOP_TIME;
		else if (!lua_getstack(L, (int)sb->lim.depth, &deep))
			return; /* the usual case; the walk is at most `depth` frames */
	}
	/* A hook has no frame of its own: `ar` is the running function. */
	at[0] = '\0';
	if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
		snprintf(at, sizeof at, "%s:%d", ar->short_src, ar->currentline);
	if (sb->stop) {
		lua_sethook(L, hook, LUA_MASKCOUNT, 1);
		if (!sb->stop_where[0])
			memcpy(sb->stop_where, at, sizeof at);
		lua_pushfstring(L, "%s: %s", at, stop_text(sb->stop));
	} else {
		lua_pushfstring(L, "%s: recursion too deep (more than %d levels)", at,
		                (int)sb->lim.depth);
	}
	lua_error(L);
}

/* Charge `units` of C work to the budget (and check the clock) before a
** library function does it; raises the sticky stop when it does not fit. */
void veld_sandbox__charge(struct lua_State *L, double units)
{
	veld_sandbox *sb = sb_of(L);
	if (!sb->stop) {
		double left = (double)sb->lim.instructions - (double)sb->spent;
		if (!(units <= left))
			sb->stop = VELD_SANDBOX_STOP_INSTRUCTIONS;
		else if (sb_now(sb) > sb->deadline_ms)
			sb->stop = VELD_SANDBOX_STOP_TIME;
		else
			sb->spent += (uint64_t)units;
	}
	if (sb->stop)
		raise_stop(L, sb);
}

/* A thread made by coroutine.create/wrap gets the hook every `count`
** instructions, or at once when the state is stopped already. */
void veld_sandbox__hook_thread(struct lua_State *co, int count)
{
	veld_sandbox *sb = sb_of(co);
	lua_sethook(co, hook, LUA_MASKCOUNT, sb->stop ? 1 : count);
}

/* ---- for the library functions (sandbox_lib.c) -------------------------------- */

const veld_sandbox_limits *veld_sandbox__limits(struct lua_State *L)
{
	return &sb_of(L)->lim;
}

/* error() with a non-string value: remember where it was raised, for the
** message take_error makes of it. */
void veld_sandbox__error_at(struct lua_State *L, int level)
{
	veld_sandbox *sb = sb_of(L);
	where_of(sb->err_where, sizeof sb->err_where, L, level);
}

static int is_name_char(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1 if `s` names _ENV as a word (see the header comment). */
int veld_sandbox__names_env(const char *s, size_t n)
{
	size_t i;
	for (i = 0; i + 4 <= n; i++) {
		if (memcmp(s + i, "_ENV", 4) != 0)
			continue;
		if (i > 0 && is_name_char(s[i - 1]))
			continue;
		if (i + 4 < n && is_name_char(s[i + 4]))
			continue;
		return 1;
	}
	return 0;
}

/* ---- opening and closing a state ----------------------------------------------- */

/* A fresh state's contents, in the protected call veld_sandbox__reset makes:
** the allowlisted libraries (sandbox_lib.c), then the JSON array marker. */
static int setup(lua_State *L)
{
	veld_sandbox *sb = lua_touserdata(L, 1);
	veld_sandbox__open_libs(L, sb->lim.flags);
	veld_sandbox__open_json(L);
	return 0;
}

static void close_state(veld_sandbox *sb)
{
	if (!sb->L)
		return;
	/* Anything a script left pending (<close> handlers) dies at once. */
	if (!sb->stop)
		sb->stop = VELD_SANDBOX_STOP_CLOSING;
	lua_sethook(sb->L, hook, LUA_MASKCOUNT, 1);
	lua_close(sb->L);
	sb->L = NULL;
}

/* ---- the handle -------------------------------------------------------------------- */

int veld_sandbox__new(veld_sandbox **out, const veld_sandbox_limits *limits)
{
	veld_sandbox *sb = calloc(1, sizeof *sb);
	*out = NULL;
	if (!sb)
		return VELD_ERROR;
	if (limits)
		sb->lim = *limits;
	if (!sb->lim.memory)
		sb->lim.memory = VELD_SANDBOX_MEMORY;
	if (!sb->lim.instructions)
		sb->lim.instructions = VELD_SANDBOX_INSTRUCTIONS;
	if (!sb->lim.wall_ms)
		sb->lim.wall_ms = VELD_SANDBOX_WALL_MS;
	if (!sb->lim.depth)
		sb->lim.depth = VELD_SANDBOX_DEPTH;
	if (!sb->lim.os)
		sb->lim.os = veld_os_default();
	*out = sb;
	return VELD_OK;
}

void veld_sandbox__free(veld_sandbox *sb)
{
	if (!sb)
		return;
	close_state(sb);
	free(sb);
}

const char *veld_sandbox__errmsg(const veld_sandbox *sb)
{
	return sb ? sb->err.msg : "out of memory";
}

int veld_sandbox__stop_reason(const veld_sandbox *sb)
{
	return sb->stop == VELD_SANDBOX_STOP_CLOSING ? VELD_SANDBOX_STOP_NONE : sb->stop;
}

size_t veld_sandbox__memory(const veld_sandbox *sb)
{
	return sb->used;
}

struct lua_State *veld_sandbox__state(veld_sandbox *sb)
{
	return sb->L;
}

int veld_sandbox__spent(const veld_sandbox *sb)
{
	return sb->stop != VELD_SANDBOX_STOP_NONE;
}

static void begin_call(veld_sandbox *sb)
{
	if (sb->depth++ > 0)
		return;
	sb->spent = 0;
	sb->deadline_ms = sb_now(sb) + sb->lim.wall_ms;
	sb->stop_where[0] = '\0';
	sb->err_where[0] = '\0';
	sb->refusals = 0;
	sb->refused_ptr = NULL;
	sb->refused_size = 0;
	veld_err__clear(&sb->err);
}

static int tostring_protected(lua_State *L)
{
	luaL_tolstring(L, 1, NULL);
	return 1;
}

/* Turn the error value at the top of the stack into the handle's message and
** pop it.  Returns VELD_EINVALID (the script failed) or VELD_ERROR. */
static int take_error(veld_sandbox *sb, int status)
{
	lua_State *L = sb->L;
	const char *where = sb->err_where[0] ? sb->err_where : sb->chunk;
	int rc = VELD_EINVALID;

	/* A memory error at the top after the cap refused: the limit, not the host. */
	if (status == LUA_ERRMEM && !sb->stop && sb->refusals > 0)
		sb->stop = VELD_SANDBOX_STOP_MEMORY;
	if (status == LUA_ERRMEM && !sb->stop) {
		rc = VELD_ERROR;
		veld_err__set(&sb->err, rc, "%s: out of memory", sb->chunk);
	} else if (!sb->stop) {
		size_t nchunk = strlen(sb->chunk);
		const char *msg;
		switch (lua_type(L, -1)) {
		case LUA_TSTRING:
			/* Errors raised in C (e.g. "C stack overflow") carry no position. */
			msg = lua_tostring(L, -1);
			if (strncmp(msg, sb->chunk, nchunk) == 0 && msg[nchunk] == ':')
				veld_err__set(&sb->err, rc, "%s", msg);
			else
				veld_err__set(&sb->err, rc, "%s: %s", sb->chunk, msg);
			break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, -1))
				veld_err__set(&sb->err, rc, "%s: %lld", where,
				              (long long)lua_tointeger(L, -1));
			else
				veld_err__set(&sb->err, rc, "%s: %.14g", where, (double)lua_tonumber(L, -1));
			break;
		case LUA_TNIL:
			veld_err__set(&sb->err, rc, "%s: error raised with a nil value", where);
			break;
		default:
			if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL) {
				lua_pop(L, 1);
				lua_pushcfunction(L, tostring_protected);
				lua_pushvalue(L, -2);
				if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
					veld_err__set(&sb->err, rc, "%s: %s", where, lua_tostring(L, -1));
				else
					veld_err__set(&sb->err, rc,
					              "%s: error raised with a %s value (its __tostring failed)",
					              where, luaL_typename(L, -2));
				lua_pop(L, 1);
			} else {
				veld_err__set(&sb->err, rc, "%s: error raised with a %s value", where,
				              luaL_typename(L, -1));
			}
			break;
		}
	}
	/* A limit wins over whatever the script raised (also while converting). */
	if (sb->stop && sb->stop != VELD_SANDBOX_STOP_CLOSING) {
		const char *at = sb->stop_where[0] ? sb->stop_where : sb->chunk;
		if (sb->stop == VELD_SANDBOX_STOP_MEMORY)
			veld_err__set(&sb->err, rc, "%s: %s (%zu bytes)", at, stop_text(sb->stop),
			              sb->lim.memory);
		else if (sb->stop == VELD_SANDBOX_STOP_INSTRUCTIONS)
			veld_err__set(&sb->err, rc, "%s: %s (%llu)", at, stop_text(sb->stop),
			              (unsigned long long)sb->lim.instructions);
		else
			veld_err__set(&sb->err, rc, "%s: %s (%u ms)", at, stop_text(sb->stop),
			              (unsigned)sb->lim.wall_ms);
	}
	lua_pop(L, 1);
	return rc;
}

static int end_call(veld_sandbox *sb, int status)
{
	int rc = VELD_OK;
	if (status != LUA_OK)
		rc = take_error(sb, status);
	else if (sb->stop && sb->depth == 1) {
		/* The script swallowed a stop and returned: the call still fails. */
		lua_pushnil(sb->L);
		rc = take_error(sb, LUA_ERRRUN);
	}
	sb->depth--;
	return rc;
}

int veld_sandbox__call(veld_sandbox *sb, int nargs, int nresults)
{
	int status;
	if (!sb->L || sb->stop)
		return veld_err__set(&sb->err, VELD_ERROR, "%s: script state is stopped; reset it",
		                     sb->chunk);
	begin_call(sb);
	lua_sethook(sb->L, hook, LUA_MASKCOUNT, HOOK_COUNT);
	status = lua_pcall(sb->L, nargs, nresults, 0);
	return end_call(sb, status);
}

int veld_sandbox__ccall(veld_sandbox *sb, int (*fn)(struct lua_State *), void *ud)
{
	int status;
	if (!sb->L || sb->stop)
		return veld_err__set(&sb->err, VELD_ERROR, "%s: script state is stopped; reset it",
		                     sb->chunk);
	if (!lua_checkstack(sb->L, 4))
		return veld_err__set(&sb->err, VELD_ERROR, "out of memory");
	begin_call(sb);
	lua_sethook(sb->L, hook, LUA_MASKCOUNT, HOOK_COUNT);
	lua_pushcfunction(sb->L, fn);
	lua_pushlightuserdata(sb->L, ud);
	status = lua_pcall(sb->L, 1, 0, 0);
	return end_call(sb, status);
}

int veld_sandbox__reset(veld_sandbox *sb)
{
	int rc;
	close_state(sb);
	sb->stop = VELD_SANDBOX_STOP_NONE;
	sb->used = 0;
	snprintf(sb->chunk, sizeof sb->chunk, "script");
	veld_err__clear(&sb->err);
	sb->L = lua_newstate(sb_alloc, sb);
	if (!sb->L)
		return veld_err__set(&sb->err, VELD_ERROR, "out of memory");
	lua_sethook(sb->L, hook, LUA_MASKCOUNT, HOOK_COUNT);
	rc = veld_sandbox__ccall(sb, setup, sb);
	if (rc != VELD_OK) {
		close_state(sb);
		return veld_err__set(&sb->err, VELD_ERROR, "cannot open a script state: %s",
		                     sb->err.msg);
	}
	return VELD_OK;
}

int veld_sandbox__load(veld_sandbox *sb, const char *name, const char *src, size_t len)
{
	char chunkname[sizeof sb->chunk + 1];
	int status;
	if (!sb->L || sb->stop)
		return veld_err__set(&sb->err, VELD_ERROR, "script state is stopped; reset it");
	snprintf(sb->chunk, sizeof sb->chunk, "%s", name);
	snprintf(chunkname, sizeof chunkname, "=%s", name);
	veld_err__clear(&sb->err);
	if (veld_sandbox__names_env(src, len))
		return veld_err__set(&sb->err, VELD_EINVALID,
		                     "%s: the name _ENV is not available in scripts", name);
	if (!lua_checkstack(sb->L, 2))
		return veld_err__set(&sb->err, VELD_ERROR, "out of memory");
	status = luaL_loadbufferx(sb->L, src, len, chunkname, "t");
	if (status != LUA_OK) {
		sb->depth++;
		return end_call(sb, status);
	}
	return VELD_OK;
}

/* ---- script files ------------------------------------------------------------ */

int veld_sandbox__read_file(char **out, size_t *len, const veld_os *os, const char *path, int64_t max,
                            const char *what, veld_err *err)
{
	int64_t size = 0, got;
	char *buf = NULL;
	int fd, rc = VELD_OK;
	*out = NULL;
	*len = 0;
	if (!os)
		os = veld_os_default();
	fd = os->xOpen(os->ctx, path, VELD_OS_READ, 0);
	if (fd < 0)
		return veld_err__set(err, VELD_ENOTFOUND, "%s %s file %s: %s", fd == -ENOENT ? "no" : "cannot open",
		                     what, path, strerror(-fd));
	if (os->xFileSize(os->ctx, fd, &size) != 0 || size < 0 || size > max)
		rc = veld_err__set(err, VELD_EINVALID, "%s file %s is unreadable or over %lld bytes", what, path,
		                   (long long)max);
	else if (!(buf = malloc((size_t)size + 1)))
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
	else if ((got = os->xPread(os->ctx, fd, buf, (size_t)size, 0)) != size)
		rc = veld_err__set(err, VELD_ERROR, "cannot read %s file %s", what, path);
	os->xClose(os->ctx, fd);
	if (rc != VELD_OK) {
		free(buf);
		return rc;
	}
	buf[size] = '\0';
	*out = buf;
	*len = (size_t)size;
	return VELD_OK;
}

/* ---- one script, one state ------------------------------------------------------- */

typedef struct run_ctx {
	json_t *result;
} run_ctx;

static int run_result(lua_State *L)
{
	run_ctx *rc = lua_touserdata(L, 1);
	rc->result = veld_sandbox__to_json(L, 2, VELD_FORM_RESULT_MAX);
	return 0;
}

int veld_sandbox__run(char **result_json, veld_sandbox *sb, const char *name,
                      const char *src, size_t len)
{
	run_ctx ctx = {NULL};
	int rc;
	*result_json = NULL;
	rc = veld_sandbox__reset(sb);
	if (rc != VELD_OK)
		goto done;
	rc = veld_sandbox__load(sb, name, src, len);
	if (rc != VELD_OK)
		goto done;
	rc = veld_sandbox__call(sb, 0, 1);
	if (rc != VELD_OK)
		goto done;
	/* The result is converted in a call of its own (it may be large). */
	lua_pushcfunction(sb->L, run_result);
	lua_insert(sb->L, -2);
	lua_pushlightuserdata(sb->L, &ctx);
	lua_insert(sb->L, -2);
	begin_call(sb);
	rc = end_call(sb, lua_pcall(sb->L, 2, 0, 0));
	if (rc != VELD_OK)
		goto done;
	*result_json = json_dumps(ctx.result, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!*result_json)
		rc = veld_err__set(&sb->err, VELD_ERROR, "out of memory");
done:
	json_decref(ctx.result);
	close_state(sb);
	return rc;
}

/*
** sandbox.c — Lua 5.4 states for guest scripts.
**
** A script (a form, a report) is a guest: it may compute, and nothing else.
** This file owns the Lua states scripts run in and every limit on them; the
** engines (form.c) only ever reach Lua through the calls declared in
** scripts.h, which all run protected (lua_pcall) and budgeted.
**
** What a state holds.  base, string, table, math and utf8 (docs/design.md), with:
**   - no dofile, loadfile, print, warn, xpcall, require/package, io, os,
**     debug; no string.dump;
**   - `load` for text chunks only (mode forced to "t": "\27Lua" bytecode is
**     refused by Lua's own loader), string chunks only;
**   - `collectgarbage` reduced to "count": a full collection is C work the
**     count hook cannot see (a loop of them is a CPU amplifier), and the mode
**     switches reach the generational collector, where 5.4.x had bugs;
**   - `setmetatable` refuses a metatable with a __gc field: finalizers run
**     with hooks switched off (lgc.c GCTM sets allowhook = 0), so a looping
**     __gc could never be stopped.  Without __gc at setmetatable time Lua
**     never marks the object, so no script code runs as a finalizer, ever;
**   - `error` records where a non-string error value was raised, so even
**     `error({})` is reported as "name:line: ...";
**   - the string metatable is replaced by {__index = a private copy of the
**     string functions, __metatable = false}: getmetatable("") is false and
**     `string.x = f` changes the global table only, never string methods;
**   - `coroutine` only with VELD_SANDBOX_COROUTINES (create/wrap set the
**     hook on the new thread; close is nested at most CLOSE_DEPTH deep, as
**     5.4.4 overflows the C stack on deep coroutine.close nesting).
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
**   time          the hook and every charge check a wall-clock deadline;
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
** coroutine.close" (close depth counter); "wrong code when _ENV is <const>"
** (sources and `load` chunks naming _ENV are refused).
**
** Errors come back as "name:line: message".  Every call into Lua goes
** through lua_pcall; host code that allocates in a state runs inside
** veld_sandbox__ccall, so Lua's panic (abort) is never reached.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_COUNT    1000 /* instructions between two hook calls */
#define CO_HOOK_COUNT 100  /* the same on coroutines, charged up front */
#define CLOSE_DEPTH   8    /* nested coroutine.close calls */
#define JSON_DEPTH    64   /* nesting of tables converted to JSON */
#define REFUSALS_MAX  8    /* refused allocations before the stop sticks anyway */
#define BYTES_PER_UNIT 4.0 /* bytes a C function may copy per budget unit (a fresh
                           ** page costs more than a VM instruction) */

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
	int close_depth;
	char chunk[96];          /* name of the last chunk loaded, for messages */
	veld_err err;
};

/* Registry keys (addresses of these objects are unique per process, which
** is all Lua asks of a light userdata key; no state is kept in them). */
static const char ARRAY_MT_KEY = 'a';

/* ---- small helpers -------------------------------------------------------- */

static veld_sandbox *sb_of(lua_State *L)
{
	void *ud = NULL;
	lua_getallocf(L, &ud);
	return ud;
}

static int64_t sb_now(const veld_sandbox *sb)
{
	return sb->lim.os->xClockMs(sb->lim.os->ctx);
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
static void charge(lua_State *L, double units)
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

/* ---- guarded library functions ---------------------------------------------- */

/* Call the original function (upvalue 1) with all arguments; return all. */
static int call_original(lua_State *L)
{
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

static double string_bytes(lua_State *L)
{
	double total = 0;
	int i, n = lua_gettop(L);
	for (i = 1; i <= n; i++)
		if (lua_type(L, i) == LUA_TSTRING)
			total += (double)lua_rawlen(L, i);
	return total;
}

/* Functions linear in the bytes of their string arguments. */
static int g_linear(lua_State *L)
{
	charge(L, 1 + string_bytes(L) / BYTES_PER_UNIT);
	return call_original(L);
}

/* b^e for small e (no libm); saturates to a huge value. */
static double power(double b, int e)
{
	double r = 1;
	while (e-- > 0 && r < 1e300)
		r *= b;
	return r;
}

/* ceil(log2(n)) for n >= 1 (no libm). */
static double log2_up(double n)
{
	double r = 0;
	while (n > 1 && r < 1100) {
		n /= 2;
		r++;
	}
	return r;
}

/*
** Worst-case steps of Lua's backtracking matcher for pattern p on a subject
** of ls bytes.  Each single-character item with a '*', '+' or '-' repetition
** can try every position for every choice made before it, and %b and back
** references scan the subject: so (ls+1)^k steps for k such items, times
** (ls+1) start positions unless anchored, times 2 per '?'.  A bound, not an
** estimate: patterns scripts need (anchored, few repetitions, short
** subjects) fit the budget; "^.-.-.-b" over 100 kB does not.
*/
static double pattern_cost(const char *p, size_t lp, size_t ls, int can_anchor)
{
	size_t i = 0;
	int k = 0, opt = 0;
	double n = (double)ls + 1;
	if (can_anchor && lp > 0 && p[0] == '^')
		i = 1;
	else
		k = 1;
	while (i < lp) {
		char c = p[i];
		int single = 1;
		if (c == '(' || c == ')') {
			i++;
			continue;
		}
		if (c == '%' && i + 1 < lp) {
			char d = p[i + 1];
			if (d == 'b') {
				k++;
				i += 4;
				continue;
			}
			if (d == 'f') {
				i += 2;
				if (i < lp && p[i] == '[') {
					i++;
					if (i < lp && p[i] == '^')
						i++;
					if (i < lp && p[i] == ']')
						i++;
					while (i < lp && p[i] != ']')
						i += (p[i] == '%') ? 2 : 1;
					i++;
				}
				continue;
			}
			if (d >= '0' && d <= '9') {
				k++;
				i += 2;
				continue;
			}
			i += 2;
		} else if (c == '[') {
			i++;
			if (i < lp && p[i] == '^')
				i++;
			if (i < lp && p[i] == ']')
				i++;
			while (i < lp && p[i] != ']')
				i += (p[i] == '%') ? 2 : 1;
			i++;
		} else {
			i++;
		}
		if (single && i < lp) {
			if (p[i] == '*' || p[i] == '+' || p[i] == '-') {
				k++;
				i++;
			} else if (p[i] == '?') {
				opt++;
				i++;
			}
		}
	}
	return power(n, k) * power(2, opt) * (1 + (double)lp / 16);
}

static int is_plain(const char *p, size_t lp)
{
	return strpbrk(p, "^$*+?.([%-") == NULL && strlen(p) == lp;
}

/* string.find / string.match (anchored when the pattern starts with '^'). */
static int g_find(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	double cost;
	(void)s;
	if (lua_toboolean(L, 4) || is_plain(p, lp))
		cost = 1 + (double)ls * (1 + (double)lp / 16);
	else
		cost = pattern_cost(p, lp, ls, 1);
	charge(L, cost);
	return call_original(L);
}

/* string.gmatch: every position; string.gsub: every position unless '^'. */
static int g_gmatch(lua_State *L)
{
	size_t ls, lp;
	luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	charge(L, pattern_cost(p, lp, ls, 0) + (double)ls);
	return call_original(L);
}

static int g_gsub(lua_State *L)
{
	size_t ls, lp;
	luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	double cost = pattern_cost(p, lp, ls, 1) + (double)ls;
	if (!(lp > 0 && p[0] == '^'))
		cost *= ((double)ls + 1);
	if (lua_type(L, 3) == LUA_TSTRING)
		cost += (double)lua_rawlen(L, 3) * ((double)ls + 1) / 16;
	charge(L, cost);
	return call_original(L);
}

/* string.rep: the allocator caps the size; the copy is charged.  Lua's
** own loop runs n times whatever the pieces weigh, so empty pieces (an
** empty string and separator) are answered here: n copies of nothing are
** "", and the loop that would make them is neither charged nor run. */
static int g_rep(lua_State *L)
{
	size_t l, lsep = 0;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	if (!lua_isnoneornil(L, 3))
		luaL_checklstring(L, 3, &lsep);
	if (l + lsep == 0) {
		charge(L, 1);
		lua_pushliteral(L, "");
		return 1;
	}
	if (n > 0) {
		double bytes = (double)n * (double)(l + lsep);
		veld_sandbox *sb = sb_of(L);
		if (bytes > (double)sb->lim.memory)
			bytes = (double)sb->lim.memory; /* the allocator refuses the rest */
		charge(L, 1 + bytes / BYTES_PER_UNIT);
	}
	return call_original(L);
}

/* Length for the table functions, taken once (a __len may lie the second
** time it is asked, so the originals are always given explicit bounds). */
static lua_Integer table_len(lua_State *L, int idx)
{
	luaL_checktype(L, idx, LUA_TTABLE);
	return luaL_len(L, idx);
}

static double span(lua_Integer i, lua_Integer j)
{
	return (j >= i) ? (double)j - (double)i + 1 : 0;
}

/* table.concat(t, sep, i, j) and table.unpack(t, i, j): explicit bounds. */
static int g_concat(lua_State *L)
{
	size_t lsep = 0;
	luaL_optlstring(L, 2, "", &lsep);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	lua_Integer j = lua_isnoneornil(L, 4) ? table_len(L, 1) : luaL_checkinteger(L, 4);
	charge(L, 1 + span(i, j) * (1 + (double)lsep / 16));
	lua_settop(L, 4);
	lua_pushinteger(L, i);
	lua_replace(L, 3);
	lua_pushinteger(L, j);
	lua_replace(L, 4);
	if (lua_isnil(L, 2)) {
		lua_pushliteral(L, "");
		lua_replace(L, 2);
	}
	return call_original(L);
}

static int g_unpack(lua_State *L)
{
	lua_Integer i = luaL_optinteger(L, 2, 1);
	lua_Integer j = lua_isnoneornil(L, 3) ? table_len(L, 1) : luaL_checkinteger(L, 3);
	charge(L, 1 + span(i, j));
	lua_settop(L, 1);
	lua_pushinteger(L, i);
	lua_pushinteger(L, j);
	return call_original(L);
}

static int g_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	charge(L, 1 + span(f, e));
	return call_original(L);
}

/* table.sort: a __len would be asked again by the original, so refuse it;
** the raw length is bounded by what the table really holds. */
static int g_sort(lua_State *L)
{
	double n;
	luaL_checktype(L, 1, LUA_TTABLE);
	if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
		return luaL_error(L, "table.sort: tables with a __len metamethod are not supported");
	n = (double)lua_rawlen(L, 1);
	charge(L, 1 + n * (1 + log2_up(n + 1)));
	return call_original(L);
}

/* table.insert and table.remove, as in ltablib.c, with the length taken once
** and the shifting charged. */
static int g_insert(lua_State *L)
{
	lua_Integer pos, e, i;
	luaL_checktype(L, 1, LUA_TTABLE);
	e = luaL_len(L, 1);
	if (e == LUA_MAXINTEGER)
		return luaL_error(L, "wrong number of arguments to 'insert'");
	e = e + 1;
	switch (lua_gettop(L)) {
	case 2:
		pos = e;
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
		charge(L, 1 + span(pos, e));
		for (i = e; i > pos; i--) {
			lua_geti(L, 1, i - 1);
			lua_seti(L, 1, i);
		}
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos);
	return 0;
}

static int g_remove(lua_State *L)
{
	lua_Integer size, pos;
	luaL_checktype(L, 1, LUA_TTABLE);
	size = luaL_len(L, 1);
	pos = luaL_optinteger(L, 2, size);
	if (pos != size)
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
	charge(L, 1 + span(pos, size));
	lua_geti(L, 1, pos);
	for (; pos < size; pos++) {
		lua_geti(L, 1, pos + 1);
		lua_seti(L, 1, pos);
	}
	lua_pushnil(L);
	lua_seti(L, 1, pos);
	return 1;
}

/* ---- replaced base functions ----------------------------------------------- */

static int is_name_char(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1 if `s` names _ENV as a word (see the header comment). */
static int names_env(const char *s, size_t n)
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

static int b_load(lua_State *L)
{
	size_t len;
	const char *s;
	const char *name;
	int env = !lua_isnone(L, 4);
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only a string chunk can be loaded");
	s = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, "=(load)");
	charge(L, 1 + (double)len / 4);
	if (names_env(s, len)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "load: the name _ENV is not available in scripts");
		return 2;
	}
	if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
		luaL_pushfail(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env) {
		lua_pushvalue(L, 4);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
	}
	return 1;
}

static int b_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage: only \"count\" is available in scripts");
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) +
	                      (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024);
	return 1;
}

static int b_setmetatable(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not available in scripts");
		lua_pop(L, 1);
	}
	return call_original(L);
}

/* error(v [, level]) as luaB_error, remembering where a non-string went up. */
static int b_error(lua_State *L)
{
	int level = (int)luaL_optinteger(L, 2, 1);
	lua_settop(L, 1);
	if (lua_type(L, 1) == LUA_TSTRING && level > 0) {
		luaL_where(L, level);
		lua_pushvalue(L, 1);
		lua_concat(L, 2);
	} else if (lua_type(L, 1) != LUA_TSTRING) {
		veld_sandbox *sb = sb_of(L);
		where_of(sb->err_where, sizeof sb->err_where, L, level > 0 ? level : 1);
	}
	return lua_error(L);
}

/*
** coroutine.create / wrap: set the hook on the new thread explicitly.  A
** thread's count starts afresh, and what a thread ran since its last hook
** call is never seen when it dies: so coroutines get a small count and pay
** it up front, and work spread over many short coroutines is still counted.
*/
static int c_create(lua_State *L)
{
	veld_sandbox *sb = sb_of(L);
	int n;
	charge(L, CO_HOOK_COUNT);
	n = call_original(L);
	lua_State *co = NULL;
	if (n >= 1 && lua_type(L, -n) == LUA_TTHREAD)
		co = lua_tothread(L, -n);
	else if (n >= 1 && lua_type(L, -n) == LUA_TFUNCTION && lua_getupvalue(L, -n, 1)) {
		if (lua_type(L, -1) == LUA_TTHREAD)
			co = lua_tothread(L, -1);
		lua_pop(L, 1);
	}
	if (co)
		lua_sethook(co, hook, LUA_MASKCOUNT, sb->stop ? 1 : CO_HOOK_COUNT);
	return n;
}

static int c_close(lua_State *L)
{
	veld_sandbox *sb = sb_of(L);
	int n, status;
	if (sb->close_depth >= CLOSE_DEPTH)
		return luaL_error(L, "coroutine.close: nested too deep");
	n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	sb->close_depth++;
	status = lua_pcall(L, n, LUA_MULTRET, 0);
	sb->close_depth--;
	if (status != LUA_OK)
		return lua_error(L);
	return lua_gettop(L);
}

/* ---- opening a state ------------------------------------------------------------ */

typedef struct guard {
	const char *name;
	lua_CFunction fn;
} guard;

static const guard STRING_GUARDS[] = {
	{"byte", g_linear},    {"char", g_linear},     {"find", g_find},
	{"format", g_linear},  {"gmatch", g_gmatch},   {"gsub", g_gsub},
	{"len", g_linear},     {"lower", g_linear},    {"match", g_find},
	{"rep", g_rep},        {"reverse", g_linear},  {"sub", g_linear},
	{"upper", g_linear},   {"pack", g_linear},     {"packsize", g_linear},
	{"unpack", g_linear},  {NULL, NULL}};

static const guard TABLE_GUARDS[] = {
	{"concat", g_concat}, {"unpack", g_unpack}, {"move", g_move},
	{"sort", g_sort},     {NULL, NULL}};

static const guard UTF8_GUARDS[] = {
	{"char", g_linear}, {"codepoint", g_linear}, {"len", g_linear},
	{"offset", g_linear}, {NULL, NULL}};

/*
** Replace lib[name] (lib at the top) by guard(original).  The originals are
** also registered as the loaded module `lib` (the registry's _LOADED, which
** no script can reach), so Lua's argument errors raised inside them name the
** function ("bad argument #2 to 'string.format'") instead of '?'.
*/
static void wrap_all(lua_State *L, const char *lib, const guard *g)
{
	lua_newtable(L); /* the originals */
	for (; g->name; g++) {
		if (lua_getfield(L, -2, g->name) != LUA_TFUNCTION) {
			lua_pop(L, 1);
			continue;
		}
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, g->name);
		lua_pushcclosure(L, g->fn, 1);
		lua_setfield(L, -3, g->name);
	}
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_insert(L, -2);
	lua_setfield(L, -2, lib);
	lua_pop(L, 1);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
	luaL_requiref(L, name, open, 1);
	lua_pop(L, 1);
}

static int setup(lua_State *L)
{
	veld_sandbox *sb = lua_touserdata(L, 1);
	static const char *const drop[] = {"dofile", "loadfile", "print", "warn", "xpcall",
	                                   "require", NULL};
	const char *const *d;

	open_lib(L, LUA_GNAME, luaopen_base);
	open_lib(L, LUA_STRLIBNAME, luaopen_string);
	open_lib(L, LUA_TABLIBNAME, luaopen_table);
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
	if (sb->lim.flags & VELD_SANDBOX_COROUTINES)
		open_lib(L, LUA_COLIBNAME, luaopen_coroutine);

	lua_pushglobaltable(L);
	for (d = drop; *d; d++) {
		lua_pushnil(L);
		lua_setfield(L, -2, *d);
	}
	lua_pushcfunction(L, b_load);
	lua_setfield(L, -2, "load");
	lua_pushcfunction(L, b_collectgarbage);
	lua_setfield(L, -2, "collectgarbage");
	lua_pushcfunction(L, b_error);
	lua_setfield(L, -2, "error");
	lua_getfield(L, -1, "setmetatable");
	lua_pushcclosure(L, b_setmetatable, 1);
	lua_setfield(L, -2, "setmetatable");

	/* string: guarded functions, no dump; methods from a private copy. */
	lua_getfield(L, -1, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	wrap_all(L, LUA_STRLIBNAME, STRING_GUARDS);
	lua_createtable(L, 0, 12);           /* the new string metatable: */
	lua_pushliteral(L, "");              /* the arithmetic metamethods ("10" + 1) */
	if (lua_getmetatable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, -6);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 20);           /* methods: a copy of string */
	lua_pushnil(L);
	while (lua_next(L, -4)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -4);
	}
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushliteral(L, "");
	lua_insert(L, -2);
	lua_setmetatable(L, -2);             /* shared by every string */
	lua_pop(L, 2);                       /* "" and string */

	lua_getfield(L, -1, LUA_TABLIBNAME);
	wrap_all(L, LUA_TABLIBNAME, TABLE_GUARDS);
	lua_pushcfunction(L, g_insert);
	lua_setfield(L, -2, "insert");
	lua_pushcfunction(L, g_remove);
	lua_setfield(L, -2, "remove");
	lua_pop(L, 1);

	lua_getfield(L, -1, LUA_UTF8LIBNAME);
	wrap_all(L, LUA_UTF8LIBNAME, UTF8_GUARDS);
	lua_pop(L, 1);

	if (sb->lim.flags & VELD_SANDBOX_COROUTINES) {
		lua_getfield(L, -1, LUA_COLIBNAME);
		lua_getfield(L, -1, "create");
		lua_pushcclosure(L, c_create, 1);
		lua_setfield(L, -2, "create");
		lua_getfield(L, -1, "wrap");
		lua_pushcclosure(L, c_create, 1);
		lua_setfield(L, -2, "wrap");
		lua_getfield(L, -1, "close");
		lua_pushcclosure(L, c_close, 1);
		lua_setfield(L, -2, "close");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);

	/* The metatable that marks a table as a JSON array. */
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
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
	sb->close_depth = 0;
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
	if (names_env(src, len))
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

/* ---- JSON <-> Lua ------------------------------------------------------------------ */

static void push_json(lua_State *L, const json_t *v, int depth)
{
	size_t i;
	const char *key;
	json_t *item;
	if (depth > JSON_DEPTH)
		luaL_error(L, "JSON nested too deep");
	luaL_checkstack(L, 4, "JSON nested too deep");
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_foreach((json_t *)v, key, item) {
			push_json(L, item, depth + 1);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach(v, i, item) {
			push_json(L, item, depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		veld_sandbox__mark_array(L, -1);
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, (lua_Number)json_real_value(v));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	default:
		lua_pushnil(L);
		break;
	}
}

void veld_sandbox__push_json_at(struct lua_State *L, const json_t *v, int depth)
{
	if (!v)
		lua_pushnil(L);
	else
		push_json(L, v, depth);
}

void veld_sandbox__push_json(struct lua_State *L, const json_t *v)
{
	if (!v)
		lua_pushnil(L);
	else
		push_json(L, v, 0);
}

void veld_sandbox__mark_array(struct lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
	lua_setmetatable(L, idx);
}

static int is_marked_array(lua_State *L, int idx)
{
	int marked = 0;
	if (lua_getmetatable(L, idx)) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
		marked = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return marked;
}

/* Returns a new reference, or NULL with a message in `why`. */
static json_t *to_json(lua_State *L, int idx, int depth, char *why, size_t n)
{
	json_t *out = NULL;
	idx = lua_absindex(L, idx);
	if (depth > JSON_DEPTH) {
		snprintf(why, n, "value nested too deep for JSON (a cycle?)");
		return NULL;
	}
	if (!lua_checkstack(L, 4)) {
		snprintf(why, n, "out of memory");
		return NULL;
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		out = json_null();
		break;
	case LUA_TBOOLEAN:
		out = json_boolean(lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			out = json_integer((json_int_t)lua_tointeger(L, idx));
		} else {
			double d = (double)lua_tonumber(L, idx);
			if (d != d || d - d != 0) { /* NaN or infinite */
				snprintf(why, n, "a number that is not finite cannot be JSON");
				return NULL;
			}
			out = json_real(d);
		}
		break;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		out = json_stringn(s, len);
		if (!out) {
			snprintf(why, n, "a string is not valid UTF-8");
			return NULL;
		}
		break;
	}
	case LUA_TTABLE: {
		size_t count = 0;
		int strings = 0, ints = 0;
		lua_Integer max = 0;
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			count++;
			if (lua_type(L, -1) == LUA_TSTRING) {
				strings = 1;
			} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
				ints = 1;
				if (lua_tointeger(L, -1) > max)
					max = lua_tointeger(L, -1);
			} else {
				lua_pop(L, 1);
				snprintf(why, n, "a table key that is neither a string nor 1..n");
				return NULL;
			}
		}
		if (strings && ints) {
			snprintf(why, n, "a table mixes string and number keys");
			return NULL;
		}
		if (ints && (size_t)max != count) {
			snprintf(why, n, "a list has holes");
			return NULL;
		}
		if (ints || (count == 0 && is_marked_array(L, idx))) {
			lua_Integer i;
			out = json_array();
			for (i = 1; out && i <= max; i++) {
				json_t *item;
				lua_rawgeti(L, idx, i);
				item = to_json(L, -1, depth + 1, why, n);
				lua_pop(L, 1);
				if (!item || json_array_append_new(out, item)) {
					json_decref(out);
					if (item)
						snprintf(why, n, "out of memory");
					return NULL;
				}
			}
		} else {
			out = json_object();
			lua_pushnil(L);
			while (out && lua_next(L, idx)) {
				size_t klen;
				const char *k = lua_tolstring(L, -2, &klen);
				json_t *item = to_json(L, -1, depth + 1, why, n);
				lua_pop(L, 1);
				if (!item || strlen(k) != klen || json_object_set_new(out, k, item)) {
					if (item && strlen(k) != klen)
						snprintf(why, n, "a key holds a NUL byte");
					else if (item)
						snprintf(why, n, "a key is not valid UTF-8");
					lua_pop(L, 1);
					json_decref(out);
					return NULL;
				}
			}
		}
		break;
	}
	default:
		snprintf(why, n, "a %s value cannot be JSON", luaL_typename(L, idx));
		return NULL;
	}
	if (!out)
		snprintf(why, n, "out of memory");
	return out;
}

json_t *veld_sandbox__to_json(struct lua_State *L, int idx)
{
	char why[128];
	json_t *out = to_json(L, idx, 0, why, sizeof why);
	if (!out)
		luaL_error(L, "%s", why);
	return out;
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
		return veld_err__set(err, VELD_ENOTFOUND, "no %s file %s", what, path);
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
	rc->result = veld_sandbox__to_json(L, 2);
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

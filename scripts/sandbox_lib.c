/*
** sandbox_lib.c — the libraries a sandboxed state opens, guarded.
**
** sandbox.c owns the state, its allocator, its hook and the budget; this file
** owns what a script can call.  Lua's hook counts VM instructions only, so
** every library function that loops in C is wrapped here: the wrapper works
** out the worst case of what the original will do, charges it to the budget
** (veld_sandbox__charge, which raises the sticky stop when it does not fit)
** and only then calls the original.  It sees no field of the handle: what it
** needs from it goes through the calls scripts.h names "inside the sandbox".
** It must not keep state of its own (none survives from one state to the
** next) nor open anything beyond the allowlist.
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
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <string.h>

#define CO_HOOK_COUNT 100  /* instructions between hook calls on coroutines, charged up front */
#define CLOSE_DEPTH   8    /* nested coroutine.close calls */
#define BYTES_PER_UNIT 4.0 /* bytes a C function may copy per budget unit (a fresh
                           ** page costs more than a VM instruction) */

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
	veld_sandbox__charge(L, 1 + string_bytes(L) / BYTES_PER_UNIT);
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

/* The index just past the set "[...]" that starts at p[i] (a ']' first in
** the set, after the optional '^', is one of its characters, as in lstrlib.c). */
static size_t skip_set(const char *p, size_t lp, size_t i)
{
	i++;
	if (i < lp && p[i] == '^')
		i++;
	if (i < lp && p[i] == ']')
		i++;
	while (i < lp && p[i] != ']')
		i += (p[i] == '%') ? 2 : 1;
	return i + 1;
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
				if (i < lp && p[i] == '[')
					i = skip_set(p, lp, i);
				continue;
			}
			if (d >= '0' && d <= '9') {
				k++;
				i += 2;
				continue;
			}
			i += 2;
		} else if (c == '[') {
			i = skip_set(p, lp, i);
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
	veld_sandbox__charge(L, cost);
	return call_original(L);
}

/* string.gmatch: every position; string.gsub: every position unless '^'. */
static int g_gmatch(lua_State *L)
{
	size_t ls, lp;
	luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	veld_sandbox__charge(L, pattern_cost(p, lp, ls, 0) + (double)ls);
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
	veld_sandbox__charge(L, cost);
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
		veld_sandbox__charge(L, 1);
		lua_pushliteral(L, "");
		return 1;
	}
	if (n > 0) {
		double bytes = (double)n * (double)(l + lsep);
		double cap = (double)veld_sandbox__limits(L)->memory;
		if (bytes > cap)
			bytes = cap; /* the allocator refuses the rest */
		veld_sandbox__charge(L, 1 + bytes / BYTES_PER_UNIT);
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
	veld_sandbox__charge(L, 1 + span(i, j) * (1 + (double)lsep / 16));
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
	veld_sandbox__charge(L, 1 + span(i, j));
	lua_settop(L, 1);
	lua_pushinteger(L, i);
	lua_pushinteger(L, j);
	return call_original(L);
}

static int g_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	veld_sandbox__charge(L, 1 + span(f, e));
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
	veld_sandbox__charge(L, 1 + n * (1 + log2_up(n + 1)));
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
		veld_sandbox__charge(L, 1 + span(pos, e));
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
	veld_sandbox__charge(L, 1 + span(pos, size));
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
	veld_sandbox__charge(L, 1 + (double)len / 4);
	if (veld_sandbox__names_env(s, len)) {
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
		veld_sandbox__error_at(L, level > 0 ? level : 1);
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
	int n;
	veld_sandbox__charge(L, CO_HOOK_COUNT);
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
		veld_sandbox__hook_thread(co, CO_HOOK_COUNT);
	return n;
}

/* coroutine.close, nested at most CLOSE_DEPTH deep.  The depth is an int in
** a userdata, the closure's second upvalue: a state has one such closure,
** so it counts for the whole state, and changing it pushes nothing. */
static int c_close(lua_State *L)
{
	int *depth = lua_touserdata(L, lua_upvalueindex(2));
	int n, status;
	if (*depth >= CLOSE_DEPTH)
		return luaL_error(L, "coroutine.close: nested too deep");
	n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	(*depth)++;
	status = lua_pcall(L, n, LUA_MULTRET, 0);
	(*depth)--;
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

/* Functions replaced outright (they do not call the original). */
static const luaL_Reg BASE_REPLACED[] = {
	{"load", b_load}, {"collectgarbage", b_collectgarbage}, {"error", b_error}, {NULL, NULL}};

static const luaL_Reg TABLE_REPLACED[] = {
	{"insert", g_insert}, {"remove", g_remove}, {NULL, NULL}};

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

/* t[name] = fn with the original t[name] as its upvalue (t at the top). */
static void replace(lua_State *L, const char *name, lua_CFunction fn)
{
	lua_getfield(L, -1, name);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, -2, name);
}

/* t[k] = v for every pair of the table at `from` into the table at `to`. */
static void copy_pairs(lua_State *L, int from, int to)
{
	lua_pushnil(L);
	while (lua_next(L, from)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, to);
	}
}

/* The globals (at the top): what is left out, and base functions replaced. */
static void open_base(lua_State *L)
{
	static const char *const drop[] = {"dofile", "loadfile", "print", "warn", "xpcall",
	                                   "require", NULL};
	const char *const *d;
	for (d = drop; *d; d++) {
		lua_pushnil(L);
		lua_setfield(L, -2, *d);
	}
	luaL_setfuncs(L, BASE_REPLACED, 0);
	replace(L, "setmetatable", b_setmetatable);
}

/* string (the globals at the top): guarded functions, no dump; methods from
** a private copy. */
static void open_string(lua_State *L)
{
	int string, mt;
	lua_getfield(L, -1, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	wrap_all(L, LUA_STRLIBNAME, STRING_GUARDS);
	string = lua_gettop(L);
	lua_createtable(L, 0, 12);           /* the new string metatable: */
	mt = lua_gettop(L);
	lua_pushliteral(L, "");              /* the arithmetic metamethods ("10" + 1) */
	if (lua_getmetatable(L, -1)) {
		copy_pairs(L, lua_gettop(L), mt);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 20);           /* methods: a copy of string */
	copy_pairs(L, string, lua_gettop(L));
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushliteral(L, "");
	lua_insert(L, -2);
	lua_setmetatable(L, -2);             /* shared by every string */
	lua_pop(L, 2);                       /* "" and string */
}

/* table and utf8 (the globals at the top). */
static void open_table_utf8(lua_State *L)
{
	lua_getfield(L, -1, LUA_TABLIBNAME);
	wrap_all(L, LUA_TABLIBNAME, TABLE_GUARDS);
	luaL_setfuncs(L, TABLE_REPLACED, 0);
	lua_pop(L, 1);

	lua_getfield(L, -1, LUA_UTF8LIBNAME);
	wrap_all(L, LUA_UTF8LIBNAME, UTF8_GUARDS);
	lua_pop(L, 1);
}

/* coroutine (the globals at the top). */
static void open_coroutine(lua_State *L)
{
	int *depth;
	lua_getfield(L, -1, LUA_COLIBNAME);
	replace(L, "create", c_create);
	replace(L, "wrap", c_create);
	lua_getfield(L, -1, "close");
	depth = lua_newuserdatauv(L, sizeof *depth, 0);
	*depth = 0;
	lua_pushcclosure(L, c_close, 2);
	lua_setfield(L, -2, "close");
	lua_pop(L, 1);
}

void veld_sandbox__open_libs(struct lua_State *L, unsigned flags)
{
	open_lib(L, LUA_GNAME, luaopen_base);
	open_lib(L, LUA_STRLIBNAME, luaopen_string);
	open_lib(L, LUA_TABLIBNAME, luaopen_table);
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
	if (flags & VELD_SANDBOX_COROUTINES)
		open_lib(L, LUA_COLIBNAME, luaopen_coroutine);

	lua_pushglobaltable(L);
	open_base(L);
	open_string(L);
	open_table_utf8(L);
	if (flags & VELD_SANDBOX_COROUTINES)
		open_coroutine(L);
	lua_pop(L, 1);
}

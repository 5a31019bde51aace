/*
** sandbox.c — hostile scripts against the Lua sandbox (scripts/sandbox.c).
**
** Each hostile script must end with a clear error in bounded time and
** memory, nothing may escape the state, and a normal script must run fine
** right after it in the same sandbox handle.
*/
#include "testutil.h"

#include "../../scripts/scripts.h"

#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* loose: also under ASan on a busy machine; scaled under an emulator */
#define TIME_BOUND_S (5.0 * veld_test_time_scale())

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static veld_sandbox *sandbox_with(unsigned flags, uint64_t instructions, uint32_t wall_ms)
{
	veld_sandbox_limits lim;
	veld_sandbox *sb = NULL;
	memset(&lim, 0, sizeof lim);
	lim.flags = flags;
	lim.instructions = instructions;
	lim.wall_ms = wall_ms;
	assert_int_equal(veld_sandbox__new(&sb, &lim), VELD_OK);
	return sb;
}

/* A wall-clock backstop long enough that on a loaded machine (or an
** emulated one) the instruction budget still decides which stop is seen. */
static uint32_t backstop_ms(void)
{
	return (uint32_t)(4000 * veld_test_time_scale());
}

/* The default limits, with that backstop. */
static veld_sandbox *sandbox(void)
{
	return sandbox_with(0, 0, backstop_ms());
}

/* Run `src`; return the result JSON (caller frees) or NULL; time in *dt. */
static char *run(veld_sandbox *sb, const char *src, int *rc, double *dt)
{
	char *out = NULL;
	double t0 = now_s();
	*rc = veld_sandbox__run(&out, sb, "hostile.lua", src, strlen(src));
	*dt = now_s() - t0;
	return out;
}

static void expect_result(veld_sandbox *sb, const char *src, const char *json)
{
	int rc;
	double dt;
	char *out = run(sb, src, &rc, &dt);
	if (rc != VELD_OK)
		fail_msg("script failed: %s\n--- script:\n%s", veld_sandbox__errmsg(sb), src);
	assert_non_null(out);
	if (strcmp(out, json) != 0)
		fail_msg("result %s, expected %s", out, json);
	free(out);
}

/* A normal script: tables, strings, string methods, load of text. */
static void expect_normal(veld_sandbox *sb)
{
	expect_result(sb,
	              "local t = {}\n"
	              "for i = 1, 1000 do t[i] = i end\n"
	              "local f = load('return 40 + 2')\n"
	              "return { n = #t, s = ('ab'):rep(3):upper(), m = getmetatable(''),\n"
	              "         f = f(), g = string.format('%05.1f', 3.14159) }",
	              "{\"f\":42,\"g\":\"003.1\",\"m\":false,\"n\":1000,\"s\":\"ABABAB\"}");
	assert_int_equal(veld_sandbox__memory(sb), 0); /* the state is closed */
}

/* `src` must fail with a message containing every needle, within the time
** bound; then a normal script runs. */
static void expect_fail2(veld_sandbox *sb, const char *src, const char *needle,
                         const char *needle2)
{
	int rc;
	double dt;
	char *out = run(sb, src, &rc, &dt);
	const char *msg = veld_sandbox__errmsg(sb);
	if (rc == VELD_OK)
		fail_msg("hostile script succeeded with %s\n--- script:\n%s", out ? out : "(null)", src);
	assert_int_equal(rc, VELD_EINVALID);
	assert_null(out);
	if (!strstr(msg, needle) || (needle2 && !strstr(msg, needle2)))
		fail_msg("message \"%s\" lacks \"%s\"%s%s\n--- script:\n%s", msg, needle,
		         needle2 ? " or " : "", needle2 ? needle2 : "", src);
	if (dt > TIME_BOUND_S)
		fail_msg("took %.2f s: %s", dt, msg);
	assert_int_equal(veld_sandbox__memory(sb), 0);
	expect_normal(sb);
}

/* Fails with a message naming the script and one of two reasons. */
static void expect_fail_either(veld_sandbox *sb, const char *src, const char *a, const char *b)
{
	int rc;
	double dt;
	char *out = run(sb, src, &rc, &dt);
	const char *msg = veld_sandbox__errmsg(sb);
	assert_int_equal(rc, VELD_EINVALID);
	assert_null(out);
	if (strncmp(msg, "hostile.lua:", 12) != 0 || (!strstr(msg, a) && !strstr(msg, b)))
		fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", msg, a, b);
	if (dt > TIME_BOUND_S)
		fail_msg("took %.2f s: %s", dt, msg);
	expect_normal(sb);
}

static void expect_fail(veld_sandbox *sb, const char *src, const char *needle)
{
	expect_fail2(sb, src, needle, NULL);
}

/* ---- nothing of the OS ------------------------------------------------------ */

static void test_sandbox__no_os_io_require_debug(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail2(sb, "os.execute('touch /tmp/veld-pwned')",
	             "hostile.lua:1:", "attempt to index a nil value (global 'os')");
	expect_fail2(sb, "local f = io.open('/etc/passwd')", "hostile.lua:1:",
	             "(global 'io')");
	expect_fail2(sb, "local m = require('os')", "hostile.lua:1:", "(global 'require')");
	expect_fail2(sb, "return package.loaded.os", "hostile.lua:1:", "(global 'package')");
	expect_fail2(sb, "return debug.getinfo(1)", "hostile.lua:1:", "(global 'debug')");
	expect_fail(sb, "dofile('/etc/passwd')", "(global 'dofile')");
	expect_fail(sb, "loadfile('/etc/passwd')", "(global 'loadfile')");
	expect_fail(sb, "print('leak')", "(global 'print')");
	expect_fail(sb, "return string.dump(function() end)", "(field 'dump')");
	expect_fail(sb, "return ('x').dump(function() end)", "(field 'dump')");
	/* the 5.4.4 "C stack overflow while handling an error" needs a handler */
	expect_fail(sb, "local function loop() assert(pcall(loop)) end\n"
	                "return xpcall(loop, loop)", "(global 'xpcall')");
	expect_fail(sb, "local _ENV <const> = {x = 1}\nreturn x", "_ENV is not available");
	expect_fail(sb, "return load('local _ENV = {} return 1')()", "_ENV is not available");
	expect_fail(sb, "collectgarbage('generational')", "only \"count\"");
	expect_fail(sb, "collectgarbage()", "only \"count\"");
	expect_result(sb, "return collectgarbage('count') > 0", "true");
	/* a coroutine library is not there unless asked for */
	expect_fail(sb, "return coroutine.create(print)", "(global 'coroutine')");
	veld_sandbox__free(sb);
}

static void test_sandbox__bytecode_refused(void **state)
{
	veld_sandbox *sb = sandbox();
	/* A hand-made 5.4 header: string.dump is gone, so a script can only
	** craft the bytes.  load forces text mode whatever mode is asked. */
	static const char hostile[] =
		"local header = '\\27LuaT\\0\\25\\147\\r\\n\\26\\n\\4\\8\\8xV' ..\n"
		"  string.rep('\\0', 8) .. '\\0\\0\\0\\0\\0\\0\\40\\119\\64\\1'\n"
		"local f, err = load(header .. string.rep('\\0', 64), 'evil', 'b')\n"
		"assert(f == nil)\n"
		"error(err, 0)\n";
	static const char binary_top[] = "\033LuaT\0\031\223\r\n";
	char *out = NULL;
	(void)state;
	expect_fail(sb, hostile, "attempt to load a binary chunk (mode is 't')");
	/* A binary chunk handed to the host is refused the same way. */
	assert_int_equal(veld_sandbox__run(&out, sb, "evil.luac", binary_top, sizeof binary_top - 1),
	                 VELD_EINVALID);
	assert_non_null(strstr(veld_sandbox__errmsg(sb), "binary chunk"));
	/* load accepts strings only (no reader functions that could feed bytes) */
	expect_fail(sb, "return load(function() return nil end)", "only a string chunk");
	expect_normal(sb);
	veld_sandbox__free(sb);
}

/* ---- CPU ------------------------------------------------------------------------ */

static void test_sandbox__infinite_loop(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "local x = 0\nwhile true do x = x + 1 end",
	            "hostile.lua:2: instruction limit exceeded (10000000)");
	assert_int_equal(veld_sandbox__stop_reason(sb), VELD_SANDBOX_STOP_NONE); /* reset by the normal run */
	/* tail calls reuse their frame: only the budget stops this one */
	expect_fail(sb, "local function f() return f() end\nreturn f()", "instruction limit exceeded");
	veld_sandbox__free(sb);
}

static void test_sandbox__stop_sticks_through_pcall(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb,
	            "local caught = 0\n"
	            "for i = 1, 1000 do\n"
	            "  local ok = pcall(function() while true do end end)\n"
	            "  caught = caught + 1\n"
	            "end\n"
	            "return caught\n",
	            "instruction limit exceeded");
	/* a swallowed stop on the last line still fails the call */
	expect_fail(sb, "pcall(function() while true do end end) return 'escaped'",
	            "instruction limit exceeded");
	/* nested pcalls and error() in between do not reset it */
	expect_fail(sb,
	            "while true do\n"
	            "  pcall(pcall, function() while true do end end)\n"
	            "  pcall(error, 'again')\n"
	            "end\n",
	            "instruction limit exceeded");
	veld_sandbox__free(sb);
}

/* nest(n): a suspended coroutine whose <close> handler closes nest(n + 1),
** raising what that close failed with: closing nest(1) nests without end. */
#define NEST_CLOSE                                                          \
	"local function nest(n)\n"                                          \
	"  local co = coroutine.create(function()\n"                        \
	"    local x <close> = setmetatable({}, {__close = function()\n"    \
	"      local inner = nest(n + 1)\n"                                 \
	"      local ok, err = coroutine.close(inner)\n"                    \
	"      if not ok then error(err, 0) end\n"                          \
	"    end})\n"                                                       \
	"    coroutine.yield()\n"                                           \
	"  end)\n"                                                          \
	"  coroutine.resume(co)\n"                                          \
	"  return co\n"                                                     \
	"end\n"

static void test_sandbox__coroutines_share_the_budget(void **state)
{
	veld_sandbox *sb = sandbox_with(VELD_SANDBOX_COROUTINES, 0, backstop_ms());
	(void)state;
	/* many short coroutines, each far below one hook interval's worth of work
	** on its own thread */
	expect_fail(sb,
	            "local n = 0\n"
	            "while true do\n"
	            "  local co = coroutine.create(function() for j = 1, 50 do n = n + 1 end end)\n"
	            "  coroutine.resume(co)\n"
	            "  local w = coroutine.wrap(function() for j = 1, 50 do n = n + 1 end end)\n"
	            "  w()\n"
	            "end\n",
	            "instruction limit exceeded");
	/* a coroutine that swallows the stop and yields back to a loop */
	expect_fail(sb,
	            "local co = coroutine.wrap(function()\n"
	            "  while true do pcall(function() while true do end end) coroutine.yield() end\n"
	            "end)\n"
	            "while true do pcall(co) end\n",
	            "instruction limit exceeded");
	/* deep nesting of coroutine.close (a 5.4.4 C-stack bug) is cut short */
	expect_fail(sb,
	            NEST_CLOSE
	            "local ok, err = coroutine.close(nest(1))\n"
	            "error(err, 0)\n",
	            "nested too deep");
	/* the limit counts nesting, not calls: closes one after another work,
	** also after a nested chain was cut short in the same state */
	expect_result(sb,
	              NEST_CLOSE
	              "local cut = coroutine.close(nest(1))\n"
	              "local n = 0\n"
	              "for i = 1, 20 do\n"
	              "  local co = coroutine.create(function()\n"
	              "    local x <close> = setmetatable({}, {__close = function() n = n + 1 end})\n"
	              "    coroutine.yield()\n"
	              "  end)\n"
	              "  coroutine.resume(co)\n"
	              "  assert(coroutine.close(co))\n"
	              "end\n"
	              "return {cut, n}",
	              "[false,20]");
	expect_result(sb, "local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)\n"
	                  "return {co(1), co(21)}", "[2,42]");
	veld_sandbox__free(sb);
}

static void test_sandbox__wall_clock_backstop(void **state)
{
	veld_sandbox *sb = sandbox_with(0, (uint64_t)1 << 60, 200);
	(void)state;
	expect_fail(sb, "while true do end", "time limit exceeded (200 ms)");
	veld_sandbox__free(sb);
}

/* ---- memory ----------------------------------------------------------------------- */

static void test_sandbox__memory_bombs(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "return string.rep('x', 1e9)", "memory limit exceeded (16777216 bytes)");
	expect_fail(sb,
	            "for i = 1, 1000 do pcall(string.rep, 'x', 1e9) end\n"
	            "return 'survived'\n",
	            "memory limit exceeded");
	expect_fail(sb,
	            "for i = 1, 100 do\n"
	            "  pcall(function()\n"
	            "    local t = {}\n"
	            "    while true do t[#t + 1] = {i, 'padding padding padding'} end\n"
	            "  end)\n"
	            "end\n",
	            "memory limit exceeded");
	expect_fail(sb, "local s = 'x'\nwhile true do s = s .. s end", "memory limit exceeded");
	expect_fail(sb, "return table.concat(setmetatable({}, {__index = function() return ('y'):rep(1e6) end}), '', 1, 1e4)",
	            "limit exceeded");
	/* n copies of nothing: Lua's own loop would run n times unhooked */
	expect_result(sb, "return string.rep('', 1e18) .. string.rep('', 1e18, '') .. 'x'", "\"x\"");
	expect_fail(sb, "while true do string.rep('', math.maxinteger) end", "instruction limit exceeded");
	/* big copies in a loop are charged to the budget before the clock runs out */
	expect_fail(sb, "for i = 1, 1e6 do local s = string.rep('x', 4e6) end",
	            "instruction limit exceeded");
	veld_sandbox__free(sb);
}

/* ---- recursion ---------------------------------------------------------------------- */

static void test_sandbox__deep_recursion(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "local function f(n) return 1 + f(n + 1) end\nreturn f(1)",
	            "recursion too deep (more than 200 levels)");
	/* retried: the budget or (malloc-heavy under sanitizers) the clock */
	expect_fail_either(sb,
	                   "local function f(n) return 1 + f(n + 1) end\n"
	                   "for i = 1, 1e6 do pcall(f, 1) end",
	                   "instruction limit exceeded", "time limit exceeded");
	expect_fail2(sb,
	             "local t = setmetatable({}, {__index = function(t, k) return t[k + 1] end})\n"
	             "return t[1]",
	             "hostile.lua:", "stack overflow");
	expect_fail2(sb,
	             "local mt = {}\n"
	             "mt.__add = function(a, b) return a + b end\n"
	             "local x = setmetatable({}, mt)\n"
	             "return x + 1",
	             "hostile.lua:", "stack overflow");
	expect_fail2(sb, "local function f(s) return (s:gsub('.', f)) end\nreturn f('abc')",
	             "hostile.lua:", "stack overflow");
	expect_fail2(sb,
	             "local t = setmetatable({}, {__tostring = function(t) return tostring(t) end})\n"
	             "return tostring(t)",
	             "hostile.lua:", "stack overflow");
	expect_fail_either(sb, "local function f() table.sort({3, 2, 1}, function(a, b) f() return a < b end) end\nf()",
	                   "stack overflow", "recursion too deep");
	/* the parser's own nesting limit */
	{
		char src[5000];
		memset(src, '(', 4000);
		strcpy(src + 4000, "1");
		memmove(src + 7, src, 4002); /* the parentheses, "1" and the NUL */
		memcpy(src, "return ", 7);
		expect_fail2(sb, src, "hostile.lua", "C stack overflow");
	}
	veld_sandbox__free(sb);
}

/* ---- C paths with no hook --------------------------------------------------------- */

static void test_sandbox__backtracking_patterns(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "return string.find(string.rep('a', 1e5), '.-.-.-b')",
	            "hostile.lua:1: instruction limit exceeded");
	expect_fail(sb, "local s = ('a'):rep(1e5)\nreturn s:match('^(.-)%s*(.-)%s*(.-)$b')",
	            "hostile.lua:2: instruction limit exceeded");
	expect_fail(sb, "for w in string.gmatch(('a'):rep(1e5), '.-.-b') do end",
	            "instruction limit exceeded");
	expect_fail(sb, "return (('a'):rep(1e5):gsub('a*a*a*b', 'x'))", "instruction limit exceeded");
	/* pcall cannot retry its way out */
	expect_fail(sb, "for i = 1, 1e6 do pcall(string.find, ('a'):rep(3e4), '.-.-b') end",
	            "instruction limit exceeded");
	/* the same patterns on short subjects are fine */
	expect_result(sb, "return {('  x  '):match('^%s*(.-)%s*$'), string.find('aaab', '.-.-.-b')}",
	              "[\"x\",1,4]");
	veld_sandbox__free(sb);
}

static void test_sandbox__table_functions_looping_in_c(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "table.move({}, 1, 1e12, 2)", "instruction limit exceeded");
	expect_fail(sb, "return table.concat(setmetatable({}, {__index = table.concat}), '', 1, 1e12)",
	            "instruction limit exceeded");
	expect_fail(sb, "table.insert(setmetatable({}, {__len = function() return 1e12 end}), 1, 'x')",
	            "instruction limit exceeded");
	expect_fail(sb, "table.remove(setmetatable({}, {__len = function() return 1e12 end}), 1)",
	            "instruction limit exceeded");
	/* a __len that lies on its second call gains nothing */
	expect_result(sb,
	              "local calls = 0\n"
	              "local t = setmetatable({}, {__len = function() calls = calls + 1\n"
	              "  return calls == 1 and 0 or 1e12 end})\n"
	              "return table.concat(t, ',')",
	              "\"\"");
	expect_fail(sb, "table.sort(setmetatable({}, {__len = function() return 2^31 end}))",
	            "__len metamethod");
	expect_fail(sb, "return table.unpack({}, 1, 1e8)", "hostile.lua:1:");
	expect_result(sb,
	              "local t = {5, 3, 1}\n"
	              "table.insert(t, 2, 4) table.insert(t, 9) table.remove(t, 1) table.sort(t)\n"
	              "return {table.concat(t, ','), table.unpack({1, 2})}",
	              "[\"1,3,4,9\",1,2]");
	veld_sandbox__free(sb);
}

/* ---- finalizers and to-be-closed variables ----------------------------------------- */

static void test_sandbox__gc_and_close_handlers(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	/* finalizers run with hooks off in Lua: refused outright */
	expect_fail(sb, "setmetatable({}, {__gc = function() while true do end end})",
	            "__gc metamethods are not available");
	expect_fail(sb, "setmetatable({}, {__gc = false})", "__gc metamethods are not available");
	/* a __gc added after setmetatable is never called (Lua never marks it) */
	expect_result(sb,
	              "local mt = {}\n"
	              "for i = 1, 1000 do setmetatable({}, mt) end\n"
	              "mt.__gc = function() while true do end end\n"
	              "local junk = {} for i = 1, 2e5 do junk[i % 100] = {i} end\n"
	              "return 'done'",
	              "\"done\"");
	/* a <close> handler that loops, on a normal exit */
	expect_fail(sb,
	            "do local x <close> = setmetatable({}, {__close = function() while true do end end}) end",
	            "instruction limit exceeded");
	/* ... and one that runs after the deadline while the stop unwinds */
	expect_fail(sb,
	            "local function f()\n"
	            "  local a <close> = setmetatable({}, {__close = function()\n"
	            "    for i = 1, 1e9 do pcall(function() while true do end end) end end})\n"
	            "  local b <close> = setmetatable({}, {__close = function() while true do end end})\n"
	            "  while true do end\n"
	            "end\n"
	            "pcall(f)\n"
	            "while true do end\n",
	            "instruction limit exceeded");
	veld_sandbox__free(sb);
}

static void test_sandbox__close_with_pending_close_handler(void **state)
{
	veld_sandbox *sb = sandbox_with(VELD_SANDBOX_COROUTINES, 0, backstop_ms());
	lua_State *L;
	double t0;
	static const char src[] =
		"co = coroutine.create(function()\n"
		"  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
		"  coroutine.yield()\n"
		"end)\n"
		"coroutine.resume(co)\n";
	(void)state;
	/* A state left with a suspended coroutine holding a looping <close>:
	** closing the state must not run it unbounded. */
	assert_int_equal(veld_sandbox__reset(sb), VELD_OK);
	L = veld_sandbox__state(sb);
	assert_non_null(L);
	assert_int_equal(veld_sandbox__load(sb, "pending.lua", src, strlen(src)), VELD_OK);
	assert_int_equal(veld_sandbox__call(sb, 0, 0), VELD_OK);
	t0 = now_s();
	assert_int_equal(veld_sandbox__reset(sb), VELD_OK);
	assert_true(now_s() - t0 < TIME_BOUND_S);
	expect_normal(sb);
	veld_sandbox__free(sb);
}

/* ---- shared state between scripts --------------------------------------------------- */

static void test_sandbox__string_metatable_does_not_leak(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "getmetatable('').__index = {upper = function() return 'pwned' end}",
	            "attempt to index a boolean value");
	expect_fail(sb, "rawset(getmetatable(''), '__index', {})", "bad argument #1 to 'rawset'");
	expect_fail(sb, "setmetatable('', {})", "bad argument #1 to 'setmetatable'");
	/* changing the global string table changes no string's methods */
	expect_result(sb, "string.upper = function() return 'pwned' end\nreturn ('x'):upper()",
	              "\"X\"");
	expect_result(sb, "return ('x'):upper() .. tostring(rawequal(string.upper, nil))", "\"Xfalse\"");
	/* globals set by one script are gone for the next */
	expect_result(sb, "leaked = 'secret' tostring = nil return 1", "1");
	expect_result(sb, "return {leaked == nil, type(tostring)}", "[true,\"function\"]");
	veld_sandbox__free(sb);
}

/* ---- error values ----------------------------------------------------------------------- */

static void test_sandbox__error_values(void **state)
{
	veld_sandbox *sb = sandbox();
	(void)state;
	expect_fail(sb, "local x = 1\nerror({code = 1})", "hostile.lua:2: error raised with a table value");
	expect_fail(sb, "error()", "hostile.lua:1: error raised with a nil value");
	expect_fail(sb, "error(nil)", "hostile.lua:1: error raised with a nil value");
	expect_fail(sb, "error(42)", "hostile.lua:1: 42");
	expect_fail(sb, "error(true)", "hostile.lua:1: error raised with a boolean value");
	expect_fail(sb, "error(setmetatable({}, {__tostring = function() return 'custom' end}))",
	            "hostile.lua:1: custom");
	expect_fail(sb,
	            "error(setmetatable({}, {__tostring = function() error('boom') end}))",
	            "hostile.lua:1: error raised with a table value (its __tostring failed)");
	expect_fail(sb,
	            "error(setmetatable({}, {__tostring = function() while true do end end}))",
	            "instruction limit exceeded");
	expect_fail(sb, "local function f()\n  error('deep', 2)\nend\nf()", "hostile.lua:4: deep");
	expect_fail(sb, "local t = nil\nreturn t.x", "hostile.lua:2: attempt to index a nil value (local 't')");
	expect_fail(sb, "local x = = 1", "hostile.lua:1: unexpected symbol near '='");
	expect_fail(sb, "return function() end", "a function value cannot be JSON");
	veld_sandbox__free(sb);
}

/* ---- the host API ------------------------------------------------------------------------ */

static int push_answer(lua_State *L)
{
	json_t *v = json_pack("{s:i,s:[s,s],s:{}}", "n", 42, "list", "a", "b", "empty");
	veld_sandbox__push_json(L, v);
	json_decref(v);
	lua_setglobal(L, "answer");
	return 0;
}

static void test_sandbox__host_calls(void **state)
{
	veld_sandbox *sb = sandbox();
	lua_State *L;
	static const char src[] = "return answer.n + #answer.list, next(answer.empty)";
	(void)state;
	assert_int_equal(veld_sandbox__reset(sb), VELD_OK);
	L = veld_sandbox__state(sb);
	assert_int_equal(veld_sandbox__ccall(sb, push_answer, NULL), VELD_OK);
	assert_int_equal(veld_sandbox__load(sb, "host.lua", src, strlen(src)), VELD_OK);
	assert_int_equal(veld_sandbox__call(sb, 0, 2), VELD_OK);
	assert_int_equal(lua_tointeger(L, -2), 44);
	assert_true(lua_isnil(L, -1));
	lua_pop(L, 2);
	/* a stopped state refuses further calls until it is reset */
	assert_int_equal(veld_sandbox__load(sb, "loop.lua", "while true do end", 17), VELD_OK);
	assert_int_equal(veld_sandbox__call(sb, 0, 0), VELD_EINVALID);
	assert_true(veld_sandbox__spent(sb));
	assert_int_equal(veld_sandbox__stop_reason(sb), VELD_SANDBOX_STOP_INSTRUCTIONS);
	assert_int_equal(veld_sandbox__ccall(sb, push_answer, NULL), VELD_ERROR);
	assert_non_null(strstr(veld_sandbox__errmsg(sb), "reset"));
	assert_int_equal(veld_sandbox__reset(sb), VELD_OK);
	assert_false(veld_sandbox__spent(sb));
	assert_int_equal(veld_sandbox__ccall(sb, push_answer, NULL), VELD_OK);
	veld_sandbox__free(sb);
	veld_sandbox__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox__no_os_io_require_debug),
		cmocka_unit_test(test_sandbox__bytecode_refused),
		cmocka_unit_test(test_sandbox__infinite_loop),
		cmocka_unit_test(test_sandbox__stop_sticks_through_pcall),
		cmocka_unit_test(test_sandbox__coroutines_share_the_budget),
		cmocka_unit_test(test_sandbox__wall_clock_backstop),
		cmocka_unit_test(test_sandbox__memory_bombs),
		cmocka_unit_test(test_sandbox__deep_recursion),
		cmocka_unit_test(test_sandbox__backtracking_patterns),
		cmocka_unit_test(test_sandbox__table_functions_looping_in_c),
		cmocka_unit_test(test_sandbox__gc_and_close_handlers),
		cmocka_unit_test(test_sandbox__close_with_pending_close_handler),
		cmocka_unit_test(test_sandbox__string_metatable_does_not_leak),
		cmocka_unit_test(test_sandbox__error_values),
		cmocka_unit_test(test_sandbox__host_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

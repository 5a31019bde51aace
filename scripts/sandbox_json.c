/*
** sandbox_json.c — values crossing between C and a sandboxed state.
**
** JSON goes into a state as Lua tables (push_json; arrays carry a marker
** metatable so an empty one comes back as []), and a script's value comes
** out as JSON (veld_sandbox__to_json) for the engines: a form's failures
** and computed values, a report's result.  What comes out is built by C
** outside the state's memory cap, and a string the script holds once may
** be referenced many times; so the conversion charges the text it makes to
** a byte budget *before* each allocation and stops past it ("result exceeds
** 1 MiB as JSON"), instead of letting 100 references to a 4 MB string
** become 400 MB of host memory.  Strings C would read as C strings (names,
** paths, values) may not hold a NUL byte.  The words messages use for what
** they quote (a path cut short, a size) are here too.
**
** Everything that touches a lua_State runs inside veld_sandbox__ccall and
** raises Lua errors; this file keeps no state of its own (the marker is a
** registry entry of each state).
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <string.h>

#define JSON_DEPTH 64 /* nesting of tables converted to JSON */

/* Registry key of the array marker (its address is unique per process,
** which is all Lua asks of a light userdata key; it holds nothing). */
static const char ARRAY_MT_KEY = 'a';

/* ---- what messages quote ----------------------------------------------------------- */

const char *veld_sandbox__echo(char buf[VELD_ECHO_BUF], const char *s)
{
	size_t n = strlen(s ? s : (s = ""));
	if (n <= VELD_ECHO_MAX) {
		memcpy(buf, s, n + 1);
		return buf;
	}
	for (n = VELD_ECHO_MAX - 3; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
		;
	memcpy(buf, s, n);
	memcpy(buf + n, "\xe2\x80\xa6", 4); /* "…" and the NUL */
	return buf;
}

const char *veld_sandbox__size(char buf[32], size_t bytes)
{
	if (bytes && bytes % ((size_t)1 << 20) == 0)
		snprintf(buf, 32, "%zu MiB", bytes >> 20);
	else if (bytes && bytes % 1024 == 0)
		snprintf(buf, 32, "%zu KiB", bytes >> 10);
	else
		snprintf(buf, 32, "%zu bytes", bytes);
	return buf;
}

void veld_sandbox__open_json(struct lua_State *L)
{
	/* The metatable that marks a table as a JSON array. */
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
}

/* ---- JSON <-> Lua ------------------------------------------------------------------ */

/* A real that holds a whole number, pushed the way Lua reads its shortest
** text: 2.0 becomes the integer 2, 0.5 and 1e+20 stay floats. */
static void push_whole_real(lua_State *L, double d)
{
	char buf[48];
	snprintf(buf, sizeof buf, "%.17g", d);
	if (!lua_stringtonumber(L, buf))
		lua_pushnil(L);
}

static void push_json(lua_State *L, const json_t *v, int depth, unsigned flags)
{
	size_t i;
	const char *key;
	json_t *item;
	if (depth > JSON_DEPTH)
		luaL_error(L, "JSON nested too deep");
	luaL_checkstack(L, 4, "JSON nested too deep");
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_foreach((json_t *)v, key, item) {
			push_json(L, item, depth + 1, flags);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach(v, i, item) {
			push_json(L, item, depth + 1, flags);
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
		if (flags & VELD_SANDBOX_WHOLE_REALS)
			push_whole_real(L, json_real_value(v));
		else
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

void veld_sandbox__push_json_with(struct lua_State *L, const json_t *v, int depth, unsigned flags)
{
	push_json(L, v, depth, flags);
}

void veld_sandbox__push_json_at(struct lua_State *L, const json_t *v, int depth)
{
	push_json(L, v, depth, 0);
}

void veld_sandbox__push_json(struct lua_State *L, const json_t *v)
{
	push_json(L, v, 0, 0);
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

/* A conversion: its budget of JSON text and why it failed. */
typedef struct conv {
	size_t left;             /* bytes of compact JSON text still allowed */
	size_t max;
	char why[128];
} conv;

/* Charge `bytes` of JSON text before it is built; 0 when over the budget. */
static int conv_charge(conv *cv, size_t bytes)
{
	char size[32];
	if (bytes <= cv->left) {
		cv->left -= bytes;
		return 1;
	}
	snprintf(cv->why, sizeof cv->why, "result exceeds %s as JSON", veld_sandbox__size(size, cv->max));
	return 0;
}

static json_t *to_json(lua_State *L, int idx, int depth, conv *cv);

/* A table: an array when its keys are 1..n (or it is empty and marked),
** else an object with string keys. */
static json_t *table_to_json(lua_State *L, int idx, int depth, conv *cv)
{
	size_t count = 0;
	int strings = 0, ints = 0;
	lua_Integer max = 0, i;
	json_t *out;
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
			snprintf(cv->why, sizeof cv->why, "a table key that is neither a string nor 1..n");
			return NULL;
		}
	}
	if (strings && ints) {
		snprintf(cv->why, sizeof cv->why, "a table mixes string and number keys");
		return NULL;
	}
	if (ints && (size_t)max != count) {
		snprintf(cv->why, sizeof cv->why, "a list has holes");
		return NULL;
	}
	if (!conv_charge(cv, 2 + count)) /* brackets and commas */
		return NULL;
	if (ints || (count == 0 && is_marked_array(L, idx))) {
		out = json_array();
		for (i = 1; out && i <= max; i++) {
			json_t *item;
			lua_rawgeti(L, idx, i);
			item = to_json(L, -1, depth + 1, cv);
			lua_pop(L, 1);
			if (!item || json_array_append_new(out, item)) {
				json_decref(out);
				if (item)
					snprintf(cv->why, sizeof cv->why, "out of memory");
				return NULL;
			}
		}
		return out;
	}
	out = json_object();
	lua_pushnil(L);
	while (out && lua_next(L, idx)) {
		size_t klen;
		const char *k = lua_tolstring(L, -2, &klen);
		json_t *item = conv_charge(cv, klen + 3) ? to_json(L, -1, depth + 1, cv) : NULL;
		lua_pop(L, 1);
		if (!item || strlen(k) != klen || json_object_set_new(out, k, item)) {
			if (item && strlen(k) != klen)
				snprintf(cv->why, sizeof cv->why, "a key holds a NUL byte");
			else if (item)
				snprintf(cv->why, sizeof cv->why, "a key is not valid UTF-8");
			lua_pop(L, 1);
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* Returns a new reference, or NULL with a message in cv->why.  The text the
** value makes is charged to cv as it is converted, before each allocation,
** so a string referenced many times fails the budget instead of the host. */
static json_t *to_json(lua_State *L, int idx, int depth, conv *cv)
{
	json_t *out = NULL;
	size_t len;
	const char *s;
	idx = lua_absindex(L, idx);
	if (depth > JSON_DEPTH) {
		snprintf(cv->why, sizeof cv->why, "value nested too deep for JSON (a cycle?)");
		return NULL;
	}
	if (!lua_checkstack(L, 4)) {
		snprintf(cv->why, sizeof cv->why, "out of memory");
		return NULL;
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		out = conv_charge(cv, 4) ? json_null() : NULL;
		break;
	case LUA_TBOOLEAN:
		out = conv_charge(cv, 5) ? json_boolean(lua_toboolean(L, idx)) : NULL;
		break;
	case LUA_TNUMBER:
		if (!conv_charge(cv, 24))
			return NULL;
		if (lua_isinteger(L, idx)) {
			out = json_integer((json_int_t)lua_tointeger(L, idx));
		} else {
			double d = (double)lua_tonumber(L, idx);
			if (d != d || d - d != 0) { /* NaN or infinite */
				snprintf(cv->why, sizeof cv->why, "a number that is not finite cannot be JSON");
				return NULL;
			}
			out = json_real(d);
		}
		break;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (!conv_charge(cv, len + 2))
			return NULL;
		if (memchr(s, '\0', len)) {
			/* C reads the value as a C string: it would end there */
			snprintf(cv->why, sizeof cv->why, "a string holds a NUL byte");
			return NULL;
		}
		if (!(out = json_stringn(s, len))) {
			snprintf(cv->why, sizeof cv->why, "a string is not valid UTF-8");
			return NULL;
		}
		break;
	case LUA_TTABLE:
		return table_to_json(L, idx, depth, cv);
	default:
		snprintf(cv->why, sizeof cv->why, "a %s value cannot be JSON", luaL_typename(L, idx));
		return NULL;
	}
	if (!out && !cv->why[0])
		snprintf(cv->why, sizeof cv->why, "out of memory");
	return out;
}

const char *veld_sandbox__name(struct lua_State *L, int idx, const char *what)
{
	size_t n, i;
	const char *s = lua_tolstring(L, idx, &n);
	if (!s)
		luaL_error(L, "%s: a string is needed", what);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			luaL_error(L, "%s: a name holds a NUL or control character", what);
	return s;
}

json_t *veld_sandbox__to_json(struct lua_State *L, int idx, size_t max)
{
	conv cv;
	json_t *out;
	cv.left = cv.max = max;
	cv.why[0] = '\0';
	if (!(out = to_json(L, idx, 0, &cv)))
		luaL_error(L, "%s", cv.why[0] ? cv.why : "out of memory");
	return out;
}

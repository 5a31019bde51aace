/*
** form.c — the form engine: a form script in a sandbox, seen from C.
**
** A form is a Lua script (scripts/forms/NAME.lua, or a file the office
** publishes) that calls form { ... } with its fields, rules and computed
** values; docs/forms.md describes the language.  This file owns one sandbox
** per loaded form.  Loading runs the prelude (prelude.lua: the DSL, the
** messages and the rules' side of the engine, embedded at build time), then
** the form script, then asks the engine what was declared and compiles the
** declarations into C (engine.c).  Form-author mistakes come back as
** "name.lua:LINE: message" with VELD_EINVALID.
**
** Records cross this boundary as parsed JSON objects: field paths the way
** the store keeps them ("huisvesting.score", "acties.<item id>.status"),
** nested objects, or both; "_form_version" is the record's version, other
** top-level "_" members are not fields.  engine_read.c reads a record into
** the typed table `r` (types, visibility, required fields; unknown paths
** and folding are engine_input.c's) and the prelude runs the computed
** values and the rules on it.  Every operation runs in one budgeted,
** protected call into the sandbox; a script that hits a limit leaves a
** spent state, and the next operation loads the form afresh from its
** source (which the handle keeps).
**
** What the engine returns is data produced by guest code: it is converted
** with veld_sandbox__to_json, which accepts plain JSON values only.
*/
#include "scripts.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORM_SOURCE_MAX  ((int64_t)1 << 20) /* bytes of a form script */

struct veld_form {
	veld_sandbox *sb;
	veld_sandbox_limits lim;
	char *chunk;        /* "name.lua": messages and the chunk name */
	char *expect;       /* the name the script must declare, or NULL */
	char *source;
	size_t len;
	int engine;         /* registry reference to the engine table */
	veld_decls *decls;  /* its declarations, compiled (engine.c) */
	char *name;
	char *compartment;
	char *label;
	int version;
	int previous;       /* the form asks for the previous record (ctx.vorige) */
	veld_err err;
};

/* ---- loading ------------------------------------------------------------------------ */

static int host_array(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	veld_sandbox__mark_array(L, 1);
	return 1;
}

/* where(level) -> "name.lua:12" of the function `level` levels up. */
static int host_where(lua_State *L)
{
	int level = (int)luaL_checkinteger(L, 1);
	lua_Debug ar;
	if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
		lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
	else
		lua_pushliteral(L, "?");
	return 1;
}

typedef struct open_ctx {
	veld_form *f;
	int ref;
} open_ctx;

static int open_prelude(lua_State *L)
{
	open_ctx *oc = lua_touserdata(L, 1);
	const veld_embedded *p = &veld_embedded__prelude;
	if (luaL_loadbufferx(L, (const char *)p->src, p->len, "=prelude.lua", "t") != LUA_OK)
		return lua_error(L);
	lua_createtable(L, 0, 4);
	lua_pushcfunction(L, host_array);
	lua_setfield(L, -2, "array");
	lua_pushcfunction(L, host_where);
	lua_setfield(L, -2, "where");
	lua_pushinteger(L, VELD_FORM_MESSAGE_MAX);
	lua_setfield(L, -2, "message_max");
	lua_pushinteger(L, VELD_ENGINE_PATH_BYTES);
	lua_setfield(L, -2, "path_max");
	lua_pushinteger(L, VELD_TEXT_MAX);
	lua_setfield(L, -2, "text_max");
	lua_call(L, 1, 1);
	luaL_checktype(L, -1, LUA_TTABLE);
	oc->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* Each operation leaves young garbage only (the record's tables) beside
	** the long-lived form: the generational collector does not mark the
	** form again and again.  The memory cap is the allocator's, unchanged. */
	lua_gc(L, LUA_GCGEN, 0, 0);
	return 0;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

typedef struct finish_ctx {
	veld_form *f;
	char name[128];
	char compartment[128];
	char label[256];
	lua_Integer version;
	int previous;
} finish_ctx;

static int open_finish(lua_State *L)
{
	finish_ctx *fc = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, fc->f->engine);
	lua_getfield(L, -1, "finish");
	lua_call(L, 0, 5);
	snprintf(fc->name, sizeof fc->name, "%s", veld_sandbox__name(L, -5, "form name"));
	fc->version = luaL_checkinteger(L, -4);
	snprintf(fc->compartment, sizeof fc->compartment, "%s", veld_sandbox__name(L, -3, "compartment"));
	snprintf(fc->label, sizeof fc->label, "%s", luaL_checkstring(L, -2));
	fc->previous = lua_toboolean(L, -1);
	return 0;
}

/* Fresh sandbox, prelude, form script.  On failure the message is in f->err. */
static int form_open(veld_form *f)
{
	open_ctx oc = {f, LUA_NOREF};
	finish_ctx fc;
	int rc;

	memset(&fc, 0, sizeof fc);
	fc.f = f;
	rc = veld_sandbox__reset(f->sb);
	if (rc == VELD_OK)
		rc = veld_sandbox__ccall(f->sb, open_prelude, &oc);
	if (rc != VELD_OK) {
		rc = veld_err__set(&f->err, VELD_ERROR, "cannot start the form engine: %s",
		                   veld_sandbox__errmsg(f->sb));
		goto done;
	}
	f->engine = oc.ref;
	rc = veld_sandbox__load(f->sb, f->chunk, f->source, f->len);
	if (rc == VELD_OK)
		rc = veld_sandbox__call(f->sb, 0, 0);
	if (rc == VELD_OK)
		rc = veld_sandbox__ccall(f->sb, open_finish, &fc);
	if (rc != VELD_OK) {
		/* The script's own mistakes are "input rejected". */
		rc = veld_err__set(&f->err, rc == VELD_ERROR ? VELD_ERROR : VELD_EINVALID, "%s",
		                   veld_sandbox__errmsg(f->sb));
		goto done;
	}
	veld_engine__free(f->decls);
	f->decls = NULL;
	if ((rc = veld_engine__compile(&f->decls, f->sb, f->engine, &f->err)) != VELD_OK)
		goto done;
	if (f->expect && strcmp(f->expect, fc.name) != 0) {
		rc = veld_err__set(&f->err, VELD_EINVALID, "%s: declares form '%s', expected '%s'",
		                   f->chunk, fc.name, f->expect);
		goto done;
	}
	if (fc.version > 1000000) {
		rc = veld_err__set(&f->err, VELD_EINVALID, "%s: version %lld is out of range", f->chunk,
		                   (long long)fc.version);
		goto done;
	}
	if (!f->name) {
		/* First load: remember what was declared.  A reload declares the same. */
		f->name = dup_str(fc.name);
		f->compartment = dup_str(fc.compartment);
		f->label = dup_str(fc.label);
		f->version = (int)fc.version;
		f->previous = fc.previous;
		if (!f->name || !f->compartment || !f->label) {
			rc = veld_err__set(&f->err, VELD_ERROR, "out of memory");
			goto done;
		}
	}
done:
	return rc;
}

/* A state a limit stopped (or none yet) is replaced before it is used again. */
static int form_ready(veld_form *f)
{
	if (veld_sandbox__spent(f->sb) || !veld_sandbox__state(f->sb))
		return form_open(f);
	return VELD_OK;
}

void veld_form__free(veld_form *f)
{
	if (!f)
		return;
	veld_engine__free(f->decls);
	veld_sandbox__free(f->sb);
	free(f->chunk);
	free(f->expect);
	free(f->source);
	free(f->name);
	free(f->compartment);
	free(f->label);
	free(f);
}

int veld_form__load(veld_form **out, const char *name, const char *source, size_t len,
                    const veld_sandbox_limits *limits, veld_err *err)
{
	veld_form *f = NULL;
	const char *base = name ? name : "form";
	int rc = VELD_OK;

	*out = NULL;
	f = calloc(1, sizeof *f);
	if (!f) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	if (limits)
		f->lim = *limits;
	f->engine = LUA_NOREF;
	f->chunk = malloc(strlen(base) + 5);
	f->source = malloc(len + 1);
	f->expect = name ? dup_str(name) : NULL;
	if (!f->chunk || !f->source || (name && !f->expect) ||
	    veld_sandbox__new(&f->sb, &f->lim) != VELD_OK) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	sprintf(f->chunk, "%s.lua", base);
	memcpy(f->source, source, len);
	f->source[len] = '\0';
	f->len = len;
	rc = form_open(f);
	if (rc != VELD_OK)
		veld_err__set(err, rc, "%s", f->err.msg);
done:
	if (rc != VELD_OK) {
		veld_form__free(f);
		f = NULL;
	}
	*out = f;
	return rc;
}

int veld_form__load_file(veld_form **out, const veld_os *os, const char *path,
                         const veld_sandbox_limits *limits, veld_err *err)
{
	const char *base = strrchr(path, '/');
	char name[128];
	char *buf = NULL;
	size_t n, len = 0;
	int rc;

	*out = NULL;
	base = base ? base + 1 : path;
	n = strlen(base);
	if (n < 5 || n - 4 >= sizeof name || strcmp(base + n - 4, ".lua") != 0)
		return veld_err__set(err, VELD_EINVALID, "%s: a form file is named NAME.lua", path);
	memcpy(name, base, n - 4);
	name[n - 4] = '\0';
	if ((rc = veld_sandbox__read_file(&buf, &len, os, path, FORM_SOURCE_MAX, "form", err)) == VELD_OK)
		rc = veld_form__load(out, name, buf, len, limits, err);
	free(buf);
	return rc;
}

int veld_form__shipped(size_t i, const char **name, const char **source, size_t *len)
{
	size_t n = 0;
	while (veld_embedded__forms[n].name)
		n++;
	if (i >= n)
		return 0;
	*name = veld_embedded__forms[i].name;
	*source = (const char *)veld_embedded__forms[i].src;
	*len = veld_embedded__forms[i].len;
	return 1;
}

int veld_form__load_shipped(veld_form **out, const char *name,
                            const veld_sandbox_limits *limits, veld_err *err)
{
	const char *n, *src;
	size_t i, len;
	*out = NULL;
	for (i = 0; veld_form__shipped(i, &n, &src, &len); i++)
		if (strcmp(n, name) == 0)
			return veld_form__load(out, name, src, len, limits, err);
	return veld_err__set(err, VELD_ENOTFOUND, "no shipped form named '%s'", name);
}

const char *veld_form__name(const veld_form *f) { return f->name; }
const char *veld_form__compartment(const veld_form *f) { return f->compartment; }
const char *veld_form__label(const veld_form *f) { return f->label; }
int veld_form__version(const veld_form *f) { return f->version; }
int veld_form__previous(const veld_form *f) { return f->previous; }
const char *veld_form__errmsg(const veld_form *f) { return f ? f->err.msg : "out of memory"; }

/* ---- running the engine ------------------------------------------------------------ */

typedef struct op_ctx {
	veld_form *f;
	const char *what;       /* engine function */
	json_t *fields;         /* the caller's record (parsed; borrowed) */
	json_t *ctx;            /* the caller's context (parsed), or NULL */
	const json_t *written;  /* a put's flat paths (borrowed), or NULL */
	json_t *folded[2];      /* the record, its "vorige", folded when they had to be */
	json_t *unknown;        /* the record's unknown paths, when it has any */
	int rc;                 /* input refused inside the call (message in f->err) */
	json_int_t version;     /* -1: none */
	json_t *result;
	json_t *computed;       /* check: the computed values, or NULL */
	char computed_why[160]; /* check: why they could not be converted */
} op_ctx;

/* Push the typed record of `in` (folding it into oc->folded[slot] first
** when it is in the store's flat form); VELD_EINVALID in oc->rc, nothing
** pushed, when it cannot be folded. */
static int read_record(lua_State *L, op_ctx *oc, const json_t *in, int slot, int errors, int *unknown)
{
	veld_form *f = oc->f;
	const json_t *written = slot == 0 ? oc->written : NULL;
	if (veld_engine__read(L, f->decls, in, errors, unknown, written) == 0)
		return VELD_OK;
	if (!(oc->folded[slot] = veld_engine__fold(in, &f->err)))
		return oc->rc = f->err.code;
	veld_engine__read(L, f->decls, oc->folded[slot], errors, unknown, written);
	return VELD_OK;
}

/* The record as read: folded or as given. */
static const json_t *record_of(const op_ctx *oc)
{
	return oc->folded[0] ? oc->folded[0] : oc->fields;
}

/* Push the context: the caller's members, "vorige" read like a record (its
** failures dropped), "vandaag" defaulted to today. */
static int push_context(lua_State *L, op_ctx *oc)
{
	veld_form *f = oc->f;
	const char *k;
	json_t *v;
	int t, has_today = 0;
	if (!oc->ctx) {
		lua_pushnil(L);
		return VELD_OK;
	}
	lua_createtable(L, 0, (int)json_object_size(oc->ctx) + 1);
	t = lua_gettop(L);
	json_object_foreach(oc->ctx, k, v) {
		if (strcmp(k, "vorige") == 0 && json_is_object(v)) {
			if (read_record(L, oc, v, 1, 0, NULL) != VELD_OK)
				return oc->rc;
		} else {
			if (strcmp(k, "vandaag") == 0 && json_is_string(v))
				has_today = 1;
			veld_sandbox__push_json_at(L, v, 1);
		}
		lua_setfield(L, t, k);
	}
	if (!has_today) {
		char d[16];
		veld_sandbox__today(d, sizeof d, f->lim.os ? f->lim.os : veld_os_default());
		lua_pushstring(L, d);
		lua_setfield(L, t, "vandaag");
	}
	return VELD_OK;
}

static int convert_computed(lua_State *L)
{
	op_ctx *oc = lua_touserdata(L, 1);
	oc->computed = veld_sandbox__to_json(L, 2, VELD_FORM_RESULT_MAX);
	return 0;
}

/* check: the computed values, converted before any rule runs (what compute
** would return).  A value that is no JSON fails the compute half only. */
static int on_computed(lua_State *L)
{
	op_ctx *oc = lua_touserdata(L, lua_upvalueindex(1));
	lua_settop(L, 1);
	lua_pushcfunction(L, convert_computed);
	lua_pushlightuserdata(L, oc);
	lua_pushvalue(L, 1);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		snprintf(oc->computed_why, sizeof oc->computed_why, "%s",
		         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "cannot convert");
		json_decref(oc->computed);
		oc->computed = NULL;
		if (veld_sandbox__spent(oc->f->sb))
			lua_error(L); /* a limit, not the value: the whole call stops */
		lua_pop(L, 1);
	}
	return 0;
}

/* engine.<what>(r, c [, errors [, on_computed]]) with the record read here. */
static int run_op(lua_State *L)
{
	op_ctx *oc = lua_touserdata(L, 1);
	veld_form *f = oc->f;
	int check = strcmp(oc->what, "check") == 0;
	int validate = check || strcmp(oc->what, "validate") == 0;
	int errors = 0, nargs = 2, unknown = 0;
	if (validate) {
		lua_newtable(L);
		veld_sandbox__mark_array(L, -1);
		errors = lua_gettop(L);
	}
	if (strcmp(oc->what, "unknown") == 0) {
		if (read_record(L, oc, oc->fields, 0, 0, &unknown) != VELD_OK)
			return 0;
		oc->result = unknown ? veld_engine__unknown(f->decls, record_of(oc)) : json_array();
		if (!oc->result)
			luaL_error(L, "out of memory");
		return 0;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, f->engine);
	lua_getfield(L, -1, oc->what);
	if (read_record(L, oc, oc->fields, 0, errors, &unknown) != VELD_OK)
		return 0;
	/* Unknown fields are errors only in a record of this version (or none). */
	if (validate && unknown && (oc->version < 0 || oc->version == f->version)) {
		if (!(oc->unknown = veld_engine__unknown(f->decls, record_of(oc))))
			luaL_error(L, "out of memory");
		veld_engine__push_unknown(L, f->decls, oc->unknown, errors);
	}
	if (push_context(L, oc) != VELD_OK)
		return 0;
	if (validate) {
		lua_pushvalue(L, errors);
		nargs++;
	}
	if (check) {
		lua_pushlightuserdata(L, oc);
		lua_pushcclosure(L, on_computed, 1);
		nargs++;
	}
	lua_call(L, nargs, 1);
	oc->result = veld_sandbox__to_json(L, -1, VELD_FORM_RESULT_MAX);
	return 0;
}

/* Run engine.<what> on parsed inputs (borrowed) and leave its JSON result in
** oc.  `ctx` NULL with with_context: an empty context.  `written`: the
** paths a put writes (validate and check), or NULL. */
static int form_op_json(op_ctx *oc, veld_form *f, const char *what, json_t *fields, json_t *ctx,
                        int with_context, const json_t *written)
{
	int rc = VELD_OK;
	json_t *v;

	memset(oc, 0, sizeof *oc);
	oc->f = f;
	oc->what = what;
	oc->fields = fields;
	oc->written = written;
	veld_err__clear(&f->err);
	if (!json_is_object(fields))
		return veld_err__set(&f->err, VELD_EINVALID, "%s: the record is not a JSON object", f->name);
	v = json_object_get(fields, "_form_version");
	oc->version = json_is_integer(v) ? json_integer_value(v) : -1;
	if (with_context) {
		oc->ctx = ctx ? json_incref(ctx) : json_object();
		if (!json_is_object(oc->ctx)) {
			rc = veld_err__set(&f->err, VELD_EINVALID, "%s: the context is not a JSON object", f->name);
			goto done;
		}
	}
	rc = form_ready(f);
	if (rc == VELD_OK) {
		rc = veld_sandbox__ccall(f->sb, run_op, oc);
		if (rc != VELD_OK)
			rc = veld_err__set(&f->err, VELD_ERROR, "%s", veld_sandbox__errmsg(f->sb));
		else if (oc->rc != VELD_OK)
			rc = oc->rc;
	}
done:
	json_decref(oc->ctx);
	json_decref(oc->folded[0]);
	json_decref(oc->folded[1]);
	json_decref(oc->unknown);
	oc->ctx = oc->folded[0] = oc->folded[1] = oc->unknown = NULL;
	oc->fields = NULL;
	if (rc != VELD_OK) {
		json_decref(oc->result);
		json_decref(oc->computed);
		oc->result = oc->computed = NULL;
	}
	return rc;
}

/* Parse the inputs, run engine.<what> and leave its JSON result in oc. */
static int form_op(op_ctx *oc, veld_form *f, const char *what, const char *fields_json,
                   const char *context_json, int with_context)
{
	json_error_t jerr;
	json_t *fields, *ctx = NULL;
	int rc;

	fields = json_loads(fields_json ? fields_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(fields)) {
		memset(oc, 0, sizeof *oc);
		rc = veld_err__set(&f->err, VELD_EINVALID, "%s: the record is not a JSON object%s%s",
		                   f->name, fields ? "" : ": ", fields ? "" : jerr.text);
		json_decref(fields);
		return rc;
	}
	if (with_context) {
		ctx = json_loads(context_json ? context_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
		if (!ctx)
			ctx = json_null(); /* not an object: refused as such */
	}
	rc = form_op_json(oc, f, what, fields, ctx, with_context, NULL);
	json_decref(fields);
	json_decref(ctx);
	return rc;
}

static int dump(char **out, veld_form *f, json_t *v, size_t flags)
{
	*out = json_dumps(v, flags | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	return *out ? VELD_OK : veld_err__set(&f->err, VELD_ERROR, "out of memory");
}

/* The verdict of a validate or check run (form_op's rc and oc): *errors the
** list (NULL when the script failed); for a check (`values` not NULL)
** *values the computed values (NULL unless valid and computable). */
static int check_finish(json_t **errors, json_t **values, veld_form *f, op_ctx *oc, int rc)
{
	*errors = NULL;
	if (values)
		*values = NULL;
	if (rc == VELD_OK && !json_is_array(oc->result))
		rc = veld_err__set(&f->err, VELD_ERROR, "%s: validation returned no list", f->chunk);
	if (rc == VELD_OK && json_array_size(oc->result) > 0) {
		rc = VELD_EINVALID;
		veld_err__set(&f->err, rc, "%s: %zu field(s) fail validation", f->name,
		              json_array_size(oc->result));
	} else if (rc == VELD_OK && values && !oc->computed) {
		/* as compute says it: the sandbox's message, chunk first */
		size_t n = strlen(f->chunk);
		if (strncmp(oc->computed_why, f->chunk, n) == 0 && oc->computed_why[n] == ':')
			veld_err__set(&f->err, VELD_ERROR, "%s", oc->computed_why);
		else
			veld_err__set(&f->err, VELD_ERROR, "%s: %s", f->chunk, oc->computed_why);
	} else if (rc == VELD_OK && values) {
		*values = oc->computed;
		oc->computed = NULL;
	}
	if (rc == VELD_OK || rc == VELD_EINVALID) {
		*errors = oc->result;
		oc->result = NULL;
	}
	json_decref(oc->result);
	json_decref(oc->computed);
	oc->result = oc->computed = NULL;
	return rc;
}

int veld_form__check_put(json_t **errors, json_t **values, veld_form *f, json_t *fields, json_t *context,
                         const json_t *written)
{
	op_ctx oc;
	int rc = form_op_json(&oc, f, values ? "check" : "validate", fields, context, 1, written);
	return check_finish(errors, values, f, &oc, rc);
}

int veld_form__validate_json(json_t **errors, veld_form *f, json_t *fields, json_t *context)
{
	return veld_form__check_put(errors, NULL, f, fields, context, NULL);
}

int veld_form__validate(char **errors_json, veld_form *f, const char *fields_json,
                        const char *context_json)
{
	op_ctx oc;
	json_t *errors;
	int rc;
	*errors_json = NULL;
	rc = form_op(&oc, f, "validate", fields_json, context_json, 1);
	rc = check_finish(&errors, NULL, f, &oc, rc);
	if (errors && dump(errors_json, f, errors, JSON_COMPACT | JSON_PRESERVE_ORDER) != VELD_OK)
		rc = VELD_ERROR;
	json_decref(errors);
	return rc;
}

int veld_form__check_json(json_t **errors, json_t **values, veld_form *f, json_t *fields, json_t *context)
{
	return veld_form__check_put(errors, values, f, fields, context, NULL);
}

int veld_form__check(char **errors_json, char **values_json, veld_form *f,
                     const char *fields_json, const char *context_json)
{
	op_ctx oc;
	json_t *errors, *values;
	int rc;
	*errors_json = NULL;
	*values_json = NULL;
	rc = form_op(&oc, f, "check", fields_json, context_json, 1);
	rc = check_finish(&errors, &values, f, &oc, rc);
	if (errors && dump(errors_json, f, errors, JSON_COMPACT | JSON_PRESERVE_ORDER) != VELD_OK)
		rc = VELD_ERROR;
	else if (values && dump(values_json, f, values, JSON_COMPACT) != VELD_OK) {
		free(*errors_json);
		*errors_json = NULL;
		rc = VELD_ERROR;
	}
	json_decref(errors);
	json_decref(values);
	return rc;
}

/* form_op, and its result as compact JSON text in *out. */
static int form_op_text(char **out, veld_form *f, const char *what, const char *fields_json,
                        const char *context_json, int with_context)
{
	op_ctx oc;
	int rc;
	*out = NULL;
	rc = form_op(&oc, f, what, fields_json, context_json, with_context);
	if (rc == VELD_OK)
		rc = dump(out, f, oc.result, JSON_COMPACT);
	json_decref(oc.result);
	return rc;
}

int veld_form__compute(char **values_json, veld_form *f, const char *fields_json,
                       const char *context_json)
{
	return form_op_text(values_json, f, "compute", fields_json, context_json, 1);
}

int veld_form__unknown_json(char **paths_json, veld_form *f, const char *fields_json)
{
	return form_op_text(paths_json, f, "unknown", fields_json, NULL, 0);
}

int veld_form__canonical(veld_form *f, json_t *flat)
{
	if (veld_engine__canonical(f->decls, flat) != VELD_OK)
		return veld_err__set(&f->err, VELD_ERROR, "out of memory");
	return VELD_OK;
}

static int run_schema(lua_State *L)
{
	op_ctx *oc = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, oc->f->engine);
	lua_getfield(L, -1, "schema");
	lua_call(L, 0, 1);
	oc->result = veld_sandbox__to_json(L, -1, VELD_FORM_RESULT_MAX);
	return 0;
}

int veld_form__schema_json(char **out, veld_form *f)
{
	op_ctx oc;
	int rc = VELD_OK;
	*out = NULL;
	memset(&oc, 0, sizeof oc);
	oc.f = f;
	veld_err__clear(&f->err);
	rc = form_ready(f);
	if (rc == VELD_OK && veld_sandbox__ccall(f->sb, run_schema, &oc) != VELD_OK)
		rc = veld_err__set(&f->err, VELD_ERROR, "%s", veld_sandbox__errmsg(f->sb));
	if (rc == VELD_OK)
		rc = dump(out, f, oc.result, JSON_INDENT(2));
	json_decref(oc.result);
	return rc;
}

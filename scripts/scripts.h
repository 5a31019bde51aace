/*
** scripts.h — the internal interface of scripts/ (the one header of this folder).
**
** scripts/ runs guest code: forms (and later reports) written in Lua 5.4 by
** the office, shipped with the library or received through sync.  A script
** is a guest (docs/design.md, invariant 8): it cannot touch files, the network or
** the OS, cannot exhaust memory or CPU, and its failure is a message with
** file and line, never a crash.
**
**   sandbox.c  Lua states: a memory-capped allocator, an instruction
**              budget that sticks once spent, a wall-clock backstop, a
**              recursion limit, protected calls
**   sandbox_lib.c  the allowlist of libraries a state opens, and guards
**              around the C library functions where no count hook fires
**              (their work is charged to the budget before they start)
**   sandbox_json.c  JSON <-> Lua, the way out bounded in bytes as it is
**              built; names C reads from a script; what messages quote
**   form.c     the form engine: loads a form script in a sandbox, exports its
**              schema as JSON, validates records and computes values
**   records.c  records through their forms: put, validate, resolve,
**              import; the office's check of records that arrive
**   publish.c  the versions of a form or report a store holds, and the
**              office's publishing of new ones
**   engine.c   the form's declarations read into C (veld_decls)
**   engine_read.c  a record read against them: typed, visible, required
**   engine_input.c  a record as plain JSON: its paths folded into groups,
**              the paths the form does not declare, one value checked
**   prelude.lua  the Lua half of the form engine (the DSL), embedded
**   forms/NAME.lua  the shipped forms, embedded at build time (embed.cmake)
**   report.c   reports: a run over the store, read-only, in a sandbox with
**              a report's limits; veld_report (by name), veld_report_file
**   report_api.c    what a report script sees: records, each, tally, case,
**              schema, nl.*; rows as Lua tables, tallies counted in C
**   report_query.c  a report's query read from the script and checked;
**              whether a value passes its conditions
**   report_scan.c   the scans: SQL built from checked names, the shown
**              values of rows (tokens of jansson values, parsed once)
**   render.c   a report's result checked and rendered as text, CSV, JSON
**   render_html.c   the same as one HTML page with inline SVG charts
**   reports/NAME.lua  the shipped reports, embedded like the forms
**
** scripts/ depends on core/ (core.h, veld.h); core/ never includes this file.
** Names: veld_sandbox__*, veld_form__*, veld_engine__*, veld_report__*,
** veld_query__* and veld_scan__* for functions shared across files; the
** sections marked "inside the sandbox" and "inside the form engine" are for
** the files they name, no others.
** JSON crosses this interface as text; every `char **out` result is
** malloc'd and freed by the caller with free() (or veld_free()).
*/
#ifndef VELD_SCRIPTS_H
#define VELD_SCRIPTS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct lua_State;

/* ---- limits (docs/forms.md, "Limits", lists them all) ---------------------- */

/* Defaults for zero fields of veld_sandbox_limits: a form's state. */
#define VELD_SANDBOX_MEMORY       ((size_t)16 << 20) /* bytes held by one state */
#define VELD_SANDBOX_INSTRUCTIONS 10000000ull        /* per call into the state */
#define VELD_SANDBOX_WALL_MS      2000u              /* per call: the backstop */
#define VELD_SANDBOX_DEPTH        200u               /* Lua call levels */

/* Defaults of veld_report_limits: a report scans many records, so its
** sandbox is larger than a form's, but still bounded. */
#define VELD_REPORT_MEMORY       ((size_t)256 << 20) /* bytes held by the state */
#define VELD_REPORT_INSTRUCTIONS 1000000000ull       /* per run */
#define VELD_REPORT_WALL_MS      60000u              /* per run */
#define VELD_REPORT_ROWS         50000000ull         /* records read by the API, per run */

/* What C builds from a script's values is bounded as it grows, outside the
** state's memory cap: a string a script holds once may be referenced many
** times.  Past a bound the call fails (VELD_EINVALID, naming the limit). */
#define VELD_FORM_RESULT_MAX   ((size_t)1 << 20)  /* JSON of a form call's result: its failures,
                                                  ** its computed values (each conversion) */
#define VELD_FORM_MESSAGE_MAX  2048               /* bytes of a failure's message from a rule
                                                  ** (longer ones are cut, "…" marking the cut) */
#define VELD_REPORT_OUTPUT_MAX ((size_t)64 << 20) /* a report's result as JSON, and each
                                                  ** rendering of it (text, CSV, JSON, HTML) */
#define VELD_ECHO_MAX          40                 /* bytes of a path or name a message quotes
                                                  ** (cut, "…"); values are never quoted */

/* `s` as a message quotes it (sandbox_json.c): at most VELD_ECHO_MAX bytes, cut
** on a character boundary with "…" after the cut; returns `buf`. */
#define VELD_ECHO_BUF (VELD_ECHO_MAX + 4)
const char *veld_sandbox__echo(char buf[VELD_ECHO_BUF], const char *s);
/* A size as a limit's message gives it: "64 MiB", "512 KiB", "100 bytes". */
const char *veld_sandbox__size(char buf[32], size_t bytes);

/* ---- the sandbox (sandbox.c) --------------------------------------------- */

/* Flags. */
#define VELD_SANDBOX_COROUTINES 0x1 /* also open `coroutine` (off by default:
                                    ** docs/design.md allows base, string, table,
                                    ** math and utf8 only) */

typedef struct veld_sandbox_limits {
	size_t memory;          /* 0: VELD_SANDBOX_MEMORY */
	uint64_t instructions;  /* 0: VELD_SANDBOX_INSTRUCTIONS */
	uint32_t wall_ms;       /* 0: VELD_SANDBOX_WALL_MS */
	unsigned depth;         /* 0: VELD_SANDBOX_DEPTH */
	unsigned flags;         /* VELD_SANDBOX_* */
	const veld_os *os;      /* clock; NULL: veld_os_default() */
} veld_sandbox_limits;

/* Why the last call was stopped (veld_sandbox__stop_reason). */
#define VELD_SANDBOX_STOP_NONE         0
#define VELD_SANDBOX_STOP_INSTRUCTIONS 1 /* budget spent (work in C is charged too) */
#define VELD_SANDBOX_STOP_TIME         2 /* wall-clock deadline passed */
#define VELD_SANDBOX_STOP_MEMORY       3 /* the allocator refused beyond the cap */
#define VELD_SANDBOX_STOP_CLOSING      4 /* the state is being closed */

typedef struct veld_sandbox veld_sandbox;

/*
** A sandbox handle owns at most one Lua state at a time.  It has no global
** state; different handles are independent; one thread at a time per handle.
** Functions return VELD_OK, VELD_EINVALID when the script failed (syntax,
** runtime error, a limit), or VELD_ERROR when the host failed (out of
** memory); the message ("name.lua:12: ...") is on the handle.
*/
int veld_sandbox__new(veld_sandbox **out, const veld_sandbox_limits *limits);
void veld_sandbox__free(veld_sandbox *sb);                 /* accepts NULL */
const char *veld_sandbox__errmsg(const veld_sandbox *sb); /* "" if none */
int veld_sandbox__stop_reason(const veld_sandbox *sb);
size_t veld_sandbox__memory(const veld_sandbox *sb);      /* bytes held now */

/* Close the current state (bounded: nothing a script left behind runs) and
** open a fresh one with the allowlist.  Nothing survives from one state to
** the next. */
int veld_sandbox__reset(veld_sandbox *sb);

/*
** Run one script in a fresh state (reset first): compile `src` as text with
** chunk name `name` (messages read "name:line: ..."), call it with a fresh
** budget, and return its first result as compact JSON with sorted keys in
** *result_json ("null" for none).  The state is closed afterwards.
*/
int veld_sandbox__run(char **result_json, veld_sandbox *sb, const char *name,
                      const char *src, size_t len);

/* ---- for engines built on the sandbox (form.c, reports) ---- */

/* The current state (NULL before reset).  Only for use with the calls below:
** every call into it that can allocate or run script code must happen inside
** veld_sandbox__call or veld_sandbox__ccall. */
struct lua_State *veld_sandbox__state(veld_sandbox *sb);
/* 1 if a limit stopped the state: it must be reset before the next call. */
int veld_sandbox__spent(const veld_sandbox *sb);
/* Milliseconds on the clock deadlines are measured by: a monotonic clock
** for veld_os_default(), the table's xClockMs for any other table. */
int64_t veld_sandbox__now(const veld_os *os);
/* Today's local date by the OS table's wall clock, "YYYY-MM-DD" (a form's
** ctx.vandaag, a report's `today`); `n` at least 11. */
void veld_sandbox__today(char *out, size_t n, const veld_os *os);

/* Compile `src` (text only) as chunk `name`; on success the function is
** pushed.  Refuses binary chunks and the name _ENV (see sandbox.c). */
int veld_sandbox__load(veld_sandbox *sb, const char *name, const char *src, size_t len);

/* A script file (a form or a report an author is writing) read whole, NUL
** added: VELD_ENOTFOUND when it cannot be opened ("no <what> file <path>:
** <the OS's reason>"), VELD_EINVALID when it is unreadable or larger than
** `max` bytes. */
int veld_sandbox__read_file(char **out, size_t *len, const veld_os *os, const char *path, int64_t max,
                            const char *what, veld_err *err);

/* lua_pcall(L, nargs, nresults) with a fresh budget and deadline.  On failure
** the function and arguments are popped and the message is on the handle. */
int veld_sandbox__call(veld_sandbox *sb, int nargs, int nresults);

/* Call the host function `fn` protected and budgeted, with `ud` as its only
** argument (a light userdata); `fn` returns 0 results.  Host code that
** pushes values or calls script functions (lua_call) runs this way. */
int veld_sandbox__ccall(veld_sandbox *sb, int (*fn)(struct lua_State *), void *ud);

/* JSON <-> Lua, only inside veld_sandbox__ccall (they raise Lua errors).
** Objects become tables, arrays sequences, null nil.  Lua -> JSON: string
** keys make an object, keys 1..n an array, an empty table an object unless
** marked with veld_sandbox__mark_array; cycles, functions, strings that
** are not UTF-8 or hold a NUL byte raise an error, and so does a value
** whose compact JSON text would pass `max` bytes (counted as the value is
** converted: "result exceeds 1 MiB as JSON").  The result is a new
** reference. */
void veld_sandbox__push_json(struct lua_State *L, const json_t *v);
/* The same for a value that sits `depth` levels down in what is being
** built, so the nesting limit counts from the top. */
void veld_sandbox__push_json_at(struct lua_State *L, const json_t *v, int depth);
/* The same with flags: VELD_SANDBOX_WHOLE_REALS pushes a real that holds a
** whole number as a Lua integer (2.0 as 2, the way Lua reads the number's
** shortest text), as a report's field scans see numbers. */
#define VELD_SANDBOX_WHOLE_REALS 0x1
void veld_sandbox__push_json_with(struct lua_State *L, const json_t *v, int depth, unsigned flags);
json_t *veld_sandbox__to_json(struct lua_State *L, int idx, size_t max);
/* The string at `idx` as C reads a name or a path: raises "what: ..." when
** it is no string, or holds a NUL (C would read it cut short there) or
** another control character.  Only inside veld_sandbox__ccall. */
const char *veld_sandbox__name(struct lua_State *L, int idx, const char *what);
void veld_sandbox__mark_array(struct lua_State *L, int idx);

/* ---- inside the sandbox (sandbox.c <-> sandbox_lib.c, sandbox_json.c only) ---- */

/* Open the allowlisted libraries, guarded, into a fresh state (sandbox_lib.c;
** `flags`: VELD_SANDBOX_*).  Runs inside the protected setup call. */
void veld_sandbox__open_libs(struct lua_State *L, unsigned flags);
/* Register the JSON array marker in a fresh state (sandbox_json.c). */
void veld_sandbox__open_json(struct lua_State *L);
/* Charge `units` of work done in C to the running call's budget (checking
** the clock too) before doing it; raises the sticky stop when it does not fit. */
void veld_sandbox__charge(struct lua_State *L, double units);
/* Set the count hook on a new thread: every `count` instructions, or every
** instruction when the state is stopped already. */
void veld_sandbox__hook_thread(struct lua_State *co, int count);
/* The limits of the handle that owns L (valid while the handle lives). */
const veld_sandbox_limits *veld_sandbox__limits(struct lua_State *L);
/* Remember where, `level` up, error() raised a non-string value. */
void veld_sandbox__error_at(struct lua_State *L, int level);
/* 1 if Lua source `s` names _ENV as a word: refused (see sandbox.c). */
int veld_sandbox__names_env(const char *s, size_t n);

/* ---- forms (form.c) -------------------------------------------------------- */

typedef struct veld_form veld_form;

/*
** Load form `name` from Lua source in a fresh sandbox.  `name` is the form's
** name (the file name without ".lua"; NULL takes it from the script); the
** script must declare the same name.  Form-author mistakes (syntax, unknown
** field type, duplicate field, option not a {value, label} pair, missing
** name/version/compartment, ...) fail with VELD_EINVALID and a message
** "name.lua:LINE: ...".  `limits` NULL: the defaults.
*/
int veld_form__load(veld_form **out, const char *name, const char *source, size_t len,
                    const veld_sandbox_limits *limits, veld_err *err);
/* The same from a file (read through `os`, NULL: the default OS table); the
** chunk name is the file's base name. */
int veld_form__load_file(veld_form **out, const veld_os *os, const char *path,
                         const veld_sandbox_limits *limits, veld_err *err);
/* A form shipped with the library (embedded at build time). VELD_ENOTFOUND
** if there is none of that name. */
int veld_form__load_shipped(veld_form **out, const char *name,
                            const veld_sandbox_limits *limits, veld_err *err);
void veld_form__free(veld_form *f); /* accepts NULL */

/* The shipped forms: name and source of the i-th (0-based); 0 past the end.
** The pointers are static. */
int veld_form__shipped(size_t i, const char **name, const char **source, size_t *len);

/* Versions held (publish.c): form `name` of `version` (0: the newest that
** loads), shipped or published by the office; VELD_ENOTFOUND if this store
** holds no such version.  veld_form__get is the same through the store
** handle's cache (records.c): the form stays the cache's, valid until the
** next call that loads a form on the handle. */
int veld_form__load_held(veld_form **out, veld_store *s, const char *name, int version, veld_err *err);
int veld_form__get(veld_form **out, veld_store *s, const char *name, int version, veld_err *err);

/* What the form declared.  Strings live as long as the form. */
const char *veld_form__name(const veld_form *f);
const char *veld_form__compartment(const veld_form *f);
const char *veld_form__label(const veld_form *f);
int veld_form__version(const veld_form *f);
/* Whether the form asks for the previous record of its kind in the case
** (form { previous = true }): the store looks it up only then. */
int veld_form__previous(const veld_form *f);
/* Message of the last failure on this form ("" if none). */
const char *veld_form__errmsg(const veld_form *f);

/*
** The schema as JSON (what an app renders): name, version, compartment,
** label, fields in order (name, type, label, options, required, visible,
** min/max, nested fields), computed value names.  `required` and `visible`
** are true/false, {"when":{"field","op","value"}} for a condition an app
** can evaluate, or {"computed":true} when a script function decides.
** Keys sorted, 2-space indented: the same form gives the same bytes.
*/
int veld_form__schema_json(char **out, veld_form *f);

/*
** Validate a record.  `fields_json`: an object of field path -> value as the
** store keeps them ("huisvesting.score": 2, "acties.<id>.status": "lopend",
** multi-choice values as arrays; nested objects are accepted too).  A
** "_form_version" member names the version the record was written with:
** fields unknown to this version are then errors only if the record claims
** this version.  `context_json` (NULL: none) is an object handed to rules
** and computed values: "vandaag" (YYYY-MM-DD, default today), "vorige" (the
** previous record of the same form in the case, same shape as fields_json)
** and anything a form documents.
** Returns VELD_OK (valid; *errors_json = "[]"), VELD_EINVALID with every
** failure in *errors_json as [{"field":path,"message":Dutch text}, ...] in
** form order, or VELD_ERROR when the script failed (message on the form,
** *errors_json NULL).  Input that is not a JSON object is VELD_EINVALID
** with the message on the form and *errors_json NULL.
*/
int veld_form__validate(char **errors_json, veld_form *f, const char *fields_json,
                        const char *context_json);

/* The computed values as a JSON object {name: value}; decimals are strings
** ("39865.49"), values that cannot be computed are left out. */
int veld_form__compute(char **values_json, veld_form *f, const char *fields_json,
                       const char *context_json);

/* veld_form__validate and veld_form__compute in one pass over the record (a
** put needs both): returns what veld_form__validate returns, with the same
** *errors_json.  When that is VELD_OK, *values_json holds what
** veld_form__compute returns for the same input, or is NULL when computing
** failed (the message veld_form__compute gives is on the form). */
int veld_form__check(char **errors_json, char **values_json, veld_form *f,
                     const char *fields_json, const char *context_json);

/* veld_form__check on parsed input (borrowed; `context` NULL: none), the
** way the store calls it: no text is parsed or printed.  *errors is the
** list (new reference) when the return is VELD_OK or VELD_EINVALID, else
** NULL; *values as veld_form__check's. */
int veld_form__check_json(json_t **errors, json_t **values, veld_form *f, json_t *fields,
                          json_t *context);

/* veld_form__validate on parsed input, the same way: *errors the list (new
** reference) when the return is VELD_OK or VELD_EINVALID, else NULL. */
int veld_form__validate_json(json_t **errors, veld_form *f, json_t *fields, json_t *context);

/* The store's check of a put: veld_form__check_json, or with `values` NULL
** veld_form__validate_json, where `written` (flat paths, borrowed; NULL:
** none) are the paths the put writes: a value it writes to a field that
** is hidden in the record is a failure of that field ("hidden"), not a
** value ignored. */
int veld_form__check_put(json_t **errors, json_t **values, veld_form *f, json_t *fields, json_t *context,
                         const json_t *written);

/* The flat fields `flat` (the store's paths), valid for this form, with
** each number in the one encoding the form gives it: an int field's
** integral real as its integer (veld_engine__canonical).  In place;
** VELD_ERROR: out of memory. */
int veld_form__canonical(veld_form *f, json_t *flat);

/* Paths of the record that this version of the form does not know (fields
** of an older or newer version), as a sorted JSON array.  They are kept by
** the store; the engine only reports them. */
int veld_form__unknown_json(char **paths_json, veld_form *f, const char *fields_json);

/* ---- the form engine's reading of records (engine.c) ------------------------------- */

/* A form's declarations copied out of its Lua state (kinds, bounds, options,
** conditions), valid as long as that state lives. */
typedef struct veld_decls veld_decls;

/* Compile the declarations of the engine (registry reference `engine`, the
** table prelude.lua returns) after the form script ran. */
int veld_engine__compile(veld_decls **out, veld_sandbox *sb, int engine, veld_err *err);
void veld_engine__free(veld_decls *d); /* accepts NULL */

/* The input record as nested groups (new reference): dotted paths split,
** objects merged member by member, nulls absent, top-level "_" members
** dropped.  NULL with VELD_EINVALID in err for a path that is malformed,
** too deep or both a value and a group. */
json_t *veld_engine__fold(const json_t *fields, veld_err *err);

/* In a protected call: push the typed record of `raw` (what rules see);
** its failures in form order go to the list at stack index `errors` as
** {field, message} (0: dropped); *unknown tells whether the input holds
** paths the form does not declare.  `written` (NULL: none) are the flat
** paths a put writes: a value written to a hidden field fails ("hidden").
** Returns 1, pushing nothing, when the input must be folded first
** (veld_engine__fold): the store's flat paths. */
int veld_engine__read(struct lua_State *L, const veld_decls *d, const json_t *raw, int errors, int *unknown,
                      const json_t *written);

/* Paths of `raw` (folded, or read by veld_engine__read without folding)
** that the declarations do not know, sorted (new reference; NULL: out of
** memory). */
json_t *veld_engine__unknown(const veld_decls *d, const json_t *raw);

/* Append an "unknown field" failure to the list at `errors` for each path. */
void veld_engine__push_unknown(struct lua_State *L, const veld_decls *d, const json_t *unknown, int errors);

/* ---- inside the form engine (engine.c, engine_read.c, engine_input.c only) ---- */

/* Integers below are lua_Integer (long long in Lua 5.4's default build; a
** build where they differ fails to compile, as pointers to them are passed). */

#define VELD_ENGINE_PATH_DEPTH   16   /* segments of a field path */
#define VELD_ENGINE_PATH_BYTES   512  /* bytes of a field path */
#define VELD_ENGINE_SEGMENT_MAX  255  /* bytes of one segment */

/* veld_decl.kind: prelude.lua's kinds, in the order of engine.c's names. */
enum { VELD_FIELD_TEXT, VELD_FIELD_INT, VELD_FIELD_DECIMAL, VELD_FIELD_DATE, VELD_FIELD_BOOL,
       VELD_FIELD_CHOICE, VELD_FIELD_MULTI, VELD_FIELD_GROUP };
enum { VELD_COND_TRUE, VELD_COND_FALSE, VELD_COND_FUNC, VELD_COND_WHEN };
enum { VELD_WHEN_EQ, VELD_WHEN_NE, VELD_WHEN_HAS, VELD_WHEN_IN };

/* `required` or `visible`: a constant, a function, or when(field, op, value). */
typedef struct veld_decl_cond {
	int kind;
	int op;            /* VELD_COND_WHEN */
	int ref;           /* VELD_COND_FUNC: the function; VELD_COND_WHEN: the when(...) table */
	int key;           /* VELD_COND_WHEN: the field of the same group it reads (names[key]) */
} veld_decl_cond;

typedef struct veld_option {
	int is_int;
	long long i;       /* a lua_Integer */
	char *s;
	size_t n;
} veld_option;

typedef struct veld_decl veld_decl;

/* The fields of the form, or of a group, in form order. */
typedef struct veld_scope {
	veld_decl *f;
	size_t n;
} veld_scope;

/* One field as declared; strings are the engine's copies (malloc'd). */
struct veld_decl {
	char *name;
	size_t nlen;
	char *label;
	int kind;
	int repeating;
	int ref;           /* the declaration table (messages) */
	int key;           /* its name in the names table */
	veld_decl_cond required, visible;
	int has_min, has_max;
	long long min, max; /* int, decimal (scaled); lua_Integer */
	char dmin[11], dmax[11];
	int scale;
	long long max_length; /* a text's; VELD_TEXT_MAX when the form gives none */
	veld_option *opts;
	size_t nopts;
	veld_scope sub;
};

struct veld_decls {
	veld_scope top;
	int engine;        /* registry reference to the engine table */
	int names;         /* registry reference to the names table */
	int nnames;
};

/* The field of `sc` named k[0..n), looked for from *at on (the next field
** usually comes next); *at moves past it.  NULL if there is none (engine.c). */
const veld_decl *veld_engine__find(const veld_scope *sc, const char *k, size_t n, size_t *at);

/* Members of an object, or elements of an array keyed "1", "2", ... (what a
** Lua table of the array has), nulls left out (engine_input.c). */
typedef struct veld_members {
	const json_t *v;
	void *it;
	size_t i;
	char key[24];
} veld_members;

void veld_engine__members_init(veld_members *m, const json_t *v);
/* The next member: 1 with *k (valid until the next call) and *val; 0 at the end. */
int veld_engine__members_next(veld_members *m, const char **k, json_t **val);

/* What the objects nested in `v` (which sits at path depth `level`) hold:
** VELD_NESTED_VOID when nothing but nulls and such objects (the value folds
** to nothing), VELD_NESTED_DEEP when one sits deeper than a path may be
** (engine_input.c).  0 for a value that is not an object. */
#define VELD_NESTED_VOID 0x1
#define VELD_NESTED_DEEP 0x2
int veld_engine__nested(const json_t *v, int level);

/* One value checked the way prelude.lua does (engine_input.c): an option of
** the choice `f`; an integer (JSON integers, and reals with an integral
** value); a decimal (a number or "25630,67") in units of 10^-scale; a date
** "YYYY-MM-DD" of the calendar, year >= 1000.  1 if it is one, with *out. */
int veld_engine__is_option(const veld_decl *f, const json_t *v);
int veld_engine__int_of(const json_t *v, long long *out);
int veld_engine__decimal_of(const json_t *v, int scale, long long *out);
int veld_engine__date_ok(const json_t *v);
/* Characters of a UTF-8 string (jansson holds valid UTF-8 only). */
size_t veld_engine__utf8_chars(const char *s, size_t n);
/* One encoding per value (engine_input.c): in the flat fields `flat` (the
** store's paths), the value of an int field, of a choice or the elements
** of a multi-choice that is a real with an integral value becomes that
** integer (45.0 -> 45, -0.0 -> 0, 1e2 -> 100), so one entry is stored one
** way.  VELD_ERROR: out of memory. */
int veld_engine__canonical(const veld_decls *d, json_t *flat);

/* ---- embedded scripts (embedded.c, generated by embed.cmake) ------------- */

typedef struct veld_embedded {
	const char *name;           /* "contactregistratie" */
	const unsigned char *src;   /* NUL-terminated */
	size_t len;
} veld_embedded;

extern const veld_embedded veld_embedded__prelude;
extern const veld_embedded veld_embedded__forms[]; /* ends with a NULL name */

/* ---- reports (report*.c, render*.c) ------------------------------------------ */

/* floor() without libm (the library links no libm of its own); render.c. */
double veld_render__floor(double x);

typedef struct veld_report_limits {
	veld_sandbox_limits sandbox; /* zero fields: the VELD_REPORT_* defaults */
	uint64_t rows;               /* 0: VELD_REPORT_ROWS */
	size_t output;               /* 0: VELD_REPORT_OUTPUT_MAX */
} veld_report_limits;

void veld_report_limits_init(veld_report_limits *lim);

/*
** Run a report script (chunk name `chunk`, e.g. "jaarcijfers.lua") over the
** store, read-only, with `params_json` (an object; NULL: {}) as the global
** `params`.  *result receives what the script returned (a new reference).
** Errors are set on the store's handle: VELD_EINVALID for the script's
** failures ("jaarcijfers.lua:12: ..."), VELD_ERROR for the host's.
** `limits` NULL: the defaults.
*/
int veld_report__run(json_t **result, veld_store *s, const char *chunk, const char *src,
                     size_t len, const char *params_json, const veld_report_limits *limits);

/* -- a report's queries (report_query.c) -- */

#define VELD_QUERY_PATHS     32  /* fields a query may name (fields + where + by) */
#define VELD_QUERY_PATH_MAX  120 /* bytes of a field path */
#define VELD_QUERY_VALUE_MAX 200 /* bytes of a value in a where clause */

/* Kinds of a shown value (veld_tok) and of a condition's value (veld_cval). */
enum { VELD_TOK_NONE, VELD_TOK_NULL, VELD_TOK_STR, VELD_TOK_NUM, VELD_TOK_TRUE, VELD_TOK_FALSE,
       VELD_TOK_ARR, VELD_TOK_BAD };

/* One shown value of a record, read from jansson (report_scan.c).  STR:
** p..p+n are the string's bytes; NUM: p..p+n the number's text (in `num`
** of the token first filled in, which a copy keeps pointing at); `j` the
** value itself (NULL when the field is absent).  Lives as long as `j`. */
typedef struct veld_tok {
	int kind;
	const char *p;
	size_t n;
	const json_t *j;
	char num[40]; /* the text of a number */
} veld_tok;

/* A value of a condition, copied out of Lua: STR, NUM, TRUE, FALSE, or
** NONE for an absent bound. */
typedef struct veld_cval {
	int kind;
	char s[VELD_QUERY_VALUE_MAX + 1];
	size_t n;
	double num;
} veld_cval;

enum { VELD_OP_EQ, VELD_OP_RANGE, VELD_OP_HAS };

typedef struct veld_cond {
	int col;         /* index into the query's paths */
	int op;          /* VELD_OP_* */
	veld_cval a, b;  /* EQ/HAS: a; RANGE: from a to b */
} veld_cond;

/* A report's query, checked: a form narrowed by case, year and where, the
** fields it reads.  Lives in a Lua userdata: nothing to free when a script
** error unwinds. */
typedef struct veld_query {
	char form[VELD_FORM_NAME_MAX];
	char case_id[VELD_IDSIZE];
	char paths[VELD_QUERY_PATHS][VELD_QUERY_PATH_MAX + 1];
	size_t npaths;
	int fields_mode;               /* 1: only `fields` (the fast path) */
	int out[VELD_QUERY_PATHS];     /* the `fields` columns, in order */
	size_t nout;
	veld_cond conds[VELD_QUERY_PATHS];
	size_t nconds;
	int by[VELD_QUERY_PATHS];      /* tally */
	size_t nby;
	int group_col;                 /* tally: -1, or the column grouped by */
	int group_year;                /* group by the year of a date */
} veld_query;

/* Read the query table at `idx` (a script's spec) into a new userdata
** pushed on the stack; author mistakes raise Lua errors.  `for_tally`
** allows (and needs) `by` and `group`. */
veld_query *veld_query__read(struct lua_State *L, int idx, int for_tally);
/* Whether a shown value (NULL: the field is absent) passes a condition. */
int veld_query__match(const veld_cond *cd, const json_t *v);

/* -- scans over the store (report_scan.c) -- */

#define VELD_SCAN_LOOPS 16 /* scans (each() loops) open at once */

struct veld_scan_memo;
struct veld_scan_case;

/* The scans of one report run: SQL over the store, read-only, bounded in
** rows and time.  {0} plus the fields marked "set" is ready; release with
** veld_scan__release.  Functions taking a lua_State raise Lua errors. */
typedef struct veld_scan {
	sqlite3 *db;                 /* set */
	const veld_os *os;           /* set: the clock */
	uint64_t max_rows;           /* set */
	uint32_t wall_ms;            /* set */
	int64_t deadline_ms;         /* set */
	uint64_t rows;
	int stop;                    /* sticky: a limit was hit */
	char stop_msg[200];
	int host_failed;             /* reading the store or memory failed: VELD_ERROR */
	sqlite3_stmt *loops[VELD_SCAN_LOOPS];
	struct veld_scan_memo *memos[VELD_SCAN_LOOPS];
	sqlite3_stmt *case_st;       /* is a case readable */
	struct veld_scan_case *cases;
	size_t ncases, cap_cases;
	veld_record *rec;            /* the record read last (full mode) */
	json_t *view;
} veld_scan;

/* One row of a scan, decoded. */
typedef struct veld_scan_row {
	const char *id, *case_id;
	veld_tok vals[VELD_QUERY_PATHS]; /* fields mode */
	const json_t *fields;            /* full mode: the view's shown values */
} veld_scan_row;

void veld_scan__release(veld_scan *sc);
/* Prepare the scan of `q` in a free loop slot; returns the slot. */
int veld_scan__open(struct lua_State *L, veld_scan *sc, const veld_query *q);
/* Step to the next row that passes the query's conditions: 1 a row, 0 the
** end (the slot is then closed). */
int veld_scan__next(struct lua_State *L, veld_scan *sc, const veld_query *q, int slot, veld_scan_row *r);
/* The header of case `id` as a full-mode row: 1, or 0 when the case is
** not readable here (absent or deleted). */
int veld_scan__case(struct lua_State *L, veld_scan *sc, const char *id, veld_scan_row *r);
/* Element `i` of an array token into `e`; 0 past the end. */
int veld_scan__elem(const veld_tok *t, size_t i, veld_tok *e);

/* -- the functions a report script sees (report_api.c) -- */

struct veld_report_tally;

/* What the functions of a run reach through their upvalue. */
typedef struct veld_report_ctx {
	veld_scan scan;
	json_t *params;              /* the global `params` */
	json_t *schemas;             /* name -> schema, loaded on demand */
	json_t *result;              /* what the script returned */
	size_t result_max;           /* bytes of it as JSON (veld_report_limits.output) */
	struct veld_report_tally *tally; /* the tally being computed, if any */
	char today[16];              /* the global `today`: "YYYY-MM-DD", the OS table's clock */
	char organisation[256];      /* the global `organisation`: the store's org_name, "" none */
} veld_report_ctx;

/* Protected (veld_sandbox__ccall, argument the context): set the globals
** of a report's state and run the reports' prelude. */
int veld_report__setup(struct lua_State *L);
/* Protected: call the report chunk (argument 1) and keep what it returns
** in ctx->result (argument 2 is the context). */
int veld_report__call(struct lua_State *L);
/* Free what the API still holds (a tally cut short by an error). */
void veld_report__release(veld_report_ctx *c);

/* -- rendering (render.c, render_html.c) -- */

/* A renderer's output: text that grows, NUL-terminated, up to `max` bytes.
** Running out of memory or past `max` sticks (later writes are dropped,
** nothing is allocated for them); the caller looks at `oom` and `over` at
** the end and frees b.p. */
typedef struct veld_render_out {
	veld_buf b;
	size_t max;  /* set: bytes the output may hold */
	int oom;
	int over;    /* a write would have passed `max` */
} veld_render_out;
void veld_render__add(veld_render_out *o, const char *s, size_t n);
void veld_render__str(veld_render_out *o, const char *s);
void veld_render__fmt(veld_render_out *o, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
/* Characters shown (UTF-8 code points). */
size_t veld_render__width(const char *s);

/* A table's columns as the result declares them (label, type, decimals). */
#define VELD_RENDER_COLS 64
typedef struct veld_render_col {
	const char *label;
	int type;     /* text, count, int, pct, number, delta, date (render.c) */
	int decimals;
} veld_render_col;
size_t veld_render__columns(veld_render_col *cols, const json_t *columns);
/* 1 for a column of numbers (right-aligned). */
int veld_render__numeric(const veld_render_col *c);
/* A cell as people (`dutch`) or machines read it: the text in `small`, or
** the string value itself. */
const char *veld_render__cell(char *small, size_t n, const json_t *v, const veld_render_col *c, int dutch);
/* A value on a chart, as people read it ("7,4%", "2.329"). */
void veld_render__chart_value(char *buf, size_t n, double v, const char *unit);
/* The largest value of a chart's series (0 when none is positive). */
double veld_render__series_max(const json_t *series);
/* The result (its shape checked) as one HTML page (render_html.c). */
void veld_render__html(veld_render_out *o, const json_t *report);

/* Render a result as "text", "csv", "json" or "html" into *out (malloc'd),
** at most `max` bytes (0: VELD_REPORT_OUTPUT_MAX).  A result of the wrong
** shape is VELD_EINVALID, "chunk: result: ..."; so is a longer output,
** "chunk: output exceeds 64 MiB", found as it grows. */
int veld_report__render(char **out, const json_t *report, const char *format, const char *chunk,
                        size_t max, veld_err *err);
/* 0..3 for the formats above, -1 for anything else. */
int veld_report__format(const char *format);


/* Dutch number and date formats, shared by the renderers and the scripts'
** nl.* helpers: 2329 -> "2.329"; 7.43 -> "7,4" (comma) or "7.4";
** "2017-03-01" -> "01/03/2017".  Return the length written. */
size_t veld_report__fmt_count(char *buf, size_t n, long long v);
size_t veld_report__fmt_decimal(char *buf, size_t n, double v, int decimals, int comma);
void veld_report__fmt_date(char *buf, size_t n, const char *s, size_t len);

/* The shipped reports: name and source of the i-th (0-based); 0 past the
** end (report.c).  The pointers are static. */
int veld_report__shipped(size_t i, const char **name, const char **source, size_t *len);

/* Embedded by scripts/CMakeLists.txt from scripts/reports/ (embed.cmake):
** the reports' prelude (_prelude.lua) and the reports, by name. */
extern const veld_embedded veld_embedded__reports_prelude;
extern const veld_embedded veld_embedded__reports[]; /* ends with a NULL name */

#endif /* VELD_SCRIPTS_H */

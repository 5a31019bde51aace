/*
** faults_alloc.c — out of memory at every allocation: store create and
** open, a put, an import, a sync with a hub on a path and a report, each
** run with the N-th allocation failing, N = 1.. (the sweep and what it
** checks after each run: tests/support/sweep.c).  A failed call reports a
** code and a message, leaks nothing, and leaves a store that opens with
** every committed record.
**
** Every allocator of the process is counted as one sequence, and the N-th
** allocation of the call under test fails (once, as curl's torture runs
** do; the ones after it succeed):
**   veld's own     malloc, calloc, realloc, strdup and strndup called from
**                  libveld (the Lua sandbox's lua_Alloc is its realloc),
**                  redirected to this file at link time (-Wl,--wrap=...,
**                  tests/CMakeLists.txt): the library needs no hook;
**   SQLite's       sqlite3_config(SQLITE_CONFIG_MALLOC), before SQLite
**                  initialises, which is why this is a process of its own;
**   jansson's      json_set_alloc_funcs;
**   libgit2's      git_libgit2_opts(GIT_OPT_SET_ALLOCATOR), counted and
**                  failed only with VELD_TEST_GIT_OOM=1 (g_refuse says why).
** libsodium's guarded memory (mmap) and libcurl are not counted.
**
** Cost: an operation makes hundreds (open) to thousands (a put, whose form
** runs in Lua; a report) of allocations.  Every N up to 40 is run, then
** about 60 more spread evenly (a stride): about 40 s of CPU under ASan.
** VELD_TEST_LONG=1 runs every N (an hour or more);
** VELD_TEST_SWEEP="alloc put 3835" replays one run.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/alloc.h>
#include <jansson.h>
#include <sqlite3.h>

/* The test's own state (the library keeps none). */
static long g_count;    /* allocations since arm */
static long g_fail_at;  /* the one to fail, 1-based; 0: none */
static int g_armed;
static int g_git_refused; /* the refused allocation was libgit2's */
static int g_git_oom;     /* VELD_TEST_GIT_OOM=1 */
static sqlite3_mem_methods g_sqlite; /* SQLite's own, which ours call */

/* An environment variable set to something other than "" or "0". */
static int env_on(const char *name)
{
	const char *e = getenv(name);
	return e && *e && strcmp(e, "0");
}

/* Should this allocation fail? */
static int refuse(void)
{
	if (!g_armed)
		return 0;
	return ++g_count == g_fail_at;
}

static void arm(void *payload, long n)
{
	g_count = 0;
	g_fail_at = n;
	g_git_refused = 0;
	g_armed = 1;
}

static long disarm(void *payload)
{
	g_armed = 0;
	return g_count;
}

/* ---- veld's own (-Wl,--wrap) ------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n)
{
	return refuse() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
	return refuse() ? NULL : __real_calloc(k, n);
}

/* realloc(p, 0) frees (the Lua allocator never asks it): not counted. */
void *__wrap_realloc(void *p, size_t n)
{
	return n && refuse() ? NULL : __real_realloc(p, n);
}

/* n bytes of s and a NUL, unless this allocation is refused. */
static char *copy_unless(int refused, const char *s, size_t n)
{
	char *d = refused ? NULL : __real_malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

char *__wrap_strdup(const char *s)
{
	return copy_unless(refuse(), s, strlen(s));
}

char *__wrap_strndup(const char *s, size_t n)
{
	return copy_unless(refuse(), s, strnlen(s, n));
}

/* ---- SQLite's, jansson's, libgit2's -------------------------------------------- */

static void *sq_malloc(int n)
{
	return refuse() ? NULL : g_sqlite.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
	return refuse() ? NULL : g_sqlite.xRealloc(p, n);
}

static void *js_malloc(size_t n)
{
	return __wrap_malloc(n);
}

/* libgit2's allocations fail only with VELD_TEST_GIT_OOM=1: libgit2 1.5 is
** not safe when memory runs out.  It crashes (its config code frees
** pointers it never set; opening a repository dereferences a failed object
** cache), leaks (git_strmap_new, git_repository_odb, the loose refdb) and
** calls a missing repository "not a repository".  Its config code is left
** out even then, to get past the first crash.  libgit2 names the source
** file of each allocation. */
static int g_refuse(const char *file, int line)
{
	int no = g_git_oom && !strstr(file, "/config") && refuse();
	if (no && getenv("VELD_TEST_SWEEP"))
		fprintf(stderr, "# libgit2 allocation refused at %s:%d\n", file, line);
	g_git_refused |= no;
	return no;
}

static void *g_malloc(size_t n, const char *file, int line)
{
	return g_refuse(file, line) ? NULL : __real_malloc(n);
}

static void *g_calloc(size_t k, size_t n, const char *file, int line)
{
	return g_refuse(file, line) ? NULL : __real_calloc(k, n);
}

static char *g_strdup(const char *s, const char *file, int line)
{
	return copy_unless(g_refuse(file, line), s, strlen(s));
}

static char *g_strndup(const char *s, size_t n, const char *file, int line)
{
	return copy_unless(g_refuse(file, line), s, strnlen(s, n));
}

static char *g_substrdup(const char *s, size_t n, const char *file, int line)
{
	return copy_unless(g_refuse(file, line), s, n);
}

static void *g_realloc(void *p, size_t n, const char *file, int line)
{
	return n && g_refuse(file, line) ? NULL : __real_realloc(p, n);
}

static void *g_reallocarray(void *p, size_t k, size_t n, const char *file, int line)
{
	return n && k > SIZE_MAX / n ? NULL : g_realloc(p, k * n, file, line);
}

static void *g_mallocarray(size_t k, size_t n, const char *file, int line)
{
	return g_reallocarray(NULL, k, n, file, line);
}

/* LeakSanitizer (sanitized builds): with VELD_TEST_GIT_OOM=1, leaks with a
** libgit2 frame are libgit2's own (above) and not reported. */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default")));
const char *__lsan_default_suppressions(void)
{
	return env_on("VELD_TEST_GIT_OOM") ? "leak:libgit2.so\n" : "";
}

const char *__lsan_default_options(void) __attribute__((visibility("default")));
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

static void install_allocators(void)
{
	static git_allocator ga = {g_malloc, g_calloc, g_strdup, g_strndup, g_substrdup,
	                           g_realloc, g_reallocarray, g_mallocarray, free};
	static sqlite3_mem_methods sm;
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &g_sqlite) != SQLITE_OK)
		fail_msg("SQLite is initialised already");
	sm = g_sqlite;
	sm.xMalloc = sq_malloc;
	sm.xRealloc = sq_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sm) != SQLITE_OK)
		fail_msg("SQLITE_CONFIG_MALLOC refused");
	json_set_alloc_funcs(js_malloc, free);
	/* Held for the whole process, so libgit2 never shuts down and drops
	** the allocator. */
	git_libgit2_init();
	if (git_libgit2_opts(GIT_OPT_SET_ALLOCATOR, &ga) < 0)
		fail_msg("GIT_OPT_SET_ALLOCATOR refused");
}

/* ---- the sweeps ------------------------------------------------------------------ */

static void sweep(const char *op)
{
	veld_test_sweep w;
	veld_test_sweep_up(&w, "faults-alloc");
	w.arm = arm;
	w.disarm = disarm;
	w.kind = "alloc";
	w.misreported = &g_git_refused;
	veld_test_sweep_run(&w, op);
	veld_test_sweep_down(&w);
}

int main(void)
{
	g_git_oom = env_on("VELD_TEST_GIT_OOM");
	install_allocators();
	return veld_test_sweep_main("faults_alloc", sweep);
}

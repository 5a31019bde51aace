/*
** testutil.h — helpers shared by the unit tests (the one header of tests/).
** Tests include <cmocka.h> through this file.
*/
#ifndef VELD_TESTUTIL_H
#define VELD_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core.h"
#include "veld.h"
#include "veld_platform.h"

/* A fresh empty directory under $VELD_TEST_TMP (or /tmp), unique per call.
** Returns a malloc'd path; the test removes it with veld_test_rmtree. */
char *veld_test_tmpdir(const char *tag);
void veld_test_rmtree(const char *path);
/* Copy the file or directory tree `from` to `to` (which must not exist):
** plain files and directories, contents only (files writable by the
** test); fails the test on error. */
void veld_test_copytree(const char *from, const char *to);

/* Join dir + "/" + name into a malloc'd string. */
char *veld_test_path(const char *dir, const char *name);

/* Number of files under `dir` (recursively) whose bytes contain `needle`. */
int veld_test_grep_tree(const char *dir, const void *needle, size_t n);

/* Read a whole file (malloc'd, *len set, a NUL after the last byte); NULL if
** missing. */
unsigned char *veld_test_read_file(const char *path, size_t *len);
int veld_test_write_file(const char *path, const void *buf, size_t len);

/* Run a shell command (printf-style); its exit status, -1 if it did not exit. */
int veld_test_sh(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;
/* The first line of a shell command's output, malloc'd ("" if none). */
char *veld_test_sh_line(const char *cmd);

/* A small deterministic PRNG (splitmix64) for randomised tests: the state
** is the seed, so a failing run is replayed from the seed it prints. */
uint64_t veld_test_rng_next(uint64_t *state);
unsigned veld_test_rng_below(uint64_t *state, unsigned n); /* 0..n-1; 0 when n is 0 */

/* Flip one bit of the byte at `off` in `path`: the lowest, or bit `bit`
** (0-7).  The file must be writable by the test. */
void veld_test_flip_byte(const char *path, long off);
void veld_test_flip_bit(const char *path, long off, int bit);

/* Store options with cheap Argon2id limits so tests run fast. */
void veld_test_fast_options(veld_store_options *o);

/* How many times slower than a native run this one is: $VELD_TEST_TIME_SCALE
** (set for the runs under qemu and valgrind, tests/CMakeLists.txt), else 1.
** A test multiplies its wall-clock limits and bounds by it. */
double veld_test_time_scale(void);

/* ---- sync fixtures ------------------------------------------------------ */

#define VELD_TEST_PASS "test passphrase"

/* An office store in `dir` with a new bare hub at `hub` (cheap Argon2id).
** Fails the test on error. */
veld_store *veld_test_office(const char *dir, const char *hub);

/* A device store in `dir`, enrolled by `office` with `role` and `region`
** (NULL for none), published by an office sync and joined to `hub`.
** Writes the device id to id_out (VELD_IDSIZE) if not NULL. */
veld_store *veld_test_device(char *id_out, veld_store *office, const char *dir, const char *role,
                             const char *region, const char *hub);

/* A small organisation on a new hub on a path, under a new temporary
** directory named by `tag`: the office and two enrolled, joined devices
** `a` and `b` of the given roles and regions (NULL: none).  _down closes
** the stores and removes the directory. */
typedef struct veld_test_net {
	char *root, *hub;
	veld_store *office, *a, *b;
	char a_id[VELD_IDSIZE], b_id[VELD_IDSIZE];
} veld_test_net;
void veld_test_net_up(veld_test_net *n, const char *tag, const char *a_role, const char *a_region,
                      const char *b_role, const char *b_region);
void veld_test_net_down(veld_test_net *n);

/* Make store `s` (device `id`) an older client, or one whose registry is
** out of date: its own registry row says `role` with a region covering
** every postcode, so the library lets it write what the office refuses. */
void veld_test_stale_own_entry(veld_store *s, const char *id, const char *role);

/* The device refused a write itself (the rule the office applies too):
** `rc` is VELD_EDENIED with a message holding `why`, and the store's
** export is still `export_before`. */
void veld_test_refused_at_once(veld_store *s, int rc, const char *why, const char *export_before);

/* The store's export (veld_export_json), failing the test on error;
** veld_free() it. */
char *veld_test_export(veld_store *s);

/* Sync and fail the test unless it returns `want`; returns the summary
** (json_t, caller decrefs). */
json_t *veld_test_sync(veld_store *s, int want);

/* ---- hubs: a path or the smart-HTTP hub -------------------------------- */

/*
** A hub of kind "path" (a bare repository, `root`/hub.git) or "http" (the
** smart-HTTP hub of tools/hub in `root`/hub: git http-backend behind
** lighttpd with Basic auth and the veld update hook, started on
** 127.0.0.1).  Over HTTP every store logs in with its device id and the
** hub's password (each device is added as a user when it is created, the
** office is made the hub's office user once it exists).  tools/hub is
** found through $VELD_SRC, else the source tree the tests were built from.
** Without lighttpd veld_test_hub_new("http") skips the test, saying why.
** Register veld_test_hub_teardown as the test's teardown: it stops the
** server of a hub the test did not free (a failed test); a watchdog stops
** it when the test process dies without teardown.
*/
typedef struct veld_test_hub veld_test_hub;

int veld_test_hub_http_available(void);
veld_test_hub *veld_test_hub_new(const char *kind, const char *root);
/* Stops the server (HTTP) and frees; the files stay.  NULL is fine. */
void veld_test_hub_free(veld_test_hub *h);
int veld_test_hub_teardown(void **state);

const char *veld_test_hub_kind(const veld_test_hub *h);  /* "path" or "http" */
const char *veld_test_hub_url(const veld_test_hub *h);   /* what stores are given */
const char *veld_test_hub_repo(const veld_test_hub *h);  /* the bare repository on disk */
/* `git fsck --strict` of the hub's repository: its exit status. */
int veld_test_hub_fsck(const veld_test_hub *h);

/* Sync options with the credentials of store `s` (NULL for a path hub):
** pass them to veld_sync and veld_join. */
const veld_sync_options *veld_test_hub_opts(veld_test_hub *h, veld_store *s);

/* veld_test_office, veld_test_device and veld_test_sync on hub `h`. */
veld_store *veld_test_hub_office(veld_test_hub *h, const char *dir);
veld_store *veld_test_hub_device(veld_test_hub *h, char *id_out, veld_store *office, const char *dir,
                                 const char *role, const char *region);
json_t *veld_test_hub_sync(veld_test_hub *h, veld_store *s, int want);

/* ---- fault sweeps (sweep.c) -------------------------------------------- */

/*
** A sweep: one operation run again and again with the N-th event of the
** test's kind failing, N = 1.. the number of events it makes (every N up to
** `dense`, then about `runs` more with a stride; every N with
** VELD_TEST_LONG=1), the contract checked after each run (sweep.c says
** which).  The fixture is a device of an office on a hub on a path, in a
** new temporary directory named by `tag`.  Operations: "create", "open",
** "put", "import", "sync", "report".
*/
typedef struct veld_test_sweep {
	/* set by the test */
	const veld_os *os;        /* the table the store is opened with (NULL: default) */
	void (*arm)(void *payload, long n); /* fail the n-th event from now; 0: none */
	long (*disarm)(void *payload);      /* stop; the events since arm */
	void *payload;
	const char *kind;         /* for messages: "alloc", "write", ... */
	int may_land;             /* a failed call may still have committed */
	/* Non-zero after a run whose fault a library below veld is known to
	** report as something else (libgit2 1.5: "not a repository" when out of
	** memory): any code is taken then (NULL: never). */
	const int *misreported;
	long dense, runs;         /* set by _up to 40 and 60 */
	int exhaustive;           /* VELD_TEST_LONG=1 */
	/* the fixture and the model */
	char *root, *hub, *office_dir, *dir;
	char case_id[VELD_IDSIZE];
	char **ids;               /* every committed put */
	int n_ids;
	long n_min, n_max;        /* cases and live records the store may hold */
	long n_runs, events;
	long failed[10];          /* failures by -code */
} veld_test_sweep;

void veld_test_sweep_up(veld_test_sweep *w, const char *tag);
void veld_test_sweep_run(veld_test_sweep *w, const char *op);
void veld_test_sweep_down(veld_test_sweep *w);
/* main() of a sweep file: one test "test_GROUP__OP" per operation, each
** calling sweep(OP). */
int veld_test_sweep_main(const char *group, void (*sweep)(const char *op));

#endif

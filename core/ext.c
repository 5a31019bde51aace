/*
** ext.c — the veld VFS as a SQLite loadable extension for the stock sqlite3
** shell (module veld_sqlite.so, entry point sqlite3_veldsqlite_init).
**
** What it does.  Loading the module registers one VFS named "veld" as the
** default VFS of the process, and the module stays loaded for the life of
** the process (SQLITE_OK_LOAD_PERMANENTLY: the shell's .open closes the
** connection that loaded it).  Every database opened afterwards goes through
** it.  Its key callback reads `veld.key` in the database's directory and
** unwraps it with the passphrase in $VELD_PASSPHRASE; for a new, empty
** database in a directory without a key file it creates one (a fresh random
** master key).  The page key is the master key's VELD_SUBKEY_PAGES subkey,
** exactly as the library derives it, so the shell opens a veld store.
** Derived keys are cached per directory in the VFS's payload (Argon2id is
** slow on purpose); the cache lives as long as the process.
**
** Copies.  An automatic extension (sqlite3_auto_extension) runs on every
** connection opened after the load: a connection on the veld VFS gets the
** seal's reserve bytes when its database is new and the ATTACH guard
** (veld_vfs__guard_attach); a connection whose database is a file on any
** other VFS (a `.backup` or `.save` target named with ?vfs=unix, the
** `--append` VFS, ...) fails to open, because the shell would copy veld's
** plaintext pages into it.  In-memory databases are allowed.
**
** What it must not do: hold keys outside guarded memory.  Errors the shell
** cannot show (SQLite has no message channel from a VFS) go to stderr with a
** "veld:" prefix: this module is a shell tool, not the library.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define EXT_VFS_NAME "veld"

typedef struct ext_key {
	struct ext_key *next;
	char *dir;
	unsigned char *page_key; /* sodium_malloc */
	int cipher;
} ext_key;

typedef struct ext_state {
	veld_vfs *vfs;
	sqlite3_mutex *mutex;
	ext_key *keys;
} ext_state;

static void ext_say(const char *msg)
{
	fprintf(stderr, "veld: %s\n", msg);
}

static char *ext_dirname(const char *path)
{
	const char *s = strrchr(path, '/');
	size_t n = !s ? 1 : s == path ? 1 : (size_t)(s - path);
	char *d = malloc(n + 1);
	if (!d)
		return NULL;
	if (!s)
		memcpy(d, ".", 1);
	else
		memcpy(d, path, n);
	d[n] = '\0';
	return d;
}

static int ext_key_cb(void *payload, const char *db_path, int creating, unsigned char *page_key,
                      int *cipher)
{
	ext_state *st = payload;
	const veld_os *os = veld_os_default();
	const char *pass = getenv("VELD_PASSPHRASE");
	char *dir = NULL, *kpath = NULL;
	unsigned char *master = NULL;
	ext_key *k;
	veld_err err;
	int rc = SQLITE_OK, vrc, c = 0;
	size_t n;

	veld_err__clear(&err);
	sqlite3_mutex_enter(st->mutex);
	dir = ext_dirname(db_path);
	if (!dir) {
		rc = SQLITE_NOMEM;
		goto done;
	}
	for (k = st->keys; k; k = k->next) {
		if (strcmp(k->dir, dir) == 0) {
			memcpy(page_key, k->page_key, VELD_KEYBYTES);
			*cipher = k->cipher;
			goto done;
		}
	}
	if (!pass) {
		ext_say("set VELD_PASSPHRASE to open an encrypted database");
		rc = SQLITE_AUTH;
		goto done;
	}
	n = strlen(dir) + sizeof "/" VELD_KEYFILE_NAME;
	kpath = malloc(n);
	master = sodium_malloc(VELD_KEYBYTES);
	k = calloc(1, sizeof *k);
	if (!kpath || !master || !k) {
		free(k);
		rc = SQLITE_NOMEM;
		goto done;
	}
	snprintf(kpath, n, "%s/%s", dir, VELD_KEYFILE_NAME);
	vrc = veld_keyfile__open(master, &c, os, kpath, pass, strlen(pass), &err);
	if (vrc == VELD_ENOTFOUND && creating) {
		veld_err__clear(&err);
		vrc = veld_keyfile__create(master, &c, os, kpath, pass, strlen(pass), NULL, &err);
	}
	if (vrc != 0) {
		ext_say(err.msg);
		free(k);
		rc = vrc == VELD_EAUTH ? SQLITE_AUTH : SQLITE_CANTOPEN;
		goto done;
	}
	k->page_key = sodium_malloc(VELD_KEYBYTES);
	k->dir = dir;
	if (!k->page_key) {
		free(k);
		rc = SQLITE_NOMEM;
		goto done;
	}
	dir = NULL;
	veld_key__derive(k->page_key, master, VELD_SUBKEY_PAGES);
	k->cipher = c;
	k->next = st->keys;
	st->keys = k;
	memcpy(page_key, k->page_key, VELD_KEYBYTES);
	*cipher = c;

done:
	sqlite3_mutex_leave(st->mutex);
	if (master)
		sodium_free(master);
	free(kpath);
	free(dir);
	return rc;
}

/* Runs on every connection opened after the load (see the top). */
static int ext_on_open(sqlite3 *db, char **err_out, const sqlite3_api_routines *api)
{
	veld_vfs_stats st;
	sqlite3_vfs *vfs = NULL;
	const char *fn;
	(void)api;

	memset(&st, 0, sizeof st);
	if (sqlite3_file_control(db, "main", VELD_FCNTL_STATS, &st) == SQLITE_OK) {
		sqlite3_file *file = NULL;
		sqlite3_int64 size = 0;
		if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) == SQLITE_OK &&
		    file && file->pMethods && file->pMethods->xFileSize(file, &size) == SQLITE_OK &&
		    size == 0) {
			int n = st.reserve;
			sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
		}
		veld_vfs__guard_attach(db);
		return SQLITE_OK;
	}
	fn = sqlite3_db_filename(db, "main");
	if (!fn || !*fn)
		return SQLITE_OK; /* in memory */
	sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs);
	if (vfs && strcmp(vfs->zName, "memdb") == 0)
		return SQLITE_OK;
	*err_out = sqlite3_mprintf("the veld extension is loaded: a database on the \"%s\" VFS "
	                           "would hold plaintext copies; use the veld VFS",
	                           vfs ? vfs->zName : "?");
	return SQLITE_ERROR;
}

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int sqlite3_veldsqlite_init(sqlite3 *db, char **err_out, const sqlite3_api_routines *api);

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int sqlite3_veldsqlite_init(sqlite3 *db, char **err_out, const sqlite3_api_routines *api)
{
	ext_state *st = NULL;
	veld_err err;
	int rc;
	(void)db;

	SQLITE_EXTENSION_INIT2(api);
	if (sqlite3_vfs_find(EXT_VFS_NAME))
		return SQLITE_OK_LOAD_PERMANENTLY; /* loaded before */
	if (sodium_init() < 0) {
		*err_out = sqlite3_mprintf("veld: libsodium failed to initialise");
		return SQLITE_ERROR;
	}
	st = calloc(1, sizeof *st);
	if (!st)
		return SQLITE_NOMEM;
	st->mutex = sqlite3_mutex_alloc(SQLITE_MUTEX_FAST);
	veld_err__clear(&err);
	rc = veld_vfs__create_cb(&st->vfs, veld_os_default(), EXT_VFS_NAME, ext_key_cb, st, 1,
	                         &err);
	if (rc != 0) {
		*err_out = sqlite3_mprintf("veld: %s", err.msg);
		sqlite3_mutex_free(st->mutex);
		free(st);
		return SQLITE_ERROR;
	}
	/* The VFS and `st` now live as long as the process. */
	rc = sqlite3_auto_extension((void (*)(void))ext_on_open);
	if (rc != SQLITE_OK) {
		*err_out = sqlite3_mprintf("veld: cannot register the open hook");
		return rc;
	}
	return SQLITE_OK_LOAD_PERMANENTLY;
}

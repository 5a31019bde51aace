/*
** veld_platform.h — the operating system behind one table of function pointers.
**
** Everything veld asks of the OS goes through a `veld_os` table: opening,
** reading, writing, syncing, renaming and removing files, listing and
** removing directories, modification times, locking a store, the clock,
** random bytes, asking for a passphrase on the terminal, and an optional
** hook that lets a platform wrap the master key with a hardware keystore.
** Nothing else in the tree calls the OS directly (only this folder may hold
** an `#ifdef` for an operating system).
**
** The table is versioned (`version`, like `sqlite3_vfs.iVersion`) so fields
** can be added at the end without breaking apps that fill one in: a user
** of a field newer than version 1 checks `version` first (sync's git layer
** uses the default table when an app's table predates the fields it
** needs).  An app or a test copies the default table, replaces a few
** entries and passes the copy in `veld_store_options.os`; that is how the
** tests inject I/O errors, torn writes and power loss without tricks
** (SQLite's `aSyscall[]` idea).
**
** Conventions: functions return 0 on success and a negative errno-style
** value (-EIO, -ENOENT, ...) on failure; read/write return the byte count.
** A file is an `int` handle owned by the table that made it.
**
** For apps.  This header is installed beside veld.h, and the functions at
** its end are exported from libveld (VELD_API, from veld.h): the default
** table, to copy and wrap, and the fault-injecting table, so an app's own
** tests can make veld's writes fail or lose power the way veld's tests do.
** A table handed to veld_store_open/create must stay valid, unchanged,
** until veld_store_close; veld calls it from the thread that calls veld.
*/
#ifndef VELD_PLATFORM_H
#define VELD_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "veld.h" /* VELD_API */

#ifdef __cplusplus
extern "C" {
#endif

#define VELD_OS_VERSION 2 /* 2: xListDir, xRmdir, xMtime */

/* Flags for xOpen. */
#define VELD_OS_READ     0x01
#define VELD_OS_WRITE    0x02
#define VELD_OS_CREATE   0x04
#define VELD_OS_EXCL     0x08 /* with CREATE: fail if it exists */
#define VELD_OS_TRUNC    0x10

/* Kinds for xLock. */
#define VELD_OS_UNLOCK   0
#define VELD_OS_LOCK_SH  1
#define VELD_OS_LOCK_EX  2

/* Flags for xStat results. */
#define VELD_OS_ISDIR    0x01
#define VELD_OS_ISREG    0x02

typedef struct veld_os veld_os;

struct veld_os {
	int version;        /* VELD_OS_VERSION */
	void *ctx;          /* handed to every call; owned by whoever built the table */

	/* Files.  `mode` is used only when creating (0600 for everything veld makes). */
	int (*xOpen)(void *ctx, const char *path, int flags, int mode);
	int (*xClose)(void *ctx, int fd);
	/* Read/write exactly at `off`; return bytes done (short only at end of file
	** for reads) or a negative error. */
	int64_t (*xPread)(void *ctx, int fd, void *buf, size_t n, int64_t off);
	int64_t (*xPwrite)(void *ctx, int fd, const void *buf, size_t n, int64_t off);
	int (*xFsync)(void *ctx, int fd);
	int (*xTruncate)(void *ctx, int fd, int64_t size);
	int (*xFileSize)(void *ctx, int fd, int64_t *size);
	/* Whole-file advisory lock (one lock per open file description).  With
	** `wait_ms` > 0 retry until it is granted or the time is up (-EBUSY). */
	int (*xLock)(void *ctx, int fd, int kind, int wait_ms);

	/* Names. */
	int (*xStat)(void *ctx, const char *path, int *flags, int64_t *size);
	int (*xRename)(void *ctx, const char *from, const char *to);
	int (*xUnlink)(void *ctx, const char *path);
	int (*xMkdir)(void *ctx, const char *path, int mode);
	/* fsync a directory so a create or rename in it survives power loss. */
	int (*xSyncDir)(void *ctx, const char *path);

	/* Time and randomness. */
	int64_t (*xClockMs)(void *ctx);      /* wall clock, ms since the epoch */
	void (*xSleepMs)(void *ctx, int ms);
	void (*xRandom)(void *ctx, void *buf, size_t n); /* libsodium randombytes */

	/* Ask for a secret on the controlling terminal without echo.  Writes a
	** NUL-terminated string of at most n-1 bytes into buf; returns its length,
	** -ENOTTY without a terminal, or another negative error. */
	int (*xPrompt)(void *ctx, const char *prompt, char *buf, size_t n);

	/* Optional key-storage hook (NULL when absent): a platform keystore that
	** wraps and unwraps the 32-byte master key (Android Keystore, iOS Keychain).
	** wrap: key -> opaque blob (*blob_len in: capacity, out: used).
	** unwrap: blob -> key.  Return 0 or a negative error. */
	int (*xKeyWrap)(void *ctx, const unsigned char *key, size_t key_len,
	                unsigned char *blob, size_t *blob_len);
	int (*xKeyUnwrap)(void *ctx, const unsigned char *blob, size_t blob_len,
	                  unsigned char *key, size_t key_len);

	/* ---- version 2 (read these only when `version` >= 2) ---- */

	/* List the directory `path`: `cb(name, flags, payload)` once per entry
	** other than "." and "..", in no particular order, with `flags`
	** VELD_OS_ISDIR or VELD_OS_ISREG for what the entry itself is (a
	** symbolic link is neither: it is never followed).  A non-zero return
	** from cb (make it positive) stops the listing and is returned.
	** -ENOENT when there is no such directory. */
	int (*xListDir)(void *ctx, const char *path, int (*cb)(const char *name, int flags, void *payload),
	                void *payload);
	/* Remove an empty directory (-ENOTEMPTY otherwise). */
	int (*xRmdir)(void *ctx, const char *path);
	/* When `path` was last modified, in ms since the epoch (whole seconds
	** where the file system keeps no finer time). */
	int (*xMtime)(void *ctx, const char *path, int64_t *mtime_ms);
};

/*
** The default table for this OS (POSIX: platform/posix.c).  Static storage:
** never freed, never changed, safe to use from any thread.  Its ctx is NULL
** and its entries ignore ctx, so an app that brings its own table copies
** this one (`veld_os mine = *veld_os_default();`), sets its own ctx,
** replaces the entries it wants and calls the originals from them.
*/
VELD_API const veld_os *veld_os_default(void);

/*
** Fault injection, for tests.  `veld_os_faulty_new` returns a table that
** forwards to `base` and fails or drops operations according to the plan the
** test sets on it.  It models power loss the way SQLite's crash tests do:
** writes are buffered per file until that file is fsynced; at "power loss"
** every unsynced write is dropped, kept, or torn (a prefix of each write
** kept), chosen by a seeded random generator; after that every call fails
** with -EIO until the table is freed.  Exported for apps' tests as well;
** not meant for production use.
*/
typedef struct veld_os_faulty veld_os_faulty;

typedef struct veld_os_fault_plan {
	int version;           /* 2 (a version 1 plan leaves the version 2 fields 0) */
	unsigned seed;         /* for the drop/keep/tear choices */
	long fail_write_at;    /* fail the N-th pwrite with -EIO (1-based; 0 = never) */
	long fail_fsync_at;    /* fail the N-th fsync with -EIO */
	long fail_read_at;     /* fail the N-th pread with -EIO */
	long crash_at_fsync;   /* power loss just before the N-th fsync (0 = never) */
	long crash_at_write;   /* power loss just before the N-th pwrite (0 = never) */
	/* version 2 */
	long fail_list_at;     /* fail the N-th directory listing (xListDir) with -EIO */
	long fail_remove_at;   /* fail the N-th removal (xUnlink or xRmdir) with -EIO */
} veld_os_fault_plan;

/* A new faulty object forwarding to `base` (NULL: veld_os_default(); it must
** outlive the object), with an empty plan: nothing fails until
** veld_os_faulty_set.  Returns 0, or -ENOMEM with *out NULL. */
VELD_API int veld_os_faulty_new(veld_os_faulty **out, const veld_os *base);
/* Free the object (and its table).  Files it still has open are not closed:
** close the store that uses the table first.  Accepts NULL. */
VELD_API void veld_os_faulty_free(veld_os_faulty *f);
/* The table to pass in veld_store_options.os; lives as long as `f`. */
VELD_API const veld_os *veld_os_faulty_table(veld_os_faulty *f);
/* Replace the plan (copied).  Counters keep running from creation. */
VELD_API void veld_os_faulty_set(veld_os_faulty *f, const veld_os_fault_plan *plan);
/* Counters since creation, to plan the next run: 'w' writes, 's' fsyncs,
** 'r' reads, 'l' listings, 'd' removals (unlink, rmdir); -1 for anything
** else. */
VELD_API long veld_os_faulty_count(const veld_os_faulty *f, int which);
/* Non-zero once the power loss happened. */
VELD_API int veld_os_faulty_crashed(const veld_os_faulty *f);
/* Apply the power loss now (if not already) and write what survives to disk. */
VELD_API void veld_os_faulty_crash(veld_os_faulty *f);

#ifdef __cplusplus
}
#endif
#endif /* VELD_PLATFORM_H */

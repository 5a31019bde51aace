/*
** core.h — the internal interface of core/ (the one header of this folder).
**
** core/ owns the encrypted local store:
**   keyfile.c  the key file: master key wrapped by Argon2id(passphrase)
**   vfs.c      SQLite VFS that seals every page (main db, WAL, journal): the
**              VFS object and connections; vfs_page.c seals and opens one
**              page, vfs_file.c is an open file (and the main db's pages),
**              vfs_log.c the WAL frames and journal records
**   ext.c      the same VFS as a loadable extension for the sqlite3 shell
**   id.c       what an id and a form name look like (one definition)
**   region.c   postcode regions ("1500-1999,3000-3499")
**   rules.c    who may write what: the one rule of writer and verifier
**   hlc.c      hybrid logical clock stamps
**   record.c   the record model: multi-value registers, local writes, the
**              view; record_merge.c merges two states, record_json.c holds
**              the canonical JSON, the strict parse and the path checks
**   store.c    the store handle: open/create/close, identity, clock, nested
**              transactions, audit log, errors, handle slots, query -> JSON
**   schema.c   the tables of veld.db, schema version and migrations
**   cases.c    cases and records in the store: rows, the case and record
**              calls of veld.h, export, conflicts, the checks of a put
**   published.c  the form and report scripts the office published
** core/ depends on platform/ only; it never includes sync/ or scripts/.
** Names: veld_<module>__<verb> for functions shared across core's files.
*/
#ifndef VELD_CORE_H
#define VELD_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "veld.h"
#include "veld_platform.h"

/* ---- errors ------------------------------------------------------------ */

/* Error state that hangs off a handle: a code and a one-line message. */
typedef struct veld_err {
	int code;
	char msg[512];
} veld_err;

/* Set `err` (if not NULL) to code and printf-style message; returns code. */
int veld_err__set(veld_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;
void veld_err__clear(veld_err *err);
/* "out of memory" with VELD_ERROR; returns VELD_ERROR. */
int veld_err__oom(veld_err *err);
/* After a failed jansson parse: veld_err__oom when memory ran out (jansson
** says so in its error code, or leaves the error empty), else 0 and the
** caller reports the malformed input. */
int veld_err__json_oom(veld_err *err, const json_error_t *e);

/* A growing byte buffer; {0} is empty.  0, or -1 when memory runs out
** (the buffer is then as before).  free(b.p) when done. */
typedef struct veld_buf {
	unsigned char *p;
	size_t n, cap;
} veld_buf;
int veld_buf__room(veld_buf *b, size_t more);
int veld_buf__add(veld_buf *b, const void *p, size_t n);

/* ---- ids and names (id.c) ---------------------------------------------- */

/* The form of a case's header record: names starting with '_' are the
** store's own, never a form's. */
#define VELD_CASE_FORM     "_case"
/* A case's contact part (contact.c): the header fields a Huiswijs
** volunteer may read, in the huiswijs compartment, written by the office. */
#define VELD_CONTACT_FORM   "_contact"
#define VELD_CONTACT_FIELDS "name", "phone", "postcode"
#define VELD_FORM_NAME_MAX 64

/* 1 if the `n` bytes at `s` are all lowercase hex digits (0 for NULL). */
int veld_hex__is(const char *s, size_t n);
/* 1 if `s` is an id: a string of exactly 32 lowercase hex digits. */
int veld_id__is(const char *s);
/* 1 if `s` is a form name: [a-z0-9_]{1,64}, not starting with '_'. */
int veld_name__is_form(const char *s);
/* 1 if the `n` bytes at `s` are a date "YYYY-MM-DD" of the calendar, year
** >= 1000 (the forms' date.valid; case headers too).  0 for NULL. */
int veld_date__is(const char *s, size_t n);

/* ---- size bounds of what is stored (docs/forms.md, "Size bounds") ------ */

/* Characters of a text field whose form gives no max_length (the form
** engine's default), and bytes of a record's canonical state: a save of a
** larger record, local or merged, is refused (veld_store__record_save). */
#define VELD_TEXT_MAX   10000
#define VELD_RECORD_MAX ((size_t)256 << 10)

/* ---- regions and the write rule (region.c, rules.c) -------------------- */

/* Region strings: "1500-1999,3000-3499".  Parse into at most `max` ranges;
** VELD_EINVALID on malformed input.  And membership of a postcode. */
#define VELD_MAX_RANGES 32
typedef struct veld_range {
	int lo, hi;
} veld_range;
int veld_region__parse(veld_range *ranges, int max, int *n, const char *text, veld_err *err);
int veld_region__contains(const veld_range *ranges, int n, int postcode);

/* Who writes: a role ("office", "assistant", "volunteer"; NULL: the
** office's own store before its registry) and, for an assistant, its
** region (n_ranges -1: not known yet).  `who` names the writer in
** messages ("this device", "device <id>"). */
typedef struct veld_writer {
	const char *role;
	const veld_range *ranges;
	int n_ranges;
	const char *region; /* the region as text, for messages */
	const char *who;
} veld_writer;

/* What is written: a record of a case (the header when record_id ==
** case_id), its form and compartment ("" or NULL: not known), and for a
** header the postcode it holds after the write.  `readable`: the writer's
** content was read (postcode and form are meaningful). */
typedef struct veld_change {
	const char *case_id, *record_id;
	const char *form, *compartment;
	const char *postcode;
	int creates; /* no earlier version of the record */
	int readable;
} veld_change;

/* The one rule of who may write what (rules.c), for the writer and for
** the verifier.  0 if allowed; VELD_EDENIED with the reason in `why` and
** its code in *code (one of the VELD_RULE_* strings; `code` may be NULL).
** The codes travel in the office's published refusals (docs/sync.md,
** "Refusals"), which carry no client data: a code names the rule, the
** text in `why` may name a postcode. */
#define VELD_RULE_ROLE     "role"     /* the role may not write this compartment */
#define VELD_RULE_HEADER   "header"   /* a volunteer wrote a case header */
#define VELD_RULE_REGION   "region"   /* the case's postcode is outside the writer's region */
#define VELD_RULE_POSTCODE "postcode" /* the case header has no valid postcode */
int veld_rules__check(const char **code, char *why, size_t cap, const veld_writer *w, const veld_change *c);

/* ---- key file (keyfile.c) ---------------------------------------------- */

#define VELD_KEYFILE_NAME "veld.key"
#define VELD_DB_NAME      "veld.db"

/*
** A key file holds the master key wrapped by a key derived from the
** passphrase with Argon2id (crypto_pwhash), plus the salt, the Argon2id
** parameters and the page cipher.  The layout is documented in
** docs/store-format.md.  Every function below keeps keys in sodium_malloc'd
** memory and wipes temporaries on every path.
*/
typedef struct veld_keyfile_params {
	int cipher;                       /* VELD_CIPHER_*; AUTO resolved on create */
	unsigned long long opslimit;      /* 0: crypto_pwhash_OPSLIMIT_INTERACTIVE */
	size_t memlimit;                  /* 0: crypto_pwhash_MEMLIMIT_INTERACTIVE */
} veld_keyfile_params;

/* Create `path` (must not exist) holding a fresh random master key.  The key
** is written to `master` (VELD_KEYBYTES, caller's guarded memory).  The file
** is written to a temp name, fsynced and renamed into place. */
int veld_keyfile__create(unsigned char *master, int *cipher_out, const veld_os *os,
                         const char *path, const char *pass, size_t pass_len,
                         const veld_keyfile_params *params, veld_err *err);

/* Unwrap.  VELD_EAUTH for a wrong passphrase, VELD_EINTEGRITY for a damaged
** file (bad magic, bad length, unknown version), VELD_ENOTFOUND if missing. */
int veld_keyfile__open(unsigned char *master, int *cipher_out, const veld_os *os,
                       const char *path, const char *pass, size_t pass_len,
                       veld_err *err) VELD_WARN_UNUSED;

/* Rewrap `master` under a new passphrase: atomic replace of the file. */
int veld_keyfile__rewrap(const veld_os *os, const char *path, const unsigned char *master,
                         int cipher, const char *new_pass, size_t new_len,
                         const veld_keyfile_params *params, veld_err *err);

/* Derive a 32-byte subkey for one purpose (crypto_kdf, context "veld-sub"). */
#define VELD_SUBKEY_PAGES  1
#define VELD_SUBKEY_NONCE  2
void veld_key__derive(unsigned char *out, const unsigned char *master, uint64_t subkey_id);

/* ---- the encrypting VFS (vfs.c, vfs_page.c, vfs_file.c, vfs_log.c) ------ */

/*
** A VFS instance registered with SQLite under a unique name.  It does all of
** its file I/O through `os` (so tests can inject faults) and seals pages with
** the page key it is given.  The library makes one per open store (the key
** lives in the instance, no global state); the sqlite3-shell extension makes
** one named "veld" that finds keys through `key_cb`.
**
** Page format and the handling of page 1, WAL frames and journal records are
** described at the top of vfs.c and in docs/store-format.md.
*/
typedef struct veld_vfs veld_vfs;

/* Called when a main database file is opened and the VFS has no fixed key:
** fill `page_key` (VELD_KEYBYTES) and `*cipher` for database `db_path`.
** `creating` is 1 when the file is new or empty.  Return SQLITE_OK or an
** SQLite error code (SQLITE_AUTH for a wrong passphrase). */
typedef int (*veld_vfs_key_cb)(void *payload, const char *db_path, int creating,
                               unsigned char *page_key, int *cipher);

/* With a fixed key (library use): `page_key` copied into guarded memory. */
int veld_vfs__create(veld_vfs **out, const veld_os *os, const unsigned char *page_key,
                     int cipher, veld_err *err);
/* With a key callback (extension use); `make_default` registers as default. */
int veld_vfs__create_cb(veld_vfs **out, const veld_os *os, const char *name,
                        veld_vfs_key_cb key_cb, void *payload, int make_default,
                        veld_err *err);
const char *veld_vfs__name(const veld_vfs *vfs);
/* Unregister and wipe.  Every connection using it must be closed.  NULL ok. */
void veld_vfs__destroy(veld_vfs *vfs);

/* Bytes reserved at the end of every page for the cipher's nonce and tag. */
int veld_vfs__reserve_bytes(int cipher);

/* The last integrity failure seen by the VFS ("page 7 of veld.db fails
** authentication"), or "" if none; lets the store name the page. */
const char *veld_vfs__last_error(const veld_vfs *vfs);
/* Forget it once reported, so a later unrelated failure is not blamed on it. */
void veld_vfs__clear_error(veld_vfs *vfs);

/* Open `path` through `vfs` with the pragmas every veld connection needs:
** reserve bytes on a new database, WAL, synchronous=FULL, temp_store=MEMORY,
** mmap_size=0, foreign_keys=ON, busy timeout. */
int veld_vfs__open_db(sqlite3 **out, veld_vfs *vfs, const char *path, int create,
                      veld_err *err);

/* How long opening a main database waits for another connection's exclusive
** lock before failing with SQLITE_BUSY (default 5000 ms).  Also used as the
** connection's busy timeout by veld_vfs__open_db. */
void veld_vfs__set_busy_timeout(veld_vfs *vfs, int ms);

/* Deny ATTACH (and so VACUUM INTO) of a URI filename naming a VFS that is not
** a veld VFS: such a copy would be written in plaintext.  Installs an
** authorizer on `db` (veld_vfs__open_db does this already). */
void veld_vfs__guard_attach(sqlite3 *db);

/* sqlite3_file_control(db, "main", VELD_FCNTL_STATS, &stats) on a database
** opened through a veld VFS fills the counters below (SQLITE_NOTFOUND on any
** other file).  For tests and diagnostics; counters are per open file. */
#define VELD_FCNTL_STATS 0x76656c01
typedef struct veld_vfs_stats {
	int page_size;       /* 0 until known */
	int reserve;         /* bytes this file's cipher needs at the end of a page */
	int page1_reserve;   /* byte 20 of page 1 as last read or written (-1: not seen) */
	long pages_sealed;   /* pages encrypted (db, WAL and journal) */
	long pages_opened;   /* pages decrypted and authenticated */
	long ckpt_copied;    /* checkpoint writes that reused the WAL's sealed bytes */
	long ckpt_sealed;    /* checkpoint writes that had to seal again */
} veld_vfs_stats;

/*
** Inside the VFS only (the four vfs files; the top of vfs.c explains the
** formats).  SQLite calls these with its own codes: they return SQLITE_*.
*/
#define VELD_VFS_MAGIC        "veld-store-db-1" /* page 1, bytes 0-15 (with NUL) */
#define VELD_VFS_SQLITE_MAGIC "SQLite format 3" /* what SQLite reads there */
#define VELD_VFS_TAGBYTES     16
#define VELD_VFS_SECTOR       512 /* also where journal records are told from headers */
#define VELD_VFS_MIN_PAGE     1024
#define VELD_VFS_MAX_PAGE     65536
#define VELD_VFS_FRAME_HDR    24 /* a WAL frame header, before its page */

enum { VELD_VFS_MAIN = 1, VELD_VFS_JOURNAL = 2, VELD_VFS_WAL = 3 };

struct veld_vfs {
	sqlite3_vfs base;       /* registered with SQLite; pAppData points here */
	sqlite3_vfs *root;      /* the default VFS: names, time, randomness, dlopen */
	const veld_os *os;
	char name[48];
	unsigned char *key;     /* fixed page key (sodium_malloc), or NULL */
	int cipher;
	veld_vfs_key_cb key_cb; /* or a callback for each main database */
	void *payload;
	int busy_ms;
	int registered;
	char last_error[256];
};

/* One open file: the main database, its WAL or its journal. */
typedef struct veld_vfs_file veld_vfs_file;
struct veld_vfs_file {
	sqlite3_file base;
	veld_vfs *vfs;
	int fd;
	int kind;               /* VELD_VFS_MAIN, _JOURNAL or _WAL */
	int lock;
	char label[80];         /* file name for messages (last path component) */
	veld_vfs_file *main;    /* the main database file (itself for a main db) */
	int pgsz;               /* 0 until known */
	unsigned char *plain;   /* scratch: one page of plaintext */
	unsigned char *sealed;  /* scratch: one frame (header + sealed page) */
	int scratch_sz;

	/* main database only */
	unsigned char *key;     /* page key: owned when from the callback */
	int own_key;
	int cipher, nonce_len, reserve;
	unsigned char **shm;    /* WAL index regions in heap memory */
	int n_shm, shm_sz;
	int in_ckpt;            /* between SQLITE_FCNTL_CKPT_START and CKPT_DONE */
	int stash_valid;        /* stash_sealed holds the page a checkpoint just read */
	uint32_t stash_pgno;
	unsigned char *stash_sealed; /* the sealed page handed to a checkpoint */
	veld_vfs_stats stats;

	/* WAL: the frame header written last; journal: the last 4-byte write */
	int64_t last_off;
	unsigned char last_hdr[VELD_VFS_FRAME_HDR];
	int have_last;
};

/* vfs.c: record `fmt` as the VFS's last error (veld_vfs__last_error) and
** return `rc`. */
int veld_vfs__fail(veld_vfs *v, int rc, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* vfs_page.c: the page format. */
/* 1 if `n` is a page size SQLite may use (a power of two, 1024..65536). */
int veld_vfs__page_size_ok(int64_t n);
/* The page size in bytes 16-17 of page 1's header `h`. */
int veld_vfs__header_page_size(const unsigned char *h);
/* Seal plaintext page `in` (pgsz bytes, reserved bytes zero) into `out`
** with the key and cipher of main file `m`. */
void veld_vfs__seal_page(veld_vfs_file *m, uint32_t pgno, const unsigned char *in,
                         unsigned char *out, int pgsz);
/* Open sealed page `in` into `out`: 0, or -1 if it fails authentication,
** -2 if it is all zeros, -3 if page 1 lacks the magic. */
int veld_vfs__open_page(veld_vfs_file *m, uint32_t pgno, const unsigned char *in,
                        unsigned char *out, int pgsz);
/* SQLITE_IOERR_DATA naming page `pgno` of `f` (in WAL frame `frame` if > 0)
** and why (`why` from veld_vfs__open_page). */
int veld_vfs__open_fail(veld_vfs_file *f, int why, uint32_t pgno, long frame);
/* Check a plaintext page SQLite hands `f` before it is sealed. */
int veld_vfs__check_plain(veld_vfs_file *f, uint32_t pgno, const unsigned char *p, int pgsz);

/* vfs_file.c: one open file. */
int veld_vfs__xopen(sqlite3_vfs *pv, const char *name, sqlite3_file *pf, int flags,
                    int *out_flags);
/* Scratch pages for page size `pgsz` in `f`. */
int veld_vfs__scratch(veld_vfs_file *f, int pgsz);
/* Exactly `n` bytes at `off` through the OS table; `*got` is what was read. */
int veld_vfs__pread(veld_vfs_file *f, void *buf, size_t n, int64_t off, int64_t *got);
int veld_vfs__pwrite(veld_vfs_file *f, const void *buf, size_t n, int64_t off);
/* Learn the main database's page size from page 1 (stays 0 while empty). */
int veld_vfs__main_page_size(veld_vfs_file *m);

/* vfs_log.c: reads and writes of a WAL and of a rollback journal. */
int veld_vfs__wal_read(veld_vfs_file *w, unsigned char *buf, int n, int64_t off);
int veld_vfs__wal_write(veld_vfs_file *w, const unsigned char *buf, int n, int64_t off);
int veld_vfs__journal_read(veld_vfs_file *j, unsigned char *buf, int n, int64_t off);
int veld_vfs__journal_write(veld_vfs_file *j, const unsigned char *buf, int n, int64_t off);

/* ---- hybrid logical clock (hlc.c) -------------------------------------- */

#define VELD_DEVICE_ID_LEN 32 /* hex chars */
#define VELD_HLC_WALL_MAX ((int64_t)9007199254740991) /* 2^53 - 1: exact in every JSON */

typedef struct veld_stamp {
	int64_t wall;     /* ms since the epoch, never less than any earlier stamp's */
	uint32_t counter; /* orders stamps within one wall value */
	char device[VELD_DEVICE_ID_LEN + 1];
} veld_stamp;

/* Total order: wall, then counter, then device id (bytewise). */
int veld_stamp__cmp(const veld_stamp *a, const veld_stamp *b);

/* Next stamp for a local event: max(now, last.wall) with the counter bumped
** when the wall did not advance.  `*last` is updated. */
void veld_hlc__next(veld_stamp *out, veld_stamp *last, int64_t now_ms, const char *device);
/* Fold a received stamp into `*last` so later local stamps order after it. */
void veld_hlc__observe(veld_stamp *last, const veld_stamp *seen, int64_t now_ms);

/* Canonical JSON for a stamp: [wall, counter, "device"]; and back. */
json_t *veld_stamp__to_json(const veld_stamp *s);
int veld_stamp__from_json(veld_stamp *out, const json_t *j);
/* 1 if `s` (`n` bytes) is a device id: exactly 32 lowercase hex digits. */
int veld_stamp__is_device(const char *s, size_t n);

/* ---- records (record.c, record_merge.c, record_json.c) ----------------- */

/*
** The state of one record, as stored and as synced (record.c explains the
** model in full):
**   {"id":..,"case":..,"form":..,
**    "ctx":{"<device>":[wall,counter], ...},          causal context
**    "fields":{"<path>":[{"s":[wall,counter,"dev"],"v":<value>}, ...], ...}}
** Each field is a multi-value register: the list of its live versions,
** sorted by stamp.  The shown value is the version with the highest stamp;
** more than one live version is a conflict.  A version whose stamp is
** covered by the other side's context and that the other side no longer
** holds was superseded there.  Record deletion is the register "_deleted";
** the form version is the register "_form_version".  Repeating groups are
** flattened to paths "group.<item id>.field".
*/
typedef struct veld_record veld_record; /* wraps the json_t state */

int veld_record__new(veld_record **out, const char *id, const char *case_id, const char *form);
void veld_record__free(veld_record *r);
/* Parse canonical (or any valid) state JSON; VELD_EINTEGRITY if malformed. */
int veld_record__parse(veld_record **out, const char *json, size_t len, veld_err *err);
/* Canonical bytes: sorted keys, compact, one number format.  Free with free(). */
char *veld_record__canonical(const veld_record *r);

const char *veld_record__id(const veld_record *r);
const char *veld_record__case(const veld_record *r);
const char *veld_record__form(const veld_record *r);

/* A local write of `value` (owned by the caller; NULL or json null clears)
** to `path`, stamped `stamp`: supersedes every version this replica holds for
** the path and adds the stamp to the context.  One stamp may serve several
** paths of one atomic change.  VELD_EINVALID (record unchanged) for a
** malformed or reserved path, an object value, a non-boolean "_deleted", or
** a stamp older than the record's context for its device. */
int veld_record__set(veld_record *r, const char *path, const json_t *value,
                     const veld_stamp *stamp);
/* Delete: write "_deleted" = true (an edit concurrent with it is a conflict). */
int veld_record__delete(veld_record *r, const veld_stamp *stamp);
int veld_record__is_deleted(const veld_record *r);

/* Merge `other` into `r` (commutative, associative, idempotent). */
int veld_record__merge(veld_record *r, const veld_record *other);

/* Shown value of `path` (borrowed, valid until the record changes; NULL if
** never set, json null if cleared), and the number of live versions (more
** than one: a conflict). */
const json_t *veld_record__value(const veld_record *r, const char *path, size_t *n_live);

/* {"fields":{path: shown value}, "conflicts":{path:[values by stamp desc]},
**  "deleted":bool}, excluding "_"-prefixed registers and cleared fields.
** A delete-against-edit conflict adds "conflicts"."_deleted":[true,false]
** and "concurrent_edits":[paths the delete did not see] (sorted); a
** concurrent delete and undelete adds "_deleted":[shown, other].  New
** reference; NULL if out of memory. */
json_t *veld_record__view(const veld_record *r);

/* Who wrote each alternative of the view's conflict of `path`, in the
** order of its values there (shown first): [{"value","device","at"}], "at"
** the wall time of the version's stamp (ms).  For "_deleted" in a
** delete-against-edit conflict, `false` is the newest edit the delete did
** not see.  New reference; an empty array when `path` is in no conflict,
** NULL when out of memory. */
json_t *veld_record__conflict_versions(const veld_record *r, const char *path);

/* Largest stamp in the record (for the HLC to observe after a merge). */
int veld_record__max_stamp(const veld_record *r, veld_stamp *out);

/* Flatten {"acties":{"a1":{"status":"x"}}} to {"acties.a1.status":"x"}.
** New reference; arrays (multi-choice values) are kept as values.  NULL if
** malformed (empty segment, '.' in a nested key, a path produced twice, an
** object or array inside an array, an empty group) or out of memory. */
json_t *veld_record__flatten(const json_t *fields);

/*
** Shared by the three record files only; everything else uses the functions
** above.  A state is never modified in place: a change builds new ctx and
** fields and swaps them in.
*/
#define VELD_RECORD_DELETED      "_deleted"
#define VELD_RECORD_FORM_VERSION "_form_version"
/* jansson flags of the canonical encoding (record_json.c explains it). */
#define VELD_RECORD_CANON_FLAGS  (JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17))

/* Make a record of a valid state in canonical shape (reference stolen, also
** on failure).  VELD_ERROR for a NULL state or when memory runs out. */
int veld_record__wrap(veld_record **out, json_t *state);
/* The record's state (borrowed; replaced, never changed, by the next write). */
const json_t *veld_record__state(const veld_record *r);
/* Replace the state's ctx and fields (references stolen, also on failure). */
int veld_record__swap(veld_record *r, json_t *ctx, json_t *fields);
/* The stamp of a version of a valid state. */
void veld_record__vstamp(veld_stamp *out, const json_t *version);
/* 1 if context `ctx` ({"<device>":[wall,counter]}) covers stamp `s`. */
int veld_record__covers(const json_t *ctx, const veld_stamp *s);
/* Pointwise maximum of two contexts (new reference; entries shared). */
json_t *veld_record__ctx_join(const json_t *a, const json_t *b);
/* 1 if `s` may be a record's form: a form name or VELD_CASE_FORM. */
int veld_record__is_form(const char *s);
/* 1 if a record may hold `path`: well formed, '_' only for the registers. */
int veld_record__path_ok(const char *path);
/* 1 if `v` is a field value: a scalar or an array of scalars. */
int veld_record__value_ok(const json_t *v);

/* ---- the store, for sync/ and scripts/ (store.c, schema.c, cases.c) ----- */

/*
** What the other layers may use of a store handle.  The handle keeps
** ownership of everything returned; pointers live until the handle closes.
** Transactions: veld_store__begin opens an IMMEDIATE transaction and
** veld_store__finish(s, rc) commits when rc == 0, else rolls back, and
** returns the final rc.  Errors are set on veld_store__err(s).
*/
/* The prologue of every public entry point: VELD_ERROR for a NULL handle,
** else the handle's error cleared, then VELD_ERROR "store is not open" if
** it holds no database.  0 when the call may go on. */
int veld_store__enter(veld_store *s);
sqlite3 *veld_store__db(veld_store *s);
veld_err *veld_store__err(veld_store *s);
const veld_os *veld_store__os(veld_store *s);
const char *veld_store__dir(veld_store *s);
const char *veld_store__device_id(veld_store *s);
int veld_store__begin(veld_store *s);
int veld_store__finish(veld_store *s, int rc);
/* Map a SQLite failure to a veld error on the handle. */
int veld_store__db_fail(veld_store *s, int sqlite_rc, const char *what);

/* meta(key, value): get copies at most `cap` bytes and returns the length,
** VELD_ENOTFOUND if absent; put inserts or replaces. */
int veld_store__meta_get(veld_store *s, const char *key, void *buf, int cap);
int veld_store__meta_put(veld_store *s, const char *key, const void *val, int n);

/* Run `sql` in the sqlite3 statement -> JSON pattern of every listing: the
** parameters are bound from the arguments after `binds`, one letter each
** ('t' a const char * bound as text, NULL as null; 'i' an int), then `row`
** is called for every row to append what it makes of it to `arr` (it
** returns 0, or an error set on the handle, which stops the run).  `arr`
** NULL is out of memory; `what` names the operation in error messages.
** The caller keeps `arr` in every case. */
typedef int (*veld_store_row_fn)(json_t *arr, veld_store *s, sqlite3_stmt *row, void *payload);
int veld_store__rows_json(json_t *arr, veld_store *s, const char *what, veld_store_row_fn row, void *payload,
                          const char *sql, const char *binds, ...);
/* The whole of a listing call of veld.h: veld_store__enter, then the rows
** of `sql` as above into a new array, as JSON text in *out (free()). */
int veld_store__list_json(char **out, veld_store *s, const char *what, veld_store_row_fn row, void *payload,
                          const char *sql, const char *binds, ...);
/* Compact JSON text of `j` (reference stolen; sorted keys, 17 digits) in
** *out, freed with free(); out of memory when `j` is NULL. */
int veld_store__json_out(char **out, veld_store *s, json_t *j);
/* Run SQL without results (several statements allowed). */
int veld_store__exec(veld_store *s, const char *sql, const char *what);
/* A fresh random id (VELD_IDSIZE bytes with the terminating NUL). */
void veld_store__new_id(veld_store *s, char *out);

/* The schema (schema.c): create the tables of a new store and write its
** schema version (inside the caller's transaction); migrate an older
** store to the current version (each step in its own transaction); check
** that the store's version is the current one (VELD_EINTEGRITY if not). */
int veld_schema__create(veld_store *s);
int veld_schema__migrate(veld_store *s);
int veld_schema__check(veld_store *s);

/* Records by id (cases.c); save writes the canonical state and sets
** `dirty` (1: must be committed to git at the next sync); `compartment`
** NULL keeps the row's (a new row gets "social").  A state larger than
** VELD_RECORD_MAX is not saved: VELD_EINVALID, the only time save returns
** it (a merge refuses such a record on that code). */
/* contact.c.  id: the record id of case `case_id`'s contact part (33
** bytes with the NUL).  refresh_dirty: office, inside the caller's
** transaction: rewrite the contact part of every dirty case header whose
** contact fields it does not hold yet.  fields: the contact part's
** fields as shown (a new reference), NULL if this store holds none. */
void veld_contact__id(char *out, const char *case_id);
int veld_contact__refresh_dirty(veld_store *s);
json_t *veld_contact__fields(veld_store *s, const char *case_id);
int veld_store__record_load(veld_record **out, veld_store *s, const char *id);
int veld_store__record_save(veld_store *s, const veld_record *r, int dirty, const char *compartment);

/* A put in two steps, for scripts/, which validates in between.
** put_target checks what the put names, once: the case is known here (its
** header, a record of it or a key of it: VELD_ENOTFOUND if not) and its
** header, when held, is not deleted (VELD_EINVALID); `record_id` NULL
** gives *out NULL (a new record), otherwise *out is the stored record,
** which must belong to `case_id` and `form` and not be deleted
** (VELD_ENOTFOUND, VELD_EINVALID).  The caller frees *out.
** record_put writes the flat fields `flat` (borrowed; validated by the
** caller, reserved "_" paths and object values refused) to `stored` (from
** put_target, changed in place) or to a new record of the case and form,
** with one stamp, its audit entry and "_form_version" = `form_version`
** when > 0, in one transaction.  `compartment`: the form's (NULL keeps an
** existing record's).  The record id goes to `id_out` when not NULL.
** `action` names the audit entry (NULL: "create-record" or
** "update-record"). */
int veld_store__put_target(veld_record **out, veld_store *s, const char *case_id, const char *form,
                           const char *record_id);
int veld_store__record_put(char *id_out, veld_store *s, veld_record *stored, const char *case_id, const char *form,
                           json_t *flat, const char *compartment, int form_version, const char *action);

/* The part of veld_resolve that needs no form.  Checks `field` (not empty,
** not reserved but for "_deleted") and `value_json` (JSON, not an object;
** "_deleted" true or false) and loads record `record_id` (any record or
** case header, deleted or not; VELD_ENOTFOUND when it is not there or has
** no such field).  "_deleted", and a case header's field (checked by the
** header's rules, as veld_case_update checks it), are written here, with
** the audit entry "resolve": *form_rec is then NULL.  A form's field is
** handed back instead, the record in *form_rec and the parsed value in
** *value (the caller frees both), for the caller to check by the form and
** write with veld_store__record_put (action "resolve"). */
int veld_store__resolve(veld_record **form_rec, json_t **value, veld_store *s, const char *record_id,
                        const char *field, const char *value_json);
/* Fold a stamp seen in merged data into the clock. */
void veld_store__observe(veld_store *s, const veld_stamp *stamp);
/* The next local stamp (persisted with the transaction). */
int veld_store__stamp(veld_store *s, veld_stamp *out);
/* Today by the store's clock, "YYYY-MM-DD" (UTC). */
void veld_store__today(char out[11], veld_store *s);
/* One slot per upper layer for state that lives as long as the handle (the
** form cache of scripts/, the open repository of sync/).  `free_fn` runs at
** close. */
#define VELD_STORE_SLOT_SCRIPTS 0
#define VELD_STORE_SLOT_SYNC    1
#define VELD_STORE_SLOTS        2
void *veld_store__slot(veld_store *s, int which);
void veld_store__set_slot(veld_store *s, int which, void *ptr, void (*free_fn)(void *));

/* Form and report scripts the office published (published.c; the table
** `scripts`).  A row: kind VELD_SCRIPT_FORM or VELD_SCRIPT_REPORT, its
** name, version and source text; published 1 once main carries it.
** put: store one (*added 0 when that version is held with the same
** text; VELD_EEXISTS when with another).  get: the source of one version
** (malloc'd, NUL-terminated; VELD_ENOTFOUND).  newest: the newest version
** held below `below` (0: any), 0 if none, or a negative error.  each: the
** rows of `kind` (NULL: all), only the unpublished ones with
** `unpublished`, by kind, name and version; mark: every row published. */
#define VELD_SCRIPT_FORM   "form"
#define VELD_SCRIPT_REPORT "report"
/* A published script's source as one JSON string may take this many
** bytes: its signed entry must fit one registry entry (64 KiB). */
#define VELD_SCRIPT_JSON_MAX 60000
typedef struct veld_script_row {
	const char *kind, *name, *source;
	size_t len;
	int version, published;
} veld_script_row;
typedef int (*veld_script_cb)(const veld_script_row *r, void *payload);
int veld_published__put(int *added, veld_store *s, const veld_script_row *r);
int veld_published__get(char **source, size_t *len, veld_store *s, const char *kind, const char *name, int version);
int veld_published__newest(veld_store *s, const char *kind, const char *name, int below);
int veld_published__each(veld_store *s, const char *kind, int unpublished, veld_script_cb cb, void *payload);
int veld_published__mark(veld_store *s);

/* Append to the audit log (inside the caller's transaction). */
int veld_store__audit(veld_store *s, const char *action, const char *case_id, const char *record_id);

#endif /* VELD_CORE_H */

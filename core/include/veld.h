/*
** veld.h — the public API of libveld, an offline-first, encrypted case store
** for social work that syncs through git.
**
** Shape of the API (the SQLite / libgit2 way):
**  - Opaque handles with paired constructors and destructors; every
**    destructor accepts NULL.
**  - Functions return VELD_OK (0) or a negative VELD_E* code.  The message
**    for the last failure lives on the handle: veld_errmsg(store).  A handle
**    is returned even when opening fails (unless memory ran out), so the
**    message can be read; close it afterwards.
**  - Output parameters come first, then the handle, then the inputs.
**  - Strings in and out are UTF-8.  Structured data crosses the boundary as
**    JSON text; every `char **out` result is allocated by the library and is
**    freed by the caller with veld_free().
**  - A handle is used by one thread at a time.  Different handles are
**    independent; a store directory is open in at most one handle at a time
**    (the second waits up to `busy_timeout_ms` and then gets VELD_EBUSY).
**  - Passphrases are passed as (pointer, length); the library copies them
**    into guarded memory only for as long as it needs them.
*/
#ifndef VELD_H
#define VELD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VELD_STATIC)
#define VELD_API
#elif defined(_WIN32)
#ifdef VELD_BUILDING
#define VELD_API __declspec(dllexport)
#else
#define VELD_API __declspec(dllimport)
#endif
#else
#define VELD_API __attribute__((visibility("default")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VELD_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define VELD_WARN_UNUSED
#endif

/* The version this header belongs to; veld_version_number() tells the
** library's (MAJOR * 1000000 + MINOR * 1000 + PATCH, the SQLite way). */
#define VELD_VERSION_MAJOR  0
#define VELD_VERSION_MINOR  1
#define VELD_VERSION_PATCH  0
#define VELD_VERSION_STRING "0.1.0"
#define VELD_VERSION_NUMBER (VELD_VERSION_MAJOR * 1000000 + VELD_VERSION_MINOR * 1000 + VELD_VERSION_PATCH)

/* Return codes. */
#define VELD_OK          0
#define VELD_ERROR      -1  /* anything not listed below (I/O, out of memory) */
#define VELD_ENOTFOUND  -2  /* no such store, case, record or field */
#define VELD_EAUTH      -3  /* wrong passphrase or key */
#define VELD_EINTEGRITY -4  /* tampered or corrupt data: nothing was used */
#define VELD_EINVALID   -5  /* input rejected: malformed or against the rules */
#define VELD_EBUSY      -6  /* the store is open elsewhere (locked) */
#define VELD_EEXISTS    -7  /* the thing to create is already there */
#define VELD_EDENIED    -8  /* not allowed for this device or role */
#define VELD_ECANCELED  -9  /* a progress callback asked to stop: nothing was changed */

/* Sizes. */
#define VELD_KEYBYTES   32  /* master key */
#define VELD_IDSIZE     33  /* an id as text: 32 lowercase hex digits + NUL */

/* Ciphers for the page encryption, recorded in the key file. */
#define VELD_CIPHER_AUTO      0 /* AES-256-GCM where the CPU has AES instructions, else XChaCha20 */
#define VELD_CIPHER_XCHACHA20 1 /* XChaCha20-Poly1305 */
#define VELD_CIPHER_AES256GCM 2 /* AES-256-GCM */

struct veld_os; /* veld_platform.h: the OS table, for apps that bring their own */

typedef struct veld_store veld_store;

/*
** Options for creating and opening a store.  Versioned: set `version` to
** VELD_STORE_OPTIONS_VERSION (or start from veld_store_options_init) and
** leave unknown fields zero.
*/
#define VELD_STORE_OPTIONS_VERSION 1
typedef struct veld_store_options {
	unsigned version;
	const struct veld_os *os;      /* NULL: the default OS table */
	int cipher;                    /* VELD_CIPHER_*, used on create */
	/* Argon2id cost for the passphrase, used on create and passwd; 0 picks
	** libsodium's "interactive" limits.  Stored in the key file. */
	unsigned long long pwhash_opslimit;
	size_t pwhash_memlimit;
	int busy_timeout_ms;           /* wait for a store open elsewhere; 0: 5000 */
	/* Device identity, used on create. */
	const char *device_name;       /* shown in logs; not personal data */
	const char *device_role;       /* "office", "assistant" or "volunteer" */
} veld_store_options;

VELD_API void veld_store_options_init(veld_store_options *opts);

/*
** Create a new store in directory `dir` (created if missing; must not
** already hold a store: VELD_EEXISTS).  Generates the master key, the key
** file, the encrypted database and the device's signing keys.
*/
VELD_API int veld_store_create(veld_store **out, const char *dir,
                               const char *pass, size_t pass_len,
                               const veld_store_options *opts);

/* Open an existing store.  Wrong passphrase: VELD_EAUTH, nothing touched. */
VELD_API int veld_store_open(veld_store **out, const char *dir,
                             const char *pass, size_t pass_len,
                             const veld_store_options *opts);

/* Close and wipe every key.  Accepts NULL. */
VELD_API void veld_store_close(veld_store *store);

/* Message and code of the last failure on this handle ("" and 0 if none).
** The string lives until the next call on the handle. */
VELD_API const char *veld_errmsg(const veld_store *store);
VELD_API int veld_errcode(const veld_store *store);

/* Rewrap the master key under a new passphrase.  Re-encrypts nothing. */
VELD_API int veld_store_passwd(veld_store *store, const char *new_pass, size_t new_len);

/* Full check: every page authenticates, SQLite's integrity check passes,
** every record parses in canonical form.  VELD_EINTEGRITY names what failed. */
VELD_API int veld_store_verify(veld_store *store);

/* Checkpoint the WAL into the database and VACUUM (in memory, through the
** encrypting VFS), giving freed space back.  Takes the write lock. */
VELD_API int veld_store_compact(veld_store *store);

/* This device: {"id":..,"name":..,"role":..,"sign_pk":..,"box_pk":..} */
VELD_API int veld_store_device_json(char **out, veld_store *store);

/* ---- Cases and records ------------------------------------------------- */

/*
** Create a case.  `header_json` is an object with at least "name" and
** "postcode"; optional "birth", "address", "phone", "ref" (an external
** dossier number).  Writes the new case id (VELD_IDSIZE bytes) to `id_out`.
*/
VELD_API int veld_case_new(char *id_out, veld_store *store, const char *header_json);

/* Update fields of a case header (same keys as veld_case_new, plus
** "toestemming.<scope>" dates); null clears an optional field. */
VELD_API int veld_case_update(veld_store *store, const char *case_id, const char *header_json);

/* All readable cases: [{"id":..,"name":..,"postcode":..,"records":n,"conflicts":n}];
** a case this store holds records of without its header (a volunteer's
** Huiswijs cases) is listed as {"id","records","conflicts","header":false}. */
VELD_API int veld_case_list_json(char **out, veld_store *store);

/* One case: {"id", "header": {...}, "records": [...], "conflicts": [...]};
** "header" is null when this store does not hold the case's header. */
VELD_API int veld_case_show_json(char **out, veld_store *store, const char *case_id);

/*
** Create or update a record of form `form` in case `case_id`, checked by
** the form's rules (VELD_EINVALID lists every failing field).  `record_id`
** NULL creates a new record; otherwise it names the record to update (it
** must belong to the case).  `fields_json` is an object of field path ->
** value (null clears a field).  Repeating groups are objects keyed by item
** id: {"acties": {"a1": {"status": "lopend"}}} sets the field
** "acties.a1.status".  Writes the record id to `id_out`.
*/
VELD_API int veld_record_put(char *id_out, veld_store *store, const char *case_id,
                             const char *form, const char *record_id,
                             const char *fields_json);

/*
** Check a put without storing it: *errors_json receives every failing
** field as [{"field","message"}] (messages in Dutch, for the app to show)
** with VELD_EINVALID, or "[]" with VELD_OK.
*/
VELD_API int veld_record_validate_json(char **errors_json, veld_store *store, const char *case_id,
                                       const char *form, const char *record_id, const char *fields_json);

/*
** Bulk import (JSON Lines, docs/cli.md): one record per line,
** {"case": CASE_ID | {"ref","name","postcode",...}, "form": NAME, "fields": {...}}.
** Lines with the same ref share one case.  All or nothing: a bad line is
** reported by its number and nothing is stored.  `progress` (may be NULL)
** is called every 1000 lines.  *count receives the number of lines stored.
*/
VELD_API int veld_import(long *count, veld_store *store, const char *jsonl, size_t len,
                         int (*progress)(long done, long total, void *payload), void *payload);

/* ---- Forms -------------------------------------------------------------- */

/* [{"name","label","compartment","version"}] of the forms this store knows. */
VELD_API int veld_form_list_json(char **out, veld_store *store);
/* The schema of a form as JSON: what a tablet app renders. */
VELD_API int veld_form_schema_json(char **out, veld_store *store, const char *form);
/* For form authors: load FILE.lua; VELD_OK with the schema in *out, or an
** error with the message ("name.lua:LINE: ...") in *out.  Free *out. */
VELD_API int veld_form_check(char **out, const char *path);

/* {"id","case","form","form_version","deleted","fields":{path: value},
**  "conflicts":{path:[values...]}} with the shown (winning) values. */
VELD_API int veld_record_show_json(char **out, veld_store *store, const char *record_id);

/* Delete a record (a versioned tombstone; concurrent edits make a conflict). */
VELD_API int veld_record_delete(veld_store *store, const char *record_id);

/* Every readable case and record in canonical form, sync metadata left out:
** two converged stores give the same bytes. */
VELD_API int veld_export_json(char **out, veld_store *store);

/* Audit log, oldest first: [{"seq","at","device","action","case","record"}].
** `case_id` NULL for all cases. */
VELD_API int veld_audit_json(char **out, veld_store *store, const char *case_id);

/* ---- Organisation, enrolment and sync (sync/, docs/sync.md) ------------ */

/*
** Create the office store in `dir` (role office) with the organisation's
** signing key, and the hub: a path gets a new bare repository; a URL must
** name an existing empty repository.  The registry (organisation and the
** office device) is committed to `main` and, for a hub on a path, pushed;
** for a URL hub the first veld_sync (with credentials) publishes it.
*/
VELD_API int veld_org_init(veld_store **out, const char *dir, const char *pass, size_t pass_len,
                           const char *org_name, const char *hub, const veld_store_options *opts);

/* Office: accept an enrolment request (the JSON `veld device init` wrote)
** for postcode ranges `region` ("1500-1999,3000-3499"; NULL for none).
** Writes the device id to id_out.  Published at the next sync. */
VELD_API int veld_enroll(char *id_out, veld_store *office, const char *request_json, const char *region);

/* Office: revoke a device.  Its commits after the last merged one are
** rejected from the next sync on. */
VELD_API int veld_device_revoke(veld_store *office, const char *device_id);

/* Options of the calls that talk to the hub. */
typedef struct veld_sync_options {
	unsigned version; /* VELD_SYNC_OPTIONS_VERSION */
	/* Progress: stage ("commit", "fetch", "verify", "merge", "push"), done,
	** total.  A non-zero return cancels the call: VELD_ECANCELED. */
	int (*progress)(const char *stage, size_t done, size_t total, void *payload);
	/* Credentials for HTTP hubs: fill user and password (NUL-terminated). */
	int (*credentials)(char *user, size_t user_cap, char *pass, size_t pass_cap,
	                   const char *url, void *payload);
	void *payload;
	unsigned flags; /* VELD_SYNC_* */
} veld_sync_options;
#define VELD_SYNC_OPTIONS_VERSION 1
/* Zero `opts` and set its version. */
VELD_API void veld_sync_options_init(veld_sync_options *opts);
/* Prune unreachable objects after this sync (here, and on a hub on a path
** when run by the office): what makes an erasure final.  It also happens
** by itself after an erasure and every 50 syncs. */
#define VELD_SYNC_PRUNE 0x1

/* Device: fetch the registry from `hub`, find this device's enrolment and
** keep `hub` as the remote.  VELD_ENOTFOUND if not enrolled (yet). */
VELD_API int veld_join(veld_store *store, const char *hub, const veld_sync_options *opts);

/*
** Commit local changes, fetch, verify, merge, push.  `summary_json`:
** {"pushed":n,"fetched":n,"merged":n,"conflicts":n,"rejected":[{"ref","commit","reason"}]}.
** Returns VELD_EINTEGRITY when something fetched was rejected (the summary
** is still written; everything else was merged), VELD_EDENIED when the hub
** refused a push.
*/
VELD_API int veld_sync(char **summary_json, veld_store *store, const veld_sync_options *opts);

/* Record the client's consent for `scope` ("huiswijs", ...) on the case:
** the case field "toestemming.<scope>" is set to today's date. */
VELD_API int veld_case_consent(veld_store *store, const char *case_id, const char *scope);

/* Give device `device_id` the key of compartment `scope` of the case:
** sealed to it at the next sync.  VELD_EDENIED without recorded consent,
** or when the device's role may not hold that compartment (volunteers hold
** only "huiswijs"). */
VELD_API int veld_case_share(veld_store *store, const char *case_id, const char *device_id,
                             const char *scope);

/* Office: crypto-shred a case everywhere.  Its records and keys leave this
** store now; the next sync publishes the erasure, every device deletes its
** copy and its sealed keys, and unreachable objects are pruned.  The
** records' history stays in git, sealed with keys that no longer exist. */
VELD_API int veld_case_erase(veld_store *store, const char *case_id);

/* Every field with more than one live value:
** [{"case","record","form","field","values":[shown first, ...]}] */
VELD_API int veld_conflicts_json(char **out, veld_store *store);

/* Resolve a conflict by writing `value_json` to `field` of `record_id`; the
** write supersedes every value this store holds.  Field "_deleted" with
** true or false settles a delete-against-edit conflict. */
VELD_API int veld_resolve(veld_store *store, const char *record_id, const char *field,
                          const char *value_json);

/* Who changed what, when, from the signed history of main and this
** device: [{"commit","signer","name","at","records":[{"case","record"}]}],
** newest first; `case_id` NULL for all. */
VELD_API int veld_log_json(char **out, veld_store *store, const char *case_id);

/* Check the store's git repository: every object reads back with its hash,
** every commit of this store's ref carries a valid signature, every record
** blob on it opens.  VELD_EINTEGRITY names what failed.  A store that never
** synced passes. */
VELD_API int veld_repository_verify(veld_store *store);

/* ---- Reports (scripts/reports/, docs/reports.md) ---------------------- */

/*
** Run report `name` over the store, read-only, and render it in `format`
** ("text", "csv", "json" or "html"; NULL: "text") into *out.  `name` is
** the name of a report the store knows ("jaarcijfers", "evolutie"), never
** a path.  `params_json`: {"year": 2017}, {"case": "<case id>"}, ... (NULL: {}).
** VELD_ENOTFOUND for an unknown report; VELD_EINVALID for a bad format or
** parameters and for a failing script ("jaarcijfers.lua:LINE: ...").
*/
VELD_API int veld_report(char **out, veld_store *store, const char *name, const char *params_json,
                         const char *format);

/* The same for the report script at `path` (for report authors). */
VELD_API int veld_report_file(char **out, veld_store *store, const char *path, const char *params_json,
                              const char *format);

/* Free memory returned by the library.  Accepts NULL. */
VELD_API void veld_free(void *p);

/* Library version, e.g. "0.1.0", and as a number (VELD_VERSION_NUMBER of
** the library's own header). */
VELD_API const char *veld_version(void);
VELD_API int veld_version_number(void);

#ifdef __cplusplus
}
#endif
#endif /* VELD_H */

/*
** veld.h — the public API of libveld, an offline-first, encrypted case store
** for social work that syncs through git.
**
** Every function is described where it is declared: what it does, what each
** output holds on success and on failure, the codes it returns and when,
** and who frees what.  The rules below hold for every function unless its
** own comment says otherwise.
**
** Handles.  A `veld_store` is opaque, made by veld_store_create,
** veld_store_open or veld_org_init and freed by veld_store_close, which
** accepts NULL.  A handle is returned even when opening fails (unless memory
** ran out), so the message can be read: such a handle is good for
** veld_errmsg, veld_errcode and veld_store_close only.
**
** Errors.  Functions return VELD_OK (0) or a negative VELD_E* code.  The
** message of the last failure lives on the handle: veld_errmsg(store), one
** line naming ids, fields and files, never personal data.  Read it after a
** call failed; each call starts by clearing it.  A NULL handle gives
** VELD_ERROR and no message.  Besides the codes a function lists, every call that
** reads or writes the store can return VELD_ERROR (I/O error, out of
** memory), VELD_EINTEGRITY (a page of the database failed to authenticate:
** tampered or damaged, nothing of it was used) and VELD_EBUSY (the store's
** lock could not be taken).  A call that fails leaves the records as they
** were: each change runs in one transaction (veld_sync and veld_org_init
** say what they keep of a failed run).
**
** Arguments and results.  Output parameters come first, then the handle,
** then the inputs.  Strings in and out are UTF-8 and NUL-terminated;
** structured data crosses the boundary as JSON text.  An id is 32 lowercase
** hex digits; an `id_out` buffer holds VELD_IDSIZE bytes (the NUL included),
** is written only on success and may be NULL when the id is not wanted.  A
** `char **out` result is set to NULL first and, on success, to a string the
** library allocated, which the caller frees with veld_free() — also when the
** function's comment says *out holds something on failure.  Input strings
** and option structs are read during the call only, unless said otherwise.
** Passphrases are passed as (pointer, length), need no NUL and may hold any
** bytes; the library copies them into guarded memory only for as long as
** it needs them.
**
** Threads.  A handle is used by one thread at a time; calls on different
** handles may run at the same time on different threads (the library
** keeps no global state of its own).  A store directory is open in at most one handle at a
** time, in any process: the second open waits up to `busy_timeout_ms` and
** then gets VELD_EBUSY.  Callbacks (progress, credentials) run on the
** calling thread, inside the call, and must not call the library on the
** same handle.
**
** The OS.  The store's files, its lock, the clock and randomness go
** through a table of functions, veld_platform.h's `veld_os` (the git
** repository under repo/ is read and written by libgit2); an app may pass
** its own in veld_store_options.os: copy veld_os_default() and replace
** entries.
*/
#ifndef VELD_H
#define VELD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* VELD_API marks what libveld exports.  Define VELD_STATIC before including
** this header when linking libveld.a on Windows; elsewhere it changes
** nothing. */
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
** library's (MAJOR * 1000000 + MINOR * 1000 + PATCH, the SQLite way).  An
** app that wants the library it was built against compares the two. */
#define VELD_VERSION_MAJOR  0
#define VELD_VERSION_MINOR  1
#define VELD_VERSION_PATCH  0
#define VELD_VERSION_STRING "0.1.0"
#define VELD_VERSION_NUMBER (VELD_VERSION_MAJOR * 1000000 + VELD_VERSION_MINOR * 1000 + VELD_VERSION_PATCH)

/* Return codes.  veld_errmsg() says which thing and why. */
#define VELD_OK          0
#define VELD_ERROR      -1  /* anything not listed below (I/O, out of memory) */
#define VELD_ENOTFOUND  -2  /* no such store, case, record or field */
#define VELD_EAUTH      -3  /* wrong passphrase or key */
#define VELD_EINTEGRITY -4  /* tampered or corrupt data: nothing was used */
#define VELD_EINVALID   -5  /* input rejected: malformed or against the rules */
#define VELD_EBUSY      -6  /* the store is open elsewhere (locked) */
#define VELD_EEXISTS    -7  /* the thing to create is already there */
#define VELD_EDENIED    -8  /* not allowed for this device or role */
/* A progress callback returned non-zero (veld_import, veld_sync, veld_join):
** the call stopped without changing a record (veld_export_json gives the
** same bytes as before); calling again without canceling does the work. */
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

/* ---- The store ---------------------------------------------------------- */

/*
** Options for creating and opening a store.  Versioned: set `version` to
** VELD_STORE_OPTIONS_VERSION (or start from veld_store_options_init) and
** leave unknown fields zero.  The struct itself is read during the call
** only; the `os` table it points to is kept by the handle and must stay
** valid and unchanged until veld_store_close.
*/
#define VELD_STORE_OPTIONS_VERSION 1
typedef struct veld_store_options {
	unsigned version;
	const struct veld_os *os;      /* NULL: the default OS table */
	int cipher;                    /* VELD_CIPHER_*, used on create */
	/* Argon2id cost for the passphrase, used on create and by
	** veld_store_passwd on a handle opened with these options; 0 picks
	** libsodium's "interactive" limits.  Stored in the key file. */
	unsigned long long pwhash_opslimit;
	size_t pwhash_memlimit;
	int busy_timeout_ms;           /* wait for a store open elsewhere; 0: 5000 */
	/* Device identity, used on create. */
	const char *device_name;       /* shown in logs; not personal data; NULL: "device" */
	const char *device_role;       /* "office", "assistant" or "volunteer" */
} veld_store_options;

/* Zero `opts` (not NULL) and set its version. */
VELD_API void veld_store_options_init(veld_store_options *opts);

/*
** veld_store_create — make a new store in directory `dir` (created, mode
** 0700, if missing): the master key, the key file sealed under the
** passphrase, the encrypted database and the device's signing and box
** keys.  `opts` NULL: the defaults, which name no role, so a store needs
** opts with `device_role`.
**
** *out: a new handle, open, on VELD_OK; on failure a handle holding the
** message (close it), or NULL with VELD_ERROR when memory ran out.  A
** failure after the key file was written removes the files it made (a
** directory it created stays).
**
** VELD_EINVALID  `dir` NULL or empty, not a directory, no valid role, an
**                unknown cipher or Argon2id limits out of range
** VELD_EEXISTS   `dir` already holds a store
** VELD_ERROR     `dir` cannot be made; I/O error; out of memory
*/
VELD_API int veld_store_create(veld_store **out, const char *dir,
                               const char *pass, size_t pass_len,
                               const veld_store_options *opts);

/*
** veld_store_open — open an existing store and take its lock (held until
** veld_store_close).  An older store layout is migrated in place, in one
** transaction.  `opts` NULL: the defaults (cipher, role and name are read
** from the store).
**
** *out: as for veld_store_create.
**
** VELD_EINVALID   `dir` NULL or empty
** VELD_ENOTFOUND  no directory `dir`, or no key file in it
** VELD_EAUTH      wrong passphrase; nothing was touched
** VELD_EINTEGRITY the key file is damaged, veld.db is missing, a page does
**                 not authenticate, or the store's layout is unknown
** VELD_EBUSY      the store is open in another handle for longer than
**                 `busy_timeout_ms`
** VELD_ERROR      the key file needs AES-256-GCM and this CPU lacks it;
**                 I/O error; out of memory
*/
VELD_API int veld_store_open(veld_store **out, const char *dir,
                             const char *pass, size_t pass_len,
                             const veld_store_options *opts);

/* Close the store, release its lock and wipe every key.  Accepts NULL and
** a handle whose open failed.  The handle and veld_errmsg's string are gone
** afterwards; `char **out` results stay valid until veld_free. */
VELD_API void veld_store_close(veld_store *store);

/* Message and code of the last failure on this handle; read them after a
** call failed (after a success they are usually "" and 0, but not always).
** The string belongs to the handle and lives until the next call on it or
** veld_store_close.  With NULL (an open that ran out of memory): "out of
** memory" and VELD_ERROR. */
VELD_API const char *veld_errmsg(const veld_store *store);
VELD_API int veld_errcode(const veld_store *store);

/*
** veld_store_passwd — seal the master key under a new passphrase and
** replace the key file atomically (the Argon2id cost comes from the options
** the handle was opened with).  Re-encrypts nothing: the old passphrase
** stops working, the data stays as it is.
**
** VELD_EINVALID  the Argon2id limits are out of range
** VELD_ERROR     I/O error: the key file is then the old one or the new
**                one, never a mix
*/
VELD_API int veld_store_passwd(veld_store *store, const char *new_pass, size_t new_len);

/*
** veld_store_verify — full check: every page authenticates (SQLite's
** integrity check reads them all), the database is consistent, every record
** parses and is stored in canonical form.  Changes nothing.
**
** VELD_EINTEGRITY  the message names the page, table or record that failed
*/
VELD_API int veld_store_verify(veld_store *store);

/*
** veld_store_compact — checkpoint the WAL into the database and VACUUM (in
** memory, through the encrypting VFS), giving freed space back to the file
** system.  Takes the write lock; the records are unchanged.
*/
VELD_API int veld_store_compact(veld_store *store);

/*
** veld_store_device_json — this device, for enrolment and display:
** {"id","name","role","sign_pk","box_pk"} (the public keys in hex).
** *out: the JSON on VELD_OK, NULL on failure.
**
** VELD_EINTEGRITY  the device identity in the store is missing or malformed
*/
VELD_API int veld_store_device_json(char **out, veld_store *store);

/* ---- Cases and records ------------------------------------------------- */

/*
** veld_case_new — create a case.  `header_json` is an object with "name"
** (non-empty) and "postcode" (a Belgian postcode, "1000"-"9999"), and
** optionally "birth" (YYYY-MM-DD, a day of the calendar, not after today
** by the store's clock), "address", "phone", "ref" (an external dossier
** number), "toestemming.<scope>" (a date).  The case header merges like
** any record.
**
** id_out: the new case id (VELD_IDSIZE bytes), written on VELD_OK only.
**
** VELD_EINVALID  not a JSON object, an unknown key, a missing or malformed
**                field (the message names it)
*/
VELD_API int veld_case_new(char *id_out, veld_store *store, const char *header_json);

/*
** veld_case_update — change fields of a case header: the keys of
** veld_case_new and "toestemming.<scope>" dates.  A key set to null clears
** an optional field; "name" and "postcode" cannot be cleared.  Keys not
** named keep their values.
**
** VELD_EINVALID   as for veld_case_new, or clearing "name" or "postcode"
** VELD_ENOTFOUND  no case `case_id` in this store (or the store holds only
**                 some of its records, not its header)
*/
VELD_API int veld_case_update(veld_store *store, const char *case_id, const char *header_json);

/*
** veld_case_list_json — every case this store can read, ordered by id:
** [{"id","name","postcode",... the header's shown fields,"records":n,
** "conflicts":n}].  A case this store holds records of without its header
** (a volunteer's Huiswijs cases) is listed as
** {"id","records","conflicts","header":false}.  Deleted cases are left out;
** "records" counts the live records.  *out: the JSON on VELD_OK, NULL on
** failure.
*/
VELD_API int veld_case_list_json(char **out, veld_store *store);

/*
** veld_case_show_json — one case: {"id","header":{shown fields},
** "header_conflicts":{field:[values]},"records":[record as
** veld_record_show_json, deleted ones left out],"conflicts":[{"record",
** "field","values"}]}.  "header" is null when this store does not hold the
** case's header.  The opening is written to the audit log.  *out: the JSON
** on VELD_OK, NULL on failure.
**
** VELD_ENOTFOUND  `case_id` is not an id, or this store knows no such case
*/
VELD_API int veld_case_show_json(char **out, veld_store *store, const char *case_id);

/*
** veld_record_put — create or update a record of form `form` (a name, not
** NULL) in case `case_id`, checked by the form's rules first: the record
** as it will be, with the form's computed values stored beside the fields.
** `record_id` NULL creates a new record; otherwise it names the record to
** update, which must be of this case and form and not deleted.
** `fields_json` is an object of field path -> value (null clears a field;
** NULL: {}).  Repeating groups are objects keyed by item id:
** {"acties": {"a1": {"status": "lopend"}}} sets the field
** "acties.a1.status".  Fields not named keep their values.
**
** id_out: the record id (the new one, or `record_id`), written on VELD_OK
** only.
**
** The form's checks (docs/forms.md): each value's type, bounds and
** options (a text without the form's max_length holds at most 10,000
** characters), required and visible fields, the form's rules.  A value
** the put gives a field that is hidden in the record is refused, not
** stored unseen (null clears it).  The record's canonical state may hold
** at most 256 KiB.
**
** VELD_EINVALID   `form` unknown, `fields_json` not an object, a reserved
**                 ("_...") or malformed field name, the record belongs to
**                 another case or form or is deleted, the case is deleted,
**                 the form's checks reject fields (the message lists
**                 every failing field: "2 field(s) rejected: datum: ..."),
**                 or the record would pass 256 KiB
** VELD_ENOTFOUND  no case `case_id`, or no record `record_id`
*/
VELD_API int veld_record_put(char *id_out, veld_store *store, const char *case_id,
                             const char *form, const char *record_id,
                             const char *fields_json);

/*
** veld_record_validate_json — check a put without storing anything: the
** arguments of veld_record_put, checked exactly as a put checks them (the
** case, the record being updated, the form, the fields and the form's
** rules).  `errors_json` must not be NULL.
**
** *errors_json: "[]" with VELD_OK; with VELD_EINVALID from the form's
** rules, every failing field as [{"field","message"}] (messages in Dutch,
** for the app to show); NULL for any other failure (the message is on the
** handle: a malformed `fields_json`, an unknown form, no such case or
** record (VELD_ENOTFOUND), a deleted case or record, or a record of
** another case or form (VELD_EINVALID)).
*/
VELD_API int veld_record_validate_json(char **errors_json, veld_store *store, const char *case_id,
                                       const char *form, const char *record_id, const char *fields_json);

/*
** veld_import — bulk import of JSON Lines (docs/cli.md): one record per
** line, {"case": CASE_ID | {"ref","name","postcode",...}, "form": NAME,
** "fields": {...}}.  Lines with the same "ref" share one case, made at its
** first line (which must carry "name" and "postcode").  Empty lines are
** skipped.  `jsonl` holds `len` bytes and need not end with a newline.
** Every line goes through the form's rules as in veld_record_put.
**
** All or nothing, in one transaction: a bad line is reported by its number
** ("line 4: ...") and nothing is stored.
**
** `progress` (may be NULL) is called every 1000 records and after the last,
** with the records done and the number of lines (empty ones included); a
** non-zero return cancels the import: VELD_ECANCELED, nothing stored.
**
** *count (may be NULL): the number of records stored on VELD_OK, 0 on
** failure.
**
** VELD_EINVALID   a line is not an object, lacks "form" or "fields", or its
**                 record is rejected as by veld_record_put
** VELD_ENOTFOUND  a line names a case id this store does not know
** VELD_ECANCELED  the progress callback asked to stop
*/
VELD_API int veld_import(long *count, veld_store *store, const char *jsonl, size_t len,
                         int (*progress)(long done, long total, void *payload), void *payload);

/* ---- Forms -------------------------------------------------------------- */

/*
** veld_form_list_json — the forms this store can use:
** [{"name","label","compartment","version","versions":[{"version",
** "origin"}]}], "version" the newest (the one a put writes), "versions"
** every version held, "origin" "shipped" (in the library) or "published"
** (by the office).  *out: the JSON on VELD_OK,
** NULL on failure.
*/
VELD_API int veld_form_list_json(char **out, veld_store *store);

/*
** veld_form_schema_json — the schema of form `form` as JSON: what a tablet
** app renders (docs/forms.md).  *out: the JSON on VELD_OK, NULL on failure.
**
** VELD_ENOTFOUND  no form `form`
*/
VELD_API int veld_form_schema_json(char **out, veld_store *store, const char *form);

/*
** veld_form_check — for form authors: load the form script at `path`
** (NAME.lua, at most 1 MiB) in the sandbox, without a store.
**
** *out: the schema on VELD_OK; on failure the message ("name.lua:LINE:
** ...", or NULL if memory ran out).  Free it in both cases.
**
** VELD_ENOTFOUND  no file `path`
** VELD_EINVALID   the file is not named NAME.lua or is too large, or the
**                 script or its declarations fail
*/
VELD_API int veld_form_check(char **out, const char *path);

/*
** veld_form_publish — office: publish the form script at `path` (NAME.lua,
** checked as veld_form_check checks it) as a new version of form NAME.
** Its `version` must be above every version of NAME this library ships or
** the office published; a compartment other than "social" or "huiswijs" is
** refused.  The script is stored, and the next veld_sync signs it into
** main (forms/NAME/VERSION), from where every device takes it: devices use
** the newest version they hold, records keep the version they were
** written with.  The source, as a JSON string, may take 60,000 bytes.
**
** *out (may be NULL): {"kind":"form","name","version"} on VELD_OK.
**
** VELD_EDENIED    this store is not the office
** VELD_ENOTFOUND  no file `path`
** VELD_EINVALID   the script fails its checks, its version is not above
**                 the versions held, or it is too large
*/
VELD_API int veld_form_publish(char **out, veld_store *store, const char *path);

/*
** veld_report_publish — office: the same for the report script at `path`
** (NAME.lua, which must compile).  A report declares no version: it gets
** the next one (a report the library ships is version 1).  `veld_report`
** by name runs the newest version held.
*/
VELD_API int veld_report_publish(char **out, veld_store *store, const char *path);

/*
** veld_form_validate_merged — the check the office applies to a record a
** device wrote (veld_sync_options.validate): the record's canonical state
** `record_json` (`len` bytes) at most 256 KiB, and its shown fields by the
** rules of version `form_version` of form `form` (0: the newest), the
** text bound of 10,000 characters included; a version this store does not
** hold is checked by that bound alone.  A deleted record and a case
** header pass.  0 when it passes;
** otherwise VELD_EINVALID (VELD_ERROR for a failure of the check itself)
** and the reason in `why`.  Leaves the handle's error alone.
*/
VELD_API int veld_form_validate_merged(char *why, size_t why_cap, veld_store *store, const char *record_json,
                                       size_t len, const char *form, int form_version, void *payload);

/*
** veld_record_show_json — one record: {"id","case","form","form_version",
** "deleted","fields":{path: shown value},"conflicts":{path:[values...]}},
** the shown (winning) value of every field.  A deleted record is shown with
** "deleted":true.  The opening is written to the audit log.  *out: the JSON
** on VELD_OK, NULL on failure.
**
** VELD_ENOTFOUND  `record_id` is not an id, no such record, or it names a
**                 case (see veld_case_show_json)
*/
VELD_API int veld_record_show_json(char **out, veld_store *store, const char *record_id);

/*
** veld_record_delete — delete a record: a versioned tombstone that syncs
** like an edit; a concurrent edit elsewhere makes a delete-against-edit
** conflict (veld_resolve with "_deleted").
**
** VELD_ENOTFOUND  no record `record_id`
** VELD_EINVALID   `record_id` names a case (cases are erased:
**                 veld_case_erase), or the record is already deleted
*/
VELD_API int veld_record_delete(veld_store *store, const char *record_id);

/*
** veld_export_json — every readable case and record, deleted ones
** included, in canonical form with sync metadata left out:
** {"format":1,"cases":[{"id","deleted","header","header_conflicts",
** "records":[...]}]}.  Two converged stores give the same bytes.  The
** export is written to the audit log.  *out: the JSON on VELD_OK, NULL on
** failure.
*/
VELD_API int veld_export_json(char **out, veld_store *store);

/*
** veld_audit_json — the audit log, oldest first:
** [{"seq","at" (ms since the epoch),"device","action","case","record"}]
** ("case" and "record" only where the entry has them).  `case_id` NULL for
** every entry, else the entries of that case.  *out: the JSON on VELD_OK,
** NULL on failure.
*/
VELD_API int veld_audit_json(char **out, veld_store *store, const char *case_id);

/* ---- Drafts: records being filled in (core/drafts.c) -------------------- */

/*
** A draft keeps what an app has gathered of a record that is not stored
** yet, so that nothing typed is lost: the app writes it after every answer
** and deletes it once the record is stored.  Drafts stay on this device,
** sealed in the store like everything else; they never sync, and dropping
** a case (erased, access taken back) drops its drafts.  The library does
** not check a draft against its form: `draft_json` is the app's JSON
** object, whose "fields" member (an object of field paths -> values), when
** there, holds the answers counted in a listing.
**
** veld_draft_put — create (`draft_id` NULL) or replace draft `draft_id`
** of `form` in case `case_id`.  id_out: the draft id (VELD_IDSIZE bytes),
** written on VELD_OK only.
**   VELD_ENOTFOUND  no case `case_id`, or no draft `draft_id`
**   VELD_EDENIED    the case was erased by the office
**   VELD_EINVALID   the case is deleted, `form` is not a form name,
**                   `draft_json` is not an object (or its "fields" not an
**                   object), or `draft_id` is a draft of another case or form
** veld_draft_get — *out: {"id","case","form","updated" (ms since the
**   epoch),"answers","draft": the object as put}.  VELD_ENOTFOUND: no draft.
** veld_draft_list_json — *out: [{"id","case","form","updated","answers"}],
**   newest first, of case `case_id` and form `form` (either NULL: any).
** veld_draft_delete — VELD_ENOTFOUND: no draft `draft_id`.
** *out is NULL on failure; free it with veld_free.
*/
VELD_API int veld_draft_put(char *id_out, veld_store *store, const char *draft_id, const char *case_id,
                            const char *form, const char *draft_json);
VELD_API int veld_draft_get(char **out, veld_store *store, const char *draft_id);
VELD_API int veld_draft_list_json(char **out, veld_store *store, const char *case_id, const char *form);
VELD_API int veld_draft_delete(veld_store *store, const char *draft_id);

/* ---- Organisation, enrolment and sync (sync/, docs/sync.md) ------------ */

/*
** veld_org_init — create the office store in `dir` (as veld_store_create,
** role "office", device name "office" unless `opts` names one) with the
** organisation's signing key, and the hub: a path gets a new bare
** repository; a URL must name an existing empty repository.  The registry
** (organisation and the office device) is committed to `main` and, for a
** hub on a path, pushed at once; for a URL hub the first veld_sync (with
** credentials) publishes it.
**
** *out: as for veld_store_create.  The store is made first: when a later
** step fails, it stays in `dir` with the handle open on it (remove the
** directory before trying again).
**
** VELD_EINVALID  `org_name` or `hub` NULL or empty, or as veld_store_create
** VELD_EEXISTS   `dir` already holds a store, or the hub's path is a
**                directory that is not empty
** other codes    as veld_sync, for the first push to a hub on a path
*/
VELD_API int veld_org_init(veld_store **out, const char *dir, const char *pass, size_t pass_len,
                           const char *org_name, const char *hub, const veld_store_options *opts);

/*
** veld_enroll — office: accept an enrolment request (the JSON of
** veld_store_device_json on the new device, which `veld device init`
** writes) for postcode ranges `region` ("1500-1999,3000-3499"; NULL or ""
** for none).  An assistant is given the keys of the existing cases in its
** region.  Published at the next sync.
**
** id_out: the device id (VELD_IDSIZE bytes), written on VELD_OK only.
**
** VELD_EDENIED    this store is not the office
** VELD_EINVALID   the request is malformed, its role is not "assistant" or
**                 "volunteer", or `region` is malformed
** VELD_EINTEGRITY the request's device id does not match its signing key
** VELD_EEXISTS    the device is already enrolled
*/
VELD_API int veld_enroll(char *id_out, veld_store *office, const char *request_json, const char *region);

/*
** veld_device_revoke — office: revoke a device.  Its commits after the last
** one merged are rejected from the next sync on.
**
** VELD_EDENIED    this store is not the office
** VELD_EINVALID   `device_id` NULL or the office itself
** VELD_ENOTFOUND  no enrolled, unrevoked device `device_id`
*/
VELD_API int veld_device_revoke(veld_store *office, const char *device_id);

/*
** Options of the calls that talk to the hub (veld_sync, veld_join).
** Versioned like veld_store_options: start from veld_sync_options_init.
** Read during the call only; NULL everywhere means no callbacks, no flags.
*/
typedef struct veld_sync_options {
	unsigned version; /* VELD_SYNC_OPTIONS_VERSION */
	/* Progress (may be NULL): `stage` is "commit", "fetch", "verify",
	** "merge" or "push" (also "repack" and "prune" during maintenance, and
	** "receiving objects", "indexing objects", "sending objects" during a
	** transfer), with `done` of `total` in the stage's own unit.  The
	** string lives during the callback only.  A non-zero return cancels the
	** call: VELD_ECANCELED. */
	int (*progress)(const char *stage, size_t done, size_t total, void *payload);
	/* Credentials for HTTP hubs (may be NULL: none, and a hub that asks for
	** a login gives VELD_EAUTH).  Called at most once per transfer, when
	** the transfer needs a login: `user` holds the user name from the URL
	** or "", `pass` is ""; fill both (NUL-terminated, within `user_cap` and
	** `pass_cap`) and return 0, or return non-zero to give up: VELD_EAUTH.
	** `url` is the hub's. */
	int (*credentials)(char *user, size_t user_cap, char *pass, size_t pass_cap,
	                   const char *url, void *payload);
	void *payload; /* handed to both callbacks */
	unsigned flags; /* VELD_SYNC_* */
	/* Version 2.  Office: the form check of what devices write (may be
	** NULL: the write rules alone).  Verification calls it for each record
	** a device changed that passed the write rules, with the record's
	** canonical state (`len` bytes), its form and the form version it was
	** written with (0: none recorded).  0 accepts the change; any other
	** return refuses that change alone with code "form" and the reason
	** written into `why` (at most `why_cap` bytes with its NUL).  The
	** library's own check is veld_form_validate_merged. */
	int (*validate)(char *why, size_t why_cap, veld_store *store, const char *record_json, size_t len,
	                const char *form, int form_version, void *payload);
	void *validate_payload; /* handed to validate */
} veld_sync_options;
#define VELD_SYNC_OPTIONS_VERSION 2
/* Zero `opts` and set its version.  Accepts NULL (does nothing). */
VELD_API void veld_sync_options_init(veld_sync_options *opts);
/* Prune unreachable objects after this sync (here, and on a hub on a path
** when run by the office): what makes an erasure final.  It also happens
** by itself after an erasure and every 50 syncs. */
#define VELD_SYNC_PRUNE 0x1

/*
** veld_join — device: fetch the registry from `hub`, trust the
** organisation key found there (trust on first use: from now on only
** `main` commits it signs are accepted), find this device's enrolment and
** keep `hub` as the remote.  The records of `main` merge at the first
** veld_sync.  `opts` may be NULL.
**
** VELD_ENOTFOUND  no hub at `hub` (a path), the hub has no organisation
**                 yet, or this device is not enrolled (yet): the office
**                 runs veld_enroll and syncs
** VELD_EINTEGRITY the hub's organisation entry or `main` does not verify,
**                 or the registry enrols this device with another role
** VELD_EAUTH      the hub refused the credentials (or none were given)
** VELD_ECANCELED  the progress callback asked to stop
** VELD_ERROR      the hub cannot be reached
*/
VELD_API int veld_join(veld_store *store, const char *hub, const veld_sync_options *opts);

/*
** veld_sync — commit local changes (sealed, signed), fetch, verify, merge,
** push (docs/sync.md, "one sync in order").  `opts` may be NULL.  A sync
** that fails part way keeps the steps it finished (its local commit, the
** objects fetched, a merge): the next sync goes on from there.
**
** *summary_json (may be NULL):
** {"pushed":n,"fetched":n,"merged":n,"conflicts":n,"rejected":[{"ref",
** "commit","reason"[,"code","device","case","record"]}]}.  It is written
** on VELD_OK and on VELD_EINTEGRITY, and may be written with what was done
** so far on other failures; it is NULL otherwise.  Free it in every case.
** A change out of rule (a path, role or region a device may not write, a
** revoked device's ref, access taken back...) is refused alone: listed
** once with its code, everything else merged, and the sync is VELD_OK.
**
** VELD_EINTEGRITY forgery was found (a bad or unknown signature, a head not
**                 signed by its owner, a rewound ref, damaged objects): that
**                 ref was refused whole and is listed; the others merged
** VELD_ENOTFOUND  this store has no hub yet (veld_join)
** VELD_EDENIED    the hub refused a push
** VELD_EAUTH      the hub refused the credentials (or none were given)
** VELD_ECANCELED  the progress callback asked to stop
** VELD_ERROR      the hub cannot be reached; I/O error
*/
VELD_API int veld_sync(char **summary_json, veld_store *store, const veld_sync_options *opts);

/*
** veld_case_consent — record the client's consent for `scope` ("social" or
** "huiswijs") on the case header: "toestemming.<scope>" is set to today's
** date (UTC, from the OS table's clock), "toestemming_door.<scope>" to this
** device's id, and a withdrawal of it ("toestemming_ingetrokken.<scope>")
** is cleared.
** veld_case_consent_withdraw — withdraw it: "toestemming_ingetrokken.
** <scope>" is set to today.  At the office's next sync every volunteer that
** holds a key of the case loses it (docs/sync.md, "Access taken back"):
** the compartment's key is rotated without it, and its device drops the
** case when it syncs.
**
** VELD_EINVALID   `scope` is neither
** VELD_ENOTFOUND  no case `case_id` (header) in this store
** VELD_EDENIED    this device may not write the case header (its role or
**                 region)
*/
VELD_API int veld_case_consent(veld_store *store, const char *case_id, const char *scope);
/* The same with an end date `until` ("YYYY-MM-DD", the last day the
** consent holds: from the day after, the office takes the scope away as
** after a withdrawal, and veld_case_share refuses) and a `note` (UTF-8, at
** most 1000 bytes: how and where it was given); both may be NULL.  The
** header keeps them as "toestemming_tot.<scope>" and
** "toestemming_notitie.<scope>".  VELD_EINVALID also for a bad date or
** note. */
VELD_API int veld_case_consent_ext(veld_store *store, const char *case_id, const char *scope, const char *until,
                                   const char *note);
VELD_API int veld_case_consent_withdraw(veld_store *store, const char *case_id, const char *scope);

/*
** veld_case_unshare — take a share back from one device: the case header's
** "toegang_ingetrokken.<device_id>" is set to today; at the office's next
** sync the device loses the case as after a withdrawal (keys rotated
** without it, its device drops the case).  `scope` names the compartment
** shared ("social" or "huiswijs"); the device loses the case whole.  A
** share taken back cannot be given again (not supported yet).
**
** VELD_EINVALID   `scope` is neither
** VELD_ENOTFOUND  no case `case_id` here, or no enrolled device `device_id`
** VELD_EDENIED    this device may not write the case header
*/
VELD_API int veld_case_unshare(veld_store *store, const char *case_id, const char *device_id,
                               const char *scope);

/*
** veld_case_share — give device `device_id` the key of compartment `scope`
** ("social" or "huiswijs") of the case: sealed to it at the next sync.
**
** VELD_EINVALID   `scope` is neither
** VELD_ENOTFOUND  no case `case_id` (header) here, or no enrolled device
**                 `device_id`
** VELD_EDENIED    no recorded consent for `scope` (veld_case_consent), or
**                 it was withdrawn or has ended, or the device's role may not hold that
**                 compartment (volunteers hold only "huiswijs"), or a
**                 share of the case with it was taken back
*/
VELD_API int veld_case_share(veld_store *store, const char *case_id, const char *device_id,
                             const char *scope);

/*
** veld_case_erase — office: crypto-shred a case everywhere.  Its records
** and keys leave this store now; the next sync publishes the erasure, every
** device deletes its copy and its sealed keys, and unreachable objects are
** pruned.  The records' history stays in git, sealed with keys that no
** longer exist.  Cannot be undone.
**
** VELD_EDENIED    this store is not the office
** VELD_ENOTFOUND  no case `case_id` (header) in this store
*/
VELD_API int veld_case_erase(veld_store *store, const char *case_id);

/*
** veld_conflicts_json — every field with more than one live value, case
** headers included, ordered by case and record:
** [{"case","record","form","field","values":[shown first, ...],
** "versions":[{"value","device","device_name","at"}, ...]}]: "versions"
** says who wrote each value, in the order of "values": the device id, its
** name in the registry (null when this store does not know the device)
** and "at", the wall time of the write's clock stamp (ms since the
** epoch).  For a delete against an edit ("_deleted": [true, false]),
** `false` is the newest edit the delete did not see.  *out: the JSON on
** VELD_OK, NULL on failure.
*/
VELD_API int veld_conflicts_json(char **out, veld_store *store);

/*
** veld_resolve — resolve a conflict by writing `value_json` (any JSON value
** but an object) to `field` of `record_id` (a record or a case id, for a
** header's conflicts); the write supersedes every value this store holds.
** Field "_deleted" with true or false settles a delete-against-edit
** conflict.  The value is checked like a put of that one field
** (veld_record_put: the form's checks of the record as it will be, the
** size bound; a header's field by veld_case_update's rules), also in a
** deleted record; a refused value stores nothing.  A computed value is
** not resolved by hand: any change of the record writes it anew, which
** settles its conflict.
**
** VELD_EINVALID   `field` empty or reserved ("_..." other than "_deleted"),
**                 `value_json` not JSON or an object, "_deleted" with a
**                 value that is not true or false, a value the form (or
**                 the header's rules) refuses, naming the field, a
**                 computed field, or a record that would pass 256 KiB
** VELD_ENOTFOUND  no record `record_id`, or it has no field `field`
*/
VELD_API int veld_resolve(veld_store *store, const char *record_id, const char *field,
                          const char *value_json);

/*
** veld_log_json — who changed what, when: the signed history of this
** store's ref (`main` at the office, its device ref elsewhere, which holds
** the commits it merged), merges left out, newest first:
** [{"commit","signer" (a device id, or "org"),"at" (ms since the epoch),
** "records":[{"case","record"}]}].  `case_id` NULL for every commit, else
** the commits that touched that case.  "[]" for a store that never synced.
** *out: the JSON on VELD_OK, NULL on failure.
*/
VELD_API int veld_log_json(char **out, veld_store *store, const char *case_id);

/*
** veld_case_access_json — office: every device that holds a key of case
** `case_id`, per compartment, and why, as far as the office can see (its
** own shares and every keys ref it fetched at its last sync): [{"device",
** "name","role","compartment","keys" (how many of the case's keys of that
** compartment it holds),"newest" (it holds the newest epoch),"why"
** ("office", "region" or "share"),"revoked","consent" (for a share: the
** case header's toestemming.<compartment>, or null)}], by compartment and
** device.  *out freed with veld_free.
**
** VELD_EDENIED    not the office
** VELD_ENOTFOUND  the office holds no key of the case
** VELD_EINVALID   `case_id` is not 32 hex digits
*/
VELD_API int veld_case_access_json(char **out, veld_store *store, const char *case_id);

/*
** veld_refused_json — the changes verification did not accept
** (docs/sync.md, "Refusals"), oldest first: on a device its own (as the
** office published them, or as this store found them), on the office
** every device's: [{"device","case","record","form" (when the record is
** held here),"code","reason","commit","at" (ms since the epoch),"held"}].
** "code" names the rule ("role", "header", "region", "postcode", "path",
** "remove", "erased", "key", "open", "revoked"); "reason" says it in
** words, without client data.  "held": the refused record is still in
** this store, readable, until someone re-enters it where it belongs or
** deletes it.  A device's revoked ref is listed with empty "case" and
** "record".  *out: the JSON on VELD_OK (free with veld_free), NULL on
** failure.
*/
VELD_API int veld_refused_json(char **out, veld_store *store);

/*
** veld_repository_verify — check the store's git repository: every object
** reads back with its hash, every commit of this store's ref signed by this
** store carries a valid signature, every record blob on it opens.  Changes
** nothing.  A store that never synced passes.
**
** VELD_EINTEGRITY  the message names the object or commit that failed
*/
VELD_API int veld_repository_verify(veld_store *store);

/* ---- Reports (scripts/reports/, docs/reports.md) ---------------------- */

/*
** veld_report — run the report named `name` ("jaarcijfers", "evolutie":
** a report this library ships, never a path) over the store and render it
** in `format` ("text", "csv", "json" or "html"; NULL: "text") into *out.
** `params_json` is an object handed to the script as `params`:
** {"year": 2017}, {"case": "<case id>"}, ... (NULL: {}).
**
** Read-only: the script sees one snapshot of the store and cannot write.
** It runs in the Lua sandbox with a budget (256 MiB, 10^9 instructions,
** 60 s, 50 million records read); a script over its budget fails.
**
** *out: the rendered report on VELD_OK, NULL on failure.
**
** VELD_ENOTFOUND  no report `name`
** VELD_EINVALID   `out` NULL, `name` NULL or empty, a bad format or
**                 parameters, or a failing script (the message says where:
**                 "jaarcijfers.lua:LINE: ...")
*/
VELD_API int veld_report(char **out, veld_store *store, const char *name, const char *params_json,
                         const char *format);

/*
** veld_report_file — the same for the report script at `path` (for report
** authors; at most 1 MiB, read through the store's OS table).  Messages
** name the script by its file name.
**
** VELD_ENOTFOUND  no file `path`
** VELD_EINVALID   as veld_report, or the file is too large
*/
VELD_API int veld_report_file(char **out, veld_store *store, const char *path, const char *params_json,
                              const char *format);

/* ---- Memory and version ------------------------------------------------- */

/* Free memory returned by the library (every `char **out` result).
** Accepts NULL. */
VELD_API void veld_free(void *p);

/* Library version, e.g. "0.1.0" (a static string, never freed), and as a
** number: VELD_VERSION_NUMBER of the header the library was built with. */
VELD_API const char *veld_version(void);
VELD_API int veld_version_number(void);

#ifdef __cplusplus
}
#endif
#endif /* VELD_H */

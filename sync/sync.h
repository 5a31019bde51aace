/*
** sync.h — the internal interface of sync/ (the one header of this folder).
**
** sync/ turns the store into git objects and back (docs/sync.md):
**   envelope.c  the record blob: sealed, deterministic, bound to its path
**   keyring.c   sealed case-key entries for the keys refs
**   registry.c  org-signed registry entries (org, devices, revocations)
**   scripts_dist.c  published forms and reports in main; the office's
**               form check of records at verification
**   context.c, state.c and one file per stage (commit.c, verify.c,
**               merge.c, keys.c, erase.c, run.c, org.c, ...): one sync,
**               commit, fetch, verify, merge, push, and the calls around it
**   git/        the git layer, which knows git and not veld (git/git.h):
**               the repository handle, the object batch, trees, diffs,
**               signed commits, refs, fetch and push (a hub on a path, a
**               push over smart HTTP with its pack, libgit2's transports)
**               and repack with prune; one file per concern
** sync/ depends on core/ and platform/; nothing in core/ includes it.
*/
#ifndef VELD_SYNC_H
#define VELD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* ---- record envelope (envelope.c) -------------------------------------- */

#define VELD_ENV_MAGIC       "VLD1"
#define VELD_ENV_VERSION     1
#define VELD_ENV_ALG_XCHACHA 1
#define VELD_KEYIDBYTES      16
#define VELD_ENV_HEADERBYTES 46 /* magic 4, version 1, alg 1, key id 16, nonce 24 */
#define VELD_ENV_TAGBYTES    16

/* Seal `pt` (a record's canonical JSON) for the blob at
** cases/../<case_id>/<record_id>.  Deterministic: the same inputs give the
** same bytes.  *out is malloc'd (free()).  VELD_EINVALID if an id is not 32
** lowercase hex digits or an argument is missing. */
int veld_env__seal(unsigned char **out, size_t *out_len, const unsigned char *key,
                   const unsigned char *key_id, const char *case_id, const char *record_id,
                   const unsigned char *pt, size_t pt_len);

/* Open a blob found at the path of (case_id, record_id) with `key`.
** VELD_EINTEGRITY for anything malformed or failing authentication, with
** a message in err that names the record id (also when the blob opens but
** its nonce is not the one derived from its content).  VELD_EINVALID if
** `key` is NULL or an id is not 32 lowercase hex digits.  *pt is malloc'd
** and NUL-terminated (free()); the caller wipes it if it must. */
int veld_env__open(unsigned char **pt, size_t *pt_len, const unsigned char *blob, size_t len,
                   const unsigned char *key, const char *case_id, const char *record_id,
                   veld_err *err) VELD_WARN_UNUSED;

/* The key id a blob claims (no decryption).  VELD_EINTEGRITY if the header
** is malformed. */
int veld_env__key_id(unsigned char *key_id, const unsigned char *blob, size_t len);

/* ---- sealed key entries (keyring.c) ------------------------------------ */

/* A case key as it travels: which case, which compartment, its id and the
** 32 secret bytes (`key` lives in sodium_malloc'd memory). */
typedef struct veld_case_key {
	char case_id[VELD_IDSIZE];
	char compartment[32];          /* "social", "huiswijs" */
	unsigned char key_id[VELD_KEYIDBYTES];
	unsigned char *key;            /* VELD_KEYBYTES, sodium_malloc */
	uint32_t epoch;                /* 0: the case's first key; rotations count up */
} veld_case_key;

/* The sealed payload is a fixed binary record (keyring.c), so a sealed
** entry has one of two sizes: payload + crypto_box_SEALBYTES (48). */
#define VELD_KEYRING_PAYLOADBYTES 100
#define VELD_KEYRING_SEALEDBYTES  148
/* A rotated key (epoch 1 and up) carries its epoch: 4 bytes more. */
#define VELD_KEYRING_SEALED2BYTES 152

/* Overwrite *k with a fresh random key id and key (k->key allocated; clear a
** key held in *k first); the caller then fills case_id and compartment. */
int veld_case_key__new(veld_case_key *k);
/* Wipe and sodium_free k->key, zero *k (k->key becomes NULL).  NULL ok. */
void veld_case_key__clear(veld_case_key *k);

/* Seal `k` to a recipient's X25519 public key (crypto_box_seal).
** *out malloc'd, VELD_KEYRING_SEALEDBYTES long (VELD_KEYRING_SEALED2BYTES
** for k->epoch > 0).  VELD_EINVALID if case_id is
** not 32 lowercase hex digits or compartment not [a-z_]{1,31}. */
int veld_keyring__seal(unsigned char **out, size_t *out_len, const veld_case_key *k,
                       const unsigned char *recipient_box_pk);
/* Open a sealed entry with this device's box key pair; fills k (allocating
** k->key; *k is overwritten).  VELD_EINTEGRITY if it does not open or is
** malformed; *k is then zeroed with k->key NULL. */
int veld_keyring__open(veld_case_key *k, const unsigned char *sealed, size_t len,
                       const unsigned char *box_pk, const unsigned char *box_sk,
                       veld_err *err) VELD_WARN_UNUSED;
/* The same with the key written into `key_buf`: VELD_KEYBYTES of guarded
** memory that stays the caller's (k->key points to it; wipe it with
** sodium_memzero, never veld_case_key__clear).  Opening many entries so
** costs no guarded allocation each.  On failure key_buf is wiped. */
int veld_keyring__open_into(veld_case_key *k, unsigned char *key_buf, const unsigned char *sealed, size_t len,
                            const unsigned char *box_pk, const unsigned char *box_sk,
                            veld_err *err) VELD_WARN_UNUSED;

/* ---- signed registry entries (registry.c) ------------------------------ */

/* Entries longer than this are refused unread. */
#define VELD_REGISTRY_MAXBYTES 65536

/* Wrap `body` (an object) as {"body": body, "sig": hex(Ed25519(
** "veld-registry\0" || canonical body))}.  Returns canonical JSON text
** (malloc'd, free()) or NULL. */
char *veld_registry__sign(const json_t *body, const unsigned char *sign_sk);
/* Verify a signed entry against `sign_pk`; on success *body is a new
** reference to the body.  The text must be exactly the canonical form
** veld_registry__sign writes (re-formatted copies are refused).
** VELD_EINTEGRITY otherwise, with a message. */
int veld_registry__verify(json_t **body, const char *text, size_t len,
                          const unsigned char *sign_pk, veld_err *err) VELD_WARN_UNUSED;


/* ---- the sync stages (context.c, state.c, and a file per stage) ---------- */

/*
** One sync is a run of stages over one context (docs/sync.md):
**   context.c     the context: keys, the open repository, progress and
**                 cancellation, signing, paths of records in a tree
**   state.c       the sync state: every SQL statement on the sync tables
**   commit.c      seal dirty records into a commit; the keys ref
**   verify.c      verify a fetched ref: signatures, paths, blobs
**   merge.c       merge records and the registry of verified refs
**   keys.c        case keys: made, shared by region, taken from keys refs
**   erase.c       erasure, local and published
**   run.c         veld_sync: commit, fetch, verify and merge, push, upkeep
**   rotate.c      key epochs: the office rotates what a revoked device held
**   holders.c     who holds which key (rotate.c, access.c)
**   access.c      veld_case_access_json: who holds a case's keys, and why
**   org.c share.c log.c refused.c repoverify.c   the other public calls
** Every function returns 0 or a negative VELD_E* code with the message on
** the store's error (c->err).  The context holds no store transaction:
** the callers open them (run.c says where).
*/
#include <git2.h>

struct veld_remote_opts; /* the git plumbing's, below */

#define VELD_REF_MAIN       "refs/heads/main"
#define VELD_REF_DEV_PREFIX "refs/veld/devices/"
#define VELD_REF_KEY_PREFIX "refs/veld-keys/"
#define VELD_HUB_PREFIX     "refs/veld-hub/"
#define VELD_ORG_SIGNER     "org"
/* Parents a merge commit may have: this store's head and at most
** VELD_MAX_PARENTS - 1 merged heads (the rest are recorded in sync_refs all
** the same); verification accepts that many. */
#define VELD_MAX_PARENTS    32
/* A case's directory in a tree: "cases/<c0c1>/<c2>/<case>" (docs/sync.md,
** "Trees"). */
#define VELD_CASE_DIR_LEN   (6 + 3 + 2 + 32)

/* Refs a commit step moves (this store's ref, its keys ref): held here
** until the store's transaction is sure to commit (commit.c). */
#define VELD_STAGED_REFS 2
typedef struct veld_staged_ref {
	char name[128];
	git_oid id;
} veld_staged_ref;

typedef struct veld_syncctx {
	veld_store *s;
	veld_err *err;
	struct veld_repo *repo;  /* owned by the store's sync slot */
	const veld_sync_options *opts;
	const char *me;
	int office;
	unsigned char *dev_sk;   /* this device's signing key */
	unsigned char *org_sk;   /* the organisation's (office only) */
	unsigned char *box_sk;
	unsigned char *blob_key; /* a case key being read, wiped after each use */
	unsigned char box_pk[32];
	unsigned char org_pk[32];
	int have_org;
	char hub[1024];
	int canceled;            /* the progress callback asked to stop */
	char cancel_stage[32];
	veld_staged_ref staged[VELD_STAGED_REFS];
	size_t n_staged;
	/* results */
	json_t *rejected;
	size_t forged;           /* refs of c->rejected refused whole */
	size_t pushed, fetched, merged;
	json_t *new_key_cases;   /* case ids whose keys arrived in this sync */
	git_oid *merged_heads;   /* heads merged this sync: extra parents */
	size_t n_merged_heads;
	int prune_due;           /* an erasure left this store's tree */
	int self_revoked;        /* main revokes this very device */
	int keys_moved;          /* a keys ref of another store moved in this sync */
	int headers_changed;     /* a case header was merged or waits to be committed */
	int fault_checked;       /* veld_sync__fault_side found damage and said so */
} veld_syncctx;

/* context.c.  ctx_open: open (or create) the store's repository and load
** the keys; `need_hub` makes a store without a hub VELD_ENOTFOUND.  *c is
** always initialised: ctx_free it whatever ctx_open returned. */
int veld_sync__ctx_open(veld_syncctx *c, veld_store *s, const veld_sync_options *opts, int need_hub);
void veld_sync__ctx_free(veld_syncctx *c);
/* Tell the caller; a non-zero answer cancels: VELD_ECANCELED (and every
** later call says so again without asking). */
int veld_sync__progress(veld_syncctx *c, const char *stage, size_t done, size_t total);
/* `rc` of a transfer, or VELD_ECANCELED if progress canceled it. */
int veld_sync__transfer_rc(veld_syncctx *c, int rc);
/* Options of a transfer: credentials and progress through the context. */
void veld_sync__remote_opts(veld_syncctx *c, struct veld_remote_opts *ro);
void veld_sync__oid_hex(char *out, const git_oid *id);
void veld_sync__case_dir(char *out, size_t cap, const char *case_id);
void veld_sync__record_path(char *out, size_t cap, const char *case_id, const char *record_id);
/* "<case dir>/<record>" -> the two ids; 0 if well formed. */
int veld_sync__parse_record_path(const char *path, char *case_id, char *record_id);
typedef struct veld_refusal_row veld_refusal_row; /* state.c's, below */
/* A ref refused whole (forged, tampered, rewound, damaged): add
** {"ref","commit","reason"} to c->rejected and count it in c->forged. */
void veld_sync__reject(veld_syncctx *c, const char *ref, const git_oid *commit, const char *reason);
/* repoverify.c.  A sync that failed with `rc` (VELD_ERROR, VELD_ENOTFOUND,
** VELD_EINTEGRITY, or any code once a ref was refused whole) or refused
** something (rc 0): is a repository damaged?
** This store's own: VELD_EINTEGRITY saying so, never the hub's fault, and
** nothing this sync rejected is listed (c->rejected emptied);
** else with `hub_too` a hub on a path: VELD_EINTEGRITY naming the hub;
** else `rc` as it was.  Once damage was said, later calls return rc.
** Cost: the repositories checked whole (veld_repo__check): call it only
** when something failed. */
int veld_sync__fault_side(veld_syncctx *c, int rc, int hub_too);
/* One change refused alone (docs/sync.md, "Refusals"): record `r` in the
** store (state.c) and, with `report`, the first time this store records a
** refusal of r->device at r->path, list it under "rejected" as
** {"ref","device","case","record","commit","code","reason"}. */
int veld_sync__refusal_note(veld_syncctx *c, const veld_refusal_row *r, const char *ref, int report);
/* The same for a change this store refuses itself: fills in r->blob (from
** `blob`, NULL for none), the time, and "" for a missing case or record;
** reports it. */
int veld_sync__refuse_change(veld_syncctx *c, veld_refusal_row *r, const git_oid *blob, const char *ref);
/* Codes of refusals sync itself makes (core's VELD_RULE_* are the others). */
#define VELD_REFUSED_PATH    "path"    /* a path outside the cases a device may write */
#define VELD_REFUSED_REMOVE  "remove"  /* a record removed instead of tombstoned */
#define VELD_REFUSED_ERASED  "erased"  /* a change to a case the office erased */
#define VELD_REFUSED_KEY     "key"     /* sealed with a key the verifier does not know for the case */
#define VELD_REFUSED_OPEN    "open"    /* a blob that does not open, or holds another record */
#define VELD_REFUSED_REVOKED "revoked" /* written by a revoked device */
#define VELD_REFUSED_ACCESS  "access"  /* by a device whose access to the case was taken back */
#define VELD_REFUSED_FORM    "form"    /* a record that does not pass its form (the office's check) */
#define VELD_REFUSED_SCRIPT  "script"  /* a form or report entry of main that does not verify */
/* Where main carries the office's refusals: refused/<device>/<entry>. */
#define VELD_REFUSED_DIR     "refused/"
/* ... and access taken back: access/<device>/<case>. */
#define VELD_ACCESS_DIR      "access/"
/* A 32-byte public key from 64 hex digits: 0, or -1 (NULL or malformed). */
int veld_sync__key_from_hex(unsigned char *out32, const char *hex);
/* This store's ref: main on the office, its device ref elsewhere. */
const char *veld_sync__own_ref(veld_syncctx *c, char *buf, size_t cap);
/* The head of this store's ref: 0 with *have 1, or 0 with *have 0 if the
** ref has no commit yet; negative on error. */
int veld_sync__own_head(git_oid *out, int *have, veld_syncctx *c);
/* veld_sign_cb over an Ed25519 secret key (payload). */
int veld_sync__sign(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload);
/* veld_pubkey_cb: "org" or an enrolled, unrevoked device (payload: c). */
int veld_sync__pubkey(unsigned char *pk32, const char *signer, void *payload);
/* The same, revoked devices included: their signatures still verify, and
** their changes are then refused as revoked rather than forged. */
int veld_sync__pubkey_revoked(unsigned char *pk32, const char *signer, void *payload);
/* The signer a commit names in its veldsig header (not verified). */
int veld_sync__header_signer(char *out, size_t cap, veld_syncctx *c, const git_oid *id);

/* commit.c: seal dirty records (and the office's unpublished registry
** entries, every store's unpublished erasures) into a commit on this
** store's ref with the heads merged in this sync as extra parents; rebuild
** the keys ref when keys_dirty.  The refs are staged, not moved: refs_apply
** moves them, inside the caller's transaction, when it is sure to commit;
** refs_tip reads a ref as it will be. */
int veld_sync__commit_local(veld_syncctx *c);
int veld_sync__refs_apply(veld_syncctx *c);
int veld_sync__refs_tip(git_oid *out, veld_syncctx *c, const char *name);
/* The changes one commit makes to a tree (commit.c keeps the layout). */
typedef struct veld_changeset veld_changeset;
/* Set `path` to blob `id` (NULL: remove the path). */
int veld_sync__changeset_put(veld_syncctx *c, veld_changeset *cs, const char *path, const git_oid *id);
/* What an iteration that adds to a changeset carries (erase.c,
** scripts_dist.c). */
typedef struct veld_changectx {
	veld_syncctx *c;
	veld_changeset *cs;
} veld_changectx;
/* Sign `body` (a new reference, consumed) with the organisation key and
** set `path` to the signed entry. */
int veld_sync__changeset_add_signed(veld_syncctx *c, veld_changeset *cs, const char *path, json_t *body);

/* verify.c.  verify_ref: every new commit of `head` (fetched as `ref`, owned
** by `owner`: a device id or VELD_ORG_SIGNER).  0 if all pass; 1 when the
** ref is rejected (recorded in c->rejected); negative on error.
** open_blob: open blob `id` at record path (case_id, record_id) if a key is
** held; NULL with *rec set (NULL when unreadable here), or the reason to
** refuse it (in `why` or static) with its code in *code (VELD_REFUSED_KEY
** or VELD_REFUSED_OPEN). */
int veld_sync__verify_ref(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head);
const char *veld_sync__open_blob(veld_syncctx *c, const git_oid *id, const char *case_id,
                                 const char *record_id, veld_record **rec, char *compartment, size_t ccap,
                                 const char **code, char *why, size_t wcap);

/* merge.c.  merge_ref: merge what `head` changed since the last merged head
** of `ref` (records, and with `registry` the registry and erasures of
** main), then record `head` in sync_refs.  merge_blob: one record blob.
** read_signed: the org-signed entry in blob `id` (*body a new reference). */
int veld_sync__merge_ref(veld_syncctx *c, const char *ref, const git_oid *head, int registry, int records);
int veld_sync__merge_blob(veld_syncctx *c, const char *case_id, const char *record_id, const git_oid *id);
int veld_sync__read_signed(json_t **body, veld_syncctx *c, const char *path, const git_oid *id);
/* sync_refs as git ids: get is VELD_ENOTFOUND for a ref never merged. */
int veld_sync__synced_get(git_oid *out, veld_syncctx *c, const char *ref);
int veld_sync__synced_set(veld_syncctx *c, const char *ref, const git_oid *id);

/* keys.c.  ensure_key: the key of (case, compartment), made now (both
** compartments, shared by region) if this store has none.  add_share: seal
** `key_hex` to `recipient` at the next commit.
** take_keys: the entries of a keys ref sealed to this device.
** rescan_new_keys: cases whose keys arrived in this sync.  keys_stage:
** every key the dirty records need, made and committed in a transaction of
** its own before the commit stage seals with them. */
int veld_sync__keys_stage(veld_syncctx *c);
int veld_sync__ensure_key(veld_syncctx *c, const char *case_id, const char *compartment, unsigned char *key,
                          unsigned char *key_id);
int veld_sync__add_share(veld_syncctx *c, const char *key_hex, const char *recipient);
/* Share `key_hex` with the office and the case's region's assistants:
** those for whom region_holds(role, region, the case's postcode). */
int veld_sync__share_by_region(veld_syncctx *c, const char *key_hex, const char *case_id);
int veld_sync__region_holds(const char *role, const char *region, int postcode);
/* share.c: today's date (UTC, "YYYY-MM-DD", from the OS table's clock);
** whether the consent for `scope` the case header `h` records holds on
** `today` (one rule for the share and for the office's key check). */
void veld_sync__today(char *date, size_t cap, veld_store *s);
#define VELD_CONSENT_ACTIVE    0
#define VELD_CONSENT_NONE      1
#define VELD_CONSENT_WITHDRAWN 2
#define VELD_CONSENT_EXPIRED   3
int veld_sync__consent(const veld_record *h, const char *scope, const char *today);
/* holders.c: who holds which key, from the paths of this store's shares
** and of every keys ref fetched: *out is {key id: {recipient: true}}. */
int veld_sync__holders(json_t **out, veld_syncctx *c);
/* rotate.c: office, inside a transaction of run.c: every case whose newest
** key a device holds that may not hold it (revoked; a volunteer without
** consent, or whose share was taken back) gets a key of the next epoch for
** both compartments, shared with those still entitled; an unrevoked device
** that may not hold a case's keys loses the case (access_lost), and so
** does an assistant whose region no longer holds the case (a move).  Looks
** only when a revocation is about to be published, a keys ref moved or a
** case header changed. */
int veld_sync__rotate_revoked(veld_syncctx *c);
int veld_sync__case_postcode(veld_store *s, const char *case_id);
int veld_sync__take_keys(veld_syncctx *c, const char *ref, const char *owner, const git_oid *head);
int veld_sync__rescan_new_keys(veld_syncctx *c);

/* erase.c.  erasure_changes: the tree changes of erasures not yet published.
** apply_erasure: an org-signed erasure marker of main. */
int veld_sync__erasure_changes(veld_syncctx *c, veld_changeset *cs);
int veld_sync__apply_erasure(veld_syncctx *c, const char *path, const git_oid *id);

/* scripts_dist.c.  scripts_changes: office, the published form and report
** versions main does not carry yet, signed (and marked published).
** apply_script: a forms/ or reports/ entry of main, kept once it verifies,
** else refused alone (VELD_REFUSED_SCRIPT).  form_forbids: office, the
** caller's form check of a record a device wrote (the reason in `why`,
** *code VELD_REFUSED_FORM), or NULL when it passes or none is set. */
int veld_sync__scripts_changes(veld_syncctx *c, veld_changeset *cs);
int veld_sync__apply_script(veld_syncctx *c, const char *path, const git_oid *id);
const char *veld_sync__form_forbids(veld_syncctx *c, const char **code, const veld_record *rec, char *why,
                                    size_t cap);

/* ---- the sync state (state.c) ------------------------------------------- */

/*
** The tables of sync/ (created by core/store.c; state.c documents them):
** every SQL statement on them is a function here.  Errors are set on the
** store's error; an iteration stops at a callback's non-zero return and
** returns it.  Row pointers live for the callback only.
*/
/* An iteration over one text column (a case id, an oid). */
typedef int (*veld_text_cb)(const char *text, void *payload);

typedef struct veld_device_row {
	const char *id, *name, *role, *region;
	const unsigned char *sign_pk, *box_pk; /* 32 bytes each */
	int revoked;
} veld_device_row;
typedef int (*veld_device_cb)(const veld_device_row *d, void *payload);

/* Enrol a device.  VELD_STATE_LOCAL: a new row, unpublished (VELD_EEXISTS
** if enrolled); VELD_STATE_REGISTRY: from main's registry, published,
** replacing the row's fields (not its revocation). */
#define VELD_STATE_LOCAL    0
#define VELD_STATE_REGISTRY 1
int veld_state__device_put(veld_store *s, const veld_device_row *d, int origin);
/* Revoke; VELD_STATE_LOCAL also unpublishes the row (the office's
** revocation goes to main).  *changed: 0 if no unrevoked device `id`. */
int veld_state__device_revoke(int *changed, veld_store *s, const char *id, int origin);
/* Of an enrolled, unrevoked device (VELD_ENOTFOUND otherwise): its signing
** key; its role and region (ranges NULL: not wanted). */
int veld_state__device_sign_pk(unsigned char *pk32, veld_store *s, const char *id, int revoked_too);
/* Name, role and region of an enrolled device, revoked or not
** (VELD_ENOTFOUND otherwise). */
int veld_state__device_info(char *name, size_t ncap, char *role, size_t rcap, char *region, size_t gcap,
                            int *revoked, veld_store *s, const char *id);
/* 1 if `id` is enrolled and revoked. */
int veld_state__device_revoked(veld_store *s, const char *id);
int veld_state__device_role(char *role, size_t cap, veld_range *ranges, int *n_ranges, veld_store *s,
                            const char *id);
/* Unrevoked devices (VELD_STATE_ACTIVE), rows not yet in main, or revoked
** devices (VELD_STATE_REVOKED). */
#define VELD_STATE_ACTIVE      0
#define VELD_STATE_UNPUBLISHED 1
#define VELD_STATE_REVOKED     2 /* revoked devices only */
int veld_state__devices_each(veld_store *s, int which, veld_device_cb cb, void *payload);

/* Case keys.  get: of (case, compartment), the newest epoch held;
** VELD_ENOTFOUND if none.
** find: the key `key_id` of `case_id` and its compartment; VELD_ENOTFOUND
** with *elsewhere 1 if another case holds that key id.  add: a key for a
** (case, compartment, epoch) that has one is ignored (*added 0).  each: every key
** (case_id NULL) or one case's. */
int veld_state__case_key_get(unsigned char *key, unsigned char *key_id, veld_store *s, const char *case_id,
                             const char *compartment);
int veld_state__case_key_find(unsigned char *key, char *compartment, size_t ccap, int *elsewhere, veld_store *s,
                              const char *case_id, const unsigned char *key_id);
int veld_state__case_key_add(int *added, veld_store *s, const veld_case_key *k);
/* The newest epoch held of (case, compartment), or -1 if none.  key_of:
** the case and compartment of key `key_hex`, *newest 1 if it is of the
** newest epoch held; VELD_ENOTFOUND if this store does not hold it. */
int veld_state__case_key_epoch(veld_store *s, const char *case_id, const char *compartment);
int veld_state__key_of(char *case_id, char *compartment, size_t ccap, int *newest, veld_store *s,
                       const char *key_hex);
typedef int (*veld_case_key_cb)(const char *key_hex, const char *case_id, const char *compartment, void *payload);
int veld_state__case_keys_each(veld_store *s, const char *case_id, veld_case_key_cb cb, void *payload);

/* Key shares: add one (keys_dirty set when it is new); each share to an
** unrevoked device with its key and the device's box key, by recipient. */
typedef struct veld_share_row {
	const char *key_hex, *case_id, *compartment, *recipient;
	const unsigned char *key, *box_pk;
	int key_len, box_pk_len;
	uint32_t epoch;
} veld_share_row;
typedef int (*veld_share_cb)(const veld_share_row *r, void *payload);
int veld_state__share_add(veld_store *s, const char *key_hex, const char *recipient);
int veld_state__shares_each(veld_store *s, veld_share_cb cb, void *payload);
/* Every share as (key id, recipient), revoked recipients too. */
typedef int (*veld_pair_cb)(const char *a, const char *b, void *payload);
int veld_state__share_pairs_each(veld_store *s, veld_pair_cb cb, void *payload);
/* meta "keys_dirty": the keys ref must be rebuilt.  get: 1 or 0.  touch:
** set it only if this store has the flag (has ever shared a key). */
int veld_state__keys_dirty(veld_store *s);
int veld_state__keys_dirty_set(veld_store *s, int dirty);
int veld_state__keys_dirty_touch(veld_store *s);

/* sync_refs: the last verified and merged head of a ref, as 40 hex digits
** (hex: GIT_OID_HEXSZ + 1 bytes). */
int veld_state__synced_get(char *hex, veld_store *s, const char *ref);
int veld_state__synced_set(veld_store *s, const char *ref, const char *hex);
int veld_state__synced_each(veld_store *s, veld_text_cb cb, void *payload);
int veld_state__synced_clear(veld_store *s);

/* Erasure: 1 if `case_id` is erased here; erase its records, keys and
** shares and mark it erased, unpublished; each case not yet published. */
int veld_state__erased_has(veld_store *s, const char *case_id);
int veld_state__erase(veld_store *s, const char *case_id);
/* A revoked device: every record, case key and share goes. */
int veld_state__purge_cases(veld_store *s);
/* One case's records, keys and shares go (erase does this too). */
int veld_state__drop_case(veld_store *s, const char *case_id);
/* Access taken back: add (*added 0 if known), has, each unpublished. */
int veld_state__access_lost_add(int *added, veld_store *s, const char *device, const char *case_id, int published);
int veld_state__access_lost_has(veld_store *s, const char *device, const char *case_id);
int veld_state__access_lost_each(veld_store *s, veld_pair_cb cb, void *payload);
/* 1 if a case header waits to be committed. */
int veld_state__dirty_headers(veld_store *s);
int veld_state__erased_each(veld_store *s, veld_text_cb cb, void *payload);

/* Records' sync flags: each dirty record (by id), then everything marked
** committed (records clean, devices and erasures published); the sum of
** conflicts. */
typedef int (*veld_dirty_cb)(const char *id, const char *case_id, const char *compartment,
                             const unsigned char *state, size_t len, void *payload);
int veld_state__dirty_each(veld_store *s, veld_dirty_cb cb, void *payload);
/* Each (case, compartment) that dirty records are sealed in, once. */
typedef int (*veld_dirty_key_cb)(const char *case_id, const char *compartment, void *payload);
int veld_state__dirty_keys_each(veld_store *s, veld_dirty_key_cb cb, void *payload);
int veld_state__mark_committed(veld_store *s);

/* Refusals.  add: record one (a row for the same path, blob and device is
** kept as it was); *is_new 1 when this store had no refusal of that
** device at that path yet: the first of its kind, to be reported.
** refused_has: 1 if blob `blob` at `path` was refused here.  each:
** VELD_STATE_UNPUBLISHED the rows main does not carry yet (office), else
** every row, or one device's (`device` non-NULL), oldest first. */
struct veld_refusal_row {
	const char *path, *blob, *device, *case_id, *record_id, *code, *reason, *commit;
	int64_t at;
	int published;
};
typedef int (*veld_refusal_cb)(const veld_refusal_row *r, void *payload);
int veld_state__refusal_add(int *is_new, veld_store *s, const veld_refusal_row *r);
int veld_state__refused_has(veld_store *s, const char *path, const char *blob);
int veld_state__refusals_each(veld_store *s, int which, const char *device, veld_refusal_cb cb, void *payload);
int veld_state__conflicts(veld_store *s);

/* ---- the git layer (sync/git/) ------------------------------------------ */

#include "git/git.h"

#endif /* VELD_SYNC_H */

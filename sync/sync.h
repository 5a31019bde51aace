/*
** sync.h — the internal interface of sync/ (the one header of this folder).
**
** sync/ turns the store into git objects and back (docs/sync.md):
**   envelope.c  the record blob: sealed, deterministic, bound to its path
**   keyring.c   sealed case-key entries for the keys refs
**   registry.c  org-signed registry entries (org, devices, revocations)
**   repo.c      libgit2: repository, trees, signed commits, fetch, push
**   http.c      a push over smart HTTP (libcurl); pack.c the pack it sends
**   sync.c      one sync: commit, fetch, verify, merge, push
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
} veld_case_key;

/* The sealed payload is a fixed binary record (keyring.c), so every sealed
** entry has the same size: payload + crypto_box_SEALBYTES (48). */
#define VELD_KEYRING_PAYLOADBYTES 100
#define VELD_KEYRING_SEALEDBYTES  148

/* Overwrite *k with a fresh random key id and key (k->key allocated; clear a
** key held in *k first); the caller then fills case_id and compartment. */
int veld_case_key__new(veld_case_key *k);
/* Wipe and sodium_free k->key, zero *k (k->key becomes NULL).  NULL ok. */
void veld_case_key__clear(veld_case_key *k);

/* Seal `k` to a recipient's X25519 public key (crypto_box_seal).
** *out malloc'd, VELD_KEYRING_SEALEDBYTES long.  VELD_EINVALID if case_id is
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

/* Region strings: "1500-1999,3000-3499".  Parse into at most `max` ranges;
** VELD_EINVALID on malformed input.  And membership of a postcode. */
typedef struct veld_range {
	int lo, hi;
} veld_range;
int veld_region__parse(veld_range *ranges, int max, int *n, const char *text, veld_err *err);
int veld_region__contains(const veld_range *ranges, int n, int postcode);

/* ---- git plumbing (repo.c) ---------------------------------------------- */

/*
** A thin layer over libgit2 that knows git, not veld: a bare repository,
** trees updated at a few paths, commits signed in a custom header, diffs of
** trees, fetch and push with refusals surfaced.  libgit2's own global state
** (git_libgit2_init, GIT_OPT_ENABLE_FSYNC_GITDIR, the size of tree it
** caches) is set up once per process by veld_repo__open/init; everything
** else hangs off the handle.
** Each handle holds one git_libgit2_init(), released by veld_repo__free.
** Every function returns 0 or a negative VELD_E* code with a message in
** `err` (a callback's own non-zero return is passed through where noted).
*/
#include <git2.h>

typedef struct veld_repo veld_repo;

/* Create a bare repository at `path` (must not exist or be empty, else
** VELD_EEXISTS) / open one (VELD_ENOTFOUND if there is none). */
int veld_repo__init(veld_repo **out, const char *path, veld_err *err);
int veld_repo__open(veld_repo **out, const char *path, veld_err *err);
void veld_repo__free(veld_repo *r); /* NULL ok */
/* A hub on a path that fetch and push used stays open with the handle
** (reopened when another process repacked it); release it now, e.g. before
** repacking that hub through another handle.  NULL ok. */
void veld_repo__hub_release(veld_repo *r);
/* Remove lock files a killed process left in the repository (refs/ and the
** top-level ones).  Only for a caller that knows no other process uses the
** repository (the store's exclusive lock).  Returns how many went. */
int veld_repo__clear_stale_locks(veld_repo *r);
/* The libgit2 repository, owned by the handle.  Valid until the next
** veld_repo__maintain (which reopens it) or veld_repo__free: fetch it
** again rather than keeping it. */
git_repository *veld_repo__git(veld_repo *r);

/* Write a blob; read one (malloc'd copy, free()).  A damaged object is
** VELD_EINTEGRITY, a missing one VELD_ENOTFOUND. */
int veld_repo__blob_write(git_oid *out, veld_repo *r, const void *buf, size_t len, veld_err *err);
int veld_repo__blob_read(unsigned char **buf, size_t *len, veld_repo *r, const git_oid *id, veld_err *err);

/* One change to a tree: set `path` to blob `id`, or remove it (id NULL). */
typedef struct veld_tree_change {
	const char *path;  /* "cases/ab/c/<case>/<record>" */
	const git_oid *id; /* NULL: remove */
} veld_tree_change;

/* New tree = `base` (NULL: empty) with `changes` applied (intermediate
** trees created or pruned when empty).  Cost grows with the changes, not
** the tree (git_tree_create_updated).  Removing an absent path is a no-op.
** VELD_EINVALID for a malformed path (empty component, ".", "..", leading
** or trailing '/') or a path given twice; a file and a directory of the
** same name within one call ("a" removed, "a/b" added) is a libgit2 error:
** do it in two calls. */
int veld_repo__tree_update(git_oid *out, veld_repo *r, const git_oid *base,
                           const veld_tree_change *changes, size_t n, veld_err *err);

/* Look up the blob at `path` in tree `tree`: 0 and *out, VELD_ENOTFOUND
** (also when `path` is a directory or `tree` is NULL), or error. */
int veld_repo__tree_lookup(git_oid *out, veld_repo *r, const git_oid *tree, const char *path,
                           veld_err *err);

/* The same for a directory: the tree at `path`. */
int veld_repo__tree_lookup_dir(git_oid *out, veld_repo *r, const git_oid *tree, const char *path,
                               veld_err *err);

/* Signing: called with the commit buffer; writes a 64-byte Ed25519 signature. */
typedef int (*veld_sign_cb)(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload);

/* Create a commit of `tree` with `parents`, author/committer `signer` at
** time `when_ms`, message `msg`, signed in header "veldsig" as
** "<signer> <base64 signature>".  Does not move any ref.  `signer` is 1-64
** of [A-Za-z0-9._-] (else VELD_EINVALID); the e-mail is
** "<signer>@veld.invalid", the time when_ms / 1000 at offset +0000; `msg`
** is stored as given.  A non-zero return from `sign` is VELD_ERROR. */
int veld_repo__commit(git_oid *out, veld_repo *r, const git_oid *tree, const git_oid *parents,
                      size_t n_parents, const char *signer, int64_t when_ms, const char *msg,
                      veld_sign_cb sign, void *payload, veld_err *err);

/* Extract the veldsig of a commit: signer id (at most 64 chars) and the
** signature over the signed data; then check with `pubkey_cb`, which
** returns the signer's 32-byte Ed25519 public key or VELD_ENOTFOUND.
** VELD_EINTEGRITY: unsigned, malformed or bad signature, unknown signer
** (message names the commit and the failure).  VELD_ENOTFOUND: no such
** commit.  Another negative return from `pubkey` is passed through.
** signer_out (NULL ok) gets the signer id as soon as the header parses,
** so a caller can name it even on a bad signature; "" before that. */
typedef int (*veld_pubkey_cb)(unsigned char *pk32, const char *signer, void *payload);
int veld_repo__commit_verify(char *signer_out, size_t signer_cap, veld_repo *r, const git_oid *commit,
                             veld_pubkey_cb pubkey, void *payload, veld_err *err) VELD_WARN_UNUSED;

/* Commit facts.  commit_parents writes at most `cap` ids and sets *n to
** the number of parents; more than `cap` is VELD_EINVALID. */
int veld_repo__commit_tree(git_oid *tree_out, veld_repo *r, const git_oid *commit, veld_err *err);
int veld_repo__commit_parents(git_oid *parents, size_t cap, size_t *n, veld_repo *r,
                              const git_oid *commit, veld_err *err);

/* Commits reachable from `head` but not from any of `stop` (oldest first),
** for verification of what a fetch brought: parents always before their
** children.  A stop that is not in the repository is ignored.  *out
** malloc'd (free(); NULL when *n is 0).  VELD_ENOTFOUND if head is absent. */
int veld_repo__new_commits(git_oid **out, size_t *n, veld_repo *r, const git_oid *head,
                           const git_oid *stop, size_t n_stop, veld_err *err);

/* Blob paths that differ between two trees (either may be NULL = empty):
** calls `cb(path, old_id or NULL, new_id or NULL, payload)` per changed
** file; a non-zero return stops and is returned.  Order: byte order of the
** paths.  No rename detection: a moved file is a delete and an add.  Only
** subtrees whose ids differ are read (cost grows with the change). */
typedef int (*veld_diff_cb)(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload);
int veld_repo__diff(veld_repo *r, const git_oid *old_tree, const git_oid *new_tree, veld_diff_cb cb,
                    void *payload, veld_err *err);

/* Refs: read (VELD_ENOTFOUND if absent), set (force; VELD_EINVALID for a
** malformed name), list by prefix (plain string prefix, not a glob; sorted
** by name; symbolic refs resolved, dangling ones skipped; a non-zero return
** from `cb` stops and is returned). */
int veld_repo__ref_get(git_oid *out, veld_repo *r, const char *name, veld_err *err);
int veld_repo__ref_set(veld_repo *r, const char *name, const git_oid *id, veld_err *err);
typedef int (*veld_ref_cb)(const char *name, const git_oid *id, void *payload);
int veld_repo__ref_list(veld_repo *r, const char *prefix, veld_ref_cb cb, void *payload, veld_err *err);

/* Remote transfer.  `url` is a path or an http(s)/ssh URL.  Credentials for
** HTTP come from the callback (user, password into caller buffers); SSH
** uses the agent.  Progress: called with (stage text, done, total). */
typedef int (*veld_cred_cb)(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload);
/* A non-zero return from progress cancels the transfer (VELD_ECANCELED). */
typedef int (*veld_progress_cb)(const char *stage, size_t done, size_t total, void *payload);
typedef struct veld_remote_opts {
	veld_cred_cb cred;
	veld_progress_cb progress;
	void *payload;
} veld_remote_opts;

/* Either transfer: a credential kind (user/password, SSH agent) is tried
** once; asked again means refused: VELD_EAUTH "authentication failed for
** <url>" (URL messages never show user-info).  url.insteadOf is ignored. */

/* Fetch `refspecs` (e.g. "+refs/veld/devices/\*:refs/veld-hub/veld/devices/\*"):
** no tags; the refs named by the refspecs updated, and local refs under a
** refspec's destination that the remote no longer has are pruned.  (libgit2
** 1.5 leaves an empty FETCH_HEAD file behind.) */
/* ---- push over smart HTTP (http.c) ------------------------------------- */

/* One session with a smart-HTTP hub: its URL, the credentials once asked,
** what the hub said.  repo.c packs; this carries the pack. */
typedef struct veld_http veld_http;
typedef int (*veld_http_ref_cb)(const char *name, const char *oid_hex, void *payload);
typedef struct veld_http_update {
	const char *name;
	char old_hex[41]; /* forty zeros: create */
	char new_hex[41];
} veld_http_update;

int veld_http__open(veld_http **out, const char *url, const veld_remote_opts *opts, veld_err *err);
void veld_http__free(veld_http *h); /* accepts NULL; wipes the password */
/* The refs the hub's receive-pack advertises; cb non-zero stops. */
int veld_http__refs(veld_http *h, veld_http_ref_cb cb, void *payload, veld_err *err);
/* Send the updates and the pack.  A ref the hub refuses: VELD_EDENIED
** "push of <ref> to <url> refused by the server: <why> (<hub's message>)". */
int veld_http__push(veld_http *h, const veld_http_update *u, size_t n, const void *pack, size_t len,
                    veld_err *err);

/* ---- the pack a push over HTTP sends (pack.c) --------------------------- */

/* Objects to send, each whole or, for a tree with a `base`, as a delta
** against that tree (one the hub has: a base also in the pack is not used).
** The pack is thin: the receiver completes it with the bases it has. */
/* Set err from a failed libgit2 call: "<what>: <libgit2 text>".  The code is
** `code` if it is non-zero, else mapped from grc (repo.c's table: damaged
** objects are VELD_EINTEGRITY).  Returns the veld code. */
int veld_git__fail(veld_err *err, int grc, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

typedef struct veld_pack veld_pack;
int veld_pack__new(veld_pack **out, git_repository *repo, veld_err *err);
/* Objects are stored in zlib streams without compression (a pack written
** to disk); a pack sent over the network is deflated at the default level. */
void veld_pack__for_the_wire(veld_pack *p);
void veld_pack__free(veld_pack *p); /* accepts NULL */
int veld_pack__add(veld_pack *p, const git_oid *id, const git_oid *base, veld_err *err);
size_t veld_pack__count(const veld_pack *p);
/* The pack, in git's format version 2, handed to `cb` in chunks (the
** header, one object at a time, the checksum); a non-zero return from cb
** stops the write and is returned.  Objects added more than once are
** written once. */
typedef int (*veld_pack_write_cb)(const void *data, size_t len, void *payload, veld_err *err);
int veld_pack__stream(veld_pack *p, veld_pack_write_cb cb, void *payload, veld_err *err);
/* The same pack in one buffer; *out malloc'd. */
int veld_pack__write(unsigned char **out, size_t *out_len, veld_pack *p, veld_err *err);

/* Write the objects made since the last flush (held in memory until then,
** and read from there) into the repository as one pack.  ref_set does it
** before it moves a ref, maintain before it repacks, free at the end; a
** caller that hands the repository to another program does it first. */
int veld_repo__flush(veld_repo *r, veld_err *err);

/* What a hub said about `ref` among its messages ("remote: ..." lines): the
** first line naming it other than "hook declined to update <ref>", else the
** line before that one.  Printable ASCII into out. */
void veld_repo__remote_reason(char *out, size_t cap, const char *remote_text, const char *ref);

/* A hub given as an URL ("https://...", "file://...", "user@host:path")
** rather than as a path to a bare repository. */
int veld_repo__is_url(const char *hub);

int veld_repo__fetch(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err);
/* The refs the remote advertises (name, id), in its order. */
int veld_repo__ls_remote(veld_repo *r, const char *url, const veld_remote_opts *opts, veld_ref_cb cb,
                         void *payload, veld_err *err);
/* Push `refspecs`; a ref the server refuses (reported only through
** push_update_reference) is an error naming the ref and the server's reason
** (VELD_EDENIED): its status ("hook declined") and, when the server sent
** one, its message line about the ref (the hook's stderr).  A non-fast-forward refspec without '+' is refused by
** libgit2 before sending: VELD_EDENIED naming the ref too.  A push to a
** path runs no hooks on the other side. */
int veld_repo__push(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                    const veld_remote_opts *opts, veld_err *err);

/* Repack: everything reachable from the refs (and HEAD) into one new pack,
** then delete the loose objects and old packs it makes redundant; prune
** unreachable objects older than `prune_age_s` (0: all; negative: keep
** them).  The caller decides when (e.g. after N syncs, or after an erasure
** with 0).  With 0, nothing else may write to the repository meanwhile
** (hold the store's write lock).  Reopens the libgit2 repository (see
** veld_repo__git).  Cost: the whole repository.  Algorithm in repo.c. */
int veld_repo__maintain(veld_repo *r, int prune_age_s, veld_err *err);

#endif /* VELD_SYNC_H */

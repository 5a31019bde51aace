/*
** sync.h — the internal interface of sync/ (the one header of this folder).
**
** sync/ turns the store into git objects and back (docs/sync.md):
**   envelope.c  the record blob: sealed, deterministic, bound to its path
**   keyring.c   sealed case-key entries for the keys refs
**   registry.c  org-signed registry entries (org, devices, revocations)
**   sync.c      one sync: commit, fetch, verify, merge, push
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

/* ---- the git layer (sync/git/) ------------------------------------------ */

#include "git/git.h"

#endif /* VELD_SYNC_H */

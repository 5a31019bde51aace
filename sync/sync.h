/*
** sync.h — the internal interface of sync/ (the one header of this folder).
**
** sync/ turns the store into git objects and back (docs/sync.md):
**   envelope.c  the record blob: sealed, deterministic, bound to its path
**   keyring.c   sealed case-key entries for the keys refs
**   registry.c  org-signed registry entries (org, devices, revocations)
**   repo.c      libgit2: repository, trees, signed commits, fetch, push
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
** same bytes.  *out is malloc'd (free()). */
int veld_env__seal(unsigned char **out, size_t *out_len, const unsigned char *key,
                   const unsigned char *key_id, const char *case_id, const char *record_id,
                   const unsigned char *pt, size_t pt_len);

/* Open a blob found at the path of (case_id, record_id) with `key`.
** VELD_EINTEGRITY for anything malformed or failing authentication, with
** a message in err that names the record id.  *pt is malloc'd and
** NUL-terminated (free()). */
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

int veld_case_key__new(veld_case_key *k);   /* allocates k->key */
void veld_case_key__clear(veld_case_key *k); /* wipes and frees k->key */

/* Seal `k` to a recipient's X25519 public key (crypto_box_seal).
** *out malloc'd. */
int veld_keyring__seal(unsigned char **out, size_t *out_len, const veld_case_key *k,
                       const unsigned char *recipient_box_pk);
/* Open a sealed entry with this device's box key pair; fills k (allocating
** k->key).  VELD_EINTEGRITY if it does not open or is malformed. */
int veld_keyring__open(veld_case_key *k, const unsigned char *sealed, size_t len,
                       const unsigned char *box_pk, const unsigned char *box_sk,
                       veld_err *err) VELD_WARN_UNUSED;

/* ---- signed registry entries (registry.c) ------------------------------ */

/* Wrap `body` as {"body": body, "sig": hex(Ed25519(canonical body))}.
** Returns canonical JSON text (malloc'd) or NULL. */
char *veld_registry__sign(const json_t *body, const unsigned char *sign_sk);
/* Verify a signed entry against `sign_pk`; on success *body is a new
** reference to the body.  VELD_EINTEGRITY otherwise, with a message. */
int veld_registry__verify(json_t **body, const char *text, size_t len,
                          const unsigned char *sign_pk, veld_err *err) VELD_WARN_UNUSED;

/* Region strings: "1500-1999,3000-3499".  Parse into at most `max` ranges;
** VELD_EINVALID on malformed input.  And membership of a postcode. */
typedef struct veld_range {
	int lo, hi;
} veld_range;
int veld_region__parse(veld_range *ranges, int max, int *n, const char *text, veld_err *err);
int veld_region__contains(const veld_range *ranges, int n, int postcode);

#endif /* VELD_SYNC_H */

/*
** envelope.c — the record blob: sealed, deterministic, bound to its path.
**
** Every record travels through git as one blob at
** cases/<c0c1>/<c2>/<case id>/<record id> (docs/sync.md, "Record envelope"):
**
**   offset size
**   0      4    magic "VLD1"
**   4      1    version = 1
**   5      1    algorithm = 1 (XChaCha20-Poly1305 IETF)
**   6      16   key id (binary)
**   22     24   nonce
**   46     n+16 ciphertext of the record's canonical JSON state, with tag
**
** The AEAD key is the case key itself.  The associated data (94 bytes, fixed
** length) is
**
**   "veld-record\0" || case id (32 hex) || record id (32 hex) ||
**   key id (16 bytes) || version || algorithm
**
** so a blob opens only at the path it was sealed for, under the key id its
** header names, in this version and algorithm.
**
** The nonce is derived, SIV style, so that equal states give equal blobs on
** every device and git stores them once:
**
**   nonce subkey = crypto_kdf_derive_from_key(32, id 1, ctx "veldsiv\0", case key)
**   nonce        = BLAKE2b-192(key = nonce subkey,
**                              LE64(length of AD) || AD || plaintext)
**
** The length prefix makes the split between AD and plaintext unambiguous even
** if the AD ever stops being of fixed length.  A nonce repeats only for the
** same (key, AD, plaintext), where the ciphertext is the same anyway.
**
** Opening checks, in this order and before any cryptography: the length (at
** least header and tag), the magic, the version and the algorithm.  Then it
** authenticates and decrypts, and finally recomputes the nonce from the
** plaintext and requires it to equal the header's: a blob made by a key
** holder with any other nonce is refused, so for one (key, path, state) there
** is exactly one valid blob.  Every failure is VELD_EINTEGRITY with a message
** that names the record id, never plaintext or key material.  The nonce
** subkey and the hash state live on the stack and are wiped on every path;
** a plaintext that fails a check is wiped before it is freed.
**
** This file owns the byte format only: which key to use for a key id, and
** what the plaintext means, are the caller's business.
*/
#include "sync.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENV_AD_PREFIX      "veld-record" /* with its NUL: 12 bytes */
#define ENV_AD_PREFIXBYTES (sizeof ENV_AD_PREFIX)
#define ENV_IDCHARS        (VELD_IDSIZE - 1) /* 32 hex digits */
#define ENV_ADBYTES        (ENV_AD_PREFIXBYTES + 2 * ENV_IDCHARS + VELD_KEYIDBYTES + 2)
#define ENV_NONCEBYTES     crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ENV_SUBKEY_ID      1
#define ENV_SUBKEY_CTX     "veldsiv" /* with its NUL: crypto_kdf_CONTEXTBYTES (8) */
#define ENV_OFF_VERSION    4
#define ENV_OFF_ALG        5
#define ENV_OFF_KEYID      6
#define ENV_OFF_NONCE      (ENV_OFF_KEYID + VELD_KEYIDBYTES)

#if ENV_OFF_NONCE + 24 != VELD_ENV_HEADERBYTES
#error "envelope header layout does not add up"
#endif

/* An id as the path holds it: exactly 32 lowercase hex digits. */
static int env_is_id(const char *s)
{
	return s && strnlen(s, VELD_IDSIZE) == ENV_IDCHARS && veld_stamp__is_device(s, ENV_IDCHARS);
}

/* The header checks shared by open and key_id: length, magic, version,
** algorithm.  Returns a static description of the first failure, or NULL. */
static const char *env_check_header(const unsigned char *blob, size_t len)
{
	if (!blob || len < VELD_ENV_HEADERBYTES + VELD_ENV_TAGBYTES)
		return "is too short to be an envelope";
	if (memcmp(blob, VELD_ENV_MAGIC, 4) != 0)
		return "is not a veld envelope (bad magic)";
	if (blob[ENV_OFF_VERSION] != VELD_ENV_VERSION)
		return "has an unsupported envelope version";
	if (blob[ENV_OFF_ALG] != VELD_ENV_ALG_XCHACHA)
		return "has an unsupported envelope algorithm";
	return NULL;
}

static void env_ad(unsigned char *ad, const char *case_id, const char *record_id,
                   const unsigned char *key_id)
{
	unsigned char *p = ad;
	memcpy(p, ENV_AD_PREFIX, ENV_AD_PREFIXBYTES);
	p += ENV_AD_PREFIXBYTES;
	memcpy(p, case_id, ENV_IDCHARS);
	p += ENV_IDCHARS;
	memcpy(p, record_id, ENV_IDCHARS);
	p += ENV_IDCHARS;
	memcpy(p, key_id, VELD_KEYIDBYTES);
	p += VELD_KEYIDBYTES;
	*p++ = VELD_ENV_VERSION;
	*p = VELD_ENV_ALG_XCHACHA;
}

/* nonce = BLAKE2b-192(nonce subkey, LE64(ad_len) || ad || pt). */
static int env_nonce(unsigned char *nonce, const unsigned char *key, const unsigned char *ad,
                     size_t ad_len, const unsigned char *pt, size_t pt_len)
{
	unsigned char subkey[crypto_generichash_KEYBYTES];
	unsigned char len_le[8];
	crypto_generichash_state st;
	uint64_t n = (uint64_t)ad_len;
	int i, rc = -1;
	for (i = 0; i < 8; i++)
		len_le[i] = (unsigned char)(n >> (8 * i));
	if (crypto_kdf_derive_from_key(subkey, sizeof subkey, ENV_SUBKEY_ID, ENV_SUBKEY_CTX, key) != 0)
		goto done;
	if (crypto_generichash_init(&st, subkey, sizeof subkey, ENV_NONCEBYTES) != 0 ||
	    crypto_generichash_update(&st, len_le, sizeof len_le) != 0 ||
	    crypto_generichash_update(&st, ad, ad_len) != 0 ||
	    (pt_len && crypto_generichash_update(&st, pt, pt_len) != 0) ||
	    crypto_generichash_final(&st, nonce, ENV_NONCEBYTES) != 0)
		goto done;
	rc = 0;
done:
	sodium_memzero(subkey, sizeof subkey);
	sodium_memzero(&st, sizeof st);
	return rc;
}

int veld_env__seal(unsigned char **out, size_t *out_len, const unsigned char *key,
                   const unsigned char *key_id, const char *case_id, const char *record_id,
                   const unsigned char *pt, size_t pt_len)
{
	unsigned char ad[ENV_ADBYTES];
	unsigned char *blob = NULL;
	unsigned long long clen = 0;
	size_t total;
	int rc = 0;
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!out || !out_len || !key || !key_id || !env_is_id(case_id) || !env_is_id(record_id) ||
	    (!pt && pt_len)) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (pt_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
	    pt_len > SIZE_MAX - VELD_ENV_HEADERBYTES - VELD_ENV_TAGBYTES) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (sodium_init() < 0) {
		rc = VELD_ERROR;
		goto done;
	}
	total = VELD_ENV_HEADERBYTES + pt_len + VELD_ENV_TAGBYTES;
	blob = malloc(total);
	if (!blob) {
		rc = VELD_ERROR;
		goto done;
	}
	memcpy(blob, VELD_ENV_MAGIC, 4);
	blob[ENV_OFF_VERSION] = VELD_ENV_VERSION;
	blob[ENV_OFF_ALG] = VELD_ENV_ALG_XCHACHA;
	memcpy(blob + ENV_OFF_KEYID, key_id, VELD_KEYIDBYTES);
	env_ad(ad, case_id, record_id, key_id);
	if (env_nonce(blob + ENV_OFF_NONCE, key, ad, sizeof ad, pt, pt_len) != 0 ||
	    crypto_aead_xchacha20poly1305_ietf_encrypt(blob + VELD_ENV_HEADERBYTES, &clen, pt, pt_len,
	                                               ad, sizeof ad, NULL, blob + ENV_OFF_NONCE,
	                                               key) != 0 ||
	    clen != pt_len + VELD_ENV_TAGBYTES) {
		rc = VELD_ERROR;
		goto done;
	}
	*out = blob;
	*out_len = total;
	blob = NULL;
done:
	free(blob);
	return rc;
}

int veld_env__open(unsigned char **pt, size_t *pt_len, const unsigned char *blob, size_t len,
                   const unsigned char *key, const char *case_id, const char *record_id,
                   veld_err *err)
{
	unsigned char ad[ENV_ADBYTES];
	unsigned char nonce[ENV_NONCEBYTES];
	unsigned char *m = NULL;
	unsigned long long mlen = 0;
	size_t n = 0;
	const char *rid = env_is_id(record_id) ? record_id : "(malformed id)";
	const char *why;
	int rc = 0;
	if (pt)
		*pt = NULL;
	if (pt_len)
		*pt_len = 0;
	if (!pt || !pt_len) {
		rc = veld_err__set(err, VELD_EINVALID, "record %s: no place for the plaintext", rid);
		goto done;
	}
	/* The header first: length, magic, version, algorithm. */
	if ((why = env_check_header(blob, len)) != NULL) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "record %s: blob %s", rid, why);
		goto done;
	}
	if (!key || !env_is_id(case_id) || !env_is_id(record_id)) {
		rc = veld_err__set(err, VELD_EINVALID,
		                   "record %s: opening needs a key and a case and record id of 32 lowercase hex digits",
		                   rid);
		goto done;
	}
	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "record %s: libsodium cannot be initialised", rid);
		goto done;
	}
	n = len - VELD_ENV_HEADERBYTES - VELD_ENV_TAGBYTES;
	m = malloc(n + 1);
	if (!m) {
		rc = veld_err__set(err, VELD_ERROR, "record %s: out of memory", rid);
		goto done;
	}
	env_ad(ad, case_id, record_id, blob + ENV_OFF_KEYID);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, &mlen, NULL, blob + VELD_ENV_HEADERBYTES,
	                                               len - VELD_ENV_HEADERBYTES, ad, sizeof ad,
	                                               blob + ENV_OFF_NONCE, key) != 0 ||
	    mlen != n) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "record %s: blob fails authentication (wrong key, tampered, or not sealed for this path)",
		                   rid);
		goto done;
	}
	if (env_nonce(nonce, key, ad, sizeof ad, m, n) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "record %s: cannot derive the nonce", rid);
		goto done;
	}
	if (sodium_memcmp(nonce, blob + ENV_OFF_NONCE, ENV_NONCEBYTES) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "record %s: blob nonce is not the one derived from its content", rid);
		goto done;
	}
	m[n] = '\0';
	*pt = m;
	*pt_len = n;
	m = NULL;
done:
	if (m) {
		sodium_memzero(m, n + 1);
		free(m);
	}
	return rc;
}

int veld_env__key_id(unsigned char *key_id, const unsigned char *blob, size_t len)
{
	if (!key_id || env_check_header(blob, len) != NULL)
		return VELD_EINTEGRITY;
	memcpy(key_id, blob + ENV_OFF_KEYID, VELD_KEYIDBYTES);
	return 0;
}

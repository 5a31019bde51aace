/*
** registry.c — org-signed registry entries (org, devices, revocations,
** erasure markers).
**
** An entry is one blob of JSON text (docs/sync.md, "Trees"):
**
**   {"body":{...},"sig":"<128 lowercase hex digits>"}
**
** sig is the Ed25519 detached signature (crypto_sign_detached) over
**
**   "veld-registry\0" || canonical(body)
**
** The prefix keeps a registry signature from ever being valid as a commit
** signature or any other signed message, and the other way round.
**
** Canonical form is the one of core/record_json.c: jansson with JSON_SORT_KEYS |
** JSON_COMPACT | JSON_REAL_PRECISION(17) — keys sorted bytewise, no
** whitespace, UTF-8 written as is, integers as integers, reals with 17
** significant digits.  veld_registry__sign writes the whole entry in that
** form (so "body" comes before "sig").
**
** Verification is strict, and accepts only the canonical text: the input
** must parse (duplicate keys refused), be an object with exactly "body" (an
** object) and "sig" (128 lowercase hex digits), and re-serialise to exactly
** the input bytes — no whitespace, no other key order, no trailing newline,
** no escapes where the canonical form has none.  Only then is the signature
** checked, over the canonical body.  So a signed entry has one byte
** encoding: two stores that hold the same entry hold the same blob, a
** re-formatted copy is refused rather than silently equated with the
** original, and no two parsers can disagree about what was signed.  Entries
** are at most VELD_REGISTRY_MAXBYTES long.
**
** Nothing here knows what a body means (enrolment, revocation, ...): the
** caller checks the body's fields after verification succeeds.  No global
** state; the signing key is the caller's.
*/
#include "sync.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define REG_PREFIX       "veld-registry" /* with its NUL: 14 bytes */
#define REG_PREFIXBYTES  (sizeof REG_PREFIX)
#define REG_SIGHEX       (2 * crypto_sign_BYTES)
#define REG_CANON_FLAGS  (JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17))

/* "veld-registry\0" || canonical(body) into a malloc'd buffer. */
static unsigned char *reg_message(size_t *n, const json_t *body)
{
	char *canon = json_dumps(body, REG_CANON_FLAGS);
	unsigned char *msg = NULL;
	size_t clen;
	*n = 0;
	if (!canon)
		goto done;
	clen = strlen(canon);
	msg = malloc(REG_PREFIXBYTES + clen);
	if (!msg)
		goto done;
	memcpy(msg, REG_PREFIX, REG_PREFIXBYTES);
	memcpy(msg + REG_PREFIXBYTES, canon, clen);
	*n = REG_PREFIXBYTES + clen;
done:
	free(canon);
	return msg;
}

static int reg_is_sig_hex(const json_t *sig)
{
	return json_string_length(sig) == REG_SIGHEX && veld_hex__is(json_string_value(sig), REG_SIGHEX);
}

char *veld_registry__sign(const json_t *body, const unsigned char *sign_sk)
{
	unsigned char sig[crypto_sign_BYTES];
	char hex[REG_SIGHEX + 1];
	unsigned char *msg = NULL;
	size_t n = 0;
	json_t *entry = NULL;
	char *out = NULL;
	if (!json_is_object(body) || !sign_sk)
		goto done;
	if (sodium_init() < 0)
		goto done;
	msg = reg_message(&n, body);
	if (!msg)
		goto done;
	if (crypto_sign_detached(sig, NULL, msg, n, sign_sk) != 0)
		goto done;
	sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
	/* json_pack's "O" takes a new reference; the body itself is not changed. */
	entry = json_pack("{s:O,s:s}", "body", (json_t *)body, "sig", hex);
	if (!entry)
		goto done;
	out = json_dumps(entry, REG_CANON_FLAGS);
done:
	json_decref(entry);
	free(msg);
	return out;
}

int veld_registry__verify(json_t **body, const char *text, size_t len,
                          const unsigned char *sign_pk, veld_err *err)
{
	unsigned char sig[crypto_sign_BYTES];
	unsigned char *msg = NULL;
	size_t n = 0, bin_len = 0;
	json_error_t jerr;
	json_t *entry = NULL, *b, *s;
	char *canon = NULL;
	int rc = 0;
	if (body)
		*body = NULL;
	if (!body || !sign_pk) {
		rc = veld_err__set(err, VELD_EINVALID, "registry entry: no public key or no place for the body");
		goto done;
	}
	if (!text || len == 0 || len > VELD_REGISTRY_MAXBYTES) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "registry entry is empty or longer than %d bytes",
		                   VELD_REGISTRY_MAXBYTES);
		goto done;
	}
	entry = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!entry && (rc = veld_err__json_oom(err, &jerr)))
		goto done;
	if (!entry) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "registry entry is not valid JSON (line %d, column %d)",
		                   jerr.line, jerr.column);
		goto done;
	}
	b = json_object_get(entry, "body");
	s = json_object_get(entry, "sig");
	if (!json_is_object(entry) || json_object_size(entry) != 2 || !json_is_object(b) || !s) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "registry entry must be an object with exactly an object \"body\" and a \"sig\"");
		goto done;
	}
	if (!reg_is_sig_hex(s)) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "registry entry: sig is not %d lowercase hex digits", (int)REG_SIGHEX);
		goto done;
	}
	canon = json_dumps(entry, REG_CANON_FLAGS);
	if (!canon) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	if (strlen(canon) != len || memcmp(canon, text, len) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "registry entry is not in canonical form (sorted keys, no whitespace)");
		goto done;
	}
	if (sodium_hex2bin(sig, sizeof sig, json_string_value(s), REG_SIGHEX, NULL, &bin_len, NULL) != 0 ||
	    bin_len != sizeof sig) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "registry entry: sig is not hex");
		goto done;
	}
	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "libsodium cannot be initialised");
		goto done;
	}
	msg = reg_message(&n, b);
	if (!msg) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	if (crypto_sign_verify_detached(sig, msg, n, sign_pk) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "registry entry: signature does not verify with the expected key");
		goto done;
	}
	*body = json_incref(b);
done:
	free(canon);
	free(msg);
	json_decref(entry);
	return rc;
}

/*
** keyring.c — case keys and the sealed entries of the keys refs.
**
** A case key (one per case and compartment) never travels in the clear: a
** writer seals it to each recipient device's X25519 box key with
** crypto_box_seal and stores the result at <recipient-dev>/<key-id> in its
** keys ref (docs/sync.md, "Keys tree").
**
** The sealed payload is a fixed binary record, so that it has one encoding
** and parsing it is a handful of exact comparisons:
**
**   offset size
**   0      4    magic "VKY1" (a key of epoch 0) or "VKY2"
**   4      16   case id (binary; as text, 32 lowercase hex digits)
**   20     32   compartment: 1..31 bytes of [a-z_], then NUL bytes to the end
**   52     16   key id
**   68     32   case key
**   100    4    "VKY2" only: the key's epoch, little-endian, 1 or more
**
** A key of epoch 0 (the first key of a case, made by whoever makes the
** case) is the 100-byte "VKY1" record; a rotated key (epoch 1 and up,
** made by the office: docs/sync.md, "Key epochs") the 104-byte "VKY2"
** one.  A sealed entry is therefore VELD_KEYRING_SEALEDBYTES (100 + 48) or
** VELD_KEYRING_SEALED2BYTES (104 + 48) long.  Opening refuses any other
** size, a box that does not open, a magic that does not go with the size,
** an epoch 0 in "VKY2", and a compartment that is empty, too long, has a
** byte outside [a-z_] or anything but NULs after it.
**
** A sealed box is anonymous: it proves nothing about who wrote it.  The
** writer is authenticated by the device signature on the keys-ref commit,
** which sync.c checks before an entry is opened.
**
** Secrets: a case key lives in sodium_malloc'd memory (veld_case_key.key)
** from creation or opening until veld_case_key__clear; the payload buffer is
** on the stack and wiped on every path.  No global state.
*/
#include "sync.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KR_MAGIC          "VKY1"
#define KR_IDBYTES        16
#define KR_COMPBYTES      32 /* 31 characters at most, always NUL-padded */
#define KR_OFF_CASE       4
#define KR_OFF_COMP       (KR_OFF_CASE + KR_IDBYTES)
#define KR_OFF_KEYID      (KR_OFF_COMP + KR_COMPBYTES)
#define KR_OFF_KEY        (KR_OFF_KEYID + VELD_KEYIDBYTES)
#define KR_PAYLOADBYTES   (KR_OFF_KEY + VELD_KEYBYTES)
#define KR_MAGIC2         "VKY2"
#define KR_OFF_EPOCH      KR_PAYLOADBYTES
#define KR_PAYLOAD2BYTES  (KR_OFF_EPOCH + 4)

#if KR_PAYLOADBYTES != VELD_KEYRING_PAYLOADBYTES
#error "keyring payload layout does not add up"
#endif
#if VELD_KEYRING_SEALEDBYTES != VELD_KEYRING_PAYLOADBYTES + 48 /* crypto_box_SEALBYTES */ || \
        VELD_KEYRING_SEALED2BYTES != KR_PAYLOAD2BYTES + 48
#error "keyring sealed size does not match crypto_box_SEALBYTES"
#endif

/* A compartment name: [a-z_]{1,31}, NUL-terminated within 32 bytes. */
static int kr_is_compartment(const char *s)
{
	size_t i, n = strnlen(s, KR_COMPBYTES);
	if (n == 0 || n >= KR_COMPBYTES)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return 0;
	return 1;
}

/* A case id as text: exactly 32 lowercase hex digits. */
static int kr_is_case_id(const char *s)
{
	return strnlen(s, VELD_IDSIZE) == VELD_IDSIZE - 1 && veld_stamp__is_device(s, VELD_IDSIZE - 1);
}

int veld_case_key__new(veld_case_key *k)
{
	int rc = 0;
	if (!k)
		return VELD_EINVALID;
	memset(k, 0, sizeof *k);
	if (sodium_init() < 0) {
		rc = VELD_ERROR;
		goto done;
	}
	k->key = sodium_malloc(VELD_KEYBYTES);
	if (!k->key) {
		rc = VELD_ERROR;
		goto done;
	}
	randombytes_buf(k->key, VELD_KEYBYTES);
	randombytes_buf(k->key_id, VELD_KEYIDBYTES);
done:
	return rc;
}

void veld_case_key__clear(veld_case_key *k)
{
	if (!k)
		return;
	if (k->key)
		sodium_free(k->key); /* wipes before unmapping */
	sodium_memzero(k, sizeof *k);
}

int veld_keyring__seal(unsigned char **out, size_t *out_len, const veld_case_key *k,
                       const unsigned char *recipient_box_pk)
{
	unsigned char payload[KR_PAYLOAD2BYTES];
	unsigned char *sealed = NULL;
	size_t bin_len = 0, plen = k && k->epoch ? KR_PAYLOAD2BYTES : KR_PAYLOADBYTES;
	int rc = 0;
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!out || !out_len || !k || !k->key || !recipient_box_pk ||
	    !kr_is_case_id(k->case_id) || !kr_is_compartment(k->compartment)) {
		rc = VELD_EINVALID;
		goto done;
	}
	if (sodium_init() < 0) {
		rc = VELD_ERROR;
		goto done;
	}
	memset(payload, 0, sizeof payload);
	memcpy(payload, k->epoch ? KR_MAGIC2 : KR_MAGIC, 4);
	if (sodium_hex2bin(payload + KR_OFF_CASE, KR_IDBYTES, k->case_id, VELD_IDSIZE - 1, NULL,
	                   &bin_len, NULL) != 0 ||
	    bin_len != KR_IDBYTES) {
		rc = VELD_EINVALID;
		goto done;
	}
	memcpy(payload + KR_OFF_COMP, k->compartment, strlen(k->compartment));
	memcpy(payload + KR_OFF_KEYID, k->key_id, VELD_KEYIDBYTES);
	memcpy(payload + KR_OFF_KEY, k->key, VELD_KEYBYTES);
	payload[KR_OFF_EPOCH] = (unsigned char)(k->epoch & 0xff);
	payload[KR_OFF_EPOCH + 1] = (unsigned char)((k->epoch >> 8) & 0xff);
	payload[KR_OFF_EPOCH + 2] = (unsigned char)((k->epoch >> 16) & 0xff);
	payload[KR_OFF_EPOCH + 3] = (unsigned char)((k->epoch >> 24) & 0xff);
	sealed = malloc(plen + crypto_box_SEALBYTES);
	if (!sealed) {
		rc = VELD_ERROR;
		goto done;
	}
	if (crypto_box_seal(sealed, payload, plen, recipient_box_pk) != 0) {
		rc = VELD_ERROR;
		goto done;
	}
	*out = sealed;
	*out_len = plen + crypto_box_SEALBYTES;
	sealed = NULL;
done:
	sodium_memzero(payload, sizeof payload);
	free(sealed);
	return rc;
}

int veld_keyring__open(veld_case_key *k, const unsigned char *sealed, size_t len,
                       const unsigned char *box_pk, const unsigned char *box_sk,
                       veld_err *err)
{
	return veld_keyring__open_into(k, NULL, sealed, len, box_pk, box_sk, err);
}

/* key_buf NULL: k->key is allocated here (and cleared on failure). */
int veld_keyring__open_into(veld_case_key *k, unsigned char *key_buf, const unsigned char *sealed, size_t len,
                            const unsigned char *box_pk, const unsigned char *box_sk, veld_err *err)
{
	unsigned char payload[KR_PAYLOAD2BYTES];
	const char *comp = (const char *)payload + KR_OFF_COMP;
	size_t i, n;
	uint32_t epoch = 0;
	int rc = 0;
	if (!k) {
		rc = veld_err__set(err, VELD_EINVALID, "sealed key entry: nowhere to put the key");
		goto done;
	}
	memset(k, 0, sizeof *k);
	if (!box_pk || !box_sk) {
		rc = veld_err__set(err, VELD_EINVALID, "sealed key entry: no box key pair given");
		goto done;
	}
	if (!sealed || (len != VELD_KEYRING_SEALEDBYTES && len != VELD_KEYRING_SEALED2BYTES)) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "sealed key entry has %zu bytes, not %d or %d", len,
		                   VELD_KEYRING_SEALEDBYTES, VELD_KEYRING_SEALED2BYTES);
		goto done;
	}
	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "libsodium cannot be initialised");
		goto done;
	}
	if (crypto_box_seal_open(payload, sealed, len, box_pk, box_sk) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "sealed key entry does not open with this device's key (tampered or for another device)");
		goto done;
	}
	if (memcmp(payload, len == VELD_KEYRING_SEALEDBYTES ? KR_MAGIC : KR_MAGIC2, 4) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "sealed key entry: unknown payload format");
		goto done;
	}
	if (len == VELD_KEYRING_SEALED2BYTES) {
		epoch = (uint32_t)payload[KR_OFF_EPOCH] | (uint32_t)payload[KR_OFF_EPOCH + 1] << 8 |
		        (uint32_t)payload[KR_OFF_EPOCH + 2] << 16 | (uint32_t)payload[KR_OFF_EPOCH + 3] << 24;
		if (epoch == 0) {
			rc = veld_err__set(err, VELD_EINTEGRITY, "sealed key entry: a VKY2 entry of epoch 0");
			goto done;
		}
	}
	n = strnlen(comp, KR_COMPBYTES);
	for (i = n; i < KR_COMPBYTES; i++)
		if (comp[i] != '\0')
			break;
	if (n == KR_COMPBYTES || i != KR_COMPBYTES || !kr_is_compartment(comp)) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "sealed key entry: compartment is not 1 to 31 of [a-z_] padded with NULs");
		goto done;
	}
	k->key = key_buf ? key_buf : sodium_malloc(VELD_KEYBYTES);
	if (!k->key) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	sodium_bin2hex(k->case_id, sizeof k->case_id, payload + KR_OFF_CASE, KR_IDBYTES);
	memcpy(k->compartment, comp, n + 1);
	memcpy(k->key_id, payload + KR_OFF_KEYID, VELD_KEYIDBYTES);
	memcpy(k->key, payload + KR_OFF_KEY, VELD_KEYBYTES);
	k->epoch = epoch;
done:
	sodium_memzero(payload, sizeof payload);
	if (rc && key_buf)
		sodium_memzero(key_buf, VELD_KEYBYTES);
	if (rc && k && key_buf)
		sodium_memzero(k, sizeof *k); /* the buffer is the caller's */
	else if (rc && k)
		veld_case_key__clear(k);
	return rc;
}

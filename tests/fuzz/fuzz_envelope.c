/*
** fuzz_envelope.c — opening a record blob (sync/envelope.c) with a fixed key.
**
** The input is opened as a blob found at the path of (VELD_FUZZ_CASE,
** VELD_FUZZ_RECORD).  The format leaves one valid blob per (key, path,
** state), so a blob that opens must seal back to the same bytes under the
** key id its header names.  The input is then sealed as a plaintext and
** must open to itself.
*/
#include "fuzz.h"
#include "sync.h"

#include <stdlib.h>
#include <string.h>

/* A blob that opened seals back to itself. */
static void reseal(const uint8_t *blob, size_t len, const unsigned char *pt, size_t pt_len)
{
	const veld_fuzz_keys *k = veld_fuzz_keys_get();
	unsigned char kid[VELD_KEYIDBYTES], *again = NULL;
	size_t n = 0;
	VELD_FUZZ_CHECK(veld_env__key_id(kid, blob, len) == 0);
	VELD_FUZZ_CHECK(veld_env__seal(&again, &n, k->rec_key, kid, VELD_FUZZ_CASE, VELD_FUZZ_RECORD, pt,
	                               pt_len) == 0);
	VELD_FUZZ_CHECK(n == len && memcmp(again, blob, len) == 0);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const veld_fuzz_keys *k = veld_fuzz_keys_get();
	unsigned char *pt = NULL, *blob = NULL, kid[VELD_KEYIDBYTES];
	size_t pt_len = 0, blen = 0;
	veld_err err;
	if (veld_env__open(&pt, &pt_len, data, size, k->rec_key, VELD_FUZZ_CASE, VELD_FUZZ_RECORD, &err) == 0) {
		VELD_FUZZ_CHECK(pt != NULL && pt[pt_len] == '\0');
		reseal(data, size, pt, pt_len);
	} else {
		VELD_FUZZ_CHECK(err.code == VELD_EINTEGRITY && err.msg[0]);
	}
	free(pt);
	pt = NULL;
	(void)veld_env__key_id(kid, data, size);
	/* The input as a plaintext: seal, open, the same bytes. */
	VELD_FUZZ_CHECK(veld_env__seal(&blob, &blen, k->rec_key, k->rec_key_id, VELD_FUZZ_CASE,
	                               VELD_FUZZ_RECORD, data, size) == 0);
	VELD_FUZZ_CHECK(blen == size + VELD_ENV_HEADERBYTES + VELD_ENV_TAGBYTES);
	VELD_FUZZ_CHECK(veld_env__open(&pt, &pt_len, blob, blen, k->rec_key, VELD_FUZZ_CASE, VELD_FUZZ_RECORD,
	                               &err) == 0);
	VELD_FUZZ_CHECK(pt_len == size && (size == 0 || memcmp(pt, data, size) == 0));
	free(pt);
	free(blob);
	return 0;
}

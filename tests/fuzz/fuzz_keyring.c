/*
** fuzz_keyring.c — opening a sealed case-key entry (sync/keyring.c) with a
** fixed box key pair.
**
** An entry that opens must hold a case id and compartment that seal
** again, and the new entry (crypto_box_seal is randomised, so not the same
** bytes) must open to the same key, ids and epoch.
*/
#include "fuzz.h"
#include "sync.h"

#include <sodium.h>

#include <stdlib.h>
#include <string.h>

static void reseal(const veld_case_key *k)
{
	const veld_fuzz_keys *fk = veld_fuzz_keys_get();
	unsigned char *again = NULL;
	size_t n = 0;
	veld_case_key k2;
	veld_err err;
	VELD_FUZZ_CHECK(veld_keyring__seal(&again, &n, k, fk->box_pk) == 0);
	VELD_FUZZ_CHECK(n == (k->epoch ? VELD_KEYRING_SEALED2BYTES : VELD_KEYRING_SEALEDBYTES));
	VELD_FUZZ_CHECK(veld_keyring__open(&k2, again, n, fk->box_pk, fk->box_sk, &err) == 0);
	VELD_FUZZ_CHECK(!strcmp(k2.case_id, k->case_id) && !strcmp(k2.compartment, k->compartment));
	VELD_FUZZ_CHECK(!memcmp(k2.key_id, k->key_id, sizeof k->key_id) && k2.epoch == k->epoch);
	VELD_FUZZ_CHECK(!memcmp(k2.key, k->key, VELD_KEYBYTES));
	veld_case_key__clear(&k2);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const veld_fuzz_keys *fk = veld_fuzz_keys_get();
	veld_case_key k;
	veld_err err;
	if (veld_keyring__open(&k, data, size, fk->box_pk, fk->box_sk, &err) == 0) {
		VELD_FUZZ_CHECK(k.key != NULL);
		reseal(&k);
		veld_case_key__clear(&k);
	} else {
		VELD_FUZZ_CHECK(k.key == NULL && err.msg[0]);
	}
	return 0;
}

/*
** fuzz_registry.c — verifying a signed registry entry (sync/registry.c)
** against a fixed organisation key.
**
** An entry has one valid byte form, so an entry that verifies must be
** exactly what signing its body writes (Ed25519 is deterministic).  Input
** that parses as a JSON object is also signed as a body, and the entry
** must verify to an equal body.
*/
#include "fuzz.h"
#include "sync.h"

#include <stdlib.h>
#include <string.h>

static void sign_and_verify(const json_t *body)
{
	const veld_fuzz_keys *k = veld_fuzz_keys_get();
	char *entry = veld_registry__sign(body, k->sign_sk);
	json_t *back = NULL;
	veld_err err;
	if (!entry || strlen(entry) > VELD_REGISTRY_MAXBYTES) {
		free(entry); /* no canonical form, or longer than an entry may be */
		return;
	}
	VELD_FUZZ_CHECK(veld_registry__verify(&back, entry, strlen(entry), k->sign_pk, &err) == 0);
	VELD_FUZZ_CHECK(json_equal(back, body));
	json_decref(back);
	free(entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const veld_fuzz_keys *k = veld_fuzz_keys_get();
	json_t *body = NULL, *obj;
	json_error_t jerr;
	veld_err err;
	if (veld_registry__verify(&body, (const char *)data, size, k->sign_pk, &err) == 0) {
		char *entry = veld_registry__sign(body, k->sign_sk);
		VELD_FUZZ_CHECK(entry != NULL && strlen(entry) == size && memcmp(entry, data, size) == 0);
		free(entry);
		json_decref(body);
	} else {
		VELD_FUZZ_CHECK(err.code == VELD_EINTEGRITY && err.msg[0]);
	}
	obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (json_is_object(obj))
		sign_and_verify(obj);
	json_decref(obj);
	return 0;
}

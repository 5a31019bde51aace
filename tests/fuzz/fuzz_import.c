/*
** fuzz_import.c — bulk import (veld_import, scripts/records.c): JSON Lines,
** each line a case (an id or a {"ref", "name", "postcode"}), a form and
** its fields, through the form's rules into an assistant's store.
**
** The whole input is one import.  It is all or nothing, so after a
** refused import the store's cases must be those it held before; an
** import that passes (the store then grows) reports a count of its lines.
** The store is made anew after every STORE_IMPORTS imports that passed,
** so listing its cases stays cheap.
*/
#include "fuzz.h"
#include "veld.h"

#include <stdlib.h>
#include <string.h>

#define STORE_IMPORTS 32

/* Cases in the store, from the public listing. */
static size_t held(veld_store *s)
{
	char *cases = NULL;
	json_t *j;
	size_t n;
	VELD_FUZZ_CHECK(veld_case_list_json(&cases, s) == VELD_OK);
	j = json_loads(cases, 0, NULL);
	VELD_FUZZ_CHECK(json_is_array(j));
	n = json_array_size(j);
	json_decref(j);
	veld_free(cases);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int passed;
	veld_store *s = veld_fuzz_store("fuzz-import", 0);
	size_t before = held(s);
	long count = -1;
	int rc = veld_import(&count, s, (const char *)data, size, NULL, NULL);
	VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_EDENIED || rc == VELD_EEXISTS);
	if (rc != VELD_OK)
		VELD_FUZZ_CHECK(count == 0 && held(s) == before);
	else
		VELD_FUZZ_CHECK(count >= 0 && held(s) >= before);
	if (rc == VELD_OK && ++passed % STORE_IMPORTS == 0)
		veld_fuzz_store_drop();
	return 0;
}

/*
** fuzz_form.c — a form script (scripts/form.c, engine*.c) compiled and run
** from the input in the sandbox, with tighter limits than the defaults so
** a run stays short; a script that loops or grows is stopped by them.
**
** Input: the form's Lua source; after a line "--fields" (a Lua comment,
** so the whole input is a script too), a record's fields as JSON.  A form
** that loads gives its schema, then validates and computes those fields
** (or {} without them).  Failures must be the documented codes.
*/
#include "fuzz.h"
#include "scripts.h"

#include <stdlib.h>
#include <string.h>

#define FIELDS_MARK "\n--fields\n"

static const char context[] = "{\"vandaag\":\"2024-03-01\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = veld_fuzz_text(data, size), *fields = strstr(text, FIELDS_MARK);
	char *schema = NULL, *errors = NULL, *values = NULL;
	veld_sandbox_limits lim = {0};
	veld_form *f = NULL;
	veld_err err;
	size_t len = size;
	int rc;
	lim.memory = (size_t)4 << 20;
	lim.instructions = 200000;
	lim.wall_ms = 1000;
	if (fields) {
		len = (size_t)(fields - text) + 1;
		fields += strlen(FIELDS_MARK);
	}
	rc = veld_form__load(&f, NULL, text, len, &lim, &err);
	VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_ERROR);
	if (rc != VELD_OK) {
		VELD_FUZZ_CHECK(f == NULL && err.msg[0]);
		goto done;
	}
	VELD_FUZZ_CHECK(veld_form__name(f) && veld_form__compartment(f) && veld_form__version(f) > 0);
	rc = veld_form__schema_json(&schema, f);
	VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_ERROR);
	rc = veld_form__check(&errors, &values, f, fields ? fields : "{}", context);
	VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_ERROR);
	if (rc == VELD_OK)
		VELD_FUZZ_CHECK(errors && !strcmp(errors, "[]"));
done:
	free(schema);
	free(errors);
	free(values);
	veld_form__free(f);
	free(text);
	return 0;
}

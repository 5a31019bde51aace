/*
** fuzz_render.c — a report's result rendered (veld_report__render in
** scripts/render.c, render_html.c): the shape check and every renderer.
**
** Input: the result as JSON, as report_api.c hands it over from a script.
** It is rendered as text, CSV, JSON and HTML with a small output cap; a
** result of the wrong shape or too much output is VELD_EINVALID with a
** message, and an output that is made is NUL-terminated within the cap.
*/
#include "fuzz.h"
#include "scripts.h"

#include <stdlib.h>
#include <string.h>

#define OUTPUT_MAX (256u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const formats[] = {"text", "csv", "json", "html"};
	json_error_t jerr;
	json_t *result = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	size_t i;
	if (!result)
		return 0;
	for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		char *out = NULL;
		veld_err err;
		int rc = veld_report__render(&out, result, formats[i], "fuzz.lua", OUTPUT_MAX, &err);
		VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_ERROR);
		if (rc == VELD_OK)
			VELD_FUZZ_CHECK(out != NULL && strlen(out) <= OUTPUT_MAX);
		else
			VELD_FUZZ_CHECK(err.msg[0]);
		free(out);
	}
	json_decref(result);
	return 0;
}

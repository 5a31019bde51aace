/*
** fuzz_enrol.c — an enrolment request and its region, as the office reads
** them (veld_enroll in sync/org.c, veld_region__parse in core/region.c).
**
** Input: the region ("1500-1999,3000-3499") on the first line, the
** request's JSON after it.  The office store is made once; a request that
** passes enrols its device, and enrolling it again must be VELD_EEXISTS
** (veld.h).  Any other outcome than the documented codes is a failure.
*/
#include "fuzz.h"
#include "veld.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	veld_store *office = veld_fuzz_store("fuzz-enrol", 1);
	char *text = veld_fuzz_text(data, size), *req = strchr(text, '\n');
	char id[VELD_IDSIZE];
	veld_range ranges[VELD_MAX_RANGES];
	veld_err err;
	int rc, n = 0;
	if (req)
		*req++ = '\0';
	else
		req = text + size;
	/* The region alone first: the parser on its own. */
	rc = veld_region__parse(ranges, VELD_MAX_RANGES, &n, text, &err);
	VELD_FUZZ_CHECK(rc == 0 || rc == VELD_EINVALID);
	VELD_FUZZ_CHECK(n >= 0 && n <= VELD_MAX_RANGES);
	rc = veld_enroll(id, office, req, text);
	if (rc != VELD_OK && rc != VELD_EINVALID && rc != VELD_EINTEGRITY && rc != VELD_EEXISTS)
		fprintf(stderr, "veld_enroll: %d %s\n", rc, veld_errmsg(office));
	VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID || rc == VELD_EINTEGRITY || rc == VELD_EEXISTS);
	if (rc == VELD_OK) {
		VELD_FUZZ_CHECK(strlen(id) == VELD_IDSIZE - 1 && veld_id__is(id));
		VELD_FUZZ_CHECK(veld_enroll(NULL, office, req, text) == VELD_EEXISTS);
	}
	free(text);
	return 0;
}

/*
** fuzz_record.c — the record state decoder and the merge (core/record*.c).
**
** Input: up to three record states, one per line.  Every line is parsed;
** of those that parse the target checks what tests/unit/merge_props.c
** checks on histories it makes itself, here on states the fuzzer makes:
**
**     parse(canonical(x)) == x                       (canonical bytes)
**     merge(a,a) == a                                idempotent
**     merge(a,b) == merge(b,a)                       commutative
**     merge(merge(a,b),c) == merge(a,merge(b,c))     associative
**
** compared on canonical output, and a refused merge is refused both ways.
** The view of every state is built too (it walks what parse accepted).
*/
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STATES 3

/* A copy of r through its canonical bytes, checking they parse back to
** the same bytes. */
static veld_record *copy_of(const veld_record *r)
{
	char *c = veld_record__canonical(r), *c2;
	veld_record *out = NULL;
	veld_err err;
	VELD_FUZZ_CHECK(c != NULL);
	VELD_FUZZ_CHECK(veld_record__parse(&out, c, strlen(c), &err) == 0);
	c2 = veld_record__canonical(out);
	VELD_FUZZ_CHECK(c2 != NULL && strcmp(c, c2) == 0);
	free(c);
	free(c2);
	return out;
}

static int same(const veld_record *a, const veld_record *b)
{
	char *ca = veld_record__canonical(a), *cb = veld_record__canonical(b);
	int eq;
	VELD_FUZZ_CHECK(ca != NULL && cb != NULL);
	eq = strcmp(ca, cb) == 0;
	free(ca);
	free(cb);
	return eq;
}

/* merge(a, b) as a new record (NULL when the merge is refused), its rc in *rc. */
static veld_record *merged(int *rc, const veld_record *a, const veld_record *b)
{
	veld_record *m = copy_of(a);
	if ((*rc = veld_record__merge(m, b)) != 0) {
		veld_record__free(m);
		return NULL;
	}
	return m;
}

static void check_pair(const veld_record *a, const veld_record *b)
{
	int rab, rba;
	veld_record *ab = merged(&rab, a, b), *ba = merged(&rba, b, a);
	VELD_FUZZ_CHECK(rab == rba);
	if (ab)
		VELD_FUZZ_CHECK(same(ab, ba));
	veld_record__free(ab);
	veld_record__free(ba);
}

static void check_three(const veld_record *a, const veld_record *b, const veld_record *c)
{
	int r1, r2, r3, r4;
	veld_record *ab = merged(&r1, a, b), *bc = merged(&r2, b, c), *ab_c = NULL, *a_bc = NULL;
	if (ab && bc) {
		ab_c = merged(&r3, ab, c);
		a_bc = merged(&r4, a, bc);
		VELD_FUZZ_CHECK(r3 == r4);
		if (ab_c)
			VELD_FUZZ_CHECK(same(ab_c, a_bc));
	}
	veld_record__free(ab);
	veld_record__free(bc);
	veld_record__free(ab_c);
	veld_record__free(a_bc);
}

static void check_one(const veld_record *a)
{
	int rc;
	veld_record *aa = merged(&rc, a, a);
	json_t *view = veld_record__view(a);
	veld_stamp st;
	VELD_FUZZ_CHECK(rc == 0 && same(aa, a));
	VELD_FUZZ_CHECK(view != NULL);
	json_decref(view);
	(void)veld_record__max_stamp(a, &st);
	(void)veld_record__is_deleted(a);
	veld_record__free(aa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	veld_record *rec[MAX_STATES] = {0};
	const char *p = (const char *)data, *end = p + size;
	int n = 0, i, j;
	veld_err err;
	while (p < end && n < MAX_STATES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		veld_record *r = NULL;
		if (veld_record__parse(&r, p, len, &err) == 0) {
			VELD_FUZZ_CHECK(r != NULL);
			rec[n++] = r;
		}
		p += len + 1;
	}
	for (i = 0; i < n; i++) {
		veld_record__free(copy_of(rec[i]));
		check_one(rec[i]);
		for (j = i + 1; j < n; j++)
			check_pair(rec[i], rec[j]);
	}
	if (n == 3)
		check_three(rec[0], rec[1], rec[2]);
	for (i = 0; i < n; i++)
		veld_record__free(rec[i]);
	return 0;
}

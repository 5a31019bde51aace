/*
** fuzz_treedelta.c — the tree deltas of the thin pack a push sends
** (sync/git/pack.c): its parser of raw git trees and the delta it writes
** from a base tree to a new one.
**
** Input: two bytes (little-endian) giving the base's length, the base
** tree, then the new tree.  When both parse, the delta must rebuild the
** new tree from the base, applied the way git applies one
** (gitformat-pack(5), "Deltified representation"); a delta that does not
** is a pack the hub would refuse, or worse, accept as another tree.
**
** tree_delta is static to pack.c, so this file includes pack.c; the
** library's own copy of it is then never linked into this program.
*/
#include "fuzz.h"

#include "../../sync/git/pack.c"

/* A base-128 size of a delta header; 0 if it runs past the end. */
static int delta_size(size_t *v, const unsigned char **p, const unsigned char *end)
{
	unsigned shift = 0;
	*v = 0;
	do {
		if (*p == end || shift > 56)
			return 0;
		*v |= (size_t)(**p & 0x7f) << shift;
		shift += 7;
	} while (*(*p)++ & 0x80);
	return 1;
}

/* Apply delta d to base into a new buffer (*out_len bytes); NULL if the
** delta is malformed. */
static unsigned char *delta_apply(size_t *out_len, const unsigned char *base, size_t blen,
                                  const unsigned char *d, size_t dlen)
{
	const unsigned char *p = d, *end = d + dlen;
	size_t bsize, rsize, at = 0, i;
	unsigned char *r;
	if (!delta_size(&bsize, &p, end) || !delta_size(&rsize, &p, end) || bsize != blen)
		return NULL;
	if (!(r = malloc(rsize + 1)))
		abort();
	while (p < end) {
		unsigned op = *p++;
		size_t off = 0, n = 0;
		if (op & 0x80) {
			for (i = 0; i < 4; i++)
				if (op & (1u << i)) {
					VELD_FUZZ_CHECK(p < end);
					off |= (size_t)*p++ << (8 * i);
				}
			for (i = 0; i < 3; i++)
				if (op & (0x10u << i)) {
					VELD_FUZZ_CHECK(p < end);
					n |= (size_t)*p++ << (8 * i);
				}
			n = n ? n : 0x10000;
			VELD_FUZZ_CHECK(off + n <= blen && at + n <= rsize);
			memcpy(r + at, base + off, n);
		} else {
			n = op;
			VELD_FUZZ_CHECK(n > 0 && (size_t)(end - p) >= n && at + n <= rsize);
			memcpy(r + at, p, n);
			p += n;
		}
		at += n;
	}
	VELD_FUZZ_CHECK(at == rsize);
	*out_len = rsize;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	veld_buf delta = {0};
	const unsigned char *base, *t;
	unsigned char *rebuilt;
	size_t blen, tlen, rlen = 0;
	int rc;
	if (size < 2)
		return 0;
	blen = (size_t)data[0] | (size_t)data[1] << 8;
	if (blen > size - 2)
		blen = size - 2;
	base = data + 2;
	t = base + blen;
	tlen = size - 2 - blen;
	rc = tree_delta(&delta, base, blen, t, tlen);
	VELD_FUZZ_CHECK(rc == 0 || rc == 1);
	if (rc == 0) {
		rebuilt = delta_apply(&rlen, base, blen, delta.p, delta.n);
		VELD_FUZZ_CHECK(rebuilt != NULL);
		VELD_FUZZ_CHECK(rlen == tlen && (tlen == 0 || memcmp(rebuilt, t, tlen) == 0));
		free(rebuilt);
	}
	free(delta.p);
	return 0;
}

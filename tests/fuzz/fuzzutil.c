/*
** fuzzutil.c — the fixed keys, the failure report and the input copy the
** fuzz targets share (fuzz.h).  Owns nothing between calls.
*/
#include "fuzz.h"
#include "testutil.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void veld_fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
	abort();
}

char *veld_fuzz_text(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);
	if (!t)
		abort();
	if (size)
		memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

/* The keys of the process, for veld_fuzz_keys_get. */
static veld_fuzz_keys fuzz_keys;
static int fuzz_keys_made;

const veld_fuzz_keys *veld_fuzz_keys_get(void)
{
	veld_fuzz_keys *k = &fuzz_keys;
	unsigned char seed[32];
	if (fuzz_keys_made)
		return k;
	if (sodium_init() < 0)
		abort();
	memset(k->rec_key, 0x11, sizeof k->rec_key);
	memset(k->rec_key_id, 0x22, sizeof k->rec_key_id);
	memset(seed, 0x33, sizeof seed);
	crypto_box_seed_keypair(k->box_pk, k->box_sk, seed);
	memset(seed, 0x44, sizeof seed);
	crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, seed);
	fuzz_keys_made = 1;
	return k;
}

/* The one store of the process, for veld_fuzz_store and its atexit. */
static veld_store *fuzz_store;
static char *fuzz_dir;

static int fuzz_atexit;

void veld_fuzz_store_drop(void)
{
	veld_store_close(fuzz_store);
	if (fuzz_dir)
		veld_test_rmtree(fuzz_dir);
	free(fuzz_dir);
	fuzz_store = NULL;
	fuzz_dir = NULL;
}

veld_store *veld_fuzz_store(const char *tag, int office)
{
	char *path = NULL, *hub = NULL;
	veld_store_options o;
	if (fuzz_store)
		return fuzz_store;
	if (!(fuzz_dir = veld_test_tmpdir(tag)) || !(path = veld_test_path(fuzz_dir, "store")) ||
	    !(hub = veld_test_path(fuzz_dir, "hub")))
		abort();
	if (office) {
		fuzz_store = veld_test_office(path, hub);
	} else {
		veld_test_fast_options(&o);
		if (veld_store_create(&fuzz_store, path, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o)) {
			fprintf(stderr, "fuzz: cannot make a store: %s\n", veld_errmsg(fuzz_store));
			abort();
		}
	}
	if (!fuzz_atexit++)
		atexit(veld_fuzz_store_drop);
	free(path);
	free(hub);
	return fuzz_store;
}

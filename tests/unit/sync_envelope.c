/*
** tests/unit/sync_envelope.c — the record envelope (docs/sync.md, "Record
** envelope"): round trip, determinism, binding to the path and the key id,
** every bit flip and every truncation refused, the SIV nonce check, and the
** byte format pinned by a golden vector (tests/resources/sync-envelope-1.hex)
** and by a rebuild from the formula in the docs with libsodium's primitives.
**
** VELD_GOLDEN_WRITE=1 rewrites the golden file from the current code
** instead of comparing; review the diff before committing it.
*/
#include "testutil.h"

#include "sync.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_ID  "22222222222222222222222222222222"
#define REC_ID   "11111111111111111111111111111111"
#define OTHER_ID "33333333333333333333333333333333"
#define PT       "{\"case\":\"22222222222222222222222222222222\",\"form\":\"contactregistratie\"}"

static int contains(const unsigned char *buf, size_t len, const char *needle)
{
	size_t i, n = strlen(needle);
	for (i = 0; i + n <= len; i++)
		if (!memcmp(buf + i, needle, n))
			return 1;
	return 0;
}

/* Fixed inputs: key = 00 01 .. 1f, key id = a0 a1 .. af. */
static void fixed_key(unsigned char *key, unsigned char *key_id)
{
	int i;
	for (i = 0; i < VELD_KEYBYTES; i++)
		key[i] = (unsigned char)i;
	for (i = 0; i < VELD_KEYIDBYTES; i++)
		key_id[i] = (unsigned char)(0xa0 + i);
}

static void seal_ok(unsigned char **blob, size_t *len, const unsigned char *key,
                    const unsigned char *key_id, const char *case_id, const char *rec_id,
                    const char *pt)
{
	assert_int_equal(veld_env__seal(blob, len, key, key_id, case_id, rec_id,
	                                (const unsigned char *)pt, strlen(pt)),
	                 0);
	assert_non_null(*blob);
	assert_int_equal(*len, VELD_ENV_HEADERBYTES + strlen(pt) + VELD_ENV_TAGBYTES);
}

/* Opening must fail with VELD_EINTEGRITY, leave no plaintext, and say which
** record without showing the plaintext. */
static void assert_refused(const unsigned char *blob, size_t len, const unsigned char *key,
                           const char *case_id, const char *rec_id)
{
	unsigned char *pt = (unsigned char *)"sentinel";
	size_t n = 99;
	veld_err err = {0, ""};
	int rc = veld_env__open(&pt, &n, blob, len, key, case_id, rec_id, &err);
	assert_int_equal(rc, VELD_EINTEGRITY);
	assert_null(pt);
	assert_int_equal(n, 0);
	assert_int_equal(err.code, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, rec_id));
	assert_null(strstr(err.msg, "contactregistratie"));
}

static void test_sync_envelope__round_trip(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], got_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *pt = NULL;
	size_t len = 0, n = 0;
	veld_err err = {0, ""};
	(void)state;
	randombytes_buf(key, sizeof key);
	randombytes_buf(key_id, sizeof key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	assert_memory_equal(blob, "VLD1\x01\x01", 6);
	assert_memory_equal(blob + 6, key_id, VELD_KEYIDBYTES);
	/* The plaintext does not show in the blob. */
	assert_false(contains(blob, len, "contactregistratie"));
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, REC_ID, &err), 0);
	assert_int_equal(n, strlen(PT));
	assert_memory_equal(pt, PT, n);
	assert_int_equal(pt[n], '\0');
	assert_int_equal(veld_env__key_id(got_id, blob, len), 0);
	assert_memory_equal(got_id, key_id, VELD_KEYIDBYTES);
	free(pt);
	free(blob);
}

static void test_sync_envelope__empty_plaintext(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *pt = NULL;
	size_t len = 0, n = 99;
	veld_err err = {0, ""};
	(void)state;
	fixed_key(key, key_id);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, CASE_ID, REC_ID, NULL, 0), 0);
	assert_int_equal(len, VELD_ENV_HEADERBYTES + VELD_ENV_TAGBYTES);
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, REC_ID, &err), 0);
	assert_int_equal(n, 0);
	assert_non_null(pt);
	assert_int_equal(pt[0], '\0');
	free(pt);
	free(blob);
}

static void test_sync_envelope__deterministic(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], key2[VELD_KEYBYTES];
	unsigned char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
	size_t la, lb, lc, ld, le;
	(void)state;
	randombytes_buf(key, sizeof key);
	randombytes_buf(key_id, sizeof key_id);
	memcpy(key2, key, sizeof key2);
	key2[0] ^= 1;
	seal_ok(&a, &la, key, key_id, CASE_ID, REC_ID, PT);
	seal_ok(&b, &lb, key, key_id, CASE_ID, REC_ID, PT);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	/* Another plaintext of the same length, another record, another key:
	** another nonce each time. */
	seal_ok(&c, &lc, key, key_id, CASE_ID, REC_ID,
	        "{\"case\":\"22222222222222222222222222222222\",\"form\":\"contactregistratiE\"}");
	seal_ok(&d, &ld, key, key_id, CASE_ID, OTHER_ID, PT);
	seal_ok(&e, &le, key2, key_id, CASE_ID, REC_ID, PT);
	assert_memory_not_equal(a + 22, c + 22, 24);
	assert_memory_not_equal(a + 22, d + 22, 24);
	assert_memory_not_equal(a + 22, e + 22, 24);
	assert_memory_not_equal(c + 22, d + 22, 24);
	free(a);
	free(b);
	free(c);
	free(d);
	free(e);
}

static void test_sync_envelope__bound_to_its_path(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL;
	size_t len = 0;
	(void)state;
	randombytes_buf(key, sizeof key);
	randombytes_buf(key_id, sizeof key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	assert_refused(blob, len, key, CASE_ID, OTHER_ID); /* moved to another record */
	assert_refused(blob, len, key, OTHER_ID, REC_ID);  /* moved to another case */
	assert_refused(blob, len, key, REC_ID, CASE_ID);   /* ids swapped */
	free(blob);
}

static void test_sync_envelope__wrong_key_and_key_id(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], other[VELD_KEYBYTES];
	unsigned char *blob = NULL;
	size_t len = 0;
	(void)state;
	randombytes_buf(key, sizeof key);
	randombytes_buf(other, sizeof other);
	randombytes_buf(key_id, sizeof key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	assert_refused(blob, len, other, CASE_ID, REC_ID);
	/* A header that claims another key id (the key itself is right). */
	blob[6] ^= 0xff;
	blob[21] ^= 0x55;
	assert_refused(blob, len, key, CASE_ID, REC_ID);
	free(blob);
}

static void test_sync_envelope__every_bit_flip_is_refused(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL;
	size_t len = 0, off;
	int bit;
	(void)state;
	fixed_key(key, key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	for (off = 0; off < len; off++) {
		for (bit = 0; bit < 8; bit++) {
			blob[off] ^= (unsigned char)(1u << bit);
			assert_refused(blob, len, key, CASE_ID, REC_ID);
			blob[off] ^= (unsigned char)(1u << bit);
		}
	}
	free(blob);
}

static void test_sync_envelope__every_truncation_is_refused(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *longer;
	size_t len = 0, n;
	(void)state;
	fixed_key(key, key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	for (n = 0; n < len; n++) {
		/* A copy of exactly n bytes, so ASan sees any read beyond it. */
		unsigned char *cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, blob, n);
		assert_refused(cut, n, key, CASE_ID, REC_ID);
		free(cut);
	}
	assert_refused(NULL, 0, key, CASE_ID, REC_ID);
	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, blob, len);
	longer[len] = 0;
	assert_refused(longer, len + 1, key, CASE_ID, REC_ID);
	free(longer);
	free(blob);
}

/* The header is checked before any cryptography, with its own messages. */
static void test_sync_envelope__header_checks(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], got[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *pt = NULL;
	size_t len = 0, n = 0;
	veld_err err = {0, ""};
	(void)state;
	fixed_key(key, key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	blob[4] = 2;
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, REC_ID, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "version"));
	assert_int_equal(veld_env__key_id(got, blob, len), VELD_EINTEGRITY);
	blob[4] = 1;
	blob[5] = 2;
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, REC_ID, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "algorithm"));
	assert_int_equal(veld_env__key_id(got, blob, len), VELD_EINTEGRITY);
	blob[5] = 1;
	blob[0] = 'X';
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, REC_ID, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "magic"));
	assert_int_equal(veld_env__key_id(got, blob, len), VELD_EINTEGRITY);
	blob[0] = 'V';
	assert_int_equal(veld_env__open(&pt, &n, blob, 61, key, CASE_ID, REC_ID, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "short"));
	assert_int_equal(veld_env__key_id(got, blob, 61), VELD_EINTEGRITY);
	/* key_id needs only a well-formed header. */
	assert_int_equal(veld_env__key_id(got, blob, 62), 0);
	assert_null(pt);
	free(blob);
}

static void test_sync_envelope__bad_arguments(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *pt = NULL;
	size_t len = 0, n = 0;
	veld_err err = {0, ""};
	const unsigned char *p = (const unsigned char *)PT;
	(void)state;
	fixed_key(key, key_id);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, "2222222222222222222222222222222A",
	                                REC_ID, p, 3),
	                 VELD_EINVALID);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, CASE_ID, "1111", p, 3), VELD_EINVALID);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, CASE_ID,
	                                REC_ID "1", p, 3),
	                 VELD_EINVALID);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, NULL, REC_ID, p, 3), VELD_EINVALID);
	assert_int_equal(veld_env__seal(&blob, &len, NULL, key_id, CASE_ID, REC_ID, p, 3), VELD_EINVALID);
	assert_int_equal(veld_env__seal(&blob, &len, key, key_id, CASE_ID, REC_ID, NULL, 3), VELD_EINVALID);
	assert_null(blob);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	assert_int_equal(veld_env__open(&pt, &n, blob, len, key, CASE_ID, "not an id", &err), VELD_EINVALID);
	assert_null(strstr(err.msg, "not an id"));
	assert_int_equal(veld_env__open(&pt, &n, blob, len, NULL, CASE_ID, REC_ID, &err), VELD_EINVALID);
	assert_null(pt);
	free(blob);
}

/* docs/sync.md rebuilt with libsodium's primitives, independently of
** envelope.c: subkey, nonce over LE64(|AD|) || AD || pt, AEAD. */
static void spec_envelope(unsigned char *out, const unsigned char *key, const unsigned char *key_id,
                          const char *case_id, const char *rec_id, const unsigned char *pt, size_t n)
{
	unsigned char ad[94], subkey[32], nonce[24];
	unsigned char len_le[8] = {94, 0, 0, 0, 0, 0, 0, 0};
	unsigned long long clen = 0;
	crypto_generichash_state st;
	memcpy(ad, "veld-record\0", 12);
	memcpy(ad + 12, case_id, 32);
	memcpy(ad + 44, rec_id, 32);
	memcpy(ad + 76, key_id, 16);
	ad[92] = 1;
	ad[93] = 1;
	assert_int_equal(crypto_kdf_derive_from_key(subkey, 32, 1, "veldsiv", key), 0);
	crypto_generichash_init(&st, subkey, 32, 24);
	crypto_generichash_update(&st, len_le, 8);
	crypto_generichash_update(&st, ad, sizeof ad);
	crypto_generichash_update(&st, pt, n);
	crypto_generichash_final(&st, nonce, 24);
	memcpy(out, "VLD1\x01\x01", 6);
	memcpy(out + 6, key_id, 16);
	memcpy(out + 22, nonce, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 46, &clen, pt, n, ad, sizeof ad, NULL, nonce, key);
	assert_int_equal(clen, n + 16);
}

static void test_sync_envelope__matches_the_documented_formula(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], pt[300];
	unsigned char *blob = NULL, want[46 + 300 + 16];
	size_t len = 0, n;
	(void)state;
	for (n = 0; n <= sizeof pt; n += 37) {
		randombytes_buf(key, sizeof key);
		randombytes_buf(key_id, sizeof key_id);
		randombytes_buf(pt, n);
		assert_int_equal(veld_env__seal(&blob, &len, key, key_id, CASE_ID, REC_ID, pt, n), 0);
		spec_envelope(want, key, key_id, CASE_ID, REC_ID, pt, n);
		assert_int_equal(len, 46 + n + 16);
		assert_memory_equal(blob, want, len);
		free(blob);
		blob = NULL;
	}
}

/* A blob that authenticates but whose nonce was chosen freely (not derived
** from its content) is refused: one valid blob per (key, path, state). */
static void test_sync_envelope__foreign_nonce_is_refused(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES], ad[94];
	unsigned char blob[46 + sizeof PT - 1 + 16], *pt = NULL;
	unsigned long long clen = 0;
	size_t n = 0;
	veld_err err = {0, ""};
	(void)state;
	fixed_key(key, key_id);
	memcpy(ad, "veld-record\0", 12);
	memcpy(ad + 12, CASE_ID, 32);
	memcpy(ad + 44, REC_ID, 32);
	memcpy(ad + 76, key_id, 16);
	ad[92] = 1;
	ad[93] = 1;
	memcpy(blob, "VLD1\x01\x01", 6);
	memcpy(blob + 6, key_id, 16);
	randombytes_buf(blob + 22, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + 46, &clen, (const unsigned char *)PT,
	                                           sizeof PT - 1, ad, sizeof ad, NULL, blob + 22, key);
	assert_int_equal(veld_env__open(&pt, &n, blob, sizeof blob, key, CASE_ID, REC_ID, &err),
	                 VELD_EINTEGRITY);
	assert_null(pt);
	assert_non_null(strstr(err.msg, "nonce"));
	assert_non_null(strstr(err.msg, REC_ID));
}

/* ---- golden vector ------------------------------------------------------ */

static char *resource_path(const char *name)
{
	const char *env = getenv("VELD_TEST_RESOURCES");
	char dir[4096], *slash, *p;
	size_t n;
	if (env && *env) {
		snprintf(dir, sizeof dir, "%s", env);
	} else {
		/* tests/unit/sync_envelope.c -> tests/resources */
		snprintf(dir, sizeof dir, "%s", __FILE__);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof dir, "tests");
		strncat(dir, "/resources", sizeof dir - strlen(dir) - 1);
	}
	n = strlen(dir) + strlen(name) + 2;
	p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

#define GOLDEN_HEAD \
	"# sync-envelope-1: a record envelope (docs/sync.md, \"Record envelope\"),\n" \
	"# checked byte for byte by tests/unit/sync_envelope.c.  Inputs:\n" \
	"#   case key  = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" \
	"#   key id    = a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\n" \
	"#   case id   = " CASE_ID "\n" \
	"#   record id = " REC_ID "\n" \
	"#   plaintext = " PT "\n" \
	"# Blob, hex (lines starting with # are comments):\n"

static void test_sync_envelope__golden_vector(void **state)
{
	unsigned char key[VELD_KEYBYTES], key_id[VELD_KEYIDBYTES];
	unsigned char *blob = NULL, *file, *want, *pt = NULL;
	char *path = resource_path("sync-envelope-1.hex"), *hex, *text;
	size_t len = 0, flen = 0, wlen = 0, i, j, n = 0;
	const char *w = getenv("VELD_GOLDEN_WRITE");
	veld_err err = {0, ""};
	FILE *f;
	(void)state;
	fixed_key(key, key_id);
	seal_ok(&blob, &len, key, key_id, CASE_ID, REC_ID, PT);
	if (w && !strcmp(w, "1")) {
		hex = malloc(2 * len + 1);
		assert_non_null(hex);
		sodium_bin2hex(hex, 2 * len + 1, blob, len);
		f = fopen(path, "wb");
		assert_non_null(f);
		fputs(GOLDEN_HEAD, f);
		for (i = 0; i < 2 * len; i += 64)
			fprintf(f, "%.64s\n", hex + i);
		assert_int_equal(fclose(f), 0);
		free(hex);
	}
	file = veld_test_read_file(path, &flen);
	if (!file)
		fail_msg("golden file %s is missing", path);
	/* Drop comment lines, keep the hex. */
	text = malloc(flen + 1);
	assert_non_null(text);
	for (i = 0, j = 0; i < flen;) {
		if (file[i] == '#') {
			while (i < flen && file[i] != '\n')
				i++;
			continue;
		}
		text[j++] = (char)file[i++];
	}
	text[j] = '\0';
	want = malloc(flen / 2 + 1);
	assert_non_null(want);
	assert_int_equal(sodium_hex2bin(want, flen / 2 + 1, text, j, " \r\n\t", &wlen, NULL), 0);
	if (wlen != len || memcmp(want, blob, len) != 0)
		fail_msg("envelope bytes differ from %s (the byte format changed?)", path);
	/* The file's blob opens to the documented plaintext. */
	assert_int_equal(veld_env__open(&pt, &n, want, wlen, key, CASE_ID, REC_ID, &err), 0);
	assert_int_equal(n, strlen(PT));
	assert_memory_equal(pt, PT, n);
	free(pt);
	free(want);
	free(text);
	free(file);
	free(blob);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sync_envelope__round_trip),
	        cmocka_unit_test(test_sync_envelope__empty_plaintext),
	        cmocka_unit_test(test_sync_envelope__deterministic),
	        cmocka_unit_test(test_sync_envelope__bound_to_its_path),
	        cmocka_unit_test(test_sync_envelope__wrong_key_and_key_id),
	        cmocka_unit_test(test_sync_envelope__every_bit_flip_is_refused),
	        cmocka_unit_test(test_sync_envelope__every_truncation_is_refused),
	        cmocka_unit_test(test_sync_envelope__header_checks),
	        cmocka_unit_test(test_sync_envelope__bad_arguments),
	        cmocka_unit_test(test_sync_envelope__matches_the_documented_formula),
	        cmocka_unit_test(test_sync_envelope__foreign_nonce_is_refused),
	        cmocka_unit_test(test_sync_envelope__golden_vector),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

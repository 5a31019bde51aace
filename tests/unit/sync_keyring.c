/*
** tests/unit/sync_keyring.c — case keys and sealed key entries (docs/sync.md,
** "Keys tree"): round trip, fixed sealed size, only the recipient opens,
** every bit flip and wrong length refused, the documented payload layout
** opens while every malformed payload is refused, invalid keys are not
** sealed, clearing a key wipes and unmaps its guarded memory, and a key
** opened into the caller's buffer lands there and is wiped on refusal.
*/
#include "testutil.h"

#include "sync.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CASE_ID "0123456789abcdef0123456789abcdef"

typedef struct box {
	unsigned char pk[crypto_box_PUBLICKEYBYTES];
	unsigned char sk[crypto_box_SECRETKEYBYTES];
} box;

static void mk_box(box *b)
{
	assert_int_equal(crypto_box_keypair(b->pk, b->sk), 0);
}

static void mk_key(veld_case_key *k, const char *compartment)
{
	assert_int_equal(veld_case_key__new(k), 0);
	assert_non_null(k->key);
	memcpy(k->case_id, CASE_ID, VELD_IDSIZE);
	snprintf(k->compartment, sizeof k->compartment, "%s", compartment);
}

static int all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;
	for (i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void assert_refused(const unsigned char *sealed, size_t len, const box *b)
{
	veld_case_key k;
	veld_err err = {0, ""};
	memset(&k, 0xaa, sizeof k);
	assert_int_equal(veld_keyring__open(&k, sealed, len, b->pk, b->sk, &err), VELD_EINTEGRITY);
	assert_int_equal(err.code, VELD_EINTEGRITY);
	assert_null(k.key);
	assert_true(all_zero(&k, sizeof k));
}

static void test_sync_keyring__new_keys_are_random(void **state)
{
	veld_case_key a, b;
	(void)state;
	mk_key(&a, "social");
	mk_key(&b, "social");
	assert_memory_not_equal(a.key, b.key, VELD_KEYBYTES);
	assert_memory_not_equal(a.key_id, b.key_id, VELD_KEYIDBYTES);
	assert_false(all_zero(a.key, VELD_KEYBYTES));
	veld_case_key__clear(&a);
	veld_case_key__clear(&b);
	veld_case_key__clear(NULL);
}

static void test_sync_keyring__round_trip(void **state)
{
	veld_case_key k, got;
	box r;
	unsigned char *sealed = NULL;
	size_t len = 0;
	veld_err err = {0, ""};
	(void)state;
	mk_box(&r);
	mk_key(&k, "huiswijs");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_int_equal(len, VELD_KEYRING_SEALEDBYTES);
	assert_int_equal(len, VELD_KEYRING_PAYLOADBYTES + crypto_box_SEALBYTES);
	assert_int_equal(veld_keyring__open(&got, sealed, len, r.pk, r.sk, &err), 0);
	assert_string_equal(got.case_id, CASE_ID);
	assert_string_equal(got.compartment, "huiswijs");
	assert_memory_equal(got.key_id, k.key_id, VELD_KEYIDBYTES);
	assert_non_null(got.key);
	assert_true(got.key != k.key);
	assert_memory_equal(got.key, k.key, VELD_KEYBYTES);
	veld_case_key__clear(&got);
	free(sealed);
	/* The longest compartment name: 31 characters. */
	snprintf(k.compartment, sizeof k.compartment, "%s", "abcdefghijklmnopqrstuvwxyz_abcd");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_int_equal(veld_keyring__open(&got, sealed, len, r.pk, r.sk, &err), 0);
	assert_string_equal(got.compartment, "abcdefghijklmnopqrstuvwxyz_abcd");
	veld_case_key__clear(&got);
	free(sealed);
	veld_case_key__clear(&k);
}

static void test_sync_keyring__only_the_recipient_opens(void **state)
{
	veld_case_key k;
	box r, other;
	unsigned char *sealed = NULL;
	size_t len = 0;
	box mixed;
	(void)state;
	mk_box(&r);
	mk_box(&other);
	mk_key(&k, "social");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_refused(sealed, len, &other);
	/* The right secret key with another public key does not open either
	** (the public key is part of the sealed box's nonce). */
	memcpy(mixed.pk, other.pk, sizeof mixed.pk);
	memcpy(mixed.sk, r.sk, sizeof mixed.sk);
	assert_refused(sealed, len, &mixed);
	free(sealed);
	veld_case_key__clear(&k);
}

static void test_sync_keyring__every_bit_flip_and_length_is_refused(void **state)
{
	veld_case_key k;
	box r;
	unsigned char *sealed = NULL, longer[VELD_KEYRING_SEALEDBYTES + 1];
	size_t len = 0, off, n;
	int bit;
	(void)state;
	mk_box(&r);
	mk_key(&k, "social");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	for (off = 0; off < len; off++) {
		for (bit = 0; bit < 8; bit++) {
			sealed[off] ^= (unsigned char)(1u << bit);
			assert_refused(sealed, len, &r);
			sealed[off] ^= (unsigned char)(1u << bit);
		}
	}
	for (n = 0; n < len; n++)
		assert_refused(sealed, n, &r);
	memcpy(longer, sealed, len);
	longer[len] = 0;
	assert_refused(longer, len + 1, &r);
	assert_refused(NULL, len, &r);
	free(sealed);
	veld_case_key__clear(&k);
}

/* The payload of docs/sync.md, built by hand: magic, case id (binary),
** compartment (NUL-padded to 32), key id, key. */
static void payload(unsigned char *p, const char *magic, const char *comp, size_t comp_len)
{
	size_t i;
	memset(p, 0, VELD_KEYRING_PAYLOADBYTES);
	memcpy(p, magic, 4);
	for (i = 0; i < 16; i++)
		p[4 + i] = (unsigned char)(0x0f * i + 0x07);
	memcpy(p + 20, comp, comp_len);
	for (i = 0; i < 16; i++)
		p[52 + i] = (unsigned char)(0xa0 + i);
	for (i = 0; i < 32; i++)
		p[68 + i] = (unsigned char)i;
}

static void seal_raw(unsigned char *out, const unsigned char *p, const box *r)
{
	assert_int_equal(crypto_box_seal(out, p, VELD_KEYRING_PAYLOADBYTES, r->pk), 0);
}

static void test_sync_keyring__documented_payload_opens(void **state)
{
	unsigned char p[VELD_KEYRING_PAYLOADBYTES], s[VELD_KEYRING_SEALEDBYTES], key[32], id[16];
	char case_hex[VELD_IDSIZE];
	veld_case_key k;
	veld_err err = {0, ""};
	box r;
	int i;
	(void)state;
	mk_box(&r);
	payload(p, "VKY1", "social", 6);
	seal_raw(s, p, &r);
	assert_int_equal(veld_keyring__open(&k, s, sizeof s, r.pk, r.sk, &err), 0);
	sodium_bin2hex(case_hex, sizeof case_hex, p + 4, 16);
	assert_string_equal(k.case_id, case_hex);
	assert_string_equal(k.compartment, "social");
	for (i = 0; i < 16; i++)
		id[i] = (unsigned char)(0xa0 + i);
	for (i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	assert_memory_equal(k.key_id, id, 16);
	assert_memory_equal(k.key, key, 32);
	veld_case_key__clear(&k);
}

static void test_sync_keyring__malformed_payloads_are_refused(void **state)
{
	static const struct {
		const char *magic;
		const char *comp;
		size_t comp_len;
	} bad[] = {
	        {"VKY2", "social", 6},                              /* unknown format */
	        {"vky1", "social", 6},
	        {"VKY1", "", 0},                                    /* empty compartment */
	        {"VKY1", "Social", 6},                              /* outside [a-z_] */
	        {"VKY1", "soc-ial", 7},
	        {"VKY1", "soc ial", 7},
	        {"VKY1", "social\0x", 8},                           /* bytes after the NUL */
	        {"VKY1", "\0social", 7},
	        {"VKY1", "abcdefghijklmnopqrstuvwxyz_abcde", 32},   /* 32: no NUL left */
	        {"VKY1", "sociaal\xc3\xa9", 9},                     /* UTF-8 */
	};
	unsigned char p[VELD_KEYRING_PAYLOADBYTES], s[VELD_KEYRING_SEALEDBYTES];
	size_t i;
	box r;
	(void)state;
	mk_box(&r);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		payload(p, bad[i].magic, bad[i].comp, bad[i].comp_len);
		seal_raw(s, p, &r);
		assert_refused(s, sizeof s, &r);
	}
	/* A well-formed payload with one byte more is refused by its size. */
	{
		unsigned char p2[VELD_KEYRING_PAYLOADBYTES + 1], s2[VELD_KEYRING_SEALEDBYTES + 1];
		payload(p2, "VKY1", "social", 6);
		p2[VELD_KEYRING_PAYLOADBYTES] = 0;
		assert_int_equal(crypto_box_seal(s2, p2, sizeof p2, r.pk), 0);
		assert_refused(s2, sizeof s2, &r);
	}
}

static void test_sync_keyring__invalid_keys_are_not_sealed(void **state)
{
	static const char *const bad_case[] = {
	        "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcde",
	        "0123456789abcdef0123456789abcdeg", "",
	};
	static const char *const bad_comp[] = {"", "Social", "so-cial", "sociaal\xc3\xa9"};
	veld_case_key k;
	box r;
	unsigned char *sealed = NULL, *saved;
	size_t len = 0, i;
	(void)state;
	mk_box(&r);
	mk_key(&k, "social");
	for (i = 0; i < sizeof bad_case / sizeof bad_case[0]; i++) {
		memset(k.case_id, 0, sizeof k.case_id);
		memcpy(k.case_id, bad_case[i], strlen(bad_case[i]));
		assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), VELD_EINVALID);
		assert_null(sealed);
	}
	memcpy(k.case_id, CASE_ID, VELD_IDSIZE);
	for (i = 0; i < sizeof bad_comp / sizeof bad_comp[0]; i++) {
		snprintf(k.compartment, sizeof k.compartment, "%s", bad_comp[i]);
		assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), VELD_EINVALID);
	}
	/* 32 characters with no NUL in the field. */
	memset(k.compartment, 'a', sizeof k.compartment);
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), VELD_EINVALID);
	snprintf(k.compartment, sizeof k.compartment, "social");
	saved = k.key;
	k.key = NULL;
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), VELD_EINVALID);
	k.key = saved;
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, NULL), VELD_EINVALID);
	assert_int_equal(veld_keyring__seal(&sealed, &len, NULL, r.pk), VELD_EINVALID);
	assert_null(sealed);
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	free(sealed);
	veld_case_key__clear(&k);
}

/* 1 if the page holding `p` is mapped (mincore fails with ENOMEM if not).
** mincore, not msync: memcheck takes msync on an unmapped page for a bad
** access, and this asks the kernel on purpose. */
static int mapped(const void *p)
{
	long page = sysconf(_SC_PAGESIZE);
	void *base = (void *)((uintptr_t)p & ~((uintptr_t)page - 1));
	unsigned char resident;
	if (mincore(base, (size_t)page, &resident) == 0)
		return 1;
	assert_int_equal(errno, ENOMEM);
	return 0;
}

static void test_sync_keyring__clear_wipes_and_frees(void **state)
{
	veld_case_key k, got;
	box r;
	unsigned char *sealed = NULL, *old;
	size_t len = 0;
	veld_err err = {0, ""};
	(void)state;
	mk_box(&r);
	mk_key(&k, "social");
	old = k.key;
	assert_true(mapped(old));
	veld_case_key__clear(&k);
	assert_null(k.key);
	assert_true(all_zero(&k, sizeof k));
	/* sodium_free wipes and unmaps: the page is gone. */
	assert_false(mapped(old));
	/* The same for a key that came out of a sealed entry. */
	mk_key(&k, "social");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_int_equal(veld_keyring__open(&got, sealed, len, r.pk, r.sk, &err), 0);
	old = got.key;
	assert_true(mapped(old));
	veld_case_key__clear(&got);
	assert_true(all_zero(&got, sizeof got));
	assert_false(mapped(old));
	/* Clearing twice is harmless. */
	veld_case_key__clear(&got);
	veld_case_key__clear(&k);
	free(sealed);
}

/* Opening into the caller's buffer: the key lands there, the buffer stays
** the caller's (mapped) after success and after a refusal, which wipes it. */
static void test_sync_keyring__open_into_a_given_buffer(void **state)
{
	veld_case_key k, got;
	box r;
	unsigned char *sealed = NULL, *buf = sodium_malloc(VELD_KEYBYTES);
	size_t len = 0;
	veld_err err = {0, ""};
	(void)state;
	assert_non_null(buf);
	mk_box(&r);
	mk_key(&k, "social");
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	memset(&got, 0xaa, sizeof got);
	assert_int_equal(veld_keyring__open_into(&got, buf, sealed, len, r.pk, r.sk, &err), 0);
	assert_ptr_equal(got.key, buf);
	assert_memory_equal(buf, k.key, VELD_KEYBYTES);
	assert_memory_equal(got.key_id, k.key_id, VELD_KEYIDBYTES);
	assert_string_equal(got.case_id, CASE_ID);
	assert_string_equal(got.compartment, "social");
	/* a flipped byte: refused, the buffer wiped and still mapped */
	sealed[len / 2] ^= 0x01;
	assert_int_equal(veld_keyring__open_into(&got, buf, sealed, len, r.pk, r.sk, &err), VELD_EINTEGRITY);
	assert_true(all_zero(buf, VELD_KEYBYTES));
	assert_null(got.key);
	assert_true(all_zero(&got, sizeof got));
	assert_true(mapped(buf));
	sodium_free(buf);
	veld_case_key__clear(&k);
	free(sealed);
}

/* A rotated key (epoch 1 and up) travels as "VKY2" with its epoch; a
** "VKY2" record that says epoch 0, or a "VKY1" record of the longer size,
** is refused. */
static void test_sync_keyring__epochs(void **state)
{
	veld_case_key k, got;
	box r;
	unsigned char *sealed = NULL, p[VELD_KEYRING_PAYLOADBYTES + 4], s2[VELD_KEYRING_SEALED2BYTES];
	size_t len = 0;
	veld_err err = {0, ""};
	(void)state;
	mk_box(&r);
	mk_key(&k, "social");
	k.epoch = 70000; /* more than two bytes */
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_int_equal(len, VELD_KEYRING_SEALED2BYTES);
	assert_int_equal(veld_keyring__open(&got, sealed, len, r.pk, r.sk, &err), 0);
	assert_int_equal(got.epoch, 70000);
	assert_memory_equal(got.key, k.key, VELD_KEYBYTES);
	veld_case_key__clear(&got);
	free(sealed);
	k.epoch = 0;
	assert_int_equal(veld_keyring__seal(&sealed, &len, &k, r.pk), 0);
	assert_int_equal(len, VELD_KEYRING_SEALEDBYTES);
	assert_int_equal(veld_keyring__open(&got, sealed, len, r.pk, r.sk, &err), 0);
	assert_int_equal(got.epoch, 0);
	veld_case_key__clear(&got);
	free(sealed);
	/* "VKY2" saying epoch 0, and "VKY1" at the longer size. */
	payload(p, "VKY2", "social", 6);
	memset(p + VELD_KEYRING_PAYLOADBYTES, 0, 4);
	assert_int_equal(crypto_box_seal(s2, p, sizeof p, r.pk), 0);
	assert_refused(s2, sizeof s2, &r);
	payload(p, "VKY1", "social", 6);
	p[VELD_KEYRING_PAYLOADBYTES] = 1;
	assert_int_equal(crypto_box_seal(s2, p, sizeof p, r.pk), 0);
	assert_refused(s2, sizeof s2, &r);
	veld_case_key__clear(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sync_keyring__new_keys_are_random),
	        cmocka_unit_test(test_sync_keyring__round_trip),
	        cmocka_unit_test(test_sync_keyring__epochs),
	        cmocka_unit_test(test_sync_keyring__only_the_recipient_opens),
	        cmocka_unit_test(test_sync_keyring__every_bit_flip_and_length_is_refused),
	        cmocka_unit_test(test_sync_keyring__documented_payload_opens),
	        cmocka_unit_test(test_sync_keyring__malformed_payloads_are_refused),
	        cmocka_unit_test(test_sync_keyring__invalid_keys_are_not_sealed),
	        cmocka_unit_test(test_sync_keyring__clear_wipes_and_frees),
	        cmocka_unit_test(test_sync_keyring__open_into_a_given_buffer),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

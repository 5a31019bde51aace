/*
** tests/unit/keyfile.c — the key file: round trip, wrong passphrase, damage
** at every byte, truncation, rewrap, recorded parameters, the golden layout.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define PASS "correct horse battery staple"
#define FILE_LEN 148

static const veld_keyfile_params fast = {VELD_CIPHER_XCHACHA20, 1, 8192};

typedef struct fixture {
	char *dir;
	char *path;
	unsigned char *master;
	int cipher;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	veld_err err;
	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	f->dir = veld_test_tmpdir("keyfile");
	f->path = veld_test_path(f->dir, VELD_KEYFILE_NAME);
	f->master = sodium_malloc(VELD_KEYBYTES);
	assert_non_null(f->master);
	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__create(f->master, &f->cipher, veld_os_default(), f->path,
	                                      PASS, strlen(PASS), &fast, &err),
	                 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	veld_test_rmtree(f->dir);
	sodium_free(f->master);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

static int open_with(const fixture *f, const char *pass, unsigned char *out, int *cipher,
                     veld_err *err)
{
	veld_err__clear(err);
	return veld_keyfile__open(out, cipher, veld_os_default(), f->path, pass, strlen(pass), err);
}

static void test_keyfile__round_trip(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	int cipher = -1;
	veld_err err;
	size_t len = 0;
	unsigned char *bytes;

	assert_int_equal(f->cipher, VELD_CIPHER_XCHACHA20);
	assert_int_equal(open_with(f, PASS, key, &cipher, &err), 0);
	assert_memory_equal(key, f->master, VELD_KEYBYTES);
	assert_int_equal(cipher, VELD_CIPHER_XCHACHA20);

	/* The file is small, fixed, and does not contain the key. */
	bytes = veld_test_read_file(f->path, &len);
	assert_non_null(bytes);
	assert_int_equal(len, FILE_LEN);
	assert_memory_equal(bytes, "VELDKEY\0", 8);
	assert_null(memmem(bytes, len, f->master, VELD_KEYBYTES));
	free(bytes);
	sodium_memzero(key, sizeof key);
}

static void test_keyfile__create_refuses_existing(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__create(key, NULL, veld_os_default(), f->path, "x", 1, &fast,
	                                      &err),
	                 VELD_EEXISTS);
}

static void test_keyfile__wrong_passphrase(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	size_t l1 = 0, l2 = 0;
	unsigned char *before = veld_test_read_file(f->path, &l1), *after;

	assert_int_equal(open_with(f, "Correct horse battery staple", key, NULL, &err), VELD_EAUTH);
	assert_string_equal(err.msg, "wrong passphrase");
	assert_int_equal(open_with(f, "", key, NULL, &err), VELD_EAUTH);
	after = veld_test_read_file(f->path, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(before, after, l1);
	free(before);
	free(after);
}

static void test_keyfile__missing(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	char *other = veld_test_path(f->dir, "nope.key");
	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__open(key, NULL, veld_os_default(), other, PASS, strlen(PASS),
	                                    &err),
	                 VELD_ENOTFOUND);
	free(other);
}

/* Every single-bit change anywhere in the file is an error, never success. */
static void test_keyfile__flip_every_byte(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	long off;

	for (off = 0; off < FILE_LEN; off++) {
		int rc;
		veld_test_flip_byte(f->path, off);
		rc = open_with(f, PASS, key, NULL, &err);
		if (rc != VELD_EINTEGRITY && rc != VELD_EAUTH)
			fail_msg("flipping byte %ld gave %d", off, rc);
		if (rc == VELD_EINTEGRITY)
			assert_non_null(strstr(err.msg, VELD_KEYFILE_NAME));
		veld_test_flip_byte(f->path, off); /* restore */
	}
	assert_int_equal(open_with(f, PASS, key, NULL, &err), 0);
	assert_memory_equal(key, f->master, VELD_KEYBYTES);
}

/* Someone who recomputes the checksum after changing a parameter still fails:
** the header is the AEAD's associated data. */
static void test_keyfile__changed_parameter_fails_auth(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	size_t len = 0;
	/* offset, xor mask: each change keeps the parameters valid */
	int offs[][2] = {{9, 0}, /* cipher: swapped below */
	                 {12, 0x02} /* opslimit 1 -> 3 */, {21, 0x40} /* memlimit 8K -> 24K */,
	                 {28, 0x01} /* salt */, {44, 0x01} /* nonce */,
	                 {70, 0x01} /* wrapped key */, {100, 0x01} /* tag */};
	unsigned char *orig = veld_test_read_file(f->path, &len);
	size_t i;

	assert_int_equal(len, FILE_LEN);
	for (i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		unsigned char copy[FILE_LEN];
		memcpy(copy, orig, FILE_LEN);
		if (offs[i][0] == 9)
			copy[9] = VELD_CIPHER_XCHACHA20 + VELD_CIPHER_AES256GCM - copy[9];
		else
			copy[offs[i][0]] ^= (unsigned char)offs[i][1];
		crypto_generichash(copy + 116, 32, copy, 116, NULL, 0);
		assert_int_equal(veld_test_write_file(f->path, copy, FILE_LEN), 0);
		if (offs[i][0] == 9 && !crypto_aead_aes256gcm_is_available())
			continue;
		assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EAUTH);
	}
	assert_int_equal(veld_test_write_file(f->path, orig, FILE_LEN), 0);
	free(orig);
}

static void test_keyfile__truncated_and_extended(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	size_t len = 0, n;
	unsigned char *orig = veld_test_read_file(f->path, &len);
	unsigned char longer[FILE_LEN + 1];

	for (n = 0; n < FILE_LEN; n += 7) {
		assert_int_equal(veld_test_write_file(f->path, orig, n), 0);
		assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EINTEGRITY);
		assert_non_null(strstr(err.msg, VELD_KEYFILE_NAME));
	}
	memcpy(longer, orig, FILE_LEN);
	longer[FILE_LEN] = 0;
	assert_int_equal(veld_test_write_file(f->path, longer, sizeof longer), 0);
	assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EINTEGRITY);

	/* Bad magic and unknown version name the problem. */
	memcpy(longer, orig, FILE_LEN);
	longer[0] = 'X';
	assert_int_equal(veld_test_write_file(f->path, longer, FILE_LEN), 0);
	assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "magic"));
	memcpy(longer, orig, FILE_LEN);
	longer[8] = 2;
	crypto_generichash(longer + 116, 32, longer, 116, NULL, 0);
	assert_int_equal(veld_test_write_file(f->path, longer, FILE_LEN), 0);
	assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "version"));

	assert_int_equal(veld_test_write_file(f->path, orig, len), 0);
	free(orig);
}

static void test_keyfile__rewrap_keeps_master(void **state)
{
	fixture *f = *state;
	unsigned char key[VELD_KEYBYTES];
	int cipher = 0;
	veld_err err;
	size_t l1 = 0, l2 = 0;
	unsigned char *before = veld_test_read_file(f->path, &l1), *after;
	char *tmp = veld_test_path(f->dir, "veld.key.tmp");
	veld_keyfile_params p2 = {VELD_CIPHER_XCHACHA20, 2, 16384};

	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__rewrap(veld_os_default(), f->path, f->master, f->cipher,
	                                      "new pass", 8, &p2, &err),
	                 0);
	after = veld_test_read_file(f->path, &l2);
	assert_int_equal(l2, FILE_LEN);
	assert_memory_not_equal(before + 28, after + 28, 16); /* fresh salt */
	assert_int_equal(open_with(f, PASS, key, NULL, &err), VELD_EAUTH);
	assert_int_equal(open_with(f, "new pass", key, &cipher, &err), 0);
	assert_memory_equal(key, f->master, VELD_KEYBYTES);
	assert_int_equal(cipher, f->cipher);
	/* No temp file left behind. */
	assert_null(veld_test_read_file(tmp, &l1));
	free(before);
	free(after);
	free(tmp);
}

/* The recorded parameters sit where docs/store-format.md says. */
static void test_keyfile__parameters_recorded(void **state)
{
	fixture *f = *state;
	size_t len = 0;
	unsigned char *b;
	uint64_t ops = 0, mem = 0;
	int i;
	veld_err err;
	veld_keyfile_params p2 = {VELD_CIPHER_AUTO, 3, 65536};

	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__rewrap(veld_os_default(), f->path, f->master,
	                                      VELD_CIPHER_AUTO, PASS, strlen(PASS), &p2, &err),
	                 0);
	b = veld_test_read_file(f->path, &len);
	assert_int_equal(len, FILE_LEN);
	assert_int_equal(b[8], 1);  /* version */
	assert_int_equal(b[9], crypto_aead_aes256gcm_is_available() ? VELD_CIPHER_AES256GCM
	                                                             : VELD_CIPHER_XCHACHA20);
	assert_int_equal(b[10], 1); /* Argon2id */
	for (i = 7; i >= 0; i--) {
		ops = (ops << 8) | b[12 + i];
		mem = (mem << 8) | b[20 + i];
	}
	assert_int_equal(ops, 3);
	assert_int_equal(mem, 65536);
	free(b);
}

static void test_keyfile__defaults_are_interactive(void **state)
{
	fixture *f = *state;
	char *p = veld_test_path(f->dir, "default.key");
	unsigned char key[VELD_KEYBYTES];
	veld_err err;
	size_t len = 0;
	unsigned char *b;
	uint64_t ops = 0, mem = 0;
	int i;

	veld_err__clear(&err);
	assert_int_equal(veld_keyfile__create(key, NULL, veld_os_default(), p, "p", 1, NULL, &err),
	                 0);
	b = veld_test_read_file(p, &len);
	for (i = 7; i >= 0; i--) {
		ops = (ops << 8) | b[12 + i];
		mem = (mem << 8) | b[20 + i];
	}
	assert_int_equal(ops, crypto_pwhash_OPSLIMIT_INTERACTIVE);
	assert_int_equal(mem, crypto_pwhash_MEMLIMIT_INTERACTIVE);
	free(b);
	free(p);
}

static void test_keyfile__derive(void **state)
{
	fixture *f = *state;
	unsigned char a[VELD_KEYBYTES], b[VELD_KEYBYTES], c[VELD_KEYBYTES];
	veld_key__derive(a, f->master, VELD_SUBKEY_PAGES);
	veld_key__derive(b, f->master, VELD_SUBKEY_PAGES);
	veld_key__derive(c, f->master, VELD_SUBKEY_NONCE);
	assert_memory_equal(a, b, sizeof a);
	assert_memory_not_equal(a, c, sizeof a);
	assert_memory_not_equal(a, f->master, sizeof a);
}

/* Golden vector: crypto_kdf with context "veld-sub" over a fixed key. */
static void test_keyfile__derive_golden(void **state)
{
	unsigned char master[VELD_KEYBYTES], out[VELD_KEYBYTES], want[VELD_KEYBYTES];
	int i;
	(void)state;
	for (i = 0; i < VELD_KEYBYTES; i++)
		master[i] = (unsigned char)i;
	veld_key__derive(out, master, VELD_SUBKEY_PAGES);
	/* crypto_kdf = BLAKE2b(key=master, salt=id||0, personal="veld-sub"||0). */
	{
		unsigned char salt[crypto_generichash_blake2b_SALTBYTES] = {0};
		unsigned char personal[crypto_generichash_blake2b_PERSONALBYTES] = {0};
		salt[0] = VELD_SUBKEY_PAGES;
		memcpy(personal, "veld-sub", 8);
		crypto_generichash_blake2b_salt_personal(want, sizeof want, NULL, 0, master,
		                                         sizeof master, salt, personal);
	}
	assert_memory_equal(out, want, sizeof out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_keyfile__round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__create_refuses_existing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__wrong_passphrase, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__flip_every_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__changed_parameter_fails_auth, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__truncated_and_extended, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__rewrap_keeps_master, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__parameters_recorded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__defaults_are_interactive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyfile__derive, setup, teardown),
	    cmocka_unit_test(test_keyfile__derive_golden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

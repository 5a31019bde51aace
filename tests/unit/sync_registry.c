/*
** tests/unit/sync_registry.c — org-signed registry entries (docs/sync.md,
** "Trees") and postcode regions.
**
** Entries: sign and verify; a tampered body or sig, a wrong key, extra or
** missing keys, a non-object body, a signature without the domain prefix,
** and every bit flip are refused; only the canonical text verifies (a
** pretty-printed or otherwise re-formatted copy of a valid entry is
** refused, by design); the bytes are pinned by a golden vector made with a
** fixed seed (tests/resources/sync-registry-1.json).
** Regions: good and bad region strings, and membership at the edges.
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

typedef struct signer {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
} signer;

static void mk_signer(signer *s)
{
	assert_int_equal(crypto_sign_keypair(s->pk, s->sk), 0);
}

/* Seed 00 01 .. 1f. */
static void fixed_signer(signer *s)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	int i;
	for (i = 0; i < (int)sizeof seed; i++)
		seed[i] = (unsigned char)i;
	assert_int_equal(crypto_sign_seed_keypair(s->pk, s->sk, seed), 0);
}

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
	assert_non_null(j);
	return j;
}

#define ENROLMENT                                                                                  \
	"{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"Antenne Brugge-Sint-Andri\xc3\xa8s\"," \
	"\"role\":\"assistant\",\"region\":\"8000-8099,8200-8299\",\"version\":1,"                      \
	"\"sign_pk\":\"aa\",\"box_pk\":\"bb\"}"

static char *sign_text(const char *body_text, const signer *s)
{
	json_t *body = load(body_text);
	char *out = veld_registry__sign(body, s->sk);
	assert_non_null(out);
	json_decref(body);
	return out;
}

static int verify(const char *text, size_t len, const signer *s, veld_err *err)
{
	json_t *body = (json_t *)1;
	int rc = veld_registry__verify(&body, text, len, s->pk, err);
	if (rc) {
		assert_null(body);
		assert_int_equal(err->code, rc);
	} else {
		assert_true(json_is_object(body));
		json_decref(body);
	}
	return rc;
}

static void assert_refused(const char *text, const signer *s, const char *why)
{
	veld_err err = {0, ""};
	assert_int_equal(verify(text, strlen(text), s, &err), VELD_EINTEGRITY);
	if (why && !strstr(err.msg, why))
		fail_msg("message \"%s\" does not mention \"%s\"", err.msg, why);
}

/* An entry text with the signature computed here over `prefix_len` bytes of
** "veld-registry\0" followed by `signed_body`; `fmt` has %s for the body
** and %s for the hex signature. */
static char *handmade(const char *fmt, const char *body, const char *signed_body, size_t prefix_len,
                      const signer *s)
{
	unsigned char sig[crypto_sign_BYTES], *msg;
	char hex[2 * crypto_sign_BYTES + 1], *out;
	size_t n = strlen(signed_body), outn;
	msg = malloc(prefix_len + n + 1);
	assert_non_null(msg);
	memcpy(msg, "veld-registry\0", prefix_len);
	memcpy(msg + prefix_len, signed_body, n);
	assert_int_equal(crypto_sign_detached(sig, NULL, msg, prefix_len + n, s->sk), 0);
	sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
	outn = strlen(fmt) + strlen(body) + sizeof hex + 1;
	out = malloc(outn);
	assert_non_null(out);
	snprintf(out, outn, fmt, body, hex);
	free(msg);
	return out;
}

static void test_sync_registry__sign_and_verify(void **state)
{
	signer s;
	json_t *body = load(ENROLMENT), *got = NULL;
	char *text;
	const char *sig;
	veld_err err = {0, ""};
	size_t i;
	(void)state;
	mk_signer(&s);
	text = veld_registry__sign(body, s.sk);
	assert_non_null(text);
	/* Canonical: "body" first, compact, sig last as 128 lowercase hex. */
	assert_true(!strncmp(text, "{\"body\":{\"box_pk\":\"bb\",\"id\":", 28));
	sig = strstr(text, "},\"sig\":\"");
	assert_non_null(sig);
	sig += 9;
	assert_int_equal(strlen(sig), 128 + 2);
	for (i = 0; i < 128; i++)
		assert_non_null(strchr("0123456789abcdef", sig[i]));
	assert_string_equal(sig + 128, "\"}");
	assert_int_equal(veld_registry__verify(&got, text, strlen(text), s.pk, &err), 0);
	assert_true(json_equal(got, body));
	json_decref(got);
	/* Signing is deterministic (Ed25519) and does not change the body. */
	{
		char *again = veld_registry__sign(body, s.sk);
		assert_string_equal(again, text);
		free(again);
	}
	{
		json_t *pristine = load(ENROLMENT);
		assert_true(json_equal(body, pristine));
		assert_int_equal(body->refcount, 1);
		json_decref(pristine);
	}
	free(text);
	json_decref(body);
}

static void test_sync_registry__sign_refuses_bad_input(void **state)
{
	signer s;
	json_t *arr = load("[1,2]"), *str = load("\"x\""), *obj = load("{}");
	char *text;
	(void)state;
	mk_signer(&s);
	assert_null(veld_registry__sign(arr, s.sk));
	assert_null(veld_registry__sign(str, s.sk));
	assert_null(veld_registry__sign(NULL, s.sk));
	assert_null(veld_registry__sign(obj, NULL));
	/* An empty object is a body like any other. */
	text = veld_registry__sign(obj, s.sk);
	assert_non_null(text);
	assert_int_equal(verify(text, strlen(text), &s, &(veld_err){0, ""}), 0);
	free(text);
	json_decref(arr);
	json_decref(str);
	json_decref(obj);
}

static void test_sync_registry__tampering_is_refused(void **state)
{
	signer s, other;
	char *text, *p;
	size_t i, len;
	int bit;
	const char *hexd = "0123456789abcdef";
	veld_err err = {0, ""};
	(void)state;
	mk_signer(&s);
	mk_signer(&other);
	text = sign_text(ENROLMENT, &s);
	len = strlen(text);
	/* Wrong key. */
	assert_int_equal(verify(text, len, &other, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "signature"));
	/* Tampered body, still canonical: the signature does not verify. */
	p = strstr(text, "assistant");
	assert_non_null(p);
	memcpy(p, "assistenT", 9);
	assert_refused(text, &s, "signature");
	memcpy(p, "assistant", 9);
	p = strstr(text, "\"version\":1");
	p[10] = '2';
	assert_refused(text, &s, "signature");
	p[10] = '1';
	/* Every other hex digit at every place of the sig. */
	p = strstr(text, "\"sig\":\"") + 7;
	for (i = 0; i < 128; i++) {
		char c = p[i];
		const char *h;
		for (h = hexd; *h; h++) {
			if (*h == c)
				continue;
			p[i] = *h;
			assert_refused(text, &s, NULL);
		}
		p[i] = c;
	}
	assert_int_equal(verify(text, len, &s, &err), 0);
	/* Every bit flip anywhere: never accepted. */
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			text[i] ^= (char)(1u << bit);
			assert_int_equal(verify(text, len, &s, &err), VELD_EINTEGRITY);
			text[i] ^= (char)(1u << bit);
		}
	}
	/* Every truncation. */
	for (i = 0; i < len; i++)
		assert_int_equal(verify(text, i, &s, &err), VELD_EINTEGRITY);
	assert_int_equal(verify(text, len, &s, &err), 0);
	free(text);
}

static void test_sync_registry__shape_is_strict(void **state)
{
	signer s;
	char *t;
	(void)state;
	mk_signer(&s);
	/* Validly signed over the canonical body, but with an extra key. */
	t = handmade("{\"body\":%s,\"extra\":1,\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 14, &s);
	assert_refused(t, &s, "exactly");
	free(t);
	t = handmade("{\"a\":0,\"body\":%s,\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 14, &s);
	assert_refused(t, &s, "exactly");
	free(t);
	/* Non-object bodies, signed exactly as sign would sign them. */
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "[1]", "[1]", 14, &s);
	assert_refused(t, &s, "body");
	free(t);
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "\"x\"", "\"x\"", 14, &s);
	assert_refused(t, &s, "body");
	free(t);
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "null", "null", 14, &s);
	assert_refused(t, &s, "body");
	free(t);
	/* A signature over the bare body (no "veld-registry\0" prefix), or over
	** the prefix without its NUL, is no registry signature. */
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 0, &s);
	assert_refused(t, &s, "signature");
	free(t);
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 13, &s);
	assert_refused(t, &s, "signature");
	free(t);
	/* ...while the right prefix verifies: the helper itself is sound. */
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 14, &s);
	assert_int_equal(verify(t, strlen(t), &s, &(veld_err){0, ""}), 0);
	free(t);
	/* Missing parts and malformed sigs. */
	assert_refused("{\"body\":{}}", &s, "exactly");
	assert_refused("{\"sig\":\"00\"}", &s, "exactly");
	assert_refused("{}", &s, "exactly");
	assert_refused("[{},\"00\"]", &s, "exactly");
	assert_refused("{\"body\":{},\"sig\":1}", &s, "sig");
	assert_refused("{\"body\":{},\"sig\":\"abcd\"}", &s, "sig");
	{
		char buf[256];
		snprintf(buf, sizeof buf, "{\"body\":{},\"sig\":\"%0128d\"}", 0);
		assert_refused(buf, &s, "signature"); /* well-formed, wrong */
		snprintf(buf, sizeof buf, "{\"body\":{},\"sig\":\"%0127dA\"}", 0);
		assert_refused(buf, &s, "sig");       /* uppercase hex */
		snprintf(buf, sizeof buf, "{\"body\":{},\"sig\":\"%0129d\"}", 0);
		assert_refused(buf, &s, "sig");       /* too long */
	}
	/* Not JSON, duplicate keys, empty. */
	assert_refused("{\"body\":{}", &s, "JSON");
	assert_refused("", &s, NULL);
	t = handmade("{\"body\":%s,\"body\":{},\"sig\":\"%s\"}", "{\"a\":1}", "{\"a\":1}", 14, &s);
	assert_refused(t, &s, "JSON");
	free(t);
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "{\"a\":1,\"a\":2}", "{\"a\":2}", 14, &s);
	assert_refused(t, &s, "JSON");
	free(t);
	/* No key, no output place. */
	{
		json_t *b = NULL;
		veld_err err = {0, ""};
		assert_int_equal(veld_registry__verify(&b, "{}", 2, NULL, &err), VELD_EINVALID);
		assert_int_equal(veld_registry__verify(NULL, "{}", 2, s.pk, &err), VELD_EINVALID);
		assert_int_equal(veld_registry__verify(&b, NULL, 0, s.pk, &err), VELD_EINTEGRITY);
	}
}

/* The documented decision: only the canonical text verifies.  Any other
** formatting of a validly signed entry is refused, so one entry has one
** blob. */
static void test_sync_registry__only_canonical_text_verifies(void **state)
{
	signer s;
	json_t *entry;
	char *text, *pretty, *t;
	size_t len;
	(void)state;
	mk_signer(&s);
	text = sign_text(ENROLMENT, &s);
	len = strlen(text);
	assert_int_equal(verify(text, len, &s, &(veld_err){0, ""}), 0);
	/* Pretty-printed: the same JSON value, refused. */
	entry = load(text);
	pretty = json_dumps(entry, JSON_INDENT(2) | JSON_SORT_KEYS);
	assert_non_null(pretty);
	assert_string_not_equal(pretty, text);
	assert_refused(pretty, &s, "canonical");
	free(pretty);
	/* "sig" before "body". */
	{
		const char *sig = strstr(text, "\"sig\":");
		size_t body_len = (size_t)(sig - 1 - (text + 8));
		size_t n = len + 8;
		t = malloc(n);
		assert_non_null(t);
		snprintf(t, n, "{%.*s,\"body\":%.*s}", (int)(strlen(sig) - 1), sig, (int)body_len, text + 8);
		assert_int_equal(strlen(t), len);
		assert_refused(t, &s, "canonical");
		free(t);
	}
	/* A trailing newline, a leading space, a space after a colon. */
	t = malloc(len + 3);
	assert_non_null(t);
	snprintf(t, len + 3, "%s\n", text);
	assert_refused(t, &s, "canonical");
	snprintf(t, len + 3, " %s", text);
	assert_refused(t, &s, "canonical");
	snprintf(t, len + 3, "{\"body\": %s", text + 8);
	assert_refused(t, &s, "canonical");
	free(t);
	/* An escape where the canonical form writes UTF-8 as is ("è"). */
	{
		const char *e = strstr(text, "\xc3\xa8");
		size_t at = (size_t)(e - text);
		t = malloc(len + 8);
		assert_non_null(t);
		snprintf(t, len + 8, "%.*s\\u00e8%s", (int)at, text, e + 2);
		assert_refused(t, &s, "canonical");
		free(t);
	}
	/* A key order inside the body other than sorted. */
	t = handmade("{\"body\":%s,\"sig\":\"%s\"}", "{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}", 14, &s);
	assert_refused(t, &s, "canonical");
	free(t);
	json_decref(entry);
	free(text);
}

static void test_sync_registry__size_limit(void **state)
{
	signer s;
	json_t *body = json_object();
	char *big, *text;
	size_t n = VELD_REGISTRY_MAXBYTES;
	(void)state;
	mk_signer(&s);
	big = malloc(n);
	assert_non_null(big);
	memset(big, 'x', n - 1);
	big[n - 1] = '\0';
	assert_int_equal(json_object_set_new(body, "name", json_string(big)), 0);
	text = veld_registry__sign(body, s.sk);
	assert_non_null(text);
	assert_true(strlen(text) > VELD_REGISTRY_MAXBYTES);
	assert_refused(text, &s, "longer");
	free(text);
	free(big);
	json_decref(body);
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
		/* tests/unit/sync_registry.c -> tests/resources */
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

/* tests/resources/sync-registry-1.json: the entry veld_registry__sign writes
** for the body below with the key pair of seed 00 01 .. 1f
** (crypto_sign_seed_keypair), followed by one newline.  sign_pk in the body
** is that key pair's public key; box_pk is 32 bytes of 0x42. */
static void test_sync_registry__golden_vector(void **state)
{
	signer s;
	char pk_hex[65], body_text[1024], *text, *path = resource_path("sync-registry-1.json");
	unsigned char *file;
	size_t flen = 0, n;
	const char *w = getenv("VELD_GOLDEN_WRITE");
	veld_err err = {0, ""};
	(void)state;
	fixed_signer(&s);
	sodium_bin2hex(pk_hex, sizeof pk_hex, s.pk, sizeof s.pk);
	snprintf(body_text, sizeof body_text,
	         "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"Kantoor Sint-Andri\xc3\xa8s\","
	         "\"role\":\"office\",\"region\":\"8000-8099,8200-8299\",\"sign_pk\":\"%s\","
	         "\"box_pk\":\"4242424242424242424242424242424242424242424242424242424242424242\","
	         "\"n\":7,\"r\":0.1,\"ok\":true,\"none\":null,\"tags\":[\"a\",\"b\"]}",
	         pk_hex);
	text = sign_text(body_text, &s);
	n = strlen(text);
	if (w && !strcmp(w, "1")) {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		fprintf(f, "%s\n", text);
		assert_int_equal(fclose(f), 0);
	}
	file = veld_test_read_file(path, &flen);
	if (!file)
		fail_msg("golden file %s is missing", path);
	if (flen != n + 1 || memcmp(file, text, n) || file[n] != '\n')
		fail_msg("signed entry differs from %s:\n got: %s", path, text);
	/* The stored entry verifies (without the file's newline). */
	assert_int_equal(verify((const char *)file, n, &s, &err), 0);
	free(file);
	free(text);
	free(path);
}

/* ---- regions ------------------------------------------------------------ */

static void test_sync_registry__region_parse(void **state)
{
	static const char *const bad[] = {
	        "", "   ", "999", "0999-1000", "12345", "1500-", "-1500", "1500--1999", "2000-1000",
	        "1500-1999,", ",1500", "1500,,1600", "1500;1600", "1500 -1999", "1500-1999x",
	        "abcd", "1500-19999", "+1500", "1500-1999,3000-2999",
	};
	veld_range r[4];
	int n = -1;
	size_t i;
	veld_err err = {0, ""};
	(void)state;
	assert_int_equal(veld_region__parse(r, 4, &n, "1500-1999,3000-3499", &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].lo, 1500);
	assert_int_equal(r[0].hi, 1999);
	assert_int_equal(r[1].lo, 3000);
	assert_int_equal(r[1].hi, 3499);
	assert_int_equal(veld_region__parse(r, 4, &n, "9000", &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].lo, 9000);
	assert_int_equal(r[0].hi, 9000);
	assert_int_equal(veld_region__parse(r, 4, &n, " 1000-1000 , 9999 ", &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[1].lo, 9999);
	assert_int_equal(r[1].hi, 9999);
	assert_int_equal(veld_region__parse(r, 4, &n, "1000,2000,3000,4000", &err), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err.code = 0;
		if (veld_region__parse(r, 4, &n, bad[i], &err) != VELD_EINVALID)
			fail_msg("region \"%s\" was accepted", bad[i]);
		assert_int_equal(err.code, VELD_EINVALID);
	}
	assert_int_equal(veld_region__parse(r, 4, &n, NULL, &err), VELD_EINVALID);
	/* More ranges than room: refused, never written past the end. */
	assert_int_equal(veld_region__parse(r, 4, &n, "1000,2000,3000,4000,5000", &err), VELD_EINVALID);
	assert_non_null(strstr(err.msg, "more than 4"));
	assert_int_equal(veld_region__parse(r, 0, &n, "1000", &err), VELD_EINVALID);
}

static void test_sync_registry__region_contains(void **state)
{
	veld_range r[4];
	int n = 0;
	veld_err err = {0, ""};
	(void)state;
	assert_int_equal(veld_region__parse(r, 4, &n, "1500-1999,3000-3499,9000", &err), 0);
	assert_true(veld_region__contains(r, n, 1500));
	assert_true(veld_region__contains(r, n, 1750));
	assert_true(veld_region__contains(r, n, 1999));
	assert_true(veld_region__contains(r, n, 3000));
	assert_true(veld_region__contains(r, n, 3499));
	assert_true(veld_region__contains(r, n, 9000));
	assert_false(veld_region__contains(r, n, 1499));
	assert_false(veld_region__contains(r, n, 2000));
	assert_false(veld_region__contains(r, n, 2999));
	assert_false(veld_region__contains(r, n, 3500));
	assert_false(veld_region__contains(r, n, 8999));
	assert_false(veld_region__contains(r, n, 9001));
	assert_false(veld_region__contains(r, n, 0));
	assert_false(veld_region__contains(r, n, -1500));
	assert_false(veld_region__contains(r, 0, 1500));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sync_registry__sign_and_verify),
	        cmocka_unit_test(test_sync_registry__sign_refuses_bad_input),
	        cmocka_unit_test(test_sync_registry__tampering_is_refused),
	        cmocka_unit_test(test_sync_registry__shape_is_strict),
	        cmocka_unit_test(test_sync_registry__only_canonical_text_verifies),
	        cmocka_unit_test(test_sync_registry__size_limit),
	        cmocka_unit_test(test_sync_registry__golden_vector),
	        cmocka_unit_test(test_sync_registry__region_parse),
	        cmocka_unit_test(test_sync_registry__region_contains),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

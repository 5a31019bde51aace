/*
** seeds.c — writes the seeds of the corpora that must pass a key to be
** worth mutating: blobs sealed, key entries sealed and registry entries
** signed with fuzz.h's fixed keys, and enrolment requests whose device id
** matches its key.  `fuzz_seeds DIR` writes DIR/<target>/<name>; the
** output is deterministic except for the key entries (crypto_box_seal is
** randomised), and tests/fuzz/corpus/ holds what it wrote.  Run it again
** when a format changes (tools/fuzz seeds).
*/
#include "fuzz.h"
#include "sync.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int put(const char *dir, const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;
	int rc;
	snprintf(path, sizeof path, "%s/%s", dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
	if (!(f = fopen(path, "wb")))
		return -1;
	rc = fwrite(p, 1, n, f) == n ? 0 : -1;
	return fclose(f) || rc ? -1 : 0;
}

static int envelopes(const char *dir, const veld_fuzz_keys *k)
{
	static const char *const pts[] = {
		"",
		"{\"case\":\"0123456789abcdef0123456789abcdef\",\"ctx\":{},\"fields\":{},\"form\":\"contactregistratie\","
		"\"id\":\"fedcba9876543210fedcba9876543210\"}",
	};
	char name[32];
	size_t i, n;
	unsigned char *blob;
	int rc = 0;
	for (i = 0; i < sizeof pts / sizeof pts[0] && !rc; i++) {
		blob = NULL;
		rc = veld_env__seal(&blob, &n, k->rec_key, k->rec_key_id, VELD_FUZZ_CASE, VELD_FUZZ_RECORD,
		                    (const unsigned char *)pts[i], strlen(pts[i]));
		snprintf(name, sizeof name, "sealed-%zu", i);
		if (!rc)
			rc = put(dir, "envelope", name, blob, n);
		free(blob);
	}
	return rc;
}

static int key_entries(const char *dir, const veld_fuzz_keys *k)
{
	static const char *const comps[] = {"social", "huiswijs"};
	veld_case_key ck;
	unsigned char *out;
	char name[32];
	size_t i, n;
	int rc = 0;
	memset(&ck, 0, sizeof ck);
	for (i = 0; i < 2 && !rc; i++) {
		out = NULL;
		if ((rc = veld_case_key__new(&ck)))
			break;
		memcpy(ck.case_id, VELD_FUZZ_CASE, VELD_IDSIZE);
		snprintf(ck.compartment, sizeof ck.compartment, "%s", comps[i]);
		ck.epoch = (uint32_t)i * 3;
		rc = veld_keyring__seal(&out, &n, &ck, k->box_pk);
		snprintf(name, sizeof name, "sealed-epoch%u", ck.epoch);
		if (!rc)
			rc = put(dir, "keyring", name, out, n);
		free(out);
	}
	veld_case_key__clear(&ck);
	return rc;
}

static int registry_entries(const char *dir, const veld_fuzz_keys *k)
{
	static const char *const bodies[] = {
		"{\"name\":\"Testorganisatie\",\"sign_pk\":\"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"}",
		"{\"id\":\"0123456789abcdef0123456789abcdef\",\"revoked\":true}",
		"{\"n\":7,\"none\":null,\"r\":0.1,\"tags\":[\"a\",\"b\"],\"name\":\"Kantoor Sint-Andri\\u00e8s\"}",
	};
	char name[32], *entry;
	json_t *body;
	size_t i;
	int rc = 0;
	for (i = 0; i < sizeof bodies / sizeof bodies[0] && !rc; i++) {
		body = json_loads(bodies[i], 0, NULL);
		entry = body ? veld_registry__sign(body, k->sign_sk) : NULL;
		snprintf(name, sizeof name, "signed-%zu", i);
		rc = entry ? put(dir, "registry", name, entry, strlen(entry)) : -1;
		free(entry);
		json_decref(body);
	}
	return rc;
}

/* A request as veld_store_device_json writes one, for the fixed keys; the
** region on the line before it. */
static int enrol_requests(const char *dir, const veld_fuzz_keys *k)
{
	static const char *const regions[] = {"1500-1999,3000-3499", "", "9000"};
	static const char *const roles[] = {"assistant", "volunteer", "office"};
	unsigned char idbin[16];
	char id[33], spk[65], bpk[65], text[512], name[32];
	size_t i;
	int rc = 0, n;
	crypto_generichash(idbin, sizeof idbin, k->sign_pk, 32, NULL, 0);
	sodium_bin2hex(id, sizeof id, idbin, sizeof idbin);
	sodium_bin2hex(spk, sizeof spk, k->sign_pk, 32);
	sodium_bin2hex(bpk, sizeof bpk, k->box_pk, 32);
	for (i = 0; i < 3 && !rc; i++) {
		n = snprintf(text, sizeof text,
		             "%s\n{\"box_pk\":\"%s\",\"id\":\"%s\",\"name\":\"tablet %zu\",\"role\":\"%s\",\"sign_pk\":\"%s\"}",
		             regions[i], bpk, id, i, roles[i], spk);
		snprintf(name, sizeof name, "request-%zu", i);
		rc = put(dir, "enrol", name, text, (size_t)n);
	}
	return rc;
}

int main(int argc, char **argv)
{
	const veld_fuzz_keys *k;
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds DIR\n");
		return 2;
	}
	k = veld_fuzz_keys_get();
	mkdir(argv[1], 0755);
	if (envelopes(argv[1], k) || key_entries(argv[1], k) || registry_entries(argv[1], k) ||
	    enrol_requests(argv[1], k)) {
		fprintf(stderr, "fuzz_seeds: cannot write the seeds into %s\n", argv[1]);
		return 1;
	}
	return 0;
}

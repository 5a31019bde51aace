/*
** roundtrip.c — an app built against an installed libveld (tests/install/run.sh
** links it once shared and once static): create a store, a case and a
** record, close, open again and read both back.  Only veld.h, only what an
** app sees; exits non-zero with a message on the first thing that fails.
**
** Usage: roundtrip DIR   (DIR must not exist yet)
*/
#include <veld.h>

#include <stdio.h>
#include <string.h>

#define PASS "correct horse"

static int fail(const char *what, veld_store *s, int rc)
{
	fprintf(stderr, "roundtrip: %s: %d %s\n", what, rc, s ? veld_errmsg(s) : "");
	return 1;
}

/* Fast Argon2id limits (libsodium's minimum): this is a test. */
static void fast_options(veld_store_options *o)
{
	veld_store_options_init(o);
	o->pwhash_opslimit = 1;
	o->pwhash_memlimit = 8192;
	o->device_name = "install-test";
	o->device_role = "assistant";
}

/* Write a case and a record; their ids into case_id and record_id. */
static int write_store(const char *dir, char *case_id, char *record_id)
{
	veld_store_options o;
	veld_store *s = NULL;
	int rc;
	fast_options(&o);
	if ((rc = veld_store_create(&s, dir, PASS, strlen(PASS), &o)) != VELD_OK)
		rc = fail("create", s, rc);
	else if ((rc = veld_case_new(case_id, s, "{\"name\":\"An Peeters\",\"postcode\":\"3000\"}")) != VELD_OK)
		rc = fail("case new", s, rc);
	else if ((rc = veld_record_put(record_id, s, case_id, "contactregistratie", NULL,
	                               "{\"datum\":\"2017-03-02\",\"plaats\":\"huisbezoek\","
	                               "\"problematiek\":[\"financieel\"]}")) != VELD_OK)
		rc = fail("record put", s, rc);
	veld_store_close(s);
	return rc;
}

/* Open the store again and find the record's field and the case's name. */
static int read_store(const char *dir, const char *case_id, const char *record_id)
{
	veld_store *s = NULL;
	char *rec = NULL, *cas = NULL;
	int rc;
	if ((rc = veld_store_open(&s, dir, PASS, strlen(PASS), NULL)) != VELD_OK)
		rc = fail("open", s, rc);
	else if ((rc = veld_record_show_json(&rec, s, record_id)) != VELD_OK)
		rc = fail("record show", s, rc);
	else if (!strstr(rec, "\"plaats\":\"huisbezoek\"") || !strstr(rec, case_id))
		rc = fail(rec, s, VELD_OK);
	else if ((rc = veld_case_show_json(&cas, s, case_id)) != VELD_OK)
		rc = fail("case show", s, rc);
	else if (!strstr(cas, "\"name\":\"An Peeters\"") || !strstr(cas, record_id))
		rc = fail(cas, s, VELD_OK);
	veld_free(rec);
	veld_free(cas);
	veld_store_close(s);
	return rc;
}

int main(int argc, char **argv)
{
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE];
	if (argc != 2) {
		fprintf(stderr, "usage: roundtrip DIR\n");
		return 2;
	}
	if (veld_version_number() != VELD_VERSION_NUMBER || strcmp(veld_version(), VELD_VERSION_STRING)) {
		fprintf(stderr, "roundtrip: library %s, header %s\n", veld_version(), VELD_VERSION_STRING);
		return 1;
	}
	if (write_store(argv[1], case_id, record_id) || read_store(argv[1], case_id, record_id))
		return 1;
	printf("roundtrip: ok (library %s)\n", veld_version());
	return 0;
}

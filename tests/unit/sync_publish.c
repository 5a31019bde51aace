/*
** sync_publish.c — forms and reports the office publishes (docs/forms.md,
** "Versions"; docs/sync.md, "Published forms and reports").
**
** Over a real hub on a path: the office publishes version 3 of
** contactregistratie with a new required field.  A device that synced
** after the publication must give it; a device offline since before keeps
** writing version 2, and the office, which holds every version, accepts
** those records against version 2; records keep the version they were
** written with, and a report counts both.  A form entry a device writes,
** or one on main whose signature does not verify, is refused alone: the
** other changes of that sync merge.  A record made through the library
** around its form's check (over the text bound, or out of the form's
** rules) is refused by the office at merge with code "form", alone.
*/
#include "testutil.h"

#include "sync.h"
#include "../../scripts/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define FORM    "contactregistratie"
#define CONTACT "{\"datum\":\"2017-03-01\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}"
#define CONTACT_V3 \
	"{\"datum\":\"2017-03-02\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"],\"kanaal\":\"fysiek\"}"

typedef veld_test_net net;

/* ---- helpers ----------------------------------------------------------------- */

/* The office syncs the way `veld sync` does: with the form check. */
static json_t *office_sync(veld_store *office, int want)
{
	veld_sync_options o;
	char *sum = NULL;
	json_t *j;
	int rc;
	veld_sync_options_init(&o);
	o.validate = veld_form_validate_merged;
	rc = veld_sync(&sum, office, &o);
	if (rc != want)
		fail_msg("office sync returned %d, wanted %d: %s (%s)", rc, want, veld_errmsg(office), sum ? sum : "");
	j = sum ? json_loads(sum, 0, NULL) : json_object();
	veld_free(sum);
	return j;
}

static void office_ok(veld_store *office)
{
	json_decref(office_sync(office, VELD_OK));
}

static void sync_ok(veld_store *s)
{
	json_decref(veld_test_sync(s, VELD_OK));
}

/* The "rejected" entry of `sum` with code `code` whose `key` is `value`. */
static json_t *rejected(json_t *sum, const char *key, const char *value, const char *code)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(sum, "rejected"), i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, key)) ?: "", value) &&
		    !strcmp(json_string_value(json_object_get(e, "code")) ?: "", code))
			return e;
	}
	return NULL;
}

static void expect_rejected(json_t *sum, const char *key, const char *value, const char *code)
{
	if (!rejected(sum, key, value, code))
		fail_msg("no %s refusal with %s %s: %s", code, key, value, json_dumps(sum, JSON_COMPACT));
}

/* The form version record `rid` shows on `s`, or -1 when `s` cannot show it. */
static int version_of(veld_store *s, const char *rid)
{
	char *out = NULL;
	json_t *j;
	int v = -1;
	if (veld_record_show_json(&out, s, rid) == VELD_OK) {
		j = json_loads(out, 0, NULL);
		v = (int)json_integer_value(json_object_get(j, "form_version"));
		json_decref(j);
	}
	veld_free(out);
	return v;
}

/* The versions `s` lists for `name`, as "2 shipped,3 published". */
static char *versions_of(veld_store *s, const char *name)
{
	char *out = NULL, buf[256] = "";
	json_t *arr, *f, *v;
	size_t i, k, used = 0;
	assert_int_equal(veld_form_list_json(&out, s), VELD_OK);
	arr = json_loads(out, 0, NULL);
	json_array_foreach(arr, i, f)
	{
		if (strcmp(json_string_value(json_object_get(f, "name")), name))
			continue;
		json_array_foreach(json_object_get(f, "versions"), k, v)
		used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%lld %s", k ? "," : "",
		                         (long long)json_integer_value(json_object_get(v, "version")),
		                         json_string_value(json_object_get(v, "origin")));
	}
	json_decref(arr);
	veld_free(out);
	return strdup(buf);
}

static void expect_versions(veld_store *s, const char *name, const char *want)
{
	char *got = versions_of(s, name);
	assert_string_equal(got, want);
	free(got);
}

/* contactregistratie.lua as shipped, made version 3 with a new required
** field `kanaal` (and with `rename`, `verslag` renamed to `notitie`),
** written to `dir`/contactregistratie.lua; the path. */
static char *form_v3_renaming(const char *dir, int rename)
{
	const char *name, *src;
	size_t i, len;
	char *path = veld_test_path(dir, FORM ".lua"), *text, *at;
	static const char kanaal[] = "\t\tfield.choice { \"kanaal\", label = \"Kanaal\", required = true,\n"
	                             "\t\t\toptions = { { \"fysiek\", \"Fysiek\" }, { \"op_afstand\", \"Op afstand\" } } },\n";
	for (i = 0; veld_form__shipped(i, &name, &src, &len) && strcmp(name, FORM); i++)
		;
	assert_string_equal(name, FORM);
	text = calloc(1, len + sizeof kanaal + 128);
	assert_non_null(at = strstr(src, "version = 2,"));
	memcpy(text, src, (size_t)(at - src));
	strcat(text, rename ? "version = 3, renamed = { [3] = { verslag = \"notitie\" } }," : "version = 3,");
	at += strlen("version = 2,");
	assert_non_null(strstr(at, "fields = {\n"));
	strncat(text, at, (size_t)(strstr(at, "fields = {\n") - at) + strlen("fields = {\n"));
	strcat(text, kanaal);
	strcat(text, strstr(at, "fields = {\n") + strlen("fields = {\n"));
	if (rename) {
		assert_non_null(at = strstr(text, "{ \"verslag\", label = \"Verslag\""));
		memcpy(at, "{ \"notitie\", label = \"Notitie\"", strlen("{ \"verslag\", label = \"Verslag\""));
	}
	assert_int_equal(veld_test_write_file(path, text, strlen(text)), 0);
	free(text);
	return path;
}

static char *form_v3(const char *dir)
{
	return form_v3_renaming(dir, 0);
}

/* The organisation, a case of region 3000 on A that every store holds,
** and version 3 published by the office; B has not synced since. */
static void net_published(net *n, char *cid, const char *tag)
{
	char *path, *out = NULL;
	veld_test_net_up(n, tag, "assistant", "3000-3499", "assistant", "3000-3499");
	sync_ok(n->a);
	sync_ok(n->b);
	assert_int_equal(veld_case_new(cid, n->a, "{\"name\":\"Els Wouters\",\"postcode\":\"3000\"}"), VELD_OK);
	sync_ok(n->a);
	office_ok(n->office);
	sync_ok(n->a);
	sync_ok(n->b); /* B holds the case, then goes offline */
	path = form_v3(n->root);
	assert_int_equal(veld_form_publish(&out, n->office, path), VELD_OK);
	assert_string_equal(out, "{\"kind\":\"form\",\"name\":\"contactregistratie\",\"version\":3}");
	veld_free(out);
	free(path);
	office_ok(n->office);
	sync_ok(n->a);
}

/* ---- the cases ----------------------------------------------------------------- */

/* Version 3 on a device that synced; version 2 on one that did not; the
** office accepts both, a report counts both. */
static void test_publish__versions_while_offline(void **state)
{
	net n;
	char cid[VELD_IDSIZE], r3[VELD_IDSIZE], r2[VELD_IDSIZE], *path, *out = NULL;
	(void)state;
	net_published(&n, cid, "publish-versions");
	expect_versions(n.office, FORM, "2 shipped,3 published");
	expect_versions(n.a, FORM, "2 shipped,3 published");
	expect_versions(n.b, FORM, "2 shipped");

	/* A must give the new required field. */
	assert_int_equal(veld_record_put(NULL, n.a, cid, FORM, NULL, CONTACT), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(n.a), "kanaal"));
	assert_int_equal(veld_record_put(r3, n.a, cid, FORM, NULL, CONTACT_V3), VELD_OK);
	assert_int_equal(version_of(n.a, r3), 3);
	/* B, offline since before, writes version 2. */
	assert_int_equal(veld_record_put(r2, n.b, cid, FORM, NULL, CONTACT), VELD_OK);
	assert_int_equal(version_of(n.b, r2), 2);
	sync_ok(n.a);
	sync_ok(n.b);
	{
		json_t *sum = office_sync(n.office, VELD_OK);
		assert_int_equal(json_array_size(json_object_get(sum, "rejected")), 0);
		json_decref(sum);
	}
	/* The office holds both, each with its version. */
	assert_int_equal(version_of(n.office, r3), 3);
	assert_int_equal(version_of(n.office, r2), 2);
	sync_ok(n.b);
	sync_ok(n.a);
	assert_int_equal(version_of(n.a, r2), 2);
	assert_int_equal(version_of(n.b, r3), 3);
	/* B took version 3 now: its next put needs the field too. */
	expect_versions(n.b, FORM, "2 shipped,3 published");
	assert_int_equal(veld_record_put(NULL, n.b, cid, FORM, NULL, CONTACT), VELD_EINVALID);
	/* The yearly figures count the contacts of both versions. */
	assert_int_equal(veld_report(&out, n.office, "jaarcijfers", "{\"year\": 2017}", "text"), VELD_OK);
	if (!strstr(out, "waren er 2 contacten"))
		fail_msg("the report does not count both versions: %.400s", out);
	veld_free(out);
	/* Publishing again needs a higher version; devices cannot publish. */
	path = form_v3(n.root);
	assert_int_equal(veld_form_publish(NULL, n.office, path), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(n.office), "not above"));
	assert_int_equal(veld_form_publish(NULL, n.a, path), VELD_EDENIED);
	free(path);
	veld_test_net_down(&n);
}

/* The secret key of the organisation (office) or of a device. */
static void secret(unsigned char *sk, veld_store *s, const char *which)
{
	assert_int_equal(veld_store__meta_get(s, which, sk, crypto_sign_SECRETKEYBYTES), crypto_sign_SECRETKEYBYTES);
}

static int sign_with(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload)
{
	return crypto_sign_detached(sig64, NULL, msg, len, payload) == 0 ? 0 : -1;
}

/* On the hub: a commit on `ref` signed as `signer` with `sk`, its tree the
** ref's with blob `text` added at each of `paths` (NULL-terminated, one
** text each). */
static void forge(net *n, const char *ref, const char *signer, const unsigned char *sk, const char *const *paths,
                  char *const *texts)
{
	veld_repo *r = NULL;
	veld_tree_change ch[4];
	git_oid head, base, tree, commit, blobs[4];
	veld_err e;
	size_t i;
	memset(&e, 0, sizeof e);
	if (veld_repo__open(&r, veld_os_default(), n->hub, &e))
		fail_msg("open hub: %s", e.msg);
	for (i = 0; paths[i]; i++) {
		assert_int_equal(veld_repo__blob_write(&blobs[i], r, texts[i], strlen(texts[i]), &e), 0);
		ch[i].path = paths[i];
		ch[i].id = &blobs[i];
	}
	if (veld_repo__ref_get(&head, r, ref, &e) || veld_repo__commit_tree(&base, r, &head, &e) ||
	    veld_repo__tree_update(&tree, r, &base, ch, i, &e) ||
	    veld_repo__commit(&commit, r, &tree, &head, 1, signer, 1500000000000, "veld sync", sign_with, (void *)sk, &e) ||
	    veld_repo__ref_set(r, ref, &commit, &e))
		fail_msg("forge %s: %s", ref, e.msg);
	veld_repo__free(r);
}

/* A script entry as the office signs it, with key `sk`. */
static char *entry(const char *kind, const char *name, int version, const char *source, const unsigned char *sk)
{
	json_t *body = json_pack("{s:s, s:s, s:i, s:s}", "kind", kind, "name", name, "version", version, "source", source);
	char *text = veld_registry__sign(body, sk);
	json_decref(body);
	assert_non_null(text);
	return text;
}

/* A form entry written by a device, and one on main whose signature does
** not verify: each refused alone, the rest of the sync merges. */
static void test_publish__forged_form_entries_are_refused_alone(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], ref[128], *texts[3], *out = NULL;
	const char *paths[3];
	unsigned char sk[crypto_sign_SECRETKEYBYTES], org[crypto_sign_SECRETKEYBYTES];
	json_t *sum;
	(void)state;
	net_published(&n, cid, "publish-forged");
	secret(sk, n.a, "sign_sk");
	secret(org, n.office, "org_sign_sk");

	/* A's valid record, pushed; then a commit of A adding a form entry
	** (signed by the organisation's key even: only main carries forms). */
	assert_int_equal(veld_record_put(rid, n.a, cid, FORM, NULL, CONTACT_V3), VELD_OK);
	sync_ok(n.a);
	snprintf(ref, sizeof ref, VELD_REF_DEV_PREFIX "%s", n.a_id);
	paths[0] = "forms/contactregistratie/9";
	paths[1] = NULL;
	texts[0] = entry("form", FORM, 9, "form { }", org);
	forge(&n, ref, n.a_id, sk, paths, texts);
	free(texts[0]);
	sum = office_sync(n.office, VELD_OK);
	expect_rejected(sum, "device", n.a_id, "path");
	json_decref(sum);
	assert_int_equal(version_of(n.office, rid), 3);
	expect_versions(n.office, FORM, "2 shipped,3 published");

	/* On main: an entry signed with A's key, beside a valid report entry. */
	paths[0] = "forms/contactregistratie/4";
	paths[1] = "reports/jaarcijfers/2";
	paths[2] = NULL;
	texts[0] = entry("form", FORM, 4, "form { }", sk);
	texts[1] = entry("report", "jaarcijfers", 2, "return { title = \"Gepubliceerd\", sections = { { paragraphs = { \"Nieuw.\" } } } }", org);
	forge(&n, VELD_REF_MAIN, VELD_ORG_SIGNER, org, paths, texts);
	free(texts[0]);
	free(texts[1]);
	sum = veld_test_sync(n.b, VELD_OK);
	expect_rejected(sum, "device", VELD_ORG_SIGNER, "script");
	json_decref(sum);
	sync_ok(n.b); /* once: the next sync is quiet and does not fail */
	expect_versions(n.b, FORM, "2 shipped,3 published");
	assert_int_equal(version_of(n.b, rid), 3); /* A's record came through main */
	assert_int_equal(veld_report(&out, n.b, "jaarcijfers", NULL, "json"), VELD_OK);
	assert_non_null(strstr(out, "Gepubliceerd"));
	veld_free(out);
	veld_test_net_down(&n);
}

/* A record made through the library around its form (over the text bound,
** out of the form's rules) is refused by the office at merge, alone. */
static void test_publish__office_checks_records_by_their_form(void **state)
{
	net n;
	char cid[VELD_IDSIZE], big[VELD_IDSIZE], wrong[VELD_IDSIZE], good[VELD_IDSIZE], *text;
	json_t *flat, *sum;
	(void)state;
	net_published(&n, cid, "publish-check");
	text = malloc(VELD_TEXT_MAX + 2);
	memset(text, 'x', VELD_TEXT_MAX + 1);
	text[VELD_TEXT_MAX + 1] = '\0';
	flat = json_loads(CONTACT_V3, 0, NULL);
	json_object_set_new(flat, "verslag", json_string(text));
	assert_int_equal(veld_store__record_put(big, n.a, NULL, cid, FORM, flat, "social", 3, NULL), VELD_OK);
	json_decref(flat);
	free(text);
	flat = json_loads(CONTACT_V3, 0, NULL);
	json_object_set_new(flat, "plaats", json_string("nergens"));
	assert_int_equal(veld_store__record_put(wrong, n.a, NULL, cid, FORM, flat, "social", 3, NULL), VELD_OK);
	json_decref(flat);
	assert_int_equal(veld_record_put(good, n.a, cid, FORM, NULL, CONTACT_V3), VELD_OK);
	sync_ok(n.a);
	sum = office_sync(n.office, VELD_OK);
	expect_rejected(sum, "record", big, "form");
	expect_rejected(sum, "record", wrong, "form");
	if (rejected(sum, "record", good, "form"))
		fail_msg("a valid record was refused: %s", json_dumps(sum, JSON_COMPACT));
	json_decref(sum);
	assert_int_equal(version_of(n.office, good), 3);
	assert_int_equal(version_of(n.office, big), -1);
	assert_int_equal(version_of(n.office, wrong), -1);
	/* The writer learns of it; the others never get the records. */
	sum = veld_test_sync(n.a, VELD_OK);
	expect_rejected(sum, "record", wrong, "form");
	json_decref(sum);
	sync_ok(n.b);
	assert_int_equal(version_of(n.b, good), 3);
	assert_int_equal(version_of(n.b, wrong), -1);
	veld_test_net_down(&n);
}

/* A record of version 2 edited with version 3, which renamed `verslag`:
** the value moves to `notitie`, and the record is of version 3. */
static void test_publish__renamed_field_reads_in_the_new_version(void **state)
{
	char *dir = veld_test_tmpdir("publish-renamed"), *hub = veld_test_path(dir, "hub.git"), *path, *out = NULL;
	char *odir = veld_test_path(dir, "office"), cid[VELD_IDSIZE], rid[VELD_IDSIZE];
	veld_store *office = veld_test_office(odir, hub);
	json_t *j, *fields;
	static const char still_declared[] =
	        "form { name = \"contactregistratie\", version = 5, compartment = \"social\", label = \"C\",\n"
	        "  renamed = { [5] = { datum = \"datum\" } }, fields = { field.date { \"datum\", label = \"Datum\" } } }\n";
	(void)state;
	assert_int_equal(veld_case_new(cid, office, "{\"name\":\"Els Wouters\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, office, cid, FORM, NULL,
	                                 "{\"datum\":\"2017-03-01\",\"plaats\":\"zitdag\",\"problematiek\":[\"financieel\"],"
	                                 "\"verslag\":\"Het gesprek verliep goed.\"}"),
	                 VELD_OK);
	path = form_v3_renaming(dir, 1);
	if (veld_form_publish(NULL, office, path) != VELD_OK)
		fail_msg("publish: %s", veld_errmsg(office));
	assert_int_equal(veld_form_schema_json(&out, office, FORM), VELD_OK);
	assert_non_null(strstr(out, "\"renamed\""));
	veld_free(out);
	if (veld_record_put(NULL, office, cid, FORM, rid, "{\"kanaal\":\"fysiek\"}") != VELD_OK)
		fail_msg("put: %s", veld_errmsg(office));
	assert_int_equal(veld_record_show_json(&out, office, rid), VELD_OK);
	j = json_loads(out, 0, NULL);
	fields = json_object_get(j, "fields");
	assert_int_equal(json_integer_value(json_object_get(j, "form_version")), 3);
	assert_string_equal(json_string_value(json_object_get(fields, "notitie")), "Het gesprek verliep goed.");
	assert_null(json_object_get(fields, "verslag"));
	json_decref(j);
	veld_free(out);
	/* A renamed field that is still declared is the author's mistake. */
	assert_int_equal(veld_test_write_file(path, still_declared, sizeof still_declared - 1), 0);
	assert_int_equal(veld_form_publish(NULL, office, path), VELD_EINVALID);
	assert_non_null(strstr(veld_errmsg(office), "still declared"));
	veld_store_close(office);
	veld_test_rmtree(dir);
	free(path);
	free(odir);
	free(hub);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish__versions_while_offline),
		cmocka_unit_test(test_publish__forged_form_entries_are_refused_alone),
		cmocka_unit_test(test_publish__office_checks_records_by_their_form),
		cmocka_unit_test(test_publish__renamed_field_reads_in_the_new_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

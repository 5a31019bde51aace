/*
** sync_basic.c — sync through a hub on a path: enrolment, a case made on a
** tablet reaching the office and a second tablet of the region, a conflict
** kept everywhere and resolved everywhere, delete against edit.  And
** cancellation: a progress callback that returns non-zero stops veld_sync
** at any of its stages ("commit", "fetch", "verify", "merge", "push") and
** veld_join at any of its ("fetch", "verify", "merge") with VELD_ECANCELED,
** the store as it was (export byte-identical, nothing merged, the hub's
** refs untouched); the next call runs through and the stores converge.
*/
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define VALID_CONTACT "{\"datum\":\"2018-02-03\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"administratief\"]}"

typedef veld_test_net net;

static void net_up(net *n)
{
	veld_test_net_up(n, "sync-basic", "assistant", "3000-3499", "assistant", "3000-3499");
	json_decref(veld_test_sync(n->a, VELD_OK));
	json_decref(veld_test_sync(n->b, VELD_OK));
}

static void net_down(net *n)
{
	veld_test_net_down(n);
}

static void sync_all(net *n)
{
	json_decref(veld_test_sync(n->a, VELD_OK));
	json_decref(veld_test_sync(n->b, VELD_OK));
	json_decref(veld_test_sync(n->office, VELD_OK));
	json_decref(veld_test_sync(n->a, VELD_OK));
	json_decref(veld_test_sync(n->b, VELD_OK));
}

static void assert_converged(net *n)
{
	char *eo = veld_test_export(n->office), *ea = veld_test_export(n->a), *eb = veld_test_export(n->b);
	assert_string_equal(eo, ea);
	assert_string_equal(eo, eb);
	veld_free(eo);
	veld_free(ea);
	veld_free(eb);
}

static const char *shown(veld_store *s, const char *rid, const char *field, char *buf, size_t cap)
{
	char *out = NULL;
	json_t *j;
	assert_int_equal(veld_record_show_json(&out, s, rid), VELD_OK);
	j = json_loads(out, 0, NULL);
	snprintf(buf, cap, "%s", json_string_value(json_object_get(json_object_get(j, "fields"), field)) ?: "");
	json_decref(j);
	veld_free(out);
	return buf;
}

static size_t n_conflicts(veld_store *s)
{
	char *out = NULL;
	json_t *j;
	size_t n;
	assert_int_equal(veld_conflicts_json(&out, s), VELD_OK);
	j = json_loads(out, 0, NULL);
	n = json_array_size(j);
	json_decref(j);
	veld_free(out);
	return n;
}

static void test_sync__case_reaches_office_and_region(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], buf[64];
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL,
	                                 "{\"datum\":\"2017-01-02\",\"plaats\":\"huisbezoek\",\"problematiek\":[\"financieel\"]}"),
	                 VELD_OK);
	sync_all(&n);
	assert_string_equal(shown(n.office, rid, "plaats", buf, sizeof buf), "huisbezoek");
	assert_string_equal(shown(n.b, rid, "plaats", buf, sizeof buf), "huisbezoek");
	assert_converged(&n);
	net_down(&n);
}

static void test_sync__conflict_kept_and_resolved_everywhere(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], a[64], b[64];
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"An\",\"postcode\":\"3001\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);
	sync_all(&n);
	/* Offline on both tablets: the same field, and different fields. */
	assert_int_equal(veld_record_put(NULL, n.a, cid, "contactregistratie", rid, "{\"plaats\":\"zitdag\",\"duur_min\":20}"),
	                 VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "contactregistratie", rid,
	                                 "{\"plaats\":\"werkplaats\",\"initiatief\":\"cliënt\"}"),
	                 VELD_OK);
	sync_all(&n);
	assert_converged(&n);
	/* Both values kept, one shown, the same everywhere; different fields both survive. */
	assert_int_equal(n_conflicts(n.office), 1);
	assert_int_equal(n_conflicts(n.a), 1);
	assert_int_equal(n_conflicts(n.b), 1);
	assert_string_equal(shown(n.a, rid, "plaats", a, sizeof a), shown(n.b, rid, "plaats", b, sizeof b));
	{
		char *out = NULL;
		assert_int_equal(veld_record_show_json(&out, n.office, rid), VELD_OK);
		assert_non_null(strstr(out, "\"duur_min\":20"));
		assert_non_null(strstr(out, "\"initiatief\":\"cliënt\""));
		assert_non_null(strstr(out, "zitdag"));
		assert_non_null(strstr(out, "werkplaats"));
		veld_free(out);
	}
	/* Resolved on one tablet: cleared on every device after sync. */
	assert_int_equal(veld_resolve(n.b, rid, "plaats", "\"zitdag\""), VELD_OK);
	assert_int_equal(n_conflicts(n.b), 0);
	sync_all(&n);
	assert_int_equal(n_conflicts(n.office), 0);
	assert_int_equal(n_conflicts(n.a), 0);
	assert_string_equal(shown(n.a, rid, "plaats", a, sizeof a), "zitdag");
	assert_converged(&n);
	net_down(&n);
}

static void test_sync__delete_against_edit_is_a_conflict(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE];
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Piet\",\"postcode\":\"3010\"}"), VELD_OK);
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);
	sync_all(&n);
	assert_int_equal(veld_record_delete(n.a, rid), VELD_OK);
	assert_int_equal(veld_record_put(NULL, n.b, cid, "contactregistratie", rid, "{\"duur_min\":15}"), VELD_OK);
	sync_all(&n);
	assert_converged(&n);
	assert_true(n_conflicts(n.office) >= 1);
	{
		char *out = NULL;
		assert_int_equal(veld_conflicts_json(&out, n.a), VELD_OK);
		assert_non_null(strstr(out, "\"field\":\"_deleted\""));
		veld_free(out);
	}
	/* Keeping the record settles it everywhere. */
	assert_int_equal(veld_resolve(n.office, rid, "_deleted", "false"), VELD_OK);
	sync_all(&n);
	json_decref(veld_test_sync(n.office, VELD_OK));
	assert_int_equal(n_conflicts(n.a), 0);
	assert_int_equal(n_conflicts(n.b), 0);
	assert_converged(&n);
	net_down(&n);
}

/* A device that merges many moved refs at once makes a merge commit with
** many parents; every other store still accepts it. */
static void test_sync__merge_of_many_devices_is_accepted(void **state)
{
	enum { N = 10 };
	char *root = veld_test_tmpdir("sync-many"), *hub = veld_test_path(root, "hub.git"), *d;
	veld_store *office, *dev[N];
	char cid[VELD_IDSIZE], name[32];
	json_t *sum;
	int i;
	(void)state;
	d = veld_test_path(root, "office");
	office = veld_test_office(d, hub);
	free(d);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof name, "dev%d", i);
		d = veld_test_path(root, name);
		dev[i] = veld_test_device(NULL, office, d, "assistant", "3000-3499", hub);
		free(d);
	}
	for (i = 0; i < N; i++)
		json_decref(veld_test_sync(dev[i], VELD_OK));
	/* Everyone makes a case and pushes it; then device 0 merges them all. */
	for (i = 1; i < N; i++) {
		snprintf(name, sizeof name, "{\"name\":\"C%d\",\"postcode\":\"3000\"}", i);
		assert_int_equal(veld_case_new(cid, dev[i], name), VELD_OK);
		json_decref(veld_test_sync(dev[i], VELD_OK));
	}
	json_decref(veld_test_sync(office, VELD_OK));
	json_decref(veld_test_sync(dev[0], VELD_OK));
	/* The office and a peer accept device 0's wide merge. */
	sum = veld_test_sync(office, VELD_OK);
	assert_int_equal(json_array_size(json_object_get(sum, "rejected")), 0);
	json_decref(sum);
	sum = veld_test_sync(dev[1], VELD_OK);
	assert_int_equal(json_array_size(json_object_get(sum, "rejected")), 0);
	json_decref(sum);
	{
		char *a = NULL, *b = NULL;
		assert_int_equal(veld_export_json(&a, office), VELD_OK);
		assert_int_equal(veld_export_json(&b, dev[0]), VELD_OK);
		assert_string_equal(a, b);
		veld_free(a);
		veld_free(b);
	}
	for (i = 0; i < N; i++)
		veld_store_close(dev[i]);
	veld_store_close(office);
	veld_test_rmtree(root);
	free(root);
	free(hub);
}

/* ---- cancellation: a progress callback that returns non-zero ------------------ */

/* Every ref of the hub and its commit, as one line (a digest). */
static char *hub_refs(const net *n)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "git --git-dir='%s' for-each-ref | sha256sum", n->hub);
	return veld_test_sh_line(cmd);
}

typedef struct canceler {
	const char *stage; /* cancel at the first report of this stage */
	int asked;         /* reports of it seen */
	int after;         /* reports of anything after the cancel */
} canceler;

static int cancel_at(const char *stage, size_t done, size_t total, void *payload)
{
	canceler *k = payload;
	(void)done;
	(void)total;
	if (k->asked) {
		k->after++;
		return 1;
	}
	if (strcmp(stage, k->stage))
		return 0;
	k->asked++;
	return 1;
}

static void options_for(veld_sync_options *o, canceler *k, const char *stage)
{
	memset(k, 0, sizeof *k);
	k->stage = stage;
	veld_sync_options_init(o);
	o->progress = cancel_at;
	o->payload = k;
}

static void test_sync__cancel_at_each_stage_leaves_the_store_as_it_was(void **state)
{
	static const char *const stages[] = {"commit", "fetch", "verify", "merge", "push"};
	net n;
	size_t i;
	char cid[VELD_IDSIZE];
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.b, "{\"name\":\"Mia\",\"postcode\":\"3010\"}"), VELD_OK);
	sync_all(&n);
	for (i = 0; i < sizeof stages / sizeof stages[0]; i++) {
		veld_sync_options o;
		canceler k;
		char rid[VELD_IDSIZE], *before, *after, *refs_before, *refs_after, *sum = NULL;
		/* Something for A to fetch, verify and merge (from B), and to
		** commit and push (its own). */
		assert_int_equal(veld_record_put(rid, n.b, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);
		json_decref(veld_test_sync(n.b, VELD_OK));
		assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);
		before = veld_test_export(n.a);
		refs_before = hub_refs(&n);
		options_for(&o, &k, stages[i]);
		assert_int_equal(veld_sync(&sum, n.a, &o), VELD_ECANCELED);
		assert_int_equal(k.asked, 1);
		assert_int_equal(k.after, 0);
		assert_non_null(strstr(veld_errmsg(n.a), stages[i]));
		after = veld_test_export(n.a);
		refs_after = hub_refs(&n);
		assert_string_equal(before, after);
		assert_string_equal(refs_before, refs_after);
		veld_free(sum);
		veld_free(before);
		veld_free(after);
		free(refs_before);
		free(refs_after);
		/* The next sync runs through, and everyone converges. */
		json_decref(veld_test_sync(n.a, VELD_OK));
		sync_all(&n);
		assert_converged(&n);
	}
	net_down(&n);
}

static void test_sync__cancel_of_join_at_each_stage_changes_nothing(void **state)
{
	static const char *const stages[] = {"fetch", "verify", "merge"};
	net n;
	veld_store_options so;
	veld_store *c = NULL;
	char *dir, *req = NULL, *before, *after, *sum = NULL;
	size_t i;
	char cid[VELD_IDSIZE];
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Ivo\",\"postcode\":\"3020\"}"), VELD_OK);
	sync_all(&n);
	dir = veld_test_path(n.root, "c");
	veld_test_fast_options(&so);
	so.device_role = "assistant";
	so.device_name = "c";
	assert_int_equal(veld_store_create(&c, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &so), VELD_OK);
	assert_int_equal(veld_store_device_json(&req, c), VELD_OK);
	assert_int_equal(veld_enroll(NULL, n.office, req, "3000-3499"), VELD_OK);
	json_decref(veld_test_sync(n.office, VELD_OK));
	before = veld_test_export(c);
	for (i = 0; i < sizeof stages / sizeof stages[0]; i++) {
		veld_sync_options o;
		canceler k;
		options_for(&o, &k, stages[i]);
		assert_int_equal(veld_join(c, n.hub, &o), VELD_ECANCELED);
		assert_int_equal(k.asked, 1);
		assert_non_null(strstr(veld_errmsg(c), stages[i]));
		after = veld_test_export(c);
		assert_string_equal(before, after);
		veld_free(after);
		/* Not joined: no hub kept. */
		assert_int_equal(veld_sync(&sum, c, NULL), VELD_ENOTFOUND);
		veld_free(sum);
		sum = NULL;
	}
	assert_int_equal(veld_join(c, n.hub, NULL), VELD_OK);
	json_decref(veld_test_sync(c, VELD_OK));
	after = veld_test_export(c);
	{
		char *ea = veld_test_export(n.a);
		assert_string_equal(after, ea);
		veld_free(ea);
	}
	veld_free(after);
	veld_free(before);
	veld_free(req);
	veld_store_close(c);
	free(dir);
	net_down(&n);
}

/* A lock left on the hub by a killed push: a fresh one (another process
** may be writing the ref) fails the sync with VELD_ERROR naming the ref,
** never as a refusal, and the summary claims no push; once older than a
** ref update can take, it is removed and the push goes through. */
static void test_sync__stale_lock_on_the_hub_is_removed(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], lock[4096], ref[128], *summary = NULL;
	struct utimbuf old;
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	snprintf(ref, sizeof ref, "refs/veld/devices/%s", n.a_id);
	snprintf(lock, sizeof lock, "%s/%s.lock", n.hub, ref);
	assert_int_equal(veld_test_write_file(lock, "0000000000000000000000000000000000000000\n", 41), 0);
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);

	assert_int_equal(veld_sync(&summary, n.a, NULL), VELD_ERROR);
	assert_non_null(strstr(veld_errmsg(n.a), ref));
	assert_non_null(strstr(veld_errmsg(n.a), "is locked"));
	assert_non_null(strstr(veld_errmsg(n.a), "sync again later"));
	assert_non_null(strstr(summary, "\"pushed\":0"));
	veld_free(summary);
	assert_int_equal(access(lock, F_OK), 0); /* a young lock is left alone */

	old.actime = old.modtime = time(NULL) - 60;
	assert_int_equal(utime(lock, &old), 0);
	json_decref(veld_test_sync(n.a, VELD_OK));
	assert_int_equal(access(lock, F_OK), -1);
	json_decref(veld_test_sync(n.office, VELD_OK));
	{
		char *out = NULL;
		assert_int_equal(veld_record_show_json(&out, n.office, rid), VELD_OK);
		veld_free(out);
	}
	net_down(&n);
}

/* Lock files a killed sync left in the store's own repository (its ref,
** the hub copies, packed-refs): the store's lock keeps every other veld
** process out of that repository, so they are stale by construction and
** the next sync goes through. */
static void test_sync__locks_left_in_the_store_repository_are_stale(void **state)
{
	net n;
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], path[4096], *dir;
	static const char *const locks[] = {"refs/veld/devices/%s.lock", "refs/veld-keys/%s.lock",
	                                    "refs/veld-hub/heads/main.lock", "packed-refs.lock"};
	size_t i;
	(void)state;
	net_up(&n);
	assert_int_equal(veld_case_new(cid, n.a, "{\"name\":\"Jan Janssens\",\"postcode\":\"3000\"}"), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	dir = veld_test_path(n.root, "a/repo");
	for (i = 0; i < sizeof locks / sizeof locks[0]; i++) {
		char name[256];
		snprintf(name, sizeof name, locks[i], n.a_id);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		assert_int_equal(veld_test_write_file(path, "0000000000000000000000000000000000000000\n", 41), 0);
	}
	assert_int_equal(veld_record_put(rid, n.a, cid, "contactregistratie", NULL, VALID_CONTACT), VELD_OK);
	json_decref(veld_test_sync(n.a, VELD_OK));
	for (i = 0; i < sizeof locks / sizeof locks[0]; i++) {
		char name[256];
		snprintf(name, sizeof name, locks[i], n.a_id);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		assert_int_equal(access(path, F_OK), -1);
	}
	json_decref(veld_test_sync(n.office, VELD_OK));
	{
		char *out = NULL;
		assert_int_equal(veld_record_show_json(&out, n.office, rid), VELD_OK);
		veld_free(out);
	}
	free(dir);
	net_down(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync__case_reaches_office_and_region),
		cmocka_unit_test(test_sync__conflict_kept_and_resolved_everywhere),
		cmocka_unit_test(test_sync__delete_against_edit_is_a_conflict),
		cmocka_unit_test(test_sync__merge_of_many_devices_is_accepted),
		cmocka_unit_test(test_sync__cancel_at_each_stage_leaves_the_store_as_it_was),
		cmocka_unit_test(test_sync__cancel_of_join_at_each_stage_changes_nothing),
		cmocka_unit_test(test_sync__stale_lock_on_the_hub_is_removed),
		cmocka_unit_test(test_sync__locks_left_in_the_store_repository_are_stale),
	};
	return cmocka_run_group_tests_name("sync_basic", tests, NULL, NULL);
}

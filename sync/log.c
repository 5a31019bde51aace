/*
** log.c — veld_log_json: who changed which records when, from the signed
** history of this store's ref (main on the office).
**
** Newest first by commit time; merge commits are left out (the commits
** they merge are listed); a commit that touched no record (registry,
** erasure) is left out too.  Reads the repository only; must not change
** the store.
*/
#include "sync.h"

#include <stdlib.h>
#include <string.h>

typedef struct logctx {
	json_t *records;
	const char *case_id;
} logctx;

static int log_path(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload)
{
	logctx *l = payload;
	char case_id[VELD_IDSIZE], record_id[VELD_IDSIZE];
	(void)old_id;
	(void)new_id;
	if (veld_sync__parse_record_path(path, case_id, record_id))
		return 0;
	if (l->case_id && strcmp(l->case_id, case_id))
		return 0;
	json_array_append_new(l->records, json_pack("{s:s, s:s}", "case", case_id, "record", record_id));
	return 0;
}

/* Newest first by commit time (a stable insertion sort: the walk's order
** breaks ties). */
static void sort_log(json_t *arr)
{
	size_t i, j, n = json_array_size(arr);
	for (i = 1; i < n; i++) {
		json_t *e = json_incref(json_array_get(arr, i));
		json_int_t at = json_integer_value(json_object_get(e, "at"));
		for (j = i; j > 0 && json_integer_value(json_object_get(json_array_get(arr, j - 1), "at")) < at; j--)
			json_array_set(arr, j, json_array_get(arr, j - 1));
		json_array_set_new(arr, j, e);
	}
}

/* The entry of one commit, or NULL (a merge, no record of `case_id`, an
** unreadable commit). */
static json_t *log_entry(veld_syncctx *c, const git_oid *id, const char *case_id)
{
	git_commit *gc = NULL;
	git_oid parents[2], tree, ptree;
	size_t np = 0;
	logctx l;
	json_t *e = NULL;
	char hex[GIT_OID_HEXSZ + 1], signer[80] = "";
	if (veld_repo__commit_parents(parents, 2, &np, c->repo, id, c->err) || np > 1)
		return NULL;
	l.records = json_array();
	l.case_id = case_id;
	if (veld_repo__commit_tree(&tree, c->repo, id, c->err) ||
	    (np == 1 && veld_repo__commit_tree(&ptree, c->repo, &parents[0], c->err)) ||
	    veld_repo__diff(c->repo, np ? &ptree : NULL, &tree, log_path, &l, c->err) ||
	    json_array_size(l.records) == 0 || git_commit_lookup(&gc, veld_repo__git(c->repo), id) != 0) {
		json_decref(l.records);
		return NULL;
	}
	veld_sync__header_signer(signer, sizeof signer, c, id);
	veld_sync__oid_hex(hex, id);
	e = json_pack("{s:s, s:s, s:I, s:o}", "commit", hex, "signer", signer, "at",
	              (json_int_t)git_commit_time(gc) * 1000, "records", l.records);
	git_commit_free(gc);
	return e;
}

int veld_log_json(char **out, veld_store *s, const char *case_id)
{
	veld_syncctx c;
	git_oid head, *commits = NULL;
	size_t n = 0, i;
	json_t *arr = NULL;
	int rc, have = 0;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	arr = json_array();
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)))
		goto done;
	if ((rc = veld_sync__own_head(&head, &have, &c)) ||
	    (have && (rc = veld_repo__new_commits(&commits, &n, c.repo, &head, NULL, 0, c.err))))
		goto done;
	for (i = n; i-- > 0;) {
		json_t *e = log_entry(&c, &commits[i], case_id);
		if (e)
			json_array_append_new(arr, e);
	}
	sort_log(arr);
	*out = json_dumps(arr, JSON_SORT_KEYS | JSON_COMPACT);
	if (!*out)
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
done:
	json_decref(arr);
	free(commits);
	veld_sync__ctx_free(&c);
	return rc;
}

/*
** refs.c — refs: read one, set one (after the objects it names are on
** disk: the batch is flushed first), list those under a prefix.
**
** What it owns: nothing beyond the call.  What it must not do: give a ref
** name a meaning (sync.c's refs/veld/... layout).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdlib.h>
#include <string.h>

int veld_repo__ref_get(git_oid *out, veld_repo *r, const char *name, veld_err *err)
{
	int grc = git_reference_name_to_id(out, r->git, name);
	if (grc == GIT_ENOTFOUND)
		return veld_err__set(err, VELD_ENOTFOUND, "no ref %s", name);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot read ref %s", name);
	return 0;
}

int veld_repo__ref_set(veld_repo *r, const char *name, const git_oid *id, veld_err *err)
{
	git_reference *ref = NULL;
	int grc;
	/* what the ref names goes to disk first */
	if (veld_repo__flush(r, err))
		return err->code;
	grc = git_reference_create(&ref, r->git, name, id, 1, NULL);
	git_reference_free(ref);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot set ref %s", name);
	return 0;
}

typedef struct ref_item {
	char *name;
	git_oid id;
} ref_item;

static int cmp_ref_item(const void *a, const void *b)
{
	return strcmp(((const ref_item *)a)->name, ((const ref_item *)b)->name);
}

int veld_repo__ref_list(veld_repo *r, const char *prefix, veld_ref_cb cb, void *payload, veld_err *err)
{
	git_reference_iterator *it = NULL;
	ref_item *items = NULL;
	size_t n = 0, cap = 0, i, plen = prefix ? strlen(prefix) : 0;
	const char *name;
	int rc = 0, grc;

	if ((grc = git_reference_iterator_new(&it, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot list refs");
		goto done;
	}
	while ((grc = git_reference_next_name(&name, it)) == 0) {
		git_oid id;
		if (plen && strncmp(name, prefix, plen) != 0)
			continue;
		if (git_reference_name_to_id(&id, r->git, name) < 0) {
			git_error_clear(); /* a dangling symbolic ref (HEAD of an empty repo) */
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ref_item *ni = realloc(items, ncap * sizeof *ni);
			if (!ni) {
				rc = veld_err__oom(err);
				goto done;
			}
			items = ni;
			cap = ncap;
		}
		items[n].name = strdup(name);
		if (!items[n].name) {
			rc = veld_err__oom(err);
			goto done;
		}
		git_oid_cpy(&items[n].id, &id);
		n++;
	}
	if (grc != GIT_ITEROVER) {
		rc = veld_git__fail(err, grc, 0, "cannot list refs");
		goto done;
	}
	if (n)
		qsort(items, n, sizeof *items, cmp_ref_item);
	for (i = 0; i < n; i++)
		if ((rc = cb(items[i].name, &items[i].id, payload)) != 0)
			goto done;
done:
	for (i = 0; i < n; i++)
		free(items[i].name);
	free(items);
	git_reference_iterator_free(it);
	return rc;
}

/*
** push_http.c — a push over smart HTTP: our pack, http.c's exchange.
**
** Why not libgit2's push: it packs by walking, and the walk marks the
** whole tree of every head the hub advertises before it packs the few new
** objects, so a push cost what the hub held (docs/benchmarks.md).  Here the
** objects are those a push to a path sends, found the same way (move.c),
** except that the hub's object store cannot be asked: the commits to send
** are those of the new head that no advertised head reaches (a walk over
** commits only), and a tree entry is left out when a parent's tree or the
** hub's current value of the ref holds it as it is.  Packed in memory,
** thin (trees as deltas against the hub's), and sent with the ref updates
** by http.c (docs/sync.md, "Hubs").
**
** What it owns: the advertised refs and the pack of one push.  What it
** must not do: speak HTTP (http.c does) or call up into transport.c.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the hub advertises: names and ids. */
typedef struct advert {
	veld_strlist names;
	git_oid *ids;
	size_t idcap;
} advert;

static int advert_add(const char *name, const char *hex, void *payload)
{
	advert *a = payload;
	git_oid id;
	if (git_oid_fromstr(&id, hex) < 0 || veld_strlist__add(&a->names, name))
		return -1;
	if (a->idcap < a->names.cap) {
		git_oid *ni = realloc(a->ids, a->names.cap * sizeof *ni);
		if (!ni)
			return -1;
		a->ids = ni;
		a->idcap = a->names.cap;
	}
	git_oid_cpy(&a->ids[a->names.n - 1], &id);
	return 0;
}

static void advert_free(advert *a)
{
	veld_strlist__free(&a->names);
	free(a->ids);
}

/* One push over HTTP in the making. */
typedef struct http_push {
	veld_repo *r;
	const char *url;
	advert adv;
	veld_moveset m;
	git_odb *odb;          /* ours: which advertised heads we have */
	veld_http_update *ups;
	char **names;          /* ups[i].name, owned */
	size_t nups;
	veld_err *err;
} http_push;

/* The commits reachable from `want` and from no advertised head we have,
** with what their trees add, into the pack. */
static int take_new_commits(http_push *p, const git_oid *want, const git_oid *old, int had, const char *name)
{
	git_revwalk *w = NULL;
	git_tree *oldtree = had ? veld_git__move_base(&p->m, old) : NULL;
	git_oid id, parents[VELD_GIT_MOVE_BASES];
	size_t np, i;
	int rc = 0, grc;
	if ((grc = git_revwalk_new(&w, p->r->git)) < 0 || (grc = git_revwalk_push(w, want)) < 0) {
		rc = veld_git__fail(p->err, grc, 0, "walk %s", name);
	} else {
		for (i = 0; i < p->adv.names.n; i++)
			if (git_odb_exists(p->odb, &p->adv.ids[i]))
				git_revwalk_hide(w, &p->adv.ids[i]);
		git_error_clear();
		while (rc == 0 && (grc = git_revwalk_next(&id, w)) == 0)
			rc = veld_git__move_commit(&p->m, &id, oldtree, parents, &np);
		if (rc == 0 && grc != GIT_ITEROVER)
			rc = veld_git__fail(p->err, grc, 0, "walk %s", name);
	}
	git_tree_free(oldtree);
	git_revwalk_free(w);
	return rc;
}

/* One refspec: the update it asks for (none when the hub has it as it is;
** VELD_EDENIED when not a fast-forward and not forced) and its objects. */
static int take_refspec(http_push *p, const char *refspec)
{
	git_refspec *spec = NULL;
	git_oid want, old;
	const char *dst;
	size_t i;
	int had = 0, rc = 0, grc;
	if ((grc = git_refspec_parse(&spec, refspec, 0)) < 0)
		return veld_git__fail(p->err, grc, VELD_EINVALID, "refspec %s", refspec);
	dst = git_refspec_dst(spec);
	if ((grc = git_reference_name_to_id(&want, p->r->git, git_refspec_src(spec))) < 0) {
		rc = veld_git__fail(p->err, grc, 0, "read %s", git_refspec_src(spec));
		goto done;
	}
	memset(&old, 0, sizeof old);
	for (i = 0; i < p->adv.names.n && !had; i++)
		if (!strcmp(p->adv.names.v[i], dst)) {
			git_oid_cpy(&old, &p->adv.ids[i]);
			had = 1;
		}
	if (had && git_oid_equal(&old, &want))
		goto done;
	if (had && !git_refspec_force(spec) &&
	    (!git_odb_exists(p->odb, &old) || git_graph_descendant_of(p->r->git, &want, &old) != 1)) {
		git_error_clear();
		rc = veld_err__set(p->err, VELD_EDENIED, "push of %s to %s refused: not a fast-forward", dst, p->url);
		goto done;
	}
	if (!(p->names[p->nups] = strdup(dst))) {
		rc = veld_err__oom(p->err);
		goto done;
	}
	p->ups[p->nups].name = p->names[p->nups];
	git_oid_tostr(p->ups[p->nups].old_hex, sizeof p->ups[p->nups].old_hex, &old);
	git_oid_tostr(p->ups[p->nups].new_hex, sizeof p->ups[p->nups].new_hex, &want);
	p->nups++;
	rc = take_new_commits(p, &want, &old, had, dst);
done:
	git_refspec_free(spec);
	return rc;
}

/* A cancel from the progress report comes before anything is sent. */
int veld_git__push_http(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                        const veld_remote_opts *opts, veld_err *err)
{
	veld_http *h = NULL;
	http_push p;
	unsigned char *pack = NULL;
	char what[600], shown[512];
	size_t i, k, plen = 0;
	int rc, grc;
	memset(&p, 0, sizeof p);
	p.r = r;
	p.url = url;
	p.err = err;
	if ((rc = veld_http__open(&h, url, opts, err)))
		return rc;
	if ((rc = veld_http__refs(h, advert_add, &p.adv, err))) {
		if (rc == VELD_ERROR && !err->msg[0])
			rc = veld_err__oom(err);
		goto done;
	}
	p.ups = calloc(n ? n : 1, sizeof *p.ups);
	p.names = calloc(n ? n : 1, sizeof *p.names);
	if (!p.ups || !p.names) {
		rc = veld_err__oom(err);
		goto done;
	}
	if ((rc = veld_git__move_open(&p.m, r->git, NULL, err)) || (grc = git_repository_odb(&p.odb, r->git)) < 0) {
		rc = rc ? rc : veld_git__fail(err, grc, 0, "open an object database");
		goto done;
	}
	for (k = 0; k < n && rc == 0; k++)
		rc = take_refspec(&p, refspecs[k]);
	if (rc || p.nups == 0)
		goto done;
	veld_git__redact_url(shown, sizeof shown, url);
	snprintf(what, sizeof what, "push to %s", shown);
	if ((rc = veld_git__progress(opts, "sending objects", veld_pack__count(p.m.pack), veld_pack__count(p.m.pack),
	                             what, err)))
		goto done;
	if ((rc = veld_pack__write(&pack, &plen, p.m.pack, err)))
		goto done;
	rc = veld_http__push(h, p.ups, p.nups, pack, plen, err);
done:
	free(pack);
	git_odb_free(p.odb);
	veld_git__move_close(&p.m);
	for (i = 0; p.names && i < p.nups; i++)
		free(p.names[i]);
	free(p.names);
	free(p.ups);
	advert_free(&p.adv);
	veld_http__free(h);
	return rc;
}

/*
** transport.c — fetch, ls-remote and push: the entry points sync.c calls.
**
** A hub on a path goes to pathhub.c, a push over http(s) to push_http.c
** (both pack only what a change made); everything else (a fetch over
** http(s), file:// or ssh, ls-remote, a push over file:// or ssh) goes
** through libgit2's transports, with our credentials, progress and the
** server's refusals surfaced.
**
** libgit2 1.5 behaviour this relies on (each one checked by
** tests/unit/sync_repo.c):
**  - git_remote_push returns 0 when the server refuses a ref; the refusal
**    is only in the push_update_reference callback, whose status from
**    git http-backend is just "hook declined": the hook's own reason
**    arrives as a sideband message ("remote: ...").  A non-fast-forward
**    push without force is refused by libgit2 before anything is sent
**    (GIT_ENONFASTFORWARD).
**  - A callback that returns non-zero aborts the transfer; libgit2 returns
**    that code or its own, so a cancel is known by the flag our callback
**    set, not by the code.
** What it owns: one transfer's state (xfer), the payload of every libgit2
** callback.  What it must not do: select or pack objects itself (move.c,
** pack.c), or keep anything past the call.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CRED_FIELD_SIZE 256

/* One transfer's state, the payload of every libgit2 callback. */
typedef struct xfer {
	const veld_remote_opts *opts;
	char url[512];          /* redacted, for messages */
	const char *real_url;   /* for the credential callback */
	int userpass_tries;
	int ssh_tries;
	int user_tries;
	int auth_failed;        /* we gave up on credentials */
	char refused_ref[256];  /* first ref the server refused */
	char refused_msg[256];
	int n_refused;
	char remote_text[1024]; /* the tail of what the server said ("remote: ...") */
	size_t remote_len;
	int canceled;           /* the progress callback asked to stop */
} xfer;

/* libgit2 asks again after every 401 and never gives up by itself (short of
** its replay limit): each kind of credential is offered once.  A second
** request means the first was rejected. */
static int cred_cb(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
                   void *payload)
{
	xfer *x = payload;
	const char *user = user_from_url && *user_from_url ? user_from_url : "git";
	(void)url;

	if (allowed & GIT_CREDENTIAL_USERNAME) {
		if (x->user_tries++ > 0)
			goto fail;
		return git_credential_username_new(out, user);
	}
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		if (x->ssh_tries++ > 0)
			goto fail;
		return git_credential_ssh_key_from_agent(out, user);
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		char u[CRED_FIELD_SIZE], p[CRED_FIELD_SIZE];
		int crc;
		if (x->userpass_tries++ > 0 || !x->opts || !x->opts->cred)
			goto fail;
		snprintf(u, sizeof u, "%s", user_from_url ? user_from_url : "");
		p[0] = '\0';
		crc = x->opts->cred(u, sizeof u, p, sizeof p, x->real_url, x->opts->payload);
		u[sizeof u - 1] = '\0';
		p[sizeof p - 1] = '\0';
		if (crc == 0)
			crc = git_credential_userpass_plaintext_new(out, u, p);
		else
			crc = -1;
		sodium_memzero(p, sizeof p);
		if (crc < 0)
			goto fail;
		return 0;
	}
fail:
	x->auth_failed = 1;
	git_error_set_str(GIT_ERROR_NET, "authentication failed");
	return GIT_EUSER;
}

/* The caller's progress callback; a non-zero answer is remembered and
** becomes GIT_EUSER, which makes libgit2 abort the transfer (xfer_fail
** then says VELD_ECANCELED). */
static int report(xfer *x, const char *stage, size_t done, size_t total)
{
	if (!x->opts || !x->opts->progress || x->opts->progress(stage, done, total, x->opts->payload) == 0)
		return 0;
	x->canceled = 1;
	git_error_set_str(GIT_ERROR_CALLBACK, "canceled by the caller");
	return GIT_EUSER;
}

static int fetch_progress_cb(const git_indexer_progress *st, void *payload)
{
	if (st->received_objects < st->total_objects)
		return report(payload, "receiving objects", st->received_objects, st->total_objects);
	return report(payload, "indexing objects", st->indexed_objects, st->total_objects);
}

static int push_progress_cb(unsigned int current, unsigned int total, size_t bytes, void *payload)
{
	(void)bytes;
	return report(payload, "sending objects", current, total);
}

/* The server's messages (sideband 2): a hook's reason for a refusal is
** only here; the ref status itself just says "hook declined".  Keep the
** last 1 KB. */
static int sideband_cb(const char *text, int len, void *payload)
{
	xfer *x = payload;
	size_t n = len > 0 ? (size_t)len : 0, cap = sizeof x->remote_text - 1;
	if (n > cap) {
		text += n - cap;
		n = cap;
	}
	if (x->remote_len + n > cap) {
		size_t drop = x->remote_len + n - cap;
		memmove(x->remote_text, x->remote_text + drop, x->remote_len - drop);
		x->remote_len -= drop;
	}
	memcpy(x->remote_text + x->remote_len, text, n);
	x->remote_len += n;
	x->remote_text[x->remote_len] = '\0';
	return 0;
}

/* A ref the server refused: the first one is kept with its status. */
static int push_ref_cb(const char *refname, const char *status, void *payload)
{
	xfer *x = payload;
	if (status) {
		if (x->n_refused++ == 0) {
			snprintf(x->refused_ref, sizeof x->refused_ref, "%s", refname);
			snprintf(x->refused_msg, sizeof x->refused_msg, "%s", status);
		}
	}
	return 0;
}

static int xfer_start(git_remote **remote, xfer *x, veld_repo *r, const char *url, const veld_remote_opts *opts,
                      git_remote_callbacks *cbs, veld_err *err)
{
	git_remote_create_options co;
	int grc;
	memset(x, 0, sizeof *x);
	x->opts = opts;
	x->real_url = url;
	veld_git__redact_url(x->url, sizeof x->url, url ? url : "");
	if (!url || !*url)
		return veld_err__set(err, VELD_EINVALID, "remote URL is empty");
	/* Anonymous (no name, nothing in the config) and without url.insteadOf
	** rewriting: the URL is used as given.  (libgit2 1.5's insteadOf scan
	** also leaks a PCRE2 match block per config entry it does not match.) */
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = r->git;
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if ((grc = git_remote_create_with_opts(remote, url, &co)) < 0)
		return veld_git__fail(err, grc, 0, "cannot use remote %s", x->url);
	cbs->credentials = cred_cb;
	cbs->payload = x;
	return 0;
}

/* The error of a failed transfer: a cancel by the caller, then
** authentication (libgit2 reports it as a user abort or as its own replay
** limit), then the mapped code. */
static int xfer_fail(veld_err *err, const xfer *x, int grc, const char *what)
{
	if (x->canceled)
		return veld_err__set(err, VELD_ECANCELED, "%s %s: canceled by the caller", what, x->url);
	if (x->auth_failed || grc == GIT_EAUTH)
		return veld_err__set(err, VELD_EAUTH, "authentication failed for %s", x->url);
	return veld_git__fail(err, grc, 0, "%s %s", what, x->url);
}

int veld_repo__is_url(const char *hub)
{
	return strstr(hub, "://") != NULL || (strchr(hub, '@') && strchr(hub, ':'));
}

static int is_path_hub(const char *url)
{
	return url && *url && !veld_repo__is_url(url);
}

int veld_repo__fetch(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	git_strarray specs;
	xfer x;
	int rc, grc;

	if (is_path_hub(url) && n)
		return veld_git__fetch_path(r, url, refspecs, n, opts, err);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &fo.callbacks, err)) < 0)
		goto done;
	if (!n) {
		rc = veld_err__set(err, VELD_EINVALID, "fetch from %s: no refspecs", x.url);
		goto done;
	}
	fo.callbacks.transfer_progress = fetch_progress_cb;
	/* Refs gone from the hub go from our copy of it too (refs/veld-hub/),
	** so a forged ref that was removed stops being rejected forever. */
	fo.prune = GIT_FETCH_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	specs.strings = (char **)refspecs;
	specs.count = n;
	if ((grc = git_remote_fetch(remote, &specs, &fo, NULL)) < 0) {
		rc = xfer_fail(err, &x, grc, "fetch from");
		goto done;
	}
done:
	git_remote_free(remote);
	return rc;
}

int veld_repo__ls_remote(veld_repo *r, const char *url, const veld_remote_opts *opts, veld_ref_cb cb,
                         void *payload, veld_err *err)
{
	git_remote_callbacks cbs;
	git_remote *remote = NULL;
	const git_remote_head **heads = NULL;
	size_t nh = 0, i;
	xfer x;
	int rc, grc;

	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &cbs, err)) < 0)
		goto done;
	if ((grc = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cbs, NULL, NULL)) < 0 ||
	    (grc = git_remote_ls(&heads, &nh, remote)) < 0) {
		rc = xfer_fail(err, &x, grc, "list refs of");
		goto done;
	}
	for (i = 0; i < nh; i++)
		if ((rc = cb(heads[i]->name, &heads[i]->oid, payload)) != 0)
			break;
done:
	if (remote)
		git_remote_disconnect(remote);
	git_remote_free(remote);
	return rc;
}

/* After GIT_ENONFASTFORWARD: name the first refspec whose remote side is not
** an ancestor of what we push. */
static void name_nonff(char *ref, size_t cap, veld_repo *r, git_remote *remote, const char *const *refspecs, size_t n)
{
	const git_remote_head **heads = NULL;
	size_t nh = 0, i, j;
	ref[0] = '\0';
	if (git_remote_ls(&heads, &nh, remote) < 0) {
		git_error_clear();
		return;
	}
	for (i = 0; i < n && !ref[0]; i++) {
		const char *spec = refspecs[i], *colon, *src, *dst;
		char srcname[256];
		git_oid local;
		if (spec[0] == '+')
			continue;
		colon = strchr(spec, ':');
		src = spec;
		dst = colon ? colon + 1 : spec;
		snprintf(srcname, sizeof srcname, "%.*s", colon ? (int)(colon - src) : (int)strlen(src), src);
		if (git_reference_name_to_id(&local, r->git, srcname) < 0) {
			git_error_clear();
			continue;
		}
		for (j = 0; j < nh; j++) {
			if (strcmp(heads[j]->name, dst) != 0)
				continue;
			if (!git_oid_equal(&heads[j]->oid, &local) &&
			    git_graph_descendant_of(r->git, &local, &heads[j]->oid) != 1)
				snprintf(ref, cap, "%s", dst);
			git_error_clear();
		}
	}
}

int veld_repo__push(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                    const veld_remote_opts *opts, veld_err *err)
{
	git_push_options po;
	git_remote *remote = NULL;
	git_strarray specs;
	xfer x;
	int rc, grc;

	if (is_path_hub(url) && n)
		return veld_git__push_path(r, url, refspecs, n, opts, err);
	if (url && n && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)))
		return veld_git__push_http(r, url, refspecs, n, opts, err);
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	if ((rc = xfer_start(&remote, &x, r, url, opts, &po.callbacks, err)) < 0)
		goto done;
	if (!n) {
		rc = veld_err__set(err, VELD_EINVALID, "push to %s: no refspecs", x.url);
		goto done;
	}
	po.callbacks.push_transfer_progress = push_progress_cb;
	po.callbacks.push_update_reference = push_ref_cb;
	po.callbacks.sideband_progress = sideband_cb;
	specs.strings = (char **)refspecs;
	specs.count = n;
	grc = git_remote_push(remote, &specs, &po);
	if (grc == GIT_ENONFASTFORWARD) {
		char ref[256];
		const git_error *e = git_error_last();
		char why[256];
		snprintf(why, sizeof why, "%s", e && e->message ? e->message : "not a fast-forward");
		name_nonff(ref, sizeof ref, r, remote, refspecs, n);
		rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused: %s", ref[0] ? ref : "a ref", x.url, why);
		goto done;
	}
	if (grc < 0) {
		rc = xfer_fail(err, &x, grc, "push to");
		goto done;
	}
	if (x.n_refused) {
		char why[300], more[48] = "";
		veld_repo__remote_reason(why, sizeof why, x.remote_text, x.refused_ref);
		if (x.n_refused > 1)
			snprintf(more, sizeof more, " (and %d more refs)", x.n_refused - 1);
		rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused by the server: %s%s%s%s%s", x.refused_ref,
		                   x.url, x.refused_msg, why[0] ? " (" : "", why, why[0] ? ")" : "", more);
		goto done;
	}
done:
	git_remote_free(remote);
	return rc;
}

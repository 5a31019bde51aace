/*
** commit.c — signed commits: create one, verify one, the facts of a commit
** (its tree, its parents), and the commits a fetch brought.
**
** A commit is signed in a custom header, "veldsig <signer> <base64 of an
** Ed25519 signature over the commit without that header>"
** (git_commit_create_with_signature / git_commit_extract_signature); the
** signing and the signer's public key are the caller's callbacks, so this
** file knows no key and no device.  Verification accepts only the one
** canonical spelling of the header.
** What it owns: nothing beyond the call; the signature bytes are wiped on
** every path.  What it must not do: decide who may sign (sync.c does).
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SIG_FIELD    "veldsig"
#define SIG_B64LEN   88 /* base64 (original, padded) of 64 bytes */
#define SIGNER_MAX   64
#define EMAIL_DOMAIN "@veld.invalid"

/* ---- signed commits ----------------------------------------------------- */

/* A signer id: 1..64 of [A-Za-z0-9._-] (device ids are hex, "org"). */
static int signer_ok(const char *s, size_t len)
{
	size_t i;
	if (len == 0 || len > SIGNER_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int veld_repo__commit(git_oid *out, veld_repo *r, const git_oid *tree_id, const git_oid *parents,
                      size_t n_parents, const char *signer, int64_t when_ms, const char *msg,
                      veld_sign_cb sign, void *payload, veld_err *err)
{
	git_tree *tree = NULL;
	git_commit **pc = NULL;
	git_signature *who = NULL;
	git_buf buf = {0};
	char email[SIGNER_MAX + sizeof EMAIL_DOMAIN];
	char header[SIGNER_MAX + 1 + SIG_B64LEN + 1];
	unsigned char sig[crypto_sign_BYTES];
	size_t i, slen;
	int rc = 0, grc;

	slen = signer ? strlen(signer) : 0;
	if (!signer_ok(signer ? signer : "", slen)) {
		rc = veld_err__set(err, VELD_EINVALID, "commit: signer id must be 1-%d of [A-Za-z0-9._-]", SIGNER_MAX);
		goto done;
	}
	if (!msg || !tree_id || !sign || (n_parents && !parents)) {
		rc = veld_err__set(err, VELD_EINVALID, "commit: missing tree, message, parents or signing callback");
		goto done;
	}
	if ((rc = veld_git__lookup_tree(&tree, r, tree_id, err)) < 0)
		goto done;
	if (n_parents) {
		pc = calloc(n_parents, sizeof *pc);
		if (!pc) {
			rc = veld_err__oom(err);
			goto done;
		}
	}
	for (i = 0; i < n_parents; i++) {
		char hex[GIT_OID_HEXSZ + 1];
		if ((grc = git_commit_lookup(&pc[i], r->git, &parents[i])) < 0) {
			rc = veld_git__fail(err, grc, 0, "commit: cannot read parent %s",
			              git_oid_tostr(hex, sizeof hex, &parents[i]));
			goto done;
		}
	}
	snprintf(email, sizeof email, "%s%s", signer, EMAIL_DOMAIN);
	if ((grc = git_signature_new(&who, signer, email, (git_time_t)(when_ms / 1000), 0)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: bad author");
		goto done;
	}
	if ((grc = git_commit_create_buffer(&buf, r->git, who, who, NULL, msg, tree, n_parents,
	                                     (const git_commit **)pc)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: cannot build the commit");
		goto done;
	}
	if (sign(sig, (const unsigned char *)buf.ptr, buf.size, payload) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "commit: signing failed for signer %s", signer);
		goto done;
	}
	memcpy(header, signer, slen);
	header[slen] = ' ';
	sodium_bin2base64(header + slen + 1, SIG_B64LEN + 1, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	if ((grc = git_commit_create_with_signature(out, r->git, buf.ptr, header, SIG_FIELD)) < 0) {
		rc = veld_git__fail(err, grc, 0, "commit: cannot store the signed commit");
		goto done;
	}
done:
	sodium_memzero(sig, sizeof sig);
	git_buf_dispose(&buf);
	git_signature_free(who);
	for (i = 0; pc && i < n_parents; i++)
		git_commit_free(pc[i]);
	free(pc);
	git_tree_free(tree);
	return rc;
}

int veld_repo__commit_verify(char *signer_out, size_t signer_cap, veld_repo *r, const git_oid *commit,
                             veld_pubkey_cb pubkey, void *payload, veld_err *err)
{
	git_buf sigbuf = {0}, data = {0};
	git_oid id;
	char hex[GIT_OID_HEXSZ + 1];
	char signer[SIGNER_MAX + 1];
	char again[SIG_B64LEN + 1];
	unsigned char sig[crypto_sign_BYTES], pk[crypto_sign_PUBLICKEYBYTES];
	const char *sp, *b64;
	size_t slen, blen, siglen = 0;
	const char *end = NULL;
	int rc = 0, grc;

	if (signer_out && signer_cap)
		signer_out[0] = '\0';
	git_oid_cpy(&id, commit);
	git_oid_tostr(hex, sizeof hex, commit);
	grc = git_commit_extract_signature(&sigbuf, &data, r->git, &id, SIG_FIELD);
	if (grc == GIT_ENOTFOUND) {
		/* Absent commit or absent header: tell which. */
		git_commit *c = NULL;
		int lrc = git_commit_lookup(&c, r->git, commit);
		git_commit_free(c);
		if (lrc < 0)
			rc = veld_git__fail(err, lrc, 0, "commit %s", hex);
		else
			rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s is not signed (no %s header)", hex, SIG_FIELD);
		goto done;
	}
	if (grc < 0) {
		rc = veld_git__fail(err, grc, VELD_EINTEGRITY, "commit %s: cannot read its signature", hex);
		goto done;
	}

	/* "<signer> <base64>", one line, exactly one space. */
	sp = memchr(sigbuf.ptr, ' ', sigbuf.size);
	slen = sp ? (size_t)(sp - sigbuf.ptr) : 0;
	if (!sp || !signer_ok(sigbuf.ptr, slen)) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: malformed %s header (bad signer id)", hex, SIG_FIELD);
		goto done;
	}
	memcpy(signer, sigbuf.ptr, slen);
	signer[slen] = '\0';
	if (signer_out && signer_cap) {
		if (signer_cap <= slen) {
			rc = veld_err__set(err, VELD_EINVALID, "commit %s: signer id longer than the caller's buffer", hex);
			goto done;
		}
		memcpy(signer_out, signer, slen + 1);
	}
	b64 = sp + 1;
	blen = sigbuf.size - slen - 1;
	if (blen != SIG_B64LEN ||
	    sodium_base642bin(sig, sizeof sig, b64, blen, NULL, &siglen, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    siglen != sizeof sig || end != b64 + blen) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s signed by %s: malformed signature (not 64 bytes of base64)",
		                   hex, signer);
		goto done;
	}
	/* Only the canonical spelling: no second encoding of the same bytes. */
	sodium_bin2base64(again, sizeof again, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	if (memcmp(again, b64, SIG_B64LEN) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s signed by %s: non-canonical base64 signature", hex, signer);
		goto done;
	}
	rc = pubkey(pk, signer, payload);
	if (rc == VELD_ENOTFOUND) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: unknown signer %s", hex, signer);
		goto done;
	}
	if (rc != 0) {
		rc = veld_err__set(err, rc < 0 ? rc : VELD_ERROR, "commit %s: cannot get the public key of signer %s", hex,
		                   signer);
		goto done;
	}
	if (crypto_sign_verify_detached(sig, (const unsigned char *)data.ptr, data.size, pk) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "commit %s: bad signature by %s", hex, signer);
		goto done;
	}
done:
	sodium_memzero(sig, sizeof sig);
	git_buf_dispose(&sigbuf);
	git_buf_dispose(&data);
	return rc;
}

static int lookup_commit(git_commit **out, veld_repo *r, const git_oid *id, veld_err *err)
{
	char hex[GIT_OID_HEXSZ + 1];
	int grc = git_commit_lookup(out, r->git, id);
	if (grc < 0)
		return veld_git__fail(err, grc, 0, "cannot read commit %s", git_oid_tostr(hex, sizeof hex, id));
	return 0;
}

int veld_repo__commit_tree(git_oid *tree_out, veld_repo *r, const git_oid *commit, veld_err *err)
{
	git_commit *c = NULL;
	int rc = lookup_commit(&c, r, commit, err);
	if (rc == 0)
		git_oid_cpy(tree_out, git_commit_tree_id(c));
	git_commit_free(c);
	return rc;
}

int veld_repo__commit_parents(git_oid *parents, size_t cap, size_t *n, veld_repo *r, const git_oid *commit,
                              veld_err *err)
{
	git_commit *c = NULL;
	size_t i, count;
	int rc;

	*n = 0;
	if ((rc = lookup_commit(&c, r, commit, err)) < 0)
		goto done;
	count = git_commit_parentcount(c);
	for (i = 0; i < count && i < cap; i++)
		git_oid_cpy(&parents[i], git_commit_parent_id(c, (unsigned int)i));
	*n = count;
	if (count > cap) {
		char hex[GIT_OID_HEXSZ + 1];
		rc = veld_err__set(err, VELD_EINVALID, "commit %s has %zu parents, more than %zu",
		                   git_oid_tostr(hex, sizeof hex, commit), count, cap);
	}
done:
	git_commit_free(c);
	return rc;
}

/* ---- history ------------------------------------------------------------ */

int veld_repo__new_commits(git_oid **out, size_t *n, veld_repo *r, const git_oid *head, const git_oid *stop,
                           size_t n_stop, veld_err *err)
{
	git_revwalk *walk = NULL;
	git_oid id, *list = NULL;
	size_t len = 0, cap = 0, i;
	char hex[GIT_OID_HEXSZ + 1];
	int rc = 0, grc;

	*out = NULL;
	*n = 0;
	if ((grc = git_revwalk_new(&walk, r->git)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot start a history walk");
		goto done;
	}
	if ((grc = git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE)) < 0) {
		rc = veld_git__fail(err, grc, 0, "cannot sort a history walk");
		goto done;
	}
	if ((grc = git_revwalk_push(walk, head)) < 0) {
		rc = veld_git__fail(err, grc, 0, "history walk from %s", git_oid_tostr(hex, sizeof hex, head));
		goto done;
	}
	for (i = 0; i < n_stop; i++) {
		git_object *o = NULL;
		/* A stop that is not here (or is no commit) hides nothing. */
		if (git_object_lookup(&o, r->git, &stop[i], GIT_OBJECT_COMMIT) < 0) {
			git_error_clear();
			continue;
		}
		git_object_free(o);
		if ((grc = git_revwalk_hide(walk, &stop[i])) < 0) {
			rc = veld_git__fail(err, grc, 0, "history walk: cannot hide %s", git_oid_tostr(hex, sizeof hex, &stop[i]));
			goto done;
		}
	}
	while ((grc = git_revwalk_next(&id, walk)) == 0) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			git_oid *nl = realloc(list, ncap * sizeof *nl);
			if (!nl) {
				rc = veld_err__oom(err);
				goto done;
			}
			list = nl;
			cap = ncap;
		}
		git_oid_cpy(&list[len++], &id);
	}
	if (grc != GIT_ITEROVER) {
		rc = veld_git__fail(err, grc, 0, "history walk from %s", git_oid_tostr(hex, sizeof hex, head));
		goto done;
	}
	*out = list;
	*n = len;
	list = NULL;
done:
	free(list);
	git_revwalk_free(walk);
	return rc;
}

/*
** error.c — how the git layer says what went wrong: libgit2's codes mapped
** to veld's, URLs with their user-info left out, the line of a hub's
** messages that explains a refusal, and the progress report whose non-zero
** answer cancels a transfer.
**
** What it owns: the mapping table below, nothing else.  It is a leaf: the
** other files of sync/git (http.c and pack.c included) call it, it calls
** none of them, so no file has to call "up" to report an error.
**
** Errors: the text of git_error_last() is copied at once, next to what we
** were doing; it is never used to decide whether something failed (the
** return code does).  libgit2 codes map to veld codes as follows: not
** found -> VELD_ENOTFOUND; hash mismatch, unparsable or undecompressable
** objects -> VELD_EINTEGRITY; authentication -> VELD_EAUTH; a ref the
** server refused or a non-fast-forward push -> VELD_EDENIED; a malformed
** ref name or path -> VELD_EINVALID; a ref that exists -> VELD_EEXISTS; a
** locked one -> VELD_EBUSY; everything else -> VELD_ERROR.  A callback of
** ours that canceled makes libgit2 return GIT_EUSER; transport.c knows that
** it did and says VELD_ECANCELED, not this table.
*/
#define VELD_GIT_INSIDE
#include "git.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Map the libgit2 return code `grc` (already known to be < 0) to a veld code,
** using the error class for the generic -1 only. */
static int map_code(int grc, int klass)
{
	switch (grc) {
	case GIT_ENOTFOUND:
		return VELD_ENOTFOUND;
	case GIT_EAUTH:
		return VELD_EAUTH;
	case GIT_ENONFASTFORWARD:
		return VELD_EDENIED;
	case GIT_EINVALIDSPEC:
		return VELD_EINVALID;
	case GIT_EEXISTS:
		return VELD_EEXISTS;
	case GIT_ELOCKED:
		return VELD_EBUSY;
	case GIT_EMISMATCH:
		return VELD_EINTEGRITY;
	default:
		break;
	}
	if (klass == GIT_ERROR_ZLIB || klass == GIT_ERROR_OBJECT || klass == GIT_ERROR_ODB)
		return VELD_EINTEGRITY;
	return VELD_ERROR;
}

int veld_git__fail(veld_err *err, int grc, int code, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	char what[256];
	va_list ap;
	int klass = e ? e->klass : GIT_ERROR_NONE;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (!code)
		code = map_code(grc, klass);
	if (e && e->message && e->message[0])
		return veld_err__set(err, code, "%s: %s", what, e->message);
	return veld_err__set(err, code, "%s (libgit2 error %d)", what, grc);
}

void veld_git__redact_url(char *out, size_t cap, const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *host = scheme ? scheme + 3 : url;
	const char *at = NULL, *p;
	for (p = host; *p && *p != '/'; p++)
		if (*p == '@')
			at = p;
	if (scheme && at)
		snprintf(out, cap, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, cap, "%s", url);
}

int veld_git__progress(const veld_remote_opts *opts, const char *stage, size_t done, size_t total,
                       const char *what, veld_err *err)
{
	if (!opts || !opts->progress || opts->progress(stage, done, total, opts->payload) == 0)
		return 0;
	return veld_err__set(err, VELD_ECANCELED, "%s: canceled by the caller", what);
}

/* What the server said about `ref`: the first line naming it other than
** receive-pack's own "hook declined to update <ref>", else the line just
** before that one (a hook that did not name the ref).  Into out, printable
** ASCII only. */
void veld_repo__remote_reason(char *out, size_t cap, const char *remote_text, const char *ref)
{
	const char *line = remote_text, *pick = NULL, *prev = NULL;
	size_t o = 0, len = 0;
	out[0] = '\0';
	while (*line && !pick) {
		size_t n = strcspn(line, "\r\n");
		char buf[1024];
		size_t m = n < sizeof buf ? n : sizeof buf - 1;
		memcpy(buf, line, m);
		buf[m] = '\0';
		if (strstr(buf, "hook declined")) {
			if (prev && !strstr(prev, ref))
				pick = prev, len = strcspn(prev, "\r\n");
		} else if (n && strstr(buf, ref)) {
			pick = line, len = n;
		}
		if (n)
			prev = line;
		line += n;
		line += strspn(line, "\r\n");
	}
	for (; pick && len && o + 1 < cap; pick++, len--)
		out[o++] = (*pick >= 0x20 && *pick < 0x7f) ? *pick : '?';
	out[o] = '\0';
}

/*
** http.c — pushing to a smart-HTTP hub without libgit2's transport.
**
** Why: libgit2's push packs by walking, and the walk marks the whole tree
** of every head the hub advertises before it packs the few new objects, so
** a push cost what the hub held (docs/benchmarks.md).  push_http.c finds the
** objects a change made from its own trees and packs them; this file only
** carries that pack, with git's receive-pack exchange over HTTP
** (gitprotocol-http, gitprotocol-pack):
**
**   GET  <url>/info/refs?service=git-receive-pack   the hub's refs
**   POST <url>/git-receive-pack                     "<old> <new> <ref>"
**                                                   lines, a flush, the pack
**
** and reads the hub's report (side-band-64k: band 1 the report-status
** lines, band 2 the hub's messages, "remote: ..." from hooks, band 3 a
** fatal error).  A ref the hub refuses ("ng <ref> <why>") is VELD_EDENIED
** with the hub's reason and the last of its messages, as a push through
** libgit2 said it.  Fetching stays with libgit2: there git upload-pack on
** the hub does the packing.
**
** HTTP is libcurl's: Basic authentication with the caller's credential
** callback, asked once before the first request (a hub asks for a login
** on every URL, so a refused first round trip is saved; a 401 is then
** VELD_EAUTH), no redirects (credentials go to the hub and nowhere else),
** TLS verified as libcurl does by default, and a hub silent for
** STALL_SECONDS is given up.  The password lives in
** sodium_malloc memory and is wiped when the session ends.  libcurl keeps
** process-wide state of its own (set up by the first curl_easy_init), as
** libgit2 does.
*/
#include "git.h"

#include <curl/curl.h>
#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRED_MAX     256
#define REPLY_MAX    (64u << 20) /* bytes of a reply kept */
#define REMOTE_TEXT  1024
/* A hub that sends nothing for this long has stalled: the request fails
** (VELD_ERROR) instead of waiting for ever (libcurl has no such limit by
** default).  Generous for a hub that runs its update hook before it answers. */
#define STALL_SECONDS 30L

struct veld_http {
	CURL *curl;
	char *base;                 /* the URL without a trailing '/' */
	char shown[512];            /* the URL without user-info, for messages */
	const veld_remote_opts *opts;
	char user[CRED_MAX];
	char *pass;                 /* sodium_malloc, CRED_MAX bytes */
	int have_creds;
	char remote_text[REMOTE_TEXT];
	size_t remote_len;
};

/* A reply: the bytes so far, and whether it outgrew REPLY_MAX. */
typedef struct buf {
	veld_buf b;
	int over;
} buf;

static int buf_add(buf *b, const void *p, size_t n)
{
	if (b->b.n + n > REPLY_MAX) {
		b->over = 1;
		return -1;
	}
	return veld_buf__add(&b->b, p, n);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return buf_add(ud, ptr, size * nmemb) ? 0 : size * nmemb;
}

/* The URL without "user:pass@", for messages; the user name as a hint. */
static void split_userinfo(char *shown, size_t scap, char *user, size_t ucap, const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *host = scheme ? scheme + 3 : url, *at = NULL, *p;
	user[0] = '\0';
	for (p = host; *p && *p != '/'; p++)
		if (*p == '@')
			at = p;
	if (!at) {
		snprintf(shown, scap, "%s", url);
		return;
	}
	snprintf(shown, scap, "%.*s%s", (int)(host - url), url, at + 1);
	for (p = host; p < at && *p != ':'; p++)
		;
	snprintf(user, ucap, "%.*s", (int)(p - host), host);
}

int veld_http__open(veld_http **out, const char *url, const veld_remote_opts *opts, veld_err *err)
{
	veld_http *h = calloc(1, sizeof *h);
	size_t n;
	*out = NULL;
	if (!h || !(h->pass = sodium_malloc(CRED_MAX)) || !(h->base = strdup(url))) {
		veld_http__free(h);
		return veld_err__set(err, VELD_ERROR, "out of memory");
	}
	h->pass[0] = '\0';
	n = strlen(h->base);
	while (n > 0 && h->base[n - 1] == '/')
		h->base[--n] = '\0';
	split_userinfo(h->shown, sizeof h->shown, h->user, sizeof h->user, url);
	h->opts = opts;
	if (!(h->curl = curl_easy_init())) {
		veld_http__free(h);
		return veld_err__set(err, VELD_ERROR, "cannot start an HTTP session");
	}
	*out = h;
	return VELD_OK;
}

void veld_http__free(veld_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	if (h->pass)
		sodium_free(h->pass); /* sodium_free wipes */
	sodium_memzero(h->user, sizeof h->user);
	free(h->base);
	free(h);
}

/* Ask the credential callback; 0 or VELD_EAUTH. */
static int ask_credentials(veld_http *h, veld_err *err)
{
	int crc;
	h->pass[0] = '\0';
	crc = h->opts->cred(h->user, sizeof h->user, h->pass, CRED_MAX, h->base, h->opts->payload);
	h->user[sizeof h->user - 1] = '\0';
	h->pass[CRED_MAX - 1] = '\0';
	if (crc != 0)
		return veld_err__set(err, VELD_EAUTH, "authentication failed for %s", h->shown);
	h->have_creds = 1;
	return 0;
}

/* One request.  A hub asks for a login on every URL (docs/hub.md), so the
** credentials are asked before the first request and sent with it: no
** refused round trip first.  A 401 then means they were refused. */
static int request(veld_http *h, const char *path, const void *body, size_t blen, const char *ctype,
                   const char *accept, buf *out, const char *what, veld_err *err)
{
	char url[4200], ct[128], ac[128];
	struct curl_slist *hdrs = NULL;
	long code = 0;
	CURLcode cc;
	if (!h->have_creds && h->opts && h->opts->cred && ask_credentials(h, err))
		return VELD_EAUTH;
	out->b.n = 0;
	out->over = 0;
	snprintf(url, sizeof url, "%s%s", h->base, path);
	curl_easy_reset(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "git/2.0 (veld)");
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, out);
	if (h->have_creds) {
		curl_easy_setopt(h->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h->curl, CURLOPT_USERNAME, h->user);
		curl_easy_setopt(h->curl, CURLOPT_PASSWORD, h->pass);
	}
	if (body) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
		snprintf(ac, sizeof ac, "Accept: %s", accept);
		hdrs = curl_slist_append(hdrs, ct);
		hdrs = curl_slist_append(hdrs, ac);
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
	}
	cc = curl_easy_perform(h->curl);
	curl_slist_free_all(hdrs);
	curl_easy_setopt(h->curl, CURLOPT_PASSWORD, "");
	if (cc != CURLE_OK)
		return veld_err__set(err, VELD_ERROR, "%s %s: %s", what, h->shown,
		                     out->over ? "the reply is too large" : curl_easy_strerror(cc));
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401)
		return veld_err__set(err, VELD_EAUTH, "authentication failed for %s", h->shown);
	if (code != 200)
		return veld_err__set(err, code == 403 ? VELD_EDENIED : VELD_ERROR, "%s %s: HTTP status %ld", what,
		                     h->shown, code);
	return VELD_OK;
}

/* The next pkt-line of b from *at: 1 and its payload (flush: len 0), 0 at
** the end, -1 when malformed. */
static int pkt_next(const veld_buf *b, size_t *at, const unsigned char **p, size_t *len)
{
	char hex[5];
	unsigned long n;
	char *end;
	if (*at == b->n)
		return 0;
	if (b->n - *at < 4)
		return -1;
	memcpy(hex, b->p + *at, 4);
	hex[4] = '\0';
	n = strtoul(hex, &end, 16);
	if (*end || (n != 0 && n < 4) || n > b->n - *at)
		return -1;
	*p = b->p + *at + 4;
	*len = n ? n - 4 : 0;
	*at += n ? n : 4;
	return 1;
}

int veld_http__refs(veld_http *h, veld_http_ref_cb cb, void *payload, veld_err *err)
{
	buf b = {0};
	size_t at = 0, len;
	const unsigned char *p;
	int r, rc, header = 1, ended = 0;
	rc = request(h, "/info/refs?service=git-receive-pack", NULL, 0, NULL, NULL, &b, "push to", err);
	while (rc == VELD_OK && (r = pkt_next(&b.b, &at, &p, &len)) == 1) {
		char name[512];
		size_t nl;
		if (header) {
			/* "# service=git-receive-pack" and its flush */
			if (len && p[0] == '#')
				continue;
			header = 0;
			if (len == 0)
				continue;
		}
		if (len == 0) {
			ended = 1; /* the end of the list */
			break;
		}
		if (len < 42 || !veld_hex__is((const char *)p, 40) || p[40] != ' ') {
			rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub's ref list is malformed", h->shown);
			break;
		}
		for (nl = 41; nl < len && p[nl] != '\0' && p[nl] != '\n'; nl++)
			;
		if (nl - 41 >= sizeof name) {
			rc = veld_err__set(err, VELD_ERROR, "push to %s: a ref name is too long", h->shown);
			break;
		}
		memcpy(name, p + 41, nl - 41);
		name[nl - 41] = '\0';
		if (strcmp(name, "capabilities^{}") != 0) {
			char hex[41];
			memcpy(hex, p, 40);
			hex[40] = '\0';
			if (cb(name, hex, payload)) {
				rc = VELD_ERROR;
				break;
			}
		}
	}
	/* A list cut short (a connection closed early) would leave out refs the
	** hub has, and the push would try to create them. */
	if (rc == VELD_OK && (r < 0 || !ended))
		rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub's ref list is %s", h->shown,
		                   r < 0 ? "malformed" : "cut short");
	free(b.b.p);
	return rc;
}

static void remote_add(veld_http *h, const unsigned char *p, size_t n)
{
	if (n >= sizeof h->remote_text) {
		p += n - (sizeof h->remote_text - 1);
		n = sizeof h->remote_text - 1;
	}
	if (h->remote_len + n >= sizeof h->remote_text) {
		size_t drop = h->remote_len + n - (sizeof h->remote_text - 1);
		memmove(h->remote_text, h->remote_text + drop, h->remote_len - drop);
		h->remote_len -= drop;
	}
	memcpy(h->remote_text + h->remote_len, p, n);
	h->remote_len += n;
	h->remote_text[h->remote_len] = '\0';
}

int veld_http__push(veld_http *h, const veld_http_update *u, size_t n, const void *pack, size_t plen,
                    veld_err *err)
{
	buf req = {0}, rep = {0}, status = {0};
	size_t i, at = 0, len;
	const unsigned char *p;
	char line[700], refused[512] = "", why[512] = "";
	int r, rc = VELD_OK, unpack_ok = 0, n_ng = 0, ended = 0;
	for (i = 0; i < n && rc == VELD_OK; i++) {
		static const char caps[] = "report-status side-band-64k agent=veld";
		char hex[5];
		int m = snprintf(line + 4, sizeof line - 4, "%s %s %s", u[i].old_hex, u[i].new_hex, u[i].name);
		size_t k = m < 0 ? sizeof line : (size_t)m + 4;
		if (k + sizeof caps + 2 >= sizeof line) {
			rc = veld_err__set(err, VELD_EINVALID, "push to %s: a ref name is too long", h->shown);
			break;
		}
		if (i == 0) {
			/* the capabilities follow a NUL on the first line */
			line[k++] = '\0';
			memcpy(line + k, caps, sizeof caps - 1);
			k += sizeof caps - 1;
		}
		line[k++] = '\n';
		snprintf(hex, sizeof hex, "%04x", (unsigned)k);
		memcpy(line, hex, 4);
		if (buf_add(&req, line, k))
			rc = veld_err__set(err, VELD_ERROR, "out of memory");
	}
	if (rc == VELD_OK && (buf_add(&req, "0000", 4) || buf_add(&req, pack, plen)))
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
	if (rc == VELD_OK)
		rc = request(h, "/git-receive-pack", req.b.p, req.b.n, "application/x-git-receive-pack-request",
		             "application/x-git-receive-pack-result", &rep, "push to", err);
	/* side-band-64k: band 1 the report, 2 the hub's messages, 3 fatal */
	while (rc == VELD_OK && (r = pkt_next(&rep.b, &at, &p, &len)) == 1) {
		if (len == 0) {
			ended = 1;
			break;
		}
		if (p[0] == 1) {
			if (buf_add(&status, p + 1, len - 1))
				rc = veld_err__set(err, VELD_ERROR, "out of memory");
		} else if (p[0] == 2) {
			remote_add(h, p + 1, len - 1);
		} else if (p[0] == 3) {
			rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub failed: %.*s", h->shown,
			                   (int)(len - 1 > 300 ? 300 : len - 1), p + 1);
		}
	}
	/* Cut short, the report may lack the refs the hub refused. */
	if (rc == VELD_OK && !ended)
		rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub's report is cut short", h->shown);
	at = 0;
	while (rc == VELD_OK && (r = pkt_next(&status.b, &at, &p, &len)) == 1 && len > 0) {
		size_t l = len;
		while (l > 0 && p[l - 1] == '\n')
			l--;
		if (l == 9 && !memcmp(p, "unpack ok", 9)) {
			unpack_ok = 1;
		} else if (l > 7 && !memcmp(p, "unpack ", 7)) {
			rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub could not unpack: %.*s", h->shown,
			                   (int)(l - 7 > 200 ? 200 : l - 7), p + 7);
		} else if (l > 3 && !memcmp(p, "ng ", 3)) {
			const unsigned char *sp = memchr(p + 3, ' ', l - 3);
			size_t rl = sp ? (size_t)(sp - (p + 3)) : l - 3;
			if (n_ng++ == 0) {
				snprintf(refused, sizeof refused, "%.*s", (int)rl, p + 3);
				snprintf(why, sizeof why, "%.*s", sp ? (int)(l - (size_t)(sp + 1 - p)) : 0, sp ? sp + 1 : p);
			}
		}
	}
	if (rc == VELD_OK && n_ng) {
		char said[300], more[48] = "";
		veld_repo__remote_reason(said, sizeof said, h->remote_text, refused);
		if (n_ng > 1)
			snprintf(more, sizeof more, " (and %d more refs)", n_ng - 1);
		rc = veld_err__set(err, VELD_EDENIED, "push of %s to %s refused by the server: %s%s%s%s%s", refused, h->shown,
		                   why, said[0] ? " (" : "", said, said[0] ? ")" : "", more);
	} else if (rc == VELD_OK && !unpack_ok) {
		rc = veld_err__set(err, VELD_ERROR, "push to %s: the hub sent no report", h->shown);
	}
	free(req.b.p);
	free(rep.b.p);
	free(status.b.p);
	return rc;
}

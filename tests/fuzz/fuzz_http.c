/*
** fuzz_http.c — what a smart-HTTP hub replies to a push (sync/git/http.c):
** the advertised ref list (pkt-lines) and receive-pack's report-status,
** carried in side-band-64k, with the hub's messages.
**
** The hub here is the input.  This file defines the few libcurl calls
** http.c makes, so the linker binds http.c to them instead of libcurl's:
** a transfer hands the input to http.c's write callback and answers
** HTTP 200, with no network.  The input is read both as the reply to the
** ref list and as the reply to a push of one ref; either must end in a
** documented code with a message, or in success.
*/
#define CURL_DISABLE_TYPECHECK
#include "fuzz.h"
#include "git/git.h"

#include <curl/curl.h>
#include <sodium.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The one transfer: where the reply goes, and the reply. */
typedef struct fake_curl {
	curl_write_callback write;
	void *write_data;
	const uint8_t *reply;
	size_t reply_len;
} fake_curl;

static fake_curl fake;

CURL *curl_easy_init(void)
{
	return &fake;
}

void curl_easy_cleanup(CURL *c)
{
	(void)c;
}

void curl_easy_reset(CURL *c)
{
	fake_curl *f = c;
	f->write = NULL;
	f->write_data = NULL;
}

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	fake_curl *f = c;
	va_list ap;
	va_start(ap, opt);
	if (opt == CURLOPT_WRITEFUNCTION)
		f->write = va_arg(ap, curl_write_callback);
	else if (opt == CURLOPT_WRITEDATA)
		f->write_data = va_arg(ap, void *);
	va_end(ap);
	return CURLE_OK;
}

/* The reply in pieces of up to 1000 bytes, as a transfer delivers it. */
CURLcode curl_easy_perform(CURL *c)
{
	fake_curl *f = c;
	size_t at = 0;
	while (at < f->reply_len) {
		size_t n = f->reply_len - at < 1000 ? f->reply_len - at : 1000;
		if (f->write((char *)(uintptr_t)(f->reply + at), 1, n, f->write_data) != n)
			return CURLE_WRITE_ERROR;
		at += n;
	}
	return CURLE_OK;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	va_list ap;
	(void)c;
	va_start(ap, info);
	if (info == CURLINFO_RESPONSE_CODE)
		*va_arg(ap, long *) = 200;
	va_end(ap);
	return CURLE_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return sodium_init() < 0 ? -1 : 0;
}

static int count_ref(const char *name, const char *hex, void *payload)
{
	VELD_FUZZ_CHECK(strlen(hex) == 40 && veld_hex__is(hex, 40) && strlen(name) < 512);
	++*(int *)payload;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pack[] = "PACK\0\0\0\2\0\0\0\0";
	veld_http_update u = {"refs/veld/devices/0123456789abcdef0123456789abcdef",
	                      "0000000000000000000000000000000000000000",
	                      "1111111111111111111111111111111111111111"};
	veld_http *h = NULL;
	veld_err err;
	int rc, refs = 0;
	fake.reply = data;
	fake.reply_len = size;
	VELD_FUZZ_CHECK(veld_http__open(&h, "http://hub.invalid/veld.git", NULL, &err) == VELD_OK);
	err.msg[0] = '\0';
	rc = veld_http__refs(h, count_ref, &refs, &err);
	VELD_FUZZ_CHECK(rc == VELD_OK || (rc == VELD_ERROR && err.msg[0]));
	err.msg[0] = '\0';
	rc = veld_http__push(h, &u, 1, pack, sizeof pack - 1, &err);
	VELD_FUZZ_CHECK(rc == VELD_OK || ((rc == VELD_ERROR || rc == VELD_EDENIED) && err.msg[0]));
	veld_http__free(h);
	return 0;
}

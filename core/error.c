/*
** error.c — the per-handle error state (the sqlite3_errmsg style).
**
** A failure sets a code and a one-line message on the handle's veld_err; the
** message names what failed and why, never personal data or secrets.
** Also the growing byte buffer of the layers above (veld_buf), whose only
** failure is running out of memory.
*/
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int veld_err__set(veld_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	if (!err)
		return code;
	char buf[sizeof err->msg];
	err->code = code;
	/* Formatted aside first: an argument may be err->msg itself (a caller
	** adding context to the error it holds), which vsnprintf must not be
	** given as both source and destination. */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	memcpy(err->msg, buf, sizeof buf);
	return code;
}

int veld_err__oom(veld_err *err)
{
	return veld_err__set(err, VELD_ERROR, "out of memory");
}

int veld_err__json_oom(veld_err *err, const json_error_t *e)
{
	/* jansson leaves the error empty when memory ran out before it could
	** say anything (its lexer's buffer); every parse error has a text. */
	return json_error_code(e) == json_error_out_of_memory || !e->text[0] ? veld_err__oom(err) : 0;
}

void veld_err__clear(veld_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

int veld_buf__room(veld_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	unsigned char *p;
	if (more <= b->cap - b->n)
		return 0;
	while (cap - b->n < more)
		cap *= 2;
	if (!(p = realloc(b->p, cap)))
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int veld_buf__add(veld_buf *b, const void *p, size_t n)
{
	if (veld_buf__room(b, n))
		return -1;
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

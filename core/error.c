/*
** error.c — the per-handle error state (the sqlite3_errmsg style).
**
** A failure sets a code and a one-line message on the handle's veld_err; the
** message names what failed and why, never personal data or secrets.
*/
#include "core.h"

#include <stdarg.h>
#include <stdio.h>

int veld_err__set(veld_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

void veld_err__clear(veld_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

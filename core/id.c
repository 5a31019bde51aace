/*
** id.c — the one definition of what an id, a form name and a date look
** like.
**
** Every layer checks the same strings: record, case and device ids (32
** lowercase hex digits, 16 random bytes), git object ids (40), signatures
** in registry entries (128), and form names.  The writer and the verifier
** call these functions, so the rules cannot drift apart.
**
**   form names   [a-z0-9_]{1,64}, not starting with '_': names starting
**                with '_' are the store's own (VELD_CASE_FORM, "_case", is
**                the form of a case's header record).
*/
#include "core.h"

#include <string.h>

int veld_hex__is(const char *s, size_t n)
{
	size_t i;
	if (!s)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int veld_id__is(const char *s)
{
	return s && strnlen(s, VELD_IDSIZE) == VELD_IDSIZE - 1 && veld_hex__is(s, VELD_IDSIZE - 1);
}

int veld_name__is_form(const char *s)
{
	size_t n = s ? strnlen(s, VELD_FORM_NAME_MAX + 1) : 0;
	if (n == 0 || n > VELD_FORM_NAME_MAX || s[0] == '_')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int veld_date__is(const char *s, size_t n)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	long y, m, d;
	size_t i;
	if (!s || n != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !(s[i] >= '0' && s[i] <= '9'))
			return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1000 || m < 1 || m > 12 || d < 1)
		return 0;
	return d <= (m == 2 && leap(y) ? 29 : mdays[m - 1]);
}

/*
** region.c — postcode regions of enrolled devices ("1500-1999,3000-3499").
**
** Cases are routed to social workers by the postcode of the client's home;
** a device's enrolment carries the ranges it serves.  Belgian postcodes are
** four digits, 1000–9999.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

static int parse_pc(const char **p, int *out)
{
	int v = 0, n = 0;
	while (**p >= '0' && **p <= '9' && n < 5) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	if (n != 4 || v < 1000)
		return -1;
	*out = v;
	return 0;
}

int veld_region__parse(veld_range *ranges, int max, int *n, const char *text, veld_err *err)
{
	const char *p = text ? text : "";
	*n = 0;
	if (!*p)
		return veld_err__set(err, VELD_EINVALID, "region is empty: give postcode ranges like 1500-1999,3000-3499");
	for (;;) {
		veld_range r;
		while (*p == ' ')
			p++;
		if (parse_pc(&p, &r.lo))
			return veld_err__set(err, VELD_EINVALID, "region: range %d does not start with a 4-digit postcode", *n + 1);
		r.hi = r.lo;
		if (*p == '-') {
			p++;
			if (parse_pc(&p, &r.hi))
				return veld_err__set(err, VELD_EINVALID, "region: range %d does not end with a 4-digit postcode", *n + 1);
		}
		if (r.hi < r.lo)
			return veld_err__set(err, VELD_EINVALID, "region: range %d-%d is reversed", r.lo, r.hi);
		if (*n >= max)
			return veld_err__set(err, VELD_EINVALID, "region: more than %d ranges", max);
		ranges[(*n)++] = r;
		while (*p == ' ')
			p++;
		if (!*p)
			return 0;
		if (*p != ',')
			return veld_err__set(err, VELD_EINVALID, "region: unexpected character after range %d", *n);
		p++;
	}
}

int veld_region__contains(const veld_range *ranges, int n, int postcode)
{
	int i;
	for (i = 0; i < n; i++)
		if (postcode >= ranges[i].lo && postcode <= ranges[i].hi)
			return 1;
	return 0;
}

/*
** form.c — the form engine (being written).
*/
#include "scripts.h"

int veld_form__shipped(size_t i, const char **name, const char **source, size_t *len)
{
	size_t n = 0;
	while (veld_embedded__forms[n].name)
		n++;
	if (i >= n)
		return 0;
	*name = veld_embedded__forms[i].name;
	*source = (const char *)veld_embedded__forms[i].src;
	*len = veld_embedded__forms[i].len;
	return 1;
}

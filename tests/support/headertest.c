/* The public header must compile alone under -std=c11 -pedantic -Werror. */
#include "veld.h"

int main(void)
{
	veld_store_options o;
	(void)o;
	return VELD_OK;
}

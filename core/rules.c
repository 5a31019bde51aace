/*
** rules.c — who may write what: the one rule, applied twice.
**
** A device applies it when it makes a change (every local write goes
** through cases.c's write_record), and every verifier applies it again
** when the change arrives through sync (sync/verify.c).  Both call
** veld_rules__check, so a device never stores a change the office would
** refuse, and the two sides cannot drift apart.
**
** The rule, by the writer's role:
**   office     writes anything; it alone writes a case's contact part
**              (contact.c), which follows the header.
**   assistant  writes every compartment it holds keys for; every case
**              header it writes (a new case, a new postcode, a phone number
**              or a consent alike) must have a postcode inside the
**              assistant's region: a case that moved out of it is no
**              longer its to describe.
**   volunteer  writes records of the huiswijs compartment only, and never
**              a case header.
** What the rule cannot see it does not judge: a verifier that cannot open
** a blob (it lacks the key) leaves it to those who can, and a device that
** has not received its own enrolment yet does not know its region.
**
** Must not: read the store.  The callers gather the facts (the writer's
** role and region from the registry, the record's form, compartment and
** postcode); this file only decides, and says why in words that name
** forms, compartments, ids and postcodes, never a client's data.
*/
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_header(const veld_change *c)
{
	return c->case_id && c->record_id && !strcmp(c->case_id, c->record_id);
}

/* A postcode as a number: four digits, else 0. */
static int postcode_value(const char *pc)
{
	if (!pc || strlen(pc) != 4 || strspn(pc, "0123456789") != 4)
		return 0;
	return atoi(pc);
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int refuse(const char **code, const char *what, char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (code)
		*code = what;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return VELD_EDENIED;
}

static int check_volunteer(const char **code, char *why, size_t cap, const veld_change *c)
{
	if (is_header(c))
		return refuse(code, VELD_RULE_HEADER, why, cap, "a volunteer cannot write the header of case %s", c->case_id);
	if (c->compartment && *c->compartment && strcmp(c->compartment, "huiswijs"))
		return refuse(code, VELD_RULE_ROLE, why, cap, "a volunteer cannot write %s (compartment %s)",
		              c->form && *c->form ? c->form : c->record_id, c->compartment);
	return 0;
}

static int check_assistant(const char **code, char *why, size_t cap, const veld_writer *w, const veld_change *c)
{
	int pc;
	if (!is_header(c) || !c->readable || w->n_ranges < 0)
		return 0;
	pc = postcode_value(c->postcode);
	if (pc && veld_region__contains(w->ranges, w->n_ranges, pc))
		return 0;
	if (!pc)
		return refuse(code, VELD_RULE_POSTCODE, why, cap, "case %s has no valid postcode", c->case_id);
	if (w->region && *w->region)
		return refuse(code, VELD_RULE_REGION, why, cap, "postcode %s is outside the region %s of %s", c->postcode, w->region,
		              w->who ? w->who : "this device");
	return refuse(code, VELD_RULE_REGION, why, cap, "postcode %s of case %s is outside the region of %s", c->postcode, c->case_id,
	              w->who ? w->who : "this device");
}

int veld_rules__check(const char **code, char *why, size_t cap, const veld_writer *w, const veld_change *c)
{
	if (code)
		*code = NULL;
	if (!w->role || !strcmp(w->role, "office"))
		return 0;
	if (c->form && !strcmp(c->form, VELD_CONTACT_FORM))
		return refuse(code, VELD_RULE_HEADER, why, cap, "the contact part of case %s is written by the office only",
		              c->case_id);
	if (!strcmp(w->role, "volunteer"))
		return check_volunteer(code, why, cap, c);
	if (!strcmp(w->role, "assistant"))
		return check_assistant(code, why, cap, w, c);
	return refuse(code, VELD_RULE_ROLE, why, cap, "role %.20s may not write", w->role);
}

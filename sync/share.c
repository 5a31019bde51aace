/*
** share.c — consent and sharing of a case's compartments.
**
** veld_case_consent records the client's consent for a scope in the case
** header (the fields "toestemming.<scope>", today's date, and
** "toestemming_door.<scope>", this device; veld_case_consent_ext also
** "toestemming_tot.<scope>", the last day it holds, and
** "toestemming_notitie.<scope>", a note), which merges like any record;
** veld_case_consent_withdraw sets "toestemming_ingetrokken.<scope>".
** Whether a consent holds today is veld_sync__consent, which the share
** here and the office's check of who may keep a key (rotate.c) both ask.
** veld_case_share then gives one device the key of that compartment: a row
** of key_shares, sealed to the device in the keys ref at the next sync
** (keys.c, commit.c).  Volunteers may hold only "huiswijs".
** veld_case_unshare sets "toegang_ingetrokken.<device>".  The office reads
** these fields when it decides who keeps a case's keys (rotate.c).
** Must not: share without recorded consent, or after it was withdrawn.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static int valid_scope(const char *scope)
{
	return scope && (!strcmp(scope, "social") || !strcmp(scope, "huiswijs"));
}

void veld_sync__today(char *date, size_t cap, veld_store *s)
{
	time_t now = (time_t)(veld_store__os(s)->xClockMs(veld_store__os(s)->ctx) / 1000);
	struct tm tmv;
	strftime(date, cap, "%Y-%m-%d", gmtime_r(&now, &tmv));
}

static const json_t *header_field(const veld_record *h, const char *prefix, const char *scope)
{
	char field[96];
	size_t n;
	snprintf(field, sizeof field, "%s.%s", prefix, scope);
	return h ? veld_record__value(h, field, &n) : NULL;
}

int veld_sync__consent(const veld_record *h, const char *scope, const char *today)
{
	const json_t *until = header_field(h, "toestemming_tot", scope);
	if (!json_is_string(header_field(h, "toestemming", scope)))
		return VELD_CONSENT_NONE;
	if (json_is_string(header_field(h, "toestemming_ingetrokken", scope)))
		return VELD_CONSENT_WITHDRAWN;
	if (json_is_string(until) && strcmp(json_string_value(until), today) < 0)
		return VELD_CONSENT_EXPIRED;
	return VELD_CONSENT_ACTIVE;
}

int veld_case_consent_ext(veld_store *s, const char *case_id, const char *scope, const char *until, const char *note)
{
	static const char *const prefix[] = {"toestemming", "toestemming_door", "toestemming_tot", "toestemming_notitie",
	                                     "toestemming_ingetrokken"};
	char date[16], field[5][64], *txt = NULL;
	json_t *f;
	int rc, i;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!valid_scope(scope))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "scope must be social or huiswijs");
	veld_sync__today(date, sizeof date, s);
	for (i = 0; i < 5; i++)
		snprintf(field[i], sizeof field[i], "%s.%s", prefix[i], scope);
	/* The consent lives in the case header, which merges like any record;
	** the header's own check judges the end date and the note. */
	f = json_pack("{s:s, s:s, s:o, s:o, s:n}", field[0], date, field[1], veld_store__device_id(s), field[2],
	              until ? json_string(until) : json_null(), field[3], note ? json_string(note) : json_null(),
	              field[4]);
	if (!f)
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "consent: the end date and the note must be UTF-8 text");
	if (!(txt = json_dumps(f, JSON_COMPACT)))
		rc = veld_err__oom(veld_store__err(s));
	else
		rc = veld_case_update(s, case_id, txt);
	free(txt);
	json_decref(f);
	return rc;
}

int veld_case_consent(veld_store *s, const char *case_id, const char *scope)
{
	return veld_case_consent_ext(s, case_id, scope, NULL, NULL);
}

/* Set `field` to today in the case header.  The shares stay in this
** store's keys ref: they tell the office who held the case's keys, which
** it rotates away from them (rotate.c). */
static int take_back(veld_store *s, const char *case_id, const char *field)
{
	char date[16], fields[160];
	veld_sync__today(date, sizeof date, s);
	snprintf(fields, sizeof fields, "{\"%s\":\"%s\"}", field, date);
	return veld_case_update(s, case_id, fields);
}

int veld_case_consent_withdraw(veld_store *s, const char *case_id, const char *scope)
{
	char field[64];
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!valid_scope(scope))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "scope must be social or huiswijs");
	snprintf(field, sizeof field, "toestemming_ingetrokken.%s", scope);
	return take_back(s, case_id, field);
}

int veld_case_unshare(veld_store *s, const char *case_id, const char *device_id, const char *scope)
{
	char field[64], role[32];
	int rc, n = 0;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!valid_scope(scope))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "scope must be social or huiswijs");
	if (!device_id || !veld_id__is(device_id) || veld_state__device_role(role, sizeof role, NULL, &n, s, device_id))
		return veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no enrolled device %.40s",
		                     device_id ? device_id : "(none)");
	snprintf(field, sizeof field, "toegang_ingetrokken.%s", device_id);
	return take_back(s, case_id, field);
}

/* VELD_EDENIED unless case `case_id` has consent for `scope` and the
** device may hold it. */
static int may_share(veld_syncctx *c, const char *case_id, const char *device_id, const char *scope)
{
	veld_record *h = NULL;
	char role[32], field[64], date[16];
	size_t n_live = 0;
	int n = 0, rc = 0, consent;
	if (!valid_scope(scope))
		return veld_err__set(c->err, VELD_EINVALID, "scope must be social or huiswijs");
	if (veld_store__record_load(&h, c->s, case_id ? case_id : "") || strcmp(veld_record__form(h), VELD_CASE_FORM)) {
		rc = veld_err__set(c->err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
		goto done;
	}
	veld_sync__today(date, sizeof date, c->s);
	consent = veld_sync__consent(h, scope, date);
	if (consent == VELD_CONSENT_NONE)
		rc = veld_err__set(c->err, VELD_EDENIED, "case %s has no recorded consent for %s: run `veld case consent` first",
		                   case_id, scope);
	else if (consent == VELD_CONSENT_WITHDRAWN)
		rc = veld_err__set(c->err, VELD_EDENIED, "the consent for %s of case %s was withdrawn", scope, case_id);
	else if (consent == VELD_CONSENT_EXPIRED)
		rc = veld_err__set(c->err, VELD_EDENIED, "the consent for %s of case %s has ended", scope, case_id);
	else if (device_id && snprintf(field, sizeof field, "toegang_ingetrokken.%.40s", device_id) > 0 &&
	         (json_is_string(veld_record__value(h, field, &n_live)) ||
	          veld_state__access_lost_has(c->s, device_id, case_id)))
		rc = veld_err__set(c->err, VELD_EDENIED,
		                   "the share of case %s with device %s was taken back; sharing it again is not supported yet",
		                   case_id, device_id);
	else if (veld_state__device_role(role, sizeof role, NULL, &n, c->s, device_id ? device_id : ""))
		rc = veld_err__set(c->err, VELD_ENOTFOUND, "no enrolled device %s", device_id ? device_id : "(none)");
	else if (!strcmp(role, "volunteer") && strcmp(scope, "huiswijs"))
		rc = veld_err__set(c->err, VELD_EDENIED, "a volunteer may only hold the huiswijs compartment");
done:
	veld_record__free(h);
	return rc;
}

int veld_case_share(veld_store *s, const char *case_id, const char *device_id, const char *scope)
{
	veld_syncctx c;
	char key_hex[2 * VELD_KEYIDBYTES + 1];
	unsigned char *key = NULL, key_id[VELD_KEYIDBYTES];
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)) || (rc = may_share(&c, case_id, device_id, scope)))
		goto done;
	if (!(key = sodium_malloc(VELD_KEYBYTES))) {
		rc = veld_err__set(c.err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_sync__ensure_key(&c, case_id, scope, key, key_id);
	if (!rc) {
		sodium_bin2hex(key_hex, sizeof key_hex, key_id, VELD_KEYIDBYTES);
		rc = veld_sync__add_share(&c, key_hex, device_id);
	}
	if (!rc)
		rc = veld_store__audit(s, "share", case_id, NULL);
	rc = veld_store__finish(s, rc);
done:
	sodium_free(key);
	veld_sync__ctx_free(&c);
	return rc;
}

/*
** share.c — consent and sharing of a case's compartments.
**
** veld_case_consent records the client's consent for a scope in the case
** header (the field "toestemming.<scope>", today's date), which merges like
** any record.  veld_case_share then gives one device the key of that
** compartment: a row of key_shares, sealed to the device in the keys ref at
** the next sync (keys.c, commit.c).  Volunteers may hold only "huiswijs".
** Must not: share without recorded consent.
*/
#include "sync.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static int valid_scope(const char *scope)
{
	return scope && (!strcmp(scope, "social") || !strcmp(scope, "huiswijs"));
}

int veld_case_consent(veld_store *s, const char *case_id, const char *scope)
{
	char field[64], date[16], fields[128];
	time_t now;
	struct tm tmv;
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!valid_scope(scope))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "scope must be social or huiswijs");
	now = (time_t)(veld_store__os(s)->xClockMs(veld_store__os(s)->ctx) / 1000);
	strftime(date, sizeof date, "%Y-%m-%d", gmtime_r(&now, &tmv));
	snprintf(field, sizeof field, "toestemming.%s", scope);
	snprintf(fields, sizeof fields, "{\"%s\":\"%s\"}", field, date);
	/* The consent lives in the case header, which merges like any record. */
	return veld_case_update(s, case_id, fields);
}

/* VELD_EDENIED unless case `case_id` has consent for `scope` and the
** device may hold it. */
static int may_share(veld_syncctx *c, const char *case_id, const char *device_id, const char *scope)
{
	veld_record *h = NULL;
	char role[32], field[64];
	const json_t *v;
	size_t n_live = 0;
	int n = 0, rc = 0;
	if (!valid_scope(scope))
		return veld_err__set(c->err, VELD_EINVALID, "scope must be social or huiswijs");
	if (veld_store__record_load(&h, c->s, case_id ? case_id : "") || strcmp(veld_record__form(h), VELD_CASE_FORM)) {
		rc = veld_err__set(c->err, VELD_ENOTFOUND, "no case %s", case_id ? case_id : "(none)");
		goto done;
	}
	snprintf(field, sizeof field, "toestemming.%s", scope);
	v = veld_record__value(h, field, &n_live);
	if (!json_is_string(v))
		rc = veld_err__set(c->err, VELD_EDENIED, "case %s has no recorded consent for %s: run `veld case consent` first",
		                   case_id, scope);
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

/*
** access.c — veld_case_access_json: who holds a key of a case, and why
** (docs/sync.md, "Key epochs").
**
** The office answers from what it can see (holders.c): its own shares and
** the paths of every keys ref it fetched, plus itself.  For each device and
** compartment: how many of the case's keys it holds, whether it holds the
** newest epoch, and why it may: "office", "region" (an assistant whose
** region holds the case's postcode: keys.c's veld_sync__region_holds),
** "taken back" (the office took the case from it: a share taken back, a
** consent withdrawn, a move to another region; it holds no newer key), or
** "share" (anyone else: a volunteer's share, with the consent the case
** header records for that scope).  A revoked device is listed with what it
** held.  Reads only.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct accessctx {
	veld_syncctx *c;
	const char *case_id;
	json_t *holders; /* key id -> {device: true} */
	json_t *by;      /* "device compartment" -> entry */
	veld_record *header;
	int rc;
} accessctx;

/* Why `device` may hold a key of the case. */
static const char *why_of(accessctx *a, const char *device, const char *role, const char *region)
{
	if (veld_sync__region_holds(role, region, veld_sync__case_postcode(a->c->s, a->case_id)))
		return strcmp(role, "office") ? "region" : "office";
	if (veld_state__access_lost_has(a->c->s, device, a->case_id))
		return "taken back";
	return "share";
}

static int add_holder(accessctx *a, const char *device, const char *compartment, int newest)
{
	char k[VELD_IDSIZE + 40], name[128], role[32], region[128];
	int revoked = 0;
	json_t *e;
	snprintf(k, sizeof k, "%s %s", device, compartment);
	if ((e = json_object_get(a->by, k))) {
		json_object_set_new(e, "keys", json_integer(json_integer_value(json_object_get(e, "keys")) + 1));
		if (newest)
			json_object_set_new(e, "newest", json_true());
		return 0;
	}
	if (veld_state__device_info(name, sizeof name, role, sizeof role, region, sizeof region, &revoked, a->c->s,
	                            device)) {
		veld_err__clear(a->c->err);
		snprintf(name, sizeof name, "%s", "");
		snprintf(role, sizeof role, "%s", "unknown");
		region[0] = '\0';
	}
	e = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:b}", "device", device, "name", name, "role", role,
	              "compartment", compartment, "keys", 1, "newest", newest, "why", why_of(a, device, role, region),
	              "revoked", revoked);
	if (e && !strcmp(json_string_value(json_object_get(e, "why")), "share")) {
		char field[64];
		size_t n;
		const json_t *v;
		snprintf(field, sizeof field, "toestemming.%s", compartment);
		v = a->header ? veld_record__value(a->header, field, &n) : NULL;
		json_object_set_new(e, "consent", v ? json_deep_copy(v) : json_null());
	}
	return e && json_object_set_new(a->by, k, e) == 0 ? 0 : veld_err__set(a->c->err, VELD_ERROR, "out of memory");
}

static int each_key(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	accessctx *a = payload;
	json_t *set = json_object_get(a->holders, key_hex), *v;
	char cid[VELD_IDSIZE], comp[32];
	const char *who;
	int newest = 0, rc;
	(void)case_id;
	if (veld_state__key_of(cid, comp, sizeof comp, &newest, a->c->s, key_hex))
		return veld_err__set(a->c->err, VELD_ERROR, "case key %s vanished", key_hex);
	if ((rc = add_holder(a, a->c->me, compartment, newest)))
		return rc;
	json_object_foreach(set, who, v)
	{
		if (strcmp(who, a->c->me) && (rc = add_holder(a, who, compartment, newest)))
			return rc;
	}
	return 0;
}

static int by_device(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	int r = strcmp(json_string_value(json_object_get(a, "compartment")),
	               json_string_value(json_object_get(b, "compartment")));
	return r ? r : strcmp(json_string_value(json_object_get(a, "device")), json_string_value(json_object_get(b, "device")));
}

int veld_case_access_json(char **out, veld_store *s, const char *case_id)
{
	veld_syncctx c;
	accessctx a;
	json_t *list = NULL, **v = NULL, *e;
	const char *k;
	size_t i = 0, n;
	int rc;
	if (out)
		*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!out || !case_id || !veld_id__is(case_id))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "case access: a case id is 32 hex digits");
	memset(&a, 0, sizeof a);
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 0)))
		goto done;
	if (!c.office) {
		rc = veld_err__set(c.err, VELD_EDENIED, "case access: only the office sees who holds a case's keys");
		goto done;
	}
	if (veld_state__case_key_epoch(s, case_id, "social") < 0 && veld_state__case_key_epoch(s, case_id, "huiswijs") < 0) {
		rc = veld_err__set(c.err, VELD_ENOTFOUND, "no case %s", case_id);
		goto done;
	}
	a.c = &c;
	a.case_id = case_id;
	if (veld_store__record_load(&a.header, s, case_id))
		veld_err__clear(c.err);
	if (!(a.by = json_object()) || (rc = veld_sync__holders(&a.holders, &c)) ||
	    (rc = veld_state__case_keys_each(s, case_id, each_key, &a)))
		goto done;
	n = json_object_size(a.by);
	if (!(v = calloc(n ? n : 1, sizeof *v)) || !(list = json_array())) {
		rc = veld_err__set(c.err, VELD_ERROR, "out of memory");
		goto done;
	}
	json_object_foreach(a.by, k, e) v[i++] = e;
	qsort(v, n, sizeof *v, by_device);
	for (i = 0; i < n; i++)
		json_array_append(list, v[i]);
	rc = veld_store__json_out(out, s, list);
	list = NULL;
done:
	free(v);
	json_decref(list);
	json_decref(a.by);
	json_decref(a.holders);
	veld_record__free(a.header);
	veld_sync__ctx_free(&c);
	return rc;
}

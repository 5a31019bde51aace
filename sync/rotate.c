/*
** rotate.c — key epochs: the office takes a case's keys away from a device
** that may no longer read it (docs/sync.md, "Key epochs", "Access taken
** back").
**
** A case key is never replaced; it is succeeded.  The office makes a key of
** the next epoch for both compartments of the case and shares it only with
** those still entitled.  Devices seal with the newest epoch they hold, so
** what is written once they have synced cannot be opened with any key the
** excluded device holds; older records stay readable with the keys that
** sealed them.
**
** Who is entitled to a key of case X: the office; an assistant whose
** region holds X's postcode (keys.c, veld_sync__region_holds: the rule that
** gives the keys is the rule that takes them), unless revoked;
** a volunteer, for the huiswijs compartment only, while X's header records
** a consent for huiswijs that holds today (share.c, veld_sync__consent: not
** withdrawn, its end date not past) and no "toegang_ingetrokken.<it>".
** Who holds which key the office reads from the paths of its own shares
** and of every keys ref on the hub (holders.c).  A case whose NEWEST key a
** device holds that is not entitled to it gets the next epoch; an
** unrevoked device that holds any key of X it is not entitled to loses X:
** a row of access_lost, which commit.c publishes in main, so its device
** drops the case and every verifier refuses its writes to it.  The same
** check catches a share sealed without consent, and the race after a
** revocation (a device that had not heard of it seals a new case's keys to
** the revoked device: that case is rotated again).  A case moved to
** another region (the office changed its postcode) is the same: the old
** region's assistants are no longer entitled, the case is rotated, and
** the new epoch and every earlier key go to the new region's assistants,
** who read the case's whole history.
**
** The check runs on the office when a revocation is about to be published,
** a keys ref moved, or a case header changed in this sync, and in the
** first sync of a day (a consent's end date passes).  Inside the caller's transaction
** (run.c), before the commit stage seals the office's keys ref.  Must not:
** open a transaction, or reach the tables other than through state.c.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

typedef struct rotctx {
	veld_syncctx *c;
	json_t *holders; /* key id -> {recipient: true} */
	json_t *devices; /* device id -> {"role", "region", "revoked"} */
	json_t *cases;   /* case id -> true: to rotate */
	int due;         /* a revocation is about to be published, or a day began */
	char today[16];
} rotctx;

static int note_device(const veld_device_row *d, void *payload)
{
	rotctx *r = payload;
	if (json_object_set_new(r->devices, d->id,
	                        json_pack("{s:s, s:s, s:b}", "role", d->role, "region", d->region, "revoked", d->revoked)))
		return veld_err__set(r->c->err, VELD_ERROR, "out of memory");
	return 0;
}

static int note_due(const veld_device_row *d, void *payload)
{
	rotctx *r = payload;
	if (d->revoked)
		r->due = 1;
	return 0;
}

/* The case header field `fmt`%s is a string (a date) in `h`. */
static int header_has(const veld_record *h, const char *fmt, const char *arg)
{
	char field[96];
	size_t n;
	snprintf(field, sizeof field, fmt, arg);
	return h && json_is_string(veld_record__value(h, field, &n));
}

/* May device `who` hold a key of `compartment` of the case whose header
** is `h` (NULL: not held here)? */
static int entitled(rotctx *r, const char *who, const char *case_id, const char *compartment, const veld_record *h)
{
	json_t *d = json_object_get(r->devices, who);
	const char *role = json_string_value(json_object_get(d, "role"));
	const json_t *pc;
	size_t n;
	if (!d || json_is_true(json_object_get(d, "revoked")))
		return 0;
	if (!strcmp(role, "assistant") && h && json_is_string(pc = veld_record__value(h, "postcode", &n)))
		return veld_sync__region_holds(role, json_string_value(json_object_get(d, "region")),
		                               atoi(json_string_value(pc)));
	if (!strcmp(role, "office") || !strcmp(role, "assistant"))
		return 1; /* an assistant, when the header is not held here: not judged */
	if (strcmp(role, "volunteer") || strcmp(compartment, "huiswijs"))
		return 0;
	return veld_sync__consent(h, "huiswijs", r->today) == VELD_CONSENT_ACTIVE &&
	       !header_has(h, "toegang_ingetrokken.%s", who) && !veld_state__access_lost_has(r->c->s, who, case_id);
}

/* One key and its holders: mark the case for rotation when a holder of
** its newest key may not hold it; take the case from an unrevoked holder
** that may not hold any of its keys. */
static int judge_key(rotctx *r, const char *key_hex, json_t *set)
{
	char case_id[VELD_IDSIZE], comp[32];
	veld_record *h = NULL;
	const char *who;
	json_t *v;
	int newest = 0, rc = 0, added = 0;
	if (veld_state__key_of(case_id, comp, sizeof comp, &newest, r->c->s, key_hex)) {
		veld_err__clear(r->c->err);
		return 0; /* not a key of ours: nothing to rotate */
	}
	if (veld_store__record_load(&h, r->c->s, case_id))
		veld_err__clear(r->c->err);
	json_object_foreach(set, who, v)
	{
		json_t *d = json_object_get(r->devices, who);
		if (entitled(r, who, case_id, comp, h))
			continue;
		if (newest)
			json_object_set_new(r->cases, case_id, json_true());
		if (d && !json_is_true(json_object_get(d, "revoked")) &&
		    (rc = veld_state__access_lost_add(&added, r->c->s, who, case_id, 0)))
			break;
	}
	veld_record__free(h);
	return rc;
}

/* ---- one case ---------------------------------------------------------------------- */

typedef struct sharectx {
	rotctx *r;
	const char *compartment, *new_hex;
	veld_record *header;
} sharectx;

/* Those that held an earlier key of the compartment keep it if entitled;
** the case's region gets every earlier key (after a move, the new region
** reads the history). */
static int reshare_holders(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	sharectx *x = payload;
	json_t *set = json_object_get(x->r->holders, key_hex);
	const char *who;
	json_t *v;
	int rc;
	if (strcmp(compartment, x->compartment) || !strcmp(key_hex, x->new_hex))
		return 0;
	if ((rc = veld_sync__share_by_region(x->r->c, key_hex, case_id)) || !set)
		return rc;
	json_object_foreach(set, who, v)
	{
		if (entitled(x->r, who, case_id, compartment, x->header) && (rc = veld_sync__add_share(x->r->c, x->new_hex, who)))
			return rc;
	}
	return 0;
}

static int rotate_compartment(rotctx *r, const char *case_id, const char *compartment, veld_record *header)
{
	veld_syncctx *c = r->c;
	veld_case_key k;
	sharectx x;
	char hex[2 * VELD_KEYIDBYTES + 1];
	int epoch = veld_state__case_key_epoch(c->s, case_id, compartment), added = 0, rc;
	if (epoch < 0)
		return 0;
	memset(&k, 0, sizeof k);
	if (veld_case_key__new(&k))
		return veld_err__set(c->err, VELD_ERROR, "out of memory");
	snprintf(k.case_id, sizeof k.case_id, "%s", case_id);
	snprintf(k.compartment, sizeof k.compartment, "%s", compartment);
	k.epoch = (uint32_t)epoch + 1;
	sodium_bin2hex(hex, sizeof hex, k.key_id, VELD_KEYIDBYTES);
	rc = veld_state__case_key_add(&added, c->s, &k);
	veld_case_key__clear(&k);
	if (!rc && !added)
		rc = veld_store__db_fail(c->s, SQLITE_CONSTRAINT, "store a rotated case key");
	if (!rc)
		rc = veld_sync__share_by_region(c, hex, case_id);
	x.r = r;
	x.compartment = compartment;
	x.new_hex = hex;
	x.header = header;
	if (!rc)
		rc = veld_state__case_keys_each(c->s, case_id, reshare_holders, &x);
	return rc;
}

static int rotate_case(rotctx *r, const char *case_id)
{
	veld_record *h = NULL;
	int rc;
	if (veld_store__record_load(&h, r->c->s, case_id))
		veld_err__clear(r->c->err);
	rc = rotate_compartment(r, case_id, "social", h);
	if (!rc)
		rc = rotate_compartment(r, case_id, "huiswijs", h);
	veld_record__free(h);
	return rc;
}

int veld_sync__rotate_revoked(veld_syncctx *c)
{
	rotctx r;
	const char *k;
	json_t *v;
	int rc;
	if (!c->office)
		return 0;
	memset(&r, 0, sizeof r);
	r.c = c;
	r.devices = json_object();
	r.cases = json_object();
	if (!r.devices || !r.cases) {
		rc = veld_err__set(c->err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = veld_state__devices_each(c->s, VELD_STATE_ACTIVE, note_device, &r)) ||
	    (rc = veld_state__devices_each(c->s, VELD_STATE_REVOKED, note_device, &r)) ||
	    (rc = veld_state__devices_each(c->s, VELD_STATE_UNPUBLISHED, note_due, &r)))
		goto done;
	/* A consent's end date passes with the days: the first sync of a day
	** looks too (meta "access_checked"). */
	veld_sync__today(r.today, sizeof r.today, c->s);
	{
		char last[16] = "";
		int n = veld_store__meta_get(c->s, "access_checked", last, (int)sizeof last - 1);
		if (n < 0 || strcmp(last, r.today)) {
			veld_err__clear(c->err);
			r.due = 1;
			if ((rc = veld_store__meta_put(c->s, "access_checked", r.today, (int)strlen(r.today))))
				goto done;
		}
	}
	if (!r.due && !c->keys_moved && !c->headers_changed)
		goto done;
	if ((rc = veld_sync__holders(&r.holders, c)))
		goto done;
	json_object_foreach(r.holders, k, v)
	{
		if ((rc = judge_key(&r, k, v)))
			goto done;
	}
	json_object_foreach(r.cases, k, v)
	{
		if ((rc = rotate_case(&r, k)))
			break;
	}
done:
	json_decref(r.holders);
	json_decref(r.devices);
	json_decref(r.cases);
	return rc;
}

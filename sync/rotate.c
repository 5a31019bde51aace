/*
** rotate.c — key epochs: the office rotates the keys of a case that a
** revoked device could read (docs/sync.md, "Key epochs").
**
** A case key is never replaced; it is succeeded.  The office makes a key of
** the next epoch for both compartments of the case and shares it only with
** those still entitled: the office, the assistants of the case's region,
** and the volunteers that held an earlier huiswijs key of the case, none of
** them revoked.  Devices seal with the newest epoch they hold, so what is
** written once they have synced cannot be opened with any key the revoked
** device holds; older records stay readable with the keys that sealed them.
**
** Which cases: every case whose NEWEST key a revoked device holds, as far as
** the office can see (holders.c: its own shares and the paths of every keys
** ref on the hub).  So the same check covers the revocation itself and the race after
** it: a device that had not heard of the revocation seals a case's newest
** key to the revoked device, the office sees it in that keys ref, and the
** case is rotated again.  The check runs when a revocation is about to be
** published, or a keys ref moved in this sync, and some device is revoked.
**
** Runs on the office, inside the merge transaction (run.c), before the
** commit stage seals the office's keys ref.  Must not: open a transaction,
** or reach the tables other than through state.c.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

typedef struct rotctx {
	veld_syncctx *c;
	json_t *holders; /* key id -> {recipient: true} */
	json_t *revoked; /* device id -> true */
	json_t *cases;   /* case id -> true: to rotate */
	int due;         /* a revocation is about to be published */
	int rc;
} rotctx;

static int note_revoked(const veld_device_row *d, void *payload)
{
	rotctx *r = payload;
	json_object_set_new(r->revoked, d->id, json_true());
	return 0;
}

static int note_due(const veld_device_row *d, void *payload)
{
	rotctx *r = payload;
	if (d->revoked)
		r->due = 1;
	return 0;
}

/* Cases whose newest key a revoked device holds. */
static int mark_cases(rotctx *r)
{
	const char *key_hex;
	json_t *set;
	json_object_foreach(r->holders, key_hex, set)
	{
		const char *who;
		json_t *v;
		json_object_foreach(set, who, v)
		{
			char case_id[VELD_IDSIZE], comp[32];
			int newest = 0;
			if (!json_object_get(r->revoked, who))
				continue;
			if (veld_state__key_of(case_id, comp, sizeof comp, &newest, r->c->s, key_hex) == 0 && newest)
				json_object_set_new(r->cases, case_id, json_true());
			break;
		}
	}
	veld_err__clear(r->c->err);
	return 0;
}

/* ---- one case ---------------------------------------------------------------------- */

typedef struct sharectx {
	rotctx *r;
	const char *compartment, *new_hex;
} sharectx;

/* Volunteers that held an earlier key of the compartment keep it. */
static int reshare_holders(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	sharectx *x = payload;
	json_t *set = json_object_get(x->r->holders, key_hex);
	const char *who;
	json_t *v;
	(void)case_id;
	if (strcmp(compartment, x->compartment) || !set || !strcmp(key_hex, x->new_hex))
		return 0;
	json_object_foreach(set, who, v)
	{
		char role[32];
		int n = 0, rc;
		if (json_object_get(x->r->revoked, who) ||
		    veld_state__device_role(role, sizeof role, NULL, &n, x->r->c->s, who) || strcmp(role, "volunteer"))
			continue;
		if ((rc = veld_sync__add_share(x->r->c, x->new_hex, who)))
			return rc;
	}
	veld_err__clear(x->r->c->err);
	return 0;
}

static int rotate_compartment(rotctx *r, const char *case_id, const char *compartment)
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
	if (!rc)
		rc = veld_state__case_keys_each(c->s, case_id, reshare_holders, &x);
	return rc;
}

int veld_sync__rotate_revoked(veld_syncctx *c)
{
	rotctx r;
	const char *case_id;
	json_t *v;
	int rc;
	if (!c->office)
		return 0;
	memset(&r, 0, sizeof r);
	r.c = c;
	r.revoked = json_object();
	r.cases = json_object();
	if (!r.revoked || !r.cases) {
		rc = veld_err__set(c->err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = veld_state__devices_each(c->s, VELD_STATE_REVOKED, note_revoked, &r)) ||
	    (rc = veld_state__devices_each(c->s, VELD_STATE_UNPUBLISHED, note_due, &r)))
		goto done;
	if (json_object_size(r.revoked) == 0 || (!r.due && !c->keys_moved))
		goto done;
	json_decref(r.holders);
	if ((rc = veld_sync__holders(&r.holders, c)) || (rc = mark_cases(&r)))
		goto done;
	json_object_foreach(r.cases, case_id, v)
	{
		if ((rc = rotate_compartment(&r, case_id, "social")) ||
		    (rc = rotate_compartment(&r, case_id, "huiswijs")))
			break;
	}
done:
	json_decref(r.holders);
	json_decref(r.revoked);
	json_decref(r.cases);
	return rc ? rc : r.rc;
}

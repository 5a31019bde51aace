/*
** org.c — the organisation: created (veld_org_init), devices enrolled and
** revoked by the office (veld_enroll, veld_device_revoke), and a device
** joining the hub (veld_join).  docs/sync.md, "Registry".
**
** The office holds the organisation's signing key; main starts with the
** self-signed entry registry/org, which a device pins when it joins (trust
** on first use) and checks every main commit against from then on.
** Enrolment and revocation change the devices table (unpublished) here;
** the office's next commit publishes them in main (commit.c), and devices
** apply main's registry when they merge it (merge.c).
**
** Must not: reach the tables other than through state.c.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* VELD_EDENIED unless this store is the office's. */
static int office_only(veld_store *s, const char *what)
{
	char role[32];
	int n = veld_store__meta_get(s, "device_role", role, (int)sizeof role - 1);
	if (n < 0)
		return n;
	role[n] = '\0';
	return strcmp(role, "office") ? veld_err__set(veld_store__err(s), VELD_EDENIED, "only the office %s", what) : 0;
}

/* ---- org init ----------------------------------------------------------------------- */

/* main's first commit: the organisation's self-signed entry. */
static int org_entry(veld_syncctx *c, const char *name)
{
	char hex[65];
	json_t *body;
	char *text;
	git_oid blob, tree, commit;
	veld_tree_change ch;
	int rc;
	sodium_bin2hex(hex, sizeof hex, c->org_pk, 32);
	body = json_pack("{s:s, s:s}", "name", name, "sign_pk", hex);
	/* Self-signed: a device pins this key when it joins. */
	text = body ? veld_registry__sign(body, c->org_sk) : NULL;
	json_decref(body);
	if (!text)
		return veld_err__set(c->err, VELD_ERROR, "cannot sign the organisation entry");
	rc = veld_repo__blob_write(&blob, c->repo, text, strlen(text), c->err);
	free(text);
	if (rc)
		return rc;
	ch.path = "registry/org";
	ch.id = &blob;
	if ((rc = veld_repo__tree_update(&tree, c->repo, NULL, &ch, 1, c->err)))
		return rc;
	if ((rc = veld_repo__commit(&commit, c->repo, &tree, NULL, 0, VELD_ORG_SIGNER,
	                            veld_store__os(c->s)->xClockMs(veld_store__os(c->s)->ctx), "veld registry",
	                            veld_sync__sign, c->org_sk, c->err)))
		return rc;
	return veld_repo__ref_set(c->repo, VELD_REF_MAIN, &commit, c->err);
}

/* The office is the first enrolled device. */
static int enrol_office(veld_store *s)
{
	char *dev = NULL;
	json_t *d;
	veld_device_row row;
	unsigned char spk[32], bpk[32];
	int rc = veld_store_device_json(&dev, s);
	d = dev ? json_loads(dev, 0, NULL) : NULL;
	veld_free(dev);
	if (!rc && !d)
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
	if (!rc) {
		memset(&row, 0, sizeof row);
		row.id = json_string_value(json_object_get(d, "id"));
		row.name = json_string_value(json_object_get(d, "name"));
		row.role = "office";
		row.region = "";
		row.sign_pk = spk;
		row.box_pk = bpk;
		veld_sync__key_from_hex(spk, json_string_value(json_object_get(d, "sign_pk")));
		veld_sync__key_from_hex(bpk, json_string_value(json_object_get(d, "box_pk")));
		rc = veld_state__device_put(s, &row, VELD_STATE_LOCAL);
	}
	json_decref(d);
	return rc;
}

/* The organisation's keys, name and hub, and the office enrolled. */
static int org_meta(veld_store *s, const char *org_name, const char *hub)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	int rc;
	if (!sk)
		return veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
	crypto_sign_keypair(pk, sk);
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__meta_put(s, "org_sign_pk", pk, sizeof pk);
	if (!rc)
		rc = veld_store__meta_put(s, "org_sign_sk", sk, crypto_sign_SECRETKEYBYTES);
	if (!rc)
		rc = veld_store__meta_put(s, "org_name", org_name, (int)strlen(org_name));
	if (!rc)
		rc = veld_store__meta_put(s, "hub", hub, (int)strlen(hub));
	if (!rc)
		rc = enrol_office(s);
	rc = veld_store__finish(s, rc);
done:
	sodium_free(sk);
	return rc;
}

int veld_org_init(veld_store **out, const char *dir, const char *pass, size_t pass_len, const char *org_name,
                  const char *hub, const veld_store_options *opts)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_syncctx c;
	char *summary = NULL;
	int rc;
	memset(&c, 0, sizeof c);
	if (opts)
		o = *opts;
	else
		veld_store_options_init(&o);
	o.device_role = "office";
	if (!o.device_name)
		o.device_name = "office";
	rc = veld_store_create(&s, dir, pass, pass_len, &o);
	*out = s;
	if (rc)
		return rc;
	if (!org_name || !*org_name || !hub || !*hub)
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "org init needs --name and --hub");
	if ((rc = org_meta(s, org_name, hub)))
		return rc;
	/* The hub: a path gets a new bare repository. */
	if (!veld_repo__is_url(hub)) {
		veld_repo *h = NULL;
		rc = veld_repo__init(&h, veld_store__os(s), hub, veld_store__err(s));
		veld_repo__free(h);
		if (rc)
			return rc;
	}
	if ((rc = veld_sync__ctx_open(&c, s, NULL, 1)) || (rc = org_entry(&c, org_name)))
		goto done;
	veld_sync__ctx_free(&c);
	/* A hub on a path is published now; a URL hub needs credentials, which
	** the caller's first veld_sync brings (the CLI does it at once). */
	if (!veld_repo__is_url(hub))
		rc = veld_sync(&summary, s, NULL);
done:
	free(summary);
	veld_sync__ctx_free(&c);
	return rc;
}

/* ---- enrol and revoke (office) ----------------------------------------------------- */

typedef struct regionshare {
	veld_syncctx *c;
	const char *device_id;
	const veld_range *ranges;
	int n;
} regionshare;

static int share_if_in_region(const char *key_hex, const char *case_id, const char *compartment, void *payload)
{
	regionshare *r = payload;
	int pc = veld_sync__case_postcode(r->c->s, case_id);
	(void)compartment;
	return pc > 0 && veld_region__contains(r->ranges, r->n, pc) ? veld_sync__add_share(r->c, key_hex, r->device_id)
	                                                            : 0;
}

/* The request's fields into `d` (keys into sbin, bbin), checked. */
static int enrol_request(veld_device_row *d, unsigned char *sbin, unsigned char *bbin, veld_err *err,
                         const json_t *req)
{
	unsigned char idbin[16];
	char idhex[33];
	memset(d, 0, sizeof *d);
	d->id = json_string_value(json_object_get(req, "id"));
	d->name = json_string_value(json_object_get(req, "name"));
	d->role = json_string_value(json_object_get(req, "role"));
	d->sign_pk = sbin;
	d->box_pk = bbin;
	if (!d->id || !d->name || !d->role ||
	    veld_sync__key_from_hex(sbin, json_string_value(json_object_get(req, "sign_pk"))) ||
	    veld_sync__key_from_hex(bbin, json_string_value(json_object_get(req, "box_pk"))))
		return veld_err__set(err, VELD_EINVALID, "enrolment request is malformed (needs id, name, role, sign_pk, box_pk)");
	crypto_generichash(idbin, sizeof idbin, sbin, 32, NULL, 0);
	sodium_bin2hex(idhex, sizeof idhex, idbin, sizeof idbin);
	if (strcmp(idhex, d->id))
		return veld_err__set(err, VELD_EINTEGRITY, "enrolment request: the device id does not match its key");
	if (strcmp(d->role, "assistant") && strcmp(d->role, "volunteer"))
		return veld_err__set(err, VELD_EINVALID, "enrolment request: role must be assistant or volunteer");
	return 0;
}

int veld_enroll(char *id_out, veld_store *s, const char *request_json, const char *region)
{
	json_error_t jerr;
	json_t *req = NULL;
	veld_device_row d;
	unsigned char sbin[32], bbin[32];
	veld_range ranges[VELD_MAX_RANGES];
	veld_err *err;
	int n = 0, rc;
	if ((rc = veld_store__enter(s)) || (rc = office_only(s, "enrols devices")))
		return rc;
	err = veld_store__err(s);
	req = json_loads(request_json ? request_json : "", 0, &jerr);
	if ((rc = enrol_request(&d, sbin, bbin, err, req)))
		goto done;
	d.region = region ? region : "";
	if (region && *region && (rc = veld_region__parse(ranges, VELD_MAX_RANGES, &n, region, err)))
		goto done;
	if ((rc = veld_store__begin(s)))
		goto done;
	rc = veld_state__device_put(s, &d, VELD_STATE_LOCAL);
	/* An assistant gets the keys of its region's existing cases. */
	if (!rc && !strcmp(d.role, "assistant") && n > 0) {
		veld_syncctx c;
		regionshare r;
		memset(&c, 0, sizeof c);
		c.s = s;
		c.err = err;
		c.me = veld_store__device_id(s);
		r.c = &c;
		r.device_id = d.id;
		r.ranges = ranges;
		r.n = n;
		rc = veld_state__case_keys_each(s, NULL, share_if_in_region, &r);
	}
	if (!rc)
		rc = veld_store__audit(s, "enroll", NULL, NULL);
	rc = veld_store__finish(s, rc);
	if (!rc && id_out)
		memcpy(id_out, d.id, VELD_IDSIZE);
done:
	json_decref(req);
	return rc;
}

int veld_device_revoke(veld_store *s, const char *device_id)
{
	int rc, changed = 0;
	if ((rc = veld_store__enter(s)) || (rc = office_only(s, "revokes devices")))
		return rc;
	if (!device_id || !strcmp(device_id, veld_store__device_id(s)))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "the office cannot revoke itself");
	if ((rc = veld_store__begin(s)))
		return rc;
	rc = veld_state__device_revoke(&changed, s, device_id, VELD_STATE_LOCAL);
	if (!rc && !changed)
		rc = veld_err__set(veld_store__err(s), VELD_ENOTFOUND, "no enrolled device %s", device_id);
	if (!rc)
		rc = veld_state__keys_dirty_touch(s);
	if (!rc)
		rc = veld_store__audit(s, "revoke", NULL, NULL);
	return veld_store__finish(s, rc);
}

/* ---- join (device) ---------------------------------------------------------------- */

/* Fetch main and pin the organisation key from its self-signed entry
** (trust on first use; from now on only main commits signed by it are
** accepted). */
static int join_fetch(git_oid *head, veld_syncctx *c)
{
	static const char *const specs[] = {"+" VELD_REF_MAIN ":" VELD_HUB_PREFIX "heads/main"};
	veld_remote_opts ro;
	git_oid tree, blob;
	unsigned char *text = NULL;
	size_t len = 0;
	json_t *entry = NULL, *vb = NULL;
	veld_err e;
	int rc;
	memset(&e, 0, sizeof e);
	veld_sync__remote_opts(c, &ro);
	if ((rc = veld_sync__progress(c, "fetch", 0, 1)) ||
	    (rc = veld_sync__transfer_rc(c, veld_repo__fetch(c->repo, c->hub, specs, 1, &ro, c->err))))
		return rc;
	if (veld_repo__ref_get(head, c->repo, VELD_HUB_PREFIX "heads/main", c->err))
		return veld_err__set(c->err, VELD_ENOTFOUND, "the hub has no organisation yet (no main)");
	if ((rc = veld_repo__commit_tree(&tree, c->repo, head, c->err)) ||
	    (rc = veld_repo__tree_lookup(&blob, c->repo, &tree, "registry/org", c->err)) ||
	    (rc = veld_repo__blob_read(&text, &len, c->repo, &blob, c->err)))
		goto done;
	entry = json_loadb((const char *)text, len, 0, NULL);
	if (veld_sync__key_from_hex(c->org_pk,
	                            json_string_value(json_object_get(json_object_get(entry, "body"), "sign_pk"))) ||
	    veld_registry__verify(&vb, (const char *)text, len, c->org_pk, &e))
		rc = veld_err__set(c->err, VELD_EINTEGRITY, "the hub's organisation entry does not verify");
	else
		c->have_org = 1;
done:
	json_decref(vb);
	json_decref(entry);
	free(text);
	return rc;
}

/* Inside the join's transaction: main verified, its registry applied, this
** device found enrolled with its own role. */
static int join_apply(veld_syncctx *c, const git_oid *head)
{
	char role[32], myrole[32];
	int n = 0, rc = 0;
	if (veld_sync__verify_ref(c, VELD_REF_MAIN, VELD_ORG_SIGNER, head))
		return veld_err__set(c->err, VELD_EINTEGRITY, "main on the hub does not verify: %s",
		                     json_string_value(json_object_get(json_array_get(c->rejected, 0), "reason")));
	if ((rc = veld_sync__progress(c, "merge", 0, 1)) || (rc = veld_sync__merge_ref(c, VELD_REF_MAIN, head, 1, 0)))
		return rc;
	rc = veld_state__device_role(role, sizeof role, NULL, &n, c->s, c->me);
	if (rc == VELD_ENOTFOUND)
		return veld_err__set(c->err, VELD_ENOTFOUND,
		                     "device %s is not enrolled yet: the office runs `veld enroll` and syncs", c->me);
	if (rc)
		return rc;
	if ((n = veld_store__meta_get(c->s, "device_role", myrole, (int)sizeof myrole - 1)) < 0)
		return n;
	myrole[n] = '\0';
	if (strcmp(role, myrole))
		return veld_err__set(c->err, VELD_EINTEGRITY, "the registry enrols this device as %s, not %s", role, myrole);
	/* Only the registry was applied; the records of main merge at the first sync. */
	if (!(rc = veld_state__synced_clear(c->s)))
		rc = veld_store__meta_put(c->s, "org_sign_pk", c->org_pk, 32);
	if (!rc)
		rc = veld_store__meta_put(c->s, "hub", c->hub, (int)strlen(c->hub));
	if (!rc)
		rc = veld_store__audit(c->s, "join", NULL, NULL);
	return rc;
}

/* Cancellation: "fetch" before anything; "verify" before the transaction,
** "merge" inside it (rolled back).  A canceled join changes no table. */
int veld_join(veld_store *s, const char *hub, const veld_sync_options *opts)
{
	veld_syncctx c;
	git_oid head;
	int rc;
	if ((rc = veld_store__enter(s)))
		return rc;
	if ((rc = veld_sync__ctx_open(&c, s, opts, 0)))
		goto done;
	snprintf(c.hub, sizeof c.hub, "%s", hub ? hub : "");
	if ((rc = join_fetch(&head, &c)) || (rc = veld_sync__progress(&c, "verify", 0, 1)) ||
	    (rc = veld_store__begin(s)))
		goto done;
	rc = veld_store__finish(s, join_apply(&c, &head));
done:
	veld_sync__ctx_free(&c);
	return rc;
}

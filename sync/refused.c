/*
** refused.c — veld_refused_json: the changes verification did not accept
** (docs/sync.md, "Refusals").
**
** On a device: its own changes, as the office published them (and as
** this store found them itself), each with whether the refused record is
** still held here: the data stays on the writer's device until a person
** re-enters it where it belongs or deletes it.  On the office: every
** device's.  Reads the refusals table (state.c) and the records; must not
** change the store.
*/
#include "sync.h"

#include <stdlib.h>
#include <string.h>

typedef struct refusedctx {
	veld_store *s;
	json_t *list;
	const char *me;
} refusedctx;

static int refused_row(const veld_refusal_row *r, void *payload)
{
	refusedctx *x = payload;
	veld_record *rec = NULL;
	json_t *e;
	int held = 0;
	if (*r->record_id && veld_store__record_load(&rec, x->s, r->record_id) == 0)
		held = !veld_record__is_deleted(rec);
	veld_err__clear(veld_store__err(x->s));
	e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "device", r->device, "case", r->case_id, "record",
	              r->record_id, "code", r->code, "reason", r->reason, "commit", r->commit, "at", (json_int_t)r->at,
	              "held", held);
	if (e && rec)
		json_object_set_new(e, "form", json_string(veld_record__form(rec)));
	veld_record__free(rec);
	return e && json_array_append_new(x->list, e) == 0 ? 0 : -1;
}

int veld_refused_json(char **out, veld_store *s)
{
	refusedctx x;
	char role[32];
	int rc, n;
	if (out)
		*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	if (!out)
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "refused: no output");
	n = veld_store__meta_get(s, "device_role", role, (int)sizeof role - 1);
	role[n > 0 ? n : 0] = '\0';
	veld_err__clear(veld_store__err(s));
	memset(&x, 0, sizeof x);
	x.s = s;
	x.me = strcmp(role, "office") ? veld_store__device_id(s) : NULL;
	if (!(x.list = json_array()))
		return veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
	rc = veld_state__refusals_each(s, 0, x.me, refused_row, &x);
	if (rc < 0 && !veld_store__err(s)->code)
		rc = veld_err__set(veld_store__err(s), VELD_ERROR, "out of memory");
	if (!rc)
		return veld_store__json_out(out, s, x.list);
	json_decref(x.list);
	return rc;
}

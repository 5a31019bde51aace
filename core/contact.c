/*
** contact.c — a case's contact part: what a Huiswijs volunteer may read of
** the client to reach them (docs/records.md, "The contact part").
**
** The case header (form "_case") lives in the social compartment: a
** volunteer, who holds only the huiswijs key of the cases shared with it,
** cannot open it.  The contact part is a record of its own: form
** "_contact", compartment huiswijs, at an id derived from the case id
** (veld_contact__id), holding the header's name, phone and postcode as
** they are.  The search profile is a huiswijs form already.
**
** One writer: the office.  Its sync refreshes the contact part of every
** header it is about to commit (veld_contact__refresh_dirty), so the part
** follows the header through moves and renames and never conflicts; the
** write rule refuses it from anyone else (rules.c).  The listing, show and
** export of a store that holds a case's contact part but not its header
** (cases.c) show the contact part in the header's place.
**
** Must not: open a transaction (the caller's sync holds one), or copy any
** header field other than those of VELD_CONTACT_FIELDS.
*/
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const char *const contact_fields[] = {VELD_CONTACT_FIELDS, NULL};

void veld_contact__id(char *out, const char *case_id)
{
	static const unsigned char tag[] = "veld case contact part";
	unsigned char h[VELD_IDSIZE / 2];
	crypto_generichash(h, sizeof h, (const unsigned char *)case_id, strlen(case_id), tag, sizeof tag - 1);
	sodium_bin2hex(out, VELD_IDSIZE, h, sizeof h);
}

/* The fields the contact part of header `h` must hold: {field: value or
** null}.  NULL: out of memory. */
static json_t *wanted(const veld_record *h)
{
	json_t *f = json_object();
	size_t i, n;
	for (i = 0; f && contact_fields[i]; i++) {
		const json_t *v = veld_record__is_deleted(h) ? NULL : veld_record__value(h, contact_fields[i], &n);
		if (json_object_set_new(f, contact_fields[i], v ? json_deep_copy(v) : json_null())) {
			json_decref(f);
			f = NULL;
		}
	}
	return f;
}

/* Write the contact part of case `case_id` if it differs from the header. */
static int refresh(veld_store *s, const char *case_id)
{
	veld_record *h = NULL, *c = NULL;
	json_t *want = NULL, *v;
	const char *path;
	void *tmp;
	char id[VELD_IDSIZE];
	veld_stamp st;
	int rc;
	size_t n;
	if ((rc = veld_store__record_load(&h, s, case_id)))
		return rc == VELD_ENOTFOUND ? (veld_err__clear(veld_store__err(s)), 0) : rc;
	veld_contact__id(id, case_id);
	rc = veld_store__record_load(&c, s, id);
	if (rc == VELD_ENOTFOUND) {
		veld_err__clear(veld_store__err(s));
		rc = veld_record__new(&c, id, case_id, VELD_CONTACT_FORM) ? veld_err__oom(veld_store__err(s)) : 0;
	}
	if (rc || !(want = wanted(h))) {
		rc = rc ? rc : veld_err__oom(veld_store__err(s));
		goto done;
	}
	json_object_foreach_safe(want, tmp, path, v)
	{
		const json_t *have = veld_record__value(c, path, &n);
		if (have ? n == 1 && json_equal((json_t *)have, v) : json_is_null(v))
			json_object_del(want, path); /* already as the header has it */
	}
	if (json_object_size(want) == 0 || (rc = veld_store__stamp(s, &st)))
		goto done; /* no new stamp for a part that has not changed */
	json_object_foreach(want, path, v)
	{
		if ((rc = veld_record__set(c, path, v, &st)))
			goto done;
	}
	rc = veld_store__record_save(s, c, 1, "huiswijs");
done:
	json_decref(want);
	veld_record__free(h);
	veld_record__free(c);
	return rc;
}

int veld_contact__refresh_dirty(veld_store *s)
{
	sqlite3_stmt *st = NULL;
	char (*ids)[VELD_IDSIZE] = NULL;
	size_t n = 0, cap = 0, i;
	int rc;
	rc = sqlite3_prepare_v2(veld_store__db(s),
	                        "SELECT id FROM records INDEXED BY records_dirty WHERE dirty AND id = case_id", -1, &st,
	                        NULL);
	if (rc != SQLITE_OK)
		return veld_store__db_fail(s, rc, "list changed case headers");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			void *p = realloc(ids, (cap = cap ? 2 * cap : 16) * sizeof *ids);
			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = p;
		}
		snprintf(ids[n++], VELD_IDSIZE, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : veld_store__db_fail(s, rc, "list changed case headers");
	for (i = 0; i < n && !rc; i++)
		rc = refresh(s, ids[i]);
	free(ids);
	return rc;
}

json_t *veld_contact__fields(veld_store *s, const char *case_id)
{
	veld_record *c = NULL;
	json_t *view, *fields = NULL;
	char id[VELD_IDSIZE];
	veld_contact__id(id, case_id);
	if (veld_store__record_load(&c, s, id) || strcmp(veld_record__form(c), VELD_CONTACT_FORM)) {
		veld_err__clear(veld_store__err(s));
		veld_record__free(c);
		return NULL;
	}
	view = veld_record__view(c);
	fields = view ? json_incref(json_object_get(view, "fields")) : NULL;
	json_decref(view);
	veld_record__free(c);
	return fields;
}

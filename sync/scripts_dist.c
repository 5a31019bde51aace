/*
** scripts_dist.c — forms and reports the office publishes, carried by
** sync (docs/sync.md, "Published forms and reports"), and the office's
** form check of what devices write.
**
** The office publishes a script into its store (scripts/publish.c); its
** next commit writes every version main does not carry yet as an
** org-signed entry, like a registry entry:
**
**   forms/<name>/<version>     {"kind":"form","name","version","source"}
**   reports/<name>/<version>   {"kind":"report",...}
**
** Every other store meets the entries when it merges main (merge.c calls
** apply_script) and keeps a version only once its signature verifies with
** the organisation key and its body names the path it sits at; the form
** engine then uses the newest version held.  An entry that does not verify
** (a broken signature, another key, a body that does not match its path, a
** version held with another text) is refused alone: recorded and reported
** once (code "script"), never stored, and the sync goes on.  A device ref
** that writes forms/ or reports/ is refused by verify.c (code "path").
**
** form_forbids is the office's hook into verification: a record a device
** changed goes to the caller's check (veld_sync_options.validate, which
** the scripts layer provides: sync/ cannot run scripts), and a record the
** check refuses is refused alone with code "form".
**
** Must not: run or load a script, or read the scripts table other than
** through core's veld_published__* functions.
*/
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the office's commit ---------------------------------------------------------- */

static int script_entry(const veld_script_row *r, void *payload)
{
	veld_changectx *x = payload;
	char path[160];
	snprintf(path, sizeof path, "%ss/%s/%d", r->kind, r->name, r->version);
	return veld_sync__changeset_add_signed(x->c, x->cs, path,
	                                       json_pack("{s:s, s:s, s:i, s:s%}", "kind", r->kind, "name", r->name,
	                                                 "version", r->version, "source", r->source, r->len));
}

int veld_sync__scripts_changes(veld_syncctx *c, veld_changeset *cs)
{
	veld_changectx x;
	int rc;
	x.c = c;
	x.cs = cs;
	rc = veld_published__each(c->s, NULL, 1, script_entry, &x);
	return rc ? rc : veld_published__mark(c->s);
}

/* ---- an entry of main, on every other store ----------------------------------------- */

/* Refuse the entry at `path` alone: noted, reported once, not stored. */
static int refuse_script(veld_syncctx *c, const char *path, const git_oid *id, const char *why)
{
	veld_refusal_row r;
	char reason[300];
	snprintf(reason, sizeof reason, "%.100s: %.180s", path, why);
	memset(&r, 0, sizeof r);
	r.path = path;
	r.device = VELD_ORG_SIGNER;
	r.code = VELD_REFUSED_SCRIPT;
	r.reason = reason;
	r.commit = "";
	r.published = 1; /* every store judges main itself */
	return veld_sync__refuse_change(c, &r, id, VELD_REF_MAIN);
}

/* "forms/<name>/<version>" or "reports/...": kind, name and version, or
** -1 for any other shape. */
static int parse_path(const char **kind, char *name, int *version, const char *path)
{
	const char *rest, *slash;
	char *end;
	long v;
	if (!strncmp(path, "forms/", 6)) {
		*kind = VELD_SCRIPT_FORM;
		rest = path + 6;
	} else if (!strncmp(path, "reports/", 8)) {
		*kind = VELD_SCRIPT_REPORT;
		rest = path + 8;
	} else
		return -1;
	if (!(slash = strchr(rest, '/')) || (size_t)(slash - rest) > VELD_FORM_NAME_MAX || slash[1] < '1' ||
	    slash[1] > '9')
		return -1;
	memcpy(name, rest, (size_t)(slash - rest));
	name[slash - rest] = '\0';
	v = strtol(slash + 1, &end, 10);
	if (*end || v < 1 || v > 1000000 || !veld_name__is_form(name))
		return -1;
	*version = (int)v;
	return 0;
}

/* Why the verified body does not belong at its path, or NULL. */
static const char *body_mismatch(const json_t *body, const char *kind, const char *name, int version)
{
	const char *k = json_string_value(json_object_get(body, "kind")), *n = json_string_value(json_object_get(body, "name"));
	if (json_object_size(body) != 4 || !k || !n || !json_is_string(json_object_get(body, "source")))
		return "the entry is malformed";
	if (strcmp(k, kind) || strcmp(n, name) || json_integer_value(json_object_get(body, "version")) != version)
		return "the entry names another script than its path";
	return NULL;
}

int veld_sync__apply_script(veld_syncctx *c, const char *path, const git_oid *id)
{
	unsigned char *blob = NULL;
	size_t len = 0;
	json_t *body = NULL;
	veld_script_row r;
	veld_err e;
	char name[VELD_FORM_NAME_MAX + 1];
	const char *kind, *why = NULL;
	int rc = 0, added = 0;
	memset(&e, 0, sizeof e);
	memset(&r, 0, sizeof r);
	if (parse_path(&kind, name, &r.version, path))
		return refuse_script(c, path, id, "not forms/<name>/<version> or reports/<name>/<version>");
	if (veld_repo__blob_read(&blob, &len, c->repo, id, c->err))
		return c->err->code ? c->err->code : VELD_ERROR;
	if (veld_registry__verify(&body, (const char *)blob, len, c->org_pk, &e))
		why = e.msg;
	else
		why = body_mismatch(body, kind, name, r.version);
	if (!why) {
		r.kind = kind;
		r.name = name;
		r.source = json_string_value(json_object_get(body, "source"));
		r.len = json_string_length(json_object_get(body, "source"));
		r.published = 1;
		rc = veld_published__put(&added, c->s, &r);
		if (rc == VELD_EEXISTS) {
			veld_err__clear(c->err);
			why = "that version is held with another text";
			rc = 0;
		}
	}
	if (why)
		rc = refuse_script(c, path, id, why);
	json_decref(body);
	free(blob);
	return rc;
}

/* ---- the office's form check ------------------------------------------------------ */

const char *veld_sync__form_forbids(veld_syncctx *c, const char **code, const veld_record *rec, char *why,
                                    size_t cap)
{
	const veld_sync_options *o = c->opts;
	const json_t *v;
	char *text;
	size_t n;
	int bad;
	if (!c->office || !o || o->version < 2 || !o->validate)
		return NULL;
	if (!(text = veld_record__canonical(rec))) {
		snprintf(why, cap, "record %s: out of memory", veld_record__id(rec));
		*code = VELD_REFUSED_FORM;
		return why;
	}
	v = veld_record__value(rec, VELD_RECORD_FORM_VERSION, &n);
	why[0] = '\0';
	bad = o->validate(why, cap, c->s, text, strlen(text), veld_record__form(rec),
	                  json_is_integer(v) ? (int)json_integer_value(v) : 0, o->validate_payload);
	free(text);
	if (!bad)
		return NULL;
	*code = VELD_REFUSED_FORM;
	if (!why[0])
		snprintf(why, cap, "record %s does not pass the rules of form %.64s", veld_record__id(rec),
		         veld_record__form(rec));
	return why;
}

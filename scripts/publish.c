/*
** publish.c — the versions of a form or report a store holds: shipped in
** the library or published by the office (docs/forms.md, "Versions").
**
** The office publishes a script (veld_form_publish, veld_report_publish):
** it is read from a file NAME.lua, checked the way `veld form check`
** checks a form (a report: it compiles), given its version (a form
** declares it and must raise it above every version held; a report takes
** the next one) and stored in core's `scripts` table (core/published.c).
** The office's next sync signs it into main, from where every device takes
** it once its signature verifies (sync/scripts_dist.c).  This file then
** answers which version to load: a put writes with the newest version that
** loads; the office checks a device's record with the version the record
** was written with (records.c keeps the loaded forms).
**
** Must not: write records, or know how published scripts travel.
*/
#include "scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRIPT_SOURCE_MAX ((int64_t)1 << 20) /* bytes of a script file read */

/* ---- which version --------------------------------------------------------------- */

/* Version `version` of published form `name` loaded into *out. */
static int load_published(veld_form **out, veld_store *s, const char *name, int version, veld_err *err)
{
	char *src = NULL;
	size_t len = 0;
	int rc = veld_published__get(&src, &len, s, VELD_SCRIPT_FORM, name, version);
	if (rc)
		rc = veld_err__set(err, rc, "%s", veld_store__err(s)->msg);
	else
		rc = veld_form__load(out, name, src, len, NULL, err);
	free(src);
	return rc;
}

int veld_form__load_held(veld_form **out, veld_store *s, const char *name, int version, veld_err *err)
{
	veld_form *shipped = NULL;
	int rc = veld_form__load_shipped(&shipped, name, NULL, err), sv = shipped ? veld_form__version(shipped) : 0;
	int below = 0, pv;
	*out = NULL;
	if (rc && rc != VELD_ENOTFOUND)
		return rc;
	if (version > 0 && version == sv) {
		*out = shipped;
		return 0;
	}
	if (version > 0) {
		veld_form__free(shipped);
		return load_published(out, s, name, version, err);
	}
	/* The newest published version above the shipped one that loads. */
	while ((pv = veld_published__newest(s, VELD_SCRIPT_FORM, name, below)) > sv) {
		if (load_published(out, s, name, pv, err) == 0) {
			veld_form__free(shipped);
			return 0;
		}
		below = pv;
	}
	*out = shipped;
	return shipped ? 0 : veld_err__set(err, VELD_ENOTFOUND, "no form named '%.60s'", name);
}

/* ---- publishing ------------------------------------------------------------------- */

/* The office publishes; VELD_EDENIED anywhere else. */
static int office_only(veld_store *s, const char *what)
{
	char role[16];
	int n = veld_store__meta_get(s, "device_role", role, (int)sizeof role - 1);
	if (n > 0) {
		role[n] = '\0';
		if (!strcmp(role, "office"))
			return 0;
	}
	return veld_err__set(veld_store__err(s), VELD_EDENIED, "only the office publishes %ss", what);
}

/* The script file `path` (NAME.lua): its name and text (malloc'd). */
static int script_file(char *name, char **src, size_t *len, veld_store *s, const char *path, const char *what)
{
	const char *base = path ? strrchr(path, '/') : NULL;
	size_t n;
	base = base ? base + 1 : path ? path : "";
	n = strlen(base);
	if (n < 5 || n - 4 > VELD_FORM_NAME_MAX || strcmp(base + n - 4, ".lua"))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "%.200s: a %s file is named NAME.lua", base, what);
	memcpy(name, base, n - 4);
	name[n - 4] = '\0';
	if (!veld_name__is_form(name))
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "%s: a %s's name is a-z, 0-9 and _", base, what);
	return veld_sandbox__read_file(src, len, veld_store__os(s), path, SCRIPT_SOURCE_MAX, what, veld_store__err(s));
}

/* Store version `version` of `name` for the next sync to sign into main;
** *out {"kind","name","version"}. */
static int store_script(char **out, veld_store *s, const char *kind, const char *name, int version, const char *src,
                        size_t len)
{
	veld_script_row r;
	json_t *text = json_stringn(src, len);
	char *dumped = text ? json_dumps(text, JSON_ENCODE_ANY) : NULL;
	size_t dlen = dumped ? strlen(dumped) : 0;
	int rc, added = 0;
	json_decref(text);
	free(dumped);
	if (!text)
		return veld_err__set(veld_store__err(s), VELD_EINVALID, "%s.lua is not UTF-8 text", name);
	if (!dlen || dlen > VELD_SCRIPT_JSON_MAX)
		return veld_err__set(veld_store__err(s), dlen ? VELD_EINVALID : VELD_ERROR,
		                     dlen ? "%s.lua is too large to publish (%zu bytes as JSON, at most %d)" : "out of memory",
		                     name, dlen, VELD_SCRIPT_JSON_MAX);
	memset(&r, 0, sizeof r);
	r.kind = kind;
	r.name = name;
	r.version = version;
	r.source = src;
	r.len = len;
	if ((rc = veld_store__begin(s)))
		return rc;
	rc = veld_published__put(&added, s, &r);
	if (!rc)
		rc = veld_store__audit(s, !strcmp(kind, VELD_SCRIPT_FORM) ? "publish-form" : "publish-report", NULL, NULL);
	if ((rc = veld_store__finish(s, rc)))
		return rc;
	return out ? veld_store__json_out(out, s, json_pack("{s:s, s:s, s:i}", "kind", kind, "name", name, "version",
	                                                     version))
	           : 0;
}

int veld_form_publish(char **out, veld_store *s, const char *path)
{
	char name[VELD_FORM_NAME_MAX + 1], *src = NULL;
	veld_form *f = NULL, *held = NULL;
	size_t len = 0;
	int rc;
	if (out)
		*out = NULL;
	if ((rc = veld_store__enter(s)) || (rc = office_only(s, "form")) ||
	    (rc = script_file(name, &src, &len, s, path, "form")))
		goto done;
	if ((rc = veld_form__load(&f, name, src, len, NULL, veld_store__err(s))))
		goto done;
	if (strcmp(veld_form__compartment(f), "social") && strcmp(veld_form__compartment(f), "huiswijs")) {
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "%s.lua: compartment must be social or huiswijs",
		                   name);
		goto done;
	}
	rc = veld_form__load_held(&held, s, name, 0, veld_store__err(s));
	if (rc && rc != VELD_ENOTFOUND)
		goto done;
	veld_err__clear(veld_store__err(s));
	if (veld_published__newest(s, VELD_SCRIPT_FORM, name, 0) >= veld_form__version(f) ||
	    (held && veld_form__version(held) >= veld_form__version(f)))
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID,
		                   "%s.lua: version %d is not above the version held (%d): raise `version`", name,
		                   veld_form__version(f), held ? veld_form__version(held) : 0);
	else
		rc = store_script(out, s, VELD_SCRIPT_FORM, name, veld_form__version(f), src, len);
done:
	veld_form__free(f);
	veld_form__free(held);
	free(src);
	return rc;
}

/* 1 if the report `name` is shipped with the library. */
static int report_is_shipped(const char *name)
{
	const char *n, *src;
	size_t i, len;
	for (i = 0; veld_report__shipped(i, &n, &src, &len); i++)
		if (!strcmp(n, name))
			return 1;
	return 0;
}

int veld_report_publish(char **out, veld_store *s, const char *path)
{
	char name[VELD_FORM_NAME_MAX + 1], chunk[VELD_FORM_NAME_MAX + 8], *src = NULL;
	veld_sandbox *sb = NULL;
	size_t len = 0;
	int rc, newest;
	if (out)
		*out = NULL;
	if ((rc = veld_store__enter(s)) || (rc = office_only(s, "report")) ||
	    (rc = script_file(name, &src, &len, s, path, "report")))
		goto done;
	snprintf(chunk, sizeof chunk, "%s.lua", name);
	if (veld_sandbox__new(&sb, NULL) || veld_sandbox__reset(sb)) {
		rc = veld_err__oom(veld_store__err(s));
		goto done;
	}
	if ((rc = veld_sandbox__load(sb, chunk, src, len))) {
		rc = veld_err__set(veld_store__err(s), VELD_EINVALID, "%s", veld_sandbox__errmsg(sb));
		goto done;
	}
	if ((newest = veld_published__newest(s, VELD_SCRIPT_REPORT, name, 0)) < 0) {
		rc = newest;
		goto done;
	}
	if (!newest && report_is_shipped(name))
		newest = 1;
	rc = store_script(out, s, VELD_SCRIPT_REPORT, name, newest + 1, src, len);
done:
	veld_sandbox__free(sb);
	free(src);
	return rc;
}

/* ---- the catalogue ------------------------------------------------------------------- */

typedef struct listctx {
	veld_store *s;
	json_t *forms; /* name -> {"name",...,"versions":[...]} */
	json_t *arr;   /* the same entries, shipped forms first */
	int rc;
} listctx;

/* The entry of form `name` (made, with the newest version's facts, the
** first time); NULL when it does not load (listed as an error). */
static json_t *list_entry(listctx *x, const char *name)
{
	json_t *e = json_object_get(x->forms, name);
	veld_form *f = NULL;
	if (e || x->rc)
		return e;
	if ((x->rc = veld_form__load_held(&f, x->s, name, 0, veld_store__err(x->s))))
		return NULL;
	e = json_pack("{s:s, s:s, s:s, s:i, s:[]}", "name", name, "label", veld_form__label(f), "compartment",
	              veld_form__compartment(f), "version", veld_form__version(f), "versions");
	veld_form__free(f);
	if (!e || json_array_append(x->arr, e) || json_object_set_new(x->forms, name, e))
		x->rc = veld_err__oom(veld_store__err(x->s));
	return x->rc ? NULL : e;
}

static void list_version(listctx *x, const char *name, int version, const char *origin)
{
	json_t *e = list_entry(x, name);
	if (e && json_array_append_new(json_object_get(e, "versions"),
	                               json_pack("{s:i, s:s}", "version", version, "origin", origin)))
		x->rc = veld_err__oom(veld_store__err(x->s));
}

static int list_published(const veld_script_row *r, void *payload)
{
	list_version(payload, r->name, r->version, "published");
	return ((listctx *)payload)->rc;
}

int veld_form_list_json(char **out, veld_store *s)
{
	listctx x;
	const char *name, *src;
	size_t i, len;
	int rc;
	*out = NULL;
	if ((rc = veld_store__enter(s)))
		return rc;
	memset(&x, 0, sizeof x);
	x.s = s;
	x.forms = json_object();
	x.arr = json_array();
	if (!x.forms || !x.arr)
		x.rc = veld_err__oom(veld_store__err(s));
	for (i = 0; !x.rc && veld_form__shipped(i, &name, &src, &len); i++) {
		veld_form *f = NULL;
		if ((x.rc = veld_form__load(&f, name, src, len, NULL, veld_store__err(s))) == 0)
			list_version(&x, name, veld_form__version(f), "shipped");
		veld_form__free(f);
	}
	if (!x.rc)
		x.rc = veld_published__each(s, VELD_SCRIPT_FORM, 0, list_published, &x);
	json_decref(x.forms);
	if (x.rc) {
		json_decref(x.arr);
		return x.rc;
	}
	return veld_store__json_out(out, s, x.arr);
}

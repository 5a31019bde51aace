/*
** cmd_case.c — cases and records: case new|list|show, record put|show|delete.
**
** Field arguments: FIELD=TEXT sets a text value; FIELD:=JSON sets any JSON
** value (numbers, true/false, null, ["multi","choice"]).  Repeating groups
** use dotted paths (acties.a1.status=lopend) or nested objects in --file.
*/
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static json_t *load_fields_file(int *code, const char *what, const char *path);

/* case new [--name ..] [--postcode ..] ... [--file JSON|-] / case update CASE
** [--name ..] ... [--file JSON|-]: the options over what --file holds, so
** a client's data need not pass through the command line. */
static int case_new_update(cli *c, int update)
{
	static const char *const valued[] = {"--name", "--postcode", "--birth", "--address", "--phone", "--ref", "--file",
	                                     NULL};
	static const char *const keys[] = {"name", "postcode", "birth", "address", "phone", "ref", NULL};
	const char *what = update ? "case update" : "case new", *file = cli_opt(c, "--file");
	const char *id_arg = update ? cli_arg(c, 2, 0, valued) : NULL;
	char id[VELD_IDSIZE], *txt;
	json_t *h;
	veld_store *s;
	int i, rc, code = 0;
	if ((code = cli_check_opts(c, 2, valued, NULL)))
		return code;
	if (update ? !id_arg || cli_arg(c, 2, 1, valued) : cli_arg(c, 2, 0, valued) != NULL)
		return cli_usage(update ? "case update CASE [--name ..] [--postcode ..] [--birth ..] [--address ..] [--phone ..] "
		                          "[--file JSON|-]"
		                        : "case new takes no positional arguments");
	if (!update && !file && (!cli_opt(c, "--name") || !cli_opt(c, "--postcode")))
		return cli_usage("case new --name NAME --postcode PC [--birth DATE] [--address TEXT] [--phone TEXT] "
		                 "[--file JSON|-]");
	h = file ? load_fields_file(&code, what, file) : json_object();
	if (!h)
		return code ? code : EXIT_ERR;
	for (i = 0; keys[i]; i++) {
		const char *v = cli_opt(c, valued[i]);
		json_t *js = v ? json_string(v) : NULL;
		if (v && !js) {
			json_decref(h);
			cli_error(what, "%s is not valid UTF-8", valued[i]);
			return EXIT_INPUT;
		}
		if (js)
			json_object_set_new(h, keys[i], js);
	}
	txt = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	if (!txt)
		return cli_usage("case fields must be valid UTF-8");
	if ((code = cli_open(&s, c))) {
		free(txt);
		return code;
	}
	rc = update ? veld_case_update(s, id_arg, txt) : veld_case_new(id, s, txt);
	free(txt);
	code = rc ? cli_fail(s, rc, what) : EXIT_OK;
	if (!rc && update)
		printf(c->json ? "{\"updated\":\"%s\"}\n" : "updated %s\n", id_arg);
	else if (!rc)
		printf(c->json ? "{\"id\":\"%s\"}\n" : "%s\n", id);
	veld_store_close(s);
	return code;
}

static void print_case_list(const char *txt)
{
	json_t *arr = json_loads(txt, 0, NULL), *e;
	size_t i;
	printf("%-32s  %-8s  %7s  %9s  %s\n", "CASE", "POSTCODE", "RECORDS", "CONFLICTS", "NAME");
	json_array_foreach(arr, i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		char *pc = cli_visible(json_string_value(json_object_get(e, "postcode"))), *nm = cli_visible(name);
		printf("%-32s  %-8s  %7lld  %9lld  %s\n", json_string_value(json_object_get(e, "id")), pc ? pc : "?",
		       (long long)json_integer_value(json_object_get(e, "records")),
		       (long long)json_integer_value(json_object_get(e, "conflicts")),
		       name ? (nm ? nm : "?")
		       : json_is_false(json_object_get(e, "header")) ? "(header not shared with this device)"
		                                                      : "");
		free(pc);
		free(nm);
	}
	json_decref(arr);
}

/* Human form of one record view. */
static void print_record(json_t *r, const char *indent)
{
	const char *k;
	json_t *v;
	printf("%srecord %s  form %s%s\n", indent, json_string_value(json_object_get(r, "id")),
	       json_string_value(json_object_get(r, "form")),
	       json_is_true(json_object_get(r, "deleted")) ? "  (deleted)" : "");
	json_object_foreach(json_object_get(r, "fields"), k, v)
	{
		char *val = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		printf("%s  %s = %s\n", indent, k, val ? val : "?");
		free(val);
	}
	json_object_foreach(json_object_get(r, "conflicts"), k, v)
	{
		char *val = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		printf("%s  CONFLICT %s: %s\n", indent, k, val ? val : "?");
		free(val);
	}
}

static void print_case(const char *txt)
{
	json_t *j = json_loads(txt, 0, NULL), *r;
	const char *k;
	json_t *v;
	size_t i;
	printf("case %s\n", json_string_value(json_object_get(j, "id")));
	json_object_foreach(json_object_get(j, "header"), k, v)
	{
		char *vis = cli_visible(json_string_value(v));
		printf("  %s: %s\n", k, vis ? vis : "?");
		free(vis);
	}
	printf("  %zu record(s), %zu conflict(s)\n", json_array_size(json_object_get(j, "records")),
	       json_array_size(json_object_get(j, "conflicts")));
	json_array_foreach(json_object_get(j, "records"), i, r)
	{
		print_record(r, "  ");
	}
	json_decref(j);
}

static void print_access(const char *json)
{
	json_t *arr = json_loads(json, 0, NULL), *e;
	size_t i;
	json_array_foreach(arr, i, e)
	{
		char *name = cli_visible(json_string_value(json_object_get(e, "name")));
		printf("%-8s %s %-20s %-9s %-6s %s%s\n", json_string_value(json_object_get(e, "compartment")),
		       json_string_value(json_object_get(e, "device")), name ? name : "",
		       json_string_value(json_object_get(e, "role")), json_string_value(json_object_get(e, "why")),
		       json_is_true(json_object_get(e, "newest")) ? "current key" : "older keys only",
		       json_is_true(json_object_get(e, "revoked")) ? ", revoked" : "");
		free(name);
	}
	json_decref(arr);
}

/* case list / case show CASE / case access CASE (office) */
#define CASE_LIST   0
#define CASE_SHOW   1
#define CASE_ACCESS 2
static int case_list_show(cli *c, int mode)
{
	static const char *const usage[] = {"case list", "case show CASE", "case access CASE"};
	static const char *const what[] = {"case list", "case show", "case access"};
	veld_store *s;
	char *out = NULL;
	const char *id = mode != CASE_LIST ? cli_arg(c, 2, 0, NULL) : NULL;
	int rc, code;
	if ((code = cli_check_opts(c, 2, NULL, NULL)))
		return code;
	if (mode != CASE_LIST ? (!id || c->argc != 3) : c->argc != 2)
		return cli_usage(usage[mode]);
	if ((code = cli_open(&s, c)))
		return code;
	rc = mode == CASE_SHOW     ? veld_case_show_json(&out, s, id)
	     : mode == CASE_ACCESS ? veld_case_access_json(&out, s, id)
	                           : veld_case_list_json(&out, s);
	code = rc ? cli_fail(s, rc, what[mode]) : EXIT_OK;
	if (!rc && c->json)
		printf("%s\n", out);
	else if (!rc)
		mode == CASE_SHOW ? print_case(out) : mode == CASE_ACCESS ? print_access(out) : print_case_list(out);
	veld_free(out);
	veld_store_close(s);
	return code;
}

/* case consent CASE --scope SCOPE [--until DATE] [--note TEXT] [--withdraw] / case share CASE --with
** DEVICE --scope SCOPE / case unshare CASE --with DEVICE --scope SCOPE */
#define CASE_CONSENT 0
#define CASE_SHARE   1
#define CASE_UNSHARE 2
static int case_consent_share(cli *c, int mode)
{
	static const char *const valued[] = {"--scope", "--with", "--until", "--note", NULL};
	static const char *const flags[] = {"--withdraw", NULL};
	static const char *const usage[] = {"case consent CASE --scope SCOPE [--until DATE] [--note TEXT] [--withdraw]",
	                                    "case share CASE --with DEVICE --scope SCOPE",
	                                    "case unshare CASE --with DEVICE --scope SCOPE"};
	static const char *const what[] = {"case consent", "case share", "case unshare"};
	const char *id = cli_arg(c, 2, 0, valued), *scope = cli_opt(c, "--scope"), *dev = cli_opt(c, "--with");
	const char *until = cli_opt(c, "--until"), *note = cli_opt(c, "--note");
	int withdraw = cli_flag(c, "--withdraw"), rc, code;
	veld_store *s;
	if ((code = cli_check_opts(c, 2, valued, mode == CASE_CONSENT ? flags : NULL)))
		return code;
	if (!id || !scope || (mode != CASE_CONSENT && !dev) || (mode != CASE_CONSENT && (until || note)) ||
	    (mode == CASE_CONSENT && dev) || (withdraw && (until || note)) || cli_arg(c, 2, 1, valued))
		return cli_usage(usage[mode]);
	if ((code = cli_open(&s, c)))
		return code;
	rc = mode == CASE_SHARE     ? veld_case_share(s, id, dev, scope)
	     : mode == CASE_UNSHARE ? veld_case_unshare(s, id, dev, scope)
	     : withdraw             ? veld_case_consent_withdraw(s, id, scope)
	                            : veld_case_consent_ext(s, id, scope, until, note);
	code = rc ? cli_fail(s, rc, what[mode]) : EXIT_OK;
	if (!rc && c->json)
		printf("{\"ok\":true}\n");
	else if (!rc && mode == CASE_SHARE)
		printf("shared %s of case %s with %s; sync to deliver the key\n", scope, id, dev);
	else if (!rc && mode == CASE_UNSHARE)
		printf("took %s of case %s back from %s; the office's next sync takes the keys away\n", scope, id, dev);
	else if (!rc)
		printf(withdraw ? "consent for %s withdrawn on case %s; the office's next sync takes the keys away\n"
		                : "consent for %s recorded on case %s\n",
		       scope, id);
	veld_store_close(s);
	return code;
}

int cmd_case(cli *c)
{
	const char *sub = c->argc > 1 ? c->argv[1] : NULL;
	if (sub && !strcmp(sub, "erase")) {
		veld_store *s;
		int rc, code;
		if (c->argc != 3)
			return cli_usage("case erase CASE");
		if ((code = cli_open(&s, c)))
			return code;
		rc = veld_case_erase(s, c->argv[2]);
		code = rc ? cli_fail(s, rc, "case erase") : EXIT_OK;
		if (!rc)
			printf(c->json ? "{\"erased\":\"%s\"}\n" : "erased %s here; sync to erase it everywhere\n", c->argv[2]);
		veld_store_close(s);
		return code;
	}
	if (sub && !strcmp(sub, "consent"))
		return case_consent_share(c, CASE_CONSENT);
	if (sub && !strcmp(sub, "share"))
		return case_consent_share(c, CASE_SHARE);
	if (sub && !strcmp(sub, "unshare"))
		return case_consent_share(c, CASE_UNSHARE);
	if (sub && !strcmp(sub, "new"))
		return case_new_update(c, 0);
	if (sub && !strcmp(sub, "update"))
		return case_new_update(c, 1);
	if (sub && !strcmp(sub, "list"))
		return case_list_show(c, CASE_LIST);
	if (sub && !strcmp(sub, "show"))
		return case_list_show(c, CASE_SHOW);
	if (sub && !strcmp(sub, "access"))
		return case_list_show(c, CASE_ACCESS);
	return cli_usage("case new|update|list|show|consent|share|unshare|access|erase");
}

/* Read --file (a path or "-") into a JSON object; NULL with *code set. */
static json_t *load_fields_file(int *code, const char *what, const char *path)
{
	json_t *j = cli_load_json(code, what, path);
	if (j && !json_is_object(j)) {
		cli_error(what, "%s: fields must be a JSON object", strcmp(path, "-") ? path : "stdin");
		json_decref(j);
		*code = EXIT_INPUT;
		return NULL;
	}
	return j;
}

/* Collect FIELD=TEXT and FIELD:=JSON words into `fields`. */
static int add_field_args(cli *c, json_t *fields, const char *const *valued)
{
	const char *w;
	int i;
	for (i = 2; (w = cli_arg(c, 2, i, valued)); i++) {
		const char *eq = strchr(w, '=');
		char *key;
		json_t *v;
		if (!eq || eq == w)
			return cli_usage("'%s' is not FIELD=TEXT or FIELD:=JSON", w);
		if (eq > w && eq[-1] == ':') {
			json_error_t err;
			key = strndup(w, (size_t)(eq - 1 - w));
			v = json_loads(eq + 1, JSON_DECODE_ANY, &err);
			if (!v) {
				cli_error(key ? key : "field", "value is not JSON: %s", err.text);
				free(key);
				return EXIT_INPUT;
			}
		} else {
			key = strndup(w, (size_t)(eq - w));
			v = json_string(eq + 1);
			if (!v) {
				cli_error(key ? key : "field", "value is not valid UTF-8");
				free(key);
				return EXIT_INPUT;
			}
		}
		if (!key || json_object_set_new(fields, key, v)) {
			free(key);
			return EXIT_ERR;
		}
		free(key);
	}
	return 0;
}

static int record_put(cli *c)
{
	static const char *const valued[] = {"--record", "--file", NULL};
	const char *case_id = cli_arg(c, 2, 0, valued), *form = cli_arg(c, 2, 1, valued);
	const char *file = cli_opt(c, "--file");
	char id[VELD_IDSIZE], *txt = NULL;
	json_t *fields = NULL;
	veld_store *s = NULL;
	int rc, code;
	if ((code = cli_check_opts(c, 2, valued, NULL)))
		return code;
	if (!case_id || !form)
		return cli_usage("record put CASE FORM [--record RID] [FIELD=TEXT | FIELD:=JSON ...] [--file JSON|-]");
	fields = file ? load_fields_file(&code, "record put", file) : json_object();
	if (!fields)
		return file ? code : EXIT_ERR;
	if ((code = add_field_args(c, fields, valued)))
		goto done;
	txt = json_dumps(fields, JSON_COMPACT);
	if (!txt) {
		code = EXIT_ERR;
		goto done;
	}
	if ((code = cli_open(&s, c)))
		goto done;
	rc = veld_record_put(id, s, case_id, form, cli_opt(c, "--record"), txt);
	code = rc ? cli_fail(s, rc, "record put") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"id\":\"%s\"}\n" : "%s\n", id);
done:
	veld_store_close(s);
	json_decref(fields);
	free(txt);
	return code;
}

static int record_show_delete(cli *c, int del)
{
	veld_store *s;
	char *out = NULL;
	const char *id = cli_arg(c, 2, 0, NULL);
	int rc, code;
	if ((code = cli_check_opts(c, 2, NULL, NULL)))
		return code;
	if (!id || c->argc != 3)
		return cli_usage(del ? "record delete RID" : "record show RID");
	if ((code = cli_open(&s, c)))
		return code;
	rc = del ? veld_record_delete(s, id) : veld_record_show_json(&out, s, id);
	code = rc ? cli_fail(s, rc, del ? "record delete" : "record show") : EXIT_OK;
	if (!rc && del) {
		printf(c->json ? "{\"deleted\":\"%s\"}\n" : "deleted %s\n", id);
	} else if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *j = json_loads(out, 0, NULL);
		print_record(j, "");
		json_decref(j);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

int cmd_record(cli *c)
{
	const char *sub = c->argc > 1 ? c->argv[1] : NULL;
	if (sub && !strcmp(sub, "put"))
		return record_put(c);
	if (sub && !strcmp(sub, "show"))
		return record_show_delete(c, 0);
	if (sub && !strcmp(sub, "delete"))
		return record_show_delete(c, 1);
	return cli_usage("record put|show|delete");
}

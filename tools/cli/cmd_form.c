/*
** cmd_form.c — forms on the command line: form list|show|check|publish,
** import, and report (with report publish).  `form fill`, the interactive
** one, is cmd_fill.c's.
*/
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

static int form_list(cli *c)
{
	veld_store *s;
	char *out = NULL;
	int rc, code;
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_form_list_json(&out, s);
	code = rc ? cli_fail(s, rc, "form list") : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *arr = json_loads(out, 0, NULL), *f;
		size_t i;
		json_array_foreach(arr, i, f)
		{
			json_t *v;
			size_t k;
			printf("%-20s v%-3lld %-9s %s\n", json_string_value(json_object_get(f, "name")),
			       (long long)json_integer_value(json_object_get(f, "version")),
			       json_string_value(json_object_get(f, "compartment")), json_string_value(json_object_get(f, "label")));
			json_array_foreach(json_object_get(f, "versions"), k, v)
			{
				printf("%-20s   v%lld %s\n", "", (long long)json_integer_value(json_object_get(v, "version")),
				       json_string_value(json_object_get(v, "origin")));
			}
		}
		json_decref(arr);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

static void print_fields(json_t *fields, const char *indent)
{
	json_t *f, *o;
	size_t i, k;
	json_array_foreach(fields, i, f)
	{
		const char *type = json_string_value(json_object_get(f, "type"));
		printf("%s%-24s %-7s %s%s%s\n", indent, json_string_value(json_object_get(f, "name")), type,
		       json_string_value(json_object_get(f, "label")),
		       json_is_true(json_object_get(f, "required")) ? " *" : "",
		       json_is_true(json_object_get(f, "repeating")) ? " (herhaalbaar)" : "");
		json_array_foreach(json_object_get(f, "options"), k, o)
		{
			char *v = json_dumps(json_object_get(o, "value"), JSON_ENCODE_ANY);
			printf("%s    %s = %s\n", indent, v ? v : "?", json_string_value(json_object_get(o, "label")));
			free(v);
		}
		if (json_object_get(f, "fields")) {
			char sub[64];
			snprintf(sub, sizeof sub, "%s    ", indent);
			print_fields(json_object_get(f, "fields"), sub);
		}
	}
}

static int form_show(cli *c)
{
	const char *name = cli_arg(c, 2, 0, NULL);
	veld_store *s;
	char *out = NULL;
	int rc, code;
	if (!name || c->argc != 3)
		return cli_usage("form show FORM");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_form_schema_json(&out, s, name);
	code = rc ? cli_fail(s, rc, "form show") : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *j = json_loads(out, 0, NULL);
		printf("%s (%s, versie %lld, compartiment %s)\n", json_string_value(json_object_get(j, "label")),
		       json_string_value(json_object_get(j, "name")), (long long)json_integer_value(json_object_get(j, "version")),
		       json_string_value(json_object_get(j, "compartment")));
		print_fields(json_object_get(j, "fields"), "  ");
		json_decref(j);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

static int form_check(cli *c)
{
	const char *path = cli_arg(c, 2, 0, NULL);
	char *out = NULL;
	int rc;
	if (!path || c->argc != 3)
		return cli_usage("form check FILE.lua");
	rc = veld_form_check(&out, path);
	if (rc) {
		cli_error("form check", "%s", out ? out : "cannot load the form");
		veld_free(out);
		/* the form's own failures are input rejected; a file not there is I/O */
		return cli_exit_code(rc) == EXIT_ERR && rc != VELD_ENOTFOUND ? EXIT_INPUT : cli_exit_code(rc);
	}
	if (c->json)
		printf("%s\n", out);
	else
		printf("%s: the form loads; `veld form show` renders its schema\n", path);
	veld_free(out);
	return EXIT_OK;
}

/* form publish FILE.lua, report publish FILE.lua (office): checked, stored,
** signed into main by the next sync. */
static int script_publish(cli *c, const char *what)
{
	const char *path = cli_arg(c, 2, 0, NULL);
	int is_form = !strcmp(what, "form publish");
	veld_store *s;
	char *out = NULL;
	int rc, code;
	if (!path || c->argc != 3)
		return cli_usage("%s FILE.lua", what);
	if ((code = cli_open(&s, c)))
		return code;
	rc = is_form ? veld_form_publish(&out, s, path) : veld_report_publish(&out, s, path);
	code = rc ? cli_fail(s, rc, what) : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *j = json_loads(out, 0, NULL);
		printf("%s %s version %lld published: devices take it at their next sync after the office's\n",
		       is_form ? "form" : "report", json_string_value(json_object_get(j, "name")),
		       (long long)json_integer_value(json_object_get(j, "version")));
		json_decref(j);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

int cmd_form(cli *c)
{
	const char *sub = c->argc > 1 ? c->argv[1] : NULL;
	if (sub && !strcmp(sub, "list"))
		return form_list(c);
	if (sub && !strcmp(sub, "show"))
		return form_show(c);
	if (sub && !strcmp(sub, "check"))
		return form_check(c);
	if (sub && !strcmp(sub, "fill"))
		return cmd_form_fill(c);
	if (sub && !strcmp(sub, "publish"))
		return script_publish(c, "form publish");
	return cli_usage("form list|show|check|fill|publish");
}

/* ---- import --------------------------------------------------------------------- */

static int import_progress(long done, long total, void *payload)
{
	(void)payload;
	fprintf(stderr, "\rimport %ld/%ld", done, total);
	fflush(stderr);
	return 0;
}

int cmd_import(cli *c)
{
	const char *path = cli_arg(c, 1, 0, NULL);
	veld_store *s;
	FILE *in;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long count = 0;
	int rc, code;
	if (!path || c->argc != 2)
		return cli_usage("import FILE (JSON Lines; - for stdin)");
	if (!(in = cli_fopen("import", path, "rb")))
		return EXIT_ERR;
	for (;;) {
		size_t n;
		if (len + 65536 > cap) {
			char *p = realloc(buf, cap = cap ? 2 * cap : 1 << 20);
			if (!p) {
				free(buf);
				if (in != stdin)
					fclose(in);
				cli_error("import", "out of memory");
				return EXIT_ERR;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len, in);
		len += n;
		if (n == 0)
			break;
	}
	code = ferror(in) ? EXIT_ERR : EXIT_OK;
	if (code)
		cli_error("import", "cannot read %s: %s", path, strerror(errno));
	if (in != stdin)
		fclose(in);
	if (code || (code = cli_open(&s, c))) {
		free(buf);
		return code;
	}
	rc = veld_import(&count, s, buf, len, !c->json && isatty(2) ? import_progress : NULL, NULL);
	if (!c->json && isatty(2))
		fputc('\n', stderr);
	free(buf);
	code = rc ? cli_fail(s, rc, "import") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"imported\":%ld}\n" : "imported %ld record(s)\n", count);
	veld_store_close(s);
	return code;
}

/* ---- report --------------------------------------------------------------------- */

/* report NAME [--year Y] [--case CASE] [--format text|json|csv|html] [--out FILE] */
int cmd_report(cli *c)
{
	static const char *const valued[] = {"--year", "--case", "--format", "--out", NULL};
	const char *name = cli_arg(c, 1, 0, valued), *year = cli_opt(c, "--year"), *case_id = cli_opt(c, "--case");
	const char *format = cli_opt(c, "--format"), *path = cli_opt(c, "--out");
	veld_store *s;
	json_t *params;
	char *ptxt, *out = NULL;
	int rc, code;
	if (name && !strcmp(name, "publish") && c->argc == 3)
		return script_publish(c, "report publish");
	if ((code = cli_check_opts(c, 1, valued, NULL)))
		return code;
	if (!name || cli_arg(c, 1, 1, valued))
		return cli_usage("report NAME [--year Y] [--case CASE] [--format text|json|csv|html] [--out FILE]");
	if (!format)
		format = c->json ? "json" : "text";
	params = json_object();
	if (year) {
		char *end;
		long y = strtol(year, &end, 10);
		if (*end || y < 1900 || y > 2200) {
			json_decref(params);
			return cli_usage("--year needs a year like 2017");
		}
		json_object_set_new(params, "year", json_integer(y));
	}
	if (case_id)
		json_object_set_new(params, "case", json_string(case_id));
	ptxt = json_dumps(params, JSON_COMPACT);
	json_decref(params);
	if ((code = cli_open(&s, c))) {
		free(ptxt);
		return code;
	}
	/* an author's report file, or a report the store knows by name */
	if (strchr(name, '/') || (strlen(name) > 4 && !strcmp(name + strlen(name) - 4, ".lua")))
		rc = veld_report_file(&out, s, name, ptxt, format);
	else
		rc = veld_report(&out, s, name, ptxt, format);
	free(ptxt);
	code = rc ? cli_fail(s, rc, "report") : EXIT_OK;
	if (!rc && path) {
		if (cli_write_file("report", path, out, "")) {
			code = EXIT_ERR;
		} else if (!c->json) {
			printf("report written to %s\n", path);
		}
	} else if (!rc) {
		fputs(out, stdout);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

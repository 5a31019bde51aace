/*
** cmd_form.c — forms on the command line: form list|show|check|fill|
** publish, import, and report (with report publish).
**
** `form fill` walks a form's schema on a terminal, field by field (groups
** and repeating groups included), in Dutch as the form labels it; after each
** answer the record so far is checked by the form and the failures of the
** fields already answered are shown at once, so a mistake is fixed where it
** was made.  Nothing is stored until the end, and only a valid record.
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

/* ---- form fill ---------------------------------------------------------------- */

typedef struct filler {
	veld_store *s;
	const char *case_id, *form;
	json_t *record;   /* flat answers so far */
	json_t *answered; /* paths asked so far */
	FILE *in;
	int items;
} filler;

/* Read one line; NULL at end of input. */
static char *ask(filler *f, const char *prompt)
{
	static const size_t cap = 2048;
	char *line = malloc(cap);
	if (!line)
		return NULL;
	fputs(prompt, stdout);
	fflush(stdout);
	if (!fgets(line, (int)cap, f->in)) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}

static int visible(filler *f, json_t *field, const char *prefix)
{
	json_t *vis = json_object_get(field, "visible"), *when = json_object_get(vis, "when");
	const char *op;
	json_t *cur, *want;
	char path[256];
	if (!when)
		return !json_is_false(vis);
	snprintf(path, sizeof path, "%s%s", prefix, json_string_value(json_object_get(when, "field")));
	cur = json_object_get(f->record, path);
	if (!cur)
		cur = json_object_get(f->record, json_string_value(json_object_get(when, "field")));
	want = json_object_get(when, "value");
	op = json_string_value(json_object_get(when, "op"));
	if (op && !strcmp(op, "has")) {
		size_t i;
		json_t *e;
		json_array_foreach(cur, i, e)
		{
			if (json_equal(e, want))
				return 1;
		}
		return 0;
	}
	if (op && !strcmp(op, "ne"))
		return !json_equal(cur, want);
	return cur && json_equal(cur, want);
}

/* Turn typed text into the field's value; NULL (and a message) if it cannot be. */
static json_t *parse_answer(json_t *field, const char *text)
{
	const char *type = json_string_value(json_object_get(field, "type"));
	json_t *opts = json_object_get(field, "options"), *o;
	size_t i;
	if (!strcmp(type, "int")) {
		char *end;
		long long v = strtoll(text, &end, 10);
		return *end ? NULL : json_integer(v);
	}
	if (!strcmp(type, "bool"))
		return (!strcmp(text, "j") || !strcmp(text, "ja")) ? json_true()
		       : (!strcmp(text, "n") || !strcmp(text, "nee")) ? json_false() : NULL;
	if (!strcmp(type, "choice") || !strcmp(type, "multi")) {
		json_t *arr = !strcmp(type, "multi") ? json_array() : NULL;
		char *copy = strdup(text), *tok, *save = NULL;
		json_t *one = NULL;
		for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
			long n = strtol(tok, NULL, 10);
			json_t *val = NULL;
			/* An option by its number in the list, or by its value. */
			if (n >= 1 && (size_t)n <= json_array_size(opts))
				val = json_object_get(json_array_get(opts, (size_t)n - 1), "value");
			json_array_foreach(opts, i, o)
			{
				json_t *ov = json_object_get(o, "value");
				if (json_is_string(ov) && !strcmp(json_string_value(ov), tok))
					val = ov;
			}
			if (!val) {
				json_decref(arr);
				free(copy);
				return NULL;
			}
			if (arr)
				json_array_append(arr, val);
			else
				one = json_incref(val);
		}
		free(copy);
		return arr ? arr : one;
	}
	return json_string(text); /* text, date, decimal: the form checks them */
}

/* Show the form's complaints about the fields answered so far; returns 1
** when `path` itself is among them (the answer is then asked again). */
static int show_failures(filler *f, const char *path)
{
	int mine = 0;
	char *txt = json_dumps(f->record, JSON_COMPACT), *errs = NULL;
	json_t *arr, *e;
	size_t i;
	veld_record_validate_json(&errs, f->s, f->case_id, f->form, NULL, txt);
	free(txt);
	arr = errs ? json_loads(errs, 0, NULL) : NULL;
	json_array_foreach(arr, i, e)
	{
		const char *field = json_string_value(json_object_get(e, "field"));
		if (field && json_object_get(f->answered, field))
			printf("  ! %s: %s\n", field, json_string_value(json_object_get(e, "message")));
		mine |= field && !strcmp(field, path);
	}
	json_decref(arr);
	veld_free(errs);
	return mine;
}

static int fill_fields(filler *f, json_t *fields, const char *prefix);

static int fill_field(filler *f, json_t *field, const char *prefix)
{
	const char *name = json_string_value(json_object_get(field, "name"));
	const char *type = json_string_value(json_object_get(field, "type"));
	char path[256], prompt[512];
	json_t *opts = json_object_get(field, "options"), *o;
	size_t i;
	snprintf(path, sizeof path, "%s%s", prefix, name);
	if (!visible(f, field, prefix))
		return 0;
	if (!strcmp(type, "group")) {
		printf("-- %s\n", json_string_value(json_object_get(field, "label")));
		if (!json_is_true(json_object_get(field, "repeating"))) {
			char sub[300];
			snprintf(sub, sizeof sub, "%s.", path);
			return fill_fields(f, json_object_get(field, "fields"), sub);
		}
		for (;;) {
			char *a = ask(f, "   Item toevoegen? (j/n) ");
			char sub[300];
			int more = a && (a[0] == 'j' || a[0] == 'J');
			free(a);
			if (!more)
				return 0;
			snprintf(sub, sizeof sub, "%s.i%d.", path, ++f->items);
			if (fill_fields(f, json_object_get(field, "fields"), sub))
				return -1;
		}
	}
	json_array_foreach(opts, i, o)
	{
		char *v = json_dumps(json_object_get(o, "value"), JSON_ENCODE_ANY);
		printf("   %zu) %s\n", i + 1, json_string_value(json_object_get(o, "label")));
		free(v);
	}
	snprintf(prompt, sizeof prompt, "%s%s%s: ", json_string_value(json_object_get(field, "label")),
	         json_is_true(json_object_get(field, "required")) ? " *" : "",
	         !strcmp(type, "multi") ? " (nummers, komma's)" : !strcmp(type, "bool") ? " (j/n)"
	                                                          : !strcmp(type, "date") ? " (JJJJ-MM-DD)" : "");
	for (;;) {
		char *a = ask(f, prompt);
		json_t *v;
		if (!a)
			return -1;
		if (!*a) {
			free(a);
			return 0; /* left empty */
		}
		v = parse_answer(field, a);
		free(a);
		if (!v) {
			printf("  ! ongeldig antwoord\n");
			continue;
		}
		json_object_set_new(f->record, path, v);
		json_object_set_new(f->answered, path, json_true());
		if (!show_failures(f, path))
			return 0;
		json_object_del(f->record, path);
		json_object_del(f->answered, path);
	}
}

static int fill_fields(filler *f, json_t *fields, const char *prefix)
{
	if (strlen(prefix) > 200)
		return -1;
	json_t *field;
	size_t i;
	json_array_foreach(fields, i, field)
	{
		if (fill_field(f, field, prefix))
			return -1;
	}
	return 0;
}

static int form_fill(cli *c)
{
	const char *case_id = cli_arg(c, 2, 0, NULL), *form = cli_arg(c, 2, 1, NULL);
	veld_store *s;
	char *schema = NULL, *txt = NULL, id[VELD_IDSIZE];
	json_t *j = NULL;
	filler f;
	int rc, code;
	if (!case_id || !form || c->argc != 4)
		return cli_usage("form fill CASE FORM");
	if (!isatty(0)) {
		cli_error("form fill", "needs a terminal; use `veld record put` from scripts");
		return EXIT_USAGE;
	}
	if ((code = cli_open(&s, c)))
		return code;
	memset(&f, 0, sizeof f);
	f.s = s;
	f.case_id = case_id;
	f.form = form;
	f.in = stdin;
	f.record = json_object();
	f.answered = json_object();
	rc = veld_form_schema_json(&schema, s, form);
	if (rc) {
		code = cli_fail(s, rc, "form fill");
		goto done;
	}
	j = json_loads(schema, 0, NULL);
	printf("%s — leeg laten om over te slaan, * is verplicht\n", json_string_value(json_object_get(j, "label")));
	if (fill_fields(&f, json_object_get(j, "fields"), "")) {
		cli_error("form fill", "input ended; nothing stored");
		code = EXIT_INPUT;
		goto done;
	}
	/* Before storing: ask again for what the form still refuses (required
	** fields left empty, rules across fields), a few rounds at most. */
	for (rc = 0; rc < 3; rc++) {
		char *errs = NULL;
		json_t *arr, *e, *field;
		size_t i, k;
		int asked = 0;
		txt = json_dumps(f.record, JSON_COMPACT);
		veld_record_validate_json(&errs, s, case_id, form, NULL, txt);
		free(txt);
		txt = NULL;
		arr = errs ? json_loads(errs, 0, NULL) : NULL;
		veld_free(errs);
		json_array_foreach(arr, i, e)
		{
			const char *path = json_string_value(json_object_get(e, "field"));
			printf("  ! %s: %s\n", path, json_string_value(json_object_get(e, "message")));
			json_array_foreach(json_object_get(j, "fields"), k, field)
			{
				if (path && !strcmp(path, json_string_value(json_object_get(field, "name")))) {
					json_object_del(f.record, path);
					if (fill_field(&f, field, "") == 0)
						asked++;
				}
			}
		}
		json_decref(arr);
		if (!asked)
			break;
	}
	txt = json_dumps(f.record, JSON_COMPACT);
	rc = veld_record_put(id, s, case_id, form, NULL, txt);
	code = rc ? cli_fail(s, rc, "form fill") : EXIT_OK;
	if (!rc)
		printf("opgeslagen: %s\n", id);
done:
	free(txt);
	veld_free(schema);
	json_decref(j);
	json_decref(f.record);
	json_decref(f.answered);
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
		return form_fill(c);
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

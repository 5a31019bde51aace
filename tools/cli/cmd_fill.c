/*
** cmd_fill.c — `form fill CASE FORM [--from-previous]` and `drafts [CASE]`.
**
** form fill resumes the newest draft of the case and form, if any (it says
** so, and the walk says where it goes on), or with --from-previous starts
** from the case's latest record of the form; fill.c walks the form; a
** record the form accepts is stored and its draft deleted.  When the walk
** ends without one (input ended, the form still refuses it) nothing is
** stored, the draft stays and fill says how to go on (exit 5).  drafts
** lists the unfinished drafts: id, case, form, when changed, how many
** answers, never the answers.
*/
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* When a draft (`d`, as listed) last changed: "YYYY-MM-DD HH:MM", UTC. */
static void changed(char out[32], json_t *d)
{
	time_t t = (time_t)(json_integer_value(json_object_get(d, "updated")) / 1000);
	struct tm tm;
	strftime(out, 32, "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
}

/* Resume the newest draft of this case and form, if there is one: 1 when
** one was found, 0 when not, else the library's error. */
static int resume(cli_filler *f)
{
	char *out = NULL;
	json_t *list = NULL, *d = NULL, *e;
	size_t i;
	int rc = veld_draft_list_json(&out, f->s, f->case_id, f->form);
	if (!rc && (list = json_loads(out, 0, NULL)) && json_array_size(list)) {
		const char *id = json_string_value(json_object_get(json_array_get(list, 0), "id"));
		veld_free(out);
		out = NULL;
		rc = veld_draft_get(&out, f->s, id);
		d = rc ? NULL : json_loads(out, 0, NULL);
	}
	if (d) {
		char when[32];
		snprintf(f->draft, sizeof f->draft, "%s", json_string_value(json_object_get(d, "id")));
		json_object_update(f->record, json_object_get(json_object_get(d, "draft"), "fields"));
		json_array_foreach(json_object_get(json_object_get(d, "draft"), "asked"), i, e)
		{
			if (json_is_string(e))
				json_object_set_new(f->asked, json_string_value(e), json_true());
		}
		changed(when, d);
		printf("Concept %s van %s UTC hervat: %lld antwoord(en) bewaard.\n", f->draft, when,
		       (long long)json_integer_value(json_object_get(d, "answers")));
		f->resumed = 1;
	}
	veld_free(out);
	json_decref(list);
	json_decref(d);
	return rc ? rc : f->resumed;
}

/* ---- form fill ------------------------------------------------------------------------ */

/* The date a record of this form is "of": its afnamedatum, else its datum. */
static const char *record_date(json_t *rec)
{
	json_t *fields = json_object_get(rec, "fields");
	const char *d = json_string_value(json_object_get(fields, "afnamedatum"));
	return d ? d : json_string_value(json_object_get(fields, "datum"));
}

/* --from-previous: the answers of the case's latest record of this form
** (by its date), but for the dates of what happened, which are the old
** record's; every field is then asked with that answer shown. */
static int from_previous(cli_filler *f)
{
	char *out = NULL, prefix[CLI_FILL_PATH];
	json_t *c = NULL, *rec, *prev = NULL, *v, *field;
	const char *k, *best = NULL;
	size_t i;
	int rc = veld_case_show_json(&out, f->s, f->case_id);
	if (rc)
		return -cli_fail(f->s, rc, "form fill");
	c = json_loads(out, 0, NULL);
	veld_free(out);
	json_array_foreach(json_object_get(c, "records"), i, rec)
	{
		const char *d = record_date(rec);
		if (strcmp(json_string_value(json_object_get(rec, "form")), f->form) || json_is_true(json_object_get(rec, "deleted")))
			continue;
		if (!prev || (d && (!best || strcmp(d, best) >= 0))) {
			prev = rec;
			best = d;
		}
	}
	if (!prev) {
		printf("Geen vorige %s in dit dossier: een leeg formulier.\n", f->form);
		json_decref(c);
		return 0;
	}
	json_object_foreach(json_object_get(prev, "fields"), k, v)
	{
		field = k[0] == '_' ? NULL : cli_fill_locate(json_object_get(f->schema, "fields"), k, prefix);
		if (field && strcmp(json_string_value(json_object_get(field, "type")), "group") &&
		    !json_is_true(json_object_get(field, "past")))
			json_object_set(f->record, k, v);
	}
	printf("Vertrekt van de vorige (%s, %s): Enter neemt een antwoord over, - wist het.\n",
	       json_string_value(json_object_get(prev, "id")), best ? best : "zonder datum");
	json_decref(c);
	return cli_fill_keep(f);
}

/* Store the answers as a record and delete the draft. */
static int store(cli_filler *f)
{
	char *txt = json_dumps(f->record, JSON_COMPACT), id[VELD_IDSIZE];
	int rc = txt ? veld_record_put(id, f->s, f->case_id, f->form, NULL, txt) : VELD_ERROR;
	free(txt);
	if (rc)
		return cli_fail(f->s, rc, "form fill");
	if (f->draft[0] && (rc = veld_draft_delete(f->s, f->draft)))
		return cli_fail(f->s, rc, "form fill: the record is stored, its draft not deleted");
	printf("opgeslagen: %s\n", id);
	return EXIT_OK;
}

/* The walk, the last checks and the record: an exit code. */
static int fill(cli_filler *f, int previous)
{
	int rc = resume(f);
	if (rc < 0)
		return cli_fail(f->s, rc, "form fill");
	if (rc && previous)
		printf("(--from-previous geldt niet: het concept gaat voor)\n");
	if (!rc && previous && (rc = from_previous(f)))
		return -rc;
	printf("%s — leeg laten om over te slaan of te behouden, * is verplicht\n",
	       json_string_value(json_object_get(f->schema, "label")));
	rc = cli_fill_walk(f);
	if (rc < 0)
		return -rc;
	if (rc == 0)
		return store(f);
	if (!f->draft[0]) {
		printf("\nNiet opgeslagen.\n");
		cli_error("form fill", "%s; nothing stored", rc == CLI_FILL_EOF ? "input ended" : "the form refuses the record");
		return EXIT_INPUT;
	}
	printf("\nNiet opgeslagen. Het concept is bewaard; verder met: veld form fill %s %s\n", f->case_id, f->form);
	cli_error("form fill", "%s; nothing stored, the answers are kept as draft %s: go on with `veld form fill %s %s`",
	          rc == CLI_FILL_EOF ? "input ended" : "the form refuses the record", f->draft, f->case_id, f->form);
	return EXIT_INPUT;
}

int cmd_form_fill(cli *c)
{
	static const char *const flags[] = {"--from-previous", NULL};
	const char *case_id = cli_arg(c, 2, 0, NULL), *form = cli_arg(c, 2, 1, NULL);
	char *schema = NULL;
	cli_filler f;
	int rc, code;
	if ((code = cli_check_opts(c, 2, NULL, flags)))
		return code;
	if (!case_id || !form || cli_arg(c, 2, 2, NULL))
		return cli_usage("form fill CASE FORM [--from-previous]");
	if (!isatty(0)) {
		cli_error("form fill", "needs a terminal; use `veld record put` from scripts");
		return EXIT_USAGE;
	}
	memset(&f, 0, sizeof f);
	if ((code = cli_open(&f.s, c)))
		return code;
	f.case_id = case_id;
	f.form = form;
	f.in = stdin;
	f.record = json_object();
	f.asked = json_object();
	rc = veld_form_schema_json(&schema, f.s, form);
	f.schema = rc ? NULL : json_loads(schema, 0, NULL);
	code = rc ? cli_fail(f.s, rc, "form fill") : fill(&f, cli_flag(c, "--from-previous"));
	veld_free(schema);
	json_decref(f.schema);
	json_decref(f.record);
	json_decref(f.asked);
	veld_store_close(f.s);
	return code;
}

/* ---- drafts ------------------------------------------------------------------------------ */

/* drafts [CASE]: the unfinished drafts, newest first. */
int cmd_drafts(cli *c)
{
	const char *case_id = cli_arg(c, 1, 0, NULL);
	veld_store *s;
	char *out = NULL;
	json_t *arr, *e;
	size_t i;
	int rc, code;
	if ((code = cli_check_opts(c, 1, NULL, NULL)))
		return code;
	if (cli_arg(c, 1, 1, NULL))
		return cli_usage("drafts [CASE]");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_draft_list_json(&out, s, case_id, NULL);
	code = rc ? cli_fail(s, rc, "drafts") : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		arr = json_loads(out, 0, NULL);
		printf("%-32s  %-32s  %-20s  %-16s  %s\n", "DRAFT", "CASE", "FORM", "CHANGED (UTC)", "ANSWERS");
		json_array_foreach(arr, i, e)
		{
			char when[32];
			changed(when, e);
			printf("%-32s  %-32s  %-20s  %-16s  %lld\n", json_string_value(json_object_get(e, "id")),
			       json_string_value(json_object_get(e, "case")), json_string_value(json_object_get(e, "form")), when,
			       (long long)json_integer_value(json_object_get(e, "answers")));
		}
		json_decref(arr);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

/*
** fill.c — the walk of `form fill` (cmd_fill.c) over a form on a terminal.
**
** The walk goes through the form's schema field by field (groups and
** repeating groups included), in Dutch as the form labels it, and marks
** with `*` a field that is required now (required, or its `when` holds).
** After each answer the answers so far are checked by the form: a failure
** of the field just answered is shown with the form's message and the field
** is asked again (an empty answer to a required field is said and left for
** the last checks); the failures of fields answered earlier are shown too.
** After every answer the answers are kept as the draft (veld_draft_put),
** so the walk can be killed at any point; a resumed walk passes what was
** asked already.  At the end, what the form still refuses is asked again (a
** field), or shown again (a group, the repeating groups) until it passes
** or a round changes nothing.
**
** At a prompt with an answer already there (resumed, --from-previous, an
** item being changed, the last checks) it is shown in brackets: Enter keeps
** it, `-` clears it.  At a repeating group: `+` adds an item, `N` changes
** item N, `-N` removes it, Enter goes on; the form's failures that no
** field answers (a rule across groups) are said there.  This file asks and
** prints; it stores nothing but the draft, and the form does the checking.
*/
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>



static int fill_fields(cli_filler *f, json_t *fields, const char *prefix);
static int fill_items(cli_filler *f, json_t *group, const char *path);

/* ---- the terminal ---------------------------------------------------------------- */

/* One line typed after `prompt` (malloc'd, end of line cut); NULL at end of input. */
static char *ask(cli_filler *f, const char *prompt)
{
	static const size_t cap = 4096;
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

/* Before the first question of a resumed walk, and of a group: say where we are. */
static void announce(cli_filler *f, const char *label)
{
	if (f->resumed) {
		printf("== verder bij: %s\n", label);
		f->resumed = 0;
	}
	if (f->header) {
		printf("-- %s\n", f->header);
		f->header = NULL;
	}
}

/* The label of the option of `field` whose value is `v`, or NULL. */
static const char *option_label(json_t *field, json_t *v)
{
	json_t *o;
	size_t i;
	json_array_foreach(json_object_get(field, "options"), i, o)
	{
		if (json_equal(json_object_get(o, "value"), v))
			return json_string_value(json_object_get(o, "label"));
	}
	return NULL;
}

/* Value `v` of `field` as a person reads it (options by label, ja/nee,
** text without control characters); malloc'd. */
static char *shown(json_t *field, json_t *v)
{
	const char *label = option_label(field, v);
	char *out, *txt;
	size_t i, len = 0;
	json_t *e;
	if (json_is_array(v)) {
		out = calloc(1, 1024);
		json_array_foreach(v, i, e)
		{
			const char *l = option_label(field, e);
			if (out && len < 900)
				len += (size_t)snprintf(out + len, 1024 - len, "%s%s", i ? ", " : "", l ? l : "?");
		}
		return out;
	}
	if (label || json_is_boolean(v))
		return strdup(label ? label : json_is_true(v) ? "ja" : "nee");
	if (json_is_string(v))
		return cli_visible(json_string_value(v));
	txt = json_dumps(v, JSON_ENCODE_ANY);
	return txt;
}

/* ---- the form's conditions and checks -------------------------------------------- */

/* A condition of the schema (true, false, {"when": ...}, {"computed": true})
** on the answers of the group or item at `prefix`; `dflt` when it cannot
** be told here (a condition the form computes). */
static int holds(cli_filler *f, json_t *cond, const char *prefix, int dflt)
{
	json_t *when = json_object_get(cond, "when"), *cur, *want, *e;
	const char *op;
	char path[CLI_FILL_PATH];
	size_t i;
	if (!when)
		return json_is_boolean(cond) ? json_is_true(cond) : dflt;
	snprintf(path, sizeof path, "%s%s", prefix, json_string_value(json_object_get(when, "field")));
	cur = json_object_get(f->record, path);
	want = json_object_get(when, "value");
	op = json_string_value(json_object_get(when, "op"));
	if (op && (!strcmp(op, "has") || !strcmp(op, "in"))) {
		json_array_foreach(!strcmp(op, "has") ? cur : want, i, e)
		{
			if (json_equal(e, !strcmp(op, "has") ? want : cur))
				return 1;
		}
		return 0;
	}
	if (op && !strcmp(op, "~="))
		return !cur || !json_equal(cur, want);
	return cur && json_equal(cur, want);
}

static int visible(cli_filler *f, json_t *field, const char *prefix)
{
	return holds(f, json_object_get(field, "visible"), prefix, 1);
}

/* The form's verdict on the answers so far: *errs its failures ("[]": none).
** Another failure (the case gone, out of memory) is returned as is. */
static int check(json_t **errs, cli_filler *f)
{
	char *txt = json_dumps(f->record, JSON_COMPACT), *out = NULL;
	int rc;
	*errs = NULL;
	if (!txt)
		return VELD_ERROR;
	rc = veld_record_validate_json(&out, f->s, f->case_id, f->form, NULL, txt);
	free(txt);
	if (out)
		*errs = json_loads(out, 0, NULL);
	veld_free(out);
	return *errs ? VELD_OK : rc ? rc : VELD_ERROR;
}

/* Print the failures of fields already asked; returns the message of the
** failure of `path`, if any (valid as long as `errs`). */
static const char *show_failures(cli_filler *f, json_t *errs, const char *path)
{
	const char *mine = NULL;
	json_t *e;
	size_t i;
	json_array_foreach(errs, i, e)
	{
		const char *field = json_string_value(json_object_get(e, "field"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		if (field && !strcmp(field, path))
			mine = msg;
		if (field && json_object_get(f->asked, field))
			printf("  ! %s: %s\n", field, msg);
	}
	return mine;
}

/* The declaration at the flat path `path` ("huisvesting.score",
** "actievoorstellen.<id>.status", a group's own path) among the schema's
** `fields`, and in `prefix` the path of the group or item it is in ("",
** "huisvesting.", "actievoorstellen.<id>."); NULL when the form has none
** (a computed value a rule names). */
json_t *cli_fill_locate(json_t *fields, const char *path, char *prefix)
{
	const char *p = path;
	json_t *found = NULL;
	int item = 0;
	prefix[0] = '\0';
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p), i;
		json_t *x;
		if (item) {
			item = 0; /* the id of an item */
		} else {
			found = NULL;
			json_array_foreach(fields, i, x)
			{
				const char *name = json_string_value(json_object_get(x, "name"));
				if (name && strlen(name) == n && !strncmp(name, p, n))
					found = x;
			}
			if (!found)
				return NULL;
			fields = json_object_get(found, "fields");
			item = json_is_true(json_object_get(found, "repeating"));
		}
		if (!dot)
			return found;
		if (!fields || (size_t)(dot + 1 - path) >= CLI_FILL_PATH)
			return NULL;
		p = dot + 1;
		memcpy(prefix, path, (size_t)(p - path));
		prefix[p - path] = '\0';
	}
}

/* The form's failures that no field answers (a rule across groups, a
** computed value), said where they can be met: at a repeating group. */
static void show_rules(cli_filler *f)
{
	json_t *errs = NULL, *e;
	char prefix[CLI_FILL_PATH];
	size_t i;
	if (check(&errs, f))
		return;
	json_array_foreach(errs, i, e)
	{
		const char *path = json_string_value(json_object_get(e, "field"));
		json_t *d = path ? cli_fill_locate(json_object_get(f->schema, "fields"), path, prefix) : NULL;
		if (path && (!d || !strcmp(json_string_value(json_object_get(d, "type")), "group")))
			printf("  ! %s: %s\n", path, json_string_value(json_object_get(e, "message")));
	}
	json_decref(errs);
}

/* ---- the draft -------------------------------------------------------------------- */

/* Keep the answers as the draft (made at the first answer). */
static int keep(cli_filler *f)
{
	json_t *d = json_pack("{s:O, s:[]}", "fields", f->record, "asked"), *v;
	const char *k;
	char *txt;
	int rc;
	if (!d)
		return VELD_ERROR;
	json_object_foreach(f->asked, k, v)
	{
		json_array_append_new(json_object_get(d, "asked"), json_string(k));
	}
	txt = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	if (!txt)
		return VELD_ERROR;
	rc = veld_draft_put(f->draft, f->s, f->draft[0] ? f->draft : NULL, f->case_id, f->form, txt);
	free(txt);
	return rc;
}

int cli_fill_keep(cli_filler *f)
{
	int rc = keep(f);
	return rc ? -cli_fail(f->s, rc, "form fill") : 0;
}

/* ---- asking ------------------------------------------------------------------------ */

/* The prompt of `field` at `path`: label, `*` when required now, a hint of
** the answer's form, the answer there already in brackets. */
static void prompt_of(char *out, size_t cap, cli_filler *f, json_t *field, const char *prefix, const char *path)
{
	const char *type = json_string_value(json_object_get(field, "type"));
	json_t *cur = json_object_get(f->record, path);
	char *now = cur ? shown(field, cur) : NULL;
	snprintf(out, cap, "%s%s%s%s%s%s: ", json_string_value(json_object_get(field, "label")),
	         holds(f, json_object_get(field, "required"), prefix, 0) ? " *" : "",
	         !strcmp(type, "multi")  ? " (nummers, komma's)"
	         : !strcmp(type, "bool") ? " (j/n)"
	         : !strcmp(type, "date") ? (json_is_true(json_object_get(field, "past")) ? " (JJJJ-MM-DD, niet later dan vandaag)"
	                                                                              : " (JJJJ-MM-DD)")
	                                 : "",
	         now ? " [" : "", now ? now : "", now ? "]" : "");
	free(now);
}

/* Turn typed text into the field's value; NULL if it cannot be. */
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
		for (tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok; tok = strtok_r(NULL, ", ", &save)) {
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
			if (!val || (!arr && one)) {
				json_decref(arr);
				json_decref(one);
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

/* Take `v` (stolen; NULL clears) as the answer at `path` and check it.
** The form's failures are shown; when it refuses `path` itself the answer
** before is back and 1 returned (ask again), unless the answer is empty
** and `lenient` (an empty answer is then kept, for the last checks).
** Otherwise the answers are kept as the draft: 0, or minus an exit code. */
static int answer(cli_filler *f, const char *path, json_t *v, int lenient)
{
	json_t *old = json_object_get(f->record, path), *errs = NULL;
	const char *msg;
	int rc, was_asked = json_object_get(f->asked, path) != NULL;
	json_incref(old);
	if (v)
		json_object_set_new(f->record, path, v);
	else
		json_object_del(f->record, path);
	json_object_set_new(f->asked, path, json_true());
	rc = check(&errs, f);
	msg = rc ? NULL : show_failures(f, errs, path);
	if (msg && (v || !lenient)) {
		if (old)
			json_object_set(f->record, path, old);
		else
			json_object_del(f->record, path);
		if (!was_asked)
			json_object_del(f->asked, path);
		rc = 1;
	} else {
		rc = cli_fill_keep(f);
	}
	json_decref(old);
	json_decref(errs);
	return rc;
}

/* Ask one field (not a group) until the form takes the answer.  An empty
** answer keeps what is there; on a field with nothing, an empty answer the
** form refuses (a required field) is said and left for the last checks,
** which ask it once more before they leave it.  0, CLI_FILL_EOF, or minus an
** exit code. */
static int ask_field(cli_filler *f, json_t *field, const char *prefix)
{
	const char *type = json_string_value(json_object_get(field, "type"));
	json_t *opts = json_object_get(field, "options"), *o;
	char path[CLI_FILL_PATH], prompt[1024];
	int empties = 0, rc;
	size_t i;
	snprintf(path, sizeof path, "%s%s", prefix, json_string_value(json_object_get(field, "name")));
	if (json_object_get(f->asked, path) && !f->again)
		return 0;
	announce(f, json_string_value(json_object_get(field, "label")));
	json_array_foreach(opts, i, o)
	{
		printf("   %zu) %s\n", i + 1, json_string_value(json_object_get(o, "label")));
	}
	for (;;) {
		json_t *cur = json_object_get(f->record, path), *v = NULL;
		char *a;
		prompt_of(prompt, sizeof prompt, f, field, prefix, path);
		if (!(a = ask(f, prompt)))
			return CLI_FILL_EOF;
		if (!*a && cur) {
			free(a); /* kept as it is */
			json_object_set_new(f->asked, path, json_true());
			return cli_fill_keep(f);
		}
		if (*a && !(cur && !strcmp(a, "-")) && !(v = parse_answer(field, a))) {
			free(a);
			printf("  ! ongeldig antwoord%s\n", !strcmp(type, "choice") ? ": een nummer of een waarde" : "");
			continue;
		}
		free(a);
		rc = answer(f, path, v, v ? 0 : !f->again || empties++ > 0);
		if (rc <= 0)
			return rc;
	}
}

static int fill_field(cli_filler *f, json_t *field, const char *prefix)
{
	const char *type = json_string_value(json_object_get(field, "type"));
	char path[CLI_FILL_PATH], sub[CLI_FILL_PATH + 2];
	int rc;
	snprintf(path, sizeof path, "%s%s", prefix, json_string_value(json_object_get(field, "name")));
	if (!visible(f, field, prefix))
		return 0;
	if (strcmp(type, "group"))
		return ask_field(f, field, prefix);
	if (json_is_true(json_object_get(field, "repeating")))
		return fill_items(f, field, path);
	f->header = json_string_value(json_object_get(field, "label"));
	snprintf(sub, sizeof sub, "%s.", path);
	rc = fill_fields(f, json_object_get(field, "fields"), sub);
	f->header = NULL;
	return rc;
}

static int fill_fields(cli_filler *f, json_t *fields, const char *prefix)
{
	json_t *field;
	size_t i;
	int rc;
	if (strlen(prefix) > 200)
		return -EXIT_INPUT;
	json_array_foreach(fields, i, field)
	{
		if ((rc = fill_field(f, field, prefix)))
			return rc;
	}
	return 0;
}

/* ---- repeating groups ------------------------------------------------------------- */

/* The ids of the items of the repeating group at `path` among the answers, sorted. */
static json_t *item_ids(cli_filler *f, const char *path)
{
	json_t *ids = json_array(), *v;
	const char *k;
	size_t n = strlen(path);
	json_object_foreach(f->record, k, v)
	{
		const char *id, *dot;
		size_t at = 0, len;
		if (strncmp(k, path, n) || k[n] != '.' || !(dot = strchr(id = k + n + 1, '.')))
			continue;
		len = (size_t)(dot - id);
		while (at < json_array_size(ids) && strncmp(json_string_value(json_array_get(ids, at)), id, len) < 0)
			at++;
		if (at < json_array_size(ids) && strlen(json_string_value(json_array_get(ids, at))) == len &&
		    !strncmp(json_string_value(json_array_get(ids, at)), id, len))
			continue;
		json_array_insert_new(ids, at, json_stringn(id, len));
	}
	return ids;
}

/* Forget every answer under `prefix` ("group.id."). */
static void forget(cli_filler *f, const char *prefix)
{
	json_t *maps[2] = {f->record, f->asked}, *v;
	const char *k;
	void *tmp;
	size_t n = strlen(prefix), m;
	for (m = 0; m < 2; m++) {
		json_object_foreach_safe(maps[m], tmp, k, v)
		{
			if (!strncmp(k, prefix, n))
				json_object_del(maps[m], k);
		}
	}
}

/* An item id not used yet: "i" and the next number. */
static void new_item_id(char *out, size_t cap, json_t *ids)
{
	json_t *e;
	size_t i;
	long n = 0;
	json_array_foreach(ids, i, e)
	{
		const char *id = json_string_value(e);
		char *end;
		long k = id[0] == 'i' ? strtol(id + 1, &end, 10) : 0;
		if (k > n && !*end)
			n = k;
	}
	snprintf(out, cap, "i%ld", n + 1);
}

/* One line per item: its first answers as a person reads them. */
static void list_items(cli_filler *f, json_t *group, const char *path, json_t *ids)
{
	json_t *e, *field;
	size_t i, k;
	json_array_foreach(ids, i, e)
	{
		int shownn = 0;
		printf("   %zu)", i + 1);
		json_array_foreach(json_object_get(group, "fields"), k, field)
		{
			char p[CLI_FILL_PATH], *txt;
			json_t *v;
			snprintf(p, sizeof p, "%s.%s.%s", path, json_string_value(e), json_string_value(json_object_get(field, "name")));
			if (shownn == 3 || !(v = json_object_get(f->record, p)) || !(txt = shown(field, v)))
				continue;
			printf("%s %.40s", shownn++ ? " ·" : "", txt);
			free(txt);
		}
		printf("\n");
	}
}

/* The menu of a repeating group: + adds an item, N changes item N, -N
** removes it, Enter goes on. */
static int fill_items(cli_filler *f, json_t *group, const char *path)
{
	json_t *fields = json_object_get(group, "fields");
	int rc = 0;
	announce(f, json_string_value(json_object_get(group, "label")));
	printf("-- %s (herhaalbaar: + toevoegen, N wijzigen, -N verwijderen, leeg: verder)\n",
	       json_string_value(json_object_get(group, "label")));
	if (!f->again)
		show_rules(f);
	while (!rc) {
		json_t *ids = item_ids(f, path);
		char *a, *end, sub[CLI_FILL_PATH], id[32];
		long n;
		list_items(f, group, path, ids);
		a = ask(f, "   > ");
		n = a ? strtol(a[0] == '-' ? a + 1 : a, &end, 10) : 0;
		if (!a) {
			rc = CLI_FILL_EOF;
		} else if (!*a) {
			free(a);
			json_decref(ids);
			break;
		} else if (!strcmp(a, "+")) {
			new_item_id(id, sizeof id, ids);
			snprintf(sub, sizeof sub, "%s.%s.", path, id);
			printf("   nieuw item %zu\n", json_array_size(ids) + 1);
			rc = fill_fields(f, fields, sub);
		} else if (*end || n < 1 || (size_t)n > json_array_size(ids)) {
			printf("  ! typ +, een nummer of -nummer (1 tot %zu), of laat leeg\n", json_array_size(ids));
		} else if (a[0] == '-') {
			snprintf(sub, sizeof sub, "%s.%s.", path, json_string_value(json_array_get(ids, (size_t)n - 1)));
			forget(f, sub);
			rc = cli_fill_keep(f);
			printf("   item %ld verwijderd\n", n);
		} else {
			int again = f->again;
			snprintf(sub, sizeof sub, "%s.%s.", path, json_string_value(json_array_get(ids, (size_t)n - 1)));
			f->again = 1;
			rc = fill_fields(f, fields, sub);
			f->again = again;
		}
		free(a);
		json_decref(ids);
	}
	return rc;
}

/* ---- the last checks ---------------------------------------------------------------- */

/* Ask again what the failure at `path` names: a field, a group's fields, a
** repeating group's menu.  A value left in a field the form no longer asks
** is dropped. */
static int fix(cli_filler *f, const char *path)
{
	char prefix[CLI_FILL_PATH], sub[CLI_FILL_PATH + 1];
	json_t *field = cli_fill_locate(json_object_get(f->schema, "fields"), path, prefix);
	const char *type = json_string_value(json_object_get(field, "type"));
	if (!field)
		return 0;
	if (!visible(f, field, prefix)) {
		snprintf(sub, sizeof sub, "%s.", path);
		json_object_del(f->record, path);
		forget(f, sub);
		return cli_fill_keep(f);
	}
	if (strcmp(type, "group"))
		return ask_field(f, field, prefix);
	if (json_is_true(json_object_get(field, "repeating")))
		return fill_items(f, field, path);
	printf("-- %s\n", json_string_value(json_object_get(field, "label")));
	snprintf(sub, sizeof sub, "%s.", path);
	return fill_fields(f, json_object_get(field, "fields"), sub);
}

/* Every repeating group of the form, shown again (a rule across groups,
** such as an action for every priority domain, is met there). */
static int revisit_items(cli_filler *f)
{
	json_t *field;
	size_t i;
	int rc = 0;
	json_array_foreach(json_object_get(f->schema, "fields"), i, field)
	{
		const char *name = json_string_value(json_object_get(field, "name"));
		if (!rc && json_is_true(json_object_get(field, "repeating")) && visible(f, field, ""))
			rc = fill_items(f, field, name);
	}
	return rc;
}

/* 1 when the answers are still `before` (their JSON, keys sorted). */
static int unchanged(cli_filler *f, const char *before)
{
	char *now = json_dumps(f->record, JSON_COMPACT | JSON_SORT_KEYS);
	int same = before && now && !strcmp(before, now);
	free(now);
	return same;
}

/* Until the form accepts the answers: show what it refuses and ask it
** again.  0 when it accepts them, 2 when a round changed nothing (the
** person leaves it for now), CLI_FILL_EOF, or minus an exit code. */
static int settle(cli_filler *f)
{
	for (;;) {
		json_t *errs = NULL, *e;
		char *before;
		size_t i;
		int rc = check(&errs, f), same;
		if (rc)
			return -cli_fail(f->s, rc, "form fill");
		if (!json_array_size(errs)) {
			json_decref(errs);
			return 0;
		}
		printf("Nog niet in orde:\n");
		json_array_foreach(errs, i, e)
		{
			printf("  ! %s: %s\n", json_string_value(json_object_get(e, "field")),
			       json_string_value(json_object_get(e, "message")));
		}
		before = json_dumps(f->record, JSON_COMPACT | JSON_SORT_KEYS);
		f->again = 1;
		json_array_foreach(errs, i, e)
		{
			if (!rc)
				rc = fix(f, json_string_value(json_object_get(e, "field")));
		}
		if (!rc && unchanged(f, before))
			rc = revisit_items(f);
		same = !rc && unchanged(f, before);
		f->again = 0;
		free(before);
		json_decref(errs);
		if (rc || same)
			return rc ? rc : 2;
	}
}


int cli_fill_walk(cli_filler *f)
{
	int rc = fill_fields(f, json_object_get(f->schema, "fields"), "");
	return rc ? rc : settle(f);
}

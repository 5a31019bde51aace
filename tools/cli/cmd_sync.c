/*
** cmd_sync.c — the organisation and sync commands: org init, enroll, join,
** sync (once, or as the office's service with --every), conflicts,
** resolve, log, device revoke.
**
** Hub credentials come from $VELD_HUB_USER / $VELD_HUB_PASSWORD, else the
** terminal; they are never stored.  Progress goes to stderr on a terminal.
*/
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "veld_platform.h"

/* Set by SIGTERM/SIGINT during `sync --every`: finish the round, then stop.
** (A signal handler can only reach a static flag.) */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int credentials(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	const veld_os *os = veld_os_default();
	const char *u = getenv("VELD_HUB_USER"), *p = getenv("VELD_HUB_PASSWORD");
	(void)url;
	(void)payload;
	if (u)
		snprintf(user, ucap, "%s", u);
	else if (os->xPrompt(os->ctx, "Hub user: ", user, ucap) < 0)
		return -1;
	if (p)
		snprintf(pass, pcap, "%s", p);
	else if (os->xPrompt(os->ctx, "Hub password: ", pass, pcap) < 0)
		return -1;
	return 0;
}

static int show_progress(const char *stage, size_t done, size_t total, void *payload)
{
	(void)payload;
	if (total > 1)
		fprintf(stderr, "\r%-8s %zu/%zu   ", stage, done, total);
	else
		fprintf(stderr, "\r%-8s ...      ", stage);
	fflush(stderr);
	return 0;
}

static void sync_options(veld_sync_options *o, const cli *c)
{
	veld_sync_options_init(o);
	o->credentials = credentials;
	if (!c->json && isatty(2))
		o->progress = show_progress;
	if (cli_flag(c, "--prune"))
		o->flags |= VELD_SYNC_PRUNE;
	/* the office checks what devices write by their forms' rules */
	o->validate = veld_form_validate_merged;
}

int cmd_org(cli *c)
{
	static const char *const valued[] = {"--name", "--hub", NULL};
	const char *sub = c->argc > 1 ? c->argv[1] : NULL;
	const char *name = cli_opt(c, "--name"), *hub = cli_opt(c, "--hub");
	veld_store *s = NULL;
	char *pass, *dev = NULL;
	size_t n = 0;
	int rc, code;
	if (!sub || strcmp(sub, "init"))
		return cli_usage("org init --name NAME --hub HUB");
	if ((code = cli_check_opts(c, 2, valued, NULL)))
		return code;
	if (!name || !hub)
		return cli_usage("org init --name NAME --hub HUB");
	pass = cli_passphrase(c, "VELD_PASSPHRASE", "New store passphrase: ", 1, &n);
	if (!pass)
		return EXIT_PASS;
	rc = veld_org_init(&s, c->store_dir, pass, n, name, hub, NULL);
	cli_pass_free(pass);
	if (rc) {
		code = cli_fail(s, rc, "org init");
		veld_store_close(s);
		return code;
	}
	/* A URL hub is published by the first `veld sync`: the hub must first
	** know the office's device id (printed here) as the user that may
	** write main (docs/hub.md). */
	rc = veld_store_device_json(&dev, s);
	if (!rc) {
		json_t *d = json_loads(dev, 0, NULL);
		const char *id = json_string_value(json_object_get(d, "id"));
		if (c->json)
			printf("{\"id\":\"%s\"}\n", id);
		else
			printf("%s\n", id);
		json_decref(d);
	}
	code = rc ? cli_fail(s, rc, "org init") : EXIT_OK;
	veld_free(dev);
	veld_store_close(s);
	return code;
}

int cmd_enroll(cli *c)
{
	static const char *const valued[] = {"--region", NULL};
	const char *file = cli_arg(c, 1, 0, valued);
	veld_store *s;
	char id[VELD_IDSIZE];
	json_t *req;
	char *txt;
	int rc, code;
	if ((code = cli_check_opts(c, 1, valued, NULL)))
		return code;
	if (!file || cli_arg(c, 1, 1, valued))
		return cli_usage("enroll REQUEST [--region POSTCODES]");
	if (!(req = cli_load_json(&code, "enroll", file)))
		return code;
	txt = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if ((code = cli_open(&s, c))) {
		free(txt);
		return code;
	}
	rc = veld_enroll(id, s, txt, cli_opt(c, "--region"));
	free(txt);
	code = rc ? cli_fail(s, rc, "enroll") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"id\":\"%s\"}\n" : "%s\n", id);
	veld_store_close(s);
	return code;
}

int cmd_join(cli *c)
{
	static const char *const valued[] = {"--hub", NULL};
	const char *hub = cli_opt(c, "--hub");
	veld_sync_options o;
	veld_store *s;
	int rc, code;
	if ((code = cli_check_opts(c, 1, valued, NULL)))
		return code;
	if (!hub || c->argc != 3)
		return cli_usage("join --hub HUB");
	if ((code = cli_open(&s, c)))
		return code;
	sync_options(&o, c);
	rc = veld_join(s, hub, &o);
	if (o.progress)
		fputc('\n', stderr);
	code = rc ? cli_fail(s, rc, "join") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"joined\":true}\n" : "joined; run `veld sync` to fetch your cases\n");
	veld_store_close(s);
	return code;
}

static void print_summary(const cli *c, const char *summary)
{
	json_t *j;
	if (!summary)
		return;
	if (c->json) {
		printf("%s\n", summary);
		return;
	}
	j = json_loads(summary, 0, NULL);
	printf("pushed %lld, fetched %lld, merged %lld, conflicts %lld\n",
	       (long long)json_integer_value(json_object_get(j, "pushed")),
	       (long long)json_integer_value(json_object_get(j, "fetched")),
	       (long long)json_integer_value(json_object_get(j, "merged")),
	       (long long)json_integer_value(json_object_get(j, "conflicts")));
	{
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(j, "rejected"), i, r)
		{
			const char *rec = json_string_value(json_object_get(r, "record"));
			if (json_object_get(r, "code")) /* a change refused alone */
				printf("refused %s %s of device %s: %s\n", rec && *rec ? "record" : "ref",
				       rec && *rec ? rec : json_string_value(json_object_get(r, "ref")),
				       json_string_value(json_object_get(r, "device")),
				       json_string_value(json_object_get(r, "reason")));
			else
				printf("rejected %s %.12s: %s\n", json_string_value(json_object_get(r, "ref")),
				       json_string_value(json_object_get(r, "commit")),
				       json_string_value(json_object_get(r, "reason")));
		}
	}
	json_decref(j);
}

/* One sync round; returns the exit code. */
static int sync_once(cli *c)
{
	veld_sync_options o;
	veld_store *s;
	char *summary = NULL;
	int rc, code;
	if ((code = cli_open(&s, c)))
		return code;
	sync_options(&o, c);
	rc = veld_sync(&summary, s, &o);
	if (o.progress)
		fputs("\r                         \r", stderr);
	print_summary(c, summary);
	code = rc ? cli_fail(s, rc, "sync") : EXIT_OK;
	veld_free(summary);
	veld_store_close(s);
	return code;
}

int cmd_sync(cli *c)
{
	static const char *const valued[] = {"--every", NULL};
	static const char *const flags[] = {"--prune", NULL};
	const char *every = cli_opt(c, "--every");
	struct sigaction sa;
	long secs;
	int code;
	if ((code = cli_check_opts(c, 1, valued, flags)))
		return code;
	if (cli_arg(c, 1, 0, valued))
		return cli_usage("sync [--every SECONDS] [--prune]");
	if (!every)
		return sync_once(c);
	secs = strtol(every, NULL, 10);
	if (secs < 1)
		return cli_usage("--every needs a number of seconds >= 1");
	/* The service: the store is opened only for each round, so other
	** commands run between rounds; SIGTERM ends it after the current round. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!stop_requested) {
		long waited;
		/* A failed round (hub away, store locked) is reported and retried
		** at the next round. */
		sync_once(c);
		fflush(stdout);
		for (waited = 0; waited < secs && !stop_requested; waited++)
			sleep(1);
	}
	fprintf(stderr, "veld: sync: stopped\n");
	return EXIT_OK;
}

/* A listing command without arguments: the API's JSON as is with --json,
** else each element of its array through `print`, or `empty`. */
static int list_command(cli *c, const char *what, int (*list)(char **, veld_store *), void (*print)(json_t *e),
                        const char *empty)
{
	veld_store *s;
	char *out = NULL;
	int rc, code;
	if (c->argc != 1) {
		char usage[64];
		snprintf(usage, sizeof usage, "%s [--json]", what);
		return cli_usage(usage);
	}
	if ((code = cli_open(&s, c)))
		return code;
	rc = list(&out, s);
	code = rc ? cli_fail(s, rc, what) : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *arr = json_loads(out, 0, NULL), *e;
		size_t i;
		json_array_foreach(arr, i, e)
		{
			print(e);
		}
		if (json_array_size(arr) == 0)
			printf("%s\n", empty);
		json_decref(arr);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

/* "2026-03-01T09:30:00Z" for ms since the epoch. */
static void utc_time(char *out, size_t cap, long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tmv;
	if (!gmtime_r(&t, &tmv) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tmv))
		snprintf(out, cap, "?");
}

/* A conflict: record, form and field, then each value by its number (what
** `resolve --pick` takes) with who wrote it and when. */
static void print_conflict(json_t *e)
{
	json_t *ver;
	size_t i;
	printf("%s %s %s\n", json_string_value(json_object_get(e, "record")), json_string_value(json_object_get(e, "form")),
	       json_string_value(json_object_get(e, "field")));
	json_array_foreach(json_object_get(e, "versions"), i, ver)
	{
		char *val = json_dumps(json_object_get(ver, "value"), JSON_COMPACT | JSON_ENCODE_ANY), when[32];
		const char *name = json_string_value(json_object_get(ver, "device_name"));
		char *who = cli_visible(name ? name : json_string_value(json_object_get(ver, "device")));
		utc_time(when, sizeof when, (long long)json_integer_value(json_object_get(ver, "at")));
		printf("  %zu. %s  (%s, %s)\n", i + 1, val ? val : "", who ? who : "", when);
		free(val);
		free(who);
	}
}

int cmd_conflicts(cli *c)
{
	return list_command(c, "conflicts", veld_conflicts_json, print_conflict, "no conflicts");
}

static void print_refusal(json_t *e)
{
	const char *rec = json_string_value(json_object_get(e, "record"));
	char *why = cli_visible(json_string_value(json_object_get(e, "reason")));
	if (rec && *rec)
		printf("record %s of case %s, %s: %s%s\n", rec, json_string_value(json_object_get(e, "case")),
		       json_string_value(json_object_get(e, "code")), why ? why : "",
		       json_is_true(json_object_get(e, "held")) ? " (held here)" : "");
	else
		printf("device %s, %s: %s\n", json_string_value(json_object_get(e, "device")),
		       json_string_value(json_object_get(e, "code")), why ? why : "");
	free(why);
}

int cmd_refused(cli *c)
{
	return list_command(c, "refused", veld_refused_json, print_refusal, "no refused changes");
}

/* The value numbered `pick` (from 1) among the conflict of `field` of
** record `rid` as `veld conflicts` lists it, as JSON text in *out (NULL
** with a message on the handle's terms when there is none). */
static int picked_value(char **out, veld_store *s, const char *rid, const char *field, const char *pick)
{
	char *list = NULL, *end = NULL;
	long n = strtol(pick, &end, 10);
	json_t *arr = NULL, *e, *v = NULL;
	size_t i;
	int rc = veld_conflicts_json(&list, s);
	*out = NULL;
	if (rc)
		return cli_fail(s, rc, "resolve");
	arr = json_loads(list, 0, NULL);
	json_array_foreach(arr, i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "record")), rid) &&
		    !strcmp(json_string_value(json_object_get(e, "field")), field))
			v = json_array_get(json_object_get(e, "values"), n > 0 && end && !*end ? (size_t)n - 1 : (size_t)-1);
	}
	if (v)
		*out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(arr);
	veld_free(list);
	if (*out)
		return EXIT_OK;
	cli_error("resolve", "record %.40s has no value %.20s in a conflict of '%.60s' (see veld conflicts)", rid, pick,
	          field);
	return EXIT_INPUT;
}

/* VALUE: JSON when it parses as a scalar or array, else text; NULL when
** it is no UTF-8. */
static char *typed_value(const char *value)
{
	json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
	char *vjson;
	if (!v || json_is_object(v)) {
		json_decref(v);
		v = json_string(value);
	}
	vjson = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(v);
	return vjson;
}

int cmd_resolve(cli *c)
{
	veld_store *s;
	const char *rid, *field;
	char *vjson = NULL;
	int rc, pick = c->argc >= 4 && !strcmp(c->argv[3], "--pick"), code;
	if (c->argc != (pick ? 5 : 4))
		return cli_usage("resolve RID FIELD VALUE|--pick N (VALUE is JSON if it parses, else text)");
	rid = c->argv[1];
	field = c->argv[2];
	if (!pick && !(vjson = typed_value(c->argv[3])))
		return cli_usage("VALUE must be valid UTF-8");
	if ((code = cli_open(&s, c))) {
		free(vjson);
		return code;
	}
	if (pick && (code = picked_value(&vjson, s, rid, field, c->argv[4]))) {
		veld_store_close(s);
		return code;
	}
	rc = veld_resolve(s, rid, field, vjson);
	free(vjson);
	code = rc ? cli_fail(s, rc, "resolve") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"resolved\":true}\n" : "resolved; sync to share it\n");
	veld_store_close(s);
	return code;
}

int cmd_log(cli *c)
{
	veld_store *s;
	char *out = NULL;
	const char *case_id = cli_arg(c, 1, 0, NULL);
	int rc, code;
	if (c->argc > 2)
		return cli_usage("log [CASE]");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_log_json(&out, s, case_id);
	code = rc ? cli_fail(s, rc, "log") : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *arr = json_loads(out, 0, NULL), *e, *r;
		size_t i, k;
		json_array_foreach(arr, i, e)
		{
			char when[32];
			time_t t = (time_t)(json_integer_value(json_object_get(e, "at")) / 1000);
			struct tm tmv;
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tmv));
			printf("%.12s  %s  %s\n", json_string_value(json_object_get(e, "commit")), when,
			       json_string_value(json_object_get(e, "signer")));
			json_array_foreach(json_object_get(e, "records"), k, r)
			{
				printf("    case %s record %s\n", json_string_value(json_object_get(r, "case")),
				       json_string_value(json_object_get(r, "record")));
			}
		}
		json_decref(arr);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

int cmd_revoke(cli *c)
{
	veld_store *s;
	int rc, code;
	if (c->argc != 3)
		return cli_usage("device revoke DEVICE");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_device_revoke(s, c->argv[2]);
	code = rc ? cli_fail(s, rc, "device revoke") : EXIT_OK;
	if (!rc)
		printf(c->json ? "{\"revoked\":\"%s\"}\n" : "revoked %s; sync to publish\n", c->argv[2]);
	veld_store_close(s);
	return code;
}

/*
** cmd_store.c — commands about the store as a whole: device init, passwd,
** verify, export, audit.
*/
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

/* `veld device init --name NAME --role ROLE [--out FILE]`: create the store
** and write the enrolment request (public keys only) to FILE or stdout. */
static int device_init(cli *c)
{
	static const char *const valued[] = {"--name", "--role", "--out", NULL};
	veld_store_options o;
	veld_store *s = NULL;
	const char *name = cli_opt(c, "--name"), *role = cli_opt(c, "--role"), *out = cli_opt(c, "--out");
	char *pass, *dev = NULL;
	size_t n = 0;
	int rc, code;
	if ((code = cli_check_opts(c, 2, valued, NULL)))
		return code;
	if (!name || !role)
		return cli_usage("device init --name NAME --role assistant|volunteer|office [--out FILE]");
	pass = cli_passphrase(c, "VELD_PASSPHRASE", "New store passphrase: ", 1, &n);
	if (!pass)
		return EXIT_PASS;
	veld_store_options_init(&o);
	o.device_name = name;
	o.device_role = role;
	rc = veld_store_create(&s, c->store_dir, pass, n, &o);
	cli_pass_free(pass);
	if (rc) {
		code = cli_fail(s, rc, "device init");
		veld_store_close(s);
		return code;
	}
	rc = veld_store_device_json(&dev, s);
	if (rc) {
		code = cli_fail(s, rc, "device init");
		veld_store_close(s);
		return code;
	}
	veld_store_close(s);
	if (out) {
		if (cli_write_file("device init", out, dev, "\n")) {
			veld_free(dev);
			return EXIT_ERR;
		}
		if (!c->json)
			printf("store created in %s; enrolment request written to %s\n", c->store_dir, out);
		else
			printf("%s\n", dev);
	} else {
		printf("%s\n", dev);
	}
	veld_free(dev);
	return EXIT_OK;
}

int cmd_device(cli *c)
{
	const char *sub = c->argc > 1 ? c->argv[1] : NULL;
	if (sub && !strcmp(sub, "init"))
		return device_init(c);
	if (sub && !strcmp(sub, "show")) {
		veld_store *s;
		char *dev = NULL;
		int rc, code = cli_open(&s, c);
		if (code)
			return code;
		rc = veld_store_device_json(&dev, s);
		code = rc ? cli_fail(s, rc, "device show") : EXIT_OK;
		if (!rc)
			c->json ? (void)printf("%s\n", dev) : cli_print_json(dev);
		veld_free(dev);
		veld_store_close(s);
		return code;
	}
	if (sub && !strcmp(sub, "revoke"))
		return cmd_revoke(c);
	return cli_usage("device init|show|revoke");
}

int cmd_passwd(cli *c)
{
	veld_store *s;
	size_t n = 0;
	char *pass;
	int rc, code;
	if (c->argc != 1)
		return cli_usage("passwd takes no arguments");
	if ((code = cli_open(&s, c)))
		return code;
	pass = cli_passphrase(c, "VELD_NEW_PASSPHRASE", "New passphrase: ", 1, &n);
	if (!pass) {
		veld_store_close(s);
		return EXIT_PASS;
	}
	rc = veld_store_passwd(s, pass, n);
	cli_pass_free(pass);
	code = rc ? cli_fail(s, rc, "passwd") : EXIT_OK;
	if (!rc && !c->json)
		printf("passphrase changed\n");
	else if (!rc)
		printf("{\"ok\":true}\n");
	veld_store_close(s);
	return code;
}

int cmd_verify(cli *c)
{
	veld_store *s;
	int rc, code;
	if (c->argc != 1)
		return cli_usage("verify takes no arguments");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_store_verify(s);
	if (!rc)
		rc = veld_repository_verify(s);
	if (rc) {
		code = cli_fail(s, rc, "verify");
		if (c->json)
			printf("{\"ok\":false}\n");
	} else {
		printf(c->json ? "{\"ok\":true}\n" : "store verified: every page authenticates, every record is canonical,\n"
		                        "every pack index, git object and signature checks\n");
	}
	veld_store_close(s);
	return code;
}

int cmd_export(cli *c)
{
	veld_store *s;
	char *out = NULL;
	int rc, code;
	if (c->argc != 1)
		return cli_usage("export takes no arguments");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_export_json(&out, s);
	code = rc ? cli_fail(s, rc, "export") : EXIT_OK;
	/* Canonical bytes in both modes: two converged stores print the same. */
	if (!rc)
		printf("%s\n", out);
	veld_free(out);
	veld_store_close(s);
	return code;
}

int cmd_audit(cli *c)
{
	veld_store *s;
	char *out = NULL;
	const char *case_id = c->argc > 1 ? c->argv[1] : NULL;
	int rc, code;
	if (c->argc > 2)
		return cli_usage("audit [CASE]");
	if ((code = cli_open(&s, c)))
		return code;
	rc = veld_audit_json(&out, s, case_id);
	code = rc ? cli_fail(s, rc, "audit") : EXIT_OK;
	if (!rc && c->json) {
		printf("%s\n", out);
	} else if (!rc) {
		json_t *arr = json_loads(out, 0, NULL), *e;
		size_t i;
		json_array_foreach(arr, i, e)
		{
			char when[32];
			time_t t = (time_t)(json_integer_value(json_object_get(e, "at")) / 1000);
			struct tm tmv;
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tmv));
			printf("%6lld  %s  %s  %-14s %s %s\n", (long long)json_integer_value(json_object_get(e, "seq")), when,
			       json_string_value(json_object_get(e, "device")), json_string_value(json_object_get(e, "action")),
			       json_object_get(e, "case") ? json_string_value(json_object_get(e, "case")) : "-",
			       json_object_get(e, "record") ? json_string_value(json_object_get(e, "record")) : "");
		}
		json_decref(arr);
	}
	veld_free(out);
	veld_store_close(s);
	return code;
}

/*
** main.c — `veld`, the reference client of libveld and the office's tool.
**
** This file parses the global options, dispatches to a command and owns
** the conventions every command shares: errors, exit codes, passphrases,
** option lookup and JSON output.  Commands live in cmd_*.c and talk to the
** store only through veld.h.  Secrets never appear on the command line: a
** passphrase comes from $VELD_PASSPHRASE, --passphrase-file or the terminal.
*/
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veld_platform.h"

#define PASS_MAX 1024

static const char usage_text[] =
	"usage: veld [-C DIR] [--passphrase-file FILE] [--json] COMMAND [ARGS]\n"
	"\n"
	"Setting up\n"
	"  org init --name NAME --hub HUB   office: store, organisation keys and hub\n"
	"  device init --name NAME --role assistant|volunteer [--out FILE]\n"
	"  enroll REQUEST [--region POSTCODES]   office: accept a device\n"
	"  join --hub HUB             device: pick up the enrolment\n"
	"  device revoke DEVICE       office: revoke a lost or stolen device\n"
	"  passwd                     change the passphrase ($VELD_NEW_PASSPHRASE or terminal)\n"
	"Cases and records\n"
	"  case new --name NAME --postcode PC [--birth DATE] [--address TEXT] [--phone TEXT] [--ref NR]\n"
	"  case list | case show CASE\n"
	"  case consent CASE --scope SCOPE | case share CASE --with DEVICE --scope SCOPE\n"
	"  case erase CASE            office: crypto-shred a case everywhere\n"
	"  record put CASE FORM [--record RID] [FIELD=TEXT | FIELD:=JSON ...] [--file JSON|-]\n"
	"  record show RID | record delete RID\n"
	"  import FILE                JSON Lines, all or nothing\n"
	"Forms and reports\n"
	"  form list | form show FORM | form check FILE.lua\n"
	"  form fill CASE FORM [--from-previous]   on a terminal, a draft kept after every answer\n"
	"  drafts [CASE]              the unfinished drafts of form fill\n"
	"  form publish FILE.lua | report publish FILE.lua   (office)\n"
	"  report NAME [--year Y] [--case CASE] [--format text|json|csv|html] [--out FILE]\n"
	"                             shipped: jaarcijfers, evolutie\n"
	"Sync and history\n"
	"  sync [--every SECONDS]     commit, fetch, verify, merge, push\n"
	"  conflicts | resolve RID FIELD VALUE | log [CASE]\n"
	"History and checks\n"
	"  audit [CASE]               who opened or changed what, when\n"
	"  export                     every readable case and record, canonical\n"
	"  verify                     full check of the store\n"
	"\n"
	"DIR defaults to $VELD_STORE, else ./veld-store.\n"
	"Exit codes: 0 ok, 1 error, 2 usage, 3 wrong passphrase or locked,\n"
	"4 integrity or authorisation failure, 5 input rejected.\n";

char *cli_visible(const char *text)
{
	const unsigned char *p = (const unsigned char *)(text ? text : "");
	char *out = malloc(4 * strlen((const char *)p) + 1), *o = out;
	if (!out)
		return NULL;
	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			o += sprintf(o, "\\x%02x", *p);
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* U+0080..U+009F */
			o += sprintf(o, "\\x%02x", p[1]);
			p++;
		} else {
			*o++ = (char)*p;
		}
	}
	*o = '\0';
	return out;
}

void cli_error(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "veld: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("veld: usage: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see `veld help`)\n", stderr);
	return EXIT_USAGE;
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case VELD_OK:
		return EXIT_OK;
	case VELD_EAUTH:
	case VELD_EBUSY:
		return EXIT_PASS;
	case VELD_EINTEGRITY:
	case VELD_EDENIED:
		return EXIT_INTEGRITY;
	case VELD_EINVALID:
		return EXIT_INPUT;
	default:
		return EXIT_ERR;
	}
}

int cli_fail(veld_store *store, int rc, const char *what)
{
	const char *msg = veld_errmsg(store);
	cli_error(what, "%s", msg && *msg ? msg : "failed");
	return cli_exit_code(rc);
}

void cli_pass_free(char *p)
{
	sodium_free(p); /* wipes first; accepts NULL */
}

/* Read the first line of `path` into buf. */
static int read_pass_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;
	if (!f)
		return -errno;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return (int)strlen(buf);
}

char *cli_passphrase(const cli *c, const char *env, const char *prompt, int confirm, size_t *len)
{
	const veld_os *os = veld_os_default();
	char *buf = sodium_malloc(PASS_MAX);
	const char *e = getenv(env);
	int n;
	if (!buf) {
		cli_error("passphrase", "out of memory");
		return NULL;
	}
	if (e) {
		if (strlen(e) >= PASS_MAX) {
			cli_error("passphrase", "$%s is longer than %d bytes", env, PASS_MAX - 1);
			goto fail;
		}
		strcpy(buf, e);
	} else if (c->passphrase_file && strcmp(env, "VELD_PASSPHRASE") == 0) {
		n = read_pass_file(c->passphrase_file, buf, PASS_MAX);
		if (n < 0) {
			cli_error(c->passphrase_file, "cannot read passphrase file: %s", strerror(-n));
			goto fail;
		}
	} else {
		n = os->xPrompt(os->ctx, prompt, buf, PASS_MAX);
		if (n < 0) {
			cli_error("passphrase", "no terminal to ask on; set $%s%s", env,
			          strcmp(env, "VELD_PASSPHRASE") ? "" : " or use --passphrase-file");
			goto fail;
		}
		if (confirm) {
			char *again = sodium_malloc(PASS_MAX);
			int same;
			if (!again)
				goto fail;
			n = os->xPrompt(os->ctx, "Repeat passphrase: ", again, PASS_MAX);
			same = n >= 0 && strcmp(buf, again) == 0;
			sodium_free(again);
			if (!same) {
				cli_error("passphrase", "the two passphrases differ");
				goto fail;
			}
		}
	}
	*len = strlen(buf);
	if (*len == 0) {
		cli_error("passphrase", "empty passphrase");
		goto fail;
	}
	return buf;
fail:
	sodium_free(buf);
	return NULL;
}

int cli_open(veld_store **out, const cli *c)
{
	size_t n = 0;
	char *pass = cli_passphrase(c, "VELD_PASSPHRASE", "Passphrase: ", 0, &n);
	int rc;
	*out = NULL;
	if (!pass)
		return EXIT_PASS;
	rc = veld_store_open(out, c->store_dir, pass, n, NULL);
	cli_pass_free(pass);
	if (rc) {
		int code = cli_fail(*out, rc, "open");
		veld_store_close(*out);
		*out = NULL;
		return code;
	}
	return 0;
}

static int is_valued(const char *opt, const char *const *valued)
{
	for (; valued && *valued; valued++)
		if (!strcmp(opt, *valued))
			return 1;
	return 0;
}

const char *cli_opt(const cli *c, const char *name)
{
	int i;
	for (i = 0; i + 1 < c->argc; i++)
		if (!strcmp(c->argv[i], name))
			return c->argv[i + 1];
	return NULL;
}

int cli_flag(const cli *c, const char *name)
{
	int i;
	for (i = 0; i < c->argc; i++)
		if (!strcmp(c->argv[i], name))
			return 1;
	return 0;
}

const char *cli_arg(const cli *c, int first, int idx, const char *const *valued)
{
	int i, k = 0;
	for (i = first; i < c->argc; i++) {
		if (!strncmp(c->argv[i], "--", 2) && c->argv[i][2]) {
			if (is_valued(c->argv[i], valued))
				i++;
			continue;
		}
		if (k++ == idx)
			return c->argv[i];
	}
	return NULL;
}

int cli_check_opts(const cli *c, int first, const char *const *valued, const char *const *flags)
{
	int i;
	for (i = first; i < c->argc; i++) {
		const char *a = c->argv[i];
		if (strncmp(a, "--", 2) || !a[2])
			continue;
		if (is_valued(a, valued)) {
			if (i + 1 >= c->argc)
				return cli_usage("%s needs a value", a);
			i++;
		} else if (!is_valued(a, flags)) {
			return cli_usage("unknown option %s", a);
		}
	}
	return 0;
}

void cli_print_json(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	puts(pretty ? pretty : text);
	free(pretty);
	json_decref(j);
}

FILE *cli_fopen(const char *what, const char *path, const char *mode)
{
	FILE *f;
	if (mode[0] == 'r' && !strcmp(path, "-"))
		return stdin;
	if (!(f = fopen(path, mode)))
		cli_error(what, "cannot %s %s: %s", mode[0] == 'r' ? "open" : "write", path, strerror(errno));
	return f;
}

int cli_write_file(const char *what, const char *path, const char *text, const char *end)
{
	FILE *f = cli_fopen(what, path, "wb");
	int failed;
	if (!f)
		return EXIT_ERR;
	errno = 0;
	failed = fputs(text, f) < 0 || fputs(end, f) < 0;
	failed = fclose(f) != 0 || failed;
	if (failed) {
		cli_error(what, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
		return EXIT_ERR;
	}
	return 0;
}

json_t *cli_load_json(int *code, const char *what, const char *path)
{
	json_error_t err;
	FILE *f = cli_fopen(what, path, "rb");
	json_t *j;
	*code = EXIT_ERR;
	if (!f)
		return NULL;
	errno = 0;
	j = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
	if (ferror(f)) {
		cli_error(what, "cannot read %s: %s", path, strerror(errno ? errno : EIO));
		json_decref(j);
		j = NULL;
	} else if (!j) {
		*code = EXIT_INPUT;
		cli_error(what, "%s: line %d: %s", strcmp(path, "-") ? path : "stdin", err.line, err.text);
	}
	if (f != stdin)
		fclose(f);
	if (!j)
		return NULL;
	*code = EXIT_OK;
	return j;
}

static int cmd_help(void)
{
	fputs(usage_text, stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	cli c;
	int i, n = 0;
	char **words;
	const char *cmd;
	memset(&c, 0, sizeof c);
	c.store_dir = getenv("VELD_STORE");
	if (!c.store_dir || !*c.store_dir)
		c.store_dir = "veld-store";
	if (sodium_init() < 0) {
		cli_error("init", "libsodium failed to initialise");
		return EXIT_ERR;
	}
	words = calloc((size_t)argc + 1, sizeof *words);
	if (!words)
		return EXIT_ERR;
	/* Global options may stand anywhere; everything else is kept in order. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-C") || !strcmp(argv[i], "--passphrase-file")) {
			if (i + 1 >= argc) {
				free(words);
				return cli_usage("%s needs a value", argv[i]);
			}
			if (argv[i][1] == 'C')
				c.store_dir = argv[++i];
			else
				c.passphrase_file = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			c.json = 1;
		} else if (!strcmp(argv[i], "--passphrase")) {
			free(words);
			return cli_usage("passphrases are never taken as arguments: use $VELD_PASSPHRASE, "
			                 "--passphrase-file or the terminal");
		} else {
			words[n++] = argv[i];
		}
	}
	c.argc = n;
	c.argv = words;
	cmd = n > 0 ? words[0] : NULL;
	if (!cmd || !strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		i = cmd ? cmd_help() : (fputs(usage_text, stderr), EXIT_USAGE);
	else if (!strcmp(cmd, "--version") || !strcmp(cmd, "version"))
		i = (printf("veld %s\n", veld_version()), EXIT_OK);
	else if (!strcmp(cmd, "device"))
		i = cmd_device(&c);
	else if (!strcmp(cmd, "passwd"))
		i = cmd_passwd(&c);
	else if (!strcmp(cmd, "verify"))
		i = cmd_verify(&c);
	else if (!strcmp(cmd, "export"))
		i = cmd_export(&c);
	else if (!strcmp(cmd, "case"))
		i = cmd_case(&c);
	else if (!strcmp(cmd, "record"))
		i = cmd_record(&c);
	else if (!strcmp(cmd, "audit"))
		i = cmd_audit(&c);
	else if (!strcmp(cmd, "form"))
		i = cmd_form(&c);
	else if (!strcmp(cmd, "drafts"))
		i = cmd_drafts(&c);
	else if (!strcmp(cmd, "import"))
		i = cmd_import(&c);
	else if (!strcmp(cmd, "report"))
		i = cmd_report(&c);
	else if (!strcmp(cmd, "org"))
		i = cmd_org(&c);
	else if (!strcmp(cmd, "enroll"))
		i = cmd_enroll(&c);
	else if (!strcmp(cmd, "join"))
		i = cmd_join(&c);
	else if (!strcmp(cmd, "sync"))
		i = cmd_sync(&c);
	else if (!strcmp(cmd, "conflicts"))
		i = cmd_conflicts(&c);
	else if (!strcmp(cmd, "resolve"))
		i = cmd_resolve(&c);
	else if (!strcmp(cmd, "log"))
		i = cmd_log(&c);
	else if (!strcmp(cmd, "refused"))
		i = cmd_refused(&c);
	else
		i = cli_usage("unknown command '%s'", cmd);
	free(words);
	return i;
}

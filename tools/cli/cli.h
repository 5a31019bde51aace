/*
** cli.h — shared pieces of the `veld` command line (the one header of
** tools/cli/).  The contract is docs/cli.md: exit codes, one-line
** errors on stderr as "veld: <what>: <why>", --json for scripts, and
** passphrases only from the environment, a file or the terminal.
*/
#ifndef VELD_CLI_H
#define VELD_CLI_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "veld.h"

/* Exit codes of the contract. */
#define EXIT_OK        0
#define EXIT_ERR       1
#define EXIT_USAGE     2
#define EXIT_PASS      3 /* wrong passphrase or locked */
#define EXIT_INTEGRITY 4 /* tampered, forged, unenrolled, revoked, not allowed */
#define EXIT_INPUT     5 /* input rejected */

/* The parsed command line: global options, then the command's words and
** options in order. */
typedef struct cli {
	const char *store_dir;       /* -C, $VELD_STORE, ./veld-store */
	const char *passphrase_file; /* --passphrase-file */
	int json;                    /* --json */
	int argc;                    /* remaining words (command first) */
	char **argv;
} cli;

/* Text that came from a store (names, postcodes: typed on other devices)
** fit for a terminal: control characters (C0, DEL, C1) written as \xNN, so
** no escape sequence reaches the terminal.  malloc'd; NULL in: "". */
char *cli_visible(const char *text);

/* Print "veld: what: why" on stderr. */
void cli_error(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
/* Report a library failure on `store` and return the matching exit code. */
int cli_fail(veld_store *store, int rc, const char *what);
/* Exit code for a VELD_E* code. */
int cli_exit_code(int rc);
/* Usage error: message, then exit code 2. */
int cli_usage(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/* Get the passphrase ($VELD_PASSPHRASE, --passphrase-file, terminal) into a
** sodium_malloc'd buffer; `confirm` asks twice on a terminal.  Returns NULL
** after printing an error. Free with cli_pass_free. */
char *cli_passphrase(const cli *c, const char *env, const char *prompt, int confirm, size_t *len);
void cli_pass_free(char *p);

/* Open the store of `c` (prints the error; returns the exit code or 0). */
int cli_open(veld_store **out, const cli *c);

/* Option helpers over c->argv[from..]: "--name VALUE".  Return the value or
** NULL; `cli_flag` reports a bare flag.  Unknown options are a usage error. */
const char *cli_opt(const cli *c, const char *name);
int cli_flag(const cli *c, const char *name);
/* Positional word `i` (0 = first after the command words), skipping options
** listed in `valued` (options that take a value). */
const char *cli_arg(const cli *c, int first, int i, const char *const *valued);
/* Check every --option in argv[first..] is in `known` (valued or flags). */
int cli_check_opts(const cli *c, int first, const char *const *valued, const char *const *flags);

/* Files named on the command line.  cli_fopen opens `path` with fopen's
** `mode` ("-" read: stdin), or prints "veld: what: cannot open PATH: <the
** OS's reason>" ("cannot write" for a mode that writes) and returns NULL:
** exit EXIT_ERR, an I/O error.  cli_write_file writes `text` and `end` to
** a new `path` and returns 0, or EXIT_ERR after saying why it could not. */
FILE *cli_fopen(const char *what, const char *path, const char *mode);
int cli_write_file(const char *what, const char *path, const char *text, const char *end);
/* A JSON document from `path` ("-": stdin), or NULL with *code EXIT_ERR
** (cannot open, said as cli_fopen says it) or EXIT_INPUT ("veld: what:
** PATH: line N: ..."). */
json_t *cli_load_json(int *code, const char *what, const char *path);

/* Print JSON text from the library: as is with --json, else pretty. */
void cli_print_json(const char *json);

/* ---- form fill: the walk (fill.c) and the command (cmd_fill.c) ---------- */

#define CLI_FILL_EOF  1   /* input ended: the draft keeps what was answered */
#define CLI_FILL_PATH 256 /* bytes of a field path the walk builds */

/* One filling of a record: the form's schema, the answers so far and the
** draft that keeps them. */
typedef struct cli_filler {
	veld_store *s;
	const char *case_id, *form;
	json_t *schema;          /* the form's schema (veld_form_schema_json) */
	json_t *record;          /* the answers: flat path -> value */
	json_t *asked;           /* flat path -> true: asked (answered or left empty) */
	char draft[VELD_IDSIZE]; /* the draft's id; "" until it is first kept */
	const char *header;      /* a group's label, printed before its first question */
	int resumed;             /* 1: say where the walk goes on at its first question */
	int again;               /* ask fields already asked (changing an item, the last checks) */
	FILE *in;
} cli_filler;

/* Ask every field not asked yet, then what the form still refuses: 0 when
** the form accepts the answers, CLI_FILL_EOF, 2 when the person left it
** refused, or minus an exit code (the error said). */
int cli_fill_walk(cli_filler *f);
/* Keep the answers as the draft: 0, or minus an exit code (the error said). */
int cli_fill_keep(cli_filler *f);
/* The schema's declaration at flat path `path` ("huisvesting.score",
** "acties.<id>.status", a group's own path) among `fields`, and in
** `prefix` (CLI_FILL_PATH bytes) the path of its group or item; NULL when
** the form declares none. */
json_t *cli_fill_locate(json_t *fields, const char *path, char *prefix);

/* Commands. */
int cmd_device(cli *c);
int cmd_passwd(cli *c);
int cmd_verify(cli *c);
int cmd_export(cli *c);
int cmd_case(cli *c);
int cmd_record(cli *c);
int cmd_audit(cli *c);
int cmd_org(cli *c);
int cmd_enroll(cli *c);
int cmd_join(cli *c);
int cmd_sync(cli *c);
int cmd_conflicts(cli *c);
int cmd_resolve(cli *c);
int cmd_log(cli *c);
int cmd_refused(cli *c);
int cmd_revoke(cli *c);
int cmd_form(cli *c);
int cmd_form_fill(cli *c); /* cmd_fill.c, for cmd_form */
int cmd_drafts(cli *c);
int cmd_import(cli *c);
int cmd_report(cli *c);

#endif

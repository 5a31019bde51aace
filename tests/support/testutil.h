/*
** testutil.h — helpers shared by the unit tests (the one header of tests/).
** Tests include <cmocka.h> through this file.
*/
#ifndef VELD_TESTUTIL_H
#define VELD_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core.h"
#include "veld.h"
#include "veld_platform.h"

/* A fresh empty directory under $VELD_TEST_TMP (or /tmp), unique per call.
** Returns a malloc'd path; the test removes it with veld_test_rmtree. */
char *veld_test_tmpdir(const char *tag);
void veld_test_rmtree(const char *path);

/* Join dir + "/" + name into a malloc'd string. */
char *veld_test_path(const char *dir, const char *name);

/* Number of files under `dir` (recursively) whose bytes contain `needle`. */
int veld_test_grep_tree(const char *dir, const void *needle, size_t n);

/* Read a whole file (malloc'd, *len set); NULL if missing. */
unsigned char *veld_test_read_file(const char *path, size_t *len);
int veld_test_write_file(const char *path, const void *buf, size_t len);

/* Flip one bit of the byte at `off` in `path`. */
void veld_test_flip_byte(const char *path, long off);

/* Store options with cheap Argon2id limits so tests run fast. */
void veld_test_fast_options(veld_store_options *o);

#endif

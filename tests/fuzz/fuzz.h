/*
** fuzz.h — what the fuzz targets of tests/fuzz/ share (docs/fuzzing.md).
**
** Each fuzz_<name>.c defines LLVMFuzzerTestOneInput for one input surface
** of the library and is built twice: with libFuzzer's main for tools/fuzz
** (VELD_FUZZ=ON, clang), and with replay.c's main for ctest, which feeds
** it every file of its seed corpus.  A broken property aborts through
** VELD_FUZZ_CHECK, which both mains report as a crash.  The keys here are
** fixed, so the seeds sealed or signed with them (seeds.c) open and
** verify, and a fuzzer mutates from inputs that pass the checks.
*/
#ifndef VELD_FUZZ_H
#define VELD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* libFuzzer's entry points (the second is optional in a target). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Abort, naming the property and where, when `cond` is false. */
#define VELD_FUZZ_CHECK(cond) \
	((cond) ? (void)0 : veld_fuzz_fail(#cond, __FILE__, __LINE__))
void veld_fuzz_fail(const char *what, const char *file, int line);

/* The input as a NUL-terminated string (malloc'd; aborts when out of memory). */
char *veld_fuzz_text(const uint8_t *data, size_t size);

/* Fixed keys, derived from fixed seeds: a record key and its key id, a box
** (X25519) key pair, and a signing (Ed25519) key pair. */
typedef struct veld_fuzz_keys {
	unsigned char rec_key[32];
	unsigned char rec_key_id[16];
	unsigned char box_pk[32], box_sk[32];
	unsigned char sign_pk[32], sign_sk[64];
} veld_fuzz_keys;
/* The keys, made on the first call (sodium initialised); the same for the
** life of the process. */
const veld_fuzz_keys *veld_fuzz_keys_get(void);

/* The case and record ids the envelope seeds are sealed for. */
#define VELD_FUZZ_CASE   "0123456789abcdef0123456789abcdef"
#define VELD_FUZZ_RECORD "fedcba9876543210fedcba9876543210"

/* A store for a target to work on, made once per process in a new
** directory under $VELD_TEST_TMP (or /tmp), with cheap Argon2id limits:
** an office (with a hub on a path beside it) when `office` is set, else an
** assistant's store.  Closed and removed when the process exits; aborts
** when it cannot be made. */
veld_store *veld_fuzz_store(const char *tag, int office);
/* Close and remove that store; the next veld_fuzz_store makes a new one
** (a target whose store grows with every input keeps it small). */
void veld_fuzz_store_drop(void);

#endif /* VELD_FUZZ_H */

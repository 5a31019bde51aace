/*
** keyfile.c — the key file: the store's master key, wrapped by a key derived
** from the passphrase.
**
** What it owns.  A store's 32-byte master key is random (libsodium) and never
** leaves guarded memory (sodium_malloc) except sealed in the key file.  The
** wrapping key comes from Argon2id (crypto_pwhash, ALG_ARGON2ID13) over the
** passphrase with a random salt; the salt, the Argon2id limits and the page
** cipher are written in the file's header, and the whole header is the
** associated data of the XChaCha20-Poly1305 seal around the master key, so a
** changed parameter fails authentication just like a wrong passphrase.
**
** A keyless BLAKE2b checksum over everything before it closes the file.  It
** proves nothing against an attacker (the AEAD does that); it lets us tell a
** damaged file (VELD_EINTEGRITY) from a wrong passphrase (VELD_EAUTH), so a
** user with a corrupt key file is not told to retype the passphrase.
**
** The byte layout is in docs/store-format.md ("The key file").  Files are
** replaced atomically: write a temp file, fsync it, rename it into place,
** fsync the directory — all through the `veld_os` table, never the OS.
**
** What it must not do: print, keep state between calls, leave a key or a
** derived key in unguarded or unwiped memory on any path.
*/
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- the format -------------------------------------------------------- */

#define KF_MAGIC        "VELDKEY\0"
#define KF_MAGIC_LEN    8
#define KF_VERSION      1
#define KF_KDF_ARGON2ID 1

#define KF_OFF_VERSION  8
#define KF_OFF_CIPHER   9
#define KF_OFF_KDF      10
#define KF_OFF_FLAGS    11
#define KF_OFF_OPS      12
#define KF_OFF_MEM      20
#define KF_OFF_SALT     28
#define KF_SALT_LEN     16 /* crypto_pwhash_SALTBYTES */
#define KF_OFF_NONCE    (KF_OFF_SALT + KF_SALT_LEN)                             /* 44 */
#define KF_NONCE_LEN    24 /* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define KF_HEADER_LEN   (KF_OFF_NONCE + KF_NONCE_LEN)                           /* 68 */
#define KF_OFF_CT       KF_HEADER_LEN
#define KF_TAG_LEN      16 /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define KF_OFF_SUM      (KF_OFF_CT + VELD_KEYBYTES + KF_TAG_LEN)                /* 116 */
#define KF_SUM_LEN      32
#define KF_FILE_LEN     (KF_OFF_SUM + KF_SUM_LEN)                               /* 148 */

/* Upper bound for a memlimit read from a file: refuse to let a damaged or
** hostile file make us allocate more than this. */
#define KF_MEMLIMIT_CAP ((size_t)4 << 30)

#if KF_SALT_LEN != crypto_pwhash_SALTBYTES
#error "key file salt length must match crypto_pwhash_SALTBYTES"
#endif

static void kf_put64(unsigned char *p, uint64_t v)
{
	int i;
	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t kf_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* The name used in messages: the last path component (no directories, which
** may name a person). */
static const char *kf_base(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int kf_cipher_resolve(int cipher)
{
	if (cipher == VELD_CIPHER_AUTO)
		return crypto_aead_aes256gcm_is_available() ? VELD_CIPHER_AES256GCM
		                                            : VELD_CIPHER_XCHACHA20;
	return cipher;
}

/* ---- deriving keys ----------------------------------------------------- */

void veld_key__derive(unsigned char *out, const unsigned char *master, uint64_t subkey_id)
{
	/* "veld-sub" is exactly crypto_kdf_CONTEXTBYTES (8) long. */
	crypto_kdf_derive_from_key(out, VELD_KEYBYTES, subkey_id, "veld-sub", master);
}

/* The wrapping key: Argon2id(passphrase, salt, ops, mem) into `kek`. */
static int kf_kek(unsigned char *kek, const char *pass, size_t pass_len,
                  const unsigned char *salt, unsigned long long ops, size_t mem,
                  veld_err *err)
{
	if (crypto_pwhash(kek, VELD_KEYBYTES, pass, (unsigned long long)pass_len, salt, ops, mem,
	                  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return veld_err__set(err, VELD_ERROR,
		                     "out of memory deriving the key from the passphrase");
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

/* Write `len` bytes to `path` atomically: temp file, fsync, rename, fsync dir. */
static int kf_write_atomic(const veld_os *os, const char *path, const unsigned char *buf,
                           size_t len, veld_err *err)
{
	int rc = 0, fd = -1, r;
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	char *dir = malloc(plen + 2);
	const char *slash;

	if (!tmp || !dir) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	slash = strrchr(path, '/');
	if (!slash) {
		memcpy(dir, ".", 2);
	} else if (slash == path) {
		memcpy(dir, "/", 2);
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}

	fd = os->xOpen(os->ctx, tmp, VELD_OS_WRITE | VELD_OS_CREATE | VELD_OS_TRUNC, 0600);
	if (fd < 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot create %s.tmp (%s)", kf_base(path),
		                   strerror(-fd));
		goto done;
	}
	if (os->xPwrite(os->ctx, fd, buf, len, 0) != (int64_t)len) {
		rc = veld_err__set(err, VELD_ERROR, "cannot write %s.tmp", kf_base(path));
		goto done;
	}
	if ((r = os->xFsync(os->ctx, fd)) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot fsync %s.tmp (%s)", kf_base(path),
		                   strerror(-r));
		goto done;
	}
	r = os->xClose(os->ctx, fd);
	fd = -1;
	if (r != 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot close %s.tmp (%s)", kf_base(path),
		                   strerror(-r));
		goto done;
	}
	if ((r = os->xRename(os->ctx, tmp, path)) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot rename %s.tmp into place (%s)",
		                   kf_base(path), strerror(-r));
		goto done;
	}
	if ((r = os->xSyncDir(os->ctx, dir)) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot fsync the directory of %s (%s)",
		                   kf_base(path), strerror(-r));
		goto done;
	}

done:
	if (fd >= 0) {
		os->xClose(os->ctx, fd);
		os->xUnlink(os->ctx, tmp);
	} else if (rc != 0 && tmp) {
		os->xUnlink(os->ctx, tmp);
	}
	free(tmp);
	free(dir);
	return rc;
}

/* Build the file image for `master` under `pass` into `file` and write it. */
static int kf_seal_and_write(const veld_os *os, const char *path, const unsigned char *master,
                             int cipher, const char *pass, size_t pass_len,
                             const veld_keyfile_params *params, veld_err *err)
{
	int rc = 0;
	unsigned char file[KF_FILE_LEN];
	unsigned char *kek = NULL;
	unsigned long long ops = params && params->opslimit ? params->opslimit
	                                                    : crypto_pwhash_OPSLIMIT_INTERACTIVE;
	size_t mem = params && params->memlimit ? params->memlimit
	                                        : crypto_pwhash_MEMLIMIT_INTERACTIVE;

	if (cipher != VELD_CIPHER_XCHACHA20 && cipher != VELD_CIPHER_AES256GCM) {
		rc = veld_err__set(err, VELD_EINVALID, "unknown page cipher %d", cipher);
		goto done;
	}
	if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_MEMLIMIT_MIN || mem > KF_MEMLIMIT_CAP) {
		rc = veld_err__set(err, VELD_EINVALID, "Argon2id limits out of range");
		goto done;
	}
	kek = sodium_malloc(VELD_KEYBYTES);
	if (!kek) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}

	memset(file, 0, sizeof file);
	memcpy(file, KF_MAGIC, KF_MAGIC_LEN);
	file[KF_OFF_VERSION] = KF_VERSION;
	file[KF_OFF_CIPHER] = (unsigned char)cipher;
	file[KF_OFF_KDF] = KF_KDF_ARGON2ID;
	file[KF_OFF_FLAGS] = 0;
	kf_put64(file + KF_OFF_OPS, (uint64_t)ops);
	kf_put64(file + KF_OFF_MEM, (uint64_t)mem);
	os->xRandom(os->ctx, file + KF_OFF_SALT, KF_SALT_LEN);
	os->xRandom(os->ctx, file + KF_OFF_NONCE, KF_NONCE_LEN);

	if ((rc = kf_kek(kek, pass, pass_len, file + KF_OFF_SALT, ops, mem, err)) != 0)
		goto done;
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
	    file + KF_OFF_CT, file + KF_OFF_CT + VELD_KEYBYTES, NULL, master, VELD_KEYBYTES,
	    file, KF_HEADER_LEN, NULL, file + KF_OFF_NONCE, kek);
	crypto_generichash(file + KF_OFF_SUM, KF_SUM_LEN, file, KF_OFF_SUM, NULL, 0);

	rc = kf_write_atomic(os, path, file, sizeof file, err);

done:
	if (kek)
		sodium_free(kek); /* sodium_free wipes */
	sodium_memzero(file, sizeof file);
	return rc;
}

int veld_keyfile__create(unsigned char *master, int *cipher_out, const veld_os *os,
                         const char *path, const char *pass, size_t pass_len,
                         const veld_keyfile_params *params, veld_err *err)
{
	int rc = 0, cipher, r;
	unsigned char *key = NULL;

	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "libsodium failed to initialise");
		goto done;
	}
	cipher = kf_cipher_resolve(params ? params->cipher : VELD_CIPHER_AUTO);
	r = os->xStat(os->ctx, path, NULL, NULL);
	if (r == 0) {
		rc = veld_err__set(err, VELD_EEXISTS, "key file %s already exists", kf_base(path));
		goto done;
	}
	if (r != -ENOENT) {
		rc = veld_err__set(err, VELD_ERROR, "cannot check key file %s (%s)", kf_base(path),
		                   strerror(-r));
		goto done;
	}
	key = sodium_malloc(VELD_KEYBYTES);
	if (!key) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	os->xRandom(os->ctx, key, VELD_KEYBYTES);
	if ((rc = kf_seal_and_write(os, path, key, cipher, pass, pass_len, params, err)) != 0)
		goto done;
	memcpy(master, key, VELD_KEYBYTES);
	if (cipher_out)
		*cipher_out = cipher;

done:
	if (key)
		sodium_free(key);
	return rc;
}

int veld_keyfile__rewrap(const veld_os *os, const char *path, const unsigned char *master,
                         int cipher, const char *new_pass, size_t new_len,
                         const veld_keyfile_params *params, veld_err *err)
{
	if (sodium_init() < 0)
		return veld_err__set(err, VELD_ERROR, "libsodium failed to initialise");
	return kf_seal_and_write(os, path, master, kf_cipher_resolve(cipher), new_pass, new_len,
	                         params, err);
}

/* ---- reading ----------------------------------------------------------- */

/* Read the whole key file into `file` (KF_FILE_LEN bytes exactly). */
static int kf_read(unsigned char *file, const veld_os *os, const char *path, veld_err *err)
{
	int rc = 0, fd;
	int64_t size = 0, got;

	fd = os->xOpen(os->ctx, path, VELD_OS_READ, 0);
	if (fd == -ENOENT)
		return veld_err__set(err, VELD_ENOTFOUND, "key file %s not found", kf_base(path));
	if (fd < 0)
		return veld_err__set(err, VELD_ERROR, "cannot open key file %s (%s)", kf_base(path),
		                     strerror(-fd));
	if (os->xFileSize(os->ctx, fd, &size) != 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot read key file %s", kf_base(path));
		goto done;
	}
	if (size != KF_FILE_LEN) {
		rc = veld_err__set(err, VELD_EINTEGRITY,
		                   "key file %s is damaged (%lld bytes, expected %d)", kf_base(path),
		                   (long long)size, KF_FILE_LEN);
		goto done;
	}
	got = os->xPread(os->ctx, fd, file, KF_FILE_LEN, 0);
	if (got < 0) {
		rc = veld_err__set(err, VELD_ERROR, "cannot read key file %s (%s)", kf_base(path),
		                   strerror((int)-got));
		goto done;
	}
	if (got != KF_FILE_LEN) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "key file %s is damaged (truncated)",
		                   kf_base(path));
		goto done;
	}

done:
	os->xClose(os->ctx, fd);
	return rc;
}

int veld_keyfile__open(unsigned char *master, int *cipher_out, const veld_os *os,
                       const char *path, const char *pass, size_t pass_len, veld_err *err)
{
	int rc = 0, cipher;
	unsigned char file[KF_FILE_LEN];
	unsigned char sum[KF_SUM_LEN];
	unsigned char *kek = NULL, *key = NULL;
	unsigned long long ops;
	uint64_t mem;

	memset(file, 0, sizeof file);
	if (sodium_init() < 0) {
		rc = veld_err__set(err, VELD_ERROR, "libsodium failed to initialise");
		goto done;
	}
	if ((rc = kf_read(file, os, path, err)) != 0)
		goto done;

	if (memcmp(file, KF_MAGIC, KF_MAGIC_LEN) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "%s is not a veld key file (bad magic)",
		                   kf_base(path));
		goto done;
	}
	crypto_generichash(sum, sizeof sum, file, KF_OFF_SUM, NULL, 0);
	if (sodium_memcmp(sum, file + KF_OFF_SUM, KF_SUM_LEN) != 0) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "key file %s is damaged (bad checksum)",
		                   kf_base(path));
		goto done;
	}
	if (file[KF_OFF_VERSION] != KF_VERSION) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "key file %s has unsupported version %d",
		                   kf_base(path), file[KF_OFF_VERSION]);
		goto done;
	}
	cipher = file[KF_OFF_CIPHER];
	ops = (unsigned long long)kf_get64(file + KF_OFF_OPS);
	mem = kf_get64(file + KF_OFF_MEM);
	if ((cipher != VELD_CIPHER_XCHACHA20 && cipher != VELD_CIPHER_AES256GCM) ||
	    file[KF_OFF_KDF] != KF_KDF_ARGON2ID || file[KF_OFF_FLAGS] != 0 ||
	    ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_MEMLIMIT_MIN || mem > KF_MEMLIMIT_CAP) {
		rc = veld_err__set(err, VELD_EINTEGRITY, "key file %s has invalid parameters",
		                   kf_base(path));
		goto done;
	}
	if (cipher == VELD_CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		rc = veld_err__set(err, VELD_ERROR,
		                   "key file %s needs AES-256-GCM, which this CPU lacks",
		                   kf_base(path));
		goto done;
	}

	kek = sodium_malloc(VELD_KEYBYTES);
	key = sodium_malloc(VELD_KEYBYTES);
	if (!kek || !key) {
		rc = veld_err__set(err, VELD_ERROR, "out of memory");
		goto done;
	}
	if ((rc = kf_kek(kek, pass, pass_len, file + KF_OFF_SALT, ops, (size_t)mem, err)) != 0)
		goto done;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
	        key, NULL, file + KF_OFF_CT, VELD_KEYBYTES, file + KF_OFF_CT + VELD_KEYBYTES, file,
	        KF_HEADER_LEN, file + KF_OFF_NONCE, kek) != 0) {
		rc = veld_err__set(err, VELD_EAUTH, "wrong passphrase");
		goto done;
	}
	memcpy(master, key, VELD_KEYBYTES);
	if (cipher_out)
		*cipher_out = cipher;

done:
	if (kek)
		sodium_free(kek);
	if (key)
		sodium_free(key);
	sodium_memzero(file, sizeof file);
	return rc;
}

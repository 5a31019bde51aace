/*
** vfs_page.c — sealing and opening one page: the page format of the VFS.
**
** What it is for.  The top of vfs.c describes the format; this file is the
** only code that knows it.  A page on disk is the ciphertext of its usable
** bytes, then the nonce, then the 16-byte tag, in the R reserved bytes that
** every page keeps at its end; the page number (and, for page 1, the eight
** clear header bytes 16-23) is the associated data, so a page moved to
** another place fails to open.  Page 1 carries veld's magic instead of
** SQLite's.  The same sealed form serves the database, WAL frames and
** journal records, which is what lets a checkpoint copy sealed pages.
**
** What it owns: the magic, the reserve per cipher, sealing (a fresh random
** nonce per write, from the `veld_os` table), opening (authenticate, then
** zero the reserved bytes SQLite must see as it wrote them), the checks on
** a plaintext page before it is sealed, and the message that names a page
** that fails to open.  It does no file I/O, and it keeps no state beyond
** the counters of the main file it is given.
**
** What it must not do: return plaintext of a page that did not
** authenticate, reuse a nonce, or seal a page whose reserved bytes SQLite
** used for something else.
*/
#include "core.h"

#include <string.h>

#include <sodium.h>

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

int veld_vfs__page_size_ok(int64_t n)
{
	return n >= VELD_VFS_MIN_PAGE && n <= VELD_VFS_MAX_PAGE && (n & (n - 1)) == 0;
}

/* SQLite stores the page size in bytes 16-17, big endian, 1 meaning 65536.
** Byte 17 is 0 for every other valid size, so shifting it by 16 turns the
** 1 of 65536 into 65536; an invalid size fails veld_vfs__page_size_ok. */
int veld_vfs__header_page_size(const unsigned char *h)
{
	int n = (h[16] << 8) | (h[17] << 16);
	return n;
}

int veld_vfs__reserve_bytes(int cipher)
{
	if (cipher == VELD_CIPHER_AES256GCM)
		return (int)crypto_aead_aes256gcm_NPUBBYTES + VELD_VFS_TAGBYTES;
	return (int)crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + VELD_VFS_TAGBYTES;
}

/* ---- sealing pages ----------------------------------------------------- */

/* Associated data: page number, plus page 1's plaintext bytes 16-23. */
static size_t page_ad(unsigned char *ad, uint32_t pgno, const unsigned char *hdr16)
{
	put32(ad, pgno);
	if (pgno == 1) {
		memcpy(ad + 4, hdr16, 8);
		return 12;
	}
	return 4;
}

/* Seal plaintext page `in` (pgsz bytes, reserved bytes zero) into `out`. */
void veld_vfs__seal_page(veld_vfs_file *m, uint32_t pgno, const unsigned char *in,
                         unsigned char *out, int pgsz)
{
	const veld_os *os = m->vfs->os;
	int start = pgno == 1 ? 24 : 0;
	int usable = pgsz - m->reserve;
	unsigned char ad[12];
	size_t adlen = page_ad(ad, pgno, in + 16);
	unsigned char *nonce = out + usable, *tag = out + usable + m->nonce_len;

	if (pgno == 1) {
		memcpy(out, VELD_VFS_MAGIC, 16);
		memcpy(out + 16, in + 16, 8);
	}
	os->xRandom(os->ctx, nonce, (size_t)m->nonce_len);
	if (m->cipher == VELD_CIPHER_AES256GCM)
		crypto_aead_aes256gcm_encrypt_detached(out + start, tag, NULL, in + start,
		                                       (unsigned long long)(usable - start), ad, adlen,
		                                       NULL, nonce, m->key);
	else
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
		    out + start, tag, NULL, in + start, (unsigned long long)(usable - start), ad, adlen,
		    NULL, nonce, m->key);
	m->stats.pages_sealed++;
}

/* Open sealed page `in` into `out`.  0 on success, -1 if it fails
** authentication, -2 if it is all zeros, -3 if page 1 lacks the magic. */
int veld_vfs__open_page(veld_vfs_file *m, uint32_t pgno, const unsigned char *in,
                        unsigned char *out, int pgsz)
{
	int start = pgno == 1 ? 24 : 0;
	int usable = pgsz - m->reserve;
	unsigned char ad[12];
	size_t adlen;
	const unsigned char *nonce = in + usable, *tag = in + usable + m->nonce_len;
	int r;

	if (pgno == 1) {
		if (memcmp(in, VELD_VFS_MAGIC, 16) != 0)
			return sodium_is_zero(in, (size_t)pgsz) ? -2 : -3;
		memcpy(out, VELD_VFS_SQLITE_MAGIC, 16);
		memcpy(out + 16, in + 16, 8);
	}
	adlen = page_ad(ad, pgno, in + 16);
	if (m->cipher == VELD_CIPHER_AES256GCM)
		r = crypto_aead_aes256gcm_decrypt_detached(out + start, NULL, in + start,
		                                           (unsigned long long)(usable - start), tag, ad,
		                                           adlen, nonce, m->key);
	else
		r = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    out + start, NULL, in + start, (unsigned long long)(usable - start), tag, ad, adlen,
		    nonce, m->key);
	/* An all-zero page never authenticates; tell it apart only on failure
	** (checking every page first would cost more than the decryption). */
	if (r != 0)
		return sodium_is_zero(in, (size_t)pgsz) ? -2 : -1;
	memset(out + usable, 0, (size_t)m->reserve);
	m->stats.pages_opened++;
	return 0;
}

int veld_vfs__open_fail(veld_vfs_file *f, int why, uint32_t pgno, long frame)
{
	veld_vfs *v = f->vfs;
	const char *what = why == -2 ? "is all zeros (wiped)"
	                 : why == -3 ? "lacks the veld magic"
	                             : "fails authentication";
	if (frame > 0)
		return veld_vfs__fail(v, SQLITE_IOERR_DATA, "page %u in frame %ld of %s %s", pgno, frame,
		                      f->label, what);
	if (f->kind == VELD_VFS_JOURNAL)
		return veld_vfs__fail(v, SQLITE_IOERR_DATA, "page %u in %s %s", pgno, f->label, what);
	return veld_vfs__fail(v, SQLITE_IOERR_DATA, "page %u of %s %s", pgno, f->label, what);
}

/* Check a plaintext page SQLite hands us before sealing it. */
int veld_vfs__check_plain(veld_vfs_file *f, uint32_t pgno, const unsigned char *p, int pgsz)
{
	veld_vfs_file *m = f->main;
	if (!sodium_is_zero(p + pgsz - m->reserve, (size_t)m->reserve))
		return veld_vfs__fail(f->vfs, SQLITE_IOERR_WRITE,
		                      "page %u of %s uses the %d reserved bytes veld needs (database "
		                      "created without SQLITE_FCNTL_RESERVE_BYTES?)",
		                      pgno, f->label, m->reserve);
	if (pgno == 1) {
		if (memcmp(p, VELD_VFS_SQLITE_MAGIC, 16) != 0 || veld_vfs__header_page_size(p) != pgsz)
			return veld_vfs__fail(f->vfs, SQLITE_IOERR_WRITE, "page 1 of %s has a bad header",
			                      f->label);
		if (p[20] < m->reserve)
			return veld_vfs__fail(f->vfs, SQLITE_IOERR_WRITE,
			                      "%s reserves %d bytes per page, veld needs %d", f->label, p[20],
			                      m->reserve);
		m->stats.page1_reserve = p[20];
	}
	return SQLITE_OK;
}

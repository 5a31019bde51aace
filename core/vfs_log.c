/*
** vfs_log.c — the two logs through the VFS: WAL frames and rollback-journal
** records.
**
** What it is for.  In both logs SQLite writes headers it must read back
** as written and pages it must get back as plaintext.  This file tells them
** apart by offset and size, leaves headers in the clear and seals each page
** exactly as the database does (vfs_page.c), with the page number taken
** from the frame header or the record's 4-byte page number before it.  The
** top of vfs.c explains the formats, why a checkpoint can copy sealed WAL
** pages into the database without opening them, and how WAL recovery tells
** a torn last transaction (its frames read as zeros, so SQLite drops them)
** from tampering (an error).
**
** What it owns: the page size of each log (its header, else the database's),
** the last frame header or page number written (so a page write that
** follows it needs no read back), and the checkpoint hand-over on the WAL
** side (the main file keeps the stash).
**
** What it must not do: hand SQLite a page that did not authenticate, except
** as the zeros of a torn tail, or write a page whose page number it cannot
** name.
*/
#include "core.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define WAL_HDR 32 /* the WAL file header; frame headers are VELD_VFS_FRAME_HDR */

static uint32_t get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- the WAL ----------------------------------------------------------- */

/* Page size of the WAL: its header's bytes 8-11, else the database's. */
static int wal_page_size(veld_vfs_file *w)
{
	unsigned char h[WAL_HDR];
	int64_t got;
	int rc;
	if (w->pgsz)
		return SQLITE_OK;
	if ((rc = veld_vfs__pread(w, h, sizeof h, 0, &got)) != SQLITE_OK)
		return rc;
	if (got == WAL_HDR && veld_vfs__page_size_ok(get32(h + 8)))
		w->pgsz = (int)get32(h + 8);
	else if ((rc = veld_vfs__main_page_size(w->main)) == SQLITE_OK)
		w->pgsz = w->main->pgsz;
	if (rc == SQLITE_OK && w->pgsz)
		rc = veld_vfs__scratch(w, w->pgsz);
	return rc;
}

/* A frame read by WAL recovery failed to open.  Return 1 if it is the torn
** tail of the last transaction (SQLite may discard it), 0 if a valid commit
** frame of a later transaction follows it, which means tampering. */
static int wal_bad_frame_is_tail(veld_vfs_file *w, int64_t fstart, const unsigned char *fhdr)
{
	veld_vfs_file *m = w->main;
	const veld_os *os = w->vfs->os;
	unsigned char whdr[WAL_HDR];
	unsigned char *frame = NULL, *plain = NULL;
	int64_t got, size = 0, fsz = w->pgsz + VELD_VFS_FRAME_HDR, off;
	int need = get32(fhdr + 4) != 0 ? 1 : 2, found = 0, tail = 1;

	if (veld_vfs__pread(w, whdr, sizeof whdr, 0, &got) != SQLITE_OK || got != WAL_HDR)
		goto done;
	if (memcmp(whdr + 16, fhdr + 8, 8) != 0)
		goto done; /* not a frame of this log: SQLite stops here anyway */
	if (os->xFileSize(os->ctx, w->fd, &size) != 0)
		goto done;
	frame = malloc((size_t)fsz);
	plain = malloc((size_t)w->pgsz);
	if (!frame || !plain)
		goto done;
	for (off = fstart + fsz; off + fsz <= size; off += fsz) {
		uint32_t pgno;
		if (veld_vfs__pread(w, frame, (size_t)fsz, off, &got) != SQLITE_OK || got != fsz)
			break;
		pgno = get32(frame);
		if (memcmp(whdr + 16, frame + 8, 8) != 0 || get32(frame + 4) == 0 || pgno == 0)
			continue;
		if (veld_vfs__open_page(m, pgno, frame + VELD_VFS_FRAME_HDR, plain, w->pgsz) == 0 &&
		    ++found >= need) {
			tail = 0;
			break;
		}
	}
done:
	if (plain) {
		sodium_memzero(plain, (size_t)w->pgsz);
		free(plain);
	}
	free(frame);
	return tail;
}

int veld_vfs__wal_read(veld_vfs_file *w, unsigned char *buf, int n, int64_t off)
{
	veld_vfs_file *m = w->main;
	int rc, is_short = 0, fsz;
	int64_t got, pos, end = off + n;

	/* Everything in the clear first, then replace the page parts. */
	if ((rc = veld_vfs__pread(w, buf, (size_t)n, off, &got)) != SQLITE_OK)
		return rc;
	if (got < n) {
		memset(buf + got, 0, (size_t)(n - got));
		is_short = 1;
		end = off + got;
	}
	if (end <= WAL_HDR)
		return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
	if ((rc = wal_page_size(w)) != SQLITE_OK)
		return rc;
	if (w->pgsz == 0)
		return veld_vfs__fail(w->vfs, SQLITE_IOERR_DATA, "%s has no valid header", w->label);
	fsz = w->pgsz + VELD_VFS_FRAME_HDR;
	pos = off > WAL_HDR ? off : WAL_HDR;
	while (pos < end) {
		int64_t fstart = WAL_HDR + ((pos - WAL_HDR) / fsz) * fsz;
		int64_t pstart = fstart + VELD_VFS_FRAME_HDR, fend = fstart + fsz;
		int64_t cend = end < fend ? end : fend;
		long frame = (long)((fstart - WAL_HDR) / fsz) + 1;
		if (cend > pstart) {
			/* Part of this frame's page is wanted: open the whole page. */
			int64_t from = pos > pstart ? pos : pstart;
			uint32_t pgno;
			int why;
			if ((rc = veld_vfs__pread(w, w->sealed, (size_t)fsz, fstart, &got)) != SQLITE_OK)
				return rc;
			if (got < fsz)
				return veld_vfs__fail(w->vfs, SQLITE_IOERR_DATA, "frame %ld of %s is truncated",
				                      frame, w->label);
			pgno = get32(w->sealed);
			if (pgno != 0 && m->in_ckpt && off == pstart && n == w->pgsz && m->pgsz == w->pgsz) {
				/* A checkpoint reads a page only to write it to the
				** database: hand over the sealed bytes (see the top). */
				memcpy(buf, w->sealed + VELD_VFS_FRAME_HDR, (size_t)w->pgsz);
				memcpy(m->stash_sealed, w->sealed + VELD_VFS_FRAME_HDR, (size_t)w->pgsz);
				m->stash_pgno = pgno;
				m->stash_valid = 1;
				pos = cend;
				continue;
			}
			why = pgno == 0 ? -1
			                : veld_vfs__open_page(m, pgno, w->sealed + VELD_VFS_FRAME_HDR,
			                                      w->plain, w->pgsz);
			if (why != 0) {
				/* Whole-frame reads come from recovery (see the top). */
				if (off <= fstart && wal_bad_frame_is_tail(w, fstart, w->sealed)) {
					memset(buf + (from - off), 0, (size_t)(cend - from));
					pos = cend;
					continue;
				}
				return veld_vfs__open_fail(w, why, pgno, frame);
			}
			memcpy(buf + (from - off), w->plain + (from - pstart), (size_t)(cend - from));
			if (pgno == 1)
				m->stats.page1_reserve = w->plain[20];
		}
		pos = cend;
	}
	return is_short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

int veld_vfs__wal_write(veld_vfs_file *w, const unsigned char *buf, int n, int64_t off)
{
	veld_vfs_file *m = w->main;
	int rc, fsz;
	int64_t within;

	if (off == 0 && n == WAL_HDR) {
		if (veld_vfs__page_size_ok(get32(buf + 8))) {
			w->pgsz = (int)get32(buf + 8);
			if ((rc = veld_vfs__scratch(w, w->pgsz)) != SQLITE_OK)
				return rc;
		}
		w->have_last = 0;
		return veld_vfs__pwrite(w, buf, (size_t)n, off);
	}
	if ((rc = wal_page_size(w)) != SQLITE_OK)
		return rc;
	if (w->pgsz == 0 || off < WAL_HDR)
		return veld_vfs__fail(w->vfs, SQLITE_IOERR_WRITE, "%s: write before the WAL header",
		                      w->label);
	fsz = w->pgsz + VELD_VFS_FRAME_HDR;
	within = (off - WAL_HDR) % fsz;
	if (within == 0 && n == VELD_VFS_FRAME_HDR) {
		memcpy(w->last_hdr, buf, VELD_VFS_FRAME_HDR);
		w->last_off = off;
		w->have_last = 1;
		return veld_vfs__pwrite(w, buf, (size_t)n, off);
	}
	if (within == VELD_VFS_FRAME_HDR && n == w->pgsz) {
		uint32_t pgno;
		unsigned char hdr[VELD_VFS_FRAME_HDR];
		if (w->have_last && w->last_off == off - VELD_VFS_FRAME_HDR) {
			pgno = get32(w->last_hdr);
		} else {
			int64_t got;
			if ((rc = veld_vfs__pread(w, hdr, sizeof hdr, off - VELD_VFS_FRAME_HDR, &got)) != SQLITE_OK)
				return rc;
			if (got != VELD_VFS_FRAME_HDR)
				return veld_vfs__fail(w->vfs, SQLITE_IOERR_WRITE,
				                      "%s: page written before its frame header", w->label);
			pgno = get32(hdr);
		}
		if (pgno == 0)
			return veld_vfs__fail(w->vfs, SQLITE_IOERR_WRITE, "%s: frame for page 0", w->label);
		if ((rc = veld_vfs__check_plain(w, pgno, buf, w->pgsz)) != SQLITE_OK)
			return rc;
		veld_vfs__seal_page(m, pgno, buf, w->sealed, w->pgsz);
		return veld_vfs__pwrite(w, w->sealed, (size_t)n, off);
	}
	return veld_vfs__fail(w->vfs, SQLITE_IOERR_WRITE, "%s: unexpected write of %d bytes at %lld",
	                      w->label, n, (long long)off);
}

/* ---- the rollback journal ---------------------------------------------- */

static int is_journal_page(veld_vfs_file *j, int n, int64_t off)
{
	return j->pgsz && n == j->pgsz && off % VELD_VFS_SECTOR != 0 && off >= 4;
}

static int journal_page_size(veld_vfs_file *j)
{
	int rc = veld_vfs__main_page_size(j->main);
	if (rc == SQLITE_OK && !j->pgsz && j->main->pgsz) {
		j->pgsz = j->main->pgsz;
		rc = veld_vfs__scratch(j, j->pgsz);
	}
	return rc;
}

/* The page number stored in the 4 bytes before offset `off`. */
static int journal_pgno(veld_vfs_file *j, int64_t off, uint32_t *pgno)
{
	unsigned char b[4];
	int64_t got;
	int rc;
	if (j->have_last && j->last_off == off - 4) {
		*pgno = get32(j->last_hdr);
		return SQLITE_OK;
	}
	if ((rc = veld_vfs__pread(j, b, 4, off - 4, &got)) != SQLITE_OK)
		return rc;
	*pgno = got == 4 ? get32(b) : 0;
	return SQLITE_OK;
}

int veld_vfs__journal_read(veld_vfs_file *j, unsigned char *buf, int n, int64_t off)
{
	int rc, why;
	int64_t got;
	uint32_t pgno;

	if ((rc = journal_page_size(j)) != SQLITE_OK)
		return rc;
	if (!is_journal_page(j, n, off)) {
		if ((rc = veld_vfs__pread(j, buf, (size_t)n, off, &got)) != SQLITE_OK)
			return rc;
		if (got < n) {
			memset(buf + got, 0, (size_t)(n - got));
			return SQLITE_IOERR_SHORT_READ;
		}
		return SQLITE_OK;
	}
	if ((rc = journal_pgno(j, off, &pgno)) != SQLITE_OK)
		return rc;
	if ((rc = veld_vfs__pread(j, j->sealed, (size_t)n, off, &got)) != SQLITE_OK)
		return rc;
	if (got < n) {
		memset(buf, 0, (size_t)n);
		return SQLITE_IOERR_SHORT_READ;
	}
	if (pgno == 0)
		return veld_vfs__fail(j->vfs, SQLITE_IOERR_DATA, "%s: record for page 0", j->label);
	if ((why = veld_vfs__open_page(j->main, pgno, j->sealed, j->plain, n)) != 0)
		return veld_vfs__open_fail(j, why, pgno, 0);
	memcpy(buf, j->plain, (size_t)n);
	return SQLITE_OK;
}

int veld_vfs__journal_write(veld_vfs_file *j, const unsigned char *buf, int n, int64_t off)
{
	int rc;
	uint32_t pgno;

	if ((rc = journal_page_size(j)) != SQLITE_OK)
		return rc;
	if (!is_journal_page(j, n, off)) {
		if (n == 4) {
			memcpy(j->last_hdr, buf, 4);
			j->last_off = off;
			j->have_last = 1;
		}
		return veld_vfs__pwrite(j, buf, (size_t)n, off);
	}
	if ((rc = journal_pgno(j, off, &pgno)) != SQLITE_OK)
		return rc;
	if (pgno == 0)
		return veld_vfs__fail(j->vfs, SQLITE_IOERR_WRITE, "%s: record for page 0", j->label);
	if ((rc = veld_vfs__check_plain(j, pgno, buf, n)) != SQLITE_OK)
		return rc;
	veld_vfs__seal_page(j->main, pgno, buf, j->sealed, n);
	return veld_vfs__pwrite(j, j->sealed, (size_t)n, off);
}

/*
** platform_faulty.c — the fault-injection table (platform/faulty.c) does
** what the crash tests rely on: unsynced writes may be dropped, kept or
** torn at power loss, synced writes always survive, every sector ends up
** as of some prefix of the write sequence, the N-th write, fsync, read,
** directory listing or removal fails when asked, and after the power loss
** every call fails.  The version 2 entries (xListDir, xRmdir, xMtime) of the
** default table do what veld_platform.h says.
*/
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512
#define RDWR (VELD_OS_READ | VELD_OS_WRITE | VELD_OS_CREATE)

typedef struct fixture {
	char *dir;
	char *path;
	veld_os_faulty *f;
	const veld_os *os;
} fixture;

static void fx_begin(fixture *fx, unsigned seed)
{
	veld_os_fault_plan plan;
	memset(fx, 0, sizeof *fx);
	fx->dir = veld_test_tmpdir("faulty");
	fx->path = veld_test_path(fx->dir, "file");
	assert_int_equal(veld_os_faulty_new(&fx->f, veld_os_default()), 0);
	fx->os = veld_os_faulty_table(fx->f);
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	plan.seed = seed;
	veld_os_faulty_set(fx->f, &plan);
}

static void fx_plan(fixture *fx, const veld_os_fault_plan *plan)
{
	veld_os_faulty_set(fx->f, plan);
}

static void fx_end(fixture *fx)
{
	veld_os_faulty_free(fx->f);
	veld_test_rmtree(fx->dir);
	free(fx->path);
	free(fx->dir);
}

static int fx_open(fixture *fx)
{
	int fd = fx->os->xOpen(fx->os->ctx, fx->path, RDWR, 0600);
	assert_true(fd >= 0);
	return fd;
}

static void fx_write(fixture *fx, int fd, int byte, size_t n, int64_t off)
{
	unsigned char *buf = malloc(n);
	assert_non_null(buf);
	memset(buf, byte, n);
	assert_int_equal(fx->os->xPwrite(fx->os->ctx, fd, buf, n, off), (int64_t)n);
	free(buf);
}

static unsigned char *disk(fixture *fx, size_t *len)
{
	unsigned char *b = veld_test_read_file(fx->path, len);
	assert_non_null(b);
	return b;
}

/* ---- power loss ---------------------------------------------------------- */

static void test_platform_faulty__synced_writes_survive(void **state)
{
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 32; seed++) {
		fixture fx;
		int fd;
		size_t len, i;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'A', 4096, 0);
		fx_write(&fx, fd, 'B', 100, 1000);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		veld_os_faulty_crash(fx.f);
		assert_true(veld_os_faulty_crashed(fx.f));
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		assert_int_equal(len, 4096);
		for (i = 0; i < len; i++)
			assert_int_equal(b[i], i >= 1000 && i < 1100 ? 'B' : 'A');
		free(b);
		fx_end(&fx);
	}
}

/* Over many seeds one unsynced overwrite is sometimes dropped, sometimes
** kept and sometimes torn at a sector boundary, and never anything else. */
static void test_platform_faulty__unsynced_write_dropped_kept_or_torn(void **state)
{
	int dropped = 0, kept = 0, torn = 0;
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 64; seed++) {
		fixture fx;
		int fd;
		size_t len, i, nb = 0;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'A', 4096, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		fx_write(&fx, fd, 'B', 4096, 0);
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		assert_int_equal(len, 4096);
		while (nb < len && b[nb] == 'B')
			nb++;
		for (i = nb; i < len; i++)
			assert_int_equal(b[i], 'A');
		assert_int_equal(nb % SECTOR, 0);
		if (nb == 0)
			dropped++;
		else if (nb == len)
			kept++;
		else
			torn++;
		free(b);
		fx_end(&fx);
	}
	assert_true(dropped > 0);
	assert_true(kept > 0);
	assert_true(torn > 0);
}

/* A write that grows the file and is lost leaves the file its old size (or
** the size after the writes that were kept). */
static void test_platform_faulty__unsynced_growth_can_vanish(void **state)
{
	int short_seen = 0, long_seen = 0;
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 32; seed++) {
		fixture fx;
		int fd;
		size_t len;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'A', 1024, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		fx_write(&fx, fd, 'B', 1024, 1024);
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		assert_true(len == 1024 || len == 2048);
		if (len == 1024)
			short_seen++;
		else
			long_seen++;
		assert_int_equal(b[0], 'A');
		assert_int_equal(b[1023], 'A');
		free(b);
		fx_end(&fx);
	}
	assert_true(short_seen > 0);
	assert_true(long_seen > 0);
}

/*
** The sector model: after many overlapping, unaligned, unsynced writes every
** sector holds its bytes as of some prefix of the write sequence (a newer
** write that was kept is never clobbered by undoing an older one), and the
** file's size is the size after some prefix.
*/
#define NW 12
static void test_platform_faulty__every_sector_is_a_prefix_state(void **state)
{
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 48; seed++) {
		fixture fx;
		int fd, w;
		size_t len, s;
		unsigned char *snap[NW + 1];
		size_t snap_len[NW + 1];
		unsigned char *b;
		uint32_t r = seed * 2654435761u;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'a', 3000, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		snap[0] = disk(&fx, &snap_len[0]);
		for (w = 1; w <= NW; w++) {
			size_t n, off;
			r = r * 1103515245u + 12345u;
			off = (r >> 8) % 5000;
			r = r * 1103515245u + 12345u;
			n = 1 + (r >> 8) % 1500;
			fx_write(&fx, fd, 'A' + w, n, (int64_t)off);
			snap[w] = disk(&fx, &snap_len[w]);
		}
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		for (w = 0; w <= NW; w++)
			if (snap_len[w] == len)
				break;
		assert_true(w <= NW); /* the size is some prefix's size */
		for (s = 0; s * SECTOR < len; s++) {
			size_t lo = s * SECTOR, hi = lo + SECTOR < len ? lo + SECTOR : len;
			int ok = 0;
			for (w = 0; w <= NW && !ok; w++) {
				unsigned char zero[SECTOR];
				const unsigned char *want;
				size_t have = snap_len[w] > lo ? snap_len[w] - lo : 0;
				memset(zero, 0, sizeof zero);
				if (have >= hi - lo) {
					want = snap[w] + lo;
					ok = memcmp(b + lo, want, hi - lo) == 0;
				} else {
					/* past that prefix's end: its bytes, then a hole */
					ok = (have == 0 || memcmp(b + lo, snap[w] + lo, have) == 0) &&
					     memcmp(b + lo + have, zero, hi - lo - have) == 0;
				}
			}
			assert_true(ok);
		}
		for (w = 0; w <= NW; w++)
			free(snap[w]);
		free(b);
		fx_end(&fx);
	}
}

/* A kept newer write survives even when an older write under it is undone. */
static void test_platform_faulty__kept_newer_write_is_not_clobbered(void **state)
{
	int seen_new_over_dropped_old = 0;
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 64; seed++) {
		fixture fx;
		int fd;
		size_t len, i;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, '0', 1024, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		fx_write(&fx, fd, '1', 1024, 0);  /* older, both sectors */
		fx_write(&fx, fd, '2', 512, 512); /* newer, second sector */
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		assert_int_equal(len, 1024);
		/* Sector 0 is '0' or '1'; sector 1 is '0', '1' or '2'. */
		assert_true(b[0] == '0' || b[0] == '1');
		assert_true(b[512] == '0' || b[512] == '1' || b[512] == '2');
		for (i = 0; i < len; i++) /* whole sectors */
			assert_int_equal(b[i], b[i < 512 ? 0 : 512]);
		if (b[0] == '0' && b[512] == '2')
			seen_new_over_dropped_old++;
		free(b);
		fx_end(&fx);
	}
	assert_true(seen_new_over_dropped_old > 0);
}

static void test_platform_faulty__unsynced_truncate_can_be_undone(void **state)
{
	int undone = 0, done = 0;
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 32; seed++) {
		fixture fx;
		int fd;
		size_t len, i;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'T', 2048, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		assert_int_equal(fx.os->xTruncate(fx.os->ctx, fd, 512), 0);
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd);
		b = disk(&fx, &len);
		assert_true(len == 512 || len == 2048);
		for (i = 0; i < len; i++)
			assert_int_equal(b[i], 'T');
		if (len == 2048)
			undone++;
		else
			done++;
		free(b);
		fx_end(&fx);
	}
	assert_true(undone > 0 && done > 0);
}

/* Two handles on one path are one file: an fsync through either syncs it. */
static void test_platform_faulty__handles_share_a_file(void **state)
{
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 16; seed++) {
		fixture fx;
		int fd1, fd2;
		size_t len, i;
		unsigned char *b;
		fx_begin(&fx, seed);
		fd1 = fx_open(&fx);
		fd2 = fx_open(&fx);
		fx_write(&fx, fd1, 'S', 2048, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd2), 0);
		assert_int_equal(fx.os->xClose(fx.os->ctx, fd1), 0);
		veld_os_faulty_crash(fx.f);
		fx.os->xClose(fx.os->ctx, fd2);
		b = disk(&fx, &len);
		assert_int_equal(len, 2048);
		for (i = 0; i < len; i++)
			assert_int_equal(b[i], 'S');
		free(b);
		fx_end(&fx);
	}
}

/* Unsynced writes of a closed file are still at risk; a rename carries the
** file's state to its new name. */
static void test_platform_faulty__close_and_rename_keep_the_risk(void **state)
{
	int lost = 0;
	unsigned seed;
	(void)state;
	for (seed = 1; seed <= 32; seed++) {
		fixture fx;
		int fd;
		size_t len;
		unsigned char *b;
		char *to;
		fx_begin(&fx, seed);
		to = veld_test_path(fx.dir, "renamed");
		fd = fx_open(&fx);
		fx_write(&fx, fd, 'x', 512, 0);
		assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
		fx_write(&fx, fd, 'y', 512, 0);
		assert_int_equal(fx.os->xClose(fx.os->ctx, fd), 0);
		assert_int_equal(fx.os->xRename(fx.os->ctx, fx.path, to), 0);
		veld_os_faulty_crash(fx.f);
		b = veld_test_read_file(to, &len);
		assert_non_null(b);
		assert_int_equal(len, 512);
		assert_true(b[0] == 'x' || b[0] == 'y');
		if (b[0] == 'x')
			lost++;
		free(b);
		free(to);
		fx_end(&fx);
	}
	assert_true(lost > 0);
}

/* The plan's crash_at_fsync: power loss just before that fsync, which fails
** like everything after it; what earlier fsyncs covered survives. */
static void test_platform_faulty__crash_at_fsync(void **state)
{
	fixture fx;
	veld_os_fault_plan plan;
	int fd;
	size_t len;
	unsigned char *b;
	(void)state;
	fx_begin(&fx, 7);
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	plan.seed = 7;
	plan.crash_at_fsync = 2;
	fx_plan(&fx, &plan);
	fd = fx_open(&fx);
	fx_write(&fx, fd, 'k', 1024, 0);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	fx_write(&fx, fd, 'm', 1024, 1024);
	assert_false(veld_os_faulty_crashed(fx.f));
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), -EIO);
	assert_true(veld_os_faulty_crashed(fx.f));
	assert_int_equal(veld_os_faulty_count(fx.f, 's'), 2);
	fx.os->xClose(fx.os->ctx, fd);
	b = disk(&fx, &len);
	assert_true(len >= 1024);
	assert_int_equal(b[0], 'k');
	assert_int_equal(b[1023], 'k');
	free(b);
	fx_end(&fx);
}

static void test_platform_faulty__crash_at_write(void **state)
{
	fixture fx;
	veld_os_fault_plan plan;
	int fd;
	size_t len;
	unsigned char *b;
	(void)state;
	fx_begin(&fx, 3);
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	plan.seed = 3;
	plan.crash_at_write = 3;
	fx_plan(&fx, &plan);
	fd = fx_open(&fx);
	fx_write(&fx, fd, 'p', 512, 0);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	fx_write(&fx, fd, 'q', 512, 512);
	assert_int_equal(fx.os->xPwrite(fx.os->ctx, fd, "r", 1, 0), -EIO);
	assert_true(veld_os_faulty_crashed(fx.f));
	fx.os->xClose(fx.os->ctx, fd);
	b = disk(&fx, &len);
	assert_true(len == 512 || len == 1024);
	assert_int_equal(b[0], 'p'); /* the crashing write never happened */
	if (len == 1024)
		assert_int_equal(b[512], 'q');
	free(b);
	fx_end(&fx);
}

/* ---- injected I/O errors ----------------------------------------------- */

static void test_platform_faulty__fail_nth_write_fsync_read(void **state)
{
	fixture fx;
	veld_os_fault_plan plan;
	unsigned char buf[16];
	int fd;
	size_t len;
	unsigned char *b;
	(void)state;
	fx_begin(&fx, 1);
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	plan.fail_write_at = 2;
	plan.fail_fsync_at = 3;
	plan.fail_read_at = 2;
	fx_plan(&fx, &plan);
	fd = fx_open(&fx);

	assert_int_equal(fx.os->xPwrite(fx.os->ctx, fd, "one", 3, 0), 3);
	assert_int_equal(fx.os->xPwrite(fx.os->ctx, fd, "TWO", 3, 0), -EIO);
	assert_int_equal(fx.os->xPwrite(fx.os->ctx, fd, "three", 5, 3), 5);
	assert_int_equal(veld_os_faulty_count(fx.f, 'w'), 3);

	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), -EIO);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	assert_int_equal(veld_os_faulty_count(fx.f, 's'), 4);

	assert_int_equal(fx.os->xPread(fx.os->ctx, fd, buf, 3, 0), 3);
	assert_memory_equal(buf, "one", 3); /* the failed write changed nothing */
	assert_int_equal(fx.os->xPread(fx.os->ctx, fd, buf, 3, 0), -EIO);
	assert_int_equal(fx.os->xPread(fx.os->ctx, fd, buf, 8, 0), 8);
	assert_memory_equal(buf, "onethree", 8);
	assert_int_equal(veld_os_faulty_count(fx.f, 'r'), 3);

	/* Errors are not power loss: nothing is undone. */
	assert_false(veld_os_faulty_crashed(fx.f));
	assert_int_equal(fx.os->xClose(fx.os->ctx, fd), 0);
	b = disk(&fx, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(b, "onethree", 8);
	free(b);
	fx_end(&fx);
}

/* ---- after the power loss ------------------------------------------------ */

static void test_platform_faulty__everything_fails_after_the_crash(void **state)
{
	fixture fx;
	unsigned char buf[4];
	int64_t size;
	int flags, fd;
	size_t blen = 4;
	char *other;
	(void)state;
	fx_begin(&fx, 5);
	other = veld_test_path(fx.dir, "other");
	fd = fx_open(&fx);
	fx_write(&fx, fd, 'z', 4, 0);
	veld_os_faulty_crash(fx.f);
	veld_os_faulty_crash(fx.f); /* twice is once */
	assert_int_equal(fx.os->xOpen(fx.os->ctx, fx.path, RDWR, 0600), -EIO);
	assert_int_equal(fx.os->xPread(fx.os->ctx, fd, buf, 4, 0), -EIO);
	assert_int_equal(fx.os->xPwrite(fx.os->ctx, fd, "w", 1, 0), -EIO);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), -EIO);
	assert_int_equal(fx.os->xTruncate(fx.os->ctx, fd, 0), -EIO);
	assert_int_equal(fx.os->xFileSize(fx.os->ctx, fd, &size), -EIO);
	assert_int_equal(fx.os->xLock(fx.os->ctx, fd, VELD_OS_LOCK_EX, 0), -EIO);
	assert_int_equal(fx.os->xStat(fx.os->ctx, fx.path, &flags, &size), -EIO);
	assert_int_equal(fx.os->xRename(fx.os->ctx, fx.path, other), -EIO);
	assert_int_equal(fx.os->xUnlink(fx.os->ctx, fx.path), -EIO);
	assert_int_equal(fx.os->xMkdir(fx.os->ctx, other, 0700), -EIO);
	assert_int_equal(fx.os->xSyncDir(fx.os->ctx, fx.dir), -EIO);
	assert_int_equal(fx.os->xPrompt(fx.os->ctx, "?", (char *)buf, blen), -EIO);
	/* close fails too, but gives the descriptor back */
	assert_int_equal(fx.os->xClose(fx.os->ctx, fd), -EIO);
	assert_int_equal(veld_os_default()->xClose(NULL, fd), -EBADF);
	free(other);
	fx_end(&fx);
}

static void test_platform_faulty__unlink_forgets_the_file(void **state)
{
	fixture fx;
	int fd;
	size_t len;
	unsigned char *b;
	(void)state;
	fx_begin(&fx, 9);
	fd = fx_open(&fx);
	fx_write(&fx, fd, 'u', 1024, 0);
	assert_int_equal(fx.os->xClose(fx.os->ctx, fd), 0);
	assert_int_equal(fx.os->xUnlink(fx.os->ctx, fx.path), 0);
	fd = fx_open(&fx); /* a new file under the old name */
	fx_write(&fx, fd, 'v', 512, 0);
	assert_int_equal(fx.os->xFsync(fx.os->ctx, fd), 0);
	veld_os_faulty_crash(fx.f);
	fx.os->xClose(fx.os->ctx, fd);
	b = disk(&fx, &len);
	assert_int_equal(len, 512);
	assert_int_equal(b[0], 'v');
	free(b);
	fx_end(&fx);
}

/* ---- version 2: directories and modification times ---------------------- */

typedef struct listing {
	int files, dirs, stop_after;
	char names[512];
} listing;

static int list_cb(const char *name, int flags, void *payload)
{
	listing *l = payload;
	if (flags & VELD_OS_ISDIR)
		l->dirs++;
	if (flags & VELD_OS_ISREG)
		l->files++;
	strncat(l->names, name, sizeof l->names - strlen(l->names) - 2);
	strcat(l->names, ",");
	return l->stop_after && l->files + l->dirs >= l->stop_after ? 7 : 0;
}

static int is_dir(const char *path)
{
	const veld_os *os = veld_os_default();
	int flags = 0;
	return os->xStat(os->ctx, path, &flags, NULL) == 0 && (flags & VELD_OS_ISDIR) ? 1 : 0;
}

static void touch(const veld_os *os, const char *path)
{
	int fd = os->xOpen(os->ctx, path, RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(os->xClose(os->ctx, fd), 0);
}

static void test_platform_faulty__list_remove_and_mtime(void **state)
{
	fixture fx;
	const veld_os *os = veld_os_default();
	char *sub, *in_sub, *missing;
	listing l;
	int64_t mt = 0, now;
	(void)state;
	fx_begin(&fx, 11);
	assert_true(os->version >= 2);
	assert_int_equal(fx.os->version, VELD_OS_VERSION);
	sub = veld_test_path(fx.dir, "sub");
	in_sub = veld_test_path(sub, "x");
	missing = veld_test_path(fx.dir, "missing");
	touch(os, fx.path);
	assert_int_equal(os->xMkdir(os->ctx, sub, 0700), 0);
	touch(os, in_sub);

	/* Entries with their kind, never "." or "..". */
	memset(&l, 0, sizeof l);
	assert_int_equal(os->xListDir(os->ctx, fx.dir, list_cb, &l), 0);
	assert_int_equal(l.files, 1);
	assert_int_equal(l.dirs, 1);
	assert_non_null(strstr(l.names, "file,"));
	assert_non_null(strstr(l.names, "sub,"));
	assert_null(strstr(l.names, ".,"));
	/* A non-zero return from the callback stops and comes back. */
	memset(&l, 0, sizeof l);
	l.stop_after = 1;
	assert_int_equal(os->xListDir(os->ctx, fx.dir, list_cb, &l), 7);
	assert_int_equal(l.files + l.dirs, 1);
	assert_int_equal(os->xListDir(os->ctx, missing, list_cb, &l), -ENOENT);

	/* A modification time near the clock's. */
	now = os->xClockMs(os->ctx);
	assert_int_equal(os->xMtime(os->ctx, fx.path, &mt), 0);
	assert_true(mt <= now && mt > now - 60 * 1000);
	assert_int_equal(os->xMtime(os->ctx, missing, &mt), -ENOENT);

	/* rmdir removes only an empty directory. */
	assert_int_equal(os->xRmdir(os->ctx, sub), -ENOTEMPTY);
	assert_int_equal(os->xUnlink(os->ctx, in_sub), 0);
	assert_int_equal(os->xRmdir(os->ctx, sub), 0);
	assert_int_equal(os->xRmdir(os->ctx, sub), -ENOENT);
	free(missing);
	free(in_sub);
	free(sub);
	fx_end(&fx);
}

static void test_platform_faulty__fail_nth_listing_and_removal(void **state)
{
	fixture fx;
	veld_os_fault_plan plan;
	char *sub;
	listing l;
	int64_t mt = 0;
	(void)state;
	fx_begin(&fx, 12);
	sub = veld_test_path(fx.dir, "sub");
	touch(fx.os, fx.path);
	assert_int_equal(fx.os->xMkdir(fx.os->ctx, sub, 0700), 0);
	memset(&plan, 0, sizeof plan);
	plan.version = 2;
	plan.fail_list_at = 2;
	plan.fail_remove_at = 1;
	fx_plan(&fx, &plan);

	memset(&l, 0, sizeof l);
	assert_int_equal(fx.os->xListDir(fx.os->ctx, fx.dir, list_cb, &l), 0);
	assert_int_equal(l.files + l.dirs, 2);
	memset(&l, 0, sizeof l);
	assert_int_equal(fx.os->xListDir(fx.os->ctx, fx.dir, list_cb, &l), -EIO); /* the second */
	assert_int_equal(l.files + l.dirs, 0);
	assert_int_equal(fx.os->xListDir(fx.os->ctx, fx.dir, list_cb, &l), 0);
	assert_int_equal(veld_os_faulty_count(fx.f, 'l'), 3);

	/* The first removal fails and leaves the directory; the next goes through. */
	assert_int_equal(fx.os->xRmdir(fx.os->ctx, sub), -EIO);
	assert_int_equal(is_dir(sub), 1);
	assert_int_equal(fx.os->xRmdir(fx.os->ctx, sub), 0);
	assert_int_equal(is_dir(sub), 0);
	assert_int_equal(fx.os->xMtime(fx.os->ctx, fx.path, &mt), 0);
	assert_int_equal(fx.os->xUnlink(fx.os->ctx, fx.path), 0);
	assert_int_equal(veld_os_faulty_count(fx.f, 'd'), 3);

	/* A version 1 plan leaves the new faults off. */
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	fx_plan(&fx, &plan);
	assert_int_equal(fx.os->xListDir(fx.os->ctx, fx.dir, list_cb, &l), 0);

	/* After the power loss they fail too. */
	veld_os_faulty_crash(fx.f);
	assert_int_equal(fx.os->xListDir(fx.os->ctx, fx.dir, list_cb, &l), -EIO);
	assert_int_equal(fx.os->xRmdir(fx.os->ctx, fx.dir), -EIO);
	assert_int_equal(fx.os->xMtime(fx.os->ctx, fx.dir, &mt), -EIO);
	free(sub);
	fx_end(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_platform_faulty__synced_writes_survive),
		cmocka_unit_test(test_platform_faulty__unsynced_write_dropped_kept_or_torn),
		cmocka_unit_test(test_platform_faulty__unsynced_growth_can_vanish),
		cmocka_unit_test(test_platform_faulty__every_sector_is_a_prefix_state),
		cmocka_unit_test(test_platform_faulty__kept_newer_write_is_not_clobbered),
		cmocka_unit_test(test_platform_faulty__unsynced_truncate_can_be_undone),
		cmocka_unit_test(test_platform_faulty__handles_share_a_file),
		cmocka_unit_test(test_platform_faulty__close_and_rename_keep_the_risk),
		cmocka_unit_test(test_platform_faulty__crash_at_fsync),
		cmocka_unit_test(test_platform_faulty__crash_at_write),
		cmocka_unit_test(test_platform_faulty__fail_nth_write_fsync_read),
		cmocka_unit_test(test_platform_faulty__everything_fails_after_the_crash),
		cmocka_unit_test(test_platform_faulty__unlink_forgets_the_file),
		cmocka_unit_test(test_platform_faulty__list_remove_and_mtime),
		cmocka_unit_test(test_platform_faulty__fail_nth_listing_and_removal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** posix.c — the default `veld_os` table for POSIX systems (Linux, Android,
** macOS, iOS).
**
** Each entry is a thin wrapper over one system call that retries on EINTR
** and turns errno into a negative return value.  No state: the table is a
** constant, `ctx` is unused.  Locks are flock(2) locks, which belong to an
** open file description, so two handles on one store exclude each other
** even inside one process.  Randomness comes from libsodium.
*/
#define _GNU_SOURCE
#include "veld_platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

static int neg_errno(void) { return errno ? -errno : -EIO; }

static int px_open(void *ctx, const char *path, int flags, int mode)
{
	int o = O_CLOEXEC;
	(void)ctx;
	if ((flags & VELD_OS_READ) && (flags & VELD_OS_WRITE))
		o |= O_RDWR;
	else if (flags & VELD_OS_WRITE)
		o |= O_WRONLY;
	else
		o |= O_RDONLY;
	if (flags & VELD_OS_CREATE)
		o |= O_CREAT;
	if (flags & VELD_OS_EXCL)
		o |= O_EXCL;
	if (flags & VELD_OS_TRUNC)
		o |= O_TRUNC;
	for (;;) {
		int fd = open(path, o, (mode_t)mode);
		if (fd >= 0)
			return fd;
		if (errno != EINTR)
			return neg_errno();
	}
}

static int px_close(void *ctx, int fd)
{
	(void)ctx;
	/* Linux closes the descriptor even when close() reports EINTR. */
	if (close(fd) != 0 && errno != EINTR)
		return neg_errno();
	return 0;
}

static int64_t px_pread(void *ctx, int fd, void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	(void)ctx;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + (int64_t)done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (int64_t)done;
}

static int64_t px_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	(void)ctx;
	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + (int64_t)done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		done += (size_t)r;
	}
	return (int64_t)done;
}

static int px_fsync(void *ctx, int fd)
{
	(void)ctx;
#if defined(__APPLE__)
	if (fcntl(fd, F_FULLFSYNC) == 0)
		return 0;
#endif
	while (fdatasync(fd) != 0) {
		if (errno != EINTR)
			return neg_errno();
	}
	return 0;
}

static int px_truncate(void *ctx, int fd, int64_t size)
{
	(void)ctx;
	while (ftruncate(fd, (off_t)size) != 0) {
		if (errno != EINTR)
			return neg_errno();
	}
	return 0;
}

static int px_filesize(void *ctx, int fd, int64_t *size)
{
	struct stat st;
	(void)ctx;
	if (fstat(fd, &st) != 0)
		return neg_errno();
	*size = (int64_t)st.st_size;
	return 0;
}

static int px_lock(void *ctx, int fd, int kind, int wait_ms)
{
	int op = kind == VELD_OS_LOCK_EX ? LOCK_EX : kind == VELD_OS_LOCK_SH ? LOCK_SH : LOCK_UN;
	int waited = 0;
	(void)ctx;
	if (op == LOCK_UN)
		return flock(fd, LOCK_UN) == 0 ? 0 : neg_errno();
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return neg_errno();
		if (waited >= wait_ms)
			return -EBUSY;
		{
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		waited += 10;
	}
}

static int px_stat(void *ctx, const char *path, int *flags, int64_t *size)
{
	struct stat st;
	(void)ctx;
	if (stat(path, &st) != 0)
		return neg_errno();
	if (flags)
		*flags = (S_ISDIR(st.st_mode) ? VELD_OS_ISDIR : 0) | (S_ISREG(st.st_mode) ? VELD_OS_ISREG : 0);
	if (size)
		*size = (int64_t)st.st_size;
	return 0;
}

static int px_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to) == 0 ? 0 : neg_errno();
}

static int px_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path) == 0 ? 0 : neg_errno();
}

static int px_mkdir(void *ctx, const char *path, int mode)
{
	(void)ctx;
	return mkdir(path, (mode_t)mode) == 0 ? 0 : neg_errno();
}

static int px_syncdir(void *ctx, const char *path)
{
	int fd, rc = 0;
	(void)ctx;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = neg_errno();
	close(fd);
	return rc;
}

static int px_listdir(void *ctx, const char *path, int (*cb)(const char *name, int flags, void *payload),
                      void *payload)
{
	DIR *d;
	struct dirent *de;
	int rc = 0;
	(void)ctx;
	if (!(d = opendir(path)))
		return neg_errno();
	for (;;) {
		int flags = 0;
		errno = 0;
		if (!(de = readdir(d))) {
			rc = errno ? neg_errno() : 0;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR) {
			flags = VELD_OS_ISDIR;
		} else if (de->d_type == DT_REG) {
			flags = VELD_OS_ISREG;
		} else if (de->d_type == DT_UNKNOWN) {
			/* a file system that does not say: ask, without following links */
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				flags = (S_ISDIR(st.st_mode) ? VELD_OS_ISDIR : 0) | (S_ISREG(st.st_mode) ? VELD_OS_ISREG : 0);
		}
		if ((rc = cb(de->d_name, flags, payload)) != 0)
			break;
	}
	closedir(d);
	return rc;
}

static int px_rmdir(void *ctx, const char *path)
{
	(void)ctx;
	return rmdir(path) == 0 ? 0 : neg_errno();
}

static int px_mtime(void *ctx, const char *path, int64_t *mtime_ms)
{
	struct stat st;
	(void)ctx;
	if (stat(path, &st) != 0)
		return neg_errno();
	*mtime_ms = (int64_t)st.st_mtime * 1000;
	return 0;
}

static int64_t px_clock(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void px_sleep(void *ctx, int ms)
{
	struct timespec ts;
	(void)ctx;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void px_random(void *ctx, void *buf, size_t n)
{
	(void)ctx;
	randombytes_buf(buf, n);
}

/* Read a line from /dev/tty with echo off; restores the terminal on every path. */
static int px_prompt(void *ctx, const char *prompt, char *buf, size_t n)
{
	struct termios old, quiet;
	int fd, rc = 0, have_old = 0;
	size_t len = 0;
	(void)ctx;
	if (n == 0)
		return -EINVAL;
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -ENOTTY;
	if (tcgetattr(fd, &old) == 0) {
		have_old = 1;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		rc = neg_errno();
		goto done;
	}
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || c == '\n' || c == '\r')
			break;
		if (len + 1 < n)
			buf[len++] = c;
	}
	buf[len] = '\0';
	rc = (int)len;
	if (write(fd, "\n", 1) < 0) {
		/* nothing useful to do: the secret was read */
	}
done:
	if (have_old)
		tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return rc;
}

static const veld_os posix_os = {
	VELD_OS_VERSION,
	NULL,
	px_open,
	px_close,
	px_pread,
	px_pwrite,
	px_fsync,
	px_truncate,
	px_filesize,
	px_lock,
	px_stat,
	px_rename,
	px_unlink,
	px_mkdir,
	px_syncdir,
	px_clock,
	px_sleep,
	px_random,
	px_prompt,
	NULL, /* xKeyWrap: no hardware keystore on a plain POSIX system */
	NULL,
	px_listdir,
	px_rmdir,
	px_mtime,
};

const veld_os *veld_os_default(void)
{
	return &posix_os;
}

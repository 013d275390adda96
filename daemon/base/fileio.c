/*
 * fileio.c - file helpers (fileio.h): the one place that reads a bounded
 * file, writes a whole buffer, and replaces a file atomically (temporary
 * name, fsync, rename, folder fsync), so every writer gets the order of
 * those steps and the clean-up after a failure right the same way.
 * Spool delivery batches keep their own protocol (one syncfs per batch,
 * spool_out.c).
 */
#include "base/fileio.h"

#include "codecs/base/mem.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int read_file_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	return read_file_stat_at(dirfd, name, max, out, len, &st);
}

int read_file_stat_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len,
		      struct stat *stp)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*stp = st;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	size_t cap = (size_t)st.st_size + 1, n = 0;
	_cleanup_free_ uint8_t *buf = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			/* The file grew while we read it; keep to the limit. */
			if (cap > max)
				return -EFBIG;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max)
		return -EFBIG;
	buf[n] = '\0';
	*out = TAKE_PTR(buf);
	*len = n;
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t r = write(fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
			 unsigned mode, unsigned flags)
{
	assert(!strchr(name, '/'));
	_cleanup_free_ char *tmp = xasprintf(".%s.tmp", name);
	/* O_TRUNC: a leftover of a crashed writer is overwritten; O_NOFOLLOW:
	 * never write through a link planted under the temporary name. */
	_cleanup_close_ int fd =
		openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && close(TAKE_FD(fd)) < 0)
		r = -errno;
	unsigned how = flags & WRITE_ATOMIC_NOREPLACE ? RENAME_NOREPLACE : 0;
	if (r == 0 && renameat2(dirfd, tmp, dirfd, name, how) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	/* The rename is durable only once the folder is. */
	return fsync(dirfd) < 0 ? -errno : 0;
}

int fsync_dir(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

int mkdir_p(const char *path, unsigned mode)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

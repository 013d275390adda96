/*
 * quarantine.c - the quarantine folder for inbound files that cannot be
 * accepted (unparseable, hostile, too large, not a regular file).
 *
 * Invariant: a file leaves the inbox only once its copy in the quarantine
 * folder and its reason file are durable. A move within one file system is
 * a rename, whatever the file is (a FIFO or a symlink moves as itself).
 * Across file systems only a regular file of at most info->max_copy bytes
 * is copied, in bounded chunks: anything else stays where it is (-EFBIG or
 * -EXDEV) for an operator, and is never read whole into memory.
 */
#include "transport/quarantine.h"

#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int write_reason(int qfd, const char *qname, const struct quarantine_info *info)
{
	_cleanup_free_ char *final = xasprintf("%s.reason", qname);
	char when[32];
	time_t t = (time_t)(info->received_at / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	_cleanup_free_ char *text = xasprintf("file: %s\nendpoint: %s\nreceived: %s\nerror: %s\n"
					      "reason: %s\n",
					      qname, info->endpoint, when, info->error, info->reason);
	return write_file_atomic_at(qfd, final, text, strlen(text), 0640, WRITE_ATOMIC_NOREPLACE);
}

#define COPY_CHUNK (64 * 1024)

/* Streams src's open fd into dst (created in dfd) and syncs it. */
static int copy_fd(int in, int dfd, const char *dst)
{
	_cleanup_close_ int fd = openat(dfd, dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	_cleanup_free_ uint8_t *buf = xmalloc(COPY_CHUNK);
	int r = 0;
	for (;;) {
		ssize_t n = read(in, buf, COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		if ((r = write_all(fd, buf, (size_t)n)) < 0)
			break;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dfd, dst, 0);
	return r;
}

/* Copies src (in sfd) to dst (in dfd) for a move across file systems: a
 * regular file of at most max bytes only. */
static int copy_file(int sfd, const char *src, int dfd, const char *dst, uint64_t max)
{
	_cleanup_close_ int in = openat(sfd, src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (in < 0)
		return errno == ELOOP ? -EXDEV : -errno; /* a symlink moves only by rename */
	struct stat st;
	if (fstat(in, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EXDEV;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	return copy_fd(in, dfd, dst);
}

/* Moves without ever replacing an existing file (-EEXIST). */
static int move_file(int inbox_fd, const char *name, int qfd, const char *qname, uint64_t max)
{
	if (renameat2(inbox_fd, name, qfd, qname, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EXDEV)
		return -errno;
	int r = copy_file(inbox_fd, name, qfd, qname, max);
	if (r < 0)
		return r;
	if (fsync(qfd) < 0)
		return -errno;
	return unlinkat(inbox_fd, name, 0) < 0 ? -errno : 0;
}

/* Tries one quarantine name: reason file first, then the file itself. */
static int try_name(int inbox_fd, const char *name, int qfd, const char *qname,
		    const struct quarantine_info *info)
{
	int r = write_reason(qfd, qname, info);
	if (r < 0)
		return r;
	r = move_file(inbox_fd, name, qfd, qname, info->max_copy ? info->max_copy : UINT64_MAX);
	if (r < 0) {
		_cleanup_free_ char *reason = xasprintf("%s.reason", qname);
		unlinkat(qfd, reason, 0);
	}
	return r;
}

int quarantine_file(int inbox_fd, const char *name, const char *dir,
		    const struct quarantine_info *info, char *out, size_t outlen)
{
	int r = mkdir_p(dir, 0750);
	if (r < 0)
		return r;
	_cleanup_close_ int qfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qfd < 0)
		return -errno;
	char stamp[32];
	time_t t = (time_t)(info->received_at / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* Never replace an earlier quarantined file of the same name. */
	r = -EEXIST;
	for (int i = 0; i < 1000 && r == -EEXIST; i++) {
		_cleanup_free_ char *qname = i ? xasprintf("%s-%d-%s", stamp, i, name)
					       : xasprintf("%s-%s", stamp, name);
		r = try_name(inbox_fd, name, qfd, qname, info);
		if (r == 0 && out)
			snprintf(out, outlen, "%s/%s", dir, qname);
	}
	if (r < 0)
		return r;
	return fsync(qfd) < 0 ? -errno : 0;
}

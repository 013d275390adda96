/*
 * spool_out.c - delivery into an endpoint's outbox folder, and its probe.
 *
 * Each delivery and probe is a job on the endpoint's outbound lane: it runs
 * off the event loop, on a thread no other endpoint waits for, reads only
 * the spool's immutable settings and its own job, and completes through the
 * caller's callback on the loop. A write stuck on a frozen share keeps its
 * job (and only its job) until the kernel returns; its result then counts.
 * Batch protocol, in order:
 *   1. open the outbox by path (so a remounted share is found again);
 *   2. write every message to ".<final>.tmp" (O_TRUNC: a leftover of a
 *      crashed attempt is overwritten);
 *   3. one syncfs() makes all data durable;
 *   4. rename each temporary file to its final name, in order, stopping at
 *      the first failure, or before the first message whose endpoint's
 *      lease is no longer trusted (several daemons: transport_env.send_until);
 *   5. fsync the folder so the renames are durable.
 * Messages renamed before a failure in 4 are still unconfirmed unless 5
 * succeeds; the count reported delivered is the renamed prefix after 5.
 *
 * Who may read a delivered file is decided in 2, before it gets its final
 * name, so an EOJ client never sees a file it cannot read yet: the file is
 * given the endpoint's file_group (when set) and then its file_mode (0640
 * by default; set after the chown, which may clear mode bits, and whatever
 * the umask). The group is looked up by the spool's first delivery job,
 * on the lane (NSS may block); a group that cannot be used fails every
 * delivery of the endpoint with FAULT_REFUSED and the config line to fix.
 */
#include "transport/spool.h"

#include "base/clock.h"
#include "base/lanes.h"
#include "base/log.h"

#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

enum transport_fault spool_fault(int err)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
		return FAULT_DISK_FULL;
	case ENOENT:
	case ENOTDIR:
	case EACCES:
	case EPERM:
	case EROFS:
		return FAULT_REFUSED;
	case ETIMEDOUT:
		return FAULT_TIMEOUT;
	default:
		return FAULT_IO;
	}
}

void spool_final_name(const struct spool *sp, int64_t id, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%012" PRId64 ".%s", sp->instance, id, ext);
}

/* The final name of m and its temporary name (".<final>.tmp"). */
static void names(const struct spool *sp, const struct out_msg *m, char final[96],
		  char tmp[112])
{
	spool_final_name(sp, m->id, m->ext, final, 96);
	snprintf(tmp, 112, ".%s.tmp", final);
}

static void fail(struct deliver_result *res, int err, const char *what, const char *path)
{
	res->fault = spool_fault(err);
	snprintf(res->error, sizeof(res->error), "%s %s: %s", what, path, strerror(err));
}

/* The gid delivered files get, looked up once per spool (a reload makes a
 * new spool, so a changed group is looked up again): 0, or -errno with
 * res filled. */
static int file_gid(struct spool *sp, struct deliver_result *res)
{
	if (!sp->gid_done && sp->file_group) {
		char why[160];
		gid_t gid;
		if (spool_group_usable(sp->file_group, &gid, why, sizeof(why)) < 0)
			snprintf(sp->gid_error, sizeof(sp->gid_error), "%s", why);
		else
			sp->gid = gid;
	}
	sp->gid_done = true;
	if (!sp->gid_error[0])
		return 0;
	res->fault = FAULT_REFUSED;
	snprintf(res->error, sizeof(res->error), "%s: file_group: %s", sp->file_group_at,
		 sp->gid_error);
	return -EPERM;
}

static int write_one(const struct spool *sp, int dfd, const char *tmp, const struct out_msg *m)
{
	_cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
						  O_NOFOLLOW, sp->file_mode);
	if (fd < 0)
		return -errno;
	if (sp->gid != (gid_t)-1 && fchown(fd, (uid_t)-1, sp->gid) < 0)
		return -errno;
	if (fchmod(fd, sp->file_mode) < 0)
		return -errno;
	int r = write_all(fd, m->body, m->size);
	if (r < 0)
		return r;
	return close(TAKE_FD(fd)) < 0 ? -errno : 0;
}

/* Writes msgs[0..n) as temporary files; returns how many were written. */
static size_t write_all_tmp(struct spool *sp, int dfd, const struct out_msg *msgs, size_t n,
			    struct deliver_result *res)
{
	char final[96], tmp[112];
	for (size_t i = 0; i < n; i++) {
		names(sp, &msgs[i], final, tmp);
		int r = write_one(sp, dfd, tmp, &msgs[i]);
		if (r < 0) {
			fail(res, -r, "write", sp->outbox);
			unlinkat(dfd, tmp, 0);
			return i;
		}
	}
	return n;
}

/* True while a message may still become visible (transport_env.send_until). */
static bool may_send(const struct spool *sp, struct deliver_result *res)
{
	if (!sp->env.send_until || clock_mono_ms() < atomic_load(sp->env.send_until))
		return true;
	res->fault = FAULT_TIMEOUT;
	snprintf(res->error, sizeof(res->error),
		 "the endpoint's lease is no longer held here: the rest is left to its holder");
	return false;
}

static size_t rename_all(struct spool *sp, int dfd, const struct out_msg *msgs, size_t n,
			 struct deliver_result *res)
{
	char final[96], tmp[112];
	for (size_t i = 0; i < n; i++) {
		if (!may_send(sp, res))
			return i;
		names(sp, &msgs[i], final, tmp);
		if (renameat(dfd, tmp, dfd, final) < 0) {
			fail(res, errno, "rename in", sp->outbox);
			return i;
		}
	}
	return n;
}

static void remove_tmp(struct spool *sp, int dfd, const struct out_msg *msgs, size_t from,
		       size_t to)
{
	char final[96], tmp[112];
	for (size_t i = from; i < to; i++) {
		names(sp, &msgs[i], final, tmp);
		unlinkat(dfd, tmp, 0);
	}
}

static void deliver_batch(struct spool *sp, const struct out_msg *msgs, size_t n,
			  struct deliver_result *res)
{
	res->delivered = 0;
	if (file_gid(sp, res) < 0)
		return;
	_cleanup_close_ int dfd = open(sp->outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail(res, errno, "open outbox", sp->outbox);
		return;
	}
	size_t written = write_all_tmp(sp, dfd, msgs, n, res);
	if (written == 0)
		return;
	if (syncfs(dfd) < 0) {
		fail(res, errno, "syncfs", sp->outbox);
		remove_tmp(sp, dfd, msgs, 0, written);
		return;
	}
	size_t renamed = rename_all(sp, dfd, msgs, written, res);
	remove_tmp(sp, dfd, msgs, renamed, written);
	if (fsync(dfd) < 0) {
		fail(res, errno, "fsync", sp->outbox);
		return;
	}
	res->delivered = renamed;
}

/* Counts our final files older than the pickup timeout. */
static size_t uncollected(struct spool *sp, int dfd, int64_t now_s, int64_t *oldest_s)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t n = 0, plen = strlen(sp->instance);
	int64_t limit = sp->pickup_timeout_ms / 1000;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (strncmp(e->d_name, sp->instance, plen) != 0 || e->d_name[plen] != '-')
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int64_t age = now_s - (int64_t)st.st_mtime;
		if (age > limit) {
			n++;
			if (age > *oldest_s)
				*oldest_s = age;
		}
	}
	closedir(d);
	return n;
}

static enum transport_fault probe_outbox(struct spool *sp, char *err, size_t errlen)
{
	struct deliver_result gres = { 0 };
	if (file_gid(sp, &gres) < 0) {
		snprintf(err, errlen, "%s", gres.error);
		return gres.fault;
	}
	_cleanup_close_ int dfd = open(sp->outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errlen, "open outbox %s: %s", sp->outbox, strerror(errno));
		return spool_fault(errno);
	}
	char probe[64];
	snprintf(probe, sizeof(probe), ".edibroker-probe-%d.tmp", (int)getpid());
	int fd = openat(dfd, probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0) {
		ssize_t w = write(fd, "probe\n", 6);
		if (w != 6)
			e = w < 0 ? errno : EIO;
		close(fd);
		unlinkat(dfd, probe, 0);
	}
	if (e) {
		snprintf(err, errlen, "write probe in %s: %s", sp->outbox, strerror(e));
		return spool_fault(e);
	}
	if (sp->pickup_timeout_ms > 0) {
		int64_t oldest = 0;
		size_t n = uncollected(sp, dfd, (int64_t)time(NULL), &oldest);
		if (n > 0) {
			snprintf(err, errlen, "%zu file(s) in %s not collected, oldest for %llds",
				 n, sp->outbox, (long long)oldest);
			return FAULT_TIMEOUT;
		}
	}
	err[0] = '\0';
	return FAULT_NONE;
}

/* ---- jobs on the outbound lane ------------------------------------------- */

struct out_job {
	struct spool *sp;
	const struct out_msg *msgs; /* NULL for a probe */
	size_t n;
	transport_done_fn done;
	void *arg;
	struct deliver_result res;
};

static void out_work(void *arg)
{
	struct out_job *j = arg;
	if (j->msgs)
		deliver_batch(j->sp, j->msgs, j->n, &j->res);
	else
		j->res.fault = probe_outbox(j->sp, j->res.error, sizeof(j->res.error));
}

static void out_done(void *arg)
{
	struct out_job *j = arg;
	struct spool *sp = j->sp;
	/* The spool is still counted busy here, so a destroy from inside
	 * done() only marks it; it is freed below once nothing is left. */
	j->done(j->arg, &j->res);
	free(j);
	spool_job_finished(sp);
}

static void submit_out(struct spool *sp, const struct out_msg *msgs, size_t n,
		       transport_done_fn done, void *arg)
{
	struct out_job *j = xcalloc(1, sizeof(*j));
	*j = (struct out_job){ .sp = sp, .msgs = msgs, .n = n, .done = done, .arg = arg };
	sp->inflight++;
	lane_submit(sp->env.lane_out, out_work, out_done, j);
}

void spool_out_deliver(struct spool *sp, const struct out_msg *msgs, size_t n,
		       transport_done_fn done, void *arg)
{
	submit_out(sp, msgs, n, done, arg);
}

void spool_out_probe(struct spool *sp, transport_done_fn done, void *arg)
{
	submit_out(sp, NULL, 0, done, arg);
}

struct prepare_job {
	struct spool *sp;
	int err;
};

static void prepare_work(void *arg)
{
	struct prepare_job *j = arg;
	j->err = mkdir_p(j->sp->outbox, 0750);
}

static void prepare_done(void *arg)
{
	struct prepare_job *j = arg;
	struct spool *sp = j->sp;
	sp->preparing = false;
	if (j->err < 0 && !sp->destroyed)
		log_err("event=outbox-unavailable endpoint=%s path=%s error=\"cannot create: %s\"",
			sp->endpoint, sp->outbox, strerror(-j->err));
	free(j);
	spool_job_finished(sp);
}

void spool_out_prepare(struct spool *sp)
{
	struct prepare_job *j = xcalloc(1, sizeof(*j));
	j->sp = sp;
	sp->preparing = true;
	sp->inflight++;
	lane_submit(sp->env.lane_out, prepare_work, prepare_done, j);
}

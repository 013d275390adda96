/*
 * spool_in.c - pick-up of complete files from an endpoint's inbox.
 *
 * Names arrive from inotify (IN_MOVED_TO, IN_CLOSE_WRITE) in the order the
 * sender completed them, and from a periodic rescan sorted by (mtime, name).
 * Each new name goes once into `known` and the `todo` FIFO. A work event
 * takes up to batch_max names per loop turn, reads each file and submits it
 * to ingest; the group commit at the end of the turn covers them all.
 *
 * Outcomes: accepted, duplicate or dead -> unlink from the inbox (the
 * commit holds it); rejected -> quarantine; temporary failure (the store
 * cannot commit) -> the file stays, pick-up pauses, logged once, and a
 * retry timer (1 s doubling to 5 s) rescans until commits work again.
 */
#include "transport/spool.h"

#include "base/clock.h"
#include "base/log.h"
#include "transport/quarantine.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 5000

struct infile {
	struct spool *sp;
	char name[];
};

static bool name_complete(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.' || n == 0)
		return false;
	return !(n >= 4 && strcmp(name + n - 4, ".tmp") == 0);
}

/* Work runs on a zero timeout, not event_active(): a self-activating event
 * would keep the loop from polling, starving delivery completions and the
 * control socket while a large inbox is read. */
static void schedule_work(struct spool *sp)
{
	static const struct timeval now = { 0, 0 };
	if (sp->todo && !sp->paused && !evtimer_pending(sp->work_ev, NULL))
		evtimer_add(sp->work_ev, &now);
}

static void todo_push(struct spool *sp, const char *name)
{
	if (!name_complete(name) || !strset_add(sp->known, name))
		return;
	size_t len = strlen(name);
	struct spool_name *n = xmalloc(sizeof(*n) + len + 1);
	memcpy(n->name, name, len + 1);
	n->next = NULL;
	if (sp->todo_tail)
		sp->todo_tail->next = n;
	else
		sp->todo = n;
	sp->todo_tail = n;
	sp->ntodo++;
}

static void todo_clear(struct spool *sp)
{
	while (sp->todo) {
		struct spool_name *n = sp->todo;
		sp->todo = n->next;
		strset_del(sp->known, n->name);
		free(n);
	}
	sp->todo_tail = NULL;
	sp->ntodo = 0;
}

static void close_inbox(struct spool *sp)
{
	if (sp->ino_ev) {
		event_free(sp->ino_ev);
		sp->ino_ev = NULL;
	}
	if (sp->ino_fd >= 0)
		close(sp->ino_fd);
	if (sp->inbox_fd >= 0)
		close(sp->inbox_fd);
	sp->ino_fd = sp->inbox_fd = sp->wd = -1;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg);

/* Opens the inbox and its inotify watch; logs a missing inbox once. */
static int open_inbox(struct spool *sp)
{
	if (sp->inbox_fd >= 0)
		return 0;
	if (sp->create_dirs)
		mkdir_p(sp->inbox, 0750);
	sp->inbox_fd = open(sp->inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sp->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sp->inbox_fd >= 0 && sp->ino_fd >= 0)
		sp->wd = inotify_add_watch(sp->ino_fd, sp->inbox,
					   IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF |
						   IN_MOVE_SELF | IN_ONLYDIR);
	if (sp->inbox_fd < 0 || sp->ino_fd < 0 || sp->wd < 0) {
		int e = errno;
		if (!sp->inbox_error_logged)
			log_err("event=inbox-unavailable endpoint=%s path=%s error=\"%s\"",
				sp->endpoint, sp->inbox, strerror(e));
		sp->inbox_error_logged = true;
		close_inbox(sp);
		return -e;
	}
	if (sp->inbox_error_logged)
		log_notice("event=inbox-available endpoint=%s path=%s", sp->endpoint, sp->inbox);
	sp->inbox_error_logged = false;
	sp->ino_ev = event_new(sp->env.base, sp->ino_fd, EV_READ | EV_PERSIST, on_inotify, sp);
	event_add(sp->ino_ev, NULL);
	return 0;
}

struct scan_entry {
	int64_t mtime_ns;
	char *name;
};

static int scan_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Lists complete, not yet known files, oldest first, into todo. */
static void rescan(struct spool *sp)
{
	if (open_inbox(sp) < 0)
		return;
	int fd = dup(sp->inbox_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	struct scan_entry *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (!name_complete(e->d_name) || strset_has(sp->known, e->d_name))
			continue;
		if (fstatat(sp->inbox_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap)
			v = xrealloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));
		v[n++] = (struct scan_entry){
			(int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
			xstrdup(e->d_name) };
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), scan_cmp);
	for (size_t i = 0; i < n; i++) {
		todo_push(sp, v[i].name);
		free(v[i].name);
	}
	free(v);
	schedule_work(sp);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool lost = false;
	for (;;) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len <= 0)
			break;
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				lost = true;
			else if (ev->len > 0)
				todo_push(sp, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (lost) {
		/* Overflow, or the inbox itself went away: start over. */
		close_inbox(sp);
		rescan(sp);
	}
	schedule_work(sp);
}

static void pause_pickup(struct spool *sp, const char *why)
{
	sp->paused = true;
	if (!sp->pause_logged) {
		log_err("event=pickup-paused endpoint=%s reason=\"%s\" state=files-kept-in-inbox",
			sp->endpoint, why);
		sp->pause_logged = true;
		sp->retry_ms = RETRY_MIN_MS;
		if (sp->env.inbound_state)
			sp->env.inbound_state(sp->env.ctx, sp->endpoint, true);
	} else if (sp->retry_ms < RETRY_MAX_MS) {
		sp->retry_ms *= 2;
		if (sp->retry_ms > RETRY_MAX_MS)
			sp->retry_ms = RETRY_MAX_MS;
	}
	todo_clear(sp);
	if (!evtimer_pending(sp->retry_ev, NULL)) {
		struct timeval tv = { (time_t)(sp->retry_ms / 1000),
				      (suseconds_t)(sp->retry_ms % 1000) * 1000 };
		evtimer_add(sp->retry_ev, &tv);
	}
}

static void pickup_works(struct spool *sp)
{
	if (!sp->pause_logged)
		return;
	sp->pause_logged = false;
	log_notice("event=pickup-resumed endpoint=%s", sp->endpoint);
	if (sp->env.inbound_state)
		sp->env.inbound_state(sp->env.ctx, sp->endpoint, false);
}

static void do_quarantine(struct spool *sp, const char *name, const char *error,
			  const char *reason)
{
	char where[PATH_MAX];
	struct quarantine_info qi = { sp->endpoint, error, reason, clock_wall_ms() };
	int r = quarantine_file(sp->inbox_fd, name, sp->quarantine, &qi, where, sizeof(where));
	if (r < 0)
		log_err("event=quarantine-failed endpoint=%s file=%s dir=%s error=\"%s\"",
			sp->endpoint, name, sp->quarantine, strerror(-r));
	else
		log_warn("event=quarantined endpoint=%s file=%s error=%s path=%s reason=\"%s\"",
			 sp->endpoint, name, error, where, reason);
}

/* Inbox files whose commit succeeded leave the inbox on a worker: unlink
 * can block (synchronous discard) and must not stall the loop. Their names
 * stay in `known` until then, so a rescan does not submit them again. */
struct unlink_job {
	struct spool *sp;
	int dirfd;
	char **names;
	int *errs;
	size_t n;
};

static void unlink_work(void *arg)
{
	struct unlink_job *j = arg;
	for (size_t i = 0; i < j->n; i++)
		j->errs[i] = unlinkat(j->dirfd, j->names[i], 0) < 0 ? errno : 0;
}

static void unlink_done(void *arg)
{
	struct unlink_job *j = arg;
	struct spool *sp = j->sp;
	for (size_t i = 0; i < j->n; i++) {
		if (j->errs[i] && j->errs[i] != ENOENT)
			log_err("event=inbox-unlink-failed endpoint=%s file=%s error=\"%s\"",
				sp->endpoint, j->names[i], strerror(j->errs[i]));
		strset_del(sp->known, j->names[i]);
		free(j->names[i]);
	}
	close(j->dirfd);
	free(j->names);
	free(j->errs);
	free(j);
	sp->inflight--;
	if (sp->destroyed && sp->inflight == 0)
		spool_release(sp);
}

static void on_unlink_flush(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	if (sp->nunlinks == 0)
		return;
	struct unlink_job *j = xcalloc(1, sizeof(*j));
	j->sp = sp;
	j->dirfd = dup(sp->inbox_fd);
	j->names = TAKE_PTR(sp->unlinks);
	j->n = sp->nunlinks;
	j->errs = xcalloc(j->n, sizeof(int));
	sp->nunlinks = sp->capunlinks = 0;
	if (j->dirfd < 0) {
		for (size_t i = 0; i < j->n; i++)
			j->errs[i] = errno;
		sp->inflight++;
		unlink_done(j);
		return;
	}
	sp->inflight++;
	workq_submit(sp->env.workq, unlink_work, unlink_done, j);
}

static void remove_input(struct spool *sp, const char *name)
{
	if (sp->nunlinks == sp->capunlinks) {
		sp->capunlinks = sp->capunlinks ? sp->capunlinks * 2 : 64;
		sp->unlinks = xrealloc(sp->unlinks, sp->capunlinks * sizeof(char *));
	}
	sp->unlinks[sp->nunlinks++] = xstrdup(name);
	strset_add(sp->known, name); /* until the unlink has happened */
	if (sp->running)
		event_active(sp->unlink_ev, 0, 0);
	else
		on_unlink_flush(-1, 0, sp); /* stopping: the loop may not turn again */
}

static void on_outcome(const struct ingest_outcome *o, void *arg)
{
	struct infile *f = arg;
	struct spool *sp = f->sp;
	sp->inflight--;
	strset_del(sp->known, f->name);
	if (!sp->destroyed && sp->inbox_fd >= 0) {
		if (o->result == INGEST_TEMPFAIL) {
			pause_pickup(sp, o->reason ? o->reason : "store unavailable");
		} else {
			pickup_works(sp);
			if (o->result == INGEST_REJECTED)
				do_quarantine(sp, f->name, codec_errcode_name(o->error->code),
					      o->error->text);
			else
				remove_input(sp, f->name);
		}
	}
	free(f);
	if (sp->destroyed && sp->inflight == 0)
		spool_release(sp);
}

/* Reads one file and submits it to ingest (a vanished file is skipped). */
static void submit_file(struct spool *sp, const char *name)
{
	uint8_t *body = NULL;
	size_t len = 0;
	int r = read_file_at(sp->inbox_fd, name, sp->max_bytes, &body, &len);
	if (r == -EFBIG) {
		char why[128];
		snprintf(why, sizeof(why), "message larger than max_message_size (%zu bytes)",
			 sp->max_bytes);
		do_quarantine(sp, name, "too-big", why);
	}
	if (r < 0) {
		if (r != -ENOENT && r != -EFBIG)
			log_warn("event=inbox-read-failed endpoint=%s file=%s error=\"%s\"",
				 sp->endpoint, name, strerror(-r));
		strset_del(sp->known, name);
		return;
	}
	size_t nlen = strlen(name);
	struct infile *f = xmalloc(sizeof(*f) + nlen + 1);
	f->sp = sp;
	memcpy(f->name, name, nlen + 1);
	sp->inflight++;
	ingest_submit(sp->env.ingest, sp->endpoint, body, len, on_outcome, f);
}

static void on_work(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	for (size_t i = 0; i < sp->batch_max && sp->todo && !sp->paused && sp->running; i++) {
		struct spool_name *n = sp->todo;
		sp->todo = n->next;
		if (!sp->todo)
			sp->todo_tail = NULL;
		sp->ntodo--;
		submit_file(sp, n->name);
		free(n);
	}
	schedule_work(sp);
}

static void on_rescan(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	if (!sp->paused)
		rescan(sp);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	sp->paused = false;
	rescan(sp);
}

int spool_in_start(struct spool *sp)
{
	if (!sp->work_ev) {
		sp->unlink_ev = event_new(sp->env.base, -1, 0, on_unlink_flush, sp);
		sp->work_ev = event_new(sp->env.base, -1, 0, on_work, sp);
		sp->rescan_ev = event_new(sp->env.base, -1, EV_PERSIST, on_rescan, sp);
		sp->retry_ev = evtimer_new(sp->env.base, on_retry, sp);
	}
	sp->running = true;
	struct timeval tv = { (time_t)(sp->rescan_ms / 1000),
			      (suseconds_t)(sp->rescan_ms % 1000) * 1000 };
	event_add(sp->rescan_ev, &tv);
	rescan(sp);
	return 0;
}

void spool_in_stop(struct spool *sp)
{
	sp->running = false;
	if (sp->rescan_ev)
		event_del(sp->rescan_ev);
	if (sp->retry_ev)
		event_del(sp->retry_ev);
	if (sp->work_ev)
		event_del(sp->work_ev);
	if (sp->ino_ev)
		event_del(sp->ino_ev);
	todo_clear(sp);
}

void spool_in_resume(struct spool *sp)
{
	if (sp->running && sp->paused) {
		event_del(sp->retry_ev);
		on_retry(-1, 0, sp);
	}
}

void spool_release(struct spool *sp)
{
	sp->destroyed = true;
	if (sp->unlink_ev && sp->nunlinks > 0)
		on_unlink_flush(-1, 0, sp); /* accepted files must still leave the inbox */
	if (sp->inflight > 0)
		return;
	spool_in_stop(sp);
	close_inbox(sp);
	if (sp->work_ev) {
		event_free(sp->unlink_ev);
		event_free(sp->work_ev);
		event_free(sp->rescan_ev);
		event_free(sp->retry_ev);
	}
	for (size_t i = 0; i < sp->nunlinks; i++)
		free(sp->unlinks[i]);
	free(sp->unlinks);
	strset_free(sp->known);
	free(sp->endpoint);
	free(sp->inbox);
	free(sp->outbox);
	free(sp->quarantine);
	free(sp->instance);
	free(sp);
}

/*
 * spool_in.c - pick-up of complete files from an endpoint's inbox.
 *
 * Everything that touches the inbox's file system - opening (and creating)
 * it, listing it, reading files, removing accepted ones and moving refused
 * ones to quarantine - runs as a job on the endpoint's inbound lane, never
 * on the event loop: an inbox on a share that hangs stalls only its own
 * endpoint, while pick-up, commits and deliveries of every other endpoint
 * and the control socket go on. The loop keeps the state: the names known
 * (queued, being read, with ingest, or waiting to leave the inbox), the
 * FIFO of names to read, and the removals and quarantines waiting for a
 * clean job. At most one job of each kind is outstanding.
 *
 * Names arrive from inotify (IN_MOVED_TO, IN_CLOSE_WRITE) in the order the
 * sender completed them, and from a periodic rescan sorted by (mtime, name).
 * After the inbox is (re)opened, events wait until its first scan is in:
 * files that were there before come first, in (mtime, name) order, so a
 * restart never lets a new file overtake the backlog.
 * A read job takes up to batch_max names and at most READ_BUDGET bytes; the
 * files it read go to ingest in that order, and the group commit at the end
 * of the loop turn covers them. The next read starts while they commit,
 * unless the bytes held for ingest reach the budget, so memory stays
 * bounded whatever the inbox holds.
 *
 * Outcomes: accepted, duplicate or dead -> the file is removed (the commit
 * holds it); rejected or too big -> quarantine, reported to the wiring
 * (env.quarantined) once the move is durable; temporary failure (the
 * store cannot commit) -> the file stays, pick-up pauses, logged once, and a
 * retry timer (1 s doubling to 5 s) rescans until commits work again.
 *
 * Hostile or careless entries: files are opened with O_NONBLOCK and
 * O_NOFOLLOW, so a FIFO or a symlink never blocks or redirects a read; a
 * FIFO, socket, device or symlink is moved aside to quarantine at once; a
 * folder is left alone with one log line. A file that cannot be
 * quarantined (a name too long, a full disk, too large to copy to another
 * file system) is remembered as refused by (inode, size, mtime): it is not
 * picked up again, so it gets one receipt and one log line, until it
 * changes.
 *
 * A file the broker may not read (the sender wrote it 0600, or for a group
 * the broker is not in) stays in the inbox: it is logged once
 * (event=inbox-unreadable), counted for `edibrokerctl status`
 * (inbound_unreadable), and tried again only at the next rescan, so a
 * chmod by the sender is enough; it leaves the count when it is read or
 * gone.
 */
#include "transport/spool.h"

#include "base/clock.h"
#include "base/fileio.h"
#include "base/lanes.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"
#include "transport/quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 5000
#define READ_BUDGET (8u * 1024u * 1024u) /* bytes read per job and held for ingest */
#define REFUSED_MAX 4096                   /* refused entries remembered per inbox */
#define BUSY_RETRY_MS 1000                 /* a full queue's files are offered again */
#define WATCH_MASK (IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

enum job_kind { JOB_OPEN, JOB_SCAN, JOB_READ, JOB_CLEAN };

/* One file of a read or clean job. */
struct in_file {
	char *name;
	uint8_t *body;        /* read: the bytes; NULL when err */
	size_t size;
	int err;              /* read / clean: 0 or -errno; -EAGAIN = not read (budget) */
	struct file_id read_id; /* read: the identity of what was read (the token) */
	bool quarantine;      /* clean: move aside instead of removing */
	char *error, *reason; /* clean: why it is quarantined */
	struct file_id id;    /* clean: what stayed when quarantine failed */
	int64_t received_at;
	char *where;          /* clean: where it went; NULL unless quarantined (a
			       * PATH_MAX buffer in each of thousands of pending
			       * removals was most of the spool's memory) */
};

/* Thousands wait in sp->clean while a clean job runs (every accepted file
 * of a large inbox passes through it): keep it to names and pointers. */
_Static_assert(sizeof(struct in_file) <= 128, "struct in_file must stay small");

struct scan_entry {
	int64_t mtime_ns;
	char *name;
	mode_t mode;             /* S_IFMT bits */
	struct file_id id;
};

struct in_job {
	struct spool *sp;
	enum job_kind kind;
	int dirfd;               /* scan, read, clean: a dup of the inbox fd */
	int fd, wd, err;         /* open: the inbox, its watch, or why not */
	struct scan_entry *v;    /* scan: complete regular files, sorted */
	size_t n;
	struct in_file *files;   /* read, clean */
	size_t nfiles;
};

/* An ingest submission: the file it came from. */
struct infile {
	struct spool *sp;
	size_t size;
	char name[];
};

static void schedule_read(struct spool *sp);
static void flush_clean(struct spool *sp);
static void clean_add(struct spool *sp, const char *name, const char *error, const char *reason);

/* ---- refused entries: remembered by name and identity ------------------- */

static struct refused *refused_find(struct spool *sp, const char *name)
{
	for (size_t i = 0; i < sp->nrefused; i++)
		if (strcmp(sp->refused[i].name, name) == 0)
			return &sp->refused[i];
	return NULL;
}

static void refused_forget(struct spool *sp, const char *name)
{
	struct refused *r = refused_find(sp, name);
	if (!r)
		return;
	free(r->name);
	*r = sp->refused[--sp->nrefused];
}

/* True when name is refused and still the same file (id matches). */
static bool refused_same(struct spool *sp, const char *name, const struct file_id *id)
{
	struct refused *r = refused_find(sp, name);
	if (!r)
		return false;
	if (memcmp(&r->id, id, sizeof(*id)) == 0)
		return true;
	refused_forget(sp, name); /* it changed: try again */
	return false;
}

/* Remembers name as refused; false when it already was (then say nothing). */
static bool refuse(struct spool *sp, const char *name, const struct file_id *id)
{
	struct refused *r = refused_find(sp, name);
	if (r) {
		bool same = memcmp(&r->id, id, sizeof(*id)) == 0;
		r->id = *id;
		return !same;
	}
	if (sp->nrefused == REFUSED_MAX)
		refused_forget(sp, sp->refused[0].name); /* bounded: the oldest goes */
	sp->refused = xrealloc(sp->refused, (sp->nrefused + 1) * sizeof(*sp->refused));
	sp->refused[sp->nrefused++] = (struct refused){ xstrdup(name), *id };
	return true;
}

static const char *type_word(mode_t m)
{
	return S_ISFIFO(m) ? "fifo" : S_ISLNK(m) ? "symlink" : S_ISSOCK(m) ? "socket"
	       : S_ISCHR(m) || S_ISBLK(m) ? "device" : S_ISDIR(m) ? "folder" : "file";
}

/* Moves an entry that is no regular file aside, or leaves a folder alone. */
static void not_regular(struct spool *sp, const char *name, mode_t m, const struct file_id *id)
{
	if (S_ISDIR(m)) {
		if (refuse(sp, name, id))
			log_warn("event=inbox-entry-skipped endpoint=%s file=%s type=folder",
				 sp->endpoint, name);
		return;
	}
	if (refused_same(sp, name, id) || !strset_add(sp->known, name))
		return;
	strset_del(sp->known, name);
	_cleanup_free_ char *why = xasprintf("not a regular file (%s): moved aside unread",
					     type_word(m));
	clean_add(sp, name, "not-regular", why);
}

static bool name_complete(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.' || n == 0)
		return false;
	return !(n >= 4 && strcmp(name + n - 4, ".tmp") == 0);
}

/* ---- files the broker may not read ---------------------------------------- */

static void report_unreadable(struct spool *sp, bool always)
{
	size_t n = strset_count(sp->unreadable);
	if ((always || n != sp->unreadable_told) && sp->env.inbound_unreadable && !sp->destroyed)
		sp->env.inbound_unreadable(sp->env.ctx, sp->endpoint, n);
	sp->unreadable_told = n;
}

static void unreadable_add(struct spool *sp, const char *name, int err)
{
	if (!strset_add(sp->unreadable, name))
		return; /* said once already: the rescan tries it again quietly */
	log_err("event=inbox-unreadable endpoint=%s file=%s error=\"%s\" state=left-in-inbox "
		"hint=\"the sender must make it readable for the broker (see edibroker.conf(5), "
		"DEPLOYMENT)\"",
		sp->endpoint, name, strerror(err));
	report_unreadable(sp, false);
}

/* name was read (or is gone: then nothing to say but the count). */
static void unreadable_forget(struct spool *sp, const char *name, bool read)
{
	if (!strset_del(sp->unreadable, name))
		return;
	if (read)
		log_notice("event=inbox-readable endpoint=%s file=%s", sp->endpoint, name);
	report_unreadable(sp, false);
}

/* After a scan: names no longer in the inbox leave the unreadable set. */
static void unreadable_prune(struct spool *sp, const struct scan_entry *v, size_t n)
{
	if (strset_count(sp->unreadable) > 0) {
		struct strset *still = strset_new();
		for (size_t i = 0; i < n; i++)
			if (strset_has(sp->unreadable, v[i].name))
				strset_add(still, v[i].name);
		strset_free(sp->unreadable);
		sp->unreadable = still;
	}
	report_unreadable(sp, !sp->unreadable_scanned);
	sp->unreadable_scanned = true;
}

/* ---- jobs on the inbound lane ------------------------------------------ */

void spool_job_finished(struct spool *sp)
{
	sp->inflight--;
	if (sp->destroyed && sp->inflight == 0)
		spool_release(sp);
}

static void submit_job(struct spool *sp, struct in_job *j, lane_fn work, lane_fn done)
{
	j->sp = sp;
	sp->inflight++;
	lane_submit(sp->env.lane_in, work, done, j);
}

static void in_job_free(struct in_job *j)
{
	if (j->dirfd >= 0)
		close(j->dirfd);
	for (size_t i = 0; i < j->n; i++)
		free(j->v[i].name);
	free(j->v);
	for (size_t i = 0; i < j->nfiles; i++) {
		free(j->files[i].name);
		free(j->files[i].body);
		free(j->files[i].error);
		free(j->files[i].reason);
		free(j->files[i].where);
	}
	free(j->files);
	free(j);
}

static struct in_job *job_new(struct spool *sp, enum job_kind kind)
{
	struct in_job *j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->fd = j->wd = -1;
	j->dirfd = kind == JOB_OPEN ? -1 : dup(sp->inbox_fd);
	return j;
}

/* ---- todo FIFO and known names (loop thread) --------------------------- */

static void schedule_work(struct spool *sp)
{
	/* Work runs on a zero timeout, not event_active(): a self-activating
	 * event would keep the loop from polling while a large inbox is read. */
	static const struct timeval now = { 0, 0 };
	if (sp->todo && !sp->paused && sp->running && !evtimer_pending(sp->work_ev, NULL))
		evtimer_add(sp->work_ev, &now);
}

static struct spool_name *name_new(const char *name)
{
	size_t len = strlen(name);
	struct spool_name *n = xmalloc(sizeof(*n) + len + 1);
	memcpy(n->name, name, len + 1);
	n->next = NULL;
	return n;
}

static void todo_push(struct spool *sp, const char *name)
{
	if (!name_complete(name) || !strset_add(sp->known, name))
		return;
	struct spool_name *n = name_new(name);
	if (sp->todo_tail)
		sp->todo_tail->next = n;
	else
		sp->todo = n;
	sp->todo_tail = n;
	sp->ntodo++;
}

/* Puts names a read job did not get to back at the head, in order. */
static void todo_unshift(struct spool *sp, struct in_file *f, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		struct spool_name *e = name_new(f[i].name);
		e->next = sp->todo;
		sp->todo = e;
		if (!sp->todo_tail)
			sp->todo_tail = e;
		sp->ntodo++;
	}
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

/* ---- opening the inbox ------------------------------------------------- */

static void open_work(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	if (sp->create_dirs)
		mkdir_p(sp->inbox, 0750);
	j->fd = open(sp->inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->fd >= 0)
		j->wd = inotify_add_watch(sp->ino_fd, sp->inbox, WATCH_MASK);
	if (j->fd < 0 || j->wd < 0) {
		j->err = errno;
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
	}
}

static void start_scan(struct spool *sp);

static void open_done(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	sp->opening = false;
	sp->open_tried = true;
	if (j->fd < 0 || sp->destroyed || !sp->running) {
		if (j->fd >= 0)
			close(j->fd);
		if (j->fd < 0 && !sp->inbox_error_logged && !sp->destroyed)
			log_err("event=inbox-unavailable endpoint=%s path=%s error=\"%s\"",
				sp->endpoint, sp->inbox, strerror(j->err));
		sp->inbox_error_logged |= j->fd < 0;
	} else {
		if (sp->inbox_error_logged)
			log_notice("event=inbox-available endpoint=%s path=%s", sp->endpoint,
				   sp->inbox);
		sp->inbox_error_logged = false;
		sp->inbox_fd = j->fd;
		sp->wd = j->wd;
		sp->listed = false; /* events wait for the first scan */
		start_scan(sp);
	}
	in_job_free(j);
	spool_job_finished(sp);
}

/* Opens the inbox and its watch on the lane, then scans it. */
static void open_inbox(struct spool *sp)
{
	if (sp->inbox_fd >= 0 || sp->opening || sp->ino_fd < 0 || !sp->running)
		return;
	sp->opening = true;
	submit_job(sp, job_new(sp, JOB_OPEN), open_work, open_done);
}

static void events_clear(struct spool *sp);

static void close_inbox(struct spool *sp)
{
	sp->listed = false;
	events_clear(sp);
	if (sp->inbox_fd >= 0) {
		if (sp->wd >= 0)
			inotify_rm_watch(sp->ino_fd, sp->wd);
		close(sp->inbox_fd);
	}
	sp->inbox_fd = sp->wd = -1;
}

/* ---- scanning ------------------------------------------------------------ */

static int scan_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void scan_work(void *arg)
{
	struct in_job *j = arg;
	DIR *d = j->dirfd >= 0 ? fdopendir(j->dirfd) : NULL;
	if (!d) {
		j->err = errno;
		return;
	}
	int dfd = j->dirfd;
	j->dirfd = -1; /* owned by d now */
	rewinddir(d);
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (!name_complete(e->d_name))
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (j->n == cap)
			j->v = xrealloc(j->v, (cap = cap ? cap * 2 : 256) * sizeof(*j->v));
		j->v[j->n++] = (struct scan_entry){
			(int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
			xstrdup(e->d_name), st.st_mode & S_IFMT, file_id_of(&st) };
	}
	closedir(d);
	if (j->n > 1)
		qsort(j->v, j->n, sizeof(*j->v), scan_cmp);
}

static void scan_done(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	sp->scanning = false;
	if (sp->running && !sp->destroyed && !sp->paused) {
		unreadable_prune(sp, j->v, j->n);
		for (size_t i = 0; i < j->n; i++) {
			const struct scan_entry *e = &j->v[i];
			if (!S_ISREG(e->mode))
				not_regular(sp, e->name, e->mode, &e->id);
			else if (!refused_same(sp, e->name, &e->id))
				todo_push(sp, e->name);
		}
		/* then what inotify saw meanwhile, in its order */
		while (sp->events) {
			struct spool_name *e = sp->events;
			sp->events = e->next;
			todo_push(sp, e->name);
			free(e);
		}
		sp->events_tail = NULL;
		sp->listed = true;
		schedule_work(sp);
	}
	if (sp->scan_again && sp->running && !sp->destroyed) {
		sp->scan_again = false;
		sp->listed = false;
		start_scan(sp);
	}
	in_job_free(j);
	spool_job_finished(sp);
}

/* Lists complete, not yet known files, oldest first, into todo. */
static void start_scan(struct spool *sp)
{
	if (!sp->running || sp->paused || sp->scanning)
		return;
	if (sp->inbox_fd < 0) {
		open_inbox(sp);
		return;
	}
	sp->scanning = true;
	submit_job(sp, job_new(sp, JOB_SCAN), scan_work, scan_done);
}

/* A name from inotify: to todo, or held until the first scan is in. */
static void event_name(struct spool *sp, const char *name)
{
	refused_forget(sp, name); /* written or moved in again: it changed */
	if (sp->listed) {
		todo_push(sp, name);
		return;
	}
	if (!name_complete(name))
		return;
	struct spool_name *e = name_new(name);
	if (sp->events_tail)
		sp->events_tail->next = e;
	else
		sp->events = e;
	sp->events_tail = e;
}

static void events_clear(struct spool *sp)
{
	while (sp->events) {
		struct spool_name *e = sp->events;
		sp->events = e->next;
		free(e);
	}
	sp->events_tail = NULL;
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
			else if (ev->len > 0 && sp->running && !sp->paused)
				event_name(sp, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (lost) {
		/* Overflow, or the inbox itself went away: start over. */
		close_inbox(sp);
		open_inbox(sp);
	}
	schedule_work(sp);
}

/* ---- reading ------------------------------------------------------------- */

static void read_work(void *arg)
{
	struct in_job *j = arg;
	size_t used = 0;
	for (size_t i = 0; i < j->nfiles; i++) {
		struct in_file *f = &j->files[i];
		if (i > 0 && used >= READ_BUDGET) {
			f->err = -EAGAIN;
			continue;
		}
		struct stat st;
		f->err = read_file_stat_at(j->dirfd, f->name, j->sp->max_bytes, &f->body, &f->size,
					   &st);
		if (f->err == 0) {
			used += f->size;
			f->read_id = file_id_of(&st);
		}
	}
}

static void quarantine_later(struct spool *sp, const char *name, const char *error,
			     const char *reason);

/* Hands one file that was read to ingest. */
static void submit_file(struct spool *sp, struct in_file *f);

static void read_done(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	sp->reading = false;
	bool live = sp->running && !sp->destroyed && !sp->paused;
	bool force_scan = false;
	size_t first_unread = j->nfiles;
	for (size_t i = 0; i < j->nfiles; i++) {
		struct in_file *f = &j->files[i];
		if (f->err == -EAGAIN && first_unread == j->nfiles)
			first_unread = i;
		if (!live || f->err == -EAGAIN) {
			strset_del(sp->known, f->name);
			continue;
		}
		if (f->err == 0 || f->err == -ENOENT)
			unreadable_forget(sp, f->name, f->err == 0);
		if (f->err == 0) {
			submit_file(sp, f);
		} else if (f->err == -EACCES || f->err == -EPERM) {
			unreadable_add(sp, f->name, -f->err);
			strset_del(sp->known, f->name);
		} else if (f->err == -EFBIG) {
			char why[128];
			snprintf(why, sizeof(why), "message larger than max_message_size (%zu bytes)",
				 sp->max_bytes);
			quarantine_later(sp, f->name, "too-big", why);
		} else if (f->err == -ELOOP || f->err == -EINVAL || f->err == -EISDIR) {
			/* became a symlink, FIFO, ... since it was listed: a
			 * scan sees what it is now and acts on it */
			strset_del(sp->known, f->name);
			force_scan = true;
		} else {
			if (f->err != -ENOENT)
				log_warn("event=inbox-read-failed endpoint=%s file=%s error=\"%s\"",
					 sp->endpoint, f->name, strerror(-f->err));
			strset_del(sp->known, f->name);
		}
	}
	if (live && first_unread < j->nfiles) {
		/* Over the byte budget: read them in the next job, in order. */
		size_t k = 0;
		for (size_t i = first_unread; i < j->nfiles; i++)
			if (j->files[i].err == -EAGAIN)
				j->files[k++] = j->files[i], j->files[i] = (struct in_file){ 0 };
		for (size_t i = 0; i < k; i++)
			strset_add(sp->known, j->files[i].name);
		todo_unshift(sp, j->files, k);
		for (size_t i = 0; i < k; i++)
			free(j->files[i].name), j->files[i].name = NULL;
	}
	in_job_free(j);
	flush_clean(sp);
	if (force_scan)
		start_scan(sp);
	schedule_read(sp);
	spool_job_finished(sp);
}

static void schedule_read(struct spool *sp)
{
	if (!sp->running || sp->paused || sp->reading || sp->destroyed || !sp->todo ||
	    sp->inbox_fd < 0 || sp->held_bytes >= READ_BUDGET)
		return;
	struct in_job *j = job_new(sp, JOB_READ);
	size_t n = sp->ntodo < sp->batch_max ? sp->ntodo : sp->batch_max;
	j->files = xcalloc(n, sizeof(*j->files));
	for (size_t i = 0; i < n; i++) {
		struct spool_name *e = sp->todo;
		sp->todo = e->next;
		if (!sp->todo)
			sp->todo_tail = NULL;
		sp->ntodo--;
		j->files[j->nfiles++].name = xstrdup(e->name);
		free(e);
	}
	sp->reading = true;
	submit_job(sp, j, read_work, read_done);
}

static void on_work(evutil_socket_t fd, short what, void *arg)
{
	schedule_read(arg);
}

/* ---- after the commit: remove or quarantine -------------------------------- */

static void clean_add(struct spool *sp, const char *name, const char *error, const char *reason)
{
	if (sp->nclean == sp->capclean) {
		sp->capclean = sp->capclean ? sp->capclean * 2 : 64;
		sp->clean = xrealloc(sp->clean, sp->capclean * sizeof(*sp->clean));
	}
	struct in_file *f = &sp->clean[sp->nclean++];
	*f = (struct in_file){ .name = xstrdup(name), .quarantine = error != NULL,
			       .error = xstrdup_or_null(error), .reason = xstrdup_or_null(reason),
			       .received_at = clock_wall_ms() };
	strset_add(sp->known, name); /* until it has left the inbox */
	if (sp->clean_ev && sp->running)
		event_active(sp->clean_ev, 0, 0);
	else
		flush_clean(sp); /* stopping: the loop may not turn again */
}

static void quarantine_later(struct spool *sp, const char *name, const char *error,
			     const char *reason)
{
	clean_add(sp, name, error, reason);
}

static void clean_work(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	for (size_t i = 0; i < j->nfiles; i++) {
		struct in_file *f = &j->files[i];
		if (j->dirfd < 0) {
			f->err = -EBADF;
		} else if (!f->quarantine) {
			f->err = unlinkat(j->dirfd, f->name, 0) < 0 ? -errno : 0;
		} else {
			struct quarantine_info qi = { sp->endpoint, f->error, f->reason,
						      f->received_at, sp->max_bytes };
			char where[PATH_MAX] = "";
			f->err = quarantine_file(j->dirfd, f->name, sp->quarantine, &qi, where,
						 sizeof(where));
			f->where = xstrdup(where);
			struct stat st;
			if (f->err < 0 && fstatat(j->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				f->id = file_id_of(&st);
			if (f->err == 0 && lstat(f->where, &st) == 0) /* a link as itself */
				f->size = (size_t)st.st_size; /* for the record: the body was not read */
		}
	}
}

/* Tells the wiring which files of a clean job went to quarantine. */
static void report_quarantined(struct spool *sp, const struct in_job *j)
{
	if (!sp->env.quarantined)
		return;
	struct store_quarantined *q = xcalloc(j->nfiles, sizeof(*q));
	size_t n = 0;
	for (size_t i = 0; i < j->nfiles; i++) {
		const struct in_file *f = &j->files[i];
		if (f->quarantine && f->err == 0)
			q[n++] = (struct store_quarantined){
				.endpoint = sp->endpoint, .file = f->where, .error_class = f->error,
				.reason = f->reason, .size = f->size, .at = f->received_at,
			};
	}
	if (n > 0)
		sp->env.quarantined(sp->env.ctx, q, n);
	free(q);
}

static void clean_done(void *arg)
{
	struct in_job *j = arg;
	struct spool *sp = j->sp;
	sp->cleaning = false;
	report_quarantined(sp, j);
	for (size_t i = 0; i < j->nfiles; i++) {
		struct in_file *f = &j->files[i];
		if (f->quarantine && f->err < 0 && f->err != -ENOENT) {
			/* It stays in the inbox: refused until it changes, so it is
			 * not picked up (and answered) again, and said once. With no
			 * .reason file beside it, this line is the operator's record
			 * of why it was refused. */
			if (refuse(sp, f->name, &f->id))
				log_err("event=quarantine-failed endpoint=%s file=%s dir=%s error=\"%s\" "
					"state=left-in-inbox refused=%s reason=\"%s\"",
					sp->endpoint, f->name, sp->quarantine, strerror(-f->err),
					f->error, f->reason);
		}
		else if (f->quarantine)
			log_warn("event=quarantined endpoint=%s file=%s error=%s path=%s "
				 "reason=\"%s\"",
				 sp->endpoint, f->name, f->error, f->where, f->reason);
		else if (f->err < 0 && f->err != -ENOENT)
			log_err("event=inbox-unlink-failed endpoint=%s file=%s error=\"%s\"",
				sp->endpoint, f->name, strerror(-f->err));
		strset_del(sp->known, f->name);
	}
	in_job_free(j);
	flush_clean(sp);
	spool_job_finished(sp);
}

/* Starts a clean job with everything waiting, unless one is running. */
static void flush_clean(struct spool *sp)
{
	if (sp->cleaning || sp->nclean == 0)
		return;
	struct in_job *j = job_new(sp, JOB_CLEAN);
	j->files = sp->clean;
	j->nfiles = sp->nclean;
	sp->clean = NULL;
	sp->nclean = sp->capclean = 0;
	sp->cleaning = true;
	submit_job(sp, j, clean_work, clean_done);
}

static void on_clean(evutil_socket_t fd, short what, void *arg)
{
	flush_clean(arg);
}

/* ---- ingest outcomes ------------------------------------------------------ */

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
	events_clear(sp);
	sp->listed = false; /* the retry's scan puts everything in order again */
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

static void on_busy_retry(evutil_socket_t fd, short what, void *arg)
{
	start_scan(arg);
}

static void busy_later(struct spool *sp)
{
	sp->listed = false;
	sp->scan_again = sp->scanning; /* a scan under way may have missed it */
	if (!sp->busy_ev)
		sp->busy_ev = evtimer_new(sp->env.base, on_busy_retry, sp);
	if (!evtimer_pending(sp->busy_ev, NULL)) {
		struct timeval tv = { BUSY_RETRY_MS / 1000, (BUSY_RETRY_MS % 1000) * 1000 };
		evtimer_add(sp->busy_ev, &tv);
	}
}

static void on_outcome(const struct ingest_outcome *o, void *arg)
{
	struct infile *f = arg;
	struct spool *sp = f->sp;
	sp->held_bytes -= f->size;
	if (o->result == INGEST_TEMPFAIL) {
		strset_del(sp->known, f->name);
		if (!sp->destroyed && sp->running)
			pause_pickup(sp, o->reason ? o->reason : "store unavailable");
	} else if (o->result == INGEST_BUSY) {
		/* Its endpoint's queue is full: the file stays and the rest of the
		 * inbox goes on. It is offered again by the next scan, and until
		 * that scan is in, new names wait behind it, so a file for that
		 * endpoint that came later cannot overtake it. */
		strset_del(sp->known, f->name);
		if (!sp->destroyed && sp->running)
			busy_later(sp);
	} else {
		pickup_works(sp);
		/* Accepted files leave the inbox even when the spool is going:
		 * the commit holds them now. */
		strset_del(sp->known, f->name);
		if (o->result == INGEST_FORBIDDEN)
			quarantine_later(sp, f->name, "sender", o->reason);
		else if (o->result == INGEST_REJECTED)
			quarantine_later(sp, f->name, codec_errcode_name(o->error->code),
					 o->error->text);
		else
			clean_add(sp, f->name, NULL, NULL);
	}
	free(f);
	schedule_read(sp);
	spool_job_finished(sp);
}

/* The ingest token of a file as read: the endpoint, and the file by
 * identity (inode, size, modification time) and by a digest of its name,
 * which may hold any bytes. Another daemon reading the same file on the
 * same share - an inbox lease that changed hands, a replay after a commit
 * whose answer was lost - names it alike; a new file under the same name
 * does not. */
static char *file_token(const struct spool *sp, const struct in_file *f)
{
	uint8_t d[SHA256_LEN];
	sha256(f->name, strlen(f->name), d);
	return xasprintf("spool:%s:%llx:%llx:%llx:%02x%02x%02x%02x%02x%02x%02x%02x", sp->endpoint,
			 (unsigned long long)f->read_id.ino, (unsigned long long)f->read_id.size,
			 (unsigned long long)f->read_id.mtime_ns, d[0], d[1], d[2], d[3], d[4], d[5],
			 d[6], d[7]);
}

static void submit_file(struct spool *sp, struct in_file *f)
{
	size_t nlen = strlen(f->name);
	struct infile *in = xmalloc(sizeof(*in) + nlen + 1);
	in->sp = sp;
	in->size = f->size;
	memcpy(in->name, f->name, nlen + 1);
	sp->held_bytes += f->size;
	sp->inflight++;
	_cleanup_free_ char *token = file_token(sp, f);
	ingest_submit_unit(sp->env.ingest, sp->endpoint, token, TAKE_PTR(f->body), f->size, 0,
			   on_outcome, in);
}

/* ---- timers and life cycle ------------------------------------------------ */

static void on_rescan(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	if (!sp->paused)
		start_scan(sp);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	sp->paused = false;
	start_scan(sp);
}

int spool_in_start(struct spool *sp)
{
	if (!sp->work_ev) {
		sp->clean_ev = event_new(sp->env.base, -1, 0, on_clean, sp);
		sp->work_ev = event_new(sp->env.base, -1, 0, on_work, sp);
		sp->rescan_ev = event_new(sp->env.base, -1, EV_PERSIST, on_rescan, sp);
		sp->retry_ev = evtimer_new(sp->env.base, on_retry, sp);
	}
	if (sp->ino_fd < 0) {
		sp->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (sp->ino_fd < 0) {
			int e = errno;
			log_err("event=inbox-unavailable endpoint=%s path=%s error=\"inotify: %s\"",
				sp->endpoint, sp->inbox, strerror(e));
			return -e;
		}
		sp->ino_ev = event_new(sp->env.base, sp->ino_fd, EV_READ | EV_PERSIST, on_inotify,
				       sp);
		event_add(sp->ino_ev, NULL);
	}
	event_add(sp->ino_ev, NULL); /* again after a stop (an inbox lease came back) */
	sp->running = true;
	/* A stop while paused took the retry timer with it: the start's own scan
	 * is the retry (else pick-up would wait for a timer that is gone). */
	sp->paused = false;
	struct timeval tv = { (time_t)(sp->rescan_ms / 1000),
			      (suseconds_t)(sp->rescan_ms % 1000) * 1000 };
	event_add(sp->rescan_ev, &tv);
	start_scan(sp);
	return 0;
}

void spool_in_stop(struct spool *sp)
{
	sp->running = false;
	if (sp->rescan_ev)
		event_del(sp->rescan_ev);
	if (sp->retry_ev)
		event_del(sp->retry_ev);
	if (sp->busy_ev)
		event_del(sp->busy_ev);
	if (sp->work_ev)
		event_del(sp->work_ev);
	if (sp->ino_ev)
		event_del(sp->ino_ev);
	todo_clear(sp);
	events_clear(sp);
	flush_clean(sp); /* accepted files must still leave the inbox */
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
	spool_in_stop(sp);
	if (sp->inflight > 0)
		return; /* the last job or outcome frees it */
	close_inbox(sp);
	if (sp->ino_ev)
		event_free(sp->ino_ev);
	if (sp->ino_fd >= 0)
		close(sp->ino_fd);
	if (sp->busy_ev)
		event_free(sp->busy_ev);
	if (sp->work_ev) {
		event_free(sp->clean_ev);
		event_free(sp->work_ev);
		event_free(sp->rescan_ev);
		event_free(sp->retry_ev);
	}
	struct in_file *c = sp->clean;
	for (size_t i = 0; i < sp->nclean; i++) {
		free(c[i].name);
		free(c[i].error);
		free(c[i].reason);
	}
	free(sp->clean);
	for (size_t i = 0; i < sp->nrefused; i++)
		free(sp->refused[i].name);
	free(sp->refused);
	strset_free(sp->known);
	strset_free(sp->unreadable);
	free(sp->file_group);
	free(sp->file_group_at);
	free(sp->endpoint);
	free(sp->inbox);
	free(sp->outbox);
	free(sp->quarantine);
	free(sp->instance);
	free(sp);
}

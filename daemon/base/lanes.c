/*
 * lanes.c - lanes of blocking work over one elastic thread pool (lanes.h).
 *
 * A lane with work is handed to a thread directly: an idle thread is popped
 * from the idle stack and given the lane, or a new thread is started. The
 * thread then runs the lane's jobs one after another until the lane is
 * empty, and goes back on the idle stack, where it waits idle_ms for a new
 * lane before it exits. Because a thread is never shared by two lanes while
 * either has work, a lane stuck in a job delays no other lane. If a thread
 * cannot be started (EAGAIN against a task limit), the lane waits in the
 * `ready` queue for the next thread that comes free.
 *
 * Finished jobs go to the done list; an eventfd wakes the loop, which runs
 * their done() callbacks in completion order (per lane: submission order).
 * One mutex guards everything shared; the loop thread is the only one that
 * submits jobs, runs completions and frees lanes. Worker threads block
 * every signal, so signals reach the loop only.
 */
#include "base/lanes.h"

#include "base/clock.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#define IDLE_MS_DEFAULT (30 * 1000)

struct job {
	struct job *next;
	struct lane *lane;
	lane_fn work, done;
	void *arg;
};

struct lane {
	struct lanes *pool;
	char *name;
	struct job *head, *tail;   /* queued, not started */
	bool running;              /* a thread owns the lane */
	bool ready;                /* waiting in pool->ready for a thread */
	struct lane *next_ready;
	int64_t running_since;     /* mono ms of the job running now; 0 = none */
	size_t pending;            /* submitted, done() not yet run */
	bool freeing;
	struct lane *prev, *next;  /* every lane of the pool */
};

/* A worker thread; `lane` is what it was handed while idle. */
struct worker {
	struct worker *next_idle;
	pthread_cond_t wake;
	struct lane *lane;
	bool stop;
};

struct lanes {
	pthread_mutex_t lock;
	pthread_cond_t changed;    /* a job finished or a thread exited */
	struct worker *idle;       /* idle threads, most recent first */
	struct lane *ready_head, *ready_tail;
	struct job *done_head, *done_tail;
	struct lane *all;
	size_t pending, threads;
	int64_t idle_ms;
	int efd;
	struct event *ev;
	bool abandoned;
};

/* Pools abandoned with threads stuck in them: kept reachable on purpose. */
static struct lanes *abandoned_pools[64];
static size_t nabandoned;

static void *worker_main(void *arg);

static void push_done(struct lanes *p, struct job *j)
{
	j->next = NULL;
	if (p->done_tail)
		p->done_tail->next = j;
	else
		p->done_head = j;
	p->done_tail = j;
	uint64_t one = 1;
	ssize_t r = write(p->efd, &one, sizeof(one));
	(void)r; /* an eventfd write fails only on counter overflow */
	pthread_cond_broadcast(&p->changed);
}

static struct lane *pop_ready(struct lanes *p)
{
	struct lane *l = p->ready_head;
	if (l) {
		p->ready_head = l->next_ready;
		if (!p->ready_head)
			p->ready_tail = NULL;
		l->ready = false;
		l->next_ready = NULL;
	}
	return l;
}

static bool start_thread(struct lanes *p, struct worker *w)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	void **args = xmalloc(2 * sizeof(void *));
	args[0] = p;
	args[1] = w;
	int r = pthread_create(&t, &attr, worker_main, args);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		free(args);
		return false;
	}
	p->threads++;
	return true;
}

/* Called with the lock held when lane l has work and no thread. */
static void hand_out(struct lanes *p, struct lane *l)
{
	l->running = true;
	struct worker *w = p->idle;
	if (w) {
		p->idle = w->next_idle;
		w->lane = l;
		pthread_cond_signal(&w->wake);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	pthread_cond_init(&w->wake, NULL);
	w->lane = l;
	if (start_thread(p, w))
		return;
	/* No thread now: the next one that comes free takes it. */
	pthread_cond_destroy(&w->wake);
	free(w);
	l->running = false;
	l->ready = true;
	if (p->ready_tail)
		p->ready_tail->next_ready = l;
	else
		p->ready_head = l;
	p->ready_tail = l;
}

/* Runs lane l's jobs until it is empty; the lock is held on entry and exit. */
static void run_lane(struct lanes *p, struct lane *l)
{
	struct job *j;
	while ((j = l->head)) {
		l->head = j->next;
		if (!l->head)
			l->tail = NULL;
		l->running_since = clock_mono_ms();
		pthread_mutex_unlock(&p->lock);
		j->work(j->arg);
		pthread_mutex_lock(&p->lock);
		l->running_since = 0;
		push_done(p, j);
	}
	l->running = false;
}

static void *worker_main(void *arg)
{
	void **args = arg;
	struct lanes *p = args[0];
	struct worker *w = args[1];
	free(args);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct lane *l = w->lane ? w->lane : pop_ready(p);
		w->lane = NULL;
		if (l) {
			l->running = true;
			run_lane(p, l);
			continue;
		}
		if (w->stop)
			break;
		/* Idle: wait to be handed a lane, or time out and exit. */
		w->next_idle = p->idle;
		p->idle = w;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(p->idle_ms / 1000);
		until.tv_nsec += (long)(p->idle_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		int r = 0;
		while (!w->lane && !w->stop && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&w->wake, &p->lock, &until);
		if (w->lane || w->stop)
			continue; /* handed a lane (hand_out unlinked us), or stopping */
		/* Timed out unclaimed: leave the idle stack and exit. */
		for (struct worker **q = &p->idle; *q; q = &(*q)->next_idle) {
			if (*q == w) {
				*q = w->next_idle;
				break;
			}
		}
		break;
	}
	p->threads--;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
	return NULL;
}

static void lane_unlink(struct lane *l)
{
	struct lanes *p = l->pool;
	if (l->prev)
		l->prev->next = l->next;
	else
		p->all = l->next;
	if (l->next)
		l->next->prev = l->prev;
	free(l->name);
	free(l);
}

/* Runs the done() callbacks of finished jobs; returns how many ran. */
static size_t run_completions(struct lanes *p)
{
	pthread_mutex_lock(&p->lock);
	struct job *list = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	size_t n = 0;
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->done)
			j->done(j->arg);
		struct lane *l = j->lane;
		free(j);
		n++;
		pthread_mutex_lock(&p->lock);
		p->pending--;
		bool gone = --l->pending == 0 && l->freeing;
		pthread_mutex_unlock(&p->lock);
		if (gone)
			lane_unlink(l);
	}
	return n;
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	run_completions(arg);
}

struct lanes *lanes_new(struct event_base *base, int64_t idle_ms)
{
	struct lanes *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	p->idle_ms = idle_ms > 0 ? idle_ms : IDLE_MS_DEFAULT;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		goto fail;
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_eventfd, p);
	if (!p->ev || event_add(p->ev, NULL) < 0)
		goto fail;
	return p;
fail:
	if (p->ev)
		event_free(p->ev);
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

struct lane *lane_new(struct lanes *p, const char *name)
{
	struct lane *l = xcalloc(1, sizeof(*l));
	l->pool = p;
	l->name = xstrdup(name);
	l->next = p->all;
	if (p->all)
		p->all->prev = l;
	p->all = l;
	return l;
}

void lane_free(struct lane *l)
{
	if (!l)
		return;
	struct lanes *p = l->pool;
	pthread_mutex_lock(&p->lock);
	bool now = l->pending == 0;
	l->freeing = true;
	pthread_mutex_unlock(&p->lock);
	if (now)
		lane_unlink(l);
}

void lane_submit(struct lane *l, lane_fn work, lane_fn done, void *arg)
{
	struct lanes *p = l->pool;
	struct job *j = xcalloc(1, sizeof(*j));
	*j = (struct job){ .lane = l, .work = work, .done = done, .arg = arg };
	pthread_mutex_lock(&p->lock);
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->pending++;
	p->pending++;
	if (!l->running && !l->ready)
		hand_out(p, l);
	pthread_mutex_unlock(&p->lock);
}

bool lane_idle(const struct lane *l)
{
	return l->pending == 0;
}

int64_t lane_running_since(const struct lane *l)
{
	struct lanes *p = l->pool;
	pthread_mutex_lock(&p->lock);
	int64_t t = l->running_since;
	pthread_mutex_unlock(&p->lock);
	return t;
}

const char *lane_name(const struct lane *l)
{
	return l->name;
}

size_t lanes_pending(const struct lanes *p)
{
	return p->pending;
}

size_t lanes_threads(const struct lanes *p)
{
	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	size_t n = p->threads;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return n;
}

int lanes_wait(struct lanes *p, int64_t timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	for (;;) {
		run_completions(p);
		pthread_mutex_lock(&p->lock);
		if (p->pending == 0) {
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0) {
			pthread_mutex_unlock(&p->lock);
			return -ETIMEDOUT;
		}
		if (!p->done_head) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			int64_t ns = (int64_t)until.tv_nsec + (left % 1000) * 1000000LL;
			until.tv_sec += (time_t)(left / 1000 + ns / 1000000000LL);
			until.tv_nsec = (long)(ns % 1000000000LL);
			pthread_cond_timedwait(&p->changed, &p->lock, &until);
		}
		pthread_mutex_unlock(&p->lock);
	}
}

size_t lanes_stuck(const struct lanes *p, int64_t mono_before,
		   void (*fn)(const char *name, int64_t since_mono, void *arg), void *arg)
{
	size_t n = 0;
	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	for (struct lane *l = p->all; l; l = l->next) {
		if (l->running_since && l->running_since < mono_before) {
			n++;
			if (fn)
				fn(l->name, l->running_since, arg);
		}
	}
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return n;
}

bool lanes_free(struct lanes *p)
{
	if (!p)
		return false;
	run_completions(p);
	pthread_mutex_lock(&p->lock);
	if (p->pending > 0) {
		/* Threads stuck in the kernel: never join them, never free what
		 * they may still touch. The eventfd stays open so that a late
		 * completion writes to it and not to a reused descriptor. */
		p->abandoned = true;
		pthread_mutex_unlock(&p->lock);
		event_free(p->ev);
		p->ev = NULL;
		if (nabandoned < sizeof(abandoned_pools) / sizeof(abandoned_pools[0]))
			abandoned_pools[nabandoned++] = p;
		return true;
	}
	for (struct worker *w = p->idle; w; w = w->next_idle) {
		w->stop = true;
		pthread_cond_signal(&w->wake);
	}
	p->idle = NULL;
	while (p->threads > 0)
		pthread_cond_wait(&p->changed, &p->lock);
	pthread_mutex_unlock(&p->lock);
	while (p->all) {
		struct lane *l = p->all;
		p->all = l->next;
		free(l->name);
		free(l);
	}
	event_free(p->ev);
	close(p->efd);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return false;
}

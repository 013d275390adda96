/*
 * workq.c - worker threads with completions delivered to the event loop.
 *
 * Jobs flow: submit (loop) -> todo list -> a worker runs work() -> done list
 * -> eventfd wakes the loop -> done() on the loop. Both lists are FIFO and
 * guarded by one mutex. Workers block every signal so that signals reach
 * the loop thread only.
 */
#include "base/workq.h"

#include "codecs/base/mem.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>

struct job {
	struct job *next;
	workq_fn work, done;
	void *arg;
};

struct jobq {
	struct job *head, *tail;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* signals workers: new todo or stopping */
	pthread_cond_t idle;      /* signals drain: a job finished */
	struct jobq todo, done;
	size_t pending;           /* submitted, done() not yet run */
	int stopping;
	int efd;
	struct event *ev;
	pthread_t *threads;
	unsigned nthreads;
};

static void jobq_push(struct jobq *q, struct job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *jobq_pop(struct jobq *q)
{
	struct job *j = q->head;
	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
	}
	return j;
}

static void *worker_main(void *arg)
{
	struct workq *wq = arg;
	pthread_mutex_lock(&wq->lock);
	for (;;) {
		struct job *j = jobq_pop(&wq->todo);
		if (!j) {
			if (wq->stopping)
				break;
			pthread_cond_wait(&wq->cond, &wq->lock);
			continue;
		}
		pthread_mutex_unlock(&wq->lock);
		j->work(j->arg);
		pthread_mutex_lock(&wq->lock);
		jobq_push(&wq->done, j);
		uint64_t one = 1;
		ssize_t r = write(wq->efd, &one, sizeof(one));
		(void)r; /* eventfd write only fails on counter overflow */
		pthread_cond_broadcast(&wq->idle);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

/* Runs the done() callbacks of finished jobs; returns how many ran. */
static size_t run_completions(struct workq *wq)
{
	pthread_mutex_lock(&wq->lock);
	struct job *list = wq->done.head;
	wq->done.head = wq->done.tail = NULL;
	pthread_mutex_unlock(&wq->lock);
	size_t n = 0;
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
		n++;
	}
	pthread_mutex_lock(&wq->lock);
	wq->pending -= n;
	pthread_mutex_unlock(&wq->lock);
	return n;
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	run_completions(arg);
}

struct workq *workq_new(struct event_base *base, unsigned nthreads)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	pthread_cond_init(&wq->idle, NULL);
	wq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wq->efd < 0)
		goto fail;
	wq->ev = event_new(base, wq->efd, EV_READ | EV_PERSIST, on_eventfd, wq);
	if (!wq->ev || event_add(wq->ev, NULL) < 0)
		goto fail;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	wq->threads = xcalloc(nthreads, sizeof(pthread_t));
	for (; wq->nthreads < nthreads; wq->nthreads++)
		if (pthread_create(&wq->threads[wq->nthreads], NULL, worker_main, wq) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (wq->nthreads == nthreads)
		return wq;
fail:
	workq_free(wq);
	return NULL;
}

void workq_submit(struct workq *wq, workq_fn work, workq_fn done, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&wq->lock);
	jobq_push(&wq->todo, j);
	wq->pending++;
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}

size_t workq_pending(const struct workq *wq)
{
	return wq->pending;
}

void workq_drain(struct workq *wq)
{
	for (;;) {
		run_completions(wq);
		pthread_mutex_lock(&wq->lock);
		if (wq->pending == 0) {
			pthread_mutex_unlock(&wq->lock);
			return;
		}
		if (!wq->done.head)
			pthread_cond_wait(&wq->idle, &wq->lock);
		pthread_mutex_unlock(&wq->lock);
	}
}

void workq_free(struct workq *wq)
{
	if (!wq)
		return;
	if (wq->nthreads)
		workq_drain(wq);
	pthread_mutex_lock(&wq->lock);
	wq->stopping = 1;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (unsigned i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	if (wq->ev)
		event_free(wq->ev);
	if (wq->efd >= 0)
		close(wq->efd);
	free(wq->threads);
	pthread_cond_destroy(&wq->idle);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq);
}

/*
 * test_workq.c - the worker pool (workq.c) with a real event_base.
 *
 * work() must run on a worker thread and done() on the thread running the
 * loop; with one worker, completions arrive in submission order; pending
 * counts jobs until their done() ran; workq_drain and workq_free wait for
 * every job and run its done(). Waits are bounded by a deadline.
 */
#include "base/clock.h"
#include "codecs/base/mem.h"
#include "base/workq.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct rec {
	int index;
	pthread_t work_thread, done_thread;
	atomic_int worked;
	int done;
	int order;          /* position in completion order */
	unsigned sleep_ms;
	int *counter;       /* completion sequence counter */
	/* blocking work */
	pthread_mutex_t *gate_lock;
	pthread_cond_t *gate_cond;
	bool *gate_open;
	atomic_int *running;     /* jobs inside work() now */
	atomic_int *max_running;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void rec_work(void *arg)
{
	struct rec *r = arg;
	r->work_thread = pthread_self();
	if (r->running) {
		int now = atomic_fetch_add(r->running, 1) + 1;
		int m = atomic_load(r->max_running);
		while (now > m && !atomic_compare_exchange_weak(r->max_running, &m, now))
			;
	}
	if (r->gate_lock) {
		pthread_mutex_lock(r->gate_lock);
		while (!*r->gate_open)
			pthread_cond_wait(r->gate_cond, r->gate_lock);
		pthread_mutex_unlock(r->gate_lock);
	}
	if (r->sleep_ms)
		sleep_ms(r->sleep_ms);
	if (r->running)
		atomic_fetch_sub(r->running, 1);
	atomic_store(&r->worked, 1);
}

static void rec_done(void *arg)
{
	struct rec *r = arg;
	cr_assert(atomic_load(&r->worked), "done() ran before work() finished (job %d)",
		  r->index);
	r->done_thread = pthread_self();
	r->done++;
	r->order = (*r->counter)++;
}

static struct rec *recs_new(size_t n, int *counter)
{
	struct rec *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].index = (int)i;
		v[i].counter = counter;
	}
	return v;
}

/* Runs the loop until *counter reaches want or 5 s pass; true on success. */
static bool loop_until(struct event_base *base, const int *counter, int want)
{
	int64_t deadline = clock_mono_ms() + 5000;
	while (*counter < want && clock_mono_ms() < deadline) {
		struct timeval tv = { 0, 20000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return *counter >= want;
}

Test(workq, work_on_worker_done_on_loop_thread, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 3);
	cr_assert_not_null(wq);
	int counter = 0;
	enum { N = 30 };
	struct rec *v = recs_new(N, &counter);
	for (size_t i = 0; i < N; i++)
		workq_submit(wq, rec_work, rec_done, &v[i]);
	/* done() never runs inside submit */
	cr_assert_eq(counter, 0);
	cr_assert(loop_until(base, &counter, N), "only %d of %d completed", counter, N);
	pthread_t me = pthread_self();
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(v[i].done, 1, "job %zu done %d times", i, v[i].done);
		cr_assert(!pthread_equal(v[i].work_thread, me), "job %zu worked on the loop thread",
			  i);
		cr_assert(pthread_equal(v[i].done_thread, me), "job %zu done() off the loop thread",
			  i);
	}
	cr_assert_eq(workq_pending(wq), 0);
	workq_free(wq);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(v[i].done, 1, "job %zu completed again by free", i);
	free(v);
	event_base_free(base);
}

/* done() runs on whichever thread runs the loop, not on the thread that
 * created the pool. */
struct loop_thread {
	struct event_base *base;
	int *counter;
	int want;
	bool ok;
	pthread_t self;
};

static void *loop_main(void *arg)
{
	struct loop_thread *lt = arg;
	lt->self = pthread_self();
	lt->ok = loop_until(lt->base, lt->counter, lt->want);
	return NULL;
}

Test(workq, done_runs_on_the_thread_running_the_loop, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 2);
	int counter = 0;
	enum { N = 10 };
	struct rec *v = recs_new(N, &counter);
	for (size_t i = 0; i < N; i++)
		workq_submit(wq, rec_work, rec_done, &v[i]);
	struct loop_thread lt = { base, &counter, N, false, 0 };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, loop_main, &lt), 0);
	pthread_join(th, NULL);
	cr_assert(lt.ok);
	for (size_t i = 0; i < N; i++) {
		cr_assert(pthread_equal(v[i].done_thread, lt.self));
		cr_assert(!pthread_equal(v[i].work_thread, lt.self));
		cr_assert(!pthread_equal(v[i].work_thread, pthread_self()));
	}
	workq_free(wq);
	free(v);
	event_base_free(base);
}

Test(workq, single_worker_completes_in_fifo_order, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 1);
	int counter = 0;
	enum { N = 200 };
	struct rec *v = recs_new(N, &counter);
	for (size_t i = 0; i < N; i++) {
		v[i].sleep_ms = (i % 7 == 0) ? 2 : 0; /* uneven work */
		workq_submit(wq, rec_work, rec_done, &v[i]);
	}
	cr_assert(loop_until(base, &counter, N));
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(v[i].order, (int)i, "job %zu completed at position %d", i, v[i].order);
	workq_free(wq);
	free(v);
	event_base_free(base);
}

/* Several workers really run jobs concurrently. */
Test(workq, workers_run_in_parallel, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 3);
	int counter = 0;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	bool open = false;
	atomic_int running = 0, max_running = 0;
	struct rec *v = recs_new(3, &counter);
	for (size_t i = 0; i < 3; i++) {
		v[i].gate_lock = &lock;
		v[i].gate_cond = &cond;
		v[i].gate_open = &open;
		v[i].running = &running;
		v[i].max_running = &max_running;
		workq_submit(wq, rec_work, rec_done, &v[i]);
	}
	int64_t deadline = clock_mono_ms() + 5000;
	while (atomic_load(&running) < 3 && clock_mono_ms() < deadline)
		sleep_ms(1);
	cr_assert_eq(atomic_load(&max_running), 3, "jobs did not run in parallel");
	cr_assert_eq(workq_pending(wq), 3);
	pthread_mutex_lock(&lock);
	open = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	cr_assert(loop_until(base, &counter, 3));
	workq_free(wq);
	free(v);
	event_base_free(base);
}

Test(workq, pending_counts_until_done_ran, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 2);
	int counter = 0;
	enum { N = 8 };
	struct rec *v = recs_new(N, &counter);
	cr_assert_eq(workq_pending(wq), 0);
	for (size_t i = 0; i < N; i++) {
		workq_submit(wq, rec_work, rec_done, &v[i]);
		cr_assert_eq(workq_pending(wq), i + 1);
	}
	/* all work finishes, but without the loop no done() runs: still pending */
	int64_t deadline = clock_mono_ms() + 5000;
	for (size_t i = 0; i < N; i++)
		while (!atomic_load(&v[i].worked) && clock_mono_ms() < deadline)
			sleep_ms(1);
	sleep_ms(20);
	cr_assert_eq(counter, 0);
	cr_assert_eq(workq_pending(wq), N);
	cr_assert(loop_until(base, &counter, N));
	cr_assert_eq(workq_pending(wq), 0);
	workq_free(wq);
	free(v);
	event_base_free(base);
}

Test(workq, drain_waits_for_all_and_runs_done, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 2);
	int counter = 0;
	enum { N = 20 };
	struct rec *v = recs_new(N, &counter);
	for (size_t i = 0; i < N; i++) {
		v[i].sleep_ms = 10;
		workq_submit(wq, rec_work, rec_done, &v[i]);
	}
	int64_t t0 = clock_mono_ms();
	workq_drain(wq); /* without running the loop */
	int64_t took = clock_mono_ms() - t0;
	cr_assert_eq(counter, N);
	cr_assert_geq(took, 80, "drain returned after %lld ms, before 20 x 10 ms on 2 workers",
		      (long long)took);
	pthread_t me = pthread_self();
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(v[i].done, 1);
		cr_assert(pthread_equal(v[i].done_thread, me));
	}
	cr_assert_eq(workq_pending(wq), 0);
	/* the loop afterwards finds nothing left to complete */
	for (int i = 0; i < 3; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(v[i].done, 1);
	/* drain with nothing pending returns at once */
	workq_drain(wq);
	workq_free(wq);
	free(v);
	event_base_free(base);
}

/* A done() that submits more work: drain waits for that too. */
struct chain {
	struct workq *wq;
	int left;
	int done_count;
};

static void chain_work(void *arg)
{
	sleep_ms(1);
}

static void chain_done(void *arg)
{
	struct chain *c = arg;
	c->done_count++;
	if (--c->left > 0)
		workq_submit(c->wq, chain_work, chain_done, c);
}

Test(workq, drain_covers_jobs_submitted_by_done, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 2);
	struct chain c = { wq, 5, 0 };
	workq_submit(wq, chain_work, chain_done, &c);
	workq_drain(wq);
	cr_assert_eq(c.done_count, 5);
	cr_assert_eq(workq_pending(wq), 0);
	workq_free(wq);
	event_base_free(base);
}

Test(workq, free_with_pending_jobs_completes_them, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 2);
	int counter = 0;
	enum { N = 12 };
	struct rec *v = recs_new(N, &counter);
	for (size_t i = 0; i < N; i++) {
		v[i].sleep_ms = 5;
		workq_submit(wq, rec_work, rec_done, &v[i]);
	}
	workq_free(wq);
	cr_assert_eq(counter, N);
	for (size_t i = 0; i < N; i++) {
		cr_assert(atomic_load(&v[i].worked), "job %zu never ran", i);
		cr_assert_eq(v[i].done, 1, "job %zu done %d times", i, v[i].done);
	}
	/* the pool's event is gone: the base has nothing left to wait for */
	cr_assert_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	free(v);
	event_base_free(base);
}

Test(workq, free_accepts_null_and_idle_pool)
{
	workq_free(NULL);
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 4);
	cr_assert_not_null(wq);
	workq_free(wq);
	event_base_free(base);
}

/* A job without done() still counts as pending until its completion. */
Test(workq, job_without_done, .timeout = 10)
{
	struct event_base *base = event_base_new();
	struct workq *wq = workq_new(base, 1);
	int counter = 0;
	struct rec *v = recs_new(1, &counter);
	workq_submit(wq, rec_work, NULL, &v[0]);
	workq_drain(wq);
	cr_assert(atomic_load(&v[0].worked));
	cr_assert_eq(workq_pending(wq), 0);
	workq_free(wq);
	free(v);
	event_base_free(base);
}

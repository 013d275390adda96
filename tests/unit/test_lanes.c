/*
 * test_lanes.c - lanes of blocking work (lanes.c) with a real event_base.
 *
 * Jobs of one lane run one at a time in submission order, off the loop
 * thread, and their done() runs on the loop in the same order; a lane whose
 * job is stuck (blocked on a gate the test holds, as a write to a frozen
 * share blocks) delays no other lane; the pool never has more threads than
 * lanes with work plus idle ones, and idle threads exit; lanes_wait and
 * lanes_free do not wait for a stuck job beyond their deadline. Every wait
 * is bounded.
 */
#include "base/clock.h"
#include "base/lanes.h"
#include "codecs/base/mem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* A gate a job can wait on until the test opens it. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	atomic_int waiting;
};

static void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = false;
	atomic_store(&g->waiting, 0);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

struct job {
	int index;
	struct gate *gate;          /* wait here when set */
	pthread_t work_thread;
	atomic_int worked;
	int done_order;             /* position in completion order, -1 before */
	int *seq;                   /* completion counter */
	int *work_seq;              /* work() order counter (atomic via lock below) */
	int work_order;
	pthread_mutex_t *order_lock;
	pthread_t loop_thread;
	bool done_on_loop;
};

static void job_work(void *arg)
{
	struct job *j = arg;
	j->work_thread = pthread_self();
	if (j->order_lock) {
		pthread_mutex_lock(j->order_lock);
		j->work_order = (*j->work_seq)++;
		pthread_mutex_unlock(j->order_lock);
	}
	if (j->gate) {
		atomic_fetch_add(&j->gate->waiting, 1);
		pthread_mutex_lock(&j->gate->lock);
		while (!j->gate->open)
			pthread_cond_wait(&j->gate->cond, &j->gate->lock);
		pthread_mutex_unlock(&j->gate->lock);
	}
	atomic_store(&j->worked, 1);
}

static void job_done(void *arg)
{
	struct job *j = arg;
	cr_assert(atomic_load(&j->worked), "done() before work() finished (job %d)", j->index);
	j->done_on_loop = pthread_equal(pthread_self(), j->loop_thread);
	j->done_order = (*j->seq)++;
}

static struct event_base *base;

static void setup(void)
{
	base = event_base_new();
	cr_assert_not_null(base);
}

static void teardown(void)
{
	event_base_free(base);
}

/* Turns the loop until cond() or timeout_ms; returns cond(). */
static bool loop_until(bool (*cond)(void *), void *arg, int64_t timeout_ms)
{
	int64_t end = clock_mono_ms() + timeout_ms;
	while (!cond(arg) && clock_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	return cond(arg);
}

struct count_ctx {
	struct job *jobs;
	size_t n;
};

static bool all_done(void *arg)
{
	struct count_ctx *c = arg;
	for (size_t i = 0; i < c->n; i++)
		if (c->jobs[i].done_order < 0)
			return false;
	return true;
}

static void jobs_init(struct job *v, size_t n, int *seq, int *wseq, pthread_mutex_t *ol)
{
	for (size_t i = 0; i < n; i++) {
		v[i] = (struct job){ .index = (int)i, .done_order = -1, .seq = seq, .work_seq = wseq,
				     .order_lock = ol, .loop_thread = pthread_self() };
	}
}

TestSuite(lanes, .init = setup, .fini = teardown, .timeout = 20);

Test(lanes, one_lane_runs_in_order_off_the_loop)
{
	struct lanes *p = lanes_new(base, 0);
	struct lane *l = lane_new(p, "one");
	int seq = 0, wseq = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;
	struct job v[200];
	jobs_init(v, 200, &seq, &wseq, &ol);
	for (int i = 0; i < 200; i++)
		lane_submit(l, job_work, job_done, &v[i]);
	cr_assert_eq(lanes_pending(p), 200);
	struct count_ctx c = { v, 200 };
	cr_assert(loop_until(all_done, &c, 5000), "jobs did not complete");
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(v[i].work_order, i, "work %d ran as %d", i, v[i].work_order);
		cr_assert_eq(v[i].done_order, i, "done %d ran as %d", i, v[i].done_order);
		cr_assert(v[i].done_on_loop, "done %d not on the loop thread", i);
		cr_assert(!pthread_equal(v[i].work_thread, pthread_self()), "work on the loop");
	}
	cr_assert_eq(lanes_pending(p), 0);
	cr_assert(lane_idle(l));
	lane_free(l);
	lanes_free(p);
}

Test(lanes, a_stuck_lane_delays_no_other_lane)
{
	struct lanes *p = lanes_new(base, 0);
	struct lane *stuck = lane_new(p, "spool-out:frozen");
	struct lane *other = lane_new(p, "spool-out:fine");
	int seq = 0, wseq = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;
	struct gate g;
	gate_init(&g);
	struct job blocked[2], v[100];
	jobs_init(blocked, 2, &seq, &wseq, &ol);
	jobs_init(v, 100, &seq, &wseq, &ol);
	blocked[0].gate = &g;
	lane_submit(stuck, job_work, job_done, &blocked[0]);
	lane_submit(stuck, job_work, job_done, &blocked[1]); /* queued behind it */
	for (int i = 0; i < 100; i++)
		lane_submit(other, job_work, job_done, &v[i]);
	struct count_ctx c = { v, 100 };
	cr_assert(loop_until(all_done, &c, 5000), "the other lane waited for the stuck one");
	cr_assert_eq(blocked[0].done_order, -1);
	cr_assert_eq(blocked[1].done_order, -1, "a job ran ahead of its lane's stuck job");
	cr_assert(!lane_idle(stuck));
	int64_t end = clock_mono_ms() + 2000;
	while (atomic_load(&g.waiting) == 0 && clock_mono_ms() < end)
		usleep(1000);
	cr_assert(lane_running_since(stuck) > 0);
	cr_assert_eq(lane_running_since(other), 0);
	cr_assert_leq(lanes_threads(p), 2, "%zu threads for two lanes", lanes_threads(p));
	/* the stuck lane is reported by name */
	cr_assert_eq(lanes_stuck(p, clock_mono_ms() + 1, NULL, NULL), 1);
	cr_assert_eq(lanes_wait(p, 100), -ETIMEDOUT);
	gate_open(&g);
	cr_assert_eq(lanes_wait(p, 5000), 0);
	cr_assert_lt(blocked[0].done_order, blocked[1].done_order);
	lane_free(stuck);
	lane_free(other);
	lanes_free(p);
}

Test(lanes, threads_stay_bounded_and_idle_ones_exit)
{
	struct lanes *p = lanes_new(base, 100);
	enum { NL = 8, PER = 50 };
	struct lane *ls[NL];
	int seq = 0, wseq = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;
	static struct job v[NL * PER];
	jobs_init(v, NL * PER, &seq, &wseq, &ol);
	for (int i = 0; i < NL; i++) {
		char name[16];
		snprintf(name, sizeof(name), "l%d", i);
		ls[i] = lane_new(p, name);
	}
	for (int k = 0; k < PER; k++)
		for (int i = 0; i < NL; i++)
			lane_submit(ls[i], job_work, job_done, &v[k * NL + i]);
	cr_assert_leq(lanes_threads(p), NL, "%zu threads for %d lanes", lanes_threads(p), NL);
	cr_assert_eq(lanes_wait(p, 5000), 0);
	/* per lane, submission order */
	for (int i = 0; i < NL; i++)
		for (int k = 1; k < PER; k++)
			cr_assert_lt(v[(k - 1) * NL + i].done_order, v[k * NL + i].done_order);
	int64_t end = clock_mono_ms() + 3000;
	while (lanes_threads(p) > 0 && clock_mono_ms() < end)
		usleep(10000);
	cr_assert_eq(lanes_threads(p), 0, "idle threads did not exit");
	/* and a new job after that starts a thread again */
	struct job late;
	jobs_init(&late, 1, &seq, &wseq, &ol);
	lane_submit(ls[0], job_work, job_done, &late);
	cr_assert_eq(lanes_wait(p, 5000), 0);
	cr_assert_geq(late.done_order, 0);
	for (int i = 0; i < NL; i++)
		lane_free(ls[i]);
	lanes_free(p);
}

Test(lanes, lane_free_waits_for_its_jobs)
{
	struct lanes *p = lanes_new(base, 0);
	struct lane *l = lane_new(p, "x");
	int seq = 0, wseq = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;
	struct gate g;
	gate_init(&g);
	struct job v[3];
	jobs_init(v, 3, &seq, &wseq, &ol);
	v[0].gate = &g;
	for (int i = 0; i < 3; i++)
		lane_submit(l, job_work, job_done, &v[i]);
	lane_free(l); /* deferred: jobs still run and report */
	gate_open(&g);
	cr_assert_eq(lanes_wait(p, 5000), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(v[i].done_order, i);
	lanes_free(p);
}

Test(lanes, free_abandons_a_stuck_pool_without_waiting)
{
	struct lanes *p = lanes_new(base, 0);
	struct lane *l = lane_new(p, "frozen");
	int seq = 0, wseq = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;
	static struct gate g;
	gate_init(&g);
	static struct job j;
	jobs_init(&j, 1, &seq, &wseq, &ol);
	j.gate = &g;
	lane_submit(l, job_work, job_done, &j);
	int64_t end = clock_mono_ms() + 2000;
	while (atomic_load(&g.waiting) == 0 && clock_mono_ms() < end)
		usleep(1000);
	cr_assert_eq(atomic_load(&g.waiting), 1, "the job did not start");
	int64_t t0 = clock_mono_ms();
	lanes_free(p);
	cr_assert_lt(clock_mono_ms() - t0, 500, "lanes_free waited for a stuck job");
	gate_open(&g); /* the thread finishes into the abandoned pool */
	usleep(50000);
	cr_assert_eq(j.done_order, -1, "a done() ran after the pool was abandoned");
}

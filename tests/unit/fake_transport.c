/*
 * fake_transport.c - the transport double of fake_transport.h. deliver()
 * and probe() queue a job on the fake's lane and return; the job's work
 * takes the fake's lock, and a delivery may wait on its condition variable
 * (while block is set) until release() or cancel() wakes it; the job's
 * completion calls the scheduler back on the loop.
 */
#include "tests/unit/fake_transport.h"

#include "base/clock.h"
#include "codecs/base/mem.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <time.h>

uint64_t fake_transport_hash(const uint8_t *body, size_t size)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < size; i++)
		h = (h ^ body[i]) * 1099511628211ull;
	return h;
}

struct fake_transport *fake_transport_new(const char *label, struct lane *lane)
{
	struct fake_transport *f = xcalloc(1, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->label = label;
	f->lane = lane;
	f->fail_id = -1;
	f->reject_id = -1;
	return f;
}

void fake_transport_free(struct fake_transport *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
}

struct transport *fake_transport_handle(struct fake_transport *f)
{
	return (struct transport *)f;
}

static struct fake_transport *fake_of(struct transport *t)
{
	return (struct fake_transport *)t;
}

/* Called with the lock held: notes the batch, then waits while blocked. */
static void record_call(struct fake_transport *f, const struct out_msg *msgs, size_t n)
{
	size_t c = f->calls++;
	if (c < FAKE_TRANSPORT_MAX_CALLS) {
		f->sizes[c] = n;
		f->first_id[c] = n ? msgs[0].id : -1;
		f->call_ms[c] = clock_mono_ms();
	}
	if (f->block) {
		f->entered = true;
		pthread_cond_broadcast(&f->cond);
		while (f->block && !f->cancelled)
			pthread_cond_wait(&f->cond, &f->lock);
	}
}

/* Confirms the batch in order up to the programmed failure, if any. */
static void deliver_work(struct fake_transport *f, const struct out_msg *msgs, size_t n,
			 struct deliver_result *res)
{
	pthread_mutex_lock(&f->lock);
	f->in_deliver++;
	record_call(f, msgs, n);
	res->delivered = 0;
	res->fault = FAULT_NONE;
	res->error[0] = '\0';
	if (f->cancelled) {
		f->cancelled = false;
		res->fault = FAULT_TIMEOUT;
		snprintf(res->error, sizeof(res->error), "%s: cancelled", f->label);
		n = 0;
	}
	if (f->stop_after > 0 && n > f->stop_after)
		n = f->stop_after;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].id == f->reject_id) {
			res->rejected = true;
			res->fault = FAULT_REJECTED;
			snprintf(res->error, sizeof(res->error), "%s: HTTP 422 for message %lld",
				 f->label, (long long)msgs[i].id);
			break;
		}
		if (msgs[i].id == f->fail_id && f->fails_left > 0) {
			f->fails_left--;
			res->fault = f->fault;
			snprintf(res->error, sizeof(res->error), "%s: failed at message %lld",
				 f->label, (long long)msgs[i].id);
			break;
		}
		if (f->nconfirmed < FAKE_TRANSPORT_MAX_IDS) {
			f->confirmed[f->nconfirmed] = msgs[i].id;
			f->hash[f->nconfirmed] = fake_transport_hash(msgs[i].body, msgs[i].size);
		}
		f->nconfirmed++;
		res->delivered++;
	}
	f->in_deliver--;
	pthread_mutex_unlock(&f->lock);
}

static enum transport_fault probe_work(struct fake_transport *f, char *err, size_t errlen)
{
	pthread_mutex_lock(&f->lock);
	f->probes++;
	if (f->block_probe) {
		f->entered = true;
		pthread_cond_broadcast(&f->cond);
		while (f->block_probe)
			pthread_cond_wait(&f->cond, &f->lock);
	}
	enum transport_fault r = f->probe_fault;
	if (r != FAULT_NONE)
		snprintf(err, errlen, "%s: probe says %s", f->label, fault_name(r));
	else
		err[0] = '\0';
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* One deliver() or probe(): its work on the lane, its completion on the loop. */
struct fake_job {
	struct fake_transport *f;
	const struct out_msg *msgs; /* NULL for a probe */
	size_t n;
	transport_done_fn done;
	void *arg;
	struct deliver_result res;
};

static void job_work(void *arg)
{
	struct fake_job *j = arg;
	if (j->msgs)
		deliver_work(j->f, j->msgs, j->n, &j->res);
	else
		j->res.fault = probe_work(j->f, j->res.error, sizeof(j->res.error));
}

static void job_done(void *arg)
{
	struct fake_job *j = arg;
	j->done(j->arg, &j->res);
	free(j);
}

static void submit(struct transport *t, const struct out_msg *msgs, size_t n,
		   transport_done_fn done, void *arg)
{
	struct fake_job *j = xcalloc(1, sizeof(*j));
	*j = (struct fake_job){ fake_of(t), msgs, n, done, arg, { 0 } };
	lane_submit(fake_of(t)->lane, job_work, job_done, j);
}

static void fake_deliver(struct transport *t, const struct out_msg *msgs, size_t n,
			 transport_done_fn done, void *arg)
{
	submit(t, msgs, n, done, arg);
}

static void fake_probe(struct transport *t, transport_done_fn done, void *arg)
{
	submit(t, NULL, 0, done, arg);
}

/* Gives up a blocked delivery: it returns with FAULT_TIMEOUT. */
static void fake_cancel(struct transport *t)
{
	struct fake_transport *f = fake_of(t);
	pthread_mutex_lock(&f->lock);
	f->cancelled = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void fake_stop(struct transport *t)
{
	struct fake_transport *f = fake_of(t);
	pthread_mutex_lock(&f->lock);
	f->stops++;
	pthread_mutex_unlock(&f->lock);
}

/* The test owns the fake: destroy only records. */
static void fake_destroy(struct transport *t)
{
	struct fake_transport *f = fake_of(t);
	pthread_mutex_lock(&f->lock);
	f->destroys++;
	if (f->in_deliver)
		f->destroyed_in_use = true;
	pthread_mutex_unlock(&f->lock);
}

const struct transport_ops fake_transport_ops = {
	.name = "fake",
	.destroy = fake_destroy,
	.stop = fake_stop,
	.deliver = fake_deliver,
	.probe = fake_probe,
};

const struct transport_ops fake_transport_cancellable_ops = {
	.name = "fake",
	.destroy = fake_destroy,
	.stop = fake_stop,
	.deliver = fake_deliver,
	.probe = fake_probe,
	.cancel = fake_cancel,
};

size_t fake_transport_calls(struct fake_transport *f)
{
	pthread_mutex_lock(&f->lock);
	size_t n = f->calls;
	pthread_mutex_unlock(&f->lock);
	return n;
}

size_t fake_transport_confirmed(struct fake_transport *f)
{
	pthread_mutex_lock(&f->lock);
	size_t n = f->nconfirmed;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_transport_wait_entered(struct fake_transport *f)
{
	int64_t deadline = clock_mono_ms() + 5000;
	pthread_mutex_lock(&f->lock);
	while (!f->entered && clock_mono_ms() < deadline) {
		pthread_mutex_unlock(&f->lock);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&f->lock);
	}
	bool ok = f->entered;
	pthread_mutex_unlock(&f->lock);
	cr_assert(ok, "deliver() never started");
}

void fake_transport_release(struct fake_transport *f)
{
	pthread_mutex_lock(&f->lock);
	f->block = false;
	f->block_probe = false;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/*
 * test_deliver.c - the per-endpoint delivery scheduler (deliver.c) with a
 * real event_base, a real worker pool, a real SQLite store and the real
 * group commit, and the fake transport of fake_transport.h, which records
 * every batch (ids, sizes, bytes, the time of the call), fails, blocks and
 * answers probes as each test programs it.
 *
 * Messages are inserted through the real commit and handed to the endpoint
 * from the commit's completion, as the broker does, so the store holds what
 * a window refill or deliver_load reads. Timing tests use delays of
 * 100-400 ms and bounded waits.
 */
#include "base/clock.h"
#include "base/log.h"
#include "store/commit.h"
#include "deliver/deliver.h"
#include "store/store.h"
#include "transport/transport.h"
#include "codecs/base/mem.h"
#include "base/lanes.h"
#include "metrics/metrics.h"
#include "tests/unit/fake_transport.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define EP "municipality"
#define MAX_CALLS 4096

/* ---- fixture ----------------------------------------------------------- */

static char dir[PATH_MAX];
static struct event_base *base;
static struct lanes *pool;
static struct lane *lane;
static struct store *store;
static struct commit *commit;
static bool allow_delivery;

struct ev_rec {
	bool ok, probe;
	enum transport_fault fault;
	char error[192];
	size_t delivered;
	int64_t at_ms;
};

static struct ev_rec events[MAX_CALLS];
static size_t nevents;

static bool may_deliver(void *ctx)
{
	return allow_delivery;
}

static void on_event(void *ctx, struct deliver_ep *ep, const struct deliver_event *ev)
{
	cr_assert_eq(ctx, (void *)&nevents);
	cr_assert_lt(nevents, MAX_CALLS);
	events[nevents] = (struct ev_rec){ ev->ok, ev->probe, ev->fault, "", ev->delivered,
					    clock_mono_ms() };
	str_copy(events[nevents].error, ev->error ? ev->error : "", sizeof(events[0].error));
	nevents++;
}

static struct deliver_env env(void)
{
	return (struct deliver_env){ .base = base, .commit = commit, .store = store,
				     .may_deliver = may_deliver, .on_event = on_event,
				     .ctx = &nevents };
}

static struct deliver_params params(void)
{
	return (struct deliver_params){
		.retry_initial_ms = 100, .retry_max_ms = 400, .drain_rate = 0, .batch_max = 10,
		.window_msgs = 1000, .window_bytes = 64u << 20,
	};
}

static void setup(void)
{
	log_setup(LOG_CRIT, 0); /* the failures these tests cause are logged as errors */
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_deliver.XXXXXX");
	base = event_base_new();
	pool = lanes_new(base, 0);
	lane = lane_new(pool, "out:" EP);
	char err[512] = "";
	store = store_open("sqlite", dir, NULL, err, sizeof(err));
	cr_assert_not_null(store, "%s", err);
	commit = commit_new(base, store);
	allow_delivery = true;
	nevents = 0;
}

static void teardown(void)
{
	cr_assert_eq(lanes_wait(pool, 10000), 0, "work still running at teardown");
	lane_free(lane);
	lanes_free(pool);
	commit_free(commit);
	store_close(store);
	event_base_free(base);
	testutil_rm_rf(dir);
}

TestSuite(deliver, .init = setup, .fini = teardown, .timeout = 30);

/* ---- loop helpers ------------------------------------------------------ */

typedef bool (*pred_fn)(void *arg);

/* Runs the loop until pred(arg) or timeout_ms pass; returns pred's value. */
static bool run_until(pred_fn pred, void *arg, int64_t timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	while (!pred(arg) && clock_mono_ms() < deadline) {
		struct timeval tv = { 0, 5000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return pred(arg);
}

static bool never(void *arg)
{
	return false;
}

static void run_for(int64_t ms)
{
	run_until(never, NULL, ms);
}

struct count_goal {
	struct fake_transport *f;
	size_t n;
};

static bool confirmed_reached(void *arg)
{
	struct count_goal *g = arg;
	return fake_transport_confirmed(g->f) >= g->n;
}

static bool events_reached(void *arg)
{
	return nevents >= *(size_t *)arg;
}

static bool ep_idle(void *arg)
{
	return !deliver_busy(arg);
}

/* Waits for n confirmed messages, then lets the marks commit. */
static void wait_confirmed(struct fake_transport *f, size_t n, int64_t timeout_ms)
{
	struct count_goal g = { f, n };
	cr_assert(run_until(confirmed_reached, &g, timeout_ms), "%zu of %zu confirmed",
		  fake_transport_confirmed(f), n);
}

/* ---- messages ---------------------------------------------------------- */

struct msgset {
	size_t n;
	const char *endpoint;
	struct deliver_ep *ep;     /* enqueue on commit (NULL: only store) */
	struct store_new *m;
	struct store_key *k;
	char (*lid)[24];
	uint8_t **body;
	size_t *size;
	int64_t *id;
	size_t ndone;
};

static int letter_seq;

/* n messages of about size bytes for endpoint, committed in one turn; each
 * handed to ep (when not NULL) from its completion, as the broker does. */
static struct msgset *msgs_commit(const char *endpoint, size_t n, size_t size,
				  struct deliver_ep *ep)
{
	struct msgset *s = xcalloc(1, sizeof(*s));
	s->n = n;
	s->endpoint = endpoint;
	s->ep = ep;
	s->m = xcalloc(n, sizeof(*s->m));
	s->k = xcalloc(n, sizeof(*s->k));
	s->lid = xcalloc(n, sizeof(*s->lid));
	s->body = xcalloc(n, sizeof(*s->body));
	s->size = xcalloc(n, sizeof(*s->size));
	s->id = xcalloc(n, sizeof(*s->id));
	return s;
}

static void msg_done(int err, struct store_new *m, void *arg)
{
	struct msgset *s = arg;
	size_t i = (size_t)(m - s->m);
	cr_assert_eq(err, 0, "commit failed: %d", err);
	cr_assert_eq(m->outcome, STORE_STORED);
	s->id[i] = m->id;
	s->ndone++;
	if (s->ep) {
		uint8_t *copy = xmalloc(s->size[i]);
		memcpy(copy, s->body[i], s->size[i]);
		deliver_enqueue(s->ep, m->id, copy, s->size[i], "xml", "XDIS20",
				m->received_at);
	}
}

static struct msgset *add_msgs(const char *endpoint, size_t n, size_t size, struct deliver_ep *ep)
{
	struct msgset *s = msgs_commit(endpoint, n, size, ep);
	for (size_t i = 0; i < n; i++) {
		snprintf(s->lid[i], sizeof(s->lid[i]), "L%d", letter_seq++);
		s->size[i] = size + i % 13;
		s->body[i] = xmalloc(s->size[i]);
		for (size_t b = 0; b < s->size[i]; b++)
			s->body[i][b] = (uint8_t)(b * 131 + (size_t)letter_seq * 7);
		s->k[i] = (struct store_key){ "5790000143054", s->lid[i] };
		s->m[i] = (struct store_new){
			.source = "hospital", .endpoint = endpoint, .format = "oioxml",
			.ext = "xml", .type = "XDIS20", .envelope_id = s->lid[i],
			.sender = "5790000143054", .receiver = "5790000143055", .nletters = 1,
			.keys = &s->k[i], .nkeys = 1, .body = s->body[i], .size = s->size[i],
			.received_at = clock_wall_ms(),
		};
		commit_add(commit, &s->m[i], msg_done, s);
	}
	/* one turn commits them and runs the completions */
	event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
	cr_assert_eq(s->ndone, n);
	for (size_t i = 1; i < n; i++)
		cr_assert_gt(s->id[i], s->id[i - 1]);
	return s;
}

static void msgs_free(struct msgset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->body[i]);
	free(s->m);
	free(s->k);
	free(s->lid);
	free(s->body);
	free(s->size);
	free(s->id);
	free(s);
}

/* The fake confirmed s's ids at positions from.., in order, with their
 * exact bytes. */
static void assert_slice(struct fake_transport *f, const struct msgset *s, size_t from)
{
	pthread_mutex_lock(&f->lock);
	size_t n = f->nconfirmed;
	pthread_mutex_unlock(&f->lock);
	cr_assert_geq(n, from + s->n, "confirmed %zu, expected at least %zu", n, from + s->n);
	for (size_t i = 0; i < s->n; i++) {
		cr_assert_eq(f->confirmed[from + i], s->id[i], "position %zu: id %lld, expected %lld",
			     from + i, (long long)f->confirmed[from + i], (long long)s->id[i]);
		cr_assert_eq(f->hash[from + i], fake_transport_hash(s->body[i], s->size[i]),
			     "message %lld delivered with other bytes", (long long)s->id[i]);
	}
}

/* The fake confirmed exactly s's ids, in order, each once. */
static void assert_all_in_order(struct fake_transport *f, const struct msgset *s)
{
	cr_assert_eq(fake_transport_confirmed(f), s->n, "confirmed %zu, expected %zu",
		     fake_transport_confirmed(f), s->n);
	assert_slice(f, s, 0);
}

struct st_out {
	enum msg_state state;
	int attempts;
	char last_error[256];
};

static int st_cb(const struct store_msg *m, void *arg)
{
	struct st_out *o = arg;
	o->state = m->state;
	o->attempts = m->attempts;
	str_copy(o->last_error, m->last_error ? m->last_error : "", sizeof(o->last_error));
	return 0;
}

static enum msg_state state_of(int64_t id, int *attempts, char *last_error, size_t len)
{
	struct st_out o = { 0 };
	int n = store_get(store, id, false, st_cb, &o);
	cr_assert_eq(n, 1, "message %lld not found", (long long)id);
	if (attempts)
		*attempts = o.attempts;
	if (last_error)
		str_copy(last_error, o.last_error, len);
	return o.state;
}

static int64_t count_state(enum msg_state st)
{
	int64_t n = -1;
	cr_assert_eq(store_count(store, st, &n), 0);
	return n;
}

/* Lets pending delivered marks commit. */
static void settle(void)
{
	run_for(30);
	cr_assert_eq(commit_flush(commit), 0);
}

static struct deliver_ep *new_ep(struct fake_transport *f, const struct deliver_params *p)
{
	struct deliver_env e = env();
	struct deliver_ep *ep = deliver_ep_new(EP, &e, p);
	cr_assert_not_null(ep);
	cr_assert_str_eq(deliver_ep_name(ep), EP);
	if (f)
		deliver_set_transport(ep, &fake_transport_ops, fake_transport_handle(f));
	return ep;
}

/* Frees ep once idle (destroying its transport). */
static void free_ep(struct deliver_ep *ep)
{
	cr_assert(run_until(ep_idle, ep, 5000));
	deliver_ep_free(ep);
}

/* ---- order and batches ------------------------------------------------- */

Test(deliver, delivers_in_id_order_in_bounded_batches)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 35, 300, ep);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 35);
	cr_assert_gt(info.oldest_received_at, 0);

	wait_confirmed(f, 35, 5000);
	settle();
	assert_all_in_order(f, s);
	cr_assert_geq(f->calls, 4, "35 messages with batch_max 10 need 4 batches");
	for (size_t c = 0; c < f->calls; c++)
		cr_assert_leq(f->sizes[c], 10, "batch %zu has %zu messages", c, f->sizes[c]);
	cr_assert_eq(count_state(MSG_DELIVERED), 35, "delivered marks not committed");
	cr_assert_eq(count_state(MSG_QUEUED), 0);

	run_until(ep_idle, ep, 1000);
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 0);
	cr_assert_eq(info.delivered, 35);
	cr_assert_eq(info.failures, 0);
	cr_assert_eq(info.state, DELIVER_IDLE);
	cr_assert_gt(info.last_success_at, 0);
	size_t sum = 0;
	for (size_t i = 0; i < nevents; i++) {
		cr_assert(events[i].ok);
		cr_assert_not(events[i].probe);
		sum += events[i].delivered;
	}
	cr_assert_eq(sum, 35);
	free_ep(ep);
	cr_assert_eq(f->destroys, 1);
	msgs_free(s);
	fake_transport_free(f);
}

/* A transport that stops early by choice (a prefix, no fault) has not
 * failed: no attempt counted, no backoff, the rest in the next batches. */
Test(deliver, a_prefix_without_fault_is_a_success)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	f->stop_after = 3;
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 10, 100, ep);
	wait_confirmed(f, 10, 5000);
	settle();
	assert_all_in_order(f, s);
	cr_assert_geq(f->calls, 4, "3 at a time");
	cr_assert_eq(count_state(MSG_DELIVERED), 10);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.failures, 0, "stopping early is no failure");
	cr_assert_eq(info.state, DELIVER_IDLE);
	for (size_t i = 0; i < nevents; i++)
		cr_assert(events[i].ok, "event %zu", i);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

Test(deliver, nothing_without_transport_or_while_store_failing)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(NULL, &p);
	struct msgset *s = add_msgs(EP, 5, 100, ep);
	run_for(100);
	cr_assert_eq(nevents, 0);
	allow_delivery = false;
	deliver_set_transport(ep, &fake_transport_ops, fake_transport_handle(f));
	cr_assert_eq(deliver_transport(ep), fake_transport_handle(f));
	run_for(150);
	cr_assert_eq(fake_transport_calls(f), 0, "delivered although may_deliver said no");
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 5, 3000);
	assert_all_in_order(f, s);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- failure and backoff ----------------------------------------------- */

Test(deliver, failure_confirms_prefix_and_backs_off)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 300;
	p.retry_max_ms = 1200;
	allow_delivery = false; /* program the fault before the first batch */
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 10, 200, ep);
	f->fail_id = s->id[4];
	f->fails_left = 1;
	f->fault = FAULT_DISK_FULL;
	allow_delivery = true;
	deliver_kick(ep);

	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000));
	int64_t failed_at = clock_mono_ms();
	cr_assert_not(events[0].ok);
	cr_assert_eq(events[0].delivered, 4);
	cr_assert_eq(events[0].fault, FAULT_DISK_FULL);
	cr_assert(strstr(events[0].error, "failed at message"), "%s", events[0].error);

	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_BACKOFF);
	cr_assert_eq(info.failures, 1);
	cr_assert_eq(info.last_fault, FAULT_DISK_FULL);
	cr_assert(strstr(info.last_error, "failed at message"));
	cr_assert_gt(info.first_failure_at, 0);
	/* armed after the failed call began, for 300 ms +-20% */
	cr_assert_geq(info.next_attempt_ms, f->call_ms[0] + 300 * 8 / 10,
		      "next attempt %lld ms after the failed call",
		      (long long)(info.next_attempt_ms - f->call_ms[0]));
	cr_assert_leq(info.next_attempt_ms, failed_at + 300 * 12 / 10);
	cr_assert_eq(info.queued, 6);
	cr_assert(info.draining);

	/* the confirmed prefix is marked, the failed message has an attempt */
	run_for(30);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(state_of(s->id[i], NULL, NULL, 0), MSG_DELIVERED, "message %zu", i);
	int attempts = 0;
	char err[256];
	cr_assert_eq(state_of(s->id[4], &attempts, err, sizeof(err)), MSG_QUEUED);
	cr_assert_eq(attempts, 1);
	cr_assert(strstr(err, "failed at message"), "%s", err);
	for (size_t i = 5; i < 10; i++)
		cr_assert_eq(state_of(s->id[i], &attempts, NULL, 0), MSG_QUEUED);

	/* the retry waits for the backoff, then the rest goes in order */
	wait_confirmed(f, 10, 3000);
	cr_assert_geq(f->calls, 2);
	int64_t gap = f->call_ms[1] - f->call_ms[0];
	cr_assert_geq(gap, 300 * 8 / 10 - 10, "retried after %lld ms", (long long)gap);
	cr_assert_eq(f->first_id[1], s->id[4], "the retry must start at the failed message");
	assert_all_in_order(f, s);
	settle();
	cr_assert_eq(count_state(MSG_DELIVERED), 10);
	run_until(ep_idle, ep, 1000);
	deliver_get_info(ep, &info);
	cr_assert_eq(info.failures, 0);
	cr_assert_eq(info.first_failure_at, 0);
	cr_assert_eq(info.last_fault, FAULT_NONE);
	cr_assert_str_eq(info.last_error, "");
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

Test(deliver, backoff_grows_and_is_capped)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 100;
	p.retry_max_ms = 400;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 3, 100, ep);
	f->fail_id = s->id[0];
	f->fails_left = 5;
	f->fault = FAULT_REFUSED;
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 3, 6000);
	cr_assert_eq(f->calls, 6, "5 failures and one success, got %zu calls", f->calls);
	/* expected: ~100, ~200, ~400, 400, 400 (+-20% jitter, capped at 400) */
	const int64_t lo[5] = { 80, 160, 320, 320, 320 };
	int64_t gaps[5];
	for (int i = 0; i < 5; i++) {
		gaps[i] = f->call_ms[i + 1] - f->call_ms[i];
		cr_assert_geq(gaps[i], lo[i] - 10, "retry %d after %lld ms, expected >= %lld", i + 1,
			      (long long)gaps[i], (long long)lo[i]);
		cr_assert_leq(gaps[i], 400 + 150, "retry %d after %lld ms, above retry_max", i + 1,
			      (long long)gaps[i]);
	}
	cr_assert_gt(gaps[1], gaps[0]);
	cr_assert_gt(gaps[2], gaps[1]);
	assert_all_in_order(f, s);
	settle();
	int attempts = 0;
	state_of(s->id[0], &attempts, NULL, 0);
	cr_assert_eq(attempts, 5);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

Test(deliver, retry_now_skips_the_wait)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 5000;
	p.retry_max_ms = 10000;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 3, 100, ep);
	f->fail_id = s->id[1];
	f->fails_left = 1;
	f->fault = FAULT_IO;
	allow_delivery = true;
	deliver_kick(ep);
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000));
	run_for(50);
	cr_assert_eq(fake_transport_calls(f), 1);
	deliver_retry_now(ep);
	wait_confirmed(f, 3, 1000);
	assert_all_in_order(f, s);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- drain rate -------------------------------------------------------- */

Test(deliver, drain_rate_limits_after_a_failure)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 100;
	p.batch_max = 256;
	p.drain_rate = 100; /* msg/s */
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 50, 100, ep);
	f->fail_id = s->id[0];
	f->fails_left = 1;
	f->fault = FAULT_TIMEOUT;
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 50, 5000);
	int64_t t_fail = f->call_ms[0];
	int64_t t_last = f->call_ms[f->calls - 1];
	/* 50 messages at 100/s after the failure need about 0.5 s */
	cr_assert_geq(t_last - t_fail, 400, "drained 50 in %lld ms at 100 msg/s",
		      (long long)(t_last - t_fail));
	cr_assert_geq(f->calls, 4, "a rate-limited drain comes in several batches");
	for (size_t c = 1; c < f->calls; c++)
		cr_assert_leq(f->sizes[c], 100, "batch %zu of %zu above the burst", c, f->sizes[c]);
	assert_all_in_order(f, s);
	struct deliver_info info;
	run_until(ep_idle, ep, 1000);
	run_for(20);
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 0);
	cr_assert_not(info.draining, "still draining with an empty queue");
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

Test(deliver, drain_rate_not_applied_before_any_failure)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 256;
	p.drain_rate = 100;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 50, 100, ep);
	allow_delivery = true;
	int64_t t0 = clock_mono_ms();
	deliver_kick(ep);
	wait_confirmed(f, 50, 3000);
	int64_t took = clock_mono_ms() - t0;
	cr_assert_eq(f->calls, 1, "50 messages came in %zu batches", f->calls);
	cr_assert_eq(f->sizes[0], 50);
	cr_assert_lt(took, 400, "took %lld ms", (long long)took);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_not(info.draining);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- window ------------------------------------------------------------ */

Test(deliver, window_is_bounded_and_refilled_from_store, .timeout = 60)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 256;
	p.window_msgs = 64;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	enum { N = 5000 };
	struct msgset *s = add_msgs(EP, N, 40, ep);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, N);
	cr_assert_eq(info.oldest_received_at, s->m[0].received_at);
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, N, 30000);
	settle();
	assert_all_in_order(f, s);
	for (size_t c = 0; c < f->calls; c++)
		cr_assert_leq(f->sizes[c], 64, "batch %zu has %zu messages: window not bounded", c,
			      f->sizes[c]);
	cr_assert_geq(f->calls, N / 64);
	cr_assert_eq(count_state(MSG_DELIVERED), N);
	run_until(ep_idle, ep, 1000);
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 0);
	cr_assert_eq(info.delivered, N);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* New messages arriving while the window is full are not lost and keep
 * their place after the backlog. */
Test(deliver, arrivals_during_backlog_keep_order)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.window_msgs = 16;
	p.batch_max = 8;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *a = add_msgs(EP, 100, 50, ep);
	struct msgset *b = add_msgs(EP, 30, 50, ep);
	struct msgset *c = add_msgs(EP, 30, 50, ep);
	wait_confirmed(f, 160, 10000);
	assert_slice(f, a, 0);
	assert_slice(f, b, 100);
	assert_slice(f, c, 130);
	free_ep(ep);
	msgs_free(a);
	msgs_free(b);
	msgs_free(c);
	fake_transport_free(f);
}

/* window_bytes: "bytes kept in memory (at least one message)". A backlog
 * read from the store must respect it as enqueue does: with 600-byte
 * messages and a 1000-byte window, no batch can hold more than 2. */
Test(deliver, window_bytes_bounds_refill_from_store)
{
	struct msgset *s = add_msgs(EP, 40, 600, NULL);
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 256;
	p.window_msgs = 32;
	p.window_bytes = 1000;
	struct deliver_ep *ep = new_ep(f, &p);
	cr_assert_eq(deliver_load(ep), 0);
	wait_confirmed(f, 40, 5000);
	assert_all_in_order(f, s);
	size_t biggest = 0;
	for (size_t c = 0; c < f->calls; c++)
		biggest = f->sizes[c] > biggest ? f->sizes[c] : biggest;
	cr_assert_leq(biggest, 2, "a batch of %zu messages of ~600 bytes: window_bytes=1000 "
				  "was not applied to the refill",
		      biggest);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- load -------------------------------------------------------------- */

Test(deliver, load_picks_up_queue_left_in_store)
{
	/* a queue left by an earlier run, and another endpoint's messages */
	struct msgset *s = add_msgs(EP, 20, 500, NULL);
	struct msgset *other = add_msgs("hospital", 5, 500, NULL);
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	cr_assert_eq(deliver_load(ep), 0);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 20);
	cr_assert_eq(info.oldest_received_at, s->m[0].received_at);
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 20, 5000);
	run_for(50);
	assert_all_in_order(f, s); /* the other endpoint's are not among them */
	settle();
	cr_assert_eq(count_state(MSG_DELIVERED), 20);
	cr_assert_eq(count_state(MSG_QUEUED), 5);
	free_ep(ep);
	msgs_free(s);
	msgs_free(other);
	fake_transport_free(f);
}

/* A queue loaded from the store, then new arrivals: the loaded messages
 * first, then the new ones, each once, in id order. */
Test(deliver, load_then_new_arrivals_in_order)
{
	struct msgset *old = add_msgs(EP, 10, 100, NULL);
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	cr_assert_eq(deliver_load(ep), 0);
	struct msgset *nw = add_msgs(EP, 10, 100, ep);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 20);
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 20, 5000);
	assert_slice(f, old, 0);
	assert_slice(f, nw, 10);
	free_ep(ep);
	msgs_free(old);
	msgs_free(nw);
	fake_transport_free(f);
}

/* ---- hold -------------------------------------------------------------- */

Test(deliver, hold_stops_new_batches)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(f, &p);
	deliver_hold(ep, true);
	struct msgset *s = add_msgs(EP, 10, 100, ep);
	run_for(200);
	cr_assert_eq(fake_transport_calls(f), 0, "a held endpoint delivered");
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_HELD);
	cr_assert_eq(info.queued, 10);
	deliver_hold(ep, false);
	wait_confirmed(f, 10, 3000);
	assert_all_in_order(f, s);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* A hold while a batch is in flight lets that batch finish and starts no
 * other. */
Test(deliver, hold_during_batch_stops_the_next)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 4;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 12, 100, ep);
	f->block = true;
	allow_delivery = true;
	deliver_kick(ep);
	run_for(10);
	fake_transport_wait_entered(f);
	deliver_hold(ep, true);
	fake_transport_release(f);
	run_for(300);
	cr_assert_eq(fake_transport_calls(f), 1, "a batch started while held");
	cr_assert_eq(fake_transport_confirmed(f), 4);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_HELD);
	cr_assert_eq(info.queued, 8);
	deliver_hold(ep, false);
	wait_confirmed(f, 12, 3000);
	assert_all_in_order(f, s);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- operators: deleting a queued message ------------------------------- */

/* A message in the batch with the transport may be written right now: it
 * cannot be deleted. One still waiting leaves the window and the count,
 * and the rest go in order. */
Test(deliver, a_queued_message_can_be_forgotten_but_not_while_it_is_sent)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 2;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 6, 100, ep);
	f->block = true;
	allow_delivery = true;
	deliver_kick(ep);
	run_for(10);
	fake_transport_wait_entered(f);
	cr_assert(deliver_sending(ep, s->id[0]));
	cr_assert(deliver_sending(ep, s->id[1]));
	cr_assert_not(deliver_sending(ep, s->id[2]));
	deliver_forget(ep, s->id[3], s->size[3]);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 5);
	fake_transport_release(f);
	f->block = false;
	wait_confirmed(f, 5, 3000);
	run_for(100);
	cr_assert_eq(fake_transport_confirmed(f), 5, "the forgotten one was not sent");
	for (size_t i = 0; i < 5; i++)
		cr_assert_neq(f->confirmed[i], s->id[3]);
	cr_assert_eq(f->confirmed[2], s->id[2]);
	cr_assert_eq(f->confirmed[3], s->id[4], "order kept around the gap");
	deliver_get_info(ep, &info);
	cr_assert_eq(info.queued, 0);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

struct hist {
	char kinds[4][16], faults[4][16];
	size_t n;
};

static int add_event(const struct store_event *e, void *arg)
{
	struct hist *h = arg;
	cr_assert_lt(h->n, 4);
	str_copy(h->kinds[h->n], e->kind, sizeof(h->kinds[0]));
	str_copy(h->faults[h->n++], e->fault ? e->fault : "", sizeof(h->faults[0]));
	return 0;
}

/* A failed attempt goes to the message's history with its fault class,
 * and is counted; the delivery is counted by type with its latency. */
Test(deliver, failures_are_kept_with_their_fault_and_deliveries_counted)
{
	metrics_reset();
	const char *const names[] = { EP };
	metrics_set_endpoints(names, 1);
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 2, 100, ep);
	f->fail_id = s->id[0];
	f->fails_left = 1;
	f->fault = FAULT_REFUSED;
	allow_delivery = true;
	deliver_kick(ep);
	wait_confirmed(f, 2, 3000);
	settle();
	struct hist h = { .n = 0 };
	cr_assert_eq(store_events(store, s->id[0], add_event, &h), 1);
	cr_assert_str_eq(h.kinds[0], "attempt");
	cr_assert_str_eq(h.faults[0], "refused");
	_cleanup_free_ char *text = metrics_render(NULL);
	cr_assert(strstr(text, "edibroker_delivery_failures_total{endpoint=\"" EP "\","
			       "fault=\"refused\"} 1\n"), "%s", text);
	cr_assert(strstr(text, "edibroker_messages_delivered_total{endpoint=\"" EP "\","
			       "type=\"XDIS20\"} 2\n"), "%s", text);
	cr_assert(strstr(text, "edibroker_delivery_latency_seconds_count{endpoint=\"" EP
			       "\"} 2\n"), "%s", text);
	metrics_reset();
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- deadlines ---------------------------------------------------------- */

/* A delivery stuck past delivery_timeout (a write blocked in the kernel on a
 * frozen share) counts as a failure at the deadline, and again at every
 * further deadline it stays stuck (so the endpoint goes SUSPECT, then
 * DOWN): failed events, one attempt recorded, state overdue; no second
 * operation starts while it runs. When it finally returns, its result
 * counts: success delivers and the next batch starts at once, not after a
 * backoff. */
Test(deliver, a_stuck_delivery_counts_at_its_deadline_and_its_late_result_counts)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 4;
	p.delivery_timeout_ms = 200;
	p.retry_initial_ms = 60000; /* a backoff would show as a long pause */
	p.retry_max_ms = 60000;
	struct deliver_ep *ep = new_ep(f, &p);
	f->block = true;
	struct msgset *s = add_msgs(EP, 8, 100, ep);
	run_for(10);
	fake_transport_wait_entered(f);
	int64_t t0 = clock_mono_ms();
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000), "no event at the deadline");
	cr_assert_geq(clock_mono_ms() - t0, 150, "the failure came before the deadline");
	cr_assert_not(events[0].ok);
	cr_assert_not(events[0].probe);
	cr_assert_eq(events[0].fault, FAULT_TIMEOUT);
	cr_assert(strstr(events[0].error, "no answer within"), "%s", events[0].error);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_OVERDUE);
	cr_assert_eq(info.failures, 1);
	cr_assert(deliver_busy(ep));
	cr_assert_not(deliver_probe(ep), "a probe beside a stuck delivery");
	size_t two = 2;
	cr_assert(run_until(events_reached, &two, 5000), "a second deadline was not counted");
	run_for(100);
	cr_assert_eq(fake_transport_calls(f), 1, "a second operation beside the stuck one");
	size_t stuck = nevents;
	for (size_t i = 0; i < stuck; i++)
		cr_assert(!events[i].ok && events[i].fault == FAULT_TIMEOUT && !events[i].probe);
	settle();
	int attempts = 0;
	state_of(s->id[0], &attempts, NULL, 0);
	cr_assert_eq(attempts, 1, "the overdue attempt is recorded with the message");
	int64_t released = clock_mono_ms();
	fake_transport_release(f);
	wait_confirmed(f, 8, 10000);
	cr_assert_lt(clock_mono_ms() - released, 30000, "the next batch waited for a backoff");
	cr_assert(events[stuck].ok, "the late success was not reported");
	cr_assert_eq(events[stuck].delivered, 4);
	deliver_get_info(ep, &info);
	cr_assert_eq(info.failures, 0);
	assert_all_in_order(f, s);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* A stuck delivery that finally fails: counted once (at the deadline),
 * then the endpoint backs off from the late result. */
Test(deliver, a_stuck_delivery_that_fails_late_is_counted_once)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.delivery_timeout_ms = 150;
	struct deliver_ep *ep = new_ep(f, &p);
	f->block = true;
	struct msgset *s = add_msgs(EP, 3, 100, ep);
	f->fail_id = s->id[0];
	f->fails_left = 1;
	f->fault = FAULT_IO;
	run_for(10);
	fake_transport_wait_entered(f);
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000));
	size_t before = nevents;
	fake_transport_release(f);
	cr_assert(run_until(ep_idle, ep, 3000));
	run_for(20);
	cr_assert_eq(nevents, before, "the late failure was reported again");
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_BACKOFF);
	cr_assert_eq(info.failures, 1);
	cr_assert_eq(info.last_fault, FAULT_IO, "the late error is kept for operators");
	wait_confirmed(f, 3, 3000);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* A transport that can give up (a network connection) is cancelled at the
 * deadline and completes with a timeout: an ordinary failure and backoff. */
Test(deliver, a_cancellable_transport_is_cancelled_at_the_deadline)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.delivery_timeout_ms = 150;
	struct deliver_env e = env();
	struct deliver_ep *ep = deliver_ep_new(EP, &e, &p);
	deliver_set_transport(ep, &fake_transport_cancellable_ops, fake_transport_handle(f));
	f->block = true;
	struct msgset *s = add_msgs(EP, 2, 100, ep);
	run_for(10);
	fake_transport_wait_entered(f);
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000), "not cancelled at the deadline");
	cr_assert_not(events[0].ok);
	cr_assert_eq(events[0].fault, FAULT_TIMEOUT);
	cr_assert(strstr(events[0].error, "cancelled"), "%s", events[0].error);
	cr_assert(run_until(ep_idle, ep, 3000), "the cancelled delivery did not complete");
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.state, DELIVER_BACKOFF);
	fake_transport_release(f);
	wait_confirmed(f, 2, 3000);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* A probe stuck past the deadline counts a failure at every deadline; its
 * late success brings the endpoint back. */
Test(deliver, a_stuck_probe_counts_per_deadline_and_its_late_success_counts)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.delivery_timeout_ms = 150;
	struct deliver_ep *ep = new_ep(f, &p);
	f->block_probe = true;
	cr_assert(deliver_probe(ep));
	fake_transport_wait_entered(f);
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000), "no failure at the deadline");
	cr_assert(events[0].probe);
	cr_assert_not(events[0].ok);
	cr_assert_eq(events[0].fault, FAULT_TIMEOUT);
	size_t two = 2;
	cr_assert(run_until(events_reached, &two, 5000), "a second deadline was not counted");
	size_t stuck = nevents;
	cr_assert(deliver_busy(ep));
	cr_assert_not(deliver_probe(ep), "a second probe beside the stuck one");
	cr_assert_eq(f->probes, 1);
	fake_transport_release(f);
	size_t more = stuck + 1;
	cr_assert(run_until(events_reached, &more, 3000), "the late probe result was lost");
	cr_assert(events[stuck].probe);
	cr_assert(events[stuck].ok);
	free_ep(ep);
	fake_transport_free(f);
}

/* ---- probe ------------------------------------------------------------- */

Test(deliver, probe_reports_through_on_event)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(f, &p);
	f->probe_fault = FAULT_TIMEOUT;
	cr_assert(deliver_probe(ep));
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000));
	cr_assert(events[0].probe);
	cr_assert_not(events[0].ok);
	cr_assert_eq(events[0].fault, FAULT_TIMEOUT);
	cr_assert(strstr(events[0].error, "probe says timeout"), "%s", events[0].error);
	cr_assert_eq(f->probes, 1);
	cr_assert_eq(fake_transport_calls(f), 0, "a probe must not deliver");
	run_until(ep_idle, ep, 1000);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.last_fault, FAULT_TIMEOUT);

	f->probe_fault = FAULT_NONE;
	cr_assert(deliver_probe(ep));
	size_t two = 2;
	cr_assert(run_until(events_reached, &two, 3000));
	cr_assert(events[1].probe);
	cr_assert(events[1].ok);
	cr_assert_eq(events[1].fault, FAULT_NONE);
	free_ep(ep);
	fake_transport_free(f);
}

Test(deliver, probe_refused_while_busy_or_without_transport)
{
	struct deliver_params p = params();
	struct deliver_ep *bare = new_ep(NULL, &p);
	cr_assert_not(deliver_probe(bare), "probe without a transport");
	deliver_ep_free(bare);

	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_ep *ep = new_ep(f, &p);
	f->block = true;
	struct msgset *s = add_msgs(EP, 3, 100, ep);
	run_for(10);
	fake_transport_wait_entered(f);
	cr_assert(deliver_busy(ep));
	cr_assert_not(deliver_probe(ep), "probe started beside a batch");
	fake_transport_release(f);
	wait_confirmed(f, 3, 3000);
	cr_assert_eq(f->probes, 0);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* A failed probe during backoff must not end the backoff: the state table
 * leaves BACKOFF only on the timer or retry_now. */
Test(deliver, failed_probe_during_backoff_keeps_the_backoff)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 1000;
	p.retry_max_ms = 2000;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 3, 100, ep);
	f->fail_id = s->id[0];
	f->fails_left = 1;
	f->fault = FAULT_REFUSED;
	f->probe_fault = FAULT_REFUSED;
	allow_delivery = true;
	deliver_kick(ep);
	size_t one = 1;
	cr_assert(run_until(events_reached, &one, 3000));
	int64_t failed_at = clock_mono_ms();
	cr_assert(run_until(ep_idle, ep, 1000));
	cr_assert(deliver_probe(ep));
	size_t two = 2;
	cr_assert(run_until(events_reached, &two, 3000));
	cr_assert(events[1].probe && !events[1].ok);
	run_for(150);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	size_t calls = fake_transport_calls(f);
	int64_t since = clock_mono_ms() - failed_at;
	cr_assert_eq(calls, 1,
		     "a failed probe ended the backoff: retried %lld ms after the failure "
		     "(backoff >= 800 ms), state now %s",
		     (long long)(calls > 1 ? f->call_ms[1] - f->call_ms[0] : -1),
		     deliver_state_name(info.state));
	cr_assert_lt(since, 800);
	(void)info;
	cr_assert_eq(info.state, DELIVER_BACKOFF);
	wait_confirmed(f, 3, 3000);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

/* ---- transport replacement and free while busy ------------------------- */

Test(deliver, set_transport_while_batch_in_flight)
{
	struct fake_transport *f1 = fake_transport_new("t1", lane), *f2 = fake_transport_new("t2", lane);
	struct deliver_params p = params();
	p.batch_max = 5;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f1, &p);
	struct msgset *s = add_msgs(EP, 12, 100, ep);
	f1->block = true;
	allow_delivery = true;
	deliver_kick(ep);
	run_for(10);
	fake_transport_wait_entered(f1);
	deliver_set_transport(ep, &fake_transport_ops, fake_transport_handle(f2));
	cr_assert_eq(deliver_transport(ep), fake_transport_handle(f2));
	run_for(50);
	cr_assert_eq(f1->destroys, 0, "the transport in use was destroyed");
	cr_assert_eq(fake_transport_calls(f2), 0, "a second batch ran beside the first");
	fake_transport_release(f1);
	wait_confirmed(f2, 7, 3000);
	cr_assert_eq(fake_transport_confirmed(f1), 5);
	cr_assert_eq(f1->destroys, 1, "the retired transport was not destroyed once");
	cr_assert_not(f1->destroyed_in_use);
	cr_assert_geq(f1->stops, 1);
	/* all 12 in order across the two transports */
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(f1->confirmed[i], s->id[i]);
	for (size_t i = 0; i < 7; i++)
		cr_assert_eq(f2->confirmed[i], s->id[5 + i]);
	settle();
	cr_assert_eq(count_state(MSG_DELIVERED), 12);
	free_ep(ep);
	cr_assert_eq(f2->destroys, 1);
	msgs_free(s);
	fake_transport_free(f1);
	fake_transport_free(f2);
}

/* Two reloads while one batch is in flight: the transport that batch uses
 * must survive until it returns. */
Test(deliver, set_transport_twice_while_batch_in_flight)
{
	struct fake_transport *f1 = fake_transport_new("t1", lane), *f2 = fake_transport_new("t2", lane),
			      *f3 = fake_transport_new("t3", lane);
	struct deliver_params p = params();
	p.batch_max = 5;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f1, &p);
	struct msgset *s = add_msgs(EP, 8, 100, ep);
	f1->block = true;
	allow_delivery = true;
	deliver_kick(ep);
	run_for(10);
	fake_transport_wait_entered(f1);
	deliver_set_transport(ep, &fake_transport_ops, fake_transport_handle(f2));
	deliver_set_transport(ep, &fake_transport_ops, fake_transport_handle(f3));
	pthread_mutex_lock(&f1->lock);
	int d1 = f1->destroys;
	bool in_use = f1->destroyed_in_use;
	pthread_mutex_unlock(&f1->lock);
	fake_transport_release(f1);
	wait_confirmed(f3, 3, 3000);
	cr_assert_not(in_use, "transport t1 destroyed while its deliver() was running");
	cr_assert_eq(d1, 0, "transport t1 destroyed while its batch was in flight");
	cr_assert_eq(f1->destroys, 1);
	cr_assert_eq(f2->destroys, 1, "the never-used transport t2 leaked");
	cr_assert_eq(fake_transport_calls(f2), 0);
	free_ep(ep);
	cr_assert_eq(f3->destroys, 1);
	msgs_free(s);
	fake_transport_free(f1);
	fake_transport_free(f2);
	fake_transport_free(f3);
}

Test(deliver, free_while_busy_waits_for_the_batch)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.batch_max = 5;
	allow_delivery = false;
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 8, 100, ep);
	f->block = true;
	allow_delivery = true;
	deliver_kick(ep);
	run_for(10);
	fake_transport_wait_entered(f);
	deliver_ep_free(ep); /* while busy */
	cr_assert_eq(f->destroys, 0, "transport destroyed under the running batch");
	cr_assert_geq(f->stops, 1, "transport not stopped");
	size_t ev_before = nevents;
	fake_transport_release(f);
	cr_assert_eq(lanes_pending(pool), 1);
	cr_assert_eq(lanes_wait(pool, 5000), 0); /* runs the completion that frees the endpoint */
	cr_assert_eq(f->destroys, 1);
	cr_assert_not(f->destroyed_in_use);
	cr_assert_eq(fake_transport_confirmed(f), 5);
	cr_assert_eq(nevents, ev_before, "on_event after the endpoint was freed");
	/* what the receiver confirmed is still marked delivered */
	settle();
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(state_of(s->id[i], NULL, NULL, 0), MSG_DELIVERED, "message %zu", i);
	for (size_t i = 5; i < 8; i++)
		cr_assert_eq(state_of(s->id[i], NULL, NULL, 0), MSG_QUEUED, "message %zu", i);
	/* and nothing more is delivered */
	run_for(100);
	cr_assert_eq(fake_transport_calls(f), 1);
	msgs_free(s);
	fake_transport_free(f);
}

Test(deliver, free_accepts_null_and_idle)
{
	deliver_ep_free(NULL);
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	struct deliver_ep *ep = new_ep(f, &p);
	deliver_ep_free(ep);
	cr_assert_eq(f->destroys, 1);
	run_for(20);
	fake_transport_free(f);
}

Test(deliver, state_names)
{
	cr_assert_str_eq(deliver_state_name(DELIVER_IDLE), "idle");
	cr_assert_str_eq(deliver_state_name(DELIVER_BACKOFF), "retrying");
	cr_assert_str_eq(deliver_state_name(DELIVER_HELD), "held");
	cr_assert_str_eq(deliver_state_name((enum deliver_state)99), "?");
}

/* ---- a message the receiver refuses for what it is (issue 9) ------------- */

/* The receiver answers that one message is not one it takes (HTTP 422):
 * it becomes a dead letter with the receiver's reason, the endpoint stays
 * healthy (no failure, no backoff), and the rest of the queue goes on. */
Test(deliver, a_message_the_receiver_refuses_is_set_aside)
{
	struct fake_transport *f = fake_transport_new("t1", lane);
	struct deliver_params p = params();
	p.retry_initial_ms = 5000; /* a backoff would show as a long pause */
	struct deliver_ep *ep = new_ep(f, &p);
	struct msgset *s = add_msgs(EP, 6, 100, NULL);
	f->reject_id = s->id[2];
	cr_assert_eq(deliver_load(ep), 0);
	wait_confirmed(f, 5, 3000);
	settle();
	cr_assert_eq(state_of(s->id[2], NULL, NULL, 0), MSG_DEAD);
	char why[192];
	state_of(s->id[2], NULL, why, sizeof(why));
	cr_assert(strstr(why, "HTTP 422"), "%s", why);
	for (size_t i = 0; i < 6; i++)
		if (i != 2)
			cr_assert_eq(state_of(s->id[i], NULL, NULL, 0), MSG_DELIVERED, "msg %zu", i);
	struct deliver_info info;
	deliver_get_info(ep, &info);
	cr_assert_eq(info.failures, 0);
	cr_assert_eq(info.queued, 0);
	cr_assert_eq(info.queued_bytes, 0);
	for (size_t i = 0; i < nevents; i++)
		cr_assert(events[i].ok, "event %zu reported a failure", i);
	free_ep(ep);
	msgs_free(s);
	fake_transport_free(f);
}

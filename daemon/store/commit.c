/*
 * commit.c - the group-commit scheduler.
 *
 * Pending work lives in three growable arrays. The first addition in a loop
 * turn activates one libevent event; it runs after every callback already
 * active in that turn, so everything raised in the turn shares one
 * transaction. While the store is failing and delivered marks are pending,
 * a timer retries every two seconds so that marks (and the recovery signal
 * that restarts pick-up) do not wait for new input. Every commit's duration
 * and every failure are counted (metrics.h).
 */
#include "store/commit.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <string.h>

#define RETRY_MS 2000

struct pending_msg {
	struct store_new *m;
	commit_done_fn done;
	void *arg;
};

struct commit {
	struct store *store;
	struct event *run_ev, *retry_ev;
	bool scheduled;
	bool healthy;
	char last_error[256];
	void (*health_fn)(bool healthy, void *arg);
	void *health_arg;

	struct pending_msg *msgs;
	size_t nmsgs, capmsgs;
	int64_t *delivered;
	size_t ndelivered, capdelivered;
	struct store_attempt *attempts; /* error and fault strings owned */
	size_t nattempts, capattempts;

	struct store_new *scratch; /* contiguous copy handed to store_commit */
	size_t capscratch;
	struct commit_stats stats;
};

static void grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap * 2 : 64;
	while (n < need)
		n *= 2;
	*arr = xrealloc(*arr, n * elem);
	*cap = n;
}

static void schedule(struct commit *c)
{
	if (!c->scheduled) {
		c->scheduled = true;
		event_active(c->run_ev, 0, 0);
	}
}

static void set_health(struct commit *c, bool healthy, int err)
{
	if (!healthy)
		snprintf(c->last_error, sizeof(c->last_error), "%s",
			 store_last_error(c->store));
	if (healthy == c->healthy)
		return;
	c->healthy = healthy;
	if (healthy) {
		c->last_error[0] = '\0';
		log_notice("event=store-recovered state=committing");
	} else {
		log_err("event=store-failed state=not-committing error=\"%s\" errno=%s",
			c->last_error, strerror(-err));
	}
	if (c->health_fn)
		c->health_fn(healthy, c->health_arg);
}

/* Completes the new messages of a finished commit (err 0 = committed). */
static void complete_msgs(struct commit *c, size_t n, int err)
{
	struct pending_msg *list = c->msgs;
	/* Completions may queue new work: hand them a fresh array. */
	c->msgs = NULL;
	c->nmsgs = c->capmsgs = 0;
	/* Every outcome is copied before any completion runs: a completion may
	 * start another commit, which reuses the scratch array. */
	for (size_t i = 0; err == 0 && i < n; i++) {
		list[i].m->outcome = c->scratch[i].outcome;
		list[i].m->id = c->scratch[i].id;
		memcpy(list[i].m->why, c->scratch[i].why, sizeof(list[i].m->why));
		list[i].m->acked = c->scratch[i].acked;
		list[i].m->nacked = c->scratch[i].nacked;
		list[i].m->nforeign = c->scratch[i].nforeign;
		list[i].m->ack_id = c->scratch[i].ack_id;
	}
	for (size_t i = 0; i < n; i++)
		list[i].done(err, list[i].m, list[i].arg);
	free(list);
}

static void clear_marks(struct commit *c)
{
	for (size_t i = 0; i < c->nattempts; i++) {
		free((char *)c->attempts[i].error);
		free((char *)c->attempts[i].fault);
	}
	c->nattempts = 0;
	c->ndelivered = 0;
}

static int run(struct commit *c)
{
	c->scheduled = false;
	size_t n = c->nmsgs;
	if (n == 0 && c->ndelivered == 0 && c->nattempts == 0)
		return 0;
	grow((void **)&c->scratch, &c->capscratch, n, sizeof(struct store_new));
	for (size_t i = 0; i < n; i++)
		c->scratch[i] = *c->msgs[i].m;
	struct store_batch b = {
		.msgs = c->scratch, .nmsgs = n,
		.delivered = c->delivered, .ndelivered = c->ndelivered,
		.attempts = c->attempts, .nattempts = c->nattempts,
		.now = clock_wall_ms(),
	};
	int64_t t0 = clock_mono_us();
	int r = store_commit(c->store, &b);
	int64_t us = clock_mono_us() - t0;
	c->stats.last_ms = us / 1000;
	c->stats.total_ms += c->stats.last_ms;
	metrics_observe(METRIC_COMMIT_SECONDS, (double)us / 1e6, NULL);
	if (r == 0) {
		c->stats.commits++;
		c->stats.messages += n;
		clear_marks(c);
	} else {
		c->stats.failed++;
		metrics_add(METRIC_COMMIT_FAILURES, 1, NULL);
	}
	set_health(c, r == 0, r);
	complete_msgs(c, n, r);
	if (r < 0 && (c->ndelivered || c->nattempts)) {
		struct timeval tv = { RETRY_MS / 1000, (RETRY_MS % 1000) * 1000 };
		event_add(c->retry_ev, &tv);
	}
	return r;
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
	run(arg);
}

struct commit *commit_new(struct event_base *base, struct store *store)
{
	struct commit *c = xcalloc(1, sizeof(*c));
	c->store = store;
	c->healthy = true;
	c->run_ev = event_new(base, -1, 0, on_run, c);
	c->retry_ev = event_new(base, -1, 0, on_run, c);
	return c;
}

void commit_free(struct commit *c)
{
	if (!c)
		return;
	run(c);
	/* Anything still pending failed to commit; its sources keep the input. */
	clear_marks(c);
	event_free(c->run_ev);
	event_free(c->retry_ev);
	free(c->msgs);
	free(c->delivered);
	free(c->attempts);
	free(c->scratch);
	free(c);
}

void commit_add(struct commit *c, struct store_new *m, commit_done_fn done, void *arg)
{
	grow((void **)&c->msgs, &c->capmsgs, c->nmsgs + 1, sizeof(struct pending_msg));
	c->msgs[c->nmsgs++] = (struct pending_msg){ m, done, arg };
	schedule(c);
}

void commit_add_delivered(struct commit *c, int64_t id)
{
	grow((void **)&c->delivered, &c->capdelivered, c->ndelivered + 1, sizeof(int64_t));
	c->delivered[c->ndelivered++] = id;
	schedule(c);
}

void commit_add_failure(struct commit *c, int64_t id, const char *fault, const char *error)
{
	grow((void **)&c->attempts, &c->capattempts, c->nattempts + 1,
	     sizeof(struct store_attempt));
	c->attempts[c->nattempts++] = (struct store_attempt){ id, xstrdup(error ? error : ""),
							      xstrdup_or_null(fault), false };
	schedule(c);
}

void commit_add_refused(struct commit *c, int64_t id, const char *reason)
{
	grow((void **)&c->attempts, &c->capattempts, c->nattempts + 1,
	     sizeof(struct store_attempt));
	c->attempts[c->nattempts++] = (struct store_attempt){ id, xstrdup(reason ? reason : ""),
							      NULL, true };
	schedule(c);
}

void commit_add_attempt(struct commit *c, int64_t id, const char *error)
{
	commit_add_failure(c, id, NULL, error);
}

int commit_flush(struct commit *c)
{
	return run(c);
}

bool commit_healthy(const struct commit *c)
{
	return c->healthy;
}

const char *commit_last_error(const struct commit *c)
{
	return c->last_error;
}

void commit_on_health(struct commit *c, void (*fn)(bool healthy, void *arg), void *arg)
{
	c->health_fn = fn;
	c->health_arg = arg;
}

void commit_stats(const struct commit *c, struct commit_stats *out)
{
	*out = c->stats;
}

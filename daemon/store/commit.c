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
 *
 * A commit runs through store_commit_async(): with sqlite it completes
 * inside the call, as it always did; with a server backend it completes
 * later, and at most one commit is in flight. What is added meanwhile waits
 * for the next one, which starts when the flight lands: the slower the
 * server, the larger the batches. The flight owns copies of everything it
 * commits; on failure its marks go back in front of the pending ones, so
 * marks keep their order, and its messages are failed back to their
 * sources, together with everything added while it flew (it came later
 * from the same sources, and must not commit before the failed ones are
 * offered again). A batch that lost a race with another writer (-EBUSY: a key, a
 * transmission id or an ingest token recorded first by another daemon) is
 * retried at once, a few times, before anyone is told it failed.
 */
#include "store/commit.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <string.h>

#define RETRY_MS 2000
#define RACE_RETRIES 3     /* -EBUSY from a race with another writer: retried at once */
#define FLUSH_WAIT_MS 5000 /* commit_flush waits this long for a flight to land */

struct pending_msg {
	struct store_new *m;
	commit_done_fn done;
	void *arg;
};

/* Marks: ids with their fences (lease names owned), attempts with their
 * error strings and fence lease names owned. */
struct marks {
	int64_t *delivered;
	struct store_fence *dfences;
	size_t ndelivered, capdelivered;
	struct store_attempt *attempts;
	size_t nattempts, capattempts;
};

/* A commit on its way: everything it commits, owned. */
struct flight {
	struct pending_msg *msgs;
	size_t nmsgs;
	struct store_new *scratch; /* contiguous copies handed to the store */
	struct marks marks;
	struct store_batch b;
	int64_t t0;                /* mono us it started */
	int races;                 /* -EBUSY retries so far */
	uint64_t seq;              /* c->started when it started */
};

struct commit {
	struct store *store;
	struct event *run_ev, *retry_ev;
	bool scheduled;
	bool healthy;
	int last_result;
	int races;                 /* of the batch now pending (a retried one) */
	char last_error[256];
	void (*health_fn)(bool healthy, void *arg);
	void *health_arg;

	struct pending_msg *msgs;
	size_t nmsgs, capmsgs;
	struct marks marks;
	struct flight *flight;     /* the commit in flight, or NULL */
	uint64_t started;          /* flights started: the seq of the latest */
	uint64_t done_seq;         /* seq of the latest flight that committed */
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

static void set_health(struct commit *c, bool healthy, int err, const char *why)
{
	if (!healthy)
		snprintf(c->last_error, sizeof(c->last_error), "%s", why);
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

static void marks_free(struct marks *m)
{
	for (size_t i = 0; i < m->ndelivered; i++)
		free((char *)m->dfences[i].lease);
	for (size_t i = 0; i < m->nattempts; i++) {
		free((char *)m->attempts[i].error);
		free((char *)m->attempts[i].fault);
		free((char *)m->attempts[i].fence.lease);
	}
	free(m->delivered);
	free(m->dfences);
	free(m->attempts);
	*m = (struct marks){ 0 };
}

static bool marks_empty(const struct marks *m)
{
	return m->ndelivered == 0 && m->nattempts == 0;
}

/* memcpy of n items, none when n is 0 (src may then be NULL: an empty
 * array never allocated, which memcpy may not be given). */
static void copy_in(void *dst, const void *src, size_t n, size_t size)
{
	if (n)
		memcpy(dst, src, n * size);
}

/* Puts the marks of a failed flight (back) in front of those added since
 * (pending); back is emptied. */
static void marks_requeue(struct marks *pending, struct marks *back)
{
	size_t nd = back->ndelivered + pending->ndelivered;
	size_t na = back->nattempts + pending->nattempts;
	struct marks all = {
		.delivered = xmalloc((nd ? nd : 1) * sizeof(int64_t)),
		.dfences = xmalloc((nd ? nd : 1) * sizeof(struct store_fence)),
		.ndelivered = nd, .capdelivered = nd ? nd : 1,
		.attempts = xmalloc((na ? na : 1) * sizeof(struct store_attempt)),
		.nattempts = na, .capattempts = na ? na : 1,
	};
	copy_in(all.delivered, back->delivered, back->ndelivered, sizeof(int64_t));
	copy_in(all.delivered + back->ndelivered, pending->delivered, pending->ndelivered,
		sizeof(int64_t));
	copy_in(all.dfences, back->dfences, back->ndelivered, sizeof(struct store_fence));
	copy_in(all.dfences + back->ndelivered, pending->dfences, pending->ndelivered,
		sizeof(struct store_fence));
	copy_in(all.attempts, back->attempts, back->nattempts, sizeof(struct store_attempt));
	copy_in(all.attempts + back->nattempts, pending->attempts, pending->nattempts,
		sizeof(struct store_attempt));
	free(pending->delivered);
	free(pending->dfences);
	free(pending->attempts);
	free(back->delivered);
	free(back->dfences);
	free(back->attempts);
	*pending = all;
	*back = (struct marks){ 0 };
}

/* Puts the messages of a flight back in front of those added since. */
static void msgs_requeue(struct commit *c, struct flight *f)
{
	size_t n = f->nmsgs + c->nmsgs;
	struct pending_msg *all = xmalloc((n ? n : 1) * sizeof(*all));
	copy_in(all, f->msgs, f->nmsgs, sizeof(*all));
	copy_in(all + f->nmsgs, c->msgs, c->nmsgs, sizeof(*all));
	free(c->msgs);
	free(f->msgs);
	f->msgs = NULL;
	c->msgs = all;
	c->nmsgs = c->capmsgs = n;
}

/* Completes the new messages of a finished commit (err 0 = committed). */
static void complete_msgs(struct flight *f, int err)
{
	/* Every outcome is copied before any completion runs: a completion may
	 * queue new work (for the next flight). */
	for (size_t i = 0; err == 0 && i < f->nmsgs; i++) {
		f->msgs[i].m->outcome = f->scratch[i].outcome;
		f->msgs[i].m->id = f->scratch[i].id;
		memcpy(f->msgs[i].m->why, f->scratch[i].why, sizeof(f->msgs[i].m->why));
		f->msgs[i].m->acked = f->scratch[i].acked;
		f->msgs[i].m->nacked = f->scratch[i].nacked;
		f->msgs[i].m->nforeign = f->scratch[i].nforeign;
		f->msgs[i].m->ack_id = f->scratch[i].ack_id;
		f->msgs[i].m->replay = f->scratch[i].replay;
	}
	for (size_t i = 0; i < f->nmsgs; i++)
		f->msgs[i].done(err, f->msgs[i].m, f->msgs[i].arg);
}

static void flight_free(struct flight *f)
{
	marks_free(&f->marks);
	free(f->msgs);
	free(f->scratch);
	free(f);
}

static void retry_later(struct commit *c)
{
	struct timeval tv = { RETRY_MS / 1000, (RETRY_MS % 1000) * 1000 };
	event_add(c->retry_ev, &tv);
}

static void landed(int r, const char *error, void *arg)
{
	struct commit *c = arg;
	struct flight *f = c->flight;
	c->flight = NULL;
	int64_t us = clock_mono_us() - f->t0;
	c->stats.last_ms = us / 1000;
	c->stats.total_ms += c->stats.last_ms;
	metrics_observe(METRIC_COMMIT_SECONDS, (double)us / 1e6, NULL);
	if (r == -EBUSY && store_async(c->store) && f->races < RACE_RETRIES) {
		/* another daemon recorded a key first: the retry sees it */
		msgs_requeue(c, f);
		marks_requeue(&c->marks, &f->marks);
		c->races = f->races + 1;
		flight_free(f);
		schedule(c);
		return;
	}
	c->last_result = r;
	if (r == 0) {
		c->done_seq = f->seq;
		c->stats.commits++;
		c->stats.messages += f->nmsgs;
	} else {
		c->stats.failed++;
		metrics_add(METRIC_COMMIT_FAILURES, 1, NULL);
		marks_requeue(&c->marks, &f->marks);
	}
	set_health(c, r == 0, r, r == 0 ? "" : error);
	/* What was added while it flew came later from its sources: it fails
	 * with it, or it would commit before the failed ones come back (their
	 * sources offer them again, in order). Taken before any completion
	 * runs: what the completions add belongs to the next commit. */
	struct pending_msg *later = NULL;
	size_t nlater = 0;
	if (r < 0) {
		later = TAKE_PTR(c->msgs);
		nlater = c->nmsgs;
		c->nmsgs = c->capmsgs = 0;
	}
	complete_msgs(f, r);
	flight_free(f);
	for (size_t i = 0; i < nlater; i++)
		later[i].done(r, later[i].m, later[i].arg);
	free(later);
	if (r < 0 && (!marks_empty(&c->marks) || store_async(c->store)))
		retry_later(c); /* marks wait; a server is asked again */
	else if (r == 0 && (c->nmsgs || !marks_empty(&c->marks)))
		schedule(c); /* added while this one was in flight */
}

static void run(struct commit *c)
{
	c->scheduled = false;
	if (c->flight)
		return; /* its landing starts the next one */
	/* Nothing to write: while failing, an empty commit asks the store
	 * whether it works again (a server backend checks its connection), so
	 * deliveries held back by the failure resume without new input. */
	if (c->nmsgs == 0 && marks_empty(&c->marks) && (c->healthy || !store_async(c->store)))
		return;
	struct flight *f = xcalloc(1, sizeof(*f));
	f->msgs = c->msgs;
	f->nmsgs = c->nmsgs;
	f->marks = c->marks;
	f->races = c->races;
	c->msgs = NULL;
	c->nmsgs = c->capmsgs = 0;
	c->marks = (struct marks){ 0 };
	c->races = 0;
	f->scratch = xmalloc((f->nmsgs ? f->nmsgs : 1) * sizeof(struct store_new));
	for (size_t i = 0; i < f->nmsgs; i++)
		f->scratch[i] = *f->msgs[i].m;
	f->b = (struct store_batch){
		.msgs = f->scratch, .nmsgs = f->nmsgs,
		.delivered = f->marks.delivered, .delivered_fences = f->marks.dfences,
		.ndelivered = f->marks.ndelivered,
		.attempts = f->marks.attempts, .nattempts = f->marks.nattempts,
		.now = clock_wall_ms(),
	};
	f->t0 = clock_mono_us();
	f->seq = ++c->started;
	c->flight = f;
	store_commit_async(c->store, &f->b, landed, c);
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
	commit_flush(c);
	if (c->flight) {
		/* Stuck on a dead connection: its completion will never be
		 * delivered (the store abandons its lane); its sources keep
		 * their input. */
		c->flight = NULL;
	}
	/* Anything still pending failed to commit; its sources keep the input. */
	marks_free(&c->marks);
	event_free(c->run_ev);
	event_free(c->retry_ev);
	free(c->msgs);
	free(c);
}

void commit_add(struct commit *c, struct store_new *m, commit_done_fn done, void *arg)
{
	grow((void **)&c->msgs, &c->capmsgs, c->nmsgs + 1, sizeof(struct pending_msg));
	c->msgs[c->nmsgs++] = (struct pending_msg){ m, done, arg };
	schedule(c);
}

static struct store_fence fence_dup(const struct store_fence *f)
{
	if (!f || !f->lease)
		return (struct store_fence){ 0 };
	return (struct store_fence){ xstrdup(f->lease), f->epoch };
}

void commit_add_delivered_fenced(struct commit *c, int64_t id, const struct store_fence *f)
{
	struct marks *m = &c->marks;
	size_t cap = m->capdelivered;
	grow((void **)&m->delivered, &m->capdelivered, m->ndelivered + 1, sizeof(int64_t));
	if (m->capdelivered != cap || !m->dfences)
		m->dfences = xrealloc(m->dfences, m->capdelivered * sizeof(struct store_fence));
	m->dfences[m->ndelivered] = fence_dup(f);
	m->delivered[m->ndelivered++] = id;
	schedule(c);
}

void commit_add_delivered(struct commit *c, int64_t id)
{
	commit_add_delivered_fenced(c, id, NULL);
}

static void add_attempt(struct commit *c, int64_t id, const char *fault, const char *error,
			bool refused, const struct store_fence *f)
{
	struct marks *m = &c->marks;
	grow((void **)&m->attempts, &m->capattempts, m->nattempts + 1,
	     sizeof(struct store_attempt));
	m->attempts[m->nattempts++] = (struct store_attempt){
		.id = id, .error = xstrdup(error ? error : ""), .fault = xstrdup_or_null(fault),
		.refused = refused, .fence = fence_dup(f),
	};
	schedule(c);
}

void commit_add_attempt(struct commit *c, int64_t id, const char *error)
{
	add_attempt(c, id, NULL, error, false, NULL);
}

void commit_add_failure(struct commit *c, int64_t id, const char *fault, const char *error)
{
	add_attempt(c, id, fault, error, false, NULL);
}

void commit_add_refused(struct commit *c, int64_t id, const char *reason)
{
	add_attempt(c, id, NULL, reason, true, NULL);
}

void commit_add_attempt_fenced(struct commit *c, int64_t id, const char *fault,
			       const char *error, bool refused, const struct store_fence *f)
{
	add_attempt(c, id, fault, error, refused, f);
}

void commit_kick(struct commit *c)
{
	run(c);
}

bool commit_idle(const struct commit *c)
{
	return !c->flight && c->nmsgs == 0;
}

uint64_t commit_next_seq(const struct commit *c)
{
	return c->started + 1;
}

uint64_t commit_done_seq(const struct commit *c)
{
	return c->done_seq;
}

int commit_flush(struct commit *c)
{
	run(c);
	if (c->flight && store_drain(c->store, FLUSH_WAIT_MS) < 0)
		return -ETIMEDOUT;
	if (!c->flight && (c->nmsgs || !marks_empty(&c->marks)) && c->last_result == 0)
		run(c); /* added by the completions of the one that landed */
	if (c->flight && store_drain(c->store, FLUSH_WAIT_MS) < 0)
		return -ETIMEDOUT;
	return c->last_result;
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

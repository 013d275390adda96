/*
 * deliver.c - the per-endpoint delivery scheduler.
 *
 * State machine (event -> action, next state):
 *
 *   state      | event                     | action                      | next
 *   -----------+---------------------------+-----------------------------+-----------
 *   IDLE       | kick, window not empty    | hand a batch to the         | BUSY
 *              |                           | transport, arm the deadline |
 *   IDLE       | kick, rate bucket empty   | arm rate timer              | RATE_WAIT
 *   BUSY       | batch fully confirmed     | mark delivered, kick        | IDLE
 *   BUSY       | batch failed at message k | mark 0..k-1, record attempt,| BACKOFF
 *              |                           | arm backoff timer           |
 *   BUSY       | deadline, transport can   | cancel: it completes soon   | BUSY
 *              | cancel                    | with a timeout fault        |
 *   BUSY       | deadline, it cannot (a    | count a failure now (health)| OVERDUE
 *              | write stuck in the kernel)|                             |
 *   OVERDUE    | late success              | mark delivered, kick now    | IDLE
 *   OVERDUE    | late failure              | arm backoff timer           | BACKOFF
 *   BACKOFF    | timer / retry_now         | kick                        | IDLE
 *   RATE_WAIT  | timer                     | kick                        | IDLE
 *   any        | hold                      | (no new batches)            | HELD
 *   HELD       | release                   | kick                        | IDLE
 *
 * A transport's deliver() and probe() return at once and complete later
 * through a callback on the loop; where the blocking work runs is the
 * transport's business (the spool on its endpoint's lane, a network
 * transport on the loop). Each operation has a deadline (delivery_timeout).
 *
 * Refill. With one writer (sqlite) ids come in commit order, and the
 * window is topped up with the ids above the highest it ever held
 * (last_id); messages committed here join it directly. With several
 * daemons writing one database (postgresql) a lower id can commit after a
 * higher one, so a cursor over ids would skip it: the window is refilled by
 * state, "queued and not already held", where held means in the window or
 * delivered here with its mark not yet committed (pending marks, by the
 * group commit's sequence numbers), and every message reaches the window
 * through the store; a poll picks up what other daemons accept. The read
 * is asynchronous (store_run on the store's read lane), one at a time.
 *
 * Leases (several daemons). An endpoint delivers only while this daemon
 * holds its lease: deliver_activate() starts it from the head of the
 * store's queue with the epoch as fencing token (every mark carries it, so
 * a mark made after a takeover changes nothing) and the backoff the last
 * holder left; no batch starts past the lease's trust deadline;
 * deliver_deactivate() stops it, letting a batch in flight finish under
 * the old epoch. Backoff changes are reported (env.on_backoff) for the
 * lease row.
 *
 * Invariants: at most one batch or probe per endpoint is with the
 * transport, also past its deadline: an endpoint stuck in the kernel never
 * gets a second blocking operation, so a dead share cannot pile up threads;
 * the window holds the endpoint's oldest queued messages in id order (the
 * batch in flight is its head) - by state, the oldest by id among those
 * committed when it was read; a message is in the window at most once.
 */
#include "deliver/deliver.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "codecs/codec.h"
#include "metrics/metrics.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

struct qmsg {
	struct qmsg *next;
	int64_t id;
	int64_t received_at;
	uint8_t *body;
	size_t size;
	char ext[8];
	char type[CODEC_TYPE_MAX];
	int attempts;
};

#define POLL_MS 500 /* by state: how often the store is asked for others' messages */

struct job {
	struct deliver_ep *ep;
	struct store_fence fence; /* the lease at submission (lease owned); marks carry it */
	const struct transport_ops *ops;
	struct transport *t;
	bool probe;
	bool overdue;            /* past its deadline; the failure was counted */
	int64_t overdue_ms;      /* how long past the start it has been counted */
	struct out_msg *msgs;
	size_t n;
	struct deliver_result res;
};

struct deliver_ep {
	char *name;
	struct deliver_env env;
	struct deliver_params p;
	const struct transport_ops *ops;
	struct transport *t;
	const struct transport_ops *old_ops; /* retired while a batch used it */
	struct transport *old_t;

	struct qmsg *head, *tail;
	size_t wcount, wbytes;
	int64_t last_id;        /* highest id ever placed in the window */
	bool more_in_store;     /* queued messages beyond the window */
	int64_t queued;
	int64_t queued_bytes;

	enum deliver_state state;
	bool busy, held, freeing;
	struct event *kick_ev, *timer_ev, *deadline_ev;
	struct job *job;        /* the operation with the transport, or NULL */
	int failures;
	int64_t next_attempt_ms, first_failure_at, last_success_at;
	enum transport_fault last_fault;
	char last_error[192];
	bool draining;
	double tokens;
	int64_t tokens_at;
	uint64_t delivered;

	bool by_state;          /* several writers: refill by state, not by id */
	bool active;            /* holds its lease (always, without leases) */
	struct store_fence fence; /* the lease held (name owned); lease NULL = none */
	int64_t trust_until;    /* mono ms: no batch starts after it (fenced only) */
	_Atomic int64_t send_until; /* the same for messages of a batch under way (the
				     * transport reads it off the loop); 0 once lost */
	bool trust_logged;
	struct deliver_lease next; /* an activation waiting for the batch in flight */
	char *next_name;
	bool has_next;
	bool fetching;          /* a refill is with the store */
	uint64_t gen;           /* bumped whenever the window is reset */
	struct pmark { int64_t id; uint64_t seq; } *pending; /* delivered, mark not durable */
	size_t npending, cappending;
	struct event *poll_ev;
};

static void start_round(struct deliver_ep *ep);
static void lease_gone(struct deliver_ep *ep);
static void activate_now(struct deliver_ep *ep);
static void ep_destroy(struct deliver_ep *ep);

const char *deliver_state_name(enum deliver_state s)
{
	static const char *const names[] = { "idle", "delivering", "retrying", "rate-limited",
					     "held", "overdue" };
	return s < ARRAY_SIZE(names) ? names[s] : "?";
}

static void on_deadline(evutil_socket_t fd, short what, void *arg);

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	start_round(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_ep *ep = arg;
	ep->next_attempt_ms = 0;
	if (ep->state == DELIVER_BACKOFF || ep->state == DELIVER_RATE_WAIT)
		ep->state = DELIVER_IDLE;
	start_round(ep);
}

/* By state: asks the store again for messages others committed. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_ep *ep = arg;
	if (!ep->active)
		return;
	ep->more_in_store = true;
	deliver_kick(ep);
}

struct deliver_ep *deliver_ep_new(const char *name, const struct deliver_env *env,
				  const struct deliver_params *params)
{
	struct deliver_ep *ep = xcalloc(1, sizeof(*ep));
	ep->name = xstrdup(name);
	ep->env = *env;
	ep->p = *params;
	ep->kick_ev = event_new(env->base, -1, 0, on_kick, ep);
	ep->timer_ev = event_new(env->base, -1, 0, on_timer, ep);
	ep->deadline_ev = event_new(env->base, -1, 0, on_deadline, ep);
	ep->poll_ev = event_new(env->base, -1, EV_PERSIST, on_poll, ep);
	ep->tokens_at = clock_mono_ms();
	ep->by_state = !store_ids_in_commit_order(env->store);
	ep->active = !env->leased;
	return ep;
}

const char *deliver_ep_name(const struct deliver_ep *ep)
{
	return ep->name;
}

/* Frees a list of messages with their bodies; *head becomes NULL. */
static void qlist_free(struct qmsg **head)
{
	while (*head) {
		struct qmsg *q = *head;
		*head = q->next;
		free(q->body);
		free(q);
	}
}

static void window_clear(struct deliver_ep *ep)
{
	qlist_free(&ep->head);
	ep->tail = NULL;
	ep->wcount = ep->wbytes = 0;
}

static void destroy_transport(const struct transport_ops *ops, struct transport *t)
{
	if (t) {
		ops->stop(t);
		ops->destroy(t);
	}
}

static void ep_destroy(struct deliver_ep *ep)
{
	destroy_transport(ep->ops, ep->t);
	destroy_transport(ep->old_ops, ep->old_t);
	window_clear(ep);
	event_free(ep->kick_ev);
	event_free(ep->timer_ev);
	event_free(ep->deadline_ev);
	event_free(ep->poll_ev);
	free((char *)ep->fence.lease);
	free(ep->next_name);
	free(ep->pending);
	free(ep->name);
	free(ep);
}

void deliver_ep_free(struct deliver_ep *ep)
{
	if (!ep)
		return;
	event_del(ep->kick_ev);
	event_del(ep->timer_ev);
	event_del(ep->poll_ev);
	if (ep->t)
		ep->ops->stop(ep->t);
	if (ep->busy || ep->fetching)
		ep->freeing = true; /* freed when the batch or the read completes */
	else
		ep_destroy(ep);
}

void deliver_set_transport(struct deliver_ep *ep, const struct transport_ops *ops,
			   struct transport *t)
{
	if (ep->busy && !ep->old_t) {
		/* The job in flight uses the current one: retire it after. */
		if (ep->t)
			ep->ops->stop(ep->t);
		ep->old_ops = ep->ops;
		ep->old_t = ep->t;
	} else {
		/* Idle, or the job uses old_t: no batch has used the current one. */
		destroy_transport(ep->ops, ep->t);
	}
	ep->ops = ops;
	ep->t = t;
	deliver_kick(ep);
}

struct transport *deliver_transport(struct deliver_ep *ep)
{
	return ep->t;
}

const struct transport_ops *deliver_transport_ops(const struct deliver_ep *ep)
{
	return ep->t ? ep->ops : NULL;
}

void deliver_set_params(struct deliver_ep *ep, const struct deliver_params *params)
{
	ep->p = *params;
	deliver_kick(ep);
}

static void window_append(struct deliver_ep *ep, int64_t id, uint8_t *body, size_t size,
			  const char *ext, const char *type, int64_t received_at, int attempts)
{
	struct qmsg *q = xcalloc(1, sizeof(*q));
	q->id = id;
	q->body = body;
	q->size = size;
	q->received_at = received_at;
	q->attempts = attempts;
	str_copy(q->ext, ext, sizeof(q->ext));
	str_copy(q->type, type ? type : "", sizeof(q->type));
	if (ep->tail)
		ep->tail->next = q;
	else
		ep->head = q;
	ep->tail = q;
	ep->wcount++;
	ep->wbytes += size;
	ep->last_id = id;
}

static bool window_full(const struct deliver_ep *ep)
{
	return ep->wcount >= ep->p.window_msgs ||
	       (ep->wcount > 0 && ep->wbytes >= ep->p.window_bytes);
}

/* ---- refill -------------------------------------------------------------------- */

/* A read of the queue, done on the store's read lane: it touches only its
 * own fields, and the window takes its rows on the loop. */
struct fetch {
	struct deliver_ep *ep;
	uint64_t gen;
	char *endpoint;
	int64_t after_id;
	int64_t *except;
	size_t nexcept;
	size_t want;
	size_t count, bytes;          /* the window's, then with the rows taken */
	size_t window_msgs, window_bytes;
	struct qmsg *head, *tail;
	size_t n;
	bool full;
	int r;
	char error[256];
};

static int fetch_one(const struct store_msg *m, void *arg)
{
	struct fetch *f = arg;
	if (f->count >= f->window_msgs || (f->count > 0 && f->bytes >= f->window_bytes)) {
		f->full = true;
		return 1; /* window_bytes reached: the rest stays in the store */
	}
	struct qmsg *q = xcalloc(1, sizeof(*q));
	q->id = m->id;
	q->body = xmalloc(m->size + 1);
	if (m->body)
		memcpy(q->body, m->body, m->size);
	q->size = m->size;
	q->received_at = m->received_at;
	q->attempts = m->attempts;
	str_copy(q->ext, m->ext ? m->ext : "", sizeof(q->ext));
	str_copy(q->type, m->type ? m->type : "", sizeof(q->type));
	if (f->tail)
		f->tail->next = q;
	else
		f->head = q;
	f->tail = q;
	f->n++;
	f->count++;
	f->bytes += m->size;
	return 0;
}

static void fetch_work(struct store *view, void *arg)
{
	struct fetch *f = arg;
	f->r = store_fetch_queued(view, f->endpoint, f->after_id, f->except, f->nexcept, f->want,
				  fetch_one, f);
	if (f->r < 0)
		str_copy(f->error, store_last_error(view), sizeof(f->error));
}

static void fetch_free(struct fetch *f)
{
	qlist_free(&f->head);
	free(f->endpoint);
	free(f->except);
	free(f);
}

static void window_take(struct deliver_ep *ep, struct fetch *f)
{
	while (f->head) {
		struct qmsg *q = f->head;
		f->head = q->next;
		q->next = NULL;
		if (ep->tail)
			ep->tail->next = q;
		else
			ep->head = q;
		ep->tail = q;
		ep->wcount++;
		ep->wbytes += q->size;
		if (q->id > ep->last_id)
			ep->last_id = q->id;
	}
	f->tail = NULL;
}

static void fetch_done(void *arg)
{
	struct fetch *f = arg;
	struct deliver_ep *ep = f->ep;
	ep->fetching = false;
	if (ep->freeing) {
		fetch_free(f);
		if (!ep->busy)
			ep_destroy(ep);
		return;
	}
	if (f->gen != ep->gen) { /* the window was reset meanwhile: read again */
		fetch_free(f);
		deliver_kick(ep);
		return;
	}
	if (f->r < 0) {
		log_err("event=queue-read-failed endpoint=%s error=\"%s\"", ep->name, f->error);
	} else {
		bool short_read = f->n < f->want && !f->full;
		window_take(ep, f);
		if (short_read)
			ep->more_in_store = false;
	}
	fetch_free(f);
	deliver_kick(ep);
}

/* Drops pending marks the group commit has made durable. */
static void pending_prune(struct deliver_ep *ep)
{
	uint64_t done = commit_done_seq(ep->env.commit);
	size_t j = 0;
	for (size_t i = 0; i < ep->npending; i++)
		if (ep->pending[i].seq > done)
			ep->pending[j++] = ep->pending[i];
	ep->npending = j;
}

static void pending_add(struct deliver_ep *ep, int64_t id)
{
	if (!ep->by_state)
		return;
	if (ep->npending == ep->cappending) {
		ep->cappending = ep->cappending ? ep->cappending * 2 : 64;
		ep->pending = xrealloc(ep->pending, ep->cappending * sizeof(*ep->pending));
	}
	ep->pending[ep->npending++] = (struct pmark){ id, commit_next_seq(ep->env.commit) };
}

/* The ids a read by state must leave out: the window's and the pending marks'. */
static void fetch_except(struct deliver_ep *ep, struct fetch *f)
{
	pending_prune(ep);
	f->except = xmalloc((ep->wcount + ep->npending + 1) * sizeof(int64_t));
	for (struct qmsg *q = ep->head; q; q = q->next)
		f->except[f->nexcept++] = q->id;
	for (size_t i = 0; i < ep->npending; i++)
		f->except[f->nexcept++] = ep->pending[i].id;
}

/* Tops the window up from the store when more is queued there: at once
 * with sqlite, later (fetch_done) with a server. */
static void refill(struct deliver_ep *ep)
{
	if (ep->fetching || !ep->more_in_store || ep->wcount * 2 > ep->p.window_msgs)
		return;
	struct fetch *f = xcalloc(1, sizeof(*f));
	*f = (struct fetch){
		.ep = ep, .gen = ep->gen, .endpoint = xstrdup(ep->name),
		.after_id = ep->by_state ? 0 : ep->last_id,
		.want = ep->p.window_msgs - ep->wcount,
		.count = ep->wcount, .bytes = ep->wbytes,
		.window_msgs = ep->p.window_msgs, .window_bytes = ep->p.window_bytes,
	};
	if (ep->by_state)
		fetch_except(ep, f);
	ep->fetching = true;
	store_run(ep->env.store, STORE_LANE_READ, fetch_work, fetch_done, f);
}

static int depth_one(const struct store_depth *d, void *arg)
{
	struct deliver_ep *ep = arg;
	if (strcmp(d->endpoint, ep->name) == 0)
		ep->queued = d->queued, ep->queued_bytes = d->bytes;
	return 0;
}

int deliver_load(struct deliver_ep *ep)
{
	ep->gen++;
	window_clear(ep);
	ep->last_id = 0;
	if (ep->by_state) { /* the depth comes from deliver_set_depth() */
		ep->more_in_store = true;
		deliver_kick(ep);
		return 0;
	}
	ep->queued = 0;
	ep->queued_bytes = 0;
	int r = store_depths(ep->env.store, depth_one, ep);
	if (r < 0)
		return r;
	ep->more_in_store = ep->queued > 0;
	refill(ep);
	deliver_kick(ep);
	return 0;
}

void deliver_set_depth(struct deliver_ep *ep, int64_t queued, int64_t bytes)
{
	ep->queued = queued;
	ep->queued_bytes = bytes;
}

void deliver_enqueue(struct deliver_ep *ep, int64_t id, uint8_t *body, size_t size,
		     const char *ext, const char *type, int64_t received_at)
{
	ep->queued++;
	ep->queued_bytes += (int64_t)size;
	if (ep->by_state || !ep->active) {
		/* Through the store: by state, the window holds only what a read
		 * found (so no message enters it twice). */
		ep->more_in_store = true;
		free(body);
	} else if (id <= ep->last_id || ep->more_in_store || window_full(ep)) {
		/* Already read from the store, or the window is full: the store
		 * holds it and refill() will bring it in order. */
		if (id > ep->last_id)
			ep->more_in_store = true;
		free(body);
	} else {
		window_append(ep, id, body, size, ext, type, received_at, 0);
	}
	deliver_kick(ep);
}

void deliver_kick(struct deliver_ep *ep)
{
	if (!ep->freeing)
		event_active(ep->kick_ev, 0, 0);
}

void deliver_hold(struct deliver_ep *ep, bool hold)
{
	ep->held = hold;
	if (!hold && ep->state == DELIVER_HELD)
		ep->state = DELIVER_IDLE;
	deliver_kick(ep);
}

void deliver_retry_now(struct deliver_ep *ep)
{
	if (ep->state == DELIVER_BACKOFF) {
		event_del(ep->timer_ev);
		ep->next_attempt_ms = 0;
		ep->state = DELIVER_IDLE;
	}
	deliver_kick(ep);
}

bool deliver_busy(const struct deliver_ep *ep)
{
	return ep->busy;
}

bool deliver_sending(const struct deliver_ep *ep, int64_t id)
{
	const struct job *j = ep->job;
	for (size_t i = 0; j && !j->probe && i < j->n; i++)
		if (j->msgs[i].id == id)
			return true;
	return false;
}

void deliver_forget(struct deliver_ep *ep, int64_t id, size_t size)
{
	assert(!deliver_sending(ep, id));
	struct qmsg **pp = &ep->head, *prev = NULL;
	for (; *pp && (*pp)->id != id; prev = *pp, pp = &(*pp)->next)
		;
	if (*pp) {
		struct qmsg *q = *pp;
		*pp = q->next;
		if (ep->tail == q)
			ep->tail = prev;
		ep->wcount--;
		ep->wbytes -= q->size;
		free(q->body);
		free(q);
	}
	if (ep->queued > 0)
		ep->queued--;
	ep->queued_bytes -= ep->queued_bytes >= (int64_t)size ? (int64_t)size : ep->queued_bytes;
	deliver_kick(ep);
}

void deliver_get_info(const struct deliver_ep *ep, struct deliver_info *info)
{
	*info = (struct deliver_info){
		.state = ep->state, .queued = ep->queued, .queued_bytes = ep->queued_bytes,
		.oldest_received_at = ep->head ? ep->head->received_at : 0,
		.failures = ep->failures, .next_attempt_ms = ep->next_attempt_ms,
		.first_failure_at = ep->first_failure_at, .last_success_at = ep->last_success_at,
		.last_fault = ep->last_fault, .last_error = ep->last_error,
		.delivered = ep->delivered, .draining = ep->draining,
		.active = ep->active, .epoch = ep->fence.lease ? ep->fence.epoch : 0,
	};
}

static void arm_timer(struct deliver_ep *ep, int64_t delay_ms)
{
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000 };
	ep->next_attempt_ms = clock_mono_ms() + delay_ms;
	event_add(ep->timer_ev, &tv);
}

static double random_unit(void)
{
	uint32_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)clock_mono_ms() * 2654435761u;
	return (double)r / 4294967296.0;
}

/* Capped exponential backoff with +-20% jitter, never above retry_max. */
static int64_t backoff_ms(const struct deliver_ep *ep)
{
	double d = (double)ep->p.retry_initial_ms;
	for (int i = 1; i < ep->failures && d < (double)ep->p.retry_max_ms; i++)
		d *= 2;
	if (d > (double)ep->p.retry_max_ms)
		d = (double)ep->p.retry_max_ms;
	d *= 0.8 + 0.4 * random_unit();
	if (d > (double)ep->p.retry_max_ms)
		d = (double)ep->p.retry_max_ms;
	return d < 100 ? 100 : (int64_t)d;
}

/* How many messages the drain rate allows now (SIZE_MAX when unlimited). */
static size_t rate_allowance(struct deliver_ep *ep)
{
	if (!ep->draining || ep->p.drain_rate <= 0)
		return SIZE_MAX;
	int64_t now = clock_mono_ms();
	double burst = ep->p.drain_rate < 1 ? 1 : ep->p.drain_rate;
	ep->tokens += (double)(now - ep->tokens_at) * ep->p.drain_rate / 1000.0;
	if (ep->tokens > burst)
		ep->tokens = burst;
	ep->tokens_at = now;
	return (size_t)floor(ep->tokens);
}

static void job_done(void *arg, const struct deliver_result *res);

/* Hands the job to the transport and arms its deadline. */
static void submit(struct deliver_ep *ep, struct job *j)
{
	j->ep = ep;
	if (ep->fence.lease)
		j->fence = (struct store_fence){ xstrdup(ep->fence.lease), ep->fence.epoch };
	j->ops = ep->ops;
	j->t = ep->t;
	ep->busy = true;
	ep->job = j;
	if (!j->probe) /* a probe leaves a backoff or hold as it is */
		ep->state = DELIVER_BUSY;
	int64_t ms = ep->p.delivery_timeout_ms > 0 ? ep->p.delivery_timeout_ms : 60000;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(ep->deadline_ev, &tv);
	if (j->probe)
		j->ops->probe(j->t, job_done, j);
	else
		j->ops->deliver(j->t, j->msgs, j->n, job_done, j);
}

static void start_batch(struct deliver_ep *ep, size_t n)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->msgs = xcalloc(n, sizeof(struct out_msg));
	struct qmsg *q = ep->head;
	for (size_t i = 0; i < n; i++, q = q->next)
		j->msgs[i] = (struct out_msg){ q->id, q->ext, q->body, q->size };
	j->n = n;
	if (ep->draining && ep->p.drain_rate > 0)
		ep->tokens -= (double)n;
	submit(ep, j);
}

bool deliver_probe(struct deliver_ep *ep)
{
	if (ep->busy || !ep->t || !ep->ops->probe || ep->freeing)
		return false;
	struct job *j = xcalloc(1, sizeof(*j));
	j->probe = true;
	submit(ep, j);
	return true;
}

/* A fenced endpoint starts no batch past its lease's trust deadline: the
 * lease may have expired on the server by then, and another node may have
 * taken over. */
static bool lease_trusted(struct deliver_ep *ep)
{
	if (!ep->fence.lease || clock_mono_ms() < ep->trust_until)
		return true;
	if (!ep->trust_logged)
		log_warn("event=lease-untrusted endpoint=%s epoch=%lld state=not-delivering",
			 ep->name, (long long)ep->fence.epoch);
	ep->trust_logged = true;
	return false;
}

static void start_round(struct deliver_ep *ep)
{
	if (ep->busy || ep->freeing || !ep->t || !ep->active)
		return;
	if (ep->held) {
		ep->state = DELIVER_HELD;
		return;
	}
	if (ep->state == DELIVER_BACKOFF || ep->state == DELIVER_RATE_WAIT)
		return; /* the timer restarts the round */
	ep->state = DELIVER_IDLE;
	if (ep->env.may_deliver && !ep->env.may_deliver(ep->env.ctx))
		return;
	refill(ep);
	if (!lease_trusted(ep))
		return;
	if (!ep->head) {
		if (ep->queued == 0)
			ep->draining = false;
		return;
	}
	size_t n = ep->wcount < ep->p.batch_max ? ep->wcount : ep->p.batch_max;
	size_t allow = rate_allowance(ep);
	if (allow == 0) {
		ep->state = DELIVER_RATE_WAIT;
		arm_timer(ep, (int64_t)ceil((1.0 - ep->tokens) * 1000.0 / ep->p.drain_rate));
		return;
	}
	start_batch(ep, n < allow ? n : allow);
}

static void pop_delivered(struct deliver_ep *ep, size_t n, int64_t now,
			  const struct store_fence *fence)
{
	for (size_t i = 0; i < n; i++) {
		struct qmsg *q = ep->head;
		ep->head = q->next;
		if (!ep->head)
			ep->tail = NULL;
		ep->wcount--;
		ep->wbytes -= q->size;
		ep->queued--;
		ep->queued_bytes -= (int64_t)q->size;
		ep->delivered++;
		commit_add_delivered_fenced(ep->env.commit, q->id, fence);
		pending_add(ep, q->id);
		log_info("event=delivered msg=%lld endpoint=%s attempt=%d latency_ms=%lld",
			 (long long)q->id, ep->name, q->attempts + 1,
			 (long long)(now - q->received_at));
		metrics_add(METRIC_DELIVERED, 1, METRIC_LABELS(ep->name, q->type));
		metrics_observe(METRIC_DELIVERY_LATENCY, (double)(now - q->received_at) / 1000.0,
				METRIC_LABELS(ep->name));
		free(q->body);
		free(q);
	}
}

/* Counts a failed attempt at the head message. */
static void count_failure(struct deliver_ep *ep, const struct deliver_result *res,
			  const struct store_fence *fence)
{
	struct qmsg *q = ep->head;
	ep->failures++;
	ep->last_fault = res->fault;
	str_copy(ep->last_error, res->error, sizeof(ep->last_error));
	if (ep->failures == 1)
		ep->first_failure_at = clock_wall_ms();
	ep->draining = true;
	ep->tokens = 0;
	ep->tokens_at = clock_mono_ms();
	q->attempts++;
	commit_add_attempt_fenced(ep->env.commit, q->id, fault_name(res->fault), res->error, false,
				  fence);
	metrics_add(METRIC_DELIVERY_FAILURES, 1, METRIC_LABELS(ep->name, fault_name(res->fault)));
}

#define RETRY_AFTER_MAX_MS (60 * 60 * 1000)

/* Waits before the next attempt (capped exponential backoff, or longer
 * when the receiver asked for it, up to an hour). */
static void back_off(struct deliver_ep *ep, const struct deliver_result *res)
{
	struct qmsg *q = ep->head;
	int64_t delay = backoff_ms(ep);
	if (res->retry_after_ms > delay)
		delay = res->retry_after_ms < RETRY_AFTER_MAX_MS ? res->retry_after_ms
								 : RETRY_AFTER_MAX_MS;
	log_warn("event=deferred msg=%lld endpoint=%s attempt=%d delay=%.1fs fault=%s "
		 "error=\"%s\"",
		 (long long)q->id, ep->name, q->attempts, (double)delay / 1000.0,
		 fault_name(res->fault), res->error);
	ep->state = DELIVER_BACKOFF;
	arm_timer(ep, delay);
	if (ep->env.on_backoff)
		ep->env.on_backoff(ep->env.ctx, ep, ep->failures, clock_wall_ms() + delay);
}

static void batch_failed(struct deliver_ep *ep, const struct deliver_result *res,
			 const struct store_fence *fence)
{
	count_failure(ep, res, fence);
	back_off(ep, res);
}

static void endpoint_succeeded(struct deliver_ep *ep)
{
	if (ep->failures > 0)
		log_notice("event=endpoint-recovered endpoint=%s failed_attempts=%d backlog=%lld",
			   ep->name, ep->failures, (long long)ep->queued);
	if (ep->failures > 0 && ep->env.on_backoff)
		ep->env.on_backoff(ep->env.ctx, ep, 0, 0);
	ep->failures = 0;
	ep->first_failure_at = 0;
	ep->last_fault = FAULT_NONE;
	ep->last_error[0] = '\0';
	ep->last_success_at = clock_wall_ms();
}

static void emit(struct deliver_ep *ep, bool ok, bool probe, const struct deliver_result *res)
{
	struct deliver_event ev = { ok, probe, res->fault, res->error, res->delivered };
	if (ep->env.on_event)
		ep->env.on_event(ep->env.ctx, ep, &ev);
}

/* A batch past its deadline failed as well: the failure was counted at the
 * deadline; back off from now. */
static void late_failure(struct deliver_ep *ep, const struct deliver_result *res)
{
	ep->last_fault = res->fault;
	str_copy(ep->last_error, res->error, sizeof(ep->last_error));
	back_off(ep, res);
}

/* The receiver answered that the head message is one it will not take
 * (HTTP 400/413/415/422): a dead letter with that reason; the endpoint is
 * well and its queue moves on. */
static void set_aside(struct deliver_ep *ep, const struct deliver_result *res,
		      const struct store_fence *fence)
{
	struct qmsg *q = ep->head;
	ep->head = q->next;
	if (!ep->head)
		ep->tail = NULL;
	ep->wcount--;
	ep->wbytes -= q->size;
	ep->queued--;
	ep->queued_bytes -= (int64_t)q->size;
	_cleanup_free_ char *why = xasprintf("refused by the receiver: %s", res->error);
	commit_add_attempt_fenced(ep->env.commit, q->id, NULL, why, true, fence);
	metrics_add(METRIC_REJECTED, 1, METRIC_LABELS(ep->name, q->type));
	pending_add(ep, q->id);
	log_warn("event=refused-by-receiver msg=%lld endpoint=%s error=\"%s\" state=dead-letter",
		 (long long)q->id, ep->name, res->error);
	free(q->body);
	free(q);
}

static void finish_batch(struct deliver_ep *ep, struct job *j)
{
	size_t done = j->res.delivered > j->n ? j->n : j->res.delivered;
	pop_delivered(ep, done, clock_wall_ms(), &j->fence);
	if (done < j->n && j->res.rejected) {
		set_aside(ep, &j->res, &j->fence);
		endpoint_succeeded(ep);
		emit(ep, true, false, &j->res);
		return;
	}
	/* A prefix with no fault: the transport stopped early by choice (its
	 * time budget, transport.h); the rest goes in the next batch. */
	bool ok = done == j->n || (done > 0 && j->res.fault == FAULT_NONE);
	if (ok && j->overdue)
		log_notice("event=delivery-returned endpoint=%s delivered=%zu", ep->name, done);
	if (ok)
		endpoint_succeeded(ep);
	else if (j->overdue)
		late_failure(ep, &j->res);
	else
		batch_failed(ep, &j->res, &j->fence);
	if (ok || !j->overdue) /* a late failure was reported at the deadline */
		emit(ep, ok, false, &j->res);
}

static void finish_probe(struct deliver_ep *ep, struct job *j)
{
	bool ok = j->res.fault == FAULT_NONE;
	if (!ok) {
		ep->last_fault = j->res.fault;
		str_copy(ep->last_error, j->res.error, sizeof(ep->last_error));
	}
	if (ok || !j->overdue)
		emit(ep, ok, true, &j->res);
}

/* The operation outlived delivery_timeout. A transport that can give up
 * (a network connection) is told to, and completes with a timeout; one
 * that cannot (a write stuck in the kernel) keeps the endpoint's one
 * operation, and the failure counts now, and again at every further
 * delivery_timeout it stays stuck: the endpoint turns SUSPECT, then DOWN
 * (the outage procedure runs as for any failure), and gets no new
 * operation until this one returns. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_ep *ep = arg;
	struct job *j = ep->job;
	if (!j)
		return;
	int64_t ms = ep->p.delivery_timeout_ms > 0 ? ep->p.delivery_timeout_ms : 60000;
	j->overdue_ms += ms;
	long long secs = (long long)(j->overdue_ms / 1000);
	if (!j->overdue)
		log_warn("event=delivery-overdue endpoint=%s operation=%s timeout_s=%lld msg=%lld",
			 ep->name, j->probe ? "probe" : "deliver", secs,
			 j->probe ? 0LL : (long long)j->msgs[0].id);
	if (j->ops->cancel) {
		j->ops->cancel(j->t);
		return;
	}
	struct deliver_result res = { .fault = FAULT_TIMEOUT };
	snprintf(res.error, sizeof(res.error), "no answer within %llds", secs);
	ep->last_fault = res.fault;
	str_copy(ep->last_error, res.error, sizeof(ep->last_error));
	if (!j->probe && !j->overdue)
		count_failure(ep, &res, &j->fence); /* one attempt per operation, however long */
	if (!j->probe)
		ep->state = DELIVER_OVERDUE; /* no retry while the operation still runs */
	j->overdue = true;
	emit(ep, false, j->probe, &res);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(ep->deadline_ev, &tv);
}

static void job_done(void *arg, const struct deliver_result *res)
{
	struct job *j = arg;
	struct deliver_ep *ep = j->ep;
	j->res = *res;
	event_del(ep->deadline_ev);
	ep->job = NULL;
	ep->busy = false;
	if (ep->state == DELIVER_BUSY || ep->state == DELIVER_OVERDUE)
		ep->state = DELIVER_IDLE;
	if (ep->old_t) {
		destroy_transport(ep->old_ops, ep->old_t);
		ep->old_t = NULL;
	}
	if (ep->freeing) {
		/* Record what the receiver confirmed before the endpoint goes. */
		if (!j->probe)
			pop_delivered(ep, j->res.delivered > j->n ? j->n : j->res.delivered,
				      clock_wall_ms(), &j->fence);
		if (!ep->fetching)
			ep_destroy(ep);
	} else if (!ep->active) {
		/* The lease went while it ran: what the receiver confirmed is
		 * marked under the old epoch (a no-op if another node holds it
		 * now); its failure, if any, is no news about the endpoint. */
		if (!j->probe)
			pop_delivered(ep, j->res.delivered > j->n ? j->n : j->res.delivered,
				      clock_wall_ms(), &j->fence);
		lease_gone(ep);
		if (ep->has_next)
			activate_now(ep);
	} else {
		if (j->probe)
			finish_probe(ep, j);
		else
			finish_batch(ep, j);
		if (ep->has_next)
			activate_now(ep);
		deliver_kick(ep);
	}
	free((char *)j->fence.lease);
	free(j->msgs);
	free(j);
}

/* ---- leases ---------------------------------------------------------------------- */

/* Forgets the window and every timer: another node may deliver now. */
static void lease_gone(struct deliver_ep *ep)
{
	ep->gen++;
	window_clear(ep);
	ep->npending = 0;
	ep->last_id = 0;
	event_del(ep->timer_ev);
	event_del(ep->poll_ev);
	ep->next_attempt_ms = 0;
	ep->state = DELIVER_IDLE;
	free((char *)ep->fence.lease);
	ep->fence = (struct store_fence){ 0 };
	atomic_store(&ep->send_until, 0);
}

static void activate_now(struct deliver_ep *ep)
{
	struct deliver_lease *l = &ep->next;
	ep->has_next = false;
	lease_gone(ep);
	ep->fence = (struct store_fence){ TAKE_PTR(ep->next_name), l->epoch };
	ep->trust_until = l->trust_until;
	atomic_store(&ep->send_until, l->trust_until);
	ep->trust_logged = false;
	ep->active = true;
	ep->more_in_store = true;
	ep->failures = l->failures;
	int64_t wait = l->next_attempt_at - clock_wall_ms();
	if (l->failures > 0 && wait > 0) {
		/* the last holder's backoff, as if it had been ours */
		ep->draining = true;
		ep->tokens = 0;
		ep->tokens_at = clock_mono_ms();
		ep->state = DELIVER_BACKOFF;
		arm_timer(ep, wait);
	}
	if (ep->by_state) {
		struct timeval tv = { POLL_MS / 1000, (POLL_MS % 1000) * 1000 };
		event_add(ep->poll_ev, &tv);
	}
	log_notice("event=endpoint-taken endpoint=%s lease=%s epoch=%lld failures=%d",
		   ep->name, ep->fence.lease, (long long)ep->fence.epoch, ep->failures);
	deliver_kick(ep);
}

void deliver_activate(struct deliver_ep *ep, const struct deliver_lease *l)
{
	free(ep->next_name);
	ep->next = *l;
	ep->next_name = xstrdup(l->name);
	ep->has_next = true;
	if (!ep->busy) /* else when the batch in flight (an old epoch's) is done */
		activate_now(ep);
}

void deliver_lease_renewed(struct deliver_ep *ep, int64_t trust_until)
{
	ep->trust_until = trust_until;
	if (ep->active)
		atomic_store(&ep->send_until, trust_until);
	if (ep->trust_logged)
		deliver_kick(ep);
	ep->trust_logged = false;
}

void deliver_deactivate(struct deliver_ep *ep)
{
	if (!ep->active && !ep->has_next)
		return;
	ep->has_next = false;
	ep->active = false;
	atomic_store(&ep->send_until, 0); /* a batch under way stops before its next file */
	log_notice("event=endpoint-released endpoint=%s epoch=%lld state=%s", ep->name,
		   (long long)ep->fence.epoch, ep->busy ? "finishing-batch" : "stopped");
	if (!ep->busy)
		lease_gone(ep);
}

bool deliver_active(const struct deliver_ep *ep)
{
	return ep->active;
}

const _Atomic int64_t *deliver_send_until(struct deliver_ep *ep)
{
	return ep->env.leased ? &ep->send_until : NULL;
}

/*
 * deliver.h - one FIFO and one delivery scheduler per endpoint.
 *
 * The queue lives in the store; an endpoint keeps only a bounded window of
 * its oldest messages in memory (refilled from the store), so memory does
 * not grow with the backlog. Batches from the head of the window go to the
 * endpoint's transport, which completes them later, one batch at a time, so the
 * order within an endpoint is the order of acceptance. A failure backs off
 * the whole endpoint (capped exponential with jitter), not the message; when
 * the endpoint is back the backlog drains in order, at drain_rate msg/s when
 * set. Delivered marks and failed attempts go to the group commit. Each
 * operation has a deadline (delivery_timeout); one that outlives it counts
 * as a failure, and the endpoint gets no new operation until it returns.
 */
#ifndef EDIBROKER_DELIVER_H
#define EDIBROKER_DELIVER_H

#include "store/commit.h"
#include "store/store.h"
#include "transport/transport.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct deliver_ep;

struct deliver_params {
	int64_t retry_initial_ms;
	int64_t retry_max_ms;
	double drain_rate;       /* msg/s while draining a backlog after a failure; 0 = no limit */
	size_t batch_max;        /* messages per batch */
	size_t window_msgs;      /* messages kept in memory */
	size_t window_bytes;     /* bytes kept in memory (at least one message) */
	int64_t delivery_timeout_ms; /* a delivery or probe past this counts as failed */
};

/* A finished delivery attempt or probe, for endpoint health. */
struct deliver_event {
	bool ok;
	bool probe;              /* from a probe rather than a delivery */
	enum transport_fault fault;
	const char *error;
	size_t delivered;        /* messages confirmed by this attempt */
};

struct deliver_env {
	struct event_base *base;
	struct commit *commit;
	struct store *store;
	/* May the endpoint deliver now? (false while the store cannot commit) */
	bool (*may_deliver)(void *ctx);
	void (*on_event)(void *ctx, struct deliver_ep *ep, const struct deliver_event *ev);
	void *ctx;
	/* Optional: the endpoint's backoff changed (failures 0 = recovered);
	 * next_attempt_at in wall ms. For a lease holder to keep it in the
	 * lease row, so that the next holder waits as long. */
	void (*on_backoff)(void *ctx, struct deliver_ep *ep, int failures, int64_t next_attempt_at);
	bool leased;             /* several daemons: deliver only once deliver_activate()d */
};

/* What a lease holder starts an endpoint with (several daemons). */
struct deliver_lease {
	const char *name;          /* "ep:NAME" */
	int64_t epoch;             /* the fencing token its marks carry */
	int64_t trust_until;       /* monotonic ms: no batch starts after this */
	int failures;              /* the backoff the last holder left */
	int64_t next_attempt_at;   /* wall ms; 0 = none */
};

enum deliver_state { DELIVER_IDLE, DELIVER_BUSY, DELIVER_BACKOFF, DELIVER_RATE_WAIT,
		     DELIVER_HELD, DELIVER_OVERDUE };

struct deliver_info {
	enum deliver_state state;
	int64_t queued;              /* messages queued (store) */
	int64_t queued_bytes;        /* their bodies' bytes */
	int64_t oldest_received_at;  /* wall ms of the oldest queued; 0 when none */
	int failures;                /* consecutive failed attempts */
	int64_t next_attempt_ms;     /* monotonic ms of the next retry; 0 when none */
	int64_t first_failure_at;    /* wall ms of the first failure of the run; 0 when none */
	int64_t last_success_at;     /* wall ms */
	enum transport_fault last_fault;
	const char *last_error;
	uint64_t delivered;          /* since start */
	bool draining;
	bool active;                 /* delivering here (holds its lease, or no leases) */
	int64_t epoch;               /* of the lease held; 0 = none */
};

struct deliver_ep *deliver_ep_new(const char *name, const struct deliver_env *env,
				  const struct deliver_params *params);
/* Stops and frees; waits for a batch in flight to finish first (the free
 * happens at its completion). Accepts NULL. */
void deliver_ep_free(struct deliver_ep *ep);
const char *deliver_ep_name(const struct deliver_ep *ep);

/* Gives the endpoint a transport (ownership moves). The previous one is
 * stopped and destroyed once no batch uses it. */
void deliver_set_transport(struct deliver_ep *ep, const struct transport_ops *ops,
			   struct transport *t);
struct transport *deliver_transport(struct deliver_ep *ep);
/* The operations of that transport (NULL when there is none). */
const struct transport_ops *deliver_transport_ops(const struct deliver_ep *ep);
void deliver_set_params(struct deliver_ep *ep, const struct deliver_params *params);

/* Reads the queue depth and window from the store. 0 or -errno. With
 * several writers (store_ids_in_commit_order false) the depth comes from
 * deliver_set_depth() and the window is read by state once active. */
int deliver_load(struct deliver_ep *ep);
/* The store's count of queued messages (several daemons write: the one
 * who holds the endpoint does not see the others' commits one by one). */
void deliver_set_depth(struct deliver_ep *ep, int64_t queued, int64_t bytes);

/* Several daemons: this one now holds the endpoint's lease. Delivery starts
 * from the head of the store's queue (a takeover may re-deliver the batch
 * the last holder had in flight: same bytes, same names), waiting out the
 * backoff the last holder left. Endpoints start active, unfenced, when
 * there are no leases (one daemon). */
void deliver_activate(struct deliver_ep *ep, const struct deliver_lease *l);
/* The lease was renewed: batches may start until trust_until (mono ms). */
void deliver_lease_renewed(struct deliver_ep *ep, int64_t trust_until);
/* The lease is lost or given up: no batch starts; one in flight finishes,
 * its marks fenced by the old epoch. */
void deliver_deactivate(struct deliver_ep *ep);
/* True while the endpoint holds its lease and could start batches. */
bool deliver_active(const struct deliver_ep *ep);
/* Until when (mono ms) its transport may make messages visible: for
 * transport_env.send_until; NULL when the endpoint is not leased. Valid
 * while the endpoint lives. */
const _Atomic int64_t *deliver_send_until(struct deliver_ep *ep);
/* A message was committed to this endpoint's queue (takes body). type is
 * its first letter's, for the delivered count. */
void deliver_enqueue(struct deliver_ep *ep, int64_t id, uint8_t *body, size_t size,
		     const char *ext, const char *type, int64_t received_at);
/* Schedules a delivery round (deferred to the end of the loop turn). */
void deliver_kick(struct deliver_ep *ep);
/* Holds (no batches start) or releases the endpoint. */
void deliver_hold(struct deliver_ep *ep, bool hold);
/* Starts a probe when the endpoint is idle; false when it is busy. */
bool deliver_probe(struct deliver_ep *ep);
/* Retries now instead of waiting for the backoff timer. */
void deliver_retry_now(struct deliver_ep *ep);
void deliver_get_info(const struct deliver_ep *ep, struct deliver_info *info);
/* True while a batch or probe is with the transport (it may be overdue). */
bool deliver_busy(const struct deliver_ep *ep);
/* True when message id is in the batch with the transport now (it may be
 * written at this moment: an operator may not delete it now). */
bool deliver_sending(const struct deliver_ep *ep, int64_t id);
/* Message id (size bytes) is no longer queued (an operator deleted it in
 * the store): out of the window, one fewer queued. Not for a message
 * deliver_sending() names. */
void deliver_forget(struct deliver_ep *ep, int64_t id, size_t size);

const char *deliver_state_name(enum deliver_state s);

#endif

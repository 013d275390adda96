/*
 * transport.h - how the broker talks to an endpoint.
 *
 * A transport instance belongs to one endpoint. Inbound, it watches for new
 * messages and feeds them to ingest, acting on each outcome (remove the
 * input when accepted, quarantine when rejected, keep it on a temporary
 * failure). Outbound, deliver() hands a batch to the endpoint in order and
 * probe() checks that the endpoint could take a delivery now without
 * leaving anything visible; both return at once and complete later through
 * a callback on the event loop, with how many messages were confirmed.
 *
 * The transport decides where its blocking work runs, and it never runs on
 * the event loop: the spool on its endpoint's lanes (lanes.h: one for
 * pick-up, one for delivery, each with at most one job at a time and a
 * thread of its own while it has one), a network transport on the loop's
 * own sockets. So one endpoint's hung share or silent peer costs only that
 * endpoint. The delivery scheduler (deliver.h) gives a transport at most
 * one operation at a time and enforces its deadline: cancel() when the
 * transport can give up, otherwise it counts the failure and waits.
 *
 * A new transport is one file (its ops, its configuration schema) and one
 * line in the registry (transport.c).
 */
#ifndef EDIBROKER_TRANSPORT_H
#define EDIBROKER_TRANSPORT_H

#include "conf/config.h"
#include "accept/ingest.h"
#include "base/fault.h"
#include "base/lanes.h"
#include "store/store.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One message of a delivery batch. */
struct out_msg {
	int64_t id;
	const char *ext;
	const uint8_t *body;
	size_t size;
};

struct deliver_result {
	size_t delivered;          /* confirmed prefix of the batch */
	enum transport_fault fault; /* why msgs[delivered] failed (when < n) */
	char error[192];           /* one line, no content */
	int64_t retry_after_ms;    /* the receiver asked to wait this long (HTTP
				    * Retry-After); 0 = the endpoint's own backoff */
	bool rejected;             /* the receiver refused msgs[delivered] for what it
				    * is (HTTP 400/413/415/422): set it aside with the
				    * reason and go on with the queue */
};

/* What a transport may use from the broker. */
struct transport_env {
	struct event_base *base;
	struct ingest *ingest;
	struct lane *lane_in;      /* the endpoint's lane for blocking inbound work */
	struct lane *lane_out;     /* ... and for blocking outbound work; both outlive
				    * the transport (they belong to the endpoint) */
	const char *instance;      /* store instance id: part of delivered file names */
	const struct config *cfg;  /* the running config (replaced on reload) */
	/* Called when an inbound side pauses or resumes (store unavailable). */
	void (*inbound_state)(void *ctx, const char *endpoint, bool paused);
	/* Called when the number of inbox files the broker may not read (the
	 * sender's permissions) changes; optional. */
	void (*inbound_unreadable)(void *ctx, const char *endpoint, size_t count);
	/* Called on the loop with files just moved to quarantine (durably), so
	 * the wiring can record them for operators and retention; q is valid
	 * for the call. NULL: not reported. */
	void (*quarantined)(void *ctx, struct store_quarantined *q, size_t n);
	/* Called on the loop when the endpoint can take deliveries again (a
	 * peer connected and asked for them), so a delivery waiting out its
	 * backoff is tried now; optional (NULL: not reported). */
	void (*reachable)(void *ctx, const char *endpoint);
	void *ctx;
	void *shared;              /* this transport's shared part (shared_new), or NULL */
	/* Several daemons: the endpoint delivers only while its lease is
	 * trusted. A transport reads this (CLOCK_MONOTONIC ms, atomically, off
	 * the loop too: renewals move it, losing the lease sets 0) right before
	 * it makes a message visible, and stops there (FAULT_TIMEOUT) once it
	 * has passed: a paused node does not deliver on after another took
	 * over. NULL: no such limit (one daemon). */
	const _Atomic int64_t *send_until;
};

struct transport;

/* What a transport's shared part (a listener for peers) may use. */
struct transport_shared_env {
	struct event_base *base;
	struct ingest *ingest;     /* where submissions go */
	struct lanes *lanes;       /* for blocking work of its own */
	const char *instance;      /* store instance id */
};

/* Completion of a delivery or probe, on the loop thread. */
typedef void (*transport_done_fn)(void *arg, const struct deliver_result *res);

struct transport_ops {
	const char *name;                 /* "transport = NAME" */
	const struct conf_schema *schema; /* its configuration; its name is NAME */
	struct transport *(*create)(const struct endpoint_conf *ep, const struct transport_env *env,
				    char *err, size_t errlen);
	void (*destroy)(struct transport *t);
	/* Starts inbound pick-up (0 or -errno; a missing inbox is retried). */
	int (*start)(struct transport *t);
	/* Stops inbound pick-up; submissions already made still complete. */
	void (*stop)(struct transport *t);
	/* Loop thread: starts delivering msgs[0..n) in order and returns at
	 * once; done(arg, res) runs later on the loop thread, exactly once and
	 * never from inside this call, with the confirmed prefix in
	 * res->delivered. msgs and the bodies stay valid until then; the
	 * caller neither destroys the transport nor starts another operation
	 * before it. A transport may stop early by choice (a time budget, so
	 * a slow but working receiver never runs into the deadline): a
	 * non-empty prefix with res->fault FAULT_NONE is a success, and the
	 * rest comes in the next batch. */
	void (*deliver)(struct transport *t, const struct out_msg *msgs, size_t n,
			transport_done_fn done, void *arg);
	/* Loop thread: checks that a delivery could succeed now (for a spool:
	 * the outbox is writable and nothing waits uncollected longer than
	 * pickup_timeout) and completes like deliver() with res->fault
	 * FAULT_NONE, or the fault and a reason in res->error. */
	void (*probe)(struct transport *t, transport_done_fn done, void *arg);
	/* Loop thread, optional: the operation outstanding is past its
	 * deadline; give it up and complete it soon with FAULT_TIMEOUT. NULL
	 * when the work cannot be interrupted (a write stuck in the kernel). */
	void (*cancel)(struct transport *t);
	/* Loop thread: the store committed again, resume pick-up now. */
	void (*resume)(struct transport *t);
	/* Loop thread, optional: true once the start-up work begun by create()
	 * and start() has finished, well or not (a spool's folders made and its
	 * inbox opened). The daemon says READY=1 when every transport is
	 * started, or after a grace period: a hung share cannot hold it. */
	bool (*started)(struct transport *t);

	/* Optional: the part every endpoint of this transport shares, e.g. the
	 * listener peers connect to (an HTTP server, a ZeroMQ socket). Made at
	 * start-up from cfg, bound before READY=1; NULL with err[0] == '\0' when
	 * the config leaves it off, NULL with a reason on failure (the daemon
	 * does not start). Endpoint instances reach it as transport_env.shared. */
	void *(*shared_new)(const struct config *cfg, const struct transport_shared_env *env,
			    char *err, size_t errlen);
	/* Loop thread: a reload: new credentials take effect at once, on open
	 * connections too. 0, or -errno with a reason (the old settings stay). */
	int (*shared_reload)(void *shared, const struct config *cfg, char *err, size_t errlen);
	/* Loop thread: shutting down: take no new submissions. */
	void (*shared_stop)(void *shared);
	void (*shared_free)(void *shared);
	/* Optional, and blocking (user and group look-ups go through NSS):
	 * checks what endpoint ep of cfg needs of the system beyond its
	 * configuration's syntax, e.g. that a spool's file_group exists and this
	 * process may give files to it. Returns 0, or -errno with "FILE:LINE:
	 * reason" in err. Called before the event loop runs (start-up,
	 * --check-config), never on it. */
	int (*check)(const struct endpoint_conf *ep, const struct config *cfg, char *err,
		     size_t errlen);
	/* Optional: check() for what spans the whole config (a credential given
	 * to two endpoints, a listener's keys that go together), once per
	 * config, whatever transports its endpoints have. Same contract. */
	int (*check_config)(const struct config *cfg, char *err, size_t errlen);
};

/* The registered transport called name, or NULL. */
const struct transport_ops *transport_find(const char *name);
/* The registered transports, in registry order (NULL past the last). */
const struct transport_ops *transport_at(size_t i);
/* The schemas of the registered transports, NULL-terminated, for
 * config_load(); the first is the default transport. */
const struct conf_schema *const *transport_schemas(void);

#endif

/*
 * transport.h - how the broker talks to an endpoint.
 *
 * A transport instance belongs to one endpoint. Inbound, it watches for new
 * messages and feeds them to ingest, acting on each outcome (remove the
 * input when accepted, quarantine when rejected, keep it on a temporary
 * failure). Outbound, deliver() hands a batch to the endpoint in order and
 * reports how many were confirmed; it runs on a worker thread and touches
 * only the transport's outbound state and the batch. probe() checks that
 * the endpoint could take a delivery now without leaving anything visible.
 */
#ifndef EDIBROKER_TRANSPORT_H
#define EDIBROKER_TRANSPORT_H

#include "conf/config.h"
#include "accept/ingest.h"
#include "base/fault.h"
#include "base/workq.h"

#include <event2/event.h>
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
};

/* What a transport may use from the broker. */
struct transport_env {
	struct event_base *base;
	struct ingest *ingest;
	struct workq *workq;       /* for blocking inbound clean-up off the loop */
	const char *instance;      /* store instance id: part of delivered file names */
	const struct config *cfg;  /* the running config (replaced on reload) */
	/* Called when an inbound side pauses or resumes (store unavailable). */
	void (*inbound_state)(void *ctx, const char *endpoint, bool paused);
	void *ctx;
};

struct transport;

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
	/* Worker thread: delivers msgs[0..n) in order. */
	void (*deliver)(struct transport *t, const struct out_msg *msgs, size_t n,
			struct deliver_result *res);
	/* Worker thread: FAULT_NONE when a delivery could succeed now (for a
	 * spool: the outbox is writable and nothing waits uncollected longer
	 * than pickup_timeout), else the fault and a reason. */
	enum transport_fault (*probe)(struct transport *t, char *err, size_t errlen);
	/* Loop thread: the store committed again, resume pick-up now. */
	void (*resume)(struct transport *t);
};

/* The registered transport called name, or NULL. */
const struct transport_ops *transport_find(const char *name);
/* The schemas of the registered transports, NULL-terminated, for
 * config_load(); the first is the default transport. */
const struct conf_schema *const *transport_schemas(void);

#endif

/*
 * broker_int.h - the broker's internals, shared by broker.c and the control
 * commands (control_cmds.c). Nothing else includes this.
 */
#ifndef EDIBROKER_BROKER_INT_H
#define EDIBROKER_BROKER_INT_H

#include "daemon/broker.h"
#include "store/commit.h"
#include "conf/config.h"
#include "control/control.h"
#include "deliver/deliver.h"
#include "outage/health.h"
#include "accept/ingest.h"
#include "accept/router.h"
#include "store/store.h"
#include "base/workq.h"

#include <stdbool.h>

/* An endpoint at runtime. */
struct endpoint {
	char *name;
	const struct endpoint_conf *conf; /* points into b->cfg */
	struct deliver_ep *dep;
	bool inbound_paused;              /* pick-up stopped: store unavailable */
	struct health health;             /* from deliveries and probes */
};

struct broker {
	struct event_base *base;
	struct config *cfg;
	struct store *store;
	struct commit *commit;
	struct router *router;
	struct ingest *ingest;
	struct workq *workq;      /* deliveries and probes */
	struct workq *janitor;    /* inbox clean-up, never ahead of a delivery */
	struct workq *notifier;   /* outage notices: slow mail servers wait here */
	struct procedure *proc;   /* the outage procedure */
	struct control *control;
	struct endpoint **eps;
	size_t neps;
	struct event *housekeeping_ev;
	int lock_fd;
	bool stopping;
	int64_t started_at;
};

/* The runtime endpoint called name, or NULL. */
struct endpoint *broker_endpoint(struct broker *b, const char *name);

#endif

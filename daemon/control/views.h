/*
 * views.h - the JSON that edibrokerctl renders: an endpoint's status row,
 * outages with their notices and send attempts, planned shutdowns, the
 * acknowledgements awaited, and the cluster of daemons sharing a store.
 *
 * Built from what the store and the outage procedure hand back (records,
 * health); the field names and their order are the control protocol's, so
 * scripts that read `edibrokerctl --json` keep working. Times are shown
 * local (the process time zone the time rules set) and as wall ms.
 */
#ifndef EDIBROKER_VIEWS_H
#define EDIBROKER_VIEWS_H

#include "conf/config.h"
#include "deliver/deliver.h"
#include "outage/procedure.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One configured endpoint's live state, as the wiring reports it. */
struct control_endpoint {
	const char *name;
	const struct endpoint_conf *conf;
	struct deliver_info di;
	struct deliver_ep *dep;   /* its scheduler, for the operators' actions */
	bool held;                /* an operator holds its delivery */
	bool pickup_paused;       /* inbound pick-up stopped: the store cannot commit */
	size_t inbox_unreadable;  /* inbox files the broker may not read */
};

/* The status row of an endpoint with health h (NULL = not known: "up"). */
json_t *views_endpoint(const struct control_endpoint *ep, const struct procedure_health *h,
		       int64_t now);
/* Outages not closed and those closed in the last 7 days (all: every one),
 * newest first, at most 500. NULL with a reason in err. */
json_t *views_outages(struct store *s, bool all, int64_t now, char *err, size_t errlen);
/* Outage id with its notices and every send attempt. NULL with a reason
 * in err (also when there is no such outage). */
json_t *views_outage(struct store *s, int64_t id, int64_t now, char *err, size_t errlen);
/* Acknowledgement tracking (store.h): with negative, the messages the
 * receiver refused (negative and transient), else those awaiting one,
 * each marked overdue when delivered more than ack_timeout_ms before now
 * (overdue_only: only those); of endpoint (NULL: every one), oldest
 * delivery first, at most limit. NULL with a reason in err. */
json_t *views_acks(struct store *s, const char *endpoint, bool overdue_only, bool negative,
		   int64_t ack_timeout_ms, size_t limit, int64_t now, char *err, size_t errlen);
/* Planned shutdowns in force (all: removed and ended ones too), by start. */
json_t *views_maintenance(struct store *s, bool all, char *err, size_t errlen);

struct cluster;
/* Several daemons: this node, whether it reaches the database, every node
 * the last lease round saw (with the leases each holds) and every lease. */
json_t *views_cluster(const struct cluster *c, const char *node);
/* The node holding lease name as the last round saw it, or NULL. */
const char *views_lease_owner(const struct cluster *c, const char *name);

#endif

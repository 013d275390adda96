/*
 * control_cmds.h - the commands operators send over the control socket:
 * status, queue ENDPOINT, dead, outages, outage (show, set, open, close)
 * and maintenance (add, list, remove). Each answers a JSON object;
 * edibrokerctl renders it as a table or passes it through with --json.
 *
 * The commands get the daemon through struct control_env: the store, the
 * group commit, the outage procedure and callbacks that report the
 * configured endpoints' live state. They know nothing of the wiring.
 */
#ifndef EDIBROKER_CONTROL_CMDS_H
#define EDIBROKER_CONTROL_CMDS_H

#include "control/views.h"
#include "outage/procedure.h"
#include "store/commit.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct control_env {
	struct store *store;
	struct commit *commit;
	struct procedure *proc;
	int64_t started_at;       /* wall ms, for uptime */
	/* Fills *row with the i-th configured endpoint (config order); false
	 * past the last. */
	bool (*endpoint_at)(void *ctx, size_t i, struct control_endpoint *row);
	/* Fills *row with the configured endpoint called name; false when the
	 * config has none. */
	bool (*endpoint_named)(void *ctx, const char *name, struct control_endpoint *row);
	void *ctx;
};

/* control_handler (control.h); arg is a const struct control_env *. */
json_t *control_dispatch(const json_t *request, void *arg);

#endif

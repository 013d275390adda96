/*
 * control_cmds.h - the commands operators send over the control socket:
 * status, queue ENDPOINT, dead, quarantine, acks, outages, outage (show, set,
 * open, close), maintenance (list, add, remove), keep (keep, release),
 * trace, and the actions of actions.h (requeue, hold, release, retry,
 * resend, delete).
 * Each answers a JSON object; edibrokerctl renders it as a table or passes
 * it through with --json.
 *
 * One table says for every verb and action whether it changes state, and
 * one place checks it: reading is for anyone who can reach the socket,
 * changing for root, the daemon's own user and the operator group
 * (access.h). Every change is logged with the caller (event=control-change)
 * and stored with the record it changed (changed_by); every refusal is
 * logged too (event=control-denied). Free-text fields are checked before
 * any verb runs (control_text_check).
 *
 * The commands get the daemon through struct control_env: the store, the
 * group commit, the outage procedure and callbacks that report the
 * configured endpoints' live state. They know nothing of the wiring.
 */
#ifndef EDIBROKER_CONTROL_CMDS_H
#define EDIBROKER_CONTROL_CMDS_H

#include "accept/ingest.h"
#include "control/control.h"
#include "control/views.h"
#include "outage/procedure.h"
#include "store/commit.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest value a request's string field may have, in bytes. */
#define CONTROL_TEXT_MAX 300

struct control_env {
	struct event_base *base;  /* for an answer's deadline; NULL: none (tests) */
	struct store *store;
	struct commit *commit;
	struct procedure *proc;
	struct ingest *ingest;    /* requeue: routes a message again */
	int64_t started_at;       /* wall ms, for uptime */
	int64_t max_message_size; /* requeue: the largest quarantined file read back */
	int64_t ack_timeout_ms;   /* [delivery] ack_timeout: awaiting longer is overdue */
	const struct cluster *cluster; /* several daemons share the store; NULL: one */
	bool closing;             /* set while the wiring frees the daemon: store
				   * completions of verbs only free their jobs */
	/* Fills *row with the i-th configured endpoint (config order); false
	 * past the last. */
	bool (*endpoint_at)(void *ctx, size_t i, struct control_endpoint *row);
	/* Fills *row with the configured endpoint called name; false when the
	 * config has none. */
	bool (*endpoint_named)(void *ctx, const char *name, struct control_endpoint *row);
	/* The lane of endpoint's inbound work, where its quarantine folder is
	 * read (a share that hangs holds up only that endpoint). */
	struct lane *(*inbound_lane)(void *ctx, const char *endpoint);
	/* Applies a hold the store has recorded: the endpoint's delivery pauses
	 * (or resumes) and the outage procedure treats it as held. */
	void (*hold)(void *ctx, const char *endpoint, bool held);
	void *ctx;
};

/* The verbs as control.c takes them; arg is a const struct control_env *. */
extern const struct control_ops control_verbs;

/* Answers request from who (control_ops.handle). */
json_t *control_dispatch(const json_t *request, const struct control_caller *who, void *arg);
/* True when request names a verb and action that change state. */
bool control_mutates(const json_t *request);

/* 0 when v may be the value of field: at most CONTROL_TEXT_MAX bytes of
 * valid UTF-8 without control characters (C0, DEL, C1, U+2028/9); else
 * -EINVAL with "FIELD: what is wrong" in why. */
int control_text_check(const char *field, const char *v, char *why, size_t len);

#endif

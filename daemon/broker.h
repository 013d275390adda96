/*
 * broker.h - the daemon as a whole: owns the config, the store, the group
 * commit, routing, ingest, one delivery scheduler per endpoint, the pool of
 * lanes (a pair per endpoint, for its blocking work), the transports'
 * shared listeners and the control socket, and wires them together.
 *
 * Data flow: transport (inbound) -> ingest (decode on the source's lane,
 * route) -> commit/store -> deliver (per endpoint FIFO) -> transport
 * (outbound) -> commit (delivered). Lifecycle: broker_new() recovers the
 * store and builds everything; broker_start() binds the listeners and
 * starts pick-up; broker_when_started() says when READY=1 may go;
 * broker_reload() swaps in a new config; broker_shutdown() stops accepting,
 * lets what is in flight finish within stop_timeout and commits it.
 */
#ifndef EDIBROKER_BROKER_H
#define EDIBROKER_BROKER_H

#include "conf/config.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

struct broker;
struct codec_schemas;

/* Opens the store (recovering it) and builds the endpoints of cfg, which
 * the broker takes over. NULL with a reason in err on failure. */
struct broker *broker_new(struct event_base *base, struct config *cfg, char *err, size_t errlen);
/* Binds the control socket and starts inbound pick-up. 0 or -errno. */
int broker_start(struct broker *b, char *err, size_t errlen);
/* Calls ready(arg) on the loop once every transport has finished its
 * start-up work (folders made, inboxes opened), or after grace_ms when one
 * has not (a hung share must not hold READY=1). */
void broker_when_started(struct broker *b, int64_t grace_ms, void (*ready)(void *arg),
			 void *arg);
/* Replaces the config with cfg (taken over, freed on failure). Endpoints
 * and routes change; queued messages are kept. Non-reloadable keys keep
 * their old values. -EINVAL with a reason when cfg's notice templates or
 * the schemas it asks for do not load; the running config then stays. */
int broker_reload(struct broker *b, struct config *cfg, char *err, size_t errlen);
/* Stops accepting, lets deliveries, removals and notices in flight finish
 * (the loop keeps running) for at most [broker] stop_timeout, commits what
 * they confirmed, closes the control socket and calls stopped(arg): the
 * loop may then be left. Work still stuck in the kernel (a frozen share)
 * is logged and abandoned: its messages stay queued for the next start. */
void broker_shutdown(struct broker *b, void (*stopped)(void *arg), void *arg);
/* Frees everything but what work stuck in the kernel still uses; true when
 * such work was abandoned (the caller should then leave with _exit(), not
 * wait for those threads in exit handlers). Accepts NULL. */
bool broker_free(struct broker *b);

/* The OIOXML schemas cfg's endpoints validate against: loaded from
 * [broker] xsd_dir when an endpoint has xsd = warn or enforce (NULL in
 * *out when none has). -EINVAL with "xsd_dir: reason" in err when they
 * are asked for and do not load. Reads files: start-up, reload and
 * --check-config. */
int broker_load_schemas(const struct config *cfg, struct codec_schemas **out, char *err,
			size_t errlen);

/* One-line summary for STATUS= ("queued=12 endpoints=2 down=0 ..."). */
void broker_status_line(struct broker *b, char *buf, size_t len);

#endif

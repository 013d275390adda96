/*
 * zmq_link.h - the ZeroMQ transport: peers (hospital and EOJ systems)
 * connect out to one CURVE-secured ROUTER socket of the broker, submit
 * messages over it and, when their endpoint has transport = zmq, take
 * deliveries over it. The protocol is docs/zmq.md; its framing
 * zmq_proto.h.
 *
 * Two halves, one module:
 *   zmq_link.c  the shared part (transport.h shared_new ...): the libzmq
 *               context, the ROUTER socket, the ZAP handler that admits
 *               only the configured keys, the peers' connections and their
 *               liveness, submissions to ingest and their answers;
 *   zmq.c       the configuration keys, and per endpoint the delivery side
 *               (deliver, probe, cancel) over the connection the link says
 *               receives for it.
 * Everything runs on the event loop thread; libzmq's own I/O thread does
 * the network and the crypto. Internal to the transport; the broker sees
 * `zmq_transport`.
 */
#ifndef EDIBROKER_ZMQ_LINK_H
#define EDIBROKER_ZMQ_LINK_H

#include "transport/transport.h"
#include "transport/zmq_keys.h"
#include "transport/zmq_proto.h"

#include <stdbool.h>
#include <stdint.h>

extern const struct transport_ops zmq_transport;

/* The transport's keys in [broker]. */
struct zmq_section {
	char *listen;                 /* zmq_listen: where the ROUTER binds; NULL = off */
	char *secret_key;             /* zmq_secret_key: the broker's CURVE secret key file */
	int64_t window;               /* zmq_window: unconfirmed deliveries per peer (128) */
	int64_t heartbeat_timeout_ms; /* zmq_heartbeat_timeout: a connection silent this
					 long is gone (15s) */
};

/* The transport's key on every endpoint. */
struct zmq_common {
	char *public_key;             /* zmq_public_key: the peer's CURVE public key (Z85) */
};

/* zmq.c: the transport's [broker] keys of cfg, and endpoint ep's key (NULL
 * when it has none). */
const struct zmq_section *zmq_section_of(const struct config *cfg);
const char *zmq_public_key_of(const struct config *cfg, const struct endpoint_conf *ep);

struct zlink;
struct zconn;
struct zep;

/* ---- zmq_link.c: the shared part ---------------------------------------- */

/* transport_ops.shared_new and friends (transport.h). */
void *zlink_new(const struct config *cfg, const struct transport_shared_env *env, char *err,
		size_t errlen);
int zlink_reload(void *shared, const struct config *cfg, char *err, size_t errlen);
void zlink_stop(void *shared);
void zlink_free(void *shared);

/* An endpoint's delivery side joins and leaves the link (create/destroy). */
void zlink_attach(struct zlink *l, struct zep *ep);
void zlink_detach(struct zlink *l, struct zep *ep);

/* The connection that receives for endpoint now (the newest that said
 * ready and is alive), or NULL. */
struct zconn *zlink_receiver(struct zlink *l, const char *endpoint);
/* A connection's serial number (never reused), the window it may have
 * unconfirmed, how many deliveries it has unconfirmed, and whether id is
 * one of them (sent on it and neither confirmed nor refused yet). */
uint64_t zconn_serial(const struct zconn *c);
unsigned zconn_window(const struct zconn *c);
size_t zconn_unconfirmed(const struct zconn *c);
bool zconn_has(const struct zconn *c, int64_t id);
/* Sends "deliver" of msg under file name name on c. 0; -EAGAIN when c's
 * pipe is full (try again later); -EHOSTUNREACH when the connection is
 * gone (the link then forgets it and tells its endpoint). */
int zlink_deliver(struct zlink *l, struct zconn *c, const struct out_msg *msg, const char *name);

/* ---- zmq.c: what the link tells an endpoint's delivery side ------------ */

const char *zep_name(const struct zep *ep);
/* m (delivered or refused) came from a connection of the endpoint's key. */
void zep_on_answer(struct zep *ep, const struct zp_msg *m);
/* The endpoint's receiving connection changed or went away. */
void zep_on_receiver(struct zep *ep);

#endif

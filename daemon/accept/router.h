/*
 * router.h - receiver location number (GLN) -> the endpoint that owns it.
 *
 * Built from the config's endpoint gln lists; a GLN no endpoint owns goes to
 * [routing] default_endpoint when one is set. An Emessage is routed as a
 * whole (the broker never splits or rewrites a message): when its letters
 * resolve to different endpoints, or any letter's receiver is unknown and
 * there is no default, it is not routed and router_route explains why.
 *
 * It also knows what each endpoint takes: an endpoint with an `accepts`
 * list receives only letters of those types (and versions); any other
 * letter for it is ROUTE_TYPE, which the broker answers with a negative
 * receipt. Receipts and acknowledgements always pass: they answer what
 * the endpoint sent. And it holds each endpoint's `xsd` mode for the
 * validation of what it sends.
 *
 * It also knows who may send what: an endpoint sends as the location
 * numbers it owns (gln) and those it relays for (may_send_for), and as no
 * other (router_may_send). The table is immutable and self-contained (it
 * copies what it needs from the config), so a decode job may use it off
 * the loop while a reload builds the next one: it is reference counted,
 * and every reference is taken and dropped on the loop thread.
 */
#ifndef EDIBROKER_ROUTER_H
#define EDIBROKER_ROUTER_H

#include "codecs/codec.h"
#include "conf/config.h"

#include <stddef.h>

struct router;

/* Builds the table from cfg (everything is copied); one reference. */
struct router *router_new(const struct config *cfg);
/* Another reference to r (loop thread). */
struct router *router_ref(struct router *r);
/* Drops a reference; the last frees the table. Accepts NULL. */
void router_free(struct router *r);

/* True when endpoint source may send messages whose sender is gln: it owns
 * gln or lists it under may_send_for. False for an unknown endpoint. */
bool router_may_send(const struct router *r, const char *source, const char *gln);

/* The endpoint owning gln, else the default endpoint, else NULL. */
const char *router_lookup(const struct router *r, const char *gln);

enum route_result {
	ROUTE_OK,
	ROUTE_UNKNOWN_RECEIVER, /* a letter's receiver GLN is owned by no endpoint */
	ROUTE_SPLIT,            /* letters resolve to different endpoints */
	ROUTE_TYPE,             /* the endpoint does not take a letter's type (accepts) */
};

/* True when endpoint takes a letter of type and version: it has no
 * accepts list, or its list names the type alone or as TYPE:VERSION. An
 * unknown endpoint takes anything (the router answers for known ones). */
bool router_accepts(const struct router *r, const char *endpoint, const char *type,
		    const char *version);
/* The xsd mode of endpoint source; XSD_OFF for an unknown one. */
enum xsd_mode router_xsd(const struct router *r, const char *source);

/* Routes every letter of env. On ROUTE_OK sets *endpoint; on ROUTE_TYPE
 * too (the endpoint that does not take it); otherwise leaves it. Writes a
 * reason (GLNs, letter ids, types and endpoint names only) into reason. */
enum route_result router_route(const struct router *r, const struct codec_envelope *env,
			       const char **endpoint, char *reason, size_t reasonlen);

#endif

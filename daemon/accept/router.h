/*
 * router.h - receiver location number (GLN) -> the endpoint that owns it.
 *
 * Built from the config's endpoint gln lists; a GLN no endpoint owns goes to
 * [routing] default_endpoint when one is set. An Emessage is routed as a
 * whole (the broker never splits or rewrites a message): when its letters
 * resolve to different endpoints, or any letter's receiver is unknown and
 * there is no default, it is not routed and router_route explains why.
 */
#ifndef EDIBROKER_ROUTER_H
#define EDIBROKER_ROUTER_H

#include "codecs/codec.h"
#include "conf/config.h"

#include <stddef.h>

struct router;

/* Builds the table from cfg (endpoint names are copied). */
struct router *router_new(const struct config *cfg);
void router_free(struct router *r);

/* The endpoint owning gln, else the default endpoint, else NULL. */
const char *router_lookup(const struct router *r, const char *gln);

enum route_result {
	ROUTE_OK,
	ROUTE_UNKNOWN_RECEIVER, /* a letter's receiver GLN is owned by no endpoint */
	ROUTE_SPLIT,            /* letters resolve to different endpoints */
};

/* Routes every letter of env. On ROUTE_OK sets *endpoint; otherwise writes
 * a reason (GLNs, letter ids and endpoint names only) into reason. */
enum route_result router_route(const struct router *r, const struct codec_envelope *env,
			       const char **endpoint, char *reason, size_t reasonlen);

#endif

/*
 * metrics_http.h - the /metrics listener: a small HTTP server on the
 * event loop (libevent's evhttp) that answers GET /metrics with the
 * exposition of metrics.h, for Prometheus to scrape.
 *
 * It has no authentication, as is usual for exporters: it binds the
 * address [metrics] listen names (127.0.0.1:9464 keeps it on the host),
 * an IP literal so that binding needs no name look-up. It answers from
 * memory only; a slow or idle client is dropped after a timeout.
 */
#ifndef EDIBROKER_METRICS_HTTP_H
#define EDIBROKER_METRICS_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_HOST_MAX 46 /* an IPv6 literal and its NUL (INET6_ADDRSTRLEN) */

struct metrics_http;

/* Parses "HOST:PORT" where HOST is an IPv4 literal or an IPv6 one in
 * brackets ("[::1]:9464") and PORT 1..65535. 0 with host and *port set, or
 * -EINVAL with why (it quotes no more than the address). */
int metrics_parse_listen(const char *v, char host[METRICS_HOST_MAX], uint16_t *port, char *why,
			 size_t whylen);

/* Listens on listen (metrics_parse_listen) and serves /metrics on base.
 * NULL with a reason in err (the address, "address already in use"). */
struct metrics_http *metrics_http_new(struct event_base *base, const char *listen, char *err,
				      size_t errlen);
/* Closes the listener and its connections. Accepts NULL. */
void metrics_http_free(struct metrics_http *h);

#endif

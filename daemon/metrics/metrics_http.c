/*
 * metrics_http.c - serves the metrics exposition over HTTP with evhttp.
 *
 * The listening socket is made here (an IP literal, SO_REUSEADDR so a
 * restart rebinds at once, non-blocking) and handed to evhttp, so a bind
 * error is the kernel's own. Only GET and HEAD of /metrics are answered
 * (anything else: 404 or 405); request headers are bounded and bodies
 * refused, and a connection that stays idle or does not take its answer
 * within a few seconds is closed by evhttp. A scrape renders from memory
 * (metrics_render) on the loop: it never waits on the store or a share.
 */
#include "metrics/metrics_http.h"

#include "metrics/metrics.h"
#include "codecs/base/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TIMEOUT_S 10
#define HEADERS_MAX 8192

struct metrics_http {
	struct evhttp *http;
};

int metrics_parse_listen(const char *v, char host[METRICS_HOST_MAX], uint16_t *port, char *why,
			 size_t whylen)
{
	const char *colon = strrchr(v, ':');
	const char *h = v, *h_end = colon;
	if (colon && v[0] == '[') {
		h = v + 1;
		h_end = colon > v && colon[-1] == ']' ? colon - 1 : NULL;
	}
	char *end;
	errno = 0;
	long p = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || !h_end || h_end <= h || (size_t)(h_end - h) >= METRICS_HOST_MAX ||
	    errno || colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535) {
		snprintf(why, whylen, "\"%.80s\" is not HOST:PORT with HOST an IP address "
			 "(127.0.0.1:9464, [::1]:9464)", v);
		return -EINVAL;
	}
	char buf[METRICS_HOST_MAX];
	memcpy(buf, h, (size_t)(h_end - h));
	buf[h_end - h] = '\0';
	struct in6_addr a6;
	int family = v[0] == '[' ? AF_INET6 : AF_INET;
	if (inet_pton(family, buf, &a6) != 1) {
		snprintf(why, whylen, "\"%.80s\" is not an IP%s address (a name would need a "
			 "look-up)", buf, family == AF_INET6 ? "v6" : "v4");
		return -EINVAL;
	}
	memcpy(host, buf, sizeof(buf));
	*port = (uint16_t)p;
	return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is here");
		return;
	}
	size_t len;
	_cleanup_free_ char *text = metrics_render(&len);
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(out, text, len);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_send_reply(req, HTTP_OK, "OK", out); /* HEAD: evhttp sends no body */
	evbuffer_free(out);
}

/* A non-blocking listening socket on host:port, or -errno. */
static int listen_on(const char *host, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		len = sizeof(*a6);
	} else {
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

struct metrics_http *metrics_http_new(struct event_base *base, const char *listen_at, char *err,
				      size_t errlen)
{
	char host[METRICS_HOST_MAX], why[160];
	uint16_t port;
	if (metrics_parse_listen(listen_at, host, &port, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "metrics listen: %s", why);
		return NULL;
	}
	int fd = listen_on(host, port);
	if (fd < 0) {
		snprintf(err, errlen, "metrics listen %s: %s", listen_at, strerror(-fd));
		return NULL;
	}
	struct metrics_http *h = xcalloc(1, sizeof(*h));
	h->http = evhttp_new(base);
	if (!h->http || evhttp_accept_socket(h->http, fd) < 0) {
		snprintf(err, errlen, "metrics listen %s: cannot serve HTTP", listen_at);
		close(fd);
		metrics_http_free(h);
		return NULL;
	}
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(h->http, HEADERS_MAX);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_timeout(h->http, TIMEOUT_S);
	evhttp_set_gencb(h->http, on_request, h);
	return h;
}

void metrics_http_free(struct metrics_http *h)
{
	if (!h)
		return;
	if (h->http)
		evhttp_free(h->http); /* closes the listener and its connections */
	free(h);
}

/*
 * http.c - the HTTP(S) transport's configuration and its operations table.
 *
 * Declares the keys (http.h): an http endpoint's url and outbound TLS
 * trust; the listener's keys, which live in [broker] beside the broker's
 * own (http_listen, tls_cert, tls_key, tls_client_ca and the listener's
 * bounds); and the ingress credentials every endpoint may have, whatever
 * its transport (token, token_file, peer_cert_sha256). The syntax of each
 * is checked here, as the file is read; what needs the whole config (a
 * token given to two endpoints, tokens over plain HTTP on a network) is
 * http_in_validate()'s (check_config), at start-up, at a reload and in
 * --check-config.
 *
 * An endpoint's transport instance is its outbound side only (http_out.c);
 * its inbound side is the shared listener (http_in.c), which every
 * endpoint reaches with its credential, so start() and stop() have nothing
 * to do.
 */
#include "transport/http.h"

#include "codecs/base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HTTP_NAME "http"

/* "http://HOST..." or "https://HOST...": what libcurl is allowed to reach
 * (the why never quotes the value: it may carry credentials). */
static int check_url(const char *v, char *why, size_t len)
{
	const char *rest = strncmp(v, "https://", 8) == 0 ? v + 8
			   : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
	if (!rest) {
		snprintf(why, len, "must start with http:// or https://");
		return -EINVAL;
	}
	if (rest[0] == '\0' || rest[0] == '/' || rest[0] == '?' || rest[0] == '#') {
		snprintf(why, len, "names no host");
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			snprintf(why, len, "must not contain blanks or control characters");
			return -EINVAL;
		}
	}
	return 0;
}

static int check_listen(const char *v, char *why, size_t len)
{
	char host[64];
	uint16_t port;
	if (http_parse_listen(v, host, sizeof(host), &port) == 0)
		return 0;
	snprintf(why, len, "'%s' is not ADDRESS:PORT with a numeric address "
		 "(127.0.0.1:8080, [::1]:8443, 0.0.0.0:8443)", v);
	return -EINVAL;
}

static int check_sha256(const char *v, char *why, size_t len)
{
	uint8_t fp[SHA256_LEN];
	if (http_parse_sha256(v, fp) == 0)
		return 0;
	snprintf(why, len, "'%s' is not a SHA-256 fingerprint (64 hex digits, ':' between pairs "
		 "allowed: openssl x509 -noout -fingerprint -sha256 -in CERT)", v);
	return -EINVAL;
}

#define EKEY(key, t, field) CONF_KEY(struct http_conf, key, t, field)
#define SKEY(key, t, field) CONF_KEY(struct http_section, key, t, field)
#define CKEY(key, t, field) CONF_KEY(struct http_common, key, t, field)

static const struct conf_key http_endpoint_keys[] = {
	{ EKEY("url", CONF_STR, url), .check = check_url,
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_REQUIRED | CONF_CREDENTIAL_URL },
	{ EKEY("ca_file", CONF_PATH, ca_file), .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ EKEY("client_cert", CONF_PATH, client_cert),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ EKEY("client_key", CONF_PATH, client_key),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_PRIVATE_FILE },
};

/* The listener: off unless http_listen is set. Every key reloads: the
 * listener moves to a new address, and takes new certificates, at once. */
static const struct conf_key http_section_keys[] = {
	{ SKEY("http_listen", CONF_STR, listen), .check = check_listen,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ SKEY("tls_cert", CONF_PATH, tls_cert), .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ SKEY("tls_key", CONF_PATH, tls_key),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_PRIVATE_FILE },
	{ SKEY("tls_client_ca", CONF_PATH, tls_client_ca),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ SKEY("http_max_connections", CONF_INT, max_connections), .def = "32", .min = 1,
	  .max = 4096, .flags = CONF_RELOAD },
	{ SKEY("http_idle_timeout", CONF_DURATION, idle_timeout_ms), .def = "30s", .min = 100,
	  .max = 1 * CONF_HOUR, .flags = CONF_RELOAD },
	{ SKEY("http_request_timeout", CONF_DURATION, request_timeout_ms), .def = "2m",
	  .min = 100, .max = 1 * CONF_HOUR, .flags = CONF_RELOAD },
};

static const struct conf_key http_common_keys[] = {
	{ CKEY("token", CONF_STR, token), .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_SECRET },
	{ CKEY("token_file", CONF_PATH, token_file),
	  .secret_off = offsetof(struct http_common, token),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_SECRET_FILE },
	{ CONF_LIST_KEY(struct http_common, "peer_cert_sha256", peer_cert_sha256),
	  .check = check_sha256, .flags = CONF_RELOAD },
};

static const struct conf_schema schema = {
	.name = HTTP_NAME,
	.endpoint_keys = http_endpoint_keys,
	.nendpoint_keys = ARRAY_SIZE(http_endpoint_keys),
	.endpoint_size = sizeof(struct http_conf),
	.section = "broker",
	.section_keys = http_section_keys,
	.nsection_keys = ARRAY_SIZE(http_section_keys),
	.section_size = sizeof(struct http_section),
	.common_keys = http_common_keys,
	.ncommon_keys = ARRAY_SIZE(http_common_keys),
	.common_size = sizeof(struct http_common),
};

const struct conf_schema *http_schema(void)
{
	return &schema;
}

/* What the syntax cannot say: client_cert and client_key go together. */
static int http_check(const struct endpoint_conf *ep, const struct config *cfg, char *err,
		      size_t errlen)
{
	const struct http_conf *hc = ep->tconf;
	if (hc && !hc->client_cert != !hc->client_key) {
		const char *set = hc->client_cert ? "client_cert" : "client_key";
		snprintf(err, errlen, "%s:%d: endpoint '%s': %s needs %s too", cfg->path,
			 config_endpoint_key_line(ep, set), ep->name, set,
			 hc->client_cert ? "client_key" : "client_cert");
		return -EINVAL;
	}
	return 0;
}

static struct transport *http_create(const struct endpoint_conf *ep,
				     const struct transport_env *env, char *err, size_t errlen)
{
	return (struct transport *)http_out_new(ep, env, err, errlen);
}

static void http_destroy(struct transport *t)
{
	http_out_free((struct http_out *)t);
}

/* Inbound is the shared listener's: nothing to start or stop per endpoint. */
static int http_start(struct transport *t)
{
	return 0;
}

static void http_stop(struct transport *t)
{
}

static void http_deliver(struct transport *t, const struct out_msg *msgs, size_t n,
			 transport_done_fn done, void *arg)
{
	http_out_deliver((struct http_out *)t, msgs, n, done, arg);
}

static void http_probe(struct transport *t, transport_done_fn done, void *arg)
{
	http_out_probe((struct http_out *)t, done, arg);
}

static void http_cancel(struct transport *t)
{
	http_out_cancel((struct http_out *)t);
}

static void http_resume(struct transport *t)
{
}

static bool http_started(struct transport *t)
{
	return true;
}

const struct transport_ops http_transport = {
	.name = HTTP_NAME,
	.schema = &schema,
	.create = http_create,
	.destroy = http_destroy,
	.start = http_start,
	.stop = http_stop,
	.deliver = http_deliver,
	.probe = http_probe,
	.cancel = http_cancel,
	.resume = http_resume,
	.started = http_started,
	.shared_new = http_in_new,
	.shared_reload = http_in_reload,
	.shared_stop = http_in_stop,
	.shared_free = http_in_free,
	.check = http_check,
	.check_config = http_in_validate,
};

/*
 * http_in.c - the HTTP(S) listener peers submit to: POST /v1/messages,
 * answered 202 {"id": N} only after the commit, or an RFC 9457 problem.
 *
 * It is the HTTP transport's shared part: one evhttp server for every
 * endpoint, made and bound at start-up (the daemon does not start when it
 * cannot listen), given new credentials, certificates and bounds on
 * SIGHUP, stopped at shutdown.
 *
 * Who calls: a bearer token, or the TLS client certificate the handshake
 * verified against tls_client_ca, bound by its fingerprint; a request with
 * both must have them bound to the same endpoint. Each request is checked
 * against the credentials in force when it arrives (struct http_creds,
 * replaced whole by a reload), so a token or certificate removed by a
 * reload is refused at once, on a kept-alive connection too; a connection
 * verified against a client CA that a reload replaced has its certificate
 * ignored from then on. The message then goes to ingest as the
 * credential's endpoint, which binds its senders to that endpoint (403
 * for a spoofed one). Nothing of a token is ever logged or kept: only its
 * digest (http_proto.c).
 *
 * Bounds, since anyone who can reach the port is a client: at most
 * http_max_connections connections (libevent 2.1 has no such setting: the
 * listener stops accepting at the limit and the rest wait in the kernel's
 * backlog); a body larger than max_message_size is refused by evhttp from
 * its Content-Length before it is read (its 413 page is evhttp's own); a
 * connection waiting for a request longer than http_idle_timeout, or whose
 * request has not arrived whole http_request_timeout after its first byte,
 * is closed, and evhttp closes one that stalls mid-transfer. Memory for
 * bodies is thus at most http_max_connections * max_message_size.
 *
 * Connections are tracked from evhttp's bufferevent callback: the
 * connection object evhttp makes for the bufferevent is its callback
 * argument, read at the end of the loop turn (nothing can free it before),
 * and its close callback ends the tracking.
 */
#include "transport/http.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MESSAGES_PATH "/v1/messages"
#define MAX_HEADERS_SIZE (32 * 1024)
#define CA_FILE_MAX (4 * 1024 * 1024)
#define PEER_MAX 64

enum conn_state {
	C_IDLE,      /* no byte of a request yet: http_idle_timeout */
	C_RECEIVING, /* a request is arriving: http_request_timeout from its first byte */
	C_HANDLING,  /* with us (ingest): no timer, nothing read */
	C_WRITING,   /* the answer is going out: evhttp's own timeout */
};

struct hconn {
	struct hconn *next, **pprev;
	struct http_in *srv;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until adopted */
	struct evbuffer_cb_entry *input_cb;
	struct event *adopt_ev, *timer_ev;
	enum conn_state state;
	unsigned ca_gen;                 /* the client CA its handshake was verified against */
	bool fp_done, has_fp;
	uint8_t fp[SHA256_LEN];          /* its client certificate's fingerprint */
	char peer[PEER_MAX];
};

/* A submission with ingest. */
struct hreq {
	struct hreq *next, **pprev;
	struct http_in *srv;             /* NULL: the listener is gone, answer nobody */
	struct evhttp_request *req;
};

struct http_in {
	struct event_base *base;
	struct ingest *ingest;
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* NULL: not listening */
	char *listen;                    /* what bound is bound to */
	SSL_CTX *ssl;                    /* NULL: plain HTTP */
	bool has_ca;                     /* client certificates are asked for */
	uint8_t ca_digest[SHA256_LEN];   /* of the tls_client_ca file */
	unsigned ca_gen;                 /* changes with the client CA */
	struct http_creds *creds;
	size_t max_conns;
	int64_t idle_ms, request_ms;
	struct hconn *conns;
	size_t nconns;
	bool paused;                     /* not accepting: at max_conns */
	struct hreq *reqs;
	bool stopping;
};

/* ---- validation ----------------------------------------------------------- */

static const struct http_section *section_of(const struct config *cfg)
{
	return config_section(cfg, http_schema());
}

/* The whole-config rules; the credentials table when they hold. */
static struct http_creds *validate(const struct config *cfg, char *err, size_t errlen)
{
	const struct http_section *s = section_of(cfg);
	if (!s)
		return NULL;
	struct http_creds *creds = http_creds_new(cfg, http_schema(), err, errlen);
	if (!creds || !s->listen)
		return creds;
	const char *why = NULL;
	char host[64];
	uint16_t port;
	if (!s->tls_cert != !s->tls_key)
		why = s->tls_cert ? "tls_cert needs tls_key" : "tls_key needs tls_cert";
	else if (s->tls_client_ca && !s->tls_cert)
		why = "tls_client_ca needs tls_cert and tls_key (client certificates need TLS)";
	else if (http_creds_ncerts(creds) && !s->tls_client_ca)
		why = "an endpoint has peer_cert_sha256, but without tls_client_ca no client "
		      "certificate is asked for";
	if (why) {
		snprintf(err, errlen, "%s: [broker] %s", cfg->path, why);
		http_creds_free(creds);
		return NULL;
	}
	if (!s->tls_cert && http_creds_ntokens(creds) &&
	    http_parse_listen(s->listen, host, sizeof(host), &port) == 0 &&
	    !http_host_loopback(host)) {
		snprintf(err, errlen, "%s: [broker] http_listen = %s is not a loopback address and "
			 "tls_cert is not set: bearer tokens (endpoint '%s') would cross the network "
			 "in clear; set tls_cert and tls_key, or listen on 127.0.0.1",
			 cfg->path, s->listen, http_creds_token_owner(creds));
		http_creds_free(creds);
		return NULL;
	}
	return creds;
}

int http_in_validate(const struct config *cfg, char *err, size_t errlen)
{
	struct http_creds *c = validate(cfg, err, errlen);
	if (!c)
		return section_of(cfg) ? -EINVAL : 0;
	http_creds_free(c);
	return 0;
}

/* ---- TLS ------------------------------------------------------------------ */

static void tls_error(char *err, size_t errlen, const char *what, const char *path)
{
	char why[256] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, why, sizeof(why));
	ERR_clear_error();
	snprintf(err, errlen, "%s %s: %s", what, path, why[0] ? why : "failed");
}

/* The server context of s: its certificate chain and key, TLS 1.2 at
 * least, no renegotiation; with a client CA, a verified client certificate
 * required. NULL with a reason. */
static SSL_CTX *tls_context(const struct http_section *s, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_error(err, errlen, "TLS", "context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert) != 1) {
		tls_error(err, errlen, "tls_cert", s->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, s->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "tls_key", s->tls_key);
		goto fail;
	}
	if (s->tls_client_ca) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->tls_client_ca);
		if (!names || SSL_CTX_load_verify_locations(ctx, s->tls_client_ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			tls_error(err, errlen, "tls_client_ca", s->tls_client_ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		static const unsigned char sid[] = "edibroker-http";
		SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The digest of the client CA file, so a reload that changes it can tell
 * connections verified against the old one. (A CA file is often a
 * symlink into /etc/ssl: followed, unlike read_file_at's.) */
static int ca_digest(const char *path, uint8_t out[SHA256_LEN], char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct sha256 h;
	uint8_t buf[16384];
	size_t total = 0;
	int r = 0;
	sha256_init(&h);
	while (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (total += (size_t)n) > CA_FILE_MAX) {
			r = n < 0 ? -errno : n == 0 ? 0 : -EFBIG;
			break;
		}
		sha256_update(&h, buf, (size_t)n);
	}
	if (fd < 0)
		r = -errno;
	sha256_final(&h, out);
	if (r < 0)
		snprintf(err, errlen, "tls_client_ca %s: %s", path, strerror(-r));
	return r;
}

/* ---- connections ---------------------------------------------------------- */

static void pause_accepting(struct http_in *srv, bool pause)
{
	if (!srv->bound || srv->paused == pause)
		return;
	struct evconnlistener *l = evhttp_bound_socket_get_listener(srv->bound);
	if (pause)
		evconnlistener_disable(l);
	else
		evconnlistener_enable(l);
	srv->paused = pause;
	if (pause)
		log_notice("event=http-connection-limit connections=%zu state=not-accepting",
			   srv->nconns);
}

static void arm(struct hconn *c, enum conn_state st)
{
	c->state = st;
	event_del(c->timer_ev);
	int64_t ms = st == C_IDLE ? c->srv->idle_ms : st == C_RECEIVING ? c->srv->request_ms : 0;
	if (ms > 0) {
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
		event_add(c->timer_ev, &tv);
	}
}

static void conn_free(struct hconn *c)
{
	struct http_in *srv = c->srv;
	if (c->next)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	event_free(c->adopt_ev);
	event_free(c->timer_ev);
	free(c);
	srv->nconns--;
	if (srv->nconns < srv->max_conns && !srv->stopping)
		pause_accepting(srv, false);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct hconn *c = arg;
	if (c->input_cb)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
	conn_free(c);
}

/* The first byte of a request starts its clock. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct hconn *c = arg;
	if (c->state == C_IDLE && info->n_added > 0)
		arm(c, C_RECEIVING);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *c = arg;
	if (c->state == C_RECEIVING)
		log_warn("event=http-request-timeout peer=%s timeout_s=%.1f state=closed", c->peer,
			 (double)c->srv->request_ms / 1000.0);
	else
		log_debug("event=http-idle peer=%s state=closed", c->peer);
	evhttp_connection_free(c->evcon); /* on_close frees c */
}

/* The end of the loop turn that accepted it: evhttp has made the
 * connection object for c->bev. */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *c = arg;
	void *evcon = NULL;
	bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
	if (!evcon) {
		log_err("event=http-connection-untracked state=not-counted");
		conn_free(c);
		return;
	}
	c->evcon = evcon;
	char *addr = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(c->evcon, &addr, &port);
	snprintf(c->peer, sizeof(c->peer), "%s:%u", addr ? addr : "?", (unsigned)port);
	evhttp_connection_set_closecb(c->evcon, on_close, c);
	c->input_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
	if (c->srv->stopping) {
		evhttp_connection_free(c->evcon);
		return;
	}
	arm(c, C_IDLE);
}

/* evhttp's bufferevent for a new connection: TLS when the listener has a
 * certificate. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct http_in *srv = arg;
	struct bufferevent *bev;
	if (srv->ssl) {
		SSL *ssl = SSL_new(srv->ssl);
		if (!ssl)
			abort(); /* out of memory, as xmalloc */
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
	} else {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!bev)
		abort();
	struct hconn *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->bev = bev;
	c->ca_gen = srv->ca_gen;
	snprintf(c->peer, sizeof(c->peer), "?");
	c->adopt_ev = event_new(base, -1, 0, on_adopt, c);
	c->timer_ev = event_new(base, -1, 0, on_timer, c);
	c->next = srv->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &srv->conns;
	srv->conns = c;
	srv->nconns++;
	event_active(c->adopt_ev, 0, 0);
	if (srv->nconns >= srv->max_conns)
		pause_accepting(srv, true);
	return bev;
}

static struct hconn *conn_of(struct http_in *srv, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	for (struct hconn *c = srv->conns; evcon && c; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

/* ---- answers -------------------------------------------------------------- */

static void on_complete(struct evhttp_request *req, void *arg)
{
	struct hconn *c = conn_of(arg, req);
	if (c)
		arm(c, C_IDLE);
}

static void reply(struct http_in *srv, struct evhttp_request *req, const struct http_answer *a,
		  const char *detail, int64_t id, const char *auth_error)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	_cleanup_free_ char *body = http_answer_body(a, detail, id);
	evhttp_add_header(h, "Content-Type",
			  a->problem ? "application/problem+json" : "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (a->retry_after_s > 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", a->retry_after_s);
		evhttp_add_header(h, "Retry-After", v);
	}
	if (a->status == 401) {
		_cleanup_free_ char *v = xasprintf("Bearer realm=\"edibroker\"%s%s%s",
						   auth_error ? ", error=\"" : "",
						   auth_error ? auth_error : "", auth_error ? "\"" : "");
		evhttp_add_header(h, "WWW-Authenticate", v);
	}
	if (a->status == 405)
		evhttp_add_header(h, "Allow", "POST");
	if (srv->stopping)
		evhttp_add_header(h, "Connection", "close");
	struct hconn *c = conn_of(srv, req);
	if (c) {
		c->state = C_WRITING;
		evhttp_request_set_on_complete_cb(req, on_complete, srv);
	}
	struct evbuffer *b = evbuffer_new();
	if (!b || evbuffer_add(b, body, strlen(body)) < 0)
		abort();
	evhttp_send_reply(req, a->status, NULL, b);
	evbuffer_free(b);
}

/* A refusal of the listener's own, logged (401 and 403 as security events). */
static void refuse(struct http_in *srv, struct evhttp_request *req, enum http_refusal r,
		   const char *endpoint)
{
	struct http_answer a;
	http_answer_refusal(r, &a);
	struct hconn *c = conn_of(srv, req);
	const char *peer = c ? c->peer : "?";
	if (a.status == 401 || a.status == 403)
		log_warn("event=http-refused peer=%s status=%d problem=%s endpoint=%s security=auth",
			 peer, a.status, a.problem, endpoint ? endpoint : "-");
	else
		log_info("event=http-refused peer=%s status=%d problem=%s endpoint=%s", peer,
			 a.status, a.problem, endpoint ? endpoint : "-");
	reply(srv, req, &a, NULL, 0, r == HTTP_REFUSE_BAD_TOKEN ? "invalid_token" : NULL);
}

/* ---- who calls ------------------------------------------------------------ */

/* The fingerprint of the client certificate of c's TLS session, when the
 * handshake verified one against the client CA now in force. */
static bool peer_cert(struct hconn *c, uint8_t fp[SHA256_LEN])
{
	if (!c || !c->srv->has_ca || c->ca_gen != c->srv->ca_gen)
		return false;
	if (!c->fp_done) {
		c->fp_done = true;
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
		unsigned n = 0;
		c->has_fp = cert && SSL_get_verify_result(ssl) == X509_V_OK &&
			    X509_digest(cert, EVP_sha256(), c->fp, &n) == 1 && n == SHA256_LEN;
	}
	if (c->has_fp)
		memcpy(fp, c->fp, SHA256_LEN);
	return c->has_fp;
}

/* The endpoint the request speaks for: 0, or the refusal. */
static int caller(struct http_in *srv, struct evhttp_request *req, struct hconn *c,
		  const char **endpoint, enum http_refusal *why)
{
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Authorization");
	const char *token = NULL, *by_token = NULL, *by_cert = NULL;
	size_t len = 0;
	uint8_t fp[SHA256_LEN];
	bool cert = peer_cert(c, fp);
	if (cert)
		by_cert = http_creds_by_cert(srv->creds, fp);
	if (auth) {
		if (http_bearer(auth, &token, &len) < 0 ||
		    !(by_token = http_creds_by_token(srv->creds, token, len))) {
			*why = HTTP_REFUSE_BAD_TOKEN;
			return -EACCES;
		}
	}
	if (by_token && by_cert && strcmp(by_token, by_cert) != 0) {
		*endpoint = by_token;
		*why = HTTP_REFUSE_CREDENTIAL_MISMATCH;
		return -EACCES;
	}
	*endpoint = by_token ? by_token : by_cert;
	if (*endpoint)
		return 0;
	*why = cert ? HTTP_REFUSE_CERT_NOT_BOUND : HTTP_REFUSE_NO_CREDENTIAL;
	return -EACCES;
}

/* ---- submissions ---------------------------------------------------------- */

static void on_submitted(const struct ingest_outcome *o, void *arg)
{
	struct hreq *h = arg;
	struct http_in *srv = h->srv;
	struct evhttp_request *req = h->req;
	if (srv) {
		if (h->next)
			h->next->pprev = h->pprev;
		*h->pprev = h->next;
	}
	free(h);
	if (!srv)
		return; /* the listener is gone, and the request with it */
	struct http_answer a;
	http_answer_outcome(o, &a);
	const char *detail = o->result == INGEST_REJECTED && o->error ? o->error->text : o->reason;
	reply(srv, req, &a, detail, o->id, NULL);
}

static void submit(struct http_in *srv, struct evhttp_request *req, const char *endpoint)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	uint8_t *body = xmalloc(len + 1);
	if (evbuffer_remove(in, body, len) != (int)len)
		abort();
	struct hreq *h = xcalloc(1, sizeof(*h));
	h->srv = srv;
	h->req = req;
	h->next = srv->reqs;
	if (h->next)
		h->next->pprev = &h->next;
	h->pprev = &srv->reqs;
	srv->reqs = h;
	/* HTTP has no request id of its own: a client whose answer was lost
	 * sends the same body again, and the body's digest names the unit
	 * (INGEST_BODY_TOKEN), so it gets the first copy's answer (a dead
	 * letter: 422 again) and nothing is stored twice. Safe for MedCom:
	 * the same bytes are the same letters (sender, letter id), whose
	 * resend is a duplicate anyway. */
	ingest_submit(srv->ingest, endpoint, body, len, INGEST_NO_RECEIPT | INGEST_BODY_TOKEN,
		      on_submitted, h);
}

static bool is_messages_path(struct evhttp_request *req)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	return path && strcmp(path, MESSAGES_PATH) == 0;
}

/* Every complete request: where, how, who, what - then ingest. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_in *srv = arg;
	struct hconn *c = conn_of(srv, req);
	if (c)
		arm(c, C_HANDLING);
	if (!is_messages_path(req))
		return refuse(srv, req, HTTP_REFUSE_NOT_FOUND, NULL);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return refuse(srv, req, HTTP_REFUSE_METHOD, NULL);
	const char *endpoint = NULL;
	enum http_refusal why;
	if (caller(srv, req, c, &endpoint, &why) < 0)
		return refuse(srv, req, why, endpoint);
	if (srv->stopping)
		return refuse(srv, req, HTTP_REFUSE_STOPPING, endpoint);
	const char *type = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Content-Type");
	if (!http_media_type_ok(type))
		return refuse(srv, req, HTTP_REFUSE_MEDIA_TYPE, endpoint);
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0)
		return refuse(srv, req, HTTP_REFUSE_EMPTY, endpoint);
	submit(srv, req, endpoint);
}

/* ---- the listener --------------------------------------------------------- */

/* Binds listen ("HOST:PORT"): the bound socket, or NULL with a reason. */
static struct evhttp_bound_socket *bind_to(struct http_in *srv, const char *listen, char *err,
					   size_t errlen)
{
	char host[64];
	uint16_t port;
	if (http_parse_listen(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "http_listen = %s: not ADDRESS:PORT", listen);
		return NULL;
	}
	errno = 0;
	struct evhttp_bound_socket *b = evhttp_bind_socket_with_handle(srv->http, host, port);
	if (!b)
		snprintf(err, errlen, "http_listen = %s: cannot listen: %s", listen,
			 errno ? strerror(errno) : "failed");
	return b;
}

/* "ADDRESS:PORT" the socket is bound to (the kernel's port for port 0). */
static void bound_name(struct evhttp_bound_socket *b, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64] = "?";
	unsigned port = 0;
	if (getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
			snprintf(out, len, "[%s]:%u", host, port);
			return;
		}
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	}
	snprintf(out, len, "%s:%u", host, port);
}

/* The listener's TLS: its server context and client CA, or plain. */
struct tls_state {
	SSL_CTX *ssl;                    /* NULL: plain HTTP */
	bool has_ca;
	uint8_t ca_digest[SHA256_LEN];
};

static int tls_prepare(const struct http_section *s, struct tls_state *t, char *err,
		       size_t errlen)
{
	*t = (struct tls_state){ .has_ca = s->tls_client_ca != NULL };
	if (s->tls_cert && !(t->ssl = tls_context(s, err, errlen)))
		return -EINVAL;
	if (t->has_ca && ca_digest(s->tls_client_ca, t->ca_digest, err, errlen) < 0) {
		SSL_CTX_free(t->ssl);
		return -EINVAL;
	}
	return 0;
}

static void tls_apply(struct http_in *srv, struct tls_state *t)
{
	SSL_CTX_free(srv->ssl);
	srv->ssl = t->ssl;
	if (t->has_ca != srv->has_ca ||
	    (t->has_ca && memcmp(t->ca_digest, srv->ca_digest, SHA256_LEN) != 0))
		srv->ca_gen++; /* certificates verified against the old CA no longer count */
	srv->has_ca = t->has_ca;
	memcpy(srv->ca_digest, t->ca_digest, SHA256_LEN);
}

/* Listens on listen (NULL: nowhere) instead of where it listens now; the
 * connections already open stay. On failure the old listener stays. */
static int rebind(struct http_in *srv, const char *listen, char *err, size_t errlen)
{
	if (!listen == !srv->listen && (!listen || strcmp(listen, srv->listen) == 0))
		return 0;
	struct evhttp_bound_socket *b = NULL;
	if (listen && !(b = bind_to(srv, listen, err, errlen)))
		return -EADDRNOTAVAIL;
	if (srv->bound)
		evhttp_del_accept_socket(srv->http, srv->bound);
	srv->bound = b;
	srv->paused = false;
	free(srv->listen);
	srv->listen = xstrdup_or_null(listen);
	char name[96] = "";
	if (b)
		bound_name(b, name, sizeof(name));
	if (b)
		log_notice("event=http-listening address=%s tls=%s client_certs=%s", name,
			   srv->ssl ? "yes" : "no", srv->has_ca ? "required" : "no");
	else
		log_notice("event=http-not-listening");
	return 0;
}

/* Tokens would cross a network in clear on the listener as it now is
 * (a reload whose TLS failed left it plain). */
static bool tokens_in_clear(const struct http_in *srv, const struct http_creds *creds)
{
	char host[64];
	uint16_t port;
	return !srv->ssl && srv->listen && http_creds_ntokens(creds) > 0 &&
	       http_parse_listen(srv->listen, host, sizeof(host), &port) == 0 &&
	       !http_host_loopback(host);
}

static void apply_bounds(struct http_in *srv, const struct config *cfg)
{
	const struct http_section *s = section_of(cfg);
	srv->max_conns = (size_t)s->max_connections;
	srv->idle_ms = s->idle_timeout_ms;
	srv->request_ms = s->request_timeout_ms;
	int64_t io = s->idle_timeout_ms > s->request_timeout_ms ? s->idle_timeout_ms
								 : s->request_timeout_ms;
	struct timeval tv = { (time_t)(io / 1000), (suseconds_t)(io % 1000) * 1000 };
	evhttp_set_timeout_tv(srv->http, &tv);
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)cfg->max_message_size);
	pause_accepting(srv, srv->nconns >= srv->max_conns);
}

/* Takes cfg's credentials, TLS, address and bounds. At start-up (first)
 * all of it must hold. At a reload, what holds is applied and the rest
 * keeps running as it was, with the reason in err: credentials that
 * validate always take effect, since a token being revoked must not
 * outlive a broken certificate file beside it - unless a failed TLS
 * change left a network listener plain and they hold tokens; the address
 * changes only with a working TLS. */
static int configure(struct http_in *srv, const struct config *cfg, bool first, char *err,
		     size_t errlen)
{
	const struct http_section *s = section_of(cfg);
	struct http_creds *creds = validate(cfg, err, errlen);
	struct tls_state t;
	int r = 0;
	if (!creds)
		return -EINVAL;
	if (tls_prepare(s, &t, err, errlen) < 0)
		r = -EINVAL;
	else {
		tls_apply(srv, &t);
		r = rebind(srv, s->listen, err, errlen);
	}
	if (r < 0 && first) {
		http_creds_free(creds);
		return r;
	}
	if (tokens_in_clear(srv, creds)) {
		snprintf(err, errlen, "%s: the listener stays plain HTTP on %s, where tokens "
			 "would cross the network in clear: the old credentials stay", cfg->path,
			 srv->listen);
		http_creds_free(creds);
		r = -EINVAL;
	} else {
		http_creds_free(srv->creds);
		srv->creds = creds;
		size_t n = strlen(err);
		if (r < 0 && n < errlen)
			snprintf(err + n, errlen - n, " (the listener stays as it was; the new "
				 "tokens and fingerprints are in force)");
	}
	apply_bounds(srv, cfg);
	return r;
}

void *http_in_new(const struct config *cfg, const struct transport_shared_env *env, char *err,
		  size_t errlen)
{
	const struct http_section *s = section_of(cfg);
	err[0] = '\0';
	if (!s || !s->listen)
		return NULL; /* off: no listener wanted */
	struct http_in *srv = xcalloc(1, sizeof(*srv));
	srv->base = env->base;
	srv->ingest = env->ingest;
	srv->http = evhttp_new(env->base);
	if (!srv->http)
		abort();
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_bevcb(srv->http, new_bev, srv);
	evhttp_set_max_headers_size(srv->http, MAX_HEADERS_SIZE);
	/* every method reaches on_request, which answers 405 itself */
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
					      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
					      EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	if (configure(srv, cfg, true, err, errlen) < 0) {
		http_in_free(srv);
		return NULL;
	}
	return srv;
}

int http_in_reload(void *shared, const struct config *cfg, char *err, size_t errlen)
{
	struct http_in *srv = shared;
	if (srv->stopping)
		return 0;
	return configure(srv, cfg, false, err, errlen);
}

void http_in_stop(void *shared)
{
	struct http_in *srv = shared;
	srv->stopping = true;
	if (srv->bound)
		evhttp_del_accept_socket(srv->http, srv->bound);
	srv->bound = NULL;
	/* connections waiting for a request go now; those with one in ingest
	 * get their answer, with "Connection: close" */
	for (struct hconn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		if (c->evcon && (c->state == C_IDLE || c->state == C_RECEIVING))
			evhttp_connection_free(c->evcon);
	}
}

void http_in_free(void *shared)
{
	struct http_in *srv = shared;
	if (!srv)
		return;
	/* submissions still with ingest answer nobody: evhttp_free frees
	 * their requests */
	for (struct hreq *h = srv->reqs; h; h = h->next)
		h->srv = NULL;
	srv->stopping = true;
	srv->bound = NULL; /* evhttp_free frees it */
	if (srv->http)
		evhttp_free(srv->http); /* closes the connections: on_close frees them */
	while (srv->conns)
		conn_free(srv->conns); /* not adopted yet */
	http_creds_free(srv->creds);
	SSL_CTX_free(srv->ssl);
	free(srv->listen);
	free(srv);
}

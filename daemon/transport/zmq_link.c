/*
 * zmq_link.c - the ZeroMQ listener every peer connects to: a ROUTER socket
 * with CURVE, the ZAP handler that decides who may connect, the peers'
 * connections, and the submissions they make.
 *
 * Who is who. The ZAP handler (RFC 27, a REP socket on
 * inproc://zeromq.zap.01, bound before the ROUTER so there is never a
 * moment libzmq would let any key in) admits a CURVE client only when its
 * public key is some endpoint's zmq_public_key, and answers with the
 * endpoint's name as User-Id and the key as the X-Curve-Key property. A
 * message is attributed by those two properties, read with zmq_msg_gets()
 * on its first frame, never by the routing id a peer may choose, and is
 * checked against the live keys (replaced whole on every reload): a key
 * removed or changed by SIGHUP is refused at its next message, on a
 * connection already open too, and that connection is forgotten.
 *
 * Connections. The link tracks a connection (by routing id) from its first
 * message; any message keeps it alive, and one silent for
 * zmq_heartbeat_timeout is gone. Of an endpoint's connections the newest
 * that said "ready" receives its deliveries (zlink_receiver); the others
 * are told "standby" in the answer to their heartbeats, and "idle" when
 * no connection receives, so a standby or a reconnected peer takes over.
 * Per endpoint at most CONNS_PER_PEER connections are tracked (the least
 * recently heard is forgotten first).
 *
 * Loop discipline (STYLE 7, 7a). Every socket is non-blocking and driven
 * by libevent on its ZMQ_FD, which is edge-triggered: a wake reads until
 * ZMQ_EVENTS has no POLLIN (READ_BUDGET messages at most, then a
 * zero-delay timer lets the loop poll other work before going on), and
 * after every send outside the read handler the handler is run again, as
 * a send may have consumed the edge that announced input.
 *
 * Limits. ZMQ_MAXMSGSIZE (max_message_size) per frame, ZMQ_ROUTER_MANDATORY
 * (a send to a peer that is gone or not reading fails instead of vanishing),
 * receive high-water marks sized to the message limit, a handshake
 * deadline, ZMTP heartbeats that close dead TCP connections, at most
 * SUBMIT_MAX submissions (SUBMIT_BYTES bytes) in flight per endpoint
 * (beyond: "busy", retryable), and log lines about refused keys and failed
 * handshakes rate-limited.
 */
#include "transport/zmq_link.h"

#include "accept/ingest.h"
#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "edibroker"
#define MONITOR_ENDPOINT "inproc://edibroker-zmq-monitor"
#define KEY_PROPERTY "X-Curve-Key"
#define RID_MAX 255
#define READ_BUDGET 256          /* messages per wake before the loop polls again */
#define ZAP_BUDGET 64
#define CONNS_PER_PEER 16
#define SUBMIT_MAX 1024          /* submissions in flight per endpoint */
#define SUBMIT_BYTES ((size_t)64 << 20)
#define HANDSHAKE_MS 10000       /* a CURVE handshake must be done by then */
#define ZMTP_HEARTBEAT_MS 5000   /* libzmq's PING; a dead TCP peer is closed after 3 */
#define RCV_BUDGET_BYTES ((size_t)64 << 20) /* per connection, waiting in libzmq */
#define SNDHWM 4096
#define LOG_BURST 10             /* lines per kind per minute, then a count */
#define LOG_PERIOD_MS 60000

struct zconn {
	struct zconn *next;
	uint64_t serial;
	uint8_t rid[RID_MAX];
	size_t rid_len;
	char *endpoint;
	char key[ZKEY_Z85_LEN + 1];
	char addr[64];
	int64_t seen_ms;                 /* monotonic: its last message */
	bool ready;
	unsigned window;
	int64_t unconfirmed[ZP_WINDOW_MAX]; /* deliveries sent on it, not yet answered */
	size_t nunconfirmed;
};

/* An endpoint that has a key: its credentials and what the link keeps for it. */
struct zpeer {
	char *name;
	char key[ZKEY_Z85_LEN + 1];
	struct zconn *receiver;          /* the connection its deliveries go to, or NULL */
	size_t sub_n, sub_bytes;         /* its submissions with ingest */
};

struct ratelimit {
	int64_t since;
	unsigned n, dropped;
};

struct zlink {
	struct transport_shared_env env;
	void *ctx, *router, *zap, *monitor;
	struct event *router_ev, *zap_ev, *monitor_ev, *resume_ev, *zap_resume_ev, *tick_ev;
	bool in_router;                  /* inside the read handler: it loops itself */
	char *listen;
	char public_key[ZKEY_Z85_LEN + 1];
	size_t max_bytes;
	unsigned window;
	int64_t hb_timeout_ms;
	struct zpeer *peers;             /* the live keys */
	size_t npeers;
	struct zconn *conns;
	uint64_t next_serial;
	struct zep **eps;                /* endpoints' delivery sides */
	size_t neps;
	bool stopped;
	size_t subs;
	struct ratelimit rl_refused, rl_handshake, rl_protocol;
};

/* One submission with ingest: where its answer goes. */
struct zsub {
	struct zlink *l;
	uint8_t rid[RID_MAX];
	size_t rid_len;
	char ref[ZP_REF_MAX + 1];
	char *endpoint;
	size_t size;
};

static void drop_conn(struct zlink *l, struct zconn *c, const char *why, bool tell);

/* ---- small helpers ------------------------------------------------------ */

/* True when a line of this kind may be logged now; counts the others. */
static bool rl_allow(struct ratelimit *rl, const char *kind)
{
	int64_t now = clock_mono_ms();
	if (now - rl->since >= LOG_PERIOD_MS) {
		if (rl->dropped)
			log_warn("event=zmq-log-suppressed kind=%s count=%u period_s=%d", kind,
				 rl->dropped, LOG_PERIOD_MS / 1000);
		*rl = (struct ratelimit){ .since = now };
	}
	if (rl->n < LOG_BURST) {
		rl->n++;
		return true;
	}
	rl->dropped++;
	return false;
}

static struct zpeer *peer_named(struct zlink *l, const char *name)
{
	for (size_t i = 0; name && i < l->npeers; i++)
		if (strcmp(l->peers[i].name, name) == 0)
			return &l->peers[i];
	return NULL;
}

static struct zpeer *peer_with_key(struct zlink *l, const char *key)
{
	struct zpeer *found = NULL;
	for (size_t i = 0; i < l->npeers; i++) /* every one: constant time per key */
		if (zkey_equal(l->peers[i].key, key))
			found = &l->peers[i];
	return found;
}

/* Runs the read handler again soon: a send may have taken the edge. */
static void after_send(struct zlink *l)
{
	if (!l->in_router)
		event_active(l->router_ev, EV_READ, 0);
}

static unsigned sockopt_events(void *sock)
{
	int events = 0;
	size_t len = sizeof(events);
	if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) < 0)
		return 0;
	return (unsigned)events;
}

/* Sends m to the connection with routing id rid. 0 or -errno (EAGAIN: its
 * pipe is full; EHOSTUNREACH: it is gone). */
static int send_to(struct zlink *l, const uint8_t *rid, size_t rid_len, const struct zp_msg *m)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	char buf[ZP_BUF_SIZE];
	size_t n = zp_build(m, f, buf);
	int r = 0;
	if (zmq_send(l->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		r = -errno;
	/* once the routing frame is taken, libzmq takes the whole message */
	for (size_t i = 0; r == 0 && i < n; i++)
		if (zmq_send(l->router, f[i].data, f[i].size,
			     ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0)) < 0)
			r = -errno;
	after_send(l);
	return r;
}

static void send_error(struct zlink *l, const uint8_t *rid, size_t rid_len, const char *code,
		       const char *text)
{
	struct zp_msg m = { .cmd = ZP_ERROR };
	str_copy(m.code, code, sizeof(m.code));
	zp_set_text(&m, "%s", text);
	send_to(l, rid, rid_len, &m);
}

static void send_rejected(struct zlink *l, const uint8_t *rid, size_t rid_len, const char *ref,
			  bool retryable, const char *code, const char *text)
{
	struct zp_msg m = { .cmd = ZP_REJECTED, .retryable = retryable };
	str_copy(m.ref, ref, sizeof(m.ref));
	str_copy(m.code, code, sizeof(m.code));
	zp_set_text(&m, "%s", text);
	int r = send_to(l, rid, rid_len, &m);
	if (r < 0)
		log_debug("event=zmq-answer-dropped ref=%s error=\"%s\"", ref, zmq_strerror(-r));
}

/* ---- the endpoints' delivery sides -------------------------------------- */

void zlink_attach(struct zlink *l, struct zep *ep)
{
	l->eps = xrealloc(l->eps, (l->neps + 1) * sizeof(*l->eps));
	l->eps[l->neps++] = ep;
}

void zlink_detach(struct zlink *l, struct zep *ep)
{
	for (size_t i = 0; i < l->neps; i++)
		if (l->eps[i] == ep) {
			l->eps[i] = l->eps[--l->neps];
			return;
		}
}

/* Tells the delivery sides of endpoint name that its receiver changed.
 * A copy of the list: a side may detach while being told. */
static void tell_receiver(struct zlink *l, const char *name)
{
	size_t n = l->neps;
	_cleanup_free_ struct zep **eps = xmalloc((n + 1) * sizeof(*eps));
	memcpy(eps, l->eps, n * sizeof(*eps));
	for (size_t i = 0; i < n; i++)
		if (strcmp(zep_name(eps[i]), name) == 0)
			zep_on_receiver(eps[i]);
}

/* ---- connections -------------------------------------------------------- */

uint64_t zconn_serial(const struct zconn *c)
{
	return c->serial;
}

unsigned zconn_window(const struct zconn *c)
{
	return c->window;
}

size_t zconn_unconfirmed(const struct zconn *c)
{
	return c->nunconfirmed;
}

bool zconn_has(const struct zconn *c, int64_t id)
{
	for (size_t i = 0; i < c->nunconfirmed; i++)
		if (c->unconfirmed[i] == id)
			return true;
	return false;
}

static void conn_forget_id(struct zconn *c, int64_t id)
{
	for (size_t i = 0; i < c->nunconfirmed; i++)
		if (c->unconfirmed[i] == id) {
			memmove(&c->unconfirmed[i], &c->unconfirmed[i + 1],
				(c->nunconfirmed - i - 1) * sizeof(int64_t));
			c->nunconfirmed--;
			return;
		}
}

struct zconn *zlink_receiver(struct zlink *l, const char *endpoint)
{
	struct zpeer *p = peer_named(l, endpoint);
	return p ? p->receiver : NULL;
}

static void conn_free(struct zconn *c)
{
	free(c->endpoint);
	free(c);
}

/* Unlinks and frees c; when it received for its endpoint, the endpoint has
 * no receiver now, and its delivery sides are told when tell is set. */
static void drop_conn(struct zlink *l, struct zconn *c, const char *why, bool tell)
{
	for (struct zconn **pp = &l->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	struct zpeer *p = peer_named(l, c->endpoint);
	bool was_receiver = p && p->receiver == c;
	if (was_receiver) {
		p->receiver = NULL;
		log_notice("event=zmq-receiver-lost endpoint=%s address=%s reason=%s", c->endpoint,
			   c->addr, why);
	} else {
		log_debug("event=zmq-connection-forgotten endpoint=%s address=%s reason=%s",
			  c->endpoint, c->addr, why);
	}
	_cleanup_free_ char *name = TAKE_PTR(c->endpoint);
	conn_free(c);
	if (was_receiver && tell)
		tell_receiver(l, name);
}

static struct zconn *conn_by_rid(struct zlink *l, const uint8_t *rid, size_t len)
{
	for (struct zconn *c = l->conns; c; c = c->next)
		if (c->rid_len == len && memcmp(c->rid, rid, len) == 0)
			return c;
	return NULL;
}

/* Keeps at most CONNS_PER_PEER connections of p: forgets the one heard
 * from least recently, never the receiver. */
static void limit_conns(struct zlink *l, struct zpeer *p)
{
	size_t n = 0;
	struct zconn *oldest = NULL;
	for (struct zconn *c = l->conns; c; c = c->next) {
		if (strcmp(c->endpoint, p->name) != 0)
			continue;
		n++;
		if (c != p->receiver && (!oldest || c->seen_ms < oldest->seen_ms))
			oldest = c;
	}
	if (n >= CONNS_PER_PEER && oldest)
		drop_conn(l, oldest, "too-many-connections", true);
}

/* The connection rid of peer p (made on its first message), marked alive. */
static struct zconn *conn_for(struct zlink *l, struct zpeer *p, const uint8_t *rid,
			      size_t rid_len, const char *key, const char *addr)
{
	struct zconn *c = conn_by_rid(l, rid, rid_len);
	if (c && (strcmp(c->endpoint, p->name) != 0 || !zkey_equal(c->key, key))) {
		drop_conn(l, c, "routing-id-reused", true); /* another key took the id over */
		c = NULL;
	}
	if (!c) {
		limit_conns(l, p);
		c = xcalloc(1, sizeof(*c));
		c->serial = ++l->next_serial;
		memcpy(c->rid, rid, rid_len);
		c->rid_len = rid_len;
		c->endpoint = xstrdup(p->name);
		memcpy(c->key, key, ZKEY_Z85_LEN + 1);
		str_copy(c->addr, addr ? addr : "-", sizeof(c->addr));
		c->window = l->window;
		c->next = l->conns;
		l->conns = c;
		log_debug("event=zmq-connection endpoint=%s address=%s", p->name, c->addr);
	}
	c->seen_ms = clock_mono_ms();
	return c;
}

int zlink_deliver(struct zlink *l, struct zconn *c, const struct out_msg *msg, const char *name)
{
	assert(c->nunconfirmed < ZP_WINDOW_MAX);
	struct zp_msg m = { .cmd = ZP_DELIVER, .id = msg->id, .body = msg->body, .size = msg->size };
	str_copy(m.name, name, sizeof(m.name));
	int r = send_to(l, c->rid, c->rid_len, &m);
	if (r == 0)
		c->unconfirmed[c->nunconfirmed++] = msg->id;
	else if (r == -EHOSTUNREACH)
		drop_conn(l, c, "gone", false); /* the caller is the one to tell */
	return r == -EHOSTUNREACH || r == -EAGAIN || r == 0 ? r : -EHOSTUNREACH;
}

/* Every second or so: connections silent for the heartbeat timeout are gone. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct zlink *l = arg;
	int64_t now = clock_mono_ms();
	/* One at a time from the start: telling an endpoint may let its side
	 * deliver, and a failed send drops another connection. */
	for (bool again = true; again;) {
		again = false;
		for (struct zconn *c = l->conns; c; c = c->next)
			if (now - c->seen_ms > l->hb_timeout_ms) {
				drop_conn(l, c, "heartbeat-timeout", true);
				again = true;
				break;
			}
	}
}

/* ---- submissions -------------------------------------------------------- */

/* The answer to a submission, by ingest's outcome. */
static void outcome_answer(const struct ingest_outcome *o, struct zp_msg *a)
{
	const char *why = o->reason ? o->reason : "";
	switch (o->result) {
	case INGEST_ACCEPTED:
	case INGEST_DUPLICATE:
		a->cmd = ZP_ACCEPTED;
		a->id = o->id;
		return;
	case INGEST_DEAD:
		a->cmd = ZP_REJECTED;
		str_copy(a->code, "dead-letter", sizeof(a->code));
		zp_set_text(a, "kept as dead letter %" PRId64 ": %s", o->id, why);
		return;
	case INGEST_REJECTED:
		a->cmd = ZP_REJECTED;
		str_copy(a->code, o->error && o->error->code == CODEC_ETOOBIG ? "too-large" : "invalid",
			 sizeof(a->code));
		zp_set_text(a, "%s: %s", o->error ? codec_errcode_name(o->error->code) : "invalid",
			    o->error ? o->error->text : why);
		return;
	case INGEST_FORBIDDEN:
		a->cmd = ZP_REJECTED;
		str_copy(a->code, "forbidden", sizeof(a->code));
		zp_set_text(a, "%s", why);
		return;
	case INGEST_BUSY:
		a->cmd = ZP_REJECTED;
		a->retryable = true;
		str_copy(a->code, "busy", sizeof(a->code));
		zp_set_text(a, "%s", why);
		return;
	case INGEST_TEMPFAIL:
		a->cmd = ZP_REJECTED;
		a->retryable = true;
		str_copy(a->code, "tempfail", sizeof(a->code));
		zp_set_text(a, "the broker cannot store messages now: try again later");
		return;
	}
	assert(!"an ingest outcome");
}

static void on_submitted(const struct ingest_outcome *o, void *arg)
{
	struct zsub *s = arg;
	struct zlink *l = s->l;
	struct zpeer *p = peer_named(l, s->endpoint);
	if (p && p->sub_n > 0) {
		p->sub_n--;
		p->sub_bytes -= s->size <= p->sub_bytes ? s->size : p->sub_bytes;
	}
	l->subs--;
	struct zp_msg a = { .cmd = ZP_ERROR };
	str_copy(a.ref, s->ref, sizeof(a.ref));
	outcome_answer(o, &a);
	if (a.cmd == ZP_ACCEPTED && a.id <= 0) { /* cannot be: say so rather than lie */
		a = (struct zp_msg){ .cmd = ZP_REJECTED, .retryable = true };
		str_copy(a.ref, s->ref, sizeof(a.ref));
		str_copy(a.code, "tempfail", sizeof(a.code));
		zp_set_text(&a, "no message id: try again");
	}
	int r = send_to(l, s->rid, s->rid_len, &a);
	if (r < 0)
		log_info("event=zmq-answer-dropped endpoint=%s ref=%s answer=%s error=\"%s\"",
			 s->endpoint, s->ref, zp_cmd_name(a.cmd), zmq_strerror(-r));
	free(s->endpoint);
	free(s);
}

static void submit(struct zlink *l, struct zpeer *p, struct zconn *c, const struct zp_msg *m)
{
	char why[160];
	if (l->stopped) {
		send_rejected(l, c->rid, c->rid_len, m->ref, true, "stopping",
			      "the broker is shutting down: try again later");
		return;
	}
	if (m->size > l->max_bytes) {
		snprintf(why, sizeof(why), "%zu bytes is more than max_message_size (%zu)", m->size,
			 l->max_bytes);
		send_rejected(l, c->rid, c->rid_len, m->ref, false, "too-large", why);
		return;
	}
	if (p->sub_n >= SUBMIT_MAX || (p->sub_n > 0 && p->sub_bytes + m->size > SUBMIT_BYTES)) {
		snprintf(why, sizeof(why), "%zu submissions of this endpoint are being stored: wait "
			 "for their answers", p->sub_n);
		send_rejected(l, c->rid, c->rid_len, m->ref, true, "busy", why);
		return;
	}
	struct zsub *s = xcalloc(1, sizeof(*s));
	*s = (struct zsub){ .l = l, .rid_len = c->rid_len, .endpoint = xstrdup(p->name),
			    .size = m->size };
	memcpy(s->rid, c->rid, c->rid_len);
	str_copy(s->ref, m->ref, sizeof(s->ref));
	uint8_t *body = xmalloc(m->size + 1);
	memcpy(body, m->body, m->size);
	body[m->size] = '\0';
	p->sub_n++;
	p->sub_bytes += m->size;
	l->subs++;
	/* REF is the peer's name for an answer, not for the message (zmq.md:
	 * not unique, not kept): a resubmit after a lost answer is named by
	 * the body's digest instead (INGEST_BODY_TOKEN) and gets the first
	 * copy's answer, a dead letter its rejected dead-letter again. Safe
	 * for MedCom: the same bytes are the same letters (sender, letter id),
	 * whose resend is a duplicate anyway. */
	ingest_submit(l->env.ingest, p->name, body, m->size, INGEST_NO_RECEIPT | INGEST_BODY_TOKEN,
		      on_submitted, s);
}

/* ---- what a peer says --------------------------------------------------- */

static void heartbeat(struct zlink *l, struct zpeer *p, struct zconn *c)
{
	struct zp_msg a = { .cmd = ZP_HEARTBEAT };
	str_copy(a.state, p->receiver == c ? "receiving" : p->receiver ? "standby" : "idle",
		 sizeof(a.state));
	send_to(l, c->rid, c->rid_len, &a);
}

static void ready(struct zlink *l, struct zpeer *p, struct zconn *c, unsigned window)
{
	c->ready = true;
	c->window = window < l->window ? window : l->window;
	if (p->receiver != c) {
		p->receiver = c;
		log_notice("event=zmq-receiver endpoint=%s address=%s window=%u", p->name, c->addr,
			   c->window);
	}
	heartbeat(l, p, c);
	tell_receiver(l, p->name);
}

/* delivered or refused: the message is no longer unconfirmed on any of the
 * endpoint's connections; its delivery sides decide what it means. */
static void answered(struct zlink *l, struct zpeer *p, const struct zp_msg *m)
{
	for (struct zconn *c = l->conns; c; c = c->next)
		if (strcmp(c->endpoint, p->name) == 0)
			conn_forget_id(c, m->id);
	size_t n = l->neps;
	_cleanup_free_ struct zep **eps = xmalloc((n + 1) * sizeof(*eps));
	memcpy(eps, l->eps, n * sizeof(*eps));
	for (size_t i = 0; i < n; i++)
		if (strcmp(zep_name(eps[i]), p->name) == 0)
			zep_on_answer(eps[i], m);
	if (m->cmd == ZP_REFUSED)
		log_notice("event=zmq-refused-by-peer endpoint=%s msg=%" PRId64 " retryable=%d "
			   "code=%s reason=\"%s\"", p->name, m->id, m->retryable, m->code, m->text);
}

static void protocol_error(struct zlink *l, struct zconn *c, const struct zp_msg *m,
			   const char *why)
{
	if (rl_allow(&l->rl_protocol, "protocol"))
		log_warn("event=zmq-protocol-error endpoint=%s address=%s error=\"%s\"", c->endpoint,
			 c->addr, why);
	if (m->cmd == ZP_SUBMIT && m->ref[0])
		send_rejected(l, c->rid, c->rid_len, m->ref, false, "protocol", why);
	else
		send_error(l, c->rid, c->rid_len, "protocol", why);
}

/* A message from a key the live config does not (or no longer) bind. */
static void unknown_key(struct zlink *l, const uint8_t *rid, size_t rid_len, const char *user,
			const char *key, const char *addr)
{
	struct zconn *c = conn_by_rid(l, rid, rid_len);
	if (c)
		drop_conn(l, c, "key-not-configured", true);
	if (rl_allow(&l->rl_refused, "refused"))
		log_warn("event=zmq-refused reason=key-not-configured endpoint=%s key=%s address=%s "
			 "security=authentication", user ? user : "-", key ? key : "-",
			 addr ? addr : "-");
	send_error(l, rid, rid_len, "unauthorized",
		   "this key is not (or no longer) bound to an endpoint of the broker");
}

static void handle(struct zlink *l, const uint8_t *rid, size_t rid_len, const char *user,
		   const char *key, const char *addr, const struct zp_frame *f, size_t n, bool extra)
{
	struct zpeer *p = peer_named(l, user);
	if (!p || !key || strlen(key) != ZKEY_Z85_LEN || !zkey_equal(p->key, key)) {
		unknown_key(l, rid, rid_len, user, key, addr);
		return;
	}
	struct zconn *c = conn_for(l, p, rid, rid_len, key, addr);
	struct zp_msg m;
	char why[160];
	if (extra) {
		char ignored[8];
		zp_parse(f, n, &m, ignored, sizeof(ignored)); /* for m.cmd and m.ref */
		snprintf(why, sizeof(why), "more than %d frames in one message", ZP_FRAMES_MAX);
		protocol_error(l, c, &m, why);
		return;
	}
	if (zp_parse(f, n, &m, why, sizeof(why)) < 0) {
		protocol_error(l, c, &m, why);
		return;
	}
	switch (m.cmd) {
	case ZP_SUBMIT:
		submit(l, p, c, &m);
		return;
	case ZP_DELIVERED:
	case ZP_REFUSED:
		answered(l, p, &m);
		return;
	case ZP_READY:
		ready(l, p, c, m.window);
		return;
	case ZP_HEARTBEAT:
		heartbeat(l, p, c);
		return;
	case ZP_ACCEPTED:
	case ZP_REJECTED:
	case ZP_DELIVER:
	case ZP_ERROR:
		break;
	}
	snprintf(why, sizeof(why), "%s is the broker's to send, not a peer's", zp_cmd_name(m.cmd));
	protocol_error(l, c, &m, why);
}

/* Reads one message from the ROUTER; false when none is waiting. */
static bool read_one(struct zlink *l)
{
	zmq_msg_t rid, parts[ZP_FRAMES_MAX];
	struct zp_frame f[ZP_FRAMES_MAX];
	size_t n = 0;
	bool extra = false;

	zmq_msg_init(&rid);
	if (zmq_msg_recv(&rid, l->router, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&rid);
		return false;
	}
	bool more = zmq_msg_more(&rid);
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, l->router, ZMQ_DONTWAIT) < 0) { /* cannot be: whole */
			zmq_msg_close(&part);
			break;
		}
		more = zmq_msg_more(&part);
		if (n < ZP_FRAMES_MAX) {
			parts[n] = part;
			f[n] = (struct zp_frame){ zmq_msg_data(&parts[n]), zmq_msg_size(&parts[n]) };
			n++;
		} else {
			extra = true;
			zmq_msg_close(&part);
		}
	}
	/* The properties come from the first frame the peer sent: libzmq 4.3
	 * leaves them off the routing frame once ZMQ_EVENTS has looked ahead. A
	 * message of no frame at all says nothing and is dropped. */
	size_t rid_len = zmq_msg_size(&rid);
	if (rid_len > 0 && rid_len <= RID_MAX && n > 0)
		handle(l, zmq_msg_data(&rid), rid_len, zmq_msg_gets(&parts[0], "User-Id"),
		       zmq_msg_gets(&parts[0], KEY_PROPERTY), zmq_msg_gets(&parts[0], "Peer-Address"),
		       f, n, extra);
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	zmq_msg_close(&rid);
	return true;
}

/* The ROUTER's ZMQ_FD woke (or a send may have taken its edge): read until
 * nothing is waiting, READ_BUDGET at a time. */
static void on_router(evutil_socket_t fd, short what, void *arg)
{
	struct zlink *l = arg;
	l->in_router = true;
	int budget = READ_BUDGET;
	while (budget-- > 0 && (sockopt_events(l->router) & ZMQ_POLLIN))
		read_one(l);
	l->in_router = false;
	if (sockopt_events(l->router) & ZMQ_POLLIN) {
		struct timeval zero = { 0, 0 };
		event_add(l->resume_ev, &zero); /* the rest after the loop polled */
	}
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	on_router(fd, what, arg);
}

/* ---- the ZAP handler (RFC 27) ------------------------------------------ */

/* ZMTP metadata: one property, name-length (1 byte), name, value-length (4,
 * big-endian), value. */
static size_t metadata(uint8_t *out, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value), at = 0;
	out[at++] = (uint8_t)n;
	memcpy(out + at, name, n);
	at += n;
	out[at++] = (uint8_t)(v >> 24);
	out[at++] = (uint8_t)(v >> 16);
	out[at++] = (uint8_t)(v >> 8);
	out[at++] = (uint8_t)v;
	memcpy(out + at, value, v);
	return at + v;
}

static bool frame_is(const zmq_msg_t *m, const char *s)
{
	return zmq_msg_size((zmq_msg_t *)m) == strlen(s) &&
	       memcmp(zmq_msg_data((zmq_msg_t *)m), s, strlen(s)) == 0;
}

#define ZAP_FRAMES 7

/* Decides one request: 200 with the endpoint's name and key, 400 else. */
static void zap_decide(struct zlink *l, zmq_msg_t *req, size_t n, const char **code,
		       const char **text, const char **user, char key[ZKEY_Z85_LEN + 1])
{
	*code = "400";
	*text = "unknown key";
	*user = "";
	key[0] = '\0';
	if (n != ZAP_FRAMES || !frame_is(&req[0], "1.0")) {
		*code = "500";
		*text = "malformed request";
		return;
	}
	if (!frame_is(&req[2], ZAP_DOMAIN) || !frame_is(&req[5], "CURVE") ||
	    zmq_msg_size(&req[6]) != ZKEY_LEN) {
		*text = "only CURVE in the edibroker domain";
		return;
	}
	zkey_encode(zmq_msg_data(&req[6]), key);
	struct zpeer *p = peer_with_key(l, key);
	char addr[64];
	size_t alen = zmq_msg_size(&req[3]) < sizeof(addr) - 1 ? zmq_msg_size(&req[3])
							       : sizeof(addr) - 1;
	memcpy(addr, zmq_msg_data(&req[3]), alen);
	addr[alen] = '\0';
	if (!p) {
		if (rl_allow(&l->rl_refused, "refused"))
			log_warn("event=zmq-refused reason=unknown-key key=%s address=%s "
				 "security=authentication", key, addr);
		return;
	}
	*code = "200";
	*text = "OK";
	*user = p->name;
	log_debug("event=zmq-admitted endpoint=%s address=%s", p->name, addr);
}

static void zap_reply(struct zlink *l, zmq_msg_t *req, size_t n)
{
	const char *code, *text, *user;
	char key[ZKEY_Z85_LEN + 1];
	zap_decide(l, req, n, &code, &text, &user, key);
	uint8_t meta[128];
	size_t mlen = code[0] == '2' ? metadata(meta, KEY_PROPERTY, key) : 0;
	const void *reqid = n > 1 ? zmq_msg_data(&req[1]) : "";
	size_t reqid_len = n > 1 ? zmq_msg_size(&req[1]) : 0;
	struct zp_frame out[] = { { "1.0", 3 }, { reqid, reqid_len }, { code, 3 },
				  { text, strlen(text) }, { user, strlen(user) }, { meta, mlen } };
	for (size_t i = 0; i < ARRAY_SIZE(out); i++)
		if (zmq_send(l->zap, out[i].data, out[i].size,
			     ZMQ_DONTWAIT | (i + 1 < ARRAY_SIZE(out) ? ZMQ_SNDMORE : 0)) < 0) {
			log_err("event=zmq-zap-failed error=\"%s\"", zmq_strerror(errno));
			break;
		}
}

/* Reads one ZAP request and answers it; false when none is waiting. */
static bool zap_one(struct zlink *l)
{
	zmq_msg_t req[ZAP_FRAMES];
	size_t n = 0;
	bool more = true;
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, l->zap, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			if (n == 0)
				return false;
			break;
		}
		more = zmq_msg_more(&part);
		if (n < ZAP_FRAMES)
			req[n++] = part;
		else {
			n = ZAP_FRAMES + 1; /* too many: malformed */
			zmq_msg_close(&part);
		}
	}
	size_t kept = n > ZAP_FRAMES ? ZAP_FRAMES : n;
	zap_reply(l, req, n);
	for (size_t i = 0; i < kept; i++)
		zmq_msg_close(&req[i]);
	return true;
}

static void on_zap(evutil_socket_t fd, short what, void *arg)
{
	struct zlink *l = arg;
	int budget = ZAP_BUDGET;
	while (budget-- > 0 && (sockopt_events(l->zap) & ZMQ_POLLIN))
		zap_one(l);
	if (sockopt_events(l->zap) & ZMQ_POLLIN) {
		struct timeval zero = { 0, 0 };
		event_add(l->zap_resume_ev, &zero);
	}
}

/* ---- the socket monitor: failed handshakes in the log ------------------ */

/* libzmq names the listening endpoint, not the peer, in these events; a
 * refused key is logged with the peer's address by the ZAP handler. */

static const char *handshake_reason(uint16_t event)
{
	switch (event) {
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		return "refused-key";
	case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		return "protocol";
	default:
		return "no-detail";
	}
}

static void on_monitor(evutil_socket_t fd, short what, void *arg)
{
	struct zlink *l = arg;
	int budget = ZAP_BUDGET;
	while (budget-- > 0 && (sockopt_events(l->monitor) & ZMQ_POLLIN)) {
		zmq_msg_t ev, addr;
		zmq_msg_init(&ev);
		zmq_msg_init(&addr);
		if (zmq_msg_recv(&ev, l->monitor, ZMQ_DONTWAIT) < 0 ||
		    zmq_msg_recv(&addr, l->monitor, ZMQ_DONTWAIT) < 0 || zmq_msg_size(&ev) < 6) {
			zmq_msg_close(&ev);
			zmq_msg_close(&addr);
			break;
		}
		const uint8_t *d = zmq_msg_data(&ev);
		uint16_t event; /* both in host order, as libzmq writes them */
		uint32_t value;
		memcpy(&event, d, sizeof(event));
		memcpy(&value, d + 2, sizeof(value));
		int alen = (int)(zmq_msg_size(&addr) < 64 ? zmq_msg_size(&addr) : 64);
		if (rl_allow(&l->rl_handshake, "handshake"))
			log_warn("event=zmq-handshake-failed reason=%s code=0x%x listener=%.*s",
				 handshake_reason(event), value, alen, (const char *)zmq_msg_data(&addr));
		zmq_msg_close(&ev);
		zmq_msg_close(&addr);
	}
	if (sockopt_events(l->monitor) & ZMQ_POLLIN)
		event_active(l->monitor_ev, EV_READ, 0);
}

/* ---- keys from the config ----------------------------------------------- */

/* The endpoints of cfg that have a key. A key two endpoints claim admits
 * neither (who would it be?): -EINVAL with why, the others still built. */
static int build_peers(const struct config *cfg, struct zpeer **out, size_t *nout, char *err,
		       size_t errlen)
{
	struct zpeer *p = xcalloc(cfg->nendpoints + 1, sizeof(*p));
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const char *key = zmq_public_key_of(cfg, &cfg->endpoints[i]);
		if (!key)
			continue;
		p[n].name = xstrdup(cfg->endpoints[i].name);
		str_copy(p[n].key, key, sizeof(p[n].key));
		n++;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (p[i].key[0] && zkey_equal(p[i].key, p[j].key)) {
				snprintf(err, errlen, "zmq_public_key of endpoints '%s' and '%s' is "
					 "the same key: neither is admitted", p[i].name, p[j].name);
				r = -EINVAL;
			}
	for (size_t i = 0; i < n; i++) /* excluded, after every pair was compared */
		for (size_t j = 0; j < n; j++)
			if (i != j && zkey_equal(p[i].key, p[j].key))
				memset(p[i].key, '!', ZKEY_Z85_LEN); /* never a decoded key */
	*out = p;
	*nout = n;
	return r;
}

static void free_peers(struct zpeer *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].name);
	free(p);
}

static void apply_settings(struct zlink *l, const struct config *cfg)
{
	const struct zmq_section *s = zmq_section_of(cfg);
	l->window = (unsigned)s->window;
	l->hb_timeout_ms = s->heartbeat_timeout_ms;
	l->max_bytes = (size_t)cfg->max_message_size;
	int64_t tick = l->hb_timeout_ms / 4 < 100 ? 100 : l->hb_timeout_ms / 4;
	if (tick > 1000)
		tick = 1000;
	struct timeval tv = { (time_t)(tick / 1000), (suseconds_t)(tick % 1000) * 1000 };
	event_add(l->tick_ev, &tv);
}

/* ---- making, reloading and stopping the link ---------------------------- */

static int sockopt_int(void *sock, int opt, int value)
{
	return zmq_setsockopt(sock, opt, &value, sizeof(value));
}

static struct event *watch(struct zlink *l, void *sock, event_callback_fn fn, char *err,
			   size_t errlen)
{
	int fd;
	size_t len = sizeof(fd);
	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) < 0) {
		snprintf(err, errlen, "zmq: ZMQ_FD: %s", zmq_strerror(errno));
		return NULL;
	}
	struct event *ev = event_new(l->env.base, fd, EV_READ | EV_PERSIST, fn, l);
	event_add(ev, NULL);
	event_active(ev, EV_READ, 0); /* whatever arrived before the watch */
	return ev;
}

/* The ZAP handler first: with none bound, libzmq would admit any key. */
static int bind_zap(struct zlink *l, char *err, size_t errlen)
{
	l->zap = zmq_socket(l->ctx, ZMQ_REP);
	if (!l->zap || sockopt_int(l->zap, ZMQ_LINGER, 0) < 0 || zmq_bind(l->zap, ZAP_ENDPOINT) < 0) {
		snprintf(err, errlen, "zmq: cannot bind the ZAP handler (%s): %s; without it any key "
			 "would be let in, so the broker does not start", ZAP_ENDPOINT,
			 zmq_strerror(errno));
		return -1;
	}
	l->zap_ev = watch(l, l->zap, on_zap, err, errlen);
	return l->zap_ev ? 0 : -1;
}

static int router_options(struct zlink *l, const uint8_t secret[ZKEY_LEN])
{
	int64_t maxmsg = (int64_t)l->max_bytes;
	size_t per = l->max_bytes ? l->max_bytes : 1;
	int rcvhwm = (int)(RCV_BUDGET_BYTES / per);
	rcvhwm = rcvhwm < 16 ? 16 : rcvhwm > 1000 ? 1000 : rcvhwm;
	if (sockopt_int(l->router, ZMQ_CURVE_SERVER, 1) < 0 ||
	    zmq_setsockopt(l->router, ZMQ_CURVE_SECRETKEY, secret, ZKEY_LEN) < 0 ||
	    zmq_setsockopt(l->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0 ||
	    sockopt_int(l->router, ZMQ_ROUTER_MANDATORY, 1) < 0 ||
	    zmq_setsockopt(l->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0 ||
	    sockopt_int(l->router, ZMQ_RCVHWM, rcvhwm) < 0 ||
	    sockopt_int(l->router, ZMQ_SNDHWM, SNDHWM) < 0 ||
	    sockopt_int(l->router, ZMQ_LINGER, 0) < 0 ||
	    sockopt_int(l->router, ZMQ_HANDSHAKE_IVL, HANDSHAKE_MS) < 0 ||
	    sockopt_int(l->router, ZMQ_HEARTBEAT_IVL, ZMTP_HEARTBEAT_MS) < 0 ||
	    sockopt_int(l->router, ZMQ_HEARTBEAT_TIMEOUT, 3 * ZMTP_HEARTBEAT_MS) < 0 ||
	    sockopt_int(l->router, ZMQ_TCP_KEEPALIVE, 1) < 0)
		return -1;
	return 0;
}

static int bind_router(struct zlink *l, const char *keyfile, char *err, size_t errlen)
{
	uint8_t secret[ZKEY_LEN];
	char why[256];
	if (zkey_read_secret(keyfile, secret, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "zmq_secret_key: %s", why);
		return -1;
	}
	int r = zkey_public_of(secret, l->public_key);
	l->router = zmq_socket(l->ctx, ZMQ_ROUTER);
	if (r == 0 && (!l->router || router_options(l, secret) < 0))
		r = -1;
	explicit_bzero(secret, sizeof(secret));
	if (r < 0) {
		snprintf(err, errlen, "zmq: cannot set up the socket: %s", zmq_strerror(errno));
		return -1;
	}
	int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
	if (zmq_socket_monitor(l->router, MONITOR_ENDPOINT, events) < 0 ||
	    !(l->monitor = zmq_socket(l->ctx, ZMQ_PAIR)) ||
	    sockopt_int(l->monitor, ZMQ_LINGER, 0) < 0 ||
	    zmq_connect(l->monitor, MONITOR_ENDPOINT) < 0) {
		snprintf(err, errlen, "zmq: cannot watch the socket: %s", zmq_strerror(errno));
		return -1;
	}
	if (zmq_bind(l->router, l->listen) < 0) {
		snprintf(err, errlen, "zmq_listen: cannot bind %s: %s", l->listen,
			 zmq_strerror(errno));
		return -1;
	}
	if (!(l->monitor_ev = watch(l, l->monitor, on_monitor, err, errlen)) ||
	    !(l->router_ev = watch(l, l->router, on_router, err, errlen)))
		return -1;
	return 0;
}

void *zlink_new(const struct config *cfg, const struct transport_shared_env *env, char *err,
		size_t errlen)
{
	const struct zmq_section *s = zmq_section_of(cfg);
	err[0] = '\0';
	if (!s || str_empty(s->listen))
		return NULL; /* off */
	if (str_empty(s->secret_key)) {
		snprintf(err, errlen, "%s: [broker] zmq_listen needs zmq_secret_key (the broker's "
			 "CURVE secret key file: edibroker-peer keygen FILE)", cfg->path);
		return NULL;
	}
	struct zlink *l = xcalloc(1, sizeof(*l));
	l->env = *env;
	l->listen = xstrdup(s->listen);
	l->tick_ev = event_new(env->base, -1, EV_PERSIST, on_tick, l);
	l->resume_ev = evtimer_new(env->base, on_resume, l);
	l->zap_resume_ev = evtimer_new(env->base, on_zap, l);
	apply_settings(l, cfg);
	char why[256] = "";
	if (build_peers(cfg, &l->peers, &l->npeers, why, sizeof(why)) < 0)
		log_err("event=zmq-key-conflict error=\"%s\"", why);
	l->ctx = zmq_ctx_new();
	if (!l->ctx) {
		snprintf(err, errlen, "zmq: cannot make a context: %s", zmq_strerror(errno));
		zlink_free(l);
		return NULL;
	}
	if (bind_zap(l, err, errlen) < 0 || bind_router(l, s->secret_key, err, errlen) < 0) {
		zlink_free(l);
		return NULL;
	}
	log_notice("event=zmq-listening address=%s public_key=%s peers=%zu window=%u",
		   l->listen, l->public_key, l->npeers, l->window);
	return l;
}

int zlink_reload(void *shared, const struct config *cfg, char *err, size_t errlen)
{
	struct zlink *l = shared;
	struct zpeer *peers;
	size_t n;
	char why[256] = "";
	/* A conflict admits neither key, in force at once: the old keys must
	 * not stay (one of them may be the one the reload removes). */
	if (build_peers(cfg, &peers, &n, why, sizeof(why)) < 0)
		log_err("event=zmq-key-conflict error=\"%s\" state=neither-admitted", why);
	for (size_t i = 0; i < n; i++) { /* what the link keeps for an endpoint, by name */
		struct zpeer *old = peer_named(l, peers[i].name);
		if (!old)
			continue;
		peers[i].sub_n = old->sub_n;
		peers[i].sub_bytes = old->sub_bytes;
		if (zkey_equal(old->key, peers[i].key))
			peers[i].receiver = old->receiver;
	}
	free_peers(l->peers, l->npeers);
	l->peers = peers;
	l->npeers = n;
	apply_settings(l, cfg);
	/* A connection whose key is no longer its endpoint's goes now: its next
	 * message is refused anyway, and nothing more is delivered to it. */
	struct zconn *next;
	for (struct zconn *c = l->conns; c; c = next) {
		next = c->next;
		struct zpeer *p = peer_named(l, c->endpoint);
		if (!p || !zkey_equal(p->key, c->key)) {
			log_notice("event=zmq-key-removed endpoint=%s address=%s "
				   "state=connection-refused", c->endpoint, c->addr);
			drop_conn(l, c, "key-removed", false);
		} else if (c->window > l->window) {
			c->window = l->window;
		}
	}
	for (size_t i = 0; i < l->neps; i++) /* endpoints get new sides next anyway */
		zep_on_receiver(l->eps[i]);
	log_info("event=zmq-reloaded peers=%zu", l->npeers);
	return 0;
}

void zlink_stop(void *shared)
{
	struct zlink *l = shared;
	l->stopped = true;
}

void zlink_free(void *shared)
{
	struct zlink *l = shared;
	if (!l)
		return;
	while (l->conns) {
		struct zconn *c = l->conns;
		l->conns = c->next;
		conn_free(c);
	}
	struct event *evs[] = { l->router_ev, l->zap_ev, l->monitor_ev, l->resume_ev,
				l->zap_resume_ev, l->tick_ev };
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	if (l->router)
		zmq_socket_monitor(l->router, NULL, 0);
	void *socks[] = { l->monitor, l->router, l->zap };
	for (size_t i = 0; i < ARRAY_SIZE(socks); i++)
		if (socks[i])
			zmq_close(socks[i]);
	if (l->ctx)
		zmq_ctx_term(l->ctx);
	if (l->subs)
		log_debug("event=zmq-answers-abandoned count=%zu", l->subs);
	free_peers(l->peers, l->npeers);
	free(l->eps);
	free(l->listen);
	free(l);
}

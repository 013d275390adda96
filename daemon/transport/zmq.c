/*
 * zmq.c - the ZeroMQ transport's keys and, per endpoint with transport =
 * zmq, its delivery side over the link (zmq_link.c).
 *
 * Keys: [broker] zmq_listen, zmq_secret_key, zmq_window,
 * zmq_heartbeat_timeout (the link's; off unless zmq_listen is set), and
 * zmq_public_key on any endpoint (its credential on the link, whatever its
 * transport: a spool endpoint may submit over ZeroMQ too). What spans the
 * whole config (a key needs the listener, transport = zmq needs a key, a
 * key belongs to one endpoint) is check_config's, over every endpoint
 * whatever its transport, at start-up and in --check-config; a reload
 * that gives one key to two endpoints admits neither (zmq_link.c).
 *
 * Delivery (deliver/probe/cancel, transport.h): a batch goes, in order, to
 * the connection the link says receives for the endpoint, with at most the
 * connection's window unconfirmed at a time; each "delivered" confirms one
 * message, and the batch completes when its messages are confirmed, when
 * one is refused (for what it is: res.rejected, set aside; or "not now":
 * an endpoint failure), when no connection receives (fail fast: the
 * endpoint is down, not slow), or at the deadline (cancel). Confirmed
 * means a prefix: a message counts only once every one before it is
 * confirmed, so the queue's order holds.
 *
 * At least once: when the receiving connection changes, what was sent on
 * the old one and not confirmed is sent again on the new one; a message
 * still unconfirmed on the same connection is not sent twice (ZeroMQ keeps
 * a connection's messages in order, or loses the connection). A
 * confirmation that arrives after its batch gave up is remembered (LATE_MAX
 * of them) and counts when the scheduler offers that message again, so a
 * slow receiver is not sent what it already has.
 *
 * Several daemons: no message is sent once the endpoint's lease is no
 * longer trusted here (transport_env.send_until); the batch ends with what
 * was confirmed.
 */
#include "transport/zmq_link.h"

#include "base/clock.h"
#include "codecs/base/mem.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ZMQ_NAME "zmq"
#define RETRY_SEND_MS 20   /* a receiver's pipe was full: try again this soon */
#define LATE_MAX 1024

/* A zmq_listen value: a tcp:// or ipc:// endpoint libzmq can bind. */
static int check_listen(const char *v, char *why, size_t len)
{
	if ((strncmp(v, "tcp://", 6) == 0 && strlen(v) > 6) ||
	    (strncmp(v, "ipc://", 6) == 0 && strlen(v) > 6))
		return 0;
	snprintf(why, len, "'%s' is not a ZeroMQ address to listen on (tcp://HOST:PORT or "
		 "ipc://PATH)", v);
	return -EINVAL;
}

static int check_public_key(const char *v, char *why, size_t len)
{
	if (zkey_decode(v, NULL))
		return 0;
	snprintf(why, len, "not a CURVE public key (40 Z85 characters, as edibroker-peer keygen "
		 "prints)");
	return -EINVAL;
}

#define ZS_KEY(key, t, field) CONF_KEY(struct zmq_section, key, t, field)

static const struct conf_key zmq_section_keys[] = {
	{ ZS_KEY("zmq_listen", CONF_STR, listen), .check = check_listen, .flags = CONF_OPTIONAL },
	{ ZS_KEY("zmq_secret_key", CONF_PATH, secret_key),
	  .flags = CONF_OPTIONAL | CONF_PRIVATE_FILE },
	{ ZS_KEY("zmq_window", CONF_INT, window), .def = "128", .min = 1, .max = ZP_WINDOW_MAX,
	  .flags = CONF_RELOAD },
	{ ZS_KEY("zmq_heartbeat_timeout", CONF_DURATION, heartbeat_timeout_ms), .def = "15s",
	  .min = 300, .max = 1 * CONF_HOUR, .flags = CONF_RELOAD },
};

static const struct conf_key zmq_common_keys[] = {
	{ CONF_KEY(struct zmq_common, "zmq_public_key", CONF_STR, public_key),
	  .check = check_public_key, .flags = CONF_RELOAD | CONF_OPTIONAL },
};

static const struct conf_schema zmq_schema = {
	.name = ZMQ_NAME,
	.section = "broker",
	.section_keys = zmq_section_keys,
	.nsection_keys = ARRAY_SIZE(zmq_section_keys),
	.section_size = sizeof(struct zmq_section),
	.common_keys = zmq_common_keys,
	.ncommon_keys = ARRAY_SIZE(zmq_common_keys),
	.common_size = sizeof(struct zmq_common),
};

const struct zmq_section *zmq_section_of(const struct config *cfg)
{
	return config_section(cfg, &zmq_schema);
}

const char *zmq_public_key_of(const struct config *cfg, const struct endpoint_conf *ep)
{
	const struct zmq_common *c = config_endpoint_common(cfg, ep, &zmq_schema);
	return c && !str_empty(c->public_key) ? c->public_key : NULL;
}

/* ---- an endpoint's delivery side ---------------------------------------- */

enum { M_UNSENT, M_SENT, M_DONE, M_REFUSED };

struct zep {
	struct zlink *link;
	char *name;
	char *instance;
	void (*reachable)(void *ctx, const char *endpoint);
	void *ctx;
	const _Atomic int64_t *send_until; /* transport_env.send_until: the lease's trust */
	uint64_t known;             /* the receiver's serial when last looked at */
	struct event *done_ev, *retry_ev;
	/* the operation with the scheduler, if any */
	bool busy, finished;
	transport_done_fn done;
	void *arg;
	const struct out_msg *msgs;
	size_t n;
	uint8_t *st;                /* M_* per message */
	size_t prefix;              /* msgs[0..prefix) confirmed */
	size_t next;                /* no message before it is M_UNSENT (from prefix) */
	size_t refused_at;          /* the first refused message, or n */
	struct zp_msg refusal;      /* what the peer said about it */
	uint64_t serial;            /* the connection sent on; 0 = none yet */
	struct deliver_result res;
	/* confirmations that came after their batch ended */
	int64_t late[LATE_MAX];
	size_t nlate, late_at;
};

const char *zep_name(const struct zep *ep)
{
	return ep->name;
}

static void late_add(struct zep *ep, int64_t id)
{
	ep->late[ep->late_at] = id;
	ep->late_at = (ep->late_at + 1) % LATE_MAX;
	if (ep->nlate < LATE_MAX)
		ep->nlate++;
}

static bool late_take(struct zep *ep, int64_t id)
{
	for (size_t i = 0; i < ep->nlate; i++)
		if (ep->late[i] == id) {
			ep->late[i] = 0; /* ids are above 0: a free slot */
			return true;
		}
	return false;
}

/* Ends the operation: done() runs from the loop, never from the caller. */
static void finish(struct zep *ep, enum transport_fault fault, bool rejected, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));

static void finish(struct zep *ep, enum transport_fault fault, bool rejected, const char *fmt,
		   ...)
{
	ep->res = (struct deliver_result){ .delivered = ep->prefix, .fault = fault,
					   .rejected = rejected };
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ep->res.error, sizeof(ep->res.error), fmt, ap);
		va_end(ap);
	}
	ep->finished = true;
	event_del(ep->retry_ev);
	event_active(ep->done_ev, 0, 0);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct zep *ep = arg;
	if (!ep->busy || !ep->finished)
		return;
	struct deliver_result res = ep->res;
	transport_done_fn done = ep->done;
	void *darg = ep->arg;
	free(ep->st);
	ep->st = NULL;
	ep->msgs = NULL;
	ep->busy = ep->finished = false;
	done(darg, &res);
}

static void finish_refused(struct zep *ep)
{
	const struct zp_msg *r = &ep->refusal;
	if (!r->retryable) {
		finish(ep, FAULT_REJECTED, true, "%s: %s", r->code, r->text);
		return;
	}
	finish(ep, strcmp(r->code, "disk-full") == 0 ? FAULT_DISK_FULL : FAULT_REJECTED, false,
	       "the peer cannot take it now: %s: %s", r->code, r->text);
}

/* Sends what the window allows, in order; completes the operation when it
 * is decided. Called after every change: a confirmation, a new receiver, a
 * send that may go now. */
static void pump(struct zep *ep)
{
	if (!ep->busy || ep->finished || !ep->st)
		return;
	while (ep->prefix < ep->n && ep->st[ep->prefix] == M_DONE)
		ep->prefix++;
	if (ep->prefix == ep->n) {
		finish(ep, FAULT_NONE, false, NULL);
		return;
	}
	if (ep->prefix == ep->refused_at) {
		finish_refused(ep);
		return;
	}
	struct zconn *c = zlink_receiver(ep->link, ep->name);
	if (!c) {
		finish(ep, FAULT_REFUSED, false, "no connection of the peer receives (none said "
		       "ready, or it stopped sending heartbeats)");
		return;
	}
	if (zconn_serial(c) != ep->serial) { /* a new connection: all unconfirmed again */
		ep->serial = zconn_serial(c);
		for (size_t i = ep->prefix; i < ep->n; i++)
			if (ep->st[i] == M_SENT)
				ep->st[i] = M_UNSENT;
		ep->next = ep->prefix;
	}
	if (ep->next < ep->prefix)
		ep->next = ep->prefix;
	for (; ep->next < ep->n && ep->next <= ep->refused_at; ep->next++) {
		size_t i = ep->next;
		if (ep->st[i] != M_UNSENT)
			continue;
		if (zconn_has(c, ep->msgs[i].id)) { /* still with the peer, in order */
			ep->st[i] = M_SENT;
			continue;
		}
		if (zconn_unconfirmed(c) >= zconn_window(c))
			return;
		if (ep->send_until && clock_mono_ms() >= atomic_load(ep->send_until)) {
			/* several daemons: the lease is no longer trusted here */
			finish(ep, FAULT_TIMEOUT, false, "the endpoint's lease is no longer held here: "
			       "the rest is left to its holder");
			return;
		}
		char name[ZP_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s-%012" PRId64 ".%s", ep->instance, ep->msgs[i].id,
			 str_empty(ep->msgs[i].ext) ? "edi" : ep->msgs[i].ext);
		int r = zlink_deliver(ep->link, c, &ep->msgs[i], name);
		if (r == -EAGAIN) {
			struct timeval tv = { 0, RETRY_SEND_MS * 1000 };
			event_add(ep->retry_ev, &tv);
			return;
		}
		if (r < 0) {
			finish(ep, FAULT_REFUSED, false, "the peer's connection is gone");
			return;
		}
		ep->st[i] = M_SENT;
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

/* The index of id in the batch (ids ascend, but do not rely on it), or n. */
static size_t index_of(const struct zep *ep, int64_t id)
{
	for (size_t i = ep->prefix; i < ep->n; i++)
		if (ep->msgs[i].id == id)
			return i;
	return ep->n;
}

void zep_on_answer(struct zep *ep, const struct zp_msg *m)
{
	size_t i = ep->busy && !ep->finished && ep->st ? index_of(ep, m->id) : ep->n;
	if (i >= ep->n || !ep->st) {
		if (m->cmd == ZP_DELIVERED)
			late_add(ep, m->id);
		return;
	}
	if (m->cmd == ZP_DELIVERED) {
		ep->st[i] = M_DONE;
	} else if (ep->st[i] != M_DONE) {
		ep->st[i] = M_REFUSED;
		if (i < ep->refused_at) {
			ep->refused_at = i;
			ep->refusal = *m;
		}
	}
	pump(ep);
}

void zep_on_receiver(struct zep *ep)
{
	struct zconn *c = zlink_receiver(ep->link, ep->name);
	uint64_t serial = c ? zconn_serial(c) : 0;
	bool arrived = serial && serial != ep->known;
	ep->known = serial;
	if (ep->busy)
		pump(ep);
	else if (arrived && ep->reachable) /* a delivery in backoff may go now */
		ep->reachable(ep->ctx, ep->name);
}

/* ---- transport operations ----------------------------------------------- */

/* What each endpoint's key asks of the whole config: a listener for it, a
 * key for a transport = zmq endpoint, and no key two endpoints claim. Runs
 * over every endpoint, whatever its transport (check_config): a spool
 * endpoint may hold a key too. */
static int zmq_check_endpoint(const struct endpoint_conf *ep, const struct config *cfg,
			      char *err, size_t errlen)
{
	const struct zmq_section *s = zmq_section_of(cfg);
	bool mine = ep->transport && strcmp(ep->transport, ZMQ_NAME) == 0;
	const char *key = zmq_public_key_of(cfg, ep);
	if (mine && !key) {
		snprintf(err, errlen, "%s:%d: endpoint '%s': transport = zmq needs zmq_public_key "
			 "(the peer's CURVE public key)", cfg->path, ep->line, ep->name);
		return -EINVAL;
	}
	if ((mine || key) && (!s || str_empty(s->listen) || str_empty(s->secret_key))) {
		snprintf(err, errlen, "%s:%d: endpoint '%s': %s needs [broker] zmq_listen and "
			 "zmq_secret_key", cfg->path, ep->line, ep->name,
			 mine ? "transport = zmq" : "zmq_public_key");
		return -EINVAL;
	}
	for (const struct endpoint_conf *o = ep + 1; key && o < cfg->endpoints + cfg->nendpoints;
	     o++) {
		const char *k = zmq_public_key_of(cfg, o);
		if (k && zkey_equal(k, key)) {
			snprintf(err, errlen, "%s:%d: endpoint '%s': zmq_public_key is also endpoint "
				 "'%s''s: a key belongs to one endpoint", cfg->path,
				 config_endpoint_key_line(o, "zmq_public_key"), o->name, ep->name);
			return -EINVAL;
		}
	}
	return 0;
}

static int zmq_check_config(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		int r = zmq_check_endpoint(&cfg->endpoints[i], cfg, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static struct transport *zmq_create(const struct endpoint_conf *conf,
				    const struct transport_env *env, char *err, size_t errlen)
{
	if (!env->shared) {
		snprintf(err, errlen, "endpoint %s: transport = zmq needs [broker] zmq_listen",
			 conf->name);
		return NULL;
	}
	if (!zmq_public_key_of(env->cfg, conf)) {
		snprintf(err, errlen, "endpoint %s: transport = zmq needs zmq_public_key", conf->name);
		return NULL;
	}
	struct zep *ep = xcalloc(1, sizeof(*ep));
	ep->link = env->shared;
	ep->name = xstrdup(conf->name);
	ep->instance = xstrdup(env->instance);
	ep->reachable = env->reachable;
	ep->ctx = env->ctx;
	ep->send_until = env->send_until;
	struct zconn *c = zlink_receiver(ep->link, ep->name);
	ep->known = c ? zconn_serial(c) : 0;
	ep->done_ev = event_new(env->base, -1, 0, on_done, ep);
	ep->retry_ev = evtimer_new(env->base, on_retry, ep);
	zlink_attach(ep->link, ep);
	return (struct transport *)ep;
}

static void zmq_destroy(struct transport *t)
{
	struct zep *ep = (struct zep *)t;
	assert(!ep->busy && "the scheduler destroys a transport only between operations");
	zlink_detach(ep->link, ep);
	event_free(ep->done_ev);
	event_free(ep->retry_ev);
	free(ep->st);
	free(ep->name);
	free(ep->instance);
	free(ep);
}

/* Inbound is the link's, for every endpoint at once. */
static int zmq_start(struct transport *t)
{
	return 0;
}

static void zmq_stop(struct transport *t)
{
}

static void zmq_deliver(struct transport *t, const struct out_msg *msgs, size_t n,
			transport_done_fn done, void *arg)
{
	struct zep *ep = (struct zep *)t;
	assert(!ep->busy);
	ep->busy = true;
	ep->finished = false;
	ep->done = done;
	ep->arg = arg;
	ep->msgs = msgs;
	ep->n = n;
	ep->st = xcalloc(n + 1, 1);
	ep->prefix = ep->next = 0;
	ep->refused_at = n;
	ep->serial = 0;
	for (size_t i = 0; i < n && ep->nlate; i++)
		if (late_take(ep, msgs[i].id))
			ep->st[i] = M_DONE;
	pump(ep);
}

static void zmq_probe(struct transport *t, transport_done_fn done, void *arg)
{
	struct zep *ep = (struct zep *)t;
	assert(!ep->busy);
	ep->busy = true;
	ep->finished = false;
	ep->done = done;
	ep->arg = arg;
	ep->prefix = ep->n = 0;
	if (zlink_receiver(ep->link, ep->name))
		finish(ep, FAULT_NONE, false, NULL);
	else
		finish(ep, FAULT_REFUSED, false, "no connection of the peer receives (none said "
		       "ready, or it stopped sending heartbeats)");
}

static void zmq_cancel(struct transport *t)
{
	struct zep *ep = (struct zep *)t;
	if (ep->busy && !ep->finished)
		finish(ep, FAULT_TIMEOUT, false, "no confirmation from the peer in time (%zu of %zu "
		       "confirmed)", ep->prefix, ep->n);
}

static void zmq_resume(struct transport *t)
{
}

const struct transport_ops zmq_transport = {
	.name = ZMQ_NAME,
	.schema = &zmq_schema,
	.create = zmq_create,
	.destroy = zmq_destroy,
	.start = zmq_start,
	.stop = zmq_stop,
	.deliver = zmq_deliver,
	.probe = zmq_probe,
	.cancel = zmq_cancel,
	.resume = zmq_resume,
	.check_config = zmq_check_config,
	.shared_new = zlink_new,
	.shared_reload = zlink_reload,
	.shared_stop = zlink_stop,
	.shared_free = zlink_free,
};

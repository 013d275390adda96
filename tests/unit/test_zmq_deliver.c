/*
 * test_zmq_deliver.c - the ZeroMQ transport's delivery side
 * (daemon/transport/zmq.c) over its real link (zmq_link.c), on an ipc://
 * socket in a temporary folder, with the test as the peer: a CURVE DEALER
 * speaking the framing of zmq_proto.h.
 *
 * The window holds (no more than it unconfirmed, in order); a prefix counts
 * (a confirmation out of order frees a slot but completes nothing before
 * it); a refusal for what it is becomes res.rejected at its index, one for
 * "not now" an endpoint failure with its fault; without a receiver a
 * delivery and a probe fail at once, and a peer saying ready is reported
 * reachable; cancel gives up with the confirmed prefix, and what is still
 * with the peer is not sent again on the same connection while a late
 * confirmation counts; a second connection that says ready takes over and
 * gets what was unconfirmed; a reload that removes the key, or gives it to
 * a second endpoint as well, drops the connection at once; nothing more is
 * sent once the endpoint's lease is no longer trusted (several daemons).
 */
#include <criterion/criterion.h>

#include <event2/event.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "testutil.h"
#include "transport/transport.h"
#include "transport/zmq_link.h"

static char dir[256];
static char conf_path[512], addr[512], broker_pub[ZKEY_Z85_LEN + 1], peer_pub[ZKEY_Z85_LEN + 1];
static uint8_t peer_secret[ZKEY_LEN];
static struct event_base *base;
static struct config *cfg;
static void *shared;
static struct transport *tp;
static void *pctx;
static int reachable_calls;

struct result {
	bool done;
	struct deliver_result res;
};

static void write_config(bool with_key)
{
	_cleanup_free_ char *text = xasprintf(
		"[broker]\nstate_dir = %s/state\nzmq_listen = %s\nzmq_secret_key = %s/broker.secret\n"
		"zmq_window = 4\n\n"
		"[endpoint hospital]\nkind = hospital\ntransport = zmq\ngln = 5790000143054\n%s%s\n",
		dir, addr, dir, with_key ? "zmq_public_key = " : "", with_key ? peer_pub : "");
	testutil_write_file(conf_path, text, strlen(text));
}

static struct config *load(void)
{
	struct config *c = NULL;
	char err[512];
	cr_assert_eq(config_load(conf_path, transport_schemas(), &c, err, sizeof(err)), 0, "%s", err);
	return c;
}

static void on_reachable(void *ctx, const char *endpoint)
{
	reachable_calls++;
}

/* transport_env.send_until: the endpoint's lease, trusted unless a test
 * says otherwise */
static _Atomic int64_t lease_until;

static void setup(void)
{
	char why[256];
	log_setup(LOG_ERR, 0); /* the link's notices are not the test's output */
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_zmq_deliver.XXXXXX");
	snprintf(conf_path, sizeof(conf_path), "%s/edibroker.conf", dir);
	snprintf(addr, sizeof(addr), "ipc://%s/zmq.sock", dir);
	_cleanup_free_ char *bk = xasprintf("%s/broker.secret", dir);
	_cleanup_free_ char *pk = xasprintf("%s/peer.secret", dir);
	cr_assert_eq(zkey_generate(bk, broker_pub, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_generate(pk, peer_pub, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_read_secret(pk, peer_secret, why, sizeof(why)), 0, "%s", why);
	write_config(true);
	cfg = load();
	base = event_base_new();
	struct transport_shared_env se = { .base = base, .instance = "abcd1234" };
	char err[512] = "";
	shared = zmq_transport.shared_new(cfg, &se, err, sizeof(err));
	cr_assert_not_null(shared, "%s", err);
	struct transport_env te = { .base = base, .instance = "abcd1234", .cfg = cfg,
				    .shared = shared, .reachable = on_reachable,
				    .send_until = &lease_until };
	atomic_store(&lease_until, INT64_MAX);
	tp = zmq_transport.create(&cfg->endpoints[0], &te, err, sizeof(err));
	cr_assert_not_null(tp, "%s", err);
	pctx = zmq_ctx_new();
	reachable_calls = 0;
}

static void teardown(void)
{
	zmq_ctx_term(pctx);
	zmq_transport.destroy(tp);
	zmq_transport.shared_free(shared);
	config_free(cfg);
	event_base_free(base);
	testutil_rm_rf(dir);
}

TestSuite(zmq_deliver, .init = setup, .fini = teardown, .timeout = 30);

/* Runs the broker's loop for about ms. */
static void spin(int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void *peer_new(void)
{
	void *s = zmq_socket(pctx, ZMQ_DEALER);
	uint8_t server[ZKEY_LEN], pub[ZKEY_LEN];
	zkey_decode(broker_pub, server);
	zkey_decode(peer_pub, pub);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, ZKEY_LEN);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, ZKEY_LEN);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, peer_secret, ZKEY_LEN);
	cr_assert_eq(zmq_connect(s, addr), 0);
	return s;
}

static void peer_send(void *s, const struct zp_msg *m)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	char buf[ZP_BUF_SIZE];
	size_t n = zp_build(m, f, buf);
	for (size_t i = 0; i < n; i++)
		cr_assert_geq(zmq_send(s, f[i].data, f[i].size, i + 1 < n ? ZMQ_SNDMORE : 0), 0);
}

/* The next command the peer gets within ms (the broker's loop runs
 * meanwhile); false when none. Bodies are not kept. */
static bool peer_recv(void *s, struct zp_msg *m, int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		zmq_msg_t parts[ZP_FRAMES_MAX];
		struct zp_frame f[ZP_FRAMES_MAX];
		size_t n = 0;
		int more = 1;
		while (more && n < ZP_FRAMES_MAX) {
			zmq_msg_init(&parts[n]);
			if (zmq_msg_recv(&parts[n], s, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&parts[n]);
				break;
			}
			f[n] = (struct zp_frame){ zmq_msg_data(&parts[n]), zmq_msg_size(&parts[n]) };
			more = zmq_msg_more(&parts[n]);
			n++;
		}
		if (n > 0) {
			char why[160];
			int r = zp_parse(f, n, m, why, sizeof(why));
			m->body = NULL;
			for (size_t k = 0; k < n; k++)
				zmq_msg_close(&parts[k]);
			cr_assert_eq(r, 0, "%s", why);
			return true;
		}
		usleep(1000);
	}
	return false;
}

static void ready(void *s, unsigned window)
{
	struct zp_msg m = { .cmd = ZP_READY, .window = window };
	peer_send(s, &m);
	struct zp_msg a;
	cr_assert(peer_recv(s, &a, 3000), "no answer to ready");
	cr_assert_eq(a.cmd, ZP_HEARTBEAT);
	cr_assert_str_eq(a.state, "receiving");
}

static void answer(void *s, enum zp_cmd cmd, int64_t id, bool retryable, const char *code)
{
	struct zp_msg m = { .cmd = cmd, .id = id, .retryable = retryable };
	if (code) {
		str_copy(m.code, code, sizeof(m.code));
		zp_set_text(&m, "because %s", code);
	}
	peer_send(s, &m);
}

/* The ids of the deliveries the peer gets within ms, up to max. */
static size_t deliveries(void *s, int64_t *ids, size_t max, int ms)
{
	size_t n = 0;
	struct zp_msg m;
	while (n < max && peer_recv(s, &m, ms)) {
		cr_assert_eq(m.cmd, ZP_DELIVER, "got %s", zp_cmd_name(m.cmd));
		char want[64];
		snprintf(want, sizeof(want), "abcd1234-%012" PRId64 ".xml", m.id);
		cr_assert_str_eq(m.name, want);
		ids[n++] = m.id;
	}
	return n;
}

static void on_done(void *arg, const struct deliver_result *res)
{
	struct result *r = arg;
	cr_assert_not(r->done, "done twice");
	r->done = true;
	r->res = *res;
}

static struct out_msg msgs[10];

static void deliver(size_t from, size_t n, struct result *r)
{
	static const uint8_t body[] = "<Emessage/>";
	for (size_t i = 0; i < ARRAY_SIZE(msgs); i++)
		msgs[i] = (struct out_msg){ (int64_t)i + 1, "xml", body, sizeof(body) - 1 };
	*r = (struct result){ 0 };
	zmq_transport.deliver(tp, msgs + from, n, on_done, r);
	cr_assert_not(r->done, "completed inside deliver()");
}

static void wait_done(struct result *r, int ms)
{
	for (int i = 0; i < ms && !r->done; i++)
		spin(1);
	cr_assert(r->done, "the delivery did not complete");
}

Test(zmq_deliver, window_order_and_prefix)
{
	void *p = peer_new();
	ready(p, 64); /* asks for more than zmq_window (4): gets 4 */
	struct result r;
	deliver(0, 10, &r);
	int64_t ids[16];
	cr_assert_eq(deliveries(p, ids, 16, 300), 4, "not the window");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(ids[i], i + 1, "out of order");
	answer(p, ZP_DELIVERED, 3, false, NULL); /* out of order: one slot frees */
	cr_assert_eq(deliveries(p, ids, 16, 300), 1);
	cr_assert_eq(ids[0], 5);
	cr_assert_not(r.done);
	for (int64_t id = 1; id <= 10; id++)
		if (id != 3)
			answer(p, ZP_DELIVERED, id, false, NULL);
	size_t more = deliveries(p, ids, 16, 300);
	cr_assert_eq(more, 5, "6..10");
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 10);
	cr_assert_eq(r.res.fault, FAULT_NONE);
	zmq_close(p);
}

Test(zmq_deliver, a_refusal_for_what_it_is_is_rejected_at_its_index)
{
	void *p = peer_new();
	ready(p, 8);
	struct result r;
	deliver(0, 6, &r);
	int64_t ids[16];
	cr_assert_eq(deliveries(p, ids, 16, 300), 4);
	answer(p, ZP_REFUSED, 3, false, "invalid");
	answer(p, ZP_DELIVERED, 4, false, NULL);
	spin(100);
	cr_assert_not(r.done, "1 and 2 are not confirmed yet");
	answer(p, ZP_DELIVERED, 1, false, NULL);
	answer(p, ZP_DELIVERED, 2, false, NULL);
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 2);
	cr_assert(r.res.rejected);
	cr_assert_eq(r.res.fault, FAULT_REJECTED);
	cr_assert(strstr(r.res.error, "invalid: because invalid"), "%s", r.res.error);
	zmq_close(p);
}

/* Several daemons: once the lease is no longer trusted here (a node paused
 * past it), no further message goes; the batch ends with what was
 * confirmed, for the lease's next holder to go on from. */
Test(zmq_deliver, nothing_more_is_sent_once_the_lease_is_not_trusted)
{
	void *p = peer_new();
	ready(p, 4);
	struct result r;
	deliver(0, 6, &r);
	int64_t ids[16];
	cr_assert_eq(deliveries(p, ids, 16, 300), 4);
	atomic_store(&lease_until, clock_mono_ms() - 1);
	answer(p, ZP_DELIVERED, 1, false, NULL); /* a slot frees: 5 would go now */
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 1);
	cr_assert_eq(r.res.fault, FAULT_TIMEOUT);
	cr_assert(strstr(r.res.error, "lease"), "%s", r.res.error);
	cr_assert_eq(deliveries(p, ids, 16, 200), 0, "sent without the lease");
	zmq_close(p);
}

Test(zmq_deliver, not_now_is_an_endpoint_failure)
{
	void *p = peer_new();
	ready(p, 8);
	struct result r;
	deliver(0, 2, &r);
	int64_t ids[4];
	cr_assert_eq(deliveries(p, ids, 4, 300), 2);
	answer(p, ZP_REFUSED, 1, true, "disk-full");
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 0);
	cr_assert_not(r.res.rejected);
	cr_assert_eq(r.res.fault, FAULT_DISK_FULL);
	zmq_close(p);
}

Test(zmq_deliver, without_a_receiver_fail_fast_then_reachable)
{
	struct result r;
	deliver(0, 3, &r);
	wait_done(&r, 200);
	cr_assert_eq(r.res.fault, FAULT_REFUSED);
	cr_assert_eq(r.res.delivered, 0);
	r = (struct result){ 0 };
	zmq_transport.probe(tp, on_done, &r);
	wait_done(&r, 200);
	cr_assert_eq(r.res.fault, FAULT_REFUSED);
	cr_assert_eq(reachable_calls, 0);
	void *p = peer_new();
	struct zp_msg hb = { .cmd = ZP_HEARTBEAT }, a;
	peer_send(p, &hb);
	cr_assert(peer_recv(p, &a, 3000));
	cr_assert_str_eq(a.state, "idle", "connected, but nobody receives");
	cr_assert_eq(reachable_calls, 0, "a heartbeat is not a ready");
	ready(p, 8);
	cr_assert_eq(reachable_calls, 1);
	r = (struct result){ 0 };
	zmq_transport.probe(tp, on_done, &r);
	wait_done(&r, 200);
	cr_assert_eq(r.res.fault, FAULT_NONE);
	zmq_close(p);
}

Test(zmq_deliver, cancel_keeps_the_prefix_and_nothing_is_sent_twice)
{
	void *p = peer_new();
	ready(p, 8);
	struct result r;
	deliver(0, 10, &r);
	int64_t ids[16];
	cr_assert_eq(deliveries(p, ids, 16, 300), 4);
	answer(p, ZP_DELIVERED, 1, false, NULL);
	cr_assert_eq(deliveries(p, ids, 16, 300), 1); /* 5 */
	zmq_transport.cancel(tp);
	cr_assert_not(r.done, "completed inside cancel()");
	wait_done(&r, 500);
	cr_assert_eq(r.res.fault, FAULT_TIMEOUT);
	cr_assert_eq(r.res.delivered, 1);
	answer(p, ZP_DELIVERED, 2, false, NULL); /* late */
	spin(100);
	/* the scheduler offers 2.. again: 2 counts, 3 4 5 are still with the
	 * peer on this connection, so only new ones go, as the window allows */
	deliver(1, 9, &r);
	cr_assert_eq(deliveries(p, ids, 16, 300), 1, "only one slot is free");
	cr_assert_eq(ids[0], 6, "sent again: %" PRId64, ids[0]);
	for (int64_t id = 3; id <= 10; id++)
		answer(p, ZP_DELIVERED, id, false, NULL);
	cr_assert_eq(deliveries(p, ids, 16, 300), 4); /* 7..10 */
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 9);
	cr_assert_eq(r.res.fault, FAULT_NONE);
	zmq_close(p);
}

Test(zmq_deliver, a_new_connection_takes_over_and_gets_the_unconfirmed)
{
	void *a = peer_new();
	ready(a, 8);
	struct result r;
	deliver(0, 5, &r);
	int64_t ids[16];
	cr_assert_eq(deliveries(a, ids, 16, 300), 4);
	answer(a, ZP_DELIVERED, 1, false, NULL);
	spin(50);
	void *b = peer_new(); /* the same key: a restarted receiver */
	ready(b, 8);
	size_t n = deliveries(b, ids, 16, 300);
	cr_assert_eq(n, 4, "2..5 on the new connection, got %zu", n);
	cr_assert_eq(ids[0], 2);
	struct zp_msg hb = { .cmd = ZP_HEARTBEAT }, st;
	peer_send(a, &hb);
	/* a got 5 before b took over; skip deliveries still coming to it */
	do
		cr_assert(peer_recv(a, &st, 1000));
	while (st.cmd == ZP_DELIVER);
	cr_assert_str_eq(st.state, "standby");
	for (int64_t id = 2; id <= 5; id++)
		answer(b, ZP_DELIVERED, id, false, NULL);
	wait_done(&r, 1000);
	cr_assert_eq(r.res.delivered, 5);
	zmq_close(a);
	zmq_close(b);
}

Test(zmq_deliver, a_reload_that_removes_the_key_drops_the_connection_at_once)
{
	void *p = peer_new();
	ready(p, 8);
	struct result r;
	deliver(0, 3, &r);
	int64_t ids[4];
	cr_assert_eq(deliveries(p, ids, 4, 300), 3);
	write_config(false);
	struct config *c2 = NULL;
	char err[512];
	/* transport = zmq without a key is refused by the check, not the load */
	cr_assert_eq(config_load(conf_path, transport_schemas(), &c2, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(zmq_transport.shared_reload(shared, c2, err, sizeof(err)), 0, "%s", err);
	wait_done(&r, 200);
	cr_assert_eq(r.res.fault, FAULT_REFUSED, "the delivery failed at once");
	answer(p, ZP_DELIVERED, 1, false, NULL);
	struct zp_msg m;
	cr_assert(peer_recv(p, &m, 2000));
	cr_assert_eq(m.cmd, ZP_ERROR);
	cr_assert_str_eq(m.code, "unauthorized");
	zmq_close(p);
	config_free(cfg);
	cfg = c2;
}

Test(zmq_deliver, a_reload_that_gives_the_key_to_two_endpoints_admits_neither_at_once)
{
	void *p = peer_new();
	ready(p, 8);
	_cleanup_free_ char *text = xasprintf(
		"[broker]\nstate_dir = %s/state\nzmq_listen = %s\nzmq_secret_key = %s/broker.secret\n\n"
		"[endpoint hospital]\nkind = hospital\ntransport = zmq\ngln = 5790000143054\n"
		"zmq_public_key = %s\n\n"
		"[endpoint twin]\nkind = other\ntransport = zmq\ngln = 5790000000029\n"
		"zmq_public_key = %s\n", dir, addr, dir, peer_pub, peer_pub);
	testutil_write_file(conf_path, text, strlen(text));
	struct config *c2 = load();
	char err[512] = "";
	/* in force, not "the old settings stay": the old key may be the one to go */
	cr_assert_eq(zmq_transport.shared_reload(shared, c2, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(zlink_receiver(shared, "hospital"), "the connection was kept");
	struct zp_msg hb = { .cmd = ZP_HEARTBEAT }, m;
	peer_send(p, &hb);
	cr_assert(peer_recv(p, &m, 2000));
	cr_assert_eq(m.cmd, ZP_ERROR);
	cr_assert_str_eq(m.code, "unauthorized");
	zmq_close(p);
	config_free(cfg);
	cfg = c2;
}

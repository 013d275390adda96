/*
 * zmqbench.c - the ZeroMQ side of `make bench`: a load generator and a
 * receiver for edibrokerd's peer link, and the same link with no broker
 * behind it, for comparison. Same framing (zmq_proto.c), same CURVE.
 *
 *   zmqbench send ADDRESS BROKER_PUB KEYFILE TEMPLATE N WINDOW RATE PREFIX
 *   zmqbench receive ADDRESS BROKER_PUB KEYFILE N WINDOW
 *   zmqbench link TEMPLATE N WINDOW
 *
 * send: submits N messages made from TEMPLATE (a message whose envelope
 * and letter ids read @@ENVELOPE@@ and @@LETTER@@, replaced by PREFIX and a
 * number, so each is new to the broker), at most WINDOW unanswered, at
 * RATE msg/s (0: as fast as the window allows); prints one JSON line: wall
 * time of the first submission, elapsed seconds, accepted msg/s and the
 * submit-to-accepted latency's p50/p99/max in ms.
 * receive: says ready WINDOW and confirms every delivery at once (no disk:
 * the broker's work is measured, not the receiver's), until N distinct ids
 * came; prints the wall time of the last confirmation.
 * link: a sender, a stand-in broker that answers "accepted" at once and
 * delivers each message to a receiver, and that receiver, in one process
 * over loopback TCP with CURVE: the link's own cost, no store.
 */
#include "codecs/base/mem.h"
#include "transport/zmq_keys.h"
#include "transport/zmq_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "zmqbench: %s: %s\n", what, zmq_strerror(errno));
	exit(1);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die(path);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* Message i: the template with its two ids. */
static size_t make_msg(const char *tpl, size_t len, const char *prefix, long i, char *out)
{
	char env[32], letter[32];
	snprintf(env, sizeof(env), "E%s%08ld", prefix, i);
	snprintf(letter, sizeof(letter), "L%s%08ld", prefix, i);
	size_t o = 0;
	for (size_t k = 0; k < len;) {
		if (strncmp(tpl + k, "@@ENVELOPE@@", 12) == 0) {
			o += (size_t)sprintf(out + o, "%s", env);
			k += 12;
		} else if (strncmp(tpl + k, "@@LETTER@@", 10) == 0) {
			o += (size_t)sprintf(out + o, "%s", letter);
			k += 10;
		} else {
			out[o++] = tpl[k++];
		}
	}
	return o;
}

static void send_cmd(void *s, const struct zp_msg *m)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	char buf[ZP_BUF_SIZE];
	size_t n = zp_build(m, f, buf);
	for (size_t i = 0; i < n; i++)
		if (zmq_send(s, f[i].data, f[i].size, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
			die("send");
}

/* Receives one command (with routing id first when rid is not NULL). */
static int recv_cmd(void *s, struct zp_msg *m, zmq_msg_t *rid, int flags)
{
	zmq_msg_t parts[ZP_FRAMES_MAX];
	struct zp_frame f[ZP_FRAMES_MAX];
	size_t n = 0;
	if (rid) {
		zmq_msg_init(rid);
		if (zmq_msg_recv(rid, s, flags) < 0)
			return -1;
		flags = 0;
	}
	int more = 1;
	while (more && n < ZP_FRAMES_MAX) {
		zmq_msg_init(&parts[n]);
		if (zmq_msg_recv(&parts[n], s, flags) < 0)
			return -1;
		flags = 0;
		f[n] = (struct zp_frame){ zmq_msg_data(&parts[n]), zmq_msg_size(&parts[n]) };
		more = zmq_msg_more(&parts[n]);
		n++;
	}
	char why[160];
	int r = zp_parse(f, n, m, why, sizeof(why));
	/* bodies are not kept: the stand-in broker copies what it forwards */
	static char body[1 << 20];
	if (r == 0 && m->body) {
		size_t k = m->size < sizeof(body) ? m->size : sizeof(body);
		memcpy(body, m->body, k);
		m->body = (const uint8_t *)body;
	}
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	if (r < 0) {
		fprintf(stderr, "zmqbench: %s\n", why);
		exit(1);
	}
	return 0;
}

static void *curve_client(void *ctx, const char *addr, const char *server_pub, const char *keyfile)
{
	uint8_t server[ZKEY_LEN], secret[ZKEY_LEN], pub[ZKEY_LEN];
	char pubz[ZKEY_Z85_LEN + 1], why[256];
	if (!zkey_decode(server_pub, server))
		die("broker key");
	if (zkey_read_secret(keyfile, secret, why, sizeof(why)) < 0) {
		fprintf(stderr, "zmqbench: %s\n", why);
		exit(1);
	}
	zkey_public_of(secret, pubz);
	zkey_decode(pubz, pub);
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int zero = 0, hwm = 100000;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, ZKEY_LEN);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, ZKEY_LEN);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, ZKEY_LEN);
	if (zmq_connect(s, addr) < 0)
		die(addr);
	return s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- send ---------------------------------------------------------------- */

struct sender {
	void *s;
	const char *tpl;
	size_t tlen;
	const char *prefix;
	long n, window;
	double rate;
	double *sent_at, *lat;
	long next, answered, rejected;
	char *buf;
};

static void submit_next(struct sender *S)
{
	size_t len = make_msg(S->tpl, S->tlen, S->prefix, S->next, S->buf);
	struct zp_msg m = { .cmd = ZP_SUBMIT, .body = (const uint8_t *)S->buf, .size = len };
	snprintf(m.ref, sizeof(m.ref), "%ld", S->next);
	S->sent_at[S->next] = mono();
	send_cmd(S->s, &m);
	S->next++;
}

static void take_answers(struct sender *S, long timeout_ms)
{
	zmq_pollitem_t it = { S->s, 0, ZMQ_POLLIN, 0 };
	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return;
	struct zp_msg m;
	while (recv_cmd(S->s, &m, NULL, ZMQ_DONTWAIT) == 0) {
		if (m.cmd != ZP_ACCEPTED && m.cmd != ZP_REJECTED)
			continue;
		long i = strtol(m.ref, NULL, 10);
		if (i < 0 || i >= S->n || S->lat[i] >= 0)
			continue;
		S->lat[i] = mono() - S->sent_at[i];
		S->answered++;
		if (m.cmd == ZP_REJECTED) {
			if (S->rejected++ < 3)
				fprintf(stderr, "zmqbench: rejected %ld: %s %s\n", i, m.code, m.text);
		}
	}
}

static int cmd_send(int argc, char **argv)
{
	if (argc != 10)
		return 2;
	struct sender S = { .tpl = NULL, .prefix = argv[9], .n = atol(argv[6]),
			    .window = atol(argv[7]), .rate = atof(argv[8]) };
	S.tpl = slurp(argv[5], &S.tlen);
	S.buf = malloc(S.tlen + 64);
	S.sent_at = calloc((size_t)S.n, sizeof(double));
	S.lat = malloc((size_t)S.n * sizeof(double));
	for (long i = 0; i < S.n; i++)
		S.lat[i] = -1;
	void *ctx = zmq_ctx_new();
	S.s = curve_client(ctx, argv[2], argv[3], argv[4]);
	/* the handshake first, so it is not timed */
	struct zp_msg hb = { .cmd = ZP_HEARTBEAT }, a;
	send_cmd(S.s, &hb);
	if (recv_cmd(S.s, &a, NULL, 0) < 0)
		die("handshake");
	double t0 = mono(), w0 = wall();
	while (S.answered < S.n) {
		double now = mono();
		long due = S.rate > 0 ? (long)((now - t0) * S.rate) + 1 : S.n;
		while (S.next < S.n && S.next < due && S.next - S.answered < S.window)
			submit_next(&S);
		long wait = 100;
		if (S.rate > 0 && S.next < S.n) {
			double next_at = t0 + (double)S.next / S.rate;
			wait = (long)((next_at - mono()) * 1000);
			wait = wait < 0 ? 0 : wait;
		}
		take_answers(&S, wait);
		if (mono() - t0 > 1800)
			die("no end");
	}
	double secs = mono() - t0;
	qsort(S.lat, (size_t)S.n, sizeof(double), cmp_double);
	printf("{\"start_wall\": %.6f, \"secs\": %.3f, \"accepted_per_s\": %.1f, \"p50_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"rejected\": %ld}\n",
	       w0, secs, (double)(S.n - S.rejected) / secs, S.lat[S.n / 2] * 1000,
	       S.lat[(long)((double)S.n * 0.99)] * 1000, S.lat[S.n - 1] * 1000, S.rejected);
	zmq_close(S.s);
	zmq_ctx_term(ctx);
	return S.rejected ? 1 : 0;
}

/* ---- receive ------------------------------------------------------------- */

static int cmd_receive(int argc, char **argv)
{
	if (argc != 7)
		return 2;
	long n = atol(argv[5]);
	unsigned window = (unsigned)atol(argv[6]);
	void *ctx = zmq_ctx_new();
	void *s = curve_client(ctx, argv[2], argv[3], argv[4]);
	struct zp_msg ready = { .cmd = ZP_READY, .window = window }, m;
	send_cmd(s, &ready);
	/* ids are the broker's: a bitmap of those seen, growing */
	size_t cap = 1 << 20;
	uint8_t *seen = calloc(cap, 1);
	long got = 0;
	double first = 0, last_beat = mono();
	while (got < n) {
		zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
		zmq_poll(&it, 1, 500);
		while (recv_cmd(s, &m, NULL, ZMQ_DONTWAIT) == 0) {
			if (m.cmd == ZP_HEARTBEAT && strcmp(m.state, "idle") == 0)
				send_cmd(s, &ready);
			if (m.cmd != ZP_DELIVER)
				continue;
			if ((size_t)m.id >= cap) {
				size_t ncap = (size_t)m.id * 2;
				seen = realloc(seen, ncap);
				memset(seen + cap, 0, ncap - cap);
				cap = ncap;
			}
			if (!seen[m.id]) {
				seen[m.id] = 1;
				got++;
				if (!first)
					first = wall();
			}
			struct zp_msg d = { .cmd = ZP_DELIVERED, .id = m.id };
			send_cmd(s, &d);
		}
		if (mono() - last_beat > 1) {
			struct zp_msg hb = { .cmd = ZP_HEARTBEAT };
			send_cmd(s, &hb);
			last_beat = mono();
		}
	}
	printf("{\"first_wall\": %.6f, \"last_wall\": %.6f, \"received\": %ld}\n", first, wall(), got);
	free(seen);
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}

/* ---- link: the same traffic with nothing behind it ------------------------ */

struct standin {
	void *ctx;
	const char *addr;
	uint8_t secret[ZKEY_LEN];
	long n;
};

/* Answers each submit with accepted and forwards it as a delivery to the
 * connection that said ready; counts confirmations. */
static void *standin_run(void *arg)
{
	struct standin *B = arg;
	void *r = zmq_socket(B->ctx, ZMQ_ROUTER);
	int one = 1, zero = 0, hwm = 100000;
	zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof(one));
	zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, B->secret, ZKEY_LEN);
	zmq_setsockopt(r, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (zmq_bind(r, B->addr) < 0)
		die("bind");
	zmq_msg_t rid, receiver;
	zmq_msg_init(&receiver);
	bool have_receiver = false;
	long confirmed = 0, next_id = 1;
	while (confirmed < B->n) {
		struct zp_msg m;
		if (recv_cmd(r, &m, &rid, 0) < 0)
			break;
		if (m.cmd == ZP_READY) {
			zmq_msg_copy(&receiver, &rid);
			have_receiver = true;
		} else if (m.cmd == ZP_SUBMIT && have_receiver) {
			struct zp_msg a = { .cmd = ZP_ACCEPTED, .id = next_id };
			str_copy(a.ref, m.ref, sizeof(a.ref));
			zmq_send(r, zmq_msg_data(&rid), zmq_msg_size(&rid), ZMQ_SNDMORE);
			send_cmd(r, &a);
			struct zp_msg d = { .cmd = ZP_DELIVER, .id = next_id++, .body = m.body,
					    .size = m.size };
			snprintf(d.name, sizeof(d.name), "bench-%012" PRId64 ".xml", d.id);
			zmq_send(r, zmq_msg_data(&receiver), zmq_msg_size(&receiver), ZMQ_SNDMORE);
			send_cmd(r, &d);
		} else if (m.cmd == ZP_DELIVERED) {
			confirmed++;
		} else if (m.cmd == ZP_HEARTBEAT) {
			struct zp_msg a = { .cmd = ZP_HEARTBEAT };
			strcpy(a.state, "idle");
			zmq_send(r, zmq_msg_data(&rid), zmq_msg_size(&rid), ZMQ_SNDMORE);
			send_cmd(r, &a);
		}
		zmq_msg_close(&rid);
	}
	zmq_msg_close(&receiver);
	zmq_close(r);
	return NULL;
}

static int cmd_link(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	long n = atol(argv[3]), window = atol(argv[4]);
	char dir[] = "/tmp/zmqbench.XXXXXX", path[64], srv_pub[ZKEY_Z85_LEN + 1], why[256];
	char cpath[64], cpub[ZKEY_Z85_LEN + 1];
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(path, sizeof(path), "%s/s", dir);
	snprintf(cpath, sizeof(cpath), "%s/c", dir);
	if (zkey_generate(path, srv_pub, why, sizeof(why)) < 0 ||
	    zkey_generate(cpath, cpub, why, sizeof(why)) < 0) {
		fprintf(stderr, "zmqbench: %s\n", why);
		return 1;
	}
	struct standin B = { .ctx = zmq_ctx_new(), .addr = "tcp://127.0.0.1:0", .n = n };
	zkey_read_secret(path, B.secret, why, sizeof(why));
	/* a fixed free port: bind to 0 is not reported back through a thread */
	int port = 20000 + (int)(getpid() % 20000);
	char addr[64];
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", port);
	B.addr = addr;
	pthread_t th;
	pthread_create(&th, NULL, standin_run, &B);
	void *ctx = zmq_ctx_new();
	void *rx = curve_client(ctx, addr, srv_pub, cpath);
	struct zp_msg ready = { .cmd = ZP_READY, .window = (unsigned)window }, m;
	send_cmd(rx, &ready);
	/* the receiver's ready must be in before the first submission */
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	struct sender S = { .prefix = "K", .n = n, .window = window };
	S.tpl = slurp(argv[2], &S.tlen);
	S.buf = malloc(S.tlen + 64);
	S.sent_at = calloc((size_t)n, sizeof(double));
	S.lat = malloc((size_t)n * sizeof(double));
	for (long i = 0; i < n; i++)
		S.lat[i] = -1;
	S.s = curve_client(ctx, addr, srv_pub, cpath);
	double t0 = mono();
	long delivered = 0;
	while (delivered < n) {
		while (S.next < n && S.next - S.answered < S.window)
			submit_next(&S);
		zmq_pollitem_t it[2] = { { S.s, 0, ZMQ_POLLIN, 0 }, { rx, 0, ZMQ_POLLIN, 0 } };
		zmq_poll(it, 2, 100);
		if (it[0].revents & ZMQ_POLLIN)
			take_answers(&S, 0);
		while (recv_cmd(rx, &m, NULL, ZMQ_DONTWAIT) == 0)
			if (m.cmd == ZP_DELIVER) {
				struct zp_msg d = { .cmd = ZP_DELIVERED, .id = m.id };
				send_cmd(rx, &d);
				delivered++;
			}
	}
	double secs = mono() - t0;
	pthread_join(th, NULL);
	qsort(S.lat, (size_t)n, sizeof(double), cmp_double);
	printf("{\"secs\": %.3f, \"per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n", secs,
	       (double)n / secs, S.lat[n / 2] * 1000, S.lat[(long)((double)n * 0.99)] * 1000);
	zmq_close(S.s);
	zmq_close(rx);
	zmq_ctx_term(ctx);
	zmq_ctx_term(B.ctx);
	unlink(path);
	unlink(cpath);
	rmdir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	int r = 2;
	if (argc > 1 && strcmp(argv[1], "send") == 0)
		r = cmd_send(argc, argv);
	else if (argc > 1 && strcmp(argv[1], "receive") == 0)
		r = cmd_receive(argc, argv);
	else if (argc > 1 && strcmp(argv[1], "link") == 0)
		r = cmd_link(argc, argv);
	if (r == 2)
		fprintf(stderr, "usage: zmqbench send ADDRESS BROKER_PUB KEYFILE TEMPLATE N WINDOW "
				"RATE PREFIX\n       zmqbench receive ADDRESS BROKER_PUB KEYFILE N "
				"WINDOW\n       zmqbench link TEMPLATE N WINDOW\n");
	return r;
}

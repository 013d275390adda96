/*
 * edibroker-peer.c - a small client of the broker's peer links, for EOJ
 * vendors, operators and tests.
 *
 *   edibroker-peer keygen FILE
 *   edibroker-peer send --zmq tcp://HOST:PORT --broker-key Z85 --key FILE MSGFILE...
 *   edibroker-peer send --http URL [--token TOKEN | --token-file FILE] MSGFILE...
 *   edibroker-peer receive --zmq tcp://HOST:PORT --broker-key Z85 --key FILE --into DIR
 *
 * ZeroMQ (docs/zmq.md): one DEALER socket, CURVE client, connecting out
 * (a peer needs no listening port). A socket monitor tells the handshake's
 * outcome, so a key the broker does not know ends `send` at once, and a
 * broker that never completes the handshake ends it after --connect-timeout.
 * `send` submits with up to --window messages unanswered and, when the
 * connection is made again (the broker restarted), submits the unanswered
 * ones again: the broker answers a message it already has with its first
 * id. `receive` writes each delivered message into --into under a name
 * starting with '.', fsyncs it, renames it to the name the broker gives and
 * fsyncs the folder, and only then confirms it; it says "ready" on every
 * connection and again when a heartbeat answer says no connection
 * receives, until SIGTERM or SIGINT. HTTP goes to peer_http_send()
 * (tools/peer_http.h).
 *
 * Exit codes: 0 every message accepted (receive: stopped by a signal);
 * 64 usage; 65 a message refused for what it is; 66 a file that cannot be
 * read; 69 the broker cannot be reached or refused the handshake or the
 * key; 73 keygen cannot create the file; 75 refused for now (busy, or no
 * answer in time): try again later.
 */
#include "base/fileio.h"
#include "codecs/base/mem.h"
#include "tools/peer_http.h"
#include "transport/zmq_keys.h"
#include "transport/zmq_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MONITOR "inproc://edibroker-peer-monitor"
#define MAX_SIZE_DEFAULT ((size_t)16 << 20)

struct opts {
	const char *zmq, *http, *broker_key, *key, *into;
	const char *token, *token_file, *ca_file, *cert, *cert_key;
	long timeout_ms, connect_timeout_ms, heartbeat_ms;
	unsigned window;
	size_t max_size;
	bool verbose;
};

static volatile sig_atomic_t stop_signal;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edibroker-peer keygen FILE\n"
		"       edibroker-peer send --zmq tcp://HOST:PORT --broker-key Z85 --key FILE "
		"MSGFILE...\n"
		"       edibroker-peer send --http URL [--token TOKEN | --token-file FILE] MSGFILE...\n"
		"       edibroker-peer receive --zmq tcp://HOST:PORT --broker-key Z85 --key FILE "
		"--into DIR\n"
		"\n"
		"commands:\n"
		"  keygen FILE            write a new CURVE secret key to FILE (0600, never over a\n"
		"                         file) and print its public key\n"
		"  send MSGFILE...        submit messages; exit 0 only when the broker accepted each\n"
		"  receive                write delivered messages into --into, then confirm each\n"
		"\n"
		"options:\n"
		"      --zmq ADDRESS         the broker's zmq_listen address\n"
		"      --broker-key Z85      the broker's CURVE public key (its log: event=zmq-listening)\n"
		"      --key FILE            this peer's CURVE secret key file (keygen)\n"
		"      --http URL            the broker's HTTP(S) submission URL\n"
		"      --token TOKEN         HTTP bearer token\n"
		"      --token-file FILE     ... read from FILE instead (not shown by ps)\n"
		"      --ca-file FILE        HTTPS: trust this CA for the broker\n"
		"      --cert FILE           HTTPS: client certificate\n"
		"      --cert-key FILE       HTTPS: its private key\n"
		"      --into DIR            receive: where delivered messages are written\n"
		"      --window N            messages unanswered at a time (default 64)\n"
		"      --timeout DURATION    send: give up when no answer came for this long (60s)\n"
		"      --connect-timeout DURATION  give up without a handshake (10s)\n"
		"      --heartbeat DURATION  receive: heartbeat interval (5s)\n"
		"      --max-size SIZE       largest message sent (16M, as the broker's default)\n"
		"  -v, --verbose             one line per message\n"
		"  -h, --help                this text\n");
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("edibroker-peer: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "500ms", "5s", "2m", "1h"; a bare number is seconds. -1 when not one. */
static long parse_duration(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	double mult = strcmp(end, "ms") == 0 ? 1 : strcmp(end, "s") == 0 || !*end ? 1000
		      : strcmp(end, "m") == 0 ? 60000 : strcmp(end, "h") == 0 ? 3600000 : -1;
	return mult < 0 || v * mult > 86400000.0 ? -1 : (long)(v * mult);
}

static long parse_size(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	long mult = !*end ? 1 : strcmp(end, "K") == 0 ? 1024 : strcmp(end, "M") == 0 ? 1 << 20 : -1;
	return errno || end == s || v <= 0 || mult < 0 || v > (1L << 30) / mult ? -1 : v * mult;
}

/* ---- ZeroMQ: the socket, the handshake, commands ------------------------ */

struct link {
	void *ctx, *sock, *mon;
	char public_key[ZKEY_Z85_LEN + 1];
	bool connected;
};

static int sockopt_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v));
}

static void link_open(struct link *L, const struct opts *o)
{
	uint8_t secret[ZKEY_LEN], server[ZKEY_LEN];
	char why[512];
	if (!o->zmq || !o->broker_key || !o->key)
		die(EX_USAGE, "--zmq, --broker-key and --key go together");
	if (!zkey_decode(o->broker_key, server))
		die(EX_USAGE, "--broker-key: not a CURVE public key (40 Z85 characters)");
	if (zkey_read_secret(o->key, secret, why, sizeof(why)) < 0)
		die(EX_NOINPUT, "--key: %s", why);
	if (zkey_public_of(secret, L->public_key) < 0)
		die(EX_SOFTWARE, "cannot derive the public key: %s", strerror(errno));
	char pub_bin[ZKEY_LEN];
	zkey_decode(L->public_key, (uint8_t *)pub_bin);
	L->ctx = zmq_ctx_new();
	L->sock = zmq_socket(L->ctx, ZMQ_DEALER);
	int r = zmq_setsockopt(L->sock, ZMQ_CURVE_SERVERKEY, server, ZKEY_LEN) |
		zmq_setsockopt(L->sock, ZMQ_CURVE_PUBLICKEY, pub_bin, ZKEY_LEN) |
		zmq_setsockopt(L->sock, ZMQ_CURVE_SECRETKEY, secret, ZKEY_LEN) |
		sockopt_int(L->sock, ZMQ_LINGER, 0) | sockopt_int(L->sock, ZMQ_IMMEDIATE, 1) |
		sockopt_int(L->sock, ZMQ_HANDSHAKE_IVL, 10000) |
		sockopt_int(L->sock, ZMQ_HEARTBEAT_IVL, 5000) |
		sockopt_int(L->sock, ZMQ_HEARTBEAT_TIMEOUT, 15000) |
		sockopt_int(L->sock, ZMQ_RECONNECT_IVL, 200) |
		sockopt_int(L->sock, ZMQ_RECONNECT_IVL_MAX, 5000) |
		sockopt_int(L->sock, ZMQ_SNDHWM, 4096) | sockopt_int(L->sock, ZMQ_RCVHWM, 4096);
	explicit_bzero(secret, sizeof(secret));
	if (r != 0 || zmq_socket_monitor(L->sock, MONITOR, ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
				 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED) < 0)
		die(EX_SOFTWARE, "cannot set up the socket: %s", zmq_strerror(errno));
	L->mon = zmq_socket(L->ctx, ZMQ_PAIR);
	if (sockopt_int(L->mon, ZMQ_LINGER, 0) < 0 || zmq_connect(L->mon, MONITOR) < 0)
		die(EX_SOFTWARE, "cannot watch the socket: %s", zmq_strerror(errno));
	if (zmq_connect(L->sock, o->zmq) < 0)
		die(EX_USAGE, "--zmq %s: %s", o->zmq, zmq_strerror(errno));
}

static void link_close(struct link *L)
{
	zmq_socket_monitor(L->sock, NULL, 0);
	zmq_close(L->mon);
	zmq_close(L->sock);
	zmq_ctx_term(L->ctx);
}

enum mon_event { MON_NONE, MON_UP, MON_DOWN, MON_REFUSED };

/* One monitor event, if one waits. */
static enum mon_event monitor_event(struct link *L, const struct opts *o)
{
	zmq_msg_t ev, addr;
	zmq_msg_init(&ev);
	zmq_msg_init(&addr);
	enum mon_event out = MON_NONE;
	if (zmq_msg_recv(&ev, L->mon, ZMQ_DONTWAIT) >= 0 &&
	    zmq_msg_recv(&addr, L->mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&ev) >= 6) {
		uint16_t e;
		memcpy(&e, zmq_msg_data(&ev), sizeof(e));
		out = e == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? MON_UP
		      : e == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? MON_REFUSED : MON_DOWN;
		if (o->verbose)
			fprintf(stderr, "edibroker-peer: connection event 0x%x\n", e);
	}
	zmq_msg_close(&ev);
	zmq_msg_close(&addr);
	if (out == MON_UP)
		L->connected = true;
	else if (out != MON_NONE)
		L->connected = false;
	return out;
}

static int send_cmd(void *sock, const struct zp_msg *m)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	char buf[ZP_BUF_SIZE];
	size_t n = zp_build(m, f, buf);
	for (size_t i = 0; i < n; i++)
		if (zmq_send(sock, f[i].data, f[i].size, ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0)) <
		    0)
			return -errno;
	return 0;
}

/* Receives one command (frames kept in parts until recv_done). 0, -EAGAIN
 * when none waits, -EPROTO with why when it is not a valid command. */
struct incoming {
	zmq_msg_t parts[ZP_FRAMES_MAX];
	size_t n;
};

static int recv_cmd(void *sock, struct incoming *in, struct zp_msg *m, char *why, size_t len)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	bool more = true, extra = false;
	in->n = 0;
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			if (in->n == 0 && !extra)
				return -EAGAIN;
			break;
		}
		more = zmq_msg_more(&part);
		if (in->n < ZP_FRAMES_MAX) {
			in->parts[in->n] = part;
			f[in->n] = (struct zp_frame){ zmq_msg_data(&in->parts[in->n]),
						      zmq_msg_size(&in->parts[in->n]) };
			in->n++;
		} else {
			extra = true;
			zmq_msg_close(&part);
		}
	}
	if (extra) {
		snprintf(why, len, "a message of more than %d frames", ZP_FRAMES_MAX);
		return -EPROTO;
	}
	return zp_parse(f, in->n, m, why, len);
}

static void recv_done(struct incoming *in)
{
	for (size_t i = 0; i < in->n; i++)
		zmq_msg_close(&in->parts[i]);
	in->n = 0;
}

/* Waits up to timeout_ms for the socket or the monitor; bit 1: the socket
 * has input, bit 2: the monitor has. */
static int wait_input(struct link *L, long timeout_ms)
{
	zmq_pollitem_t items[] = { { L->sock, 0, ZMQ_POLLIN, 0 }, { L->mon, 0, ZMQ_POLLIN, 0 } };
	if (zmq_poll(items, 2, timeout_ms) < 0)
		return 0; /* EINTR: the caller looks at stop_signal */
	return (items[0].revents & ZMQ_POLLIN ? 1 : 0) | (items[1].revents & ZMQ_POLLIN ? 2 : 0);
}

/* Waits for the first handshake; exits when the broker refuses the key or
 * none completes in time. */
static void handshake(struct link *L, const struct opts *o)
{
	int64_t deadline = now_ms() + o->connect_timeout_ms;
	while (!L->connected) {
		long left = (long)(deadline - now_ms());
		if (left <= 0)
			die(EX_UNAVAILABLE, "no handshake with the broker at %s within %.1fs (is it "
			    "running there, and is --broker-key its key?)", o->zmq,
			    (double)o->connect_timeout_ms / 1000);
		if (stop_signal)
			die(EX_UNAVAILABLE, "stopped before the broker answered");
		if (wait_input(L, left) & 2 && monitor_event(L, o) == MON_REFUSED)
			die(EX_UNAVAILABLE, "the broker at %s refused this peer's key %s: it is not "
			    "an endpoint's zmq_public_key there", o->zmq, L->public_key);
	}
}

/* ---- send --------------------------------------------------------------- */

enum { S_WAITING, S_SENT, S_ACCEPTED, S_REJECTED, S_RETRYABLE, S_UNREADABLE };

struct item {
	const char *path;
	int state;
	int64_t id;
	char why[ZP_CODE_MAX + ZP_TEXT_MAX + 16];
};

static bool broker_error(const struct zp_msg *m)
{
	fprintf(stderr, "edibroker-peer: the broker says: %s: %s\n", m->code, m->text);
	return strcmp(m->code, "unauthorized") == 0;
}

static void answer(struct item *items, size_t n, const struct zp_msg *m, size_t *open,
		   const struct opts *o)
{
	char *end;
	unsigned long i = strtoul(m->ref, &end, 10);
	if (*end || i == 0 || i > n || items[i - 1].state != S_SENT)
		return; /* a second answer to a message sent again */
	struct item *it = &items[i - 1];
	(*open)--;
	if (m->cmd == ZP_ACCEPTED) {
		it->state = S_ACCEPTED;
		it->id = m->id;
		if (o->verbose)
			printf("%s: accepted %" PRId64 "\n", it->path, m->id);
		return;
	}
	it->state = m->retryable ? S_RETRYABLE : S_REJECTED;
	snprintf(it->why, sizeof(it->why), "%s%s: %s", m->code, m->retryable ? " (retryable)" : "",
		 m->text);
	fprintf(stderr, "%s: refused: %s\n", it->path, it->why);
}

/* Submits item i (ref "i+1"). 0, or an exit code. */
static int submit_one(struct link *L, struct item *it, size_t i, const struct opts *o)
{
	uint8_t *body = NULL;
	size_t size = 0;
	int r = read_file_at(AT_FDCWD, it->path, o->max_size, &body, &size);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", it->path,
			r == -EFBIG ? "larger than --max-size" : strerror(-r));
		it->state = S_UNREADABLE;
		free(body);
		return r == -EFBIG ? EX_DATAERR : EX_NOINPUT;
	}
	struct zp_msg m = { .cmd = ZP_SUBMIT, .body = body, .size = size };
	snprintf(m.ref, sizeof(m.ref), "%zu", i + 1);
	r = send_cmd(L->sock, &m);
	free(body);
	if (r < 0)
		return r == -EAGAIN ? -1 : EX_UNAVAILABLE; /* -1: not now */
	it->state = S_SENT;
	return 0;
}

static int send_zmq(const struct opts *o, char **files, size_t n)
{
	struct link L = { 0 };
	link_open(&L, o);
	handshake(&L, o);
	struct item *items = xcalloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = (struct item){ .path = files[i] };
	size_t next = 0, open = 0, done = 0;
	int worst = 0;
	int64_t quiet_since = now_ms();
	while (done < n && !stop_signal) {
		while (next < n && open < o->window && L.connected) {
			int r = submit_one(&L, &items[next], next, o);
			if (r == -1)
				break; /* the pipe is full: after some answers */
			if (r > 0) {
				worst = worst ? worst : r;
				done++;
			} else {
				open++;
			}
			next++;
		}
		if (now_ms() - quiet_since > o->timeout_ms)
			break;
		int in = wait_input(&L, 100);
		if (in & 2) {
			enum mon_event e = monitor_event(&L, o);
			if (e == MON_REFUSED)
				die(EX_UNAVAILABLE, "the broker refused this peer's key %s",
				    L.public_key);
			if (e == MON_UP) { /* connected again: offer what was unanswered again */
				for (size_t i = 0; i < next; i++)
					if (items[i].state == S_SENT && submit_one(&L, &items[i], i, o) == 0)
						quiet_since = now_ms();
			}
		}
		struct incoming inc;
		struct zp_msg m;
		char why[160];
		for (int r; (r = recv_cmd(L.sock, &inc, &m, why, sizeof(why))) != -EAGAIN;
		     recv_done(&inc)) {
			quiet_since = now_ms();
			if (r < 0)
				fprintf(stderr, "edibroker-peer: a message from the broker: %s\n", why);
			else if (m.cmd == ZP_ERROR && broker_error(&m))
				die(EX_UNAVAILABLE, "this peer's key %s is not in the broker's "
				    "configuration", L.public_key);
			else if (m.cmd == ZP_ACCEPTED || m.cmd == ZP_REJECTED) {
				size_t before = open;
				answer(items, n, &m, &open, o);
				done += before - open;
			}
		}
	}
	bool refused = false, later = false, unreadable = false;
	for (size_t i = 0; i < n; i++) {
		if (items[i].state == S_SENT || items[i].state == S_WAITING)
			fprintf(stderr, "%s: no answer from the broker%s\n", items[i].path,
				stop_signal ? " (stopped)" : " in time");
		refused |= items[i].state == S_REJECTED;
		unreadable |= items[i].state == S_UNREADABLE;
		later |= items[i].state != S_ACCEPTED;
	}
	free(items);
	link_close(&L);
	return refused ? EX_DATAERR : unreadable ? worst : later ? EX_TEMPFAIL : 0;
}

/* ---- receive ------------------------------------------------------------ */

/* Writes body under name in the folder at dirfd: ".<name>.tmp", fsync,
 * rename, fsync of the folder. 0 or -errno. */
static int store(int dirfd, const char *name, const uint8_t *body, size_t size)
{
	char tmp[ZP_NAME_MAX + 8];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, body, size);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

static void take_delivery(struct link *L, int dirfd, const struct zp_msg *m,
			  const struct opts *o)
{
	int r = store(dirfd, m->name, m->body, m->size);
	struct zp_msg a = { .cmd = r == 0 ? ZP_DELIVERED : ZP_REFUSED, .id = m->id };
	if (r < 0) { /* local trouble: not now, not never */
		a.retryable = true;
		str_copy(a.code, r == -ENOSPC || r == -EDQUOT ? "disk-full" : "io", sizeof(a.code));
		zp_set_text(&a, "%s: %s", m->name, strerror(-r));
		fprintf(stderr, "edibroker-peer: %s: %s\n", m->name, strerror(-r));
	} else if (o->verbose) {
		printf("%s\n", m->name);
		fflush(stdout);
	}
	if (send_cmd(L->sock, &a) < 0)
		fprintf(stderr, "edibroker-peer: cannot answer for %s: %s\n", m->name,
			zmq_strerror(errno));
}

static void say_ready(struct link *L, const struct opts *o)
{
	struct zp_msg m = { .cmd = ZP_READY, .window = o->window };
	send_cmd(L->sock, &m);
}

static int receive_zmq(const struct opts *o)
{
	if (!o->into)
		die(EX_USAGE, "receive needs --into DIR");
	int dirfd = open(o->into, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		die(EX_CANTCREAT, "--into %s: %s", o->into, strerror(errno));
	struct link L = { 0 };
	link_open(&L, o);
	handshake(&L, o);
	say_ready(&L, o);
	int64_t beat_at = now_ms() + o->heartbeat_ms, heard = now_ms();
	bool warned = false;
	while (!stop_signal) {
		long wait = (long)(beat_at - now_ms());
		int in = wait_input(&L, wait > 0 ? wait : 0);
		if (in & 2) {
			enum mon_event e = monitor_event(&L, o);
			if (e == MON_UP)
				say_ready(&L, o);
			else if (e == MON_REFUSED)
				die(EX_UNAVAILABLE, "the broker refused this peer's key %s",
				    L.public_key);
		}
		struct incoming inc;
		struct zp_msg m;
		char why[160];
		for (int r; !stop_signal && (r = recv_cmd(L.sock, &inc, &m, why, sizeof(why))) != -EAGAIN;
		     recv_done(&inc)) {
			heard = now_ms();
			warned = false;
			if (r < 0)
				fprintf(stderr, "edibroker-peer: a message from the broker: %s\n", why);
			else if (m.cmd == ZP_DELIVER)
				take_delivery(&L, dirfd, &m, o);
			else if (m.cmd == ZP_HEARTBEAT && strcmp(m.state, "idle") == 0)
				say_ready(&L, o); /* the broker restarted, or lost us */
			else if (m.cmd == ZP_ERROR && broker_error(&m))
				die(EX_UNAVAILABLE, "this peer's key %s is no longer in the broker's "
				    "configuration", L.public_key);
		}
		if (now_ms() >= beat_at) {
			struct zp_msg hb = { .cmd = ZP_HEARTBEAT };
			send_cmd(L.sock, &hb);
			beat_at = now_ms() + o->heartbeat_ms;
			if (!warned && now_ms() - heard > 3 * o->heartbeat_ms) {
				fprintf(stderr, "edibroker-peer: no answer from the broker for %.0fs; "
					"still trying\n", (double)(now_ms() - heard) / 1000);
				warned = true;
			}
		}
	}
	link_close(&L);
	close(dirfd);
	return 0;
}

/* ---- keygen, HTTP, main ------------------------------------------------- */

static int keygen(const char *path)
{
	char pub[ZKEY_Z85_LEN + 1], why[512];
	int r = zkey_generate(path, pub, why, sizeof(why));
	if (r < 0)
		die(EX_CANTCREAT, "%s", why);
	printf("%s\n", pub);
	return 0;
}

static char *read_token(const struct opts *o)
{
	if (!o->token_file)
		return o->token ? xstrdup(o->token) : NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	int r = read_file_at(AT_FDCWD, o->token_file, 4096, &buf, &n);
	if (r < 0)
		die(EX_NOINPUT, "--token-file %s: %s", o->token_file, strerror(-r));
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return (char *)buf;
}

/* peer_http_send()'s refusals as exit codes (peer_http.h). */
static int http_exit(int r)
{
	switch (r) {
	case -EAGAIN:
	case -EIO:
		return EX_TEMPFAIL;   /* try again later / no answer came */
	case -EACCES:
	case -ENOSYS:
		return EX_UNAVAILABLE; /* the credential is refused / no HTTP client */
	case -EINVAL:
		return EX_DATAERR;    /* refused for what it is */
	default:
		return EX_NOINPUT;    /* the file cannot be read */
	}
}

static int send_http(const struct opts *o, char **files, size_t n)
{
	_cleanup_free_ char *token = read_token(o);
	int worst = 0;
	for (size_t i = 0; i < n; i++) {
		char err[512] = "";
		int r = peer_http_send(o->http, token, o->ca_file, o->cert, o->cert_key, files[i],
				       o->timeout_ms, err, sizeof(err));
		if (r == 0) {
			int64_t id = 0;
			if (o->verbose && sscanf(err, "id %" SCNd64, &id) == 1)
				printf("%s: accepted %" PRId64 "\n", files[i], id);
			else if (o->verbose)
				printf("%s: accepted\n", files[i]);
			continue;
		}
		fprintf(stderr, "%s: %s\n", files[i], err);
		int code = http_exit(r);
		if (code == EX_UNAVAILABLE) {
			worst = code;
			break;
		}
		/* a refusal for what it is outranks "try again later" */
		if (worst != EX_DATAERR)
			worst = code;
	}
	if (token)
		explicit_bzero(token, strlen(token));
	return worst;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

enum { O_ZMQ = 256, O_HTTP, O_BROKER_KEY, O_KEY, O_INTO, O_TOKEN, O_TOKEN_FILE, O_CA, O_CERT,
       O_CERT_KEY, O_WINDOW, O_TIMEOUT, O_CONNECT_TIMEOUT, O_HEARTBEAT, O_MAX_SIZE };

static const struct option long_opts[] = {
	{ "zmq", required_argument, NULL, O_ZMQ },
	{ "http", required_argument, NULL, O_HTTP },
	{ "broker-key", required_argument, NULL, O_BROKER_KEY },
	{ "key", required_argument, NULL, O_KEY },
	{ "into", required_argument, NULL, O_INTO },
	{ "token", required_argument, NULL, O_TOKEN },
	{ "token-file", required_argument, NULL, O_TOKEN_FILE },
	{ "ca-file", required_argument, NULL, O_CA },
	{ "cert", required_argument, NULL, O_CERT },
	{ "cert-key", required_argument, NULL, O_CERT_KEY },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
	{ "heartbeat", required_argument, NULL, O_HEARTBEAT },
	{ "max-size", required_argument, NULL, O_MAX_SIZE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static long duration_arg(const char *opt, const char *v)
{
	long ms = parse_duration(v);
	if (ms <= 0)
		die(EX_USAGE, "--%s: '%s' is not a duration (500ms, 5s, 2m)", opt, v);
	return ms;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	for (int c; (c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1;) {
		long v;
		switch (c) {
		case O_ZMQ: o->zmq = optarg; break;
		case O_HTTP: o->http = optarg; break;
		case O_BROKER_KEY: o->broker_key = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_INTO: o->into = optarg; break;
		case O_TOKEN: o->token = optarg; break;
		case O_TOKEN_FILE: o->token_file = optarg; break;
		case O_CA: o->ca_file = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_CERT_KEY: o->cert_key = optarg; break;
		case O_TIMEOUT: o->timeout_ms = duration_arg("timeout", optarg); break;
		case O_CONNECT_TIMEOUT:
			o->connect_timeout_ms = duration_arg("connect-timeout", optarg);
			break;
		case O_HEARTBEAT: o->heartbeat_ms = duration_arg("heartbeat", optarg); break;
		case O_WINDOW:
			v = strtol(optarg, NULL, 10);
			if (v < 1 || v > ZP_WINDOW_MAX)
				die(EX_USAGE, "--window: 1 to %d", ZP_WINDOW_MAX);
			o->window = (unsigned)v;
			break;
		case O_MAX_SIZE:
			if ((v = parse_size(optarg)) < 0)
				die(EX_USAGE, "--max-size: '%s' is not a size (16M)", optarg);
			o->max_size = (size_t)v;
			break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(EX_USAGE);
		}
	}
}

int main(int argc, char **argv)
{
	struct opts o = { .timeout_ms = 60000, .connect_timeout_ms = 10000, .heartbeat_ms = 5000,
			  .window = 64, .max_size = MAX_SIZE_DEFAULT };
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[1];
	parse_opts(argc - 1, argv + 1, &o);
	char **rest = argv + 1 + optind;
	size_t nrest = (size_t)(argc - 1 - optind);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "keygen") == 0) {
		if (nrest != 1)
			die(EX_USAGE, "keygen takes one FILE");
		return keygen(rest[0]);
	}
	if (strcmp(cmd, "send") == 0) {
		if (nrest == 0)
			die(EX_USAGE, "send: no MSGFILE");
		if (!!o.zmq == !!o.http)
			die(EX_USAGE, "send: --zmq or --http, one of them");
		return o.zmq ? send_zmq(&o, rest, nrest) : send_http(&o, rest, nrest);
	}
	if (strcmp(cmd, "receive") == 0) {
		if (nrest != 0 || !o.zmq)
			die(EX_USAGE, "receive --zmq ADDRESS --broker-key Z85 --key FILE --into DIR");
		return receive_zmq(&o);
	}
	die(EX_USAGE, "unknown command '%s' (keygen, send, receive)", cmd);
}

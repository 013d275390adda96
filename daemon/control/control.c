/*
 * control.c - the control socket server: accepts connections, learns from
 * the kernel who is calling, frames requests by line, parses JSON, and
 * writes the handler's answers in request order.
 *
 * Bounded per client and in total, because anyone who can reach the
 * socket is a client (control.h): a line over CONTROL_LINE_MAX gets an
 * error and the connection closes; the input buffer never holds more than
 * about one line (read high-water mark); once a client's unread answers
 * exceed CONTROL_OUT_MAX it is not read from, so a client that pipelines
 * requests and never reads costs at most that much, and reading resumes
 * when it has taken them down to a quarter; a connection that neither
 * sends nor takes its answers for idle_timeout is closed (libevent's read
 * and write timeouts); beyond max_connections a new client gets one error
 * line and is closed, so the listener is never blocked.
 *
 * A request that changes state is parked until the caller's user name and
 * the operator group are known (access.h: looked up on the control lane);
 * meanwhile the connection is not read from, so its later requests keep
 * their order. Every look-up that comes in retries the parked requests.
 * A handler that answers later (control_defer) holds the connection the
 * same way until control_reply(); the reply outlives the connection, so
 * work that finishes after the client left drops its answer safely.
 */
#include "control/control.h"

#include "base/log.h"
#include "base/clock.h"
#include "codecs/base/mem.h"

#include <assert.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define OUT_RESUME (CONTROL_OUT_MAX / 4)
#define REFUSED_LOG_MS 10000 /* at most one log line per this while refusing */
#define GROUPS_MAX 65536     /* NGROUPS_MAX of Linux */

struct conn {
	struct conn *next, **pprev;
	struct control *ctl;
	struct bufferevent *bev;
	struct control_peer peer;
	json_t *parked;     /* a request that changes state, waiting for names */
	struct control_reply *waiting; /* a deferred answer not given yet */
	bool in_handler;    /* a handler runs: a reply given now needs no process() */
	bool closing;       /* flush the output, then close */
};

struct control_reply {
	struct conn *c;     /* NULL once the connection is gone */
};

struct control {
	struct evconnlistener *listener;
	char *path;
	const struct control_ops *ops;
	void *arg;
	struct access *access;
	struct conn *conns;
	size_t nconns;
	size_t max_conns;
	struct timeval idle;
	bool socket_group_set; /* the socket's group is the operator group */
	bool group_warned;     /* could not give it that group: said so once */
	int64_t refused_logged; /* mono ms of the last "too many connections" line */
	size_t refused;        /* refused since then */
};

json_t *control_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

static void conn_free(struct conn *c)
{
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->ctl->nconns--;
	if (c->waiting)
		c->waiting->c = NULL; /* the work in flight answers no one */
	bufferevent_free(c->bev);
	json_decref(c->parked);
	free(c->peer.groups);
	free(c);
}

static size_t out_len(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void send_json(struct conn *c, json_t *answer)
{
	char *text = json_dumps(answer, JSON_COMPACT);
	if (!text)
		text = xstrdup("{\"ok\":false,\"error\":\"cannot encode answer\"}");
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	free(text);
	json_decref(answer);
}

/* After the output is flushed the connection closes (on_write). */
static void close_after_flush(struct conn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* on_write when all is sent */
}

/* Reads while nothing holds the connection back: a parked request, unread
 * answers over the bound, or a close under way. */
static void set_reading(struct conn *c)
{
	if (!c->closing && !c->parked && !c->waiting && out_len(c) <= CONTROL_OUT_MAX)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

static void process(struct conn *c);

/* Runs the handler; its answer is sent unless it deferred it. */
static void run_handler(struct conn *c, const json_t *req, const struct control_caller *who)
{
	c->in_handler = true;
	json_t *answer = c->ctl->ops->handle(req, who, c->ctl->arg);
	c->in_handler = false;
	if (answer)
		send_json(c, answer);
}

struct control_reply *control_defer(const struct control_caller *who)
{
	struct conn *c = who->conn; /* NULL: a caller without a connection (tests) */
	assert(!c || !c->waiting);
	struct control_reply *r = xcalloc(1, sizeof(*r));
	r->c = c;
	if (c)
		c->waiting = r;
	return r;
}

void control_reply(struct control_reply *r, json_t *answer)
{
	struct conn *c = r->c;
	free(r);
	if (!c) {
		json_decref(answer);
		return;
	}
	c->waiting = NULL;
	send_json(c, answer);
	if (!c->in_handler && !c->closing)
		process(c); /* the next requests it sent meanwhile */
}

/* Answers the parked request once the names it needs are known; false
 * while it still waits. */
static bool try_parked(struct conn *c)
{
	struct control *ctl = c->ctl;
	const struct access_policy *pol = access_policy(ctl->access);
	const char *user = access_user(ctl->access, c->peer.uid);
	if (!pol || !user)
		return false;
	struct control_caller who = { &c->peer, user, pol, c };
	json_t *req = TAKE_PTR(c->parked);
	run_handler(c, req, &who);
	json_decref(req);
	return true;
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
	struct control *ctl = c->ctl;
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr);
	json_t *answer;
	if (!req || !json_is_object(req)) {
		answer = control_error("request is not a JSON object: %s",
				       req ? "another JSON value" : jerr.text);
	} else if (!json_is_string(json_object_get(req, "cmd"))) {
		answer = control_error("request has no \"cmd\"");
	} else if (ctl->ops->mutates(req)) {
		c->parked = req;
		try_parked(c);
		return;
	} else {
		struct control_caller who = { &c->peer, NULL, access_policy(ctl->access), c };
		run_handler(c, req, &who);
		json_decref(req);
		return;
	}
	json_decref(req);
	send_json(c, answer);
}

/* The next line's length; -1 without a whole line; -2 for one over the
 * limit (whether or not its end is in). */
static ssize_t next_line(struct evbuffer *in)
{
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos < 0)
		return evbuffer_get_length(in) > CONTROL_LINE_MAX ? -2 : -1;
	return eol.pos > CONTROL_LINE_MAX ? -2 : (ssize_t)eol.pos;
}

/* Answers the whole lines waiting, as far as the bounds allow. */
static void process(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->closing && !c->parked && !c->waiting && out_len(c) <= CONTROL_OUT_MAX) {
		ssize_t n = next_line(in);
		if (n == -1)
			break;
		if (n == -2) {
			send_json(c, control_error("request longer than %d bytes", CONTROL_LINE_MAX));
			close_after_flush(c);
			break;
		}
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		handle_line(c, line, len);
		free(line);
	}
	set_reading(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->closing) {
		if (out_len(c) == 0)
			conn_free(c);
		return;
	}
	process(c); /* the client took its answers: read on */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_TIMEOUT) {
		log_debug("event=control-timeout uid=%u pid=%d %s", (unsigned)c->peer.uid,
			  (int)c->peer.pid, what & BEV_EVENT_READING ? "idle" : "answers-not-taken");
		conn_free(c);
	} else if (what & BEV_EVENT_ERROR) {
		conn_free(c);
	} else if (what & BEV_EVENT_EOF) {
		if (out_len(c) > 0 || c->parked || c->waiting)
			close_after_flush(c); /* the answers first */
		else
			conn_free(c);
	}
}

/* The peer's credentials as the kernel recorded them at connect(). */
static int peer_read(int fd, struct control_peer *p)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*p = (struct control_peer){ .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };
	gid_t small[64];
	socklen_t glen = sizeof(small);
	_cleanup_free_ gid_t *big = NULL;
	gid_t *groups = small;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0) {
		/* without SO_PEERGROUPS (old kernel) only the primary group counts */
		if (errno != ERANGE || glen > GROUPS_MAX * sizeof(gid_t))
			return 0;
		groups = big = xmalloc(glen);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
			return 0;
	}
	p->ngroups = glen / sizeof(gid_t);
	p->groups = xmalloc(glen ? glen : 1);
	memcpy(p->groups, groups, glen);
	return 0;
}

/* One error line, then close: never waits on the client. */
static void refuse(struct control *ctl, int fd)
{
	char line[160];
	int n = snprintf(line, sizeof(line),
			 "{\"ok\":false,\"error\":\"too many connections to the control socket "
			 "(%zu); try again later\"}\n",
			 ctl->max_conns);
	(void)send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL); /* best effort */
	close(fd);
	ctl->refused++;
	int64_t now = clock_mono_ms();
	if (ctl->refused_logged == 0 || now - ctl->refused_logged >= REFUSED_LOG_MS) {
		log_warn("event=control-refused reason=too-many-connections max=%zu refused=%zu",
			 ctl->max_conns, ctl->refused);
		ctl->refused_logged = now;
		ctl->refused = 0;
	}
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct control *ctl = arg;
	struct control_peer peer;
	if (ctl->nconns >= ctl->max_conns || peer_read(fd, &peer) < 0) {
		refuse(ctl, fd);
		return;
	}
	struct conn *c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	c->peer = peer;
	c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	/* at most about one line waits unread; answers resume at a quarter */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 1);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_RESUME, 0);
	bufferevent_set_timeouts(c->bev, &ctl->idle, &ctl->idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = ctl->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &ctl->conns;
	ctl->conns = c;
	ctl->nconns++;
	/* look the name up now, so that a change sent soon need not wait */
	(void)access_user(ctl->access, peer.uid);
}

/* Gives the socket the operator group, so its members can connect (0660).
 * Needs the daemon to be root or a member of that group (the unit's
 * SupplementaryGroups=); otherwise said once, and only the owner and
 * those the administrator lets in can connect. */
static void socket_group(struct control *ctl, const struct access_policy *pol)
{
	if (ctl->socket_group_set || !pol->group_found)
		return;
	if (chown(ctl->path, (uid_t)-1, pol->group_gid) == 0) {
		ctl->socket_group_set = true;
		return;
	}
	if (!ctl->group_warned)
		log_warn("event=control-socket-group path=%s group=\"%s\" error=\"%s\"", ctl->path,
			 pol->group, strerror(errno));
	ctl->group_warned = true;
}

/* A look-up is in: parked requests may go on. */
static void on_resolved(void *arg)
{
	struct control *ctl = arg;
	const struct access_policy *pol = access_policy(ctl->access);
	if (pol)
		socket_group(ctl, pol);
	for (struct conn *c = ctl->conns; c; c = c->next) {
		if (c->parked && try_parked(c) && !c->closing)
			process(c); /* closing: on_write closes once the answer is out */
	}
}

static int bind_socket(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (str_copy(sa.sun_path, path, sizeof(sa.sun_path)) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* stale: the state-dir lock shows no daemon owns it */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

void control_configure(struct control *ctl, const struct control_params *p)
{
	ctl->max_conns = p->max_connections;
	ctl->idle = (struct timeval){ (time_t)(p->idle_timeout_ms / 1000),
				      (suseconds_t)(p->idle_timeout_ms % 1000) * 1000 };
	for (struct conn *c = ctl->conns; c; c = c->next)
		bufferevent_set_timeouts(c->bev, &ctl->idle, &ctl->idle);
	ctl->socket_group_set = false; /* the group may be another now */
	ctl->group_warned = false;
	access_set_group(ctl->access, p->operator_group);
}

struct control *control_new(struct event_base *base, struct lane *lane, const char *path,
			    const struct control_params *params, const struct control_ops *ops,
			    void *arg, char *err, size_t errlen)
{
	int fd = bind_socket(path, err, errlen);
	if (fd < 0)
		return NULL;
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	ctl->path = xstrdup(path);
	ctl->ops = ops;
	ctl->arg = arg;
	ctl->listener = evconnlistener_new(base, on_accept, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!ctl->listener) {
		snprintf(err, errlen, "control socket %s: cannot listen", path);
		close(fd);
		unlink(path);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	ctl->access = access_new(lane, on_resolved, ctl);
	control_configure(ctl, params);
	return ctl;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->conns)
		conn_free(ctl->conns);
	evconnlistener_free(ctl->listener);
	access_free(ctl->access);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

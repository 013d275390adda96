/*
 * control.c - the control socket server: accepts connections, frames
 * requests by line, parses JSON and writes the handler's answer.
 *
 * Limits: a request line is at most 64 KiB (longer closes the connection
 * with an error); at most 64 connections at once. Each connection is a
 * libevent bufferevent; answers are written before the next request is
 * read, so a client sees answers in request order.
 */
#include "control/control.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define MAX_LINE (64 * 1024)
#define MAX_CONNS 64

struct conn {
	struct conn *next, **pprev;
	struct control *ctl;
	struct bufferevent *bev;
	bool closing;
};

struct control {
	struct evconnlistener *listener;
	char *path;
	control_handler handler;
	void *arg;
	struct conn *conns;
	size_t nconns;
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
	bufferevent_free(c->bev);
	free(c);
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

static void handle_line(struct conn *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr);
	json_t *answer;
	if (!req || !json_is_object(req))
		answer = control_error("request is not a JSON object: %s", jerr.text);
	else if (!json_is_string(json_object_get(req, "cmd")))
		answer = control_error("request has no \"cmd\"");
	else
		answer = c->ctl->handler(req, c->ctl->arg);
	json_decref(req);
	send_json(c, answer);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (!line)
			break;
		handle_line(c, line, len);
		free(line);
	}
	if (evbuffer_get_length(in) > MAX_LINE) {
		send_json(c, control_error("request longer than %d bytes", MAX_LINE));
		c->closing = true;
		bufferevent_disable(bev, EV_READ);
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->closing)
		conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 && !(what & BEV_EVENT_ERROR))
			c->closing = true; /* flush the answer first */
		else
			conn_free(c);
	}
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct control *ctl = arg;
	if (ctl->nconns >= MAX_CONNS) {
		close(fd);
		return;
	}
	struct conn *c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = ctl->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &ctl->conns;
	ctl->conns = c;
	ctl->nconns++;
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
	    chmod(path, 0660) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

struct control *control_new(struct event_base *base, const char *path, control_handler handler,
			    void *arg, char *err, size_t errlen)
{
	int fd = bind_socket(path, err, errlen);
	if (fd < 0)
		return NULL;
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	ctl->path = xstrdup(path);
	ctl->handler = handler;
	ctl->arg = arg;
	ctl->listener = evconnlistener_new(base, on_accept, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!ctl->listener) {
		snprintf(err, errlen, "control socket %s: cannot listen", path);
		close(fd);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	return ctl;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->conns)
		conn_free(ctl->conns);
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

/*
 * control.h - the operators' control socket (UNIX stream, mode 0660, its
 * group the operator group when the daemon may give it that group).
 *
 * Protocol: the client sends one JSON object per line ({"cmd": "status"}),
 * the daemon answers each with one JSON object per line: {"ok": true, ...}
 * or {"ok": false, "error": "..."}. edibrokerctl is the client; scripts may
 * speak it directly.
 *
 * Every connection carries the kernel's word on who is calling
 * (access.h). A request that changes state waits, without blocking the
 * loop, until the caller's user name and the operator group are looked
 * up, and is then handed over with both; the verbs decide (control_cmds.h).
 *
 * Bounds, so that no client can take the daemon's memory or lock the
 * operators out: a request line is at most CONTROL_LINE_MAX bytes; a
 * client whose unread answers exceed CONTROL_OUT_MAX is not read from until
 * it has taken them; a connection idle (or not taking its answers) for
 * idle_timeout is closed; beyond max_connections a new client gets an
 * error line and is closed at once.
 */
#ifndef EDIBROKER_CONTROL_H
#define EDIBROKER_CONTROL_H

#include "control/access.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_LINE_MAX (64 * 1024)
#define CONTROL_OUT_MAX (1024 * 1024)

struct control;

/* Who sent a request. For a request that changes state (ops->mutates),
 * user and policy are always set; for others they may be NULL. */
struct control_caller {
	const struct control_peer *peer;
	const char *user;                   /* "" when the system has no name for uid */
	const struct access_policy *policy;
	void *conn;                         /* the connection, for control_defer() */
};

/* An answer owed to one request, given later (control_defer). */
struct control_reply;

struct control_ops {
	/* Answers one request: returns a new reference, or NULL after
	 * control_defer() (the answer follows through control_reply()). */
	json_t *(*handle)(const json_t *request, const struct control_caller *who, void *arg);
	/* True when the request would change state (it then waits for names). */
	bool (*mutates)(const json_t *request);
};

/* The settings a reload may change ([control]). */
struct control_params {
	const char *operator_group;
	int64_t idle_timeout_ms;
	size_t max_connections;
};

/* Binds path (replacing a stale socket file) and resolves the operator
 * group on lane (borrowed; it must outlive the control's look-ups). ops and
 * arg are borrowed. NULL with a reason in err. */
struct control *control_new(struct event_base *base, struct lane *lane, const char *path,
			    const struct control_params *params, const struct control_ops *ops,
			    void *arg, char *err, size_t errlen);
/* New settings (reload): applied to new connections and timeouts; the
 * operator group is looked up again. */
void control_configure(struct control *c, const struct control_params *params);
/* Closes the listener and every connection, and removes the socket file. */
void control_free(struct control *c);

/* Helpers for handlers. */
json_t *control_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For a handler whose answer needs work off the loop (a file read on an
 * endpoint's lane, a commit): the request's answer will be given by
 * control_reply(); until then the connection reads no further requests,
 * so answers keep their order. The handler then returns NULL. */
struct control_reply *control_defer(const struct control_caller *who);
/* Sends the deferred answer (taken over) and frees r. When the client has
 * gone (or the control socket was closed) the answer is dropped: the work
 * it reports is done either way. */
void control_reply(struct control_reply *r, json_t *answer);

#endif

/*
 * control.h - the operators' control socket (UNIX stream, mode 0660).
 *
 * Protocol: the client sends one JSON object per line ({"cmd": "status"}),
 * the daemon answers each with one JSON object per line: {"ok": true, ...}
 * or {"ok": false, "error": "..."}. edibrokerctl is the client; scripts may
 * speak it directly.
 */
#ifndef EDIBROKER_CONTROL_H
#define EDIBROKER_CONTROL_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

struct control;

/* Answers one request; returns a new reference (never NULL). */
typedef json_t *(*control_handler)(const json_t *request, void *arg);

/* Binds path (replacing a stale socket file). NULL with a reason in err. */
struct control *control_new(struct event_base *base, const char *path, control_handler handler,
			    void *arg, char *err, size_t errlen);
/* Closes the listener and every connection, and removes the socket file. */
void control_free(struct control *c);

/* Helpers for handlers. */
json_t *control_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

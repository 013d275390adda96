/*
 * sdnotify.h - the systemd service protocol (Type=notify).
 *
 * READY=1 once the store is recovered and every listener is bound;
 * RELOADING=1 / READY=1 around a reload; STOPPING=1 on shutdown; STATUS=
 * a one-line summary; WATCHDOG=1 from a timer on the event loop at half of
 * WATCHDOG_USEC, so a stuck loop stops the pings. Without NOTIFY_SOCKET
 * every call is a no-op.
 */
#ifndef EDIBROKER_SDNOTIFY_H
#define EDIBROKER_SDNOTIFY_H

#include <event2/event.h>

void sdnotify_ready(void);
void sdnotify_reloading(void);
void sdnotify_stopping(void);
/* Sends STATUS=text when it differs from the last one sent. */
void sdnotify_status(const char *text);

/* Starts the watchdog timer on base when the service manager asked for one
 * (WATCHDOG_USEC, and WATCHDOG_PID if set, names this process). */
void sdnotify_watchdog_start(struct event_base *base);
void sdnotify_watchdog_stop(void);

#endif

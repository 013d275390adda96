/*
 * sdnotify.c - sd_notify(3) messages and the watchdog timer.
 *
 * libsystemd does the socket work (including abstract sockets and
 * WATCHDOG_PID checks); this file decides when. Only the event loop thread
 * calls in here.
 */
#include "base/sdnotify.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <stdint.h>
#include <string.h>
#include <systemd/sd-daemon.h>

static struct event *watchdog_ev;
static char *last_status;

static void notify(const char *msg)
{
	int r = sd_notify(0, msg);
	if (r < 0)
		log_warn("event=sd-notify-failed state=%s error=%s", msg, strerror(-r));
}

void sdnotify_ready(void)
{
	notify("READY=1");
}

void sdnotify_reloading(void)
{
	notify("RELOADING=1");
}

void sdnotify_stopping(void)
{
	notify("STOPPING=1");
}

void sdnotify_status(const char *text)
{
	if (last_status && strcmp(last_status, text) == 0)
		return;
	free(last_status);
	last_status = xstrdup(text);
	_cleanup_free_ char *msg = xasprintf("STATUS=%s", text);
	notify(msg);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	notify("WATCHDOG=1");
}

void sdnotify_watchdog_start(struct event_base *base)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	struct timeval tv = { .tv_sec = (time_t)(usec / 2 / 1000000),
			      .tv_usec = (suseconds_t)(usec / 2 % 1000000) };
	watchdog_ev = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
	event_add(watchdog_ev, &tv);
	notify("WATCHDOG=1");
	log_info("event=watchdog interval_ms=%llu", (unsigned long long)(usec / 2000));
}

void sdnotify_watchdog_stop(void)
{
	if (watchdog_ev) {
		event_free(watchdog_ev);
		watchdog_ev = NULL;
	}
	free(last_status);
	last_status = NULL;
}

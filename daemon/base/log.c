/*
 * log.c - stderr logging in the sd-daemon(3) "<P>" convention.
 *
 * A record is assembled in a stack buffer and written with one write(2) so
 * that lines from different threads never interleave. Overlong records are
 * truncated, never split.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int max_prio = LOG_INFO;
static int decorate;

static const char *const prio_names[] = { "emerg", "alert", "crit", "err",
					  "warning", "notice", "info", "debug" };

void log_setup(int max_priority, int tty)
{
	max_prio = max_priority;
	decorate = tty;
}

void log_init(void)
{
	log_setup(LOG_INFO, isatty(STDERR_FILENO));
}

int log_max_priority(void)
{
	return max_prio;
}

void log_msg(int priority, const char *fmt, ...)
{
	if (priority > max_prio)
		return;
	char buf[2048];
	int n;
	if (decorate) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld %-7s ", tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, prio_names[priority & 7]);
	} else {
		n = snprintf(buf, sizeof(buf), "<%d>", priority & 7);
	}
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	/* A record is one line: embedded newlines would forge records. */
	for (size_t i = (size_t)n; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[len++] = '\n';
	ssize_t r = write(STDERR_FILENO, buf, len);
	(void)r;
}

/*
 * log.c - stderr logging in the sd-daemon(3) "<P>" convention, one event per
 * line in logfmt.
 *
 * A record is assembled in a stack buffer and written with one write(2) so
 * that lines from different threads never interleave. Overlong records are
 * truncated, never split.
 *
 * This is the one log writer, and it makes log lines impossible to forge:
 * every string value (%s) is written so that it stays one value. A value
 * after "key=" that is empty or contains a space, a quote, '=', a backslash
 * or a control character is written quoted (key="a b") with \" \\ \n \r \t
 * and \xNN escapes; a value inside a quoted part of the format ("...%s...")
 * gets the same escapes; any other %s is quoted when it needs to be. So a
 * file name or sender field holding " event=delivered" cannot add a field,
 * and a newline cannot start a record. Numbers are written as printf does.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX 2048

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

/* A bounded output buffer; writes past the end are dropped. */
struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void putc_(struct out *o, char c)
{
	put(o, &c, 1);
}

static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			return true;
	return false;
}

/* s with \" \\ and control characters escaped (no surrounding quotes). */
static void put_escaped(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char e = *p == '"' ? '"' : *p == '\\' ? '\\' : *p == '\n' ? 'n'
			 : *p == '\r' ? 'r' : *p == '\t' ? 't' : 0;
		if (e) {
			char b[2] = { '\\', e };
			put(o, b, 2);
		} else if (*p < ' ' || *p == 0x7f) {
			char b[4] = { '\\', 'x', hex[*p >> 4], hex[*p & 15] };
			put(o, b, 4);
		} else {
			putc_(o, (char)*p);
		}
	}
}

static void put_value(struct out *o, const char *s, bool in_quotes)
{
	if (!s)
		s = "(null)";
	if (in_quotes) {
		put_escaped(o, s);
	} else if (needs_quotes(s)) {
		putc_(o, '"');
		put_escaped(o, s);
		putc_(o, '"');
	} else {
		put(o, s, strlen(s));
	}
}

/* Formats one non-string conversion spec[0..n) with its argument. */
static void put_conversion(struct out *o, const char *spec, size_t n, va_list *ap)
{
	char f[32], tmp[128];
	if (n >= sizeof(f))
		return;
	memcpy(f, spec, n);
	f[n] = '\0';
	char conv = spec[n - 1];
	bool ll = strstr(f, "ll") != NULL, l = !ll && strchr(f, 'l'), z = strchr(f, 'z') != NULL;
	int m;
	if (strchr("di", conv))
		m = ll ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, long long))
		    : l ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, long))
		    : z ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, ssize_t))
			: snprintf(tmp, sizeof(tmp), f, va_arg(*ap, int));
	else if (strchr("uxXo", conv))
		m = ll ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, unsigned long long))
		    : l ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, unsigned long))
		    : z ? snprintf(tmp, sizeof(tmp), f, va_arg(*ap, size_t))
			: snprintf(tmp, sizeof(tmp), f, va_arg(*ap, unsigned));
	else if (strchr("feEgG", conv))
		m = snprintf(tmp, sizeof(tmp), f, va_arg(*ap, double));
	else if (conv == 'c')
		m = snprintf(tmp, sizeof(tmp), "%c", (char)va_arg(*ap, int));
	else if (conv == 'p')
		m = snprintf(tmp, sizeof(tmp), f, va_arg(*ap, void *));
	else
		return;
	if (m > 0)
		put(o, tmp, (size_t)m < sizeof(tmp) ? (size_t)m : sizeof(tmp) - 1);
}

/* Writes fmt with its arguments into o under the quoting rules above. */
static void format(struct out *o, const char *fmt, va_list *ap)
{
	bool in_quotes = false;
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			if (*p == '"')
				in_quotes = !in_quotes;
			putc_(o, *p);
			continue;
		}
		if (p[1] == '%') {
			putc_(o, '%');
			p++;
			continue;
		}
		size_t n = 1 + strspn(p + 1, "-+ #0123456789.*hlzjt");
		if (!p[n])
			break;
		n++; /* the conversion character */
		if (p[n - 1] == 's') {
			/* a precision ("%.20s", "%.*s") caps the bytes shown */
			const char *dot = memchr(p, '.', n);
			long prec = -1;
			if (dot && dot[1] == '*')
				prec = va_arg(*ap, int);
			else if (dot)
				prec = strtol(dot + 1, NULL, 10);
			const char *v = va_arg(*ap, const char *);
			if (prec >= 0 && v && strnlen(v, (size_t)prec) == (size_t)prec) {
				char *cut = strndup(v, (size_t)prec);
				put_value(o, cut ? cut : "", in_quotes);
				free(cut);
			} else {
				put_value(o, v, in_quotes);
			}
		} else if (memchr(p, '*', n)) {
			return; /* a '*' width on a number: no caller writes one */
		} else {
			put_conversion(o, p, n, ap);
		}
		p += n - 1;
	}
}

void log_msg(int priority, const char *fmt, ...)
{
	if (priority > max_prio)
		return;
	char buf[RECORD_MAX];
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
	struct out o = { buf, (size_t)n, sizeof(buf) - 1 };
	va_list ap;
	va_start(ap, fmt);
	format(&o, fmt, &ap);
	va_end(ap);
	/* A record is one line: a newline in the format itself is no record. */
	for (size_t i = (size_t)n; i < o.len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[o.len++] = '\n';
	ssize_t r = write(STDERR_FILENO, buf, o.len);
	(void)r;
}

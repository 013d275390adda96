/*
 * timerules.c - when a notice may go out, and to whom.
 *
 * Owns the parsed time rules of the outage procedure: the daily send window,
 * the EDI-support hours per weekday, the configured closed days, and the
 * process time zone. Invariants: every span is half-open [start, end) in
 * minutes of the local day; a support span never crosses midnight (start <
 * end), the send window may (end < start, "22:00-06:00"); a weekday has at
 * most one support span. Rules are judged on local wall-clock fields from
 * localtime_r, and a future local time is built from its fields with mktime,
 * never by adding 24 hours, so both summer-time change days come out right.
 * A weekend day is closed unless support_hours names it, so a configured
 * "sat 10:00-12:00" means what it says. The config loader feeds
 * timerules_new() at start-up and reload (the only place TZ is set); the
 * outage module asks for each notice when it may go out and to whom;
 * calendar.c supplies the public holidays. Nothing here logs.
 */
#include "time/timerules.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "codecs/base/mem.h"

static const char default_window[] = "08:00-22:00";
static const char default_hours[] = "mon-thu 08:00-15:45, fri 08:00-14:00";
static const char default_zone[] = "Europe/Copenhagen";
static const char zone_dir[] = "/usr/share/zoneinfo";

/* Monday first, as operators write them; tm_wday of day_names[i] is (i + 1) % 7. */
static const char *const day_names[7] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

/* A half-open span of minutes of the local day; start < 0: none. */
struct span {
	int start, end;
};

struct timerules {
	struct span window;	/* end < start: crosses midnight */
	struct span support[7]; /* by tm_wday, 0 = Sunday */
	bool closed[13][32];	/* [month][day] from closed_days */
};

/* ---- parsing ------------------------------------------------------------ */

/* Where a parse error goes, as "key: reason". */
struct perr {
	const char *key;
	char *buf;
	size_t len;
};

static int fail(const struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const struct perr *e, const char *fmt, ...)
{
	va_list ap;

	if (!e->buf || e->len == 0)
		return -EINVAL;
	int n = snprintf(e->buf, e->len, "%s: ", e->key);
	if (n >= 0 && (size_t)n < e->len) {
		va_start(ap, fmt);
		vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static const char *or_default(const char *s, const char *def)
{
	return s == NULL || *skip_ws(s) == '\0' ? def : s;
}

/* Length of the list item at p, for quoting it in an error. */
static int item_len(const char *p)
{
	return (int)strcspn(p, " \t,");
}

static bool two_digits(const char *p, int *v)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return false;
	*v = (p[0] - '0') * 10 + (p[1] - '0');
	return true;
}

/* "HH:MM" at *p: 00:00-23:59, or 24:00 when allow_24 (an end). */
static int parse_clock(const char **p, bool allow_24, int *minute, const struct perr *e)
{
	const char *s = *p;
	int h, m;

	if (!two_digits(s, &h) || s[2] != ':' || !two_digits(s + 3, &m))
		return fail(e, "bad time \"%.*s\" (want HH:MM)", (int)strcspn(s, " \t,-"), s);
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)))
		return fail(e, "\"%.5s\" is not a time of day (00:00-23:59%s)", s,
			    allow_24 ? ", or 24:00 as an end" : "");
	*minute = h * 60 + m;
	*p = s + 5;
	return 0;
}

/* "HH:MM-HH:MM" at *p, blanks allowed around the dash. */
static int parse_span(const char **p, struct span *sp, const struct perr *e)
{
	int r = parse_clock(p, false, &sp->start, e);

	if (r < 0)
		return r;
	*p = skip_ws(*p);
	if (**p != '-')
		return fail(e, "expected \"-\" after the start time at \"%s\" (want HH:MM-HH:MM)", *p);
	*p = skip_ws(*p + 1);
	return parse_clock(p, true, &sp->end, e);
}

static int parse_window(const char *s, struct span *w, char *err, size_t errlen)
{
	const struct perr e = { "send_window", err, errlen };
	const char *p = skip_ws(s);
	int r = parse_span(&p, w, &e);

	if (r < 0)
		return r;
	p = skip_ws(p);
	if (*p)
		return fail(&e, "unexpected \"%s\" after the window", p);
	if (w->start == w->end)
		return fail(&e, "\"%s\" is empty (00:00-24:00 means always)", s);
	return 0;
}

/* A day name at *p, as 0 = Monday .. 6 = Sunday. */
static int parse_day(const char **p, int *day, const struct perr *e)
{
	size_t n = 0;

	while (isalpha((unsigned char)(*p)[n]))
		n++;
	if (n == 0)
		return fail(e, "expected a day (mon..sun) at \"%s\"", *p);
	for (int i = 0; i < 7; i++) {
		if (n == 3 && strncasecmp(*p, day_names[i], 3) == 0) {
			*day = i;
			*p += n;
			return 0;
		}
	}
	return fail(e, "unknown day \"%.*s\" (want mon, tue, wed, thu, fri, sat or sun)", (int)n, *p);
}

/* "ddd" or "ddd-ddd" at *p, as the range first..last (Monday = 0). */
static int parse_days(const char **p, int *first, int *last, const struct perr *e)
{
	const char *s = *p;
	int r = parse_day(p, first, e);

	if (r < 0)
		return r;
	*last = *first;
	if (**p != '-')
		return 0;
	(*p)++;
	r = parse_day(p, last, e);
	if (r < 0)
		return r;
	if (*last < *first)
		return fail(e, "day range \"%.*s\" runs backwards (days go mon..sun)", (int)(*p - s), s);
	return 0;
}

/* One clause "days HH:MM-HH:MM" into hours[] (by tm_wday). */
static int parse_clause(const char **p, struct span hours[7], const struct perr *e)
{
	int first, last, r;
	struct span sp;

	if ((r = parse_days(p, &first, &last, e)) < 0)
		return r;
	if (**p != ' ' && **p != '\t')
		return fail(e, "expected a blank after the days at \"%s\"", *p);
	*p = skip_ws(*p);
	if ((r = parse_span(p, &sp, e)) < 0)
		return r;
	if (sp.end <= sp.start)
		return fail(e,
			    "%s: end %02d:%02d is not after start %02d:%02d"
			    " (support hours may not cross midnight)",
			    day_names[first], sp.end / 60, sp.end % 60, sp.start / 60, sp.start % 60);
	for (int d = first; d <= last; d++) {
		struct span *slot = &hours[(d + 1) % 7];
		if (slot->start >= 0)
			return fail(e, "%s appears twice", day_names[d]);
		*slot = sp;
	}
	return 0;
}

static int parse_support(const char *s, struct span hours[7], char *err, size_t errlen)
{
	const struct perr e = { "support_hours", err, errlen };

	for (int d = 0; d < 7; d++)
		hours[d] = (struct span){ -1, -1 };
	for (;;) {
		s = skip_ws(s);
		if (*s == ',' || *s == '\0')
			return fail(&e, "empty clause (want e.g. \"mon-thu 08:00-15:45, fri 08:00-14:00\")");
		int r = parse_clause(&s, hours, &e);
		if (r < 0)
			return r;
		s = skip_ws(s);
		if (*s == '\0')
			return 0;
		if (*s != ',')
			return fail(&e, "expected \",\" before \"%s\"", s);
		s++;
	}
}

/* "MM-DD" at *p, a real day of some year (Feb 29 allowed). */
static int parse_month_day(const char **p, int *month, int *day, const struct perr *e)
{
	const char *s = *p;
	int len = item_len(s);

	if (len != 5 || !two_digits(s, month) || s[2] != '-' || !two_digits(s + 3, day))
		return fail(e, "bad day \"%.*s\" (want MM-DD)", len, s);
	/* 2000 is a leap year, so 02-29 passes. */
	if (*day < 1 || *day > calendar_days_in_month(2000, *month))
		return fail(e, "\"%.5s\" is not a day of the year (MM-DD)", s);
	*p = s + 5;
	return 0;
}

static int parse_closed(const char *s, bool closed[13][32], char *err, size_t errlen)
{
	const struct perr e = { "closed_days", err, errlen };
	int month, day, r;

	s = skip_ws(s);
	if (*s == '\0')
		return 0;
	for (;;) {
		if (*s == ',' || *s == '\0')
			return fail(&e, "empty entry (want e.g. \"12-24, 12-31\")");
		if ((r = parse_month_day(&s, &month, &day, &e)) < 0)
			return r;
		closed[month][day] = true;
		s = skip_ws(s);
		if (*s == '\0')
			return 0;
		if (*s != ',')
			return fail(&e, "expected \",\" before \"%s\"", s);
		s = skip_ws(s + 1);
	}
}

/* A relative path of plain name characters, without "..". */
static bool zone_name_ok(const char *name)
{
	static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789/_+-.";
	size_t n = strlen(name);

	return n > 0 && n < 256 && name[0] != '/' && !strstr(name, "..") && strspn(name, chars) == n;
}

/* A regular file that starts with the tzfile(5) magic. */
static bool is_tzif(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	char magic[4];

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	return read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	       memcmp(magic, "TZif", sizeof(magic)) == 0;
}

/* glibc falls back to UTC for a name it cannot load, so look first; it
 * reads TZDIR when set, and so do we. */
static int check_zone(const char *name, const struct perr *e)
{
	const char *dir = getenv("TZDIR");

	if (str_empty(dir))
		dir = zone_dir;
	if (!zone_name_ok(name))
		return fail(e, "\"%s\" is not a time zone name (want e.g. Europe/Copenhagen)", name);
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	if (!is_tzif(path))
		return fail(e, "unknown time zone \"%s\" (not found under %s)", name, dir);
	return 0;
}

static int apply_zone(const char *name, const struct perr *e)
{
	/* Unchanged on most reloads: leave the environment alone then, since a
	 * worker may be copying it for the fallback command. */
	const char *cur = getenv("TZ");
	if (cur && strcmp(cur, name) == 0) {
		tzset();
		return 0;
	}
	if (setenv("TZ", name, 1) < 0)
		return fail(e, "setenv TZ: %s", strerror(errno));
	tzset();
	return 0;
}

struct timerules *timerules_new(const char *send_window, const char *support_hours,
				const char *closed_days, const char *zone, char *err, size_t errlen)
{
	_cleanup_free_ struct timerules *tr = xcalloc(1, sizeof(*tr));
	const struct perr zone_err = { "timezone", err, errlen };
	const char *z = or_default(zone, default_zone);

	if (parse_window(or_default(send_window, default_window), &tr->window, err, errlen) < 0 ||
	    parse_support(or_default(support_hours, default_hours), tr->support, err, errlen) < 0 ||
	    parse_closed(or_default(closed_days, ""), tr->closed, err, errlen) < 0 ||
	    check_zone(z, &zone_err) < 0 || apply_zone(z, &zone_err) < 0)
		return NULL;
	return TAKE_PTR(tr);
}

void timerules_free(struct timerules *tr)
{
	free(tr);
}

int timerules_check(const char *key, const char *value, char *err, size_t errlen)
{
	struct timerules tmp;
	char buf[256] = "";
	const struct perr zone_err = { "timezone", buf, sizeof(buf) };
	int r;

	if (strcmp(key, "send_window") == 0)
		r = parse_window(value, &tmp.window, buf, sizeof(buf));
	else if (strcmp(key, "support_hours") == 0)
		r = parse_support(value, tmp.support, buf, sizeof(buf));
	else if (strcmp(key, "closed_days") == 0)
		r = parse_closed(value, tmp.closed, buf, sizeof(buf));
	else if (strcmp(key, "timezone") == 0)
		r = check_zone(value, &zone_err);
	else
		r = fail(&(struct perr){ key, buf, sizeof(buf) }, "not a time-rule setting");
	if (r < 0 && err && errlen) {
		/* The caller names the key itself: drop our "key: " prefix. */
		size_t k = strlen(key);
		const char *why = strncmp(buf, key, k) == 0 && buf[k] == ':' ? buf + k + 2 : buf;
		snprintf(err, errlen, "%s", why);
	}
	return r;
}

/* ---- local time --------------------------------------------------------- */

/* Whole seconds since the epoch, rounded down (t may be negative). */
static time_t to_seconds(int64_t t)
{
	return (time_t)(t / 1000 - (t % 1000 < 0));
}

static void to_local(int64_t t, struct tm *tm)
{
	time_t s = to_seconds(t);
	struct tm *ok = localtime_r(&s, tm);

	assert(ok);
	(void)ok;
}

static int second_of_day(const struct tm *tm)
{
	return tm->tm_hour * 3600 + tm->tm_min * 60 + tm->tm_sec;
}

static bool same_day(const struct tm *a, const struct tm *b)
{
	return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon && a->tm_mday == b->tm_mday;
}

/* Is second-of-day sec inside sp, which may cross midnight? */
static bool span_has(const struct span *sp, int sec)
{
	int start = sp->start * 60, end = sp->end * 60;

	if (sp->start < 0)
		return false;
	if (start < end)
		return sec >= start && sec < end;
	return sec >= start || sec < end;
}

/* Inside a skipped hour: the first instant in [lo, hi] at which the local
 * clock on *date reads sec or later, i.e. the end of the gap. */
static time_t gap_end(const struct tm *date, int sec, time_t lo, time_t hi)
{
	while (lo < hi) {
		time_t mid = lo + (hi - lo) / 2;
		struct tm tm;

		to_local((int64_t)mid * 1000, &tm);
		if (same_day(&tm, date) && second_of_day(&tm) >= sec)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* The instants at which the local clock reads sec seconds into the date of
 * *date, earliest first: returns 1, or 2 in the hour repeated in autumn. It
 * returns 0 for a reading skipped in spring; out[0] is then the first
 * instant the clock reads later than it (02:30 -> 03:00 summer time). */
static int local_instants(const struct tm *date, int sec, time_t out[2])
{
	time_t cand[2];
	int n = 0;

	for (int dst = 0; dst < 2; dst++) {
		struct tm tm = { .tm_year = date->tm_year, .tm_mon = date->tm_mon,
				 .tm_mday = date->tm_mday, .tm_hour = sec / 3600,
				 .tm_min = sec / 60 % 60, .tm_sec = sec % 60, .tm_isdst = dst };
		cand[dst] = mktime(&tm);
		if (same_day(&tm, date) && second_of_day(&tm) == sec && (n == 0 || out[0] != cand[dst]))
			out[n++] = cand[dst];
	}
	if (n == 2 && out[1] < out[0]) {
		time_t later = out[0];
		out[0] = out[1];
		out[1] = later;
	}
	/* mktime read the skipped time once in each offset: the gap lies between. */
	if (n == 0)
		out[0] = cand[0] < cand[1] ? gap_end(date, sec, cand[0], cand[1])
					   : gap_end(date, sec, cand[1], cand[0]);
	return n;
}

/* The local date days after that of *from (noon exists on every date). */
static struct tm date_after(const struct tm *from, int days)
{
	struct tm d = { .tm_year = from->tm_year, .tm_mon = from->tm_mon,
			.tm_mday = from->tm_mday + days, .tm_hour = 12, .tm_isdst = -1 };

	mktime(&d);
	return d;
}

/* ---- the rules ---------------------------------------------------------- */

bool timerules_in_send_window(const struct timerules *tr, int64_t t)
{
	struct tm tm;

	to_local(t, &tm);
	return span_has(&tr->window, second_of_day(&tm));
}

int64_t timerules_next_send_time(const struct timerules *tr, int64_t t)
{
	struct tm now;

	if (timerules_in_send_window(tr, t))
		return t;
	to_local(t, &now);
	/* The window opens once a local day: today, unless that is past. */
	for (int k = 0; k < 3; k++) {
		struct tm day = date_after(&now, k);
		time_t at[2];
		int n = local_instants(&day, tr->window.start * 60, at);

		for (int i = 0; i < (n > 0 ? n : 1); i++)
			if ((int64_t)at[i] * 1000 >= t)
				return (int64_t)at[i] * 1000;
	}
	assert(!"the send window never opens");
	return t;
}

static bool is_weekend(int wday)
{
	return wday == 0 || wday == 6;
}

static bool closed_date(const struct timerules *tr, const struct tm *tm)
{
	if (is_weekend(tm->tm_wday) && tr->support[tm->tm_wday].start < 0)
		return true;
	return tr->closed[tm->tm_mon + 1][tm->tm_mday] ||
	       calendar_is_public_holiday(tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, NULL);
}

bool timerules_is_closed_day(const struct timerules *tr, int64_t t)
{
	struct tm tm;

	to_local(t, &tm);
	return closed_date(tr, &tm);
}

enum audience timerules_audience(const struct timerules *tr, int64_t t)
{
	struct tm tm;

	to_local(t, &tm);
	if (closed_date(tr, &tm) || !span_has(&tr->support[tm.tm_wday], second_of_day(&tm)))
		return AUDIENCE_ONCALL;
	return AUDIENCE_SUPPORT;
}

/* ---- reading and writing local times ------------------------------------ */

struct stamp {
	int year, month, day;
	int sec;    /* of the day */
	int offset; /* seconds east of UTC, when has_offset */
	bool has_offset;
};

/* "YYYY-MM-DD" at *p, a real date of year >= 1. */
static bool scan_date(const char **p, struct stamp *st)
{
	const char *s = *p;
	int hi, lo;

	if (!two_digits(s, &hi) || !two_digits(s + 2, &lo) || s[4] != '-' ||
	    !two_digits(s + 5, &st->month) || s[7] != '-' || !two_digits(s + 8, &st->day))
		return false;
	st->year = hi * 100 + lo;
	*p = s + 10;
	return st->year >= 1 && st->day >= 1 &&
	       st->day <= calendar_days_in_month(st->year, st->month);
}

/* "HH:MM" or "HH:MM:SS" at *p. */
static bool scan_time(const char **p, struct stamp *st)
{
	const char *s = *p;
	int h, m, sec = 0;

	if (!two_digits(s, &h) || s[2] != ':' || !two_digits(s + 3, &m))
		return false;
	s += 5;
	if (*s == ':') {
		if (!two_digits(s + 1, &sec))
			return false;
		s += 3;
	}
	*p = s;
	st->sec = h * 3600 + m * 60 + sec;
	return h < 24 && m < 60 && sec < 60;
}

/* The rest of the string: nothing, "Z", or "+HH:MM" / "-HH:MM". */
static bool scan_offset(const char *s, struct stamp *st)
{
	int h, m;

	st->has_offset = *s != '\0';
	st->offset = 0;
	if (*s == '\0' || strcmp(s, "Z") == 0)
		return true;
	if ((*s != '+' && *s != '-') || !two_digits(s + 1, &h) || s[3] != ':' ||
	    !two_digits(s + 4, &m) || s[6] != '\0')
		return false;
	st->offset = (*s == '-' ? -1 : 1) * (h * 3600 + m * 60);
	return h < 24 && m < 60;
}

int timerules_parse_time(const char *s, int64_t *t)
{
	struct stamp st;
	time_t at[2];

	assert(s && t);
	if (!scan_date(&s, &st) || (*s != ' ' && *s != 'T'))
		return -EINVAL;
	s++;
	if (!scan_time(&s, &st) || !scan_offset(s, &st))
		return -EINVAL;
	if (st.has_offset) {
		int64_t days = calendar_days_from_civil(st.year, st.month, st.day);
		*t = (days * 86400 + st.sec - st.offset) * 1000;
		return 0;
	}
	struct tm date = { .tm_year = st.year - 1900, .tm_mon = st.month - 1, .tm_mday = st.day };
	if (local_instants(&date, st.sec, at) == 0)
		return -EINVAL; /* skipped by the spring change */
	*t = (int64_t)at[0] * 1000;
	return 0;
}

void timerules_format_local(int64_t t, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0)
		return;
	to_local(t, &tm);
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min);
}

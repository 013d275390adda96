/*
 * config.c - reads the INI file into a complete, validated struct config.
 *
 * Owns the two key tables below: the keys of the global sections, and those
 * of every [endpoint NAME] section. Each row gives a key's name, type,
 * default, bounds and whether a SIGHUP may change it, and everything else -
 * parsing, defaults, freeing, comparing on reload - is driven by the rows, so
 * a new key is one row (plus its field in config.h).
 *
 * ini.c splits the file into section headers, key = value pairs and
 * indented continuations, each with its line number, so every message names
 * its line, sections without keys are seen at all, and a list continued on
 * an indented line is told from a key written twice.
 *
 * Invariants: config_load() yields either a config in which every key holds
 * a valid value (defaults filled in, relative paths made absolute against the
 * working directory at load time, cross-key rules checked) or no config and
 * one "FILE:LINE: reason". Nothing here logs, and no state outlives a call.
 * The daemon calls it at start-up, on SIGHUP and for --check-config; router,
 * spool, delivery, outage and notify read the result.
 */
#include "conf/config.h"
#include "conf/ini.h"
#include "time/timerules.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "codecs/base/mem.h"

#define ENDPOINT_NAME_MAX 64

#define SECS 1000LL
#define MINS (60 * SECS)
#define HOURS (60 * MINS)
#define DAYS (24 * HOURS)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

enum ktype { T_STR, T_PATH, T_DURATION, T_INT, T_SIZE, T_DOUBLE, T_BOOL, T_ENUM, T_LIST };

enum {
	RELOAD = 1 << 0,   /* a SIGHUP may change it; without it, a restart is needed */
	OPTIONAL = 1 << 1, /* strings: an empty value means unset (NULL) */
	REQUIRED = 1 << 2, /* endpoints: must be given (a list: with an item) */
	ZERO_OFF = 1 << 3, /* numbers: 0 means "off" and is allowed below min */
};

/* A word a key accepts; a T_ENUM key stores its value (an int). */
struct choice {
	const char *name;
	int value;
};

/* Extra syntax of a string or of each list item: 0, or -EINVAL and why. */
typedef int check_fn(const char *v, char *why, size_t len);

struct key {
	const char *section;	      /* global section; NULL in the endpoint table */
	const char *name;
	enum ktype type;
	size_t off;		      /* of the value in struct config / endpoint_conf */
	size_t count_off;	      /* T_LIST: of its size_t count */
	const char *def;	      /* default, written as in the file; NULL = unset */
	int64_t min, max;	      /* T_INT, T_DOUBLE, T_SIZE (bytes), T_DURATION (ms) */
	const struct choice *choices; /* T_ENUM; for a T_STR, the only words it takes */
	check_fn *check;	      /* T_STR: the value; T_LIST: each item */
	unsigned flags;
};

static check_fn check_ident, check_gln, check_email, check_smtp_url, check_http_url,
	check_window, check_support_hours, check_closed_days, check_timezone;

static const struct choice log_levels[] = {
	{ "err", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
	{ "info", LOG_INFO }, { "debug", LOG_DEBUG },	  { NULL, 0 },
};
static const struct choice kinds[] = {
	{ "hospital", ENDPOINT_HOSPITAL },
	{ "municipality", ENDPOINT_MUNICIPALITY },
	{ "other", ENDPOINT_OTHER },
	{ NULL, 0 },
};
static const struct choice stores[] = { { "sqlite", 0 }, { NULL, 0 } };
static const struct choice transports[] = { { "spool", 0 }, { NULL, 0 } };
static const struct choice languages[] = { { "da", 0 }, { "en", 0 }, { NULL, 0 } };
static const struct choice starttls[] = { { "no", 0 }, { "try", 0 }, { "yes", 0 }, { NULL, 0 } };

#define G(sec, key, t, field)                                                                      \
	.section = sec, .name = key, .type = t, .off = offsetof(struct config, field)
#define GLIST(sec, key, field)                                                                     \
	G(sec, key, T_LIST, field), .count_off = offsetof(struct config, n##field)
#define E(key, t, field) .name = key, .type = t, .off = offsetof(struct endpoint_conf, field)
#define ELIST(key, field)                                                                          \
	E(key, T_LIST, field), .count_off = offsetof(struct endpoint_conf, n##field)

/*
 * The global keys, in the order defaults are filled in: state_dir comes
 * first because the relative defaults of other paths (control.sock, status)
 * are relative to it. Keys without RELOAD hold resources opened once at
 * start-up (the store, the control socket) or the identity the store's rows
 * carry (id), so a SIGHUP that changes them is refused by the daemon.
 */
static const struct key global_keys[] = {
	{ G("broker", "state_dir", T_PATH, state_dir), .def = "/var/lib/edibroker" },
	{ G("broker", "control_socket", T_PATH, control_socket), .def = "control.sock" },
	{ G("broker", "id", T_STR, broker_id), .def = "EDIBROKER", .check = check_ident },
	{ G("broker", "store", T_STR, store_backend), .def = "sqlite", .choices = stores },
	{ G("broker", "max_message_size", T_SIZE, max_message_size), .def = "16M", .min = KIB,
	  .max = 100 * MIB, .flags = RELOAD },
	{ G("broker", "log_level", T_ENUM, log_level), .def = "info", .choices = log_levels,
	  .flags = RELOAD },

	{ G("delivery", "retry_initial", T_DURATION, retry_initial_ms), .def = "5s", .min = 100,
	  .max = 1 * HOURS, .flags = RELOAD },
	{ G("delivery", "retry_max", T_DURATION, retry_max_ms), .def = "10m", .min = 100,
	  .max = 1 * DAYS, .flags = RELOAD },
	{ G("delivery", "drain_rate", T_DOUBLE, drain_rate), .def = "0", .min = 0, .max = 1000000,
	  .flags = RELOAD },
	{ G("delivery", "batch_max", T_INT, batch_max), .def = "256", .min = 1, .max = 10000,
	  .flags = RELOAD },

	{ G("routing", "default_endpoint", T_STR, default_endpoint), .flags = RELOAD | OPTIONAL },

	{ G("spool", "rescan_interval", T_DURATION, rescan_interval_ms), .def = "30s", .min = 100,
	  .max = 1 * DAYS, .flags = RELOAD },

	{ G("store", "retention", T_DURATION, retention_ms), .def = "7d", .min = 100,
	  .max = 3650 * DAYS, .flags = RELOAD },
	{ G("store", "history", T_DURATION, history_ms), .def = "90d", .min = 100,
	  .max = 3650 * DAYS, .flags = RELOAD },
	{ G("store", "max_size", T_SIZE, store_max_size), .def = "0", .min = MIB, .max = 64 * TIB,
	  .flags = RELOAD | ZERO_OFF },

	{ G("outage", "threshold", T_DURATION, outage_threshold_ms), .def = "2h", .min = 100,
	  .max = 30 * DAYS, .flags = RELOAD },
	{ G("outage", "probe_interval", T_DURATION, probe_interval_ms), .def = "1m", .min = 100,
	  .max = 1 * DAYS, .flags = RELOAD },
	{ G("outage", "down_after", T_INT, down_after), .def = "3", .min = 1, .max = 100,
	  .flags = RELOAD },
	{ G("outage", "update_interval", T_DURATION, update_interval_ms), .def = "1h", .min = 100,
	  .max = 30 * DAYS, .flags = RELOAD },
	{ G("outage", "send_window", T_STR, send_window), .def = "08:00-22:00",
	  .check = check_window, .flags = RELOAD },
	{ G("outage", "support_hours", T_STR, support_hours),
	  .def = "mon-thu 08:00-15:45, fri 08:00-14:00", .check = check_support_hours,
	  .flags = RELOAD },
	{ G("outage", "timezone", T_STR, timezone), .def = "Europe/Copenhagen",
	  .check = check_timezone, .flags = RELOAD },
	{ G("outage", "language", T_STR, language), .def = "da", .choices = languages,
	  .flags = RELOAD },
	{ G("outage", "template_dir", T_PATH, template_dir), .flags = RELOAD | OPTIONAL },

	{ G("notify", "smtp_url", T_STR, smtp_url), .check = check_smtp_url,
	  .flags = RELOAD | OPTIONAL },
	{ G("notify", "smtp_user", T_STR, smtp_user), .flags = RELOAD | OPTIONAL },
	{ G("notify", "smtp_password", T_STR, smtp_password), .flags = RELOAD | OPTIONAL },
	{ G("notify", "smtp_starttls", T_STR, smtp_starttls), .def = "try", .choices = starttls,
	  .flags = RELOAD },
	{ G("notify", "mail_from", T_STR, mail_from), .check = check_email,
	  .flags = RELOAD | OPTIONAL },
	{ GLIST("notify", "support_recipients", support_recipients), .check = check_email,
	  .flags = RELOAD },
	{ GLIST("notify", "oncall_recipients", oncall_recipients), .check = check_email,
	  .flags = RELOAD },
	{ GLIST("notify", "hospital_recipients", hospital_recipients), .check = check_email,
	  .flags = RELOAD },
	{ GLIST("notify", "municipality_recipients", municipality_recipients),
	  .check = check_email, .flags = RELOAD },
	{ G("notify", "webhook_url", T_STR, webhook_url), .check = check_http_url,
	  .flags = RELOAD | OPTIONAL },
	{ G("notify", "fallback_command", T_STR, fallback_command), .flags = RELOAD | OPTIONAL },
	{ G("notify", "retry_initial", T_DURATION, notify_retry_ms), .def = "30s", .min = 100,
	  .max = 1 * HOURS, .flags = RELOAD },
	{ G("notify", "fallback_after", T_INT, fallback_after), .def = "3", .min = 1, .max = 100,
	  .flags = RELOAD },
	{ G("notify", "timeout", T_DURATION, notify_timeout_ms), .def = "30s", .min = 100,
	  .max = 10 * 60 * 1000, .flags = RELOAD },
	{ G("notify", "closed_days", T_STR, closed_days), .check = check_closed_days,
	  .flags = RELOAD | OPTIONAL },
	{ G("notify", "status_dir", T_PATH, status_dir), .def = "status", .flags = RELOAD },
};

/*
 * The keys of an [endpoint NAME] section. A SIGHUP may add, remove and
 * change endpoints, so every key is reloadable. quarantine (default
 * <state_dir>/quarantine/<name>) and organisation (default: the name) are
 * derived in endpoint_defaults(); transport = spool also needs inbox and
 * outbox (check_endpoint()).
 */
static const struct key endpoint_keys[] = {
	{ E("kind", T_ENUM, kind), .choices = kinds, .flags = RELOAD | REQUIRED },
	{ E("transport", T_STR, transport), .def = "spool", .choices = transports, .flags = RELOAD },
	{ ELIST("gln", gln), .check = check_gln, .flags = RELOAD | REQUIRED },
	{ E("inbox", T_PATH, inbox), .flags = RELOAD | OPTIONAL },
	{ E("outbox", T_PATH, outbox), .flags = RELOAD | OPTIONAL },
	{ E("quarantine", T_PATH, quarantine), .flags = RELOAD | OPTIONAL },
	{ E("create_dirs", T_BOOL, create_dirs), .def = "no", .flags = RELOAD },
	{ E("contact", T_STR, contact), .flags = RELOAD | OPTIONAL },
	{ ELIST("recipients", recipients), .check = check_email, .flags = RELOAD },
	{ E("pickup_timeout", T_DURATION, pickup_timeout_ms), .def = "0", .min = 100,
	  .max = 30 * DAYS, .flags = RELOAD | ZERO_OFF },
	{ E("organisation", T_STR, organisation), .flags = RELOAD | OPTIONAL },
};

_Static_assert(sizeof(enum endpoint_kind) == sizeof(int), "T_ENUM stores an int");

/* ---- the loader's state ------------------------------------------------- */

struct item_line {
	const char *item; /* a list item, owned by the config */
	int line;
};

struct ep_state {
	int seen[ARRAY_SIZE(endpoint_keys)]; /* the line that set each key; 0 = not set */
};

struct loader {
	struct config *cfg;	/* being built; NULL once handed out */
	const char *path;	/* as the caller wrote it, for messages */
	char *cwd;		/* relative paths in the file resolve against it */
	FILE *f;
	const char *section;	/* the current global section (a table string), or NULL */
	long ep;		/* the current endpoint's index, or -1 */
	int seen[ARRAY_SIZE(global_keys)];
	struct ep_state *eps;	/* parallel to cfg->endpoints */
	const struct key *last; /* the key of the previous pair */
	int comma_line;		/* a list line ended with ',': a continuation must follow */
	struct item_line *items;
	size_t nitems;
	char *err;
	size_t errlen;
	int rc;			/* the first error; 0 while there is none */
};

/* Where the keys of the current section live. */
struct target {
	const struct key *keys;
	size_t n;
	int *seen;
	char *base;
};

static int fail_at(struct loader *L, int rc, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Records the first error as "FILE:LINE: reason" (or "FILE: reason" for line
 * 0) and returns it; later errors are consequences and are dropped. */
static int fail_at(struct loader *L, int rc, int line, const char *fmt, ...)
{
	va_list ap;

	if (L->rc)
		return L->rc;
	L->rc = rc;
	if (!L->err || L->errlen == 0)
		return rc;
	int n = line > 0 ? snprintf(L->err, L->errlen, "%s:%d: ", L->path, line)
			 : snprintf(L->err, L->errlen, "%s: ", L->path);
	if (n >= 0 && (size_t)n < L->errlen) {
		va_start(ap, fmt);
		vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

#define fail(L, line, ...) fail_at(L, -EINVAL, line, __VA_ARGS__)

/* ---- small string helpers ----------------------------------------------- */

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static const char *skip_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Appends s to the string in buf, truncating at len. */
static void cat(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);
	if (n < len)
		str_copy(buf + n, s, len - n);
}

/* dir/p (or p when absolute), with "." and empty components dropped. ".."
 * is kept: resolving it without the file system could cross a symlink. */
static char *resolve_path(const char *dir, const char *p)
{
	_cleanup_free_ char *joined = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", dir, p);
	char *out = xmalloc(strlen(joined) + 2);
	char *save = NULL;
	size_t n = 0;

	for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		out[n++] = '/';
		memcpy(out + n, c, strlen(c));
		n += strlen(c);
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return out;
}

/* ---- durations and sizes ------------------------------------------------ */

static const struct {
	const char *suffix;
	int64_t ms;
} duration_units[] = {
	{ "ms", 1 }, { "s", SECS }, { "m", MINS }, { "h", HOURS }, { "d", DAYS }, { "", SECS },
};

/* Decimal digits at *p into *v; false on overflow. */
static bool take_digits(const char **p, uint64_t *v, int *ndigits)
{
	*v = 0;
	*ndigits = 0;
	for (; isdigit((unsigned char)**p); (*p)++, (*ndigits)++) {
		if (*v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(**p - '0');
	}
	return true;
}

static int64_t duration_unit(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++)
		if (strcmp(s, duration_units[i].suffix) == 0)
			return duration_units[i].ms;
	return 0;
}

/* "1.5h" is accepted: a fraction is fine as long as the result is a whole
 * number of milliseconds ("0.5ms" is not). */
int config_parse_duration(const char *s, int64_t *ms)
{
	uint64_t whole, frac = 0, scale = 1;
	int nwhole, nfrac = 0;

	if (!take_digits(&s, &whole, &nwhole) || nwhole == 0)
		return -EINVAL;
	if (*s == '.') {
		s++;
		if (!take_digits(&s, &frac, &nfrac) || nfrac == 0 || nfrac > 9)
			return -EINVAL;
	}
	for (int i = 0; i < nfrac; i++)
		scale *= 10;
	uint64_t unit = (uint64_t)duration_unit(s);
	if (unit == 0 || whole > (uint64_t)INT64_MAX / unit || frac * unit % scale != 0)
		return -EINVAL;
	uint64_t total = whole * unit, part = frac * unit / scale;
	if (part > (uint64_t)INT64_MAX - total)
		return -EINVAL;
	*ms = (int64_t)(total + part);
	return 0;
}

static const struct {
	const char *suffix;
	int64_t bytes;
} size_units[] = {
	{ "", 1 },	   { "K", KIB }, { "KiB", KIB }, { "M", MIB }, { "MiB", MIB },
	{ "G", GIB },	   { "GiB", GIB }, { "T", TIB }, { "TiB", TIB },
};

/* Bytes, or a whole number with a K/M/G/T suffix (binary multiples, any case). */
static int parse_size(const char *s, int64_t *bytes)
{
	uint64_t n;
	int digits;

	if (!take_digits(&s, &n, &digits) || digits == 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(size_units); i++) {
		if (strcasecmp(s, size_units[i].suffix) != 0)
			continue;
		if (n > (uint64_t)INT64_MAX / (uint64_t)size_units[i].bytes)
			return -EINVAL;
		*bytes = (int64_t)n * size_units[i].bytes;
		return 0;
	}
	return -EINVAL;
}

/* The largest unit that divides exactly: 90000 -> "90s", 7200000 -> "2h". */
static void format_duration(int64_t ms, char *buf, size_t len)
{
	for (size_t i = ARRAY_SIZE(duration_units) - 2; i > 0; i--) {
		int64_t u = duration_units[i].ms;
		if (ms >= u && ms % u == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / u), duration_units[i].suffix);
			return;
		}
	}
	snprintf(buf, len, "%lldms", (long long)ms);
}

static void format_size(int64_t bytes, char *buf, size_t len)
{
	static const char units[] = "TGMK";
	for (int i = 0; i < 4; i++) {
		int64_t u = KIB << (10 * (3 - i));
		if (bytes >= u && bytes % u == 0) {
			snprintf(buf, len, "%lld%c", (long long)(bytes / u), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%lld", (long long)bytes);
}

/* ---- value checks (the check_fn of a key) ------------------------------- */

static bool ident_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 35)
		return false;
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

static int check_ident(const char *v, char *why, size_t len)
{
	if (ident_ok(v))
		return 0;
	snprintf(why, len, "'%s' is not a valid id (1-35 printable characters, no spaces)", v);
	return -EINVAL;
}

static int check_gln(const char *v, char *why, size_t len)
{
	if (ident_ok(v))
		return 0;
	snprintf(why, len, "'%s' is not a location number (1-35 printable characters, no spaces)", v);
	return -EINVAL;
}

/* A bare address, local@domain: what SMTP's MAIL FROM and RCPT TO take. */
static int check_email(const char *v, char *why, size_t len)
{
	const char *at = strrchr(v, '@');
	bool ok = at && at != v && at[1] != '\0';

	for (const char *p = v; ok && *p; p++) {
		unsigned char c = (unsigned char)*p;
		ok = (c >= 0x80 || isgraph(c)) && !strchr("<>()[],;:\"\\", c);
	}
	if (ok)
		return 0;
	snprintf(why, len, "'%s' is not an e-mail address", v);
	return -EINVAL;
}

static bool url_ok(const char *v, const char *scheme)
{
	size_t n = strlen(scheme);
	if (strncmp(v, scheme, n) != 0 || v[n] == '\0' || v[n] == '/')
		return false;
	for (; *v; v++)
		if (!isgraph((unsigned char)*v))
			return false;
	return true;
}

static int check_smtp_url(const char *v, char *why, size_t len)
{
	if (url_ok(v, "smtp://") || url_ok(v, "smtps://"))
		return 0;
	snprintf(why, len, "'%s' is not an smtp:// or smtps:// URL", v);
	return -EINVAL;
}

static int check_http_url(const char *v, char *why, size_t len)
{
	if (url_ok(v, "http://") || url_ok(v, "https://"))
		return 0;
	snprintf(why, len, "'%s' is not an http:// or https:// URL", v);
	return -EINVAL;
}

/* The time-rule grammar lives in timerules.c; asking it here lets the
 * error name the line. */
static int check_window(const char *v, char *why, size_t len)
{
	return timerules_check("send_window", v, why, len);
}

static int check_support_hours(const char *v, char *why, size_t len)
{
	return timerules_check("support_hours", v, why, len);
}

static int check_closed_days(const char *v, char *why, size_t len)
{
	return timerules_check("closed_days", v, why, len);
}

static int check_timezone(const char *v, char *why, size_t len)
{
	return timerules_check("timezone", v, why, len);
}

/* ---- setting one value -------------------------------------------------- */

static const struct choice *find_choice(const struct choice *c, const char *name)
{
	for (; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* "KEY: must be a, b or c" */
static int fail_choices(struct loader *L, const struct key *k, int line)
{
	char list[160] = "";
	for (const struct choice *c = k->choices; c->name; c++) {
		if (c != k->choices)
			cat(list, sizeof(list), c[1].name ? ", " : " or ");
		cat(list, sizeof(list), c->name);
	}
	return fail(L, line, "%s: must be %s", k->name, list);
}

static void format_value(const struct key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == T_DURATION)
		format_duration(v, buf, len);
	else if (k->type == T_SIZE)
		format_size(v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static int check_range(struct loader *L, const struct key *k, int64_t v, int line)
{
	const char *noun = k->type == T_DURATION ? "duration " : k->type == T_SIZE ? "size " : "";
	bool low = v < k->min;
	char limit[32];

	if ((v == 0 && (k->flags & ZERO_OFF)) || (!low && v <= k->max))
		return 0;
	format_value(k, low ? k->min : k->max, limit, sizeof(limit));
	return fail(L, line, "%s: %smust be at %s %s%s", k->name, noun, low ? "least" : "most", limit,
		    (k->flags & ZERO_OFF) ? " (or 0 for off)" : "");
}

static int set_unset(struct loader *L, const struct key *k, char **field, int line)
{
	if (!(k->flags & OPTIONAL))
		return fail(L, line, "%s: must not be empty", k->name);
	free(*field);
	*field = NULL;
	return 0;
}

static int set_str(struct loader *L, const struct key *k, char **field, const char *v, int line)
{
	char why[256];

	if (*v == '\0')
		return set_unset(L, k, field, line);
	if (k->choices && !find_choice(k->choices, v))
		return fail_choices(L, k, line);
	if (k->check && k->check(v, why, sizeof(why)) < 0)
		return fail(L, line, "%s: %s", k->name, why);
	free(*field);
	*field = xstrdup(v);
	return 0;
}

/* A relative path written in the file is relative to the working directory;
 * a relative default (control.sock, status) to state_dir. */
static int set_path(struct loader *L, const struct key *k, char **field, const char *v, int line)
{
	if (*v == '\0')
		return set_unset(L, k, field, line);
	const char *dir = line > 0 ? L->cwd : L->cfg->state_dir;
	assert(dir || v[0] == '/');
	free(*field);
	*field = resolve_path(dir, v);
	return 0;
}

static int set_duration(struct loader *L, const struct key *k, int64_t *field, const char *v,
			int line)
{
	int64_t ms;
	if (config_parse_duration(v, &ms) < 0)
		return fail(L, line, "%s: invalid duration '%s' (use e.g. 500ms, 90s, 15m, 2h)", k->name, v);
	if (check_range(L, k, ms, line) < 0)
		return L->rc;
	*field = ms;
	return 0;
}

static int set_int(struct loader *L, const struct key *k, int64_t *field, const char *v, int line)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || end == v || *end || isspace((unsigned char)*v))
		return fail(L, line, "%s: invalid number '%s'", k->name, v);
	if (check_range(L, k, n, line) < 0)
		return L->rc;
	*field = n;
	return 0;
}

static int set_size(struct loader *L, const struct key *k, int64_t *field, const char *v, int line)
{
	int64_t bytes;
	if (parse_size(v, &bytes) < 0)
		return fail(L, line, "%s: invalid size '%s' (use e.g. 65536, 512K, 16M, 1G)", k->name, v);
	if (check_range(L, k, bytes, line) < 0)
		return L->rc;
	*field = bytes;
	return 0;
}

static int set_double(struct loader *L, const struct key *k, double *field, const char *v, int line)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(d) || isspace((unsigned char)*v))
		return fail(L, line, "%s: invalid number '%s'", k->name, v);
	if (d < (double)k->min || d > (double)k->max)
		return fail(L, line, "%s: must be between %lld and %lld", k->name, (long long)k->min,
			    (long long)k->max);
	*field = d;
	return 0;
}

static int set_bool(struct loader *L, const struct key *k, bool *field, const char *v, int line)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*field = strcasecmp(v, yes[i]) == 0;
			return 0;
		}
	}
	return fail(L, line, "%s: must be yes or no", k->name);
}

static int set_enum(struct loader *L, const struct key *k, int *field, const char *v, int line)
{
	const struct choice *c = find_choice(k->choices, v);
	if (!c)
		return fail_choices(L, k, line);
	*field = c->value;
	return 0;
}

static void list_push(struct loader *L, const struct key *k, char *base, const char *item, int line)
{
	char ***items = (char ***)(void *)(base + k->off);
	size_t *n = (size_t *)(void *)(base + k->count_off);

	*items = xrealloc(*items, (*n + 1) * sizeof(**items));
	char *copy = (*items)[(*n)++] = xstrdup(item);
	L->items = xrealloc(L->items, (L->nitems + 1) * sizeof(*L->items));
	L->items[L->nitems++] = (struct item_line){ copy, line };
}

static int list_item(struct loader *L, const struct key *k, char *base, const char *item, int line)
{
	char why[256];
	if (*item == '\0')
		return fail(L, line, "%s: empty item in list", k->name);
	if (k->check && k->check(item, why, sizeof(why)) < 0)
		return fail(L, line, "%s: %s", k->name, why);
	list_push(L, k, base, item, line);
	return 0;
}

/* Appends the comma-separated items of one line. An empty value adds none;
 * a line may end with ',' when an indented line continues the list. */
static int list_add(struct loader *L, const struct key *k, char *base, const char *value, int line)
{
	_cleanup_free_ char *copy = xstrdup(value);
	char *p = copy;

	if (*p == '\0')
		return 0;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		char *item = trim(p);
		if (*item == '\0' && !comma && p != copy) {
			L->comma_line = line;
			return 0;
		}
		int r = list_item(L, k, base, item, line);
		if (r < 0 || !comma)
			return r;
		p = comma + 1;
	}
}

static int set_value(struct loader *L, const struct key *k, char *base, const char *v, int line)
{
	void *field = base + k->off;

	switch (k->type) {
	case T_STR:
		return set_str(L, k, field, v, line);
	case T_PATH:
		return set_path(L, k, field, v, line);
	case T_DURATION:
		return set_duration(L, k, field, v, line);
	case T_INT:
		return set_int(L, k, field, v, line);
	case T_SIZE:
		return set_size(L, k, field, v, line);
	case T_DOUBLE:
		return set_double(L, k, field, v, line);
	case T_BOOL:
		return set_bool(L, k, field, v, line);
	case T_ENUM:
		return set_enum(L, k, field, v, line);
	case T_LIST:
		return list_add(L, k, base, v, line);
	}
	assert(!"unknown key type");
	return -EINVAL;
}

/* ---- sections and pairs ------------------------------------------------- */

static struct target endpoint_target(struct loader *L, size_t i)
{
	return (struct target){ endpoint_keys, ARRAY_SIZE(endpoint_keys), L->eps[i].seen,
				(char *)&L->cfg->endpoints[i] };
}

static bool current_target(struct loader *L, struct target *t)
{
	if (L->ep >= 0)
		*t = endpoint_target(L, (size_t)L->ep);
	else if (L->section)
		*t = (struct target){ global_keys, ARRAY_SIZE(global_keys), L->seen, (char *)L->cfg };
	return L->ep >= 0 || L->section;
}

/* section is NULL for the endpoint table. */
static const struct key *find_key(const struct key *keys, size_t n, const char *section,
				  const char *name)
{
	for (size_t i = 0; i < n; i++)
		if ((!section || strcmp(keys[i].section, section) == 0) && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static const char *section_label(const struct loader *L, char *buf, size_t len)
{
	if (L->ep < 0)
		return L->section;
	snprintf(buf, len, "endpoint %s", L->cfg->endpoints[L->ep].name);
	return buf;
}

static int close_list(struct loader *L)
{
	int line = L->comma_line;
	L->comma_line = 0;
	return line ? fail(L, line, "%s: empty item in list", L->last->name) : 0;
}

static bool endpoint_name_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
	return n > 0 && n <= ENDPOINT_NAME_MAX && s[n] == '\0' && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0;
}

static int endpoint_begin(struct loader *L, const char *name, int line)
{
	struct config *cfg = L->cfg;
	size_t n = cfg->nendpoints;

	name = skip_blanks(name);
	if (*name == '\0')
		return fail(L, line, "endpoint section without a name (write [endpoint NAME])");
	if (!endpoint_name_ok(name))
		return fail(L, line,
			    "invalid endpoint name '%s' (1-%d letters, digits, '.', '_' or '-')", name,
			    ENDPOINT_NAME_MAX);
	const struct endpoint_conf *dup = config_endpoint(cfg, name);
	if (dup)
		return fail(L, line, "duplicate endpoint '%s' (first at line %d)", name, dup->line);
	cfg->endpoints = xrealloc(cfg->endpoints, (n + 1) * sizeof(*cfg->endpoints));
	L->eps = xrealloc(L->eps, (n + 1) * sizeof(*L->eps));
	cfg->endpoints[n] = (struct endpoint_conf){ .name = xstrdup(name), .line = line };
	memset(&L->eps[n], 0, sizeof(L->eps[n]));
	cfg->nendpoints = n + 1;
	L->ep = (long)n;
	return 0;
}

static int section_begin(struct loader *L, const char *name, int line)
{
	if (close_list(L) < 0)
		return L->rc;
	L->section = NULL;
	L->ep = -1;
	if (strncmp(name, "endpoint", 8) == 0 && (name[8] == '\0' || isspace((unsigned char)name[8])))
		return endpoint_begin(L, name + 8, line);
	for (size_t i = 0; i < ARRAY_SIZE(global_keys); i++) {
		if (strcmp(global_keys[i].section, name) == 0) {
			L->section = global_keys[i].section;
			return 0;
		}
	}
	return fail(L, line, "unknown section [%s]", name);
}

static int set_pair(struct loader *L, const char *name, const char *value, int line)
{
	struct target t;
	char where[96];

	if (close_list(L) < 0)
		return L->rc;
	if (!current_target(L, &t))
		return fail(L, line, "key '%s' before the first [section]", name);
	const struct key *k = find_key(t.keys, t.n, L->ep < 0 ? L->section : NULL, name);
	if (!k)
		return fail(L, line, "unknown key '%s' in [%s]", name,
			    section_label(L, where, sizeof(where)));
	int *seen = &t.seen[k - t.keys];
	if (*seen)
		return fail(L, line, "duplicate key '%s' in [%s] (first at line %d)", name,
			    section_label(L, where, sizeof(where)), *seen);
	*seen = line;
	L->last = k;
	return set_value(L, k, t.base, value, line);
}

/* An indented line after a key: the text continues that key's value. */
static int continue_pair(struct loader *L, const char *text, int line)
{
	struct target t;

	if (!current_target(L, &t) || !L->last) {
		assert(!"a continuation always follows a key of the same section");
		return -EINVAL;
	}
	if (L->last->type != T_LIST)
		return fail(L, line, "%s: only lists may continue on an indented line",
			    L->last->name);
	L->comma_line = 0;
	return list_add(L, L->last, t.base, text, line);
}

/* ---- the reader's callbacks ---------------------------------------------- */

static int on_section(void *user, const char *text, int line)
{
	return section_begin(user, text, line);
}

static int on_pair(void *user, const char *key, const char *value, int line)
{
	return set_pair(user, key, value, line);
}

static int on_more(void *user, const char *key, const char *text, int line)
{
	(void)key; /* L->last is that key's row */
	return continue_pair(user, text, line);
}

static int parse(struct loader *L)
{
	static const struct ini_handler handler = { on_section, on_pair, on_more };

	int r = ini_parse(L->f, L->path, &handler, L, L->err, L->errlen);
	if (L->rc)
		return L->rc;
	L->rc = r;
	return r;
}

/* ---- defaults ----------------------------------------------------------- */

static void fill_defaults(struct loader *L, const struct key *keys, size_t n, const int *seen,
			  char *base)
{
	for (size_t i = 0; i < n; i++) {
		if (seen[i] || !keys[i].def)
			continue;
		int r = set_value(L, &keys[i], base, keys[i].def, 0);
		assert(r == 0 && "every default is valid");
		(void)r;
	}
}

static void endpoint_defaults(struct loader *L, size_t i)
{
	struct endpoint_conf *ep = &L->cfg->endpoints[i];

	fill_defaults(L, endpoint_keys, ARRAY_SIZE(endpoint_keys), L->eps[i].seen, (char *)ep);
	if (!ep->quarantine)
		ep->quarantine = xasprintf("%s/quarantine/%s", L->cfg->state_dir, ep->name);
	if (!ep->organisation)
		ep->organisation = xstrdup(ep->name);
}

/* ---- whole-config validation -------------------------------------------- */

static int global_line(const struct loader *L, const char *section, const char *name)
{
	const struct key *k = find_key(global_keys, ARRAY_SIZE(global_keys), section, name);
	assert(k);
	return L->seen[k - global_keys];
}

static int endpoint_line(const struct loader *L, size_t i, const char *name)
{
	const struct key *k = find_key(endpoint_keys, ARRAY_SIZE(endpoint_keys), NULL, name);
	assert(k);
	return L->eps[i].seen[k - endpoint_keys];
}

static int64_t global_ms(const struct loader *L, const char *section, const char *name)
{
	const struct key *k = find_key(global_keys, ARRAY_SIZE(global_keys), section, name);
	assert(k && k->type == T_DURATION);
	return *(const int64_t *)(const void *)((const char *)L->cfg + k->off);
}

/* Duration lo must not exceed hi; blamed on whichever the file sets. */
static int check_order(struct loader *L, const char *section, const char *lo, const char *hi)
{
	int64_t a = global_ms(L, section, lo), b = global_ms(L, section, hi);
	char fa[32], fb[32];

	if (b >= a)
		return 0;
	format_duration(a, fa, sizeof(fa));
	format_duration(b, fb, sizeof(fb));
	int hi_line = global_line(L, section, hi);
	if (hi_line)
		return fail(L, hi_line, "%s: must be at least %s (%s)", hi, lo, fa);
	return fail(L, global_line(L, section, lo), "%s: must not exceed %s (%s)", lo, hi, fb);
}

/* A key an endpoint must have: blamed on its line when written empty, else
 * on the section header. */
static int need(struct loader *L, size_t i, const char *name, bool present, const char *why)
{
	const struct endpoint_conf *ep = &L->cfg->endpoints[i];
	int line = endpoint_line(L, i, name);

	if (present)
		return 0;
	if (line)
		return fail(L, line, "endpoint '%s': %s must not be empty%s", ep->name, name, why);
	return fail(L, ep->line, "endpoint '%s': missing required key '%s'%s", ep->name, name, why);
}

static bool has_value(const struct key *k, const char *base, int seen)
{
	if (k->type == T_LIST)
		return *(const size_t *)(const void *)(base + k->count_off) > 0;
	if (k->type == T_STR || k->type == T_PATH)
		return *(char *const *)(const void *)(base + k->off) != NULL;
	return seen > 0;
}

static int check_endpoint(struct loader *L, size_t i)
{
	const struct endpoint_conf *ep = &L->cfg->endpoints[i];

	for (size_t k = 0; k < ARRAY_SIZE(endpoint_keys); k++) {
		const struct key *key = &endpoint_keys[k];
		if ((key->flags & REQUIRED) &&
		    need(L, i, key->name, has_value(key, (const char *)ep, L->eps[i].seen[k]), "") < 0)
			return L->rc;
	}
	if (strcmp(ep->transport, "spool") == 0 &&
	    (need(L, i, "inbox", ep->inbox, " (transport spool)") < 0 ||
	     need(L, i, "outbox", ep->outbox, " (transport spool)") < 0))
		return L->rc;
	return 0;
}

/* A value some endpoint claims (a GLN, a folder), and where. */
struct claim {
	const char *value;
	const char *what;
	size_t ep;
	int line;
};

static int claim_cmp(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	int c = strcmp(x->value, y->value);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Sorts the claims and returns the index of the clash whose later claim is
 * nearest the top of the file (the earlier claim is just before it), or 0.
 * Two claims of a value clash unless both are a `shared` kind. */
static size_t first_clash(struct claim *c, size_t n, const char *shared)
{
	size_t best = 0;

	if (n < 2)
		return 0;
	qsort(c, n, sizeof(*c), claim_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(c[i - 1].value, c[i].value) != 0)
			continue;
		if (shared && strcmp(c[i - 1].what, shared) == 0 && strcmp(c[i].what, shared) == 0)
			continue;
		if (best == 0 || c[i].line < c[best].line)
			best = i;
	}
	return best;
}

static int item_line(const struct loader *L, const char *item)
{
	for (size_t i = 0; i < L->nitems; i++)
		if (L->items[i].item == item)
			return L->items[i].line;
	return 0;
}

/* Routing needs every GLN to have one owner. */
static int check_gln_owners(struct loader *L)
{
	const struct config *cfg = L->cfg;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < cfg->nendpoints; i++)
		total += cfg->endpoints[i].ngln;
	_cleanup_free_ struct claim *c = xcalloc(total, sizeof(*c));
	for (size_t i = 0; i < cfg->nendpoints; i++)
		for (size_t g = 0; g < cfg->endpoints[i].ngln; g++) {
			const char *gln = cfg->endpoints[i].gln[g];
			c[n++] = (struct claim){ gln, "gln", i, item_line(L, gln) };
		}
	size_t k = first_clash(c, n, NULL);
	if (k == 0)
		return 0;
	return fail(L, c[k].line, "endpoint '%s': gln %s is already owned by endpoint '%s' (line %d)",
		    cfg->endpoints[c[k].ep].name, c[k].value, cfg->endpoints[c[k - 1].ep].name,
		    c[k - 1].line);
}

static void claim_dir(const struct loader *L, struct claim *c, size_t *n, size_t i,
		      const char *what, const char *path)
{
	int line = endpoint_line(L, i, what);
	if (path)
		c[(*n)++] = (struct claim){ path, what, i, line ? line : L->cfg->endpoints[i].line };
}

/* One folder, one role: a shared inbox would be picked up twice, an outbox
 * that is an inbox would loop. Endpoints may share a quarantine. */
static int check_spool_dirs(struct loader *L)
{
	const struct config *cfg = L->cfg;
	_cleanup_free_ struct claim *c = xcalloc(3 * cfg->nendpoints + 1, sizeof(*c));
	size_t n = 0;

	for (size_t i = 0; i < cfg->nendpoints; i++) {
		claim_dir(L, c, &n, i, "inbox", cfg->endpoints[i].inbox);
		claim_dir(L, c, &n, i, "outbox", cfg->endpoints[i].outbox);
		claim_dir(L, c, &n, i, "quarantine", cfg->endpoints[i].quarantine);
	}
	size_t k = first_clash(c, n, "quarantine");
	if (k == 0)
		return 0;
	return fail(L, c[k].line, "endpoint '%s': %s %s is already the %s of endpoint '%s' (line %d)",
		    cfg->endpoints[c[k].ep].name, c[k].what, c[k].value, c[k - 1].what,
		    cfg->endpoints[c[k - 1].ep].name, c[k - 1].line);
}

static int check_default_endpoint(struct loader *L)
{
	const char *name = L->cfg->default_endpoint;
	if (!name || config_endpoint(L->cfg, name))
		return 0;
	return fail(L, global_line(L, "routing", "default_endpoint"),
		    "default_endpoint: no endpoint named '%s'", name);
}

static int check_mail(struct loader *L)
{
	if (!L->cfg->smtp_url || L->cfg->mail_from)
		return 0;
	return fail(L, global_line(L, "notify", "smtp_url"),
		    "smtp_url: mail_from is needed to send e-mail");
}

static int check_socket_path(struct loader *L)
{
	size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
	int line = global_line(L, "broker", "control_socket");

	if (strlen(L->cfg->control_socket) <= max)
		return 0;
	if (!line)
		line = global_line(L, "broker", "state_dir");
	return fail(L, line, "control_socket: %s is longer than %zu bytes, the limit of a socket path",
		    L->cfg->control_socket, max);
}

static int validate(struct loader *L)
{
	for (size_t i = 0; i < L->cfg->nendpoints; i++)
		if (check_endpoint(L, i) < 0)
			return L->rc;
	if (check_gln_owners(L) < 0 || check_spool_dirs(L) < 0 || check_default_endpoint(L) < 0 ||
	    check_order(L, "delivery", "retry_initial", "retry_max") < 0 ||
	    check_order(L, "store", "retention", "history") < 0 || check_mail(L) < 0 ||
	    check_socket_path(L) < 0)
		return L->rc;
	return 0;
}

static int finish(struct loader *L)
{
	if (close_list(L) < 0)
		return L->rc;
	fill_defaults(L, global_keys, ARRAY_SIZE(global_keys), L->seen, (char *)L->cfg);
	for (size_t i = 0; i < L->cfg->nendpoints; i++)
		endpoint_defaults(L, i);
	return validate(L);
}

/* ---- the public functions ----------------------------------------------- */

static int loader_open(struct loader *L)
{
	L->cwd = getcwd(NULL, 0);
	if (!L->cwd) {
		int e = errno;
		return fail_at(L, -e, 0, "cannot determine the working directory: %s", strerror(e));
	}
	L->f = fopen(L->path, "re");
	if (!L->f) {
		int e = errno;
		return fail_at(L, -e, 0, "cannot open: %s", strerror(e));
	}
	L->cfg = xcalloc(1, sizeof(*L->cfg));
	L->cfg->path = resolve_path(L->cwd, L->path);
	return 0;
}

static void loader_close(struct loader *L)
{
	if (L->f)
		fclose(L->f);
	config_free(L->cfg);
	free(L->cwd);
	free(L->eps);
	free(L->items);
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct loader L = { .path = path, .err = err, .errlen = errlen, .ep = -1 };
	int r;

	assert(path && out);
	r = loader_open(&L);
	if (r == 0)
		r = parse(&L);
	if (r == 0)
		r = finish(&L);
	if (r == 0)
		*out = TAKE_PTR(L.cfg);
	loader_close(&L);
	return r;
}

static void free_fields(const struct key *keys, size_t n, char *base)
{
	for (size_t i = 0; i < n; i++) {
		void *field = base + keys[i].off;
		if (keys[i].type == T_STR || keys[i].type == T_PATH) {
			free(*(char **)field);
		} else if (keys[i].type == T_LIST) {
			char **items = *(char ***)field;
			size_t count = *(size_t *)(void *)(base + keys[i].count_off);
			for (size_t j = 0; j < count; j++)
				free(items[j]);
			free(items);
		}
	}
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		free_fields(endpoint_keys, ARRAY_SIZE(endpoint_keys), (char *)&cfg->endpoints[i]);
		free(cfg->endpoints[i].name);
	}
	free(cfg->endpoints);
	free_fields(global_keys, ARRAY_SIZE(global_keys), (char *)cfg);
	free(cfg->path);
	free(cfg);
}

const struct endpoint_conf *config_endpoint(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nendpoints; i++)
		if (strcmp(cfg->endpoints[i].name, name) == 0)
			return &cfg->endpoints[i];
	return NULL;
}

static bool str_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool field_equal(const struct key *k, const char *a, const char *b)
{
	const void *fa = a + k->off, *fb = b + k->off;

	switch (k->type) {
	case T_STR:
	case T_PATH:
		return str_equal(*(char *const *)fa, *(char *const *)fb);
	case T_DURATION:
	case T_INT:
	case T_SIZE:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case T_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case T_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case T_ENUM:
		return *(const int *)fa == *(const int *)fb;
	case T_LIST: {
		size_t n = *(const size_t *)(const void *)(a + k->count_off);
		if (n != *(const size_t *)(const void *)(b + k->count_off))
			return false;
		for (size_t i = 0; i < n; i++)
			if (strcmp((*(char **const *)fa)[i], (*(char **const *)fb)[i]) != 0)
				return false;
		return true;
	}
	}
	return false;
}

/* Only global keys can need a restart: every endpoint key is reloadable. */
int config_nonreloadable_changes(const struct config *old, const struct config *new,
				 void (*warn)(const char *key, void *arg), void *arg)
{
	int changed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(global_keys); i++) {
		const struct key *k = &global_keys[i];
		if ((k->flags & RELOAD) || field_equal(k, (const char *)old, (const char *)new))
			continue;
		char name[64];
		snprintf(name, sizeof(name), "%s.%s", k->section, k->name);
		if (warn)
			warn(name, arg);
		changed++;
	}
	return changed;
}

const char *endpoint_kind_name(enum endpoint_kind kind)
{
	for (const struct choice *c = kinds; c->name; c++)
		if (c->value == (int)kind)
			return c->name;
	return "unknown";
}

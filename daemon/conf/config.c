/*
 * config.c - reads the INI file into a complete, validated struct config.
 *
 * Owns the key tables below: the keys of the broker's own sections, and the
 * keys every [endpoint NAME] section has whatever its transport. Each row
 * gives a key's name, type, default, bounds and whether a SIGHUP may change
 * it, and everything else - parsing, defaults, freeing, comparing on reload -
 * is driven by the rows, so a new key is one row (plus its field in
 * config.h). A transport brings tables of the same kind in its conf_schema:
 * the keys of its endpoints, filled into a struct of its own (tconf), and an
 * optional [section]; they go through the same code.
 *
 * ini.c splits the file into lines with numbers. An endpoint's lines are
 * held until its section ends, because which table its keys belong to
 * depends on its "transport =", which may come last; they are then applied
 * in file order, so the first error of the file is still the one reported.
 *
 * Invariants: config_load() yields either a config in which every key holds
 * a valid value (defaults filled in, relative paths made absolute against the
 * working directory at load time, cross-key rules checked) or no config and
 * one "FILE:LINE: reason". Nothing here logs, and no state outlives a call.
 * The daemon calls it at start-up, on SIGHUP and for --check-config; router,
 * transports, delivery, outage and notify read the result.
 */
#include "conf/config.h"
#include "conf/ini.h"
#include "base/redact.h"
#include "metrics/metrics_http.h"
#include "time/timerules.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
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

#define SECS CONF_SECOND
#define MINS CONF_MINUTE
#define HOURS CONF_HOUR
#define DAYS CONF_DAY
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

static conf_check_fn check_pg_url;
static conf_check_fn check_ident, check_gln, check_sender_id, check_email, check_smtp_url,
	check_http_url, check_window, check_support_hours, check_closed_days, check_timezone,
	check_group, check_listen, check_accept;

/* Where `make install` puts the broker's data (the Makefile says, from PREFIX). */
#ifndef EDIBROKER_DATADIR
#define EDIBROKER_DATADIR "/usr/local/share/edibroker"
#endif

static const struct conf_choice log_levels[] = {
	{ "err", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
	{ "info", LOG_INFO }, { "debug", LOG_DEBUG },	  { NULL, 0 },
};
static const struct conf_choice kinds[] = {
	{ "hospital", ENDPOINT_HOSPITAL },
	{ "municipality", ENDPOINT_MUNICIPALITY },
	{ "other", ENDPOINT_OTHER },
	{ NULL, 0 },
};
static const struct conf_choice stores[] = { { "sqlite", 0 }, { "postgresql", 0 }, { NULL, 0 } };
static const struct conf_choice languages[] = { { "da", 0 }, { "en", 0 }, { NULL, 0 } };
static const struct conf_choice starttls[] = {
	{ "no", 0 }, { "try", 0 }, { "yes", 0 }, { NULL, 0 },
};
static const struct conf_choice xsd_modes[] = {
	{ "off", XSD_OFF }, { "warn", XSD_WARN }, { "enforce", XSD_ENFORCE }, { NULL, 0 },
};

#define G(sec, key, t, field) .section = sec, CONF_KEY(struct config, key, t, field)
#define GLIST(sec, key, field) .section = sec, CONF_LIST_KEY(struct config, key, field)
#define E(key, t, field) CONF_KEY(struct endpoint_conf, key, t, field)
#define ELIST(key, field) CONF_LIST_KEY(struct endpoint_conf, key, field)

/*
 * The global keys, in the order defaults are filled in: state_dir comes
 * first because the relative defaults of other paths (control.sock, status)
 * are relative to it. Keys without CONF_RELOAD hold resources opened once at
 * start-up (the store, the control socket) or the identity the store's rows
 * carry (id), so a SIGHUP that changes them is refused by the daemon.
 */
static const struct conf_key global_keys[] = {
	{ G("broker", "state_dir", CONF_PATH, state_dir), .def = "/var/lib/edibroker" },
	{ G("broker", "control_socket", CONF_PATH, control_socket), .def = "control.sock" },
	{ G("broker", "id", CONF_STR, broker_id), .def = "EDIBROKER", .check = check_ident },
	{ G("broker", "gln", CONF_STR, broker_gln), .check = check_gln, .flags = CONF_OPTIONAL },
	/* the old place of [store] backend, still read (resolve_store) */
	{ G("broker", "store", CONF_STR, store_backend_old), .choices = stores,
	  .flags = CONF_OPTIONAL },
	{ G("broker", "max_message_size", CONF_SIZE, max_message_size), .def = "16M", .min = KIB,
	  .max = 100 * MIB, .flags = CONF_RELOAD },
	{ G("broker", "decode_timeout", CONF_DURATION, decode_timeout_ms), .def = "2s",
	  .min = 100, .max = 10 * 60 * 1000, .flags = CONF_RELOAD },
	{ G("broker", "stop_timeout", CONF_DURATION, stop_timeout_ms), .def = "20s", .min = 100,
	  .max = 10 * 60 * 1000, .flags = CONF_RELOAD },
	{ G("broker", "log_level", CONF_ENUM, log_level), .def = "info", .choices = log_levels,
	  .flags = CONF_RELOAD },
	{ G("broker", "xsd_dir", CONF_PATH, xsd_dir), .def = EDIBROKER_DATADIR "/xsd/oioxml",
	  .flags = CONF_RELOAD },

	{ G("delivery", "retry_initial", CONF_DURATION, retry_initial_ms), .def = "5s", .min = 100,
	  .max = 1 * HOURS, .flags = CONF_RELOAD },
	{ G("delivery", "retry_max", CONF_DURATION, retry_max_ms), .def = "10m", .min = 100,
	  .max = 1 * DAYS, .flags = CONF_RELOAD },
	{ G("delivery", "drain_rate", CONF_DOUBLE, drain_rate), .def = "0", .min = 0, .max = 1000000,
	  .flags = CONF_RELOAD },
	{ G("delivery", "max_queued_bytes", CONF_SIZE, max_queued_bytes), .def = "8G",
	  .min = MIB, .max = 64 * TIB, .flags = CONF_RELOAD },
	{ G("delivery", "max_queued_total", CONF_SIZE, max_queued_total), .def = "32G",
	  .min = MIB, .max = 64 * TIB, .flags = CONF_RELOAD },
	{ G("delivery", "batch_max", CONF_INT, batch_max), .def = "256", .min = 1, .max = 10000,
	  .flags = CONF_RELOAD },
	{ G("delivery", "ack_timeout", CONF_DURATION, ack_timeout_ms), .def = "30m", .min = 100,
	  .max = 7 * DAYS, .flags = CONF_RELOAD },

	{ G("routing", "default_endpoint", CONF_STR, default_endpoint),
	  .flags = CONF_RELOAD | CONF_OPTIONAL },

	{ G("store", "retention", CONF_DURATION, retention_ms), .def = "7d", .min = 100,
	  .max = 3650 * DAYS, .flags = CONF_RELOAD },
	{ G("store", "history", CONF_DURATION, history_ms), .def = "90d", .min = 100,
	  .max = 3650 * DAYS, .flags = CONF_RELOAD },
	{ G("store", "max_size", CONF_SIZE, store_max_size), .def = "0", .min = MIB, .max = 64 * TIB,
	  .flags = CONF_RELOAD | CONF_ZERO_OFF },
	{ G("store", "dead_retention", CONF_DURATION, dead_retention_ms), .def = "30d", .min = 100,
	  .max = 3650 * DAYS, .flags = CONF_RELOAD | CONF_ZERO_OFF },
	{ G("store", "backend", CONF_STR, store_backend), .choices = stores,
	  .flags = CONF_OPTIONAL },
	{ G("store", "url", CONF_STR, store_url), .check = check_pg_url,
	  .flags = CONF_OPTIONAL | CONF_CREDENTIAL_URL },
	{ G("store", "password_file", CONF_PATH, store_password_file),
	  .secret_off = offsetof(struct config, store_password),
	  .flags = CONF_OPTIONAL | CONF_SECRET_FILE },
	{ G("store", "lease", CONF_DURATION, store_lease_ms), .def = "15s", .min = 3000,
	  .max = 10 * 60 * 1000 },
	{ G("store", "node", CONF_STR, store_node), .check = check_ident, .flags = CONF_OPTIONAL },

	{ G("quarantine", "retention", CONF_DURATION, quarantine_retention_ms), .def = "30d",
	  .min = 100, .max = 3650 * DAYS, .flags = CONF_RELOAD | CONF_ZERO_OFF },

	/* an IP literal: binding it needs no name look-up (metrics_http.h) */
	{ G("metrics", "listen", CONF_STR, metrics_listen), .check = check_listen,
	  .flags = CONF_OPTIONAL },

	{ G("control", "operator_group", CONF_STR, operator_group), .def = "edibroker-admin",
	  .check = check_group, .flags = CONF_RELOAD },
	{ G("control", "idle_timeout", CONF_DURATION, control_idle_timeout_ms), .def = "60s",
	  .min = 100, .max = 1 * DAYS, .flags = CONF_RELOAD },
	{ G("control", "max_connections", CONF_INT, control_max_connections), .def = "32", .min = 1,
	  .max = 1024, .flags = CONF_RELOAD },

	{ G("outage", "threshold", CONF_DURATION, outage_threshold_ms), .def = "2h", .min = 100,
	  .max = 30 * DAYS, .flags = CONF_RELOAD },
	{ G("outage", "probe_interval", CONF_DURATION, probe_interval_ms), .def = "1m", .min = 100,
	  .max = 1 * DAYS, .flags = CONF_RELOAD },
	{ G("outage", "down_after", CONF_INT, down_after), .def = "3", .min = 1, .max = 100,
	  .flags = CONF_RELOAD },
	{ G("outage", "update_interval", CONF_DURATION, update_interval_ms), .def = "1h", .min = 100,
	  .max = 30 * DAYS, .flags = CONF_RELOAD },
	{ G("outage", "send_window", CONF_STR, send_window), .def = "08:00-22:00",
	  .check = check_window, .flags = CONF_RELOAD },
	{ G("outage", "support_hours", CONF_STR, support_hours),
	  .def = "mon-thu 08:00-15:45, fri 08:00-14:00", .check = check_support_hours,
	  .flags = CONF_RELOAD },
	{ G("outage", "timezone", CONF_STR, timezone), .def = "Europe/Copenhagen",
	  .check = check_timezone, .flags = CONF_RELOAD },
	{ G("outage", "language", CONF_STR, language), .def = "da", .choices = languages,
	  .flags = CONF_RELOAD },
	{ G("outage", "template_dir", CONF_PATH, template_dir), .flags = CONF_RELOAD | CONF_OPTIONAL },

	{ G("notify", "smtp_url", CONF_STR, smtp_url), .check = check_smtp_url,
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_CREDENTIAL_URL },
	{ G("notify", "smtp_user", CONF_STR, smtp_user), .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ G("notify", "smtp_password", CONF_STR, smtp_password),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_SECRET },
	{ G("notify", "smtp_password_file", CONF_PATH, smtp_password_file),
	  .secret_off = offsetof(struct config, smtp_password),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_SECRET_FILE },
	/* No default: unset means "yes" when credentials are set, else "try"
	 * (notify.c), so only a written "no" sends a password in clear. */
	{ G("notify", "smtp_starttls", CONF_STR, smtp_starttls), .choices = starttls,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ G("notify", "smtp_ca_file", CONF_PATH, smtp_ca_file),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ G("notify", "mail_from", CONF_STR, mail_from), .check = check_email,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ GLIST("notify", "support_recipients", support_recipients), .check = check_email,
	  .flags = CONF_RELOAD },
	{ GLIST("notify", "oncall_recipients", oncall_recipients), .check = check_email,
	  .flags = CONF_RELOAD },
	{ GLIST("notify", "hospital_recipients", hospital_recipients), .check = check_email,
	  .flags = CONF_RELOAD },
	{ GLIST("notify", "municipality_recipients", municipality_recipients),
	  .check = check_email, .flags = CONF_RELOAD },
	{ G("notify", "webhook_url", CONF_STR, webhook_url), .check = check_http_url,
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_CREDENTIAL_URL },
	{ G("notify", "webhook_token_file", CONF_PATH, webhook_token_file),
	  .secret_off = offsetof(struct config, webhook_token),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_SECRET_FILE },
	{ G("notify", "webhook_ca_file", CONF_PATH, webhook_ca_file),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FILE },
	{ G("notify", "fallback_command", CONF_STR, fallback_command),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_COMMAND },
	{ G("notify", "retry_initial", CONF_DURATION, notify_retry_ms), .def = "30s", .min = 100,
	  .max = 1 * HOURS, .flags = CONF_RELOAD },
	{ G("notify", "fallback_after", CONF_INT, fallback_after), .def = "3", .min = 1, .max = 100,
	  .flags = CONF_RELOAD },
	{ G("notify", "timeout", CONF_DURATION, notify_timeout_ms), .def = "30s", .min = 100,
	  .max = 10 * 60 * 1000, .flags = CONF_RELOAD },
	{ G("notify", "closed_days", CONF_STR, closed_days), .check = check_closed_days,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ G("notify", "status_dir", CONF_PATH, status_dir), .def = "status", .flags = CONF_RELOAD },
	{ G("notify", "status_url", CONF_STR, status_url), .check = check_http_url,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ G("notify", "support_phone", CONF_STR, support_phone),
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ G("notify", "email_after_fallback", CONF_BOOL, email_after_fallback), .def = "no",
	  .flags = CONF_RELOAD },
};

/*
 * The keys every [endpoint NAME] section has; its transport's schema adds
 * its own. A SIGHUP may add, remove and change endpoints, so every key is
 * reloadable. transport takes the names of the schemas given to
 * config_load() (set_transport()); the first is its default.
 */
static const struct conf_key endpoint_keys[] = {
	{ E("kind", CONF_ENUM, kind), .choices = kinds, .flags = CONF_RELOAD | CONF_REQUIRED },
	{ E("transport", CONF_STR, transport), .flags = CONF_RELOAD },
	{ ELIST("gln", gln), .check = check_gln, .flags = CONF_RELOAD | CONF_REQUIRED },
	{ ELIST("may_send_for", may_send_for), .check = check_sender_id, .flags = CONF_RELOAD },
	{ E("contact", CONF_STR, contact), .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ E("delivery_timeout", CONF_DURATION, delivery_timeout_ms), .def = "60s", .min = 100,
	  .max = 1 * HOURS, .flags = CONF_RELOAD },
	{ ELIST("recipients", recipients), .check = check_email, .flags = CONF_RELOAD },
	{ E("organisation", CONF_STR, organisation), .def = CONF_ENDPOINT_NAME,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ E("fallback_contact", CONF_STR, fallback_contact), .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ E("fallback_note", CONF_STR, fallback_note), .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ ELIST("accepts", accepts), .check = check_accept, .flags = CONF_RELOAD },
	{ E("xsd", CONF_ENUM, xsd), .def = "off", .choices = xsd_modes, .flags = CONF_RELOAD },
};

_Static_assert(sizeof(enum endpoint_kind) == sizeof(int), "CONF_ENUM stores an int");
_Static_assert(sizeof(enum xsd_mode) == sizeof(int), "CONF_ENUM stores an int");

/* ---- the loader's state ------------------------------------------------- */

struct item_line {
	const char *item; /* a list item, owned by the config */
	int line;
};

/* A line of the current endpoint, held until its section ends. */
struct held {
	char *key;  /* NULL: a continuation of the previous key */
	char *value;
	int line;
};

#define SCHEMAS_MAX 8                   /* transports a build can have */
#define MAX_TARGETS (2 + SCHEMAS_MAX)   /* key tables one endpoint draws on */

struct ep_state {
	int seen[ARRAY_SIZE(endpoint_keys)]; /* the line that set each key; 0 = not set */
	int *tseen;			     /* the same for its schema's keys */
	int **cseen;			     /* cseen[i]: for schemas[i]'s common keys */
};

/* The keys of one table and the struct they fill. */
struct target {
	const struct conf_key *keys;
	size_t n;
	int *seen;
	char *base;
};

struct loader {
	struct config *cfg;	/* being built; NULL once handed out */
	const char *path;	/* as the caller wrote it, for messages */
	char *cwd;		/* relative paths in the file resolve against it */
	FILE *f;
	size_t nschemas;	/* of cfg->schemas */
	const char *section;	/* the current non-endpoint section (a table string), or NULL */
	long ep;		/* the current endpoint's index, or -1 */
	int seen[ARRAY_SIZE(global_keys)];
	int **sseen;		/* sseen[i]: lines of schemas[i]'s section keys */
	struct ep_state *eps;	/* parallel to cfg->endpoints */
	size_t neps;
	struct held *held;	/* the current endpoint's lines */
	size_t nheld;
	const struct conf_key *last;  /* the key of the previous pair; NULL when skipped */
	char *last_base;	      /* and the struct it fills */
	int comma_line;		/* a list line ended with ',': a continuation must follow */
	struct item_line *items;
	size_t nitems;
	char *err;
	size_t errlen;
	int rc;			/* the first error; 0 while there is none */
	unsigned flags;		/* CONFIG_* */
	unsigned mode;		/* the file's permission bits */
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

/* ---- value checks (the conf_check_fn of a key) ------------------------------- */

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

/* A group name as NSS may know it (LDAP names may hold spaces): printable,
 * no ':' (the group file's separator), 1-255 bytes. */
static int check_group(const char *v, char *why, size_t len)
{
	size_t n = strlen(v);
	bool ok = n >= 1 && n <= 255 && !isspace((unsigned char)v[0]) &&
		  !isspace((unsigned char)v[n - 1]);
	for (const char *p = v; ok && *p; p++)
		ok = (unsigned char)*p >= 0x20 && *p != 0x7f && *p != ':';
	if (ok)
		return 0;
	snprintf(why, len, "'%s' is not a group name", v);
	return -EINVAL;
}

/* A location number (GLN) is 13 digits. */
static int check_gln(const char *v, char *why, size_t len)
{
	size_t n = strspn(v, "0123456789");
	if (n == 13 && v[n] == '\0')
		return 0;
	snprintf(why, len, "'%s' is not a location number (13 digits)", v);
	return -EINVAL;
}

/* What an endpoint may send as besides its own GLNs: a GLN, or the network
 * id a relay's own receipts carry (e.g. a VANS's DKKMDKMDNET). */
static int check_sender_id(const char *v, char *why, size_t len)
{
	if (ident_ok(v))
		return 0;
	snprintf(why, len, "'%s' is neither a location number nor a network id (1-35 printable "
		 "characters, no spaces)", v);
	return -EINVAL;
}

/* accepts: "TYPE" or "TYPE:VERSION", as the codecs report a letter's type
 * (letters, digits, '-') and version (letters, digits, '.'). */
static int check_accept(const char *v, char *why, size_t len)
{
	size_t t = 0, n = 0;
	while (isalnum((unsigned char)v[t]) || v[t] == '-')
		t++;
	const char *ver = v[t] == ':' ? v + t + 1 : NULL;
	while (ver && (isalnum((unsigned char)ver[n]) || ver[n] == '.'))
		n++;
	if (t >= 1 && t < 41 && (v[t] == '\0' || (ver && n >= 1 && n < 17 && ver[n] == '\0')))
		return 0;
	snprintf(why, len, "'%s' is not a message type or TYPE:VERSION (e.g. XDIS20, "
		 "XDIS20:XD2030C, hospital-notification-message:3.0)", v);
	return -EINVAL;
}

/* The GS1 check digit of a 13-digit GLN: weights 1, 3, 1, ... from the left. */
static bool gln_check_digit_ok(const char *gln)
{
	int sum = 0;
	for (int i = 0; i < 12; i++)
		sum += (gln[i] - '0') * (i % 2 ? 3 : 1);
	return (10 - sum % 10) % 10 == gln[12] - '0';
}

static int item_line(const struct loader *L, const char *item);
static void add_warning(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A wrong GS1 check digit is no reason to refuse (MedCom's own test data
 * has some), but one in the config is likely a typo: say so. */
static void check_gln_digits(struct loader *L)
{
	const struct config *cfg = L->cfg;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		char **lists[] = { ep->gln, ep->may_send_for };
		size_t counts[] = { ep->ngln, ep->nmay_send_for };
		for (size_t l = 0; l < 2; l++)
			for (size_t g = 0; g < counts[l]; g++)
				if (strspn(lists[l][g], "0123456789") == 13 &&
				    lists[l][g][13] == '\0' && !gln_check_digit_ok(lists[l][g]))
					add_warning(L, item_line(L, lists[l][g]),
						"endpoint '%s': location number %s has a wrong GS1 "
						"check digit", ep->name, lists[l][g]);
	}
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

/* The URL as libcurl will parse it when sending, so what base/redact.c
 * shows of it is what libcurl connects to. The value may hold a password:
 * why never quotes it. */
static int check_url(const char *v, const char *a, const char *b, char *why, size_t len)
{
	if (!url_ok(v, a) && !url_ok(v, b)) {
		snprintf(why, len, "not an %s or %s URL (value not shown: it may hold a password)",
			 a, b);
		return -EINVAL;
	}
	CURLU *u = curl_url();
	if (!u)
		abort(); /* out of memory, as xmalloc */
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, v, 0);
	curl_url_cleanup(u);
	if (rc == CURLUE_OK)
		return 0;
	snprintf(why, len, "not a valid URL: %s (value not shown: it may hold a password)",
		 curl_url_strerror(rc));
	return -EINVAL;
}

/* A libpq connection URI or key=value string. libpq parses it when
 * connecting; here: one line, and a URI of PostgreSQL's schemes. The value
 * may hold a password: why never quotes it. */
static int check_pg_url(const char *v, char *why, size_t len)
{
	bool uri = strstr(v, "://") != NULL;
	bool ok = strlen(v) <= 2048 && strcspn(v, "\r\n") == strlen(v) &&
		  (!uri || strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0);
	if (ok)
		return 0;
	snprintf(why, len, "not a postgresql:// URI or a key=value connection string (value not "
		 "shown: it may hold a password)");
	return -EINVAL;
}

static int check_smtp_url(const char *v, char *why, size_t len)
{
	return check_url(v, "smtp://", "smtps://", why, len);
}

static int check_http_url(const char *v, char *why, size_t len)
{
	return check_url(v, "http://", "https://", why, len);
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

static int check_listen(const char *v, char *why, size_t len)
{
	char host[METRICS_HOST_MAX];
	uint16_t port;
	return metrics_parse_listen(v, host, &port, why, len);
}

static int check_timezone(const char *v, char *why, size_t len)
{
	return timerules_check("timezone", v, why, len);
}

/* ---- setting one value -------------------------------------------------- */

static const struct conf_choice *find_choice(const struct conf_choice *c, const char *name)
{
	for (; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Appends word to a list read as "a, b or c". */
static void list_word(char *list, size_t len, const char *word, bool first, bool last)
{
	if (!first)
		cat(list, len, last ? " or " : ", ");
	cat(list, len, word);
}

/* "KEY: must be a, b or c" */
static int fail_choices(struct loader *L, const struct conf_key *k, int line)
{
	char list[160] = "";
	for (const struct conf_choice *c = k->choices; c->name; c++)
		list_word(list, sizeof(list), c->name, c == k->choices, !c[1].name);
	return fail(L, line, "%s: must be %s", k->name, list);
}

static void format_value(const struct conf_key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == CONF_DURATION)
		format_duration(v, buf, len);
	else if (k->type == CONF_SIZE)
		format_size(v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static int check_range(struct loader *L, const struct conf_key *k, int64_t v, int line)
{
	const char *noun = k->type == CONF_DURATION ? "duration " : k->type == CONF_SIZE ? "size " : "";
	bool low = v < k->min;
	char limit[32];

	if ((v == 0 && (k->flags & CONF_ZERO_OFF)) || (!low && v <= k->max))
		return 0;
	format_value(k, low ? k->min : k->max, limit, sizeof(limit));
	return fail(L, line, "%s: %smust be at %s %s%s", k->name, noun, low ? "least" : "most", limit,
		    (k->flags & CONF_ZERO_OFF) ? " (or 0 for off)" : "");
}

static int set_unset(struct loader *L, const struct conf_key *k, char **field, int line)
{
	if (!(k->flags & CONF_OPTIONAL))
		return fail(L, line, "%s: must not be empty", k->name);
	free(*field);
	*field = NULL;
	return 0;
}

static int set_str(struct loader *L, const struct conf_key *k, char **field, const char *v,
		   int line)
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
static int set_path(struct loader *L, const struct conf_key *k, char **field, const char *v,
		    int line)
{
	if (*v == '\0')
		return set_unset(L, k, field, line);
	const char *dir = line > 0 ? L->cwd : L->cfg->state_dir;
	assert(dir || v[0] == '/');
	free(*field);
	*field = resolve_path(dir, v);
	return 0;
}

static int parse_int(const char *v, int64_t *n)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || isspace((unsigned char)*v))
		return -1;
	*n = x;
	return 0;
}

/* A number with its own spelling (a duration, a size, a plain integer),
 * checked against the key's range; `example` shows the spelling in the error. */
static int set_int64(struct loader *L, const struct conf_key *k, int64_t *field, const char *v,
		     int line, int (*parse)(const char *, int64_t *), const char *what,
		     const char *example)
{
	int64_t n;
	if (parse(v, &n) < 0)
		return fail(L, line, "%s: invalid %s '%s'%s", k->name, what, v, example);
	if (check_range(L, k, n, line) < 0)
		return L->rc;
	*field = n;
	return 0;
}

static int set_double(struct loader *L, const struct conf_key *k, double *field, const char *v,
		      int line)
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

static int set_bool(struct loader *L, const struct conf_key *k, bool *field, const char *v,
		    int line)
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

static int set_enum(struct loader *L, const struct conf_key *k, int *field, const char *v, int line)
{
	const struct conf_choice *c = find_choice(k->choices, v);
	if (!c)
		return fail_choices(L, k, line);
	*field = c->value;
	return 0;
}

static void list_push(struct loader *L, const struct conf_key *k, char *base, const char *item,
		      int line)
{
	char ***items = (char ***)(void *)(base + k->off);
	size_t *n = (size_t *)(void *)(base + k->count_off);

	*items = xrealloc(*items, (*n + 1) * sizeof(**items));
	char *copy = (*items)[(*n)++] = xstrdup(item);
	L->items = xrealloc(L->items, (L->nitems + 1) * sizeof(*L->items));
	L->items[L->nitems++] = (struct item_line){ copy, line };
}

static int list_item(struct loader *L, const struct conf_key *k, char *base, const char *item,
		     int line)
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
static int list_add(struct loader *L, const struct conf_key *k, char *base, const char *value,
		    int line)
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

static int set_value(struct loader *L, const struct conf_key *k, char *base, const char *v,
		     int line)
{
	void *field = base + k->off;

	switch (k->type) {
	case CONF_STR:
		return set_str(L, k, field, v, line);
	case CONF_PATH:
		return set_path(L, k, field, v, line);
	case CONF_DURATION:
		return set_int64(L, k, field, v, line, config_parse_duration, "duration",
				 " (use e.g. 500ms, 90s, 15m, 2h)");
	case CONF_INT:
		return set_int64(L, k, field, v, line, parse_int, "number", "");
	case CONF_SIZE:
		return set_int64(L, k, field, v, line, parse_size, "size",
				 " (use e.g. 65536, 512K, 16M, 1G)");
	case CONF_DOUBLE:
		return set_double(L, k, field, v, line);
	case CONF_BOOL:
		return set_bool(L, k, field, v, line);
	case CONF_ENUM:
		return set_enum(L, k, field, v, line);
	case CONF_LIST:
		return list_add(L, k, base, v, line);
	}
	assert(!"unknown key type");
	return -EINVAL;
}

/* ---- sections and pairs ------------------------------------------------- */

/* section is NULL for a table of one section. */
static const struct conf_key *find_key(const struct conf_key *keys, size_t n, const char *section,
				       const char *name)
{
	for (size_t i = 0; i < n; i++)
		if ((!section || strcmp(keys[i].section, section) == 0) && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static const struct conf_schema *find_schema(const struct loader *L, const char *name)
{
	for (size_t i = 0; i < L->nschemas; i++)
		if (strcmp(L->cfg->schemas[i]->name, name) == 0)
			return L->cfg->schemas[i];
	return NULL;
}

/* The common keys of endpoint i, and those of its transport when known. */
/* The tables endpoint i's keys come from: the common ones, its transport's,
 * and every transport's keys for all endpoints (credentials). */
static size_t endpoint_targets(const struct loader *L, size_t i, struct target t[MAX_TARGETS])
{
	struct endpoint_conf *ep = &L->cfg->endpoints[i];
	size_t n = 0;

	t[n++] = (struct target){ endpoint_keys, ARRAY_SIZE(endpoint_keys), L->eps[i].seen,
				  (char *)ep };
	if (ep->schema)
		t[n++] = (struct target){ ep->schema->endpoint_keys, ep->schema->nendpoint_keys,
					  L->eps[i].tseen, ep->tconf };
	for (size_t j = 0; j < L->nschemas && n < MAX_TARGETS; j++) {
		const struct conf_schema *s = L->cfg->schemas[j];
		if (s->ncommon_keys && ep->common && ep->common[j])
			t[n++] = (struct target){ s->common_keys, s->ncommon_keys,
						  L->eps[i].cseen[j], ep->common[j] };
	}
	return n;
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

/* transport = NAME takes the name of a schema given to config_load(). */
static int set_transport(struct loader *L, const char *v, int line)
{
	struct endpoint_conf *ep = &L->cfg->endpoints[L->ep];
	char list[160] = "";

	if (*v == '\0')
		return fail(L, line, "transport: must not be empty");
	if (find_schema(L, v)) {
		free(ep->transport);
		ep->transport = xstrdup(v);
		return 0;
	}
	for (size_t i = 0; i < L->nschemas; i++)
		list_word(list, sizeof(list), L->cfg->schemas[i]->name, i == 0,
			  i + 1 == L->nschemas);
	return fail(L, line, "transport: must be %s", list);
}

/* The schema whose endpoints have a key called name, or NULL. */
static const struct conf_schema *key_owner(const struct loader *L, const char *name)
{
	for (size_t i = 0; i < L->nschemas; i++) {
		const struct conf_schema *s = L->cfg->schemas[i];
		if (find_key(s->endpoint_keys, s->nendpoint_keys, NULL, name))
			return s;
	}
	return NULL;
}

/* A key of the current endpoint: a common one, or one of its transport. */
static const struct conf_key *endpoint_lookup(struct loader *L, const char *name, int line,
					      struct target *t)
{
	const struct endpoint_conf *ep = &L->cfg->endpoints[L->ep];
	struct target all[MAX_TARGETS];
	size_t n = endpoint_targets(L, (size_t)L->ep, all);

	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = find_key(all[i].keys, all[i].n, NULL, name);
		if (k) {
			*t = all[i];
			return k;
		}
	}
	const struct conf_schema *owner = key_owner(L, name);
	if (!owner)
		fail(L, line, "unknown key '%s' in [endpoint %s]", name, ep->name);
	else if (ep->schema)
		fail(L, line, "%s: a key of transport %s, but endpoint '%s' uses transport %s",
		     name, owner->name, ep->name, ep->schema->name);
	/* else its "transport =" names no transport: that line is the error */
	return NULL;
}

/* The row of key name in the current section and where it goes, or NULL
 * having reported why. */
static const struct conf_key *lookup(struct loader *L, const char *name, int line,
				     struct target *t)
{
	const struct conf_key *k;

	if (L->ep >= 0)
		return endpoint_lookup(L, name, line, t);
	if (!L->section) {
		fail(L, line, "key '%s' before the first [section]", name);
		return NULL;
	}
	/* the broker's own keys of the section, then every schema's there */
	*t = (struct target){ global_keys, ARRAY_SIZE(global_keys), L->seen, (char *)L->cfg };
	k = find_key(t->keys, t->n, L->section, name);
	for (size_t i = 0; !k && i < L->nschemas; i++) {
		const struct conf_schema *s = L->cfg->schemas[i];
		if (!s->section || strcmp(s->section, L->section) != 0)
			continue;
		*t = (struct target){ s->section_keys, s->nsection_keys, L->sseen[i],
				      L->cfg->sections[i] };
		k = find_key(t->keys, t->n, NULL, name);
	}
	if (!k)
		fail(L, line, "unknown key '%s' in [%s]", name, L->section);
	return k;
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
		return fail(L, line, "invalid endpoint name '%s' (1-%d letters, digits, '.', '_' or '-')",
			    name, ENDPOINT_NAME_MAX);
	const struct endpoint_conf *dup = config_endpoint(cfg, name);
	if (dup)
		return fail(L, line, "duplicate endpoint '%s' (first at line %d)", name, dup->line);
	cfg->endpoints = xrealloc(cfg->endpoints, (n + 1) * sizeof(*cfg->endpoints));
	L->eps = xrealloc(L->eps, (n + 1) * sizeof(*L->eps));
	cfg->endpoints[n] = (struct endpoint_conf){ .name = xstrdup(name), .line = line };
	L->eps[n] = (struct ep_state){ .tseen = NULL };
	struct endpoint_conf *ep = &cfg->endpoints[n];
	ep->common = xcalloc(L->nschemas + 1, sizeof(void *));
	L->eps[n].cseen = xcalloc(L->nschemas + 1, sizeof(int *));
	for (size_t i = 0; i < L->nschemas; i++) {
		const struct conf_schema *s = cfg->schemas[i];
		if (!s->ncommon_keys)
			continue;
		ep->common[i] = xcalloc(1, s->common_size);
		L->eps[n].cseen[i] = xcalloc(s->ncommon_keys + 1, sizeof(int));
	}
	cfg->nendpoints = L->neps = n + 1;
	L->ep = (long)n;
	return 0;
}

static int section_begin(struct loader *L, const char *name, int line)
{
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
	for (size_t i = 0; i < L->nschemas; i++) {
		const char *sec = L->cfg->schemas[i]->section;
		if (sec && strcmp(sec, name) == 0) {
			L->section = sec;
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
	const struct conf_key *k = lookup(L, name, line, &t);
	L->last = k;
	if (!k)
		return L->rc; /* 0: skipped, see endpoint_lookup() */
	int *seen = &t.seen[k - t.keys];
	if (*seen)
		return fail(L, line, "duplicate key '%s' in [%s] (first at line %d)", name,
			    section_label(L, where, sizeof(where)), *seen);
	*seen = line;
	L->last_base = t.base;
	if (t.keys == endpoint_keys && strcmp(k->name, "transport") == 0)
		return set_transport(L, value, line);
	return set_value(L, k, t.base, value, line);
}

/* An indented line after a key: the text continues that key's value. */
static int continue_pair(struct loader *L, const char *text, int line)
{
	if (!L->last)
		return 0; /* it continues a key that was skipped */
	if (L->last->type != CONF_LIST)
		return fail(L, line, "%s: only lists may continue on an indented line",
			    L->last->name);
	L->comma_line = 0;
	return list_add(L, L->last, L->last_base, text, line);
}

/* ---- an endpoint's section ---------------------------------------------- */

static void hold(struct loader *L, const char *key, const char *value, int line)
{
	L->held = xrealloc(L->held, (L->nheld + 1) * sizeof(*L->held));
	L->held[L->nheld++] = (struct held){ xstrdup_or_null(key), xstrdup(value), line };
}

static void drop_held(struct loader *L)
{
	for (size_t i = 0; i < L->nheld; i++) {
		free(L->held[i].key);
		free(L->held[i].value);
	}
	L->nheld = 0;
}

/* Settles the current endpoint's transport from its first "transport ="
 * (the first schema when there is none), then applies its lines in order.
 * Under a transport that does not exist its transport's keys are skipped:
 * the "transport =" line is then the error. */
static int endpoint_end(struct loader *L)
{
	if (L->ep < 0)
		return 0;
	struct endpoint_conf *ep = &L->cfg->endpoints[L->ep];
	const struct held *transport = NULL;
	const struct conf_schema *s = L->cfg->schemas[0];

	for (size_t i = 0; i < L->nheld && !transport; i++)
		if (L->held[i].key && strcmp(L->held[i].key, "transport") == 0)
			transport = &L->held[i];
	if (transport)
		s = find_schema(L, transport->value);
	if (s) {
		ep->schema = s;
		ep->tconf = s->endpoint_size ? xcalloc(1, s->endpoint_size) : NULL;
		L->eps[L->ep].tseen = xcalloc(s->nendpoint_keys + 1, sizeof(int));
		if (!transport)
			ep->transport = xstrdup(s->name);
	}
	for (size_t i = 0; i < L->nheld && !L->rc; i++) {
		const struct held *h = &L->held[i];
		if (h->key)
			set_pair(L, h->key, h->value, h->line);
		else
			continue_pair(L, h->value, h->line);
	}
	drop_held(L);
	L->ep = -1;
	return L->rc;
}

/* ---- the reader's callbacks ---------------------------------------------- */

static int on_section(void *user, const char *text, int line)
{
	struct loader *L = user;

	if (endpoint_end(L) < 0 || close_list(L) < 0)
		return L->rc;
	return section_begin(L, text, line);
}

/* An endpoint's lines wait for its transport (endpoint_end()). */
static int on_pair(void *user, const char *key, const char *value, int line)
{
	struct loader *L = user;

	if (L->ep < 0)
		return set_pair(L, key, value, line);
	hold(L, key, value, line);
	return 0;
}

static int on_more(void *user, const char *key, const char *text, int line)
{
	struct loader *L = user;

	(void)key; /* L->last is that key's row */
	if (L->ep < 0)
		return continue_pair(L, text, line);
	hold(L, NULL, text, line);
	return 0;
}

static int parse(struct loader *L)
{
	static const struct ini_handler handler = { on_section, on_pair, on_more };

	int r = ini_parse(L->f, L->path, &handler, L, L->err, L->errlen);
	if (L->rc)
		return L->rc;
	/* At the end, or at a line the reader refused: the endpoint open there
	 * ends first, so an error on one of its earlier lines still comes first. */
	if (endpoint_end(L) < 0)
		return L->rc;
	L->rc = r;
	return r;
}

/* ---- defaults ----------------------------------------------------------- */

static bool is_unset_string(const struct conf_key *k, const char *base)
{
	return (k->type == CONF_STR || k->type == CONF_PATH) &&
	       *(char *const *)(const void *)(base + k->off) == NULL;
}

/* CONF_ENDPOINT_NAME in a default stands for the endpoint's name (once). */
static char *expand_default(const char *def, const char *endpoint)
{
	const char *at = endpoint ? strstr(def, CONF_ENDPOINT_NAME) : NULL;

	if (!at)
		return xstrdup(def);
	return xasprintf("%.*s%s%s", (int)(at - def), def, endpoint,
			 at + strlen(CONF_ENDPOINT_NAME));
}

/* Keys the file does not set, or sets empty (CONF_OPTIONAL), take their
 * default. endpoint names the endpoint of an endpoint table, else NULL. */
static void fill_defaults(struct loader *L, const struct target *t, const char *endpoint)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct conf_key *k = &t->keys[i];
		if (!k->def || (t->seen[i] && !is_unset_string(k, t->base)))
			continue;
		_cleanup_free_ char *def = expand_default(k->def, endpoint);
		int r = set_value(L, k, t->base, def, 0);
		assert(r == 0 && "every default is valid");
		(void)r;
	}
}

/* state_dir first: the relative defaults of other paths are relative to it. */
static void all_defaults(struct loader *L)
{
	struct config *cfg = L->cfg;
	struct target t[MAX_TARGETS];

	t[0] = (struct target){ global_keys, ARRAY_SIZE(global_keys), L->seen, (char *)cfg };
	fill_defaults(L, &t[0], NULL);
	for (size_t i = 0; i < L->nschemas; i++) {
		const struct conf_schema *s = cfg->schemas[i];
		if (!s->section)
			continue;
		t[0] = (struct target){ s->section_keys, s->nsection_keys, L->sseen[i],
					cfg->sections[i] };
		fill_defaults(L, &t[0], NULL);
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		size_t n = endpoint_targets(L, i, t);
		for (size_t j = 0; j < n; j++)
			fill_defaults(L, &t[j], cfg->endpoints[i].name);
	}
}

/* ---- whole-config validation -------------------------------------------- */

static int global_line(const struct loader *L, const char *section, const char *name)
{
	const struct conf_key *k = find_key(global_keys, ARRAY_SIZE(global_keys), section, name);
	assert(k);
	return L->seen[k - global_keys];
}

static int64_t global_ms(const struct loader *L, const char *section, const char *name)
{
	const struct conf_key *k = find_key(global_keys, ARRAY_SIZE(global_keys), section, name);
	assert(k && k->type == CONF_DURATION);
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

static bool has_value(const struct conf_key *k, const char *base, int seen)
{
	if (k->type == CONF_LIST)
		return *(const size_t *)(const void *)(base + k->count_off) > 0;
	if (k->type == CONF_STR || k->type == CONF_PATH)
		return *(char *const *)(const void *)(base + k->off) != NULL;
	return seen > 0;
}

/* The CONF_REQUIRED keys of one table: a missing one is blamed on its line
 * when written empty, else on the section header. */
static int need(struct loader *L, const struct endpoint_conf *ep, const struct target *t,
		const char *why)
{
	for (size_t k = 0; k < t->n; k++) {
		const struct conf_key *key = &t->keys[k];
		if (!(key->flags & CONF_REQUIRED) || has_value(key, t->base, t->seen[k]))
			continue;
		if (t->seen[k])
			return fail(L, t->seen[k], "endpoint '%s': %s must not be empty%s", ep->name,
				    key->name, why);
		return fail(L, ep->line, "endpoint '%s': missing required key '%s'%s", ep->name,
			    key->name, why);
	}
	return 0;
}

/* The common keys an endpoint needs, then those its transport needs. */
static int check_endpoint(struct loader *L, size_t i)
{
	const struct endpoint_conf *ep = &L->cfg->endpoints[i];
	struct target t[MAX_TARGETS];
	char why[96];

	size_t n = endpoint_targets(L, i, t);
	snprintf(why, sizeof(why), " (transport %s)", ep->transport);
	for (size_t j = 0; j < n; j++)
		if (need(L, ep, &t[j], j == 0 ? "" : why) < 0)
			return L->rc;
	return 0;
}

/* A value some endpoint claims (a GLN, a folder), and where. */
struct claim {
	const char *value;
	const char *what;
	size_t ep;
	int line;
	bool shared; /* other endpoints may claim it as the same `what` */
};

static int claim_cmp(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	int c = strcmp(x->value, y->value);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Sorts the claims and returns the index of the clash whose later claim is
 * nearest the top of the file (the earlier claim is just before it), or 0.
 * Two claims of a value clash unless both are shared and the same `what`. */
static size_t first_clash(struct claim *c, size_t n)
{
	size_t best = 0;

	if (n < 2)
		return 0;
	qsort(c, n, sizeof(*c), claim_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(c[i - 1].value, c[i].value) != 0)
			continue;
		if (c[i - 1].shared && c[i].shared && strcmp(c[i - 1].what, c[i].what) == 0)
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
			c[n++] = (struct claim){ gln, "gln", i, item_line(L, gln), false };
		}
	size_t k = first_clash(c, n);
	if (k == 0)
		return 0;
	return fail(L, c[k].line, "endpoint '%s': gln %s is already owned by endpoint '%s' (line %d)",
		    cfg->endpoints[c[k].ep].name, c[k].value, cfg->endpoints[c[k - 1].ep].name,
		    c[k - 1].line);
}

/* The CONF_FOLDER keys of endpoint i that hold a path, as claims (into c
 * when not NULL); returns how many. */
static size_t folder_claims(const struct loader *L, size_t i, struct claim *c)
{
	const struct endpoint_conf *ep = &L->cfg->endpoints[i];
	struct target t[MAX_TARGETS];
	size_t n = 0, nt = endpoint_targets(L, i, t);

	for (size_t j = 0; j < nt; j++) {
		for (size_t k = 0; k < t[j].n; k++) {
			const struct conf_key *key = &t[j].keys[k];
			if (!(key->flags & CONF_FOLDER))
				continue;
			const char *path = *(char *const *)(const void *)(t[j].base + key->off);
			if (!path)
				continue;
			if (c)
				c[n] = (struct claim){ path, key->name, i,
						       t[j].seen[k] ? t[j].seen[k] : ep->line,
						       (key->flags & CONF_SHARED) != 0 };
			n++;
		}
	}
	return n;
}

/* One folder, one role: a shared inbox would be picked up twice, an outbox
 * that is an inbox would loop. Keys marked CONF_SHARED (a quarantine) may be
 * shared in their own role. */
static int check_folders(struct loader *L)
{
	const struct config *cfg = L->cfg;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < cfg->nendpoints; i++)
		total += folder_claims(L, i, NULL);
	_cleanup_free_ struct claim *c = xcalloc(total + 1, sizeof(*c));
	for (size_t i = 0; i < cfg->nendpoints; i++)
		n += folder_claims(L, i, c + n);
	size_t k = first_clash(c, n);
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

/* Whether control_socket was written in the file: only a default gives way
 * to systemd's $RUNTIME_DIRECTORY (the daemon) and /run/edibroker
 * (edibrokerctl). */
static int note_explicit(struct loader *L)
{
	L->cfg->control_socket_explicit = global_line(L, "broker", "control_socket") > 0;
	return 0;
}

/* The store backend: [store] backend, or where it used to be, [broker]
 * store (still read, so an old file keeps working; both set must agree);
 * sqlite when neither is. A server backend needs its url; the node's name
 * defaults to the host's. */
static int resolve_store(struct loader *L)
{
	struct config *c = L->cfg;
	if (c->store_backend && c->store_backend_old && strcmp(c->store_backend, c->store_backend_old))
		return fail(L, global_line(L, "store", "backend"),
			    "backend: %s, but [broker] store says %s (drop the old key)",
			    c->store_backend, c->store_backend_old);
	if (!c->store_backend)
		c->store_backend = xstrdup(c->store_backend_old ? c->store_backend_old : "sqlite");
	if (strcmp(c->store_backend, "postgresql") == 0 && str_empty(c->store_url))
		return fail(L, global_line(L, "store", "backend"),
			    "backend = postgresql needs [store] url");
	if (!c->store_node) {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
			str_copy(host, "edibroker", sizeof(host));
		host[strcspn(host, ".")] = '\0'; /* the short name */
		c->store_node = xstrdup(host);
	}
	return 0;
}

static int validate(struct loader *L)
{
	if (resolve_store(L) < 0)
		return L->rc;
	for (size_t i = 0; i < L->cfg->nendpoints; i++)
		if (check_endpoint(L, i) < 0)
			return L->rc;
	check_gln_digits(L);
	if (check_gln_owners(L) < 0 || check_folders(L) < 0 || check_default_endpoint(L) < 0 ||
	    check_order(L, "delivery", "retry_initial", "retry_max") < 0 ||
	    check_order(L, "store", "retention", "history") < 0 || check_mail(L) < 0 ||
	    check_socket_path(L) < 0 || note_explicit(L) < 0)
		return L->rc;
	return 0;
}

/* ---- files the keys name, and secrets ------------------------------------ */

#define SECRET_MAX 4096

typedef int target_fn(struct loader *L, const struct target *t);

/* Calls fn on every table of the config: the broker's, the schemas'
 * sections, each endpoint's; stops at the first error. */
static int each_target(struct loader *L, target_fn *fn)
{
	struct config *cfg = L->cfg;
	struct target t[MAX_TARGETS];

	t[0] = (struct target){ global_keys, ARRAY_SIZE(global_keys), L->seen, (char *)cfg };
	if (fn(L, &t[0]) < 0)
		return L->rc;
	for (size_t i = 0; i < L->nschemas; i++) {
		const struct conf_schema *s = cfg->schemas[i];
		if (!s->section)
			continue;
		t[0] = (struct target){ s->section_keys, s->nsection_keys, L->sseen[i],
					cfg->sections[i] };
		if (fn(L, &t[0]) < 0)
			return L->rc;
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		size_t n = endpoint_targets(L, i, t);
		for (size_t j = 0; j < n; j++)
			if (fn(L, &t[j]) < 0)
				return L->rc;
	}
	return 0;
}

static char *str_field(const struct target *t, size_t off)
{
	return *(char **)(void *)(t->base + off);
}

/* The key of table t whose value lives at off, or NULL. */
static const struct conf_key *key_at(const struct target *t, size_t off, int *line)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->keys[i].off == off && t->keys[i].type != CONF_LIST) {
			*line = t->seen[i];
			return &t->keys[i];
		}
	}
	return NULL;
}

/* One line, no control characters: it goes into a header or an AUTH
 * exchange, where a line break would be an injection. */
static bool secret_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return n > 0;
}

/* The secret in fd into the field at k->secret_off; nothing of it is ever
 * put into a message. */
static int read_secret(struct loader *L, const struct target *t, const struct conf_key *k,
		       int fd, int line)
{
	char **dst = (char **)(void *)(t->base + k->secret_off);
	char buf[SECRET_MAX + 2];
	size_t n = 0;
	int inline_line = 0;
	const struct conf_key *twin = key_at(t, k->secret_off, &inline_line);

	if (*dst)
		return fail(L, line, "%s: %s is set too (line %d); keep one of them", k->name,
			    twin ? twin->name : "the secret", inline_line);
	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(L, line, "%s: %s: %s", k->name, str_field(t, k->off), strerror(errno));
		n += (size_t)r;
	}
	bool too_long = n > SECRET_MAX;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	bool ok = !too_long && secret_ok(buf, n);
	buf[n] = '\0';
	if (ok)
		*dst = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (ok)
		return 0;
	if (too_long)
		return fail(L, line, "%s: %s is longer than %d bytes", k->name, str_field(t, k->off),
			    SECRET_MAX);
	return fail(L, line, "%s: %s must hold one non-empty line without control characters",
		    k->name, str_field(t, k->off));
}

/* A file a key names: there and a regular file; a private one (a secret, a
 * key) not open to others; a secret read. */
static int check_file(struct loader *L, const struct target *t, const struct conf_key *k,
		      int line)
{
	const char *path = str_field(t, k->off);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return fail(L, line, "%s: %s: %s", k->name, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(L, line, "%s: %s is not a regular file", k->name, path);
	if ((k->flags & (CONF_PRIVATE_FILE | CONF_SECRET_FILE)) && (st.st_mode & S_IRWXO))
		return fail(L, line,
			    "%s: %s is open to others (mode %04o): refusing it; chmod o-rwx it "
			    "(owner root, group edibroker, mode 0640 is fine)",
			    k->name, path, (unsigned)(st.st_mode & 07777));
	if (k->flags & CONF_SECRET_FILE)
		return read_secret(L, t, k, fd, line);
	return 0;
}

static int check_files(struct loader *L, const struct target *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct conf_key *k = &t->keys[i];
		if (!(k->flags & (CONF_FILE | CONF_PRIVATE_FILE | CONF_SECRET_FILE)) ||
		    !str_field(t, k->off))
			continue;
		assert(k->type == CONF_PATH && "a file key is a path");
		assert((!(k->flags & CONF_SECRET_FILE) || k->secret_off) && "where the secret goes");
		if (check_file(L, t, k, t->seen[i]) < 0)
			return L->rc;
	}
	return 0;
}

static void add_warning(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_warning(struct loader *L, int line, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	struct config *cfg = L->cfg;
	cfg->warnings = xrealloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof(char *));
	cfg->warnings[cfg->nwarnings++] = xasprintf("%s:%d: %s", L->path, line, text);
}

/* The CONF_SECRET_FILE key of t that can hold k's secret instead, or NULL. */
static const struct conf_key *file_twin(const struct target *t, const struct conf_key *k)
{
	for (size_t i = 0; i < t->n; i++)
		if ((t->keys[i].flags & CONF_SECRET_FILE) && t->keys[i].secret_off == k->off)
			return &t->keys[i];
	return NULL;
}

/* Secrets written in a file others can read: a warning each, not an error,
 * so an upgrade does not stop a running broker. */
static int inline_secrets(struct loader *L, const struct target *t)
{
	char shown[REDACT_MAX];

	for (size_t i = 0; i < t->n; i++) {
		const struct conf_key *k = &t->keys[i];
		if (!(k->flags & (CONF_SECRET | CONF_CREDENTIAL_URL)) || !t->seen[i] ||
		    (k->type != CONF_STR && k->type != CONF_PATH) || !str_field(t, k->off))
			continue;
		const char *v = str_field(t, k->off);
		if (!(k->flags & CONF_SECRET) && strcmp(redact_url(v, shown, sizeof(shown)), v) == 0)
			continue; /* a URL without user-info, query or fragment */
		const struct conf_key *twin = file_twin(t, k);
		add_warning(L, t->seen[i], "%s: %s in a file others can read (mode %04o); %s%s%s",
		     k->name, (k->flags & CONF_SECRET) ? "a secret" : "credentials in the URL",
		     L->mode, twin ? "put it in " : "", twin ? twin->name : "",
		     twin ? ", or chmod o-r the file" : "chmod o-r the file");
	}
	return 0;
}

/* The endpoints keep the lines of their transport's keys, for checks made
 * after loading (config_endpoint_key_line()). */
static void keep_key_lines(struct loader *L)
{
	for (size_t i = 0; i < L->neps; i++)
		L->cfg->endpoints[i].tlines = TAKE_PTR(L->eps[i].tseen);
}

static int finish(struct loader *L)
{
	if (close_list(L) < 0)
		return L->rc;
	all_defaults(L);
	if (validate(L) < 0)
		return L->rc;
	if (!(L->flags & CONFIG_NO_FILES) && each_target(L, check_files) < 0)
		return L->rc;
	if (L->mode & S_IROTH)
		(void)each_target(L, inline_secrets);
	keep_key_lines(L);
	return 0;
}

/* ---- the public functions ----------------------------------------------- */

/* Programmer errors in a schema: caught on every load, by the unit tests. */
static void assert_schemas_sound(const struct conf_schema *const *schemas)
{
	for (size_t i = 0; schemas[i]; i++) {
		const struct conf_schema *s = schemas[i];
		assert(s->name && *s->name && (s->section_keys || !s->section));
		for (size_t j = 0; j < i; j++)
			assert(strcmp(schemas[j]->name, s->name) != 0 && "one schema per name");
		for (size_t k = 0; k < s->nendpoint_keys; k++) {
			const struct conf_key *key = &s->endpoint_keys[k];
			assert((key->flags & CONF_RELOAD) && "endpoint keys reload");
			assert((!(key->flags & CONF_FOLDER) || key->type == CONF_PATH) &&
			       "a folder is a path");
			assert(!find_key(endpoint_keys, ARRAY_SIZE(endpoint_keys), NULL, key->name) &&
			       "a common endpoint key");
			(void)key;
		}
		/* its section may be one of the broker's, but not a key of it */
		for (size_t k = 0; s->section && k < s->nsection_keys; k++)
			assert(!find_key(global_keys, ARRAY_SIZE(global_keys), s->section,
					 s->section_keys[k].name) && "a key the broker has");
		for (size_t k = 0; k < s->ncommon_keys; k++) {
			const struct conf_key *key = &s->common_keys[k];
			assert((key->flags & CONF_RELOAD) && "endpoint keys reload");
			assert(!find_key(endpoint_keys, ARRAY_SIZE(endpoint_keys), NULL, key->name) &&
			       "a common endpoint key");
			for (size_t j = 0; schemas[j]; j++)
				assert(!find_key(schemas[j]->endpoint_keys, schemas[j]->nendpoint_keys,
						 NULL, key->name) && "a transport's endpoint key");
			(void)key;
		}
		assert(i < SCHEMAS_MAX && "more transports than SCHEMAS_MAX");
		(void)s;
	}
}

static int loader_open(struct loader *L, const struct conf_schema *const *schemas)
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
	struct stat st;
	if (fstat(fileno(L->f), &st) == 0)
		L->mode = st.st_mode & 07777;
	L->cfg = xcalloc(1, sizeof(*L->cfg));
	L->cfg->path = resolve_path(L->cwd, L->path);
	L->cfg->schemas = schemas;
	while (schemas[L->nschemas])
		L->nschemas++;
	L->cfg->sections = xcalloc(L->nschemas, sizeof(void *));
	L->sseen = xcalloc(L->nschemas, sizeof(int *));
	for (size_t i = 0; i < L->nschemas; i++) {
		if (!schemas[i]->section)
			continue;
		L->cfg->sections[i] = xcalloc(1, schemas[i]->section_size);
		L->sseen[i] = xcalloc(schemas[i]->nsection_keys + 1, sizeof(int));
	}
	return 0;
}

static void loader_close(struct loader *L)
{
	if (L->f)
		fclose(L->f);
	config_free(L->cfg);
	drop_held(L);
	free(L->held);
	free(L->cwd);
	for (size_t i = 0; i < L->neps; i++) {
		free(L->eps[i].tseen);
		for (size_t j = 0; L->eps[i].cseen && j < L->nschemas; j++)
			free(L->eps[i].cseen[j]);
		free(L->eps[i].cseen);
	}
	free(L->eps);
	for (size_t i = 0; i < L->nschemas; i++)
		free(L->sseen[i]);
	free(L->sseen);
	free(L->items);
}

int config_load(const char *path, const struct conf_schema *const *schemas, struct config **out,
		char *err, size_t errlen)
{
	return config_load_opts(path, schemas, 0, out, err, errlen);
}

int config_load_opts(const char *path, const struct conf_schema *const *schemas, unsigned flags,
		     struct config **out, char *err, size_t errlen)
{
	struct loader L = { .path = path, .err = err, .errlen = errlen, .ep = -1,
			    .flags = flags };
	int r;

	assert(path && out && schemas && schemas[0]);
	assert_schemas_sound(schemas);
	r = loader_open(&L, schemas);
	if (r == 0)
		r = parse(&L);
	if (r == 0)
		r = finish(&L);
	if (r == 0)
		*out = TAKE_PTR(L.cfg);
	loader_close(&L);
	return r;
}

/* Frees *p, wiping it first when it is a secret; leaves NULL, since a
 * secret file's field may be another key's too. */
static void free_str(char **p, bool secret)
{
	if (*p && secret)
		explicit_bzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

static void free_fields(const struct conf_key *keys, size_t n, char *base)
{
	for (size_t i = 0; i < n; i++) {
		void *field = base + keys[i].off;
		if (keys[i].flags & CONF_SECRET_FILE)
			free_str((char **)(void *)(base + keys[i].secret_off), true);
		if (keys[i].type == CONF_STR || keys[i].type == CONF_PATH) {
			free_str(field, keys[i].flags & CONF_SECRET);
		} else if (keys[i].type == CONF_LIST) {
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
		struct endpoint_conf *ep = &cfg->endpoints[i];
		free_fields(endpoint_keys, ARRAY_SIZE(endpoint_keys), (char *)ep);
		if (ep->tconf)
			free_fields(ep->schema->endpoint_keys, ep->schema->nendpoint_keys,
				    ep->tconf);
		free(ep->tconf);
		for (size_t j = 0; ep->common && cfg->schemas[j]; j++) {
			const struct conf_schema *s = cfg->schemas[j];
			if (ep->common[j])
				free_fields(s->common_keys, s->ncommon_keys, ep->common[j]);
			free(ep->common[j]);
		}
		free(ep->common);
		free(ep->tlines);
		free(ep->name);
	}
	free(cfg->endpoints);
	for (size_t i = 0; cfg->sections && cfg->schemas[i]; i++) {
		const struct conf_schema *s = cfg->schemas[i];
		if (cfg->sections[i])
			free_fields(s->section_keys, s->nsection_keys, cfg->sections[i]);
		free(cfg->sections[i]);
	}
	free(cfg->sections);
	free_fields(global_keys, ARRAY_SIZE(global_keys), (char *)cfg);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg->path);
	free(cfg);
}

const void *config_section(const struct config *cfg, const struct conf_schema *schema)
{
	for (size_t i = 0; cfg->schemas && cfg->schemas[i]; i++)
		if (cfg->schemas[i] == schema)
			return cfg->sections ? cfg->sections[i] : NULL;
	return NULL;
}

const void *config_endpoint_common(const struct config *cfg, const struct endpoint_conf *ep,
				   const struct conf_schema *schema)
{
	for (size_t i = 0; cfg->schemas && cfg->schemas[i]; i++)
		if (cfg->schemas[i] == schema)
			return ep->common ? ep->common[i] : NULL;
	return NULL;
}

const struct endpoint_conf *config_endpoint(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nendpoints; i++)
		if (strcmp(cfg->endpoints[i].name, name) == 0)
			return &cfg->endpoints[i];
	return NULL;
}

int config_endpoint_key_line(const struct endpoint_conf *ep, const char *key)
{
	const struct conf_schema *s = ep->schema;
	const struct conf_key *k = s ? find_key(s->endpoint_keys, s->nendpoint_keys, NULL, key) : NULL;

	if (!k || !ep->tlines || !ep->tlines[k - s->endpoint_keys])
		return ep->line;
	return ep->tlines[k - s->endpoint_keys];
}

static void walk_table(const struct conf_key *keys, size_t n, const char *section,
		       void (*fn)(const char *, const char *, const struct conf_key *, void *),
		       void *arg)
{
	for (size_t i = 0; i < n; i++)
		fn(section ? section : keys[i].section, keys[i].name, &keys[i], arg);
}

void config_walk_keys(const struct conf_schema *const *schemas,
		      void (*fn)(const char *section, const char *key, const struct conf_key *row,
				 void *arg),
		      void *arg)
{
	walk_table(global_keys, ARRAY_SIZE(global_keys), NULL, fn, arg);
	walk_table(endpoint_keys, ARRAY_SIZE(endpoint_keys), "endpoint", fn, arg);
	for (size_t i = 0; schemas && schemas[i]; i++) {
		const struct conf_schema *s = schemas[i];
		walk_table(s->endpoint_keys, s->nendpoint_keys, "endpoint", fn, arg);
		walk_table(s->common_keys, s->ncommon_keys, "endpoint", fn, arg);
		if (s->section)
			walk_table(s->section_keys, s->nsection_keys, s->section, fn, arg);
	}
}

static bool str_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool field_equal(const struct conf_key *k, const char *a, const char *b)
{
	const void *fa = a + k->off, *fb = b + k->off;

	switch (k->type) {
	case CONF_STR:
	case CONF_PATH:
		return str_equal(*(char *const *)fa, *(char *const *)fb);
	case CONF_DURATION:
	case CONF_INT:
	case CONF_SIZE:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case CONF_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case CONF_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case CONF_ENUM:
		return *(const int *)fa == *(const int *)fb;
	case CONF_LIST: {
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

/* Counts (and names to warn) the non-reloadable keys of one table whose
 * values differ between the structs a and b. */
static int compare_keys(const struct conf_key *keys, size_t n, const char *section,
			const char *a, const char *b, void (*warn)(const char *key, void *arg),
			void *arg)
{
	int changed = 0;

	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = &keys[i];
		if ((k->flags & CONF_RELOAD) || field_equal(k, a, b))
			continue;
		char name[96];
		snprintf(name, sizeof(name), "%s.%s", section ? section : k->section, k->name);
		if (warn)
			warn(name, arg);
		changed++;
	}
	return changed;
}

/* Global keys and the schemas' sections can need a restart; every endpoint
 * key is reloadable (a reload gives each endpoint a new transport). */
int config_nonreloadable_changes(const struct config *old, const struct config *new,
				 void (*warn)(const char *key, void *arg), void *arg)
{
	int changed = compare_keys(global_keys, ARRAY_SIZE(global_keys), NULL, (const char *)old,
				   (const char *)new, warn, arg);

	for (size_t i = 0; new->schemas && new->schemas[i]; i++) {
		const struct conf_schema *s = new->schemas[i];
		const char *a = config_section(old, s), *b = new->sections[i];
		if (a && b)
			changed += compare_keys(s->section_keys, s->nsection_keys, s->section, a, b,
						warn, arg);
	}
	return changed;
}

/* ---- the effective configuration, printed ---------------------------------- */

/* The words of a value of key k in the struct at base, as the file would
 * say it, into buf; NULL when it is not set. */
static const char *shown(const struct conf_key *k, const char *base, char *buf, size_t len)
{
	const void *f = base + k->off;
	const char *str = NULL;
	switch (k->type) {
	case CONF_STR:
	case CONF_PATH:
		str = *(char *const *)f;
		if (!str)
			return NULL;
		if (k->flags & CONF_SECRET)
			return "***";
		if (k->flags & CONF_CREDENTIAL_URL)
			return redact_url(str, buf, len);
		if (k->flags & CONF_COMMAND)
			return redact_command(str, buf, len);
		return str;
	case CONF_DURATION:
		format_duration(*(const int64_t *)f, buf, len);
		return buf;
	case CONF_INT:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)f);
		return buf;
	case CONF_SIZE:
		format_size(*(const int64_t *)f, buf, len);
		return buf;
	case CONF_DOUBLE:
		snprintf(buf, len, "%g", *(const double *)f);
		return buf;
	case CONF_BOOL:
		return *(const bool *)f ? "yes" : "no";
	case CONF_ENUM:
		for (const struct conf_choice *c = k->choices; c && c->name; c++)
			if (c->value == *(const int *)f)
				return c->name;
		return "?";
	case CONF_LIST: {
		size_t n = *(const size_t *)(const void *)(base + k->count_off), used = 0;
		char *const *items = *(char **const *)f;
		if (n == 0)
			return NULL;
		buf[0] = '\0';
		for (size_t i = 0; i < n && used < len; i++) {
			int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", items[i]);
			used += w < 0 ? 0 : (size_t)w;
		}
		return buf;
	}
	}
	return NULL;
}

/* The keys of one table: section names the keys' [section] when it changes
 * (NULL: the table's own sections); *current tracks the header printed. */
static void print_table(FILE *f, const struct conf_key *keys, size_t n, const char *base,
			const char *section, const char **current)
{
	char buf[4096];
	for (size_t i = 0; i < n; i++) {
		const char *sec = section ? section : keys[i].section;
		if (!*current || strcmp(*current, sec) != 0) {
			fprintf(f, "\n[%s]\n", sec);
			*current = sec;
		}
		const char *v = shown(&keys[i], base, buf, sizeof(buf));
		if (v)
			fprintf(f, "%s = %s\n", keys[i].name, v);
		else
			fprintf(f, "# %s (not set)\n", keys[i].name);
	}
}

int config_print(const struct config *cfg, FILE *f)
{
	const char *current = NULL;
	fprintf(f, "# The effective configuration of %s, defaults included.\n",
		cfg->path ? cfg->path : "(none)");
	print_table(f, global_keys, ARRAY_SIZE(global_keys), (const char *)cfg, NULL, &current);
	for (size_t i = 0; cfg->schemas && cfg->schemas[i]; i++) {
		const struct conf_schema *s = cfg->schemas[i];
		if (s->section && cfg->sections[i])
			print_table(f, s->section_keys, s->nsection_keys, cfg->sections[i],
				    s->section, &current);
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		_cleanup_free_ char *sec = xasprintf("endpoint %s", ep->name);
		current = NULL;
		print_table(f, endpoint_keys, ARRAY_SIZE(endpoint_keys), (const char *)ep, sec,
			    &current);
		if (ep->schema && ep->tconf)
			print_table(f, ep->schema->endpoint_keys, ep->schema->nendpoint_keys,
				    ep->tconf, sec, &current);
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

const char *endpoint_kind_name(enum endpoint_kind kind)
{
	for (const struct conf_choice *c = kinds; c->name; c++)
		if (c->value == (int)kind)
			return c->name;
	return "unknown";
}

/*
 * config.h - the daemon's configuration: an INI file (conf/ini.h) read through
 * one declarative table of keys (name, type, default, min, max, reloadable).
 *
 * config_load() builds a complete, validated `struct config` or nothing: a
 * bad file yields "FILE:LINE: reason" and no config, so a SIGHUP with a bad
 * file keeps the running config. Durations are "500ms", "90s", "15m", "2h",
 * "7d" (100ms at least). Lists are comma-separated and may continue on
 * indented lines.
 */
#ifndef EDIBROKER_CONFIG_H
#define EDIBROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum endpoint_kind { ENDPOINT_HOSPITAL, ENDPOINT_MUNICIPALITY, ENDPOINT_OTHER };

struct endpoint_conf {
	char *name;               /* from "[endpoint NAME]" */
	int line;                 /* line of the section header, for messages */
	enum endpoint_kind kind;  /* kind = hospital | municipality | other */
	char *transport;          /* transport = spool (the only one so far) */
	char **gln;               /* gln = list of location numbers it owns */
	size_t ngln;
	char *inbox;              /* spool: the endpoint drops files here */
	char *outbox;             /* spool: the broker delivers files here */
	char *quarantine;         /* spool: unparseable inbound files; default
				     <state_dir>/quarantine/<name> */
	bool create_dirs;         /* create_dirs = yes: make missing inbox/outbox at start */
	char *contact;            /* contact = free text: person, phone, mail */
	char **recipients;        /* recipients = the endpoint's own function mailbox(es) */
	size_t nrecipients;
	int64_t pickup_timeout_ms;/* spool: outbox files not collected by then = down; 0 = off */
	char *organisation;       /* organisation = display name in notices; default: name */
};

struct config {
	char *path;                /* the file it was read from */

	/* [broker] */
	char *state_dir;           /* state_dir: SQLite database and internal files */
	char *control_socket;      /* control_socket: default <state_dir>/control.sock */
	char *broker_id;           /* id: the broker's network id in receipts (default EDIBROKER) */
	char *store_backend;       /* store: "sqlite" */
	int64_t max_message_size;  /* max_message_size: bytes (default 16 MiB) */
	int log_level;             /* log_level: err|warning|notice|info|debug -> syslog priority */

	/* [delivery] */
	int64_t retry_initial_ms;  /* retry_initial (default 5s) */
	int64_t retry_max_ms;      /* retry_max (default 10m) */
	double drain_rate;         /* drain_rate: msg/s per endpoint after an outage; 0 = no limit */
	int64_t batch_max;         /* batch_max: messages per delivery batch (default 256) */

	/* [routing] */
	char *default_endpoint;    /* default_endpoint: NULL when unset */

	/* [spool] */
	int64_t rescan_interval_ms;/* rescan_interval: periodic inbox rescan (default 30s) */

	/* [store] */
	int64_t retention_ms;      /* retention: bodies of delivered messages kept this long (7d) */
	int64_t history_ms;        /* history: delivered records and duplicate keys kept (90d) */
	int64_t store_max_size;    /* max_size: bytes the store may use; 0 = no cap (default) */

	/* [outage] */
	int64_t outage_threshold_ms;   /* threshold (2h) */
	int64_t probe_interval_ms;     /* probe_interval (1m) */
	int64_t down_after;            /* down_after (3) */
	int64_t update_interval_ms;    /* update_interval (1h) */
	char *send_window;             /* send_window "08:00-22:00" */
	char *support_hours;           /* support_hours "mon-thu 08:00-15:45, fri 08:00-14:00" */
	char *timezone;                /* timezone "Europe/Copenhagen" */
	char *language;                /* language "da" | "en" */
	char *template_dir;            /* template_dir: operator-edited notice templates; NULL = built in */

	/* [notify] */
	char *smtp_url;
	char *smtp_user;
	char *smtp_password;
	char *smtp_starttls;           /* "no" | "try" | "yes" */
	char *mail_from;
	char **support_recipients;
	size_t nsupport_recipients;
	char **oncall_recipients;
	size_t noncall_recipients;
	char **hospital_recipients;
	size_t nhospital_recipients;
	char **municipality_recipients;
	size_t nmunicipality_recipients;
	char *webhook_url;
	char *fallback_command;
	int64_t notify_retry_ms;       /* retry_initial: first retry of a failed send (30s, doubling) */
	int64_t fallback_after;        /* fallback_after: failed e-mail attempts before the fallback (3) */
	int64_t notify_timeout_ms;     /* timeout: per send, connection included (30s) */
	char *closed_days;             /* "12-24, 12-31, 06-05" */
	char *status_dir;              /* default <state_dir>/status */

	struct endpoint_conf *endpoints;
	size_t nendpoints;
};

/* Loads and validates path. Returns 0 with *out set, or a negative errno
 * with "path:line: reason" (or "path: reason") in err. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The endpoint called name, or NULL. */
const struct endpoint_conf *config_endpoint(const struct config *cfg, const char *name);

/* Calls warn(key, arg) for every non-reloadable key whose value differs
 * between old and new (e.g. "broker.state_dir"); returns how many differ. */
int config_nonreloadable_changes(const struct config *old, const struct config *new,
				 void (*warn)(const char *key, void *arg), void *arg);

/* Parses a duration ("500ms", "90s", "15m", "2h", "7d"; a bare number is
 * seconds). Returns 0 with *ms set, or -EINVAL. */
int config_parse_duration(const char *s, int64_t *ms);

/* "hospital" / "municipality" / "other". */
const char *endpoint_kind_name(enum endpoint_kind kind);

#endif

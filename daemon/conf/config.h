/*
 * config.h - the daemon's configuration: an INI file (conf/ini.h) read
 * through declarative tables of keys (name, type, default, min, max,
 * reloadable).
 *
 * config_load() builds a complete, validated `struct config` or nothing: a
 * bad file yields "FILE:LINE: reason" and no config, so a SIGHUP with a bad
 * file keeps the running config. Durations are "500ms", "90s", "15m", "2h",
 * "7d" (100ms at least). Lists are comma-separated and may continue on
 * indented lines.
 *
 * The broker's own keys are config.c's; a transport brings its own in a
 * `struct conf_schema` (keys of its endpoints, and an optional [section] of
 * its own), read, defaulted, checked, freed and compared by the same code.
 * This module names no transport: the caller passes the schemas.
 */
#ifndef EDIBROKER_CONFIG_H
#define EDIBROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- key tables ---------------------------------------------------------- */

/* Milliseconds, for the bounds of duration keys. */
#define CONF_SECOND 1000LL
#define CONF_MINUTE (60 * CONF_SECOND)
#define CONF_HOUR (60 * CONF_MINUTE)
#define CONF_DAY (24 * CONF_HOUR)

enum conf_type {
	CONF_STR,      /* char *; NULL when unset */
	CONF_PATH,     /* char *, made absolute: a written one against the working
			  directory, a default against state_dir */
	CONF_DURATION, /* int64_t milliseconds */
	CONF_INT,      /* int64_t */
	CONF_SIZE,     /* int64_t bytes; "16M" */
	CONF_DOUBLE,   /* double */
	CONF_BOOL,     /* bool; yes/no, true/false, on/off, 1/0 */
	CONF_ENUM,     /* int: the value of the chosen word */
	CONF_LIST,     /* char ** and a size_t count (count_off) */
};

enum {
	CONF_RELOAD = 1 << 0,   /* a SIGHUP may change it; without it, a restart is needed */
	CONF_OPTIONAL = 1 << 1, /* strings: an empty value means unset (then the default) */
	CONF_REQUIRED = 1 << 2, /* endpoints: must be given (a list: with an item); checked
				   after the file, so with CONF_OPTIONAL "key =" is named */
	CONF_ZERO_OFF = 1 << 3, /* numbers: 0 means "off" and is allowed below min */
	CONF_FOLDER = 1 << 4,   /* endpoint paths: a folder with one role among all endpoints */
	CONF_SHARED = 1 << 5,   /* with CONF_FOLDER: endpoints may share it in this role */
	CONF_SECRET = 1 << 6,   /* strings: a secret; never quoted in a message, wiped when
				   freed; written in a file others can read: a warning */
	CONF_CREDENTIAL_URL = 1 << 7, /* strings: a URL that may carry user-info or a query
				   (credentials): messages show it redacted (base/redact.h);
				   with them, in a file others can read: a warning */
	CONF_FILE = 1 << 8,     /* paths: must name a readable regular file at load */
	CONF_PRIVATE_FILE = 1 << 9, /* paths: as CONF_FILE, and not open to others (mode &
				   007), or the load fails (key files, secret files) */
	CONF_SECRET_FILE = 1 << 10, /* paths: as CONF_PRIVATE_FILE, and its one line (without a
				   trailing newline) is read at load into the char * at
				   .secret_off, which must not be set otherwise too */
	CONF_COMMAND = 1 << 11, /* strings: a shell command, whose arguments may carry a
				   secret: printed by its program's name only */
};

/* A word a key accepts; a CONF_ENUM key stores its value. */
struct conf_choice {
	const char *name;
	int value;
};

/* Extra syntax of a string or of each list item: 0, or -EINVAL and why. */
typedef int conf_check_fn(const char *v, char *why, size_t len);

/* One key: where its value lives in the struct it fills, and its rules. */
struct conf_key {
	const char *section;		   /* the broker's [section]; NULL in a schema */
	const char *name;
	enum conf_type type;
	size_t off;			   /* of the value in its struct */
	size_t count_off;		   /* CONF_LIST: of its size_t count */
	const char *def;		   /* default, written as in the file (in an endpoint
					      key, CONF_ENDPOINT_NAME stands for the endpoint's
					      name); NULL = unset */
	int64_t min, max;		   /* INT, DOUBLE, SIZE (bytes), DURATION (ms) */
	const struct conf_choice *choices; /* CONF_ENUM; for a CONF_STR the only words it takes */
	conf_check_fn *check;		   /* CONF_STR: the value; CONF_LIST: each item. With
					      CONF_SECRET or CONF_CREDENTIAL_URL its why must
					      not quote the value */
	unsigned flags;
	size_t secret_off;		   /* CONF_SECRET_FILE: of the char * the secret goes to */
};

/* In an endpoint key's default: "quarantine/" CONF_ENDPOINT_NAME. */
#define CONF_ENDPOINT_NAME "{endpoint}"

/* Row helpers: CONF_KEY(struct spool_conf, "inbox", CONF_PATH, inbox). */
#define CONF_KEY(st, key, t, field) .name = (key), .type = (t), .off = offsetof(st, field)
#define CONF_LIST_KEY(st, key, field)                                                              \
	CONF_KEY(st, key, CONF_LIST, field), .count_off = offsetof(st, n##field)

/* What a transport reads from the file. Endpoint keys are all CONF_RELOAD
 * (a reload gives every endpoint a new transport); names must not repeat
 * the common endpoint keys, nor a section the broker's. */
struct conf_schema {
	const char *name;			/* "transport = NAME" */
	const struct conf_key *endpoint_keys;	/* keys of its [endpoint NAME] sections */
	size_t nendpoint_keys;
	size_t endpoint_size;			/* of the struct they fill (endpoint_conf.tconf) */
	const char *section;			/* its [section], or NULL; may be one of the
						 * broker's own ("broker"): its keys join them */
	const struct conf_key *section_keys;
	size_t nsection_keys;
	size_t section_size;			/* of the struct they fill (config_section()) */
	/* Keys every endpoint may have, whatever its transport: the credentials
	 * with which an endpoint reaches this transport's listener (a bearer
	 * token, a CURVE key), read by config_endpoint_common(). */
	const struct conf_key *common_keys;
	size_t ncommon_keys;
	size_t common_size;
};

/* ---- the configuration --------------------------------------------------- */

enum endpoint_kind { ENDPOINT_HOSPITAL, ENDPOINT_MUNICIPALITY, ENDPOINT_OTHER };

/* xsd = what is done with OIOXML an endpoint sends that does not validate
 * against its schema. */
enum xsd_mode { XSD_OFF, XSD_WARN, XSD_ENFORCE };

struct endpoint_conf {
	char *name;               /* from "[endpoint NAME]" */
	int line;                 /* line of the section header, for messages */
	enum endpoint_kind kind;  /* kind = hospital | municipality | other */
	char *transport;          /* transport = a schema's name; default: the first */
	const struct conf_schema *schema; /* that transport's */
	void *tconf;              /* its keys' struct (schema->endpoint_size bytes), or NULL */
	void **common;            /* common[i]: schemas[i]'s common keys' struct, or NULL */
	int *tlines;              /* the line that set each of its schema's keys (in the
				     schema's order); 0 = defaulted */
	char **gln;               /* gln = list of location numbers it owns */
	size_t ngln;
	char **may_send_for;      /* may_send_for = location numbers it may also send as
				     (a system that relays for others); it owns none of them */
	size_t nmay_send_for;
	char *contact;            /* contact = free text: person, phone, mail */
	int64_t delivery_timeout_ms; /* delivery_timeout: a delivery or probe still running
				       after this counts as failed (60s) */
	char **recipients;        /* recipients = the endpoint's own function mailbox(es) */
	size_t nrecipients;
	char *organisation;       /* organisation = display name in notices; default: name */
	char *fallback_contact;   /* fallback_contact = whom staff phone while messages to or
				     from it cannot go (e.g. the municipality's on-call line) */
	char *fallback_note;      /* fallback_note = what staff do meanwhile, one line */
	char **accepts;           /* accepts = the types it takes, "TYPE" or "TYPE:VERSION"
				     (as the codecs name them: XDIS20, XDIS20:XD2030C, DIS20,
				     hospital-notification-message:3.0); none = any */
	size_t naccepts;
	enum xsd_mode xsd;        /* xsd = off | warn | enforce: validate the OIOXML it sends */
};

struct config {
	char *path;                /* the file it was read from */

	/* [broker] */
	char *state_dir;           /* state_dir: SQLite database and internal files */
	char *control_socket;      /* control_socket: default <state_dir>/control.sock */
	bool control_socket_explicit; /* control_socket was written in the file (else the
				      daemon prefers $RUNTIME_DIRECTORY/control.sock) */
	char *broker_id;           /* id: the broker's network id in receipts (default EDIBROKER) */
	char *broker_gln;          /* gln: the broker's own location number, sender of its
				    * FHIR and wrapped receipts; NULL when unset */
	char *store_backend;       /* [store] backend: "sqlite" (default) or "postgresql";
				      [broker] store, its old place, is still read */
	char *store_backend_old;   /* [broker] store as written; NULL when unset */
	int64_t max_message_size;  /* max_message_size: bytes (default 16 MiB) */
	int64_t decode_timeout_ms; /* decode_timeout: a message that takes longer to decode
				      is quarantined as too expensive to parse (2s) */
	int64_t stop_timeout_ms;   /* stop_timeout: how long SIGTERM waits for work in flight
				      (20s; keep it below the unit's TimeoutStopSec) */
	int log_level;             /* log_level: err|warning|notice|info|debug -> syslog priority */
	char *xsd_dir;             /* xsd_dir: the OIOXML schemas, YYYY/MM/DD/EMessage.xsd
				      (default: the installed data/xsd/oioxml) */

	/* [delivery] */
	int64_t retry_initial_ms;  /* retry_initial (default 5s) */
	int64_t retry_max_ms;      /* retry_max (default 10m) */
	double drain_rate;         /* drain_rate: msg/s per endpoint after an outage; 0 = no limit */
	int64_t batch_max;         /* batch_max: messages per delivery batch (default 256) */
	int64_t max_queued_bytes;  /* max_queued_bytes: an endpoint's queue takes no more
				      beyond this (8G): senders get "busy, retry" */
	int64_t max_queued_total;  /* max_queued_total: the same for all queues (32G) */
	int64_t ack_timeout_ms;    /* ack_timeout: a delivered message that asks for an
				      acknowledgement is overdue without one after this (30m) */

	/* [routing] */
	char *default_endpoint;    /* default_endpoint: NULL when unset */

	/* [store] */
	int64_t retention_ms;      /* retention: bodies of delivered messages kept this long (7d) */
	int64_t history_ms;        /* history: delivered records and duplicate keys kept (90d) */
	int64_t store_max_size;    /* max_size: bytes the store may use; 0 = no cap (default) */
	int64_t dead_retention_ms; /* dead_retention: dead-letter bodies kept (30d); 0 = forever */
	char *store_url;           /* url: libpq URI or connection string (postgresql) */
	char *store_password_file; /* password_file: a private file with the password */
	char *store_password;      /* read from it; NULL = libpq's own (passfile, PGPASSWORD) */
	int64_t store_lease_ms;    /* lease: endpoint, inbox and procedure leases (15s) */
	char *store_node;          /* node: this daemon's name in the cluster (host name) */

	/* [quarantine] */
	int64_t quarantine_retention_ms; /* retention: quarantined files kept (30d); 0 = forever */

	/* [metrics] */
	char *metrics_listen;      /* listen: HOST:PORT of the /metrics listener; NULL = off */

	/* [control] */
	char *operator_group;      /* operator_group: may change state besides root and the
				      daemon's own user (edibroker-admin) */
	int64_t control_idle_timeout_ms; /* idle_timeout: a connection that neither sends nor
					    takes its answers is closed (60s) */
	int64_t control_max_connections; /* max_connections: more are refused (32) */

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
	char *smtp_password;           /* inline, or read from smtp_password_file */
	char *smtp_password_file;      /* a private file holding the password */
	char *smtp_starttls;           /* "no" | "try" | "yes"; NULL (unset): "yes" with
					  credentials, else "try" (notify.h) */
	char *smtp_ca_file;            /* CA certificates trusted for the mail server; NULL =
					  the host's store */
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
	char *webhook_token_file;      /* a private file holding the webhook's bearer token */
	char *webhook_token;           /* read from it; NULL = no Authorization header */
	char *webhook_ca_file;         /* CA certificates trusted for the webhook; NULL = host's */
	char *fallback_command;
	int64_t notify_retry_ms;       /* retry_initial: first retry of a failed send (30s, doubling) */
	int64_t fallback_after;        /* fallback_after: failed e-mail attempts before the fallback (3) */
	int64_t notify_timeout_ms;     /* timeout: per send, connection included (30s) */
	char *closed_days;             /* "12-24, 12-31, 06-05" */
	char *status_dir;              /* default <state_dir>/status */
	char *status_url;              /* the status page as readers reach it; linked from
					  every notice; NULL = no link */
	char *support_phone;           /* the regional EDI support's phone, named when an
					  endpoint has no fallback_contact */
	bool email_after_fallback;     /* e-mail retries go on after the fallback command
					  carried a notice (both reach people); default no */

	struct endpoint_conf *endpoints;
	size_t nendpoints;

	const struct conf_schema *const *schemas; /* as given to config_load() */
	void **sections;               /* sections[i]: schemas[i]'s [section] struct, or NULL */

	char **warnings;               /* "FILE:LINE: text" the loader has to say about a valid
					  file (a secret others can read); the caller logs them */
	size_t nwarnings;
};

/* Loads and validates path against the broker's keys and the NULL-terminated
 * schemas (at least one; they must outlive the config). Returns 0 with *out
 * set, or a negative errno with "path:line: reason" (or "path: reason") in
 * err. */
int config_load(const char *path, const struct conf_schema *const *schemas, struct config **out,
		char *err, size_t errlen);

/* config_load_opts() flags. */
enum {
	/* Opens no file a key names (secret files, CA files) and reads no
	 * secret: for a client that wants only, say, the control socket, and
	 * must not need the daemon's secrets to find it. */
	CONFIG_NO_FILES = 1 << 0,
};

/* config_load() with flags (CONFIG_*). */
int config_load_opts(const char *path, const struct conf_schema *const *schemas, unsigned flags,
		     struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The endpoint called name, or NULL. */
const struct endpoint_conf *config_endpoint(const struct config *cfg, const char *name);

/* The struct schema's [section] filled (defaults when the file has none),
 * or NULL when cfg was loaded without schema or it has no section. */
const void *config_section(const struct config *cfg, const struct conf_schema *schema);
/* The struct of schema's common keys for endpoint ep (all unset when the
 * file sets none), or NULL when schema declares none. */
const void *config_endpoint_common(const struct config *cfg, const struct endpoint_conf *ep,
				   const struct conf_schema *schema);

/* The line of the file that set key, a key of ep's transport, or the line of
 * ep's section header when the key took its default: where a later check of
 * the key's value (e.g. one that needs the system) points the operator. */
int config_endpoint_key_line(const struct endpoint_conf *ep, const char *key);

/* Calls fn(section, key, row, arg) for every key the daemon knows: the
 * broker's sections, then the keys every [endpoint NAME] has (section
 * "endpoint"), then each schema's endpoint keys ("endpoint") and [section]
 * keys. A key two transports share is passed once per transport. */
void config_walk_keys(const struct conf_schema *const *schemas,
		      void (*fn)(const char *section, const char *key, const struct conf_key *row,
				 void *arg),
		      void *arg);

/* Calls warn(key, arg) for every non-reloadable key, the schemas' sections
 * included, whose value differs between old and new (e.g.
 * "broker.state_dir"); returns how many differ. */
int config_nonreloadable_changes(const struct config *old, const struct config *new,
				 void (*warn)(const char *key, void *arg), void *arg);

/* Writes cfg as an INI file to f: every key of every section, defaults
 * included, one "key = value" per line ("# key (not set)" when unset).
 * Secrets show as "***", URLs that may carry credentials redacted, and a
 * command by its program's name (base/redact.h). 0, or -errno when f fails. */
int config_print(const struct config *cfg, FILE *f);

/* Parses a duration ("500ms", "90s", "15m", "2h", "7d"; a bare number is
 * seconds). Returns 0 with *ms set, or -EINVAL. */
int config_parse_duration(const char *s, int64_t *ms);

/* "hospital" / "municipality" / "other". */
const char *endpoint_kind_name(enum endpoint_kind kind);

#endif

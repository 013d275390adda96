/*
 * notify.h - the channels that carry outage notices: e-mail over SMTP
 * (libcurl; STARTTLS and authentication configurable), an HTTP webhook that
 * receives the notice as JSON, and a fallback command (e.g. an SMS gateway
 * script) for when e-mail keeps failing.
 *
 * Every send is blocking and bounded by a timeout: call these on a worker
 * thread, never on the event loop. They do not log; the caller records each
 * result with the notice. One e-mail per notice, with every recipient on
 * it.
 */
#ifndef EDIBROKER_NOTIFY_H
#define EDIBROKER_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct notify_config {
	const char *smtp_url;       /* smtp://host:port or smtps://...; NULL = no e-mail */
	const char *smtp_user;      /* NULL = no authentication (unless the URL has user-info) */
	const char *smtp_password;
	const char *smtp_starttls;  /* "no", "try" or "yes"; NULL = "yes" with credentials
				       (smtp_user or user-info in smtp_url), else "try" */
	const char *mail_from;
	const char *webhook_url;    /* NULL = no webhook */
	const char *fallback_command; /* NULL = no fallback; run with /bin/sh -c */
	long timeout_ms;            /* per send, connection included; <= 0 = 30 s */
	const char *webhook_token;  /* NULL = none; else "Authorization: Bearer <token>" */
	const char *smtp_ca_file;   /* NULL = the host's CA store; else only these CAs */
	const char *webhook_ca_file; /* the same for the webhook */
};

struct notify_message {
	const char *subject;        /* UTF-8, one line */
	const char *body;           /* UTF-8 plain text */
	const char *payload;        /* JSON object (webhook body, fallback stdin) */
	const char *const *recipients;
	size_t nrecipients;
	int64_t date;               /* wall ms for the Date header; 0 = now */
	const char *message_id;     /* unique token for the Message-ID header; NULL = random */
};

struct notify_result {
	bool ok;
	bool denied;                /* the server refused the credentials (SMTP 535): a
				       configuration error, not worth a retry */
	long code;                  /* the server's last reply code (SMTP, HTTP); 0 = none */
	char error[256];            /* one line; "" when ok; never a secret of the config */
};

/* Once, before any thread starts (curl_global_init). */
void notify_global_init(void);
void notify_global_cleanup(void);

/* Sends one mail to every recipient. 0 or -1 (result says why; denied
 * when the server refused the credentials). TLS is verified always, against
 * smtp_ca_file when set. */
int notify_email(const struct notify_config *cfg, const struct notify_message *m,
		 struct notify_result *res);
/* POSTs the payload as application/json, with the bearer token when set;
 * any 2xx is success. TLS is verified always, against webhook_ca_file when
 * set. */
int notify_webhook(const struct notify_config *cfg, const struct notify_message *m,
		   struct notify_result *res);
/* Runs the fallback command with the payload on stdin and NOTICE_SUBJECT /
 * NOTICE_RECIPIENTS (comma-separated) / NOTICE_MESSAGE_ID in its
 * environment (the body only in the payload: it can be long), which is the
 * daemon's without NOTIFY_SOCKET, WATCHDOG_* and LISTEN_*; exit status 0
 * is success. At the timeout its whole process group is killed. */
int notify_fallback(const struct notify_config *cfg, const struct notify_message *m,
		    struct notify_result *res);

#endif

/*
 * redact.h - what of a configured URL or command may be shown: in a log
 * line, in STATUS=, in a stored send record, in an error message, in
 * edibrokerctl's output. Secrets never are.
 *
 * Every user of a URL that can carry credentials (smtp_url, webhook_url)
 * or of the fallback command shows it through here, so there is one rule
 * for what is secret: a URL's user-info, query and fragment, and a
 * command's arguments.
 */
#ifndef EDIBROKER_REDACT_H
#define EDIBROKER_REDACT_H

#include <stddef.h>

/* Shown URLs and commands fit in this. */
#define REDACT_MAX 256

/* url as "scheme://host:port/path" with user-info shown as "***@", a query
 * as "?***" and a fragment as "#***", parsed as RFC 3986 (and libcurl) do:
 * the authority ends at the first '/', '?' or '#', user-info at the last
 * '@' in it. Text that is not "scheme://..." shows as "***". Writes at most
 * outsz bytes, always terminated; returns out. */
const char *redact_url(const char *url, char *out, size_t outsz);

/* The program a shell command runs, by name only: the base name of its
 * first word that is not a NAME=VALUE assignment, quotes removed
 * ("/opt/sms/send.sh --key K" -> "send.sh"); "***" when there is none.
 * Returns out. */
const char *redact_command(const char *cmd, char *out, size_t outsz);

/* Replaces every occurrence of secret (when it is not empty) in the string
 * in buf (size bytes) with "***", in place; the result is cut to fit. */
void redact_scrub(char *buf, size_t size, const char *secret);

/* redact_scrub() for the secret parts of url (as redact_url() splits it):
 * its user-info, query and fragment, wherever they occur in buf. */
void redact_scrub_url(char *buf, size_t size, const char *url);

#endif

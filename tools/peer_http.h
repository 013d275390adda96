/*
 * peer_http.h - a client of the broker's HTTP(S) listener (docs/http.md),
 * for `edibroker-peer send --http`: one message file, one POST.
 */
#ifndef EDIBROKER_PEER_HTTP_H
#define EDIBROKER_PEER_HTTP_H

#include <stddef.h>

/* POSTs the message in the file at path to the broker at url (its base,
 * "https://broker:8443", or the whole ".../v1/messages") with the bearer
 * token (NULL: none, e.g. a client certificate alone), TLS verified
 * against ca_file (NULL: the host's store) and, when cert and key are
 * given, that client certificate; at most timeout_ms in all (0: 30 s).
 * Returns 0 when the broker accepted it (202), with "id N" in err;
 * otherwise the reason in err (the status and the problem's type, title
 * and detail; or why no answer came) and -EAGAIN for an answer that says
 * try again later (503, its Retry-After in err), -EACCES for 401 and 403,
 * -EINVAL for another refusal, -EIO when no answer came, or -errno when
 * the file cannot be read. Blocking; never follows a redirect. */
int peer_http_send(const char *url, const char *token, const char *ca_file, const char *cert,
		   const char *key, const char *path, long timeout_ms, char *err, size_t errlen);

#endif

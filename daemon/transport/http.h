/*
 * http.h - the HTTP(S) transport: peers submit over the broker's HTTP(S)
 * listener, and the broker delivers to an endpoint's URL.
 *
 * Inbound (http_in.c): one listener for every endpoint (the transport's
 * shared part), POST /v1/messages. Who calls is told by the credential
 * alone - a bearer token (token, token_file) or a TLS client certificate
 * (peer_cert_sha256) - each bound to one endpoint; any endpoint, whatever
 * its own transport, may submit over HTTP when it holds one. Every request
 * is checked against the credentials of the running configuration, so a
 * token removed by a reload is refused on connections already open.
 *
 * Outbound (http_out.c): each message of a batch is POSTed to the
 * endpoint's url, in order, on a kept-alive connection, by libcurl's multi
 * interface driven by the event loop. The answer decides (http_classify).
 *
 * The pure parts (http_proto.c: answers, problem documents, credentials,
 * the reading of a receiver's answer) are exported for the unit tests.
 * Internal to the HTTP transport; the broker sees `http_transport`.
 */
#ifndef EDIBROKER_HTTP_H
#define EDIBROKER_HTTP_H

#include "accept/ingest.h"
#include "base/fault.h"
#include "codecs/base/sha256.h"
#include "transport/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern const struct transport_ops http_transport;

/* What an [endpoint NAME] with transport = http sets. */
struct http_conf {
	char *url;         /* url: where the broker POSTs (http:// or https://) */
	char *ca_file;     /* ca_file: trust only these CAs for url; NULL = the host's */
	char *client_cert; /* client_cert: the certificate the broker presents to url */
	char *client_key;  /* client_key: its private key (a file others cannot read) */
};

/* The listener's keys, in [broker]. */
struct http_section {
	char *listen;             /* http_listen: "HOST:PORT"; NULL = no listener */
	char *tls_cert;           /* tls_cert: HTTPS when set (a PEM chain) */
	char *tls_key;            /* tls_key: its private key */
	char *tls_client_ca;      /* tls_client_ca: client certificates required, signed by these */
	int64_t max_connections;  /* http_max_connections: more wait in the kernel's backlog */
	int64_t idle_timeout_ms;  /* http_idle_timeout: a connection without a request is closed */
	int64_t request_timeout_ms; /* http_request_timeout: a request must arrive whole within this
				       of its first byte */
};

/* The ingress credentials every endpoint may have. */
struct http_common {
	char *token_file;         /* token_file: a private file holding its token; first,
				     as the loader takes offset 0 for "no secret field" */
	char *token;              /* token: the bearer token it presents (a secret) */
	char **peer_cert_sha256;  /* peer_cert_sha256: fingerprints of the client certificates
				     it presents (SHA-256 of the DER, hex) */
	size_t npeer_cert_sha256;
};

/* ---- http_proto.c: what the listener answers ------------------------------ */

#define HTTP_PROBLEM_BASE "urn:edibroker:problem:"
#define HTTP_TOKEN_MIN 16 /* characters a bearer token has at least */

/* The answer to a submission or a refused request. */
struct http_answer {
	int status;          /* 202, 400, 401, ... */
	const char *problem; /* the problem type's last part ("syntax", "busy"); NULL for 202 */
	const char *title;   /* the problem's title: the same for every answer of its type */
	int retry_after_s;   /* 503: Retry-After seconds; 0 = none */
	bool with_id;        /* the body names the message id (202, and 422 undeliverable) */
};

/* Refusals the listener makes before a message reaches ingest. */
enum http_refusal {
	HTTP_REFUSE_NOT_FOUND,        /* 404: a path other than /v1/messages */
	HTTP_REFUSE_METHOD,           /* 405: not POST (Allow: POST) */
	HTTP_REFUSE_NO_CREDENTIAL,    /* 401: no bearer token and no bound certificate */
	HTTP_REFUSE_BAD_TOKEN,        /* 401: a token no endpoint has, or not a Bearer one */
	HTTP_REFUSE_CERT_NOT_BOUND,   /* 401: a certificate no endpoint is bound to */
	HTTP_REFUSE_CREDENTIAL_MISMATCH, /* 403: token and certificate of different endpoints */
	HTTP_REFUSE_MEDIA_TYPE,       /* 415: not one of the four content types */
	HTTP_REFUSE_EMPTY,            /* 400: no body */
	HTTP_REFUSE_STOPPING,         /* 503: the broker is shutting down */
};

/* The answer for an ingest outcome. */
void http_answer_outcome(const struct ingest_outcome *o, struct http_answer *a);
/* The answer for a refusal of the listener's own. */
void http_answer_refusal(enum http_refusal r, struct http_answer *a);
/* The response body: {"id": N} for a 202, else an RFC 9457
 * problem document (type, title, status, detail, and "id" for a dead
 * letter). detail may be NULL. Caller frees. */
char *http_answer_body(const struct http_answer *a, const char *detail, int64_t id);

/* True when the Content-Type value names one of the media types the
 * listener takes (application/xml, application/edifact,
 * application/fhir+xml, application/fhir+json; parameters ignored, case
 * insensitive). */
bool http_media_type_ok(const char *content_type);

/* The media type to POST a body with: by its format (codec_sniff), else by
 * the file extension ext, else application/octet-stream. */
const char *http_media_type_of(const uint8_t *body, size_t size, const char *ext);

/* ---- http_proto.c: credentials -------------------------------------------- */

/* Equality of a[0..n) and b[0..n) in a time that depends on n only. */
bool http_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* The token of "Authorization: Bearer TOKEN" into *token (pointing into
 * value): 0; -ENOENT when value is NULL; -EINVAL when it is not a Bearer
 * credential of token68 characters. */
int http_bearer(const char *value, const char **token, size_t *len);

/* A fingerprint written as 64 hex digits, with or without ':' between
 * pairs, into out: 0 or -EINVAL. */
int http_parse_sha256(const char *text, uint8_t out[SHA256_LEN]);

/* Which endpoint a credential is bound to: built from a config, immutable,
 * owned by the listener. */
struct http_creds;

/* The credentials of every endpoint of cfg (token, token_file,
 * peer_cert_sha256 under schema's common keys); NULL with a reason when a
 * token is shorter than HTTP_TOKEN_MIN or not token68, or a token or
 * fingerprint is given to two endpoints. */
struct http_creds *http_creds_new(const struct config *cfg, const struct conf_schema *schema,
				  char *err, size_t errlen);
void http_creds_free(struct http_creds *c);
/* How many endpoints have a token / a certificate. */
size_t http_creds_ntokens(const struct http_creds *c);
size_t http_creds_ncerts(const struct http_creds *c);
/* The first endpoint with a token, or NULL (for messages). */
const char *http_creds_token_owner(const struct http_creds *c);
/* The endpoint whose token is token[0..len), or NULL. Every token is
 * compared, in constant time, whichever matches. */
const char *http_creds_by_token(const struct http_creds *c, const char *token, size_t len);
/* The endpoint bound to the certificate with this fingerprint, or NULL. */
const char *http_creds_by_cert(const struct http_creds *c, const uint8_t fp[SHA256_LEN]);

/* ---- http_proto.c: the receiver's answer ---------------------------------- */

enum http_verdict {
	HTTP_DELIVERED, /* 2xx */
	HTTP_REJECTED,  /* 400, 413, 415, 422: this message will never be taken: set aside */
	HTTP_FAILED,    /* anything else: the endpoint failed; back off and retry */
};

struct http_class {
	enum http_verdict verdict;
	enum transport_fault fault; /* FAULT_NONE when delivered */
	const char *why;            /* words for the error line; "" when delivered */
};

/* What an HTTP status from a receiver means for the message POSTed. */
struct http_class http_classify(long status);
/* ... and for a probe (HEAD url): any answer below 500 means up. */
struct http_class http_classify_probe(long status);
/* The fault of a transfer that got no answer (a CURLcode). */
enum transport_fault http_curl_fault(int curlcode);

/* "HOST:PORT" or "[HOST]:PORT", HOST a numeric IPv4 or IPv6 address, PORT
 * 0..65535: 0 with host (without brackets) and port filled, else -EINVAL. */
int http_parse_listen(const char *v, char *host, size_t hostlen, uint16_t *port);
/* True when the numeric address host is a loopback one (127/8, ::1). */
bool http_host_loopback(const char *host);

/* ---- http_in.c: the listener (the transport's shared part) ---------------- */

void *http_in_new(const struct config *cfg, const struct transport_shared_env *env, char *err,
		  size_t errlen);
int http_in_reload(void *shared, const struct config *cfg, char *err, size_t errlen);
void http_in_stop(void *shared);
void http_in_free(void *shared);
/* What the config asks of the listener that its syntax cannot say (TLS
 * files that go together, tokens not in clear over a network): 0, or
 * -EINVAL and why. */
int http_in_validate(const struct config *cfg, char *err, size_t errlen);

/* ---- http_out.c: delivery to the endpoint's url ---------------------------- */

struct http_out;

struct http_out *http_out_new(const struct endpoint_conf *ep, const struct transport_env *env,
			      char *err, size_t errlen);
void http_out_free(struct http_out *o);
void http_out_deliver(struct http_out *o, const struct out_msg *msgs, size_t n,
		      transport_done_fn done, void *arg);
void http_out_probe(struct http_out *o, transport_done_fn done, void *arg);
void http_out_cancel(struct http_out *o);

/* http.c */
const struct conf_schema *http_schema(void);

#endif

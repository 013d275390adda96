/*
 * http_proto.c - the HTTP transport's rules, without sockets: what the
 * listener answers for each outcome (status, problem type, Retry-After),
 * the bodies it answers with (RFC 9457 problem documents), the credentials
 * table and how a token is looked up in it, and what a receiver's answer
 * means for a delivery.
 *
 * Problem types are URNs under urn:edibroker:problem: - a client compares
 * the type, never the title or detail. They are part of the protocol
 * (docs/http.md): a name, once given, is never reused for something else.
 * A detail is the decoder's or ingest's one line, which names elements and
 * location numbers but never message content.
 *
 * Tokens are kept as SHA-256 digests and a presented token is hashed and
 * compared with every endpoint's digest in constant time, so neither the
 * time of a refusal nor of an acceptance tells how much of a token was
 * right, or whose it was.
 */
#include "transport/http.h"

#include "codecs/base/mem.h"
#include "codecs/codec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_BUSY_S 30     /* a full queue drains at the receiver's pace */
#define RETRY_TEMPFAIL_S 10 /* the store cannot commit (disk full): an operator acts */
#define RETRY_STOPPING_S 5  /* a restart takes seconds */

/* ---- answers -------------------------------------------------------------- */

/* The answer to a message the decoder refused, by its error class: what
 * cannot be read is 400, what is read but is no valid MedCom message 422. */
static const struct {
	int status;
	const char *problem, *title;
} codec_answers[] = {
	[CODEC_OK] = { 400, "syntax", "The message could not be read" },
	[CODEC_ETOOBIG] = { 413, "too-large", "The message is larger than the broker takes" },
	[CODEC_EENCODING] = { 400, "encoding", "The message is wrongly encoded" },
	[CODEC_ESYNTAX] = { 400, "syntax", "The message is not well-formed" },
	[CODEC_EHOSTILE] = { 400, "hostile", "The message declares a DTD or entities" },
	[CODEC_EDEPTH] = { 400, "depth", "The message nests too deep" },
	[CODEC_ESTRUCTURE] = { 422, "structure", "The message is not a MedCom message" },
	[CODEC_EFIELD] = { 422, "field", "A required field is missing, empty or too long" },
	[CODEC_ETYPE] = { 422, "type", "Unknown letter type" },
	[CODEC_EVERSION] = { 422, "version", "The version does not belong to the letter type" },
	[CODEC_EADDRESS] = { 422, "address", "The wrapping and its letters name different "
					     "receivers" },
	[CODEC_EEXPENSIVE] = { 400, "too-expensive", "The message is too expensive to read" },
	[CODEC_ESCHEMA] = { 422, "schema", "The message is invalid against its XML Schema" },
};
_Static_assert(ARRAY_SIZE(codec_answers) == CODEC_ERRCODE_LAST + 1, "an answer per error class");

void http_answer_outcome(const struct ingest_outcome *o, struct http_answer *a)
{
	*a = (struct http_answer){ 0 };
	switch (o->result) {
	case INGEST_ACCEPTED:
	case INGEST_DUPLICATE:
		*a = (struct http_answer){ 202, NULL, NULL, 0, true };
		return;
	case INGEST_DEAD:
		*a = (struct http_answer){ 422, "undeliverable",
					   "The message was kept as a dead letter: it cannot be "
					   "delivered as it is", 0, true };
		return;
	case INGEST_REJECTED: {
		size_t c = o->error ? (size_t)o->error->code : 0;
		if (c >= ARRAY_SIZE(codec_answers))
			c = CODEC_OK;
		*a = (struct http_answer){ codec_answers[c].status, codec_answers[c].problem,
					   codec_answers[c].title, 0, false };
		return;
	}
	case INGEST_FORBIDDEN:
		*a = (struct http_answer){ 403, "sender-not-owned",
					   "The message names a sender this endpoint may not "
					   "send as", 0, false };
		return;
	case INGEST_BUSY:
		*a = (struct http_answer){ 503, "busy", "The receiver's queue is full",
					   RETRY_BUSY_S, false };
		return;
	case INGEST_TEMPFAIL:
		*a = (struct http_answer){ 503, "store-unavailable",
					   "The broker cannot store messages now", RETRY_TEMPFAIL_S,
					   false };
		return;
	}
	*a = (struct http_answer){ 503, "store-unavailable", "The broker cannot store messages now",
				   RETRY_TEMPFAIL_S, false };
}

void http_answer_refusal(enum http_refusal r, struct http_answer *a)
{
	static const struct http_answer answers[] = {
		[HTTP_REFUSE_NOT_FOUND] = { 404, "not-found", "No such resource: messages go to "
							      "POST /v1/messages", 0, false },
		[HTTP_REFUSE_METHOD] = { 405, "method-not-allowed", "Only POST is allowed here", 0,
					 false },
		[HTTP_REFUSE_NO_CREDENTIAL] = { 401, "unauthorized",
						"A bearer token or a client certificate bound to "
						"an endpoint is required", 0, false },
		[HTTP_REFUSE_BAD_TOKEN] = { 401, "invalid-token",
					    "The bearer token is not one the broker knows", 0,
					    false },
		[HTTP_REFUSE_CERT_NOT_BOUND] = { 401, "certificate-not-bound",
						 "The client certificate is not bound to an "
						 "endpoint", 0, false },
		[HTTP_REFUSE_CREDENTIAL_MISMATCH] = { 403, "credential-mismatch",
						      "The bearer token and the client "
						      "certificate belong to different endpoints",
						      0, false },
		[HTTP_REFUSE_MEDIA_TYPE] = { 415, "unsupported-media-type",
					     "Content-Type must be application/xml, "
					     "application/edifact, application/fhir+xml or "
					     "application/fhir+json", 0, false },
		[HTTP_REFUSE_EMPTY] = { 400, "empty", "The request has no body", 0, false },
		[HTTP_REFUSE_STOPPING] = { 503, "stopping", "The broker is shutting down",
					   RETRY_STOPPING_S, false },
	};
	*a = answers[(size_t)r < ARRAY_SIZE(answers) ? r : HTTP_REFUSE_NOT_FOUND];
}

/* jansson's out of memory is ours: abort, as xmalloc does. */
static void set_new(json_t *o, const char *key, json_t *v)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		abort();
}

char *http_answer_body(const struct http_answer *a, const char *detail, int64_t id)
{
	json_t *o = json_object();
	if (!o)
		abort();
	if (!a->problem) {
		set_new(o, "id", json_integer(id));
	} else {
		_cleanup_free_ char *type = xasprintf(HTTP_PROBLEM_BASE "%s", a->problem);
		set_new(o, "type", json_string(type));
		set_new(o, "title", json_string(a->title));
		set_new(o, "status", json_integer(a->status));
		/* a detail that is not UTF-8 would make the document invalid:
		 * json_string() refuses it, and it is left out */
		json_t *d = str_empty(detail) ? NULL : json_string(detail);
		if (d)
			set_new(o, "detail", d);
		if (a->with_id)
			set_new(o, "id", json_integer(id));
		if (a->retry_after_s > 0)
			set_new(o, "retry_after", json_integer(a->retry_after_s));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		abort();
	return s;
}

/* ---- media types ---------------------------------------------------------- */

static const char *const media_types[] = { "application/xml", "application/edifact",
					   "application/fhir+xml", "application/fhir+json" };

bool http_media_type_ok(const char *v)
{
	if (!v)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strcspn(v, ";");
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < ARRAY_SIZE(media_types); i++)
		if (strlen(media_types[i]) == n && strncasecmp(v, media_types[i], n) == 0)
			return true;
	return false;
}

const char *http_media_type_of(const uint8_t *body, size_t size, const char *ext)
{
	const struct codec *c = codec_sniff(body, size);
	const char *name = c ? c->name : "";
	if (strcmp(name, "edifact") == 0)
		return "application/edifact";
	if (strcmp(name, "fhir-xml") == 0)
		return "application/fhir+xml";
	if (strcmp(name, "fhir-json") == 0)
		return "application/fhir+json";
	if (c || (ext && strcmp(ext, "xml") == 0))
		return "application/xml";
	if (ext && strcmp(ext, "edi") == 0)
		return "application/edifact";
	if (ext && strcmp(ext, "json") == 0)
		return "application/fhir+json";
	return "application/octet-stream";
}

/* ---- credentials ---------------------------------------------------------- */

bool http_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
 * / "/" ) *"=" */
static bool token68(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (isalnum((unsigned char)s[i]) || strchr("-._~+/", s[i])))
		i++;
	size_t body = i;
	while (i < n && s[i] == '=')
		i++;
	return body > 0 && i == n;
}

int http_bearer(const char *value, const char **token, size_t *len)
{
	if (!value)
		return -ENOENT;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
		return -EINVAL;
	const char *t = value + 6;
	while (*t == ' ' || *t == '\t')
		t++;
	size_t n = strcspn(t, " \t");
	size_t tail = strspn(t + n, " \t");
	if (t[n + tail] != '\0' || !token68(t, n))
		return -EINVAL;
	*token = t;
	*len = n;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_parse_sha256(const char *text, uint8_t out[SHA256_LEN])
{
	uint8_t fp[SHA256_LEN];
	const char *p = text;
	bool colons = strchr(text, ':') != NULL;
	for (size_t i = 0; i < SHA256_LEN; i++) {
		if (colons && i > 0 && *p++ != ':')
			return -EINVAL;
		int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		fp[i] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	if (*p != '\0')
		return -EINVAL;
	memcpy(out, fp, sizeof(fp));
	return 0;
}

struct cred {
	uint8_t digest[SHA256_LEN]; /* of the token, or the certificate's fingerprint */
	char *endpoint;
};

struct http_creds {
	struct cred *tokens, *certs;
	size_t ntokens, ncerts;
};

static void add_cred(struct cred **v, size_t *n, const uint8_t d[SHA256_LEN], const char *ep)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	memcpy((*v)[*n].digest, d, SHA256_LEN);
	(*v)[*n].endpoint = xstrdup(ep);
	(*n)++;
}

/* The endpoint already holding digest d, or NULL. */
static const char *holder(const struct cred *v, size_t n, const uint8_t d[SHA256_LEN])
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(v[i].digest, d, SHA256_LEN) == 0)
			return v[i].endpoint;
	return NULL;
}

static int add_token(struct http_creds *c, const struct endpoint_conf *ep, const char *token,
		     const struct config *cfg, char *err, size_t errlen)
{
	size_t n = strlen(token);
	int line = config_endpoint_key_line(ep, "token");
	if (n < HTTP_TOKEN_MIN || !token68(token, n)) {
		snprintf(err, errlen, "%s:%d: endpoint '%s': token: a bearer token has at least "
			 "%d characters, letters, digits and -._~+/ only (openssl rand -base64 32)",
			 cfg->path, line, ep->name, HTTP_TOKEN_MIN);
		return -EINVAL;
	}
	uint8_t d[SHA256_LEN];
	sha256(token, n, d);
	const char *other = holder(c->tokens, c->ntokens, d);
	if (other) {
		snprintf(err, errlen, "%s:%d: endpoint '%s': token: endpoint '%s' has the same "
			 "token; each endpoint needs its own", cfg->path, line, ep->name, other);
		return -EINVAL;
	}
	add_cred(&c->tokens, &c->ntokens, d, ep->name);
	return 0;
}

static int add_certs(struct http_creds *c, const struct endpoint_conf *ep,
		     const struct http_common *hc, const struct config *cfg, char *err,
		     size_t errlen)
{
	for (size_t i = 0; i < hc->npeer_cert_sha256; i++) {
		uint8_t d[SHA256_LEN];
		if (http_parse_sha256(hc->peer_cert_sha256[i], d) < 0)
			continue; /* the key's check refused it when the file was read */
		const char *other = holder(c->certs, c->ncerts, d);
		if (other && strcmp(other, ep->name) == 0)
			continue;
		if (other) {
			snprintf(err, errlen, "%s:%d: endpoint '%s': peer_cert_sha256: %s is bound "
				 "to endpoint '%s' too; a certificate speaks for one endpoint",
				 cfg->path, config_endpoint_key_line(ep, "peer_cert_sha256"),
				 ep->name, hc->peer_cert_sha256[i], other);
			return -EINVAL;
		}
		add_cred(&c->certs, &c->ncerts, d, ep->name);
	}
	return 0;
}

struct http_creds *http_creds_new(const struct config *cfg, const struct conf_schema *schema,
				  char *err, size_t errlen)
{
	struct http_creds *c = xcalloc(1, sizeof(*c));
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		const struct http_common *hc = config_endpoint_common(cfg, ep, schema);
		if (!hc)
			continue;
		if ((hc->token && add_token(c, ep, hc->token, cfg, err, errlen) < 0) ||
		    add_certs(c, ep, hc, cfg, err, errlen) < 0) {
			http_creds_free(c);
			return NULL;
		}
	}
	return c;
}

static void free_creds(struct cred *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].endpoint);
	free(v);
}

void http_creds_free(struct http_creds *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ntokens; i++)
		explicit_bzero(c->tokens[i].digest, SHA256_LEN);
	free_creds(c->tokens, c->ntokens);
	free_creds(c->certs, c->ncerts);
	free(c);
}

size_t http_creds_ntokens(const struct http_creds *c)
{
	return c ? c->ntokens : 0;
}

size_t http_creds_ncerts(const struct http_creds *c)
{
	return c ? c->ncerts : 0;
}

const char *http_creds_token_owner(const struct http_creds *c)
{
	return c && c->ntokens ? c->tokens[0].endpoint : NULL;
}

const char *http_creds_by_token(const struct http_creds *c, const char *token, size_t len)
{
	uint8_t d[SHA256_LEN];
	const char *found = NULL;
	sha256(token, len, d);
	for (size_t i = 0; c && i < c->ntokens; i++) {
		bool eq = http_ct_equal(c->tokens[i].digest, d, SHA256_LEN);
		found = eq ? c->tokens[i].endpoint : found; /* no early exit */
	}
	explicit_bzero(d, sizeof(d));
	return found;
}

const char *http_creds_by_cert(const struct http_creds *c, const uint8_t fp[SHA256_LEN])
{
	for (size_t i = 0; c && i < c->ncerts; i++)
		if (memcmp(c->certs[i].digest, fp, SHA256_LEN) == 0)
			return c->certs[i].endpoint;
	return NULL;
}

/* ---- the receiver's answer ------------------------------------------------ */

struct http_class http_classify(long status)
{
	if (status >= 200 && status <= 299)
		return (struct http_class){ HTTP_DELIVERED, FAULT_NONE, "" };
	switch (status) {
	case 400: case 413: case 415: case 422:
		return (struct http_class){ HTTP_REJECTED, FAULT_REJECTED,
					    "the receiver refuses this message" };
	case 401: case 403:
		return (struct http_class){ HTTP_FAILED, FAULT_REFUSED,
					    "the receiver refuses the broker's credentials "
					    "(a configuration fault)" };
	case 404: case 405:
		return (struct http_class){ HTTP_FAILED, FAULT_REFUSED,
					    "the url takes no messages (a configuration fault)" };
	case 408: case 504:
		return (struct http_class){ HTTP_FAILED, FAULT_TIMEOUT, "the receiver timed out" };
	case 429:
		return (struct http_class){ HTTP_FAILED, FAULT_REFUSED,
					    "the receiver asks for fewer requests" };
	}
	if (status >= 300 && status <= 399)
		return (struct http_class){ HTTP_FAILED, FAULT_REFUSED,
					    "a redirect, not followed (fix url)" };
	if (status >= 500 && status <= 599)
		return (struct http_class){ HTTP_FAILED, FAULT_IO, "the receiver failed" };
	if (status >= 400 && status <= 499)
		return (struct http_class){ HTTP_FAILED, FAULT_REFUSED,
					    "the receiver refuses the request" };
	return (struct http_class){ HTTP_FAILED, FAULT_IO, "not an HTTP answer the broker knows" };
}

struct http_class http_classify_probe(long status)
{
	if (status >= 100 && status <= 499)
		return (struct http_class){ HTTP_DELIVERED, FAULT_NONE, "" };
	return http_classify(status);
}

enum transport_fault http_curl_fault(int curlcode)
{
	switch ((CURLcode)curlcode) {
	case CURLE_OK:
		return FAULT_NONE;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return FAULT_REFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return FAULT_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return FAULT_TLS;
	default:
		return FAULT_IO;
	}
}

/* ---- the listener's address ------------------------------------------------ */

int http_parse_listen(const char *v, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = v;
	size_t hl;
	if (v[0] == '[') {
		const char *end = strchr(v, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = v + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon || memchr(v, ':', (size_t)(colon - v)))
			return -EINVAL; /* an IPv6 address needs its brackets */
		hl = (size_t)(colon - v);
	}
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	if (hl == 0 || hl >= sizeof(buf) || hl >= hostlen)
		return -EINVAL;
	memcpy(buf, h, hl);
	buf[hl] = '\0';
	int family = v[0] == '[' ? AF_INET6 : AF_INET;
	if (inet_pton(family, buf, addr) != 1)
		return -EINVAL;
	const char *p = colon + 1;
	if (!isdigit((unsigned char)*p) || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	long n = strtol(p, NULL, 10);
	if (n > 65535)
		return -EINVAL;
	memcpy(host, buf, hl + 1);
	*port = (uint16_t)n;
	return 0;
}

bool http_host_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&a6))
			return a6.s6_addr[12] == 127;
	}
	return false;
}

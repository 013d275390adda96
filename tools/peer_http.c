/*
 * peer_http.c - one message file POSTed to the broker's listener, the way
 * docs/http.md tells any client to: POST /v1/messages, the media type of
 * the message's format, "Authorization: Bearer TOKEN", and the answer read
 * as 202 {"id": N} or an RFC 9457 problem document.
 *
 * libcurl's easy interface: this is a client tool, it may block. TLS is
 * always verified; redirects are never followed (a redirected POST would
 * carry the message somewhere nobody chose). The token goes only into the
 * request's header, never into err; a url's user-info and query are
 * redacted there (base/redact.h).
 */
#include "tools/peer_http.h"

#include "base/redact.h"
#include "codecs/base/mem.h"
#include "transport/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (256L * 1024 * 1024)
#define ANSWER_MAX (64 * 1024)
#define TIMEOUT_DEFAULT_MS 30000L

struct answer {
	char buf[ANSWER_MAX + 1];
	size_t len;
};

__attribute__((format(printf, 3, 4))) static void say(char *err, size_t errlen,
						       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static size_t keep(char *data, size_t size, size_t nmemb, void *userp)
{
	struct answer *a = userp;
	size_t n = size * nmemb, room = ANSWER_MAX - a->len;
	memcpy(a->buf + a->len, data, n < room ? n : room);
	a->len += n < room ? n : room;
	a->buf[a->len] = '\0';
	return n;
}

/* The whole file at path (at most FILE_MAX bytes). */
static int read_message(const char *path, uint8_t **out, size_t *len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size > FILE_MAX)
		return -EFBIG;
	uint8_t *buf = xmalloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;
			free(buf);
			return -e;
		}
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* url, with "/v1/messages" unless it ends so already. */
static char *messages_url(const char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	const char *tail = "/v1/messages";
	if (n >= strlen(tail) && strncmp(url + n - strlen(tail), tail, strlen(tail)) == 0)
		return xasprintf("%.*s", (int)n, url);
	return xasprintf("%.*s%s", (int)n, url, tail);
}

static const char *field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* What the broker answered, as the caller's result. */
static int read_answer(long status, const struct answer *a, const char *retry_after,
		       char *err, size_t errlen)
{
	json_t *o = json_loads(a->buf, 0, NULL);
	if (status == 202 && json_is_integer(json_object_get(o, "id"))) {
		say(err, errlen, "id %lld", (long long)json_integer_value(json_object_get(o, "id")));
		json_decref(o);
		return 0;
	}
	if (json_is_object(o) && json_object_get(o, "type"))
		say(err, errlen, "HTTP %ld %s: %s%s%s%s%s", status, field(o, "type"),
		     field(o, "title"), *field(o, "detail") ? ": " : "", field(o, "detail"),
		     retry_after ? "; retry after " : "", retry_after ? retry_after : "");
	else
		say(err, errlen, "HTTP %ld%s%s", status, retry_after ? "; retry after " : "",
		     retry_after ? retry_after : "");
	json_decref(o);
	if (status == 503 || status == 429)
		return -EAGAIN;
	if (status == 401 || status == 403)
		return -EACCES;
	return -EINVAL;
}

/* The request's headers hold the token: wiped before they are freed. */
static void slist_wipe_freep(struct curl_slist **l)
{
	for (struct curl_slist *i = *l; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(*l);
}

static struct curl_slist *add(struct curl_slist *l, const char *h)
{
	struct curl_slist *n = curl_slist_append(l, h);
	if (!n)
		abort();
	return n;
}

/* The Retry-After header's value, kept by the header callback. */
static size_t header(char *data, size_t size, size_t nmemb, void *userp)
{
	char *retry = userp;
	size_t n = size * nmemb;
	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		size_t k = 12;
		while (k < n && (data[k] == ' ' || data[k] == '\t'))
			k++;
		size_t m = 0;
		while (k < n && data[k] != '\r' && data[k] != '\n' && m < 63)
			retry[m++] = data[k++];
		retry[m] = '\0';
	}
	return n;
}

/* One POST and what came back. */
struct request {
	const char *target;
	const uint8_t *body;
	size_t len;
	struct curl_slist *headers;
	const char *ca_file, *cert, *key;
	long timeout_ms;
	struct answer *answer;
	char retry[64];                /* Retry-After, when sent */
	char cerr[CURL_ERROR_SIZE];    /* libcurl's reason, when no answer came */
};

/* Always verified TLS, never a redirect, bounded in time. */
static void set_options(CURL *c, struct request *q)
{
	curl_easy_setopt(c, CURLOPT_URL, q->target);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (q->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAINFO, q->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	if (q->cert && q->key) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, q->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, q->key);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, q->headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)q->body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, q->answer);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)q->retry);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, q->cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "edibroker-peer");
}

/* Performs q: the status, or 0 when no answer came (q->cerr says why). */
static long perform(struct request *q, CURLcode *rc)
{
	long status = 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		abort(); /* out of memory */
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	set_options(c, q);
	*rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return status;
}

int peer_http_send(const char *url, const char *token, const char *ca_file, const char *cert,
		   const char *key, const char *path, long timeout_ms, char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *body = NULL;
	size_t len = 0;
	int r = read_message(path, &body, &len);
	if (r < 0) {
		say(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	const char *dot = strrchr(path, '.');
	_cleanup_free_ char *target = messages_url(url);
	_cleanup_free_ char *type = xasprintf("Content-Type: %s",
					      http_media_type_of(body, len, dot ? dot + 1 : NULL));
	_cleanup_(slist_wipe_freep) struct curl_slist *headers = add(add(NULL, type), "Expect:");
	headers = add(headers, "Accept: application/json, application/problem+json");
	if (token) {
		_cleanup_free_ char *auth = xasprintf("Authorization: Bearer %s", token);
		headers = add(headers, auth);
		explicit_bzero(auth, strlen(auth));
	}
	_cleanup_free_ struct answer *a = xcalloc(1, sizeof(*a));
	_cleanup_free_ struct request *q = xcalloc(1, sizeof(*q));
	*q = (struct request){ .target = target, .body = body, .len = len, .headers = headers,
			       .ca_file = ca_file, .cert = cert, .key = key, .answer = a,
			       .timeout_ms = timeout_ms > 0 ? timeout_ms : TIMEOUT_DEFAULT_MS };
	CURLcode rc = CURLE_OK;
	long status = perform(q, &rc);
	if (rc != CURLE_OK) {
		char shown[REDACT_MAX];
		say(err, errlen, "%s: %s", redact_url(target, shown, sizeof(shown)),
		    q->cerr[0] ? q->cerr : curl_easy_strerror(rc));
		redact_scrub_url(err, errlen, target);
		return -EIO;
	}
	return read_answer(status, a, q->retry[0] ? q->retry : NULL, err, errlen);
}

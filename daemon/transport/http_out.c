/*
 * http_out.c - delivery to an endpoint's url: each message of a batch is
 * POSTed in order, the next only once the receiver has answered the one
 * before, on a connection kept alive between messages and batches.
 *
 * libcurl's multi interface runs on the event loop: its sockets are
 * libevent events (CURLMOPT_SOCKETFUNCTION), its timeouts one libevent
 * timer (CURLMOPT_TIMERFUNCTION), name look-ups its threaded resolver,
 * which a transfer removed mid-look-up leaves behind rather than joins. So
 * a receiver that accepts and never answers, or answers a byte a minute,
 * holds only its own endpoint's transfer: at the delivery's deadline
 * (deliver.c) cancel() removes the transfer, closing its connection, and
 * the batch completes with FAULT_TIMEOUT and the messages confirmed
 * before it. A batch starts no new POST once half of delivery_timeout is
 * used, and ends there with what was confirmed (no fault: the rest comes
 * in the next batch), so a receiver that is slow but answers each message
 * in time never meets the deadline. Each endpoint has a multi handle of
 * its own. With several daemons, no POST starts once the endpoint's lease is
 * no longer trusted here (transport_env.send_until).
 *
 * The answer decides (http_classify): 2xx delivered; 400, 413, 415 and
 * 422 mean the receiver will never take this message, which is set aside
 * with the receiver's reason while the queue moves on; anything else is
 * the endpoint failing (backoff, honouring Retry-After, and health).
 * Redirects are not followed: a redirected POST would carry a patient's
 * message to a host nobody configured. TLS is always verified, against the
 * endpoint's ca_file when set, else the host's store; the broker presents
 * client_cert when set.
 *
 * Each POST carries Edibroker-Message-Id (the store instance and message
 * id, as in a spool's file name): a re-delivery after a crash or a timeout
 * carries the same one, so a receiver can drop the second copy.
 *
 * Completions run from an event of their own, never inside a libcurl
 * callback nor inside deliver(), and done() is the last thing that touches
 * the transport: the scheduler may free it from there.
 */
#include "transport/http.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/redact.h"
#include "codecs/base/mem.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ANSWER_KEEP 2048          /* bytes of a receiver's answer kept for its reason */
#define CONNECT_TIMEOUT_MS 30000L /* at most; delivery_timeout when shorter */

struct http_out {
	struct event_base *base;
	char *endpoint, *url, *ca_file, *client_cert, *client_key, *instance;
	char shown[REDACT_MAX];        /* url as logs may show it */
	long timeout_ms;
	CURLM *multi;
	CURL *easy;
	struct event *timer_ev;        /* libcurl's timeout */
	struct event *done_ev;         /* completes the operation */
	struct watch *watches;         /* libcurl's sockets */

	/* the operation: one batch or one probe at a time */
	bool busy, probe, finishing, attached;
	int64_t started_ms;
	const _Atomic int64_t *send_until; /* transport_env.send_until: the lease's trust */            /* monotonic: its time budget runs from here */
	const struct out_msg *msgs;
	size_t n, i;
	transport_done_fn done;
	void *arg;
	struct deliver_result res;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	char answer[ANSWER_KEEP + 1];  /* the start of the receiver's answer */
	size_t answer_len;
};

/* A socket libcurl asked us to watch. */
struct watch {
	struct watch *next, **pprev;
	struct http_out *o;
	struct event *ev;
	curl_socket_t fd;
};

static void watch_free(struct watch *w)
{
	if (w->next)
		w->next->pprev = w->pprev;
	*w->pprev = w->next;
	event_free(w->ev);
	free(w);
}

static void check_done(struct http_out *o);

/* ---- libcurl on the event loop --------------------------------------------- */

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct http_out *o = ((struct watch *)arg)->o;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running = 0;
	curl_multi_socket_action(o->multi, fd, flags, &running);
	check_done(o);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_out *o = arg;
	int running = 0;
	curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(o);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_out *o = userp;
	struct watch *w = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			curl_multi_assign(o->multi, fd, NULL);
			watch_free(w);
		}
		return 0;
	}
	if (!w) {
		w = xcalloc(1, sizeof(*w));
		w->o = o;
		w->fd = fd;
		w->next = o->watches;
		if (w->next)
			w->next->pprev = &w->next;
		w->pprev = &o->watches;
		o->watches = w;
		curl_multi_assign(o->multi, fd, w);
	} else {
		event_free(w->ev);
	}
	short ev = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
			   (what & CURL_POLL_OUT ? EV_WRITE : 0));
	w->ev = event_new(o->base, fd, ev, on_socket_event, w);
	event_add(w->ev, NULL);
	return 0;
}

/* libcurl wants to be called after timeout_ms (-1: never). Never from
 * inside this callback: a 0 timeout runs at the next loop turn. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_out *o = userp;
	event_del(o->timer_ev);
	if (timeout_ms >= 0) {
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
		event_add(o->timer_ev, &tv);
	}
	return 0;
}

static size_t keep_answer(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_out *o = userp;
	size_t n = size * nmemb, room = ANSWER_KEEP - o->answer_len;
	memcpy(o->answer + o->answer_len, data, n < room ? n : room);
	o->answer_len += n < room ? n : room;
	o->answer[o->answer_len] = '\0';
	return n; /* the rest is read and dropped */
}

/* ---- the operation ---------------------------------------------------------- */

/* The error line of the result: one line, printable, without what the url
 * holds of credentials (user-info, query), whatever libcurl or the
 * receiver put in it. */
__attribute__((format(printf, 2, 3))) static void set_error(struct http_out *o,
							   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->res.error, sizeof(o->res.error), fmt, ap);
	va_end(ap);
	for (char *p = o->res.error; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	redact_scrub_url(o->res.error, sizeof(o->res.error), o->url);
}

static void finish(struct http_out *o)
{
	if (o->finishing)
		return;
	o->finishing = true;
	event_active(o->done_ev, 0, 0);
}

/* Runs the completion, last: done() may free o. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct http_out *o = arg;
	transport_done_fn done = o->done;
	void *darg = o->arg;
	struct deliver_result res = o->res;
	o->busy = o->finishing = false;
	o->done = NULL;
	o->msgs = NULL;
	done(darg, &res);
}

/* A printable, one-line copy of what a problem document calls itself
 * ("title"), for the reason a refused message is set aside with. The
 * receiver's detail may quote the message: it is not kept. */
static void answer_title(const struct http_out *o, char *out, size_t len)
{
	out[0] = '\0';
	const char *t = strstr(o->answer, "\"title\"");
	if (!t || !(t = strchr(t + 7, '"')))
		return;
	size_t j = 0;
	for (t++; *t && *t != '"' && j + 1 < len && j < 96; t++)
		out[j++] = (*t >= 0x20 && *t < 0x7f && *t != '\\') ? *t : ' ';
	out[j] = '\0';
}

/* The transfer of message o->i (or the probe) ended with rc. */
static void transfer_ended(struct http_out *o, CURLcode rc)
{
	long status = 0;
	curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		o->res.fault = http_curl_fault(rc);
		set_error(o, "%s: %s", o->shown,
			 o->errbuf[0] ? o->errbuf : curl_easy_strerror(rc));
		return finish(o);
	}
	struct http_class c = o->probe ? http_classify_probe(status) : http_classify(status);
	if (c.verdict == HTTP_DELIVERED) {
		if (o->probe)
			return finish(o);
		log_debug("event=http-delivered msg=%lld endpoint=%s status=%ld",
			  (long long)o->msgs[o->i].id, o->endpoint, status);
		o->res.delivered = ++o->i;
		if (o->i == o->n)
			return finish(o);
		return; /* check_done starts the next */
	}
	char title[100];
	answer_title(o, title, sizeof(title));
	o->res.fault = c.fault;
	o->res.rejected = c.verdict == HTTP_REJECTED;
	set_error(o, "HTTP %ld from %s: %s%s%s%s", status, o->shown,
		 c.why, title[0] ? " (" : "", title, title[0] ? ")" : "");
	curl_off_t after = -1;
	if (curl_easy_getinfo(o->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
		o->res.retry_after_ms = (int64_t)after * 1000;
	finish(o);
}

static int start_transfer(struct http_out *o);

/* False once the endpoint's lease is no longer trusted here (several
 * daemons, transport_env.send_until): no further message is posted; the
 * rest is left to the lease's next holder. */
static bool may_send(struct http_out *o)
{
	if (o->probe || !o->send_until || clock_mono_ms() < atomic_load(o->send_until))
		return true;
	o->res.fault = FAULT_TIMEOUT;
	set_error(o, "the endpoint's lease is no longer held here: the rest is left to its holder");
	return false;
}

/* libcurl says which transfers ended; ours is the only one. */
static void check_done(struct http_out *o)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(o->multi, &left))) {
		if (m->msg != CURLMSG_DONE || m->easy_handle != o->easy)
			continue;
		CURLcode rc = m->data.result;
		curl_multi_remove_handle(o->multi, o->easy);
		o->attached = false;
		transfer_ended(o, rc);
	}
	if (!o->busy || o->finishing || o->attached)
		return;
	if (clock_mono_ms() - o->started_ms >= o->timeout_ms / 2) {
		/* half the deadline used: the rest goes in the next batch, so a
		 * slow receiver that answers every message never times out */
		log_debug("event=http-batch-split endpoint=%s delivered=%zu left=%zu", o->endpoint,
			  o->i, o->n - o->i);
		return finish(o);
	}
	if (!may_send(o) || start_transfer(o) < 0)
		finish(o);
}

/* Options for every transfer of this endpoint. Returns how many libcurl
 * refused (none, unless it is too old). */
static int base_options(struct http_out *o)
{
	CURL *c = o->easy;
	int bad = 0;
	bad += curl_easy_setopt(c, CURLOPT_URL, o->url) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (o->ca_file) {
		bad += curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK;
	}
	if (o->client_cert) {
		bad += curl_easy_setopt(c, CURLOPT_SSLCERT, o->client_cert) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_SSLKEY, o->client_key) != CURLE_OK;
	}
	bad += curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	/* A transfer removed during its name look-up (cancel at the deadline,
	 * libcurl's own timeout, a reload) leaves the resolver thread to finish
	 * alone: without this libcurl joins it, on the loop, for as long as a
	 * dead DNS server or NSS module keeps getaddrinfo() waiting. */
	bad += curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
				o->timeout_ms < CONNECT_TIMEOUT_MS ? o->timeout_ms
								   : CONNECT_TIMEOUT_MS) != CURLE_OK;
	/* the deadline is deliver.c's (cancel); this is a backstop per request */
	bad += curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->errbuf) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_answer) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_WRITEDATA, o) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_USERAGENT, "edibroker") != CURLE_OK;
	return bad;
}

/* Sets up and adds the transfer of message o->i, or the probe: 0, or -1
 * with o->res filled. */
static int start_transfer(struct http_out *o)
{
	CURL *c = o->easy;
	o->errbuf[0] = '\0';
	o->answer_len = 0;
	o->answer[0] = '\0';
	curl_slist_free_all(o->headers);
	o->headers = NULL;
	int bad = 0;
	if (o->probe) {
		bad += curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;
	} else {
		const struct out_msg *m = &o->msgs[o->i];
		char id[96], type[64];
		snprintf(id, sizeof(id), "Edibroker-Message-Id: %s-%012lld", o->instance,
			 (long long)m->id);
		snprintf(type, sizeof(type), "Content-Type: %s",
			 http_media_type_of(m->body, m->size, m->ext));
		const char *lines[] = { type, id, "Expect:", "Accept: application/json, "
			"application/problem+json, */*" };
		for (size_t k = 0; k < ARRAY_SIZE(lines); k++) {
			struct curl_slist *l = curl_slist_append(o->headers, lines[k]);
			if (!l)
				abort();
			o->headers = l;
		}
		bad += curl_easy_setopt(c, CURLOPT_NOBODY, 0L) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)m->size) !=
		       CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)m->body) != CURLE_OK;
	}
	bad += curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->headers) != CURLE_OK;
	CURLMcode mc = bad ? CURLM_OK : curl_multi_add_handle(o->multi, c);
	if (bad || mc != CURLM_OK) {
		o->res.fault = FAULT_IO;
		set_error(o, "%s: libcurl refused the transfer: %s",
			 o->shown, bad ? "an option" : curl_multi_strerror(mc));
		return -1;
	}
	o->attached = true;
	return 0;
}

static void begin(struct http_out *o, bool probe, const struct out_msg *msgs, size_t n,
		  transport_done_fn done, void *arg)
{
	assert(!o->busy && "one operation at a time (deliver.c)");
	o->busy = true;
	o->probe = probe;
	o->msgs = msgs;
	o->n = n;
	o->i = 0;
	o->done = done;
	o->arg = arg;
	o->res = (struct deliver_result){ .fault = FAULT_NONE };
	o->started_ms = clock_mono_ms();
	if (!probe && n == 0)
		return finish(o);
	if (!may_send(o) || start_transfer(o) < 0)
		finish(o);
}

void http_out_deliver(struct http_out *o, const struct out_msg *msgs, size_t n,
		      transport_done_fn done, void *arg)
{
	begin(o, false, msgs, n, done, arg);
}

void http_out_probe(struct http_out *o, transport_done_fn done, void *arg)
{
	begin(o, true, NULL, 0, done, arg);
}

void http_out_cancel(struct http_out *o)
{
	if (!o->busy || o->finishing)
		return;
	if (o->attached) {
		/* closes the connection: what the receiver sent half of is gone */
		curl_multi_remove_handle(o->multi, o->easy);
		o->attached = false;
	}
	o->res.fault = FAULT_TIMEOUT;
	o->res.rejected = false;
	set_error(o, "%s: no answer within %lds%s", o->shown,
		 o->timeout_ms / 1000, o->probe ? "" : " (delivery_timeout)");
	finish(o);
}

/* ---- the instance ----------------------------------------------------------- */

struct http_out *http_out_new(const struct endpoint_conf *ep, const struct transport_env *env,
			      char *err, size_t errlen)
{
	const struct http_conf *hc = ep->tconf;
	if (!hc || str_empty(hc->url)) {
		snprintf(err, errlen, "endpoint %s: http needs url", ep->name);
		return NULL;
	}
	struct http_out *o = xcalloc(1, sizeof(*o));
	o->base = env->base;
	o->endpoint = xstrdup(ep->name);
	o->url = xstrdup(hc->url);
	o->ca_file = xstrdup_or_null(hc->ca_file);
	o->client_cert = xstrdup_or_null(hc->client_cert);
	o->client_key = xstrdup_or_null(hc->client_key);
	o->instance = xstrdup(env->instance ? env->instance : "edibroker");
	o->send_until = env->send_until;
	redact_url(o->url, o->shown, sizeof(o->shown));
	o->timeout_ms = ep->delivery_timeout_ms > 0 ? (long)ep->delivery_timeout_ms : 60000L;
	o->multi = curl_multi_init();
	o->easy = curl_easy_init();
	if (!o->multi || !o->easy)
		abort(); /* out of memory */
	o->timer_ev = event_new(env->base, -1, 0, on_timer, o);
	o->done_ev = event_new(env->base, -1, 0, on_done, o);
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 2L);
	if (base_options(o) > 0) {
		snprintf(err, errlen, "endpoint %s: libcurl refuses an option (too old?)", ep->name);
		http_out_free(o);
		return NULL;
	}
	return o;
}

void http_out_free(struct http_out *o)
{
	if (!o)
		return;
	if (o->attached)
		curl_multi_remove_handle(o->multi, o->easy);
	curl_easy_cleanup(o->easy);
	curl_multi_cleanup(o->multi);
	while (o->watches) /* sockets libcurl did not say it was done with */
		watch_free(o->watches);
	curl_slist_free_all(o->headers);
	event_free(o->timer_ev);
	event_free(o->done_ev);
	free(o->endpoint);
	free(o->url);
	free(o->ca_file);
	free(o->client_cert);
	free(o->client_key);
	free(o->instance);
	free(o);
}

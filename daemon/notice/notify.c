/*
 * notify.c - the three channels that carry an outage notice out of the
 * daemon: one e-mail over SMTP, one webhook POST, and the fallback command.
 *
 * The notice module composes the texts; this file only frames and carries
 * them. Every call is blocking, runs on a worker thread, is bounded by
 * cfg->timeout_ms and never logs: it fills a notify_result with ok or one
 * line saying why not (the transport's error, never the notice's text, and
 * never a secret: URLs are shown through base/redact.h, and the password,
 * the token and a URL's user-info and query are scrubbed from every error
 * line), and the caller records it with the notice.
 *
 * TLS is never switched off: peer and host name are verified, against the
 * channel's own CA file when one is configured (a private CA), else the
 * host's store. With credentials and smtp_starttls unset, STARTTLS is
 * required, so a server that does not offer it (or a man in the middle who
 * strips it) gets no password; a refused login (SMTP 535, libcurl's
 * CURLE_LOGIN_DENIED) is flagged as denied for the caller, who must not
 * retry the same credential.
 *
 * E-mail: libcurl's SMTP client with a message built here - RFC 5322
 * headers, a UTF-8 subject as RFC 2047 encoded-words folded to 78
 * columns, and the body in quoted-printable. Quoted-printable rather than
 * 8bit because the path to a municipality's mailbox can hold old relays
 * that are not 8BITMIME-clean; QP keeps every line 7-bit and at most 76
 * characters, and Danish text stays readable in the raw message. libcurl does
 * the SMTP dot-stuffing itself (tests/unit/test_notify.c proves a line
 * "." survives), so lines starting with "." are not encoded here. A
 * recipient the server refuses fails the whole send before DATA (libcurl's
 * default), so nobody has the notice and a retry duplicates nothing.
 *
 * Webhook: POST of the JSON payload; any 2xx is success. Redirects are not
 * followed: a redirected POST turns into a GET in libcurl and could carry
 * the notice to a host nobody configured, so a 3xx is reported as an
 * error ("HTTP 302 from ...") and the operator fixes webhook_url.
 *
 * Fallback: /bin/sh -c fallback_command, started with posix_spawn (safe in
 * a threaded process: nothing runs between fork and exec but glibc's own
 * async-signal-safe steps) in a process group of its own, with default
 * signal dispositions, an empty signal mask, every fd above 2 closed and
 * the environment without systemd's NOTIFY_SOCKET, WATCHDOG_* and LISTEN_*
 * (the service manager talks to the daemon, never to its helpers).
 * The payload reaches its stdin from a memfd, so a command that reads
 * nothing can neither block us nor raise SIGPIPE; stdout and stderr go to
 * a pipe whose first line explains a failure. At the timeout the whole
 * process group is killed.
 */
#include "notice/notify.h"

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "base/fileio.h"
#include "base/redact.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define SUBJECT_CHUNK 39  /* bytes per encoded-word: 52 base64 chars, 64 with framing */
#define QP_MAX_LINE 76    /* RFC 2045 6.7 (5) */
#define HEADER_FOLD 78    /* RFC 5322 2.1.1 */

extern char **environ;

/* ---- results -------------------------------------------------------------- */

/* Keeps the error to one printable line: control characters become spaces. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

__attribute__((format(printf, 2, 3))) static int fail(struct notify_result *res,
							const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
	one_line(res->error);
	res->ok = false;
	return -1;
}

static int succeed(struct notify_result *res)
{
	res->ok = true;
	res->error[0] = '\0';
	return 0;
}

static int curl_fail(struct notify_result *res, const char *url, CURLcode rc,
		     const char *errbuf)
{
	char u[REDACT_MAX];
	return fail(res, "%s: %s", redact_url(url, u, sizeof(u)),
		    *errbuf ? errbuf : curl_easy_strerror(rc));
}

/* Whatever an error line was built from (libcurl's words, a peer's
 * answer), the config's secrets leave it here: a result goes to the log,
 * the store and edibrokerctl. */
static void scrub(struct notify_result *res, const struct notify_config *cfg)
{
	redact_scrub(res->error, sizeof(res->error), cfg->smtp_password);
	redact_scrub(res->error, sizeof(res->error), cfg->webhook_token);
	if (cfg->smtp_url)
		redact_scrub_url(res->error, sizeof(res->error), cfg->smtp_url);
	if (cfg->webhook_url)
		redact_scrub_url(res->error, sizeof(res->error), cfg->webhook_url);
}

static long timeout_of(const struct notify_config *cfg)
{
	return cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* ---- libcurl plumbing ----------------------------------------------------- */

void notify_global_init(void)
{
	/* It fails only when memory runs out: abort, as xmalloc does. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		abort();
}

void notify_global_cleanup(void)
{
	curl_global_cleanup();
}

static void curl_cleanupp(CURL **c)
{
	if (*c)
		curl_easy_cleanup(*c);
}

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

/* Appends to a curl_slist; out of memory aborts like xmalloc. */
static struct curl_slist *slist_add(struct curl_slist *l, const char *s)
{
	struct curl_slist *n = curl_slist_append(l, s);
	if (!n)
		abort();
	return n;
}

/* Options every channel shares. TLS is always verified: against ca_file
 * alone when one is given (a private CA for this channel), else against
 * the host's store. Returns the number of options refused. */
static int common_options(CURL *c, const struct notify_config *cfg, const char *url,
			  const char *protocols, const char *ca_file, char *errbuf)
{
	long t = timeout_of(cfg);
	int bad = 0;
	bad += curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (!str_empty(ca_file)) {
		bad += curl_easy_setopt(c, CURLOPT_CAINFO, ca_file) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK;
	}
	bad += curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK; /* worker threads */
	bad += curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
	return bad;
}

/* ---- the e-mail ----------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(FILE *f, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		fputc(b64[(v >> 18) & 63], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(i + 1 < n ? b64[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < n ? b64[v & 63] : '=', f);
	}
}

/* At most max bytes of s that end on a UTF-8 character boundary: RFC 2047
 * 5 (3) wants whole characters in each encoded-word. */
static size_t utf8_chunk(const char *s, size_t max)
{
	size_t n = utf8_cut(s, strlen(s), max);
	return n > 0 ? n : max; /* a character longer than max: cut anyway */
}

/* Plain when short printable ASCII that cannot be mistaken for an
 * encoded-word; otherwise base64 encoded-words, one per folded line. */
static void put_subject(FILE *f, const char *s)
{
	bool plain = strlen(s) <= HEADER_FOLD - strlen("Subject: ") && !strstr(s, "=?");
	for (const char *p = s; plain && *p; p++)
		plain = *p >= 0x20 && *p < 0x7f;
	if (plain) {
		fprintf(f, "Subject: %s\r\n", s);
		return;
	}
	fputs("Subject:", f);
	for (const char *p = s; *p;) {
		size_t n = utf8_chunk(p, SUBJECT_CHUNK);
		fputs(p == s ? " =?UTF-8?B?" : "\r\n =?UTF-8?B?", f);
		put_base64(f, (const unsigned char *)p, n);
		fputs("?=", f);
		p += n;
	}
	fputs("\r\n", f);
}

/* To: every recipient, folded before a name that would pass column 78. */
static void put_to(FILE *f, const struct notify_message *m)
{
	size_t col = fprintf(f, "To:");
	for (size_t i = 0; i < m->nrecipients; i++) {
		size_t n = strlen(m->recipients[i]) + (i + 1 < m->nrecipients);
		if (i > 0 && col + 1 + n > HEADER_FOLD) {
			fputs("\r\n", f);
			col = 0;
		}
		col += fprintf(f, " %s%s", m->recipients[i], i + 1 < m->nrecipients ? "," : "");
	}
	fputs("\r\n", f);
}

/* RFC 5322 3.3 in the process time zone; English names, not the locale's. */
static void put_date(FILE *f, int64_t ms)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = ms > 0 ? (time_t)(ms / 1000) : time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60, aoff = off < 0 ? -off : off;
	fprintf(f, "Date: %s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld\r\n", days[tm.tm_wday],
		tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		off < 0 ? '-' : '+', aoff / 60, aoff % 60);
}

static bool dot_atom_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr(".-_+=", c);
}

/* The right side of the Message-ID: this host's name when it is a clean
 * dot-atom, else "edibroker". */
static void msgid_host(char *host, size_t sz)
{
	bool ok = gethostname(host, sz) == 0 && host[0] && host[0] != '.';
	host[sz - 1] = '\0';
	for (const char *p = host; ok && *p; p++)
		ok = dot_atom_char(*p) && *p != '_' && *p != '+' && *p != '=';
	if (!ok)
		str_copy(host, "edibroker", sz);
}

static void put_message_id(FILE *f, const char *token)
{
	char host[256], rnd[17];
	msgid_host(host, sizeof(host));
	if (str_empty(token)) {
		uint64_t r = 0;
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (uint64_t)mono_ms() ^ (uint64_t)time(NULL) << 20;
		snprintf(rnd, sizeof(rnd), "%016llx", (unsigned long long)r);
		token = rnd;
	}
	fputs("Message-ID: <", f);
	for (const char *p = token; *p; p++)
		fputc(dot_atom_char(*p) && *p != '.' ? *p : '-', f);
	fprintf(f, "@%s>\r\n", host);
}

static bool qp_literal(unsigned char c, bool last)
{
	if (c == ' ' || c == '\t')
		return !last; /* trailing white space would be stripped in transit */
	return c > 0x20 && c < 0x7f && c != '=';
}

/* One body line (without its end) as quoted-printable, soft-broken so
 * that no encoded line passes 76 characters. */
static void qp_line(FILE *f, const unsigned char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n, lit = qp_literal(s[i], last);
		size_t w = lit ? 1 : 3;
		if (col + w > (last ? QP_MAX_LINE : QP_MAX_LINE - 1)) {
			fputs("=\r\n", f);
			col = 0;
		}
		if (lit)
			fputc(s[i], f);
		else
			fprintf(f, "=%02X", s[i]);
		col += w;
	}
	fputs("\r\n", f);
}

/* The body, "\n" or "\r\n" lines, as CRLF quoted-printable lines. */
static void put_qp_body(FILE *f, const char *body)
{
	for (const char *p = body; *p;) {
		size_t n = strcspn(p, "\n"), len = n;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		qp_line(f, (const unsigned char *)p, len);
		p += n + (p[n] == '\n');
	}
}

/* The whole message, CRLF throughout. *len gets its size. */
static char *mail_compose(const struct notify_config *cfg, const struct notify_message *m,
			  size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		abort();
	fprintf(f, "From: %s\r\n", cfg->mail_from);
	put_to(f, m);
	put_subject(f, m->subject ? m->subject : "");
	put_date(f, m->date);
	put_message_id(f, m->message_id);
	fputs("MIME-Version: 1.0\r\n"
	      "Content-Type: text/plain; charset=UTF-8\r\n"
	      "Content-Transfer-Encoding: quoted-printable\r\n"
	      "Auto-Submitted: auto-generated\r\n" /* RFC 3834: no vacation replies */
	      "\r\n", f);
	put_qp_body(f, m->body ? m->body : "");
	if (fclose(f) != 0)
		abort(); /* a memory stream fails only when memory runs out */
	return text;
}

/* "<addr>" for the envelope: the part in <> of "Name <addr>", else all. */
static char *envelope_addr(const char *s)
{
	const char *lt = strrchr(s, '<');
	if (lt && strchr(lt, '>'))
		return xasprintf("<%.*s>", (int)strcspn(lt + 1, ">"), lt + 1);
	return xasprintf("<%s>", s);
}

static struct curl_slist *rcpt_list(const struct notify_message *m)
{
	struct curl_slist *l = NULL;
	for (size_t i = 0; i < m->nrecipients; i++) {
		_cleanup_free_ char *a = envelope_addr(m->recipients[i]);
		l = slist_add(l, a);
	}
	return l;
}

/* Refuses what would break the headers or the envelope. */
static int email_check(const struct notify_config *cfg, const struct notify_message *m,
		       struct notify_result *res)
{
	if (str_empty(cfg->smtp_url))
		return fail(res, "e-mail: no smtp_url configured");
	if (str_empty(cfg->mail_from) || has_ctl(cfg->mail_from))
		return fail(res, "e-mail: mail_from is empty or holds control characters");
	if (m->nrecipients == 0)
		return fail(res, "e-mail: no recipients");
	for (size_t i = 0; i < m->nrecipients; i++)
		if (str_empty(m->recipients[i]) || has_ctl(m->recipients[i]))
			return fail(res, "e-mail: recipient %zu is empty or holds control characters",
				    i + 1);
	return 0;
}

/* Credentials: smtp_user, or user-info in the URL (libcurl uses both). */
static bool has_credentials(const struct notify_config *cfg)
{
	char shown[REDACT_MAX];
	return !str_empty(cfg->smtp_user) ||
	       strstr(redact_url(cfg->smtp_url, shown, sizeof(shown)), "://***@") != NULL;
}

/* Unset means required with credentials, so a server that does not offer
 * STARTTLS (or an attacker who strips it) never sees the password; only a
 * written "no" sends it in clear. */
static int starttls_level(const struct notify_config *cfg, long *level)
{
	const char *s = cfg->smtp_starttls;
	if (s == NULL)
		*level = has_credentials(cfg) ? CURLUSESSL_ALL : CURLUSESSL_TRY;
	else if (strcmp(s, "try") == 0)
		*level = CURLUSESSL_TRY;
	else if (strcmp(s, "no") == 0)
		*level = CURLUSESSL_NONE;
	else if (strcmp(s, "yes") == 0)
		*level = CURLUSESSL_ALL;
	else
		return -EINVAL;
	return 0;
}

struct upload {
	const char *p;
	size_t left;
};

static size_t upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nitems < u->left ? size * nitems : u->left;
	memcpy(buf, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

static int email_options(CURL *c, const struct notify_config *cfg, long tls, const char *from,
			 struct curl_slist *rcpt, struct upload *up)
{
	int bad = 0;
	bad += curl_easy_setopt(c, CURLOPT_USE_SSL, tls) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_MAIL_FROM, from) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_READDATA, up) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->left) != CURLE_OK;
	if (!str_empty(cfg->smtp_user)) {
		const char *pw = cfg->smtp_password ? cfg->smtp_password : "";
		bad += curl_easy_setopt(c, CURLOPT_USERNAME, cfg->smtp_user) != CURLE_OK;
		bad += curl_easy_setopt(c, CURLOPT_PASSWORD, pw) != CURLE_OK;
	}
	return bad;
}

/* What libcurl's failure means here, with the server's reply code. */
static int email_result(struct notify_result *res, const struct notify_config *cfg, CURL *c,
			CURLcode rc, const char *errbuf)
{
	char u[REDACT_MAX];
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->code);
	if (rc == CURLE_OK)
		return succeed(res);
	redact_url(cfg->smtp_url, u, sizeof(u));
	if (rc == CURLE_LOGIN_DENIED) {
		fail(res, "%s: the server refused the credentials (SMTP %ld)", u, res->code);
		res->denied = true;
		return -1;
	}
	if (rc == CURLE_USE_SSL_FAILED)
		return fail(res, "%s: the server offers no STARTTLS, and smtp_starttls %s requires it;"
			    " nothing was sent", u,
			    cfg->smtp_starttls ? "= yes" : "(unset, with credentials)");
	return curl_fail(res, cfg->smtp_url, rc, errbuf);
}

static int email_send(const struct notify_config *cfg, const struct notify_message *m,
		      struct notify_result *res)
{
	long tls;
	if (email_check(cfg, m, res) < 0)
		return -1;
	if (starttls_level(cfg, &tls) < 0)
		return fail(res, "e-mail: smtp_starttls must be no, try or yes");
	size_t len;
	_cleanup_free_ char *text = mail_compose(cfg, m, &len);
	_cleanup_free_ char *from = envelope_addr(cfg->mail_from);
	_cleanup_(slist_freep) struct curl_slist *rcpt = rcpt_list(m);
	char errbuf[CURL_ERROR_SIZE] = ""; /* before c: curl may write it until cleanup */
	_cleanup_(curl_cleanupp) CURL *c = curl_easy_init();
	if (!c)
		return fail(res, "e-mail: curl_easy_init failed");
	struct upload up = { text, len };
	if (common_options(c, cfg, cfg->smtp_url, "smtp,smtps", cfg->smtp_ca_file, errbuf) ||
	    email_options(c, cfg, tls, from, rcpt, &up))
		return fail(res, "e-mail: libcurl refused an option");
	CURLcode rc = curl_easy_perform(c);
	return email_result(res, cfg, c, rc, errbuf);
}

int notify_email(const struct notify_config *cfg, const struct notify_message *m,
		 struct notify_result *res)
{
	*res = (struct notify_result){ .ok = false };
	int r = email_send(cfg, m, res);
	scrub(res, cfg);
	return r;
}

/* ---- the webhook ---------------------------------------------------------- */

/* The response body is not ours to keep: it never reaches the result. */
static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

static int webhook_options(CURL *c, const char *payload, struct curl_slist *headers)
{
	int bad = 0;
	bad += curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload)) !=
	       CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_USERAGENT, "edibroker") != CURLE_OK;
	bad += curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
	return bad;
}

/* The header list holds the bearer token: wiped before it is freed. */
static void slist_wipe_freep(struct curl_slist **l)
{
	for (struct curl_slist *n = *l; n; n = n->next)
		explicit_bzero(n->data, strlen(n->data));
	curl_slist_free_all(*l);
}

static struct curl_slist *webhook_headers(const struct notify_config *cfg)
{
	struct curl_slist *h = slist_add(NULL, "Content-Type: application/json");
	/* Never wait for "100 Continue" (libcurl may ask on a large body). */
	h = slist_add(h, "Expect:");
	if (!str_empty(cfg->webhook_token)) {
		char *line = xasprintf("Authorization: Bearer %s", cfg->webhook_token);
		h = slist_add(h, line);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	return h;
}

static int webhook_send(const struct notify_config *cfg, const struct notify_message *m,
			struct notify_result *res)
{
	if (str_empty(cfg->webhook_url))
		return fail(res, "webhook: no webhook_url configured");
	if (!m->payload)
		return fail(res, "webhook: no payload");
	if (cfg->webhook_token && has_ctl(cfg->webhook_token))
		return fail(res, "webhook: the token holds control characters");
	_cleanup_(slist_wipe_freep) struct curl_slist *h = webhook_headers(cfg);
	char errbuf[CURL_ERROR_SIZE] = ""; /* before c: curl may write it until cleanup */
	_cleanup_(curl_cleanupp) CURL *c = curl_easy_init();
	if (!c)
		return fail(res, "webhook: curl_easy_init failed");
	if (common_options(c, cfg, cfg->webhook_url, "http,https", cfg->webhook_ca_file, errbuf) ||
	    webhook_options(c, m->payload, h))
		return fail(res, "webhook: libcurl refused an option");
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		return curl_fail(res, cfg->webhook_url, rc, errbuf);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->code);
	char u[REDACT_MAX];
	redact_url(cfg->webhook_url, u, sizeof(u));
	if (res->code >= 200 && res->code < 300)
		return succeed(res);
	return fail(res, "HTTP %ld from %s", res->code, u);
}

int notify_webhook(const struct notify_config *cfg, const struct notify_message *m,
		   struct notify_result *res)
{
	*res = (struct notify_result){ .ok = false };
	int r = webhook_send(cfg, m, res);
	scrub(res, cfg);
	return r;
}

/* ---- the fallback command ------------------------------------------------- */

static void strvfreep(char ***v)
{
	if (!*v)
		return;
	for (char **p = *v; *p; p++)
		free(*p);
	free(*v);
}

static char *recipients_joined(const struct notify_message *m)
{
	char *s = xstrdup("");
	for (size_t i = 0; i < m->nrecipients; i++) {
		char *t = xasprintf("%s%s%s", s, i ? "," : "", m->recipients[i]);
		free(s);
		s = t;
	}
	return s;
}

/* What the child must not inherit: a stale NOTICE_* of ours, and the
 * service manager's protocol with the daemon (sd_notify(3), sd_watchdog_
 * enabled(3), sd_listen_fds(3)). A script that used NOTIFY_SOCKET could
 * tell systemd the daemon is ready or stopping, one that pinged WATCHDOG=1
 * could hide a daemon that hangs, and sd_listen_fds would count our fds. */
static const char *const not_inherited[] = {
	"NOTICE_", "NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "LISTEN_PID=",
	"LISTEN_FDS=", "LISTEN_FDNAMES=",
};

static bool inherited(const char *var)
{
	for (size_t i = 0; i < ARRAY_SIZE(not_inherited); i++)
		if (strncmp(var, not_inherited[i], strlen(not_inherited[i])) == 0)
			return false;
	return true;
}

/* The daemon's environment without what it must not pass on, plus this
 * notice's. The body is not in it: it can be long and multi-line, and the
 * JSON on stdin carries it. */
static char **child_env(const struct notify_message *m)
{
	size_t n = 0, k = 0;
	while (environ && environ[n])
		n++;
	char **env = xcalloc(n + 4, sizeof(*env));
	for (size_t i = 0; i < n; i++)
		if (inherited(environ[i]))
			env[k++] = xstrdup(environ[i]);
	_cleanup_free_ char *rcpt = recipients_joined(m);
	env[k++] = xasprintf("NOTICE_SUBJECT=%s", m->subject ? m->subject : "");
	env[k++] = xasprintf("NOTICE_RECIPIENTS=%s", rcpt);
	env[k++] = xasprintf("NOTICE_MESSAGE_ID=%s", m->message_id ? m->message_id : "");
	return env;
}

/* The payload in an anonymous file, positioned at its start: the child's
 * stdin. A file, not a pipe, so a child that never reads is no problem. */
static int payload_fd(const char *payload)
{
	_cleanup_close_ int fd = memfd_create("edibroker-notice", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, payload ? payload : "", payload ? strlen(payload) : 0);
	if (r < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static void spawn_attr(posix_spawnattr_t *at)
{
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(at);
	/* Workers block every signal and the daemon ignores SIGPIPE: undo both. */
	posix_spawnattr_setsigmask(at, &none);
	posix_spawnattr_setsigdefault(at, &all);
	posix_spawnattr_setpgroup(at, 0); /* its own group, so a timeout kills it all */
	posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					     POSIX_SPAWN_SETPGROUP);
}

/* /bin/sh -c cmd with stdin from in, stdout and stderr to out, nothing
 * else open. 0 or -errno. */
static int spawn_shell(const char *cmd, int in, int out, char **env, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out, STDERR_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* close_range(2) inside */
	spawn_attr(&at);
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	int r = posix_spawn(pid, "/bin/sh", &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -r;
}

/* What the child said: its first line is kept, the rest is drained. */
struct output {
	int fd;            /* -1 after end of file */
	char line[160];
	size_t len;
	bool line_done;
};

static void output_read(struct output *o)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(o->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n && !o->line_done; i++) {
			if (buf[i] == '\n' || o->len + 1 == sizeof(o->line))
				o->line_done = true;
			else
				o->line[o->len++] = buf[i];
		}
	}
	o->line[o->len] = '\0';
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		o->fd = -1; /* end of file: poll() skips a negative fd */
}

/* Waits for the child until the deadline, reading its output meanwhile.
 * 0 with *status, -ETIMEDOUT after killing its process group, or -errno. */
static int child_wait(pid_t pid, struct output *o, int64_t deadline, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return -errno;
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		/* Short slices: a grandchild may hold the pipe after sh exits. */
		struct pollfd p = { .fd = o->fd, .events = POLLIN };
		if (poll(&p, 1, (int)(left < 20 ? left : 20)) > 0)
			output_read(o);
	}
	if (o->fd >= 0)
		output_read(o);
	return 0;
}

static int fallback_result(struct notify_result *res, int r, int st, long t,
			   const struct output *o)
{
	if (r == -ETIMEDOUT)
		return fail(res, "fallback command timed out after %ld ms; process group killed", t);
	if (r < 0)
		return fail(res, "fallback: waitpid: %s", strerror(-r));
	if (WIFSIGNALED(st))
		return fail(res, "fallback command killed by SIG%s%s%s",
			    sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?",
			    o->len ? ": " : "", o->line);
	if (WEXITSTATUS(st) != 0)
		return fail(res, "fallback command exited with status %d%s%s", WEXITSTATUS(st),
			    o->len ? ": " : "", o->line);
	return succeed(res);
}

static int fallback_run(const struct notify_config *cfg, const struct notify_message *m,
			struct notify_result *res)
{
	if (str_empty(cfg->fallback_command))
		return fail(res, "fallback: no fallback_command configured");
	long t = timeout_of(cfg);
	int64_t deadline = mono_ms() + t;
	_cleanup_close_ int in = payload_fd(m->payload);
	if (in < 0)
		return fail(res, "fallback: payload file: %s", strerror(-in));
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(res, "fallback: pipe: %s", strerror(errno));
	_cleanup_close_ int rd = p[0], wr = p[1];
	_cleanup_(strvfreep) char **env = child_env(m);
	pid_t pid;
	int r = spawn_shell(cfg->fallback_command, in, wr, env, &pid);
	if (r < 0)
		return fail(res, "fallback: cannot run /bin/sh: %s", strerror(-r));
	close(TAKE_FD(wr)); /* so the child's exit means end of file here */
	fcntl(rd, F_SETFL, O_NONBLOCK); /* the read end only: the child's end stays blocking */
	struct output o = { .fd = rd };
	int st = 0;
	r = child_wait(pid, &o, deadline, &st);
	return fallback_result(res, r, st, t, &o);
}

int notify_fallback(const struct notify_config *cfg, const struct notify_message *m,
		    struct notify_result *res)
{
	*res = (struct notify_result){ .ok = false };
	int r = fallback_run(cfg, m, res);
	scrub(res, cfg); /* the command's own output could echo a secret */
	return r;
}

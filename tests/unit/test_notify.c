/*
 * test_notify.c - the three notice channels of notify.c against real peers
 * on loopback: an aiosmtpd SMTP server (tests/peers/mail_sink.py), an
 * http.server webhook receiver (tests/peers/webhook_sink.py), and real
 * /bin/sh commands for the fallback.
 *
 * Criterion runs every test in a process of its own; a suite's .init starts
 * that test's helper with /usr/bin/python3, waits at most 10 s for its
 * "PORT n" line, and .fini ends it by PID. The helper also exits when its
 * stdin - a pipe only this process holds - closes, so a test that crashes
 * leaves nothing running. What a helper received is read back from the
 * files it writes, decoded by Python's email package: an independent check
 * of the framing and encoding done in notify.c. Run from the repository
 * root, as `make unit` does.
 */
#include "notice/notify.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define PYTHON "/usr/bin/python3"
#define SMTP_SINK "tests/peers/mail_sink.py"
#define HTTP_SINK "tests/peers/webhook_sink.py"
#define MAIL_FROM "edi-drift@region.example"

extern char **environ;

/* ---- the notice sent in most tests ---------------------------------------- */

static const char *const RCPT[] = { "edi-support@region.example", "drift-vagt@region.example",
				    "eoj-drift@aarhus.example" };

static const char SUBJECT[] = "Nedbrud: Aarhus Kommune EOJ har været nede i 2 t 5 min – "
			      "årsag: forbindelse afvist (Ærø, Øster Åby)";

/* Lines that QP and SMTP framing can get wrong: dots, "=", trailing white
 * space, a tab, an empty line, non-ASCII, one line far past 76 columns. */
static const char BODY[] =
	"Årsag til fejl: forbindelse afvist (refused)\n"
	"Berørte meddelelser: XDIS20 × 3, XDIS91 × 1\n"
	".\n"
	".linje der starter med punktum\n"
	"..to punktummer\n"
	"Forventet nedetid: ukendt = ikke sat\n"
	"mellemrum til sidst   \n"
	"tab\tinde og til sidst\t\n"
	"\n"
	"From the start of a line\n"
	"Kontaktperson: Søren Ærbø Åkjær, Regional IT, 22 33 44 55, edi-support@region.example, "
	"træffes hverdage 08:00-15:45, fredag 08:00-14:00; uden for åbningstid drifts- og "
	"ledelsesvagten.\n"
	"Næste status: 15-01-2026 13:00\n";

static const char PAYLOAD[] = "{\"kind\":\"initial\",\"endpoint\":\"aarhus-eoj\","
			      "\"organisation\":\"Aarhus Kommune\",\"subject\":\"Nedbrud – æøå\"}";

#define DATE_WINTER 1768471200000LL /* 2026-01-15 10:00:00 UTC */
#define DATE_SUMMER 1782900000000LL /* 2026-07-01 10:00:00 UTC */

static struct notify_message message(void)
{
	return (struct notify_message){ .subject = SUBJECT, .body = BODY, .payload = PAYLOAD,
					.recipients = RCPT, .nrecipients = ARRAY_SIZE(RCPT),
					.date = DATE_WINTER, .message_id = "outage-17-initial" };
}

/* ---- helpers: start, read what they got, stop ----------------------------- */

struct helper {
	pid_t pid;
	int in;       /* its stdin: closing it ends the helper */
	int port;
	char dir[64]; /* what it received */
	char url[128];
};

static struct helper H = { .pid = -1, .in = -1 };

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The helper's "PORT n" line, waited for at most 10 s. */
static int read_port(int fd)
{
	char buf[64];
	size_t n = 0;
	int64_t deadline = now_ms() + 10000;
	while (n < sizeof(buf) - 1 && !memchr(buf, '\n', n)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)(deadline - now_ms());
		cr_assert(left > 0 && poll(&p, 1, left) == 1, "helper silent for 10 s");
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		cr_assert(r > 0, "helper exited before reporting its port");
		n += (size_t)r;
	}
	buf[n] = '\0';
	int port = 0;
	cr_assert(sscanf(buf, "PORT %d", &port) == 1, "helper said: %s", buf);
	return port;
}

static void make_dir(void)
{
	testutil_mkdtemp(H.dir, sizeof(H.dir), "/tmp/eb-notify-XXXXXX");
	notify_global_init();
}

/* Starts script with H.dir and the NULL-terminated extra arguments. */
static void helper_start_args(const char *script, const char *const *extra)
{
	make_dir();
	cr_assert(access(script, R_OK) == 0, "%s missing: run from the repository root", script);
	int in[2], out[2];
	cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	char *argv[16] = { PYTHON, (char *)script, H.dir };
	for (size_t i = 0; extra && extra[i]; i++) {
		cr_assert_lt(i + 4, ARRAY_SIZE(argv));
		argv[i + 3] = (char *)extra[i];
	}
	cr_assert(posix_spawn(&H.pid, PYTHON, &fa, NULL, argv, environ) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	H.in = in[1];
	H.port = read_port(out[0]);
	close(out[0]);
}

static void helper_start(const char *script, const char *auth)
{
	const char *const extra[] = { auth ? "--auth" : NULL, auth, NULL };
	helper_start_args(script, extra);
}

/* SIGTERM, at most 3 s to go, then SIGKILL; only the PID we started. */
static void helper_stop(void)
{
	if (H.pid > 0) {
		close(H.in);
		kill(H.pid, SIGTERM);
		int64_t deadline = now_ms() + 3000;
		while (waitpid(H.pid, NULL, WNOHANG) == 0 && now_ms() < deadline)
			usleep(10000);
		if (kill(H.pid, SIGKILL) == 0)
			waitpid(H.pid, NULL, 0);
	}
	testutil_rm_rf(H.dir);
}

static void smtp_up(void)
{
	helper_start(SMTP_SINK, NULL);
	snprintf(H.url, sizeof(H.url), "smtp://127.0.0.1:%d", H.port);
}

static void smtp_auth_up(void)
{
	helper_start(SMTP_SINK, "edibroker:s3cret");
	snprintf(H.url, sizeof(H.url), "smtp://127.0.0.1:%d", H.port);
}

static void http_up(void)
{
	helper_start(HTTP_SINK, NULL);
	snprintf(H.url, sizeof(H.url), "http://127.0.0.1:%d", H.port);
}

/* How many "<n>.<ext>" files the helper has written. */
static int received(const char *ext)
{
	DIR *d = opendir(H.dir);
	cr_assert(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		const char *dot = strrchr(e->d_name, '.');
		n += e->d_name[0] != '.' && dot && strcmp(dot + 1, ext) == 0;
	}
	closedir(d);
	return n;
}

static char *received_file(int n, const char *ext)
{
	_cleanup_free_ char *path = xasprintf("%s/%d.%s", H.dir, n, ext);
	return testutil_read_file(path, NULL);
}

static json_t *received_json(int n)
{
	_cleanup_free_ char *text = received_file(n, "json");
	json_t *j = json_loads(text, 0, NULL);
	cr_assert(j, "%d.json does not parse", n);
	return j;
}

static const char *jstr(json_t *j, const char *path)
{
	json_t *v = j;
	char key[64];
	for (const char *p = path; v && *p;) {
		size_t k = strcspn(p, ".");
		snprintf(key, sizeof(key), "%.*s", (int)k, p);
		v = json_object_get(v, key);
		p += k + (p[k] == '.');
	}
	cr_assert(json_is_string(v), "%s is not a string", path);
	return json_string_value(v);
}

static struct notify_config smtp_config(void)
{
	return (struct notify_config){ .smtp_url = H.url, .smtp_starttls = "no",
				       .mail_from = MAIL_FROM, .timeout_ms = 5000 };
}

/* A loopback port where nothing listens (bound, then closed). */
static int dead_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	cr_assert(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s);
	return ntohs(a.sin_port);
}

/* A loopback port that completes the TCP handshake (backlog) and then
 * never says a word: for timeouts. The socket stays open until exit. */
static int silent_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	cr_assert(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 8) == 0);
	cr_assert(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	return ntohs(a.sin_port);
}

/* ---- e-mail ----------------------------------------------------------------- */

TestSuite(smtp, .init = smtp_up, .fini = helper_stop, .timeout = 20);

Test(smtp, one_message_for_every_recipient)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert(res.ok);
	cr_assert_str_empty(res.error);
	cr_assert_eq(received("json"), 1);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "mail_from"), MAIL_FROM);
	json_t *rcpt = json_object_get(j, "rcpt_tos");
	cr_assert_eq(json_array_size(rcpt), ARRAY_SIZE(RCPT));
	for (size_t i = 0; i < ARRAY_SIZE(RCPT); i++) {
		cr_assert_str_eq(json_string_value(json_array_get(rcpt, i)), RCPT[i]);
		cr_assert(strstr(jstr(j, "headers.to"), RCPT[i]), "To: lacks %s", RCPT[i]);
	}
	json_decref(j);
}

Test(smtp, headers_present)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "headers.from"), MAIL_FROM);
	cr_assert_str_eq(jstr(j, "headers.mime-version"), "1.0");
	cr_assert_str_eq(jstr(j, "raw_headers.content-type"), "text/plain; charset=UTF-8");
	cr_assert_str_eq(jstr(j, "headers.content-transfer-encoding"), "quoted-printable");
	cr_assert_str_eq(jstr(j, "headers.auto-submitted"), "auto-generated");
	const char *id = jstr(j, "headers.message-id");
	cr_assert(strncmp(id, "<outage-17-initial@", 19) == 0 && id[strlen(id) - 1] == '>',
		  "Message-ID: %s", id);
	json_decref(j);
}

/* The wire form: CRLF only, 7-bit, no header line past 78 columns and no
 * body line past 76 (so the long subject, the To: list and the long body
 * line were all folded). */
Test(smtp, raw_message_is_7bit_crlf_and_folded)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	_cleanup_free_ char *raw = received_file(1, "eml");
	const char *body = strstr(raw, "\r\n\r\n");
	cr_assert(body, "no end of headers");
	size_t col = 0;
	for (const char *p = raw; *p; p++) {
		cr_assert((unsigned char)*p < 0x80, "8-bit byte at offset %td", p - raw);
		cr_assert(*p != '\n' || (p > raw && p[-1] == '\r'), "bare LF at %td", p - raw);
		col = *p == '\n' ? 0 : col + 1;
		size_t max = p < body ? 78 : 76;
		cr_assert(col <= max + 1, "line over %zu at offset %td", max, p - raw); /* + CR */
	}
	cr_assert(strstr(raw, "\r\nSubject: =?UTF-8?B?"), "subject not an encoded-word");
	cr_assert(strstr(raw, "?=\r\n =?UTF-8?B?"), "long subject not folded");
	cr_assert(strstr(raw, "=\r\n"), "long body line has no soft break");
}

Test(smtp, subject_decodes_to_the_utf8_text)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	m.subject = "EDI status: all clear";
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	m.subject = "Looks encoded: =?UTF-8?B?w6bDuMOl?= but is not";
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "subject"), SUBJECT);
	json_decref(j);
	j = received_json(3);
	cr_assert_str_eq(jstr(j, "subject"), m.subject);
	json_decref(j);
	_cleanup_free_ char *raw = received_file(2, "eml");
	cr_assert(strstr(raw, "\r\nSubject: EDI status: all clear\r\n"), "short ASCII encoded");
}

/* Includes the lone "." line: had libcurl not dot-stuffed it, the server
 * would have ended DATA there and the rest would be lost or refused. */
Test(smtp, body_decodes_back_exactly)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "body"), BODY);
	json_decref(j);
	_cleanup_free_ char *raw = received_file(1, "eml");
	cr_assert(strstr(raw, "\r\n.\r\n.linje der starter med punktum\r\n..to punktummer\r\n"));
	cr_assert(strstr(raw, "=C3=85rsag til fejl"), "Å not quoted-printable");
	cr_assert(strstr(raw, "mellemrum til sidst  =20\r\n"), "trailing space not protected");
}

static void check_date(int64_t ms, const char *tz, const char *want)
{
	setenv("TZ", tz, 1);
	tzset();
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	m.date = ms;
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	json_t *j = received_json(received("json"));
	cr_assert_str_eq(jstr(j, "date"), want);
	double epoch = json_real_value(json_object_get(j, "date_epoch"));
	cr_assert_eq((int64_t)epoch, ms / 1000, "Date parses to %.0f", epoch);
	json_decref(j);
}

Test(smtp, date_header_parses_in_any_zone)
{
	check_date(DATE_WINTER, "Europe/Copenhagen", "Thu, 15 Jan 2026 11:00:00 +0100");
	check_date(DATE_SUMMER, "Europe/Copenhagen", "Wed, 1 Jul 2026 12:00:00 +0200");
	check_date(DATE_WINTER, "UTC", "Thu, 15 Jan 2026 10:00:00 +0000");
	check_date(DATE_WINTER, "America/St_Johns", "Thu, 15 Jan 2026 06:30:00 -0330");
}

Test(smtp, starttls_yes_fails_without_tls)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = "yes";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert_not(res.ok);
	cr_assert(strstr(res.error, H.url) && strstr(res.error, "STARTTLS"), "%s", res.error);
	cr_assert_eq(received("json"), 0, "sent in clear despite smtp_starttls=yes");
}

Test(smtp, starttls_try_sends_without_tls)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = "try";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert_eq(received("json"), 1);
}

Test(smtp, starttls_unknown_value_refused)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = "maybe";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, "smtp_starttls"), "%s", res.error);
	cr_assert_eq(received("json"), 0);
}

Test(smtp, header_injection_refused)
{
	struct notify_config cfg = smtp_config();
	const char *evil[] = { "a@b.example\r\nBcc: x@evil.example" };
	struct notify_message m = message();
	m.recipients = evil;
	m.nrecipients = 1;
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, "recipient 1"), "%s", res.error);
	cr_assert_eq(received("json"), 0);
}

TestSuite(smtp_auth, .init = smtp_auth_up, .fini = helper_stop, .timeout = 20);

Test(smtp_auth, right_password_accepted)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "s3cret";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "login"), "edibroker");
	json_decref(j);
}

/* A 535 is a configuration error the caller must not retry: flagged as
 * denied, with the reply code, after one AUTH, and without the password. */
Test(smtp_auth, wrong_password_rejected)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "wrong-pw";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(res.denied, "%s", res.error);
	cr_assert_eq(res.code, 535);
	_cleanup_free_ char *want =
		xasprintf("%s: the server refused the credentials (SMTP 535)", H.url);
	cr_assert_str_eq(res.error, want);
	cr_assert_eq(received("json"), 0);
	cr_assert_eq(received("auth"), 1, "one AUTH, not a loop");
}

/* The fake server offers AUTH and no STARTTLS (as when an attacker strips
 * it): with credentials and smtp_starttls unset, the password never goes
 * out, and the error says why. */
Test(smtp_auth, unset_starttls_with_credentials_sends_no_password)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = NULL;
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "s3cret";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert_not(res.denied);
	cr_assert(strstr(res.error, "offers no STARTTLS") && strstr(res.error, "nothing was sent"),
		  "%s", res.error);
	cr_assert_eq(received("auth"), 0, "the password reached the server");
	cr_assert_eq(received("json"), 0);
	/* credentials as user-info in the URL count too */
	_cleanup_free_ char *url = xasprintf("smtp://edibroker:s3cret@127.0.0.1:%d", H.port);
	cfg = smtp_config();
	cfg.smtp_starttls = NULL;
	cfg.smtp_url = url;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, "STARTTLS"), "%s", res.error);
	cr_assert_null(strstr(res.error, "s3cret"), "%s", res.error);
	cr_assert_eq(received("auth"), 0, "the password reached the server");
	/* only a written "no" sends it in clear */
	cfg.smtp_starttls = "no";
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert_eq(received("auth"), 1);
}

Test(smtp_auth, missing_credentials_rejected)
{
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, H.url), "%s", res.error);
	cr_assert_eq(received("json"), 0);
}

/* No helper: the peer is absent or silent. */
TestSuite(smtp_down, .init = make_dir, .fini = helper_stop, .timeout = 20);

Test(smtp_down, connection_refused_is_a_one_line_error)
{
	snprintf(H.url, sizeof(H.url), "smtp://127.0.0.1:%d", dead_port());
	struct notify_config cfg = smtp_config();
	cfg.timeout_ms = 2000;
	struct notify_message m = message();
	struct notify_result res;
	int64_t t0 = now_ms();
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert_lt(now_ms() - t0, 2000);
	cr_assert_not(res.ok);
	cr_assert(strncmp(res.error, H.url, strlen(H.url)) == 0, "%s", res.error);
	cr_assert(strstr(res.error, "onnect"), "%s", res.error);
	cr_assert_null(strchr(res.error, '\n'));
}

Test(smtp_down, silent_server_times_out)
{
	snprintf(H.url, sizeof(H.url), "smtp://127.0.0.1:%d", silent_port());
	struct notify_config cfg = smtp_config();
	cfg.timeout_ms = 500;
	struct notify_message m = message();
	struct notify_result res;
	int64_t t0 = now_ms();
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	int64_t took = now_ms() - t0;
	cr_assert(took >= 450 && took < 1500, "returned after %lld ms", (long long)took);
	cr_assert(strstr(res.error, "timed out"), "%s", res.error);
}

Test(smtp_down, password_never_in_the_error)
{
	snprintf(H.url, sizeof(H.url), "smtp://edibroker:hunter2@127.0.0.1:%d", dead_port());
	struct notify_config cfg = smtp_config();
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert_null(strstr(res.error, "hunter2"), "%s", res.error);
	cr_assert(strncmp(res.error, "smtp://***@127.0.0.1:", 21) == 0, "%s", res.error);
}

Test(smtp_down, no_url_no_mail)
{
	struct notify_config cfg = { .mail_from = MAIL_FROM };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert_str_eq(res.error, "e-mail: no smtp_url configured");
}

/* ---- webhook ---------------------------------------------------------------- */

TestSuite(webhook, .init = http_up, .fini = helper_stop, .timeout = 20);

static int post(const char *path, struct notify_message *m, struct notify_result *res)
{
	_cleanup_free_ char *url = xasprintf("%s%s", H.url, path);
	struct notify_config cfg = { .webhook_url = url, .timeout_ms = 5000 };
	return notify_webhook(&cfg, m, res);
}

/* Some KiB of JSON with UTF-8 in it. */
static char *big_payload(void)
{
	char *s = xstrdup("{\"notes\":[");
	for (int i = 0; i < 200; i++) {
		char *t = xasprintf("%s%s\"note %d æøå\"", s, i ? "," : "", i);
		free(s);
		s = t;
	}
	char *t = xasprintf("%s]}", s);
	free(s);
	return t;
}

Test(webhook, two_xx_is_ok_and_payload_arrives_byte_identical)
{
	_cleanup_free_ char *payload = big_payload();
	struct notify_message m = message();
	m.payload = payload;
	struct notify_result res;
	cr_assert_eq(post("/hook", &m, &res), 0, "%s", res.error);
	cr_assert(res.ok);
	cr_assert_eq(post("/status/204", &m, &res), 0, "%s", res.error);
	_cleanup_free_ char *body = received_file(1, "body");
	cr_assert_str_eq(body, payload);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "method"), "POST");
	cr_assert_str_eq(jstr(j, "path"), "/hook");
	cr_assert_str_eq(jstr(j, "headers.content-type"), "application/json");
	json_decref(j);
}

Test(webhook, http_500_is_an_error_without_the_body)
{
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(post("/status/500", &m, &res), -1);
	cr_assert_not(res.ok);
	_cleanup_free_ char *want = xasprintf("HTTP 500 from %s/status/500", H.url);
	cr_assert_str_eq(res.error, want);
	cr_assert_eq(received("body"), 1);
	_cleanup_free_ char *body = received_file(1, "body");
	cr_assert_str_eq(body, PAYLOAD);
}

Test(webhook, redirect_is_not_followed)
{
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(post("/redirect", &m, &res), -1);
	cr_assert(strncmp(res.error, "HTTP 302 from ", 14) == 0, "%s", res.error);
	cr_assert_eq(received("json"), 1, "the redirect was followed");
}

TestSuite(webhook_down, .init = make_dir, .fini = helper_stop, .timeout = 20);

Test(webhook_down, refused_names_the_url)
{
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%d/hook", dead_port());
	struct notify_config cfg = { .webhook_url = url, .timeout_ms = 2000 };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_webhook(&cfg, &m, &res), -1);
	cr_assert(strncmp(res.error, url, strlen(url)) == 0, "%s", res.error);
}

Test(webhook_down, silent_server_times_out)
{
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%d/hook", silent_port());
	struct notify_config cfg = { .webhook_url = url, .timeout_ms = 500 };
	struct notify_message m = message();
	struct notify_result res;
	int64_t t0 = now_ms();
	cr_assert_eq(notify_webhook(&cfg, &m, &res), -1);
	cr_assert_lt(now_ms() - t0, 1500);
	cr_assert(strstr(res.error, "timed out"), "%s", res.error);
}

/* ---- fallback command ----------------------------------------------------------- */

TestSuite(fallback, .init = make_dir, .fini = helper_stop, .timeout = 20);

static int run(const char *cmd, long timeout_ms, struct notify_message *m,
	       struct notify_result *res)
{
	struct notify_config cfg = { .fallback_command = cmd, .timeout_ms = timeout_ms };
	return notify_fallback(&cfg, m, res);
}

/* A payload far larger than a pipe's buffer. */
static char *huge_payload(size_t n)
{
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + i % 26);
	s[0] = '{';
	s[n - 1] = '}';
	s[n] = '\0';
	return s;
}

Test(fallback, payload_on_stdin_subject_and_recipients_in_env)
{
	setenv("NOTICE_SUBJECT", "stale value from the daemon's environment", 1);
	_cleanup_free_ char *payload = huge_payload(300 * 1024);
	_cleanup_free_ char *cmd = xasprintf(
		"cat > %s/0.stdin && printf '%%s\\n' \"$NOTICE_SUBJECT\" \"$NOTICE_RECIPIENTS\" "
		"\"$NOTICE_MESSAGE_ID\" > %s/0.env",
		H.dir, H.dir);
	struct notify_message m = message();
	m.payload = payload;
	struct notify_result res;
	cr_assert_eq(run(cmd, 5000, &m, &res), 0, "%s", res.error);
	cr_assert(res.ok);
	_cleanup_free_ char *in = received_file(0, "stdin");
	cr_assert(strcmp(in, payload) == 0, "stdin differs from the payload");
	_cleanup_free_ char *env = received_file(0, "env");
	_cleanup_free_ char *want = xasprintf("%s\n%s,%s,%s\noutage-17-initial\n", SUBJECT, RCPT[0],
					      RCPT[1], RCPT[2]);
	cr_assert_str_eq(env, want);
}

/* Under systemd the daemon has NOTIFY_SOCKET and WATCHDOG_*: a helper that
 * inherited them could report READY or STOPPING for the daemon, or keep
 * the watchdog quiet while the daemon hangs. The rest of the environment
 * (an operator's Environment= for the SMS script) is passed on. */
Test(fallback, child_gets_no_service_manager_variables)
{
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	setenv("WATCHDOG_USEC", "30000000", 1);
	setenv("WATCHDOG_PID", "1234", 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("EDIBROKER_SMS_TO", "+4511", 1);
	_cleanup_free_ char *cmd = xasprintf("env > %s/0.env", H.dir);
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run(cmd, 5000, &m, &res), 0, "%s", res.error);
	_cleanup_free_ char *env = received_file(0, "env");
	cr_assert_null(strstr(env, "NOTIFY_SOCKET"), "%s", env);
	cr_assert_null(strstr(env, "WATCHDOG_"), "%s", env);
	cr_assert_null(strstr(env, "LISTEN_FDS"), "%s", env);
	cr_assert_not_null(strstr(env, "EDIBROKER_SMS_TO=+4511\n"), "%s", env);
	cr_assert_not_null(strstr(env, "NOTICE_SUBJECT="), "%s", env);
	cr_assert_str_eq(getenv("NOTIFY_SOCKET"), "/run/systemd/notify",
			 "the daemon keeps its own");
}

Test(fallback, exit_status_is_an_error_with_the_first_line)
{
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run("echo 'gateway refused: no credit' >&2; echo more; exit 3", 5000, &m, &res),
		     -1);
	cr_assert_not(res.ok);
	cr_assert_str_eq(res.error, "fallback command exited with status 3: gateway refused: no credit");
}

Test(fallback, death_by_signal_is_an_error)
{
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run("kill -TERM $$", 5000, &m, &res), -1);
	cr_assert_str_eq(res.error, "fallback command killed by SIGTERM");
}

/* True when pid is gone or a zombie (killed, waiting for init to reap). */
static bool dead(pid_t pid)
{
	char path[64], stat[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return true;
	bool got = fgets(stat, sizeof(stat), f) != NULL;
	fclose(f);
	const char *st = strrchr(stat, ')');
	return !got || !st || st[2] == 'Z' || st[2] == 'X';
}

Test(fallback, timeout_kills_the_process_group_in_time)
{
	_cleanup_free_ char *cmd = xasprintf("sleep 30 & echo $! > %s/0.bg; sleep 30", H.dir);
	struct notify_message m = message();
	struct notify_result res;
	int64_t t0 = now_ms();
	cr_assert_eq(run(cmd, 500, &m, &res), -1);
	int64_t took = now_ms() - t0;
	cr_assert(took >= 450 && took < 1500, "returned after %lld ms", (long long)took);
	cr_assert(strstr(res.error, "timed out after 500 ms"), "%s", res.error);
	_cleanup_free_ char *bg = received_file(0, "bg");
	pid_t pid = atoi(bg);
	cr_assert_gt(pid, 1);
	int64_t deadline = now_ms() + 1000;
	while (!dead(pid) && now_ms() < deadline)
		usleep(10000);
	cr_assert(dead(pid), "background child %d of the command survived", (int)pid);
}

Test(fallback, command_that_ignores_a_huge_payload)
{
	_cleanup_free_ char *payload = huge_payload(1 << 20);
	struct notify_message m = message();
	m.payload = payload;
	struct notify_result res;
	int64_t t0 = now_ms();
	cr_assert_eq(run("exit 0", 5000, &m, &res), 0, "%s", res.error);
	cr_assert_lt(now_ms() - t0, 1000);
}

/* The child gets no stray fd, no blocked signal and no ignored SIGPIPE,
 * whatever the calling thread had (the daemon ignores SIGPIPE, and an
 * ignored signal survives exec: `... | head` in a script would misbehave).
 * dash clears its signal mask itself, so SigBlk guards other shells. */
Test(fallback, child_starts_clean)
{
	int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
	cr_assert(dup2(fd, 57) == 57);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	signal(SIGPIPE, SIG_IGN);
	_cleanup_free_ char *cmd = xasprintf("ls /proc/self/fd > %s/0.fds; "
					     "grep -E '^Sig(Blk|Ign):' /proc/self/status > %s/0.sig",
					     H.dir, H.dir);
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run(cmd, 5000, &m, &res), 0, "%s", res.error);
	_cleanup_free_ char *fds = received_file(0, "fds");
	cr_assert_null(strstr(fds, "57"), "fd 57 leaked into the command: %s", fds);
	_cleanup_free_ char *sig = received_file(0, "sig");
	unsigned long long blk = ~0ull, ign = ~0ull;
	cr_assert(sscanf(sig, "SigBlk: %llx SigIgn: %llx", &blk, &ign) == 2, "%s", sig);
	cr_assert_eq(blk, 0, "signals blocked in the command: %llx", blk);
	/* 1-31 only: glibc's posix_spawn leaves its internal signals 32 and 33
	 * ignored, and every glibc program sets them up again itself. */
	cr_assert_eq(ign & 0x7fffffffull, 0, "signals ignored in the command: %llx", ign);
}

/* The shipped example, run the way the daemon runs it. */
/* Each line without its first field (a timestamp). */
static char *without_first_field(const char *text)
{
	char *out = xcalloc(strlen(text) + 1, 1), *o = out;
	for (const char *p = text; *p;) {
		p += strcspn(p, " \n");
		size_t n = strcspn(p, "\n");
		memcpy(o, p, n + (p[n] == '\n'));
		o += n + (p[n] == '\n');
		p += n + (p[n] == '\n');
	}
	return out;
}

/* The shipped example, run the way the daemon runs it. */
Test(fallback, example_sms_script_logs_the_subject)
{
	_cleanup_free_ char *cmd = xasprintf("EDIBROKER_SMS_LOG=%s/0.log EDIBROKER_SMS_TO='+4511 +4522' "
					     "sh scripts/notify-sms-example.sh",
					     H.dir);
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run(cmd, 5000, &m, &res), 0, "%s", res.error);
	_cleanup_free_ char *log = received_file(0, "log");
	_cleanup_free_ char *got = without_first_field(log);
	_cleanup_free_ char *want = xasprintf(
		" to=+4511 id=outage-17-initial notice_bytes=%zu text=%s\n"
		" to=+4522 id=outage-17-initial notice_bytes=%zu text=%s\n",
		strlen(PAYLOAD), SUBJECT, strlen(PAYLOAD), SUBJECT);
	cr_assert_str_eq(got, want);
}

Test(fallback, not_configured)
{
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(run(NULL, 5000, &m, &res), -1);
	cr_assert_str_eq(res.error, "fallback: no fallback_command configured");
}

/* ---- TLS with a private CA, per channel (issue 8) ---------------------------- */

static char ca_file[96];

static void start_tls_peer(const char *script, const char *const *extra, const char *scheme,
			   const char *path)
{
	helper_start_args(script, extra);
	snprintf(H.url, sizeof(H.url), "%s://127.0.0.1:%d%s", scheme, H.port, path);
	snprintf(ca_file, sizeof(ca_file), "%s/tls/ca.pem", H.dir);
	cr_assert(access(ca_file, R_OK) == 0, "the peer wrote no %s", ca_file);
}

static void smtp_starttls_up(void)
{
	const char *const extra[] = { "--auth", "edibroker:s3cret", "--tls", "starttls", NULL };
	start_tls_peer(SMTP_SINK, extra, "smtp", "");
}

static void smtps_up(void)
{
	const char *const extra[] = { "--tls", "smtps", NULL };
	start_tls_peer(SMTP_SINK, extra, "smtps", "");
}

static void https_up(void)
{
	const char *const extra[] = { "--tls", "--token", "tok-123", NULL };
	start_tls_peer(HTTP_SINK, extra, "https", "/hook");
}

TestSuite(smtp_tls, .init = smtp_starttls_up, .fini = helper_stop, .timeout = 20);

/* Credentials, smtp_starttls unset: STARTTLS is required, and the server's
 * certificate is trusted only through the channel's own CA file. */
Test(smtp_tls, starttls_trusted_through_the_channel_ca_file)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = NULL;
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "s3cret";
	cfg.smtp_ca_file = ca_file;
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert_eq(received("json"), 1);
	cr_assert_eq(received("auth"), 1);
	_cleanup_free_ char *auth = received_file(1, "auth");
	json_t *a = json_loads(auth, 0, NULL);
	cr_assert(json_is_true(json_object_get(a, "tls")), "AUTH before STARTTLS: %s", auth);
	cr_assert(json_is_true(json_object_get(a, "ok")), "%s", auth);
	json_decref(a);
}

Test(smtp_tls, starttls_refused_without_the_ca_file)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = NULL;
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "s3cret";
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, "certificate") || strstr(res.error, "SSL"), "%s", res.error);
	cr_assert_eq(received("auth"), 0, "credentials went to an unverified server");
	cr_assert_eq(received("json"), 0);
}

TestSuite(smtps, .init = smtps_up, .fini = helper_stop, .timeout = 20);

Test(smtps, implicit_tls_trusted_only_through_the_ca_file)
{
	struct notify_config cfg = smtp_config();
	cfg.smtp_starttls = NULL;
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_email(&cfg, &m, &res), -1, "the host's store knows no private CA");
	cr_assert_eq(received("json"), 0);
	cfg.smtp_ca_file = ca_file;
	cr_assert_eq(notify_email(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert_eq(received("json"), 1);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "body"), BODY);
	json_decref(j);
}

TestSuite(webhook_tls, .init = https_up, .fini = helper_stop, .timeout = 20);

Test(webhook_tls, https_with_the_ca_file_and_the_bearer_token)
{
	struct notify_config cfg = { .webhook_url = H.url, .timeout_ms = 5000,
				     .webhook_token = "tok-123", .webhook_ca_file = ca_file };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_webhook(&cfg, &m, &res), 0, "%s", res.error);
	cr_assert_eq(res.code, 200);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "headers.authorization"), "Bearer tok-123");
	json_decref(j);
}

Test(webhook_tls, refused_without_the_ca_file_and_nothing_sent)
{
	struct notify_config cfg = { .webhook_url = H.url, .timeout_ms = 5000,
				     .webhook_token = "tok-123" };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_webhook(&cfg, &m, &res), -1);
	cr_assert(strstr(res.error, "certificate") || strstr(res.error, "SSL"), "%s", res.error);
	cr_assert_null(strstr(res.error, "tok-123"), "%s", res.error);
	cr_assert_eq(received("json"), 0, "the token went to an unverified server");
}

Test(webhook_tls, a_wrong_token_is_an_http_error_without_the_token)
{
	struct notify_config cfg = { .webhook_url = H.url, .timeout_ms = 5000,
				     .webhook_token = "not-the-token", .webhook_ca_file = ca_file };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_webhook(&cfg, &m, &res), -1);
	cr_assert_eq(res.code, 401);
	cr_assert_null(strstr(res.error, "not-the-token"), "%s", res.error);
}

/* ---- no secret in an error line ---------------------------------------------- */

Test(webhook, url_credentials_never_in_the_error)
{
	_cleanup_free_ char *url =
		xasprintf("http://ops:hunter2@127.0.0.1:%d/status/500?token=t0k3n#frag", H.port);
	struct notify_config cfg = { .webhook_url = url, .timeout_ms = 5000 };
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_webhook(&cfg, &m, &res), -1);
	_cleanup_free_ char *want =
		xasprintf("HTTP 500 from http://***@127.0.0.1:%d/status/500?***#***", H.port);
	cr_assert_str_eq(res.error, want);
	json_t *j = received_json(1);
	cr_assert_str_eq(jstr(j, "path"), "/status/500?token=t0k3n", "the real URL was used");
	json_decref(j);
}

Test(fallback, a_secret_the_command_echoes_is_scrubbed)
{
	struct notify_config cfg = {
		.fallback_command = "echo \"login hunter2 with t0k3n failed\"; exit 3",
		.smtp_password = "hunter2", .webhook_token = "t0k3n", .timeout_ms = 5000,
	};
	struct notify_message m = message();
	struct notify_result res;
	cr_assert_eq(notify_fallback(&cfg, &m, &res), -1);
	cr_assert_str_eq(res.error, "fallback command exited with status 3: login *** with *** failed");
}

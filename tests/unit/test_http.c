/*
 * test_http.c - the HTTP transport's rules without sockets (http_proto.c):
 * the answer for every ingest outcome and decoder error class, the problem
 * documents, the media types, bearer tokens (parsing, the credentials
 * table, constant-time comparison), certificate fingerprints, the
 * listener's whole-config rules over real config files, what a receiver's
 * answer means for a delivery, and the listen address; and two rules of
 * delivery (http_out.c): a name look-up that hangs never holds the loop,
 * and nothing is posted once the endpoint's lease is no longer trusted.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "codecs/base/mem.h"
#include "conf/config.h"
#include "tests/unit/testutil.h"
#include "transport/http.h"
#include "transport/transport.h"

/* ---- answers ------------------------------------------------------------- */

static struct http_answer outcome(enum ingest_result r, enum codec_errcode code)
{
	struct codec_error e = { code, "Envelope/Sender: missing" };
	struct ingest_outcome o = { .result = r, .id = 42, .reason = "why", .error = &e };
	struct http_answer a;
	http_answer_outcome(&o, &a);
	return a;
}

Test(http_answer, accepted_and_duplicate_are_202_with_the_id)
{
	struct http_answer a = outcome(INGEST_ACCEPTED, CODEC_OK);
	cr_assert_eq(a.status, 202);
	cr_assert(a.with_id);
	cr_assert_null(a.problem);
	a = outcome(INGEST_DUPLICATE, CODEC_OK);
	cr_assert_eq(a.status, 202, "a resubmission after a lost answer is accepted again");
	cr_assert(a.with_id);
	_cleanup_free_ char *body = http_answer_body(&a, NULL, 42);
	cr_assert_str_eq(body, "{\"id\":42}");
}

Test(http_answer, refusals_by_outcome)
{
	struct {
		enum ingest_result r;
		int status;
		const char *problem;
		int retry;
	} cases[] = {
		{ INGEST_DEAD, 422, "undeliverable", 0 },
		{ INGEST_FORBIDDEN, 403, "sender-not-owned", 0 },
		{ INGEST_BUSY, 503, "busy", 30 },
		{ INGEST_TEMPFAIL, 503, "store-unavailable", 10 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_answer a = outcome(cases[i].r, CODEC_OK);
		cr_assert_eq(a.status, cases[i].status, "outcome %d", cases[i].r);
		cr_assert_str_eq(a.problem, cases[i].problem);
		cr_assert_eq(a.retry_after_s, cases[i].retry, "%s", a.problem);
	}
	cr_assert(outcome(INGEST_DEAD, CODEC_OK).with_id, "a dead letter is kept: its id is told");
	cr_assert_not(outcome(INGEST_FORBIDDEN, CODEC_OK).with_id);
}

Test(http_answer, decoder_errors_unreadable_400_invalid_422_too_big_413)
{
	struct {
		enum codec_errcode c;
		int status;
		const char *problem;
	} cases[] = {
		{ CODEC_ETOOBIG, 413, "too-large" },	  { CODEC_EENCODING, 400, "encoding" },
		{ CODEC_ESYNTAX, 400, "syntax" },	  { CODEC_EHOSTILE, 400, "hostile" },
		{ CODEC_EDEPTH, 400, "depth" },		  { CODEC_EEXPENSIVE, 400, "too-expensive" },
		{ CODEC_ESTRUCTURE, 422, "structure" },	  { CODEC_EFIELD, 422, "field" },
		{ CODEC_ETYPE, 422, "type" },		  { CODEC_EVERSION, 422, "version" },
		{ CODEC_EADDRESS, 422, "address" },	  { CODEC_ESCHEMA, 422, "schema" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_answer a = outcome(INGEST_REJECTED, cases[i].c);
		cr_assert_eq(a.status, cases[i].status, "%s", cases[i].problem);
		cr_assert_str_eq(a.problem, cases[i].problem);
		cr_assert_eq(a.retry_after_s, 0);
	}
	/* a class the table does not know is still an answer */
	struct http_answer a = outcome(INGEST_REJECTED, (enum codec_errcode)999);
	cr_assert_eq(a.status, 400);
}

Test(http_answer, the_listeners_own_refusals)
{
	struct {
		enum http_refusal r;
		int status;
		const char *problem;
	} cases[] = {
		{ HTTP_REFUSE_NOT_FOUND, 404, "not-found" },
		{ HTTP_REFUSE_METHOD, 405, "method-not-allowed" },
		{ HTTP_REFUSE_NO_CREDENTIAL, 401, "unauthorized" },
		{ HTTP_REFUSE_BAD_TOKEN, 401, "invalid-token" },
		{ HTTP_REFUSE_CERT_NOT_BOUND, 401, "certificate-not-bound" },
		{ HTTP_REFUSE_CREDENTIAL_MISMATCH, 403, "credential-mismatch" },
		{ HTTP_REFUSE_MEDIA_TYPE, 415, "unsupported-media-type" },
		{ HTTP_REFUSE_EMPTY, 400, "empty" },
		{ HTTP_REFUSE_STOPPING, 503, "stopping" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_answer a;
		http_answer_refusal(cases[i].r, &a);
		cr_assert_eq(a.status, cases[i].status, "%s", cases[i].problem);
		cr_assert_str_eq(a.problem, cases[i].problem);
	}
	struct http_answer a;
	http_answer_refusal(HTTP_REFUSE_STOPPING, &a);
	cr_assert_gt(a.retry_after_s, 0, "a 503 says when to come back");
}

/* Every problem type is distinct: a client tells them apart by type alone. */
Test(http_answer, problem_types_are_distinct)
{
	const char *seen[64];
	size_t n = 0;
	for (int r = 0; r <= HTTP_REFUSE_STOPPING; r++) {
		struct http_answer a;
		http_answer_refusal((enum http_refusal)r, &a);
		seen[n++] = a.problem;
	}
	for (int c = CODEC_ETOOBIG; c <= CODEC_ERRCODE_LAST; c++)
		seen[n++] = outcome(INGEST_REJECTED, (enum codec_errcode)c).problem;
	for (int r = INGEST_DEAD; r <= INGEST_BUSY; r++)
		if (r != INGEST_REJECTED)
			seen[n++] = outcome((enum ingest_result)r, CODEC_OK).problem;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			cr_assert(strcmp(seen[i], seen[j]) != 0, "%s twice", seen[i]);
}

Test(http_answer, problem_document_is_rfc9457)
{
	struct http_answer a = outcome(INGEST_DEAD, CODEC_OK);
	_cleanup_free_ char *body = http_answer_body(&a, "no endpoint has receiver 5790000000012",
						     17);
	json_error_t je;
	json_t *o = json_loads(body, 0, &je);
	cr_assert_not_null(o, "%s: %s", body, je.text);
	cr_assert_str_eq(json_string_value(json_object_get(o, "type")),
			 "urn:edibroker:problem:undeliverable");
	cr_assert_eq(json_integer_value(json_object_get(o, "status")), 422);
	cr_assert_not_null(json_string_value(json_object_get(o, "title")));
	cr_assert_str_eq(json_string_value(json_object_get(o, "detail")),
			 "no endpoint has receiver 5790000000012");
	cr_assert_eq(json_integer_value(json_object_get(o, "id")), 17);
	json_decref(o);

	a = outcome(INGEST_BUSY, CODEC_OK);
	_cleanup_free_ char *busy = http_answer_body(&a, NULL, 0);
	o = json_loads(busy, 0, &je);
	cr_assert_not_null(o);
	cr_assert_null(json_object_get(o, "detail"), "no detail when none is given");
	cr_assert_null(json_object_get(o, "id"), "no id for what was not stored");
	cr_assert_eq(json_integer_value(json_object_get(o, "retry_after")), 30);
	json_decref(o);

	/* a detail that is not UTF-8 is left out rather than breaking the JSON */
	_cleanup_free_ char *bad = http_answer_body(&a, "\xff\xfe", 0);
	o = json_loads(bad, 0, &je);
	cr_assert_not_null(o, "%s", bad);
	cr_assert_null(json_object_get(o, "detail"));
	json_decref(o);
}

/* ---- media types ----------------------------------------------------------- */

Test(http_media, the_four_types_parameters_and_case)
{
	const char *ok[] = { "application/xml", "application/edifact", "application/fhir+xml",
			     "application/fhir+json", "Application/XML; charset=utf-8",
			     "  application/fhir+json ;fhirVersion=4.0" };
	const char *bad[] = { NULL, "", "text/xml", "application/json", "application/xmlx",
			      "application/xm", "multipart/form-data; boundary=x",
			      "application/x-www-form-urlencoded" };
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		cr_assert(http_media_type_ok(ok[i]), "%s", ok[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_not(http_media_type_ok(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
}

Test(http_media, outbound_type_by_format_then_extension)
{
	const char *xml = "<?xml version=\"1.0\"?><Emessage xmlns=\"http://rep.oio.dk/sundcom.dk/"
			  "medcom.dk/xml/schemas/2006/07/01/\"></Emessage>";
	const char *edi = "UNA:+.? 'UNB+UNOC:3+5790000143054:14+5790000143055:14+'";
	const char *fj = "{\"resourceType\":\"Bundle\"}";
	const char *fx = "<Bundle xmlns=\"http://hl7.org/fhir\"></Bundle>";
	cr_assert_str_eq(http_media_type_of((const uint8_t *)xml, strlen(xml), "xml"),
			 "application/xml");
	cr_assert_str_eq(http_media_type_of((const uint8_t *)edi, strlen(edi), "edi"),
			 "application/edifact");
	cr_assert_str_eq(http_media_type_of((const uint8_t *)fj, strlen(fj), "json"),
			 "application/fhir+json");
	cr_assert_str_eq(http_media_type_of((const uint8_t *)fx, strlen(fx), "xml"),
			 "application/fhir+xml");
	cr_assert_str_eq(http_media_type_of((const uint8_t *)"??", 2, "edi"),
			 "application/edifact");
	cr_assert_str_eq(http_media_type_of((const uint8_t *)"??", 2, "bin"),
			 "application/octet-stream");
}

/* ---- tokens and fingerprints ------------------------------------------------ */

Test(http_cred, constant_time_equal)
{
	uint8_t a[32] = { 1, 2, 3 }, b[32] = { 1, 2, 3 };
	cr_assert(http_ct_equal(a, b, 32));
	b[31] ^= 1;
	cr_assert_not(http_ct_equal(a, b, 32));
	b[31] ^= 1;
	b[0] ^= 0x80;
	cr_assert_not(http_ct_equal(a, b, 32));
	cr_assert(http_ct_equal(a, b, 0), "nothing compared is equal");
}

Test(http_cred, bearer_header)
{
	const char *t;
	size_t n;
	cr_assert_eq(http_bearer("Bearer abcDEF-._~+/123==", &t, &n), 0);
	cr_assert_eq(n, strlen("abcDEF-._~+/123=="));
	cr_assert_eq(strncmp(t, "abcDEF-._~+/123==", n), 0);
	cr_assert_eq(http_bearer("  bearer   tok  ", &t, &n), 0, "scheme is case-insensitive");
	cr_assert_eq(n, 3);
	cr_assert_eq(http_bearer(NULL, &t, &n), -ENOENT);
	const char *bad[] = { "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearertok",
			      "Bearer a b", "Bearer =abc", "Bearer a=b", "Bearer tok\"en",
			      "Bearer tök" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(http_bearer(bad[i], &t, &n), -EINVAL, "%s", bad[i]);
}

Test(http_cred, sha256_fingerprints)
{
	uint8_t fp[SHA256_LEN], want[SHA256_LEN];
	for (size_t i = 0; i < SHA256_LEN; i++)
		want[i] = (uint8_t)(i * 7 + 0xa0);
	char hex[65], colons[96];
	size_t k = 0;
	for (size_t i = 0; i < SHA256_LEN; i++) {
		snprintf(hex + 2 * i, 3, "%02x", want[i]);
		k += (size_t)snprintf(colons + k, sizeof(colons) - k, i ? ":%02X" : "%02X", want[i]);
	}
	cr_assert_eq(http_parse_sha256(hex, fp), 0);
	cr_assert_eq(memcmp(fp, want, SHA256_LEN), 0);
	memset(fp, 0, sizeof(fp));
	cr_assert_eq(http_parse_sha256(colons, fp), 0, "openssl's form: %s", colons);
	cr_assert_eq(memcmp(fp, want, SHA256_LEN), 0);
	char shorter[64];
	snprintf(shorter, sizeof(shorter), "%.62s", hex);
	char longer[70];
	snprintf(longer, sizeof(longer), "%s00", hex);
	char mixed[70];
	snprintf(mixed, sizeof(mixed), "%.2s:%s", hex, hex + 2);
	const char *bad[] = { "", shorter, longer, mixed, "zz" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(http_parse_sha256(bad[i], fp), -EINVAL, "%s", bad[i]);
}

/* ---- the credentials of a config, and the listener's rules ----------------- */

static char dir[PATH_MAX];
static char conf[PATH_MAX + 32];
static char err[1024];

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_http.XXXXXX");
	snprintf(conf, sizeof(conf), "%s/edibroker.conf", dir);
}

static void teardown(void)
{
	testutil_rm_rf(dir);
}

#define FP_A "aa5f8c7b6e0d9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203"
#define FP_B "bb5f8c7b6e0d9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203"
#define EP_A "[endpoint a]\nkind = hospital\ngln = 5790000143054\ninbox = %s/ia\noutbox = %s/oa\n"
#define EP_B "[endpoint b]\nkind = municipality\ngln = 5790000143061\ninbox = %s/ib\noutbox = %s/ob\n"

/* Loads broker (the [broker] lines), then endpoints a and b with their
 * extra lines. */
static int load(const char *broker, const char *a, const char *b, struct config **cfg)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *ea = xasprintf(EP_A, dir, dir), *eb = xasprintf(EP_B, dir, dir);
	text = xasprintf("[broker]\nstate_dir = %s/state\n%s\n%s%s\n%s%s\n", dir, broker, ea, a, eb,
			 b);
	testutil_write_file(conf, text, strlen(text));
	chmod(conf, 0600);
	err[0] = '\0';
	return config_load(conf, transport_schemas(), cfg, err, sizeof(err));
}

static struct config *load_ok(const char *broker, const char *a, const char *b)
{
	struct config *cfg = NULL;
	int r = load(broker, a, b, &cfg);
	cr_assert_eq(r, 0, "config_load: %s", err);
	return cfg;
}

TestSuite(http_conf, .init = setup, .fini = teardown);

Test(http_conf, tokens_and_certificates_name_their_endpoint)
{
	char tf[PATH_MAX + 16];
	snprintf(tf, sizeof(tf), "%s/b.token", dir);
	testutil_write_file(tf, "token-of-b-0123456789\n", 22);
	chmod(tf, 0640);
	_cleanup_free_ char *b = xasprintf("token_file = %s\npeer_cert_sha256 = %s\n", tf, FP_B);
	struct config *cfg = load_ok("", "token = token-of-a-0123456789\n", b);
	struct http_creds *c = http_creds_new(cfg, http_schema(), err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(http_creds_ntokens(c), 2);
	cr_assert_eq(http_creds_ncerts(c), 1);
	const char *ta = "token-of-a-0123456789", *tb = "token-of-b-0123456789";
	cr_assert_str_eq(http_creds_by_token(c, ta, strlen(ta)), "a");
	cr_assert_str_eq(http_creds_by_token(c, tb, strlen(tb)), "b", "read from token_file");
	cr_assert_null(http_creds_by_token(c, ta, strlen(ta) - 1), "a prefix is not the token");
	cr_assert_null(http_creds_by_token(c, "token-of-a-0123456780", strlen(ta)));
	uint8_t fp[SHA256_LEN];
	cr_assert_eq(http_parse_sha256(FP_B, fp), 0);
	cr_assert_str_eq(http_creds_by_cert(c, fp), "b");
	fp[0] ^= 1;
	cr_assert_null(http_creds_by_cert(c, fp));
	http_creds_free(c);
	config_free(cfg);
}

Test(http_conf, a_credential_of_two_endpoints_or_a_weak_token_is_refused)
{
	struct config *cfg = load_ok("", "token = same-token-0123456789\n",
				     "token = same-token-0123456789\n");
	cr_assert_null(http_creds_new(cfg, http_schema(), err, sizeof(err)));
	cr_assert(strstr(err, "endpoint 'b': token: endpoint 'a' has the same token"), "%s", err);
	cr_assert_null(strstr(err, "same-token"), "the token is never quoted: %s", err);
	config_free(cfg);

	cfg = load_ok("", "peer_cert_sha256 = " FP_A "\n", "peer_cert_sha256 = " FP_A "\n");
	cr_assert_null(http_creds_new(cfg, http_schema(), err, sizeof(err)));
	cr_assert(strstr(err, "is bound to endpoint 'a' too"), "%s", err);
	config_free(cfg);

	cfg = load_ok("", "token = short\n", "");
	cr_assert_null(http_creds_new(cfg, http_schema(), err, sizeof(err)));
	cr_assert(strstr(err, "endpoint 'a': token: a bearer token has at least 16"), "%s", err);
	cr_assert_null(strstr(err, "short"), "%s", err);
	config_free(cfg);

	cfg = load_ok("", "token = with space in it 0123456789\n", "");
	cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), -EINVAL, "not token68");
	config_free(cfg);
}

Test(http_conf, key_syntax_is_checked_as_the_file_is_read)
{
	struct config *cfg = NULL;
	cr_assert_lt(load("http_listen = localhost:8080\n", "", "", &cfg), 0);
	cr_assert(strstr(err, "http_listen"), "%s", err);
	cr_assert_lt(load("", "peer_cert_sha256 = 12:34\n", "", &cfg), 0);
	cr_assert(strstr(err, "not a SHA-256 fingerprint"), "%s", err);
	cfg = load_ok("http_listen = 127.0.0.1:0\n", "", "");
	const struct http_section *s = config_section(cfg, http_schema());
	cr_assert_str_eq(s->listen, "127.0.0.1:0");
	cr_assert_eq(s->max_connections, 32, "the default");
	cr_assert_eq(s->idle_timeout_ms, 30000);
	cr_assert_eq(s->request_timeout_ms, 120000);
	config_free(cfg);
}

Test(http_conf, tokens_never_in_clear_over_a_network)
{
	struct config *cfg = load_ok("http_listen = 0.0.0.0:8080\n",
				     "token = token-of-a-0123456789\n", "");
	cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "http_listen = 0.0.0.0:8080 is not a loopback address"), "%s", err);
	cr_assert(strstr(err, "endpoint 'a'"), "%s", err);
	config_free(cfg);
	/* on loopback, or without tokens, plain HTTP is allowed */
	cfg = load_ok("http_listen = 127.0.0.1:8080\n", "token = token-of-a-0123456789\n", "");
	cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), 0, "%s", err);
	config_free(cfg);
	cfg = load_ok("http_listen = [::1]:8080\n", "token = token-of-a-0123456789\n", "");
	cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), 0, "%s", err);
	config_free(cfg);
	cfg = load_ok("http_listen = 0.0.0.0:8080\n", "", "");
	cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), 0, "%s", err);
	config_free(cfg);
}

Test(http_conf, tls_keys_go_together)
{
	char cert[PATH_MAX + 16], key[PATH_MAX + 16];
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	testutil_write_file(cert, "x", 1);
	testutil_write_file(key, "x", 1);
	chmod(key, 0600);
	struct { const char *broker; const char *a; const char *want; } cases[] = {
		{ "tls_cert = %s/c.pem\n", "", "tls_cert needs tls_key" },
		{ "tls_key = %s/k.pem\n", "", "tls_key needs tls_cert" },
		{ "tls_client_ca = %s/c.pem\n", "", "tls_client_ca needs tls_cert" },
		{ "", "peer_cert_sha256 = " FP_A "\n", "without tls_client_ca" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *tls = xasprintf(cases[i].broker, dir);
		_cleanup_free_ char *broker = xasprintf("http_listen = 127.0.0.1:0\n%s", tls);
		struct config *cfg = load_ok(broker, cases[i].a, "");
		cr_assert_eq(http_in_validate(cfg, err, sizeof(err)), -EINVAL, "%s", cases[i].want);
		cr_assert(strstr(err, cases[i].want), "%s: %s", cases[i].want, err);
		config_free(cfg);
	}
	/* a key others can read refuses the load */
	chmod(key, 0644);
	_cleanup_free_ char *broker = xasprintf("tls_cert = %s/c.pem\ntls_key = %s/k.pem\n", dir,
						dir);
	struct config *cfg = NULL;
	cr_assert_lt(load(broker, "", "", &cfg), 0);
	cr_assert(strstr(err, "is open to others"), "%s", err);
}

/* ---- the receiver's answer --------------------------------------------------- */

Test(http_classify, delivered_rejected_or_failed)
{
	long delivered[] = { 200, 201, 202, 204, 299 };
	for (size_t i = 0; i < ARRAY_SIZE(delivered); i++) {
		struct http_class c = http_classify(delivered[i]);
		cr_assert_eq(c.verdict, HTTP_DELIVERED, "%ld", delivered[i]);
		cr_assert_eq(c.fault, FAULT_NONE);
	}
	long rejected[] = { 400, 413, 415, 422 };
	for (size_t i = 0; i < ARRAY_SIZE(rejected); i++) {
		struct http_class c = http_classify(rejected[i]);
		cr_assert_eq(c.verdict, HTTP_REJECTED, "%ld", rejected[i]);
		cr_assert_eq(c.fault, FAULT_REJECTED);
	}
	struct { long status; enum transport_fault fault; const char *words; } failed[] = {
		{ 401, FAULT_REFUSED, "configuration fault" }, { 403, FAULT_REFUSED, "configuration" },
		{ 404, FAULT_REFUSED, "configuration fault" }, { 405, FAULT_REFUSED, "configuration" },
		{ 408, FAULT_TIMEOUT, "timed out" },	       { 429, FAULT_REFUSED, "fewer" },
		{ 500, FAULT_IO, "failed" },		       { 502, FAULT_IO, "failed" },
		{ 503, FAULT_IO, "failed" },		       { 504, FAULT_TIMEOUT, "timed out" },
		{ 301, FAULT_REFUSED, "redirect" },	       { 302, FAULT_REFUSED, "not followed" },
		{ 409, FAULT_REFUSED, "refuses" },	       { 100, FAULT_IO, "" },
		{ 0, FAULT_IO, "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(failed); i++) {
		struct http_class c = http_classify(failed[i].status);
		cr_assert_eq(c.verdict, HTTP_FAILED, "%ld", failed[i].status);
		cr_assert_eq(c.fault, failed[i].fault, "%ld", failed[i].status);
		cr_assert(strstr(c.why, failed[i].words), "%ld: %s", failed[i].status, c.why);
	}
}

Test(http_classify, a_probe_is_up_on_any_answer_below_500)
{
	long up[] = { 200, 204, 301, 400, 401, 404, 405, 499 };
	for (size_t i = 0; i < ARRAY_SIZE(up); i++)
		cr_assert_eq(http_classify_probe(up[i]).verdict, HTTP_DELIVERED, "%ld", up[i]);
	long down[] = { 500, 502, 503, 599 };
	for (size_t i = 0; i < ARRAY_SIZE(down); i++)
		cr_assert_eq(http_classify_probe(down[i]).verdict, HTTP_FAILED, "%ld", down[i]);
}

Test(http_classify, transfer_errors)
{
	cr_assert_eq(http_curl_fault(CURLE_OK), FAULT_NONE);
	cr_assert_eq(http_curl_fault(CURLE_COULDNT_CONNECT), FAULT_REFUSED);
	cr_assert_eq(http_curl_fault(CURLE_COULDNT_RESOLVE_HOST), FAULT_REFUSED);
	cr_assert_eq(http_curl_fault(CURLE_OPERATION_TIMEDOUT), FAULT_TIMEOUT);
	cr_assert_eq(http_curl_fault(CURLE_PEER_FAILED_VERIFICATION), FAULT_TLS);
	cr_assert_eq(http_curl_fault(CURLE_SSL_CONNECT_ERROR), FAULT_TLS);
	cr_assert_eq(http_curl_fault(CURLE_SSL_CERTPROBLEM), FAULT_TLS);
	cr_assert_eq(http_curl_fault(CURLE_RECV_ERROR), FAULT_IO);
	cr_assert_eq(http_curl_fault(CURLE_GOT_NOTHING), FAULT_IO);
}

/* ---- the listen address ----------------------------------------------------- */

Test(http_listen, numeric_addresses_only)
{
	char host[64];
	uint16_t port;
	cr_assert_eq(http_parse_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 8080);
	cr_assert_eq(http_parse_listen("[::1]:8443", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 8443);
	cr_assert_eq(http_parse_listen("0.0.0.0:0", host, sizeof(host), &port), 0);
	cr_assert_eq(port, 0, "0: the kernel picks (tests)");
	const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", ":80", "localhost:80", "::1:80",
			      "[::1]80", "[127.0.0.1]:80", "127.0.0.1:65536", "127.0.0.1:-1",
			      "127.0.0.1:80x", "127.0.0.1:123456", "1.2.3:80" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(http_parse_listen(bad[i], host, sizeof(host), &port), -EINVAL, "%s",
			     bad[i]);
}

Test(http_listen, loopback)
{
	cr_assert(http_host_loopback("127.0.0.1"));
	cr_assert(http_host_loopback("127.1.2.3"));
	cr_assert(http_host_loopback("::1"));
	cr_assert(http_host_loopback("::ffff:127.0.0.1"));
	cr_assert_not(http_host_loopback("0.0.0.0"));
	cr_assert_not(http_host_loopback("::"));
	cr_assert_not(http_host_loopback("10.0.0.1"));
	cr_assert_not(http_host_loopback("128.0.0.1"));
	cr_assert_not(http_host_loopback("fe80::1"));
}

/* ---- http_out.c: a name look-up that hangs -------------------------------- */

/* Every host-name look-up of this test process hangs until release_lookups():
 * in a mount namespace of its own (nothing reaches the host's mounts),
 * /etc/hosts becomes a FIFO nobody writes, which nss_files blocks opening,
 * and nsswitch.conf consults nothing else. So the look-up behaves as one
 * against a DNS server or NSS module that does not answer. */
static char fifo[PATH_MAX + 16];

static void hang_lookups(void)
{
	char nss[PATH_MAX + 16];
	snprintf(fifo, sizeof(fifo), "%s/hosts", dir);
	snprintf(nss, sizeof(nss), "%s/nsswitch.conf", dir);
	cr_assert_eq(mkfifo(fifo, 0644), 0);
	testutil_write_file(nss, "hosts: files\n", 13);
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s (needs root)", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(mount(fifo, "/etc/hosts", NULL, MS_BIND, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(mount(nss, "/etc/nsswitch.conf", NULL, MS_BIND, NULL), 0, "%s",
		     strerror(errno));
}

/* Lets a look-up blocked in open(/etc/hosts) go on: it reads an empty file. */
static void release_lookups(void)
{
	int fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}

/* Releases the look-up after 3 s, so a cancel that waits for it fails the
 * test with its figure instead of hanging it. */
static void *release_later(void *arg)
{
	struct timespec ts = { 3, 0 };
	nanosleep(&ts, NULL);
	release_lookups();
	return NULL;
}

struct out_done {
	bool called;
	struct deliver_result res;
};

static void on_out_done(void *arg, const struct deliver_result *res)
{
	struct out_done *d = arg;
	d->called = true;
	d->res = *res;
}

static void run_loop_ms(struct event_base *base, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

TestSuite(http_out, .init = setup, .fini = teardown);

/* deliver.c cancels a delivery at its deadline on the event loop. libcurl
 * (7.88) waits for its resolver thread when a transfer is removed in the
 * middle of a look-up, unless told not to: a receiver whose name does not
 * resolve (a dead DNS server) would stop the whole daemon - every other
 * endpoint and the control socket - for as long as the look-up hangs. */
Test(http_out, a_name_lookup_that_hangs_never_holds_the_loop, .timeout = 30)
{
	hang_lookups();
	_cleanup_free_ char *text = xasprintf(
		"[broker]\nstate_dir = %s/state\n\n[endpoint r]\nkind = municipality\n"
		"transport = http\ngln = 5790000143061\nurl = http://receiver.hangs.example:8080/in\n"
		"delivery_timeout = 20s\n", dir);
	testutil_write_file(conf, text, strlen(text));
	struct config *cfg = NULL;
	cr_assert_eq(config_load(conf, transport_schemas(), &cfg, err, sizeof(err)), 0, "%s", err);
	struct event_base *base = event_base_new();
	struct transport_env env = { .base = base, .instance = "t", .cfg = cfg };
	struct http_out *o = http_out_new(config_endpoint(cfg, "r"), &env, err, sizeof(err));
	cr_assert_not_null(o, "%s", err);
	const char body[] = "<x/>";
	struct out_msg m = { .id = 1, .ext = "xml", .body = (const uint8_t *)body, .size = 4 };
	struct out_done d = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, release_later, NULL), 0);
	pthread_detach(t);

	http_out_deliver(o, &m, 1, on_out_done, &d);
	run_loop_ms(base, 300); /* the look-up starts and hangs */
	cr_assert_not(d.called, "the delivery ended while its look-up hangs: %s", d.res.error);
	int64_t t0 = clock_mono_ms();
	http_out_cancel(o); /* what deliver.c does at the deadline */
	int64_t took = clock_mono_ms() - t0;
	release_lookups();
	cr_assert_lt(took, 1000, "cancelling the delivery held the loop %lld ms for a name look-up",
		     (long long)took);
	run_loop_ms(base, 100);
	cr_assert(d.called, "the cancelled delivery did not complete");
	cr_assert_eq(d.res.delivered, 0);
	cr_assert_eq(d.res.fault, FAULT_TIMEOUT);
	http_out_free(o);
	event_base_free(base);
	config_free(cfg);
}

/* ---- delivery under a lease (several daemons) ------------------------------ */

struct posted {
	bool done;
	struct deliver_result res;
};

static void on_posted(void *arg, const struct deliver_result *res)
{
	struct posted *p = arg;
	p->res = *res;
	p->done = true;
}

/* A node whose lease is no longer trusted (paused past it) posts nothing:
 * the receiver (nobody listens on port 1) is never asked. */
Test(http_out, no_post_once_the_lease_is_not_trusted)
{
	struct event_base *base = event_base_new();
	struct http_conf hc = { .url = "http://127.0.0.1:1/in" };
	struct endpoint_conf ep = { .name = "kommune", .tconf = &hc, .delivery_timeout_ms = 5000 };
	static _Atomic int64_t until;
	atomic_store(&until, clock_mono_ms() - 1);
	struct transport_env env = { .base = base, .instance = "abcd1234", .send_until = &until };
	char e[256] = "";
	struct http_out *o = http_out_new(&ep, &env, e, sizeof(e));
	cr_assert_not_null(o, "%s", e);
	struct out_msg m = { 1, "xml", (const uint8_t *)"<x/>", 4 };
	struct posted p = { 0 };
	http_out_deliver(o, &m, 1, on_posted, &p);
	int64_t end = clock_mono_ms() + 5000;
	while (!p.done && clock_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert(p.done);
	cr_assert_eq(p.res.delivered, 0);
	cr_assert_eq(p.res.fault, FAULT_TIMEOUT, "fault %d: %s", p.res.fault, p.res.error);
	cr_assert_not_null(strstr(p.res.error, "lease"), "%s", p.res.error);
	http_out_free(o);
	event_base_free(base);
}

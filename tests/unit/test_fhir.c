/*
 * test_fhir.c - the FHIR codecs (fhir.c, fhir_xml.c, fhir_json.c) and the
 * registry's sniffing across every format.
 *
 * Layers: golden dumps over every sample in ../shared/medcom-samples/fhir
 * (or $EDIBROKER_SAMPLES_FHIR); XML and JSON of one message read the same;
 * every kind the issue names (HospitalNotification, CareCommunication,
 * HomeCareObservation, Acknowledgement) and an event code the broker has
 * never seen; negative inputs with their error class (missing MessageHeader,
 * two primary destinations, unresolved Organizations, no GLN, duplicate
 * JSON keys, depth bombs, oversize, bad UTF-8); FHIR inside a VANSEnvelope;
 * the Acknowledgement refusing a message (fatal-error with
 * MSG_Receiver_Identifier_UNKNOWN) in XML and JSON, byte for byte against
 * golden files and read back; and that every sample of every format is
 * claimed by exactly one codec, the right one. Run from the repository root.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codecs/base/base64.h"
#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"
#include "codecs/codec.h"
#include "codecs/edifact.h"
#include "codecs/fhir.h"
#include "codecs/oioxml.h"
#include "codecs/sbdh.h"
#include "codecs/vans.h"
#include "tests/unit/testutil.h"

#define GOLDEN "tests/golden/fhir"
#define GOLDEN_ACKS "tests/golden/fhir-acks"
#define SAMPLES_ROOT "../shared/medcom-samples"
#define BROKER_GLN "5790000000000"
#define HN_XML "HN_STIN_admit-inpatient_Bundle-a5e5b880.xml"
#define HN_JSON "HN_STIN_admit-inpatient_Bundle-a5e5b880.json"
#define HN_SENDER "5790000209354"
#define HN_RECEIVER "5790001348120"
/* The receiver Organization's GLN identifier, as the JSON sample writes it (CRLF). */
#define GLN_5790001348120                                                                          \
	"\"system\" : \"https://www.gs1.org/gln\",\r\n        \"value\" : \"5790001348120\""

struct result {
	int r;
	struct codec_envelope env;
	struct codec_error err;
};

static const char *samples_dir(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES_FHIR");
	return str_empty(d) ? SAMPLES_ROOT "/fhir" : d;
}

static char *load(const char *name, size_t *len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", samples_dir(), name);
	return testutil_read_file(path, len);
}

static struct result *decode_with(const struct codec *c, const void *buf, size_t len,
				  const struct codec_limits *lim)
{
	struct result *res = xcalloc(1, sizeof(*res));
	res->r = c ? c->decode(buf, len, lim, &res->env, &res->err)
		   : codec_decode_any(buf, len, lim, &res->env, &res->err);
	if (res->r == 0) {
		cr_assert_eq(res->env.nletters, 1);
	} else {
		cr_assert_eq(res->env.nletters, 0);
		for (const char *p = res->err.text; *p; p++)
			cr_assert(*p >= 0x20 && *p <= 0x7E, "error text not printable");
	}
	return res;
}

static struct result *decode_str(const char *s)
{
	return decode_with(NULL, s, strlen(s), NULL);
}

static void expect_error(const struct result *res, enum codec_errcode code, const char *needle)
{
	cr_assert_eq(res->r, -1, "decoded, expected %s", codec_errcode_name(code));
	cr_assert_eq(res->err.code, code, "got %s (%s), expected %s",
		     codec_errcode_name(res->err.code), res->err.text, codec_errcode_name(code));
	if (needle)
		cr_assert(strstr(res->err.text, needle), "'%s' not in '%s'", needle, res->err.text);
}

/* s with the first `from` replaced by `to` (a new string). */
static char *edit(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	cr_assert_not_null(at, "'%s' not in input", from);
	return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static struct result *decode_hn_xml_edited(const char *from, const char *to)
{
	size_t len;
	_cleanup_free_ char *s = load(HN_XML, &len);
	_cleanup_free_ char *m = edit(s, from, to);
	return decode_str(m);
}

static struct result *decode_hn_json_edited(const char *from, const char *to)
{
	size_t len;
	_cleanup_free_ char *s = load(HN_JSON, &len);
	_cleanup_free_ char *m = edit(s, from, to);
	return decode_str(m);
}

/* ---- (1) golden files -------------------------------------------------- */

Test(golden, every_sample_matches_its_golden_file)
{
	size_t n;
	char **names = testutil_list_files(samples_dir(), &n);
	cr_assert_geq(n, 11, "samples missing");
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ char *buf = load(names[i], &len);
		_cleanup_free_ struct result *res = decode_with(NULL, buf, len, NULL);
		cr_expect_eq(res->r, 0, "%s: %s", names[i], res->err.text);
		_cleanup_free_ char *got = testutil_dump_envelope(&res->env);
		_cleanup_free_ char *gpath = xasprintf(GOLDEN "/%s.golden", names[i]);
		testutil_expect_golden(gpath, got, strlen(got), names[i]);
	}
	testutil_free_names(names);
}

Test(golden, every_golden_file_has_a_sample)
{
	testutil_golden_files_have_samples(GOLDEN, samples_dir(), 11);
}

/* ---- (2) what a message says ------------------------------------------- */

Test(message, xml_and_json_of_one_message_read_the_same)
{
	size_t lx, lj;
	_cleanup_free_ char *x = load(HN_XML, &lx), *j = load(HN_JSON, &lj);
	_cleanup_free_ struct result *rx = decode_with(&codec_fhir_xml, x, lx, NULL);
	_cleanup_free_ struct result *rj = decode_with(&codec_fhir_json, j, lj, NULL);
	cr_assert_eq(rx->r, 0, "%s", rx->err.text);
	cr_assert_eq(rj->r, 0, "%s", rj->err.text);
	cr_assert_arr_eq(&rx->env.letters[0], &rj->env.letters[0], sizeof(struct codec_letter));
	cr_assert_str_eq(rx->env.envelope_id, rj->env.envelope_id);
	cr_assert_str_eq(rx->env.sent, rj->env.sent);
	cr_assert_str_eq(rx->env.txids[0].scope, rj->env.txids[0].scope, "one scope for both syntaxes");
	cr_assert_str_eq(rx->env.txids[0].id, rj->env.txids[0].id);
}

Test(message, routing_identity_and_sor_ids)
{
	size_t len;
	_cleanup_free_ char *x = load(HN_XML, &len);
	_cleanup_free_ struct result *res = decode_with(NULL, x, len, NULL);
	const struct codec_letter *l = &res->env.letters[0];
	cr_assert_eq(res->env.codec, &codec_fhir_xml);
	cr_assert_str_eq(l->type, "hospital-notification-message");
	cr_assert_str_eq(l->id, "b9b4818e-02de-4cc4-b418-d20cbc7b5404", "MessageHeader.id");
	cr_assert_str_eq(l->sender, HN_SENDER);
	cr_assert_str_eq(l->receiver, HN_RECEIVER);
	cr_assert_str_eq(l->receiver_sor, "953741000016009", "shown, not routed on");
	cr_assert_str_eq(res->env.envelope_id, "a5e5b880-c087-4055-b9ec-99108695f81d");
	cr_assert(res->env.ack_requested);
	cr_assert_not(res->env.is_receipt);
	uint8_t d[SHA256_LEN];
	sha256(x, len, d);
	cr_assert_arr_eq(res->env.txids[0].digest, d, SHA256_LEN, "Bundle.id names these bytes");
}

Test(message, every_kind_the_issue_names)
{
	static const struct {
		const char *file, *type, *version;
		bool receipt;
	} kinds[] = {
		{ HN_XML, "hospital-notification-message", "", false },
		{ "CC_new-message_Bundle-add5e7e2.xml", "care-communication-message", "5.0", false },
		{ "HCO_Bundle-401cbc36.xml", "homecareobservation-message", "1.1", false },
		{ "ACK_ok_Bundle-a8c041b8.xml", "acknowledgement-message", "", true },
		{ "messaging_empty-message_Bundle-eb26be85.xml", "empty-message", "", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		size_t len;
		_cleanup_free_ char *x = load(kinds[i].file, &len);
		_cleanup_free_ struct result *res = decode_with(NULL, x, len, NULL);
		cr_assert_eq(res->r, 0, "%s: %s", kinds[i].file, res->err.text);
		cr_expect_str_eq(res->env.letters[0].type, kinds[i].type, "%s", kinds[i].file);
		cr_expect_str_eq(res->env.letters[0].version, kinds[i].version, "%s", kinds[i].file);
		cr_expect_eq(res->env.is_receipt, kinds[i].receipt, "%s", kinds[i].file);
	}
}

Test(message, an_event_code_never_seen_is_routed)
{
	_cleanup_free_ struct result *res =
		decode_hn_xml_edited("<code value=\"hospital-notification-message\"/>",
				     "<code value=\"future-message\"/>");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.letters[0].type, "future-message");
}

Test(message, the_oid_gln_system_is_accepted)
{
	_cleanup_free_ struct result *res =
		decode_hn_json_edited(GLN_5790001348120, "\"system\" : \"urn:oid:1.3.88\",\r\n"
							 "        \"value\" : \"5790001348120\"");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.letters[0].receiver, HN_RECEIVER);
}

/* ---- (3) refused messages ---------------------------------------------- */

Test(negative, missing_message_header)
{
	_cleanup_free_ struct result *res = decode_hn_xml_edited("<MessageHeader>", "<MessageHeaderX>");
	expect_error(res, CODEC_ESYNTAX, NULL); /* the end tag no longer matches */
	_cleanup_free_ struct result *none = decode_hn_json_edited(
		"\"resourceType\" : \"MessageHeader\"", "\"resourceType\" : \"Basic\"");
	expect_error(none, CODEC_ESTRUCTURE, "Bundle has no MessageHeader");
	_cleanup_free_ struct result *order = decode_hn_json_edited(
		"\"resourceType\" : \"MessageHeader\"", "\"resourceType\" : \"Provenance\"");
	expect_error(order, CODEC_ESTRUCTURE, NULL);
}

Test(negative, two_primary_destinations_and_none)
{
	size_t len;
	_cleanup_free_ char *s = load(HN_XML, &len);
	const char *d0 = strstr(s, "<destination>"), *d1 = strstr(s, "</destination>");
	cr_assert(d0 && d1);
	d1 += strlen("</destination>");
	_cleanup_free_ char *two = xasprintf("%.*s%.*s%s", (int)(d1 - s), s, (int)(d1 - d0), d0, d1);
	_cleanup_free_ struct result *r2 = decode_str(two);
	expect_error(r2, CODEC_ESTRUCTURE, "MessageHeader has 2 primary destinations, not one");
	cr_assert_str_eq(r2->env.letters[0].sender, HN_SENDER, "kept to address the ack");
	cr_assert_str_eq(r2->env.letters[0].id, "b9b4818e-02de-4cc4-b418-d20cbc7b5404");
	_cleanup_free_ struct result *cc = decode_hn_xml_edited(
		"<code value=\"primary\"/>", "<code value=\"cc\"/>");
	expect_error(cc, CODEC_ESTRUCTURE, "MessageHeader has 0 primary destinations");
	_cleanup_free_ struct result *unmarked = decode_hn_xml_edited(
		"medcom-messaging-destinationUseExtension", "some-other-extension");
	expect_error(unmarked, CODEC_EFIELD, "destination without a primary or cc");
}

Test(negative, organizations_must_resolve_with_a_gln)
{
	_cleanup_free_ struct result *dangling = decode_hn_json_edited(
		"\"reference\" : \"Organization/o4cdf292-abf3-4f5f-80ea-60a48013ff6d\"",
		"\"reference\" : \"Organization/nowhere\"");
	expect_error(dangling, CODEC_ESTRUCTURE,
		     "MessageHeader.destination.receiver names no Organization in the Bundle");
	_cleanup_free_ struct result *nogln = decode_hn_json_edited(
		GLN_5790001348120,
		"\"system\" : \"https://example.org/other\",\r\n        \"value\" : \"5790001348120\"");
	expect_error(nogln, CODEC_EFIELD,
		     "MessageHeader.destination.receiver Organization has no GLN identifier");
	_cleanup_free_ struct result *sender = decode_hn_json_edited(
		"\"sender\" : {\r\n        \"reference\"", "\"sender\" : {\r\n        \"display\"");
	expect_error(sender, CODEC_EFIELD, "MessageHeader.sender has no reference");
}

Test(negative, bundle_fields)
{
	_cleanup_free_ struct result *type = decode_hn_xml_edited("<type value=\"message\"/>",
								  "<type value=\"collection\"/>");
	expect_error(type, CODEC_ESTRUCTURE, "Bundle.type is not message");
	_cleanup_free_ struct result *id = decode_hn_xml_edited(
		"<id value=\"a5e5b880-c087-4055-b9ec-99108695f81d\"/>", "<id value=\"a5e5 b880\"/>");
	expect_error(id, CODEC_EFIELD, "Bundle.id is not a FHIR id");
	_cleanup_free_ struct result *event = decode_hn_xml_edited(
		"http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-eventCodes",
		"http://example.org/events");
	expect_error(event, CODEC_ETYPE, "MessageHeader.eventCoding is not a MedCom event code");
	_cleanup_free_ struct result *ns = decode_hn_xml_edited("xmlns=\"http://hl7.org/fhir\"",
								"xmlns=\"urn:x\"");
	expect_error(ns, CODEC_ESTRUCTURE, "no codec recognises");
	_cleanup_free_ struct result *noprov = decode_hn_json_edited(
		"\"resourceType\" : \"Provenance\"", "\"resourceType\" : \"Basic\"");
	expect_error(noprov, CODEC_ESTRUCTURE, "Bundle has no Provenance");
}

Test(negative, json_duplicate_keys_are_refused)
{
	_cleanup_free_ struct result *res = decode_hn_json_edited(
		"\"type\" : \"message\"", "\"type\" : \"message\", \"type\" : \"message\"");
	expect_error(res, CODEC_ESYNTAX, "duplicate object key at line");
	_cleanup_free_ struct result *route = decode_hn_json_edited(
		"\"reference\" : \"Organization/o4cdf292-abf3-4f5f-80ea-60a48013ff6d\"",
		"\"reference\" : \"Organization/o4cdf292-abf3-4f5f-80ea-60a48013ff6d\", "
		"\"reference\" : \"Organization/o7056980-a8b2-42aa-8a0e-c1fc85d1f40d\"");
	expect_error(route, CODEC_ESYNTAX, "duplicate object key");
}

Test(negative, json_depth_bombs_are_refused_before_parsing)
{
	size_t n = 100000;
	char *bomb = xmalloc(2 * n + 1);
	memset(bomb, '[', n);
	memset(bomb + n, ']', n);
	bomb[0] = '{';
	bomb[2 * n - 1] = '}';
	bomb[2 * n] = '\0';
	_cleanup_free_ struct result *res = decode_str(bomb);
	free(bomb);
	expect_error(res, CODEC_EDEPTH, "JSON nesting deeper than the limit (64) at byte 64");
	/* brackets inside strings are text, escaped quotes do not end them */
	_cleanup_free_ char *s = xasprintf("{\"resourceType\": \"Bundle\", \"x\": \"\\\"%0200d[[[[\"}", 0);
	memset(strstr(s, "0000"), '[', 200);
	_cleanup_free_ struct result *ok = decode_str(s);
	expect_error(ok, CODEC_EFIELD, "Bundle.type is missing");
	struct codec_limits lim = { .max_depth = 4 };
	size_t len;
	_cleanup_free_ char *hn = load(HN_JSON, &len);
	_cleanup_free_ struct result *shallow = decode_with(NULL, hn, len, &lim);
	expect_error(shallow, CODEC_EDEPTH, NULL);
}

Test(negative, json_size_encoding_and_syntax)
{
	size_t len;
	_cleanup_free_ char *hn = load(HN_JSON, &len);
	struct codec_limits lim = { .max_bytes = len - 1 };
	_cleanup_free_ struct result *big = decode_with(&codec_fhir_json, hn, len, &lim);
	expect_error(big, CODEC_ETOOBIG, "limit");
	_cleanup_free_ struct result *latin1 = decode_str("{\"resourceType\": \"Bundle\xe6\"}");
	expect_error(latin1, CODEC_EENCODING, "invalid UTF-8 at byte offset 24");
	_cleanup_free_ struct result *nul = decode_str("{\"resourceType\": \"Bun\\u0000dle\"}");
	expect_error(nul, CODEC_EENCODING, "NUL character");
	_cleanup_free_ struct result *cut = decode_with(NULL, hn, len / 2, NULL);
	expect_error(cut, CODEC_ESYNTAX, "JSON ends early");
	_cleanup_free_ struct result *quote =
		decode_str("{\"resourceType\": \"Bundle\", \"secret-1111111111\" 1}");
	expect_error(quote, CODEC_ESYNTAX, "line 1 column");
	cr_assert_null(strstr(quote->err.text, "1111111111"), "error quotes content: %s",
		       quote->err.text);
	_cleanup_free_ struct result *array = decode_str("{} ");
	expect_error(array, CODEC_ESTRUCTURE, "not a FHIR Bundle");
}

Test(negative, every_truncation_of_the_xml_fails_cleanly)
{
	size_t len;
	_cleanup_free_ char *x = load(HN_XML, &len);
	for (size_t cut = 0; cut < len; cut += 53) {
		_cleanup_free_ struct result *res = decode_with(&codec_fhir_xml, x, cut, NULL);
		cr_assert_eq(res->r, -1, "decoded at %zu", cut);
	}
}

/* ---- (4) FHIR in a VANSEnvelope ---------------------------------------- */

static char *vans_around(const void *payload, size_t len, const char *receiver)
{
	_cleanup_free_ char *b64 = base64_encode(payload, len, NULL);
	return xasprintf("<VANSEnvelope xmlns=\"" VANS_NS "\"><SenderID EndPointType=\"EAN\">"
			 HN_SENDER "</SenderID><ReceiverID EndPointType=\"EAN\">%s</ReceiverID>"
			 "<EnvelopeIdentifier>e1</EnvelopeIdentifier><SentDateTime>"
			 "2024-03-01T08:15:00</SentDateTime><Message><MetaInformation><Identifier>m1"
			 "</Identifier><Document><Format>HL7</Format><Name>MCM:FDIS20#AdmissionInpatient"
			 "</Name><Version>3.0.0</Version><SizeInBytes>%zu</SizeInBytes></Document>"
			 "</MetaInformation><Data>%s</Data></Message></VANSEnvelope>",
			 receiver, len, b64);
}

Test(vans, fhir_json_in_a_vans_envelope)
{
	size_t len;
	_cleanup_free_ char *j = load(HN_JSON, &len);
	_cleanup_free_ char *v = vans_around(j, len, HN_RECEIVER);
	_cleanup_free_ struct result *res = decode_str(v);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.codec, &codec_vans);
	cr_assert_eq(res->env.inner, &codec_fhir_json);
	cr_assert_eq(res->env.ntxids, 2);
	cr_assert_str_eq(res->env.txids[0].scope, "vans");
	cr_assert_str_eq(res->env.txids[1].scope, "fhir");
	_cleanup_free_ char *wrong = vans_around(j, len, HN_SENDER);
	_cleanup_free_ struct result *bad = decode_str(wrong);
	expect_error(bad, CODEC_EADDRESS, "is not the receiver " HN_RECEIVER);
}

/* ---- (5) the Acknowledgement ------------------------------------------- */

static void fixed_uuid(void *ctx, char uuid[CODEC_UUID_LEN + 1])
{
	int *n = ctx;
	snprintf(uuid, CODEC_UUID_LEN + 1, "00000000-0000-4000-8000-%012d", ++*n);
}

static void fixed_id(void *ctx, char id[CODEC_ID_MAX])
{
	str_copy(id, "EB0123456789ab", CODEC_ID_MAX);
}

static struct codec_refusal_params ack_params(const char *gln, int *n)
{
	struct tm now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15,
			  .tm_gmtoff = 3600 };
	return (struct codec_refusal_params){
		.reason = CODEC_REFUSE_UNKNOWN_RECEIVER,
		.text = "Modtagerlokationsnummer har ikke kunnet identificeres.",
		.broker_id = "EDIBROKER", .broker_gln = gln, .now = now,
		.fresh_id = fixed_id, .fresh_uuid = fixed_uuid, .ctx = n,
	};
}

static void check_ack(const char *sample, const char *golden, const struct codec *want)
{
	size_t len;
	_cleanup_free_ char *x = load(sample, &len);
	_cleanup_free_ struct result *res = decode_with(NULL, x, len, NULL);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	int n = 0;
	struct codec_refusal_params p = ack_params(BROKER_GLN, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
	cr_assert_eq(n, 6, "six fresh UUIDs");
	cr_assert_str_eq(rc.format, want->name);
	cr_assert_str_eq(rc.ext, want->ext);
	cr_assert_str_eq(rc.type, "acknowledgement-message");
	cr_assert_str_eq(rc.receiver, HN_SENDER);
	cr_assert_str_eq(rc.sender, BROKER_GLN);
	cr_assert_str_eq(rc.refers, "a5e5b880-c087-4055-b9ec-99108695f81d");
	_cleanup_free_ char *gpath = xasprintf(GOLDEN_ACKS "/%s", golden);
	if (getenv("EDIBROKER_WRITE_GOLDEN"))
		testutil_write_file(gpath, rc.body, rc.size);
	size_t glen;
	_cleanup_free_ uint8_t *g = testutil_read_file(gpath, &glen);
	cr_assert_eq(rc.size, glen, "%.*s", (int)rc.size, (const char *)rc.body);
	cr_assert_arr_eq(rc.body, g, glen, "%s differs from its golden file", golden);
	/* It reads back as an Acknowledgement from the broker to the sender. */
	_cleanup_free_ struct result *back = decode_with(NULL, rc.body, rc.size, NULL);
	cr_assert_eq(back->r, 0, "%s", back->err.text);
	cr_assert_eq(back->env.codec, want);
	cr_assert(back->env.is_receipt);
	cr_assert_str_eq(back->env.letters[0].sender, BROKER_GLN);
	cr_assert_str_eq(back->env.letters[0].receiver, HN_SENDER);
	cr_assert_str_eq(back->env.letters[0].id, rc.key.id);
	const char *code = "MSG_Receiver_Identifier_UNKNOWN";
	cr_assert_not_null(memmem(rc.body, rc.size, code, strlen(code)));
	cr_assert_not_null(memmem(rc.body, rc.size, "fatal-error", 11));
	cr_assert_not_null(memmem(rc.body, rc.size, "b9b4818e-02de-4cc4-b418-d20cbc7b5404", 36),
			   "response.identifier is the refused MessageHeader.id");
	free(rc.body);
}

Test(ack, unknown_receiver_in_xml_is_a_fatal_error_acknowledgement)
{
	check_ack(HN_XML, "HN_STIN_unknown_receiver.xml", &codec_fhir_xml);
}

Test(ack, unknown_receiver_in_json_is_answered_in_json)
{
	check_ack(HN_JSON, "HN_STIN_unknown_receiver.json", &codec_fhir_json);
}

Test(ack, an_acknowledgement_is_never_answered)
{
	const char *acks[] = { "ACK_ok_Bundle-a8c041b8.xml", "ACK_fatal-error_Bundle-bc9535ef.xml",
			       "ACK_transient-error_Bundle-c9c2b2f6.xml" };
	for (size_t i = 0; i < ARRAY_SIZE(acks); i++) {
		size_t len;
		_cleanup_free_ char *x = load(acks[i], &len);
		_cleanup_free_ struct result *res = decode_with(NULL, x, len, NULL);
		int n = 0;
		struct codec_refusal_params p = ack_params(BROKER_GLN, &n);
		struct codec_receipt rc;
		cr_assert_eq(codec_refuse(&res->env, &p, &rc), -ENOTSUP, "%s", acks[i]);
	}
	/* nor a broken one */
	_cleanup_free_ struct result *broken = decode_hn_xml_edited(
		"<code value=\"hospital-notification-message\"/>\n        </eventCoding>",
		"<code value=\"acknowledgement-message\"/>\n        </eventCoding><sender/>");
	cr_assert_eq(broken->r, -1);
	cr_assert(broken->env.is_receipt);
}

Test(ack, refusals_are_worded_and_need_an_address)
{
	_cleanup_free_ struct result *two = decode_hn_xml_edited("<code value=\"primary\"/>",
								 "<code value=\"cc\"/>");
	int n = 0;
	struct codec_refusal_params p = ack_params(NULL, &n);
	p.reason = CODEC_REFUSE_SYNTAX;
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&two->env, &p, &rc), 0, "a refused message is acknowledged too");
	cr_assert_not_null(memmem(rc.body, rc.size, "<code value=\"structure\"/>", 25));
	cr_assert_null(memmem(rc.body, rc.size, "MSG_Receiver", 12));
	cr_assert_not_null(memmem(rc.body, rc.size, "<name value=\"EDIBROKER\"/>", 25),
			   "without a GLN the broker is named by its id");
	free(rc.body);
	p.fresh_uuid = NULL;
	cr_assert_eq(codec_refuse(&two->env, &p, &rc), -EINVAL);
	_cleanup_free_ struct result *noid = decode_str("{\"resourceType\": \"Bundle\"}");
	p.fresh_uuid = fixed_uuid;
	cr_assert_eq(codec_refuse(&noid->env, &p, &rc), -EINVAL, "nobody to answer");
}

/* ---- (6) sniffing is stable across every sample ------------------------ */

/* The codec each shared sample folder's files belong to. */
static const char *expected_codec(const char *dir, const char *name)
{
	if (strcmp(dir, "oioxml") == 0)
		return "oioxml";
	if (strcmp(dir, "edifact") == 0)
		return "edifact";
	if (strcmp(dir, "fhir") == 0)
		return strstr(name, ".json") ? "fhir-json" : "fhir-xml";
	return strstr(name, "SBDH") ? "sbdh" : "vans";
}

Test(sniff, every_sample_is_claimed_by_exactly_its_codec)
{
	static const char *const dirs[] = { "oioxml", "edifact", "vans-sbdh", "fhir" };
	static const struct codec *const all[] = { &codec_oioxml, &codec_edifact, &codec_vans,
						   &codec_sbdh, &codec_fhir_xml, &codec_fhir_json };
	for (size_t d = 0; d < ARRAY_SIZE(dirs); d++) {
		_cleanup_free_ char *dir = xasprintf(SAMPLES_ROOT "/%s", dirs[d]);
		size_t n;
		char **names = testutil_list_files(dir, &n);
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
			size_t len;
			_cleanup_free_ uint8_t *buf = testutil_read_file(path, &len);
			size_t claims = 0;
			for (size_t c = 0; c < ARRAY_SIZE(all); c++)
				claims += all[c]->sniff(buf, len);
			cr_expect_eq(claims, 1, "%s is claimed by %zu codecs", path, claims);
			const struct codec *c = codec_sniff(buf, len);
			cr_expect_str_eq(c ? c->name : "-", expected_codec(dirs[d], names[i]), "%s", path);
			cr_expect_eq(codec_find(expected_codec(dirs[d], names[i])), c);
		}
		testutil_free_names(names);
	}
}

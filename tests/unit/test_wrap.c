/*
 * test_wrap.c - the wrapping codecs, VANSEnvelope (vans.c, vans_receipt.c)
 * and SBDH (sbdh.c, sbdh_receipt.c), over the nested decode they share
 * (codec_wrap.c) and the charset hint of xmlsafe.
 *
 * Layers: golden dumps over every sample in ../shared/medcom-samples/vans-sbdh
 * (or $EDIBROKER_SAMPLES_WRAP); the payload decoded by its own codec, its
 * charset, ids that are not UUIDs; negative inputs, each with its error
 * class (broken base64, SizeInBytes mismatch, a payload that matches no
 * codec or does not decode, three wrappings deep, a receiver that is not
 * the letters', base64 expansion over the byte limit); truncation at every
 * length; and the receipts: VANS Receipt/NegativeVans byte for byte against
 * a golden file, valid against VANSEnvelope-1.0.4.xsd (xmllint --schema),
 * decoded back; the SBDH around the payload's own receipt (an XCTL01 valid
 * against EMessage.xsd, a NegativeVans for SBDH around VANS). Run from the
 * repository root.
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
#include "codecs/oioxml.h"
#include "codecs/sbdh.h"
#include "codecs/vans.h"
#include "tests/unit/testutil.h"

#define GOLDEN "tests/golden/vans-sbdh"
#define GOLDEN_RECEIPTS "tests/golden/wrap-receipts"
#define VANS_XSD "../shared/medcom-samples/schemas/VANSEnvelope-1.0.4.xsd"
#define HOSPITAL "5790002515200"
#define MUNICIPALITY "5790002508226"
#define BROKER_GLN "5790000000000"
#define FIXED_UUID "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

/* ---- helpers ----------------------------------------------------------- */

struct result {
	int r;
	struct codec_envelope env;
	struct codec_error err;
};

static const char *samples_dir(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES_WRAP");
	return str_empty(d) ? "../shared/medcom-samples/vans-sbdh" : d;
}

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return testutil_read_file(path, len);
}

static bool printable_line(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7E)
			return false;
	return true;
}

/* The codec.h contract every result keeps. */
static void check_contract(const struct result *res)
{
	const struct codec_envelope *e = &res->env;
	if (res->r == 0) {
		cr_assert_eq(res->err.code, CODEC_OK);
		cr_assert(e->nletters >= 1);
		cr_assert_not_null(e->inner);
		return;
	}
	cr_assert_eq(res->r, -1);
	cr_assert_neq(res->err.code, CODEC_OK);
	cr_assert_eq(e->nletters, 0, "nletters must be 0 on error");
	cr_assert(res->err.text[0] && printable_line(res->err.text), "error text: %s", res->err.text);
}

static struct result *decode_lim(const void *buf, size_t len, const struct codec_limits *lim)
{
	struct result *res = xcalloc(1, sizeof(*res));
	res->r = codec_decode_any(buf, len, lim, &res->env, &res->err);
	check_contract(res);
	return res;
}

static struct result *decode(const void *buf, size_t len)
{
	return decode_lim(buf, len, NULL);
}

static struct result *decode_str(const char *s)
{
	return decode(s, strlen(s));
}

static void expect_error(const struct result *res, enum codec_errcode code, const char *needle)
{
	cr_assert_eq(res->r, -1, "decoded, expected %s", codec_errcode_name(code));
	cr_assert_eq(res->err.code, code, "got %s (%s), expected %s",
		     codec_errcode_name(res->err.code), res->err.text, codec_errcode_name(code));
	if (needle)
		cr_assert(strstr(res->err.text, needle), "'%s' not in '%s'", needle, res->err.text);
}

static char *sample_oioxml(const char *name, size_t *len)
{
	return (char *)load("../shared/medcom-samples/oioxml", name, len);
}

/* A VANSEnvelope around payload; size -1 means its real length, anything
 * else is written as SizeInBytes. */
static char *vans_around(const void *payload, size_t len, const char *receiver,
			 const char *receiver_type, long long size)
{
	_cleanup_free_ char *b64 = base64_encode(payload, len, NULL);
	return xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<VANSEnvelope xmlns=\"" VANS_NS "\">\n"
			 "  <SenderID EndPointType=\"EAN\">" HOSPITAL "</SenderID>\n"
			 "  <ReceiverID EndPointType=\"%s\">%s</ReceiverID>\n"
			 "  <EnvelopeIdentifier>11111111-2222-4333-8444-555555555555</EnvelopeIdentifier>\n"
			 "  <SentDateTime>2024-03-01T08:15:00</SentDateTime>\n"
			 "  <Message>\n    <MetaInformation>\n"
			 "      <Identifier>66666666-7777-4888-9999-aaaaaaaaaaaa</Identifier>\n"
			 "      <Document><Format>XML</Format><Name>XDIS20</Name><Version>XD2030C</Version>"
			 "<SizeInBytes>%lld</SizeInBytes></Document>\n"
			 "    </MetaInformation>\n    <Data>%s</Data>\n  </Message>\n</VANSEnvelope>\n",
			 receiver_type, receiver, size == -1 ? (long long)len : size, b64);
}

static char *vans_around_default(const void *payload, size_t len)
{
	return vans_around(payload, len, "5790000143055", "EAN", -1);
}

/* An SBDH around payload with BinaryContent/@encoding (NULL: none). */
static char *sbdh_around(const void *payload, size_t len, const char *receiver,
			 const char *encoding)
{
	_cleanup_free_ char *b64 = base64_encode(payload, len, NULL);
	_cleanup_free_ char *enc = encoding ? xasprintf(" encoding=\"%s\"", encoding) : xstrdup("");
	return xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<StandardBusinessDocument xmlns=\"" SBDH_NS "\">\n"
			 "<StandardBusinessDocumentHeader><HeaderVersion>1.0</HeaderVersion>"
			 "<Sender><Identifier Authority=\"iso6523-actorid-upis\">0088:5790000143054"
			 "</Identifier></Sender><Receiver><Identifier Authority=\"iso6523-actorid-upis\">"
			 "%s</Identifier></Receiver><DocumentIdentification>"
			 "<Standard>urn:dk:healthcare:medcom:oioxml:schema:xsd:NotificationOfAdmission"
			 "</Standard><TypeVersion>XD2030C</TypeVersion><InstanceIdentifier>"
			 "5790000143054:24681012</InstanceIdentifier><Type>XDIS20</Type>"
			 "<CreationDateAndTime>2024-03-01T08:15:00</CreationDateAndTime>"
			 "</DocumentIdentification></StandardBusinessDocumentHeader>\n"
			 "<BinaryContent mimeType=\"text/xml\"%s>%s</BinaryContent>\n"
			 "</StandardBusinessDocument>\n",
			 receiver, enc, b64);
}

static char *sbdh_around_default(const void *payload, size_t len)
{
	return sbdh_around(payload, len, "0088:5790000143055", NULL);
}

/* ---- refusal parameters ------------------------------------------------ */

static void golden_id(void *ctx, char id[CODEC_ID_MAX])
{
	str_copy(id, "EB0123456789ab", CODEC_ID_MAX);
}

static void golden_uuid(void *ctx, char uuid[CODEC_UUID_LEN + 1])
{
	int *n = ctx;
	if (n)
		++*n;
	str_copy(uuid, FIXED_UUID, CODEC_UUID_LEN + 1);
}

static struct codec_refusal_params params(enum codec_refusal why, const char *gln, int *uuids)
{
	struct tm now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15,
			  .tm_gmtoff = 3600 };
	return (struct codec_refusal_params){
		.reason = why, .text = "Modtagerlokationsnummer har ikke kunnet identificeres.",
		.broker_id = "EDIBROKER", .broker_gln = gln, .now = now,
		.fresh_id = golden_id, .fresh_uuid = golden_uuid, .ctx = uuids,
	};
}

/* Writes buf to a temporary file and runs xmllint --schema on it. */
static void assert_xmllint_valid(const char *xsd, const void *buf, size_t len)
{
	char dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_wrap.XXXXXX");
	_cleanup_free_ char *path = xasprintf("%s/receipt.xml", dir);
	testutil_write_file(path, buf, len);
	_cleanup_free_ char *cmd = xasprintf("xmllint --noout --nonet --schema '%s' '%s' 2>&1", xsd, path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char out[4096] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	testutil_rm_rf(dir);
	cr_assert_eq(st, 0, "xmllint --schema %s: %s\n%.*s", xsd, out, (int)len, (const char *)buf);
}

/* The payload of an SBDH receipt, base64-decoded. */
static uint8_t *sbdh_payload(const struct codec_receipt *rc, size_t *len)
{
	const char *start = memmem(rc->body, rc->size, "<BinaryContent", 14);
	cr_assert_not_null(start);
	start = strchr(start, '>') + 1;
	const char *end = strstr(start, "</BinaryContent>");
	cr_assert_not_null(end);
	size_t bad;
	uint8_t *out = xmalloc(base64_decoded_size(start, (size_t)(end - start)) + 1);
	long n = base64_decode(start, (size_t)(end - start), out, &bad);
	cr_assert_geq(n, 0);
	*len = (size_t)n;
	return out;
}

/* ---- (1) golden files over every sample -------------------------------- */

Test(golden, every_sample_matches_its_golden_file)
{
	size_t n;
	char **names = testutil_list_files(samples_dir(), &n);
	cr_assert_geq(n, 3, "samples missing");
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = load(samples_dir(), names[i], &len);
		_cleanup_free_ struct result *res = decode(buf, len);
		cr_expect_eq(res->r, 0, "%s: %s", names[i], res->err.text);
		_cleanup_free_ char *got = testutil_dump_envelope(&res->env);
		_cleanup_free_ char *gpath = xasprintf(GOLDEN "/%s.golden", names[i]);
		testutil_expect_golden(gpath, got, strlen(got), names[i]);
	}
	testutil_free_names(names);
}

Test(golden, every_golden_file_has_a_sample)
{
	testutil_golden_files_have_samples(GOLDEN, samples_dir(), 3);
}

/* ---- (2) VANSEnvelope -------------------------------------------------- */

Test(vans, region_h_payload_is_decoded_by_its_own_codec)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "XDIS18_regionh_VANSEnvelope.xml", &len);
	_cleanup_free_ struct result *res = decode(buf, len);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	const struct codec_envelope *e = &res->env;
	cr_assert_eq(e->codec, &codec_vans);
	cr_assert_eq(e->inner, &codec_oioxml);
	cr_assert_str_eq(e->encoding, "ISO-8859-1", "Latin-1 payload without a declaration");
	cr_assert_eq(e->nlayers, 1);
	cr_assert_str_eq(e->layers[0].id, "EPIC394319568", "non-UUID ids are accepted");
	cr_assert_str_eq(e->layers[0].sender, HOSPITAL);
	cr_assert_str_eq(e->layers[0].receiver_kind, "EAN");
	cr_assert_eq(e->layers[0].declared_size, 10906);
	cr_assert_str_eq(e->letters[0].type, "XDIS18");
	cr_assert_str_eq(e->letters[0].receiver, MUNICIPALITY);
	cr_assert_eq(e->ntxids, 1);
	cr_assert_str_eq(e->txids[0].scope, "vans");
	cr_assert_str_eq(e->txids[0].id, "EPIC394319568");
}

Test(vans, the_txid_digest_is_the_payloads)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around_default(dis20, len);
	_cleanup_free_ struct result *res = decode_str(a);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	uint8_t d[SHA256_LEN];
	sha256(dis20, len, d);
	cr_assert_arr_eq(res->env.txids[0].digest, d, SHA256_LEN);
	cr_assert_str_eq(res->env.encoding, "windows-1252", "the payload's own declaration");
}

Test(vans, broken_base64_is_refused_with_the_layer_kept)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around_default(dis20, len);
	char *data = strstr(a, "<Data>") + 6;
	data[10] = '*';
	_cleanup_free_ struct result *res = decode_str(a);
	expect_error(res, CODEC_ESYNTAX, "VANSEnvelope Data is not base64 (character 11)");
	cr_assert_eq(res->env.nlayers, 1);
	cr_assert_str_eq(res->env.layers[0].sender, HOSPITAL);
	cr_assert_str_eq(res->env.layers[0].id, "11111111-2222-4333-8444-555555555555");
	cr_assert_null(res->env.inner);
}

Test(vans, size_in_bytes_must_match_the_decoded_payload)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around(dis20, len, "5790000143055", "EAN", (long long)len + 1);
	_cleanup_free_ struct result *res = decode_str(a);
	expect_error(res, CODEC_EFIELD, "Data decodes to 1510 bytes, Document/SizeInBytes says 1511");
	_cleanup_free_ char *neg = vans_around(dis20, len, "5790000143055", "EAN", -2);
	char *at = strstr(neg, "<SizeInBytes>-2");
	cr_assert_not_null(at);
	_cleanup_free_ struct result *r2 = decode_str(neg);
	expect_error(r2, CODEC_EFIELD, "SizeInBytes is not a number of bytes");
}

Test(vans, a_payload_no_codec_knows_is_refused)
{
	const char *pdf = "%PDF-1.4 not a MedCom message";
	_cleanup_free_ char *a = vans_around_default(pdf, strlen(pdf));
	_cleanup_free_ struct result *res = decode_str(a);
	expect_error(res, CODEC_ESTRUCTURE, "VANSEnvelope Data: no codec recognises the input");
	cr_assert_eq(res->env.codec, &codec_vans);
	cr_assert_null(res->env.inner);
}

Test(vans, a_payload_that_does_not_decode_keeps_its_codec_and_address)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	char *recv = strstr(dis20, "<Receiver><EANIdentifier>");
	cr_assert_not_null(recv);
	memcpy(recv + 1, "Xeceiver", 8); /* <Xeceiver>...</Receiver>: not well-formed */
	_cleanup_free_ char *a = vans_around_default(dis20, len);
	_cleanup_free_ struct result *res = decode_str(a);
	expect_error(res, CODEC_ESYNTAX, "VANSEnvelope Data: not well-formed");
	cr_assert_eq(res->env.inner, &codec_oioxml);
	cr_assert_str_eq(res->env.layers[0].sender, HOSPITAL);
}

Test(vans, an_ean_receiver_must_be_the_letters_receiver)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around(dis20, len, "5790000999999", "EAN", -1);
	_cleanup_free_ struct result *res = decode_str(a);
	expect_error(res, CODEC_EADDRESS,
		     "VANSEnvelope ReceiverID 5790000999999 is not the receiver 5790000143055 of "
		     "letter 1 (24681012)");
	cr_assert_eq(codec_errcode_refusal(res->err.code), CODEC_REFUSE_RECEIVER_ID);
	_cleanup_free_ char *b = vans_around(dis20, len, "SOMEVANSID", "VANS", -1);
	_cleanup_free_ struct result *ok = decode_str(b);
	cr_assert_eq(ok->r, 0, "a VANS-id receiver is not a GLN to compare: %s", ok->err.text);
}

Test(vans, structure_errors_name_the_element)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around_default(dis20, len);
	struct {
		const char *from, *to;
		enum codec_errcode code;
		const char *needle;
	} cases[] = {
		{ "EndPointType=\"EAN\">" HOSPITAL, "EndPointType=\"GLN\">" HOSPITAL, CODEC_EFIELD,
		  "SenderID/@EndPointType is not EAN, CVR or VANS" },
		{ "<SentDateTime>", "<Sent>", CODEC_ESYNTAX, NULL },
		{ "<Format>XML</Format>", "<Format>PDF</Format>", CODEC_EFIELD, "Document/Format" },
		{ VANS_NS, "urn:oio:medcom:vans-envelope:1.0.3", CODEC_ESTRUCTURE,
		  "namespace is not " VANS_NS },
		{ "<SentDateTime>2024-03-01T08:15:00</SentDateTime>", "", CODEC_ESTRUCTURE,
		  "SentDateTime expected as child 4" },
		{ "<Identifier>66666666-7777-4888-9999-aaaaaaaaaaaa</Identifier>", "", CODEC_EFIELD,
		  "MetaInformation: missing Identifier" },
		{ "</Message>\n", "</Message><Extra/>\n", CODEC_ESTRUCTURE,
		  "an element follows Message" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *at = strstr(a, cases[i].from);
		cr_assert_not_null(at, "%s", cases[i].from);
		_cleanup_free_ char *m = xasprintf("%.*s%s%s", (int)(at - a), a, cases[i].to,
						   at + strlen(cases[i].from));
		_cleanup_free_ struct result *res = decode_str(m);
		expect_error(res, cases[i].code, cases[i].needle);
	}
}

Test(vans, a_receipt_is_one_bare_letter_routed_by_receiver_id)
{
	const char *doc = "<VANSEnvelope xmlns=\"" VANS_NS "\">"
			  "<SenderID EndPointType=\"EAN\">5790000143055</SenderID>"
			  "<ReceiverID EndPointType=\"EAN\">5790000143054</ReceiverID>"
			  "<EnvelopeIdentifier>EPIC1</EnvelopeIdentifier>"
			  "<SentDateTime>2024-03-01T08:15:00</SentDateTime>"
			  "<Receipt><PositiveMessage><OriginalEnvelopeIdentifier>EPIC0"
			  "</OriginalEnvelopeIdentifier><OriginalMessage><Identifier>M0</Identifier>"
			  "<Document><Format>XML</Format><Name>XDIS20</Name><SizeInBytes>1"
			  "</SizeInBytes></Document></OriginalMessage></PositiveMessage></Receipt>"
			  "</VANSEnvelope>";
	_cleanup_free_ struct result *res = decode_str(doc);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert(res->env.is_receipt);
	cr_assert_eq(res->env.nlayers, 0);
	cr_assert_eq(res->env.ntxids, 0);
	cr_assert_eq(res->env.inner, &codec_vans);
	cr_assert_str_eq(res->env.letters[0].type, "PositiveMessage");
	cr_assert_str_eq(res->env.letters[0].id, "EPIC1");
	cr_assert_str_eq(res->env.letters[0].receiver, "5790000143054");
	struct codec_receipt rc;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, NULL, NULL);
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), -ENOTSUP, "a receipt is never answered");
}

Test(vans, a_wrapped_receipt_is_a_receipt)
{
	size_t len;
	_cleanup_free_ char *ctl = sample_oioxml("CTL03_1.xml", &len);
	_cleanup_free_ char *a = vans_around(ctl, len, "5790000181872", "EAN", -1);
	_cleanup_free_ struct result *res = decode_str(a);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert(res->env.is_receipt);
	struct codec_receipt rc;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, NULL, NULL);
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), -ENOTSUP);
}

Test(vans, every_truncation_fails_cleanly)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "XDIS18_regionh_VANSEnvelope.xml", &len);
	for (size_t cut = 0; cut < len; cut += cut < 800 ? 1 : 97) {
		_cleanup_free_ struct result *res = decode(buf, cut);
		cr_assert_eq(res->r, -1, "decoded at %zu bytes", cut);
		const char *s = res->env.nlayers ? res->env.layers[0].sender : "";
		cr_assert(s[0] == '\0' || strcmp(s, HOSPITAL) == 0, "cut sender at %zu: %s", cut, s);
	}
}

/* ---- (3) SBDH ---------------------------------------------------------- */

Test(sbdh, region_h_sbdh_routes_by_its_0088_receiver)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "XDIS20_regionh_SBDH.xml", &len);
	_cleanup_free_ struct result *res = decode(buf, len);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	const struct codec_envelope *e = &res->env;
	cr_assert_eq(e->codec, &codec_sbdh);
	cr_assert_eq(e->inner, &codec_oioxml);
	cr_assert_str_eq(e->encoding, "ISO-8859-1", "from BinaryContent/@encoding");
	cr_assert_str_eq(e->layers[0].sender_kind, "0088");
	cr_assert_str_eq(e->layers[0].sender, HOSPITAL);
	cr_assert_str_eq(e->layers[0].receiver, MUNICIPALITY);
	cr_assert_str_eq(e->layers[0].id, "5790002515200:EPIC394363364");
	cr_assert_str_eq(e->layers[0].doc_name, "XDIS20");
	cr_assert_str_eq(e->letters[0].id, "EPIC394363364");
	cr_assert_str_eq(e->txids[0].scope, "sbdh");
}

Test(sbdh, the_encoding_attribute_stands_in_for_a_missing_declaration)
{
	const char *latin1 =
		"<Emessage xmlns=\"http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/\">"
		"<Envelope><Sent><Date>2024-03-01</Date><Time>08:15</Time></Sent><Identifier>E1"
		"</Identifier><AcknowledgementCode>minuspositivkvitt</AcknowledgementCode></Envelope>"
		"<NotificationOfAdmission><Letter><Identifier>L1</Identifier><VersionCode>XD2030C"
		"</VersionCode><StatisticalCode>XDIS20</StatisticalCode><TypeCode>XDIS20</TypeCode>"
		"</Letter><Sender><EANIdentifier>5790000143054</EANIdentifier><OrganisationName>"
		"K\xf8" "ge</OrganisationName></Sender><Receiver><EANIdentifier>5790000143055"
		"</EANIdentifier></Receiver></NotificationOfAdmission></Emessage>";
	_cleanup_free_ char *as_latin1 = sbdh_around(latin1, strlen(latin1), "0088:5790000143055",
						     "ISO-8859-1");
	_cleanup_free_ struct result *ok = decode_str(as_latin1);
	cr_assert_eq(ok->r, 0, "%s", ok->err.text);
	cr_assert_str_eq(ok->env.encoding, "ISO-8859-1");
	_cleanup_free_ char *as_utf8 = sbdh_around(latin1, strlen(latin1), "0088:5790000143055",
						   "UTF-8");
	_cleanup_free_ struct result *bad = decode_str(as_utf8);
	expect_error(bad, CODEC_EENCODING, "SBDH BinaryContent: invalid UTF-8 at byte offset");
	_cleanup_free_ char *koi = sbdh_around(latin1, strlen(latin1), "0088:5790000143055", "KOI8-R");
	_cleanup_free_ struct result *unsup = decode_str(koi);
	expect_error(unsup, CODEC_EENCODING, "unsupported encoding KOI8-R (the wrapping's)");
	_cleanup_free_ char *none = sbdh_around(latin1, strlen(latin1), "0088:5790000143055", NULL);
	_cleanup_free_ struct result *detected = decode_str(none);
	cr_assert_eq(detected->r, 0, "%s", detected->err.text);
	cr_assert_str_eq(detected->env.encoding, "ISO-8859-1", "detected without the attribute");
}

Test(sbdh, the_payloads_own_declaration_outranks_the_attribute)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len); /* windows-1252 */
	_cleanup_free_ char *s = sbdh_around(dis20, len, "0088:5790000143055", "UTF-8");
	_cleanup_free_ struct result *res = decode_str(s);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "windows-1252");
}

Test(sbdh, the_receiver_must_be_a_gln_and_the_letters)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *sor = sbdh_around(dis20, len, "0184:12345678", NULL);
	_cleanup_free_ struct result *r1 = decode_str(sor);
	expect_error(r1, CODEC_EADDRESS, "SBDH: Receiver/Identifier is not a GLN (0088:)");
	_cleanup_free_ char *other = sbdh_around(dis20, len, "0088:5790000999999", NULL);
	_cleanup_free_ struct result *r2 = decode_str(other);
	expect_error(r2, CODEC_EADDRESS, "SBDH Receiver 5790000999999 is not the receiver");
	_cleanup_free_ char *two = sbdh_around(dis20, len, "0088:5790000143055", NULL);
	char *at = strstr(two, "</Receiver>") + strlen("</Receiver>");
	_cleanup_free_ char *m = xasprintf("%.*s<Receiver><Identifier>0088:1</Identifier></Receiver>%s",
					   (int)(at - two), two, at);
	_cleanup_free_ struct result *r3 = decode_str(m);
	expect_error(r3, CODEC_ESTRUCTURE, "SBDH: more than one Receiver");
}

Test(sbdh, a_payload_that_does_not_decode_is_refused)
{
	const char *junk = "not a message at all";
	_cleanup_free_ char *s = sbdh_around_default(junk, strlen(junk));
	_cleanup_free_ struct result *res = decode_str(s);
	expect_error(res, CODEC_ESTRUCTURE, "SBDH BinaryContent: no codec recognises the input");
	struct codec_receipt rc;
	struct codec_refusal_params p = params(CODEC_REFUSE_SYNTAX, NULL, NULL);
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), -EINVAL,
		     "no receipt: SBDH has none of its own and the payload's format is unknown");
	_cleanup_free_ char *b = sbdh_around_default("", 0);
	char *content = strstr(b, "\"text/xml\">") + strlen("\"text/xml\">");
	_cleanup_free_ char *broken = xasprintf("%.*s@@@@%s", (int)(content - b), b, content);
	_cleanup_free_ struct result *r2 = decode_str(broken);
	expect_error(r2, CODEC_ESYNTAX, "SBDH BinaryContent is not base64 (character 1)");
}

/* ---- (4) nesting and the byte budget ----------------------------------- */

Test(nesting, sbdh_around_vans_around_oioxml_is_real_and_decodes)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *v = vans_around_default(dis20, len);
	_cleanup_free_ char *s = sbdh_around_default(v, strlen(v));
	_cleanup_free_ struct result *res = decode_str(s);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	const struct codec_envelope *e = &res->env;
	cr_assert_eq(e->codec, &codec_sbdh);
	cr_assert_eq(e->inner, &codec_oioxml);
	cr_assert_eq(e->nlayers, 2);
	cr_assert_eq(e->layers[0].codec, &codec_sbdh);
	cr_assert_eq(e->layers[1].codec, &codec_vans);
	cr_assert_eq(e->ntxids, 2);
	cr_assert_str_eq(e->txids[0].scope, "sbdh");
	cr_assert_str_eq(e->txids[1].scope, "vans");
	cr_assert_str_eq(e->letters[0].id, "24681012");
}

Test(nesting, three_wrappings_deep_are_refused)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *v = vans_around_default(dis20, len);
	_cleanup_free_ char *s1 = sbdh_around_default(v, strlen(v));
	_cleanup_free_ char *s2 = sbdh_around_default(s1, strlen(s1));
	_cleanup_free_ struct result *res = decode_str(s2);
	expect_error(res, CODEC_ESTRUCTURE,
		     "SBDH BinaryContent: SBDH BinaryContent: VANSEnvelope nested inside 2 "
		     "wrappings; at most 2 are allowed");
	cr_assert_eq(res->env.codec, &codec_sbdh);
}

Test(nesting, base64_expansion_counts_against_the_size_limit)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *v = vans_around_default(dis20, len);
	size_t vlen = strlen(v);
	struct codec_limits exact = { .max_bytes = vlen + len };
	_cleanup_free_ struct result *ok = decode_lim(v, vlen, &exact);
	cr_assert_eq(ok->r, 0, "envelope + payload fit exactly: %s", ok->err.text);
	struct codec_limits less = { .max_bytes = vlen + len - 1 };
	_cleanup_free_ struct result *big = decode_lim(v, vlen, &less);
	expect_error(big, CODEC_ETOOBIG, "VANSEnvelope Data decodes to 1510 bytes; 1509 are left");
}

Test(nesting, a_deep_payload_is_refused_by_depth)
{
	char *deep = xstrdup("<Emessage>");
	for (int i = 0; i < 80; i++) {
		char *t = xasprintf("%s<a>", deep);
		free(deep);
		deep = t;
	}
	_cleanup_free_ char *v = vans_around_default(deep, strlen(deep));
	free(deep);
	_cleanup_free_ struct result *res = decode_str(v);
	expect_error(res, CODEC_EDEPTH, "VANSEnvelope Data: element nesting deeper");
}

/* ---- (5) receipts ------------------------------------------------------ */

static void assert_golden_bytes(const struct codec_receipt *rc, const char *name)
{
	_cleanup_free_ char *path = xasprintf(GOLDEN_RECEIPTS "/%s", name);
	if (getenv("EDIBROKER_WRITE_GOLDEN"))
		testutil_write_file(path, rc->body, rc->size);
	size_t len;
	_cleanup_free_ uint8_t *want = testutil_read_file(path, &len);
	cr_assert_eq(rc->size, len, "%s: %zu bytes, golden %zu\n%.*s", name, rc->size, len,
		     (int)rc->size, (const char *)rc->body);
	cr_assert_arr_eq(rc->body, want, len, "%s differs from its golden file", name);
}

Test(receipts, vans_unknown_receiver_is_a_negative_vans_receipt)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "XDIS18_regionh_VANSEnvelope.xml", &len);
	_cleanup_free_ struct result *res = decode(buf, len);
	int uuids = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, NULL, &uuids);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
	cr_assert_eq(uuids, 1);
	assert_golden_bytes(&rc, "XDIS18_regionh_VANSEnvelope_unknown_receiver.xml");
	cr_assert_str_eq(rc.format, "vans");
	cr_assert_str_eq(rc.type, "NegativeVans");
	cr_assert_str_eq(rc.envelope_id, FIXED_UUID);
	cr_assert_str_eq(rc.receiver, HOSPITAL);
	cr_assert_str_eq(rc.sender, "EDIBROKER");
	cr_assert_str_eq(rc.refers, "EPIC394319568");
	cr_assert_str_eq(rc.key.id, FIXED_UUID);
	_cleanup_free_ struct result *back = decode(rc.body, rc.size);
	cr_assert_eq(back->r, 0, "%s", back->err.text);
	cr_assert(back->env.is_receipt);
	cr_assert_str_eq(back->env.letters[0].type, "NegativeVans");
	cr_assert_str_eq(back->env.letters[0].receiver, HOSPITAL);
	free(rc.body);
}

Test(receipts, vans_receipt_is_schema_valid_for_a_uuid_original)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *a = vans_around_default(dis20, len);
	_cleanup_free_ struct result *res = decode_str(a);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	for (int with_gln = 0; with_gln < 2; with_gln++) {
		struct codec_refusal_params p =
			params(CODEC_REFUSE_UNKNOWN_RECEIVER, with_gln ? BROKER_GLN : NULL, NULL);
		struct codec_receipt rc;
		cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
		assert_xmllint_valid(VANS_XSD, rc.body, rc.size);
		testutil_assert_schema_valid(VANS_XSD, rc.body, rc.size);
		const char *want = with_gln ? "<SenderID EndPointType=\"EAN\">" BROKER_GLN "<"
					    : "<SenderID EndPointType=\"VANS\">EDIBROKER<";
		cr_assert_not_null(memmem(rc.body, rc.size, want, strlen(want)), "%s", want);
		cr_assert_not_null(memmem(rc.body, rc.size, "<OriginalMessage>", 17),
				   "the original MetaInformation is echoed");
		free(rc.body);
	}
}

Test(receipts, vans_refusal_of_a_broken_payload_and_its_limits)
{
	const char *pdf = "%PDF-1.4";
	_cleanup_free_ char *a = vans_around_default(pdf, strlen(pdf));
	_cleanup_free_ struct result *res = decode_str(a);
	struct codec_refusal_params p = params(CODEC_REFUSE_SYNTAX, NULL, NULL);
	p.text = NULL;
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0, "VANS answers whatever it carried");
	const char *desc = "<Description>The envelope could not be read.</Description>";
	cr_assert_not_null(memmem(rc.body, rc.size, desc, strlen(desc)), "%.*s", (int)rc.size,
			   (const char *)rc.body);
	free(rc.body);
	p.broker_id = "AN-ID-LONGER-THAN-18";
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), -EINVAL, "SenderID is 1..18");
	p.broker_id = "EDIBROKER";
	p.fresh_uuid = NULL;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), -EINVAL);
	_cleanup_free_ struct result *nosender = decode_str("<VANSEnvelope xmlns=\"" VANS_NS "\"/>");
	p.fresh_uuid = golden_uuid;
	cr_assert_eq(codec_refuse(&nosender->env, &p, &rc), -EINVAL, "nobody to answer");
}

Test(receipts, sbdh_unknown_receiver_wraps_an_xctl01)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "XDIS20_regionh_SBDH.xml", &len);
	_cleanup_free_ struct result *res = decode(buf, len);
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, BROKER_GLN, NULL);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
	assert_golden_bytes(&rc, "XDIS20_regionh_SBDH_unknown_receiver.xml");
	cr_assert_str_eq(rc.format, "sbdh");
	cr_assert_str_eq(rc.type, "XCTL01");
	cr_assert_str_eq(rc.receiver, HOSPITAL);
	cr_assert_str_eq(rc.refers, "5790002515200:EPIC394363364");
	cr_assert_str_eq(rc.envelope_id, BROKER_GLN ":EB0123456789ab");
	/* It reads back as an SBDH from the broker around an XCTL01 to the hospital. */
	_cleanup_free_ struct result *back = decode(rc.body, rc.size);
	cr_assert_eq(back->r, 0, "%s", back->err.text);
	cr_assert(back->env.is_receipt);
	cr_assert_str_eq(back->env.layers[0].sender, BROKER_GLN);
	cr_assert_str_eq(back->env.letters[0].type, "XCTL01");
	cr_assert_str_eq(back->env.letters[0].receiver, HOSPITAL);
	size_t plen;
	_cleanup_free_ uint8_t *xctl = sbdh_payload(&rc, &plen);
	char dir[64];
	_cleanup_free_ char *xsd = testutil_oioxml_xsd("2005-08-07", dir, sizeof(dir));
	assert_xmllint_valid(xsd, xctl, plen);
	testutil_rm_rf(dir);
	free(rc.body);
}

Test(receipts, sbdh_around_vans_answers_with_sbdh_around_negative_vans)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	_cleanup_free_ char *v = vans_around_default(dis20, len);
	_cleanup_free_ char *s = sbdh_around_default(v, strlen(v));
	_cleanup_free_ struct result *res = decode_str(s);
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, NULL, NULL);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
	cr_assert_str_eq(rc.type, "NegativeVans");
	cr_assert_not_null(memmem(rc.body, rc.size, "<Identifier>EDIBROKER</Identifier>", 34),
			   "without a GLN the broker's id, no scheme");
	size_t plen;
	_cleanup_free_ uint8_t *inner = sbdh_payload(&rc, &plen);
	assert_xmllint_valid(VANS_XSD, inner, plen);
	free(rc.body);
}

Test(receipts, sbdh_refusal_of_a_payload_that_did_not_decode_uses_its_codec)
{
	size_t len;
	_cleanup_free_ char *dis20 = sample_oioxml("DIS20_1.xml", &len);
	char *v = strstr(dis20, "<VersionCode>XD2030C");
	memcpy(v + 13, "XD1730C", 7); /* a version XDIS20 does not have */
	_cleanup_free_ char *s = sbdh_around_default(dis20, len);
	_cleanup_free_ struct result *res = decode_str(s);
	expect_error(res, CODEC_EVERSION, "SBDH BinaryContent: letter 1: VersionCode XD1730C");
	struct codec_refusal_params p = params(codec_errcode_refusal(res->err.code), NULL, NULL);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&res->env, &p, &rc), 0);
	size_t plen;
	_cleanup_free_ uint8_t *xctl = sbdh_payload(&rc, &plen);
	cr_assert_not_null(memmem(xctl, plen, "problem_med_version", 19));
	free(rc.body);
}

/* ---- (6) EDIFACT inside a wrapping ------------------------------------- */

Test(edifact, an_interchange_in_vans_and_in_sbdh)
{
	size_t len;
	_cleanup_free_ uint8_t *edi = load("../shared/medcom-samples/edifact", "DIS20_1.edi", &len);
	_cleanup_free_ char *v = vans_around(edi, len, "5790000143055", "EAN", -1);
	_cleanup_free_ struct result *rv = decode_str(v);
	cr_assert_eq(rv->r, 0, "%s", rv->err.text);
	cr_assert_str_eq(rv->env.inner->name, "edifact");
	cr_assert_str_eq(rv->env.letters[0].type, "DIS20");
	_cleanup_free_ char *s = sbdh_around_default(edi, len);
	_cleanup_free_ struct result *rs = decode_str(s);
	cr_assert_eq(rs->r, 0, "%s", rs->err.text);
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, BROKER_GLN, NULL);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&rs->env, &p, &rc), 0);
	cr_assert_str_eq(rc.format, "sbdh");
	size_t plen;
	_cleanup_free_ uint8_t *ctl = sbdh_payload(&rc, &plen);
	cr_assert_not_null(memmem(ctl, plen, "CONTRL", 6), "an SBDH around a CTL01");
	cr_assert_not_null(memmem(rc.body, rc.size, "application/edifact", 19));
	free(rc.body);
}

/*
 * test_xctl01.c - the XCTL01 NegativeVansReceipt builder and the OIOXML
 * codec's refuse() operation built on it.
 *
 * Each built receipt is checked three ways: validated against the real
 * 2005/08/07 EMessage.xsd (extracted from the shared tarball into a temp
 * dir; /work/shared is never written), decoded back with the OIOXML codec,
 * and read with XPath for the echoed original ids. Also: escaping, the
 * -EINVAL cases and the schema's 99-letter cap. Through codec_refuse():
 * byte-identical output to the golden receipts in tests/golden/xctl01, the
 * RefuseCode for every refusal, the filled-in receipt description, and
 * -ENOTSUP / -EINVAL with the output untouched. Run from the repository root.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "codecs/codec.h"
#include "codecs/oioxml.h"
#include "codecs/xctl01.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"

#define NS "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/"

static const struct xctl01_params params = {
	.sender_id = "EDIBROKER",
	.envelope_id = "RCPT000001",
	.letter_id = "RCPTL00001",
	.refuse_code = "ukendt_lokationsnummer",
	.refuse_text = "Modtagerlokationsnummer har ikke kunnet identificeres.",
	.date = "2024-03-01",
	.time = "08:15",
};

/* ---- helpers ----------------------------------------------------------- */

static const char *samples_dir(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES");
	return str_empty(d) ? "../shared/medcom-samples/oioxml" : d;
}

static const char *schema_tarball(void)
{
	static char path[4096];
	const char *d = getenv("EDIBROKER_SCHEMAS");
	if (str_empty(d))
		snprintf(path, sizeof(path), "%s/../schemas/oioxml-xsd_2005-08-07.tar.gz",
			 samples_dir());
	else
		snprintf(path, sizeof(path), "%s/oioxml-xsd_2005-08-07.tar.gz", d);
	return path;
}

/* Decodes dir/name; `want_ok` says whether decoding must succeed. */
static struct codec_envelope *decode_file(const char *dir, const char *name, bool want_ok)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	size_t len;
	_cleanup_free_ uint8_t *buf = testutil_read_file(path, &len);
	struct codec_envelope *env = xmalloc(sizeof(*env));
	struct codec_error err;
	int r = codec_oioxml.decode(buf, len, NULL, env, &err);
	cr_assert_eq(r == 0, want_ok, "%s: %s", path, err.text);
	return env;
}

static void collect_error(void *ctx, xmlErrorPtr e)
{
	char **all = ctx;
	char *s = xasprintf("%s%d:%d %s", *all ? *all : "", e->line, e->int2, e->message);
	free(*all);
	*all = s;
}

/* Validates buf against EMessage.xsd; fails the test with the reasons. */
static void assert_schema_valid(const char *buf, size_t len)
{
	char dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/edibroker-xsd-XXXXXX");
	_cleanup_free_ char *cmd = xasprintf("tar -xzf '%s' -C '%s'", schema_tarball(), dir);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
	_cleanup_free_ char *xsd = xasprintf("%s/data/xml/Schemas/2005/08/07/EMessage.xsd", dir);
	_cleanup_free_ char *errors = NULL;
	xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(xsd);
	xmlSchemaSetParserStructuredErrors(pc, collect_error, &errors);
	xmlSchemaPtr schema = xmlSchemaParse(pc);
	cr_assert_not_null(schema, "schema did not load: %s", errors ? errors : "?");
	xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(schema);
	xmlSchemaSetValidStructuredErrors(vc, collect_error, &errors);
	xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET);
	cr_assert_not_null(doc, "receipt is not well-formed");
	int r = xmlSchemaValidateDoc(vc, doc);
	xmlFreeDoc(doc);
	xmlSchemaFreeValidCtxt(vc);
	xmlSchemaFree(schema);
	xmlSchemaFreeParserCtxt(pc);
	testutil_rm_rf(dir);
	cr_assert_eq(r, 0, "receipt fails EMessage.xsd: %s\n%s", errors ? errors : "", buf);
}

/* XPath string value over the receipt, with prefix m for the namespace. */
static char *xpath_string(const char *buf, size_t len, const char *expr)
{
	xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET);
	cr_assert_not_null(doc);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathRegisterNs(ctx, BAD_CAST "m", BAD_CAST NS);
	_cleanup_free_ char *wrapped = xasprintf("string(%s)", expr);
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
	cr_assert_not_null(o, "bad xpath %s", expr);
	char *s = xstrdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return s;
}

static void assert_xpath(const char *buf, size_t len, const char *expr, const char *want)
{
	_cleanup_free_ char *got = xpath_string(buf, len, expr);
	cr_assert_str_eq(got, want, "%s", expr);
}

/* Builds, validates and decodes back; returns the receipt text. */
static char *build_checked(const struct codec_envelope *orig, const struct xctl01_params *p,
			   size_t *len)
{
	char *out = NULL;
	int r = xctl01_build(orig, p, &out, len);
	cr_assert_eq(r, 0, "build failed: %d", r);
	cr_assert_eq(strlen(out), *len);
	assert_schema_valid(out, *len);
	struct codec_envelope back;
	struct codec_error err;
	cr_assert_eq(codec_oioxml.decode((uint8_t *)out, *len, NULL, &back, &err), 0, "%s",
		     err.text);
	cr_assert_eq(back.nletters, 1);
	cr_assert(back.is_receipt);
	cr_assert_not(back.ack_requested);
	cr_assert_str_eq(back.envelope_id, p->envelope_id);
	cr_assert_str_eq(back.letters[0].id, p->letter_id);
	cr_assert_str_eq(back.letters[0].type, "XCTL01");
	cr_assert_str_eq(back.letters[0].version, "XC0130Q");
	cr_assert_str_eq(back.letters[0].sender, p->sender_id);
	cr_assert_str_eq(back.letters[0].receiver, orig->letters[0].sender);
	cr_assert_str_eq(back.encoding, "UTF-8");
	return out;
}

/* ---- built receipts ---------------------------------------------------- */

Test(receipt, single_letter_sample_is_echoed)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &params, &len);
	assert_xpath(out, len, "//m:OriginalEnvelopeIdentifier", "123456789");
	assert_xpath(out, len, "//m:OriginalSender/m:EANIdentifier", "5790000143054");
	assert_xpath(out, len, "//m:OriginalReceiver/m:EANIdentifier", "5790000143055");
	assert_xpath(out, len, "count(//m:OriginalLetter)", "1");
	assert_xpath(out, len, "//m:OriginalLetter/m:OriginalLetterIdentifier", "24681012");
	assert_xpath(out, len, "//m:OriginalLetter/m:OriginalVersionCode", "XD2030C");
	assert_xpath(out, len, "/m:Emessage/m:NegativeVansReceipt/m:OriginalEmessage/m:RefuseCode",
		     "ukendt_lokationsnummer");
	assert_xpath(out, len, "//m:Envelope/m:Sent/m:Date", "2024-03-01");
	assert_xpath(out, len, "//m:Envelope/m:Sent/m:Time", "08:15");
}

Test(receipt, multi_letter_lists_every_letter)
{
	_cleanup_free_ struct codec_envelope *orig =
		decode_file("tests/data/oioxml", "multi_letter.xml", true);
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &params, &len);
	assert_xpath(out, len, "count(//m:OriginalLetter)", "2");
	assert_xpath(out, len, "//m:OriginalLetter[1]/m:OriginalLetterIdentifier", "LETTER0001");
	assert_xpath(out, len, "//m:OriginalLetter[2]/m:OriginalLetterIdentifier", "LETTER0002");
	assert_xpath(out, len, "//m:OriginalLetter[2]/m:OriginalVersionCode", "XD2030C");
	assert_xpath(out, len, "//m:OriginalReceiver/m:EANIdentifier", "5790000143055");
	assert_xpath(out, len, "//m:OriginalEnvelopeIdentifier", "MULTI0001");
}

Test(receipt, every_non_receipt_sample_yields_a_valid_receipt)
{
	static const char *const files[] = {
		"DIS14_1.xml", "DIS17_1.xml", "DIS91_1.xml", "XDIS17_regionh_NotificationOfDischarge.xml",
		"XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml",
		"XDIS20_regionh_NotificationOfAdmission.xml",
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), files[i], true);
		size_t len;
		free(build_checked(orig, &params, &len));
	}
}

Test(receipt, partial_envelope_uses_the_broker_as_original_receiver)
{
	/* decoding fails (no Receiver GLN) but leaves envelope id and sender */
	_cleanup_free_ struct codec_envelope *orig =
		decode_file("tests/data/oioxml/invalid", "missing_receiver_ean.xml", false);
	cr_assert_eq(orig->nletters, 0);
	struct xctl01_params p = params;
	p.refuse_code = xctl01_refuse_code(codec_errcode_refusal(CODEC_EFIELD));
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &p, &len);
	assert_xpath(out, len, "//m:OriginalEnvelopeIdentifier", "123456789");
	assert_xpath(out, len, "//m:OriginalReceiver/m:EANIdentifier", "EDIBROKER");
	assert_xpath(out, len, "count(//m:OriginalLetter)", "0");
	assert_xpath(out, len, "//m:OriginalEmessage/m:RefuseCode", "syntaksfejl");
}

Test(receipt, refuse_text_is_escaped_and_breaks_lines)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct xctl01_params p = params;
	p.refuse_text = "a < b & c > d \"q\" 'x'\nline2\r\nline3 \xC3\xA6\xC3\xB8";
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &p, &len);
	cr_assert(strstr(out, "a &lt; b &amp; c &gt; d &quot;q&quot; &apos;x&apos;<Break/>line2"
			      "<Break/>line3 \xC3\xA6\xC3\xB8</RefuseText>"),
		  "%s", out);
	assert_xpath(out, len, "count(//m:RefuseText/m:Break)", "2");
	assert_xpath(out, len, "//m:RefuseText", "a < b & c > d \"q\" 'x'line2line3 \xC3\xA6\xC3\xB8");
}

Test(receipt, no_refuse_text_means_no_element)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct xctl01_params p = params;
	p.refuse_text = NULL;
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &p, &len);
	assert_xpath(out, len, "count(//m:RefuseText)", "0");
}

Test(receipt, more_letters_than_the_schema_allows_are_capped_at_99)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	for (size_t i = 1; i < CODEC_MAX_LETTERS; i++) {
		orig->letters[i] = orig->letters[0];
		snprintf(orig->letters[i].id, sizeof(orig->letters[i].id), "L%03zu", i);
	}
	orig->nletters = CODEC_MAX_LETTERS;
	size_t len;
	_cleanup_free_ char *out = build_checked(orig, &params, &len);
	assert_xpath(out, len, "count(//m:OriginalLetter)", "99");
	assert_xpath(out, len, "//m:OriginalLetter[99]/m:OriginalLetterIdentifier", "L098");
}

/* ---- refusals ---------------------------------------------------------- */

static void expect_einval(const struct codec_envelope *orig, const struct xctl01_params *p,
			  const char *why)
{
	char *out = (char *)"untouched";
	size_t len = 4242;
	cr_expect_eq(xctl01_build(orig, p, &out, &len), -EINVAL, "%s", why);
	cr_expect_str_eq(out, "untouched", "%s: *out changed", why);
	cr_expect_eq(len, 4242, "%s: *len changed", why);
}

Test(receipt, missing_envelope_id_or_sender_is_einval)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct codec_envelope e = *orig;
	e.envelope_id[0] = '\0';
	expect_einval(&e, &params, "no envelope id");
	e = *orig;
	e.letters[0].sender[0] = '\0';
	expect_einval(&e, &params, "no sender");
	e = *orig;
	e.letters[0].id[0] = '\0';
	expect_einval(&e, &params, "letter without id");
	e = *orig;
	e.letters[0].receiver[3] = '\t';
	expect_einval(&e, &params, "receiver with a control character");
	e = *orig;
	memset(e.letters[0].version, 'X', sizeof(e.letters[0].version)); /* unterminated */
	expect_einval(&e, &params, "version without NUL");
	expect_einval(NULL, &params, "no original");
	expect_einval(orig, NULL, "no params");
}

Test(receipt, too_long_or_malformed_parameters_are_einval)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct {
		struct xctl01_params p;
		const char *why;
	} cases[] = {
		{ params, "sender 36" },     { params, "envelope id 15" }, { params, "letter id 15" },
		{ params, "date month 13" }, { params, "short date" },	 { params, "time 24:00" },
		{ params, "time 8:15" },     { params, "refuse code" },	 { params, "no refuse code" },
		{ params, "control char" },  { params, "bad UTF-8" },	 { params, "empty sender" },
	};
	cases[0].p.sender_id = "123456789012345678901234567890123456";
	cases[1].p.envelope_id = "123456789012345";
	cases[2].p.letter_id = "123456789012345";
	cases[3].p.date = "2024-13-01";
	cases[4].p.date = "24-03-01";
	cases[5].p.time = "24:00";
	cases[6].p.time = "8:15";
	cases[7].p.refuse_code = "nope";
	cases[8].p.refuse_code = NULL;
	cases[9].p.refuse_text = "bell\x07";
	cases[10].p.refuse_text = "Taarb\xE6k";
	cases[11].p.sender_id = "";
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_einval(orig, &cases[i].p, cases[i].why);
}

Test(receipt, longest_allowed_parameters_are_accepted)
{
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct xctl01_params p = params;
	p.sender_id = "12345678901234567890123456789012345";
	p.envelope_id = "12345678901234";
	p.letter_id = "ABCDEFGHIJKLMN";
	size_t len;
	free(build_checked(orig, &p, &len));
}

Test(receipt, receipts_are_never_receipted)
{
	_cleanup_free_ struct codec_envelope *ctl = decode_file(samples_dir(), "CTL02_1.xml", true);
	cr_assert(ctl->is_receipt);
	expect_einval(ctl, &params, "original is a receipt");
	/* nor is our own output */
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	_cleanup_free_ char *out = NULL;
	size_t len;
	cr_assert_eq(xctl01_build(orig, &params, &out, &len), 0);
	struct codec_envelope back;
	struct codec_error err;
	cr_assert_eq(codec_oioxml.decode((uint8_t *)out, len, NULL, &back, &err), 0);
	expect_einval(&back, &params, "our own receipt");
}

/* ---- the codec operation: codec_refuse() ------------------------------- */

#define GOLDEN_ID "EB0123456789ab"
/* The explanations the accept path passes (daemon/accept/ingest.c). */
#define TEXT_UNKNOWN "Modtagerlokationsnummer har ikke kunnet identificeres."
#define TEXT_REJECTED                                                                              \
	"EDI-kuverten kunne ikke behandles af EDI-broker.\n"                                     \
	"The envelope could not be processed by the EDI broker."

static void golden_id(void *ctx, char id[CODEC_ID_MAX])
{
	++*(int *)ctx;
	str_copy(id, GOLDEN_ID, CODEC_ID_MAX);
}

/* Broker EDIBROKER at 2024-03-01 08:15 local time; counts ids drawn. */
static struct codec_refusal_params refusal(enum codec_refusal why, const char *text, int *ids)
{
	*ids = 0;
	return (struct codec_refusal_params){
		.reason = why, .text = text, .broker_id = "EDIBROKER",
		.now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15 },
		.fresh_id = golden_id, .ctx = ids,
	};
}

/* DIS20_1.xml decoded, optionally with one same-length edit in its bytes;
 * *err says how decoding went. */
static struct codec_envelope *decode_dis20(const char *from, const char *to,
					   struct codec_error *err)
{
	_cleanup_free_ char *path = xasprintf("%s/DIS20_1.xml", samples_dir());
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	cr_assert_eq(read_file_at(AT_FDCWD, path, 1 << 24, &buf, &len), 0, "cannot read %s", path);
	if (from) {
		uint8_t *at = memmem(buf, len, from, strlen(from));
		cr_assert(at && strlen(from) == strlen(to), "%s", from);
		memcpy(at, to, strlen(to));
	}
	struct codec_envelope *env = xmalloc(sizeof(*env));
	codec_oioxml.decode(buf, len, NULL, env, err);
	return env;
}

static void assert_golden(const struct codec_receipt *rc, const char *name)
{
	_cleanup_free_ char *path = xasprintf("tests/golden/xctl01/%s", name);
	_cleanup_free_ uint8_t *want = NULL;
	size_t len;
	cr_assert_eq(read_file_at(AT_FDCWD, path, 1 << 20, &want, &len), 0, "cannot read %s", path);
	cr_assert_eq(rc->size, len, "%s: %zu bytes, golden %zu", name, rc->size, len);
	cr_assert_arr_eq(rc->body, want, len, "%s differs from its golden file", name);
}

Test(refuse, unknown_receiver_is_byte_identical_to_the_golden_receipt)
{
	struct codec_error err;
	_cleanup_free_ struct codec_envelope *orig =
		decode_dis20("5790000143055", "5790000999999", &err);
	cr_assert_eq(err.code, CODEC_OK, "%s", err.text);
	int ids;
	struct codec_refusal_params p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, TEXT_UNKNOWN, &ids);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(orig, &p, &rc), 0);
	assert_golden(&rc, "DIS20_1_unknown_receiver.xml");
	assert_schema_valid((const char *)rc.body, rc.size);
	cr_assert_eq(ids, 1, "one fresh id serves envelope and letter");
	cr_assert_str_eq(rc.format, "oioxml");
	cr_assert_str_eq(rc.ext, "xml");
	cr_assert_str_eq(rc.type, "XCTL01");
	cr_assert_str_eq(rc.envelope_id, GOLDEN_ID);
	cr_assert_str_eq(rc.sender, "EDIBROKER");
	cr_assert_str_eq(rc.receiver, "5790000143054");
	cr_assert_str_eq(rc.refers, "123456789");
	cr_assert_str_eq(rc.key.sender, "EDIBROKER");
	cr_assert_str_eq(rc.key.id, GOLDEN_ID);
	free(rc.body);
}

Test(refuse, decoding_errors_are_byte_identical_to_the_golden_receipts)
{
	struct codec_error err;
	_cleanup_free_ struct codec_envelope *bad_version =
		decode_dis20("XD2030C", "XD9999C", &err);
	cr_assert_eq(err.code, CODEC_EVERSION);
	int ids;
	struct codec_refusal_params p =
		refusal(codec_errcode_refusal(err.code), TEXT_REJECTED, &ids);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(bad_version, &p, &rc), 0);
	assert_golden(&rc, "DIS20_1_bad_version_rejected.xml");
	free(rc.body);

	_cleanup_free_ struct codec_envelope *partial =
		decode_file("tests/data/oioxml/invalid", "missing_receiver_ean.xml", false);
	p.reason = codec_errcode_refusal(CODEC_EFIELD);
	cr_assert_eq(codec_refuse(partial, &p, &rc), 0);
	assert_golden(&rc, "missing_receiver_ean_rejected.xml");
	cr_assert_str_eq(rc.receiver, "5790000143054");
	free(rc.body);

	_cleanup_free_ struct codec_envelope *multi =
		decode_file("tests/data/oioxml", "multi_letter.xml", true);
	p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, TEXT_UNKNOWN, &ids);
	cr_assert_eq(codec_refuse(multi, &p, &rc), 0);
	assert_golden(&rc, "multi_letter_unknown_receiver.xml");
	free(rc.body);
}

Test(refuse, every_refusal_has_its_refuse_code)
{
	static const struct {
		enum codec_refusal why;
		const char *code;
	} want[] = {
		{ CODEC_REFUSE_UNSPECIFIED, "ikke_specificeret" },
		{ CODEC_REFUSE_UNKNOWN_RECEIVER, "ukendt_lokationsnummer" },
		{ CODEC_REFUSE_RECEIVER_ID, "problem_med_modtagerID" },
		{ CODEC_REFUSE_SYNTAX, "syntaksfejl" },
		{ CODEC_REFUSE_VERSION, "problem_med_version" },
		{ CODEC_REFUSE_TYPE, "problem_med_version" },
	};
	_Static_assert(ARRAY_SIZE(want) == CODEC_REFUSE_LAST + 1, "every refusal");
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		int ids;
		struct codec_refusal_params p = refusal(want[i].why, NULL, &ids);
		struct codec_receipt rc;
		cr_assert_eq(codec_refuse(orig, &p, &rc), 0, "%s", want[i].code);
		assert_xpath((const char *)rc.body, rc.size, "//m:OriginalEmessage/m:RefuseCode",
			     want[i].code);
		assert_xpath((const char *)rc.body, rc.size, "count(//m:RefuseText)", "0");
		free(rc.body);
	}
	cr_assert_null(xctl01_refuse_code((enum codec_refusal)99));
}

/* No receipt: *out keeps what it held. */
static void expect_refused(const struct codec_envelope *orig, const struct codec_refusal_params *p,
			   int want, const char *why)
{
	struct codec_receipt rc = { .size = 4242 };
	cr_expect_eq(codec_refuse(orig, p, &rc), want, "%s", why);
	cr_expect_eq(rc.size, 4242, "%s: out changed", why);
	cr_expect_null(rc.body, "%s: out changed", why);
}

Test(refuse, receipts_and_unaddressable_envelopes_get_none)
{
	int ids;
	struct codec_refusal_params p = refusal(CODEC_REFUSE_SYNTAX, TEXT_REJECTED, &ids);
	_cleanup_free_ struct codec_envelope *ctl = decode_file(samples_dir(), "CTL02_1.xml", true);
	expect_refused(ctl, &p, -ENOTSUP, "a receipt is never answered");
	_cleanup_free_ struct codec_envelope *orig = decode_file(samples_dir(), "DIS20_1.xml", true);
	struct codec_envelope e = *orig;
	e.envelope_id[0] = '\0';
	expect_refused(&e, &p, -EINVAL, "no envelope id");
	e = *orig;
	e.letters[0].sender[0] = '\0';
	expect_refused(&e, &p, -EINVAL, "no sender");
	e = *orig;
	e.codec = NULL;
	expect_refused(&e, &p, -ENOTSUP, "no codec read it");
	p.reason = (enum codec_refusal)99;
	expect_refused(orig, &p, -EINVAL, "a refusal without a RefuseCode");
	p = refusal(CODEC_REFUSE_SYNTAX, "bell\x07", &ids);
	expect_refused(orig, &p, -EINVAL, "control character in the text");
	p = refusal(CODEC_REFUSE_SYNTAX, NULL, &ids);
	p.broker_id = "123456789012345678901234567890123456";
	expect_refused(orig, &p, -EINVAL, "broker id longer than 35");
	p = refusal(CODEC_REFUSE_SYNTAX, NULL, &ids);
	p.fresh_id = NULL;
	expect_refused(orig, &p, -EINVAL, "no id generator");
}

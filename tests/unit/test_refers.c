/*
 * test_refers.c - what an acknowledgement says it acknowledges (codec.h:
 * env->refers) in every format, and its renewal as a new transmission
 * (codec.h: renew, renew.h): the same bytes but the outermost id.
 *
 * Samples: MedCom's XCTL and CONTRL receipts and FHIR Acknowledgements
 * from ../shared/medcom-samples (or $EDIBROKER_SAMPLES_ROOT); hand-made
 * variants for what the samples lack (an envelope-level refusal, a
 * receipt without OriginalEmessage, several UCMs); the broker's own
 * refusals read back (a FHIR JSON Acknowledgement, a VANS Receipt), which
 * must refer to the message they refuse. Run from the repository root.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/codec.h"
#include "codecs/edifact.h"
#include "codecs/fhir.h"
#include "codecs/oioxml.h"
#include "codecs/renew.h"
#include "codecs/sbdh.h"
#include "codecs/vans.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#define BROKER_GLN "5790000000005"

static const char *root(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES_ROOT");
	return str_empty(d) ? "../shared/medcom-samples" : d;
}

static uint8_t *sample(const char *name, size_t *len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", root(), name);
	return testutil_read_file(path, len);
}

static struct codec_envelope *decode(const void *buf, size_t len)
{
	struct codec_envelope *e = xcalloc(1, sizeof(*e));
	struct codec_error err;
	int r = codec_decode_any(buf, len, NULL, e, &err);
	cr_assert_eq(r, 0, "decode: %s", err.text);
	return e;
}

static struct codec_envelope *decode_sample(const char *name)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample(name, &len);
	return decode(buf, len);
}

static struct codec_envelope *decode_str(const char *s)
{
	return decode(s, strlen(s));
}

static void expect_ref(const struct codec_envelope *e, size_t i, const char *sender,
		       const char *envelope_id, const char *letter_id)
{
	cr_assert_lt(i, e->refers.n, "ref %zu of %zu", i + 1, e->refers.n);
	const struct codec_ref *r = &e->refers.refs[i];
	cr_expect_str_eq(r->sender, sender);
	cr_expect_str_eq(r->envelope_id, envelope_id);
	cr_expect_str_eq(r->letter_id, letter_id);
}

static void fresh_id(void *ctx, char id[CODEC_ID_MAX])
{
	int *n = ctx;
	snprintf(id, CODEC_ID_MAX, "EBRENEW%d", ++*n);
}

static void fresh_uuid(void *ctx, char uuid[CODEC_UUID_LEN + 1])
{
	int *n = ctx;
	snprintf(uuid, CODEC_UUID_LEN + 1, "00000000-0000-4000-8000-%012d", ++*n);
}

static struct codec_refusal_params params(enum codec_refusal why, int *n)
{
	struct tm now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15,
			  .tm_gmtoff = 3600 };
	return (struct codec_refusal_params){
		.reason = why, .text = "x", .broker_id = "EDIBROKER", .broker_gln = BROKER_GLN,
		.now = now, .fresh_id = fresh_id, .fresh_uuid = fresh_uuid, .ctx = n,
	};
}

/* ---- (1) what each format's acknowledgement refers to -------------------- */

Test(refers, xctl03_names_the_acknowledged_letter)
{
	_cleanup_free_ struct codec_envelope *e = decode_sample("oioxml/CTL03_1.xml");
	cr_assert(e->is_receipt);
	cr_assert_eq(e->refers.code, CODEC_ACK_POSITIVE);
	cr_assert_null(e->refers.scope);
	cr_assert_str_eq(e->refers.detail, "XCTL03");
	cr_assert_eq(e->refers.n, 1);
	expect_ref(e, 0, "5790000181872", "MEDREF01095", "1111FRE01095");
}

Test(refers, xctl02_is_negative_with_its_refuse_code)
{
	_cleanup_free_ struct codec_envelope *e = decode_sample("oioxml/CTL02_1.xml");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(e->refers.detail, "XCTL02 problem_med_version");
	expect_ref(e, 0, "5790000181872", "MEDREF01095", "1111MAN01095");
}

Test(refers, xctl01_lists_every_original_letter)
{
	_cleanup_free_ struct codec_envelope *e = decode_sample("oioxml/CTL01_1.xml");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_eq(e->refers.n, 2);
	expect_ref(e, 0, "5790000181872", "MEDREF01095", "1111FRE01095");
	expect_ref(e, 1, "5790000181872", "MEDREF01095", "1111MAN01095");
}

#define XCTL_HEAD                                                                                  \
	"<Emessage xmlns=\"http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/\">"   \
	"<Envelope><Sent><Date>2024-03-01</Date><Time>08:15</Time></Sent>"                      \
	"<Identifier>K1</Identifier><AcknowledgementCode>minuspositivkvitt</AcknowledgementCode>" \
	"</Envelope>"
#define XCTL_LETTER(elem, stat, ver, id)                                                           \
	"<" elem "><Letter><Identifier>" id "</Identifier><VersionCode>" ver "</VersionCode>"      \
	"<StatisticalCode>" stat "</StatisticalCode></Letter>"                                   \
	"<Sender><EANIdentifier>5790000000002</EANIdentifier></Sender>"                          \
	"<Receiver><EANIdentifier>5790000000001</EANIdentifier></Receiver>"

Test(refers, envelope_level_refusal_refers_to_the_envelope)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		XCTL_HEAD XCTL_LETTER("NegativeReceipt", "XCTL02", "XC0230Q", "B1")
		"<OriginalEmessage><OriginalEnvelopeIdentifier>ORIG7</OriginalEnvelopeIdentifier>"
		"<OriginalSender><EANIdentifier>5790000000001</EANIdentifier></OriginalSender>"
		"<OriginalReceiver><EANIdentifier>5790000000002</EANIdentifier></OriginalReceiver>"
		"<RefuseCode>syntaksfejl</RefuseCode></OriginalEmessage></NegativeReceipt></Emessage>");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(e->refers.detail, "XCTL02 syntaksfejl");
	cr_assert_eq(e->refers.n, 1);
	expect_ref(e, 0, "5790000000001", "ORIG7", "");
}

Test(refers, receipt_without_original_routes_but_refers_to_nothing)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		XCTL_HEAD XCTL_LETTER("PositiveReceipt", "XCTL03", "XC0330Q", "B1")
		"</PositiveReceipt></Emessage>");
	cr_assert(e->is_receipt);
	cr_assert_eq(e->nletters, 1);
	cr_assert_eq(e->refers.code, CODEC_ACK_NONE);
	cr_assert_eq(e->refers.n, 0);
}

Test(refers, one_negative_letter_makes_the_answer_negative)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		XCTL_HEAD XCTL_LETTER("PositiveReceipt", "XCTL03", "XC0330Q", "B1")
		"<OriginalEmessage><OriginalEnvelopeIdentifier>E1</OriginalEnvelopeIdentifier>"
		"<OriginalSender><EANIdentifier>5790000000001</EANIdentifier></OriginalSender>"
		"<OriginalReceiver><EANIdentifier>5790000000002</EANIdentifier></OriginalReceiver>"
		"<OriginalLetter><OriginalLetterIdentifier>L1</OriginalLetterIdentifier>"
		"<OriginalVersionCode>XD2030C</OriginalVersionCode></OriginalLetter>"
		"</OriginalEmessage></PositiveReceipt>"
		XCTL_LETTER("NegativeReceipt", "XCTL02", "XC0230Q", "B2")
		"<OriginalEmessage><OriginalEnvelopeIdentifier>E1</OriginalEnvelopeIdentifier>"
		"<OriginalSender><EANIdentifier>5790000000001</EANIdentifier></OriginalSender>"
		"<OriginalReceiver><EANIdentifier>5790000000002</EANIdentifier></OriginalReceiver>"
		"<OriginalLetter><OriginalLetterIdentifier>L2</OriginalLetterIdentifier>"
		"<OriginalVersionCode>XD2030C</OriginalVersionCode>"
		"<RefuseCode>problem_med_version</RefuseCode></OriginalLetter>"
		"</OriginalEmessage></NegativeReceipt></Emessage>");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(e->refers.detail, "XCTL02 problem_med_version");
	cr_assert_eq(e->refers.n, 2);
	expect_ref(e, 0, "5790000000001", "E1", "L1");
	expect_ref(e, 1, "5790000000001", "E1", "L2");
}

Test(refers, a_letter_is_no_acknowledgement)
{
	_cleanup_free_ struct codec_envelope *e = decode_sample("oioxml/DIS20_1.xml");
	cr_assert_not(e->is_receipt);
	cr_assert_eq(e->refers.code, CODEC_ACK_NONE);
	cr_assert_eq(e->refers.n, 0);
}

Test(refers, contrl_ctl03_and_ctl02)
{
	_cleanup_free_ struct codec_envelope *pos = decode_sample("edifact/CTL03_1.edi");
	cr_assert_eq(pos->refers.code, CODEC_ACK_POSITIVE);
	cr_assert_str_eq(pos->refers.detail, "CTL03");
	cr_assert_eq(pos->refers.n, 1);
	expect_ref(pos, 0, "5790000181872", "MEDREF01095", "1111FRE01095");
	_cleanup_free_ struct codec_envelope *neg = decode_sample("edifact/CTL02_1.edi");
	cr_assert_eq(neg->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(neg->refers.detail, "CTL02 VER");
	expect_ref(neg, 0, "5790000181872", "MEDREF01095", "1111MAN01095");
}

#define CTL_UNB "UNA:+.? 'UNB+UNOC:3+5790000000002:14+5790000000001:14+240301:0815+R1'"

Test(refers, contrl_with_several_ucm_and_one_rejected)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		CTL_UNB "UNH+M1+CONTRL:D:93A:ZZ:C0330Q+CTL03'UCI+ORIG9+5790000000001:14+"
		"5790000000002:14+7'UCM+L1+MEDDIS:D:93A:UN:D2030C+7'UCM+L2+MEDDIS:D:93A:UN:D2030C+4'"
		"UNT+5+M1'UNZ+1+R1'");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE, "a rejected UCM is no positive receipt");
	cr_assert_eq(e->refers.n, 2);
	expect_ref(e, 0, "5790000000001", "ORIG9", "L1");
	expect_ref(e, 1, "5790000000001", "ORIG9", "L2");
}

Test(refers, contrl_without_ucm_refers_to_the_interchange)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		CTL_UNB "UNH+M1+CONTRL:D:93A:ZZ:C0230Q+CTL02'UCI+ORIG9+5790000000001:14+"
		"5790000000002:14+4'FTX+SYN+P00++x'UNT+4+M1'UNZ+1+R1'");
	cr_assert_eq(e->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(e->refers.detail, "CTL02 SYN");
	cr_assert_eq(e->refers.n, 1);
	expect_ref(e, 0, "5790000000001", "ORIG9", "");
}

/* Found by fuzz_edifact: a second UCI whose reference does not fit 0020
 * left the refs of the first with no verdict. A message whose UCI cannot be
 * read when it ends acknowledges nothing, its UCMs included. */
Test(refers, contrl_whose_last_uci_is_unreadable_refers_to_nothing)
{
	_cleanup_free_ struct codec_envelope *e = decode_str(
		CTL_UNB "UNH+M1+CONTRL:D:93A:ZZ:C0330Q+CTL03'UCI+ORIG9+5790000000001:14+"
		"5790000000002:14+7'UCM+L1+MEDDIS:D:93A:UN:D2030C+7'"
		"UCI+ORIG9-IS-TOO-LONG+5790000000001:14+5790000000002:14+7'UNT+5+M1'UNZ+1+R1'");
	cr_assert(e->is_receipt);
	cr_assert_eq(e->refers.code, CODEC_ACK_NONE);
	cr_assert_eq(e->refers.n, 0);
}

Test(refers, fhir_acknowledgements_name_the_acknowledged_header)
{
	static const struct {
		const char *file;
		enum codec_ack code;
		const char *detail, *header;
	} acks[] = {
		{ "fhir/ACK_ok_Bundle-a8c041b8.xml", CODEC_ACK_POSITIVE, "ok",
		  "42cb9200-f421-4d08-8391-7d51a2503cb4" },
		{ "fhir/ACK_fatal-error_Bundle-bc9535ef.xml", CODEC_ACK_NEGATIVE, "fatal-error",
		  "53128d9b-cede-4c7f-8904-809eab322d7d" },
		{ "fhir/ACK_transient-error_Bundle-c9c2b2f6.xml", CODEC_ACK_TRANSIENT,
		  "transient-error", "53128d9b-cede-4c7f-8904-809eab322d7d" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(acks); i++) {
		_cleanup_free_ struct codec_envelope *e = decode_sample(acks[i].file);
		cr_assert_eq(e->refers.code, acks[i].code, "%s", acks[i].file);
		cr_assert_str_eq(e->refers.detail, acks[i].detail);
		cr_assert_eq(e->refers.n, 1);
		/* the acknowledged message's sender is the acknowledgement's receiver */
		expect_ref(e, 0, e->letters[0].receiver, "", acks[i].header);
	}
}

Test(refers, the_brokers_json_acknowledgement_refers_to_what_it_refuses)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("fhir/HN_STIN_admit-inpatient_Bundle-a5e5b880.json", &len);
	_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_TYPE, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(orig, &p, &rc), 0);
	cr_assert(memmem(rc.body, rc.size, "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE", 39),
		      "a type refusal uses MedCom's code for it");
	_cleanup_free_ struct codec_envelope *back = decode(rc.body, rc.size);
	cr_assert_eq(back->codec, &codec_fhir_json);
	cr_assert_eq(back->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_eq(back->refers.n, 1);
	expect_ref(back, 0, orig->letters[0].sender, "", orig->letters[0].id);
	free(rc.body);
}

Test(refers, a_vans_receipt_names_the_envelope_as_a_transmission_id)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("vans-sbdh/XDIS18_regionh_VANSEnvelope.xml", &len);
	_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNKNOWN_RECEIVER, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(orig, &p, &rc), 0);
	_cleanup_free_ struct codec_envelope *back = decode(rc.body, rc.size);
	cr_assert(back->is_receipt);
	cr_assert_eq(back->refers.code, CODEC_ACK_NEGATIVE);
	cr_assert_str_eq(back->refers.scope, "vans");
	cr_assert_str_eq(back->refers.detail, "NegativeVans");
	cr_assert_eq(back->refers.n, 1);
	expect_ref(back, 0, orig->layers[0].sender, orig->layers[0].id, "");
	/* the same (scope, sender, id) the original's txid carries */
	cr_assert_str_eq(orig->txids[0].scope, "vans");
	cr_assert_str_eq(orig->txids[0].sender, back->refers.refs[0].sender);
	cr_assert_str_eq(orig->txids[0].id, back->refers.refs[0].envelope_id);
	free(rc.body);
}

Test(refers, the_brokers_type_refusals_in_every_format)
{
	static const struct {
		const char *file, *type, *word;
	} cases[] = {
		{ "oioxml/DIS20_1.xml", "XCTL01", "problem_med_version" },
		{ "edifact/DIS20_1.edi", "CTL01", "FTX+VER" },
		{ "fhir/HN_STIN_admit-inpatient_Bundle-a5e5b880.xml", "acknowledgement-message",
		  "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE" },
		{ "vans-sbdh/XDIS21_regionh_VANSEnvelope.xml", "NegativeVans",
		  "does not take this message type" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = sample(cases[i].file, &len);
		_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
		int n = 0;
		struct codec_refusal_params p = params(CODEC_REFUSE_TYPE, &n);
		p.text = cases[i].file[0] == 'v' ? NULL : "x"; /* VANS: its own words */
		struct codec_receipt rc;
		cr_assert_eq(codec_refuse(orig, &p, &rc), 0, "%s", cases[i].file);
		cr_expect_str_eq(rc.type, cases[i].type, "%s", cases[i].file);
		cr_expect(memmem(rc.body, rc.size, cases[i].word, strlen(cases[i].word)), "%s: %.*s",
			  cases[i].file, (int)rc.size, (const char *)rc.body);
		free(rc.body);
	}
}

/* ---- (2) renewal: the same acknowledgement under a new id ---------------- */

/* Renews buf and checks the copy: the same bytes around one (or, for
 * EDIFACT, two) id fields, the new id where the old was. */
static void check_renewal(const uint8_t *buf, size_t len, const char *old_id, const char *format)
{
	int n = 500; /* other ids than the refusals that made buf */
	struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_renew(buf, len, NULL, &p, &rc), 0, "%s: renew", format);
	cr_assert_eq(n, 501, "one fresh id");
	cr_assert_str_eq(rc.format, format);
	cr_assert_str_eq(rc.refers, old_id);
	cr_assert_str_neq(rc.envelope_id, old_id);
	cr_assert_eq(rc.key.id[0], '\0', "a renewed copy records no letter");
	_cleanup_free_ struct codec_envelope *a = decode(buf, len);
	_cleanup_free_ struct codec_envelope *b = decode(rc.body, rc.size);
	cr_assert_str_eq(renew_outer_id(b), rc.envelope_id);
	cr_assert(renew_same_refers(&a->refers, &b->refers), "same refers");
	cr_assert_str_eq(a->letters[0].type, b->letters[0].type);
	cr_assert_str_eq(rc.sender, a->letters[0].sender);
	cr_assert_str_eq(rc.receiver, a->letters[0].receiver);
	/* nothing but the ids changed: the first difference is the first id */
	const uint8_t *at = memmem(buf, len, old_id, strlen(old_id));
	cr_assert_not_null(at);
	size_t head = (size_t)(at - buf);
	cr_assert_arr_eq(rc.body, buf, head);
	size_t idn = strlen(rc.envelope_id), oldn = strlen(old_id);
	cr_assert_arr_eq(rc.body + head, rc.envelope_id, idn);
	const uint8_t *last = buf + len, *rlast = rc.body + rc.size;
	const uint8_t *tail_old = memmem(at + oldn, len - head - oldn, old_id, oldn);
	size_t tail = tail_old ? (size_t)(last - (tail_old + oldn)) : len - head - oldn;
	cr_assert_arr_eq(rlast - tail, last - tail, tail, "the bytes after the id are the same");
	free(rc.body);
}

Test(renew, xctl_receipts)
{
	static const char *const files[] = { "oioxml/CTL01_1.xml", "oioxml/CTL02_1.xml",
					     "oioxml/CTL03_1.xml" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = sample(files[i], &len);
		check_renewal(buf, len, "KuvertNr1234", "oioxml");
	}
}

Test(renew, contrl_receipts_get_a_new_unb_and_unz_reference)
{
	static const char *const files[] = { "edifact/CTL01_1.edi", "edifact/CTL02_1.edi",
					     "edifact/CTL03_1.edi" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = sample(files[i], &len);
		check_renewal(buf, len, "KuvertNr1234", "edifact");
		int n = 0;
		struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
		struct codec_receipt rc;
		cr_assert_eq(codec_renew(buf, len, NULL, &p, &rc), 0);
		cr_assert_null(memmem(rc.body, rc.size, "KuvertNr1234", 12), "both references renewed");
		free(rc.body);
	}
}

Test(renew, fhir_acknowledgements_get_a_new_bundle_id_and_keep_the_header_id)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("fhir/ACK_ok_Bundle-a8c041b8.xml", &len);
	check_renewal(buf, len, "a8c041b8-c65a-4fde-a90f-962076918834", "fhir-xml");
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_renew(buf, len, NULL, &p, &rc), 0);
	_cleanup_free_ struct codec_envelope *a = decode(buf, len), *b = decode(rc.body, rc.size);
	cr_assert_str_eq(a->letters[0].id, b->letters[0].id, "MessageHeader.id stays (MR7)");
	free(rc.body);
}

Test(renew, fhir_json_acknowledgement)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("fhir/HN_STIN_admit-inpatient_Bundle-a5e5b880.json", &len);
	_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_SYNTAX, &n);
	struct codec_receipt ack;
	cr_assert_eq(codec_refuse(orig, &p, &ack), 0);
	check_renewal(ack.body, ack.size, ack.envelope_id, "fhir-json");
	free(ack.body);
}

Test(renew, vans_receipt)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("vans-sbdh/XDIS18_regionh_VANSEnvelope.xml", &len);
	_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_SYNTAX, &n);
	struct codec_receipt receipt;
	cr_assert_eq(codec_refuse(orig, &p, &receipt), 0);
	check_renewal(receipt.body, receipt.size, receipt.envelope_id, "vans");
	free(receipt.body);
}

Test(renew, an_acknowledgement_inside_an_sbdh_gets_a_new_instance_identifier)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = sample("vans-sbdh/XDIS20_regionh_SBDH.xml", &len);
	_cleanup_free_ struct codec_envelope *orig = decode(buf, len);
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_SYNTAX, &n);
	struct codec_receipt receipt; /* an SBDH around an XCTL01 */
	cr_assert_eq(codec_refuse(orig, &p, &receipt), 0);
	_cleanup_free_ struct codec_envelope *r = decode(receipt.body, receipt.size);
	cr_assert_eq(r->codec, &codec_sbdh);
	cr_assert(r->is_receipt);
	check_renewal(receipt.body, receipt.size, r->layers[0].id, "sbdh");
	free(receipt.body);
}

Test(renew, refuses_what_is_no_acknowledgement)
{
	static const char *const files[] = { "oioxml/DIS20_1.xml", "edifact/DIS20_1.edi",
					     "fhir/HN_STIN_admit-inpatient_Bundle-a5e5b880.xml",
					     "vans-sbdh/XDIS21_regionh_VANSEnvelope.xml" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = sample(files[i], &len);
		int n = 0;
		struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
		struct codec_receipt rc;
		cr_expect_eq(codec_renew(buf, len, NULL, &p, &rc), -ENOTSUP, "%s", files[i]);
		cr_expect_eq(n, 0, "no id spent on %s", files[i]);
	}
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
	struct codec_receipt rc;
	cr_expect_eq(codec_renew((const uint8_t *)"not a message", 13, NULL, &p, &rc), -ENOTSUP);
}

Test(renew, refuses_when_the_id_is_not_written_plainly)
{
	/* the id written with a character reference: found, but not the id */
	const char *x = XCTL_HEAD XCTL_LETTER("PositiveReceipt", "XCTL03", "XC0330Q", "B1")
		"</PositiveReceipt></Emessage>";
	_cleanup_free_ char *ref = xstrdup(x);
	char *at = strstr(ref, "<Identifier>K1<");
	cr_assert_not_null(at);
	_cleanup_free_ char *encoded = xasprintf("%.*s<Identifier>&#75;1<%s", (int)(at - ref), ref,
						 at + strlen("<Identifier>K1<"));
	int n = 0;
	struct codec_refusal_params p = params(CODEC_REFUSE_UNSPECIFIED, &n);
	struct codec_receipt rc;
	cr_assert_eq(codec_renew((const uint8_t *)encoded, strlen(encoded), NULL, &p, &rc), -EINVAL);
	/* and a comment that looks like the field is skipped */
	_cleanup_free_ char *commented =
		xasprintf("<!-- <Identifier>K1</Identifier> -->%s", x);
	cr_assert_eq(codec_renew((const uint8_t *)commented, strlen(commented), NULL, &p, &rc), 0);
	cr_assert(memmem(rc.body, rc.size, "<!-- <Identifier>K1</Identifier> -->", 36));
	free(rc.body);
}

/* ---- (3) the scanners ------------------------------------------------------ */

Test(scan, xml_field_by_local_name_text_or_attribute)
{
	const char *x = "<?xml version=\"1.0\"?><!-- <a:Id>no</a:Id> --><r><![CDATA[<Id>no</Id>]]>"
			"<a:Id  x='1' value = 'v1' >  t1 </a:Id></r>";
	struct renew_span sp;
	cr_assert(renew_xml_field((const uint8_t *)x, strlen(x), "Id", NULL, &sp));
	cr_assert_eq(sp.n, 2);
	cr_assert_arr_eq(x + sp.off, "t1", 2);
	cr_assert(renew_xml_field((const uint8_t *)x, strlen(x), "Id", "value", &sp));
	cr_assert_arr_eq(x + sp.off, "v1", 2);
	cr_assert_not(renew_xml_field((const uint8_t *)x, strlen(x), "Id", "other", &sp));
	cr_assert_not(renew_xml_field((const uint8_t *)x, strlen(x), "Missing", NULL, &sp));
	const char *nested = "<r><Id><b>x</b></Id></r>";
	cr_assert_not(renew_xml_field((const uint8_t *)nested, strlen(nested), "Id", NULL, &sp),
		      "markup inside is no plain text");
	const char *cut = "<r><Id>x";
	cr_assert_not(renew_xml_field((const uint8_t *)cut, strlen(cut), "Id", NULL, &sp));
}

Test(scan, json_member_only_at_the_top_level)
{
	const char *j = "{ \"entry\": [ {\"id\": \"inner\", \"s\": \"a\\\"b{\"} ], \"n\": 1,"
			" \"x\": {\"id\": \"deep\"}, \"id\" : \"top\" }";
	struct renew_span sp;
	cr_assert(renew_json_member((const uint8_t *)j, strlen(j), "id", &sp));
	cr_assert_eq(sp.n, 3);
	cr_assert_arr_eq(j + sp.off, "top", 3);
	const char *num = "{\"id\": 5}";
	cr_assert_not(renew_json_member((const uint8_t *)num, strlen(num), "id", &sp));
	const char *none = "{\"a\": \"id\"}";
	cr_assert_not(renew_json_member((const uint8_t *)none, strlen(none), "id", &sp));
	cr_assert_not(renew_json_member((const uint8_t *)"[1]", 3, "id", &sp));
}

/*
 * xctl01.c - writes the XCTL01 NegativeVansReceipt, the OIOXML codec's
 * answer when the broker refuses a whole envelope (unknown receiver,
 * undecodable message). The accept path asks the codec that decoded (or
 * partly decoded) the envelope for it through codec_refuse(); the result is
 * queued for the original sender like any other outbound message. This file
 * owns the RefuseCode words: the caller names only a codec_refusal.
 *
 * The output is UTF-8 and valid against the 2005/08/07 EMessage.xsd:
 * every parameter is checked against its schema field before a byte is
 * written, and all text is XML-escaped, so a bad input yields -EINVAL, never
 * an invalid document. Schema facts this relies on:
 *  - OriginalReceiver/EANIdentifier is required (String_1_35). When the
 *    original receiver was never read, the broker's own id stands in: it is
 *    the party that actually received the envelope.
 *  - OriginalLetter has maxOccurs 99, the codec allows CODEC_MAX_LETTERS;
 *    the first 99 letters are listed (the refusal covers the whole envelope
 *    through OriginalEnvelopeIdentifier anyway).
 * String lengths are checked in bytes, which is at least as strict as the
 * schema's character counts.
 */
#include "codecs/xctl01.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/base/utf8.h"

#define RECEIPT_NS "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/"
#define ORIGINAL_LETTERS_MAX 99 /* NegativeVansReceipt.xsd: OriginalLetter maxOccurs */
#define ID_MAX 14		/* String_1_14 */
#define GLN_MAX 35		/* EANIdentifierType = String_1_35 */
#define VERSION_MAX 7		/* OriginalVersionCodeType = String_1_7 */

/* RefuseCodeType in NegativeVansReceipt.xsd, by the refusal it words. */
static const char *const refuse_codes[] = {
	[CODEC_REFUSE_UNSPECIFIED] = "ikke_specificeret",
	[CODEC_REFUSE_UNKNOWN_RECEIVER] = "ukendt_lokationsnummer",
	[CODEC_REFUSE_RECEIVER_ID] = "problem_med_modtagerID",
	[CODEC_REFUSE_SYNTAX] = "syntaksfejl",
	[CODEC_REFUSE_VERSION] = "problem_med_version",
	/* as MedCom's own CTL02 sample words "cannot receive this kind of letter" */
	[CODEC_REFUSE_TYPE] = "problem_med_version",
};
_Static_assert(ARRAY_SIZE(refuse_codes) == CODEC_REFUSE_LAST + 1, "a RefuseCode for every refusal");

/* ---- parameter checks -------------------------------------------------- */

/* Valid UTF-8 that XML 1.0 can carry; `allow_ws` admits \t \n \r. */
static bool xml_text_ok(const char *s, size_t n, bool allow_ws)
{
	if (!utf8_valid(s, n) || memmem(s, n, "\xEF\xBF\xBE", 3) ||
	    memmem(s, n, "\xEF\xBF\xBF", 3))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ws = c == '\t' || c == '\n' || c == '\r';
		if ((c < 0x20 && !(allow_ws && ws)) || c == 0x7F)
			return false;
	}
	return true;
}

/* 1..max bytes of XML-safe text without control characters. */
static bool field_ok(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;
	return n >= 1 && n <= max && xml_text_ok(s, n, false);
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "YYYY-MM-DD" (xs:date without zone) */
static bool date_ok(const char *s)
{
	if (!s || strlen(s) != 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) ||
	    s[7] != '-' || !digits(s + 8, 2))
		return false;
	int month = atoi(s + 5), day = atoi(s + 8);
	return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* "HH:MM" (Time_hh_mm: (([0-1][0-9])|(2[0-3])):[0-5][0-9]) */
static bool time_ok(const char *s)
{
	return s && strlen(s) == 5 && digits(s, 2) && s[2] == ':' && digits(s + 3, 2) &&
	       atoi(s) <= 23 && atoi(s + 3) <= 59;
}

static bool refuse_code_ok(const char *code)
{
	for (size_t i = 0; code && i < ARRAY_SIZE(refuse_codes); i++)
		if (strcmp(code, refuse_codes[i]) == 0)
			return true;
	return false;
}

static bool params_ok(const struct xctl01_params *p)
{
	return p && field_ok(p->sender_id, GLN_MAX) && field_ok(p->envelope_id, ID_MAX) &&
	       field_ok(p->letter_id, ID_MAX) && date_ok(p->date) && time_ok(p->time) &&
	       refuse_code_ok(p->refuse_code) &&
	       (!p->refuse_text || xml_text_ok(p->refuse_text, strlen(p->refuse_text), true));
}

/* The original must be addressable, and every listed letter echoable. */
static bool original_ok(const struct codec_envelope *o)
{
	if (!o || o->is_receipt || o->nletters > CODEC_MAX_LETTERS ||
	    !field_ok(o->envelope_id, ID_MAX) || !field_ok(o->letters[0].sender, GLN_MAX) ||
	    (o->letters[0].receiver[0] && !field_ok(o->letters[0].receiver, GLN_MAX)))
		return false;
	for (size_t i = 0; i < o->nletters; i++)
		if (!field_ok(o->letters[i].id, ID_MAX) ||
		    !field_ok(o->letters[i].version, VERSION_MAX))
			return false;
	return true;
}

/* ---- output ------------------------------------------------------------ */

/* Escaped character data. '\n' becomes <Break/> (BreakableText) and '\r' is
 * dropped; checked fields never contain either, so one writer serves both. */
static void sb_text(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		const char *rep = *s == '&'    ? "&amp;"
				  : *s == '<'  ? "&lt;"
				  : *s == '>'  ? "&gt;"
				  : *s == '"'  ? "&quot;"
				  : *s == '\'' ? "&apos;"
				  : *s == '\n' ? "<Break/>"
				  : *s == '\r' ? ""
					       : NULL;
		if (rep)
			strbuf_add(b, rep, strlen(rep));
		else
			strbuf_add(b, s, 1);
	}
}

/* One indented <name>text</name> line. */
static void sb_elem(struct strbuf *b, int indent, const char *name, const char *text)
{
	strbuf_printf(b, "%*s<%s>", indent * 2, "", name);
	sb_text(b, text);
	strbuf_printf(b, "</%s>\n", name);
}

/* <name><EANIdentifier>gln</EANIdentifier></name> (CTRLSenderType/ReceiverType) */
static void sb_party(struct strbuf *b, int indent, const char *name, const char *gln)
{
	strbuf_printf(b, "%*s<%s>\n", indent * 2, "", name);
	sb_elem(b, indent + 1, "EANIdentifier", gln);
	strbuf_printf(b, "%*s</%s>\n", indent * 2, "", name);
}

static void put_envelope(struct strbuf *b, const struct xctl01_params *p)
{
	strbuf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Emessage xmlns=\"%s\">\n",
		  RECEIPT_NS);
	strbuf_printf(b, "  <Envelope>\n    <Sent>\n");
	sb_elem(b, 3, "Date", p->date);
	sb_elem(b, 3, "Time", p->time);
	strbuf_printf(b, "    </Sent>\n");
	sb_elem(b, 2, "Identifier", p->envelope_id);
	sb_elem(b, 2, "AcknowledgementCode", "minuspositivkvitt");
	strbuf_printf(b, "  </Envelope>\n");
}

static void put_letter_head(struct strbuf *b, const struct codec_envelope *o,
			    const struct xctl01_params *p)
{
	strbuf_printf(b, "  <NegativeVansReceipt>\n    <Letter>\n");
	sb_elem(b, 3, "Identifier", p->letter_id);
	sb_elem(b, 3, "VersionCode", "XC0130Q");
	sb_elem(b, 3, "StatisticalCode", "XCTL01");
	strbuf_printf(b, "    </Letter>\n");
	sb_party(b, 2, "Sender", p->sender_id);
	sb_party(b, 2, "Receiver", o->letters[0].sender);
}

static void put_original(struct strbuf *b, const struct codec_envelope *o,
			 const struct xctl01_params *p)
{
	const char *receiver = o->letters[0].receiver[0] ? o->letters[0].receiver : p->sender_id;
	size_t n = o->nletters < ORIGINAL_LETTERS_MAX ? o->nletters : ORIGINAL_LETTERS_MAX;
	strbuf_printf(b, "    <OriginalEmessage>\n");
	sb_elem(b, 3, "OriginalEnvelopeIdentifier", o->envelope_id);
	sb_party(b, 3, "OriginalSender", o->letters[0].sender);
	sb_party(b, 3, "OriginalReceiver", receiver);
	sb_elem(b, 3, "RefuseCode", p->refuse_code);
	if (!str_empty(p->refuse_text))
		sb_elem(b, 3, "RefuseText", p->refuse_text);
	for (size_t i = 0; i < n; i++) {
		strbuf_printf(b, "      <OriginalLetter>\n");
		sb_elem(b, 4, "OriginalLetterIdentifier", o->letters[i].id);
		sb_elem(b, 4, "OriginalVersionCode", o->letters[i].version);
		strbuf_printf(b, "      </OriginalLetter>\n");
	}
	strbuf_printf(b, "    </OriginalEmessage>\n");
}

int xctl01_build(const struct codec_envelope *orig, const struct xctl01_params *p, char **out,
		 size_t *len)
{
	struct strbuf b = { 0 };
	if (!original_ok(orig) || !params_ok(p) || !out || !len)
		return -EINVAL;
	put_envelope(&b, p);
	put_letter_head(&b, orig, p);
	put_original(&b, orig, p);
	strbuf_printf(&b, "  </NegativeVansReceipt>\n</Emessage>\n");
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- the codec operation ----------------------------------------------- */

const char *xctl01_refuse_code(enum codec_refusal why)
{
	return (size_t)why < ARRAY_SIZE(refuse_codes) ? refuse_codes[why] : NULL;
}

int xctl01_refuse(const struct codec_envelope *orig, const struct codec_refusal_params *p,
		  struct codec_receipt *out)
{
	char id[CODEC_ID_MAX] = "", date[16], hm[8];
	if (!orig || !p || !out)
		return -EINVAL;
	if (orig->is_receipt)
		return -ENOTSUP;
	if (!orig->codec || !p->fresh_id || strftime(date, sizeof(date), "%Y-%m-%d", &p->now) == 0 ||
	    strftime(hm, sizeof(hm), "%H:%M", &p->now) == 0)
		return -EINVAL;
	p->fresh_id(p->ctx, id);
	struct xctl01_params xp = { p->broker_id, id, id, xctl01_refuse_code(p->reason), p->text,
				    date, hm };
	char *body;
	size_t len;
	int r = xctl01_build(orig, &xp, &body, &len);
	if (r < 0)
		return r;
	*out = (struct codec_receipt){
		.body = (uint8_t *)body, .size = len, .format = orig->codec->name,
		.ext = orig->codec->ext, .type = "XCTL01", .version = "XC0130Q",
	};
	str_copy(out->envelope_id, id, sizeof(out->envelope_id));
	str_copy(out->sender, p->broker_id, sizeof(out->sender));
	str_copy(out->receiver, orig->letters[0].sender, sizeof(out->receiver));
	str_copy(out->refers, orig->envelope_id, sizeof(out->refers));
	str_copy(out->key.sender, p->broker_id, sizeof(out->key.sender));
	str_copy(out->key.id, id, sizeof(out->key.id));
	return 0;
}

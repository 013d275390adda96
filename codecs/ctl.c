/*
 * ctl.c - writes CONTRL negative receipts (CTL01, CTL02), the EDIFACT
 * codec's answer when the broker refuses an interchange. The accept path
 * asks the codec that decoded (or partly decoded) the interchange for it
 * through codec_refuse(); the result is queued for the original sender like
 * any other outbound message. This file owns the CONTRL words for a
 * refusal (receipt type and FTX qualifier): the caller names only a
 * codec_refusal.
 *
 * The layout follows MedCom's CTL01_1.edi and CTL02_1.edi samples and
 * medcom.md 3.3: UNA, UNB without an acknowledgement request (receipts ask
 * for none), UNH CONTRL:D:93A:ZZ:C0130Q|C0230Q, UCI echoing the original
 * interchange (reference, sender, recipient, action 4), one FTX right after
 * UCI (an envelope-level refusal: the whole interchange is refused), one
 * UCM per original message (reference, message identifier, action 4), UNT,
 * UNZ; a line break after every segment, as in the samples.
 *
 * Every parameter is checked before a byte is written and every value is
 * escaped with the release character, so bad input yields -EINVAL, never a
 * receipt our own decoder would refuse. Ids must be printable ASCII; the
 * text is converted from UTF-8 to ISO-8859-1 (UNOC).
 */
#include "codecs/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/base/utf8.h"
#include "codecs/edifact.h"

#define ID_MAX 14	 /* 0020, 0062: an..14 */
#define PARTY_MAX 35	 /* 0004, 0010: an..35 */
#define VERSION_MAX 7	 /* what codec_letter.version holds */
#define FTX_LINE_MAX 70	 /* 4440 free text: an..70 */
#define FTX_LINES_MAX 5	 /* C108 holds five 4440 */
#define ACTION_REJECTED "4" /* 0083, as in both negative samples */

/* The receipt and FTX text subject qualifier (4451) for each refusal. */
static const struct {
	const char *type;
	const char *qualifier;
} words[] = {
	[CODEC_REFUSE_UNSPECIFIED] = { "CTL02", "NC" },
	[CODEC_REFUSE_UNKNOWN_RECEIVER] = { "CTL01", "LOK" },
	[CODEC_REFUSE_RECEIVER_ID] = { "CTL01", "MID" },
	[CODEC_REFUSE_SYNTAX] = { "CTL02", "SYN" },
	[CODEC_REFUSE_VERSION] = { "CTL02", "VER" },
	/* the network refuses it for the receiver, as for LOK and MID */
	[CODEC_REFUSE_TYPE] = { "CTL01", "VER" },
};
_Static_assert(ARRAY_SIZE(words) == CODEC_REFUSE_LAST + 1, "CONTRL words for every refusal");

/* ---- parameter checks -------------------------------------------------- */

/* 1..max bytes of printable ASCII, not all blanks (what the decoder takes). */
static bool id_ok(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;
	bool blank = true;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7E)
			return false;
		blank = blank && s[i] == ' ';
	}
	return !blank;
}

static bool tm_ok(const struct tm *t)
{
	return t && t->tm_year >= 0 && t->tm_mon >= 0 && t->tm_mon <= 11 && t->tm_mday >= 1 &&
	       t->tm_mday <= 31 && t->tm_hour >= 0 && t->tm_hour <= 23 && t->tm_min >= 0 &&
	       t->tm_min <= 59;
}

static const char *version_of(const char *type)
{
	if (type && strcmp(type, "CTL01") == 0)
		return "C0130Q";
	if (type && strcmp(type, "CTL02") == 0)
		return "C0230Q";
	return NULL;
}

static bool qualifier_ok(const char *q)
{
	for (size_t i = 0; q && i < ARRAY_SIZE(words); i++)
		if (strcmp(q, words[i].qualifier) == 0)
			return true;
	return false;
}

/* The original must be addressable, and every letter echoable in a UCM. */
static bool original_ok(const struct codec_envelope *o)
{
	if (!o || o->is_receipt || o->nletters > CODEC_MAX_LETTERS ||
	    !id_ok(o->envelope_id, ID_MAX) || !id_ok(o->letters[0].sender, PARTY_MAX) ||
	    (o->letters[0].receiver[0] && !id_ok(o->letters[0].receiver, PARTY_MAX)))
		return false;
	for (size_t i = 0; i < o->nletters; i++)
		if (!id_ok(o->letters[i].id, ID_MAX) || !id_ok(o->letters[i].version, VERSION_MAX) ||
		    !edifact_message_head(o->letters[i].type))
			return false;
	return true;
}

/* UTF-8 text to ISO-8859-1 in out (room for strlen(text) + 1): '\n' kept,
 * '\r' dropped; -EINVAL for invalid UTF-8, other control characters (C0,
 * DEL, C1) and code points above U+00FF. */
static int to_latin1(const char *text, char *out, size_t *outlen)
{
	size_t len = strlen(text), n = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = utf8_decode(text + i, len - i, &cp);
		if (k == 0 || cp > 0xFF || (cp < 0x20 && cp != '\n' && cp != '\r') ||
		    (cp >= 0x7F && cp < 0xA0))
			return -EINVAL;
		i += k;
		if (cp != '\r')
			out[n++] = (char)cp;
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

struct line {
	const char *s;
	size_t n;
};

/* Cuts s into at most FTX_LINES_MAX lines of at most FTX_LINE_MAX
 * characters, at '\n' and where a line is too long; trailing empty lines
 * are dropped. Returns the number of lines. */
static size_t wrap_lines(const char *s, size_t n, struct line out[FTX_LINES_MAX])
{
	const char *end = s + n;
	size_t count = 0;
	while (count < FTX_LINES_MAX) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = (size_t)((nl ? nl : end) - s);
		size_t take = len < FTX_LINE_MAX ? len : FTX_LINE_MAX;
		out[count++] = (struct line){ s, take };
		s += take;
		if (take == len) {
			if (!nl)
				break;
			s++;
		}
	}
	while (count > 0 && out[count - 1].n == 0)
		count--;
	return count;
}

static bool params_ok(const struct ctl_params *p)
{
	return p && version_of(p->type) && id_ok(p->sender_id, PARTY_MAX) &&
	       id_ok(p->interchange_ref, ID_MAX) && id_ok(p->message_ref, ID_MAX) &&
	       qualifier_ok(p->qualifier) && tm_ok(p->when);
}

/* ---- output ------------------------------------------------------------ */

struct writer {
	struct strbuf b;
	size_t nsegs; /* segments since UNH, for UNT */
};

/* n bytes, each service character preceded by the release character. */
static void put_escaped(struct writer *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '?' || s[i] == '\'' || s[i] == '+' || s[i] == ':')
			strbuf_add(&w->b, "?", 1);
		strbuf_add(&w->b, s + i, 1);
	}
}

/* sep ('+' starts an element, ':' a component), then the escaped value. */
static void put(struct writer *w, char sep, const char *value)
{
	strbuf_add(&w->b, &sep, 1);
	put_escaped(w, value, strlen(value));
}

/* sep, then a value whose ':' are component separators (S009 heads). */
static void put_raw(struct writer *w, char sep, const char *value)
{
	strbuf_add(&w->b, &sep, 1);
	strbuf_puts(&w->b, value);
}

static void seg_begin(struct writer *w, const char *tag)
{
	strbuf_puts(&w->b, tag);
}

static void seg_end(struct writer *w)
{
	strbuf_puts(&w->b, "'\n");
	w->nsegs++;
}

/* A party as S002/S003 and UCI write it: id and qualifier 14. */
static void put_party(struct writer *w, const char *id)
{
	put(w, '+', id);
	put(w, ':', "14");
}

static void put_header(struct writer *w, const struct codec_envelope *o,
		       const struct ctl_params *p)
{
	char date[32], hm[32];
	const struct tm *t = p->when;
	snprintf(date, sizeof(date), "%02d%02d%02d", t->tm_year % 100, t->tm_mon + 1, t->tm_mday);
	snprintf(hm, sizeof(hm), "%02d%02d", t->tm_hour, t->tm_min);
	strbuf_puts(&w->b, "UNA:+.? '\n");
	seg_begin(w, "UNB");
	put(w, '+', "UNOC");
	put(w, ':', "3");
	put_party(w, p->sender_id);
	put_party(w, o->letters[0].sender);
	put(w, '+', date);
	put(w, ':', hm);
	put(w, '+', p->interchange_ref);
	seg_end(w);
	w->nsegs = 0;
	seg_begin(w, "UNH");
	put(w, '+', p->message_ref);
	put_raw(w, '+', edifact_message_head(p->type));
	put(w, ':', version_of(p->type));
	put(w, '+', p->type);
	seg_end(w);
}

/* UCI and its FTX: the refusal of the whole interchange. The original
 * recipient is the broker itself when it was never read. */
static void put_refusal(struct writer *w, const struct codec_envelope *o,
			const struct ctl_params *p, const struct line *lines, size_t nlines)
{
	const char *recipient = o->letters[0].receiver[0] ? o->letters[0].receiver : p->sender_id;
	seg_begin(w, "UCI");
	put(w, '+', o->envelope_id);
	put_party(w, o->letters[0].sender);
	put_party(w, recipient);
	put(w, '+', ACTION_REJECTED);
	seg_end(w);
	seg_begin(w, "FTX");
	put(w, '+', p->qualifier);
	put(w, '+', "P00");
	for (size_t i = 0; i < nlines; i++) {
		strbuf_puts(&w->b, i == 0 ? "++" : ":");
		put_escaped(w, lines[i].s, lines[i].n);
	}
	seg_end(w);
}

static void put_letters(struct writer *w, const struct codec_envelope *o)
{
	for (size_t i = 0; i < o->nletters; i++) {
		const struct codec_letter *l = &o->letters[i];
		seg_begin(w, "UCM");
		put(w, '+', l->id);
		put_raw(w, '+', edifact_message_head(l->type));
		put(w, ':', l->version);
		put(w, '+', ACTION_REJECTED);
		seg_end(w);
	}
}

static void put_trailer(struct writer *w, const struct ctl_params *p)
{
	char count[24];
	snprintf(count, sizeof(count), "%zu", w->nsegs + 1);
	seg_begin(w, "UNT");
	put(w, '+', count);
	put(w, '+', p->message_ref);
	seg_end(w);
	seg_begin(w, "UNZ");
	put(w, '+', "1");
	put(w, '+', p->interchange_ref);
	seg_end(w);
}

int ctl_build(const struct codec_envelope *orig, const struct ctl_params *p, char **out,
	      size_t *len)
{
	struct line lines[FTX_LINES_MAX];
	size_t nlines = 0, tlen = 0;
	if (!original_ok(orig) || !params_ok(p) || !out || !len)
		return -EINVAL;
	_cleanup_free_ char *text = xmalloc(str_empty(p->text) ? 1 : strlen(p->text) + 1);
	if (!str_empty(p->text)) {
		if (to_latin1(p->text, text, &tlen) < 0)
			return -EINVAL;
		nlines = wrap_lines(text, tlen, lines);
	}
	struct writer w = { 0 };
	put_header(&w, orig, p);
	put_refusal(&w, orig, p, lines, nlines);
	put_letters(&w, orig);
	put_trailer(&w, p);
	*len = w.b.len;
	*out = strbuf_take(&w.b);
	return 0;
}

/* ---- the codec operation ----------------------------------------------- */

bool ctl_refusal_words(enum codec_refusal why, const char **type, const char **qualifier)
{
	if ((size_t)why >= ARRAY_SIZE(words))
		return false;
	*type = words[why].type;
	*qualifier = words[why].qualifier;
	return true;
}

int ctl_refuse(const struct codec_envelope *orig, const struct codec_refusal_params *p,
	       struct codec_receipt *out)
{
	const char *type, *qualifier;
	char id[CODEC_ID_MAX] = "";
	if (!orig || !p || !out)
		return -EINVAL;
	if (orig->is_receipt)
		return -ENOTSUP;
	if (!p->fresh_id || !ctl_refusal_words(p->reason, &type, &qualifier))
		return -EINVAL;
	p->fresh_id(p->ctx, id);
	struct ctl_params cp = { type, p->broker_id, id, id, qualifier, p->text, &p->now };
	char *body;
	size_t len;
	int r = ctl_build(orig, &cp, &body, &len);
	if (r < 0)
		return r;
	*out = (struct codec_receipt){
		.body = (uint8_t *)body, .size = len, .format = codec_edifact.name,
		.ext = codec_edifact.ext,
	};
	str_copy(out->type, type, sizeof(out->type));
	str_copy(out->envelope_id, id, sizeof(out->envelope_id));
	str_copy(out->sender, p->broker_id, sizeof(out->sender));
	str_copy(out->receiver, orig->letters[0].sender, sizeof(out->receiver));
	str_copy(out->refers, orig->envelope_id, sizeof(out->refers));
	str_copy(out->key.sender, p->broker_id, sizeof(out->key.sender));
	str_copy(out->key.id, id, sizeof(out->key.id));
	return 0;
}

/*
 * edifact.c - decodes the routing envelope of a MedCom EDIFACT interchange
 * (medcom.md 3.1-3.3; rules 2, 5 and 10 of section 9). The receive side
 * feeds it raw bytes through the codec registry; the router, duplicate
 * register and receipt builder read the struct codec_envelope it fills. Its
 * refusals are CONTRL receipts (ctl.c).
 *
 * One pass, left to right, no allocation: a scanner cuts the bytes into
 * segments (honouring UNA, the release character, line breaks, and the
 * binary object after a UNO), and the table `steps` below walks the
 * interchange grammar [UNA] UNB (UNH ... UNT)+ UNZ, one action per service
 * segment. Only UNB, UNH, UNT, UNZ, UNO and UNP are read field by field;
 * body segments are only checked for syntax, character set and length.
 * Every byte is looked at a bounded number of times, so time is linear in
 * the input and the input is bounded by the caller's limit.
 *
 * Character set: UNOC data is ISO-8859-1, UNOA/UNOB ASCII. Fields copied out
 * (GLNs, references, codes) must be printable ASCII, so nothing is
 * transcoded. Control bytes and C1 bytes (0x80-0x9F, not ISO-8859-1
 * characters) are refused. A UNOC interchange whose non-ASCII bytes all
 * form valid UTF-8 sequences is refused as UTF-8 encoded: a Danish Latin-1
 * letter is practically never followed by UTF-8 continuation bytes, so one
 * real Latin-1 byte anywhere clears the interchange.
 *
 * Line breaks: CR and LF are skipped between segments and also inside
 * them (MedCom's own converter drops them; old systems fold long lines), so
 * they can be neither data nor service characters. Blanks and tabs are also
 * skipped before, between and after segments.
 *
 * Invariants: on success every id, type, version and GLN is non-empty
 * printable ASCII that fits its field, every UNT count and reference and
 * the UNZ count and reference agree, and each letter's type and version
 * agree with `families`. On failure env holds only what a negative
 * receipt needs, from a UNB read whole: envelope_id, letters[0].sender and
 * letters[0].receiver (each only if valid), and is_receipt when the first
 * UNH read whole is a CONTRL; nletters is 0. Error texts name the segment
 * (its number in the file, UNA counted, and tag), the element and what is
 * wrong; they quote service-segment codes, counts and references, never
 * body data.
 */
#include "codecs/edifact.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "codecs/ctl.h"
#include "codecs/renew.h"

/* Message types routed, and the shape of their letters' type and version:
 * MEDDIS D2030C carries DIS20, CONTRL C0130Q carries CTL01. */
static const struct family {
	const char *name;    /* S009/0065 */
	const char *head;    /* S009 as MedCom writes it, before 0057 */
	const char *prefix;  /* letter type prefix: DIS20 */
	char version_letter; /* first character of 0057: D2030C */
	bool receipt;
} families[] = {
	{ "MEDDIS", "MEDDIS:D:93A:UN", "DIS", 'D', false },
	{ "MEDBIN", "MEDBIN:D:93A:UN", "BIN", 'B', false },
	{ "CONTRL", "CONTRL:D:93A:ZZ", "CTL", 'C', true },
};

/* Syntax identifiers (UNB S001/0001) and how their bytes are read. */
static const struct charset {
	const char *id;
	const char *encoding;
	bool ascii;
} charsets[] = {
	{ "UNOA", "US-ASCII", true },
	{ "UNOB", "US-ASCII", true },
	{ "UNOC", "ISO-8859-1", false },
};

#define SNIFF_WINDOW (64u * 1024u)
/* EDIFACT's own field sizes, plus NUL: tighter than codec.h's, which also
 * hold FHIR and VANS ids. 0020 and 0062 are an..14; version codes 7. */
#define EDI_REF_MAX 15
#define EDI_VERSION_MAX 8
_Static_assert(EDI_REF_MAX <= CODEC_ID_MAX && EDI_VERSION_MAX <= CODEC_VERSION_MAX,
	       "EDIFACT fields fit the envelope");
#define SEG_ELEMENTS 12  /* elements recorded per segment (UNB has 11) */
#define SEG_COMPONENTS 6 /* components recorded per element */
#define UNB_ELEMENTS 11

/* ---- scanning ---------------------------------------------------------- */

struct syntax {
	uint8_t comp, elem, rel, term;
	bool has_rel;
};

struct span {
	size_t off, end; /* raw bytes [off, end) */
	size_t len;      /* data characters: release characters and line breaks not counted */
};

struct segment {
	size_t number; /* 1-based position in the interchange, UNA counted */
	size_t offset; /* of the tag */
	char tag[4];
	size_t nelem;  /* data elements after the tag, recorded or not */
	uint8_t ncomp[SEG_ELEMENTS];
	struct span comp[SEG_ELEMENTS][SEG_COMPONENTS];
};

struct scanner {
	const uint8_t *buf;
	size_t len, pos;
	size_t nsegments;
	struct syntax syn;
	bool ascii_only; /* UNOA, UNOB */
	/* Non-ASCII data seen, to tell UTF-8 from Latin-1 at the end. */
	size_t utf8_seqs, latin1_bytes;
	struct {
		size_t offset, segment, element;
		char tag[4];
	} first_utf8;
};

static int failv(struct codec_error *err, enum codec_errcode code, const char *prefix,
		 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static int failv(struct codec_error *err, enum codec_errcode code, const char *prefix,
		 const char *fmt, va_list ap)
{
	size_t n = str_copy(err->text, prefix, sizeof(err->text));
	if (n < sizeof(err->text) - 1)
		vsnprintf(err->text + n, sizeof(err->text) - n, fmt, ap);
	err->code = code;
	return -1;
}

static int fail(struct codec_error *err, enum codec_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct codec_error *err, enum codec_errcode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	failv(err, code, "", fmt, ap);
	va_end(ap);
	return -1;
}

/* An error inside segment s while scanning: names its number, tag (when
 * valid), element and the byte offset. */
static int scan_fail(const struct scanner *sc, const struct segment *s, struct codec_error *err,
		     enum codec_errcode code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int scan_fail(const struct scanner *sc, const struct segment *s, struct codec_error *err,
		     enum codec_errcode code, const char *fmt, ...)
{
	char prefix[96];
	if (s->tag[0] && s->nelem)
		snprintf(prefix, sizeof(prefix), "segment %zu %s, element %zu, offset %zu: ",
			 s->number, s->tag, s->nelem, sc->pos);
	else if (s->tag[0])
		snprintf(prefix, sizeof(prefix), "segment %zu %s, offset %zu: ", s->number, s->tag,
			 sc->pos);
	else
		snprintf(prefix, sizeof(prefix), "segment %zu, offset %zu: ", s->number, sc->pos);
	va_list ap;
	va_start(ap, fmt);
	failv(err, code, prefix, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(uint8_t c)
{
	return is_upper(c) || is_digit(c) || (c >= 'a' && c <= 'z');
}

static void skip_blanks(struct scanner *sc)
{
	while (sc->pos < sc->len && is_blank(sc->buf[sc->pos]))
		sc->pos++;
}

/* Checks the data byte at sc->pos against the character set; returns the
 * bytes it spans (a UTF-8 sequence counts whole), 0 on error. */
static size_t check_char(struct scanner *sc, const struct segment *s, struct codec_error *err)
{
	uint8_t c = sc->buf[sc->pos];
	if (c >= 0x20 && c < 0x7F)
		return 1;
	if (c < 0x80)
		return scan_fail(sc, s, err, CODEC_EENCODING, "control byte 0x%02X in data", c), 0;
	if (sc->ascii_only)
		return scan_fail(sc, s, err, CODEC_EENCODING,
				 "byte 0x%02X is outside the UNOA/UNOB character set", c), 0;
	size_t n = utf8_decode(sc->buf + sc->pos, sc->len - sc->pos, NULL);
	if (n >= 2) {
		if (sc->utf8_seqs++ == 0) {
			sc->first_utf8.offset = sc->pos;
			sc->first_utf8.segment = s->number;
			sc->first_utf8.element = s->nelem;
			memcpy(sc->first_utf8.tag, s->tag, sizeof(s->tag));
		}
		return n;
	}
	if (c < 0xA0)
		return scan_fail(sc, s, err, CODEC_EENCODING,
				 "byte 0x%02X is not an ISO-8859-1 character (C1 control)", c), 0;
	sc->latin1_bytes++;
	return 1;
}

/* Starts component `comp` of the current element (recorded if it fits). */
static struct span *open_component(struct segment *s, size_t comp, size_t at)
{
	if (s->nelem > SEG_ELEMENTS || comp >= SEG_COMPONENTS)
		return NULL;
	s->ncomp[s->nelem - 1] = (uint8_t)(comp + 1);
	struct span *sp = &s->comp[s->nelem - 1][comp];
	*sp = (struct span){ .off = at, .end = at };
	return sp;
}

/* A release character and the service character it makes data. */
static int scan_release(struct scanner *sc, const struct segment *s, struct codec_error *err)
{
	const struct syntax *y = &sc->syn;
	if (sc->pos + 1 == sc->len)
		return scan_fail(sc, s, err, CODEC_ESYNTAX,
				 "input ends after a release character: no segment terminator");
	uint8_t d = sc->buf[sc->pos + 1];
	if (d != y->comp && d != y->elem && d != y->rel && d != y->term)
		return scan_fail(sc, s, err, CODEC_ESYNTAX,
				 "release character before a character that needs no release");
	sc->pos += 2;
	return 0;
}

/* The data elements of segment s up to and including its terminator. */
static int scan_elements(struct scanner *sc, struct segment *s, struct codec_error *err)
{
	const struct syntax *y = &sc->syn;
	struct span *cur = NULL;
	size_t comp = 0, clen = 0;
	while (sc->pos < sc->len) {
		uint8_t c = sc->buf[sc->pos];
		if (c == y->term || c == y->elem || (c == y->comp && s->nelem > 0)) {
			if (cur)
				*cur = (struct span){ cur->off, sc->pos, clen };
			if (c == y->term) {
				sc->pos++;
				return 1;
			}
			s->nelem += c == y->elem;
			comp = c == y->elem ? 0 : comp + 1;
			cur = open_component(s, comp, ++sc->pos);
			clen = 0;
			continue;
		}
		if (c == '\r' || c == '\n') {
			sc->pos++;
			continue;
		}
		if (s->nelem == 0)
			return scan_fail(sc, s, err, CODEC_ESYNTAX,
					 "the tag is followed by neither an element separator nor "
					 "a segment terminator");
		if (y->has_rel && c == y->rel) {
			if (scan_release(sc, s, err) < 0)
				return -1;
			clen++;
		} else {
			size_t n = check_char(sc, s, err);
			if (n == 0)
				return -1;
			sc->pos += n;
			clen += n;
		}
		if (clen > EDIFACT_MAX_COMPONENT)
			return scan_fail(sc, s, err, CODEC_EFIELD,
					 "data element longer than %u characters",
					 EDIFACT_MAX_COMPONENT);
	}
	return scan_fail(sc, s, err, CODEC_ESYNTAX, "input ends inside the segment: no segment "
						    "terminator");
}

/* Reads the next segment into s: 1, 0 when only blanks are left, -1. */
static int scan_segment(struct scanner *sc, struct segment *s, struct codec_error *err)
{
	skip_blanks(sc);
	if (sc->pos == sc->len)
		return 0;
	if (sc->nsegments == EDIFACT_MAX_SEGMENTS)
		return fail(err, CODEC_ESTRUCTURE, "more than %u segments (offset %zu)",
			    EDIFACT_MAX_SEGMENTS, sc->pos);
	s->number = ++sc->nsegments;
	s->offset = sc->pos;
	s->nelem = 0;
	s->tag[0] = '\0';
	const uint8_t *t = sc->buf + sc->pos;
	if (sc->len - sc->pos < 3)
		return scan_fail(sc, s, err, CODEC_ESYNTAX, "input ends inside a segment tag");
	if (!is_upper(t[0]) || !(is_upper(t[1]) || is_digit(t[1])) ||
	    !(is_upper(t[2]) || is_digit(t[2])))
		return scan_fail(sc, s, err, CODEC_ESYNTAX,
				 "segment tag is not a capital letter and two capitals or digits");
	memcpy(s->tag, t, 3);
	s->tag[3] = '\0';
	if (strcmp(s->tag, "UNA") == 0) /* its six characters are no elements */
		return fail(err, CODEC_ESTRUCTURE, "segment %zu UNA: UNA is allowed only at the start",
			    s->number);
	sc->pos += 3;
	return scan_elements(sc, s, err);
}

/* A service character UNA may name: printable ASCII, no letter or digit. */
static bool service_char_ok(uint8_t c)
{
	return c > 0x20 && c < 0x7F && !is_alnum(c);
}

/* UNA: component, element, decimal, release, reserved (repetition in
 * syntax 4), terminator. A blank release or reserved character means none. */
static int scan_una(struct scanner *sc, struct codec_error *err)
{
	sc->nsegments = 1;
	if (sc->len - sc->pos < 9)
		return fail(err, CODEC_ESYNTAX,
			    "segment 1 UNA: input ends inside UNA (six service characters follow "
			    "the tag)");
	const uint8_t *u = sc->buf + sc->pos + 3;
	struct syntax y = { u[0], u[1], u[3], u[5], u[3] != ' ' };
	const uint8_t used[] = { y.comp, y.elem, y.term, u[3], u[4] };
	bool ok = true;
	for (size_t i = 0; i < ARRAY_SIZE(used); i++) {
		ok = ok && (service_char_ok(used[i]) || (i >= 3 && used[i] == ' '));
		for (size_t k = 0; k < i; k++)
			ok = ok && (used[i] != used[k] || used[i] == ' ');
	}
	if (!ok)
		return fail(err, CODEC_ESYNTAX,
			    "segment 1 UNA: separators, release and reserved characters must be "
			    "distinct printable ASCII characters, not letters or digits (release "
			    "and reserved may be blank)");
	sc->syn = y;
	sc->pos += 9;
	return 0;
}

/* ---- reading fields ---------------------------------------------------- */

struct message {
	size_t unh;      /* segment number of its UNH */
	size_t nsegs;    /* UNH..current, inclusive */
	size_t uno;      /* segment number of an open UNO, 0 when none */
	size_t uno_size;
	char uno_ref[36];
	/* a CONTRL: what its UCI and UCMs acknowledge (env->refers) */
	bool receipt;
	size_t refs_before; /* env->refers.n at its UNH */
	char uci_ref[EDI_REF_MAX], uci_sender[CODEC_GLN_MAX], ftx[8];
	bool rejected;      /* action 4 in UCI or a UCM */
};

struct parse {
	struct scanner sc;
	struct codec_envelope *env;
	struct codec_error *err;
	const struct charset *charset;
	char unb_ref[EDI_REF_MAX], sender[CODEC_GLN_MAX], receiver[CODEC_GLN_MAX];
	size_t nmessages;
	struct message msg;
	struct {
		char envelope_id[CODEC_ID_MAX], sender[CODEC_GLN_MAX], receiver[CODEC_GLN_MAX];
		bool is_receipt;
	} partial; /* what a negative receipt needs, kept on failure */
};

static int seg_fail(struct parse *p, enum codec_errcode code, const struct segment *s, size_t e,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int seg_fail(struct parse *p, enum codec_errcode code, const struct segment *s, size_t e,
		    const char *fmt, ...)
{
	char prefix[64];
	if (e)
		snprintf(prefix, sizeof(prefix), "segment %zu %s, element %zu: ", s->number, s->tag,
			 e);
	else
		snprintf(prefix, sizeof(prefix), "segment %zu %s: ", s->number, s->tag);
	va_list ap;
	va_start(ap, fmt);
	failv(p->err, code, prefix, fmt, ap);
	va_end(ap);
	return -1;
}

/* Component c of element e (both 1-based), NULL when absent or empty. */
static const struct span *component(const struct segment *s, size_t e, size_t c)
{
	if (e == 0 || e > s->nelem || e > SEG_ELEMENTS || c == 0 || c > s->ncomp[e - 1])
		return NULL;
	const struct span *sp = &s->comp[e - 1][c - 1];
	return sp->len ? sp : NULL;
}

enum field_status { FIELD_OK, FIELD_MISSING, FIELD_TOO_LONG, FIELD_NOT_ASCII };

/* Copies component (e, c) into dst without release characters and line
 * breaks; dst is "" unless FIELD_OK (printable ASCII, not all blanks). */
static enum field_status get_field(const struct scanner *sc, const struct segment *s, size_t e,
				   size_t c, char *dst, size_t dstsz)
{
	const struct span *sp = component(s, e, c);
	dst[0] = '\0';
	if (!sp)
		return FIELD_MISSING;
	if (sp->len >= dstsz)
		return FIELD_TOO_LONG;
	size_t n = 0;
	bool blank = true;
	for (size_t i = sp->off; i < sp->end; i++) {
		uint8_t ch = sc->buf[i];
		if (ch == '\r' || ch == '\n')
			continue;
		if (sc->syn.has_rel && ch == sc->syn.rel)
			ch = sc->buf[++i];
		if (ch < 0x20 || ch > 0x7E) {
			dst[0] = '\0';
			return FIELD_NOT_ASCII;
		}
		blank = blank && ch == ' ';
		dst[n++] = (char)ch;
	}
	dst[blank ? 0 : n] = '\0';
	return blank ? FIELD_MISSING : FIELD_OK;
}

/* get_field, with an error naming `what` when the field is not usable. */
static int read_field(struct parse *p, const struct segment *s, size_t e, size_t c,
		      const char *what, char *dst, size_t dstsz)
{
	switch (get_field(&p->sc, s, e, c, dst, dstsz)) {
	case FIELD_OK:
		return 0;
	case FIELD_MISSING:
		return seg_fail(p, CODEC_EFIELD, s, e, "%s is missing", what);
	case FIELD_TOO_LONG:
		return seg_fail(p, CODEC_EFIELD, s, e, "%s is %zu characters, longer than %zu",
				what, component(s, e, c)->len, dstsz - 1);
	case FIELD_NOT_ASCII:
		break;
	}
	return seg_fail(p, CODEC_EFIELD, s, e, "%s is not printable ASCII", what);
}

/* A count of 1..maxdigits decimal digits. */
static int read_number(struct parse *p, const struct segment *s, size_t e, const char *what,
		       size_t maxdigits, size_t *out)
{
	char digits[16];
	if (read_field(p, s, e, 1, what, digits, maxdigits + 1) < 0)
		return -1;
	size_t v = 0;
	for (const char *d = digits; *d; d++) {
		if (!is_digit((uint8_t)*d))
			return seg_fail(p, CODEC_EFIELD, s, e, "%s is not a number", what);
		v = v * 10 + (size_t)(*d - '0');
	}
	*out = v;
	return 0;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit((uint8_t)s[i]))
			return false;
	return s[n] == '\0';
}

static int two(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* ---- UNB --------------------------------------------------------------- */

/* Reads sender, recipient and reference without judging the rest of UNB,
 * so a refusal can still be addressed when another UNB field is wrong. */
static void salvage_unb(struct parse *p, const struct segment *s)
{
	get_field(&p->sc, s, 2, 1, p->partial.sender, sizeof(p->partial.sender));
	get_field(&p->sc, s, 3, 1, p->partial.receiver, sizeof(p->partial.receiver));
	/* 0020 is an..14: a longer one is no reference a receipt could echo */
	get_field(&p->sc, s, 5, 1, p->partial.envelope_id, EDI_REF_MAX);
}

/* S001: syntax identifier and version; sets the character set. */
static int read_syntax(struct parse *p, const struct segment *s)
{
	char id[8], version[4];
	if (read_field(p, s, 1, 1, "S001/0001 syntax identifier", id, sizeof(id)) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(charsets) && !p->charset; i++)
		if (strcmp(id, charsets[i].id) == 0)
			p->charset = &charsets[i];
	if (!p->charset)
		return seg_fail(p, CODEC_EENCODING, s, 1,
				"syntax identifier %s is not supported (UNOA, UNOB, UNOC)", id);
	if (read_field(p, s, 1, 2, "S001/0002 syntax version", version, sizeof(version)) < 0)
		return -1;
	if (strlen(version) != 1 || version[0] < '1' || version[0] > '4')
		return seg_fail(p, CODEC_EFIELD, s, 1, "syntax version %s is not 1-4", version);
	p->sc.ascii_only = p->charset->ascii;
	if (p->sc.ascii_only && (p->sc.latin1_bytes || p->sc.utf8_seqs))
		return seg_fail(p, CODEC_EENCODING, s, 0,
				"bytes outside ASCII before UNB in a %s interchange", id);
	return 0;
}

/* S002/S003: an id and qualifier 14 (EAN location number). */
static int read_party(struct parse *p, const struct segment *s, size_t e, const char *what,
		      char *dst, size_t dstsz)
{
	char idwhat[64], qwhat[64], qual[8];
	snprintf(idwhat, sizeof(idwhat), "%s identification", what);
	snprintf(qwhat, sizeof(qwhat), "%s identification code qualifier", what);
	if (read_field(p, s, e, 1, idwhat, dst, dstsz) < 0 ||
	    read_field(p, s, e, 2, qwhat, qual, sizeof(qual)) < 0)
		return -1;
	if (strcmp(qual, "14") != 0)
		return seg_fail(p, CODEC_EFIELD, s, e, "%s is %s, not 14 (EAN location number)",
				qwhat, qual);
	return 0;
}

/* S004: YYMMDD (syntax 1-3) or CCYYMMDD (4), and HHMM, into env->sent. */
static int read_sent(struct parse *p, const struct segment *s)
{
	char date[10], time[6];
	if (read_field(p, s, 4, 1, "S004/0017 date", date, sizeof(date)) < 0 ||
	    read_field(p, s, 4, 2, "S004/0019 time", time, sizeof(time)) < 0)
		return -1;
	size_t dl = strlen(date);
	bool ok = (dl == 6 || dl == 8) && all_digits(date, dl) && all_digits(time, 4);
	const char *md = ok ? date + dl - 4 : date;
	if (!ok || two(md) < 1 || two(md) > 12 || two(md + 2) < 1 || two(md + 2) > 31 ||
	    two(time) > 23 || two(time + 2) > 59)
		return seg_fail(p, CODEC_EFIELD, s, 4,
				"S004 is not a valid YYMMDD or CCYYMMDD date and HHMM time");
	/* Two-digit years as POSIX strptime %y reads them: 69-99 are 19xx. */
	int year = dl == 8 ? two(date) * 100 + two(date + 2) : two(date) + (two(date) < 69 ? 2000 : 1900);
	snprintf(p->env->sent, sizeof(p->env->sent), "%04d-%.2s-%.2sT%.2s:%.2s", year, md, md + 2,
		 time, time + 2);
	return 0;
}

/* 0031: 1 asks for a positive receipt; 0, empty or absent does not. */
static int read_ack(struct parse *p, const struct segment *s)
{
	char ack[4];
	switch (get_field(&p->sc, s, 9, 1, ack, sizeof(ack))) {
	case FIELD_MISSING:
		return 0;
	case FIELD_OK:
		if (strcmp(ack, "0") == 0 || strcmp(ack, "1") == 0) {
			p->env->ack_requested = ack[0] == '1';
			return 0;
		}
		break;
	default:
		break;
	}
	return seg_fail(p, CODEC_EFIELD, s, 9, "0031 acknowledgement request is not 1, 0 or empty");
}

static int on_unb(struct parse *p, const struct segment *s)
{
	salvage_unb(p, s);
	if (s->nelem > UNB_ELEMENTS)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "%zu data elements, UNB has at most %d",
				s->nelem, UNB_ELEMENTS);
	if (read_syntax(p, s) < 0 ||
	    read_party(p, s, 2, "S002/0004 sender", p->sender, sizeof(p->sender)) < 0 ||
	    read_party(p, s, 3, "S003/0010 recipient", p->receiver, sizeof(p->receiver)) < 0 ||
	    read_sent(p, s) < 0 ||
	    read_field(p, s, 5, 1, "0020 interchange control reference", p->unb_ref,
		       sizeof(p->unb_ref)) < 0 ||
	    read_ack(p, s) < 0)
		return -1;
	return 0;
}

/* ---- UNH: message type, version and letter type ------------------------ */

static const struct family *family_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(families); i++)
		if (strcmp(name, families[i].name) == 0)
			return &families[i];
	return NULL;
}

const char *edifact_message_head(const char *type)
{
	for (size_t i = 0; type && i < ARRAY_SIZE(families); i++)
		if (strlen(type) == 5 && strncmp(type, families[i].prefix, 3) == 0 &&
		    is_digit((uint8_t)type[3]) && is_digit((uint8_t)type[4]))
			return families[i].head;
	return NULL;
}

/* S009/0065, and whether an unreadable interchange is a receipt. */
static int read_family(struct parse *p, const struct segment *s, const struct family **f)
{
	char name[8];
	enum field_status st = get_field(&p->sc, s, 2, 1, name, sizeof(name));
	*f = st == FIELD_OK ? family_find(name) : NULL;
	if (*f && p->nmessages == 0)
		p->partial.is_receipt = (*f)->receipt;
	if (st == FIELD_MISSING)
		return seg_fail(p, CODEC_EFIELD, s, 2, "S009/0065 message type is missing");
	if (!*f)
		return seg_fail(p, CODEC_ETYPE, s, 2,
				"S009/0065 message type is not one of MEDDIS, MEDBIN, CONTRL");
	return 0;
}

/* S009/0052:0054:0051: MedCom writes D:93A:UN, and D:93A:ZZ for CONTRL. */
static int read_directory(struct parse *p, const struct segment *s)
{
	char v[8], r[8], a[8];
	get_field(&p->sc, s, 2, 2, v, sizeof(v));
	get_field(&p->sc, s, 2, 3, r, sizeof(r));
	get_field(&p->sc, s, 2, 4, a, sizeof(a));
	if (strcmp(v, "D") != 0 || strcmp(r, "93A") != 0 ||
	    (strcmp(a, "UN") != 0 && strcmp(a, "ZZ") != 0))
		return seg_fail(p, CODEC_EVERSION, s, 2,
				"S009 directory (0052:0054:0051) is not D:93A:UN or D:93A:ZZ");
	return 0;
}

/* 0068 (MedCom's letter type, DIS20), or the type the version implies. */
static int read_letter_type(struct parse *p, const struct segment *s, const struct family *f,
			    struct codec_letter *l)
{
	const char *v = l->version;
	if (component(s, 3, 1)) {
		get_field(&p->sc, s, 3, 1, l->type, sizeof(l->type));
	} else {
		if (strlen(v) < 3 || !is_digit((uint8_t)v[1]) || !is_digit((uint8_t)v[2]))
			return seg_fail(p, CODEC_EVERSION, s, 2,
					"S009/0057 version %s names no letter type", v);
		snprintf(l->type, sizeof(l->type), "%s%.2s", f->prefix, v + 1);
	}
	const char *t = l->type;
	if (strlen(t) != 5 || !is_upper((uint8_t)t[0]) || !is_upper((uint8_t)t[1]) ||
	    !is_upper((uint8_t)t[2]) || !is_digit((uint8_t)t[3]) || !is_digit((uint8_t)t[4]))
		return seg_fail(p, CODEC_ETYPE, s, 3,
				"0068 letter type is not three capitals and two digits");
	if (strncmp(t, f->prefix, 3) != 0)
		return seg_fail(p, CODEC_ETYPE, s, 3, "letter type %s does not belong to message "
						      "type %s", t, f->name);
	if (f->receipt && (t[3] != '0' || t[4] < '1' || t[4] > '3'))
		return seg_fail(p, CODEC_ETYPE, s, 3, "%s is not a MedCom receipt (CTL01-CTL03)", t);
	if (strlen(v) != 6 || v[0] != f->version_letter || v[1] != t[3] || v[2] != t[4] ||
	    !is_alnum((uint8_t)v[3]) || !is_alnum((uint8_t)v[4]) || !is_alnum((uint8_t)v[5]))
		return seg_fail(p, CODEC_EVERSION, s, 2,
				"S009/0057 version %s does not belong to %s", v, t);
	return 0;
}

/* Message references are unique within an interchange (they are letter
 * ids: the duplicate register keys on them). */
static int check_unique(struct parse *p, const struct segment *s, const char *ref)
{
	for (size_t i = 0; i < p->nmessages; i++)
		if (strcmp(p->env->letters[i].id, ref) == 0)
			return seg_fail(p, CODEC_ESTRUCTURE, s, 1,
					"message reference %s repeats message %zu's", ref, i + 1);
	return 0;
}

static int on_unh(struct parse *p, const struct segment *s)
{
	const struct family *f;
	if (p->nmessages == CODEC_MAX_LETTERS)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "more than %d messages in the interchange",
				CODEC_MAX_LETTERS);
	struct codec_letter *l = &p->env->letters[p->nmessages];
	memset(l, 0, sizeof(*l));
	if (read_family(p, s, &f) < 0 ||
	    read_field(p, s, 1, 1, "0062 message reference number", l->id, EDI_REF_MAX) < 0 ||
	    read_directory(p, s) < 0 ||
	    read_field(p, s, 2, 5, "S009/0057 association assigned code (version)", l->version,
		       EDI_VERSION_MAX) < 0 ||
	    read_letter_type(p, s, f, l) < 0 || check_unique(p, s, l->id) < 0)
		return -1;
	memcpy(l->sender, p->sender, sizeof(l->sender));
	memcpy(l->receiver, p->receiver, sizeof(l->receiver));
	p->msg = (struct message){ .unh = s->number, .nsegs = 1, .receipt = f->receipt,
				   .refs_before = p->env->refers.n };
	return 0;
}

/* ---- body, UNO/UNP, UNT, UNZ ------------------------------------------- */

/* ---- what a CONTRL acknowledges ----------------------------------------- */

static void add_ref(struct codec_refers *rf, const char *sender, const char *envelope_id,
		    const char *letter_id)
{
	if (rf->n == CODEC_REFERS_MAX)
		return;
	struct codec_ref *r = &rf->refs[rf->n++];
	str_copy(r->sender, sender, sizeof(r->sender));
	str_copy(r->envelope_id, envelope_id, sizeof(r->envelope_id));
	str_copy(r->letter_id, letter_id, sizeof(r->letter_id));
}

/* The UCI (original interchange: reference, sender, action), each UCM
 * (original message reference, action) and the first FTX qualifier of a
 * CONTRL message (medcom.md 3.3). Read leniently, like any body segment: a
 * field that is missing or too long is left out, and a receipt without a
 * readable UCI acknowledges nothing the broker can match. */
static void read_contrl(struct parse *p, const struct segment *s)
{
	struct message *m = &p->msg;
	char ref[EDI_REF_MAX], action[4];
	if (strcmp(s->tag, "UCI") == 0) {
		get_field(&p->sc, s, 1, 1, m->uci_ref, sizeof(m->uci_ref));
		get_field(&p->sc, s, 2, 1, m->uci_sender, sizeof(m->uci_sender));
		get_field(&p->sc, s, 4, 1, action, sizeof(action));
		m->rejected |= strcmp(action, "4") == 0;
	} else if (strcmp(s->tag, "UCM") == 0) {
		get_field(&p->sc, s, 3, 1, action, sizeof(action));
		m->rejected |= strcmp(action, "4") == 0;
		if (get_field(&p->sc, s, 1, 1, ref, sizeof(ref)) == FIELD_OK && m->uci_ref[0] &&
		    m->uci_sender[0])
			add_ref(&p->env->refers, m->uci_sender, m->uci_ref, ref);
	} else if (strcmp(s->tag, "FTX") == 0 && !m->ftx[0]) {
		get_field(&p->sc, s, 1, 1, m->ftx, sizeof(m->ftx));
	}
}

/* At a CONTRL's UNT: an envelope-level ref when it named no message, and
 * the verdict (CTL03 without a rejection is positive). A UCI that cannot be
 * read by then (a second one, too long, cleared it) takes the message's
 * UCM refs with it: no ref stands without a verdict. */
static void close_contrl(struct parse *p, const struct codec_letter *l)
{
	struct message *m = &p->msg;
	struct codec_refers *rf = &p->env->refers;
	if (!m->uci_ref[0] || !m->uci_sender[0]) {
		rf->n = m->refs_before;
		return;
	}
	if (rf->n == m->refs_before)
		add_ref(rf, m->uci_sender, m->uci_ref, "");
	bool positive = strcmp(l->type, "CTL03") == 0 && !m->rejected;
	if (rf->code == CODEC_ACK_NONE || !positive) {
		rf->code = positive ? CODEC_ACK_POSITIVE : CODEC_ACK_NEGATIVE;
		snprintf(rf->detail, sizeof(rf->detail), "%s%s%s", l->type, m->ftx[0] ? " " : "",
			 m->ftx);
	}
}

static int on_body(struct parse *p, const struct segment *s)
{
	p->msg.nsegs++;
	if (p->msg.receipt)
		read_contrl(p, s);
	return 0;
}

/* UNO (MedCom binary object): element 4 gives the size of the raw bytes
 * that follow its terminator; they are skipped unread. */
static int on_uno(struct parse *p, const struct segment *s)
{
	size_t size;
	p->msg.nsegs++;
	if (read_field(p, s, 1, 1, "0800 object reference", p->msg.uno_ref,
		       sizeof(p->msg.uno_ref)) < 0 ||
	    read_number(p, s, 4, "object size", 9, &size) < 0)
		return -1;
	size_t left = p->sc.len - p->sc.pos;
	if (size > left)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 4,
				"binary object of %zu bytes runs past the end of the input (%zu "
				"bytes left)",
				size, left);
	p->sc.pos += size;
	p->msg.uno = s->number;
	p->msg.uno_size = size;
	return 0;
}

static int on_unp(struct parse *p, const struct segment *s)
{
	size_t size;
	char ref[sizeof(p->msg.uno_ref)];
	p->msg.nsegs++;
	if (read_number(p, s, 1, "object size", 9, &size) < 0 ||
	    read_field(p, s, 2, 1, "0800 object reference", ref, sizeof(ref)) < 0)
		return -1;
	if (size != p->msg.uno_size)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 1, "object size %zu differs from UNO's %zu "
							   "(segment %zu)",
				size, p->msg.uno_size, p->msg.uno);
	if (strcmp(ref, p->msg.uno_ref) != 0)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 2,
				"object reference differs from UNO's (segment %zu)", p->msg.uno);
	p->msg.uno = 0;
	return 0;
}

static int on_unt(struct parse *p, const struct segment *s)
{
	size_t count;
	char ref[EDI_REF_MAX];
	const char *id = p->env->letters[p->nmessages].id;
	p->msg.nsegs++;
	if (read_number(p, s, 1, "0074 number of segments in the message", 6, &count) < 0 ||
	    read_field(p, s, 2, 1, "0062 message reference number", ref, sizeof(ref)) < 0)
		return -1;
	if (count != p->msg.nsegs)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 1,
				"segment count %zu, but message %s has %zu segments (UNH..UNT, "
				"segments %zu-%zu)",
				count, id, p->msg.nsegs, p->msg.unh, s->number);
	if (strcmp(ref, id) != 0)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 2,
				"message reference %s differs from UNH's %s (segment %zu)", ref, id,
				p->msg.unh);
	if (p->msg.receipt)
		close_contrl(p, &p->env->letters[p->nmessages]);
	p->nmessages++;
	return 0;
}

static int on_unz(struct parse *p, const struct segment *s)
{
	size_t count;
	char ref[EDI_REF_MAX];
	if (read_number(p, s, 1, "0036 interchange control count", 6, &count) < 0 ||
	    read_field(p, s, 2, 1, "0020 interchange control reference", ref, sizeof(ref)) < 0)
		return -1;
	if (count != p->nmessages)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 1,
				"message count %zu, but the interchange holds %zu message%s", count,
				p->nmessages, p->nmessages == 1 ? "" : "s");
	if (strcmp(ref, p->unb_ref) != 0)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 2,
				"interchange control reference %s differs from UNB's %s", ref,
				p->unb_ref);
	return 0;
}

/* ---- the interchange grammar ------------------------------------------- */

enum state { ST_START, ST_INTERCHANGE, ST_MESSAGE, ST_BINARY, ST_DONE, ST_COUNT };
enum kind { K_UNB, K_UNH, K_UNT, K_UNZ, K_UNO, K_UNP, K_GROUP, K_BODY, K_COUNT };

/* state x segment -> action, next state; a missing entry is misplaced(). */
static const struct step {
	int (*act)(struct parse *, const struct segment *);
	enum state next;
} steps[ST_COUNT][K_COUNT] = {
	[ST_START] = { [K_UNB] = { on_unb, ST_INTERCHANGE } },
	[ST_INTERCHANGE] = { [K_UNH] = { on_unh, ST_MESSAGE }, [K_UNZ] = { on_unz, ST_DONE } },
	[ST_MESSAGE] = { [K_BODY] = { on_body, ST_MESSAGE },
			 [K_UNO] = { on_uno, ST_BINARY },
			 [K_UNT] = { on_unt, ST_INTERCHANGE } },
	[ST_BINARY] = { [K_UNP] = { on_unp, ST_MESSAGE } },
	[ST_DONE] = { { 0 } }, /* nothing follows UNZ: see after_unz() */
};

static enum kind classify(const char *tag)
{
	static const struct {
		char tag[4];
		enum kind kind;
	} service[] = {
		{ "UNB", K_UNB }, { "UNH", K_UNH }, { "UNT", K_UNT },
		{ "UNZ", K_UNZ }, { "UNO", K_UNO }, { "UNP", K_UNP }, { "UNG", K_GROUP },
		{ "UNE", K_GROUP },
	};
	for (size_t i = 0; i < ARRAY_SIZE(service); i++)
		if (memcmp(tag, service[i].tag, 4) == 0)
			return service[i].kind;
	return K_BODY;
}

/* Why segment s cannot come in state st. */
static int misplaced(struct parse *p, enum state st, enum kind k, const struct segment *s)
{
	const char *id = p->env->letters[p->nmessages].id;
	if (k == K_GROUP)
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0,
				"functional groups (UNG/UNE) are not used in MedCom interchanges");
	switch (st) {
	case ST_START:
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "the interchange starts with %s, not UNB",
				s->tag);
	case ST_INTERCHANGE:
		if (k == K_UNB)
			return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "a second UNB before UNZ");
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "outside a message (no UNH before it)");
	case ST_MESSAGE:
		if (k == K_UNP)
			return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "UNP without a UNO before it");
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0,
				"message %s (UNH in segment %zu) has no UNT before this %s", id,
				p->msg.unh, s->tag);
	case ST_BINARY:
		return seg_fail(p, CODEC_ESTRUCTURE, s, 0,
				"the binary object of UNO (segment %zu) is not followed by UNP",
				p->msg.uno);
	default:
		break;
	}
	return seg_fail(p, CODEC_ESTRUCTURE, s, 0, "follows UNZ");
}

/* Why the input cannot end in state st. */
static int ended_early(struct parse *p, enum state st)
{
	size_t n = p->sc.nsegments;
	switch (st) {
	case ST_START:
		return fail(p->err, CODEC_ESTRUCTURE, n ? "input ends after UNA: no UNB segment"
						       : "no UNB segment: the input is empty");
	case ST_INTERCHANGE:
		return fail(p->err, CODEC_ESTRUCTURE, "input ends after segment %zu: UNZ missing", n);
	case ST_MESSAGE:
		return fail(p->err, CODEC_ESTRUCTURE,
			    "input ends after segment %zu: message %s (UNH in segment %zu) has no "
			    "UNT, and UNZ is missing",
			    n, p->env->letters[p->nmessages].id, p->msg.unh);
	case ST_BINARY:
		return fail(p->err, CODEC_ESTRUCTURE,
			    "input ends after the binary object of UNO (segment %zu): UNP missing",
			    p->msg.uno);
	default:
		break;
	}
	return 0;
}

/* Only blanks may follow UNZ: one interchange per file. */
static int after_unz(struct parse *p)
{
	struct scanner *sc = &p->sc;
	skip_blanks(sc);
	if (sc->pos == sc->len)
		return 0;
	if (sc->len - sc->pos >= 3 && memcmp(sc->buf + sc->pos, "UNB", 3) == 0)
		return fail(p->err, CODEC_ESTRUCTURE,
			    "a second interchange (UNB at offset %zu) follows UNZ: one interchange "
			    "per file",
			    sc->pos);
	return fail(p->err, CODEC_ESTRUCTURE, "%zu bytes follow UNZ (offset %zu)",
		    sc->len - sc->pos, sc->pos);
}

/* What can only be judged once the interchange is whole. */
static int finish(struct parse *p)
{
	const struct scanner *sc = &p->sc;
	struct codec_envelope *env = p->env;
	if (p->nmessages == 0)
		return fail(p->err, CODEC_ESTRUCTURE, "the interchange holds no message (UNH)");
	if (sc->utf8_seqs && !sc->latin1_bytes)
		return fail(p->err, CODEC_EENCODING,
			    "the data is UTF-8 encoded (first multi-byte character at offset %zu, "
			    "segment %zu %s, element %zu), but %s is ISO-8859-1",
			    sc->first_utf8.offset, sc->first_utf8.segment, sc->first_utf8.tag,
			    sc->first_utf8.element, p->charset->id);
	str_copy(env->envelope_id, p->unb_ref, sizeof(env->envelope_id));
	env->nletters = p->nmessages;
	env->is_receipt = true;
	for (size_t i = 0; i < env->nletters; i++)
		env->is_receipt = env->is_receipt && strncmp(env->letters[i].type, "CTL", 3) == 0;
	if (!env->is_receipt) /* only an interchange of receipts acknowledges anything */
		memset(&env->refers, 0, sizeof(env->refers));
	return 0;
}

static int parse_interchange(struct parse *p)
{
	struct scanner *sc = &p->sc;
	struct segment seg;
	enum state st = ST_START;
	int r = 0;
	if (sc->len >= 3 && memcmp(sc->buf, "\xEF\xBB\xBF", 3) == 0)
		return fail(p->err, CODEC_EENCODING,
			    "UTF-8 byte order mark at offset 0: an EDIFACT interchange (UNOA, UNOB, "
			    "UNOC) has none");
	skip_blanks(sc);
	if (sc->len - sc->pos >= 3 && memcmp(sc->buf + sc->pos, "UNA", 3) == 0 &&
	    scan_una(sc, p->err) < 0)
		return -1;
	while (st != ST_DONE && (r = scan_segment(sc, &seg, p->err)) > 0) {
		enum kind k = classify(seg.tag);
		const struct step *step = &steps[st][k];
		if (!step->act)
			return misplaced(p, st, k, &seg);
		if (step->act(p, &seg) < 0)
			return -1;
		st = step->next;
	}
	if (st != ST_DONE)
		return r < 0 ? -1 : ended_early(p, st);
	if (after_unz(p) < 0)
		return -1;
	return finish(p);
}

/* ---- the codec --------------------------------------------------------- */

/* Clears env but for what a negative receipt needs (see the invariants). */
static void keep_partial(struct codec_envelope *env, const struct parse *p)
{
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_edifact;
	if (p->charset)
		str_copy(env->encoding, p->charset->encoding, sizeof(env->encoding));
	memcpy(env->envelope_id, p->partial.envelope_id, sizeof(env->envelope_id));
	memcpy(env->letters[0].sender, p->partial.sender, sizeof(env->letters[0].sender));
	memcpy(env->letters[0].receiver, p->partial.receiver, sizeof(env->letters[0].receiver));
	env->is_receipt = p->partial.is_receipt;
}

static int edifact_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			  struct codec_envelope *env, struct codec_error *err)
{
	size_t max = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_edifact;
	*err = (struct codec_error){ .code = CODEC_OK };
	if (len > max)
		return fail(err, CODEC_ETOOBIG, "interchange is %zu bytes, limit %zu", len, max);
	struct parse p = {
		.sc = { .buf = buf, .len = buf ? len : 0, .syn = { ':', '+', '?', '\'', true } },
		.env = env,
		.err = err,
	};
	if (parse_interchange(&p) < 0) {
		keep_partial(env, &p);
		return -1;
	}
	str_copy(env->encoding, p.charset->encoding, sizeof(env->encoding));
	return 0;
}

/* UNA or UNB after an optional UTF-8 BOM and blanks: decode refuses the BOM
 * with a precise reason rather than leaving the file unrecognised. */
static bool edifact_sniff(const uint8_t *buf, size_t len)
{
	if (!buf)
		return false;
	size_t i = 0, end = len < SNIFF_WINDOW ? len : SNIFF_WINDOW;
	if (end >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < end && is_blank(buf[i]))
		i++;
	return end - i >= 3 && (memcmp(buf + i, "UNA", 3) == 0 || memcmp(buf + i, "UNB", 3) == 0);
}

/* ---- renewal ------------------------------------------------------------ */

/* The interchange reference where UNB (S005/0020) and UNZ (0020) write
 * it. A second scan of what decoded; an interchange with a binary object
 * is not followed past its UNO (acknowledgements have none), and
 * renew_run checks what is found against the decoded reference. */
static size_t find_refs(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			struct renew_span spans[RENEW_SPANS_MAX])
{
	struct codec_error ignored;
	struct scanner sc = { .buf = buf, .len = len, .syn = { ':', '+', '?', '\'', true } };
	struct segment seg;
	size_t n = 0;
	skip_blanks(&sc);
	if (sc.len - sc.pos >= 3 && memcmp(buf + sc.pos, "UNA", 3) == 0 && scan_una(&sc, &ignored) < 0)
		return 0;
	while (n < 2 && scan_segment(&sc, &seg, &ignored) > 0) {
		if (strcmp(seg.tag, "UNO") == 0)
			return 0;
		const struct span *sp = n == 0 && strcmp(seg.tag, "UNB") == 0   ? component(&seg, 5, 1)
					: n == 1 && strcmp(seg.tag, "UNZ") == 0 ? component(&seg, 2, 1)
										  : NULL;
		if (sp)
			spans[n++] = (struct renew_span){ sp->off, sp->end - sp->off };
	}
	return n == 2 ? n : 0;
}

/* A CONTRL as a new interchange: a fresh reference in UNB and UNZ. */
static int edifact_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			 const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_edifact, buf, len, lim, p, false, find_refs, out);
}

const struct codec codec_edifact = {
	.name = "edifact",
	.ext = "edi",
	.sniff = edifact_sniff,
	.decode = edifact_decode,
	.refuse = ctl_refuse,
	.renew = edifact_renew,
};

/*
 * oioxml.c - decodes the routing envelope of a MedCom OIOXML Emessage
 * (medcom.md 2.1-2.3). The receive side feeds it raw message bytes through
 * the codec registry; the router, duplicate cache and receipt builder read
 * the struct codec_envelope it fills. Its refusals are XCTL01 receipts
 * (xctl01.c).
 *
 * Parsing goes through xmlsafe (size, depth, charset and DOCTYPE policy);
 * this file only walks the tree. Elements are matched by local name in any
 * namespace, because real traffic mixes schema releases in one document
 * (Region H XDIS18: Envelope in municipality 1.0.0, letters in 1.0.3).
 *
 * Schemas: with lim->schemas the decoded document is validated against
 * the schema of its root's namespace (xsd.h); the verdict goes into
 * env->schema and never fails the decode, since the accept path decides
 * per endpoint whether it warns or refuses.
 *
 * Type-agnostic: any letter element in a MedCom namespace is routed by its
 * receiver; its type comes from TypeCode/StatisticalCode. Known letter
 * elements and types (letter_kinds[]) add checks, unknown ones are no error.
 *
 * Invariants: on success every id, version and GLN is non-empty, trimmed,
 * free of control characters and fits OIOXML's field (ids String_1_14);
 * the type is too, except for an unknown letter without TypeCode and
 * StatisticalCode (""); a known element or type agrees with letter_kinds[]
 * (element, type and VersionCode). On failure
 * env holds only envelope_id and letters[0].sender, each only if its element
 * was read whole, so a negative receipt can still be addressed (and
 * letters[0].id likewise); nletters is 0.
 * Error texts name elements and letter numbers, never message content.
 */
#include "codecs/oioxml.h"

#include <stdio.h>
#include <string.h>

#include <libxml/tree.h>

#include "codecs/base/mem.h"
#include "codecs/renew.h"
#include "codecs/xctl01.h"
#include "codecs/xmlsafe.h"
#include "codecs/xmltree.h"
#include "codecs/xmlsniff.h"
#include "codecs/xsd.h"

/* The letter elements the broker knows, and the type their TypeCode
 * (StatisticalCode for receipts, which have no TypeCode) must carry. Any
 * other letter element in a MedCom namespace is routed too (its type read
 * from TypeCode/StatisticalCode); this list only adds checks: the element,
 * type and VersionCode must agree. */
static const struct letter_kind {
	const char *element;
	const char *type;
	bool receipt;
} letter_kinds[] = {
	{ "NotificationOfAdmission", "XDIS20", false },
	{ "NotificationOfDischarge", "XDIS17", false },
	{ "AnswerOfAdmission", "XDIS14", false },
	{ "WarningOfDischarge", "XDIS19", false },
	{ "ReportOfAdmission", "XDIS16", false },
	{ "ReportOfDischarge", "XDIS18", false },
	{ "ProgressOfCarePlan", "XDIS21", false },
	{ "ClinicalEmail", "XDIS91", false },
	{ "NegativeVansReceipt", "XCTL01", true },
	{ "NegativeReceipt", "XCTL02", true },
	{ "PositiveReceipt", "XCTL03", true },
};

/* The namespace prefixes of MedCom's OIOXML schema releases (medcom.md
 * 2.1): 2004/06/01 and the sundcom.dk dates 2005/08/07 .. 2015/02/16, and
 * the municipality URNs (1.0.0, 1.0.3, 1.0.4 seen). */
static const char *const medcom_namespaces[] = {
	"http://rep.oio.dk/medcom.dk/xml/schemas/",
	"http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/",
	"urn:oio:medcom:",
};

/* OIOXML's own field sizes, plus NUL (medcom.md 2.1): tighter than the
 * codec.h fields, which also hold other formats' ids. */
#define OIO_ID_MAX 15      /* Envelope/Identifier, Letter/Identifier: String_1_14 */
#define OIO_TYPE_MAX 9     /* StatisticalCode, TypeCode: String_1_8 */
#define OIO_VERSION_MAX 8  /* VersionCode: seven characters (XD2030C) */
_Static_assert(OIO_ID_MAX <= CODEC_ID_MAX && OIO_TYPE_MAX <= CODEC_TYPE_MAX &&
		       OIO_VERSION_MAX <= CODEC_VERSION_MAX,
	       "OIOXML fields fit the envelope");

/* Reads the text at path below parent into dst, at most dstsz - 1 bytes. */
static int read_field(const xmlNode *parent, const char *path, char *dst, size_t dstsz,
		      const char *where, struct codec_error *err)
{
	return xmltree_read(parent, path, dst, dstsz, where, err);
}

/* ---- field checks ------------------------------------------------------ */

/* True when s has the shape of pat: 'd' is a digit, anything else itself. */
static bool shaped(const char *s, const char *pat)
{
	for (; *pat; s++, pat++) {
		if (*pat == 'd' ? !(*s >= '0' && *s <= '9') : *s != *pat)
			return false;
	}
	return *s == '\0';
}

static int two_digits(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Envelope/Sent: xs:date without time zone, and Time_hh_mm. */
static bool valid_sent(const char *date, const char *time)
{
	return shaped(date, "dddd-dd-dd") && two_digits(date + 5) >= 1 &&
	       two_digits(date + 5) <= 12 && two_digits(date + 8) >= 1 &&
	       two_digits(date + 8) <= 31 && shaped(time, "dd:dd") && two_digits(time) <= 23 &&
	       two_digits(time + 3) <= 59;
}

static bool is_alnum_ascii(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* "X" + type[1] + the type's two digits + three more: XDIS20 -> XD20xxx. */
static bool version_fits(const char *v, const char *type)
{
	return strlen(v) == 7 && v[0] == 'X' && v[1] == type[1] && v[2] == type[4] &&
	       v[3] == type[5] && is_alnum_ascii(v[4]) && is_alnum_ascii(v[5]) &&
	       is_alnum_ascii(v[6]);
}

static const struct letter_kind *letter_kind_find(const xmlChar *element)
{
	for (size_t i = 0; i < ARRAY_SIZE(letter_kinds); i++)
		if (strcmp((const char *)element, letter_kinds[i].element) == 0)
			return &letter_kinds[i];
	return NULL;
}

/* xmltree_read, whose errors do not matter here: dst is "" then. */
static void salvage_field(const xmlNode *parent, const char *path, char *dst, size_t dstsz)
{
	struct codec_error ignored;
	(void)xmltree_read(parent, path, dst, dstsz, "", &ignored);
}

/* ---- what a receipt acknowledges ---------------------------------------- */

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

/* The OriginalEmessage of receipt letter el (of type XCTL01..03) into
 * env->refers: one ref per OriginalLetter, or one for the envelope when it
 * lists none (an envelope-level refusal). Read leniently: a receipt whose
 * OriginalEmessage is missing or malformed still routes, it only
 * acknowledges nothing the broker can match. Any negative letter makes
 * the whole answer negative; the first RefuseCode is its detail. */
static void read_refers(const xmlNode *el, const char *type, struct codec_refers *rf)
{
	const xmlNode *orig = xmltree_child(el, "OriginalEmessage");
	char envelope_id[OIO_ID_MAX], sender[CODEC_GLN_MAX], code[32], id[OIO_ID_MAX];
	if (!orig)
		return;
	salvage_field(orig, "OriginalEnvelopeIdentifier", envelope_id, sizeof(envelope_id));
	salvage_field(orig, "OriginalSender/EANIdentifier", sender, sizeof(sender));
	if (!envelope_id[0] || !sender[0])
		return;
	bool positive = strcmp(type, "XCTL03") == 0;
	if (rf->code == CODEC_ACK_NONE || !positive)
		rf->code = positive ? CODEC_ACK_POSITIVE : CODEC_ACK_NEGATIVE;
	salvage_field(orig, "RefuseCode", code, sizeof(code));
	size_t before = rf->n;
	for (const xmlNode *l = xmltree_first(orig->children); l; l = xmltree_next(l)) {
		if (!xmltree_is(l, "OriginalLetter"))
			continue;
		salvage_field(l, "OriginalLetterIdentifier", id, sizeof(id));
		if (id[0])
			add_ref(rf, sender, envelope_id, id);
		if (!code[0])
			salvage_field(l, "RefuseCode", code, sizeof(code));
	}
	if (rf->n == before)
		add_ref(rf, sender, envelope_id, "");
	if (!rf->detail[0] || !positive)
		snprintf(rf->detail, sizeof(rf->detail), "%s%s%.31s", type, code[0] ? " " : "", code);
}

/* ---- decoding ---------------------------------------------------------- */

static int decode_envelope(const xmlNode *el, struct codec_envelope *env, struct codec_error *err)
{
	char date[11], time[6], ack[sizeof("minuspositivkvitt")];
	if (read_field(el, "Identifier", env->envelope_id, OIO_ID_MAX, "Envelope", err) < 0 ||
	    read_field(el, "Sent/Date", date, sizeof(date), "Envelope", err) < 0 ||
	    read_field(el, "Sent/Time", time, sizeof(time), "Envelope", err) < 0 ||
	    read_field(el, "AcknowledgementCode", ack, sizeof(ack), "Envelope", err) < 0)
		return -1;
	if (!valid_sent(date, time))
		return xmlsafe_fail(err, CODEC_EFIELD,
				    "Envelope: Sent is not a valid YYYY-MM-DD date and HH:MM time");
	snprintf(env->sent, sizeof(env->sent), "%sT%s", date, time);
	if (strcmp(ack, "pluspositivkvitt") == 0)
		env->ack_requested = true;
	else if (strcmp(ack, "minuspositivkvitt") != 0)
		return xmlsafe_fail(err, CODEC_EFIELD,
				    "Envelope: AcknowledgementCode is neither minuspositivkvitt nor "
				    "pluspositivkvitt");
	return 0;
}

/* The type a letter's TypeCode (or, for receipts and letters without one,
 * its StatisticalCode) names, when the broker knows it. */
static const struct letter_kind *letter_kind_by_type(const char *type)
{
	for (size_t i = 0; i < ARRAY_SIZE(letter_kinds); i++)
		if (strcmp(type, letter_kinds[i].type) == 0)
			return &letter_kinds[i];
	return NULL;
}

/* True when el is in one of MedCom's OIOXML namespaces (any release). */
static bool in_medcom_ns(const xmlNode *el)
{
	const char *href = el->ns && el->ns->href ? (const char *)el->ns->href : "";
	for (size_t i = 0; i < ARRAY_SIZE(medcom_namespaces); i++)
		if (strncmp(href, medcom_namespaces[i], strlen(medcom_namespaces[i])) == 0)
			return true;
	return false;
}

/* Reads path below el into dst when the element is there; "" when not. */
static int read_optional(const xmlNode *el, const char *path, char *dst, size_t dstsz,
			 const char *where, struct codec_error *err)
{
	dst[0] = '\0';
	return xmltree_path(el, path) ? read_field(el, path, dst, dstsz, where, err) : 0;
}

/* The type of a letter element the broker does not know: TypeCode, else
 * StatisticalCode, else none; both present must agree. */
static int unknown_letter_type(const xmlNode *el, struct codec_letter *l, const char *where,
			       struct codec_error *err)
{
	char stat[OIO_TYPE_MAX];
	if (read_optional(el, "Letter/TypeCode", l->type, OIO_TYPE_MAX, where, err) < 0 ||
	    read_optional(el, "Letter/StatisticalCode", stat, sizeof(stat), where, err) < 0)
		return -1;
	if (l->type[0] && stat[0] && strcmp(l->type, stat) != 0)
		return xmlsafe_fail(err, CODEC_ETYPE, "%s: TypeCode %s and StatisticalCode %s differ",
				    where, l->type, stat);
	if (!l->type[0])
		memcpy(l->type, stat, sizeof(stat));
	return 0;
}

/* The type of a known letter element: its TypeCode (StatisticalCode for
 * receipts, which have no TypeCode) must be the element's type. */
static int known_letter_type(const xmlNode *el, const struct letter_kind *k,
			     struct codec_letter *l, const char *where, struct codec_error *err)
{
	char stat[OIO_TYPE_MAX];
	if (read_field(el, "Letter/StatisticalCode", stat, sizeof(stat), where, err) < 0 ||
	    (!k->receipt && read_field(el, "Letter/TypeCode", l->type, OIO_TYPE_MAX, where, err) < 0))
		return -1;
	if (k->receipt)
		memcpy(l->type, stat, sizeof(stat));
	if (strcmp(l->type, k->type) != 0)
		return xmlsafe_fail(err, CODEC_ETYPE, "%s: %s %s does not match %s (%s)", where,
				    k->receipt ? "StatisticalCode" : "TypeCode", l->type, k->element,
				    k->type);
	return 0;
}

/* Letter/Identifier, VersionCode and the type. Any MedCom letter is
 * routed; only a type the broker knows has its VersionCode checked. */
static int decode_letter_head(const xmlNode *el, const struct letter_kind *k,
			      struct codec_letter *l, const char *where, struct codec_error *err)
{
	if (read_field(el, "Letter/Identifier", l->id, OIO_ID_MAX, where, err) < 0 ||
	    read_field(el, "Letter/VersionCode", l->version, OIO_VERSION_MAX, where, err) < 0)
		return -1;
	if ((k ? known_letter_type(el, k, l, where, err) : unknown_letter_type(el, l, where, err)) < 0)
		return -1;
	const struct letter_kind *known = k ? k : letter_kind_by_type(l->type);
	if (known && !version_fits(l->version, known->type))
		return xmlsafe_fail(err, CODEC_EVERSION, "%s: VersionCode %s does not belong to %s",
				    where, l->version, known->type);
	return 0;
}

static int decode_letter(const xmlNode *el, size_t idx, struct codec_letter *l,
			 struct codec_error *err)
{
	char where[32];
	snprintf(where, sizeof(where), "letter %zu", idx + 1);
	const struct letter_kind *k = letter_kind_find(el->name);
	if (!k && !in_medcom_ns(el))
		return xmlsafe_fail(err, CODEC_ETYPE,
				    "%s: %.64s is not a MedCom letter (not in a MedCom namespace)",
				    where, (const char *)el->name);
	if (decode_letter_head(el, k, l, where, err) < 0 ||
	    read_field(el, "Sender/EANIdentifier", l->sender, sizeof(l->sender), where, err) < 0 ||
	    read_field(el, "Receiver/EANIdentifier", l->receiver, sizeof(l->receiver), where, err) < 0)
		return -1;
	return 0;
}

/* Every element after the Envelope is a letter, except Local_Elements. */
static int decode_letters(const xmlNode *first, struct codec_envelope *env, struct codec_error *err)
{
	bool all_receipts = true;
	for (const xmlNode *n = first; n; n = xmltree_next(n)) {
		if (xmltree_is(n, "Local_Elements"))
			continue;
		if (env->nletters == CODEC_MAX_LETTERS)
			return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Emessage holds more than %d letters",
					    CODEC_MAX_LETTERS);
		struct codec_letter *l = &env->letters[env->nletters];
		if (decode_letter(n, env->nletters, l, err) < 0)
			return -1;
		all_receipts = all_receipts && strncmp(l->type, "XCTL", 4) == 0;
		if (strncmp(l->type, "XCTL", 4) == 0)
			read_refers(n, l->type, &env->refers);
		env->nletters++;
	}
	if (env->nletters == 0)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Emessage holds no letter");
	env->is_receipt = all_receipts;
	if (!all_receipts) /* only a message of receipts acknowledges anything */
		memset(&env->refers, 0, sizeof(env->refers));
	return 0;
}

static int decode_emessage(const xmlNode *root, struct codec_envelope *env, struct codec_error *err)
{
	if (!xmltree_is(root, "Emessage"))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "root element is %.64s, not Emessage",
				    (const char *)root->name);
	const xmlNode *envelope = xmltree_first(root->children);
	if (!envelope)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Emessage holds no Envelope");
	if (!xmltree_is(envelope, "Envelope"))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Emessage starts with %.64s, not Envelope",
				    (const char *)envelope->name);
	if (decode_envelope(envelope, env, err) < 0)
		return -1;
	return decode_letters(xmltree_next(envelope), env, err);
}

/* ---- partial fill on error --------------------------------------------- */

/* Clears env, then re-reads what a negative receipt needs: the envelope id
 * and the first letter's sender and id, from elements whose end tag was seen (so a
 * truncated GLN is never mistaken for a whole one). */
static void keep_partial(struct codec_envelope *env, const xmlDoc *doc)
{
	char encoding[sizeof(env->encoding)];
	memcpy(encoding, env->encoding, sizeof(encoding));
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_oioxml;
	memcpy(env->encoding, encoding, sizeof(encoding));

	const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	const xmlNode *envelope = xmltree_is(root, "Emessage") ? xmltree_first(root->children) : NULL;
	if (!xmltree_is(envelope, "Envelope"))
		return;
	salvage_field(envelope, "Identifier", env->envelope_id, OIO_ID_MAX);
	const xmlNode *letter = xmltree_next(envelope);
	while (xmltree_is(letter, "Local_Elements"))
		letter = xmltree_next(letter);
	if (!letter)
		return;
	salvage_field(letter, "Sender/EANIdentifier", env->letters[0].sender,
		      sizeof(env->letters[0].sender));
	salvage_field(letter, "Letter/Identifier", env->letters[0].id, OIO_ID_MAX);
	/* A refused receipt must still be known as one: receipts are never
	 * answered with receipts, even when they are broken. */
	for (size_t i = 0; i < ARRAY_SIZE(letter_kinds); i++)
		if (letter_kinds[i].receipt && xmltree_is(letter, letter_kinds[i].element))
			env->is_receipt = true;
}

static int oioxml_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			 struct codec_envelope *env, struct codec_error *err)
{
	struct xmlsafe_doc d;
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_oioxml;
	*err = (struct codec_error){ .code = CODEC_OK };

	int r = xmlsafe_parse(buf, len, lim, &d, err);
	if (d.encoding)
		str_copy(env->encoding, d.encoding, sizeof(env->encoding));
	if (r == 0)
		r = decode_emessage(xmlDocGetRootElement(d.doc), env, err);
	if (r == 0 && lim && lim->schemas) {
		const xmlNode *root = xmlDocGetRootElement(d.doc);
		codec_schemas_check(lim->schemas, root->ns ? (const char *)root->ns->href : "", d.doc,
				    env);
	}
	if (r < 0)
		keep_partial(env, d.doc);
	xmlsafe_doc_free(&d);
	return r;
}

/* ---- sniffing ---------------------------------------------------------- */

/* Any namespace: real traffic uses every schema release, and the letters
 * decide whether it is MedCom's. */
static bool oioxml_sniff(const uint8_t *buf, size_t len)
{
	struct xmlsniff root;
	return xmlsniff_root(buf, len, &root) && strcmp(root.local, "Emessage") == 0;
}

/* ---- renewal ------------------------------------------------------------ */

/* Envelope/Identifier: the first Identifier element, since Envelope comes
 * first in Emessage and holds no other (renew_run checks the result). */
static size_t find_envelope_id(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			       struct renew_span spans[RENEW_SPANS_MAX])
{
	return renew_xml_field(buf, len, "Identifier", NULL, &spans[0]) ? 1 : 0;
}

/* A receipt as a new envelope: a fresh Envelope/Identifier (String_1_14,
 * so the broker's short fresh id). */
static int oioxml_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_oioxml, buf, len, lim, p, false, find_envelope_id, out);
}

const struct codec codec_oioxml = {
	.name = "oioxml",
	.ext = "xml",
	.sniff = oioxml_sniff,
	.decode = oioxml_decode,
	.refuse = xctl01_refuse,
	.renew = oioxml_renew,
};

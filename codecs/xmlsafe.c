/*
 * xmlsafe.c - owns every call into libxml2's parser. Codecs hand it raw
 * message bytes; it hands back an xmlDoc or a precise codec_error.
 *
 * Policy, in the order it is applied:
 *  1. Size: input over the limit is refused before any byte is looked at.
 *  2. Character set: decided here, not by libxml2. The XML declaration's
 *     encoding is honoured when it is UTF-8, ISO-8859-1, windows-1252 or
 *     US-ASCII (and their usual aliases); anything else is refused. Without a
 *     declared encoding, the charset a wrapping declares for its payload
 *     (lim->charset: SBDH BinaryContent/@encoding) stands in for one, under
 *     the same rules; the document's own declaration outranks it, as a
 *     parser reading the payload alone would see it. Without either, the
 *     bytes are UTF-8 when they are valid UTF-8 (or carry a UTF-8 BOM) and
 *     ISO-8859-1 otherwise, because Region H sends Latin-1 payloads with no
 *     declaration. Single-byte input is transcoded
 *     to UTF-8 here; libxml2 always receives strict UTF-8 without NUL bytes,
 *     parsed with XML_PARSE_IGNORE_ENC, so its own detection never runs.
 *  3. DOCTYPE: refused as CODEC_EHOSTILE from the SAX internalSubset hook,
 *     which fires before the internal subset is read, so no entity is ever
 *     declared, expanded or loaded. externalSubset, entityDecl and
 *     resolveEntity are hooked too, and a process-wide external-entity loader
 *     refuses every load while a parse is running on the calling thread.
 *  4. Depth: the SAX2 element callbacks are wrapped; deeper than the limit
 *     stops the parser (CODEC_EDEPTH). The limit is capped at libxml2's own
 *     (xmlParserMaxDepth, 256 without XML_PARSE_HUGE) so ours always fires.
 *  5. Cost: before libxml2 sees a byte, one quote-aware pass refuses a start
 *     tag with more than XMLSAFE_MAX_ATTRS attributes or longer than
 *     XMLSAFE_MAX_TAG bytes (CODEC_EEXPENSIVE): libxml2 2.9's duplicate-
 *     attribute check in xmlParseStartTag2 is quadratic and runs before any
 *     SAX hook, so no hook could stop it. During the parse the element and
 *     character hooks check the time budget (lim->budget_ms) and stop the
 *     parser past it, also CODEC_EEXPENSIVE.
 *  6. Errors: libxml2 never prints. Each context routes errors to its own
 *     sax->serror; the calling thread's generic and structured handlers are
 *     swapped for silent ones during the parse as a backstop.
 *
 * XML Schemas: parsed once from the broker's own files (xmlsafe_schema_load,
 * the one function here that reads files, while the loader admits only
 * local files) and then shared read-only; each validation has a context
 * of its own and reports the first violation by its libxml2 error code,
 * line and element name, never libxml2's message, which quotes values.
 *
 * Thread-safety: xmlsafe_parse() may run on several threads at once. Each
 * call uses a fresh parser context and keeps its state on the stack, reached
 * through ctxt->_private; libxml2 2.9 keeps the error-handler globals per
 * thread (LIBXML_THREAD_ENABLED); the entity-loader pointer is set once,
 * under pthread_once, and its guard reads only a thread-local. Call
 * xmlsafe_init() from main() before threads start; never call
 * xmlCleanupParser().
 */
#include "codecs/xmlsafe.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>
#include <libxml/schemasInternals.h>

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

#if LIBXML_VERSION >= 21300
#define XMLSAFE_NO_XXE XML_PARSE_NO_XXE
#else
#define XMLSAFE_NO_XXE 0
#endif

/* NOCDATA merges CDATA into text nodes so field readers see one kind. */
#define XMLSAFE_OPTIONS (XML_PARSE_NONET | XML_PARSE_IGNORE_ENC | XML_PARSE_NOCDATA | XMLSAFE_NO_XXE)
#define XMLSAFE_FORBIDDEN                                                                          \
	(XML_PARSE_NOENT | XML_PARSE_DTDLOAD | XML_PARSE_DTDATTR | XML_PARSE_DTDVALID |             \
	 XML_PARSE_HUGE | XML_PARSE_XINCLUDE | XML_PARSE_RECOVER | XML_PARSE_SAX1)
_Static_assert((XMLSAFE_OPTIONS & XMLSAFE_FORBIDDEN) == 0, "unsafe libxml2 option");

/* ---- character sets ---------------------------------------------------- */

enum charset { CS_UTF8, CS_LATIN1, CS_CP1252, CS_ASCII };

static const char *const charset_name[] = {
	[CS_UTF8] = "UTF-8",
	[CS_LATIN1] = "ISO-8859-1",
	[CS_CP1252] = "windows-1252",
	[CS_ASCII] = "US-ASCII",
};

/* Declared names we accept, compared case-insensitively (IANA aliases). */
static const struct {
	const char *alias;
	enum charset cs;
} charset_aliases[] = {
	{ "UTF-8", CS_UTF8 },		{ "UTF8", CS_UTF8 },
	{ "ISO-8859-1", CS_LATIN1 },	{ "ISO8859-1", CS_LATIN1 },
	{ "ISO_8859-1", CS_LATIN1 },	{ "ISO_8859-1:1987", CS_LATIN1 },
	{ "ISO-IR-100", CS_LATIN1 },	{ "LATIN1", CS_LATIN1 },
	{ "LATIN-1", CS_LATIN1 },	{ "L1", CS_LATIN1 },
	{ "IBM819", CS_LATIN1 },	{ "CP819", CS_LATIN1 },
	{ "CSISOLATIN1", CS_LATIN1 },	{ "WINDOWS-1252", CS_CP1252 },
	{ "CP1252", CS_CP1252 },	{ "X-CP1252", CS_CP1252 },
	{ "US-ASCII", CS_ASCII },	{ "ASCII", CS_ASCII },
	{ "ANSI_X3.4-1968", CS_ASCII }, { "ISO646-US", CS_ASCII },
	{ "US", CS_ASCII },		{ "CSASCII", CS_ASCII },
};

/* windows-1252 0x80..0x9F. The five unassigned bytes map to the C1 control
 * of the same value, as browsers (WHATWG) do, so no byte is ever refused. */
static const uint16_t cp1252_high[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static bool charset_lookup(const char *name, enum charset *cs)
{
	for (size_t i = 0; i < ARRAY_SIZE(charset_aliases); i++) {
		if (strcasecmp(name, charset_aliases[i].alias) == 0) {
			*cs = charset_aliases[i].cs;
			return true;
		}
	}
	return false;
}

static bool is_xml_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads one pseudo-attribute (name = "value") of an XML declaration at *i.
 * Returns false at "?>" or on anything malformed. */
static bool decl_attr(const uint8_t *p, size_t len, size_t *i, const uint8_t **name,
		      size_t *nlen, const uint8_t **val, size_t *vlen)
{
	size_t k = *i;
	while (k < len && is_xml_space(p[k]))
		k++;
	*name = p + k;
	while (k < len && ((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'z'))
		k++;
	*nlen = (size_t)(p + k - *name);
	while (k < len && is_xml_space(p[k]))
		k++;
	if (*nlen == 0 || k + 1 >= len || p[k] != '=')
		return false;
	for (k++; k < len && is_xml_space(p[k]); k++)
		;
	if (k >= len || (p[k] != '"' && p[k] != '\''))
		return false;
	const uint8_t *end = memchr(p + k + 1, p[k], len - k - 1);
	if (!end)
		return false;
	*val = p + k + 1;
	*vlen = (size_t)(end - *val);
	*i = (size_t)(end - p) + 1;
	return true;
}

/* Copies the encoding="..." of a leading XML declaration into name. Returns
 * false when there is no declaration or it names no encoding; a malformed
 * declaration counts as none, and libxml2 then reports it with a position. */
static bool decl_encoding(const uint8_t *p, size_t len, char *name, size_t namesz)
{
	if (len < 6 || memcmp(p, "<?xml", 5) != 0 || !is_xml_space(p[5]))
		return false;
	size_t i = 5, nlen, vlen;
	const uint8_t *n, *v;
	while (decl_attr(p, len, &i, &n, &nlen, &v, &vlen)) {
		if (nlen == 8 && memcmp(n, "encoding", 8) == 0) {
			size_t c = vlen < namesz - 1 ? vlen : namesz - 1;
			memcpy(name, v, c);
			name[c] = '\0';
			return true;
		}
	}
	return false;
}

static unsigned single_byte_cp(enum charset cs, uint8_t b)
{
	if (cs == CS_CP1252 && b >= 0x80 && b < 0xA0)
		return cp1252_high[b - 0x80];
	return b;
}

/* How many bytes from p (n readable) are ASCII, eight at a time. */
static size_t ascii_run(const uint8_t *p, size_t n)
{
	size_t k = 0;
	for (; k + 8 <= n; k += 8) {
		uint64_t w;
		memcpy(&w, p + k, sizeof(w));
		if (w & 0x8080808080808080ULL)
			break;
	}
	while (k < n && p[k] < 0x80)
		k++;
	return k;
}

/* Transcodes ISO-8859-1 or windows-1252 bytes to a new UTF-8 buffer. ASCII,
 * nearly all of a MedCom message, is the same in all three and is copied
 * in runs: encoding it byte by byte was a third of the broker's work per
 * message. */
static uint8_t *transcode(const uint8_t *p, size_t len, enum charset cs, size_t *outlen)
{
	size_t n = len, o = 0;
	for (size_t i = ascii_run(p, len); i < len; i += 1 + ascii_run(p + i + 1, len - i - 1))
		n += utf8_encode(single_byte_cp(cs, p[i]), NULL) - 1;
	uint8_t *out = xmalloc(n);
	for (size_t i = 0; i < len;) {
		size_t run = ascii_run(p + i, len - i);
		memcpy(out + o, p + i, run);
		o += run;
		i += run;
		if (i < len)
			o += utf8_encode(single_byte_cp(cs, p[i++]), out + o);
	}
	*outlen = n;
	return out;
}

/* The UTF-8 bytes libxml2 will see, and what they were read as. */
struct input {
	const uint8_t *p;
	size_t len;
	uint8_t *owned; /* transcoded copy, or NULL when p points into the caller's buffer */
	enum charset cs;
};

/* Picks the charset from BOM, declaration, the wrapping's hint and content
 * (see the policy). */
static int choose_charset(const uint8_t *p, size_t len, bool bom, const char *hint,
			  enum charset *cs, struct codec_error *err)
{
	char name[40];
	bool declared = decl_encoding(p, len, name, sizeof(name));
	if (!declared && !hint) {
		*cs = bom || utf8_valid(p, len) ? CS_UTF8 : CS_LATIN1;
		return 0;
	}
	const char *by = declared ? "" : " (the wrapping's)";
	if (!declared)
		str_copy(name, hint, sizeof(name));
	if (!charset_lookup(name, cs))
		return xmlsafe_fail(err, CODEC_EENCODING, "unsupported encoding %s%s", name, by);
	if (bom && *cs != CS_UTF8)
		return xmlsafe_fail(err, CODEC_EENCODING,
				    "UTF-8 byte order mark contradicts declared encoding %s%s", name, by);
	return 0;
}

/* Checks the bytes against the chosen charset; offsets count from buf[0]. */
static int check_bytes(const uint8_t *p, size_t len, size_t base, enum charset cs,
		       struct codec_error *err)
{
	size_t bad;
	if (cs == CS_UTF8 && (bad = utf8_span(p, len)) < len)
		return xmlsafe_fail(err, CODEC_EENCODING, "invalid UTF-8 at byte offset %zu",
				    base + bad);
	if (cs == CS_ASCII) {
		for (size_t i = 0; i < len; i++)
			if (p[i] >= 0x80)
				return xmlsafe_fail(err, CODEC_EENCODING,
						    "non-ASCII byte at offset %zu in a US-ASCII document",
						    base + i);
	}
	return 0;
}

static int prepare_input(const uint8_t *buf, size_t len, const char *hint, struct input *in,
			 struct codec_error *err)
{
	if (len == 0) /* buf may be NULL then */
		return xmlsafe_fail(err, CODEC_ESYNTAX, "empty input");
	if (len >= 2 && ((buf[0] == 0xFE && buf[1] == 0xFF) || (buf[0] == 0xFF && buf[1] == 0xFE)))
		return xmlsafe_fail(err, CODEC_EENCODING, "UTF-16/UTF-32 input is not supported");
	const uint8_t *nul = memchr(buf, 0, len);
	if (nul)
		return xmlsafe_fail(err, CODEC_EENCODING, "NUL byte at offset %zu",
				    (size_t)(nul - buf));
	bool bom = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0;
	size_t skip = bom ? 3 : 0;
	if (len == skip)
		return xmlsafe_fail(err, CODEC_ESYNTAX, "empty input");
	*in = (struct input){ .p = buf, .len = len };
	if (choose_charset(buf + skip, len - skip, bom, hint, &in->cs, err) < 0 ||
	    check_bytes(buf + skip, len - skip, skip, in->cs, err) < 0)
		return -1;
	/* UTF-8 and ASCII go through as they are, BOM included: libxml2 skips
	 * exactly one BOM and refuses a second (stripping it here did not). */
	if (in->cs == CS_LATIN1 || in->cs == CS_CP1252) {
		in->owned = transcode(buf, len, in->cs, &in->len);
		in->p = in->owned;
	}
	return 0;
}

/* ---- the cost of a document, before it is parsed ------------------------ */

#define XMLSAFE_MAX_ATTRS 256
#define XMLSAFE_MAX_TAG (64u * 1024u)

/* Skips from p (just past "<!--", "<?" or "<![CDATA[") to past its end
 * marker; returns len when there is none (the parser will say so). */
static size_t skip_to(const uint8_t *p, size_t len, size_t i, const char *end)
{
	size_t n = strlen(end);
	while (i + n <= len) {
		const uint8_t *hit = memchr(p + i, end[0], len - i);
		if (!hit)
			return len;
		i = (size_t)(hit - p);
		if (i + n <= len && memcmp(p + i, end, n) == 0)
			return i + n;
		i++;
	}
	return len;
}

/* One linear pass over the document as libxml2 will read it: counts the
 * attributes of every start tag (each has one '=' outside quotes) and its
 * length, skipping comments, PIs and CDATA sections. */
static int check_cost(const uint8_t *p, size_t len, struct codec_error *err)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '<')
			continue;
		if (i + 4 <= len && memcmp(p + i, "<!--", 4) == 0) {
			i = skip_to(p, len, i + 4, "-->") - 1;
			continue;
		}
		if (i + 9 <= len && memcmp(p + i, "<![CDATA[", 9) == 0) {
			i = skip_to(p, len, i + 9, "]]>") - 1;
			continue;
		}
		if (i + 2 <= len && p[i + 1] == '?') {
			i = skip_to(p, len, i + 2, "?>") - 1;
			continue;
		}
		size_t start = i, attrs = 0;
		uint8_t quote = 0;
		for (i++; i < len && (quote || p[i] != '>'); i++) {
			if (quote)
				quote = p[i] == quote ? 0 : quote;
			else if (p[i] == '"' || p[i] == '\'')
				quote = p[i];
			else if (p[i] == '=')
				attrs++;
			if (attrs > XMLSAFE_MAX_ATTRS)
				return xmlsafe_fail(err, CODEC_EEXPENSIVE,
						    "too expensive to parse: a tag at byte %zu has "
						    "more than %d attributes", start, XMLSAFE_MAX_ATTRS);
			if (i - start > XMLSAFE_MAX_TAG)
				return xmlsafe_fail(err, CODEC_EEXPENSIVE,
						    "too expensive to parse: a tag at byte %zu is "
						    "longer than %u bytes", start, XMLSAFE_MAX_TAG);
		}
	}
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the parse --------------------------------------------------------- */

/* Everything one parse knows, on the caller's stack; hooks reach it through
 * ctxt->_private, the libxml2 fallbacks through the thread-local `active`. */
struct parse_state {
	unsigned depth;
	unsigned max_depth;
	int64_t deadline;          /* mono ms: past it the parse stops */
	int64_t budget_ms;
	unsigned calls;            /* hook calls since the last look at the clock */
	struct codec_error policy; /* set when a hook refused the document */
	struct codec_error first;  /* first libxml2 error, as CODEC_ESYNTAX */
};

static __thread struct parse_state *active;
static __thread bool schema_loading; /* xmlsafe_schema_load runs on this thread */
static xmlExternalEntityLoader default_loader;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static char closed_mark; /* n->_private == &closed_mark: end tag seen */

static void refuse(struct parse_state *st, xmlParserCtxtPtr ctxt, enum codec_errcode code,
		   const char *what)
{
	if (st->policy.code == CODEC_OK) {
		int line = ctxt && ctxt->input ? ctxt->input->line : 0;
		xmlsafe_fail(&st->policy, code, "%s (line %d)", what, line);
	}
	if (ctxt)
		xmlStopParser(ctxt);
}

static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
			       const xmlChar *sys_id)
{
	xmlParserCtxtPtr ctxt = ctx;
	refuse(ctxt->_private, ctxt, CODEC_EHOSTILE, "DOCTYPE not allowed");
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pub_id,
			   const xmlChar *sys_id, xmlChar *content)
{
	xmlParserCtxtPtr ctxt = ctx;
	refuse(ctxt->_private, ctxt, CODEC_EHOSTILE, "entity declaration not allowed");
}

static xmlParserInputPtr on_resolve_entity(void *ctx, const xmlChar *pub_id, const xmlChar *sys_id)
{
	xmlParserCtxtPtr ctxt = ctx;
	refuse(ctxt->_private, ctxt, CODEC_EHOSTILE, "external entity not allowed");
	return NULL;
}

/* True (and the parser stopped) when the parse is past its budget; looks
 * at the clock every 64 calls. */
static bool over_budget(xmlParserCtxtPtr ctxt, struct parse_state *st)
{
	if (++st->calls < 64)
		return false;
	st->calls = 0;
	if (mono_ms() <= st->deadline)
		return false;
	char what[96];
	snprintf(what, sizeof(what), "too expensive to parse: more than %lld ms",
		 (long long)st->budget_ms);
	refuse(st, ctxt, CODEC_EEXPENSIVE, what);
	return true;
}

static void on_characters(void *ctx, const xmlChar *ch, int len)
{
	xmlParserCtxtPtr ctxt = ctx;
	if (!over_budget(ctxt, ctxt->_private))
		xmlSAX2Characters(ctx, ch, len);
}

static void on_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
			     const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
			     int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct parse_state *st = ctxt->_private;
	if (over_budget(ctxt, st))
		return;
	if (++st->depth > st->max_depth) {
		refuse(st, ctxt, CODEC_EDEPTH, "element nesting deeper than the limit");
		return;
	}
	xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces,
			      nb_attributes, nb_defaulted, attributes);
}

static void on_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
			   const xmlChar *uri)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct parse_state *st = ctxt->_private;
	st->depth--;
	if (ctxt->node)
		ctxt->node->_private = &closed_mark; /* the node being closed */
	xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

/* Keeps the first error (warnings are ignored) as a short ESYNTAX text. */
static void record_error(struct parse_state *st, const xmlError *e)
{
	if (!st || st->first.code != CODEC_OK || e->level < XML_ERR_ERROR)
		return;
	const char *msg = e->message ? e->message : "parse error";
	xmlsafe_fail(&st->first, CODEC_ESYNTAX, "not well-formed at line %d col %d: %.160s",
		     e->line, e->int2, msg);
	size_t n = strlen(st->first.text);
	while (n > 0 && st->first.text[n - 1] == ' ') /* libxml2 ends messages with '\n' */
		st->first.text[--n] = '\0';
}

static void on_error(void *ctx, xmlErrorPtr e)
{
	xmlParserCtxtPtr ctxt = ctx;
	record_error(ctxt ? ctxt->_private : NULL, e);
}

/* Backstops for errors raised without our context: kept, never printed. */
static void silent_generic(void *ctx, const char *msg, ...) {}
static void silent_structured(void *ctx, xmlErrorPtr e)
{
	record_error(active, e);
}

/* True when url names a local file: a path, or a file: URL. */
static bool local_url(const char *url)
{
	const char *colon = url ? strchr(url, ':') : NULL, *slash = url ? strchr(url, '/') : NULL;
	if (!url)
		return false;
	if (!colon || (slash && slash < colon))
		return true;
	return strncasecmp(url, "file:", 5) == 0;
}

/* Refuses every external load while this thread runs a safe parse, and
 * every load but a local file while it loads a schema. */
static xmlParserInputPtr guarded_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	if (active) {
		refuse(active, ctxt, CODEC_EHOSTILE, "external entity not allowed");
		return NULL;
	}
	if (schema_loading && !local_url(url))
		return NULL;
	return default_loader ? default_loader(url, id, ctxt) : NULL;
}

static void init_once_fn(void)
{
	xmlInitParser();
	default_loader = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(guarded_loader);
}

void xmlsafe_init(void)
{
	pthread_once(&init_once, init_once_fn);
}

static void install_hooks(xmlParserCtxtPtr ctxt, struct parse_state *st)
{
	xmlCtxtUseOptions(ctxt, XMLSAFE_OPTIONS); /* edits ctxt->sax, so hooks go after */
	xmlSAXHandler *sax = ctxt->sax;
	sax->internalSubset = on_internal_subset;
	sax->externalSubset = on_internal_subset;
	sax->entityDecl = on_entity_decl;
	sax->resolveEntity = on_resolve_entity;
	sax->startElementNs = on_start_element;
	sax->endElementNs = on_end_element;
	sax->characters = on_characters;
	sax->ignorableWhitespace = on_characters;
	sax->serror = on_error;
	sax->warning = NULL;
	sax->error = NULL;
	sax->fatalError = NULL;
	ctxt->_private = st;
}

/* This thread's libxml2 error handlers, swapped out for the parse. */
struct saved_handlers {
	xmlGenericErrorFunc generic;
	void *generic_ctx;
	xmlStructuredErrorFunc structured;
	void *structured_ctx;
};

static void handlers_enter(struct saved_handlers *s, struct parse_state *st)
{
	*s = (struct saved_handlers){ xmlGenericError, xmlGenericErrorContext, xmlStructuredError,
				      xmlStructuredErrorContext };
	xmlSetGenericErrorFunc(NULL, silent_generic);
	xmlSetStructuredErrorFunc(NULL, silent_structured);
	active = st;
}

static void handlers_leave(const struct saved_handlers *s)
{
	active = NULL;
	xmlSetGenericErrorFunc(s->generic_ctx, s->generic);
	xmlSetStructuredErrorFunc(s->structured_ctx, s->structured);
}

/* A policy refusal outranks the libxml2 error it causes (XML_ERR_USER_STOP). */
static int verdict(const xmlParserCtxt *ctxt, const struct parse_state *st, const xmlDoc *doc,
		   struct codec_error *err)
{
	if (st->policy.code != CODEC_OK) {
		*err = st->policy;
		return -1;
	}
	if (st->first.code != CODEC_OK) {
		*err = st->first;
		return -1;
	}
	if (!ctxt->wellFormed || !ctxt->nsWellFormed)
		return xmlsafe_fail(err, CODEC_ESYNTAX, "not well-formed (libxml2 error %d)",
				    ctxt->errNo);
	if (!doc || !xmlDocGetRootElement(doc))
		return xmlsafe_fail(err, CODEC_ESYNTAX, "no root element");
	return 0;
}

static int run_parser(const struct input *in, unsigned max_depth, int64_t budget_ms,
		      struct xmlsafe_doc *out, struct codec_error *err)
{
	struct parse_state st = { .max_depth = max_depth, .budget_ms = budget_ms,
				  .deadline = mono_ms() + budget_ms };
	struct saved_handlers saved;
	xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt((const char *)in->p, (int)in->len);
	if (!ctxt)
		abort(); /* only out of memory: the caller passes 1..INT_MAX bytes */
	install_hooks(ctxt, &st);
	handlers_enter(&saved, &st);
	xmlParseDocument(ctxt);
	handlers_leave(&saved);
	out->doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	int r = verdict(ctxt, &st, out->doc, err);
	xmlFreeParserCtxt(ctxt);
	out->complete = r == 0;
	return r;
}

int xmlsafe_parse(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		  struct xmlsafe_doc *out, struct codec_error *err)
{
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	unsigned max_depth = lim && lim->max_depth ? lim->max_depth : CODEC_DEFAULT_MAX_DEPTH;
	struct input in = { 0 };
	int r;

	memset(out, 0, sizeof(*out));
	xmlsafe_init();
	if (len > max_bytes)
		return xmlsafe_fail(err, CODEC_ETOOBIG, "message is %zu bytes, limit %zu", len,
				    max_bytes);
	if (prepare_input(buf, len, lim ? lim->charset : NULL, &in, err) < 0)
		return -1;
	out->encoding = charset_name[in.cs];
	if (max_depth > xmlParserMaxDepth)
		max_depth = xmlParserMaxDepth;
	int64_t budget = lim && lim->budget_ms > 0 ? lim->budget_ms : CODEC_DEFAULT_BUDGET_MS;
	if (in.len > INT32_MAX) /* xmlCreateMemoryParserCtxt takes an int */
		r = xmlsafe_fail(err, CODEC_ETOOBIG, "message too large for the parser");
	else if (check_cost(in.p, in.len, err) < 0)
		r = -1;
	else
		r = run_parser(&in, max_depth, budget, out, err);
	free(in.owned);
	return r;
}

void xmlsafe_doc_free(struct xmlsafe_doc *d)
{
	if (!d)
		return;
	if (d->doc)
		xmlFreeDoc(d->doc);
	memset(d, 0, sizeof(*d));
}

bool xmlsafe_node_closed(const xmlNode *n)
{
	return n && n->_private == &closed_mark;
}

int xmlsafe_fail(struct codec_error *err, enum codec_errcode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	for (unsigned char *p = (unsigned char *)err->text; *p; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
		else if (*p < 0x20 || *p > 0x7E)
			*p = '?';
	}
	err->code = code;
	return -1;
}

/* ---- XML Schemas ---------------------------------------------------------- */

struct xmlsafe_schema {
	xmlSchemaPtr schema;
	char ns[256];
};

/* The first error a schema parse or validation reports. */
struct schema_errors {
	bool seen;
	int code, line;
	char element[65];
	char message[160]; /* schema loading only: the schema files are the broker's own */
};

static void on_schema_error(void *ctx, xmlErrorPtr e)
{
	struct schema_errors *st = ctx;
	if (!st || st->seen || e->level < XML_ERR_ERROR)
		return;
	st->seen = true;
	st->code = e->code;
	st->line = e->line;
	const xmlNode *n = e->node;
	if (n && n->type == XML_ELEMENT_NODE && n->name)
		snprintf(st->element, sizeof(st->element), "%s", (const char *)n->name);
	snprintf(st->message, sizeof(st->message), "%s", e->message ? e->message : "error");
}

/* This thread's error handlers, silenced while a schema call runs. */
static void schema_handlers_enter(struct saved_handlers *s)
{
	*s = (struct saved_handlers){ xmlGenericError, xmlGenericErrorContext, xmlStructuredError,
				      xmlStructuredErrorContext };
	xmlSetGenericErrorFunc(NULL, silent_generic);
	xmlSetStructuredErrorFunc(NULL, silent_structured);
}

static void schema_handlers_leave(const struct saved_handlers *s)
{
	xmlSetGenericErrorFunc(s->generic_ctx, s->generic);
	xmlSetStructuredErrorFunc(s->structured_ctx, s->structured);
}

struct xmlsafe_schema *xmlsafe_schema_load(const char *path, char *err, size_t errlen)
{
	struct schema_errors st = { 0 };
	struct saved_handlers saved;
	xmlsafe_init();
	xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(path);
	if (!pc) {
		snprintf(err, errlen, "%s: cannot make a schema parser", path);
		return NULL;
	}
	xmlSchemaSetParserStructuredErrors(pc, on_schema_error, &st);
	schema_handlers_enter(&saved);
	schema_loading = true;
	xmlSchemaPtr schema = xmlSchemaParse(pc);
	schema_loading = false;
	schema_handlers_leave(&saved);
	xmlSchemaFreeParserCtxt(pc);
	if (!schema) {
		snprintf(err, errlen, "%s: %s", path, st.seen ? st.message : "not an XML Schema");
		size_t n = strlen(err);
		while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = '\0';
		return NULL;
	}
	struct xmlsafe_schema *s = xcalloc(1, sizeof(*s));
	s->schema = schema;
	if (schema->targetNamespace)
		snprintf(s->ns, sizeof(s->ns), "%s", (const char *)schema->targetNamespace);
	return s;
}

void xmlsafe_schema_free(struct xmlsafe_schema *s)
{
	if (!s)
		return;
	xmlSchemaFree(s->schema);
	free(s);
}

const char *xmlsafe_schema_ns(const struct xmlsafe_schema *s)
{
	return s->ns;
}

/* What a validation error code means, in words: libxml2's own message
 * quotes the offending value, which may be patient data. */
static const char *violation(int code)
{
	switch (code) {
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_2_4:
	case XML_SCHEMAV_ELEMENT_CONTENT:
		return "an element is missing, misplaced or not allowed here";
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_2_1:
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_2_3:
		return "text where the schema allows none";
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_3_1:
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_3_2_1:
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_3_2_2:
	case XML_SCHEMAV_CVC_COMPLEX_TYPE_4:
		return "an attribute is missing or not allowed";
	case XML_SCHEMAV_CVC_LENGTH_VALID:
	case XML_SCHEMAV_CVC_MINLENGTH_VALID:
	case XML_SCHEMAV_CVC_MAXLENGTH_VALID:
		return "a value has a length its type does not allow";
	case XML_SCHEMAV_CVC_PATTERN_VALID:
		return "a value does not match the pattern of its type";
	case XML_SCHEMAV_CVC_ENUMERATION_VALID:
		return "a value is not one its type lists";
	case XML_SCHEMAV_CVC_ELT_1:
	case XML_SCHEMAV_NOROOT:
		return "the schema does not declare the root element";
	default:
		if (code >= XML_SCHEMAV_CVC_DATATYPE_VALID_1_2_1 && code <= XML_SCHEMAV_CVC_ENUMERATION_VALID)
			return "a value is not valid for its type";
		return "the document does not follow its schema";
	}
}

int xmlsafe_validate(const struct xmlsafe_schema *s, xmlDoc *doc, char *why, size_t whylen)
{
	struct schema_errors st = { 0 };
	struct saved_handlers saved;
	xmlSchemaValidCtxtPtr v = xmlSchemaNewValidCtxt(s->schema);
	if (!v)
		abort(); /* only out of memory */
	xmlSchemaSetValidStructuredErrors(v, on_schema_error, &st);
	schema_handlers_enter(&saved);
	int r = xmlSchemaValidateDoc(v, doc);
	schema_handlers_leave(&saved);
	xmlSchemaFreeValidCtxt(v);
	if (r == 0)
		return 1;
	if (r < 0) {
		snprintf(why, whylen, "validation could not run (libxml2 %d)", r);
		return -1;
	}
	struct codec_error e;
	xmlsafe_fail(&e, CODEC_ESCHEMA, "line %d: %s%s%s%s (libxml2 %d)", st.line,
		     st.element[0] ? "element " : "", st.element, st.element[0] ? ": " : "",
		     violation(st.code), st.code);
	snprintf(why, whylen, "%s", e.text);
	return 0;
}

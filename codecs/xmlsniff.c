/*
 * xmlsniff.c - finds an XML document's root element and its namespace
 * without parsing (xmlsniff.h). The codecs' sniff() functions call it; it
 * owns no state.
 *
 * The scan is linear and bounded by XMLSNIFF_WINDOW. The namespace is the
 * value of the root tag's own xmlns (or xmlns:prefix for a prefixed root)
 * attribute, compared raw: an entity or character reference in it is left
 * as written, so such a document is sniffed as namespace-less and refused
 * or accepted by decode, never misrouted.
 */
#include "codecs/xmlsniff.h"

#include <string.h>

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const uint8_t *past(const uint8_t *p, const uint8_t *end, const char *term)
{
	size_t n = strlen(term);
	const uint8_t *q = memmem(p, (size_t)(end - p), term, n);
	return q ? q + n : end;
}

/* Skips a DOCTYPE (quotes and an internal subset in brackets included). */
static const uint8_t *past_doctype(const uint8_t *p, const uint8_t *end)
{
	int depth = 0;
	uint8_t quote = 0;
	for (; p < end; p++) {
		if (quote)
			quote = *p == quote ? 0 : quote;
		else if (*p == '"' || *p == '\'')
			quote = *p;
		else if (*p == '[' || *p == ']')
			depth += *p == '[' ? 1 : -1;
		else if (*p == '>' && depth <= 0)
			return p + 1;
	}
	return end;
}

/* Past a PI, comment or DOCTYPE at p ('<'), or NULL when p starts an element. */
static const uint8_t *past_prolog_item(const uint8_t *p, const uint8_t *end)
{
	size_t n = (size_t)(end - p);
	if (n >= 2 && p[1] == '?')
		return past(p + 2, end, "?>");
	if (n >= 4 && memcmp(p, "<!--", 4) == 0)
		return past(p + 4, end, "-->");
	if (n >= 9 && memcmp(p, "<!DOCTYPE", 9) == 0)
		return past_doctype(p + 9, end);
	return NULL;
}

/* Copies [p, q) into dst as a string; false when it does not fit. */
static bool copy_span(char *dst, size_t dstsz, const uint8_t *p, const uint8_t *q)
{
	size_t n = (size_t)(q - p);
	if (n >= dstsz)
		return false;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return true;
}

/* Reads the attributes of the start tag at p (just after the name) until
 * '>' and sets out->ns from the xmlns attribute naming the root's prefix
 * (prefix[0..plen), plen 0 for none). Stops at anything malformed or cut
 * off, leaving out->ns as far as it got. */
static void read_xmlns(const uint8_t *p, const uint8_t *end, const uint8_t *prefix, size_t plen,
		       struct xmlsniff *out)
{
	while (p < end) {
		while (p < end && is_space(*p))
			p++;
		if (p < end && (*p == '>' || *p == '/'))
			return;
		const uint8_t *name = p;
		while (p < end && *p != '=' && !is_space(*p) && *p != '>')
			p++;
		const uint8_t *name_end = p;
		while (p < end && (is_space(*p) || *p == '='))
			p++;
		if (p >= end || (*p != '"' && *p != '\''))
			return;
		const uint8_t *val = p + 1, *close = memchr(val, *p, (size_t)(end - val));
		if (!close)
			return;
		size_t nlen = (size_t)(name_end - name);
		bool match = plen == 0 ? nlen == 5 && memcmp(name, "xmlns", 5) == 0
				       : nlen == 6 + plen && memcmp(name, "xmlns:", 6) == 0 &&
						 memcmp(name + 6, prefix, plen) == 0;
		if (match && !copy_span(out->ns, sizeof(out->ns), val, close))
			out->ns[0] = '\0';
		p = close + 1;
	}
}

/* Reads the root start tag at p (just after '<'): its name must end
 * within the window; its attributes are read as far as they go. */
static bool read_root(const uint8_t *p, const uint8_t *end, struct xmlsniff *out)
{
	const uint8_t *qname = p, *local = p;
	while (p < end && !is_space(*p) && *p != '>' && *p != '/') {
		if (*p++ == ':')
			local = p;
	}
	if (p >= end || p == local || !copy_span(out->local, sizeof(out->local), local, p))
		return false;
	size_t plen = local > qname ? (size_t)(local - qname - 1) : 0;
	read_xmlns(p, end, qname, plen, out);
	return true;
}

bool xmlsniff_root(const uint8_t *buf, size_t len, struct xmlsniff *out)
{
	if (!buf || len == 0)
		return false;
	const uint8_t *p = buf, *end = buf + (len < XMLSNIFF_WINDOW ? len : XMLSNIFF_WINDOW);
	memset(out, 0, sizeof(*out));
	if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	for (;;) {
		while (p < end && is_space(*p))
			p++;
		if (end - p < 2 || *p != '<')
			return false;
		const uint8_t *next = past_prolog_item(p, end);
		if (!next)
			return read_root(p + 1, end, out);
		p = next;
	}
}

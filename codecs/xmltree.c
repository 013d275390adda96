/*
 * xmltree.c - helpers that read a libxml2 tree built by xmlsafe
 * (xmltree.h). They never parse and never change the tree; the only
 * allocation is xmltree_content() joining text split over several nodes.
 */
#include "codecs/xmltree.h"

#include <stdint.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/xmlsafe.h"

static bool is_space(xmlChar c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool xmltree_is(const xmlNode *n, const char *local)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, local) == 0;
}

const xmlNode *xmltree_first(const xmlNode *n)
{
	while (n && n->type != XML_ELEMENT_NODE)
		n = n->next;
	return n;
}

const xmlNode *xmltree_next(const xmlNode *n)
{
	return n ? xmltree_first(n->next) : NULL;
}

/* First element child of n whose local name is name[0..len). */
static const xmlNode *child_n(const xmlNode *n, const char *name, size_t len)
{
	for (const xmlNode *c = xmltree_first(n->children); c; c = xmltree_next(c)) {
		const char *cn = (const char *)c->name;
		if (strncmp(cn, name, len) == 0 && cn[len] == '\0')
			return c;
	}
	return NULL;
}

const xmlNode *xmltree_child(const xmlNode *n, const char *local)
{
	return n ? child_n(n, local, strlen(local)) : NULL;
}

const xmlNode *xmltree_path(const xmlNode *n, const char *path)
{
	while (n && *path) {
		const char *slash = strchrnul(path, '/');
		n = child_n(n, path, (size_t)(slash - path));
		path = *slash ? slash + 1 : slash;
	}
	return n;
}

bool xmltree_in_ns(const xmlNode *n, const char *ns)
{
	return n && n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

enum xmltree_text xmltree_text(const xmlNode *el, char *dst, size_t dstsz, size_t *len)
{
	size_t n = 0, keep = 0, ctrl_at = SIZE_MAX;
	for (const xmlNode *c = el->children; c; c = c->next) {
		if (c->type == XML_ELEMENT_NODE) {
			dst[0] = '\0';
			*len = 0;
			return XT_NESTED;
		}
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			continue; /* comments, PIs */
		for (const xmlChar *p = c->content; p && *p; p++) {
			if (n == 0 && is_space(*p))
				continue;
			if ((*p < 0x20 || *p == 0x7F) && ctrl_at == SIZE_MAX)
				ctrl_at = n;
			if (n < dstsz - 1)
				dst[n] = (char)*p;
			keep = is_space(*p) ? keep : n + 1;
			n++;
		}
	}
	*len = keep;
	enum xmltree_text st = keep == 0	     ? XT_EMPTY
			       : keep >= dstsz	     ? XT_TOO_LONG
			       : ctrl_at < keep	     ? XT_CONTROL
						     : XT_OK;
	dst[st == XT_OK ? keep : 0] = '\0';
	return st;
}

int xmltree_read(const xmlNode *parent, const char *path, char *dst, size_t dstsz,
		 const char *where, struct codec_error *err)
{
	const xmlNode *el = xmltree_path(parent, path);
	size_t len;
	dst[0] = '\0';
	if (!el || !xmlsafe_node_closed(el))
		return xmlsafe_fail(err, CODEC_EFIELD, "%s: missing %s", where, path);
	switch (xmltree_text(el, dst, dstsz, &len)) {
	case XT_OK:
		return 0;
	case XT_EMPTY:
		return xmlsafe_fail(err, CODEC_EFIELD, "%s: %s is empty", where, path);
	case XT_TOO_LONG:
		return xmlsafe_fail(err, CODEC_EFIELD, "%s: %s is %zu bytes, longer than %zu",
				    where, path, len, dstsz - 1);
	case XT_CONTROL:
		return xmlsafe_fail(err, CODEC_EFIELD, "%s: %s contains control characters",
				    where, path);
	case XT_NESTED:
		break;
	}
	return xmlsafe_fail(err, CODEC_EFIELD, "%s: %s contains elements, not text", where, path);
}

const char *xmltree_attr(const xmlNode *el, const char *name)
{
	for (const xmlAttr *a = el ? el->properties : NULL; a; a = a->next) {
		if (a->ns || strcmp((const char *)a->name, name) != 0)
			continue;
		const xmlNode *t = a->children;
		if (!t) /* name="" */
			return "";
		return t->type == XML_TEXT_NODE && !t->next && t->content ? (const char *)t->content
									   : NULL;
	}
	return NULL;
}

const char *xmltree_content(const xmlNode *el, size_t *len, char **owned)
{
	size_t total = 0, ntext = 0;
	const xmlNode *only = NULL;
	*owned = NULL;
	*len = 0;
	for (const xmlNode *c = el->children; c; c = c->next) {
		if (c->type == XML_ELEMENT_NODE)
			return NULL;
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
			total += strlen((const char *)c->content);
			only = c;
			ntext++;
		}
	}
	if (ntext <= 1) {
		*len = total;
		return only ? (const char *)only->content : "";
	}
	char *buf = xmalloc(total + 1);
	for (const xmlNode *c = el->children; c; c = c->next)
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
			size_t n = strlen((const char *)c->content);
			memcpy(buf + *len, c->content, n);
			*len += n;
		}
	buf[*len] = '\0';
	*owned = buf;
	return buf;
}

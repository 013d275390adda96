/*
 * xmltree.h - reading a tree xmlsafe parsed: elements by local name, paths
 * of first matches, trimmed text fields with precise errors, attributes.
 * Shared by the XML codecs (OIOXML, VANSEnvelope, SBDH, FHIR XML).
 *
 * Elements match by local name in any namespace unless a function says
 * otherwise, because real traffic mixes schema releases in one document.
 * Field errors name the element path and never quote its content.
 */
#ifndef EDIBROKER_XMLTREE_H
#define EDIBROKER_XMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "codecs/codec.h"

/* True when n is an element with local name `local`. */
bool xmltree_is(const xmlNode *n, const char *local);
/* n if it is an element, else the next element sibling after it; NULL at the end. */
const xmlNode *xmltree_first(const xmlNode *n);
/* The next element sibling of n, or NULL. */
const xmlNode *xmltree_next(const xmlNode *n);
/* The first element child of n named local, or NULL. */
const xmlNode *xmltree_child(const xmlNode *n, const char *local);
/* Follows "A/B/C" through first-match children from n; NULL when a step is missing. */
const xmlNode *xmltree_path(const xmlNode *n, const char *path);
/* True when n's namespace URI is ns. */
bool xmltree_in_ns(const xmlNode *n, const char *ns);

enum xmltree_text { XT_OK, XT_EMPTY, XT_TOO_LONG, XT_CONTROL, XT_NESTED };

/* The text children of el, trimmed of XML whitespace, into dst (dst is ""
 * unless XT_OK); *len is the trimmed length even when it does not fit. */
enum xmltree_text xmltree_text(const xmlNode *el, char *dst, size_t dstsz, size_t *len);

/* Reads the text of the element at path below parent into dst (at most
 * dstsz - 1 bytes, non-empty, no control characters). An element whose end
 * tag the parser did not see (a truncated document) counts as missing, so
 * a cut value is never taken for a whole one. 0, or -1 with CODEC_EFIELD
 * and "where: path is ..." in *err; dst is "" then. */
int xmltree_read(const xmlNode *parent, const char *path, char *dst, size_t dstsz,
		 const char *where, struct codec_error *err);

/* The value of el's attribute `name` (no namespace), or NULL. */
const char *xmltree_attr(const xmlNode *el, const char *name);

/* All text directly in el, concatenated: a pointer into the tree when it
 * is one text node, else a new buffer left in *owned for the caller to
 * free. NULL (with *len 0) when el holds an element. */
const char *xmltree_content(const xmlNode *el, size_t *len, char **owned);

#endif

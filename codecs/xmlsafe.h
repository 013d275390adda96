/*
 * xmlsafe.h - the only door to libxml2's parser: bytes in, a tree or a
 * codec_error out, under a fixed safe option set and hard limits.
 *
 * Every XML codec parses through xmlsafe_parse(); nothing else in the
 * broker calls xmlRead* / xmlParse*. See xmlsafe.c for the policy (no
 * DOCTYPE, no network, own character-set handling) and for thread-safety.
 */
#ifndef EDIBROKER_XMLSAFE_H
#define EDIBROKER_XMLSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "codecs/codec.h"

/* A parsed document. Owned by the caller; release with xmlsafe_doc_free(). */
struct xmlsafe_doc {
	xmlDoc *doc;          /* the tree; after a failed parse the partial tree or NULL */
	const char *encoding; /* static name of the charset the bytes were read as, or NULL */
	bool complete;        /* true when the whole input parsed without error */
};

/* Initialises libxml2 once (xmlInitParser) and installs the external-entity
 * guard. Call from main() before threads start; idempotent and thread-safe. */
void xmlsafe_init(void);

/* Parses buf under lim (NULL, or a 0 field, means the codec.h default;
 * lim->charset, when set, is the charset of a payload that declares none).
 * Returns 0 with *out filled and out->complete set, or -1 with *err filled;
 * then out->doc may hold the tree built before the error (see
 * xmlsafe_node_closed). Safe to call from several threads at once. */
int xmlsafe_parse(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		  struct xmlsafe_doc *out, struct codec_error *err);

/* Frees d->doc and clears *d. Accepts NULL and an empty doc. */
void xmlsafe_doc_free(struct xmlsafe_doc *d);

/* True when the parser saw the end tag of element n, i.e. its content is
 * whole. Always true for elements of a complete document. */
bool xmlsafe_node_closed(const xmlNode *n);

/* ---- XML Schemas -------------------------------------------------------- */

/* A parsed XML Schema; read-only once loaded, so any number of threads may
 * validate against one at the same time. */
struct xmlsafe_schema;

/* Parses the XML Schema at path and the files it includes and imports,
 * found relative to it; nothing is loaded over a network. The one place
 * xmlsafe reads files: call it at start-up or reload with the broker's
 * own schemas, never per message. NULL with a one-line reason in err. */
struct xmlsafe_schema *xmlsafe_schema_load(const char *path, char *err, size_t errlen);
/* Accepts NULL. */
void xmlsafe_schema_free(struct xmlsafe_schema *s);
/* Its targetNamespace, "" when it has none. */
const char *xmlsafe_schema_ns(const struct xmlsafe_schema *s);

/* Validates doc (as xmlsafe_parse built it) against s: 1 valid, 0 invalid
 * with the first violation in why (line, element name and what is wrong,
 * printable ASCII, never a value from the document), -1 when validation
 * could not run. Changes no libxml2 state other threads see. */
int xmlsafe_validate(const struct xmlsafe_schema *s, xmlDoc *doc, char *why, size_t whylen);

/* Sets err->code and a printf-formatted err->text, forced to one line of
 * printable ASCII (other bytes become '?'). Returns -1 for `return fail(...)`. */
int xmlsafe_fail(struct codec_error *err, enum codec_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

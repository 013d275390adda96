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

/* Sets err->code and a printf-formatted err->text, forced to one line of
 * printable ASCII (other bytes become '?'). Returns -1 for `return fail(...)`. */
int xmlsafe_fail(struct codec_error *err, enum codec_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

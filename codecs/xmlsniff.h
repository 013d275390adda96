/*
 * xmlsniff.h - the root element of an XML document, found cheaply: how the
 * registry tells the XML formats apart (OIOXML Emessage, VANSEnvelope,
 * SBDH, FHIR Bundle) before any of them parses.
 *
 * It reads only the prolog and the root's start tag within a window of the
 * first bytes, never parses, never allocates. It is a guess for picking a
 * codec: the codec's decode, through xmlsafe, is what decides.
 */
#ifndef EDIBROKER_XMLSNIFF_H
#define EDIBROKER_XMLSNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes looked at before giving up on finding the root element. */
#define XMLSNIFF_WINDOW (64u * 1024u)

struct xmlsniff {
	char local[64]; /* the root element's local name */
	char ns[128];   /* the namespace URI its start tag declares for it, "" if none
			 * (or one declared elsewhere, or longer than this) */
};

/* Skips an optional UTF-8 BOM, whitespace, the XML declaration, comments,
 * processing instructions and a DOCTYPE (so decode can refuse it), then
 * reads the root start tag. True with *out filled when its name ends
 * within the window and fits (the namespace is read as far as the tag
 * goes); false otherwise. */
bool xmlsniff_root(const uint8_t *buf, size_t len, struct xmlsniff *out);

#endif

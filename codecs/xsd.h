/*
 * xsd.h - a set of XML Schemas by target namespace (struct codec_schemas,
 * codec.h), which a decoder validates its document against when the
 * caller passes it in struct codec_limits.
 *
 * The set is loaded from a folder of schema releases laid out as MedCom
 * publishes them, YYYY/MM/DD/EMessage.xsd (data/xsd/oioxml), keyed by
 * each EMessage.xsd's targetNamespace. It is immutable once loaded, so
 * decode jobs on any thread use it while a reload loads the next one; a
 * reference count (taken and dropped on the loop thread only) keeps it
 * alive for the jobs that hold it.
 */
#ifndef EDIBROKER_XSD_H
#define EDIBROKER_XSD_H

#include <stddef.h>

#include "codecs/codec.h"
#include "codecs/xmlsafe.h"

/* Loads every dir/YYYY/MM/DD/EMessage.xsd (four, two and two digits).
 * Reads files: start-up and reload only. NULL with "path: reason" in err
 * when dir cannot be read, a schema does not load, two share a
 * namespace, or there is none. One reference. */
struct codec_schemas *codec_schemas_load(const char *dir, char *err, size_t errlen);
/* Another reference (loop thread). */
struct codec_schemas *codec_schemas_ref(struct codec_schemas *s);
/* Drops a reference; the last frees the set. Accepts NULL. */
void codec_schemas_unref(struct codec_schemas *s);

/* How many schemas the set holds, and the namespace of the i-th. */
size_t codec_schemas_count(const struct codec_schemas *s);
const char *codec_schemas_ns(const struct codec_schemas *s, size_t i);
/* The schema for namespace ns, or NULL. */
const struct xmlsafe_schema *codec_schemas_find(const struct codec_schemas *s, const char *ns);

/* Validates doc, whose root element is in namespace ns, into env->schema
 * and env->schema_text: VALID, INVALID with the first violation, or
 * MISSING naming ns when the set has no schema for it. */
void codec_schemas_check(const struct codec_schemas *s, const char *ns, xmlDoc *doc,
			 struct codec_envelope *env);

#endif

/*
 * renew.h - what the codecs' renew() share (codec.h): finding the raw
 * bytes of the one id that names a transmission, putting a fresh id in
 * their place, and checking that the copy is the same acknowledgement
 * under the new id.
 *
 * A renewed copy is the acknowledgement the broker stored, sent again to
 * a sender whose first copy was lost (medcom.md 4.6: "return the same
 * Acknowledgement content"; a re-sent one gets a new envelope id). Only
 * the id's bytes change, so the content is the receiver's, byte for byte.
 */
#ifndef EDIBROKER_RENEW_H
#define EDIBROKER_RENEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codecs/codec.h"

#define RENEW_SPANS_MAX 2 /* EDIFACT: the UNB and the UNZ reference */

/* Raw bytes [off, off + n) of buf. */
struct renew_span {
	size_t off, n;
};

/* The span of the text of the first element named local (any prefix) in
 * the XML document buf, or with attr, of that attribute's value. Comments,
 * processing instructions, CDATA sections and the DOCTYPE are skipped.
 * False when there is none, or the text holds markup. */
bool renew_xml_field(const uint8_t *buf, size_t len, const char *local, const char *attr,
		     struct renew_span *out);

/* The span of the string value (within its quotes) of the top-level
 * member `name` of the JSON object buf, the first one when it repeats.
 * False when there is none, or it is not a string. */
bool renew_json_member(const uint8_t *buf, size_t len, const char *name, struct renew_span *out);

/* Finds where the outermost id of buf (which decoded into env) is
 * written: 1..RENEW_SPANS_MAX spans, in order; 0 when it cannot. */
typedef size_t (*renew_find_fn)(const uint8_t *buf, size_t len, const struct codec_envelope *env,
				struct renew_span spans[RENEW_SPANS_MAX]);

/* The renew() of codec c: decodes buf (an acknowledgement, else
 * -ENOTSUP), finds its outermost id with find (each span must hold it as
 * decoded), writes a fresh one there (p->fresh_uuid when uuid, else
 * p->fresh_id), and decodes the copy: it must be the same acknowledgement
 * (codec, letters, refers) under the new id, else -EINVAL. */
int renew_run(const struct codec *c, const uint8_t *buf, size_t len, const struct codec_limits *lim,
	      const struct codec_refusal_params *p, bool uuid, renew_find_fn find,
	      struct codec_receipt *out);

/* True when a and b say the same (field by field, not byte by byte). */
bool renew_same_refers(const struct codec_refers *a, const struct codec_refers *b);

/* The id a renew replaces: the outermost wrapping's, else the envelope's. */
const char *renew_outer_id(const struct codec_envelope *env);

#endif

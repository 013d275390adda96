/*
 * codec_wrap.h - what wrapping codecs (VANSEnvelope, SBDH) share: their
 * base64 payload decoded under the caller's byte limit, the payload decoded
 * by the codec the registry picks, at most CODEC_WRAP_MAX wrappings deep,
 * and the envelope's record of the wrapping (layers[], txids[]).
 *
 * Size: the caller's max_bytes bounds every byte a decode holds at once.
 * A wrapping of n bytes leaves max_bytes - n for its decoded payload, which
 * leaves the rest for a payload it wraps in turn; so base64 expansion, and
 * a wrapping nested in a wrapping, count against the one limit.
 */
#ifndef EDIBROKER_CODEC_WRAP_H
#define EDIBROKER_CODEC_WRAP_H

#include <stddef.h>
#include <stdint.h>

#include "codecs/codec.h"

/* -1 with CODEC_ESTRUCTURE naming `what` when input read under lim is
 * already inside CODEC_WRAP_MAX wrappings; else 0. */
int wrap_check_depth(const struct codec_limits *lim, const char *what, struct codec_error *err);

/* Bytes left for the payload of a wrapping of outer_len bytes read under
 * lim (0 when none). */
size_t wrap_budget(const struct codec_limits *lim, size_t outer_len);

/* Decodes the base64 text[0..len) of a wrapping's payload into a new
 * buffer (*out, caller frees) of at most budget bytes. -1 with *err
 * (CODEC_ETOOBIG, or CODEC_ESYNTAX at an offset) naming `where` on failure,
 * *out untouched then. */
int wrap_base64(const char *text, size_t len, size_t budget, const char *where, uint8_t **out,
		size_t *outlen, struct codec_error *err);

/* Decodes payload[0..len), carried by a wrapping of outer_len bytes read
 * under lim, with the codec sniffing picks: one wrapping deeper, under
 * wrap_budget(), with the wrapping's charset (NULL: none). Then records
 * `layer` as env's outermost wrapping, env->codec as layer->codec and
 * env->inner as the payload's codec, and a txid for layer->id with the
 * payload's digest. Returns 0, or -1 with *err (the payload's error with
 * `where` in front) and env as the payload's codec left it, the layer
 * recorded all the same so a receipt can be addressed. */
int wrap_decode_payload(const uint8_t *payload, size_t len, const struct codec_limits *lim,
			size_t outer_len, const char *charset, const struct codec_layer *layer,
			const char *where, struct codec_envelope *env, struct codec_error *err);

/* Records `layer` alone in a cleared env (a wrapping that failed before
 * its payload): codec = layer->codec, inner NULL, nletters 0. */
void wrap_keep_layer(struct codec_envelope *env, const struct codec_layer *layer);

/* -1 with CODEC_EADDRESS when a letter's receiver is not `receiver` (the
 * GLN the wrapping addresses), naming `what`; nletters becomes 0 then and
 * refers is cleared, the rest of env stays for the receipt. 0 when all
 * agree. */
int wrap_check_receiver(struct codec_envelope *env, const char *receiver, const char *what,
			struct codec_error *err);

#endif

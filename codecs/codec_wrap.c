/*
 * codec_wrap.c - the nested decode wrapping codecs share (codec_wrap.h):
 * the depth and byte budget, the base64 payload, the payload's own codec
 * through the registry, and the envelope's record of the wrapping.
 *
 * Invariants: a payload is decoded only when it fits what is left of the
 * caller's byte limit and the nesting is within CODEC_WRAP_MAX; env->layers
 * stays outermost first (a wrapping records itself after its payload, so it
 * goes in front); every error names where it happened ("VANSEnvelope Data:
 * letter 1: ..."), never message content.
 */
#include "codecs/codec_wrap.h"

#include <stdio.h>
#include <string.h>

#include "codecs/base/base64.h"
#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"
#include "codecs/xmlsafe.h"

int wrap_check_depth(const struct codec_limits *lim, const char *what, struct codec_error *err)
{
	if (lim && lim->wrapped >= CODEC_WRAP_MAX)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE,
				    "%s nested inside %u wrappings; at most %u are allowed", what,
				    lim->wrapped, CODEC_WRAP_MAX);
	return 0;
}

size_t wrap_budget(const struct codec_limits *lim, size_t outer_len)
{
	size_t max = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	return outer_len < max ? max - outer_len : 0;
}

int wrap_base64(const char *text, size_t len, size_t budget, const char *where, uint8_t **out,
		size_t *outlen, struct codec_error *err)
{
	size_t size = base64_decoded_size(text, len), bad;
	if (size > budget)
		return xmlsafe_fail(err, CODEC_ETOOBIG,
				    "%s decodes to %zu bytes; %zu are left of the size limit", where,
				    size, budget);
	uint8_t *buf = xmalloc(size + 1);
	long n = base64_decode(text, len, buf, &bad);
	if (n < 0) {
		free(buf);
		return xmlsafe_fail(err, CODEC_ESYNTAX, "%s is not base64 (character %zu)", where,
				    bad + 1);
	}
	*out = buf;
	*outlen = (size_t)n;
	return 0;
}

/* Puts layer in front of env's wrappings, and its txid in front of env's. */
static void push_layer(struct codec_envelope *env, const struct codec_layer *layer,
		       const uint8_t digest[CODEC_DIGEST_LEN])
{
	if (env->nlayers < CODEC_WRAP_MAX) {
		memmove(&env->layers[1], &env->layers[0], env->nlayers * sizeof(env->layers[0]));
		env->layers[0] = *layer;
		env->nlayers++;
	}
	if (digest && env->ntxids < ARRAY_SIZE(env->txids)) {
		memmove(&env->txids[1], &env->txids[0], env->ntxids * sizeof(env->txids[0]));
		struct codec_txid *t = &env->txids[0];
		*t = (struct codec_txid){ .scope = layer->codec->name };
		str_copy(t->sender, layer->sender, sizeof(t->sender));
		str_copy(t->id, layer->id, sizeof(t->id));
		memcpy(t->digest, digest, CODEC_DIGEST_LEN);
		env->ntxids++;
	}
	env->codec = layer->codec;
}

void wrap_keep_layer(struct codec_envelope *env, const struct codec_layer *layer)
{
	memset(env, 0, sizeof(*env));
	push_layer(env, layer, NULL);
}

int wrap_decode_payload(const uint8_t *payload, size_t len, const struct codec_limits *lim,
			size_t outer_len, const char *charset, const struct codec_layer *layer,
			const char *where, struct codec_envelope *env, struct codec_error *err)
{
	struct codec_limits inner = {
		.max_bytes = wrap_budget(lim, outer_len),
		.max_depth = lim ? lim->max_depth : 0,
		.wrapped = (lim ? lim->wrapped : 0) + 1,
		.charset = charset,
		.schemas = lim ? lim->schemas : NULL,
	};
	uint8_t digest[CODEC_DIGEST_LEN];
	int r = inner.max_bytes == 0 ? -1 : codec_decode_any(payload, len, &inner, env, err);
	if (inner.max_bytes == 0) {
		memset(env, 0, sizeof(*env));
		xmlsafe_fail(err, CODEC_ETOOBIG, "no room left of the size limit");
	}
	if (r < 0) {
		char inner_text[sizeof(err->text)];
		memcpy(inner_text, err->text, sizeof(inner_text));
		xmlsafe_fail(err, err->code, "%s: %.200s", where, inner_text);
	}
	sha256(payload, len, digest);
	if (!env->inner) /* a bare payload whose codec left it unset */
		env->inner = env->codec;
	push_layer(env, layer, digest);
	return r;
}

int wrap_check_receiver(struct codec_envelope *env, const char *receiver, const char *what,
			struct codec_error *err)
{
	for (size_t i = 0; i < env->nletters; i++) {
		if (strcmp(env->letters[i].receiver, receiver) != 0) {
			env->nletters = 0;
			/* a refused acknowledgement acknowledges nothing */
			memset(&env->refers, 0, sizeof(env->refers));
			return xmlsafe_fail(err, CODEC_EADDRESS,
					    "%s %s is not the receiver %s of letter %zu (%s)", what,
					    receiver, env->letters[i].receiver, i + 1,
					    env->letters[i].id);
		}
	}
	return 0;
}

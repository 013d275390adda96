/*
 * codec.c - the codec registry and the error vocabulary shared by codecs.
 *
 * The receive side asks the registry for a codec by configured name, or
 * lets it sniff the first bytes, and asks the codec that decoded a message
 * for the receipt refusing it. Logging and quarantine turn a codec_errcode
 * into a stable token; the accept path turns it into a refusal reason,
 * which each codec words in its own format. The tables below are the only
 * place that lists codecs and error classes; adding a format (EDIFACT,
 * FHIR) is one line in `codecs`. Pure: no state changes.
 */
#include "codecs/codec.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/edifact.h"
#include "codecs/fhir.h"
#include "codecs/oioxml.h"
#include "codecs/sbdh.h"
#include "codecs/vans.h"
#include "codecs/base/mem.h"

/* Sniff order matters once formats overlap; first match wins. */
static const struct codec *const codecs[] = {
	&codec_oioxml,
	&codec_edifact,
	&codec_vans,
	&codec_sbdh,
	&codec_fhir_xml,
	&codec_fhir_json,
};

/* Indexed by enum codec_errcode: token for logs, why it is refused. */
static const struct {
	const char *name;
	enum codec_refusal refusal;
} errcodes[] = {
	[CODEC_OK] = { "ok", CODEC_REFUSE_UNSPECIFIED },
	[CODEC_ETOOBIG] = { "too-big", CODEC_REFUSE_SYNTAX },
	[CODEC_EENCODING] = { "encoding", CODEC_REFUSE_SYNTAX },
	[CODEC_ESYNTAX] = { "syntax", CODEC_REFUSE_SYNTAX },
	[CODEC_EHOSTILE] = { "hostile", CODEC_REFUSE_SYNTAX },
	[CODEC_EDEPTH] = { "depth", CODEC_REFUSE_SYNTAX },
	[CODEC_ESTRUCTURE] = { "structure", CODEC_REFUSE_SYNTAX },
	[CODEC_EFIELD] = { "field", CODEC_REFUSE_SYNTAX },
	[CODEC_ETYPE] = { "type", CODEC_REFUSE_SYNTAX },
	[CODEC_EVERSION] = { "version", CODEC_REFUSE_VERSION },
	[CODEC_EADDRESS] = { "address", CODEC_REFUSE_RECEIVER_ID },
	[CODEC_EEXPENSIVE] = { "too-expensive", CODEC_REFUSE_SYNTAX },
	[CODEC_ESCHEMA] = { "schema", CODEC_REFUSE_SYNTAX },
};
_Static_assert(ARRAY_SIZE(errcodes) == CODEC_ERRCODE_LAST + 1, "a name for every error class");

const struct codec *codec_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(codecs); i++)
		if (strcmp(codecs[i]->name, name) == 0)
			return codecs[i];
	return NULL;
}

const struct codec *codec_sniff(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(codecs); i++)
		if (codecs[i]->sniff(buf, len))
			return codecs[i];
	return NULL;
}

const char *codec_errcode_name(enum codec_errcode code)
{
	if ((size_t)code < ARRAY_SIZE(errcodes) && errcodes[code].name)
		return errcodes[code].name;
	return "unknown";
}

enum codec_refusal codec_errcode_refusal(enum codec_errcode code)
{
	if ((size_t)code < ARRAY_SIZE(errcodes))
		return errcodes[code].refusal;
	return CODEC_REFUSE_UNSPECIFIED;
}

int codec_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		 struct codec_receipt *out)
{
	assert(env && p && out);
	if (!env->codec || !env->codec->refuse)
		return -ENOTSUP;
	return env->codec->refuse(env, p, out);
}

int codec_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		const struct codec_refusal_params *p, struct codec_receipt *out)
{
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	assert(p && out);
	const struct codec *c = len <= max_bytes ? codec_sniff(buf, len) : NULL;
	if (!c || !c->renew)
		return -ENOTSUP;
	return c->renew(buf, len, lim, p, out);
}

const char *codec_ack_name(enum codec_ack code)
{
	static const char *const names[] = {
		[CODEC_ACK_NONE] = "none", [CODEC_ACK_POSITIVE] = "positive",
		[CODEC_ACK_NEGATIVE] = "negative", [CODEC_ACK_TRANSIENT] = "transient",
	};
	return (size_t)code < ARRAY_SIZE(names) ? names[code] : "unknown";
}

int codec_decode_any(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		     struct codec_envelope *env, struct codec_error *err)
{
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	assert(env && err);
	const struct codec *c = len <= max_bytes ? codec_sniff(buf, len) : NULL;
	if (c)
		return c->decode(buf, len, lim, env, err);
	memset(env, 0, sizeof(*env));
	err->code = len > max_bytes ? CODEC_ETOOBIG : CODEC_ESTRUCTURE;
	snprintf(err->text, sizeof(err->text), len > max_bytes ? "message is %zu bytes, limit %zu"
							       : "no codec recognises the input (%zu bytes)",
		 len, max_bytes);
	return -1;
}

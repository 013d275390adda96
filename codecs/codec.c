/*
 * codec.c - the codec registry and the error vocabulary shared by codecs.
 *
 * The receive side asks the registry for a codec by configured name, or
 * lets it sniff the first bytes; the receipt and logging code turn a
 * codec_errcode into a stable token and a MedCom RefuseCode. The tables
 * below are the only place that lists codecs and error names; adding a
 * format (EDIFACT, FHIR) is one line in `codecs`. Pure: no state changes.
 */
#include "codecs/codec.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "codecs/oioxml.h"
#include "codecs/base/mem.h"

/* Sniff order matters once formats overlap; first match wins. */
static const struct codec *const codecs[] = {
	&codec_oioxml,
};

/* Indexed by enum codec_errcode: token for logs, RefuseCode for receipts. */
static const struct {
	const char *name;
	const char *refuse;
} errcodes[] = {
	[CODEC_OK] = { "ok", "ikke_specificeret" },
	[CODEC_ETOOBIG] = { "too-big", "syntaksfejl" },
	[CODEC_EENCODING] = { "encoding", "syntaksfejl" },
	[CODEC_ESYNTAX] = { "syntax", "syntaksfejl" },
	[CODEC_EHOSTILE] = { "hostile", "syntaksfejl" },
	[CODEC_EDEPTH] = { "depth", "syntaksfejl" },
	[CODEC_ESTRUCTURE] = { "structure", "syntaksfejl" },
	[CODEC_EFIELD] = { "field", "syntaksfejl" },
	[CODEC_ETYPE] = { "type", "syntaksfejl" },
	[CODEC_EVERSION] = { "version", "problem_med_version" },
};

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

const char *codec_refuse_code(enum codec_errcode code)
{
	if ((size_t)code < ARRAY_SIZE(errcodes) && errcodes[code].refuse)
		return errcodes[code].refuse;
	return "ikke_specificeret";
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

/*
 * fuzz_check.h - the invariants every decoder's fuzz target checks, shared
 * by fuzz_vans.c, fuzz_sbdh.c, fuzz_fhir_xml.c and fuzz_fhir_json.c: the
 * codec.h contract of a decoded or refused envelope, and that a refusal,
 * when the format gives one, is a receipt the registry reads back as one,
 * addressed to the refused message's sender. A broken invariant aborts, so
 * libFuzzer keeps the input. Static functions: each target includes it once.
 */
#ifndef EDIBROKER_FUZZ_CHECK_H
#define EDIBROKER_FUZZ_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/codec.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* NUL within the array, no control bytes before it, non-empty unless allowed. */
static bool fz_field(const char *s, size_t arrsz, bool may_be_empty)
{
	const char *nul = memchr(s, 0, arrsz);
	if (!nul || (!may_be_empty && nul == s))
		return false;
	for (const char *p = s; p < nul; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			return false;
	return true;
}

#define FZ_FIELD(s, empty_ok) fz_field((s), sizeof(s), (empty_ok))

static void fz_check_letter(const struct codec_letter *l, bool whole)
{
	CHECK(FZ_FIELD(l->id, !whole));
	CHECK(FZ_FIELD(l->type, true));
	CHECK(FZ_FIELD(l->version, true));
	CHECK(FZ_FIELD(l->sender, !whole));
	CHECK(FZ_FIELD(l->receiver, !whole));
	CHECK(FZ_FIELD(l->sender_sor, true) && FZ_FIELD(l->receiver_sor, true));
}

static void fz_check_envelope(const struct codec_envelope *e, int r, const struct codec_error *err)
{
	CHECK(e->nlayers <= CODEC_WRAP_MAX && e->ntxids <= CODEC_WRAP_MAX + 1);
	CHECK(FZ_FIELD(e->envelope_id, true) && FZ_FIELD(e->encoding, true));
	for (size_t i = 0; i < e->nlayers; i++) {
		CHECK(e->layers[i].codec != NULL);
		CHECK(FZ_FIELD(e->layers[i].id, true) && FZ_FIELD(e->layers[i].sender, true));
		CHECK(FZ_FIELD(e->layers[i].receiver, true));
	}
	CHECK(e->nlayers == 0 || e->layers[0].codec == e->codec);
	if (r == 0) {
		CHECK(err->code == CODEC_OK);
		CHECK(e->inner != NULL);
		CHECK(e->nletters >= 1 && e->nletters <= CODEC_MAX_LETTERS);
		for (size_t i = 0; i < e->nletters; i++)
			fz_check_letter(&e->letters[i], true);
		for (size_t i = 0; i < e->ntxids; i++)
			CHECK(e->txids[i].scope && e->txids[i].id[0] && e->txids[i].sender[0]);
		return;
	}
	CHECK(r == -1);
	CHECK(err->code > CODEC_OK && err->code <= CODEC_ERRCODE_LAST);
	CHECK(memchr(err->text, 0, sizeof(err->text)) && err->text[0] != '\0');
	for (const char *p = err->text; *p; p++)
		CHECK(*p >= 0x20 && *p <= 0x7E);
	CHECK(e->nletters == 0);
	fz_check_letter(&e->letters[0], false);
}

static void fz_id(void *ctx, char id[CODEC_ID_MAX])
{
	int *n = ctx;
	snprintf(id, CODEC_ID_MAX, "FUZZ%d", ++*n % 1000);
}

static void fz_uuid(void *ctx, char uuid[CODEC_UUID_LEN + 1])
{
	int *n = ctx;
	snprintf(uuid, CODEC_UUID_LEN + 1, "00000000-0000-4000-8000-%012d", ++*n % 1000);
}

/* A refusal is -ENOTSUP for a receipt; otherwise either -EINVAL or a
 * receipt; with read_back (a broker GLN given), one that decodes back as a
 * receipt. The one exception: a wrapping
 * whose sender disagrees with its letters' (or is not a GLN) gets a
 * receipt addressed to each as it came, which the registry then refuses
 * as CODEC_EADDRESS, as it would the original's mirror image. */
static void fz_check_refusal(const struct codec_envelope *e, const char *gln, bool read_back)
{
	int ids = 0;
	struct codec_refusal_params p = {
		.reason = CODEC_REFUSE_UNKNOWN_RECEIVER, .text = "fuzz <&>\nx",
		.broker_id = "FUZZBROKER", .broker_gln = gln,
		.now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15 },
		.fresh_id = fz_id, .fresh_uuid = fz_uuid, .ctx = &ids,
	};
	struct codec_receipt rc;
	int r = codec_refuse(e, &p, &rc);
	if (e->is_receipt) {
		CHECK(r == -ENOTSUP);
		return;
	}
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		return;
	CHECK(rc.body && rc.size > 0 && rc.receiver[0] && rc.key.sender[0] && rc.key.id[0]);
	if (!read_back) { /* a FHIR acknowledgement names its sender by GLN only */
		free(rc.body);
		return;
	}
	struct codec_envelope *back = malloc(sizeof(*back));
	struct codec_error err;
	CHECK(back);
	if (codec_decode_any(rc.body, rc.size, NULL, back, &err) == 0) {
		CHECK(back->is_receipt);
		CHECK(strcmp(back->codec->name, rc.format) == 0);
	} else {
		CHECK(err.code == CODEC_EADDRESS);
	}
	free(back);
	free(rc.body);
}

#endif

/*
 * fuzz_acks.h - the invariants every decoder's fuzz target checks of what
 * issue 11 added to a decoded envelope: what an acknowledgement refers to
 * (env->refers), its renewal as a new transmission (codec renew), and the
 * verdict of schema validation (env->schema) for the targets that pass
 * the schemas the daemon ships (data/xsd/oioxml, read from the working
 * directory: `make fuzz` and the replay in `make check` run from the
 * repository root; a target that cannot load them aborts, so a fuzz run
 * never quietly skips validation). Static functions: each target includes
 * it once. A broken invariant aborts, so libFuzzer keeps the input.
 */
#ifndef EDIBROKER_FUZZ_ACKS_H
#define EDIBROKER_FUZZ_ACKS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/codec.h"
#include "codecs/renew.h"
#include "codecs/xsd.h"

#define FZA_CHECK(cond)                                                                            \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* NUL within the array, printable ASCII before it. */
static bool fza_text(const char *s, size_t arrsz)
{
	const char *nul = memchr(s, 0, arrsz);
	if (!nul)
		return false;
	for (const char *p = s; p < nul; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			return false;
	return true;
}

#define FZA_TEXT(s) fza_text((s), sizeof(s))

/* The schemas the daemon ships, loaded once. */
static __attribute__((unused)) const struct codec_schemas *fza_schemas(void)
{
	static struct codec_schemas *s;
	if (!s) {
		char err[512];
		s = codec_schemas_load("data/xsd/oioxml", err, sizeof(err));
		if (!s) {
			fprintf(stderr, "fuzz target: %s (run from the repository root)\n", err);
			abort();
		}
	}
	return s;
}

/* refers: set only for an acknowledgement, bounded and clean; every ref
 * names a sender and what it acknowledges. */
static void fza_check_refers(const struct codec_envelope *e, int r)
{
	const struct codec_refers *rf = &e->refers;
	FZA_CHECK(rf->code >= CODEC_ACK_NONE && rf->code <= CODEC_ACK_TRANSIENT);
	FZA_CHECK(rf->n <= CODEC_REFERS_MAX);
	FZA_CHECK(FZA_TEXT(rf->detail));
	FZA_CHECK(!rf->scope || strcmp(rf->scope, "vans") == 0);
	if (r != 0 || !e->is_receipt) {
		FZA_CHECK(rf->code == CODEC_ACK_NONE && rf->n == 0);
		return;
	}
	FZA_CHECK((rf->n == 0) == (rf->code == CODEC_ACK_NONE));
	for (size_t i = 0; i < rf->n; i++) {
		const struct codec_ref *x = &rf->refs[i];
		FZA_CHECK(FZA_TEXT(x->sender) && x->sender[0]);
		FZA_CHECK(FZA_TEXT(x->envelope_id) && FZA_TEXT(x->letter_id));
		FZA_CHECK(x->envelope_id[0] || x->letter_id[0]);
		FZA_CHECK(!rf->scope || x->envelope_id[0]);
	}
}

/* The schema verdict: only asked-for validation gives one, and its text
 * is one printable line (empty for a valid document). */
static void fza_check_schema(const struct codec_envelope *e, int r, bool asked)
{
	FZA_CHECK(e->schema >= CODEC_SCHEMA_UNCHECKED && e->schema <= CODEC_SCHEMA_MISSING);
	FZA_CHECK(FZA_TEXT(e->schema_text));
	if (!asked)
		FZA_CHECK(e->schema == CODEC_SCHEMA_UNCHECKED);
	if (e->schema == CODEC_SCHEMA_VALID || e->schema == CODEC_SCHEMA_UNCHECKED)
		FZA_CHECK(e->schema_text[0] == '\0');
	else
		FZA_CHECK(e->schema_text[0] != '\0');
}

static void fza_id(void *ctx, char id[CODEC_ID_MAX])
{
	snprintf(id, CODEC_ID_MAX, "FZRENEW%d", ++*(int *)ctx % 1000);
}

static void fza_uuid(void *ctx, char uuid[CODEC_UUID_LEN + 1])
{
	snprintf(uuid, CODEC_UUID_LEN + 1, "00000000-0000-4000-8000-%012d", ++*(int *)ctx % 1000);
}

/* Renewal: none for what is no acknowledgement; for one, either -EINVAL
 * or a copy that decodes to the same acknowledgement under a new id. */
static void fza_check_renew(const uint8_t *data, size_t size, const struct codec_envelope *e,
			    int r)
{
	int ids = 0;
	struct codec_refusal_params p = { .broker_id = "FUZZBROKER", .fresh_id = fza_id,
					  .fresh_uuid = fza_uuid, .ctx = &ids };
	struct codec_receipt rc;
	int rr = codec_renew(data, size, NULL, &p, &rc);
	if (r != 0 || !e->is_receipt) {
		FZA_CHECK(rr == -ENOTSUP || rr == -EINVAL);
		return;
	}
	FZA_CHECK(rr == 0 || rr == -EINVAL);
	if (rr < 0)
		return;
	FZA_CHECK(ids == 1 && rc.body && rc.size > 0 && rc.key.id[0] == '\0');
	struct codec_envelope *back = malloc(sizeof(*back));
	struct codec_error err;
	FZA_CHECK(back);
	FZA_CHECK(codec_decode_any(rc.body, rc.size, NULL, back, &err) == 0);
	FZA_CHECK(back->is_receipt && back->nletters == e->nletters);
	FZA_CHECK(renew_same_refers(&back->refers, &e->refers));
	FZA_CHECK(strcmp(back->nlayers ? back->layers[0].id : back->envelope_id, rc.envelope_id) == 0);
	free(back);
	free(rc.body);
}

#endif

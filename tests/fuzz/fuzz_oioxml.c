/*
 * fuzz_oioxml.c - libFuzzer target for the OIOXML codec and, behind it,
 * the xmlsafe parser policy and the codec's refusal (an XCTL01 receipt).
 *
 * Every input is decoded under the daemon's real limits; the result must keep the
 * codec.h contract whether it succeeds or not (terminated, bounded, clean
 * fields; nletters 0 and a printable error on failure). A decoded or
 * partly decoded envelope that can address a negative receipt must yield
 * one that the codec itself decodes back as an XCTL01 to the original
 * sender. Every input is also validated against the schemas the daemon
 * ships, and what an acknowledgement refers to and its renewal are checked
 * (fuzz_acks.h). Invariant failures abort() so libFuzzer saves the input.
 * Built by `make fuzz` (clang, libFuzzer) and replayed by replay_main.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/codec.h"
#include "codecs/oioxml.h"
#include "codecs/base/mem.h"
#include "tests/fuzz/fuzz_acks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* NUL within the array, at most max bytes before it, no control bytes. */
static bool clean_field(const char *s, size_t arrsz, size_t max, bool may_be_empty)
{
	const char *nul = memchr(s, 0, arrsz);
	if (!nul || (size_t)(nul - s) > max || (!may_be_empty && nul == s))
		return false;
	for (const char *p = s; p < nul; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			return false;
	return true;
}

#define FIELD(s, max, empty_ok) clean_field((s), sizeof(s), (max), (empty_ok))

/* Types the codec knows and checks; any other type (or none) is routed. */
static bool known_type(const char *t)
{
	static const char *const known[] = { "XDIS14", "XDIS16", "XDIS17", "XDIS18", "XDIS19",
					     "XDIS20", "XDIS21", "XDIS91", "XCTL01", "XCTL02",
					     "XCTL03" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(t, known[i]) == 0)
			return true;
	return false;
}

static void check_letter(const struct codec_letter *l)
{
	CHECK(FIELD(l->id, 14, false));
	CHECK(FIELD(l->type, 8, true));
	CHECK(FIELD(l->version, 7, false));
	CHECK(FIELD(l->sender, 35, false));
	CHECK(FIELD(l->receiver, 35, false));
	if (known_type(l->type))
		CHECK(strlen(l->version) == 7 && l->version[0] == 'X' &&
		      l->version[1] == l->type[1]);
}

static void check_decoded(const uint8_t *data, size_t size, const struct codec_envelope *e,
			  const struct codec_error *err)
{
	bool receipts = true;
	CHECK(err->code == CODEC_OK);
	CHECK(e->codec == &codec_oioxml && e->inner == &codec_oioxml && e->nlayers == 0);
	CHECK(e->nletters >= 1 && e->nletters <= CODEC_MAX_LETTERS);
	CHECK(FIELD(e->envelope_id, 14, false));
	CHECK(FIELD(e->encoding, sizeof(e->encoding) - 1, false));
	CHECK(memchr(e->sent, 0, sizeof(e->sent)) && strlen(e->sent) == 16 && e->sent[10] == 'T');
	for (size_t i = 0; i < e->nletters; i++) {
		check_letter(&e->letters[i]);
		receipts = receipts && strncmp(e->letters[i].type, "XCTL", 4) == 0;
	}
	CHECK(e->is_receipt == receipts);
	CHECK(codec_oioxml.sniff(data, size)); /* what decodes must also sniff */
}

static void check_failed(int r, const struct codec_envelope *e, const struct codec_error *err)
{
	CHECK(r == -1);
	CHECK(err->code > CODEC_OK && err->code <= CODEC_ERRCODE_LAST);
	CHECK(memchr(err->text, 0, sizeof(err->text)) && err->text[0] != '\0');
	for (const char *p = err->text; *p; p++)
		CHECK(*p >= 0x20 && *p <= 0x7E);
	CHECK(e->nletters == 0); /* is_receipt may be set: a refused receipt stays one */
	CHECK(FIELD(e->envelope_id, 14, true));
	CHECK(FIELD(e->letters[0].sender, 35, true));
	CHECK(FIELD(e->letters[0].id, 14, true));
}

static void fuzz_id(void *ctx, char id[CODEC_ID_MAX])
{
	int *n = ctx;
	snprintf(id, CODEC_ID_MAX, "FUZZ%d", ++*n % 1000);
}

/* An addressable original must give a receipt that decodes back; a receipt
 * gets none. */
static void check_receipt(const struct codec_envelope *e)
{
	int ids = 0;
	struct codec_refusal_params p = {
		.reason = CODEC_REFUSE_SYNTAX, .text = "fuzz <&>\nx", .broker_id = "FUZZBROKER",
		.now = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8, .tm_min = 15 },
		.fresh_id = fuzz_id, .ctx = &ids,
	};
	struct codec_receipt rc;
	int r = codec_refuse(e, &p, &rc);
	if (e->is_receipt) {
		CHECK(r == -ENOTSUP);
		return;
	}
	if (!e->envelope_id[0] || !e->letters[0].sender[0]) {
		CHECK(r == -EINVAL);
		return;
	}
	CHECK(r == 0 && ids == 1);
	struct codec_envelope *back = malloc(sizeof(*back));
	struct codec_error err;
	CHECK(back && codec_oioxml.decode(rc.body, rc.size, NULL, back, &err) == 0);
	CHECK(back->is_receipt && back->nletters == 1);
	CHECK(strcmp(back->letters[0].receiver, e->letters[0].sender) == 0);
	CHECK(strcmp(back->letters[0].receiver, rc.receiver) == 0);
	CHECK(strcmp(back->letters[0].type, "XCTL01") == 0 && strcmp(rc.type, "XCTL01") == 0);
	CHECK(strcmp(back->envelope_id, rc.envelope_id) == 0);
	free(back);
	free(rc.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the daemon's real limits: what a partner's file meets in production,
	 * with the schema validation an endpoint's xsd = warn | enforce asks for */
	const struct codec_limits lim = { .max_bytes = CODEC_DEFAULT_MAX_BYTES,
					  .max_depth = CODEC_DEFAULT_MAX_DEPTH,
					  .schemas = fza_schemas() };
	struct codec_envelope *env = malloc(sizeof(*env));
	struct codec_error err;
	CHECK(env);
	int r = codec_oioxml.decode(data, size, &lim, env, &err);
	if (r == 0)
		check_decoded(data, size, env, &err);
	else
		check_failed(r, env, &err);
	fza_check_refers(env, r);
	fza_check_schema(env, r, true);
	CHECK(r != 0 || env->schema != CODEC_SCHEMA_UNCHECKED);
	fza_check_renew(data, size, env, r);
	check_receipt(env);
	free(env);
	return 0;
}

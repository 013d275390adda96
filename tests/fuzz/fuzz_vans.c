/*
 * fuzz_vans.c - libFuzzer target for the VANSEnvelope codec (vans.c,
 * vans_receipt.c) and, through its payload, the nested decode
 * (codec_wrap.c) and every codec the registry hands a payload to.
 *
 * Each input is decoded under the real limits (codec.h defaults); the
 * result must keep the codec.h contract, and its refusal must be a
 * receipt that reads back as one (fuzz_check.h), with and without a
 * broker GLN. Built by `make fuzz`, replayed by replay_main.c over
 * tests/fuzz/corpus/vans (copies of the samples and hand-made wrappings).
 */
#include <stdlib.h>

#include "codecs/vans.h"
#include "tests/fuzz/fuzz_acks.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct codec_envelope *env = malloc(sizeof(*env));
	struct codec_error err;
	CHECK(env);
	/* the schemas an endpoint's xsd = warn | enforce passes to the payload */
	const struct codec_limits lim = { .schemas = fza_schemas() };
	int r = codec_vans.decode(data, size, &lim, env, &err);
	fz_check_envelope(env, r, &err);
	CHECK(env->codec == &codec_vans);
	fza_check_refers(env, r);
	fza_check_schema(env, r, true);
	fza_check_renew(data, size, env, r);
	fz_check_refusal(env, NULL, false);
	fz_check_refusal(env, "5790000000000", true);
	free(env);
	return 0;
}

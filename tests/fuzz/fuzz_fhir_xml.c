/*
 * fuzz_fhir_xml.c - libFuzzer target for FHIR in XML (fhir_xml.c over xmlsafe),
 * the FHIR core (fhir.c) and the Acknowledgement it writes.
 *
 * Each input is decoded under the real limits (codec.h defaults); the
 * result must keep the codec.h contract, and its refusal must be an
 * Acknowledgement (fuzz_check.h), which the registry reads back as one
 * when the broker has a GLN (without one its sender has none). Built by `make fuzz`, replayed by replay_main.c over
 * tests/fuzz/corpus/fhir_xml (copies of the samples and hand-made edits).
 */
#include <stdlib.h>

#include "codecs/fhir.h"
#include "tests/fuzz/fuzz_acks.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct codec_envelope *env = malloc(sizeof(*env));
	struct codec_error err;
	CHECK(env);
	int r = codec_fhir_xml.decode(data, size, NULL, env, &err);
	fz_check_envelope(env, r, &err);
	CHECK(env->codec == &codec_fhir_xml);
	CHECK(r != 0 || env->ntxids == 1);
	fza_check_refers(env, r);
	fza_check_schema(env, r, false);
	fza_check_renew(data, size, env, r);
	fz_check_refusal(env, NULL, false);
	fz_check_refusal(env, "5790000000000", true);
	free(env);
	return 0;
}

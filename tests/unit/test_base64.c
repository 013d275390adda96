/*
 * test_base64.c - the codecs' base64 (codecs/base/base64.c) and SHA-256
 * (codecs/base/sha256.c): the RFC 4648 test vectors both ways, whitespace
 * between characters, every kind of malformed input with the offset it is
 * reported at, the size promised before decoding, a round trip over all
 * lengths up to 300; and the FIPS 180-4 / NIST digests, fed whole and in
 * pieces that straddle block boundaries.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "codecs/base/base64.h"
#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"

static void expect_decodes(const char *text, const char *want)
{
	size_t len = strlen(text), bad = 999;
	size_t size = base64_decoded_size(text, len);
	uint8_t *out = xmalloc(size + 1);
	long n = base64_decode(text, len, out, &bad);
	cr_assert_eq(n, (long)strlen(want), "'%s' decoded to %ld bytes", text, n);
	cr_assert_eq(size, strlen(want), "'%s': size %zu promised", text, size);
	cr_assert_arr_eq(out, want, (size_t)n, "'%s'", text);
	free(out);
}

static void expect_bad(const char *text, size_t at)
{
	size_t len = strlen(text), bad = 999;
	uint8_t *out = xmalloc(base64_decoded_size(text, len) + 4);
	cr_assert_eq(base64_decode(text, len, out, &bad), -1, "'%s' decoded", text);
	cr_assert_eq(bad, at, "'%s': bad at %zu, want %zu", text, bad, at);
	free(out);
}

Test(base64, rfc4648_vectors_decode)
{
	expect_decodes("", "");
	expect_decodes("Zg==", "f");
	expect_decodes("Zm8=", "fo");
	expect_decodes("Zm9v", "foo");
	expect_decodes("Zm9vYg==", "foob");
	expect_decodes("Zm9vYmE=", "fooba");
	expect_decodes("Zm9vYmFy", "foobar");
}

Test(base64, rfc4648_vectors_encode)
{
	const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		size_t n;
		_cleanup_free_ char *s = base64_encode(in[i], strlen(in[i]), &n);
		cr_assert_str_eq(s, out[i]);
		cr_assert_eq(n, strlen(out[i]));
	}
}

Test(base64, xml_whitespace_is_skipped_anywhere)
{
	expect_decodes("\n  Zm9v\r\n\tYmFy \n", "foobar");
	expect_decodes("Z m 9 v Y g = =", "foob");
}

Test(base64, malformed_input_is_refused_at_its_offset)
{
	expect_bad("Zm9v!mFy", 4);      /* not in the alphabet */
	expect_bad("Zm9vYmF", 7);       /* last group incomplete: reported at the end */
	expect_bad("Zm9vY", 5);
	expect_bad("Z===", 1);          /* padding too early */
	expect_bad("Zg==Zm9v", 4);      /* data after the padding */
	expect_bad("Zg=a", 3);          /* data after a '=' in the group */
	expect_bad("Zh==", 3);          /* non-zero spare bits: not the one encoding of "f" */
	expect_bad("Zm9=", 3);
	expect_bad("Zm9v\x01", 4);      /* control character */
	expect_bad("Zm-v", 2);          /* base64url is not base64 */
	expect_bad("Zm9v=", 4);         /* a '=' opening a group: the size must still cover "foo" */
	expect_bad("Zm9vYm=", 7);
}

Test(base64, every_length_round_trips)
{
	uint8_t data[300];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + 7);
	for (size_t n = 0; n <= sizeof(data); n++) {
		size_t len, bad;
		_cleanup_free_ char *t = base64_encode(data, n, &len);
		cr_assert_eq(base64_decoded_size(t, len), n);
		_cleanup_free_ uint8_t *back = xmalloc(n + 1);
		cr_assert_eq(base64_decode(t, len, back, &bad), (long)n);
		cr_assert_arr_eq(back, data, n);
	}
}

static void hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
	for (int i = 0; i < SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect_digest(const void *p, size_t n, const char *want)
{
	uint8_t d[SHA256_LEN];
	char h[2 * SHA256_LEN + 1];
	sha256(p, n, d);
	hex(d, h);
	cr_assert_str_eq(h, want);
}

Test(sha256, fips_180_vectors)
{
	expect_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	expect_digest(two, strlen(two),
		      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, a_million_a_in_uneven_pieces)
{
	static uint8_t a[1000000];
	memset(a, 'a', sizeof(a));
	struct sha256 s;
	uint8_t d[SHA256_LEN];
	char h[2 * SHA256_LEN + 1];
	sha256_init(&s);
	for (size_t off = 0, step = 1; off < sizeof(a); off += step, step = step * 3 % 127 + 1)
		sha256_update(&s, a + off, off + step > sizeof(a) ? sizeof(a) - off : step);
	sha256_final(&s, d);
	hex(d, h);
	cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, padding_boundaries_55_56_63_64_bytes)
{
	/* Digests from an independent implementation (Python hashlib). */
	static const char *want[] = {
		"9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", /* 55 */
		"b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a", /* 56 */
		"7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34", /* 63 */
		"ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", /* 64 */
	};
	static const size_t lens[] = { 55, 56, 63, 64 };
	char a[64];
	memset(a, 'a', sizeof(a));
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++)
		expect_digest(a, lens[i], want[i]);
}

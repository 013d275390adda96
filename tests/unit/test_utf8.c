/*
 * test_utf8.c - strict UTF-8 (codecs/base/utf8.c): decoding every class of
 * bad sequence (stray continuation bytes, overlong forms, surrogates, code
 * points above U+10FFFF, impossible lead bytes, sequences cut short or
 * interrupted), the code-point boundaries of each length, valid prefixes,
 * cuts at character boundaries and encoding; plus an exhaustive check that
 * every accepted sequence of up to three bytes is the one encoding of its
 * code point.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

/* decode(s) must be len bytes with code point cp. */
static void expect_char(const char *s, size_t len, uint32_t cp)
{
	uint32_t got = 0xDEADBEEF;
	cr_expect_eq(utf8_decode(s, strlen(s), &got), len, "length of %s", s);
	cr_expect_eq(got, cp, "code point U+%04X, want U+%04X", got, cp);
}

/* decode of the n bytes at s must fail and leave cp alone. */
static void expect_bad(const char *s, size_t n, const char *why)
{
	uint32_t cp = 42;
	cr_expect_eq(utf8_decode(s, n, &cp), 0, "%s accepted", why);
	cr_expect_eq(cp, 42, "%s: cp changed", why);
	cr_expect_not(utf8_valid(s, n), "%s valid", why);
}

Test(utf8, decodes_the_boundaries_of_each_length)
{
	expect_char("A", 1, 0x41);
	expect_char("\x7F", 1, 0x7F);
	expect_char("\xC2\x80", 2, 0x80);
	expect_char("\xC3\xA6", 2, 0xE6); /* æ */
	expect_char("\xDF\xBF", 2, 0x7FF);
	expect_char("\xE0\xA0\x80", 3, 0x800);
	expect_char("\xED\x9F\xBF", 3, 0xD7FF); /* last before the surrogates */
	expect_char("\xEE\x80\x80", 3, 0xE000); /* first after them */
	expect_char("\xEF\xBF\xBD", 3, 0xFFFD);
	expect_char("\xEF\xBF\xBF", 3, 0xFFFF);
	expect_char("\xF0\x90\x80\x80", 4, 0x10000);
	expect_char("\xF0\x9F\x98\x80", 4, 0x1F600);
	expect_char("\xF4\x8F\xBF\xBF", 4, 0x10FFFF);
	uint32_t cp = 7;
	cr_expect_eq(utf8_decode("", 1, &cp), 1, "NUL is a character");
	cr_expect_eq(cp, 0);
	cr_expect_eq(utf8_decode("\xC3\xA6", 2, NULL), 2, "cp may be NULL");
}

Test(utf8, refuses_every_class_of_bad_sequence)
{
	cr_expect_eq(utf8_decode("A", 0, NULL), 0, "no bytes, no character");
	expect_bad("\x80", 1, "lone continuation byte");
	expect_bad("\xBF", 1, "lone continuation byte BF");
	expect_bad("\xC0\xAF", 2, "overlong '/' (C0)");
	expect_bad("\xC1\xBF", 2, "overlong 7F (C1)");
	expect_bad("\xE0\x80\xAF", 3, "overlong 3-byte '/'");
	expect_bad("\xE0\x9F\xBF", 3, "overlong 3-byte 7FF");
	expect_bad("\xF0\x80\x80\xAF", 4, "overlong 4-byte '/'");
	expect_bad("\xF0\x8F\xBF\xBF", 4, "overlong 4-byte FFFF");
	expect_bad("\xED\xA0\x80", 3, "high surrogate D800");
	expect_bad("\xED\xBF\xBF", 3, "low surrogate DFFF");
	expect_bad("\xED\xA0\xBD\xED\xB8\x80", 6, "CESU-8 surrogate pair");
	expect_bad("\xF4\x90\x80\x80", 4, "U+110000");
	expect_bad("\xF5\x80\x80\x80", 4, "lead F5");
	expect_bad("\xF8\x88\x80\x80\x80", 5, "5-byte form");
	expect_bad("\xFC\x84\x80\x80\x80\x80", 6, "6-byte form");
	expect_bad("\xFE", 1, "FE");
	expect_bad("\xFF", 1, "FF");
	expect_bad("\xC3", 1, "2-byte cut short");
	expect_bad("\xE2\x82", 2, "3-byte cut short");
	expect_bad("\xF0\x9F\x98", 3, "4-byte cut short");
	expect_bad("\xC3(", 2, "2-byte interrupted by ASCII");
	expect_bad("\xE2\x28\xA1", 3, "3-byte, bad second byte");
	expect_bad("\xE2\x82\x28", 3, "3-byte, bad third byte");
	expect_bad("\xF0\x9F\x98\x28", 4, "4-byte, bad fourth byte");
	expect_bad("\xC3\xC3\xA6", 3, "lead followed by a lead");
	/* n limits what is read: a whole sequence in memory, but not in n */
	cr_expect_eq(utf8_decode("\xE2\x82\xAC", 2, NULL), 0);
}

Test(utf8, span_is_the_longest_valid_prefix)
{
	cr_expect_eq(utf8_span("", 0), 0);
	cr_expect_eq(utf8_span("abc", 3), 3);
	cr_expect_eq(utf8_span("Taarb\xC3\xA6k", 8), 8);
	cr_expect_eq(utf8_span("Taarb\xE6k", 7), 5, "Latin-1 byte");
	cr_expect_eq(utf8_span("ab\xF0\x9F\x98\x80", 6), 6);
	cr_expect_eq(utf8_span("ab\xF0\x9F\x98\x80", 5), 2, "last character cut short");
	cr_expect_eq(utf8_span("a\xED\xA0\x80z", 5), 1, "surrogate");
	cr_expect_eq(utf8_span("a\0b", 3), 3, "NUL is valid");
	cr_expect(utf8_valid("\xE2\x82\xAC 5", 5));
	cr_expect_not(utf8_valid("\xE2\x82\xAC\x80", 4));
}

Test(utf8, cut_ends_on_a_character_boundary)
{
	const char *s = "a\xC3\xA6\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a æ € 😀 z: 1+2+3+4+1 */
	size_t n = strlen(s);
	/* max -> cut: inside a character the cut moves back to its start */
	static const size_t want[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11, 11 };
	for (size_t max = 0; max < ARRAY_SIZE(want); max++)
		cr_expect_eq(utf8_cut(s, n, max), want[max], "max %zu", max);
	cr_expect_eq(utf8_cut("abc", 3, 2), 2);
	cr_expect_eq(utf8_cut("\xC3\xA6", 2, 1), 0, "max below the first character");
	cr_expect_eq(utf8_cut("\xF0\x9F\x98\x80", 4, 3), 0);
}

Test(utf8, cut_treats_bad_bytes_as_single_characters)
{
	cr_expect_eq(utf8_cut("\x80\x80\x80\x80\x80", 5, 3), 3, "continuation bytes");
	cr_expect_eq(utf8_cut("ab\xE6\xE6\xE6", 5, 3), 3, "Latin-1");
	cr_expect_eq(utf8_cut("ab\xED\xA0\x80", 5, 3), 3, "a surrogate is no character");
	cr_expect_eq(utf8_cut("ab\xC3(", 4, 3), 3, "interrupted sequence");
	/* only the bytes before n count: a sequence cut short by n is no character */
	cr_expect_eq(utf8_cut("ab\xE2\x82\xAC", 4, 3), 3);
	cr_expect_eq(utf8_cut("ab\xE2\x82\xAC", 5, 3), 2);
}

Test(utf8, encodes_each_length_and_refuses_non_characters)
{
	static const struct {
		uint32_t cp;
		const char *bytes;
	} cases[] = {
		{ 0x41, "A" },		     { 0x7F, "\x7F" },		      { 0x80, "\xC2\x80" },
		{ 0x7FF, "\xDF\xBF" },	     { 0x800, "\xE0\xA0\x80" },	      { 0x20AC, "\xE2\x82\xAC" },
		{ 0xFFFF, "\xEF\xBF\xBF" }, { 0x10000, "\xF0\x90\x80\x80" }, { 0x10FFFF, "\xF4\x8F\xBF\xBF" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t out[UTF8_SEQ_MAX] = { 0 };
		size_t n = strlen(cases[i].bytes);
		cr_expect_eq(utf8_encode(cases[i].cp, out), n, "U+%04X", cases[i].cp);
		cr_expect_arr_eq(out, cases[i].bytes, n, "U+%04X", cases[i].cp);
		cr_expect_eq(utf8_encode(cases[i].cp, NULL), n, "counting U+%04X", cases[i].cp);
	}
	uint8_t out[UTF8_SEQ_MAX] = { 1, 2, 3, 4 };
	cr_expect_eq(utf8_encode(0xD800, out), 0);
	cr_expect_eq(utf8_encode(0xDFFF, out), 0);
	cr_expect_eq(utf8_encode(0x110000, out), 0);
	cr_expect_eq(utf8_encode(UINT32_MAX, out), 0);
	cr_expect_arr_eq(out, ((uint8_t[]){ 1, 2, 3, 4 }), 4, "out written for a refusal");
}

Test(utf8, every_code_point_round_trips)
{
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		uint8_t b[UTF8_SEQ_MAX];
		uint32_t back = UINT32_MAX;
		size_t n = utf8_encode(cp, b);
		if (cp >= 0xD800 && cp <= 0xDFFF) {
			cr_assert_eq(n, 0, "surrogate U+%04X encoded", cp);
			continue;
		}
		cr_assert_eq(n, cp < 0x80 ? 1u : cp < 0x800 ? 2u : cp < 0x10000 ? 3u : 4u);
		cr_assert_eq(utf8_decode(b, n, &back), n, "U+%04X does not decode", cp);
		cr_assert_eq(back, cp);
	}
}

/* Whatever decode accepts is exactly encode's bytes for that code point,
 * so no second spelling of a character (overlong) gets through. */
static void assert_canonical(const uint8_t *b, size_t n)
{
	uint32_t cp;
	uint8_t again[UTF8_SEQ_MAX];
	size_t k = utf8_decode(b, n, &cp);
	if (k == 0)
		return;
	cr_assert(utf8_encode(cp, again) == k && memcmp(again, b, k) == 0,
		  "%02x %02x %02x decoded to U+%04X, not its encoding", b[0], b[1], b[2], cp);
}

Test(utf8, every_accepted_sequence_is_canonical)
{
	size_t accepted = 0;
	for (uint32_t v = 0; v < 1u << 24; v++) {
		uint8_t b[3] = { (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
		if (utf8_decode(b, 3, NULL) == 3)
			accepted++;
		assert_canonical(b, 3);
	}
	/* U+0800..U+FFFF less the 2048 surrogates */
	cr_assert_eq(accepted, 0x10000 - 0x800 - 0x800);
	/* 4-byte forms: every lead from F0 with every second byte, and tails
	 * at the edges of the continuation range and just outside it */
	static const uint8_t tails[] = { 0x7F, 0x80, 0xBF, 0xC0 };
	size_t accepted4 = 0;
	for (unsigned lead = 0xF0; lead <= 0xFF; lead++)
		for (unsigned second = 0; second <= 0xFF; second++)
			for (size_t t = 0; t < ARRAY_SIZE(tails) * ARRAY_SIZE(tails); t++) {
				uint8_t b[4] = { (uint8_t)lead, (uint8_t)second, tails[t / 4],
						 tails[t % 4] };
				accepted4 += utf8_decode(b, 4, NULL) == 4;
				assert_canonical(b, 4);
			}
	/* F0 90..BF, F1-F3 80..BF, F4 80..8F; tails 80 or BF each */
	cr_assert_eq(accepted4, (48 + 3 * 64 + 16) * 4);
}

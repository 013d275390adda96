/*
 * utf8.c - strict UTF-8 decoding, validation, boundary cuts and encoding
 * (utf8.h).
 *
 * Validity is decided by the lead byte's range and the allowed range of the
 * second byte (the Unicode Standard's table 3-7), which rules out overlong
 * forms, surrogates and code points above U+10FFFF without decoding first.
 * Every other function is built on utf8_decode(), so there is exactly one
 * definition of a valid sequence in the tree.
 */
#include "codecs/base/utf8.h"

#include <string.h>

/* Sequence length for lead byte c, and the range its second byte must be
 * in; 0 for a byte that cannot start a sequence (80..C1, F5..FF). */
static size_t lead_info(uint8_t c, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80, *hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF) {
		*lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F: overlong */
		*hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF: surrogates */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		*lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F: overlong */
		*hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90..: above U+10FFFF */
		return 4;
	}
	return 0;
}

size_t utf8_decode(const void *p, size_t n, uint32_t *cp)
{
	const uint8_t *s = p;
	uint8_t lo, hi;
	size_t len = n ? lead_info(s[0], &lo, &hi) : 0;
	if (len == 0 || len > n)
		return 0;
	if (len == 1) {
		if (cp)
			*cp = s[0];
		return 1;
	}
	if (s[1] < lo || s[1] > hi)
		return 0;
	uint32_t c = s[0] & (0x7F >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3F);
	}
	if (cp)
		*cp = c;
	return len;
}

size_t utf8_span(const void *p, size_t n)
{
	const uint8_t *s = p;
	size_t i = 0, k;
	while (i < n && (k = utf8_decode(s + i, n - i, NULL)) > 0)
		i += k;
	return i;
}

size_t utf8_cut(const void *p, size_t n, size_t max)
{
	const uint8_t *s = p;
	if (n <= max)
		return n;
	/* Only a sequence starting in the UTF8_SEQ_MAX - 1 bytes before max
	 * can straddle it; its start is the nearest byte that is no
	 * continuation byte. */
	for (size_t i = max; i > 0 && max - i < UTF8_SEQ_MAX - 1;) {
		i--;
		if ((s[i] & 0xC0) == 0x80)
			continue;
		size_t k = utf8_decode(s + i, n - i, NULL);
		return k > 0 && i + k > max ? i : max;
	}
	return max;
}

size_t utf8_encode(uint32_t cp, uint8_t *out)
{
	uint8_t b[UTF8_SEQ_MAX];
	size_t n;
	if (cp < 0x80) {
		b[0] = (uint8_t)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xC0 | cp >> 6), n = 2;
	} else if (cp < 0x10000) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return 0;
		b[0] = (uint8_t)(0xE0 | cp >> 12), n = 3;
	} else if (cp <= 0x10FFFF) {
		b[0] = (uint8_t)(0xF0 | cp >> 18), n = 4;
	} else {
		return 0;
	}
	for (size_t i = n - 1; i > 0; i--, cp >>= 6)
		b[i] = (uint8_t)(0x80 | (cp & 0x3F));
	if (out)
		memcpy(out, b, n);
	return n;
}

/*
 * utf8.h - strict UTF-8: the one place that knows what a valid sequence is,
 * shared by the codecs (charset checks, receipts) and the daemon (notices,
 * mail subjects, the status page, store texts).
 *
 * Strict means RFC 3629: no overlong forms, no surrogates (U+D800..DFFF),
 * nothing above U+10FFFF, no stray continuation bytes. Byte buffers are
 * passed as `const void *` so text (char) and message bytes (uint8_t) need
 * no casts. Pure functions over the caller's bytes.
 */
#ifndef EDIBROKER_UTF8_H
#define EDIBROKER_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest sequence, in bytes. */
#define UTF8_SEQ_MAX 4

/* Decodes the sequence at p (n bytes readable): its length 1..4, with the
 * code point in *cp when cp is not NULL; 0 when n is 0 or the bytes at p do
 * not start a whole, valid sequence (then *cp is untouched). */
size_t utf8_decode(const void *p, size_t n, uint32_t *cp);

/* Length of the longest prefix of p[0..n) that is valid UTF-8; n when all is. */
size_t utf8_span(const void *p, size_t n);

/* True when all of p[0..n) is valid UTF-8. */
static inline bool utf8_valid(const void *p, size_t n)
{
	return utf8_span(p, n) == n;
}

/* Length of the longest prefix of p[0..n) of at most max bytes that ends on
 * a character boundary: n when n <= max; otherwise max, moved back to the
 * start of a valid sequence that would straddle it. Bytes that are not
 * valid UTF-8 count as one-byte characters, so they may be cut anywhere.
 * May be 0 when max is smaller than the first character. */
size_t utf8_cut(const void *p, size_t n, size_t max);

/* Writes cp as UTF-8 to out (room for UTF8_SEQ_MAX bytes; NULL only counts).
 * Returns 1..4, or 0 for a surrogate or a value above U+10FFFF. */
size_t utf8_encode(uint32_t cp, uint8_t *out);

#endif

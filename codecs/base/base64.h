/*
 * base64.h - RFC 4648 base64 (standard alphabet, '=' padding) for the
 * payloads wrapping formats carry (VANSEnvelope Data, SBDH BinaryContent).
 *
 * Decoding is strict about the alphabet and the padding but skips XML
 * whitespace anywhere (wrappers break base64 into lines), and says how
 * large the result will be before anything is allocated, so a caller can
 * hold the expansion against its byte limit. Pure functions.
 */
#ifndef EDIBROKER_BASE64_H
#define EDIBROKER_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes base64_decode() will write for text[0..len): computed from the
 * count of non-whitespace characters, without checking them. */
size_t base64_decoded_size(const char *text, size_t len);

/* Decodes text[0..len) into out (room for base64_decoded_size() bytes).
 * Returns the bytes written, or -1 with *bad at the offset of the first
 * character that is not base64 (or of misplaced padding, or of the end
 * when the last group is incomplete). */
long base64_decode(const char *text, size_t len, uint8_t *out, size_t *bad);

/* Encodes p[0..n) as one line of base64 (no breaks), NUL-terminated, into
 * a new buffer the caller frees; *outlen (may be NULL) gets its length. */
char *base64_encode(const void *p, size_t n, size_t *outlen);

#endif

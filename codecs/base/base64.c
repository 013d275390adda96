/*
 * base64.c - RFC 4648 base64 (base64.h).
 *
 * The decoder reads four significant characters at a time, skipping XML
 * whitespace (space, tab, CR, LF). Padding may only close the last group
 * ("xx==" or "xxx="); anything after it other than whitespace is an error,
 * as is a last group of one to three characters. The bits a padded group
 * leaves over must be zero (RFC 4648 3.5), so one byte string has one
 * encoding and a digest of the decoded bytes names the content.
 */
#include "codecs/base/base64.h"

#include "codecs/base/mem.h"

#include <stdbool.h>
#include <string.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 0..63 for an alphabet character, -1 otherwise. */
static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

size_t base64_decoded_size(const char *text, size_t len)
{
	size_t sig = 0, pad = 0;
	for (size_t i = 0; i < len; i++) {
		if (is_ws(text[i]))
			continue;
		sig++;
		pad = text[i] == '=' ? pad + 1 : 0;
	}
	size_t n = sig / 4 * 3;
	/* '=' only shortens a whole last group ("xx==", "xxx="); when the
	 * groups do not come out even, decoding fails after whole groups. */
	return sig % 4 == 0 && pad <= 2 && n >= pad ? n - pad : n;
}

/* Writes the bytes of one group of 4 sextets, of which `pad` were '='. */
static size_t put_group(const int q[4], size_t pad, uint8_t *out)
{
	uint32_t v = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | (uint32_t)q[3];
	out[0] = (uint8_t)(v >> 16);
	if (pad < 2)
		out[1] = (uint8_t)(v >> 8);
	if (pad < 1)
		out[2] = (uint8_t)v;
	return 3 - pad;
}

/* A padded group must not carry bits beyond its bytes. */
static bool spare_bits_zero(const int q[4], size_t pad)
{
	return pad == 0 || (pad == 1 && (q[2] & 0x3) == 0) || (pad == 2 && (q[1] & 0xF) == 0);
}

long base64_decode(const char *text, size_t len, uint8_t *out, size_t *bad)
{
	int q[4];
	size_t n = 0, k = 0, pad = 0, done_at = SIZE_MAX;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (is_ws(c))
			continue;
		int s = sextet(c);
		bool padding = c == '=' && k >= 2; /* only the last two of a group */
		if (done_at != SIZE_MAX || (s < 0 && !padding) || (s >= 0 && pad > 0)) {
			*bad = i;
			return -1;
		}
		pad += padding;
		q[k++] = s < 0 ? 0 : s;
		if (k < 4)
			continue;
		if (!spare_bits_zero(q, pad)) {
			*bad = i;
			return -1;
		}
		n += put_group(q, pad, out + n);
		k = 0;
		if (pad)
			done_at = i;
	}
	if (k != 0) {
		*bad = len;
		return -1;
	}
	return (long)n;
}

char *base64_encode(const void *p, size_t n, size_t *outlen)
{
	const uint8_t *b = p;
	size_t len = (n + 2) / 3 * 4, o = 0;
	char *out = xmalloc(len + 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)b[i + 1] << 8;
		if (i + 2 < n)
			v |= b[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return out;
}

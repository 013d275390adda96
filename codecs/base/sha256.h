/*
 * sha256.h - SHA-256 (FIPS 180-4), the digest that names a payload's
 * content when the store checks whether a wrapper id was reused for other
 * content. Pure; no dependency beyond libc.
 */
#ifndef EDIBROKER_SHA256_H
#define EDIBROKER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint8_t block[64];
	size_t used;     /* bytes in block */
	uint64_t total;  /* bytes hashed so far */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Writes the digest; s must be initialised again before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* The digest of p[0..n) in one call. */
void sha256(const void *p, size_t n, uint8_t out[SHA256_LEN]);

#endif

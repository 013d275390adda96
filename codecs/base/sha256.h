/*
 * sha256.h - SHA-256, the digest that names content: a payload when the
 * store checks whether a wrapper id was reused for other content, an
 * ingest unit's body, a credential. OpenSSL's (libcrypto, which the daemon
 * links for TLS anyway): it uses the CPU's SHA instructions, 16 times the
 * speed of a portable C one on a 5 KB body.
 */
#ifndef EDIBROKER_SHA256_H
#define EDIBROKER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct evp_md_ctx_st;

struct sha256 {
	struct evp_md_ctx_st *ctx; /* from sha256_init() until sha256_final() */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Writes the digest and frees s's state; s must be initialised again
 * before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* The digest of p[0..n) in one call. */
void sha256(const void *p, size_t n, uint8_t out[SHA256_LEN]);

#endif

/*
 * sha256.c - SHA-256 on OpenSSL's EVP interface. A failure here is an
 * allocation failure or a broken libcrypto; every caller names content by
 * the digest, so there is no sane way on: abort, as xmalloc does.
 */
#include "codecs/base/sha256.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

static void broken(const char *what)
{
	fprintf(stderr, "sha256: %s failed\n", what);
	abort();
}

void sha256_init(struct sha256 *s)
{
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1)
		broken("init");
}

void sha256_update(struct sha256 *s, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(s->ctx, p, n) != 1)
		broken("update");
}

void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN])
{
	unsigned len = 0;
	if (EVP_DigestFinal_ex(s->ctx, out, &len) != 1 || len != SHA256_LEN)
		broken("final");
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

void sha256(const void *p, size_t n, uint8_t out[SHA256_LEN])
{
	unsigned len = 0;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != SHA256_LEN)
		broken("digest");
}

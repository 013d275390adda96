/*
 * zmq_keys.h - CURVE keys as text (Z85, 40 characters for 32 bytes) and
 * the secret key file the broker (zmq_secret_key) and edibroker-peer
 * (--key, keygen) share.
 *
 * A secret key file holds one line of 40 Z85 characters, the secret key;
 * lines starting with '#' and blank lines are ignored (keygen writes the
 * public key in a comment, for the operator). The public key is always
 * derived from the secret one, so the two cannot disagree. Files are read
 * whole (at most 4 KiB) and their buffers wiped; nothing here logs.
 */
#ifndef EDIBROKER_ZMQ_KEYS_H
#define EDIBROKER_ZMQ_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZKEY_LEN 32      /* bytes of a CURVE key */
#define ZKEY_Z85_LEN 40  /* its Z85 text */

/* True when z85 is exactly 40 Z85 characters (a CURVE key); key, when not
 * NULL, gets its 32 bytes. */
bool zkey_decode(const char *z85, uint8_t key[ZKEY_LEN]);

/* The Z85 text of key into out (ZKEY_Z85_LEN + 1 bytes). */
void zkey_encode(const uint8_t key[ZKEY_LEN], char out[ZKEY_Z85_LEN + 1]);

/* The Z85 public key of a secret key, into pub (ZKEY_Z85_LEN + 1). 0 or
 * -errno. */
int zkey_public_of(const uint8_t secret[ZKEY_LEN], char pub[ZKEY_Z85_LEN + 1]);

/* Reads the secret key file at path into secret. 0, or -errno with why
 * (naming the file and line, never quoting a key). */
int zkey_read_secret(const char *path, uint8_t secret[ZKEY_LEN], char *why, size_t len);

/* Makes a new key pair and writes its secret key to a new file at path
 * (mode 0600, never over an existing file: -EEXIST), durably (fsync of the
 * file and its folder); pub gets the public key. 0, or -errno with why. */
int zkey_generate(const char *path, char pub[ZKEY_Z85_LEN + 1], char *why, size_t len);

/* Constant-time equality of two Z85 keys (both ZKEY_Z85_LEN characters). */
bool zkey_equal(const char *a, const char *b);

#endif

/*
 * zmq_keys.c - CURVE keys in Z85 and the secret key file (zmq_keys.h).
 *
 * The file is read with O_NOFOLLOW and O_NONBLOCK (a symlink or a FIFO put
 * in its place is refused, not followed or waited on), at most 4 KiB, and
 * every buffer that held a secret is wiped before it is freed or left.
 * Writing uses O_EXCL, so keygen never replaces a key someone relies on.
 * Z85 itself is libzmq's (zmq_z85_encode/decode); the key pair comes from
 * zmq_curve_keypair (libsodium's random numbers).
 */
#include "transport/zmq_keys.h"

#include "base/fileio.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEYFILE_MAX 4096

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				".-:+=^!/*?&<>()[]{}@%$#";

bool zkey_decode(const char *z85, uint8_t key[ZKEY_LEN])
{
	uint8_t tmp[ZKEY_LEN];
	if (!z85 || strlen(z85) != ZKEY_Z85_LEN || strspn(z85, z85_chars) != ZKEY_Z85_LEN)
		return false;
	/* zmq_z85_decode also refuses a group whose value overflows 32 bits */
	bool ok = zmq_z85_decode(tmp, z85) != NULL;
	if (ok && key)
		memcpy(key, tmp, ZKEY_LEN);
	explicit_bzero(tmp, sizeof(tmp));
	return ok;
}

void zkey_encode(const uint8_t key[ZKEY_LEN], char out[ZKEY_Z85_LEN + 1])
{
	zmq_z85_encode(out, key, ZKEY_LEN);
}

int zkey_public_of(const uint8_t secret[ZKEY_LEN], char pub[ZKEY_Z85_LEN + 1])
{
	char sec[ZKEY_Z85_LEN + 1];
	zkey_encode(secret, sec);
	int r = zmq_curve_public(pub, sec);
	int e = errno;
	explicit_bzero(sec, sizeof(sec));
	return r == 0 ? 0 : -e;
}

bool zkey_equal(const char *a, const char *b)
{
	unsigned char d = 0;
	for (size_t i = 0; i < ZKEY_Z85_LEN; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* The one key line of text[0..n): trims blanks; skips '#' comments and
 * blank lines. 0 with the key decoded, or -EINVAL with the line in *line. */
static int parse_keyfile(char *text, size_t n, uint8_t secret[ZKEY_LEN], int *line)
{
	int found = 0, at = 0;
	text[n] = '\0';
	*line = 0;
	for (char *l = text, *next; l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = '\0';
		at++;
		while (*l == ' ' || *l == '\t')
			l++;
		size_t k = strlen(l);
		while (k > 0 && (l[k - 1] == ' ' || l[k - 1] == '\t' || l[k - 1] == '\r'))
			l[--k] = '\0';
		/* '#' is a Z85 character, but never a key's first: four bytes are
		 * below 2^32 < 83 * 85^4, so a group starts with '%' at most */
		if (k == 0 || l[0] == '#')
			continue;
		if (found++ || !zkey_decode(l, secret)) {
			*line = at;
			return -EINVAL;
		}
	}
	return found == 1 ? 0 : -ENOENT;
}

int zkey_read_secret(const char *path, uint8_t secret[ZKEY_LEN], char *why, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(why, len, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > KEYFILE_MAX) {
		snprintf(why, len, "%s: %s", path, S_ISREG(st.st_mode) ? "longer than 4 KiB: not a key file"
								    : "not a regular file");
		return -EINVAL;
	}
	char buf[KEYFILE_MAX + 1];
	size_t n = 0;
	while (n < KEYFILE_MAX) {
		ssize_t r = read(fd, buf + n, KEYFILE_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0) {
				int e = errno;
				explicit_bzero(buf, sizeof(buf));
				snprintf(why, len, "%s: %s", path, strerror(e));
				return -e;
			}
			break;
		}
		n += (size_t)r;
	}
	int line;
	int r = parse_keyfile(buf, n, secret, &line);
	explicit_bzero(buf, sizeof(buf));
	if (r == -ENOENT)
		snprintf(why, len, "%s: no key in it (one line of 40 Z85 characters, the CURVE "
			 "secret key, as edibroker-peer keygen writes)", path);
	else if (r < 0)
		snprintf(why, len, "%s: line %d: not a CURVE key (40 Z85 characters), or a second "
			 "key", path, line);
	return r < 0 ? -EINVAL : 0;
}

/* fsync of the folder that holds path. */
static int sync_parent(const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	return fsync_dir(dirname(copy));
}

int zkey_generate(const char *path, char pub[ZKEY_Z85_LEN + 1], char *why, size_t len)
{
	char pubk[ZKEY_Z85_LEN + 1], sec[ZKEY_Z85_LEN + 1];
	if (zmq_curve_keypair(pubk, sec) != 0) {
		int e = errno;
		snprintf(why, len, "cannot make a CURVE key pair: %s", zmq_strerror(e));
		return -e;
	}
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				      0600);
	if (fd < 0) {
		int e = errno;
		explicit_bzero(sec, sizeof(sec));
		snprintf(why, len, "%s: %s%s", path, strerror(e),
			 e == EEXIST ? " (a key file is never replaced: remove it first, or choose "
				       "another name)" : "");
		return -e;
	}
	_cleanup_free_ char *text = xasprintf("# CURVE secret key for edibroker (Z85). Keep it "
					      "private (mode 0600).\n# public key: %s\n%s\n",
					      pubk, sec);
	explicit_bzero(sec, sizeof(sec));
	int r = fchmod(fd, 0600) < 0 ? -errno : 0; /* whatever the umask */
	if (r == 0)
		r = write_all(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	explicit_bzero(text, strlen(text));
	if (r == 0)
		r = sync_parent(path);
	if (r < 0) {
		unlink(path);
		snprintf(why, len, "%s: %s", path, strerror(-r));
		return r;
	}
	memcpy(pub, pubk, sizeof(pubk));
	return 0;
}

/*
 * test_zmq_keys.c - CURVE keys and the secret key file
 * (daemon/transport/zmq_keys.c): keygen makes a 0600 file whatever the
 * umask and never replaces one; what it writes reads back to the public key
 * it printed; comments, blank lines, CRLF and blanks around the key are
 * fine, a second key, a line that is not a key, an empty file, a symlink, a
 * FIFO and an overlong file are refused, naming the line and never the key;
 * Z85 text is checked for length and alphabet, and keys compare equal or not.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codecs/base/mem.h"
#include "testutil.h"
#include "transport/zmq_keys.h"

static char dir[256];

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_zmq_keys.XXXXXX");
}

static void teardown(void)
{
	testutil_rm_rf(dir);
}

TestSuite(zmq_keys, .init = setup, .fini = teardown);

static char *path_of(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* A valid key pair's secret as Z85 text, and its public key. */
static void some_secret(char sec[ZKEY_Z85_LEN + 1], char pub[ZKEY_Z85_LEN + 1])
{
	_cleanup_free_ char *p = path_of("gen.tmp");
	char why[256];
	uint8_t raw[ZKEY_LEN];
	unlink(p);
	cr_assert_eq(zkey_generate(p, pub, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_read_secret(p, raw, why, sizeof(why)), 0, "%s", why);
	zkey_encode(raw, sec);
	unlink(p);
}

static int read_text(const char *text, uint8_t key[ZKEY_LEN], char *why, size_t len)
{
	_cleanup_free_ char *p = path_of("key");
	unlink(p);
	testutil_write_file(p, text, strlen(text));
	return zkey_read_secret(p, key, why, len);
}

Test(zmq_keys, keygen_writes_a_private_file_that_reads_back)
{
	_cleanup_free_ char *p = path_of("peer.secret");
	char pub[ZKEY_Z85_LEN + 1], pub2[ZKEY_Z85_LEN + 1], why[256];
	mode_t old = umask(0); /* a careless umask must not make it readable */
	int r = zkey_generate(p, pub, why, sizeof(why));
	umask(old);
	cr_assert_eq(r, 0, "%s", why);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert(zkey_decode(pub, NULL));
	uint8_t secret[ZKEY_LEN];
	cr_assert_eq(zkey_read_secret(p, secret, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_public_of(secret, pub2), 0);
	cr_assert_str_eq(pub2, pub, "the public key printed is the file's");
	_cleanup_free_ char *text = testutil_read_file(p, NULL);
	cr_assert(strstr(text, pub), "the operator finds the public key in a comment");
}

Test(zmq_keys, keygen_never_replaces_a_file)
{
	_cleanup_free_ char *p = path_of("taken");
	testutil_write_file(p, "precious\n", 9);
	char pub[ZKEY_Z85_LEN + 1] = "untouched", why[256];
	cr_assert_eq(zkey_generate(p, pub, why, sizeof(why)), -EEXIST);
	cr_assert(strstr(why, "never replaced"), "%s", why);
	cr_assert_str_eq(pub, "untouched");
	_cleanup_free_ char *text = testutil_read_file(p, NULL);
	cr_assert_str_eq(text, "precious\n");
	/* nor through a symlink to somewhere else */
	_cleanup_free_ char *link = path_of("link"), *target = path_of("elsewhere");
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_lt(zkey_generate(link, pub, why, sizeof(why)), 0);
	cr_assert_eq(access(target, F_OK), -1, "nothing was created through the link");
}

Test(zmq_keys, comments_blanks_and_crlf_around_the_key)
{
	char sec[ZKEY_Z85_LEN + 1], pub[ZKEY_Z85_LEN + 1], why[256], got[ZKEY_Z85_LEN + 1];
	some_secret(sec, pub);
	_cleanup_free_ char *text = xasprintf("# a comment\r\n\r\n   %s \t\r\n\n# another\n", sec);
	uint8_t key[ZKEY_LEN];
	cr_assert_eq(read_text(text, key, why, sizeof(why)), 0, "%s", why);
	zkey_encode(key, got);
	cr_assert_str_eq(got, sec);
	/* just the key, without a newline */
	cr_assert_eq(read_text(sec, key, why, sizeof(why)), 0, "%s", why);
}

Test(zmq_keys, what_is_not_one_key_is_refused_without_quoting_it)
{
	char sec[ZKEY_Z85_LEN + 1], pub[ZKEY_Z85_LEN + 1], why[256];
	uint8_t key[ZKEY_LEN];
	some_secret(sec, pub);
	_cleanup_free_ char *two = xasprintf("%s\n# and\n%s\n", sec, sec);
	cr_assert_eq(read_text(two, key, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "line 3"), "%s", why);
	cr_assert_null(strstr(why, sec), "the key is not in the message");
	_cleanup_free_ char *shortk = xasprintf("%.39s\n", sec);
	cr_assert_eq(read_text(shortk, key, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "line 1"), "%s", why);
	cr_assert_null(strstr(why, shortk + 5));
	cr_assert_eq(read_text("# only a comment\n\n", key, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "no key"), "%s", why);
	cr_assert_eq(read_text("", key, why, sizeof(why)), -EINVAL);
	/* a CZMQ-style certificate is not this format */
	cr_assert_eq(read_text("curve\n    secret-key = \"abc\"\n", key, why, sizeof(why)), -EINVAL);
}

Test(zmq_keys, symlinks_fifos_and_big_files_are_refused)
{
	char sec[ZKEY_Z85_LEN + 1], pub[ZKEY_Z85_LEN + 1], why[256];
	uint8_t key[ZKEY_LEN];
	some_secret(sec, pub);
	_cleanup_free_ char *real = path_of("real"), *link = path_of("link"), *fifo = path_of("fifo"),
			    *big = path_of("big");
	testutil_write_file(real, sec, strlen(sec));
	cr_assert_eq(symlink(real, link), 0);
	cr_assert_eq(zkey_read_secret(link, key, why, sizeof(why)), -ELOOP, "%s", why);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(zkey_read_secret(fifo, key, why, sizeof(why)), -EINVAL, "no wait on a FIFO");
	cr_assert(strstr(why, "not a regular file"), "%s", why);
	char *text = xmalloc(5000);
	memset(text, '#', 4999);
	text[4999] = '\0';
	testutil_write_file(big, text, 4999);
	free(text);
	cr_assert_eq(zkey_read_secret(big, key, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "4 KiB"), "%s", why);
	_cleanup_free_ char *none = path_of("none");
	cr_assert_eq(zkey_read_secret(none, key, why, sizeof(why)), -ENOENT);
}

Test(zmq_keys, z85_text)
{
	char sec[ZKEY_Z85_LEN + 1], pub[ZKEY_Z85_LEN + 1];
	some_secret(sec, pub);
	uint8_t k[ZKEY_LEN];
	cr_assert(zkey_decode(pub, k));
	char back[ZKEY_Z85_LEN + 1];
	zkey_encode(k, back);
	cr_assert_str_eq(back, pub);
	char bad[ZKEY_Z85_LEN + 2];
	memcpy(bad, pub, ZKEY_Z85_LEN + 1);
	bad[39] = '\0';
	cr_assert_not(zkey_decode(bad, NULL), "39 characters");
	memcpy(bad, pub, ZKEY_Z85_LEN);
	bad[40] = 'a';
	bad[41] = '\0';
	cr_assert_not(zkey_decode(bad, NULL), "41 characters");
	memcpy(bad, pub, ZKEY_Z85_LEN + 1);
	bad[7] = '~';
	cr_assert_not(zkey_decode(bad, NULL), "'~' is not Z85");
	memcpy(bad, pub, ZKEY_Z85_LEN + 1);
	bad[0] = '#';
	bad[1] = '#';
	cr_assert_not(zkey_decode(bad, NULL), "a group above 2^32");
	cr_assert_not(zkey_decode(NULL, NULL));
	cr_assert(zkey_equal(pub, back));
	memcpy(bad, pub, ZKEY_Z85_LEN + 1);
	bad[39] = bad[39] == 'a' ? 'b' : 'a';
	cr_assert_not(zkey_equal(pub, bad));
}

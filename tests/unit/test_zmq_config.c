/*
 * test_zmq_config.c - what the ZeroMQ transport asks of a whole config
 * (zmq_transport.check_config, daemon/transport/zmq.c), checked over every
 * endpoint whatever its transport: a key on a spool endpoint needs the
 * listener as much as a transport = zmq endpoint does; transport = zmq
 * needs a key; a key two endpoints claim is refused, naming both, at the
 * section of the second; a config that gets it right passes.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "testutil.h"
#include "transport/transport.h"
#include "transport/zmq_link.h"

static char dir[256];
static char key_a[ZKEY_Z85_LEN + 1], key_b[ZKEY_Z85_LEN + 1];

static void setup(void)
{
	char why[256];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_zmq_config.XXXXXX");
	_cleanup_free_ char *bk = xasprintf("%s/broker.secret", dir);
	_cleanup_free_ char *ak = xasprintf("%s/a.secret", dir);
	_cleanup_free_ char *bpk = xasprintf("%s/b.secret", dir);
	char broker_pub[ZKEY_Z85_LEN + 1];
	cr_assert_eq(zkey_generate(bk, broker_pub, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_generate(ak, key_a, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(zkey_generate(bpk, key_b, why, sizeof(why)), 0, "%s", why);
}

static void teardown(void)
{
	testutil_rm_rf(dir);
}

TestSuite(zmq_config, .init = setup, .fini = teardown);

/* The broker section (with the listener when listen) and the endpoints. */
static int check(bool listen, const char *endpoints, char *err, size_t errlen)
{
	_cleanup_free_ char *path = xasprintf("%s/edibroker.conf", dir);
	_cleanup_free_ char *head = listen ? xasprintf("zmq_listen = ipc://%s/zmq.sock\n"
						       "zmq_secret_key = %s/broker.secret\n",
						       dir, dir)
					   : xstrdup("");
	_cleanup_free_ char *text = xasprintf("[broker]\nstate_dir = %s/state\n%s\n%s", dir, head,
					      endpoints);
	testutil_write_file(path, text, strlen(text));
	struct config *cfg = NULL;
	cr_assert_eq(config_load(path, transport_schemas(), &cfg, err, errlen), 0, "%s", err);
	err[0] = '\0';
	int r = zmq_transport.check_config(cfg, err, errlen);
	config_free(cfg);
	return r;
}

static char *spool(const char *name, const char *gln, const char *key)
{
	return xasprintf("[endpoint %s]\nkind = other\ngln = %s\ninbox = %s/%s-in\n"
			 "outbox = %s/%s-out\n%s%s\n\n", name, gln, dir, name, dir, name,
			 key ? "zmq_public_key = " : "", key ? key : "");
}

Test(zmq_config, a_key_on_a_spool_endpoint_needs_the_listener)
{
	char err[512];
	_cleanup_free_ char *eps = spool("lab", "5790000000029", key_a);
	cr_assert_eq(check(false, eps, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "endpoint 'lab': zmq_public_key needs [broker] zmq_listen"), "%s",
		  err);
	cr_assert_eq(check(true, eps, err, sizeof(err)), 0, "%s", err);
}

Test(zmq_config, transport_zmq_needs_a_key)
{
	char err[512];
	const char *eps = "[endpoint eoj]\nkind = municipality\ntransport = zmq\n"
			  "gln = 5790000000029\n";
	cr_assert_eq(check(true, eps, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "endpoint 'eoj': transport = zmq needs zmq_public_key"), "%s", err);
}

Test(zmq_config, a_key_two_endpoints_claim_is_refused_naming_both)
{
	char err[512];
	_cleanup_free_ char *a = spool("first", "5790000000029", key_a);
	_cleanup_free_ char *b = spool("second", "5790000000036", key_a);
	_cleanup_free_ char *c = spool("third", "5790000000043", key_b);
	_cleanup_free_ char *eps = xasprintf("%s%s%s", a, c, b);
	cr_assert_eq(check(true, eps, err, sizeof(err)), -EINVAL);
	/* the second claim's section: [broker] 4 lines and a blank, 7 per endpoint */
	_cleanup_free_ char *want = xasprintf("edibroker.conf:%d: endpoint 'second': "
					      "zmq_public_key is also endpoint 'first''s", 5 + 14 + 1);
	cr_assert(strstr(err, want), "want '%s' in '%s'", want, err);
	_cleanup_free_ char *distinct = xasprintf("%s%s", a, c);
	cr_assert_eq(check(true, distinct, err, sizeof(err)), 0, "%s", err);
}

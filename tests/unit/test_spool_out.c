/*
 * test_spool_out.c - outbound spool delivery and the outbox probe
 * (spool_out.c), through the public spool transport: transport_find("spool")
 * -> create() with an endpoint pointing at fresh temporary folders; deliver()
 * and probe() run their work on the endpoint's outbound lane, as in the
 * daemon, and the test turns a real event loop until they complete.
 *
 * Covers: final names "<instance>-<12-digit id>.<ext>", byte-identical
 * contents, no temporary ("."-prefixed) files left, re-delivery replacing
 * its own file, the delivered prefix when a later message cannot be written
 * or renamed, a missing or immutable outbox (FAULT_REFUSED naming the path),
 * and the probe: clean on a writable outbox, FAULT_TIMEOUT for files older
 * than pickup_timeout.
 */
#include "conf/config.h"
#include "transport/spool.h"
#include "transport/transport.h"
#include "base/clock.h"
#include "base/lanes.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define INSTANCE "abcdef12"

static char dir[PATH_MAX];
static char outbox[PATH_MAX + 16], inbox[PATH_MAX + 16], qdir[PATH_MAX + 16];
static bool immutable_set;

static const struct transport_ops *ops;
static struct config cfg;
static struct endpoint_conf epc;
static struct spool_conf sconf;           /* epc's spool settings */
static struct spool_section ssect;        /* cfg's [spool] */
static const struct conf_schema *schemas[2];
static void *sections[1];
static struct transport_env tenv;
static struct event_base *base;
static struct lanes *pool;

static void set_immutable(bool on)
{
	_cleanup_free_ char *cmd = xasprintf("chattr %ci '%s' 2>/dev/null", on ? '+' : '-', outbox);
	int rc = system(cmd);
	cr_assert(!on || rc == 0, "chattr +i failed: the test needs ext4 or XFS under /tmp");
	immutable_set = on;
}

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_spool_out.XXXXXX");
	snprintf(outbox, sizeof(outbox), "%s/out", dir);
	snprintf(inbox, sizeof(inbox), "%s/in", dir);
	snprintf(qdir, sizeof(qdir), "%s/q", dir);
	cr_assert_eq(mkdir(outbox, 0750), 0);
	cr_assert_eq(mkdir(inbox, 0750), 0);
	immutable_set = false;
	ops = transport_find("spool");
	cr_assert_not_null(ops);
	cr_assert_str_eq(ops->name, "spool");
	cfg = (struct config){ 0 };
	cfg.max_message_size = 16 << 20;
	cfg.batch_max = 256;
	ssect = (struct spool_section){ .rescan_interval_ms = 30000 };
	schemas[0] = ops->schema;
	sections[0] = &ssect;
	cfg.schemas = schemas;
	cfg.sections = sections;
	sconf = (struct spool_conf){ .inbox = inbox, .outbox = outbox, .quarantine = qdir };
	epc = (struct endpoint_conf){ 0 };
	epc.name = "municipality";
	epc.transport = "spool";
	epc.schema = ops->schema;
	epc.tconf = &sconf;
	base = event_base_new();
	pool = lanes_new(base, 0);
	cr_assert_not_null(pool);
	tenv = (struct transport_env){ .base = base, .instance = INSTANCE, .cfg = &cfg,
				       .lane_in = lane_new(pool, "in:municipality"),
				       .lane_out = lane_new(pool, "out:municipality") };
}

static void teardown(void)
{
	if (immutable_set)
		set_immutable(false);
	cr_assert_eq(lanes_wait(pool, 5000), 0, "spool work still running at teardown");
	lanes_free(pool);
	event_base_free(base);
	testutil_rm_rf(dir);
}

/* The completion of one deliver() or probe(). */
struct outcome {
	bool done;
	struct deliver_result res;
};

static void on_done(void *arg, const struct deliver_result *res)
{
	struct outcome *o = arg;
	o->res = *res;
	o->done = true;
}

/* Turns the loop until o is done (at most 5 s). */
static void wait_done(struct outcome *o)
{
	int64_t end = clock_mono_ms() + 5000;
	while (!o->done && clock_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(500);
	cr_assert(o->done, "the spool did not complete");
}

/* deliver() and wait for its result. */
static void deliver_now(struct transport *t, const struct out_msg *msgs, size_t n,
			struct deliver_result *res)
{
	struct outcome o = { 0 };
	ops->deliver(t, msgs, n, on_done, &o);
	cr_assert_not(o.done, "deliver() completed inside the call");
	wait_done(&o);
	*res = o.res;
}

/* probe() and wait for its result. */
static enum transport_fault probe_now(struct transport *t, char *err, size_t errlen)
{
	struct outcome o = { 0 };
	ops->probe(t, on_done, &o);
	wait_done(&o);
	str_copy(err, o.res.error, errlen);
	return o.res.fault;
}

TestSuite(spool_out, .init = setup, .fini = teardown, .timeout = 20);

static struct transport *create(void)
{
	char err[256] = "";
	struct transport *t = ops->create(&epc, &tenv, err, sizeof(err));
	cr_assert_not_null(t, "create: %s", err);
	return t;
}

/* ---- outbox listing ---------------------------------------------------- */

struct listing {
	char names[64][128];
	size_t n;      /* all entries but . and .. */
	size_t hidden; /* of them, names starting with '.' */
};

static struct listing list_dir(const char *path)
{
	struct listing l = { .n = 0 };
	DIR *d = opendir(path);
	cr_assert_not_null(d, "opendir %s", path);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (l.n < 64)
			str_copy(l.names[l.n], e->d_name, sizeof(l.names[0]));
		l.n++;
		if (e->d_name[0] == '.')
			l.hidden++;
	}
	closedir(d);
	return l;
}

static bool listed(const struct listing *l, const char *name)
{
	for (size_t i = 0; i < l->n && i < 64; i++)
		if (!strcmp(l->names[i], name))
			return true;
	return false;
}

static void assert_file(const char *name, const void *body, size_t size)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", outbox, name);
	size_t len = 0;
	_cleanup_free_ uint8_t *got = testutil_read_file(path, &len);
	cr_assert_eq(len, size, "%s: %zu bytes, expected %zu", name, len, size);
	if (size)
		cr_assert_arr_eq(got, body, size, "%s: contents differ", name);
}

/* A body with every byte value, NULs included. */
static uint8_t *body_of(size_t size, unsigned seed)
{
	uint8_t *b = xmalloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		b[i] = (uint8_t)(i * 7 + seed);
	return b;
}

/* ---- deliver ----------------------------------------------------------- */

Test(spool_out, final_name_format)
{
	struct transport *t = create();
	char name[96];
	spool_final_name((struct spool *)t, 42, "xml", name, sizeof(name));
	cr_assert_str_eq(name, INSTANCE "-000000000042.xml");
	spool_final_name((struct spool *)t, 123456789012345LL, "edi", name, sizeof(name));
	cr_assert_str_eq(name, INSTANCE "-123456789012345.edi");
	ops->destroy(t);
}

Test(spool_out, delivers_batch_with_final_names_and_exact_bytes)
{
	struct transport *t = create();
	_cleanup_free_ uint8_t *b1 = body_of(1510, 1), *b2 = body_of(70000, 2), *b3 = body_of(1, 3);
	struct out_msg msgs[3] = {
		{ 42, "xml", b1, 1510 },
		{ 43, "xml", b2, 70000 },
		{ 1000000000001LL, "edi", b3, 1 },
	};
	struct deliver_result res = { .delivered = 99, .fault = FAULT_IO };
	deliver_now(t, msgs, 3, &res);
	cr_assert_eq(res.delivered, 3, "delivered %zu: %s", res.delivered, res.error);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n, 3, "%zu entries in the outbox", l.n);
	cr_assert_eq(l.hidden, 0, "temporary files left behind");
	assert_file(INSTANCE "-000000000042.xml", b1, 1510);
	assert_file(INSTANCE "-000000000043.xml", b2, 70000);
	assert_file(INSTANCE "-1000000000001.edi", b3, 1);
	struct stat st;
	_cleanup_free_ char *p = xasprintf("%s/%s", outbox, INSTANCE "-000000000042.xml");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0640);
	ops->destroy(t);
}

/* Several daemons: a node whose lease is no longer trusted (paused past it)
 * makes no further message visible; the temporary files it wrote leave no
 * visible trace, and a batch under a trusted lease goes through whole. */
Test(spool_out, nothing_becomes_visible_once_the_lease_is_not_trusted)
{
	static _Atomic int64_t until;
	tenv.send_until = &until;
	struct transport *t = create();
	_cleanup_free_ uint8_t *b1 = body_of(100, 1), *b2 = body_of(200, 2);
	struct out_msg msgs[2] = { { 1, "xml", b1, 100 }, { 2, "xml", b2, 200 } };
	atomic_store(&until, clock_mono_ms() - 1);
	struct deliver_result res = { .delivered = 99 };
	deliver_now(t, msgs, 2, &res);
	cr_assert_eq(res.delivered, 0);
	cr_assert_eq(res.fault, FAULT_TIMEOUT);
	cr_assert_not_null(strstr(res.error, "lease"), "%s", res.error);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n - l.hidden, 0, "a message became visible without the lease");
	atomic_store(&until, clock_mono_ms() + 60000);
	deliver_now(t, msgs, 2, &res);
	cr_assert_eq(res.delivered, 2, "%s", res.error);
	assert_file(INSTANCE "-000000000001.xml", b1, 100);
	assert_file(INSTANCE "-000000000002.xml", b2, 200);
	ops->destroy(t);
	tenv.send_until = NULL;
}

Test(spool_out, empty_body_is_an_empty_file)
{
	struct transport *t = create();
	struct out_msg m = { 7, "xml", (const uint8_t *)"", 0 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 1);
	assert_file(INSTANCE "-000000000007.xml", "", 0);
	ops->destroy(t);
}

Test(spool_out, many_messages_in_one_batch)
{
	struct transport *t = create();
	enum { N = 60 };
	struct out_msg msgs[N];
	uint8_t *bodies[N];
	for (size_t i = 0; i < N; i++) {
		bodies[i] = body_of(100 + i, (unsigned)i);
		msgs[i] = (struct out_msg){ (int64_t)(500 + i), "xml", bodies[i], 100 + i };
	}
	struct deliver_result res = { 0 };
	deliver_now(t, msgs, N, &res);
	cr_assert_eq(res.delivered, N);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n, N);
	cr_assert_eq(l.hidden, 0);
	for (size_t i = 0; i < N; i++) {
		char name[96];
		snprintf(name, sizeof(name), INSTANCE "-%012zu.xml", 500 + i);
		assert_file(name, bodies[i], 100 + i);
		free(bodies[i]);
	}
	ops->destroy(t);
}

/* A re-delivery (after a crash or a lost confirmation) replaces its own
 * file: one file, the latest bytes. */
Test(spool_out, redelivery_replaces_the_file)
{
	struct transport *t = create();
	_cleanup_free_ uint8_t *a = body_of(5000, 1), *b = body_of(300, 9);
	struct out_msg m = { 42, "xml", a, 5000 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 1);
	m.body = b;
	m.size = 300;
	res = (struct deliver_result){ 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 1, "%s", res.error);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n, 1, "%zu files after a re-delivery", l.n);
	assert_file(INSTANCE "-000000000042.xml", b, 300);
	ops->destroy(t);
}

/* A temporary file left by a crashed attempt is overwritten, not appended
 * to, and does not survive. */
Test(spool_out, leftover_temporary_is_overwritten)
{
	struct transport *t = create();
	_cleanup_free_ char *tmp = xasprintf("%s/." INSTANCE "-000000000042.xml.tmp", outbox);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < 1000; i++)
		fputs("stale data from a crashed attempt\n", f);
	fclose(f);
	_cleanup_free_ uint8_t *b = body_of(100, 4);
	struct out_msg m = { 42, "xml", b, 100 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 1);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(l.hidden, 0);
	assert_file(INSTANCE "-000000000042.xml", b, 100);
	ops->destroy(t);
}

/* Message 3 of 4 cannot be written (its temporary name is taken by a
 * directory): the first two are delivered, nothing after is. */
Test(spool_out, write_failure_delivers_the_prefix)
{
	struct transport *t = create();
	_cleanup_free_ char *block = xasprintf("%s/." INSTANCE "-000000000003.xml.tmp", outbox);
	cr_assert_eq(mkdir(block, 0700), 0);
	_cleanup_free_ uint8_t *b = body_of(200, 5);
	struct out_msg msgs[4] = {
		{ 1, "xml", b, 200 }, { 2, "xml", b, 200 }, { 3, "xml", b, 200 }, { 4, "xml", b, 200 },
	};
	struct deliver_result res = { 0 };
	deliver_now(t, msgs, 4, &res);
	cr_assert_eq(res.delivered, 2, "delivered %zu", res.delivered);
	cr_assert_neq(res.fault, FAULT_NONE);
	cr_assert(strstr(res.error, outbox), "error does not name the outbox: %s", res.error);
	struct listing l = list_dir(outbox);
	cr_assert(listed(&l, INSTANCE "-000000000001.xml"));
	cr_assert(listed(&l, INSTANCE "-000000000002.xml"));
	cr_assert_not(listed(&l, INSTANCE "-000000000003.xml"));
	cr_assert_not(listed(&l, INSTANCE "-000000000004.xml"));
	cr_assert_not(listed(&l, "." INSTANCE "-000000000004.xml.tmp"), "temporary left");
	cr_assert_eq(l.n, 3, "%zu entries (expected 2 files and the blocking directory)", l.n);
	ops->destroy(t);
}

/* Message 2 of 3 cannot be renamed (its final name is a non-empty
 * directory): message 1 is delivered, the temporaries of 2 and 3 removed. */
Test(spool_out, rename_failure_delivers_the_prefix)
{
	struct transport *t = create();
	_cleanup_free_ char *block = xasprintf("%s/" INSTANCE "-000000000002.xml", outbox);
	_cleanup_free_ char *inner = xasprintf("%s/x", block);
	cr_assert_eq(mkdir(block, 0700), 0);
	cr_assert_eq(mkdir(inner, 0700), 0);
	_cleanup_free_ uint8_t *b = body_of(200, 5);
	struct out_msg msgs[3] = { { 1, "xml", b, 200 }, { 2, "xml", b, 200 }, { 3, "xml", b, 200 } };
	struct deliver_result res = { 0 };
	deliver_now(t, msgs, 3, &res);
	cr_assert_eq(res.delivered, 1, "delivered %zu", res.delivered);
	cr_assert_neq(res.fault, FAULT_NONE);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.hidden, 0, "temporaries left behind");
	cr_assert(listed(&l, INSTANCE "-000000000001.xml"));
	cr_assert_not(listed(&l, INSTANCE "-000000000003.xml"), "delivered past the failure");
	cr_assert_eq(l.n, 2);
	ops->destroy(t);
}

Test(spool_out, missing_outbox_is_refused_naming_the_path)
{
	struct transport *t = create();
	cr_assert_eq(rmdir(outbox), 0);
	_cleanup_free_ uint8_t *b = body_of(10, 1);
	struct out_msg m = { 1, "xml", b, 10 };
	struct deliver_result res = { .delivered = 5 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 0);
	cr_assert_eq(res.fault, FAULT_REFUSED);
	cr_assert(strstr(res.error, outbox), "error does not name %s: %s", outbox, res.error);
	ops->destroy(t);
}

Test(spool_out, immutable_outbox_is_refused_and_nothing_left)
{
	struct transport *t = create();
	set_immutable(true);
	_cleanup_free_ uint8_t *b = body_of(10, 1);
	struct out_msg msgs[2] = { { 1, "xml", b, 10 }, { 2, "xml", b, 10 } };
	struct deliver_result res = { .delivered = 5 };
	deliver_now(t, msgs, 2, &res);
	cr_assert_eq(res.delivered, 0);
	cr_assert_eq(res.fault, FAULT_REFUSED, "fault %s: %s", fault_name(res.fault),
		     res.error);
	cr_assert(strstr(res.error, outbox), "%s", res.error);
	set_immutable(false);
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n, 0, "%zu entries left in the outbox", l.n);
	ops->destroy(t);
}

Test(spool_out, create_dirs_makes_a_missing_outbox)
{
	_cleanup_free_ char *deep = xasprintf("%s/a/b/out", dir);
	sconf.outbox = deep;
	sconf.create_dirs = true;
	struct transport *t = create();
	/* the folder is made on the outbound lane, not inside create() */
	cr_assert_eq(lanes_wait(pool, 5000), 0);
	struct stat st;
	cr_assert_eq(stat(deep, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	_cleanup_free_ uint8_t *b = body_of(10, 1);
	struct out_msg m = { 1, "xml", b, 10 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 1);
	ops->destroy(t);
}

/* ---- who may read a delivered file: file_mode and file_group ------------ */

Test(spool_out, file_mode_and_group_are_set_whatever_the_umask)
{
	struct group *gr = getgrnam("daemon"); /* a group the test (root) is not in */
	cr_assert_not_null(gr, "the test needs the Debian group 'daemon'");
	gid_t want = gr->gr_gid;
	sconf.file_mode = "0604";
	sconf.file_group = "daemon";
	struct transport *t = create();
	mode_t old = umask(0077);
	_cleanup_free_ uint8_t *b = body_of(100, 5);
	struct out_msg m = { 9, "xml", b, 100 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	umask(old);
	cr_assert_eq(res.delivered, 1, "%s", res.error);
	struct stat st;
	_cleanup_free_ char *p = xasprintf("%s/%s", outbox, INSTANCE "-000000000009.xml");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0604);
	cr_assert_eq(st.st_gid, want);
	ops->destroy(t);
}

Test(spool_out, unusable_file_group_refuses_deliveries_and_probes)
{
	sconf.file_group = "ebtest-no-such-group";
	struct transport *t = create();
	_cleanup_free_ uint8_t *b = body_of(10, 1);
	struct out_msg m = { 1, "xml", b, 10 };
	struct deliver_result res = { 0 };
	deliver_now(t, &m, 1, &res);
	cr_assert_eq(res.delivered, 0);
	cr_assert_eq(res.fault, FAULT_REFUSED);
	cr_assert(strstr(res.error, "file_group: no group called 'ebtest-no-such-group'"), "%s",
		  res.error);
	cr_assert_eq(list_dir(outbox).n, 0, "nothing written");
	char err[192];
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_REFUSED);
	cr_assert(strstr(err, "ebtest-no-such-group"), "%s", err);
	ops->destroy(t);
}

Test(spool_out, check_names_the_file_and_line_of_file_group)
{
	char err[512] = "";
	cfg.path = "/etc/edibroker/edibroker.conf";
	epc.line = 12; /* no key lines: the section's */
	cr_assert_eq(ops->check(&epc, &cfg, err, sizeof(err)), 0, "no file_group: nothing to check");
	sconf.file_group = "daemon";
	cr_assert_eq(ops->check(&epc, &cfg, err, sizeof(err)), 0, "root may use any group: %s", err);
	sconf.file_group = "ebtest-no-such-group";
	cr_assert_eq(ops->check(&epc, &cfg, err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "/etc/edibroker/edibroker.conf:12: endpoint 'municipality': "
			      "file_group: no group called 'ebtest-no-such-group'");
}

Test(spool_out, create_refuses_an_endpoint_without_folders)
{
	sconf.outbox = NULL;
	char err[256] = "";
	cr_assert_null(ops->create(&epc, &tenv, err, sizeof(err)));
	cr_assert(strstr(err, "municipality"), "%s", err);
}

Test(spool_out, fault_mapping)
{
	cr_assert_eq(spool_fault(ENOSPC), FAULT_DISK_FULL);
	cr_assert_eq(spool_fault(EDQUOT), FAULT_DISK_FULL);
	cr_assert_eq(spool_fault(ENOENT), FAULT_REFUSED);
	cr_assert_eq(spool_fault(EACCES), FAULT_REFUSED);
	cr_assert_eq(spool_fault(EPERM), FAULT_REFUSED);
	cr_assert_eq(spool_fault(EROFS), FAULT_REFUSED);
	cr_assert_eq(spool_fault(EIO), FAULT_IO);
}

/* ---- probe ------------------------------------------------------------- */

Test(spool_out, probe_ok_on_writable_outbox_leaves_nothing)
{
	struct transport *t = create();
	char err[256] = "junk";
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_NONE, "%s", err);
	cr_assert_str_eq(err, "");
	struct listing l = list_dir(outbox);
	cr_assert_eq(l.n - l.hidden, 0, "the probe left a visible file: %s", l.names[0]);
	cr_assert_eq(l.n, 0, "the probe left %s", l.names[0]);
	ops->destroy(t);
}

Test(spool_out, probe_missing_outbox_is_refused)
{
	struct transport *t = create();
	cr_assert_eq(rmdir(outbox), 0);
	char err[256] = "";
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_REFUSED);
	cr_assert(strstr(err, outbox), "%s", err);
	ops->destroy(t);
}

Test(spool_out, probe_immutable_outbox_is_refused)
{
	struct transport *t = create();
	set_immutable(true);
	char err[256] = "";
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_REFUSED, "%s", err);
	cr_assert(strstr(err, outbox), "%s", err);
	set_immutable(false);
	cr_assert_eq(list_dir(outbox).n, 0);
	ops->destroy(t);
}

static void age_file(const char *name, time_t seconds)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", outbox, name);
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= seconds;
	ts[1] = ts[0];
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0, "utimensat %s", p);
}

static void drop_file(const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", outbox, name);
	testutil_write_file(p, "x", 1);
}

Test(spool_out, probe_reports_uncollected_files)
{
	sconf.pickup_timeout_ms = 600000; /* 10 min */
	struct transport *t = create();
	_cleanup_free_ uint8_t *b = body_of(10, 1);
	struct out_msg msgs[3] = { { 1, "xml", b, 10 }, { 2, "xml", b, 10 }, { 3, "xml", b, 10 } };
	struct deliver_result res = { 0 };
	deliver_now(t, msgs, 3, &res);
	cr_assert_eq(res.delivered, 3);
	char err[256] = "";
	/* fresh files: collected in time so far */
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_NONE, "%s", err);

	age_file(INSTANCE "-000000000001.xml", 3600);
	age_file(INSTANCE "-000000000002.xml", 1800);
	/* old files that are not ours do not count */
	drop_file("other123-000000000001.xml");
	age_file("other123-000000000001.xml", 7200);
	drop_file("." INSTANCE "-000000000009.xml.tmp");
	age_file("." INSTANCE "-000000000009.xml.tmp", 7200);

	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_TIMEOUT, "%s", err);
	cr_assert(strstr(err, "2 file(s)"), "count missing or wrong: %s", err);
	cr_assert(strstr(err, outbox), "%s", err);
	cr_assert(strstr(err, "3600s") || strstr(err, "3601s"), "oldest age missing: %s", err);
	ops->destroy(t);
}

Test(spool_out, probe_ignores_age_when_pickup_timeout_is_off)
{
	sconf.pickup_timeout_ms = 0;
	struct transport *t = create();
	drop_file(INSTANCE "-000000000001.xml");
	age_file(INSTANCE "-000000000001.xml", 86400 * 30);
	char err[256] = "";
	cr_assert_eq(probe_now(t, err, sizeof(err)), FAULT_NONE, "%s", err);
	ops->destroy(t);
}

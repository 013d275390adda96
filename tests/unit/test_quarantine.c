/*
 * test_quarantine.c - moving a refused inbound file into the quarantine
 * folder (quarantine.c), in fresh temporary directories.
 *
 * Covers: the file moves byte-identical as "<UTC stamp>-<name>" with a
 * "<...>.reason" file holding its fields; the folder is created when
 * missing; an earlier quarantined file of the same name is never replaced
 * (the next gets a numbered name); the move across file systems (copy, sync,
 * unlink: quarantine on /dev/shm, inbox on /tmp); a failed move leaves the
 * input where it was and nothing behind in the quarantine.
 */
#include "transport/quarantine.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define RECEIVED_MS 1709280900123LL /* 2024-03-01T08:15:00.123Z */
#define STAMP "20240301T081500Z"

static char dir[PATH_MAX];
static char shm[PATH_MAX];
static char inbox[PATH_MAX + 16];
static int inbox_fd = -1;

static const struct quarantine_info info = {
	.endpoint = "hospital",
	.error = "syntax",
	.reason = "line 3: premature end of data in tag Envelope",
	.received_at = RECEIVED_MS,
};

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_quarantine.XXXXXX");
	shm[0] = '\0';
	snprintf(inbox, sizeof(inbox), "%s/in", dir);
	cr_assert_eq(mkdir(inbox, 0750), 0);
	inbox_fd = open(inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(inbox_fd, 0);
}

static void teardown(void)
{
	if (inbox_fd >= 0)
		close(inbox_fd);
	testutil_rm_rf(dir);
	testutil_rm_rf(shm);
}

TestSuite(quarantine, .init = setup, .fini = teardown, .timeout = 20);

/* ---- helpers ----------------------------------------------------------- */

static void put(const char *d, const char *name, const void *body, size_t len)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", d, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
	cr_assert_geq(fd, 0, "%s", p);
	cr_assert_eq(write_all(fd, body, len), 0);
	close(fd);
}

/* Contents of d/name (NUL-terminated); the caller frees. */
static char *slurp(const char *d, const char *name, size_t *len)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", d, name);
	return testutil_read_file(p, len);
}

static bool exists(const char *d, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", d, name);
	struct stat st;
	return lstat(p, &st) == 0;
}

static void assert_reason(const char *qdir, const char *qname)
{
	_cleanup_free_ char *rname = xasprintf("%s.reason", qname);
	_cleanup_free_ char *text = slurp(qdir, rname, NULL);
	_cleanup_free_ char *want_file = xasprintf("file: %s\n", qname);
	cr_assert(strstr(text, want_file), "reason file lacks \"%s\":\n%s", want_file, text);
	cr_assert(strstr(text, "endpoint: hospital\n"), "%s", text);
	cr_assert(strstr(text, "received: 2024-03-01T08:15:00Z\n"), "%s", text);
	cr_assert(strstr(text, "error: syntax\n"), "%s", text);
	cr_assert(strstr(text, "reason: line 3: premature end of data in tag Envelope\n"), "%s",
		  text);
}

/* ---- tests ------------------------------------------------------------- */

Test(quarantine, moves_file_with_reason_beside_it)
{
	_cleanup_free_ char *qdir = xasprintf("%s/q", dir);
	cr_assert_eq(mkdir(qdir, 0750), 0);
	uint8_t body[3000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 13);
	put(inbox, "bad.xml", body, sizeof(body));
	char out[PATH_MAX + 64] = "";
	cr_assert_eq(quarantine_file(inbox_fd, "bad.xml", qdir, &info, out, sizeof(out)), 0);

	cr_assert_not(exists(inbox, "bad.xml"), "the file is still in the inbox");
	const char *qname = STAMP "-bad.xml";
	size_t len = 0;
	_cleanup_free_ char *got = slurp(qdir, qname, &len);
	cr_assert_eq(len, sizeof(body));
	cr_assert_arr_eq(got, body, sizeof(body));
	assert_reason(qdir, qname);
	_cleanup_free_ char *want_out = xasprintf("%s/%s", qdir, qname);
	cr_assert_str_eq(out, want_out);
	size_t hidden = 0;
	cr_assert_eq(testutil_count_entries(qdir, &hidden), 2, "expected the file and its reason");
	cr_assert_eq(hidden, 0, "temporary files left behind");
}

Test(quarantine, creates_missing_folder)
{
	_cleanup_free_ char *qdir = xasprintf("%s/state/quarantine/hospital", dir);
	put(inbox, "x.xml", "<x/>", 4);
	cr_assert_eq(quarantine_file(inbox_fd, "x.xml", qdir, &info, NULL, 0), 0);
	struct stat st;
	cr_assert_eq(stat(qdir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert(exists(qdir, STAMP "-x.xml"));
	cr_assert(exists(qdir, STAMP "-x.xml.reason"));
	cr_assert_not(exists(inbox, "x.xml"));
}

Test(quarantine, same_name_is_never_replaced)
{
	_cleanup_free_ char *qdir = xasprintf("%s/q", dir);
	put(inbox, "dup.xml", "first", 5);
	cr_assert_eq(quarantine_file(inbox_fd, "dup.xml", qdir, &info, NULL, 0), 0);
	put(inbox, "dup.xml", "second", 6);
	char out[PATH_MAX + 64] = "";
	cr_assert_eq(quarantine_file(inbox_fd, "dup.xml", qdir, &info, out, sizeof(out)), 0);
	put(inbox, "dup.xml", "third!!", 7);
	cr_assert_eq(quarantine_file(inbox_fd, "dup.xml", qdir, &info, NULL, 0), 0);

	_cleanup_free_ char *a = slurp(qdir, STAMP "-dup.xml", NULL);
	cr_assert_str_eq(a, "first", "the first quarantined file was replaced");
	_cleanup_free_ char *b = slurp(qdir, STAMP "-1-dup.xml", NULL);
	cr_assert_str_eq(b, "second");
	_cleanup_free_ char *c = slurp(qdir, STAMP "-2-dup.xml", NULL);
	cr_assert_str_eq(c, "third!!");
	_cleanup_free_ char *want_out = xasprintf("%s/" STAMP "-1-dup.xml", qdir);
	cr_assert_str_eq(out, want_out);
	assert_reason(qdir, STAMP "-dup.xml");
	assert_reason(qdir, STAMP "-1-dup.xml");
	assert_reason(qdir, STAMP "-2-dup.xml");
	cr_assert_eq(testutil_count_entries(qdir, NULL), 6);
	cr_assert_eq(testutil_count_entries(inbox, NULL), 0);
}

/* Even when a thousand files of the same name and stamp are there already,
 * none of them is replaced. */
Test(quarantine, never_replaces_even_after_many_of_the_same_name)
{
	_cleanup_free_ char *qdir = xasprintf("%s/q", dir);
	cr_assert_eq(mkdir(qdir, 0750), 0);
	for (int i = 0; i < 1000; i++) {
		_cleanup_free_ char *name = i ? xasprintf(STAMP "-%d-many.xml", i)
					      : xstrdup(STAMP "-many.xml");
		_cleanup_free_ char *body = xasprintf("old %d", i);
		put(qdir, name, body, strlen(body));
	}
	put(inbox, "many.xml", "new", 3);
	int r = quarantine_file(inbox_fd, "many.xml", qdir, &info, NULL, 0);
	for (int i = 0; i < 1000; i++) {
		_cleanup_free_ char *name = i ? xasprintf(STAMP "-%d-many.xml", i)
					      : xstrdup(STAMP "-many.xml");
		_cleanup_free_ char *want = xasprintf("old %d", i);
		_cleanup_free_ char *got = slurp(qdir, name, NULL);
		cr_assert_str_eq(got, want, "%s was replaced (quarantine_file returned %d)", name, r);
	}
	if (r < 0) /* refusing is acceptable; then the input stays in the inbox */
		cr_assert(exists(inbox, "many.xml"));
}

Test(quarantine, different_times_get_different_stamps)
{
	_cleanup_free_ char *qdir = xasprintf("%s/q", dir);
	put(inbox, "a.xml", "1", 1);
	cr_assert_eq(quarantine_file(inbox_fd, "a.xml", qdir, &info, NULL, 0), 0);
	struct quarantine_info later = info;
	later.received_at += 3600 * 1000;
	put(inbox, "a.xml", "2", 1);
	cr_assert_eq(quarantine_file(inbox_fd, "a.xml", qdir, &later, NULL, 0), 0);
	cr_assert(exists(qdir, STAMP "-a.xml"));
	cr_assert(exists(qdir, "20240301T091500Z-a.xml"));
}

/* The quarantine on another file system (tmpfs): copied, synced, and the
 * original unlinked. */
Test(quarantine, moves_across_file_systems)
{
	struct statfs a, b;
	str_copy(shm, "/dev/shm/test_quarantine.XXXXXX", sizeof(shm));
	cr_assert_not_null(mkdtemp(shm), "the test needs /dev/shm (a second file system)");
	cr_assert_eq(statfs(inbox, &a), 0);
	cr_assert_eq(statfs(shm, &b), 0);
	cr_assert(a.f_type != b.f_type || memcmp(&a.f_fsid, &b.f_fsid, sizeof(a.f_fsid)) != 0,
		  "/dev/shm is on the same file system as /tmp: no cross-device move to test");
	_cleanup_free_ char *qdir = xasprintf("%s/q", shm);
	uint8_t body[70000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 31 + 1);
	put(inbox, "far.xml", body, sizeof(body));
	cr_assert_eq(quarantine_file(inbox_fd, "far.xml", qdir, &info, NULL, 0), 0);
	cr_assert_not(exists(inbox, "far.xml"));
	size_t len = 0;
	_cleanup_free_ char *got = slurp(qdir, STAMP "-far.xml", &len);
	cr_assert_eq(len, sizeof(body));
	cr_assert_arr_eq(got, body, sizeof(body));
	assert_reason(qdir, STAMP "-far.xml");
	size_t hidden = 0;
	cr_assert_eq(testutil_count_entries(qdir, &hidden), 2);
	cr_assert_eq(hidden, 0);
}

/* A file that cannot be moved (it vanished from the inbox) fails the call
 * and leaves no reason file without a file in the quarantine. */
Test(quarantine, failed_move_leaves_nothing_behind)
{
	_cleanup_free_ char *qdir = xasprintf("%s/q", dir);
	int r = quarantine_file(inbox_fd, "gone.xml", qdir, &info, NULL, 0);
	cr_assert_eq(r, -ENOENT, "r = %d", r);
	size_t n = testutil_count_entries(qdir, NULL);
	cr_assert_eq(n, 0, "%zu entries left in the quarantine (an orphan .reason file)", n);
}

/* A quarantine path that cannot be a folder: an error, and the input stays
 * in the inbox. */
Test(quarantine, unusable_folder_keeps_the_input)
{
	_cleanup_free_ char *qdir = xasprintf("%s/notadir", dir);
	put(dir, "notadir", "file", 4);
	put(inbox, "keep.xml", "keep", 4);
	int r = quarantine_file(inbox_fd, "keep.xml", qdir, &info, NULL, 0);
	cr_assert_lt(r, 0);
	_cleanup_free_ char *got = slurp(inbox, "keep.xml", NULL);
	cr_assert_str_eq(got, "keep");
}

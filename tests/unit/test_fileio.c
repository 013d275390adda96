/*
 * test_fileio.c - write_file_atomic_at() (fileio.c) in a fresh temporary
 * folder: the file holds exactly the bytes and exactly the mode asked for
 * whatever the umask; an existing file is replaced by a new inode, or kept
 * with -EEXIST under WRITE_ATOMIC_NOREPLACE; a leftover temporary of a
 * crashed writer is overwritten; a link planted under the temporary name is
 * never written through; and every failure (a missing or read-only folder,
 * a write cut short by RLIMIT_FSIZE, a rename onto a folder) leaves the old
 * file as it was and no temporary file behind.
 */
#include "base/fileio.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOBODY 65534

static char dir[PATH_MAX];
static int dfd = -1;

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_fileio.XXXXXX");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
}

static void teardown(void)
{
	if (dfd >= 0)
		close(dfd);
	chmod(dir, 0700);
	testutil_rm_rf(dir);
}

TestSuite(fileio, .init = setup, .fini = teardown, .timeout = 20);

static char *path_of(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* name holds exactly want (len bytes). */
static void assert_content(const char *name, const void *want, size_t len)
{
	_cleanup_free_ char *path = path_of(name);
	size_t got_len = 0;
	_cleanup_free_ char *got = testutil_read_file(path, &got_len);
	cr_assert_eq(got_len, len, "%s: %zu bytes, expected %zu", name, got_len, len);
	if (len)
		cr_assert_arr_eq(got, want, len, "%s: contents differ", name);
}

static void put(const char *name, const char *text)
{
	_cleanup_free_ char *path = path_of(name);
	testutil_write_file(path, text, strlen(text));
}

static void assert_no_temporary(void)
{
	size_t hidden = 0;
	testutil_count_entries(dir, &hidden);
	cr_assert_eq(hidden, 0, "a temporary file was left behind");
}

Test(fileio, writes_every_byte_with_the_mode_asked_for)
{
	static const char body[] = "status\0with a NUL and \xff\n";
	umask(077);
	cr_assert_eq(write_file_atomic_at(dfd, "a.json", body, sizeof(body), 0644, 0), 0);
	umask(0);
	cr_assert_eq(write_file_atomic_at(dfd, "b.reason", "x", 1, 0600, 0), 0);
	assert_content("a.json", body, sizeof(body));
	assert_content("b.reason", "x", 1);
	struct stat a, b;
	cr_assert_eq(fstatat(dfd, "a.json", &a, 0), 0);
	cr_assert_eq(fstatat(dfd, "b.reason", &b, 0), 0);
	cr_assert_eq(a.st_mode & 07777, 0644, "mode %o under umask 077", a.st_mode & 07777);
	cr_assert_eq(b.st_mode & 07777, 0600, "mode %o under umask 0", b.st_mode & 07777);
	cr_assert_eq(testutil_count_entries(dir, NULL), 2);
	assert_no_temporary();
}

Test(fileio, writes_an_empty_file)
{
	cr_assert_eq(write_file_atomic_at(dfd, "empty", "", 0, 0640, 0), 0);
	assert_content("empty", "", 0);
	assert_no_temporary();
}

/* A replacement is a new inode renamed over the old name, never a rewrite
 * in place: a reader holding the old file keeps reading it whole. */
Test(fileio, replaces_an_existing_file_whole)
{
	put("page", "the old page, longer than the new one\n");
	struct stat before, after;
	cr_assert_eq(fstatat(dfd, "page", &before, 0), 0);
	_cleanup_close_ int old = openat(dfd, "page", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(old, 0);
	cr_assert_eq(write_file_atomic_at(dfd, "page", "new\n", 4, 0644, 0), 0);
	cr_assert_eq(fstatat(dfd, "page", &after, 0), 0);
	cr_assert_neq(before.st_ino, after.st_ino, "rewritten in place, not replaced");
	assert_content("page", "new\n", 4);
	char buf[64] = "";
	cr_assert_eq(pread(old, buf, sizeof(buf) - 1, 0), 38, "the old file changed under its reader");
	cr_assert_eq(testutil_count_entries(dir, NULL), 1);
}

Test(fileio, noreplace_keeps_an_existing_file)
{
	put("q.reason", "first\n");
	int r = write_file_atomic_at(dfd, "q.reason", "second\n", 7, 0640, WRITE_ATOMIC_NOREPLACE);
	cr_assert_eq(r, -EEXIST, "r = %d", r);
	assert_content("q.reason", "first\n", 6);
	assert_no_temporary();
	cr_assert_eq(write_file_atomic_at(dfd, "r.reason", "third\n", 6, 0640,
					  WRITE_ATOMIC_NOREPLACE), 0);
	assert_content("r.reason", "third\n", 6);
}

/* What a crashed writer left under the temporary name is overwritten, not
 * appended to, and does not survive. */
Test(fileio, leftover_temporary_is_overwritten)
{
	put(".page.tmp", "stale data from a crashed writer, much longer than the page\n");
	cr_assert_eq(write_file_atomic_at(dfd, "page", "fresh\n", 6, 0644, 0), 0);
	assert_content("page", "fresh\n", 6);
	assert_no_temporary();
}

Test(fileio, never_writes_through_a_link_at_the_temporary_name)
{
	put("victim", "keep me\n");
	cr_assert_eq(symlinkat("victim", dfd, ".page.tmp"), 0);
	int r = write_file_atomic_at(dfd, "page", "evil\n", 5, 0644, 0);
	cr_assert_eq(r, -ELOOP, "r = %d", r);
	assert_content("victim", "keep me\n", 8);
	struct stat st;
	cr_assert_eq(fstatat(dfd, "page", &st, 0), -1, "page was created");
}

/* The folder was removed after it was opened (a share went away). */
Test(fileio, missing_folder_fails_and_leaves_nothing)
{
	cr_assert_eq(rmdir(dir), 0);
	int r = write_file_atomic_at(dfd, "page", "x", 1, 0644, 0);
	cr_assert_eq(r, -ENOENT, "r = %d", r);
	cr_assert_eq(mkdir(dir, 0700), 0); /* for teardown; and it stays empty */
	cr_assert_eq(testutil_count_entries(dir, NULL), 0);
}

/* Root writes to a mode 0555 folder all the same, so as root the write runs
 * with the effective uid of nobody. */
Test(fileio, read_only_folder_fails_and_keeps_the_old_file)
{
	put("page", "old\n");
	cr_assert_eq(chmod(dir, 0555), 0);
	bool root = geteuid() == 0;
	if (root)
		cr_assert_eq(seteuid(NOBODY), 0);
	int r = write_file_atomic_at(dfd, "page", "new\n", 4, 0644, 0);
	if (root)
		cr_assert_eq(seteuid(0), 0);
	cr_assert_eq(r, -EACCES, "r = %d", r);
	assert_content("page", "old\n", 4);
	assert_no_temporary();
}

/* The write itself fails half way (RLIMIT_FSIZE: EFBIG, as ENOSPC would):
 * the temporary file exists by then and must go. */
Test(fileio, failed_write_removes_the_temporary)
{
	put("page", "old\n");
	cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
	struct rlimit lim = { 100, 100 };
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	static char big[4096];
	memset(big, 'x', sizeof(big));
	int r = write_file_atomic_at(dfd, "page", big, sizeof(big), 0644, 0);
	cr_assert_eq(r, -EFBIG, "r = %d", r);
	assert_content("page", "old\n", 4);
	assert_no_temporary();
}

/* The rename fails (the name is a folder): the temporary file must go. */
Test(fileio, failed_rename_removes_the_temporary)
{
	_cleanup_free_ char *sub = path_of("page");
	cr_assert_eq(mkdir(sub, 0700), 0);
	_cleanup_free_ char *inside = path_of("page/keep");
	testutil_write_file(inside, "k", 1);
	int r = write_file_atomic_at(dfd, "page", "x", 1, 0644, 0);
	cr_assert(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST, "r = %d", r);
	assert_content("page/keep", "k", 1);
	assert_no_temporary();
}

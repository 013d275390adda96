/*
 * testutil.c - shared fixtures of the unit tests (testutil.h): temporary
 * folders, whole-file reads and writes, folder listings, plain SQLite
 * connections on a database file. It owns no state;
 * each helper works on the paths it is given and fails the calling test
 * through Criterion when the file system does not do what the test needs.
 */
#include "tests/unit/testutil.h"

#include "base/fileio.h"
#include "codecs/base/mem.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define READ_MAX (64u << 20)

char *testutil_mkdtemp(char *buf, size_t len, const char *tmpl)
{
	cr_assert_lt(str_copy(buf, tmpl, len), len, "template %s too long", tmpl);
	cr_assert_not_null(mkdtemp(buf), "mkdtemp %s: %s", tmpl, strerror(errno));
	return buf;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0; /* keep going: remove what can be removed */
}

void testutil_rm_rf(const char *path)
{
	if (!str_empty(path))
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void *testutil_read_file(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int r = read_file_at(AT_FDCWD, path, READ_MAX, &buf, &n);
	cr_assert_eq(r, 0, "cannot read %s: %s%s", path, strerror(-r),
		     path[0] == '/' ? "" : " (unit tests run from the repository root)");
	if (len)
		*len = n;
	return buf;
}

void testutil_write_file(const char *path, const void *data, size_t len)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "cannot create %s: %s", path, strerror(errno));
	int r = write_all(fd, data, len);
	cr_assert_eq(r, 0, "cannot write %s: %s", path, strerror(-r));
	cr_assert_eq(close(TAKE_FD(fd)), 0, "cannot close %s: %s", path, strerror(errno));
}

size_t testutil_count_entries(const char *dir, size_t *hidden)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	size_t n = 0, h = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		h += e->d_name[0] == '.';
	}
	closedir(d);
	if (hidden)
		*hidden = h;
	return n;
}

sqlite3 *testutil_sql_open(const char *path, int flags)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	cr_assert_eq(rc, SQLITE_OK, "sqlite3_open_v2: %s", sqlite3_errmsg(db));
	return db;
}

int64_t testutil_sql_int(const char *path, const char *sql)
{
	sqlite3 *db = testutil_sql_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

void testutil_sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = testutil_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

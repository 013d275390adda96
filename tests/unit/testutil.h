/*
 * testutil.h - what many unit tests need around the module they test: a
 * fresh temporary folder and its removal, whole files read and written, a
 * folder's entries counted. Linked ahead of the library into every unit
 * test binary (Makefile: FAKE_SRCS), so a test includes this header and
 * carries no copy of its own.
 *
 * A helper that cannot do its job fails the running Criterion test
 * (cr_assert) instead of returning an error: a fixture that does not hold
 * is a broken test, not a result. testutil_rm_rf() is the exception: it
 * runs in teardowns, where there is nothing left to fail.
 */
#ifndef EDIBROKER_TESTUTIL_H
#define EDIBROKER_TESTUTIL_H

#include <stddef.h>

/* Creates a new folder from tmpl ("/tmp/test_x.XXXXXX") into buf (len bytes)
 * and returns buf. */
char *testutil_mkdtemp(char *buf, size_t len, const char *tmpl);

/* Removes path and everything below it, like rm -rf: links are removed, not
 * followed. NULL, "" or a missing path is nothing to do. */
void testutil_rm_rf(const char *path);

/* The whole of the file at path (at most 64 MiB), NUL-terminated one byte
 * past *len so text reads as a string; free() it. len may be NULL. */
void *testutil_read_file(const char *path, size_t *len);

/* Creates or truncates path (0644 before the umask) to hold data[0..len). */
void testutil_write_file(const char *path, const void *data, size_t len);

/* The entries of folder dir but "." and ".."; *hidden, when hidden is not
 * NULL, gets how many of them start with '.'. */
size_t testutil_count_entries(const char *dir, size_t *hidden);

#endif

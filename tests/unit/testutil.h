/*
 * testutil.h - what many unit tests need around the module they test: a
 * fresh temporary folder and its removal, whole files read and written, a
 * folder's entries counted, a store's database file read and changed behind
 * its back. Linked ahead of the library into every unit
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
#include <stdint.h>

struct sqlite3;
struct codec_envelope;

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

/* A plain SQLite connection (sqlite3_open_v2 flags) on the database file at
 * path, beside whatever connection the code under test holds. */
struct sqlite3 *testutil_sql_open(const char *path, int flags);

/* The first column of the first row sql returns from the database at path. */
int64_t testutil_sql_int(const char *path, const char *sql);

/* Runs sql (one or more statements) on the database at path, creating the
 * file when it is missing. */
void testutil_sql_exec(const char *path, const char *sql);

/* ---- PostgreSQL ----------------------------------------------------------- */

/* The server the store tests run against (EDIBROKER_TEST_PG_URL, set by
 * tests/scripts/with-pg.sh), or NULL: they then run on SQLite. */
const char *testutil_pg_url(void);

/* A fresh, empty schema of its own in that database for one test: its name
 * into schema, and a URL whose connections use it (search_path) into url. */
void testutil_pg_schema(char *url, size_t len, char *schema, size_t slen);
/* testutil_pg_schema() when the tests run against a server, else url and
 * schema empty (the suites both backends share: empty url = SQLite). */
void testutil_pg_schema_if_any(char *url, size_t len, char *schema, size_t slen);
/* Drops the schema made above with everything in it (teardowns). */
void testutil_pg_drop(const char *schema);
/* The first column of the first row sql returns, over url; and sql run. */
int64_t testutil_pg_int(const char *url, const char *sql);
void testutil_pg_exec(const char *url, const char *sql);

/* ---- codec fixtures ---------------------------------------------------- */

/* Sorted names of the regular files in dir, NULL-terminated; *n gets the
 * count. Free with testutil_free_names(). */
char **testutil_list_files(const char *dir, size_t *n);
void testutil_free_names(char **names);
/* For `_cleanup_names_ char **names = testutil_list_files(...)`. */
void testutil_free_namesp(char ***names);
#define _cleanup_names_ _cleanup_(testutil_free_namesp)

/* The envelope as golden-file text: codec, inner codec, envelope fields,
 * each layer, each txid (digest in hex), each letter; one "key=value" per
 * line. Caller frees. */
char *testutil_dump_envelope(const struct codec_envelope *e);

/* What an acknowledgement refers to, as golden-file lines ("refers=...",
 * "ref[i]=..."); "" for anything else. Caller frees. */
struct codec_refers;
char *testutil_dump_refers(const struct codec_refers *rf);

/* Compares got[0..len) with the golden file at path (a text golden file:
 * len = strlen(got)), failing the test (cr_expect) on a missing file or a
 * difference; name is the sample it belongs to. EDIBROKER_WRITE_GOLDEN=1
 * in the environment rewrites the file from got first. */
void testutil_expect_golden(const char *path, const void *got, size_t len, const char *name);

/* Every "*.golden" file in golden_dir has its sample in samples_dir, and
 * there are at least min of them. */
void testutil_golden_files_have_samples(const char *golden_dir, const char *samples_dir,
					size_t min);

/* Unpacks the shared OIOXML schema tarball of `release` ("2005-08-07")
 * into a new temporary folder and returns the path of its EMessage.xsd;
 * testutil_rm_rf(*dir) removes it. ../shared is never written. */
char *testutil_oioxml_xsd(const char *release, char *dir, size_t dirlen);

/* Validates buf[0..len) against the XSD at xsd_path; fails the test with
 * every error the validator reports. */
void testutil_assert_schema_valid(const char *xsd_path, const void *buf, size_t len);

#endif

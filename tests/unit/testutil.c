/*
 * testutil.c - shared fixtures of the unit tests (testutil.h): temporary
 * folders, whole-file reads and writes, folder listings, plain SQLite
 * connections on a database file, a schema of its own per test on the
 * PostgreSQL server the store tests use. It owns no state;
 * each helper works on the paths it is given and fails the calling test
 * through Criterion when the file system does not do what the test needs.
 */
#include "tests/unit/testutil.h"

#include "base/fileio.h"
#include "codecs/base/mem.h"
#include "codecs/codec.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#include <stdio.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- codec fixtures ---------------------------------------------------- */

char **testutil_list_files(const char *dir, size_t *n)
{
	struct dirent **ents;
	int m = scandir(dir, &ents, NULL, alphasort);
	cr_assert_geq(m, 0, "cannot list %s: %s", dir, strerror(errno));
	char **names = xcalloc((size_t)m + 1, sizeof(*names));
	size_t k = 0;
	for (int i = 0; i < m; i++) {
		struct stat st;
		char *path = xasprintf("%s/%s", dir, ents[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			names[k++] = xstrdup(ents[i]->d_name);
		free(path);
		free(ents[i]);
	}
	free(ents);
	*n = k;
	return names;
}

void testutil_free_names(char **names)
{
	for (char **p = names; p && *p; p++)
		free(*p);
	free(names);
}

void testutil_free_namesp(char ***names)
{
	testutil_free_names(*names);
}

void testutil_expect_golden(const char *path, const void *got, size_t len, const char *name)
{
	if (getenv("EDIBROKER_WRITE_GOLDEN"))
		testutil_write_file(path, got, len);
	uint8_t *want = NULL;
	size_t wlen;
	int r = read_file_at(AT_FDCWD, path, 1 << 24, &want, &wlen);
	cr_expect_eq(r, 0, "%s has no golden file %s: %s", name, path, strerror(-r));
	if (r == 0)
		cr_expect(wlen == len && memcmp(want, got, len) == 0,
			  "%s differs from %s:\n%.*s", name, path, (int)len, (const char *)got);
	free(want);
}

void testutil_golden_files_have_samples(const char *golden_dir, const char *samples_dir,
					size_t min)
{
	size_t n;
	char **names = testutil_list_files(golden_dir, &n);
	cr_expect_geq(n, min, "%zu golden files in %s, want at least %zu", n, golden_dir, min);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		cr_expect(len > 7 && strcmp(names[i] + len - 7, ".golden") == 0,
			  "%s/%s is not a golden file", golden_dir, names[i]);
		char *path = xasprintf("%s/%.*s", samples_dir, (int)len - 7, names[i]);
		cr_expect_eq(access(path, R_OK), 0, "stale golden file %s: no sample %s", names[i],
			     path);
		free(path);
	}
	testutil_free_names(names);
}

/* Appends a printf-formatted line to *s. */
static void __attribute__((format(printf, 2, 3))) add_line(char **s, const char *fmt, ...)
{
	va_list ap;
	char *line;
	va_start(ap, fmt);
	cr_assert_geq(vasprintf(&line, fmt, ap), 0);
	va_end(ap);
	char *t = xasprintf("%s%s\n", *s ? *s : "", line);
	free(line);
	free(*s);
	*s = t;
}

static void dump_layer(char **s, size_t i, const struct codec_layer *l)
{
	add_line(s, "layer[%zu].codec=%s", i, l->codec ? l->codec->name : "-");
	add_line(s, "layer[%zu].id=%s", i, l->id);
	add_line(s, "layer[%zu].sender=%s %s", i, l->sender_kind, l->sender);
	add_line(s, "layer[%zu].receiver=%s %s", i, l->receiver_kind, l->receiver);
	add_line(s, "layer[%zu].message_id=%s", i, l->message_id);
	add_line(s, "layer[%zu].document=%s %s %s %lld", i, l->doc_format, l->doc_name,
		 l->doc_version, l->declared_size);
}

static void dump_txid(char **s, size_t i, const struct codec_txid *t)
{
	char hex[2 * CODEC_DIGEST_LEN + 1];
	for (int k = 0; k < CODEC_DIGEST_LEN; k++)
		snprintf(hex + 2 * k, 3, "%02x", t->digest[k]);
	add_line(s, "txid[%zu]=%s %s %s %s", i, t->scope, t->sender, t->id, hex);
}

static void dump_letter(char **s, size_t i, const struct codec_letter *l)
{
	add_line(s, "letter[%zu].id=%s", i, l->id);
	add_line(s, "letter[%zu].type=%s", i, l->type);
	add_line(s, "letter[%zu].version=%s", i, l->version);
	add_line(s, "letter[%zu].sender=%s sor=%s", i, l->sender, l->sender_sor);
	add_line(s, "letter[%zu].receiver=%s sor=%s", i, l->receiver, l->receiver_sor);
}

/* Only an acknowledgement has refers lines, so other golden files keep
 * their shape. */
static void dump_refers(char **s, const struct codec_refers *rf)
{
	if (rf->code == CODEC_ACK_NONE && rf->n == 0)
		return;
	add_line(s, "refers=%s scope=%s detail=%s", codec_ack_name(rf->code),
		 rf->scope ? rf->scope : "-", rf->detail);
	for (size_t i = 0; i < rf->n; i++)
		add_line(s, "ref[%zu]=sender=%s envelope=%s letter=%s", i + 1, rf->refs[i].sender,
			 rf->refs[i].envelope_id, rf->refs[i].letter_id);
}

char *testutil_dump_refers(const struct codec_refers *rf)
{
	char *s = NULL;
	dump_refers(&s, rf);
	return s ? s : xstrdup("");
}

char *testutil_dump_envelope(const struct codec_envelope *e)
{
	char *s = NULL;
	add_line(&s, "codec=%s", e->codec ? e->codec->name : "-");
	add_line(&s, "inner=%s", e->inner ? e->inner->name : "-");
	add_line(&s, "encoding=%s", e->encoding);
	add_line(&s, "envelope_id=%s", e->envelope_id);
	add_line(&s, "sent=%s", e->sent);
	add_line(&s, "ack_requested=%s", e->ack_requested ? "yes" : "no");
	add_line(&s, "is_receipt=%s", e->is_receipt ? "yes" : "no");
	for (size_t i = 0; i < e->nlayers; i++)
		dump_layer(&s, i + 1, &e->layers[i]);
	for (size_t i = 0; i < e->ntxids; i++)
		dump_txid(&s, i + 1, &e->txids[i]);
	add_line(&s, "nletters=%zu", e->nletters);
	for (size_t i = 0; i < e->nletters; i++)
		dump_letter(&s, i + 1, &e->letters[i]);
	dump_refers(&s, &e->refers);
	return s;
}

char *testutil_oioxml_xsd(const char *release, char *dir, size_t dirlen)
{
	const char *samples = getenv("EDIBROKER_SCHEMAS");
	char *tarball = xasprintf("%s/oioxml-xsd_%s.tar.gz",
				  str_empty(samples) ? "../shared/medcom-samples/schemas" : samples,
				  release);
	testutil_mkdtemp(dir, dirlen, "/tmp/edibroker-xsd-XXXXXX");
	char *cmd = xasprintf("tar -xzf '%s' -C '%s'", tarball, dir);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
	free(cmd);
	free(tarball);
	char date[16];
	str_copy(date, release, sizeof(date));
	for (char *p = date; *p; p++)
		*p = *p == '-' ? '/' : *p;
	return xasprintf("%s/data/xml/Schemas/%s/EMessage.xsd", dir, date);
}

static void collect_error(void *ctx, xmlErrorPtr e)
{
	char **all = ctx;
	char *s = xasprintf("%s%d:%d %s", *all ? *all : "", e->line, e->int2, e->message);
	free(*all);
	*all = s;
}

void testutil_assert_schema_valid(const char *xsd_path, const void *buf, size_t len)
{
	char *errors = NULL;
	xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(xsd_path);
	xmlSchemaSetParserStructuredErrors(pc, collect_error, &errors);
	xmlSchemaPtr schema = xmlSchemaParse(pc);
	cr_assert_not_null(schema, "schema %s did not load: %s", xsd_path, errors ? errors : "?");
	xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(schema);
	xmlSchemaSetValidStructuredErrors(vc, collect_error, &errors);
	xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET);
	cr_assert_not_null(doc, "not well-formed:\n%.*s", (int)len, (const char *)buf);
	int r = xmlSchemaValidateDoc(vc, doc);
	xmlFreeDoc(doc);
	xmlSchemaFreeValidCtxt(vc);
	xmlSchemaFree(schema);
	xmlSchemaFreeParserCtxt(pc);
	cr_assert_eq(r, 0, "fails %s: %s\n%.*s", xsd_path, errors ? errors : "", (int)len,
		     (const char *)buf);
	free(errors);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

const char *testutil_pg_url(void)
{
	const char *u = getenv("EDIBROKER_TEST_PG_URL");
	return str_empty(u) ? NULL : u;
}

static void pg_quiet(void *arg, const PGresult *res)
{
	(void)arg, (void)res;
}

static PGconn *pg_connect_url(const char *url)
{
	PGconn *c = PQconnectdb(url);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
	PQsetNoticeReceiver(c, pg_quiet, NULL);
	return c;
}

void testutil_pg_exec(const char *url, const char *sql)
{
	PGconn *c = pg_connect_url(url);
	PGresult *r = PQexec(c, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

int64_t testutil_pg_int(const char *url, const char *sql)
{
	PGconn *c = pg_connect_url(url);
	PGresult *r = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
	cr_assert_gt(PQntuples(r), 0, "%s: no row", sql);
	int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

void testutil_pg_schema(char *url, size_t len, char *schema, size_t slen)
{
	static unsigned n;
	const char *base = testutil_pg_url();
	cr_assert_not_null(base, "EDIBROKER_TEST_PG_URL is not set");
	snprintf(schema, slen, "t%ld_%u", (long)getpid(), n++);
	char sql[160];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
		 schema);
	testutil_pg_exec(base, sql);
	int w = snprintf(url, len, "%s%soptions=-csearch_path%%3D%s", base,
			 strchr(base, '?') ? "&" : "?", schema);
	cr_assert(w > 0 && (size_t)w < len, "url too long");
}

void testutil_pg_schema_if_any(char *url, size_t len, char *schema, size_t slen)
{
	url[0] = schema[0] = '\0';
	if (testutil_pg_url())
		testutil_pg_schema(url, len, schema, slen);
}

void testutil_pg_drop(const char *schema)
{
	const char *base = testutil_pg_url();
	if (!base || str_empty(schema))
		return;
	char sql[120];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	PGconn *c = PQconnectdb(base);
	PQsetNoticeReceiver(c, pg_quiet, NULL);
	if (PQstatus(c) == CONNECTION_OK)
		PQclear(PQexec(c, sql));
	PQfinish(c);
}

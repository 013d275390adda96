/*
 * test_store.c - the message store (store.c + a backend) against a real
 * database: a file in a fresh temporary directory per test, or, when
 * EDIBROKER_TEST_PG_URL names a PostgreSQL server (make unit starts one,
 * tests/scripts/with-pg.sh), a schema of its own there. Suite "store" runs
 * on both backends; suite "store_sqlite" holds what only SQLite has (its
 * file, pragmas and size cap) and runs on SQLite.
 *
 * Covers what "accepted" and "delivered" rest on: durable settings, ids,
 * queue order and byte-exact bodies, the duplicate policy (also within one
 * batch), whole-batch rollback on a full disk, persistence, pruning and a
 * bounded file size, the retention of dead-letter bodies and quarantined
 * files (with keep), read-only opens and damaged files.
 */
#include "store/store.h"
#include "store/store_backend.h" /* the backend's own primitives, tested directly */
#include "store/store_sqlite.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define GLN_A "5790000000001"
#define GLN_B "5790000000002"

static char dir[PATH_MAX];
static char dbpath[PATH_MAX + 16];
static char pgurl[1024], pgschema[64]; /* set when the tests run on PostgreSQL */
static uint8_t payload[2048]; /* every byte value, NULs and 0x80-0xFF included */

/* A stored message copied out of a callback (strings "<NULL>" when NULL). */
struct row {
	int64_t id;
	enum msg_state state;
	char source[32], endpoint[32], format[16], ext[8], type[16], envelope_id[32];
	char sender[16], receiver[16], reason[256], last_error[1200];
	int nletters, attempts;
	int64_t received_at, delivered_at;
	size_t size;
	bool has_body;
	uint8_t body[sizeof(payload)];
	bool keep;
	int64_t removed_at;
	char file[64], error_class[16];
};

static struct row rows[64];
static size_t nrows;
static size_t stop_after; /* collect() stops after this many rows (0 = never) */

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	snprintf(dbpath, sizeof(dbpath), "%s/edibroker.db", dir);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + i / 256);
	nrows = 0;
	stop_after = 0;
	testutil_pg_schema_if_any(pgurl, sizeof(pgurl), pgschema, sizeof(pgschema));
}

static void setup_sqlite(void)
{
	setup();
	pgurl[0] = '\0'; /* these tests are about SQLite's file */
}

static void teardown(void)
{
	testutil_pg_drop(pgschema);
	testutil_rm_rf(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(store_sqlite, .init = setup_sqlite, .fini = teardown, .timeout = 30);

static void cp(char *dst, size_t len, const char *src)
{
	str_copy(dst, src ? src : "<NULL>", len);
}

static int collect(const struct store_msg *m, void *arg)
{
	(void)arg;
	cr_assert_lt(nrows, ARRAY_SIZE(rows));
	struct row *r = &rows[nrows++];
	*r = (struct row){ .id = m->id, .state = m->state, .nletters = m->nletters,
			   .attempts = m->attempts, .received_at = m->received_at,
			   .delivered_at = m->delivered_at, .size = m->size, .keep = m->keep,
			   .removed_at = m->removed_at };
	cp(r->file, sizeof(r->file), m->file);
	cp(r->error_class, sizeof(r->error_class), m->error_class);
	cp(r->source, sizeof(r->source), m->source);
	cp(r->endpoint, sizeof(r->endpoint), m->endpoint);
	cp(r->format, sizeof(r->format), m->format);
	cp(r->ext, sizeof(r->ext), m->ext);
	cp(r->type, sizeof(r->type), m->type);
	cp(r->envelope_id, sizeof(r->envelope_id), m->envelope_id);
	cp(r->sender, sizeof(r->sender), m->sender);
	cp(r->receiver, sizeof(r->receiver), m->receiver);
	cp(r->reason, sizeof(r->reason), m->reason);
	cp(r->last_error, sizeof(r->last_error), m->last_error);
	if (m->body) {
		cr_assert_leq(m->size, sizeof(r->body));
		memcpy(r->body, m->body, m->size);
		r->has_body = true;
	}
	return stop_after && nrows >= stop_after;
}

static struct store *open_opt(const struct store_options *opt)
{
	char err[512] = "";
	struct store_options o = *opt;
	if (pgurl[0]) {
		o.url = pgurl;
		o.node = "test";
		o.wait_ms = 20000; /* a loaded test machine: no spurious timeouts */
	}
	struct store *s = store_open(pgurl[0] ? "postgresql" : "sqlite", dir, &o, err, sizeof(err));
	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

static struct store *open_store(void)
{
	return open_opt(&(struct store_options){ 0 });
}

static struct store_new mk(const char *endpoint, const struct store_key *keys, size_t nkeys,
			   int64_t received_at)
{
	return (struct store_new){
		.source = "spool-in", .endpoint = endpoint, .reason = endpoint ? NULL : "no route",
		.format = "oioxml", .ext = "xml", .type = "XDIS20", .envelope_id = "ENV-1",
		.sender = GLN_A, .receiver = GLN_B, .nletters = (int)nkeys,
		.keys = keys, .nkeys = nkeys, .body = payload, .size = sizeof(payload),
		.received_at = received_at,
	};
}

static int commit_msgs(struct store *s, struct store_new *msgs, size_t n, int64_t now)
{
	struct store_batch b = { .msgs = msgs, .nmsgs = n, .now = now };
	return store_commit(s, &b);
}

static void deliver(struct store *s, const int64_t *ids, size_t n, int64_t now)
{
	struct store_batch b = { .delivered = ids, .ndelivered = n, .now = now };
	int r = store_commit(s, &b);
	cr_assert_eq(r, 0, "deliver: %d %s", r, store_last_error(s));
}

/* Copies message id (with its body when with_body) into rows[0]; 1 found, 0 not. */
static int get(struct store *s, int64_t id, bool with_body)
{
	nrows = 0;
	return store_get(s, id, with_body, collect, NULL);
}

static int64_t count(struct store *s, enum msg_state state)
{
	int64_t n = -1;
	int r = store_count(s, state, &n);
	cr_assert_eq(r, 0, "count: %d %s", r, store_last_error(s));
	return n;
}

static int64_t pragma(struct store *s, const char *name)
{
	int64_t v = -1;
	int r = store_sqlite_pragma(s, name, &v);
	cr_assert_eq(r, 0, "pragma %s: %d", name, r);
	return v;
}

/* A separate, plain SQLite connection on the database file. */
static sqlite3 *raw_open(int flags)
{
	return testutil_sql_open(dbpath, flags);
}

/* SQL both backends read alike, on a connection of the test's own. */
static int64_t raw_int(const char *sql)
{
	return pgurl[0] ? testutil_pg_int(pgurl, sql) : testutil_sql_int(dbpath, sql);
}

static void raw_exec(const char *sql)
{
	if (pgurl[0])
		testutil_pg_exec(pgurl, sql);
	else
		testutil_sql_exec(dbpath, sql);
}

static off_t file_size(const char *suffix)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s%s", dbpath, suffix);
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : 0;
}

static void write_garbage(const char *path, size_t len, off_t at)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	uint8_t junk[512];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(0xA5 ^ (i * 13));
	for (size_t done = 0; done < len; done += sizeof(junk))
		cr_assert_eq(pwrite(fd, junk, sizeof(junk), at + (off_t)done), (ssize_t)sizeof(junk));
	close(fd);
}

/* ---- settings, schema, identity ---- */

Test(store_sqlite, open_sets_durable_settings_and_schema)
{
	struct store *s = open_store();
	const char *inst = store_instance(s);
	cr_assert_eq(strlen(inst), 8);
	cr_assert_eq(strspn(inst, "0123456789abcdef"), 8, "instance %s", inst);
	cr_assert_eq(pragma(s, "synchronous"), 2, "synchronous must be FULL");
	cr_assert_eq(pragma(s, "auto_vacuum"), 2, "auto_vacuum must be INCREMENTAL");
	cr_assert_eq(pragma(s, "secure_delete"), 0);
	cr_assert_eq(pragma(s, "foreign_keys"), 1);
	cr_assert_eq(pragma(s, "journal_size_limit"), 4194304);
	cr_assert_gt(pragma(s, "busy_timeout"), 0);

	/* journal_mode=WAL is recorded in the file: a fresh connection sees it */
	sqlite3 *db = raw_open(SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	cr_assert_geq(raw_int("PRAGMA user_version"), 1, "a schema version is recorded");
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE name IN "
			     "('meta', 'messages', 'bodies', 'letter_keys')"), 4);
	store_close(s);
}

Test(store, persists_across_reopen_with_stable_instance)
{
	struct store *s = open_store();
	char inst[16];
	str_copy(inst, store_instance(s), sizeof(inst));
	struct store_key k = { GLN_A, "L1" };
	struct store_new m = mk("ep-a", &k, 1, 1000);
	cr_assert_eq(commit_msgs(s, &m, 1, 1000), 0);
	store_close(s);

	s = open_store();
	cr_assert_str_eq(store_instance(s), inst);
	cr_assert_eq(get(s, m.id, true), 1);
	cr_assert_eq(rows[0].state, MSG_QUEUED);
	cr_assert_eq(memcmp(rows[0].body, payload, sizeof(payload)), 0);
	struct store_new again = mk("ep-a", &k, 1, 2000);
	cr_assert_eq(commit_msgs(s, &again, 1, 2000), 0);
	cr_assert_eq(again.outcome, STORE_DUPLICATE, "letter keys must survive a restart");
	struct store_new next = mk("ep-a", NULL, 0, 2000);
	cr_assert_eq(commit_msgs(s, &next, 1, 2000), 0);
	cr_assert_gt(next.id, m.id);
	store_close(s);
}

Test(store, unknown_backend_is_refused)
{
	char err[128] = "";
	cr_assert_null(store_open("lmdb", dir, NULL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "unknown store backend"), "%s", err);
}

/* ---- queue order, bodies, metadata ---- */

Test(store, fetch_queued_in_id_order_with_exact_bodies)
{
	static const uint8_t odd[] = { 0x00, 0x80, 0xFF, 0x00, 0xC3, 0x28, 0x00 };
	struct store *s = open_store();
	struct store_new m[5] = {
		mk("ep-a", NULL, 0, 10), mk("ep-b", NULL, 0, 11), mk("ep-a", NULL, 0, 12),
		mk("ep-b", NULL, 0, 13), mk("ep-a", NULL, 0, 14),
	};
	m[2].body = odd;
	m[2].size = sizeof(odd);
	m[4].body = NULL; /* an empty message is kept as an empty body */
	m[4].size = 0;
	cr_assert_eq(commit_msgs(s, m, 5, 100), 0, "%s", store_last_error(s));
	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(m[i].outcome, STORE_STORED);
		cr_assert(i == 0 || m[i].id > m[i - 1].id, "ids strictly increasing");
	}
	cr_assert_eq(store_fetch_queued(s, "ep-a", 0, NULL, 0, 2, collect, NULL), 2);
	cr_assert_eq(rows[0].id, m[0].id);
	cr_assert_eq(rows[1].id, m[2].id);
	cr_assert_eq(rows[0].size, sizeof(payload));
	cr_assert(rows[0].has_body);
	cr_assert_eq(memcmp(rows[0].body, payload, sizeof(payload)), 0);
	cr_assert_eq(rows[1].size, sizeof(odd));
	cr_assert_eq(memcmp(rows[1].body, odd, sizeof(odd)), 0);

	nrows = 0;
	cr_assert_eq(store_fetch_queued(s, "ep-a", m[2].id, NULL, 0, 10, collect, NULL), 1);
	cr_assert_eq(rows[0].id, m[4].id);
	cr_assert(rows[0].has_body, "an empty body is present, not missing");
	cr_assert_eq(rows[0].size, 0);
	cr_assert_eq(store_fetch_queued(s, "ep-a", m[4].id, NULL, 0, 10, collect, NULL), 0);
	cr_assert_eq(store_fetch_queued(s, "ep-c", 0, NULL, 0, 10, collect, NULL), 0);

	nrows = 0;
	stop_after = 1;
	cr_assert_eq(store_fetch_queued(s, "ep-b", 0, NULL, 0, 10, collect, NULL), 1, "callback stops");
	cr_assert_eq(rows[0].id, m[1].id);
	store_close(s);
}

Test(store, metadata_round_trips)
{
	struct store *s = open_store();
	struct store_key k[2] = { { GLN_A, "L1" }, { GLN_A, "L2" } };
	struct store_new m = mk("ep-a", k, 2, 123456789012);
	m.envelope_id = "ENV-42";
	m.type = "XREF20";
	cr_assert_eq(commit_msgs(s, &m, 1, 1), 0);
	cr_assert_eq(get(s, m.id, false), 1);
	const struct row *r = &rows[0];
	cr_assert_eq(r->id, m.id);
	cr_assert_eq(r->state, MSG_QUEUED);
	cr_assert_str_eq(r->source, "spool-in");
	cr_assert_str_eq(r->endpoint, "ep-a");
	cr_assert_str_eq(r->format, "oioxml");
	cr_assert_str_eq(r->ext, "xml");
	cr_assert_str_eq(r->type, "XREF20");
	cr_assert_str_eq(r->envelope_id, "ENV-42");
	cr_assert_str_eq(r->sender, GLN_A);
	cr_assert_str_eq(r->receiver, GLN_B);
	cr_assert_str_eq(r->reason, "<NULL>");
	cr_assert_str_eq(r->last_error, "<NULL>");
	cr_assert_eq(r->nletters, 2);
	cr_assert_eq(r->attempts, 0);
	cr_assert_eq(r->received_at, 123456789012);
	cr_assert_eq(r->delivered_at, 0);
	cr_assert_eq(r->size, sizeof(payload));
	cr_assert_not(r->has_body, "get without body must not read it");
	cr_assert_eq(get(s, m.id + 1000, true), 0);
	store_close(s);
}

static int collect_depth(const struct store_depth *d, void *arg)
{
	struct store_depth *out = arg;
	size_t i = nrows++;
	cr_assert_lt(i, 4);
	out[i] = *d;
	out[i].endpoint = xstrdup(d->endpoint);
	return 0;
}

Test(store, depths_per_endpoint_with_oldest)
{
	struct store *s = open_store();
	struct store_new m[5] = {
		mk("ep-a", NULL, 0, 500), mk("ep-a", NULL, 0, 300), mk("ep-b", NULL, 0, 100),
		mk("ep-a", NULL, 0, 900), mk("ep-c", NULL, 0, 50),
	};
	cr_assert_eq(commit_msgs(s, m, 5, 1000), 0);
	deliver(s, &m[4].id, 1, 2000);
	struct store_depth d[4];
	nrows = 0;
	cr_assert_eq(store_depths(s, collect_depth, d), 2);
	cr_assert_str_eq(d[0].endpoint, "ep-a");
	cr_assert_eq(d[0].queued, 3);
	cr_assert_eq(d[0].oldest_received_at, 300, "oldest is by received_at, not by id");
	cr_assert_str_eq(d[1].endpoint, "ep-b");
	cr_assert_eq(d[1].queued, 1);
	cr_assert_eq(d[1].oldest_received_at, 100);
	free((char *)d[0].endpoint);
	free((char *)d[1].endpoint);
	store_close(s);
}

Test(store, list_get_count_per_state)
{
	struct store *s = open_store();
	struct store_new m[5] = {
		mk("ep-a", NULL, 0, 1), mk("ep-b", NULL, 0, 2), mk(NULL, NULL, 0, 3),
		mk("ep-a", NULL, 0, 4), mk("ep-a", NULL, 0, 5),
	};
	cr_assert_eq(commit_msgs(s, m, 5, 10), 0);
	cr_assert_eq(m[2].outcome, STORE_DEAD);
	deliver(s, &m[3].id, 1, 20);
	cr_assert_eq(count(s, MSG_QUEUED), 3);
	cr_assert_eq(count(s, MSG_DELIVERED), 1);
	cr_assert_eq(count(s, MSG_DEAD), 1);

	cr_assert_eq(store_list(s, MSG_QUEUED, NULL, 10, collect, NULL), 3);
	cr_assert_eq(rows[0].id, m[0].id);
	cr_assert_eq(rows[1].id, m[1].id);
	cr_assert_eq(rows[2].id, m[4].id);
	cr_assert_not(rows[0].has_body, "list carries metadata only");
	nrows = 0;
	cr_assert_eq(store_list(s, MSG_QUEUED, "ep-a", 1, collect, NULL), 1, "limit");
	cr_assert_eq(rows[0].id, m[0].id);
	nrows = 0;
	cr_assert_eq(store_list(s, MSG_DELIVERED, "ep-a", 10, collect, NULL), 1);
	cr_assert_eq(rows[0].id, m[3].id);
	cr_assert_eq(rows[0].delivered_at, 20);
	nrows = 0;
	cr_assert_eq(store_list(s, MSG_DEAD, NULL, 10, collect, NULL), 1);
	cr_assert_eq(rows[0].id, m[2].id);
	cr_assert_str_eq(rows[0].endpoint, "<NULL>");
	cr_assert_str_eq(rows[0].reason, "no route");
	cr_assert_eq(store_list(s, MSG_DELIVERED, "ep-b", 10, collect, NULL), 0);

	cr_assert_eq(get(s, m[2].id, true), 1);
	cr_assert(rows[0].has_body, "dead letters keep their body for the operator");
	cr_assert_eq(memcmp(rows[0].body, payload, sizeof(payload)), 0);
	store_close(s);
}

/* ---- duplicate policy ---- */

Test(store, all_keys_known_is_a_duplicate)
{
	struct store *s = open_store();
	struct store_key k[2] = { { GLN_A, "L1" }, { GLN_A, "L2" } };
	struct store_key swapped[2] = { k[1], k[0] };
	struct store_new first = mk("ep-a", k, 2, 1);
	cr_assert_eq(commit_msgs(s, &first, 1, 1), 0);
	cr_assert_eq(first.outcome, STORE_STORED);
	struct store_new again = mk("ep-b", swapped, 2, 2);
	cr_assert_eq(commit_msgs(s, &again, 1, 2), 0);
	cr_assert_eq(again.outcome, STORE_DUPLICATE);
	cr_assert_eq(again.id, first.id);
	cr_assert_eq(count(s, MSG_QUEUED), 1, "a duplicate is not stored");
	cr_assert_eq(count(s, MSG_DEAD), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM messages"), 1);
	store_close(s);
}

Test(store, some_keys_known_is_a_dead_letter_with_reason)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" };
	struct store_key k13[2] = { { GLN_A, "L3" }, k1 };
	struct store_key k3 = { GLN_A, "L3" };
	struct store_new first = mk("ep-a", &k1, 1, 1);
	cr_assert_eq(commit_msgs(s, &first, 1, 1), 0);

	struct store_new partial = mk("ep-a", k13, 2, 2);
	cr_assert_eq(commit_msgs(s, &partial, 1, 2), 0);
	cr_assert_eq(partial.outcome, STORE_DEAD);
	cr_assert_neq(partial.id, first.id);
	char want[200];
	snprintf(want, sizeof(want),
		 "partial duplicate: letter L1 of sender " GLN_A " already accepted as message %" PRId64,
		 first.id);
	cr_assert_eq(get(s, partial.id, true), 1);
	cr_assert_eq(rows[0].state, MSG_DEAD);
	cr_assert_str_eq(rows[0].endpoint, "<NULL>");
	cr_assert_str_eq(rows[0].reason, want);
	cr_assert(rows[0].has_body, "the new letters are kept");

	/* the dead letter recorded no keys: a resend is dead again, and L3
	 * alone is new */
	struct store_new resend = mk("ep-a", k13, 2, 3);
	cr_assert_eq(commit_msgs(s, &resend, 1, 3), 0);
	cr_assert_eq(resend.outcome, STORE_DEAD);
	struct store_new only3 = mk("ep-a", &k3, 1, 4);
	cr_assert_eq(commit_msgs(s, &only3, 1, 4), 0);
	cr_assert_eq(only3.outcome, STORE_STORED);
	store_close(s);
}

Test(store, new_keys_are_stored_and_recorded)
{
	struct store *s = open_store();
	struct store_key ka = { GLN_A, "L1" }, kb = { GLN_B, "L1" };
	struct store_new m[2] = { mk("ep-a", &ka, 1, 1), mk("ep-a", &kb, 1, 1) };
	cr_assert_eq(commit_msgs(s, m, 2, 1), 0);
	cr_assert_eq(m[0].outcome, STORE_STORED, "same letter id, other sender: a new letter");
	cr_assert_eq(m[1].outcome, STORE_STORED);
	cr_assert_eq(raw_int("SELECT count(*) FROM letter_keys"), 2);
	cr_assert_eq(raw_int("SELECT seen_at FROM letter_keys LIMIT 1"), 1);
	struct store_new none[2] = { mk("ep-a", NULL, 0, 2), mk("ep-a", NULL, 0, 2) };
	cr_assert_eq(commit_msgs(s, none, 2, 2), 0);
	cr_assert_eq(none[0].outcome, STORE_STORED, "no keys: nothing to be a duplicate of");
	cr_assert_eq(none[1].outcome, STORE_STORED);
	store_close(s);
}

Test(store, duplicates_within_one_batch_act_as_sequential)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" }, k2 = { GLN_A, "L2" };
	struct store_key k12[2] = { k1, k2 };
	struct store_key k55[2] = { { GLN_A, "L5" }, { GLN_A, "L5" } };
	struct store_new m[5] = {
		mk("ep-a", &k1, 1, 1), mk("ep-a", &k1, 1, 1), mk("ep-a", k12, 2, 1),
		mk("ep-a", &k2, 1, 1), mk("ep-a", k55, 2, 1),
	};
	cr_assert_eq(commit_msgs(s, m, 5, 7), 0, "%s", store_last_error(s));
	cr_assert_eq(m[0].outcome, STORE_STORED);
	cr_assert_eq(m[1].outcome, STORE_DUPLICATE);
	cr_assert_eq(m[1].id, m[0].id);
	cr_assert_eq(m[2].outcome, STORE_DEAD, "L1 seen earlier in the batch, L2 not");
	cr_assert_eq(m[3].outcome, STORE_STORED, "the dead letter recorded no L2");
	cr_assert_eq(m[4].outcome, STORE_STORED, "a key repeated inside one message");
	cr_assert_eq(count(s, MSG_QUEUED), 3);
	struct store_new l5 = mk("ep-a", &k55[0], 1, 2);
	cr_assert_eq(commit_msgs(s, &l5, 1, 8), 0);
	cr_assert_eq(l5.outcome, STORE_DUPLICATE);
	cr_assert_eq(l5.id, m[4].id);
	store_close(s);
}

Test(store, dead_letters_record_no_keys)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L9" };
	struct store_new d[2] = { mk(NULL, &k, 1, 1), mk(NULL, &k, 1, 1) };
	cr_assert_eq(commit_msgs(s, d, 2, 1), 0);
	cr_assert_eq(d[0].outcome, STORE_DEAD);
	cr_assert_eq(d[1].outcome, STORE_DEAD, "a resent dead letter is dead again, not a duplicate");
	cr_assert_neq(d[0].id, d[1].id);
	cr_assert_eq(raw_int("SELECT count(*) FROM letter_keys"), 0);
	struct store_new routed = mk("ep-a", &k, 1, 2);
	cr_assert_eq(commit_msgs(s, &routed, 1, 2), 0);
	cr_assert_eq(routed.outcome, STORE_STORED, "once routable, the letter is accepted");
	store_close(s);
}

/* ---- ingest tokens: a replay gets the first copy's outcome ---- */

static struct store_new unit(const char *endpoint, const struct store_key *keys, size_t nkeys,
			     const char *token, int64_t at)
{
	struct store_new m = mk(endpoint, keys, nkeys, at);
	m.token = token;
	return m;
}

Test(store, a_token_first_seen_on_a_dead_letter_answers_dead_with_its_reason)
{
	struct store *s = open_store();
	struct store_new first = unit(NULL, NULL, 0, "body:ep-in:d1", 1);
	cr_assert_eq(commit_msgs(s, &first, 1, 1), 0, "%s", store_last_error(s));
	cr_assert_eq(first.outcome, STORE_DEAD);
	cr_assert_not(first.replay);
	/* the answer was lost; meanwhile a reload made the receiver known:
	 * the replay is still the first copy, not routed anew */
	struct store_key k = { GLN_A, "D1" };
	struct store_new again[2] = { unit("ep-a", &k, 1, "body:ep-in:d1", 2),
				      unit(NULL, NULL, 0, "body:ep-in:d1", 2) };
	cr_assert_eq(commit_msgs(s, again, 2, 2), 0, "%s", store_last_error(s));
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(again[i].outcome, STORE_DEAD, "copy %zu", i);
		cr_assert(again[i].replay);
		cr_assert_eq(again[i].id, first.id);
		cr_assert_str_eq(again[i].why, "no route", "the reason it was stored with");
	}
	cr_assert_eq(raw_int("SELECT count(*) FROM messages"), 1, "no second row");
	cr_assert_eq(raw_int("SELECT count(*) FROM letter_keys"), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM ingest_tokens"), 1);
	/* an operator deleted the dead letter: a replay is still not accepted */
	struct store_event ev = { .at = 3, .kind = "deleted", .by = "root (uid 0)" };
	cr_assert_eq(store_delete(s, first.id, MSG_DEAD, &ev), 1);
	struct store_new late = unit(NULL, NULL, 0, "body:ep-in:d1", 4);
	cr_assert_eq(commit_msgs(s, &late, 1, 4), 0, "%s", store_last_error(s));
	cr_assert_eq(late.outcome, STORE_DEAD);
	cr_assert_str_eq(late.why, "no route");
	store_close(s);
}

Test(store, a_token_in_one_batch_twice_and_a_store_decided_dead_letter_answer_alike)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" };
	struct store_key k12[2] = { k1, { GLN_A, "L2" } };
	struct store_new m[3] = { unit("ep-a", &k1, 1, "body:ep-in:a", 1),
				  unit("ep-a", k12, 2, "body:ep-in:p", 1),
				  unit("ep-a", k12, 2, "body:ep-in:p", 1) };
	cr_assert_eq(commit_msgs(s, m, 3, 1), 0, "%s", store_last_error(s));
	cr_assert_eq(m[1].outcome, STORE_DEAD, "a partial duplicate");
	cr_assert_not(m[1].replay);
	cr_assert_eq(m[2].outcome, STORE_DEAD, "the same unit again in the same batch");
	cr_assert(m[2].replay);
	cr_assert_eq(m[2].id, m[1].id);
	cr_assert_str_eq(m[2].why, m[1].why);
	cr_assert_eq(raw_int("SELECT count(*) FROM messages"), 2);
	store_close(s);
}

Test(store, a_token_on_a_queued_or_delivered_message_answers_with_its_id)
{
	struct store *s = open_store();
	struct store_new first = unit("ep-a", NULL, 0, "body:ep-in:q1", 1);
	cr_assert_eq(commit_msgs(s, &first, 1, 1), 0, "%s", store_last_error(s));
	cr_assert_eq(first.outcome, STORE_STORED);
	/* no letter keys: only the token tells the replay from a new message */
	struct store_new again = unit("ep-a", NULL, 0, "body:ep-in:q1", 2);
	cr_assert_eq(commit_msgs(s, &again, 1, 2), 0, "%s", store_last_error(s));
	cr_assert_eq(again.outcome, STORE_DUPLICATE, "answered as accepted, with the first id");
	cr_assert(again.replay);
	cr_assert_eq(again.id, first.id);
	cr_assert_str_eq(again.why, "");
	deliver(s, &first.id, 1, 3);
	struct store_new later = unit("ep-a", NULL, 0, "body:ep-in:q1", 4);
	cr_assert_eq(commit_msgs(s, &later, 1, 4), 0, "%s", store_last_error(s));
	cr_assert_eq(later.outcome, STORE_DUPLICATE, "delivered since");
	cr_assert_eq(later.id, first.id);
	cr_assert_eq(raw_int("SELECT count(*) FROM messages"), 1);
	store_close(s);
}

Test(store, tokens_are_pruned_on_the_history_clock)
{
	struct store *s = open_store();
	struct store_new old = unit("ep-a", NULL, 0, "body:ep-in:old", 1000);
	struct store_new young = unit("ep-a", NULL, 0, "body:ep-in:young", 3000);
	cr_assert_eq(commit_msgs(s, &old, 1, 1000), 0, "%s", store_last_error(s));
	cr_assert_eq(commit_msgs(s, &young, 1, 3000), 0, "%s", store_last_error(s));
	cr_assert_eq(store_prune(s, 0, 2500, 100), 1, "the old token only (both stay queued)");
	cr_assert_eq(raw_int("SELECT count(*) FROM ingest_tokens"), 1);
	struct store_new again[2] = { unit("ep-a", NULL, 0, "body:ep-in:old", 4000),
				      unit("ep-a", NULL, 0, "body:ep-in:young", 4000) };
	cr_assert_eq(commit_msgs(s, again, 2, 4000), 0, "%s", store_last_error(s));
	cr_assert_eq(again[0].outcome, STORE_STORED, "its token was pruned with the history");
	cr_assert_eq(again[1].outcome, STORE_DUPLICATE);
	cr_assert_eq(again[1].id, young.id);
	store_close(s);
}

/* ---- delivery marks and attempts ---- */

Test(store, delivered_marks_and_attempts)
{
	struct store *s = open_store();
	struct store_new m[2] = { mk("ep-a", NULL, 0, 1), mk("ep-a", NULL, 0, 2) };
	cr_assert_eq(commit_msgs(s, m, 2, 1), 0);
	struct store_attempt at[2] = { { .id = m[0].id, .error = "timeout" },
				       { .id = m[0].id, .error = "HTTP 503" } };
	struct store_batch b = { .attempts = at, .nattempts = 2, .delivered = &m[1].id,
				 .ndelivered = 1, .now = 5000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(get(s, m[0].id, false), 1);
	cr_assert_eq(rows[0].attempts, 2);
	cr_assert_str_eq(rows[0].last_error, "HTTP 503");
	cr_assert_eq(rows[0].state, MSG_QUEUED);
	cr_assert_eq(get(s, m[1].id, false), 1);
	cr_assert_eq(rows[0].state, MSG_DELIVERED);
	cr_assert_eq(rows[0].delivered_at, 5000);
	nrows = 0;
	cr_assert_eq(store_fetch_queued(s, "ep-a", 0, NULL, 0, 10, collect, NULL), 1);
	cr_assert_eq(rows[0].id, m[0].id, "a delivered message is no longer fetched");

	/* a retried mark, a late attempt and an unknown id change nothing */
	int64_t again[2] = { m[1].id, 999999 };
	struct store_attempt late = { .id = m[1].id, .error = "late" };
	b = (struct store_batch){ .delivered = again, .ndelivered = 2, .attempts = &late,
				  .nattempts = 1, .now = 6000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(get(s, m[1].id, false), 1);
	cr_assert_eq(rows[0].delivered_at, 5000);
	cr_assert_eq(rows[0].attempts, 0);
	store_close(s);
}

Test(store, long_attempt_error_is_capped_at_a_character_boundary)
{
	struct store *s = open_store();
	struct store_new m = mk("ep-a", NULL, 0, 1);
	cr_assert_eq(commit_msgs(s, &m, 1, 1), 0);
	char big[3001];
	for (size_t i = 0; i < 3000; i += 2)
		memcpy(big + i, "\xc3\xa6", 2); /* "æ" */
	big[3000] = '\0';
	struct store_attempt a = { .id = m.id, .error = big + 1 }; /* odd start: cut must back off */
	struct store_batch b = { .attempts = &a, .nattempts = 1, .now = 2 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(get(s, m.id, false), 1);
	size_t n = strlen(rows[0].last_error);
	cr_assert_leq(n, 1000);
	cr_assert_geq(n, 990);
	cr_assert_eq((unsigned char)rows[0].last_error[n - 1], 0xa6, "ends on a whole character");
	store_close(s);
}

/* ---- failure and rollback ---- */

Test(store_sqlite, full_disk_rolls_back_the_whole_batch)
{
	struct store_options tiny = { .max_bytes = 256 * 1024 };
	struct store *s = open_opt(&tiny);
	struct store_key k0 = { GLN_A, "K0" };
	struct store_new a = mk("ep-a", &k0, 1, 1);
	cr_assert_eq(commit_msgs(s, &a, 1, 1), 0);

	/* 200 x 2 KB cannot fit in 256 KB: the insert fails half way through */
	enum { N = 200 };
	static struct store_key keys[N];
	static char ids[N][16];
	static struct store_new big[N];
	for (size_t i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "B%zu", i);
		keys[i] = (struct store_key){ GLN_A, ids[i] };
		big[i] = mk("ep-a", &keys[i], 1, 2);
	}
	struct store_batch b = { .msgs = big, .nmsgs = N, .delivered = &a.id, .ndelivered = 1,
				 .now = 2 };
	cr_assert_eq(store_commit(s, &b), -ENOSPC);
	cr_assert_not_null(strstr(store_last_error(s), "full"), "%s", store_last_error(s));

	/* the same connection commits again (a small message still fits), and
	 * the failed batch recorded no keys */
	struct store_new small = mk("ep-a", &keys[0], 1, 3);
	small.size = 10;
	cr_assert_eq(commit_msgs(s, &small, 1, 3), 0, "%s", store_last_error(s));
	cr_assert_eq(small.outcome, STORE_STORED);
	store_close(s);

	s = open_store(); /* no cap: as after the operator freed space */
	cr_assert_eq(count(s, MSG_QUEUED), 2, "nothing of the failed batch is visible");
	cr_assert_eq(count(s, MSG_DELIVERED), 0, "nor its delivered mark");
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), 2);
	cr_assert_eq(raw_int("SELECT count(*) FROM letter_keys"), 2);
	cr_assert_eq(store_commit(s, &b), 0, "the batch commits once there is space");
	cr_assert_eq(big[0].outcome, STORE_DUPLICATE);
	cr_assert_eq(big[1].outcome, STORE_STORED);
	cr_assert_gt(big[1].id, small.id);
	cr_assert_eq(count(s, MSG_QUEUED), N, "small + 199 new");
	cr_assert_eq(count(s, MSG_DELIVERED), 1);
	store_close(s);
}

Test(store, empty_batch_is_a_no_op)
{
	struct store *s = open_store();
	struct store_batch b = { .now = 1 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(count(s, MSG_QUEUED), 0);
	store_close(s);
}

/* ---- pruning ---- */

Test(store, ids_are_never_reused_after_prune)
{
	struct store *s = open_store();
	struct store_new m[3] = { mk("ep-a", NULL, 0, 1), mk("ep-a", NULL, 0, 1),
				  mk("ep-a", NULL, 0, 1) };
	cr_assert_eq(commit_msgs(s, m, 3, 1), 0);
	int64_t ids[3] = { m[0].id, m[1].id, m[2].id };
	deliver(s, ids, 3, 10);
	cr_assert_eq(store_prune(s, 100, 100, 100), 3 + 3,
		     "3 bodies and 3 records");
	cr_assert_eq(count(s, MSG_DELIVERED), 0);
	store_close(s);
	s = open_store();
	struct store_new next = mk("ep-a", NULL, 0, 2);
	cr_assert_eq(commit_msgs(s, &next, 1, 200), 0);
	cr_assert_gt(next.id, m[2].id, "a delivered file name must never be reused");
	store_close(s);
}

Test(store, prune_drops_bodies_then_history_then_keys_within_limit)
{
	struct store *s = open_store();
	struct store_key k[6];
	char lid[6][8];
	struct store_new m[6];
	for (size_t i = 0; i < 6; i++) {
		snprintf(lid[i], sizeof(lid[i]), "L%zu", i);
		k[i] = (struct store_key){ GLN_A, lid[i] };
		m[i] = mk("ep-a", &k[i], 1, 1000);
	}
	cr_assert_eq(commit_msgs(s, m, 6, 1000), 0); /* keys seen at 1000 */
	struct store_new dead = mk(NULL, NULL, 0, 1000);
	cr_assert_eq(commit_msgs(s, &dead, 1, 1000), 0);
	int64_t early[4] = { m[0].id, m[1].id, m[2].id, m[3].id };
	deliver(s, early, 4, 2000);
	deliver(s, &m[4].id, 1, 3000); /* m[5] stays queued */

	cr_assert_eq(store_prune(s, 2500, 0, 3), 3, "at most limit rows");
	cr_assert_eq(store_prune(s, 2500, 0, 3), 1);
	cr_assert_eq(store_prune(s, 2500, 0, 3), 0);
	cr_assert_eq(get(s, m[0].id, true), 1);
	cr_assert_not(rows[0].has_body, "body of an old delivered message is gone");
	cr_assert_eq(rows[0].size, sizeof(payload), "its metadata stays");
	cr_assert_eq(get(s, m[4].id, true), 1);
	cr_assert(rows[0].has_body, "delivered later: body kept");
	cr_assert_eq(get(s, m[5].id, true), 1);
	cr_assert(rows[0].has_body, "queued: body kept");
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), 3);

	cr_assert_eq(store_prune(s, 2500, 2500, 100), 4 + 6, "4 records, 6 keys");
	cr_assert_eq(get(s, m[0].id, false), 0);
	cr_assert_eq(get(s, m[4].id, false), 1);
	cr_assert_eq(get(s, dead.id, true), 1, "dead letters are never pruned");
	cr_assert(rows[0].has_body);
	cr_assert_eq(count(s, MSG_QUEUED), 1);
	struct store_new resend = mk("ep-a", &k[0], 1, 4000);
	cr_assert_eq(commit_msgs(s, &resend, 1, 4000), 0);
	cr_assert_eq(resend.outcome, STORE_STORED, "its key was pruned with the history");

	/* history before bodies: a record still holding its body takes it along */
	cr_assert_eq(store_prune(s, 0, 3500, 100), 1);
	cr_assert_eq(get(s, m[4].id, false), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), 3, "m5, dead, resend: no orphans");
	store_close(s);
}

/* ---- retention of dead letters and quarantined files ---- */

static struct store_quarantined qrow(const char *endpoint, const char *file, int64_t at)
{
	return (struct store_quarantined){ .endpoint = endpoint, .file = file,
					   .error_class = "syntax", .reason = "not XML", .size = 123,
					   .at = at };
}

Test(store, quarantined_files_are_rows_of_their_own)
{
	struct store *s = open_store();
	struct store_quarantined q[2] = { qrow("ep-a", "/q/ep-a/1-x.xml", 100),
					  qrow("ep-b", "/q/ep-b/1-y.xml", 200) };
	cr_assert_eq(store_quarantine_add(s, q, 2), 0, "%s", store_last_error(s));
	cr_assert_gt(q[0].id, 0);
	cr_assert_gt(q[1].id, q[0].id);
	cr_assert_eq(count(s, MSG_QUARANTINED), 2);
	cr_assert_eq(count(s, MSG_DEAD), 0, "not dead letters");
	cr_assert_eq(count(s, MSG_QUEUED), 0, "never queued");
	cr_assert_eq(store_list(s, MSG_QUARANTINED, "ep-b", 10, collect, NULL), 1,
		     "listed by the endpoint whose inbox held it");
	cr_assert_eq(rows[0].id, q[1].id);
	cr_assert_str_eq(rows[0].source, "ep-b");
	cr_assert_str_eq(rows[0].file, "/q/ep-b/1-y.xml");
	cr_assert_str_eq(rows[0].error_class, "syntax");
	cr_assert_str_eq(rows[0].reason, "not XML");
	cr_assert_eq(rows[0].size, 123);
	cr_assert_eq(rows[0].received_at, 200);
	cr_assert_not(rows[0].keep);
	cr_assert_eq(rows[0].removed_at, 0);
	cr_assert_eq(get(s, q[0].id, true), 1);
	cr_assert_not(rows[0].has_body, "a quarantined file's bytes never enter the store");
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), 0);
	store_close(s);
}

Test(store, dead_expire_drops_old_bodies_but_not_kept_ones)
{
	struct store *s = open_store();
	struct store_new d[4] = { mk(NULL, NULL, 0, 1000), mk(NULL, NULL, 0, 2000),
				  mk(NULL, NULL, 0, 3000), mk(NULL, NULL, 0, 9000) };
	cr_assert_eq(commit_msgs(s, d, 4, 10), 0);
	struct store_new queued = mk("ep-a", NULL, 0, 500); /* older, but not dead */
	cr_assert_eq(commit_msgs(s, &queued, 1, 10), 0);
	cr_assert_eq(store_keep(s, d[1].id, true), 1);
	cr_assert_eq(store_keep(s, queued.id, true), 0, "only dead or quarantined rows are kept");

	cr_assert_eq(store_dead_expire(s, 5000, 77, 1), 1, "at most limit");
	cr_assert_eq(store_dead_expire(s, 5000, 78, 1), 1);
	cr_assert_eq(store_dead_expire(s, 5000, 79, 1), 0, "the kept one and the new one stay");
	cr_assert_eq(get(s, d[0].id, true), 1);
	cr_assert_not(rows[0].has_body, "old body dropped");
	cr_assert_eq(rows[0].state, MSG_DEAD, "the record stays");
	cr_assert_str_eq(rows[0].reason, "no route");
	cr_assert_eq(rows[0].removed_at, 77, "marked removed");
	cr_assert_eq(get(s, d[2].id, true), 1);
	cr_assert_eq(rows[0].removed_at, 78, "oldest first");
	cr_assert_eq(get(s, d[1].id, true), 1);
	cr_assert(rows[0].has_body, "kept");
	cr_assert(rows[0].keep);
	cr_assert_eq(rows[0].removed_at, 0);
	cr_assert_eq(get(s, d[3].id, true), 1);
	cr_assert(rows[0].has_body, "younger than the retention");
	cr_assert_eq(get(s, queued.id, true), 1);
	cr_assert(rows[0].has_body, "queued messages are not dead letters");

	cr_assert_eq(store_keep(s, d[1].id, false), 1, "released");
	cr_assert_eq(store_dead_expire(s, 5000, 80, 10), 1, "then retention takes it");
	cr_assert_eq(get(s, d[1].id, true), 1);
	cr_assert_not(rows[0].has_body);
	cr_assert_eq(rows[0].removed_at, 80);
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), 2, "d[3] and the queued one");
	store_close(s);
}

struct due {
	int64_t id[8];
	int64_t at[8];
	size_t n;
};

static int collect_due(const struct store_msg *m, void *arg)
{
	struct due *d = arg;
	cr_assert_lt(d->n, ARRAY_SIZE(d->id));
	cr_assert_eq(m->state, MSG_QUARANTINED);
	d->id[d->n] = m->id;
	d->at[d->n++] = m->received_at;
	return 0;
}

Test(store, quarantine_expired_pages_by_age_skips_kept_and_removed)
{
	struct store *s = open_store();
	struct store_quarantined q[5] = {
		qrow("ep-a", "/q/a", 3000), qrow("ep-b", "/q/b", 1000), qrow("ep-a", "/q/c", 1000),
		qrow("ep-a", "/q/d", 2000), qrow("ep-a", "/q/e", 8000),
	};
	cr_assert_eq(store_quarantine_add(s, q, 5), 0);
	struct store_new dead = mk(NULL, NULL, 0, 10); /* a dead letter is no quarantined file */
	cr_assert_eq(commit_msgs(s, &dead, 1, 10), 0);
	cr_assert_eq(store_keep(s, q[3].id, true), 1);

	struct due d = { 0 };
	cr_assert_eq(store_quarantine_expired(s, 5000, 0, 0, 2, collect_due, &d), 2);
	cr_assert_eq(d.id[0], q[1].id, "oldest first, then by id");
	cr_assert_eq(d.id[1], q[2].id);
	cr_assert_eq(store_quarantine_expired(s, 5000, d.at[1], d.id[1], 2, collect_due, &d), 1,
		     "after the cursor: the kept and the young one are not due");
	cr_assert_eq(d.id[2], q[0].id);

	int64_t gone[2] = { q[1].id, q[0].id };
	cr_assert_eq(store_quarantine_removed(s, gone, 2, 4242), 2);
	cr_assert_eq(store_quarantine_removed(s, gone, 2, 4343), 0, "already marked");
	cr_assert_eq(store_quarantine_removed(s, &dead.id, 1, 4343), 0, "not a quarantined row");
	cr_assert_eq(get(s, q[1].id, false), 1);
	cr_assert_eq(rows[0].removed_at, 4242, "the row stays, marked removed");
	d.n = 0;
	cr_assert_eq(store_quarantine_expired(s, 5000, 0, 0, 10, collect_due, &d), 1);
	cr_assert_eq(d.id[0], q[2].id);

	cr_assert_eq(store_keep(s, q[3].id, false), 1);
	d.n = 0;
	cr_assert_eq(store_quarantine_expired(s, 5000, 0, 0, 10, collect_due, &d), 2,
		     "released: due again");
	cr_assert_eq(d.id[1], q[3].id);
	cr_assert_eq(store_keep(s, 999999, true), 0, "no such row");
	store_close(s);
}

Test(store_sqlite, retention_scans_read_only_the_rows_still_due)
{
	struct store *s = open_store();
	char plan[512];
	cr_assert_eq(store_sqlite_plan(s, "quarantine_due", plan, sizeof(plan)), 0);
	cr_assert(strstr(plan, "USING INDEX messages_quarantine_due"), "%s", plan);
	cr_assert_eq(store_sqlite_plan(s, "dead_due", plan, sizeof(plan)), 0);
	cr_assert(strstr(plan, "USING INDEX messages_dead_due"), "%s", plan);
	store_close(s);
}

Test(store_sqlite, version_2_database_gains_retention_columns)
{
	cr_assert_eq(store_sqlite_create_version(dir, 2), 0, "%s", store_sqlite_ops.last_error(NULL));
	raw_exec("INSERT INTO messages (state, source, reason, received_at, size) "
		 "VALUES (2, 'ep-a', 'no route', 5, 3);"
		 "INSERT INTO bodies (id, body) VALUES (1, x'414243');");
	struct store *s = open_store();
	cr_assert_eq(get(s, 1, true), 1);
	cr_assert_eq(rows[0].state, MSG_DEAD);
	cr_assert_not(rows[0].keep, "not kept until an operator says so");
	cr_assert_eq(rows[0].removed_at, 0);
	cr_assert(rows[0].has_body);
	cr_assert_eq(store_dead_expire(s, 10, 20, 10), 1, "an old dead letter is due at once");
	store_close(s);
}

/*
 * 20k messages of 2 KB (40 MB of bodies) pass through in batches of 256,
 * each delivered in the next batch, bodies pruned at once and history kept
 * for 8 batches. What is live at any time: <= 2 batches of bodies (1.1 MB)
 * and <= 10 batches of records and keys (~1 MB with indexes), plus a
 * freelist of at most VACUUM_KEEP_PAGES (1 MB) and one prune's worth
 * (~0.6 MB): the database stays under ~4 MB (measured: 1.6 MB). The WAL is
 * checkpointed at 1000 pages (4 MB) and truncated to journal_size_limit
 * (4 MB) after that, plus at most one batch's transaction (~1.5 MB).
 * Bound: 10 MiB for both together (measured peak: 6.9 MB). Without prune
 * the database alone reaches 83 MB.
 */
Test(store_sqlite, file_size_stays_bounded_under_steady_traffic)
{
	enum { BATCH = 256, ROUNDS = 79 };
	struct store *s = open_store();
	static struct store_new m[BATCH];
	static struct store_key k[BATCH];
	static char lid[BATCH][16];
	int64_t prev[BATCH];
	off_t peak = 0;
	for (int r = 0; r < ROUNDS; r++) {
		int64_t now = (r + 1) * 1000;
		for (size_t i = 0; i < BATCH; i++) {
			snprintf(lid[i], sizeof(lid[i]), "R%dI%zu", r, i);
			k[i] = (struct store_key){ GLN_A, lid[i] };
			m[i] = mk("ep-a", &k[i], 1, now);
		}
		struct store_batch b = { .msgs = m, .nmsgs = BATCH, .delivered = prev,
					 .ndelivered = r ? BATCH : 0, .now = now };
		cr_assert_eq(store_commit(s, &b), 0, "%s", store_last_error(s));
		for (size_t i = 0; i < BATCH; i++)
			prev[i] = m[i].id;
		int n;
		while ((n = store_prune(s, now + 1, now - 8000, 4096)) == 4096)
			;
		cr_assert_geq(n, 0, "%s", store_last_error(s));
		off_t size = file_size("") + file_size("-wal");
		peak = size > peak ? size : peak;
	}
	cr_log_info("peak %lld", (long long)peak);
	cr_assert_lt(peak, 10 << 20, "database + WAL peaked at %lld bytes", (long long)peak);
	cr_assert_eq(count(s, MSG_QUEUED), BATCH);
	cr_assert_leq(count(s, MSG_DELIVERED), 9 * BATCH, "history beyond 8 batches is pruned");
	cr_assert_geq(count(s, MSG_DELIVERED), 7 * BATCH);
	cr_assert_eq(raw_int("SELECT count(*) FROM bodies"), BATCH, "only queued bodies left");
	store_close(s);
}

/* A drained backlog gives its pages back to the file system, a bounded
 * number per prune() call, instead of leaving the file at its peak. */
Test(store_sqlite, drained_backlog_gives_space_back)
{
	enum { N = 4000 }; /* 8 MB of bodies */
	struct store *s = open_store();
	static struct store_new m[N];
	static int64_t ids[N];
	for (size_t i = 0; i < N; i++)
		m[i] = mk("ep-a", NULL, 0, 1);
	cr_assert_eq(commit_msgs(s, m, N, 1), 0);
	for (size_t i = 0; i < N; i++)
		ids[i] = m[i].id;
	deliver(s, ids, N, 2);
	int64_t peak = pragma(s, "page_count");
	cr_assert_gt(peak, 2000);
	int64_t pruned = 0;
	for (int call = 0; call < 12; call++) { /* the daemon's maintenance timer */
		int n = store_prune(s, 10, 10, 1000);
		cr_assert_geq(n, 0, "%s", store_last_error(s));
		pruned += n;
	}
	cr_assert_eq(pruned, 2 * N, "bodies and records");
	cr_assert_lt(pragma(s, "page_count"), 300, "from %lld pages", (long long)peak);
	cr_assert_leq(pragma(s, "freelist_count"), 256, "a small freelist is kept for reuse");
	store_close(s); /* the last close checkpoints: the file itself shrinks */
	cr_assert_lt(file_size(""), 300 * 4096);
}

/* The primitive several daemons rely on: a key recorded first by anyone
 * else makes key_insert fail (the batch is then retried), and a rollback
 * forgets what the transaction recorded. Only store_commit() calls these,
 * so the backend is driven directly. */
Test(store_sqlite, key_insert_of_a_known_key_fails_with_eexist)
{
	const struct store_backend_ops *ops = &store_sqlite_ops;
	void *be = NULL;
	cr_assert_eq(ops->open(dir, &(struct store_options){ 0 }, &be), 0);
	struct store_key k = { GLN_A, "L1" };
	int64_t id = 0;
	cr_assert_eq(ops->begin(be), 0);
	cr_assert_eq(ops->key_insert(be, &k, 7, 1), 0);
	cr_assert_eq(ops->key_lookup(be, &k, &id), 1);
	cr_assert_eq(id, 7);
	cr_assert_eq(ops->key_insert(be, &k, 8, 1), -EEXIST);
	ops->rollback(be);
	id = -1;
	cr_assert_eq(ops->key_lookup(be, &k, &id), 0);
	cr_assert_eq(id, -1, "out-parameter untouched when not found");
	ops->close(be);
}

/* ---- read-only and damaged files ---- */

Test(store_sqlite, read_only_open_reads_but_refuses_writes)
{
	struct store *rw = open_store();
	struct store_new m = mk("ep-a", NULL, 0, 1);
	cr_assert_eq(commit_msgs(rw, &m, 1, 1), 0);

	struct store_options ro_opt = { .read_only = true };
	struct store *ro = open_opt(&ro_opt); /* beside the writer, like edibrokerctl */
	cr_assert_str_eq(store_instance(ro), store_instance(rw));
	cr_assert_eq(count(ro, MSG_QUEUED), 1);
	cr_assert_eq(get(ro, m.id, true), 1);
	cr_assert_eq(memcmp(rows[0].body, payload, sizeof(payload)), 0);
	struct store_new w = mk("ep-a", NULL, 0, 2);
	cr_assert_eq(commit_msgs(ro, &w, 1, 2), -EROFS);
	/* SQLite keeps the transaction open after SQLITE_READONLY: only the
	 * backend's rollback lets the next transaction begin */
	cr_assert_eq(store_prune(ro, 10, 10, 10), -EROFS,
		     "%s", store_last_error(ro));
	store_close(ro);
	store_close(rw);

	ro = open_opt(&ro_opt); /* alone, after the writer closed */
	cr_assert_eq(count(ro, MSG_QUEUED), 1);
	cr_assert_eq(commit_msgs(ro, &w, 1, 2), -EROFS);
	store_close(ro);
}

Test(store_sqlite, read_only_open_of_a_missing_database_fails)
{
	char err[512] = "";
	struct store_options ro = { .read_only = true };
	cr_assert_null(store_open("sqlite", dir, &ro, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "edibroker.db"), "%s", err);
}

Test(store_sqlite, garbage_file_fails_to_open_with_a_clear_error)
{
	write_garbage(dbpath, 8192, 0);
	char err[512] = "";
	cr_assert_null(store_open("sqlite", dir, NULL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "edibroker.db"), "%s", err);
	cr_assert_not_null(strstr(err, "not a database"), "%s", err);

	void *be = NULL;
	struct store_options ro = { .read_only = true };
	cr_assert_eq(store_sqlite_ops.open(dir, &ro, &be), -EBADMSG);
	cr_assert_null(be, "out-parameter untouched on failure");
	cr_assert_not_null(strstr(store_sqlite_ops.last_error(NULL), "not a database"));
}

Test(store_sqlite, damaged_table_reports_ebadmsg_not_a_crash)
{
	struct store *s = open_store();
	static struct store_new m[64];
	for (size_t i = 0; i < 64; i++)
		m[i] = mk("ep-a", NULL, 0, 1);
	cr_assert_eq(commit_msgs(s, m, 64, 1), 0);
	store_close(s);
	int64_t root = raw_int("SELECT rootpage FROM sqlite_schema WHERE name = 'bodies'");
	int64_t page = raw_int("PRAGMA page_size");
	write_garbage(dbpath, (size_t)page, (off_t)((root - 1) * page));

	s = open_store();
	cr_assert_eq(count(s, MSG_QUEUED), 64, "metadata does not touch bodies");
	int r = store_fetch_queued(s, "ep-a", 0, NULL, 0, 10, collect, NULL);
	cr_assert_eq(r, -EBADMSG);
	cr_assert_not_null(strstr(store_last_error(s), "malformed"), "%s", store_last_error(s));
	store_close(s);
}

Test(store_sqlite, newer_or_foreign_schema_is_refused)
{
	struct store *s = open_store();
	store_close(s);
	raw_exec("PRAGMA user_version = 99");
	char err[512] = "";
	cr_assert_null(store_open("sqlite", dir, NULL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "schema version 99 is newer"), "%s", err);

	cr_assert_eq(remove(dbpath), 0);
	raw_exec("CREATE TABLE foo (x)");
	cr_assert_null(store_open("sqlite", dir, NULL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not an edibroker database"), "%s", err);
}

/* ---- transmission ids (issue 10) ---- */

static const uint8_t digest_x[32] = { 1, 2, 3 }, digest_y[32] = { 9, 8, 7 };

static struct store_txid txid(const char *scope, const char *id, const uint8_t *digest)
{
	return (struct store_txid){ scope, GLN_A, id, digest, 32 };
}

static struct store_new mk_tx(const struct store_key *k, const struct store_txid *t, size_t nt)
{
	struct store_new m = mk("ep-a", k, 1, 1);
	m.txids = t;
	m.ntxids = nt;
	return m;
}

Test(store, a_resend_in_a_new_wrapping_is_a_duplicate_and_records_the_new_id)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new bare = mk("ep-a", &k, 1, 1);
	cr_assert_eq(commit_msgs(s, &bare, 1, 1), 0);
	struct store_txid sb = txid("sbdh", "S1", digest_x);
	struct store_new wrapped = mk_tx(&k, &sb, 1);
	cr_assert_eq(commit_msgs(s, &wrapped, 1, 2), 0);
	cr_assert_eq(wrapped.outcome, STORE_DUPLICATE, "one letter, whatever wrapping");
	cr_assert_eq(wrapped.id, bare.id);
	bool same = false;
	int64_t by = 0;
	cr_assert_eq(store_txid_lookup(s, &sb, &same, &by), 1, "the new wrapper id is recorded");
	cr_assert(same);
	cr_assert_eq(by, bare.id, "as naming the message that carries the letter");
	struct store_new again = mk_tx(&k, &sb, 1);
	cr_assert_eq(commit_msgs(s, &again, 1, 3), 0);
	cr_assert_eq(again.outcome, STORE_DUPLICATE, "the same wrapping resent: same content");
	store_close(s);
}

Test(store, a_wrapper_id_reused_for_other_content_is_a_dead_letter)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" }, k2 = { GLN_A, "L2" };
	struct store_txid v1 = txid("vans", "EPIC1", digest_x), v2 = txid("vans", "EPIC1", digest_y);
	struct store_new first = mk_tx(&k1, &v1, 1);
	cr_assert_eq(commit_msgs(s, &first, 1, 1), 0);
	cr_assert_eq(first.outcome, STORE_STORED);
	struct store_new reuse = mk_tx(&k2, &v2, 1);
	cr_assert_eq(commit_msgs(s, &reuse, 1, 2), 0);
	cr_assert_eq(reuse.outcome, STORE_DEAD);
	char want[256];
	snprintf(want, sizeof(want),
		 "transmission id reused for other content: vans EPIC1 of sender " GLN_A
		 " named message %" PRId64 " before",
		 first.id);
	cr_assert_eq(get(s, reuse.id, true), 1);
	cr_assert_str_eq(rows[0].reason, want);
	cr_assert(rows[0].has_body, "kept for an operator");
	/* the dead letter recorded neither its letter nor its txid */
	struct store_txid other = txid("vans", "EPIC2", digest_y);
	struct store_new fresh = mk_tx(&k2, &other, 1);
	cr_assert_eq(commit_msgs(s, &fresh, 1, 3), 0);
	cr_assert_eq(fresh.outcome, STORE_STORED, "L2 in a new envelope is accepted");
	/* scopes and senders keep ids apart */
	struct store_txid sbdh = txid("sbdh", "EPIC1", digest_y);
	struct store_key k3 = { GLN_A, "L3" };
	struct store_new scoped = mk_tx(&k3, &sbdh, 1);
	cr_assert_eq(commit_msgs(s, &scoped, 1, 4), 0);
	cr_assert_eq(scoped.outcome, STORE_STORED);
	store_close(s);
}

Test(store, reuse_within_one_batch_and_within_one_message)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" }, k2 = { GLN_A, "L2" }, k3 = { GLN_A, "L3" };
	struct store_txid a = txid("fhir", "B1", digest_x), b = txid("fhir", "B1", digest_y);
	struct store_txid both[2] = { txid("sbdh", "S9", digest_x), txid("sbdh", "S9", digest_y) };
	struct store_new m[3] = { mk_tx(&k1, &a, 1), mk_tx(&k2, &b, 1), mk_tx(&k3, both, 2) };
	cr_assert_eq(commit_msgs(s, m, 3, 1), 0, "%s", store_last_error(s));
	cr_assert_eq(m[0].outcome, STORE_STORED);
	cr_assert_eq(m[1].outcome, STORE_DEAD, "the batch sees its own first message");
	cr_assert_eq(m[2].outcome, STORE_DEAD);
	cr_assert_eq(get(s, m[2].id, false), 1);
	cr_assert(strstr(rows[0].reason, "names two contents in this message"), "%s", rows[0].reason);
	store_close(s);
}

Test(store, dead_letters_check_and_record_no_txids)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_txid t = txid("vans", "E1", digest_x);
	struct store_new dead = mk(NULL, &k, 1, 1);
	dead.txids = &t;
	dead.ntxids = 1;
	cr_assert_eq(commit_msgs(s, &dead, 1, 1), 0);
	cr_assert_eq(dead.outcome, STORE_DEAD);
	cr_assert_eq(raw_int("SELECT count(*) FROM txids"), 0);
	store_close(s);
}

Test(store, txids_are_pruned_with_the_history)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_txid t = txid("vans", "E1", digest_x);
	struct store_new m = mk_tx(&k, &t, 1);
	cr_assert_eq(commit_msgs(s, &m, 1, 1000), 0);
	deliver(s, &m.id, 1, 1500);
	cr_assert_eq(raw_int("SELECT count(*) FROM txids"), 1);
	cr_assert_eq(store_prune(s, 0, 2000, 100), 3, "the record, its key, its txid");
	cr_assert_eq(raw_int("SELECT count(*) FROM txids"), 0);
	store_close(s);
}

Test(store_sqlite, txid_insert_of_a_known_id_fails_with_eexist)
{
	const struct store_backend_ops *ops = &store_sqlite_ops;
	void *be = NULL;
	cr_assert_eq(ops->open(dir, &(struct store_options){ 0 }, &be), 0);
	struct store_txid t = txid("sbdh", "S1", digest_x);
	uint8_t d[STORE_DIGEST_MAX];
	size_t len = 0;
	int64_t id = 0;
	cr_assert_eq(ops->begin(be), 0);
	cr_assert_eq(ops->txid_insert(be, &t, 7, 1), 0);
	cr_assert_eq(ops->txid_lookup(be, &t, d, &len, &id), 1);
	cr_assert_eq(id, 7);
	cr_assert_eq(len, 32);
	cr_assert_arr_eq(d, digest_x, 32);
	cr_assert_eq(ops->txid_insert(be, &t, 8, 1), -EEXIST);
	ops->rollback(be);
	cr_assert_eq(ops->txid_lookup(be, &t, d, &len, &id), 0);
	ops->close(be);
}

Test(store_sqlite, version_2_database_gains_the_txid_register)
{
	cr_assert_eq(store_sqlite_create_version(dir, 2), 0, "%s", store_sqlite_ops.last_error(NULL));
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE name = 'txids'"), 0);
	struct store *s = open_store();
	cr_assert_geq(raw_int("PRAGMA user_version"), 3);
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE name = 'txids'"), 1);
	struct store_key k = { GLN_A, "L1" };
	struct store_txid t = txid("vans", "E1", digest_x);
	struct store_new m = mk_tx(&k, &t, 1);
	cr_assert_eq(commit_msgs(s, &m, 1, 1), 0);
	cr_assert_eq(m.outcome, STORE_STORED);
	store_close(s);
}

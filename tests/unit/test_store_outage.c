/*
 * test_store_outage.c - the outage procedure's records (records.h) in the
 * store, through the front end (store.h) onto a backend: SQLite, on a real
 * database file in a fresh temporary directory per test, or, when
 * EDIBROKER_TEST_PG_URL names a PostgreSQL server, a schema of its own
 * there. Suite "outage_store" runs on both; "outage_store_sqlite" holds
 * what only SQLite has (pages, plans, its size cap, its old versions).
 *
 * Covers: every field of outages, notices, sends and maintenance windows
 * round-tripping (NULL strings stay NULL, booleans stay booleans), updates
 * in place, the list orders and filters the operators' views rest on, the
 * queue summary and partners that a notice's "Berørte meddelelser" and its
 * recipients come from, the routes bookkeeping on the hot path writing no
 * page for a known pair, the upgrade of a version-1 database, an outage
 * state this version cannot name, and saves that fail (full disk,
 * read-only) keeping nothing.
 */
#include "store/store.h"
#include "store/store_backend.h" /* the backend's own contract, tested directly */
#include "store/store_sqlite.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define T0 1735689600000LL /* 2025-01-01 00:00 UTC in wall ms: beyond 32 bits */

static char dir[PATH_MAX];
static char dbpath[PATH_MAX + 16];
static char pgurl[1024], pgschema[64]; /* set when the tests run on PostgreSQL */

/* Strings copied out of callbacks, freed at teardown. */
static char *owned[512];
static size_t nowned;

/* What the list callbacks collected. */
static struct outage outages[16];
static struct notice_record notices[16];
static struct store_send sends[16];
static struct maint windows[16];
static struct store_summary summaries[16];
static const char *names[16];
static size_t ngot;
static size_t stop_after; /* callbacks stop after this many rows (0 = never) */

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_store_outage.XXXXXX");
	snprintf(dbpath, sizeof(dbpath), "%s/edibroker.db", dir);
	ngot = 0;
	stop_after = 0;
	testutil_pg_schema_if_any(pgurl, sizeof(pgurl), pgschema, sizeof(pgschema));
}

static void setup_sqlite(void)
{
	setup();
	pgurl[0] = '\0';
}

static void teardown(void)
{
	while (nowned)
		free(owned[--nowned]);
	testutil_pg_drop(pgschema);
	testutil_rm_rf(dir);
}

TestSuite(outage_store, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(outage_store_sqlite, .init = setup_sqlite, .fini = teardown, .timeout = 30);

/* ---- helpers ---- */

static char *keep(const char *s)
{
	if (!s)
		return NULL;
	cr_assert_lt(nowned, ARRAY_SIZE(owned));
	return owned[nowned++] = xstrdup(s);
}

/* Rows handed over so far; non-zero (stop) once stop_after is reached. */
static int next_row(size_t cap)
{
	cr_assert_lt(ngot, cap);
	ngot++;
	return stop_after && ngot >= stop_after;
}

static int got_outage(const struct outage *o, void *arg)
{
	(void)arg;
	struct outage *c = &outages[ngot];
	*c = *o;
	c->endpoint = keep(o->endpoint);
	c->cause_fault = keep(o->cause_fault);
	c->cause_error = keep(o->cause_error);
	c->cause_override = keep(o->cause_override);
	c->contact_override = keep(o->contact_override);
	c->fallback_override = keep(o->fallback_override);
	c->changed_by = keep(o->changed_by);
	return next_row(ARRAY_SIZE(outages));
}

static int got_notice(const struct notice_record *n, void *arg)
{
	(void)arg;
	struct notice_record *c = &notices[ngot];
	*c = *n;
	c->kind = keep(n->kind);
	c->audience = keep(n->audience);
	c->recipients = keep(n->recipients);
	c->subject = keep(n->subject);
	c->body = keep(n->body);
	c->payload = keep(n->payload);
	c->pending = keep(n->pending);
	return next_row(ARRAY_SIZE(notices));
}

static int got_send(const struct store_send *s, void *arg)
{
	(void)arg;
	struct store_send *c = &sends[ngot];
	*c = *s;
	c->channel = keep(s->channel);
	c->recipients = keep(s->recipients);
	c->error = keep(s->error);
	return next_row(ARRAY_SIZE(sends));
}

static int got_window(const struct maint *m, void *arg)
{
	(void)arg;
	struct maint *c = &windows[ngot];
	*c = *m;
	c->endpoint = keep(m->endpoint);
	c->reason = keep(m->reason);
	c->contact = keep(m->contact);
	c->changed_by = keep(m->changed_by);
	return next_row(ARRAY_SIZE(windows));
}

static int got_summary(const struct store_summary *s, void *arg)
{
	(void)arg;
	struct store_summary *c = &summaries[ngot];
	*c = *s;
	c->type = keep(s->type);
	c->source = keep(s->source);
	return next_row(ARRAY_SIZE(summaries));
}

static int got_name(const char *name, void *arg)
{
	(void)arg;
	names[ngot] = keep(name);
	return next_row(ARRAY_SIZE(names));
}

/* Both NULL, or both strings and equal. */
static void assert_str(const char *got, const char *want, const char *field)
{
	if (!want) {
		cr_assert_null(got, "%s: want NULL, got \"%s\"", field, got);
		return;
	}
	cr_assert_not_null(got, "%s: want \"%s\", got NULL", field, want);
	cr_assert_str_eq(got, want, "%s", field);
}

static struct store *open_opt(const struct store_options *opt)
{
	char err[512] = "";
	struct store_options o = opt ? *opt : (struct store_options){ 0 };
	if (pgurl[0]) {
		o.url = pgurl;
		o.node = "test";
		o.wait_ms = 20000;
	}
	struct store *s = store_open(pgurl[0] ? "postgresql" : "sqlite", dir, &o, err, sizeof(err));
	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

static struct store *cur; /* the store the helpers below read */

/* Opens the store (opt NULL = defaults) and points the helpers at it. */
static struct store *open_be(const struct store_options *opt)
{
	return cur = open_opt(opt);
}

static void save_outage(struct store *s, struct outage *o)
{
	int r = store_outage_save(cur, o);
	cr_assert_eq(r, 0, "outage_save: %d %s", r, store_last_error(s));
	cr_assert_gt(o->id, 0);
}

static void save_notice(struct store *s, struct notice_record *n)
{
	int r = store_notice_save(cur, n);
	cr_assert_eq(r, 0, "notice_save: %d %s", r, store_last_error(s));
	cr_assert_gt(n->id, 0);
}

static void save_window(struct store *s, struct maint *m)
{
	int r = store_maintenance_save(cur, m);
	cr_assert_eq(r, 0, "maintenance_save: %d %s", r, store_last_error(s));
	cr_assert_gt(m->id, 0);
}

static void record_send(struct store *s, const struct store_send *x)
{
	int r = store_send_record(cur, x);
	cr_assert_eq(r, 0, "send_record: %d %s", r, store_last_error(s));
}

/* Copies outage id into outages[0]; 1 found, 0 not. */
static int get_outage(int64_t id)
{
	ngot = 0;
	return store_outage_get(cur, id, got_outage, NULL);
}

static int list_outages(int64_t closed_since, size_t limit)
{
	ngot = 0;
	return store_outage_list(cur, closed_since, limit, got_outage, NULL);
}

static int list_notices(int64_t outage_id, int64_t maintenance_id)
{
	ngot = 0;
	return store_notice_list(cur, outage_id, maintenance_id, got_notice, NULL);
}

static int pending_notices(void)
{
	ngot = 0;
	return store_notice_pending(cur, got_notice, NULL);
}

static int list_windows(bool removed)
{
	ngot = 0;
	return store_maintenance_list(cur, removed, got_window, NULL);
}

static int list_partners(const char *endpoint)
{
	ngot = 0;
	return store_partners(cur, endpoint, got_name, NULL);
}

/* Every field set, each to a value of its own. */
static struct outage full_outage(void)
{
	return (struct outage){
		.endpoint = "aarhus-kommune", .state = OUTAGE_ANNOUNCED, .manual = true,
		.started_at = T0 + 1, .declared_at = T0 + 2, .ended_at = T0 + 3,
		.resolved_at = T0 + 4, .closed_at = T0 + 5, .announced_at = T0 + 6,
		.last_notice_at = T0 + 7, .due_at = T0 + 8, .expected_end = T0 + 9,
		.cause_fault = "refused", .cause_error = "connect: Connection refused",
		.cause_override = "Planlagt opgradering af EOJ, ærø", .contact_override = "Jens, +45 1234",
		.fallback_override = "VisInfoSyd vagttelefon, +45 7011 2233",
		.maintenance_id = 77, .delivered_late = 5000000000LL,
		.changed_by = "jens (uid 1001)",
	};
}

/* Only what is required; every optional string NULL. */
static struct outage bare_outage(enum outage_state state, int64_t started_at)
{
	return (struct outage){ .endpoint = "ep-a", .state = state, .started_at = started_at };
}

static void assert_outage(const struct outage *got, const struct outage *want)
{
	cr_assert_eq(got->id, want->id);
	assert_str(got->endpoint, want->endpoint, "endpoint");
	cr_assert_eq(got->state, want->state, "state");
	cr_assert_eq(got->manual, want->manual, "manual");
	cr_assert_eq(got->started_at, want->started_at);
	cr_assert_eq(got->declared_at, want->declared_at);
	cr_assert_eq(got->ended_at, want->ended_at);
	cr_assert_eq(got->resolved_at, want->resolved_at);
	cr_assert_eq(got->closed_at, want->closed_at);
	cr_assert_eq(got->announced_at, want->announced_at);
	cr_assert_eq(got->last_notice_at, want->last_notice_at);
	cr_assert_eq(got->due_at, want->due_at);
	cr_assert_eq(got->expected_end, want->expected_end);
	assert_str(got->cause_fault, want->cause_fault, "cause_fault");
	assert_str(got->cause_error, want->cause_error, "cause_error");
	assert_str(got->cause_override, want->cause_override, "cause_override");
	assert_str(got->contact_override, want->contact_override, "contact_override");
	assert_str(got->fallback_override, want->fallback_override, "fallback_override");
	cr_assert_eq(got->maintenance_id, want->maintenance_id);
	cr_assert_eq(got->delivered_late, want->delivered_late);
	assert_str(got->changed_by, want->changed_by, "changed_by");
}

static struct notice_record full_notice(int64_t outage_id, int64_t maintenance_id, int64_t created)
{
	return (struct notice_record){
		.outage_id = outage_id, .maintenance_id = maintenance_id, .kind = "initial",
		.audience = "support", .recipients = "a@x.example,b@y.example",
		.subject = "EDI-nedbrud: aarhus-kommune", .body = "Årsag til fejl: refused\nKontaktperson: Jens",
		.payload = "{\"kind\":\"initial\"}", .created_at = created, .pending = "email,webhook",
		.attempts = 3, .next_attempt_at = created + 60000,
	};
}

static void assert_notice(const struct notice_record *got, const struct notice_record *want)
{
	cr_assert_eq(got->id, want->id);
	cr_assert_eq(got->outage_id, want->outage_id);
	cr_assert_eq(got->maintenance_id, want->maintenance_id);
	assert_str(got->kind, want->kind, "kind");
	assert_str(got->audience, want->audience, "audience");
	assert_str(got->recipients, want->recipients, "recipients");
	assert_str(got->subject, want->subject, "subject");
	assert_str(got->body, want->body, "body");
	assert_str(got->payload, want->payload, "payload");
	cr_assert_eq(got->created_at, want->created_at);
	assert_str(got->pending, want->pending, "pending");
	cr_assert_eq(got->attempts, want->attempts);
	cr_assert_eq(got->next_attempt_at, want->next_attempt_at);
}

static struct maint window(char *endpoint, int64_t from, int64_t removed_at)
{
	return (struct maint){
		.endpoint = endpoint, .from = from, .to = from + 7200000, .reason = "Opgradering",
		.contact = "IT-drift, +45 8888", .created_at = T0 + 11, .removed_at = removed_at,
		.announced_at = T0 + 12, .ended_at = T0 + 13, .changed_by = "root (uid 0)",
	};
}

static void assert_window(const struct maint *got, const struct maint *want)
{
	cr_assert_eq(got->id, want->id);
	assert_str(got->endpoint, want->endpoint, "endpoint");
	cr_assert_eq(got->from, want->from);
	cr_assert_eq(got->to, want->to);
	assert_str(got->reason, want->reason, "reason");
	assert_str(got->contact, want->contact, "contact");
	cr_assert_eq(got->created_at, want->created_at);
	cr_assert_eq(got->removed_at, want->removed_at);
	cr_assert_eq(got->announced_at, want->announced_at);
	cr_assert_eq(got->ended_at, want->ended_at);
	assert_str(got->changed_by, want->changed_by, "changed_by");
}

/* A queued message from source to endpoint (a dead letter when endpoint is NULL). */
static struct store_new msg(const char *source, const char *endpoint, const char *type,
			    int64_t received_at)
{
	static const char body[] = "<Emessage/>";
	return (struct store_new){
		.source = source, .endpoint = endpoint, .reason = endpoint ? NULL : "no route",
		.format = "oioxml", .ext = "xml", .type = type, .envelope_id = "ENV",
		.sender = "5790000000001", .receiver = "5790000000002", .nletters = 1,
		.body = body, .size = sizeof(body) - 1, .received_at = received_at,
	};
}

static void commit(struct store *s, struct store_new *m, size_t n)
{
	struct store_batch b = { .msgs = m, .nmsgs = n, .now = T0 };
	int r = store_commit(s, &b);
	cr_assert_eq(r, 0, "store_commit: %d %s", r, store_last_error(s));
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

/* True when another connection can take the write lock at once: a failed
 * save must not leave its transaction open. */
static bool raw_can_write(void)
{
	if (pgurl[0]) { /* no lock on the record tables is left behind */
		testutil_pg_exec(pgurl, "BEGIN; SET LOCAL lock_timeout = '1s'; "
					"LOCK TABLE outages, notices, notice_sends, maintenance "
					"IN EXCLUSIVE MODE; COMMIT");
		return true;
	}
	sqlite3 *db = raw_open(SQLITE_OPEN_READWRITE);
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK;
}

/* ---- outages ---- */

Test(outage_store, outage_round_trips_every_field)
{
	struct store *s = open_be(NULL);
	struct outage full = full_outage();
	struct outage bare = bare_outage(OUTAGE_OPEN, T0);
	struct outage empty = bare_outage(OUTAGE_OPEN, T0);
	empty.cause_fault = ""; /* "" is a value, not NULL */
	save_outage(s, &full);
	save_outage(s, &bare);
	save_outage(s, &empty);
	cr_assert_gt(bare.id, full.id, "ids increase");

	cr_assert_eq(get_outage(full.id), 1);
	assert_outage(&outages[0], &full);
	cr_assert_eq(get_outage(bare.id), 1);
	assert_outage(&outages[0], &bare);
	cr_assert_not(outages[0].manual);
	cr_assert_eq(get_outage(empty.id), 1);
	assert_str(outages[0].cause_fault, "", "cause_fault");
	cr_assert_eq(raw_int("SELECT count(*) FROM outages WHERE cause_override IS NULL"), 2,
		     "NULL strings are stored as SQL NULL");
	cr_assert_eq(raw_int("SELECT CAST(manual AS integer) FROM outages ORDER BY id LIMIT 1"), 1, "a bool is 0/1");
	/* each field under its own column name (filters and indexes use them) */
	cr_assert_eq(raw_int("SELECT count(*) FROM outages WHERE endpoint = 'aarhus-kommune'"
			     " AND state = 'announced' AND CAST(manual AS integer) = 1"
			     " AND started_at = 1735689600001 AND declared_at = 1735689600002"
			     " AND ended_at = 1735689600003 AND resolved_at = 1735689600004"
			     " AND closed_at = 1735689600005 AND announced_at = 1735689600006"
			     " AND last_notice_at = 1735689600007 AND due_at = 1735689600008"
			     " AND expected_end = 1735689600009 AND cause_fault = 'refused'"
			     " AND cause_error LIKE 'connect:%' AND cause_override LIKE 'Planlagt%'"
			     " AND contact_override LIKE 'Jens%' AND maintenance_id = 77"
			     " AND delivered_late = 5000000000 AND changed_by = 'jens (uid 1001)'"), 1);
	store_close(s);
}

Test(outage_store, outage_get_found_and_not_found)
{
	struct store *s = open_be(NULL);
	struct outage o = full_outage();
	save_outage(s, &o);
	cr_assert_eq(get_outage(o.id), 1);
	cr_assert_eq(ngot, 1);
	cr_assert_eq(outages[0].id, o.id);
	cr_assert_eq(get_outage(o.id + 1), 0);
	cr_assert_eq(ngot, 0, "no callback when not found");
	cr_assert_eq(get_outage(0), 0);
	store_close(s);
}

Test(outage_store, outage_update_in_place)
{
	struct store *s = open_be(NULL);
	struct outage o = full_outage();
	save_outage(s, &o);
	int64_t id = o.id;
	o.state = OUTAGE_RESOLVED;
	o.manual = false;
	o.ended_at = T0 + 100;
	o.cause_override = NULL; /* an operator's cause withdrawn */
	o.delivered_late = 42;
	save_outage(s, &o);
	cr_assert_eq(o.id, id, "an update keeps the id");
	cr_assert_eq(raw_int("SELECT count(*) FROM outages"), 1, "updated, not inserted");
	cr_assert_eq(get_outage(id), 1);
	assert_outage(&outages[0], &o);

	struct outage ghost = full_outage();
	ghost.id = id + 10;
	cr_assert_eq(store_outage_save(cur, &ghost), -ENOENT, "an unknown id is not created");
	cr_assert_eq(ghost.id, id + 10);
	cr_assert(raw_can_write(), "the failed update released the write lock");
	cr_assert_eq(raw_int("SELECT count(*) FROM outages"), 1);
	store_close(s);
}

Test(outage_store, outage_list_newest_first_with_closed_since_and_limit)
{
	struct store *s = open_be(NULL);
	struct outage o[6] = {
		bare_outage(OUTAGE_OPEN, T0 + 100),      /* 0 */
		bare_outage(OUTAGE_CLOSED, T0 + 500),    /* 1: closed long ago */
		bare_outage(OUTAGE_ANNOUNCED, T0 + 300), /* 2 */
		bare_outage(OUTAGE_CLOSED, T0 + 200),    /* 3: closed recently */
		bare_outage(OUTAGE_RESOLVED, T0 + 300),  /* 4: same start as 2, newer id */
		bare_outage(OUTAGE_CLOSED, T0 + 400),    /* 5: closed exactly at the bound */
	};
	o[1].closed_at = T0 + 1000;
	o[3].closed_at = T0 + 3000;
	o[5].closed_at = T0 + 2000;
	for (size_t i = 0; i < ARRAY_SIZE(o); i++)
		save_outage(s, &o[i]);

	cr_assert_eq(list_outages(T0 + 2000, 10), 5);
	const int64_t want[5] = { o[5].id, o[4].id, o[2].id, o[3].id, o[0].id };
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(outages[i].id, want[i], "row %zu: by started_at desc, then id desc", i);
	cr_assert_eq(list_outages(T0 + 2001, 10), 4, "closed before the bound: left out");
	cr_assert_eq(list_outages(0, 10), 6, "closed_since 0: all");
	cr_assert_eq(list_outages(INT64_MAX, 10), 3, "only the ones not closed");
	cr_assert_eq(list_outages(0, 2), 2, "limit");
	cr_assert_eq(outages[0].id, o[1].id);
	cr_assert_eq(outages[1].id, o[5].id);
	stop_after = 1;
	cr_assert_eq(list_outages(0, 10), 1, "the callback stops the walk");
	store_close(s);
}

/* A state a newer version wrote: this one cannot act on the outage, so it
 * is left out of every read rather than read as some other state. */
Test(outage_store, an_outage_in_an_unknown_state_is_left_out)
{
	struct store *s = open_be(NULL);
	struct outage known = bare_outage(OUTAGE_OPEN, T0 + 1);
	struct outage future = bare_outage(OUTAGE_OPEN, T0 + 2);
	save_outage(s, &known);
	save_outage(s, &future);
	char sql[96];
	snprintf(sql, sizeof(sql), "UPDATE outages SET state = 'escalated' WHERE id = %lld",
		 (long long)future.id);
	raw_exec(sql);
	cr_assert_eq(list_outages(0, 10), 1);
	cr_assert_eq(outages[0].id, known.id);
	cr_assert_eq(get_outage(future.id), 0);
	cr_assert_eq(get_outage(known.id), 1);
	cr_assert_eq(outages[0].state, OUTAGE_OPEN);
	store_close(s);
}

/* ---- notices and sends ---- */

Test(outage_store, notice_round_trips_every_field)
{
	struct store *s = open_be(NULL);
	struct notice_record full = full_notice(4, 0, T0);
	struct notice_record bare = { .outage_id = 4, .created_at = T0 + 1 }; /* all strings NULL */
	save_notice(s, &full);
	save_notice(s, &bare);
	cr_assert_eq(list_notices(4, 0), 2);
	assert_notice(&notices[0], &full);
	assert_notice(&notices[1], &bare);
	cr_assert_eq(raw_int("SELECT count(*) FROM notices WHERE outage_id = 4 AND maintenance_id = 0"
			     " AND kind = 'initial' AND audience = 'support'"
			     " AND recipients = 'a@x.example,b@y.example' AND subject LIKE 'EDI-nedbrud%'"
			     " AND body LIKE '%Kontaktperson%' AND payload LIKE '{%'"
			     " AND created_at = 1735689600000 AND pending = 'email,webhook'"
			     " AND attempts = 3 AND next_attempt_at = 1735689660000"), 1,
		     "each field under its own column name");
	cr_assert_eq(raw_int("SELECT count(*) FROM notices WHERE kind IS NULL AND audience IS NULL"
			     " AND recipients IS NULL AND subject IS NULL AND body IS NULL"
			     " AND payload IS NULL AND pending IS NULL"), 1, "NULL stays NULL");

	full.pending = "webhook";
	full.attempts = 4;
	full.next_attempt_at = T0 + 999;
	full.subject = NULL;
	save_notice(s, &full);
	cr_assert_eq(list_notices(4, 0), 2, "updated in place");
	assert_notice(&notices[0], &full);
	store_close(s);
}

Test(outage_store, notice_pending_oldest_first_until_cleared)
{
	struct store *s = open_be(NULL);
	struct notice_record n[4] = {
		full_notice(1, 0, T0 + 30), full_notice(1, 0, T0 + 10),
		full_notice(2, 0, T0 + 20), full_notice(2, 0, T0 + 5),
	};
	n[0].kind = n[2].kind = "update"; /* an outage has one initial notice */
	n[3].pending = ""; /* done at once */
	for (size_t i = 0; i < ARRAY_SIZE(n); i++)
		save_notice(s, &n[i]);
	cr_assert_eq(pending_notices(), 3);
	cr_assert_eq(notices[0].id, n[1].id, "oldest (by created_at) first");
	cr_assert_eq(notices[1].id, n[2].id);
	cr_assert_eq(notices[2].id, n[0].id);
	assert_notice(&notices[0], &n[1]);

	n[2].pending = "";
	n[2].next_attempt_at = 0;
	save_notice(s, &n[2]);
	n[0].pending = NULL; /* NULL also means nothing pending */
	save_notice(s, &n[0]);
	cr_assert_eq(pending_notices(), 1);
	cr_assert_eq(notices[0].id, n[1].id);
	n[1].pending = "";
	save_notice(s, &n[1]);
	cr_assert_eq(pending_notices(), 0);
	store_close(s);
}

Test(outage_store, notice_list_by_outage_or_by_maintenance)
{
	struct store *s = open_be(NULL);
	struct notice_record n[5] = {
		full_notice(1, 0, T0 + 3), full_notice(2, 0, T0 + 1), full_notice(1, 0, T0 + 1),
		full_notice(0, 9, T0 + 2), full_notice(0, 8, T0 + 2),
	};
	n[3].kind = "planned";
	n[0].kind = "update"; /* an outage has one initial notice */
	for (size_t i = 0; i < ARRAY_SIZE(n); i++)
		save_notice(s, &n[i]);
	cr_assert_eq(list_notices(1, 0), 2);
	cr_assert_eq(notices[0].id, n[2].id, "oldest first");
	cr_assert_eq(notices[1].id, n[0].id);
	cr_assert_eq(list_notices(2, 0), 1);
	cr_assert_eq(notices[0].id, n[1].id);
	cr_assert_eq(list_notices(0, 9), 1);
	assert_notice(&notices[0], &n[3]);
	cr_assert_eq(list_notices(3, 0), 0);
	cr_assert_eq(list_notices(0, 0), -EINVAL, "neither: not every outage notice");
	store_close(s);
}

Test(outage_store, sends_round_trip_in_order_per_notice)
{
	struct store *s = open_be(NULL);
	struct store_send x[4] = {
		{ .notice_id = 7, .channel = "email", .at = T0 + 20, .ok = false,
		  .recipients = "a@x.example,b@y.example", .error = "SMTP 451 try later" },
		{ .notice_id = 7, .channel = "webhook", .at = T0 + 10, .ok = true,
		  .recipients = "http://127.0.0.1:9/hook", .error = "" },
		{ .notice_id = 8, .channel = "email", .at = T0 + 5, .ok = true },
		{ .notice_id = 7, .channel = "fallback", .at = T0 + 20, .ok = true,
		  .recipients = NULL, .error = NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(x); i++)
		record_send(s, &x[i]);
	ngot = 0;
	cr_assert_eq(store_send_list(cur, 7, got_send, NULL), 3);
	const struct store_send *want[3] = { &x[1], &x[0], &x[3] }; /* by time, then as recorded */
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(sends[i].notice_id, 7);
		assert_str(sends[i].channel, want[i]->channel, "channel");
		cr_assert_eq(sends[i].at, want[i]->at);
		cr_assert_eq(sends[i].ok, want[i]->ok, "ok of row %zu", i);
		assert_str(sends[i].recipients, want[i]->recipients, "recipients");
		assert_str(sends[i].error, want[i]->error, "error");
	}
	ngot = 0;
	cr_assert_eq(store_send_list(cur, 9, got_send, NULL), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM notice_sends WHERE notice_id = 7"
			     " AND channel = 'email' AND at = 1735689600020 AND CAST(ok AS integer) = 0"
			     " AND recipients LIKE 'a@%' AND error LIKE 'SMTP%'"), 1,
		     "each field under its own column name");
	store_close(s);
}

/* ---- maintenance windows ---- */

Test(outage_store, maintenance_round_trips_and_lists_by_from)
{
	struct store *s = open_be(NULL);
	struct maint m[4] = {
		window("ep-a", T0 + 3000, 0), window("ep-b", T0 + 1000, T0 + 50),
		window("ep-c", T0 + 2000, 0), window("ep-a", T0 + 500, 0),
	};
	m[2].contact = NULL; /* the endpoint's configured contact */
	m[2].reason = NULL;
	m[3].announced_at = 0;
	m[3].ended_at = 0;
	for (size_t i = 0; i < ARRAY_SIZE(m); i++)
		save_window(s, &m[i]);

	cr_assert_eq(raw_int("SELECT count(*) FROM maintenance WHERE endpoint = 'ep-b'"
			     " AND from_at = 1735689601000 AND to_at = 1735696801000"
			     " AND reason = 'Opgradering' AND contact LIKE 'IT-drift%'"
			     " AND created_at = 1735689600011 AND removed_at = 1735689600050"
			     " AND announced_at = 1735689600012 AND ended_at = 1735689600013"
			     " AND changed_by = 'root (uid 0)'"), 1,
		     "each field under its own column name");
	cr_assert_eq(list_windows(false), 3, "the removed window is not in force");
	assert_window(&windows[0], &m[3]);
	assert_window(&windows[1], &m[2]);
	assert_window(&windows[2], &m[0]);
	cr_assert_eq(list_windows(true), 4);
	assert_window(&windows[0], &m[3]);
	assert_window(&windows[1], &m[1]);
	assert_window(&windows[2], &m[2]);
	assert_window(&windows[3], &m[0]);

	m[0].removed_at = T0 + 60; /* edibrokerctl maintenance remove */
	save_window(s, &m[0]);
	cr_assert_eq(list_windows(false), 2);
	cr_assert_eq(windows[1].id, m[2].id);
	cr_assert_eq(raw_int("SELECT count(*) FROM maintenance"), 4, "updated in place");
	store_close(s);
}

/* ---- queue summary and partners (from committed messages) ---- */

Test(outage_store, queue_summary_groups_queued_messages_of_the_endpoint)
{
	struct store *s = open_be(NULL);
	struct store_new m[9] = {
		msg("ep-a", "ep-b", "XDIS20", T0 + 300), msg("ep-a", "ep-b", "XDIS20", T0 + 100),
		msg("ep-a", "ep-b", "XDIS20", T0 + 200), msg("ep-a", "ep-b", "XDIS16", T0 + 400),
		msg("ep-c", "ep-b", "XDIS20", T0 + 250), msg("ep-c", "ep-b", "XDIS20", T0 + 150),
		msg("ep-c", "ep-b", "XDIS16", T0 + 10), /* delivered below */
		msg("ep-a", "ep-d", "XDIS20", T0 + 1),  /* another endpoint */
		msg("ep-a", NULL, "XDIS20", T0 + 2),    /* dead letter */
	};
	commit(s, m, ARRAY_SIZE(m));
	struct store_batch b = { .delivered = &m[6].id, .ndelivered = 1, .now = T0 + 500 };
	cr_assert_eq(store_commit(s, &b), 0);

	cr_assert_eq(store_queue_summary(cur, "ep-b", got_summary, NULL), 3);
	const struct store_summary want[3] = {
		{ "XDIS16", "ep-a", 1, T0 + 400 },
		{ "XDIS20", "ep-a", 3, T0 + 100 },
		{ "XDIS20", "ep-c", 2, T0 + 150 },
	};
	for (size_t i = 0; i < 3; i++) {
		assert_str(summaries[i].type, want[i].type, "type");
		assert_str(summaries[i].source, want[i].source, "source");
		cr_assert_eq(summaries[i].count, want[i].count, "count of row %zu", i);
		cr_assert_eq(summaries[i].oldest_received_at, want[i].oldest_received_at);
	}
	ngot = 0;
	cr_assert_eq(store_queue_summary(cur, "ep-x", got_summary, NULL), 0);
	store_close(s);
}

/* A 100k backlog must not be read row by row from the table's full scan. */
Test(outage_store_sqlite, queue_summary_uses_the_queued_partial_index)
{
	struct store *s = open_be(NULL);
	char plan[512];
	cr_assert_eq(store_sqlite_plan(s, "queue_summary", plan, sizeof(plan)), 0);
	cr_assert_not_null(strstr(plan, "USING INDEX messages_queued (endpoint=?)"), "%s", plan);
	cr_assert_eq(store_sqlite_plan(s, "notice_pending", plan, sizeof(plan)), 0);
	cr_assert_not_null(strstr(plan, "notices_pending"), "%s", plan);
	cr_assert_eq(store_sqlite_plan(s, "partners", plan, sizeof(plan)), 0);
	cr_assert_not_null(strstr(plan, "COVERING INDEX routes_endpoint"), "%s", plan);
	cr_assert_not_null(strstr(plan, "PRIMARY KEY"), "%s", plan);
	cr_assert_null(strstr(plan, "SCAN"), "%s", plan);
	cr_assert_eq(store_sqlite_plan(s, "nonsense", plan, sizeof(plan)), -ENOENT);
	store_close(s);
}

Test(outage_store, partners_in_both_directions_without_the_broker)
{
	struct store *s = open_be(NULL);
	struct store_new m[8] = {
		msg("ep-a", "ep-b", "XDIS20", T0), msg("ep-c", "ep-a", "XDIS20", T0),
		msg("ep-a", "ep-b", "XDIS16", T0), msg("ep-b", "ep-a", "XDIS20", T0),
		msg("(broker)", "ep-a", "XCTL01", T0), msg("ep-e", NULL, "XDIS20", T0),
		msg("ep-a", "ep-a", "XDIS20", T0), msg("ep-d", "ep-e", "XDIS20", T0),
	};
	commit(s, m, ARRAY_SIZE(m));
	cr_assert_eq(list_partners("ep-a"), 2, "ep-b both ways counts once; not itself");
	assert_str(names[0], "ep-b", "partner");
	assert_str(names[1], "ep-c", "partner");
	cr_assert_eq(list_partners("ep-c"), 1, "the receiving side knows its sender");
	assert_str(names[0], "ep-a", "partner");
	cr_assert_eq(list_partners("ep-e"), 1, "a dead letter records no route");
	assert_str(names[0], "ep-d", "partner");
	cr_assert_eq(list_partners("(broker)"), 0, "receipts the broker issues record no route");
	cr_assert_eq(list_partners("ep-z"), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM routes"), 5, "a repeated pair is recorded once");
	stop_after = 1;
	cr_assert_eq(list_partners("ep-a"), 1, "the callback stops the walk");
	store_close(s);
}

/* ---- the hot path: a known route writes no page ---- */

/* Page numbers of the valid frames in the WAL (those carrying the
 * header's salt), as a bitmap over pages 1..max. Returns the frame count. */
static size_t wal_pages(bool *seen, size_t max)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s-wal", dbpath);
	size_t len = 0;
	uint8_t *buf = testutil_read_file(path, &len);
	cr_assert_geq(len, 32);
	uint32_t page_size = (uint32_t)buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11];
	size_t frames = 0;
	for (size_t at = 32; at + 24 + page_size <= len; at += 24 + page_size) {
		if (memcmp(buf + at + 8, buf + 16, 8) != 0)
			break; /* an older generation's frames */
		uint32_t pgno = (uint32_t)buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 |
				buf[at + 3];
		cr_assert(pgno > 0 && pgno <= max, "page %u", pgno);
		seen[pgno] = true;
		frames++;
	}
	free(buf);
	return frames;
}

static void commit_pair(struct store *s, const char *source, const char *endpoint)
{
	struct store_new m[16];
	for (size_t i = 0; i < ARRAY_SIZE(m); i++)
		m[i] = msg(source, endpoint, "XDIS20", T0);
	commit(s, m, ARRAY_SIZE(m));
}

Test(outage_store_sqlite, a_known_route_writes_no_page)
{
	struct store *s = open_be(NULL);
	commit_pair(s, "ep-a", "ep-b");
	store_close(s); /* the last connection checkpoints and removes the WAL */
	int64_t routes_root = raw_int("SELECT rootpage FROM sqlite_schema WHERE name = 'routes'");
	int64_t index_root = raw_int("SELECT rootpage FROM sqlite_schema WHERE name = 'routes_endpoint'");
	cr_assert_gt(routes_root, 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM routes"), 1);

	static bool seen[4096];
	s = open_be(NULL);
	commit_pair(s, "ep-a", "ep-b");
	cr_assert_gt(wal_pages(seen, ARRAY_SIZE(seen) - 1), 0, "the batch itself was written");
	cr_assert_not(seen[routes_root], "a known pair rewrote the routes table");
	cr_assert_not(seen[index_root], "a known pair rewrote the routes index");

	commit_pair(s, "ep-c", "ep-b"); /* a new pair must show: the check can fail */
	wal_pages(seen, ARRAY_SIZE(seen) - 1);
	cr_assert(seen[routes_root]);
	cr_assert(seen[index_root]);
	store_close(s);
}

/* ---- persistence and upgrade ---- */

Test(outage_store, records_persist_across_close_and_reopen)
{
	struct store *s = open_be(NULL);
	struct outage o = full_outage();
	save_outage(s, &o);
	struct notice_record n = full_notice(o.id, 0, T0);
	save_notice(s, &n);
	struct store_send x = { .notice_id = n.id, .channel = "email", .at = T0 + 1, .ok = true,
				.recipients = "a@x.example", .error = "" };
	record_send(s, &x);
	struct maint m = window("ep-a", T0, 0);
	save_window(s, &m);
	store_close(s);

	s = open_be(NULL);
	cr_assert_eq(get_outage(o.id), 1);
	assert_outage(&outages[0], &o);
	cr_assert_eq(list_notices(o.id, 0), 1);
	assert_notice(&notices[0], &n);
	ngot = 0;
	cr_assert_eq(store_send_list(cur, n.id, got_send, NULL), 1);
	assert_str(sends[0].recipients, "a@x.example", "recipients");
	cr_assert(sends[0].ok);
	cr_assert_eq(list_windows(false), 1);
	assert_window(&windows[0], &m);
	struct outage next = bare_outage(OUTAGE_OPEN, T0);
	save_outage(s, &next);
	cr_assert_gt(next.id, o.id);
	store_close(s);
}

static void raw_text(const char *sql, char *buf, size_t len)
{
	sqlite3 *db = raw_open(SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
	str_copy(buf, (const char *)sqlite3_column_text(st, 0), len);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* What an edibroker of schema 1 left: a queued, a delivered, a dead
 * message and a receipt of the broker's. */
static void fill_version_1(void)
{
	raw_exec("INSERT INTO messages (state, source, endpoint, format, ext, type, sender, receiver,"
		 " nletters, received_at, size) VALUES"
		 " (0, 'ep-a', 'ep-b', 'oioxml', 'xml', 'XDIS20', 'G1', 'G2', 1, 1000, 3);"
		 "INSERT INTO bodies (id, body) VALUES (last_insert_rowid(), x'00ff41');"
		 "INSERT INTO messages (state, source, endpoint, type, received_at, delivered_at, size)"
		 " VALUES (1, 'ep-d', 'ep-a', 'XDIS16', 900, 950, 0);"
		 "INSERT INTO messages (state, source, endpoint, reason, type, received_at, size)"
		 " VALUES (2, 'ep-c', NULL, 'no route', 'XDIS20', 1100, 0);"
		 "INSERT INTO messages (state, source, endpoint, type, received_at, size)"
		 " VALUES (0, '(broker)', 'ep-a', 'XCTL01', 1200, 0);");
}

static int got_msg(const struct store_msg *m, void *arg)
{
	struct store_msg *out = arg;
	*out = *m;
	out->type = keep(m->type);
	out->source = keep(m->source);
	cr_assert_not_null(m->body);
	cr_assert_eq(m->size, 3);
	cr_assert_eq(memcmp(m->body, "\x00\xff\x41", 3), 0, "the body survives the upgrade");
	return 0;
}

Test(outage_store_sqlite, version_1_database_upgrades_in_place)
{
	cr_assert_eq(store_sqlite_create_version(dir, 1), 0, "%s", store_sqlite_ops.last_error(NULL));
	cr_assert_eq(raw_int("PRAGMA user_version"), 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE name = 'outages'"), 0);
	fill_version_1();
	char inst[16];
	raw_text("SELECT value FROM meta WHERE key = 'instance'", inst, sizeof(inst));
	void *ro = NULL;
	cr_assert_eq(store_sqlite_ops.open(dir, &(struct store_options){ .read_only = true }, &ro),
		     -EROFS, "read-only cannot upgrade");

	struct store *s = open_be(NULL);
	cr_assert_geq(raw_int("PRAGMA user_version"), 2);
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE name IN ('outages',"
			     " 'notices', 'notice_sends', 'maintenance', 'routes')"), 5);
	cr_assert_str_eq(store_instance(s), inst, "the store keeps its identity");
	struct store_msg m = { 0 };
	cr_assert_eq(store_get(cur, 1, true, got_msg, &m), 1);
	cr_assert_eq(m.state, MSG_QUEUED);
	assert_str(m.type, "XDIS20", "type");
	assert_str(m.source, "ep-a", "source");
	int64_t queued = 0;
	cr_assert_eq(store_count(cur, MSG_QUEUED, &queued), 0);
	cr_assert_eq(queued, 2);

	cr_assert_eq(list_partners("ep-a"), 2, "routes filled from the old messages");
	assert_str(names[0], "ep-b", "partner");
	assert_str(names[1], "ep-d", "partner");
	struct outage o = full_outage();
	save_outage(s, &o);
	store_close(s);
	s = open_be(NULL); /* a second open finds nothing to do */
	cr_assert_eq(get_outage(o.id), 1);
	cr_assert_eq(list_partners("ep-a"), 2);
	store_close(s);
}

/* A store from before the outage's fallback contact (version 3) gains it,
 * its old outages read as having none, and a new one keeps it. */
Test(outage_store_sqlite, version_3_database_gains_the_fallback_override)
{
	cr_assert_eq(store_sqlite_create_version(dir, 3), 0, "%s", store_sqlite_ops.last_error(NULL));
	raw_exec("INSERT INTO outages (endpoint, state, manual, started_at, declared_at, ended_at,"
		 " resolved_at, closed_at, announced_at, last_notice_at, due_at, expected_end,"
		 " maintenance_id, delivered_late) VALUES ('ep-a', 'announced', 0, 1, 2, 0, 0, 0,"
		 " 3, 3, 4, 0, 0, 0)");
	struct store *s = open_be(NULL);
	cr_assert_geq(raw_int("PRAGMA user_version"), 4);
	cr_assert_eq(get_outage(1), 1);
	cr_assert_null(outages[0].fallback_override, "an old outage has no fallback override");
	struct outage o = full_outage();
	save_outage(s, &o);
	cr_assert_eq(get_outage(o.id), 1);
	assert_outage(&outages[0], &o);
	store_close(s);
}

/* ---- failures ---- */

/* The cap is the size after creation: any save that needs a new page fails. */
Test(outage_store_sqlite, a_save_that_does_not_fit_keeps_nothing)
{
	struct store *s = open_be(&(struct store_options){ .max_bytes = 1 });
	static char big[256 * 1024];
	memset(big, 'x', sizeof(big) - 1);
	struct notice_record n = full_notice(1, 0, T0);
	n.body = big;
	cr_assert_eq(store_notice_save(cur, &n), -ENOSPC);
	cr_assert_eq(n.id, 0, "no id for a notice not stored");
	cr_assert_not_null(strstr(store_last_error(s), "full"), "%s", store_last_error(s));
	cr_assert_eq(pending_notices(), 0);

	struct notice_record small = full_notice(1, 0, T0);
	save_notice(s, &small); /* fits the table's first page: the connection works */
	int64_t id = small.id;
	small.body = big;
	cr_assert_eq(store_notice_save(cur, &small), -ENOSPC);
	cr_assert_eq(small.id, id);
	cr_assert_eq(list_notices(1, 0), 1);
	assert_str(notices[0].body, full_notice(1, 0, T0).body, "the failed update was rolled back");

	struct outage o = full_outage();
	o.cause_error = big;
	cr_assert_eq(store_outage_save(cur, &o), -ENOSPC);
	cr_assert(raw_can_write(), "no transaction left open");
	struct store_new m = msg("ep-a", "ep-b", "XDIS20", T0);
	commit(s, &m, 1); /* no transaction was left open */
	cr_assert_eq(raw_int("SELECT count(*) FROM outages"), 0);
	store_close(s);
}

Test(outage_store, read_only_store_refuses_saves)
{
	struct store *rw = open_be(NULL);
	struct outage o = full_outage();
	save_outage(rw, &o);
	store_close(rw);

	struct store *s = open_be(&(struct store_options){ .read_only = true });
	struct outage o2 = full_outage();
	cr_assert_eq(store_outage_save(cur, &o2), -EROFS, "%s", store_last_error(s));
	cr_assert_eq(o2.id, 0);
	struct notice_record n = full_notice(o.id, 0, T0);
	cr_assert_eq(store_notice_save(cur, &n), -EROFS, "the failed save left no transaction");
	cr_assert_eq(n.id, 0);
	struct store_send x = { .notice_id = 1, .channel = "email", .at = T0, .ok = true };
	cr_assert_eq(store_send_record(cur, &x), -EROFS);
	struct maint m = window("ep-a", T0, 0);
	cr_assert_eq(store_maintenance_save(cur, &m), -EROFS);
	o.state = OUTAGE_CLOSED;
	cr_assert_eq(store_outage_save(cur, &o), -EROFS, "an update too");
	cr_assert(raw_can_write(), "no transaction left open");
	cr_assert_eq(get_outage(o.id), 1, "reads still work");
	cr_assert_eq(outages[0].state, OUTAGE_ANNOUNCED, "state");
	store_close(s);
}

/* store_backend.h: saves are never called inside begin/commit (BEGIN would
 * fail there, and recovering from that would roll the batch back). Only
 * store_commit() opens a batch, so the backend is driven directly. */
#ifdef NDEBUG
Test(outage_store_sqlite, a_save_inside_a_batch_is_refused)
#else
Test(outage_store_sqlite, a_save_inside_a_batch_is_refused, .signal = SIGABRT)
#endif
{
	const struct store_backend_ops *ops = &store_sqlite_ops;
	void *be = NULL;
	cr_assert_eq(ops->open(dir, &(struct store_options){ 0 }, &be), 0);
	cr_assert_eq(ops->begin(be), 0);
	/* An abort skips .fini: remove the directory now. The open files stay
	 * usable, and the check below fails before touching them. */
	teardown();
	struct outage o = full_outage();
	cr_assert_eq(ops->outage_save(be, &o), -EBUSY); /* reached only with NDEBUG */
	ops->rollback(be);
	ops->close(be);
}

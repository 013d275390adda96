/*
 * test_store_history.c - a message's history and the operators' actions on
 * single messages, in store.c over the SQLite backend, against a real
 * database file in a fresh temporary directory per test; the suite
 * store_history runs again on PostgreSQL (make unit-pg), in a schema of its
 * own per test, and store_history_sqlite is about SQLite's file only.
 *
 * Covers: failed attempts and later duplicates in the history; messages
 * found by envelope, letter, wrapping and Bundle ids and by the envelope a
 * broker receipt answers; requeue, delete and resend as one transaction
 * each (state, body, history on both messages); holds; the store's size;
 * that the look-ups use their indexes; and a version 5 database upgraded.
 */
#include "store/store.h"
#include "store/store_sqlite.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define GLN_A "5790000000001"
#define GLN_B "5790000000002"

static char dir[PATH_MAX];
static char pgurl[1024], pgschema[64]; /* set: the suite runs on PostgreSQL */
static const char body[] = "<Emessage>the same bytes</Emessage>";

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_store_history.XXXXXX");
	testutil_pg_schema_if_any(pgurl, sizeof(pgurl), pgschema, sizeof(pgschema));
}

static void setup_sqlite(void)
{
	setup();
	pgurl[0] = '\0';
}

static void teardown(void)
{
	testutil_pg_drop(pgschema);
	testutil_rm_rf(dir);
}

TestSuite(store_history, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(store_history_sqlite, .init = setup_sqlite, .fini = teardown, .timeout = 30);

static struct store *open_store(void)
{
	char err[512] = "";
	struct store_options o = { .url = pgurl, .node = "test" };
	struct store *s = store_open(pgurl[0] ? "postgresql" : "sqlite", dir, &o, err, sizeof(err));
	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

/* A message for endpoint (NULL: a dead letter) with one letter key. */
static struct store_new msg(const char *endpoint, const char *envelope, const struct store_key *key)
{
	return (struct store_new){
		.source = "hospital", .endpoint = endpoint, .reason = endpoint ? NULL : "no route",
		.format = "oioxml", .ext = "xml", .type = "XDIS20", .envelope_id = envelope,
		.letter_id = key ? key->letter_id : NULL, .sender = GLN_A, .receiver = GLN_B,
		.nletters = 1, .keys = key, .nkeys = key ? 1 : 0, .body = body,
		.size = sizeof(body) - 1, .received_at = 1000,
	};
}

static void commit(struct store *s, struct store_new *m, size_t n, int64_t now)
{
	struct store_batch b = { .msgs = m, .nmsgs = n, .now = now };
	int r = store_commit(s, &b);
	cr_assert_eq(r, 0, "commit: %d %s", r, store_last_error(s));
}

/* ---- what the callbacks saw ---- */

struct ev {
	int64_t msg_id, at, ref;
	char kind[24], fault[24], detail[128], by[48];
};

static struct ev evs[16];
static size_t nevs;

static void cp(char *dst, size_t len, const char *src)
{
	str_copy(dst, src ? src : "<NULL>", len);
}

static int on_event(const struct store_event *e, void *arg)
{
	cr_assert_lt(nevs, ARRAY_SIZE(evs));
	struct ev *v = &evs[nevs++];
	*v = (struct ev){ .msg_id = e->msg_id, .at = e->at, .ref = e->ref };
	cp(v->kind, sizeof(v->kind), e->kind);
	cp(v->fault, sizeof(v->fault), e->fault);
	cp(v->detail, sizeof(v->detail), e->detail);
	cp(v->by, sizeof(v->by), e->by);
	return 0;
}

static size_t history(struct store *s, int64_t id)
{
	nevs = 0;
	int r = store_events(s, id, on_event, NULL);
	cr_assert_geq(r, 0, "events: %s", store_last_error(s));
	cr_assert_eq((size_t)r, nevs);
	return nevs;
}

static int64_t ids[16];
static size_t nids;

static int on_id(int64_t id, void *arg)
{
	cr_assert_lt(nids, ARRAY_SIZE(ids));
	ids[nids++] = id;
	return 0;
}

static size_t find(struct store *s, enum store_find by, const char *key)
{
	nids = 0;
	int r = store_find(s, by, key, 10, on_id, NULL);
	cr_assert_geq(r, 0, "find: %s", store_last_error(s));
	return nids;
}

struct got {
	enum msg_state state;
	bool body;
	int64_t removed_at;
	char endpoint[32], letter_id[32], refers[32];
	size_t size;
	int attempts;
};

static int on_msg(const struct store_msg *m, void *arg)
{
	struct got *g = arg;
	*g = (struct got){ .state = m->state, .body = m->body != NULL, .removed_at = m->removed_at,
			   .size = m->size, .attempts = m->attempts };
	cp(g->endpoint, sizeof(g->endpoint), m->endpoint);
	cp(g->letter_id, sizeof(g->letter_id), m->letter_id);
	cp(g->refers, sizeof(g->refers), m->refers);
	if (m->body)
		cr_assert_eq(memcmp(m->body, body, sizeof(body) - 1), 0, "the same bytes");
	return 0;
}

static struct got get(struct store *s, int64_t id)
{
	struct got g = { 0 };
	cr_assert_eq(store_get(s, id, true, on_msg, &g), 1, "message %lld", (long long)id);
	return g;
}

/* ---- the history ---- */

Test(store_history, failed_attempts_are_kept_with_their_fault_and_a_late_one_is_not)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new m = msg("municipality", "E1", &k);
	commit(s, &m, 1, 1000);
	struct store_attempt a[2] = {
		{ .id = m.id, .error = "connection refused", .fault = "refused" },
		{ .id = m.id, .error = "no answer within 60s", .fault = "timeout" },
	};
	struct store_batch b = { .attempts = a, .nattempts = 2, .now = 2000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(history(s, m.id), 2);
	cr_assert_str_eq(evs[0].kind, "attempt");
	cr_assert_str_eq(evs[0].fault, "refused");
	cr_assert_str_eq(evs[0].detail, "connection refused");
	cr_assert_eq(evs[0].at, 2000);
	cr_assert_str_eq(evs[1].fault, "timeout");

	/* delivered; a failure reported afterwards is no attempt on it */
	b = (struct store_batch){ .delivered = &m.id, .ndelivered = 1, .attempts = a,
				  .nattempts = 1, .now = 3000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(history(s, m.id), 2);
	cr_assert_eq(get(s, m.id).attempts, 2);
	store_close(s);
}

Test(store_history, a_refusal_by_the_receiver_says_why_it_is_dead)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new m = msg("municipality", "E1", &k);
	commit(s, &m, 1, 1000);
	struct store_attempt a = { .id = m.id, .error = "HTTP 422: no such patient",
				   .refused = true };
	struct store_batch b = { .attempts = &a, .nattempts = 1, .now = 2000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(get(s, m.id).state, MSG_DEAD);
	cr_assert_eq(history(s, m.id), 1);
	cr_assert_str_eq(evs[0].kind, "refused");
	cr_assert_str_eq(evs[0].detail, "HTTP 422: no such patient");
	store_close(s);
}

Test(store_history, a_duplicate_is_dropped_but_named_in_the_first_ones_history)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new m[2] = { msg("municipality", "E1", &k), msg("municipality", "E2", &k) };
	m[1].source = "gateway";
	commit(s, &m[0], 1, 1000);
	commit(s, &m[1], 1, 1500);
	cr_assert_eq(m[1].outcome, STORE_DUPLICATE);
	cr_assert_eq(m[1].id, m[0].id);
	cr_assert_eq(history(s, m[0].id), 1);
	cr_assert_str_eq(evs[0].kind, "duplicate");
	cr_assert_str_eq(evs[0].detail, "gateway", "where the resend came from");
	cr_assert_eq(evs[0].at, 1500);
	store_close(s);
}

/* ---- finding a message ---- */

Test(store_history, found_by_envelope_letter_wrapping_bundle_and_receipt)
{
	struct store *s = open_store();
	struct store_key k1 = { GLN_A, "L1" }, k2[2] = { { GLN_A, "L2" }, { GLN_A, "L3" } };
	uint8_t d[4] = { 1, 2, 3, 4 };
	struct store_txid vans = { "vans", GLN_A, "VANS-ENV", d, sizeof(d) };
	struct store_txid fhir = { "fhir", GLN_A, "bundle-1", d, sizeof(d) };
	struct store_new m[4] = { msg("municipality", "E1", &k1), msg("municipality", "E2", k2),
				  msg(NULL, "E3", NULL), msg("hospital", "R1", NULL) };
	m[1].nkeys = 2;
	m[1].txids = &vans;
	m[1].ntxids = 1;
	m[0].txids = &fhir;
	m[0].ntxids = 1;
	m[2].letter_id = "L9"; /* a dead letter records no keys, but its first letter */
	m[3].source = STORE_SOURCE_BROKER;
	m[3].refers = "E3";    /* the receipt answering the dead letter */
	commit(s, m, 4, 1000);

	cr_assert_eq(find(s, STORE_FIND_ENVELOPE, "E1"), 1);
	cr_assert_eq(ids[0], m[0].id);
	cr_assert_eq(find(s, STORE_FIND_ENVELOPE, "VANS-ENV"), 1, "a wrapping's id");
	cr_assert_eq(ids[0], m[1].id);
	cr_assert_eq(find(s, STORE_FIND_ENVELOPE, "E3"), 2, "the dead letter and its receipt");
	cr_assert_eq(ids[0], m[2].id);
	cr_assert_eq(ids[1], m[3].id);
	cr_assert_eq(find(s, STORE_FIND_REFERS, "E3"), 1);
	cr_assert_eq(ids[0], m[3].id);
	cr_assert_eq(find(s, STORE_FIND_LETTER, "L3"), 1, "the second letter of a message");
	cr_assert_eq(ids[0], m[1].id);
	cr_assert_eq(find(s, STORE_FIND_LETTER, "L9"), 1, "the first letter of a dead letter");
	cr_assert_eq(ids[0], m[2].id);
	cr_assert_eq(find(s, STORE_FIND_BUNDLE, "bundle-1"), 1);
	cr_assert_eq(ids[0], m[0].id);
	cr_assert_eq(find(s, STORE_FIND_BUNDLE, "VANS-ENV"), 0, "a VANS id is no Bundle id");
	cr_assert_eq(find(s, STORE_FIND_BUNDLE, "E1"), 0, "an OIOXML envelope is no Bundle");
	cr_assert_eq(find(s, STORE_FIND_ENVELOPE, "nothing"), 0);
	cr_assert_str_eq(get(s, m[3].id).refers, "E3");
	cr_assert_str_eq(get(s, m[2].id).letter_id, "L9");
	store_close(s);
}

Test(store_history_sqlite, look_ups_use_their_indexes)
{
	struct store *s = open_store();
	char plan[1024];
	static const char *const ops[] = { "find_envelope", "find_letter", "find_bundle", "events" };
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		cr_assert_eq(store_sqlite_plan(s, ops[i], plan, sizeof(plan)), 0);
		cr_assert_null(strstr(plan, "SCAN messages"), "%s: %s", ops[i], plan);
		cr_assert_null(strstr(plan, "SCAN txids"), "%s: %s", ops[i], plan);
		cr_assert_null(strstr(plan, "SCAN letter_keys"), "%s: %s", ops[i], plan);
		cr_assert_null(strstr(plan, "SCAN events"), "%s: %s", ops[i], plan);
		cr_assert(strstr(plan, "INDEX"), "%s: %s", ops[i], plan);
	}
	store_close(s);
}

/* ---- operators' actions ---- */

Test(store_history, requeue_ends_the_dead_letter_and_links_both_messages)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new dead = msg(NULL, "E1", NULL), again = msg("municipality", "E1", &k);
	commit(s, &dead, 1, 1000);
	commit(s, &again, 1, 2000);
	struct store_event ev = { .at = 2500, .kind = "requeued", .detail = "routed to municipality",
				  .by = "jens (uid 1001)", .ref = again.id };
	cr_assert_eq(store_requeued(s, dead.id, MSG_QUARANTINED, &ev), 0, "not quarantined");
	cr_assert_eq(store_requeued(s, dead.id, MSG_DEAD, &ev), 1);
	struct got g = get(s, dead.id);
	cr_assert_eq(g.state, MSG_REQUEUED);
	cr_assert_not(g.body, "the body lives on in the new message only");
	cr_assert_eq(g.removed_at, 2500);
	cr_assert_eq(history(s, dead.id), 1);
	cr_assert_str_eq(evs[0].kind, "requeued");
	cr_assert_str_eq(evs[0].by, "jens (uid 1001)");
	cr_assert_eq(evs[0].ref, again.id);
	cr_assert_eq(history(s, again.id), 1);
	cr_assert_str_eq(evs[0].kind, "requeued-from");
	cr_assert_eq(evs[0].ref, dead.id);
	cr_assert_eq(store_requeued(s, dead.id, MSG_DEAD, &ev), 0, "only once");
	cr_assert_eq(history(s, dead.id), 1);
	int64_t n = -1;
	cr_assert_eq(store_count(s, MSG_DEAD, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(store_count(s, MSG_REQUEUED, &n), 0);
	cr_assert_eq(n, 1);
	store_close(s);
}

Test(store_history, delete_keeps_the_record_and_its_reason_but_not_the_body)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new m = msg("municipality", "E1", &k);
	commit(s, &m, 1, 1000);
	struct store_event ev = { .at = 3000, .kind = "deleted", .detail = "sent by mistake",
				  .by = "root (uid 0)" };
	cr_assert_eq(store_delete(s, m.id, MSG_DEAD, &ev), 0, "it is queued, not dead");
	cr_assert_eq(store_delete(s, m.id, MSG_QUEUED, &ev), 1);
	struct got g = get(s, m.id);
	cr_assert_eq(g.state, MSG_DELETED);
	cr_assert_not(g.body);
	cr_assert_eq(history(s, m.id), 1);
	cr_assert_str_eq(evs[0].detail, "sent by mistake");
	cr_assert_str_eq(evs[0].by, "root (uid 0)");
	cr_assert_eq(store_fetch_queued(s, "municipality", 0, NULL, 0, 10, on_msg, &g), 0,
		     "no longer queued");
	store_close(s);
}

Test(store_history, resend_queues_a_copy_of_the_same_bytes_under_a_new_id)
{
	struct store *s = open_store();
	struct store_key k = { GLN_A, "L1" };
	struct store_new m = msg("municipality", "E1", &k);
	commit(s, &m, 1, 1000);
	struct store_batch b = { .delivered = &m.id, .ndelivered = 1, .now = 1500 };
	cr_assert_eq(store_commit(s, &b), 0);
	struct store_event ev = { .at = 4000, .kind = "resent", .by = "jens (uid 1001)" };
	int64_t copy = 0;
	cr_assert_eq(store_resend(s, m.id, &ev, &copy), 0, "%s", store_last_error(s));
	cr_assert_gt(copy, m.id);
	struct got g = get(s, copy);
	cr_assert_eq(g.state, MSG_QUEUED);
	cr_assert(g.body);
	cr_assert_eq(g.size, sizeof(body) - 1);
	cr_assert_str_eq(g.endpoint, "municipality");
	cr_assert_str_eq(g.letter_id, "L1");
	cr_assert_eq(get(s, m.id).state, MSG_DELIVERED, "the original's record stays as it was");
	cr_assert_eq(history(s, m.id), 1);
	cr_assert_str_eq(evs[0].kind, "resent");
	cr_assert_eq(evs[0].ref, copy);
	cr_assert_eq(history(s, copy), 1);
	cr_assert_str_eq(evs[0].kind, "resent-from");
	cr_assert_eq(evs[0].ref, m.id);

	/* once retention dropped the body there is nothing to resend */
	cr_assert_geq(store_prune(s, 2000, 0, 100), 1);
	int64_t none = 0;
	cr_assert_eq(store_resend(s, m.id, &ev, &none), -ENOENT);
	cr_assert_eq(none, 0);
	cr_assert_eq(history(s, m.id), 1, "a failed resend leaves no trace");
	store_close(s);
}

struct holds {
	char names[4][32], by[4][32];
	int64_t at[4];
	size_t n;
};

static int on_hold(const struct store_hold *h, void *arg)
{
	struct holds *x = arg;
	cr_assert_lt(x->n, 4);
	cp(x->names[x->n], sizeof(x->names[0]), h->endpoint);
	cp(x->by[x->n], sizeof(x->by[0]), h->by);
	x->at[x->n++] = h->at;
	return 0;
}

Test(store_history, holds_persist_and_change_once)
{
	struct store *s = open_store();
	cr_assert_eq(store_hold(s, "municipality", true, 100, "jens (uid 1001)"), 1);
	cr_assert_eq(store_hold(s, "municipality", true, 200, "root (uid 0)"), 0, "already held");
	cr_assert_eq(store_hold(s, "hospital", true, 300, "root (uid 0)"), 1);
	store_close(s);
	s = open_store();
	struct holds h = { 0 };
	cr_assert_eq(store_holds(s, on_hold, &h), 2);
	cr_assert_str_eq(h.names[0], "hospital");
	cr_assert_str_eq(h.names[1], "municipality");
	cr_assert_str_eq(h.by[1], "jens (uid 1001)", "the first hold counts");
	cr_assert_eq(h.at[1], 100);
	cr_assert_eq(store_hold(s, "hospital", false, 400, "root (uid 0)"), 1);
	cr_assert_eq(store_hold(s, "hospital", false, 400, "root (uid 0)"), 0);
	h = (struct holds){ 0 };
	cr_assert_eq(store_holds(s, on_hold, &h), 1);
	store_close(s);
}

Test(store_history_sqlite, size_counts_the_database)
{
	struct store *s = open_store();
	int64_t before = 0, after = 0;
	cr_assert_eq(store_size(s, &before), 0);
	cr_assert_gt(before, 0);
	struct store_new m[64];
	static char big[8192];
	for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
		m[i] = msg("municipality", "E", NULL);
		m[i].body = big;
		m[i].size = sizeof(big);
	}
	commit(s, m, ARRAY_SIZE(m), 1000);
	cr_assert_eq(store_size(s, &after), 0);
	cr_assert_geq(after - before, (int64_t)(ARRAY_SIZE(m) * sizeof(big)));
	store_close(s);
}

Test(store_history_sqlite, version_5_database_gains_the_history)
{
	cr_assert_eq(store_sqlite_create_version(dir, 5), 0);
	char db[PATH_MAX + 16];
	snprintf(db, sizeof(db), "%s/edibroker.db", dir);
	testutil_sql_exec(db, "INSERT INTO messages (state, source, endpoint, envelope_id, "
			      "received_at, size) VALUES (2, 'hospital', NULL, 'OLD', 5, 0);");
	struct store *s = open_store();
	cr_assert_eq(find(s, STORE_FIND_ENVELOPE, "OLD"), 1, "an older message is found too");
	struct got g = get(s, ids[0]);
	cr_assert_str_eq(g.letter_id, "<NULL>");
	cr_assert_eq(history(s, ids[0]), 0);
	struct holds h = { 0 };
	cr_assert_eq(store_holds(s, on_hold, &h), 0);
	store_close(s);
}

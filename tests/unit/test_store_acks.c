/*
 * test_store_acks.c - acknowledgement tracking in the store (store.h):
 * every state of a message that asks for an acknowledgement, what an
 * acknowledgement names and who may send it, the lists operators and
 * notices read, the acknowledgement a duplicate learns, and the schema
 * upgrade. The SQLite backend against a real file per test; the suite
 * acks runs again on PostgreSQL (make unit-pg), in a schema of its own per
 * test, and acks_sqlite is about SQLite's file only.
 */
#include "store/store.h"
#include "store/store_sqlite.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define HOSPITAL "5790000000001"
#define KOMMUNE "5790000000002"

static char dir[PATH_MAX];
static char dbpath[PATH_MAX + 16];
static char pgurl[1024], pgschema[64]; /* set: the suite runs on PostgreSQL */

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_store_acks.XXXXXX");
	snprintf(dbpath, sizeof(dbpath), "%s/edibroker.db", dir);
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

TestSuite(acks, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(acks_sqlite, .init = setup_sqlite, .fini = teardown, .timeout = 30);

static struct store *open_store(void)
{
	char err[512] = "";
	struct store_options o = { .url = pgurl, .node = "test" };
	struct store *s = store_open(pgurl[0] ? "postgresql" : "sqlite", dir, &o, err, sizeof(err));
	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

/* A letter from the hospital to the municipality that asks for an
 * acknowledgement; keys points at its one letter key. */
static struct store_new letter(struct store_key *key, const char *letter_id,
			       const char *envelope_id)
{
	*key = (struct store_key){ HOSPITAL, letter_id };
	return (struct store_new){
		.source = "hospital", .endpoint = "kommune", .format = "oioxml", .ext = "xml",
		.type = "XDIS20", .envelope_id = envelope_id, .sender = HOSPITAL,
		.receiver = KOMMUNE, .nletters = 1, .keys = key, .nkeys = 1, .body = "<x/>",
		.size = 4, .received_at = 1000, .ack_requested = true,
	};
}

/* The municipality's acknowledgement of refs, routed back to the hospital. */
static struct store_new ack(const char *from, struct store_key *key, const char *id,
			    const struct store_ackref *refs, size_t nrefs, enum msg_ack verdict,
			    const char *text)
{
	*key = (struct store_key){ KOMMUNE, id };
	return (struct store_new){
		.source = from, .endpoint = "hospital", .format = "oioxml", .ext = "xml",
		.type = "XCTL03", .envelope_id = id, .sender = KOMMUNE, .receiver = HOSPITAL,
		.nletters = 1, .keys = key, .nkeys = 1, .body = "<ack/>", .size = 6,
		.received_at = 2000, .refs = refs, .nrefs = nrefs, .verdict = verdict,
		.verdict_text = text,
	};
}

static void commit_s(struct store *s, struct store_new *m, size_t n, int64_t now)
{
	struct store_batch b = { .msgs = m, .nmsgs = n, .now = now };
	int r = store_commit(s, &b);
	cr_assert_eq(r, 0, "commit: %d %s", r, store_last_error(s));
}

/* Commits n messages in one batch on the test's store s. */
#define commit(m, n, now) commit_s(s, (m), (n), (now))

static void deliver(struct store *s, int64_t id, int64_t now)
{
	struct store_batch b = { .delivered = &id, .ndelivered = 1, .now = now };
	cr_assert_eq(store_commit(s, &b), 0, "%s", store_last_error(s));
}

struct seen {
	enum msg_ack ack;
	int64_t ack_msg, ack_at;
	char code[64];
};

static int copy_row(const struct store_msg *m, void *arg)
{
	struct seen *x = arg;
	*x = (struct seen){ m->ack, m->ack_msg, m->ack_at, "" };
	str_copy(x->code, m->ack_code ? m->ack_code : "<NULL>", sizeof(x->code));
	return 0;
}

static struct seen tracking(struct store *s, int64_t id)
{
	struct seen x = { 0 };
	cr_assert_eq(store_get(s, id, false, copy_row, &x), 1, "message %lld", (long long)id);
	return x;
}

static int64_t ids[16];
static size_t nids;

static int collect_id(const struct store_msg *m, void *arg)
{
	cr_assert_lt(nids, ARRAY_SIZE(ids));
	ids[nids++] = m->id;
	return 0;
}

static size_t list(struct store *s, enum msg_ack a, const char *endpoint, int64_t before)
{
	nids = 0;
	int r = store_ack_list(s, a, endpoint, before, 100, collect_id, NULL);
	cr_assert_geq(r, 0, "%s", store_last_error(s));
	cr_assert_eq((size_t)r, nids);
	return nids;
}

static struct {
	char endpoint[32];
	int64_t n;
} tallies[8];
static size_t ntallies;

static int collect_tally(const char *endpoint, int64_t n, void *arg)
{
	cr_assert_lt(ntallies, ARRAY_SIZE(tallies));
	str_copy(tallies[ntallies].endpoint, endpoint, sizeof(tallies[0].endpoint));
	tallies[ntallies++].n = n;
	return 0;
}

/* Endpoints store_ack_overdue() names; their counts through tallied(). */
static size_t tally(struct store *s, int64_t before)
{
	ntallies = 0;
	int r = store_ack_overdue(s, before, collect_tally, NULL);
	cr_assert_geq(r, 0, "%s", store_last_error(s));
	cr_assert_eq((size_t)r, ntallies);
	return ntallies;
}

static int64_t tallied(const char *endpoint)
{
	for (size_t i = 0; i < ntallies; i++)
		if (strcmp(tallies[i].endpoint, endpoint) == 0)
			return tallies[i].n;
	return 0;
}

/* ---- the states --------------------------------------------------------- */

Test(acks, pending_until_delivered_then_awaiting)
{
	struct store *s = open_store();
	struct store_key k;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	cr_assert_eq(tracking(s, m.id).ack, ACK_PENDING);
	cr_assert_eq(list(s, ACK_AWAITING, NULL, INT64_MAX), 0, "a queued message awaits nothing");
	deliver(s, m.id, 5000);
	cr_assert_eq(tracking(s, m.id).ack, ACK_AWAITING);
	cr_assert_eq(list(s, ACK_AWAITING, NULL, INT64_MAX), 1);
	cr_assert_eq(ids[0], m.id);
	store_close(s);
}

Test(acks, a_message_that_asks_for_none_is_not_tracked)
{
	struct store *s = open_store();
	struct store_key k;
	struct store_new m = letter(&k, "L1", "E1");
	m.ack_requested = false;
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	cr_assert_eq(tracking(s, m.id).ack, ACK_NONE);
	struct store_key ka;
	struct store_ackref ref = { HOSPITAL, "E1", "L1" };
	struct store_new a = ack("kommune", &ka, "A1", &ref, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	cr_assert_eq(a.nacked, 0, "nothing to acknowledge");
	cr_assert_eq(tracking(s, m.id).ack, ACK_NONE);
	store_close(s);
}

Test(acks, acknowledged_by_letter_key)
{
	struct store *s = open_store();
	struct store_key k, ka;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref ref = { HOSPITAL, "E1", "L1" };
	struct store_new a = ack("kommune", &ka, "A1", &ref, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	cr_assert_eq(a.outcome, STORE_STORED, "the acknowledgement is routed like any message");
	cr_assert_eq(a.nacked, 1);
	cr_assert_eq(a.acked, m.id);
	struct seen t = tracking(s, m.id);
	cr_assert_eq(t.ack, ACK_ACKNOWLEDGED);
	cr_assert_eq(t.ack_msg, a.id);
	cr_assert_eq(t.ack_at, 6000);
	cr_assert_str_eq(t.code, "XCTL03");
	cr_assert_eq(list(s, ACK_AWAITING, NULL, INT64_MAX), 0);
	cr_assert_eq(list(s, ACK_ACKNOWLEDGED, "kommune", INT64_MAX), 1);
	cr_assert_eq(tracking(s, a.id).ack, ACK_NONE, "an acknowledgement asks for none");
	store_close(s);
}

Test(acks, negative_by_envelope_and_it_stands)
{
	struct store *s = open_store();
	struct store_key k, ka, kb;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	/* an envelope-level refusal names no letter */
	struct store_ackref ref = { HOSPITAL, "E1", "" };
	struct store_new a = ack("kommune", &ka, "A1", &ref, 1, ACK_NEGATIVE, "XCTL02 syntaksfejl");
	commit(&a, 1, 6000);
	cr_assert_eq(a.acked, m.id);
	struct seen t = tracking(s, m.id);
	cr_assert_eq(t.ack, ACK_NEGATIVE);
	cr_assert_str_eq(t.code, "XCTL02 syntaksfejl");
	/* a later positive one does not turn it round (medcom.md 4.6) */
	struct store_ackref ref2 = { HOSPITAL, "E1", "L1" };
	struct store_new b = ack("kommune", &kb, "A2", &ref2, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&b, 1, 7000);
	cr_assert_eq(b.nacked, 0);
	t = tracking(s, m.id);
	cr_assert_eq(t.ack, ACK_NEGATIVE);
	cr_assert_eq(t.ack_msg, a.id, "the first answer is the one kept");
	cr_assert_eq(list(s, ACK_NEGATIVE, NULL, INT64_MAX), 1);
	store_close(s);
}

Test(acks, transient_gives_way_to_a_later_answer)
{
	struct store *s = open_store();
	struct store_key k, ka, kb;
	struct store_new m = letter(&k, "00000000-0000-4000-8000-000000000001", "B1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref ref = { HOSPITAL, "", "00000000-0000-4000-8000-000000000001" };
	struct store_new a = ack("kommune", &ka, "T1", &ref, 1, ACK_TRANSIENT, "transient-error");
	commit(&a, 1, 6000);
	cr_assert_eq(tracking(s, m.id).ack, ACK_TRANSIENT);
	struct store_new b = ack("kommune", &kb, "T2", &ref, 1, ACK_ACKNOWLEDGED, "ok");
	commit(&b, 1, 7000);
	struct seen t = tracking(s, m.id);
	cr_assert_eq(t.ack, ACK_ACKNOWLEDGED, "KR5: ok once the error is resolved");
	cr_assert_eq(t.ack_msg, b.id);
	cr_assert_str_eq(t.code, "ok");
	store_close(s);
}

Test(acks, by_transmission_id_for_a_vans_receipt)
{
	struct store *s = open_store();
	struct store_key k, ka;
	struct store_new m = letter(&k, "L1", "E1");
	static const uint8_t digest[32] = { 1 };
	struct store_txid tx = { "vans", HOSPITAL, "VANS-ENV-1", digest, sizeof(digest) };
	m.txids = &tx;
	m.ntxids = 1;
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref ref = { HOSPITAL, "VANS-ENV-1", "" };
	struct store_new a = ack("kommune", &ka, "R1", &ref, 1, ACK_ACKNOWLEDGED, "PositiveMessage");
	a.refs_scope = "vans";
	commit(&a, 1, 6000);
	cr_assert_eq(a.acked, m.id);
	cr_assert_eq(tracking(s, m.id).ack, ACK_ACKNOWLEDGED);
	store_close(s);
}

Test(acks, only_the_endpoint_it_went_to_may_acknowledge_it)
{
	struct store *s = open_store();
	struct store_key k, ka;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref ref = { HOSPITAL, "E1", "L1" };
	struct store_new a = ack("elsewhere", &ka, "A1", &ref, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	cr_assert_eq(a.outcome, STORE_STORED);
	cr_assert_eq(a.nacked, 0);
	cr_assert_eq(a.nforeign, 1);
	cr_assert_eq(tracking(s, m.id).ack, ACK_AWAITING);
	store_close(s);
}

Test(acks, names_it_does_not_know_change_nothing)
{
	struct store *s = open_store();
	struct store_key k, ka;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref refs[] = { { HOSPITAL, "E9", "L9" }, { KOMMUNE, "E1", "L1" },
				       { HOSPITAL, "E9", "" }, { "", "E1", "L1" } };
	struct store_new a = ack("kommune", &ka, "A1", refs, ARRAY_SIZE(refs), ACK_ACKNOWLEDGED,
				 "XCTL03");
	commit(&a, 1, 6000);
	cr_assert_eq(a.nacked, 0);
	cr_assert_eq(a.nforeign, 0);
	cr_assert_eq(tracking(s, m.id).ack, ACK_AWAITING);
	store_close(s);
}

Test(acks, one_acknowledgement_of_several_messages_in_one_batch)
{
	struct store *s = open_store();
	struct store_key k1, k2, ka;
	struct store_new m[2] = { letter(&k1, "L1", "E1"), letter(&k2, "L2", "E2") };
	commit(m, 2, 1000);
	deliver(s, m[0].id, 5000);
	/* the second still queued: acknowledged all the same (a delivered mark
	 * can wait for a commit the acknowledgement overtakes) */
	struct store_ackref refs[] = { { HOSPITAL, "E1", "L1" }, { HOSPITAL, "E2", "L2" },
				       { HOSPITAL, "E1", "L1" } };
	struct store_new a = ack("kommune", &ka, "A1", refs, 3, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	cr_assert_eq(a.nacked, 2, "a message named twice counts once");
	cr_assert_eq(a.acked, m[0].id);
	cr_assert_eq(tracking(s, m[1].id).ack, ACK_ACKNOWLEDGED);
	store_close(s);
}

Test(acks, a_refused_message_awaits_nothing)
{
	struct store *s = open_store();
	struct store_key k;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	struct store_attempt at = { .id = m.id, .error = "not for us", .refused = true };
	struct store_batch b = { .attempts = &at, .nattempts = 1, .now = 2000 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(tracking(s, m.id).ack, ACK_NONE);
	store_close(s);
}

/* ---- overdue and the lists --------------------------------------------- */

Test(acks, overdue_is_awaiting_for_longer_than_the_timeout)
{
	struct store *s = open_store();
	struct store_key k[3];
	struct store_new m[3] = { letter(&k[0], "L1", "E1"), letter(&k[1], "L2", "E2"),
				  letter(&k[2], "L3", "E3") };
	m[2].endpoint = "other";
	commit(m, 3, 1000);
	deliver(s, m[1].id, 10000); /* out of order: the list is by delivery time */
	deliver(s, m[0].id, 20000);
	deliver(s, m[2].id, 15000);
	int64_t timeout = 30 * 60 * 1000, now = 20000 + timeout;
	/* overdue at now: delivered before now - timeout */
	cr_assert_eq(list(s, ACK_AWAITING, NULL, now - timeout), 2);
	cr_assert_eq(ids[0], m[1].id);
	cr_assert_eq(ids[1], m[2].id);
	cr_assert_eq(list(s, ACK_AWAITING, "kommune", now - timeout), 1);
	cr_assert_eq(ids[0], m[1].id);
	cr_assert_eq(list(s, ACK_AWAITING, "kommune", now + 1 - timeout), 2);
	cr_assert_eq(list(s, ACK_AWAITING, "kommune", 0), 0);
	/* the counts per endpoint the overdue gauge shows */
	cr_assert_eq(tally(s, now - timeout), 2, "two endpoints have overdue ones");
	cr_assert_eq(tallied("kommune"), 1);
	cr_assert_eq(tallied("other"), 1);
	cr_assert_eq(tally(s, now + 1 - timeout), 2);
	cr_assert_eq(tallied("kommune"), 2);
	cr_assert_eq(tally(s, 0), 0, "none overdue yet");
	store_close(s);
}

Test(acks_sqlite, the_lists_and_the_envelope_lookup_use_their_indexes)
{
	struct store *s = open_store();
	char plan[512];
	cr_assert_eq(store_sqlite_plan(s, "ack_list", plan, sizeof(plan)), 0);
	cr_assert(strstr(plan, "messages_ack"), "uses the index on tracked rows: %s", plan);
	cr_assert_eq(store_sqlite_plan(s, "ack_overdue", plan, sizeof(plan)), 0);
	cr_assert(strstr(plan, "messages_ack"), "counts on the index: %s", plan);
	cr_assert_eq(store_sqlite_plan(s, "envelope_lookup", plan, sizeof(plan)), 0);
	cr_assert(strstr(plan, "messages_ack_envelope"), "%s", plan);
	store_close(s);
}

/* ---- duplicates learn the stored acknowledgement ------------------------ */

Test(acks, a_duplicate_learns_the_acknowledgement_of_its_first_copy)
{
	struct store *s = open_store();
	struct store_key k, ka, kd, kd2;
	struct store_new m = letter(&k, "L1", "E1");
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_new d = letter(&kd, "L1", "E1-again");
	commit(&d, 1, 5500);
	cr_assert_eq(d.outcome, STORE_DUPLICATE);
	cr_assert_eq(d.ack_id, 0, "none has come yet: only dropped");
	struct store_ackref ref = { HOSPITAL, "E1", "L1" };
	struct store_new a = ack("kommune", &ka, "A1", &ref, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	struct store_new d2 = letter(&kd2, "L1", "E1-third");
	commit(&d2, 1, 7000);
	cr_assert_eq(d2.outcome, STORE_DUPLICATE);
	cr_assert_eq(d2.id, m.id);
	cr_assert_eq(d2.ack_id, a.id);
	store_close(s);
}

Test(acks, the_same_bytes_sent_again_get_the_receipt_but_a_spool_retry_is_a_replay)
{
	struct store *s = open_store();
	struct store_key k, ka, kd;
	struct store_new m = letter(&k, "L1", "E1");
	m.token = "body:hospital:same-bytes";
	m.token_is_digest = true;
	commit(&m, 1, 1000);
	deliver(s, m.id, 5000);
	struct store_ackref ref = { HOSPITAL, "E1", "L1" };
	struct store_new a = ack("kommune", &ka, "A1", &ref, 1, ACK_ACKNOWLEDGED, "XCTL03");
	commit(&a, 1, 6000);
	/* the sender never saw the receipt and sends the very same bytes: its
	 * token is known, but the answer is the duplicate register's */
	struct store_new d = letter(&kd, "L1", "E1");
	d.token = "body:hospital:same-bytes";
	d.token_is_digest = true;
	commit(&d, 1, 7000);
	cr_assert_eq(d.outcome, STORE_DUPLICATE);
	cr_assert_not(d.replay);
	cr_assert_eq(d.id, m.id);
	cr_assert_eq(d.ack_id, a.id, "the receipt goes to the sender again");
	/* a spool file's token matches only our own retry of its commit: the
	 * first answer again, no resend on record */
	struct store_key kf, kr;
	struct store_new f = letter(&kf, "L2", "E2");
	f.token = "spool:hospital:1:2:3:ab";
	commit(&f, 1, 8000);
	struct store_new r = letter(&kr, "L2", "E2");
	r.token = "spool:hospital:1:2:3:ab";
	commit(&r, 1, 8100);
	cr_assert(r.replay, "answered from the token");
	cr_assert_eq(r.outcome, STORE_DUPLICATE);
	cr_assert_eq(r.id, f.id);
	store_close(s);
}

/* ---- the schema ---------------------------------------------------------- */

Test(acks_sqlite, an_older_store_is_upgraded_and_its_messages_are_untracked)
{
	cr_assert_eq(store_sqlite_create_version(dir, 5), 0);
	testutil_sql_exec(dbpath,
			  "INSERT INTO messages (state, source, endpoint, received_at, size, "
			  "delivered_at) VALUES (1, 'hospital', 'kommune', 1, 1, 2)");
	struct store *s = open_store();
	cr_assert_eq(tracking(s, 1).ack, ACK_NONE);
	cr_assert_eq(list(s, ACK_AWAITING, NULL, INT64_MAX), 0);
	store_close(s);
	cr_assert_eq(testutil_sql_int(dbpath, "SELECT count(*) FROM pragma_index_list('messages') "
					      "WHERE name = 'messages_ack'"),
		     1);
}

Test(acks, state_names)
{
	cr_assert_str_eq(store_ack_name(ACK_NONE), "-");
	cr_assert_str_eq(store_ack_name(ACK_PENDING), "pending");
	cr_assert_str_eq(store_ack_name(ACK_AWAITING), "awaiting");
	cr_assert_str_eq(store_ack_name(ACK_ACKNOWLEDGED), "acknowledged");
	cr_assert_str_eq(store_ack_name(ACK_NEGATIVE), "negative");
	cr_assert_str_eq(store_ack_name(ACK_TRANSIENT), "transient");
	cr_assert_str_eq(store_ack_name((enum msg_ack)42), "?");
}

/*
 * test_store_pg.c - what only the PostgreSQL backend has: several daemons
 * on one database. Runs against the server tests/scripts/with-pg.sh starts
 * (make unit-pg), each test in a schema of its own.
 *
 * Covers: an ingest token makes a replayed batch change nothing; two
 * writers racing for one letter key store it once (the loser's batch
 * fails with -EBUSY and its retry sees a duplicate); a lower id that
 * commits after a higher one is still read (by state, not by a cursor);
 * leases: claim, renew, expiry and takeover with a new epoch, the backoff
 * kept in the row; fenced marks and record saves change nothing once the
 * lease has moved on; observations reach another node once; a notice that
 * happens once per outage is a row once; the queue read stays on the
 * queued index with statistics gone stale after a drain; asynchronous
 * calls on the store's lanes; a connection the server ends is made again;
 * a commit that fails takes with it what was added while it flew (it came
 * later from its sources: committing it first would break their order);
 * the lanes connect again after the server restarts (a suite of its own:
 * it stops the shared server, so it runs alone).
 */
#include "store/commit.h"
#include "store/store.h"
#include "store/store_backend.h"
#include "store/store_pg.h"
#include "base/clock.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define GLN_A "5790000000001"
#define T0 1735689600000LL

static char url[1024], schema[64];

static void setup(void)
{
	cr_assert_not_null(testutil_pg_url(), "run through `make unit-pg` (a PostgreSQL server)");
	testutil_pg_schema(url, sizeof(url), schema, sizeof(schema));
}

static void teardown(void)
{
	testutil_pg_drop(schema);
}

TestSuite(store_pg, .init = setup, .fini = teardown, .timeout = 60);

static struct store *open_node(const char *node)
{
	char err[512] = "";
	struct store_options o = { .url = url, .node = node, .wait_ms = 20000 };
	struct store *s = store_open("postgresql", NULL, &o, err, sizeof(err));
	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

static struct store_new msg(const char *endpoint, const struct store_key *keys, size_t nkeys,
			    const char *token)
{
	return (struct store_new){
		.token = token, .source = "ep-src", .endpoint = endpoint,
		.reason = endpoint ? NULL : "no route", .format = "oioxml", .ext = "xml",
		.type = "XDIS20", .sender = GLN_A, .receiver = "5790000000002", .nletters = 1,
		.keys = keys, .nkeys = nkeys, .body = "<x/>", .size = 4, .received_at = T0,
	};
}

static int commit_msgs(struct store *s, struct store_new *m, size_t n)
{
	struct store_batch b = { .msgs = m, .nmsgs = n, .now = T0 };
	return store_commit(s, &b);
}

static int64_t sql_int(const char *sql)
{
	return testutil_pg_int(url, sql);
}

/* ---- ingest tokens ----------------------------------------------------- */

Test(store_pg, a_replayed_batch_with_its_tokens_changes_nothing)
{
	struct store *s = open_node("a");
	struct store_key k = { GLN_A, "L1" };
	struct store_new m[2] = { msg("ep-a", &k, 1, "spool:ep-src:1"), msg(NULL, NULL, 0, "spool:ep-src:2") };
	cr_assert_eq(commit_msgs(s, m, 2), 0, "%s", store_last_error(s));
	cr_assert_eq(m[0].outcome, STORE_STORED);
	cr_assert_eq(m[1].outcome, STORE_DEAD);
	/* the COMMIT's answer was lost: the source replays the same units */
	struct store_new again[2] = { msg("ep-a", &k, 1, "spool:ep-src:1"),
				      msg(NULL, NULL, 0, "spool:ep-src:2") };
	cr_assert_eq(commit_msgs(s, again, 2), 0, "%s", store_last_error(s));
	cr_assert_eq(again[0].outcome, STORE_DUPLICATE);
	cr_assert_eq(again[0].id, m[0].id);
	cr_assert_eq(again[1].outcome, STORE_DEAD, "a dead letter has no keys: its token, "
						   "and it answers as it did");
	cr_assert_eq(again[1].id, m[1].id);
	cr_assert_str_eq(again[1].why, "no route");
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 2, "nothing stored twice");
	/* within one batch the second unit of the same token is the replay */
	struct store_new twice[2] = { msg(NULL, NULL, 0, "t3"), msg(NULL, NULL, 0, "t3") };
	cr_assert_eq(commit_msgs(s, twice, 2), 0);
	cr_assert_eq(twice[1].outcome, STORE_DEAD);
	cr_assert(twice[1].replay);
	cr_assert_eq(twice[1].id, twice[0].id);
	store_close(s);
}

/* ---- two writers ----------------------------------------------------------- */

struct racer {
	struct store *s;
	struct store_key key;
	struct store_new m;
	int r;
};

static void *race_commit(void *arg)
{
	struct racer *x = arg;
	x->m = msg("ep-a", &x->key, 1, NULL);
	x->r = commit_msgs(x->s, &x->m, 1);
	return NULL;
}

Test(store_pg, two_writers_racing_for_one_letter_store_it_once)
{
	struct store *a = open_node("a"), *b = open_node("b");
	const struct store_backend_ops *ops = &store_pg_ops;
	void *be = store_backend_handle(a, ops);
	cr_assert_not_null(be);
	/* a has inserted the key in an open transaction ... */
	struct store_key k = { GLN_A, "RACE" };
	struct store_new ma = msg("ep-a", &k, 1, NULL);
	struct store_batch ba = { .msgs = &ma, .nmsgs = 1, .now = T0 };
	cr_assert_eq(ops->begin(be), 0);
	cr_assert_eq(ops->batch_prepare(be, &ba), 0);
	int64_t id = 0;
	cr_assert_eq(ops->msg_insert(be, &ma, &id), 0);
	cr_assert_eq(ops->key_insert(be, &k, id, T0), 0);
	/* a lookup the batch did not prepare sends everything queued before it */
	struct store_key other = { GLN_A, "OTHER" };
	int64_t none;
	cr_assert_eq(ops->key_lookup(be, &other, &none), 0, "%s", ops->last_error(be));
	/* ... when b commits the same letter: it waits on a's unique entry */
	struct racer rb = { .s = b, .key = k };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, race_commit, &rb), 0);
	usleep(200 * 1000);
	cr_assert_eq(ops->commit(be), 0, "%s", ops->last_error(be));
	pthread_join(t, NULL);
	cr_assert_eq(rb.r, -EBUSY, "the loser is told to retry: %s", store_last_error(b));
	race_commit(&rb);
	cr_assert_eq(rb.r, 0, "%s", store_last_error(b));
	cr_assert_eq(rb.m.outcome, STORE_DUPLICATE, "the retry sees the winner's key");
	cr_assert_eq(rb.m.id, id);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 1);
	store_close(a);
	store_close(b);
}

static int64_t seen[16];
static size_t nseen;

static int collect_id(const struct store_msg *m, void *arg)
{
	(void)arg;
	cr_assert_lt(nseen, ARRAY_SIZE(seen));
	seen[nseen++] = m->id;
	return 0;
}

Test(store_pg, a_lower_id_committed_later_is_still_read)
{
	struct store *a = open_node("a"), *b = open_node("b");
	const struct store_backend_ops *ops = &store_pg_ops;
	void *be = store_backend_handle(a, ops);
	struct store_new low = msg("ep-a", NULL, 0, NULL);
	struct store_batch bl = { .msgs = &low, .nmsgs = 1, .now = T0 };
	cr_assert_eq(ops->begin(be), 0);
	cr_assert_eq(ops->batch_prepare(be, &bl), 0); /* takes its id now */
	int64_t low_id = 0;
	cr_assert_eq(ops->msg_insert(be, &low, &low_id), 0);
	struct store_new high = msg("ep-a", NULL, 0, NULL);
	cr_assert_eq(commit_msgs(b, &high, 1), 0);
	cr_assert_gt(high.id, low_id, "ids are not in commit order");
	nseen = 0;
	cr_assert_eq(store_fetch_queued(b, "ep-a", 0, NULL, 0, 10, collect_id, NULL), 1);
	cr_assert_eq(seen[0], high.id);
	cr_assert_eq(ops->commit(be), 0);
	/* a cursor past high.id would never see it; a read by state does */
	nseen = 0;
	cr_assert_eq(store_fetch_queued(b, "ep-a", high.id, NULL, 0, 10, collect_id, NULL), 0);
	int64_t held[1] = { high.id };
	cr_assert_eq(store_fetch_queued(b, "ep-a", 0, held, 1, 10, collect_id, NULL), 1);
	cr_assert_eq(seen[0], low_id);
	cr_assert(!store_ids_in_commit_order(a));
	store_close(a);
	store_close(b);
}

/* ---- leases ------------------------------------------------------------------ */

static struct store_lease won[8];
static char won_names[8][32];
static size_t nwon;

static int got_lease(const struct store_lease *l, void *arg)
{
	(void)arg;
	cr_assert_lt(nwon, ARRAY_SIZE(won));
	won[nwon] = *l;
	str_copy(won_names[nwon], l->name, sizeof(won_names[0]));
	won[nwon].name = won_names[nwon];
	won[nwon].owner = NULL;
	nwon++;
	return 0;
}

static const char *const names[] = { "ep:a", "ep:b", "procedure" };

static size_t claim(struct store *s, int64_t ttl, size_t limit)
{
	nwon = 0;
	int r = store_lease_claim(s, names, ARRAY_SIZE(names), ttl, limit, got_lease, NULL);
	cr_assert_geq(r, 0, "%s", store_last_error(s));
	return (size_t)r;
}

Test(store_pg, leases_are_claimed_once_renewed_and_taken_over_after_expiry)
{
	struct store *a = open_node("a"), *b = open_node("b");
	cr_assert_eq(store_node_beat(a, T0, 60000, names, ARRAY_SIZE(names)), 0, "%s", store_last_error(a));
	cr_assert_eq(store_node_beat(b, T0, 60000, names, ARRAY_SIZE(names)), 0);
	cr_assert_eq(claim(a, 60000, 10), 3);
	cr_assert_eq(won[0].epoch, 1);
	cr_assert_eq(claim(b, 60000, 10), 0, "held: nothing for b");
	struct store_fence held[3];
	for (size_t i = 0; i < 3; i++)
		held[i] = (struct store_fence){ won_names[i], won[i].epoch };
	bool renewed[3];
	cr_assert_eq(store_lease_renew(a, held, 3, 300, renewed), 3);
	cr_assert(renewed[0] && renewed[1] && renewed[2]);
	cr_assert_eq(store_lease_renew(b, held, 3, 300, renewed), 0, "b holds none of them");
	usleep(500 * 1000); /* a paused past its lease */
	cr_assert_eq(store_lease_renew(a, held, 3, 60000, renewed), 0, "expired: not renewed");
	cr_assert_eq(claim(b, 60000, 2), 2, "b takes over, at most its limit");
	cr_assert_eq(won[0].epoch, 2, "a new epoch");
	cr_assert_eq(claim(b, 60000, 2), 1);
	store_close(a);
	store_close(b);
}

Test(store_pg, a_mark_under_a_lost_lease_changes_nothing)
{
	struct store *a = open_node("a"), *b = open_node("b");
	cr_assert_eq(store_node_beat(a, T0, 60000, names, 1), 0);
	struct store_new m[2] = { msg("ep-a", NULL, 0, NULL), msg("ep-a", NULL, 0, NULL) };
	cr_assert_eq(commit_msgs(a, m, 2), 0);
	cr_assert_eq(claim(a, 300, 1), 1);
	struct store_fence fa = { "ep:a", won[0].epoch };
	usleep(500 * 1000);
	cr_assert_eq(claim(b, 60000, 1), 1);
	struct store_fence fb = { "ep:a", won[0].epoch };
	/* a (paused, resumed) marks m[0]; b marks m[1] */
	int64_t ida = m[0].id, idb = m[1].id;
	struct store_attempt at = { .id = m[1].id, .error = "late", .fence = fa };
	struct store_batch bad = { .delivered = &ida, .delivered_fences = &fa, .ndelivered = 1,
				   .attempts = &at, .nattempts = 1, .now = T0 + 1 };
	cr_assert_eq(store_commit(a, &bad), 0, "the batch commits; the mark does nothing");
	cr_assert_eq(sql_int("SELECT count(*) FROM messages WHERE state = 0"), 2);
	cr_assert_eq(sql_int("SELECT sum(attempts) FROM messages"), 0);
	struct store_batch good = { .delivered = &idb, .delivered_fences = &fb, .ndelivered = 1,
				    .now = T0 + 2 };
	cr_assert_eq(store_commit(b, &good), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages WHERE state = 1"), 1);
	/* unfenced marks (one daemon's way) still work */
	struct store_batch plain = { .delivered = &ida, .ndelivered = 1, .now = T0 + 3 };
	cr_assert_eq(store_commit(a, &plain), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages WHERE state = 1"), 2);
	store_close(a);
	store_close(b);
}

Test(store_pg, the_backoff_in_the_lease_row_survives_a_takeover)
{
	struct store *a = open_node("a"), *b = open_node("b");
	cr_assert_eq(store_node_beat(a, T0, 60000, names, 1), 0);
	cr_assert_eq(claim(a, 300, 1), 1);
	struct store_fence fa = { "ep:a", won[0].epoch };
	cr_assert_eq(store_lease_backoff(a, &fa, 4, T0 + 90000), 1);
	usleep(500 * 1000);
	cr_assert_eq(store_lease_backoff(a, &fa, 5, T0 + 99000), 0, "expired: not written");
	cr_assert_eq(claim(b, 60000, 1), 1);
	cr_assert_eq(won[0].failures, 4);
	cr_assert_eq(won[0].next_attempt_at, T0 + 90000);
	store_close(a);
	store_close(b);
}

static int count_nodes(const struct store_node *n, void *arg)
{
	cr_assert_lt(n->seen_ago_ms, 10000);
	(*(int *)arg)++;
	return 0;
}

Test(store_pg, nodes_and_leases_are_listed_and_released)
{
	struct store *a = open_node("a"), *b = open_node("b");
	cr_assert_eq(store_node_beat(a, T0, 60000, names, 3), 0);
	cr_assert_eq(store_node_beat(b, T0 + 5, 60000, NULL, 0), 0);
	int n = 0;
	cr_assert_eq(store_nodes(a, count_nodes, &n), 2);
	cr_assert_eq(n, 2);
	cr_assert_eq(claim(a, 60000, 10), 3);
	struct store_fence held[3];
	for (size_t i = 0; i < 3; i++)
		held[i] = (struct store_fence){ won_names[i], won[i].epoch };
	nwon = 0;
	cr_assert_eq(store_leases(b, got_lease, NULL), 3);
	cr_assert_gt(won[0].expires_in_ms, 50000);
	cr_assert_eq(store_lease_release(a, held, 3), 3);
	cr_assert_eq(claim(b, 60000, 10), 3, "released leases are free at once");
	store_close(a);
	store_close(b);
}

Test(store_pg, two_processes_cannot_share_a_node_name)
{
	struct store *a = open_node("a"), *a2 = open_node("a");
	cr_assert_eq(store_node_beat(a, T0, 60000, NULL, 0), 0);
	cr_assert_eq(store_node_beat(a, T0, 60000, NULL, 0), 0, "its own row again");
	cr_assert_eq(store_node_beat(a2, T0 + 1, 60000, NULL, 0), -EEXIST, "another start time");
	cr_assert_not_null(strstr(store_last_error(a2), "unique"), "%s", store_last_error(a2));
	usleep(300 * 1000);
	cr_assert_eq(store_node_beat(a2, T0 + 1, 200, NULL, 0), 0, "the old one went quiet");
	store_close(a);
	store_close(a2);
}

/* An orderly stop says so in the node row: the next start under the same
 * name goes on at once instead of waiting a lease for the row to go quiet. */
Test(store_pg, a_node_that_stopped_in_order_can_start_again_at_once)
{
	struct store *a = open_node("a"), *a2 = open_node("a");
	cr_assert_eq(store_node_beat(a, T0, 60000, NULL, 0), 0);
	cr_assert_eq(store_node_leave(a2, T0 + 1), 0, "not its row: nothing changes");
	cr_assert_eq(store_node_beat(a2, T0 + 1, 60000, NULL, 0), -EEXIST);
	cr_assert_eq(store_node_leave(a, T0), 1);
	cr_assert_eq(sql_int("SELECT pid FROM nodes WHERE name = 'a'"), 0, "shown as stopped");
	cr_assert_eq(store_node_beat(a2, T0 + 1, 60000, NULL, 0), 0, "started again at once");
	cr_assert_eq(store_node_beat(a, T0, 60000, NULL, 0), -EEXIST, "the new one owns it now");
	store_close(a);
	store_close(a2);
}

Test(store_pg, a_record_save_of_a_lost_procedure_lease_is_refused)
{
	struct store *a = open_node("a"), *b = open_node("b");
	const char *const proc[] = { "procedure" };
	cr_assert_eq(store_node_beat(a, T0, 60000, proc, 1), 0);
	nwon = 0;
	cr_assert_eq(store_lease_claim(a, proc, 1, 300, 1, got_lease, NULL), 1);
	struct store_fence f = { "procedure", won[0].epoch };
	store_fence_records(a, &f);
	struct outage o = { .endpoint = "ep-a", .state = OUTAGE_OPEN, .started_at = T0 };
	cr_assert_eq(store_outage_save(a, &o), 0, "%s", store_last_error(a));
	cr_assert_gt(o.id, 0);
	int64_t id = o.id;
	usleep(500 * 1000);
	nwon = 0;
	cr_assert_eq(store_lease_claim(b, proc, 1, 60000, 1, got_lease, NULL), 1);
	o.state = OUTAGE_ANNOUNCED;
	cr_assert_eq(store_outage_save(a, &o), -ESTALE, "%s", store_last_error(a));
	struct notice_record n = { .outage_id = id, .kind = "initial", .audience = "support",
				   .pending = "email", .created_at = T0 };
	cr_assert_eq(store_notice_save(a, &n), -ESTALE);
	cr_assert_eq(n.id, 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM notices"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM outages WHERE state = 'open'"), 1);
	store_fence_records(a, NULL);
	cr_assert_eq(store_outage_save(a, &o), 0, "unfenced again");
	store_close(a);
	store_close(b);
}

Test(store_pg, a_notice_that_happens_once_is_a_row_once)
{
	struct store *a = open_node("a"), *b = open_node("b");
	struct notice_record n1 = { .outage_id = 7, .kind = "initial", .audience = "support",
				    .pending = "email", .created_at = T0 };
	struct notice_record n2 = n1;
	n2.created_at = T0 + 1; /* a second holder composing the same notice */
	cr_assert_eq(store_notice_save(a, &n1), 0);
	cr_assert_eq(store_notice_save(b, &n2), -EEXIST);
	cr_assert_eq(n2.id, 0);
	struct notice_record u1 = { .outage_id = 7, .kind = "update", .audience = "support",
				    .pending = "", .created_at = T0 + 2 };
	struct notice_record u2 = u1;
	cr_assert_eq(store_notice_save(a, &u1), 0);
	cr_assert_eq(store_notice_save(a, &u2), 0, "updates repeat");
	store_close(a);
	store_close(b);
}

struct obs_seen {
	int n;
	char node[16];
};

static int got_obs(const struct store_observation *o, void *arg)
{
	struct obs_seen *x = arg;
	if (x->n == 0) {
		cr_assert_str_eq(o->endpoint, "ep-a");
		cr_assert(!o->ok);
		cr_assert_eq(o->fault, 3);
		cr_assert_str_eq(o->error, "refused");
		str_copy(x->node, o->node, sizeof(x->node));
	}
	x->n++;
	return 0;
}

Test(store_pg, observations_reach_another_node_once)
{
	struct store *a = open_node("a"), *b = open_node("b");
	struct store_observation o = { .endpoint = "ep-a", .ok = false, .fault = 3,
				       .error = "refused", .at = T0 };
	cr_assert_eq(store_observation_add(a, &o), 0, "%s", store_last_error(a));
	o.ok = true;
	cr_assert_eq(store_observation_add(a, &o), 0);
	struct obs_seen x = { 0 };
	cr_assert_eq(store_observations_take(a, 10, got_obs, &x), 0, "not its own");
	cr_assert_eq(store_observations_take(b, 10, got_obs, &x), 2);
	cr_assert_eq(x.n, 2);
	cr_assert_str_eq(x.node, "a");
	cr_assert_eq(store_observations_take(b, 10, got_obs, &x), 0, "taken once");
	store_close(a);
	store_close(b);
}

/* ---- plans, vacuum ------------------------------------------------------------ */

Test(store_pg, the_queue_read_stays_on_the_queued_index_with_stale_statistics)
{
	struct store *s = open_node("a");
	/* 20000 messages, all queued when the statistics were taken ... */
	testutil_pg_exec(url,
			 "ALTER TABLE messages SET (autovacuum_enabled = false);"
			 "INSERT INTO messages (state, endpoint, received_at, size) "
			 "SELECT 0, 'e', 1, 10 FROM generate_series(1, 20000);"
			 "ANALYZE messages;"
			 /* ... then drained: the planner still thinks they wait */
			 "UPDATE messages SET state = 1, delivered_at = 2;"
			 "INSERT INTO messages (state, endpoint, received_at, size) VALUES (0, 'e', 3, 10);");
	char plan[2048];
	cr_assert_eq(store_pg_plan(s, "fetch", plan, sizeof(plan)), 0, "%s", store_last_error(s));
	cr_assert_not_null(strstr(plan, "messages_queued"), "%s", plan);
	cr_assert_null(strstr(plan, "messages_pkey"), "%s", plan);
	cr_assert_null(strstr(plan, "Seq Scan on messages"), "%s", plan);
	int64_t t0 = clock_mono_ms();
	nseen = 0;
	cr_assert_eq(store_fetch_queued(s, "e", 0, NULL, 0, 10, collect_id, NULL), 1);
	cr_assert_lt(clock_mono_ms() - t0, 200, "a read of one row");
	store_close(s);
}

Test(store_pg, prune_removes_delivered_rows_and_bodies_in_batches)
{
	struct store *s = open_node("a");
	struct store_new m[6];
	for (size_t i = 0; i < 6; i++)
		m[i] = msg("ep-a", NULL, 0, NULL);
	cr_assert_eq(commit_msgs(s, m, 6), 0);
	int64_t ids[6];
	for (size_t i = 0; i < 6; i++)
		ids[i] = m[i].id;
	struct store_batch b = { .delivered = ids, .ndelivered = 6, .now = T0 + 10 };
	cr_assert_eq(store_commit(s, &b), 0);
	cr_assert_eq(store_prune(s, T0 + 100, 0, 4), 4, "bodies, at most the limit");
	cr_assert_eq(sql_int("SELECT count(*) FROM bodies"), 2);
	cr_assert_eq(store_prune(s, T0 + 100, T0 + 100, 4), 4, "the rest of the bodies, then rows");
	cr_assert_eq(store_prune(s, T0 + 100, T0 + 100, 100), 4);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM bodies"), 0);
	store_close(s);
}

/* ---- asynchronous use, connections ----------------------------------------- */

static int done_calls;
static int done_err;

static void on_done(int err, const char *error, void *arg)
{
	(void)arg, (void)error;
	done_err = err;
	done_calls++;
}

Test(store_pg, commits_run_on_the_store_lanes_and_complete_on_the_loop)
{
	struct event_base *base = event_base_new();
	struct store *s = open_node("a");
	cr_assert_eq(store_attach(s, base), 0);
	cr_assert(store_async(s));
	struct store_new m = msg("ep-a", NULL, 0, "async-1");
	struct store_batch b = { .msgs = &m, .nmsgs = 1, .now = T0 };
	done_calls = 0;
	store_commit_async(s, &b, on_done, NULL);
	cr_assert_eq(done_calls, 0, "completes later, not inside the call");
	int64_t until = clock_mono_ms() + 10000;
	while (done_calls == 0 && clock_mono_ms() < until)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(done_calls, 1);
	cr_assert_eq(done_err, 0);
	cr_assert_eq(m.outcome, STORE_STORED);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 1);
	cr_assert_eq(store_drain(s, 1000), 0);
	store_close(s);
	event_base_free(base);
}

struct outcome {
	int calls, err;
};

static void on_msg_done(int err, struct store_new *m, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
}

/* No message can be stored (a constraint the server checks on new rows),
 * so the first commit fails; the second message was added while
 * that commit was on its way. It fails with it, now and on the retry that
 * follows: its source offers both again, in order. */
Test(store_pg, what_was_added_while_a_failed_commit_flew_fails_with_it)
{
	struct event_base *base = event_base_new();
	struct store *s = open_node("a");
	cr_assert_eq(store_attach(s, base), 0);
	struct commit *c = commit_new(base, s);
	struct store_new first = msg("ep-a", NULL, 0, "flew-1"), later = msg("ep-a", NULL, 0, "flew-2");
	testutil_pg_exec(url, "ALTER TABLE messages ADD CONSTRAINT none_now CHECK (false) NOT VALID");
	struct outcome o1 = { 0 }, o2 = { 0 };
	commit_add(c, &first, on_msg_done, &o1);
	commit_kick(c);
	cr_assert_not(commit_idle(c), "the first commit is on its way");
	commit_add(c, &later, on_msg_done, &o2);
	int64_t until = clock_mono_ms() + 10000;
	while (o1.calls == 0 && clock_mono_ms() < until)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(o1.calls, 1);
	cr_assert_lt(o1.err, 0, "the first one is refused");
	/* the server takes messages again before the store's retry (2 s) */
	testutil_pg_exec(url, "ALTER TABLE messages DROP CONSTRAINT none_now");
	cr_assert_eq(o2.calls, 1, "the later one is told with the first");
	cr_assert_lt(o2.err, 0, "the later one failed with it");
	until = clock_mono_ms() + 2500;
	while (clock_mono_ms() < until) {
		struct timeval tv = { 0, 100 * 1000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
	cr_assert_eq(o2.calls, 1, "told once");
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 0,
		     "the later one was committed before the first came back");
	/* offered again, in order: both commit, in order */
	o1 = o2 = (struct outcome){ 0 };
	commit_add(c, &first, on_msg_done, &o1);
	commit_add(c, &later, on_msg_done, &o2);
	until = clock_mono_ms() + 10000;
	while ((o1.calls == 0 || o2.calls == 0) && clock_mono_ms() < until)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(o1.err, 0);
	cr_assert_eq(o2.err, 0);
	cr_assert_lt(first.id, later.id, "ids in the order offered");
	commit_free(c);
	cr_assert_eq(store_drain(s, 1000), 0);
	store_close(s);
	event_base_free(base);
}

/* A quarantined file's name is whatever bytes the sender chose: the server
 * takes only UTF-8, so it is stored cleaned (and the cleaned copy freed:
 * the sanitizer run would report it). */
Test(store_pg, a_file_name_that_is_not_utf8_is_stored_cleaned)
{
	struct store *s = open_node("a");
	struct store_quarantined x = { .endpoint = "ep-a", .file = "/q/bad-\xff\xfe.xml",
				       .error_class = "syntax", .reason = "not XML", .size = 3,
				       .at = T0 };
	cr_assert_eq(store_quarantine_add(s, &x, 1), 0, "%s", store_last_error(s));
	cr_assert_gt(x.id, 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages WHERE state = 3 AND "
			     "file = '/q/bad-' || U&'\\FFFD\\FFFD' || '.xml'"), 1,
		     "stored with U+FFFD for each byte that is not UTF-8");
	store_close(s);
}

Test(store_pg, a_connection_the_server_ends_is_made_again)
{
	char node[32], sql[256];
	snprintf(node, sizeof(node), "term%ld", (long)getpid());
	struct store *s = open_node(node);
	void *lane = NULL;
	cr_assert_eq(store_pg_ops.connect(store_backend_handle(s, &store_pg_ops), 5000, &lane), 0);
	int64_t n;
	cr_assert_eq(store_pg_ops.count(lane, MSG_QUEUED, &n), 0, "%s", store_pg_ops.last_error(lane));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				   "WHERE application_name = 'edibroker %s'", node);
	testutil_pg_exec(url, sql);
	usleep(100 * 1000);
	cr_assert_lt(store_pg_ops.count(lane, MSG_QUEUED, &n), 0, "the first call finds it gone");
	cr_assert_eq(store_pg_ops.count(lane, MSG_QUEUED, &n), 0, "the next one connects again: %s",
		     store_pg_ops.last_error(lane));
	/* the loop's handle rests after a failure instead of trying at once */
	cr_assert_lt(store_count(s, MSG_QUEUED, &n), 0);
	cr_assert_eq(store_count(s, MSG_QUEUED, &n), -ENOTCONN, "refused at once while resting");
	store_pg_ops.close(lane);
	store_close(s);
}

/* Runs pg_ctl ACTION on the test server, as the user it runs as. */
static void pg_ctl(const char *action)
{
	const char *bin = getenv("EDIBROKER_TEST_PG_BIN"), *data = getenv("EDIBROKER_TEST_PG_DATA");
	const char *user = getenv("EDIBROKER_TEST_PG_USER");
	cr_assert(bin && data && user, "run through tests/scripts/with-pg.sh");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s%s%s %s/pg_ctl -D %s -w -t 60 %s%s >/dev/null 2>&1",
		 getuid() == 0 ? "runuser -u " : "", getuid() == 0 ? user : "",
		 getuid() == 0 ? " --" : "", bin, data, strcmp(action, "stop") == 0 ? "-m immediate " : "",
		 action);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void wait_done(struct event_base *base, int want)
{
	int64_t until = clock_mono_ms() + 20000;
	while (done_calls < want && clock_mono_ms() < until)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(done_calls, want);
}

/* A suite of its own: it stops the server every test shares, so the Makefile
 * runs it alone, after the others (make unit-pg). */
TestSuite(store_pg_restart, .init = setup, .fini = teardown, .timeout = 120);

Test(store_pg_restart, the_store_lanes_connect_again_after_the_server_restarts)
{
	struct event_base *base = event_base_new();
	struct store *s = open_node("restart");
	cr_assert_eq(store_attach(s, base), 0);
	struct store_new m[3] = { msg("ep-a", NULL, 0, "r1"), msg("ep-a", NULL, 0, "r2"),
				  msg("ep-a", NULL, 0, "r3") };
	struct store_batch b[3];
	for (int i = 0; i < 3; i++)
		b[i] = (struct store_batch){ .msgs = &m[i], .nmsgs = 1, .now = T0 };
	done_calls = 0;
	store_commit_async(s, &b[0], on_done, NULL);
	wait_done(base, 1);
	cr_assert_eq(done_err, 0);
	pg_ctl("stop"); /* as in a crash: no checkpoint, sessions cut */
	store_commit_async(s, &b[1], on_done, NULL);
	wait_done(base, 2);
	cr_assert_lt(done_err, 0, "the server is gone");
	pg_ctl("start");
	store_commit_async(s, &b[2], on_done, NULL);
	wait_done(base, 3);
	cr_assert_eq(done_err, 0, "connected again: %s", store_last_error(s));
	cr_assert_eq(m[2].outcome, STORE_STORED);
	cr_assert_eq(sql_int("SELECT count(*) FROM messages"), 2);
	store_close(s);
	event_base_free(base);
}

Test(store_pg, check_only_reports_the_schema_and_changes_nothing)
{
	char err[512] = "";
	struct store_options o = { .url = url, .node = "a", .check_only = true };
	struct store *c = store_open("postgresql", NULL, &o, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	int64_t have = -1, want = 0;
	cr_assert_eq(store_schema_version(c, &have, &want), 0);
	cr_assert_eq(have, 0, "not made yet: the first daemon makes it");
	cr_assert_gt(want, 0);
	store_close(c);
	cr_assert_eq(sql_int("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), 0,
		     "a check creates nothing");
	struct store *s = open_node("a");
	cr_assert_eq(store_schema_version(s, &have, &want), 0);
	cr_assert_eq(have, want);
	store_close(s);
	/* a database written by a newer edibroker is refused */
	testutil_pg_exec(url, "UPDATE meta SET value = '999' WHERE key = 'schema_version'");
	cr_assert_null(store_open("postgresql", NULL, &o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "newer"), "%s", err);
	/* so is one that is not edibroker's */
	testutil_pg_exec(url, "DROP TABLE meta CASCADE");
	cr_assert_null(store_open("postgresql", NULL, &o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not an edibroker database"), "%s", err);
}

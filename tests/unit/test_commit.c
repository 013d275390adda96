/*
 * test_commit.c - the group commit (commit.c) over a real SQLite store in a
 * fresh temporary directory and a real event_base.
 *
 * Covers: everything added in one loop turn shares one transaction;
 * completions run after the commit with outcome and id set (and the row
 * readable); delivered marks and attempts reach the store; a failing commit
 * (the store's size cap, -ENOSPC) fails its new messages back, flips health
 * once, keeps marks pending and applies them with the next successful commit
 * (also by the retry timer when nothing new arrives); commit_flush and
 * commit_free commit what is pending.
 */
#include "base/clock.h"
#include "base/log.h"
#include "store/commit.h"
#include "store/store.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define GLN_S "5790000143054"
#define GLN_R "5790000143055"

/* 32 pages of 4 KiB: the schema (12 pages) and small messages fit, a
 * 200 KB body does not. */
#define SMALL_STORE (128u * 1024u)
#define BIG_BODY (200u * 1024u)

static char dir[PATH_MAX];
static struct event_base *base;
static struct store *store;
static struct commit *commit;

static void open_store(uint64_t max_bytes)
{
	struct store_options opt = { .max_bytes = max_bytes };
	char err[512] = "";
	store = store_open("sqlite", dir, &opt, err, sizeof(err));
	cr_assert_not_null(store, "store_open: %s", err);
	commit = commit_new(base, store);
	cr_assert_not_null(commit);
}

static void setup(void)
{
	log_setup(LOG_CRIT, 0); /* the failures these tests cause are logged as errors */
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_commit.XXXXXX");
	base = event_base_new();
	cr_assert_not_null(base);
	store = NULL;
	commit = NULL;
}

static void setup_default(void)
{
	setup();
	open_store(0);
}

static void setup_small(void)
{
	setup();
	open_store(SMALL_STORE);
}

static void teardown(void)
{
	commit_free(commit);
	store_close(store);
	if (base)
		event_base_free(base);
	testutil_rm_rf(dir);
}

/* ---- messages ---------------------------------------------------------- */

/* One message to add, with the record of its completion. */
struct tmsg {
	struct store_new m;
	struct store_key key;
	char letter_id[16];
	uint8_t *body;
	/* completion */
	int ncalls;
	int err;
	int seq;                 /* completion order */
	int outcome_in_done;
	int64_t id_in_done;
	int found_in_done;       /* the row was readable from the store in done() */
	struct tmsg *chain;      /* added from inside done() */
};

static int done_seq;

static struct tmsg *tmsg_new(const char *letter_id, size_t size)
{
	struct tmsg *t = xcalloc(1, sizeof(*t));
	str_copy(t->letter_id, letter_id, sizeof(t->letter_id));
	t->body = xmalloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		t->body[i] = (uint8_t)(i * 31 + 7);
	t->key = (struct store_key){ GLN_S, t->letter_id };
	t->m = (struct store_new){
		.source = "hospital", .endpoint = "municipality", .format = "oioxml", .ext = "xml",
		.type = "XDIS20", .envelope_id = "ENV", .sender = GLN_S, .receiver = GLN_R,
		.nletters = 1, .keys = &t->key, .nkeys = 1, .body = t->body, .size = size,
		.received_at = clock_wall_ms(),
	};
	t->err = 1; /* "not called" */
	t->seq = -1;
	return t;
}

static void tmsg_free(struct tmsg *t)
{
	if (t) {
		free(t->body);
		free(t);
	}
}

static int count_row(const struct store_msg *m, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void on_done(int err, struct store_new *m, void *arg)
{
	struct tmsg *t = arg;
	cr_assert_eq(m, &t->m, "done() got another store_new than was added");
	t->ncalls++;
	t->err = err;
	t->seq = done_seq++;
	t->outcome_in_done = m->outcome;
	t->id_in_done = m->id;
	if (err == 0 && m->id > 0) {
		int n = 0;
		cr_assert_geq(store_get(store, m->id, false, count_row, &n), 0);
		t->found_in_done = n;
	}
	if (t->chain)
		commit_add(commit, &t->chain->m, on_done, t->chain);
}

/* ---- store reads ------------------------------------------------------- */

struct row {
	int found;
	int64_t id;
	enum msg_state state;
	int attempts;
	char last_error[256];
	int64_t delivered_at;
	size_t size;
	uint8_t *body;
};

static int copy_row(const struct store_msg *m, void *arg)
{
	struct row *r = arg;
	r->found++;
	r->id = m->id;
	r->state = m->state;
	r->attempts = m->attempts;
	str_copy(r->last_error, m->last_error ? m->last_error : "", sizeof(r->last_error));
	r->delivered_at = m->delivered_at;
	r->size = m->size;
	if (m->body) {
		r->body = xmalloc(m->size + 1);
		memcpy(r->body, m->body, m->size);
	}
	return 0;
}

static struct row get_row(int64_t id, bool with_body)
{
	struct row r = { 0 };
	int n = store_get(store, id, with_body, copy_row, &r);
	cr_assert_geq(n, 0, "get %lld: %s", (long long)id, store_last_error(store));
	return r;
}

static int64_t count_state(enum msg_state st)
{
	int64_t n = -1;
	cr_assert_eq(store_count(store, st, &n), 0);
	return n;
}

/* ---- loop -------------------------------------------------------------- */

/* One turn of the loop that runs what is active, without waiting. */
static void turn(void)
{
	event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
}

/* Runs the loop until *flag becomes true or timeout_ms passes. */
static bool loop_until(const bool *flag, int64_t timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	while (!*flag && clock_mono_ms() < deadline) {
		struct timeval tv = { 0, 20000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return *flag;
}

/* Health transitions seen by the callback. */
static bool health_log[16];
static int nhealth;

static void on_health(bool healthy, void *arg)
{
	cr_assert_eq(arg, (void *)&nhealth);
	cr_assert_lt(nhealth, 16);
	health_log[nhealth++] = healthy;
}

/* Commits one small message and returns its id. */
static int64_t commit_one(const char *letter_id)
{
	struct tmsg *t = tmsg_new(letter_id, 64);
	commit_add(commit, &t->m, on_done, t);
	turn();
	cr_assert_eq(t->ncalls, 1);
	cr_assert_eq(t->err, 0);
	int64_t id = t->m.id;
	cr_assert_gt(id, 0);
	tmsg_free(t);
	return id;
}

/* ---- tests ------------------------------------------------------------- */

TestSuite(commit, .init = setup_default, .fini = teardown, .timeout = 20);

Test(commit, adds_of_one_turn_share_one_transaction)
{
	enum { N = 25 };
	struct tmsg *t[N];
	done_seq = 0;
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(id, sizeof(id), "L%d", i);
		t[i] = tmsg_new(id, 100 + (size_t)i);
		commit_add(commit, &t[i]->m, on_done, t[i]);
	}
	/* nothing is committed, nor completed, before the loop runs */
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 0);
	cr_assert_eq(count_state(MSG_QUEUED), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(t[i]->ncalls, 0, "done() ran inside commit_add");

	turn();
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1, "%d adds took %llu commits", N, (unsigned long long)st.commits);
	cr_assert_eq(st.messages, N);
	cr_assert_eq(st.failed, 0);
	cr_assert_eq(count_state(MSG_QUEUED), N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(t[i]->ncalls, 1);
		cr_assert_eq(t[i]->err, 0);
		cr_assert_eq(t[i]->seq, i, "completions out of add order");
		if (i > 0)
			cr_assert_gt(t[i]->m.id, t[i - 1]->m.id, "ids must follow add order");
	}
	/* the loop does not commit again with nothing new */
	turn();
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1);
	for (int i = 0; i < N; i++)
		tmsg_free(t[i]);
}

Test(commit, separate_turns_commit_separately)
{
	struct tmsg *a = tmsg_new("A", 10), *b = tmsg_new("B", 10);
	commit_add(commit, &a->m, on_done, a);
	turn();
	cr_assert_eq(a->ncalls, 1);
	commit_add(commit, &b->m, on_done, b);
	turn();
	cr_assert_eq(b->ncalls, 1);
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 2);
	cr_assert_eq(st.messages, 2);
	cr_assert_geq(st.total_ms, st.last_ms);
	cr_assert_geq(st.last_ms, 0);
	tmsg_free(a);
	tmsg_free(b);
}

Test(commit, outcome_and_id_are_set_before_done_runs)
{
	struct tmsg *t = tmsg_new("L1", 777);
	t->m.outcome = STORE_DEAD; /* garbage the commit must overwrite */
	t->m.id = -5;
	commit_add(commit, &t->m, on_done, t);
	turn();
	cr_assert_eq(t->ncalls, 1);
	cr_assert_eq(t->err, 0);
	cr_assert_eq(t->outcome_in_done, STORE_STORED);
	cr_assert_gt(t->id_in_done, 0);
	cr_assert_eq(t->found_in_done, 1, "the row was not committed when done() ran");
	struct row r = get_row(t->id_in_done, true);
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.state, MSG_QUEUED);
	cr_assert_eq(r.size, 777);
	cr_assert_not_null(r.body);
	cr_assert_arr_eq(r.body, t->body, 777);
	free(r.body);
	tmsg_free(t);
}

Test(commit, duplicate_in_one_batch_gets_the_first_id)
{
	struct tmsg *a = tmsg_new("SAME", 10), *b = tmsg_new("SAME", 20), *c = tmsg_new("OTHER", 5);
	commit_add(commit, &a->m, on_done, a);
	commit_add(commit, &b->m, on_done, b);
	commit_add(commit, &c->m, on_done, c);
	turn();
	cr_assert_eq(a->outcome_in_done, STORE_STORED);
	cr_assert_eq(b->outcome_in_done, STORE_DUPLICATE);
	cr_assert_eq(b->id_in_done, a->id_in_done);
	cr_assert_eq(c->outcome_in_done, STORE_STORED);
	cr_assert_neq(c->id_in_done, a->id_in_done);
	cr_assert_eq(count_state(MSG_QUEUED), 2);
	tmsg_free(a);
	tmsg_free(b);
	tmsg_free(c);
}

Test(commit, dead_letter_outcome)
{
	struct tmsg *t = tmsg_new("D1", 10);
	t->m.endpoint = NULL;
	t->m.reason = "unknown receiver";
	commit_add(commit, &t->m, on_done, t);
	turn();
	cr_assert_eq(t->err, 0);
	cr_assert_eq(t->outcome_in_done, STORE_DEAD);
	cr_assert_eq(get_row(t->m.id, false).state, MSG_DEAD);
	tmsg_free(t);
}

Test(commit, delivered_marks_and_attempts_reach_the_store)
{
	int64_t a = commit_one("A"), b = commit_one("B"), c = commit_one("C");
	struct commit_stats st0, st;
	commit_stats(commit, &st0);
	commit_add_delivered(commit, a);
	commit_add_attempt(commit, b, "open outbox /x: No such file or directory");
	commit_add_attempt(commit, b, "second failure");
	commit_add_attempt(commit, c, NULL);
	/* marks alone are committed, in one transaction */
	turn();
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, st0.commits + 1);
	struct row ra = get_row(a, false), rb = get_row(b, false), rc = get_row(c, false);
	cr_assert_eq(ra.state, MSG_DELIVERED);
	cr_assert_gt(ra.delivered_at, 0);
	cr_assert_eq(rb.state, MSG_QUEUED);
	cr_assert_eq(rb.attempts, 2);
	cr_assert_str_eq(rb.last_error, "second failure");
	cr_assert_eq(rc.attempts, 1);
	cr_assert_str_eq(rc.last_error, "");
	/* a mark on an already delivered message is harmless */
	commit_add_delivered(commit, a);
	turn();
	cr_assert(commit_healthy(commit));
	cr_assert_eq(get_row(a, false).delivered_at, ra.delivered_at);
}

/* A done() that adds a new message: it is committed by a later commit. */
Test(commit, done_may_add_new_work)
{
	struct tmsg *a = tmsg_new("A", 10), *b = tmsg_new("B", 10);
	a->chain = b;
	commit_add(commit, &a->m, on_done, a);
	turn();
	cr_assert_eq(a->ncalls, 1);
	bool never = false;
	loop_until(&never, 100);
	cr_assert_eq(b->ncalls, 1, "work added from done() was not committed");
	cr_assert_eq(b->err, 0);
	cr_assert_eq(b->outcome_in_done, STORE_STORED);
	cr_assert_eq(count_state(MSG_QUEUED), 2);
	tmsg_free(a);
	tmsg_free(b);
}

Test(commit, flush_commits_now)
{
	struct tmsg *a = tmsg_new("A", 10), *b = tmsg_new("B", 10);
	commit_add(commit, &a->m, on_done, a);
	commit_add(commit, &b->m, on_done, b);
	cr_assert_eq(commit_flush(commit), 0);
	/* completed before the loop ran */
	cr_assert_eq(a->ncalls, 1);
	cr_assert_eq(b->ncalls, 1);
	cr_assert_eq(count_state(MSG_QUEUED), 2);
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1);
	/* the event it had scheduled finds nothing to do */
	turn();
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1);
	cr_assert_eq(a->ncalls, 1);
	/* nothing pending: 0, no commit */
	cr_assert_eq(commit_flush(commit), 0);
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1);
	tmsg_free(a);
	tmsg_free(b);
}

Test(commit, free_commits_what_is_pending)
{
	struct tmsg *t = tmsg_new("A", 10);
	int64_t a = commit_one("M");
	commit_add(commit, &t->m, on_done, t);
	commit_add_delivered(commit, a);
	commit_free(commit);
	commit = NULL;
	cr_assert_eq(t->ncalls, 1);
	cr_assert_eq(t->err, 0);
	cr_assert_eq(count_state(MSG_QUEUED), 1);
	cr_assert_eq(get_row(a, false).state, MSG_DELIVERED);
	tmsg_free(t);
}

Test(commit, free_accepts_null)
{
	commit_free(NULL);
}

Test(commit, starts_healthy)
{
	cr_assert(commit_healthy(commit));
	cr_assert_str_eq(commit_last_error(commit), "");
}

/* ---- failure ----------------------------------------------------------- */

TestSuite(commit_fail, .init = setup_small, .fini = teardown, .timeout = 20);

Test(commit_fail, full_store_fails_batch_and_flips_health_once)
{
	nhealth = 0;
	commit_on_health(commit, on_health, &nhealth);
	int64_t a = commit_one("A"), b = commit_one("B");
	cr_assert_eq(nhealth, 0, "health callback fired without a change");

	/* one turn: marks plus a message too big for the store */
	struct tmsg *big = tmsg_new("BIG", BIG_BODY), *small = tmsg_new("S1", 50);
	commit_add_delivered(commit, a);
	commit_add_attempt(commit, b, "refused");
	commit_add(commit, &small->m, on_done, small);
	commit_add(commit, &big->m, on_done, big);
	turn();
	cr_assert_eq(big->ncalls, 1);
	cr_assert_eq(big->err, -ENOSPC, "big: err %d", big->err);
	/* the whole batch failed: the small message with it */
	cr_assert_eq(small->ncalls, 1);
	cr_assert_eq(small->err, -ENOSPC);
	cr_assert_not(commit_healthy(commit));
	cr_assert_neq(commit_last_error(commit)[0], '\0');
	cr_assert_eq(nhealth, 1);
	cr_assert_eq(health_log[0], false);
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.failed, 1);
	/* nothing of the batch is in the store; the marks are still pending */
	cr_assert_eq(count_state(MSG_QUEUED), 2);
	cr_assert_eq(get_row(a, false).state, MSG_QUEUED);
	cr_assert_eq(get_row(b, false).attempts, 0);

	/* failing again is the same episode: no second notice */
	struct tmsg *big2 = tmsg_new("BIG2", BIG_BODY);
	commit_add(commit, &big2->m, on_done, big2);
	turn();
	cr_assert_eq(big2->err, -ENOSPC);
	cr_assert_eq(nhealth, 1, "health callback fired again without a change");
	cr_assert_not(commit_healthy(commit));

	/* a small message commits, and with it the marks kept from before */
	struct tmsg *c = tmsg_new("C", 50);
	commit_add(commit, &c->m, on_done, c);
	turn();
	cr_assert_eq(c->err, 0);
	cr_assert(commit_healthy(commit));
	cr_assert_str_eq(commit_last_error(commit), "");
	cr_assert_eq(nhealth, 2);
	cr_assert_eq(health_log[1], true);
	cr_assert_eq(get_row(a, false).state, MSG_DELIVERED, "delivered mark lost with the failure");
	struct row rb = get_row(b, false);
	cr_assert_eq(rb.attempts, 1, "attempt lost with the failure (or applied twice)");
	cr_assert_str_eq(rb.last_error, "refused");

	/* the next success is no transition */
	commit_one("D");
	cr_assert_eq(nhealth, 2);
	tmsg_free(big);
	tmsg_free(big2);
	tmsg_free(small);
	tmsg_free(c);
}

/* With only marks pending after a failure, the retry timer commits them
 * without new input, and health recovers. */
Test(commit_fail, retry_timer_applies_pending_marks)
{
	nhealth = 0;
	commit_on_health(commit, on_health, &nhealth);
	int64_t a = commit_one("A");
	struct tmsg *big = tmsg_new("BIG", BIG_BODY);
	commit_add_delivered(commit, a);
	commit_add(commit, &big->m, on_done, big);
	turn();
	cr_assert_eq(big->err, -ENOSPC);
	cr_assert_not(commit_healthy(commit));
	struct commit_stats st0;
	commit_stats(commit, &st0);

	bool healthy = false;
	int64_t deadline = clock_mono_ms() + 4000;
	while (!healthy && clock_mono_ms() < deadline) {
		struct timeval tv = { 0, 50000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
		healthy = commit_healthy(commit);
	}
	cr_assert(healthy, "pending marks were not retried");
	cr_assert_eq(get_row(a, false).state, MSG_DELIVERED);
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, st0.commits + 1);
	cr_assert_eq(nhealth, 2);
	cr_assert_eq(health_log[0], false);
	cr_assert_eq(health_log[1], true);
	tmsg_free(big);
}

Test(commit_fail, flush_returns_the_error)
{
	struct tmsg *big = tmsg_new("BIG", BIG_BODY);
	commit_add(commit, &big->m, on_done, big);
	cr_assert_eq(commit_flush(commit), -ENOSPC);
	cr_assert_eq(big->ncalls, 1);
	cr_assert_eq(big->err, -ENOSPC);
	cr_assert_not(commit_healthy(commit));
	/* the failed message is not retried by the loop */
	turn();
	cr_assert_eq(big->ncalls, 1);
	cr_assert_eq(count_state(MSG_QUEUED), 0);
	tmsg_free(big);
}

/*
 * test_ingest.c - the accept path (ingest.c): decode -> route -> group
 * commit -> report, with the real OIOXML codec, a real router, a real
 * SQLite store in a fresh temporary directory and the real group commit.
 *
 * Inputs are the MedCom samples in ../shared/medcom-samples/oioxml (run from
 * the repository root), some rewritten in memory (envelope id, receiver GLN,
 * VersionCode). Each outcome is checked against what the store holds and
 * what the queued callback (the delivery side) received: ACCEPTED with the
 * exact bytes, DUPLICATE, DEAD with or without an XCTL01 receipt to the
 * source, REJECTED with or without a receipt, TEMPFAIL on a full store.
 */
#include "base/clock.h"
#include "base/lanes.h"
#include "base/log.h"
#include "codecs/codec.h"
#include "store/commit.h"
#include "conf/config.h"
#include "accept/ingest.h"
#include "accept/router.h"
#include "store/store.h"
#include "codecs/base/base64.h"
#include "codecs/base/mem.h"
#include "metrics/metrics.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define SAMPLES "../shared/medcom-samples/oioxml"
#define LOCAL_DATA "tests/data/oioxml"

/* DIS20_1.xml: envelope 123456789, letter 24681012, XDIS20, from the
 * hospital GLN to the municipality GLN. */
#define DIS20_SENDER "5790000143054"
#define DIS20_RECEIVER "5790000143055"
#define UNKNOWN_GLN "5790000999999"
#define BROKER_ID "EDIBROKER"

static char dir[PATH_MAX];
static struct event_base *base;
static struct store *store;
static struct commit *commit;
static struct router *router;
static struct ingest *ing;
static struct lanes *pool;

/* ---- the delivery side: what the queued callback received -------------- */

struct queued {
	char endpoint[64];
	int64_t id;
	uint8_t *body;
	size_t size;
	char ext[16], type[48];
	int64_t received_at;
};

static struct queued queued[16];
static size_t nqueued;

static void on_queued(void *ctx, const char *endpoint, int64_t id, uint8_t *body, size_t size,
		      const char *ext, const char *type, int64_t received_at)
{
	cr_assert_eq(ctx, (void *)&nqueued);
	cr_assert_lt(nqueued, ARRAY_SIZE(queued));
	struct queued *q = &queued[nqueued++];
	str_copy(q->endpoint, endpoint, sizeof(q->endpoint));
	q->id = id;
	q->body = body; /* ownership moves to us */
	q->size = size;
	str_copy(q->ext, ext, sizeof(q->ext));
	str_copy(q->type, type, sizeof(q->type));
	q->received_at = received_at;
}

/* ---- the source side: what done() reported ----------------------------- */

struct outcome {
	int calls;
	enum ingest_result result;
	int64_t id;
	char endpoint[64];
	char reason[512];
	enum codec_errcode code;
	char error_text[256];
};

static void on_done(const struct ingest_outcome *o, void *arg)
{
	struct outcome *out = arg;
	out->calls++;
	out->result = o->result;
	out->id = o->id;
	str_copy(out->endpoint, o->endpoint ? o->endpoint : "", sizeof(out->endpoint));
	str_copy(out->reason, o->reason ? o->reason : "", sizeof(out->reason));
	if (o->error) {
		out->code = o->error->code;
		str_copy(out->error_text, o->error->text, sizeof(out->error_text));
	}
}

struct idlist {
	int64_t *v;
	size_t n;
};

static int add_id(int64_t id, void *arg)
{
	struct idlist *l = arg;
	l->v[l->n++] = id;
	return 0;
}

/* ---- setup ------------------------------------------------------------- */

/* The senders of the samples the hospital submits here besides its own
 * (receipts, FHIR, correspondence): it relays for them (may_send_for), as
 * sender binding requires. */
static char *relayed[] = { "5790000120420", "5790000120400", "5790000121236", "5790000209354",
			   "5790000123117", "5790001348120", "5790001382445", "DKKMDKMDNET" };

static void add_endpoint(struct config *cfg, const char *name, const char *g1, const char *g2)
{
	cfg->endpoints = xrealloc(cfg->endpoints, (cfg->nendpoints + 1) * sizeof(*cfg->endpoints));
	struct endpoint_conf *ep = &cfg->endpoints[cfg->nendpoints++];
	memset(ep, 0, sizeof(*ep));
	ep->name = (char *)name;
	ep->gln = xcalloc(2, sizeof(char *));
	ep->gln[ep->ngln++] = (char *)g1;
	if (g2)
		ep->gln[ep->ngln++] = (char *)g2;
	if (strcmp(name, "hospital") == 0) {
		ep->may_send_for = relayed;
		ep->nmay_send_for = ARRAY_SIZE(relayed);
	}
}

/* hospital: the DIS20 and Region H senders; municipality: their receivers. */
static struct router *make_router(const char *extra_endpoint_gln)
{
	struct config cfg = { 0 };
	add_endpoint(&cfg, "hospital", DIS20_SENDER, "5790002515200");
	add_endpoint(&cfg, "municipality", DIS20_RECEIVER, "5790002508226");
	if (extra_endpoint_gln)
		add_endpoint(&cfg, "other", extra_endpoint_gln, NULL);
	struct router *r = router_new(&cfg);
	for (size_t i = 0; i < cfg.nendpoints; i++)
		free(cfg.endpoints[i].gln);
	free(cfg.endpoints);
	return r;
}

static void start(uint64_t max_bytes, const char *extra_endpoint_gln)
{
	log_setup(LOG_CRIT, 0); /* the failures these tests cause are logged as errors */
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_ingest.XXXXXX");
	base = event_base_new();
	struct store_options opt = { .max_bytes = max_bytes };
	char err[512] = "";
	store = store_open("sqlite", dir, &opt, err, sizeof(err));
	cr_assert_not_null(store, "%s", err);
	commit = commit_new(base, store);
	router = make_router(extra_endpoint_gln);
	nqueued = 0;
	pool = lanes_new(base, 0);
	ing = ingest_new(base, pool, commit, on_queued, &nqueued);
	ingest_set_router(ing, router);
	struct ingest_config ic = { .limits = { .max_bytes = CODEC_DEFAULT_MAX_BYTES,
						.max_depth = CODEC_DEFAULT_MAX_DEPTH },
				    .broker_id = BROKER_ID };
	ingest_set_config(ing, &ic);
}

static void setup(void)
{
	start(0, NULL);
}

static void teardown(void)
{
	commit_free(commit);
	cr_assert_eq(lanes_wait(pool, 5000), 0);
	lanes_free(pool);
	ingest_free(ing);
	router_free(router);
	store_close(store);
	event_base_free(base);
	for (size_t i = 0; i < nqueued; i++)
		free(queued[i].body);
	testutil_rm_rf(dir);
}

/* ---- inputs ------------------------------------------------------------ */

struct buf {
	uint8_t *p;
	size_t n;
};

static struct buf load(const char *path)
{
	struct buf b;
	b.p = testutil_read_file(path, &b.n);
	return b;
}

static struct buf sample(const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", SAMPLES, name);
	return load(path);
}

/* A copy of b with the first (or every) occurrence of from replaced by to. */
static struct buf replaced(struct buf b, const char *from, const char *to, bool all)
{
	size_t fl = strlen(from), tl = strlen(to);
	struct buf out = { xmalloc(b.n * 2 + tl + 1), 0 };
	size_t hits = 0;
	for (size_t i = 0; i < b.n;) {
		if ((all || hits == 0) && i + fl <= b.n && memcmp(b.p + i, from, fl) == 0) {
			memcpy(out.p + out.n, to, tl);
			out.n += tl;
			i += fl;
			hits++;
		} else {
			out.p[out.n++] = b.p[i++];
		}
	}
	cr_assert_gt(hits, 0, "\"%s\" not found in the input", from);
	return out;
}

/* Sample name with every from replaced by to. */
static struct buf sample_replaced(const char *name, const char *from, const char *to)
{
	struct buf orig = sample(name);
	struct buf b = replaced(orig, from, to, true);
	free(orig.p);
	return b;
}

static uint8_t *dup_bytes(struct buf b)
{
	uint8_t *p = xmalloc(b.n + 1);
	memcpy(p, b.p, b.n);
	return p;
}

/* Submits a copy of b from source; the copy's ownership moves to ingest. */
static void submit(const char *source, struct buf b, struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	ingest_submit(ing, source, dup_bytes(b), b.n, 0, on_done, out);
}

/* Runs the loop until every submission has its outcome: decoding runs on
 * the sources' lanes, then the group commit (at most 5 s). */
static void turn(void)
{
	int64_t end = clock_mono_ms() + 5000;
	do {
		struct timeval tv = { 0, 2000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	} while (ingest_inflight(ing) > 0 && clock_mono_ms() < end);
}

/* ---- store reads ------------------------------------------------------- */

struct row {
	int64_t id;
	enum msg_state state;
	char source[64], endpoint[64], type[16], envelope_id[32], sender[64], receiver[64];
	char reason[512], format[16], ext[8];
	int nletters;
	size_t size;
	uint8_t *body;
};

struct rows {
	struct row r[16];
	size_t n;
};

static void cp(char *dst, size_t len, const char *src)
{
	str_copy(dst, src ? src : "<NULL>", len);
}

static int collect(const struct store_msg *m, void *arg)
{
	struct rows *rs = arg;
	cr_assert_lt(rs->n, ARRAY_SIZE(rs->r));
	struct row *r = &rs->r[rs->n++];
	memset(r, 0, sizeof(*r));
	r->id = m->id;
	r->state = m->state;
	cp(r->source, sizeof(r->source), m->source);
	cp(r->endpoint, sizeof(r->endpoint), m->endpoint);
	cp(r->type, sizeof(r->type), m->type);
	cp(r->envelope_id, sizeof(r->envelope_id), m->envelope_id);
	cp(r->sender, sizeof(r->sender), m->sender);
	cp(r->receiver, sizeof(r->receiver), m->receiver);
	cp(r->reason, sizeof(r->reason), m->reason);
	cp(r->format, sizeof(r->format), m->format);
	cp(r->ext, sizeof(r->ext), m->ext);
	r->nletters = m->nletters;
	r->size = m->size;
	if (m->body) {
		r->body = xmalloc(m->size + 1);
		memcpy(r->body, m->body, m->size);
	}
	return 0;
}

/* Every stored message in state st (metadata only). */
static struct rows list_state(enum msg_state st)
{
	struct rows rs = { .n = 0 };
	int n = store_list(store, st, NULL, 100, collect, &rs);
	cr_assert_geq(n, 0);
	return rs;
}

static size_t stored_total(void)
{
	return list_state(MSG_QUEUED).n + list_state(MSG_DELIVERED).n + list_state(MSG_DEAD).n;
}

/* One message with its body; the caller frees r.body. */
static struct row get_row(int64_t id)
{
	struct rows rs = { .n = 0 };
	cr_assert_eq(store_get(store, id, true, collect, &rs), 1,
		     "message %lld not in the store", (long long)id);
	return rs.r[0];
}

/* Decodes bytes that must be an XCTL01 addressed to `to`. */
static void assert_xctl01_to(const uint8_t *p, size_t n, const char *to, const char *refuse)
{
	static struct codec_envelope env;
	struct codec_error err = { 0 };
	cr_assert_eq(codec_decode_any(p, n, NULL, &env, &err), 0, "receipt does not decode: %s",
		     err.text);
	cr_assert(env.is_receipt);
	cr_assert_eq(env.nletters, 1);
	cr_assert_str_eq(env.letters[0].type, "XCTL01");
	cr_assert_str_eq(env.letters[0].receiver, to);
	cr_assert_str_eq(env.letters[0].sender, BROKER_ID);
	cr_assert_not_null(memmem(p, n, refuse, strlen(refuse)), "refuse code %s missing", refuse);
}

/* The stored receipt is byte for byte its golden file (tests/golden/xctl01,
 * written with id EB0123456789ab at 2024-03-01 08:15) once the receipt's
 * own id, date and time are put in: what ingest stores does not change
 * when the code that builds it moves. */
static void assert_golden_receipt(const struct row *r, const char *golden)
{
	char date[11] = "", hm[6] = "";
	const char *d = memmem(r->body, r->size, "<Date>", 6), *t = memmem(r->body, r->size, "<Time>", 6);
	cr_assert(d && t, "receipt without Sent/Date and Sent/Time");
	memcpy(date, d + 6, 10);
	memcpy(hm, t + 6, 5);
	cr_assert_eq(strlen(r->envelope_id), 14, "receipt id %s", r->envelope_id);
	cr_assert_eq(strncmp(r->envelope_id, "EB", 2), 0, "receipt id %s", r->envelope_id);
	_cleanup_free_ char *path = xasprintf("tests/golden/xctl01/%s", golden);
	_cleanup_free_ char *dtag = xasprintf("<Date>%s</Date>", date);
	_cleanup_free_ char *ttag = xasprintf("<Time>%s</Time>", hm);
	struct buf g = load(path);
	struct buf a = replaced(g, "EB0123456789ab", r->envelope_id, true);
	struct buf b = replaced(a, "<Date>2024-03-01</Date>", dtag, false);
	struct buf want = replaced(b, "<Time>08:15</Time>", ttag, false);
	cr_assert_eq(r->size, want.n, "receipt is %zu bytes, %s says %zu", r->size, golden, want.n);
	cr_assert_arr_eq(r->body, want.p, want.n, "receipt differs from %s", golden);
	free(g.p);
	free(a.p);
	free(b.p);
	free(want.p);
}

TestSuite(ingest, .init = setup, .fini = teardown, .timeout = 20);

/* ---- ACCEPTED ---------------------------------------------------------- */

Test(ingest, accepted_is_committed_then_queued_with_exact_bytes)
{
	struct buf b = sample("DIS20_1.xml");
	struct outcome o;
	submit("hospital", b, &o);
	/* accepted only after the commit, which runs at the end of the turn */
	cr_assert_eq(o.calls, 0, "reported before the commit");
	cr_assert_eq(nqueued, 0);
	cr_assert_eq(ingest_inflight(ing), 1);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_ACCEPTED, "result %d reason %s", o.result, o.reason);
	cr_assert_str_eq(o.endpoint, "municipality");
	cr_assert_gt(o.id, 0);
	cr_assert_eq(ingest_inflight(ing), 0);

	cr_assert_eq(nqueued, 1);
	cr_assert_str_eq(queued[0].endpoint, "municipality");
	cr_assert_eq(queued[0].id, o.id);
	cr_assert_eq(queued[0].size, b.n);
	cr_assert_arr_eq(queued[0].body, b.p, b.n, "queued bytes differ from the input");
	cr_assert_str_eq(queued[0].ext, "xml");
	cr_assert_gt(queued[0].received_at, 0);

	struct row r = get_row(o.id);
	cr_assert_eq(r.state, MSG_QUEUED);
	cr_assert_str_eq(r.source, "hospital");
	cr_assert_str_eq(r.endpoint, "municipality");
	cr_assert_str_eq(r.type, "XDIS20");
	cr_assert_str_eq(r.envelope_id, "123456789");
	cr_assert_str_eq(r.sender, DIS20_SENDER);
	cr_assert_str_eq(r.receiver, DIS20_RECEIVER);
	cr_assert_str_eq(r.format, "oioxml");
	cr_assert_str_eq(r.ext, "xml");
	cr_assert_eq(r.nletters, 1);
	cr_assert_eq(r.size, b.n);
	cr_assert_arr_eq(r.body, b.p, b.n, "stored bytes differ from the input");
	cr_assert_eq(stored_total(), 1, "no receipt for an accepted message");
	free(r.body);
	free(b.p);
}

Test(ingest, many_in_one_turn_share_a_commit)
{
	const char *names[] = { "DIS20_1.xml", "XDIS17_regionh_NotificationOfDischarge.xml",
				"XDIS20_regionh_NotificationOfAdmission.xml",
				"XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml" };
	struct outcome o[4];
	struct buf b[4];
	for (size_t i = 0; i < 4; i++) {
		b[i] = sample(names[i]);
		submit("hospital", b[i], &o[i]);
	}
	cr_assert_eq(ingest_inflight(ing), 4);
	turn();
	struct commit_stats st;
	commit_stats(commit, &st);
	cr_assert_eq(st.commits, 1);
	cr_assert_eq(ingest_inflight(ing), 0);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(o[i].calls, 1);
		cr_assert_eq(o[i].result, INGEST_ACCEPTED, "%s: %d %s", names[i], o[i].result,
			     o[i].reason);
		cr_assert_str_eq(o[i].endpoint, "municipality");
		cr_assert_eq(queued[i].id, o[i].id, "queued out of commit order");
		cr_assert_arr_eq(queued[i].body, b[i].p, b[i].n);
		free(b[i].p);
	}
}

/* ---- DUPLICATE --------------------------------------------------------- */

Test(ingest, resubmitted_bytes_are_a_duplicate)
{
	struct buf b = sample("DIS20_1.xml");
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED);
	submit("hospital", b, &o2);
	turn();
	cr_assert_eq(o2.calls, 1);
	cr_assert_eq(o2.result, INGEST_DUPLICATE);
	cr_assert_eq(o2.id, o1.id, "a duplicate reports the earlier message's id");
	cr_assert_eq(nqueued, 1, "a duplicate was queued for delivery");
	cr_assert_eq(stored_total(), 1);
	cr_assert_eq(ingest_inflight(ing), 0);
	free(b.p);
}

Test(ingest, duplicate_within_one_turn)
{
	struct buf b = sample("DIS20_1.xml");
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	submit("hospital", b, &o2);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED);
	cr_assert_eq(o2.result, INGEST_DUPLICATE);
	cr_assert_eq(o2.id, o1.id);
	cr_assert_eq(nqueued, 1);
	cr_assert_eq(stored_total(), 1);
	free(b.p);
}

/* Same letter id in a new envelope (a resend after a lost ack): the letter
 * key (sender, letter id) decides, not the envelope. */
Test(ingest, same_letter_in_new_envelope_is_a_duplicate)
{
	struct buf b = sample("DIS20_1.xml");
	struct buf b2 = replaced(b, "<Identifier>123456789</Identifier>",
				 "<Identifier>987654321</Identifier>", false);
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED);
	submit("hospital", b2, &o2);
	turn();
	cr_assert_eq(o2.result, INGEST_DUPLICATE, "result %d: %s", o2.result, o2.reason);
	cr_assert_eq(o2.id, o1.id);
	cr_assert_eq(nqueued, 1);
	cr_assert_eq(stored_total(), 1);
	free(b.p);
	free(b2.p);
}

/* A new letter id in the same envelope is new. */
Test(ingest, new_letter_id_is_not_a_duplicate)
{
	struct buf b = sample("DIS20_1.xml");
	struct buf b2 = replaced(b, "<Identifier>24681012</Identifier>",
				 "<Identifier>24681013</Identifier>", false);
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	submit("hospital", b2, &o2);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED);
	cr_assert_eq(o2.result, INGEST_ACCEPTED);
	cr_assert_neq(o2.id, o1.id);
	cr_assert_eq(nqueued, 2);
	free(b.p);
	free(b2.p);
}

/* Some letters accepted before, some new: a dead letter (partial duplicate). */
Test(ingest, partial_duplicate_is_dead)
{
	/* both letters of multi_letter.xml routed to the municipality */
	router_free(router);
	struct config cfg = { 0 };
	add_endpoint(&cfg, "municipality", DIS20_RECEIVER, "5790000128700");
	add_endpoint(&cfg, "hospital", DIS20_SENDER, NULL);
	router = router_new(&cfg);
	free(cfg.endpoints[0].gln);
	free(cfg.endpoints[1].gln);
	free(cfg.endpoints);
	ingest_set_router(ing, router);

	struct buf b = load(LOCAL_DATA "/multi_letter.xml");
	struct buf b2 = replaced(b, "LETTER0002", "LETTER0003", true);
	struct buf b3 = replaced(b2, "MULTI0001", "MULTI0002", true);
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED, "%d %s", o1.result, o1.reason);
	submit("hospital", b3, &o2);
	turn();
	cr_assert_eq(o2.result, INGEST_DEAD, "result %d", o2.result);
	cr_assert(strstr(o2.reason, "partial duplicate"), "%s", o2.reason);
	cr_assert_eq(nqueued, 1);
	struct rows dead = list_state(MSG_DEAD);
	cr_assert_eq(dead.n, 1);
	cr_assert_eq(dead.r[0].id, o2.id);
	free(b.p);
	free(b2.p);
	free(b3.p);
}

/* ---- DEAD -------------------------------------------------------------- */

Test(ingest, unknown_receiver_is_dead_with_receipt_to_source)
{
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_DEAD, "result %d", o.result);
	cr_assert_gt(o.id, 0);
	cr_assert(strstr(o.reason, UNKNOWN_GLN), "reason names no GLN: %s", o.reason);
	cr_assert_eq(ingest_inflight(ing), 0);

	/* the dead letter, kept with its reason and bytes */
	struct rows dead = list_state(MSG_DEAD);
	cr_assert_eq(dead.n, 1);
	cr_assert_eq(dead.r[0].id, o.id);
	cr_assert_str_eq(dead.r[0].endpoint, "<NULL>");
	cr_assert(strstr(dead.r[0].reason, UNKNOWN_GLN), "%s", dead.r[0].reason);
	struct row d = get_row(o.id);
	cr_assert_arr_eq(d.body, b.p, b.n);
	free(d.body);

	/* the receipt: a second row, queued to the source endpoint */
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 1, "expected one receipt row, got %zu", q.n);
	struct row r = get_row(q.r[0].id);
	cr_assert_str_eq(r.endpoint, "hospital");
	cr_assert_str_eq(r.type, "XCTL01");
	cr_assert_str_eq(r.sender, BROKER_ID);
	cr_assert_str_eq(r.receiver, DIS20_SENDER);
	assert_xctl01_to(r.body, r.size, DIS20_SENDER, "ukendt_lokationsnummer");
	assert_golden_receipt(&r, "DIS20_1_unknown_receiver.xml");
	/* it echoes the refused envelope */
	cr_assert_not_null(memmem(r.body, r.size, "123456789", 9));

	/* and the delivery side got exactly that receipt, not the dead letter */
	cr_assert_eq(nqueued, 1);
	cr_assert_str_eq(queued[0].endpoint, "hospital");
	cr_assert_eq(queued[0].id, r.id);
	cr_assert_eq(queued[0].size, r.size);
	cr_assert_arr_eq(queued[0].body, r.body, r.size);
	cr_assert_str_eq(queued[0].ext, "xml");
	free(r.body);
	free(b.p);
}

/* What an operator's trace needs: the dead letter's first letter id, and
 * the receipt's link to the envelope it answers; and what metrics count. */
Test(ingest, dead_letters_keep_their_letter_id_and_receipts_the_envelope_they_answer)
{
	metrics_reset();
	const char *const names[] = { "hospital", "municipality" };
	metrics_set_endpoints(names, 2);
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD);
	cr_assert_str_eq(queued[0].type, "XCTL01");
	int64_t ids[4];
	struct idlist got = { ids, 0 };
	cr_assert_eq(store_find(store, STORE_FIND_LETTER, "24681012", 4, add_id, &got), 1);
	cr_assert_eq(ids[0], o.id, "the dead letter, by its letter id");
	got.n = 0;
	cr_assert_eq(store_find(store, STORE_FIND_REFERS, "123456789", 4, add_id, &got), 1);
	cr_assert_eq(ids[0], queued[0].id, "the receipt, by the envelope it answers");
	_cleanup_free_ char *text = metrics_render(NULL);
	cr_assert(strstr(text, "edibroker_messages_dead_total{source=\"hospital\","
			       "reason=\"unknown-receiver\",type=\"XDIS20\"} 1\n"), "%s", text);
	metrics_reset();
	free(b.p);
}

/* An operator's requeue of a message that still has no route: nothing is
 * stored, no receipt is sent again, and the caller keeps its copy. */
Test(ingest, no_dead_flag_stores_nothing_for_an_unroutable_message)
{
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o = { 0 };
	ingest_submit(ing, "hospital", dup_bytes(b), b.n, INGEST_NO_DEAD | INGEST_NO_RECEIPT,
		      on_done, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_DEAD);
	cr_assert_eq(o.id, 0, "not stored");
	cr_assert(strstr(o.reason, UNKNOWN_GLN), "%s", o.reason);
	cr_assert_eq(stored_total(), 0);
	cr_assert_eq(nqueued, 0);

	/* routable now: stored and queued as any message */
	struct buf ok = sample("DIS20_1.xml");
	ingest_submit(ing, "hospital", dup_bytes(ok), ok.n, INGEST_NO_DEAD | INGEST_NO_RECEIPT,
		      on_done, &o);
	turn();
	cr_assert_eq(o.result, INGEST_ACCEPTED);
	cr_assert_gt(o.id, 0);
	cr_assert_eq(nqueued, 1);
	free(ok.p);
	free(b.p);
}

/* A receipt to an unknown GLN is dead, and is never answered by a receipt. */
Test(ingest, dead_receipt_gets_no_receipt)
{
	struct buf b = sample("CTL03_1.xml"); /* to 5790000181872, owned by nobody */
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD, "result %d", o.result);
	cr_assert(strstr(o.reason, "5790000181872"), "%s", o.reason);
	cr_assert_eq(nqueued, 0, "a receipt was queued for a receipt");
	cr_assert_eq(list_state(MSG_DEAD).n, 1);
	cr_assert_eq(list_state(MSG_QUEUED).n, 0);
	free(b.p);
}

/* Letters for different endpoints: dead, and no receipt (the receivers are
 * known; the broker does not split messages). */
Test(ingest, split_is_dead_without_receipt)
{
	router_free(router);
	router = make_router("5790000128700");
	ingest_set_router(ing, router);
	struct buf b = load(LOCAL_DATA "/multi_letter.xml");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD, "result %d", o.result);
	cr_assert(strstr(o.reason, "LETTER0002"), "%s", o.reason);
	cr_assert_eq(nqueued, 0);
	cr_assert_eq(list_state(MSG_DEAD).n, 1);
	cr_assert_eq(stored_total(), 1);
	free(b.p);
}

/* Dead letters record no duplicate keys: after the receiver becomes known,
 * the same message is accepted. */
Test(ingest, dead_letter_records_no_keys)
{
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_DEAD);
	router_free(router);
	router = make_router(UNKNOWN_GLN);
	ingest_set_router(ing, router);
	submit("hospital", b, &o2);
	turn();
	cr_assert_eq(o2.result, INGEST_ACCEPTED, "result %d: %s", o2.result, o2.reason);
	cr_assert_str_eq(o2.endpoint, "other");
	free(b.p);
}

/* ---- REJECTED ---------------------------------------------------------- */

Test(ingest, garbage_is_rejected_and_nothing_stored)
{
	struct buf b = { (uint8_t *)xstrdup("this is not an EDI message\n"), 0 };
	b.n = strlen((char *)b.p);
	struct outcome o;
	submit("hospital", b, &o);
	turn(); /* done may have run already; either way once */
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_neq(o.code, CODEC_OK, "no decoder error code");
	cr_assert_neq(o.error_text[0], '\0');
	cr_assert_neq(o.reason[0], '\0');
	cr_assert_eq(stored_total(), 0);
	cr_assert_eq(nqueued, 0);
	cr_assert_eq(ingest_inflight(ing), 0);
	free(b.p);
}

Test(ingest, truncated_xml_is_rejected)
{
	struct buf full = sample("DIS20_1.xml");
	struct buf b = { full.p, full.n / 2 };
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_neq(o.code, CODEC_OK);
	cr_assert_eq(list_state(MSG_DEAD).n + list_state(MSG_DELIVERED).n, 0);
	cr_assert_eq(ingest_inflight(ing), 0);
	free(full.p);
}

/* A readable envelope with a wrong VersionCode: refused with a receipt
 * (problem_med_version) to the source; the message itself is not stored. */
Test(ingest, wrong_version_is_rejected_with_receipt)
{
	struct buf b = sample_replaced("DIS20_1.xml", "XD2030C", "XD9999C");
	struct outcome o;
	submit("hospital", b, &o);
	cr_assert_eq(o.calls, 0, "reported before its receipt was committed");
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_REJECTED, "result %d", o.result);
	cr_assert_eq(o.code, CODEC_EVERSION);
	cr_assert(strstr(o.reason, "XD9999C") || strstr(o.reason, "VersionCode"), "%s", o.reason);
	cr_assert_eq(list_state(MSG_DEAD).n, 0);
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 1, "only the receipt is stored");
	struct row r = get_row(q.r[0].id);
	cr_assert_str_eq(r.endpoint, "hospital");
	cr_assert_str_eq(r.type, "XCTL01");
	assert_xctl01_to(r.body, r.size, DIS20_SENDER, "problem_med_version");
	assert_golden_receipt(&r, "DIS20_1_bad_version_rejected.xml");
	cr_assert_eq(nqueued, 1);
	cr_assert_eq(queued[0].id, r.id);
	cr_assert_arr_eq(queued[0].body, r.body, r.size);
	cr_assert_eq(ingest_inflight(ing), 0);
	free(r.body);
	free(b.p);
}

/* Decoding fails after the envelope id and sender were read whole: the
 * receipt says syntaksfejl and names the broker as the original receiver. */
Test(ingest, partly_decoded_is_rejected_with_receipt)
{
	struct buf b = load(LOCAL_DATA "/invalid/missing_receiver_ean.xml");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_REJECTED, "result %d", o.result);
	cr_assert_eq(o.code, CODEC_EFIELD);
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 1, "only the receipt is stored");
	struct row r = get_row(q.r[0].id);
	cr_assert_str_eq(r.type, "XCTL01");
	cr_assert_str_eq(r.format, "oioxml");
	cr_assert_str_eq(r.ext, "xml");
	cr_assert_eq(r.nletters, 1);
	assert_golden_receipt(&r, "missing_receiver_ean_rejected.xml");
	cr_assert_eq(nqueued, 1);
	cr_assert_arr_eq(queued[0].body, r.body, r.size);
	free(r.body);
	free(b.p);
}

/* The second letter's receiver (5790000128700) is unknown: every letter
 * of the envelope is echoed in the receipt. */
Test(ingest, unknown_receiver_receipt_lists_every_letter)
{
	struct buf b = load(LOCAL_DATA "/multi_letter.xml");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD, "result %d: %s", o.result, o.reason);
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 1);
	struct row r = get_row(q.r[0].id);
	assert_golden_receipt(&r, "multi_letter_unknown_receiver.xml");
	free(r.body);
	free(b.p);
}

/* "never for a receipt" (ingest.h; medcom.md: never acknowledge a receipt):
 * a receipt that is refused (here: a wrong VersionCode on an XCTL03) must
 * not be answered with an XCTL01 either. */
Test(ingest, refused_receipt_gets_no_receipt)
{
	struct buf b = sample_replaced("CTL03_1.xml", "XC0330Q", "XC9999Q");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_REJECTED, "result %d", o.result);
	cr_assert_eq(o.code, CODEC_EVERSION);
	cr_assert_eq(nqueued, 0, "an XCTL01 was queued in answer to a receipt");
	cr_assert_eq(stored_total(), 0, "a receipt to a receipt was stored");
	free(b.p);
}

Test(ingest, size_limit_from_config_is_applied)
{
	struct ingest_config ic = { .limits = { .max_bytes = 500, .max_depth = CODEC_DEFAULT_MAX_DEPTH },
				    .broker_id = BROKER_ID };
	ingest_set_config(ing, &ic);
	struct buf b = sample("DIS20_1.xml"); /* 1510 bytes */
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_eq(o.code, CODEC_ETOOBIG);
	cr_assert_eq(stored_total(), 0);
	free(b.p);
}

/* ---- TEMPFAIL ---------------------------------------------------------- */

static void setup_full(void)
{
	start(1, NULL); /* capped at its initial size: nothing that needs a page fits */
}

TestSuite(ingest_full, .init = setup_full, .fini = teardown, .timeout = 20);

Test(ingest_full, tempfail_and_nothing_stored)
{
	/* 12 KB: needs overflow pages the capped store cannot add */
	struct buf b = sample("XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_TEMPFAIL, "result %d", o.result);
	cr_assert_neq(o.reason[0], '\0');
	cr_assert_eq(stored_total(), 0);
	cr_assert_eq(nqueued, 0);
	cr_assert_eq(ingest_inflight(ing), 0);
	cr_assert_not(commit_healthy(commit));
	/* the source keeps its input and tries again: again a clean TEMPFAIL */
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_TEMPFAIL);
	cr_assert_eq(stored_total(), 0);
	free(b.p);
}

/* A dead letter whose receipt would be committed with it: both fail
 * together, TEMPFAIL, and nothing is queued. */
Test(ingest_full, tempfail_for_dead_letter_and_its_receipt)
{
	struct buf big = sample("XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml");
	struct buf b = replaced(big, "5790002508226", UNKNOWN_GLN, true);
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.result, INGEST_TEMPFAIL, "result %d", o.result);
	cr_assert_eq(stored_total(), 0);
	cr_assert_eq(nqueued, 0, "a receipt was queued although its commit failed");
	cr_assert_eq(ingest_inflight(ing), 0);
	free(big.p);
	free(b.p);
}

/* Per-sender order across a failed commit: B was submitted before A's
 * commit failed, and decoded after. B alone would fit (the store is full
 * only for what needs a new page), but it must not commit ahead of A: it
 * is held back, TEMPFAIL, and its source offers both again in order. */
Test(ingest_full, a_later_message_of_a_source_waits_for_one_that_failed)
{
	struct buf a = sample("XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml");
	struct buf b = sample("DIS20_1.xml");
	struct outcome oa, ob;
	submit("hospital", a, &oa);
	event_base_loop(base, EVLOOP_NONBLOCK); /* A goes to its lane */
	usleep(200 * 1000);                     /* ... and is decoded there */
	submit("hospital", b, &ob);             /* before A's failure is known */
	/* This turn sends B to the lane first, then runs A's completion and its
	 * failed commit; B's completion comes in a later turn. */
	turn();
	cr_assert_eq(oa.result, INGEST_TEMPFAIL, "A: result %d", oa.result);
	cr_assert_eq(ob.result, INGEST_TEMPFAIL, "B committed ahead of A: result %d", ob.result);
	cr_assert(strstr(ob.reason, "earlier message"), "B: %s", ob.reason);
	cr_assert_eq(stored_total(), 0);
	/* offered again after the failure: B alone fits */
	submit("hospital", b, &ob);
	turn();
	cr_assert_eq(ob.result, INGEST_ACCEPTED, "B: result %d (%s)", ob.result, ob.reason);
	cr_assert_eq(stored_total(), 1);
	free(a.p);
	free(b.p);
}

/* ---- reload ------------------------------------------------------------ */

/* A reload (ingest_set_config) between submit and decode: the batch takes
 * the settings in force when it leaves for its lane at the end of the turn,
 * and the receipt row names the broker id its bytes were built with. (Under
 * ASan a dangling broker id is a heap-use-after-free.) */
Test(ingest, reload_between_submit_and_commit_keeps_receipt_consistent)
{
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o;
	submit("hospital", b, &o);
	struct ingest_config ic = { .limits = { .max_bytes = CODEC_DEFAULT_MAX_BYTES,
						.max_depth = CODEC_DEFAULT_MAX_DEPTH },
				    .broker_id = "NEWBROKER" };
	ingest_set_config(ing, &ic);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD);
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 1);
	struct row r = get_row(q.r[0].id);
	static struct codec_envelope env;
	struct codec_error err = { 0 };
	cr_assert_eq(codec_decode_any(r.body, r.size, NULL, &env, &err), 0, "%s", err.text);
	cr_assert_str_eq(env.letters[0].sender, "NEWBROKER");
	cr_assert_str_eq(r.sender, "NEWBROKER",
			 "receipt row's sender is \"%s\", its bytes say NEWBROKER", r.sender);
	free(r.body);
	free(b.p);
}

/* ---- wrappings, FHIR, identity across wrappings (issue 10) ------------- */

#define VANS_SAMPLE "../shared/medcom-samples/vans-sbdh/XDIS18_regionh_VANSEnvelope.xml"
#define SBDH_SAMPLE "../shared/medcom-samples/vans-sbdh/XDIS20_regionh_SBDH.xml"
#define FHIR_JSON "../shared/medcom-samples/fhir/HN_STIN_admit-inpatient_Bundle-a5e5b880.json"
#define FHIR_SENDER "5790000209354"
#define FHIR_RECEIVER "5790001348120"
#define BROKER_GLN "5790000000000"

/* The payload of a Region H XDIS20 SBDH sent bare: the same letter. */
static struct buf sbdh_payload(void)
{
	struct buf s = load(SBDH_SAMPLE);
	const char *start = strstr((char *)s.p, "<BinaryContent");
	start = strchr(start, '>') + 1;
	const char *end = strstr(start, "</BinaryContent>");
	size_t bad;
	struct buf out = { xmalloc(base64_decoded_size(start, (size_t)(end - start)) + 1), 0 };
	long n = base64_decode(start, (size_t)(end - start), out.p, &bad);
	cr_assert_geq(n, 0);
	out.n = (size_t)n;
	free(s.p);
	return out;
}

static void use_gln(const char *gln)
{
	struct ingest_config ic = { .limits = { .max_bytes = CODEC_DEFAULT_MAX_BYTES,
						.max_depth = CODEC_DEFAULT_MAX_DEPTH },
				    .broker_id = BROKER_ID, .broker_gln = gln };
	ingest_set_config(ing, &ic);
}

Test(ingest, a_vans_envelope_is_stored_and_queued_as_received)
{
	struct buf b = load(VANS_SAMPLE);
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_ACCEPTED, "%d %s", o.result, o.reason);
	cr_assert_str_eq(o.endpoint, "municipality");
	cr_assert_eq(nqueued, 1);
	cr_assert_arr_eq(queued[0].body, b.p, b.n, "delivered wrapping and all");
	cr_assert_str_eq(queued[0].ext, "xml");
	struct row r = get_row(o.id);
	cr_assert_str_eq(r.format, "vans");
	cr_assert_str_eq(r.type, "XDIS18", "the payload's type for operators");
	cr_assert_str_eq(r.envelope_id, "EPIC394319568");
	free(r.body);
	free(b.p);
}

Test(ingest, the_same_letter_bare_then_in_sbdh_is_delivered_once)
{
	struct buf bare = sbdh_payload(), wrapped = load(SBDH_SAMPLE);
	struct outcome o1, o2;
	submit("hospital", bare, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED, "%d %s", o1.result, o1.reason);
	submit("hospital", wrapped, &o2);
	turn();
	cr_assert_eq(o2.result, INGEST_DUPLICATE, "%d %s", o2.result, o2.reason);
	cr_assert_eq(o2.id, o1.id);
	cr_assert_eq(nqueued, 1, "delivered once");
	bool same = false;
	int64_t by = 0;
	struct store_txid t = { "sbdh", "5790002515200", "5790002515200:EPIC394363364", NULL, 0 };
	cr_assert_eq(store_txid_lookup(store, &t, &same, &by), 1, "the SBDH id is recorded");
	cr_assert_eq(by, o1.id);
	free(bare.p);
	free(wrapped.p);
}

Test(ingest, a_wrapper_id_reused_for_other_content_is_dead)
{
	struct buf b = load(VANS_SAMPLE);
	struct outcome o1, o2;
	submit("hospital", b, &o1);
	turn();
	cr_assert_eq(o1.result, INGEST_ACCEPTED);
	/* the same EnvelopeIdentifier around another payload (another letter) */
	struct buf x21 = load("../shared/medcom-samples/vans-sbdh/XDIS21_regionh_VANSEnvelope.xml");
	struct buf reuse = replaced(x21, "<EnvelopeIdentifier>EPIC394310891",
				    "<EnvelopeIdentifier>EPIC394319568", false);
	submit("hospital", reuse, &o2);
	turn();
	cr_assert_eq(o2.result, INGEST_DEAD, "%d %s", o2.result, o2.reason);
	cr_assert(strstr(o2.reason, "transmission id reused for other content: vans EPIC394319568"),
		  "%s", o2.reason);
	cr_assert_eq(nqueued, 1, "not delivered");
	free(b.p);
	free(x21.p);
	free(reuse.p);
}

Test(ingest, a_vans_id_receiver_is_routed_by_its_letters)
{
	struct buf b = load(VANS_SAMPLE);
	struct buf u = replaced(b, "<ReceiverID EndPointType=\"EAN\">5790002508226",
				"<ReceiverID EndPointType=\"VANS\">SOMEVANSID", false);
	struct outcome o;
	submit("hospital", u, &o);
	turn();
	cr_assert_eq(o.result, INGEST_ACCEPTED, "%d %s", o.result, o.reason);
	cr_assert_str_eq(o.endpoint, "municipality");
	free(b.p);
	free(u.p);
}

Test(ingest, unknown_receiver_receipts_come_in_the_senders_wrapping)
{
	router_free(router);
	struct config cfg = { 0 };
	add_endpoint(&cfg, "hospital", DIS20_SENDER, "5790002515200");
	/* two Region H gateways that relay for it (their own GLNs are made up) */
	static char *regionh[] = { "5790002515200" };
	add_endpoint(&cfg, "regionh-vans", "5790000000012", NULL);
	add_endpoint(&cfg, "regionh-sbdh", "5790000000029", NULL);
	for (size_t i = 1; i < 3; i++) {
		cfg.endpoints[i].may_send_for = regionh;
		cfg.endpoints[i].nmay_send_for = 1;
	}
	router = router_new(&cfg); /* nobody owns 5790002508226 now */
	for (size_t i = 0; i < cfg.nendpoints; i++)
		free(cfg.endpoints[i].gln);
	free(cfg.endpoints);
	ingest_set_router(ing, router);
	use_gln(BROKER_GLN);
	struct buf v = load(VANS_SAMPLE), s = load(SBDH_SAMPLE);
	struct outcome ov, os;
	submit("regionh-vans", v, &ov);
	submit("regionh-sbdh", s, &os);
	turn();
	cr_assert_eq(ov.result, INGEST_DEAD);
	cr_assert_eq(os.result, INGEST_DEAD);
	cr_assert_eq(nqueued, 2, "one receipt each");
	/* each source decodes on its own lane: find each receipt by its endpoint */
	size_t iv = strcmp(queued[0].endpoint, "regionh-vans") == 0 ? 0 : 1, is = 1 - iv;
	cr_assert_str_eq(queued[iv].endpoint, "regionh-vans", "to the source, not a looked-up GLN");
	cr_assert_not_null(memmem(queued[iv].body, queued[iv].size, "<NegativeVans>", 14));
	cr_assert_not_null(memmem(queued[iv].body, queued[iv].size,
				  "<SenderID EndPointType=\"EAN\">" BROKER_GLN, 42));
	cr_assert_str_eq(queued[is].endpoint, "regionh-sbdh");
	cr_assert_not_null(memmem(queued[is].body, queued[is].size, "<StandardBusinessDocument", 25));
	struct rows q = list_state(MSG_QUEUED);
	cr_assert_eq(q.n, 2);
	size_t rv = strcmp(q.r[0].format, "vans") == 0 ? 0 : 1, rs = 1 - rv;
	cr_assert_str_eq(q.r[rv].format, "vans");
	cr_assert_str_eq(q.r[rv].type, "NegativeVans");
	cr_assert_str_eq(q.r[rs].format, "sbdh");
	cr_assert_str_eq(q.r[rs].type, "XCTL01");
	free(v.p);
	free(s.p);
}

Test(ingest, fhir_json_is_routed_and_refused_in_json)
{
	struct buf j = load(FHIR_JSON);
	struct outcome o;
	use_gln(BROKER_GLN);
	submit("hospital", j, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD, "its receiver is nobody's here");
	cr_assert_eq(nqueued, 1);
	cr_assert_str_eq(queued[0].ext, "json");
	struct codec_envelope *ack = xmalloc(sizeof(*ack));
	struct codec_error err;
	cr_assert_eq(codec_decode_any(queued[0].body, queued[0].size, NULL, ack, &err), 0, "%s",
		     err.text);
	cr_assert(ack->is_receipt);
	cr_assert_str_eq(ack->letters[0].receiver, FHIR_SENDER);
	cr_assert_str_eq(ack->letters[0].sender, BROKER_GLN);
	cr_assert_not_null(memmem(queued[0].body, queued[0].size, "MSG_Receiver_Identifier_UNKNOWN", 31));
	free(ack);
	router_free(router);
	router = make_router(FHIR_RECEIVER);
	ingest_set_router(ing, router);
	struct buf resent = replaced(j, "a5e5b880-c087-4055-b9ec-99108695f81d",
				     "b5e5b880-c087-4055-b9ec-99108695f81d", false);
	submit("hospital", resent, &o);
	turn();
	cr_assert_eq(o.result, INGEST_ACCEPTED, "%d %s", o.result, o.reason);
	cr_assert_str_eq(o.endpoint, "other");
	cr_assert_str_eq(queued[1].ext, "json");
	cr_assert_arr_eq(queued[1].body, resent.p, resent.n);
	free(j.p);
	free(resent.p);
}

Test(ingest, a_wrapping_with_a_broken_payload_is_rejected)
{
	struct buf s = load(SBDH_SAMPLE);
	struct buf broken = replaced(s, "encoding=\"ISO-8859-1\">PEV", "encoding=\"ISO-8859-1\">*EV",
				     false);
	struct outcome o;
	submit("hospital", broken, &o);
	turn();
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_eq(o.code, CODEC_ESYNTAX);
	cr_assert(strstr(o.error_text, "SBDH BinaryContent is not base64"), "%s", o.error_text);
	cr_assert_eq(stored_total(), 0, "SBDH has no receipt of its own for an unknown payload");
	struct buf v = load(VANS_SAMPLE);
	struct buf vb = replaced(v, "<Data>PG5z", "<Data>*G5z", false);
	submit("hospital", vb, &o);
	turn();
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_eq(nqueued, 1, "VANS answers a broken payload itself");
	cr_assert_not_null(memmem(queued[0].body, queued[0].size, "<NegativeVans>", 14));
	free(s.p);
	free(broken.p);
	free(v.p);
	free(vb.p);
}

/* ---- sender binding (issue 8) ------------------------------------------- */

/* The municipality writes a letter in the hospital's name: refused as
 * spoofing, nothing stored, no receipt (it would go to the hospital, which
 * sent nothing), and the letter id is not claimed: the hospital's real
 * letter with that id is accepted afterwards. */
Test(ingest, a_spoofed_sender_is_forbidden_and_claims_nothing)
{
	struct buf b = sample("DIS20_1.xml"); /* from DIS20_SENDER, the hospital's GLN */
	struct outcome spoof, real;
	submit("municipality", b, &spoof);
	turn();
	cr_assert_eq(spoof.result, INGEST_FORBIDDEN, "result %d", spoof.result);
	cr_assert(strstr(spoof.reason, "sender not owned by this endpoint"), "%s", spoof.reason);
	cr_assert(strstr(spoof.reason, DIS20_SENDER), "%s", spoof.reason);
	cr_assert_eq(nqueued, 0, "something was queued for a spoofed message");
	cr_assert_eq(list_state(MSG_QUEUED).n, 0);
	cr_assert_eq(list_state(MSG_DEAD).n, 0);
	submit("hospital", b, &real);
	turn();
	cr_assert_eq(real.result, INGEST_ACCEPTED, "the real letter was taken for a duplicate: %d",
		     real.result);
	cr_assert_eq(nqueued, 1);
	cr_assert_str_eq(queued[0].endpoint, "municipality");
	free(b.p);
}

/* A refused message from a foreign sender gets no receipt either. */
Test(ingest, a_broken_message_in_a_foreign_name_gets_no_receipt)
{
	struct buf good = sample("DIS20_1.xml");
	struct buf b = replaced(good, "XD2030C", "XD9999C", false); /* readable, refused */
	struct outcome o;
	submit("municipality", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_FORBIDDEN, "result %d", o.result);
	cr_assert_eq(nqueued, 0, "a receipt went to the named sender");
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_REJECTED, "from its rightful sender it is answered");
	cr_assert_eq(nqueued, 1);
	free(good.p);
	free(b.p);
}

/* A wrapping names its sender too: a VANS SenderID (EAN) the source does
 * not own is refused even when the letter inside is its own. */
Test(ingest, a_wrapping_sender_is_bound_as_well)
{
	struct buf v = load(VANS_SAMPLE); /* VANS and letter from 5790002515200 */
	struct buf spoof = replaced(v, "<SenderID EndPointType=\"EAN\">5790002515200",
				    "<SenderID EndPointType=\"EAN\">" DIS20_RECEIVER, false);
	cr_assert_neq(spoof.n, 0);
	struct outcome o;
	submit("hospital", spoof, &o); /* hospital owns the letter's sender, not the VANS's */
	turn();
	cr_assert_eq(o.result, INGEST_FORBIDDEN, "result %d", o.result);
	cr_assert(strstr(o.reason, DIS20_RECEIVER), "%s", o.reason);
	free(v.p);
	free(spoof.p);
}

/* Every format names its sender where issue 8 says, and each is bound: an
 * EDIFACT UNB sender, a FHIR MessageHeader.sender's GLN and an SBDH
 * Sender/Identifier (without its "0088:" prefix) the municipality does not
 * own are refused; from their owner the same bytes are taken. */
Test(ingest, every_formats_sender_is_bound)
{
	const struct {
		const char *path, *sender;
	} c[] = {
		{ "../shared/medcom-samples/edifact/DIS20_1.edi", DIS20_SENDER },
		{ FHIR_JSON, FHIR_SENDER },
	};
	router_free(router);
	router = make_router(FHIR_RECEIVER); /* the FHIR letter's receiver: "other" */
	ingest_set_router(ing, router);
	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		struct buf b = load(c[i].path);
		struct outcome spoof = { 0 }, real = { 0 };
		submit("municipality", b, &spoof);
		turn();
		cr_assert_eq(spoof.result, INGEST_FORBIDDEN, "%s: result %d", c[i].path,
			     spoof.result);
		cr_assert(strstr(spoof.reason, c[i].sender), "%s: %s", c[i].path, spoof.reason);
		submit("hospital", b, &real);
		turn();
		cr_assert_eq(real.result, INGEST_ACCEPTED, "%s: result %d %s", c[i].path,
			     real.result, real.reason);
		free(b.p);
	}
	cr_assert_eq(nqueued, ARRAY_SIZE(c), "only the owners' messages were queued");

	struct buf s = load(SBDH_SAMPLE); /* SBDH and letter from 5790002515200 */
	struct buf spoof = replaced(s, "0088:5790002515200", "0088:" DIS20_RECEIVER, false);
	struct outcome o;
	submit("hospital", spoof, &o); /* hospital owns the letter's sender, not the SBDH's */
	turn();
	cr_assert_eq(o.result, INGEST_FORBIDDEN, "result %d", o.result);
	cr_assert(strstr(o.reason, "may not send as " DIS20_RECEIVER), "%s", o.reason);
	free(s.p);
	free(spoof.p);
}

/* ---- back-pressure and submissions without receipts (issue 9) ---------- */

static const char *full_endpoint; /* the queue the test says is full */

static bool full_for(void *ctx, const char *endpoint, size_t mine, size_t total)
{
	return full_endpoint && strcmp(endpoint, full_endpoint) == 0;
}

/* A mark of mark_bytes on every queue, against what the test has queued
 * (nothing: the queues are the test's) plus what ingest says is on its way. */
static size_t mark_bytes;

static bool full_at_mark(void *ctx, const char *endpoint, size_t mine, size_t total)
{
	return mine > mark_bytes;
}

/* A message for a full queue is BUSY: nothing stored, nothing queued; the
 * next one for that endpoint is taken once there is room again. */
Test(ingest, a_full_queue_makes_its_messages_busy)
{
	ingest_set_backpressure(ing, full_for, NULL);
	full_endpoint = "municipality";
	struct buf b = sample("DIS20_1.xml");
	struct outcome o;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_BUSY, "result %d", o.result);
	cr_assert(strstr(o.reason, "municipality"), "%s", o.reason);
	cr_assert_eq(stored_total(), 0);
	cr_assert_eq(nqueued, 0);
	full_endpoint = NULL;
	submit("hospital", b, &o);
	turn();
	cr_assert_eq(o.result, INGEST_ACCEPTED, "not a duplicate of the busy one: %d", o.result);
	ingest_set_backpressure(ing, NULL, NULL);
	free(b.p);
}

/* Messages decoded in one batch are counted against the mark together:
 * the mark holds even before any of them reaches its queue. */
Test(ingest, one_batch_cannot_pass_the_mark_together)
{
	ingest_set_backpressure(ing, full_at_mark, NULL);
	struct buf b = sample("DIS20_1.xml");
	mark_bytes = 2 * b.n + b.n / 2; /* room for two */
	struct outcome o[4];
	for (int i = 0; i < 4; i++) {
		char env[64], letter[64];
		snprintf(env, sizeof(env), "<Identifier>1234567%02d</Identifier>", i);
		snprintf(letter, sizeof(letter), "<Identifier>246810%02d</Identifier>", i);
		struct buf e = replaced(b, "<Identifier>123456789</Identifier>", env, false);
		struct buf m = replaced(e, "<Identifier>24681012</Identifier>", letter, false);
		submit("hospital", m, &o[i]);
		free(e.p);
		free(m.p);
	}
	turn();
	cr_assert_eq(o[0].result, INGEST_ACCEPTED, "result %d", o[0].result);
	cr_assert_eq(o[1].result, INGEST_ACCEPTED, "result %d", o[1].result);
	cr_assert_eq(o[2].result, INGEST_BUSY, "the batch passed the mark: %d", o[2].result);
	cr_assert_eq(o[3].result, INGEST_BUSY, "result %d", o[3].result);
	/* committed, they are the queue's to count: ingest holds nothing back */
	submit("hospital", b, &o[0]);
	turn();
	cr_assert_eq(o[0].result, INGEST_ACCEPTED, "ingest still counts committed bytes: %d",
		     o[0].result);
	ingest_set_backpressure(ing, NULL, NULL);
	free(b.p);
}

/* A source that answers refusals itself asks for no receipt. */
Test(ingest, no_receipt_when_the_source_answers_itself)
{
	struct buf b = sample_replaced("DIS20_1.xml", DIS20_RECEIVER, UNKNOWN_GLN);
	struct outcome o;
	memset(&o, 0, sizeof(o));
	ingest_submit(ing, "hospital", dup_bytes(b), b.n, INGEST_NO_RECEIPT, on_done, &o);
	turn();
	cr_assert_eq(o.result, INGEST_DEAD, "result %d", o.result);
	cr_assert_eq(nqueued, 0, "a receipt was queued");
	cr_assert_eq(list_state(MSG_QUEUED).n, 0);
	free(b.p);
}

/*
 * test_ingest_acks.c - what issue 11 added to the accept path (ingest.c):
 * a receiver's `accepts`, a sender's `xsd` in each mode, acknowledgement
 * tracking through the commit, and the stored acknowledgement sent again
 * for a duplicate. The real codecs, router, group commit and a SQLite
 * store in a fresh folder, the schemas of data/xsd/oioxml and the MedCom
 * samples (../shared/medcom-samples/oioxml), rewritten in memory so that a
 * letter and its receipt name each other. Run from the repository root.
 */
#include "base/clock.h"
#include "base/lanes.h"
#include "base/log.h"
#include "codecs/codec.h"
#include "codecs/xsd.h"
#include "store/commit.h"
#include "conf/config.h"
#include "accept/ingest.h"
#include "accept/router.h"
#include "store/store.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define SAMPLES "../shared/medcom-samples/oioxml"
#define HOSPITAL_GLN "5790000143054"   /* DIS20_1.xml's sender */
#define KOMMUNE_GLN "5790000143055"    /* its receiver */
#define REGIONH_HOSPITAL "5790002515200"
#define REGIONH_KOMMUNE "5790002508226"

static char dir[PATH_MAX];
static struct event_base *base;
static struct store *store;
static struct commit *commit;
static struct router *router;
static struct ingest *ing;
static struct lanes *pool;
static struct codec_schemas *schemas;

struct queued {
	char endpoint[64];
	int64_t id;
	uint8_t *body;
	size_t size;
};

static struct queued queued[16];
static size_t nqueued;

static void on_queued(void *ctx, const char *endpoint, int64_t id, uint8_t *body, size_t size,
		      const char *ext, const char *type, int64_t received_at)
{
	cr_assert_lt(nqueued, ARRAY_SIZE(queued));
	struct queued *q = &queued[nqueued++];
	str_copy(q->endpoint, endpoint, sizeof(q->endpoint));
	q->id = id;
	q->body = body;
	q->size = size;
}

struct outcome {
	int calls;
	enum ingest_result result;
	int64_t id;
	char reason[512];
	enum codec_errcode code;
};

static void on_done(const struct ingest_outcome *o, void *arg)
{
	struct outcome *out = arg;
	out->calls++;
	out->result = o->result;
	out->id = o->id;
	str_copy(out->reason, o->reason ? o->reason : "", sizeof(out->reason));
	out->code = o->error ? o->error->code : CODEC_OK;
}

/* ---- setup: endpoints with accepts and xsd as a test needs ---------------- */

struct rules {
	char **accepts;      /* of municipality */
	size_t naccepts;
	enum xsd_mode xsd;   /* of hospital */
};

static void add_endpoint(struct config *cfg, const char *name, const char *g1, const char *g2,
			 char **may, size_t nmay)
{
	cfg->endpoints = xrealloc(cfg->endpoints, (cfg->nendpoints + 1) * sizeof(*cfg->endpoints));
	struct endpoint_conf *ep = &cfg->endpoints[cfg->nendpoints++];
	*ep = (struct endpoint_conf){ .name = (char *)name, .may_send_for = may, .nmay_send_for = nmay };
	ep->gln = xcalloc(2, sizeof(char *));
	ep->gln[ep->ngln++] = (char *)g1;
	if (g2)
		ep->gln[ep->ngln++] = (char *)g2;
}

static char *kommune_glns[] = { KOMMUNE_GLN };

/* hospital and municipality as the samples need them; "other" may send in
 * the municipality's name (a relay) but is not where letters go. */
static void set_rules(const struct rules *ru)
{
	struct config cfg = { 0 };
	add_endpoint(&cfg, "hospital", HOSPITAL_GLN, REGIONH_HOSPITAL, NULL, 0);
	add_endpoint(&cfg, "municipality", KOMMUNE_GLN, REGIONH_KOMMUNE, NULL, 0);
	add_endpoint(&cfg, "other", "5790000999993", NULL, kommune_glns, 1);
	cfg.endpoints[0].xsd = ru->xsd;
	cfg.endpoints[1].accepts = ru->accepts;
	cfg.endpoints[1].naccepts = ru->naccepts;
	router_free(router);
	router = router_new(&cfg);
	for (size_t i = 0; i < cfg.nendpoints; i++)
		free(cfg.endpoints[i].gln);
	free(cfg.endpoints);
	ingest_set_router(ing, router);
}

static void setup(void)
{
	log_setup(getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT, 0);
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_ingest_acks.XXXXXX");
	base = event_base_new();
	char err[512] = "";
	store = store_open("sqlite", dir, NULL, err, sizeof(err));
	cr_assert_not_null(store, "%s", err);
	commit = commit_new(base, store);
	schemas = codec_schemas_load("data/xsd/oioxml", err, sizeof(err));
	cr_assert_not_null(schemas, "%s", err);
	nqueued = 0;
	router = NULL;
	pool = lanes_new(base, 0);
	ing = ingest_new(base, pool, commit, on_queued, NULL);
	ingest_set_store(ing, store);
	struct ingest_config ic = { .limits = { .max_bytes = CODEC_DEFAULT_MAX_BYTES,
						.max_depth = CODEC_DEFAULT_MAX_DEPTH },
				    .schemas = schemas, .broker_id = "EDIBROKER" };
	ingest_set_config(ing, &ic);
	set_rules(&(struct rules){ 0 });
}

static void teardown(void)
{
	commit_free(commit);
	cr_assert_eq(lanes_wait(pool, 5000), 0);
	lanes_free(pool);
	ingest_free(ing);
	router_free(router);
	codec_schemas_unref(schemas);
	store_close(store);
	event_base_free(base);
	for (size_t i = 0; i < nqueued; i++)
		free(queued[i].body);
	testutil_rm_rf(dir);
}

TestSuite(ingest_acks, .init = setup, .fini = teardown, .timeout = 30);

/* ---- inputs ----------------------------------------------------------------- */

/* The sample with each pair (from, to) of edits replaced everywhere it
 * occurs. */
static char *edited(const char *name, const char *const *edits, size_t n)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", SAMPLES, name);
	char *s = testutil_read_file(path, NULL);
	for (size_t i = 0; i + 1 < n; i += 2) {
		char *at; /* a receipt may lack some: each sample names what it has */
		while ((at = strstr(s, edits[i]))) {
			char *t = xasprintf("%.*s%s%s", (int)(at - s), s, edits[i + 1],
					    at + strlen(edits[i]));
			free(s);
			s = t;
		}
	}
	return s;
}

/* DIS20_1.xml asking for a positive receipt, in envelope env. */
static char *dis20(const char *env)
{
	_cleanup_free_ char *to = xasprintf(">%s<", env);
	const char *e[] = { "minuspositivkvitt", "pluspositivkvitt", ">123456789<", to };
	return edited("DIS20_1.xml", e, ARRAY_SIZE(e));
}

/* The municipality's XCTL03 (or XCTL02) of DIS20_1's letter 24681012 in
 * envelope 123456789, back to the hospital. */
static char *receipt(const char *file, const char *own_env)
{
	_cleanup_free_ char *to = xasprintf(">%s<", own_env);
	const char *e[] = { "5790000120420", KOMMUNE_GLN, "5790000181872", HOSPITAL_GLN,
			    "MEDREF01095", "123456789", "1111FRE01095", "24681012",
			    "1111MAN01095", "24681012", ">KuvertNr1234<", to };
	return edited(file, e, ARRAY_SIZE(e));
}

static void submit(const char *source, const char *text, struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	size_t n = strlen(text);
	uint8_t *copy = xmalloc(n + 1);
	memcpy(copy, text, n + 1);
	ingest_submit(ing, source, copy, n, 0, on_done, out);
}

static void turn(void)
{
	int64_t end = clock_mono_ms() + 5000;
	do {
		struct timeval tv = { 0, 2000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	} while (ingest_inflight(ing) > 0 && clock_mono_ms() < end);
	cr_assert_eq(ingest_inflight(ing), 0, "every submission reported");
}

static struct outcome run(const char *source, const char *text)
{
	struct outcome o;
	submit(source, text, &o);
	turn();
	cr_assert_eq(o.calls, 1);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "%s: result %d id %lld reason %s\n", source, o.result,
			(long long)o.id, o.reason);
	return o;
}

struct seen {
	enum msg_state state;
	enum msg_ack ack;
	int64_t ack_msg;
	char source[32], endpoint[32], type[16], envelope[40];
};

static int copy_row(const struct store_msg *m, void *arg)
{
	struct seen *x = arg;
	*x = (struct seen){ .state = m->state, .ack = m->ack, .ack_msg = m->ack_msg };
	str_copy(x->source, m->source ? m->source : "", sizeof(x->source));
	str_copy(x->endpoint, m->endpoint ? m->endpoint : "", sizeof(x->endpoint));
	str_copy(x->type, m->type ? m->type : "", sizeof(x->type));
	str_copy(x->envelope, m->envelope_id ? m->envelope_id : "", sizeof(x->envelope));
	return 0;
}

static struct seen row(int64_t id)
{
	struct seen x = { 0 };
	cr_assert_eq(store_get(store, id, false, copy_row, &x), 1);
	return x;
}

static void mark_delivered(int64_t id)
{
	commit_add_delivered(commit, id);
	cr_assert_eq(commit_flush(commit), 0);
}

static bool body_has(const struct queued *q, const char *s)
{
	return memmem(q->body, q->size, s, strlen(s)) != NULL;
}

/* ---- accepts ---------------------------------------------------------------- */

static char *only_xdis17[] = { "XDIS17" };

Test(ingest_acks, a_type_the_receiver_does_not_take_is_refused_in_the_senders_format)
{
	set_rules(&(struct rules){ .accepts = only_xdis17, .naccepts = 1 });
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_DEAD);
	cr_assert(strstr(o.reason, "endpoint municipality does not take XDIS20 (XD2030C)"), "%s",
		  o.reason);
	cr_assert_eq(nqueued, 1, "only the receipt is queued");
	cr_assert_str_eq(queued[0].endpoint, "hospital");
	cr_assert(body_has(&queued[0], "<StatisticalCode>XCTL01</StatisticalCode>"));
	cr_assert(body_has(&queued[0], "<RefuseCode>problem_med_version</RefuseCode>"));
	cr_assert(body_has(&queued[0], "<OriginalEnvelopeIdentifier>ENV1<"));
	cr_assert_eq(row(o.id).state, MSG_DEAD);
}

static char *by_version[] = { "XDIS17", "XDIS20:XD2030C" };
static char *wrong_version[] = { "XDIS20:XD2099C" };

Test(ingest_acks, accepts_may_name_the_version)
{
	set_rules(&(struct rules){ .accepts = by_version, .naccepts = 2 });
	_cleanup_free_ char *m = dis20("ENV1");
	cr_assert_eq(run("hospital", m).result, INGEST_ACCEPTED);
	set_rules(&(struct rules){ .accepts = wrong_version, .naccepts = 1 });
	_cleanup_free_ char *m2 = dis20("ENV2");
	const char *e[] = { "24681012", "24681013" };
	_cleanup_free_ char *m3 = edited("DIS20_1.xml", e, 2);
	struct outcome o = run("hospital", m3);
	cr_assert_eq(o.result, INGEST_DEAD, "%s", o.reason);
}

static char *only_xdis14[] = { "XDIS14" };

Test(ingest_acks, receipts_pass_whatever_accepts_lists)
{
	set_rules(&(struct rules){ .accepts = only_xdis14, .naccepts = 1 });
	/* the municipality's receipt goes to the hospital, which has no list */
	_cleanup_free_ char *r = receipt("CTL03_1.xml", "R1");
	cr_assert_eq(run("municipality", r).result, INGEST_ACCEPTED);
	/* a receipt to the municipality passes its list */
	const char *e[] = { "5790000120420", HOSPITAL_GLN, "5790000181872", KOMMUNE_GLN };
	_cleanup_free_ char *back = edited("CTL03_1.xml", e, ARRAY_SIZE(e));
	cr_assert_eq(run("hospital", back).result, INGEST_ACCEPTED);
}

/* ---- xsd ---------------------------------------------------------------------- */

static char *invalid_dis20(void)
{
	const char *e[] = { "<CivilRegistrationNumber>2505544849<",
			    "<CivilRegistrationNumber>25055448XX<" };
	return edited("DIS20_1.xml", e, 2);
}

Test(ingest_acks, xsd_off_checks_nothing)
{
	_cleanup_free_ char *m = invalid_dis20();
	cr_assert_eq(run("hospital", m).result, INGEST_ACCEPTED);
}

Test(ingest_acks, xsd_warn_accepts_what_does_not_validate)
{
	set_rules(&(struct rules){ .xsd = XSD_WARN });
	_cleanup_free_ char *m = invalid_dis20();
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_ACCEPTED);
	cr_assert_eq(nqueued, 1);
	cr_assert_str_eq(queued[0].endpoint, "municipality");
}

Test(ingest_acks, xsd_enforce_refuses_it_with_a_negative_receipt)
{
	set_rules(&(struct rules){ .xsd = XSD_ENFORCE });
	_cleanup_free_ char *m = invalid_dis20();
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_REJECTED);
	cr_assert_eq(o.code, CODEC_ESCHEMA);
	cr_assert(strstr(o.reason, "element CivilRegistrationNumber"), "%s", o.reason);
	cr_assert_null(strstr(o.reason, "25055448"), "no patient data");
	cr_assert_eq(nqueued, 1, "the receipt");
	cr_assert_str_eq(queued[0].endpoint, "hospital");
	cr_assert(body_has(&queued[0], "<RefuseCode>syntaksfejl</RefuseCode>"));
	cr_assert(body_has(&queued[0], "element CivilRegistrationNumber"));
	/* a valid one passes */
	_cleanup_free_ char *ok = dis20("ENV9");
	cr_assert_eq(run("hospital", ok).result, INGEST_ACCEPTED);
}

Test(ingest_acks, xsd_enforce_passes_a_namespace_without_a_schema)
{
	set_rules(&(struct rules){ .xsd = XSD_ENFORCE });
	_cleanup_free_ char *path = xasprintf("%s/XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml",
					      SAMPLES);
	_cleanup_free_ char *m = testutil_read_file(path, NULL);
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_ACCEPTED, "%s", o.reason);
}

/* ---- tracking ------------------------------------------------------------------- */

Test(ingest_acks, pending_awaiting_acknowledged)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_ACCEPTED);
	cr_assert_eq(row(o.id).ack, ACK_PENDING);
	mark_delivered(o.id);
	cr_assert_eq(row(o.id).ack, ACK_AWAITING);
	_cleanup_free_ char *r = receipt("CTL03_1.xml", "R1");
	struct outcome a = run("municipality", r);
	cr_assert_eq(a.result, INGEST_ACCEPTED);
	cr_assert_str_eq(row(a.id).endpoint, "hospital", "routed back like any message");
	struct seen t = row(o.id);
	cr_assert_eq(t.ack, ACK_ACKNOWLEDGED);
	cr_assert_eq(t.ack_msg, a.id);
}

Test(ingest_acks, negative_receipt)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	mark_delivered(o.id);
	_cleanup_free_ char *r = receipt("CTL02_1.xml", "R1");
	struct outcome a = run("municipality", r);
	cr_assert_eq(a.result, INGEST_ACCEPTED);
	cr_assert_eq(row(o.id).ack, ACK_NEGATIVE);
}

Test(ingest_acks, a_message_that_asks_for_none_is_not_tracked)
{
	_cleanup_free_ char *path = xasprintf("%s/DIS20_1.xml", SAMPLES); /* minuspositivkvitt */
	_cleanup_free_ char *m = testutil_read_file(path, NULL);
	struct outcome o = run("hospital", m);
	cr_assert_eq(o.result, INGEST_ACCEPTED);
	cr_assert_eq(row(o.id).ack, ACK_NONE);
}

Test(ingest_acks, an_acknowledgement_from_another_endpoint_changes_nothing)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	mark_delivered(o.id);
	_cleanup_free_ char *r = receipt("CTL03_1.xml", "R1");
	struct outcome a = run("other", r); /* it may send as the municipality, but got nothing */
	cr_assert_eq(a.result, INGEST_ACCEPTED);
	cr_assert_eq(row(o.id).ack, ACK_AWAITING);
}

/* ---- a duplicate after a lost acknowledgement ------------------------------------ */

Test(ingest_acks, a_duplicate_gets_the_stored_acknowledgement_again)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	mark_delivered(o.id);
	_cleanup_free_ char *r = receipt("CTL03_1.xml", "R1");
	struct outcome a = run("municipality", r);
	cr_assert_eq(nqueued, 2); /* the letter to the municipality, the receipt to the hospital */
	/* the hospital never got it: it sends the letter again, in a new envelope */
	_cleanup_free_ char *again = dis20("ENV1B");
	struct outcome d = run("hospital", again);
	cr_assert_eq(d.result, INGEST_DUPLICATE);
	cr_assert_eq(d.id, o.id);
	cr_assert_eq(nqueued, 3, "the acknowledgement, sent again");
	const struct queued *q = &queued[2];
	cr_assert_str_eq(q->endpoint, "hospital");
	/* the same content but a new Envelope/Identifier */
	cr_assert_eq(q->size, strlen(r) - strlen("R1") + strlen(row(q->id).envelope));
	cr_assert_null(memmem(q->body, q->size, "<Identifier>R1<", 15));
	cr_assert(body_has(q, "<OriginalLetterIdentifier>24681012<"));
	cr_assert(body_has(q, "<StatisticalCode>XCTL03<"));
	struct seen s = row(q->id);
	cr_assert_str_eq(s.source, "(broker)");
	cr_assert_str_eq(s.type, "XCTL03");
	cr_assert_eq(strncmp(s.envelope, "EB", 2), 0, "%s", s.envelope);
	cr_assert_eq(row(o.id).ack_msg, a.id, "the first acknowledgement stays the one");
	/* and once more: another fresh id */
	_cleanup_free_ char *third = dis20("ENV1C");
	cr_assert_eq(run("hospital", third).result, INGEST_DUPLICATE);
	cr_assert_eq(nqueued, 4);
	cr_assert_str_neq(row(queued[3].id).envelope, s.envelope);
}

Test(ingest_acks, a_duplicate_without_an_acknowledgement_is_only_dropped)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	mark_delivered(o.id);
	_cleanup_free_ char *again = dis20("ENV1B");
	cr_assert_eq(run("hospital", again).result, INGEST_DUPLICATE);
	cr_assert_eq(nqueued, 1, "nothing sent back");
}

Test(ingest_acks, a_duplicate_whose_acknowledgement_body_is_gone_is_dropped)
{
	_cleanup_free_ char *m = dis20("ENV1");
	struct outcome o = run("hospital", m);
	mark_delivered(o.id);
	_cleanup_free_ char *r = receipt("CTL03_1.xml", "R1");
	struct outcome a = run("municipality", r);
	/* retention has dropped the delivered acknowledgement's body */
	_cleanup_free_ char *db = xasprintf("%s/edibroker.db", dir);
	_cleanup_free_ char *sql = xasprintf("DELETE FROM bodies WHERE id = %lld", (long long)a.id);
	testutil_sql_exec(db, sql);
	_cleanup_free_ char *again = dis20("ENV1B");
	cr_assert_eq(run("hospital", again).result, INGEST_DUPLICATE);
	cr_assert_eq(nqueued, 2, "nothing more queued");
}

/*
 * ingest.c - decode, route and commit one inbound message, then report.
 *
 * Decoding never runs on the event loop: the messages a source submits in
 * one loop turn go, as one batch, to that source's decode lane (one per
 * source endpoint, over the shared pool), where each is decoded under the
 * codec limits and time budget, its sender checked against what the source
 * may send as, routed with the router it started with (reference counted,
 * so a reload does not pull it away) and, when one is due, answered with a
 * negative receipt. Back on the loop the batch goes to the group commit in
 * submission order. A message that costs too much to decode costs only its
 * own source, and the loop, the watchdog and every other source go on.
 *
 * Sender binding: a message is accepted from an endpoint only if every
 * sender it names (every letter's, and a wrapping's EAN sender) is one the
 * endpoint owns or may send for. Otherwise it is FORBIDDEN: nothing is
 * stored, no receipt is sent (it would go to an organisation that did not
 * send it), and a security event is logged. This also keeps one endpoint
 * from pre-claiming another's letter ids in the duplicate register.
 *
 * Each submitted message becomes an item owning its bytes and a compact
 * copy of the envelope fields the store needs (ids, GLNs, letter keys).
 * The item's store_new goes to the group commit; a negative receipt, when
 * one is due, is a second store_new committed in the same transaction. The
 * receipt comes from the codec that read the message (codec_refuse), in
 * that message's own format: this file says only why it refuses, and
 * brings the broker's id, a fresh id and the local time.
 * After the commit the item reports to its source and hands the bytes of a
 * queued message to the delivery side (ownership moves, no copy).
 *
 * What a receiver takes (the router's ROUTE_TYPE) is a dead letter with a
 * negative receipt, like an unknown receiver. Schema validation rides on
 * the decode (the limits carry the schemas when the source's xsd asks),
 * so it costs no second parse and never runs on the loop; its verdict is
 * logged on the loop, and under enforce an invalid message is rejected.
 *
 * Acknowledgements: the item hands the store what the message asks
 * (ack_requested) and, for an acknowledgement, what it names (refs); the
 * store matches them in the commit. A duplicate whose first copy has a
 * stored acknowledgement goes round once more before it reports: the
 * acknowledgement's bytes are read from the store on the loop, renewed by
 * its codec on the source's lane, and committed for the source endpoint.
 *
 * Logs one line per message: ids, types, GLNs, endpoint names, never
 * content.
 */
#include "accept/ingest.h"

#include "base/clock.h"
#include "codecs/xsd.h"
#include "base/lanes.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"
#include "metrics/metrics.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* What a decode job needs of the config: immutable, reference counted on
 * the loop, so a reload replaces it without touching a job that runs. */
struct settings {
	int refs;
	struct codec_limits limits; /* limits.schemas NULL: set per source (plan) */
	struct codec_schemas *schemas; /* a reference, or NULL */
	char *broker_id;
	char *broker_gln; /* NULL when unset */
};

struct batch;

/* A source endpoint's decode lane and the batch it is collecting. */
struct source {
	char *name;
	struct lane *lane;
	struct batch *pending;
	/* Moves on when one of its messages fails to commit. A message
	 * submitted under an older epoch was sent before that failure was
	 * known: it comes after the failed one, so it must not commit before
	 * the source offers the failed one again (per-sender order). */
	uint64_t epoch;
};

struct ingest {
	struct commit *commit;
	struct store *store;       /* for a duplicate's stored acknowledgement; may be NULL */
	struct router *router;     /* a reference */
	struct settings *set;      /* a reference */
	struct lanes *pool;
	struct source *sources;    /* by name; they live as long as ingest */
	size_t nsources;
	struct event *flush_ev;    /* sends the turn's batches to their lanes */
	ingest_queued_fn queued;
	void *ctx;
	ingest_full_fn full;
	void *full_ctx;
	size_t inflight;
	/* Bytes passed by back-pressure and not yet committed (then the
	 * endpoint's queue counts them), by endpoint: without them one batch,
	 * or batches overtaking a slow commit, could pass the mark together. */
	struct pending { char *endpoint; size_t bytes; } *pend;
	size_t npend;
	size_t pend_total;
};

/* The messages one source submitted in one loop turn. */
struct batch {
	struct ingest *ing;
	struct router *router;
	struct settings *set;
	struct tm now;             /* local time for receipts, taken on the loop */
	int64_t now_ms;
	struct item **items;
	size_t n, cap;
};

struct receipt_item {
	struct store_new m;
	struct store_key key;
	struct codec_receipt rc; /* owns the bytes; its own copy of the broker id,
				  * which a reload may replace */
	char *source, *endpoint;
	char *token;             /* the message's token + "#receipt": a replay stores none */
	bool done;
};

/* A duplicate's stored acknowledgement on its way to be sent again. */
struct resend {
	struct settings *set;      /* a reference, for the limits and ids */
	struct tm now;
	uint8_t *body;             /* the stored acknowledgement */
	size_t size;
	int64_t ack_id;            /* its message id */
	struct codec_receipt rc;   /* the renewed copy (resend_work) */
	int r;                     /* what the renewal said */
	int got;                   /* what reading it said: 1 found, 0 not, -errno */
	char error[256];           /* why reading it failed */
};

/* Every message between submission and its report is an item, and a
 * source holds thousands at once (a spool's read budget of small files):
 * what every message needs is inline, what few need (a wrapping's ids and
 * txids, FHIR's SOR ids, an acknowledgement's verdict, a schema verdict's
 * text, a decode error) is allocated when it is there and freed with the
 * item. */
struct item {
	struct ingest *ing;
	ingest_done_fn done;
	void *arg;
	enum ingest_result planned;   /* ACCEPTED (or DEAD) if it commits, REJECTED,
				       * FORBIDDEN, BUSY */
	unsigned flags;               /* INGEST_NO_RECEIPT, INGEST_NO_DEAD */
	const char *dead_class;       /* a dead letter's reason as a metric label */
	struct store_new m;
	char *source, *endpoint, *reason, *ext;
	char *token;                  /* the unit's ingest token; NULL = none */
	uint8_t *body;
	size_t size;
	char type[CODEC_TYPE_MAX], envelope_id[CODEC_ID_MAX];
	char sender[CODEC_GLN_MAX], receiver[CODEC_GLN_MAX];
	char format[64];              /* for the log line */
	char *wrapper;                /* for the log line; NULL = bare ("-") */
	char *sender_sor, *receiver_sor; /* FHIR: shown, never routed on; NULL = "-" */
	struct store_key *keys;
	struct { char sender[CODEC_GLN_MAX], id[CODEC_ID_MAX]; } *keybuf;
	struct store_txid *txids;     /* m.ntxids of each; NULL when none */
	struct codec_txid *txidbuf;
	struct codec_error *error;    /* NULL = none (item_error()) */
	struct receipt_item *receipt; /* NULL when none is due */
	bool msg_pending;             /* m is in the commit */
	bool counted;                 /* size is in ing->pend */
	int commit_err;
	bool held_back;               /* not committed: an earlier one of its source failed */
	uint64_t epoch;               /* its source's epoch when it was submitted */
	/* what an acknowledgement names, copied for the store */
	struct store_ackref *refs;
	struct codec_ref *refbuf;
	char *verdict;                /* with refs */
	/* schema validation of what the source sent */
	enum xsd_mode xsd;
	enum codec_schema schema;
	char *schema_text;            /* INVALID or MISSING: what it says; else NULL */
	/* a duplicate's stored acknowledgement sent again */
	struct resend *resend;        /* on the source's lane while set */
	bool resend_tried;
};

static struct settings *settings_ref(struct settings *set)
{
	set->refs++;
	return set;
}

static void settings_unref(struct settings *set)
{
	if (!set || --set->refs > 0)
		return;
	codec_schemas_unref(set->schemas);
	free(set->broker_id);
	free(set->broker_gln);
	free(set);
}

static void on_flush(evutil_socket_t fd, short what, void *arg);

struct ingest *ingest_new(struct event_base *base, struct lanes *pool, struct commit *commit,
			  ingest_queued_fn queued, void *ctx)
{
	struct ingest *ing = xcalloc(1, sizeof(*ing));
	ing->commit = commit;
	ing->pool = pool;
	ing->queued = queued;
	ing->ctx = ctx;
	ing->flush_ev = event_new(base, -1, 0, on_flush, ing);
	struct ingest_config ic = {
		.limits = { .max_bytes = CODEC_DEFAULT_MAX_BYTES, .max_depth = CODEC_DEFAULT_MAX_DEPTH },
		.broker_id = "EDIBROKER",
	};
	ingest_set_config(ing, &ic);
	return ing;
}

void ingest_free(struct ingest *ing)
{
	if (!ing)
		return;
	for (size_t i = 0; i < ing->nsources; i++)
		free(ing->sources[i].name); /* the lanes go with the pool */
	free(ing->sources);
	for (size_t i = 0; i < ing->npend; i++)
		free(ing->pend[i].endpoint);
	free(ing->pend);
	event_free(ing->flush_ev);
	router_free(ing->router);
	settings_unref(ing->set);
	free(ing);
}

void ingest_set_router(struct ingest *ing, struct router *router)
{
	router_free(ing->router);
	ing->router = router_ref(router);
}

void ingest_set_config(struct ingest *ing, const struct ingest_config *cfg)
{
	struct settings *set = xcalloc(1, sizeof(*set));
	*set = (struct settings){ .refs = 1, .limits = cfg->limits,
				  .schemas = cfg->schemas ? codec_schemas_ref(cfg->schemas) : NULL,
				  .broker_id = xstrdup(cfg->broker_id),
				  .broker_gln = str_empty(cfg->broker_gln) ? NULL
									 : xstrdup(cfg->broker_gln) };
	set->limits.schemas = NULL; /* per source: plan() */
	settings_unref(ing->set);
	ing->set = set;
}

void ingest_set_store(struct ingest *ing, struct store *store)
{
	ing->store = store;
}

void ingest_set_backpressure(struct ingest *ing, ingest_full_fn full, void *ctx)
{
	ing->full = full;
	ing->full_ctx = ctx;
}

size_t ingest_inflight(const struct ingest *ing)
{
	return ing->inflight;
}

static void receipt_item_free(struct receipt_item *r)
{
	if (!r)
		return;
	free(r->rc.body);
	free(r->source);
	free(r->endpoint);
	free(r->token);
	free(r);
}

static void item_free(struct item *it)
{
	receipt_item_free(it->receipt);
	free(it->refs);
	free(it->refbuf);
	free(it->verdict);
	free(it->schema_text);
	free(it->error);
	free(it->txids);
	free(it->txidbuf);
	free(it->wrapper);
	free(it->sender_sor);
	free(it->receiver_sor);
	free(it->token);
	free(it->source);
	free(it->endpoint);
	free(it->reason);
	free(it->ext);
	free(it->body);
	free(it->keys);
	free(it->keybuf);
	free(it);
}

/* it's decode error, or, when it has none, a zero one (CODEC_OK, no
 * text): an outcome's error is never NULL, and its readers rely on it. */
static const struct codec_error *item_error(const struct item *it)
{
	static const struct codec_error none;
	return it->error ? it->error : &none;
}

/* it's error, allocated when it has none yet: code set, text empty. */
static struct codec_error *item_error_set(struct item *it, enum codec_errcode code)
{
	if (!it->error)
		it->error = xmalloc(sizeof(*it->error));
	*it->error = (struct codec_error){ .code = code };
	return it->error;
}

/* A copy of s cut to what a char[size] holds, as str_copy cuts it. */
static char *dup_capped(const char *s, size_t size)
{
	return xasprintf("%.*s", (int)(size - 1), s);
}

/* s, or "-" for a field the message does not have. */
static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

/* The txids of env's wrappings (and FHIR Bundle.id), copied for the store. */
static void item_take_txids(struct item *it, const struct codec_envelope *env)
{
	size_t n = env->ntxids < ARRAY_SIZE(env->txids) ? env->ntxids : ARRAY_SIZE(env->txids);
	if (n == 0)
		return; /* a bare letter: m.txids stays NULL, m.ntxids 0 */
	it->txidbuf = xmalloc(n * sizeof(*it->txidbuf));
	it->txids = xmalloc(n * sizeof(*it->txids));
	for (size_t i = 0; i < n; i++) {
		it->txidbuf[i] = env->txids[i];
		const struct codec_txid *t = &it->txidbuf[i];
		it->txids[i] = (struct store_txid){ t->scope, t->sender, t->id, t->digest,
						    sizeof(t->digest) };
	}
	it->m.txids = it->txids;
	it->m.ntxids = n;
}

/* What tracking needs: whether env asks for an acknowledgement, and, for
 * an acknowledgement, what it names and its verdict. */
static void item_take_refers(struct item *it, const struct codec_envelope *env)
{
	static const enum msg_ack verdicts[] = {
		[CODEC_ACK_NONE] = ACK_NONE, [CODEC_ACK_POSITIVE] = ACK_ACKNOWLEDGED,
		[CODEC_ACK_NEGATIVE] = ACK_NEGATIVE, [CODEC_ACK_TRANSIENT] = ACK_TRANSIENT,
	};
	const struct codec_refers *rf = &env->refers;
	it->m.ack_requested = env->ack_requested && !env->is_receipt;
	if (!env->is_receipt || rf->code == CODEC_ACK_NONE || rf->n == 0 ||
	    (size_t)rf->code >= ARRAY_SIZE(verdicts))
		return;
	it->refbuf = xmalloc(rf->n * sizeof(*it->refbuf));
	it->refs = xcalloc(rf->n, sizeof(*it->refs));
	memcpy(it->refbuf, rf->refs, rf->n * sizeof(*it->refbuf));
	for (size_t i = 0; i < rf->n; i++)
		it->refs[i] = (struct store_ackref){ it->refbuf[i].sender, it->refbuf[i].envelope_id,
						     it->refbuf[i].letter_id };
	it->verdict = dup_capped(rf->detail, sizeof(rf->detail));
	it->m.refs = it->refs;
	it->m.nrefs = rf->n;
	it->m.refs_scope = rf->scope; /* static in the codec */
	it->m.verdict = verdicts[rf->code];
	it->m.verdict_text = it->verdict;
}

/* For the log: the formats outermost first ("sbdh+vans+oioxml") and the
 * wrappings' ids ("sbdh:ID,vans:ID", "-" when bare). */
static void item_describe(struct item *it, const struct codec_envelope *env)
{
	char wrapper[2 * (CODEC_ID_MAX + 8)] = "";
	size_t f = 0, w = 0;
	for (size_t i = 0; i < env->nlayers; i++) {
		const struct codec_layer *l = &env->layers[i];
		f += (size_t)snprintf(it->format + f, sizeof(it->format) - f, "%s+", l->codec->name);
		w += (size_t)snprintf(wrapper + w, sizeof(wrapper) - w, "%s%s:%s", i ? "," : "",
				      l->codec->name, l->id);
		f = f < sizeof(it->format) ? f : sizeof(it->format) - 1;
		w = w < sizeof(wrapper) ? w : sizeof(wrapper) - 1;
	}
	const struct codec *inner = env->inner ? env->inner : env->codec;
	snprintf(it->format + f, sizeof(it->format) - f, "%s", inner->name);
	if (wrapper[0])
		it->wrapper = xstrdup(wrapper);
}

/* Copies the envelope fields the store keeps out of the scratch envelope:
 * the first innermost letter's, every letter's key, the txids. */
static void item_take_envelope(struct item *it, const struct codec_envelope *env)
{
	const struct codec_letter *first = &env->letters[0];
	/* a letter of a type that has no code (an unknown OIOXML letter
	 * without TypeCode/StatisticalCode) shows as "-" */
	str_copy(it->type, str_empty(first->type) ? "-" : first->type, sizeof(it->type));
	str_copy(it->envelope_id, env->envelope_id, sizeof(it->envelope_id));
	str_copy(it->sender, first->sender, sizeof(it->sender));
	str_copy(it->receiver, first->receiver, sizeof(it->receiver));
	if (!str_empty(first->sender_sor))
		it->sender_sor = dup_capped(first->sender_sor, sizeof(first->sender_sor));
	if (!str_empty(first->receiver_sor))
		it->receiver_sor = dup_capped(first->receiver_sor, sizeof(first->receiver_sor));
	it->keys = xcalloc(env->nletters, sizeof(struct store_key));
	it->keybuf = xcalloc(env->nletters, sizeof(*it->keybuf));
	for (size_t i = 0; i < env->nletters; i++) {
		str_copy(it->keybuf[i].sender, env->letters[i].sender, CODEC_GLN_MAX);
		str_copy(it->keybuf[i].id, env->letters[i].id, CODEC_ID_MAX);
		it->keys[i] = (struct store_key){ it->keybuf[i].sender, it->keybuf[i].id };
	}
	it->m.nletters = (int)env->nletters;
	it->m.nkeys = env->nletters;
	it->m.keys = it->keys;
	item_take_txids(it, env);
	item_take_refers(it, env);
	item_describe(it, env);
	it->m.type = it->type;
	it->m.envelope_id = it->envelope_id;
	it->m.letter_id = env->nletters ? it->keybuf[0].id : NULL;
	it->m.sender = it->sender;
	it->m.receiver = it->receiver;
	it->m.format = env->codec->name;
	it->ext = xstrdup(env->codec->ext);
	it->m.ext = it->ext;
}

/* codec_refusal_params.fresh_id: "EB" and 12 random hex digits. */
static void fresh_receipt_id(void *ctx, char out[CODEC_ID_MAX])
{
	uint8_t rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		uint64_t t = (uint64_t)clock_wall_ms() ^ (uint64_t)clock_mono_ms() << 20;
		memcpy(rnd, &t, sizeof(rnd));
	}
	snprintf(out, CODEC_ID_MAX, "EB%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
}

/* codec_refusal_params.fresh_uuid: a random (version 4) UUID. */
static void fresh_receipt_uuid(void *ctx, char out[CODEC_UUID_LEN + 1])
{
	uint8_t r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t t[2] = { (uint64_t)clock_wall_ms(), (uint64_t)clock_mono_ms() };
		memcpy(r, t, sizeof(r));
	}
	r[6] = (uint8_t)((r[6] & 0x0F) | 0x40); /* version 4 */
	r[8] = (uint8_t)((r[8] & 0x3F) | 0x80); /* RFC 4122 variant */
	snprintf(out, CODEC_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
		 r[15]);
}

/* rc (taken over) as a message from the broker to endpoint. Its one
 * letter goes into the duplicate register when it has a key (a refusal);
 * a renewed acknowledgement has none, its letter being the receiver's.
 * token: the refused message's ingest token (NULL: none), so a replayed
 * batch stores no second receipt. */
static struct receipt_item *receipt_item_new(struct codec_receipt *rc, const char *endpoint,
					     const char *token, int64_t now_ms)
{
	struct receipt_item *r = xcalloc(1, sizeof(*r));
	r->rc = *rc;
	r->source = xstrdup(STORE_SOURCE_BROKER);
	r->endpoint = xstrdup(endpoint);
	r->token = token ? xasprintf("%s#receipt", token) : NULL;
	r->key = (struct store_key){ r->rc.key.sender, r->rc.key.id };
	bool keyed = r->rc.key.sender[0] && r->rc.key.id[0];
	r->m = (struct store_new){
		.token = r->token, .source = r->source, .endpoint = r->endpoint,
		.format = r->rc.format, .ext = r->rc.ext, .type = r->rc.type,
		.envelope_id = r->rc.envelope_id, .sender = r->rc.sender,
		.receiver = r->rc.receiver, .nletters = 1,
		.letter_id = keyed ? r->rc.key.id : NULL, .refers = r->rc.refers,
		.keys = keyed ? &r->key : NULL, .nkeys = keyed ? 1 : 0, .body = r->rc.body,
		.size = r->rc.size, .received_at = now_ms,
	};
	return r;
}

/* The receipt refusing env, from the codec that read it, as a store_new
 * to the source endpoint; NULL when none can be built (env is a receipt,
 * lacks its envelope id or sender, or its format issues no receipts). */
static struct receipt_item *make_receipt(const struct batch *bt, const char *source,
					 const char *token, const struct codec_envelope *env,
					 enum codec_refusal why, const char *text)
{
	struct codec_refusal_params p = { .reason = why, .text = text,
					  .broker_id = bt->set->broker_id,
					  .broker_gln = bt->set->broker_gln,
					  .now = bt->now,
					  .fresh_id = fresh_receipt_id,
					  .fresh_uuid = fresh_receipt_uuid };
	struct codec_receipt rc;
	if (codec_refuse(env, &p, &rc) < 0)
		return NULL;
	return receipt_item_new(&rc, source, token, bt->now_ms);
}

static void report(struct item *it, enum ingest_result res)
{
	struct ingest_outcome o = {
		.result = res, .id = it->m.id, .endpoint = it->endpoint,
		.reason = it->reason, .error = item_error(it),
	};
	it->ing->inflight--;
	it->done(&o, it->arg);
	item_free(it);
}

static void log_outcome(const struct item *it, enum ingest_result res)
{
	switch (res) {
	case INGEST_ACCEPTED:
		log_info("event=accepted msg=%lld source=%s endpoint=%s type=%s letters=%d "
			 "envelope=%s sender=%s receiver=%s size=%zu format=%s wrapper=%s "
			 "sender_sor=%s receiver_sor=%s",
			 (long long)it->m.id, it->source, it->endpoint, it->type, it->m.nletters,
			 it->envelope_id, it->sender, it->receiver, it->size, it->format,
			 or_dash(it->wrapper), or_dash(it->sender_sor), or_dash(it->receiver_sor));
		break;
	case INGEST_DUPLICATE:
		log_notice("event=duplicate msg=%lld source=%s type=%s envelope=%s sender=%s "
			   "state=dropped format=%s wrapper=%s sender_sor=%s",
			   (long long)it->m.id, it->source, it->type, it->envelope_id, it->sender,
			   it->format, or_dash(it->wrapper), or_dash(it->sender_sor));
		break;
	case INGEST_DEAD:
		if (it->m.id == 0) { /* INGEST_NO_DEAD: the caller keeps it */
			log_notice("event=not-routed source=%s type=%s envelope=%s receiver=%s "
				   "reason=\"%s\" state=not-stored",
				   it->source, it->type, it->envelope_id, it->receiver, it->reason);
			break;
		}
		log_warn("event=dead-letter msg=%lld source=%s type=%s envelope=%s sender=%s "
			 "receiver=%s reason=\"%s\" format=%s wrapper=%s sender_sor=%s "
			 "receiver_sor=%s",
			 (long long)it->m.id, it->source, it->type, it->envelope_id, it->sender,
			 it->receiver, it->reason, it->format, or_dash(it->wrapper),
			 or_dash(it->sender_sor), or_dash(it->receiver_sor));
		break;
	case INGEST_REJECTED:
		log_warn("event=rejected source=%s size=%zu error=%s reason=\"%s\"", it->source,
			 it->size, codec_errcode_name(item_error(it)->code), item_error(it)->text);
		break;
	case INGEST_FORBIDDEN:
		log_err("event=sender-refused source=%s sender=%s envelope=%s type=%s size=%zu "
			"security=spoofing reason=\"%s\"",
			it->source, it->sender, it->envelope_id, it->type, it->size, it->reason);
		break;
	case INGEST_TEMPFAIL:
		log_debug("event=tempfail source=%s size=%zu", it->source, it->size);
		break;
	case INGEST_BUSY:
		log_debug("event=busy source=%s endpoint=%s size=%zu", it->source,
			  it->endpoint ? it->endpoint : "-", it->size);
		break;
	}
}

/* True when the item's message goes to the group commit. */
static bool to_commit(const struct item *it)
{
	if (it->planned == INGEST_DEAD && (it->flags & INGEST_NO_DEAD))
		return false;
	return it->planned != INGEST_REJECTED && it->planned != INGEST_FORBIDDEN &&
	       it->planned != INGEST_BUSY;
}

static enum ingest_result final_result(struct item *it)
{
	if (it->commit_err < 0)
		return INGEST_TEMPFAIL;
	if (!to_commit(it))
		return it->planned;
	if (it->m.outcome == STORE_DUPLICATE)
		return INGEST_DUPLICATE;
	if (it->m.outcome == STORE_DEAD && it->m.replay) {
		free(it->reason); /* the first copy's, as stored, not today's routing */
		it->reason = xstrdup(it->m.why);
		return INGEST_DEAD;
	}
	if (it->m.outcome == STORE_DEAD) {
		if (!it->reason) { /* the store's own: a partial duplicate, a reused txid */
			it->reason = xstrdup(it->m.why[0] ? it->m.why
							  : "refused by the store's duplicate policy");
			it->dead_class = strncmp(it->m.why, "partial duplicate", 17) == 0
						 ? "partial-duplicate"
						 : "transmission-id-reused";
		}
		return INGEST_DEAD;
	}
	return INGEST_ACCEPTED;
}

/* The outcome, counted (metrics.h): every label bounded. */
static void count_outcome(const struct item *it, enum ingest_result res)
{
	switch (res) {
	case INGEST_ACCEPTED:
		metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS(it->source, it->endpoint, it->type));
		break;
	case INGEST_DUPLICATE:
		metrics_add(METRIC_DUPLICATE, 1, METRIC_LABELS(it->source, it->type));
		break;
	case INGEST_DEAD:
		if (it->m.id)
			metrics_add(METRIC_DEAD, 1,
				    METRIC_LABELS(it->source, it->dead_class, it->type));
		break;
	case INGEST_REJECTED:
		metrics_add(METRIC_REFUSED, 1,
			    METRIC_LABELS(it->source, codec_errcode_name(item_error(it)->code)));
		break;
	case INGEST_FORBIDDEN:
		metrics_add(METRIC_REFUSED, 1, METRIC_LABELS(it->source, "sender"));
		break;
	case INGEST_BUSY:
		metrics_add(METRIC_REFUSED, 1, METRIC_LABELS(it->source, "busy"));
		break;
	case INGEST_TEMPFAIL:
		metrics_add(METRIC_REFUSED, 1, METRIC_LABELS(it->source, "store"));
		break;
	}
}

/* What tracking and validation have to say of a message, beside its
 * outcome line. */
static void log_tracking(const struct item *it, enum ingest_result res)
{
	const struct store_new *m = &it->m;
	if (res == INGEST_ACCEPTED && m->nrefs > 0)
		log_info("event=ack-received msg=%lld source=%s type=%s verdict=\"%s\" refs=%zu "
			 "matched=%zu first=%lld",
			 (long long)m->id, it->source, it->type, it->verdict, m->nrefs, m->nacked,
			 (long long)m->acked);
	if (res == INGEST_ACCEPTED && m->nforeign > 0)
		log_warn("event=ack-ignored msg=%lld source=%s type=%s refs=%zu "
			 "reason=\"it names messages that went to another endpoint\"",
			 (long long)m->id, it->source, it->type, m->nforeign);
	if (res == INGEST_REJECTED || it->schema == CODEC_SCHEMA_VALID ||
	    it->schema == CODEC_SCHEMA_UNCHECKED)
		return;
	log_warn("event=%s msg=%lld source=%s type=%s envelope=%s xsd=%s state=passed "
		 "reason=\"%s\"",
		 it->schema == CODEC_SCHEMA_INVALID ? "schema-invalid" : "schema-missing",
		 (long long)m->id, it->source, it->type, it->envelope_id,
		 it->xsd == XSD_ENFORCE ? "enforce" : "warn", it->schema_text ? it->schema_text : "");
}

static bool resend_start(struct item *it);
static struct source *source_of(struct ingest *ing, const char *name);

/* Runs when both the message and its receipt (if any) have committed. */
static void finish(struct item *it)
{
	if (it->msg_pending || (it->receipt && !it->receipt->done) || it->resend)
		return;
	enum ingest_result res = final_result(it);
	if (res == INGEST_DUPLICATE && it->m.ack_id > 0 && !it->resend_tried && resend_start(it))
		return; /* back once the acknowledgement is renewed and committed */
	if (res == INGEST_TEMPFAIL) {
		free(it->reason);
		it->reason = xstrdup(it->held_back ? "an earlier message from this source did not "
						     "commit; this one waits for it"
						   : strerror(-it->commit_err));
		struct source *src = source_of(it->ing, it->source);
		if (src->epoch == it->epoch)
			src->epoch++; /* everything submitted so far waits for this one */
	}
	struct receipt_item *r = it->receipt;
	if (res != INGEST_TEMPFAIL && r && r->m.outcome == STORE_STORED) {
		if (it->resend_tried)
			log_notice("event=ack-resent msg=%lld endpoint=%s type=%s envelope=%s "
				   "receiver=%s ack=%lld refers=%s duplicate-of=%lld",
				   (long long)r->m.id, r->endpoint, r->rc.type, r->rc.envelope_id,
				   r->rc.receiver, (long long)it->m.ack_id, r->rc.refers,
				   (long long)it->m.id);
		else
			log_notice("event=receipt msg=%lld endpoint=%s type=%s envelope=%s receiver=%s "
				   "refers=%s",
				   (long long)r->m.id, r->endpoint, r->rc.type, r->rc.envelope_id,
				   r->rc.receiver, r->rc.refers);
		it->ing->queued(it->ing->ctx, r->endpoint, r->m.id, TAKE_PTR(r->rc.body), r->m.size,
				r->rc.ext, r->rc.type, r->m.received_at);
	}
	if (it->m.replay && res == INGEST_DEAD) { /* logged and counted with the first copy */
		log_notice("event=replay msg=%lld source=%s state=dead reason=\"%s\"",
			   (long long)it->m.id, it->source, it->reason);
	} else {
		log_outcome(it, res);
		count_outcome(it, res);
	}
	log_tracking(it, res);
	if (res == INGEST_ACCEPTED)
		it->ing->queued(it->ing->ctx, it->endpoint, it->m.id, TAKE_PTR(it->body), it->size,
				it->ext, it->type, it->m.received_at);
	report(it, res);
}

static struct pending *pending_of(struct ingest *ing, const char *endpoint, bool add)
{
	for (size_t i = 0; i < ing->npend; i++)
		if (strcmp(ing->pend[i].endpoint, endpoint) == 0)
			return &ing->pend[i];
	if (!add)
		return NULL;
	ing->pend = xrealloc(ing->pend, (ing->npend + 1) * sizeof(*ing->pend));
	ing->pend[ing->npend] = (struct pending){ .endpoint = xstrdup(endpoint) };
	return &ing->pend[ing->npend++];
}

/* Would a message of it->size for it->endpoint pass the high-water mark,
 * counting what is already on its way to the store? If not, it is counted. */
static bool queue_full(struct ingest *ing, struct item *it)
{
	if (!ing->full)
		return false;
	struct pending *p = pending_of(ing, it->endpoint, false);
	size_t mine = it->size + (p ? p->bytes : 0);
	if (ing->full(ing->full_ctx, it->endpoint, mine, it->size + ing->pend_total))
		return true;
	pending_of(ing, it->endpoint, true)->bytes += it->size;
	ing->pend_total += it->size;
	it->counted = true;
	return false;
}

static void uncount(struct item *it)
{
	if (!it->counted)
		return;
	struct pending *p = pending_of(it->ing, it->endpoint, false);
	assert(p && p->bytes >= it->size);
	p->bytes -= it->size;
	it->ing->pend_total -= it->size;
	it->counted = false;
}

static void on_msg_committed(int err, struct store_new *m, void *arg)
{
	struct item *it = arg;
	uncount(it);
	it->msg_pending = false;
	if (err < 0)
		it->commit_err = err;
	finish(it);
}

static void on_receipt_committed(int err, struct store_new *m, void *arg)
{
	struct item *it = arg;
	it->receipt->done = true;
	if (err < 0)
		it->commit_err = err;
	finish(it);
}

/* ---- a duplicate's stored acknowledgement, sent again --------------------- */

struct stored_body {
	uint8_t *body;
	size_t size;
};

static int copy_body(const struct store_msg *m, void *arg)
{
	struct stored_body *b = arg;
	if (m->body) {
		b->body = xmalloc(m->size + 1);
		memcpy(b->body, m->body, m->size);
		b->size = m->size;
	}
	return 0;
}

static void resend_free(struct resend *rs)
{
	settings_unref(rs->set);
	free(rs->body);
	free(rs);
}

/* Off the loop, on the source's lane: the renewed copy. */
static void resend_work(void *arg)
{
	struct item *it = arg;
	struct resend *rs = it->resend;
	struct codec_refusal_params p = { .broker_id = rs->set->broker_id,
					  .broker_gln = rs->set->broker_gln, .now = rs->now,
					  .fresh_id = fresh_receipt_id,
					  .fresh_uuid = fresh_receipt_uuid };
	rs->r = codec_renew(rs->body, rs->size, &rs->set->limits, &p, &rs->rc);
}

static void resend_done(void *arg)
{
	struct item *it = arg;
	struct resend *rs = TAKE_PTR(it->resend);
	if (rs->r == 0) {
		it->receipt = receipt_item_new(&rs->rc, it->source, NULL, clock_wall_ms());
		commit_add(it->ing->commit, &it->receipt->m, on_receipt_committed, it);
	} else {
		log_warn("event=ack-resend-failed msg=%lld ack=%lld source=%s error=\"%s\" "
			 "state=duplicate-dropped",
			 (long long)it->m.id, (long long)rs->ack_id, it->source,
			 rs->r == -ENOTSUP ? "the stored message is no acknowledgement"
					   : "the stored acknowledgement cannot be renewed");
	}
	resend_free(rs);
	finish(it);
}

/* On a store lane (at once with sqlite): the acknowledgement stored for
 * the duplicate's first copy. A server's answer never waits on the loop. */
static void resend_read(struct store *view, void *arg)
{
	struct item *it = arg;
	struct resend *rs = it->resend;
	struct stored_body b = { 0 };
	rs->got = store_get(view, rs->ack_id, true, copy_body, &b);
	if (rs->got < 0)
		snprintf(rs->error, sizeof(rs->error), "%s", store_last_error(view));
	rs->body = b.body;
	rs->size = b.size;
}

/* Back on the loop: to the source's lane to be renewed, or, when there is
 * nothing to send, the duplicate reports without it. */
static void resend_read_done(void *arg)
{
	struct item *it = arg;
	struct resend *rs = it->resend;
	if (rs->got <= 0 || !rs->body) {
		log_warn("event=ack-resend-failed msg=%lld ack=%lld source=%s error=\"%s\" "
			 "state=duplicate-dropped",
			 (long long)it->m.id, (long long)rs->ack_id, it->source,
			 rs->got < 0 ? rs->error : "its body is no longer kept");
		it->resend = NULL;
		resend_free(rs);
		finish(it);
		return;
	}
	lane_submit(source_of(it->ing, it->source)->lane, resend_work, resend_done, it);
}

/* Reads the acknowledgement stored for a duplicate's first copy and sends
 * it to be renewed; false when no store is there to ask. The item reports
 * once that is done (finish() waits while it->resend is set). */
static bool resend_start(struct item *it)
{
	struct ingest *ing = it->ing;
	it->resend_tried = true;
	if (!ing->store)
		return false;
	struct resend *rs = xcalloc(1, sizeof(*rs));
	*rs = (struct resend){ .set = settings_ref(ing->set), .ack_id = it->m.ack_id };
	time_t t = (time_t)(clock_wall_ms() / 1000);
	localtime_r(&t, &rs->now);
	it->resend = rs;
	/* may complete inside this call (sqlite): nothing touches it after */
	store_run(ing->store, STORE_LANE_READ, resend_read, resend_read_done, it);
	return true;
}

static void plan_rejected(const struct batch *bt, struct item *it,
			  const struct codec_envelope *env)
{
	it->planned = INGEST_REJECTED;
	it->reason = xstrdup(item_error(it)->text);
	if (it->flags & INGEST_NO_RECEIPT)
		return;
	it->receipt = make_receipt(bt, it->source, it->token, env,
				   codec_errcode_refusal(item_error(it)->code),
				   "EDI-kuverten kunne ikke behandles af EDI-broker.\n"
				   "The envelope could not be processed by the EDI broker.");
}

/* The first sender env names that source may not send as, or NULL: every
 * letter's sender, and a wrapping's sender when it is a location number
 * (VANS EndPointType EAN, SBDH scheme 0088). A letter whose sender could
 * not be read (a refused message) is not checked. */
static const char *foreign_sender(const struct router *r, const char *source,
				  const struct codec_envelope *env, size_t nletters)
{
	for (size_t i = 0; i < env->nlayers; i++) {
		const struct codec_layer *l = &env->layers[i];
		bool gln = strcmp(l->sender_kind, "EAN") == 0 || strcmp(l->sender_kind, "0088") == 0;
		if (gln && !str_empty(l->sender) && !router_may_send(r, source, l->sender))
			return l->sender;
	}
	for (size_t i = 0; i < nletters; i++) {
		const char *s = env->letters[i].sender;
		if (!str_empty(s) && !router_may_send(r, source, s))
			return s;
	}
	return NULL;
}

static void plan_forbidden(struct item *it, const char *sender)
{
	it->planned = INGEST_FORBIDDEN;
	str_copy(it->sender, sender, sizeof(it->sender));
	it->reason = xasprintf("sender not owned by this endpoint: %s may not send as %s",
			       it->source, sender);
	struct codec_error *e = item_error_set(it, CODEC_ESTRUCTURE);
	str_copy(e->text, it->reason, sizeof(e->text));
}

static void plan_routed(const struct batch *bt, struct item *it,
			const struct codec_envelope *env)
{
	char why[256];
	const char *ep = NULL;
	enum route_result rr = router_route(bt->router, env, &ep, why, sizeof(why));
	item_take_envelope(it, env);
	it->planned = rr == ROUTE_OK ? INGEST_ACCEPTED : INGEST_DEAD;
	if (rr == ROUTE_OK) {
		it->endpoint = xstrdup(ep);
		it->m.endpoint = it->endpoint;
		return;
	}
	it->reason = xstrdup(why);
	it->m.reason = it->reason;
	it->m.nkeys = 0; /* dead letters record no duplicate keys */
	if (rr == ROUTE_UNKNOWN_RECEIVER)
		it->dead_class = "unknown-receiver";
	else if (rr == ROUTE_TYPE)
		it->dead_class = "not-accepted";
	else
		it->dead_class = "split-endpoints";
	if (it->flags & INGEST_NO_RECEIPT)
		return;
	if (rr == ROUTE_UNKNOWN_RECEIVER)
		it->receipt = make_receipt(bt, it->source, it->token, env, CODEC_REFUSE_UNKNOWN_RECEIVER,
					   "Modtagerlokationsnummer har ikke kunnet identificeres.");
	else if (rr == ROUTE_TYPE)
		it->receipt = make_receipt(bt, it->source, it->token, env, CODEC_REFUSE_TYPE,
					   "Modtageren kan ikke modtage denne brevtype.\n"
					   "The receiver does not take this type of message.");
}

/* Under xsd = enforce: a message that does not validate is refused like
 * one that cannot be read, and its sender learns where it is wrong (line
 * and element: never a value). */
static void plan_invalid(const struct batch *bt, struct item *it,
			 const struct codec_envelope *env)
{
	it->planned = INGEST_REJECTED;
	struct codec_error *e = item_error_set(it, CODEC_ESCHEMA);
	snprintf(e->text, sizeof(e->text), "not valid against its XML Schema: %s", env->schema_text);
	it->reason = xstrdup(e->text);
	if (it->flags & INGEST_NO_RECEIPT)
		return;
	_cleanup_free_ char *text = xasprintf("Meddelelsen er ikke gyldig efter sit XML-skema.\n"
					      "The message is not valid against its XML Schema:\n%s",
					      env->schema_text);
	it->receipt = make_receipt(bt, it->source, it->token, env, CODEC_REFUSE_SYNTAX, text);
}

/* Off the loop: decodes (and validates, when the source's xsd asks),
 * binds, routes and answers one message. */
static void plan(const struct batch *bt, struct item *it, struct codec_envelope *env)
{
	struct codec_limits lim = bt->set->limits;
	it->xsd = router_xsd(bt->router, it->source);
	if (it->xsd != XSD_OFF)
		lim.schemas = bt->set->schemas;
	struct codec_error err = { 0 };
	int r = codec_decode_any(it->body, it->size, &lim, env, &err);
	if (r < 0 || err.code != CODEC_OK || err.text[0])
		*item_error_set(it, err.code) = err;
	it->schema = r < 0 ? CODEC_SCHEMA_UNCHECKED : env->schema;
	/* only a verdict that is logged (log_tracking) keeps its text */
	if (it->schema == CODEC_SCHEMA_INVALID || it->schema == CODEC_SCHEMA_MISSING)
		it->schema_text = dup_capped(env->schema_text, sizeof(env->schema_text));
	/* a refused message may still name its sender (to address a receipt) */
	size_t named = r < 0 ? (str_empty(env->letters[0].sender) ? 0 : 1) : env->nletters;
	const char *foreign = foreign_sender(bt->router, it->source, env, named);
	if (foreign)
		plan_forbidden(it, foreign);
	else if (r < 0)
		plan_rejected(bt, it, env);
	else if (it->schema == CODEC_SCHEMA_INVALID && it->xsd == XSD_ENFORCE)
		plan_invalid(bt, it, env);
	else
		plan_routed(bt, it, env);
}

/* INGEST_BODY_TOKEN: the unit's token, the source and a digest of its
 * bytes, here off the loop (a body may be 16 MiB) and before plan(), whose
 * receipt takes the token. */
static void body_token(struct item *it)
{
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	if (!(it->flags & INGEST_BODY_TOKEN) || it->token)
		return;
	sha256(it->body, it->size, d);
	for (size_t i = 0; i < SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	it->token = xasprintf("body:%s:%s", it->source, hex);
	it->m.token = it->token;
	it->m.token_is_digest = true;
}

static void decode_work(void *arg)
{
	struct batch *bt = arg;
	_cleanup_free_ struct codec_envelope *env = xmalloc(sizeof(*env));
	for (size_t i = 0; i < bt->n; i++) {
		body_token(bt->items[i]);
		plan(bt, bt->items[i], env);
	}
}

/* Back on the loop, in submission order: to the group commit. */
static void decode_done(void *arg)
{
	struct batch *bt = arg;
	struct ingest *ing = bt->ing;
	for (size_t i = 0; i < bt->n; i++) {
		struct item *it = bt->items[i];
		if ((it->receipt || to_commit(it)) && source_of(ing, it->source)->epoch != it->epoch) {
			/* an earlier message of its source failed while this one
			 * was decoded: it must not overtake it */
			it->held_back = true;
			it->commit_err = -EAGAIN;
			if (it->receipt)
				it->receipt->done = true; /* never committed: nothing to send */
			finish(it);
			continue;
		}
		if (it->planned == INGEST_ACCEPTED && queue_full(ing, it)) {
			it->planned = INGEST_BUSY;
			it->reason = xasprintf("the queue of %s is full: try again later",
					       it->endpoint);
		}
		if (it->receipt)
			commit_add(ing->commit, &it->receipt->m, on_receipt_committed, it);
		if (to_commit(it)) {
			it->msg_pending = true;
			commit_add(ing->commit, &it->m, on_msg_committed, it);
		}
		if (!it->msg_pending && !it->receipt)
			finish(it);
	}
	router_free(bt->router);
	settings_unref(bt->set);
	free(bt->items);
	free(bt);
}

static struct source *source_of(struct ingest *ing, const char *name)
{
	for (size_t i = 0; i < ing->nsources; i++)
		if (strcmp(ing->sources[i].name, name) == 0)
			return &ing->sources[i];
	ing->sources = xrealloc(ing->sources, (ing->nsources + 1) * sizeof(*ing->sources));
	struct source *src = &ing->sources[ing->nsources++];
	_cleanup_free_ char *lane = xasprintf("decode:%s", name);
	*src = (struct source){ .name = xstrdup(name), .lane = lane_new(ing->pool, lane) };
	return src;
}

/* At the end of the loop turn: each source's batch goes to its lane. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct ingest *ing = arg;
	int64_t now = clock_wall_ms();
	time_t t = (time_t)(now / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	for (size_t i = 0; i < ing->nsources; i++) {
		struct batch *bt = TAKE_PTR(ing->sources[i].pending);
		if (!bt)
			continue;
		bt->router = router_ref(ing->router);
		bt->set = settings_ref(ing->set);
		bt->now = tm;
		bt->now_ms = now;
		lane_submit(ing->sources[i].lane, decode_work, decode_done, bt);
	}
}

void ingest_submit(struct ingest *ing, const char *source, uint8_t *body, size_t size,
		   unsigned flags, ingest_done_fn done, void *arg)
{
	ingest_submit_unit(ing, source, NULL, body, size, flags, done, arg);
}

void ingest_submit_unit(struct ingest *ing, const char *source, const char *token, uint8_t *body,
			size_t size, unsigned flags, ingest_done_fn done, void *arg)
{
	struct item *it = xcalloc(1, sizeof(*it));
	it->ing = ing;
	it->flags = flags;
	it->done = done;
	it->arg = arg;
	it->token = xstrdup_or_null(token);
	it->m.token = it->token;
	it->source = xstrdup(source);
	it->body = body;
	it->size = size;
	it->m.source = it->source;
	it->m.body = it->body;
	it->m.size = it->size;
	it->m.received_at = clock_wall_ms();
	ing->inflight++;
	struct source *src = source_of(ing, source);
	it->epoch = src->epoch;
	struct batch *bt = src->pending;
	if (!bt) {
		bt = src->pending = xcalloc(1, sizeof(*bt));
		bt->ing = ing;
	}
	if (bt->n == bt->cap)
		bt->items = xrealloc(bt->items, (bt->cap = bt->cap ? bt->cap * 2 : 16) * sizeof(*bt->items));
	bt->items[bt->n++] = it;
	event_active(ing->flush_ev, 0, 0);
}

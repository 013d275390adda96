/*
 * ingest.c - decode, route and commit one inbound message, then report.
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
 * Logs one line per message: ids, types, GLNs, endpoint names, never
 * content.
 */
#include "accept/ingest.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct ingest {
	struct commit *commit;
	const struct router *router;
	ingest_queued_fn queued;
	void *ctx;
	struct codec_limits limits;
	char *broker_id;
	char *broker_gln; /* NULL when unset */
	struct codec_envelope env; /* scratch for decoding; copied out per item */
	size_t inflight;
};

struct receipt_item {
	struct store_new m;
	struct store_key key;
	struct codec_receipt rc; /* owns the bytes; its own copy of the broker id,
				  * which a reload may replace */
	char *source, *endpoint;
	bool done;
};

struct item {
	struct ingest *ing;
	ingest_done_fn done;
	void *arg;
	enum ingest_result planned;   /* ACCEPTED (or DEAD) if it commits, REJECTED */
	struct store_new m;
	char *source, *endpoint, *reason, *ext;
	uint8_t *body;
	size_t size;
	char type[CODEC_TYPE_MAX], envelope_id[CODEC_ID_MAX];
	char sender[CODEC_GLN_MAX], receiver[CODEC_GLN_MAX];
	char format[64], wrapper[2 * (CODEC_ID_MAX + 8)]; /* for the log line */
	struct store_key *keys;
	struct { char sender[CODEC_GLN_MAX], id[CODEC_ID_MAX]; } *keybuf;
	struct store_txid txids[CODEC_WRAP_MAX + 1];
	struct codec_txid txidbuf[CODEC_WRAP_MAX + 1];
	struct codec_error error;
	struct receipt_item *receipt; /* NULL when none is due */
	bool msg_pending;             /* m is in the commit */
	int commit_err;
};

struct ingest *ingest_new(struct commit *commit, ingest_queued_fn queued, void *ctx)
{
	struct ingest *ing = xcalloc(1, sizeof(*ing));
	ing->commit = commit;
	ing->queued = queued;
	ing->ctx = ctx;
	ing->limits = (struct codec_limits){ .max_bytes = CODEC_DEFAULT_MAX_BYTES,
					     .max_depth = CODEC_DEFAULT_MAX_DEPTH };
	ing->broker_id = xstrdup("EDIBROKER");
	return ing;
}

void ingest_free(struct ingest *ing)
{
	if (!ing)
		return;
	free(ing->broker_id);
	free(ing->broker_gln);
	free(ing);
}

void ingest_set_router(struct ingest *ing, const struct router *router)
{
	ing->router = router;
}

void ingest_set_config(struct ingest *ing, const struct ingest_config *cfg)
{
	ing->limits = cfg->limits;
	free(ing->broker_id);
	ing->broker_id = xstrdup(cfg->broker_id);
	free(ing->broker_gln);
	ing->broker_gln = str_empty(cfg->broker_gln) ? NULL : xstrdup(cfg->broker_gln);
}

size_t ingest_inflight(const struct ingest *ing)
{
	return ing->inflight;
}

static void item_free(struct item *it)
{
	if (it->receipt) {
		free(it->receipt->rc.body);
		free(it->receipt->source);
		free(it->receipt->endpoint);
		free(it->receipt);
	}
	free(it->source);
	free(it->endpoint);
	free(it->reason);
	free(it->ext);
	free(it->body);
	free(it->keys);
	free(it->keybuf);
	free(it);
}

/* The txids of env's wrappings (and FHIR Bundle.id), copied for the store. */
static void item_take_txids(struct item *it, const struct codec_envelope *env)
{
	for (size_t i = 0; i < env->ntxids && i < ARRAY_SIZE(it->txids); i++) {
		it->txidbuf[i] = env->txids[i];
		const struct codec_txid *t = &it->txidbuf[i];
		it->txids[i] = (struct store_txid){ t->scope, t->sender, t->id, t->digest,
						    sizeof(t->digest) };
	}
	it->m.txids = it->txids;
	it->m.ntxids = env->ntxids < ARRAY_SIZE(it->txids) ? env->ntxids : ARRAY_SIZE(it->txids);
}

/* For the log: the formats outermost first ("sbdh+vans+oioxml") and the
 * wrappings' ids ("sbdh:ID,vans:ID", "-" when bare). */
static void item_describe(struct item *it, const struct codec_envelope *env)
{
	size_t f = 0, w = 0;
	it->wrapper[0] = '\0';
	for (size_t i = 0; i < env->nlayers; i++) {
		const struct codec_layer *l = &env->layers[i];
		f += (size_t)snprintf(it->format + f, sizeof(it->format) - f, "%s+", l->codec->name);
		w += (size_t)snprintf(it->wrapper + w, sizeof(it->wrapper) - w, "%s%s:%s",
				      i ? "," : "", l->codec->name, l->id);
		f = f < sizeof(it->format) ? f : sizeof(it->format) - 1;
		w = w < sizeof(it->wrapper) ? w : sizeof(it->wrapper) - 1;
	}
	const struct codec *inner = env->inner ? env->inner : env->codec;
	snprintf(it->format + f, sizeof(it->format) - f, "%s", inner->name);
	if (!it->wrapper[0])
		str_copy(it->wrapper, "-", sizeof(it->wrapper));
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
	item_describe(it, env);
	it->m.type = it->type;
	it->m.envelope_id = it->envelope_id;
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

/* The receipt refusing env, from the codec that read it, as a store_new
 * to the source endpoint; NULL when none can be built (env is a receipt,
 * lacks its envelope id or sender, or its format issues no receipts). */
static struct receipt_item *make_receipt(struct ingest *ing, const char *source,
					 const struct codec_envelope *env, enum codec_refusal why,
					 const char *text)
{
	struct codec_refusal_params p = { .reason = why, .text = text,
					  .broker_id = ing->broker_id,
					  .broker_gln = ing->broker_gln,
					  .fresh_id = fresh_receipt_id,
					  .fresh_uuid = fresh_receipt_uuid };
	time_t now = (time_t)(clock_wall_ms() / 1000);
	localtime_r(&now, &p.now);
	struct receipt_item *r = xcalloc(1, sizeof(*r));
	if (codec_refuse(env, &p, &r->rc) < 0) {
		free(r);
		return NULL;
	}
	r->source = xstrdup(STORE_SOURCE_BROKER);
	r->endpoint = xstrdup(source);
	r->key = (struct store_key){ r->rc.key.sender, r->rc.key.id };
	r->m = (struct store_new){
		.source = r->source, .endpoint = r->endpoint, .format = r->rc.format,
		.ext = r->rc.ext, .type = r->rc.type, .envelope_id = r->rc.envelope_id,
		.sender = r->rc.sender, .receiver = r->rc.receiver, .nletters = 1,
		.keys = &r->key, .nkeys = 1, .body = r->rc.body, .size = r->rc.size,
		.received_at = clock_wall_ms(),
	};
	return r;
}

static void report(struct item *it, enum ingest_result res)
{
	struct ingest_outcome o = {
		.result = res, .id = it->m.id, .endpoint = it->endpoint,
		.reason = it->reason, .error = &it->error,
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
			 "envelope=%s sender=%s receiver=%s size=%zu format=%s wrapper=%s",
			 (long long)it->m.id, it->source, it->endpoint, it->type, it->m.nletters,
			 it->envelope_id, it->sender, it->receiver, it->size, it->format,
			 it->wrapper);
		break;
	case INGEST_DUPLICATE:
		log_notice("event=duplicate msg=%lld source=%s type=%s envelope=%s sender=%s "
			   "state=dropped format=%s wrapper=%s",
			   (long long)it->m.id, it->source, it->type, it->envelope_id, it->sender,
			   it->format, it->wrapper);
		break;
	case INGEST_DEAD:
		log_warn("event=dead-letter msg=%lld source=%s type=%s envelope=%s sender=%s "
			 "receiver=%s reason=\"%s\" format=%s wrapper=%s",
			 (long long)it->m.id, it->source, it->type, it->envelope_id, it->sender,
			 it->receiver, it->reason, it->format, it->wrapper);
		break;
	case INGEST_REJECTED:
		log_warn("event=rejected source=%s size=%zu error=%s reason=\"%s\"", it->source,
			 it->size, codec_errcode_name(it->error.code), it->error.text);
		break;
	case INGEST_TEMPFAIL:
		log_debug("event=tempfail source=%s size=%zu", it->source, it->size);
		break;
	}
}

static enum ingest_result final_result(struct item *it)
{
	if (it->commit_err < 0)
		return INGEST_TEMPFAIL;
	if (it->planned == INGEST_REJECTED)
		return INGEST_REJECTED;
	if (it->m.outcome == STORE_DUPLICATE)
		return INGEST_DUPLICATE;
	if (it->m.outcome == STORE_DEAD) {
		if (!it->reason) /* the store's own: a partial duplicate, a reused txid */
			it->reason = xstrdup(it->m.why[0] ? it->m.why
							  : "refused by the store's duplicate policy");
		return INGEST_DEAD;
	}
	return INGEST_ACCEPTED;
}

/* Runs when both the message and its receipt (if any) have committed. */
static void finish(struct item *it)
{
	if (it->msg_pending || (it->receipt && !it->receipt->done))
		return;
	enum ingest_result res = final_result(it);
	if (res == INGEST_TEMPFAIL) {
		free(it->reason);
		it->reason = xstrdup(strerror(-it->commit_err));
	}
	struct receipt_item *r = it->receipt;
	if (res != INGEST_TEMPFAIL && r && r->m.outcome == STORE_STORED) {
		log_notice("event=receipt msg=%lld endpoint=%s type=%s envelope=%s receiver=%s "
			   "refers=%s",
			   (long long)r->m.id, r->endpoint, r->rc.type, r->rc.envelope_id,
			   r->rc.receiver, r->rc.refers);
		it->ing->queued(it->ing->ctx, r->endpoint, r->m.id, TAKE_PTR(r->rc.body), r->m.size,
				r->rc.ext, r->m.received_at);
	}
	log_outcome(it, res);
	if (res == INGEST_ACCEPTED)
		it->ing->queued(it->ing->ctx, it->endpoint, it->m.id, TAKE_PTR(it->body), it->size,
				it->ext, it->m.received_at);
	report(it, res);
}

static void on_msg_committed(int err, struct store_new *m, void *arg)
{
	struct item *it = arg;
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

static void plan_rejected(struct ingest *ing, struct item *it, const struct codec_envelope *env)
{
	it->planned = INGEST_REJECTED;
	it->reason = xstrdup(it->error.text);
	it->receipt = make_receipt(ing, it->source, env, codec_errcode_refusal(it->error.code),
				   "EDI-kuverten kunne ikke behandles af EDI-broker.\n"
				   "The envelope could not be processed by the EDI broker.");
}

static void plan_routed(struct ingest *ing, struct item *it, const struct codec_envelope *env)
{
	char why[256];
	const char *ep = NULL;
	enum route_result rr = router_route(ing->router, env, &ep, why, sizeof(why));
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
		it->receipt = make_receipt(ing, it->source, env, CODEC_REFUSE_UNKNOWN_RECEIVER,
					   "Modtagerlokationsnummer har ikke kunnet identificeres.");
}

void ingest_submit(struct ingest *ing, const char *source, uint8_t *body, size_t size,
		   ingest_done_fn done, void *arg)
{
	struct item *it = xcalloc(1, sizeof(*it));
	it->ing = ing;
	it->done = done;
	it->arg = arg;
	it->source = xstrdup(source);
	it->body = body;
	it->size = size;
	ing->inflight++;
	struct codec_envelope *env = &ing->env; /* the codec clears it on every path */
	if (codec_decode_any(body, size, &ing->limits, env, &it->error) < 0)
		plan_rejected(ing, it, env);
	else
		plan_routed(ing, it, env);

	it->m.source = it->source;
	it->m.body = it->body;
	it->m.size = it->size;
	it->m.received_at = clock_wall_ms();
	if (it->receipt)
		commit_add(ing->commit, &it->receipt->m, on_receipt_committed, it);
	if (it->planned != INGEST_REJECTED) {
		it->msg_pending = true;
		commit_add(ing->commit, &it->m, on_msg_committed, it);
	}
	if (it->planned == INGEST_REJECTED && !it->receipt)
		finish(it);
}

/*
 * trace.c - builds a message's trace (trace.h) from the store.
 *
 * Three reads, one after the other (store.h: a row callback never calls
 * into the store): the message's row, its events, then the receipts that
 * refer to its envelope and their rows. What the row says becomes the
 * first and last steps (accepted or quarantined, delivered, a body or file
 * removed by retention), the events the steps between, each receipt a
 * step of its own; the steps are then put in time order (a stable sort, so
 * steps of the same millisecond keep their logical order).
 */
#include "control/trace.h"

#include "codecs/base/mem.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define RECEIPTS_MAX 20
#define STEPS_MAX 256 /* events kept per message beyond which the trace says "..." */

const char *trace_state_name(enum msg_state st)
{
	static const char *const names[] = { "queued", "delivered", "dead", "quarantined",
					     "requeued", "deleted" };
	return (size_t)st < ARRAY_SIZE(names) ? names[st] : "unknown";
}

/* One step of the history. */
struct step {
	int64_t at;
	size_t seq;       /* insertion order, for a stable sort */
	json_t *obj;
};

struct steps {
	struct step v[STEPS_MAX];
	size_t n;
	size_t dropped;
};

/* Local time to the second: the steps of a trace are often seconds apart. */
static json_t *time_json(int64_t t)
{
	if (!t)
		return json_null();
	char buf[32];
	time_t secs = (time_t)(t / 1000);
	struct tm tm;
	if (!localtime_r(&secs, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return json_null();
	return json_string(buf);
}

static json_t *opt(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Adds a step "event" at t; fields may be added to the returned object.
 * NULL past STEPS_MAX (counted): json_object_set_new() then drops what it
 * is given. */
static json_t *step(struct steps *st, int64_t at, const char *event)
{
	if (st->n == STEPS_MAX) {
		st->dropped++;
		return NULL;
	}
	json_t *o = json_pack("{s:s, s:o, s:I}", "event", event, "at", time_json(at), "at_ms",
			      (json_int_t)at);
	st->v[st->n] = (struct step){ at, st->n, o };
	st->n++;
	return o;
}

/* The message's row, copied out of the callback. */
struct row {
	bool found;
	int64_t id, received_at, delivered_at, removed_at;
	enum msg_state state;
	int attempts, nletters;
	size_t size;
	bool keep;
	enum msg_ack ack;
	int64_t ack_msg;
	char *ack_code;
	char *source, *endpoint, *format, *type, *envelope_id, *letter_id, *sender, *receiver,
		*reason, *last_error, *file, *error_class, *refers;
};

static void row_free(struct row *r)
{
	char *strs[] = { r->source, r->endpoint, r->format, r->type, r->envelope_id,
			 r->letter_id, r->sender, r->receiver, r->reason, r->last_error,
			 r->file, r->error_class, r->refers, r->ack_code };
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(strs[i]);
	*r = (struct row){ 0 };
}

static int got_row(const struct store_msg *m, void *arg)
{
	struct row *r = arg;
	*r = (struct row){
		.found = true, .id = m->id, .received_at = m->received_at,
		.delivered_at = m->delivered_at, .removed_at = m->removed_at, .state = m->state,
		.attempts = m->attempts, .nletters = m->nletters, .size = m->size, .keep = m->keep,
		.source = xstrdup_or_null(m->source), .endpoint = xstrdup_or_null(m->endpoint),
		.format = xstrdup_or_null(m->format), .type = xstrdup_or_null(m->type),
		.envelope_id = xstrdup_or_null(m->envelope_id),
		.letter_id = xstrdup_or_null(m->letter_id), .sender = xstrdup_or_null(m->sender),
		.receiver = xstrdup_or_null(m->receiver), .reason = xstrdup_or_null(m->reason),
		.last_error = xstrdup_or_null(m->last_error), .file = xstrdup_or_null(m->file),
		.error_class = xstrdup_or_null(m->error_class), .refers = xstrdup_or_null(m->refers),
		.ack = m->ack, .ack_msg = m->ack_msg, .ack_code = xstrdup_or_null(m->ack_code),
	};
	return 0;
}

static bool is_broker_receipt(const struct row *r)
{
	return r->source && strcmp(r->source, STORE_SOURCE_BROKER) == 0;
}

/* The steps the row itself tells: its arrival and its end. */
static void row_steps(struct steps *st, const struct row *r)
{
	json_t *o;
	if (r->state == MSG_QUARANTINED || (r->state == MSG_REQUEUED && r->file)) {
		o = step(st, r->received_at, "quarantined");
		json_object_set_new(o, "from", opt(r->source));
		json_object_set_new(o, "error", opt(r->error_class));
		json_object_set_new(o, "reason", opt(r->reason));
		json_object_set_new(o, "file", opt(r->file));
	} else if (is_broker_receipt(r)) {
		o = step(st, r->received_at, "issued");
		json_object_set_new(o, "to", opt(r->endpoint));
		json_object_set_new(o, "refers", opt(r->refers));
	} else {
		o = step(st, r->received_at, "accepted");
		json_object_set_new(o, "from", opt(r->source));
		if (r->endpoint) {
			json_object_set_new(o, "routed_to", json_string(r->endpoint));
		} else {
			json_object_set_new(o, "dead_letter", json_true());
			json_object_set_new(o, "reason", opt(r->reason));
		}
	}
	if (r->delivered_at) {
		o = step(st, r->delivered_at, "delivered");
		json_object_set_new(o, "to", opt(r->endpoint));
	}
	/* retention's removals; an operator's requeue or delete says its own */
	if (r->removed_at && (r->state == MSG_DEAD || r->state == MSG_QUARANTINED))
		step(st, r->removed_at, r->state == MSG_DEAD ? "body-removed" : "file-removed");
}

static int got_event(const struct store_event *e, void *arg)
{
	struct steps *st = arg;
	json_t *o = step(st, e->at, e->kind);
	if (e->fault)
		json_object_set_new(o, "fault", json_string(e->fault));
	if (e->detail)
		json_object_set_new(o, strcmp(e->kind, "duplicate") == 0 ? "from" : "detail",
				    json_string(e->detail));
	if (e->by)
		json_object_set_new(o, "by", json_string(e->by));
	if (e->ref)
		json_object_set_new(o, "message", json_integer(e->ref));
	return 0;
}

struct ids {
	int64_t v[TRACE_MAX];
	size_t n;
};

static int got_id(int64_t id, void *arg)
{
	struct ids *x = arg;
	if (x->n == TRACE_MAX)
		return 1;
	x->v[x->n++] = id;
	return 0;
}

/* A step per receipt the broker issued for r's envelope to r's source. */
static int receipt_steps(struct store *s, struct steps *st, const struct row *r, json_t *list)
{
	if (!r->envelope_id || is_broker_receipt(r))
		return 0;
	struct ids ids = { .n = 0 };
	int n = store_find(s, STORE_FIND_REFERS, r->envelope_id, RECEIPTS_MAX, got_id, &ids);
	for (size_t i = 0; n >= 0 && i < ids.n; i++) {
		struct row rc = { 0 };
		n = store_get(s, ids.v[i], false, got_row, &rc);
		/* only those to the endpoint this message came from (an envelope
		 * id is the sender's, and another sender may use the same), issued
		 * once it arrived (not for an earlier message with this envelope) */
		if (n > 0 && rc.endpoint && r->source && strcmp(rc.endpoint, r->source) == 0 &&
		    rc.received_at >= r->received_at) {
			json_t *o = step(st, rc.received_at, "receipt");
			json_object_set_new(o, "message", json_integer(rc.id));
			json_object_set_new(o, "type", opt(rc.type));
			json_object_set_new(o, "to", opt(rc.endpoint));
			json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:o}", "id",
							      (json_int_t)rc.id, "type",
							      rc.type ? rc.type : "", "state",
							      trace_state_name(rc.state),
							      "delivered_ms",
							      rc.delivered_at
								      ? json_integer(rc.delivered_at)
								      : json_null()));
		}
		row_free(&rc);
	}
	return n < 0 ? n : 0;
}

/* A step for the receiver's acknowledgement of r, when one came back: when
 * it arrived (the acknowledgement's own row), from whom, its verdict. */
static int ack_step(struct store *s, struct steps *st, const struct row *r)
{
	if (!r->ack_msg)
		return 0;
	struct row a = { 0 };
	int n = store_get(s, r->ack_msg, false, got_row, &a);
	if (n > 0) {
		json_t *o = step(st, a.received_at, "acknowledged");
		json_object_set_new(o, "message", json_integer(r->ack_msg));
		json_object_set_new(o, "from", opt(a.source));
		json_object_set_new(o, "type", opt(a.type));
		json_object_set_new(o, "verdict", json_string(store_ack_name(r->ack)));
		json_object_set_new(o, "code", opt(r->ack_code));
	}
	row_free(&a);
	return n < 0 ? n : 0;
}

static int step_cmp(const void *a, const void *b)
{
	const struct step *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static json_t *row_json(const struct row *r)
{
	json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:I}",
			      "id", (json_int_t)r->id, "state", trace_state_name(r->state),
			      "source", opt(r->source), "endpoint", opt(r->endpoint), "format",
			      opt(r->format), "type", opt(r->type), "envelope", opt(r->envelope_id),
			      "letter", opt(r->letter_id), "sender", opt(r->sender), "receiver",
			      opt(r->receiver), "letters", r->nletters, "size", (json_int_t)r->size);
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "received", time_json(r->received_at));
	json_object_set_new(o, "received_ms", json_integer(r->received_at));
	json_object_set_new(o, "delivered_ms",
			    r->delivered_at ? json_integer(r->delivered_at) : json_null());
	json_object_set_new(o, "reason", opt(r->reason));
	json_object_set_new(o, "last_error", opt(r->last_error));
	json_object_set_new(o, "refers", opt(r->refers));
	json_object_set_new(o, "keep", json_boolean(r->keep));
	json_object_set_new(o, "ack", json_string(store_ack_name(r->ack)));
	json_object_set_new(o, "ack_message", r->ack_msg ? json_integer(r->ack_msg) : json_null());
	json_object_set_new(o, "ack_code", opt(r->ack_code));
	if (r->file || r->error_class) {
		json_object_set_new(o, "file", opt(r->file));
		json_object_set_new(o, "error", opt(r->error_class));
	}
	return o;
}

json_t *trace_message(struct store *s, int64_t id, char *err, size_t errlen)
{
	struct row r = { 0 };
	int n = id > 0 ? store_get(s, id, false, got_row, &r) : 0;
	if (n <= 0) {
		if (n < 0)
			snprintf(err, errlen, "store: %s", store_last_error(s));
		else
			snprintf(err, errlen, "no message with id %lld", (long long)id);
		return NULL;
	}
	struct steps *st = xcalloc(1, sizeof(*st));
	json_t *receipts = json_array();
	row_steps(st, &r);
	n = store_events(s, id, got_event, st);
	if (n >= 0)
		n = receipt_steps(s, st, &r, receipts);
	if (n >= 0)
		n = ack_step(s, st, &r);
	json_t *out = NULL;
	if (n < 0) {
		snprintf(err, errlen, "store: %s", store_last_error(s));
		json_decref(receipts);
	} else {
		qsort(st->v, st->n, sizeof(st->v[0]), step_cmp);
		json_t *history = json_array();
		for (size_t i = 0; i < st->n; i++)
			json_array_append(history, st->v[i].obj);
		out = row_json(&r);
		json_object_set_new(out, "history", history);
		json_object_set_new(out, "receipts", receipts);
		json_object_set_new(out, "history_cut", json_integer((json_int_t)st->dropped));
	}
	for (size_t i = 0; i < st->n; i++)
		json_decref(st->v[i].obj);
	free(st);
	row_free(&r);
	return out;
}

json_t *trace_find(struct store *s, enum store_find by, const char *key, char *err,
		   size_t errlen)
{
	struct ids ids = { .n = 0 };
	if (store_find(s, by, key, TRACE_MAX, got_id, &ids) < 0) {
		snprintf(err, errlen, "store: %s", store_last_error(s));
		return NULL;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < ids.n; i++) {
		json_t *t = trace_message(s, ids.v[i], err, errlen);
		if (!t) { /* pruned between the look-up and the read: left out */
			if (strncmp(err, "store:", 6) == 0) {
				json_decref(arr);
				return NULL;
			}
			continue;
		}
		json_array_append_new(arr, t);
	}
	return arr;
}

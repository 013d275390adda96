/*
 * actions.c - the operators' actions of actions.h.
 *
 * Hold, retry, resend and delete run on the loop and answer at once: each
 * reads the message or endpoint, checks the state it may act on, saves its
 * change in one store transaction (store.h) and only then tells the
 * scheduler (deliver.h). A queued message being written to its receiver
 * right now is not deleted: the answer says to try again.
 *
 * Requeue needs work off the loop: a quarantined file is read back on its
 * endpoint's inbound lane (a share that hangs holds up only that
 * endpoint), and every message goes through ingest (decode on a lane,
 * route, duplicate check in the group commit). Each id is an item of a
 * batch that answers once every item is settled. A message that still has
 * no route is not stored again (INGEST_NO_DEAD) and no receipt is sent
 * again (INGEST_NO_RECEIPT): the dead letter or file stays as it was. One
 * that was stored (queued, a duplicate of a letter accepted meanwhile, or
 * a dead letter the store decided) ends the original record as requeued,
 * naming the message it became; a quarantined file is removed from the
 * quarantine folder first (its bytes are in the store now), so a crash in
 * between leaves a record whose file is already gone, never a file that
 * no record will ever remove.
 */
#include "control/actions.h"

#include "base/clock.h"
#include "base/fileio.h"
#include "base/lanes.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "control/trace.h"
#include "deliver/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static json_t *ok(json_t *obj)
{
	json_object_set_new(obj, "ok", json_true());
	return obj;
}

static const char *req_str(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

static int64_t req_id(const json_t *req)
{
	return json_integer_value(json_object_get(req, "id"));
}

/* What the actions need of a message's row (no body). */
struct msg_info {
	int found;
	enum msg_state state;
	int64_t removed_at;
	size_t size;
	char endpoint[128], source[128];
	bool has_file;
};

static int got_info(const struct store_msg *m, void *arg)
{
	struct msg_info *i = arg;
	i->state = m->state;
	i->removed_at = m->removed_at;
	i->size = m->size;
	str_copy(i->endpoint, m->endpoint ? m->endpoint : "", sizeof(i->endpoint));
	str_copy(i->source, m->source ? m->source : "", sizeof(i->source));
	i->has_file = m->file != NULL;
	return 0;
}

/* Reads message id's row into *i: 1 found, 0 not, -errno. */
static int msg_info(const struct control_env *e, int64_t id, struct msg_info *i)
{
	*i = (struct msg_info){ 0 };
	i->found = id > 0 ? store_get(e->store, id, false, got_info, i) : 0;
	return i->found;
}

static json_t *store_failed(const struct control_env *e)
{
	return control_error("store: %s", store_last_error(e->store));
}

/* ---- hold, release, retry ------------------------------------------------ */

/* The configured endpoint req names, into *row; NULL, or the error. */
static json_t *endpoint_of(const struct control_env *e, const json_t *req, const char *verb,
			   struct control_endpoint *row)
{
	const char *name = req_str(req, "endpoint");
	if (str_empty(name))
		return control_error("%s: which endpoint? (%s ENDPOINT)", verb, verb);
	if (!e->endpoint_named(e->ctx, name, row))
		return control_error("%s: no endpoint %s in the configuration", verb, name);
	return NULL;
}

json_t *actions_hold(const struct control_env *e, const json_t *req, const char *by, bool held)
{
	struct control_endpoint row;
	json_t *bad = endpoint_of(e, req, held ? "hold" : "release", &row);
	if (bad)
		return bad;
	int r = store_hold(e->store, row.name, held, clock_wall_ms(), by);
	if (r < 0)
		return store_failed(e);
	e->hold(e->ctx, row.name, held);
	return ok(json_pack("{s:s, s:b, s:b}", "endpoint", row.name, "held", held, "changed",
			    r > 0));
}

json_t *actions_retry(const struct control_env *e, const json_t *req, const char *by)
{
	struct control_endpoint row;
	json_t *bad = endpoint_of(e, req, "retry", &row);
	if (bad)
		return bad;
	if (row.held)
		return control_error("retry: %s is held; release it first", row.name);
	bool waiting = row.di.state == DELIVER_BACKOFF;
	deliver_retry_now(row.dep);
	return ok(json_pack("{s:s, s:b, s:s}", "endpoint", row.name, "was_waiting", waiting,
			    "state", deliver_state_name(row.di.state)));
}

/* ---- resend and delete --------------------------------------------------- */

struct copy {
	struct control_endpoint *row;
	bool queued;
};

static int enqueue_copy(const struct store_msg *m, void *arg)
{
	struct copy *c = arg;
	if (!m->body)
		return 0;
	uint8_t *body = xmalloc(m->size + 1);
	memcpy(body, m->body, m->size);
	deliver_enqueue(c->row->dep, m->id, body, m->size, m->ext, m->type, m->received_at);
	c->queued = true;
	return 0;
}

json_t *actions_resend(const struct control_env *e, const json_t *req, const char *by)
{
	int64_t id = req_id(req);
	struct msg_info i;
	if (msg_info(e, id, &i) < 0)
		return store_failed(e);
	if (!i.found)
		return control_error("resend: no message with id %" PRId64, id);
	if (i.state != MSG_DELIVERED)
		return control_error("resend: message %" PRId64 " is %s; only a delivered message is "
				     "resent%s", id, trace_state_name(i.state),
				     i.state == MSG_DEAD ? " (a dead letter: requeue it)" : "");
	struct control_endpoint row;
	if (!e->endpoint_named(e->ctx, i.endpoint, &row))
		return control_error("resend: endpoint %s is not in the configuration", i.endpoint);
	struct store_event ev = { .at = clock_wall_ms(), .kind = "resent", .by = by };
	int64_t copy = 0;
	int r = store_resend(e->store, id, &ev, &copy);
	if (r == -ENOENT)
		return control_error("resend: the body of message %" PRId64 " is no longer kept "
				     "([store] retention)", id);
	if (r < 0)
		return store_failed(e);
	struct copy c = { &row, false };
	if (store_get(e->store, copy, true, enqueue_copy, &c) < 0 || !c.queued)
		/* it is queued in the store: the scheduler reads it at its next load */
		log_warn("event=resend-not-scheduled msg=%" PRId64 " endpoint=%s error=\"%s\"", copy,
			 row.name, store_last_error(e->store));
	log_notice("event=resent msg=%" PRId64 " copy=%" PRId64 " endpoint=%s", id, copy, row.name);
	return ok(json_pack("{s:I, s:I, s:s}", "id", (json_int_t)id, "copy", (json_int_t)copy,
			    "endpoint", row.name));
}

json_t *actions_delete(const struct control_env *e, const json_t *req, const char *by)
{
	int64_t id = req_id(req);
	const char *reason = req_str(req, "reason");
	if (str_empty(reason))
		return control_error("delete: say why (--reason TEXT): it is kept in the history");
	struct msg_info i;
	if (msg_info(e, id, &i) < 0)
		return store_failed(e);
	if (!i.found)
		return control_error("delete: no message with id %" PRId64, id);
	if (i.state != MSG_QUEUED && i.state != MSG_DEAD)
		return control_error("delete: message %" PRId64 " is %s; only a dead letter or a "
				     "queued message is deleted", id, trace_state_name(i.state));
	struct control_endpoint row;
	bool scheduled = i.state == MSG_QUEUED && e->endpoint_named(e->ctx, i.endpoint, &row);
	if (scheduled && deliver_sending(row.dep, id))
		return control_error("delete: message %" PRId64 " is being delivered right now; "
				     "try again in a moment", id);
	struct store_event ev = { .at = clock_wall_ms(), .kind = "deleted", .detail = reason,
				  .by = by };
	int r = store_delete(e->store, id, i.state, &ev);
	if (r < 0)
		return store_failed(e);
	if (r == 0)
		return control_error("delete: message %" PRId64 " changed meanwhile; look again "
				     "(trace %" PRId64 ")", id, id);
	if (scheduled)
		deliver_forget(row.dep, id, i.size);
	log_notice("event=deleted msg=%" PRId64 " state-was=%s reason=\"%s\"", id,
		   trace_state_name(i.state), reason);
	return ok(json_pack("{s:I, s:s}", "id", (json_int_t)id, "was", trace_state_name(i.state)));
}

/* ---- requeue ------------------------------------------------------------- */

struct rq_batch;

struct rq {
	struct rq_batch *batch;
	int64_t id;
	enum msg_state from;
	char *source, *file;
	uint8_t *body;
	size_t size;
	int read_err;             /* the file read or removal, off the loop */
	struct ingest_outcome out; /* what ingest said (strings copied below) */
	char *reason;
	json_t *result;           /* set when settled */
};

struct rq_batch {
	const struct control_env *e;
	char *by;
	size_t n, pending;
	struct rq *items;
	actions_done_fn done;
	void *arg;
};

static void batch_finish(struct rq_batch *b)
{
	json_t *results = json_array();
	size_t failed = 0;
	const char *first = NULL;
	for (size_t i = 0; i < b->n; i++) {
		json_t *r = b->items[i].result;
		if (!json_is_true(json_object_get(r, "ok"))) {
			failed++;
			if (!first)
				first = json_string_value(json_object_get(r, "error"));
		}
		json_array_append(results, r);
	}
	json_t *ans = json_pack("{s:b, s:o}", "ok", failed == 0, "results", results);
	if (failed == 1 && b->n == 1)
		json_object_set_new(ans, "error", json_string(first ? first : "failed"));
	else if (failed)
		json_object_set_new(ans, "error",
				    json_sprintf("%zu of %zu could not be requeued; the first: %s",
						 failed, b->n, first ? first : "failed"));
	for (size_t i = 0; i < b->n; i++) {
		struct rq *q = &b->items[i];
		json_decref(q->result);
		free(q->source);
		free(q->file);
		free(q->body);
		free(q->reason);
	}
	actions_done_fn done = b->done;
	void *arg = b->arg;
	free(b->items);
	free(b->by);
	free(b);
	done(ans, arg);
}

/* Item q is settled with result r (taken over). */
static void settle(struct rq *q, json_t *r)
{
	q->result = r;
	struct rq_batch *b = q->batch;
	if (--b->pending == 0)
		batch_finish(b);
}

static void fail(struct rq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct rq *q, const char *fmt, ...)
{
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	settle(q, json_pack("{s:I, s:b, s:s}", "id", (json_int_t)q->id, "ok", 0, "error", text));
}

/* The original ends as requeued, naming the message it became. */
static void mark_requeued(struct rq *q)
{
	const struct control_env *e = q->batch->e;
	const struct ingest_outcome *o = &q->out;
	char detail[400];
	const char *outcome = o->result == INGEST_ACCEPTED    ? "accepted"
			      : o->result == INGEST_DUPLICATE ? "duplicate"
							      : "dead";
	if (o->result == INGEST_ACCEPTED)
		snprintf(detail, sizeof(detail), "routed to %s as message %" PRId64, q->reason,
			 o->id);
	else if (o->result == INGEST_DUPLICATE)
		snprintf(detail, sizeof(detail), "every letter was accepted before, as message "
			 "%" PRId64 ": not delivered again", o->id);
	else
		snprintf(detail, sizeof(detail), "a dead letter again, as message %" PRId64 ": %s",
			 o->id, q->reason ? q->reason : "");
	struct store_event ev = { .at = clock_wall_ms(), .kind = "requeued", .detail = detail,
				  .by = q->batch->by, .ref = o->id };
	int r = store_requeued(e->store, q->id, q->from, &ev);
	if (r < 0) {
		fail(q, "%" PRId64 ": %s, but its record could not be updated: %s", q->id, detail,
		     store_last_error(e->store));
		return;
	}
	/* Two formats, not an optional "%s" tail: log.c quotes a %s that does
	 * not follow "key=" when it holds a space or is empty, which would glue
	 * '""' or '" record=..."' onto new=. */
	if (r == 0)
		log_notice("event=requeued msg=%" PRId64 " outcome=%s new=%" PRId64
			   " record=changed-meanwhile", q->id, outcome, o->id);
	else
		log_notice("event=requeued msg=%" PRId64 " outcome=%s new=%" PRId64, q->id,
			   outcome, o->id);
	json_t *res = json_pack("{s:I, s:b, s:s, s:I, s:s}", "id", (json_int_t)q->id, "ok", 1,
				"outcome", outcome, "message", (json_int_t)o->id, "detail", detail);
	if (q->read_err < 0)
		json_object_set_new(res, "warning",
				    json_sprintf("the quarantined file could not be removed: %s",
						 strerror(-q->read_err)));
	settle(q, res);
}

/* Off the loop: the quarantined file and its .reason go (its bytes are
 * in the store now). Already gone counts as removed. */
static void remove_work(void *arg)
{
	struct rq *q = arg;
	_cleanup_free_ char *reason = xasprintf("%s.reason", q->file);
	q->read_err = unlink(q->file) < 0 && errno != ENOENT ? -errno : 0;
	if (unlink(reason) < 0 && errno != ENOENT && q->read_err == 0)
		q->read_err = -errno;
}

static void remove_done(void *arg)
{
	struct rq *q = arg;
	if (q->read_err < 0)
		log_warn("event=quarantine-remove-failed msg=%" PRId64 " path=%s error=\"%s\"", q->id,
			 q->file, strerror(-q->read_err));
	mark_requeued(q);
}

static void on_routed(const struct ingest_outcome *o, void *arg)
{
	struct rq *q = arg;
	q->out = *o;
	q->out.reason = q->out.endpoint = NULL; /* valid only during this call */
	q->out.error = NULL;
	free(q->reason);
	q->reason = xstrdup_or_null(o->result == INGEST_ACCEPTED ? o->endpoint : o->reason);
	switch (o->result) {
	case INGEST_ACCEPTED:
	case INGEST_DUPLICATE:
		break;
	case INGEST_DEAD:
		if (o->id > 0)
			break; /* the store decided: a dead letter of its own now */
		fail(q, "%" PRId64 ": still no route: %s", q->id, o->reason ? o->reason : "");
		return;
	case INGEST_REJECTED:
		fail(q, "%" PRId64 ": cannot be decoded: %s", q->id,
		     o->error ? o->error->text : o->reason ? o->reason : "");
		return;
	case INGEST_FORBIDDEN:
		fail(q, "%" PRId64 ": refused: %s", q->id, o->reason ? o->reason : "");
		return;
	case INGEST_BUSY:
	case INGEST_TEMPFAIL:
		fail(q, "%" PRId64 ": not now (%s); try again later", q->id,
		     o->reason ? o->reason : "");
		return;
	}
	struct lane *lane = q->from == MSG_QUARANTINED ? q->batch->e->inbound_lane(
							       q->batch->e->ctx, q->source)
						       : NULL;
	if (lane)
		lane_submit(lane, remove_work, remove_done, q);
	else
		mark_requeued(q);
}

static void route(struct rq *q)
{
	const struct control_env *e = q->batch->e;
	ingest_submit(e->ingest, q->source, TAKE_PTR(q->body), q->size,
		      INGEST_NO_DEAD | INGEST_NO_RECEIPT, on_routed, q);
}

/* Off the loop, on the endpoint's inbound lane: the quarantined file. */
static void read_work(void *arg)
{
	struct rq *q = arg;
	q->read_err = read_file_at(AT_FDCWD, q->file, (size_t)q->batch->e->max_message_size,
				   &q->body, &q->size);
}

static void read_done(void *arg)
{
	struct rq *q = arg;
	if (q->read_err < 0) {
		fail(q, "%" PRId64 ": cannot read %s: %s", q->id, q->file,
		     q->read_err == -EFBIG ? "larger than max_message_size"
					   : strerror(-q->read_err));
		return;
	}
	q->read_err = 0;
	route(q);
}

/* Copies what requeue needs of the row, and the body of a dead letter. */
static int got_requeue(const struct store_msg *m, void *arg)
{
	struct rq *q = arg;
	q->from = m->state;
	q->source = xstrdup_or_null(m->source);
	q->file = xstrdup_or_null(m->file);
	if (m->state == MSG_DEAD && m->body) {
		q->body = xmalloc(m->size + 1);
		memcpy(q->body, m->body, m->size);
		q->size = m->size;
	}
	return 0;
}

/* Starts item q: settled at once, or off to a lane or ingest. */
static void start_one(struct rq *q)
{
	const struct control_env *e = q->batch->e;
	int r = q->id > 0 ? store_get(e->store, q->id, true, got_requeue, q) : 0;
	struct control_endpoint row;
	if (r < 0)
		fail(q, "%" PRId64 ": store: %s", q->id, store_last_error(e->store));
	else if (r == 0)
		fail(q, "%" PRId64 ": no such message", q->id);
	else if (q->from != MSG_DEAD && q->from != MSG_QUARANTINED)
		fail(q, "%" PRId64 ": it is %s; only a dead letter or a quarantined file is "
		     "requeued", q->id, trace_state_name(q->from));
	else if (!q->source || !e->endpoint_named(e->ctx, q->source, &row))
		fail(q, "%" PRId64 ": the endpoint it came from (%s) is not in the configuration",
		     q->id, q->source ? q->source : "unknown");
	else if (q->from == MSG_DEAD && !q->body)
		fail(q, "%" PRId64 ": its body was removed by retention ([store] dead_retention)",
		     q->id);
	else if (q->from == MSG_QUARANTINED && !q->file)
		fail(q, "%" PRId64 ": its file is not recorded", q->id);
	else if (q->from == MSG_QUARANTINED)
		lane_submit(e->inbound_lane(e->ctx, q->source), read_work, read_done, q);
	else
		route(q);
}

/* The ids of req: "ids" (an array) or "id"; 0 on a bad one. */
static size_t req_ids(const json_t *req, int64_t *ids, size_t max)
{
	const json_t *arr = json_object_get(req, "ids");
	if (!arr) {
		ids[0] = req_id(req);
		return 1;
	}
	size_t i, n = 0;
	json_t *v;
	json_array_foreach(arr, i, v)
		if (n < max)
			ids[n++] = json_integer_value(v);
	return json_array_size(arr) > max ? max + 1 : n;
}

void actions_requeue(const struct control_env *e, const json_t *req, const char *by,
		     actions_done_fn done, void *arg)
{
	int64_t ids[ACTIONS_REQUEUE_MAX + 1];
	size_t n = req_ids(req, ids, ACTIONS_REQUEUE_MAX);
	if (n == 0 || n > ACTIONS_REQUEUE_MAX) {
		done(control_error("requeue: give 1 to %d ids", ACTIONS_REQUEUE_MAX), arg);
		return;
	}
	struct rq_batch *b = xcalloc(1, sizeof(*b));
	*b = (struct rq_batch){ .e = e, .by = xstrdup(by), .n = n, .pending = n + 1,
				.items = xcalloc(n, sizeof(struct rq)), .done = done, .arg = arg };
	for (size_t i = 0; i < n; i++)
		b->items[i] = (struct rq){ .batch = b, .id = ids[i] };
	for (size_t i = 0; i < n; i++)
		start_one(&b->items[i]);
	if (--b->pending == 0) /* every item settled at once */
		batch_finish(b);
}

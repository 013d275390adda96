/*
 * actions.c - the operators' actions of actions.h.
 *
 * Hold, resend and delete read the message or endpoint, check the state
 * they may act on, save their change in one store transaction (store.h)
 * and only then tell the scheduler (deliver.h). Their store calls run on
 * the store's lanes (storejob.h: reads on the read lane, changes on the
 * write lane, in order with the group commit); the checks against the
 * configuration and the scheduler, and what the scheduler is told, run on
 * the loop. A change the store made after the operator's deadline is still
 * applied to the scheduler. Retry touches no store and answers at once. A
 * queued message being written to its receiver right now is not deleted:
 * the answer says to try again.
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
#include "control/storejob.h"
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

/* Reads message id's row into *i: 1 found, 0 not, -errno. On a lane. */
static int msg_info(struct store *view, int64_t id, struct msg_info *i)
{
	*i = (struct msg_info){ 0 };
	i->found = id > 0 ? store_get(view, id, false, got_info, i) : 0;
	return i->found;
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

struct hold_job {
	const struct control_env *e;
	char *endpoint, *by;
	bool held;
	int64_t at;
	int r;
	char err[256];
};

static void hold_work(struct store *view, void *data)
{
	struct hold_job *h = data;
	h->r = store_hold(view, h->endpoint, h->held, h->at, h->by);
	if (h->r < 0)
		str_copy(h->err, store_last_error(view), sizeof(h->err));
}

/* The hold the store recorded is applied even when its answer came too
 * late for the operator: the loop's state follows the store. */
static json_t *hold_finish(void *data, bool late)
{
	struct hold_job *h = data;
	if (h->r < 0)
		return control_error("store: %s", h->err);
	h->e->hold(h->e->ctx, h->endpoint, h->held);
	return ok(json_pack("{s:s, s:b, s:b}", "endpoint", h->endpoint, "held", h->held,
			    "changed", h->r > 0));
}

static void hold_free(void *data)
{
	struct hold_job *h = data;
	free(h->endpoint);
	free(h->by);
	free(h);
}

static const struct storejob_ops hold_ops = { .work = hold_work, .finish = hold_finish,
					      .free = hold_free };

void actions_hold(const struct control_env *e, const json_t *req, const char *by, bool held,
		  actions_done_fn done, void *arg)
{
	struct control_endpoint row;
	json_t *bad = endpoint_of(e, req, held ? "hold" : "release", &row);
	if (bad) {
		done(bad, arg);
		return;
	}
	struct hold_job *h = xcalloc(1, sizeof(*h));
	*h = (struct hold_job){ .e = e, .endpoint = xstrdup(row.name), .by = xstrdup(by),
				.held = held, .at = clock_wall_ms() };
	/* a write: on the write lane, in order with the group commit */
	storejob_run(e, STORE_LANE_WRITE, held ? "hold" : "release", &hold_ops, h,
		     done, arg);
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

/*
 * Each runs in two store jobs: the message's row is read on the read lane,
 * the loop checks it against the configuration and the scheduler, and the
 * change is written on the write lane (in order with the group commit);
 * the scheduler hears of it on the loop once it is durable. The second
 * job's data is the first's, moved over (msg_job_next).
 */
struct msg_job {
	const struct control_env *e;
	actions_done_fn done;
	void *arg;
	int64_t id, at;
	char *by, *reason;
	struct msg_info i;
	int r;
	char err[256];
	int64_t copy;          /* resend: the new message, and its row for the scheduler */
	uint8_t *body;
	size_t size;
	char *ext, *type;
	int64_t received_at;
	bool scheduled;        /* delete: the scheduler holds it (queued, configured) */
};

static void msg_job_free(void *data)
{
	struct msg_job *j = data;
	free(j->by);
	free(j->reason);
	free(j->body);
	free(j->ext);
	free(j->type);
	free(j);
}

static void info_work(struct store *view, void *data)
{
	struct msg_job *j = data;
	j->r = msg_info(view, j->id, &j->i);
	if (j->r < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* The second job of j: j's fields (strings taken over), j left empty. */
static struct msg_job *msg_job_next(struct msg_job *j)
{
	struct msg_job *n = xmalloc(sizeof(*n));
	*n = *j;
	j->by = j->reason = NULL;
	j->body = NULL;
	j->ext = j->type = NULL;
	return n;
}

static int copy_body(const struct store_msg *m, void *arg)
{
	struct msg_job *j = arg;
	if (!m->body)
		return 0;
	j->body = xmalloc(m->size + 1);
	memcpy(j->body, m->body, m->size);
	j->size = m->size;
	j->ext = xstrdup_or_null(m->ext);
	j->type = xstrdup_or_null(m->type);
	j->received_at = m->received_at;
	return 0;
}

/* The read of a message to resend or delete: an error answer when it
 * failed or found nothing, else NULL. */
static json_t *msg_found(const struct msg_job *j, const char *verb)
{
	if (j->r < 0)
		return control_error("store: %s", j->err);
	if (!j->i.found)
		return control_error("%s: no message with id %" PRId64, verb, j->id);
	return NULL;
}

static void resend_work(struct store *view, void *data)
{
	struct msg_job *j = data;
	struct store_event ev = { .at = j->at, .kind = "resent", .by = j->by };
	j->r = store_resend(view, j->id, &ev, &j->copy);
	if (j->r < 0) {
		str_copy(j->err, store_last_error(view), sizeof(j->err));
		return;
	}
	/* the copy for the scheduler; without it the next load reads it */
	if (store_get(view, j->copy, true, copy_body, j) < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* The copy is queued in the store: the scheduler gets it now when the
 * endpoint is still configured, else at its next load. */
static json_t *resend_finish(void *data, bool late)
{
	struct msg_job *j = data;
	if (j->r == -ENOENT)
		return control_error("resend: the body of message %" PRId64 " is no longer kept "
				     "([store] retention)", j->id);
	if (j->r < 0)
		return control_error("store: %s", j->err);
	struct control_endpoint row;
	if (j->body && j->e->endpoint_named(j->e->ctx, j->i.endpoint, &row))
		deliver_enqueue(row.dep, j->copy, TAKE_PTR(j->body), j->size, j->ext, j->type,
				j->received_at);
	else
		log_warn("event=resend-not-scheduled msg=%" PRId64 " endpoint=%s error=\"%s\"",
			 j->copy, j->i.endpoint, j->err);
	log_notice("event=resent msg=%" PRId64 " copy=%" PRId64 " endpoint=%s", j->id, j->copy,
		   j->i.endpoint);
	return ok(json_pack("{s:I, s:I, s:s}", "id", (json_int_t)j->id, "copy",
			    (json_int_t)j->copy, "endpoint", j->i.endpoint));
}

static const struct storejob_ops resend_ops = { .work = resend_work, .finish = resend_finish,
						.free = msg_job_free };

static json_t *resend_checked(void *data, bool late)
{
	struct msg_job *j = data;
	if (late)
		return NULL; /* the operator was answered: nothing is changed */
	json_t *bad = msg_found(j, "resend");
	if (bad)
		return bad;
	if (j->i.state != MSG_DELIVERED)
		return control_error("resend: message %" PRId64 " is %s; only a delivered message is "
				     "resent%s", j->id, trace_state_name(j->i.state),
				     j->i.state == MSG_DEAD ? " (a dead letter: requeue it)" : "");
	struct control_endpoint row;
	if (!j->e->endpoint_named(j->e->ctx, j->i.endpoint, &row))
		return control_error("resend: endpoint %s is not in the configuration",
				     j->i.endpoint);
	j->at = clock_wall_ms();
	struct msg_job *n = msg_job_next(j);
	storejob_run(j->e, STORE_LANE_WRITE, "resend", &resend_ops, n, n->done,
		     n->arg);
	return NULL;
}

static const struct storejob_ops resend_check_ops = {
	.work = info_work, .finish = resend_checked, .free = msg_job_free
};

static struct msg_job *msg_job_new(const struct control_env *e, const json_t *req,
				   const char *by, actions_done_fn done, void *arg)
{
	struct msg_job *j = xcalloc(1, sizeof(*j));
	*j = (struct msg_job){ .e = e, .done = done, .arg = arg, .id = req_id(req),
			       .by = xstrdup(by), .reason = xstrdup_or_null(req_str(req, "reason")) };
	return j;
}

void actions_resend(const struct control_env *e, const json_t *req, const char *by,
		    actions_done_fn done, void *arg)
{
	struct msg_job *j = msg_job_new(e, req, by, done, arg);
	storejob_run(e, STORE_LANE_READ, "resend", &resend_check_ops, j, done, arg);
}

static void delete_work(struct store *view, void *data)
{
	struct msg_job *j = data;
	struct store_event ev = { .at = j->at, .kind = "deleted", .detail = j->reason,
				  .by = j->by };
	j->r = store_delete(view, j->id, j->i.state, &ev);
	if (j->r < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* The scheduler forgets a message the store has deleted, also when the
 * answer came too late for the operator. */
static json_t *delete_finish(void *data, bool late)
{
	struct msg_job *j = data;
	if (j->r < 0)
		return control_error("store: %s", j->err);
	if (j->r == 0)
		return control_error("delete: message %" PRId64 " changed meanwhile; look again "
				     "(trace %" PRId64 ")", j->id, j->id);
	struct control_endpoint row;
	if (j->scheduled && j->e->endpoint_named(j->e->ctx, j->i.endpoint, &row)) {
		/* a server store's write takes a round trip, in which a batch may
		 * have started it: that delivery finishes, the record stays deleted */
		if (deliver_sending(row.dep, j->id))
			log_warn("event=deleted-while-sending msg=%" PRId64 " endpoint=%s", j->id,
				 row.name);
		else
			deliver_forget(row.dep, j->id, j->i.size);
	}
	log_notice("event=deleted msg=%" PRId64 " state-was=%s reason=\"%s\"", j->id,
		   trace_state_name(j->i.state), j->reason);
	return ok(json_pack("{s:I, s:s}", "id", (json_int_t)j->id, "was",
			    trace_state_name(j->i.state)));
}

static const struct storejob_ops delete_ops = { .work = delete_work, .finish = delete_finish,
						.free = msg_job_free };

static json_t *delete_checked(void *data, bool late)
{
	struct msg_job *j = data;
	if (late)
		return NULL; /* the operator was answered: nothing is changed */
	json_t *bad = msg_found(j, "delete");
	if (bad)
		return bad;
	if (j->i.state != MSG_QUEUED && j->i.state != MSG_DEAD)
		return control_error("delete: message %" PRId64 " is %s; only a dead letter or a "
				     "queued message is deleted", j->id,
				     trace_state_name(j->i.state));
	struct control_endpoint row;
	j->scheduled = j->i.state == MSG_QUEUED &&
		       j->e->endpoint_named(j->e->ctx, j->i.endpoint, &row);
	if (j->scheduled && deliver_sending(row.dep, j->id))
		return control_error("delete: message %" PRId64 " is being delivered right now; "
				     "try again in a moment", j->id);
	j->at = clock_wall_ms();
	struct msg_job *n = msg_job_next(j);
	storejob_run(j->e, STORE_LANE_WRITE, "delete", &delete_ops, n, n->done,
		     n->arg);
	return NULL;
}

static const struct storejob_ops delete_check_ops = {
	.work = info_work, .finish = delete_checked, .free = msg_job_free
};

void actions_delete(const struct control_env *e, const json_t *req, const char *by,
		    actions_done_fn done, void *arg)
{
	if (str_empty(req_str(req, "reason"))) {
		done(control_error("delete: say why (--reason TEXT): it is kept in the history"),
		     arg);
		return;
	}
	struct msg_job *j = msg_job_new(e, req, by, done, arg);
	storejob_run(e, STORE_LANE_READ, "delete", &delete_check_ops, j, done, arg);
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
	struct storejob_audit *audit; /* the verb's: records made later are audited */
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
	storejob_audit_unref(b->audit);
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

/* A requeue item's store job (the row read, the record's update): its own
 * data, so a completion after the deadline settled the item touches no
 * item; q only on the loop, and only before the item is settled. */
struct rq_job {
	struct rq *q;
	int64_t id;
	enum msg_state from;
	int r;
	char err[256];
	/* the read: what requeue needs of the row */
	char *source, *file;
	uint8_t *body;
	size_t size;
	/* the update */
	char *by, *detail;
	const char *outcome;
	int64_t at, ref;
};

static void rq_job_free(void *data)
{
	struct rq_job *j = data;
	free(j->source);
	free(j->file);
	free(j->body);
	free(j->by);
	free(j->detail);
	free(j);
}

/* A job's answer settles its item: its deadline's, or an early error. */
static void rq_answered(json_t *ans, void *arg)
{
	struct rq *q = arg;
	const char *err = json_string_value(json_object_get(ans, "error"));
	fail(q, "%s", err ? err : "failed");
	json_decref(ans);
}

static void requeued_work(struct store *view, void *data)
{
	struct rq_job *j = data;
	struct store_event ev = { .at = j->at, .kind = "requeued", .detail = j->detail,
				  .by = j->by, .ref = j->ref };
	j->r = store_requeued(view, j->id, j->from, &ev);
	if (j->r < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* Logged whenever the update is made, also after the deadline answered. */
static json_t *requeued_finish(void *data, bool late)
{
	struct rq_job *j = data;
	if (j->r >= 0) {
		/* Two formats, not an optional "%s" tail: log.c quotes a %s that
		 * does not follow "key=" when it holds a space or is empty, which
		 * would glue '""' or '" record=..."' onto new=. */
		if (j->r == 0)
			log_notice("event=requeued msg=%" PRId64 " outcome=%s new=%" PRId64
				   " record=changed-meanwhile", j->id, j->outcome, j->ref);
		else
			log_notice("event=requeued msg=%" PRId64 " outcome=%s new=%" PRId64, j->id,
				   j->outcome, j->ref);
	}
	if (late) /* the operator heard "may still say": a record made now is audited */
		return j->r >= 0 ? json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)j->id)
				 : NULL;
	struct rq *q = j->q;
	if (j->r < 0) {
		fail(q, "%" PRId64 ": %s, but its record could not be updated: %s", q->id,
		     j->detail, j->err);
		return NULL;
	}
	json_t *res = json_pack("{s:I, s:b, s:s, s:I, s:s}", "id", (json_int_t)q->id, "ok", 1,
				"outcome", j->outcome, "message", (json_int_t)j->ref, "detail",
				j->detail);
	if (q->read_err < 0)
		json_object_set_new(res, "warning",
				    json_sprintf("the quarantined file could not be removed: %s",
						 strerror(-q->read_err)));
	settle(q, res);
	return NULL;
}

static json_t *requeued_timeout(void *data)
{
	struct rq_job *j = data;
	return control_error("%" PRId64 ": %s, but the store did not answer in time: its record "
			     "may still say %s", j->id, j->detail, trace_state_name(j->from));
}

static const struct storejob_ops requeued_ops = { .work = requeued_work,
						  .finish = requeued_finish,
						  .timeout = requeued_timeout,
						  .free = rq_job_free };

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
	struct rq_job *j = xcalloc(1, sizeof(*j));
	*j = (struct rq_job){ .q = q, .id = q->id, .from = q->from, .by = xstrdup(q->batch->by),
			      .detail = xstrdup(detail), .outcome = outcome,
			      .at = clock_wall_ms(), .ref = o->id };
	/* called back from ingest, outside the verb's dispatch: its audit
	 * again, so a record made after the deadline is audited too */
	struct storejob_audit *outer = storejob_audit_hold();
	storejob_audit_begin(q->batch->audit);
	storejob_run(e, STORE_LANE_WRITE, "requeue", &requeued_ops, j, rq_answered, q);
	storejob_audit_begin(outer);
	storejob_audit_unref(outer);
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
	struct rq_job *j = arg;
	j->from = m->state;
	j->source = xstrdup_or_null(m->source);
	j->file = xstrdup_or_null(m->file);
	if (m->state == MSG_DEAD && m->body) {
		j->body = xmalloc(m->size + 1);
		memcpy(j->body, m->body, m->size);
		j->size = m->size;
	}
	return 0;
}

static void get_work(struct store *view, void *data)
{
	struct rq_job *j = data;
	j->r = store_get(view, j->id, true, got_requeue, j);
	if (j->r < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* Back on the loop with the row: settled, or off to a lane or ingest. */
static json_t *got_finish(void *data, bool late)
{
	struct rq_job *j = data;
	if (late)
		return NULL; /* the item failed at the deadline: nothing started */
	struct rq *q = j->q;
	const struct control_env *e = q->batch->e;
	q->from = j->from;
	q->source = TAKE_PTR(j->source);
	q->file = TAKE_PTR(j->file);
	q->body = TAKE_PTR(j->body);
	q->size = j->size;
	struct control_endpoint row;
	if (j->r < 0)
		fail(q, "%" PRId64 ": store: %s", q->id, j->err);
	else if (j->r == 0)
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
	return NULL;
}

static json_t *got_timeout(void *data)
{
	struct rq_job *j = data;
	return control_error("%" PRId64 ": store: no answer in time", j->id);
}

static const struct storejob_ops get_ops = { .work = get_work, .finish = got_finish,
					     .timeout = got_timeout, .free = rq_job_free };

/* Starts item q: its row is read on the store's read lane. */
static void start_one(struct rq *q)
{
	const struct control_env *e = q->batch->e;
	if (q->id <= 0) {
		fail(q, "%" PRId64 ": no such message", q->id);
		return;
	}
	struct rq_job *j = xcalloc(1, sizeof(*j));
	*j = (struct rq_job){ .q = q, .id = q->id };
	storejob_run(e, STORE_LANE_READ, "requeue", &get_ops, j, rq_answered, q);
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
				.items = xcalloc(n, sizeof(struct rq)), .done = done, .arg = arg,
				.audit = storejob_audit_hold() };
	for (size_t i = 0; i < n; i++)
		b->items[i] = (struct rq){ .batch = b, .id = ids[i] };
	for (size_t i = 0; i < n; i++)
		start_one(&b->items[i]);
	if (--b->pending == 0) /* every item settled at once */
		batch_finish(b);
}

/*
 * control_cmds.c - answers control-socket requests from the daemon's state,
 * reached through struct control_env.
 *
 * Read-only views: live delivery state from the endpoint callbacks, queued
 * and dead messages, quarantined files and the outage records from the
 * store (views.c), a message's trace (trace.c). Changes to outages and
 * planned shutdowns go to the outage procedure, keep and release to the
 * store, and the actions on single messages and endpoints (requeue, hold,
 * release, retry, resend, delete) to actions.c. Every store call a verb
 * makes runs on a store lane through storejob.h, never on the loop's own
 * connection, and answers within its deadline; the loop's state (the
 * endpoint table, the procedure) is read only when the answer is composed.
 * Such a verb answers later (control_defer) unless the store answered
 * inside the call (sqlite); its audit line is written when it answers.
 * The outage and maintenance changes (open, close, set, add, remove) too:
 * procedure_ops.c prepares each record on the loop, it is written on the
 * write lane, and the procedure applies it once the store has it.
 *
 * The table cmds[] at the bottom is the whole protocol: every verb and
 * action, whether it changes state, and the record id its audit line
 * names. control_dispatch() is the one gate: it checks the request's
 * strings, refuses a change to a caller without the role, runs the verb,
 * and logs every change with the caller. Answers carry ids, types, GLNs,
 * counts, ages and paths - never message content.
 */
#include "control/control_cmds.h"

#include "control/actions.h"
#include "control/storejob.h"
#include "control/trace.h"
#include "cluster/cluster.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "metrics/metrics.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define LIST_DEFAULT 100
#define LIST_MAX 10000

/* A verb (or one action of it). by names the caller for changed_by. */
typedef json_t *(*cmd_fn)(const struct control_env *e, const json_t *req, const char *by);

static json_t *ok(json_t *obj)
{
	json_object_set_new(obj, "ok", json_true());
	return obj;
}

static json_t *endpoint_json(const struct control_env *e, const struct control_endpoint *ep,
			     int64_t now)
{
	struct procedure_health h;
	bool known = procedure_endpoint_health(e->proc, ep->name, &h);
	return views_endpoint(ep, known ? &h : NULL, now);
}

struct unconfigured {
	const struct control_env *e;
	json_t *arr;
};

/* Queues in the store for endpoints the config no longer has. */
static int add_unconfigured(const struct store_depth *d, void *arg)
{
	struct unconfigured *u = arg;
	struct control_endpoint row;
	if (u->e->endpoint_named(u->e->ctx, d->endpoint, &row))
		return 0;
	json_array_append_new(u->arr, json_pack("{s:s, s:s, s:s, s:I}", "name", d->endpoint,
						"kind", "-", "state", "unconfigured", "queued",
						(json_int_t)d->queued));
	return 0;
}

/* What the status needs from the store, read on the store's read lane: a
 * server's answer never waits on the loop (with sqlite it runs at once).
 * A server that does not answer in time (storejob.h) does not hold the
 * operator either: the status answers without those figures and says so. */
struct status_job {
	const struct control_env *e;
	struct store_depth *depths;  /* endpoint names owned */
	size_t ndepths;
	int depths_r;
	int64_t dead;                /* 0 when the store cannot say */
	bool read_done;
};

static void status_free(void *data)
{
	struct status_job *j = data;
	store_depths_free(j->depths, j->ndepths);
	free(j);
}

static void status_read(struct store *view, void *arg)
{
	struct status_job *j = arg;
	j->depths_r = store_depths_copy(view, &j->depths, &j->ndepths);
	if (j->depths_r < 0)
		log_debug("event=status-partial error=\"%s\"", store_last_error(view));
	if (store_count(view, MSG_DEAD, &j->dead) < 0)
		j->dead = 0; /* the status still answers; its "store" field says why */
}

/* The answer, from the loop's own state and the reads if they are in. */
static json_t *status_answer(struct status_job *j)
{
	const struct control_env *e = j->e;
	int64_t now = clock_wall_ms();
	json_t *eps = json_array();
	struct control_endpoint row;
	for (size_t i = 0; e->endpoint_at(e->ctx, i, &row); i++) {
		json_t *o = endpoint_json(e, &row, now);
		if (e->cluster) { /* who delivers it, as the last lease round saw */
			_cleanup_free_ char *lease = xasprintf("ep:%s", row.name);
			const char *owner = views_lease_owner(e->cluster, lease);
			json_object_set_new(o, "holder", owner ? json_string(owner) : json_null());
			json_object_set_new(o, "epoch", json_integer(row.di.epoch));
		}
		json_array_append_new(eps, o);
	}
	/* Unconfigured queues are extra rows: while the store fails the status
	 * answers without them (its "store" field says it is failing). */
	struct unconfigured u = { e, eps };
	for (size_t i = 0; j->read_done && j->depths_r >= 0 && i < j->ndepths; i++)
		add_unconfigured(&j->depths[i], &u);
	struct commit_stats cs;
	commit_stats(e->commit, &cs);
	json_t *ans = json_pack("{s:o, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "endpoints", eps,
			    /* not read before the lane is done: it may be writing it */
			    "dead", (json_int_t)(j->read_done ? j->dead : 0), "store",
			    commit_healthy(e->commit) ? "ok" : "failing", "store_error",
			    commit_last_error(e->commit), "commits", (json_int_t)cs.commits,
			    "commit_ms_total", (json_int_t)cs.total_ms, "commits_failed",
			    (json_int_t)cs.failed, "accepted", (json_int_t)cs.messages, "uptime_s",
			    (json_int_t)((now - e->started_at) / 1000));
	/* ready: this node can do its work (a node cut off from the database
	 * says so here and in STATUS=, and the others take over) */
	bool ready = commit_healthy(e->commit) && (!e->cluster || cluster_reachable(e->cluster));
	json_object_set_new(ans, "ready", json_boolean(ready));
	if (e->cluster)
		json_object_set_new(ans, "cluster",
				    views_cluster(e->cluster, store_node_name(e->store)));
	if (!j->read_done) { /* dead letters and unconfigured queues are not known */
		json_object_set_new(ans, "dead", json_null());
		json_object_set_new(ans, "store_read", json_string("no answer in time"));
	}
	return ok(ans);
}

static json_t *status_finish(void *data, bool late)
{
	struct status_job *j = data;
	j->read_done = true;
	return late ? NULL : status_answer(j);
}

/* The deadline came first: the status without the store's figures. */
static json_t *status_timeout(void *data)
{
	return status_answer(data);
}

static const struct storejob_ops status_ops = {
	.work = status_read, .finish = status_finish, .timeout = status_timeout,
	.free = status_free,
};

static void cmd_status(const struct control_env *e, const json_t *req, const char *by,
		       actions_done_fn done, void *arg)
{
	struct status_job *j = xcalloc(1, sizeof(*j));
	j->e = e;
	storejob_run(e, STORE_LANE_READ, "status", &status_ops, j, done, arg);
}

/* ---- the views: built on a store lane from the request's own copy ------ */

struct view_job;
/* On the lane: the whole answer from view (ok or an error), data only. */
typedef json_t *(*view_read_fn)(struct store *view, const struct view_job *v);

struct view_job {
	const struct control_env *e; /* used only on the loop (view_finish) */
	json_t *req;                 /* the request's own copy: the lane reads it */
	int64_t now, ack_timeout_ms; /* taken on the loop */
	view_read_fn read;
	/* On the loop, with an ok answer: what of the loop's state it adds. */
	void (*loop_part)(const struct view_job *v, json_t *ans);
	json_t *ans;                 /* the lane's answer */
};

static void view_work(struct store *view, void *data)
{
	struct view_job *v = data;
	v->ans = v->read(view, v);
}

static json_t *view_finish(void *data, bool late)
{
	struct view_job *v = data;
	json_t *ans = TAKE_PTR(v->ans);
	if (!late && v->loop_part && json_is_true(json_object_get(ans, "ok")))
		v->loop_part(v, ans);
	return ans;
}

static void view_free(void *data)
{
	struct view_job *v = data;
	json_decref(v->req);
	json_decref(v->ans);
	free(v);
}

static const struct storejob_ops view_ops = { .work = view_work, .finish = view_finish,
					      .free = view_free };

/* Runs read on lane: the read lane, or the write lane for a view that
 * changes a record (its write is then ordered with the group commit). */
static void run_view(const struct control_env *e, const json_t *req, enum store_lane lane,
		     const char *verb, view_read_fn read,
		     void (*loop_part)(const struct view_job *v, json_t *ans),
		     actions_done_fn done, void *arg)
{
	struct view_job *v = xcalloc(1, sizeof(*v));
	*v = (struct view_job){ .e = e, .req = json_deep_copy(req), .now = clock_wall_ms(),
				.ack_timeout_ms = e->ack_timeout_ms, .read = read,
				.loop_part = loop_part };
	storejob_run(e, lane, verb, &view_ops, v, done, arg);
}

struct list_ctx {
	json_t *arr;
	int64_t now;
};

static int add_msg(const struct store_msg *m, void *arg)
{
	struct list_ctx *l = arg;
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:s, s:s}", "id",
			      (json_int_t)m->id, "type", m->type ? m->type : "", "sender",
			      m->sender ? m->sender : "", "receiver", m->receiver ? m->receiver : "",
			      "letters", m->nletters, "age_s",
			      (json_int_t)((l->now - m->received_at) / 1000), "attempts", m->attempts,
			      "size", (json_int_t)m->size, "envelope",
			      m->envelope_id ? m->envelope_id : "", "source", m->source ? m->source : "");
	if (m->last_error)
		json_object_set_new(o, "last_error", json_string(m->last_error));
	if (m->reason)
		json_object_set_new(o, "reason", json_string(m->reason));
	if (m->ack != ACK_NONE)
		json_object_set_new(o, "ack", json_string(store_ack_name(m->ack)));
	if (m->state == MSG_DEAD || m->state == MSG_QUARANTINED) {
		json_object_set_new(o, "keep", json_boolean(m->keep));
		json_object_set_new(o, "removed_ms",
				    m->removed_at ? json_integer(m->removed_at) : json_null());
	}
	if (m->state == MSG_QUARANTINED) {
		json_object_set_new(o, "file", json_string(m->file ? m->file : ""));
		json_object_set_new(o, "error", json_string(m->error_class ? m->error_class : ""));
	}
	json_array_append_new(l->arr, o);
	return 0;
}

static size_t req_limit(const json_t *req)
{
	json_int_t n = json_integer_value(json_object_get(req, "limit"));
	if (n <= 0)
		return LIST_DEFAULT;
	return n > LIST_MAX ? LIST_MAX : (size_t)n;
}

static const char *req_str(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

static json_t *list_state(struct store *view, enum msg_state st, const char *endpoint,
			  size_t limit, int64_t now)
{
	struct list_ctx l = { json_array(), now };
	int r = store_list(view, st, endpoint, limit, add_msg, &l);
	if (r < 0) {
		json_decref(l.arr);
		return control_error("store: %s", store_last_error(view));
	}
	return ok(json_pack("{s:o}", "messages", l.arr));
}

static json_t *queue_read(struct store *view, const struct view_job *v)
{
	return list_state(view, MSG_QUEUED, req_str(v->req, "endpoint"), req_limit(v->req),
			  v->now);
}

/* The scheduler's own count, as the loop has it when the list is in. */
static void queue_loop_part(const struct view_job *v, json_t *ans)
{
	const char *name = req_str(v->req, "endpoint");
	struct control_endpoint row;
	bool configured = v->e->endpoint_named(v->e->ctx, name, &row);
	json_object_set_new(ans, "endpoint", json_string(name));
	json_object_set_new(ans, "configured", json_boolean(configured));
	json_object_set_new(ans, "queued", json_integer(configured ? row.di.queued : -1));
}

static void cmd_queue(const struct control_env *e, const json_t *req, const char *by,
		      actions_done_fn done, void *arg)
{
	if (str_empty(req_str(req, "endpoint"))) {
		done(control_error("queue: which endpoint? (queue ENDPOINT)"), arg);
		return;
	}
	run_view(e, req, STORE_LANE_READ, "queue", queue_read, queue_loop_part, done, arg);
}

static json_t *dead_read(struct store *view, const struct view_job *v)
{
	json_t *ans = list_state(view, MSG_DEAD, NULL, req_limit(v->req), v->now);
	int64_t dead = 0;
	if (store_count(view, MSG_DEAD, &dead) < 0)
		dead = 0; /* the listing still answers while the count fails */
	if (json_is_true(json_object_get(ans, "ok")))
		json_object_set_new(ans, "dead", json_integer(dead));
	return ans;
}

static void cmd_dead(const struct control_env *e, const json_t *req, const char *by,
		     actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "dead", dead_read, NULL, done, arg);
}

static json_t *quarantine_read(struct store *view, const struct view_job *v)
{
	const char *ep = req_str(v->req, "endpoint");
	json_t *ans = list_state(view, MSG_QUARANTINED, str_empty(ep) ? NULL : ep,
				 req_limit(v->req), v->now);
	int64_t n = 0;
	if (store_count(view, MSG_QUARANTINED, &n) < 0)
		n = -1; /* the list answered; the total is what could not be read */
	if (json_is_true(json_object_get(ans, "ok")))
		json_object_set_new(ans, "quarantined", json_integer(n));
	return ans;
}

static void cmd_quarantine(const struct control_env *e, const json_t *req, const char *by,
			   actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "quarantine", quarantine_read, NULL, done, arg);
}

/* Messages awaiting an acknowledgement (those overdue marked, or only
 * them), or the ones their receiver refused. */
static json_t *acks_read(struct store *view, const struct view_job *v)
{
	char err[512];
	const char *ep = req_str(v->req, "endpoint");
	json_t *o = views_acks(view, str_empty(ep) ? NULL : ep,
			       json_is_true(json_object_get(v->req, "overdue")),
			       json_is_true(json_object_get(v->req, "negative")), v->ack_timeout_ms,
			       req_limit(v->req), v->now, err, sizeof(err));
	return o ? ok(o) : control_error("%s", err);
}

static void cmd_acks(const struct control_env *e, const json_t *req, const char *by,
		     actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "acks", acks_read, NULL, done, arg);
}

static json_int_t req_id(const json_t *req)
{
	return json_integer_value(json_object_get(req, "id"));
}

static json_t *outages_read(struct store *view, const struct view_job *v)
{
	char err[512];
	json_t *arr = views_outages(view, json_is_true(json_object_get(v->req, "all")), v->now,
				    err, sizeof(err));
	return arr ? ok(json_pack("{s:o}", "outages", arr)) : control_error("%s", err);
}

static void cmd_outages(const struct control_env *e, const json_t *req, const char *by,
			actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "outages", outages_read, NULL, done, arg);
}

static json_t *outage_show_read(struct store *view, const struct view_job *v)
{
	char err[512];
	json_t *o = views_outage(view, req_id(v->req), v->now, err, sizeof(err));
	return o ? ok(json_pack("{s:o}", "outage", o)) : control_error("%s", err);
}

static void outage_show(const struct control_env *e, const json_t *req, const char *by,
			actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "outage", outage_show_read, NULL, done, arg);
}

/* ---- changes to the outage procedure: record on the write lane, then apply ---- */

/* One operator change to the procedure: prepared on the loop (its errors
 * answered at once), written on the write lane in order with the group
 * commit, and applied to the procedure on the loop only once the store
 * has it - also when that came after the deadline (storejob.h). */
struct change_job {
	const struct control_env *e;
	struct procedure_change *c;
	int r;
	char err[512];
};

static void change_work(struct store *view, void *data)
{
	struct change_job *j = data;
	j->r = procedure_change_write(j->c, view, j->err, sizeof(j->err));
}

static json_t *change_finish(void *data, bool late)
{
	struct change_job *j = data;
	if (j->r < 0) {
		procedure_change_drop(j->e->proc, j->c);
		return control_error("%s", j->err);
	}
	int64_t id = procedure_change_id(j->c);
	procedure_change_apply(j->e->proc, j->c);
	return ok(json_pack("{s:I}", "id", (json_int_t)id));
}

static void change_free(void *data)
{
	struct change_job *j = data;
	procedure_change_free(j->c); /* not the procedure: it may be gone (closing) */
	free(j);
}

static const struct storejob_ops change_ops = { .work = change_work, .finish = change_finish,
						.free = change_free };

/* r and err from a *_prepare(): its refusal now, or its change written. */
static void run_change(const struct control_env *e, int r, const char *err,
		       struct procedure_change *c, const char *verb, actions_done_fn done,
		       void *arg)
{
	if (r < 0) {
		done(control_error("%s", err), arg);
		return;
	}
	struct change_job *j = xcalloc(1, sizeof(*j));
	*j = (struct change_job){ .e = e, .c = c };
	storejob_run(e, STORE_LANE_WRITE, verb, &change_ops, j, done, arg);
}

static void outage_open(const struct control_env *e, const json_t *req, const char *by,
			actions_done_fn done, void *arg)
{
	char err[512] = "";
	struct procedure_change *c = NULL;
	const char *ep = req_str(req, "endpoint");
	int r = procedure_outage_open_prepare(e->proc, by, ep ? ep : "", req_str(req, "cause"),
					      &c, err, sizeof(err));
	run_change(e, r, err, c, "outage-open", done, arg);
}

static void outage_close(const struct control_env *e, const json_t *req, const char *by,
			 actions_done_fn done, void *arg)
{
	char err[512] = "";
	struct procedure_change *c = NULL;
	int r = procedure_outage_close_prepare(e->proc, by, req_id(req), &c, err, sizeof(err));
	run_change(e, r, err, c, "outage-close", done, arg);
}

static void outage_set(const struct control_env *e, const json_t *req, const char *by,
		       actions_done_fn done, void *arg)
{
	char err[512] = "";
	struct procedure_change *c = NULL;
	int r = procedure_outage_set_prepare(e->proc, by, req_id(req), req_str(req, "expected"),
					     req_str(req, "contact"), req_str(req, "cause"),
					     req_str(req, "fallback"), &c, err, sizeof(err));
	run_change(e, r, err, c, "outage-set", done, arg);
}

static json_t *maint_list_read(struct store *view, const struct view_job *v)
{
	char err[512] = "";
	json_t *arr = views_maintenance(view, json_is_true(json_object_get(v->req, "all")), err,
					sizeof(err));
	return arr ? ok(json_pack("{s:o}", "maintenance", arr)) : control_error("%s", err);
}

static void maint_list(const struct control_env *e, const json_t *req, const char *by,
		       actions_done_fn done, void *arg)
{
	run_view(e, req, STORE_LANE_READ, "maintenance", maint_list_read, NULL, done, arg);
}

static void maint_add(const struct control_env *e, const json_t *req, const char *by,
		      actions_done_fn done, void *arg)
{
	char err[512] = "";
	struct procedure_change *c = NULL;
	const char *ep = req_str(req, "endpoint");
	int r = procedure_maintenance_add_prepare(e->proc, by, ep ? ep : "", req_str(req, "from"),
						  req_str(req, "to"), req_str(req, "reason"),
						  req_str(req, "contact"), &c, err, sizeof(err));
	run_change(e, r, err, c, "maintenance-add", done, arg);
}

static void maint_remove(const struct control_env *e, const json_t *req, const char *by,
			 actions_done_fn done, void *arg)
{
	char err[512] = "";
	struct procedure_change *c = NULL;
	int r = procedure_maintenance_remove_prepare(e->proc, by, req_id(req), &c, err,
						     sizeof(err));
	run_change(e, r, err, c, "maintenance-remove", done, arg);
}

/* ---- keep: exempt a dead letter or a quarantined file from retention ---- */

static int got_msg(const struct store_msg *m, void *arg)
{
	struct store_msg *out = arg;
	*out = (struct store_msg){ .id = m->id, .state = m->state, .removed_at = m->removed_at,
				   .keep = m->keep };
	return 0;
}

/* On the write lane: the check and the change one after the other on the
 * connection that orders them with the group commit. */
static json_t *keep_set(struct store *view, int64_t id, bool keep)
{
	struct store_msg m = { 0 };
	int r = store_get(view, id, false, got_msg, &m);
	if (r < 0)
		return control_error("store: %s", store_last_error(view));
	if (r == 0 || (m.state != MSG_DEAD && m.state != MSG_QUARANTINED))
		return control_error("no dead letter or quarantined file with id %lld",
				     (long long)id);
	if (keep && m.removed_at)
		return control_error("%lld: retention has already removed its %s", (long long)id,
				     m.state == MSG_DEAD ? "body" : "file");
	r = store_keep(view, id, keep);
	if (r < 0)
		return control_error("store: %s", store_last_error(view));
	return ok(json_pack("{s:I, s:b}", "id", (json_int_t)id, "keep", keep));
}

static json_t *keep_read(struct store *view, const struct view_job *v)
{
	return keep_set(view, req_id(v->req), true);
}

static json_t *release_read(struct store *view, const struct view_job *v)
{
	return keep_set(view, req_id(v->req), false);
}

static void keep_start(const struct control_env *e, const json_t *req, bool keep,
		       actions_done_fn done, void *arg)
{
	if (req_id(req) <= 0) {
		done(control_error("no dead letter or quarantined file with id %lld",
				   (long long)req_id(req)), arg);
		return;
	}
	run_view(e, req, STORE_LANE_WRITE, "keep", keep ? keep_read : release_read, NULL, done,
		 arg);
}

static void keep_keep(const struct control_env *e, const json_t *req, const char *by,
		      actions_done_fn done, void *arg)
{
	keep_start(e, req, true, done, arg);
}

static void keep_release(const struct control_env *e, const json_t *req, const char *by,
			 actions_done_fn done, void *arg)
{
	keep_start(e, req, false, done, arg);
}

/* ---- trace and the actions on single messages and endpoints ------------- */

static const struct {
	const char *key;
	enum store_find by;
} trace_keys[] = { { "envelope", STORE_FIND_ENVELOPE }, { "letter", STORE_FIND_LETTER },
		   { "bundle", STORE_FIND_BUNDLE } };

static json_t *trace_read(struct store *view, const struct view_job *v)
{
	char err[512] = "";
	for (size_t i = 0; i < ARRAY_SIZE(trace_keys); i++) {
		const char *val = req_str(v->req, trace_keys[i].key);
		if (str_empty(val))
			continue;
		json_t *arr = trace_find(view, trace_keys[i].by, val, err, sizeof(err));
		if (!arr)
			return control_error("%s", err);
		if (json_array_size(arr) == 0) {
			json_decref(arr);
			return control_error("trace: no message with %s id %s", trace_keys[i].key,
					     val);
		}
		return ok(json_pack("{s:o}", "messages", arr));
	}
	json_t *t = trace_message(view, req_id(v->req), err, sizeof(err));
	return t ? ok(json_pack("{s:[o]}", "messages", t)) : control_error("%s", err);
}

static void cmd_trace(const struct control_env *e, const json_t *req, const char *by,
		      actions_done_fn done, void *arg)
{
	bool keyed = false;
	for (size_t i = 0; i < ARRAY_SIZE(trace_keys); i++)
		keyed = keyed || !str_empty(req_str(req, trace_keys[i].key));
	if (!keyed && req_id(req) <= 0) {
		done(control_error("trace: which message? (trace ID | --envelope X | --letter Y "
				   "| --bundle Z)"), arg);
		return;
	}
	run_view(e, req, STORE_LANE_READ, "trace", trace_read, NULL, done, arg);
}

static void cmd_hold(const struct control_env *e, const json_t *req, const char *by,
		     actions_done_fn done, void *arg)
{
	actions_hold(e, req, by, true, done, arg);
}

static void cmd_release(const struct control_env *e, const json_t *req, const char *by,
			actions_done_fn done, void *arg)
{
	actions_hold(e, req, by, false, done, arg);
}

/* A verb that answers later: done(answer, arg) gives the answer. */
typedef void (*cmd_async_fn)(const struct control_env *e, const json_t *req, const char *by,
			     actions_done_fn done, void *arg);

/* ---- the protocol: every verb and action, and whether it changes state ---- */

static const struct cmd {
	const char *verb;
	const char *action;  /* NULL: the verb has none; else the first row is the default */
	cmd_fn fn;
	bool mutates;
	const char *record;  /* the audit line's key for what a change names: "endpoint"
			      * (the answer's endpoint), else the answer's id (or each id
			      * of its "results") */
	cmd_async_fn async;  /* answers later (fn is NULL then) */
} cmds[] = {
	{ "status", NULL, NULL, false, NULL, cmd_status },
	{ "queue", NULL, NULL, false, NULL, cmd_queue },
	{ "dead", NULL, NULL, false, NULL, cmd_dead },
	{ "quarantine", NULL, NULL, false, NULL, cmd_quarantine },
	{ "acks", NULL, NULL, false, NULL, cmd_acks },
	{ "outages", NULL, NULL, false, NULL, cmd_outages },
	{ "outage", "show", NULL, false, NULL, outage_show },
	{ "outage", "set", NULL, true, "outage", outage_set },
	{ "outage", "open", NULL, true, "outage", outage_open },
	{ "outage", "close", NULL, true, "outage", outage_close },
	{ "maintenance", "list", NULL, false, NULL, maint_list },
	{ "maintenance", "add", NULL, true, "maintenance", maint_add },
	{ "maintenance", "remove", NULL, true, "maintenance", maint_remove },
	{ "keep", "keep", NULL, true, "msg", keep_keep },
	{ "keep", "release", NULL, true, "msg", keep_release },
	{ "trace", NULL, NULL, false, NULL, cmd_trace },
	{ "requeue", NULL, NULL, true, "msg", actions_requeue },
	{ "hold", NULL, NULL, true, "endpoint", cmd_hold },
	{ "release", NULL, NULL, true, "endpoint", cmd_release },
	{ "retry", NULL, actions_retry, true, "endpoint", NULL },
	{ "resend", NULL, NULL, true, "msg", actions_resend },
	{ "delete", NULL, NULL, true, "msg", actions_delete },
};

/* The row for request: its verb's row without actions, the action it
 * names, or the verb's first (an empty action); NULL when unknown. */
static const struct cmd *cmd_find(const json_t *req, bool *verb_known)
{
	const char *verb = req_str(req, "cmd"), *action = req_str(req, "action");
	*verb_known = false;
	for (size_t i = 0; verb && i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(cmds[i].verb, verb) != 0)
			continue;
		if (!cmds[i].action || (!*verb_known && str_empty(action)) ||
		    (action && strcmp(cmds[i].action, action) == 0))
			return &cmds[i];
		*verb_known = true;
	}
	return NULL;
}

bool control_mutates(const json_t *request)
{
	bool verb_known;
	const struct cmd *c = cmd_find(request, &verb_known);
	return c && c->mutates;
}

static json_t *unknown(const json_t *req, bool verb_known)
{
	const char *verb = req_str(req, "cmd"), *action = req_str(req, "action");
	if (!verb_known)
		return control_error("unknown command '%s'", verb ? verb : "");
	char list[128] = "";
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (strcmp(cmds[i].verb, verb) == 0)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 list[0] ? ", " : "", cmds[i].action);
	return control_error("%s: unknown action '%s' (%s)", verb, action ? action : "", list);
}

int control_text_check(const char *field, const char *v, char *why, size_t len)
{
	size_t n = strlen(v);
	if (n > CONTROL_TEXT_MAX) {
		snprintf(why, len, "%s: longer than %d bytes", field, CONTROL_TEXT_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_decode(v + i, n - i, &cp);
		if (k == 0) {
			snprintf(why, len, "%s: not valid UTF-8 (at byte %zu)", field, i);
			return -EINVAL;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
			snprintf(why, len, "%s: control characters are not allowed (at byte %zu)",
				 field, i);
			return -EINVAL;
		}
		i += k;
	}
	return 0;
}

/* Every string a request carries is one that may end up in a log line, a
 * notice or the store, so each is held to control_text_check(). */
static int request_text_check(const json_t *req, char *why, size_t len)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)req, key, v) {
		if (json_is_string(v) && control_text_check(key, json_string_value(v), why, len) < 0)
			return -EINVAL;
	}
	return 0;
}

/* "alice (uid 1000)", or "uid 1000" when the system has no name for it. */
static void caller_name(const struct control_caller *who, char *buf, size_t len)
{
	unsigned uid = (unsigned)who->peer->uid;
	if (!str_empty(who->user))
		snprintf(buf, len, "%s (uid %u)", who->user, uid);
	else
		snprintf(buf, len, "uid %u", uid);
}

static json_t *deny(const struct cmd *c, const struct control_caller *who)
{
	const struct access_policy *pol = who->policy;
	log_warn("event=control-denied uid=%u user=%s pid=%d verb=%s action=%s",
		 (unsigned)who->peer->uid, who->user ? who->user : "", (int)who->peer->pid, c->verb,
		 c->action ? c->action : "");
	return control_error("permission denied: %s%s%s needs root, the %s user or group %s",
			     c->verb, c->action ? " " : "", c->action ? c->action : "",
			     pol->self_name, pol->group);
}

/* Who made a change, kept until an answer given later is audited. */
struct changer {
	unsigned uid;
	int pid;
	char user[64];
};

static void audit_line(const struct cmd *c, const struct changer *w, const char *value)
{
	log_notice("event=control-change verb=%s action=%s uid=%u user=%s pid=%d %s=%s", c->verb,
		   c->action ? c->action : "", w->uid, w->user, w->pid, c->record, value);
}

/* One line per change the answer reports, and the change counted. */
static void audit(const struct cmd *c, const struct changer *w, const json_t *ans)
{
	char value[160], action[48];
	snprintf(action, sizeof(action), "%s%s%s", c->verb, c->action ? "-" : "",
		 c->action ? c->action : "");
	const json_t *results = json_object_get(ans, "results");
	if (strcmp(c->record, "endpoint") == 0) {
		audit_line(c, w, json_string_value(json_object_get(ans, "endpoint")));
		metrics_add(METRIC_OPERATOR_ACTIONS, 1, METRIC_LABELS(action));
		return;
	}
	if (!results) {
		snprintf(value, sizeof(value), "%lld",
			 (long long)json_integer_value(json_object_get(ans, "id")));
		audit_line(c, w, value);
		metrics_add(METRIC_OPERATOR_ACTIONS, 1, METRIC_LABELS(action));
		return;
	}
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		if (!json_is_true(json_object_get(r, "ok")))
			continue;
		snprintf(value, sizeof(value), "%lld",
			 (long long)json_integer_value(json_object_get(r, "id")));
		audit_line(c, w, value);
		metrics_add(METRIC_OPERATOR_ACTIONS, 1, METRIC_LABELS(action));
	}
}

static struct changer changer_of(const struct control_caller *who)
{
	struct changer w = { (unsigned)who->peer->uid, (int)who->peer->pid, "" };
	str_copy(w.user, who->user ? who->user : "", sizeof(w.user));
	return w;
}

/* A change answered later: audited when its answer comes, and - when it
 * came after the deadline - when the store's late answer comes (storejob.h).
 * References: the dispatch's until run_async returns, the answer's until
 * it is given, and each job's. */
struct later {
	struct storejob_audit a; /* first: a late answer's audit finds the rest */
	const struct cmd *c;
	struct changer w;
	struct control_reply *reply; /* NULL while the verb runs */
	json_t *now;                 /* the answer given while it ran (sqlite) */
};

static void answer_later(json_t *ans, void *arg)
{
	struct later *l = arg;
	if (l->c->mutates &&
	    (json_object_get(ans, "results") || json_is_true(json_object_get(ans, "ok"))))
		audit(l->c, &l->w, ans); /* each change made, also when others failed */
	if (!l->reply) /* answered inside the call: control_dispatch returns it */
		l->now = ans;
	else
		control_reply(l->reply, ans);
	storejob_audit_unref(&l->a);
}

/* The operator was told "no answer in time", yet the change is made: it is
 * audited with who made it all the same. */
static void audit_late(struct storejob_audit *a, const json_t *ans)
{
	struct later *l = (struct later *)a;
	if (l->c->mutates)
		audit(l->c, &l->w, ans);
}

static void later_release(struct storejob_audit *a)
{
	free(a);
}

/* Runs an asynchronous verb. An answer given inside the call (a local
 * store runs its work at once) is returned as a synchronous verb's is;
 * otherwise the connection waits for it (control_defer). */
static json_t *run_async(const struct cmd *c, const json_t *request,
			 const struct control_caller *who, const char *by, void *arg)
{
	struct later *l = xcalloc(1, sizeof(*l));
	*l = (struct later){ { audit_late, later_release, 2 }, c, changer_of(who), NULL, NULL };
	storejob_audit_begin(&l->a);
	c->async(arg, request, by, answer_later, l);
	storejob_audit_end();
	json_t *ans = TAKE_PTR(l->now);
	if (!ans)
		l->reply = control_defer(who);
	storejob_audit_unref(&l->a);
	return ans;
}

json_t *control_dispatch(const json_t *request, const struct control_caller *who, void *arg)
{
	bool verb_known;
	const struct cmd *c = cmd_find(request, &verb_known);
	if (!c)
		return unknown(request, verb_known);
	char why[256];
	if (request_text_check(request, why, sizeof(why)) < 0)
		return control_error("%s", why);
	char by[128] = "";
	if (c->mutates) {
		/* control.c hands every change over with the caller's names */
		assert(who->user && who->policy);
		if (!access_may_change(who->peer, who->policy))
			return deny(c, who);
		caller_name(who, by, sizeof(by));
	}
	if (c->async)
		return run_async(c, request, who, by, arg);
	json_t *ans = c->fn(arg, request, by);
	if (c->mutates && json_is_true(json_object_get(ans, "ok"))) {
		struct changer w = changer_of(who);
		audit(c, &w, ans);
	}
	return ans;
}

const struct control_ops control_verbs = {
	.handle = control_dispatch,
	.mutates = control_mutates,
};

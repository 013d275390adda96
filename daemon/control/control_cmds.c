/*
 * control_cmds.c - answers control-socket requests from the daemon's state,
 * reached through struct control_env.
 *
 * Read-only views: live delivery state from the endpoint callbacks, queued
 * and dead messages and the outage records from the store (views.c);
 * changes to outages and planned shutdowns go to the outage procedure.
 * Answers carry ids, types, GLNs, counts and ages - never message content.
 */
#include "control/control_cmds.h"

#include "control/control.h"
#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <string.h>

#define LIST_DEFAULT 100
#define LIST_MAX 10000

typedef json_t *(*cmd_fn)(const struct control_env *e, const json_t *req);

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

/* The dead-letter count, or 0 when the store cannot say: the status must
 * still answer while the store fails (its "store" field says so then). */
static int64_t dead_count(const struct control_env *e)
{
	int64_t dead = 0;
	if (store_count(e->store, MSG_DEAD, &dead) < 0)
		dead = 0;
	return dead;
}

static json_t *cmd_status(const struct control_env *e, const json_t *req)
{
	int64_t now = clock_wall_ms();
	json_t *eps = json_array();
	struct control_endpoint row;
	for (size_t i = 0; e->endpoint_at(e->ctx, i, &row); i++)
		json_array_append_new(eps, endpoint_json(e, &row, now));
	struct unconfigured u = { e, eps };
	/* Unconfigured queues are extra rows: while the store fails the status
	 * answers without them (its "store" field says it is failing). */
	if (store_depths(e->store, add_unconfigured, &u) < 0)
		log_debug("event=status-partial error=\"%s\"", store_last_error(e->store));
	int64_t dead = dead_count(e);
	struct commit_stats cs;
	commit_stats(e->commit, &cs);
	return ok(json_pack("{s:o, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "endpoints", eps,
			    "dead", (json_int_t)dead, "store",
			    commit_healthy(e->commit) ? "ok" : "failing", "store_error",
			    commit_last_error(e->commit), "commits", (json_int_t)cs.commits,
			    "commit_ms_total", (json_int_t)cs.total_ms, "commits_failed",
			    (json_int_t)cs.failed, "accepted", (json_int_t)cs.messages, "uptime_s",
			    (json_int_t)((now - e->started_at) / 1000)));
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

static json_t *list_state(const struct control_env *e, enum msg_state st, const char *endpoint,
			  size_t limit)
{
	struct list_ctx l = { json_array(), clock_wall_ms() };
	int r = store_list(e->store, st, endpoint, limit, add_msg, &l);
	if (r < 0) {
		json_decref(l.arr);
		return control_error("store: %s", store_last_error(e->store));
	}
	return ok(json_pack("{s:o}", "messages", l.arr));
}

static json_t *cmd_queue(const struct control_env *e, const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "endpoint"));
	if (str_empty(name))
		return control_error("queue: which endpoint? (queue ENDPOINT)");
	struct control_endpoint row;
	bool configured = e->endpoint_named(e->ctx, name, &row);
	json_t *ans = list_state(e, MSG_QUEUED, name, req_limit(req));
	if (json_is_true(json_object_get(ans, "ok"))) {
		json_object_set_new(ans, "endpoint", json_string(name));
		json_object_set_new(ans, "configured", json_boolean(configured));
		json_object_set_new(ans, "queued", json_integer(configured ? row.di.queued : -1));
	}
	return ans;
}

static json_t *cmd_dead(const struct control_env *e, const json_t *req)
{
	json_t *ans = list_state(e, MSG_DEAD, NULL, req_limit(req));
	int64_t dead = dead_count(e);
	if (json_is_true(json_object_get(ans, "ok")))
		json_object_set_new(ans, "dead", json_integer(dead));
	return ans;
}

static const char *req_str(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

static json_int_t req_id(const json_t *req)
{
	return json_integer_value(json_object_get(req, "id"));
}

static json_t *answer(int r, const char *err, json_t *ok_obj)
{
	if (r < 0) {
		json_decref(ok_obj);
		return control_error("%s", err);
	}
	return ok(ok_obj);
}

static json_t *cmd_outages(const struct control_env *e, const json_t *req)
{
	char err[512];
	json_t *arr = views_outages(e->store, json_is_true(json_object_get(req, "all")),
				    clock_wall_ms(), err, sizeof(err));
	return arr ? ok(json_pack("{s:o}", "outages", arr)) : control_error("%s", err);
}

static json_t *outage_show(const struct control_env *e, const json_t *req)
{
	char err[512];
	json_t *o = views_outage(e->store, req_id(req), clock_wall_ms(), err, sizeof(err));
	return o ? ok(json_pack("{s:o}", "outage", o)) : control_error("%s", err);
}

static json_t *cmd_outage(const struct control_env *e, const json_t *req)
{
	const char *action = req_str(req, "action");
	char err[512] = "";
	int64_t id = req_id(req);
	int r;
	if (str_empty(action) || strcmp(action, "show") == 0)
		return outage_show(e, req);
	if (strcmp(action, "open") == 0) {
		const char *ep = req_str(req, "endpoint");
		r = procedure_outage_open(e->proc, ep ? ep : "", req_str(req, "cause"), &id, err,
					  sizeof(err));
	} else if (strcmp(action, "close") == 0) {
		r = procedure_outage_close(e->proc, id, err, sizeof(err));
	} else if (strcmp(action, "set") == 0) {
		r = procedure_outage_set(e->proc, id, req_str(req, "expected"), req_str(req, "contact"),
					 req_str(req, "cause"), req_str(req, "fallback"), err,
					 sizeof(err));
	} else {
		return control_error("outage: unknown action '%s' (show, set, open, close)", action);
	}
	return answer(r, err, json_pack("{s:I}", "id", (json_int_t)id));
}

static json_t *cmd_maintenance(const struct control_env *e, const json_t *req)
{
	const char *action = req_str(req, "action");
	char err[512] = "";
	int64_t id = req_id(req);
	int r;
	if (str_empty(action) || strcmp(action, "list") == 0) {
		json_t *arr = views_maintenance(e->store, json_is_true(json_object_get(req, "all")),
						err, sizeof(err));
		return arr ? ok(json_pack("{s:o}", "maintenance", arr)) : control_error("%s", err);
	}
	if (strcmp(action, "add") == 0) {
		const char *ep = req_str(req, "endpoint");
		r = procedure_maintenance_add(e->proc, ep ? ep : "", req_str(req, "from"),
					      req_str(req, "to"), req_str(req, "reason"),
					      req_str(req, "contact"), &id, err, sizeof(err));
	} else if (strcmp(action, "remove") == 0) {
		r = procedure_maintenance_remove(e->proc, id, err, sizeof(err));
	} else {
		return control_error("maintenance: unknown action '%s' (add, list, remove)", action);
	}
	return answer(r, err, json_pack("{s:I}", "id", (json_int_t)id));
}

static const struct {
	const char *name;
	cmd_fn fn;
} commands[] = {
	{ "status", cmd_status },
	{ "queue", cmd_queue },
	{ "dead", cmd_dead },
	{ "outages", cmd_outages },
	{ "outage", cmd_outage },
	{ "maintenance", cmd_maintenance },
};

json_t *control_dispatch(const json_t *request, void *arg)
{
	const char *cmd = json_string_value(json_object_get(request, "cmd"));
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, cmd) == 0)
			return commands[i].fn(arg, request);
	return control_error("unknown command '%s'", cmd);
}

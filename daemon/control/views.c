/*
 * views.c - turns the broker's state into the JSON answers of the control
 * socket: endpoint status rows (live delivery state and the procedure's
 * health), outages with their notices and send attempts, planned
 * shutdowns and acknowledgement tracking, read from the store.
 *
 * Answers carry ids, names, counts and times - never message content. The
 * store's row callbacks only build JSON; what needs a second read (the send
 * attempts of each notice) is read after the first walk has finished, as
 * store.h asks.
 */
#include "control/views.h"

#include "cluster/cluster.h"

#include "base/clock.h"
#include "base/redact.h"
#include "codecs/base/mem.h"
#include "time/timerules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define OUTAGES_MAX 500
#define RECENT_MS (7 * 24 * 3600 * 1000LL)

json_t *views_endpoint(const struct control_endpoint *ep, const struct procedure_health *h,
		       int64_t now)
{
	const struct deliver_info *di = &ep->di;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:b, s:s}", "name", ep->name,
			      "kind", endpoint_kind_name(ep->conf->kind), "transport",
			      ep->conf->transport, "state",
			      ep->held ? "held"
			      : di->failures > 0 ? "retrying" : deliver_state_name(di->state),
			      "queued",
			      (json_int_t)di->queued, "failures", di->failures, "delivered",
			      (json_int_t)di->delivered, "pickup_paused", ep->pickup_paused,
			      "last_error", di->last_error ? di->last_error : "");
	json_object_set_new(o, "oldest_age_s",
			    di->oldest_received_at
				    ? json_integer((now - di->oldest_received_at) / 1000)
				    : json_null());
	json_object_set_new(o, "retry_in_s",
			    di->next_attempt_ms
				    ? json_integer((di->next_attempt_ms - clock_mono_ms() + 999) / 1000)
				    : json_null());
	json_object_set_new(o, "fault",
			    json_string(di->last_fault ? fault_name(di->last_fault) : ""));
	json_object_set_new(o, "health", json_string(h ? h->state : "up"));
	json_object_set_new(o, "health_since_s", json_integer(h ? (now - h->since) / 1000 : 0));
	json_object_set_new(o, "inbox_unreadable", json_integer((json_int_t)ep->inbox_unreadable));
	json_object_set_new(o, "held", json_boolean(ep->held));
	json_object_set_new(o, "organisation",
			    json_string(ep->conf->organisation ? ep->conf->organisation : ep->name));
	return o;
}

static json_t *time_json(int64_t t)
{
	if (!t)
		return json_null();
	char buf[32];
	timerules_format_local(t, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *store_error(struct store *s, char *err, size_t errlen)
{
	snprintf(err, errlen, "store: %s", store_last_error(s));
	return NULL;
}

static json_t *outage_json(const struct outage *o, int64_t now)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:b}", "id", (json_int_t)o->id, "endpoint",
			      o->endpoint, "state", outage_state_name(o->state), "manual", o->manual);
	const struct { const char *key; int64_t t; } times[] = {
		{ "started", o->started_at },   { "declared", o->declared_at },
		{ "ended", o->ended_at },       { "resolved", o->resolved_at },
		{ "closed", o->closed_at },     { "announced", o->announced_at },
		{ "last_notice", o->last_notice_at }, { "next_notice_due", o->due_at },
		{ "expected_end", o->expected_end },
	};
	for (size_t i = 0; i < ARRAY_SIZE(times); i++) {
		json_object_set_new(j, times[i].key, time_json(times[i].t));
		char key[48];
		snprintf(key, sizeof(key), "%s_ms", times[i].key);
		json_object_set_new(j, key, times[i].t ? json_integer(times[i].t) : json_null());
	}
	int64_t end = o->ended_at ? o->ended_at : now;
	json_object_set_new(j, "duration_s", json_integer((end - o->started_at) / 1000));
	json_object_set_new(j, "cause_fault", opt_str(o->cause_fault));
	json_object_set_new(j, "cause_error", opt_str(o->cause_error));
	json_object_set_new(j, "cause", opt_str(o->cause_override));
	json_object_set_new(j, "contact", opt_str(o->contact_override));
	json_object_set_new(j, "fallback", opt_str(o->fallback_override));
	json_object_set_new(j, "maintenance_id",
			    o->maintenance_id ? json_integer(o->maintenance_id) : json_null());
	json_object_set_new(j, "delivered_late", json_integer(o->delivered_late));
	json_object_set_new(j, "changed_by", opt_str(o->changed_by));
	return j;
}

struct outages_ctx {
	json_t *out;   /* an array (list) or the one outage (show) */
	int64_t now;
};

static int add_outage(const struct outage *o, void *arg)
{
	struct outages_ctx *c = arg;
	json_array_append_new(c->out, outage_json(o, c->now));
	return 0;
}

json_t *views_outages(struct store *s, bool all, int64_t now, char *err, size_t errlen)
{
	struct outages_ctx c = { json_array(), now };
	if (store_outage_list(s, all ? 0 : now - RECENT_MS, OUTAGES_MAX, add_outage, &c) < 0) {
		json_decref(c.out);
		return store_error(s, err, errlen);
	}
	return c.out;
}

static int found_outage(const struct outage *o, void *arg)
{
	struct outages_ctx *c = arg;
	c->out = outage_json(o, c->now);
	return 0;
}

/* The notices of an outage, each with an empty "sends" array that
 * add_sends() fills once the walk is over. */
struct notices_ctx {
	json_t *arr;
	int64_t *ids;
	json_t **sends;  /* borrowed: each notice object holds its array */
	size_t n;
};

static int add_notice(const struct notice_record *n, void *arg)
{
	struct notices_ctx *c = arg;
	json_t *sends = json_array();
	json_array_append_new(
		c->arr,
		json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:I, s:s, s:i, s:o, s:s}", "id",
			  (json_int_t)n->id, "kind", n->kind ? n->kind : "", "audience",
			  n->audience ? n->audience : "", "recipients",
			  n->recipients ? n->recipients : "", "subject", n->subject ? n->subject : "",
			  "created", time_json(n->created_at), "created_ms", (json_int_t)n->created_at,
			  "pending", n->pending ? n->pending : "", "attempts", n->attempts, "sends",
			  sends, "body", n->body ? n->body : ""));
	c->ids = xrealloc(c->ids, (c->n + 1) * sizeof(*c->ids));
	c->sends = xrealloc(c->sends, (c->n + 1) * sizeof(*c->sends));
	c->ids[c->n] = n->id;
	c->sends[c->n++] = sends;
	return 0;
}

/* Where a send went, as it may be shown. Records are stored redacted;
 * this also covers those stored before they were (a webhook URL with its
 * token, a fallback command with its arguments). */
static const char *send_to(const struct store_send *s, char *buf, size_t len)
{
	const char *to = s->recipients ? s->recipients : "";
	if (strcmp(s->channel, "webhook") == 0)
		return redact_url(to, buf, len);
	if (strcmp(s->channel, "fallback") == 0)
		return redact_command(to, buf, len);
	return to;
}

static int add_send(const struct store_send *s, void *arg)
{
	char to[REDACT_MAX];
	json_array_append_new(arg, json_pack("{s:s, s:o, s:I, s:b, s:s, s:s}", "channel",
					     s->channel, "at", time_json(s->at), "at_ms",
					     (json_int_t)s->at, "ok", s->ok, "to",
					     send_to(s, to, sizeof(to)), "error",
					     s->error ? s->error : ""));
	return 0;
}

static int add_sends(struct store *s, struct notices_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		int r = store_send_list(s, c->ids[i], add_send, c->sends[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

json_t *views_outage(struct store *s, int64_t id, int64_t now, char *err, size_t errlen)
{
	struct outages_ctx c = { NULL, now };
	int r = store_outage_get(s, id, found_outage, &c);
	if (r < 0)
		return store_error(s, err, errlen);
	if (r == 0) {
		snprintf(err, errlen, "no outage with that id");
		return NULL;
	}
	struct notices_ctx nc = { json_array(), NULL, NULL, 0 };
	r = store_notice_list(s, id, 0, add_notice, &nc);
	if (r >= 0)
		r = add_sends(s, &nc);
	free(nc.ids);
	free(nc.sends);
	if (r < 0) {
		json_decref(nc.arr);
		json_decref(c.out);
		return store_error(s, err, errlen);
	}
	json_object_set_new(c.out, "notices", nc.arr);
	return c.out;
}

static int add_maint(const struct maint *m, void *arg)
{
	json_t *j = json_pack("{s:I, s:s, s:o, s:o, s:I, s:I, s:s, s:o}", "id", (json_int_t)m->id,
			      "endpoint", m->endpoint, "from", time_json(m->from), "to",
			      time_json(m->to), "from_ms", (json_int_t)m->from, "to_ms",
			      (json_int_t)m->to, "reason", m->reason ? m->reason : "", "contact",
			      opt_str(m->contact));
	json_object_set_new(j, "announced", time_json(m->announced_at));
	json_object_set_new(j, "removed", time_json(m->removed_at));
	json_object_set_new(j, "ended", time_json(m->ended_at));
	json_object_set_new(j, "changed_by", opt_str(m->changed_by));
	json_array_append_new(arg, j);
	return 0;
}

json_t *views_maintenance(struct store *s, bool all, char *err, size_t errlen)
{
	json_t *arr = json_array();
	if (store_maintenance_list(s, all, add_maint, arr) < 0) {
		json_decref(arr);
		return store_error(s, err, errlen);
	}
	return arr;
}

/* ---- acknowledgement tracking ------------------------------------------ */

struct acks_walk {
	json_t *arr;
	int64_t now, overdue_before;
	size_t overdue;
};

static int add_tracked(const struct store_msg *m, void *arg)
{
	struct acks_walk *w = arg;
	bool overdue = m->ack == ACK_AWAITING && m->delivered_at < w->overdue_before;
	w->overdue += overdue;
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "id",
			      (json_int_t)m->id, "endpoint", m->endpoint ? m->endpoint : "",
			      "source", m->source ? m->source : "", "type", m->type ? m->type : "",
			      "sender", m->sender ? m->sender : "", "receiver",
			      m->receiver ? m->receiver : "", "envelope",
			      m->envelope_id ? m->envelope_id : "", "state",
			      overdue ? "overdue" : store_ack_name(m->ack), "sent_age_s",
			      (json_int_t)((w->now - m->delivered_at) / 1000), "sent",
			      time_json(m->delivered_at));
	if (m->ack_msg) {
		json_object_set_new(o, "ack_msg", json_integer(m->ack_msg));
		json_object_set_new(o, "ack_code", json_string(m->ack_code ? m->ack_code : ""));
		json_object_set_new(o, "ack_at", time_json(m->ack_at));
	}
	json_array_append_new(w->arr, o);
	return 0;
}

json_t *views_acks(struct store *s, const char *endpoint, bool overdue_only, bool negative,
		   int64_t ack_timeout_ms, size_t limit, int64_t now, char *err, size_t errlen)
{
	struct acks_walk w = { json_array(), now, now - ack_timeout_ms, 0 };
	static const enum msg_ack refused[] = { ACK_NEGATIVE, ACK_TRANSIENT };
	int r = 0;
	if (negative)
		for (size_t i = 0; i < ARRAY_SIZE(refused) && r >= 0; i++)
			r = store_ack_list(s, refused[i], endpoint, INT64_MAX, limit, add_tracked, &w);
	else
		r = store_ack_list(s, ACK_AWAITING, endpoint, overdue_only ? w.overdue_before : INT64_MAX,
				   limit, add_tracked, &w);
	if (r < 0) {
		snprintf(err, errlen, "store: %s", store_last_error(s));
		json_decref(w.arr);
		return NULL;
	}
	return json_pack("{s:o, s:I, s:I, s:s}", "messages", w.arr, "overdue", (json_int_t)w.overdue,
			 "ack_timeout_s", (json_int_t)(ack_timeout_ms / 1000), "list",
			 negative ? "negative" : overdue_only ? "overdue" : "awaiting");
}

/* ---- several daemons ----------------------------------------------------- */

const char *views_lease_owner(const struct cluster *c, const char *name)
{
	const struct cluster_view *v = cluster_view(c);
	for (size_t i = 0; i < v->nleases; i++)
		if (strcmp(v->leases[i].name, name) == 0)
			return v->leases[i].expires_in_ms > 0 ? v->leases[i].owner : NULL;
	return NULL;
}

/* The leases node holds (not expired), by name. */
static json_t *leases_of(const struct cluster_view *v, const char *node)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < v->nleases; i++) {
		const struct cluster_lease *l = &v->leases[i];
		if (l->owner && l->expires_in_ms > 0 && strcmp(l->owner, node) == 0)
			json_array_append_new(arr, json_string(l->name));
	}
	return arr;
}

json_t *views_cluster(const struct cluster *c, const char *node)
{
	const struct cluster_view *v = cluster_view(c);
	json_t *nodes = json_array(), *leases = json_array();
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct cluster_node *n = &v->nodes[i];
		json_array_append_new(nodes,
				      json_pack("{s:s, s:I, s:I, s:I, s:b, s:o}", "name", n->name,
						"seen_ago_s", (json_int_t)(n->seen_ago_ms / 1000),
						"started_ms", (json_int_t)n->started_at, "pid",
						(json_int_t)n->pid, "stopped", n->pid == 0,
						"leases", leases_of(v, n->name)));
	}
	for (size_t i = 0; i < v->nleases; i++) {
		const struct cluster_lease *l = &v->leases[i];
		bool held = l->owner && l->expires_in_ms > 0;
		json_array_append_new(leases,
				      json_pack("{s:s, s:o, s:I, s:I}", "name", l->name, "owner",
						held ? json_string(l->owner) : json_null(), "epoch",
						(json_int_t)l->epoch, "expires_in_ms",
						(json_int_t)(held ? l->expires_in_ms : 0)));
	}
	int64_t age = v->at ? (clock_mono_ms() - v->at) / 1000 : -1;
	return json_pack("{s:s, s:b, s:s, s:I, s:I, s:o, s:o}", "node", node, "reachable",
			 cluster_reachable(c), "error", cluster_error(c), "held",
			 (json_int_t)cluster_held(c), "view_age_s", (json_int_t)age, "nodes", nodes,
			 "leases", leases);
}

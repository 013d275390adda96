/*
 * broker.c - builds the daemon from its config and keeps it running:
 * start-up (lock the state directory, recover the store, create endpoints),
 * reload (new routes and endpoints, queued messages kept), housekeeping
 * (STATUS=, pruning, the retention of dead-letter bodies and quarantined
 * files, the metrics that need the store) and an orderly shutdown. It
 * feeds the live gauges of a scrape from memory (metrics.h) and applies
 * the holds operators recorded in the store to the endpoints (with several
 * daemons, as every lease round reads them, so a hold given on any node
 * holds the endpoint on the node that delivers it).
 *
 * Several daemons (a shared store, PostgreSQL): the cluster module holds
 * leases, and the wiring turns them into work. "ep:NAME" lets an endpoint
 * deliver (deliver_activate, with the epoch its marks carry), "in:NAME"
 * lets a spool endpoint pick up from its inbox, "procedure" lets the outage
 * procedure act; losing one stops that work before the lease can have
 * expired. Delivery results of endpoints held here go to the procedure
 * directly when it runs here, else to the store as observations, which its
 * holder takes each second. Queue depths, pruning and retention come from
 * the store asynchronously (store_run); only the procedure's holder prunes.
 *
 * Invariants: one daemon per state directory (flock on edibrokerd.lock);
 * nothing is delivered while the store cannot commit (a delivered mark
 * must be durable before the next batch starts piling up re-deliveries);
 * the routing table and config are replaced whole, never edited in place;
 * housekeeping holds the loop for a bounded number of rows per tick, and
 * quarantined files are removed on their endpoint's inbound lane, at most
 * one batch per endpoint at a time.
 */
#include "daemon/broker.h"

#include "accept/ingest.h"
#include "accept/router.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/sdnotify.h"
#include "base/lanes.h"
#include "cluster/cluster.h"
#include "codecs/base/mem.h"
#include "codecs/xsd.h"
#include "control/control.h"
#include "control/control_cmds.h"
#include "deliver/deliver.h"
#include "metrics/metrics.h"
#include "metrics/metrics_http.h"
#include "notice/notice.h"
#include "outage/notifier.h"
#include "outage/procedure.h"
#include "store/commit.h"
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define HOUSEKEEPING_MS 1000
#define TRANSPORTS_MAX 8
#define PRUNE_EVERY 10     /* housekeeping ticks */
#define PRUNE_ROWS 5000
#define PRUNE_ROUNDS 20
#define DEAD_EXPIRE_ROWS 500   /* dead-letter bodies dropped per tick */
#define QUARANTINE_BATCH 64    /* quarantined files looked at per tick */

/* An endpoint at runtime. Its health is the outage procedure's. */
struct endpoint {
	char *name;
	const struct endpoint_conf *conf; /* points into b->cfg */
	struct deliver_ep *dep;
	bool inbound_paused;              /* pick-up stopped: store unavailable */
	size_t inbox_unreadable;          /* inbox files the broker may not read */
	bool held;                        /* an operator holds its delivery */
	int64_t held_set_at;              /* mono ms an operator changed it here; 0 = never */
};

/* The lanes of an endpoint's blocking work, by name. They outlive the
 * endpoint's transports and the endpoint itself (a reload may remove and
 * bring it back while a job of its old transport is stuck in the kernel):
 * whatever happens, an endpoint never has more than one job running per
 * direction. Freed with the pool. */
struct ep_lanes {
	char *name;
	struct lane *in, *out;
	bool removing;            /* a batch of quarantined files is being removed */
};

struct broker {
	struct event_base *base;
	struct config *cfg;
	struct store *store;
	struct cluster *cluster;   /* several daemons share the store; NULL: this one alone */
	bool db_reachable;         /* the last lease round reached the database */
	/* a store call of that kind is out */
	bool depths_out, obs_out, prune_out, retention_out, metrics_out;
	bool closing;              /* broker_free runs: completions touch nothing but their job */
	struct commit *commit;
	struct router *router;
	struct codec_schemas *schemas; /* for the endpoints with xsd = warn | enforce; NULL */
	struct ingest *ingest;
	struct lanes *lanes;       /* blocking work: a lane per endpoint direction */
	void *shared[TRANSPORTS_MAX]; /* each transport's shared part, by registry index */
	struct ep_lanes *eplanes;  /* every endpoint's lanes, ever */
	size_t neplanes;
	struct lane *notify_lane;  /* outage notices: slow mail servers wait here */
	struct notifier *notifier; /* carries notices over notify_lane */
	struct procedure *proc;    /* the outage procedure */
	struct control *control;
	struct control_env control_env;
	struct metrics_http *metrics_http; /* the /metrics listener, when [metrics] listen */
	struct lane *control_lane; /* user and group look-ups (NSS may block) */
	int64_t qcursor_at, qcursor_id; /* where the walk of quarantined files due goes on */
	bool retention_more;       /* the last retention round was full: go on next tick */
	struct endpoint **eps;     /* in config order */
	size_t neps;
	struct event *housekeeping_ev;
	int lock_fd;
	bool stopping;
	int64_t started_at;
	struct event *ready_ev;    /* polls the transports' start-up */
	int64_t ready_deadline;    /* mono ms */
	void (*ready)(void *arg);
	void *ready_arg;
	struct event *stop_ev;     /* polls the work in flight while stopping */
	int64_t stop_deadline;     /* mono ms */
	void (*stopped)(void *arg);
	void *stopped_arg;
};

/* The runtime endpoint called name, or NULL. */
static struct endpoint *broker_endpoint(struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->neps; i++)
		if (strcmp(b->eps[i]->name, name) == 0)
			return b->eps[i];
	return NULL;
}

static void on_queued(void *ctx, const char *endpoint, int64_t id, uint8_t *body, size_t size,
		      const char *ext, const char *type, int64_t received_at)
{
	struct broker *b = ctx;
	struct endpoint *ep = broker_endpoint(b, endpoint);
	if (ep)
		deliver_enqueue(ep->dep, id, body, size, ext, type, received_at);
	else
		free(body); /* stays queued in the store for an endpoint not configured now */
}

static bool may_deliver(void *ctx)
{
	struct broker *b = ctx;
	return commit_healthy(b->commit) && !b->stopping;
}

static void on_store_health(bool healthy, void *arg)
{
	struct broker *b = arg;
	if (!healthy)
		return;
	for (size_t i = 0; i < b->neps; i++) {
		struct transport *t = deliver_transport(b->eps[i]->dep);
		const struct transport_ops *ops = deliver_transport_ops(b->eps[i]->dep);
		if (t && ops->resume && !b->stopping)
			ops->resume(t);
		deliver_kick(b->eps[i]->dep);
	}
}

static void on_inbound_state(void *ctx, const char *endpoint, bool paused)
{
	struct endpoint *ep = broker_endpoint(ctx, endpoint);
	if (ep)
		ep->inbound_paused = paused;
}

static void on_inbound_unreadable(void *ctx, const char *endpoint, size_t count)
{
	struct endpoint *ep = broker_endpoint(ctx, endpoint);
	if (ep)
		ep->inbox_unreadable = count;
}

struct qrecord {
	struct store_quarantined *q; /* strings owned */
	size_t n;
	int r;
	char error[256];
};

static void qrecord_work(struct store *view, void *arg)
{
	struct qrecord *x = arg;
	x->r = store_quarantine_add(view, x->q, x->n);
	if (x->r < 0)
		str_copy(x->error, store_last_error(view), sizeof(x->error));
}

static void qrecord_done(void *arg)
{
	struct qrecord *x = arg;
	for (size_t i = 0; i < x->n; i++) {
		struct store_quarantined *q = &x->q[i];
		if (x->r < 0)
			log_err("event=quarantine-unrecorded endpoint=%s path=%s error=\"%s\"",
				q->endpoint, q->file, x->error);
		else
			log_info("event=quarantine-recorded msg=%lld endpoint=%s path=%s",
				 (long long)q->id, q->endpoint, q->file);
		free((char *)q->endpoint);
		free((char *)q->file);
		free((char *)q->error_class);
		free((char *)q->reason);
	}
	free(x->q);
	free(x);
}

/* Quarantined files just moved by a transport: recorded, so operators can
 * name them and retention can remove them. A failure keeps the file and its
 * .reason (nothing is lost) but retention will not know it. q is copied:
 * with a server store the record is written later, off the loop. */
static void count_quarantined(const struct store_quarantined *q, size_t n);

static void on_quarantined(void *ctx, struct store_quarantined *q, size_t n)
{
	struct broker *b = ctx;
	count_quarantined(q, n);
	struct qrecord *x = xcalloc(1, sizeof(*x));
	x->q = xcalloc(n + 1, sizeof(*x->q));
	x->n = n;
	for (size_t i = 0; i < n; i++) {
		x->q[i] = q[i];
		x->q[i].endpoint = xstrdup_or_null(q[i].endpoint);
		x->q[i].file = xstrdup_or_null(q[i].file);
		x->q[i].error_class = xstrdup_or_null(q[i].error_class);
		x->q[i].reason = xstrdup_or_null(q[i].reason);
	}
	store_run(b->store, STORE_LANE_WRITE, qrecord_work, qrecord_done, x);
}

/* Counted whether or not the record could be made: the file moved. */
static void count_quarantined(const struct store_quarantined *q, size_t n)
{
	for (size_t i = 0; i < n; i++)
		metrics_add(METRIC_QUARANTINED, 1, METRIC_LABELS(q[i].endpoint, q[i].error_class));
}

/* A peer connected and asked for deliveries: no need to wait out the
 * backoff its absence caused. */
static void on_reachable(void *ctx, const char *endpoint)
{
	struct endpoint *ep = broker_endpoint(ctx, endpoint);
	if (ep)
		deliver_retry_now(ep->dep);
}

static struct deliver_params delivery_params(const struct config *cfg,
					     const struct endpoint_conf *conf)
{
	return (struct deliver_params){
		.retry_initial_ms = cfg->retry_initial_ms,
		.retry_max_ms = cfg->retry_max_ms,
		.drain_rate = cfg->drain_rate,
		.batch_max = (size_t)cfg->batch_max,
		.window_msgs = (size_t)cfg->batch_max * 4,
		.window_bytes = 8u * 1024u * 1024u,
		.delivery_timeout_ms = conf->delivery_timeout_ms,
	};
}

/* The lanes of endpoint name, made on first use. */
static struct ep_lanes *lanes_of(struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->neplanes; i++)
		if (strcmp(b->eplanes[i].name, name) == 0)
			return &b->eplanes[i];
	b->eplanes = xrealloc(b->eplanes, (b->neplanes + 1) * sizeof(*b->eplanes));
	struct ep_lanes *l = &b->eplanes[b->neplanes++];
	_cleanup_free_ char *in = xasprintf("in:%s", name), *out = xasprintf("out:%s", name);
	*l = (struct ep_lanes){ .name = xstrdup(name), .in = lane_new(b->lanes, in),
				.out = lane_new(b->lanes, out) };
	return l;
}

/* Creates conf's transport and hands it to the endpoint's scheduler (which
 * then has none when creation fails: the endpoint waits for a reload). */
static void give_transport(struct broker *b, struct deliver_ep *dep,
			   const struct endpoint_conf *conf)
{
	const struct transport_ops *ops = transport_find(conf->transport);
	struct ep_lanes *l = lanes_of(b, conf->name);
	void *shared = NULL;
	for (size_t i = 0; transport_at(i); i++)
		if (transport_at(i) == ops)
			shared = b->shared[i];
	struct transport_env env = {
		.shared = shared,
		.base = b->base, .ingest = b->ingest, .lane_in = l->in, .lane_out = l->out,
		.instance = store_instance(b->store),
		.cfg = b->cfg, .inbound_state = on_inbound_state,
		.inbound_unreadable = on_inbound_unreadable, .quarantined = on_quarantined,
		.reachable = on_reachable, .ctx = b, .send_until = deliver_send_until(dep),
	};
	char err[256] = "";
	struct transport *t = ops ? ops->create(conf, &env, err, sizeof(err)) : NULL;
	if (!t)
		log_err("event=endpoint-unavailable endpoint=%s error=\"%s\"", conf->name,
			ops ? err : "unknown transport");
	deliver_set_transport(dep, t ? ops : NULL, t);
}

/* ---- several daemons: leases, observations ------------------------------- */

struct observation {
	struct store_observation o; /* strings owned */
	int r;
	char error[256];
};

static void observation_work(struct store *view, void *arg)
{
	struct observation *x = arg;
	x->r = store_observation_add(view, &x->o);
	if (x->r < 0)
		str_copy(x->error, store_last_error(view), sizeof(x->error));
}

static void observation_done(void *arg)
{
	struct observation *x = arg;
	if (x->r < 0) /* a health observation lost: the next one counts the same */
		log_warn("event=observation-unrecorded endpoint=%s error=\"%s\"", x->o.endpoint,
			 x->error);
	free((char *)x->o.endpoint);
	free((char *)x->o.error);
	free(x);
}

/* True when the outage procedure runs here (always, without a cluster). */
static bool proc_here(const struct broker *b)
{
	return !b->cluster || cluster_holds(b->cluster, "procedure", NULL);
}

static void on_delivery_event(void *ctx, struct deliver_ep *dep, const struct deliver_event *ev)
{
	struct broker *b = ctx;
	struct endpoint *ep = broker_endpoint(b, deliver_ep_name(dep));
	if (!ep || ep->dep != dep)
		return;
	if (!proc_here(b)) { /* for the node that runs the procedure */
		struct observation *x = xcalloc(1, sizeof(*x));
		x->o = (struct store_observation){
			.endpoint = xstrdup(ep->name), .ok = ev->ok, .probe = ev->probe,
			.fault = (int)ev->fault, .error = xstrdup(ev->error ? ev->error : ""),
			.delivered = (int64_t)ev->delivered, .at = clock_wall_ms(),
		};
		store_run(b->store, STORE_LANE_LEASE, observation_work, observation_done, x);
		return;
	}
	struct procedure_result r = { ev->ok, ev->probe, ev->fault, ev->error, ev->delivered };
	procedure_on_result(b->proc, ep->name, &r);
}

/* Observations other nodes made, taken from the store for the procedure. */
struct obs_take {
	struct broker *b;
	struct store_observation *v; /* strings owned */
	size_t n;
	int r;
	char error[256];
};

static int obs_one(const struct store_observation *o, void *arg)
{
	struct obs_take *t = arg;
	t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
	t->v[t->n] = *o;
	t->v[t->n].endpoint = xstrdup(o->endpoint);
	t->v[t->n].node = xstrdup(o->node);
	t->v[t->n++].error = xstrdup(o->error ? o->error : "");
	return 0;
}

static void obs_take_work(struct store *view, void *arg)
{
	struct obs_take *t = arg;
	t->r = store_observations_take(view, 256, obs_one, t);
	if (t->r < 0)
		str_copy(t->error, store_last_error(view), sizeof(t->error));
}

static void obs_take_done(void *arg)
{
	struct obs_take *t = arg;
	struct broker *b = t->b;
	b->obs_out = false;
	if (t->r < 0)
		log_debug("event=observations-unread error=\"%s\"", t->error);
	for (size_t i = 0; i < t->n; i++) {
		struct store_observation *o = &t->v[i];
		struct procedure_result r = { o->ok, o->probe, (enum transport_fault)o->fault,
					      o->error, (size_t)o->delivered };
		if (!b->stopping && !b->closing)
			procedure_on_result(b->proc, o->endpoint, &r);
		free((char *)o->endpoint);
		free((char *)o->node);
		free((char *)o->error);
	}
	free(t->v);
	free(t);
}

static void take_observations(struct broker *b)
{
	if (!b->cluster || b->obs_out || !proc_here(b))
		return;
	struct obs_take *t = xcalloc(1, sizeof(*t));
	t->b = b;
	b->obs_out = true;
	store_run(b->store, STORE_LANE_LEASE, obs_take_work, obs_take_done, t);
}

/* A delivery backoff kept in the endpoint's lease row, for a next holder. */
struct backoff_save {
	struct store_fence f; /* lease owned */
	int failures;
	int64_t next_attempt_at;
};

static void backoff_work(struct store *view, void *arg)
{
	struct backoff_save *x = arg;
	/* best effort: a lost write only means that a next holder retries sooner */
	if (store_lease_backoff(view, &x->f, x->failures, x->next_attempt_at) < 0)
		x->failures = -1;
}

static void backoff_done(void *arg)
{
	struct backoff_save *x = arg;
	free((char *)x->f.lease);
	free(x);
}

static void on_backoff(void *ctx, struct deliver_ep *dep, int failures, int64_t next_attempt_at)
{
	struct broker *b = ctx;
	struct deliver_info di;
	deliver_get_info(dep, &di);
	if (!b->cluster || !di.epoch)
		return;
	struct backoff_save *x = xcalloc(1, sizeof(*x));
	x->f = (struct store_fence){ xasprintf("ep:%s", deliver_ep_name(dep)), di.epoch };
	x->failures = failures;
	x->next_attempt_at = next_attempt_at;
	store_run(b->store, STORE_LANE_LEASE, backoff_work, backoff_done, x);
}

/* ---- what the outage procedure sees of the endpoints ------------------- */

static bool proc_endpoint_view(void *ctx, const char *endpoint, struct procedure_ep_view *v)
{
	struct endpoint *ep = broker_endpoint(ctx, endpoint);
	if (!ep)
		return false;
	struct deliver_info di;
	deliver_get_info(ep->dep, &di);
	*v = (struct procedure_ep_view){
		.queued = di.queued,
		.oldest_received_at = di.oldest_received_at,
		.busy = !deliver_transport(ep->dep) || deliver_busy(ep->dep),
	};
	return true;
}

static bool proc_probe(void *ctx, const char *endpoint)
{
	struct endpoint *ep = broker_endpoint(ctx, endpoint);
	return ep && deliver_probe(ep->dep);
}

/* ---- what the control commands see of the endpoints -------------------- */

static void control_row(const struct endpoint *ep, struct control_endpoint *row)
{
	*row = (struct control_endpoint){ .name = ep->name, .conf = ep->conf, .dep = ep->dep,
					  .held = ep->held, .pickup_paused = ep->inbound_paused,
					  .inbox_unreadable = ep->inbox_unreadable };
	deliver_get_info(ep->dep, &row->di);
}

/* ---- holds: an operator paused an endpoint's delivery ------------------ */

/* source says where the change came from: "operator" (a verb here),
 * "store" (read at start-up or reload), "cluster" (a lease round: the verb
 * was given on another node). */
static void apply_hold(struct broker *b, struct endpoint *ep, bool held, const char *source)
{
	if (ep->held != held)
		log_notice("event=endpoint-%s endpoint=%s source=%s", held ? "held" : "released",
			   ep->name, source);
	ep->held = held;
	deliver_hold(ep->dep, held);
	procedure_endpoint_held(b->proc, ep->name, held);
}

static void control_hold(void *ctx, const char *endpoint, bool held)
{
	struct broker *b = ctx;
	struct endpoint *ep = broker_endpoint(b, endpoint);
	if (!ep)
		return;
	ep->held_set_at = clock_mono_ms();
	apply_hold(b, ep, held, "operator");
}

static int hold_one(const struct store_hold *h, void *arg)
{
	struct broker *b = arg;
	struct endpoint *ep = broker_endpoint(b, h->endpoint);
	if (ep && !ep->held)
		apply_hold(b, ep, true, "store");
	return 0;
}

/* The holds recorded in the store, applied to the endpoints configured
 * at start-up, before any delivers (the loop runs nothing else yet). A
 * failure to read them is logged: those endpoints deliver until the next
 * reload reads them again. */
static void load_holds(struct broker *b)
{
	if (store_holds(b->store, hold_one, b) < 0)
		log_err("event=holds-unread error=\"%s\" state=endpoints-not-held",
			store_last_error(b->store));
}

/* The holds a reload reads: on the read lane, so a database that does not
 * answer holds neither the reload nor the loop; applied when they come. */
struct holds_job {
	struct broker *b;
	int64_t read_from;   /* mono ms: an operator's change after this wins */
	char **names;        /* the endpoints held, owned */
	size_t n;
	int r;
	char err[256];
};

static void holds_work(struct store *view, void *arg)
{
	struct holds_job *j = arg;
	j->r = store_holds_copy(view, &j->names, &j->n);
	if (j->r < 0)
		str_copy(j->err, store_last_error(view), sizeof(j->err));
}

/* An endpoint an operator held or released here since the read started is
 * left alone: the read may predate that verb's record (as a lease round's,
 * on_cluster_holds). */
static void apply_holds(struct broker *b, const struct holds_job *j)
{
	if (j->r < 0) {
		log_err("event=holds-unread error=\"%s\" state=endpoints-not-held", j->err);
		return;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct endpoint *ep = broker_endpoint(b, j->names[i]);
		if (ep && !ep->held && ep->held_set_at < j->read_from)
			apply_hold(b, ep, true, "store");
	}
}

static void holds_done(void *arg)
{
	struct holds_job *j = arg;
	if (!j->b->closing)
		apply_holds(j->b, j);
	for (size_t i = 0; i < j->n; i++)
		free(j->names[i]);
	free(j->names);
	free(j);
}

static void reload_holds(struct broker *b)
{
	struct holds_job *j = xcalloc(1, sizeof(*j));
	*j = (struct holds_job){ .b = b, .read_from = clock_mono_ms() };
	store_run(b->store, STORE_LANE_READ, holds_work, holds_done, j);
}

static bool among(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* Every lease round's holds (several daemons): a verb given on another
 * node takes effect here. An endpoint an operator changed here since the
 * round started is left alone: the verb records before it applies, but the
 * round may have read before that record, and undoing the operator's
 * change would hold it back until the next round. */
static void on_cluster_holds(void *ctx, const char *const *held, size_t n, int64_t read_from)
{
	struct broker *b = ctx;
	for (size_t i = 0; i < b->neps; i++) {
		struct endpoint *ep = b->eps[i];
		bool h = among(held, n, ep->name);
		if (h != ep->held && ep->held_set_at < read_from)
			apply_hold(b, ep, h, "cluster");
	}
}

static struct lane *control_inbound_lane(void *ctx, const char *endpoint)
{
	return lanes_of(ctx, endpoint)->in;
}

/* ---- metrics: what a scrape shows of live state, from memory ------------ */

static void scrape_endpoint(struct broker *b, struct endpoint *ep, int64_t now)
{
	static const char *const states[] = METRICS_ENDPOINT_STATES;
	static const char *const outage_states[] = METRICS_OUTAGE_STATES;
	struct deliver_info di;
	deliver_get_info(ep->dep, &di);
	metrics_set(METRIC_QUEUE_MESSAGES, (double)di.queued, METRIC_LABELS(ep->name));
	double age = di.queued > 0 && di.oldest_received_at ? (double)(now - di.oldest_received_at)
							     / 1000.0 : 0;
	metrics_set(METRIC_QUEUE_OLDEST, age > 0 ? age : 0, METRIC_LABELS(ep->name));
	struct procedure_health h;
	const char *state = procedure_endpoint_health(b->proc, ep->name, &h) ? h.state : "up";
	for (size_t i = 0; i < ARRAY_SIZE(states); i++)
		metrics_set(METRIC_ENDPOINT_STATE, strcmp(states[i], state) == 0,
			    METRIC_LABELS(ep->name, states[i]));
	const char *outage = procedure_outage_state(b->proc, ep->name);
	for (size_t i = 0; i < ARRAY_SIZE(outage_states); i++)
		metrics_set(METRIC_OUTAGES_OPEN, outage && strcmp(outage_states[i], outage) == 0,
			    METRIC_LABELS(ep->name, outage_states[i]));
}

static void on_scrape(void *ctx)
{
	struct broker *b = ctx;
	int64_t now = clock_wall_ms();
	for (size_t i = 0; i < b->neps; i++)
		scrape_endpoint(b, b->eps[i], now);
	metrics_set(METRIC_STORE_UP, commit_healthy(b->commit), NULL);
	if (!b->cluster)
		return;
	/* several daemons: which one this is, and what it delivers */
	metrics_set(METRIC_NODE_INFO, 1, METRIC_LABELS(store_node_name(b->store)));
	metrics_set(METRIC_DATABASE_UP, cluster_reachable(b->cluster), NULL);
	for (size_t i = 0; i < b->neps; i++)
		metrics_set(METRIC_ENDPOINT_HELD, deliver_active(b->eps[i]->dep),
			    METRIC_LABELS(b->eps[i]->name));
}

/* What needs the store, read by housekeeping so a scrape never waits on it:
 * the store's size, dead letters and overdue acknowledgements per endpoint,
 * read on the store's read lane (a server store is not asked on the loop)
 * and set on the loop. */
struct store_metrics_job {
	struct broker *b;
	int64_t overdue_before;
	int rsize, rdead, roverdue;
	int64_t bytes, dead;
	struct { char *endpoint; int64_t n; } *overdue; /* what the store named */
	size_t noverdue;
};

static int tally_overdue(const char *endpoint, int64_t n, void *arg)
{
	struct store_metrics_job *j = arg;
	j->overdue = xrealloc(j->overdue, (j->noverdue + 1) * sizeof(*j->overdue));
	j->overdue[j->noverdue].endpoint = xstrdup(endpoint ? endpoint : "");
	j->overdue[j->noverdue++].n = n;
	return 0;
}

static void store_metrics_work(struct store *view, void *arg)
{
	struct store_metrics_job *j = arg;
	j->rsize = store_size(view, &j->bytes);
	j->rdead = store_count(view, MSG_DEAD, &j->dead);
	j->roverdue = store_ack_overdue(view, j->overdue_before, tally_overdue, j);
}

/* The store names only the endpoints that have overdue messages: the
 * others read 0, so one whose receipts came drops back. An endpoint removed
 * from the configuration keeps its tracked messages in the store, but has
 * no series: its name is no label value any more. */
static void set_overdue(struct broker *b, const struct store_metrics_job *j)
{
	for (size_t i = 0; i < b->neps; i++) {
		int64_t n = 0;
		for (size_t k = 0; k < j->noverdue; k++)
			if (strcmp(j->overdue[k].endpoint, b->eps[i]->name) == 0)
				n = j->overdue[k].n;
		metrics_set(METRIC_ACKS_OVERDUE, (double)n, METRIC_LABELS(b->eps[i]->name));
	}
}

static void store_metrics_done(void *arg)
{
	struct store_metrics_job *j = arg;
	/* a failure keeps the last values: the store's own errors are logged
	 * where they happen, and edibroker_store_up says it fails */
	if (j->rsize == 0)
		metrics_set(METRIC_STORE_SIZE, (double)j->bytes, NULL);
	if (j->rdead == 0)
		metrics_set(METRIC_DEAD_LETTERS, (double)j->dead, NULL);
	if (!j->b->closing) {
		if (j->roverdue >= 0)
			set_overdue(j->b, j);
		j->b->metrics_out = false;
	}
	for (size_t k = 0; k < j->noverdue; k++)
		free(j->overdue[k].endpoint);
	free(j->overdue);
	free(j);
}

static void refresh_store_metrics(struct broker *b)
{
	if (b->metrics_out)
		return;
	struct store_metrics_job *j = xcalloc(1, sizeof(*j));
	j->b = b;
	j->overdue_before = clock_wall_ms() - b->cfg->ack_timeout_ms;
	b->metrics_out = true;
	store_run(b->store, STORE_LANE_READ, store_metrics_work, store_metrics_done, j);
}

/* The configured endpoints are the values an endpoint label takes. */
static void metrics_endpoints(const struct config *cfg)
{
	_cleanup_free_ const char **names = xcalloc(cfg->nendpoints + 1, sizeof(*names));
	for (size_t i = 0; i < cfg->nendpoints; i++)
		names[i] = cfg->endpoints[i].name;
	metrics_set_endpoints(names, cfg->nendpoints);
}

static bool control_endpoint_at(void *ctx, size_t i, struct control_endpoint *row)
{
	struct broker *b = ctx;
	if (i >= b->neps)
		return false;
	control_row(b->eps[i], row);
	return true;
}

static bool control_endpoint_named(void *ctx, const char *name, struct control_endpoint *row)
{
	struct endpoint *ep = broker_endpoint(ctx, name);
	if (ep)
		control_row(ep, row);
	return ep != NULL;
}

static struct endpoint *endpoint_new(struct broker *b, const struct endpoint_conf *conf)
{
	struct endpoint *ep = xcalloc(1, sizeof(*ep));
	ep->name = xstrdup(conf->name);
	ep->conf = conf;
	struct deliver_env env = {
		.base = b->base, .commit = b->commit, .store = b->store,
		.may_deliver = may_deliver, .on_event = on_delivery_event, .ctx = b,
		.on_backoff = on_backoff, .leased = b->cluster != NULL,
	};
	struct deliver_params p = delivery_params(b->cfg, conf);
	ep->dep = deliver_ep_new(conf->name, &env, &p);
	give_transport(b, ep->dep, conf);
	int r = deliver_load(ep->dep);
	if (r < 0)
		log_err("event=queue-load-failed endpoint=%s error=\"%s\"", conf->name,
			store_last_error(b->store));
	procedure_endpoint_added(b->proc, ep->name);
	return ep;
}

static void endpoint_free(struct endpoint *ep)
{
	deliver_ep_free(ep->dep);
	free(ep->name);
	free(ep);
}

/* True when endpoint ep picks up from an inbox that every node can see (a
 * spool folder): one reader at a time, the holder of "in:NAME". Other
 * transports take what peers push to whichever node they reach. */
static bool inbox_leased(const struct broker *b, const struct endpoint_conf *conf)
{
	return b->cluster && strcmp(conf->transport, "spool") == 0;
}

static void start_inbound(struct broker *b, struct endpoint *ep)
{
	struct transport *t = deliver_transport(ep->dep);
	if (!t)
		return;
	if (inbox_leased(b, ep->conf)) {
		_cleanup_free_ char *lease = xasprintf("in:%s", ep->name);
		if (!cluster_holds(b->cluster, lease, NULL))
			return; /* another node reads this inbox; acquiring it starts pick-up */
	}
	deliver_transport_ops(ep->dep)->start(t);
}

static void stop_inbound(struct broker *b, struct endpoint *ep)
{
	struct transport *t = deliver_transport(ep->dep);
	if (t)
		deliver_transport_ops(ep->dep)->stop(t);
}

/* The endpoint named by lease "PREFIX:NAME", or NULL. */
static struct endpoint *lease_endpoint(struct broker *b, const char *lease, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(lease, prefix, n) == 0 ? broker_endpoint(b, lease + n) : NULL;
}

static void on_lease_acquired(void *ctx, const struct store_lease *l, int64_t trust_until)
{
	struct broker *b = ctx;
	struct endpoint *ep;
	if (b->stopping)
		return;
	if ((ep = lease_endpoint(b, l->name, "ep:"))) {
		struct deliver_lease dl = { l->name, l->epoch, trust_until, l->failures,
					    l->next_attempt_at };
		deliver_activate(ep->dep, &dl);
	} else if ((ep = lease_endpoint(b, l->name, "in:"))) {
		start_inbound(b, ep);
	} else if (strcmp(l->name, "procedure") == 0) {
		/* every record save from now on carries this epoch: the
		 * procedure's own (on the store's lanes) and the loop's handle's */
		struct store_fence f = { "procedure", l->epoch };
		store_fence_records(b->store, &f);
		procedure_fence(b->proc, &f);
		/* reads on the read lane; it acts once they are back (a failed
		 * read is logged there and read again) */
		procedure_resync(b->proc);
	}
}

static void on_lease_renewed(void *ctx, const char *name, int64_t epoch, int64_t trust_until)
{
	struct endpoint *ep = lease_endpoint(ctx, name, "ep:");
	if (ep)
		deliver_lease_renewed(ep->dep, trust_until);
}

static void on_lease_lost(void *ctx, const char *name, int64_t epoch)
{
	struct broker *b = ctx;
	struct endpoint *ep;
	if ((ep = lease_endpoint(b, name, "ep:")))
		deliver_deactivate(ep->dep);
	else if ((ep = lease_endpoint(b, name, "in:")))
		stop_inbound(b, ep);
	/* "procedure": it checks the lease itself (proc_may_act) */
}

static void on_db_reachable(void *ctx, bool ok, const char *error)
{
	struct broker *b = ctx;
	b->db_reachable = ok;
}

static bool proc_may_act(void *ctx)
{
	struct broker *b = ctx;
	return !b->stopping && proc_here(b);
}

/* Every lease this node may hold: its endpoints', their inboxes', the
 * procedure's. */
static void cluster_wants(struct broker *b)
{
	if (!b->cluster)
		return;
	const struct config *cfg = b->cfg;
	char **names = xcalloc(2 * cfg->nendpoints + 1, sizeof(char *));
	size_t n = 0;
	names[n++] = xstrdup("procedure");
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		names[n++] = xasprintf("ep:%s", cfg->endpoints[i].name);
		if (inbox_leased(b, &cfg->endpoints[i]))
			names[n++] = xasprintf("in:%s", cfg->endpoints[i].name);
	}
	cluster_want(b->cluster, (const char *const *)names, n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- the transports' shared parts (listeners for peers) ---------------- */

static struct transport_shared_env shared_env(struct broker *b)
{
	return (struct transport_shared_env){ b->base, b->ingest, b->lanes,
					      store_instance(b->store) };
}

/* Makes (and binds) each transport's shared part the config asks for. */
static int shared_start(struct broker *b, char *err, size_t errlen)
{
	struct transport_shared_env env = shared_env(b);
	for (size_t i = 0; transport_at(i); i++) {
		const struct transport_ops *ops = transport_at(i);
		assert(i < TRANSPORTS_MAX);
		if (!ops->shared_new || b->shared[i])
			continue;
		err[0] = '\0';
		b->shared[i] = ops->shared_new(b->cfg, &env, err, errlen);
		if (!b->shared[i] && err[0])
			return -EINVAL;
	}
	return 0;
}

/* A reload: new credentials and settings for the listeners there are, and
 * the listeners the new config turns on. */
static void shared_reload(struct broker *b)
{
	char err[512];
	for (size_t i = 0; transport_at(i); i++) {
		const struct transport_ops *ops = transport_at(i);
		err[0] = '\0';
		if (b->shared[i] && ops->shared_reload &&
		    ops->shared_reload(b->shared[i], b->cfg, err, sizeof(err)) < 0)
			log_err("event=reload-partial transport=%s error=\"%s\" state=old-settings-kept",
				ops->name, err);
	}
	if (shared_start(b, err, sizeof(err)) < 0)
		log_err("event=reload-partial error=\"%s\" state=listener-not-started", err);
}

static int lock_state_dir(struct broker *b, char *err, size_t errlen)
{
	int r = mkdir_p(b->cfg->state_dir, 0750);
	if (r < 0) {
		snprintf(err, errlen, "state_dir %s: %s", b->cfg->state_dir, strerror(-r));
		return r;
	}
	_cleanup_free_ char *path = xasprintf("%s/edibrokerd.lock", b->cfg->state_dir);
	b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (b->lock_fd < 0 || flock(b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path,
			 e == EWOULDBLOCK ? "another edibrokerd uses this state_dir" : strerror(e));
		return -e;
	}
	return 0;
}

/* Back-pressure: a message for endpoint waits when its queue, or all of
 * them, would pass the high-water mark (large by default: an EOJ system
 * down for a weekend must not reach it). Messages for other endpoints go
 * on. */
static bool queue_full(void *ctx, const char *endpoint, size_t mine_more, size_t total_more)
{
	struct broker *b = ctx;
	int64_t total = (int64_t)total_more, mine = (int64_t)mine_more;
	for (size_t i = 0; i < b->neps; i++) {
		struct deliver_info di;
		deliver_get_info(b->eps[i]->dep, &di);
		total += di.queued_bytes;
		if (strcmp(b->eps[i]->name, endpoint) == 0)
			mine += di.queued_bytes;
	}
	return mine > b->cfg->max_queued_bytes || total > b->cfg->max_queued_total;
}

int broker_load_schemas(const struct config *cfg, struct codec_schemas **out, char *err,
			size_t errlen)
{
	bool asked = false;
	*out = NULL;
	for (size_t i = 0; i < cfg->nendpoints; i++)
		asked |= cfg->endpoints[i].xsd != XSD_OFF;
	if (!asked)
		return 0;
	char why[768];
	*out = codec_schemas_load(cfg->xsd_dir, why, sizeof(why));
	if (!*out) {
		snprintf(err, errlen, "[broker] xsd_dir (an endpoint has xsd = warn or enforce): %s",
			 why);
		return -EINVAL;
	}
	return 0;
}

static void apply_ingest_config(struct broker *b)
{
	struct ingest_config ic = {
		.limits = { .max_bytes = (size_t)b->cfg->max_message_size,
			    .max_depth = CODEC_DEFAULT_MAX_DEPTH,
			    .budget_ms = b->cfg->decode_timeout_ms },
		.schemas = b->schemas,
		.broker_id = b->cfg->broker_id,
		.broker_gln = b->cfg->broker_gln,
	};
	ingest_set_config(b->ingest, &ic);
	ingest_set_router(b->ingest, b->router);
}

struct broker *broker_new(struct event_base *base, struct config *cfg, char *err, size_t errlen)
{
	struct broker *b = xcalloc(1, sizeof(*b));
	b->base = base;
	b->cfg = cfg;
	b->lock_fd = -1;
	b->started_at = clock_wall_ms();
	if (lock_state_dir(b, err, errlen) < 0)
		goto fail;
	struct store_options so = { .max_bytes = (uint64_t)cfg->store_max_size,
				    .url = cfg->store_url, .password = cfg->store_password,
				    .node = cfg->store_node };
	b->store = store_open(cfg->store_backend, cfg->state_dir, &so, err, errlen);
	if (!b->store)
		goto fail;
	if (store_attach(b->store, base) < 0) {
		snprintf(err, errlen, "cannot make the store's lanes: %s", strerror(errno));
		goto fail;
	}
	if (store_shared(b->store)) {
		struct cluster_env ce = {
			.base = base, .store = b->store, .lease_ms = cfg->store_lease_ms,
			.started_at = b->started_at, .acquired = on_lease_acquired,
			.renewed = on_lease_renewed, .lost = on_lease_lost,
			.holds = on_cluster_holds, .reachable = on_db_reachable, .ctx = b,
		};
		b->cluster = cluster_new(&ce);
		b->db_reachable = true;
		log_notice("event=cluster-member node=%s lease_ms=%lld", store_node_name(b->store),
			   (long long)cfg->store_lease_ms);
	}
	b->lanes = lanes_new(base, 0);
	if (!b->lanes) {
		snprintf(err, errlen, "cannot make the worker pool: %s", strerror(errno));
		goto fail;
	}
	b->notify_lane = lane_new(b->lanes, "notify");
	b->control_lane = lane_new(b->lanes, "control");
	b->notifier = notifier_new(b->notify_lane);
	b->commit = commit_new(base, b->store);
	commit_on_health(b->commit, on_store_health, b);
	b->router = router_new(cfg);
	if (broker_load_schemas(cfg, &b->schemas, err, errlen) < 0)
		goto fail;
	b->ingest = ingest_new(base, b->lanes, b->commit, on_queued, b);
	ingest_set_backpressure(b->ingest, queue_full, b);
	ingest_set_store(b->ingest, b->store);
	apply_ingest_config(b);
	if (shared_start(b, err, errlen) < 0)
		goto fail;
	struct procedure_env pe = {
		.base = base, .store = b->store, .notifier = b->notifier,
		.endpoint_view = proc_endpoint_view, .probe = proc_probe, .ctx = b,
		.may_act = b->cluster ? proc_may_act : NULL,
	};
	b->proc = procedure_new(&pe, cfg, err, errlen);
	if (!b->proc)
		goto fail;
	metrics_endpoints(cfg);
	metrics_set(METRIC_START_TIME, (double)b->started_at / 1000.0, NULL);
	b->eps = xcalloc(cfg->nendpoints, sizeof(struct endpoint *));
	for (; b->neps < cfg->nendpoints; b->neps++)
		b->eps[b->neps] = endpoint_new(b, &cfg->endpoints[b->neps]);
	load_holds(b);
	metrics_on_scrape(on_scrape, b);
	refresh_store_metrics(b);
	cluster_wants(b);
	return b;
fail:
	broker_free(b);
	return NULL;
}

/* Pruning: up to PRUNE_ROUNDS rounds of PRUNE_ROWS rows, where the store
 * may block (off the loop with a server store). */
struct prune_job {
	struct broker *b;
	int64_t body_before, history_before;
	long total;
	int r;
	char error[256];
};

static void prune_work(struct store *view, void *arg)
{
	struct prune_job *j = arg;
	for (int i = 0; i < PRUNE_ROUNDS; i++) {
		int r = store_prune(view, j->body_before, j->history_before, PRUNE_ROWS);
		if (r < 0) {
			j->r = r;
			str_copy(j->error, store_last_error(view), sizeof(j->error));
			return;
		}
		j->total += r;
		if (r < PRUNE_ROWS)
			break;
	}
}

static void prune_done(void *arg)
{
	struct prune_job *j = arg;
	j->b->prune_out = false;
	if (j->r < 0)
		log_warn("event=prune-failed error=\"%s\"", j->error);
	else if (j->total > 0)
		log_debug("event=pruned rows=%ld", j->total);
	free(j);
}

static void prune(struct broker *b)
{
	int64_t now = clock_wall_ms();
	struct prune_job *j = xcalloc(1, sizeof(*j));
	*j = (struct prune_job){ .b = b, .body_before = now - b->cfg->retention_ms,
				 .history_before = now - b->cfg->history_ms };
	b->prune_out = true;
	store_run(b->store, STORE_LANE_READ, prune_work, prune_done, j);
}

/* ---- retention of what holds patient data ------------------------------ */

/* Quarantined files of one endpoint being removed on its inbound lane. */
struct qremoval {
	struct broker *b;
	size_t lanes;  /* index in b->eplanes (which may move, but never shrinks) */
	size_t n;
	int64_t ids[QUARANTINE_BATCH];
	char *paths[QUARANTINE_BATCH];
	int err[QUARANTINE_BATCH]; /* 0 or -errno per file, written off the loop */
	int64_t removed_at;        /* then the marks in the store */
	int r;
	char error[256];
};

static void qremoved_work(struct store *view, void *arg)
{
	struct qremoval *q = arg;
	q->r = store_quarantine_removed(view, q->ids, q->n, q->removed_at);
	if (q->r < 0)
		str_copy(q->error, store_last_error(view), sizeof(q->error));
}

static void qremoved_done(void *arg)
{
	struct qremoval *q = arg;
	const char *name = q->b->closing ? "-" : q->b->eplanes[q->lanes].name;
	if (q->r < 0)
		log_warn("event=retention-failed what=quarantine endpoint=%s error=\"%s\"", name,
			 q->error);
	else if (q->n > 0)
		log_notice("event=quarantine-removed endpoint=%s count=%zu", name, q->n);
	free(q);
}

/* Off the loop: a file and its .reason. Already gone counts as removed. */
static void qremoval_work(void *arg)
{
	struct qremoval *q = arg;
	for (size_t i = 0; i < q->n; i++) {
		_cleanup_free_ char *reason = xasprintf("%s.reason", q->paths[i]);
		int r = unlink(q->paths[i]) < 0 && errno != ENOENT ? -errno : 0;
		if (r == 0 && unlink(reason) < 0 && errno != ENOENT)
			r = -errno;
		q->err[i] = r;
	}
}

static void qremoval_done(void *arg)
{
	struct qremoval *q = arg;
	struct ep_lanes *l = &q->b->eplanes[q->lanes];
	size_t ok = 0;
	for (size_t i = 0; i < q->n; i++) {
		if (q->err[i] == 0)
			q->ids[ok++] = q->ids[i];
		else
			log_warn("event=quarantine-remove-failed msg=%lld endpoint=%s path=%s "
				 "error=\"%s\"", (long long)q->ids[i], l->name, q->paths[i],
				 strerror(-q->err[i]));
	}
	l->removing = false;
	for (size_t i = 0; i < q->n; i++)
		free(q->paths[i]);
	q->n = ok;
	q->removed_at = clock_wall_ms();
	/* when the mark fails, the next walk finds the files gone (ENOENT) */
	store_run(q->b->store, STORE_LANE_WRITE, qremoved_work, qremoved_done, q);
}

/* The quarantined files due, as the store's walk hands them over. */
struct qdue {
	size_t n;
	int64_t ids[QUARANTINE_BATCH], at[QUARANTINE_BATCH];
	char *source[QUARANTINE_BATCH], *file[QUARANTINE_BATCH];
};

static int add_due(const struct store_msg *m, void *arg)
{
	struct qdue *d = arg;
	if (d->n == QUARANTINE_BATCH)
		return 1;
	d->ids[d->n] = m->id;
	d->at[d->n] = m->received_at;
	d->source[d->n] = xstrdup_or_null(m->source);
	d->file[d->n++] = xstrdup_or_null(m->file);
	return 0;
}

/* Hands the files due to their endpoints' inbound lanes, one job per
 * endpoint; an endpoint whose last batch is still running is skipped (the
 * walk comes back to it). */
static void qremoval_submit(struct broker *b, struct qdue *d)
{
	size_t lane_of[QUARANTINE_BATCH];
	for (size_t i = 0; i < d->n; i++) /* first: lanes_of() may add lanes */
		lane_of[i] = d->source[i] ? (size_t)(lanes_of(b, d->source[i]) - b->eplanes) : 0;
	_cleanup_free_ struct qremoval **jobs = xcalloc(b->neplanes, sizeof(*jobs));
	for (size_t i = 0; i < d->n; i++) {
		size_t k = lane_of[i];
		if (!d->source[i] || !d->file[i] || b->eplanes[k].removing)
			continue;
		if (!jobs[k]) {
			jobs[k] = xcalloc(1, sizeof(**jobs));
			*jobs[k] = (struct qremoval){ .b = b, .lanes = k };
		}
		jobs[k]->ids[jobs[k]->n] = d->ids[i];
		jobs[k]->paths[jobs[k]->n++] = TAKE_PTR(d->file[i]);
	}
	for (size_t k = 0; k < b->neplanes; k++) {
		if (!jobs[k])
			continue;
		b->eplanes[k].removing = true;
		lane_submit(b->eplanes[k].in, qremoval_work, qremoval_done, jobs[k]);
	}
}

/* One round of retention where the store may block: dead-letter bodies
 * dropped, one page of the walk over quarantined files due. */
struct retention_job {
	struct broker *b;
	int64_t now, cursor_at, cursor_id;
	bool dead_on, quarantine_on;
	int dead;                 /* bodies dropped, or -errno */
	int due;                  /* quarantined rows read, or -errno */
	struct qdue *d;
	char dead_error[256], due_error[256];
};

static void retention_work(struct store *view, void *arg)
{
	struct retention_job *j = arg;
	const struct config *cfg = j->b->cfg;
	if (j->dead_on) {
		j->dead = store_dead_expire(view, j->now - cfg->dead_retention_ms, j->now,
					    DEAD_EXPIRE_ROWS);
		if (j->dead < 0)
			str_copy(j->dead_error, store_last_error(view), sizeof(j->dead_error));
	}
	if (j->quarantine_on) {
		j->due = store_quarantine_expired(view, j->now - cfg->quarantine_retention_ms,
						  j->cursor_at, j->cursor_id, QUARANTINE_BATCH,
						  add_due, j->d);
		if (j->due < 0)
			str_copy(j->due_error, store_last_error(view), sizeof(j->due_error));
	}
}

static void retention_done(void *arg)
{
	struct retention_job *j = arg;
	struct broker *b = j->b;
	struct qdue *d = j->d;
	b->retention_out = false;
	bool more = false;
	if (j->dead_on && j->dead < 0)
		log_warn("event=retention-failed what=dead-letters error=\"%s\"", j->dead_error);
	else if (j->dead_on && j->dead > 0)
		log_notice("event=dead-bodies-removed count=%d", j->dead);
	more |= j->dead_on && j->dead == DEAD_EXPIRE_ROWS;
	if (j->quarantine_on) {
		if (j->due < 0)
			log_warn("event=retention-failed what=quarantine error=\"%s\"", j->due_error);
		else if (!b->stopping && !b->closing)
			qremoval_submit(b, d);
		bool qmore = j->due >= 0 && d->n == QUARANTINE_BATCH;
		b->qcursor_at = qmore ? d->at[d->n - 1] : 0; /* a short page: start over next time */
		b->qcursor_id = qmore ? d->ids[d->n - 1] : 0;
		more |= qmore;
	}
	b->retention_more = more;
	for (size_t i = 0; i < d->n; i++) {
		free(d->source[i]);
		free(d->file[i]);
	}
	free(d);
	free(j);
}

static void retention(struct broker *b)
{
	struct retention_job *j = xcalloc(1, sizeof(*j));
	*j = (struct retention_job){
		.b = b, .now = clock_wall_ms(), .cursor_at = b->qcursor_at,
		.cursor_id = b->qcursor_id, .dead_on = b->cfg->dead_retention_ms > 0,
		.quarantine_on = b->cfg->quarantine_retention_ms > 0,
		.d = xcalloc(1, sizeof(struct qdue)),
	};
	b->retention_out = true;
	store_run(b->store, STORE_LANE_READ, retention_work, retention_done, j);
}

/* ---- queue depths from the store (several daemons write it) ------------- */

struct depths_job {
	struct broker *b;
	struct store_depth *v; /* endpoint names owned */
	size_t n;
	int r;
};

static void depths_work(struct store *view, void *arg)
{
	struct depths_job *j = arg;
	j->r = store_depths_copy(view, &j->v, &j->n);
}

static void depths_done(void *arg)
{
	struct depths_job *j = arg;
	struct broker *b = j->b;
	b->depths_out = false;
	for (size_t i = 0; j->r >= 0 && !b->closing && i < b->neps; i++) {
		int64_t queued = 0, bytes = 0;
		for (size_t k = 0; k < j->n; k++)
			if (strcmp(j->v[k].endpoint, b->eps[i]->name) == 0)
				queued = j->v[k].queued, bytes = j->v[k].bytes;
		deliver_set_depth(b->eps[i]->dep, queued, bytes);
	}
	store_depths_free(j->v, j->n);
	free(j);
}

static void depths_poll(struct broker *b)
{
	if (b->depths_out)
		return;
	struct depths_job *j = xcalloc(1, sizeof(*j));
	j->b = b;
	b->depths_out = true;
	store_run(b->store, STORE_LANE_READ, depths_work, depths_done, j);
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
	static unsigned ticks;
	struct broker *b = arg;
	char line[256];
	broker_status_line(b, line, sizeof(line));
	sdnotify_status(line);
	bool due = ++ticks % PRUNE_EVERY == 0;
	if (due)
		refresh_store_metrics(b);
	bool here = proc_here(b); /* with several daemons, one prunes: the procedure's holder */
	if (due && here && commit_healthy(b->commit) && !b->prune_out)
		prune(b);
	if ((due || b->retention_more) && here && commit_healthy(b->commit) && !b->retention_out)
		retention(b);
	if (b->cluster && !b->stopping) {
		depths_poll(b);
		take_observations(b);
	}
}

/* Where the control socket goes: control_socket when the file says so,
 * else systemd's RuntimeDirectory= (its first entry), else the default
 * under state_dir (`make run`). */
static char *control_path(const struct config *cfg)
{
	const char *rd = getenv("RUNTIME_DIRECTORY");
	if (cfg->control_socket_explicit || str_empty(rd))
		return xstrdup(cfg->control_socket);
	return xasprintf("%.*s/control.sock", (int)strcspn(rd, ":"), rd);
}

static struct control_params control_params_of(const struct config *cfg)
{
	return (struct control_params){
		.operator_group = cfg->operator_group,
		.idle_timeout_ms = cfg->control_idle_timeout_ms,
		.max_connections = (size_t)cfg->control_max_connections,
	};
}

/* True when every endpoint's transport has finished its start-up work. */
static bool all_started(struct broker *b)
{
	for (size_t i = 0; i < b->neps; i++) {
		struct transport *t = deliver_transport(b->eps[i]->dep);
		const struct transport_ops *ops = deliver_transport_ops(b->eps[i]->dep);
		_cleanup_free_ char *in = xasprintf("in:%s", b->eps[i]->name);
		if (inbox_leased(b, b->eps[i]->conf) && !cluster_holds(b->cluster, in, NULL))
			continue; /* another node reads it: nothing to wait for here */
		if (t && ops->started && !ops->started(t))
			return false;
	}
	return true;
}

static void on_ready_poll(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	bool all = all_started(b);
	if (!all && clock_mono_ms() < b->ready_deadline)
		return;
	if (!all)
		log_warn("event=ready-without-all-folders state=still-opening");
	event_del(b->ready_ev);
	b->ready(b->ready_arg);
}

void broker_when_started(struct broker *b, int64_t grace_ms, void (*ready)(void *arg),
			 void *arg)
{
	b->ready = ready;
	b->ready_arg = arg;
	b->ready_deadline = clock_mono_ms() + grace_ms;
	b->ready_ev = event_new(b->base, -1, EV_PERSIST, on_ready_poll, b);
	struct timeval tv = { 0, 5 * 1000 };
	event_add(b->ready_ev, &tv);
}

int broker_start(struct broker *b, char *err, size_t errlen)
{
	b->control_env = (struct control_env){
		.base = b->base, .store = b->store, .commit = b->commit, .proc = b->proc,
		.ingest = b->ingest,
		.started_at = b->started_at, .max_message_size = b->cfg->max_message_size,
		.ack_timeout_ms = b->cfg->ack_timeout_ms,
		.cluster = b->cluster,
		.endpoint_at = control_endpoint_at, .endpoint_named = control_endpoint_named,
		.inbound_lane = control_inbound_lane, .hold = control_hold, .ctx = b,
	};
	if (b->cfg->metrics_listen) {
		b->metrics_http = metrics_http_new(b->base, b->cfg->metrics_listen, err, errlen);
		if (!b->metrics_http)
			return -EADDRINUSE;
		log_info("event=metrics-listen address=%s", b->cfg->metrics_listen);
	}
	_cleanup_free_ char *path = control_path(b->cfg);
	struct control_params cp = control_params_of(b->cfg);
	b->control = control_new(b->base, b->control_lane, path, &cp, &control_verbs,
				 &b->control_env, err, errlen);
	if (!b->control)
		return -EADDRINUSE;
	log_info("event=control-socket path=%s operator_group=\"%s\"", path, cp.operator_group);
	for (size_t i = 0; i < b->neps; i++)
		start_inbound(b, b->eps[i]);
	procedure_start(b->proc);
	if (b->cluster)
		cluster_start(b->cluster);
	b->housekeeping_ev = event_new(b->base, -1, EV_PERSIST, on_housekeeping, b);
	struct timeval tv = { HOUSEKEEPING_MS / 1000, (HOUSEKEEPING_MS % 1000) * 1000 };
	event_add(b->housekeeping_ev, &tv);
	on_housekeeping(-1, 0, b);
	return 0;
}

static void warn_nonreloadable(const char *key, void *arg)
{
	log_warn("event=reload-ignored key=%s reason=\"needs a restart\"", key);
}

/* Keeps the running values of keys that cannot change without a restart. */
static void keep_nonreloadable(struct config *old, struct config *cfg)
{
	config_nonreloadable_changes(old, cfg, warn_nonreloadable, NULL);
	char **keep[][2] = { { &cfg->state_dir, &old->state_dir },
			     { &cfg->control_socket, &old->control_socket },
			     { &cfg->store_backend, &old->store_backend },
			     { &cfg->metrics_listen, &old->metrics_listen } };
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		free(*keep[i][0]);
		*keep[i][0] = xstrdup_or_null(*keep[i][1]);
	}
	cfg->store_max_size = old->store_max_size;
	cfg->control_socket_explicit = old->control_socket_explicit;
}

/* Endpoints that the new config drops are stopped; their queues stay in
 * the store and resume if the endpoint comes back. */
static void reconcile_endpoints(struct broker *b)
{
	struct endpoint **eps = xcalloc(b->cfg->nendpoints, sizeof(struct endpoint *));
	for (size_t i = 0; i < b->cfg->nendpoints; i++) {
		const struct endpoint_conf *conf = &b->cfg->endpoints[i];
		struct endpoint *ep = broker_endpoint(b, conf->name);
		if (!ep) {
			eps[i] = endpoint_new(b, conf);
			start_inbound(b, eps[i]);
			continue;
		}
		/* Keep its queue; give it a fresh transport on the new settings. */
		ep->conf = conf;
		ep->inbound_paused = false;
		struct deliver_params p = delivery_params(b->cfg, conf);
		deliver_set_params(ep->dep, &p);
		give_transport(b, ep->dep, conf);
		start_inbound(b, ep);
		eps[i] = ep;
	}
	for (size_t i = 0; i < b->neps; i++) {
		bool kept = false;
		for (size_t j = 0; j < b->cfg->nendpoints; j++)
			kept |= eps[j] == b->eps[i];
		if (!kept) {
			log_notice("event=endpoint-removed endpoint=%s", b->eps[i]->name);
			procedure_endpoint_removed(b->proc, b->eps[i]->name);
			endpoint_free(b->eps[i]);
		}
	}
	free(b->eps);
	b->eps = eps;
	b->neps = b->cfg->nendpoints;
	reload_holds(b);
	metrics_endpoints(b->cfg);
}

int broker_reload(struct broker *b, struct config *cfg, char *err, size_t errlen)
{
	/* Everything that can still fail is checked before anything changes. */
	struct notice_templates *t = notice_templates_load(cfg->language, cfg->template_dir, err,
							   errlen);
	struct codec_schemas *schemas = NULL;
	if (!t || broker_load_schemas(cfg, &schemas, err, errlen) < 0) {
		notice_templates_free(t);
		config_free(cfg);
		return -EINVAL;
	}
	keep_nonreloadable(b->cfg, cfg);
	struct config *old = b->cfg;
	struct router *old_router = b->router;
	b->cfg = cfg;
	b->router = router_new(cfg);
	codec_schemas_unref(b->schemas); /* decode jobs that run hold their own reference */
	b->schemas = schemas;
	b->control_env.ack_timeout_ms = cfg->ack_timeout_ms;
	apply_ingest_config(b);
	/* The procedure takes the new config first: endpoints added below
	 * start their health on its settings. */
	int pr = procedure_reload(b->proc, cfg, t, err, errlen);
	shared_reload(b);
	reconcile_endpoints(b);
	cluster_wants(b);
	if (pr < 0)
		log_err("event=reload-partial error=\"%s\" state=old-time-rules-kept", err);
	if (b->control) {
		struct control_params cp = control_params_of(cfg);
		control_configure(b->control, &cp);
	}
	b->control_env.max_message_size = cfg->max_message_size;
	router_free(old_router);
	config_free(old);
	log_notice("event=reloaded endpoints=%zu", b->neps);
	return 0;
}

/* Lanes are named "in:ENDPOINT", "out:ENDPOINT" or "notify". */
static void log_abandoned(const char *lane, int64_t since_mono, void *arg)
{
	const char *colon = strchr(lane, ':');
	_cleanup_free_ char *work = colon ? xasprintf("%.*s", (int)(colon - lane), lane)
					  : xstrdup(lane);
	log_err("event=stop-abandoned endpoint=%s work=%s running_s=%lld "
		"state=messages-stay-queued",
		colon ? colon + 1 : "-", work, (long long)((clock_mono_ms() - since_mono) / 1000));
}

/* The last step of a stop: record what finished, close the socket, and
 * leave the loop, abandoning work still stuck in the kernel. */
static void stop_finish(struct broker *b)
{
	event_del(b->stop_ev);
	if (lanes_pending(b->lanes) > 0)
		lanes_stuck(b->lanes, INT64_MAX, log_abandoned, NULL);
	if (commit_flush(b->commit) == -ETIMEDOUT)
		log_err("event=stop-abandoned work=commit state=sources-keep-their-input");
	/* the marks are in: the next holder starts where this one stopped */
	if (b->cluster)
		cluster_stop(b->cluster);
	control_free(b->control);
	b->control = NULL;
	metrics_http_free(b->metrics_http);
	b->metrics_http = NULL;
	if (b->stopped)
		b->stopped(b->stopped_arg);
}

/* A delivery is with a transport that works on the loop's own sockets (a
 * peer link): it ends when the peer confirms, not with a lane job. */
static bool deliveries_busy(struct broker *b)
{
	for (size_t i = 0; i < b->neps; i++)
		if (deliver_busy(b->eps[i]->dep))
			return true;
	return false;
}

/* While stopping: lets the loop run completions (deliveries confirmed,
 * accepted files removed, notices recorded) until nothing is in flight or
 * stop_timeout has passed. */
static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	commit_kick(b->commit);
	/* the store's lanes too: a verb's, the procedure's or a scrape's job
	 * still out would be abandoned with its connection at the close */
	bool idle = lanes_pending(b->lanes) == 0 && commit_idle(b->commit) && !deliveries_busy(b) &&
		    !store_busy(b->store);
	if (idle || clock_mono_ms() >= b->stop_deadline)
		stop_finish(b);
}

void broker_shutdown(struct broker *b, void (*stopped)(void *arg), void *arg)
{
	b->stopping = true;
	b->stopped = stopped;
	b->stopped_arg = arg;
	for (size_t i = 0; i < b->neps; i++) {
		struct transport *t = deliver_transport(b->eps[i]->dep);
		if (t)
			deliver_transport_ops(b->eps[i]->dep)->stop(t);
	}
	for (size_t i = 0; transport_at(i); i++)
		if (b->shared[i] && transport_at(i)->shared_stop)
			transport_at(i)->shared_stop(b->shared[i]);
	commit_kick(b->commit);    /* messages picked up: accepted or left in place */
	if (b->housekeeping_ev)
		event_del(b->housekeeping_ev);
	b->stop_deadline = clock_mono_ms() + b->cfg->stop_timeout_ms;
	b->stop_ev = event_new(b->base, -1, EV_PERSIST, on_stop_poll, b);
	struct timeval tv = { 0, 20 * 1000 };
	event_add(b->stop_ev, &tv);
	on_stop_poll(-1, 0, b);
}

bool broker_free(struct broker *b)
{
	if (!b)
		return false;
	b->closing = true; /* store completions still to run only free their jobs */
	b->control_env.closing = true; /* and the operators' verbs' (storejob.h) */
	/* The store's completions run now, while all they touch (ingest, the
	 * transports that answer a duplicate's sender, the procedure) is
	 * alive; work still out past the stop is abandoned, never completed. */
	bool abandoned = store_stop_lanes(b->store);
	if (b->lanes && lanes_pending(b->lanes) > 0)
		abandoned = true;
	control_free(b->control);
	metrics_http_free(b->metrics_http);
	metrics_on_scrape(NULL, NULL);
	for (size_t i = 0; i < b->neps; i++)
		endpoint_free(b->eps[i]);
	free(b->eps);
	/* Runs the completions of finished work (send rounds point into the
	 * procedure) and frees the pool, or abandons it to threads stuck in
	 * the kernel: their endpoints' structures then stay allocated. */
	lanes_free(b->lanes);
	for (size_t i = 0; i < b->neplanes; i++)
		free(b->eplanes[i].name);
	free(b->eplanes);
	notifier_free(b->notifier);
	procedure_free(b->proc); /* after the pool: finished send rounds point into it */
	commit_free(b->commit);
	ingest_free(b->ingest);
	router_free(b->router);
	codec_schemas_unref(b->schemas);
	cluster_free(b->cluster);
	if (store_close(b->store))
		abandoned = true;
	if (b->housekeeping_ev)
		event_free(b->housekeeping_ev);
	if (b->stop_ev)
		event_free(b->stop_ev);
	if (b->ready_ev)
		event_free(b->ready_ev);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	config_free(b->cfg);
	for (size_t k = 0; transport_at(k); k++)
		if (b->shared[k] && transport_at(k)->shared_free)
			transport_at(k)->shared_free(b->shared[k]);
	free(b);
	return abandoned;
}

void broker_status_line(struct broker *b, char *buf, size_t len)
{
	long long queued = 0;
	int retrying = 0, paused = 0;
	for (size_t i = 0; i < b->neps; i++) {
		struct deliver_info di;
		deliver_get_info(b->eps[i]->dep, &di);
		queued += di.queued;
		retrying += di.failures > 0;
		paused += b->eps[i]->inbound_paused;
	}
	int n = snprintf(buf, len,
			 "queued=%lld endpoints=%zu down=%d retrying=%d outages=%d pickup_paused=%d "
			 "store=%s",
			 queued, b->neps, b->proc ? procedure_endpoints_down(b->proc) : 0, retrying,
			 b->proc ? procedure_open_outages(b->proc) : 0, paused,
			 commit_healthy(b->commit) ? "ok" : "failing");
	if (b->cluster && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " node=%s db=%s leases=%zu", store_node_name(b->store),
			 b->db_reachable ? "ok" : "unreachable", cluster_held(b->cluster));
}

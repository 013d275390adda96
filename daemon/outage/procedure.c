/*
 * procedure.c - endpoint health, the outages' lifecycle and the timer that
 * drives both.
 *
 * Every delivery result and probe feeds an endpoint's health (health.c).
 * An endpoint that goes DOWN opens an outage (outage.c) starting at its
 * first failure, unless a planned shutdown covers it; when the window ends
 * with the endpoint still down, the acute procedure runs from the window's
 * end. A timer (every 500 ms) probes endpoints nobody has checked for
 * probe_interval, advances every open outage, sends planned-shutdown
 * notices, retries notice channels and refreshes the status page.
 *
 * Invariants: at most one open outage per endpoint; every change to an
 * outage or window is saved before anything is sent about it.
 */
#include "outage/procedure_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>

#define TICK_MS 500

struct outage *procedure_find_outage(struct procedure *p, const char *endpoint)
{
	for (size_t i = 0; i < p->noutages; i++)
		if (strcmp(p->outages[i]->endpoint, endpoint) == 0)
			return p->outages[i];
	return NULL;
}

struct outage *procedure_outage_by_id(struct procedure *p, int64_t id)
{
	for (size_t i = 0; i < p->noutages; i++)
		if (p->outages[i]->id == id)
			return p->outages[i];
	return NULL;
}

int procedure_save_outage(struct procedure *p, struct outage *o)
{
	struct store_outage rec;
	outage_to_record(o, &rec);
	int r = store_ops(p->b->store)->outage_save(store_backend(p->b->store), &rec);
	if (r < 0) {
		log_err("event=outage-save-failed outage=%lld endpoint=%s error=\"%s\"",
			(long long)o->id, o->endpoint, store_last_error(p->b->store));
		return r;
	}
	o->id = rec.id;
	p->status_dirty = true;
	return 0;
}

void procedure_add_outage(struct procedure *p, struct outage *o)
{
	p->outages = xrealloc(p->outages, (p->noutages + 1) * sizeof(*p->outages));
	p->outages[p->noutages++] = o;
	p->status_dirty = true;
}

static void drop_closed_outages(struct procedure *p)
{
	size_t j = 0;
	for (size_t i = 0; i < p->noutages; i++) {
		if (outage_is_open(p->outages[i]))
			p->outages[j++] = p->outages[i];
		else
			outage_free(p->outages[i]);
	}
	p->noutages = j;
}

int procedure_save_maint(struct procedure *p, struct maint *m)
{
	struct store_maintenance rec = {
		.id = m->id, .endpoint = m->endpoint, .from = m->from, .to = m->to,
		.reason = m->reason, .contact = m->contact, .created_at = m->created_at,
		.announced_at = m->announced_at, .ended_at = m->ended_at, .removed_at = m->removed_at,
	};
	int r = store_ops(p->b->store)->maintenance_save(store_backend(p->b->store), &rec);
	if (r < 0) {
		log_err("event=maintenance-save-failed endpoint=%s error=\"%s\"", m->endpoint,
			store_last_error(p->b->store));
		return r;
	}
	m->id = rec.id;
	p->status_dirty = true;
	return 0;
}

bool procedure_in_maintenance(struct procedure *p, const char *endpoint, int64_t now)
{
	for (size_t i = 0; i < p->nmaint; i++)
		if (maint_covers(p->maint[i], endpoint, now))
			return true;
	return false;
}

/* ---- health ------------------------------------------------------------ */

static void set_cause(struct outage *o, const struct health *h)
{
	const char *fault = fault_name(h->fault);
	if (o->cause_fault && strcmp(o->cause_fault, fault) == 0 && o->cause_error &&
	    strcmp(o->cause_error, h->error) == 0)
		return;
	free(o->cause_fault);
	free(o->cause_error);
	o->cause_fault = xstrdup(fault);
	o->cause_error = xstrdup(h->error);
}

/* The acute outage starts at the first failure, or at the end of a planned
 * shutdown that was still running then. */
static void open_outage(struct procedure *p, struct endpoint *ep, int64_t started_at,
			int64_t maintenance_id, int64_t now)
{
	struct outage *o = outage_new(ep->name, started_at, now, &p->rules);
	o->maintenance_id = maintenance_id;
	set_cause(o, &ep->health);
	if (procedure_save_outage(p, o) < 0) {
		outage_free(o);
		return;
	}
	procedure_add_outage(p, o);
	log_warn("event=outage-opened outage=%lld endpoint=%s fault=%s started_ms=%lld "
		 "threshold_s=%lld",
		 (long long)o->id, o->endpoint, o->cause_fault, (long long)o->started_at,
		 (long long)(p->rules.threshold_ms / 1000));
}

static void went_down(struct procedure *p, struct endpoint *ep, int64_t now)
{
	log_warn("event=endpoint-down endpoint=%s failures=%d fault=%s error=\"%s\"", ep->name,
		 ep->health.failures, fault_name(ep->health.fault), ep->health.error);
	if (procedure_find_outage(p, ep->name))
		return;
	if (procedure_in_maintenance(p, ep->name, now)) {
		log_info("event=outage-suppressed endpoint=%s reason=maintenance", ep->name);
		return;
	}
	open_outage(p, ep, ep->health.first_failure_at, 0, now);
}

void procedure_on_delivery(struct procedure *p, struct endpoint *ep,
			   const struct deliver_event *ev)
{
	int64_t now = clock_wall_ms();
	enum health_change c = health_observe(&ep->health, ev->ok, ev->probe, ev->fault,
					      ev->error, now, (int)p->b->cfg->down_after);
	struct outage *o = procedure_find_outage(p, ep->name);
	if (o && ev->delivered) {
		o->delivered_late += (int64_t)ev->delivered;
		p->status_dirty = true;
	}
	if (o && !ev->ok && !o->manual)
		set_cause(o, &ep->health);
	if (c == HEALTH_WENT_DOWN)
		went_down(p, ep, now);
	else if (c == HEALTH_CAME_UP)
		log_notice("event=endpoint-up endpoint=%s", ep->name);
	else if (c == HEALTH_WENT_SUSPECT)
		log_info("event=endpoint-suspect endpoint=%s fault=%s", ep->name,
			 fault_name(ep->health.fault));
	if (c != HEALTH_SAME)
		p->status_dirty = true;
}

void procedure_endpoint_added(struct procedure *p, struct endpoint *ep)
{
	/* After a restart an open outage means the endpoint was down: it stays
	 * down until a delivery or probe says otherwise. */
	struct outage *o = procedure_find_outage(p, ep->name);
	if (!o || o->state == OUTAGE_RECOVERING || o->state == OUTAGE_RESOLVED)
		return;
	ep->health.state = HEALTH_DOWN;
	ep->health.failures = (int)p->b->cfg->down_after;
	ep->health.first_failure_at = o->started_at;
	ep->health.since = o->declared_at;
}

const char *procedure_health_name(struct procedure *p, struct endpoint *ep)
{
	if (procedure_in_maintenance(p, ep->name, clock_wall_ms()))
		return "maintenance";
	return health_state_name(ep->health.state);
}

int procedure_endpoints_down(const struct procedure *p)
{
	int n = 0;
	for (size_t i = 0; i < p->b->neps; i++)
		n += p->b->eps[i]->health.state == HEALTH_DOWN;
	return n;
}

int procedure_open_outages(const struct procedure *p)
{
	return (int)p->noutages;
}

/* ---- the timer --------------------------------------------------------- */

static void probe_if_due(struct procedure *p, struct endpoint *ep, int64_t now)
{
	if (!deliver_transport(ep->dep) || deliver_busy(ep->dep))
		return;
	if (ep->health.last_check_at && now - ep->health.last_check_at < p->b->cfg->probe_interval_ms)
		return;
	if (deliver_probe(ep->dep))
		ep->health.last_check_at = now; /* the result will set it again */
}

static void advance(struct procedure *p, struct outage *o, int64_t now)
{
	struct endpoint *ep = broker_endpoint(p->b, o->endpoint);
	struct deliver_info di = { 0 };
	if (ep)
		deliver_get_info(ep->dep, &di);
	struct outage_view v = { now, ep && ep->health.state == HEALTH_UP, di.queued == 0 };
	enum outage_state before = o->state;
	struct outage_action a = outage_advance(o, &v, &p->rules);
	if (!a.changed)
		return;
	if (procedure_save_outage(p, o) < 0)
		return;
	if (o->state != before)
		log_notice("event=outage-%s outage=%lld endpoint=%s", outage_state_name(o->state),
			   (long long)o->id, o->endpoint);
	if (a.send)
		procedure_outage_notice(p, o, a.kind, a.ended_overnight, now);
}

static void maintenance_tick(struct procedure *p, int64_t now)
{
	size_t j = 0;
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		struct endpoint *ep = broker_endpoint(p->b, m->endpoint);
		bool down = ep && ep->health.state != HEALTH_UP;
		struct maint_step s = maint_advance(m, now, p->rules.threshold_ms, p->tr, down,
						    procedure_find_outage(p, m->endpoint) != NULL);
		if (s.changed)
			procedure_save_maint(p, m);
		if (s.announce)
			procedure_planned_notice(p, m, now);
		if (s.ended)
			log_notice("event=maintenance-ended maintenance=%lld endpoint=%s",
				   (long long)m->id, m->endpoint);
		if (s.open_acute)
			open_outage(p, ep, s.acute_start, m->id, now);
		if (m->ended_at)
			maint_free(m);
		else
			p->maint[j++] = m;
	}
	p->nmaint = j;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct procedure *p = arg;
	int64_t now = clock_wall_ms();
	maintenance_tick(p, now);
	for (size_t i = 0; i < p->b->neps; i++)
		probe_if_due(p, p->b->eps[i], now);
	for (size_t i = 0; i < p->noutages; i++)
		advance(p, p->outages[i], now);
	drop_closed_outages(p);
	procedure_notices_tick(p, now);
	procedure_status_tick(p, now);
}

/* ---- life cycle -------------------------------------------------------- */

static int load_outage(const struct store_outage *rec, void *arg)
{
	struct procedure *p = arg;
	if (strcmp(rec->state, "closed") == 0)
		return 0;
	struct outage *o = outage_from_record(rec);
	if (o)
		procedure_add_outage(p, o);
	return 0;
}

static int load_maint(const struct store_maintenance *rec, void *arg)
{
	struct procedure *p = arg;
	if (rec->ended_at)
		return 0;
	struct maint *m = xcalloc(1, sizeof(*m));
	*m = (struct maint){ .id = rec->id, .endpoint = xstrdup(rec->endpoint), .from = rec->from,
			     .to = rec->to, .reason = xstrdup_or_null(rec->reason),
			     .contact = xstrdup_or_null(rec->contact), .created_at = rec->created_at,
			     .announced_at = rec->announced_at, .ended_at = rec->ended_at };
	p->maint = xrealloc(p->maint, (p->nmaint + 1) * sizeof(*p->maint));
	p->maint[p->nmaint++] = m;
	return 0;
}

/* The config's time rules (this sets the process time zone). */
static struct timerules *make_timerules(struct procedure *p, char *err, size_t errlen)
{
	const struct config *cfg = p->b->cfg;
	return timerules_new(cfg->send_window, cfg->support_hours, cfg->closed_days, cfg->timezone,
			     err, errlen);
}

static void apply_rules(struct procedure *p, struct timerules *tr, struct notice_templates *tpl)
{
	timerules_free(p->tr);
	notice_templates_free(p->tpl);
	p->tr = tr;
	p->tpl = tpl;
	p->rules = (struct outage_rules){ p->b->cfg->outage_threshold_ms,
					  p->b->cfg->update_interval_ms, tr };
	p->status_dirty = true;
}

struct procedure *procedure_new(struct broker *b, char *err, size_t errlen)
{
	struct procedure *p = xcalloc(1, sizeof(*p));
	p->b = b;
	struct notice_templates *tpl = notice_templates_load(b->cfg->language, b->cfg->template_dir,
							     err, errlen);
	struct timerules *tr = tpl ? make_timerules(p, err, errlen) : NULL;
	if (!tr) {
		notice_templates_free(tpl);
		free(p);
		return NULL;
	}
	apply_rules(p, tr, tpl);
	const struct store_backend_ops *ops = store_ops(b->store);
	void *be = store_backend(b->store);
	if (ops->outage_list(be, INT64_MAX, 10000, load_outage, p) < 0 ||
	    ops->maintenance_list(be, false, load_maint, p) < 0 || procedure_load_notices(p) < 0) {
		snprintf(err, errlen, "store: %s", store_last_error(b->store));
		procedure_free(p);
		return NULL;
	}
	return p;
}

void procedure_start(struct procedure *p)
{
	p->tick_ev = event_new(p->b->base, -1, EV_PERSIST, on_tick, p);
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	event_add(p->tick_ev, &tv);
}

int procedure_reload(struct procedure *p, struct notice_templates *tpl, char *err,
		     size_t errlen)
{
	struct timerules *tr = make_timerules(p, err, errlen);
	if (!tr) {
		notice_templates_free(tpl);
		return -EINVAL;
	}
	apply_rules(p, tr, tpl);
	return 0;
}

void procedure_free(struct procedure *p)
{
	if (!p)
		return;
	if (p->tick_ev)
		event_free(p->tick_ev);
	for (size_t i = 0; i < p->noutages; i++)
		outage_free(p->outages[i]);
	free(p->outages);
	for (size_t i = 0; i < p->nmaint; i++)
		maint_free(p->maint[i]);
	free(p->maint);
	procedure_notices_free(p);
	timerules_free(p->tr);
	notice_templates_free(p->tpl);
	free(p);
}

/*
 * procedure.c - endpoint health, the outages' lifecycle and the timer that
 * drives both.
 *
 * The procedure owns the health of every configured endpoint (added and
 * removed by the wiring as the config changes), keyed by name. Every
 * delivery result and probe feeds an endpoint's health (health.c).
 * An endpoint that goes DOWN opens an outage (outage.c) starting at its
 * first failure, unless a planned shutdown covers it; when the window ends
 * with the endpoint still down, the acute procedure runs from the window's
 * end. An endpoint an operator holds is treated the same way: no outage
 * opens, an open one sends nothing and waits, and the acute procedure runs
 * from the release if it is still down. A timer (every 500 ms) probes
 * endpoints nobody has checked for
 * probe_interval, advances every open outage, sends planned-shutdown
 * notices, retries notice channels and refreshes the status page.
 *
 * Every change the timer makes is decided on the loop on a copy, saved
 * by a job on the store's write lane (procedure_jobs.c), and made the
 * procedure's only when the store has it; meanwhile the timer leaves that
 * outage or window alone, and a step the store refused is decided again
 * by a later tick.
 *
 * Invariants: at most one open outage per endpoint; every change to an
 * outage or window is saved before anything is sent about it. The world
 * comes through p->env (store, clock, notifier, endpoint views, probes):
 * nothing here knows the broker.
 */
#include "outage/procedure_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>

#define TICK_MS 500

static int64_t system_now(void *ctx)
{
	return clock_wall_ms();
}

int64_t procedure_now(struct procedure *p)
{
	return p->env.now(p->env.ctx);
}

static struct ep_health *ep_find(struct procedure *p, const char *endpoint)
{
	for (size_t i = 0; i < p->neps; i++)
		if (strcmp(p->eps[i]->name, endpoint) == 0)
			return p->eps[i];
	return NULL;
}

struct health *procedure_health_of(struct procedure *p, const char *endpoint)
{
	struct ep_health *e = ep_find(p, endpoint);
	return e ? &e->h : NULL;
}

bool procedure_ep_view(struct procedure *p, const char *endpoint, struct procedure_ep_view *v)
{
	*v = (struct procedure_ep_view){ 0 };
	if (p->env.endpoint_view(p->env.ctx, endpoint, v))
		return true;
	*v = (struct procedure_ep_view){ 0 };
	return false;
}

/* A closed one is not: a save that closed it may come back between ticks,
 * and it stays in the list until the next tick drops it. */
struct outage *procedure_find_outage(struct procedure *p, const char *endpoint)
{
	for (size_t i = 0; i < p->noutages; i++)
		if (outage_is_open(p->outages[i]) && strcmp(p->outages[i]->endpoint, endpoint) == 0)
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

struct maint *procedure_maint_by_id(struct procedure *p, int64_t id, size_t *at)
{
	for (size_t i = 0; i < p->nmaint; i++)
		if (p->maint[i]->id == id) {
			if (at)
				*at = i;
			return p->maint[i];
		}
	return NULL;
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

/* A save of the timer's: the outage or window as it is to be stored (a
 * copy: the procedure's own changes only once the store has it), and
 * what then follows. */
struct save_job {
	struct pjob j;
	struct outage *o;         /* an outage to open or advance */
	struct maint *m;          /* a window's step */
	struct outage_action a;   /* advance: the notice it makes due */
	struct maint_step step;   /* a window's: what follows it */
	enum outage_state before;
	int64_t now;
	int r;
	char error[256];
};

static void save_work(struct store *view, struct pjob *pj)
{
	struct save_job *j = (struct save_job *)pj;
	j->r = j->o ? store_outage_save(view, j->o) : store_maintenance_save(view, j->m);
	if (j->r < 0)
		snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
}

static void save_free(struct pjob *pj)
{
	struct save_job *j = (struct save_job *)pj;
	outage_free(j->o);
	maint_free(j->m);
	free(j);
}

static struct save_job *save_job_new(pjob_done_fn done, int64_t now)
{
	struct save_job *j = xcalloc(1, sizeof(*j));
	j->j = (struct pjob){ .saves = true, .work = save_work, .done = done, .free = save_free };
	j->now = now;
	return j;
}

static void open_done(struct procedure *p, struct pjob *pj)
{
	struct save_job *j = (struct save_job *)pj;
	struct ep_health *e = ep_find(p, j->o->endpoint);
	if (j->r < 0) {
		log_err("event=outage-save-failed outage=0 endpoint=%s error=\"%s\"",
			j->o->endpoint, j->error);
		if (e) /* the timer opens it once the store takes it */
			e->open_missed = true;
		return;
	}
	if (e)
		e->open_missed = false;
	/* a takeover read it from the store meanwhile: it is there already */
	if (procedure_outage_by_id(p, j->o->id))
		return;
	struct outage *o = TAKE_PTR(j->o);
	procedure_add_outage(p, o);
	log_warn("event=outage-opened outage=%lld endpoint=%s fault=%s started_ms=%lld "
		 "threshold_s=%lld",
		 (long long)o->id, o->endpoint, o->cause_fault, (long long)o->started_at,
		 (long long)(p->rules.threshold_ms / 1000));
}

/* The acute outage starts at the first failure, or at the end of a planned
 * shutdown that was still running then. It is the procedure's once saved;
 * meanwhile the endpoint opens no second one. */
static void open_outage(struct procedure *p, const char *endpoint, const struct health *h,
			int64_t started_at, int64_t maintenance_id, int64_t now)
{
	struct ep_health *e = ep_find(p, endpoint);
	if (p->stale || procedure_busy(p, 0, 0, endpoint, false)) {
		/* A takeover's read is out (it may bring this endpoint's outage
		 * from the last holder), or an operator's open or the timer's own
		 * is being saved: two outages of one endpoint otherwise. The
		 * timer opens this one later if there is still none. */
		if (e)
			e->open_missed = true;
		return;
	}
	struct save_job *j = save_job_new(open_done, now);
	struct outage *o = j->o = outage_new(endpoint, started_at, now, &p->rules);
	o->maintenance_id = maintenance_id;
	set_cause(o, h);
	j->j.opening = xstrdup(endpoint);
	procedure_job_run(p, STORE_LANE_WRITE, &j->j);
}

static void went_down(struct procedure *p, const char *endpoint, const struct health *h,
		      int64_t now)
{
	log_warn("event=endpoint-down endpoint=%s failures=%d fault=%s error=\"%s\"", endpoint,
		 h->failures, fault_name(h->fault), h->error);
	if (procedure_find_outage(p, endpoint))
		return;
	if (procedure_in_maintenance(p, endpoint, now) || procedure_is_held(p, endpoint)) {
		log_info("event=outage-suppressed endpoint=%s reason=%s", endpoint,
			 procedure_is_held(p, endpoint) ? "held" : "maintenance");
		return;
	}
	open_outage(p, endpoint, h, h->first_failure_at, 0, now);
}

void procedure_on_result(struct procedure *p, const char *endpoint,
			 const struct procedure_result *r)
{
	struct health *h = procedure_health_of(p, endpoint);
	if (!h)
		return; /* removed by a reload while its attempt ran */
	int64_t now = procedure_now(p);
	enum health_change c = health_observe(h, r->ok, r->probe, r->fault, r->error, now,
					      (int)p->cfg->down_after);
	struct outage *o = procedure_find_outage(p, endpoint);
	if (o && r->delivered) {
		o->delivered_late += (int64_t)r->delivered;
		p->status_dirty = true;
	}
	if (o && !r->ok && !o->manual)
		set_cause(o, h);
	if (c == HEALTH_WENT_DOWN)
		went_down(p, endpoint, h, now);
	else if (c == HEALTH_CAME_UP)
		log_notice("event=endpoint-up endpoint=%s", endpoint);
	else if (c == HEALTH_WENT_SUSPECT)
		log_info("event=endpoint-suspect endpoint=%s fault=%s", endpoint,
			 fault_name(h->fault));
	if (c != HEALTH_SAME)
		p->status_dirty = true;
}

void procedure_endpoint_added(struct procedure *p, const char *endpoint)
{
	struct ep_health *e = ep_find(p, endpoint);
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->name = xstrdup(endpoint);
		p->eps = xrealloc(p->eps, (p->neps + 1) * sizeof(*p->eps));
		p->eps[p->neps++] = e;
	}
	e->h = (struct health){ .since = procedure_now(p) };
	/* After a restart an open outage means the endpoint was down: it stays
	 * down until a delivery or probe says otherwise. */
	struct outage *o = procedure_find_outage(p, endpoint);
	if (!o || o->state == OUTAGE_RECOVERING || o->state == OUTAGE_RESOLVED)
		return;
	e->h.state = HEALTH_DOWN;
	e->h.failures = (int)p->cfg->down_after;
	e->h.first_failure_at = o->started_at;
	e->h.since = o->declared_at;
}

void procedure_endpoint_removed(struct procedure *p, const char *endpoint)
{
	for (size_t i = 0; i < p->neps; i++) {
		if (strcmp(p->eps[i]->name, endpoint) != 0)
			continue;
		free(p->eps[i]->name);
		free(p->eps[i]);
		memmove(&p->eps[i], &p->eps[i + 1], (p->neps - i - 1) * sizeof(*p->eps));
		p->neps--;
		p->status_dirty = true;
		return;
	}
}

bool procedure_is_held(struct procedure *p, const char *endpoint)
{
	struct ep_health *e = ep_find(p, endpoint);
	return e && e->held;
}

void procedure_endpoint_held(struct procedure *p, const char *endpoint, bool held)
{
	struct ep_health *e = ep_find(p, endpoint);
	if (!e || e->held == held)
		return;
	e->held = held;
	p->status_dirty = true;
	int64_t now = procedure_now(p);
	/* released while down: the acute procedure starts now, as after a window */
	if (!held && e->h.state == HEALTH_DOWN && !procedure_find_outage(p, endpoint) &&
	    !procedure_in_maintenance(p, endpoint, now))
		open_outage(p, endpoint, &e->h, now, 0, now);
}

const char *procedure_outage_state(struct procedure *p, const char *endpoint)
{
	struct outage *o = procedure_find_outage(p, endpoint);
	return o ? outage_state_name(o->state) : NULL;
}

const char *procedure_health_name(struct procedure *p, const char *endpoint,
				  const struct health *h, int64_t now)
{
	if (procedure_is_held(p, endpoint))
		return "held";
	if (procedure_in_maintenance(p, endpoint, now))
		return "maintenance";
	return health_state_name(h->state);
}

bool procedure_endpoint_health(struct procedure *p, const char *endpoint,
			       struct procedure_health *out)
{
	const struct health *h = procedure_health_of(p, endpoint);
	if (!h)
		return false;
	*out = (struct procedure_health){ procedure_health_name(p, endpoint, h, procedure_now(p)),
					  h->since };
	return true;
}

int procedure_endpoints_down(const struct procedure *p)
{
	int n = 0;
	for (size_t i = 0; i < p->neps; i++)
		n += p->eps[i]->h.state == HEALTH_DOWN;
	return n;
}

int procedure_open_outages(const struct procedure *p)
{
	int n = 0;
	for (size_t i = 0; i < p->noutages; i++)
		n += outage_is_open(p->outages[i]);
	return n;
}

/* ---- the timer --------------------------------------------------------- */

static void probe_if_due(struct procedure *p, struct ep_health *e, int64_t now)
{
	struct procedure_ep_view v;
	if (!procedure_ep_view(p, e->name, &v) || v.busy)
		return;
	if (e->h.last_check_at && now - e->h.last_check_at < p->cfg->probe_interval_ms)
		return;
	if (p->env.probe(p->env.ctx, e->name))
		e->h.last_check_at = now; /* the result will set it again */
}

static void swap_str(char **a, char **b)
{
	char *t = *a;
	*a = *b;
	*b = t;
}

/* The store has the advanced copy: it becomes the procedure's outage.
 * What the loop changed meanwhile (deliveries counted, the last cause)
 * stays: the next save carries it. */
static void advance_done(struct procedure *p, struct pjob *pj)
{
	struct save_job *j = (struct save_job *)pj;
	struct outage *o = procedure_outage_by_id(p, j->o->id);
	if (j->r < 0) { /* o as it was: the next tick decides (and saves) again */
		log_err("event=outage-save-failed outage=%lld endpoint=%s error=\"%s\"",
			(long long)j->o->id, j->o->endpoint, j->error);
		return;
	}
	if (!o)
		return; /* a takeover read the store again meanwhile */
	struct outage *saved = j->o;
	saved->delivered_late = o->delivered_late;
	swap_str(&saved->cause_fault, &o->cause_fault);
	swap_str(&saved->cause_error, &o->cause_error);
	struct outage old = *o;
	*o = *saved;
	*saved = old; /* freed with the job */
	p->status_dirty = true;
	if (o->state != j->before)
		log_notice("event=outage-%s outage=%lld endpoint=%s", outage_state_name(o->state),
			   (long long)o->id, o->endpoint);
	if (j->a.send)
		procedure_outage_notice(p, o, j->a.kind, j->a.ended_overnight, j->now);
}

/* Decided on a copy from what the procedure holds; saved on the write
 * lane; made the procedure's (and announced) only once the store has it. */
static void advance(struct procedure *p, struct outage *o, int64_t now)
{
	if (procedure_is_held(p, o->endpoint))
		return; /* no notices while held; it goes on from where it is on release */
	if (procedure_busy(p, o->id, 0, NULL, false))
		return; /* a change to it is being saved: the next tick */
	struct procedure_ep_view v;
	bool configured = procedure_ep_view(p, o->endpoint, &v);
	const struct health *h = configured ? procedure_health_of(p, o->endpoint) : NULL;
	struct outage_view ov = { now, h && h->state == HEALTH_UP, v.queued == 0 };
	struct outage *copy = outage_dup(o);
	struct outage_action a = outage_advance(copy, &ov, &p->rules);
	if (!a.changed) {
		outage_free(copy);
		return;
	}
	struct save_job *j = save_job_new(advance_done, now);
	j->o = copy;
	j->a = a;
	j->before = o->state;
	j->j.outage_id = o->id;
	procedure_job_run(p, STORE_LANE_WRITE, &j->j);
}

/* The store has the window's step: it becomes the procedure's, and what
 * it makes due follows (the planned notice, the acute outage). */
static void maint_done(struct procedure *p, struct pjob *pj)
{
	struct save_job *j = (struct save_job *)pj;
	struct maint *m = procedure_maint_by_id(p, j->m->id, NULL);
	if (j->r < 0) { /* m as it was: the next tick takes the same step again */
		if (!p->maint_save_failing)
			log_err("event=maintenance-save-failed maintenance=%lld endpoint=%s "
				"error=\"%s\"",
				(long long)j->m->id, j->m->endpoint, j->error);
		p->maint_save_failing = true;
		return;
	}
	if (p->maint_save_failing)
		log_notice("event=maintenance-save-recovered maintenance=%lld endpoint=%s",
			   (long long)j->m->id, j->m->endpoint);
	p->maint_save_failing = false;
	if (!m)
		return; /* a takeover read the store again meanwhile */
	struct maint old = *m;
	*m = *j->m;
	*j->m = old; /* freed with the job */
	p->status_dirty = true;
	if (j->step.announce)
		procedure_planned_notice(p, m, j->now);
	if (j->step.ended)
		log_notice("event=maintenance-ended maintenance=%lld endpoint=%s",
			   (long long)m->id, m->endpoint);
	const struct health *h = procedure_health_of(p, m->endpoint);
	/* still down, as when the step was decided, and nothing opened since */
	if (j->step.open_acute && h && h->state != HEALTH_UP &&
	    !procedure_find_outage(p, m->endpoint))
		open_outage(p, m->endpoint, h, j->step.acute_start, m->id, j->now);
}

static void maintenance_tick(struct procedure *p, int64_t now)
{
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		if (m->ended_at || procedure_busy(p, 0, m->id, NULL, false))
			continue; /* being saved or removed: left alone */
		const struct health *h = procedure_health_of(p, m->endpoint);
		bool down = h && h->state != HEALTH_UP;
		struct maint *copy = maint_dup(m);
		struct maint_step s = maint_advance(copy, now, p->rules.threshold_ms, p->tr, down,
						    procedure_find_outage(p, m->endpoint) != NULL);
		if (!s.changed) {
			maint_free(copy);
			continue;
		}
		struct save_job *j = save_job_new(maint_done, now);
		j->m = copy;
		j->step = s;
		j->j.maint_id = m->id;
		procedure_job_run(p, STORE_LANE_WRITE, &j->j);
	}
	/* windows whose end the store has: gone (after the loop above, whose
	 * saves may complete inside it) */
	size_t j = 0;
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		if (m->ended_at && !procedure_busy(p, 0, m->id, NULL, false))
			maint_free(m);
		else
			p->maint[j++] = m;
	}
	p->nmaint = j;
}

/* True unless another daemon runs the procedure now. */
bool procedure_acting(struct procedure *p)
{
	return !p->env.may_act || p->env.may_act(p->env.ctx);
}

/* An endpoint down without an outage: its outage could not be saved when
 * it went down (the store failed then). Opened now, as it would have been. */
static void open_missed(struct procedure *p, struct ep_health *e, int64_t now)
{
	if (!e->open_missed || e->h.state != HEALTH_DOWN || procedure_find_outage(p, e->name) ||
	    e->held || procedure_in_maintenance(p, e->name, now)) {
		e->open_missed &= e->h.state == HEALTH_DOWN;
		return;
	}
	open_outage(p, e->name, &e->h, e->h.first_failure_at ? e->h.first_failure_at : now, 0,
		    now);
}

void procedure_tick(struct procedure *p)
{
	if (!procedure_acting(p))
		return; /* another node holds the procedure's lease */
	if (p->stale) { /* not on a copy the store may have moved past */
		if (!p->resyncing) /* the last read failed: again */
			procedure_resync(p);
		return;
	}
	int64_t now = procedure_now(p);
	maintenance_tick(p, now);
	for (size_t i = 0; i < p->neps; i++) {
		probe_if_due(p, p->eps[i], now);
		open_missed(p, p->eps[i], now);
	}
	for (size_t i = 0; i < p->noutages; i++)
		advance(p, p->outages[i], now);
	drop_closed_outages(p);
	procedure_notices_tick(p, now);
	procedure_status_tick(p, now);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	procedure_tick(arg);
}

/* ---- life cycle -------------------------------------------------------- */

/* The config's time rules (this sets the process time zone). */
static struct timerules *make_timerules(const struct config *cfg, char *err, size_t errlen)
{
	return timerules_new(cfg->send_window, cfg->support_hours, cfg->closed_days, cfg->timezone,
			     err, errlen);
}

static void apply_rules(struct procedure *p, struct timerules *tr, struct notice_templates *tpl)
{
	timerules_free(p->tr);
	notice_templates_free(p->tpl);
	p->tr = tr;
	p->tpl = tpl;
	p->rules = (struct outage_rules){ p->cfg->outage_threshold_ms, p->cfg->update_interval_ms,
					  tr };
	p->status_dirty = true;
}

static void outages_clear(struct procedure *p)
{
	for (size_t i = 0; i < p->noutages; i++)
		outage_free(p->outages[i]);
	free(p->outages);
	p->outages = NULL;
	p->noutages = 0;
	for (size_t i = 0; i < p->nmaint; i++)
		maint_free(p->maint[i]);
	free(p->maint);
	p->maint = NULL;
	p->nmaint = 0;
}

void procedure_state_apply(struct procedure *p, struct procedure_state *st)
{
	outages_clear(p);
	p->outages = TAKE_PTR(st->outages);
	p->noutages = st->noutages;
	p->maint = TAKE_PTR(st->maint);
	p->nmaint = st->nmaint;
	procedure_notices_replace(p, st->notices, st->nnotices);
	free(st->notices);
	*st = (struct procedure_state){ 0 };
	for (size_t i = 0; i < p->neps; i++) /* health from the outages the store has */
		procedure_endpoint_added(p, p->eps[i]->name);
	p->stale = false;
	p->status_dirty = true;
}

struct procedure *procedure_new(const struct procedure_env *env, const struct config *cfg,
				char *err, size_t errlen)
{
	struct procedure *p = xcalloc(1, sizeof(*p));
	p->env = *env;
	if (!p->env.now)
		p->env.now = system_now;
	p->cfg = cfg;
	struct notice_templates *tpl = notice_templates_load(cfg->language, cfg->template_dir, err,
							     errlen);
	struct timerules *tr = tpl ? make_timerules(cfg, err, errlen) : NULL;
	if (!tr) {
		notice_templates_free(tpl);
		free(p);
		return NULL;
	}
	apply_rules(p, tr, tpl);
	/* start-up, before the loop runs: nothing to act on until it is read */
	struct procedure_state st = { 0 };
	if (procedure_state_read(p->env.store, &st) < 0) {
		snprintf(err, errlen, "store: %s", store_last_error(p->env.store));
		procedure_state_free(&st);
		procedure_free(p);
		return NULL;
	}
	procedure_state_apply(p, &st);
	return p;
}

void procedure_start(struct procedure *p)
{
	p->tick_ev = event_new(p->env.base, -1, EV_PERSIST, on_tick, p);
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	event_add(p->tick_ev, &tv);
}

int procedure_reload(struct procedure *p, const struct config *cfg, struct notice_templates *tpl,
		     char *err, size_t errlen)
{
	p->cfg = cfg;
	struct timerules *tr = make_timerules(cfg, err, errlen);
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
	procedure_jobs_detach(p);
	free((char *)p->fence.lease);
	for (size_t i = 0; i < p->neps; i++) {
		free(p->eps[i]->name);
		free(p->eps[i]);
	}
	free(p->eps);
	outages_clear(p);
	procedure_notices_free(p);
	free(p->changes); /* the changes themselves are their writers' */
	timerules_free(p->tr);
	notice_templates_free(p->tpl);
	free(p);
}

/*
 * procedure_status.c - the intranet status page: every configured
 * endpoint's health, the open outages and the planned windows in force,
 * each with what waits for it, rewritten when the procedure changes and
 * every STATUS_REFRESH_MS.
 *
 * The queues behind the cards are read in one job on the store's read lane
 * (procedure_jobs.c); the page is written on the loop when that read is
 * back, from what the procedure holds then. One read is out at a time: a
 * change meanwhile makes the page due again after it.
 */
#include "outage/procedure_int.h"

#include "base/log.h"
#include "codecs/base/mem.h"
#include "notice/statuspage.h"

#include <string.h>

#define STATUS_REFRESH_MS (30 * 1000)

/* The messages waiting for one endpoint, by type (the store's summary is
 * by type and sender, ordered by type). */
struct queue_types {
	struct status_type *v;
	size_t n;
	int64_t queued, oldest;
};

static int add_type(const struct store_summary *s, void *arg)
{
	struct queue_types *q = arg;
	const char *type = s->type ? s->type : "";
	if (q->n == 0 || strcmp(q->v[q->n - 1].type, type) != 0) {
		q->v = xrealloc(q->v, (q->n + 1) * sizeof(*q->v));
		q->v[q->n++] = (struct status_type){ xstrdup(type), 0 };
	}
	q->v[q->n - 1].count += s->count;
	q->queued += s->count;
	if (!q->oldest || (s->oldest_received_at && s->oldest_received_at < q->oldest))
		q->oldest = s->oldest_received_at;
	return 0;
}

static void queue_types_free(struct queue_types *q)
{
	for (size_t i = 0; i < q->n; i++)
		free((char *)q->v[i].type);
	free(q->v);
}

/* The status page's read (on the read lane): the queue by type of each
 * endpoint with an outage or a window in force. A failed read is logged
 * and shows as nothing waiting (the page is rewritten again in
 * STATUS_REFRESH_MS). */
struct status_job {
	struct pjob j;
	char **eps;
	struct queue_types *q;
	size_t n;
	int64_t now;
};

static void status_work(struct store *view, struct pjob *pj)
{
	struct status_job *j = (struct status_job *)pj;
	for (size_t i = 0; i < j->n; i++) {
		if (store_queue_summary(view, j->eps[i], add_type, &j->q[i]) >= 0)
			continue;
		log_warn("event=queue-summary-failed endpoint=%s error=\"%s\"", j->eps[i],
			 store_last_error(view));
		queue_types_free(&j->q[i]);
		j->q[i] = (struct queue_types){ 0 };
	}
}

static void status_free(struct pjob *pj)
{
	struct status_job *j = (struct status_job *)pj;
	for (size_t i = 0; i < j->n; i++) {
		free(j->eps[i]);
		queue_types_free(&j->q[i]);
	}
	free(j->eps);
	free(j->q);
	free(j);
}

static const struct queue_types no_queue = { 0 };

/* What the read found for endpoint (nothing when it was not read). */
static const struct queue_types *queue_of(const struct status_job *j, const char *endpoint)
{
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->eps[i], endpoint) == 0)
			return &j->q[i];
	return &no_queue;
}

static void status_want(struct status_job *j, const char *endpoint)
{
	if (queue_of(j, endpoint) != &no_queue)
		return;
	j->eps = xrealloc(j->eps, (j->n + 1) * sizeof(*j->eps));
	j->q = xrealloc(j->q, (j->n + 1) * sizeof(*j->q));
	j->eps[j->n] = xstrdup(endpoint);
	j->q[j->n++] = (struct queue_types){ 0 };
}

/* The configured endpoints, in config order; returns how many were filled. */
static size_t fill_endpoints(struct procedure *p, struct status_endpoint *v, int64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < p->cfg->nendpoints; i++) {
		const struct endpoint_conf *conf = &p->cfg->endpoints[i];
		const struct health *h = procedure_health_of(p, conf->name);
		if (!h)
			continue; /* not created (yet): nothing to show */
		struct procedure_ep_view view;
		(void)procedure_ep_view(p, conf->name, &view); /* zero when it has no queue */
		v[n++] = (struct status_endpoint){
			conf->name, procedure_organisation_of(p->cfg, conf->name), endpoint_kind_name(conf->kind),
			procedure_health_name(p, conf->name, h, now), h->since, view.queued,
			view.oldest_received_at,
			h->fault == FAULT_NONE ? "" : fault_name(h->fault),
		};
	}
	return n;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* The outages' cards, with the queues j read. */
static void fill_outages(struct procedure *p, struct status_outage *v,
			 const struct status_job *j)
{
	for (size_t i = 0; i < p->noutages; i++) {
		struct outage *o = p->outages[i];
		const struct endpoint_conf *conf = config_endpoint(p->cfg, o->endpoint);
		const struct queue_types *q = queue_of(j, o->endpoint);
		const char *contact = o->contact_override ? o->contact_override
				      : conf ? or_empty(conf->contact) : "";
		const char *fallback = o->fallback_override ? o->fallback_override
				       : conf ? or_empty(conf->fallback_contact) : "";
		v[i] = (struct status_outage){
			.id = o->id, .endpoint = o->endpoint,
			.organisation = procedure_organisation_of(p->cfg, o->endpoint),
			.state = outage_state_name(o->state), .started_at = o->started_at,
			.ended_at = o->ended_at, .expected_end = o->expected_end,
			.next_status_at = outage_next_status_at(o, &p->rules),
			.cause_fault = or_empty(o->cause_fault), .cause = or_empty(o->cause_override),
			.contact = contact, .fallback_contact = fallback,
			.fallback_note = conf ? or_empty(conf->fallback_note) : "",
			.queued = q->queued, .oldest_received_at = q->oldest,
			.types = q->v, .ntypes = q->n,
		};
	}
}

/* The planned windows' cards, with the queues j read of those in force. */
static void fill_windows(struct procedure *p, struct status_maintenance *v,
			 const struct status_job *j, int64_t now)
{
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		const struct endpoint_conf *conf = config_endpoint(p->cfg, m->endpoint);
		bool active = m->from <= now && now < m->to;
		const struct queue_types *q = active ? queue_of(j, m->endpoint) : &no_queue;
		v[i] = (struct status_maintenance){
			.id = m->id, .endpoint = m->endpoint,
			.organisation = procedure_organisation_of(p->cfg, m->endpoint), .from = m->from,
			.to = m->to, .reason = or_empty(m->reason),
			.contact = m->contact ? m->contact : conf ? or_empty(conf->contact) : "",
			.fallback_contact = conf ? or_empty(conf->fallback_contact) : "",
			.fallback_note = conf ? or_empty(conf->fallback_note) : "",
			.queued = q->queued, .types = q->v, .ntypes = q->n,
		};
	}
}

/* Writes the page now with what the procedure holds and the queues j read. */
static void status_done(struct procedure *p, struct pjob *pj)
{
	struct status_job *j = (struct status_job *)pj;
	const struct config *cfg = p->cfg;
	int64_t now = j->now;
	p->status_reading = false;
	size_t no = p->noutages, nm = p->nmaint;
	struct status_endpoint *eps = xcalloc(cfg->nendpoints + 1, sizeof(*eps));
	struct status_outage *outs = xcalloc(no + 1, sizeof(*outs));
	struct status_maintenance *ms = xcalloc(nm + 1, sizeof(*ms));
	size_t ne = fill_endpoints(p, eps, now);
	fill_outages(p, outs, j);
	fill_windows(p, ms, j, now);
	struct status_page page = { cfg->language, now, eps, ne, outs, no, ms, nm,
				    cfg->support_phone };
	char err[256];
	int r = statuspage_write(cfg->status_dir, &page, err, sizeof(err));
	if (r < 0 && !p->status_error_logged)
		log_err("event=status-page-failed dir=%s error=\"%s\"", cfg->status_dir, err);
	p->status_error_logged = r < 0;
	free(eps);
	free(outs);
	free(ms);
}

void procedure_status_tick(struct procedure *p, int64_t now)
{
	if (p->status_reading)
		return; /* the last read is still out: the page follows it */
	if (!p->status_dirty && now - p->status_written_at < STATUS_REFRESH_MS)
		return;
	struct status_job *j = xcalloc(1, sizeof(*j));
	j->j = (struct pjob){ .work = status_work, .done = status_done, .free = status_free };
	j->now = now;
	for (size_t i = 0; i < p->noutages; i++)
		status_want(j, p->outages[i]->endpoint);
	for (size_t i = 0; i < p->nmaint; i++)
		if (p->maint[i]->from <= now && now < p->maint[i]->to)
			status_want(j, p->maint[i]->endpoint);
	/* a change from now on makes the page due again */
	p->status_dirty = false;
	p->status_written_at = now;
	p->status_reading = true;
	procedure_job_run(p, STORE_LANE_READ, &j->j);
}

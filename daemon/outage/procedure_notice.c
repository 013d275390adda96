/*
 * procedure_notice.c - composing, addressing and sending notices, and the
 * status page.
 *
 * A notice is composed from facts the broker holds (the endpoint's config,
 * the outage, the queue grouped by type and sender), addressed by the time
 * rules and the affected area, saved with the channels still to carry it,
 * then sent on a worker thread. Every attempt on every channel is recorded.
 * A failed channel is retried (retry_initial, doubling, capped at 30 min,
 * at most 10 rounds); when e-mail has failed fallback_after times the
 * fallback command carries the notice as well.
 *
 * Addressing: EDI support inside support hours, else the on-call duty; the
 * failed endpoint's own mailbox; and for every endpoint that exchanges
 * messages with it, its organisation kind's list and its own mailbox. When
 * no traffic is known yet, the other kind's list stands in for partners.
 */
#include "outage/procedure_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "notice/notify.h"
#include "notice/statuspage.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define RETRY_CAP_MS (30 * 60 * 1000)
#define MAX_ROUNDS 10
#define STATUS_REFRESH_MS (30 * 1000)

/* ---- recipients -------------------------------------------------------- */

struct addrs {
	char **v;
	size_t n;
};

static void addrs_add(struct addrs *a, char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < a->n && !seen; j++)
			seen = strcasecmp(a->v[j], list[i]) == 0;
		if (seen)
			continue;
		a->v = xrealloc(a->v, (a->n + 1) * sizeof(char *));
		a->v[a->n++] = list[i];
	}
}

static void add_kind_list(struct addrs *a, const struct config *cfg, enum endpoint_kind kind)
{
	if (kind == ENDPOINT_HOSPITAL)
		addrs_add(a, cfg->hospital_recipients, cfg->nhospital_recipients);
	else if (kind == ENDPOINT_MUNICIPALITY)
		addrs_add(a, cfg->municipality_recipients, cfg->nmunicipality_recipients);
}

struct partner_ctx {
	const struct config *cfg;
	struct addrs *a;
	int found;
};

static int add_partner(const char *name, void *arg)
{
	struct partner_ctx *c = arg;
	const struct endpoint_conf *ep = config_endpoint(c->cfg, name);
	if (!ep)
		return 0;
	add_kind_list(c->a, c->cfg, ep->kind);
	addrs_add(c->a, ep->recipients, ep->nrecipients);
	c->found++;
	return 0;
}

/* Who receives a notice about endpoint sent at now; *audience is set. */
static char *recipients(struct procedure *p, const char *endpoint, int64_t now,
			const char **audience)
{
	const struct config *cfg = p->b->cfg;
	struct addrs a = { 0 };
	bool support = timerules_audience(p->tr, now) == AUDIENCE_SUPPORT;
	*audience = support ? "support" : "oncall";
	if (support)
		addrs_add(&a, cfg->support_recipients, cfg->nsupport_recipients);
	else
		addrs_add(&a, cfg->oncall_recipients, cfg->noncall_recipients);
	const struct endpoint_conf *ep = config_endpoint(cfg, endpoint);
	if (ep) {
		addrs_add(&a, ep->recipients, ep->nrecipients);
		struct partner_ctx pc = { cfg, &a, 0 };
		store_ops(p->b->store)->partners(store_backend(p->b->store), endpoint, add_partner, &pc);
		if (pc.found == 0 && ep->kind != ENDPOINT_HOSPITAL)
			add_kind_list(&a, cfg, ENDPOINT_HOSPITAL);
		if (pc.found == 0 && ep->kind != ENDPOINT_MUNICIPALITY)
			add_kind_list(&a, cfg, ENDPOINT_MUNICIPALITY);
	}
	size_t len = 1;
	for (size_t i = 0; i < a.n; i++)
		len += strlen(a.v[i]) + 1;
	char *out = xcalloc(1, len);
	for (size_t i = 0; i < a.n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, a.v[i]);
	}
	free(a.v);
	return out;
}

/* ---- facts -------------------------------------------------------------- */

struct affected_ctx {
	struct procedure *p;
	struct notice_affected *v;
	size_t n;
	int64_t queued, oldest;
};

static const char *organisation_of(const struct config *cfg, const char *endpoint)
{
	const struct endpoint_conf *ep = config_endpoint(cfg, endpoint);
	if (ep)
		return ep->organisation ? ep->organisation : ep->name;
	return strcmp(endpoint, STORE_SOURCE_BROKER) == 0 ? "EDI-broker" : endpoint;
}

static int add_affected(const struct store_summary *s, void *arg)
{
	struct affected_ctx *c = arg;
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n++] = (struct notice_affected){ xstrdup(s->type), s->count,
						 xstrdup(organisation_of(c->p->b->cfg, s->source)) };
	c->queued += s->count;
	if (!c->oldest || (s->oldest_received_at && s->oldest_received_at < c->oldest))
		c->oldest = s->oldest_received_at;
	return 0;
}

static void affected_free(struct affected_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free((char *)c->v[i].type);
		free((char *)c->v[i].organisation);
	}
	free(c->v);
}

static void endpoint_facts(struct procedure *p, const char *endpoint, struct notice_facts *f)
{
	const struct endpoint_conf *ep = config_endpoint(p->b->cfg, endpoint);
	f->endpoint = endpoint;
	f->organisation = organisation_of(p->b->cfg, endpoint);
	f->endpoint_kind = ep ? endpoint_kind_name(ep->kind) : "other";
	f->contact = ep && ep->contact ? ep->contact : "";
}

/* ---- composing ---------------------------------------------------------- */

/* The channels still to carry a notice, as stored ("email,webhook"). */
static const char *pending_text(bool email, bool webhook)
{
	return email && webhook ? "email,webhook" : email ? "email" : webhook ? "webhook" : "";
}

static const char *channels(const struct config *cfg, const char *rcpts)
{
	return pending_text(!str_empty(cfg->smtp_url) && !str_empty(cfg->mail_from) && *rcpts,
			    !str_empty(cfg->webhook_url));
}

static void pnotice_free(struct pnotice *n)
{
	free(n->kind);
	free(n->audience);
	free(n->recipients);
	free(n->subject);
	free(n->body);
	free(n->payload);
	free(n->pending);
	free(n);
}

static int save_notice(struct procedure *p, struct pnotice *n)
{
	struct store_notice rec = {
		.id = n->id, .outage_id = n->outage_id, .maintenance_id = n->maintenance_id,
		.kind = n->kind, .audience = n->audience, .recipients = n->recipients,
		.subject = n->subject, .body = n->body, .payload = n->payload,
		.created_at = n->created_at, .pending = n->pending, .attempts = n->attempts,
		.next_attempt_at = n->next_attempt_at,
	};
	int r = store_ops(p->b->store)->notice_save(store_backend(p->b->store), &rec);
	if (r < 0)
		log_err("event=notice-save-failed error=\"%s\"", store_last_error(p->b->store));
	else
		n->id = rec.id;
	return r;
}

/* Renders, addresses, saves and queues a notice. */
static void issue(struct procedure *p, const struct notice_facts *f, int64_t outage_id,
		  int64_t maintenance_id)
{
	struct notice_text text = { 0 };
	if (notice_render(p->tpl, f, &text) < 0) {
		log_err("event=notice-render-failed endpoint=%s kind=%s", f->endpoint,
			notice_kind_name(f->kind));
		return;
	}
	struct pnotice *n = xcalloc(1, sizeof(*n));
	const char *audience;
	n->outage_id = outage_id;
	n->maintenance_id = maintenance_id;
	n->kind = xstrdup(notice_kind_name(f->kind));
	n->recipients = recipients(p, f->endpoint, f->now, &audience);
	n->audience = xstrdup(audience);
	n->subject = TAKE_PTR(text.subject);
	n->body = TAKE_PTR(text.body);
	n->payload = TAKE_PTR(text.payload);
	n->created_at = f->now;
	n->pending = xstrdup(channels(p->b->cfg, n->recipients));
	n->next_attempt_at = *n->pending ? f->now : 0;
	notice_text_free(&text);
	if (save_notice(p, n) < 0) {
		pnotice_free(n);
		return;
	}
	log_notice("event=notice notice=%lld kind=%s endpoint=%s outage=%lld audience=%s "
		   "recipients=%s channels=%s",
		   (long long)n->id, n->kind, f->endpoint, (long long)outage_id, n->audience,
		   n->recipients, *n->pending ? n->pending : "none");
	if (!*n->pending) {
		pnotice_free(n);
		return;
	}
	n->next = p->notices;
	p->notices = n;
	procedure_notices_tick(p, f->now);
}

void procedure_outage_notice(struct procedure *p, struct outage *o, enum notice_kind kind,
			     bool ended_overnight, int64_t now)
{
	struct notice_facts f = { .kind = kind, .outage_id = o->id, .now = now };
	endpoint_facts(p, o->endpoint, &f);
	struct affected_ctx ac = { p, NULL, 0, 0, 0 };
	store_ops(p->b->store)->queue_summary(store_backend(p->b->store), o->endpoint, add_affected,
					      &ac);
	f.started_at = o->started_at;
	f.ended_at = o->ended_at;
	f.next_status_at = outage_next_status_at(o, &p->rules);
	f.expected_end = o->expected_end;
	f.cause_fault = o->cause_fault ? o->cause_fault : "";
	f.cause_text = o->cause_override ? o->cause_override : o->cause_error ? o->cause_error : "";
	f.cause_by_operator = o->cause_override != NULL;
	if (o->contact_override)
		f.contact = o->contact_override;
	f.affected = ac.v;
	f.naffected = ac.n;
	f.queued = ac.queued;
	f.oldest_received_at = ac.oldest;
	f.delivered_late = o->delivered_late;
	f.ended_overnight = ended_overnight;
	issue(p, &f, o->id, 0);
	affected_free(&ac);
}

void procedure_planned_notice(struct procedure *p, struct maint *m, int64_t now)
{
	struct notice_facts f = { .kind = NOTICE_PLANNED, .now = now };
	endpoint_facts(p, m->endpoint, &f);
	f.started_at = m->from;
	f.ended_at = m->to;
	f.expected_end = m->to;
	f.reason = m->reason ? m->reason : "";
	f.cause_fault = "";
	f.cause_text = f.reason;
	f.cause_by_operator = true;
	if (m->contact)
		f.contact = m->contact;
	issue(p, &f, 0, m->id);
}

/* ---- sending -------------------------------------------------------------- */

struct send_job {
	struct procedure *p;
	struct pnotice *n;
	/* copies: the config may be reloaded while the job runs */
	char *smtp_url, *smtp_user, *smtp_password, *starttls, *mail_from, *webhook_url,
		*fallback;
	long timeout_ms;
	bool try_email, try_webhook, try_fallback;
	struct notify_result email, webhook, fallbackr;
	int64_t at;
};

static bool pending_has(const char *pending, const char *channel)
{
	size_t n = strlen(channel);
	for (const char *s = pending; (s = strstr(s, channel)); s += n)
		if ((s == pending || s[-1] == ',') && (s[n] == ',' || s[n] == '\0'))
			return true;
	return false;
}

static char **split_recipients(const char *list, size_t *n)
{
	char **v = NULL;
	*n = 0;
	_cleanup_free_ char *copy = xstrdup(list);
	for (char *save, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		v = xrealloc(v, (*n + 1) * sizeof(char *));
		v[(*n)++] = xstrdup(t);
	}
	return v;
}

static void send_work(void *arg)
{
	struct send_job *j = arg;
	struct notify_config cfg = {
		j->smtp_url, j->smtp_user, j->smtp_password, j->starttls, j->mail_from,
		j->webhook_url, j->fallback, j->timeout_ms,
	};
	size_t nr;
	char **rcpt = split_recipients(j->n->recipients, &nr);
	char mid[64];
	snprintf(mid, sizeof(mid), "notice-%lld-%d", (long long)j->n->id, j->n->attempts + 1);
	struct notify_message m = { j->n->subject, j->n->body, j->n->payload,
				    (const char *const *)rcpt, nr, j->n->created_at, mid };
	if (j->try_email)
		notify_email(&cfg, &m, &j->email);
	if (j->try_webhook)
		notify_webhook(&cfg, &m, &j->webhook);
	if (j->try_fallback && j->try_email && !j->email.ok)
		notify_fallback(&cfg, &m, &j->fallbackr);
	for (size_t i = 0; i < nr; i++)
		free(rcpt[i]);
	free(rcpt);
}

static void record(struct procedure *p, struct pnotice *n, const char *channel, const char *to,
		   const struct notify_result *r, int64_t at)
{
	struct store_send s = { n->id, channel, at, r->ok, to, r->ok ? "" : r->error };
	store_ops(p->b->store)->send_record(store_backend(p->b->store), &s);
	if (r->ok)
		log_info("event=notice-sent notice=%lld channel=%s to=%s", (long long)n->id,
			 channel, to);
	else
		log_warn("event=notice-send-failed notice=%lld channel=%s attempt=%d error=\"%s\"",
			 (long long)n->id, channel, n->attempts, r->error);
}

static void update_pending(struct pnotice *n, bool email_done, bool hook_done)
{
	bool email = pending_has(n->pending, "email") && !email_done;
	bool hook = pending_has(n->pending, "webhook") && !hook_done;
	free(n->pending);
	n->pending = xstrdup(pending_text(email, hook));
}

static void unlink_notice(struct procedure *p, struct pnotice *n)
{
	for (struct pnotice **pp = &p->notices; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			return;
		}
	}
}

static void send_done(void *arg)
{
	struct send_job *j = arg;
	struct procedure *p = j->p;
	struct pnotice *n = j->n;
	n->in_flight = false;
	n->attempts++;
	const struct config *cfg = p->b->cfg;
	if (j->try_email)
		record(p, n, "email", n->recipients, &j->email, j->at);
	if (j->try_webhook)
		record(p, n, "webhook", j->webhook_url, &j->webhook, j->at);
	if (j->try_fallback && j->try_email && !j->email.ok) {
		record(p, n, "fallback", j->fallback, &j->fallbackr, j->at);
		n->fallback_done = j->fallbackr.ok;
	}
	update_pending(n, j->try_email && j->email.ok, j->try_webhook && j->webhook.ok);
	if (*n->pending && n->attempts >= MAX_ROUNDS) {
		log_err("event=notice-abandoned notice=%lld pending=%s attempts=%d",
			(long long)n->id, n->pending, n->attempts);
		free(n->pending);
		n->pending = xstrdup("");
	}
	int64_t delay = cfg->notify_retry_ms << (n->attempts - 1 < 16 ? n->attempts - 1 : 16);
	n->next_attempt_at = *n->pending ? j->at + (delay < RETRY_CAP_MS ? delay : RETRY_CAP_MS) : 0;
	save_notice(p, n);
	if (!*n->pending) {
		unlink_notice(p, n);
		pnotice_free(n);
	}
	free(j->smtp_url);
	free(j->smtp_user);
	free(j->smtp_password);
	free(j->starttls);
	free(j->mail_from);
	free(j->webhook_url);
	free(j->fallback);
	free(j);
}

static void start_send(struct procedure *p, struct pnotice *n, int64_t now)
{
	const struct config *cfg = p->b->cfg;
	struct send_job *j = xcalloc(1, sizeof(*j));
	j->p = p;
	j->n = n;
	j->at = now;
	j->smtp_url = xstrdup_or_null(cfg->smtp_url);
	j->smtp_user = xstrdup_or_null(cfg->smtp_user);
	j->smtp_password = xstrdup_or_null(cfg->smtp_password);
	j->starttls = xstrdup_or_null(cfg->smtp_starttls);
	j->mail_from = xstrdup_or_null(cfg->mail_from);
	j->webhook_url = xstrdup_or_null(cfg->webhook_url);
	j->fallback = xstrdup_or_null(cfg->fallback_command);
	j->timeout_ms = (long)cfg->notify_timeout_ms;
	j->try_email = pending_has(n->pending, "email") && j->smtp_url;
	j->try_webhook = pending_has(n->pending, "webhook") && j->webhook_url;
	j->try_fallback = j->fallback && !n->fallback_done &&
			  n->attempts + 1 >= (int)cfg->fallback_after;
	n->in_flight = true;
	workq_submit(p->b->notifier, send_work, send_done, j);
}

void procedure_notices_tick(struct procedure *p, int64_t now)
{
	for (struct pnotice *n = p->notices; n; n = n->next)
		if (!n->in_flight && n->next_attempt_at && n->next_attempt_at <= now)
			start_send(p, n, now);
}

static int load_notice(const struct store_notice *rec, void *arg)
{
	struct procedure *p = arg;
	struct pnotice *n = xcalloc(1, sizeof(*n));
	n->id = rec->id;
	n->outage_id = rec->outage_id;
	n->maintenance_id = rec->maintenance_id;
	n->kind = xstrdup(rec->kind ? rec->kind : "");
	n->audience = xstrdup(rec->audience ? rec->audience : "");
	n->recipients = xstrdup(rec->recipients ? rec->recipients : "");
	n->subject = xstrdup(rec->subject ? rec->subject : "");
	n->body = xstrdup(rec->body ? rec->body : "");
	n->payload = xstrdup(rec->payload ? rec->payload : "{}");
	n->created_at = rec->created_at;
	n->pending = xstrdup(rec->pending ? rec->pending : "");
	n->attempts = rec->attempts;
	n->next_attempt_at = rec->next_attempt_at ? rec->next_attempt_at : 1;
	n->next = p->notices;
	p->notices = n;
	return 0;
}

int procedure_load_notices(struct procedure *p)
{
	return store_ops(p->b->store)->notice_pending(store_backend(p->b->store), load_notice, p);
}

void procedure_notices_free(struct procedure *p)
{
	/* Notices in flight belong to their job until it completes (the
	 * worker pool drains before the procedure is freed). */
	while (p->notices) {
		struct pnotice *n = p->notices;
		p->notices = n->next;
		pnotice_free(n);
	}
}

/* ---- status page ----------------------------------------------------------- */

static void fill_endpoints(struct procedure *p, struct status_endpoint *v)
{
	for (size_t i = 0; i < p->b->neps; i++) {
		struct endpoint *ep = p->b->eps[i];
		struct deliver_info di;
		deliver_get_info(ep->dep, &di);
		v[i] = (struct status_endpoint){
			ep->name, organisation_of(p->b->cfg, ep->name),
			endpoint_kind_name(ep->conf->kind), procedure_health_name(p, ep),
			ep->health.since, di.queued, di.oldest_received_at, ep->health.error,
		};
	}
}

static void fill_outages(struct procedure *p, struct status_outage *v)
{
	for (size_t i = 0; i < p->noutages; i++) {
		struct outage *o = p->outages[i];
		struct endpoint *ep = broker_endpoint(p->b, o->endpoint);
		const struct endpoint_conf *conf = config_endpoint(p->b->cfg, o->endpoint);
		struct deliver_info di = { 0 };
		if (ep)
			deliver_get_info(ep->dep, &di);
		const char *cause = o->cause_override ? o->cause_override
				    : o->cause_fault ? o->cause_fault : "";
		const char *contact = o->contact_override ? o->contact_override
				      : conf && conf->contact ? conf->contact : "";
		v[i] = (struct status_outage){
			o->id, o->endpoint, organisation_of(p->b->cfg, o->endpoint),
			outage_state_name(o->state), o->started_at, o->ended_at, o->expected_end,
			outage_next_status_at(o, &p->rules), cause, contact, di.queued,
		};
	}
}

void procedure_status_tick(struct procedure *p, int64_t now)
{
	if (!p->status_dirty && now - p->status_written_at < STATUS_REFRESH_MS)
		return;
	size_t ne = p->b->neps, no = p->noutages, nm = p->nmaint;
	struct status_endpoint *eps = xcalloc(ne, sizeof(*eps));
	struct status_outage *outs = xcalloc(no, sizeof(*outs));
	struct status_maintenance *ms = xcalloc(nm, sizeof(*ms));
	fill_endpoints(p, eps);
	fill_outages(p, outs);
	for (size_t i = 0; i < nm; i++) {
		struct maint *m = p->maint[i];
		ms[i] = (struct status_maintenance){ m->id, m->endpoint,
						     organisation_of(p->b->cfg, m->endpoint), m->from,
						     m->to, m->reason ? m->reason : "",
						     m->contact ? m->contact : "" };
	}
	struct status_page page = { p->b->cfg->language, now, eps, ne, outs, no, ms, nm };
	char err[256];
	int r = statuspage_write(p->b->cfg->status_dir, &page, err, sizeof(err));
	if (r < 0 && !p->status_error_logged)
		log_err("event=status-page-failed dir=%s error=\"%s\"", p->b->cfg->status_dir, err);
	p->status_error_logged = r < 0;
	p->status_dirty = false;
	p->status_written_at = now;
	free(eps);
	free(outs);
	free(ms);
}

/*
 * procedure_notice.c - composing, addressing and sending notices.
 *
 * A notice is composed from facts the broker holds (the endpoint's config,
 * the outage, the queue grouped by type and sender, the messages delivered
 * to it whose acknowledgement is overdue), addressed by the time
 * rules and the affected area, saved with the channels still to carry it,
 * then handed to the notifier (notifier.h), which carries it off the event
 * loop and reports per channel. Every attempt on every channel is recorded.
 * The store's part runs on its lanes (procedure_jobs.c): what a notice
 * says is read in one job on the read lane and composed on the loop when
 * it is back; the notice is saved on the write lane and sent only once
 * saved; a round's attempts are recorded on the write lane after it went,
 * and the notice starts no other round until they are. A crash between
 * sending and recording may send a round again (once); nothing else does.
 * A failed channel is retried (retry_initial, doubling, capped at 30 min,
 * at most 10 rounds); when e-mail has failed fallback_after times the
 * fallback command carries the notice as well, and once it has, e-mail
 * of that notice is not retried (people would get it twice) unless
 * [notify] email_after_fallback says so. Every round of a notice carries
 * the same Message-ID (notice id, store instance, broker id), so a mail
 * system can drop a duplicate and no two notices anywhere share one.
 *
 * A mail server that refuses the credentials (SMTP 535) is a configuration
 * error, and retrying it could lock the account: it is logged once with the
 * reply code (event=notice-auth-failed), the fallback command carries the
 * notice in the same round, and no notice tries e-mail again with the same
 * credentials (a fingerprint of URL, user and password, kept in memory)
 * until a reload changes them; the waiting notices' e-mail goes then. The
 * webhook goes on meanwhile. What is logged or stored of where a notice
 * went is redacted (base/redact.h): the webhook's URL without user-info or
 * query, the fallback command by name.
 *
 * Addressing: EDI support inside support hours, else the on-call duty; the
 * failed endpoint's own mailbox; and for every endpoint that exchanges
 * messages with it, its organisation kind's list and its own mailbox. When
 * no traffic is known yet, the other kind's list stands in for partners.
 */
#include "outage/procedure_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/redact.h"
#include "codecs/base/mem.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define RETRY_CAP_MS (30 * 60 * 1000)
#define MAX_ROUNDS 10

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

/* What a notice's compose job read from the store (on the read lane): the
 * partners, the queue by type and sender, the overdue acknowledgements.
 * A read that failed is logged when the notice is composed, and the
 * notice goes out without it (see there). */
struct summary_row {
	char *type, *source;
	int64_t count, oldest;
};

struct notice_reads {
	char **partners;
	size_t npartners;
	int partners_r;
	struct summary_row *rows;
	size_t nrows;
	int rows_r;
	int64_t acks, acks_oldest;
	int acks_r;
	char partners_err[160], rows_err[160], acks_err[160];
};

/* Who receives a notice about endpoint sent at now; *audience is set. */
static char *recipients(struct procedure *p, const char *endpoint, int64_t now,
			const struct notice_reads *rd, const char **audience)
{
	const struct config *cfg = p->cfg;
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
		int found = 0;
		/* When the partners cannot be read, none is known and both kinds'
		 * lists stand in below: the notice reaches more people, never
		 * fewer, so it is not held back for this. */
		if (rd->partners_r < 0)
			log_warn("event=partners-read-failed endpoint=%s error=\"%s\"", endpoint,
				 rd->partners_err);
		for (size_t i = 0; i < rd->npartners; i++) {
			const struct endpoint_conf *pe = config_endpoint(cfg, rd->partners[i]);
			if (!pe)
				continue;
			add_kind_list(&a, cfg, pe->kind);
			addrs_add(&a, pe->recipients, pe->nrecipients);
			found++;
		}
		if (found == 0 && ep->kind != ENDPOINT_HOSPITAL)
			add_kind_list(&a, cfg, ENDPOINT_HOSPITAL);
		if (found == 0 && ep->kind != ENDPOINT_MUNICIPALITY)
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

struct affected {
	struct notice_affected *v;
	size_t n;
	int64_t queued, oldest;
};

const char *procedure_organisation_of(const struct config *cfg, const char *endpoint)
{
	const struct endpoint_conf *ep = config_endpoint(cfg, endpoint);
	if (ep)
		return ep->organisation ? ep->organisation : ep->name;
	return strcmp(endpoint, STORE_SOURCE_BROKER) == 0 ? "EDI-broker" : endpoint;
}

/* The queue as read, by type and sending organisation (names as the
 * config has them now). */
static struct affected affected_of(struct procedure *p, const struct notice_reads *rd)
{
	struct affected c = { 0 };
	c.v = xcalloc(rd->nrows + 1, sizeof(*c.v));
	for (size_t i = 0; i < rd->nrows; i++) {
		const struct summary_row *s = &rd->rows[i];
		c.v[c.n++] = (struct notice_affected){ s->type, s->count,
						       procedure_organisation_of(p->cfg, s->source) };
		c.queued += s->count;
		if (!c.oldest || (s->oldest && s->oldest < c.oldest))
			c.oldest = s->oldest;
	}
	return c;
}

static void endpoint_facts(struct procedure *p, const char *endpoint, struct notice_facts *f)
{
	const struct endpoint_conf *ep = config_endpoint(p->cfg, endpoint);
	f->endpoint = endpoint;
	f->organisation = procedure_organisation_of(p->cfg, endpoint);
	f->endpoint_kind = ep ? endpoint_kind_name(ep->kind) : "other";
	f->contact = ep && ep->contact ? ep->contact : "";
	f->fallback_contact = ep ? ep->fallback_contact : NULL;
	f->fallback_note = ep ? ep->fallback_note : NULL;
	f->support_phone = p->cfg->support_phone;
	f->status_url = p->cfg->status_url;
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
	notice_record_free(n->rec);
	free(n);
}

/* A composed notice being saved (on the write lane). It is the
 * procedure's, and goes out, only once the store has it: two holders of
 * the procedure cannot both save one (a notice row is unique), and a
 * notice is never sent unsaved. */
struct save_notice_job {
	struct pjob j;
	struct pnotice *n;        /* the job's until saved */
	char *endpoint;
	int r;
	char error[256];
};

static void save_notice_work(struct store *view, struct pjob *pj)
{
	struct save_notice_job *j = (struct save_notice_job *)pj;
	j->r = store_notice_save(view, j->n->rec);
	if (j->r < 0)
		snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
}

/* True when p holds the notice id already. */
static bool held_already(const struct procedure *p, int64_t id)
{
	for (const struct pnotice *k = p->notices; k; k = k->next)
		if (k->rec->id == id)
			return true;
	return false;
}

static void save_notice_done(struct procedure *p, struct pjob *pj)
{
	struct save_notice_job *j = (struct save_notice_job *)pj;
	if (j->r < 0) {
		log_err("event=notice-save-failed error=\"%s\"", j->error);
		return;
	}
	struct pnotice *n = TAKE_PTR(j->n);
	struct notice_record *rec = n->rec;
	log_notice("event=notice notice=%lld kind=%s endpoint=%s outage=%lld audience=%s "
		   "recipients=%s channels=%s",
		   (long long)rec->id, rec->kind, j->endpoint, (long long)rec->outage_id,
		   rec->audience, rec->recipients, *rec->pending ? rec->pending : "none");
	if (!*rec->pending || held_already(p, rec->id)) {
		/* nothing to carry, or a takeover's read brought it meanwhile */
		pnotice_free(n);
		return;
	}
	n->next = p->notices;
	p->notices = n;
	if (!p->stale) /* a takeover's read is out: its first tick sends */
		procedure_notices_tick(p, procedure_now(p));
}

static void save_notice_free(struct pjob *pj)
{
	struct save_notice_job *j = (struct save_notice_job *)pj;
	if (j->n)
		pnotice_free(j->n);
	free(j->endpoint);
	free(j);
}

/* Renders, addresses and saves a notice; it is queued once saved. */
static void issue(struct procedure *p, const struct notice_facts *f,
		  const struct notice_reads *rd, int64_t outage_id, int64_t maintenance_id)
{
	struct notice_text text = { 0 };
	if (notice_render(p->tpl, f, &text) < 0) {
		log_err("event=notice-render-failed endpoint=%s kind=%s", f->endpoint,
			notice_kind_name(f->kind));
		return;
	}
	struct pnotice *n = xcalloc(1, sizeof(*n));
	struct notice_record *rec = n->rec = xcalloc(1, sizeof(*rec));
	const char *audience;
	rec->outage_id = outage_id;
	rec->maintenance_id = maintenance_id;
	rec->kind = xstrdup(notice_kind_name(f->kind));
	rec->recipients = recipients(p, f->endpoint, f->now, rd, &audience);
	rec->audience = xstrdup(audience);
	rec->subject = TAKE_PTR(text.subject);
	rec->body = TAKE_PTR(text.body);
	rec->payload = TAKE_PTR(text.payload);
	rec->created_at = f->now;
	rec->pending = xstrdup(channels(p->cfg, rec->recipients));
	rec->next_attempt_at = *rec->pending ? f->now : 0;
	notice_text_free(&text);
	struct save_notice_job *j = xcalloc(1, sizeof(*j));
	j->j = (struct pjob){ .outage_id = outage_id, .maint_id = maintenance_id,
			      .work = save_notice_work, .done = save_notice_done,
			      .free = save_notice_free };
	j->n = n;
	j->endpoint = xstrdup(f->endpoint);
	procedure_job_run(p, STORE_LANE_WRITE, &j->j);
}

/* A notice that fell due, its inputs being read (on the read lane). The
 * outage or window is a copy as it was when it fell due: the notice says
 * what was decided then. */
struct compose_job {
	struct pjob j;
	struct outage *o;         /* an outage's notice */
	struct maint *m;          /* a planned one */
	char *endpoint;
	enum notice_kind kind;
	bool ended_overnight;
	int64_t now, acks_before; /* delivered before acks_before: overdue */
	struct notice_reads rd;
};

static int add_partner(const char *name, void *arg)
{
	struct notice_reads *rd = arg;
	rd->partners = xrealloc(rd->partners, (rd->npartners + 1) * sizeof(char *));
	rd->partners[rd->npartners++] = xstrdup(name);
	return 0;
}

static int add_row(const struct store_summary *s, void *arg)
{
	struct notice_reads *rd = arg;
	rd->rows = xrealloc(rd->rows, (rd->nrows + 1) * sizeof(*rd->rows));
	rd->rows[rd->nrows++] = (struct summary_row){ xstrdup(s->type ? s->type : ""),
						      xstrdup(s->source ? s->source : ""),
						      s->count, s->oldest_received_at };
	return 0;
}

/* Messages delivered to the endpoint whose acknowledgement is overdue. */
static int add_overdue(const struct store_msg *m, void *arg)
{
	struct notice_reads *rd = arg;
	if (rd->acks++ == 0)
		rd->acks_oldest = m->delivered_at; /* the list is oldest delivery first */
	return 0;
}

#define OVERDUE_MAX 100000 /* counted per notice; beyond, "at least" this many */

static void compose_work(struct store *view, struct pjob *pj)
{
	struct compose_job *j = (struct compose_job *)pj;
	struct notice_reads *rd = &j->rd;
	if ((rd->partners_r = store_partners(view, j->endpoint, add_partner, rd)) < 0)
		snprintf(rd->partners_err, sizeof(rd->partners_err), "%s", store_last_error(view));
	if (!j->o)
		return; /* a planned notice says nothing of the queue */
	if ((rd->rows_r = store_queue_summary(view, j->endpoint, add_row, rd)) < 0)
		snprintf(rd->rows_err, sizeof(rd->rows_err), "%s", store_last_error(view));
	rd->acks_r = store_ack_list(view, ACK_AWAITING, j->endpoint, j->acks_before, OVERDUE_MAX,
				    add_overdue, rd);
	if (rd->acks_r < 0)
		snprintf(rd->acks_err, sizeof(rd->acks_err), "%s", store_last_error(view));
}

static void compose_free(struct pjob *pj)
{
	struct compose_job *j = (struct compose_job *)pj;
	struct notice_reads *rd = &j->rd;
	for (size_t i = 0; i < rd->npartners; i++)
		free(rd->partners[i]);
	free(rd->partners);
	for (size_t i = 0; i < rd->nrows; i++) {
		free(rd->rows[i].type);
		free(rd->rows[i].source);
	}
	free(rd->rows);
	outage_free(j->o);
	maint_free(j->m);
	free(j->endpoint);
	free(j);
}

static void compose_outage(struct procedure *p, struct compose_job *j)
{
	const struct outage *o = j->o;
	const struct notice_reads *rd = &j->rd;
	struct notice_facts f = { .kind = j->kind, .outage_id = o->id, .now = j->now };
	endpoint_facts(p, o->endpoint, &f);
	/* A notice that falls due goes out even when the queue cannot be
	 * read (logged): late news of an outage is worse than a short list. */
	if (rd->rows_r < 0)
		log_warn("event=queue-summary-failed endpoint=%s error=\"%s\"", o->endpoint,
			 rd->rows_err);
	struct affected ac = affected_of(p, rd);
	f.started_at = o->started_at;
	f.ended_at = o->ended_at;
	f.next_status_at = outage_next_status_at(o, &p->rules);
	f.expected_end = o->expected_end;
	f.cause_fault = o->cause_fault ? o->cause_fault : "";
	/* the error text (o->cause_error) is for the log and edibrokerctl only */
	f.cause_text = o->cause_override ? o->cause_override : "";
	f.cause_by_operator = o->cause_override != NULL;
	if (o->contact_override)
		f.contact = o->contact_override;
	if (o->fallback_override)
		f.fallback_contact = o->fallback_override;
	f.affected = ac.v;
	f.naffected = ac.n;
	f.queued = ac.queued;
	f.oldest_received_at = ac.oldest;
	/* Like the queue, a notice goes out when they cannot be read (logged). */
	if (rd->acks_r < 0)
		log_warn("event=acks-read-failed endpoint=%s error=\"%s\"", o->endpoint,
			 rd->acks_err);
	f.acks_overdue = rd->acks_r < 0 ? 0 : rd->acks;
	f.acks_overdue_since = rd->acks_r < 0 ? 0 : rd->acks_oldest;
	f.ack_timeout_ms = p->cfg->ack_timeout_ms;
	f.delivered_late = o->delivered_late;
	f.ended_overnight = j->ended_overnight;
	issue(p, &f, rd, o->id, 0);
	free(ac.v);
}

static void compose_planned(struct procedure *p, struct compose_job *j)
{
	const struct maint *m = j->m;
	struct notice_facts f = { .kind = NOTICE_PLANNED, .now = j->now };
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
	issue(p, &f, &j->rd, 0, m->id);
}

/* Composed on the loop, with the config as it is now. */
static void compose_done(struct procedure *p, struct pjob *pj)
{
	struct compose_job *j = (struct compose_job *)pj;
	if (j->o)
		compose_outage(p, j);
	else
		compose_planned(p, j);
}

static void compose(struct procedure *p, struct compose_job *j)
{
	j->j = (struct pjob){ .outage_id = j->o ? j->o->id : 0, .maint_id = j->m ? j->m->id : 0,
			      .work = compose_work, .done = compose_done, .free = compose_free };
	procedure_job_run(p, STORE_LANE_READ, &j->j);
}

void procedure_outage_notice(struct procedure *p, struct outage *o, enum notice_kind kind,
			     bool ended_overnight, int64_t now)
{
	struct compose_job *j = xcalloc(1, sizeof(*j));
	j->o = outage_dup(o);
	j->endpoint = xstrdup(o->endpoint);
	j->kind = kind;
	j->ended_overnight = ended_overnight;
	j->now = now;
	j->acks_before = now - p->cfg->ack_timeout_ms;
	compose(p, j);
}

void procedure_planned_notice(struct procedure *p, struct maint *m, int64_t now)
{
	struct compose_job *j = xcalloc(1, sizeof(*j));
	j->m = maint_dup(m);
	j->endpoint = xstrdup(m->endpoint);
	j->kind = NOTICE_PLANNED;
	j->now = now;
	compose(p, j);
}

/* ---- sending -------------------------------------------------------------- */

/* One send round of a notice, from start_send() to send_done(). */
struct send_round {
	struct procedure *p;
	struct pnotice *n;
	/* where the channels went, as the config said when the round started
	 * (it may be reloaded while the round runs), as they may be shown */
	char webhook_url[REDACT_MAX], fallback[REDACT_MAX], smtp_url[REDACT_MAX];
	uint64_t cred_fp; /* the e-mail credentials it used */
	bool try_email, try_webhook;
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

static void unlink_notice(struct procedure *p, struct pnotice *n)
{
	for (struct pnotice **pp = &p->notices; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			return;
		}
	}
}

/* What a send round leaves to be written (on the write lane), after it
 * went: each channel's attempt, then the notice as it stands. The notice
 * stays in flight until then, so no round of it starts before its last is
 * recorded. */
struct record_job {
	struct pjob j;
	struct pnotice *n;        /* the procedure's; only done touches it */
	struct notice_record *rec; /* the copy to save */
	struct store_send sends[3];
	size_t nsends;
	int r[4];
	char error[256];
};

static void record_work(struct store *view, struct pjob *pj)
{
	struct record_job *j = (struct record_job *)pj;
	for (size_t i = 0; i < j->nsends; i++)
		if ((j->r[i] = store_send_record(view, &j->sends[i])) < 0)
			snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
	if ((j->r[3] = store_notice_save(view, j->rec)) < 0)
		snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
}

static void record_done(struct procedure *p, struct pjob *pj)
{
	struct record_job *j = (struct record_job *)pj;
	struct pnotice *n = j->n;
	n->in_flight = false;
	for (size_t i = 0; i < j->nsends; i++)
		if (j->r[i] < 0)
			log_err("event=notice-send-record-failed notice=%lld channel=%s error=\"%s\"",
				(long long)n->rec->id, j->sends[i].channel, j->error);
	/* a failed save is logged; the notice goes on from memory, and after a
	 * restart the stored state at worst sends a round again */
	if (j->r[3] < 0)
		log_err("event=notice-save-failed error=\"%s\"", j->error);
	if (!*n->rec->pending) {
		unlink_notice(p, n);
		pnotice_free(n);
	}
}

static void record_free(struct pjob *pj)
{
	struct record_job *j = (struct record_job *)pj;
	for (size_t i = 0; i < j->nsends; i++) {
		free((char *)j->sends[i].recipients);
		free((char *)j->sends[i].error);
	}
	notice_record_free(j->rec);
	free(j);
}

/* Logs and counts one channel's result, and keeps it for the record job;
 * to is already fit to be shown. A refused login is logged by
 * email_refused() instead, once. */
static void record(struct record_job *x, struct pnotice *n, const char *channel, const char *to,
		   const struct notify_result *r, int64_t at)
{
	x->sends[x->nsends++] = (struct store_send){ n->rec->id, channel, at, r->ok, xstrdup(to),
						     xstrdup(r->ok ? "" : r->error) };
	metrics_add(r->ok ? METRIC_NOTICES_SENT : METRIC_NOTICES_FAILED, 1, METRIC_LABELS(channel));
	if (r->ok)
		log_info("event=notice-sent notice=%lld channel=%s to=%s", (long long)n->rec->id,
			 channel, to);
	else if (!r->denied)
		log_warn("event=notice-send-failed notice=%lld channel=%s attempt=%d error=\"%s\"",
			 (long long)n->rec->id, channel, n->rec->attempts, r->error);
}

/* ---- credentials the mail server refused ---------------------------------- */

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); ; p++) {
		h = (h ^ *p) * 0x100000001b3ULL;
		if (!*p)
			return h; /* the NUL too, so ("ab", "c") differs from ("a", "bc") */
	}
}

/* Which credentials e-mail uses: a new password, user or server is a new
 * chance. Only a hash is kept, not another copy of the password. */
static uint64_t credentials_fp(const struct config *cfg)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = fnv1a(h, cfg->smtp_url);
	h = fnv1a(h, cfg->smtp_user);
	return fnv1a(h, cfg->smtp_password);
}

/* True while the server has refused the credentials cfg holds now. When
 * a reload changed them, the refusal is forgotten (and said so). */
static bool email_blocked(struct procedure *p, const struct config *cfg)
{
	if (!p->email_denied)
		return false;
	if (p->email_denied_fp == credentials_fp(cfg))
		return true;
	p->email_denied = false;
	log_notice("event=notice-auth-changed channel=email state=e-mail-resumed");
	return false;
}

static void email_refused(struct procedure *p, const struct send_round *j,
			  const struct notify_result *r, bool fallback)
{
	if (p->email_denied && p->email_denied_fp == j->cred_fp)
		return; /* said already, by an earlier round */
	p->email_denied = true;
	p->email_denied_fp = j->cred_fp;
	log_err("event=notice-auth-failed channel=email code=%ld server=%s notice=%lld "
		"action=%s error=\"the mail server refused smtp_user and smtp_password; e-mail "
		"waits until a reload changes them\"",
		r->code, j->smtp_url, (long long)j->n->rec->id, fallback ? "fallback" : "held");
}

static void update_pending(struct notice_record *rec, bool email_done, bool hook_done)
{
	bool email = pending_has(rec->pending, "email") && !email_done;
	bool hook = pending_has(rec->pending, "webhook") && !hook_done;
	free(rec->pending);
	rec->pending = xstrdup(pending_text(email, hook));
}

static void send_done(void *arg, const struct notifier_report *rep)
{
	struct send_round *j = arg;
	struct procedure *p = j->p;
	struct pnotice *n = j->n;
	struct notice_record *rec = n->rec;
	struct record_job *x = xcalloc(1, sizeof(*x));
	rec->attempts++;
	bool email_ok = j->try_email && rep->email.result.ok;
	if (j->try_email)
		record(x, n, "email", rec->recipients, &rep->email.result, j->at);
	if (j->try_email && rep->email.result.denied)
		email_refused(p, j, &rep->email.result, rep->fallback.tried);
	if (j->try_webhook)
		record(x, n, "webhook", j->webhook_url, &rep->webhook.result, j->at);
	if (rep->fallback.tried) {
		record(x, n, "fallback", j->fallback, &rep->fallback.result, j->at);
		n->fallback_done = rep->fallback.result.ok;
	}
	/* The fallback reached people with this notice: a later e-mail of the
	 * same notice would reach them twice, unless the operator wants both. */
	bool carried = n->fallback_done && !p->cfg->email_after_fallback;
	if (carried && !email_ok && pending_has(rec->pending, "email"))
		log_info("event=notice-email-dropped notice=%lld reason=fallback-carried-it",
			 (long long)rec->id);
	update_pending(rec, email_ok || carried, j->try_webhook && rep->webhook.result.ok);
	if (*rec->pending && rec->attempts >= MAX_ROUNDS) {
		log_err("event=notice-abandoned notice=%lld pending=%s attempts=%d",
			(long long)rec->id, rec->pending, rec->attempts);
		free(rec->pending);
		rec->pending = xstrdup("");
	}
	int64_t delay = p->cfg->notify_retry_ms << (rec->attempts - 1 < 16 ? rec->attempts - 1 : 16);
	rec->next_attempt_at =
		*rec->pending ? j->at + (delay < RETRY_CAP_MS ? delay : RETRY_CAP_MS) : 0;
	/* the notice stays in flight until the round is recorded (record_done) */
	x->j = (struct pjob){ .work = record_work, .done = record_done, .free = record_free };
	x->n = n;
	x->rec = notice_record_dup(rec);
	free(j);
	procedure_job_run(p, STORE_LANE_WRITE, &x->j);
}

/* What a round of n does now: which channels, and when the fallback
 * runs. False when there is nothing to do while e-mail waits for new
 * credentials (the notice waits too, without using up its rounds). */
static bool plan_round(struct procedure *p, const struct pnotice *n, bool *email, bool *webhook,
		       enum notifier_fallback *fallback)
{
	const struct config *cfg = p->cfg;
	const struct notice_record *rec = n->rec;
	bool email_due = pending_has(rec->pending, "email") && cfg->smtp_url;
	bool blocked = email_due && email_blocked(p, cfg);
	*email = email_due && !blocked;
	*webhook = pending_has(rec->pending, "webhook") && cfg->webhook_url;
	*fallback = NOTIFIER_FALLBACK_NEVER;
	if (cfg->fallback_command && !n->fallback_done) {
		if (blocked)
			*fallback = NOTIFIER_FALLBACK_ALWAYS; /* e-mail cannot carry it */
		else if (*email && rec->attempts + 1 >= (int)cfg->fallback_after)
			*fallback = NOTIFIER_FALLBACK_FAILED;
		else if (*email)
			*fallback = NOTIFIER_FALLBACK_DENIED; /* at once, not after fallback_after */
	}
	return !blocked || *webhook || *fallback != NOTIFIER_FALLBACK_NEVER;
}

static void start_send(struct procedure *p, struct pnotice *n, int64_t now)
{
	const struct config *cfg = p->cfg;
	const struct notice_record *rec = n->rec;
	bool email, webhook;
	enum notifier_fallback fallback;
	if (!plan_round(p, n, &email, &webhook, &fallback))
		return;
	struct send_round *j = xcalloc(1, sizeof(*j));
	j->p = p;
	j->n = n;
	j->at = now;
	redact_url(cfg->webhook_url, j->webhook_url, sizeof(j->webhook_url));
	redact_command(cfg->fallback_command, j->fallback, sizeof(j->fallback));
	redact_url(cfg->smtp_url, j->smtp_url, sizeof(j->smtp_url));
	j->cred_fp = credentials_fp(cfg);
	j->try_email = email;
	j->try_webhook = webhook;
	struct notify_config nc = {
		.smtp_url = cfg->smtp_url, .smtp_user = cfg->smtp_user,
		.smtp_password = cfg->smtp_password, .smtp_starttls = cfg->smtp_starttls,
		.mail_from = cfg->mail_from, .webhook_url = cfg->webhook_url,
		.fallback_command = cfg->fallback_command, .timeout_ms = (long)cfg->notify_timeout_ms,
		.webhook_token = cfg->webhook_token, .smtp_ca_file = cfg->smtp_ca_file,
		.webhook_ca_file = cfg->webhook_ca_file,
	};
	size_t nr;
	char **rcpt = split_recipients(rec->recipients, &nr);
	/* The same for every round of this notice, so a mail system drops a
	 * duplicate; the store instance and the broker id make it unique across
	 * a recreated store and across brokers. */
	char mid[160];
	snprintf(mid, sizeof(mid), "notice-%lld-%s-%s", (long long)rec->id,
		 store_instance(p->env.store), cfg->broker_id ? cfg->broker_id : "edibroker");
	struct notify_message m = { rec->subject, rec->body, rec->payload,
				    (const char *const *)rcpt, nr, rec->created_at, mid };
	struct notifier_request req = { &nc, &m, j->try_email, j->try_webhook, fallback };
	n->in_flight = true;
	p->env.notifier->send(p->env.notifier, &req, send_done, j);
	for (size_t i = 0; i < nr; i++)
		free(rcpt[i]);
	free(rcpt);
}

void procedure_notices_tick(struct procedure *p, int64_t now)
{
	for (struct pnotice *n = p->notices; n; n = n->next)
		if (!n->in_flight && n->rec->next_attempt_at && n->rec->next_attempt_at <= now)
			start_send(p, n, now);
}

static void or_default(char **s, const char *value)
{
	if (!*s)
		*s = xstrdup(value);
}

/* A pending notice as stored becomes one to carry (rec taken). */
static struct pnotice *pending_notice(struct notice_record *rec)
{
	struct pnotice *n = xcalloc(1, sizeof(*n));
	n->rec = rec;
	or_default(&rec->kind, "");
	or_default(&rec->audience, "");
	or_default(&rec->recipients, "");
	or_default(&rec->subject, "");
	or_default(&rec->body, "");
	or_default(&rec->payload, "{}");
	or_default(&rec->pending, "");
	if (!rec->next_attempt_at)
		rec->next_attempt_at = 1; /* pending but never scheduled: at once */
	return n;
}

/* Notices being sent stay (their send round or its record points at
 * them); the others are as the store has them, skipping ids still held. */
void procedure_notices_replace(struct procedure *p, struct notice_record **recs, size_t nrecs)
{
	struct pnotice **at = &p->notices;
	while (*at) {
		struct pnotice *n = *at;
		if (n->in_flight) {
			at = &n->next;
			continue;
		}
		*at = n->next;
		pnotice_free(n);
	}
	struct pnotice *kept = p->notices;
	p->notices = NULL;
	for (size_t i = 0; i < nrecs; i++) {
		bool dup = false;
		for (struct pnotice *k = kept; k && !dup; k = k->next)
			dup = k->rec->id == recs[i]->id;
		if (dup) {
			notice_record_free(recs[i]);
			continue;
		}
		struct pnotice *n = pending_notice(recs[i]);
		n->next = p->notices;
		p->notices = n;
	}
	struct pnotice **tail = &p->notices;
	while (*tail)
		tail = &(*tail)->next;
	*tail = kept;
}

void procedure_notices_free(struct procedure *p)
{
	/* Notices in flight are referenced by their send round until it
	 * completes (the notifier completes every round before the procedure
	 * is freed). */
	while (p->notices) {
		struct pnotice *n = p->notices;
		p->notices = n->next;
		pnotice_free(n);
	}
}

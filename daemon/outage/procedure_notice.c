/*
 * procedure_notice.c - composing, addressing and sending notices, and the
 * status page.
 *
 * A notice is composed from facts the broker holds (the endpoint's config,
 * the outage, the queue grouped by type and sender, the messages delivered
 * to it whose acknowledgement is overdue), addressed by the time
 * rules and the affected area, saved with the channels still to carry it,
 * then handed to the notifier (notifier.h), which carries it off the event
 * loop and reports per channel. Every attempt on every channel is recorded.
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
#include "notice/statuspage.h"
#include "codecs/base/mem.h"
#include "metrics/metrics.h"

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
		struct partner_ctx pc = { cfg, &a, 0 };
		/* When the partners cannot be read, none is known and both kinds'
		 * lists stand in below: the notice reaches more people, never
		 * fewer, so it is not held back for this. */
		if (store_partners(p->env.store, endpoint, add_partner, &pc) < 0)
			log_warn("event=partners-read-failed endpoint=%s error=\"%s\"", endpoint,
				 store_last_error(p->env.store));
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
						 xstrdup(organisation_of(c->p->cfg, s->source)) };
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
	const struct endpoint_conf *ep = config_endpoint(p->cfg, endpoint);
	f->endpoint = endpoint;
	f->organisation = organisation_of(p->cfg, endpoint);
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

static int save_notice(struct procedure *p, struct pnotice *n)
{
	int r = store_notice_save(p->env.store, n->rec);
	if (r < 0)
		log_err("event=notice-save-failed error=\"%s\"", store_last_error(p->env.store));
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
	struct notice_record *rec = n->rec = xcalloc(1, sizeof(*rec));
	const char *audience;
	rec->outage_id = outage_id;
	rec->maintenance_id = maintenance_id;
	rec->kind = xstrdup(notice_kind_name(f->kind));
	rec->recipients = recipients(p, f->endpoint, f->now, &audience);
	rec->audience = xstrdup(audience);
	rec->subject = TAKE_PTR(text.subject);
	rec->body = TAKE_PTR(text.body);
	rec->payload = TAKE_PTR(text.payload);
	rec->created_at = f->now;
	rec->pending = xstrdup(channels(p->cfg, rec->recipients));
	rec->next_attempt_at = *rec->pending ? f->now : 0;
	notice_text_free(&text);
	if (save_notice(p, n) < 0) {
		pnotice_free(n);
		return;
	}
	log_notice("event=notice notice=%lld kind=%s endpoint=%s outage=%lld audience=%s "
		   "recipients=%s channels=%s",
		   (long long)rec->id, rec->kind, f->endpoint, (long long)outage_id, rec->audience,
		   rec->recipients, *rec->pending ? rec->pending : "none");
	if (!*rec->pending) {
		pnotice_free(n);
		return;
	}
	n->next = p->notices;
	p->notices = n;
	procedure_notices_tick(p, f->now);
}

static int add_affected_all(struct procedure *p, const char *endpoint, struct affected_ctx *ac)
{
	int r = store_queue_summary(p->env.store, endpoint, add_affected, ac);
	if (r < 0)
		log_warn("event=queue-summary-failed endpoint=%s error=\"%s\"", endpoint,
			 store_last_error(p->env.store));
	return r;
}

/* Messages delivered to the endpoint whose acknowledgement is overdue. */
struct overdue_ctx {
	int64_t count, oldest;
};

static int add_overdue(const struct store_msg *m, void *arg)
{
	struct overdue_ctx *c = arg;
	if (c->count++ == 0)
		c->oldest = m->delivered_at; /* the list is oldest delivery first */
	return 0;
}

#define OVERDUE_MAX 100000 /* counted per notice; beyond, "at least" this many */

/* The overdue acknowledgements of endpoint into f. Like the queue, a
 * notice goes out when they cannot be read (logged). */
static void overdue_facts(struct procedure *p, const char *endpoint, int64_t now,
			  struct notice_facts *f)
{
	struct overdue_ctx c = { 0, 0 };
	int r = store_ack_list(p->env.store, ACK_AWAITING, endpoint, now - p->cfg->ack_timeout_ms,
			       OVERDUE_MAX, add_overdue, &c);
	if (r < 0)
		log_warn("event=acks-read-failed endpoint=%s error=\"%s\"", endpoint,
			 store_last_error(p->env.store));
	f->acks_overdue = r < 0 ? 0 : c.count;
	f->acks_overdue_since = r < 0 ? 0 : c.oldest;
	f->ack_timeout_ms = p->cfg->ack_timeout_ms;
}

void procedure_outage_notice(struct procedure *p, struct outage *o, enum notice_kind kind,
			     bool ended_overnight, int64_t now)
{
	struct notice_facts f = { .kind = kind, .outage_id = o->id, .now = now };
	endpoint_facts(p, o->endpoint, &f);
	struct affected_ctx ac = { p, NULL, 0, 0, 0 };
	/* A notice that falls due goes out even when the queue cannot be
	 * read (logged): late news of an outage is worse than a short list. */
	(void)add_affected_all(p, o->endpoint, &ac);
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
	overdue_facts(p, o->endpoint, now, &f);
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

/* Stores and logs one channel's result; to is already fit to be shown. A
 * refused login is logged by email_refused() instead, once. */
static void record(struct procedure *p, struct pnotice *n, const char *channel, const char *to,
		   const struct notify_result *r, int64_t at)
{
	struct store_send s = { n->rec->id, channel, at, r->ok, to, r->ok ? "" : r->error };
	if (store_send_record(p->env.store, &s) < 0)
		log_err("event=notice-send-record-failed notice=%lld channel=%s error=\"%s\"",
			(long long)n->rec->id, channel, store_last_error(p->env.store));
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

static void unlink_notice(struct procedure *p, struct pnotice *n)
{
	for (struct pnotice **pp = &p->notices; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			return;
		}
	}
}

static void send_done(void *arg, const struct notifier_report *rep)
{
	struct send_round *j = arg;
	struct procedure *p = j->p;
	struct pnotice *n = j->n;
	struct notice_record *rec = n->rec;
	n->in_flight = false;
	rec->attempts++;
	bool email_ok = j->try_email && rep->email.result.ok;
	if (j->try_email)
		record(p, n, "email", rec->recipients, &rep->email.result, j->at);
	if (j->try_email && rep->email.result.denied)
		email_refused(p, j, &rep->email.result, rep->fallback.tried);
	if (j->try_webhook)
		record(p, n, "webhook", j->webhook_url, &rep->webhook.result, j->at);
	if (rep->fallback.tried) {
		record(p, n, "fallback", j->fallback, &rep->fallback.result, j->at);
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
	/* a failed save is logged; the notice goes on from memory, and after a
	 * restart the stored state at worst sends a round again */
	(void)save_notice(p, n);
	if (!*rec->pending) {
		unlink_notice(p, n);
		pnotice_free(n);
	}
	free(j);
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

static int load_notice(const struct notice_record *stored, void *arg)
{
	struct procedure *p = arg;
	struct pnotice *n = xcalloc(1, sizeof(*n));
	struct notice_record *rec = n->rec = notice_record_dup(stored);
	or_default(&rec->kind, "");
	or_default(&rec->audience, "");
	or_default(&rec->recipients, "");
	or_default(&rec->subject, "");
	or_default(&rec->body, "");
	or_default(&rec->payload, "{}");
	or_default(&rec->pending, "");
	if (!rec->next_attempt_at)
		rec->next_attempt_at = 1; /* pending but never scheduled: at once */
	n->next = p->notices;
	p->notices = n;
	return 0;
}

int procedure_load_notices(struct procedure *p)
{
	return store_notice_pending(p->env.store, load_notice, p);
}

/* Notices being sent stay (their send round points at them); the others
 * are read again as the store has them, skipping ids still held. */
int procedure_reload_notices(struct procedure *p)
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
	int r = procedure_load_notices(p);
	/* drop what was read again of those kept, then put them back */
	for (struct pnotice **n = &p->notices; *n;) {
		bool dup = false;
		for (struct pnotice *k = kept; k && !dup; k = k->next)
			dup = k->rec->id == (*n)->rec->id;
		if (dup) {
			struct pnotice *d = *n;
			*n = d->next;
			pnotice_free(d);
		} else {
			n = &(*n)->next;
		}
	}
	struct pnotice **tail = &p->notices;
	while (*tail)
		tail = &(*tail)->next;
	*tail = kept;
	return r;
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

/* ---- status page ----------------------------------------------------------- */

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

/* Reads endpoint's queue by type; a failed read is logged and shows as
 * nothing waiting (the page is rewritten again in STATUS_REFRESH_MS). */
static struct queue_types queue_types_of(struct procedure *p, const char *endpoint)
{
	struct queue_types q = { 0 };
	if (store_queue_summary(p->env.store, endpoint, add_type, &q) < 0) {
		log_warn("event=queue-summary-failed endpoint=%s error=\"%s\"", endpoint,
			 store_last_error(p->env.store));
		queue_types_free(&q);
		q = (struct queue_types){ 0 };
	}
	return q;
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
			conf->name, organisation_of(p->cfg, conf->name), endpoint_kind_name(conf->kind),
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

/* The outages' cards; q[i] gets outage i's queue (the caller frees it). */
static void fill_outages(struct procedure *p, struct status_outage *v, struct queue_types *q)
{
	for (size_t i = 0; i < p->noutages; i++) {
		struct outage *o = p->outages[i];
		const struct endpoint_conf *conf = config_endpoint(p->cfg, o->endpoint);
		q[i] = queue_types_of(p, o->endpoint);
		const char *contact = o->contact_override ? o->contact_override
				      : conf ? or_empty(conf->contact) : "";
		const char *fallback = o->fallback_override ? o->fallback_override
				       : conf ? or_empty(conf->fallback_contact) : "";
		v[i] = (struct status_outage){
			.id = o->id, .endpoint = o->endpoint,
			.organisation = organisation_of(p->cfg, o->endpoint),
			.state = outage_state_name(o->state), .started_at = o->started_at,
			.ended_at = o->ended_at, .expected_end = o->expected_end,
			.next_status_at = outage_next_status_at(o, &p->rules),
			.cause_fault = or_empty(o->cause_fault), .cause = or_empty(o->cause_override),
			.contact = contact, .fallback_contact = fallback,
			.fallback_note = conf ? or_empty(conf->fallback_note) : "",
			.queued = q[i].queued, .oldest_received_at = q[i].oldest,
			.types = q[i].v, .ntypes = q[i].n,
		};
	}
}

/* The planned windows' cards; q[i] gets window i's queue while it is in
 * force (the caller frees it). */
static void fill_windows(struct procedure *p, struct status_maintenance *v, struct queue_types *q,
			 int64_t now)
{
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		const struct endpoint_conf *conf = config_endpoint(p->cfg, m->endpoint);
		bool active = m->from <= now && now < m->to;
		q[i] = active ? queue_types_of(p, m->endpoint) : (struct queue_types){ 0 };
		v[i] = (struct status_maintenance){
			.id = m->id, .endpoint = m->endpoint,
			.organisation = organisation_of(p->cfg, m->endpoint), .from = m->from,
			.to = m->to, .reason = or_empty(m->reason),
			.contact = m->contact ? m->contact : conf ? or_empty(conf->contact) : "",
			.fallback_contact = conf ? or_empty(conf->fallback_contact) : "",
			.fallback_note = conf ? or_empty(conf->fallback_note) : "",
			.queued = q[i].queued, .types = q[i].v, .ntypes = q[i].n,
		};
	}
}

void procedure_status_tick(struct procedure *p, int64_t now)
{
	if (!p->status_dirty && now - p->status_written_at < STATUS_REFRESH_MS)
		return;
	const struct config *cfg = p->cfg;
	size_t no = p->noutages, nm = p->nmaint;
	struct status_endpoint *eps = xcalloc(cfg->nendpoints + 1, sizeof(*eps));
	struct status_outage *outs = xcalloc(no + 1, sizeof(*outs));
	struct status_maintenance *ms = xcalloc(nm + 1, sizeof(*ms));
	struct queue_types *qo = xcalloc(no + 1, sizeof(*qo)), *qm = xcalloc(nm + 1, sizeof(*qm));
	size_t ne = fill_endpoints(p, eps, now);
	fill_outages(p, outs, qo);
	fill_windows(p, ms, qm, now);
	struct status_page page = { cfg->language, now, eps, ne, outs, no, ms, nm,
				    cfg->support_phone };
	char err[256];
	int r = statuspage_write(cfg->status_dir, &page, err, sizeof(err));
	if (r < 0 && !p->status_error_logged)
		log_err("event=status-page-failed dir=%s error=\"%s\"", cfg->status_dir, err);
	p->status_error_logged = r < 0;
	p->status_dirty = false;
	p->status_written_at = now;
	for (size_t i = 0; i < no; i++)
		queue_types_free(&qo[i]);
	for (size_t i = 0; i < nm; i++)
		queue_types_free(&qm[i]);
	free(qo);
	free(qm);
	free(eps);
	free(outs);
	free(ms);
}

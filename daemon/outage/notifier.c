/*
 * notifier.c - the real notifier: carries a notice over its channels on a
 * lane of its own, so a slow mail server never holds the event loop.
 *
 * A round is one job: it owns deep copies of the settings and the message
 * (the config may be reloaded, and the notice changed, while it runs), runs
 * the channels one after the other on the worker, and reports on the loop.
 * Nothing here logs or stores: the procedure records every result.
 */
#include "outage/notifier.h"

#include "codecs/base/mem.h"

#include <string.h>

struct round {
	char *smtp_url, *smtp_user, *smtp_password, *starttls, *mail_from, *webhook_url,
		*fallback;
	long timeout_ms;
	char *subject, *body, *payload, *message_id;
	char **rcpt;
	size_t nrcpt;
	int64_t date;
	bool email, webhook, fallback_too;
	struct notifier_report rep;
	notifier_done_fn done;
	void *arg;
};

static void round_work(void *arg)
{
	struct round *r = arg;
	struct notify_config cfg = {
		r->smtp_url, r->smtp_user, r->smtp_password, r->starttls, r->mail_from,
		r->webhook_url, r->fallback, r->timeout_ms,
	};
	struct notify_message m = { r->subject, r->body, r->payload, (const char *const *)r->rcpt,
				    r->nrcpt, r->date, r->message_id };
	if (r->email) {
		r->rep.email.tried = true;
		notify_email(&cfg, &m, &r->rep.email.result);
	}
	if (r->webhook) {
		r->rep.webhook.tried = true;
		notify_webhook(&cfg, &m, &r->rep.webhook.result);
	}
	if (r->fallback_too && r->email && !r->rep.email.result.ok) {
		r->rep.fallback.tried = true;
		notify_fallback(&cfg, &m, &r->rep.fallback.result);
	}
}

static void round_free(struct round *r)
{
	char *strs[] = { r->smtp_url, r->smtp_user, r->smtp_password, r->starttls, r->mail_from,
			 r->webhook_url, r->fallback, r->subject, r->body, r->payload,
			 r->message_id };
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(strs[i]);
	for (size_t i = 0; i < r->nrcpt; i++)
		free(r->rcpt[i]);
	free(r->rcpt);
	free(r);
}

static void round_done(void *arg)
{
	struct round *r = arg;
	r->done(r->arg, &r->rep);
	round_free(r);
}

static void lane_send(const struct notifier *n, const struct notifier_request *req,
		       notifier_done_fn done, void *arg)
{
	const struct notify_config *c = req->cfg;
	const struct notify_message *m = req->msg;
	struct round *r = xcalloc(1, sizeof(*r));
	r->smtp_url = xstrdup_or_null(c->smtp_url);
	r->smtp_user = xstrdup_or_null(c->smtp_user);
	r->smtp_password = xstrdup_or_null(c->smtp_password);
	r->starttls = xstrdup_or_null(c->smtp_starttls);
	r->mail_from = xstrdup_or_null(c->mail_from);
	r->webhook_url = xstrdup_or_null(c->webhook_url);
	r->fallback = xstrdup_or_null(c->fallback_command);
	r->timeout_ms = c->timeout_ms;
	r->subject = xstrdup_or_null(m->subject);
	r->body = xstrdup_or_null(m->body);
	r->payload = xstrdup_or_null(m->payload);
	r->message_id = xstrdup_or_null(m->message_id);
	r->rcpt = xcalloc(m->nrecipients + 1, sizeof(char *));
	for (; r->nrcpt < m->nrecipients; r->nrcpt++)
		r->rcpt[r->nrcpt] = xstrdup(m->recipients[r->nrcpt]);
	r->date = m->date;
	r->email = req->email;
	r->webhook = req->webhook;
	r->fallback_too = req->fallback;
	r->done = done;
	r->arg = arg;
	lane_submit(n->ctx, round_work, round_done, r);
}

struct notifier *notifier_new(struct lane *lane)
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	*n = (struct notifier){ lane_send, lane };
	return n;
}

void notifier_free(struct notifier *n)
{
	free(n);
}

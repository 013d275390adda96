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
		*fallback, *webhook_token, *smtp_ca_file, *webhook_ca_file;
	long timeout_ms;
	char *subject, *body, *payload, *message_id;
	char **rcpt;
	size_t nrcpt;
	int64_t date;
	bool email, webhook;
	enum notifier_fallback when;
	struct notifier_report rep;
	notifier_done_fn done;
	void *arg;
};

static bool fallback_due(const struct round *r)
{
	const struct notify_result *e = &r->rep.email.result;
	bool failed = r->email && !e->ok;
	switch (r->when) {
	case NOTIFIER_FALLBACK_NEVER:
		return false;
	case NOTIFIER_FALLBACK_DENIED:
		return failed && e->denied;
	case NOTIFIER_FALLBACK_FAILED:
		return failed;
	case NOTIFIER_FALLBACK_ALWAYS:
		return true;
	}
	return false;
}

static void round_work(void *arg)
{
	struct round *r = arg;
	struct notify_config cfg = {
		.smtp_url = r->smtp_url, .smtp_user = r->smtp_user,
		.smtp_password = r->smtp_password, .smtp_starttls = r->starttls,
		.mail_from = r->mail_from, .webhook_url = r->webhook_url,
		.fallback_command = r->fallback, .timeout_ms = r->timeout_ms,
		.webhook_token = r->webhook_token, .smtp_ca_file = r->smtp_ca_file,
		.webhook_ca_file = r->webhook_ca_file,
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
	if (fallback_due(r)) {
		r->rep.fallback.tried = true;
		notify_fallback(&cfg, &m, &r->rep.fallback.result);
	}
}

/* A secret is wiped before its memory goes back to the allocator. */
static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void round_free(struct round *r)
{
	char *strs[] = { r->smtp_url, r->smtp_user, r->starttls, r->mail_from, r->webhook_url,
			 r->fallback, r->smtp_ca_file, r->webhook_ca_file, r->subject, r->body,
			 r->payload, r->message_id };
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(strs[i]);
	free_secret(r->smtp_password);
	free_secret(r->webhook_token);
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

static void copy_config(struct round *r, const struct notify_config *c)
{
	r->smtp_url = xstrdup_or_null(c->smtp_url);
	r->smtp_user = xstrdup_or_null(c->smtp_user);
	r->smtp_password = xstrdup_or_null(c->smtp_password);
	r->starttls = xstrdup_or_null(c->smtp_starttls);
	r->mail_from = xstrdup_or_null(c->mail_from);
	r->webhook_url = xstrdup_or_null(c->webhook_url);
	r->fallback = xstrdup_or_null(c->fallback_command);
	r->webhook_token = xstrdup_or_null(c->webhook_token);
	r->smtp_ca_file = xstrdup_or_null(c->smtp_ca_file);
	r->webhook_ca_file = xstrdup_or_null(c->webhook_ca_file);
	r->timeout_ms = c->timeout_ms;
}

static void lane_send(const struct notifier *n, const struct notifier_request *req,
		       notifier_done_fn done, void *arg)
{
	const struct notify_message *m = req->msg;
	struct round *r = xcalloc(1, sizeof(*r));
	copy_config(r, req->cfg);
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
	r->when = req->fallback;
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

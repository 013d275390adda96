/*
 * test_procedure.c - the outage procedure (procedure*.c) driven through its
 * own environment, without the broker: an in-memory store (fake_store.c), a
 * clock the test sets, a notifier that records each send round and
 * completes it when told, a view of two endpoints' queues and a probe that
 * counts. A two-hour outage runs in microseconds.
 *
 * Covers: a failure sequence (SUSPECT, then DOWN, the outage opened at the
 * first failure), the threshold (nothing before it, exactly one notice at
 * it, carrying the four fields), updates at the update interval, the
 * all-clear once the endpoint is up and its backlog delivered, probes of
 * idle endpoints, a restart in the middle (a new procedure on the same
 * store resumes the outage and repeats no notice), and a save that fails
 * sending nothing.
 *
 * Times are Europe/Copenhagen; T0 is Wednesday 2026-11-25 09:00 CET, inside
 * EDI support hours and the send window.
 */
#include "tests/unit/fake_store.h"
#include "tests/unit/testutil.h"

#include "base/log.h"
#include "codecs/base/mem.h"
#include "outage/procedure.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define T0 1795593600000LL /* 2026-11-25 09:00 CET */

/* ---- the environment ----------------------------------------------------- */

static int64_t now_ms;

static int64_t fake_now(void *ctx)
{
	return now_ms;
}

/* A send round as the notifier got it. */
struct round {
	char *subject, *body, *payload, *rcpt, *mid;
	bool email, webhook;
	enum notifier_fallback fallback;
	notifier_done_fn done;
	void *arg;
	bool completed;
};

static struct round rounds[32];
static size_t nrounds;

static void fake_send(const struct notifier *n, const struct notifier_request *req,
		      notifier_done_fn done, void *arg)
{
	cr_assert_lt(nrounds, ARRAY_SIZE(rounds));
	struct round *r = &rounds[nrounds++];
	const struct notify_message *m = req->msg;
	size_t len = 1;
	for (size_t i = 0; i < m->nrecipients; i++)
		len += strlen(m->recipients[i]) + 1;
	r->rcpt = xcalloc(1, len);
	for (size_t i = 0; i < m->nrecipients; i++)
		strcat(strcat(r->rcpt, i ? "," : ""), m->recipients[i]);
	*r = (struct round){ xstrdup(m->subject), xstrdup(m->body), xstrdup(m->payload), r->rcpt,
			     xstrdup_or_null(m->message_id), req->email, req->webhook,
			     req->fallback, done, arg, false };
}

static const struct notifier fake_notifier = { fake_send, NULL };

/* How the fake completes a round's e-mail (MAIL_FAILS_ALONE: only e-mail
 * fails; the webhook and a fallback go). */
enum mail_outcome { MAIL_OK, MAIL_FAILS, MAIL_DENIED, MAIL_FAILS_ALONE };

/* Completes every round not yet completed: e-mail as told, the webhook
 * and a fallback (run when the request says, as notifier.c decides) with
 * ok unless the mail failed for an ordinary reason. */
static void complete_rounds_as(enum mail_outcome mail)
{
	for (size_t i = 0; i < nrounds; i++) {
		struct round *r = &rounds[i];
		if (r->completed)
			continue;
		bool ok = mail != MAIL_FAILS;
		struct notifier_report rep = { 0 };
		struct notifier_outcome out = { .tried = true, .result = { .ok = ok } };
		if (!ok)
			str_copy(out.result.error, "SMTP 451 try later", sizeof(out.result.error));
		if (r->email) {
			rep.email = out;
			if (mail == MAIL_FAILS_ALONE)
				rep.email.result = (struct notify_result){
					.code = 451, .error = "SMTP 451 try later" };
			if (mail == MAIL_DENIED)
				rep.email.result = (struct notify_result){
					.denied = true, .code = 535,
					.error = "smtp://mail.example: the server refused the "
						 "credentials (SMTP 535)" };
		}
		if (r->webhook)
			rep.webhook = out;
		bool failed = r->email && !rep.email.result.ok;
		if (r->fallback == NOTIFIER_FALLBACK_ALWAYS ||
		    (r->fallback == NOTIFIER_FALLBACK_FAILED && failed) ||
		    (r->fallback == NOTIFIER_FALLBACK_DENIED && failed && rep.email.result.denied))
			rep.fallback = out;
		r->completed = true;
		r->done(r->arg, &rep);
	}
}

static void complete_rounds(bool ok)
{
	complete_rounds_as(ok ? MAIL_OK : MAIL_FAILS);
}

struct ep_state {
	const char *name;
	int64_t queued, oldest;
	bool busy;
	int probes;
};

static struct ep_state eps[2] = { { .name = "kommune" }, { .name = "sygehus" } };

static struct ep_state *ep_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(eps); i++)
		if (strcmp(eps[i].name, name) == 0)
			return &eps[i];
	return NULL;
}

static bool fake_view(void *ctx, const char *endpoint, struct procedure_ep_view *v)
{
	struct ep_state *e = ep_named(endpoint);
	if (!e)
		return false;
	*v = (struct procedure_ep_view){ e->queued, e->oldest, e->busy };
	return true;
}

static bool fake_probe(void *ctx, const char *endpoint)
{
	struct ep_state *e = ep_named(endpoint);
	cr_assert_not_null(e, "probe of an unknown endpoint %s", endpoint);
	e->probes++;
	return true;
}

/* ---- the config ---------------------------------------------------------- */

static char *kommune_rcpt[] = { "edi@kommune.example" };
static char *sygehus_rcpt[] = { "edi@sygehus.example" };
static char *support[] = { "edi-support@region.example" };
static char *oncall[] = { "vagt@region.example" };
static char *hospitals[] = { "hospitaler@region.example" };
static char *municipalities[] = { "kommuner@region.example" };

static struct endpoint_conf ep_confs[2] = {
	{ .name = "kommune", .kind = ENDPOINT_MUNICIPALITY, .transport = "spool",
	  .contact = "EOJ-vagt 7000 0000", .recipients = kommune_rcpt, .nrecipients = 1,
	  .organisation = "Aarhus Kommune" },
	{ .name = "sygehus", .kind = ENDPOINT_HOSPITAL, .transport = "spool",
	  .contact = "IT-vagt 8000 0000", .recipients = sygehus_rcpt, .nrecipients = 1,
	  .organisation = "Aarhus Universitetshospital" },
};

static char dir[64];
static struct config cfg;
static struct store *store;
static struct event_base *base; /* the lanes' loop, once attached */
static struct procedure *p;

static struct procedure *new_procedure(void)
{
	struct procedure_env env = {
		.store = store, .now = fake_now, .notifier = &fake_notifier,
		.endpoint_view = fake_view, .probe = fake_probe,
	};
	char err[256] = "";
	struct procedure *np = procedure_new(&env, &cfg, err, sizeof(err));
	cr_assert_not_null(np, "procedure_new: %s", err);
	for (size_t i = 0; i < ARRAY_SIZE(ep_confs); i++)
		procedure_endpoint_added(np, ep_confs[i].name);
	return np;
}

static void setup(void)
{
	setenv("TZ", "Europe/Copenhagen", 1);
	tzset();
	log_setup(LOG_CRIT, 0); /* the procedure logs every event */
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_procedure.XXXXXX");
	cfg = (struct config){
		.outage_threshold_ms = 2 * HOUR, .probe_interval_ms = MIN, .down_after = 3,
		.update_interval_ms = HOUR, .timezone = "Europe/Copenhagen", .language = "da",
		.smtp_url = "smtp://127.0.0.1:1", .mail_from = "edibroker@region.example",
		.support_recipients = support, .nsupport_recipients = 1,
		.oncall_recipients = oncall, .noncall_recipients = 1,
		.hospital_recipients = hospitals, .nhospital_recipients = 1,
		.municipality_recipients = municipalities, .nmunicipality_recipients = 1,
		.webhook_url = "http://127.0.0.1:1/hook", .notify_retry_ms = 30 * SEC,
		.fallback_after = 3, .notify_timeout_ms = SEC, .status_dir = dir,
		.endpoints = ep_confs, .nendpoints = ARRAY_SIZE(ep_confs),
	};
	now_ms = T0;
	nrounds = 0;
	for (size_t i = 0; i < ARRAY_SIZE(eps); i++)
		eps[i] = (struct ep_state){ .name = eps[i].name };
	store = fake_store_open();
	cr_assert_not_null(store);
	fake_store_queue("kommune", "XDIS20", "sygehus", 12, T0 - 10 * MIN);
	fake_store_partners("sygehus", "kommune");
	p = new_procedure();
}

static void teardown(void)
{
	complete_rounds(true); /* rounds point into the procedure */
	if (base) /* and their records with it */
		cr_assert_eq(store_drain(store, 5000), 0);
	procedure_free(p);
	store_close(store);
	if (base)
		event_base_free(base);
	base = NULL;
	for (size_t i = 0; i < nrounds; i++) {
		free(rounds[i].subject);
		free(rounds[i].body);
		free(rounds[i].payload);
		free(rounds[i].rcpt);
		free(rounds[i].mid);
	}
	testutil_rm_rf(dir);
}

TestSuite(procedure, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------- */

static void result_at(int64_t t, const char *endpoint, bool ok, size_t delivered)
{
	now_ms = t;
	struct procedure_result r = { .ok = ok, .fault = ok ? FAULT_NONE : FAULT_REFUSED,
				      .error = ok ? "" : "connect: Connection refused",
				      .delivered = delivered };
	procedure_on_result(p, endpoint, &r);
}

static void tick_at(int64_t t)
{
	now_ms = t;
	procedure_tick(p);
}

/* Three failures a minute apart from t: DOWN at the third (down_after). */
static void goes_down(int64_t t)
{
	for (int i = 0; i < 3; i++)
		result_at(t + i * MIN, "kommune", false, 0);
}

static const char *health_of(struct procedure *q, const char *endpoint)
{
	struct procedure_health h;
	cr_assert(procedure_endpoint_health(q, endpoint, &h), "%s has no health", endpoint);
	return h.state;
}

static const char *health(const char *endpoint)
{
	struct procedure_health h;
	cr_assert(procedure_endpoint_health(p, endpoint, &h), "%s has no health", endpoint);
	return h.state;
}

static struct outage stored[8];
static size_t nstored;

static int keep_outage(const struct outage *o, void *arg)
{
	cr_assert_lt(nstored, ARRAY_SIZE(stored));
	stored[nstored++] = *o; /* the fake's copy outlives the call; strings read at once */
	return 0;
}

/* The outages in the store, newest first. */
static size_t outages_stored(void)
{
	nstored = 0;
	cr_assert_geq(store_outage_list(store, 0, 10, keep_outage, NULL), 0);
	return nstored;
}

static char kinds[8][16];
static int64_t ids[8];
static size_t nkinds;

static int keep_kind(const struct notice_record *n, void *arg)
{
	cr_assert_lt(nkinds, ARRAY_SIZE(kinds));
	ids[nkinds] = n->id;
	str_copy(kinds[nkinds++], n->kind, sizeof(kinds[0]));
	cr_assert_str_eq(n->pending, *(const char *)arg ? "email,webhook" : "",
			 "notice %lld pending %s", (long long)n->id, n->pending);
	return 0;
}

/* The kinds of outage id's notices, oldest first; each still pending
 * (email,webhook) or done as pending says. */
static size_t notices_stored(int64_t id, bool pending)
{
	nkinds = 0;
	cr_assert_geq(store_notice_list(store, id, 0, keep_kind, pending ? "p" : ""), 0);
	return nkinds;
}

static int count_send(const struct store_send *s, void *arg)
{
	cr_assert(s->ok, "%s: %s", s->channel, s->error);
	(*(int *)arg)++;
	return 0;
}

static int count_any(const struct store_send *s, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* ---- the tests ----------------------------------------------------------- */

Test(procedure, failures_make_suspect_then_down_and_open_the_outage_at_the_first)
{
	cr_assert_str_eq(health("kommune"), "up");
	result_at(T0, "kommune", false, 0);
	cr_assert_str_eq(health("kommune"), "suspect");
	cr_assert_eq(outages_stored(), 0, "one failure opens no outage");
	result_at(T0 + MIN, "kommune", false, 0);
	cr_assert_str_eq(health("kommune"), "suspect");
	cr_assert_eq(procedure_endpoints_down(p), 0);
	result_at(T0 + 2 * MIN, "kommune", false, 0);
	cr_assert_str_eq(health("kommune"), "down");
	cr_assert_eq(procedure_endpoints_down(p), 1);
	cr_assert_eq(procedure_open_outages(p), 1);

	cr_assert_eq(outages_stored(), 1, "saved at once");
	cr_assert_eq(stored[0].state, OUTAGE_OPEN);
	cr_assert_str_eq(stored[0].endpoint, "kommune");
	cr_assert_eq(stored[0].started_at, T0, "the outage starts at the first failure");
	cr_assert_eq(stored[0].declared_at, T0 + 2 * MIN);
	cr_assert_eq(stored[0].due_at, T0 + 2 * HOUR);
	cr_assert_str_eq(stored[0].cause_fault, "refused");
	cr_assert_str_eq(stored[0].cause_error, "connect: Connection refused");
	cr_assert_str_eq(health("sygehus"), "up", "the other endpoint is not touched");

	tick_at(T0 + 3 * MIN);
	cr_assert_eq(nrounds, 0, "below the threshold nothing is sent");
	char path[96];
	snprintf(path, sizeof(path), "%s/status.json", dir);
	json_t *page = json_load_file(path, 0, NULL);
	cr_assert_not_null(page, "the status page was written");
	json_t *row = json_array_get(json_object_get(page, "endpoints"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(row, "name")), "kommune");
	cr_assert_str_eq(json_string_value(json_object_get(row, "health")), "down");
	json_decref(page);
	result_at(T0 + 4 * MIN, "kommune", false, 0);
	cr_assert_eq(outages_stored(), 1, "a failure while down opens no second outage");
}

Test(procedure, exactly_one_notice_at_the_threshold_with_the_four_fields)
{
	goes_down(T0);
	for (int64_t t = T0 + 5 * MIN; t < T0 + 2 * HOUR; t += 10 * MIN)
		tick_at(t);
	tick_at(T0 + 2 * HOUR - 1);
	cr_assert_eq(nrounds, 0, "nothing before the threshold");

	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1, "the initial notice at the threshold");
	tick_at(T0 + 2 * HOUR + 500);
	tick_at(T0 + 2 * HOUR + 30 * MIN);
	cr_assert_eq(nrounds, 1, "exactly one");

	const struct round *r = &rounds[0];
	cr_assert(r->email && r->webhook);
	cr_assert_not(r->fallback, "the fallback waits for fallback_after failed rounds");
	cr_assert_not_null(strstr(r->subject, "Aarhus Kommune (kommune)"), "%s", r->subject);
	const char *four[] = { "Årsag til fejl: ", "Berørte meddelelser: ", "Forventet nedetid: ",
			       "Kontaktperson: EOJ-vagt 7000 0000" };
	for (size_t i = 0; i < ARRAY_SIZE(four); i++)
		cr_assert_not_null(strstr(r->body, four[i]), "no \"%s\" in:\n%s", four[i], r->body);
	cr_assert_not_null(strstr(r->body, "Indlæggelsesadvis (XDIS20): 12"),
			   "the waiting messages by name, code beside:\n%s", r->body);
	cr_assert_null(strstr(r->body, "Connection refused"), "an error text for people:\n%s",
		       r->body);
	cr_assert_null(strstr(r->payload, "Connection refused"), "%s", r->payload);
	cr_assert_not_null(strstr(r->body, "12"), "their count:\n%s", r->body);
	json_t *payload = json_loads(r->payload, 0, NULL);
	cr_assert_not_null(payload, "%s", r->payload);
	cr_assert_str_eq(json_string_value(json_object_get(payload, "kind")), "initial", "%s",
			 r->payload);
	json_decref(payload);
	cr_assert_str_eq(r->rcpt, "edi-support@region.example,edi@kommune.example,"
				  "hospitaler@region.example,edi@sygehus.example",
			 "support hours: EDI support, the endpoint, its partner's list and mailbox");

	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_ANNOUNCED);
	cr_assert_eq(stored[0].announced_at, T0 + 2 * HOUR);
	cr_assert_eq(notices_stored(stored[0].id, true), 1, "saved before it was sent");
	cr_assert_str_eq(kinds[0], "initial");

	complete_rounds(true);
	cr_assert_eq(notices_stored(stored[0].id, false), 1, "both channels done");
}

/* Whom to phone: the endpoint's fallback contact and note, the support's
 * phone without one, an operator's --fallback over both; the status link. */
Test(procedure, notices_say_whom_to_phone_and_link_the_status_page)
{
	ep_confs[0].fallback_contact = "VisInfoSyd vagttelefon, +45 7011 2233";
	ep_confs[0].fallback_note = "Ved udskrivning: ring før patienten sendes hjem.";
	cfg.status_url = "https://intranet.region.example/edi/status.html";
	cfg.support_phone = "EDI-support 7020 3040";
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	const char *b = rounds[0].body;
	cr_assert_not_null(strstr(b, "Hvad gør jeg?\nHaster det, så ring til VisInfoSyd "
				     "vagttelefon, +45 7011 2233.\nVed udskrivning"), "%s", b);
	cr_assert_not_null(strstr(b, "Følg status her: https://intranet.region.example/edi/"
				     "status.html\n"), "%s", b);
	complete_rounds(true);
	cr_assert_eq(outages_stored(), 1);
	char err[256] = "";
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", stored[0].id, NULL, NULL, NULL,
					  "Akutvagt, +45 7099 0000", err, sizeof(err)), 0, "%s", err);
	tick_at(T0 + 2 * HOUR + MIN);
	cr_assert_eq(nrounds, 2, "the change is told at once");
	cr_assert_not_null(strstr(rounds[1].body, "ring til Akutvagt, +45 7099 0000."), "%s",
			   rounds[1].body);
	complete_rounds(true);
	ep_confs[0].fallback_contact = NULL;
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", stored[0].id, NULL, NULL, NULL, "", err,
					  sizeof(err)), 0, "%s", err);
	tick_at(T0 + 2 * HOUR + 2 * MIN);
	cr_assert_eq(nrounds, 3);
	cr_assert_not_null(strstr(rounds[2].body, "ring til den regionale EDI-support, "
						  "EDI-support 7020 3040."), "%s", rounds[2].body);
	ep_confs[0].fallback_note = NULL;
}

/* An operator's change to an announced outage is an update now (within
 * the send window); setting what is already set changes nothing. */
Test(procedure, an_operators_change_sends_an_update_at_once)
{
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	complete_rounds(true);
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	char err[256] = "";
	now_ms = T0 + 2 * HOUR + 5 * MIN;
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", id, "3h", NULL, NULL, NULL, err,
					  sizeof(err)), 0);
	tick_at(T0 + 2 * HOUR + 5 * MIN + 500);
	cr_assert_eq(nrounds, 2, "expected downtime: an update at once, not in an hour");
	cr_assert_not_null(strstr(rounds[1].subject, "status"), "%s", rounds[1].subject);
	cr_assert_not_null(strstr(rounds[1].body, "Forventet nedetid: til 25-11-2026 kl. 14:05"),
			   "%s", rounds[1].body);
	cr_assert_not_null(strstr(rounds[1].body, "Næste status: 25-11-2026 kl. 12:05"),
			   "the interval counts from the update:\n%s", rounds[1].body);
	complete_rounds(true);
	now_ms = T0 + 2 * HOUR + 10 * MIN;
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", id, NULL, "Jens, +45 1234", NULL,
					  NULL, err, sizeof(err)), 0);
	tick_at(T0 + 2 * HOUR + 11 * MIN);
	cr_assert_eq(nrounds, 3, "a new contact: an update at once");
	cr_assert_eq(outages_stored(), 1);
	cr_assert_str_eq(stored[0].changed_by, "jens (uid 1001)", "saved with who changed it");
	cr_assert_not_null(strstr(rounds[2].body, "Kontaktperson: Jens, +45 1234"), "%s",
			   rounds[2].body);
	complete_rounds(true);
	now_ms = T0 + 2 * HOUR + 5 * MIN; /* "3h" from the same instant: the same end */
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", id, "3h", "Jens, +45 1234", NULL,
					  NULL, err, sizeof(err)), 0);
	tick_at(T0 + 2 * HOUR + 12 * MIN);
	cr_assert_eq(nrounds, 3, "the same contact again is no change");
	/* after 22:00 the change waits for the morning like any notice */
	now_ms = T0 + 13 * HOUR + 30 * MIN; /* 22:30 */
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", id, NULL, NULL, "Strømsvigt", NULL, err,
					  sizeof(err)), 0);
	tick_at(T0 + 13 * HOUR + 31 * MIN);
	cr_assert_eq(nrounds, 3, "held outside the send window");
}

/* Every round of one notice has the same Message-ID; it names the store
 * instance and the broker, and two notices never share one. */
Test(procedure, message_id_is_stable_across_retries_and_unique_per_notice)
{
	cfg.broker_id = "REGION-NORD";
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	complete_rounds(false);
	tick_at(T0 + 2 * HOUR + 30 * SEC);
	cr_assert_eq(nrounds, 2, "a retry");
	cr_assert_not_null(rounds[0].mid);
	cr_assert_str_eq(rounds[1].mid, rounds[0].mid, "a retry keeps its Message-ID");
	cr_assert_not_null(strstr(rounds[0].mid, "fa4e0001"), "store instance: %s", rounds[0].mid);
	cr_assert_not_null(strstr(rounds[0].mid, "REGION-NORD"), "broker id: %s", rounds[0].mid);
	complete_rounds(true);
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 3);
	cr_assert_str_neq(rounds[2].mid, rounds[0].mid, "another notice, another Message-ID");
}

/* E-mail failing fallback_after times brings in the fallback; once it has
 * carried the notice, e-mail of it is not retried minutes later. */
Test(procedure, a_notice_the_fallback_carried_is_not_mailed_again)
{
	cfg.fallback_command = "/opt/sms/send.sh";
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	int64_t t = T0 + 2 * HOUR;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(nrounds, (size_t)i + 1);
		cr_assert(rounds[i].email);
		complete_rounds_as(MAIL_FAILS_ALONE);
		t += 10 * MIN;
		tick_at(t);
	}
	cr_assert_eq(rounds[2].fallback, NOTIFIER_FALLBACK_FAILED, "the third round brings it in");
	cr_assert_eq(nrounds, 3, "the fallback carried it: no fourth e-mail round");
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(notices_stored(stored[0].id, false), 1, "nothing pending");
}

Test(procedure, an_update_at_every_update_interval)
{
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	complete_rounds(true);
	tick_at(T0 + 3 * HOUR - 1);
	cr_assert_eq(nrounds, 1, "no update before the interval");
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 2);
	cr_assert_not_null(strstr(rounds[1].subject, "status"), "%s", rounds[1].subject);
	tick_at(T0 + 3 * HOUR + 30 * MIN);
	cr_assert_eq(nrounds, 2);
	tick_at(T0 + 4 * HOUR);
	cr_assert_eq(nrounds, 3, "and again an interval later");
	complete_rounds(true);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(notices_stored(stored[0].id, false), 3);
	cr_assert_str_eq(kinds[0], "initial");
	cr_assert_str_eq(kinds[1], "update");
	cr_assert_str_eq(kinds[2], "update");
	int sends = 0;
	cr_assert_eq(store_send_list(store, ids[1], count_send, &sends), 2, "e-mail and webhook");
}

Test(procedure, the_allclear_follows_recovery_and_a_drained_backlog)
{
	eps[0].queued = 12;
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	complete_rounds(true);

	result_at(T0 + 2 * HOUR + 10 * MIN, "kommune", true, 0); /* a probe got through */
	cr_assert_str_eq(health("kommune"), "up");
	tick_at(T0 + 2 * HOUR + 11 * MIN);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_RECOVERING, "up, but messages still wait");
	cr_assert_eq(stored[0].ended_at, T0 + 2 * HOUR + 11 * MIN);
	cr_assert_eq(nrounds, 1, "no all-clear while the backlog drains");

	result_at(T0 + 2 * HOUR + 12 * MIN, "kommune", true, 12);
	eps[0].queued = 0;
	tick_at(T0 + 2 * HOUR + 13 * MIN);
	cr_assert_eq(nrounds, 2, "the all-clear");
	cr_assert_not_null(strstr(rounds[1].body, "leveret forsinket: 12"), "%s", rounds[1].body);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_CLOSED);
	cr_assert_eq(stored[0].delivered_late, 12);
	cr_assert_eq(procedure_open_outages(p), 0);
	tick_at(T0 + 5 * HOUR);
	cr_assert_eq(nrounds, 2, "a closed outage sends nothing more");
}

Test(procedure, idle_endpoints_are_probed_every_probe_interval)
{
	tick_at(T0);
	cr_assert_eq(eps[0].probes, 1);
	cr_assert_eq(eps[1].probes, 1);
	tick_at(T0 + 30 * SEC);
	cr_assert_eq(eps[0].probes, 1, "not before probe_interval");
	result_at(T0 + 40 * SEC, "kommune", true, 0); /* a delivery counts as a check */
	eps[1].busy = true;
	tick_at(T0 + MIN + 500);
	cr_assert_eq(eps[0].probes, 1, "checked 20 s ago by a delivery");
	cr_assert_eq(eps[1].probes, 1, "a busy endpoint is not probed");
	tick_at(T0 + 2 * MIN);
	cr_assert_eq(eps[0].probes, 2);
}

Test(procedure, a_restart_resumes_the_outage_and_repeats_no_notice)
{
	goes_down(T0);
	tick_at(T0 + HOUR);

	procedure_free(p); /* a restart before the threshold */
	now_ms = T0 + HOUR + MIN;
	p = new_procedure();
	cr_assert_str_eq(health("kommune"), "down", "an open outage means it was down");
	cr_assert_eq(procedure_open_outages(p), 1);
	tick_at(T0 + 2 * HOUR - 1);
	cr_assert_eq(nrounds, 0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1, "the threshold still counts from the first failure");
	complete_rounds(true);

	procedure_free(p); /* and one after the notice went out */
	now_ms = T0 + 2 * HOUR + MIN;
	p = new_procedure();
	cr_assert_eq(procedure_open_outages(p), 1);
	for (int64_t t = T0 + 2 * HOUR + MIN; t < T0 + 3 * HOUR; t += 5 * MIN)
		tick_at(t);
	cr_assert_eq(nrounds, 1, "the initial notice is not sent twice");
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 2, "the update falls due as before the restart");
	complete_rounds(true);
	cr_assert_eq(outages_stored(), 1, "one outage, resumed");
	cr_assert_eq(notices_stored(stored[0].id, false), 2);
	cr_assert_str_eq(kinds[1], "update");
}

Test(procedure, a_notice_not_yet_carried_at_a_restart_is_sent_again_not_composed_again)
{
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	complete_rounds(false); /* mail server and webhook down: retried in 30 s */
	procedure_free(p);

	now_ms = T0 + 2 * HOUR + MIN;
	p = new_procedure();
	tick_at(T0 + 2 * HOUR + MIN);
	cr_assert_eq(nrounds, 2, "the pending notice is carried again");
	cr_assert_str_eq(rounds[1].subject, rounds[0].subject);
	cr_assert_str_eq(rounds[1].body, rounds[0].body, "as composed then");
	complete_rounds(true);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(notices_stored(stored[0].id, false), 1, "one notice, not a second one");
	int sends = 0;
	cr_assert_eq(store_send_list(store, ids[0], count_any, &sends), 4,
		     "a failed and a good attempt on each channel");
}

Test(procedure, nothing_is_sent_about_an_outage_that_could_not_be_saved)
{
	fake_store_fail_saves(true);
	goes_down(T0);
	cr_assert_str_eq(health("kommune"), "down", "the health is known all the same");
	cr_assert_eq(procedure_open_outages(p), 0, "an outage not stored is not kept");
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 0);
	cr_assert_eq(fake_store_saves(), 0);
}

Test(procedure, an_outage_the_store_refused_is_opened_once_it_takes_it)
{
	fake_store_fail_saves(true);
	goes_down(T0);
	cr_assert_eq(procedure_open_outages(p), 0);
	tick_at(T0 + 3 * MIN);
	cr_assert_eq(procedure_open_outages(p), 0, "the store still fails");
	fake_store_fail_saves(false);
	tick_at(T0 + 4 * MIN);
	cr_assert_eq(procedure_open_outages(p), 1, "opened at the next tick");
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].started_at, T0, "from the first failure, as it would have been");
	tick_at(T0 + 5 * MIN);
	cr_assert_eq(outages_stored(), 1, "once");
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1, "and its notice at the threshold");
}

Test(procedure, a_change_the_store_refused_is_made_and_announced_again)
{
	goes_down(T0);
	cr_assert_eq(outages_stored(), 1);
	fake_store_fail_saves(true);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 0, "nothing is sent about a change not saved");
	tick_at(T0 + 2 * HOUR + 500);
	cr_assert_eq(nrounds, 0);
	fake_store_fail_saves(false);
	tick_at(T0 + 2 * HOUR + 1000);
	cr_assert_eq(nrounds, 1, "the same change again, saved, announced");
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_ANNOUNCED);
	tick_at(T0 + 2 * HOUR + 2000);
	cr_assert_eq(nrounds, 1, "once");
}

static bool acting;

static bool fake_may_act(void *ctx)
{
	return acting;
}

/* Several daemons: only the holder of the procedure's lease acts. */
Test(procedure, a_node_without_the_lease_does_nothing_and_takes_over_from_the_store)
{
	goes_down(T0); /* this node opened it while it held the lease ... */
	cr_assert_eq(outages_stored(), 1);
	struct procedure_env env = {
		.store = store, .now = fake_now, .notifier = &fake_notifier,
		.endpoint_view = fake_view, .probe = fake_probe, .may_act = fake_may_act,
	};
	char err[256] = "";
	struct procedure *other = procedure_new(&env, &cfg, err, sizeof(err));
	cr_assert_not_null(other, "%s", err);
	procedure_endpoint_added(other, "kommune");
	procedure_endpoint_added(other, "sygehus");
	acting = false;
	now_ms = T0 + 2 * HOUR;
	procedure_tick(other);
	cr_assert_eq(nrounds, 0, "no lease: no notice");
	int64_t id = 0;
	cr_assert_eq(procedure_outage_open(other, "op", "sygehus", "x", &id, err, sizeof(err)),
		     -EAGAIN);
	cr_assert_not_null(strstr(err, "another node"), "%s", err);
	/* ... and the other node takes over: from the store, where it was left */
	acting = true;
	procedure_resync(other);
	cr_assert_str_eq(health_of(other, "kommune"), "down", "an open outage: down until shown up");
	procedure_tick(other);
	cr_assert_eq(nrounds, 1, "the initial notice, once, by the new holder");
	procedure_tick(other);
	cr_assert_eq(nrounds, 1);
	complete_rounds(true);
	procedure_free(other);
}

/* ---- a mail server that refuses the credentials (issue 8) ------------------ */

struct sends {
	int n;
	char channel[8][16];
	char to[8][128];
	bool ok[8];
};

static int keep_send(const struct store_send *s, void *arg)
{
	struct sends *v = arg;
	cr_assert_lt(v->n, 8);
	str_copy(v->channel[v->n], s->channel, sizeof(v->channel[0]));
	str_copy(v->to[v->n], s->recipients ? s->recipients : "", sizeof(v->to[0]));
	v->ok[v->n++] = s->ok;
	return 0;
}

static int keep_id(const struct notice_record *n, void *arg)
{
	cr_assert_str_eq(n->pending, cfg.email_after_fallback ? "email" : "",
			 "the webhook went; e-mail waits only when asked to go after the fallback");
	*(int64_t *)arg = n->id;
	return 0;
}

/* The send of channel among v, or -1. */
static int send_of(const struct sends *v, const char *channel)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->channel[i], channel) == 0)
			return i;
	return -1;
}

/* A refused login: the fallback carries the notice in the same round, the
 * credential is not tried again. */
static void refused_login_round(void)
{
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "pw-one";
	cfg.fallback_command = "SMS_KEY=k3y /opt/sms/send.sh --api-key K3Y";
	cfg.webhook_url = "https://ops:hunter2@hooks.example/edi?token=t0k";
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	cr_assert(rounds[0].email && rounds[0].webhook);
	cr_assert_eq(rounds[0].fallback, NOTIFIER_FALLBACK_DENIED,
		     "a refused login brings the fallback in the same round, not after "
		     "fallback_after rounds");
	complete_rounds_as(MAIL_DENIED);

	cr_assert_eq(outages_stored(), 1);
	int64_t notice = 0;
	cr_assert_eq(store_notice_list(store, stored[0].id, 0, keep_id, &notice), 1);
	struct sends v = { 0 };
	cr_assert_geq(store_send_list(store, notice, keep_send, &v), 0);
	cr_assert_eq(v.n, 3, "e-mail, webhook and fallback in one round");
	int e = send_of(&v, "email"), w = send_of(&v, "webhook"), f = send_of(&v, "fallback");
	cr_assert(e >= 0 && w >= 0 && f >= 0);
	cr_assert_not(v.ok[e]);
	cr_assert(v.ok[f]);
	cr_assert_str_eq(v.to[f], "send.sh", "the fallback by name only");
	cr_assert_str_eq(v.to[w], "https://***@hooks.example/edi?***", "the webhook redacted");

	/* no retry of the refused credential, however long it waits */
	for (int64_t t = T0 + 2 * HOUR + MIN; t < T0 + 2 * HOUR + 50 * MIN; t += 5 * MIN)
		tick_at(t);
	cr_assert_eq(nrounds, 1, "e-mail with the refused password is not tried again");
}

Test(procedure, a_refused_login_goes_to_the_fallback_at_once_and_is_not_retried)
{
	refused_login_round();
	/* the next notice goes to the fallback without trying e-mail */
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 2);
	cr_assert_not(rounds[1].email, "e-mail waits for new credentials");
	cr_assert(rounds[1].webhook);
	cr_assert_eq(rounds[1].fallback, NOTIFIER_FALLBACK_ALWAYS);
	complete_rounds_as(MAIL_OK);
	cr_assert_eq(notices_stored(stored[0].id, false), 2,
		     "the fallback carried both: no e-mail is owed");
	/* a reload with a new password: nothing the fallback carried is mailed again */
	cfg.smtp_password = "pw-two";
	for (int64_t t = T0 + 3 * HOUR + MIN; t < T0 + 3 * HOUR + 50 * MIN; t += 5 * MIN)
		tick_at(t);
	cr_assert_eq(nrounds, 2, "people who had the SMS get no e-mail of it minutes later");
}

/* email_after_fallback = yes: the operator wants both, so the e-mail of
 * the notices the fallback carried goes once the credentials work. */
Test(procedure, with_email_after_fallback_the_mail_follows_new_credentials)
{
	cfg.email_after_fallback = true;
	refused_login_round();
	/* the next notice goes to the fallback without trying e-mail */
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 2);
	cr_assert_not(rounds[1].email, "e-mail waits for new credentials");
	cr_assert(rounds[1].webhook);
	cr_assert_eq(rounds[1].fallback, NOTIFIER_FALLBACK_ALWAYS);
	complete_rounds_as(MAIL_OK);
	tick_at(T0 + 3 * HOUR + 10 * MIN);
	cr_assert_eq(nrounds, 2);

	/* a reload with a new password: the waiting e-mails go */
	cfg.smtp_password = "pw-two";
	tick_at(T0 + 3 * HOUR + 11 * MIN);
	cr_assert_eq(nrounds, 4, "both notices' e-mail, once each");
	for (size_t i = 2; i < 4; i++) {
		cr_assert(rounds[i].email);
		cr_assert_not(rounds[i].webhook, "the webhook had them already");
		cr_assert_eq(rounds[i].fallback, NOTIFIER_FALLBACK_NEVER, "the fallback had them");
	}
	complete_rounds_as(MAIL_OK);
	cr_assert_eq(notices_stored(stored[0].id, false), 2, "nothing pending any more");
}

Test(procedure, a_refused_login_without_a_fallback_holds_the_mail_not_the_webhook)
{
	cfg.smtp_user = "edibroker";
	cfg.smtp_password = "pw-one";
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(rounds[0].fallback, NOTIFIER_FALLBACK_NEVER);
	complete_rounds_as(MAIL_DENIED);
	for (int64_t t = T0 + 2 * HOUR + MIN; t < T0 + 3 * HOUR; t += 5 * MIN)
		tick_at(t);
	cr_assert_eq(nrounds, 1, "no round while e-mail waits and nothing else is due");
	tick_at(T0 + 3 * HOUR);
	cr_assert_eq(nrounds, 2, "the update still goes by webhook");
	cr_assert_not(rounds[1].email);
	cr_assert(rounds[1].webhook);
	/* a new user is a new chance too */
	complete_rounds_as(MAIL_OK);
	cfg.smtp_user = "edibroker2";
	tick_at(T0 + 3 * HOUR + MIN);
	cr_assert_eq(nrounds, 4);
	cr_assert(rounds[2].email && rounds[3].email);
}

/* An operator's hold is a planned shutdown by hand: going down while held
 * opens no outage and sends nothing; released still down, the acute
 * procedure starts from the release; an outage already open sends nothing
 * while held and goes on from where it was. */
Test(procedure, a_held_endpoint_is_treated_like_a_planned_shutdown)
{
	procedure_endpoint_held(p, "kommune", true);
	cr_assert_str_eq(health("kommune"), "held");
	goes_down(T0);
	cr_assert_eq(outages_stored(), 0, "no outage while held");
	for (int64_t t = T0 + 5 * MIN; t <= T0 + 3 * HOUR; t += 10 * MIN)
		tick_at(t);
	cr_assert_eq(nrounds, 0, "no notice while held");
	cr_assert_null(procedure_outage_state(p, "kommune"));

	now_ms = T0 + 3 * HOUR;
	procedure_endpoint_held(p, "kommune", false);
	cr_assert_str_eq(health("kommune"), "down");
	cr_assert_eq(outages_stored(), 1, "released while down: the acute procedure starts");
	cr_assert_eq(stored[0].started_at, T0 + 3 * HOUR, "from the release");
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "open");

	/* held again: the open outage's notice, due at the threshold, waits */
	procedure_endpoint_held(p, "kommune", true);
	tick_at(T0 + 5 * HOUR + MIN);
	cr_assert_eq(nrounds, 0, "held: the due notice is not sent");
	procedure_endpoint_held(p, "kommune", false);
	tick_at(T0 + 5 * HOUR + 2 * MIN);
	cr_assert_eq(nrounds, 1, "released: it goes out");
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "announced");
}

/* Acknowledgements overdue: the messages delivered to the endpoint whose
 * receiver has not acknowledged them within ack_timeout are among the
 * affected ones; those not yet overdue, and another endpoint's, are not. */
Test(procedure, overdue_acknowledgements_are_among_the_affected_messages)
{
	cfg.ack_timeout_ms = 30 * MIN;
	fake_store_tracked(1, "kommune", "XDIS20", "sygehus", T0 - 40 * MIN, ACK_AWAITING);
	fake_store_tracked(2, "kommune", "XDIS17", "sygehus", T0 - 35 * MIN, ACK_AWAITING);
	fake_store_tracked(3, "sygehus", "XDIS14", "kommune", T0 - 50 * MIN, ACK_AWAITING);
	fake_store_tracked(4, "kommune", "XDIS20", "sygehus", T0 + 2 * HOUR - 10 * MIN,
			   ACK_AWAITING);
	fake_store_tracked(5, "kommune", "XDIS20", "sygehus", T0 - 60 * MIN, ACK_ACKNOWLEDGED);
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	const struct round *r = &rounds[0];
	const char *affected = strstr(r->body, "Berørte meddelelser: ");
	cr_assert_not_null(affected, "%s", r->body);
	cr_assert_not_null(strstr(affected, "\n  Kvittering mangler for 2 leverede meddelelser "
					    "(over 30 min; den ældste leveret "),
			   "%s", r->body);
	json_t *payload = json_loads(r->payload, 0, NULL);
	cr_assert_not_null(payload);
	cr_assert_eq(json_integer_value(json_object_get(payload, "acks_overdue")), 2);
	cr_assert(json_is_string(json_object_get(payload, "acks_overdue_since")));
	json_decref(payload);
}

Test(procedure, no_overdue_line_when_every_acknowledgement_came)
{
	cfg.ack_timeout_ms = 30 * MIN;
	fake_store_tracked(1, "kommune", "XDIS20", "sygehus", T0 - 60 * MIN, ACK_ACKNOWLEDGED);
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1);
	cr_assert_null(strstr(rounds[0].body, "Kvittering mangler"), "%s", rounds[0].body);
	json_t *payload = json_loads(rounds[0].payload, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(payload, "acks_overdue")), 0);
	json_decref(payload);
}

/* ---- operators' changes: record, then apply ------------------------------ */

/* Prepared on the loop, written on a lane, applied on the loop: until the
 * write is in, neither the store nor the procedure has the change; until
 * it is applied, only the store has it. */
Test(procedure, an_operators_change_is_applied_only_once_written)
{
	char err[256] = "";
	struct procedure_change *c = NULL;
	cr_assert_eq(procedure_outage_open_prepare(p, "jens (uid 1001)", "sygehus", "fiber", &c, err,
						   sizeof(err)), 0, "%s", err);
	cr_assert_eq(procedure_open_outages(p), 0, "prepared: the procedure is untouched");
	cr_assert_eq(outages_stored(), 0);
	cr_assert_eq(procedure_change_write(c, store, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_str_eq(stored[0].changed_by, "jens (uid 1001)");
	cr_assert_eq(procedure_open_outages(p), 0, "written, not yet applied");
	int64_t id = procedure_change_id(c);
	cr_assert_eq(id, stored[0].id);
	procedure_change_apply(p, c);
	procedure_change_free(c);
	cr_assert_eq(procedure_open_outages(p), 1);
	cr_assert_not_null(procedure_outage_state(p, "sygehus"));
	int64_t again = 0;
	cr_assert_eq(procedure_outage_open(p, "op", "sygehus", "x", &again, err, sizeof(err)),
		     -EEXIST, "the procedure has it now");
}

/* A write the store refuses changes nothing: the answer is the store's
 * error, the procedure is as it was, and the outage is free for the next
 * change. */
Test(procedure, a_change_the_store_refused_leaves_the_procedure_as_it_was)
{
	goes_down(T0);
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	char err[256] = "";
	struct procedure_change *c = NULL;
	cr_assert_eq(procedure_outage_set_prepare(p, "jens (uid 1001)", id, "3h", NULL, NULL, NULL,
						  &c, err, sizeof(err)), 0, "%s", err);
	fake_store_fail_saves(true);
	cr_assert_lt(procedure_change_write(c, store, err, sizeof(err)), 0);
	cr_assert_eq(strncmp(err, "store: ", 7), 0, "%s", err);
	procedure_change_drop(p, c);
	procedure_change_free(c);
	fake_store_fail_saves(false);
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(nrounds, 1, "the initial notice at the threshold, no earlier");
	cr_assert_null(strstr(rounds[0].body, "Forventet nedetid: til"), "%s", rounds[0].body);
	cr_assert_eq(procedure_outage_set(p, "jens (uid 1001)", id, "3h", NULL, NULL, NULL, err,
					  sizeof(err)), 0, "not busy: %s", err);
}

/* Two changes to one outage would each write a copy made before the other:
 * the second is refused until the first is answered. Other records are
 * free meanwhile. */
Test(procedure, a_second_change_to_the_same_record_waits_for_the_first)
{
	goes_down(T0);
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	char err[256] = "";
	struct procedure_change *c = NULL, *d = NULL, *o = NULL, *m = NULL;
	cr_assert_eq(procedure_outage_close_prepare(p, "a", id, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(procedure_outage_set_prepare(p, "b", id, NULL, "x", NULL, NULL, &d, err,
						  sizeof(err)), -EBUSY);
	cr_assert_null(d);
	cr_assert_not_null(strstr(err, "retry"), "%s", err);
	cr_assert_eq(procedure_outage_open_prepare(p, "b", "sygehus", NULL, &o, err, sizeof(err)), 0,
		     "another endpoint: %s", err);
	cr_assert_eq(procedure_outage_open_prepare(p, "c", "sygehus", NULL, &d, err, sizeof(err)),
		     -EBUSY, "being opened");
	cr_assert_eq(procedure_maintenance_add_prepare(p, "b", "kommune", "2026-11-26 06:00",
						       "2026-11-26 08:00", "opgradering", NULL, &m,
						       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(procedure_change_write(c, store, err, sizeof(err)), 0, "%s", err);
	procedure_change_apply(p, c);
	procedure_change_free(c);
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_RESOLVED, "closed by hand in the store");
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "resolved", "and in the procedure");
	for (struct procedure_change **x = (struct procedure_change *[]){ o, m, NULL }; *x; x++) {
		cr_assert_eq(procedure_change_write(*x, store, err, sizeof(err)), 0, "%s", err);
		procedure_change_apply(p, *x);
		procedure_change_free(*x);
	}
	cr_assert_not_null(procedure_outage_state(p, "sygehus"));
}

/* While an operator's change flies, the timer does not write the same
 * outage behind it, nor open an outage of its own for an endpoint the
 * operator is opening one for. */
Test(procedure, the_timer_leaves_a_record_being_changed_alone)
{
	goes_down(T0);
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	char err[256] = "";
	struct procedure_change *c = NULL, *o = NULL;
	cr_assert_eq(procedure_outage_set_prepare(p, "jens (uid 1001)", id, NULL, "Jens, +45 1234",
						  NULL, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(procedure_outage_open_prepare(p, "jens (uid 1001)", "sygehus", NULL, &o, err,
						   sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 3; i++)
		result_at(T0 + 2 * HOUR + i * SEC, "sygehus", false, 0);
	cr_assert_eq(procedure_open_outages(p), 1, "not a second outage of sygehus");
	tick_at(T0 + 2 * HOUR + 5 * SEC);
	cr_assert_eq(nrounds, 0, "the threshold passed, but its outage is being written");
	cr_assert_eq(procedure_change_write(c, store, err, sizeof(err)), 0, "%s", err);
	procedure_change_apply(p, c);
	procedure_change_free(c);
	cr_assert_eq(procedure_change_write(o, store, err, sizeof(err)), 0, "%s", err);
	procedure_change_apply(p, o);
	procedure_change_free(o);
	tick_at(T0 + 2 * HOUR + 6 * SEC);
	cr_assert_eq(nrounds, 1, "now the initial notice");
	cr_assert_not_null(strstr(rounds[0].body, "Kontaktperson: Jens, +45 1234"), "%s",
			   rounds[0].body);
	cr_assert_eq(procedure_open_outages(p), 2, "kommune's and the operator's of sygehus");
	tick_at(T0 + 2 * HOUR + 7 * SEC);
	cr_assert_eq(procedure_open_outages(p), 2, "the timer opens no second one");
}

/* ---- a store that answers later (lanes) ------------------------------------ */

/* From now on the store's work runs on its lanes' threads and completes on
 * this thread when drained, as with PostgreSQL. */
static void attach(void)
{
	base = event_base_new();
	cr_assert_not_null(base);
	cr_assert_eq(store_attach(store, base), 0);
	cr_assert(store_async(store));
}

/* Runs the completions of every step out, and of the steps they start. */
static void drain(void)
{
	cr_assert_eq(store_drain(store, 5000), 0, "the lanes did not finish");
}

/* The timer decides on the loop and saves on a lane: until the store has
 * the change, the procedure is as it was, sends nothing, and neither the
 * next tick nor an operator makes a second change to that outage. Then the
 * notice is composed from one read, saved, and sent once; its round stays
 * in flight until its attempts are recorded. */
Test(procedure, with_a_store_that_answers_later_nothing_goes_before_its_save)
{
	goes_down(T0);
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	attach();
	tick_at(T0 + 2 * HOUR);
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "open",
			 "announced only once the store has it");
	cr_assert_eq(nrounds, 0, "nothing sent before the save came back");
	char err[256] = "";
	struct procedure_change *c = NULL;
	cr_assert_eq(procedure_outage_set_prepare(p, "jens (uid 1001)", id, "3h", NULL, NULL, NULL,
						  &c, err, sizeof(err)), -EBUSY,
		     "the timer's save of it flies");
	cr_assert_not_null(strstr(err, "retry"), "%s", err);
	tick_at(T0 + 2 * HOUR + 500); /* left alone: its step is out */
	drain();
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "announced");
	cr_assert_eq(nrounds, 1, "composed, saved, then sent");
	cr_assert_eq(notices_stored(id, true), 1, "one notice, saved before it went");
	cr_assert_not_null(strstr(rounds[0].body, "XDIS20"), "the queue read on the lane: %s",
			   rounds[0].body);
	complete_rounds(true);
	tick_at(T0 + 2 * HOUR + 1000);
	drain();
	int sends = 0;
	cr_assert_eq(store_send_list(store, ids[0], count_any, &sends), 2,
		     "each channel's attempt recorded");
	cr_assert_eq(notices_stored(id, false), 1, "and nothing left pending");
	cr_assert_eq(nrounds, 1, "sent once");
}

/* A step the store refused leaves the procedure as it was; a later tick
 * takes it again. */
Test(procedure, with_a_store_that_answers_later_a_refused_step_is_taken_again)
{
	goes_down(T0);
	attach();
	fake_store_fail_saves(true);
	tick_at(T0 + 2 * HOUR);
	drain();
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "open");
	cr_assert_eq(nrounds, 0);
	fake_store_fail_saves(false);
	tick_at(T0 + 2 * HOUR + 500);
	drain();
	cr_assert_str_eq(procedure_outage_state(p, "kommune"), "announced");
	cr_assert_eq(nrounds, 1, "the same change again, saved, announced");
	tick_at(T0 + 2 * HOUR + 1000);
	drain();
	cr_assert_eq(nrounds, 1, "once");
}

/* A takeover reads on the read lane; the procedure does nothing until
 * that read is back. */
Test(procedure, with_a_store_that_answers_later_a_takeover_acts_once_read)
{
	goes_down(T0);
	attach();
	procedure_resync(p);
	int probes = ep_named("sygehus")->probes;
	tick_at(T0 + 2 * HOUR);
	cr_assert_eq(ep_named("sygehus")->probes, probes, "nothing before the read is back");
	cr_assert_eq(nrounds, 0);
	for (int i = 0; i < 3; i++)
		result_at(T0 + 2 * HOUR + i * SEC, "sygehus", false, 0);
	cr_assert_str_eq(health("sygehus"), "down");
	char err[256] = "";
	struct procedure_change *c = NULL;
	cr_assert_eq(procedure_outage_open_prepare(p, "jens (uid 1001)", "sygehus", NULL, &c, err,
						   sizeof(err)), -EAGAIN, "not on the old copy");
	cr_assert_not_null(strstr(err, "retry"), "%s", err);
	drain();
	cr_assert_eq(outages_stored(), 1, "no outage opened on the old copy meanwhile");
	cr_assert_eq(procedure_open_outages(p), 1, "the store's outage");
	tick_at(T0 + 2 * HOUR + 500);
	drain();
	cr_assert_eq(nrounds, 1, "then it acts");
}

/* ---- stepping the lanes by hand ---------------------------------------------- */

static atomic_int gates;

static void gate_work(struct store *view, void *arg)
{
	atomic_fetch_add(&gates, 1);
}

/* Waits until both lanes have done all the work out now, without running
 * its completions: the store then has every step taken so far, and the
 * procedure has applied none of them yet. */
static void lanes_idle(void)
{
	int want = atomic_load(&gates) + 2;
	store_run(store, STORE_LANE_WRITE, gate_work, NULL, NULL);
	store_run(store, STORE_LANE_READ, gate_work, NULL, NULL);
	for (int i = 0; atomic_load(&gates) < want; i++) {
		cr_assert_lt(i, 5000, "the lanes did not finish");
		usleep(1000);
	}
}

static size_t pending_notices;

static int count_notice(const struct notice_record *n, void *arg)
{
	pending_notices++;
	return 0;
}

/* A notice saved while a takeover's read is out is not sent on the old
 * copy: the read brings it, and the first tick after sends it, once. */
Test(procedure, a_notice_saved_during_a_takeovers_read_waits_for_that_read)
{
	goes_down(T0);
	attach();
	tick_at(T0 + 2 * HOUR);
	for (int step = 0;; step++) { /* the outage's save, the read for its notice, ... */
		cr_assert_lt(step, 10, "the notice was never saved");
		lanes_idle();
		pending_notices = 0;
		cr_assert_geq(store_notice_pending(store, count_notice, NULL), 0);
		if (pending_notices)
			break; /* ... the notice's save: the store has it, the procedure not yet */
		/* once: the completions done now, not those they start */
		cr_assert_geq(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
	}
	procedure_resync(p);
	drain();
	cr_assert_eq(nrounds, 0, "nothing sent while the takeover's read was out");
	tick_at(T0 + 2 * HOUR + 500);
	drain();
	cr_assert_eq(nrounds, 1, "the notice the read brought, sent once");
	complete_rounds(true);
	tick_at(T0 + 2 * HOUR + 1000);
	drain();
	cr_assert_eq(nrounds, 1, "and not again");
}

/* An outage the all-clear closed stays in the procedure until the next
 * tick: no operator closes or changes it meanwhile. */
Test(procedure, a_closed_outage_takes_no_operators_change)
{
	eps[0].queued = 12;
	goes_down(T0);
	tick_at(T0 + 2 * HOUR);
	complete_rounds(true);
	result_at(T0 + 2 * HOUR + 10 * MIN, "kommune", true, 0);
	tick_at(T0 + 2 * HOUR + 11 * MIN);
	result_at(T0 + 2 * HOUR + 12 * MIN, "kommune", true, 12);
	eps[0].queued = 0;
	cr_assert_eq(outages_stored(), 1);
	int64_t id = stored[0].id;
	attach();
	tick_at(T0 + 2 * HOUR + 13 * MIN);
	drain();
	cr_assert_eq(outages_stored(), 1);
	cr_assert_eq(stored[0].state, OUTAGE_CLOSED);
	char err[256] = "";
	struct procedure_change *c = NULL;
	cr_assert_eq(procedure_outage_close_prepare(p, "a", id, &c, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, "no open outage"), "%s", err);
	cr_assert_eq(procedure_outage_set_prepare(p, "a", id, "3h", NULL, NULL, NULL, &c, err,
						  sizeof(err)), -ENOENT);
	cr_assert_null(c);
}

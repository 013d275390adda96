/*
 * notice.c - turns the facts of an outage (struct notice_facts) into the
 * notice people read: a one-line subject, a plain-text body and a JSON
 * payload for the webhook, the fallback command and the record.
 *
 * Fed by the outage lifecycle, which knows what happened; feeds the notify
 * channels and the outage's notice log. It owns the built-in Danish and
 * English templates, the table of {{placeholders}} (notice_fields below)
 * and a deliberately small substitution engine: {{name}} and nothing else,
 * every name checked when the templates are loaded, so a typo in an
 * operator's template stops the daemon at start-up instead of reaching a
 * hospital ward as "{{contcat}}".
 *
 * Invariants: every string taken from the facts is treated as untrusted and
 * cleaned once (valid UTF-8, one line, no control or bidi characters, at
 * most VALUE_MAX bytes) before it reaches a subject, a body or the JSON;
 * the subject is one line of at most SUBJECT_MAX bytes; the body is at most
 * BODY_MAX bytes; nothing is written that is not derived from the facts or
 * the template. Times are local to the process time zone (localtime_r).
 * No I/O except reading template files, no logging, no globals.
 */
#include "notice/notice.h"

#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/base/utf8.h"
#include "codecs/msgtypes.h"
#include "base/fileio.h"
#include "notice/plain.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SUBJECT_MAX 200         /* bytes, after substitution */
#define BODY_MAX (64 * 1024)    /* bytes, after substitution */
#define VALUE_MAX 512           /* bytes of one cleaned fact string */
#define TEMPLATE_MAX (16 * 1024) /* bytes of a template file */
#define MAX_TYPE_LINES 15       /* message types listed under "affected" */
#define MAX_ORGS_PER_TYPE 6     /* organisations listed per type */

/* ---- languages ---------------------------------------------------------- */

static const char *const endpoint_kinds[] = { "hospital", "municipality", "other" };

/* Every word the placeholders write but those shared with the status page
 * (notice/plain.c: times, durations, type names, fault classes, whom to
 * phone); templates hold the rest. */
struct lang {
	const char *code;
	const char *unknown, *not_given, *not_yet, *none;
	const char *message, *messages, *waiting, *no_waiting, *type_none, *from;
	const char *more_orgs, *more_types; /* "%zu" */
	const char *oldest;                 /* "%s" age, "%s" since */
	const char *acks_overdue_one;       /* "%s" limit, "%s" delivered at */
	const char *acks_overdue;           /* "%lld", "%s" limit, "%s" oldest delivered at */
	const char *expected, *expected_passed, *no_next;
	const char *overnight_at, *overnight;
	const char *truncated;
	const char *status_link; /* "%s": [notify] status_url */
	const char *kinds[ARRAY_SIZE(endpoint_kinds)];
};

static const struct lang lang_da = {
	.code = "da",
	.unknown = "ukendt", .not_given = "ikke oplyst", .not_yet = "endnu ikke", .none = "ingen",
	.message = "meddelelse", .messages = "meddelelser", .waiting = "venter",
	.no_waiting = "ingen meddelelser venter", .type_none = "ingen venter", .from = "fra",
	.more_orgs = "og %zu andre", .more_types = "og %zu andre typer",
	.oldest = "Den ældste har ventet %s (siden %s).",
	.acks_overdue_one = "Kvittering mangler for 1 leveret meddelelse (over %s; leveret %s).",
	.acks_overdue = "Kvittering mangler for %lld leverede meddelelser (over %s; den ældste "
			"leveret %s).",
	.expected = "til %s (ca. %s endnu)",
	.expected_passed = "til %s (tidspunktet er overskredet)",
	.no_next = "ingen planlagt; der kommer besked, når fejlen er rettet",
	.overnight_at = "Nedbruddet sluttede i nattens løb kl. %s.",
	.overnight = "Nedbruddet sluttede i nattens løb.",
	.truncated = "[afkortet]",
	.status_link = "Følg status her: %s",
	.kinds = { "sygehus", "kommune", "anden part" },
};

static const struct lang lang_en = {
	.code = "en",
	.unknown = "unknown", .not_given = "not given", .not_yet = "not yet", .none = "none",
	.message = "message", .messages = "messages", .waiting = "waiting",
	.no_waiting = "no messages are waiting", .type_none = "none waiting", .from = "from",
	.more_orgs = "and %zu more", .more_types = "and %zu more types",
	.oldest = "The oldest has been waiting %s (since %s).",
	.acks_overdue_one = "No acknowledgement yet for 1 delivered message (over %s; delivered "
			    "%s).",
	.acks_overdue = "No acknowledgement yet for %lld delivered messages (over %s; the oldest "
			"delivered %s).",
	.expected = "until %s (about %s from now)",
	.expected_passed = "until %s (that time has passed)",
	.no_next = "none planned; a notice follows when the fault is fixed",
	.overnight_at = "The outage ended during the night, at %s.",
	.overnight = "The outage ended during the night.",
	.truncated = "[truncated]",
	.status_link = "Follow the status here: %s",
	.kinds = { "hospital", "municipality", "other party" },
};

/* ---- built-in templates ------------------------------------------------- */

/* Indexed by enum notice_kind. Each line either reads well on its own or is
 * dropped: a line made only of placeholders that render empty disappears. */
static const char *const builtin_da[NOTICE_KIND_COUNT] = {
	[NOTICE_INITIAL] =
		"Subject: EDI-nedbrud: {{organisation}} ({{endpoint}}) - meddelelser venter\n"
		"EDI-forbindelsen til {{organisation}} ({{endpoint}}) har været nede siden "
		"{{started}} ({{duration}}).\n"
		"Meddelelser til {{organisation}} bliver ikke leveret lige nu. De går ikke tabt: "
		"de venter og leveres automatisk, når forbindelsen virker igen.\n"
		"\n"
		"Hvad gør jeg?\n"
		"{{fallback}}\n"
		"\n"
		"Årsag til fejl: {{cause}}\n"
		"Berørte meddelelser: {{affected}}\n"
		"Forventet nedetid: {{expected}}\n"
		"Kontaktperson: {{contact}}\n"
		"\n"
		"Næste status: {{next_status}}\n"
		"{{status_link}}\n"
		"\n"
		"Sendt automatisk af EDI-overvågningen {{now}} (nedbrud nr. {{outage_id}}).\n",
	[NOTICE_UPDATE] =
		"Subject: EDI-nedbrud, status: {{organisation}} ({{endpoint}}) - stadig nede\n"
		"EDI-forbindelsen til {{organisation}} ({{endpoint}}) er stadig nede. "
		"Den har været nede siden {{started}} ({{duration}}).\n"
		"Ventende meddelelser leveres automatisk, når forbindelsen virker igen.\n"
		"\n"
		"Hvad gør jeg?\n"
		"{{fallback}}\n"
		"\n"
		"Årsag til fejl: {{cause}}\n"
		"Berørte meddelelser: {{affected}}\n"
		"Forventet nedetid: {{expected}}\n"
		"Kontaktperson: {{contact}}\n"
		"\n"
		"Næste status: {{next_status}}\n"
		"{{status_link}}\n"
		"\n"
		"Sendt automatisk af EDI-overvågningen {{now}} (nedbrud nr. {{outage_id}}).\n",
	[NOTICE_ALLCLEAR] =
		"Subject: EDI-nedbrud løst: {{organisation}} ({{endpoint}}) - "
		"forbindelsen virker igen\n"
		"EDI-forbindelsen til {{organisation}} ({{endpoint}}) virker igen siden {{ended}}.\n"
		"{{overnight}}\n"
		"Alle ventende meddelelser er leveret.\n"
		"\n"
		"Hvad gør jeg?\n"
		"{{fallback}}\n"
		"\n"
		"Varighed: {{duration}} (fra {{started}} til {{ended}})\n"
		"Meddelelser leveret forsinket: {{delivered_late}}\n"
		"Årsag til fejl: {{cause}}\n"
		"Kontaktperson: {{contact}}\n"
		"\n"
		"Der kommer ikke flere meddelelser om dette nedbrud.\n"
		"{{status_link}}\n"
		"\n"
		"Sendt automatisk af EDI-overvågningen {{now}} (nedbrud nr. {{outage_id}}).\n",
	[NOTICE_SUMMARY] =
		"Subject: EDI-nedbrud afsluttet: {{organisation}} ({{endpoint}}) - opsummering\n"
		"EDI-forbindelsen til {{organisation}} ({{endpoint}}) var nede fra {{started}} "
		"til {{ended}} ({{duration}}).\n"
		"{{overnight}}\n"
		"Der blev ikke sendt besked, mens det varede. Forbindelsen virker igen, "
		"og ventende meddelelser er leveret.\n"
		"\n"
		"Hvad gør jeg?\n"
		"{{fallback}}\n"
		"\n"
		"Årsag til fejl: {{cause}}\n"
		"Berørte meddelelser: {{affected}}\n"
		"Forventet nedetid: ingen, nedbruddet er slut (varede {{duration}})\n"
		"Meddelelser leveret forsinket: {{delivered_late}}\n"
		"Kontaktperson: {{contact}}\n"
		"\n"
		"Der kommer ikke flere meddelelser om dette nedbrud.\n"
		"{{status_link}}\n"
		"\n"
		"Sendt automatisk af EDI-overvågningen {{now}} (nedbrud nr. {{outage_id}}).\n",
	[NOTICE_PLANNED] =
		"Subject: Planlagt EDI-nedlukning: {{organisation}} ({{endpoint}}) "
		"{{window_from}} - {{window_to}}\n"
		"EDI-forbindelsen til {{organisation}} ({{endpoint}}) lukkes planmæssigt ned "
		"fra {{window_from}} til {{window_to}} ({{duration}}).\n"
		"Meddelelser i perioden går ikke tabt: de venter og leveres automatisk bagefter.\n"
		"\n"
		"Hvad gør jeg i perioden?\n"
		"{{fallback}}\n"
		"\n"
		"Årsag til fejl: planlagt nedlukning - {{reason}}\n"
		"Berørte meddelelser: {{affected}}\n"
		"Forventet nedetid: {{duration}} (fra {{window_from}} til {{window_to}})\n"
		"Kontaktperson: {{contact}}\n"
		"{{status_link}}\n"
		"\n"
		"Sendt automatisk af EDI-overvågningen {{now}}.\n",
};

static const char *const builtin_en[NOTICE_KIND_COUNT] = {
	[NOTICE_INITIAL] =
		"Subject: EDI outage: {{organisation}} ({{endpoint}}) - messages are waiting\n"
		"The EDI connection to {{organisation}} ({{endpoint}}) has been down since "
		"{{started}} ({{duration}}).\n"
		"Messages to {{organisation}} are not being delivered. They are not lost: "
		"they wait and are delivered automatically when the connection works again.\n"
		"\n"
		"What do I do?\n"
		"{{fallback}}\n"
		"\n"
		"Cause of the fault: {{cause}}\n"
		"Affected messages: {{affected}}\n"
		"Expected downtime: {{expected}}\n"
		"Contact person: {{contact}}\n"
		"\n"
		"Next status: {{next_status}}\n"
		"{{status_link}}\n"
		"\n"
		"Sent automatically by the EDI monitoring at {{now}} (outage no. {{outage_id}}).\n",
	[NOTICE_UPDATE] =
		"Subject: EDI outage, status update: {{organisation}} ({{endpoint}}) - still down\n"
		"The EDI connection to {{organisation}} ({{endpoint}}) is still down. "
		"It has been down since {{started}} ({{duration}}).\n"
		"Waiting messages are delivered automatically when the connection works again.\n"
		"\n"
		"What do I do?\n"
		"{{fallback}}\n"
		"\n"
		"Cause of the fault: {{cause}}\n"
		"Affected messages: {{affected}}\n"
		"Expected downtime: {{expected}}\n"
		"Contact person: {{contact}}\n"
		"\n"
		"Next status: {{next_status}}\n"
		"{{status_link}}\n"
		"\n"
		"Sent automatically by the EDI monitoring at {{now}} (outage no. {{outage_id}}).\n",
	[NOTICE_ALLCLEAR] =
		"Subject: EDI outage resolved: {{organisation}} ({{endpoint}}) - "
		"connection working again\n"
		"The EDI connection to {{organisation}} ({{endpoint}}) has worked again "
		"since {{ended}}.\n"
		"{{overnight}}\n"
		"All waiting messages have been delivered.\n"
		"\n"
		"What do I do?\n"
		"{{fallback}}\n"
		"\n"
		"Duration: {{duration}} (from {{started}} to {{ended}})\n"
		"Messages delivered late: {{delivered_late}}\n"
		"Cause of the fault: {{cause}}\n"
		"Contact person: {{contact}}\n"
		"\n"
		"No further notices will be sent about this outage.\n"
		"{{status_link}}\n"
		"\n"
		"Sent automatically by the EDI monitoring at {{now}} (outage no. {{outage_id}}).\n",
	[NOTICE_SUMMARY] =
		"Subject: EDI outage ended: {{organisation}} ({{endpoint}}) - summary\n"
		"The EDI connection to {{organisation}} ({{endpoint}}) was down from {{started}} "
		"to {{ended}} ({{duration}}).\n"
		"{{overnight}}\n"
		"No notice was sent while it lasted. The connection works again "
		"and waiting messages have been delivered.\n"
		"\n"
		"What do I do?\n"
		"{{fallback}}\n"
		"\n"
		"Cause of the fault: {{cause}}\n"
		"Affected messages: {{affected}}\n"
		"Expected downtime: none, the outage is over (it lasted {{duration}})\n"
		"Messages delivered late: {{delivered_late}}\n"
		"Contact person: {{contact}}\n"
		"\n"
		"No further notices will be sent about this outage.\n"
		"{{status_link}}\n"
		"\n"
		"Sent automatically by the EDI monitoring at {{now}} (outage no. {{outage_id}}).\n",
	[NOTICE_PLANNED] =
		"Subject: Planned EDI shutdown: {{organisation}} ({{endpoint}}) "
		"{{window_from}} - {{window_to}}\n"
		"The EDI connection to {{organisation}} ({{endpoint}}) will be shut down as "
		"planned from {{window_from}} to {{window_to}} ({{duration}}).\n"
		"Messages sent in that period are not lost: they wait and are delivered "
		"automatically afterwards.\n"
		"\n"
		"What do I do meanwhile?\n"
		"{{fallback}}\n"
		"\n"
		"Cause of the fault: planned shutdown - {{reason}}\n"
		"Affected messages: {{affected}}\n"
		"Expected downtime: {{duration}} (from {{window_from}} to {{window_to}})\n"
		"Contact person: {{contact}}\n"
		"{{status_link}}\n"
		"\n"
		"Sent automatically by the EDI monitoring at {{now}}.\n",
};

static const char *const kind_names[NOTICE_KIND_COUNT] = {
	[NOTICE_INITIAL] = "initial", [NOTICE_UPDATE] = "update", [NOTICE_ALLCLEAR] = "allclear",
	[NOTICE_SUMMARY] = "summary", [NOTICE_PLANNED] = "planned",
};

static void sb_rstrip(struct strbuf *b)
{
	while (b->len > 0 && (b->p[b->len - 1] == ' ' || b->p[b->len - 1] == '\t'))
		b->p[--b->len] = '\0';
}

/* ---- UTF-8 and cleaning of untrusted strings ---------------------------- */

/* Characters that would break a line or reorder what a mail client shows:
 * C0/C1 controls, DEL, line/paragraph separators, bidi embeddings and
 * isolates. */
static bool is_unsafe(uint32_t c)
{
	return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
	       (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

/* One character of s into b: invalid bytes become U+FFFD, unsafe ones a
 * space (runs of spaces collapse). Returns the bytes consumed. */
static size_t clean_char(struct strbuf *b, const char *s, size_t n)
{
	uint32_t c;
	size_t k = utf8_decode(s, n, &c);

	if (k == 0) {
		strbuf_puts(b, "\xEF\xBF\xBD");
		return 1;
	}
	if (is_unsafe(c) || c == ' ') {
		if (b->len > 0 && b->p[b->len - 1] != ' ')
			strbuf_add(b, " ", 1);
		return k;
	}
	strbuf_add(b, s, k);
	return k;
}

/* s[0..n) cleaned into b as one line, without leading or trailing spaces. */
static void clean_into(struct strbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n && !b->cut; i += clean_char(b, s + i, n - i))
		;
	sb_rstrip(b);
}

/* A cleaned, owned copy of an untrusted fact string; NULL stays NULL. */
static char *clean_str(const char *s)
{
	struct strbuf b = { .limit = VALUE_MAX };

	if (s == NULL)
		return NULL;
	clean_into(&b, s, strlen(s));
	return strbuf_take(&b);
}

/* ---- times and durations ------------------------------------------------ */

static bool local_tm(int64_t ms, struct tm *tm)
{
	time_t t = (time_t)(ms / 1000);

	return ms > 0 && localtime_r(&t, tm) != NULL;
}

/* The one date format of everything people read (notice/plain.c). */
static void put_time(struct strbuf *b, const struct lang *l, int64_t ms, const char *unknown)
{
	plain_time(b, l->code, ms, unknown);
}

/* to - from in ms, never negative, saturating. */
static int64_t span(int64_t from, int64_t to)
{
	int64_t d;

	if (__builtin_sub_overflow(to, from, &d))
		return to > from ? INT64_MAX : 0;
	return d > 0 ? d : 0;
}

/* Rounded down: an outage has lasted at least this long. */
static void put_duration(struct strbuf *b, const struct lang *l, int64_t ms)
{
	plain_duration(b, l->code, ms);
}

/* "2026-11-27T14:05:00+01:00" into buf (sized for any struct tm); false for 0. */
static bool iso8601(int64_t ms, char *buf, size_t len)
{
	struct tm tm;

	if (!local_tm(ms, &tm))
		return false;
	long off = tm.tm_gmtoff / 60, aoff = off < 0 ? -off : off;
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
		 aoff / 60, aoff % 60);
	return true;
}

/* ---- rendering context -------------------------------------------------- */

struct clean_affected {
	char *type, *organisation;
	int64_t count;
};

/* The facts with every string cleaned once. */
struct ctx {
	const struct notice_facts *f;
	const struct lang *l;
	char *endpoint, *organisation, *endpoint_kind, *cause_fault, *cause_text, *contact,
		*reason, *fallback_contact, *fallback_note, *support_phone, *status_url;
	struct clean_affected *affected;
};

static void ctx_init(struct ctx *x, const struct notice_facts *f, const struct lang *l)
{
	*x = (struct ctx){ .f = f, .l = l };
	x->endpoint = clean_str(f->endpoint);
	x->organisation = clean_str(f->organisation);
	x->endpoint_kind = clean_str(f->endpoint_kind);
	x->cause_fault = clean_str(f->cause_fault);
	x->cause_text = clean_str(f->cause_text);
	x->contact = clean_str(f->contact);
	x->reason = clean_str(f->reason);
	x->fallback_contact = clean_str(f->fallback_contact);
	x->fallback_note = clean_str(f->fallback_note);
	x->support_phone = clean_str(f->support_phone);
	x->status_url = clean_str(f->status_url);
	/* Only the operator's cause is words meant for people; an error text
	 * (paths, errno, library messages) stays in the log. */
	if (!f->cause_by_operator) {
		free(x->cause_text);
		x->cause_text = NULL;
	}
	x->affected = xcalloc(f->naffected + 1, sizeof(*x->affected));
	for (size_t i = 0; i < f->naffected; i++)
		x->affected[i] = (struct clean_affected){
			.type = clean_str(f->affected[i].type),
			.organisation = clean_str(f->affected[i].organisation),
			.count = f->affected[i].count > 0 ? f->affected[i].count : 0,
		};
}

static void ctx_done(struct ctx *x)
{
	for (size_t i = 0; i < x->f->naffected; i++) {
		free(x->affected[i].type);
		free(x->affected[i].organisation);
	}
	free(x->affected);
	free(x->endpoint);
	free(x->organisation);
	free(x->endpoint_kind);
	free(x->cause_fault);
	free(x->cause_text);
	free(x->contact);
	free(x->reason);
	free(x->fallback_contact);
	free(x->fallback_note);
	free(x->support_phone);
	free(x->status_url);
}

static void put_or(struct strbuf *b, const char *s, const char *fallback)
{
	strbuf_puts(b, str_empty(s) ? fallback : s);
}

/* ---- the affected-messages block ---------------------------------------- */

static int cmp_affected(const void *a, const void *b)
{
	const struct clean_affected *x = a, *y = b;
	int c = strcmp(x->type ? x->type : "", y->type ? y->type : "");

	return c ? c : strcmp(x->organisation ? x->organisation : "",
			      y->organisation ? y->organisation : "");
}

static bool same_type(const struct clean_affected *a, const struct clean_affected *b)
{
	return strcmp(a->type ? a->type : "", b->type ? b->type : "") == 0;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t s;

	return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

/* The rows of one organisation starting at r[i] (rows are sorted): their
 * summed count in *c; returns the index of its last row. Only a named
 * organisation with messages waiting is listed. */
static size_t org_run(const struct clean_affected *r, size_t n, size_t i, int64_t *c, bool *listed)
{
	*c = r[i].count;
	while (i + 1 < n && cmp_affected(&r[i], &r[i + 1]) == 0)
		*c = add_sat(*c, r[++i].count);
	*listed = *c > 0 && !str_empty(r[i].organisation);
	return i;
}

/* "8 fra A, 4 fra B" for one type's rows, or "fra A" when A is the only
 * one. Returns how many organisations have messages waiting. */
static size_t put_orgs(struct strbuf *b, const struct lang *l, const struct clean_affected *r,
		       size_t n)
{
	size_t orgs = 0, shown = 0;
	int64_t c;
	bool listed;

	for (size_t i = 0; i < n; i++)
		i = org_run(r, n, i, &c, &listed), orgs += listed;
	for (size_t i = 0; i < n && shown < MAX_ORGS_PER_TYPE; i++) {
		i = org_run(r, n, i, &c, &listed);
		if (!listed)
			continue;
		strbuf_puts(b, shown++ ? ", " : "");
		if (orgs > 1)
			strbuf_printf(b, "%lld ", (long long)c);
		strbuf_printf(b, "%s %s", l->from, r[i].organisation);
	}
	if (orgs > MAX_ORGS_PER_TYPE) {
		strbuf_puts(b, ", ");
		strbuf_printf(b, l->more_orgs, orgs - MAX_ORGS_PER_TYPE);
	}
	return orgs;
}

/* "\n  - Indlæggelsesadvis (XDIS20): 12 (8 fra A, 4 fra B)" for the n rows
 * of one type. */
static void put_type_line(struct strbuf *b, const struct lang *l, const struct clean_affected *r,
			  size_t n)
{
	struct strbuf orgs = { 0 };
	int64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total = add_sat(total, r[i].count);
	strbuf_puts(b, "\n  - ");
	plain_msgtype(b, l->code, r[0].type, l->unknown);
	if (total == 0) {
		strbuf_printf(b, ": %s", l->type_none);
		return;
	}
	strbuf_printf(b, ": %lld", (long long)total);
	if (put_orgs(&orgs, l, r, n) > 0)
		strbuf_printf(b, " (%s)", orgs.p);
	free(orgs.p);
}

/* One line per message type, alphabetically, at most MAX_TYPE_LINES. */
static void put_type_lines(struct strbuf *b, const struct ctx *x)
{
	size_t n = x->f->naffected, types = 0;
	_cleanup_free_ struct clean_affected *rows = xcalloc(n, sizeof(*rows));

	memcpy(rows, x->affected, n * sizeof(*rows));
	qsort(rows, n, sizeof(*rows), cmp_affected);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && same_type(&rows[i], &rows[j]); j++)
			;
		if (types++ < MAX_TYPE_LINES)
			put_type_line(b, x->l, rows + i, j - i);
	}
	if (types > MAX_TYPE_LINES) {
		strbuf_puts(b, "\n  - ");
		strbuf_printf(b, x->l->more_types, types - MAX_TYPE_LINES);
	}
}

/* "\n  Den ældste har ventet 2 t (siden 27-11-2026 kl. 14:05)." */
static void put_oldest(struct strbuf *b, const struct ctx *x)
{
	struct strbuf age = { 0 }, since = { 0 };

	put_duration(&age, x->l, span(x->f->oldest_received_at, x->f->now));
	put_time(&since, x->l, x->f->oldest_received_at, x->l->unknown);
	strbuf_puts(b, "\n  ");
	strbuf_printf(b, x->l->oldest, age.p, since.p);
	free(age.p);
	free(since.p);
}

/* "\n  Kvittering mangler for 3 leverede meddelelser (over 30 min; ...)":
 * delivered, but their receiver has not acknowledged them in time. */
static void put_acks_overdue(struct strbuf *b, const struct ctx *x)
{
	const struct notice_facts *f = x->f;
	struct strbuf limit = { 0 }, since = { 0 };

	put_duration(&limit, x->l, f->ack_timeout_ms);
	put_time(&since, x->l, f->acks_overdue_since, x->l->unknown);
	strbuf_puts(b, "\n  ");
	if (f->acks_overdue == 1)
		strbuf_printf(b, x->l->acks_overdue_one, limit.p, since.p);
	else
		strbuf_printf(b, x->l->acks_overdue, (long long)f->acks_overdue, limit.p, since.p);
	free(limit.p);
	free(since.p);
}

/* "13 meddelelser venter", one line per type, then the oldest one's age,
 * then those delivered whose acknowledgement is overdue. */
static void f_affected(struct strbuf *b, const struct ctx *x)
{
	const struct notice_facts *f = x->f;
	int64_t total = f->queued > 0 ? f->queued : 0;

	for (size_t i = 0; f->queued <= 0 && i < f->naffected; i++)
		total = add_sat(total, x->affected[i].count); /* queued not given */
	if (total == 0)
		strbuf_puts(b, x->l->no_waiting);
	else
		strbuf_printf(b, "%lld %s %s", (long long)total,
			  total == 1 ? x->l->message : x->l->messages, x->l->waiting);
	if (f->naffected > 0)
		put_type_lines(b, x);
	if (f->oldest_received_at > 0 && total > 0)
		put_oldest(b, x);
	if (f->acks_overdue > 0)
		put_acks_overdue(b, x);
}

/* ---- the placeholders --------------------------------------------------- */

static void f_organisation(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->organisation, str_empty(x->endpoint) ? x->l->unknown : x->endpoint);
}

static void f_endpoint(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->endpoint, x->l->unknown);
}

static void f_endpoint_kind(struct strbuf *b, const struct ctx *x)
{
	for (size_t i = 0; i < ARRAY_SIZE(endpoint_kinds); i++)
		if (x->endpoint_kind && strcmp(x->endpoint_kind, endpoint_kinds[i]) == 0) {
			strbuf_puts(b, x->l->kinds[i]);
			return;
		}
	put_or(b, x->endpoint_kind, x->l->unknown);
}

static void f_outage_id(struct strbuf *b, const struct ctx *x)
{
	strbuf_printf(b, "%lld", (long long)x->f->outage_id);
}

static void f_started(struct strbuf *b, const struct ctx *x)
{
	put_time(b, x->l, x->f->started_at, x->l->unknown);
}

static void f_ended(struct strbuf *b, const struct ctx *x)
{
	put_time(b, x->l, x->f->ended_at, x->l->not_yet);
}

static void f_window_to(struct strbuf *b, const struct ctx *x)
{
	put_time(b, x->l, x->f->ended_at, x->l->unknown);
}

static void f_now(struct strbuf *b, const struct ctx *x)
{
	put_time(b, x->l, x->f->now, x->l->unknown);
}

/* Start to end, or to now while it lasts. */
static void f_duration(struct strbuf *b, const struct ctx *x)
{
	const struct notice_facts *f = x->f;

	if (f->started_at <= 0)
		strbuf_puts(b, x->l->unknown);
	else
		put_duration(b, x->l, span(f->started_at, f->ended_at > 0 ? f->ended_at : f->now));
}

/* The operator's words when given, else the fault class in words (never
 * the error text: ctx_init dropped it). */
static void f_cause(struct strbuf *b, const struct ctx *x)
{
	if (!str_empty(x->cause_text))
		strbuf_puts(b, x->cause_text);
	else if (!str_empty(x->cause_fault))
		strbuf_puts(b, plain_fault(x->cause_fault, x->l->code));
	else
		strbuf_puts(b, x->l->unknown);
}

static void f_queued(struct strbuf *b, const struct ctx *x)
{
	strbuf_printf(b, "%lld", (long long)(x->f->queued > 0 ? x->f->queued : 0));
}

static void f_oldest_age(struct strbuf *b, const struct ctx *x)
{
	if (x->f->oldest_received_at <= 0)
		strbuf_puts(b, x->l->none);
	else
		put_duration(b, x->l, span(x->f->oldest_received_at, x->f->now));
}

/* "til 27-11-2026 kl. 17:00 (ca. 2 t endnu)", or "ukendt". */
static void f_expected(struct strbuf *b, const struct ctx *x)
{
	const struct notice_facts *f = x->f;
	struct strbuf at = { 0 }, left = { 0 };

	if (f->expected_end <= 0) {
		strbuf_puts(b, x->l->unknown);
		return;
	}
	put_time(&at, x->l, f->expected_end, x->l->unknown);
	put_duration(&left, x->l, span(f->now, f->expected_end));
	if (f->expected_end > f->now)
		strbuf_printf(b, x->l->expected, at.p, left.p);
	else
		strbuf_printf(b, x->l->expected_passed, at.p);
	free(at.p);
	free(left.p);
}

static void f_contact(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->contact, x->l->not_given);
}

/* Whom to phone and what to do meanwhile (notice/plain.c); once the outage
 * is over, that nothing is needed now. */
static void f_fallback(struct strbuf *b, const struct ctx *x)
{
	enum notice_kind k = x->f->kind;
	struct plain_fallback fb = { x->fallback_contact, x->fallback_note, x->support_phone };
	plain_fallback(b, x->l->code, &fb, k == NOTICE_ALLCLEAR || k == NOTICE_SUMMARY);
}

static void f_fallback_contact(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->fallback_contact, x->support_phone ? x->support_phone : x->l->not_given);
}

/* "Følg status her: URL", or nothing (the line drops) without a URL. */
static void f_status_link(struct strbuf *b, const struct ctx *x)
{
	if (!str_empty(x->status_url))
		strbuf_printf(b, x->l->status_link, x->status_url);
}

static void f_status_url(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->status_url, "");
}

static void f_next_status(struct strbuf *b, const struct ctx *x)
{
	put_time(b, x->l, x->f->next_status_at, x->l->no_next);
}

static void f_delivered_late(struct strbuf *b, const struct ctx *x)
{
	strbuf_printf(b, "%lld", (long long)(x->f->delivered_late > 0 ? x->f->delivered_late : 0));
}

static void f_reason(struct strbuf *b, const struct ctx *x)
{
	put_or(b, x->reason, x->l->not_given);
}

static void f_overnight(struct strbuf *b, const struct ctx *x)
{
	struct tm tm;

	if (!x->f->ended_overnight)
		return;
	if (!local_tm(x->f->ended_at, &tm)) {
		strbuf_puts(b, x->l->overnight);
		return;
	}
	char hhmm[32];
	snprintf(hhmm, sizeof(hhmm), "%02d:%02d", tm.tm_hour, tm.tm_min);
	strbuf_printf(b, x->l->overnight_at, hhmm);
}

typedef void field_fn(struct strbuf *b, const struct ctx *x);

/* Every placeholder a template may use, and what it is made of. Values are
 * single lines except {{affected}}, whose type lines follow its first line,
 * and {{fallback}}, whose note does. */
static const struct field {
	const char *name;
	field_fn *fn;
	const char *doc;
} notice_fields[] = {
	{ "organisation", f_organisation, "organisation's display name (else the endpoint name)" },
	{ "endpoint", f_endpoint, "endpoint name" },
	{ "endpoint_kind", f_endpoint_kind, "sygehus/kommune/anden part; hospital/municipality/..." },
	{ "outage_id", f_outage_id, "outage number (0 for a planned shutdown)" },
	{ "started", f_started, "started_at, local time" },
	{ "ended", f_ended, "ended_at, local time; \"endnu ikke\"/\"not yet\" when 0" },
	{ "now", f_now, "when the notice was composed, local time" },
	{ "duration", f_duration, "started_at to ended_at (or to now while it lasts)" },
	{ "cause", f_cause, "operator's cause, or the fault class in words" },
	{ "affected", f_affected, "waiting total; a line per type with organisations; oldest age; "
				  "delivered ones whose acknowledgement is overdue" },
	{ "queued", f_queued, "messages waiting in all" },
	{ "oldest_age", f_oldest_age, "age of the oldest waiting message, or \"ingen\"/\"none\"" },
	{ "expected", f_expected, "expected end and time remaining, or \"ukendt\"/\"unknown\"" },
	{ "contact", f_contact, "contact person, or \"ikke oplyst\"/\"not given\"" },
	{ "next_status", f_next_status, "when the next status is sent, or that none is planned" },
	{ "delivered_late", f_delivered_late, "messages delivered after the start" },
	{ "reason", f_reason, "planned shutdown: the operator's reason" },
	{ "window_from", f_started, "planned shutdown: window start, local time" },
	{ "window_to", f_window_to, "planned shutdown: window end, local time" },
	{ "overnight", f_overnight, "a sentence when the outage ended overnight, else empty" },
	{ "fallback", f_fallback, "whom to phone (fallback_contact, else support_phone) and "
				  "fallback_note on a line of its own; after the outage: nothing" },
	{ "fallback_contact", f_fallback_contact, "whom to phone, else support_phone" },
	{ "status_link", f_status_link, "\"Følg status her: URL\" ([notify] status_url), or empty" },
	{ "status_url", f_status_url, "[notify] status_url, or empty" },
};

static const struct field *field_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(notice_fields); i++)
		if (strlen(notice_fields[i].name) == len &&
		    memcmp(notice_fields[i].name, name, len) == 0)
			return &notice_fields[i];
	return NULL;
}

/* ---- templates ---------------------------------------------------------- */

struct template {
	char *subject; /* one line, placeholders checked */
	char *body;    /* ends in "\n", placeholders checked */
};

struct notice_templates {
	const struct lang *lang;
	struct template kind[NOTICE_KIND_COUNT];
};

static int line_of(const char *text, const char *at)
{
	int line = 1;

	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

/* Every {{...}} in text names a field; else the error names file and line. */
static int check_placeholders(const char *text, const char *file, char *err, size_t errlen)
{
	for (const char *p = text; (p = strstr(p, "{{")) != NULL;) {
		const char *close = strstr(p + 2, "}}");
		const char *nl = strchr(p, '\n');
		if (!close || (nl && nl < close)) {
			snprintf(err, errlen, "%s: unclosed placeholder \"{{\" (line %d)", file,
				 line_of(text, p));
			return -EINVAL;
		}
		if (!field_find(p + 2, (size_t)(close - p - 2))) {
			int n = (int)(close - p - 2);
			snprintf(err, errlen, "%s: unknown placeholder {{%.*s%s}} (line %d)", file,
				 n > 40 ? 40 : n, p + 2, n > 40 ? "..." : "", line_of(text, p));
			return -EINVAL;
		}
		p = close + 2;
	}
	return 0;
}

/* A copy of text without a UTF-8 byte order mark and with CRLF as LF, so
 * a template saved by a Windows editor works. */
static char *normalise(const char *text, size_t len)
{
	struct strbuf b = { 0 };

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		text += 3, len -= 3;
	for (size_t i = 0; i < len; i++)
		if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n'))
			strbuf_add(&b, text + i, 1);
	return strbuf_take(&b);
}

/* Body without leading blank lines, ending in exactly one "\n". */
static char *tidy_body(const char *s)
{
	struct strbuf b = { 0 };

	while (*s == '\n')
		s++;
	strbuf_puts(&b, s);
	while (b.len > 0 && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == ' '))
		b.p[--b.len] = '\0';
	strbuf_add(&b, "\n", 1);
	return strbuf_take(&b);
}

/* The text of the "Subject:" line, trimmed; NULL when there is none. */
static char *subject_of(const char *text)
{
	if (strncasecmp(text, "Subject:", 8) != 0)
		return NULL;
	const char *s = text + 8 + strspn(text + 8, " \t");
	size_t n = strcspn(s, "\n");

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n ? xasprintf("%.*s", (int)n, s) : NULL;
}

static int template_parse(const char *raw, size_t len, const char *file, struct template *out,
			  char *err, size_t errlen)
{
	if (memchr(raw, '\0', len) || !utf8_valid(raw, len)) {
		snprintf(err, errlen, "%s: not valid UTF-8 text", file);
		return -EINVAL;
	}
	_cleanup_free_ char *text = normalise(raw, len);
	int r = check_placeholders(text, file, err, errlen);
	if (r < 0)
		return r;
	out->subject = subject_of(text);
	if (!out->subject) {
		snprintf(err, errlen, "%s: the first line must be \"Subject: ...\" (not empty)", file);
		return -EINVAL;
	}
	const char *nl = strchr(text, '\n');
	out->body = tidy_body(nl ? nl + 1 : "");
	return 0;
}

/* Reads <dir>/<lang>/<kind>.txt into the template. 1 when loaded, 0 when
 * there is no such file (the built-in stays), negative errno on error. */
static int template_read(const char *dir, const char *lang, enum notice_kind k,
			 struct template *out, char *err, size_t errlen)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/%s.txt", dir, lang, kind_names[k]);
	_cleanup_free_ uint8_t *raw = NULL;
	size_t len = 0;
	int r = read_file_at(AT_FDCWD, path, TEMPLATE_MAX, &raw, &len);

	if (r == -ENOENT)
		return 0;
	if (r == -EFBIG)
		snprintf(err, errlen, "%s: larger than %d bytes", path, TEMPLATE_MAX);
	else if (r == -ELOOP)
		snprintf(err, errlen, "%s: a symbolic link; templates must be regular files", path);
	else if (r < 0)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
	if (r < 0)
		return r;
	r = template_parse((const char *)raw, len, path, out, err, errlen);
	return r < 0 ? r : 1;
}

static const struct lang *lang_find(const char *code)
{
	if (code == NULL || strcmp(code, "da") == 0)
		return &lang_da;
	return strcmp(code, "en") == 0 ? &lang_en : NULL;
}

static int template_builtin(const struct lang *l, enum notice_kind k, struct template *out,
			    char *err, size_t errlen)
{
	const char *text = (l == &lang_da ? builtin_da : builtin_en)[k];
	_cleanup_free_ char *name = xasprintf("built-in %s/%s", l->code, kind_names[k]);

	return template_parse(text, strlen(text), name, out, err, errlen);
}

struct notice_templates *notice_templates_load(const char *lang, const char *dir, char *err,
					       size_t errlen)
{
	const struct lang *l = lang_find(lang);

	if (!l) {
		snprintf(err, errlen, "language must be \"da\" or \"en\", not \"%.20s\"", lang);
		return NULL;
	}
	struct notice_templates *t = xcalloc(1, sizeof(*t));
	t->lang = l;
	for (int k = 0; k < NOTICE_KIND_COUNT; k++) {
		int r = dir ? template_read(dir, l->code, k, &t->kind[k], err, errlen) : 0;
		if (r == 0)
			r = template_builtin(l, k, &t->kind[k], err, errlen);
		if (r < 0) {
			notice_templates_free(t);
			return NULL;
		}
	}
	return t;
}

void notice_templates_free(struct notice_templates *t)
{
	if (!t)
		return;
	for (int k = 0; k < NOTICE_KIND_COUNT; k++) {
		free(t->kind[k].subject);
		free(t->kind[k].body);
	}
	free(t);
}

/* ---- substitution ------------------------------------------------------- */

/* Appends s[0..n) with each {{name}} replaced by its value. Templates were
 * checked at load, so an unknown name cannot occur; were it to, it is
 * copied as it stands rather than dropped. */
static void expand(struct strbuf *out, const char *s, size_t n, const struct ctx *x)
{
	const char *end = s + n;

	while (s < end) {
		const char *open = memmem(s, (size_t)(end - s), "{{", 2);
		const char *close = open ? memmem(open + 2, (size_t)(end - open - 2), "}}", 2) : NULL;
		const struct field *fl = close ? field_find(open + 2, (size_t)(close - open - 2)) : NULL;
		if (!fl) {
			strbuf_add(out, s, open ? (size_t)(open + 2 - s) : (size_t)(end - s));
			s = open ? open + 2 : end;
			continue;
		}
		strbuf_add(out, s, (size_t)(open - s));
		fl->fn(out, x);
		s = close + 2;
	}
}

/* One line, control characters as spaces, runs of spaces collapsed, at
 * most SUBJECT_MAX bytes cut at a character boundary. */
static char *render_subject(const struct template *tp, const struct ctx *x)
{
	struct strbuf raw = { .limit = 4 * SUBJECT_MAX }, b = { .limit = SUBJECT_MAX };

	expand(&raw, tp->subject, strlen(tp->subject), x);
	clean_into(&b, raw.p ? raw.p : "", raw.len);
	free(raw.p);
	return strbuf_take(&b);
}

/* Adds a rendered line, dropping a line whose placeholders all came out
 * empty, and never two blank lines in a row or a blank line first. */
static void add_line(struct strbuf *out, const struct strbuf *line, size_t template_len)
{
	bool blank = line->len == 0;

	if (blank && template_len > 0)
		return;
	if (blank && (out->len == 0 || (out->len >= 2 && out->p[out->len - 2] == '\n')))
		return;
	strbuf_add(out, line->p ? line->p : "", line->len);
	strbuf_add(out, "\n", 1);
}

static char *render_body(const struct template *tp, const struct ctx *x)
{
	struct strbuf out = { .limit = BODY_MAX }, line = { .limit = BODY_MAX };

	for (const char *p = tp->body; *p;) {
		size_t n = strcspn(p, "\n");
		line.len = 0, line.cut = false;
		expand(&line, p, n, x);
		sb_rstrip(&line);
		add_line(&out, &line, n);
		p += n + (p[n] == '\n');
	}
	free(line.p);
	if (out.cut) {
		out.cut = false, out.limit = 0;
		strbuf_printf(&out, "\n%s\n", x->l->truncated);
	}
	return strbuf_take(&out);
}

/* ---- JSON payload ------------------------------------------------------- */

/* key: ISO 8601 local time with offset, key_ms: epoch ms; null when 0. */
static void json_time(json_t *o, const char *key, int64_t ms)
{
	char iso[96], key_ms[48];

	snprintf(key_ms, sizeof(key_ms), "%s_ms", key);
	json_object_set_new(o, key, iso8601(ms, iso, sizeof(iso)) ? json_string(iso) : json_null());
	json_object_set_new(o, key_ms, ms > 0 ? json_integer(ms) : json_null());
}

static json_t *json_affected(const struct ctx *x)
{
	json_t *a = json_array();

	for (size_t i = 0; i < x->f->naffected; i++)
		json_array_append_new(a, json_pack("{s:s?, s:s?, s:I, s:s?}", "type",
						   x->affected[i].type, "name",
						   msgtype_name(x->affected[i].type, x->l->code),
						   "count", (json_int_t)x->affected[i].count,
						   "organisation", x->affected[i].organisation));
	return a;
}

/* A placeholder's text as a JSON string. */
static json_t *json_field(field_fn *fn, const struct ctx *x)
{
	struct strbuf b = { .limit = BODY_MAX };
	fn(&b, x);
	_cleanup_free_ char *text = strbuf_take(&b);
	return json_string(text);
}

/* Every fact, then the texts. Strings are the cleaned ones (valid UTF-8),
 * so packing cannot fail on content. cause_text is the operator's only. */
static json_t *json_facts(const struct ctx *x)
{
	const struct notice_facts *f = x->f;
	json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:I, s:s?, s:s?, s:b, s:s?, s:s?, "
			      "s:I, s:I, s:b}",
			      "kind", kind_names[f->kind], "language", x->l->code,
			      "endpoint", x->endpoint, "organisation", x->organisation,
			      "endpoint_kind", x->endpoint_kind, "outage_id", (json_int_t)f->outage_id,
			      "cause_fault", x->cause_fault, "cause_text", x->cause_text,
			      "cause_by_operator", (int)f->cause_by_operator, "contact", x->contact,
			      "reason", x->reason, "queued", (json_int_t)f->queued,
			      "delivered_late", (json_int_t)f->delivered_late,
			      "ended_overnight", (int)f->ended_overnight);
	if (!o)
		return NULL;
	json_time(o, "started_at", f->started_at);
	json_time(o, "ended_at", f->ended_at);
	json_time(o, "composed_at", f->now);
	json_time(o, "next_status_at", f->next_status_at);
	json_time(o, "expected_end", f->expected_end);
	json_time(o, "oldest_received_at", f->oldest_received_at);
	json_object_set_new(o, "affected", json_affected(x));
	json_object_set_new(o, "acks_overdue", json_integer(f->acks_overdue > 0 ? f->acks_overdue : 0));
	json_time(o, "acks_overdue_since", f->acks_overdue_since);
	json_object_set_new(o, "cause", json_field(f_cause, x));
	json_object_set_new(o, "fallback_contact", x->fallback_contact
			    ? json_string(x->fallback_contact) : json_null());
	json_object_set_new(o, "fallback_note", x->fallback_note ? json_string(x->fallback_note)
							 : json_null());
	json_object_set_new(o, "fallback", json_field(f_fallback, x));
	json_object_set_new(o, "status_url", x->status_url ? json_string(x->status_url)
						   : json_null());
	return o;
}

static char *render_payload(const struct ctx *x, const char *subject, const char *body)
{
	json_t *o = json_facts(x);
	char *s = NULL;

	if (o && json_object_set_new(o, "subject", json_string(subject)) == 0 &&
	    json_object_set_new(o, "body", json_string(body)) == 0)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* ---- the interface ------------------------------------------------------ */

int notice_render(const struct notice_templates *t, const struct notice_facts *f,
		  struct notice_text *out)
{
	if (!t || !f || !out || (unsigned)f->kind >= NOTICE_KIND_COUNT ||
	    (f->naffected > 0 && !f->affected))
		return -EINVAL;
	struct ctx x;
	ctx_init(&x, f, t->lang);
	char *subject = render_subject(&t->kind[f->kind], &x);
	char *body = render_body(&t->kind[f->kind], &x);
	char *payload = render_payload(&x, subject, body);
	ctx_done(&x);
	if (!payload) {
		free(subject);
		free(body);
		return -ENOMEM; /* jansson failed: strings are clean, so only memory */
	}
	*out = (struct notice_text){ .subject = subject, .body = body, .payload = payload };
	return 0;
}

void notice_text_free(struct notice_text *t)
{
	if (!t)
		return;
	free(t->subject);
	free(t->body);
	free(t->payload);
	*t = (struct notice_text){ 0 };
}

const char *notice_kind_name(enum notice_kind k)
{
	return (unsigned)k < NOTICE_KIND_COUNT ? kind_names[k] : NULL;
}

int notice_kind_from_name(const char *name)
{
	for (int k = 0; name && k < NOTICE_KIND_COUNT; k++)
		if (strcmp(name, kind_names[k]) == 0)
			return k;
	return -1;
}

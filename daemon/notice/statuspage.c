/*
 * statuspage.c - renders the intranet status page, status.html and
 * status.json, from a snapshot the caller assembles (endpoint health and
 * queues, outages with the messages they hold up, planned shutdowns), and
 * swaps them into status_dir.
 *
 * The page is read by clinical staff on a 390 px phone and on a wall
 * screen, so it is built for that: a banner first (plain sentence, state
 * in words and a symbol, never colour alone), then cards that stack on a
 * phone and sit side by side on a wide screen, with nothing wider than the
 * viewport (long names and numbers wrap). Colours pass WCAG AA (dark text
 * on light tints, borders at least 3:1). Everything people read comes from
 * notice/plain.c, as the e-mails do: one date format, type names with the
 * code beside them, fault classes in words, whom to phone.
 *
 * Invariants: a reader of either file sees the old page or the new one,
 * whole, never a mix and never no file - each is replaced by
 * write_file_atomic_at(); the page first, then the JSON its script polls.
 * Every value that reaches the HTML is escaped. The page has no external
 * asset: its style and its one small script are inline. The script (no
 * meta refresh, WCAG F41) fetches status.json every 60 s and reloads the
 * page when a newer one was written, unless the reader turned that off; it
 * warns when the page has not been renewed for 5 minutes (a daemon that
 * stopped must not look like "all is well"). The JSON gives every time
 * twice: ISO 8601 with the UTC offset, and epoch ms.
 *
 * Times are shown in the process time zone (Europe/Copenhagen, set by
 * timerules_new). The files are made 0644 whatever the umask: the page
 * exists to be published and holds only names, counts and times. One
 * writer at a time per folder (the temporary names are fixed). No logging:
 * the caller logs the error text it gets back.
 */
#include "notice/statuspage.h"

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
#include <stdbool.h>
#include <string.h>
#include <time.h>

#define STALE_AFTER_MS 300000 /* the script warns when the page is older than this */
#define POLL_MS 60000         /* the script looks for a newer page this often */
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- words ------------------------------------------------------------------ */

struct words {
	const char *lang, *site, *updated, *none, *unknown, *not_given;
	const char *h_now, *h_planned, *h_endpoints, *h_recent;
	const char *todo, *todo_window, *cause, *affected, *expected, *contact, *next_status;
	const char *reason, *window, *outage_no;
	const char *expected_at, *expected_passed, *no_next, *no_waiting;
	const char *waiting1, *waitingn, *oldest;
	/* banner and title; "%s" is an organisation, a time or a count */
	const char *b_ok, *b_down1, *b_down2, *b_downn, *b_since, *b_rec, *b_rec_line;
	const char *b_planned, *b_planned_line, *b_ended, *b_upcoming, *b_next;
	const char *t_ok, *t_down1, *t_downn, *t_rec, *t_planned;
	const char *since_word, *down_since, *down_from_to, *recovering_line, *ended_line;
	const char *auto_refresh, *stale;
	const char *states[5][2];   /* banner/card level -> word */
	const char *health[5][2];   /* endpoint health -> word */
	const char *kinds[3][2];    /* endpoint kind -> word */
};

static const struct words DA = {
	.lang = "da", .site = "EDI-driftsstatus", .updated = "Opdateret", .none = "Ingen.",
	.unknown = "ukendt", .not_given = "ikke oplyst",
	.h_now = "Aktuelle nedbrud", .h_planned = "Planlagte nedlukninger",
	.h_endpoints = "Forbindelser", .h_recent = "Afsluttede nedbrud",
	.todo = "Hvad gør jeg?", .todo_window = "Hvad gør jeg i perioden?",
	.cause = "Årsag til fejl", .affected = "Berørte meddelelser",
	.expected = "Forventet nedetid", .contact = "Kontaktperson", .next_status = "Næste status",
	.reason = "Årsag", .window = "Periode", .outage_no = "Nedbrud nr. %lld",
	.expected_at = "til %s (ca. %s endnu)", .expected_passed = "til %s (tidspunktet er overskredet)",
	.no_next = "ingen planlagt; der kommer besked, når fejlen er rettet",
	.no_waiting = "ingen meddelelser venter",
	.waiting1 = "1 meddelelse venter", .waitingn = "%lld meddelelser venter",
	.oldest = "Den ældste har ventet %s (siden %s).",
	.b_ok = "Alle EDI-forbindelser virker",
	.b_down1 = "Meddelelser til %s leveres ikke lige nu",
	.b_down2 = "Meddelelser til %s og %s leveres ikke lige nu",
	.b_downn = "Meddelelser til %lld forbindelser leveres ikke lige nu",
	.b_since = " (siden %s)",
	.b_rec = "Forbindelsen til %s virker igen; ventende meddelelser leveres nu",
	.b_rec_line = "%s: %s.",
	.b_planned = "Planlagt nedlukning: meddelelser til %s venter til %s",
	.b_planned_line = "De går ikke tabt og leveres automatisk bagefter.",
	.b_ended = "Nedbruddet hos %s sluttede %s; alle ventende meddelelser er leveret.",
	.b_upcoming = "Planlagt nedlukning af %s fra %s til %s.",
	.b_next = "Næste status: %s.",
	.t_ok = "Alt virker", .t_down1 = "Nede: %s", .t_downn = "Nede: %lld forbindelser",
	.t_rec = "Leveres igen: %s", .t_planned = "Planlagt nedlukning: %s",
	.since_word = "siden", .down_since = "siden %s (%s).",
	.down_from_to = "Nede fra %s til %s (%s).",
	.recovering_line = "Forbindelsen virker igen; ventende meddelelser leveres nu.",
	.ended_line = "Alle ventende meddelelser er leveret.",
	.auto_refresh = "Opdatér siden automatisk",
	.stale = "Siden er ikke blevet opdateret i over 5 minutter. Oplysningerne kan være "
		 "forældede: kontakt EDI-support.",
	.states = { { "ok", "Virker" }, { "down", "Nede" }, { "recovering", "Leveres igen" },
		    { "planned", "Planlagt" }, { "active", "I gang" } },
	.health = { { "up", "Virker" }, { "suspect", "Ustabil" }, { "down", "Nede" },
		    { "maintenance", "Planlagt nedlukning" },
		    { "held", "Sat på pause af EDI-driften" } },
	.kinds = { { "hospital", "sygehus" }, { "municipality", "kommune" },
		   { "other", "anden part" } },
};

static const struct words EN = {
	.lang = "en", .site = "EDI service status", .updated = "Updated", .none = "None.",
	.unknown = "unknown", .not_given = "not given",
	.h_now = "Current outages", .h_planned = "Planned shutdowns",
	.h_endpoints = "Connections", .h_recent = "Resolved outages",
	.todo = "What do I do?", .todo_window = "What do I do meanwhile?",
	.cause = "Cause of the fault", .affected = "Affected messages",
	.expected = "Expected downtime", .contact = "Contact person", .next_status = "Next status",
	.reason = "Reason", .window = "Period", .outage_no = "Outage no. %lld",
	.expected_at = "until %s (about %s from now)",
	.expected_passed = "until %s (that time has passed)",
	.no_next = "none planned; a notice follows when the fault is fixed",
	.no_waiting = "no messages are waiting",
	.waiting1 = "1 message waiting", .waitingn = "%lld messages waiting",
	.oldest = "The oldest has been waiting %s (since %s).",
	.b_ok = "All EDI connections are working",
	.b_down1 = "Messages to %s are not being delivered",
	.b_down2 = "Messages to %s and %s are not being delivered",
	.b_downn = "Messages to %lld connections are not being delivered",
	.b_since = " (since %s)",
	.b_rec = "The connection to %s works again; waiting messages are being delivered",
	.b_rec_line = "%s: %s.",
	.b_planned = "Planned shutdown: messages to %s wait until %s",
	.b_planned_line = "They are not lost and are delivered automatically afterwards.",
	.b_ended = "The outage at %s ended %s; all waiting messages have been delivered.",
	.b_upcoming = "Planned shutdown of %s from %s to %s.",
	.b_next = "Next status: %s.",
	.t_ok = "All working", .t_down1 = "Down: %s", .t_downn = "Down: %lld connections",
	.t_rec = "Recovering: %s", .t_planned = "Planned shutdown: %s",
	.since_word = "since", .down_since = "since %s (%s).",
	.down_from_to = "Down from %s to %s (%s).",
	.recovering_line = "The connection works again; waiting messages are being delivered.",
	.ended_line = "All waiting messages have been delivered.",
	.auto_refresh = "Update this page automatically",
	.stale = "This page has not been updated for over 5 minutes. It may be out of date: "
		 "contact EDI support.",
	.states = { { "ok", "Working" }, { "down", "Down" }, { "recovering", "Recovering" },
		    { "planned", "Planned" }, { "active", "In progress" } },
	.health = { { "up", "Working" }, { "suspect", "Unstable" }, { "down", "Down" },
		    { "maintenance", "Planned shutdown" },
		    { "held", "Paused by EDI operations" } },
	.kinds = { { "hospital", "hospital" }, { "municipality", "municipality" },
		   { "other", "other party" } },
};

/* The word for a stored value in a two-column table, or the value itself. */
static const char *word(const char *const (*table)[2], size_t n, const char *value)
{
	for (size_t i = 0; value && i < n; i++)
		if (strcmp(table[i][0], value) == 0)
			return table[i][1];
	return value ? value : "";
}

#define WORD(w, table, value) word((w)->table, ARRAY_SIZE((w)->table), value)

/* A symbol beside the words, for those who scan by shape; never alone. */
static const char *symbol(const char *level)
{
	static const char *const syms[][2] = {
		{ "ok", "\u2713" }, { "up", "\u2713" }, { "down", "\u2715" },
		{ "recovering", "\u21bb" }, { "suspect", "!" }, { "planned", "\u25d0" },
		{ "active", "\u25d0" }, { "maintenance", "\u25d0" }, { "held", "\u2016" },
	};
	return word(syms, ARRAY_SIZE(syms), level);
}

/* ---- what the snapshot says ------------------------------------------------- */

static bool is_down(const struct status_outage *o)
{
	return strcmp(o->state, "open") == 0 || strcmp(o->state, "announced") == 0;
}

static bool is_recovering(const struct status_outage *o)
{
	return strcmp(o->state, "recovering") == 0;
}

static bool outage_is_open(const struct status_outage *o)
{
	return is_down(o) || is_recovering(o);
}

static bool window_active(const struct status_maintenance *m, int64_t now)
{
	return m->from <= now && now < m->to;
}

static const char *org_of(const char *organisation, const char *endpoint)
{
	return str_empty(organisation) ? (endpoint ? endpoint : "") : organisation;
}

/* The banner's level, worst first: down, recovering, planned, ok. */
static const char *page_level(const struct status_page *p)
{
	bool rec = false, planned = false;
	for (size_t i = 0; i < p->noutages; i++) {
		if (is_down(&p->outages[i]))
			return "down";
		rec |= is_recovering(&p->outages[i]);
	}
	for (size_t i = 0; i < p->nmaintenance; i++)
		planned |= window_active(&p->maintenance[i], p->generated_at);
	return rec ? "recovering" : planned ? "planned" : "ok";
}

/* ---- sentences ---------------------------------------------------------------- */

static size_t count_if(const struct status_page *p, bool (*pred)(const struct status_outage *))
{
	size_t n = 0;
	for (size_t i = 0; i < p->noutages; i++)
		n += pred(&p->outages[i]);
	return n;
}

/* The i-th outage (in page order) that pred holds for. */
static const struct status_outage *nth(const struct status_page *p,
				       bool (*pred)(const struct status_outage *), size_t i)
{
	for (size_t k = 0; k < p->noutages; k++)
		if (pred(&p->outages[k]) && i-- == 0)
			return &p->outages[k];
	return NULL;
}

static const struct status_maintenance *active_window(const struct status_page *p)
{
	for (size_t i = 0; i < p->nmaintenance; i++)
		if (window_active(&p->maintenance[i], p->generated_at))
			return &p->maintenance[i];
	return NULL;
}

/* "5 meddelelser venter" */
static void put_waiting(struct strbuf *b, const struct words *w, int64_t n)
{
	if (n <= 0)
		strbuf_puts(b, w->no_waiting);
	else if (n == 1)
		strbuf_puts(b, w->waiting1);
	else
		strbuf_printf(b, w->waitingn, (long long)n);
}

/* "Indlæggelsesadvis (XDIS20) 3, Udskrivningsadvis (XDIS17) 2" */
static void put_types_inline(struct strbuf *b, const struct words *w,
			     const struct status_type *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_puts(b, i ? ", " : "");
		plain_msgtype(b, w->lang, t[i].type, w->unknown);
		strbuf_printf(b, " %lld", (long long)t[i].count);
	}
}

/* "5 meddelelser venter: Indlæggelsesadvis (XDIS20) 3, .... Næste status: 05:00." */
static void put_down_line(struct strbuf *b, const struct words *w, const struct status_outage *o,
			  int64_t now)
{
	put_waiting(b, w, o->queued);
	if (o->queued > 0 && o->ntypes > 0) {
		strbuf_puts(b, ": ");
		put_types_inline(b, w, o->types, o->ntypes);
	}
	strbuf_puts(b, ".");
	if (o->next_status_at > 0) {
		struct strbuf t = { 0 };
		plain_time_near(&t, w->lang, o->next_status_at, now);
		strbuf_puts(b, " ");
		strbuf_printf(b, w->b_next, t.p);
		free(t.p);
	}
}

/* The banner: its headline, and its lines joined by "\n". */
static void banner_text(const struct status_page *p, const struct words *w, const char *level,
			struct strbuf *head, struct strbuf *lines)
{
	int64_t now = p->generated_at;
	struct strbuf t = { 0 };
	if (strcmp(level, "down") == 0) {
		size_t n = count_if(p, is_down);
		const struct status_outage *a = nth(p, is_down, 0), *b = nth(p, is_down, 1);
		if (n == 1)
			strbuf_printf(head, w->b_down1, org_of(a->organisation, a->endpoint));
		else if (n == 2)
			strbuf_printf(head, w->b_down2, org_of(a->organisation, a->endpoint),
				      org_of(b->organisation, b->endpoint));
		else
			strbuf_printf(head, w->b_downn, (long long)n);
		for (size_t i = 0; i < n; i++) {
			const struct status_outage *o = nth(p, is_down, i);
			t.len = 0;
			plain_time_near(&t, w->lang, o->started_at, now);
			if (n == 1)
				strbuf_printf(head, w->b_since, t.p);
			strbuf_puts(lines, i ? "\n" : "");
			if (n > 1)
				strbuf_printf(lines, "%s: ", org_of(o->organisation, o->endpoint));
			put_down_line(lines, w, o, now);
		}
	} else if (strcmp(level, "recovering") == 0) {
		const struct status_outage *a = nth(p, is_recovering, 0);
		strbuf_printf(head, w->b_rec, org_of(a->organisation, a->endpoint));
		for (size_t i = 0; (a = nth(p, is_recovering, i)); i++) {
			t.len = 0;
			put_waiting(&t, w, a->queued);
			strbuf_puts(lines, i ? "\n" : "");
			strbuf_printf(lines, w->b_rec_line, org_of(a->organisation, a->endpoint), t.p);
		}
	} else if (strcmp(level, "planned") == 0) {
		const struct status_maintenance *m = active_window(p);
		plain_time_near(&t, w->lang, m->to, now);
		strbuf_printf(head, w->b_planned, org_of(m->organisation, m->endpoint), t.p);
		strbuf_puts(lines, w->b_planned_line);
	} else {
		strbuf_puts(head, w->b_ok);
		for (size_t i = 0; i < p->noutages; i++) {
			const struct status_outage *o = &p->outages[i];
			if (outage_is_open(o) || o->ended_at <= 0)
				continue;
			t.len = 0;
			plain_time_near(&t, w->lang, o->ended_at, now);
			strbuf_puts(lines, lines->len ? "\n" : "");
			strbuf_printf(lines, w->b_ended, org_of(o->organisation, o->endpoint), t.p);
		}
		for (size_t i = 0; i < p->nmaintenance; i++) {
			const struct status_maintenance *m = &p->maintenance[i];
			struct strbuf f = { 0 }, to = { 0 };
			plain_time(&f, w->lang, m->from, "");
			plain_time_near(&to, w->lang, m->to, m->from);
			strbuf_puts(lines, lines->len ? "\n" : "");
			strbuf_printf(lines, w->b_upcoming, org_of(m->organisation, m->endpoint), f.p,
				      to.p);
			free(f.p);
			free(to.p);
		}
	}
	free(t.p);
}

/* The page title: the banner in short, then the site. */
static char *page_title(const struct status_page *p, const struct words *w, const char *level)
{
	struct strbuf b = { 0 };
	if (strcmp(level, "down") == 0) {
		size_t n = count_if(p, is_down);
		const struct status_outage *o = nth(p, is_down, 0);
		if (n == 1)
			strbuf_printf(&b, w->t_down1, org_of(o->organisation, o->endpoint));
		else
			strbuf_printf(&b, w->t_downn, (long long)n);
	} else if (strcmp(level, "recovering") == 0) {
		const struct status_outage *o = nth(p, is_recovering, 0);
		strbuf_printf(&b, w->t_rec, org_of(o->organisation, o->endpoint));
	} else if (strcmp(level, "planned") == 0) {
		const struct status_maintenance *m = active_window(p);
		strbuf_printf(&b, w->t_planned, org_of(m->organisation, m->endpoint));
	} else {
		strbuf_puts(&b, w->t_ok);
	}
	strbuf_printf(&b, " \u2013 %s", w->site);
	return strbuf_take(&b);
}

/* ---- status.json ------------------------------------------------------------------ */

/* A JSON string; bytes that are not UTF-8 become '?' rather than lose the
 * whole page. NULL becomes null. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s), ok = utf8_span(s, n);
	if (ok == n)
		return json_string(s);
	_cleanup_free_ char *copy = xstrdup(s);
	for (size_t i = ok, k; i < n; i += k)
		if ((k = utf8_decode(copy + i, n - i, NULL)) == 0)
			copy[i] = '?', k = 1;
	return json_string(copy);
}

/* A strbuf's text as a JSON string; the strbuf is emptied. */
static json_t *jtake(struct strbuf *b)
{
	_cleanup_free_ char *s = strbuf_take(b);
	return jstr(s);
}

/* ISO 8601 with the UTC offset, in the process time zone. */
static void iso_time(int64_t ms, char *buf, size_t sz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60, aoff = off < 0 ? -off : off;
	size_t n = strftime(buf, sz, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sz - n, "%c%02ld:%02ld", off < 0 ? '-' : '+', aoff / 60, aoff % 60);
}

/* key: ISO 8601 and key_ms: epoch ms, both null when ms is 0 (unknown). */
static void jtime(json_t *o, const char *key, int64_t ms)
{
	char iso[40], kms[64];
	iso_time(ms, iso, sizeof(iso));
	snprintf(kms, sizeof(kms), "%s_ms", key);
	json_object_set_new(o, key, ms ? json_string(iso) : json_null());
	json_object_set_new(o, kms, ms ? json_integer(ms) : json_null());
}

static json_t *types_json(const struct words *w, const struct status_type *t, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "type", jstr(t[i].type));
		json_object_set_new(o, "name", jstr(msgtype_name(t[i].type, w->lang)));
		json_object_set_new(o, "count", json_integer(t[i].count));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *fallback_json(const struct words *w, const char *contact, const char *note,
			     const char *support_phone, bool over)
{
	struct strbuf b = { 0 };
	struct plain_fallback fb = { contact, note, support_phone };
	plain_fallback(&b, w->lang, &fb, over);
	return jtake(&b);
}

static json_t *endpoint_json(const struct words *w, const struct status_endpoint *e, int64_t now)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", jstr(e->name));
	json_object_set_new(o, "organisation", jstr(e->organisation));
	json_object_set_new(o, "kind", jstr(e->kind));
	json_object_set_new(o, "health", jstr(e->health));
	json_object_set_new(o, "health_words", jstr(WORD(w, health, e->health)));
	jtime(o, "since", e->since);
	json_object_set_new(o, "queued", json_integer(e->queued));
	jtime(o, "oldest_received_at", e->oldest_received_at);
	json_object_set_new(o, "oldest_age_s", e->oldest_received_at
			    ? json_integer((now - e->oldest_received_at) / 1000) : json_null());
	json_object_set_new(o, "fault", str_empty(e->fault) ? json_null() : jstr(e->fault));
	json_object_set_new(o, "fault_words", str_empty(e->fault) ? json_null()
					     : jstr(plain_fault(e->fault, w->lang)));
	return o;
}

static const char *cause_words(const struct words *w, const struct status_outage *u)
{
	return !str_empty(u->cause) ? u->cause : plain_fault(u->cause_fault, w->lang);
}

static json_t *outage_json(const struct status_page *p, const struct words *w,
			   const struct status_outage *u)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(u->id));
	json_object_set_new(o, "endpoint", jstr(u->endpoint));
	json_object_set_new(o, "organisation", jstr(u->organisation));
	json_object_set_new(o, "state", jstr(u->state));
	json_object_set_new(o, "open", json_boolean(outage_is_open(u)));
	jtime(o, "started_at", u->started_at);
	jtime(o, "ended_at", u->ended_at);
	jtime(o, "expected_end", u->expected_end);
	jtime(o, "next_status_at", u->next_status_at);
	json_object_set_new(o, "cause", jstr(cause_words(w, u)));
	json_object_set_new(o, "cause_fault", str_empty(u->cause_fault) ? json_null()
					      : jstr(u->cause_fault));
	json_object_set_new(o, "cause_by_operator", json_boolean(!str_empty(u->cause)));
	json_object_set_new(o, "contact", jstr(u->contact));
	json_object_set_new(o, "fallback_contact", jstr(u->fallback_contact));
	json_object_set_new(o, "fallback_note", jstr(u->fallback_note));
	json_object_set_new(o, "fallback", fallback_json(w, u->fallback_contact, u->fallback_note,
							p->support_phone, !outage_is_open(u)));
	json_object_set_new(o, "queued", json_integer(u->queued));
	jtime(o, "oldest_received_at", u->oldest_received_at);
	json_object_set_new(o, "affected", types_json(w, u->types, u->ntypes));
	return o;
}

static json_t *maintenance_json(const struct status_page *p, const struct words *w,
				const struct status_maintenance *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(m->id));
	json_object_set_new(o, "endpoint", jstr(m->endpoint));
	json_object_set_new(o, "organisation", jstr(m->organisation));
	jtime(o, "from", m->from);
	jtime(o, "to", m->to);
	json_object_set_new(o, "active", json_boolean(window_active(m, p->generated_at)));
	json_object_set_new(o, "reason", jstr(m->reason));
	json_object_set_new(o, "contact", jstr(m->contact));
	json_object_set_new(o, "fallback_contact", jstr(m->fallback_contact));
	json_object_set_new(o, "fallback_note", jstr(m->fallback_note));
	json_object_set_new(o, "fallback", fallback_json(w, m->fallback_contact, m->fallback_note,
							p->support_phone, false));
	json_object_set_new(o, "queued", json_integer(m->queued));
	json_object_set_new(o, "affected", types_json(w, m->types, m->ntypes));
	return o;
}

static json_t *banner_json(const struct status_page *p, const struct words *w)
{
	const char *level = page_level(p);
	struct strbuf head = { 0 }, lines = { 0 };
	banner_text(p, w, level, &head, &lines);
	json_t *o = json_object(), *a = json_array();
	_cleanup_free_ char *text = strbuf_take(&lines);
	for (char *save, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		json_array_append_new(a, jstr(l));
	json_object_set_new(o, "level", json_string(level));
	json_object_set_new(o, "headline", jtake(&head));
	json_object_set_new(o, "lines", a);
	return o;
}

static char *status_json(const struct status_page *p, const struct words *w)
{
	json_t *root = json_object(), *e = json_array(), *o = json_array(), *m = json_array();
	json_object_set_new(root, "language", jstr(p->language));
	jtime(root, "generated_at", p->generated_at);
	_cleanup_free_ char *title = page_title(p, w, page_level(p));
	json_object_set_new(root, "title", jstr(title));
	json_object_set_new(root, "banner", banner_json(p, w));
	for (size_t i = 0; i < p->nendpoints; i++)
		json_array_append_new(e, endpoint_json(w, &p->endpoints[i], p->generated_at));
	for (size_t i = 0; i < p->noutages; i++)
		json_array_append_new(o, outage_json(p, w, &p->outages[i]));
	for (size_t i = 0; i < p->nmaintenance; i++)
		json_array_append_new(m, maintenance_json(p, w, &p->maintenance[i]));
	json_object_set_new(root, "endpoints", e);
	json_object_set_new(root, "outages", o);
	json_object_set_new(root, "maintenance", m);
	_cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!text)
		abort(); /* jansson fails only when memory runs out */
	return xasprintf("%s\n", text);
}

/* ---- status.html ------------------------------------------------------------------- */

/* Escaped text; a newline becomes <br> (a fallback's note, banner lines). */
static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		case '\n': fputs("<br>", f); break;
		default: fputc(*s, f);
		}
	}
}

/* A strbuf's text, escaped; the strbuf is emptied for reuse. */
static void esc_sb(FILE *f, struct strbuf *b)
{
	esc(f, b->p ? b->p : "");
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* <time> with the shown local form and a machine-readable datetime. */
static void put_time_el(FILE *f, const struct words *w, int64_t ms, int64_t now, bool near)
{
	struct strbuf b = { 0 };
	char iso[40];
	iso_time(ms, iso, sizeof(iso));
	if (near)
		plain_time_near(&b, w->lang, ms, now);
	else
		plain_time(&b, w->lang, ms, w->unknown);
	fprintf(f, "<time datetime=\"%s\">", iso);
	esc_sb(f, &b);
	fputs("</time>", f);
	free(b.p);
}

/* A state in words with its symbol: <span class="tag down">✕ Nede</span>. */
static void put_tag(FILE *f, const char *level, const char *words)
{
	fprintf(f, "<span class=\"tag %s\"><span aria-hidden=\"true\">%s</span> ", level,
		symbol(level));
	esc(f, words);
	fputs("</span>", f);
}

static void dt(FILE *f, const char *term)
{
	fputs("<dt>", f);
	esc(f, term);
	fputs("</dt><dd>", f);
}

static const char STYLE[] =
	"*{box-sizing:border-box}"
	"html{-webkit-text-size-adjust:100%}"
	"body{margin:0;font:1rem/1.5 system-ui,'DejaVu Sans',sans-serif;color:#1b1b1b;"
	"background:#fff;overflow-wrap:anywhere}"
	".wrap{max-width:80rem;margin:0 auto;padding:0 1rem}"
	".banner{border-bottom:.4rem solid;padding:0 0 1rem}"
	".banner .wrap{padding-top:.75rem}"
	".banner h1{font-size:1.4rem;line-height:1.3;margin:.25rem 0 .5rem}"
	".banner p{margin:.25rem 0}"
	".ok{background:#e7f4ea;border-color:#1e6b34}"
	".down{background:#fdecea;border-color:#a4161a}"
	".recovering,.suspect{background:#fff4d6;border-color:#8a5a00}"
	".planned,.active,.maintenance,.held{background:#e8f0fb;border-color:#1d4f91}"
	".tag{display:inline-block;font-weight:700;border:2px solid;border-radius:.3rem;"
	"padding:0 .4rem;white-space:nowrap}"
	".stale{background:#1b1b1b;color:#fff;padding:.5rem 1rem;margin:0}"
	"h2{font-size:1.2rem;margin:1.5rem 0 .5rem}"
	"h3{font-size:1.1rem;margin:0 0 .25rem}"
	".cards,.eps{display:grid;gap:1rem;padding:0;margin:0;list-style:none;"
	"grid-template-columns:repeat(auto-fill,minmax(min(100%,24rem),1fr))}"
	".eps{gap:.5rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,18rem),1fr))}"
	".card,.ep{background:#fff;border:1px solid #767676;border-left-width:.5rem;"
	"border-radius:.3rem;padding:.75rem 1rem}"
	".card.down,.ep.down{border-left-color:#a4161a}"
	".card.recovering,.ep.suspect{border-left-color:#8a5a00}"
	".card.planned,.card.active,.ep.maintenance,.ep.held{border-left-color:#1d4f91}"
	".ep.up{border-left-color:#1e6b34}"
	".card .tag,.ep .tag{font-size:.9rem}"
	".meta{margin:.25rem 0 .5rem;color:#3d3d3d}"
	"dl{margin:0}dt{font-weight:700;margin-top:.6rem}dd{margin:0}"
	"dd.todo{background:#fff8c5;border:1px solid #8a5a00;border-radius:.3rem;"
	"padding:.4rem .6rem}"
	"dd ul{margin:.2rem 0;padding-left:1.2rem}"
	".recent li{margin:.25rem 0}"
	"footer{margin:2rem 0 1rem;color:#3d3d3d;font-size:.9rem}"
	"footer label{display:inline-block;margin-top:.25rem}"
	"@media (min-width:100rem){body{font-size:1.25rem}}";

/* The one script: look for a newer status.json every POLL_MS and
 * reload when there is one (unless the reader unticked the box); warn when
 * the page is over STALE_AFTER_MS old. window.edibrokerRefresh() is what
 * the timer calls, so a test can call it too. */
static const char SCRIPT[] =
	"(function(){"
	"var b=document.body,box=document.getElementById('auto'),"
	"gen=Number(b.getAttribute('data-generated'));"
	"if(box){box.parentNode.hidden=false;"
	"try{box.checked=sessionStorage.getItem('edibroker-auto')!=='off';}catch(e){}"
	"box.addEventListener('change',function(){try{sessionStorage.setItem('edibroker-auto',"
	"box.checked?'on':'off');}catch(e){}});}"
	"function stale(){var s=document.getElementById('stale');"
	"if(s)s.hidden=Date.now()-gen<" STR(STALE_AFTER_MS) ";}"
	"window.edibrokerRefresh=function(){stale();"
	"if(box&&!box.checked)return Promise.resolve(false);"
	"return fetch('status.json',{cache:'no-store'})"
	".then(function(r){return r.ok?r.json():null;})"
	".then(function(j){if(j&&j.generated_at_ms>gen){location.reload();return true;}"
	"return false;})"
	".catch(function(){return false;});};"
	"stale();setInterval(window.edibrokerRefresh," STR(POLL_MS) ");"
	"})();";

static void page_head(FILE *f, const struct status_page *p, const struct words *w,
		      const char *level)
{
	_cleanup_free_ char *title = page_title(p, w, level);
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
		   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		   "<title>", w->lang);
	esc(f, title);
	fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body data-generated=\"%lld\">\n", STYLE,
		(long long)p->generated_at);
}

static void banner(FILE *f, const struct status_page *p, const struct words *w,
		   const char *level)
{
	struct strbuf head = { 0 }, lines = { 0 };
	banner_text(p, w, level, &head, &lines);
	fprintf(f, "<header id=\"banner\" class=\"banner %s\" role=\"status\">\n", level);
	fputs("<p id=\"stale\" class=\"stale\" hidden>", f);
	esc(f, w->stale);
	fputs("</p>\n<div class=\"wrap\">\n<p>", f);
	put_tag(f, level, WORD(w, states, level));
	fputs("</p>\n<h1>", f);
	esc_sb(f, &head);
	fputs("</h1>\n", f);
	if (lines.len) {
		fputs("<p>", f);
		esc_sb(f, &lines);
		fputs("</p>\n", f);
	}
	fputs("</div>\n</header>\n", f);
	free(head.p);
	free(lines.p);
}

/* "5 meddelelser venter" + a list by type + the oldest one's age. */
static void put_affected(FILE *f, const struct words *w, int64_t queued,
			 const struct status_type *t, size_t n, int64_t oldest, int64_t now)
{
	struct strbuf b = { 0 };
	put_waiting(&b, w, queued);
	esc_sb(f, &b);
	if (queued > 0 && n > 0) {
		fputs("<ul>", f);
		for (size_t i = 0; i < n; i++) {
			fputs("<li>", f);
			plain_msgtype(&b, w->lang, t[i].type, w->unknown);
			strbuf_printf(&b, ": %lld", (long long)t[i].count);
			esc_sb(f, &b);
			fputs("</li>", f);
		}
		fputs("</ul>", f);
	}
	if (queued > 0 && oldest > 0) {
		struct strbuf age = { 0 }, since = { 0 };
		plain_duration(&age, w->lang, now - oldest);
		plain_time(&since, w->lang, oldest, w->unknown);
		strbuf_printf(&b, w->oldest, age.p, since.p);
		esc_sb(f, &b);
		free(age.p);
		free(since.p);
	}
	fputs("</dd>\n", f);
	free(b.p);
}

static void put_fallback(FILE *f, const struct words *w, const char *term, const char *contact,
			 const char *note, const char *support_phone, bool over)
{
	struct strbuf b = { 0 };
	struct plain_fallback fb = { contact, note, support_phone };
	plain_fallback(&b, w->lang, &fb, over);
	fputs("<dt>", f);
	esc(f, term);
	fputs("</dt><dd class=\"todo\">", f);
	esc_sb(f, &b);
	fputs("</dd>\n", f);
	free(b.p);
}

static void put_expected(FILE *f, const struct words *w, int64_t end, int64_t now)
{
	struct strbuf b = { 0 }, at = { 0 }, left = { 0 };
	if (end <= 0) {
		strbuf_puts(&b, w->unknown);
	} else {
		plain_time(&at, w->lang, end, w->unknown);
		plain_duration(&left, w->lang, end - now);
		if (end > now)
			strbuf_printf(&b, w->expected_at, at.p, left.p);
		else
			strbuf_printf(&b, w->expected_passed, at.p);
	}
	esc_sb(f, &b);
	fputs("</dd>\n", f);
	free(b.p);
	free(at.p);
	free(left.p);
}

static void outage_card(FILE *f, const struct status_page *p, const struct words *w,
			const struct status_outage *o)
{
	int64_t now = p->generated_at;
	const char *level = is_down(o) ? "down" : "recovering";
	struct strbuf b = { 0 }, t = { 0 }, d = { 0 };
	fprintf(f, "<li class=\"card %s\" id=\"outage-%lld\">\n<h3>", level, (long long)o->id);
	esc(f, org_of(o->organisation, o->endpoint));
	fputs("</h3>\n<p class=\"meta\">", f);
	put_tag(f, level, WORD(w, states, level));
	plain_time(&t, w->lang, o->started_at, w->unknown);
	plain_duration(&d, w->lang, (o->ended_at > 0 ? o->ended_at : now) - o->started_at);
	fputs(" ", f);
	if (o->ended_at > 0) {
		struct strbuf e = { 0 };
		plain_time(&e, w->lang, o->ended_at, w->unknown);
		strbuf_printf(&b, w->down_from_to, t.p, e.p, d.p);
		strbuf_printf(&b, " %s", w->recovering_line);
		free(e.p);
	} else {
		strbuf_printf(&b, w->down_since, t.p, d.p);
	}
	strbuf_puts(&b, " ");
	strbuf_printf(&b, w->outage_no, (long long)o->id);
	strbuf_puts(&b, ".");
	esc_sb(f, &b);
	fputs("</p>\n<dl>\n", f);
	put_fallback(f, w, w->todo, o->fallback_contact, o->fallback_note, p->support_phone, false);
	dt(f, w->cause);
	esc(f, cause_words(w, o));
	fputs("</dd>\n", f);
	dt(f, w->affected);
	put_affected(f, w, o->queued, o->types, o->ntypes, o->oldest_received_at, now);
	dt(f, w->expected);
	put_expected(f, w, o->expected_end, now);
	dt(f, w->contact);
	esc(f, str_empty(o->contact) ? w->not_given : o->contact);
	fputs("</dd>\n", f);
	dt(f, w->next_status);
	if (o->next_status_at > 0)
		put_time_el(f, w, o->next_status_at, now, false);
	else
		esc(f, w->no_next);
	fputs("</dd>\n</dl>\n</li>\n", f);
	free(b.p);
	free(t.p);
	free(d.p);
}

static void open_outages(FILE *f, const struct status_page *p, const struct words *w)
{
	fprintf(f, "<section aria-labelledby=\"h-now\">\n<h2 id=\"h-now\">%s</h2>\n", w->h_now);
	if (count_if(p, outage_is_open) == 0) {
		fprintf(f, "<p>%s</p>\n</section>\n", w->none);
		return;
	}
	fputs("<ul class=\"cards\">\n", f);
	for (size_t i = 0; i < p->noutages; i++)
		if (outage_is_open(&p->outages[i]))
			outage_card(f, p, w, &p->outages[i]);
	fputs("</ul>\n</section>\n", f);
}

static void window_card(FILE *f, const struct status_page *p, const struct words *w,
			const struct status_maintenance *m)
{
	int64_t now = p->generated_at;
	bool active = window_active(m, now);
	const char *level = active ? "active" : "planned";
	struct strbuf d = { 0 };
	fprintf(f, "<li class=\"card %s\" id=\"window-%lld\">\n<h3>", level, (long long)m->id);
	esc(f, org_of(m->organisation, m->endpoint));
	fputs("</h3>\n<p class=\"meta\">", f);
	put_tag(f, level, WORD(w, states, level));
	fputs("</p>\n<dl>\n", f);
	dt(f, w->window);
	put_time_el(f, w, m->from, now, false);
	fputs(" \u2013 ", f);
	put_time_el(f, w, m->to, m->from, true);
	plain_duration(&d, w->lang, m->to - m->from);
	fputs(" (", f);
	esc_sb(f, &d);
	fputs(")</dd>\n", f);
	put_fallback(f, w, w->todo_window, m->fallback_contact, m->fallback_note, p->support_phone,
		     false);
	dt(f, w->reason);
	esc(f, str_empty(m->reason) ? w->not_given : m->reason);
	fputs("</dd>\n", f);
	if (active) {
		dt(f, w->affected);
		put_affected(f, w, m->queued, m->types, m->ntypes, 0, now);
	}
	dt(f, w->contact);
	esc(f, str_empty(m->contact) ? w->not_given : m->contact);
	fputs("</dd>\n</dl>\n</li>\n", f);
	free(d.p);
}

static void planned(FILE *f, const struct status_page *p, const struct words *w)
{
	fprintf(f, "<section aria-labelledby=\"h-planned\">\n<h2 id=\"h-planned\">%s</h2>\n",
		w->h_planned);
	if (p->nmaintenance == 0) {
		fprintf(f, "<p>%s</p>\n</section>\n", w->none);
		return;
	}
	fputs("<ul class=\"cards\">\n", f);
	for (size_t i = 0; i < p->nmaintenance; i++)
		window_card(f, p, w, &p->maintenance[i]);
	fputs("</ul>\n</section>\n", f);
}

/* The class, and the symbol, of an endpoint's health: only known values. */
static const char *health_class(const char *h)
{
	static const char *const known[] = { "up", "suspect", "down", "maintenance", "held" };
	for (size_t i = 0; h && i < ARRAY_SIZE(known); i++)
		if (strcmp(h, known[i]) == 0)
			return known[i];
	return "unknown";
}

static void endpoint_item(FILE *f, const struct words *w, const struct status_endpoint *e,
			  int64_t now)
{
	const char *hc = health_class(e->health);
	struct strbuf b = { 0 };
	fprintf(f, "<li class=\"ep %s\"><h3>", hc);
	esc(f, org_of(e->organisation, e->name));
	fputs("</h3>", f);
	put_tag(f, hc, WORD(w, health, e->health));
	strbuf_printf(&b, " %s ", w->since_word);
	esc_sb(f, &b);
	put_time_el(f, w, e->since, now, true);
	fputs("<br>", f);
	strbuf_printf(&b, "%s", WORD(w, kinds, e->kind));
	strbuf_puts(&b, " \u00b7 ");
	put_waiting(&b, w, e->queued);
	if (e->queued > 0 && e->oldest_received_at > 0) {
		strbuf_puts(&b, " (");
		plain_duration(&b, w->lang, now - e->oldest_received_at);
		strbuf_puts(&b, ")");
	}
	if (strcmp(hc, "up") != 0 && !str_empty(e->fault))
		strbuf_printf(&b, "\n%s: %s", w->cause, plain_fault(e->fault, w->lang));
	esc_sb(f, &b);
	fputs("</li>\n", f);
	free(b.p);
}

static void endpoints(FILE *f, const struct status_page *p, const struct words *w)
{
	fprintf(f, "<section aria-labelledby=\"h-eps\">\n<h2 id=\"h-eps\">%s</h2>\n",
		w->h_endpoints);
	if (p->nendpoints == 0) {
		fprintf(f, "<p>%s</p>\n</section>\n", w->none);
		return;
	}
	fputs("<ul class=\"eps\">\n", f);
	for (size_t i = 0; i < p->nendpoints; i++)
		endpoint_item(f, w, &p->endpoints[i], p->generated_at);
	fputs("</ul>\n</section>\n", f);
}

static void recent_outages(FILE *f, const struct status_page *p, const struct words *w)
{
	if (count_if(p, outage_is_open) == p->noutages)
		return; /* nothing ended lately: no section at all */
	fprintf(f, "<section aria-labelledby=\"h-recent\">\n<h2 id=\"h-recent\">%s</h2>\n"
		   "<ul class=\"recent\">\n", w->h_recent);
	struct strbuf b = { 0 }, s = { 0 }, e = { 0 }, d = { 0 };
	for (size_t i = 0; i < p->noutages; i++) {
		const struct status_outage *o = &p->outages[i];
		if (outage_is_open(o))
			continue;
		plain_time(&s, w->lang, o->started_at, w->unknown);
		plain_time(&e, w->lang, o->ended_at, w->unknown);
		plain_duration(&d, w->lang, o->ended_at - o->started_at);
		strbuf_printf(&b, "%s: ", org_of(o->organisation, o->endpoint));
		strbuf_printf(&b, w->down_from_to, s.p, e.p, d.p);
		strbuf_printf(&b, " %s %s: %s. ", w->ended_line, w->cause, cause_words(w, o));
		strbuf_printf(&b, w->outage_no, (long long)o->id);
		strbuf_puts(&b, ".");
		fputs("<li>", f);
		esc_sb(f, &b);
		fputs("</li>\n", f);
		s.len = e.len = d.len = 0;
	}
	fputs("</ul>\n</section>\n", f);
	free(b.p);
	free(s.p);
	free(e.p);
	free(d.p);
}

static void footer(FILE *f, const struct status_page *p, const struct words *w)
{
	fprintf(f, "<footer>\n<p>%s: ", w->updated);
	put_time_el(f, w, p->generated_at, p->generated_at, false);
	fputs(".</p>\n<p hidden><label><input type=\"checkbox\" id=\"auto\" checked> ", f);
	esc(f, w->auto_refresh);
	fputs("</label></p>\n</footer>\n", f);
}

static char *status_html(const struct status_page *p, const struct words *w, size_t *len)
{
	const char *level = page_level(p);
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		abort();
	page_head(f, p, w, level);
	banner(f, p, w, level);
	fputs("<main class=\"wrap\">\n", f);
	open_outages(f, p, w);
	planned(f, p, w);
	endpoints(f, p, w);
	recent_outages(f, p, w);
	footer(f, p, w);
	fprintf(f, "</main>\n<script>%s</script>\n</body>\n</html>\n", SCRIPT);
	if (fclose(f) != 0)
		abort(); /* a memory stream fails only when memory runs out */
	return text;
}

/* ---- files ------------------------------------------------------------------------------ */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int r,
						     const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, strerror(-r));
	return r;
}

int statuspage_write(const char *dir, const struct status_page *p, char *err, size_t errlen)
{
	const struct words *w = p->language && strcmp(p->language, "en") == 0 ? &EN : &DA;
	if (str_empty(dir))
		return fail(err, errlen, -EINVAL, "status_dir");
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return fail(err, errlen, r, "create %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail(err, errlen, -errno, "open %s", dir);
	size_t len;
	_cleanup_free_ char *html = status_html(p, w, &len);
	r = write_file_atomic_at(dfd, "status.html", html, len, 0644, 0);
	if (r < 0)
		return fail(err, errlen, r, "write %s/status.html", dir);
	_cleanup_free_ char *json = status_json(p, w);
	r = write_file_atomic_at(dfd, "status.json", json, strlen(json), 0644, 0);
	if (r < 0)
		return fail(err, errlen, r, "write %s/status.json", dir);
	if (err && errlen)
		err[0] = '\0';
	return 0;
}

/*
 * statuspage.c - renders the intranet status page, status.json and
 * status.html, from a snapshot the caller assembles (endpoint health and
 * queues, outages, planned shutdowns), and swaps them into status_dir.
 *
 * Invariants: a reader of either file sees the old page or the new one,
 * whole, never a mix and never no file - each is replaced by
 * write_file_atomic_at() (".<name>.tmp", fsynced, renamed over the old one,
 * the folder fsynced). Every value that reaches the HTML is escaped; the page has no
 * script and no external asset, and reloads itself every 60 s. The JSON
 * gives every time twice: ISO 8601 with the UTC offset, and epoch ms.
 *
 * Times are shown in the process time zone (Europe/Copenhagen, set by
 * timerules_new). The files are made 0644 whatever the umask: the page
 * exists to be published and holds only names, counts and times. One
 * writer at a time per folder (the temporary names are fixed). No logging:
 * the caller logs the error text it gets back.
 */
#include "notice/statuspage.h"

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

/* ---- words ------------------------------------------------------------------ */

struct words {
	const char *lang, *title, *updated, *none, *date_fmt;
	const char *h_open, *h_planned, *h_endpoints, *h_recent;
	const char *endpoint, *organisation, *kind, *health, *since, *queued, *oldest, *last_error;
	const char *no, *state, *started, *ended, *cause, *affected, *waiting, *expected, *until,
		*unknown, *contact, *next_status, *from, *to, *reason, *hours;
	const char *names[16][2]; /* stored value -> label: health, kind, state */
};

static const struct words DA = {
	.lang = "da", .title = "EDI-driftsstatus", .updated = "Opdateret", .none = "Ingen.",
	.date_fmt = "%d.%m.%Y %H:%M", .hours = "t",
	.h_open = "Aktuelle nedbrud", .h_planned = "Planlagte nedlukninger",
	.h_endpoints = "Endepunkter", .h_recent = "Afsluttede nedbrud",
	.endpoint = "Endepunkt", .organisation = "Organisation", .kind = "Type",
	.health = "Tilstand", .since = "Siden", .queued = "I kø", .oldest = "Ældste ventende",
	.last_error = "Seneste fejl",
	.no = "Nr.", .state = "Tilstand", .started = "Startet", .ended = "Sluttet",
	.cause = "Årsag til fejl", .affected = "Berørte meddelelser", .waiting = "ventende",
	.expected = "Forventet nedetid", .until = "til", .unknown = "ukendt",
	.contact = "Kontaktperson", .next_status = "Næste status",
	.from = "Fra", .to = "Til", .reason = "Årsag",
	.names = { { "up", "Oppe" }, { "suspect", "Ustabil" }, { "down", "Nede" },
		   { "maintenance", "Planlagt nedlukning" }, { "hospital", "Sygehus" },
		   { "municipality", "Kommune" }, { "other", "Andet" }, { "open", "Åbent" },
		   { "announced", "Meldt ud" }, { "recovering", "Genoprettes" },
		   { "resolved", "Løst" }, { "closed", "Lukket" } },
};

static const struct words EN = {
	.lang = "en", .title = "EDI service status", .updated = "Updated", .none = "None.",
	.date_fmt = "%Y-%m-%d %H:%M", .hours = "h",
	.h_open = "Current outages", .h_planned = "Planned shutdowns",
	.h_endpoints = "Endpoints", .h_recent = "Resolved outages",
	.endpoint = "Endpoint", .organisation = "Organisation", .kind = "Type",
	.health = "Health", .since = "Since", .queued = "Queued", .oldest = "Oldest waiting",
	.last_error = "Last error",
	.no = "No.", .state = "State", .started = "Started", .ended = "Ended",
	.cause = "Cause of fault", .affected = "Affected messages", .waiting = "waiting",
	.expected = "Expected downtime", .until = "until", .unknown = "unknown",
	.contact = "Contact person", .next_status = "Next status",
	.from = "From", .to = "To", .reason = "Reason",
	.names = { { "up", "Up" }, { "suspect", "Suspect" }, { "down", "Down" },
		   { "maintenance", "Planned shutdown" }, { "hospital", "Hospital" },
		   { "municipality", "Municipality" }, { "other", "Other" }, { "open", "Open" },
		   { "announced", "Announced" }, { "recovering", "Recovering" },
		   { "resolved", "Resolved" }, { "closed", "Closed" } },
};

/* The label for a stored value, or the value itself when it is new. */
static const char *label(const struct words *w, const char *value)
{
	for (size_t i = 0; value && i < ARRAY_SIZE(w->names) && w->names[i][0]; i++)
		if (strcmp(w->names[i][0], value) == 0)
			return w->names[i][1];
	return value ? value : "";
}

static bool outage_is_open(const struct status_outage *o)
{
	return strcmp(o->state, "resolved") != 0 && strcmp(o->state, "closed") != 0;
}

/* ---- times --------------------------------------------------------------------- */

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

static void shown_time(const struct words *w, int64_t ms, char *buf, size_t sz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, sz, w->date_fmt, &tm);
}

/* "45 s", "12 min", "3 t 05 min". */
static void shown_age(const struct words *w, int64_t ms, char *buf, size_t sz)
{
	long long s = ms > 0 ? ms / 1000 : 0;
	if (s < 60)
		snprintf(buf, sz, "%lld s", s);
	else if (s < 3600)
		snprintf(buf, sz, "%lld min", s / 60);
	else
		snprintf(buf, sz, "%lld %s %02lld min", s / 3600, w->hours, s / 60 % 60);
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

/* key: ISO 8601 and key_ms: epoch ms, both null when ms is 0 (unknown). */
static void jtime(json_t *o, const char *key, int64_t ms)
{
	char iso[40], kms[64];
	iso_time(ms, iso, sizeof(iso));
	snprintf(kms, sizeof(kms), "%s_ms", key);
	json_object_set_new(o, key, ms ? json_string(iso) : json_null());
	json_object_set_new(o, kms, ms ? json_integer(ms) : json_null());
}

static json_t *endpoint_json(const struct status_endpoint *e, int64_t now)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", jstr(e->name));
	json_object_set_new(o, "organisation", jstr(e->organisation));
	json_object_set_new(o, "kind", jstr(e->kind));
	json_object_set_new(o, "health", jstr(e->health));
	jtime(o, "since", e->since);
	json_object_set_new(o, "queued", json_integer(e->queued));
	jtime(o, "oldest_received_at", e->oldest_received_at);
	json_object_set_new(o, "oldest_age_s", e->oldest_received_at
			    ? json_integer((now - e->oldest_received_at) / 1000) : json_null());
	json_object_set_new(o, "last_error", jstr(e->last_error));
	return o;
}

static json_t *outage_json(const struct status_outage *u)
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
	json_object_set_new(o, "cause", jstr(u->cause));
	json_object_set_new(o, "contact", jstr(u->contact));
	json_object_set_new(o, "queued", json_integer(u->queued));
	return o;
}

static json_t *maintenance_json(const struct status_maintenance *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(m->id));
	json_object_set_new(o, "endpoint", jstr(m->endpoint));
	json_object_set_new(o, "organisation", jstr(m->organisation));
	jtime(o, "from", m->from);
	jtime(o, "to", m->to);
	json_object_set_new(o, "reason", jstr(m->reason));
	json_object_set_new(o, "contact", jstr(m->contact));
	return o;
}

static char *status_json(const struct status_page *p)
{
	json_t *root = json_object(), *e = json_array(), *o = json_array(), *m = json_array();
	json_object_set_new(root, "language", jstr(p->language));
	jtime(root, "generated_at", p->generated_at);
	for (size_t i = 0; i < p->nendpoints; i++)
		json_array_append_new(e, endpoint_json(&p->endpoints[i], p->generated_at));
	for (size_t i = 0; i < p->noutages; i++)
		json_array_append_new(o, outage_json(&p->outages[i]));
	for (size_t i = 0; i < p->nmaintenance; i++)
		json_array_append_new(m, maintenance_json(&p->maintenance[i]));
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

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* One cell; an empty value shows as a dash. */
static void td(FILE *f, const char *s)
{
	fputs("<td>", f);
	esc(f, str_empty(s) ? "–" : s);
	fputs("</td>", f);
}

static void td_num(FILE *f, int64_t n)
{
	fprintf(f, "<td class=\"num\">%lld</td>", (long long)n);
}

/* A time cell: shown in local form, machine-readable in datetime="". */
static void td_time(FILE *f, const struct words *w, int64_t ms, const char *prefix)
{
	char shown[64], iso[40];
	if (!ms) {
		td(f, NULL);
		return;
	}
	shown_time(w, ms, shown, sizeof(shown));
	iso_time(ms, iso, sizeof(iso));
	fprintf(f, "<td>%s%s<time datetime=\"%s\">%s</time></td>", prefix ? prefix : "",
		prefix ? " " : "", iso, shown);
}

static void header_row(FILE *f, const char *const *cols, size_t n)
{
	fputs("<thead><tr>", f);
	for (size_t i = 0; i < n; i++) {
		fputs("<th>", f);
		esc(f, cols[i]);
		fputs("</th>", f);
	}
	fputs("</tr></thead>\n<tbody>\n", f);
}

static const char STYLE[] =
	"body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
	"table{border-collapse:collapse;margin-bottom:1.5em}"
	"th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}"
	"th{background:#eee}td.num{text-align:right}"
	"tr.up td.h{background:#dff0d8}tr.suspect td.h{background:#fcf0c8}"
	"tr.down td.h{background:#f6d5d5}tr.maintenance td.h{background:#dde8f6}";

static void page_head(FILE *f, const struct words *w, int64_t generated_at)
{
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
		   "<meta http-equiv=\"refresh\" content=\"60\">\n"
		   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		   "<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n<h1>%s</h1>\n",
		w->lang, w->title, STYLE, w->title);
	char shown[64], iso[40];
	shown_time(w, generated_at, shown, sizeof(shown));
	iso_time(generated_at, iso, sizeof(iso));
	fprintf(f, "<p>%s: <time datetime=\"%s\">%s</time></p>\n", w->updated, iso, shown);
}

static void open_outage_row(FILE *f, const struct words *w, const struct status_outage *o)
{
	fprintf(f, "<tr><td class=\"num\">%lld</td>", (long long)o->id);
	td(f, o->endpoint);
	td(f, o->organisation);
	td(f, label(w, o->state));
	td_time(f, w, o->started_at, NULL);
	td(f, o->cause);
	fprintf(f, "<td>%lld %s</td>", (long long)o->queued, w->waiting);
	if (o->expected_end)
		td_time(f, w, o->expected_end, w->until);
	else
		td(f, w->unknown);
	td(f, o->contact);
	td_time(f, w, o->next_status_at, NULL);
	fputs("</tr>\n", f);
}

static void open_outages(FILE *f, const struct words *w, const struct status_page *p)
{
	const char *cols[] = { w->no, w->endpoint, w->organisation, w->state, w->started,
			       w->cause, w->affected, w->expected, w->contact, w->next_status };
	size_t n = 0;
	for (size_t i = 0; i < p->noutages; i++)
		n += outage_is_open(&p->outages[i]);
	fprintf(f, "<h2>%s</h2>\n", w->h_open);
	if (n == 0) {
		fprintf(f, "<p>%s</p>\n", w->none);
		return;
	}
	fputs("<table>\n", f);
	header_row(f, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < p->noutages; i++)
		if (outage_is_open(&p->outages[i]))
			open_outage_row(f, w, &p->outages[i]);
	fputs("</tbody>\n</table>\n", f);
}

static void recent_outage_row(FILE *f, const struct words *w, const struct status_outage *o)
{
	fprintf(f, "<tr><td class=\"num\">%lld</td>", (long long)o->id);
	td(f, o->endpoint);
	td(f, o->organisation);
	td(f, label(w, o->state));
	td_time(f, w, o->started_at, NULL);
	td_time(f, w, o->ended_at, NULL);
	td(f, o->cause);
	fputs("</tr>\n", f);
}

static void recent_outages(FILE *f, const struct words *w, const struct status_page *p)
{
	const char *cols[] = { w->no, w->endpoint, w->organisation, w->state, w->started,
			       w->ended, w->cause };
	size_t n = p->noutages;
	for (size_t i = 0; i < p->noutages; i++)
		n -= outage_is_open(&p->outages[i]);
	if (n == 0)
		return; /* nothing resolved lately: no section at all */
	fprintf(f, "<h2>%s</h2>\n<table>\n", w->h_recent);
	header_row(f, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < p->noutages; i++)
		if (!outage_is_open(&p->outages[i]))
			recent_outage_row(f, w, &p->outages[i]);
	fputs("</tbody>\n</table>\n", f);
}

static void planned(FILE *f, const struct words *w, const struct status_page *p)
{
	const char *cols[] = { w->endpoint, w->organisation, w->from, w->to, w->reason,
			       w->contact };
	fprintf(f, "<h2>%s</h2>\n", w->h_planned);
	if (p->nmaintenance == 0) {
		fprintf(f, "<p>%s</p>\n", w->none);
		return;
	}
	fputs("<table>\n", f);
	header_row(f, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < p->nmaintenance; i++) {
		const struct status_maintenance *m = &p->maintenance[i];
		fputs("<tr>", f);
		td(f, m->endpoint);
		td(f, m->organisation);
		td_time(f, w, m->from, NULL);
		td_time(f, w, m->to, NULL);
		td(f, m->reason);
		td(f, m->contact);
		fputs("</tr>\n", f);
	}
	fputs("</tbody>\n</table>\n", f);
}

/* The row's class drives the colour; only known health values become one. */
static const char *health_class(const char *h)
{
	static const char *const known[] = { "up", "suspect", "down", "maintenance" };
	for (size_t i = 0; h && i < ARRAY_SIZE(known); i++)
		if (strcmp(h, known[i]) == 0)
			return known[i];
	return "unknown";
}

static void endpoint_row(FILE *f, const struct words *w, const struct status_endpoint *e,
			 int64_t now)
{
	char age[48] = "";
	if (e->oldest_received_at)
		shown_age(w, now - e->oldest_received_at, age, sizeof(age));
	fprintf(f, "<tr class=\"%s\">", health_class(e->health));
	td(f, e->name);
	td(f, e->organisation);
	td(f, label(w, e->kind));
	fputs("<td class=\"h\">", f);
	esc(f, label(w, e->health));
	fputs("</td>", f);
	td_time(f, w, e->since, NULL);
	td_num(f, e->queued);
	td(f, age);
	td(f, e->last_error);
	fputs("</tr>\n", f);
}

static void endpoints(FILE *f, const struct words *w, const struct status_page *p)
{
	const char *cols[] = { w->endpoint, w->organisation, w->kind, w->health, w->since,
			       w->queued, w->oldest, w->last_error };
	fprintf(f, "<h2>%s</h2>\n", w->h_endpoints);
	if (p->nendpoints == 0) {
		fprintf(f, "<p>%s</p>\n", w->none);
		return;
	}
	fputs("<table>\n", f);
	header_row(f, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < p->nendpoints; i++)
		endpoint_row(f, w, &p->endpoints[i], p->generated_at);
	fputs("</tbody>\n</table>\n", f);
}

static char *status_html(const struct status_page *p, size_t *len)
{
	const struct words *w = p->language && strcmp(p->language, "en") == 0 ? &EN : &DA;
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		abort();
	page_head(f, w, p->generated_at);
	open_outages(f, w, p);
	planned(f, w, p);
	endpoints(f, w, p);
	recent_outages(f, w, p);
	fputs("</body>\n</html>\n", f);
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
	if (str_empty(dir))
		return fail(err, errlen, -EINVAL, "status_dir");
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return fail(err, errlen, r, "create %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail(err, errlen, -errno, "open %s", dir);
	_cleanup_free_ char *json = status_json(p);
	r = write_file_atomic_at(dfd, "status.json", json, strlen(json), 0644, 0);
	if (r < 0)
		return fail(err, errlen, r, "write %s/status.json", dir);
	size_t len;
	_cleanup_free_ char *html = status_html(p, &len);
	r = write_file_atomic_at(dfd, "status.html", html, len, 0644, 0);
	if (r < 0)
		return fail(err, errlen, r, "write %s/status.html", dir);
	if (err && errlen)
		err[0] = '\0';
	return 0;
}

/*
 * test_statuspage.c - statuspage.c writing status.json and status.html into
 * a temporary folder. The four situations the page is read in (all well;
 * one announced outage holding messages of three types; a planned window;
 * an outage that ended overnight) each give the right banner, title and
 * cards, with message types by name, whom to phone, and never a path, an
 * errno text or a raw fault code. Also: the JSON parses and carries every
 * value with ISO and epoch-ms times; the HTML is escaped, self-contained,
 * refreshed by script (no meta refresh) and labelled in the page language;
 * no temporary file stays behind; and a rewrite replaces both files while
 * a reader thread keeps opening them, which must never find a file missing
 * or cut short. Each scenario's page is kept under build/statuspage/ to
 * look at in a browser (tests/integration/test_statuspage_browser.py
 * measures the daemon's own page).
 *
 * Every test runs in its own process (Criterion forks) with
 * TZ=Europe/Copenhagen, so the expected local times are fixed.
 */
#include "notice/statuspage.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define T0 1768471200000LL /* 2026-01-15 10:00:00 UTC = 11:00 in Copenhagen */
#define MIN 60000LL
#define HOUR 3600000LL
#define EVIL "<b>&"

static char tmp[64];
static char dir[128];

static void setup(void)
{
	setenv("TZ", "Europe/Copenhagen", 1);
	tzset();
	testutil_mkdtemp(tmp, sizeof(tmp), "/tmp/eb-status-XXXXXX");
	snprintf(dir, sizeof(dir), "%s/www/status", tmp); /* not there yet */
}

static void teardown(void)
{
	testutil_rm_rf(tmp);
}

TestSuite(statuspage, .init = setup, .fini = teardown, .timeout = 20);

static const struct status_endpoint ENDPOINTS[] = {
	{ .name = "aarhus-eoj", .organisation = "Aarhus Kommune", .kind = "municipality",
	  .health = "down", .since = T0 - 2 * HOUR - 5 * MIN, .queued = 6,
	  .oldest_received_at = T0 - 2 * HOUR - 5 * MIN, .fault = "refused" },
	{ .name = "evil-ep", .organisation = EVIL, .kind = "hospital", .health = "up",
	  .since = T0 - 24 * HOUR, .queued = 0, .oldest_received_at = 0, .fault = "" },
};

static const struct status_type TYPES[] = {
	{ "XDIS20", 3 }, { "XDIS17", 2 }, { "care-communication-message", 1 },
};

#define FALLBACK "VisInfoSyd vagttelefon, +45 7011 2233"
#define NOTE "Ved udskrivning: ring før patienten sendes hjem."

static const struct status_outage OUTAGES[] = {
	{ .id = 17, .endpoint = "aarhus-eoj", .organisation = "Aarhus Kommune",
	  .state = "announced", .started_at = T0 - 2 * HOUR - 5 * MIN, .ended_at = 0,
	  .expected_end = 0, .next_status_at = T0 + HOUR, .cause_fault = "refused", .cause = "",
	  .contact = "Søren <soren@region.example>", .fallback_contact = FALLBACK,
	  .fallback_note = NOTE, .queued = 6, .oldest_received_at = T0 - 2 * HOUR - 5 * MIN,
	  .types = TYPES, .ntypes = ARRAY_SIZE(TYPES) },
	{ .id = 12, .endpoint = "evil-ep", .organisation = EVIL, .state = "resolved",
	  .started_at = T0 - 30 * HOUR, .ended_at = T0 - 26 * HOUR, .expected_end = T0 - 25 * HOUR,
	  .next_status_at = 0, .cause_fault = "timeout", .cause = "forbindelse afvist \"x\" 'y'",
	  .contact = "Regional IT", .fallback_contact = "", .fallback_note = "", .queued = 0 },
};

static const struct status_maintenance MAINTENANCE[] = {
	{ .id = 3, .endpoint = "aarhus-eoj", .organisation = "Aarhus Kommune",
	  .from = 1782900000000LL /* 2026-07-01 12:00 +02:00 */, .to = 1782900000000LL + 4 * HOUR,
	  .reason = "EOJ-opgradering", .contact = "EOJ systemansvarlig",
	  .fallback_contact = FALLBACK, .fallback_note = "" },
};

static struct status_page page(const char *lang)
{
	return (struct status_page){ .language = lang, .generated_at = T0,
				     .endpoints = ENDPOINTS, .nendpoints = ARRAY_SIZE(ENDPOINTS),
				     .outages = OUTAGES, .noutages = ARRAY_SIZE(OUTAGES),
				     .maintenance = MAINTENANCE,
				     .nmaintenance = ARRAY_SIZE(MAINTENANCE),
				     .support_phone = "EDI-support 7020 3040" };
}

static void write_page(const struct status_page *p)
{
	char err[256] = "unset";
	cr_assert_eq(statuspage_write(dir, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_empty(err);
}

static char *read_out(const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return testutil_read_file(path, NULL);
}

static json_t *read_json(void)
{
	_cleanup_free_ char *text = read_out("status.json");
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert(j, "status.json: %s at line %d", e.text, e.line);
	return j;
}

static const char *sget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static json_int_t iget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "%s is not an integer", key);
	return json_integer_value(v);
}

static void assert_has(const char *s, const char *needle)
{
	cr_assert_not_null(strstr(s, needle), "\"%s\" not in:\n%s", needle, s);
}

static void assert_lacks(const char *s, const char *needle)
{
	cr_assert_null(strstr(s, needle), "\"%s\" should not be in:\n%s", needle, s);
}

/* The text of the element that starts with open (up to its closing tag),
 * tags inside removed: what a reader sees there. */
static char *text_of(const char *html, const char *open, const char *close)
{
	const char *a = strstr(html, open);
	cr_assert_not_null(a, "no %s in:\n%s", open, html);
	const char *b = strstr(a, close);
	cr_assert_not_null(b, "%s not closed", open);
	char *out = xcalloc(1, (size_t)(b - a) + 1), *o = out;
	bool tag = false;
	for (const char *p = a + strlen(open); p < b; p++) {
		if (*p == '<')
			tag = true;
		else if (*p == '>')
			tag = false;
		else if (!tag)
			*o++ = *p;
	}
	return out;
}

/* What people read must never be a path, an errno text or a raw code. */
static void assert_plain(const char *html)
{
	static const char *const never[] = { "/tmp/", "/srv/", "No such file", "Connection refused",
					     ">refused<", ">timeout<", ": refused", "errno",
					     "http-equiv=\"refresh\"" };
	for (size_t i = 0; i < ARRAY_SIZE(never); i++)
		assert_lacks(html, never[i]);
}

/* The status page a scenario renders, its HTML read back (caller frees),
 * also kept under build/statuspage/NAME.html to look at. */
static char *render(const struct status_page *p, const char *name)
{
	write_page(p);
	char *html = read_out("status.html");
	mkdir("build", 0755);
	mkdir("build/statuspage", 0755);
	_cleanup_free_ char *keep = xasprintf("build/statuspage/%s.html", name);
	testutil_write_file(keep, html, strlen(html));
	assert_plain(html);
	return html;
}

/* ---- the four scenarios the page exists for --------------------------------- */

static const struct status_endpoint ALL_UP[] = {
	{ .name = "kbh", .organisation = "Københavns Kommune", .kind = "municipality",
	  .health = "up", .since = T0 - 24 * HOUR, .fault = "" },
	{ .name = "rh", .organisation = "Rigshospitalet", .kind = "hospital", .health = "up",
	  .since = T0 - 24 * HOUR, .fault = "" },
};

Test(statuspage, scenario_all_well)
{
	struct status_page p = { .language = "da", .generated_at = T0, .endpoints = ALL_UP,
				 .nendpoints = ARRAY_SIZE(ALL_UP) };
	_cleanup_free_ char *html = render(&p, "all-well");
	_cleanup_free_ char *h1 = text_of(html, "<h1>", "</h1>");
	cr_assert_str_eq(h1, "Alle EDI-forbindelser virker");
	assert_has(html, "<title>Alt virker \u2013 EDI-driftsstatus</title>");
	assert_has(html, "<header id=\"banner\" class=\"banner ok\"");
	assert_has(html, "<h2 id=\"h-now\">Aktuelle nedbrud</h2>\n<p>Ingen.</p>");
	assert_has(html, "Virker</span>");
	json_t *j = read_json();
	cr_assert_str_eq(sget(json_object_get(j, "banner"), "level"), "ok");
	json_decref(j);
}

static const struct status_endpoint KBH_DOWN[] = {
	{ .name = "kbh", .organisation = "Københavns Kommune", .kind = "municipality",
	  .health = "down", .since = T0 - 2 * HOUR, .queued = 6, .oldest_received_at = T0 - 2 * HOUR,
	  .fault = "refused" },
	{ .name = "rh", .organisation = "Rigshospitalet", .kind = "hospital", .health = "up",
	  .since = T0 - 24 * HOUR, .fault = "" },
};

static const struct status_outage KBH_OUTAGE = {
	.id = 4, .endpoint = "kbh", .organisation = "Københavns Kommune", .state = "announced",
	.started_at = T0 - 2 * HOUR - 9 * MIN, .next_status_at = T0 + HOUR, .cause_fault = "refused",
	.cause = "", .contact = "EOJ-drift, +45 3366 0000", .fallback_contact = FALLBACK,
	.fallback_note = NOTE, .queued = 6, .oldest_received_at = T0 - 2 * HOUR,
	.types = TYPES, .ntypes = ARRAY_SIZE(TYPES),
};

/* One announced outage holding messages of three types. */
Test(statuspage, scenario_announced_outage_with_three_types)
{
	struct status_page p = { .language = "da", .generated_at = T0, .endpoints = KBH_DOWN,
				 .nendpoints = ARRAY_SIZE(KBH_DOWN), .outages = &KBH_OUTAGE,
				 .noutages = 1 };
	_cleanup_free_ char *html = render(&p, "announced-outage");
	_cleanup_free_ char *h1 = text_of(html, "<h1>", "</h1>");
	cr_assert_str_eq(h1, "Meddelelser til Københavns Kommune leveres ikke lige nu (siden 08:51)");
	_cleanup_free_ char *banner = text_of(html, "<header", "</header>");
	assert_has(banner, "6 meddelelser venter: Indlæggelsesadvis (XDIS20) 3, Udskrivningsadvis "
			   "(XDIS17) 2, Korrespondancemeddelelse (care-communication-message) 1. "
			   "Næste status: 12:00.");
	assert_has(banner, "Nede");
	assert_has(html, "<title>Nede: Københavns Kommune \u2013 EDI-driftsstatus</title>");
	_cleanup_free_ char *card = text_of(html, "<li class=\"card down\"", "</li>\n</ul>");
	assert_has(card, "Hvad gør jeg?Haster det, så ring til " FALLBACK ".Ved udskrivning");
	assert_has(card, "Årsag til fejlforbindelsen blev afvist / mappen findes ikke eller kan "
			 "ikke skrives");
	assert_has(card, "Berørte meddelelser6 meddelelser venterIndlæggelsesadvis (XDIS20): 3"
			 "Udskrivningsadvis (XDIS17): 2");
	assert_has(card, "Forventet nedetidukendt");
	assert_has(card, "KontaktpersonEOJ-drift, +45 3366 0000");
	assert_has(card, "Næste status15-01-2026 kl. 12:00");
	assert_has(card, "Nede siden 15-01-2026 kl. 08:51 (2 t 9 min). Nedbrud nr. 4.");
	assert_lacks(card, "Nede Nede");
	assert_lacks(html, "refused");
	json_t *j = read_json();
	json_t *o = json_array_get(json_object_get(j, "outages"), 0);
	cr_assert_str_eq(sget(o, "fallback_contact"), FALLBACK);
	cr_assert_str_eq(sget(o, "cause_fault"), "refused", "machines keep the class name");
	json_t *a = json_object_get(o, "affected");
	cr_assert_eq(json_array_size(a), 3);
	cr_assert_str_eq(sget(json_array_get(a, 0), "name"), "Indlæggelsesadvis");
	cr_assert_str_eq(sget(json_object_get(j, "banner"), "level"), "down");
	json_decref(j);
}

/* A planned window in force: its own banner, and the card says until when
 * and whom to phone meanwhile. */
Test(statuspage, scenario_planned_window)
{
	struct status_endpoint eps[] = { KBH_DOWN[0], KBH_DOWN[1] };
	eps[0].health = "maintenance", eps[0].fault = "";
	struct status_maintenance m = {
		.id = 9, .endpoint = "kbh", .organisation = "Københavns Kommune",
		.from = T0 - HOUR, .to = T0 + 3 * HOUR, .reason = "Opgradering af EOJ",
		.contact = "EOJ systemansvarlig", .fallback_contact = FALLBACK, .fallback_note = "",
		.queued = 3, .types = TYPES, .ntypes = 1,
	};
	struct status_page p = { .language = "da", .generated_at = T0, .endpoints = eps,
				 .nendpoints = 2, .maintenance = &m, .nmaintenance = 1 };
	_cleanup_free_ char *html = render(&p, "planned-window");
	_cleanup_free_ char *h1 = text_of(html, "<h1>", "</h1>");
	cr_assert_str_eq(h1, "Planlagt nedlukning: meddelelser til Københavns Kommune venter til "
			     "14:00");
	assert_has(html, "<title>Planlagt nedlukning: Københavns Kommune \u2013 EDI-driftsstatus"
			 "</title>");
	_cleanup_free_ char *card = text_of(html, "<li class=\"card active\"", "</li>");
	assert_has(card, "I gang");
	assert_has(card, "Periode15-01-2026 kl. 10:00 \u2013 14:00 (4 t)");
	assert_has(card, "Hvad gør jeg i perioden?Haster det, så ring til " FALLBACK ".");
	assert_has(card, "ÅrsagOpgradering af EOJ");
	assert_has(card, "Indlæggelsesadvis (XDIS20): 3");
	assert_has(html, "Aktuelle nedbrud</h2>\n<p>Ingen.</p>");
}

/* The outage ended at 03:10 while notices were held; at 08:00 the page
 * says all is well, and that it ended. */
Test(statuspage, scenario_outage_ended_overnight)
{
	int64_t morning = T0 - 3 * HOUR; /* 08:00 */
	struct status_outage o = KBH_OUTAGE;
	o.state = "resolved", o.ended_at = T0 - 7 * HOUR - 50 * MIN; /* 03:10 */
	o.started_at = T0 - 14 * HOUR, o.next_status_at = 0, o.queued = 0, o.ntypes = 0;
	struct status_page p = { .language = "da", .generated_at = morning, .endpoints = ALL_UP,
				 .nendpoints = 2, .outages = &o, .noutages = 1 };
	_cleanup_free_ char *html = render(&p, "ended-overnight");
	_cleanup_free_ char *h1 = text_of(html, "<h1>", "</h1>");
	cr_assert_str_eq(h1, "Alle EDI-forbindelser virker");
	_cleanup_free_ char *banner = text_of(html, "<header", "</header>");
	assert_has(banner, "Nedbruddet hos Københavns Kommune sluttede 03:10; alle ventende "
			   "meddelelser er leveret.");
	assert_has(html, "Afsluttede nedbrud");
	assert_has(html, "Københavns Kommune: Nede fra 14-01-2026 kl. 21:00 til 15-01-2026 kl. "
			 "03:10 (6 t 10 min). Alle ventende meddelelser er leveret.");
	assert_has(html, "Aktuelle nedbrud</h2>\n<p>Ingen.</p>");
}

/* ---- the page's shape --------------------------------------------------------- */

/* The banner is the body's first element; the page refreshes by script,
 * never by meta refresh; nothing is loaded from elsewhere. */
Test(statuspage, html_banner_first_script_refresh_no_external_asset)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	cr_assert(strncmp(html, "<!DOCTYPE html>\n<html lang=\"da\">", 32) == 0);
	const char *body = strstr(html, "<body");
	cr_assert_not_null(body);
	body = strchr(body, '>') + 1;
	cr_assert(strncmp(body, "\n<header id=\"banner\"", 20) == 0, "%.80s", body);
	assert_has(html, "<meta charset=\"utf-8\">");
	assert_has(html, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
	assert_lacks(html, "http-equiv");
	assert_has(html, "fetch('status.json'");
	assert_has(html, "data-generated=\"1768471200000\"");
	cr_assert_null(strstr(html, "src="));
	cr_assert_null(strstr(html, "href="));
	cr_assert_null(strstr(html, "url("));
	cr_assert_null(strstr(html, "@import"));
	size_t n = strlen(html);
	cr_assert(n > 16 && strcmp(html + n - 16, "</body>\n</html>\n") == 0);
}

Test(statuspage, json_carries_every_value)
{
	struct status_page p = page("da");
	write_page(&p);
	json_t *j = read_json();
	cr_assert_str_eq(sget(j, "language"), "da");
	cr_assert_str_eq(sget(j, "generated_at"), "2026-01-15T11:00:00+01:00");
	cr_assert_eq(iget(j, "generated_at_ms"), T0);
	cr_assert_str_eq(sget(j, "title"), "Nede: Aarhus Kommune \u2013 EDI-driftsstatus");
	json_t *e = json_array_get(json_object_get(j, "endpoints"), 0);
	cr_assert_eq(json_array_size(json_object_get(j, "endpoints")), 2);
	cr_assert_str_eq(sget(e, "name"), "aarhus-eoj");
	cr_assert_str_eq(sget(e, "kind"), "municipality");
	cr_assert_str_eq(sget(e, "health"), "down");
	cr_assert_str_eq(sget(e, "health_words"), "Nede");
	cr_assert_str_eq(sget(e, "since"), "2026-01-15T08:55:00+01:00");
	cr_assert_eq(iget(e, "queued"), 6);
	cr_assert_eq(iget(e, "oldest_age_s"), 2 * 3600 + 5 * 60);
	cr_assert_str_eq(sget(e, "fault"), "refused");
	cr_assert_null(json_object_get(e, "last_error"), "no error text on the published page");
	json_t *e2 = json_array_get(json_object_get(j, "endpoints"), 1);
	cr_assert_str_eq(sget(e2, "organisation"), EVIL);
	cr_assert(json_is_null(json_object_get(e2, "oldest_received_at")));
	cr_assert(json_is_null(json_object_get(e2, "oldest_age_s")));
	cr_assert(json_is_null(json_object_get(e2, "fault")));
	json_decref(j);
}

Test(statuspage, json_outages_and_maintenance)
{
	struct status_page p = page("da");
	write_page(&p);
	json_t *j = read_json();
	json_t *o = json_array_get(json_object_get(j, "outages"), 0);
	cr_assert_eq(iget(o, "id"), 17);
	cr_assert_str_eq(sget(o, "state"), "announced");
	cr_assert(json_is_true(json_object_get(o, "open")));
	cr_assert_str_eq(sget(o, "cause"),
			 "forbindelsen blev afvist / mappen findes ikke eller kan ikke skrives");
	cr_assert_str_eq(sget(o, "contact"), OUTAGES[0].contact);
	cr_assert_str_eq(sget(o, "fallback"), "Haster det, så ring til " FALLBACK ".\n" NOTE);
	cr_assert(json_is_null(json_object_get(o, "expected_end")));
	cr_assert(json_is_null(json_object_get(o, "ended_at_ms")));
	cr_assert_eq(iget(o, "next_status_at_ms"), T0 + HOUR);
	cr_assert_str_eq(sget(o, "next_status_at"), "2026-01-15T12:00:00+01:00");
	json_t *r = json_array_get(json_object_get(j, "outages"), 1);
	cr_assert(json_is_false(json_object_get(r, "open")));
	cr_assert_str_eq(sget(r, "cause"), OUTAGES[1].cause, "the operator's words as given");
	json_t *m = json_array_get(json_object_get(j, "maintenance"), 0);
	cr_assert_str_eq(sget(m, "from"), "2026-07-01T12:00:00+02:00");
	cr_assert_str_eq(sget(m, "to"), "2026-07-01T16:00:00+02:00");
	cr_assert_str_eq(sget(m, "reason"), "EOJ-opgradering");
	cr_assert_eq(iget(m, "id"), 3);
	cr_assert(json_is_false(json_object_get(m, "active")));
	json_decref(j);
}

Test(statuspage, html_escapes_every_value)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	assert_has(html, "<h3>&lt;b&gt;&amp;</h3>");
	cr_assert_null(strstr(html, EVIL));
	assert_has(html, "forbindelse afvist &quot;x&quot; &#39;y&#39;");
	assert_has(html, "Søren &lt;soren@region.example&gt;");
}

/* Without a fallback contact: the regional support's phone. */
Test(statuspage, support_phone_when_no_fallback_contact)
{
	struct status_outage o = KBH_OUTAGE;
	o.fallback_contact = "", o.fallback_note = "";
	struct status_page p = { .language = "da", .generated_at = T0, .outages = &o,
				 .noutages = 1, .support_phone = "EDI-support 7020 3040" };
	_cleanup_free_ char *html = render(&p, "support-phone");
	assert_has(html, "Haster det, så ring til den regionale EDI-support, EDI-support "
			 "7020 3040.");
}

/* Two at once: the banner names both, the title counts. */
Test(statuspage, two_outages_in_the_banner)
{
	struct status_outage o[2] = { KBH_OUTAGE, KBH_OUTAGE };
	o[1].id = 5, o[1].endpoint = "rh", o[1].organisation = "Rigshospitalet";
	o[1].queued = 3, o[1].ntypes = 1;
	struct status_page p = { .language = "da", .generated_at = T0, .outages = o,
				 .noutages = 2 };
	_cleanup_free_ char *html = render(&p, "two-outages");
	_cleanup_free_ char *h1 = text_of(html, "<h1>", "</h1>");
	cr_assert_str_eq(h1, "Meddelelser til Københavns Kommune og Rigshospitalet leveres ikke "
			     "lige nu");
	assert_has(html, "<title>Nede: 2 forbindelser");
	assert_has(html, "<br>Rigshospitalet: 3 meddelelser venter: Indlæggelsesadvis (XDIS20) 3.");
}

Test(statuspage, html_english)
{
	struct status_page p = page("en");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	assert_has(html, "<html lang=\"en\">");
	assert_has(html, "<h1>Messages to Aarhus Kommune are not being delivered (since 08:55)</h1>");
	assert_has(html, "<dt>Cause of the fault</dt>");
	assert_has(html, "<dt>What do I do?</dt><dd class=\"todo\">If something is urgent, phone "
			 FALLBACK ".");
	assert_has(html, "Hospital admission notice (XDIS20): 3");
	assert_has(html, ">2026-01-15 12:00</time>");
	cr_assert_null(strstr(html, "ukendt"));
	cr_assert_null(strstr(html, "Hvad gør jeg"));
}

Test(statuspage, empty_page_says_none)
{
	struct status_page p = { .language = "da", .generated_at = T0 };
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	assert_has(html, "<h2 id=\"h-now\">Aktuelle nedbrud</h2>\n<p>Ingen.</p>");
	cr_assert_null(strstr(html, "<table"));
	json_t *j = read_json();
	cr_assert_eq(json_array_size(json_object_get(j, "outages")), 0);
	cr_assert(json_is_array(json_object_get(j, "endpoints")));
	json_decref(j);
}

Test(statuspage, invalid_utf8_does_not_lose_the_page)
{
	struct status_endpoint e = ENDPOINTS[0];
	e.organisation = "Bad \xff\xfe name";
	struct status_page p = { .language = "da", .generated_at = T0, .endpoints = &e,
				 .nendpoints = 1 };
	write_page(&p);
	json_t *j = read_json();
	json_t *e0 = json_array_get(json_object_get(j, "endpoints"), 0);
	cr_assert_str_eq(sget(e0, "organisation"), "Bad ?? name");
	json_decref(j);
}

/* The folder is created; only the two files remain, readable by the
 * intranet's web server whatever the umask. */
Test(statuspage, creates_folder_and_leaves_no_temporary_files)
{
	umask(077);
	struct status_page p = page("da");
	write_page(&p);
	write_page(&p);
	DIR *d = opendir(dir);
	cr_assert(d, "%s not created", dir);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		n++;
		cr_assert(strcmp(e->d_name, "status.html") == 0 || strcmp(e->d_name, "status.json") == 0,
			  "left behind: %s", e->d_name);
		struct stat st;
		cr_assert(fstatat(dirfd(d), e->d_name, &st, 0) == 0);
		cr_assert_eq(st.st_mode & 0777, 0644, "%s mode %o", e->d_name, st.st_mode & 0777);
	}
	closedir(d);
	cr_assert_eq(n, 2);
}

Test(statuspage, error_names_the_path)
{
	_cleanup_free_ char *file = xasprintf("%s/plain-file", tmp);
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert(fd >= 0);
	struct status_page p = page("da");
	char err[256] = "";
	int r = statuspage_write(file, &p, err, sizeof(err));
	cr_assert(r == -ENOTDIR || r == -EEXIST, "r = %d", r);
	cr_assert(strstr(err, file), "%s", err);
}

/* ---- atomic replacement under a concurrent reader ------------------------------- */

struct reader {
	atomic_bool stop;
	long reads, missing, partial;
};

/* One look at a file: it must exist and be whole. */
static void look(struct reader *r, const char *name, const char *tail)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	uint8_t *buf = NULL;
	size_t len;
	int e = read_file_at(AT_FDCWD, path, 1 << 24, &buf, &len);
	r->reads++;
	if (e == -ENOENT)
		r->missing++;
	else if (e < 0 || len < strlen(tail) || strcmp((char *)buf + len - strlen(tail), tail))
		r->partial++;
	free(buf);
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	while (!atomic_load(&r->stop)) {
		look(r, "status.html", "</html>\n");
		look(r, "status.json", "}\n");
	}
	return NULL;
}

Test(statuspage, rewrite_replaces_atomically)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = xasprintf("%s/status.html", dir);
	struct stat before, after;
	cr_assert(stat(html, &before) == 0);
	write_page(&p);
	cr_assert(stat(html, &after) == 0);
	/* The old inode is still held by its name while the new one is made,
	 * so a replacement always has a new number (later ones may recycle). */
	cr_assert_neq(before.st_ino, after.st_ino, "rewritten in place, not replaced");
	struct reader r = { .stop = false };
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, read_loop, &r) == 0);
	for (int i = 0; i < 200; i++) {
		p.generated_at = T0 + i * MIN;
		p.nendpoints = 1 + i % 2; /* the size changes too */
		write_page(&p);
	}
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	cr_assert_gt(r.reads, 10);
	cr_assert_eq(r.missing, 0, "a file was missing %ld of %ld times", r.missing, r.reads);
	cr_assert_eq(r.partial, 0, "a file was incomplete %ld of %ld times", r.partial, r.reads);
	json_t *j = read_json();
	cr_assert_eq(iget(j, "generated_at_ms"), T0 + 199 * MIN);
	json_decref(j);
}

/*
 * test_notice.c - the outage notices people read (notice.c): the four
 * fields of the procedure in every kind and both languages, the words and
 * times they are written in, the affected-messages block, the JSON payload,
 * the template files an operator may drop in, and the limits that keep
 * untrusted values (error texts, names) from reshaping a notice.
 *
 * Every test runs in its own process with TZ=Europe/Copenhagen. Instants
 * are hard-coded and were checked with
 * `TZ=Europe/Copenhagen date -d '2026-11-27 14:05' +%s`.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "notice/notice.h"
#include "tests/unit/testutil.h"

#define MINUTE (60 * 1000LL)
#define HOUR (60 * MINUTE)

#define T_START 1795784700000LL  /* 2026-11-27 14:05 CET */
#define T_NOW 1795792800000LL    /* 2026-11-27 16:20 CET: 2 h 15 min later */
#define T_EXPECT 1795795200000LL /* 2026-11-27 17:00 CET */
#define T_NEXT 1795796400000LL   /* 2026-11-27 17:20 CET */
#define T_NIGHT 1795831800000LL  /* 2026-11-28 03:10 CET */
#define T_SUMMER 1782907200000LL /* 2026-07-01 12:00Z = 14:00 CEST */
#define T_WINTER 1796126400000LL /* 2026-12-01 12:00Z = 13:00 CET */

static const char *const four_da[] = { "Årsag til fejl: ", "Berørte meddelelser: ",
				       "Forventet nedetid: ", "Kontaktperson: " };
static const char *const four_en[] = { "Cause of the fault: ", "Affected messages: ",
				       "Expected downtime: ", "Contact person: " };
static const enum notice_kind four_kinds[] = { NOTICE_INITIAL, NOTICE_UPDATE, NOTICE_SUMMARY,
					       NOTICE_PLANNED };

static struct notice_affected affected[] = {
	{ "XREF01", 1, "Aarhus Universitetshospital" },
	{ "XDIS20", 8, "Regionshospitalet Randers" },
	{ "XDIS20", 4, "Aarhus Universitetshospital" },
	{ "XDIS20", 2, "Regionshospitalet Randers" },
};

static struct notice_text out;
static char dir[64];

static void setup(void)
{
	setenv("TZ", "Europe/Copenhagen", 1);
	tzset();
}

static void teardown(void)
{
	notice_text_free(&out);
	testutil_rm_rf(dir);
}

TestSuite(notice, .init = setup, .fini = teardown);

/* An acute outage, 2 h 15 min old, as the daemon would describe it. */
static struct notice_facts facts(enum notice_kind k)
{
	return (struct notice_facts){
		.kind = k, .endpoint = "aarhus-kommune", .organisation = "Aarhus Kommune",
		.endpoint_kind = "municipality", .outage_id = 42, .started_at = T_START,
		.now = T_NOW, .next_status_at = T_NEXT, .cause_fault = "timeout",
		.cause_text = "outbox files not collected within 15m",
		.contact = "EOJ-drift, tlf. 8940 0000", .affected = affected,
		.naffected = 4, .queued = 15, .oldest_received_at = T_START + MINUTE,
		.reason = "opgradering af EOJ",
	};
}

/* The facts of an all-clear after a night: ended 03:10, 15 delivered late. */
static struct notice_facts resolved(enum notice_kind k)
{
	struct notice_facts f = facts(k);

	f.ended_at = T_NIGHT, f.now = T_NIGHT + 5 * HOUR, f.next_status_at = 0;
	f.queued = 0, f.oldest_received_at = 0, f.delivered_late = 15;
	return f;
}

static struct notice_templates *load(const char *lang, const char *from)
{
	char err[256] = "";
	struct notice_templates *t = notice_templates_load(lang, from, err, sizeof(err));

	cr_assert_not_null(t, "loading %s templates failed: %s", lang, err);
	return t;
}

/* Renders f with the built-in templates of lang into out. */
static void render(const char *lang, const struct notice_facts *f)
{
	struct notice_templates *t = load(lang, NULL);

	notice_text_free(&out);
	cr_assert_eq(notice_render(t, f, &out), 0);
	notice_templates_free(t);
}

/* The body line that starts with prefix, or "" (static buffer). */
static const char *line(const char *prefix)
{
	static char buf[1024];
	const char *p = out.body;

	for (; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			break;
	buf[0] = '\0';
	if (p)
		snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(p, "\n"), p);
	return buf;
}

static void assert_line(const char *want)
{
	const char *colon = strchr(want, ':');
	char prefix[128];

	snprintf(prefix, sizeof(prefix), "%.*s", colon ? (int)(colon - want + 1) : 8, want);
	cr_assert_str_eq(line(prefix), want, "in body:\n%s", out.body);
}

static json_t *payload(void);

static void assert_has(const char *s, const char *needle)
{
	cr_assert_not_null(strstr(s, needle), "\"%s\" not in:\n%s", needle, s);
}

static void assert_lacks(const char *s, const char *needle)
{
	cr_assert_null(strstr(s, needle), "\"%s\" should not be in:\n%s", needle, s);
}

static void write_file(const char *sub, const char *name, const char *text)
{
	char path[256];

	if (!dir[0])
		testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_notice.XXXXXX");
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	testutil_write_file(path, text, strlen(text));
}

/* ---- kinds -------------------------------------------------------------- */

Test(notice, kind_names_round_trip)
{
	const char *names[] = { "initial", "update", "allclear", "summary", "planned" };

	for (int k = 0; k < NOTICE_KIND_COUNT; k++) {
		cr_assert_str_eq(notice_kind_name(k), names[k]);
		cr_assert_eq(notice_kind_from_name(names[k]), k);
	}
	cr_assert_eq(notice_kind_from_name("Initial"), -1);
	cr_assert_eq(notice_kind_from_name(NULL), -1);
	cr_assert_null(notice_kind_name(NOTICE_KIND_COUNT));
}

/* ---- the four fields ---------------------------------------------------- */

static void assert_four_fields(const char *lang, const char *const labels[4])
{
	for (size_t i = 0; i < sizeof(four_kinds) / sizeof(four_kinds[0]); i++) {
		struct notice_facts f = four_kinds[i] == NOTICE_INITIAL ||
						four_kinds[i] == NOTICE_UPDATE ?
						facts(four_kinds[i]) :
						resolved(four_kinds[i]);
		render(lang, &f);
		cr_assert_gt(strlen(out.subject), 10);
		for (int j = 0; j < 4; j++)
			cr_assert_gt(strlen(line(labels[j])), strlen(labels[j]),
				     "%s %s lacks a value for \"%s\":\n%s", lang,
				     notice_kind_name(four_kinds[i]), labels[j], out.body);
	}
}

Test(notice, four_fields_in_every_danish_kind)
{
	assert_four_fields("da", four_da);
}

Test(notice, four_fields_in_every_english_kind)
{
	assert_four_fields("en", four_en);
}

Test(notice, subjects_name_kind_organisation_and_endpoint)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	render("da", &f);
	cr_assert_str_eq(out.subject, "EDI-nedbrud: Aarhus Kommune (aarhus-kommune) - meddelelser venter");
	f = resolved(NOTICE_ALLCLEAR);
	render("en", &f);
	cr_assert_str_eq(out.subject,
			 "EDI outage resolved: Aarhus Kommune (aarhus-kommune) - connection working again");
	f.organisation = "";
	render("en", &f);
	assert_has(out.subject, ": aarhus-kommune (aarhus-kommune)");
}

Test(notice, allclear_states_duration_and_late_deliveries)
{
	struct notice_facts f = resolved(NOTICE_ALLCLEAR);

	render("da", &f);
	assert_line("Varighed: 13 t 5 min (fra 27-11-2026 kl. 14:05 til 28-11-2026 kl. 03:10)");
	assert_line("Meddelelser leveret forsinket: 15");
	assert_lacks(out.body, "Næste status");
	render("en", &f);
	assert_line("Duration: 13 h 5 min (from 2026-11-27 14:05 to 2026-11-28 03:10)");
	assert_line("Messages delivered late: 15");
	assert_lacks(out.body, "Next status");
}

/* ---- expected downtime -------------------------------------------------- */

Test(notice, expected_downtime_unknown_when_not_set)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	render("da", &f);
	assert_line("Forventet nedetid: ukendt");
	render("en", &f);
	assert_line("Expected downtime: unknown");
}

Test(notice, expected_downtime_shows_end_and_time_left)
{
	struct notice_facts f = facts(NOTICE_UPDATE);

	f.expected_end = T_EXPECT;
	render("da", &f);
	assert_line("Forventet nedetid: til 27-11-2026 kl. 17:00 (ca. 40 min endnu)");
	render("en", &f);
	assert_line("Expected downtime: until 2026-11-27 17:00 (about 40 min from now)");
	f.now = T_EXPECT + MINUTE;
	render("da", &f);
	assert_line("Forventet nedetid: til 27-11-2026 kl. 17:00 (tidspunktet er overskredet)");
}

/* ---- cause -------------------------------------------------------------- */

Test(notice, cause_in_words_per_fault_class)
{
	static const char *const classes[][3] = {
		{ "refused", "forbindelsen blev afvist / mappen findes ikke eller kan ikke skrives",
		  "connection refused / folder missing or not writable" },
		{ "timeout", "intet svar / filer hentes ikke", "no answer / files are not collected" },
		{ "tls", "TLS-fejl", "TLS failure" },
		{ "disk-full", "disken er fuld", "disk full" },
		{ "rejected", "modtageren afviste meddelelsen", "the receiver rejected the message" },
		{ "io", "I/O-fejl", "I/O error" },
	};
	struct notice_facts f = facts(NOTICE_INITIAL);
	char want[256];

	f.cause_text = "errno 5";
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		f.cause_fault = classes[i][0];
		render("da", &f);
		snprintf(want, sizeof(want), "Årsag til fejl: %s", classes[i][1]);
		assert_line(want);
		render("en", &f);
		snprintf(want, sizeof(want), "Cause of the fault: %s", classes[i][2]);
		assert_line(want);
	}
}

/* The error text behind a fault (a path, an errno text, a library's
 * message) stays in the log: not in the subject, the body or the payload,
 * and the raw class name is not shown either. */
Test(notice, no_error_text_path_or_raw_fault_code_reaches_people)
{
	static const char err[] = "open outbox /tmp/eb/spool/out: No such file or directory";
	enum notice_kind kinds[] = { NOTICE_INITIAL, NOTICE_UPDATE, NOTICE_ALLCLEAR,
				     NOTICE_SUMMARY };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct notice_facts f = kinds[i] == NOTICE_INITIAL || kinds[i] == NOTICE_UPDATE
						? facts(kinds[i]) : resolved(kinds[i]);
		f.cause_fault = "refused", f.cause_text = err;
		render(i % 2 ? "en" : "da", &f);
		assert_lacks(out.body, "/tmp/");
		assert_lacks(out.body, "No such file");
		assert_lacks(out.body, ": refused\n");
		assert_lacks(out.subject, "/tmp/");
		assert_lacks(out.payload, "/tmp/");
		assert_lacks(out.payload, "No such file");
		json_t *j = payload();
		cr_assert(json_is_null(json_object_get(j, "cause_text")));
		cr_assert_str_eq(json_string_value(json_object_get(j, "cause_fault")), "refused",
				 "machines keep the stable class name");
		json_decref(j);
	}
}

Test(notice, operator_cause_replaces_the_classified_one)
{
	struct notice_facts f = facts(NOTICE_UPDATE);

	f.cause_by_operator = true;
	f.cause_text = "Leverandøren opgraderer EOJ-systemet";
	render("da", &f);
	assert_line("Årsag til fejl: Leverandøren opgraderer EOJ-systemet");
	f.cause_text = "";
	render("da", &f);
	assert_line("Årsag til fejl: intet svar / filer hentes ikke");
}

Test(notice, cause_unknown_class_or_none)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.cause_fault = "gremlins";
	render("da", &f);
	assert_line("Årsag til fejl: ukendt fejl");
	f.cause_fault = "none"; /* FAULT_NONE has no words of its own */
	render("en", &f);
	assert_line("Cause of the fault: unknown fault");
	f.cause_fault = NULL, f.cause_text = NULL;
	render("en", &f);
	assert_line("Cause of the fault: unknown");
}

/* ---- affected messages -------------------------------------------------- */

Test(notice, affected_block_groups_types_and_organisations)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	render("da", &f);
	assert_has(out.body, "Berørte meddelelser: 15 meddelelser venter\n"
			     "  - Indlæggelsesadvis (XDIS20): 14 (4 fra Aarhus Universitetshospital, "
			     "10 fra Regionshospitalet Randers)\n"
			     "  - XREF01: 1 (fra Aarhus Universitetshospital)\n"
			     "  Den ældste har ventet 2 t 14 min (siden 27-11-2026 kl. 14:06).\n"
			     "Forventet nedetid: ");
	render("en", &f);
	assert_has(out.body, "Affected messages: 15 messages waiting\n"
			     "  - Hospital admission notice (XDIS20): 14 (4 from Aarhus "
			     "Universitetshospital, "
			     "10 from Regionshospitalet Randers)\n");
}

Test(notice, affected_none_waiting)
{
	struct notice_facts f = facts(NOTICE_UPDATE);

	f.naffected = 0, f.queued = 0, f.oldest_received_at = 0;
	render("da", &f);
	assert_line("Berørte meddelelser: ingen meddelelser venter");
	assert_lacks(out.body, "ældste");
	render("en", &f);
	assert_line("Affected messages: no messages are waiting");
}

/* A type normally exchanged with nothing waiting is still named: it is a
 * type that cannot flow. Without queued, the rows are added up. */
Test(notice, affected_types_without_messages_and_total_from_rows)
{
	struct notice_affected a[] = { { "XDIS20", 2, "Skejby" }, { "XDIS20", 1, "Skejby" },
				       { "XREF01", 0, "Skejby" }, { "XDIS20", 0, "Randers" } };
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.affected = a, f.naffected = 4, f.queued = 0;
	render("da", &f);
	assert_has(out.body, "Berørte meddelelser: 3 meddelelser venter\n"
			     "  - Indlæggelsesadvis (XDIS20): 3 (fra Skejby)\n"
			     "  - XREF01: ingen venter\n");
}

Test(notice, affected_lists_are_capped)
{
	struct notice_affected a[40];
	char names[40][16];
	struct notice_facts f = facts(NOTICE_INITIAL);

	for (int i = 0; i < 20; i++) { /* 20 types from one organisation */
		snprintf(names[i], sizeof(names[i]), "TYPE%02d", i);
		a[i] = (struct notice_affected){ names[i], 1, "A" };
	}
	for (int i = 20; i < 40; i++) { /* 20 organisations of TYPE00 */
		snprintf(names[i], sizeof(names[i]), "Org%02d", i);
		a[i] = (struct notice_affected){ "TYPE00", 1, names[i] };
	}
	f.affected = a, f.naffected = 40;
	render("da", &f);
	assert_has(out.body, "  - TYPE14: 1 (fra A)\n  - og 5 andre typer\n");
	assert_lacks(out.body, "TYPE15");
	assert_has(out.body, "1 fra Org24, og 15 andre)\n");
}

/* ---- next status, times ------------------------------------------------- */

Test(notice, next_status_time_or_none)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	render("da", &f);
	assert_line("Næste status: 27-11-2026 kl. 17:20");
	render("en", &f);
	assert_line("Next status: 2026-11-27 17:20");
	f.next_status_at = 0;
	render("da", &f);
	assert_line("Næste status: ingen planlagt; der kommer besked, når fejlen er rettet");
}

Test(notice, local_times_follow_summer_time)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.started_at = T_SUMMER, f.now = T_SUMMER + 3 * HOUR;
	render("da", &f);
	assert_has(out.body, "nede siden 01-07-2026 kl. 14:00 (3 t)");
	assert_has(out.payload, "\"started_at\":\"2026-07-01T14:00:00+02:00\"");
	f.started_at = T_WINTER, f.now = T_WINTER + 3 * HOUR;
	render("en", &f);
	assert_has(out.body, "down since 2026-12-01 13:00 (3 h)");
	assert_has(out.payload, "\"started_at\":\"2026-12-01T13:00:00+01:00\"");
}

/* The payload's offsets are right on either side of UTC. */
Test(notice, payload_offset_west_of_utc)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	setenv("TZ", "America/New_York", 1);
	tzset();
	render("en", &f);
	assert_has(out.payload, "\"started_at\":\"2026-11-27T08:05:00-05:00\"");
	assert_has(out.body, "down since 2026-11-27 08:05");
}

Test(notice, overnight_sentence_only_when_it_ended_overnight)
{
	struct notice_facts f = resolved(NOTICE_ALLCLEAR);

	render("da", &f);
	assert_lacks(out.body, "nattens");
	/* the {{overnight}} line is dropped, not left blank */
	assert_has(out.body, "kl. 03:10.\nAlle ventende meddelelser er leveret.\n");
	f.ended_overnight = true;
	render("da", &f);
	assert_line("Nedbruddet sluttede i nattens løb kl. 03:10.");
	f.kind = NOTICE_SUMMARY;
	render("en", &f);
	assert_line("The outage ended during the night, at 03:10.");
}

static void assert_duration(const char *lang, int64_t ms, const char *want)
{
	struct notice_facts f = resolved(NOTICE_ALLCLEAR);
	char prefix[64];

	f.ended_at = f.started_at + ms;
	render(lang, &f);
	snprintf(prefix, sizeof(prefix), "%s %s (", strcmp(lang, "da") ? "Duration:" : "Varighed:",
		 want);
	assert_has(out.body, prefix);
}

Test(notice, duration_edges)
{
	assert_duration("da", 0, "0 min");
	assert_duration("da", 59 * MINUTE + 59999, "59 min");
	assert_duration("da", HOUR, "1 t");
	assert_duration("da", 25 * HOUR + MINUTE, "25 t 1 min");
	assert_duration("da", 47 * HOUR + 59 * MINUTE, "47 t 59 min");
	assert_duration("da", 48 * HOUR, "2 døgn");
	assert_duration("da", 74 * HOUR + 5 * MINUTE, "3 døgn 2 t");
	assert_duration("en", 2 * HOUR + 15 * MINUTE, "2 h 15 min");
	assert_duration("en", 49 * HOUR, "2 d 1 h");
	assert_duration("da", -HOUR, "0 min"); /* a clock step never shows a negative time */
}

/* ---- payload ------------------------------------------------------------ */

static json_t *payload(void)
{
	json_error_t e;
	json_t *j = json_loads(out.payload, 0, &e);

	cr_assert_not_null(j, "payload is not JSON: %s\n%s", e.text, out.payload);
	return j;
}

Test(notice, payload_carries_facts_and_texts)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	render("da", &f);
	json_t *j = payload();
	cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "initial");
	cr_assert_str_eq(json_string_value(json_object_get(j, "endpoint")), "aarhus-kommune");
	cr_assert_str_eq(json_string_value(json_object_get(j, "organisation")), "Aarhus Kommune");
	cr_assert_eq(json_integer_value(json_object_get(j, "outage_id")), 42);
	cr_assert_str_eq(json_string_value(json_object_get(j, "started_at")),
			 "2026-11-27T14:05:00+01:00");
	cr_assert_eq(json_integer_value(json_object_get(j, "started_at_ms")), T_START);
	cr_assert(json_is_null(json_object_get(j, "ended_at")));
	cr_assert(json_is_null(json_object_get(j, "expected_end_ms")));
	cr_assert(json_is_false(json_object_get(j, "cause_by_operator")));
	json_t *a = json_object_get(j, "affected");
	cr_assert_eq(json_array_size(a), 4);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1), "type")), "XDIS20");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(a, 1), "count")), 8);
	cr_assert_str_eq(json_string_value(json_object_get(j, "subject")), out.subject);
	cr_assert_str_eq(json_string_value(json_object_get(j, "body")), out.body);
	json_decref(j);
}

/* The payload is the facts and the texts, nothing else: a key added here
 * must be a field of struct notice_facts. */
Test(notice, payload_has_no_key_beyond_the_facts)
{
	static const char *const keys[] = {
		"kind", "language", "endpoint", "organisation", "endpoint_kind", "outage_id",
		"cause_fault", "cause_text", "cause_by_operator", "contact", "reason", "queued",
		"delivered_late", "ended_overnight", "started_at", "started_at_ms", "ended_at",
		"ended_at_ms", "composed_at", "composed_at_ms", "next_status_at",
		"next_status_at_ms", "expected_end", "expected_end_ms", "oldest_received_at",
		"oldest_received_at_ms", "affected", "acks_overdue", "acks_overdue_since",
		"acks_overdue_since_ms", "subject", "body", "cause", "fallback_contact",
		"fallback_note", "fallback", "status_url",
	};
	struct notice_facts f = facts(NOTICE_UPDATE);
	const char *key;
	json_t *v;

	render("en", &f);
	json_t *j = payload();
	cr_assert_eq(json_object_size(j), sizeof(keys) / sizeof(keys[0]));
	json_object_foreach(j, key, v) {
		size_t i = 0;
		while (i < sizeof(keys) / sizeof(keys[0]) && strcmp(keys[i], key) != 0)
			i++;
		cr_assert_lt(i, sizeof(keys) / sizeof(keys[0]), "unexpected key %s", key);
	}
	json_decref(j);
}

/* ---- what to do: the clinical fallback, the status page ----------------- */

static const char *const kinds_da_heading[] = { "Hvad gør jeg?", "Hvad gør jeg?",
						 "Hvad gør jeg?", "Hvad gør jeg?",
						 "Hvad gør jeg i perioden?" };

/* Every kind says whom to phone, under its own heading, in both languages. */
Test(notice, every_kind_says_whom_to_phone)
{
	for (int k = 0; k < NOTICE_KIND_COUNT; k++) {
		bool over = k == NOTICE_ALLCLEAR || k == NOTICE_SUMMARY;
		struct notice_facts f = over ? resolved(k) : facts(k);
		f.fallback_contact = "VisInfoSyd vagttelefon, +45 7011 2233";
		f.fallback_note = "Ved udskrivning: ring før patienten sendes hjem.";
		render("da", &f);
		assert_has(out.body, kinds_da_heading[k]);
		if (over) {
			assert_has(out.body, "Hvad gør jeg?\nIntet: meddelelserne sendes igen som "
					     "normalt. Ved et nyt nedbrud: ring til VisInfoSyd "
					     "vagttelefon, +45 7011 2233.\n");
			assert_lacks(out.body, "Ved udskrivning");
		} else {
			assert_has(out.body, "?\nHaster det, så ring til VisInfoSyd vagttelefon, "
					     "+45 7011 2233.\nVed udskrivning: ring før patienten "
					     "sendes hjem.\n");
		}
		render("en", &f);
		assert_has(out.body, over ? "What do I do?\nNothing: messages flow as usual again. "
					    "In a new outage: phone VisInfoSyd"
					  : "\nIf something is urgent, phone VisInfoSyd vagttelefon, "
					    "+45 7011 2233.\n");
		json_t *j = payload();
		cr_assert_str_eq(json_string_value(json_object_get(j, "fallback_contact")),
				 "VisInfoSyd vagttelefon, +45 7011 2233");
		cr_assert_not_null(strstr(json_string_value(json_object_get(j, "fallback")),
					  "VisInfoSyd"));
		json_decref(j);
	}
}

/* Without a fallback contact, the regional EDI support's number; without
 * that either, the support by name. Never the old "phone." without whom. */
Test(notice, without_a_fallback_contact_the_support_phone)
{
	struct notice_facts f = facts(NOTICE_INITIAL);
	f.support_phone = "EDI-support 7020 3040";
	render("da", &f);
	assert_line("Haster det, så ring til den regionale EDI-support, EDI-support 7020 3040.");
	render("en", &f);
	assert_line("If something is urgent, phone the regional EDI support, EDI-support 7020 3040.");
	f.support_phone = NULL;
	render("da", &f);
	assert_line("Haster det, så kontakt den regionale EDI-support.");
	assert_lacks(out.body, "Haster det, så ring.");
}

Test(notice, status_link_only_with_a_url)
{
	struct notice_facts f = facts(NOTICE_UPDATE);
	render("da", &f);
	assert_lacks(out.body, "Følg status");
	f.status_url = "https://intranet.region.example/edi/status.html";
	render("da", &f);
	assert_line("Følg status her: https://intranet.region.example/edi/status.html");
	f = resolved(NOTICE_ALLCLEAR);
	f.status_url = "https://intranet.region.example/edi/status.html";
	render("en", &f);
	assert_line("Follow the status here: https://intranet.region.example/edi/status.html");
}

/* ---- untrusted values --------------------------------------------------- */

Test(notice, subject_stays_one_line)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.organisation = "Aarhus\r\nBcc: evil@example.com\n";
	render("da", &f);
	cr_assert_null(strpbrk(out.subject, "\r\n"), "subject: %s", out.subject);
	assert_has(out.subject, "Aarhus Bcc: evil@example.com (aarhus-kommune)");
}

Test(notice, subject_is_bounded_at_a_character_boundary)
{
	static char org[2001];
	struct notice_facts f = facts(NOTICE_INITIAL);

	for (int i = 0; i < 1000; i++)
		memcpy(org + 2 * i, "æ", 2);
	f.organisation = org;
	render("da", &f);
	cr_assert_leq(strlen(out.subject), 200);
	cr_assert_geq(strlen(out.subject), 199);
	json_t *j = payload(); /* jansson rejects a split UTF-8 sequence */
	cr_assert_str_eq(json_string_value(json_object_get(j, "subject")), out.subject);
	json_decref(j);
}

/* Substitution is one pass over the template: a value is never expanded. */
Test(notice, values_are_not_expanded_again)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.organisation = "{{contact}}";
	render("en", &f);
	assert_has(out.subject, "EDI outage: {{contact}} (aarhus-kommune)");
	assert_lacks(out.subject, "EOJ-drift");
}

/* A value (here the operator's cause, pasted from somewhere) cannot add a
 * line that looks like a field. */
Test(notice, values_cannot_forge_lines)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.cause_by_operator = true;
	f.cause_text = "boom\nKontaktperson: mallory\t\x1b[31m\xe2\x80\xae";
	f.fallback_contact = "vagt\nKontaktperson: eve";
	render("da", &f);
	assert_line("Kontaktperson: EOJ-drift, tlf. 8940 0000");
	assert_line("Årsag til fejl: boom Kontaktperson: mallory [31m");
	assert_line("Haster det, så ring til vagt Kontaktperson: eve.");
}

Test(notice, invalid_utf8_is_replaced)
{
	struct notice_facts f = facts(NOTICE_INITIAL);

	f.cause_by_operator = true;
	f.cause_text = "bad \xff\xc3( bytes";
	render("en", &f);
	assert_has(out.body, ": bad \xef\xbf\xbd\xef\xbf\xbd( bytes\n");
	json_decref(payload());
	f.cause_text = "overlong \xe0\x80\xaf surrogate \xed\xa0\x80";
	render("en", &f);
	assert_has(out.body, "overlong \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
			     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\n");
	json_decref(payload());
}

Test(notice, render_rejects_bad_arguments_and_leaves_out_alone)
{
	struct notice_templates *t = load("da", NULL);
	struct notice_facts f = facts(NOTICE_KIND_COUNT);
	struct notice_text o = { .subject = (char *)"untouched" };

	cr_assert_eq(notice_render(t, &f, &o), -EINVAL);
	f = facts(NOTICE_INITIAL), f.affected = NULL;
	cr_assert_eq(notice_render(t, &f, &o), -EINVAL);
	cr_assert_eq(notice_render(NULL, &f, &o), -EINVAL);
	cr_assert_str_eq(o.subject, "untouched");
	notice_templates_free(t);
}

/* ---- templates ---------------------------------------------------------- */

Test(notice, template_file_replaces_one_kind_only)
{
	struct notice_facts f = facts(NOTICE_UPDATE);

	write_file("da", "update.txt",
		   "Subject: Status {{endpoint}}\n\nNede siden {{started}}, slut: {{ended}}.\n"
		   "Næste: {{next_status}}\n");
	struct notice_templates *t = load("da", dir);
	cr_assert_eq(notice_render(t, &f, &out), 0);
	cr_assert_str_eq(out.subject, "Status aarhus-kommune");
	cr_assert_str_eq(out.body, "Nede siden 27-11-2026 kl. 14:05, slut: endnu ikke.\n"
				   "Næste: 27-11-2026 kl. 17:20\n");
	notice_text_free(&out);
	f.kind = NOTICE_INITIAL;
	cr_assert_eq(notice_render(t, &f, &out), 0);
	cr_assert_str_eq(out.subject, "EDI-nedbrud: Aarhus Kommune (aarhus-kommune) - meddelelser venter");
	notice_templates_free(t);
	t = load("en", dir); /* the Danish file does not touch English */
	notice_text_free(&out);
	cr_assert_eq(notice_render(t, &f, &out), 0);
	assert_has(out.subject, "EDI outage");
	notice_templates_free(t);
}

Test(notice, template_windows_line_ends_and_bom)
{
	struct notice_facts f = facts(NOTICE_PLANNED);

	write_file("en", "planned.txt", "\xEF\xBB\xBFSubject: Planned {{window_from}}\r\nWhy: {{reason}}\r\n");
	struct notice_templates *t = load("en", dir);
	cr_assert_eq(notice_render(t, &f, &out), 0);
	cr_assert_str_eq(out.subject, "Planned 2026-11-27 14:05");
	cr_assert_str_eq(out.body, "Why: opgradering af EOJ\n");
	notice_templates_free(t);
}

static void assert_load_fails(const char *lang, const char *want1, const char *want2)
{
	char err[256] = "";

	cr_assert_null(notice_templates_load(lang, dir, err, sizeof(err)));
	assert_has(err, want1);
	assert_has(err, want2);
}

Test(notice, unknown_placeholder_names_file_and_line)
{
	write_file("da", "allclear.txt", "Subject: Løst\n\nKontakt: {{contact}}\nHej {{foo}}\n");
	assert_load_fails("da", "/da/allclear.txt: unknown placeholder {{foo}}", "(line 4)");
}

Test(notice, unknown_placeholder_in_subject)
{
	write_file("en", "initial.txt", "Subject: Down {{endpoint_name}}\nBody\n");
	assert_load_fails("en", "/en/initial.txt: unknown placeholder {{endpoint_name}}", "(line 1)");
}

Test(notice, unclosed_placeholder_is_rejected)
{
	write_file("da", "initial.txt", "Subject: Nede\nSiden {{started\n}}\n");
	assert_load_fails("da", "/da/initial.txt: unclosed placeholder", "(line 2)");
}

Test(notice, template_without_subject_names_file)
{
	write_file("da", "summary.txt", "Emne: Opsummering\nNede fra {{started}}\n");
	assert_load_fails("da", "/da/summary.txt: ", "Subject");
}

Test(notice, template_with_empty_subject_is_rejected)
{
	write_file("da", "summary.txt", "Subject:   \nNede fra {{started}}\n");
	assert_load_fails("da", "/da/summary.txt: ", "empty");
}

Test(notice, unreadable_template_is_an_error)
{
	write_file("da", "placeholder.txt", "");
	char path[256];
	snprintf(path, sizeof(path), "%s/da/planned.txt", dir);
	cr_assert_eq(mkdir(path, 0755), 0); /* a directory cannot be read, even by root */
	assert_load_fails("da", "/da/planned.txt: cannot read", "");
}

Test(notice, template_that_is_not_utf8_is_rejected)
{
	write_file("en", "update.txt", "Subject: Caf\xe9\nBody\n");
	assert_load_fails("en", "/en/update.txt: not valid UTF-8", "");
}

Test(notice, missing_template_dir_means_built_ins)
{
	struct notice_facts f = facts(NOTICE_INITIAL);
	struct notice_templates *t = load("en", "/nonexistent/edibroker-templates");

	cr_assert_eq(notice_render(t, &f, &out), 0);
	assert_has(out.subject, "EDI outage: Aarhus Kommune");
	notice_templates_free(t);
}

Test(notice, language_must_be_da_or_en)
{
	char err[256] = "";

	cr_assert_null(notice_templates_load("de", NULL, err, sizeof(err)));
	assert_has(err, "\"da\" or \"en\"");
	struct notice_templates *t = load(NULL, NULL); /* Danish is the default */
	struct notice_facts f = facts(NOTICE_INITIAL);
	cr_assert_eq(notice_render(t, &f, &out), 0);
	assert_has(out.body, "Årsag til fejl: ");
	notice_templates_free(t);
}

/* A template that repeats a block cannot make an unbounded body. */
Test(notice, body_is_bounded)
{
	static char text[16 * 1024];
	struct notice_facts f = facts(NOTICE_INITIAL);
	size_t n = (size_t)snprintf(text, sizeof(text), "Subject: x\n");

	while (n + 14 < sizeof(text))
		n += (size_t)snprintf(text + n, sizeof(text) - n, "{{affected}}\n");
	write_file("da", "initial.txt", text);
	struct notice_templates *t = load("da", dir);
	cr_assert_eq(notice_render(t, &f, &out), 0);
	cr_assert_leq(strlen(out.body), 64 * 1024 + 32);
	assert_has(out.body, "[afkortet]\n");
	json_decref(payload());
	notice_templates_free(t);
}

/* Delivered messages whose acknowledgement is overdue close the affected
 * block, in both languages and both numbers; none, no line. */
Test(notice, affected_block_ends_with_overdue_acknowledgements)
{
	struct notice_facts f = facts(NOTICE_UPDATE);

	f.acks_overdue = 3, f.acks_overdue_since = T_START, f.ack_timeout_ms = 30 * MINUTE;
	render("da", &f);
	assert_has(out.body, "  Den ældste har ventet 2 t 14 min (siden 27-11-2026 kl. 14:06).\n"
			     "  Kvittering mangler for 3 leverede meddelelser (over 30 min; den "
			     "ældste leveret 27-11-2026 kl. 14:05).\n");
	render("en", &f);
	assert_has(out.body, "  No acknowledgement yet for 3 delivered messages (over 30 min; the "
			     "oldest delivered ");
	json_t *o = payload();
	cr_assert_eq(json_integer_value(json_object_get(o, "acks_overdue")), 3);
	json_decref(o);
	f.acks_overdue = 1;
	render("da", &f);
	assert_has(out.body, "  Kvittering mangler for 1 leveret meddelelse (over 30 min; leveret ");
	f.acks_overdue = 0;
	render("da", &f);
	assert_lacks(out.body, "Kvittering mangler");
}

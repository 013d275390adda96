/*
 * test_outage.c - the outage lifecycle and endpoint health, with explicit
 * wall-clock instants (Europe/Copenhagen), so a two-hour outage and a night
 * are tested in microseconds.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <time.h>

#include "outage/health.h"
#include "outage/maintenance.h"
#include "outage/outage.h"
#include "time/timerules.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)

static struct timerules *tr;
static struct outage_rules rules;

static void setup(void)
{
	char err[256];
	tr = timerules_new(NULL, NULL, "12-24", "Europe/Copenhagen", err, sizeof(err));
	cr_assert_not_null(tr, "%s", err);
	rules = (struct outage_rules){ 2 * HOUR, 1 * HOUR, tr };
}

static void teardown(void)
{
	timerules_free(tr);
}

/* Wall ms of a local time in Europe/Copenhagen. */
static int64_t at(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_isdst = -1 };
	return (int64_t)mktime(&tm) * 1000;
}

static struct outage_action step(struct outage *o, int64_t now, bool up, bool empty)
{
	struct outage_view v = { now, up, empty };
	return outage_advance(o, &v, &rules);
}

TestSuite(outage, .init = setup, .fini = teardown);
TestSuite(maintenance, .init = setup, .fini = teardown);

Test(outage, short_outage_sends_nothing_but_is_recorded)
{
	int64_t t0 = at(2026, 11, 25, 10, 0); /* a Wednesday */
	struct outage *o = outage_new("kommune", t0, t0 + 3 * MIN, &rules);
	cr_assert_eq(o->state, OUTAGE_OPEN);
	cr_assert_eq(o->due_at, t0 + 2 * HOUR);
	struct outage_action a = step(o, t0 + HOUR, false, false);
	cr_assert_not(a.send);
	a = step(o, t0 + 119 * MIN, true, false);
	cr_assert(a.changed);
	cr_assert_not(a.send);
	cr_assert_eq(o->state, OUTAGE_RECOVERING);
	cr_assert_eq(o->ended_at, t0 + 119 * MIN);
	a = step(o, t0 + 125 * MIN, true, true);
	cr_assert_not(a.send, "it ended before the threshold: nothing to say");
	cr_assert_eq(o->state, OUTAGE_CLOSED);
	cr_assert_eq(o->announced_at, 0);
	outage_free(o);
}

Test(outage, threshold_then_updates_then_allclear)
{
	int64_t t0 = at(2026, 11, 25, 9, 0);
	struct outage *o = outage_new("kommune", t0, t0 + 5 * MIN, &rules);
	cr_assert_not(step(o, t0 + 2 * HOUR - 1, false, false).send, "before the threshold");
	struct outage_action a = step(o, t0 + 2 * HOUR, false, false);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_INITIAL);
	cr_assert_eq(o->state, OUTAGE_ANNOUNCED);
	cr_assert_eq(o->announced_at, t0 + 2 * HOUR);
	cr_assert_eq(outage_next_status_at(o, &rules), t0 + 3 * HOUR);
	cr_assert_not(step(o, t0 + 2 * HOUR + 1, false, false).send, "exactly one initial notice");
	a = step(o, t0 + 3 * HOUR, false, false);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_UPDATE);
	cr_assert_eq(o->announced_at, t0 + 2 * HOUR, "announced_at stays the first notice");
	/* back up, backlog still draining: no all-clear yet */
	a = step(o, t0 + 3 * HOUR + 10 * MIN, true, false);
	cr_assert_not(a.send);
	cr_assert_eq(o->state, OUTAGE_RECOVERING);
	cr_assert_not(step(o, t0 + 4 * HOUR + 30 * MIN, true, false).send, "no update while draining");
	a = step(o, t0 + 4 * HOUR + 31 * MIN, true, true);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_ALLCLEAR);
	cr_assert_not(a.ended_overnight);
	cr_assert_eq(o->state, OUTAGE_CLOSED);
	cr_assert_eq(outage_next_status_at(o, &rules), 0);
	outage_free(o);
}

Test(outage, notice_due_after_2200_is_held_to_0800)
{
	int64_t t0 = at(2026, 11, 25, 20, 30);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	/* due 22:30: held */
	cr_assert_not(step(o, at(2026, 11, 25, 22, 30), false, false).send);
	cr_assert_not(step(o, at(2026, 11, 26, 3, 0), false, false).send);
	cr_assert_not(step(o, at(2026, 11, 26, 7, 59), false, false).send);
	struct outage_action a = step(o, at(2026, 11, 26, 8, 0), false, false);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_INITIAL, "one initial notice in the morning, not a pile");
	cr_assert_eq(o->due_at, at(2026, 11, 26, 9, 0));
	outage_free(o);
}

Test(outage, edges_2159_and_2200)
{
	int64_t t0 = at(2026, 11, 25, 19, 59);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert(step(o, at(2026, 11, 25, 21, 59), false, false).send, "21:59 is inside");
	outage_free(o);
	t0 = at(2026, 11, 25, 20, 0);
	o = outage_new("kommune", t0, t0, &rules);
	cr_assert_not(step(o, at(2026, 11, 25, 22, 0), false, false).send, "22:00 is outside");
	outage_free(o);
}

Test(outage, announced_outage_ended_overnight_gets_one_morning_allclear)
{
	int64_t t0 = at(2026, 11, 25, 18, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert(step(o, at(2026, 11, 25, 20, 0), false, false).send); /* initial */
	cr_assert(step(o, at(2026, 11, 25, 21, 0), false, false).send); /* update */
	cr_assert_not(step(o, at(2026, 11, 25, 22, 0), false, false).send, "update held");
	cr_assert_not(step(o, at(2026, 11, 26, 3, 10), true, true).send, "all-clear held");
	cr_assert_eq(o->state, OUTAGE_RESOLVED);
	cr_assert_eq(o->ended_at, at(2026, 11, 26, 3, 10));
	struct outage_action a = step(o, at(2026, 11, 26, 8, 0), true, true);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_ALLCLEAR, "the held update is not sent as well");
	cr_assert(a.ended_overnight);
	cr_assert_not(step(o, at(2026, 11, 26, 8, 1), true, true).send, "once");
	outage_free(o);
}

Test(outage, unannounced_outage_past_threshold_overnight_gets_a_summary)
{
	int64_t t0 = at(2026, 11, 25, 23, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert_not(step(o, at(2026, 11, 26, 1, 0), false, false).send, "due 01:00, held");
	cr_assert_not(step(o, at(2026, 11, 26, 4, 0), true, true).send);
	struct outage_action a = step(o, at(2026, 11, 26, 8, 0), true, true);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_SUMMARY);
	cr_assert(a.ended_overnight);
	cr_assert_eq(o->state, OUTAGE_CLOSED);
	outage_free(o);
}

Test(outage, short_overnight_outage_stays_silent)
{
	int64_t t0 = at(2026, 11, 25, 23, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	step(o, at(2026, 11, 26, 0, 30), true, true); /* 1.5 h: under the threshold */
	cr_assert_eq(o->state, OUTAGE_CLOSED);
	cr_assert_not(step(o, at(2026, 11, 26, 8, 0), true, true).send);
	outage_free(o);
}

Test(outage, expected_downtime_past_threshold_notifies_at_once)
{
	int64_t t0 = at(2026, 11, 25, 10, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	outage_set_expected(o, t0 + HOUR, t0 + 10 * MIN, &rules);
	cr_assert_not(step(o, t0 + 11 * MIN, false, false).send, "1 h expected: under threshold");
	outage_set_expected(o, t0 + 4 * HOUR, t0 + 20 * MIN, &rules);
	struct outage_action a = step(o, t0 + 20 * MIN, false, false);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_INITIAL);
	outage_free(o);
	/* late in the evening it is still held to the morning */
	t0 = at(2026, 11, 25, 22, 10);
	o = outage_new("kommune", t0, t0, &rules);
	outage_set_expected(o, t0 + 5 * HOUR, t0 + MIN, &rules);
	cr_assert_not(step(o, t0 + 2 * MIN, false, false).send);
	cr_assert(step(o, at(2026, 11, 26, 8, 0), false, false).send);
	outage_free(o);
}

Test(outage, flapping_endpoint_stays_one_outage)
{
	int64_t t0 = at(2026, 11, 25, 9, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert(step(o, t0 + 2 * HOUR, false, false).send);
	step(o, t0 + 2 * HOUR + MIN, true, false);
	cr_assert_eq(o->state, OUTAGE_RECOVERING);
	step(o, t0 + 2 * HOUR + 2 * MIN, false, false);
	cr_assert_eq(o->state, OUTAGE_ANNOUNCED);
	cr_assert_eq(o->ended_at, 0);
	cr_assert_eq(o->started_at, t0, "the start stays the first failure");
	outage_free(o);
}

Test(outage, manual_outage_ignores_health_and_closes_by_hand)
{
	int64_t t0 = at(2026, 11, 25, 9, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	o->manual = true;
	cr_assert_not(step(o, t0 + HOUR, true, true).send);
	cr_assert_eq(o->state, OUTAGE_OPEN, "health does not end a manual outage");
	cr_assert(step(o, t0 + 2 * HOUR, true, true).send);
	outage_close(o, t0 + 3 * HOUR);
	struct outage_action a = step(o, t0 + 3 * HOUR, true, true);
	cr_assert(a.send);
	cr_assert_eq(a.kind, NOTICE_ALLCLEAR);
	outage_free(o);
}

Test(outage, record_copy_and_state_names)
{
	int64_t t0 = at(2026, 11, 25, 9, 0);
	struct outage *o = outage_new("kommune", t0, t0 + MIN, &rules);
	o->cause_fault = strdup("refused");
	o->contact_override = strdup("Vagt 1234");
	o->delivered_late = 7;
	struct outage *b = outage_dup(o);
	cr_assert_str_eq(b->endpoint, "kommune");
	cr_assert_neq(b->endpoint, o->endpoint, "a deep copy");
	cr_assert_eq(b->state, OUTAGE_OPEN);
	cr_assert_eq(b->due_at, o->due_at);
	cr_assert_str_eq(b->cause_fault, "refused");
	cr_assert_str_eq(b->contact_override, "Vagt 1234");
	cr_assert_null(b->cause_override);
	cr_assert_eq(b->delivered_late, 7);
	outage_free(o);
	outage_free(b);
	for (int st = OUTAGE_OPEN; st <= OUTAGE_CLOSED; st++)
		cr_assert_eq(outage_state_from_name(outage_state_name(st)), st);
	cr_assert_str_eq(outage_state_name(OUTAGE_RECOVERING), "recovering", "the stored name");
	cr_assert_eq(outage_state_from_name("bogus"), -1);
	cr_assert_eq(outage_state_from_name(NULL), -1);
}

Test(health, down_after_consecutive_failures_with_hysteresis)
{
	struct health h = { 0 };
	cr_assert_eq(health_observe(&h, false, false, FAULT_REFUSED, "no dir", 1000, 3),
		     HEALTH_WENT_SUSPECT);
	cr_assert_eq(h.first_failure_at, 1000);
	cr_assert_eq(health_observe(&h, false, true, FAULT_REFUSED, "no dir", 2000, 3), HEALTH_SAME);
	cr_assert_eq(health_observe(&h, false, false, FAULT_IO, "eio", 3000, 3), HEALTH_WENT_DOWN);
	cr_assert_eq(h.state, HEALTH_DOWN);
	cr_assert_eq(h.first_failure_at, 1000, "the outage starts at the first failure");
	cr_assert_eq(h.since, 3000);
	cr_assert_str_eq(h.error, "eio");
	cr_assert_eq(health_observe(&h, false, false, FAULT_IO, "eio", 4000, 3), HEALTH_SAME);
	cr_assert_eq(health_observe(&h, true, false, FAULT_NONE, NULL, 5000, 3), HEALTH_CAME_UP);
	cr_assert_eq(h.failures, 0);
	cr_assert_eq(h.first_failure_at, 0);
	/* a suspect endpoint that recovers never went down */
	cr_assert_eq(health_observe(&h, false, false, FAULT_TIMEOUT, "t", 6000, 3),
		     HEALTH_WENT_SUSPECT);
	cr_assert_eq(health_observe(&h, true, true, FAULT_NONE, NULL, 7000, 3), HEALTH_CAME_UP);
}

Test(health, pickup_timeout_needs_a_probe_to_recover)
{
	struct health h = { 0 };
	health_observe(&h, false, true, FAULT_TIMEOUT, "3 files not collected", 1000, 1);
	cr_assert_eq(h.state, HEALTH_DOWN);
	cr_assert_eq(health_observe(&h, true, false, FAULT_NONE, NULL, 2000, 1), HEALTH_SAME,
		     "writing into an uncollected outbox proves nothing");
	cr_assert_eq(health_observe(&h, true, true, FAULT_NONE, NULL, 3000, 1), HEALTH_CAME_UP);
}

Test(outage, held_across_both_summer_time_change_nights)
{
	/* spring forward: 2026-03-29 02:00 -> 03:00; the night is an hour shorter */
	int64_t t0 = at(2026, 3, 28, 20, 30);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert_not(step(o, at(2026, 3, 28, 22, 30), false, false).send);
	cr_assert_not(step(o, at(2026, 3, 29, 7, 59), false, false).send);
	cr_assert(step(o, at(2026, 3, 29, 8, 0), false, false).send);
	cr_assert_eq(at(2026, 3, 29, 8, 0), 1774764000000LL, "08:00 CEST = 06:00Z");
	cr_assert_eq(o->due_at, at(2026, 3, 29, 9, 0));
	outage_free(o);
	/* fall back: 2026-10-25 03:00 -> 02:00; the night is an hour longer */
	t0 = at(2026, 10, 24, 20, 30);
	o = outage_new("kommune", t0, t0, &rules);
	cr_assert_not(step(o, at(2026, 10, 24, 22, 30), false, false).send);
	cr_assert_not(step(o, at(2026, 10, 25, 7, 59), false, false).send);
	struct outage_action a = step(o, at(2026, 10, 25, 8, 0), false, false);
	cr_assert(a.send);
	cr_assert_eq(at(2026, 10, 25, 8, 0), 1792911600000LL, "08:00 CET = 07:00Z");
	outage_free(o);
}

Test(outage, edges_0759_and_0800)
{
	int64_t t0 = at(2026, 11, 26, 4, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert_not(step(o, at(2026, 11, 26, 7, 59), false, false).send);
	cr_assert_not(step(o, at(2026, 11, 26, 7, 59) + 59999, false, false).send);
	cr_assert(step(o, at(2026, 11, 26, 8, 0), false, false).send);
	cr_assert_eq(outage_next_status_at(o, &rules), at(2026, 11, 26, 9, 0));
	outage_free(o);
}

Test(outage, next_status_after_2100_falls_on_the_next_morning)
{
	int64_t t0 = at(2026, 11, 25, 19, 0);
	struct outage *o = outage_new("kommune", t0, t0, &rules);
	cr_assert(step(o, at(2026, 11, 25, 21, 30), false, false).send);
	cr_assert_eq(outage_next_status_at(o, &rules), at(2026, 11, 26, 8, 0),
		     "an update due at 22:30 is announced for 08:00");
	outage_free(o);
}

static struct maint window(int64_t from, int64_t to)
{
	return (struct maint){ .id = 1, .endpoint = "kommune", .from = from, .to = to };
}

Test(maintenance, long_window_announced_at_once_within_the_time_rules)
{
	struct maint w = window(at(2026, 11, 28, 6, 0), at(2026, 11, 28, 10, 0));
	struct maint_step s = maint_advance(&w, at(2026, 11, 25, 23, 0), 2 * HOUR, tr, false, false);
	cr_assert_not(s.announce, "registered at 23:00: held");
	s = maint_advance(&w, at(2026, 11, 26, 8, 0), 2 * HOUR, tr, false, false);
	cr_assert(s.announce);
	cr_assert(s.changed);
	cr_assert_eq(w.announced_at, at(2026, 11, 26, 8, 0));
	s = maint_advance(&w, at(2026, 11, 26, 9, 0), 2 * HOUR, tr, false, false);
	cr_assert_not(s.announce, "once");
}

Test(maintenance, short_window_is_not_announced)
{
	struct maint w = window(at(2026, 11, 28, 6, 0), at(2026, 11, 28, 8, 0));
	cr_assert_not(maint_advance(&w, at(2026, 11, 26, 10, 0), 2 * HOUR, tr, false, false).announce,
		      "exactly two hours is not more than two hours");
}

Test(maintenance, window_over_before_morning_is_not_announced_late)
{
	struct maint w = window(at(2026, 11, 25, 23, 0), at(2026, 11, 26, 3, 0));
	cr_assert_not(maint_advance(&w, at(2026, 11, 25, 22, 30), 2 * HOUR, tr, false, false).announce);
	struct maint_step s = maint_advance(&w, at(2026, 11, 26, 8, 0), 2 * HOUR, tr, false, false);
	cr_assert_not(s.announce);
	cr_assert(s.ended);
}

Test(maintenance, covers_half_open_window)
{
	struct maint w = window(at(2026, 11, 26, 6, 0), at(2026, 11, 26, 9, 0));
	cr_assert_not(maint_covers(&w, "kommune", at(2026, 11, 26, 6, 0) - 1));
	cr_assert(maint_covers(&w, "kommune", at(2026, 11, 26, 6, 0)));
	cr_assert(maint_covers(&w, "kommune", at(2026, 11, 26, 9, 0) - 1));
	cr_assert_not(maint_covers(&w, "kommune", at(2026, 11, 26, 9, 0)));
	cr_assert_not(maint_covers(&w, "sygehus", at(2026, 11, 26, 7, 0)));
}

Test(maintenance, overrun_starts_the_acute_procedure_at_the_window_end)
{
	int64_t end = at(2026, 11, 26, 9, 0);
	struct maint w = window(at(2026, 11, 26, 6, 0), end);
	struct maint_step s = maint_advance(&w, end - 1, 2 * HOUR, tr, true, false);
	cr_assert_not(s.ended);
	s = maint_advance(&w, end + 400, 2 * HOUR, tr, true, false);
	cr_assert(s.ended);
	cr_assert(s.open_acute);
	cr_assert_eq(s.acute_start, end);
	/* the acute outage then counts its threshold from the window's end */
	struct outage *o = outage_new("kommune", s.acute_start, end + 400, &rules);
	cr_assert_not(step(o, end + 2 * HOUR - 1, false, false).send);
	cr_assert(step(o, end + 2 * HOUR, false, false).send);
	outage_free(o);
	/* a window that ends with the endpoint up opens nothing */
	struct maint ok = window(at(2026, 11, 26, 6, 0), end);
	s = maint_advance(&ok, end, 2 * HOUR, tr, false, false);
	cr_assert(s.ended);
	cr_assert_not(s.open_acute);
	/* nor one whose endpoint already has an outage open */
	struct maint busy = window(at(2026, 11, 26, 6, 0), end);
	cr_assert_not(maint_advance(&busy, end, 2 * HOUR, tr, true, true).open_acute);
}

/*
 * test_timerules.c - the outage procedure's time rules and the Danish
 * holiday calendar (timerules.c, calendar.c).
 *
 * Every test runs in its own process (Criterion forks), so each one sets
 * the process time zone through timerules_new() - Europe/Copenhagen unless
 * it says otherwise. Instants are built from local wall times with
 * mktime() under that zone (local()), and the helper itself is pinned to
 * hard UTC instants checked with `TZ=Europe/Copenhagen date -d ... +%s`.
 * Easter dates and the 2026 holidays were checked against python3-dateutil.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "time/timerules.h"
#include "codecs/base/mem.h"

#define MS 1000LL
#define MINUTE (60 * MS)
#define HOUR (60 * MINUTE)

/* Hard instants (ms), from `TZ=Europe/Copenhagen date -d '...' +%s`. */
#define SPRING_0100 1774742400000LL /* 2026-03-29 01:00 CET   = 00:00Z */
#define SPRING_0800 1774764000000LL /* 2026-03-29 08:00 CEST  = 06:00Z */
#define SPRING_EVE_2230 1774733400000LL /* 2026-03-28 22:30 CET = 21:30Z */
#define FALL_EVE_2200 1792872000000LL /* 2026-10-24 22:00 CEST = 20:00Z */
#define FALL_0100 1792882800000LL /* 2026-10-25 01:00 CEST  = 2026-10-24 23:00Z */
#define FALL_0230_CEST 1792888200000LL /* 2026-10-25 02:30 CEST = 00:30Z */
#define FALL_0800 1792911600000LL /* 2026-10-25 08:00 CET   = 07:00Z */
#define FALL_2200 1792962000000LL /* 2026-10-25 22:00 CET   = 21:00Z */
#define FALL_NEXT_0800 1792998000000LL /* 2026-10-26 08:00 CET = 07:00Z */
#define MONDAY_0800 1772434800000LL /* 2026-03-02 08:00 CET   = 07:00Z */

/* Weekdays of the dates used below (checked with `date -d ... +%a`). */
enum { MON_2 = 2, FRI_6 = 6, SAT_7 = 7 }; /* of March 2026 */

static struct timerules *tr;

static struct timerules *make(const char *window, const char *hours, const char *closed,
			      const char *zone)
{
	char err[256] = "";
	struct timerules *r = timerules_new(window, hours, closed, zone, err, sizeof(err));

	cr_assert_not_null(r, "timerules_new failed: %s", err);
	return r;
}

/* The rules of the procedure with the example config's closed days. */
static void setup_default(void)
{
	tr = make(NULL, NULL, "12-24, 12-31, 06-05", NULL);
}

static void teardown(void)
{
	timerules_free(tr);
	tr = NULL;
}

/* ms of a local wall time under the process TZ; fails on a skipped time. */
static int64_t local(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = s, .tm_isdst = -1 };
	time_t t = mktime(&tm);

	cr_assert(tm.tm_hour == h && tm.tm_min == mi, "%04d-%02d-%02d %02d:%02d is not a local time",
		  y, mo, d, h, mi);
	return (int64_t)t * MS;
}

static void assert_local_is(int64_t t, const char *want)
{
	char buf[32];

	timerules_format_local(t, buf, sizeof(buf));
	cr_assert_str_eq(buf, want);
}

/* ---- the test helper and the zone --------------------------------------- */

TestSuite(clock, .init = setup_default, .fini = teardown);

Test(clock, local_helper_matches_hard_utc_instants)
{
	cr_assert_str_eq(getenv("TZ"), "Europe/Copenhagen");
	cr_assert_eq(local(2026, 3, 29, 8, 0, 0), SPRING_0800);
	cr_assert_eq(local(2026, 3, 29, 1, 0, 0), SPRING_0100);
	cr_assert_eq(local(2026, 10, 25, 8, 0, 0), FALL_0800);
	cr_assert_eq(local(2026, 10, 25, 22, 0, 0), FALL_2200);
	cr_assert_eq(local(2026, 10, 24, 22, 0, 0), FALL_EVE_2200);
	cr_assert_eq(local(2026, 3, 2, 8, 0, 0), MONDAY_0800);
}

Test(clock, other_zone_moves_every_rule)
{
	struct timerules *ny = make(NULL, NULL, NULL, "America/New_York");

	cr_assert_str_eq(getenv("TZ"), "America/New_York");
	/* 2026-07-01 12:00Z is 08:00 EDT. */
	cr_assert(timerules_in_send_window(ny, 1782907200000LL));
	cr_assert_not(timerules_in_send_window(ny, 1782907200000LL - 1));
	timerules_free(ny);
}

/* ---- the send window ------------------------------------------------------ */

TestSuite(window, .init = setup_default, .fini = teardown);

static void check_edges(int y, int mo, int d)
{
	cr_assert(timerules_in_send_window(tr, local(y, mo, d, 21, 59, 0)));
	cr_assert(timerules_in_send_window(tr, local(y, mo, d, 21, 59, 59)));
	cr_assert_not(timerules_in_send_window(tr, local(y, mo, d, 22, 0, 0)));
	cr_assert_not(timerules_in_send_window(tr, local(y, mo, d, 7, 59, 0)));
	cr_assert_not(timerules_in_send_window(tr, local(y, mo, d, 7, 59, 59)));
	cr_assert(timerules_in_send_window(tr, local(y, mo, d, 8, 0, 0)));
}

Test(window, edges_on_a_plain_day_and_both_change_days)
{
	check_edges(2026, 3, 2);
	check_edges(2026, 3, 29);
	check_edges(2026, 10, 25);
	/* The hard instants agree. */
	cr_assert_not(timerules_in_send_window(tr, FALL_2200));
	cr_assert(timerules_in_send_window(tr, FALL_2200 - 1));
	cr_assert(timerules_in_send_window(tr, SPRING_0800));
	cr_assert_not(timerules_in_send_window(tr, SPRING_0800 - 1));
}

Test(window, next_send_time_at_the_edges)
{
	int64_t t2159 = local(2026, 3, 2, 21, 59, 0), t0800 = local(2026, 3, 2, 8, 0, 0);

	cr_assert_eq(timerules_next_send_time(tr, t2159), t2159);
	cr_assert_eq(timerules_next_send_time(tr, t0800), t0800);
	cr_assert_eq(timerules_next_send_time(tr, local(2026, 3, 2, 7, 59, 0)), t0800);
	cr_assert_eq(timerules_next_send_time(tr, t0800 - 1), t0800);
	cr_assert_eq(timerules_next_send_time(tr, local(2026, 3, 2, 22, 0, 0)),
		     local(2026, 3, 3, 8, 0, 0));
	cr_assert_eq(local(2026, 3, 3, 8, 0, 0), 1772521200000LL);
}

Test(window, notice_due_at_2330_is_held_to_0800_next_morning)
{
	int64_t due = local(2026, 3, 2, 23, 30, 0);

	cr_assert_not(timerules_in_send_window(tr, due));
	cr_assert_eq(timerules_next_send_time(tr, due), local(2026, 3, 3, 8, 0, 0));
	cr_assert_eq(timerules_next_send_time(tr, due) - due, 8 * HOUR + 30 * MINUTE);
}

Test(window, held_across_month_and_year_ends)
{
	int64_t march_31 = local(2026, 3, 31, 23, 30, 0), new_years_eve = local(2026, 12, 31, 22, 0, 0);

	cr_assert_eq(timerules_next_send_time(tr, march_31), local(2026, 4, 1, 8, 0, 0));
	cr_assert_eq(timerules_next_send_time(tr, new_years_eve), local(2027, 1, 1, 8, 0, 0));
	cr_assert_eq(timerules_next_send_time(tr, local(2028, 2, 28, 23, 0, 0)),
		     local(2028, 2, 29, 8, 0, 0));
	assert_local_is(timerules_next_send_time(tr, new_years_eve), "2027-01-01 08:00");
}

Test(window, spring_forward_night_is_held_to_0800_that_morning)
{
	cr_assert_eq(local(2026, 3, 29, 1, 0, 0), SPRING_0100);
	cr_assert_eq(timerules_next_send_time(tr, SPRING_0100), SPRING_0800);
	/* Six hours pass, not seven: the clock skips 02:00-03:00. */
	cr_assert_eq(SPRING_0800 - SPRING_0100, 6 * HOUR);
	/* Held from the evening before: 08:00 summer time, not 24h after 08:00. */
	cr_assert_eq(timerules_next_send_time(tr, SPRING_EVE_2230), SPRING_0800);
	cr_assert_eq(timerules_next_send_time(tr, local(2026, 3, 29, 3, 0, 0)), SPRING_0800);
	assert_local_is(timerules_next_send_time(tr, SPRING_EVE_2230), "2026-03-29 08:00");
}

Test(window, fall_back_night_is_held_to_0800_that_morning)
{
	cr_assert_eq(local(2026, 10, 25, 1, 0, 0), FALL_0100);
	cr_assert_eq(timerules_next_send_time(tr, FALL_0100), FALL_0800);
	/* Eight hours pass, not seven: 02:00-03:00 happens twice. */
	cr_assert_eq(FALL_0800 - FALL_0100, 8 * HOUR);
	cr_assert_eq(timerules_next_send_time(tr, FALL_EVE_2200), FALL_0800);
	/* Both readings of 02:30 are held to the same 08:00. */
	cr_assert_eq(timerules_next_send_time(tr, FALL_0230_CEST), FALL_0800);
	cr_assert_eq(timerules_next_send_time(tr, FALL_0230_CEST + HOUR), FALL_0800);
	/* 22:00 on the change day: ten hours to 08:00 the next day. */
	cr_assert_eq(timerules_next_send_time(tr, FALL_2200), FALL_NEXT_0800);
	cr_assert_eq(FALL_NEXT_0800 - FALL_2200, 10 * HOUR);
}

/* Whatever t is, the answer is >= t, inside the window, and either t itself
 * or an opening with no window time between t and it. */
static void check_next_is_first_opening(const struct timerules *r, int64_t from, int64_t to)
{
	for (int64_t t = from; t < to; t += 17 * MINUTE + 3 * MS) {
		int64_t n = timerules_next_send_time(r, t);

		cr_assert_geq(n, t);
		cr_assert(timerules_in_send_window(r, n));
		if (n == t)
			continue;
		cr_assert_not(timerules_in_send_window(r, n - 1));
		for (int64_t u = t; u < n; u += MINUTE)
			cr_assert_not(timerules_in_send_window(r, u));
	}
}

Test(window, next_send_time_is_the_first_opening_around_both_changes)
{
	check_next_is_first_opening(tr, local(2026, 3, 27, 0, 0, 0), local(2026, 3, 31, 0, 0, 0));
	check_next_is_first_opening(tr, local(2026, 10, 23, 0, 0, 0), local(2026, 10, 27, 0, 0, 0));
}

Test(window, always_is_always)
{
	struct timerules *r = make("00:00-24:00", NULL, NULL, NULL);
	/* Two nights: the spring change and the autumn change. */
	int64_t from[2] = { local(2026, 3, 28, 0, 0, 0), local(2026, 10, 24, 0, 0, 0) };

	for (int n = 0; n < 2; n++) {
		for (int64_t t = from[n]; t < from[n] + 48 * HOUR; t += 7 * MINUTE + 13 * MS) {
			cr_assert(timerules_in_send_window(r, t));
			cr_assert_eq(timerules_next_send_time(r, t), t);
		}
	}
	cr_assert(timerules_in_send_window(r, local(2026, 3, 2, 23, 59, 59)));
	cr_assert(timerules_in_send_window(r, local(2026, 3, 2, 0, 0, 0)));
	timerules_free(r);
}

Test(window, crossing_midnight_is_a_night_window)
{
	struct timerules *r = make("22:00-06:00", NULL, NULL, NULL);

	cr_assert(timerules_in_send_window(r, local(2026, 3, 2, 23, 0, 0)));
	cr_assert(timerules_in_send_window(r, local(2026, 3, 3, 5, 59, 59)));
	cr_assert(timerules_in_send_window(r, local(2026, 3, 2, 22, 0, 0)));
	cr_assert_not(timerules_in_send_window(r, local(2026, 3, 3, 6, 0, 0)));
	cr_assert_not(timerules_in_send_window(r, local(2026, 3, 2, 21, 59, 59)));
	cr_assert_eq(timerules_next_send_time(r, local(2026, 3, 2, 12, 0, 0)),
		     local(2026, 3, 2, 22, 0, 0));
	cr_assert_eq(timerules_next_send_time(r, local(2026, 3, 3, 6, 0, 0)), local(2026, 3, 3, 22, 0, 0));
	cr_assert_eq(timerules_next_send_time(r, local(2026, 3, 3, 1, 0, 0)), local(2026, 3, 3, 1, 0, 0));
	check_next_is_first_opening(r, local(2026, 3, 27, 0, 0, 0), local(2026, 3, 31, 0, 0, 0));
	timerules_free(r);
}

Test(window, opening_in_the_skipped_hour_moves_past_it)
{
	struct timerules *r = make("02:30-22:00", NULL, NULL, NULL);

	/* 02:30 does not exist on 2026-03-29: the window opens when the clock
	 * jumps past it, at 03:00 summer time = 01:00Z. */
	cr_assert_eq(timerules_next_send_time(r, SPRING_0100), 1774746000000LL);
	cr_assert_eq(local(2026, 3, 29, 3, 0, 0), 1774746000000LL);
	/* In autumn it opens at the first 02:30 (summer time). */
	cr_assert_eq(timerules_next_send_time(r, FALL_0100), FALL_0230_CEST);
	check_next_is_first_opening(r, local(2026, 3, 28, 0, 0, 0), local(2026, 3, 30, 0, 0, 0));
	check_next_is_first_opening(r, local(2026, 10, 24, 0, 0, 0), local(2026, 10, 26, 0, 0, 0));
	timerules_free(r);
}

/* ---- audience and closed days --------------------------------------------- */

TestSuite(audience, .init = setup_default, .fini = teardown);

Test(audience, monday_support_hours)
{
	cr_assert_eq(timerules_audience(tr, local(2026, 3, MON_2, 7, 59, 59)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(tr, MONDAY_0800), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, MON_2, 15, 44, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, MON_2, 15, 44, 59)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, MON_2, 15, 45, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, MON_2, 21, 0, 0)), AUDIENCE_ONCALL);
	cr_assert_not(timerules_is_closed_day(tr, MONDAY_0800));
}

Test(audience, friday_closes_at_1400)
{
	cr_assert_eq(timerules_audience(tr, local(2026, 3, FRI_6, 13, 59, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, FRI_6, 13, 59, 59)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, FRI_6, 14, 0, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, FRI_6, 15, 0, 0)), AUDIENCE_ONCALL);
}

Test(audience, weekend_is_oncall)
{
	cr_assert_eq(timerules_audience(tr, local(2026, 3, SAT_7, 10, 0, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(tr, local(2026, 3, 8, 10, 0, 0)), AUDIENCE_ONCALL);
	cr_assert(timerules_is_closed_day(tr, local(2026, 3, SAT_7, 10, 0, 0)));
	cr_assert(timerules_is_closed_day(tr, local(2026, 3, 8, 23, 59, 0)));
	/* Both change days are Sundays. */
	cr_assert(timerules_is_closed_day(tr, SPRING_0800));
	cr_assert(timerules_is_closed_day(tr, FALL_0800));
}

Test(audience, public_holiday_weekdays_are_oncall)
{
	static const int days[][2] = { { 4, 2 }, { 4, 3 }, { 4, 6 }, { 5, 14 }, { 5, 25 } };

	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		int64_t t = local(2026, days[i][0], days[i][1], 10, 0, 0);
		cr_assert_eq(timerules_audience(tr, t), AUDIENCE_ONCALL, "2026-%02d-%02d", days[i][0],
			     days[i][1]);
		cr_assert(timerules_is_closed_day(tr, t));
	}
	/* The Wednesday before Easter is an ordinary day. */
	cr_assert_eq(timerules_audience(tr, local(2026, 4, 1, 10, 0, 0)), AUDIENCE_SUPPORT);
	cr_assert_not(timerules_is_closed_day(tr, local(2026, 4, 1, 10, 0, 0)));
}

Test(audience, store_bededag_only_before_2024)
{
	cr_assert_eq(timerules_audience(tr, local(2023, 5, 5, 10, 0, 0)), AUDIENCE_ONCALL);
	cr_assert(timerules_is_closed_day(tr, local(2023, 5, 5, 10, 0, 0)));
	cr_assert_eq(timerules_audience(tr, local(2024, 4, 26, 10, 0, 0)), AUDIENCE_SUPPORT);
	cr_assert_not(timerules_is_closed_day(tr, local(2024, 4, 26, 10, 0, 0)));
	/* Easter 2026 + 26 days would be Friday May 1. */
	cr_assert_eq(timerules_audience(tr, local(2026, 5, 1, 10, 0, 0)), AUDIENCE_SUPPORT);
}

Test(audience, configured_closed_days)
{
	struct timerules *open = make(NULL, NULL, "", NULL);
	int64_t xmas_eve = local(2026, 12, 24, 10, 0, 0); /* a Thursday */
	int64_t grundlov = local(2026, 6, 5, 10, 0, 0);	 /* a Friday */

	cr_assert_eq(timerules_audience(tr, xmas_eve), AUDIENCE_ONCALL);
	cr_assert(timerules_is_closed_day(tr, xmas_eve));
	cr_assert_eq(timerules_audience(tr, grundlov), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(tr, local(2026, 12, 31, 10, 0, 0)), AUDIENCE_ONCALL);
	/* The same instants without closed_days: ordinary working days. */
	cr_assert_eq(timerules_audience(open, xmas_eve), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(open, grundlov), AUDIENCE_SUPPORT);
	cr_assert_not(timerules_is_closed_day(open, xmas_eve));
	timerules_free(open);
}

Test(audience, closed_day_follows_the_local_date)
{
	/* 2026-12-23 23:30 CET is 22:30Z: still the 23rd locally. */
	cr_assert_not(timerules_is_closed_day(tr, local(2026, 12, 23, 23, 30, 0)));
	cr_assert(timerules_is_closed_day(tr, local(2026, 12, 24, 0, 0, 0)));
	cr_assert_eq(local(2026, 12, 24, 0, 0, 0), local(2026, 12, 23, 23, 0, 0) + HOUR);
}

Test(audience, custom_hours_and_a_named_weekend_day)
{
	struct timerules *r = make(NULL, "mon-fri 09:00-17:00, sat 10:00-12:00", NULL, NULL);

	cr_assert_eq(timerules_audience(r, local(2026, 3, FRI_6, 16, 59, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(r, local(2026, 3, MON_2, 8, 30, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(r, local(2026, 3, SAT_7, 11, 0, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(r, local(2026, 3, SAT_7, 12, 0, 0)), AUDIENCE_ONCALL);
	cr_assert_not(timerules_is_closed_day(r, local(2026, 3, SAT_7, 11, 0, 0)));
	cr_assert(timerules_is_closed_day(r, local(2026, 3, 8, 11, 0, 0)));
	/* A holiday still wins over a named day: Langfredag 2026 is a Friday. */
	cr_assert_eq(timerules_audience(r, local(2026, 4, 3, 10, 0, 0)), AUDIENCE_ONCALL);
	timerules_free(r);
}

Test(audience, single_days_blanks_and_case)
{
	struct timerules *r = make(NULL, "  Tue 09:00 - 10:00 ,THU 12:00-13:00 ", NULL, NULL);

	cr_assert_eq(timerules_audience(r, local(2026, 3, 3, 9, 30, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(r, local(2026, 3, MON_2, 9, 30, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(r, local(2026, 3, 5, 12, 59, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(r, local(2026, 3, 5, 9, 30, 0)), AUDIENCE_ONCALL);
	cr_assert_eq(timerules_audience(r, local(2026, 3, 4, 12, 30, 0)), AUDIENCE_ONCALL);
	timerules_free(r);
}

/* ---- the calendar --------------------------------------------------------- */

Test(calendar, easter_sundays)
{
	/* python3-dateutil easter(): the same computus, written independently. */
	static const int want[][3] = {
		{ 2024, 3, 31 }, { 2025, 4, 20 }, { 2026, 4, 5 },  { 2027, 3, 28 },
		{ 2000, 4, 23 }, { 2038, 4, 25 }, { 1818, 3, 22 }, { 1943, 4, 25 },
		{ 2008, 3, 23 }, { 2011, 4, 24 }, { 2285, 3, 22 }, { 2400, 4, 16 },
		{ 1583, 4, 10 }, { 2023, 4, 9 },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int m = 0, d = 0;
		calendar_easter(want[i][0], &m, &d);
		cr_assert(m == want[i][1] && d == want[i][2], "Easter %d: got %02d-%02d", want[i][0], m, d);
	}
}

/* All holidays of a year as "MM-DD name" lines. */
static void holidays_of(int year, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int m = 1; m <= 12; m++) {
		for (int d = 1; d <= calendar_days_in_month(year, m); d++) {
			const char *name = NULL;
			if (calendar_is_public_holiday(year, m, d, &name))
				n += (size_t)snprintf(out + n, len - n, "%02d-%02d %s\n", m, d, name);
			cr_assert_lt(n, len);
		}
	}
}

Test(calendar, all_holidays_of_2026_and_only_those)
{
	char got[1024];

	holidays_of(2026, got, sizeof(got));
	cr_assert_str_eq(got, "01-01 Nytaarsdag\n"
			      "04-02 Skaertorsdag\n"
			      "04-03 Langfredag\n"
			      "04-05 Paaskedag\n"
			      "04-06 2. paaskedag\n"
			      "05-14 Kristi Himmelfartsdag\n"
			      "05-24 Pinsedag\n"
			      "05-25 2. pinsedag\n"
			      "12-25 Juledag\n"
			      "12-26 2. juledag\n");
}

Test(calendar, all_holidays_of_2023_include_store_bededag)
{
	char got[1024];

	holidays_of(2023, got, sizeof(got));
	cr_assert_str_eq(got, "01-01 Nytaarsdag\n"
			      "04-06 Skaertorsdag\n"
			      "04-07 Langfredag\n"
			      "04-09 Paaskedag\n"
			      "04-10 2. paaskedag\n"
			      "05-05 Store Bededag\n"
			      "05-18 Kristi Himmelfartsdag\n"
			      "05-28 Pinsedag\n"
			      "05-29 2. pinsedag\n"
			      "12-25 Juledag\n"
			      "12-26 2. juledag\n");
}

Test(calendar, store_bededag_abolished_from_2024)
{
	char got[1024];

	cr_assert_not(calendar_is_public_holiday(2024, 4, 26, NULL));
	for (int year = 2024; year <= 2040; year++) {
		holidays_of(year, got, sizeof(got));
		cr_assert_null(strstr(got, "Bededag"), "%d:\n%s", year, got);
	}
}

Test(calendar, not_holidays_and_name_untouched)
{
	const char *name = "unchanged";

	cr_assert_not(calendar_is_public_holiday(2026, 6, 5, &name)); /* Grundlovsdag */
	cr_assert_not(calendar_is_public_holiday(2026, 12, 24, &name));
	cr_assert_not(calendar_is_public_holiday(2026, 12, 31, &name));
	cr_assert_str_eq(name, "unchanged");
	cr_assert(calendar_is_public_holiday(2026, 12, 26, NULL));
}

Test(calendar, date_arithmetic_agrees_with_timegm)
{
	cr_assert_eq(calendar_days_in_month(2024, 2), 29);
	cr_assert_eq(calendar_days_in_month(2000, 2), 29);
	cr_assert_eq(calendar_days_in_month(2100, 2), 28);
	cr_assert_eq(calendar_days_in_month(2026, 4), 30);
	cr_assert_eq(calendar_days_in_month(2026, 13), 0);
	cr_assert_eq(calendar_days_from_civil(1970, 1, 1), 0);
	cr_assert_eq(calendar_days_from_civil(1969, 12, 31), -1);
	for (int y = 1899; y <= 2101; y += 2) {
		for (int m = 1; m <= 12; m++) {
			struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 28 };
			cr_assert_eq(calendar_days_from_civil(y, m, 28) * 86400, (int64_t)timegm(&tm));
		}
	}
}

/* ---- parsing the settings ------------------------------------------------- */

struct bad_config {
	const char *window, *hours, *closed, *zone;
	const char *message;
};

static const struct bad_config bad_configs[] = {
	{ "8:00-22:00", NULL, NULL, NULL, "send_window: bad time \"8:00\" (want HH:MM)" },
	{ "08:00-24:01", NULL, NULL, NULL, "send_window: \"24:01\" is not a time of day" },
	{ "24:00-08:00", NULL, NULL, NULL, "send_window: \"24:00\" is not a time of day (00:00-23:59)" },
	{ "08:60-22:00", NULL, NULL, NULL, "send_window: \"08:60\" is not a time of day" },
	{ "08:00-08:00", NULL, NULL, NULL, "send_window: \"08:00-08:00\" is empty" },
	{ "08:00 22:00", NULL, NULL, NULL, "send_window: expected \"-\" after the start time" },
	{ "08:00-22:00 x", NULL, NULL, NULL, "send_window: unexpected \"x\"" },
	{ NULL, "mon-thr 08:00-15:45", NULL, NULL, "support_hours: unknown day \"thr\"" },
	{ NULL, "monday 08:00-15:45", NULL, NULL, "support_hours: unknown day \"monday\"" },
	{ NULL, "mon-thu 08:00-15:45, thu 08:00-14:00", NULL, NULL, "support_hours: thu appears twice" },
	{ NULL, "mon 08:00-12:00, mon 13:00-15:00", NULL, NULL, "support_hours: mon appears twice" },
	{ NULL, "fri-mon 08:00-12:00", NULL, NULL, "support_hours: day range \"fri-mon\" runs backwards" },
	{ NULL, "fri 14:00-08:00", NULL, NULL, "support_hours: fri: end 08:00 is not after start 14:00" },
	{ NULL, "mon 08:00-15:45,, fri 08:00-14:00", NULL, NULL, "support_hours: empty clause" },
	{ NULL, "mon 08:00-15:45,", NULL, NULL, "support_hours: empty clause" },
	{ NULL, "08:00-15:45", NULL, NULL, "support_hours: expected a day (mon..sun)" },
	{ NULL, "mon08:00-15:45", NULL, NULL, "support_hours: expected a blank after the days" },
	{ NULL, "mon 08:00-15:45 fri 08:00-14:00", NULL, NULL, "support_hours: expected \",\"" },
	{ NULL, "mon 24:01-25:00", NULL, NULL, "support_hours: \"24:01\" is not a time of day" },
	{ NULL, NULL, "02-30", NULL, "closed_days: \"02-30\" is not a day of the year (MM-DD)" },
	{ NULL, NULL, "12-24, 04-31", NULL, "closed_days: \"04-31\" is not a day of the year" },
	{ NULL, NULL, "13-01", NULL, "closed_days: \"13-01\" is not a day of the year" },
	{ NULL, NULL, "12-00", NULL, "closed_days: \"12-00\" is not a day of the year" },
	{ NULL, NULL, "1224", NULL, "closed_days: bad day \"1224\" (want MM-DD)" },
	{ NULL, NULL, "12/24", NULL, "closed_days: bad day \"12/24\"" },
	{ NULL, NULL, "12-24,, 12-31", NULL, "closed_days: empty entry" },
	{ NULL, NULL, "12-24,", NULL, "closed_days: empty entry" },
	{ NULL, NULL, "12-24 12-31", NULL, "closed_days: expected \",\"" },
	{ NULL, NULL, NULL, "Europe/Copenhagn", "timezone: unknown time zone \"Europe/Copenhagn\"" },
	{ NULL, NULL, NULL, "Europe", "timezone: unknown time zone \"Europe\"" },
	{ NULL, NULL, NULL, "zone.tab", "timezone: unknown time zone \"zone.tab\"" },
	{ NULL, NULL, NULL, "CEST", "timezone: unknown time zone \"CEST\"" },
	{ NULL, NULL, NULL, "../../../etc/passwd",
	  "timezone: \"../../../etc/passwd\" is not a time zone name" },
	{ NULL, NULL, NULL, "/etc/localtime", "timezone: \"/etc/localtime\" is not a time zone name" },
};

Test(parse, every_bad_setting_is_named_with_its_reason)
{
	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		const struct bad_config *c = &bad_configs[i];
		char err[256] = "";
		struct timerules *r = timerules_new(c->window, c->hours, c->closed, c->zone, err, sizeof(err));

		cr_assert_null(r, "case %zu accepted", i);
		cr_assert_not_null(strstr(err, c->message), "case %zu: got \"%s\", want \"%s\"", i, err,
				   c->message);
	}
}

Test(parse, a_bad_config_leaves_the_zone_alone)
{
	char err[128];

	cr_assert_eq(setenv("TZ", "UTC", 1), 0);
	cr_assert_null(timerules_new(NULL, NULL, "02-30", "America/New_York", err, sizeof(err)));
	cr_assert_str_eq(getenv("TZ"), "UTC");
	cr_assert_null(timerules_new(NULL, NULL, NULL, "Nowhere/Atlantis", err, sizeof(err)));
	cr_assert_str_eq(getenv("TZ"), "UTC");
}

Test(parse, error_buffer_is_bounded_and_optional)
{
	char err[8];

	memset(err, 'x', sizeof(err));
	cr_assert_null(timerules_new("bad", NULL, NULL, NULL, err, sizeof(err)));
	cr_assert_eq(strlen(err), sizeof(err) - 1);
	cr_assert_str_eq(err, "send_wi");
	cr_assert_null(timerules_new("bad", NULL, NULL, NULL, NULL, 0));
}

Test(parse, blanks_mean_defaults_and_feb_29_is_a_day)
{
	struct timerules *r = make("", "  ", "02-29", " ");

	cr_assert_str_eq(getenv("TZ"), "Europe/Copenhagen");
	cr_assert_not(timerules_in_send_window(r, local(2026, 3, 2, 22, 0, 0)));
	cr_assert_eq(timerules_audience(r, local(2026, 3, MON_2, 15, 44, 0)), AUDIENCE_SUPPORT);
	cr_assert_eq(timerules_audience(r, local(2026, 3, FRI_6, 14, 0, 0)), AUDIENCE_ONCALL);
	cr_assert(timerules_is_closed_day(r, local(2028, 2, 29, 10, 0, 0))); /* a Tuesday */
	cr_assert_not(timerules_is_closed_day(r, local(2028, 2, 28, 10, 0, 0)));
	timerules_free(r);
	timerules_free(NULL);
}

/* ---- reading and writing times -------------------------------------------- */

TestSuite(timefmt, .init = setup_default, .fini = teardown);

Test(timefmt, parse_time_local_and_with_offsets)
{
	static const struct {
		const char *s;
		int64_t want;
	} cases[] = {
		{ "2026-03-29 08:00", SPRING_0800 },
		{ "2026-03-29T08:00", SPRING_0800 },
		{ "2026-03-29T08:00:30", SPRING_0800 + 30 * MS },
		{ "2026-03-29T06:00Z", SPRING_0800 },
		{ "2026-03-29 06:00:00Z", SPRING_0800 },
		{ "2026-03-29T08:00+02:00", SPRING_0800 },
		{ "2026-03-29T05:30-00:30", SPRING_0800 },
		{ "2026-10-25 22:00", FALL_2200 },
		{ "2026-10-25 02:30", FALL_0230_CEST }, /* the first of the two */
		{ "1970-01-01T00:00Z", 0 },
		{ "1969-12-31T23:59:59Z", -1000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = 42;
		cr_assert_eq(timerules_parse_time(cases[i].s, &t), 0, "%s", cases[i].s);
		cr_assert_eq(t, cases[i].want, "%s: got %lld", cases[i].s, (long long)t);
	}
}

Test(timefmt, parse_time_rejects_and_leaves_t_alone)
{
	static const char *const bad[] = {
		"", "2026-03-29", "2026-03-29 02:30", /* skipped in spring */
		"2026-02-29 12:00", "2026-13-01 00:00", "2026-04-31 00:00", "0000-01-01 00:00",
		"2026-01-01 24:00", "2026-01-01 12:60", "2026-01-01 12:00:60", "2026-01-01 12:00 ",
		"2026-01-01 12:00+0100", "2026-01-01 12:00+01", "2026-01-01 12:00z", "2026-01-01X12:00",
		"2026-1-01 12:00", "2026-01-01 1:00", " 2026-01-01 12:00", "2026-01-01 12:00Z+01:00",
		"2026-01-01 12:00+24:00", "2026-01-01T24:00Z",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t = 42;
		cr_assert_eq(timerules_parse_time(bad[i], &t), -EINVAL, "\"%s\" accepted", bad[i]);
		cr_assert_eq(t, 42);
	}
	int64_t t = 0;
	cr_assert_eq(timerules_parse_time("2024-02-29 12:00", &t), 0);
	cr_assert_eq(t, local(2024, 2, 29, 12, 0, 0));
}

Test(timefmt, format_local)
{
	char small[5] = "zzzz";

	assert_local_is(SPRING_0800, "2026-03-29 08:00");
	assert_local_is(FALL_0800, "2026-10-25 08:00");
	assert_local_is(FALL_0230_CEST, "2026-10-25 02:30");
	assert_local_is(FALL_0230_CEST + HOUR, "2026-10-25 02:30");
	/* Milliseconds before the epoch round down: 1969-12-31 23:59:59.999Z. */
	assert_local_is(-1, "1970-01-01 00:59");
	timerules_format_local(SPRING_0800, small, sizeof(small));
	cr_assert_str_eq(small, "2026");
	timerules_format_local(SPRING_0800, small, 0);
	cr_assert_str_eq(small, "2026");
}

Test(timefmt, parse_and_format_round_trip)
{
	static const char *const s[] = { "2026-03-29 03:00", "2026-10-25 01:59", "2026-12-31 23:59",
					 "2028-02-29 00:00", "2026-10-25 03:00" };

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		int64_t t;
		cr_assert_eq(timerules_parse_time(s[i], &t), 0);
		assert_local_is(t, s[i]);
	}
}

Test(check, one_setting_without_applying_it)
{
	char err[256];
	const char *tz = getenv("TZ");
	char before[64];
	str_copy(before, tz ? tz : "", sizeof(before));

	cr_assert_eq(timerules_check("send_window", "08:00-22:00", err, sizeof(err)), 0);
	cr_assert_eq(timerules_check("support_hours", "mon-fri 09:00-15:00", err, sizeof(err)), 0);
	cr_assert_eq(timerules_check("closed_days", "12-24, 02-29", err, sizeof(err)), 0);
	cr_assert_eq(timerules_check("timezone", "Asia/Tokyo", err, sizeof(err)), 0);
	tz = getenv("TZ");
	cr_assert_str_eq(tz ? tz : "", before, "a check must not change the process zone");

	cr_assert_eq(timerules_check("send_window", "8-22", err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "bad time \"8\" (want HH:MM)", "the key is not repeated");
	cr_assert_eq(timerules_check("support_hours", "mon 08:00-15:00, mon 09:00-10:00", err,
				     sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "mon") != NULL, "%s", err);
	cr_assert_eq(timerules_check("closed_days", "13-01", err, sizeof(err)), -EINVAL);
	cr_assert_eq(timerules_check("timezone", "Mars/Olympus", err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "Mars/Olympus") != NULL, "%s", err);
	cr_assert_eq(timerules_check("language", "da", err, sizeof(err)), -EINVAL);
}

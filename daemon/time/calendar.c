/*
 * calendar.c - Gregorian date arithmetic and the Danish public holidays.
 *
 * Owns the list of helligdage: three fixed dates and the movable feasts,
 * each a day offset from Easter Sunday (computed per year with the
 * anonymous Gregorian computus), plus the year from which a day stopped
 * being a holiday (Store Bededag, abolished from 2024). Everything here is
 * a pure function of a date: no time zone, no clock, no state.
 * timerules.c feeds it local dates and decides what a holiday means for a
 * notice; the unit tests pin the Easter dates and a whole year's holidays.
 */
#include "time/calendar.h"

#include <assert.h>
#include <stddef.h>

#include "codecs/base/mem.h"

/* A movable holiday: Easter Sunday + offset days, a holiday in years
 * before until_year (0: still a holiday). */
struct movable {
	int offset;
	int until_year;
	const char *name;
};

struct fixed {
	int month, day;
	const char *name;
};

static const struct movable movables[] = {
	/* offset  until   name */
	{ -3,      0,      "Skaertorsdag" },
	{ -2,      0,      "Langfredag" },
	{ 0,       0,      "Paaskedag" },
	{ 1,       0,      "2. paaskedag" },
	{ 26,      2024,   "Store Bededag" }, /* a Friday; abolished from 2024 */
	{ 39,      0,      "Kristi Himmelfartsdag" },
	{ 49,      0,      "Pinsedag" },
	{ 50,      0,      "2. pinsedag" },
};

static const struct fixed fixeds[] = {
	{ 1, 1, "Nytaarsdag" },
	{ 12, 25, "Juledag" },
	{ 12, 26, "2. juledag" },
};

/* Days before the first of each month in a common year. */
static const int month_start[12] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };

static bool is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int calendar_days_in_month(int year, int month)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month < 1 || month > 12)
		return 0;
	return len[month - 1] + (month == 2 && is_leap(year));
}

/* Day of the year, 0 for January 1st. */
static int day_of_year(int year, int month, int day)
{
	return month_start[month - 1] + (month > 2 && is_leap(year)) + day - 1;
}

int64_t calendar_days_from_civil(int year, int month, int day)
{
	/* Days from 0001-01-01 to January 1st of year, minus the same for 1970. */
	int64_t y = year - 1;
	int64_t jan1 = 365 * y + y / 4 - y / 100 + y / 400;

	assert(year >= 1 && month >= 1 && month <= 12);
	return jan1 - 719162 + day_of_year(year, month, day);
}

void calendar_easter(int year, int *month, int *day)
{
	int a = year % 19, b = year / 100, c = year % 100;
	int d = b / 4, e = b % 4;
	int f = (b + 8) / 25;
	int g = (b - f + 1) / 3;
	int h = (19 * a + b - d - g + 15) % 30;
	int i = c / 4, k = c % 4;
	int l = (32 + 2 * e + 2 * i - h - k) % 7;
	int m = (a + 11 * h + 22 * l) / 451;
	int n = h + l - 7 * m + 114;

	*month = n / 31;
	*day = n % 31 + 1;
}

static const char *movable_holiday(int year, int month, int day)
{
	int em, ed;

	calendar_easter(year, &em, &ed);
	/* Every offset stays inside the year: Easter is Mar 22 - Apr 25. */
	int offset = day_of_year(year, month, day) - day_of_year(year, em, ed);
	for (size_t i = 0; i < ARRAY_SIZE(movables); i++) {
		const struct movable *mv = &movables[i];
		if (mv->offset == offset && (mv->until_year == 0 || year < mv->until_year))
			return mv->name;
	}
	return NULL;
}

bool calendar_is_public_holiday(int year, int month, int day, const char **name)
{
	const char *found = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(fixeds) && !found; i++)
		if (fixeds[i].month == month && fixeds[i].day == day)
			found = fixeds[i].name;
	if (!found && month >= 3 && month <= 6)
		found = movable_holiday(year, month, day);
	if (found && name)
		*name = found;
	return found != NULL;
}

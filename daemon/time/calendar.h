/*
 * calendar.h - the proleptic Gregorian calendar and Danish public holidays
 * (helligdage), by pure arithmetic on dates. No time zones, no clock: the
 * caller turns an instant into a local date first (timerules.c does).
 */
#ifndef EDIBROKER_CALENDAR_H
#define EDIBROKER_CALENDAR_H

#include <stdbool.h>
#include <stdint.h>

/* Danish public holiday on this date (month 1-12)? Sets *name (Danish, e.g.
 * "Skaertorsdag" spelled with ASCII) when name is not NULL and it is one.
 * Store Bededag counts only before 2024 (abolished from 2024). Grundlovsdag,
 * Dec 24 and Dec 31 are not public holidays. */
bool calendar_is_public_holiday(int year, int month, int day, const char **name);
/* Gregorian Easter Sunday (anonymous Gregorian computus), year >= 1583. */
void calendar_easter(int year, int *month, int *day);

/* Days in month (1-12) of year, leap years included; 0 for a bad month. */
int calendar_days_in_month(int year, int month);
/* Days from 1970-01-01 to a valid date of year >= 1 (negative before 1970). */
int64_t calendar_days_from_civil(int year, int month, int day);

#endif

/*
 * timerules.h - when a notice may go out, and to whom (outage procedure
 * "Time rules", ../shared/domain/outage-procedure.md).
 *
 * All rules are in the configured local time (Europe/Copenhagen by
 * default, with summer time):
 *   - the send window (default 08:00-22:00, every day): a notice that falls
 *     due outside it is held to the window's next opening;
 *   - EDI-support hours (default Mon-Thu 08:00-15:45, Fri 08:00-14:00):
 *     inside them notices go to EDI support, outside them (and at weekends
 *     and on public holidays) to the on-call duty;
 *   - Danish public holidays count as weekend days: a built-in calendar
 *     (Easter-based days computed; Store Bededag only before 2024) plus the
 *     configured closed days (MM-DD).
 * Pure functions of their inputs and the process time zone, which
 * timerules_new() sets (TZ) for the whole process.
 */
#ifndef EDIBROKER_TIMERULES_H
#define EDIBROKER_TIMERULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "time/calendar.h" /* calendar_is_public_holiday(), calendar_easter() */

enum audience { AUDIENCE_SUPPORT, AUDIENCE_ONCALL };

struct timerules;

/* Parses the four settings (any may be NULL or blank for its default:
 * "08:00-22:00", "mon-thu 08:00-15:45, fri 08:00-14:00", "",
 * "Europe/Copenhagen"). "00:00-24:00" means always; a send window whose end
 * is before its start crosses midnight ("22:00-06:00"). Support hours may not
 * cross midnight. Sets TZ for the process only when everything is valid.
 * Returns NULL with a specific reason ("key: why") in err. */
struct timerules *timerules_new(const char *send_window, const char *support_hours,
				const char *closed_days, const char *timezone, char *err,
				size_t errlen);
void timerules_free(struct timerules *tr);
/* Checks one setting ("send_window", "support_hours", "closed_days" or
 * "timezone") without applying it; the reason in err does not repeat the
 * key. 0 or -EINVAL. The config loader uses it so errors name the line. */
int timerules_check(const char *key, const char *value, char *err, size_t errlen);

/* True when a notice may be sent at wall time t (ms since the epoch). */
bool timerules_in_send_window(const struct timerules *tr, int64_t t);
/* The earliest time >= t inside the send window. */
int64_t timerules_next_send_time(const struct timerules *tr, int64_t t);
/* Who receives a notice sent at t. */
enum audience timerules_audience(const struct timerules *tr, int64_t t);
/* True when the local date of t is a weekend day (unless support_hours
 * names that day), a public holiday or a configured closed day. */
bool timerules_is_closed_day(const struct timerules *tr, int64_t t);

/* Parses a local time "YYYY-MM-DD HH:MM", "YYYY-MM-DDTHH:MM[:SS]", with an
 * optional "Z" or "+HH:MM" offset (then not local). 0 or -EINVAL. A local
 * time in the hour skipped in spring is -EINVAL; one in the repeated autumn
 * hour is its first (summer-time) occurrence. */
int timerules_parse_time(const char *s, int64_t *t);
/* Formats t as local "YYYY-MM-DD HH:MM". */
void timerules_format_local(int64_t t, char *buf, size_t len);

#endif

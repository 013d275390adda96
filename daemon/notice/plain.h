/*
 * plain.h - the words notices and the status page share, so both say the
 * same thing the same way to the people who read them: one date format,
 * durations, message types by name with the code beside it, fault classes
 * in words, and what to do while messages cannot go (the clinical
 * fallback: whom to phone).
 *
 * Languages are "da" and "en"; anything else reads as "da". Times are
 * local to the process time zone (set by timerules_new). Never a path, an
 * errno text or a library message: those stay in the log and edibrokerctl.
 */
#ifndef EDIBROKER_PLAIN_H
#define EDIBROKER_PLAIN_H

#include "codecs/base/strbuf.h"

#include <stdbool.h>
#include <stdint.h>

/* "27-11-2026 kl. 14:05" (da), "2026-11-27 14:05" (en); unknown when ms <= 0. */
void plain_time(struct strbuf *b, const char *lang, int64_t ms, const char *unknown);
/* "14:05" when ms falls on the local day of now, else as plain_time(). */
void plain_time_near(struct strbuf *b, const char *lang, int64_t ms, int64_t now);
/* "0 min", "59 min", "2 t 5 min", from two days on "3 døgn 2 t" ("h", "d" in
 * English); rounded down, negative as 0. */
void plain_duration(struct strbuf *b, const char *lang, int64_t ms);
/* "Indlæggelsesadvis (XDIS20)"; the type alone when it has no name
 * (codecs/msgtypes.h); unknown when type is NULL or "". */
void plain_msgtype(struct strbuf *b, const char *lang, const char *type, const char *unknown);
/* A fault class's stable name (base/fault.h) in words: "disken er fuld";
 * "ukendt fejl" / "unknown fault" for an empty or unknown name. */
const char *plain_fault(const char *fault, const char *lang);

/* Whom to phone while messages cannot go. */
struct plain_fallback {
	const char *contact;       /* endpoint's fallback_contact or the outage's; NULL/"" = none */
	const char *note;          /* fallback_note: what to do meanwhile; NULL/"" = none */
	const char *support_phone; /* [notify] support_phone: called when there is no contact */
};

/* What staff do, as one or two lines (no trailing newline): "Haster det, så
 * ring til CONTACT." (the regional EDI support and its number without a
 * contact), then the note on a line of its own. over: the outage or window
 * is over, so nothing is needed now; the contact is named for next time. */
void plain_fallback(struct strbuf *b, const char *lang, const struct plain_fallback *f, bool over);

#endif

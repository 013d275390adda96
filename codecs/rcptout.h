/*
 * rcptout.h - what the receipt writers share (VANS, SBDH, FHIR): XML-escaped
 * text and elements on a strbuf, ISO 8601 date-times with the UTC offset,
 * and the checks their parameters pass before a byte is written.
 */
#ifndef EDIBROKER_RCPTOUT_H
#define EDIBROKER_RCPTOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "codecs/base/strbuf.h"

/* Appends s with & < > " ' escaped (s is valid UTF-8 XML text). */
void rcptout_text(struct strbuf *b, const char *s);
/* Appends indent*2 spaces and <name>escaped text</name>\n. */
void rcptout_elem(struct strbuf *b, int indent, const char *name, const char *text);

/* tm (local time with tm_gmtoff, as localtime_r fills it) as
 * "YYYY-MM-DDTHH:MM:SS+hh:mm". False when it does not fit out. */
bool rcptout_datetime(const struct tm *tm, char *out, size_t outsz);

/* True when s is 1..max bytes of valid UTF-8 that XML 1.0 can carry, with
 * no control characters (allow_breaks admits \t \n \r). */
bool rcptout_text_ok(const char *s, size_t max, bool allow_breaks);

#endif

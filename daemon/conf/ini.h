/*
 * ini.h - a small reader for the INI dialect of edibroker's configuration,
 * with the line number of everything it reports.
 *
 * The dialect, line by line (lines end at '\n'; blanks are isspace()):
 *   - blank, or ';' or '#' as its first non-blank: a comment;
 *   - an indented line after a key of the same section: a continuation of
 *     that key's value (a section header ends the key; comments and blank
 *     lines in between do not);
 *   - "[text]": a section header; text is what stands between '[' and the
 *     first ']', as written; anything after the ']' is ignored;
 *   - "key = value" (or "key: value", the first '=' or ':' splits): a pair.
 * Keys, values and continuations are trimmed, and a ';' after a blank
 * starts an inline comment that is dropped. A UTF-8 byte order mark may
 * open the file; "\r\n" line ends are fine. A line holds at most
 * INI_LINE_MAX bytes (its '\n' not counted) and no NUL byte.
 */
#ifndef EDIBROKER_INI_H
#define EDIBROKER_INI_H

#include <stddef.h>
#include <stdio.h>

#define INI_LINE_MAX (64 * 1024)

/* Called in file order with 1-based line numbers; the strings live for the
 * call only. A callback returns 0, or a negative errno to stop the reader
 * (having reported why itself). */
struct ini_handler {
	int (*section)(void *user, const char *text, int line);
	int (*pair)(void *user, const char *key, const char *value, int line);
	/* A continuation of key's value: text is never empty. */
	int (*more)(void *user, const char *key, const char *text, int line);
};

/* Reads f to its end. Returns 0; a callback's negative return; or -EINVAL
 * (bad line) or -errno (read error) with "NAME:LINE: reason" in err. */
int ini_parse(FILE *f, const char *name, const struct ini_handler *h, void *user, char *err,
	      size_t errlen);

#endif

/*
 * test_ini.c - the INI reader (conf/ini.c) as a codec: bytes in, a list of
 * events (section, pair, continuation, each with its line) or one
 * "NAME:LINE: reason" out. Inputs come from memory through fmemopen(), so
 * NUL bytes, CR, byte order marks and lines at the length limit are exact.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/ini.h"
#include "codecs/base/mem.h"

#define SYNTAX "syntax error (expected 'key = value', '[section]' or a ; comment)"

/* What the handler saw, one event per line: "3 [text]", "4 key=value",
 * "5 key+text" (strings cut at 64 bytes). */
struct seen {
	char log[4096];
	int stop_at; /* a callback at this line fails with -ENOTSUP */
};

static int record(struct seen *s, int line, const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(s->log);
	snprintf(s->log + n, sizeof(s->log) - n, "%d ", line);
	n = strlen(s->log);
	snprintf(s->log + n, sizeof(s->log) - n, fmt, a, b);
	return line == s->stop_at ? -ENOTSUP : 0;
}

static int on_section(void *user, const char *text, int line)
{
	return record(user, line, "[%.64s]%s\n", text, "");
}

static int on_pair(void *user, const char *key, const char *value, int line)
{
	return record(user, line, "%.64s=%.64s\n", key, value);
}

static int on_more(void *user, const char *key, const char *text, int line)
{
	cr_assert_neq(text[0], '\0', "a continuation is never empty");
	return record(user, line, "%.64s+%.64s\n", key, text);
}

static const struct ini_handler handler = { on_section, on_pair, on_more };
static char err[256];

/* Reads len bytes of text; the events go to s->log. */
static int parse_bytes(const char *text, size_t len, struct seen *s)
{
	/* fmemopen() of a zero-length buffer is refused: read an empty one */
	FILE *f = len ? fmemopen((void *)text, len, "r") : fopen("/dev/null", "r");
	cr_assert_not_null(f);
	err[0] = '\0';
	s->log[0] = '\0';
	int r = ini_parse(f, "t.conf", &handler, s, err, sizeof(err));
	fclose(f);
	return r;
}

static void expect_events(const char *text, const char *events)
{
	struct seen s = { .stop_at = 0 };
	int r = parse_bytes(text, strlen(text), &s);
	cr_expect_eq(r, 0, "for:\n%s\nerr: %s", text, err);
	cr_expect_str_eq(s.log, events, "for:\n%s", text);
}

static void expect_error(const char *text, size_t len, const char *want)
{
	struct seen s = { .stop_at = 0 };
	int r = parse_bytes(text, len, &s);
	cr_expect_eq(r, -EINVAL, "for:\n%s", text);
	cr_expect_str_eq(err, want, "for:\n%s", text);
}

Test(ini, sections_pairs_and_comments)
{
	expect_events("", "");
	expect_events("; only\n# comments\n\n   \n\t; indented\n", "");
	expect_events("[broker]\nstate_dir = /x\n\n[endpoint a b]\nkind=other\n",
		      "1 [broker]\n2 state_dir=/x\n4 [endpoint a b]\n5 kind=other\n");
	expect_events("[ spaced ]  ; comment\n[x] anything after\n", "1 [ spaced ]\n2 [x]\n");
	/* the text up to the first ']', as written: config.c judges it */
	expect_events("[s ; c]\n[a]]\n", "1 [s ; c]\n2 [a]\n");
	expect_events("key = value\n", "1 key=value\n"); /* before any section: config's to refuse */
	expect_events("a = \nb =\n", "1 a=\n2 b=\n");
	expect_events("timezone: Europe/Copenhagen\nurl = smtp://h:25\nk:v = w\n",
		      "1 timezone=Europe/Copenhagen\n2 url=smtp://h:25\n3 k=v = w\n");
	expect_events("= x\n", "1 =x\n");
	expect_events("a b = c d\n", "1 a b=c d\n");
}

Test(ini, inline_comments_need_a_blank_before_them)
{
	expect_events("a = 1 ; one\n", "1 a=1\n");
	expect_events("a = 1\t; tab\n", "1 a=1\n");
	expect_events("a = x;y\n", "1 a=x;y\n");
	expect_events("a =;x\n", "1 a=;x\n");
	expect_events("a = ;x\n", "1 a=\n");
	expect_events("a = 1 # not a comment\n", "1 a=1 # not a comment\n");
	expect_events("[s]\na = 1,\n  2 ; two\n  3;x\n", "1 [s]\n2 a=1,\n3 a+2\n4 a+3;x\n");
}

Test(ini, continuation_lines)
{
	/* blank and comment lines do not end a value; a section header does */
	expect_events("[s]\nlist = 1,\n\n; note\n\t2\n   3, 4\n[t]\n  x = 5\n",
		      "1 [s]\n2 list=1,\n5 list+2\n6 list+3, 4\n7 [t]\n8 x=5\n");
	/* an indented line after a key continues it, whatever it looks like */
	expect_events("a = 1\n  b = 2\n  [c]\n", "1 a=1\n2 a+b = 2\n3 a+[c]\n");
	/* indentation without a previous key is nothing special */
	expect_events("  [s]\n  a = 1\n", "1 [s]\n2 a=1\n");
	/* the key that continues is the last one */
	expect_events("a = 1\nb = 2\n 3\n", "1 a=1\n2 b=2\n3 b+3\n");
}

Test(ini, crlf_and_byte_order_mark)
{
	expect_events("\xEF\xBB\xBF[s]\r\na = 1 ; c\r\n  2\r\n\r\n", "1 [s]\n2 a=1\n3 a+2\n");
	expect_events("\xEF\xBB\xBF" "a = 1\n", "1 a=1\n");
	/* a BOM anywhere else is text */
	expect_events("a = 1\n\xEF\xBB\xBF" "b = 2\n", "1 a=1\n2 \xEF\xBB\xBF" "b=2\n");
	expect_events("a = 1", "1 a=1\n"); /* no newline at the end */
	expect_events("a = 1\rb = 2\n", "1 a=1\rb = 2\n");
}

Test(ini, bad_lines_name_their_line)
{
	expect_error("[broker\n", 8, "t.conf:1: " SYNTAX);
	expect_error("[s]\nstate_dir\n", 14, "t.conf:2: " SYNTAX);
	expect_error("[s]\n\n\nkey ; c = v\n", 16, "t.conf:4: " SYNTAX);
}

Test(ini, nul_bytes_are_refused)
{
	static const char text[] = "[s]\na = A\0B\n";
	expect_error(text, sizeof(text) - 1, "t.conf:2: NUL byte in the line");
	static const char in_comment[] = "; \0\n";
	expect_error(in_comment, sizeof(in_comment) - 1, "t.conf:1: NUL byte in the line");
}

/* A line of exactly n bytes (without its newline) after a first line. */
static char *line_of(size_t n, const char *tail)
{
	char *text = xmalloc(n + 32);
	memcpy(text, "[s]\na = ", 8);
	memset(text + 8, 'x', n - 4);
	strcpy(text + 4 + n, tail);
	return text;
}

Test(ini, line_length_limit)
{
	struct seen s = { .stop_at = 0 };
	char want[64];

	for (int nl = 0; nl < 2; nl++) {
		_cleanup_free_ char *ok = line_of(INI_LINE_MAX, nl ? "\nb = 1\n" : "");
		cr_expect_eq(parse_bytes(ok, strlen(ok), &s), 0, "%s", err);
		cr_expect(strstr(s.log, nl ? "\n3 b=1\n" : "xx\n"), "lines after a long one count on");
		_cleanup_free_ char *bad = line_of(INI_LINE_MAX + 1, nl ? "\n" : "");
		snprintf(want, sizeof(want), "t.conf:2: line longer than %d bytes", INI_LINE_MAX);
		cr_expect_eq(parse_bytes(bad, strlen(bad), &s), -EINVAL);
		cr_expect_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
	}
	_cleanup_free_ char *huge = line_of(4 * INI_LINE_MAX, "\n");
	cr_expect_eq(parse_bytes(huge, strlen(huge), &s), -EINVAL);
	cr_expect_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
}

Test(ini, a_failing_callback_stops_the_reader)
{
	struct seen s = { .stop_at = 2 };
	static const char text[] = "[s]\na = 1\nb = 2\n[broken\n";
	int r = parse_bytes(text, sizeof(text) - 1, &s);
	cr_assert_eq(r, -ENOTSUP);
	cr_assert_str_eq(s.log, "1 [s]\n2 a=1\n", "nothing after the failing line");
	cr_assert_str_eq(err, "", "the callback reports its own error");
	s.stop_at = 3;
	static const char more[] = "a = 1,\n\n  2\n  3\n";
	cr_assert_eq(parse_bytes(more, sizeof(more) - 1, &s), -ENOTSUP);
	cr_assert_str_eq(s.log, "1 a=1,\n3 a+2\n");
}

Test(ini, read_errors_and_no_error_buffer)
{
	struct seen s = { .stop_at = 0 };
	FILE *f = fopen("/dev/null", "w"); /* reading it fails with EBADF */
	cr_assert_not_null(f);
	int r = ini_parse(f, "t.conf", &handler, &s, err, sizeof(err));
	fclose(f);
	cr_assert_eq(r, -EBADF);
	cr_assert_str_eq(err, "t.conf:1: read error: Bad file descriptor");

	f = fmemopen((void *)"[x\n", 3, "r");
	cr_assert_not_null(f);
	cr_assert_eq(ini_parse(f, "t.conf", &handler, &s, NULL, 0), -EINVAL, "err may be NULL");
	fclose(f);
}

/*
 * fuzz_ini.c - libFuzzer target for the INI reader (conf/ini.c), which
 * reads the operator's configuration before anything checks it.
 *
 * Every input is read from memory. The events must keep the ini.h
 * contract: line numbers rising and within the input, keys, values and
 * continuations trimmed with no inline comment left in them, a continuation
 * never empty and only after a pair of the same section. A failure must be
 * one printable "fuzz.conf:LINE: reason" with LINE within the input, an
 * input with a NUL byte never succeeds, and a callback's failure stops the
 * reader with the error buffer untouched. Invariant failures abort() so
 * libFuzzer saves the input. Built by `make fuzz` (clang, libFuzzer) and
 * replayed by replay_main.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct state {
	int lines;     /* in the input */
	int last_line; /* of the previous event */
	int stop_at;   /* the callback at this line fails */
	bool have_key; /* a pair since the last section */
	int events;
};

static void check_line(struct state *st, int line)
{
	CHECK(line > st->last_line && line <= st->lines);
	st->last_line = line;
	st->events++;
}

static void check_trimmed(const char *s, bool may_be_empty)
{
	size_t n = strlen(s);
	CHECK(may_be_empty || n > 0);
	CHECK(n == 0 || (!isspace((unsigned char)s[0]) && !isspace((unsigned char)s[n - 1])));
	CHECK(!strchr(s, '\n'));
	for (size_t i = 1; i < n; i++)
		CHECK(!(s[i] == ';' && isspace((unsigned char)s[i - 1])));
}

static int on_section(void *user, const char *text, int line)
{
	struct state *st = user;
	check_line(st, line);
	CHECK(!strchr(text, ']') && !strchr(text, '\n'));
	st->have_key = false;
	return line == st->stop_at ? -ENOTSUP : 0;
}

static int on_pair(void *user, const char *key, const char *value, int line)
{
	struct state *st = user;
	check_line(st, line);
	CHECK(!strpbrk(key, "=:"));
	check_trimmed(key, true);
	check_trimmed(value, true);
	st->have_key = true;
	return line == st->stop_at ? -ENOTSUP : 0;
}

static int on_more(void *user, const char *key, const char *text, int line)
{
	struct state *st = user;
	check_line(st, line);
	CHECK(st->have_key);
	CHECK(!strpbrk(key, "=:"));
	check_trimmed(text, false);
	CHECK(text[0] != ';' && text[0] != '#');
	return line == st->stop_at ? -ENOTSUP : 0;
}

static void check_error(const char *err, const struct state *st)
{
	static const char *const reasons[] = {
		"syntax error (expected 'key = value', '[section]' or a ; comment)",
		"NUL byte in the line",
		"line longer than",
	};
	int line = 0, n = 0;
	CHECK(sscanf(err, "fuzz.conf:%d: %n", &line, &n) == 1 && n > 0);
	CHECK(line >= 1 && line <= st->lines && line > st->last_line);
	bool known = false;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		known |= strncmp(err + n, reasons[i], strlen(reasons[i])) == 0;
	CHECK(known);
	for (const char *p = err; *p; p++)
		CHECK(*p >= 0x20 && *p <= 0x7E);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ini_handler h = { on_section, on_pair, on_more };
	struct state st = { .stop_at = size > 0 ? data[size - 1] % 64 : 0 };
	char err[256] = "";

	if (size == 0)
		return 0; /* fmemopen() refuses an empty buffer */
	st.lines = 1;
	for (size_t i = 0; i + 1 < size; i++)
		st.lines += data[i] == '\n';
	FILE *f = fmemopen((void *)data, size, "r");
	CHECK(f);
	int r = ini_parse(f, "fuzz.conf", &h, &st, err, sizeof(err));
	fclose(f);
	CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP);
	CHECK(st.events <= st.lines);
	if (r == 0)
		CHECK(!memchr(data, '\0', size) && err[0] == '\0');
	else if (r == -ENOTSUP)
		CHECK(st.last_line == st.stop_at && err[0] == '\0');
	else
		check_error(err, &st);
	return 0;
}

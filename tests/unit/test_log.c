/*
 * test_log.c - the one log writer (log.c): records are single lines in the
 * "<P>" convention, and no value can forge a field or a record.
 *
 * stderr is redirected into a pipe for each call; the test reads back the
 * exact bytes written.
 */
#include "base/log.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Runs one log call with stderr captured; returns the bytes written. */
#define CAPTURE(buf, call)                                                                         \
	do {                                                                                       \
		int fds[2];                                                                        \
		cr_assert_eq(pipe(fds), 0);                                                        \
		int saved = dup(STDERR_FILENO);                                                    \
		dup2(fds[1], STDERR_FILENO);                                                       \
		log_setup(LOG_DEBUG, 0);                                                           \
		call;                                                                              \
		dup2(saved, STDERR_FILENO);                                                        \
		close(saved);                                                                      \
		close(fds[1]);                                                                     \
		ssize_t n_ = read(fds[0], buf, sizeof(buf) - 1);                                   \
		close(fds[0]);                                                                     \
		buf[n_ > 0 ? n_ : 0] = '\0';                                                       \
	} while (0)

Test(log, plain_values_stay_bare)
{
	char out[4096];
	CAPTURE(out, log_info("event=accepted msg=%lld endpoint=%s size=%zu delay=%.1fs n=%d",
			      12LL, "municipality", (size_t)5120, 4.125, -3));
	cr_assert_str_eq(out, "<6>event=accepted msg=12 endpoint=municipality size=5120 "
			      "delay=4.1s n=-3\n");
}

Test(log, a_value_cannot_forge_a_field)
{
	char out[4096];
	CAPTURE(out, log_warn("event=quarantined endpoint=%s file=%s", "hospital",
			      "x event=delivered msg=1"));
	cr_assert_str_eq(out, "<4>event=quarantined endpoint=hospital "
			      "file=\"x event=delivered msg=1\"\n");
}

Test(log, a_value_cannot_start_a_record)
{
	char out[4096];
	CAPTURE(out, log_err("event=x file=%s", "a\n<3>event=forged\r\tz"));
	cr_assert_str_eq(out, "<3>event=x file=\"a\\n<3>event=forged\\r\\tz\"\n");
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "more than one line");
}

Test(log, quoted_parts_escape_quotes_and_backslashes)
{
	char out[4096];
	CAPTURE(out, log_err("event=x error=\"%s: %s\"", "open \"in\"", "C:\\dir\x01"));
	cr_assert_str_eq(out, "<3>event=x error=\"open \\\"in\\\": C:\\\\dir\\x01\"\n");
}

Test(log, empty_and_special_values_are_quoted)
{
	char out[4096];
	CAPTURE(out, log_info("event=x a=%s b=%s c=%s", "", "k=v", "q\""));
	cr_assert_str_eq(out, "<6>event=x a=\"\" b=\"k=v\" c=\"q\\\"\"\n");
}

Test(log, bare_strings_outside_fields_are_quoted_when_needed)
{
	char out[4096];
	CAPTURE(out, log_notice("reload of %s: %s", "plain", "two words"));
	cr_assert_str_eq(out, "<5>reload of plain: \"two words\"\n");
}

Test(log, priorities_above_the_maximum_are_dropped)
{
	char out[4096];
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	int saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	log_setup(LOG_NOTICE, 0);
	log_info("event=hidden");
	log_notice("event=shown pct=%d%%", 5);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	cr_assert_str_eq(out, "<5>event=shown pct=5%\n");
}

Test(log, overlong_records_are_cut_not_split)
{
	char out[8192], big[6000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CAPTURE(out, log_info("event=x v=%s", big));
	size_t n = strlen(out);
	cr_assert_leq(n, 2048);
	cr_assert_eq(out[n - 1], '\n');
	cr_assert_eq(strchr(out, '\n'), out + n - 1);
}

Test(log, precision_caps_a_string_value)
{
	char out[4096];
	CAPTURE(out, log_info("event=x a=%.3s b=%.*s c=%.9s", "abcdef", 2, "x y z", "short"));
	cr_assert_str_eq(out, "<6>event=x a=abc b=\"x \" c=short\n");
}

/*
 * test_zmq_proto.c - the ZeroMQ link's framing (daemon/transport/zmq_proto.c):
 * every command built and parsed back field for field; every argument kind
 * refused when it does not fit (numbers with signs, leading zeros or
 * overflow, references and names with characters that could reach a path
 * or a log line, texts with control characters or broken UTF-8), with a
 * reason that names the frame and never quotes it; the REF of a submission
 * kept when a later frame is bad, so the refusal can name it; texts cut on
 * a character boundary.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "transport/zmq_proto.h"

/* Frames from strings: NULL ends the list. */
static size_t frames(struct zp_frame *f, const char *const *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		f[n] = (struct zp_frame){ s[n], strlen(s[n]) };
	return n;
}

static int parse_strs(const char *const *s, struct zp_msg *m, char *why, size_t len)
{
	struct zp_frame f[16];
	size_t n = frames(f, s);
	return zp_parse(f, n, m, why, len);
}

/* Builds m, parses the frames back and returns the result. */
static struct zp_msg round_trip(const struct zp_msg *m, size_t want_frames)
{
	struct zp_frame f[ZP_FRAMES_MAX];
	char buf[ZP_BUF_SIZE], why[160] = "";
	size_t n = zp_build(m, f, buf);
	cr_assert_eq(n, want_frames, "%s: %zu frames", zp_cmd_name(m->cmd), n);
	struct zp_msg out;
	cr_assert_eq(zp_parse(f, n, &out, why, sizeof(why)), 0, "%s: %s", zp_cmd_name(m->cmd), why);
	cr_assert_eq(out.cmd, m->cmd);
	return out;
}

Test(zmq_proto, every_command_round_trips)
{
	static const uint8_t body[] = "<Emessage>\0binary\xff</Emessage>";
	struct zp_msg m = { .cmd = ZP_SUBMIT, .body = body, .size = sizeof(body) };
	strcpy(m.ref, "file-1.xml:7");
	struct zp_msg o = round_trip(&m, 3);
	cr_assert_str_eq(o.ref, "file-1.xml:7");
	cr_assert_eq(o.size, sizeof(body));
	cr_assert_arr_eq(o.body, body, sizeof(body));

	m = (struct zp_msg){ .cmd = ZP_ACCEPTED, .id = INT64_MAX };
	strcpy(m.ref, "r");
	o = round_trip(&m, 3);
	cr_assert_eq(o.id, INT64_MAX);
	cr_assert_str_eq(o.ref, "r");

	m = (struct zp_msg){ .cmd = ZP_REJECTED, .retryable = true };
	strcpy(m.ref, "9");
	strcpy(m.code, "busy");
	strcpy(m.text, "the queue of municipality is full: try again later");
	o = round_trip(&m, 5);
	cr_assert(o.retryable);
	cr_assert_str_eq(o.code, "busy");
	cr_assert_str_eq(o.text, m.text);

	m = (struct zp_msg){ .cmd = ZP_DELIVER, .id = 42, .body = body, .size = 3 };
	strcpy(m.name, "3f9a1c2d-000000000042.xml");
	o = round_trip(&m, 4);
	cr_assert_eq(o.id, 42);
	cr_assert_str_eq(o.name, m.name);
	cr_assert_eq(o.size, 3);

	m = (struct zp_msg){ .cmd = ZP_DELIVERED, .id = 1 };
	cr_assert_eq(round_trip(&m, 2).id, 1);

	m = (struct zp_msg){ .cmd = ZP_REFUSED, .id = 7, .retryable = false };
	strcpy(m.code, "invalid");
	strcpy(m.text, "ikke en MedCom-meddelelse æøå");
	o = round_trip(&m, 5);
	cr_assert_not(o.retryable);
	cr_assert_str_eq(o.text, m.text);

	m = (struct zp_msg){ .cmd = ZP_READY, .window = ZP_WINDOW_MAX };
	cr_assert_eq(round_trip(&m, 2).window, ZP_WINDOW_MAX);

	m = (struct zp_msg){ .cmd = ZP_HEARTBEAT };
	cr_assert_str_eq(round_trip(&m, 1).state, "", "a peer's heartbeat has no state");
	strcpy(m.state, "standby");
	cr_assert_str_eq(round_trip(&m, 2).state, "standby");

	m = (struct zp_msg){ .cmd = ZP_ERROR };
	strcpy(m.code, "unauthorized");
	strcpy(m.text, "no");
	o = round_trip(&m, 3);
	cr_assert_str_eq(o.code, "unauthorized");
}

Test(zmq_proto, empty_bodies_and_texts_are_frames_too)
{
	struct zp_msg m = { .cmd = ZP_SUBMIT, .body = NULL, .size = 0 };
	strcpy(m.ref, "1");
	struct zp_msg o = round_trip(&m, 3);
	cr_assert_eq(o.size, 0);
	m = (struct zp_msg){ .cmd = ZP_REJECTED };
	strcpy(m.ref, "1");
	strcpy(m.code, "x");
	cr_assert_str_eq(round_trip(&m, 5).text, "");
}

/* Each list must be refused; why names the command or frame and never
 * quotes the marker "SECRETMARK" the bad frames carry. */
static void expect_refused(const char *const *s, const char *why_has)
{
	struct zp_msg m;
	char why[160] = "";
	cr_assert_eq(parse_strs(s, &m, why, sizeof(why)), -EPROTO, "accepted: %s %s", s[0],
		     s[1] ? s[1] : "");
	cr_assert(strstr(why, why_has), "why '%s' lacks '%s'", why, why_has);
	cr_assert_null(strstr(why, "SECRETMARK"), "why quotes a frame: %s", why);
}

Test(zmq_proto, malformed_messages_are_refused_by_position)
{
	expect_refused((const char *const[]){ NULL }, "empty");
	expect_refused((const char *const[]){ "SECRETMARK", NULL }, "unknown command");
	expect_refused((const char *const[]){ "Submit", "1", "x", NULL }, "unknown command");
	expect_refused((const char *const[]){ "submit", "1", NULL }, "2 argument frames, not 1");
	expect_refused((const char *const[]){ "delivered", "1", "2", NULL }, "not 2");
	expect_refused((const char *const[]){ "heartbeat", "idle", "x", NULL }, "0 to 1");
	expect_refused((const char *const[]){ "submit", "", "x", NULL }, "frame 2 is not a valid REF");
	expect_refused((const char *const[]){ "submit", "a b", "x", NULL }, "REF");
	expect_refused((const char *const[]){ "submit", "../SECRETMARK", "x", NULL }, "REF");
	char longref[ZP_REF_MAX + 2];
	memset(longref, 'a', sizeof(longref) - 1);
	longref[sizeof(longref) - 1] = '\0';
	expect_refused((const char *const[]){ "submit", longref, "x", NULL }, "REF");
	const char *bad_ids[] = { "0", "-1", "+1", "01", "1.0", " 1", "1x", "",
				  "9223372036854775808", "99999999999999999999" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++)
		expect_refused((const char *const[]){ "delivered", bad_ids[i], NULL },
			       "frame 2 is not a valid ID");
	expect_refused((const char *const[]){ "refused", "1", "2", "x", "t", NULL }, "RETRYABLE");
	expect_refused((const char *const[]){ "refused", "1", "0", "Disk-Full", "t", NULL }, "CODE");
	expect_refused((const char *const[]){ "refused", "1", "0", "", "t", NULL }, "CODE");
	expect_refused((const char *const[]){ "refused", "1", "0", "x", "line\nSECRETMARK", NULL },
		       "frame 5 is not a valid TEXT");
	expect_refused((const char *const[]){ "refused", "1", "0", "x", "\xc3\x28", NULL }, "TEXT");
	expect_refused((const char *const[]){ "refused", "1", "0", "x", "tab\there", NULL }, "TEXT");
	expect_refused((const char *const[]){ "deliver", "1", ".hidden", "b", NULL }, "NAME");
	expect_refused((const char *const[]){ "deliver", "1", "a/b", "b", NULL }, "NAME");
	expect_refused((const char *const[]){ "deliver", "1", "..", "b", NULL }, "NAME");
	expect_refused((const char *const[]){ "ready", "0", NULL }, "WINDOW");
	expect_refused((const char *const[]){ "ready", "1025", NULL }, "WINDOW");
	expect_refused((const char *const[]){ "heartbeat", "asleep", NULL }, "STATE");
}

Test(zmq_proto, a_long_text_is_refused_when_parsed_and_cut_when_built)
{
	char text[ZP_TEXT_MAX + 2];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	expect_refused((const char *const[]){ "error", "protocol", text, NULL }, "TEXT");

	/* built from a caller's overlong text: cut at a character boundary */
	struct zp_msg m = { .cmd = ZP_ERROR };
	strcpy(m.code, "protocol");
	char wide[600] = "";
	for (int i = 0; i < 150; i++)
		strcat(wide, "\xc3\xa6"); /* æ, two bytes */
	zp_set_text(&m, "x%s", wide);
	cr_assert_leq(strlen(m.text), ZP_TEXT_MAX);
	cr_assert_eq(strlen(m.text), ZP_TEXT_MAX - 1, "1 + 127 whole characters");
	cr_assert(utf8_valid(m.text, strlen(m.text)));
	struct zp_msg o = round_trip(&m, 3);
	cr_assert_str_eq(o.text, m.text);
}

Test(zmq_proto, texts_set_from_printf_lose_control_characters_and_bad_bytes)
{
	struct zp_msg m = { .cmd = ZP_ERROR };
	zp_set_text(&m, "a\nb\tc\x7f%s", "\xff\xfe" "d");
	cr_assert_str_eq(m.text, "a b c ??d");
}

Test(zmq_proto, the_ref_of_a_submission_survives_a_bad_later_frame)
{
	struct zp_frame f[4] = { { "submit", 6 }, { "ref-7", 5 }, { "body", 4 }, { "extra", 5 } };
	struct zp_msg m;
	char why[160];
	cr_assert_eq(zp_parse(f, 4, &m, why, sizeof(why)), -EPROTO);
	cr_assert_eq(m.cmd, ZP_SUBMIT);
	cr_assert_str_eq(m.ref, "ref-7", "a refusal must be able to name it");
	cr_assert(strstr(why, "not 3"), "%s", why);
}

Test(zmq_proto, binary_frames_are_not_strings)
{
	/* a NUL inside a REF or NAME would cut it short for every C reader */
	struct zp_frame f[3] = { { "submit", 6 }, { "ab\0cd", 5 }, { "x", 1 } };
	struct zp_msg m;
	char why[160];
	cr_assert_eq(zp_parse(f, 3, &m, why, sizeof(why)), -EPROTO);
	struct zp_frame g[4] = { { "deliver", 7 }, { "5", 1 }, { "a\0b", 3 }, { "x", 1 } };
	cr_assert_eq(zp_parse(g, 4, &m, why, sizeof(why)), -EPROTO);
	struct zp_frame h[2] = { { "delivered", 9 }, { "5\0", 2 } };
	cr_assert_eq(zp_parse(h, 2, &m, why, sizeof(why)), -EPROTO);
}

Test(zmq_proto, command_names)
{
	cr_assert_str_eq(zp_cmd_name(ZP_SUBMIT), "submit");
	cr_assert_str_eq(zp_cmd_name(ZP_HEARTBEAT), "heartbeat");
	cr_assert_str_eq(zp_cmd_name((enum zp_cmd)99), "?");
	cr_assert(zp_name_ok("a-1.xml", 7));
	cr_assert_not(zp_name_ok("", 0));
	cr_assert(zp_code_ok("disk-full", 9));
}

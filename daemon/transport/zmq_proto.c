/*
 * zmq_proto.c - parsing and building the ZeroMQ link's commands.
 *
 * One table says, for each command, the kind of each argument frame; the
 * parser and the builder both walk it, so a command is added in one row
 * and both directions agree. The parser checks every argument against its
 * kind and reports the first that does not fit, by position and kind,
 * never by its bytes (a peer's frames are not for the log). Bodies are
 * borrowed, never copied: the caller owns the frames.
 */
#include "transport/zmq_proto.h"

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum arg { A_NONE, A_REF, A_ID, A_RETRY, A_CODE, A_TEXT, A_NAME, A_BODY, A_WINDOW, A_STATE };

struct command {
	const char *name;
	size_t min;             /* arguments it must have */
	enum arg args[ZP_FRAMES_MAX - 1];
};

/* By enum zp_cmd. A heartbeat from a peer has no STATE, the broker's has. */
static const struct command commands[ZP_CMD_COUNT] = {
	[ZP_SUBMIT] = { "submit", 2, { A_REF, A_BODY } },
	[ZP_ACCEPTED] = { "accepted", 2, { A_REF, A_ID } },
	[ZP_REJECTED] = { "rejected", 4, { A_REF, A_RETRY, A_CODE, A_TEXT } },
	[ZP_DELIVER] = { "deliver", 3, { A_ID, A_NAME, A_BODY } },
	[ZP_DELIVERED] = { "delivered", 1, { A_ID } },
	[ZP_REFUSED] = { "refused", 4, { A_ID, A_RETRY, A_CODE, A_TEXT } },
	[ZP_READY] = { "ready", 1, { A_WINDOW } },
	[ZP_HEARTBEAT] = { "heartbeat", 0, { A_STATE } },
	[ZP_ERROR] = { "error", 2, { A_CODE, A_TEXT } },
};

static const char *const arg_names[] = {
	[A_NONE] = "-", [A_REF] = "REF", [A_ID] = "ID", [A_RETRY] = "RETRYABLE",
	[A_CODE] = "CODE", [A_TEXT] = "TEXT", [A_NAME] = "NAME", [A_BODY] = "BODY",
	[A_WINDOW] = "WINDOW", [A_STATE] = "STATE",
};

static const char *const states[] = { "receiving", "standby", "idle" };

const char *zp_cmd_name(enum zp_cmd cmd)
{
	return (unsigned)cmd < ZP_CMD_COUNT ? commands[cmd].name : "?";
}

static size_t nargs(const struct command *c)
{
	size_t n = 0;
	while (n < ARRAY_SIZE(c->args) && c->args[n] != A_NONE)
		n++;
	return n;
}

static bool all_of(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || !strchr(set, s[i]))
			return false;
	return true;
}

#define DIGITS "0123456789"
#define LETTERS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

bool zp_ref_ok(const char *s, size_t n)
{
	return n >= 1 && n <= ZP_REF_MAX && all_of(s, n, LETTERS DIGITS "._:-");
}

bool zp_name_ok(const char *s, size_t n)
{
	return n >= 1 && n <= ZP_NAME_MAX && s[0] != '.' && all_of(s, n, LETTERS DIGITS "._-");
}

bool zp_code_ok(const char *s, size_t n)
{
	return n >= 1 && n <= ZP_CODE_MAX && all_of(s, n, "abcdefghijklmnopqrstuvwxyz" DIGITS "-");
}

/* A decimal in [min, max] without sign, leading zeros or blanks. */
static bool number(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
	if (n == 0 || n > 19 || !all_of(s, n, DIGITS) || (s[0] == '0' && n > 1))
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool text_ok(const char *s, size_t n)
{
	if (n > ZP_TEXT_MAX || !utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool state_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(states); i++)
		if (strlen(states[i]) == n && memcmp(states[i], s, n) == 0)
			return true;
	return false;
}

static void copy(char *dst, const char *s, size_t n)
{
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* Checks one argument of kind a and stores it in m; false when it does not
 * fit its kind. */
static bool take_arg(enum arg a, const struct zp_frame *f, struct zp_msg *m)
{
	const char *s = f->data ? f->data : "";
	size_t n = f->size;
	int64_t v;

	switch (a) {
	case A_REF:
		if (!zp_ref_ok(s, n))
			return false;
		copy(m->ref, s, n);
		return true;
	case A_ID:
		return number(s, n, 1, INT64_MAX, &m->id);
	case A_RETRY:
		if (n != 1 || (s[0] != '0' && s[0] != '1'))
			return false;
		m->retryable = s[0] == '1';
		return true;
	case A_CODE:
		if (!zp_code_ok(s, n))
			return false;
		copy(m->code, s, n);
		return true;
	case A_TEXT:
		if (!text_ok(s, n))
			return false;
		copy(m->text, s, n);
		return true;
	case A_NAME:
		if (!zp_name_ok(s, n))
			return false;
		copy(m->name, s, n);
		return true;
	case A_BODY:
		m->body = (const uint8_t *)s;
		m->size = n;
		return true;
	case A_WINDOW:
		if (!number(s, n, 1, ZP_WINDOW_MAX, &v))
			return false;
		m->window = (unsigned)v;
		return true;
	case A_STATE:
		if (!state_ok(s, n))
			return false;
		copy(m->state, s, n);
		return true;
	case A_NONE:
		break;
	}
	return false;
}

static int lookup(const struct zp_frame *f, enum zp_cmd *cmd)
{
	for (size_t i = 0; i < ZP_CMD_COUNT; i++) {
		size_t len = strlen(commands[i].name);
		if (f->size == len && memcmp(f->data, commands[i].name, len) == 0) {
			*cmd = (enum zp_cmd)i;
			return 0;
		}
	}
	return -EPROTO;
}

int zp_parse(const struct zp_frame *f, size_t n, struct zp_msg *m, char *why, size_t len)
{
	*m = (struct zp_msg){ .cmd = ZP_ERROR };
	if (n == 0 || lookup(&f[0], &m->cmd) < 0) {
		snprintf(why, len, n == 0 ? "an empty message" : "an unknown command (frame 1)");
		return -EPROTO;
	}
	const struct command *c = &commands[m->cmd];
	size_t max = nargs(c);
	/* the arguments there are first, so a refusal can name a valid REF */
	for (size_t i = 1; i < n && i <= max; i++) {
		if (!take_arg(c->args[i - 1], &f[i], m)) {
			snprintf(why, len, "%s: frame %zu is not a valid %s", c->name, i + 1,
				 arg_names[c->args[i - 1]]);
			return -EPROTO;
		}
	}
	if (n - 1 < c->min || n - 1 > max) {
		if (c->min == max)
			snprintf(why, len, "%s takes %zu argument frames, not %zu", c->name, max, n - 1);
		else
			snprintf(why, len, "%s takes %zu to %zu argument frames, not %zu", c->name,
				 c->min, max, n - 1);
		return -EPROTO;
	}
	return 0;
}

static struct zp_frame text_frame(const char *s)
{
	size_t n = strlen(s);
	return (struct zp_frame){ s, utf8_cut(s, n, ZP_TEXT_MAX) };
}

size_t zp_build(const struct zp_msg *m, struct zp_frame f[ZP_FRAMES_MAX], char buf[ZP_BUF_SIZE])
{
	assert((unsigned)m->cmd < ZP_CMD_COUNT);
	const struct command *c = &commands[m->cmd];
	size_t n = 0, used = 0;

	f[n++] = (struct zp_frame){ c->name, strlen(c->name) };
	for (size_t i = 0; i < nargs(c); i++) {
		char *num = buf + used;
		switch (c->args[i]) {
		case A_REF:
			assert(zp_ref_ok(m->ref, strlen(m->ref)));
			f[n++] = (struct zp_frame){ m->ref, strlen(m->ref) };
			break;
		case A_ID:
			assert(m->id > 0);
			used += (size_t)snprintf(num, ZP_BUF_SIZE - used, "%" PRId64, m->id) + 1;
			f[n++] = (struct zp_frame){ num, strlen(num) };
			break;
		case A_RETRY:
			f[n++] = (struct zp_frame){ m->retryable ? "1" : "0", 1 };
			break;
		case A_CODE:
			assert(zp_code_ok(m->code, strlen(m->code)));
			f[n++] = (struct zp_frame){ m->code, strlen(m->code) };
			break;
		case A_TEXT:
			f[n++] = text_frame(m->text);
			break;
		case A_NAME:
			assert(zp_name_ok(m->name, strlen(m->name)));
			f[n++] = (struct zp_frame){ m->name, strlen(m->name) };
			break;
		case A_BODY:
			f[n++] = (struct zp_frame){ m->body, m->size };
			break;
		case A_WINDOW:
			assert(m->window >= 1 && m->window <= ZP_WINDOW_MAX);
			used += (size_t)snprintf(num, ZP_BUF_SIZE - used, "%u", m->window) + 1;
			f[n++] = (struct zp_frame){ num, strlen(num) };
			break;
		case A_STATE:
			if (m->state[0] == '\0') /* a peer's heartbeat */
				break;
			assert(state_ok(m->state, strlen(m->state)));
			f[n++] = (struct zp_frame){ m->state, strlen(m->state) };
			break;
		case A_NONE:
			break;
		}
	}
	return n;
}

void zp_set_text(struct zp_msg *m, const char *fmt, ...)
{
	char raw[ZP_TEXT_MAX * 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);

	size_t out = 0, n = strlen(raw);
	for (size_t i = 0; i < n && out < ZP_TEXT_MAX;) {
		size_t k = utf8_decode(raw + i, n - i, NULL);
		if (k == 0) { /* not UTF-8: one byte shown as '?' */
			m->text[out++] = '?';
			i++;
		} else if (k == 1) {
			unsigned char ch = (unsigned char)raw[i++];
			m->text[out++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
		} else if (out + k <= ZP_TEXT_MAX) {
			memcpy(m->text + out, raw + i, k);
			out += k;
			i += k;
		} else {
			break;
		}
	}
	m->text[out] = '\0';
}

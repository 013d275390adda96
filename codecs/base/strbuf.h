/*
 * strbuf.h - a growable, always NUL-terminated string with an optional byte
 * limit that never cuts a UTF-8 sequence. Codecs build receipts with it,
 * the notice module builds notices.
 */
#ifndef EDIBROKER_STRBUF_H
#define EDIBROKER_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A growable, always NUL-terminated string. limit 0 means none; otherwise
 * appends stop at limit bytes, never inside a UTF-8 sequence, and cut is
 * set. Zero-initialise to start. */
struct strbuf {
	char *p;
	size_t len, cap;
	size_t limit;
	bool cut;
};
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far (never NULL, caller frees); b is empty afterwards and
 * keeps its limit. */
char *strbuf_take(struct strbuf *b);

#endif

/*
 * strbuf.c - the growable string (strbuf.h).
 */
#include "codecs/base/strbuf.h"

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void strbuf_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->cut)
		return;
	if (b->limit && n > b->limit - b->len) {
		n = utf8_cut(s, n, b->limit - b->len); /* never split a sequence */
		b->cut = true;
	}
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	strbuf_add(b, s, (size_t)n);
}

char *strbuf_take(struct strbuf *b)
{
	char *p = b->p ? b->p : xstrdup("");
	*b = (struct strbuf){ .limit = b->limit };
	return p;
}


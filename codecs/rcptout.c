/*
 * rcptout.c - output helpers for the receipts codecs write (rcptout.h).
 * Pure: the caller brings the buffer and the time.
 */
#include "codecs/rcptout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/base/utf8.h"

void rcptout_text(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		const char *rep = *s == '&'    ? "&amp;"
				  : *s == '<'  ? "&lt;"
				  : *s == '>'  ? "&gt;"
				  : *s == '"'  ? "&quot;"
				  : *s == '\'' ? "&apos;"
					       : NULL;
		if (rep)
			strbuf_puts(b, rep);
		else
			strbuf_add(b, s, 1);
	}
}

void rcptout_elem(struct strbuf *b, int indent, const char *name, const char *text)
{
	strbuf_printf(b, "%*s<%s>", indent * 2, "", name);
	rcptout_text(b, text);
	strbuf_printf(b, "</%s>\n", name);
}

bool rcptout_datetime(const struct tm *tm, char *out, size_t outsz)
{
	char date[24];
	long off = tm->tm_gmtoff;
	if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", tm) == 0 || off <= -86400 ||
	    off >= 86400)
		return false;
	int n = snprintf(out, outsz, "%s%c%02ld:%02ld", date, off < 0 ? '-' : '+',
			 labs(off) / 3600, labs(off) % 3600 / 60);
	return n > 0 && (size_t)n < outsz;
}

bool rcptout_text_ok(const char *s, size_t max, bool allow_breaks)
{
	size_t n = s ? strnlen(s, max + 1) : 0;
	if (n == 0 || n > max || !utf8_valid(s, n) || memmem(s, n, "\xEF\xBF\xBE", 3) ||
	    memmem(s, n, "\xEF\xBF\xBF", 3))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool brk = c == '\t' || c == '\n' || c == '\r';
		if ((c < 0x20 && !(allow_breaks && brk)) || c == 0x7F)
			return false;
	}
	return true;
}

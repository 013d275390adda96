/*
 * ini.c - reads an INI file line by line and tells its handler what each
 * line is, with its number (the dialect is described in ini.h).
 *
 * We read INI ourselves, rather than through libinih, because every message
 * about a configuration names its line, and the libinih Debian ships calls
 * back without one. The reader knows syntax only: which sections and keys
 * exist, and what a value means, is config.c's business.
 *
 * Invariants: a line is read into a fixed buffer of INI_LINE_MAX bytes, so
 * a hostile file cannot make it allocate more; the first bad line stops the
 * reader; nothing here logs or keeps state between calls.
 */
#include "conf/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "codecs/base/mem.h"

struct reader {
	FILE *f;
	const char *name;
	const struct ini_handler *h;
	void *user;
	char *err;
	size_t errlen;
	char *buf;       /* the current line, NUL-terminated, without its '\n' */
	size_t len;      /* its length; INI_LINE_MAX + 1 when it is longer */
	bool nul;        /* it holds a NUL byte */
	int lineno;
	char *key;       /* the key indented lines continue, or NULL */
};

static int fail(struct reader *r, int rc, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct reader *r, int rc, int line, const char *fmt, ...)
{
	va_list ap;

	if (!r->err || r->errlen == 0)
		return rc;
	int n = snprintf(r->err, r->errlen, "%s:%d: ", r->name, line);
	if (n >= 0 && (size_t)n < r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* 1 with the next line in buf, 0 at the end of the file, or -errno. Reads
 * no further than one byte past the limit. */
static int read_line(struct reader *r)
{
	int c = EOF;

	r->len = 0;
	r->nul = false;
	errno = 0;
	while (r->len <= INI_LINE_MAX && (c = getc_unlocked(r->f)) != EOF && c != '\n') {
		r->nul |= c == '\0';
		r->buf[r->len++] = (char)c;
	}
	r->buf[r->len] = '\0';
	if (c == EOF && r->len == 0) {
		if (!ferror(r->f))
			return 0;
		int e = errno ? errno : EIO;
		return fail(r, -e, r->lineno + 1, "read error: %s", strerror(e));
	}
	r->lineno++;
	return 1;
}

static char *skip_space(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

static void rstrip(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Cuts s at its first ';' that follows a blank, and trims what is left. */
static char *strip_comment(char *s)
{
	for (char *p = s + 1; *s && *p; p++) {
		if (*p == ';' && isspace((unsigned char)p[-1])) {
			*p = '\0';
			break;
		}
	}
	s = skip_space(s);
	rstrip(s);
	return s;
}

static int pair_line(struct reader *r, char *start)
{
	/* The separator is the first '=' or ':' before any inline comment. */
	char *sep = start;
	while (*sep && *sep != '=' && *sep != ':' &&
	       !(*sep == ';' && sep > start && isspace((unsigned char)sep[-1])))
		sep++;
	if (*sep != '=' && *sep != ':')
		return fail(r, -EINVAL, r->lineno,
			    "syntax error (expected 'key = value', '[section]' or a ; comment)");
	*sep = '\0';
	rstrip(start);
	free(r->key);
	r->key = xstrdup(start);
	return r->h->pair(r->user, start, strip_comment(sep + 1), r->lineno);
}

static int section_line(struct reader *r, char *start)
{
	char *end = strchr(start, ']');
	if (!end)
		return fail(r, -EINVAL, r->lineno,
			    "syntax error (expected 'key = value', '[section]' or a ; comment)");
	*end = '\0';
	free(r->key);
	r->key = NULL;
	return r->h->section(r->user, start + 1, r->lineno);
}

static int one_line(struct reader *r)
{
	char *line = r->buf;

	if (r->nul)
		return fail(r, -EINVAL, r->lineno, "NUL byte in the line");
	if (r->len > INI_LINE_MAX)
		return fail(r, -EINVAL, r->lineno,
			    "line longer than %d bytes (lists may continue on indented lines)",
			    INI_LINE_MAX);
	if (r->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	char *start = skip_space(line);
	rstrip(start);
	if (*start == '\0' || *start == ';' || *start == '#')
		return 0;
	if (start > line && r->key)
		return r->h->more(r->user, r->key, strip_comment(start), r->lineno);
	if (*start == '[')
		return section_line(r, start);
	return pair_line(r, start);
}

int ini_parse(FILE *f, const char *name, const struct ini_handler *h, void *user, char *err,
	      size_t errlen)
{
	struct reader r = { .f = f, .name = name, .h = h, .user = user, .err = err,
			    .errlen = errlen, .buf = xmalloc(INI_LINE_MAX + 2) };
	int rc;

	while ((rc = read_line(&r)) > 0 && (rc = one_line(&r)) == 0)
		;
	free(r.buf);
	free(r.key);
	return rc < 0 ? rc : 0;
}

/*
 * redact.c - the one rule for what of a URL or a command may be shown.
 *
 * A URL is split as RFC 3986 section 3 and libcurl's URL parser split it:
 * "scheme://" then the authority up to the first '/', '?' or '#', whose
 * user-info ends at its last '@' (a password with an '@' in it still ends
 * up hidden); then the path; then a query after '?' and a fragment after
 * '#'. Scheme, host, port and path are shown; user-info, query and fragment
 * are replaced by "***", so a reader can still tell which server was meant
 * and that credentials were given. The config loader accepts only URLs that
 * libcurl parses, so what is shown here is what libcurl connects to.
 *
 * Nothing here allocates or logs: callers on any thread, and the config
 * loader, use it on stack buffers.
 */
#include "base/redact.h"

#include "codecs/base/mem.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool scheme_ok(const char *s, size_t n)
{
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+-.", s[i]))
			return false;
	return true;
}

/* A URL taken apart; each part points into the URL. */
struct url_parts {
	const char *scheme, *userinfo, *host, *path, *query, *fragment;
	size_t scheme_len, userinfo_len, host_len, path_len, query_len, fragment_len;
};

static bool url_split(const char *url, struct url_parts *u)
{
	const char *sep = url ? strstr(url, "://") : NULL;
	if (!sep || !scheme_ok(url, (size_t)(sep - url)))
		return false;
	*u = (struct url_parts){ .scheme = url, .scheme_len = (size_t)(sep - url) };
	const char *rest = sep + 3;
	size_t authority = strcspn(rest, "/?#");
	const char *at = NULL;
	for (size_t i = 0; i < authority; i++)
		if (rest[i] == '@')
			at = rest + i;
	if (at) {
		u->userinfo = rest;
		u->userinfo_len = (size_t)(at - rest);
	}
	u->host = at ? at + 1 : rest;
	u->host_len = authority - (size_t)(u->host - rest);
	u->path = rest + authority;
	u->path_len = strcspn(u->path, "?#");
	const char *tail = u->path + u->path_len;
	if (*tail == '?') {
		u->query = tail + 1;
		u->query_len = strcspn(u->query, "#");
		tail = u->query + u->query_len;
	}
	if (*tail == '#') {
		u->fragment = tail + 1;
		u->fragment_len = strlen(u->fragment);
	}
	return true;
}

const char *redact_url(const char *url, char *out, size_t outsz)
{
	struct url_parts u;
	if (!url_split(url, &u)) {
		str_copy(out, "***", outsz);
		return out;
	}
	snprintf(out, outsz, "%.*s://%s%.*s%.*s%s%s", (int)u.scheme_len, u.scheme,
		 u.userinfo ? "***@" : "", (int)u.host_len, u.host, (int)u.path_len, u.path,
		 u.query ? "?***" : "", u.fragment ? "#***" : "");
	return out;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* A shell word ends at a blank or an operator outside quotes; the quotes
 * are taken out. */
static const char *next_word(const char *p, char *word, size_t size)
{
	size_t n = 0;
	char quote = 0;
	while (is_blank(*p))
		p++;
	for (; *p && (quote || (!is_blank(*p) && !strchr(";|&<>()", *p))); p++) {
		if (*p == quote)
			quote = 0;
		else if (!quote && (*p == '\'' || *p == '"'))
			quote = *p;
		else if (*p != '\\' && n + 1 < size)
			word[n++] = *p;
	}
	word[n] = '\0';
	return p;
}

/* NAME=VALUE before a command sets a variable (possibly a secret). */
static bool is_assignment(const char *w)
{
	size_t n = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
	return n > 0 && !isdigit((unsigned char)w[0]) && w[n] == '=';
}

const char *redact_command(const char *cmd, char *out, size_t outsz)
{
	char word[REDACT_MAX];
	const char *p = cmd ? cmd : "";
	do
		p = next_word(p, word, sizeof(word));
	while (is_assignment(word));
	const char *slash = strrchr(word, '/');
	const char *name = slash ? slash + 1 : word;
	str_copy(out, *name ? name : "***", outsz);
	return out;
}

void redact_scrub(char *buf, size_t size, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;
	if (n == 0 || size == 0 || !strstr(buf, secret))
		return;
	char tmp[1024];
	size_t len = 0, cap = size < sizeof(tmp) ? size : sizeof(tmp);
	for (const char *p = buf; *p && len + 1 < cap;) {
		if (strncmp(p, secret, n) == 0) {
			for (const char *s = "***"; *s && len + 1 < cap; s++)
				tmp[len++] = *s;
			p += n;
		} else {
			tmp[len++] = *p++;
		}
	}
	tmp[len] = '\0';
	memcpy(buf, tmp, len + 1);
}

static void scrub_part(char *buf, size_t size, const char *part, size_t n)
{
	char secret[1024];
	if (n == 0 || n >= sizeof(secret))
		return;
	memcpy(secret, part, n);
	secret[n] = '\0';
	redact_scrub(buf, size, secret);
}

void redact_scrub_url(char *buf, size_t size, const char *url)
{
	struct url_parts u;
	if (!url_split(url, &u)) {
		redact_scrub(buf, size, url); /* no telling its parts apart: all of it */
		return;
	}
	scrub_part(buf, size, u.userinfo, u.userinfo_len);
	scrub_part(buf, size, u.query, u.query_len);
	scrub_part(buf, size, u.fragment, u.fragment_len);
}

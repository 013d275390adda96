/*
 * renew.c - the shared part of the codecs' renew() (renew.h): where an id
 * is written in the raw bytes, the splice, and the check of the copy.
 *
 * The bytes are never re-serialised: a parsed and rewritten document
 * would change quoting, whitespace and character references, and the
 * acknowledgement must reach the sender as its receiver wrote it. So the
 * id is found by a small scanner over the raw bytes, and the scanner's
 * word is not trusted: the id it points at must read as the id the codec
 * decoded, and the copy must decode to the same acknowledgement with the
 * new id and nothing else changed. Any doubt is -EINVAL, and the broker
 * then only drops the duplicate, as it would without a stored
 * acknowledgement. Markup is ASCII in every charset the codecs read, so
 * the scanners work on the bytes as they are.
 */
#include "codecs/renew.h"

#include <errno.h>
#include <string.h>

#include "codecs/base/mem.h"

/* ---- XML ------------------------------------------------------------------ */

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Past the first `term` at or after p, or end. */
static const uint8_t *past(const uint8_t *p, const uint8_t *end, const char *term)
{
	size_t n = strlen(term);
	const uint8_t *q = p < end ? memmem(p, (size_t)(end - p), term, n) : NULL;
	return q ? q + n : end;
}

/* The '>' closing the tag whose attributes start at p (quotes honoured). */
static const uint8_t *tag_close(const uint8_t *p, const uint8_t *end)
{
	uint8_t quote = 0;
	for (; p < end; p++) {
		if (quote)
			quote = *p == quote ? 0 : quote;
		else if (*p == '"' || *p == '\'')
			quote = *p;
		else if (*p == '>')
			return p;
	}
	return NULL;
}

/* The value of attribute attr in the attribute list [p, gt). */
static bool find_attr(const uint8_t *buf, const uint8_t *p, const uint8_t *gt, const char *attr,
		      struct renew_span *out)
{
	size_t alen = strlen(attr);
	while (p < gt) {
		while (p < gt && (is_space(*p) || *p == '/'))
			p++;
		const uint8_t *name = p;
		while (p < gt && *p != '=' && !is_space(*p))
			p++;
		const uint8_t *name_end = p;
		while (p < gt && (is_space(*p) || *p == '='))
			p++;
		if (p >= gt || (*p != '"' && *p != '\''))
			return false;
		const uint8_t *val = p + 1, *q = memchr(val, *p, (size_t)(gt - val));
		if (!q)
			return false;
		if ((size_t)(name_end - name) == alen && memcmp(name, attr, alen) == 0) {
			*out = (struct renew_span){ (size_t)(val - buf), (size_t)(q - val) };
			return true;
		}
		p = q + 1;
	}
	return false;
}

/* The trimmed text after the start tag closed at gt, up to its end tag. */
static bool find_text(const uint8_t *buf, const uint8_t *gt, const uint8_t *end,
		      struct renew_span *out)
{
	if (gt[-1] == '/')
		return false; /* <empty/> */
	const uint8_t *t = gt + 1, *lt = memchr(t, '<', (size_t)(end - t));
	if (!lt || lt + 1 >= end || lt[1] != '/')
		return false; /* markup inside, or no end tag */
	while (t < lt && is_space(*t))
		t++;
	while (lt > t && is_space(lt[-1]))
		lt--;
	*out = (struct renew_span){ (size_t)(t - buf), (size_t)(lt - t) };
	return true;
}

bool renew_xml_field(const uint8_t *buf, size_t len, const char *local, const char *attr,
		     struct renew_span *out)
{
	const uint8_t *p = buf, *end = buf + len;
	size_t llen = strlen(local);
	while (p < end && (p = memchr(p, '<', (size_t)(end - p)))) {
		size_t left = (size_t)(end - p);
		if (left >= 4 && memcmp(p, "<!--", 4) == 0) {
			p = past(p + 4, end, "-->");
			continue;
		}
		if (left >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
			p = past(p + 9, end, "]]>");
			continue;
		}
		if (left >= 2 && p[1] == '?') {
			p = past(p + 2, end, "?>");
			continue;
		}
		const uint8_t *name = ++p, *q = p;
		while (q < end && !is_space(*q) && *q != '>' && *q != '/')
			q++;
		const uint8_t *colon = memrchr(name, ':', (size_t)(q - name));
		const uint8_t *ln = colon ? colon + 1 : name;
		if (name < end && *name != '/' && *name != '!' && (size_t)(q - ln) == llen &&
		    memcmp(ln, local, llen) == 0) {
			const uint8_t *gt = tag_close(q, end);
			if (!gt)
				return false;
			return attr ? find_attr(buf, q, gt, attr, out) : find_text(buf, gt, end, out);
		}
		p = q;
	}
	return false;
}

/* ---- JSON ----------------------------------------------------------------- */

static const uint8_t *json_ws(const uint8_t *p, const uint8_t *end)
{
	while (p < end && is_space(*p))
		p++;
	return p;
}

/* Past the string starting at p ('"'), or NULL when it does not end. */
static const uint8_t *json_string_end(const uint8_t *p, const uint8_t *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past the value starting at p, or NULL. */
static const uint8_t *json_skip(const uint8_t *p, const uint8_t *end)
{
	int depth = 0;
	while (p && p < end) {
		if (*p == '"') {
			p = json_string_end(p, end);
			if (depth == 0)
				return p;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p; /* a scalar ended by its container */
			if (--depth == 0)
				return p + 1;
		} else if (*p == ',' && depth == 0)
			return p;
		p++;
	}
	return p;
}

bool renew_json_member(const uint8_t *buf, size_t len, const char *name, struct renew_span *out)
{
	const uint8_t *end = buf + len, *p = json_ws(buf, end);
	size_t nlen = strlen(name);
	if (p == end || *p != '{')
		return false;
	for (p = json_ws(p + 1, end); p && p < end && *p == '"';) {
		const uint8_t *key = p + 1, *key_end = json_string_end(p, end);
		if (!key_end)
			return false;
		p = json_ws(key_end, end);
		if (p == end || *p != ':')
			return false;
		p = json_ws(p + 1, end);
		if ((size_t)(key_end - 1 - key) == nlen && memcmp(key, name, nlen) == 0) {
			const uint8_t *v_end = p < end && *p == '"' ? json_string_end(p, end) : NULL;
			if (!v_end)
				return false;
			*out = (struct renew_span){ (size_t)(p + 1 - buf), (size_t)(v_end - 1 - (p + 1)) };
			return true;
		}
		p = json_skip(p, end);
		p = p ? json_ws(p, end) : NULL;
		if (p && p < end && *p == ',')
			p = json_ws(p + 1, end);
	}
	return false;
}

/* ---- the renewal ---------------------------------------------------------- */

const char *renew_outer_id(const struct codec_envelope *env)
{
	return env->nlayers ? env->layers[0].id : env->envelope_id;
}

/* buf with each span (in order, not overlapping) replaced by id. */
static uint8_t *splice(const uint8_t *buf, size_t len, const struct renew_span *sp, size_t n,
		       const char *id, size_t *outlen)
{
	size_t idlen = strlen(id), size = len, at = 0, o = 0;
	for (size_t i = 0; i < n; i++)
		size = size - sp[i].n + idlen;
	uint8_t *out = xmalloc(size + 1);
	for (size_t i = 0; i < n; i++) {
		memcpy(out + o, buf + at, sp[i].off - at);
		o += sp[i].off - at;
		memcpy(out + o, id, idlen);
		o += idlen;
		at = sp[i].off + sp[i].n;
	}
	memcpy(out + o, buf + at, len - at);
	*outlen = size;
	return out;
}

bool renew_same_refers(const struct codec_refers *a, const struct codec_refers *b)
{
	if (a->code != b->code || a->n != b->n || strcmp(a->detail, b->detail) != 0 ||
	    (a->scope == NULL) != (b->scope == NULL) || (a->scope && strcmp(a->scope, b->scope)))
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->refs[i].sender, b->refs[i].sender) != 0 ||
		    strcmp(a->refs[i].envelope_id, b->refs[i].envelope_id) != 0 ||
		    strcmp(a->refs[i].letter_id, b->refs[i].letter_id) != 0)
			return false;
	return true;
}

/* Field by field: a decoder may leave bytes past a field's NUL as they
 * were in its scratch buffers. id_ok: the ids need not agree. */
static bool same_letter(const struct codec_letter *a, const struct codec_letter *b, bool id_ok)
{
	return (id_ok || strcmp(a->id, b->id) == 0) && strcmp(a->type, b->type) == 0 &&
	       strcmp(a->version, b->version) == 0 && strcmp(a->sender, b->sender) == 0 &&
	       strcmp(a->receiver, b->receiver) == 0 &&
	       strcmp(a->sender_sor, b->sender_sor) == 0 &&
	       strcmp(a->receiver_sor, b->receiver_sor) == 0;
}

/* True when copy is orig's acknowledgement under the id fresh: the same
 * letters and refers, but for a letter named by the renewed id itself (a
 * VANS Receipt's), which must carry the new one. */
static bool same_ack(const struct codec_envelope *orig, const struct codec_envelope *copy,
		     const char *fresh)
{
	const char *old = renew_outer_id(orig);
	if (copy->codec != orig->codec || !copy->is_receipt || copy->nletters != orig->nletters ||
	    strcmp(renew_outer_id(copy), fresh) != 0 || !renew_same_refers(&copy->refers, &orig->refers))
		return false;
	for (size_t i = 0; i < orig->nletters; i++) {
		const struct codec_letter *o = &orig->letters[i], *c = &copy->letters[i];
		bool renamed = strcmp(o->id, old) == 0 && strcmp(c->id, fresh) == 0;
		if (!same_letter(o, c, renamed))
			return false;
	}
	return true;
}

/* Checks the spans against the decoded id and that they keep their order. */
static bool spans_hold(const uint8_t *buf, size_t len, const struct renew_span *sp, size_t n,
		       const char *id)
{
	size_t idlen = strlen(id), at = 0;
	for (size_t i = 0; i < n; i++) {
		if (sp[i].off < at || sp[i].off > len || sp[i].n > len - sp[i].off ||
		    sp[i].n != idlen || memcmp(buf + sp[i].off, id, idlen) != 0)
			return false;
		at = sp[i].off + sp[i].n;
	}
	return n > 0 && idlen > 0;
}

static void fill_receipt(const struct codec *c, const struct codec_envelope *copy,
			 const char *old, uint8_t *body, size_t size, struct codec_receipt *out)
{
	const struct codec_letter *l = &copy->letters[0];
	*out = (struct codec_receipt){ .body = body, .size = size, .format = c->name, .ext = c->ext };
	str_copy(out->type, l->type, sizeof(out->type));
	str_copy(out->version, l->version, sizeof(out->version));
	str_copy(out->envelope_id, renew_outer_id(copy), sizeof(out->envelope_id));
	str_copy(out->sender, l->sender, sizeof(out->sender));
	str_copy(out->receiver, l->receiver, sizeof(out->receiver));
	str_copy(out->refers, old, sizeof(out->refers));
}

int renew_run(const struct codec *c, const uint8_t *buf, size_t len, const struct codec_limits *lim,
	      const struct codec_refusal_params *p, bool uuid, renew_find_fn find,
	      struct codec_receipt *out)
{
	_cleanup_free_ struct codec_envelope *env = xmalloc(sizeof(*env));
	_cleanup_free_ struct codec_envelope *copy = xmalloc(sizeof(*copy));
	struct codec_error err;
	struct renew_span sp[RENEW_SPANS_MAX];
	char fresh[CODEC_ID_MAX] = "";
	if (!buf || !p || !out || c->decode(buf, len, lim, env, &err) < 0)
		return -EINVAL;
	if (!env->is_receipt || env->nletters == 0)
		return -ENOTSUP;
	size_t n = find(buf, len, env, sp);
	if (n > RENEW_SPANS_MAX || !spans_hold(buf, len, sp, n, renew_outer_id(env)))
		return -EINVAL;
	if (uuid && p->fresh_uuid)
		p->fresh_uuid(p->ctx, fresh);
	else if (!uuid && p->fresh_id)
		p->fresh_id(p->ctx, fresh);
	if (!fresh[0])
		return -EINVAL;
	size_t size;
	uint8_t *body = splice(buf, len, sp, n, fresh, &size);
	if (c->decode(body, size, lim, copy, &err) < 0 || !same_ack(env, copy, fresh)) {
		free(body);
		return -EINVAL;
	}
	fill_receipt(c, copy, renew_outer_id(env), body, size, out);
	return 0;
}

/*
 * test_xmlsafe.c - what a document may cost (xmlsafe.c, policy point 5).
 *
 * libxml2 2.9's duplicate-attribute check is quadratic and runs before any
 * SAX hook: a start tag with 120,000 attributes used to hold the event loop
 * for tens of seconds. The prescan refuses it in linear time; '=' inside
 * quoted values, comments, PIs and CDATA does not count; an honest document
 * with many attributes spread over many tags parses; and the time budget
 * stops a large document mid-parse.
 */
#include "codecs/xmlsafe.h"
#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"

#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* <r><e a0="0" a1="1" ... /></r> with n attributes on one tag. */
static char *attrs_doc(size_t n)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "<?xml version=\"1.0\"?><r><e");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&b, " a%zu=\"%zu\"", i, i);
	strbuf_puts(&b, "/></r>");
	return strbuf_take(&b);
}

static int parse(const char *text, size_t len, int64_t budget_ms, struct codec_error *err)
{
	struct codec_limits lim = { .budget_ms = budget_ms };
	struct xmlsafe_doc d;
	int r = xmlsafe_parse((const uint8_t *)text, len, &lim, &d, err);
	xmlsafe_doc_free(&d);
	return r;
}

Test(xmlsafe, an_attribute_bomb_is_refused_at_once)
{
	_cleanup_free_ char *doc = attrs_doc(120000);
	struct codec_error err = { 0 };
	int64_t t0 = now_ms();
	cr_assert_eq(parse(doc, strlen(doc), 0, &err), -1);
	cr_assert_lt(now_ms() - t0, 1000, "the refusal took %lld ms", (long long)(now_ms() - t0));
	cr_assert_eq(err.code, CODEC_EEXPENSIVE);
	cr_assert(strstr(err.text, "more than 256 attributes"), "%s", err.text);
	cr_assert_str_eq(codec_errcode_name(err.code), "too-expensive");
}

Test(xmlsafe, the_attribute_limit_is_per_tag)
{
	struct codec_error err = { 0 };
	_cleanup_free_ char *ok = attrs_doc(256);
	cr_assert_eq(parse(ok, strlen(ok), 0, &err), 0, "%s", err.text);
	_cleanup_free_ char *bad = attrs_doc(257);
	cr_assert_eq(parse(bad, strlen(bad), 0, &err), -1);
	cr_assert_eq(err.code, CODEC_EEXPENSIVE);
	/* many tags with a few attributes each are an ordinary document */
	struct strbuf b = { 0 };
	strbuf_puts(&b, "<r>");
	for (int i = 0; i < 5000; i++)
		strbuf_printf(&b, "<e a=\"1\" b=\"2\" c=\"x=y=z\"/>");
	strbuf_puts(&b, "</r>");
	_cleanup_free_ char *many = strbuf_take(&b);
	cr_assert_eq(parse(many, strlen(many), 0, &err), 0, "%s", err.text);
}

Test(xmlsafe, equals_signs_outside_tags_do_not_count)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "<r><!-- ");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(&b, "a=b ");
	strbuf_puts(&b, "--><?pi x=1 y=2?><![CDATA[");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(&b, "<e x=1>");
	strbuf_puts(&b, "]]><e v='");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(&b, "k=v ");
	strbuf_puts(&b, "'/>text = more = text</r>");
	_cleanup_free_ char *doc = strbuf_take(&b);
	struct codec_error err = { 0 };
	cr_assert_eq(parse(doc, strlen(doc), 0, &err), 0, "%s", err.text);
}

Test(xmlsafe, an_overlong_tag_is_refused)
{
	size_t n = 70 * 1024;
	char *doc = xmalloc(n + 64);
	strcpy(doc, "<r><e a=\"");
	size_t at = strlen(doc);
	memset(doc + at, 'x', n);
	strcpy(doc + at + n, "\"/></r>");
	struct codec_error err = { 0 };
	cr_assert_eq(parse(doc, strlen(doc), 0, &err), -1);
	cr_assert_eq(err.code, CODEC_EEXPENSIVE);
	cr_assert(strstr(err.text, "longer than"), "%s", err.text);
	free(doc);
}

Test(xmlsafe, the_time_budget_stops_a_long_parse)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "<r>");
	for (int i = 0; i < 400000; i++)
		strbuf_puts(&b, "<e>t</e>");
	strbuf_puts(&b, "</r>");
	size_t len = b.len;
	_cleanup_free_ char *doc = strbuf_take(&b);
	struct codec_error err = { 0 };
	cr_assert_eq(parse(doc, len, 60000, &err), 0, "%s", err.text); /* enough time */
	int64_t t0 = now_ms();
	cr_assert_eq(parse(doc, len, 1, &err), -1);
	cr_assert_lt(now_ms() - t0, 1000);
	cr_assert_eq(err.code, CODEC_EEXPENSIVE);
	cr_assert(strstr(err.text, "more than 1 ms"), "%s", err.text);
}

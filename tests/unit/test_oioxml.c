/*
 * test_oioxml.c - the OIOXML codec, the codec registry and the xmlsafe
 * parser policy, driven by real MedCom samples and hand-made inputs.
 *
 * Layers: golden dumps over every file in the samples directory (default
 * ../shared/medcom-samples/oioxml, or $EDIBROKER_SAMPLES); character sets;
 * hostile and malformed inputs, each with the exact error class; partial
 * fill on error; sniffing, the registry and concurrent use. Every decode
 * goes through decode(), which also checks the codec.h contract (nletters 0
 * and a clean single-line error on failure). Run from the repository root.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "codecs/codec.h"
#include "codecs/oioxml.h"
#include "codecs/xctl01.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "codecs/xmlsafe.h"
#include "tests/unit/testutil.h"

#define DATA "tests/data/oioxml"
#define INVALID "tests/data/oioxml/invalid"
#define HOSTILE "tests/data/hostile"
#define GOLDEN "tests/golden/oioxml"

/* ---- helpers ----------------------------------------------------------- */

struct result {
	int r;
	struct codec_envelope env;
	struct codec_error err;
};

static const char *samples_dir(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES");
	return str_empty(d) ? "../shared/medcom-samples/oioxml" : d;
}

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return testutil_read_file(path, len);
}

static bool printable_line(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7E)
			return false;
	return true;
}

/* A hang fails the test: SIGALRM kills the worker, Criterion reports it.
 * (Used instead of .timeout, whose bookkeeping leaks in Criterion 2.4's
 * parallel runner and trips LeakSanitizer.) */
static void watchdog(unsigned seconds)
{
	alarm(seconds);
}

/* The codec.h contract every result must keep, success or not. */
static void check_contract(const struct result *res)
{
	const struct codec_envelope *e = &res->env;
	cr_assert(memchr(e->envelope_id, 0, sizeof(e->envelope_id)));
	cr_assert(memchr(e->letters[0].sender, 0, sizeof(e->letters[0].sender)));
	if (res->r == 0) {
		cr_assert_eq(res->err.code, CODEC_OK);
		cr_assert(e->nletters >= 1 && e->nletters <= CODEC_MAX_LETTERS);
		cr_assert_eq(e->codec, &codec_oioxml);
		return;
	}
	cr_assert_eq(res->r, -1);
	cr_assert_neq(res->err.code, CODEC_OK);
	cr_assert_eq(e->nletters, 0, "nletters must be 0 on error");
	cr_assert(res->err.text[0] != '\0', "empty error text");
	cr_assert(printable_line(res->err.text), "error text not printable: %s", res->err.text);
}

static struct result *decode(const uint8_t *buf, size_t len, const struct codec_limits *lim)
{
	struct result *res = xcalloc(1, sizeof(*res));
	res->r = codec_oioxml.decode(buf, len, lim, &res->env, &res->err);
	check_contract(res);
	return res;
}

static struct result *decode_file(const char *dir, const char *name)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(dir, name, &len);
	return decode(buf, len, NULL);
}

static void expect_error(const struct result *res, enum codec_errcode code, const char *needle)
{
	cr_assert_eq(res->r, -1, "decoded, expected %s", codec_errcode_name(code));
	cr_assert_eq(res->err.code, code, "got %s (%s), expected %s",
		     codec_errcode_name(res->err.code), res->err.text, codec_errcode_name(code));
	if (needle)
		cr_assert(strstr(res->err.text, needle), "'%s' not in error text '%s'", needle,
			  res->err.text);
}

/* A copy of buf (NUL-terminated) with the first `from` replaced by `to`. */
static uint8_t *replace(const uint8_t *buf, size_t len, const char *from, const char *to,
			size_t *outlen)
{
	const uint8_t *at = memmem(buf, len, from, strlen(from));
	cr_assert(at, "'%s' not in input", from);
	size_t head = (size_t)(at - buf), fl = strlen(from), tl = strlen(to);
	uint8_t *out = xmalloc(len - fl + tl + 1);
	memcpy(out, buf, head);
	memcpy(out + head, to, tl);
	memcpy(out + head + tl, at + fl, len - head - fl);
	*outlen = len - fl + tl;
	out[*outlen] = '\0';
	return out;
}

/* The DIS20_1 sample with one textual change, decoded. */
static struct result *decode_dis20_with(const char *from, const char *to)
{
	size_t len, mlen;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	_cleanup_free_ uint8_t *m = replace(buf, len, from, to, &mlen);
	return decode(m, mlen, NULL);
}

static struct result *decode_str(const char *s)
{
	return decode((const uint8_t *)s, strlen(s), NULL);
}

static char *dump(const struct codec_envelope *e)
{
	char *s = xasprintf("codec=%s\nencoding=%s\nenvelope_id=%s\nsent=%s\nack_requested=%s\n"
			    "is_receipt=%s\nnletters=%zu\n",
			    e->codec ? e->codec->name : "-", e->encoding, e->envelope_id, e->sent,
			    e->ack_requested ? "yes" : "no", e->is_receipt ? "yes" : "no",
			    e->nletters);
	for (size_t i = 0; i < e->nletters; i++) {
		const struct codec_letter *l = &e->letters[i];
		char *t = xasprintf("%sletter[%zu].id=%s\nletter[%zu].type=%s\nletter[%zu].version=%s\n"
				    "letter[%zu].sender=%s\nletter[%zu].receiver=%s\n",
				    s, i + 1, l->id, i + 1, l->type, i + 1, l->version, i + 1,
				    l->sender, i + 1, l->receiver);
		free(s);
		s = t;
	}
	_cleanup_free_ char *refers = testutil_dump_refers(&e->refers);
	char *t = xasprintf("%s%s", s, refers);
	free(s);
	return t;
}


/* An Emessage around n copies of `letter` (tests of letter counting). */
static char *emessage_with(const char *letter, size_t n)
{
	static const char head[] =
		"<Emessage xmlns=\"urn:test\"><Envelope><Sent><Date>2024-03-01</Date>"
		"<Time>08:15</Time></Sent><Identifier>MANY</Identifier>"
		"<AcknowledgementCode>minuspositivkvitt</AcknowledgementCode></Envelope>";
	size_t ll = strlen(letter), hl = strlen(head);
	char *s = xmalloc(hl + n * ll + sizeof("</Emessage>"));
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * ll, letter, ll);
	strcpy(s + hl + n * ll, "</Emessage>");
	return s;
}

static const char receipt_letter[] =
	"<PositiveReceipt><Letter><Identifier>R1</Identifier><VersionCode>XC0330Q</VersionCode>"
	"<StatisticalCode>XCTL03</StatisticalCode></Letter><Sender><EANIdentifier>5790000120420"
	"</EANIdentifier></Sender><Receiver><EANIdentifier>5790000181872</EANIdentifier></Receiver>"
	"</PositiveReceipt>";

static const char admission_letter[] =
	"<NotificationOfAdmission><Letter><Identifier>A1</Identifier><VersionCode>XD2030C"
	"</VersionCode><StatisticalCode>XDIS20</StatisticalCode><TypeCode>XDIS20</TypeCode>"
	"</Letter><Sender><EANIdentifier>5790000143054</EANIdentifier></Sender><Receiver>"
	"<EANIdentifier>5790000143055</EANIdentifier></Receiver></NotificationOfAdmission>";

/* ---- (1) golden files over every sample -------------------------------- */

Test(golden, every_sample_matches_its_golden_file)
{
	size_t n;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	cr_assert_gt(n, 0, "no samples in %s (set EDIBROKER_SAMPLES)", samples_dir());
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ struct result *res = decode_file(samples_dir(), names[i]);
		cr_expect_eq(res->r, 0, "%s: %s", names[i], res->err.text);
		_cleanup_free_ char *got = dump(&res->env);
		_cleanup_free_ char *gpath = xasprintf("%s/%s.golden", GOLDEN, names[i]);
		testutil_expect_golden(gpath, got, strlen(got), names[i]);
	}
}

Test(golden, every_golden_file_has_a_sample)
{
	testutil_golden_files_have_samples(GOLDEN, samples_dir(), 1);
}

/* ---- (2) character sets ------------------------------------------------ */

Test(encoding, windows_1252_declared_is_transcoded)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_windows1252.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "windows-1252");
	/* bytes 80 E6 F8: euro sign (cp1252 only), ae, o-slash */
	cr_assert_str_eq(res->env.envelope_id, "KUV\xE2\x82\xAC\xC3\xA6\xC3\xB8");
}

/* ASCII is copied in runs, eight bytes at a time (xmlsafe.c): the high
 * bytes transcode the same wherever they fall in or after a run. */
Test(encoding, windows_1252_high_bytes_at_every_offset_of_a_run)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(DATA, "enc_windows1252.xml", &len);
	for (int pad = 0; pad <= 17; pad++) {
		char comment[48];
		snprintf(comment, sizeof(comment), "<!--%.*s--><Envelope>", pad, "xxxxxxxxxxxxxxxxx");
		size_t mlen;
		_cleanup_free_ uint8_t *m = replace(buf, len, "<Envelope>", comment, &mlen);
		_cleanup_free_ struct result *res = decode(m, mlen, NULL);
		cr_assert_eq(res->r, 0, "pad %d: %s", pad, res->err.text);
		cr_assert_str_eq(res->env.envelope_id, "KUV\xE2\x82\xAC\xC3\xA6\xC3\xB8", "pad %d", pad);
	}
}

Test(encoding, iso_8859_1_declared_is_transcoded)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_iso88591.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "ISO-8859-1");
	cr_assert_str_eq(res->env.envelope_id, "KUV\xC3\xA6\xC3\xB8\xC3\xA5");
}

Test(encoding, utf8_declared)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_utf8.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "UTF-8");
	cr_assert_str_eq(res->env.envelope_id, "KUV\xC3\xA6\xC3\xB8\xC3\xA5");
}

Test(encoding, no_declaration_with_latin1_bytes_reads_iso_8859_1)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_none_latin1.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "ISO-8859-1");
	cr_assert_str_eq(res->env.envelope_id, "KUV\xC3\xA6\xC3\xB8");
}

Test(encoding, no_declaration_with_utf8_bytes_reads_utf8)
{
	size_t len, mlen;
	_cleanup_free_ uint8_t *buf = load(DATA, "enc_utf8.xml", &len);
	_cleanup_free_ uint8_t *m =
		replace(buf, len, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "", &mlen);
	_cleanup_free_ struct result *res = decode(m, mlen, NULL);
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.encoding, "UTF-8");
	cr_assert_str_eq(res->env.envelope_id, "KUV\xC3\xA6\xC3\xB8\xC3\xA5");
}

Test(encoding, declared_utf8_with_latin1_bytes_is_refused_with_offset)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(DATA, "enc_utf8_latin1_bytes.xml", &len);
	size_t off = 0;
	while (off < len && buf[off] < 0x80)
		off++;
	cr_assert_lt(off, len, "test file lost its Latin-1 byte");
	_cleanup_free_ char *needle = xasprintf("offset %zu", off);
	_cleanup_free_ struct result *res = decode(buf, len, NULL);
	expect_error(res, CODEC_EENCODING, needle);
}

Test(encoding, bom_with_latin1_bytes_is_refused)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_bom_latin1.xml");
	expect_error(res, CODEC_EENCODING, "invalid UTF-8");
}

Test(encoding, bom_contradicting_the_declaration_is_refused)
{
	_cleanup_free_ struct result *res = decode_str("\xEF\xBB\xBF<?xml version=\"1.0\" "
						       "encoding=\"ISO-8859-1\"?><Emessage/>");
	expect_error(res, CODEC_EENCODING, "contradicts declared encoding ISO-8859-1");
}

Test(encoding, unsupported_declared_encoding_is_named)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "enc_unsupported.xml");
	expect_error(res, CODEC_EENCODING, "unsupported encoding KOI8-R");
}

Test(encoding, declared_aliases_are_accepted_case_insensitively)
{
	static const struct {
		const char *decl, *reported;
	} cases[] = {
		{ "latin1", "ISO-8859-1" },	 { "iso_8859-1", "ISO-8859-1" },
		{ "Windows-1252", "windows-1252" }, { "cp1252", "windows-1252" },
		{ "utf-8", "UTF-8" },		 { "us-ascii", "US-ASCII" },
	};
	size_t len;
	_cleanup_free_ uint8_t *buf = load(DATA, "enc_unsupported.xml", &len);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t mlen;
		_cleanup_free_ char *to = xasprintf("encoding=\"%s\"", cases[i].decl);
		_cleanup_free_ uint8_t *m = replace(buf, len, "encoding=\"KOI8-R\"", to, &mlen);
		_cleanup_free_ struct result *res = decode(m, mlen, NULL);
		cr_expect_eq(res->r, 0, "%s: %s", cases[i].decl, res->err.text);
		cr_expect_str_eq(res->env.encoding, cases[i].reported, "%s", cases[i].decl);
	}
}

Test(encoding, us_ascii_declared_with_high_byte_is_refused)
{
	static const char doc[] = "<?xml version='1.0' encoding='US-ASCII'?><Emessage>\xE6</Emessage>";
	_cleanup_free_ char *needle = xasprintf("offset %zu", (size_t)(strchr(doc, '\xE6') - doc));
	_cleanup_free_ struct result *res = decode_str(doc);
	expect_error(res, CODEC_EENCODING, needle);
}

Test(encoding, utf16_is_refused)
{
	_cleanup_free_ struct result *bomless = decode_file(HOSTILE, "utf16_claims_utf8.xml");
	expect_error(bomless, CODEC_EENCODING, "NUL byte at offset 1");
	static const uint8_t bom16[] = { 0xFF, 0xFE, '<', 0, 'a', 0, '/', 0, '>', 0 };
	_cleanup_free_ struct result *bom = decode(bom16, sizeof(bom16), NULL);
	expect_error(bom, CODEC_EENCODING, "UTF-16");
}

/* ---- (3) hostile inputs ------------------------------------------------ */

static char *hostname(void)
{
	size_t len;
	uint8_t *buf = NULL;
	cr_assert_eq(read_file_at(AT_FDCWD, "/etc/hostname", 4096, &buf, &len), 0,
		     "no /etc/hostname: the XXE inputs would have nothing to leak");
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	cr_assert_gt(len, 0, "empty /etc/hostname");
	return (char *)buf;
}

static void expect_no_leak(const struct result *res, const char *secret)
{
	cr_assert_null(strstr(res->env.envelope_id, secret));
	cr_assert_null(strstr(res->env.letters[0].sender, secret));
	cr_assert_null(strstr(res->err.text, secret));
}

Test(hostile, billion_laughs_is_refused_fast)
{
	watchdog(5);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	_cleanup_free_ struct result *res = decode_file(HOSTILE, "billion_laughs.xml");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	expect_error(res, CODEC_EHOSTILE, "DOCTYPE not allowed");
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_lt(secs, 0.5, "took %.3f s", secs);
	cr_assert_str_empty(res->env.envelope_id, "an entity was expanded");
}

Test(hostile, quadratic_blowup_is_refused)
{
	_cleanup_free_ struct result *res = decode_file(HOSTILE, "quadratic_blowup.xml");
	expect_error(res, CODEC_EHOSTILE, "DOCTYPE");
}

Test(hostile, xxe_file_entity_never_reaches_the_envelope)
{
	_cleanup_free_ char *host = hostname();
	size_t len;
	_cleanup_free_ uint8_t *buf = load(HOSTILE, "xxe_file.xml", &len);
	/* Control: under unsafe options libxml2 does read the file, so this
	 * input is a real attack and the assertions below are not vacuous. */
	xmlDocPtr unsafe = xmlReadMemory((const char *)buf, (int)len, NULL, NULL,
					 XML_PARSE_NOENT | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	cr_assert_not_null(unsafe);
	xmlChar *all = xmlNodeGetContent(xmlDocGetRootElement(unsafe));
	cr_assert(strstr((const char *)all, host), "control parse did not expand the entity");
	xmlFree(all);
	xmlFreeDoc(unsafe);

	_cleanup_free_ struct result *res = decode(buf, len, NULL);
	expect_error(res, CODEC_EHOSTILE, "DOCTYPE not allowed");
	expect_no_leak(res, host);
}

Test(hostile, parameter_entity_external_dtd_and_http_are_refused)
{
	static const char *const files[] = { "xxe_parameter_entity.xml", "xxe_external_dtd.xml",
					     "xxe_http.xml", "doctype_plain.xml" };
	_cleanup_free_ char *host = hostname();
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ struct result *res = decode_file(HOSTILE, files[i]);
		cr_expect_eq(res->err.code, CODEC_EHOSTILE, "%s: %s", files[i], res->err.text);
		expect_no_leak(res, host);
	}
}

/* A FIFO blocks whoever opens it for reading until a writer appears, so if
 * any of these inputs made the parser touch the file the test would hang
 * and fail on its timeout. */
Test(hostile, external_references_never_open_the_file)
{
	watchdog(10);
	char dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/edibroker-xxe-XXXXXX");
	_cleanup_free_ char *fifo = xasprintf("%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	static const char *const fmts[] = {
		"<!DOCTYPE Emessage [<!ENTITY x SYSTEM \"file://%s\">]><Emessage>&x;</Emessage>",
		"<!DOCTYPE Emessage [<!ENTITY %% p SYSTEM \"file://%s\"> %%p;]><Emessage/>",
		"<!DOCTYPE Emessage SYSTEM \"file://%s\"><Emessage/>",
		"<Emessage xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:include href=\"%s\"/>"
		"</Emessage>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		_cleanup_free_ char *doc = xasprintf(fmts[i], fifo);
		_cleanup_free_ struct result *res = decode_str(doc);
		cr_expect_eq(res->r, -1, "input %zu decoded", i);
	}
	unlink(fifo);
	rmdir(dir);
}

Test(hostile, xinclude_is_not_processed)
{
	_cleanup_free_ char *host = hostname();
	_cleanup_free_ struct result *res = decode_file(HOSTILE, "xinclude.xml");
	expect_error(res, CODEC_EFIELD, "Envelope: Identifier contains elements");
	expect_no_leak(res, host);
}

Test(hostile, undeclared_entity_is_a_syntax_error)
{
	_cleanup_free_ struct result *res = decode_file(HOSTILE, "undeclared_entity.xml");
	expect_error(res, CODEC_ESYNTAX, "not defined");
}

Test(hostile, nesting_deeper_than_the_limit)
{
	_cleanup_free_ struct result *res = decode_file(HOSTILE, "deep_nesting.xml");
	expect_error(res, CODEC_EDEPTH, NULL);
	/* the envelope and sender closed before the deep part: still usable */
	cr_assert_str_eq(res->env.envelope_id, "HOSTILE01");
	cr_assert_str_eq(res->env.letters[0].sender, "5790000143054");
}

Test(hostile, depth_limit_boundary_on_a_sample)
{
	/* DIS20_1 nests 5 deep, e.g. Emessage/NotificationOfAdmission/Letter/Authorisation/Date */
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	struct codec_limits five = { .max_depth = 5 }, four = { .max_depth = 4 };
	_cleanup_free_ struct result *ok = decode(buf, len, &five);
	cr_assert_eq(ok->r, 0, "%s", ok->err.text);
	_cleanup_free_ struct result *deep = decode(buf, len, &four);
	expect_error(deep, CODEC_EDEPTH, NULL);
}

Test(hostile, depth_limit_above_libxml2s_own_is_still_ours)
{
	size_t n = 2000;
	char *doc = xmalloc(n * 7 + 1), *p = doc;
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "<a>");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "</a>");
	struct codec_limits lim = { .max_depth = 100000 };
	_cleanup_free_ struct result *res = decode((uint8_t *)doc, (size_t)(p - doc), &lim);
	expect_error(res, CODEC_EDEPTH, NULL);
	free(doc);
}

/* ---- (3) malformed inputs ---------------------------------------------- */

Test(malformed, every_truncated_sample_fails_and_never_yields_garbage)
{
	watchdog(120);
	size_t n;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = load(samples_dir(), names[i], &len);
		_cleanup_free_ struct result *whole = decode(buf, len, NULL);
		cr_assert_eq(whole->r, 0, "%s", names[i]);
		size_t last_gt = len;
		while (last_gt > 0 && buf[last_gt - 1] != '>')
			last_gt--;
		/* every prefix that lacks the root's final '>' */
		for (size_t cut = 0; cut < last_gt; cut++) {
			_cleanup_free_ struct result *res = decode(buf, cut, NULL);
			const struct codec_envelope *e = &res->env;
			cr_assert_eq(res->r, -1, "%s cut at %zu decoded", names[i], cut);
			cr_assert(res->err.code == CODEC_ESYNTAX || res->err.code == CODEC_EENCODING,
				  "%s cut at %zu: %s", names[i], cut, res->err.text);
			/* partial fill is all or nothing: never a prefix of the real value */
			cr_assert(!*e->envelope_id || !strcmp(e->envelope_id, whole->env.envelope_id),
				  "%s cut at %zu: envelope id '%s'", names[i], cut, e->envelope_id);
			cr_assert(!*e->letters[0].sender ||
					  !strcmp(e->letters[0].sender, whole->env.letters[0].sender),
				  "%s cut at %zu: sender '%s'", names[i], cut, e->letters[0].sender);
		}
	}
}

Test(malformed, oversized_input_is_refused_before_parsing)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	struct codec_limits exact = { .max_bytes = len }, below = { .max_bytes = len - 1 };
	_cleanup_free_ struct result *ok = decode(buf, len, &exact);
	cr_assert_eq(ok->r, 0, "%s", ok->err.text);
	_cleanup_free_ struct result *big = decode(buf, len, &below);
	expect_error(big, CODEC_ETOOBIG, "limit");
	struct codec_envelope env;
	struct codec_error err;
	cr_assert_eq(codec_decode_any(buf, len, &below, &env, &err), -1);
	cr_assert_eq(err.code, CODEC_ETOOBIG);
	/* too big wins over "unrecognised": the size is checked before sniffing */
	static const char edi[] = "UNA:+.? 'UNB+UNOC:3+5790000143054:14'";
	struct codec_limits tiny = { .max_bytes = 8 };
	cr_assert_eq(codec_decode_any((const uint8_t *)edi, strlen(edi), &tiny, &env, &err), -1);
	cr_assert_eq(err.code, CODEC_ETOOBIG, "%s", err.text);
}

Test(malformed, empty_input)
{
	_cleanup_free_ struct result *null = decode(NULL, 0, NULL);
	expect_error(null, CODEC_ESYNTAX, "empty");
	_cleanup_free_ struct result *blank = decode_str("  \n");
	expect_error(blank, CODEC_ESYNTAX, NULL);
	/* found by fuzzing: a lone BOM left 0 bytes and libxml2 no context */
	_cleanup_free_ struct result *bom = decode_str("\xEF\xBB\xBF");
	expect_error(bom, CODEC_ESYNTAX, "empty");
	_cleanup_free_ struct result *none = decode((const uint8_t *)"", 0, NULL);
	expect_error(none, CODEC_ESYNTAX, "empty");
}

Test(malformed, a_second_bom_is_content_not_a_bom)
{
	/* found by fuzzing: once decoded although sniff (rightly) refused it */
	size_t len, mlen;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "CTL03_1.xml", &len);
	_cleanup_free_ uint8_t *m = replace(buf, len, "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
					    "\xEF\xBB\xBF\xEF\xBB\xBF<?xml version=\"1.0\"?>", &mlen);
	_cleanup_free_ struct result *res = decode(m, mlen, NULL);
	expect_error(res, CODEC_ESYNTAX, NULL);
	_cleanup_free_ uint8_t *one = replace(buf, len, "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
					      "\xEF\xBB\xBF<?xml version=\"1.0\"?>", &mlen);
	_cleanup_free_ struct result *ok = decode(one, mlen, NULL);
	cr_assert_eq(ok->r, 0, "one BOM is fine: %s", ok->err.text);
	cr_assert_str_eq(ok->env.encoding, "UTF-8");
}

Test(malformed, non_xml_bytes)
{
	_cleanup_free_ struct result *edi =
		decode_str("UNA:+.? 'UNB+UNOC:3+5790000143054:14+5790000143055:14+000124:2130+123'");
	expect_error(edi, CODEC_ESYNTAX, "line 1");
	static const uint8_t bin[] = { 0x7F, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0 };
	_cleanup_free_ struct result *elf = decode(bin, sizeof(bin), NULL);
	expect_error(elf, CODEC_EENCODING, "NUL byte at offset 7");
	_cleanup_free_ struct result *html = decode_str("<html><body><p>hi</body></html>");
	expect_error(html, CODEC_ESYNTAX, "mismatch");
}

Test(malformed, wrong_root_is_named)
{
	_cleanup_free_ struct result *res = decode_file(INVALID, "wrong_root.xml");
	expect_error(res, CODEC_ESTRUCTURE, "root element is Bundle");
}

Test(malformed, envelope_problems)
{
	_cleanup_free_ struct result *none = decode_file(INVALID, "missing_envelope.xml");
	expect_error(none, CODEC_ESTRUCTURE, "Envelope");
	_cleanup_free_ struct result *noid = decode_file(INVALID, "missing_envelope_identifier.xml");
	expect_error(noid, CODEC_EFIELD, "Envelope: missing Identifier");
	_cleanup_free_ struct result *ack = decode_file(INVALID, "bad_ack_code.xml");
	expect_error(ack, CODEC_EFIELD, "AcknowledgementCode");
	_cleanup_free_ struct result *sent = decode_file(INVALID, "bad_sent_time.xml");
	expect_error(sent, CODEC_EFIELD, "Sent");
	_cleanup_free_ struct result *empty = decode_file(INVALID, "no_letter.xml");
	expect_error(empty, CODEC_ESTRUCTURE, "no letter");
}

Test(malformed, identifier_length_boundary)
{
	_cleanup_free_ struct result *ok = decode_file(INVALID, "envelope_id_14.xml");
	cr_assert_eq(ok->r, 0, "%s", ok->err.text);
	cr_assert_str_eq(ok->env.envelope_id, "12345678901234");
	_cleanup_free_ struct result *res = decode_file(INVALID, "envelope_id_15.xml");
	expect_error(res, CODEC_EFIELD, "Envelope: Identifier is 15 bytes");
	_cleanup_free_ struct result *letter = decode_dis20_with(
		"<Identifier>24681012</Identifier>", "<Identifier>246810121234567</Identifier>");
	expect_error(letter, CODEC_EFIELD, "letter 1: Letter/Identifier is 15 bytes");
}

Test(malformed, missing_receiver_gln)
{
	_cleanup_free_ struct result *res = decode_file(INVALID, "missing_receiver_ean.xml");
	expect_error(res, CODEC_EFIELD, "letter 1: missing Receiver/EANIdentifier");
}

Test(malformed, gln_too_long_empty_or_with_controls)
{
	static const char gln36[] = "<EANIdentifier>123456789012345678901234567890123456</EANIdentifier>";
	_cleanup_free_ struct result *lng =
		decode_dis20_with("<EANIdentifier>5790000143055</EANIdentifier>", gln36);
	expect_error(lng, CODEC_EFIELD, "Receiver/EANIdentifier is 36 bytes");
	_cleanup_free_ struct result *empty = decode_dis20_with(
		"<EANIdentifier>5790000143055</EANIdentifier>", "<EANIdentifier> </EANIdentifier>");
	expect_error(empty, CODEC_EFIELD, "Receiver/EANIdentifier is empty");
	_cleanup_free_ struct result *ctl = decode_dis20_with(
		"<EANIdentifier>5790000143055</EANIdentifier>",
		"<EANIdentifier>5790000&#10;143055</EANIdentifier>");
	expect_error(ctl, CODEC_EFIELD, "control characters");
}

Test(malformed, fields_are_trimmed_and_cdata_is_text)
{
	_cleanup_free_ struct result *res =
		decode_dis20_with("<EANIdentifier>5790000143055</EANIdentifier>",
				  "<EANIdentifier>\n\t 5790000143055 \r\n</EANIdentifier>");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.letters[0].receiver, "5790000143055");
	_cleanup_free_ struct result *cdata = decode_dis20_with(
		"<Identifier>123456789</Identifier>", "<Identifier><![CDATA[12345]]>6789</Identifier>");
	cr_assert_eq(cdata->r, 0, "%s", cdata->err.text);
	cr_assert_str_eq(cdata->env.envelope_id, "123456789");
}

/* Decodes DIS20_1 with its letter element renamed (and, with ns, moved to
 * that default namespace). */
static struct result *decode_dis20_letter_renamed_ns(const char *name, const char *ns)
{
	size_t len, l1, l2;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	_cleanup_free_ char *open = ns ? xasprintf("<%s xmlns=\"%s\">", name, ns)
				       : xasprintf("<%s>", name);
	_cleanup_free_ char *close = xasprintf("</%s>", name);
	_cleanup_free_ uint8_t *m1 = replace(buf, len, "<NotificationOfAdmission>", open, &l1);
	_cleanup_free_ uint8_t *m2 = replace(m1, l1, "</NotificationOfAdmission>", close, &l2);
	return decode(m2, l2, NULL);
}

static struct result *decode_dis20_letter_renamed(const char *name)
{
	return decode_dis20_letter_renamed_ns(name, NULL);
}

Test(malformed, letter_outside_medcom_namespaces_is_named)
{
	_cleanup_free_ struct result *res = decode_file(INVALID, "unknown_letter.xml");
	expect_error(res, CODEC_ETYPE, "letter 1: DischargeLetter is not a MedCom letter");
	/* a non-ASCII element name reaches the text only as printable ASCII */
	_cleanup_free_ struct result *dk =
		decode_dis20_letter_renamed_ns("Indl\xE6ggelse", "urn:example"); /* cp1252 doc */
	expect_error(dk, CODEC_ETYPE, "letter 1: Indl??ggelse is not a MedCom letter");
}

/* Issue 10: a router must not refuse a MedCom letter type it has no list
 * entry for. Any element in a MedCom namespace is a letter. */
Test(agnostic, unknown_letter_element_in_a_medcom_namespace_is_routed)
{
	_cleanup_free_ struct result *res = decode_dis20_letter_renamed("DischargeLetter");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_str_eq(res->env.letters[0].type, "XDIS20");
	cr_assert_str_eq(res->env.letters[0].receiver, "5790000143055");
	static const char *const namespaces[] = {
		"http://rep.oio.dk/medcom.dk/xml/schemas/2004/06/01/",
		"http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2012/03/28/",
		"urn:oio:medcom:municipality:1.0.4",
	};
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
		_cleanup_free_ struct result *r =
			decode_dis20_letter_renamed_ns("RehabilitationPlan", namespaces[i]);
		cr_expect_eq(r->r, 0, "%s: %s", namespaces[i], r->err.text);
	}
}

Test(agnostic, xdis13_booking_confirmation_is_routed_with_its_type)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "XDIS13_BookingConfirmation.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.nletters, 1);
	cr_assert_str_eq(res->env.letters[0].type, "XDIS13");
	cr_assert_str_eq(res->env.letters[0].version, "XD1333L");
	cr_assert_str_eq(res->env.letters[0].id, "BC0000000013");
	cr_assert_str_eq(res->env.letters[0].sender, "5790002515200");
	cr_assert_str_eq(res->env.letters[0].receiver, "5790002508226");
	cr_assert_not(res->env.is_receipt);
}

Test(agnostic, the_xdis13_sample_is_valid_against_medcoms_schema)
{
	char dir[64];
	size_t len;
	_cleanup_free_ char *xsd = testutil_oioxml_xsd("2005-08-07", dir, sizeof(dir));
	_cleanup_free_ uint8_t *buf = load(DATA, "XDIS13_BookingConfirmation.xml", &len);
	testutil_assert_schema_valid(xsd, buf, len);
	testutil_rm_rf(dir);
}

/* An unknown letter: its own element, optional TypeCode/StatisticalCode. */
static struct result *decode_unknown_letter_v(const char *version, const char *codes)
{
	_cleanup_free_ char *doc = xasprintf(
		"<Emessage xmlns=\"http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/\">"
		"<Envelope><Sent><Date>2024-03-01</Date><Time>08:15</Time></Sent><Identifier>E1"
		"</Identifier><AcknowledgementCode>minuspositivkvitt</AcknowledgementCode>"
		"</Envelope><FutureLetter><Letter><Identifier>L1</Identifier><VersionCode>%s"
		"</VersionCode>%s</Letter><Sender><EANIdentifier>5790000143054</EANIdentifier>"
		"</Sender><Receiver><EANIdentifier>5790000143055</EANIdentifier></Receiver>"
		"</FutureLetter></Emessage>",
		version, codes);
	return decode_str(doc);
}

static struct result *decode_unknown_letter(const char *codes)
{
	return decode_unknown_letter_v("XX9999Z", codes);
}

Test(agnostic, type_from_typecode_else_statisticalcode_else_none)
{
	_cleanup_free_ struct result *both = decode_unknown_letter(
		"<StatisticalCode>XDIS99</StatisticalCode><TypeCode>XDIS99</TypeCode>");
	cr_assert_eq(both->r, 0, "%s", both->err.text);
	cr_assert_str_eq(both->env.letters[0].type, "XDIS99");
	cr_assert_str_eq(both->env.letters[0].version, "XX9999Z", "unknown types keep any version");
	_cleanup_free_ struct result *stat =
		decode_unknown_letter("<StatisticalCode>XCTL09</StatisticalCode>");
	cr_assert_eq(stat->r, 0, "%s", stat->err.text);
	cr_assert_str_eq(stat->env.letters[0].type, "XCTL09");
	cr_assert(stat->env.is_receipt, "an XCTL statistical code is a receipt");
	_cleanup_free_ struct result *none = decode_unknown_letter("");
	cr_assert_eq(none->r, 0, "%s", none->err.text);
	cr_assert_str_empty(none->env.letters[0].type);
	_cleanup_free_ struct result *differ = decode_unknown_letter(
		"<StatisticalCode>XDIS98</StatisticalCode><TypeCode>XDIS99</TypeCode>");
	expect_error(differ, CODEC_ETYPE, "TypeCode XDIS99 and StatisticalCode XDIS98 differ");
	_cleanup_free_ struct result *longcode =
		decode_unknown_letter("<TypeCode>XDIS12345</TypeCode>");
	expect_error(longcode, CODEC_EFIELD, "Letter/TypeCode is 9 bytes, longer than 8");
}

Test(agnostic, a_known_type_under_an_unknown_element_keeps_its_version_check)
{
	_cleanup_free_ struct result *res =
		decode_unknown_letter("<StatisticalCode>XDIS20</StatisticalCode><TypeCode>XDIS20"
				      "</TypeCode>");
	expect_error(res, CODEC_EVERSION, "VersionCode XX9999Z does not belong to XDIS20");
}

Test(agnostic, ids_and_versions_keep_oioxml_sizes)
{
	_cleanup_free_ struct result *id = decode_dis20_with(
		"<Identifier>24681012</Identifier>", "<Identifier>123456789012345</Identifier>");
	expect_error(id, CODEC_EFIELD, "Letter/Identifier is 15 bytes, longer than 14");
	_cleanup_free_ struct result *version = decode_unknown_letter_v("XX99999Z", "");
	expect_error(version, CODEC_EFIELD, "Letter/VersionCode is 8 bytes, longer than 7");
	_cleanup_free_ struct result *noversion = decode_unknown_letter_v("", "");
	expect_error(noversion, CODEC_EFIELD, "Letter/VersionCode is empty");
}

Test(malformed, type_code_must_match_the_letter_element)
{
	_cleanup_free_ struct result *res = decode_file(INVALID, "typecode_mismatch.xml");
	expect_error(res, CODEC_ETYPE, "TypeCode XDIS17 does not match NotificationOfAdmission");
	_cleanup_free_ struct result *rcpt =
		decode_str("<Emessage><Envelope><Sent><Date>2024-03-01</Date><Time>08:15</Time>"
			   "</Sent><Identifier>E</Identifier><AcknowledgementCode>minuspositivkvitt"
			   "</AcknowledgementCode></Envelope><PositiveReceipt><Letter><Identifier>L"
			   "</Identifier><VersionCode>XC0230Q</VersionCode><StatisticalCode>XCTL02"
			   "</StatisticalCode></Letter></PositiveReceipt></Emessage>");
	expect_error(rcpt, CODEC_ETYPE, "StatisticalCode XCTL02 does not match PositiveReceipt");
}

Test(malformed, version_code_must_fit_the_type)
{
	static const char *const bad[] = { "XD1730C", "XC2030C", "XD2130C", "YD2030C",
					   "XD3030C", "XD203",   "XD2030",  "XD20-0C" };
	_cleanup_free_ struct result *file = decode_file(INVALID, "bad_versioncode.xml");
	expect_error(file, CODEC_EVERSION, "VersionCode XD1730C does not belong to XDIS20");
	cr_assert_eq(codec_errcode_refusal(file->err.code), CODEC_REFUSE_VERSION);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *to = xasprintf("<VersionCode>%s</VersionCode>", bad[i]);
		_cleanup_free_ struct result *res =
			decode_dis20_with("<VersionCode>XD2030C</VersionCode>", to);
		cr_expect_eq(res->err.code, CODEC_EVERSION, "%s: %s", bad[i], res->err.text);
	}
	_cleanup_free_ struct result *lng = decode_dis20_with("<VersionCode>XD2030C</VersionCode>",
							      "<VersionCode>XD2030CC</VersionCode>");
	expect_error(lng, CODEC_EFIELD, "VersionCode is 8 bytes");
	_cleanup_free_ struct result *other = decode_dis20_with(
		"<VersionCode>XD2030C</VersionCode>", "<VersionCode>XD2034C</VersionCode>");
	cr_assert_eq(other->r, 0, "a later XD20 release must pass: %s", other->err.text);
}

Test(malformed, error_text_never_quotes_message_content)
{
	/* CPR number and a name sit next to the broken tags */
	_cleanup_free_ struct result *tag = decode_dis20_with("</CivilRegistrationNumber>",
							      "</CivilRegistrationNumbr>");
	expect_error(tag, CODEC_ESYNTAX, "CivilRegistrationNumber");
	cr_assert_null(strstr(tag->err.text, "2505544849"));
	_cleanup_free_ struct result *amp = decode_dis20_with("Lyngby Taarb", "Lyngby & Taarb");
	expect_error(amp, CODEC_ESYNTAX, "line 2");
	cr_assert_null(strstr(amp->err.text, "Lyngby"));
}

Test(malformed, namespace_errors_are_syntax_errors)
{
	size_t len, l1, l2;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	_cleanup_free_ uint8_t *m1 = replace(buf, len, "<Emessage ", "<m:Emessage ", &l1);
	_cleanup_free_ uint8_t *m2 = replace(m1, l1, "</Emessage>", "</m:Emessage>", &l2);
	_cleanup_free_ struct result *res = decode(m2, l2, NULL);
	expect_error(res, CODEC_ESYNTAX, "Namespace prefix m on Emessage is not defined");
}

/* ---- multi-letter messages --------------------------------------------- */

Test(letters, two_letters_to_different_receivers)
{
	_cleanup_free_ struct result *res = decode_file(DATA, "multi_letter.xml");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.nletters, 2);
	cr_assert(res->env.ack_requested);
	cr_assert_not(res->env.is_receipt);
	cr_assert_str_eq(res->env.letters[0].id, "LETTER0001");
	cr_assert_str_eq(res->env.letters[0].receiver, "5790000143055");
	cr_assert_str_eq(res->env.letters[1].id, "LETTER0002");
	cr_assert_str_eq(res->env.letters[1].receiver, "5790000128700");
	cr_assert_str_eq(res->env.letters[1].sender, "5790000143054");
}

Test(letters, is_receipt_only_when_every_letter_is_one)
{
	_cleanup_free_ char *two = emessage_with(receipt_letter, 2);
	_cleanup_free_ struct result *rr = decode_str(two);
	cr_assert_eq(rr->r, 0, "%s", rr->err.text);
	cr_assert(rr->env.is_receipt);
	_cleanup_free_ char *mixed = xasprintf("%s%s", receipt_letter, admission_letter);
	_cleanup_free_ char *doc = emessage_with(mixed, 1);
	_cleanup_free_ struct result *mx = decode_str(doc);
	cr_assert_eq(mx->r, 0, "%s", mx->err.text);
	cr_assert_eq(mx->env.nletters, 2);
	cr_assert_not(mx->env.is_receipt);
	_cleanup_free_ char *mixed2 = xasprintf("%s%s", admission_letter, receipt_letter);
	_cleanup_free_ char *doc2 = emessage_with(mixed2, 1);
	_cleanup_free_ struct result *mx2 = decode_str(doc2);
	cr_assert_eq(mx2->r, 0, "%s", mx2->err.text);
	cr_assert_not(mx2->env.is_receipt, "a receipt last must not make it a receipt");
}

Test(letters, at_most_codec_max_letters)
{
	_cleanup_free_ char *max = emessage_with(admission_letter, CODEC_MAX_LETTERS);
	_cleanup_free_ struct result *ok = decode_str(max);
	cr_assert_eq(ok->r, 0, "%s", ok->err.text);
	cr_assert_eq(ok->env.nletters, CODEC_MAX_LETTERS);
	_cleanup_free_ char *over = emessage_with(admission_letter, CODEC_MAX_LETTERS + 1);
	_cleanup_free_ struct result *res = decode_str(over);
	expect_error(res, CODEC_ESTRUCTURE, "more than 128 letters");
}

Test(letters, the_error_names_the_letter_number)
{
	_cleanup_free_ char *bad = xstrdup(admission_letter);
	memcpy(strstr(bad, "XDIS20</TypeCode>"), "XDIS19", 6);
	_cleanup_free_ char *pair = xasprintf("%s%s", admission_letter, bad);
	_cleanup_free_ char *doc = emessage_with(pair, 1);
	_cleanup_free_ struct result *res = decode_str(doc);
	expect_error(res, CODEC_ETYPE, "letter 2: TypeCode XDIS19");
}

/* ---- (4) partial fill on error ----------------------------------------- */

Test(partial, missing_receiver_keeps_envelope_id_and_sender)
{
	_cleanup_free_ struct result *res = decode_file(INVALID, "missing_receiver_ean.xml");
	cr_assert_eq(res->err.code, CODEC_EFIELD);
	cr_assert_str_eq(res->env.envelope_id, "123456789");
	cr_assert_str_eq(res->env.letters[0].sender, "5790000143054");
	cr_assert_str_empty(res->env.letters[0].receiver);
	cr_assert_str_eq(res->env.letters[0].id, "24681012", "kept for an acknowledgement");
	cr_assert_eq(res->env.nletters, 0);
}

Test(partial, unknown_type_and_bad_version_keep_the_address)
{
	static const char *const files[] = { "unknown_letter.xml", "bad_versioncode.xml",
					     "bad_ack_code.xml" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ struct result *res = decode_file(INVALID, files[i]);
		cr_expect_str_eq(res->env.envelope_id, "123456789", "%s", files[i]);
		cr_expect_str_eq(res->env.letters[0].sender, "5790000143054", "%s", files[i]);
	}
}

Test(partial, truncated_after_the_sender_keeps_it)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.xml", &len);
	const char *end = "<EANIdentifier>5790000143054</EANIdentifier>";
	size_t cut = (size_t)((uint8_t *)memmem(buf, len, end, strlen(end)) - buf) + strlen(end);
	_cleanup_free_ struct result *after = decode(buf, cut, NULL);
	expect_error(after, CODEC_ESYNTAX, NULL);
	cr_assert_str_eq(after->env.envelope_id, "123456789");
	cr_assert_str_eq(after->env.letters[0].sender, "5790000143054");
	_cleanup_free_ struct result *inside = decode(buf, cut - strlen("43054</EANIdentifier>"), NULL);
	cr_assert_str_eq(inside->env.envelope_id, "123456789");
	cr_assert_str_empty(inside->env.letters[0].sender, "a cut GLN must not be used");
}

Test(partial, hostile_and_encoding_errors_fill_nothing)
{
	_cleanup_free_ struct result *h = decode_file(HOSTILE, "xxe_file.xml");
	cr_assert_str_empty(h->env.envelope_id);
	_cleanup_free_ struct result *e = decode_file(DATA, "enc_unsupported.xml");
	cr_assert_str_empty(e->env.envelope_id);
	cr_assert_str_empty(e->env.letters[0].sender);
}

/* ---- sniffing and the registry ----------------------------------------- */

static bool sniff_str(const char *s)
{
	return codec_oioxml.sniff((const uint8_t *)s, strlen(s));
}

Test(sniff, every_sample_is_recognised)
{
	size_t n;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = load(samples_dir(), names[i], &len);
		cr_expect(codec_oioxml.sniff(buf, len), "%s", names[i]);
		cr_expect_eq(codec_sniff(buf, len), &codec_oioxml, "%s", names[i]);
	}
}

Test(sniff, prolog_forms)
{
	cr_assert(sniff_str("\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- c > -->\n<?pi x?>\n <Emessage>"));
	cr_assert(sniff_str("<ns1:Emessage xmlns:ns1=\"urn:oio:medcom:municipality:1.0.3\">"));
	cr_assert(sniff_str("<!DOCTYPE Emessage [<!ENTITY a \"]>\">]><Emessage/>"));
	cr_assert_not(sniff_str("<Emessages>"));
	cr_assert_not(sniff_str("<Bundle xmlns=\"http://hl7.org/fhir\">"));
	cr_assert_not(sniff_str("UNA:+.? 'UNB+UNOC:3"));
	cr_assert_not(sniff_str("Emessage"));
	cr_assert_not(sniff_str("<!-- unterminated <Emessage>"));
	cr_assert_not(sniff_str("<Emessage"));
	cr_assert_not(codec_oioxml.sniff(NULL, 0));
}

Test(registry, find_sniff_and_decode_any)
{
	cr_assert_eq(codec_find("oioxml"), &codec_oioxml);
	cr_assert_str_eq(codec_oioxml.ext, "xml");
	cr_assert_null(codec_find("x12"));
	cr_assert_null(codec_find(NULL));
	struct codec_envelope env;
	struct codec_error err;
	size_t len;
	_cleanup_free_ uint8_t *buf = load(HOSTILE, "doctype_plain.xml", &len);
	cr_assert_eq(codec_decode_any(buf, len, NULL, &env, &err), -1);
	cr_assert_eq(err.code, CODEC_EHOSTILE, "a DOCTYPE must reach the codec: %s", err.text);
	const char *x12 = "ISA*00*          *00*          *ZZ*SENDER~";
	cr_assert_eq(codec_decode_any((const uint8_t *)x12, strlen(x12), NULL, &env, &err), -1);
	cr_assert_eq(err.code, CODEC_ESTRUCTURE);
	cr_assert_eq(env.nletters, 0);
	_cleanup_free_ uint8_t *ok = load(samples_dir(), "CTL03_1.xml", &len);
	cr_assert_eq(codec_decode_any(ok, len, NULL, &env, &err), 0, "%s", err.text);
	cr_assert_eq(env.codec, &codec_oioxml);
}

Test(registry, error_names_and_refuse_codes)
{
	static const struct {
		enum codec_errcode code;
		const char *name, *refuse;
	} want[] = {
		{ CODEC_OK, "ok", "ikke_specificeret" },
		{ CODEC_ETOOBIG, "too-big", "syntaksfejl" },
		{ CODEC_EENCODING, "encoding", "syntaksfejl" },
		{ CODEC_ESYNTAX, "syntax", "syntaksfejl" },
		{ CODEC_EHOSTILE, "hostile", "syntaksfejl" },
		{ CODEC_EDEPTH, "depth", "syntaksfejl" },
		{ CODEC_ESTRUCTURE, "structure", "syntaksfejl" },
		{ CODEC_EFIELD, "field", "syntaksfejl" },
		{ CODEC_ETYPE, "type", "syntaksfejl" },
		{ CODEC_EVERSION, "version", "problem_med_version" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		cr_expect_str_eq(codec_errcode_name(want[i].code), want[i].name);
		cr_expect_str_eq(xctl01_refuse_code(codec_errcode_refusal(want[i].code)),
				 want[i].refuse);
	}
	cr_assert_str_eq(codec_errcode_name((enum codec_errcode)99), "unknown");
	cr_assert_eq(codec_errcode_refusal((enum codec_errcode)99), CODEC_REFUSE_UNSPECIFIED);
}

/* ---- xmlsafe: silence and threads -------------------------------------- */

Test(xmlsafe, libxml2_never_writes_to_stderr)
{
	size_t nh, ni;
	_cleanup_names_ char **hostile = testutil_list_files(HOSTILE, &nh);
	_cleanup_names_ char **invalid = testutil_list_files(INVALID, &ni);
	FILE *tmp = tmpfile();
	cr_assert_not_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	for (size_t i = 0; i < nh; i++)
		free(decode_file(HOSTILE, hostile[i]));
	for (size_t i = 0; i < ni; i++)
		free(decode_file(INVALID, invalid[i]));
	free(decode_str("<Emessage><a></b></Emessage>"));
	free(decode_str("<Emessage xmlns:p='x y'><p:a/><q:b/></Emessage>"));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	cr_assert_eq(fseek(tmp, 0, SEEK_END), 0);
	long size = ftell(tmp);
	fclose(tmp);
	cr_assert_eq(size, 0, "libxml2 wrote %ld bytes to stderr", size);
	cr_assert_gt(nh + ni, 10, "test data missing");
}

struct job {
	char **names;
	uint8_t **bufs;
	size_t *lens, n;
	char **want;
	bool ok;
};

static void *decode_loop(void *arg)
{
	struct job *j = arg;
	struct codec_envelope *env = xmalloc(sizeof(*env));
	struct codec_error err;
	j->ok = true;
	for (int round = 0; round < 40; round++) {
		for (size_t i = 0; i < j->n; i++) {
			int r = codec_oioxml.decode(j->bufs[i], j->lens[i], NULL, env, &err);
			char *got = dump(env);
			j->ok = j->ok && r == 0 && strcmp(got, j->want[i]) == 0;
			free(got);
		}
	}
	free(env);
	return NULL;
}

Test(xmlsafe, concurrent_decodes_agree_with_sequential_ones)
{
	watchdog(60);
	xmlsafe_init();
	struct job base = { 0 };
	base.names = testutil_list_files(samples_dir(), &base.n);
	base.bufs = xcalloc(base.n, sizeof(*base.bufs));
	base.lens = xcalloc(base.n, sizeof(*base.lens));
	base.want = xcalloc(base.n, sizeof(*base.want));
	for (size_t i = 0; i < base.n; i++) {
		base.bufs[i] = load(samples_dir(), base.names[i], &base.lens[i]);
		_cleanup_free_ struct result *res = decode(base.bufs[i], base.lens[i], NULL);
		base.want[i] = dump(&res->env);
	}
	struct job jobs[4];
	pthread_t t[4];
	for (int k = 0; k < 4; k++) {
		jobs[k] = base;
		cr_assert_eq(pthread_create(&t[k], NULL, decode_loop, &jobs[k]), 0);
	}
	for (int k = 0; k < 4; k++) {
		pthread_join(t[k], NULL);
		cr_expect(jobs[k].ok, "thread %d saw a different result", k);
	}
	for (size_t i = 0; i < base.n; i++) {
		free(base.bufs[i]);
		free(base.want[i]);
	}
	free(base.bufs);
	free(base.lens);
	free(base.want);
	testutil_free_names(base.names);
}

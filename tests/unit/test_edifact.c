/*
 * test_edifact.c - the EDIFACT codec and its CONTRL receipts, driven by
 * MedCom's EDIFACT samples and hand-made interchanges.
 *
 * Layers: golden dumps over every file in the samples directory (default
 * ../shared/medcom-samples/edifact, or $EDIBROKER_SAMPLES_ROOT/edifact),
 * success or the exact error, in tests/golden/edifact; each DIS20_ERROR
 * sample's specific reason; UNA variants (other separators, release
 * characters inside values, no release character); line breaks; every
 * truncation of every sample; character sets; each misplaced segment; the
 * field checks of UNB and UNH; the UNO binary object; limits and linear
 * time; partial fill on error; sniffing and the registry; and the CONTRL
 * receipts (golden files in tests/golden/edifact/ctl, round trip through
 * the decoder, every refusal, text conversion, -EINVAL/-ENOTSUP). Every
 * decode goes through decode(), which checks the codec.h contract. Run from
 * the repository root.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codecs/codec.h"
#include "codecs/ctl.h"
#include "codecs/edifact.h"
#include "codecs/oioxml.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"

#define GOLDEN "tests/golden/edifact"
#define GOLDEN_CTL "tests/golden/edifact/ctl"

/* A valid one-message interchange in pieces, default separators. */
#define UNB_OK "UNB+UNOC:3+5790000143054:14+5790000143055:14+000124:2130+REF1++++0'"
#define MSG_OK(ref) "UNH+" ref "+MEDDIS:D:93A:UN:D2030C+DIS20'BGM+EPI++9+NA'UNT+3+" ref "'"
#define UNZ_OK(n) "UNZ+" #n "+REF1'"
#define ONE_OK UNB_OK MSG_OK("M1") UNZ_OK(1)

/* ---- helpers ----------------------------------------------------------- */

struct result {
	int r;
	struct codec_envelope env;
	struct codec_error err;
};

static const char *samples_dir(void)
{
	static char path[4096];
	const char *root = getenv("EDIBROKER_SAMPLES_ROOT");
	snprintf(path, sizeof(path), "%s/edifact",
		 str_empty(root) ? "../shared/medcom-samples" : root);
	return path;
}

static void *load(const char *dir, const char *name, size_t *len)
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

/* NUL within the array, printable ASCII before it. */
static bool clean(const char *s, size_t arrsz)
{
	const char *nul = memchr(s, 0, arrsz);
	return nul && printable_line(s);
}

/* The codec.h contract every result must keep, success or not. */
static void check_contract(const struct result *res)
{
	const struct codec_envelope *e = &res->env;
	cr_assert_eq(e->codec, &codec_edifact);
	cr_assert(clean(e->envelope_id, sizeof(e->envelope_id)));
	cr_assert(clean(e->letters[0].sender, sizeof(e->letters[0].sender)));
	cr_assert(clean(e->letters[0].receiver, sizeof(e->letters[0].receiver)));
	if (res->r == 0) {
		cr_assert_eq(res->err.code, CODEC_OK);
		cr_assert(e->nletters >= 1 && e->nletters <= CODEC_MAX_LETTERS);
		cr_assert(e->envelope_id[0] && strlen(e->sent) == 16 && e->sent[10] == 'T');
		for (size_t i = 0; i < e->nletters; i++) {
			const struct codec_letter *l = &e->letters[i];
			cr_assert(l->id[0] && clean(l->id, sizeof(l->id)));
			cr_assert(strlen(l->type) == 5 && strlen(l->version) == 6);
			cr_assert(l->sender[0] && l->receiver[0]);
		}
		return;
	}
	cr_assert_eq(res->r, -1);
	cr_assert_neq(res->err.code, CODEC_OK);
	cr_assert_eq(e->nletters, 0, "nletters must be 0 on error");
	cr_assert(res->err.text[0] != '\0', "empty error text");
	cr_assert(printable_line(res->err.text), "error text not printable: %s", res->err.text);
}

static struct result *decode(const void *buf, size_t len, const struct codec_limits *lim)
{
	struct result *res = xcalloc(1, sizeof(*res));
	res->r = codec_edifact.decode(buf, len, lim, &res->env, &res->err);
	check_contract(res);
	return res;
}

static struct result *decode_str(const char *s)
{
	return decode(s, strlen(s), NULL);
}

static struct result *decode_file(const char *name)
{
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), name, &len);
	return decode(buf, len, NULL);
}

static void expect_ok(const struct result *res)
{
	cr_assert_eq(res->r, 0, "expected success: %s (%s)", codec_errcode_name(res->err.code),
		     res->err.text);
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

/* s with the first `from` replaced by `to` (malloc'ed, NUL-terminated). */
static char *replace(const char *s, size_t len, const char *from, const char *to, size_t *outlen)
{
	const char *at = memmem(s, len, from, strlen(from));
	cr_assert(at, "'%s' not in input", from);
	size_t head = (size_t)(at - s), fl = strlen(from), tl = strlen(to);
	char *out = xmalloc(len - fl + tl + 1);
	memcpy(out, s, head);
	memcpy(out + head, to, tl);
	memcpy(out + head + tl, at + fl, len - head - fl);
	*outlen = len - fl + tl;
	out[*outlen] = '\0';
	return out;
}

/* Decodes a sample with one textual change. */
static struct result *decode_sample_with(const char *name, const char *from, const char *to)
{
	size_t len, mlen;
	_cleanup_free_ char *buf = load(samples_dir(), name, &len);
	_cleanup_free_ char *m = replace(buf, len, from, to, &mlen);
	return decode(m, mlen, NULL);
}

static struct result *decode_one_with(const char *from, const char *to)
{
	size_t mlen;
	_cleanup_free_ char *m = replace(ONE_OK, strlen(ONE_OK), from, to, &mlen);
	return decode(m, mlen, NULL);
}

static char *dump(const struct result *res)
{
	const struct codec_envelope *e = &res->env;
	char *s;
	if (res->r != 0)
		return xasprintf("codec=%s\nerror=%s\ntext=%s\nencoding=%s\nenvelope_id=%s\n"
				 "is_receipt=%s\npartial.sender=%s\npartial.receiver=%s\n",
				 e->codec->name, codec_errcode_name(res->err.code), res->err.text,
				 e->encoding, e->envelope_id, e->is_receipt ? "yes" : "no",
				 e->letters[0].sender, e->letters[0].receiver);
	s = xasprintf("codec=%s\nencoding=%s\nenvelope_id=%s\nsent=%s\nack_requested=%s\n"
		      "is_receipt=%s\nnletters=%zu\n",
		      e->codec->name, e->encoding, e->envelope_id, e->sent,
		      e->ack_requested ? "yes" : "no", e->is_receipt ? "yes" : "no", e->nletters);
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

/* A growable byte string for building big interchanges. */
struct bytes {
	char *p;
	size_t len, cap;
};

static void add(struct bytes *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void adds(struct bytes *b, const char *s)
{
	add(b, s, strlen(s));
}

static void addf(struct bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct bytes *b, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	cr_assert_geq(vasprintf(&s, fmt, ap), 0);
	va_end(ap);
	adds(b, s);
	free(s);
}

/* ---- golden files over every sample ------------------------------------ */

Test(golden, every_sample_matches_its_golden_file)
{
	size_t n;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	cr_assert_geq(n, 12, "samples missing in %s (set EDIBROKER_SAMPLES_ROOT)", samples_dir());
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ struct result *res = decode_file(names[i]);
		bool want_error = strstr(names[i], "_ERROR_") != NULL;
		cr_expect_eq(res->r != 0, want_error, "%s: %s", names[i], res->err.text);
		/* codec.h: a bare message's inner format is its codec, also on error */
		cr_expect_eq(res->env.inner, &codec_edifact, "%s: inner", names[i]);
		_cleanup_free_ char *got = dump(res);
		_cleanup_free_ char *gpath = xasprintf("%s/%s.golden", GOLDEN, names[i]);
		testutil_expect_golden(gpath, got, strlen(got), names[i]);
	}
}

Test(golden, every_golden_file_has_a_sample)
{
	testutil_golden_files_have_samples(GOLDEN, samples_dir(), 12);
}

/* ---- each negative sample, its own reason ------------------------------ */

Test(samples, each_error_sample_has_its_specific_reason)
{
	static const struct {
		const char *file;
		enum codec_errcode code;
		const char *needles[3];
	} cases[] = {
		{ "DIS20_ERROR_UNT0.edi", CODEC_ESTRUCTURE,
		  { "segment 28 UNT, element 1", "segment count 25", "has 26 segments" } },
		{ "DIS20_ERROR_UNH2.edi", CODEC_ESTRUCTURE,
		  { "segment 28 UNT, element 2", "message reference 24681012",
		    "UNH's 24681011 (segment 3)" } },
		{ "DIS20_ERROR_UNZ0.edi", CODEC_ESTRUCTURE,
		  { "segment 29 UNZ, element 2", "reference 123456789",
		    "differs from UNB's 123456788" } },
		{ "DIS20_ERROR_UNZ1.edi", CODEC_ESTRUCTURE,
		  { "segment 29 UNZ, element 1", "message count 2", "holds 1 message" } },
		{ "DIS20_ERROR_ENC0.edi", CODEC_EENCODING,
		  { "UTF-8 encoded", "segment 13 NAD, element 4", "UNOC is ISO-8859-1" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ struct result *res = decode_file(cases[i].file);
		cr_expect_eq(res->err.code, cases[i].code, "%s: %s", cases[i].file, res->err.text);
		for (size_t k = 0; k < 3; k++)
			cr_expect(strstr(res->err.text, cases[i].needles[k]), "%s: '%s' not in '%s'",
				  cases[i].file, cases[i].needles[k], res->err.text);
		/* the reasons are told apart, and the address survives */
		cr_expect_str_eq(res->env.letters[0].sender, "5790000143054", "%s", cases[i].file);
		cr_expect_str_eq(res->env.letters[0].receiver, "5790000143055", "%s", cases[i].file);
		cr_expect_not(res->env.is_receipt);
	}
}

Test(samples, the_default_separators_apply_without_una)
{
	_cleanup_free_ struct result *res = decode_file("DIS20_ok_UNA.edi");
	expect_ok(res);
	cr_assert_str_eq(res->env.letters[0].type, "DIS20");
	cr_assert_str_eq(res->env.letters[0].version, "D2030C");
	cr_assert_str_eq(res->env.sent, "2000-01-24T21:30");
}

Test(samples, receipts_are_receipts_and_their_subtype_is_read)
{
	static const char *const files[] = { "CTL01_1.edi", "CTL02_1.edi", "CTL03_1.edi" };
	static const char *const types[] = { "CTL01", "CTL02", "CTL03" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ struct result *res = decode_file(files[i]);
		expect_ok(res);
		cr_expect(res->env.is_receipt, "%s", files[i]);
		cr_expect_str_eq(res->env.letters[0].type, types[i]);
		cr_expect_not(res->env.ack_requested);
	}
	/* the subtype comes from the version when UNH element 3 is absent */
	_cleanup_free_ struct result *bare =
		decode_sample_with("CTL03_1.edi", "C0330Q+CTL03'", "C0330Q'");
	expect_ok(bare);
	cr_assert_str_eq(bare->env.letters[0].type, "CTL03");
}

/* ---- UNA variants and line breaks -------------------------------------- */

/* Re-encodes a default-syntax interchange (no UNA) with the service
 * characters in una ("UNA" + 6), escaping data that collides with them. */
static char *reencode(const char *src, const char *una)
{
	struct bytes b = { 0 };
	const char comp = una[3], elem = una[4], rel = una[6], term = una[8];
	adds(&b, una);
	for (const char *p = src; *p; p++) {
		char c = *p, out;
		bool data = false;
		if (c == '?') {
			c = *++p;
			data = true;
		}
		if (!data && c == ':')
			out = comp;
		else if (!data && c == '+')
			out = elem;
		else if (!data && c == '\'')
			out = term;
		else {
			if (c == comp || c == elem || c == term || (rel != ' ' && c == rel))
				add(&b, &rel, 1);
			out = c;
		}
		add(&b, &out, 1);
	}
	return b.p;
}

Test(una, other_separators_and_escaped_values)
{
	/* ids holding every default service character, released */
	static const char src[] =
		"UNB+UNOC:3+5790000143054:14+5790000143055:14+000124:2130+R?+1?:2??3?'4'"
		"UNH+M?+1?:x+MEDDIS:D:93A:UN:D2030C+DIS20'FTX+NC+P00++a|b*c!d~e?:f'"
		"UNT+3+M?+1?:x'UNZ+1+R?+1?:2??3?'4'";
	static const char *const unas[] = { "UNA:+.? '", "UNA|*,! ~", "UNA^~.\\ #",
					    "UNA+:.? '", "UNA:+., '" };
	for (size_t i = 0; i < ARRAY_SIZE(unas); i++) {
		_cleanup_free_ char *edi = reencode(src, unas[i]);
		_cleanup_free_ struct result *res = decode_str(edi);
		cr_expect_eq(res->r, 0, "%s: %s", unas[i], res->err.text);
		cr_expect_str_eq(res->env.envelope_id, "R+1:2?3'4", "%s", unas[i]);
		cr_expect_str_eq(res->env.letters[0].id, "M+1:x", "%s", unas[i]);
		cr_expect_str_eq(res->env.letters[0].receiver, "5790000143055", "%s", unas[i]);
	}
}

Test(una, samples_reencoded_keep_their_envelope)
{
	static const char *const files[] = { "DIS20_1.edi", "DIS91_1.edi", "CTL02_1.edi" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		_cleanup_free_ char *buf = load(samples_dir(), files[i], &len);
		_cleanup_free_ struct result *orig = decode(buf, len, NULL);
		expect_ok(orig);
		_cleanup_free_ char *edi = reencode(buf + strlen("UNA:+.? '"), "UNA|*,! ~");
		_cleanup_free_ struct result *res = decode_str(edi);
		expect_ok(res);
		_cleanup_free_ char *a = dump(orig), *b = dump(res);
		cr_expect_str_eq(a, b, "%s", files[i]);
	}
}

Test(una, bad_service_string_advice_is_named)
{
	static const char *const bad[] = { "UNA::.? '", "UNA:+.?:'", "UNA:A.? '", "UNA:+.+ '",
					   "UNA:+.? \n", "UNA\x01+.? '" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *edi = xasprintf("%s%s", bad[i], ONE_OK);
		_cleanup_free_ struct result *res = decode_str(edi);
		expect_error(res, CODEC_ESYNTAX, "segment 1 UNA");
	}
	_cleanup_free_ struct result *cut = decode_str("UNA:+.?");
	expect_error(cut, CODEC_ESYNTAX, "input ends inside UNA");
}

Test(una, a_blank_release_character_means_none)
{
	/* without a release character '?' is plain data */
	_cleanup_free_ struct result *res = decode_str(
		"UNA:+.  'UNB+UNOC:3+5790000143054:14+5790000143055:14+000124:2130+R?1'"
		"UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'FTX+NC+P00++what?'UNT+3+M1'UNZ+1+R?1'");
	expect_ok(res);
	cr_assert_str_eq(res->env.envelope_id, "R?1");
}

Test(una, release_before_an_ordinary_character_is_refused)
{
	_cleanup_free_ struct result *res = decode_one_with("BGM+EPI", "BGM+E?PI");
	expect_error(res, CODEC_ESYNTAX, "segment 3 BGM, element 1, offset");
	cr_assert(strstr(res->err.text, "needs no release"), "%s", res->err.text);
	_cleanup_free_ struct result *end = decode_str(UNB_OK "UNH+M?");
	expect_error(end, CODEC_ESYNTAX, "input ends after a release character");
}

Test(lines, crlf_between_and_inside_segments_is_ignored)
{
	_cleanup_free_ struct result *between = decode_str(
		"\r\n \tUNA:+.? '\r\n" UNB_OK "\r\n" MSG_OK("M1") "\n\n" UNZ_OK(1) "\r\n\t \r\n");
	expect_ok(between);
	/* folded lines: a GLN and a reference cut by CRLF read whole */
	_cleanup_free_ struct result *folded = decode_one_with("5790000143055:14", "5790000\r\n143055:14");
	expect_ok(folded);
	cr_assert_str_eq(folded->env.letters[0].receiver, "5790000143055");
	_cleanup_free_ struct result *ref = decode_one_with("UNT+3+M1", "UNT+\n3+M\r\n1");
	expect_ok(ref);
	/* a line break inside a tag is not folding */
	_cleanup_free_ struct result *tag = decode_one_with("BGM", "B\nGM");
	expect_error(tag, CODEC_ESYNTAX, "segment tag");
}

/* ---- truncation -------------------------------------------------------- */

/* Offset just past the last segment terminator. */
static size_t last_terminator(const char *buf, size_t len)
{
	size_t end = len;
	while (end > 0 && buf[end - 1] != '\'')
		end--;
	return end;
}

Test(truncation, every_prefix_of_every_sample_fails_cleanly)
{
	size_t n, tried = 0;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	struct result *res = xcalloc(1, sizeof(*res));
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ char *buf = load(samples_dir(), names[i], &len);
		bool good = strstr(names[i], "_ERROR_") == NULL;
		size_t whole = last_terminator(buf, len);
		for (size_t cut = 0; cut < len; cut++, tried++) {
			/* a fresh copy of exactly `cut` bytes, so ASan sees any over-read */
			char *prefix = xmalloc(cut ? cut : 1);
			memcpy(prefix, buf, cut);
			res->r = codec_edifact.decode((const uint8_t *)prefix, cut, NULL, &res->env, &res->err);
			check_contract(res);
			if (cut < whole)
				cr_expect_eq(res->r, -1, "%s cut at %zu decoded", names[i], cut);
			else if (good)
				cr_expect_eq(res->r, 0, "%s cut at %zu: %s", names[i], cut,
					     res->err.text);
			free(prefix);
		}
	}
	free(res);
	cr_assert_gt(tried, 5000);
}

Test(truncation, the_reason_says_where_the_input_ends)
{
	size_t len;
	_cleanup_free_ char *buf = load(samples_dir(), "DIS20_1.edi", &len);
	const char *unt = strstr(buf, "UNT+");
	_cleanup_free_ struct result *mid = decode(buf, (size_t)(unt - buf) + 5, NULL);
	expect_error(mid, CODEC_ESYNTAX, "segment 28 UNT, element 1, offset");
	cr_assert(strstr(mid->err.text, "no segment terminator"), "%s", mid->err.text);
	const char *unz = strstr(buf, "UNZ+");
	_cleanup_free_ struct result *nounz = decode(buf, (size_t)(unz - buf), NULL);
	expect_error(nounz, CODEC_ESTRUCTURE, "input ends after segment 28: UNZ missing");
	_cleanup_free_ struct result *nount = decode(buf, (size_t)(unt - buf), NULL);
	expect_error(nount, CODEC_ESTRUCTURE, "message 24681012 (UNH in segment 3) has no UNT");
	_cleanup_free_ struct result *tag = decode(buf, 11, NULL);
	expect_error(tag, CODEC_ESYNTAX, "input ends inside a segment tag");
	_cleanup_free_ struct result *empty = decode(NULL, 0, NULL);
	expect_error(empty, CODEC_ESTRUCTURE, "the input is empty");
	_cleanup_free_ struct result *una = decode_str("UNA:+.? '\n");
	expect_error(una, CODEC_ESTRUCTURE, "no UNB segment");
}

/* ---- character sets ---------------------------------------------------- */

Test(charset, latin1_data_is_read_and_reported)
{
	_cleanup_free_ struct result *res = decode_file("DIS20_1.edi");
	expect_ok(res);
	cr_assert_str_eq(res->env.encoding, "ISO-8859-1");
	size_t len;
	_cleanup_free_ char *buf = load(samples_dir(), "DIS20_1.edi", &len);
	cr_assert(memchr(buf, 0xE6, len), "the sample lost its Latin-1 ae");
}

Test(charset, one_latin1_byte_clears_utf8_looking_pairs)
{
	/* C3 A6 reads as two Latin-1 characters; F8 is a Latin-1 o-slash */
	_cleanup_free_ struct result *mixed = decode_one_with("NA'", "NA+\xC3\xA6 \xF8'");
	expect_ok(mixed);
	_cleanup_free_ struct result *utf8 = decode_one_with("NA'", "NA+\xC3\xA6'");
	expect_error(utf8, CODEC_EENCODING, "UTF-8 encoded");
	cr_assert(strstr(utf8->err.text, "segment 3 BGM, element 5"), "%s", utf8->err.text);
}

Test(charset, bytes_outside_the_character_set_are_refused)
{
	_cleanup_free_ struct result *c1 = decode_one_with("NA'", "NA\x85'");
	expect_error(c1, CODEC_EENCODING, "byte 0x85 is not an ISO-8859-1 character");
	_cleanup_free_ struct result *ctl = decode_one_with("NA'", "N\tA'");
	expect_error(ctl, CODEC_EENCODING, "control byte 0x09");
	static const char with_nul[] = UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'BGM+\0'";
	_cleanup_free_ struct result *zero = decode(with_nul, sizeof(with_nul) - 1, NULL);
	expect_error(zero, CODEC_EENCODING, "control byte 0x00");
	_cleanup_free_ struct result *unoa = decode_str(
		"UNB+UNOA:3+5790000143054:14+5790000143055:14+000124:2130+REF1'"
		"UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'BGM+\xE6'UNT+3+M1'UNZ+1+REF1'");
	expect_error(unoa, CODEC_EENCODING, "outside the UNOA/UNOB character set");
	_cleanup_free_ struct result *ascii = decode_one_with("UNOC", "UNOB");
	expect_ok(ascii);
	cr_assert_str_eq(ascii->env.encoding, "US-ASCII");
}

Test(charset, unsupported_syntax_and_bom_are_named)
{
	_cleanup_free_ struct result *unow = decode_one_with("UNOC:3", "UNOW:4");
	expect_error(unow, CODEC_EENCODING, "syntax identifier UNOW is not supported");
	cr_assert_str_eq(unow->env.letters[0].sender, "5790000143054", "still addressable");
	_cleanup_free_ struct result *bom = decode_str("\xEF\xBB\xBF" ONE_OK);
	expect_error(bom, CODEC_EENCODING, "byte order mark");
	_cleanup_free_ struct result *latin_id = decode_one_with("+REF1+", "+REF\xE6+");
	expect_error(latin_id, CODEC_EFIELD, "0020 interchange control reference is not printable");
}

/* ---- structure: each misplaced segment --------------------------------- */

Test(structure, misplaced_segments_are_named)
{
	static const struct {
		const char *edi, *needle;
	} cases[] = {
		{ MSG_OK("M1") UNZ_OK(1), "segment 1 UNH: the interchange starts with UNH, not UNB" },
		{ UNB_OK "BGM+X'" MSG_OK("M1") UNZ_OK(1), "segment 2 BGM: outside a message" },
		{ UNB_OK UNB_OK MSG_OK("M1") UNZ_OK(1), "segment 2 UNB: a second UNB before UNZ" },
		{ UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'" MSG_OK("M2") UNZ_OK(2),
		  "segment 3 UNH: message M1 (UNH in segment 2) has no UNT before this UNH" },
		{ UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'" UNZ_OK(1),
		  "message M1 (UNH in segment 2) has no UNT before this UNZ" },
		{ UNB_OK "UNG+X'" MSG_OK("M1") "UNE+1'" UNZ_OK(1),
		  "segment 2 UNG: functional groups (UNG/UNE) are not used" },
		{ "UNA:+.? '" UNB_OK "UNA:+.? '" MSG_OK("M1") UNZ_OK(1),
		  "segment 3 UNA: UNA is allowed only at the start" },
		{ UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'UNP+1+1'UNT+3+M1'" UNZ_OK(1),
		  "segment 3 UNP: UNP without a UNO" },
		{ ONE_OK UNB_OK, "a second interchange (UNB at offset" },
		{ ONE_OK "junk", "4 bytes follow UNZ" },
		{ UNB_OK UNZ_OK(0), "the interchange holds no message" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ struct result *res = decode_str(cases[i].edi);
		cr_expect_eq(res->err.code, CODEC_ESTRUCTURE, "case %zu: %s", i, res->err.text);
		cr_expect(strstr(res->err.text, cases[i].needle), "case %zu: '%s' not in '%s'", i,
			  cases[i].needle, res->err.text);
	}
}

Test(structure, syntax_errors_name_segment_and_offset)
{
	_cleanup_free_ struct result *tag = decode_one_with("BGM", "bgm");
	expect_error(tag, CODEC_ESYNTAX, "segment 3, offset");
	_cleanup_free_ struct result *glued = decode_one_with("BGM+", "BGMX+");
	expect_error(glued, CODEC_ESYNTAX, "segment 3 BGM, offset");
	cr_assert(strstr(glued->err.text, "neither an element separator"), "%s", glued->err.text);
	_cleanup_free_ struct result *comp = decode_one_with("BGM+", "BGM:");
	expect_error(comp, CODEC_ESYNTAX, "segment 3 BGM");
}

Test(structure, counts_and_references_must_agree)
{
	_cleanup_free_ struct result *two = decode_str(UNB_OK MSG_OK("M1") MSG_OK("M2") UNZ_OK(2));
	expect_ok(two);
	cr_assert_eq(two->env.nletters, 2);
	cr_assert_str_eq(two->env.letters[1].id, "M2");
	cr_assert_str_eq(two->env.letters[1].receiver, "5790000143055");
	_cleanup_free_ struct result *count = decode_str(UNB_OK MSG_OK("M1") MSG_OK("M2") UNZ_OK(1));
	expect_error(count, CODEC_ESTRUCTURE, "message count 1, but the interchange holds 2 messages");
	_cleanup_free_ struct result *same = decode_str(UNB_OK MSG_OK("M1") MSG_OK("M1") UNZ_OK(2));
	expect_error(same, CODEC_ESTRUCTURE, "segment 5 UNH, element 1: message reference M1 repeats "
					     "message 1's");
	_cleanup_free_ struct result *nan = decode_one_with("UNT+3", "UNT+3x");
	expect_error(nan, CODEC_EFIELD, "0074 number of segments in the message is not a number");
	_cleanup_free_ struct result *big = decode_one_with("UNT+3", "UNT+0000003");
	expect_error(big, CODEC_EFIELD, "longer than 6");
	_cleanup_free_ struct result *noref = decode_one_with("UNZ+1+REF1", "UNZ+1");
	expect_error(noref, CODEC_EFIELD, "0020 interchange control reference is missing");
}

/* ---- UNB and UNH fields ------------------------------------------------ */

Test(fields, unb_fields_are_checked)
{
	static const struct {
		const char *from, *to;
		enum codec_errcode code;
		const char *needle;
	} cases[] = {
		{ "5790000143055:14", "5790000143055:ZZ", CODEC_EFIELD,
		  "element 3: S003/0010 recipient identification code qualifier is ZZ, not 14" },
		{ "5790000143054:14", "5790000143054", CODEC_EFIELD,
		  "element 2: S002/0004 sender identification code qualifier is missing" },
		{ "+5790000143055:", "+:", CODEC_EFIELD, "S003/0010 recipient identification is missing" },
		{ "5790000143055:", "579000014305557900001430555790000143055:", CODEC_EFIELD,
		  "recipient identification is 39 characters, longer than 35" },
		{ "000124:2130", "001324:2130", CODEC_EFIELD, "element 4: S004 is not a valid" },
		{ "000124:2130", "000124:2460", CODEC_EFIELD, "S004 is not a valid" },
		{ "000124:2130", "0001:2130", CODEC_EFIELD, "S004 is not a valid" },
		{ "+REF1+", "+REF1234567890AB+", CODEC_EFIELD,
		  "element 5: 0020 interchange control reference is 15 characters, longer than 14" },
		{ "++++0'", "++++2'", CODEC_EFIELD, "element 9: 0031 acknowledgement request" },
		{ "UNOC:3", "UNOC:5", CODEC_EFIELD, "element 1: syntax version 5 is not 1-4" },
		{ "UNOC:3", "UNOC", CODEC_EFIELD, "S001/0002 syntax version is missing" },
		{ "++++0'", "++++0+++++'", CODEC_ESTRUCTURE, "14 data elements, UNB has at most 11" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ struct result *res = decode_one_with(cases[i].from, cases[i].to);
		cr_expect_eq(res->err.code, cases[i].code, "case %zu: %s", i, res->err.text);
		cr_expect(strstr(res->err.text, cases[i].needle), "case %zu: '%s' not in '%s'", i,
			  cases[i].needle, res->err.text);
		cr_expect(strstr(res->err.text, "segment 1 UNB"), "case %zu: %s", i, res->err.text);
	}
}

Test(fields, unb_date_ack_and_syntax_4)
{
	_cleanup_free_ struct result *ack = decode_one_with("++++0'", "++++1'");
	expect_ok(ack);
	cr_assert(ack->env.ack_requested);
	_cleanup_free_ struct result *none = decode_one_with("++++0'", "'");
	expect_ok(none);
	cr_assert_not(none->env.ack_requested);
	_cleanup_free_ struct result *y68 = decode_one_with("000124", "680229");
	expect_ok(y68);
	cr_assert_str_eq(y68->env.sent, "2068-02-29T21:30");
	_cleanup_free_ struct result *y69 = decode_one_with("000124", "691231");
	cr_assert_str_eq(y69->env.sent, "1969-12-31T21:30");
	_cleanup_free_ struct result *v4 = decode_one_with("UNOC:3+5790000143054:14+5790000143055:14+000124",
							   "UNOC:4+5790000143054:14+5790000143055:14+20260301");
	expect_ok(v4);
	cr_assert_str_eq(v4->env.sent, "2026-03-01T21:30");
}

Test(fields, unh_type_and_version_are_checked)
{
	static const struct {
		const char *to;
		enum codec_errcode code;
		const char *needle;
	} cases[] = {
		{ "MEDREF:D:93A:UN:H0130R+REF01", CODEC_ETYPE,
		  "element 2: S009/0065 message type is not one of MEDDIS, MEDBIN, CONTRL" },
		{ "MEDDIS:D:93A:UN:D1730C+DIS20", CODEC_EVERSION,
		  "element 2: S009/0057 version D1730C does not belong to DIS20" },
		{ "MEDDIS:D:93A:UN:C2030C+DIS20", CODEC_EVERSION, "version C2030C does not belong" },
		{ "MEDDIS:D:93A:UN:D2030+DIS20", CODEC_EVERSION, "version D2030 does not belong" },
		{ "MEDDIS:D:96A:UN:D2030C+DIS20", CODEC_EVERSION, "S009 directory" },
		{ "MEDDIS:D:93A:UN:D2030C+CTL01", CODEC_ETYPE,
		  "element 3: letter type CTL01 does not belong to message type MEDDIS" },
		{ "CONTRL:D:93A:ZZ:C0430Q+CTL04", CODEC_ETYPE, "CTL04 is not a MedCom receipt" },
		{ "MEDDIS:D:93A:UN:D2030C+DIS2", CODEC_ETYPE, "three capitals and two digits" },
		{ "MEDDIS:D:93A:UN:D2030CCC+DIS20", CODEC_EFIELD, "longer than 7" },
		{ "MEDDIS:D:93A:UN+DIS20", CODEC_EFIELD, "S009/0057 association assigned code (version) is missing" },
		{ ":D:93A:UN:D2030C+DIS20", CODEC_EFIELD, "S009/0065 message type is missing" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ struct result *res =
			decode_one_with("MEDDIS:D:93A:UN:D2030C+DIS20", cases[i].to);
		cr_expect_eq(res->err.code, cases[i].code, "case %zu: %s", i, res->err.text);
		cr_expect(strstr(res->err.text, cases[i].needle), "case %zu: '%s' not in '%s'", i,
			  cases[i].needle, res->err.text);
		cr_expect(strstr(res->err.text, "segment 2 UNH"), "case %zu: %s", i, res->err.text);
	}
	_cleanup_free_ struct result *noref = decode_one_with("UNH+M1", "UNH+");
	expect_error(noref, CODEC_EFIELD, "element 1: 0062 message reference number is missing");
	_cleanup_free_ struct result *derived = decode_one_with("D2030C+DIS20'", "D2030C'");
	expect_ok(derived);
	cr_assert_str_eq(derived->env.letters[0].type, "DIS20");
	_cleanup_free_ struct result *later = decode_one_with("D2030C", "D2034C");
	expect_ok(later);
	cr_assert_str_eq(later->env.letters[0].version, "D2034C");
}

Test(fields, mixed_interchange_is_not_a_receipt)
{
	_cleanup_free_ struct result *mixed = decode_str(
		UNB_OK "UNH+C1+CONTRL:D:93A:ZZ:C0330Q+CTL03'UCI+X+A:14+B:14+7'UNT+3+C1'"
		MSG_OK("M1") UNZ_OK(2));
	expect_ok(mixed);
	cr_assert_not(mixed->env.is_receipt);
	cr_assert_str_eq(mixed->env.letters[0].type, "CTL03");
	cr_assert_str_eq(mixed->env.letters[1].type, "DIS20");
}

/* ---- the UNO binary object --------------------------------------------- */

/* A MEDBIN message carrying `n` raw bytes of `fill` between UNO and UNP. */
static struct bytes bin_message(size_t n, const char *fill, size_t declared, const char *unp)
{
	struct bytes b = { 0 };
	adds(&b, UNB_OK "UNH+B1+MEDBIN:D:93A:UN:B0131X+BIN01'BGM+OBJ++9+NA'");
	addf(&b, "UNO+1+AID:X+OBJ:IMG:TIF:91+%zu:14:1:A'", declared);
	for (size_t i = 0; i < n; i++)
		add(&b, fill + i % strlen(fill), 1);
	adds(&b, unp);
	adds(&b, "UNT+5+B1'" UNZ_OK(1));
	return b;
}

Test(binary, uno_bytes_are_skipped_unread)
{
	/* raw bytes that look like separators, releases, NUL and C1 */
	static const char raw[] = "'+:?\x01\x85\xff UNT+9+X'";
	struct bytes b = bin_message(1000, raw, 1000, "UNP+1000+1'");
	_cleanup_free_ struct result *res = decode(b.p, b.len, NULL);
	expect_ok(res);
	cr_assert_str_eq(res->env.letters[0].type, "BIN01");
	cr_assert_str_eq(res->env.letters[0].version, "B0131X");
	free(b.p);
	struct bytes size = bin_message(1000, "x", 1000, "UNP+999+1'");
	_cleanup_free_ struct result *bad = decode(size.p, size.len, NULL);
	expect_error(bad, CODEC_ESTRUCTURE, "UNP, element 1: object size 999 differs from UNO's 1000");
	free(size.p);
	struct bytes ref = bin_message(10, "x", 10, "UNP+10+2'");
	_cleanup_free_ struct result *badref = decode(ref.p, ref.len, NULL);
	expect_error(badref, CODEC_ESTRUCTURE, "object reference differs from UNO's");
	free(ref.p);
	struct bytes past = bin_message(10, "x", 99999, "UNP+10+1'");
	_cleanup_free_ struct result *over = decode(past.p, past.len, NULL);
	expect_error(over, CODEC_ESTRUCTURE, "binary object of 99999 bytes runs past the end");
	free(past.p);
	struct bytes nounp = bin_message(10, "x", 10, "");
	_cleanup_free_ struct result *missing = decode(nounp.p, nounp.len, NULL);
	expect_error(missing, CODEC_ESTRUCTURE, "is not followed by UNP");
	free(nounp.p);
}

/* ---- limits and linear time -------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

Test(limits, size_limit_is_the_callers)
{
	size_t len;
	_cleanup_free_ char *buf = load(samples_dir(), "DIS20_1.edi", &len);
	struct codec_limits exact = { .max_bytes = len }, below = { .max_bytes = len - 1 };
	_cleanup_free_ struct result *ok = decode(buf, len, &exact);
	expect_ok(ok);
	_cleanup_free_ struct result *big = decode(buf, len, &below);
	expect_error(big, CODEC_ETOOBIG, "limit");
	cr_assert_str_empty(big->env.envelope_id, "nothing is read past the limit");
}

Test(limits, element_length)
{
	char at[EDIFACT_MAX_COMPONENT + 1], over[EDIFACT_MAX_COMPONENT + 2];
	memset(at, 'a', sizeof(at) - 1);
	at[sizeof(at) - 1] = '\0';
	memset(over, 'a', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';
	_cleanup_free_ char *to_at = xasprintf("NA+%s'", at), *to_over = xasprintf("NA+%s'", over);
	_cleanup_free_ struct result *ok = decode_one_with("NA'", to_at);
	expect_ok(ok);
	_cleanup_free_ struct result *bad = decode_one_with("NA'", to_over);
	expect_error(bad, CODEC_EFIELD, "segment 3 BGM, element 5");
	cr_assert(strstr(bad->err.text, "longer than 512 characters"), "%s", bad->err.text);
	/* release characters and folding do not count */
	struct bytes rel = { 0 };
	for (size_t i = 0; i < EDIFACT_MAX_COMPONENT; i++)
		adds(&rel, i % 2 ? "?+" : "\r\n?:");
	_cleanup_free_ char *to_rel = xasprintf("NA+%s'", rel.p);
	_cleanup_free_ struct result *released = decode_one_with("NA'", to_rel);
	expect_ok(released);
	free(rel.p);
}

/* One message of `body` empty FTX segments, counts right. */
static struct bytes many_segments(size_t body)
{
	struct bytes b = { 0 };
	adds(&b, UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'");
	for (size_t i = 0; i < body; i++)
		adds(&b, "FTX'");
	addf(&b, "UNT+%zu+M1'" UNZ_OK(1), body + 2);
	return b;
}

Test(limits, segment_count)
{
	struct bytes at = many_segments(EDIFACT_MAX_SEGMENTS - 4); /* UNB UNH ... UNT UNZ */
	_cleanup_free_ struct result *ok = decode(at.p, at.len, NULL);
	expect_ok(ok);
	struct bytes more = many_segments(EDIFACT_MAX_SEGMENTS - 3);
	_cleanup_free_ struct result *over = decode(more.p, more.len, NULL);
	expect_error(over, CODEC_ESTRUCTURE, "more than 1000000 segments");
	free(at.p);
	free(more.p);
}

Test(limits, at_most_codec_max_letters)
{
	struct bytes b = { 0 };
	adds(&b, UNB_OK);
	for (int i = 0; i < CODEC_MAX_LETTERS; i++)
		addf(&b, "UNH+M%d+MEDDIS:D:93A:UN:D2030C+DIS20'UNT+2+M%d'", i, i);
	addf(&b, UNZ_OK(%d), CODEC_MAX_LETTERS);
	_cleanup_free_ struct result *ok = decode(b.p, b.len, NULL);
	expect_ok(ok);
	cr_assert_eq(ok->env.nletters, CODEC_MAX_LETTERS);
	size_t mlen;
	_cleanup_free_ char *more =
		replace(b.p, b.len, "UNZ", "UNH+MX+MEDDIS:D:93A:UN:D2030C+DIS20'UNT+2+MX'UNZ", &mlen);
	_cleanup_free_ struct result *over = decode(more, mlen, NULL);
	expect_error(over, CODEC_ESTRUCTURE, "more than 128 messages");
	free(b.p);
}

Test(limits, sixteen_mebibytes_in_linear_time)
{
	struct bytes big = { 0 }, seps = { 0 }, lines = { 0 };
	char text[401];
	memset(text, 'x', 400);
	text[400] = '\0';
	adds(&big, UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'");
	size_t n = 0;
	while (big.len < CODEC_DEFAULT_MAX_BYTES - 1024) {
		addf(&big, "FTX+NC+P00++%s:%.60s'\r\n", text, text);
		n++;
	}
	addf(&big, "UNT+%zu+M1'" UNZ_OK(1), n + 2);
	/* one segment of nothing but element separators; one of line breaks */
	adds(&seps, UNB_OK "UNH+M1+MEDDIS:D:93A:UN:D2030C+DIS20'FTX");
	while (seps.len < CODEC_DEFAULT_MAX_BYTES - 64)
		adds(&seps, "++++++++++++++++::::::::::::::::");
	adds(&seps, "'UNT+3+M1'" UNZ_OK(1));
	adds(&lines, UNB_OK);
	while (lines.len < CODEC_DEFAULT_MAX_BYTES - 256)
		adds(&lines, "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n");
	adds(&lines, MSG_OK("M1") UNZ_OK(1));
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	_cleanup_free_ struct result *a = decode(big.p, big.len, NULL);
	_cleanup_free_ struct result *b = decode(seps.p, seps.len, NULL);
	_cleanup_free_ struct result *c = decode(lines.p, lines.len, NULL);
	double secs = seconds_since(&t0);
	expect_ok(a);
	expect_ok(b);
	expect_ok(c);
	cr_assert_lt(secs, 3.0, "48 MiB took %.2f s", secs);
	free(big.p);
	free(seps.p);
	free(lines.p);
}

/* ---- partial fill on error --------------------------------------------- */

Test(partial, a_whole_unb_addresses_the_refusal)
{
	_cleanup_free_ struct result *res = decode_file("DIS20_ERROR_UNT0.edi");
	cr_assert_str_eq(res->env.envelope_id, "123456789");
	cr_assert_str_eq(res->env.letters[0].sender, "5790000143054");
	cr_assert_str_eq(res->env.letters[0].receiver, "5790000143055");
	cr_assert_str_empty(res->env.letters[0].id);
	cr_assert_str_empty(res->env.sent);
	/* a bad date does not hide the address */
	_cleanup_free_ struct result *date = decode_one_with("000124:2130", "009924:2130");
	expect_error(date, CODEC_EFIELD, NULL);
	cr_assert_str_eq(date->env.envelope_id, "REF1");
	cr_assert_str_eq(date->env.letters[0].sender, "5790000143054");
}

Test(partial, a_cut_unb_gives_nothing)
{
	size_t len;
	_cleanup_free_ char *buf = load(samples_dir(), "DIS20_1.edi", &len);
	const char *ref = strstr(buf, "+123456789");
	_cleanup_free_ struct result *cut = decode(buf, (size_t)(ref - buf) + 6, NULL);
	cr_assert_str_empty(cut->env.envelope_id, "a cut reference must not be used");
	cr_assert_str_empty(cut->env.letters[0].sender);
}

Test(partial, a_broken_contrl_stays_a_receipt)
{
	_cleanup_free_ struct result *res = decode_sample_with("CTL01_1.edi", "UNT+6", "UNT+7");
	expect_error(res, CODEC_ESTRUCTURE, "segment count 7");
	cr_assert(res->env.is_receipt);
	_cleanup_free_ struct result *ver = decode_sample_with("CTL03_1.edi", "C0330Q", "C0130Q");
	expect_error(ver, CODEC_EVERSION, NULL);
	cr_assert(ver->env.is_receipt);
	_cleanup_free_ struct result *dis = decode_file("DIS20_ERROR_UNZ1.edi");
	cr_assert_not(dis->env.is_receipt);
}

/* ---- sniffing and the registry ----------------------------------------- */

static bool sniff_str(const char *s)
{
	return codec_edifact.sniff((const uint8_t *)s, strlen(s));
}

Test(sniff, every_sample_is_recognised_and_nothing_else)
{
	size_t n;
	_cleanup_names_ char **names = testutil_list_files(samples_dir(), &n);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ uint8_t *buf = load(samples_dir(), names[i], &len);
		cr_expect(codec_edifact.sniff(buf, len), "%s", names[i]);
		cr_expect_eq(codec_sniff(buf, len), &codec_edifact, "%s", names[i]);
		cr_expect_not(codec_oioxml.sniff(buf, len), "%s", names[i]);
	}
	cr_assert(sniff_str("UNA:+.? '"));
	cr_assert(sniff_str("UNB+UNOC:3"));
	cr_assert(sniff_str("\r\n \tUNB+"));
	cr_assert(sniff_str("\xEF\xBB\xBFUNA"), "a BOM reaches decode, which names it");
	cr_assert_not(sniff_str("UN"));
	cr_assert_not(sniff_str("UNH+1"));
	cr_assert_not(sniff_str("<Emessage>"));
	cr_assert_not(sniff_str("ISA*00*"));
	cr_assert_not(codec_edifact.sniff(NULL, 0));
	size_t len;
	_cleanup_free_ uint8_t *xml = load("../shared/medcom-samples/oioxml", "DIS20_1.xml", &len);
	cr_assert_not(codec_edifact.sniff(xml, len));
}

Test(registry, find_and_decode_any)
{
	cr_assert_eq(codec_find("edifact"), &codec_edifact);
	cr_assert_str_eq(codec_edifact.ext, "edi");
	size_t len;
	_cleanup_free_ uint8_t *buf = load(samples_dir(), "DIS20_1.edi", &len);
	struct codec_envelope *env = xmalloc(sizeof(*env));
	struct codec_error err;
	cr_assert_eq(codec_decode_any(buf, len, NULL, env, &err), 0, "%s", err.text);
	cr_assert_eq(env->codec, &codec_edifact);
	cr_assert_str_eq(env->letters[0].type, "DIS20");
	_cleanup_free_ uint8_t *bad = load(samples_dir(), "DIS20_ERROR_UNZ0.edi", &len);
	cr_assert_eq(codec_decode_any(bad, len, NULL, env, &err), -1);
	cr_assert_eq(err.code, CODEC_ESTRUCTURE, "an EDIFACT error must reach the codec: %s",
		     err.text);
	free(env);
}

/* ---- CONTRL receipts --------------------------------------------------- */

static const struct tm when = { .tm_year = 124, .tm_mon = 2, .tm_mday = 1, .tm_hour = 8,
				.tm_min = 15 };

static void fixed_id(void *ctx, char id[CODEC_ID_MAX])
{
	int *calls = ctx;
	(*calls)++;
	str_copy(id, "EB0123456789ab", CODEC_ID_MAX);
}

static struct codec_refusal_params refusal(enum codec_refusal why, const char *text, int *calls)
{
	return (struct codec_refusal_params){ .reason = why, .text = text,
					      .broker_id = "EDIBROKER", .now = when,
					      .fresh_id = fixed_id, .ctx = calls };
}

static const char unknown_text[] = "Modtagerlokationsnummer har ikke kunnet identificeres.";
static const char reject_text[] = "EDI-kuverten kunne ikke behandles af EDI-broker.\n"
				  "The envelope could not be processed by the EDI broker.";

/* Decodes a receipt and checks it answers `orig`. */
static struct result *decode_receipt(const struct codec_receipt *rc,
				     const struct codec_envelope *orig, const char *type)
{
	struct result *back = decode(rc->body, rc->size, NULL);
	expect_ok(back);
	cr_assert(back->env.is_receipt);
	cr_assert_eq(back->env.nletters, 1);
	cr_assert_not(back->env.ack_requested, "receipts ask for no receipt");
	cr_assert_str_eq(back->env.letters[0].type, type);
	cr_assert_str_eq(back->env.letters[0].sender, "EDIBROKER");
	cr_assert_str_eq(back->env.letters[0].receiver, orig->letters[0].sender);
	cr_assert_str_eq(back->env.envelope_id, rc->envelope_id);
	cr_assert_str_eq(back->env.sent, "2024-03-01T08:15");
	cr_assert_str_eq(rc->type, type);
	cr_assert_str_eq(rc->format, "edifact");
	cr_assert_str_eq(rc->ext, "edi");
	cr_assert_str_eq(rc->receiver, orig->letters[0].sender);
	cr_assert_str_eq(rc->refers, orig->envelope_id);
	cr_assert_str_eq(rc->key.sender, "EDIBROKER");
	cr_assert_str_eq(rc->key.id, rc->envelope_id);
	return back;
}

/* The receipt refusing `sample` (decoded, possibly partly), compared byte
 * for byte with GOLDEN_CTL/golden. */
static void check_golden_receipt(const char *sample, enum codec_refusal why, const char *text,
				 const char *golden, const char *type)
{
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_file(sample);
	struct codec_refusal_params p = refusal(why, text, &calls);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0, "%s", sample);
	cr_assert_eq(calls, 1, "one fresh id per receipt");
	_cleanup_free_ char *path = xasprintf("%s/%s", GOLDEN_CTL, golden);
	size_t wlen;
	_cleanup_free_ char *want = testutil_read_file(path, &wlen);
	cr_assert_eq(rc.size, wlen, "%s: %zu bytes, golden %zu:\n%.*s", golden, rc.size, wlen,
		     (int)rc.size, (char *)rc.body);
	cr_assert(memcmp(rc.body, want, wlen) == 0, "%s differs:\n%.*s", golden, (int)rc.size,
		  (char *)rc.body);
	free(decode_receipt(&rc, &orig->env, type));
	free(rc.body);
}

Test(receipt, golden_receipts)
{
	check_golden_receipt("DIS20_1.edi", CODEC_REFUSE_UNKNOWN_RECEIVER, unknown_text,
			     "DIS20_1_unknown_receiver.edi", "CTL01");
	check_golden_receipt("DIS91_1.edi", CODEC_REFUSE_UNKNOWN_RECEIVER, unknown_text,
			     "DIS91_1_unknown_receiver.edi", "CTL01");
	check_golden_receipt("DIS20_ERROR_UNT0.edi", CODEC_REFUSE_SYNTAX, reject_text,
			     "DIS20_ERROR_UNT0_syntax.edi", "CTL02");
	check_golden_receipt("DIS20_ERROR_ENC0.edi", CODEC_REFUSE_SYNTAX, NULL,
			     "DIS20_ERROR_ENC0_no_text.edi", "CTL02");
}

Test(receipt, every_refusal_has_its_words)
{
	static const struct {
		enum codec_refusal why;
		const char *type, *ftx;
	} want[] = {
		{ CODEC_REFUSE_UNSPECIFIED, "CTL02", "FTX+NC+P00" },
		{ CODEC_REFUSE_UNKNOWN_RECEIVER, "CTL01", "FTX+LOK+P00" },
		{ CODEC_REFUSE_RECEIVER_ID, "CTL01", "FTX+MID+P00" },
		{ CODEC_REFUSE_SYNTAX, "CTL02", "FTX+SYN+P00" },
		{ CODEC_REFUSE_VERSION, "CTL02", "FTX+VER+P00" },
		{ CODEC_REFUSE_TYPE, "CTL01", "FTX+VER+P00" },
	};
	_Static_assert(ARRAY_SIZE(want) == CODEC_REFUSE_LAST + 1, "every refusal");
	_cleanup_free_ struct result *orig = decode_file("DIS20_1.edi");
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		int calls = 0;
		struct codec_refusal_params p = refusal(want[i].why, "x", &calls);
		struct codec_receipt rc;
		cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
		cr_expect(memmem(rc.body, rc.size, want[i].ftx, strlen(want[i].ftx)), "%s",
			  want[i].ftx);
		_cleanup_free_ char *unh = xasprintf("CONTRL:D:93A:ZZ:C%.2s30Q+%s'", want[i].type + 3,
						     want[i].type);
		cr_expect(memmem(rc.body, rc.size, unh, strlen(unh)), "%s", unh);
		free(decode_receipt(&rc, &orig->env, want[i].type));
		free(rc.body);
	}
	const char *type, *q;
	cr_assert_not(ctl_refusal_words((enum codec_refusal)99, &type, &q));
}

Test(receipt, every_letter_is_echoed)
{
	int calls = 0;
	_cleanup_free_ struct result *orig =
		decode_str(UNB_OK MSG_OK("M1") MSG_OK("M2") "UNH+M3+MEDDIS:D:93A:UN:D9134L+DIS91'"
			   "UNT+2+M3'" UNZ_OK(3));
	expect_ok(orig);
	struct codec_refusal_params p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, "x", &calls);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	static const char *const ucm[] = { "UCM+M1+MEDDIS:D:93A:UN:D2030C+4'",
					   "UCM+M2+MEDDIS:D:93A:UN:D2030C+4'",
					   "UCM+M3+MEDDIS:D:93A:UN:D9134L+4'",
					   "UCI+REF1+5790000143054:14+5790000143055:14+4'",
					   "UNT+7+EB0123456789ab'" };
	for (size_t i = 0; i < ARRAY_SIZE(ucm); i++)
		cr_expect(memmem(rc.body, rc.size, ucm[i], strlen(ucm[i])), "%s", ucm[i]);
	free(decode_receipt(&rc, &orig->env, "CTL01"));
	free(rc.body);
}

Test(receipt, text_is_latin1_escaped_wrapped_and_cut)
{
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_file("DIS20_1.edi");
	struct codec_receipt rc;
	/* UTF-8 ae/oe/aa become Latin-1 bytes; service characters are released */
	struct codec_refusal_params p =
		refusal(CODEC_REFUSE_SYNTAX, "Fejl: \xC3\xA6\xC3\xB8\xC3\xA5 a+b 'c' ?\r\nlinje 2", &calls);
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	static const char ftx[] = "FTX+SYN+P00++Fejl?: \xE6\xF8\xE5 a?+b ?'c?' ??:linje 2'";
	cr_assert(memmem(rc.body, rc.size, ftx, sizeof(ftx) - 1), "%.*s", (int)rc.size,
		  (char *)rc.body);
	free(decode_receipt(&rc, &orig->env, "CTL02"));
	free(rc.body);
	/* 75 characters wrap at 70; a sixth line is left out */
	char line[76];
	memset(line, 'y', 75);
	line[75] = '\0';
	_cleanup_free_ char *long_text = xasprintf("%s\n1\n2\n3\n4\n5\n", line);
	p = refusal(CODEC_REFUSE_SYNTAX, long_text, &calls);
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	_cleanup_free_ char *wrapped = xasprintf("++%.70s:yyyyy:1:2:3'", line);
	cr_assert(memmem(rc.body, rc.size, wrapped, strlen(wrapped)), "%.*s", (int)rc.size,
		  (char *)rc.body);
	free(decode_receipt(&rc, &orig->env, "CTL02"));
	free(rc.body);
}

Test(receipt, refused_parameters_leave_out_untouched)
{
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_file("DIS20_1.edi");
	static const char *const bad_text[] = { "euro \xE2\x82\xAC", "tab\there", "bad \xC3",
						"c1 \xC2\x85" };
	struct codec_receipt rc, before;
	memset(&rc, 0x5A, sizeof(rc));
	before = rc;
	for (size_t i = 0; i < ARRAY_SIZE(bad_text); i++) {
		struct codec_refusal_params p = refusal(CODEC_REFUSE_SYNTAX, bad_text[i], &calls);
		cr_expect_eq(codec_refuse(&orig->env, &p, &rc), -EINVAL, "%s", bad_text[i]);
	}
	struct codec_refusal_params p = refusal(CODEC_REFUSE_SYNTAX, "x", &calls);
	p.broker_id = "THIS-BROKER-ID-IS-LONGER-THAN-35-CHARACTERS";
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), -EINVAL);
	p = refusal(CODEC_REFUSE_SYNTAX, "x", &calls);
	p.fresh_id = NULL;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), -EINVAL);
	p = refusal((enum codec_refusal)42, "x", &calls);
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), -EINVAL);
	/* nothing to address the receipt to */
	p = refusal(CODEC_REFUSE_SYNTAX, "x", &calls);
	_cleanup_free_ struct result *cut = decode_str("UNB+UNOC:3+5790000143054");
	cr_assert_eq(codec_refuse(&cut->env, &p, &rc), -EINVAL);
	cr_assert(memcmp(&rc, &before, sizeof(rc)) == 0, "out was written on failure");
}

Test(receipt, receipts_are_never_answered)
{
	static const char *const files[] = { "CTL01_1.edi", "CTL02_1.edi", "CTL03_1.edi" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		int calls = 0;
		_cleanup_free_ struct result *orig = decode_file(files[i]);
		struct codec_refusal_params p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, "x", &calls);
		struct codec_receipt rc;
		cr_expect_eq(codec_refuse(&orig->env, &p, &rc), -ENOTSUP, "%s", files[i]);
		cr_expect_eq(calls, 0);
	}
	/* our own receipt, read back, is not answered either */
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_file("DIS20_1.edi");
	struct codec_refusal_params p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, "x", &calls);
	struct codec_receipt rc, rc2;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	_cleanup_free_ struct result *back = decode(rc.body, rc.size, NULL);
	cr_assert_eq(codec_refuse(&back->env, &p, &rc2), -ENOTSUP);
	char *body;
	size_t len;
	struct ctl_params cp = { "CTL01", "EDIBROKER", "I", "M", "LOK", NULL, &when };
	cr_assert_eq(ctl_build(&back->env, &cp, &body, &len), -EINVAL);
	free(rc.body);
}

Test(receipt, odd_ids_round_trip)
{
	/* a broker id and references holding service characters */
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_str(
		"UNB+UNOC:3+A?+B?:1:14+5790000143055:14+000124:2130+R?'1'"
		"UNH+M?+1+MEDDIS:D:93A:UN:D2030C+DIS20'UNT+2+M?+1'UNZ+1+R?'1'");
	expect_ok(orig);
	cr_assert_str_eq(orig->env.letters[0].sender, "A+B:1");
	struct codec_refusal_params p = refusal(CODEC_REFUSE_UNKNOWN_RECEIVER, NULL, &calls);
	p.broker_id = "BRO?KER";
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	cr_assert(memmem(rc.body, rc.size, "UCI+R?'1+A?+B?:1:14+", 20), "%.*s", (int)rc.size,
		  (char *)rc.body);
	cr_assert(memmem(rc.body, rc.size, "UCM+M?+1+", 9));
	cr_assert(memmem(rc.body, rc.size, "FTX+LOK+P00'", 12), "no text, no C108");
	_cleanup_free_ struct result *back = decode(rc.body, rc.size, NULL);
	expect_ok(back);
	cr_assert_str_eq(back->env.letters[0].sender, "BRO?KER");
	cr_assert_str_eq(back->env.letters[0].receiver, "A+B:1");
	free(rc.body);
}

Test(receipt, a_partly_read_interchange_without_recipient)
{
	/* UNB read whole but its recipient is empty: the broker stands in */
	int calls = 0;
	_cleanup_free_ struct result *orig = decode_one_with("+5790000143055:14+", "++");
	expect_error(orig, CODEC_EFIELD, "recipient identification is missing");
	cr_assert_str_eq(orig->env.letters[0].sender, "5790000143054");
	struct codec_refusal_params p = refusal(CODEC_REFUSE_SYNTAX, "x", &calls);
	struct codec_receipt rc;
	cr_assert_eq(codec_refuse(&orig->env, &p, &rc), 0);
	static const char uci[] = "UCI+REF1+5790000143054:14+EDIBROKER:14+4'";
	cr_assert(memmem(rc.body, rc.size, uci, sizeof(uci) - 1), "%.*s", (int)rc.size,
		  (char *)rc.body);
	cr_assert_null(memmem(rc.body, rc.size, "UCM", 3), "no letter was read");
	free(decode_receipt(&rc, &orig->env, "CTL02"));
	free(rc.body);
}

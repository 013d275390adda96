/*
 * test_xsd.c - OIOXML schema validation: the schemas the repository
 * carries (data/xsd/oioxml), loading them as a set by namespace (xsd.h,
 * xmlsafe_schema_*), and the verdict a decode reports in env->schema.
 *
 * The committed copy must be MedCom's files byte for byte (compared with
 * the tarballs in ../shared/medcom-samples/schemas, or $EDIBROKER_SCHEMAS);
 * every OIOXML sample must validate, or have no schema (the municipality
 * namespaces); an invalid one names line, element and what is wrong, and
 * never the value. Run from the repository root.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "codecs/codec.h"
#include "codecs/oioxml.h"
#include "codecs/xsd.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#define XSD_DIR "data/xsd/oioxml"
#define NS(date) "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/" date "/"

static const char *samples(void)
{
	const char *d = getenv("EDIBROKER_SAMPLES_ROOT");
	return str_empty(d) ? "../shared/medcom-samples" : d;
}

static struct codec_schemas *load_set(void)
{
	char err[512] = "";
	struct codec_schemas *s = codec_schemas_load(XSD_DIR, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	return s;
}

struct result {
	int r;
	struct codec_envelope env;
	struct codec_error err;
};

static struct result *decode_with(const struct codec_schemas *s, const void *buf, size_t len)
{
	struct result *res = xcalloc(1, sizeof(*res));
	struct codec_limits lim = { .schemas = s };
	res->r = codec_decode_any(buf, len, &lim, &res->env, &res->err);
	return res;
}

static struct result *decode_sample(const struct codec_schemas *s, const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", samples(), name);
	size_t len;
	_cleanup_free_ uint8_t *buf = testutil_read_file(path, &len);
	return decode_with(s, buf, len);
}

/* DIS20_1.xml with `from` replaced by `to`. */
static struct result *decode_dis20_edited(const struct codec_schemas *s, const char *from,
					  const char *to)
{
	_cleanup_free_ char *path = xasprintf("%s/oioxml/DIS20_1.xml", samples());
	_cleanup_free_ char *x = testutil_read_file(path, NULL);
	char *at = strstr(x, from);
	cr_assert_not_null(at, "%s not in DIS20_1.xml", from);
	_cleanup_free_ char *m = xasprintf("%.*s%s%s", (int)(at - x), x, to, at + strlen(from));
	return decode_with(s, m, strlen(m));
}

/* ---- (1) the copy in the repository ---------------------------------------- */

Test(copy, is_medcoms_files_byte_for_byte)
{
	const char *env = getenv("EDIBROKER_SCHEMAS");
	const char *shared = str_empty(env) ? "../shared/medcom-samples/schemas" : env;
	char dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_xsd.XXXXXX");
	static const char *const releases[] = { "2005-08-07", "2006-07-01", "2007-02-01" };
	for (size_t i = 0; i < ARRAY_SIZE(releases); i++) {
		_cleanup_free_ char *cmd = xasprintf("tar -xzf '%s/oioxml-xsd_%s.tar.gz' -C '%s'",
						     shared, releases[i], dir);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
	}
	/* all but Visual SourceSafe's vssver.scc files, and our README */
	_cleanup_free_ char *cmd = xasprintf("diff -r -x vssver.scc -x README.md '%s/data/xml/Schemas' "
					     "'" XSD_DIR "' >&2",
					     dir);
	int st = system(cmd);
	testutil_rm_rf(dir);
	cr_assert_eq(st, 0, "data/xsd/oioxml differs from MedCom's schemas");
}

Test(copy, names_its_source_and_licence)
{
	_cleanup_free_ char *readme = testutil_read_file(XSD_DIR "/README.md", NULL);
	cr_assert(strstr(readme, "glasdam/edifact_converter"));
	cr_assert(strstr(readme, "cf9d20e052f3fdda36850b5825f193d9417aada7"));
	cr_assert(strstr(readme, "The MIT License"));
	cr_assert(strstr(readme, "Copyright (c) 2014 MedCom"));
}

/* ---- (2) loading ------------------------------------------------------------ */

Test(load, one_schema_per_release_by_namespace)
{
	struct codec_schemas *s = load_set();
	cr_assert_eq(codec_schemas_count(s), 3);
	cr_assert_str_eq(codec_schemas_ns(s, 0), NS("2005/08/07"));
	cr_assert_str_eq(codec_schemas_ns(s, 1), NS("2006/07/01"));
	cr_assert_str_eq(codec_schemas_ns(s, 2), NS("2007/02/01"));
	cr_assert_not_null(codec_schemas_find(s, NS("2006/07/01")));
	cr_assert_null(codec_schemas_find(s, "urn:oio:medcom:municipality:1.0.3"));
	cr_assert_eq(codec_schemas_ref(s), s);
	codec_schemas_unref(s);
	cr_assert_eq(codec_schemas_count(s), 3, "still held by its second reference");
	codec_schemas_unref(s);
}

Test(load, a_folder_that_is_missing_empty_or_broken_is_an_error)
{
	char err[512] = "", dir[64];
	cr_assert_null(codec_schemas_load("/nonexistent/xsd", err, sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/xsd") && strstr(err, "No such file"), "%s", err);
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_xsd.XXXXXX");
	cr_assert_null(codec_schemas_load(dir, err, sizeof(err)));
	cr_assert(strstr(err, "no YYYY/MM/DD/EMessage.xsd"), "%s", err);
	_cleanup_free_ char *day = xasprintf("%s/2020/01/02", dir);
	_cleanup_free_ char *cmd = xasprintf("mkdir -p '%s'", day);
	cr_assert_eq(system(cmd), 0);
	_cleanup_free_ char *bad = xasprintf("%s/EMessage.xsd", day);
	testutil_write_file(bad, "<xs:schema", 10);
	cr_assert_null(codec_schemas_load(dir, err, sizeof(err)));
	cr_assert(strstr(err, bad), "names the file: %s", err);
	testutil_rm_rf(dir);
}

Test(load, two_releases_of_one_namespace_are_an_error)
{
	char err[512] = "", dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_xsd.XXXXXX");
	_cleanup_free_ char *cmd = xasprintf("mkdir -p '%s/2005/08' && cp -r " XSD_DIR
					     "/2005/08/07 '%s/2005/08/07' && cp -r " XSD_DIR
					     "/2005/08/07 '%s/2005/08/08'",
					     dir, dir, dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_null(codec_schemas_load(dir, err, sizeof(err)));
	cr_assert(strstr(err, "a second schema for namespace " NS("2005/08/07")), "%s", err);
	testutil_rm_rf(dir);
}

Test(load, nothing_is_fetched_over_a_network)
{
	char err[512] = "", dir[64];
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_xsd.XXXXXX");
	_cleanup_free_ char *day = xasprintf("%s/2020/01/02", dir);
	_cleanup_free_ char *cmd = xasprintf("mkdir -p '%s'", day);
	cr_assert_eq(system(cmd), 0);
	_cleanup_free_ char *path = xasprintf("%s/EMessage.xsd", day);
	const char *xsd = "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" "
			  "targetNamespace=\"urn:t\"><xs:include "
			  "schemaLocation=\"http://127.0.0.1:9/remote.xsd\"/></xs:schema>";
	testutil_write_file(path, xsd, strlen(xsd));
	struct codec_schemas *s = codec_schemas_load(dir, err, sizeof(err));
	/* the include is not loaded: either the load fails, or the schema has
	 * only what the local file declares (libxml2 warns and goes on) */
	if (s) {
		cr_assert_eq(codec_schemas_count(s), 1);
		codec_schemas_unref(s);
	} else {
		cr_assert(strstr(err, path), "%s", err);
	}
	testutil_rm_rf(dir);
}

/* ---- (3) the verdict of a decode -------------------------------------------- */

Test(validate, every_sample_is_valid_or_has_no_schema)
{
	static const struct {
		const char *file;
		enum codec_schema want;
	} cases[] = {
		{ "oioxml/CTL01_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/CTL02_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/CTL03_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/DIS14_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/DIS17_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/DIS20_1.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/DIS91_1.xml", CODEC_SCHEMA_VALID }, /* 2006/07/01 */
		{ "oioxml/XDIS17_regionh_NotificationOfDischarge.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/XDIS20_regionh_NotificationOfAdmission.xml", CODEC_SCHEMA_VALID },
		{ "oioxml/XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml",
		  CODEC_SCHEMA_MISSING },
		/* wrapped: the payload is what is validated */
		{ "vans-sbdh/XDIS20_regionh_SBDH.xml", CODEC_SCHEMA_VALID },
		{ "vans-sbdh/XDIS21_regionh_VANSEnvelope.xml", CODEC_SCHEMA_MISSING },
	};
	struct codec_schemas *s = load_set();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ struct result *res = decode_sample(s, cases[i].file);
		cr_assert_eq(res->r, 0, "%s: %s", cases[i].file, res->err.text);
		cr_expect_eq(res->env.schema, cases[i].want, "%s: %d %s", cases[i].file,
			     res->env.schema, res->env.schema_text);
		if (cases[i].want == CODEC_SCHEMA_MISSING)
			cr_expect_str_eq(res->env.schema_text,
					 "no schema for namespace urn:oio:medcom:municipality:1.0.3");
	}
	codec_schemas_unref(s);
}

Test(validate, without_schemas_nothing_is_checked)
{
	_cleanup_free_ struct result *res = decode_sample(NULL, "oioxml/DIS20_1.xml");
	cr_assert_eq(res->r, 0);
	cr_assert_eq(res->env.schema, CODEC_SCHEMA_UNCHECKED);
	cr_assert_str_eq(res->env.schema_text, "");
}

Test(validate, an_invalid_value_is_named_by_line_and_element_never_quoted)
{
	struct codec_schemas *s = load_set();
	/* a CPR number with letters: the decoder does not read it, the schema does */
	_cleanup_free_ struct result *res =
		decode_dis20_edited(s, "<CivilRegistrationNumber>2505544849<",
				    "<CivilRegistrationNumber>25055448XX<");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.schema, CODEC_SCHEMA_INVALID);
	cr_assert(strstr(res->env.schema_text, "line 2: element CivilRegistrationNumber: "),
		  "%s", res->env.schema_text);
	cr_assert(strstr(res->env.schema_text, "(libxml2 18"), "%s", res->env.schema_text);
	cr_assert_null(strstr(res->env.schema_text, "2505544"), "no patient data");
	codec_schemas_unref(s);
}

Test(validate, a_misplaced_element_is_named)
{
	struct codec_schemas *s = load_set();
	_cleanup_free_ struct result *res = decode_dis20_edited(
		s, "<Admission>", "<Unexpected>x</Unexpected><Admission>");
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.schema, CODEC_SCHEMA_INVALID);
	cr_assert(strstr(res->env.schema_text, "element Unexpected: an element is missing, "
					       "misplaced or not allowed here"),
		  "%s", res->env.schema_text);
	codec_schemas_unref(s);
}

Test(validate, the_text_is_one_printable_line)
{
	struct codec_schemas *s = load_set();
	_cleanup_free_ struct result *res = decode_dis20_edited(
		s, "<Admission>", "<\xC6" "ble>x</\xC6" "ble><Admission>"); /* windows-1252 */
	cr_assert_eq(res->r, 0, "%s", res->err.text);
	cr_assert_eq(res->env.schema, CODEC_SCHEMA_INVALID);
	cr_assert(strstr(res->env.schema_text, "element ?"), "%s", res->env.schema_text);
	for (const char *p = res->env.schema_text; *p; p++)
		cr_assert(*p >= 0x20 && *p <= 0x7E, "%s", res->env.schema_text);
	codec_schemas_unref(s);
}

struct worker {
	const struct codec_schemas *s;
	const uint8_t *valid, *invalid;
	size_t vlen, ilen;
	int wrong;
};

static void *validate_many(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 40; i++) {
		bool good = i % 2 == 0;
		_cleanup_free_ struct result *res = decode_with(w->s, good ? w->valid : w->invalid,
								good ? w->vlen : w->ilen);
		w->wrong += res->env.schema != (good ? CODEC_SCHEMA_VALID : CODEC_SCHEMA_INVALID);
	}
	return NULL;
}

Test(validate, one_set_is_shared_by_threads)
{
	struct codec_schemas *s = load_set();
	_cleanup_free_ char *path = xasprintf("%s/oioxml/DIS20_1.xml", samples());
	size_t vlen;
	_cleanup_free_ uint8_t *valid = testutil_read_file(path, &vlen);
	const char *bad = "<Patient><CivilRegistrationNumber>X";
	_cleanup_free_ char *x = testutil_read_file(path, NULL);
	char *at = strstr(x, "<Patient><CivilRegistrationNumber>");
	_cleanup_free_ char *invalid = xasprintf("%.*s%s%s", (int)(at - x), x, bad,
						 at + strlen("<Patient><CivilRegistrationNumber>") + 1);
	struct worker w[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ s, valid, (const uint8_t *)invalid, vlen, strlen(invalid), 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, validate_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(w[i].wrong, 0, "thread %d: %d wrong verdicts", i, w[i].wrong);
	}
	codec_schemas_unref(s);
}

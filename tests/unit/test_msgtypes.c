/*
 * test_msgtypes.c - the table of message type names (codecs/msgtypes.c):
 * every type of medcom.md section 1 and every FHIR event code has a name in
 * both languages, twins share it, unknown types and languages have none,
 * and - the point of the table - every letter type the golden decodes of
 * real MedCom samples report (the .golden files under tests/golden) is named, so
 * a codec that starts reporting a type nobody named fails here.
 */
#include "codecs/msgtypes.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <string.h>

Test(msgtypes, catalogue_types_have_danish_and_english_names)
{
	static const char *const catalogue[] = {
		"XDIS20", "XDIS17", "XDIS14", "XDIS19", "XDIS16", "XDIS18", "XDIS21", "XDIS91",
		"XCTL01", "XCTL02", "XCTL03", "hospital-notification-message",
		"care-communication-message", "homecareobservation-message",
		"acknowledgement-message",
	};
	for (size_t i = 0; i < ARRAY_SIZE(catalogue); i++) {
		cr_assert_not_null(msgtype_name(catalogue[i], "da"), "%s", catalogue[i]);
		cr_assert_not_null(msgtype_name(catalogue[i], "en"), "%s", catalogue[i]);
	}
	cr_assert_str_eq(msgtype_name("XDIS20", "da"), "Indlæggelsesadvis");
	cr_assert_str_eq(msgtype_name("XDIS17", "da"), "Udskrivningsadvis");
	cr_assert_str_eq(msgtype_name("XDIS21", "da"), "Plejeforløbsplan");
	cr_assert_str_eq(msgtype_name("XDIS20", "en"), "Hospital admission notice");
}

Test(msgtypes, edifact_twins_share_the_name)
{
	static const char *const pairs[][2] = {
		{ "XDIS20", "DIS20" }, { "XDIS17", "DIS17" }, { "XDIS91", "DIS91" },
		{ "XCTL01", "CTL01" }, { "XCTL03", "CTL03" }, { "XCTL01", "NegativeVans" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++)
		cr_assert_str_eq(msgtype_name(pairs[i][0], "da"), msgtype_name(pairs[i][1], "da"),
				 "%s / %s", pairs[i][0], pairs[i][1]);
}

Test(msgtypes, unknown_type_or_language_has_no_name)
{
	cr_assert_null(msgtype_name("XREF01", "da"));
	cr_assert_null(msgtype_name("xdis20", "da"), "codes are exact");
	cr_assert_null(msgtype_name("", "da"));
	cr_assert_null(msgtype_name(NULL, "da"));
	cr_assert_null(msgtype_name("XDIS20", "de"));
	cr_assert_null(msgtype_name("XDIS20", NULL));
}

/* Every "letter[N].type=" in the golden files of folder has a name. */
static size_t check_golden(const char *folder)
{
	_cleanup_free_ char *dir = xasprintf("tests/golden/%s", folder);
	size_t n, seen = 0;
	char **names = testutil_list_files(dir, &n);
	for (size_t i = 0; i < n; i++) {
		if (!strstr(names[i], ".golden"))
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
		_cleanup_free_ char *text = testutil_read_file(path, NULL);
		for (char *l = strstr(text, "].type="); l; l = strstr(l + 1, "].type=")) {
			char type[96];
			size_t len = strcspn(l + 7, "\n");
			snprintf(type, sizeof(type), "%.*s", (int)len, l + 7);
			if (!*type)
				continue; /* a sample whose letter has no type at all */
			cr_assert_not_null(msgtype_name(type, "da"), "%s: type %s has no name", path,
					   type);
			seen++;
		}
	}
	testutil_free_names(names);
	return seen;
}

Test(msgtypes, every_type_the_golden_decodes_report_is_named)
{
	static const char *const folders[] = { "oioxml", "edifact", "fhir", "vans-sbdh" };
	size_t seen = 0;
	for (size_t i = 0; i < ARRAY_SIZE(folders); i++)
		seen += check_golden(folders[i]);
	cr_assert_gt(seen, 20, "only %zu typed letters found: wrong folder?", seen);
}

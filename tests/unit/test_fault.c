/*
 * test_fault.c - the table of transport fault classes (daemon/base/fault.c):
 * stable names both ways, notice words in each language, and what unknown
 * classes, names and languages give.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "base/fault.h"
#include "codecs/base/mem.h"

/* The stable names are stored (outages' cause_fault) and shown to
 * operators: they must never change. */
static const struct {
	enum transport_fault f;
	const char *name;
} stable[] = {
	{ FAULT_NONE, "none" },	      { FAULT_REFUSED, "refused" },
	{ FAULT_TIMEOUT, "timeout" }, { FAULT_TLS, "tls" },
	{ FAULT_DISK_FULL, "disk-full" }, { FAULT_REJECTED, "rejected" },
	{ FAULT_IO, "io" },
};

Test(fault, names_are_stable_and_read_back)
{
	for (size_t i = 0; i < ARRAY_SIZE(stable); i++) {
		cr_expect_str_eq(fault_name(stable[i].f), stable[i].name);
		cr_expect_eq(fault_from_name(stable[i].name), (int)stable[i].f, "%s", stable[i].name);
	}
	cr_expect_str_eq(fault_name((enum transport_fault)(FAULT_IO + 1)), "?");
	cr_expect_eq(fault_from_name("gremlins"), -1);
	cr_expect_eq(fault_from_name("Timeout"), -1, "names are case-sensitive");
	cr_expect_eq(fault_from_name(""), -1);
	cr_expect_eq(fault_from_name(NULL), -1);
}

Test(fault, every_fault_has_its_own_words_in_each_language)
{
	static const char *const langs[] = { "da", "en" };
	for (size_t l = 0; l < ARRAY_SIZE(langs); l++) {
		const char *unknown = fault_words(-1, langs[l]);
		cr_assert_not_null(unknown, "%s", langs[l]);
		for (size_t i = 1; i < ARRAY_SIZE(stable); i++) {
			const char *w = fault_words(stable[i].f, langs[l]);
			cr_assert_not_null(w, "%s %s", stable[i].name, langs[l]);
			cr_expect_str_neq(w, unknown, "%s %s", stable[i].name, langs[l]);
			for (size_t j = 1; j < i; j++)
				cr_expect_str_neq(w, fault_words(stable[j].f, langs[l]),
						  "%s and %s share words", stable[i].name,
						  stable[j].name);
		}
	}
	cr_expect_str_eq(fault_words(FAULT_DISK_FULL, "da"), "disken er fuld");
	cr_expect_str_eq(fault_words(FAULT_DISK_FULL, "en"), "disk full");
	cr_expect_str_eq(fault_words(FAULT_TLS, "en"), "TLS failure");
}

Test(fault, no_fault_and_unknown_ones_read_as_unknown)
{
	cr_expect_str_eq(fault_words(-1, "da"), "ukendt fejl");
	cr_expect_str_eq(fault_words(-1, "en"), "unknown fault");
	cr_expect_str_eq(fault_words(FAULT_NONE, "en"), "unknown fault");
	cr_expect_str_eq(fault_words(99, "da"), "ukendt fejl");
	cr_expect_str_eq(fault_words(fault_from_name("gremlins"), "en"), "unknown fault");
	cr_expect_null(fault_words(FAULT_IO, "sv"), "a language without words");
	cr_expect_null(fault_words(FAULT_IO, NULL));
}

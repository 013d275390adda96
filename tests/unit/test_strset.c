/*
 * test_strset.c - the open-addressing string set (strset.c): add, has, del,
 * duplicates, tombstones (deleted slots keep probe chains intact and are
 * reused), growth to 100k entries, clear, and that keys are copied.
 */
#include "base/strset.h"
#include "codecs/base/mem.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void key(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "inbox-file-%zu.xml", i);
}

Test(strset, empty_set)
{
	struct strset *s = strset_new();
	cr_assert_eq(strset_count(s), 0);
	cr_assert_not(strset_has(s, "a"));
	cr_assert_not(strset_has(s, ""));
	cr_assert_not(strset_del(s, "a"));
	cr_assert_eq(strset_count(s), 0);
	strset_free(s);
}

Test(strset, free_accepts_null)
{
	strset_free(NULL);
}

Test(strset, add_has_del)
{
	struct strset *s = strset_new();
	cr_assert(strset_add(s, "a.xml"));
	cr_assert(strset_add(s, "b.xml"));
	cr_assert(strset_add(s, ""));
	cr_assert_eq(strset_count(s), 3);
	cr_assert(strset_has(s, "a.xml"));
	cr_assert(strset_has(s, "b.xml"));
	cr_assert(strset_has(s, ""));
	cr_assert_not(strset_has(s, "a.xm"));
	cr_assert_not(strset_has(s, "a.xml "));
	cr_assert_not(strset_has(s, "A.xml"));

	cr_assert(strset_del(s, "a.xml"));
	cr_assert_not(strset_has(s, "a.xml"));
	cr_assert(strset_has(s, "b.xml"));
	cr_assert_eq(strset_count(s), 2);
	cr_assert_not(strset_del(s, "a.xml"), "second delete must report absence");
	cr_assert_eq(strset_count(s), 2);
	strset_free(s);
}

Test(strset, duplicate_add_is_refused_and_not_counted)
{
	struct strset *s = strset_new();
	cr_assert(strset_add(s, "x"));
	cr_assert_not(strset_add(s, "x"));
	cr_assert_not(strset_add(s, "x"));
	cr_assert_eq(strset_count(s), 1);
	cr_assert(strset_del(s, "x"));
	cr_assert_not(strset_has(s, "x"), "a duplicate add must not have stored a second copy");
	cr_assert_eq(strset_count(s), 0);
	strset_free(s);
}

Test(strset, key_is_copied)
{
	struct strset *s = strset_new();
	char buf[32] = "original.xml";
	cr_assert(strset_add(s, buf));
	memcpy(buf, "changed!.xml", 12);
	cr_assert(strset_has(s, "original.xml"));
	cr_assert_not(strset_has(s, buf));
	strset_free(s);
}

/* Deleting an entry in the middle of a probe chain must not hide the entries
 * after it. With 64 slots, 40 keys certainly collide into chains. */
Test(strset, delete_keeps_probe_chains_intact)
{
	struct strset *s = strset_new();
	char k[64];
	for (size_t i = 0; i < 40; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_add(s, k));
	}
	for (size_t i = 0; i < 40; i += 2) {
		key(k, sizeof(k), i);
		cr_assert(strset_del(s, k));
	}
	for (size_t i = 0; i < 40; i++) {
		key(k, sizeof(k), i);
		cr_assert_eq(strset_has(s, k), i % 2 == 1, "key %zu", i);
	}
	cr_assert_eq(strset_count(s), 20);
	/* a deleted key can come back, exactly once */
	key(k, sizeof(k), 4);
	cr_assert(strset_add(s, k));
	cr_assert_not(strset_add(s, k));
	cr_assert_eq(strset_count(s), 21);
	strset_free(s);
}

/* A key re-added after deletion must not be found twice: re-adding into the
 * first tombstone while a live copy sits further along the chain would
 * leave two copies. Add/delete churn over a small live set exercises
 * tombstone reuse and the rebuild that drops tombstones. */
Test(strset, churn_reuses_tombstones)
{
	struct strset *s = strset_new();
	char k[64];
	for (size_t round = 0; round < 2000; round++) {
		for (size_t i = 0; i < 10; i++) {
			key(k, sizeof(k), round * 10 + i);
			cr_assert(strset_add(s, k));
		}
		cr_assert_eq(strset_count(s), 10);
		for (size_t i = 0; i < 10; i++) {
			key(k, sizeof(k), round * 10 + i);
			cr_assert(strset_del(s, k), "round %zu key %zu", round, i);
		}
		cr_assert_eq(strset_count(s), 0);
	}
	/* the same 30 names again and again (an inbox file seen, removed, seen) */
	for (size_t round = 0; round < 500; round++) {
		for (size_t i = 0; i < 30; i++) {
			key(k, sizeof(k), i);
			cr_assert(strset_add(s, k), "round %zu key %zu", round, i);
		}
		for (size_t i = 0; i < 30; i += 3) {
			key(k, sizeof(k), i);
			cr_assert(strset_del(s, k));
			cr_assert_not(strset_has(s, k));
			cr_assert(strset_add(s, k));
			cr_assert_not(strset_add(s, k));
		}
		cr_assert_eq(strset_count(s), 30);
		for (size_t i = 0; i < 30; i++) {
			key(k, sizeof(k), i);
			cr_assert(strset_del(s, k), "round %zu key %zu", round, i);
			cr_assert_not(strset_del(s, k), "round %zu key %zu twice", round, i);
		}
	}
	cr_assert_eq(strset_count(s), 0);
	strset_free(s);
}

Test(strset, grows_to_100k_entries, .timeout = 20)
{
	struct strset *s = strset_new();
	char k[64];
	enum { N = 100000 };
	for (size_t i = 0; i < N; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_add(s, k), "key %zu", i);
	}
	cr_assert_eq(strset_count(s), N);
	for (size_t i = 0; i < N; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_has(s, k), "key %zu lost in growth", i);
	}
	for (size_t i = N; i < N + 1000; i++) {
		key(k, sizeof(k), i);
		cr_assert_not(strset_has(s, k));
	}
	for (size_t i = 0; i < N; i += 2) {
		key(k, sizeof(k), i);
		cr_assert(strset_del(s, k));
	}
	cr_assert_eq(strset_count(s), N / 2);
	for (size_t i = 0; i < N; i++) {
		key(k, sizeof(k), i);
		cr_assert_eq(strset_has(s, k), i % 2 == 1, "key %zu", i);
	}
	strset_free(s);
}

Test(strset, clear_empties_and_stays_usable)
{
	struct strset *s = strset_new();
	char k[64];
	for (size_t i = 0; i < 1000; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_add(s, k));
	}
	for (size_t i = 0; i < 100; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_del(s, k));
	}
	strset_clear(s);
	cr_assert_eq(strset_count(s), 0);
	for (size_t i = 0; i < 1000; i++) {
		key(k, sizeof(k), i);
		cr_assert_not(strset_has(s, k), "key %zu survived clear", i);
	}
	for (size_t i = 0; i < 2000; i++) {
		key(k, sizeof(k), i);
		cr_assert(strset_add(s, k), "key %zu after clear", i);
	}
	cr_assert_eq(strset_count(s), 2000);
	strset_clear(s);
	strset_clear(s);
	cr_assert_eq(strset_count(s), 0);
	strset_free(s);
}

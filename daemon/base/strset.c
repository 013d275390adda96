/*
 * strset.c - open-addressing string set with linear probing.
 *
 * Deleted slots hold a tombstone so probe chains stay intact; the table is
 * rebuilt (and tombstones dropped) when live plus dead slots pass 70%.
 */
#include "base/strset.h"

#include "codecs/base/mem.h"

#include <stdint.h>
#include <string.h>

static char tombstone[1];

struct strset {
	char **slots;
	size_t cap;   /* power of two */
	size_t live;
	size_t dead;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct strset *strset_new(void)
{
	struct strset *s = xcalloc(1, sizeof(*s));
	s->cap = 64;
	s->slots = xcalloc(s->cap, sizeof(char *));
	return s;
}

void strset_clear(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		if (s->slots[i] && s->slots[i] != tombstone)
			free(s->slots[i]);
		s->slots[i] = NULL;
	}
	s->live = s->dead = 0;
}

void strset_free(struct strset *s)
{
	if (!s)
		return;
	strset_clear(s);
	free(s->slots);
	free(s);
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t find(const struct strset *s, const char *key, bool *found)
{
	size_t mask = s->cap - 1, i = (size_t)hash(key) & mask, first_free = SIZE_MAX;
	for (;; i = (i + 1) & mask) {
		char *v = s->slots[i];
		if (!v) {
			*found = false;
			return first_free != SIZE_MAX ? first_free : i;
		}
		if (v == tombstone) {
			if (first_free == SIZE_MAX)
				first_free = i;
		} else if (strcmp(v, key) == 0) {
			*found = true;
			return i;
		}
	}
}

static void rehash(struct strset *s, size_t cap)
{
	char **old = s->slots;
	size_t oldcap = s->cap;
	s->slots = xcalloc(cap, sizeof(char *));
	s->cap = cap;
	s->dead = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i] || old[i] == tombstone)
			continue;
		bool found;
		s->slots[find(s, old[i], &found)] = old[i];
	}
	free(old);
}

bool strset_add(struct strset *s, const char *key)
{
	if ((s->live + s->dead + 1) * 10 > s->cap * 7)
		rehash(s, s->live * 2 + 2 > s->cap / 2 ? s->cap * 2 : s->cap);
	bool found;
	size_t i = find(s, key, &found);
	if (found)
		return false;
	if (s->slots[i] == tombstone)
		s->dead--;
	s->slots[i] = xstrdup(key);
	s->live++;
	return true;
}

bool strset_has(const struct strset *s, const char *key)
{
	bool found;
	find(s, key, &found);
	return found;
}

bool strset_del(struct strset *s, const char *key)
{
	bool found;
	size_t i = find(s, key, &found);
	if (!found)
		return false;
	free(s->slots[i]);
	s->slots[i] = tombstone;
	s->live--;
	s->dead++;
	return true;
}

size_t strset_count(const struct strset *s)
{
	return s->live;
}

/*
 * strset.h - a set of strings (open addressing, FNV-1a), for the names of
 * inbox files the spool has already seen.
 */
#ifndef EDIBROKER_STRSET_H
#define EDIBROKER_STRSET_H

#include <stdbool.h>
#include <stddef.h>

struct strset;

struct strset *strset_new(void);
void strset_free(struct strset *s);
/* Adds a copy of key; false when it was already present. */
bool strset_add(struct strset *s, const char *key);
bool strset_has(const struct strset *s, const char *key);
/* Removes key; false when it was absent. */
bool strset_del(struct strset *s, const char *key);
size_t strset_count(const struct strset *s);
void strset_clear(struct strset *s);

#endif

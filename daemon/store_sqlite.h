/*
 * store_sqlite.h - the SQLite backend of the message store (see store.h).
 *
 * One database file, <state_dir>/edibroker.db, in WAL mode with
 * synchronous=FULL. Nothing outside store.c names this backend directly;
 * tests may, to inspect the live connection.
 */
#ifndef EDIBROKER_STORE_SQLITE_H
#define EDIBROKER_STORE_SQLITE_H

#include "store.h"

#include <stdint.h>

extern const struct store_backend_ops store_sqlite_ops;

/* Tests and diagnostics: the integer value of "PRAGMA name" on the open
 * connection of be (name is [a-z_]+). 0 or a negative errno. */
int store_sqlite_pragma(void *be, const char *name, int64_t *value);

#endif

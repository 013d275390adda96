/*
 * store_sqlite.h - the SQLite backend of the message store (see store.h).
 *
 * One database file, <state_dir>/edibroker.db, in WAL mode with
 * synchronous=FULL. Nothing outside store.c names this backend directly;
 * tests may, to inspect the live connection.
 */
#ifndef EDIBROKER_STORE_SQLITE_H
#define EDIBROKER_STORE_SQLITE_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct store_backend_ops;

/* The backend's table (store_backend.h), registered in store.c. */
extern const struct store_backend_ops store_sqlite_ops;

/* Tests and diagnostics: the integer value of "PRAGMA name" on the open
 * connection of s, a store on this backend (name is [a-z_]+). 0 or a
 * negative errno. */
int store_sqlite_pragma(struct store *s, const char *name, int64_t *value);

/* Tests: the query plan SQLite chose for the statement behind op
 * ("queue_summary", "partners", "notice_pending") on s (this backend), the
 * detail of each step joined by "; " into buf. 0, -ENOENT for another op,
 * or a negative errno. */
int store_sqlite_plan(struct store *s, const char *op, char *buf, size_t len);

/* Tests: creates <state_dir>/edibroker.db at the past schema version
 * (1 ..), as an edibroker of that version left it (migrations are append
 * only), so the upgrade to the current one can be tested. state_dir must
 * hold no database yet. 0 or a negative errno (last_error(NULL) says why). */
int store_sqlite_create_version(const char *state_dir, int version);

#endif

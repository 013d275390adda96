/*
 * store_pg.h - the PostgreSQL backend of the message store, for several
 * daemons sharing one database (store_pg.c). Registered in store.c as
 * "postgresql"; everyone else uses the front end (store.h).
 */
#ifndef EDIBROKER_STORE_PG_H
#define EDIBROKER_STORE_PG_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

extern const struct store_backend_ops store_pg_ops;

/* Diagnostics for tests: the plan PostgreSQL chooses for the named
 * statement ("fetch", "depths", "body_prune", "history_prune"), as
 * EXPLAIN's text, one line per node joined by "; ". 0 or -errno. */
int store_pg_plan(struct store *s, const char *op, char *buf, size_t len);
/* Runs sql (no parameters, no rows wanted) on s's own connection. */
int store_pg_exec(struct store *s, const char *sql);

#endif

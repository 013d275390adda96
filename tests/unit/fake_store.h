/*
 * fake_store.h - an in-memory store backend for unit tests of what sits on
 * the store: the outage procedure's records (outages, notices, send
 * attempts, maintenance windows) kept in arrays, and a queue summary and
 * partners the test seeds, and tracked messages for ack_list() (seeded
 * too). Messages are not kept: those primitives (and the retention of
 * dead letters and quarantined files, the messages' history and holds)
 * return -ENOSYS.
 *
 * Opened through the store front end (store_open_backend), so the code
 * under test uses the real store.c. store_attach() gives it lanes whose
 * handles are the same fake: work then runs on their threads and completes
 * on the loop (store_drain), as with a server backend; the test drains
 * before it seeds, switches failures or reads the fake itself. One fake store at a time: the seeding
 * functions act on the one opened last.
 */
#ifndef EDIBROKER_FAKE_STORE_H
#define EDIBROKER_FAKE_STORE_H

#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

/* A new, empty fake store; close with store_close(). */
struct store *fake_store_open(void);

/* A queue_summary() row for endpoint (returned in the order seeded). */
void fake_store_queue(const char *endpoint, const char *type, const char *source, int64_t count,
		      int64_t oldest_received_at);
/* A message ack_list() returns: delivered to endpoint at delivered_at, in
 * acknowledgement state ack. Seed them oldest delivery first. */
void fake_store_tracked(int64_t id, const char *endpoint, const char *type, const char *source,
			int64_t delivered_at, enum msg_ack ack);
/* Records that a and b exchange messages (partners() of either names the other). */
void fake_store_partners(const char *a, const char *b);
/* While on, every save fails with -EIO and keeps nothing. */
void fake_store_fail_saves(bool on);
/* Saves (of any record) that succeeded since open. */
int fake_store_saves(void);

#endif

/*
 * commit.h - group commit: every store write raised during one turn of the
 * event loop goes into one transaction.
 *
 * Sources add new messages (with a completion), deliveries add "delivered"
 * marks and failed-attempt records. At the end of the loop turn one
 * store_commit() makes them durable together, so throughput is not one
 * fsync per message. Completions run after the commit: only then may a
 * source be told its message is accepted.
 *
 * With a server backend the commit completes later, off the loop; what is
 * added meanwhile goes into the next one.
 *
 * When a commit fails (disk full, I/O error), its new messages are failed
 * back to their sources (which keep their input and retry later); delivered
 * marks and attempts stay pending and are retried. The failure is logged
 * once per episode, and so is the recovery.
 */
#ifndef EDIBROKER_COMMIT_H
#define EDIBROKER_COMMIT_H

#include "store/store.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct commit;

/* err is 0 when m was committed (m->outcome and m->id are set), else the
 * negative errno of the failed commit. */
typedef void (*commit_done_fn)(int err, struct store_new *m, void *arg);

struct commit_stats {
	uint64_t commits, failed, messages;
	int64_t last_ms;  /* duration of the last commit */
	int64_t total_ms; /* sum of all commit durations */
};

struct commit *commit_new(struct event_base *base, struct store *store);
/* Commits what is pending, then frees. Accepts NULL. */
void commit_free(struct commit *c);

/* Queues m for the next commit. m and what it points to must stay valid
 * until done(…, m, arg) runs. */
void commit_add(struct commit *c, struct store_new *m, commit_done_fn done, void *arg);
void commit_add_delivered(struct commit *c, int64_t id);
void commit_add_attempt(struct commit *c, int64_t id, const char *error);
/* The receiver refused message id for what it is: it becomes a dead letter
 * with reason, and its queue moves on. */
void commit_add_refused(struct commit *c, int64_t id, const char *reason);
/* commit_add_attempt() with the failure's fault class ("refused"), kept in
 * the message's history. */
void commit_add_failure(struct commit *c, int64_t id, const char *fault, const char *error);

/* The same, under the fence of the endpoint's lease (store.h): applied
 * only while f (copied) still holds; NULL = unfenced. */
void commit_add_delivered_fenced(struct commit *c, int64_t id, const struct store_fence *f);
void commit_add_attempt_fenced(struct commit *c, int64_t id, const char *fault,
			       const char *error, bool refused, const struct store_fence *f);

/* Marks are durable in order of these numbers: a mark added when
 * commit_next_seq() was s is in the store once commit_done_seq() >= s. */
uint64_t commit_next_seq(const struct commit *c);
uint64_t commit_done_seq(const struct commit *c);

/* Starts a commit of what is pending now, unless one is in flight. */
void commit_kick(struct commit *c);
/* True when no commit is in flight and no message waits for one. */
bool commit_idle(const struct commit *c);
/* Commits whatever is pending now and waits for it (shutdown, tests): a
 * commit in flight on a server is waited for at most a few seconds
 * (-ETIMEDOUT). Returns the result of the last commit. */
int commit_flush(struct commit *c);
/* True unless the last commit failed. */
bool commit_healthy(const struct commit *c);
/* The error text of the last failed commit ("" when healthy). */
const char *commit_last_error(const struct commit *c);
/* fn(healthy, arg) runs on every change of health. */
void commit_on_health(struct commit *c, void (*fn)(bool healthy, void *arg), void *arg);
void commit_stats(const struct commit *c, struct commit_stats *out);

#endif

/*
 * fake_transport.h - a transport double for the delivery scheduler's unit
 * tests (test_deliver.c), behind the real struct transport_ops.
 *
 * It records every batch it is given (first id, size, the monotonic time
 * of the call) and every message it confirms (id and a hash of the body),
 * fails on demand (at a given id, a given number of times, with a given
 * fault), can hold a deliver() call until the test releases it, answers
 * probes with a programmed fault, and notices being destroyed while one of
 * its deliver() calls still runs.
 *
 * Threads: deliver() and probe() return at once and do their work as a
 * job on the lane the test gives the fake (as the spool does on its
 * endpoint's lane), completing through the scheduler's callback on the
 * loop; the work takes the lock.
 * The test programs the fields under "behaviour" before the work they are
 * meant for is queued, reads counters through fake_transport_calls() and
 * fake_transport_confirmed() while workers may run, and reads the arrays
 * once the scheduler is quiet.
 *
 * Ownership: the test owns the fake (fake_transport_new/_free). The
 * scheduler's destroy() only counts, so a test can check that it ran once,
 * and never under a running deliver().
 */
#ifndef EDIBROKER_FAKE_TRANSPORT_H
#define EDIBROKER_FAKE_TRANSPORT_H

#include "transport/transport.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAKE_TRANSPORT_MAX_CALLS 4096 /* batches recorded */
#define FAKE_TRANSPORT_MAX_IDS 16384  /* confirmed messages recorded */

struct fake_transport {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const char *label;           /* names the fake in error texts */

	/* behaviour, set by the test */
	int64_t fail_id;             /* fail when this id is reached ... */
	int fails_left;              /* ... this many more times ... */
	enum transport_fault fault;  /* ... with this fault */
	enum transport_fault probe_fault;
	int64_t reject_id;           /* the receiver refuses this id for what it is */
	size_t stop_after;           /* confirms at most this many per batch and stops
					there without a fault (a time budget); 0 = all */
	bool block;                  /* deliver() waits until released */
	bool block_probe;            /* probe() waits until released */
	struct lane *lane;           /* where its work runs */
	bool cancelled;              /* cancel() was called (cancellable ops) */

	/* what happened */
	size_t calls;                /* deliver() calls */
	size_t sizes[FAKE_TRANSPORT_MAX_CALLS];     /* batch sizes */
	int64_t first_id[FAKE_TRANSPORT_MAX_CALLS]; /* first id of each batch */
	int64_t call_ms[FAKE_TRANSPORT_MAX_CALLS];  /* clock_mono_ms() at each call */
	int64_t confirmed[FAKE_TRANSPORT_MAX_IDS];  /* ids confirmed, in order */
	uint64_t hash[FAKE_TRANSPORT_MAX_IDS];      /* fake_transport_hash of each body */
	size_t nconfirmed;
	size_t probes;
	int in_deliver;              /* deliver() calls running now */
	bool entered;                /* a blocking deliver() has started */
	int stops, destroys;
	bool destroyed_in_use;       /* destroy() ran during a deliver() */
};

/* The ops to hand the scheduler together with fake_transport_handle(). */
extern const struct transport_ops fake_transport_ops;
/* The same with cancel(): a blocked deliver() then returns at once with
 * FAULT_TIMEOUT, as a network transport gives up a connection. */
extern const struct transport_ops fake_transport_cancellable_ops;

/* A fake that confirms everything, never blocks and probes healthy; its
 * work runs on lane. */
struct fake_transport *fake_transport_new(const char *label, struct lane *lane);
/* Frees f (NULL is fine); the scheduler must be done with it. */
void fake_transport_free(struct fake_transport *f);
/* f as the struct transport the scheduler takes. */
struct transport *fake_transport_handle(struct fake_transport *f);

/* deliver() calls so far, read under the lock. */
size_t fake_transport_calls(struct fake_transport *f);
/* Messages confirmed so far, read under the lock. */
size_t fake_transport_confirmed(struct fake_transport *f);
/* Waits up to 5 s, without running the loop, until a blocking deliver()
 * or probe() has started; fails the test otherwise. */
void fake_transport_wait_entered(struct fake_transport *f);
/* Lets a blocking deliver() or probe() go on, and later ones run through. */
void fake_transport_release(struct fake_transport *f);

/* The hash recorded for a confirmed body (64-bit FNV-1a). */
uint64_t fake_transport_hash(const uint8_t *body, size_t size);

#endif

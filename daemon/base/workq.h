/*
 * workq.h - a small pool of worker threads for blocking file work.
 *
 * Spool delivery writes, syncs and renames files, which can block for long
 * on a slow or remounted share; doing it on a worker keeps the event loop
 * (and so the watchdog, control socket and every other endpoint) running.
 * A job's work() runs on a worker and must touch only the job's own data;
 * its done() runs afterwards on the event loop thread.
 */
#ifndef EDIBROKER_WORKQ_H
#define EDIBROKER_WORKQ_H

#include <event2/event.h>
#include <stddef.h>

struct workq;

typedef void (*workq_fn)(void *arg);

/* Starts nthreads workers whose completions run on base. NULL on failure. */
struct workq *workq_new(struct event_base *base, unsigned nthreads);
/* Waits for queued and running jobs, runs their done() callbacks, stops the
 * workers and frees the pool. Accepts NULL. */
void workq_free(struct workq *wq);

/* Queues a job: work(arg) on a worker, then done(arg) on the loop. */
void workq_submit(struct workq *wq, workq_fn work, workq_fn done, void *arg);
/* Jobs submitted and not yet completed (done() not yet run). */
size_t workq_pending(const struct workq *wq);
/* Blocks until every submitted job has run and its done() was called. */
void workq_drain(struct workq *wq);

#endif

/*
 * lanes.h - blocking work off the event loop, one lane per endpoint
 * direction, so that one endpoint's trouble costs only that endpoint.
 *
 * A lane is a FIFO of jobs that run one at a time, in submission order, off
 * the event loop; their done() callbacks run on the loop, in the same order.
 * All lanes share one elastic pool of threads: a job starts as soon as its
 * lane is free and a thread is idle, and when no thread is idle a new one
 * is started. A lane stuck in the kernel (a write to a frozen share, a
 * readdir on a dead NFS server) therefore holds exactly one thread and
 * delays no other lane, and threads never outnumber the lanes with a job
 * running plus the idle ones (which exit after a while). A caller that
 * never queues a second job on a lane whose first is overdue keeps the
 * thread count bounded by its number of lanes, whatever a share does.
 *
 * Ownership: the wiring owns the pool and gives each endpoint its lanes,
 * which outlive a reload; a transport decides which of its work runs where.
 * A job's work() touches only the job's own data; done() runs on the loop.
 * Shutdown waits for lanes with a deadline (lanes_pending, lanes_wait) and
 * may leave threads stuck in the kernel behind: lanes_free() then abandons
 * the pool instead of joining them, and the process exits around them.
 */
#ifndef EDIBROKER_LANES_H
#define EDIBROKER_LANES_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lanes;
struct lane;

typedef void (*lane_fn)(void *arg);

/* A pool whose completions run on base. NULL when the eventfd cannot be
 * made. idle_ms: how long an idle thread waits for work before it exits
 * (0 = the default, 30 s). */
struct lanes *lanes_new(struct event_base *base, int64_t idle_ms);
/* Runs the completions of finished jobs, stops idle threads and frees the
 * pool. When jobs are still running (stuck), the pool and their lanes are
 * abandoned, not freed: their threads are detached and the process may
 * exit around them. Accepts NULL. True when the pool was abandoned. */
bool lanes_free(struct lanes *p);

/* A new lane of the pool; name is for diagnostics ("spool-out:hospital"). */
struct lane *lane_new(struct lanes *p, const char *name);
/* Frees the lane once its queued and running jobs are done (their done()
 * callbacks still run). Accepts NULL. */
void lane_free(struct lane *l);
/* Queues a job: work(arg) off the loop after the lane's earlier jobs, then
 * done(arg) on the loop. done may be NULL. */
void lane_submit(struct lane *l, lane_fn work, lane_fn done, void *arg);
/* True when the lane has no job queued or running. */
bool lane_idle(const struct lane *l);
/* CLOCK_MONOTONIC ms at which the lane's running job started; 0 when none
 * runs. */
int64_t lane_running_since(const struct lane *l);
const char *lane_name(const struct lane *l);

/* Jobs submitted and not yet completed (done() not yet run), all lanes. */
size_t lanes_pending(const struct lanes *p);
/* Threads in the pool now (running or idle). */
size_t lanes_threads(const struct lanes *p);
/* Blocks the calling (loop) thread until every job has completed and run its
 * done(), or timeout_ms has passed. 0, or -ETIMEDOUT with jobs still
 * running. For tests and for the last step of a shutdown. */
int lanes_wait(struct lanes *p, int64_t timeout_ms);
/* Calls fn for every lane whose running job started before mono_before
 * (a stuck lane), with its name and start time. Returns how many. */
size_t lanes_stuck(const struct lanes *p, int64_t mono_before,
		   void (*fn)(const char *name, int64_t since_mono, void *arg), void *arg);

#endif

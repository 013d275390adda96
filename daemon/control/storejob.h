/*
 * storejob.h - an operator's verb's store work on a store lane, with an
 * answer deadline.
 *
 * A verb hands its store calls to storejob_run(): they run on the lane it
 * names (store_run: at once for sqlite, on the lane's own connection for a
 * server backend), and the answer is composed on the loop. A database that
 * does not answer within STOREJOB_WAIT_MS does not hold the operator: the
 * verb answers without it (by default {"ok": false, "error": "store: no
 * answer in time"}), and the late completion still runs on the loop (a
 * change the store made is applied to the loop's state all the same) but
 * its answer is dropped and logged. The job is freed by whichever side,
 * completion or deadline, comes last.
 */
#ifndef EDIBROKER_STOREJOB_H
#define EDIBROKER_STOREJOB_H

#include "control/control_cmds.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

/* How long an operator waits for the store before the verb answers without it. */
#define STOREJOB_WAIT_MS 500
/* At most this many verbs' jobs wait on one store lane; more answer "store:
 * busy" at once (storejob.c). */
#define STOREJOB_MAX_OUT 16

/* Who is told of a change that lands after the deadline, so it is audited
 * like one answered in time (control_cmds.c names the caller). Held by
 * every job started while it is current; released once none holds it. */
struct storejob_audit {
	/* A late answer that reports a change (ok, or "results"). */
	void (*late)(struct storejob_audit *a, const json_t *answer);
	/* No job holds a any more (nor the one that made it current). */
	void (*release)(struct storejob_audit *a);
	int refs;
};

/* Jobs started from now until storejob_audit_end() - and the jobs their
 * finish starts in turn, e.g. a check's write - report late changes to a
 * (taking a reference each). The loop is one thread, so "now" is one
 * verb's dispatch; NULL: none. */
void storejob_audit_begin(struct storejob_audit *a);
void storejob_audit_end(void);
/* The current audit with a reference taken, for a verb that starts jobs
 * later from callbacks of its own (requeue); NULL when none. */
struct storejob_audit *storejob_audit_hold(void);
/* Drops a reference taken by hand; release() at the last. */
void storejob_audit_unref(struct storejob_audit *a);

/* The answer's receiver: done(answer, arg), answer taken over. */
typedef void (*storejob_done_fn)(json_t *answer, void *arg);

struct storejob_ops {
	/* On the lane: calls the store on view, touches only data. */
	store_work_fn work;
	/* On the loop once work is done, whatever the deadline did: applies
	 * what the store did to the loop's state and returns the answer.
	 * late: the deadline has answered; the answer returned is dropped.
	 * NULL: this job gives no answer (it handed the answer on to another
	 * job started with the same done and arg). */
	json_t *(*finish)(void *data, bool late);
	/* On the loop when the deadline comes first: the answer without the
	 * store's part. NULL: {"ok": false, "error": "store: no answer in time"}. */
	json_t *(*timeout)(void *data);
	/* Frees data once both sides are done. NULL: free(). */
	void (*free)(void *data);
};

/* Runs ops->work(view, data) on lane of e->store, then answers
 * done(answer, arg) on the loop: with finish's answer, or with timeout's
 * after STOREJOB_WAIT_MS (e->base NULL: no deadline, for tests). Once
 * e->closing is set, a completion only frees data (neither finish nor
 * done runs: what they would touch is being freed). verb names the job in
 * the log line of a dropped late answer. data is the job's from now on. */
void storejob_run(const struct control_env *e, enum store_lane lane, const char *verb,
		  const struct storejob_ops *ops, void *data, storejob_done_fn done, void *arg);

/* The answer for a store that did not answer in time. */
json_t *storejob_no_answer(void);

#endif

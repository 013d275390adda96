/*
 * actions.h - what operators do to single messages and endpoints through
 * the control socket (control_cmds.h has the verbs and their gate):
 *
 *   requeue ID...   a dead letter, or a quarantined file read back from its
 *                   quarantine folder, is routed again through ingest: the
 *                   duplicate check runs again, so a letter delivered
 *                   meanwhile is not delivered twice; the original record
 *                   ends as requeued, its history naming the new message;
 *   hold/release    an endpoint's delivery paused or resumed, recorded in
 *                   the store (it survives restarts);
 *   retry           an endpoint in backoff tries again now;
 *   resend ID       a delivered message's bytes queued again as a new
 *                   message (a receiver that lost it);
 *   delete ID       a dead letter or queued message ends as deleted, with
 *                   its reason in the history.
 *
 * Each saves its change with the operator's name (by) before it answers;
 * the store work runs on the store's lanes (storejob.h), never on the loop's
 * own connection.
 * Answers follow the control protocol ({"ok": ..., ...}).
 */
#ifndef EDIBROKER_ACTIONS_H
#define EDIBROKER_ACTIONS_H

#include "control/control_cmds.h"

#include <jansson.h>
#include <stdbool.h>

/* Most ids one requeue takes. */
#define ACTIONS_REQUEUE_MAX 100

typedef void (*actions_done_fn)(json_t *answer, void *arg);

/* The actions that touch the store answer through done(answer, arg), once:
 * before they return when the store runs its work at once (sqlite), else
 * later from the loop, within STOREJOB_WAIT_MS of the store's silence
 * (storejob.h); answer is the callee's to keep. */

/* req: {"endpoint": NAME}. */
void actions_hold(const struct control_env *e, const json_t *req, const char *by, bool held,
		  actions_done_fn done, void *arg);
/* No store call: answers at once. */
json_t *actions_retry(const struct control_env *e, const json_t *req, const char *by);
/* req: {"id": ID}. */
void actions_resend(const struct control_env *e, const json_t *req, const char *by,
		    actions_done_fn done, void *arg);
/* req: {"id": ID, "reason": TEXT}. */
void actions_delete(const struct control_env *e, const json_t *req, const char *by,
		    actions_done_fn done, void *arg);
/* req: {"ids": [ID, ...]} (or {"id": ID}). The answer (one result per id)
 * goes to done(answer, arg) once every id is settled - before this returns
 * when none needs work off the loop; answer is the callee's to keep. */
void actions_requeue(const struct control_env *e, const json_t *req, const char *by,
		     actions_done_fn done, void *arg);

#endif

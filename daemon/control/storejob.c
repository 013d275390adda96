/*
 * storejob.c - the answer deadline of storejob.h.
 *
 * Two references hold a job: the lane's (dropped once finish has run on the
 * loop) and the deadline timer's (dropped when it fires or is cancelled).
 * With sqlite the work and finish run inside store_run(), so the job is
 * answered before any timer exists and none is made. Otherwise the first of
 * the two to run answers; the other only drops its reference, so a late
 * completion after the deadline touches nothing but the job itself - and
 * the audit it holds, so a change that landed late is still audited with
 * the caller who made it.
 */
#include "control/storejob.h"

#include "base/log.h"
#include "codecs/base/mem.h"
#include "control/control.h"

#include <event2/event.h>
#include <stdlib.h>

struct storejob {
	const struct control_env *e;
	const struct storejob_ops *ops;
	void *data;
	const char *verb; /* static: a row of the verb table */
	storejob_done_fn done;
	void *arg;
	bool answered;
	int refs;
	struct event *deadline;
	struct storejob_audit *audit; /* a reference, or NULL */
	enum store_lane lane;
};

/* Verbs' jobs still on each lane. A lane waits up to 30 s for a database
 * that does not answer while a verb answers after 500 ms: without a cap,
 * an operator's script polling a hung database would queue jobs (and
 * hold their memory) for as long as the hang lasts. */
static size_t out[STORE_LANES];

/* The audit of the verb being dispatched, or of the job whose finish runs. */
static struct storejob_audit *current_audit;

void storejob_audit_begin(struct storejob_audit *a)
{
	current_audit = a;
}

void storejob_audit_end(void)
{
	current_audit = NULL;
}

struct storejob_audit *storejob_audit_hold(void)
{
	if (current_audit)
		current_audit->refs++;
	return current_audit;
}

void storejob_audit_unref(struct storejob_audit *a)
{
	if (a && --a->refs == 0)
		a->release(a);
}

json_t *storejob_no_answer(void)
{
	return control_error("store: no answer in time");
}

static void job_unref(struct storejob *j)
{
	if (--j->refs > 0)
		return;
	if (j->deadline)
		event_free(j->deadline);
	storejob_audit_unref(j->audit);
	if (j->ops->free)
		j->ops->free(j->data);
	else
		free(j->data);
	free(j);
}

/* A late answer is not sent, but a change it reports is in the store now:
 * the log says so, since the operator was told it had no answer. */
static void drop_late(const struct storejob *j, json_t *ans)
{
	if (ans && j->audit &&
	    (json_object_get(ans, "results") || json_is_true(json_object_get(ans, "ok"))))
		j->audit->late(j->audit, ans);
	if (ans)
		log_notice("event=control-late-answer verb=%s ok=%s error=\"%s\"", j->verb,
			   json_is_true(json_object_get(ans, "ok")) ? "true" : "false",
			   json_string_value(json_object_get(ans, "error"))
				   ? json_string_value(json_object_get(ans, "error"))
				   : "");
	json_decref(ans);
}

/* On the lane: ops and data are fixed before store_run(); the loop
 * changes only the other fields meanwhile. */
static void job_work(struct store *view, void *arg)
{
	struct storejob *j = arg;
	j->ops->work(view, j->data);
}

/* Back on the loop: the work is done. */
static void job_done(void *arg)
{
	struct storejob *j = arg;
	out[j->lane]--;
	bool late = j->answered;
	if (!late && j->deadline) { /* pending or about to run: it will not now */
		event_del(j->deadline);
		j->refs--;
	}
	j->answered = true;
	if (j->e->closing) { /* the daemon is being freed: only the job goes */
		job_unref(j);
		return;
	}
	/* a job finish starts (a check's write) is the same verb's */
	struct storejob_audit *outer = current_audit;
	current_audit = j->audit;
	json_t *ans = j->ops->finish(j->data, late);
	current_audit = outer;
	if (late)
		drop_late(j, ans);
	else if (ans)
		j->done(ans, j->arg);
	job_unref(j);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct storejob *j = arg;
	if (!j->answered) {
		j->answered = true;
		log_warn("event=control-store-slow verb=%s wait_ms=%d", j->verb, STOREJOB_WAIT_MS);
		j->done(j->ops->timeout ? j->ops->timeout(j->data) : storejob_no_answer(), j->arg);
	}
	job_unref(j);
}

void storejob_run(const struct control_env *e, enum store_lane lane, const char *verb,
		  const struct storejob_ops *ops, void *data, storejob_done_fn done, void *arg)
{
	if (out[lane] >= STOREJOB_MAX_OUT) {
		done(control_error("store: busy, %zu earlier commands still wait for it", out[lane]),
		     arg);
		if (ops->free)
			ops->free(data);
		else
			free(data);
		return;
	}
	struct storejob *j = xcalloc(1, sizeof(*j));
	/* two references: the lane's, and this call's (the deadline's after) */
	*j = (struct storejob){ .e = e, .ops = ops, .data = data, .verb = verb, .done = done, .arg = arg,
				.refs = 2, .audit = current_audit, .lane = lane };
	out[lane]++;
	if (j->audit)
		j->audit->refs++;
	store_run(e->store, lane, job_work, job_done, j);
	if (j->answered || !e->base) { /* sqlite: answered inside the call */
		job_unref(j);
		return;
	}
	j->deadline = evtimer_new(e->base, on_deadline, j);
	struct timeval tv = { STOREJOB_WAIT_MS / 1000, (STOREJOB_WAIT_MS % 1000) * 1000 };
	evtimer_add(j->deadline, &tv);
}

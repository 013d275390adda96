/*
 * outage.c - the outage lifecycle as a table of rules, checked in order:
 *
 *   state       | condition                                   | action             | next
 *   ------------+---------------------------------------------+--------------------+-----------
 *   OPEN        | endpoint up (automatic outages)             | ended_at = now     | RECOVERING
 *   OPEN        | due_at <= now, inside the send window       | send INITIAL       | ANNOUNCED
 *   ANNOUNCED   | endpoint up (automatic outages)             | ended_at = now     | RECOVERING
 *   ANNOUNCED   | due_at <= now, inside the send window       | send UPDATE        | ANNOUNCED
 *               | (an operator's change sets due_at = now)    |                    |
 *   RECOVERING  | endpoint down again                         | ended_at = 0       | OPEN/ANNOUNCED
 *   RECOVERING  | backlog delivered                           | resolved_at = now  | RESOLVED
 *   RESOLVED    | announced, inside the send window           | send ALLCLEAR      | CLOSED
 *   RESOLVED    | not announced, a notice had fallen due      | send SUMMARY       | CLOSED
 *               | before it ended, inside the send window     |                    |
 *   RESOLVED    | not announced, never past the threshold     | (nothing to say)   | CLOSED
 *
 * "Inside the send window" is timerules_in_send_window(now): a notice that
 * falls due outside it waits, and only the rule that applies in the morning
 * fires - one notice, never a pile of held ones.
 */
#include "outage/outage.h"

#include "codecs/base/mem.h"

#include <string.h>

struct outage *outage_new(const char *endpoint, int64_t started_at, int64_t now,
			  const struct outage_rules *r)
{
	struct outage *o = xcalloc(1, sizeof(*o));
	o->endpoint = xstrdup(endpoint);
	o->state = OUTAGE_OPEN;
	o->started_at = started_at;
	o->declared_at = now;
	o->due_at = started_at + r->threshold_ms;
	return o;
}

bool outage_is_open(const struct outage *o)
{
	return o->state != OUTAGE_CLOSED;
}

static struct outage_action notice(struct outage *o, enum notice_kind kind, int64_t now,
				   const struct outage_rules *r)
{
	struct outage_action a = { .changed = true, .send = true, .kind = kind };
	if (!o->announced_at && kind == NOTICE_INITIAL)
		o->announced_at = now;
	o->last_notice_at = now;
	if (kind == NOTICE_INITIAL || kind == NOTICE_UPDATE) {
		o->state = OUTAGE_ANNOUNCED;
		o->due_at = now + r->update_interval_ms;
	} else {
		o->state = OUTAGE_CLOSED;
		o->closed_at = now;
		o->due_at = 0;
		a.ended_overnight = o->ended_at && !timerules_in_send_window(r->tr, o->ended_at);
	}
	return a;
}

/* OPEN and ANNOUNCED: the endpoint came back, or a notice falls due. */
static struct outage_action while_down(struct outage *o, const struct outage_view *v,
				       const struct outage_rules *r)
{
	if (v->endpoint_up && !o->manual) {
		o->ended_at = v->now;
		o->state = OUTAGE_RECOVERING;
		return (struct outage_action){ .changed = true };
	}
	if (o->due_at && o->due_at <= v->now && timerules_in_send_window(r->tr, v->now))
		return notice(o, o->announced_at ? NOTICE_UPDATE : NOTICE_INITIAL, v->now, r);
	return (struct outage_action){ 0 };
}

static struct outage_action recovering(struct outage *o, const struct outage_view *v)
{
	if (!v->endpoint_up) {
		o->ended_at = 0;
		o->state = o->announced_at ? OUTAGE_ANNOUNCED : OUTAGE_OPEN;
		return (struct outage_action){ .changed = true };
	}
	if (!v->backlog_empty)
		return (struct outage_action){ 0 };
	o->resolved_at = v->now;
	o->state = OUTAGE_RESOLVED;
	return (struct outage_action){ .changed = true };
}

static struct outage_action resolved(struct outage *o, const struct outage_view *v,
				     const struct outage_rules *r)
{
	bool was_due = o->due_at && o->due_at <= (o->ended_at ? o->ended_at : o->resolved_at);
	if (!o->announced_at && !was_due) {
		o->state = OUTAGE_CLOSED;
		o->closed_at = v->now;
		o->due_at = 0;
		return (struct outage_action){ .changed = true };
	}
	if (!timerules_in_send_window(r->tr, v->now))
		return (struct outage_action){ 0 };
	return notice(o, o->announced_at ? NOTICE_ALLCLEAR : NOTICE_SUMMARY, v->now, r);
}

struct outage_action outage_advance(struct outage *o, const struct outage_view *v,
				    const struct outage_rules *r)
{
	struct outage_action a = { 0 };
	/* A state change can make the next rule apply at once (e.g. recovered
	 * and drained in one step); a notice ends the step. */
	for (int i = 0; i < 4 && !a.send; i++) {
		struct outage_action step = { 0 };
		switch (o->state) {
		case OUTAGE_OPEN:
		case OUTAGE_ANNOUNCED: step = while_down(o, v, r); break;
		case OUTAGE_RECOVERING: step = recovering(o, v); break;
		case OUTAGE_RESOLVED: step = resolved(o, v, r); break;
		case OUTAGE_CLOSED: break;
		}
		if (!step.changed)
			break;
		a = step;
	}
	return a;
}

void outage_set_expected(struct outage *o, int64_t expected_end, int64_t now,
			 const struct outage_rules *r)
{
	o->expected_end = expected_end;
	bool long_one = expected_end && expected_end - o->started_at > r->threshold_ms;
	if (long_one && !o->announced_at && o->state == OUTAGE_OPEN && o->due_at > now)
		o->due_at = now;
}

void outage_operator_changed(struct outage *o, int64_t now)
{
	if (o->announced_at && o->state == OUTAGE_ANNOUNCED && o->due_at > now)
		o->due_at = now;
}

void outage_close(struct outage *o, int64_t now)
{
	if (o->state == OUTAGE_CLOSED || o->state == OUTAGE_RESOLVED)
		return;
	if (!o->ended_at)
		o->ended_at = now;
	o->resolved_at = now;
	o->state = OUTAGE_RESOLVED;
}

int64_t outage_next_status_at(const struct outage *o, const struct outage_rules *r)
{
	if (o->state != OUTAGE_OPEN && o->state != OUTAGE_ANNOUNCED)
		return 0;
	if (!o->due_at)
		return 0;
	return timerules_next_send_time(r->tr, o->due_at);
}

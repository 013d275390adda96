/*
 * health.c - the endpoint health state machine.
 *
 *   state    | result                         | next     | change
 *   ---------+--------------------------------+----------+------------
 *   UP       | ok                             | UP       | -
 *   UP       | failure (down_after > 1)       | SUSPECT  | WENT_SUSPECT
 *   UP       | failure (down_after = 1)       | DOWN     | WENT_DOWN
 *   SUSPECT  | ok                             | UP       | CAME_UP
 *   SUSPECT  | failure, count < down_after    | SUSPECT  | -
 *   SUSPECT  | failure, count = down_after    | DOWN     | WENT_DOWN
 *   DOWN     | failure                        | DOWN     | -
 *   DOWN     | ok (a delivery after a pickup  | DOWN     | -
 *            | timeout proves nothing)        |          |
 *   DOWN     | ok                             | UP       | CAME_UP
 *
 * Pure: no I/O, no clock of its own; the caller passes the time.
 */
#include "outage/health.h"

#include "codecs/base/mem.h"

const char *health_state_name(enum health_state s)
{
	static const char *const names[] = { "up", "suspect", "down" };
	return (size_t)s < ARRAY_SIZE(names) ? names[s] : "?";
}

static enum health_change set_state(struct health *h, enum health_state s, int64_t now)
{
	static const enum health_change to[] = { HEALTH_CAME_UP, HEALTH_WENT_SUSPECT,
						 HEALTH_WENT_DOWN };
	if (h->state == s)
		return HEALTH_SAME;
	h->state = s;
	h->since = now;
	return to[s];
}

static enum health_change failed(struct health *h, enum transport_fault f, const char *error,
				 int64_t now, int down_after)
{
	if (h->failures++ == 0)
		h->first_failure_at = now;
	h->fault = f;
	str_copy(h->error, error ? error : "", sizeof(h->error));
	if (h->failures >= down_after)
		return set_state(h, HEALTH_DOWN, now);
	return set_state(h, HEALTH_SUSPECT, now);
}

enum health_change health_observe(struct health *h, bool ok, bool probe, enum transport_fault f,
				  const char *error, int64_t now, int down_after)
{
	h->last_check_at = now;
	if (!ok)
		return failed(h, f, error, now, down_after < 1 ? 1 : down_after);
	/* Writing into an outbox nobody empties is no sign of recovery. */
	if (!probe && h->state != HEALTH_UP && h->fault == FAULT_TIMEOUT)
		return HEALTH_SAME;
	h->failures = 0;
	h->first_failure_at = 0;
	h->fault = FAULT_NONE;
	h->error[0] = '\0';
	return set_state(h, HEALTH_UP, now);
}

/*
 * outage.h - one outage's lifecycle, as the regional procedure runs it:
 *
 *   open -> announced (threshold crossed, first notice) -> updated ...
 *        -> recovering (endpoint back, backlog draining)
 *        -> resolved (backlog delivered: all-clear due) -> closed
 *
 * An outage shorter than the threshold is recorded and visible but sends
 * nothing. Notices fall due on the clock (start + threshold, then every
 * update interval) and are held while outside the send window; a notice
 * held overnight is replaced by whatever is due in the morning, so an
 * outage that ended overnight gets one morning notice that says so.
 *
 * Pure: outage_advance() decides from the outage, what is known about its
 * endpoint now, and the rules; the caller stores the result and sends what
 * it is told to send. The outage itself is the stored record (records.h).
 */
#ifndef EDIBROKER_OUTAGE_H
#define EDIBROKER_OUTAGE_H

#include "notice/notice.h"
#include "store/records.h"
#include "time/timerules.h"

#include <stdbool.h>
#include <stdint.h>

struct outage_rules {
	int64_t threshold_ms;
	int64_t update_interval_ms;
	const struct timerules *tr;
};

/* What is known about the endpoint now. */
struct outage_view {
	int64_t now;
	bool endpoint_up;    /* health is UP */
	bool backlog_empty;  /* nothing queued for it */
};

/* What the caller must do after outage_advance(). */
struct outage_action {
	bool changed;            /* save the outage */
	bool send;               /* compose and send a notice of `kind` now */
	enum notice_kind kind;
	bool ended_overnight;    /* for that notice: it ended outside the send window */
};

/* Opens an outage of endpoint started at started_at (declared now); free
 * with outage_free() (records.h). */
struct outage *outage_new(const char *endpoint, int64_t started_at, int64_t now,
			  const struct outage_rules *r);

/* Advances the lifecycle as far as the view allows; at most one notice per
 * call. When the action says send, the outage already counts the notice as
 * sent (announced_at, last_notice_at, next due time). */
struct outage_action outage_advance(struct outage *o, const struct outage_view *v,
				    const struct outage_rules *r);

/* Operator: expected end (0 = unknown). If that takes the outage past the
 * threshold, the first notice falls due at once (still within the window). */
void outage_set_expected(struct outage *o, int64_t expected_end, int64_t now,
			 const struct outage_rules *r);
/* Operator: something the notices carry changed (expected end, contact,
 * cause, whom to phone). An announced outage that is still down owes its
 * readers an update at once (held into the send window like any notice),
 * not at the next update interval. */
void outage_operator_changed(struct outage *o, int64_t now);
/* Operator: close now; an announced outage still gets its all-clear. */
void outage_close(struct outage *o, int64_t now);

/* When the next status will be sent after a notice sent at `at` (held into
 * the send window); 0 when none follows (all-clear, summary). */
int64_t outage_next_status_at(const struct outage *o, const struct outage_rules *r);

/* True until the outage is closed. */
bool outage_is_open(const struct outage *o);

#endif

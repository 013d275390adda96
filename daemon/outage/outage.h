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
 * it is told to send.
 */
#ifndef EDIBROKER_OUTAGE_H
#define EDIBROKER_OUTAGE_H

#include "notice/notice.h"
#include "store/store.h"
#include "time/timerules.h"

#include <stdbool.h>
#include <stdint.h>

enum outage_state { OUTAGE_OPEN, OUTAGE_ANNOUNCED, OUTAGE_RECOVERING, OUTAGE_RESOLVED,
		    OUTAGE_CLOSED };

struct outage {
	int64_t id;               /* store id; 0 until saved */
	char *endpoint;
	enum outage_state state;
	bool manual;              /* opened by an operator: only an operator closes it */
	int64_t started_at;       /* first failure (or end of a maintenance window) */
	int64_t declared_at;      /* declared DOWN / opened */
	int64_t ended_at;         /* endpoint up again; 0 while down */
	int64_t resolved_at;      /* backlog delivered (or closed by hand); 0 before */
	int64_t closed_at;
	int64_t announced_at;     /* first notice sent; 0 = never */
	int64_t last_notice_at;
	int64_t due_at;           /* next notice falls due (held outside the window); 0 = none */
	int64_t expected_end;     /* operator's estimate; 0 = unknown */
	char *cause_fault;        /* transport fault class of the last failure */
	char *cause_error;        /* last error text */
	char *cause_override;     /* operator's cause, NULL = none */
	char *contact_override;   /* operator's contact, NULL = none */
	int64_t maintenance_id;
	int64_t delivered_late;   /* messages delivered to it since the start */
};

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

/* Opens an outage of endpoint started at started_at (declared now). */
struct outage *outage_new(const char *endpoint, int64_t started_at, int64_t now,
			  const struct outage_rules *r);
void outage_free(struct outage *o);

/* Advances the lifecycle as far as the view allows; at most one notice per
 * call. When the action says send, the outage already counts the notice as
 * sent (announced_at, last_notice_at, next due time). */
struct outage_action outage_advance(struct outage *o, const struct outage_view *v,
				    const struct outage_rules *r);

/* Operator: expected end (0 = unknown). If that takes the outage past the
 * threshold, the first notice falls due at once (still within the window). */
void outage_set_expected(struct outage *o, int64_t expected_end, int64_t now,
			 const struct outage_rules *r);
/* Operator: close now; an announced outage still gets its all-clear. */
void outage_close(struct outage *o, int64_t now);

/* When the next status will be sent after a notice sent at `at` (held into
 * the send window); 0 when none follows (all-clear, summary). */
int64_t outage_next_status_at(const struct outage *o, const struct outage_rules *r);

/* True until the outage is closed. */
bool outage_is_open(const struct outage *o);

const char *outage_state_name(enum outage_state s);
int outage_state_from_name(const char *name);

/* Conversions to and from the stored record. to_record borrows o's strings. */
void outage_to_record(const struct outage *o, struct store_outage *rec);
struct outage *outage_from_record(const struct store_outage *rec);

#endif

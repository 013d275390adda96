/*
 * procedure.h - the regional outage procedure, run by the broker itself
 * (../shared/domain/outage-procedure.md).
 *
 * It keeps every configured endpoint's health (from delivery results and
 * probes of idle or failing endpoints), opens an outage when one goes DOWN,
 * advances each outage's lifecycle on a timer, composes the notices that
 * fall due within the time rules and has them carried over e-mail, webhook
 * and - when e-mail keeps failing - the fallback command, records every
 * attempt, keeps planned shutdowns, and rewrites the intranet status page.
 * Outages, notices and maintenance windows live in the store, so a restart
 * resumes where it was.
 *
 * It gets the world through struct procedure_env (the store, a clock, a
 * notifier, a view of the endpoints' queues and a way to probe them) and
 * the config, and knows nothing of the broker: the wiring feeds it results
 * and reads its state.
 */
#ifndef EDIBROKER_PROCEDURE_H
#define EDIBROKER_PROCEDURE_H

#include "conf/config.h"
#include "outage/health.h"
#include "outage/notifier.h"
#include "store/store.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct notice_templates;
struct procedure;
struct procedure_change;

/* What the procedure is told about one endpoint's queue. */
struct procedure_ep_view {
	int64_t queued;              /* messages waiting */
	int64_t oldest_received_at;  /* wall ms of the oldest; 0 = none */
	bool busy;                   /* a delivery or probe is running, or nothing to probe with */
};

struct procedure_env {
	struct event_base *base;     /* for the timer (procedure_start) */
	struct store *store;
	int64_t (*now)(void *ctx);   /* wall ms; NULL = clock_wall_ms() */
	const struct notifier *notifier;
	/* Fills *v for endpoint; false when it has no queue now (not configured). */
	bool (*endpoint_view)(void *ctx, const char *endpoint, struct procedure_ep_view *v);
	/* Starts a probe of endpoint; false when none can start now. Its result
	 * comes back through procedure_on_result(). */
	bool (*probe)(void *ctx, const char *endpoint);
	void *ctx;
	/* Optional (several daemons): true while this daemon runs the
	 * procedure (holds its lease). While false the timer does nothing and
	 * operators' changes are refused: another node acts. NULL = always. */
	bool (*may_act)(void *ctx);
};

/* A finished delivery attempt or probe of one endpoint. */
struct procedure_result {
	bool ok;
	bool probe;               /* from a probe rather than a delivery */
	enum transport_fault fault;
	const char *error;        /* of a failure; NULL or "" when ok */
	size_t delivered;         /* messages confirmed by this attempt */
};

/* An endpoint's health as operators see it. */
struct procedure_health {
	const char *state;        /* "up", "suspect", "down", "held", "maintenance" */
	int64_t since;            /* wall ms: in that health state since */
};

/* Loads open outages, pending notices and maintenance windows from the
 * store, and applies cfg's time rules and notice templates. Start-up only:
 * the load is a synchronous read on env.store, before the loop runs (it
 * has nothing to do until it has them). env is copied;
 * cfg is borrowed until the next procedure_reload() or procedure_free().
 * NULL with a reason in err. */
struct procedure *procedure_new(const struct procedure_env *env, const struct config *cfg,
				char *err, size_t errlen);
/* Accepts NULL. Send rounds still running must have completed first. */
void procedure_free(struct procedure *p);
/* Starts the timer (every 500 ms: probes, lifecycle, notices, status
 * page). Its store steps run on the store's lanes (store_run): with a
 * server store the loop never waits on one. */
void procedure_start(struct procedure *p);
/* This daemon takes over the procedure from another (its lease): the
 * outages, windows and pending notices are read again from the store
 * (on its read lane), where the last holder left them, and the health of
 * endpoints with an open outage starts DOWN. Notices still being sent by
 * this daemon are kept. Until that read has come back the procedure does
 * nothing (a failed read is logged and the timer reads again). */
void procedure_resync(struct procedure *p);
/* The procedure's lease as this daemon holds it now (f copied; NULL:
 * none): every save the procedure makes from now on carries it, so a
 * node that lost the lease changes nothing (store_fence_records). */
void procedure_fence(struct procedure *p, const struct store_fence *f);
/* One round of the timer's work now (the timer calls it; tests do). */
void procedure_tick(struct procedure *p);
/* The config changed: cfg (borrowed) replaces the old one, with new time
 * rules and tpl (loaded by the caller from cfg, taken over). On a bad rule
 * the old rules and templates stay, err says why and -EINVAL is returned;
 * cfg is in use either way. */
int procedure_reload(struct procedure *p, const struct config *cfg, struct notice_templates *tpl,
		     char *err, size_t errlen);

/* An endpoint was created (start-up, reload): its health starts UP, or
 * DOWN when an outage of it is open (a restart resumes it). */
void procedure_endpoint_added(struct procedure *p, const char *endpoint);
/* An endpoint was removed (reload): its health is forgotten. */
void procedure_endpoint_removed(struct procedure *p, const char *endpoint);
/* A delivery attempt or probe of endpoint finished. */
void procedure_on_result(struct procedure *p, const char *endpoint,
			 const struct procedure_result *r);
/* An operator held (or released) endpoint's delivery. While held it is
 * treated like a planned shutdown: going down opens no outage, and an open
 * outage sends no notices and stays where it is; its health reads "held".
 * Released while still down, the acute procedure starts from the release. */
void procedure_endpoint_held(struct procedure *p, const char *endpoint, bool held);

/* Health of endpoint for the status command; false when it is not known. */
bool procedure_endpoint_health(struct procedure *p, const char *endpoint,
			       struct procedure_health *h);
/* The state name of endpoint's open outage ("open", "announced",
 * "recovering", "resolved"), or NULL when it has none. */
const char *procedure_outage_state(struct procedure *p, const char *endpoint);
/* Counts for STATUS=. */
int procedure_endpoints_down(const struct procedure *p);
int procedure_open_outages(const struct procedure *p);

/* Operators' changes, record-then-apply, so the loop never waits on the
 * store. by names the operator ("name (uid N)") and is saved as the
 * record's changed_by. A *_prepare() checks the change against p (-errno
 * with a reason in err: -ENOENT, -EEXIST, -EINVAL, -EAGAIN another node
 * runs the procedure, -EBUSY a change to the same outage or window is in
 * flight: retry) and hands the record to save in *out, p unchanged. Then,
 * in this order: procedure_change_write() on a store lane, and on the loop
 * either procedure_change_apply() (the write succeeded) or
 * procedure_change_drop() (it failed), then procedure_change_free(). Until
 * then no other change to that record is prepared. */
int procedure_outage_open_prepare(struct procedure *p, const char *by, const char *endpoint,
				  const char *cause, struct procedure_change **out, char *err,
				  size_t errlen);
int procedure_outage_close_prepare(struct procedure *p, const char *by, int64_t id,
				   struct procedure_change **out, char *err, size_t errlen);
int procedure_outage_set_prepare(struct procedure *p, const char *by, int64_t id,
				 const char *expected, const char *contact, const char *cause,
				 const char *fallback, struct procedure_change **out, char *err,
				 size_t errlen);
int procedure_maintenance_add_prepare(struct procedure *p, const char *by, const char *endpoint,
				      const char *from, const char *to, const char *reason,
				      const char *contact, struct procedure_change **out,
				      char *err, size_t errlen);
int procedure_maintenance_remove_prepare(struct procedure *p, const char *by, int64_t id,
					 struct procedure_change **out, char *err, size_t errlen);
/* Saves c's record on view (any thread: touches c and view only). 0, or
 * -errno with "store: ..." in err. */
int procedure_change_write(struct procedure_change *c, struct store *view, char *err,
			   size_t errlen);
/* The id of c's outage or window (assigned by the write for a new one). */
int64_t procedure_change_id(const struct procedure_change *c);
/* The write succeeded: the same change made to p, which is free for the next. */
void procedure_change_apply(struct procedure *p, struct procedure_change *c);
/* The write failed (or was never made): p is free for the next change. */
void procedure_change_drop(struct procedure *p, struct procedure_change *c);
/* Accepts NULL. Touches only c (p may be gone). */
void procedure_change_free(struct procedure_change *c);

/* Open and set written at once on env.store (for callers without a
 * loop: tests): 0 once saved and applied, or -errno with a reason
 * in err (-EIO: the store failed). */
int procedure_outage_open(struct procedure *p, const char *by, const char *endpoint,
			  const char *cause, int64_t *id, char *err, size_t errlen);
/* Fields left NULL stay as they are; expected "" or "unknown" clears it, ""
 * clears the others. fallback: whom staff phone during this outage, over
 * the endpoint's fallback_contact. A change to an announced outage sends an
 * update at once (within the time rules). */
int procedure_outage_set(struct procedure *p, const char *by, int64_t id, const char *expected,
			 const char *contact, const char *cause, const char *fallback, char *err,
			 size_t errlen);

#endif

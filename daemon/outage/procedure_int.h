/*
 * procedure_int.h - internals shared by procedure.c (health, lifecycle,
 * timer), procedure_notice.c (composing and sending notices),
 * procedure_status.c (the status page), procedure_ops.c (operators'
 * commands) and procedure_jobs.c (their store steps on the store's lanes).
 * Nothing else includes this.
 */
#ifndef EDIBROKER_PROCEDURE_INT_H
#define EDIBROKER_PROCEDURE_INT_H

#include "outage/health.h"
#include "outage/maintenance.h"
#include "notice/notice.h"
#include "outage/outage.h"
#include "outage/procedure.h"
#include "time/timerules.h"

#include <event2/event.h>

/* The health of one configured endpoint. */
struct ep_health {
	char *name;
	struct health h;
	bool held;                /* an operator holds its delivery (like a planned shutdown) */
	bool open_missed;         /* went down, but its outage could not be saved */
};

/* A notice with channels still to carry it: its record, and the state of
 * its sending that is not stored. */
struct pnotice {
	struct pnotice *next;
	struct notice_record *rec;
	bool fallback_done;
	bool in_flight;           /* a send round, or the record of one, is out */
};

/* What the store holds for the procedure (procedure_state_read()). */
struct procedure_state {
	struct outage **outages;  /* not closed */
	size_t noutages;
	struct maint **maint;     /* in force, not ended */
	size_t nmaint;
	struct notice_record **notices; /* with channels pending */
	size_t nnotices;
};

/* One store step of the procedure (procedure_jobs.c). A job's struct
 * embeds this first; work runs on a lane and touches only the job, done
 * runs on the loop (skipped once the procedure is gone), free frees it. */
struct pjob;
typedef void (*pjob_work_fn)(struct store *view, struct pjob *j);
typedef void (*pjob_done_fn)(struct procedure *p, struct pjob *j);
typedef void (*pjob_free_fn)(struct pjob *j);

struct pjob {
	struct pjob *next;
	struct procedure *p;          /* NULL once the procedure is freed */
	int64_t outage_id, maint_id;  /* the record it works on; 0 = none */
	char *opening;                /* the endpoint whose outage it opens (owned) */
	bool saves;                   /* saves that record: operators wait for it too */
	struct store_fence fence;     /* the procedure's lease when it was made */
	pjob_work_fn work;
	pjob_done_fn done;
	pjob_free_fn free;
};

struct procedure {
	struct procedure_env env;
	const struct config *cfg;
	struct timerules *tr;
	struct notice_templates *tpl;
	struct outage_rules rules;
	struct ep_health **eps;   /* configured endpoints, in the order added */
	size_t neps;
	struct outage **outages;  /* not closed */
	size_t noutages;
	struct maint **maint;     /* in force and not yet ended */
	size_t nmaint;
	struct pnotice *notices;
	/* The mail server refused the credentials whose fingerprint this is
	 * (procedure_notice.c): e-mail waits until the config changes them. */
	bool email_denied;
	uint64_t email_denied_fp;
	struct event *tick_ev;
	bool stale;               /* taken over, the store's copy not yet read */
	bool status_dirty;
	int64_t status_written_at;
	bool status_error_logged;
	/* a run of failed takeover reads, of failed window saves, is logged
	 * at its first failure and at the success that ends it */
	bool resync_failing;
	bool maint_save_failing;
	/* The operators' changes being written on a store lane (procedure_ops.c),
	 * each owned by whoever writes it; at most one per outage or window. */
	struct procedure_change **changes;
	size_t nchanges;
	struct pjob *jobs;        /* the timer's store steps out on lanes */
	struct store_fence fence; /* the procedure's lease (lease owned); none = unfenced */
	uint64_t resync_gen;      /* the takeover read whose result counts */
	bool resyncing;           /* that read is out */
	bool status_reading;      /* the status page's queue read is out */
};

/* procedure.c */
int64_t procedure_now(struct procedure *p);
/* True unless another daemon runs the procedure now (env.may_act). */
bool procedure_acting(struct procedure *p);
struct health *procedure_health_of(struct procedure *p, const char *endpoint);
/* The env's view of endpoint's queue into *v, all zero when it has none
 * now (then false). */
bool procedure_ep_view(struct procedure *p, const char *endpoint, struct procedure_ep_view *v);
struct outage *procedure_find_outage(struct procedure *p, const char *endpoint);
struct outage *procedure_outage_by_id(struct procedure *p, int64_t id);
/* The window id in force (its index into *at unless at is NULL), or NULL. */
struct maint *procedure_maint_by_id(struct procedure *p, int64_t id, size_t *at);
void procedure_add_outage(struct procedure *p, struct outage *o);
bool procedure_in_maintenance(struct procedure *p, const char *endpoint, int64_t now);
/* Replaces the outages, windows and pending notices with st's (taken;
 * notices being sent are kept), and health follows the outages. */
void procedure_state_apply(struct procedure *p, struct procedure_state *st);
/* True when an operator holds endpoint. */
bool procedure_is_held(struct procedure *p, const char *endpoint);
/* "up", "suspect", "down", "held" or "maintenance" for endpoint with health h. */
const char *procedure_health_name(struct procedure *p, const char *endpoint,
				  const struct health *h, int64_t now);

/* procedure_ops.c: true when p's change in flight is to outage_id, to
 * the window maint_id, or (opening non-NULL) opens an outage of that
 * endpoint. The timer leaves those alone meanwhile. */
bool procedure_change_is(const struct procedure *p, int64_t outage_id, int64_t maint_id,
			 const char *opening);

/* procedure_jobs.c: runs j on lane with p's fence, p owning it until done. */
void procedure_job_run(struct procedure *p, enum store_lane lane, struct pjob *j);
/* True when a job of p works on that record (saves_only: saves it). */
bool procedure_job_on(const struct procedure *p, int64_t outage_id, int64_t maint_id,
		      const char *opening, bool saves_only);
/* True when an operator's change or a job of the timer works on that
 * record (saves_only: a job that saves it). The timer leaves it alone
 * while any job works on it; an operator's change waits only for a save. */
bool procedure_busy(const struct procedure *p, int64_t outage_id, int64_t maint_id,
		    const char *opening, bool saves_only);
/* The procedure is going: jobs still out only free themselves. */
void procedure_jobs_detach(struct procedure *p);
/* Reads st from s (any thread: touches s and st). 0 or -errno. */
int procedure_state_read(struct store *s, struct procedure_state *st);
void procedure_state_free(struct procedure_state *st);

/* procedure_notice.c */
void procedure_outage_notice(struct procedure *p, struct outage *o, enum notice_kind kind,
			     bool ended_overnight, int64_t now);
void procedure_planned_notice(struct procedure *p, struct maint *m, int64_t now);
void procedure_notices_tick(struct procedure *p, int64_t now);
/* Replaces the pending notices with recs[0..n) (taken), keeping those
 * being sent now. */
void procedure_notices_replace(struct procedure *p, struct notice_record **recs, size_t n);
void procedure_notices_free(struct procedure *p);
/* The organisation behind endpoint, as notices and the page name it. */
const char *procedure_organisation_of(const struct config *cfg, const char *endpoint);

/* procedure_status.c: rewrites the status page when due. */
void procedure_status_tick(struct procedure *p, int64_t now);

#endif

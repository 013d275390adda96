/*
 * procedure_int.h - internals shared by procedure.c (health, lifecycle,
 * timer), procedure_notice.c (composing and sending notices) and
 * procedure_ops.c (operators' commands). Nothing else includes this.
 */
#ifndef EDIBROKER_PROCEDURE_INT_H
#define EDIBROKER_PROCEDURE_INT_H

#include "daemon/broker_int.h"
#include "outage/maintenance.h"
#include "notice/notice.h"
#include "outage/outage.h"
#include "outage/procedure.h"
#include "time/timerules.h"

#include <event2/event.h>

/* A notice with channels still to carry it. */
struct pnotice {
	struct pnotice *next;
	int64_t id, outage_id, maintenance_id;
	char *kind, *audience, *recipients, *subject, *body, *payload;
	int64_t created_at;
	char *pending;            /* "email,webhook" */
	int attempts;
	int64_t next_attempt_at;
	bool fallback_done;
	bool in_flight;
};

struct procedure {
	struct broker *b;
	struct timerules *tr;
	struct notice_templates *tpl;
	struct outage_rules rules;
	struct outage **outages;  /* not closed */
	size_t noutages;
	struct maint **maint;     /* in force and not yet ended */
	size_t nmaint;
	struct pnotice *notices;
	struct event *tick_ev;
	bool status_dirty;
	int64_t status_written_at;
	bool status_error_logged;
};

/* procedure.c */
struct outage *procedure_find_outage(struct procedure *p, const char *endpoint);
struct outage *procedure_outage_by_id(struct procedure *p, int64_t id);
int procedure_save_outage(struct procedure *p, struct outage *o);
void procedure_add_outage(struct procedure *p, struct outage *o);
bool procedure_in_maintenance(struct procedure *p, const char *endpoint, int64_t now);
int procedure_save_maint(struct procedure *p, struct maint *m);

/* procedure_notice.c */
void procedure_outage_notice(struct procedure *p, struct outage *o, enum notice_kind kind,
			     bool ended_overnight, int64_t now);
void procedure_planned_notice(struct procedure *p, struct maint *m, int64_t now);
void procedure_notices_tick(struct procedure *p, int64_t now);
int procedure_load_notices(struct procedure *p);
void procedure_notices_free(struct procedure *p);
void procedure_status_tick(struct procedure *p, int64_t now);

#endif

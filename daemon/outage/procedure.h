/*
 * procedure.h - the regional outage procedure, run by the broker itself
 * (../shared/domain/outage-procedure.md).
 *
 * It watches every endpoint's health (deliveries, and probes of idle or
 * failing endpoints), opens an outage when one goes DOWN, advances each
 * outage's lifecycle on a timer, composes the notices that fall due within
 * the time rules and sends them over e-mail, webhook and - when e-mail keeps
 * failing - the fallback command, records every attempt, keeps planned
 * shutdowns, and rewrites the intranet status page. Outages, notices and
 * maintenance windows live in the store, so a restart resumes where it was.
 *
 * A part of the broker: it works on the broker's endpoints (broker_int.h).
 */
#ifndef EDIBROKER_PROCEDURE_H
#define EDIBROKER_PROCEDURE_H

#include "deliver/deliver.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct endpoint;
struct notice_templates;
struct procedure;

/* Loads open outages, pending notices and maintenance windows, applies the
 * time rules and templates of the broker's config. NULL with a reason. */
struct procedure *procedure_new(struct broker *b, char *err, size_t errlen);
void procedure_free(struct procedure *p);
/* Starts the timer (probes, lifecycle, notices, status page). */
void procedure_start(struct procedure *p);
/* The config changed: new time rules, and tpl (loaded by the caller from
 * the new config, taken over). On a bad rule the old rules and templates
 * stay and err says why (-EINVAL). */
int procedure_reload(struct procedure *p, struct notice_templates *tpl, char *err,
		     size_t errlen);

/* A delivery attempt or probe of ep finished (deliver.h on_event). */
void procedure_on_delivery(struct procedure *p, struct endpoint *ep,
			   const struct deliver_event *ev);
/* An endpoint was created (start-up, reload): take up its open outage. */
void procedure_endpoint_added(struct procedure *p, struct endpoint *ep);

/* Counts for STATUS=. */
int procedure_endpoints_down(const struct procedure *p);
int procedure_open_outages(const struct procedure *p);

/* Operators' commands (control socket). Each returns 0 or -errno with a
 * reason in err; the JSON ones return a new reference or NULL with err. */
int procedure_outage_open(struct procedure *p, const char *endpoint, const char *cause,
			  int64_t *id, char *err, size_t errlen);
int procedure_outage_close(struct procedure *p, int64_t id, char *err, size_t errlen);
/* Fields left NULL stay as they are; expected "" or "unknown" clears it. */
int procedure_outage_set(struct procedure *p, int64_t id, const char *expected,
			 const char *contact, const char *cause, char *err, size_t errlen);
json_t *procedure_outages_json(struct procedure *p, bool all, char *err, size_t errlen);
json_t *procedure_outage_json(struct procedure *p, int64_t id, char *err, size_t errlen);
int procedure_maintenance_add(struct procedure *p, const char *endpoint, const char *from,
			      const char *to, const char *reason, const char *contact, int64_t *id,
			      char *err, size_t errlen);
int procedure_maintenance_remove(struct procedure *p, int64_t id, char *err, size_t errlen);
json_t *procedure_maintenance_json(struct procedure *p, bool all, char *err, size_t errlen);
/* Endpoint health for status: "up", "suspect", "down", "maintenance". */
const char *procedure_health_name(struct procedure *p, struct endpoint *ep);

#endif

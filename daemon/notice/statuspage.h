/*
 * statuspage.h - the intranet status page: status.html and status.json in
 * [notify] status_dir, rewritten atomically (temporary file, fsync, rename,
 * folder fsync) so the intranet's web server never serves half a page.
 *
 * Written for the people the outage procedure serves, on a phone at a
 * ward or on a wall screen at the EDI desk: a banner on top that says in
 * plain Danish (or English) whether messages go, and if not to whom and
 * since when, what waits and when the next status comes; the page title
 * says the same in short. Then a card per open outage and per planned
 * shutdown (cause, affected messages by name and count, expected
 * downtime, contact, what to do meanwhile, next status), the endpoints,
 * and the outages that ended lately. Content is names, counts, times and
 * the operators' words only: no path, errno text or library message.
 */
#ifndef EDIBROKER_STATUSPAGE_H
#define EDIBROKER_STATUSPAGE_H

#include <stddef.h>
#include <stdint.h>

/* Messages of one type waiting. */
struct status_type {
	const char *type;          /* as the codecs report it: "XDIS20" */
	int64_t count;
};

struct status_endpoint {
	const char *name;
	const char *organisation;
	const char *kind;          /* hospital | municipality | other */
	const char *health;        /* "up", "suspect", "down", "maintenance", "held" */
	int64_t since;             /* in this health since (wall ms) */
	int64_t queued;
	int64_t oldest_received_at; /* 0 = none */
	const char *fault;         /* the last failure's class (base/fault.h name); "" = none */
};

struct status_outage {
	int64_t id;
	const char *endpoint;
	const char *organisation;
	const char *state;         /* open, announced, recovering, resolved, closed */
	int64_t started_at, ended_at, expected_end, next_status_at;
	const char *cause_fault;   /* fault class (stable name), "" = none */
	const char *cause;         /* the operator's cause; "" = the fault class in words */
	const char *contact;
	const char *fallback_contact; /* whom to phone meanwhile; "" = support_phone */
	const char *fallback_note;
	int64_t queued;
	int64_t oldest_received_at; /* 0 = none */
	const struct status_type *types;
	size_t ntypes;
};

struct status_maintenance {
	int64_t id;
	const char *endpoint;
	const char *organisation;
	int64_t from, to;
	const char *reason;
	const char *contact;
	const char *fallback_contact;
	const char *fallback_note;
	int64_t queued;            /* waiting now (while the window is in force) */
	const struct status_type *types;
	size_t ntypes;
};

struct status_page {
	const char *language;      /* "da" or "en" */
	int64_t generated_at;
	const struct status_endpoint *endpoints;
	size_t nendpoints;
	const struct status_outage *outages;
	size_t noutages;
	const struct status_maintenance *maintenance;
	size_t nmaintenance;
	const char *support_phone; /* [notify] support_phone; NULL = none */
};

/* Writes status.html, then status.json (the page's script polls the JSON,
 * so it changes only once the page it announces is in place), into dir
 * (created when missing). 0 or -errno with a reason in err. */
int statuspage_write(const char *dir, const struct status_page *p, char *err, size_t errlen);

#endif

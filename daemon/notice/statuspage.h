/*
 * statuspage.h - the intranet status page: status.html and status.json in
 * [notify] status_dir, rewritten atomically (temporary file, fsync, rename,
 * folder fsync) so the intranet's web server never serves half a page.
 *
 * It shows every endpoint's health and queue, the open and recent outages
 * with their four fields and the next status time, and the planned
 * shutdowns. Content is ids, names, counts and times only.
 */
#ifndef EDIBROKER_STATUSPAGE_H
#define EDIBROKER_STATUSPAGE_H

#include <stddef.h>
#include <stdint.h>

struct status_endpoint {
	const char *name;
	const char *organisation;
	const char *kind;          /* hospital | municipality | other */
	const char *health;        /* "up", "suspect", "down", "maintenance" */
	int64_t since;             /* in this health since (wall ms) */
	int64_t queued;
	int64_t oldest_received_at; /* 0 = none */
	const char *last_error;    /* "" when none */
};

struct status_outage {
	int64_t id;
	const char *endpoint;
	const char *organisation;
	const char *state;         /* open, announced, recovering, resolved, closed */
	int64_t started_at, ended_at, expected_end, next_status_at;
	const char *cause;
	const char *contact;
	int64_t queued;
};

struct status_maintenance {
	int64_t id;
	const char *endpoint;
	const char *organisation;
	int64_t from, to;
	const char *reason;
	const char *contact;
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
};

/* Writes status.json and status.html into dir (created when missing).
 * 0 or -errno with a reason in err. */
int statuspage_write(const char *dir, const struct status_page *p, char *err, size_t errlen);

#endif

/*
 * maintenance.h - planned shutdowns ("planlagt nedlukning") and what they
 * mean for the outage procedure:
 *   - a window longer than the threshold is announced as soon as it is
 *     registered, within the time rules (a window that is over before the
 *     send window opens is not announced any more);
 *   - during [from, to) the endpoint's messages queue silently: no acute
 *     outage opens;
 *   - if the endpoint is still down when the window ends, the acute
 *     procedure runs from the window's end.
 * Pure: the caller passes the time and what it knows about the endpoint.
 * A window is the stored record (records.h, struct maint).
 */
#ifndef EDIBROKER_MAINTENANCE_H
#define EDIBROKER_MAINTENANCE_H

#include "store/records.h"
#include "time/timerules.h"

#include <stdbool.h>
#include <stdint.h>

struct maint_step {
	bool changed;           /* save the window */
	bool announce;          /* send the planned-shutdown notice now */
	bool ended;             /* the window is over (handled now) */
	bool open_acute;        /* the endpoint is still down: open an outage... */
	int64_t acute_start;    /* ...starting at the window's end */
};

/* True when w covers endpoint at time t. */
bool maint_covers(const struct maint *w, const char *endpoint, int64_t t);

/* Advances w at now. endpoint_down: its health is not UP; outage_open: an
 * outage is already open for it. */
struct maint_step maint_advance(struct maint *w, int64_t now, int64_t threshold_ms,
				const struct timerules *tr, bool endpoint_down, bool outage_open);

#endif

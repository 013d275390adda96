/*
 * health.h - an endpoint's health: UP, SUSPECT or DOWN, from the results of
 * deliveries and probes.
 *
 * Hysteresis as relayd checks hosts: one failure makes an endpoint SUSPECT,
 * down_after consecutive failures make it DOWN, one success brings it back
 * UP. The outage's start is the first failure of the run, not the moment it
 * was declared. A spool endpoint that is down because its files are not
 * collected (pickup timeout) is not brought back up by a successful write:
 * only a probe can see that files are collected again.
 */
#ifndef EDIBROKER_HEALTH_H
#define EDIBROKER_HEALTH_H

#include "base/fault.h"

#include <stdbool.h>
#include <stdint.h>

enum health_state { HEALTH_UP, HEALTH_SUSPECT, HEALTH_DOWN };

struct health {
	enum health_state state;
	int failures;               /* consecutive failed checks */
	int64_t first_failure_at;   /* wall ms of the first failure of the run; 0 when up */
	int64_t since;              /* wall ms: in this state since */
	int64_t last_check_at;      /* wall ms of the last result (delivery or probe) */
	enum transport_fault fault; /* of the last failure */
	char error[192];            /* of the last failure */
};

enum health_change { HEALTH_SAME, HEALTH_WENT_SUSPECT, HEALTH_WENT_DOWN, HEALTH_CAME_UP };

/* One result. probe: it came from a probe rather than a delivery. Returns
 * the transition it caused. */
enum health_change health_observe(struct health *h, bool ok, bool probe, enum transport_fault f,
				  const char *error, int64_t now, int down_after);

/* "up", "suspect", "down". */
const char *health_state_name(enum health_state s);

#endif

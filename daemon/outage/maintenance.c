/*
 * maintenance.c - the planned-shutdown rules:
 *
 *   condition                                               | action
 *   --------------------------------------------------------+-------------------------------
 *   longer than the threshold, not announced, not over yet, | announce (planned notice)
 *   inside the send window                                  |
 *   over (now >= to), end not yet handled                   | ended; if the endpoint is still
 *                                                           | down and no outage is open:
 *                                                           | acute outage from `to`
 */
#include "outage/maintenance.h"

#include "codecs/base/mem.h"

#include <string.h>

bool maint_covers(const struct maint *w, const char *endpoint, int64_t t)
{
	return strcmp(w->endpoint, endpoint) == 0 && w->from <= t && t < w->to;
}

struct maint_step maint_advance(struct maint *w, int64_t now, int64_t threshold_ms,
				const struct timerules *tr, bool endpoint_down, bool outage_open)
{
	struct maint_step s = { 0 };
	bool long_one = w->to - w->from > threshold_ms;
	if (long_one && !w->announced_at && now < w->to && timerules_in_send_window(tr, now)) {
		w->announced_at = now;
		s.changed = s.announce = true;
	}
	if (!w->ended_at && now >= w->to) {
		w->ended_at = now;
		s.changed = s.ended = true;
		s.open_acute = endpoint_down && !outage_open;
		s.acute_start = w->to;
	}
	return s;
}

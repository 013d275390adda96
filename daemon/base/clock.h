/*
 * clock.h - the daemon's two clocks.
 *
 * Monotonic time drives timers, backoff and ages of in-memory state.
 * Wall-clock time (milliseconds since the epoch) stamps stored records and
 * drives the calendar rules (opening hours, the 22:00 cut-off). Tests
 * replace the wall clock so a two-hour outage runs in milliseconds.
 */
#ifndef EDIBROKER_CLOCK_H
#define EDIBROKER_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch, from the current wall-clock source. */
int64_t clock_wall_ms(void);
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t clock_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC (durations shorter than a millisecond). */
int64_t clock_mono_us(void);

/* Replaces the wall-clock source (NULL restores the system clock). */
void clock_set_wall_source(int64_t (*fn)(void *arg), void *arg);

#endif

/*
 * clock.c - system clocks behind a replaceable wall-clock source.
 */
#include "base/clock.h"

#include <stddef.h>
#include <time.h>

static int64_t (*wall_fn)(void *);
static void *wall_arg;

static int64_t read_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
	return wall_fn ? wall_fn(wall_arg) : read_clock(CLOCK_REALTIME);
}

int64_t clock_mono_ms(void)
{
	return read_clock(CLOCK_MONOTONIC);
}

int64_t clock_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void clock_set_wall_source(int64_t (*fn)(void *arg), void *arg)
{
	wall_fn = fn;
	wall_arg = arg;
}

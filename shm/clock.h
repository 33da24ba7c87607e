/*
 * clock.h: the one clock helper of the daemon, the reader library and the
 * client: a clock's time as nanoseconds. CLOCK_MONOTONIC for intervals and
 * deadlines, CLOCK_REALTIME only for time stamps people read.
 */
#ifndef CAPSTATS_CLOCK_H
#define CAPSTATS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
now_mono(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static inline uint64_t
now_real(void)
{
	return clock_ns(CLOCK_REALTIME);
}

#endif

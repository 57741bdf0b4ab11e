/* The two clocks (clock.h); the wall clock is written by core/time.c. */
#include <stdio.h>
#include <time.h>

#include "core/clock.h"
#include "core/time.h"

int64_t
bw_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
bw_now_ms(void)
{
	return bw_now_us() / 1000;
}

int64_t
bw_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
bw_wall_rfc3339(char *out, size_t outlen)
{
	char t[BW_TIME_LEN];

	bw_time_format(bw_wall_ms(), t);
	snprintf(out, outlen, "%s", t);
}

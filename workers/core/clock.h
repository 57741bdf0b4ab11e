/* Clocks: monotonic for deadlines and durations, wall for timestamps. */
#ifndef BW_CLOCK_H
#define BW_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t bw_now_ms(void);
int64_t bw_now_us(void);
/* Wall clock, Unix ms: what a timestamp the API shows is made of. */
int64_t bw_wall_ms(void);
/* The wall clock as RFC 3339 UTC with milliseconds, e.g. 2026-11-25T22:49:56.123Z. */
void bw_wall_rfc3339(char *out, size_t outlen);

#endif

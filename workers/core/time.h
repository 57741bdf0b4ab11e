/* Calendar time as the API writes it: RFC 3339 date-times and Unix
 * milliseconds, proleptic Gregorian, UTC. Pure arithmetic: reading the
 * clock is core/clock.h's business. */
#ifndef BW_TIME_H
#define BW_TIME_H

#include <stddef.h>
#include <stdint.h>

/* 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write. */
#define BW_TIME_MAX_MS 253402300799999LL
/* Room for bw_time_format's output and its NUL. */
#define BW_TIME_LEN 32

/* RFC 3339 date-time ("2024-05-01T12:00:00.250+02:00", T or t, Z or z or
 * an offset, seconds 60 folded into the next minute, fractions beyond
 * milliseconds truncated) to Unix ms. 0, or -1 when malformed. */
int bw_time_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* A time as a query string gives it: RFC 3339, or epoch milliseconds as
 * 1..15 digits (at most BW_TIME_MAX_MS). 0, or -1. */
int bw_time_parse(const char *s, int64_t *ms);
/* Unix ms as RFC 3339 UTC with milliseconds: "2024-05-01T10:00:00.250Z". */
void bw_time_format(int64_t ms, char out[BW_TIME_LEN]);

#endif

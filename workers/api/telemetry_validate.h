/* The telemetry body validator: one BSON document per reading, every rule
 * of the contract enforced before anything is written (README,
 * "Telemetry"). It reads with the strict reader of core/json.h, not
 * libbson's JSON reader, which keeps duplicate keys and turns
 * {"$date": …} into typed values; here a key starting with "$" is simply
 * refused. Pure: no I/O, no clock (the caller passes the receipt time), so
 * the fuzz target and the unit tests drive it directly. */
#ifndef BW_TELEMETRY_VALIDATE_H
#define BW_TELEMETRY_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

struct bw_arena;

#define BW_TEL_MAX_READINGS      500
#define BW_TEL_MAX_READING_BYTES (64 * 1024) /* JSON text of one reading, as sent */
#define BW_TEL_MAX_DEPTH         32          /* the reading itself is level 1 */
#define BW_TEL_MAX_MSG_ID        128         /* characters (code points) */

struct bw_tel_reading {
	bson_t *data;       /* the reading as sent; destroyed with the arena */
	const char *msg_id; /* NUL-terminated (arena), NULL when absent */
	int64_t ts_ms;      /* device time; the receipt time when has_ts is false */
	bool has_ts;
};

struct bw_tel_limits {
	int64_t now_ms;        /* receipt time, wall clock, Unix ms */
	int64_t max_past_ms;   /* ts older than now - max_past_ms: clock_skew */
	int64_t max_future_ms; /* ts newer than now + max_future_ms: clock_skew */
};

struct bw_tel_error {
	int status;          /* 400, or 413 for more than BW_TEL_MAX_READINGS */
	const char *code;    /* invalid_json, invalid_reading, clock_skew, payload_too_large */
	long index;          /* the reading, -1 when the problem is not in one */
	const char *pointer; /* RFC 6901 pointer into the body ("" = the whole body), arena */
	size_t pointer_len;  /* keys may hold NUL (refused ones do): use this, not strlen */
	size_t offset;       /* byte offset in the body where it was found */
	char detail[200];
};

/* Parses a body that is one reading (an object) or a batch (an array of
 * 1..BW_TEL_MAX_READINGS objects). On success returns 0 with *out an
 * arena array of *n readings. On the first problem returns -1 with err
 * filled and nothing else to free: everything lives in the arena.
 * Rules: keys not empty, not starting with "$", without "." or NUL, not
 * repeated in one object; nesting at most BW_TEL_MAX_DEPTH; integers that
 * fit 64 bits (int32 when they fit that) and finite doubles; strings of
 * valid UTF-8; each reading at most BW_TEL_MAX_READING_BYTES; msg_id a
 * string of 1..BW_TEL_MAX_MSG_ID characters without control characters;
 * ts an RFC 3339 string or integer epoch milliseconds inside the skew
 * window. */
int bw_tel_parse(struct bw_arena *a, const char *body, size_t len, const struct bw_tel_limits *lim,
                 struct bw_tel_reading **out, size_t *n, struct bw_tel_error *err);

#endif

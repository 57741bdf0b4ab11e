/* Shared-memory scoreboard: one fixed slot per worker, written by that
 * worker, read by the master. The master treats every byte as untrusted:
 * strings are copied with a bound and terminated, numbers range-checked. */
#ifndef BW_SCOREBOARD_H
#define BW_SCOREBOARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

#define BW_SB_SLOTS     544 /* 2 × max workers + max surge */
#define BW_SB_ROUTES    48  /* metrics rows; the last one is "unmatched" */
#define BW_SB_CLASSES   5   /* 1xx … 5xx */
#define BW_SB_BUCKETS   12
#define BW_SB_ROUTE_LEN 64
#define BW_SB_PHASE_LEN 16

extern const double bw_sb_bucket_bounds[BW_SB_BUCKETS]; /* seconds; last is +Inf */

enum bw_slot_state {
	BW_SLOT_EMPTY = 0,
	BW_SLOT_STARTING, /* forked, not yet accepting */
	BW_SLOT_IDLE,     /* in accept */
	BW_SLOT_BUSY,     /* handling a request */
	BW_SLOT_EXITING,  /* asked to stop, finishing */
	BW_SLOT_NSTATES
};

struct bw_counters {
	uint64_t requests[BW_SB_ROUTES][BW_SB_CLASSES];
	uint64_t duration_buckets[BW_SB_BUCKETS];
	uint64_t duration_us_sum;
	uint64_t stale_skipped;
};

struct bw_slot {
	volatile int32_t pid;
	volatile uint32_t generation;
	volatile uint8_t state;
	volatile uint8_t deps[BW_DEP_COUNT]; /* enum bw_breaker_state */
	volatile int64_t request_start_us;   /* monotonic; 0 when idle */
	volatile uint64_t requests;
	char route[BW_SB_ROUTE_LEN];
	char phase[BW_SB_PHASE_LEN];
	struct bw_counters counters;
};

struct bw_scoreboard {
	uint32_t magic;
	volatile uint8_t crash_breaker; /* set by the master, read by /readyz */
	struct bw_slot slots[BW_SB_SLOTS];
};

struct bw_scoreboard *bw_scoreboard_create(void);
void bw_scoreboard_destroy(struct bw_scoreboard *sb);

/* Worker side: the slot this process writes. Attaching binds the phase,
 * the route start (bw_slot_begin) and the crash flag (core/phase.h). */
void bw_scoreboard_attach(struct bw_scoreboard *sb, int slot);
struct bw_slot *bw_scoreboard_mine(void);
void bw_slot_set_state(struct bw_slot *s, enum bw_slot_state st);
void bw_slot_begin(struct bw_slot *s, const char *route);
void bw_slot_end(struct bw_slot *s, size_t route_index, int status, int64_t duration_us);

/* Master side: a bounded, terminated copy of a slot's strings and numbers. */
struct bw_slot_view {
	pid_t pid;
	uint32_t generation;
	enum bw_slot_state state;
	uint8_t deps[BW_DEP_COUNT];
	int64_t request_start_us;
	uint64_t requests;
	char route[BW_SB_ROUTE_LEN];
	char phase[BW_SB_PHASE_LEN];
};
void bw_slot_read(const struct bw_slot *s, struct bw_slot_view *out);
/* Adds a slot's counters into acc (used when a worker exits and for /metrics). */
void bw_counters_add(struct bw_counters *acc, const struct bw_counters *c);
const char *bw_slot_state_name(enum bw_slot_state st);

#endif

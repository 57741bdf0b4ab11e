/* The host-local rate limiter: GCRA buckets in shared memory made by the
 * master before it forks, so every worker of this host applies the same
 * limits while Redis is unreachable (ratelimit_on_redis_error = local). */
#ifndef BW_LIMITER_H
#define BW_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct bw_gcra_policy {
	const char *name;   /* "key", "tenant", "auth_failures" */
	const char *bucket; /* identifies the bucket, e.g. "k:<key_id>" */
	int64_t interval_us;
	int64_t burst;
};

struct bw_gcra_result {
	bool allowed;
	int64_t remaining;
	int64_t reset_us; /* until the bucket is full again */
	int64_t retry_us; /* until a request would be allowed (0 when allowed) */
};

/* One GCRA decision for a bucket whose theoretical arrival time is *tat
 * (0 = full bucket). On allow, *tat is the new value to store. Pure: the
 * same arithmetic as workers/lua/bulwark.lua. */
void bw_gcra_step(int64_t *tat, int64_t now_us, int64_t interval_us, int64_t burst,
                  struct bw_gcra_result *out);

/* Master, before forking: maps the table. -1 if it cannot. */
int bw_limiter_setup(void);
/* Applies every policy at once; nothing is consumed unless all allow.
 * Returns 1 allowed, 0 denied, -1 when there is no table (not set up). */
int bw_limiter_apply(const struct bw_gcra_policy *p, int n, struct bw_gcra_result *out);

#endif

/* The store facade: one methods table per dependency (struct bw_dep_ops,
 * each defined by its adapter: pg.c, redis.c, mongo.c), walked for the
 * lifecycle and looked up for health checks and names. It includes no
 * client library; the adapters own their connections and breakers. */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "store/breaker.h"
#include "store/mongo.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

/* Cap of the probe backoff of every breaker: a server that comes back is
 * used again within about this long (plus one check), i.e. under 1 s. */
#define STORE_MAX_COOLDOWN_MS 800

/* In enum bw_dep order, which is also the order of init and close. */
static const struct bw_dep_ops *const deps[BW_DEP_COUNT] = {
    [BW_DEP_POSTGRES] = &bw_pg_ops,
    [BW_DEP_REDIS] = &bw_redis_ops,
    [BW_DEP_REDIS_CACHE] = &bw_redis_cache_ops,
    [BW_DEP_MONGO] = &bw_mongo_ops,
};

static struct {
	const struct bw_config *cfg;
} st;

static const struct bw_dep_ops *
ops_of(enum bw_dep dep)
{
	return (unsigned)dep < BW_DEP_COUNT ? deps[dep] : NULL;
}

int
bw_store_init(const struct bw_config *cfg)
{
	st.cfg = cfg;
	for (int d = 0; d < BW_DEP_COUNT; d++)
		deps[d]->init(cfg, STORE_MAX_COOLDOWN_MS);
	return 0;
}

void
bw_store_close(void)
{
	if (st.cfg == NULL)
		return;
	for (int d = 0; d < BW_DEP_COUNT; d++)
		deps[d]->close();
	st.cfg = NULL;
}

void
bw_store_check(enum bw_dep dep, struct bw_dep_status *out)
{
	const struct bw_dep_ops *ops = ops_of(dep);
	struct bw_err e;
	enum bw_rc rc;
	int64_t t0;

	memset(out, 0, sizeof(*out));
	out->latency_us = -1;
	if (st.cfg == NULL || ops == NULL) {
		snprintf(out->error, sizeof(out->error), "%s",
		         st.cfg == NULL ? "store not initialised" : "unknown dependency");
		out->breaker = BW_BREAKER_CLOSED;
		return;
	}
	t0 = bw_now_us();
	rc = bw_breaker_ping(ops->breaker, ops->name, st.cfg->ping_timeout_ms, ops->ping,
	                     ops->ping_arg, &e);
	/* A refused call did no I/O: there is no latency to report. */
	if (rc != BW_REFUSED)
		out->latency_us = bw_now_us() - t0;
	out->up = rc == BW_OK;
	/* /readyz shows the start of a long message. */
	snprintf(out->error, sizeof(out->error), "%.*s", (int)sizeof(out->error) - 1, e.message);
	out->breaker = ops->breaker->state;
}

void
bw_store_forget_child(pid_t pid)
{
	for (int d = 0; d < BW_DEP_COUNT; d++)
		if (deps[d]->forget_child != NULL)
			deps[d]->forget_child(pid);
}

const char *
bw_dep_name(enum bw_dep dep)
{
	const struct bw_dep_ops *ops = ops_of(dep);

	return ops != NULL ? ops->name : "unknown";
}

enum bw_breaker_state
bw_store_breaker(enum bw_dep dep)
{
	const struct bw_dep_ops *ops = ops_of(dep);

	return ops != NULL ? ops->breaker->state : BW_BREAKER_CLOSED;
}

const char *
bw_breaker_state_name(enum bw_breaker_state s)
{
	switch (s) {
	case BW_BREAKER_CLOSED:
		return "closed";
	case BW_BREAKER_OPEN:
		return "open";
	case BW_BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}

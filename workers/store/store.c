/* The store facade: dispatches health checks to the adapters (pg.c,
 * redis.c, mongo.c) and names dependencies and breaker states. It includes
 * no client library; the adapters own their connections and breakers. */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "store/mongo.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

/* Cap of the probe backoff of every breaker: a server that comes back is
 * used again within about this long (plus one check), i.e. under 1 s. */
#define STORE_MAX_COOLDOWN_MS 800

static struct {
	const struct bw_config *cfg;
} st;

static const char *const dep_names[BW_DEP_COUNT] = {
    [BW_DEP_POSTGRES] = "postgres",
    [BW_DEP_REDIS] = "redis",
    [BW_DEP_REDIS_CACHE] = "redis_cache",
    [BW_DEP_MONGO] = "mongo",
};

int
bw_store_init(const struct bw_config *cfg)
{
	st.cfg = cfg;
	bw_pg_init(cfg, STORE_MAX_COOLDOWN_MS);
	bw_redis_init(cfg, STORE_MAX_COOLDOWN_MS);
	bw_mongo_init(cfg, STORE_MAX_COOLDOWN_MS);
	return 0;
}

void
bw_store_close(void)
{
	if (st.cfg == NULL)
		return;
	bw_pg_close();
	bw_redis_close();
	bw_mongo_close();
	st.cfg = NULL;
}

static const struct bw_breaker *
breaker_of(enum bw_dep dep)
{
	switch (dep) {
	case BW_DEP_POSTGRES:
		return bw_pg_breaker();
	case BW_DEP_REDIS:
	case BW_DEP_REDIS_CACHE:
		return bw_redis_breaker(dep);
	case BW_DEP_MONGO:
		return bw_mongo_breaker();
	case BW_DEP_COUNT:
		break;
	}
	return NULL;
}

void
bw_store_check(enum bw_dep dep, struct bw_dep_status *out)
{
	enum bw_rc rc;
	int64_t t0;

	memset(out, 0, sizeof(*out));
	out->latency_us = -1;
	if (st.cfg == NULL || breaker_of(dep) == NULL) {
		snprintf(out->error, sizeof(out->error), "%s",
		         st.cfg == NULL ? "store not initialised" : "unknown dependency");
		out->breaker = BW_BREAKER_CLOSED;
		return;
	}
	t0 = bw_now_us();
	switch (dep) {
	case BW_DEP_POSTGRES:
		rc = bw_pg_ping(st.cfg->ping_timeout_ms, out->error, sizeof(out->error));
		break;
	case BW_DEP_REDIS:
	case BW_DEP_REDIS_CACHE:
		rc = bw_redis_ping(dep, st.cfg->ping_timeout_ms, out->error, sizeof(out->error));
		break;
	default: /* BW_DEP_MONGO: anything else was turned away above */
		rc = bw_mongo_ping(st.cfg->ping_timeout_ms, out->error, sizeof(out->error));
		break;
	}
	/* A refused call did no I/O: there is no latency to report. */
	if (rc != BW_REFUSED)
		out->latency_us = bw_now_us() - t0;
	out->up = rc == BW_OK;
	if (out->up)
		out->error[0] = '\0';
	out->breaker = breaker_of(dep)->state;
}

const char *
bw_dep_name(enum bw_dep dep)
{
	if ((unsigned)dep >= BW_DEP_COUNT)
		return "unknown";
	return dep_names[dep];
}

enum bw_breaker_state
bw_store_breaker(enum bw_dep dep)
{
	const struct bw_breaker *b = breaker_of(dep);

	return b != NULL ? b->state : BW_BREAKER_CLOSED;
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

/* The worker's dependencies. Each adapter (pg.c, redis.c, mongo.c) is the
 * only file that includes its client library; the rest of the daemon sees
 * this interface. Connections are opened after fork, kept for the worker's
 * life and reconnected with backoff; every dependency sits behind a circuit
 * breaker so a dead store costs milliseconds, not a timeout. */
#ifndef BW_STORE_H
#define BW_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct bw_config;

enum bw_dep { BW_DEP_POSTGRES, BW_DEP_REDIS, BW_DEP_REDIS_CACHE, BW_DEP_MONGO, BW_DEP_COUNT };

/* Breaker states, also stored as one byte per dependency in the scoreboard. */
enum bw_breaker_state { BW_BREAKER_CLOSED = 0, BW_BREAKER_OPEN = 1, BW_BREAKER_HALF_OPEN = 2 };

struct bw_dep_status {
	bool up; /* the last check succeeded */
	enum bw_breaker_state breaker;
	int64_t latency_us; /* of the check, -1 when not attempted */
	char error[128];    /* empty when up */
};

/* Stores the config pointer; opens nothing that can block for long. Never fails
 * because a server is down: the first use connects (through the breaker). */
int bw_store_init(const struct bw_config *cfg);
void bw_store_close(void);

/* PostgreSQL SELECT 1, Redis PING, MongoDB {ping: 1}, each bounded by
 * ping_timeout_ms. An open breaker answers at once without I/O. */
void bw_store_check(enum bw_dep dep, struct bw_dep_status *out);

const char *bw_dep_name(enum bw_dep dep);
enum bw_breaker_state bw_store_breaker(enum bw_dep dep);
const char *bw_breaker_state_name(enum bw_breaker_state s);

/* Versions of the client libraries this binary runs with (for `bulwark version`). */
const char *bw_pg_lib_version(void);
const char *bw_redis_lib_version(void);
const char *bw_mongo_lib_version(void);

#endif

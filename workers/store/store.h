/* The worker's dependencies. Each adapter (pg.c, redis.c, mongo.c with its
 * mongo_stream.c) is the only place that includes its client library; the
 * rest of the daemon sees this interface. Connections are opened after fork, kept for the worker's
 * life and reconnected with backoff; every dependency sits behind a circuit
 * breaker so a dead store costs milliseconds, not a timeout. */
#ifndef BW_STORE_H
#define BW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/rc.h"

struct bw_config;
struct bw_breaker;

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

/* In the master, after it reaped the worker pid: removes what a client
 * library leaves behind for a process that did not exit cleanly (mongoc's
 * counters in /dev/shm). Talks to no server; needs no bw_store_init. */
void bw_store_forget_child(pid_t pid);

const char *bw_dep_name(enum bw_dep dep);
enum bw_breaker_state bw_store_breaker(enum bw_dep dep);
const char *bw_breaker_state_name(enum bw_breaker_state s);

/* One attempt of a dependency's health check on arg, bounded by
 * deadline_ms (bw_now_ms() clock), connecting first if needed: BW_OK;
 * BW_ERR (err filled); or BW_RETRY (err filled) when a kept connection
 * failed at once and was dropped, so that one fresh connection may do
 * better. bw_breaker_ping runs it behind the dependency's breaker. */
typedef enum bw_rc (*bw_ping_attempt_fn)(void *arg, int64_t deadline_ms, struct bw_err *err);

/* What a dependency's adapter gives this facade, one table per dependency
 * (the shape of sqlite's sqlite3_mutex_methods): pg.c defines bw_pg_ops,
 * redis.c bw_redis_ops and bw_redis_cache_ops, mongo.c bw_mongo_ops. */
struct bw_dep_ops {
	const char *name; /* in logs, /readyz and the metrics */
	/* Keeps cfg (it must outlive the adapter) and resets the breaker,
	 * whose probe backoff doubles from breaker_cooldown_ms up to
	 * max_cooldown_ms. No I/O: the first use connects. */
	void (*init)(const struct bw_config *cfg, int64_t max_cooldown_ms);
	/* Closes what this process opened; what it inherited over fork is
	 * forgotten, never used or closed. */
	void (*close)(void);
	/* The health check (SELECT 1, PING, {ping: 1}): one attempt on
	 * ping_arg. */
	bw_ping_attempt_fn ping;
	void *ping_arg;
	struct bw_breaker *breaker; /* the dependency's own */
	/* See bw_store_forget_child; NULL when there is nothing to forget. */
	void (*forget_child)(pid_t pid);
};

/* Versions of the client libraries this binary runs with (for `bulwark version`). */
const char *bw_pg_lib_version(void);
const char *bw_redis_lib_version(void);
const char *bw_mongo_lib_version(void);

#endif

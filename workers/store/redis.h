/* Redis adapter (redis.c is the only file that includes hiredis.h). Two
 * logical connections, BW_DEP_REDIS (config `redis`) and BW_DEP_REDIS_CACHE
 * (config `redis_cache`, the same server when empty), each with its own
 * blocking hiredis context and breaker. Contexts are opened on first use
 * after fork and freed on any I/O error or timeout. */
#ifndef BW_REDIS_H
#define BW_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rc.h"
#include "store/breaker.h"
#include "store/store.h"

struct bw_config;

/* The redis and redis_cache dependencies (store.h): two links, each with
 * its own context and breaker, to the same server when redis_cache is
 * empty. Their ping is PING, bounded by timeout_ms overall and the command
 * itself by min(redis_timeout_ms, timeout_ms). */
extern const struct bw_dep_ops bw_redis_ops, bw_redis_cache_ops;

/* A reply copied into the caller's arena: hiredis types never leave redis.c. */
enum bw_redis_type {
	BW_REDIS_NIL,
	BW_REDIS_INTEGER,
	BW_REDIS_STRING, /* bulk or status */
	BW_REDIS_ARRAY,
	BW_REDIS_ERROR, /* the server answered with an error: str holds it */
};

struct bw_redis_reply {
	enum bw_redis_type type;
	long long integer;
	const char *str; /* NUL-terminated */
	size_t len;
	size_t n;
	struct bw_redis_reply *elem;
};

struct bw_arena;

#define BW_REDIS_MAX_KEYS 8
#define BW_REDIS_MAX_ARGS 32

/* FCALL fn with keys and args (all NUL-terminated strings) on dep, loading
 * the embedded function library first when Redis does not have it (after a
 * restart or a FLUSHALL). Bounded by redis_timeout_ms. Returns BW_OK with
 * *out set (possibly an error reply: the server is up, err stays clear), or
 * with err filled (core/err.h; no code: an error reply is not a failure
 * here): BW_ERR on an I/O failure or timeout (breaker told, connection
 * dropped), BW_REFUSED when the breaker is open; err->retry_after_ms is the
 * breaker's. */
enum bw_rc bw_redis_fcall(struct bw_arena *a, enum bw_dep dep, const char *fn, int nkeys,
                          const char *const *keys, int nargs, const char *const *args,
                          struct bw_redis_reply **out, struct bw_err *err);
/* Milliseconds until dep's breaker lets a call through (0 when closed). */
int64_t bw_redis_retry_after_ms(enum bw_dep dep);
/* NULL for a dep that is not a Redis one. */
const struct bw_breaker *bw_redis_breaker(enum bw_dep dep);

#endif

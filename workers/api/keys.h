/* API keys as stored, shared by authentication (api/auth.c) and the
 * `tenant` and `key` commands (cli/tenant.c): the one list of scope names,
 * the Redis keys that cache a key's record and rate buckets (what each
 * holds: workers/lua/bulwark.lua), the PostgreSQL lookup, and the Redis
 * calls that fill, revoke and unhide a cached record. */
#ifndef BW_KEYS_H
#define BW_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"

struct bw_arena;
struct bw_err;

/* A key holds a comma list of scopes; a route may need one of them. */
#define BW_SCOPE_LEDGER_READ     "ledger:read"
#define BW_SCOPE_LEDGER_WRITE    "ledger:write"
#define BW_SCOPE_TELEMETRY_READ  "telemetry:read"
#define BW_SCOPE_TELEMETRY_WRITE "telemetry:write"

/* Every scope, in the order above. */
extern const char *const bw_scopes[];
extern const size_t bw_nscopes;

/* True when every item of the comma list is a scope. Empty items are
 * skipped, so "" is a valid (empty) list; 256 bytes at most. */
bool bw_scopes_valid(const char *list);
/* Every scope joined by sep into out (truncated to outlen): "," gives the
 * list a tenant's first key holds. */
void bw_scopes_join(char *out, size_t outlen, const char *sep);

/* Redis keys of API key id. The {id} hash tag keeps a key's entries in
 * one cluster slot; bw_auth derives the tenant bucket rl:t:TENANT itself. */
const char *bw_keys_record(struct bw_arena *a, const char *id);     /* bwk:{ID} */
const char *bw_keys_negative(struct bw_arena *a, const char *id);   /* bwneg:{ID} */
const char *bw_keys_bucket(struct bw_arena *a, const char *id);     /* rl:{ID}:k */
const char *bw_keys_ip_bucket(struct bw_arena *a, const char *net); /* rl:ip:NET */

/* What PostgreSQL says about a key. Strings live in the lookup's arena. */
struct bw_key_record {
	bool found; /* false: no such key, or its tenant is gone */
	bool revoked;
	const char *tenant_id;
	const char *sha; /* hex SHA-256 of the secret */
	const char *scopes;
	const char *key_rate, *tenant_rate; /* per second, as stored ("0.500") */
	int64_t key_burst, tenant_burst;
};

/* Reads key id and its tenant in one read-only transaction. Row-level
 * security lets bulwark_app see one key by id (bulwark.key_id) before it
 * knows the tenant. Returns BW_OK (k->found says whether it exists), or
 * bw_pg_query's failure with e filled and the transaction rolled back or
 * the connection dropped. */
enum bw_rc bw_keys_lookup(struct bw_arena *a, const char *id, struct bw_key_record *k,
                          struct bw_err *e);

/* GCRA emission interval of a rate per second, in µs ("0.5" → 2000000);
 * 1 s for a rate that is not > 0, at least 1 µs. */
int64_t bw_keys_interval_us(const char *rate);

/* Caches k as the record of id for ttl_s, unless a record (a tombstone
 * written by a revocation meanwhile) is there. A failure is not reported:
 * the next request reads PostgreSQL again. */
void bw_keys_fill(struct bw_arena *a, const char *id, const struct bw_key_record *k, int ttl_s);
/* Replaces id's cached record with a tombstone kept for ttl_s, which every
 * worker sees on its next request. Returns BW_OK, or with err filled:
 * bw_redis_fcall's failure (Redis is down or refused by the breaker), or
 * BW_INVALID when Redis answered with an error (err->code is its first
 * word). */
enum bw_rc bw_keys_revoke(struct bw_arena *a, const char *id, int ttl_s, struct bw_err *err);
/* Forgets that id was unknown (the negative cache), for a key just made.
 * Returns as bw_keys_revoke. */
enum bw_rc bw_keys_created(struct bw_arena *a, const char *id, struct bw_err *err);

#endif

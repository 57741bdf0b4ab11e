/* API keys as stored: scope names, Redis key names, the PostgreSQL lookup
 * and the cache calls (the contracts are in keys.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/keys.h"
#include "core/arena.h"
#include "store/pg.h"
#include "store/redis.h"

const char *const bw_scopes[] = {
    BW_SCOPE_LEDGER_READ,
    BW_SCOPE_LEDGER_WRITE,
    BW_SCOPE_TELEMETRY_READ,
    BW_SCOPE_TELEMETRY_WRITE,
};
const size_t bw_nscopes = sizeof(bw_scopes) / sizeof(bw_scopes[0]);

static bool
is_scope(const char *s)
{
	for (size_t i = 0; i < bw_nscopes; i++)
		if (strcmp(s, bw_scopes[i]) == 0)
			return true;
	return false;
}

bool
bw_scopes_valid(const char *list)
{
	char buf[256];

	if (strlen(list) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save))
		if (!is_scope(t))
			return false;
	return true;
}

void
bw_scopes_join(char *out, size_t outlen, const char *sep)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < bw_nscopes && used < outlen; i++) {
		int w = snprintf(out + used, outlen - used, "%s%s", i ? sep : "", bw_scopes[i]);
		if (w < 0)
			return;
		used += (size_t)w;
	}
}

const char *
bw_keys_record(struct bw_arena *a, const char *id)
{
	return bw_arena_printf(a, "bwk:{%s}", id);
}

const char *
bw_keys_negative(struct bw_arena *a, const char *id)
{
	return bw_arena_printf(a, "bwneg:{%s}", id);
}

const char *
bw_keys_bucket(struct bw_arena *a, const char *id)
{
	return bw_arena_printf(a, "rl:{%s}:k", id);
}

const char *
bw_keys_ip_bucket(struct bw_arena *a, const char *net)
{
	return bw_arena_printf(a, "rl:ip:%s", net);
}

enum bw_rc
bw_keys_lookup(struct bw_arena *a, const char *id, struct bw_key_record *k, struct bw_err *e)
{
	struct bw_pg_result r;
	const char *p1[] = {id};

	memset(k, 0, sizeof(*k));
	if (bw_pg_query(a, "BEGIN READ ONLY", 0, NULL, 0, &r, e) < 0)
		return e->rc;
	if (bw_pg_query(a, "SELECT set_config('bulwark.key_id', $1, true)", 1, p1, 0, &r, e) < 0 ||
	    bw_pg_query(a,
	                "SELECT tenant_id::text, encode(secret_sha256, 'hex'), "
	                "array_to_string(scopes, ','), rate::text, burst, revoked_at IS NOT NULL "
	                "FROM api_keys WHERE key_id = $1",
	                1, p1, 0, &r, e) < 0)
		goto rollback;
	if (r.nrows == 1) {
		k->found = true;
		k->tenant_id = bw_pg_get(&r, 0, 0);
		k->sha = bw_pg_get(&r, 0, 1);
		k->scopes = bw_pg_get(&r, 0, 2);
		k->key_rate = bw_pg_get(&r, 0, 3);
		k->key_burst = atoll(bw_pg_get(&r, 0, 4));
		k->revoked = strcmp(bw_pg_get(&r, 0, 5), "t") == 0;
		const char *p2[] = {k->tenant_id};
		if (bw_pg_query(a, "SELECT set_config('bulwark.tenant_id', $1, true)", 1, p2, 0, &r,
		                e) < 0 ||
		    bw_pg_query(a, "SELECT rate::text, burst FROM tenants WHERE id = $1", 1, p2, 0,
		                &r, e) < 0)
			goto rollback;
		if (r.nrows != 1) {
			k->found = false; /* a key without its tenant is no key */
		} else {
			k->tenant_rate = bw_pg_get(&r, 0, 0);
			k->tenant_burst = atoll(bw_pg_get(&r, 0, 1));
		}
	}
	if (bw_pg_query(a, "COMMIT", 0, NULL, 0, &r, e) < 0)
		return e->rc;
	return BW_OK;
rollback:
	if (e->rc == BW_INVALID)
		bw_pg_query(a, "ROLLBACK", 0, NULL, 0, &r, &(struct bw_err){0});
	else
		bw_pg_reset();
	return e->rc;
}

int64_t
bw_keys_interval_us(const char *rate)
{
	double r = rate != NULL ? strtod(rate, NULL) : 0;
	if (!(r > 0))
		return 1000000;
	int64_t iv = llround(1e6 / r);
	return iv > 0 ? iv : 1;
}

static const char *
num(struct bw_arena *a, long long v)
{
	return bw_arena_printf(a, "%lld", v);
}

void
bw_keys_fill(struct bw_arena *a, const char *id, const struct bw_key_record *k, int ttl_s)
{
	struct bw_redis_reply *r;
	struct bw_err err;
	const char *keys[] = {bw_keys_record(a, id), bw_keys_negative(a, id)};
	/* The fields bw_auth reads (workers/lua/bulwark.lua). */
	const char *args[] = {
	    num(a, (long long)ttl_s * 1000),
	    "tenant",
	    k->tenant_id,
	    "sha",
	    k->sha,
	    "scopes",
	    k->scopes,
	    "kint",
	    num(a, bw_keys_interval_us(k->key_rate)),
	    "kburst",
	    num(a, k->key_burst),
	    "tint",
	    num(a, bw_keys_interval_us(k->tenant_rate)),
	    "tburst",
	    num(a, k->tenant_burst),
	    "krate",
	    k->key_rate,
	    "trate",
	    k->tenant_rate,
	};
	bw_redis_fcall(a, BW_DEP_REDIS, "bw_key_fill", 2, keys,
	               (int)(sizeof(args) / sizeof(args[0])), args, &r, &err);
}

/* FCALL fn with one key and at most one argument; an error reply counts as
 * a failure (BW_INVALID, its first word the code). */
static enum bw_rc
call_one(struct bw_arena *a, const char *fn, const char *key, const char *arg, struct bw_err *err)
{
	struct bw_redis_reply *r = NULL;
	const char *keys[] = {key};
	const char *args[] = {arg};
	enum bw_rc rc =
	    bw_redis_fcall(a, BW_DEP_REDIS, fn, 1, keys, arg != NULL ? 1 : 0, args, &r, err);

	if (rc != BW_OK || r->type != BW_REDIS_ERROR)
		return rc;
	bw_err_set(err, BW_INVALID, "%s", r->str != NULL ? r->str : "error");
	snprintf(err->code, sizeof(err->code), "%.*s", (int)strcspn(err->message, " "),
	         err->message);
	return BW_INVALID;
}

enum bw_rc
bw_keys_revoke(struct bw_arena *a, const char *id, int ttl_s, struct bw_err *err)
{
	return call_one(a, "bw_key_revoke", bw_keys_record(a, id), num(a, (long long)ttl_s * 1000),
	                err);
}

enum bw_rc
bw_keys_created(struct bw_arena *a, const char *id, struct bw_err *err)
{
	return call_one(a, "bw_key_created", bw_keys_negative(a, id), NULL, err);
}

/* GET /v1/reports/summary: a deliberately heavy aggregate, served
 * cache-aside from the cache Redis (bw_cache_* in workers/lua/bulwark.lua).
 * X-Cache says what happened: HIT (a cached copy of the current
 * generation), MISS (this request computed it), STALE (PostgreSQL is down
 * and an older copy was all there was). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/db.h"
#include "api/ledger.h"
#include "api/reports.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phase.h"
#include "core/secret.h"
#include "http/response.h"
#include "store/redis.h"

#define LEASE_MS    5000 /* longer than any summary takes */
#define WAIT_MS     800  /* how long a reader waits for another worker's fill */
#define WAIT_STEP   10
#define HARD_FACTOR 10 /* an entry outlives its freshness this much, for STALE */

struct cache_keys {
	const char *entry, *gen, *lease;
};

static struct cache_keys
keys_for(struct bw_request *req)
{
	const char *t = req->who.tenant_id;
	return (struct cache_keys){bw_arena_printf(req->arena, "sum:{%s}", t),
	                           bw_arena_printf(req->arena, "sumgen:{%s}", t),
	                           bw_arena_printf(req->arena, "sumlease:{%s}", t)};
}

void
bw_report_invalidate(struct bw_request *req)
{
	struct cache_keys k = keys_for(req);
	const char *keys[] = {k.gen};
	struct bw_redis_reply *r;
	struct bw_err err;

	/* After COMMIT, before the response: a read that follows the response
	 * sees the new generation. One retry for a connection gone stale. */
	for (int i = 0; i < 2; i++) {
		if (bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_cache_bump", 1, keys, 0,
		                   NULL, &r, &err) == 0 &&
		    r->type != BW_REDIS_ERROR)
			return;
		if (bw_redis_breaker(BW_DEP_REDIS_CACHE)->state != BW_BREAKER_CLOSED)
			break;
	}
	/* Redis is down: nothing can read the cache either until it is back,
	 * and entries written before now carry an older generation. */
	bw_warn("summary cache: cannot bump the generation of %s: %s", req->who.tenant_id,
	        err.message);
}

/* The aggregate, in one REPEATABLE READ snapshot. Returns false with the
 * error in *e when PostgreSQL failed. */
static bool
compute(struct bw_request *req, const char *gen, struct bw_buf *out, struct bw_err *e)
{
	struct bw_pg_result cur, cnt, top, done;
	const char *p[] = {req->who.tenant_id};
	const char *t = req->who.tenant_id;
	char now[40];

	bw_phase_set("summary");
	const char *begin = bw_arena_printf(req->arena,
	                                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
	                                    "SELECT set_config('bulwark.tenant_id', '%s', true)",
	                                    t);
	if (!bw_is_uuid(t)) {
		/* Our own key record gave it: not a uuid is a bug, not an outage. */
		bw_err_set(e, BW_INVALID, "tenant id %s is not a uuid", t);
		goto fail;
	}
	if (bw_pg_query(req->arena, begin, 0, NULL, 0, &cur, e) < 0)
		goto fail;
	if (bw_pg_query(
	        req->arena,
	        "WITH bal AS (SELECT currency, count(*) AS accounts, sum(balance) AS balance "
	        "  FROM accounts WHERE tenant_id = $1 GROUP BY currency), "
	        "vol AS (SELECT currency, sum(amount) AS volume, sum(amount) FILTER "
	        "  (WHERE created_at > now() - interval '24 hours') AS volume_24h "
	        "  FROM transfers WHERE tenant_id = $1 GROUP BY currency) "
	        "SELECT bal.currency, bal.accounts, bal.balance::text, "
	        "coalesce(vol.volume, 0)::text, coalesce(vol.volume_24h, 0)::text "
	        "FROM bal LEFT JOIN vol USING (currency) ORDER BY bal.currency",
	        1, p, 0, &cur, e) < 0 ||
	    bw_pg_query(req->arena, "SELECT count(*) FROM transfers WHERE tenant_id = $1", 1, p, 0,
	                &cnt, e) < 0 ||
	    bw_pg_query(req->arena,
	                "SELECT a.id::text, a.name, v.volume::text FROM (SELECT account_id, "
	                "sum(abs(amount)) AS volume FROM entries WHERE tenant_id = $1 "
	                "GROUP BY account_id ORDER BY volume DESC, account_id LIMIT 10) v "
	                "JOIN accounts a ON a.id = v.account_id ORDER BY v.volume DESC, a.id",
	                1, p, 0, &top, e) < 0 ||
	    bw_pg_query(req->arena, "COMMIT", 0, NULL, 0, &done, e) < 0)
		goto fail;
	bw_wall_rfc3339(now, sizeof(now));
	bw_buf_puts(out, "{");
	bw_json_kv_str(out, "tenant_id", t, true);
	bw_json_key(out, "generation", false);
	bw_buf_puts(out, gen != NULL ? gen : "null");
	bw_json_kv_str(out, "computed_at", now, false);
	bw_buf_puts(out, ",\"currencies\":[");
	for (int i = 0; i < cur.nrows; i++) {
		bw_buf_puts(out, i ? ",{" : "{");
		bw_json_kv_str(out, "currency", bw_pg_get(&cur, i, 0), true);
		bw_buf_printf(
		    out, ",\"accounts\":%s,\"balance_sum\":%s,\"volume\":%s,\"volume_24h\":%s}",
		    bw_pg_get(&cur, i, 1), bw_pg_get(&cur, i, 2), bw_pg_get(&cur, i, 3),
		    bw_pg_get(&cur, i, 4));
	}
	bw_buf_printf(out, "],\"transfers\":%s,\"top_accounts\":[", bw_pg_get(&cnt, 0, 0));
	for (int i = 0; i < top.nrows; i++) {
		bw_buf_puts(out, i ? ",{" : "{");
		bw_json_kv_str(out, "id", bw_pg_get(&top, i, 0), true);
		bw_json_kv_str(out, "name", bw_pg_get(&top, i, 1), false);
		bw_buf_printf(out, ",\"volume\":%s}", bw_pg_get(&top, i, 2));
	}
	bw_buf_puts(out, "]}");
	return true;
fail:
	if (bw_pg_in_transaction() && e->rc == BW_INVALID) {
		struct bw_err e2;
		if (bw_pg_query(NULL, "ROLLBACK", 0, NULL, 0, &done, &e2) < 0)
			bw_pg_reset();
	} else if (e->rc == BW_ERR) {
		bw_pg_reset();
	}
	return false;
}

static void
reply(struct bw_request *req, const char *body, const char *cache)
{
	bw_buf_reset(&req->body_out);
	bw_buf_puts(&req->body_out, body);
	bw_resp_header(req, "X-Cache", cache);
	bw_resp_json(req, 200);
}

static void
fill(struct bw_request *req, const struct cache_keys *k, const char *token, const char *gen,
     const char *body)
{
	const struct bw_config *cfg = req->cfg;
	/* Jittered ±10 % so entries filled together do not expire together. */
	long soft = (long)cfg->cache_ttl_s * 1000;
	soft += (random() % (soft / 5 + 1)) - soft / 10;
	const char *keys[] = {k->entry, k->gen, k->lease};
	const char *args[] = {token, gen, body, bw_arena_printf(req->arena, "%ld", soft),
	                      bw_arena_printf(req->arena, "%ld", soft * HARD_FACTOR)};
	struct bw_redis_reply *r;
	struct bw_err err;

	if (bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_cache_fill", 3, keys, 5, args, &r,
	                   &err) != 0)
		bw_debug("summary cache: fill failed: %s", err.message);
}

/* Computes and answers; on a database failure serves `stale` if there is one. */
static void
compute_and_reply(struct bw_request *req, const struct cache_keys *k, const char *token,
                  const char *gen, const char *stale)
{
	struct bw_buf body;
	struct bw_err e;

	bw_buf_init(&body, req->arena);
	if (compute(req, gen, &body, &e)) {
		if (gen != NULL)
			fill(req, k, token, gen, bw_buf_cstr(&body));
		reply(req, bw_buf_cstr(&body), "MISS");
		return;
	}
	if (gen != NULL) {
		/* Let the next reader try now rather than wait out the lease. */
		const char *keys[] = {k->lease};
		const char *args[] = {token};
		struct bw_redis_reply *r;
		struct bw_err err;
		bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_cache_release", 1, keys, 1, args,
		               &r, &err);
	}
	if (stale != NULL) {
		reply(req, stale, "STALE");
		return;
	}
	bw_db_answer(req, &e);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
	nanosleep(&ts, NULL);
}

void
bw_api_report_summary(struct bw_request *req)
{
	struct cache_keys k = keys_for(req);
	unsigned char raw[12];
	struct bw_buf tok;

	bw_buf_init(&tok, req->arena);
	if (bw_random_bytes(raw, sizeof(raw)) < 0)
		memset(raw, 0, sizeof(raw));
	bw_base64url(&tok, raw, sizeof(raw));
	const char *token = bw_buf_cstr(&tok);
	const char *keys[] = {k.entry, k.gen, k.lease};
	const char *args[] = {token, bw_arena_printf(req->arena, "%d", LEASE_MS), ""};
	const char *stale = NULL;

	bw_phase_set("redis");
	for (int waited = 0;; waited += WAIT_STEP) {
		struct bw_redis_reply *r;
		struct bw_err err;
		if (bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_cache_get", 3, keys, 3, args,
		                   &r, &err) != 0 ||
		    r->type != BW_REDIS_ARRAY || r->n != 3 || r->elem[0].type != BW_REDIS_STRING) {
			/* No cache: compute directly, nothing to fill or lease. */
			compute_and_reply(req, &k, token, NULL, stale);
			return;
		}
		const char *state = r->elem[0].str, *gen = r->elem[1].str;
		const char *body = r->elem[2].type == BW_REDIS_STRING ? r->elem[2].str : NULL;
		if (strcmp(state, "hit") == 0) {
			reply(req, body, "HIT");
			return;
		}
		if (strcmp(state, "refresh") == 0) {
			/* Early refresh: still right by generation, so it is the fallback. */
			compute_and_reply(req, &k, token, gen, body);
			return;
		}
		stale = body;
		if (strcmp(state, "miss") == 0 || waited >= WAIT_MS) {
			compute_and_reply(req, &k, token, gen, stale);
			return;
		}
		sleep_ms(WAIT_STEP); /* another worker holds the lease: its fill is coming */
	}
}

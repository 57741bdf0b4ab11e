/* API key authentication. Redis first (bw_auth in workers/lua/bulwark.lua);
 * on a cache miss PostgreSQL fills Redis and the call is made once more.
 * When Redis fails, the key is checked in PostgreSQL and the limits come
 * from ratelimit_on_redis_error: the host-local table, allow, or 503. An
 * error is never answered with 429. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "api/auth.h"
#include "api/keys.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phase.h"
#include "core/secret.h"
#include "http/response.h"
#include "store/limiter.h"
#include "store/pg.h"
#include "store/redis.h"

/* Element indices of the replies of bw_auth and bw_auth_fail, whose
 * shapes workers/lua/bulwark.lua documents above each function. */
enum bw_auth_reply {
	/* bw_auth: {'ok' | 'limited', the record, then both policies} */
	R_STATUS = 0,
	R_TENANT,
	R_SCOPES,
	R_KEY_RATE,
	R_KEY_BURST,
	R_TENANT_RATE,
	R_TENANT_BURST,
	R_KEY_REMAINING,
	R_KEY_RESET_US,
	R_KEY_RETRY_US,
	R_TENANT_REMAINING,
	R_TENANT_RESET_US,
	R_TENANT_RETRY_US,
	R_ALLOWED_LEN,
	/* bw_auth: {'unknown' | 'revoked' | 'bad_secret', ip_ok, retry_us} */
	R_FAILED_IP_OK = 1,
	R_FAILED_RETRY_US,
	R_FAILED_LEN,
	/* bw_auth: {'ip_limited', retry_us} */
	R_IP_LIMITED_RETRY_US = 1,
	R_IP_LIMITED_LEN,
	/* bw_auth_fail: {ip_ok, retry_us} */
	R_FAIL_IP_OK = 0,
	R_FAIL_RETRY_US,
	R_FAIL_LEN,
};

/* Local deny cache: a key Redis just denied cannot be
 * allowed again before its retry time, since buckets only refill with time,
 * so this worker answers 429 itself until then and spares Redis the hot
 * abusive key. Capped, so a revocation shows as 401 within DENY_MAX_US
 * even for a key that is over its limit (a 429 never grants access). */
#define DENY_SLOTS  64
#define DENY_MAX_US 100000

struct denied {
	char key_id[33];
	char sha[BW_SHA256_HEX_LEN + 1];
	char rate[2][24];
	int64_t stored_us, until_us;
	int violated;
	struct bw_policy_state pol[2];
};

static struct denied deny_cache[DENY_SLOTS];

void
bw_client_prefix(const char *addr, char *out, size_t outlen)
{
	unsigned char a6[16];

	if (addr == NULL || addr[0] == '\0') {
		snprintf(out, outlen, "unknown");
		return;
	}
	if (strchr(addr, ':') != NULL && inet_pton(AF_INET6, addr, a6) == 1) {
		char text[INET6_ADDRSTRLEN];
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a6)) {
			/* ::ffff:a.b.c.d is one IPv4 client, not a /64 shared by all of them. */
			inet_ntop(AF_INET, a6 + 12, text, sizeof(text));
			snprintf(out, outlen, "%s", text);
			return;
		}
		memset(a6 + 8, 0, 8);
		inet_ntop(AF_INET6, a6, text, sizeof(text));
		snprintf(out, outlen, "%s/64", text);
		return;
	}
	snprintf(out, outlen, "%s", addr);
}

static int64_t
ceil_s(int64_t us)
{
	return (us + 999999) / 1000000;
}

static void
set_rate_headers(struct bw_request *req)
{
	struct bw_identity *w = &req->who;
	struct bw_buf pol, cur;
	int strict = 0;

	bw_buf_init(&pol, req->arena);
	bw_buf_init(&cur, req->arena);
	for (int i = 0; i < w->npolicies; i++) {
		const struct bw_policy_state *p = &w->policies[i];
		bw_buf_printf(&pol, "%s\"%s\";q=%lld;w=%lld", i ? ", " : "", p->name,
		              (long long)p->burst, (long long)ceil_s(p->burst * p->interval_us));
		bw_buf_printf(&cur, "%s\"%s\";r=%lld;t=%lld", i ? ", " : "", p->name,
		              (long long)p->remaining, (long long)ceil_s(p->reset_us));
		const struct bw_policy_state *s = &w->policies[strict];
		if (p->remaining < s->remaining ||
		    (p->remaining == s->remaining && p->reset_us > s->reset_us))
			strict = i;
	}
	if (w->npolicies == 0)
		return;
	const struct bw_policy_state *s = &w->policies[strict];
	char num[32];
	bw_resp_header(req, "RateLimit-Policy", bw_buf_cstr(&pol));
	bw_resp_header(req, "RateLimit", bw_buf_cstr(&cur));
	snprintf(num, sizeof(num), "%lld", (long long)s->burst);
	bw_resp_header(req, "RateLimit-Limit", num);
	snprintf(num, sizeof(num), "%lld", (long long)s->remaining);
	bw_resp_header(req, "RateLimit-Remaining", num);
	snprintf(num, sizeof(num), "%lld", (long long)ceil_s(s->reset_us));
	bw_resp_header(req, "RateLimit-Reset", num);
}

static void
too_many(struct bw_request *req, const char *policy, int64_t retry_us)
{
	int64_t retry_ms = (retry_us + 999) / 1000;
	struct bw_buf extra;

	bw_resp_retry_after(req, retry_ms);
	bw_buf_init(&extra, req->arena);
	bw_json_kv_int(&extra, "retry_after_ms", retry_ms, true);
	bw_json_kv_str(&extra, "policy", policy, false);
	bw_resp_problem_ex(req, 429, "rate_limited", bw_buf_cstr(&extra),
	                   "rate limit \"%s\" exceeded; retry in %lld ms", policy,
	                   (long long)retry_ms);
}

static void
unauthorized(struct bw_request *req, const char *why)
{
	bw_resp_header(req, "WWW-Authenticate", "Bearer realm=\"bulwark\"");
	bw_resp_problem(req, 401, "unauthorized", "%s", why);
}

static void
unavailable(struct bw_request *req, const char *what, int64_t retry_ms)
{
	bw_resp_unavailable(req, retry_ms, NULL, "%s is unavailable; retry shortly", what);
}

static const char *
num(struct bw_arena *a, long long v)
{
	return bw_arena_printf(a, "%lld", v);
}

/* A failed authentication: negative-cache an unknown id, charge the
 * client's bucket, answer 401 (or 429 once the bucket is empty). */
static void
auth_failed(struct bw_request *req, const char *id, const char *ip_key, const char *why,
            bool unknown)
{
	const struct bw_config *cfg = req->cfg;
	struct bw_redis_reply *r;
	struct bw_err err;
	const char *neg = unknown && id != NULL ? bw_keys_negative(req->arena, id) : "";
	const char *keys[] = {neg, ip_key};
	const char *args[] = {num(req->arena, cfg->negative_cache_ttl_ms),
	                      num(req->arena, 1000000 / cfg->auth_fail_rate),
	                      num(req->arena, cfg->auth_fail_burst), ""};

	if (bw_redis_fcall(req->arena, BW_DEP_REDIS, "bw_auth_fail", 2, keys, 4, args, &r, &err) ==
	        BW_OK &&
	    r->type == BW_REDIS_ARRAY && r->n == R_FAIL_LEN && r->elem[R_FAIL_IP_OK].integer == 0) {
		too_many(req, "auth_failures", r->elem[R_FAIL_RETRY_US].integer);
		return;
	}
	if (bw_redis_breaker(BW_DEP_REDIS)->state != BW_BREAKER_CLOSED) {
		/* Redis is down: the host-local table counts failures instead. */
		struct bw_gcra_policy p = {"auth_failures", ip_key, 1000000 / cfg->auth_fail_rate,
		                           cfg->auth_fail_burst};
		struct bw_gcra_result res;
		if (bw_limiter_apply(&p, 1, &res) == 0) {
			too_many(req, "auth_failures", res.retry_us);
			return;
		}
	}
	unauthorized(req, why);
}

/* The key in PostgreSQL; on failure, how long the client should wait. */
static int
pg_lookup(struct bw_request *req, const char *id, struct bw_key_record *k, int64_t *retry_ms)
{
	struct bw_err e;

	bw_phase_set("postgres");
	if (bw_keys_lookup(req->arena, id, k, &e) == BW_OK)
		return 0;
	if (e.rc == BW_INVALID)
		bw_error("api key lookup failed: %s: %s", e.code, e.message);
	*retry_ms = e.retry_after_ms > 0 ? e.retry_after_ms : 1000;
	return -1;
}

static void
set_identity(struct bw_request *req, const char *id, const char *tenant, const char *scopes)
{
	req->who.authenticated = true;
	req->who.key_id = id;
	req->who.tenant_id = tenant;
	req->who.scopes = scopes != NULL ? scopes : "";
}

static void
set_policy(struct bw_policy_state *p, const char *name, const char *rate, int64_t burst,
           int64_t remaining, int64_t reset_us, int64_t retry_us)
{
	*p = (struct bw_policy_state){name,      rate,     burst,   bw_keys_interval_us(rate),
	                              remaining, reset_us, retry_us};
}

/* Redis answered bw_auth with ok/limited (R_ALLOWED_LEN elements): fills
 * who and headers. Returns 0 when allowed, -1 with the 429 set. */
static int
from_redis(struct bw_request *req, const char *id, const struct bw_redis_reply *r)
{
	const struct bw_redis_reply *e = r->elem;

	set_identity(req, id, e[R_TENANT].str, e[R_SCOPES].str);
	req->who.npolicies = 2;
	set_policy(&req->who.policies[0], "key", e[R_KEY_RATE].str, e[R_KEY_BURST].integer,
	           e[R_KEY_REMAINING].integer, e[R_KEY_RESET_US].integer,
	           e[R_KEY_RETRY_US].integer);
	set_policy(&req->who.policies[1], "tenant", e[R_TENANT_RATE].str, e[R_TENANT_BURST].integer,
	           e[R_TENANT_REMAINING].integer, e[R_TENANT_RESET_US].integer,
	           e[R_TENANT_RETRY_US].integer);
	set_rate_headers(req);
	if (strcmp(e[R_STATUS].str, "ok") == 0)
		return 0;
	const struct bw_policy_state *v = &req->who.policies[e[R_KEY_RETRY_US].integer > 0 ? 0 : 1];
	too_many(req, v->name, v->retry_us);
	return -1;
}

/* Redis is unreachable: PostgreSQL says who it is, the configured mode
 * says how to limit. */
static int
degraded(struct bw_request *req, const char *id, const char *sha, const char *ip_key)
{
	const struct bw_config *cfg = req->cfg;
	struct bw_key_record k;
	int64_t retry_ms;

	if (cfg->ratelimit_on_redis_error == BW_REDIS_FALLBACK_CLOSED) {
		unavailable(req, "the rate limiter", bw_redis_retry_after_ms(BW_DEP_REDIS) + 1);
		return -1;
	}
	if (pg_lookup(req, id, &k, &retry_ms) < 0) {
		unavailable(req, "authentication", retry_ms);
		return -1;
	}
	if (!k.found || k.revoked || k.sha == NULL || strlen(k.sha) != BW_SHA256_HEX_LEN ||
	    !bw_ct_equal(k.sha, sha, BW_SHA256_HEX_LEN)) {
		auth_failed(req, id, ip_key, "invalid API key", false);
		return -1;
	}
	set_identity(req, id, k.tenant_id, k.scopes);
	if (cfg->ratelimit_on_redis_error == BW_REDIS_FALLBACK_OPEN)
		return 0;
	int hosts = cfg->ratelimit_hosts;
	struct bw_gcra_policy p[2] = {
	    {"key", bw_arena_printf(req->arena, "k:%s", id),
	     bw_keys_interval_us(k.key_rate) * hosts,
	     k.key_burst / hosts > 0 ? k.key_burst / hosts : 1},
	    {"tenant", bw_arena_printf(req->arena, "t:%s", k.tenant_id),
	     bw_keys_interval_us(k.tenant_rate) * hosts,
	     k.tenant_burst / hosts > 0 ? k.tenant_burst / hosts : 1},
	};
	struct bw_gcra_result res[2];
	int rc = bw_limiter_apply(p, 2, res);
	if (rc < 0)
		return 0; /* no table (not under the master): nothing to apply */
	req->who.npolicies = 2;
	set_policy(&req->who.policies[0], "key", k.key_rate, p[0].burst, res[0].remaining,
	           res[0].reset_us, res[0].retry_us);
	set_policy(&req->who.policies[1], "tenant", k.tenant_rate, p[1].burst, res[1].remaining,
	           res[1].reset_us, res[1].retry_us);
	req->who.policies[0].interval_us = p[0].interval_us;
	req->who.policies[1].interval_us = p[1].interval_us;
	set_rate_headers(req);
	if (rc == 1)
		return 0;
	int v = res[0].allowed ? 1 : 0;
	too_many(req, p[v].name, res[v].retry_us);
	return -1;
}

static struct denied *
deny_slot(const char *id)
{
	uint32_t h = 2166136261u;
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &deny_cache[h % DENY_SLOTS];
}

static void
deny_remember(const struct bw_request *req, const char *id, const char *sha)
{
	const struct bw_identity *w = &req->who;
	int v = w->policies[0].retry_us > 0 ? 0 : 1;
	int64_t now = bw_now_us(), retry = w->policies[v].retry_us;
	struct denied *d = deny_slot(id);

	if (strlen(id) >= sizeof(d->key_id) || w->npolicies != 2)
		return;
	snprintf(d->key_id, sizeof(d->key_id), "%s", id);
	snprintf(d->sha, sizeof(d->sha), "%s", sha);
	for (int i = 0; i < 2; i++) {
		d->pol[i] = w->policies[i];
		snprintf(d->rate[i], sizeof(d->rate[i]), "%s", w->policies[i].rate);
		d->pol[i].rate = d->rate[i];
	}
	d->violated = v;
	d->stored_us = now;
	d->until_us = now + (retry < DENY_MAX_US ? retry : DENY_MAX_US);
}

/* Answers 429 from the cache when this key was denied moments ago. */
static bool
deny_cached(struct bw_request *req, const char *id, const char *sha)
{
	struct denied *d = deny_slot(id);
	int64_t now = bw_now_us();

	if (now >= d->until_us || strcmp(d->key_id, id) != 0 ||
	    !bw_ct_equal(d->sha, sha, BW_SHA256_HEX_LEN))
		return false;
	int64_t elapsed = now - d->stored_us;
	req->who.npolicies = 2;
	for (int i = 0; i < 2; i++) {
		req->who.policies[i] = d->pol[i];
		struct bw_policy_state *p = &req->who.policies[i];
		p->reset_us = p->reset_us > elapsed ? p->reset_us - elapsed : 0;
		p->retry_us = p->retry_us > elapsed ? p->retry_us - elapsed : 0;
	}
	set_rate_headers(req);
	const struct bw_policy_state *v = &req->who.policies[d->violated];
	too_many(req, v->name, v->retry_us > 0 ? v->retry_us : 1);
	return true;
}

int
bw_auth_api_key(struct bw_request *req)
{
	const struct bw_config *cfg = req->cfg;
	struct bw_arena *a = req->arena;
	char ip[80], keybuf[200], sha[BW_SHA256_HEX_LEN + 1];
	const char *id = NULL, *secret = NULL;
	struct bw_err err;

	bw_client_prefix(req->remote_addr, ip, sizeof(ip));
	const char *ip_key = bw_keys_ip_bucket(a, ip);
	const char *h = bw_request_param(req, "HTTP_AUTHORIZATION");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		auth_failed(req, NULL, ip_key,
		            "an API key is required: Authorization: Bearer <key>", false);
		return -1;
	}
	const char *token = h + 7;
	while (*token == ' ')
		token++;
	if (!bw_key_parse(token, keybuf, sizeof(keybuf), &id, &secret)) {
		auth_failed(req, NULL, ip_key, "malformed API key", false);
		return -1;
	}
	id = bw_arena_strdup(a, id);
	bw_sha256_hex(secret, strlen(secret), sha);

	if (deny_cached(req, id, sha))
		return -1;
	bw_phase_set("redis");
	const char *keys[] = {bw_keys_record(a, id), bw_keys_negative(a, id), bw_keys_bucket(a, id),
	                      ip_key};
	const char *args[] = {sha, num(a, 1000000 / cfg->auth_fail_rate),
	                      num(a, cfg->auth_fail_burst), ""};
	for (int attempt = 0; attempt < 2; attempt++) {
		struct bw_redis_reply *r;
		if (bw_redis_fcall(a, BW_DEP_REDIS, "bw_auth", 4, keys, 4, args, &r, &err) !=
		        BW_OK ||
		    r->type != BW_REDIS_ARRAY || r->n < 1 ||
		    r->elem[R_STATUS].type != BW_REDIS_STRING) {
			if (r != NULL && r->type == BW_REDIS_ERROR)
				bw_warn("redis: bw_auth: %s", r->str);
			return degraded(req, id, sha, ip_key);
		}
		const char *st = r->elem[R_STATUS].str;
		if (strcmp(st, "ok") == 0 || strcmp(st, "limited") == 0) {
			if (r->n != R_ALLOWED_LEN)
				return degraded(req, id, sha, ip_key); /* not our library's reply */
			int rc = from_redis(req, id, r);
			if (rc < 0)
				deny_remember(req, id, sha);
			return rc;
		}
		if (strcmp(st, "ip_limited") == 0 && r->n == R_IP_LIMITED_LEN) {
			too_many(req, "auth_failures", r->elem[R_IP_LIMITED_RETRY_US].integer);
			return -1;
		}
		if (strcmp(st, "miss") != 0) {
			/* unknown, revoked, bad_secret: already charged to the address. */
			if (r->n == R_FAILED_LEN && r->elem[R_FAILED_IP_OK].integer == 0)
				too_many(req, "auth_failures", r->elem[R_FAILED_RETRY_US].integer);
			else
				unauthorized(req, "invalid API key");
			return -1;
		}
		if (attempt == 1)
			break;
		struct bw_key_record k;
		int64_t retry_ms;
		if (pg_lookup(req, id, &k, &retry_ms) < 0) {
			unavailable(req, "authentication", retry_ms);
			return -1;
		}
		bw_phase_set("redis");
		if (!k.found) {
			auth_failed(req, id, ip_key, "invalid API key", true);
			return -1;
		}
		if (k.revoked) {
			/* The tombstone was lost (Redis restarted or evicted it): put it back. */
			bw_keys_revoke(a, id, cfg->revoked_ttl_s, &err);
			auth_failed(req, id, ip_key, "invalid API key", false);
			return -1;
		}
		bw_keys_fill(a, id, &k, cfg->key_cache_ttl_s);
	}
	/* Filled, yet missing again: treat Redis as unreliable for this request. */
	return degraded(req, id, sha, ip_key);
}

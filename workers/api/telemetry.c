/* Telemetry: POST /v1/devices/{device_id}/telemetry stores a validated
 * reading or batch in MongoDB (one unordered bulk of upserts, acknowledged
 * with the configured write concern before the 201); GET …/telemetry pages
 * through readings newest first with a keyset cursor on (ts, _id); GET
 * …/latest answers from the cache Redis, filled only ever forward by a
 * Lua function, and from MongoDB when the cache misses or is down.
 *
 * A reading's _id: with a msg_id, the first 12 bytes of SHA-256 over
 * (tenant, device, msg_id), as an ObjectId, so a retried batch finds its
 * readings already there; without one, an ObjectId made here. Both kinds
 * are ObjectIds so that (ts, _id) sorts and compares as one type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "api/api.h"
#include "api/list.h"
#include "api/telemetry_json.h"
#include "api/telemetry_validate.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phase.h"
#include "core/secret.h"
#include "core/time.h"
#include "http/response.h"
#include "store/mongo.h"
#include "store/redis.h"

#define COLLECTION     "telemetry"
#define DEVICE_ID_MAX  128
#define PAGE_MAX_BYTES (4 << 20) /* a page ends early past this much JSON */
#define CURSOR_VERSION 1
#define CURSOR_BYTES   21 /* version, ts (8, big-endian), ObjectId (12) */
#define ID_DOMAIN      "bulwark/telemetry/v1"
#define LATEST_KEY_FMT "tl:%s:%s"

/* ---- small helpers ---- */

static bool
valid_device_id(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n >= 1 && n <= DEVICE_ID_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* The device of the path, or NULL with the 400 set. */
static const char *
device_of(struct bw_request *req)
{
	const char *d = bw_request_path_param(req, "device_id");

	if (valid_device_id(d))
		return d;
	bw_resp_problem(req, 400, "invalid_device_id",
	                "a device id is 1 to %d characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
	                DEVICE_ID_MAX);
	return NULL;
}

/* 503 for a MongoDB that is down, refused by the breaker or too slow;
 * extra (may be NULL) is a JSON fragment for the problem body. */
static void
mongo_unavailable(struct bw_request *req, const char *extra, const struct bw_err *err)
{
	bw_info("telemetry: mongo unavailable: %s", err->message);
	bw_resp_unavailable(req, err->retry_after_ms, extra,
	                    "MongoDB is unavailable or did not answer in time; retry shortly");
}

static void
mongo_answer(struct bw_request *req, const struct bw_err *err)
{
	if (err->rc == BW_INVALID) {
		bw_error("telemetry: MongoDB refused a query: %s", err->message);
		bw_resp_problem(req, 500, "internal_error", "the query failed");
		return;
	}
	mongo_unavailable(req, NULL, err);
}

/* ObjectId-shaped id of a reading that carries a msg_id: the first 12
 * bytes of SHA-256 over the parts, NUL-separated. None can hold a NUL
 * (device ids and msg_ids are checked, tenant ids are UUIDs). */
static void
derive_id(const char *tenant, const char *device, const char *msg_id, bson_oid_t *oid)
{
	const char *part[] = {ID_DOMAIN, tenant, device, msg_id};
	char in[sizeof(ID_DOMAIN) + 64 + DEVICE_ID_MAX + 1 + BW_TEL_MAX_MSG_ID * 4];
	unsigned char md[BW_SHA256_LEN];
	size_t n = 0;

	for (size_t i = 0; i < 4; i++) {
		size_t l = strlen(part[i]) + (i < 3);
		if (l > sizeof(in) - n) {
			/* Cannot happen with checked parts; fall back to unique. */
			bw_error("telemetry: id parts too long; using a fresh ObjectId");
			bson_oid_init(oid, NULL);
			return;
		}
		memcpy(in + n, part[i], l);
		n += l;
	}
	bw_sha256(in, n, md);
	memcpy(oid->bytes, md, sizeof(oid->bytes));
}

static const char *
latest_key(struct bw_request *req, const char *device)
{
	return bw_arena_printf(req->arena, LATEST_KEY_FMT, req->who.tenant_id, device);
}

/* {id, device_id, msg_id, ts, received_at, data} */
static void
put_reading(struct bw_buf *b, const bson_oid_t *id, const char *device, const char *msg_id,
            int64_t ts, int64_t received_at, const bson_t *data)
{
	char hex[25], t[BW_TIME_LEN];

	bson_oid_to_string(id, hex);
	bw_buf_putc(b, '{');
	bw_json_kv_str(b, "id", hex, true);
	bw_json_kv_str(b, "device_id", device, false);
	bw_json_kv_str(b, "msg_id", msg_id, false);
	bw_time_format(ts, t);
	bw_json_kv_str(b, "ts", t, false);
	bw_time_format(received_at, t);
	bw_json_kv_str(b, "received_at", t, false);
	bw_json_key(b, "data", false);
	bw_tel_json_object(b, data);
	bw_buf_putc(b, '}');
}

/* A stored document, read back. */
struct stored {
	bson_oid_t id;
	const char *device, *msg_id;
	int64_t ts, received_at;
	bson_t data;
};

static bool
read_stored(const bson_t *doc, struct stored *s)
{
	bson_iter_t it;
	bool have_id = false, have_data = false;
	uint32_t len;
	const uint8_t *buf;

	memset(s, 0, sizeof(*s));
	if (!bson_iter_init(&it, doc))
		return false;
	while (bson_iter_next(&it)) {
		const char *k = bson_iter_key(&it);
		if (strcmp(k, "_id") == 0 && BSON_ITER_HOLDS_OID(&it)) {
			bson_oid_copy(bson_iter_oid(&it), &s->id);
			have_id = true;
		} else if (strcmp(k, "device_id") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
			s->device = bson_iter_utf8(&it, NULL);
		} else if (strcmp(k, "msg_id") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
			s->msg_id = bson_iter_utf8(&it, NULL);
		} else if (strcmp(k, "ts") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
			s->ts = bson_iter_date_time(&it);
		} else if (strcmp(k, "received_at") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
			s->received_at = bson_iter_date_time(&it);
		} else if (strcmp(k, "data") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
			bson_iter_document(&it, &len, &buf);
			have_data = bson_init_static(&s->data, buf, len);
		}
	}
	return have_id && have_data && s->device != NULL;
}

/* ---- the latest reading in the cache Redis ---- */

/* Writes a reading to the cache if it is newer than what is there. A
 * cache that is down costs nothing: the next `latest` reads MongoDB. */
static void
latest_put(struct bw_request *req, const char *device, const bson_oid_t *id, int64_t ts,
           const char *json)
{
	struct bw_redis_reply *r;
	struct bw_err err;
	char hex[25], tsbuf[24], ttl[24];

	bson_oid_to_string(id, hex);
	snprintf(tsbuf, sizeof(tsbuf), "%lld", (long long)ts);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)req->cfg->telemetry_latest_ttl_s * 1000);
	const char *keys[] = {latest_key(req, device)};
	const char *args[] = {tsbuf, hex, json, ttl};
	bw_phase_set("redis");
	int rc = bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_tel_latest_put", 1, keys, 4,
	                        args, &r, &err);
	if (rc == 0 && r->type == BW_REDIS_ERROR)
		bw_warn("telemetry: bw_tel_latest_put: %s", r->str);
	else if (rc != 0)
		bw_debug("telemetry: latest not cached: %s", err.message);
}

struct latest_scan {
	struct bw_buf json;
	bson_oid_t id;
	int64_t ts;
	bool found;
};

static int
on_latest(const bson_t *doc, void *arg)
{
	struct latest_scan *l = arg;
	struct stored s;

	if (!read_stored(doc, &s))
		return 0; /* not one of ours: skip it */
	put_reading(&l->json, &s.id, s.device, s.msg_id, s.ts, s.received_at, &s.data);
	l->id = s.id;
	l->ts = s.ts;
	l->found = true;
	return 1;
}

static void
destroy_bson(void *p)
{
	bson_destroy(p);
}

/* The device's newest reading from MongoDB: 0 (l->found says whether
 * there is one), or the bw_mongo_find code with err filled. */
static int
latest_from_mongo(struct bw_request *req, const char *device, struct latest_scan *l,
                  struct bw_err *err)
{
	bson_t *filter = bson_new(), *opts = bson_new();

	bw_arena_defer(req->arena, destroy_bson, filter);
	bw_arena_defer(req->arena, destroy_bson, opts);
	BSON_APPEND_UTF8(filter, "tenant_id", req->who.tenant_id);
	BSON_APPEND_UTF8(filter, "device_id", device);
	BCON_APPEND(opts, "sort", "{", "ts", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "limit",
	            BCON_INT64(1));
	memset(l, 0, sizeof(*l));
	bw_buf_init(&l->json, req->arena);
	bw_phase_set("mongo");
	return bw_mongo_find(COLLECTION, filter, opts, on_latest, l, err);
}

void
bw_api_telemetry_latest(struct bw_request *req)
{
	const char *device = device_of(req);
	struct bw_redis_reply *r = NULL;
	struct latest_scan l;
	struct bw_err err;

	if (device == NULL)
		return;
	const char *keys[] = {latest_key(req, device)};
	bw_phase_set("redis");
	int rc = bw_redis_fcall(req->arena, BW_DEP_REDIS_CACHE, "bw_tel_latest_get", 1, keys, 0,
	                        NULL, &r, &err);
	bool cache_up = rc == 0 && r->type != BW_REDIS_ERROR;
	if (cache_up && r->type == BW_REDIS_STRING) {
		bw_buf_append(&req->body_out, r->str, r->len);
		bw_resp_header(req, "X-Cache", "HIT");
		bw_resp_json(req, 200);
		return;
	}
	if (rc == 0 && r->type == BW_REDIS_ERROR)
		bw_warn("telemetry: bw_tel_latest_get: %s", r->str);
	rc = latest_from_mongo(req, device, &l, &err);
	if (rc != 0) {
		mongo_answer(req, &err);
		return;
	}
	if (!l.found) {
		bw_resp_problem(req, 404, "device_not_found", "no reading of device %s", device);
		return;
	}
	/* Fill only a cache that answered: a dead one would cost a timeout. */
	if (cache_up)
		latest_put(req, device, &l.id, l.ts, bw_buf_cstr(&l.json));
	bw_buf_append(&req->body_out, l.json.data, l.json.len);
	bw_resp_header(req, "X-Cache", "MISS");
	bw_resp_json(req, 200);
}

/* ---- ingest ---- */

static void
answer_invalid(struct bw_request *req, const struct bw_tel_error *e)
{
	struct bw_buf x;

	if (e->status >= 500) {
		bw_resp_problem(req, 500, "internal_error", "%s", e->detail);
		return;
	}
	bw_buf_init(&x, req->arena);
	bw_json_key(&x, "index", true);
	if (e->index >= 0)
		bw_buf_printf(&x, "%ld", e->index);
	else
		bw_buf_puts(&x, "null");
	bw_json_kv_int(&x, "offset", (int64_t)e->offset, false);
	bw_resp_problem_at(req, e->status, e->code, e->pointer, e->pointer_len, bw_buf_cstr(&x),
	                   "%s", e->detail);
}

static const char *
fate_name(enum bw_mongo_fate f)
{
	switch (f) {
	case BW_MONGO_STORED:
		return "stored";
	case BW_MONGO_DUPLICATE:
		return "duplicate";
	case BW_MONGO_FAILED:
		return "failed";
	case BW_MONGO_UNKNOWN:
		break;
	}
	return "unknown";
}

static void
put_results(struct bw_buf *b, const struct bw_tel_reading *rs, const bson_oid_t *ids,
            const enum bw_mongo_fate *fates, size_t n)
{
	char hex[25];

	bw_json_key(b, "results", false);
	bw_buf_putc(b, '[');
	for (size_t i = 0; i < n; i++) {
		bson_oid_to_string(&ids[i], hex);
		bw_buf_puts(b, i ? ",{" : "{");
		bw_json_kv_int(b, "index", (int64_t)i, true);
		bw_json_kv_str(b, "id", hex, false);
		bw_json_kv_str(b, "msg_id", rs[i].msg_id, false);
		bw_json_kv_str(b, "status", fate_name(fates[i]), false);
		bw_buf_putc(b, '}');
	}
	bw_buf_putc(b, ']');
}

/* After a 201: the batch's newest reading goes to the cache. When that
 * reading was already stored (a retry), what MongoDB holds under its _id
 * may differ from what was sent again, so the cache is filled from
 * MongoDB's newest instead. */
static void
update_latest(struct bw_request *req, const char *device, const struct bw_tel_reading *rs,
              const bson_oid_t *ids, const enum bw_mongo_fate *fates, size_t n, int64_t received_at)
{
	size_t best = 0;

	for (size_t i = 1; i < n; i++)
		if (rs[i].ts_ms > rs[best].ts_ms ||
		    (rs[i].ts_ms == rs[best].ts_ms && bson_oid_compare(&ids[i], &ids[best]) > 0))
			best = i;
	if (fates[best] == BW_MONGO_STORED) {
		struct bw_buf json;
		bw_buf_init(&json, req->arena);
		put_reading(&json, &ids[best], device, rs[best].msg_id, rs[best].ts_ms, received_at,
		            rs[best].data);
		latest_put(req, device, &ids[best], rs[best].ts_ms, bw_buf_cstr(&json));
		return;
	}
	struct latest_scan l;
	struct bw_err err;
	if (latest_from_mongo(req, device, &l, &err) == 0 && l.found)
		latest_put(req, device, &l.id, l.ts, bw_buf_cstr(&l.json));
}

void
bw_api_telemetry_ingest(struct bw_request *req)
{
	const char *device = device_of(req);
	const char *tenant = req->who.tenant_id;
	const struct bw_config *cfg = req->cfg;
	struct bw_tel_reading *rs;
	struct bw_tel_error verr;
	size_t n, stored = 0, dups = 0;
	struct bw_err err;

	if (device == NULL)
		return;
	int64_t now = bw_wall_ms();
	struct bw_tel_limits lim = {
	    .now_ms = now,
	    .max_past_ms = (int64_t)cfg->telemetry_max_past_s * 1000,
	    .max_future_ms = (int64_t)cfg->telemetry_max_future_s * 1000,
	};
	bw_phase_set("validate");
	if (bw_tel_parse(req->arena, req->body != NULL ? req->body : "", req->body_len, &lim, &rs,
	                 &n, &verr) < 0) {
		answer_invalid(req, &verr);
		return;
	}
	bson_oid_t *ids = bw_arena_calloc(req->arena, n, sizeof(*ids));
	bson_t **docs = bw_arena_calloc(req->arena, n, sizeof(*docs));
	enum bw_mongo_fate *fates = bw_arena_calloc(req->arena, n, sizeof(*fates));
	if (ids == NULL || docs == NULL || fates == NULL) {
		bw_resp_problem(req, 500, "internal_error", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (rs[i].msg_id != NULL)
			derive_id(tenant, device, rs[i].msg_id, &ids[i]);
		else
			bson_oid_init(&ids[i], NULL);
		docs[i] = bson_new();
		bw_arena_defer(req->arena, destroy_bson, docs[i]);
		BSON_APPEND_UTF8(docs[i], "tenant_id", tenant);
		BSON_APPEND_UTF8(docs[i], "device_id", device);
		if (rs[i].msg_id != NULL)
			BSON_APPEND_UTF8(docs[i], "msg_id", rs[i].msg_id);
		BSON_APPEND_DATE_TIME(docs[i], "ts", rs[i].ts_ms);
		BSON_APPEND_DATE_TIME(docs[i], "received_at", now);
		BSON_APPEND_DOCUMENT(docs[i], "data", rs[i].data);
	}
	bw_phase_set("mongo");
	bool insert_first = cfg->telemetry_write_mode == BW_TELEMETRY_INSERT;
	int rc = bw_mongo_insert_new(COLLECTION, ids, docs, n, insert_first, fates, &err);
	if (rc == BW_REFUSED) {
		mongo_unavailable(req, NULL, &err);
		return;
	}
	if (rc != 0) {
		/* What is known per reading; a retry with the same msg_ids is safe. */
		struct bw_buf x;
		bw_buf_init(&x, req->arena);
		bw_json_kv_bool(&x, "retry_safe", true, true);
		put_results(&x, rs, ids, fates, n);
		mongo_unavailable(req, bw_buf_cstr(&x), &err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		stored += fates[i] == BW_MONGO_STORED;
		dups += fates[i] == BW_MONGO_DUPLICATE;
	}
	struct bw_buf *b = &req->body_out;
	bw_buf_putc(b, '{');
	bw_json_kv_int(b, "stored", (int64_t)stored, true);
	bw_json_kv_int(b, "duplicates", (int64_t)dups, false);
	put_results(b, rs, ids, fates, n);
	bw_buf_putc(b, '}');
	bw_resp_json(req, 201);
	update_latest(req, device, rs, ids, fates, n, now);
}

/* ---- range queries ---- */

/* A page's `next`: the version, ts (8 bytes, big-endian), the ObjectId. */
static void
put_cursor(struct bw_buf *b, int64_t ts, const bson_oid_t *id)
{
	unsigned char c[CURSOR_BYTES];
	uint64_t u = (uint64_t)ts;

	c[0] = CURSOR_VERSION;
	for (int i = 0; i < 8; i++)
		c[1 + i] = (unsigned char)(u >> (56 - 8 * i));
	memcpy(c + 9, id->bytes, 12);
	bw_cursor_put(b, c, sizeof(c));
}

/* The key an ?after= cursor wraps (n bytes at c, from bw_cursor_read). */
static bool
read_cursor(const unsigned char *c, long n, int64_t *ts, bson_oid_t *id)
{
	uint64_t u = 0;

	if (n != CURSOR_BYTES || c[0] != CURSOR_VERSION)
		return false;
	for (int i = 0; i < 8; i++)
		u = (u << 8) | c[1 + i];
	*ts = (int64_t)u;
	memcpy(id->bytes, c + 9, 12);
	return true;
}

struct page {
	struct bw_buf *out;
	long limit, count;
	bool more;
	int64_t last_ts;
	bson_oid_t last_id;
};

static int
on_page(const bson_t *doc, void *arg)
{
	struct page *pg = arg;
	struct stored s;

	if (pg->count == pg->limit) {
		pg->more = true; /* the one extra document asked for */
		return 1;
	}
	if (!read_stored(doc, &s))
		return 0;
	if (pg->count > 0)
		bw_buf_putc(pg->out, ',');
	put_reading(pg->out, &s.id, s.device, s.msg_id, s.ts, s.received_at, &s.data);
	pg->count++;
	pg->last_ts = s.ts;
	pg->last_id = s.id;
	if (pg->out->len > PAGE_MAX_BYTES) {
		pg->more = true;
		return 1;
	}
	return 0;
}

static int
on_any(const bson_t *doc, void *arg)
{
	*(bool *)arg = true;
	return 1;
}

void
bw_api_telemetry_list(struct bw_request *req)
{
	const char *device = device_of(req);
	const char *since = bw_request_query(req, "since"), *until = bw_request_query(req, "until");
	int64_t since_ms = 0, until_ms = 0, after_ts = 0;
	unsigned char cursor[CURSOR_BYTES + 1];
	bson_oid_t after_id;
	int limit;
	struct bw_err err;

	if (device == NULL)
		return;
	if (since != NULL && bw_time_parse(since, &since_ms) < 0) {
		bw_resp_invalid_parameter(req, "since",
		                          "must be an RFC 3339 date-time or epoch milliseconds");
		return;
	}
	if (until != NULL && bw_time_parse(until, &until_ms) < 0) {
		bw_resp_invalid_parameter(req, "until",
		                          "must be an RFC 3339 date-time or epoch milliseconds");
		return;
	}
	if (!bw_list_limit(bw_request_query(req, "limit"), &limit)) {
		bw_resp_invalid_parameter(req, "limit", "must be an integer from 1 to %d",
		                          BW_LIST_MAX);
		return;
	}
	long clen = bw_cursor_read(bw_request_query(req, "after"), cursor, CURSOR_BYTES);
	bool has_after = clen > 0;
	if (clen < 0 || (has_after && !read_cursor(cursor, clen, &after_ts, &after_id))) {
		bw_resp_invalid_parameter(req, "after", "is not a cursor this API returned");
		return;
	}

	bson_t *filter = bson_new(), *opts = bson_new();
	bw_arena_defer(req->arena, destroy_bson, filter);
	bw_arena_defer(req->arena, destroy_bson, opts);
	BSON_APPEND_UTF8(filter, "tenant_id", req->who.tenant_id);
	BSON_APPEND_UTF8(filter, "device_id", device);
	if (since != NULL || until != NULL) {
		bson_t range;
		BSON_APPEND_DOCUMENT_BEGIN(filter, "ts", &range);
		if (since != NULL)
			BSON_APPEND_DATE_TIME(&range, "$gte", since_ms);
		if (until != NULL)
			BSON_APPEND_DATE_TIME(&range, "$lt", until_ms);
		bson_append_document_end(filter, &range);
	}
	if (has_after)
		/* Strictly after the last reading of the previous page in the
		 * order (ts desc, _id desc): the keyset that never skips or repeats. */
		BCON_APPEND(filter, "$or", "[", "{", "ts", "{", "$lt", BCON_DATE_TIME(after_ts),
		            "}", "}", "{", "ts", BCON_DATE_TIME(after_ts), "_id", "{", "$lt",
		            BCON_OID(&after_id), "}", "}", "]");
	BCON_APPEND(opts, "sort", "{", "ts", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "limit",
	            BCON_INT64((int64_t)limit + 1));

	struct bw_buf *b = &req->body_out;
	struct page pg = {.out = b, .limit = limit};
	bw_buf_puts(b, "{\"data\":[");
	bw_phase_set("mongo");
	int rc = bw_mongo_find(COLLECTION, filter, opts, on_page, &pg, &err);
	if (rc != 0) {
		bw_buf_reset(b);
		mongo_answer(req, &err);
		return;
	}
	if (pg.count == 0 && !has_after) {
		/* An empty page: is there no such device (for this tenant)? */
		bool any = false;
		bson_t *f = bson_new(), *o = BCON_NEW("limit", BCON_INT64(1));
		bw_arena_defer(req->arena, destroy_bson, f);
		bw_arena_defer(req->arena, destroy_bson, o);
		BSON_APPEND_UTF8(f, "tenant_id", req->who.tenant_id);
		BSON_APPEND_UTF8(f, "device_id", device);
		rc = bw_mongo_find(COLLECTION, f, o, on_any, &any, &err);
		if (rc != 0) {
			bw_buf_reset(b);
			mongo_answer(req, &err);
			return;
		}
		if (!any) {
			bw_buf_reset(b);
			bw_resp_problem(req, 404, "device_not_found", "no reading of device %s",
			                device);
			return;
		}
	}
	bw_buf_puts(b, "],\"next\":");
	if (pg.more)
		put_cursor(b, pg.last_ts, &pg.last_id);
	else
		bw_buf_puts(b, "null");
	bw_buf_putc(b, '}');
	bw_resp_json(req, 200);
}

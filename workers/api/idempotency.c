#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/idempotency.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/response.h"
#include "http/router.h"

#define MAX_KEY        255
#define CLEANUP_PERIOD 60000 /* ms per worker */
#define CLEANUP_BATCH  "500"

/* A bare token, or an RFC 8941 sf-string ("…" with \" and \\ escapes). */
static const char *
parse_key(struct bw_arena *a, const char *h)
{
	size_t n = strlen(h);

	while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	while (n > 0 && (*h == ' ' || *h == '\t')) {
		h++;
		n--;
	}
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
		char *out = bw_arena_alloc(a, n);
		size_t j = 0;
		for (size_t i = 1; i < n - 1; i++) {
			char c = h[i];
			if (c == '\\') {
				if (i + 1 >= n - 1 || (h[i + 1] != '"' && h[i + 1] != '\\'))
					return NULL;
				c = h[++i];
			} else if (c == '"' || (unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
				return NULL;
			}
			out[j++] = c;
		}
		out[j] = '\0';
		return j > 0 ? out : NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] > 0x7e || h[i] == '"')
			return NULL;
	return n > 0 ? bw_arena_strndup(a, h, n) : NULL;
}

bool
bw_idem_read(struct bw_request *req, struct bw_idem *idem, bool required)
{
	const char *h = bw_request_param(req, "HTTP_IDEMPOTENCY_KEY");

	memset(idem, 0, sizeof(*idem));
	if (h == NULL) {
		if (!required)
			return true;
		bw_resp_problem(req, 400, "idempotency_key_required",
		                "this request needs an Idempotency-Key header");
		return false;
	}
	const char *key = parse_key(req->arena, h);
	if (key == NULL || strlen(key) > MAX_KEY) {
		bw_resp_problem(req, 400, "invalid_idempotency_key",
		                "Idempotency-Key must be a token or a quoted string of 1 to %d "
		                "printable characters",
		                MAX_KEY);
		return false;
	}
	idem->key = key;
	bw_sha256_hex(req->body != NULL ? req->body : "", req->body_len, idem->fingerprint);
	return true;
}

enum bw_rc
bw_idem_check(struct bw_request *req, const struct bw_idem *idem)
{
	struct bw_pg_result r;
	const char *p[] = {req->who.tenant_id, req->who.key_id, idem->key};

	if (idem->key == NULL)
		return BW_OK;
	/* Try-lock, not wait: a duplicate in flight gets 409 at once. The
	 * lookup shares the statement's snapshot, taken before the lock: an
	 * outcome committed in between is missed here, and then our own insert
	 * of it fails as a duplicate and the whole request runs again. */
	enum bw_rc rc = bw_db_query(
	    req,
	    "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0)), "
	    "i.route, i.fingerprint, i.status, i.body FROM (SELECT 1) AS one "
	    "LEFT JOIN idempotency_keys i ON i.tenant_id = $1::uuid AND i.key_id = $2 "
	    "AND i.idem_key = $3",
	    3, p, &r, NULL);
	if (rc != BW_OK)
		return rc;
	if (strcmp(bw_pg_get(&r, 0, 0), "t") != 0) {
		bw_db_rollback(req);
		bw_resp_problem(req, 409, "idempotency_key_in_flight",
		                "a request with this Idempotency-Key is still being processed");
		return BW_DONE;
	}
	const char *route = bw_pg_get(&r, 0, 1);
	if (route == NULL)
		return BW_OK;
	bw_db_rollback(req);
	bw_idem_answer_stored(req, idem, route, bw_pg_get(&r, 0, 2), bw_pg_get(&r, 0, 3),
	                      bw_pg_get(&r, 0, 4));
	return BW_DONE;
}

void
bw_idem_answer_stored(struct bw_request *req, const struct bw_idem *idem, const char *route,
                      const char *fp, const char *status, const char *body)
{
	if (route == NULL || fp == NULL || status == NULL || body == NULL ||
	    strcmp(route, req->route->name) != 0 || strlen(fp) != BW_SHA256_HEX_LEN ||
	    !bw_ct_equal(fp, idem->fingerprint, BW_SHA256_HEX_LEN)) {
		bw_resp_problem(req, 422, "idempotency_key_reused",
		                "this Idempotency-Key was used with a different request");
		return;
	}
	int st = atoi(status);
	bw_buf_reset(&req->body_out);
	bw_buf_puts(&req->body_out, body);
	bw_resp_header(req, "Idempotent-Replayed", "true");
	req->status = st;
	req->out_type = st >= 400 ? "application/problem+json" : "application/json";
}

static bool
storable(const struct bw_request *req, const struct bw_idem *idem)
{
	int st = req->status;
	return idem->key != NULL && st < 500 && st != 401 && st != 409 && st != 429;
}

enum bw_rc
bw_idem_store(struct bw_request *req, const struct bw_idem *idem)
{
	struct bw_pg_result r;
	int st = req->status;

	if (!storable(req, idem))
		return BW_OK;
	const char *p[] = {
	    req->who.tenant_id,         req->who.key_id,   idem->key,
	    req->route->name,           idem->fingerprint, bw_arena_printf(req->arena, "%d", st),
	    bw_buf_cstr(&req->body_out)};
	struct bw_err e;
	enum bw_rc rc = bw_db_query(req,
	                            "INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, "
	                            "route, fingerprint, status, body) "
	                            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
	                            7, p, &r, &e);
	if (rc == BW_ERR) {
		/* Stored by a twin that committed after our check: run again, replay it. */
		if (e.rc == BW_INVALID && strcmp(e.code, "23505") == 0)
			return BW_RETRY;
		bw_db_answer(req, &e);
	}
	return rc;
}

void
bw_idem_cleanup(struct bw_request *req)
{
	static int64_t next_ms;
	int64_t now = bw_now_ms();
	struct bw_pg_result r;
	struct bw_err e;

	if (now < next_ms)
		return;
	next_ms = now + CLEANUP_PERIOD + random() % CLEANUP_PERIOD;
	/* A small batch of every tenant's records older than 72 h
	 * (schema/008): row locks only, never a table lock. A raw query, in
	 * its own transaction: whatever happens here must not touch the
	 * response. */
	if (bw_pg_query(req->arena, "SELECT idempotency_cleanup(" CLEANUP_BATCH ")", 0, NULL, 0, &r,
	                &e) < 0)
		bw_warn("idempotency cleanup: %s", e.message);
}

/* POST /v1/accounts, GET /v1/accounts, GET /v1/accounts/{id},
 * GET /v1/accounts/{id}/entries. Isolation is row-level security: the
 * queries filter by tenant too, for the index, but do not rely on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/db.h"
#include "api/idempotency.h"
#include "api/ledger.h"
#include "core/arena.h"
#include "core/buf.h"
#include "http/body.h"
#include "http/response.h"

bool
bw_is_uuid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-'
		         : strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == 0)
			return false;
	}
	return true;
}

bool
bw_is_currency(const char *s)
{
	return s != NULL && strlen(s) == 3 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
}

void
bw_invalid_field(struct bw_request *req, const char *field, const char *why)
{
	struct bw_buf ptr;

	bw_buf_init(&ptr, req->arena);
	bw_json_key(&ptr, "pointer", true);
	bw_json_str(&ptr, bw_arena_printf(req->arena, "/%s", field));
	bw_resp_problem_ex(req, 400, "invalid_field", bw_buf_cstr(&ptr), "%s: %s", field, why);
}

/* Puts a column that PostgreSQL gave as text, as a JSON number. */
static void
put_number(struct bw_buf *b, const char *v)
{
	bw_buf_puts(b, v != NULL ? v : "null");
}

void
bw_render_account(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, 0), true);
	bw_json_kv_str(b, "name", bw_pg_get(r, row, 1), false);
	bw_json_kv_str(b, "currency", bw_pg_get(r, row, 2), false);
	const char *neg = bw_pg_get(r, row, 3);
	bw_json_kv_bool(b, "allow_negative", neg != NULL && neg[0] == 't', false);
	bw_json_key(b, "balance", false);
	put_number(b, bw_pg_get(r, row, 4));
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, 5), false);
	bw_buf_puts(b, "}");
}

void
bw_render_transfer_at(struct bw_buf *b, const struct bw_pg_result *r, int row, int col)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, col), true);
	bw_json_kv_str(b, "from_account", bw_pg_get(r, row, col + 1), false);
	bw_json_kv_str(b, "to_account", bw_pg_get(r, row, col + 2), false);
	bw_json_key(b, "amount", false);
	put_number(b, bw_pg_get(r, row, col + 3));
	bw_json_kv_str(b, "currency", bw_pg_get(r, row, col + 4), false);
	bw_json_kv_str(b, "memo", bw_pg_get(r, row, col + 5), false);
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, col + 6), false);
	bw_buf_puts(b, "}");
}

void
bw_render_transfer(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	bw_render_transfer_at(b, r, row, 0);
}

static void
render_entry(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, 0), true);
	bw_json_kv_str(b, "account_id", bw_pg_get(r, row, 1), false);
	bw_json_kv_str(b, "transfer_id", bw_pg_get(r, row, 2), false);
	bw_json_key(b, "amount", false);
	put_number(b, bw_pg_get(r, row, 3));
	bw_json_key(b, "balance_after", false);
	put_number(b, bw_pg_get(r, row, 4));
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, 5), false);
	bw_buf_puts(b, "}");
}

bool
bw_list_params(struct bw_request *req, int *limit, const char **after)
{
	const char *l = bw_request_query(req, "limit");
	const char *a = bw_request_query(req, "after");

	*limit = BW_LIST_DEFAULT;
	*after = NULL;
	if (l != NULL) {
		char *end;
		long v = strtol(l, &end, 10);
		if (*l == '\0' || *end != '\0' || v < 1 || v > BW_LIST_MAX) {
			bw_resp_problem(req, 400, "invalid_parameter", "limit must be 1 to %d",
			                BW_LIST_MAX);
			return false;
		}
		*limit = (int)v;
	}
	if (a != NULL && a[0] != '\0') {
		size_t n = strlen(a);
		unsigned char *raw = bw_arena_alloc(req->arena, n + 1);
		long len = n <= 200 && raw != NULL ? bw_base64url_decode(a, raw, n) : -1;
		if (len <= 2 || raw[0] != 'c' || raw[1] != ':') {
			bw_resp_problem(req, 400, "invalid_parameter",
			                "after is not a cursor of this list");
			return false;
		}
		raw[len] = '\0';
		*after = (const char *)raw + 2;
	}
	return true;
}

void
bw_render_list(struct bw_request *req, const struct bw_pg_result *r, int limit,
               void (*render)(struct bw_buf *, const struct bw_pg_result *, int))
{
	struct bw_buf *b = &req->body_out;
	int n = r->nrows < limit ? r->nrows : limit;

	bw_buf_puts(b, "{\"data\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			bw_buf_putc(b, ',');
		render(b, r, i);
	}
	bw_buf_puts(b, "],\"next\":");
	if (r->nrows > limit) {
		/* "c:" marks our cursors; the rest is the last row's key. */
		const char *last = bw_arena_printf(req->arena, "c:%s", bw_pg_get(r, n - 1, 0));
		bw_buf_putc(b, '"');
		bw_base64url(b, last, strlen(last));
		bw_buf_putc(b, '"');
	} else {
		bw_buf_puts(b, "null");
	}
	bw_buf_puts(b, "}");
	bw_resp_json(req, 200);
}

void
bw_api_account_create(struct bw_request *req)
{
	static const char *const allowed[] = {"name", "currency", "allow_negative", NULL};
	struct bw_idem idem;
	struct bw_pg_result r;

	if (!bw_idem_read(req, &idem, false))
		return;
	struct bw_body *body = bw_body_parse(req, allowed);
	if (body == NULL)
		return;
	struct bw_body_value name = bw_body_get(body, "name");
	struct bw_body_value cur = bw_body_get(body, "currency");
	struct bw_body_value neg = bw_body_get(body, "allow_negative");
	size_t name_chars = name.type == BW_BODY_STRING ? bw_utf8_chars(name.str, name.len) : 0;
	if (name_chars < 1 || name_chars > 200) {
		bw_invalid_field(req, "name", "a string of 1 to 200 characters is required");
		return;
	}
	if (cur.type != BW_BODY_STRING || !bw_is_currency(cur.str)) {
		bw_invalid_field(req, "currency",
		                 "an ISO 4217 code of three capital letters is required");
		return;
	}
	if (neg.type != BW_BODY_ABSENT && neg.type != BW_BODY_BOOL) {
		bw_invalid_field(req, "allow_negative", "must be true or false");
		return;
	}
	const char *p[] = {req->who.tenant_id, name.str, cur.str,
	                   neg.type == BW_BODY_BOOL && neg.boolean ? "true" : "false"};
	for (int attempt = 1;; attempt++) {
		bw_buf_reset(&req->body_out);
		req->status = 0;
		enum bw_rc rc = bw_db_begin(req, false);
		if (rc == BW_OK) {
			rc = bw_idem_check(req, &idem);
			if (rc == BW_DONE || rc == BW_ERR)
				return;
		}
		if (rc == BW_OK)
			rc = bw_db_query(
			    req,
			    "INSERT INTO accounts (tenant_id, name, currency, allow_negative) "
			    "VALUES ($1, $2, $3, $4) RETURNING " BW_ACCOUNT_COLUMNS,
			    4, p, &r, NULL);
		if (rc == BW_OK) {
			bw_render_account(&req->body_out, &r, 0);
			bw_resp_json(req, 201);
			rc = bw_idem_store(req, &idem);
		}
		if (rc == BW_OK)
			rc = bw_db_commit(req);
		if (rc == BW_OK) {
			bw_report_invalidate(req);
			return;
		}
		if (rc == BW_ERR || !bw_db_backoff(req, attempt))
			return;
	}
}

void
bw_ledger_get_one(struct bw_request *req, const char *sql, const char *code, const char *what,
                  void (*render)(struct bw_buf *, const struct bw_pg_result *, int))
{
	const char *id = bw_request_path_param(req, "id");
	struct bw_pg_result r;
	enum bw_rc rc;

	if (!bw_is_uuid(id)) {
		bw_resp_problem(req, 404, code, "no %s %s", what, id);
		return;
	}
	const char *p[] = {req->who.tenant_id, id};
	if ((rc = bw_db_begin(req, true)) != BW_OK ||
	    (rc = bw_db_query(req, sql, 2, p, &r, NULL)) != BW_OK ||
	    (rc = bw_db_commit(req)) != BW_OK) {
		bw_db_settle(req, rc);
		return;
	}
	if (r.nrows == 0) {
		bw_resp_problem(req, 404, code, "no %s %s", what, id);
		return;
	}
	render(&req->body_out, &r, 0);
	bw_resp_json(req, 200);
}

void
bw_api_account_get(struct bw_request *req)
{
	bw_ledger_get_one(
	    req, "SELECT " BW_ACCOUNT_COLUMNS " FROM accounts WHERE tenant_id = $1 AND id = $2",
	    "account_not_found", "account", bw_render_account);
}

void
bw_api_account_list(struct bw_request *req)
{
	struct bw_pg_result r;
	int limit;
	const char *after;

	if (!bw_list_params(req, &limit, &after))
		return;
	if (after != NULL && !bw_is_uuid(after)) {
		bw_resp_problem(req, 400, "invalid_parameter",
		                "after is not a cursor of this list");
		return;
	}
	const char *p[] = {req->who.tenant_id, after, bw_arena_printf(req->arena, "%d", limit + 1)};
	enum bw_rc rc;
	if ((rc = bw_db_begin(req, true)) != BW_OK ||
	    (rc = bw_db_query(
	         req,
	         "SELECT " BW_ACCOUNT_COLUMNS " FROM accounts WHERE tenant_id = $1 "
	         "AND ($2::uuid IS NULL OR accounts.id > $2::uuid) ORDER BY accounts.id "
	         "LIMIT $3",
	         3, p, &r, NULL)) != BW_OK ||
	    (rc = bw_db_commit(req)) != BW_OK) {
		bw_db_settle(req, rc);
		return;
	}
	bw_render_list(req, &r, limit, bw_render_account);
}

void
bw_api_account_entries(struct bw_request *req)
{
	const char *id = bw_request_path_param(req, "id");
	struct bw_pg_result acc, r;
	int limit;
	const char *after;

	if (!bw_list_params(req, &limit, &after))
		return;
	if (!bw_is_uuid(id)) {
		bw_resp_problem(req, 404, "account_not_found", "no account %s", id);
		return;
	}
	/* Entry ids are bigint: up to 9223372036854775807. */
	size_t alen = after != NULL ? strlen(after) : 0;
	if (after != NULL && (strspn(after, "0123456789") != alen || alen < 1 || alen > 19 ||
	                      (alen == 19 && strcmp(after, "9223372036854775807") > 0))) {
		bw_resp_problem(req, 400, "invalid_parameter",
		                "after is not a cursor of this list");
		return;
	}
	const char *pa[] = {req->who.tenant_id, id};
	const char *p[] = {id, after, bw_arena_printf(req->arena, "%d", limit + 1)};
	enum bw_rc rc;
	if ((rc = bw_db_begin(req, true)) != BW_OK ||
	    (rc = bw_db_query(req, "SELECT 1 FROM accounts WHERE tenant_id = $1 AND id = $2", 2, pa,
	                      &acc, NULL)) != BW_OK) {
		bw_db_settle(req, rc);
		return;
	}
	if (acc.nrows == 0) {
		bw_db_rollback(req);
		bw_resp_problem(req, 404, "account_not_found", "no account %s", id);
		return;
	}
	if ((rc = bw_db_query(
	         req,
	         "SELECT id::text, account_id::text, transfer_id::text, amount::text, "
	         "balance_after::text, bw_rfc3339(created_at) FROM entries "
	         "WHERE account_id = $1 AND ($2::bigint IS NULL OR entries.id < $2::bigint) "
	         "ORDER BY entries.id DESC LIMIT $3",
	         3, p, &r, NULL)) != BW_OK ||
	    (rc = bw_db_commit(req)) != BW_OK) {
		bw_db_settle(req, rc);
		return;
	}
	bw_render_list(req, &r, limit, render_entry);
}

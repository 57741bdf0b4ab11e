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
#include "api/reports.h"
#include "core/arena.h"
#include "core/buf.h"
#include "http/body.h"
#include "http/response.h"

/* The columns every account query selects, and their indices. The key of
 * a list page is column 0 (bw_ledger_render_list). */
#define BW_ACCOUNT_COLUMNS                                                                         \
	"id::text, name, currency, allow_negative, balance::text, bw_rfc3339(created_at)"
enum account_col {
	ACCOUNT_ID,
	ACCOUNT_NAME,
	ACCOUNT_CURRENCY,
	ACCOUNT_ALLOW_NEGATIVE,
	ACCOUNT_BALANCE,
	ACCOUNT_CREATED_AT,
};

/* The columns of an entries page, and their indices (the key: column 0). */
#define ENTRY_COLUMNS                                                                              \
	"id::text, account_id::text, transfer_id::text, amount::text, balance_after::text, "       \
	"bw_rfc3339(created_at)"
enum entry_col {
	ENTRY_ID,
	ENTRY_ACCOUNT_ID,
	ENTRY_TRANSFER_ID,
	ENTRY_AMOUNT,
	ENTRY_BALANCE_AFTER,
	ENTRY_CREATED_AT,
};

static void
render_account(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, ACCOUNT_ID), true);
	bw_json_kv_str(b, "name", bw_pg_get(r, row, ACCOUNT_NAME), false);
	bw_json_kv_str(b, "currency", bw_pg_get(r, row, ACCOUNT_CURRENCY), false);
	const char *neg = bw_pg_get(r, row, ACCOUNT_ALLOW_NEGATIVE);
	bw_json_kv_bool(b, "allow_negative", neg != NULL && neg[0] == 't', false);
	bw_json_key(b, "balance", false);
	bw_ledger_put_amount(b, bw_pg_get(r, row, ACCOUNT_BALANCE));
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, ACCOUNT_CREATED_AT), false);
	bw_buf_puts(b, "}");
}

static void
render_entry(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, ENTRY_ID), true);
	bw_json_kv_str(b, "account_id", bw_pg_get(r, row, ENTRY_ACCOUNT_ID), false);
	bw_json_kv_str(b, "transfer_id", bw_pg_get(r, row, ENTRY_TRANSFER_ID), false);
	bw_json_key(b, "amount", false);
	bw_ledger_put_amount(b, bw_pg_get(r, row, ENTRY_AMOUNT));
	bw_json_key(b, "balance_after", false);
	bw_ledger_put_amount(b, bw_pg_get(r, row, ENTRY_BALANCE_AFTER));
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, ENTRY_CREATED_AT), false);
	bw_buf_puts(b, "}");
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
			render_account(&req->body_out, &r, 0);
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
bw_api_account_get(struct bw_request *req)
{
	bw_ledger_get_one(
	    req, "SELECT " BW_ACCOUNT_COLUMNS " FROM accounts WHERE tenant_id = $1 AND id = $2",
	    "account_not_found", "account", render_account);
}

void
bw_api_account_list(struct bw_request *req)
{
	struct bw_pg_result r;
	int limit;
	const char *after;

	if (!bw_ledger_list_params(req, &limit, &after))
		return;
	if (after != NULL && !bw_is_uuid(after)) {
		bw_ledger_not_a_cursor(req);
		return;
	}
	const char *p[] = {req->who.tenant_id, after, bw_arena_printf(req->arena, "%d", limit + 1)};
	const struct bw_db_stmt page = {
	    .sql = "SELECT " BW_ACCOUNT_COLUMNS " FROM accounts WHERE tenant_id = $1 "
	           "AND ($2::uuid IS NULL OR accounts.id > $2::uuid) ORDER BY accounts.id LIMIT $3",
	    .nparams = 3,
	    .params = p,
	    .res = &r,
	};
	if (bw_db_read(req, &page, 1) != BW_OK)
		return;
	bw_ledger_render_list(req, &r, limit, render_account);
}

void
bw_api_account_entries(struct bw_request *req)
{
	const char *id = bw_request_path_param(req, "id");
	struct bw_pg_result acc, r;
	int limit;
	const char *after;

	if (!bw_ledger_list_params(req, &limit, &after))
		return;
	if (!bw_is_uuid(id)) {
		bw_resp_problem(req, 404, "account_not_found", "no account %s", id);
		return;
	}
	/* Entry ids are bigint: up to 9223372036854775807. */
	size_t alen = after != NULL ? strlen(after) : 0;
	if (after != NULL && (strspn(after, "0123456789") != alen || alen < 1 || alen > 19 ||
	                      (alen == 19 && strcmp(after, "9223372036854775807") > 0))) {
		bw_ledger_not_a_cursor(req);
		return;
	}
	const char *pa[] = {req->who.tenant_id, id};
	const char *p[] = {id, after, bw_arena_printf(req->arena, "%d", limit + 1)};
	const struct bw_db_stmt read[] = {
	    {.sql = "SELECT 1 FROM accounts WHERE tenant_id = $1 AND id = $2",
	     .nparams = 2,
	     .params = pa,
	     .res = &acc,
	     .needs_row = true},
	    {.sql = "SELECT " ENTRY_COLUMNS " FROM entries WHERE account_id = $1 "
	            "AND ($2::bigint IS NULL OR entries.id < $2::bigint) "
	            "ORDER BY entries.id DESC LIMIT $3",
	     .nparams = 3,
	     .params = p,
	     .res = &r},
	};
	if (bw_db_read(req, read, 2) != BW_OK)
		return;
	if (acc.nrows == 0) {
		bw_resp_problem(req, 404, "account_not_found", "no account %s", id);
		return;
	}
	bw_ledger_render_list(req, &r, limit, render_entry);
}

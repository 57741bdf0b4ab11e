/* POST /v1/transfers and GET /v1/transfers/{id}. A transfer is one
 * statement, its own transaction, in one round trip:
 * ledger_transfer_request() (schema/007) sets the tenant, claims the
 * Idempotency-Key, locks both accounts by primary key in id order, checks
 * before any write, writes the transfer and two entries, and stores the
 * outcome. Serialization failures and deadlocks run the whole transaction
 * again with jittered backoff, then 503 — never 500. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/db.h"
#include "api/idempotency.h"
#include "api/ledger.h"
#include "api/reports.h"
#include "api/transfer_sql.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/body.h"
#include "http/response.h"
#include "http/router.h"

/* The columns a transfer query selects, and their indices. TRANSFER_SQL
 * returns the same seven from its column TRANSFER_ID on. */
#define BW_TRANSFER_COLUMNS                                                                        \
	"id::text, from_account::text, to_account::text, amount::text, currency, memo, "           \
	"bw_rfc3339(created_at)"
enum transfer_col {
	COL_ID,
	COL_FROM,
	COL_TO,
	COL_AMOUNT,
	COL_CURRENCY,
	COL_MEMO,
	COL_CREATED_AT,
	COL_COUNT,
};
_Static_assert(TRANSFER_BODY - TRANSFER_ID == COL_COUNT,
               "TRANSFER_SQL holds the transfer's columns from TRANSFER_ID to TRANSFER_BODY");

/* ledger_transfer's refusals, as the API answers them. */
static const struct {
	const char *outcome;
	int status;
	const char *detail;
} refusals[] = {
    {"same_account", 422, "from_account and to_account are the same account"},
    {"account_not_found", 404, "an account of this transfer does not exist"},
    {"currency_mismatch", 422, "the accounts and the transfer must have the same currency"},
    {"insufficient_funds", 422, "the balance of from_account does not cover the amount"},
    {"balance_out_of_range", 422, "the transfer would take a balance out of range"},
};

struct transfer_input {
	const char *from, *to, *amount, *currency, *memo;
};

static const char *
lower(struct bw_request *req, const char *s)
{
	char *out = bw_arena_strdup(req->arena, s);
	for (char *p = out; p != NULL && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

static bool
read_input(struct bw_request *req, struct transfer_input *in)
{
	static const char *const allowed[] = {"from_account", "to_account", "amount",
	                                      "currency",     "memo",       NULL};
	struct bw_body *body = bw_body_parse(req, allowed);

	if (body == NULL)
		return false;
	struct bw_body_value from = bw_body_get(body, "from_account");
	struct bw_body_value to = bw_body_get(body, "to_account");
	struct bw_body_value amount = bw_body_get(body, "amount");
	struct bw_body_value cur = bw_body_get(body, "currency");
	struct bw_body_value memo = bw_body_get(body, "memo");
	if (from.type != BW_BODY_STRING) {
		bw_invalid_field(req, "from_account", "an account id is required");
		return false;
	}
	if (to.type != BW_BODY_STRING) {
		bw_invalid_field(req, "to_account", "an account id is required");
		return false;
	}
	/* The reader refuses integers past 2^63-1; fractions arrive as reals. */
	if (amount.type != BW_BODY_INTEGER || amount.integer < 1) {
		bw_invalid_field(req, "amount",
		                 "an integer number of minor units from 1 to 2^63-1");
		return false;
	}
	if (cur.type != BW_BODY_STRING || !bw_is_currency(cur.str)) {
		bw_invalid_field(req, "currency",
		                 "an ISO 4217 code of three capital letters is required");
		return false;
	}
	if (memo.type != BW_BODY_ABSENT && memo.type != BW_BODY_NULL &&
	    (memo.type != BW_BODY_STRING || bw_utf8_chars(memo.str, memo.len) > 500)) {
		bw_invalid_field(req, "memo", "a string of at most 500 characters, or null");
		return false;
	}
	/* Ids are echoed as the API writes them: lower case. */
	in->from = lower(req, from.str);
	in->to = lower(req, to.str);
	in->amount = bw_arena_printf(req->arena, "%lld", (long long)amount.integer);
	in->currency = cur.str;
	in->memo = memo.type == BW_BODY_STRING ? memo.str : NULL;
	return true;
}

/* A transfer from the columns of BW_TRANSFER_COLUMNS, the first at col. */
static void
render_transfer_at(struct bw_buf *b, const struct bw_pg_result *r, int row, int col)
{
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, row, col + COL_ID), true);
	bw_json_kv_str(b, "from_account", bw_pg_get(r, row, col + COL_FROM), false);
	bw_json_kv_str(b, "to_account", bw_pg_get(r, row, col + COL_TO), false);
	bw_json_key(b, "amount", false);
	bw_ledger_put_amount(b, bw_pg_get(r, row, col + COL_AMOUNT));
	bw_json_kv_str(b, "currency", bw_pg_get(r, row, col + COL_CURRENCY), false);
	bw_json_kv_str(b, "memo", bw_pg_get(r, row, col + COL_MEMO), false);
	bw_json_kv_str(b, "created_at", bw_pg_get(r, row, col + COL_CREATED_AT), false);
	bw_buf_puts(b, "}");
}

static void
render_transfer(struct bw_buf *b, const struct bw_pg_result *r, int row)
{
	render_transfer_at(b, r, row, 0);
}

/* A refusal of ledger_transfer, as the API answers it. */
static void
refuse(struct bw_request *req, const char *code)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		if (code != NULL && strcmp(code, refusals[i].outcome) == 0) {
			bw_resp_problem(req, refusals[i].status, refusals[i].outcome, "%s",
			                refusals[i].detail);
			return;
		}
	}
	bw_error("ledger_transfer: unknown outcome %s", code != NULL ? code : "(null)");
	bw_resp_problem(req, 500, "internal_error", "an unexpected database outcome");
}

/* The response of an outcome row (new or stored): 201 with the transfer,
 * or the refusal rendered with the request_id of the first response, so a
 * replay is the same bytes. */
static void
render_outcome(struct bw_request *req, const struct bw_pg_result *r)
{
	const char *status = bw_pg_get(r, 0, TRANSFER_STATUS);
	const char *code = bw_pg_get(r, 0, TRANSFER_CODE);
	const char *body = bw_pg_get(r, 0, TRANSFER_BODY);

	if (body != NULL) {
		bw_buf_puts(&req->body_out, body);
		req->status = status != NULL ? atoi(status) : 500;
		req->out_type =
		    req->status >= 400 ? "application/problem+json" : "application/json";
		return;
	}
	if (status != NULL && strcmp(status, "201") == 0) {
		render_transfer_at(&req->body_out, r, 0, TRANSFER_ID);
		bw_resp_json(req, 201);
		return;
	}
	const char *rid = req->request_id;
	const char *stored_rid = bw_pg_get(r, 0, TRANSFER_REQUEST_ID);
	if (stored_rid != NULL)
		req->request_id = stored_rid;
	refuse(req, code);
	req->request_id = rid;
}

void
bw_api_transfer_create(struct bw_request *req)
{
	struct transfer_input in;
	struct bw_idem idem;
	struct bw_pg_result r;

	if (!bw_idem_read(req, &idem, true) || !read_input(req, &in))
		return;
	/* An id that cannot exist is passed as NULL: simply not found. */
	bool ids_ok = bw_is_uuid(in.from) && bw_is_uuid(in.to);
	const char *params[TRANSFER_NPARAMS] = {
	    req->who.tenant_id,
	    req->who.key_id,
	    idem.key,
	    req->route->name,
	    idem.fingerprint,
	    req->request_id,
	    ids_ok ? in.from : NULL,
	    ids_ok ? in.to : NULL,
	    in.amount,
	    in.currency,
	    in.memo,
	};
	for (int attempt = 1;; attempt++) {
		bw_buf_reset(&req->body_out);
		req->status = 0;
		enum bw_rc rc = bw_db_query_prepared(req, "transfer", TRANSFER_SQL,
		                                     TRANSFER_NPARAMS, params, &r, NULL);
		if (rc == BW_OK) {
			const char *state = bw_pg_get(&r, 0, TRANSFER_STATE);
			if (state != NULL && strcmp(state, "new") == 0) {
				render_outcome(req, &r);
				if (req->status == 201)
					bw_report_invalidate(req);
				bw_idem_cleanup(req);
			} else if (state != NULL && strcmp(state, "stored") == 0) {
				render_outcome(req, &r);
				bw_resp_header(req, "Idempotent-Replayed", "true");
			} else if (state != NULL && strcmp(state, "reused") == 0) {
				bw_resp_problem(
				    req, 422, "idempotency_key_reused",
				    "this Idempotency-Key was used with a different request");
			} else {
				bw_resp_problem(
				    req, 409, "idempotency_key_in_flight",
				    "a request with this Idempotency-Key is still being "
				    "processed");
			}
			return;
		}
		if (rc == BW_ERR || !bw_db_backoff(req, attempt))
			return;
	}
}

void
bw_api_transfer_get(struct bw_request *req)
{
	bw_ledger_get_one(
	    req, "SELECT " BW_TRANSFER_COLUMNS " FROM transfers WHERE tenant_id = $1 AND id = $2",
	    "transfer_not_found", "transfer", render_transfer);
}

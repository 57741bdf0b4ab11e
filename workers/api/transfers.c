/* POST /v1/transfers and GET /v1/transfers/{id}. A transfer is one
 * transaction of two round trips: BEGIN and ledger_transfer_once()
 * (schema/003: the Idempotency-Key claim, then ledger_transfer() of
 * schema/002, which locks both accounts in id order, checks before any
 * write and writes two entries), then the stored outcome and COMMIT. Serialization failures and
 * deadlocks run the whole transaction again with jittered backoff, then 503 — never 500. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/db.h"
#include "api/idempotency.h"
#include "api/ledger.h"
#include "core/arena.h"
#include "http/body.h"
#include "http/response.h"

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
	/* libbson refuses integers past 2^63-1; fractions arrive as doubles. */
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
	    (memo.type != BW_BODY_STRING || strlen(memo.str) > 2000)) {
		bw_invalid_field(req, "memo", "a string of at most 500 characters, or null");
		return false;
	}
	if (memo.type == BW_BODY_STRING) {
		size_t chars = 0;
		for (const char *s = memo.str; *s; s++)
			chars += ((unsigned char)*s & 0xC0) != 0x80;
		if (chars > 500) {
			bw_invalid_field(req, "memo",
			                 "a string of at most 500 characters, or null");
			return false;
		}
	}
	/* Ids are echoed as the API writes them: lower case. */
	in->from = lower(req, from.str);
	in->to = lower(req, to.str);
	in->amount = bw_arena_printf(req->arena, "%lld", (long long)amount.integer);
	in->currency = cur.str;
	in->memo = memo.type == BW_BODY_STRING ? memo.str : NULL;
	return true;
}

/* Sets the final response of one attempt from ledger_transfer's row. */
static void
answer(struct bw_request *req, const struct transfer_input *in, const struct bw_pg_result *r,
       int col)
{
	const char *outcome = bw_pg_get(r, 0, col);

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		if (outcome != NULL && strcmp(outcome, refusals[i].outcome) == 0) {
			bw_resp_problem(req, refusals[i].status, refusals[i].outcome, "%s",
			                refusals[i].detail);
			return;
		}
	}
	struct bw_buf *b = &req->body_out;
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "id", bw_pg_get(r, 0, col + 1), true);
	bw_json_kv_str(b, "from_account", in->from, false);
	bw_json_kv_str(b, "to_account", in->to, false);
	bw_json_key(b, "amount", false);
	bw_buf_puts(b, in->amount);
	bw_json_kv_str(b, "currency", in->currency, false);
	bw_json_kv_str(b, "memo", in->memo, false);
	bw_json_kv_str(b, "created_at", bw_pg_get(r, 0, col + 2), false);
	bw_buf_puts(b, "}");
	bw_resp_json(req, 201);
}

/* ledger_transfer_once (schema/003) in the same string as BEGIN and the
 * tenant setting: one round trip claims the key and does the transfer. */
static const char *
transfer_sql(struct bw_request *req, const struct transfer_input *in, const struct bw_idem *idem)
{
	struct bw_arena *a = req->arena;
	/* An id that cannot exist is passed as NULL: simply not found. */
	bool ids_ok = bw_is_uuid(in->from) && bw_is_uuid(in->to);

	return bw_arena_printf(
	    a,
	    "BEGIN; SELECT set_config('bulwark.tenant_id', %s, true); "
	    "SELECT state, route, fingerprint, status::text, body, outcome, transfer_id::text, "
	    "created_at FROM ledger_transfer_once(%s, %s, %s::uuid, %s::uuid, %s, %s, %s)",
	    bw_pg_literal(a, req->who.tenant_id), bw_pg_literal(a, req->who.key_id),
	    bw_pg_literal(a, idem->key), bw_pg_literal(a, ids_ok ? in->from : NULL),
	    bw_pg_literal(a, ids_ok ? in->to : NULL), in->amount, bw_pg_literal(a, in->currency),
	    bw_pg_literal(a, in->memo));
}

void
bw_api_transfer_create(struct bw_request *req)
{
	struct transfer_input in;
	struct bw_idem idem;
	struct bw_pg_result r, done;
	struct bw_pg_error e;

	if (!bw_idem_read(req, &idem, true) || !read_input(req, &in))
		return;
	const char *claim = transfer_sql(req, &in, &idem);
	for (int attempt = 1;; attempt++) {
		bw_buf_reset(&req->body_out);
		req->status = 0;
		enum bw_db_rc rc = bw_db_query(req, claim, 0, NULL, &r, NULL);
		if (rc == BW_DB_OK) {
			const char *state = bw_pg_get(&r, 0, 0);
			if (state == NULL || strcmp(state, "new") != 0) {
				bw_db_rollback(req);
				if (state != NULL && strcmp(state, "stored") == 0)
					bw_idem_answer_stored(
					    req, &idem, bw_pg_get(&r, 0, 1), bw_pg_get(&r, 0, 2),
					    bw_pg_get(&r, 0, 3), bw_pg_get(&r, 0, 4));
				else
					bw_resp_problem(
					    req, 409, "idempotency_key_in_flight",
					    "a request with this Idempotency-Key is still being "
					    "processed");
				return;
			}
			/* ledger_transfer's row sits in columns 5..7 of this one. */
			struct bw_pg_result t = r;
			answer(req, &in, &t, 5);
			const char *finish = bw_arena_printf(req->arena, "%s COMMIT",
			                                     bw_idem_insert_sql(req, &idem));
			rc = bw_db_query(req, finish, 0, NULL, &done, &e);
			if (rc == BW_DB_FAILED) {
				/* Stored by a twin that committed after our claim: run again,
				 * replay it. */
				if (e.kind == BW_PG_ERR_SQL && strcmp(e.sqlstate, "23505") == 0)
					rc = BW_DB_RETRY;
				else
					bw_db_answer(req, &e);
			}
		}
		if (rc == BW_DB_OK) {
			if (req->status == 201)
				bw_report_invalidate(req);
			bw_idem_cleanup(req);
			return;
		}
		if (rc == BW_DB_FAILED || !bw_db_backoff(req, attempt))
			return;
	}
}

void
bw_api_transfer_get(struct bw_request *req)
{
	const char *id = bw_request_path_param(req, "id");
	struct bw_pg_result r;
	enum bw_db_rc rc;

	if (!bw_is_uuid(id)) {
		bw_resp_problem(req, 404, "transfer_not_found", "no transfer %s", id);
		return;
	}
	const char *p[] = {req->who.tenant_id, id};
	if ((rc = bw_db_begin(req, true)) != BW_DB_OK ||
	    (rc = bw_db_query(req,
	                      "SELECT " BW_TRANSFER_COLUMNS " FROM transfers "
	                      "WHERE tenant_id = $1 AND id = $2",
	                      2, p, &r, NULL)) != BW_DB_OK ||
	    (rc = bw_db_commit(req)) != BW_DB_OK) {
		bw_db_settle(req, rc);
		return;
	}
	if (r.nrows == 0) {
		bw_resp_problem(req, 404, "transfer_not_found", "no transfer %s", id);
		return;
	}
	bw_render_transfer(&req->body_out, &r, 0);
	bw_resp_json(req, 200);
}

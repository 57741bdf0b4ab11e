/* A request's PostgreSQL transaction, and its errors as responses. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/db.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/phase.h"
#include "http/response.h"

#define MAX_ATTEMPTS 4

static bool
retryable(const struct bw_err *e)
{
	return e->rc == BW_INVALID &&
	       (strcmp(e->code, "40001") == 0 || strcmp(e->code, "40P01") == 0);
}

void
bw_db_answer(struct bw_request *req, const struct bw_err *e)
{
	if (e->rc == BW_INVALID && !retryable(e) && strcmp(e->code, "57014") != 0 &&
	    strcmp(e->code, "55P03") != 0 && strncmp(e->code, "08", 2) != 0 &&
	    strncmp(e->code, "53", 2) != 0 && strncmp(e->code, "57P", 3) != 0) {
		/* An SQL error the code did not expect is a bug: say so loudly. */
		bw_error("postgres: %s: %s", e->code, e->message);
		bw_resp_problem(req, 500, "internal_error",
		                "an unexpected database error occurred");
		return;
	}
	/* Down, overloaded, timed out or contended: the client may retry. */
	bw_resp_unavailable(req, e->retry_after_ms > 0 ? e->retry_after_ms : 1000, NULL,
	                    "the database is unavailable or busy; retry shortly");
}

static void
reset_after_failure(const struct bw_err *e)
{
	if (e->rc == BW_INVALID && bw_pg_in_transaction()) {
		struct bw_pg_result r;
		struct bw_err e2;
		if (bw_pg_query(NULL, "ROLLBACK", 0, NULL, 0, &r, &e2) == BW_OK)
			return;
	}
	if (e->rc != BW_REFUSED)
		bw_pg_reset();
}

enum bw_rc
bw_db_query_prepared(struct bw_request *req, const char *name, const char *sql, int nparams,
                     const char *const *params, struct bw_pg_result *res, struct bw_err *err)
{
	struct bw_err local;
	struct bw_err *e = err != NULL ? err : &local;

	bw_phase_set("postgres");
	if (bw_pg_query_prepared(req->arena, name, sql, nparams, params, 0, res, e) == BW_OK)
		return BW_OK;
	reset_after_failure(e);
	if (retryable(e))
		return BW_RETRY;
	if (err == NULL)
		bw_db_answer(req, e);
	return BW_ERR;
}

enum bw_rc
bw_db_query(struct bw_request *req, const char *sql, int nparams, const char *const *params,
            struct bw_pg_result *res, struct bw_err *err)
{
	return bw_db_query_prepared(req, NULL, sql, nparams, params, res, err);
}

enum bw_rc
bw_db_begin(struct bw_request *req, bool read_only)
{
	const char *t = req->who.tenant_id;
	struct bw_pg_result r;

	/* The id comes from our own key record; checked anyway, since it is
	 * spliced into the statement to save a round trip. */
	if (t == NULL || strlen(t) != 36 || strspn(t, "0123456789abcdef-") != 36) {
		bw_resp_problem(req, 500, "internal_error", "no tenant for this request");
		return BW_ERR;
	}
	const char *sql =
	    bw_arena_printf(req->arena, "%s; SELECT set_config('bulwark.tenant_id', '%s', true)",
	                    read_only ? "BEGIN READ ONLY" : "BEGIN", t);
	return bw_db_query(req, sql, 0, NULL, &r, NULL);
}

enum bw_rc
bw_db_commit(struct bw_request *req)
{
	struct bw_pg_result r;
	return bw_db_query(req, "COMMIT", 0, NULL, &r, NULL);
}

void
bw_db_rollback(struct bw_request *req)
{
	struct bw_pg_result r;
	struct bw_err e;

	if (bw_pg_in_transaction() && bw_pg_query(NULL, "ROLLBACK", 0, NULL, 0, &r, &e) < 0)
		bw_pg_reset();
}

void
bw_db_settle(struct bw_request *req, enum bw_rc rc)
{
	if (rc == BW_RETRY) {
		bw_resp_unavailable(req, 1000, NULL,
		                    "the database aborted this transaction; retry shortly");
	}
}

enum bw_rc
bw_db_read(struct bw_request *req, const struct bw_db_stmt *stmts, int n)
{
	enum bw_rc rc = bw_db_begin(req, true);
	int i = 0;

	for (; rc == BW_OK && i < n; i++) {
		rc = bw_db_query(req, stmts[i].sql, stmts[i].nparams, stmts[i].params, stmts[i].res,
		                 NULL);
		if (rc == BW_OK && stmts[i].needs_row && stmts[i].res->nrows == 0)
			break;
	}
	if (rc == BW_OK && i < n) {
		for (int j = i + 1; j < n; j++)
			memset(stmts[j].res, 0, sizeof(*stmts[j].res));
		bw_db_rollback(req);
		return BW_OK;
	}
	if (rc == BW_OK)
		rc = bw_db_commit(req);
	if (rc != BW_OK) {
		bw_db_settle(req, rc);
		return BW_ERR;
	}
	return BW_OK;
}

bool
bw_db_backoff(struct bw_request *req, int attempt)
{
	if (attempt >= MAX_ATTEMPTS) {
		bw_resp_unavailable(req, 1000, NULL,
		                    "the database kept aborting this transaction; retry shortly");
		return false;
	}
	/* 5, 10, 20 ms, each with up to as much again at random. */
	long ms = 5L << (attempt - 1);
	ms += random() % (ms + 1);
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
	nanosleep(&ts, NULL);
	return true;
}

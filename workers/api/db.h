/* PostgreSQL work of one request: a transaction as the caller's tenant
 * (set_config('bulwark.tenant_id', …, true), so row-level security
 * applies), with errors mapped to responses in one place. */
#ifndef BW_DB_H
#define BW_DB_H

#include <stdbool.h>

#include "core/rc.h"
#include "http/request.h"
#include "store/pg.h"

/* The functions below return BW_OK; BW_ERR when the response (503, 500) is
 * set and the transaction is gone; BW_RETRY after a serialization failure
 * or deadlock: run the whole transaction again. */

/* BEGIN and the tenant setting in one round trip. */
enum bw_rc bw_db_begin(struct bw_request *req, bool read_only);
/* A statement inside the transaction. On failure the transaction is rolled
 * back; err (may be NULL) gets the error for callers that map a SQLSTATE. */
enum bw_rc bw_db_query(struct bw_request *req, const char *sql, int nparams,
                       const char *const *params, struct bw_pg_result *res, struct bw_err *err);
/* The same with the statement prepared once per connection as name (see
 * bw_pg_query_prepared). */
enum bw_rc bw_db_query_prepared(struct bw_request *req, const char *name, const char *sql,
                                int nparams, const char *const *params, struct bw_pg_result *res,
                                struct bw_err *err);
enum bw_rc bw_db_commit(struct bw_request *req);
void bw_db_rollback(struct bw_request *req);
/* Sets the response for an error bw_db_query returned to the caller. */
void bw_db_answer(struct bw_request *req, const struct bw_err *e);
/* For code that does not retry: a BW_RETRY result becomes a 503 too. */
void bw_db_settle(struct bw_request *req, enum bw_rc rc);
/* One statement of bw_db_read; res gets its rows. */
struct bw_db_stmt {
	const char *sql;
	int nparams;
	const char *const *params;
	struct bw_pg_result *res;
	/* No row: the statements after this one depend on its row (an
	 * account that must exist), so they are not run (their res hold no
	 * rows) and the transaction ends there. */
	bool needs_row;
};
/* A read-only route's transaction as the caller's tenant: BEGIN READ ONLY,
 * the n statements in order, COMMIT. BW_OK, or BW_ERR when the response
 * (503, 500) is set; a serialization failure is not retried (503). */
enum bw_rc bw_db_read(struct bw_request *req, const struct bw_db_stmt *stmts, int n);
/* Sleeps a jittered backoff before attempt n (1, 2, …) of a retried
 * transaction; false when the attempts are used up (the 503 is set). */
bool bw_db_backoff(struct bw_request *req, int attempt);

#endif

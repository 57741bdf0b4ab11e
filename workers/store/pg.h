/* PostgreSQL adapter (pg.c is the only file that includes libpq-fe.h).
 * One connection per worker, opened on first use after fork, dropped on any
 * connection-level failure and reopened by the next call the breaker lets
 * through. Everything here is single-threaded, like the worker. */
#ifndef BW_PG_H
#define BW_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rc.h"
#include "store/breaker.h"

struct bw_config;

/* The postgres dependency (store.h). Its ping is SELECT 1; the whole
 * call, connect included, is bounded by timeout_ms. */
extern const struct bw_dep_ops bw_pg_ops;

/* bw_pg_ops' init and close, for the commands other than serve. */
void bw_pg_init(const struct bw_config *cfg, int64_t max_cooldown_ms);
void bw_pg_close(void);

/* Queries. A result's rows are text; the PGresult belongs to the arena. */
struct bw_arena;

struct bw_pg_result {
	int nrows, ncols;
	void *res;           /* PGresult */
	char cmd_tuples[24]; /* rows affected by INSERT/UPDATE/DELETE */
};

/* Runs sql with text parameters ($1 …). With nparams == 0 the simple
 * protocol is used, so sql may hold several statements (migrations).
 * timeout_ms bounds the whole call (connect included); 0 = statement
 * timeout + connect timeout. Returns BW_OK, or with err filled (core/err.h):
 * BW_INVALID when the server refused the statement (err->code is its
 * SQLSTATE, "XX000" when it sent none), BW_ERR when the connection failed
 * or the call timed out, BW_REFUSED when the open breaker refused the call
 * (nothing was sent); err->retry_after_ms is set for the last two. A stale
 * kept connection outside a transaction is replaced and the call retried
 * once. */
enum bw_rc bw_pg_query(struct bw_arena *a, const char *sql, int nparams, const char *const *params,
                       int timeout_ms, struct bw_pg_result *out, struct bw_err *err);
/* The same for one statement with parameters, prepared under name (a
 * static string) the first time this connection runs it: the server parses
 * and plans it once per connection instead of on every call. A NULL name
 * is bw_pg_query. */
enum bw_rc bw_pg_query_prepared(struct bw_arena *a, const char *name, const char *sql, int nparams,
                                const char *const *params, int timeout_ms, struct bw_pg_result *out,
                                struct bw_err *err);
/* Value of row/col, or NULL for SQL NULL or out of range. */
const char *bw_pg_get(const struct bw_pg_result *r, int row, int col);
/* True while the connection is inside a transaction block. */
bool bw_pg_in_transaction(void);
/* Drops the connection (after a failed transaction, or to switch users). */
void bw_pg_reset(void);
/* Commands other than serve (migrate, tenant, key) connect with this
 * conninfo instead of cfg->postgres. Call before the first query. */
void bw_pg_use_conninfo(const char *conninfo);
/* With on, a kept connection that fails is reported (BW_ERR), never
 * replaced within the call: the caller holds session state (migrate's
 * advisory lock) that a new connection would not have. */
void bw_pg_keep_session(bool on);

#endif

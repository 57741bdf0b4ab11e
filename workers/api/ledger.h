/* What the ledger routes (accounts.c, transfers.c) share: the ids and
 * currencies they take, amounts as JSON numbers, list pages, the GET of
 * one row, and the 400 that names a body member. */
#ifndef BW_LEDGER_H
#define BW_LEDGER_H

#include <stdbool.h>

#include "core/buf.h"
#include "http/request.h"
#include "store/pg.h"

/* A canonical UUID: 8-4-4-4-12 hex digits, either case. */
bool bw_is_uuid(const char *s);
/* An ISO 4217 code as the API takes it: three capital letters. */
bool bw_is_currency(const char *s);
/* A column PostgreSQL gave as text (numeric, bigint) as a JSON number;
 * SQL NULL as null. */
void bw_ledger_put_amount(struct bw_buf *b, const char *v);
/* ?limit= and ?after= of a list page (api/list.h); false when the 400 is
 * set. A ledger cursor wraps "c:" and the last row's key: *after is that
 * key (NULL on the first page), for the route to check as its kind. */
bool bw_ledger_list_params(struct bw_request *req, int *limit, const char **after);
/* The 400 for an ?after= that is not a cursor of the list asked for. */
void bw_ledger_not_a_cursor(struct bw_request *req);
/* Writes {"data":[…],"next":…}: rows 0..min(n,limit)-1 through render, and
 * a cursor wrapping column 0 of the last one when there are more. */
void bw_ledger_render_list(struct bw_request *req, const struct bw_pg_result *r, int limit,
                           void (*render)(struct bw_buf *, const struct bw_pg_result *, int));
/* GET of one row by the path's {id} as the caller's tenant: 404 `code`
 * when absent (or not a uuid), else render's JSON. */
void bw_ledger_get_one(struct bw_request *req, const char *sql, const char *code, const char *what,
                       void (*render)(struct bw_buf *, const struct bw_pg_result *, int));
/* A 400 naming the offending member with a JSON pointer. */
void bw_invalid_field(struct bw_request *req, const char *field, const char *why);

#endif

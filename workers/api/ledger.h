/* Shared by the ledger handlers (accounts.c, transfers.c, reports.c). */
#ifndef BW_LEDGER_H
#define BW_LEDGER_H

#include <stdbool.h>

#include "http/request.h"
#include "store/pg.h"

#define BW_LIST_DEFAULT 100
#define BW_LIST_MAX     1000

/* The columns every account query selects, in render_account's order. */
#define BW_ACCOUNT_COLUMNS                                                                         \
	"id::text, name, currency, allow_negative, balance::text, bw_rfc3339(created_at)"
#define BW_TRANSFER_COLUMNS                                                                        \
	"id::text, from_account::text, to_account::text, amount::text, currency, memo, "           \
	"bw_rfc3339(created_at)"

void bw_render_account(struct bw_buf *b, const struct bw_pg_result *r, int row);
void bw_render_transfer(struct bw_buf *b, const struct bw_pg_result *r, int row);
/* The same from the 7 transfer columns starting at column col. */
void bw_render_transfer_at(struct bw_buf *b, const struct bw_pg_result *r, int row, int col);
bool bw_is_uuid(const char *s);
bool bw_is_currency(const char *s);
/* ?limit= and ?after= of a list route; false when the 400 is set. The
 * cursor is decoded to the text it wraps (NULL on the first page). */
bool bw_list_params(struct bw_request *req, int *limit, const char **after);
/* Writes {"data":[…],"next":…}: rows 0..min(n,limit)-1 through render, and
 * a cursor wrapping column 0 of the last one when there are more. */
void bw_render_list(struct bw_request *req, const struct bw_pg_result *r, int limit,
                    void (*render)(struct bw_buf *, const struct bw_pg_result *, int));
/* GET of one row by the path's {id} as the caller's tenant: 404 `code`
 * when absent (or not a uuid), else render's JSON. */
void bw_ledger_get_one(struct bw_request *req, const char *sql, const char *code, const char *what,
                       void (*render)(struct bw_buf *, const struct bw_pg_result *, int));
/* A 400 naming the offending member with a JSON pointer. */
void bw_invalid_field(struct bw_request *req, const char *field, const char *why);

/* reports.c: after a COMMIT that changed what the summary shows. */
void bw_report_invalidate(struct bw_request *req);

#endif

/* The ledger routes' shared helpers (ledger.h): id and currency checks,
 * amounts, list pages, the GET of one row, the 400 naming a member. */
#include <stdlib.h>
#include <string.h>

#include "api/db.h"
#include "api/ledger.h"
#include "api/list.h"
#include "core/arena.h"
#include "core/buf.h"
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
bw_ledger_put_amount(struct bw_buf *b, const char *v)
{
	bw_buf_puts(b, v != NULL ? v : "null");
}

void
bw_invalid_field(struct bw_request *req, const char *field, const char *why)
{
	bw_resp_problem_member(req, 400, "invalid_field", field, "%s: %s", field, why);
}

/* "c:" marks the ledger's cursors; the rest is the last row's key. */
#define CURSOR_TAG     "c:"
#define CURSOR_TAG_LEN 2

void
bw_ledger_not_a_cursor(struct bw_request *req)
{
	bw_resp_invalid_parameter(req, "after", "is not a cursor of this list");
}

bool
bw_ledger_list_params(struct bw_request *req, int *limit, const char **after)
{
	const char *a = bw_request_query(req, "after");

	*after = NULL;
	if (!bw_list_limit(bw_request_query(req, "limit"), limit)) {
		bw_resp_invalid_parameter(req, "limit", "must be 1 to %d", BW_LIST_MAX);
		return false;
	}
	if (a == NULL || a[0] == '\0')
		return true; /* the first page */
	unsigned char *raw = bw_arena_alloc(req->arena, BW_CURSOR_MAX + 1);
	long n = raw != NULL ? bw_cursor_read(a, raw, BW_CURSOR_MAX) : -1;
	if (n <= CURSOR_TAG_LEN || memcmp(raw, CURSOR_TAG, CURSOR_TAG_LEN) != 0) {
		bw_ledger_not_a_cursor(req);
		return false;
	}
	*after = (const char *)raw + CURSOR_TAG_LEN;
	return true;
}

void
bw_ledger_render_list(struct bw_request *req, const struct bw_pg_result *r, int limit,
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
		const char *last =
		    bw_arena_printf(req->arena, CURSOR_TAG "%s", bw_pg_get(r, n - 1, 0));
		bw_cursor_put(b, last, strlen(last));
	} else {
		bw_buf_puts(b, "null");
	}
	bw_buf_puts(b, "}");
	bw_resp_json(req, 200);
}

void
bw_ledger_get_one(struct bw_request *req, const char *sql, const char *code, const char *what,
                  void (*render)(struct bw_buf *, const struct bw_pg_result *, int))
{
	const char *id = bw_request_path_param(req, "id");
	struct bw_pg_result r;

	if (!bw_is_uuid(id)) {
		bw_resp_problem(req, 404, code, "no %s %s", what, id);
		return;
	}
	const char *p[] = {req->who.tenant_id, id};
	const struct bw_db_stmt one = {.sql = sql, .nparams = 2, .params = p, .res = &r};
	if (bw_db_read(req, &one, 1) != BW_OK)
		return;
	if (r.nrows == 0) {
		bw_resp_problem(req, 404, code, "no %s %s", what, id);
		return;
	}
	render(&req->body_out, &r, 0);
	bw_resp_json(req, 200);
}

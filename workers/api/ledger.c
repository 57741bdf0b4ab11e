/* The ledger routes' shared helpers (ledger.h): id and currency checks,
 * amounts, list pages, the GET of one row, the 400 naming a member. */
#include <stdlib.h>
#include <string.h>

#include "api/db.h"
#include "api/ledger.h"
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

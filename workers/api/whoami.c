/* GET /v1/whoami: the calling key as auth.c accepted it. */
#include <string.h>

#include "api/api.h"
#include "core/buf.h"
#include "http/response.h"

/* "10.000" → "10", "0.500" → "0.5": numeric(12,3) as a JSON number. */
static void
put_rate(struct bw_buf *b, const char *rate)
{
	size_t n = strlen(rate);

	if (strchr(rate, '.') != NULL) {
		while (n > 0 && rate[n - 1] == '0')
			n--;
		if (n > 0 && rate[n - 1] == '.')
			n--;
	}
	bw_buf_append(b, rate, n);
}

void
bw_api_whoami(struct bw_request *req)
{
	const struct bw_identity *w = &req->who;
	struct bw_buf *b = &req->body_out;

	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "tenant_id", w->tenant_id, true);
	bw_json_kv_str(b, "key_id", w->key_id, false);
	bw_json_key(b, "scopes", false);
	bw_buf_puts(b, "[");
	const char *s = w->scopes;
	for (bool first = true; s != NULL && *s; first = false) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if (!first)
			bw_buf_putc(b, ',');
		bw_json_strn(b, s, len);
		s = comma != NULL ? comma + 1 : NULL;
	}
	bw_buf_puts(b, "]");
	bw_json_key(b, "policies", false);
	bw_buf_puts(b, "[");
	for (int i = 0; i < w->npolicies; i++) {
		const struct bw_policy_state *p = &w->policies[i];
		bw_buf_puts(b, i ? ",{" : "{");
		bw_json_kv_str(b, "name", p->name, true);
		bw_json_key(b, "rate", false);
		put_rate(b, p->rate != NULL ? p->rate : "0");
		bw_json_kv_int(b, "burst", p->burst, false);
		bw_buf_puts(b, "}");
	}
	bw_buf_puts(b, "]}");
	bw_resp_json(req, 200);
}

/* /healthz: this worker answers. /readyz: every dependency answers and the
 * pool is not crash-looping. */
#include "api/api.h"
#include "core/buf.h"
#include "core/phase.h"
#include "http/response.h"
#include "store/store.h"

void
bw_api_healthz(struct bw_request *req)
{
	bw_buf_puts(&req->body_out, "{\"status\":\"ok\"}");
	bw_resp_json(req, 200);
}

void
bw_api_readyz(struct bw_request *req)
{
	struct bw_buf *b = &req->body_out;
	bool ready = true;

	bw_buf_puts(b, "{\"checks\":{");
	for (int d = 0; d < BW_DEP_COUNT; d++) {
		struct bw_dep_status st;
		bw_store_check((enum bw_dep)d, &st);
		ready = ready && st.up;
		bw_json_key(b, bw_dep_name((enum bw_dep)d), d == 0);
		bw_buf_puts(b, "{");
		bw_json_kv_str(b, "status", st.up ? "up" : "down", true);
		bw_json_kv_str(b, "breaker", bw_breaker_state_name(st.breaker), false);
		bw_json_kv_int(b, "latency_us", st.latency_us, false);
		if (!st.up)
			bw_json_kv_str(b, "error", st.error, false);
		bw_buf_puts(b, "}");
	}
	bool tripped = bw_phase_crash_looping();
	bw_buf_puts(b, "},");
	bw_json_key(b, "pool", true);
	bw_buf_puts(b, "{");
	bw_json_kv_str(b, "status", tripped ? "crash_looping" : "ok", true);
	bw_buf_puts(b, "}");
	ready = ready && !tripped;
	bw_json_kv_str(b, "status", ready ? "ready" : "unavailable", false);
	bw_buf_puts(b, "}");
	if (!ready)
		bw_resp_retry_after(req, 1000);
	bw_resp_json(req, ready ? 200 : 503);
}

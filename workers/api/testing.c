/* Routes that exist only in test builds (--enable-test-routes): a slow
 * request for the deadline and drain tests, a body echo for the limits, and
 * a crash for the respawn and crash-breaker tests. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#ifdef BW_TEST_ROUTES
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "api/api.h"
#include "core/phase.h"
#include "http/response.h"

void
bw_api_test_sleep(struct bw_request *req)
{
	const char *ms = bw_request_query(req, "ms");
	char *end;
	long v = ms != NULL ? strtol(ms, &end, 10) : -1;

	if (ms == NULL || *ms == '\0' || *end != '\0' || v < 0 || v > 600000) {
		bw_resp_invalid_parameter(req, "ms", "must be an integer 0..600000");
		return;
	}
	bw_phase_set("sleep");
	struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	bw_buf_printf(&req->body_out, "{\"slept_ms\":%ld}", v);
	bw_resp_json(req, 200);
}

void
bw_api_test_echo(struct bw_request *req)
{
	if (req->body_len == 0) {
		bw_resp_problem(req, 400, "invalid_body", "a JSON body is required");
		return;
	}
	bw_buf_printf(&req->body_out, "{\"bytes\":%zu}", req->body_len);
	bw_resp_json(req, 200);
}

void
bw_api_test_crash(struct bw_request *req)
{
	abort();
}
#else
/* ISO C wants something in a translation unit. */
typedef int bw_testing_unused;
#endif

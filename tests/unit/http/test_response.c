/* Responses: problem bodies (also with a JSON pointer), extra headers,
 * Retry-After and the 503 of a dependency that is unavailable. */
#include <stdio.h>
#include <string.h>

#include "../unit.h"
#include "core/arena.h"
#include "http/response.h"

static struct bw_arena *arena;

static int
setup(void **state)
{
	arena = bw_arena_new(4096);
	return arena == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	bw_arena_free(arena);
	return 0;
}

static void
new_request(struct bw_request *req, const char *request_id)
{
	memset(req, 0, sizeof(*req));
	req->arena = arena;
	req->request_id = request_id;
	bw_buf_init(&req->headers, arena);
	bw_buf_init(&req->body_out, arena);
}

static void
test_problem_has_every_field(void **state)
{
	struct bw_request req;

	new_request(&req, "rid-1");
	bw_resp_problem(&req, 413, "payload_too_large", "body of %d bytes", 5000);
	assert_int_equal(req.status, 413);
	assert_string_equal(req.out_type, "application/problem+json");
	assert_string_equal(req.code, "payload_too_large");
	assert_string_equal(bw_buf_cstr(&req.body_out),
	                    "{\"type\":\"https://bulwark.dev/problems/payload-too-large\","
	                    "\"title\":\"Content Too Large\",\"status\":413,"
	                    "\"detail\":\"body of 5000 bytes\",\"code\":\"payload_too_large\","
	                    "\"request_id\":\"rid-1\"}");
}

static void
test_problem_escapes_detail(void **state)
{
	struct bw_request req;

	new_request(&req, "r");
	bw_resp_problem(&req, 404, "not_found", "no route for %s", "/x\"y\n");
	assert_non_null(strstr(bw_buf_cstr(&req.body_out), "no route for /x\\\"y\\n"));
}

static void
test_headers_and_reasons(void **state)
{
	struct bw_request req;

	new_request(&req, "r");
	bw_resp_header(&req, "Allow", "GET, HEAD");
	bw_resp_header(&req, "Retry-After", "1");
	assert_string_equal(bw_buf_cstr(&req.headers), "Allow: GET, HEAD\r\nRetry-After: 1\r\n");
	assert_string_equal(bw_status_reason(405), "Method Not Allowed");
	assert_string_equal(bw_status_reason(503), "Service Unavailable");
	assert_string_equal(bw_status_reason(299), "Unknown");
}

static void
test_retry_after_rounds_up_to_whole_seconds(void **state)
{
	static const struct {
		int64_t ms;
		const char *want;
	} cases[] = {{-5, "1"}, {0, "1"}, {1, "1"}, {1000, "1"}, {1001, "2"}, {2500, "3"}};
	struct bw_request req;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[64];
		new_request(&req, "r");
		bw_resp_retry_after(&req, cases[i].ms);
		snprintf(want, sizeof(want), "Retry-After: %s\r\n", cases[i].want);
		assert_string_equal(bw_buf_cstr(&req.headers), want);
	}
}

static void
test_unavailable_is_503_with_retry_after(void **state)
{
	struct bw_request req;

	new_request(&req, "r");
	bw_resp_unavailable(&req, 1500, "\"retry_safe\":true", "%s is unavailable", "x");
	assert_int_equal(req.status, 503);
	assert_string_equal(req.code, "dependency_unavailable");
	assert_string_equal(bw_buf_cstr(&req.headers), "Retry-After: 2\r\n");
	assert_string_equal(bw_buf_cstr(&req.body_out),
	                    "{\"type\":\"https://bulwark.dev/problems/dependency-unavailable\","
	                    "\"title\":\"Service Unavailable\",\"status\":503,"
	                    "\"detail\":\"x is unavailable\",\"code\":\"dependency_unavailable\","
	                    "\"retry_safe\":true,\"request_id\":\"r\"}");
}

static void
test_problem_at_puts_the_pointer_first(void **state)
{
	struct bw_request req;

	new_request(&req, "r");
	bw_resp_problem_at(&req, 400, "invalid_reading", "/0/data/a~1b", 12,
	                   "\"index\":0,\"offset\":7", "bad %s", "value");
	assert_int_equal(req.status, 400);
	assert_string_equal(bw_buf_cstr(&req.body_out),
	                    "{\"type\":\"https://bulwark.dev/problems/invalid-reading\","
	                    "\"title\":\"Bad Request\",\"status\":400,"
	                    "\"detail\":\"bad value\",\"code\":\"invalid_reading\","
	                    "\"pointer\":\"/0/data/a~1b\",\"index\":0,\"offset\":7,"
	                    "\"request_id\":\"r\"}");
	/* the whole body, no extra members */
	new_request(&req, "r");
	bw_resp_problem_at(&req, 400, "invalid_json", "", 0, NULL, "x");
	assert_non_null(strstr(bw_buf_cstr(&req.body_out),
	                       "\"code\":\"invalid_json\",\"pointer\":\"\",\"request_id\""));
}

static void
test_problem_member_escapes_the_name(void **state)
{
	static const struct {
		const char *name, *want;
	} cases[] = {
	    {"amount", "\"pointer\":\"/amount\","},
	    {"a/b~c", "\"pointer\":\"/a~1b~0c\","},
	    {"q\"uote", "\"pointer\":\"/q\\\"uote\","},
	    {"", "\"pointer\":\"/\","},
	};
	struct bw_request req;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		new_request(&req, "r");
		bw_resp_problem_member(&req, 400, "unknown_field", cases[i].name, "unknown");
		assert_int_equal(req.status, 400);
		assert_string_equal(req.code, "unknown_field");
		if (strstr(bw_buf_cstr(&req.body_out), cases[i].want) == NULL)
			fail_msg("%s: no %s in %s", cases[i].name, cases[i].want,
			         bw_buf_cstr(&req.body_out));
	}
}

static void
test_invalid_parameter_names_it(void **state)
{
	struct bw_request req;

	new_request(&req, "r");
	bw_resp_invalid_parameter(&req, "limit", "must be 1 to %d", 1000);
	assert_int_equal(req.status, 400);
	assert_string_equal(req.code, "invalid_parameter");
	assert_string_equal(bw_buf_cstr(&req.body_out),
	                    "{\"type\":\"https://bulwark.dev/problems/invalid-parameter\","
	                    "\"title\":\"Bad Request\",\"status\":400,"
	                    "\"detail\":\"limit must be 1 to 1000\",\"code\":\"invalid_parameter\","
	                    "\"parameter\":\"limit\",\"request_id\":\"r\"}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_problem_has_every_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_problem_escapes_detail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers_and_reasons, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_after_rounds_up_to_whole_seconds, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unavailable_is_503_with_retry_after, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_problem_at_puts_the_pointer_first, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_problem_member_escapes_the_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_parameter_names_it, setup, teardown),
	};
	return cmocka_run_group_tests_name("response", tests, NULL, NULL);
}

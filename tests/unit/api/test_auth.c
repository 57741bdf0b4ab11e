/* API key authentication's pure parts: the client's network, the deny
 * cache, the RateLimit headers and the 429. auth.c is included to reach
 * its statics (h2o's t/00unit trick), so libbulwark's copy is not linked. */
#include "api/auth.c"

#include "../unit.h"

static struct bw_arena *arena;

static void
new_request(struct bw_request *req)
{
	memset(req, 0, sizeof(*req));
	req->arena = arena;
	req->request_id = "rid";
	bw_buf_init(&req->headers, arena);
	bw_buf_init(&req->body_out, arena);
}

static int
setup(void **state)
{
	arena = bw_arena_new(16384);
	memset(deny_cache, 0, sizeof(deny_cache));
	return arena == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	bw_arena_free(arena);
	return 0;
}

/* A key policy of 10/s (burst 10) and a tenant policy of 100/s (burst 100). */
static void
two_policies(struct bw_request *req, int64_t key_remaining, int64_t key_retry_us)
{
	req->who.npolicies = 2;
	set_policy(&req->who.policies[0], "key", "10", 10, key_remaining, 700000, key_retry_us);
	set_policy(&req->who.policies[1], "tenant", "100.000", 100, 50, 500000, 0);
}

static void
test_client_prefix(void **state)
{
	char out[80];
	bw_client_prefix("203.0.113.7", out, sizeof(out));
	assert_string_equal(out, "203.0.113.7");
	bw_client_prefix("2001:db8:1:2:3:4:5:6", out, sizeof(out));
	assert_string_equal(out, "2001:db8:1:2::/64");
	bw_client_prefix("2001:db8:1:2:ffff::1", out, sizeof(out));
	assert_string_equal(out, "2001:db8:1:2::/64");
	bw_client_prefix("::ffff:10.1.0.1", out, sizeof(out));
	assert_string_equal(out, "10.1.0.1");
	bw_client_prefix(NULL, out, sizeof(out));
	assert_string_equal(out, "unknown");
	bw_client_prefix("", out, sizeof(out));
	assert_string_equal(out, "unknown");
}

static void
test_rate_headers(void **state)
{
	struct bw_request req;

	new_request(&req);
	two_policies(&req, 3, 0);
	set_rate_headers(&req);
	/* The strictest policy (fewest remaining) fills the single-value fields. */
	assert_string_equal(bw_buf_cstr(&req.headers),
	                    "RateLimit-Policy: \"key\";q=10;w=1, \"tenant\";q=100;w=1\r\n"
	                    "RateLimit: \"key\";r=3;t=1, \"tenant\";r=50;t=1\r\n"
	                    "RateLimit-Limit: 10\r\n"
	                    "RateLimit-Remaining: 3\r\n"
	                    "RateLimit-Reset: 1\r\n");
	new_request(&req);
	two_policies(&req, 50, 0);
	req.who.policies[0].reset_us = 2000001;
	set_rate_headers(&req);
	/* A tie on remaining: the later reset is the stricter. */
	assert_non_null(strstr(bw_buf_cstr(&req.headers), "RateLimit-Limit: 10\r\n"));
	assert_non_null(strstr(bw_buf_cstr(&req.headers), "RateLimit-Reset: 3\r\n"));
	new_request(&req);
	set_rate_headers(&req);
	assert_string_equal(bw_buf_cstr(&req.headers), "");
}

static void
test_too_many(void **state)
{
	struct bw_request req;

	new_request(&req);
	too_many(&req, "tenant", 1500);
	assert_int_equal(req.status, 429);
	assert_string_equal(bw_buf_cstr(&req.headers), "Retry-After: 1\r\n");
	assert_string_equal(bw_buf_cstr(&req.body_out),
	                    "{\"type\":\"https://bulwark.dev/problems/rate-limited\","
	                    "\"title\":\"Too Many Requests\",\"status\":429,"
	                    "\"detail\":\"rate limit \\\"tenant\\\" exceeded; retry in 2 ms\","
	                    "\"code\":\"rate_limited\",\"retry_after_ms\":2,\"policy\":\"tenant\","
	                    "\"request_id\":\"rid\"}");
	new_request(&req);
	too_many(&req, "key", 2000001);
	assert_string_equal(bw_buf_cstr(&req.headers), "Retry-After: 3\r\n");
}

static void
test_deny_slot_is_stable(void **state)
{
	assert_ptr_equal(deny_slot("abcdefgh1234"), deny_slot("abcdefgh1234"));
	/* FNV-1a of "" is its offset basis. */
	assert_ptr_equal(deny_slot(""), &deny_cache[2166136261u % DENY_SLOTS]);
	for (int i = 0; i < 100; i++) {
		char id[16];
		snprintf(id, sizeof(id), "key%d", i);
		struct denied *d = deny_slot(id);
		assert_true(d >= deny_cache && d < deny_cache + DENY_SLOTS);
	}
}

static void
test_deny_cache_answers_429_until_retry(void **state)
{
	static const char sha[] =
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	static const char other[] =
	    "0000000000000000000000000000000000000000000000000000000000000000";
	struct bw_request req;

	new_request(&req);
	two_policies(&req, 0, 50000);
	deny_remember(&req, "abcdefgh1234", sha);
	struct denied *d = deny_slot("abcdefgh1234");
	assert_int_equal(d->violated, 0);
	assert_true(d->until_us - d->stored_us == 50000);

	new_request(&req);
	assert_true(deny_cached(&req, "abcdefgh1234", sha));
	assert_int_equal(req.status, 429);
	assert_string_equal(req.code, "rate_limited");
	assert_int_equal(req.who.npolicies, 2);
	assert_string_equal(req.who.policies[1].rate, "100.000"); /* the cache's own copy */
	assert_true(req.who.policies[0].retry_us <= 50000);
	assert_non_null(strstr(bw_buf_cstr(&req.headers), "RateLimit-Remaining: 0\r\n"));
	assert_non_null(strstr(bw_buf_cstr(&req.body_out), "\"policy\":\"key\""));

	/* Another secret or another key id: not ours to answer. */
	new_request(&req);
	assert_false(deny_cached(&req, "abcdefgh1234", other));
	assert_false(deny_cached(&req, "abcdefgh9999", sha));
	assert_int_equal(req.status, 0);

	/* Past its time, the entry says nothing. */
	d->until_us = bw_now_us() - 1;
	assert_false(deny_cached(&req, "abcdefgh1234", sha));
}

static void
test_deny_cache_is_capped(void **state)
{
	static const char sha[] =
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	struct bw_request req;

	/* The tenant policy denied, for 10 s: kept DENY_MAX_US only, so a
	 * revocation shows as 401 soon even for a key over its limit. */
	new_request(&req);
	two_policies(&req, 5, 0);
	req.who.policies[1].retry_us = 10000000;
	deny_remember(&req, "abcdefgh5678", sha);
	struct denied *d = deny_slot("abcdefgh5678");
	assert_int_equal(d->violated, 1);
	assert_true(d->until_us - d->stored_us == DENY_MAX_US);

	/* An id too long for a slot, or a request without both policies: not kept. */
	static const char *const ids[] = {"abcdefghijklmnopqrstuvwxyz0123456", "abcdefgh0000"};
	for (int i = 0; i < 2; i++) {
		struct denied before = *deny_slot(ids[i]);
		new_request(&req);
		two_policies(&req, 0, 50000);
		req.who.npolicies = i == 0 ? 2 : 1;
		deny_remember(&req, ids[i], sha);
		assert_memory_equal(&before, deny_slot(ids[i]), sizeof(before));
	}
}

static void
test_reply_slots_match_the_lua(void **state)
{
	/* bw_auth's ok/limited reply has 13 elements (workers/lua/bulwark.lua). */
	assert_int_equal(R_ALLOWED_LEN, 13);
	assert_int_equal(R_KEY_RETRY_US, 9);
	assert_int_equal(R_TENANT_RETRY_US, 12);
	assert_int_equal(R_FAILED_LEN, 3);
	assert_int_equal(R_IP_LIMITED_LEN, 2);
	assert_int_equal(R_FAIL_LEN, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_prefix),
	    cmocka_unit_test_setup_teardown(test_rate_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deny_slot_is_stable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deny_cache_answers_429_until_retry, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_deny_cache_is_capped, setup, teardown),
	    cmocka_unit_test(test_reply_slots_match_the_lua),
	};
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}

/* The matcher against a table of our own (the real one is tested through
 * the binary): this file defines bw_routes, so libbulwark's routes.c is not
 * linked in. */
#include <string.h>

#include "../unit.h"
#include "core/arena.h"
#include "http/router.h"

static void
handler(struct bw_request *req)
{
}

const struct bw_route bw_routes[] = {
    {"GET", "/healthz", handler, NULL, 0, 0, NULL, "GET /healthz"},
    {"GET", "/v1/accounts", handler, NULL, 0, 0, NULL, "GET /v1/accounts"},
    {"POST", "/v1/accounts", handler, NULL, 0, 0, NULL, "POST /v1/accounts"},
    {"GET", "/v1/accounts/{id}", handler, NULL, 0, 0, NULL, "GET /v1/accounts/{id}"},
    {"GET", "/v1/accounts/{id}/entries", handler, NULL, 0, 0, NULL,
     "GET /v1/accounts/{id}/entries"},
    {"PUT", "/v1/vault/items/{name}", handler, NULL, 0, 0, NULL, "PUT /v1/vault/items/{name}"},
    {"DELETE", "/v1/vault/items/{name}", handler, NULL, 0, 0, NULL,
     "DELETE /v1/vault/items/{name}"},
};
const size_t bw_nroutes = sizeof(bw_routes) / sizeof(bw_routes[0]);

static struct bw_arena *arena;

static enum bw_match
match(struct bw_request *req, const char *method, const char *path, char *allow)
{
	memset(req, 0, sizeof(*req));
	req->arena = arena;
	req->method = method;
	req->path = path;
	return bw_route_match(req, allow, 128);
}

static void
test_literal_and_params(void **state)
{
	struct bw_request req;
	char allow[128];

	arena = bw_arena_new(4096);
	assert_int_equal(match(&req, "GET", "/healthz", allow), BW_MATCH_OK);
	assert_ptr_equal(req.route, &bw_routes[0]);
	assert_int_equal(match(&req, "GET", "/v1/accounts/acc_42", allow), BW_MATCH_OK);
	assert_ptr_equal(req.route, &bw_routes[3]);
	assert_string_equal(bw_request_path_param(&req, "id"), "acc_42");
	assert_int_equal(match(&req, "GET", "/v1/accounts/a1/entries", allow), BW_MATCH_OK);
	assert_ptr_equal(req.route, &bw_routes[4]);
	assert_string_equal(bw_request_path_param(&req, "id"), "a1");
	assert_null(bw_request_path_param(&req, "name"));
	bw_arena_free(arena);
}

static void
test_not_found(void **state)
{
	struct bw_request req;
	char allow[128];
	static const char *const paths[] = {"/",
	                                    "/healthz/",
	                                    "/healthzz",
	                                    "/v1/accounts/",
	                                    "/v1/accounts//entries",
	                                    "/v1/accounts/a/b",
	                                    "/v1/vault/items",
	                                    ""};
	arena = bw_arena_new(4096);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (match(&req, "GET", paths[i], allow) != BW_MATCH_NOT_FOUND)
			fail_msg("%s matched", paths[i]);
	bw_arena_free(arena);
}

static void
test_method_not_allowed_lists_allow(void **state)
{
	struct bw_request req;
	char allow[128];

	arena = bw_arena_new(4096);
	assert_int_equal(match(&req, "DELETE", "/v1/accounts", allow), BW_MATCH_BAD_METHOD);
	assert_string_equal(allow, "GET, POST, HEAD");
	assert_int_equal(match(&req, "GET", "/v1/vault/items/x", allow), BW_MATCH_BAD_METHOD);
	assert_string_equal(allow, "PUT, DELETE");
	assert_int_equal(match(&req, "POST", "/healthz", allow), BW_MATCH_BAD_METHOD);
	assert_string_equal(allow, "GET, HEAD");
	bw_arena_free(arena);
}

static void
test_head_matches_get(void **state)
{
	struct bw_request req;
	char allow[128];

	arena = bw_arena_new(4096);
	assert_int_equal(match(&req, "HEAD", "/healthz", allow), BW_MATCH_OK);
	assert_int_equal(bw_route_index(req.route), 0);
	assert_int_equal(bw_route_index(NULL), bw_nroutes);
	bw_arena_free(arena);
}

static void
test_scope_permits(void **state)
{
	struct bw_route open = {"GET", "/x", handler, NULL, 0, 0, NULL, "GET /x"};
	struct bw_route r = {"GET", "/x", handler, NULL, 0, 0, "ledger:read", "GET /x"};
	static const struct {
		const char *held;
		bool ok;
	} cases[] = {
	    {"ledger:read", true},
	    {"ledger:write,ledger:read", true},
	    {"ledger:read,telemetry:read", true},
	    {",ledger:read,", true},
	    {"ledger:reads", false},
	    {"ledger:rea", false},
	    {"ledger:write", false},
	    {"", false},
	    {NULL, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_identity who = {.scopes = cases[i].held};
		if (bw_route_permits(&r, &who) != cases[i].ok)
			fail_msg("scopes \"%s\": want %d", cases[i].held ? cases[i].held : "(null)",
			         cases[i].ok);
		assert_true(bw_route_permits(&open, &who));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literal_and_params),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_method_not_allowed_lists_allow),
	    cmocka_unit_test(test_head_matches_get),
	    cmocka_unit_test(test_scope_permits),
	};
	return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}

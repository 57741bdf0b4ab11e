/* Unit tests of api/ledger.c: the ids and currencies the ledger routes
 * take, amounts as JSON numbers, the list parameters of a ledger page and
 * the 400s naming a member or a parameter. */
#include <stdio.h>
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "api/ledger.h"
#include "core/arena.h"

static struct bw_request R;

static struct bw_request *
request(const char *query)
{
	memset(&R, 0, sizeof(R));
	R.arena = A;
	R.request_id = "rid";
	R.query = query;
	bw_buf_init(&R.headers, A);
	bw_buf_init(&R.body_out, A);
	return &R;
}

/* The problem R holds has this code and contains want. */
static void
problem(const char *code, const char *want)
{
	assert_int_equal(R.status, 400);
	assert_string_equal(R.code, code);
	if (strstr(bw_buf_cstr(&R.body_out), want) == NULL)
		fail_msg("no %s in %s", want, bw_buf_cstr(&R.body_out));
}

static void
test_uuid(void **state)
{
	static const char *const good[] = {
	    "00000000-0000-0000-0000-000000000000",
	    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
	    "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
	};
	static const char *const bad[] = {
	    "",
	    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",   /* 35 characters */
	    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00", /* 37 */
	    "0f1e2d3c4b5a-6978-8796-a5b4c3d2e1f0-",  /* a dash out of place */
	    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",  /* not hex */
	    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f ",
	    "{f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f}",
	    "c:abc",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!bw_is_uuid(good[i]))
			fail_msg("refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (bw_is_uuid(bad[i]))
			fail_msg("took %s", bad[i]);
	assert_false(bw_is_uuid(NULL));
}

static void
test_currency(void **state)
{
	assert_true(bw_is_currency("USD"));
	assert_true(bw_is_currency("XAU"));
	assert_false(bw_is_currency("usd"));
	assert_false(bw_is_currency("US"));
	assert_false(bw_is_currency("USDT"));
	assert_false(bw_is_currency("U5D"));
	assert_false(bw_is_currency(""));
	assert_false(bw_is_currency(NULL));
}

static void
test_amount_is_a_json_number(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	struct bw_buf b;

	assert_non_null(a);
	bw_buf_init(&b, a);
	bw_ledger_put_amount(&b, "-9223372036854775808");
	bw_buf_putc(&b, ',');
	bw_ledger_put_amount(&b, NULL);
	assert_string_equal(bw_buf_cstr(&b), "-9223372036854775808,null");
	bw_arena_free(a);
}

static void
test_list_params(void **state)
{
	int limit;
	const char *after;

	assert_true(bw_ledger_list_params(request(""), &limit, &after));
	assert_int_equal(limit, 100);
	assert_null(after);
	/* an empty after= is the first page */
	assert_true(bw_ledger_list_params(request("limit=7&after="), &limit, &after));
	assert_int_equal(limit, 7);
	assert_null(after);
	/* base64url("c:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0") */
	assert_true(bw_ledger_list_params(
	    request("after=YzowZjFlMmQzYy00YjVhLTY5NzgtODc5Ni1hNWI0YzNkMmUxZjA"), &limit, &after));
	assert_string_equal(after, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	assert_true(bw_ledger_list_params(request("after=YzoxMg"), &limit, &after)); /* c:12 */
	assert_string_equal(after, "12");
}

static void
test_list_params_refused(void **state)
{
	static const struct {
		const char *query, *parameter, *detail;
	} cases[] = {
	    {"limit=0", "limit", "limit must be 1 to 1000"},
	    {"limit=1001", "limit", "limit must be 1 to 1000"},
	    {"limit=", "limit", "limit must be 1 to 1000"},
	    {"limit=1&after=***", "after", "after is not a cursor of this list"},
	    {"after=eDox", "after", "after is not a cursor of this list"},  /* x:1 */
	    {"after=Yzo", "after", "after is not a cursor of this list"},   /* c: */
	    {"after=YzoxM", "after", "after is not a cursor of this list"}, /* 5 characters */
	};
	int limit;
	const char *after;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (bw_ledger_list_params(request(cases[i].query), &limit, &after))
			fail_msg("took %s", cases[i].query);
		char want[160];
		snprintf(want, sizeof(want),
		         "\"detail\":\"%s\",\"code\":\"invalid_parameter\","
		         "\"parameter\":\"%s\",",
		         cases[i].detail, cases[i].parameter);
		problem("invalid_parameter", want);
	}
	bw_ledger_not_a_cursor(request(""));
	problem("invalid_parameter", "\"parameter\":\"after\"");
}

static void
test_invalid_field_names_the_member(void **state)
{
	bw_invalid_field(request(""), "currency", "three capital letters");
	problem("invalid_field", "\"detail\":\"currency: three capital letters\","
	                         "\"code\":\"invalid_field\",\"pointer\":\"/currency\",");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_currency),
	    cmocka_unit_test(test_amount_is_a_json_number),
	    cmocka_unit_test_setup_teardown(test_list_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_params_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_field_names_the_member, setup, teardown),
	};
	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}

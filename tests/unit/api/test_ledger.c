/* Unit tests of api/ledger.c: the ids and currencies the ledger routes
 * take, and amounts as JSON numbers. */
#include <string.h>

#include "../unit.h"
#include "api/ledger.h"
#include "core/arena.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_currency),
	    cmocka_unit_test(test_amount_is_a_json_number),
	};
	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}

/* core/err.h: clearing and filling the one error struct of the store calls. */
#include <stdio.h>
#include <string.h>

#include "../unit.h"
#include "core/err.h"

static void
test_clear(void **state)
{
	struct bw_err e;

	(void)state;
	memset(&e, 0x5a, sizeof(e));
	bw_err_clear(&e);
	assert_int_equal(e.rc, BW_OK);
	assert_string_equal(e.code, "");
	assert_string_equal(e.message, "");
	assert_int_equal(e.retry_after_ms, 0);
}

static void
test_set_returns_rc_and_resets_the_rest(void **state)
{
	struct bw_err e;

	(void)state;
	bw_err_clear(&e);
	snprintf(e.code, sizeof(e.code), "40001");
	e.retry_after_ms = 250;
	assert_int_equal(bw_err_set(&e, BW_REFUSED, "breaker open, next probe in %d ms", 40),
	                 BW_REFUSED);
	assert_int_equal(e.rc, BW_REFUSED);
	assert_string_equal(e.message, "breaker open, next probe in 40 ms");
	/* A code or a retry time of an earlier failure never leaks into this one. */
	assert_string_equal(e.code, "");
	assert_int_equal(e.retry_after_ms, 0);
}

static void
test_set_truncates(void **state)
{
	struct bw_err e;
	char big[1000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(bw_err_set(&e, BW_ERR, "query: %s", big), BW_ERR);
	assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
	assert_memory_equal(e.message, "query: xxx", 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clear),
	    cmocka_unit_test(test_set_returns_rc_and_resets_the_rest),
	    cmocka_unit_test(test_set_truncates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

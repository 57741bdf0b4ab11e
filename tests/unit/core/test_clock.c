/* Unit tests of core/clock.c: the wall clock in ms and as RFC 3339 agree. */
#include <string.h>

#include "../unit.h"
#include "core/clock.h"
#include "core/time.h"

static void
test_wall_clock_agrees_with_itself(void **state)
{
	char s[64];
	int64_t ms, before = bw_wall_ms();

	bw_wall_rfc3339(s, sizeof(s));
	int64_t after = bw_wall_ms();
	assert_int_equal(strlen(s), 24);
	assert_int_equal(bw_time_parse_rfc3339(s, strlen(s), &ms), 0);
	assert_true(before <= ms && ms <= after);
	/* after 2023, before 9999 */
	assert_true(before > 1700000000000LL && before < BW_TIME_MAX_MS);
}

static void
test_monotonic_does_not_go_back(void **state)
{
	int64_t a = bw_now_us(), b = bw_now_us();

	assert_true(b >= a);
	assert_true(bw_now_ms() >= a / 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wall_clock_agrees_with_itself),
	    cmocka_unit_test(test_monotonic_does_not_go_back),
	};

	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}

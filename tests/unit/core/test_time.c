/* Unit tests of core/time.c: RFC 3339 in every accepted form and the
 * malformed ones, epoch milliseconds from a query string, and the writer
 * round-tripping every day of a few years. */
#include <string.h>

#include "../unit.h"
#include "core/time.h"

#define NOW 1700000000000LL /* 2023-11-14T22:13:20.000Z */

static int64_t
t3339(const char *s)
{
	int64_t ms = -12345;

	if (bw_time_parse_rfc3339(s, strlen(s), &ms) < 0)
		return -12345;
	return ms;
}

static void
test_rfc3339(void **state)
{
	assert_true(t3339("2023-11-14T22:13:20Z") == NOW);
	assert_true(t3339("2023-11-14t22:13:20z") == NOW);
	assert_true(t3339("2023-11-14T23:13:20+01:00") == NOW);
	assert_true(t3339("2023-11-14T16:43:20-05:30") == NOW);
	assert_true(t3339("2023-11-14T22:13:20.5Z") == NOW + 500);
	assert_true(t3339("2023-11-14T22:13:20.123Z") == NOW + 123);
	assert_true(t3339("2023-11-14T22:13:20.123999999Z") == NOW + 123); /* truncated */
	assert_true(t3339("1970-01-01T00:00:00Z") == 0);
	assert_true(t3339("1969-12-31T23:59:59.999Z") == -1);
	assert_true(t3339("2024-02-29T00:00:00Z") == 1709164800000LL);
	assert_true(t3339("2000-02-29T00:00:00Z") == 951782400000LL);
	assert_true(t3339("9999-12-31T23:59:59.999Z") == BW_TIME_MAX_MS);
	/* a leap second folds into the next minute */
	assert_true(t3339("2016-12-31T23:59:60Z") == t3339("2017-01-01T00:00:00Z"));
	static const char *const bad[] = {
	    "2023-11-14T22:13:20",
	    "2023-11-14 22:13:20Z",
	    "2023-11-14T22:13Z",
	    "2023-13-01T00:00:00Z",
	    "2023-00-01T00:00:00Z",
	    "2023-02-29T00:00:00Z",
	    "1900-02-29T00:00:00Z",
	    "2023-04-31T00:00:00Z",
	    "2023-11-14T24:00:00Z",
	    "2023-11-14T22:60:00Z",
	    "2023-11-14T22:13:61Z",
	    "2023-11-14T22:13:20.Z",
	    "2023-11-14T22:13:20+0100",
	    "2023-11-14T22:13:20+24:00",
	    "2023-11-14T22:13:20+01:60",
	    "2023-11-14T22:13:20Z ",
	    "+2023-11-14T22:13:20Z",
	    "2023-1-14T22:13:20Z",
	    "2023-11-14T22:13:20.1.2Z",
	    "",
	    "1700000000000",
	    "2023-11-14T22:13:2xZ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (t3339(bad[i]) != -12345)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void
test_query_time(void **state)
{
	int64_t ms;

	assert_int_equal(bw_time_parse("1700000000000", &ms), 0);
	assert_true(ms == NOW);
	assert_int_equal(bw_time_parse("0", &ms), 0);
	assert_true(ms == 0);
	assert_int_equal(bw_time_parse("253402300799999", &ms), 0);
	assert_int_equal(bw_time_parse("253402300800000", &ms), -1);
	assert_int_equal(bw_time_parse("1234567890123456", &ms), -1);
	assert_int_equal(bw_time_parse("-5", &ms), -1);
	assert_int_equal(bw_time_parse("12a", &ms), -1);
	assert_int_equal(bw_time_parse("", &ms), -1);
	assert_int_equal(bw_time_parse("2023-11-14T22:13:20Z", &ms), 0);
	assert_true(ms == NOW);
}

static void
test_format_time(void **state)
{
	char t[BW_TIME_LEN];

	bw_time_format(NOW + 7, t);
	assert_string_equal(t, "2023-11-14T22:13:20.007Z");
	bw_time_format(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00.000Z");
	bw_time_format(-1, t);
	assert_string_equal(t, "1969-12-31T23:59:59.999Z");
	bw_time_format(BW_TIME_MAX_MS, t);
	assert_string_equal(t, "9999-12-31T23:59:59.999Z");
	bw_time_format(1709164800000LL, t);
	assert_string_equal(t, "2024-02-29T00:00:00.000Z");
	/* every day of a few years round-trips */
	for (int64_t d = -800; d < 800; d++) {
		int64_t ms = NOW + d * 86400000 + d * 3601;
		bw_time_format(ms, t);
		assert_true(t3339(t) == ms);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_query_time),
	    cmocka_unit_test(test_format_time),
	};

	return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}

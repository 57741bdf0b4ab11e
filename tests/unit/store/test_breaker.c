/* Unit tests of workers/store/breaker.c: the state machine on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/breaker.h"

#define THRESHOLD 3
#define COOLDOWN  250
#define MAX_COOL  1000

static void
fail_n(struct bw_breaker *b, int n, int64_t now)
{
	for (int i = 0; i < n; i++) {
		assert_true(bw_breaker_allow(b, now));
		bw_breaker_failure(b, now);
	}
}

static void
test_starts_closed(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_true(bw_breaker_allow(&b, 0));
	assert_int_equal(bw_breaker_retry_after_ms(&b, 0), 0);
}

static void
test_opens_after_threshold(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD - 1, 1000);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	fail_n(&b, 1, 1000);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	assert_int_equal(b.open_until_ms, 1000 + COOLDOWN);
}

static void
test_success_resets_failure_count(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD - 1, 0);
	bw_breaker_success(&b);
	/* Failures must be consecutive to open it. */
	fail_n(&b, THRESHOLD - 1, 0);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
}

static void
test_open_fails_fast(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 1000);
	assert_false(bw_breaker_allow(&b, 1000));
	assert_false(bw_breaker_allow(&b, 1000 + COOLDOWN - 1));
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

static void
test_half_open_after_cooldown(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 1000);
	assert_true(bw_breaker_allow(&b, 1000 + COOLDOWN));
	assert_int_equal(b.state, BW_BREAKER_HALF_OPEN);
	/* Only one probe at a time. */
	assert_false(bw_breaker_allow(&b, 1000 + COOLDOWN));
}

static void
test_probe_success_closes(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 0);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	bw_breaker_success(&b);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
	assert_int_equal(b.cooldown_ms, COOLDOWN);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	assert_int_equal(bw_breaker_retry_after_ms(&b, COOLDOWN), 0);
}

static void
test_probe_failure_doubles_cooldown(void **state)
{
	struct bw_breaker b;
	int64_t now = 0;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, now);
	now += COOLDOWN;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_failure(&b, now);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	assert_int_equal(b.cooldown_ms, 2 * COOLDOWN);
	assert_int_equal(b.open_until_ms, now + 2 * COOLDOWN);
	assert_false(bw_breaker_allow(&b, now + 2 * COOLDOWN - 1));
	now += 2 * COOLDOWN;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_failure(&b, now);
	assert_int_equal(b.cooldown_ms, 4 * COOLDOWN);
}

static void
test_cooldown_capped(void **state)
{
	struct bw_breaker b;
	int64_t now = 0;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, now);
	for (int i = 0; i < 10; i++) {
		now = b.open_until_ms;
		assert_true(bw_breaker_allow(&b, now));
		bw_breaker_failure(&b, now);
		assert_true(b.cooldown_ms <= MAX_COOL);
	}
	assert_int_equal(b.cooldown_ms, MAX_COOL);
	assert_int_equal(b.open_until_ms, now + MAX_COOL);
	/* Success brings back the base cooldown for the next outage. */
	now = b.open_until_ms;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_success(&b);
	fail_n(&b, THRESHOLD, now);
	assert_int_equal(b.open_until_ms, now + COOLDOWN);
}

static void
test_cap_below_base(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, 1, 5000, 1000);
	fail_n(&b, 1, 0);
	assert_int_equal(b.open_until_ms, 5000);
	assert_true(bw_breaker_allow(&b, 5000));
	bw_breaker_failure(&b, 5000);
	assert_int_equal(b.cooldown_ms, 5000);
}

static void
test_threshold_at_least_one(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, 0, COOLDOWN, MAX_COOL);
	fail_n(&b, 1, 0);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

static void
test_retry_after(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100), 0);
	fail_n(&b, THRESHOLD, 100);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100), COOLDOWN);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN - 1), 1);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN), 0);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN + 50), 0);
}

static void
test_lost_probe_does_not_wedge(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 0);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	/* The probe's outcome is never reported: after another cooldown a new
	 * probe is allowed rather than refusing forever. */
	assert_false(bw_breaker_allow(&b, 2 * COOLDOWN - 1));
	assert_true(bw_breaker_allow(&b, 2 * COOLDOWN));
	assert_int_equal(b.state, BW_BREAKER_HALF_OPEN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starts_closed),
	    cmocka_unit_test(test_opens_after_threshold),
	    cmocka_unit_test(test_success_resets_failure_count),
	    cmocka_unit_test(test_open_fails_fast),
	    cmocka_unit_test(test_half_open_after_cooldown),
	    cmocka_unit_test(test_probe_success_closes),
	    cmocka_unit_test(test_probe_failure_doubles_cooldown),
	    cmocka_unit_test(test_cooldown_capped),
	    cmocka_unit_test(test_cap_below_base),
	    cmocka_unit_test(test_threshold_at_least_one),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_lost_probe_does_not_wedge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

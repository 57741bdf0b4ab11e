/* The master's decisions about a child that has exited: why it ended, when
 * its slot is refilled, when crashes trip the breaker. */
#include <sys/wait.h>

#include "../unit.h"
#include "pool/children.h"
#include "pool/worker.h"

static void
test_exit_reason(void **state)
{
	int exit0 = W_EXITCODE(0, 0);
	int exit1 = W_EXITCODE(1, 0);
	int recycled = W_EXITCODE(BW_WORKER_EXIT_RECYCLED, 0);
	int segv = W_EXITCODE(0, SIGSEGV);

	assert_int_equal(bw_child_exit_reason(exit0, false, true), BW_CHILD_STOPPED);
	/* Exiting 0 unasked is not a clean stop. */
	assert_int_equal(bw_child_exit_reason(exit0, false, false), BW_CHILD_CRASHED);
	assert_int_equal(bw_child_exit_reason(recycled, false, false), BW_CHILD_RECYCLED);
	assert_int_equal(bw_child_exit_reason(recycled, false, true), BW_CHILD_RECYCLED);
	assert_int_equal(bw_child_exit_reason(exit1, false, true), BW_CHILD_CRASHED);
	assert_int_equal(bw_child_exit_reason(segv, false, true), BW_CHILD_CRASHED);
	/* Killed by the master counts as killed, however it ended. */
	assert_int_equal(bw_child_exit_reason(W_EXITCODE(0, SIGKILL), true, false),
	                 BW_CHILD_KILLED);
	assert_int_equal(bw_child_exit_reason(exit0, true, true), BW_CHILD_KILLED);
}

static void
test_exit_names(void **state)
{
	assert_string_equal(bw_child_exit_name(BW_CHILD_STOPPED), "stopped");
	assert_string_equal(bw_child_exit_name(BW_CHILD_RECYCLED), "recycled");
	assert_string_equal(bw_child_exit_name(BW_CHILD_KILLED), "killed");
	assert_string_equal(bw_child_exit_name(BW_CHILD_CRASHED), "crashed");
	assert_string_equal(bw_child_exit_name(BW_CHILD_NEXITS), "unknown");
}

static void
test_backoff_doubles_up_to_a_cap(void **state)
{
	int64_t b = 0;
	int64_t want[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		b = bw_child_backoff(b, BW_CHILD_CRASHED, 50);
		assert_int_equal(b, want[i]);
	}
	/* A worker that lived long enough starts the count again. */
	assert_int_equal(bw_child_backoff(b, BW_CHILD_CRASHED, 10000), 0);
	assert_int_equal(bw_child_backoff(b, BW_CHILD_CRASHED, 9999), 30000);
	/* Only crashes back off. */
	assert_int_equal(bw_child_backoff(400, BW_CHILD_STOPPED, 50), 0);
	assert_int_equal(bw_child_backoff(400, BW_CHILD_RECYCLED, 50), 0);
	assert_int_equal(bw_child_backoff(400, BW_CHILD_KILLED, 50), 0);
}

static void
test_crashes_in_the_window(void **state)
{
	int64_t now = 100000;
	int64_t times[16] = {0};

	assert_int_equal(bw_crashes_recent(times, 16, now), 0);
	times[0] = now - 10000; /* just outside */
	times[1] = now - 9999;
	times[2] = now;
	times[3] = now - 50000;
	assert_int_equal(bw_crashes_recent(times, 16, now), 2);
	for (int i = 4; i < 8; i++)
		times[i] = now - 100 * i;
	assert_int_equal(bw_crashes_recent(times, 16, now), 6);
	assert_int_equal(bw_crashes_recent(times, 16, now + 20000), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_reason),
	    cmocka_unit_test(test_exit_names),
	    cmocka_unit_test(test_backoff_doubles_up_to_a_cap),
	    cmocka_unit_test(test_crashes_in_the_window),
	};
	return cmocka_run_group_tests_name("children", tests, NULL, NULL);
}

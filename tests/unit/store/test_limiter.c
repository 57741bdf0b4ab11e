#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit.h"
#include "store/limiter.h"

#define SEC 1000000

static void
test_gcra_burst_then_one_per_interval(void **state)
{
	int64_t tat = 0, now = 1000 * (int64_t)SEC;
	struct bw_gcra_result r;

	for (int i = 0; i < 5; i++) {
		bw_gcra_step(&tat, now, SEC / 2, 5, &r);
		assert_true(r.allowed);
		assert_int_equal(r.remaining, 4 - i);
	}
	int64_t before = tat;
	bw_gcra_step(&tat, now, SEC / 2, 5, &r);
	assert_false(r.allowed);
	assert_int_equal(tat, before); /* a denial stores nothing */
	assert_int_equal(r.retry_us, SEC / 2);
	assert_int_equal(r.reset_us, 5 * (SEC / 2));
	/* Exactly one interval later, exactly one more. */
	bw_gcra_step(&tat, now + SEC / 2, SEC / 2, 5, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	bw_gcra_step(&tat, now + SEC / 2, SEC / 2, 5, &r);
	assert_false(r.allowed);
}

static void
test_apply_commits_all_or_nothing(void **state)
{
	struct bw_gcra_policy p[2] = {
	    {"key", "k:unit-a", SEC, 3},
	    {"tenant", "t:unit-a", SEC, 1},
	};
	struct bw_gcra_result r[2];

	assert_int_equal(bw_limiter_setup(), 0);
	assert_int_equal(bw_limiter_apply(p, 2, r), 1);
	/* The tenant policy is empty now: denied, and the key policy keeps its tokens. */
	assert_int_equal(bw_limiter_apply(p, 2, r), 0);
	assert_true(r[0].allowed);
	assert_false(r[1].allowed);
	assert_int_equal(r[0].remaining, 2);
	assert_int_equal(bw_limiter_apply(&p[0], 1, r), 1);
	assert_int_equal(r[0].remaining, 1);
}

static void
test_buckets_are_shared_across_processes(void **state)
{
	struct bw_gcra_policy p = {"key", "k:unit-shared", SEC * 100, 4};
	struct bw_gcra_result r;

	assert_int_equal(bw_limiter_setup(), 0);
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(bw_limiter_apply(&p, 1, &r) == 1 && bw_limiter_apply(&p, 1, &r) == 1
			          ? 0
			          : 1);
		int st;
		waitpid(pid, &st, 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* Two children took two each: the parent finds the bucket empty. */
	assert_int_equal(bw_limiter_apply(&p, 1, &r), 0);
}

static void
test_many_buckets_do_not_break(void **state)
{
	char name[32];
	struct bw_gcra_result r;

	assert_int_equal(bw_limiter_setup(), 0);
	/* More buckets than the table holds: takeovers may loosen, never fail. */
	for (int i = 0; i < 40000; i++) {
		snprintf(name, sizeof(name), "k:%d", i);
		struct bw_gcra_policy p = {"key", name, SEC, 10};
		assert_int_equal(bw_limiter_apply(&p, 1, &r), 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gcra_burst_then_one_per_interval),
	    cmocka_unit_test(test_apply_commits_all_or_nothing),
	    cmocka_unit_test(test_buckets_are_shared_across_processes),
	    cmocka_unit_test(test_many_buckets_do_not_break),
	};
	return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}

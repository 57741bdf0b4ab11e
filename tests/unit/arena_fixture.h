/* The arena a unit test allocates from: a fresh one per test case, through
 * cmocka's setup and teardown:
 *     cmocka_unit_test_setup_teardown(test_x, setup, teardown) */
#ifndef BW_ARENA_FIXTURE_H
#define BW_ARENA_FIXTURE_H

#include "core/arena.h"

static struct bw_arena *A;

static int
setup(void **state)
{
	(void)state;
	A = bw_arena_new(65536);
	return A == NULL;
}

static int
teardown(void **state)
{
	(void)state;
	bw_arena_free(A);
	A = NULL;
	return 0;
}

#endif

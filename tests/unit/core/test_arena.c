#include <stdint.h>
#include <string.h>

#include "../unit.h"
#include "core/arena.h"

static int cleaned;

static void
count_cleanup(void *p)
{
	cleaned += *(int *)p;
}

static void
test_alloc_aligned_and_distinct(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	char *p = bw_arena_alloc(a, 3);
	char *q = bw_arena_alloc(a, 5);

	assert_non_null(p);
	assert_non_null(q);
	assert_true(q >= p + 3);
	assert_int_equal((uintptr_t)q % 16, 0);
	bw_arena_free(a);
}

static void
test_grows_past_first_chunk(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	for (int i = 0; i < 1000; i++) {
		char *p = bw_arena_alloc(a, 100);
		assert_non_null(p);
		memset(p, 'x', 100); /* ASan catches an overlap or overflow */
	}
	char *big = bw_arena_alloc(a, 1 << 20);
	assert_non_null(big);
	memset(big, 0, 1 << 20);
	assert_true(bw_arena_used(a) >= 100000 + (1 << 20));
	bw_arena_free(a);
}

static void
test_reset_runs_cleanups_in_reverse(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	int one = 1, ten = 10;

	cleaned = 0;
	assert_int_equal(bw_arena_defer(a, count_cleanup, &one), 0);
	assert_int_equal(bw_arena_defer(a, count_cleanup, &ten), 0);
	bw_arena_reset(a);
	assert_int_equal(cleaned, 11);
	assert_int_equal(bw_arena_used(a), 0);
	/* Reset arena is usable again and runs nothing twice. */
	assert_non_null(bw_arena_alloc(a, 4096));
	bw_arena_free(a);
	assert_int_equal(cleaned, 11);
}

static void
test_printf_and_strndup(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	assert_string_equal(bw_arena_printf(a, "%s-%d", "route", 42), "route-42");
	assert_string_equal(bw_arena_strndup(a, "abcdef", 3), "abc");
	char longer[3000];
	memset(longer, 'y', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(strlen(bw_arena_printf(a, "%s", longer)), sizeof(longer) - 1);
	bw_arena_free(a);
}

static void
test_calloc_overflow_refused(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	assert_null(bw_arena_calloc(a, SIZE_MAX / 2, 4));
	int *z = bw_arena_calloc(a, 8, sizeof(int));
	assert_non_null(z);
	for (int i = 0; i < 8; i++)
		assert_int_equal(z[i], 0);
	bw_arena_free(a);
}

static void
test_grow_keeps_elements(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	int *v = NULL;
	size_t cap = 0;

	for (size_t n = 0; n < 100; n++) {
		int *g = bw_arena_grow(a, v, &cap, n, sizeof(*v));
		assert_non_null(g);
		assert_true(cap > n);
		if (n > 0 && (n & (n - 1)) != 0 && n > 8)
			assert_ptr_equal(g, v); /* room left: the same array */
		v = g;
		v[n] = (int)n * 3;
	}
	for (int i = 0; i < 100; i++)
		assert_int_equal(v[i], i * 3);
	assert_int_equal(cap, 128);
	assert_null(bw_arena_grow(a, v, &(size_t){SIZE_MAX / 2}, SIZE_MAX / 2, 4));
	bw_arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_aligned_and_distinct),
	    cmocka_unit_test(test_grows_past_first_chunk),
	    cmocka_unit_test(test_reset_runs_cleanups_in_reverse),
	    cmocka_unit_test(test_printf_and_strndup),
	    cmocka_unit_test(test_calloc_overflow_refused),
	    cmocka_unit_test(test_grow_keeps_elements),
	};
	return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}

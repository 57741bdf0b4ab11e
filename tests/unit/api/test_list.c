/* Unit tests of api/list.c: ?limit= as every list reads it, and the
 * cursors of ?after= and `next`, round trip and refusals. */
#include <string.h>

#include "../unit.h"
#include "api/list.h"
#include "core/arena.h"

static void
test_limit(void **state)
{
	static const struct {
		const char *s;
		int want;
	} good[] = {{NULL, BW_LIST_DEFAULT}, {"1", 1}, {"100", 100}, {"1000", 1000}, {"0007", 7}};
	static const char *const bad[] = {
	    "",   "0",  "0000", "1001", "9999", "01000", "-1",
	    "+5", " 5", "5 ",   "1.5",  "10x",  "abc",   "99999999999999999999",
	};
	int limit;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		limit = -1;
		if (!bw_list_limit(good[i].s, &limit))
			fail_msg("refused %s", good[i].s != NULL ? good[i].s : "(absent)");
		assert_int_equal(limit, good[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		limit = -1;
		if (bw_list_limit(bad[i], &limit))
			fail_msg("took %s as %d", bad[i], limit);
		assert_int_equal(limit, -1);
	}
}

/* The cursor bw_cursor_put writes for n bytes of raw, unquoted, in a. */
static const char *
cursor_of(struct bw_arena *a, const void *raw, size_t n)
{
	struct bw_buf b;

	bw_buf_init(&b, a);
	bw_cursor_put(&b, raw, n);
	const char *s = bw_buf_cstr(&b);
	assert_int_equal(s[0], '"');
	assert_int_equal(s[b.len - 1], '"');
	return bw_arena_strndup(a, s + 1, b.len - 2);
}

static void
test_cursor_round_trip(void **state)
{
	struct bw_arena *a = bw_arena_new(4096);
	unsigned char raw[BW_CURSOR_MAX], out[BW_CURSOR_MAX + 1];

	assert_non_null(a);
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 37 + 11);
	/* every length from 1 to the most a cursor wraps, NULs and all */
	for (size_t n = 1; n <= BW_CURSOR_MAX; n++) {
		const char *c = cursor_of(a, raw, n);
		assert_true(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                      "0123456789-_") == strlen(c));
		memset(out, 0xAA, sizeof(out));
		assert_int_equal(bw_cursor_read(c, out, BW_CURSOR_MAX), (long)n);
		assert_memory_equal(out, raw, n);
		assert_int_equal(out[n], '\0');
	}
	/* the ledger's "c:<key>" */
	assert_string_equal(cursor_of(a, "c:42", 4), "Yzo0Mg");
	assert_int_equal(bw_cursor_read("Yzo0Mg", out, BW_CURSOR_MAX), 4);
	assert_string_equal((const char *)out, "c:42");
	bw_arena_free(a);
}

static void
test_cursor_refusals(void **state)
{
	struct bw_arena *a = bw_arena_new(4096);
	unsigned char raw[BW_CURSOR_MAX + 1], out[BW_CURSOR_MAX + 2];

	assert_non_null(a);
	/* absent or empty: the first page */
	assert_int_equal(bw_cursor_read(NULL, out, BW_CURSOR_MAX), 0);
	assert_int_equal(bw_cursor_read("", out, BW_CURSOR_MAX), 0);
	/* outside the alphabet (also base64's own + / =) */
	assert_int_equal(bw_cursor_read("***", out, BW_CURSOR_MAX), -1);
	assert_int_equal(bw_cursor_read("Yz+0Mg", out, BW_CURSOR_MAX), -1);
	assert_int_equal(bw_cursor_read("Yz/0Mg", out, BW_CURSOR_MAX), -1);
	assert_int_equal(bw_cursor_read("Yzo0Mg==", out, BW_CURSOR_MAX), -1);
	/* a length bw_cursor_put never writes (4k + 1 characters) */
	assert_int_equal(bw_cursor_read("Y", out, BW_CURSOR_MAX), -1);
	assert_int_equal(bw_cursor_read("Yzo0MgAAA", out, BW_CURSOR_MAX), -1);
	/* more than max bytes */
	memset(raw, 'x', sizeof(raw));
	assert_int_equal(bw_cursor_read(cursor_of(a, raw, BW_CURSOR_MAX + 1), out, BW_CURSOR_MAX),
	                 -1);
	assert_int_equal(bw_cursor_read(cursor_of(a, raw, 22), out, 21), -1);
	assert_int_equal(bw_cursor_read(cursor_of(a, raw, 21), out, 21), 21);
	bw_arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_cursor_round_trip),
	    cmocka_unit_test(test_cursor_refusals),
	};
	return cmocka_run_group_tests_name("list", tests, NULL, NULL);
}

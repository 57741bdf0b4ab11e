/* Unit tests of core/buf.c: the buffer, UTF-8, the JSON writer and JSON
 * pointer steps. */
#include <string.h>

#include "../unit.h"
#include "core/arena.h"
#include "core/buf.h"

static void
test_json_escapes(void **state)
{
	struct bw_buf b;
	bw_buf_init(&b, NULL);
	bw_json_str(&b, "a\"b\\c\n\x01");
	assert_string_equal(bw_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
	bw_buf_release(&b);
}

static void
test_json_keeps_utf8_replaces_invalid(void **state)
{
	struct bw_buf b;
	bw_buf_init(&b, NULL);
	bw_json_str(&b, "caf\xc3\xa9 \xff!");
	assert_string_equal(bw_buf_cstr(&b), "\"caf\xc3\xa9 \\ufffd!\"");
	bw_buf_reset(&b);
	bw_json_strn(&b, "\xe2\x82", 2); /* truncated sequence */
	assert_string_equal(bw_buf_cstr(&b), "\"\\ufffd\\ufffd\"");
	bw_buf_release(&b);
}

static void
test_utf8_sequences_and_characters(void **state)
{
	const unsigned char *u = (const unsigned char *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";

	assert_int_equal(bw_utf8_len(u, 1), 1);
	assert_int_equal(bw_utf8_len(u + 1, 2), 2);
	assert_int_equal(bw_utf8_len(u + 3, 3), 3);
	assert_int_equal(bw_utf8_len(u + 6, 4), 4);
	assert_int_equal(bw_utf8_len(u + 6, 3), 0);                                 /* cut short */
	assert_int_equal(bw_utf8_len((const unsigned char *)"\xc0\xaf", 2), 0);     /* overlong */
	assert_int_equal(bw_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0); /* surrogate */
	assert_int_equal(bw_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
	/* characters, not bytes: 4 code points in 10 bytes */
	assert_int_equal(bw_utf8_chars((const char *)u, 10), 4);
	assert_int_equal(bw_utf8_chars("", 0), 0);
	assert_int_equal(bw_utf8_chars("a\0b", 3), 3);
}

static void
test_kv_helpers_build_an_object(void **state)
{
	struct bw_arena *a = bw_arena_new(1024);
	struct bw_buf b;
	bw_buf_init(&b, a);
	bw_buf_putc(&b, '{');
	bw_json_kv_str(&b, "s", "x", true);
	bw_json_kv_int(&b, "n", -5, false);
	bw_json_kv_bool(&b, "t", true, false);
	bw_buf_putc(&b, '}');
	assert_string_equal(bw_buf_cstr(&b), "{\"s\":\"x\",\"n\":-5,\"t\":true}");
	bw_arena_free(a);
}

static void
test_printf_grows(void **state)
{
	struct bw_buf b;
	char big[1000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bw_buf_init(&b, NULL);
	for (int i = 0; i < 10; i++)
		bw_buf_printf(&b, "%s", big);
	assert_int_equal(b.len, 10 * (sizeof(big) - 1));
	assert_int_equal(strlen(bw_buf_cstr(&b)), b.len);
	bw_buf_release(&b);
}

/* A literal and its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

static void
test_pointer_step_escapes_tilde_and_slash(void **state)
{
	static const struct {
		const char *name;
		size_t len;
		const char *want;
		size_t want_len;
	} cases[] = {
	    {LIT("amount"), LIT("/amount")}, {LIT(""), LIT("/")},      {LIT("a/b"), LIT("/a~1b")},
	    {LIT("m~n"), LIT("/m~0n")},      {LIT("~1"), LIT("/~01")}, {LIT("/~/"), LIT("/~1~0~1")},
	    {LIT("a\0~"), LIT("/a\0~0")},
	};
	struct bw_buf b;

	bw_buf_init(&b, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bw_buf_reset(&b);
		bw_json_pointer_step(&b, cases[i].name, cases[i].len);
		assert_int_equal(b.len, cases[i].want_len);
		assert_memory_equal(b.data, cases[i].want, b.len);
	}
	bw_buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_escapes),
	    cmocka_unit_test(test_json_keeps_utf8_replaces_invalid),
	    cmocka_unit_test(test_utf8_sequences_and_characters),
	    cmocka_unit_test(test_kv_helpers_build_an_object),
	    cmocka_unit_test(test_printf_grows),
	    cmocka_unit_test(test_pointer_step_escapes_tilde_and_slash),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}

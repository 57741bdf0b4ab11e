/* Unit tests of the telemetry validator (workers/api/telemetry_validate.c)
 * and of the JSON writer it round-trips with (telemetry_json.c): every
 * rule, the pointer and index of each refusal, the skew window. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "api/telemetry_json.h"
#include "api/telemetry_validate.h"
#include "core/arena.h"
#include "core/buf.h"

#define NOW    1700000000000LL /* 2023-11-14T22:13:20.000Z */
#define PAST   (7LL * 86400 * 1000)
#define FUTURE (300LL * 1000)

static struct bw_tel_reading *R;
static size_t N;
static struct bw_tel_error E;

static int
parse_n(const char *body, size_t len)
{
	struct bw_tel_limits lim = {NOW, PAST, FUTURE};

	return bw_tel_parse(A, body, len, &lim, &R, &N, &E);
}

static int
parse(const char *body)
{
	return parse_n(body, strlen(body));
}

static void
accepts(const char *body, size_t n)
{
	if (parse(body) != 0)
		fail_msg("refused %.200s: %s %s at \"%s\"", body, E.code, E.detail, E.pointer);
	assert_int_equal(N, n);
}

/* Refused with code, pointer and index (-1: none). */
static void
refuses(const char *body, const char *code, const char *pointer, long index)
{
	if (parse(body) == 0)
		fail_msg("accepted %.200s", body);
	assert_string_equal(E.code, code);
	assert_string_equal(E.pointer, pointer);
	assert_int_equal(E.index, index);
	assert_int_equal(E.status, strcmp(code, "payload_too_large") == 0 ? 413 : 400);
	assert_true(E.detail[0] != '\0');
}

/* A body of text repeated between a head and a tail. */
static char *
repeat(const char *head, const char *unit, size_t times, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = bw_arena_alloc(A, hl + ul * times + tl + 1), *p = s;

	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < times; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

/* ---- shapes ---- */

static void
test_single_object(void **state)
{
	bson_iter_t it;

	accepts("{\"temp\":21.5,\"on\":true,\"note\":null,\"tags\":[\"a\",1]}", 1);
	assert_null(R[0].msg_id);
	assert_false(R[0].has_ts);
	assert_int_equal(R[0].ts_ms, NOW); /* no ts: the time of receipt */
	assert_true(bson_iter_init_find(&it, R[0].data, "temp"));
	assert_true(BSON_ITER_HOLDS_DOUBLE(&it));
	assert_true(bson_iter_init_find(&it, R[0].data, "on") && BSON_ITER_HOLDS_BOOL(&it));
	assert_true(bson_iter_init_find(&it, R[0].data, "note") && BSON_ITER_HOLDS_NULL(&it));
	assert_true(bson_iter_init_find(&it, R[0].data, "tags") && BSON_ITER_HOLDS_ARRAY(&it));
}

static void
test_batch(void **state)
{
	accepts(" [ {\"msg_id\":\"m1\",\"ts\":\"2023-11-14T22:13:20Z\"} , {\"msg_id\":\"m2\","
	        "\"ts\":1699999999000}, {} ] ",
	        3);
	assert_string_equal(R[0].msg_id, "m1");
	assert_true(R[0].has_ts);
	assert_int_equal(R[0].ts_ms, NOW);
	assert_string_equal(R[1].msg_id, "m2");
	assert_int_equal(R[1].ts_ms, NOW - 1000);
	assert_null(R[2].msg_id);
	assert_int_equal(bson_count_keys(R[2].data), 0);
	/* msg_id and ts stay in the reading as sent */
	assert_true(bson_has_field(R[0].data, "msg_id") && bson_has_field(R[0].data, "ts"));
}

static void
test_top_level(void **state)
{
	refuses("", "invalid_json", "", -1);
	refuses("   ", "invalid_json", "", -1);
	refuses("\"hello\"", "invalid_json", "", -1);
	refuses("42", "invalid_json", "", -1);
	refuses("[]", "invalid_reading", "", -1);
	refuses("[{\"a\":1},2]", "invalid_reading", "/1", 1);
	refuses("[{\"a\":1},[]]", "invalid_reading", "/1", 1);
	refuses("{\"a\":1} x", "invalid_json", "", -1);
	refuses("{\"a\":1}{}", "invalid_json", "", -1);
	refuses("[{\"a\":1}", "invalid_json", "", -1);
	refuses("[{\"a\":1},]", "invalid_reading", "/1", 1);
}

static void
test_syntax(void **state)
{
	refuses("{\"a\":tru}", "invalid_json", "/a", 0);
	refuses("{\"a\":1,}", "invalid_json", "", 0);
	refuses("{\"a\" 1}", "invalid_json", "/a", 0);
	refuses("{a:1}", "invalid_json", "", 0);
	refuses("[{\"x\":{\"y\":[1,2,}]}}]", "invalid_json", "/0/x/y/2", 0);
	refuses("{\"a\":\"abc", "invalid_json", "/a", 0);
	/* the offset is where the problem is */
	assert_int_equal(parse("{\"a\":  @}"), -1);
	assert_int_equal(E.offset, 7);
}

static void
test_strings(void **state)
{
	bson_iter_t it;
	uint32_t len;

	accepts("{\"s\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\",\"z\":\"a\\u0000b\"}", 1);
	assert_true(bson_iter_init_find(&it, R[0].data, "s"));
	assert_string_equal(bson_iter_utf8(&it, &len), "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/");
	assert_true(bson_iter_init_find(&it, R[0].data, "z"));
	assert_memory_equal(bson_iter_utf8(&it, &len), "a\0b", 3);
	assert_int_equal(len, 3); /* NUL is fine in a value, not in a key */
	refuses("{\"a\":\"\\ud800\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\\ud800\\u0041\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\\udc00\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\\u12\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\\x\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"x\ty\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\xc3\x28\"}", "invalid_json", "/a", 0);
	refuses("{\"a\":\"\xc0\xaf\"}", "invalid_json", "/a", 0);     /* overlong */
	refuses("{\"a\":\"\xed\xa0\x80\"}", "invalid_json", "/a", 0); /* surrogate */
	refuses("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid_json", "/a", 0);
}

/* ---- keys ---- */

static void
test_forbidden_keys(void **state)
{
	refuses("{\"$set\":1}", "invalid_reading", "/$set", 0);
	refuses("[{\"ok\":1},{\"a\":{\"b.c\":1}}]", "invalid_reading", "/1/a/b.c", 1);
	refuses("[{\"a\":[{\"$x\":1}]}]", "invalid_reading", "/0/a/0/$x", 0);
	refuses("{\"\":1}", "invalid_reading", "/", 0);
	refuses("{\"a\":{\"x$\":1,\"\":2}}", "invalid_reading", "/a/", 0);
	/* "$" inside a key is fine, only a leading one is not */
	accepts("{\"price$\":1,\"a-b\":2}", 1);
	/* NUL: the pointer keeps the byte (pointer_len) */
	assert_int_equal(parse("{\"a\\u0000b\":1}"), -1);
	assert_string_equal(E.code, "invalid_reading");
	assert_int_equal(E.pointer_len, 4);
	assert_memory_equal(E.pointer, "/a\0b", 4);
	/* the offset is where the key starts */
	assert_int_equal(parse("{\"a\":1, \"$b\":2}"), -1);
	assert_int_equal(E.offset, 8);
	assert_int_equal(parse("{\"a\":1,\"a\":2}"), -1);
	assert_int_equal(E.offset, 7);
	/* RFC 6901 escapes in the pointer */
	refuses("{\"a/b\":{\"c~d\":{\"$x\":1}}}", "invalid_reading", "/a~1b/c~0d/$x", 0);
}

static void
test_duplicate_keys(void **state)
{
	refuses("{\"a\":1,\"b\":2,\"a\":3}", "invalid_reading", "/a", 0);
	refuses("[{},{\"x\":{\"k\":1,\"k\":1}}]", "invalid_reading", "/1/x/k", 1);
	/* the same key written two ways */
	refuses("{\"a\":1,\"\\u0061\":2}", "invalid_reading", "/a", 0);
	/* many keys: found by sorting; the earliest repeat is named */
	char *many = repeat("{", "", 0, "");
	struct bw_buf b;
	bw_buf_init(&b, A);
	bw_buf_puts(&b, many);
	for (int i = 0; i < 100; i++)
		bw_buf_printf(&b, "\"k%d\":%d,", i, i);
	bw_buf_puts(&b, "\"k70\":0,\"k3\":0}");
	refuses(bw_buf_cstr(&b), "invalid_reading", "/k70", 0);
	/* the same key in sibling objects is not a duplicate */
	accepts("{\"a\":{\"k\":1},\"b\":{\"k\":1},\"c\":[{\"k\":1},{\"k\":2}]}", 1);
}

/* ---- depth ---- */

static void
test_depth(void **state)
{
	/* The reading is level 1: 31 nested objects inside it make 32. */
	accepts(repeat("{", "\"a\":{", 31, repeat("", "}", 32, "")), 1);
	char *p33 = repeat("", "/a", 32, "");
	refuses(repeat("{", "\"a\":{", 32, repeat("", "}", 33, "")), "invalid_reading", p33, 0);
	/* arrays count as levels too */
	accepts(repeat("{\"a\":", "[", 31, repeat("", "]", 31, "}")), 1);
	refuses(repeat("[{},{\"a\":", "[", 32, repeat("", "]", 32, "}]")), "invalid_reading",
	        repeat("/1/a", "/0", 31, ""), 1);
	/* far deeper input is refused without recursing into it */
	refuses(repeat("{\"a\":", "[", 100000, ""), "invalid_reading", repeat("/a", "/0", 31, ""),
	        0);
}

/* ---- numbers ---- */

static bson_type_t
type_of(const char *key)
{
	bson_iter_t it;

	assert_true(bson_iter_init_find(&it, R[0].data, key));
	return bson_iter_type(&it);
}

static void
test_numbers(void **state)
{
	bson_iter_t it;

	accepts("{\"a\":2147483647,\"b\":2147483648,\"c\":-9223372036854775808,\"d\":-2147483648,"
	        "\"e\":1.5,\"f\":1e308,\"g\":0e-400,\"h\":-0,\"i\":4.9e-324,\"j\":1E2}",
	        1);
	assert_int_equal(type_of("a"), BSON_TYPE_INT32);
	assert_int_equal(type_of("b"), BSON_TYPE_INT64);
	assert_int_equal(type_of("c"), BSON_TYPE_INT64);
	assert_true(bson_iter_init_find(&it, R[0].data, "c"));
	assert_true(bson_iter_int64(&it) == INT64_MIN);
	assert_int_equal(type_of("d"), BSON_TYPE_INT32);
	assert_int_equal(type_of("e"), BSON_TYPE_DOUBLE);
	assert_int_equal(type_of("f"), BSON_TYPE_DOUBLE);
	assert_int_equal(type_of("g"), BSON_TYPE_DOUBLE);
	assert_int_equal(type_of("h"), BSON_TYPE_INT32);
	assert_int_equal(type_of("i"), BSON_TYPE_DOUBLE);
	assert_int_equal(type_of("j"), BSON_TYPE_DOUBLE);
	refuses("{\"a\":9223372036854775808}", "invalid_reading", "/a", 0);
	refuses("{\"a\":-9223372036854775809}", "invalid_reading", "/a", 0);
	refuses("[{},{\"x\":[1,99999999999999999999]}]", "invalid_reading", "/1/x/1", 1);
	refuses("{\"a\":1e309}", "invalid_reading", "/a", 0);
	refuses("{\"a\":-1e309}", "invalid_reading", "/a", 0);
	refuses("{\"a\":1e-400}", "invalid_reading", "/a", 0);
	refuses("{\"a\":01}", "invalid_json", "", 0);
	refuses("{\"a\":1.}", "invalid_json", "/a", 0);
	refuses("{\"a\":.5}", "invalid_json", "/a", 0);
	refuses("{\"a\":-}", "invalid_json", "/a", 0);
	refuses("{\"a\":1e}", "invalid_json", "/a", 0);
	refuses("{\"a\":+1}", "invalid_json", "/a", 0);
	refuses("{\"a\":NaN}", "invalid_json", "/a", 0);
	/* a number that ends the body is read without going past it */
	assert_int_equal(parse_n("{\"a\":1.25", 9), -1);
	assert_string_equal(E.code, "invalid_json");
}

/* ---- sizes ---- */

static void
test_reading_size(void **state)
{
	/* {"a":"xxx…"} is 8 bytes plus the string */
	size_t fill = BW_TEL_MAX_READING_BYTES - 8;
	accepts(repeat("[{\"a\":\"", "x", fill, "\"}]"), 1);
	refuses(repeat("[{},{\"a\":\"", "x", fill + 1, "\"}]"), "invalid_reading", "/1", 1);
	refuses(repeat("{\"a\":\"", "x", fill + 1, "\"}"), "invalid_reading", "", 0);
}

static void
test_batch_count(void **state)
{
	char *ok = repeat("[", "{},", BW_TEL_MAX_READINGS - 1, "{}]");
	accepts(ok, BW_TEL_MAX_READINGS);
	refuses(repeat("[", "{},", BW_TEL_MAX_READINGS, "{}]"), "payload_too_large", "/500", 500);
	/* the count is found before an error further on */
	refuses(repeat("[", "{},", BW_TEL_MAX_READINGS, "{\"$x\":1}]"), "payload_too_large", "/500",
	        500);
}

/* ---- msg_id ---- */

static void
test_msg_id(void **state)
{
	accepts(repeat("{\"msg_id\":\"", "m", BW_TEL_MAX_MSG_ID, "\"}"), 1);
	assert_int_equal(strlen(R[0].msg_id), BW_TEL_MAX_MSG_ID);
	/* characters, not bytes: 128 × "é" is 256 bytes */
	accepts(repeat("{\"msg_id\":\"", "\xc3\xa9", BW_TEL_MAX_MSG_ID, "\"}"), 1);
	refuses(repeat("{\"msg_id\":\"", "m", BW_TEL_MAX_MSG_ID + 1, "\"}"), "invalid_reading",
	        "/msg_id", 0);
	refuses("[{\"msg_id\":\"a\"},{\"msg_id\":\"\"}]", "invalid_reading", "/1/msg_id", 1);
	refuses("{\"msg_id\":7}", "invalid_reading", "/msg_id", 0);
	refuses("{\"msg_id\":null}", "invalid_reading", "/msg_id", 0);
	refuses("{\"msg_id\":[\"a\"]}", "invalid_reading", "/msg_id", 0);
	refuses("{\"msg_id\":\"a\\nb\"}", "invalid_reading", "/msg_id", 0);
	refuses("{\"msg_id\":\"a\\u0085\"}", "invalid_reading", "/msg_id", 0);
	/* escapes are decoded first */
	accepts("{\"msg_id\":\"\\u0041-1\"}", 1);
	assert_string_equal(R[0].msg_id, "A-1");
	/* the offset is where the refused value starts */
	assert_int_equal(parse("{\"msg_id\":7}"), -1);
	assert_int_equal(E.offset, 10);
	assert_int_equal(parse("[{},{\"ts\":{\"a\":1}}]"), -1);
	assert_string_equal(E.pointer, "/1/ts");
	assert_int_equal(E.offset, 10);
	/* only the reading's own msg_id counts */
	accepts("{\"x\":{\"msg_id\":5}}", 1);
	assert_null(R[0].msg_id);
}

static void
test_ts_member(void **state)
{
	accepts("{\"ts\":1700000000000}", 1);
	assert_true(R[0].has_ts && R[0].ts_ms == NOW);
	refuses("{\"ts\":1700000000000.5}", "invalid_reading", "/ts", 0);
	refuses("{\"ts\":1.7e12}", "invalid_reading", "/ts", 0);
	refuses("{\"ts\":\"1700000000000\"}", "invalid_reading", "/ts", 0);
	refuses("{\"ts\":\"yesterday\"}", "invalid_reading", "/ts", 0);
	refuses("{\"ts\":null}", "invalid_reading", "/ts", 0);
	refuses("[{},{},{\"ts\":{}}]", "invalid_reading", "/2/ts", 2);
	/* a ts deeper down is just data */
	accepts("{\"x\":{\"ts\":\"whenever\"}}", 1);
	assert_false(R[0].has_ts);
}

static void
test_skew_window(void **state)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"ts\":%lld}", (long long)(NOW - PAST));
	accepts(body, 1);
	snprintf(body, sizeof(body), "{\"ts\":%lld}", (long long)(NOW + FUTURE));
	accepts(body, 1);
	snprintf(body, sizeof(body), "[{},{\"ts\":%lld}]", (long long)(NOW - PAST - 1));
	refuses(body, "clock_skew", "/1/ts", 1);
	assert_non_null(strstr(E.detail, "before"));
	snprintf(body, sizeof(body), "{\"ts\":%lld}", (long long)(NOW + FUTURE + 1));
	refuses(body, "clock_skew", "/ts", 0);
	assert_non_null(strstr(E.detail, "after"));
	refuses("{\"ts\":\"2023-11-14T22:18:20.001Z\"}", "clock_skew", "/ts", 0);
	refuses("{\"ts\":\"2023-11-07T22:13:19.999Z\"}", "clock_skew", "/ts", 0);
	accepts("{\"ts\":\"2023-11-07T22:13:20Z\"}", 1);
	refuses("{\"ts\":-9223372036854775808}", "clock_skew", "/ts", 0);
	refuses("{\"ts\":0}", "clock_skew", "/ts", 0);
}

/* ---- the JSON writer ---- */

static const char *
rewrite(const char *body)
{
	struct bw_buf b;

	accepts(body, 1);
	bw_buf_init(&b, A);
	bw_tel_json_object(&b, R[0].data);
	return bw_buf_cstr(&b);
}

static void
test_json_round_trip(void **state)
{
	assert_string_equal(rewrite("{\"a\":1.0,\"b\":-0.0,\"c\":0.1,\"d\":1e300,\"e\":100}"),
	                    "{\"a\":1.0,\"b\":-0.0,\"c\":0.1,\"d\":1e+300,\"e\":100}");
	assert_string_equal(rewrite("{\"big\":9007199254740993,\"s\":\"\\u0000\\\"\\u001f\"}"),
	                    "{\"big\":9007199254740993,\"s\":\"\\u0000\\\"\\u001f\"}");
	assert_string_equal(rewrite(" { \"x\" : [ { } , [ ] , true , null ] } "),
	                    "{\"x\":[{},[],true,null]}");
	assert_string_equal(rewrite("{\"d\":0.30000000000000004}"), "{\"d\":0.30000000000000004}");
	/* and the rewritten text parses to the same BSON */
	const char *src = "{\"k\":[1,2.5,\"\xc3\xa9\",{\"n\":-9223372036854775808}],\"t\":false}";
	bson_t *first = bson_copy(R[0].data);
	accepts(src, 1);
	bson_destroy(first);
	first = bson_copy(R[0].data);
	struct bw_buf b;
	bw_buf_init(&b, A);
	bw_tel_json_object(&b, first);
	accepts(bw_buf_cstr(&b), 1);
	assert_true(bson_equal(first, R[0].data));
	bson_destroy(first);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_single_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_top_level, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forbidden_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reading_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msg_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ts_member, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skew_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

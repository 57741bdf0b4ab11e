/* Unit tests of http/body.c: what a ledger route sees of a body. The types
 * of its members, the 400s (invalid_json; unknown_field with its pointer)
 * in the order a route reports them, and the rules beyond JSON: no "$"
 * names and no NUL in names anywhere, no member twice. */
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "core/arena.h"
#include "http/body.h"
#include "http/response.h"

static const char *const allowed[] = {"name", "amount", "memo", "flag", NULL};

static struct bw_request R;

static struct bw_body *
parse_n(const char *text, size_t len)
{
	memset(&R, 0, sizeof(R));
	R.arena = A;
	R.request_id = "rid";
	bw_buf_init(&R.headers, A);
	bw_buf_init(&R.body_out, A);
	R.body = text != NULL ? bw_arena_strndup(A, text, len) : NULL;
	R.body_len = len;
	return bw_body_parse(&R, allowed);
}

static struct bw_body *
parse(const char *text)
{
	return parse_n(text, strlen(text));
}

static struct bw_body *
accepted(const char *text)
{
	struct bw_body *b = parse(text);

	if (b == NULL)
		fail_msg("refused %s: %s", text, bw_buf_cstr(&R.body_out));
	assert_int_equal(R.status, 0); /* nothing answered yet */
	return b;
}

/* Refused with status 400 and code; the problem's body holds needle. */
static void
refused(const char *text, const char *code, const char *needle)
{
	if (parse(text) != NULL)
		fail_msg("accepted %s", text);
	assert_int_equal(R.status, 400);
	assert_string_equal(R.code, code);
	if (needle != NULL && strstr(bw_buf_cstr(&R.body_out), needle) == NULL)
		fail_msg("%s: \"%s\" lacks %s", text, bw_buf_cstr(&R.body_out), needle);
}

static void
test_types(void **state)
{
	struct bw_body *b = accepted(" {\"name\":\"caf\\u00e9\",\"amount\":42,\"memo\":null,"
	                             "\"flag\":true} ");
	struct bw_body_value v = bw_body_get(b, "name");

	assert_int_equal(v.type, BW_BODY_STRING);
	assert_string_equal(v.str, "caf\xc3\xa9");
	assert_int_equal(v.len, 5);
	v = bw_body_get(b, "amount");
	assert_int_equal(v.type, BW_BODY_INTEGER);
	assert_int_equal(v.integer, 42);
	assert_int_equal(bw_body_get(b, "memo").type, BW_BODY_NULL);
	v = bw_body_get(b, "flag");
	assert_int_equal(v.type, BW_BODY_BOOL);
	assert_true(v.boolean);
	assert_int_equal(bw_body_get(b, "nothing").type, BW_BODY_ABSENT);
	assert_int_equal(bw_body_get(accepted("{}"), "name").type, BW_BODY_ABSENT);
}

static void
test_other_values(void **state)
{
	/* a fraction or an exponent is not an integer, even when whole */
	assert_int_equal(bw_body_get(accepted("{\"amount\":1.0}"), "amount").type, BW_BODY_OTHER);
	assert_int_equal(bw_body_get(accepted("{\"amount\":1e3}"), "amount").type, BW_BODY_OTHER);
	assert_int_equal(bw_body_get(accepted("{\"amount\":1e-400}"), "amount").type,
	                 BW_BODY_OTHER);
	assert_int_equal(bw_body_get(accepted("{\"amount\":[1]}"), "amount").type, BW_BODY_OTHER);
	/* what MongoDB's extended JSON would call a number is an object here */
	assert_int_equal(bw_body_get(accepted("{\"amount\":{\"n\":5}}"), "amount").type,
	                 BW_BODY_OTHER);
	/* a string holding NUL is no string a route can use */
	assert_int_equal(bw_body_get(accepted("{\"name\":\"a\\u0000b\"}"), "name").type,
	                 BW_BODY_OTHER);
	/* the int64 range exactly */
	struct bw_body_value v =
	    bw_body_get(accepted("{\"amount\":-9223372036854775808}"), "amount");
	assert_int_equal(v.type, BW_BODY_INTEGER);
	assert_true(v.integer == INT64_MIN);
	v = bw_body_get(accepted("{\"amount\":9223372036854775807}"), "amount");
	assert_true(v.integer == INT64_MAX);
	/* duplicates inside a value are the value's business */
	assert_int_equal(bw_body_get(accepted("{\"memo\":{\"a\":1,\"a\":2}}"), "memo").type,
	                 BW_BODY_OTHER);
}

static void
test_not_an_object(void **state)
{
	refused("", "invalid_json", "must be a JSON object");
	refused("  \n", "invalid_json", "must be a JSON object");
	refused("[{\"name\":\"n\"}]", "invalid_json", "must be a JSON object");
	refused("\"name\"", "invalid_json", "must be a JSON object");
	refused("null", "invalid_json", "must be a JSON object");
	assert_null(parse_n(NULL, 0));
	assert_string_equal(R.code, "invalid_json");
}

static void
test_not_json(void **state)
{
	refused("{\"name\":\"n\"", "invalid_json", "not valid JSON");
	refused("{\"amount\":1,}", "invalid_json", "not valid JSON");
	refused("{\"amount\":01}", "invalid_json", "not valid JSON");
	refused("{\"amount\":NaN}", "invalid_json", "not valid JSON");
	refused("{\"name\":\"\xc3\x28\"}", "invalid_json", "not valid JSON");
	refused("{\"name\":\"\\ud800\"}", "invalid_json", "not valid JSON");
	refused("{\"amount\":1} {}", "invalid_json", "not valid JSON");
	/* numbers no int64 or double holds */
	refused("{\"amount\":9223372036854775808}", "invalid_json", "not acceptable JSON");
	refused("{\"amount\":-9223372036854775809}", "invalid_json", "not acceptable JSON");
	refused("{\"amount\":1e400}", "invalid_json", "not acceptable JSON");
}

static void
test_names(void **state)
{
	/* "$" names and NUL in names, at any depth, before anything else */
	refused("{\"$x\":1}", "invalid_json", "may not start with $");
	refused("{\"amount\":{\"$numberLong\":\"5\"}}", "invalid_json", "may not start with $");
	refused("{\"bogus\":1,\"memo\":[{\"$x\":1}]}", "invalid_json", "may not start with $");
	refused("{\"na\\u0000me\":\"x\"}", "invalid_json", "may not hold NUL");
	/* "$" elsewhere in a name, or in a value, is fine */
	assert_int_equal(bw_body_get(accepted("{\"memo\":{\"x$\":\"$1\"}}"), "memo").type,
	                 BW_BODY_OTHER);
	assert_string_equal(bw_body_get(accepted("{\"name\":\"$5\"}"), "name").str, "$5");
}

static void
test_unknown_and_repeated(void **state)
{
	refused("{\"name\":\"n\",\"balance\":1}", "unknown_field", "\"pointer\":\"/balance\"");
	assert_non_null(strstr(bw_buf_cstr(&R.body_out), "unknown member \\\"balance\\\""));
	refused("{\"\":1}", "unknown_field", "\"pointer\":\"/\"");
	/* RFC 6901: "~" is written ~0 and "/" is written ~1 */
	refused("{\"a/b~c\":1}", "unknown_field", "\"pointer\":\"/a~1b~0c\"");
	refused("{\"name\":\"n\",\"name\":\"m\"}", "invalid_json",
	        "member \\\"name\\\" appears twice");
	/* the first problem in the order written is the one named */
	refused("{\"bogus\":1,\"amount\":1,\"amount\":2}", "unknown_field", "/bogus");
	refused("{\"amount\":1,\"amount\":2,\"bogus\":1}", "invalid_json", "appears twice");
	refused("{\"name\":\"n\",\"memo\":null,\"flag\":false,\"amount\":1,\"memo\":\"m\"}",
	        "invalid_json", "member \\\"memo\\\" appears twice");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_an_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_and_repeated, setup, teardown),
	};

	return cmocka_run_group_tests_name("body", tests, NULL, NULL);
}

/* Unit tests of core/json.c (the strict reader) and core/json_tree.c (its
 * tree sink): what is accepted and how it reads back, what is refused
 * with which code, pointer and offset, the events a sink sees in order,
 * a sink's refusals, and reading one value inside a larger text. */
#include <stdio.h>
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/json_tree.h"

static struct bw_json_error E;

/* ---- the tree, written back as compact JSON ---- */

static void
put(struct bw_buf *b, const struct bw_json_node *n)
{
	switch (n->type) {
	case BW_JSON_NULL:
		bw_buf_puts(b, "null");
		break;
	case BW_JSON_BOOL:
		bw_buf_puts(b, n->boolean ? "true" : "false");
		break;
	case BW_JSON_INTEGER:
		bw_buf_printf(b, "%lld", (long long)n->integer);
		break;
	case BW_JSON_REAL:
		bw_buf_printf(b, "%gr", n->real); /* r: read as a real */
		break;
	case BW_JSON_STRING:
		bw_json_strn(b, n->str, n->len);
		break;
	case BW_JSON_ARRAY:
	case BW_JSON_OBJECT:
		bw_buf_putc(b, n->type == BW_JSON_ARRAY ? '[' : '{');
		for (const struct bw_json_node *c = n->child; c != NULL; c = c->next) {
			if (c != n->child)
				bw_buf_putc(b, ',');
			if (n->type == BW_JSON_OBJECT) {
				bw_json_strn(b, c->name, c->name_len);
				bw_buf_putc(b, ':');
			}
			put(b, c);
		}
		bw_buf_putc(b, n->type == BW_JSON_ARRAY ? ']' : '}');
		break;
	}
}

static const struct bw_json_node *
tree(const char *text, size_t len, int depth, bool unique)
{
	return bw_json_tree(A, text, len, depth, unique, &E);
}

/* text reads as want (compact, reals marked r). */
static void
reads(const char *text, const char *want)
{
	const struct bw_json_node *t = tree(text, strlen(text), 32, true);
	struct bw_buf b;

	if (t == NULL)
		fail_msg("refused %s: %s at \"%s\" (offset %zu)", text, E.detail, E.pointer,
		         E.offset);
	bw_buf_init(&b, A);
	put(&b, t);
	assert_string_equal(bw_buf_cstr(&b), want);
}

/* text is refused with code, at pointer and offset. */
static void
refuses(const char *text, enum bw_json_code code, const char *pointer, size_t offset)
{
	if (tree(text, strlen(text), 32, true) != NULL)
		fail_msg("accepted %s", text);
	if (E.code != code || strcmp(E.pointer, pointer) != 0 || E.offset != offset)
		fail_msg("%s: got code %d at \"%s\" offset %zu (%s), want %d at \"%s\" offset %zu",
		         text, E.code, E.pointer, E.offset, E.detail, code, pointer, offset);
	assert_true(E.detail[0] != '\0');
}

/* ---- accepted ---- */

static void
test_values(void **state)
{
	reads("{}", "{}");
	reads(" [ ] ", "[]");
	reads("\t\r\n{\"a\" : [ 1 , -2 , 0 , -0 ] }\n", "{\"a\":[1,-2,0,0]}");
	reads("[true,false,null]", "[true,false,null]");
	reads("\"top\"", "\"top\"");
	reads("42", "42");
	reads("[9223372036854775807,-9223372036854775808]",
	      "[9223372036854775807,-9223372036854775808]");
	reads("[1.5,1e2,1E-2,-0.0,2.5e+3]", "[1.5r,100r,0.01r,-0r,2500r]");
	/* too small for a double reads as 0: refusing that is a sink's choice */
	reads("[1e-400]", "[0r]");
	reads("{\"a\":{\"b\":{\"c\":[[],{}]}},\"d\":\"\"}",
	      "{\"a\":{\"b\":{\"c\":[[],{}]}},\"d\":\"\"}");
}

static void
test_strings(void **state)
{
	const struct bw_json_node *t;

	reads("[\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"]",
	      "[\"\xc3\xa9\xf0\x9f\x98\x80\\n\\\"\\\\/\\u0008\\u000c\\r\\t\"]");
	reads("[\"caf\xc3\xa9\"]", "[\"caf\xc3\xa9\"]");
	/* NUL is a character like any other: len says how long */
	const char *nul = "{\"a\\u0000b\":\"x\\u0000y\"}";
	t = tree(nul, strlen(nul), 32, true);
	assert_non_null(t);
	assert_int_equal(t->child->name_len, 3);
	assert_memory_equal(t->child->name, "a\0b", 4);
	assert_int_equal(t->child->len, 3);
	assert_memory_equal(t->child->str, "x\0y", 4);
	/* copies: NUL-terminated whether or not they held escapes */
	t = tree("{\"k\":\"plain\"}", 13, 32, true);
	assert_string_equal(t->child->name, "k");
	assert_string_equal(t->child->str, "plain");
}

static void
test_members(void **state)
{
	const struct bw_json_node *t = tree("{\"a\":1,\"b\":[2,3],\"c\":null}", 26, 32, true);

	assert_non_null(t);
	assert_int_equal(t->type, BW_JSON_OBJECT);
	assert_int_equal(t->len, 3);
	assert_int_equal(bw_json_member(t, "a")->integer, 1);
	assert_int_equal(bw_json_member(t, "b")->len, 2);
	assert_int_equal(bw_json_member(t, "b")->child->next->integer, 3);
	assert_int_equal(bw_json_member(t, "c")->type, BW_JSON_NULL);
	assert_null(bw_json_member(t, "d"));
	assert_null(bw_json_member(t, "")); /* names compare by length too */
	assert_null(bw_json_member(bw_json_member(t, "b"), "a"));
	/* without unique_keys a repeated name is kept; the first one is found */
	t = tree("{\"a\":1,\"a\":2}", 13, 32, false);
	assert_non_null(t);
	assert_int_equal(t->len, 2);
	assert_int_equal(bw_json_member(t, "a")->integer, 1);
}

/* ---- refused ---- */

static void
test_syntax(void **state)
{
	refuses("", BW_JSON_ESYNTAX, "", 0);
	refuses("   ", BW_JSON_ESYNTAX, "", 3);
	refuses("{", BW_JSON_ESYNTAX, "", 1);
	refuses("{\"a\":1,}", BW_JSON_ESYNTAX, "", 7);
	refuses("{\"a\" 1}", BW_JSON_ESYNTAX, "/a", 5);
	refuses("{\"a\":}", BW_JSON_ESYNTAX, "/a", 5);
	refuses("{a:1}", BW_JSON_ESYNTAX, "", 1);
	refuses("{'a':1}", BW_JSON_ESYNTAX, "", 1);
	refuses("[1,]", BW_JSON_ESYNTAX, "/1", 3);
	refuses("[1 2]", BW_JSON_ESYNTAX, "", 3);
	refuses("[{\"x\":[1,2,}]}]", BW_JSON_ESYNTAX, "/0/x/2", 11);
	refuses("{\"a\":1} x", BW_JSON_ESYNTAX, "", 8);
	refuses("{\"a\":1}{}", BW_JSON_ESYNTAX, "", 7);
	refuses("[tru]", BW_JSON_ESYNTAX, "/0", 1);
	refuses("[NaN]", BW_JSON_ESYNTAX, "/0", 1);
	refuses("[Infinity]", BW_JSON_ESYNTAX, "/0", 1);
	refuses("[1] /* c */", BW_JSON_ESYNTAX, "", 4);
	refuses("\xef\xbb\xbf{}", BW_JSON_ESYNTAX, "", 0); /* no byte order mark */
	refuses("[1]\f", BW_JSON_ESYNTAX, "", 3);          /* four whitespace bytes only */
}

static void
test_numbers(void **state)
{
	refuses("[01]", BW_JSON_ESYNTAX, "", 2);
	refuses("[1.]", BW_JSON_ESYNTAX, "/0", 3);
	refuses("[.5]", BW_JSON_ESYNTAX, "/0", 1);
	refuses("[-]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[+1]", BW_JSON_ESYNTAX, "/0", 1);
	refuses("[1e]", BW_JSON_ESYNTAX, "/0", 3);
	refuses("[1e+]", BW_JSON_ESYNTAX, "/0", 4);
	refuses("[0x10]", BW_JSON_ESYNTAX, "", 2);
	refuses("[9223372036854775808]", BW_JSON_ERANGE, "/0", 1);
	refuses("{\"n\":-9223372036854775809}", BW_JSON_ERANGE, "/n", 5);
	refuses("[0,99999999999999999999]", BW_JSON_ERANGE, "/1", 3);
	refuses("[1e309]", BW_JSON_ERANGE, "/0", 1);
	refuses("[-1e309]", BW_JSON_ERANGE, "/0", 1);
	/* a number that ends the text is read without going past it */
	assert_null(tree("[1.25", 5, 32, true));
	assert_int_equal(E.code, BW_JSON_ESYNTAX);
	assert_non_null(tree("1.25", 4, 32, true));
	assert_non_null(tree("7", 1, 32, true));
}

static void
test_strings_refused(void **state)
{
	refuses("[\"abc", BW_JSON_ESYNTAX, "/0", 5);
	refuses("[\"\\ud800\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"\\ud800\\u0041\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"\\udc00\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"\\u12\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"\\x\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"x\ty\"]", BW_JSON_ESYNTAX, "/0", 3);
	refuses("[\"\xc3\x28\"]", BW_JSON_ESYNTAX, "/0", 2);
	refuses("[\"\xc0\xaf\"]", BW_JSON_ESYNTAX, "/0", 2);     /* overlong */
	refuses("[\"\xed\xa0\x80\"]", BW_JSON_ESYNTAX, "/0", 2); /* surrogate */
	refuses("[\"\xf4\x90\x80\x80\"]", BW_JSON_ESYNTAX, "/0", 2);
	/* in a name: the pointer is the object's */
	refuses("{\"a\":{\"\\q\":1}}", BW_JSON_ESYNTAX, "/a", 7);
}

static void
test_pointers(void **state)
{
	/* RFC 6901: "~" is ~0, "/" is ~1 */
	refuses("{\"a/b\":{\"c~d\":[x]}}", BW_JSON_ESYNTAX, "/a~1b/c~0d/0", 15);
	refuses("{\"\":[0,1,x]}", BW_JSON_ESYNTAX, "//2", 9);
	/* a NUL in a name stays in the pointer: pointer_len */
	assert_null(tree("{\"a\\u0000b\":x}", 15, 32, true));
	assert_int_equal(E.pointer_len, 4);
	assert_memory_equal(E.pointer, "/a\0b", 4);
}

static void
test_depth(void **state)
{
	char deep[256];

	/* max_depth 3: the outermost value is level 1 */
	assert_non_null(tree("[[[1]]]", 7, 3, true));
	assert_non_null(tree("{\"a\":{\"b\":[]}}", 14, 3, true));
	assert_null(tree("[[[[1]]]]", 9, 3, true));
	assert_int_equal(E.code, BW_JSON_EDEPTH);
	assert_string_equal(E.pointer, "/0/0/0");
	assert_int_equal(E.offset, 3);
	assert_null(tree("{\"a\":{\"b\":[{}]}}", 16, 3, true));
	assert_int_equal(E.code, BW_JSON_EDEPTH);
	assert_string_equal(E.pointer, "/a/b/0");
	/* far deeper input is refused without recursing into it */
	memset(deep, '[', sizeof(deep));
	assert_null(tree(deep, sizeof(deep), 32, true));
	assert_int_equal(E.code, BW_JSON_EDEPTH);
	assert_int_equal(E.offset, 32);
}

static void
test_duplicates(void **state)
{
	char many[2048];
	int n = 0;

	refuses("{\"a\":1,\"b\":2,\"a\":3}", BW_JSON_EDUPLICATE, "/a", 13);
	refuses("[{},{\"x\":{\"k\":1,\"k\":1}}]", BW_JSON_EDUPLICATE, "/1/x/k", 16);
	/* the same name written two ways */
	refuses("{\"a\":1,\"\\u0061\":2}", BW_JSON_EDUPLICATE, "/a", 7);
	/* many names: found by sorting; the earliest repeat is named */
	n += snprintf(many + n, sizeof(many) - (size_t)n, "{");
	for (int i = 0; i < 100; i++)
		n += snprintf(many + n, sizeof(many) - (size_t)n, "\"k%d\":%d,", i, i);
	snprintf(many + n, sizeof(many) - (size_t)n, "\"k70\":0,\"k3\":0}");
	refuses(many, BW_JSON_EDUPLICATE, "/k70", (size_t)n);
	/* the same name in sibling objects is no repeat */
	reads("{\"a\":{\"k\":1},\"b\":{\"k\":1},\"c\":[{\"k\":1},{\"k\":2}]}",
	      "{\"a\":{\"k\":1},\"b\":{\"k\":1},\"c\":[{\"k\":1},{\"k\":2}]}");
}

/* ---- a sink's view ---- */

struct rec {
	struct bw_buf log;
	struct bw_json_error *err;
	const char *refuse_key; /* refuse this name */
	bool refuse_end;        /* refuse the end of the first object */
	bool nomem;             /* answer ENOMEM to a null */
};

static int
r_obegin(void *ctx)
{
	bw_buf_puts(&((struct rec *)ctx)->log, "{ ");
	return 0;
}

static int
r_oend(void *ctx)
{
	struct rec *r = ctx;

	bw_buf_puts(&r->log, "} ");
	return r->refuse_end ? bw_json_refuse(r->err, "no end") : 0;
}

static int
r_abegin(void *ctx)
{
	bw_buf_puts(&((struct rec *)ctx)->log, "[ ");
	return 0;
}

static int
r_aend(void *ctx)
{
	bw_buf_puts(&((struct rec *)ctx)->log, "] ");
	return 0;
}

static int
r_key(void *ctx, const char *s, size_t len)
{
	struct rec *r = ctx;

	bw_buf_printf(&r->log, "k:%.*s ", (int)len, s);
	if (r->refuse_key != NULL && strlen(r->refuse_key) == len &&
	    memcmp(r->refuse_key, s, len) == 0)
		return bw_json_refuse(r->err, "no %s here", r->refuse_key);
	return 0;
}

static int
r_string(void *ctx, const char *s, size_t len)
{
	bw_buf_printf(&((struct rec *)ctx)->log, "s:%.*s ", (int)len, s);
	return 0;
}

static int
r_integer(void *ctx, int64_t v)
{
	bw_buf_printf(&((struct rec *)ctx)->log, "i:%lld ", (long long)v);
	return 0;
}

static int
r_real(void *ctx, double v, const char *text, size_t len)
{
	bw_buf_printf(&((struct rec *)ctx)->log, "r:%g(%.*s) ", v, (int)len, text);
	return 0;
}

static int
r_boolean(void *ctx, bool v)
{
	bw_buf_printf(&((struct rec *)ctx)->log, "b:%d ", v);
	return 0;
}

static int
r_null(void *ctx)
{
	struct rec *r = ctx;

	bw_buf_puts(&r->log, "n ");
	return r->nomem ? BW_JSON_ENOMEM : 0;
}

static const struct bw_json_sink recorder = {
    .object_begin = r_obegin,
    .object_end = r_oend,
    .array_begin = r_abegin,
    .array_end = r_aend,
    .key = r_key,
    .string = r_string,
    .integer = r_integer,
    .real = r_real,
    .boolean = r_boolean,
    .null = r_null,
};

static int
record(struct rec *r, const char *text)
{
	struct bw_json_reader rd = {
	    .arena = A, .sink = &recorder, .ctx = r, .max_depth = 8, .unique_keys = true};

	bw_buf_init(&r->log, A);
	r->err = &E;
	return bw_json_read(&rd, text, strlen(text), &E);
}

static void
test_events_in_order(void **state)
{
	struct rec r = {0};

	assert_int_equal(record(&r, "{\"a\":[1,\"s\",1.50e1],\"b\":{},\"c\":[true,null]}"), 0);
	assert_string_equal(bw_buf_cstr(&r.log),
	                    "{ k:a [ i:1 s:s r:15(1.50e1) ] k:b { } k:c [ b:1 n ] } ");
	/* a NULL callback takes the event */
	struct bw_json_reader quiet = {
	    .arena = A, .sink = &(struct bw_json_sink){0}, .max_depth = 8};
	assert_int_equal(bw_json_read(&quiet, "[{\"a\":[1.5,\"x\",null]}]", 22, &E), 0);
}

static void
test_sink_refusals(void **state)
{
	struct rec r = {.refuse_key = "x"};

	/* a name: at the name, the pointer naming it, the sink's detail */
	assert_int_equal(record(&r, "{\"a\":{\"b\":1, \"x\":2}}"), -1);
	assert_int_equal(E.code, BW_JSON_EREFUSED);
	assert_string_equal(E.pointer, "/a/x");
	assert_int_equal(E.offset, 13);
	assert_string_equal(E.detail, "no x here");
	/* nothing after the refusal reaches the sink */
	assert_string_equal(bw_buf_cstr(&r.log), "{ k:a { k:b i:1 k:x ");
	/* an end: at the start of its container */
	r = (struct rec){.refuse_end = true};
	assert_int_equal(record(&r, "[0, {\"k\":[]} ]"), -1);
	assert_int_equal(E.code, BW_JSON_EREFUSED);
	assert_string_equal(E.pointer, "/1");
	assert_int_equal(E.offset, 4);
	assert_string_equal(E.detail, "no end");
	/* out of memory in a sink stops the read too */
	r = (struct rec){.nomem = true};
	assert_int_equal(record(&r, "{\"a\":[null]}"), -1);
	assert_int_equal(E.code, BW_JSON_ENOMEM);
	assert_string_equal(E.pointer, "/a/0");
}

static void
test_one_value_inside_a_text(void **state)
{
	const char *text = "[{\"a\":1} , {\"b\":[2,x]}]";
	struct rec r = {0};
	struct bw_json_reader rd = {.arena = A, .sink = &recorder, .ctx = &r, .max_depth = 8};
	size_t pos = 1;

	bw_buf_init(&r.log, A);
	r.err = &E;
	assert_int_equal(bw_json_read_value(&rd, text, strlen(text), &pos, &E), 0);
	assert_int_equal(pos, 8); /* just past the value */
	assert_string_equal(bw_buf_cstr(&r.log), "{ k:a i:1 } ");
	pos = 10; /* whitespace first is skipped */
	assert_int_equal(bw_json_read_value(&rd, text, strlen(text), &pos, &E), -1);
	/* the pointer counts from the value read, the offset from the text */
	assert_string_equal(E.pointer, "/b/1");
	assert_int_equal(E.offset, 19);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_members, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pointers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sink_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_value_inside_a_text, setup, teardown),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}

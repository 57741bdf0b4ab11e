/* Unit tests of workers/cli/sql_scan.c: statements and their ranges,
 * comments, strings, quoted identifiers, dollar quotes, line numbers
 * through multi-line tokens, unterminated tokens and directives. */
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "cli/sql_scan.h"
#include "core/arena.h"

static struct bw_sql_file
scan_ok(const char *sql)
{
	struct bw_sql_file f;
	char err[128];
	int line = -1;

	assert_int_equal(bw_sql_scan(A, sql, strlen(sql), &f, &line, err, sizeof(err)), 0);
	return f;
}

static char *
stmt_text(const struct bw_sql_file *f, const char *sql, size_t i)
{
	assert_true(i < f->nstmts);
	return bw_arena_strndup(A, sql + f->stmts[i].start, f->stmts[i].end - f->stmts[i].start);
}

static void
test_scan_statements_and_ranges(void **state)
{
	const char *sql = "SELECT 1;\n\n  SELECT\n 2 ;;\nSELECT 3";
	struct bw_sql_file f = scan_ok(sql);

	assert_int_equal(f.nstmts, 3);
	assert_string_equal(stmt_text(&f, sql, 0), "SELECT 1");
	assert_string_equal(stmt_text(&f, sql, 1), "SELECT\n 2");
	assert_string_equal(stmt_text(&f, sql, 2), "SELECT 3");
	assert_int_equal(f.stmts[0].line, 1);
	assert_int_equal(f.stmts[1].line, 3);
	assert_int_equal(f.stmts[2].line, 5);
	assert_int_equal(f.stmts[1].ntoks, 2);
	assert_int_equal(f.stmts[1].toks[1].line, 4);
	assert_false(f.no_transaction);
}

static void
test_scan_comments(void **state)
{
	const char *sql = "-- one; two\nSELECT 1; /* a; /* nested; */ still; */ SELECT 2; -- x;\n"
	                  "/* multi\nline\n*/ SELECT 3;";
	struct bw_sql_file f = scan_ok(sql);

	assert_int_equal(f.nstmts, 3);
	assert_int_equal(f.stmts[0].line, 2);
	assert_string_equal(stmt_text(&f, sql, 1), "SELECT 2");
	assert_int_equal(f.stmts[2].line, 5);
	assert_int_equal(f.ntoks, 9); /* SELECT 1 ; three times */
}

static void
test_scan_strings_and_identifiers(void **state)
{
	const char *sql = "SELECT 'a;b''c', E'x\\';y', \"we;ird\"\"id\", a$b FROM t;SELECT 2";
	struct bw_sql_file f = scan_ok(sql);

	assert_int_equal(f.nstmts, 2);
	const struct bw_sql_stmt *s = &f.stmts[0];
	assert_int_equal(s->toks[1].kind, BW_TOK_STRING);
	assert_int_equal(s->toks[1].len, strlen("'a;b''c'"));
	assert_int_equal(s->toks[3].kind, BW_TOK_STRING);
	assert_int_equal(s->toks[3].len, strlen("E'x\\';y'"));
	assert_int_equal(s->toks[5].kind, BW_TOK_QIDENT);
	assert_int_equal(s->toks[5].len, strlen("\"we;ird\"\"id\""));
	assert_int_equal(s->toks[7].kind, BW_TOK_WORD);
	assert_int_equal(s->toks[7].len, 3); /* a$b is one identifier */
	assert_true(bw_sql_is(&s->toks[8], "from"));
	assert_true(bw_sql_is(&s->toks[8], "FROM"));
}

static void
test_scan_dollar_quotes(void **state)
{
	const char *sql = "DO $$ BEGIN; PERFORM 1; END $$;\n"
	                  "CREATE FUNCTION f(int) RETURNS int AS $fn$ SELECT $1; $x$ ; $x$ $fn$\n"
	                  "LANGUAGE sql;\nSELECT $1, $2;";
	struct bw_sql_file f = scan_ok(sql);

	assert_int_equal(f.nstmts, 3);
	assert_int_equal(f.stmts[0].ntoks, 2);
	assert_int_equal(f.stmts[0].toks[1].kind, BW_TOK_STRING);
	assert_int_equal(f.stmts[1].line, 2);
	assert_int_equal(f.stmts[2].line, 4);
	assert_int_equal(f.stmts[2].toks[1].kind, BW_TOK_PARAM);
}

static void
test_scan_line_numbers_through_multiline_tokens(void **state)
{
	const char *sql = "SELECT 'a\nb\nc';\n"        /* lines 1-3 */
	                  "DO $body$\nx\ny\n$body$;\n" /* lines 4-7 */
	                  "SELECT \"q\nq\";\n"         /* lines 8-9 */
	                  "SELECT E'\\\n';\n"          /* lines 10-11 */
	                  "\n  LOCK TABLE t;";         /* line 13 */
	struct bw_sql_file f = scan_ok(sql);

	assert_int_equal(f.nstmts, 5);
	assert_int_equal(f.stmts[1].line, 4);
	assert_int_equal(f.stmts[2].line, 8);
	assert_int_equal(f.stmts[3].line, 10);
	assert_int_equal(f.stmts[4].line, 13);
	assert_int_equal(f.nlines, 13);
}

static void
test_scan_unterminated(void **state)
{
	static const struct {
		const char *sql, *why;
		int line;
	} cases[] = {
	    {"SELECT 1;\nSELECT 'abc;\n", "unterminated string", 2},
	    {"SELECT E'ab\\';", "unterminated string", 1},
	    {"\n\nSELECT \"abc", "unterminated quoted identifier", 3},
	    {"SELECT 1;\nDO $x$ BEGIN END $y$;", "unterminated dollar quote", 2},
	    {"SELECT 1; /* a /* b */\n", "unterminated /* comment", 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_sql_file f;
		char err[128];
		int line = 0;

		assert_int_equal(
		    bw_sql_scan(A, cases[i].sql, strlen(cases[i].sql), &f, &line, err, sizeof(err)),
		    -1);
		assert_string_equal(err, cases[i].why);
		assert_int_equal(line, cases[i].line);
	}
}

static void
test_scan_directives(void **state)
{
	const char *sql = "-- bulwark:no-transaction\n"
	                  "SELECT '-- bulwark:allow-drop';\n"
	                  "--bulwark:allow-drop: unused since 0.3\n"
	                  "/* -- bulwark:allow-set-not-null */ SELECT 1;\n"
	                  "-- BULWARK:ALLOW-SET-NOT-NULL\n";
	struct bw_sql_file f = scan_ok(sql);

	assert_true(f.no_transaction);
	assert_int_equal(f.line_dirs[1], BW_SQL_DIR_NO_TRANSACTION);
	assert_int_equal(f.line_dirs[2], 0);
	assert_int_equal(f.line_dirs[3], BW_SQL_DIR_ALLOW_DROP);
	assert_int_equal(f.line_dirs[4], 0);
	assert_int_equal(f.line_dirs[5], BW_SQL_DIR_ALLOW_SET_NOT_NULL);

	f = scan_ok("SELECT 1; -- not a bulwark:no-transaction marker\n");
	assert_false(f.no_transaction);
	f = scan_ok("SELECT 1;\n-- bulwark:allow_drop\n");
	assert_int_equal(f.line_dirs[2], BW_SQL_DIR_UNKNOWN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_scan_statements_and_ranges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_comments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_strings_and_identifiers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_dollar_quotes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_line_numbers_through_multiline_tokens, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_scan_unterminated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_directives, setup, teardown),
	};

	return cmocka_run_group_tests_name("sql_scan", tests, NULL, NULL);
}

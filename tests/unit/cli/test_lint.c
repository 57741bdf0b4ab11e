/* Unit tests of workers/cli/lint.c: every lint rule, each with a file it
 * must reject and one it must accept; what the scanner refuses or flags
 * as one problem on its line; the names migrate reads from a CREATE INDEX
 * CONCURRENTLY. (The scanner itself: test_sql_scan.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit.h"
#include "../arena_fixture.h"
#include "cli/lint.h"
#include "core/arena.h"

/* Lints sql; returns the problem count, the problems in *p. */
static int
lint(const char *sql, struct bw_lint_problem **p)
{
	struct bw_lint_problem *dummy;
	int n = bw_lint_sql(A, sql, strlen(sql), p != NULL ? p : &dummy);

	assert_true(n >= 0);
	return n;
}

/* Exactly one problem, on line, whose message holds needle. */
static void
rejects(const char *sql, int line, const char *needle)
{
	struct bw_lint_problem *p;
	int n = lint(sql, &p);

	if (n != 1)
		fail_msg("want 1 problem, got %d for: %s%s%s", n, sql, n > 0 ? " first: " : "",
		         n > 0 ? p[0].msg : "");
	assert_int_equal(p[0].line, line);
	if (strstr(p[0].msg, needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", p[0].msg, needle);
}

static void
accepts(const char *sql)
{
	struct bw_lint_problem *p;
	int n = lint(sql, &p);

	if (n != 0)
		fail_msg("want no problem, got %d (line %d: %s) for: %s", n, p[0].line, p[0].msg,
		         sql);
}

/* What the scanner refuses is one problem, on the line where it began. */
static void
test_scanner_errors_are_problems(void **state)
{
	rejects("SELECT 1;\nSELECT 'abc;\n", 2, "unterminated string");
	rejects("SELECT 1;\nDO $x$ BEGIN END $y$;", 2, "unterminated dollar quote");
	rejects("SELECT 1;\n-- bulwark:allow_drop\n", 2, "unknown directive");
	/* lines counted through multi-line tokens */
	rejects("SELECT 'a\nb';\nDO $body$\nx\n$body$;\n\n  LOCK TABLE t;", 7, "LOCK TABLE");
}

static void
test_concurrent_index_names(void **state)
{
	const char *sql =
	    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Idx\" ON ONLY public.t "
	    "USING btree (a);\nCREATE INDEX CONCURRENTLY ON t(a);\nCREATE INDEX i ON t "
	    "(a)";
	struct bw_sql_file f;
	char *index, *table, err[128];
	int line;

	assert_int_equal(bw_sql_scan(A, sql, strlen(sql), &f, &line, err, sizeof(err)), 0);
	assert_true(bw_sql_concurrent_index(A, &f.stmts[0], sql, &index, &table));
	assert_string_equal(index, "\"Idx\"");
	assert_string_equal(table, "public.t");
	assert_true(bw_sql_concurrent_index(A, &f.stmts[1], sql, &index, &table));
	assert_null(index);
	assert_string_equal(table, "t");
	assert_false(bw_sql_concurrent_index(A, &f.stmts[2], sql, &index, &table));
}

/* ---- rules */

static void
test_create_index(void **state)
{
	rejects("SELECT 1;\nCREATE INDEX t_a ON t (a);", 2, "without CONCURRENTLY");
	rejects("create unique index if not exists t_a on only public.t using btree (a)", 1,
	        "existing table t");
	accepts("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);");
	accepts("CREATE TABLE IF NOT EXISTS public.\"T\" (a int);\nCREATE INDEX ON \"T\" (a);");
	accepts("-- bulwark:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);");
	rejects("CREATE INDEX CONCURRENTLY t_a ON t (a);", 1, "no-transaction");
	rejects("DROP INDEX CONCURRENTLY t_a;", 1, "no-transaction");
	accepts("-- bulwark:no-transaction\nDROP INDEX CONCURRENTLY t_a;");
	rejects("REINDEX INDEX CONCURRENTLY t_a;", 1, "no-transaction");
}

static void
test_add_column_not_null(void **state)
{
	rejects("ALTER TABLE t ADD COLUMN c int NOT NULL;", 1,
	        "NOT NULL without a constant DEFAULT");
	rejects("ALTER TABLE t\n  ADD c int CONSTRAINT c_pos CHECK (c > 0) NOT NULL;", 2,
	        "ADD COLUMN c NOT NULL");
	accepts("ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;");
	accepts("ALTER TABLE t ADD COLUMN IF NOT EXISTS c text DEFAULT 'x' NOT NULL;");
	accepts("ALTER TABLE t ADD COLUMN c int;");
	accepts("ALTER TABLE t ADD COLUMN c int CHECK (c IS NOT NULL);");
	accepts("CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN c int NOT NULL;");
}

static void
test_add_column_volatile_default(void **state)
{
	static const char *const vol[] = {
	    "now()",
	    "clock_timestamp()",
	    "random()",
	    "gen_random_uuid()",
	    "nextval('s')",
	    "pg_catalog.now()",
	    "CURRENT_TIMESTAMP",
	    "(random() * 10)::int",
	    "uuid_generate_v4()",
	};

	for (size_t i = 0; i < sizeof(vol) / sizeof(vol[0]); i++) {
		char sql[200];
		snprintf(sql, sizeof(sql), "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT %s;",
		         vol[i]);
		rejects(sql, 1, "volatile default");
	}
	rejects("ALTER TABLE t ADD COLUMN id bigserial;", 1, "sequence");
	rejects("ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;", 1, "GENERATED");
	accepts("ALTER TABLE t ADD COLUMN s text[] NOT NULL DEFAULT '{}'::text[];");
	accepts("ALTER TABLE t ADD COLUMN r numeric(12,3) DEFAULT 1.5 NOT NULL;");
	accepts("ALTER TABLE t ADD COLUMN now_ok boolean DEFAULT false CHECK (now_ok OR true);");
	accepts("ALTER TABLE t ADD COLUMN c text DEFAULT 'now()';");
	accepts("CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN c timestamptz DEFAULT now();");
}

static void
test_add_constraint(void **state)
{
	rejects("ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES u(id);", 1,
	        "FOREIGN KEY without NOT VALID");
	rejects("ALTER TABLE t ADD CHECK (a > 0);", 1, "CHECK without NOT VALID");
	accepts("ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES u(id) NOT VALID;");
	accepts("ALTER TABLE t ADD CONSTRAINT t_a CHECK (a > 0) NOT VALID;\n"
	        "ALTER TABLE t VALIDATE CONSTRAINT t_a;");
	rejects("ALTER TABLE t ADD CONSTRAINT t_k UNIQUE (k);", 1, "USING INDEX");
	accepts("ALTER TABLE t ADD CONSTRAINT t_k UNIQUE USING INDEX t_k_idx;");
	accepts("CREATE TABLE t (a int);\nALTER TABLE t ADD CHECK (a > 0), ADD UNIQUE (a);");
	/* two actions, the second one bad: its own line */
	rejects("ALTER TABLE t\n ADD COLUMN c int,\n ADD CONSTRAINT x CHECK (c > 0);", 3, "CHECK");
}

static void
test_alter_column_type(void **state)
{
	rejects("ALTER TABLE t ALTER COLUMN c TYPE bigint;", 1, "ALTER COLUMN c TYPE");
	rejects("alter table only T alter C set data type text using C::text;", 1, "TYPE");
	accepts("ALTER TABLE t ALTER COLUMN c SET DEFAULT 0;");
	accepts("ALTER TABLE t ALTER COLUMN c DROP DEFAULT;");
	accepts("ALTER TABLE t ALTER CONSTRAINT type DEFERRABLE;");
	accepts("CREATE TEMP TABLE t (c int);\nALTER TABLE t ALTER COLUMN c TYPE bigint;");
}

static void
test_set_not_null(void **state)
{
	rejects("ALTER TABLE t ALTER COLUMN c SET NOT NULL;", 1, "SET NOT NULL");
	accepts("-- bulwark:allow-set-not-null\nALTER TABLE t ALTER COLUMN c SET NOT NULL;");
	accepts("ALTER TABLE t ADD CONSTRAINT c_nn CHECK (c IS NOT NULL) NOT VALID;\n"
	        "ALTER TABLE t VALIDATE CONSTRAINT c_nn;\n"
	        "ALTER TABLE t ALTER COLUMN c SET NOT NULL;");
	/* a VALIDATE on another table does not count, nor one after it */
	rejects("ALTER TABLE u VALIDATE CONSTRAINT x;\nALTER TABLE t ALTER c SET NOT NULL;", 2,
	        "SET NOT NULL");
	rejects("ALTER TABLE t ALTER c SET NOT NULL;\nALTER TABLE t VALIDATE CONSTRAINT x;", 1,
	        "SET NOT NULL");
	accepts("CREATE TABLE t (c int);\nALTER TABLE t ALTER COLUMN c SET NOT NULL;");
}

static void
test_drop_column(void **state)
{
	rejects("ALTER TABLE t DROP COLUMN c;", 1, "DROP COLUMN c");
	rejects("ALTER TABLE t\n  ADD COLUMN d int,\n  DROP IF EXISTS c;", 3, "allow-drop");
	accepts("-- bulwark:allow-drop\nALTER TABLE t DROP COLUMN c;");
	accepts("ALTER TABLE t DROP COLUMN c; -- bulwark:allow-drop");
	accepts("ALTER TABLE t DROP CONSTRAINT t_c;");
	rejects("-- bulwark:allow-drop\n\nALTER TABLE t DROP COLUMN c;", 3, "DROP COLUMN");
}

static void
test_drop_table(void **state)
{
	rejects("DROP TABLE t;", 1, "DROP TABLE");
	rejects("DROP TABLE IF EXISTS a, b CASCADE;", 1, "DROP TABLE");
	accepts("-- bulwark:allow-drop\nDROP TABLE t;");
	accepts("CREATE TABLE scratch (a int);\nDROP TABLE scratch;");
	rejects("-- bulwark:allow-drop\nSELECT 1;\nDROP TABLE t;", 3, "DROP TABLE");
	accepts("DROP INDEX t_a;");
	accepts("DROP POLICY p ON t;");
}

static void
test_vacuum_cluster_lock(void **state)
{
	rejects("VACUUM FULL t;", 1, "VACUUM FULL");
	rejects("vacuum (full, analyze) t;", 1, "VACUUM FULL");
	accepts("VACUUM ANALYZE t;");
	rejects("CLUSTER t USING t_pkey;", 1, "CLUSTER");
	rejects("LOCK TABLE t IN ACCESS EXCLUSIVE MODE;", 1, "LOCK TABLE");
	rejects("lock t;", 1, "LOCK TABLE");
}

static void
test_transaction_control(void **state)
{
	struct bw_lint_problem *p;

	assert_int_equal(lint("BEGIN;\nSELECT 1;\nCOMMIT;", &p), 2);
	assert_int_equal(p[0].line, 1);
	assert_int_equal(p[1].line, 3);
	assert_non_null(strstr(p[1].msg, "transaction"));
	rejects("START TRANSACTION;", 1, "transaction");
}

static void
test_words_in_strings_and_comments_are_not_sql(void **state)
{
	accepts("SELECT 'LOCK TABLE t; VACUUM FULL t'; -- ALTER TABLE t DROP COLUMN c;\n"
	        "/* CLUSTER t; */ COMMENT ON TABLE t IS 'DROP TABLE t';\n"
	        "DO $$ BEGIN ALTER TABLE t ALTER COLUMN c TYPE bigint; END $$;\n");
	accepts("");
	accepts("-- only a comment\n");
}

/* Broken or cut-off statements are PostgreSQL's to reject, not lint's. */
static void
test_incomplete_statements(void **state)
{
	accepts("CREATE TABLE;\nCREATE INDEX;\nCREATE INDEX i ON;\nALTER TABLE;\nALTER TABLE t;\n"
	        "ALTER TABLE t ADD;\nALTER TABLE t ALTER;\nDROP TABLE;\nDROP;\n;;\n");
}

static void
test_schema_files_pass(void **state)
{
	const char *srcdir = getenv("srcdir");
	char path[4096];
	FILE *fp;
	char *buf;
	size_t n;

	snprintf(path, sizeof(path), "%s/schema/001_tenants_api_keys.sql",
	         srcdir != NULL ? srcdir : ".");
	fp = fopen(path, "rb");
	if (fp == NULL)
		skip();
	buf = bw_arena_alloc(A, 1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	accepts(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_scanner_errors_are_problems, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_index_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_column_not_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_column_volatile_default, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_constraint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alter_column_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_not_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_column, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vacuum_cluster_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transaction_control, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_words_in_strings_and_comments_are_not_sql, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_incomplete_statements, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_files_pass, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

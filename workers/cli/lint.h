/* The migration linter: the rules that keep a migration from taking a
 * long or table-wide lock (see README, "Migrations"), on the statements
 * cli/sql_scan.h splits out. No database: `bulwark migrate lint` and
 * `make check` run it on files alone, and `migrate up` runs it before it
 * applies anything. */
#ifndef BW_LINT_H
#define BW_LINT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/sql_scan.h"

struct bw_arena;

struct bw_lint_problem {
	int line;
	const char *msg;
};

/* Lints one migration. Returns the number of problems (0 = clean) with
 * them in *out (arena), in line order, or -1 when out of memory. A file
 * the scanner rejects is one problem. */
int bw_lint_sql(struct bw_arena *a, const char *text, size_t len, struct bw_lint_problem **out);

/* What migrate needs to run a CREATE INDEX CONCURRENTLY: the index's name
 * (NULL when it has none) and its table, as written (quotes kept). Returns
 * false when stmt is not a CREATE INDEX CONCURRENTLY. */
bool bw_sql_concurrent_index(struct bw_arena *a, const struct bw_sql_stmt *stmt, const char *text,
                             char **index, char **table);

#endif

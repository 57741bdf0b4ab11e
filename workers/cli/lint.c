/* The migration linter's rules: on the statements cli/sql_scan.c splits
 * out, they look at the leading words of each, case-insensitively. It is a
 * guard against the common locking mistakes, not a parser: what it cannot
 * see (DO bodies, functions) it lets through. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/lint.h"
#include "core/arena.h"

struct lint {
	struct bw_arena *a;
	const struct bw_sql_file *f;
	struct bw_lint_problem *probs;
	size_t nprobs, probcap;
	const char **created; /* tables created earlier in this file: empty, exempt */
	size_t ncreated, createdcap;
	const char **validated; /* tables with a VALIDATE CONSTRAINT so far */
	size_t nvalidated, validatedcap;
	bool oom;
};

static void problem(struct lint *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
problem(struct lint *l, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = bw_arena_vprintf(l->a, fmt, ap);
	va_end(ap);
	struct bw_lint_problem *probs =
	    bw_arena_grow(l->a, l->probs, &l->probcap, l->nprobs, sizeof(*probs));
	if (msg == NULL || probs == NULL) {
		l->oom = true;
		return;
	}
	l->probs = probs;
	l->probs[l->nprobs++] = (struct bw_lint_problem){.line = line, .msg = msg};
}

static void
add_name(struct lint *l, const char ***set, size_t *n, size_t *cap, const char *name)
{
	if (name == NULL) /* nothing to remember; read_name flagged a real OOM */
		return;
	const char **grown = bw_arena_grow(l->a, *set, cap, *n, sizeof(*grown));
	if (grown == NULL) {
		l->oom = true;
		return;
	}
	*set = grown;
	(*set)[(*n)++] = name;
}

static bool
has_name(const char *const *set, size_t n, const char *name)
{
	for (size_t i = 0; name != NULL && i < n; i++)
		if (strcmp(set[i], name) == 0)
			return true;
	return false;
}

static bool
punct(const struct bw_sql_tok *t, char c)
{
	return t->kind == BW_TOK_PUNCT && t->s[0] == c;
}

static bool
is_ident(const struct bw_sql_tok *t)
{
	return t->kind == BW_TOK_WORD || t->kind == BW_TOK_QIDENT;
}

/* The words at s->toks[i…] are w[0], w[1], … (NULL-terminated list). */
static bool
words_at(const struct bw_sql_stmt *s, size_t i, const char *const *w)
{
	for (; *w != NULL; w++, i++)
		if (i >= s->ntoks || !bw_sql_is(&s->toks[i], *w))
			return false;
	return true;
}

#define AT(s, i, ...) words_at(s, i, (const char *const[]){__VA_ARGS__, NULL})

/* Reads a possibly qualified name at *i (a.b."C"), leaving *i after it.
 * Returns its last part as PostgreSQL folds it (plain words in lower
 * case, quoted ones as written): tables are compared by that alone. */
static const char *
read_name(struct lint *l, const struct bw_sql_stmt *s, size_t *i)
{
	const struct bw_sql_tok *last = NULL;
	char *name;

	while (*i < s->ntoks && is_ident(&s->toks[*i])) {
		last = &s->toks[(*i)++];
		if (*i + 1 < s->ntoks && punct(&s->toks[*i], '.') && is_ident(&s->toks[*i + 1]))
			(*i)++;
		else
			break;
	}
	if (last == NULL)
		return NULL;
	if (last->kind == BW_TOK_QIDENT) {
		name = bw_arena_strndup(l->a, last->s + 1, last->len - 2);
	} else {
		name = bw_arena_strndup(l->a, last->s, last->len);
		for (char *p = name; p != NULL && *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	if (name == NULL)
		l->oom = true;
	return name;
}

/* A directive on the line before the statement or on any line up to the
 * one of the token it excuses. */
static bool
allowed(const struct lint *l, const struct bw_sql_stmt *s, int upto, unsigned dir)
{
	for (int line = s->line - 1; line <= upto; line++)
		if (line >= 1 && line <= l->f->nlines && (l->f->line_dirs[line] & dir))
			return true;
	return false;
}

/* Next token index at paren/bracket depth 0 in [i, end) that is word w. */
static size_t
find_top(const struct bw_sql_stmt *s, size_t i, size_t end, const char *w)
{
	int depth = 0;

	for (; i < end; i++) {
		const struct bw_sql_tok *t = &s->toks[i];
		if (punct(t, '(') || punct(t, '['))
			depth++;
		else if ((punct(t, ')') || punct(t, ']')) && depth > 0)
			depth--;
		else if (depth == 0 && bw_sql_is(t, w))
			return i;
	}
	return end;
}

static bool
has_top_pair(const struct bw_sql_stmt *s, size_t i, size_t end, const char *w1, const char *w2)
{
	for (size_t k = find_top(s, i, end, w1); k < end; k = find_top(s, k + 1, end, w1))
		if (k + 1 < end && bw_sql_is(&s->toks[k + 1], w2))
			return true;
	return false;
}

/* Functions whose value differs per row or per call; the time functions
 * are stable in PostgreSQL but still give every existing row the time of
 * the migration, which is never what a column default means. */
static const char *const volatile_fns[] = {
    "now",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "nextval",
    "txid_current",
    "pg_current_xact_id",
    "currval",
};
static const char *const volatile_words[] = {
    "current_timestamp", "current_time", "current_date", "localtimestamp", "localtime",
};

/* The volatile function or keyword in s->toks[i, end), or NULL. */
static const char *
volatile_in(struct lint *l, const struct bw_sql_stmt *s, size_t i, size_t end)
{
	for (; i < end; i++) {
		const struct bw_sql_tok *t = &s->toks[i];
		if (t->kind != BW_TOK_WORD)
			continue;
		bool call = i + 1 < end && punct(&s->toks[i + 1], '(');
		for (size_t k = 0; call && k < sizeof(volatile_fns) / sizeof(volatile_fns[0]); k++)
			if (bw_sql_is(t, volatile_fns[k]))
				return bw_arena_printf(l->a, "%s()", volatile_fns[k]);
		for (size_t k = 0; k < sizeof(volatile_words) / sizeof(volatile_words[0]); k++)
			if (bw_sql_is(t, volatile_words[k]))
				return volatile_words[k];
	}
	return NULL;
}

/* ALTER TABLE … ADD [COLUMN] [IF NOT EXISTS] name type … in toks[i, end). */
static void
lint_add_column(struct lint *l, const struct bw_sql_stmt *s, size_t i, size_t end, int line)
{
	static const char *const serials[] = {"serial",  "bigserial", "smallserial",
	                                      "serial2", "serial4",   "serial8"};
	static const char *const col_words[] = {"not",        "null",      "constraint",
	                                        "check",      "unique",    "primary",
	                                        "references", "generated", "collate"};
	const char *col, *vol;
	size_t def, stop;

	if (i < end && bw_sql_is(&s->toks[i], "column"))
		i++;
	if (AT(s, i, "if", "not", "exists"))
		i += 3;
	col = i < end && is_ident(&s->toks[i]) ? read_name(l, s, &i) : NULL;
	if (col == NULL)
		return;
	for (size_t k = 0; i < end && k < sizeof(serials) / sizeof(serials[0]); k++)
		if (bw_sql_is(&s->toks[i], serials[k])) {
			problem(
			    l, line,
			    "ADD COLUMN %s %s fills every row from a sequence (table rewrite under "
			    "an ACCESS EXCLUSIVE lock); add it without a default, backfill, then "
			    "SET DEFAULT",
			    col, serials[k]);
			return;
		}
	if (find_top(s, i, end, "generated") < end) {
		problem(l, line,
		        "ADD COLUMN %s GENERATED computes every row (table rewrite under an ACCESS "
		        "EXCLUSIVE lock)",
		        col);
		return;
	}
	def = find_top(s, i, end, "default");
	if (def < end) {
		/* The default's expression runs to the next column constraint. */
		stop = end;
		for (size_t k = 0; k < sizeof(col_words) / sizeof(col_words[0]); k++) {
			size_t w = find_top(s, def + 1, end, col_words[k]);
			if (w < stop)
				stop = w;
		}
		vol = volatile_in(l, s, def + 1, stop);
		if (vol != NULL)
			problem(
			    l, line,
			    "ADD COLUMN %s with the volatile default %s (rewrites or back-dates "
			    "every row); add it without a default, backfill in batches, then SET "
			    "DEFAULT",
			    col, vol);
		return;
	}
	if (has_top_pair(s, i, end, "not", "null"))
		problem(l, line,
		        "ADD COLUMN %s NOT NULL without a constant DEFAULT fails on a non-empty "
		        "table; give it a constant DEFAULT, or add it NULL, backfill, then SET NOT "
		        "NULL through a validated CHECK",
		        col);
}

/* ALTER TABLE … ADD [CONSTRAINT name] … in toks[i, end) (after ADD). */
static void
lint_add_constraint(struct lint *l, const struct bw_sql_stmt *s, size_t i, size_t end, int line)
{
	if (bw_sql_is(&s->toks[i], "constraint"))
		i += 2;
	if (i >= end)
		return;
	if (bw_sql_is(&s->toks[i], "foreign") || bw_sql_is(&s->toks[i], "check")) {
		if (!has_top_pair(s, i, end, "not", "valid"))
			problem(
			    l, line,
			    "ADD CONSTRAINT … %s without NOT VALID checks every row under a lock "
			    "that blocks writes; add it NOT VALID, then VALIDATE CONSTRAINT",
			    bw_sql_is(&s->toks[i], "check") ? "CHECK" : "FOREIGN KEY");
	} else if (bw_sql_is(&s->toks[i], "unique") || bw_sql_is(&s->toks[i], "primary")) {
		if (!has_top_pair(s, i, end, "using", "index"))
			problem(
			    l, line,
			    "ADD CONSTRAINT … %s builds its index under an ACCESS EXCLUSIVE lock; "
			    "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … USING "
			    "INDEX",
			    bw_sql_is(&s->toks[i], "unique") ? "UNIQUE" : "PRIMARY KEY");
	}
}

/* ALTER TABLE … ALTER [COLUMN] name … in toks[i, end) (after ALTER). */
static void
lint_alter_column(struct lint *l, const struct bw_sql_stmt *s, const char *table, size_t i,
                  size_t end, int line)
{
	const char *col;

	if (i < end && bw_sql_is(&s->toks[i], "constraint"))
		return;
	if (i < end && bw_sql_is(&s->toks[i], "column"))
		i++;
	col = i < end ? read_name(l, s, &i) : NULL;
	if (col == NULL || i >= end)
		return;
	if (AT(s, i, "type") || AT(s, i, "set", "data", "type"))
		problem(l, line,
		        "ALTER COLUMN %s TYPE rewrites the table (or checks every row) under an "
		        "ACCESS EXCLUSIVE lock; add a new column, backfill it, switch the code",
		        col);
	else if (AT(s, i, "set", "not", "null") && !has_name(l->validated, l->nvalidated, table) &&
	         !allowed(l, s, s->toks[i].line, BW_SQL_DIR_ALLOW_SET_NOT_NULL))
		problem(
		    l, line,
		    "ALTER COLUMN %s SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; "
		    "ADD CONSTRAINT … CHECK (%s IS NOT NULL) NOT VALID and VALIDATE CONSTRAINT it "
		    "earlier in this file, or mark it -- bulwark:allow-set-not-null",
		    col, col);
}

static void
lint_alter_table(struct lint *l, const struct bw_sql_stmt *s)
{
	size_t i = 2, b;
	const char *table;
	bool fresh;

	if (AT(s, i, "if", "exists"))
		i += 2;
	if (AT(s, i, "only"))
		i++;
	table = read_name(l, s, &i);
	if (table == NULL)
		return;
	if (i < s->ntoks && punct(&s->toks[i], '*'))
		i++;
	fresh = has_name(l->created, l->ncreated, table);
	/* Actions are separated by commas at depth 0. */
	for (b = i; b < s->ntoks;) {
		size_t e = b;
		int depth = 0;
		for (; e < s->ntoks; e++) {
			const struct bw_sql_tok *t = &s->toks[e];
			if (punct(t, '(') || punct(t, '['))
				depth++;
			else if ((punct(t, ')') || punct(t, ']')) && depth > 0)
				depth--;
			else if (depth == 0 && punct(t, ','))
				break;
		}
		const struct bw_sql_tok *a = &s->toks[b];
		if (bw_sql_is(a, "validate")) {
			add_name(l, &l->validated, &l->nvalidated, &l->validatedcap, table);
		} else if (fresh || e - b < 2) {
			/* a table created in this file is empty: nothing to lock out */
		} else if (bw_sql_is(a, "add")) {
			static const char *const cons[] = {"constraint", "foreign", "check",
			                                   "unique",     "primary", "exclude"};
			bool is_cons = false;
			for (size_t k = 0; k < sizeof(cons) / sizeof(cons[0]); k++)
				is_cons |= bw_sql_is(&s->toks[b + 1], cons[k]);
			if (is_cons)
				lint_add_constraint(l, s, b + 1, e, a->line);
			else
				lint_add_column(l, s, b + 1, e, a->line);
		} else if (bw_sql_is(a, "alter")) {
			lint_alter_column(l, s, table, b + 1, e, a->line);
		} else if (bw_sql_is(a, "drop") && !bw_sql_is(&s->toks[b + 1], "constraint")) {
			size_t k = b + 1;
			if (bw_sql_is(&s->toks[k], "column"))
				k++;
			if (AT(s, k, "if", "exists"))
				k += 2;
			const char *col = k < e ? read_name(l, s, &k) : NULL;
			if (!allowed(l, s, a->line, BW_SQL_DIR_ALLOW_DROP))
				problem(
				    l, a->line,
				    "DROP COLUMN %s breaks the code still reading it; once no "
				    "deployed "
				    "code uses it, put -- bulwark:allow-drop on the line before",
				    col != NULL ? col : "");
		}
		b = e + 1;
	}
}

static void
lint_create(struct lint *l, const struct bw_sql_stmt *s)
{
	size_t i = 1, on;
	const char *table;
	bool conc = false;

	if (AT(s, i, "or", "replace"))
		i += 2;
	while (i < s->ntoks && (AT(s, i, "global") || AT(s, i, "local") || AT(s, i, "temp") ||
	                        AT(s, i, "temporary") || AT(s, i, "unlogged")))
		i++;
	if (AT(s, i, "table")) {
		i++;
		if (AT(s, i, "if", "not", "exists"))
			i += 3;
		add_name(l, &l->created, &l->ncreated, &l->createdcap, read_name(l, s, &i));
		return;
	}
	if (AT(s, i, "unique"))
		i++;
	if (!AT(s, i, "index"))
		return;
	i++;
	if (AT(s, i, "concurrently")) {
		conc = true;
		i++;
	}
	on = find_top(s, i, s->ntoks, "on");
	if (on >= s->ntoks)
		return;
	i = on + 1;
	if (AT(s, i, "only"))
		i++;
	table = read_name(l, s, &i);
	if (conc && !l->f->no_transaction)
		problem(
		    l, s->line,
		    "CREATE INDEX CONCURRENTLY cannot run inside a transaction: put it in a file "
		    "marked -- bulwark:no-transaction");
	else if (!conc && table != NULL && !has_name(l->created, l->ncreated, table))
		problem(
		    l, s->line,
		    "CREATE INDEX on the existing table %s without CONCURRENTLY blocks its writes "
		    "while it builds; use CREATE INDEX CONCURRENTLY in a file marked -- "
		    "bulwark:no-transaction",
		    table);
}

static void
lint_drop(struct lint *l, const struct bw_sql_stmt *s)
{
	size_t i = 2;
	bool all_fresh = true;

	if (AT(s, 1, "index")) {
		if (AT(s, 2, "concurrently") && !l->f->no_transaction)
			problem(
			    l, s->line,
			    "DROP INDEX CONCURRENTLY cannot run inside a transaction: put it in a "
			    "file marked -- bulwark:no-transaction");
		return;
	}
	if (!AT(s, 1, "table"))
		return;
	if (AT(s, i, "if", "exists"))
		i += 2;
	while (i < s->ntoks) {
		const char *t = read_name(l, s, &i);
		if (t == NULL || !has_name(l->created, l->ncreated, t))
			all_fresh = false;
		if (i < s->ntoks && punct(&s->toks[i], ','))
			i++;
		else
			break;
	}
	if (!all_fresh && !allowed(l, s, s->line, BW_SQL_DIR_ALLOW_DROP))
		problem(
		    l, s->line,
		    "DROP TABLE breaks the code still using it; once no deployed code does, put "
		    "-- bulwark:allow-drop on the line before");
}

static void
lint_stmt(struct lint *l, const struct bw_sql_stmt *s)
{
	static const char *const tx_words[] = {"begin",    "start", "commit",    "end",
	                                       "rollback", "abort", "savepoint", "release"};
	const struct bw_sql_tok *t0 = &s->toks[0];

	if (bw_sql_is(t0, "create")) {
		lint_create(l, s);
	} else if (AT(s, 0, "alter", "table")) {
		lint_alter_table(l, s);
	} else if (bw_sql_is(t0, "drop")) {
		lint_drop(l, s);
	} else if (bw_sql_is(t0, "vacuum")) {
		for (size_t i = 1; i < s->ntoks; i++)
			if (bw_sql_is(&s->toks[i], "full")) {
				problem(l, s->line,
				        "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE "
				        "lock; "
				        "not in a migration");
				break;
			}
	} else if (bw_sql_is(t0, "cluster")) {
		problem(l, s->line,
		        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock; not in a "
		        "migration");
	} else if (bw_sql_is(t0, "lock")) {
		problem(l, s->line,
		        "LOCK TABLE queues every reader behind it; not in a migration (migrate "
		        "sets lock_timeout and retries instead)");
	} else if (bw_sql_is(t0, "reindex")) {
		if (find_top(s, 1, s->ntoks, "concurrently") < s->ntoks && !l->f->no_transaction)
			problem(l, s->line,
			        "REINDEX CONCURRENTLY cannot run inside a transaction: put it in a "
			        "file "
			        "marked -- bulwark:no-transaction");
	} else {
		for (size_t k = 0; k < sizeof(tx_words) / sizeof(tx_words[0]); k++)
			if (bw_sql_is(t0, tx_words[k])) {
				problem(
				    l, s->line,
				    "%.*s: migrate runs each file in its own transaction (or none, "
				    "with -- bulwark:no-transaction); no transaction control in a "
				    "file",
				    (int)t0->len, t0->s);
				break;
			}
	}
}

int
bw_lint_sql(struct bw_arena *a, const char *text, size_t len, struct bw_lint_problem **out)
{
	struct bw_sql_file f;
	struct lint l = {.a = a, .f = &f};
	char err[128];
	int line;

	*out = NULL;
	if (bw_sql_scan(a, text, len, &f, &line, err, sizeof(err)) < 0) {
		if (line == 0)
			return -1;
		problem(&l, line, "%s", err);
		goto done;
	}
	for (int i = 1; i <= f.nlines; i++)
		if (f.line_dirs[i] & BW_SQL_DIR_UNKNOWN)
			problem(&l, i,
			        "unknown directive (known: -- bulwark:no-transaction, "
			        "-- bulwark:allow-drop, -- bulwark:allow-set-not-null)");
	for (size_t i = 0; i < f.nstmts; i++)
		lint_stmt(&l, &f.stmts[i]);
done:
	if (l.oom)
		return -1;
	*out = l.probs;
	return (int)l.nprobs;
}

bool
bw_sql_concurrent_index(struct bw_arena *a, const struct bw_sql_stmt *s, const char *text,
                        char **index, char **table)
{
	size_t i = 1, on, k;

	*index = *table = NULL;
	if (!AT(s, 0, "create"))
		return false;
	if (AT(s, i, "unique"))
		i++;
	if (!AT(s, i, "index", "concurrently"))
		return false;
	i += 2;
	if (AT(s, i, "if", "not", "exists"))
		i += 3;
	on = find_top(s, i, s->ntoks, "on");
	if (on >= s->ntoks)
		return false;
	if (on > i)
		*index =
		    bw_arena_strndup(a, text + s->toks[i].off,
		                     s->toks[on - 1].off + s->toks[on - 1].len - s->toks[i].off);
	k = on + 1;
	if (AT(s, k, "only"))
		k++;
	/* The table's name runs to the column list or USING. */
	size_t e = k;
	while (e < s->ntoks && (is_ident(&s->toks[e]) || punct(&s->toks[e], '.')) &&
	       !bw_sql_is(&s->toks[e], "using"))
		e++;
	if (e == k)
		return false;
	*table = bw_arena_strndup(a, text + s->toks[k].off,
	                          s->toks[e - 1].off + s->toks[e - 1].len - s->toks[k].off);
	return *table != NULL;
}

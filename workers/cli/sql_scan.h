/* The SQL scanner of `bulwark migrate`: tokens, statements and
 * `-- bulwark:` directives of a migration file, with the line of each.
 * No database: the linter (cli/lint.c) reads its statements, and
 * migrate (cli/migrate.c) applies them one by one. */
#ifndef BW_SQL_SCAN_H
#define BW_SQL_SCAN_H

#include <stdbool.h>
#include <stddef.h>

struct bw_arena;

enum bw_sql_tok_kind {
	BW_TOK_WORD,   /* keyword or plain identifier */
	BW_TOK_QIDENT, /* "quoted identifier" (s/len include the quotes) */
	BW_TOK_STRING, /* '…', E'…' or a dollar-quoted body (s/len include the quotes) */
	BW_TOK_NUMBER,
	BW_TOK_PARAM, /* $1 */
	BW_TOK_PUNCT, /* one character: ( ) [ ] , . ; : and operator characters */
};

struct bw_sql_tok {
	enum bw_sql_tok_kind kind;
	const char *s; /* into the scanned text */
	size_t len;
	size_t off; /* byte offset of s in the text */
	int line;   /* 1-based */
};

/* One statement: its tokens (without the ';') and its source range, from
 * its first token to the end of its last one. */
struct bw_sql_stmt {
	const struct bw_sql_tok *toks;
	size_t ntoks;
	size_t start, end;
	int line;
};

/* Directives: `-- bulwark:NAME` as the first word of a line comment. */
enum {
	BW_SQL_DIR_NO_TRANSACTION = 1 << 0,
	BW_SQL_DIR_ALLOW_DROP = 1 << 1,
	BW_SQL_DIR_ALLOW_SET_NOT_NULL = 1 << 2,
	BW_SQL_DIR_UNKNOWN = 1 << 3, /* bulwark:something-else, a typo */
};

struct bw_sql_file {
	struct bw_sql_tok *toks;
	size_t ntoks;
	struct bw_sql_stmt *stmts;
	size_t nstmts;
	unsigned *line_dirs; /* [line] = directives on that line; index 0 unused */
	int nlines;
	bool no_transaction; /* some line holds -- bulwark:no-transaction */
};

/* Splits text into tokens and statements, dropping comments. Returns 0, or
 * -1 with *err_line and err set for an unterminated string, quoted
 * identifier, dollar quote or block comment (or out of memory). */
int bw_sql_scan(struct bw_arena *a, const char *text, size_t len, struct bw_sql_file *out,
                int *err_line, char *err, size_t errlen);

/* True when tok is the word w (ASCII case-insensitive). */
bool bw_sql_is(const struct bw_sql_tok *tok, const char *w);

#endif

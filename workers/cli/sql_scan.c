/* The SQL scanner of the migration tools (sql_scan.h): it knows just enough
 * SQL to split a file the way PostgreSQL reads it: -- and nested block
 * comments, '…' and E'…' strings, "quoted identifiers", dollar quotes
 * ($$…$$, $tag$…$tag$), ';' between statements, and the line of every
 * token. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/sql_scan.h"
#include "core/arena.h"

static bool
ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
ident_char(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* "-- bulwark:NAME …": NAME is the comment's first word. */
static unsigned
directive(const char *s, size_t n)
{
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
	    {"no-transaction", BW_SQL_DIR_NO_TRANSACTION},
	    {"allow-drop", BW_SQL_DIR_ALLOW_DROP},
	    {"allow-set-not-null", BW_SQL_DIR_ALLOW_SET_NOT_NULL},
	};
	const char *pfx = "bulwark:";
	size_t i = 0, w;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (n - i < strlen(pfx) || strncasecmp(s + i, pfx, strlen(pfx)) != 0)
		return 0;
	i += strlen(pfx);
	for (w = i; w < n && s[w] != ' ' && s[w] != '\t' && s[w] != '\r' && s[w] != ':'; w++)
		;
	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
		if (w - i == strlen(known[k].name) && strncasecmp(s + i, known[k].name, w - i) == 0)
			return known[k].flag;
	return BW_SQL_DIR_UNKNOWN;
}

struct scan {
	struct bw_arena *a;
	const char *text;
	size_t len, i;
	int line;
	struct bw_sql_file *f;
	size_t tokcap;
};

static int
push_tok(struct scan *sc, enum bw_sql_tok_kind kind, size_t start, int line)
{
	struct bw_sql_file *f = sc->f;

	struct bw_sql_tok *toks =
	    bw_arena_grow(sc->a, f->toks, &sc->tokcap, f->ntoks, sizeof(*toks));
	if (toks == NULL)
		return -1;
	f->toks = toks;
	f->toks[f->ntoks++] = (struct bw_sql_tok){
	    .kind = kind, .s = sc->text + start, .len = sc->i - start, .off = start, .line = line};
	return 0;
}

/* Scans a '…' string from sc->i (at the quote); backslash escapes when
 * escapes is set (E'…'). Returns -1 when it does not end. */
static int
scan_quoted(struct scan *sc, char q, bool escapes)
{
	for (sc->i++; sc->i < sc->len; sc->i++) {
		char c = sc->text[sc->i];
		if (c == '\n')
			sc->line++;
		if (escapes && c == '\\' && sc->i + 1 < sc->len) {
			if (sc->text[++sc->i] == '\n')
				sc->line++;
		} else if (c == q) {
			if (sc->i + 1 < sc->len && sc->text[sc->i + 1] == q) {
				sc->i++; /* '' or "" */
				continue;
			}
			sc->i++;
			return 0;
		}
	}
	return -1;
}

/* At '$': a dollar quote ($$ or $tag$) scans to its closing tag and
 * returns 1; returns 0 when this '$' opens none, -1 when it never ends. */
static int
scan_dollar(struct scan *sc)
{
	size_t j = sc->i + 1, tlen;
	const char *tag, *end;

	if (j < sc->len && ident_start((unsigned char)sc->text[j]))
		while (j < sc->len && ident_char((unsigned char)sc->text[j]) && sc->text[j] != '$')
			j++;
	if (j >= sc->len || sc->text[j] != '$')
		return 0;
	tag = sc->text + sc->i;
	tlen = j + 1 - sc->i;
	end = memmem(sc->text + j + 1, sc->len - (j + 1), tag, tlen);
	if (end == NULL)
		return -1;
	for (const char *p = sc->text + sc->i; p < end; p++)
		if (*p == '\n')
			sc->line++;
	sc->i = (size_t)(end - sc->text) + tlen;
	return 1;
}

static int
scan_tokens(struct scan *sc, int *err_line, const char **why)
{
	const char *t = sc->text;

	while (sc->i < sc->len) {
		unsigned char c = (unsigned char)t[sc->i];
		unsigned char nx = sc->i + 1 < sc->len ? (unsigned char)t[sc->i + 1] : 0;
		size_t start = sc->i;
		int line = sc->line;

		if (c == '\n') {
			sc->line++;
			sc->i++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			sc->i++;
		} else if (c == '-' && nx == '-') {
			const char *eol = memchr(t + sc->i, '\n', sc->len - sc->i);
			size_t e = eol != NULL ? (size_t)(eol - t) : sc->len;
			sc->f->line_dirs[sc->line] |= directive(t + sc->i + 2, e - sc->i - 2);
			sc->i = e;
		} else if (c == '/' && nx == '*') {
			int depth = 1; /* PostgreSQL nests block comments */
			for (sc->i += 2; sc->i < sc->len && depth > 0;) {
				if (t[sc->i] == '\n')
					sc->line++;
				if (t[sc->i] == '/' && sc->i + 1 < sc->len && t[sc->i + 1] == '*') {
					depth++;
					sc->i += 2;
				} else if (t[sc->i] == '*' && sc->i + 1 < sc->len &&
				           t[sc->i + 1] == '/') {
					depth--;
					sc->i += 2;
				} else {
					sc->i++;
				}
			}
			if (depth > 0) {
				*err_line = line;
				*why = "unterminated /* comment";
				return -1;
			}
		} else if (c == '\'') {
			if (scan_quoted(sc, '\'', false) < 0) {
				*err_line = line;
				*why = "unterminated string";
				return -1;
			}
			if (push_tok(sc, BW_TOK_STRING, start, line) < 0)
				return -2;
		} else if (c == '"') {
			if (scan_quoted(sc, '"', false) < 0) {
				*err_line = line;
				*why = "unterminated quoted identifier";
				return -1;
			}
			if (push_tok(sc, BW_TOK_QIDENT, start, line) < 0)
				return -2;
		} else if (c == '$' && is_digit(nx)) {
			for (sc->i++; sc->i < sc->len && is_digit((unsigned char)t[sc->i]); sc->i++)
				;
			if (push_tok(sc, BW_TOK_PARAM, start, line) < 0)
				return -2;
		} else if (c == '$') {
			int r = scan_dollar(sc);
			if (r < 0) {
				*err_line = line;
				*why = "unterminated dollar quote";
				return -1;
			}
			if (r == 0)
				sc->i++;
			if (push_tok(sc, r > 0 ? BW_TOK_STRING : BW_TOK_PUNCT, start, line) < 0)
				return -2;
		} else if (ident_start(c)) {
			while (sc->i < sc->len && ident_char((unsigned char)t[sc->i]))
				sc->i++;
			/* E'…' is one string with backslash escapes. */
			if (sc->i - start == 1 && (c == 'E' || c == 'e') && sc->i < sc->len &&
			    t[sc->i] == '\'') {
				if (scan_quoted(sc, '\'', true) < 0) {
					*err_line = line;
					*why = "unterminated string";
					return -1;
				}
				if (push_tok(sc, BW_TOK_STRING, start, line) < 0)
					return -2;
				continue;
			}
			if (push_tok(sc, BW_TOK_WORD, start, line) < 0)
				return -2;
		} else if (is_digit(c) || (c == '.' && is_digit(nx))) {
			while (sc->i < sc->len) {
				unsigned char d = (unsigned char)t[sc->i];
				if ((d == '+' || d == '-') &&
				    (t[sc->i - 1] == 'e' || t[sc->i - 1] == 'E'))
					sc->i++;
				else if (is_digit(d) || d == '.' || ident_start(d))
					sc->i++;
				else
					break;
			}
			if (push_tok(sc, BW_TOK_NUMBER, start, line) < 0)
				return -2;
		} else {
			sc->i++;
			if (push_tok(sc, BW_TOK_PUNCT, start, line) < 0)
				return -2;
		}
	}
	return 0;
}

int
bw_sql_scan(struct bw_arena *a, const char *text, size_t len, struct bw_sql_file *out,
            int *err_line, char *err, size_t errlen)
{
	struct scan sc = {.a = a, .text = text, .len = len, .line = 1, .f = out};
	const char *why = "out of memory";
	size_t stmtcap = 0, first = 0;
	int lines = 1, rc;

	memset(out, 0, sizeof(*out));
	*err_line = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	out->nlines = lines;
	out->line_dirs = bw_arena_calloc(a, (size_t)lines + 1, sizeof(*out->line_dirs));
	if (out->line_dirs == NULL)
		goto fail;
	/* -1: bad SQL, *err_line says where it began; -2: out of memory. */
	rc = scan_tokens(&sc, err_line, &why);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i <= out->ntoks; i++) {
		bool semi =
		    i < out->ntoks && out->toks[i].kind == BW_TOK_PUNCT && out->toks[i].s[0] == ';';
		if (i < out->ntoks && !semi)
			continue;
		if (i > first) {
			const struct bw_sql_tok *f = &out->toks[first], *l = &out->toks[i - 1];
			struct bw_sql_stmt *stmts =
			    bw_arena_grow(a, out->stmts, &stmtcap, out->nstmts, sizeof(*stmts));
			if (stmts == NULL)
				goto fail;
			out->stmts = stmts;
			out->stmts[out->nstmts++] = (struct bw_sql_stmt){.toks = f,
			                                                 .ntoks = i - first,
			                                                 .start = f->off,
			                                                 .end = l->off + l->len,
			                                                 .line = f->line};
		}
		first = i + 1;
	}
	for (int l = 1; l <= lines; l++)
		if (out->line_dirs[l] & BW_SQL_DIR_NO_TRANSACTION)
			out->no_transaction = true;
	return 0;
fail:
	snprintf(err, errlen, "%s", why);
	return -1;
}

bool
bw_sql_is(const struct bw_sql_tok *tok, const char *w)
{
	return tok->kind == BW_TOK_WORD && tok->len == strlen(w) &&
	       strncasecmp(tok->s, w, tok->len) == 0;
}

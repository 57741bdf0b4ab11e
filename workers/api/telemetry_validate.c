/* Telemetry body validator: strict JSON (RFC 8259) to one BSON document per
 * reading, with the contract's rules (telemetry_validate.h). Recursive
 * descent whose depth is checked before each descent, so no input can
 * exhaust the stack; every byte it keeps lives in the caller's arena. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/telemetry_validate.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/time.h"

/* Path frames: the batch index, then one per member or element down to
 * the container that would be one level too deep. */
#define PATH_MAX_FRAMES (BW_TEL_MAX_DEPTH + 4)
/* Objects with more members than this are checked for duplicates by
 * sorting (n log n whatever the keys), smaller ones pairwise. */
#define DUP_LINEAR_MAX 16

struct frame {
	const char *key; /* NULL for an array element */
	size_t klen;
	size_t idx;
};

struct key {
	const char *s;
	size_t len;
	size_t pos;
	const char *at; /* where it starts in the body */
};

enum scalar_type { S_OTHER, S_STRING, S_INT, S_DOUBLE };

/* What a value turned out to be, for the members msg_id and ts. */
struct scalar {
	enum scalar_type type;
	const char *s; /* S_STRING: decoded, NUL-terminated when it came from the arena */
	size_t len;
	int64_t i;
};

struct parser {
	struct bw_arena *a;
	const char *base, *p, *end;
	const struct bw_tel_limits *lim;
	struct bw_tel_error *err;
	struct frame path[PATH_MAX_FRAMES];
	int npath;
	long index; /* reading being parsed, -1 outside one */
	struct bw_tel_reading *cur;
};

static int parse_value(struct parser *P, bson_t *dst, const char *key, size_t klen, int depth,
                       struct scalar *sc);

/* ---- errors ---- */

static void
put_pointer(struct bw_buf *b, const struct parser *P)
{
	for (int i = 0; i < P->npath; i++) {
		const struct frame *f = &P->path[i];
		bw_buf_putc(b, '/');
		if (f->key == NULL) {
			bw_buf_printf(b, "%zu", f->idx);
			continue;
		}
		/* RFC 6901: "~" is written ~0 and "/" is written ~1. */
		for (size_t j = 0; j < f->klen; j++) {
			if (f->key[j] == '~')
				bw_buf_puts(b, "~0");
			else if (f->key[j] == '/')
				bw_buf_puts(b, "~1");
			else
				bw_buf_putc(b, f->key[j]);
		}
	}
}

static int fail_at(struct parser *P, const char *where, int status, const char *code, long index,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int
fail_at(struct parser *P, const char *where, int status, const char *code, long index,
        const char *fmt, ...)
{
	struct bw_tel_error *e = P->err;
	struct bw_buf b;
	va_list ap;

	e->status = status;
	e->code = code;
	e->index = index;
	e->offset = (size_t)(where - P->base);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	bw_buf_init(&b, P->a);
	put_pointer(&b, P);
	e->pointer = b.failed ? "" : bw_buf_cstr(&b);
	e->pointer_len = b.failed ? 0 : b.len;
	return -1;
}

#define syntax(P, where, ...) fail_at(P, where, 400, "invalid_json", (P)->index, __VA_ARGS__)
#define bad_reading(P, ...)   fail_at(P, (P)->p, 400, "invalid_reading", (P)->index, __VA_ARGS__)

static int
no_memory(struct parser *P)
{
	return fail_at(P, P->p, 500, "internal_error", P->index, "out of memory");
}

static void
push_key(struct parser *P, const char *key, size_t klen)
{
	P->path[P->npath++] = (struct frame){.key = key, .klen = klen};
}

static void
push_idx(struct parser *P, size_t idx)
{
	P->path[P->npath++] = (struct frame){.idx = idx};
}

static void
pop(struct parser *P)
{
	P->npath--;
}

/* ---- lexing ---- */

static void
skip_ws(struct parser *P)
{
	while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r'))
		P->p++;
}

static bool
at(const struct parser *P, char c)
{
	return P->p < P->end && *P->p == c;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
hex4(const char *s)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static char *
put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* Decodes the escapes of raw[0..n) (already known to end before the
 * closing quote) into the arena; the result is NUL-terminated. */
static int
unescape(struct parser *P, const char *raw, size_t n, const char **s, size_t *len)
{
	/* Each escape is at least as long as the UTF-8 it stands for. */
	char *out = bw_arena_alloc(P->a, n + 1), *o = out;
	const char *q = raw, *end = raw + n;

	if (out == NULL)
		return no_memory(P);
	while (q < end) {
		if (*q != '\\') {
			*o++ = *q++;
			continue;
		}
		const char *esc = q;
		q++;
		switch (*q++) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '/':
			*o++ = '/';
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': {
			int cp = end - q >= 4 ? hex4(q) : -1;
			if (cp < 0)
				return syntax(P, esc, "\\u must be followed by four hex digits");
			q += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return syntax(P, esc, "a lone low surrogate \\u%04x", cp);
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int lo =
				    end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return syntax(P, esc,
					              "a high surrogate \\u%04x without its pair",
					              cp);
				q += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			o = put_utf8(o, (unsigned)cp);
			break;
		}
		default:
			return syntax(P, esc, "invalid escape in a string");
		}
	}
	*o = '\0';
	*s = out;
	*len = (size_t)(o - out);
	return 0;
}

/* At '"'. On success *s points into the body (no escapes) or the arena. */
static int
parse_string(struct parser *P, const char **s, size_t *len)
{
	const unsigned char *start = (const unsigned char *)P->p + 1, *p = start;
	const unsigned char *end = (const unsigned char *)P->end;
	bool escaped = false;

	for (;;) {
		if (p >= end)
			return syntax(P, P->end, "unterminated string");
		unsigned c = *p;
		if (c == '"')
			break;
		if (c == '\\') {
			if (end - p < 2)
				return syntax(P, P->end, "unterminated string");
			escaped = true;
			p += 2;
		} else if (c < 0x20) {
			return syntax(P, (const char *)p,
			              "control character 0x%02x must be escaped in a string", c);
		} else if (c < 0x80) {
			p++;
		} else {
			size_t l = bw_utf8_len(p, (size_t)(end - p));
			if (l == 0)
				return syntax(P, (const char *)p, "invalid UTF-8 in a string");
			p += l;
		}
	}
	P->p = (const char *)p + 1;
	if (escaped)
		return unescape(P, (const char *)start, (size_t)(p - start), s, len);
	*s = (const char *)start;
	*len = (size_t)(p - start);
	return 0;
}

/* A JSON number (the grammar exactly). Integers must fit int64; numbers
 * with a fraction or exponent must be finite doubles that do not
 * underflow to zero. */
static int
parse_number(struct parser *P, struct scalar *sc)
{
	const char *s = P->p, *p = s, *end = P->end, *mant_end;
	bool neg = false, real = false;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= end || !is_digit(*p))
		return syntax(P, p, "invalid number");
	if (*p == '0')
		p++;
	else
		while (p < end && is_digit(*p))
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			return syntax(P, p, "invalid number: a digit must follow '.'");
		while (p < end && is_digit(*p))
			p++;
		real = true;
	}
	mant_end = p;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return syntax(P, p, "invalid number: a digit must follow the exponent");
		while (p < end && is_digit(*p))
			p++;
		real = true;
	}
	if (!real) {
		uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (const char *q = s + neg; q < p; q++) {
			unsigned d = (unsigned)(*q - '0');
			if (v > (lim - d) / 10)
				return bad_reading(P, "the integer %.*s does not fit in 64 bits",
				                   (int)(p - s > 40 ? 40 : p - s), s);
			v = v * 10 + d;
		}
		sc->type = S_INT;
		sc->i = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
		P->p = p;
		return 0;
	}
	/* strtod needs a terminated copy: the body may end right here. */
	size_t n = (size_t)(p - s);
	char small[64], *copy = n < sizeof(small) ? small : bw_arena_alloc(P->a, n + 1);
	if (copy == NULL)
		return no_memory(P);
	memcpy(copy, s, n);
	copy[n] = '\0';
	errno = 0;
	double d = strtod(copy, NULL);
	bool nonzero = false;
	for (const char *q = s; q < mant_end; q++)
		nonzero = nonzero || (*q >= '1' && *q <= '9');
	if (isinf(d) || (d == 0 && nonzero))
		return bad_reading(P, "the number %.*s is out of the range of a double",
		                   (int)(n > 40 ? 40 : n), s);
	sc->type = S_DOUBLE;
	P->p = p;
	/* The caller appends the value: keep it in sc->i's bits. */
	memcpy(&sc->i, &d, sizeof(d));
	return 0;
}

static int
parse_literal(struct parser *P, const char *word, size_t n)
{
	if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n) != 0)
		return syntax(P, P->p, "expected a JSON value");
	P->p += n;
	return 0;
}

/* ---- keys ---- */

/* at: where the key starts in the body (the offset reported). */
static int
check_key(struct parser *P, const char *at, const char *k, size_t klen)
{
	const char *why = NULL;

	if (klen == 0)
		why = "an empty key is not allowed";
	else if (k[0] == '$')
		why = "a key must not start with '$'";
	else if (memchr(k, '.', klen) != NULL)
		why = "a key must not contain '.'";
	else if (memchr(k, '\0', klen) != NULL)
		why = "a key must not contain NUL";
	if (why == NULL)
		return 0;
	return fail_at(P, at, 400, "invalid_reading", P->index, "%s", why);
}

static int
key_cmp(const void *x, const void *y)
{
	const struct key *a = x, *b = y;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	int c = memcmp(a->s, b->s, a->len);
	if (c != 0)
		return c;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static bool
key_eq(const struct key *a, const struct key *b)
{
	return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* The position of the earliest repeated key, or -1. */
static long
find_duplicate(struct key *keys, size_t n)
{
	long best = -1;

	if (n <= DUP_LINEAR_MAX) {
		for (size_t j = 1; j < n; j++)
			for (size_t i = 0; i < j; i++)
				if (key_eq(&keys[i], &keys[j]))
					return (long)j;
		return -1;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < n; i++)
		if (key_eq(&keys[i - 1], &keys[i]) && (best < 0 || (long)keys[i].pos < best))
			best = (long)keys[i].pos;
	return best;
}

/* ---- the two members the server reads ---- */

static bool
good_msg_id(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t chars = bw_utf8_chars(s, len);

	if (chars < 1 || chars > BW_TEL_MAX_MSG_ID)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (u[i] < 0x20 || u[i] == 0x7F)
			return false;
		/* C1 controls, U+0080..U+009F, are C2 80..C2 9F in UTF-8. */
		if (u[i] == 0xC2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F)
			return false;
	}
	return true;
}

static int
reading_member(struct parser *P, const char *k, size_t klen, const struct scalar *sc)
{
	struct bw_tel_reading *r = P->cur;
	const struct bw_tel_limits *lim = P->lim;
	int64_t ms;

	if (klen == 6 && memcmp(k, "msg_id", 6) == 0) {
		if (sc->type != S_STRING || !good_msg_id(sc->s, sc->len))
			return bad_reading(P,
			                   "msg_id must be a string of 1 to %d characters without "
			                   "control characters",
			                   BW_TEL_MAX_MSG_ID);
		r->msg_id = bw_arena_strndup(P->a, sc->s, sc->len);
		if (r->msg_id == NULL)
			return no_memory(P);
		return 0;
	}
	if (klen != 2 || memcmp(k, "ts", 2) != 0)
		return 0;
	if (sc->type == S_INT)
		ms = sc->i;
	else if (sc->type != S_STRING || bw_time_parse_rfc3339(sc->s, sc->len, &ms) < 0)
		return bad_reading(
		    P, "ts must be an RFC 3339 date-time or integer epoch milliseconds");
	/* In doubles: ms may be anything an int64 holds. */
	double ahead_s = ((double)ms - (double)lim->now_ms) / 1000.0;
	if (ms < lim->now_ms - lim->max_past_ms || ms > lim->now_ms + lim->max_future_ms)
		return fail_at(P, P->p, 400, "clock_skew", P->index,
		               "ts is %.0f s %s the time of receipt; accepted: up to %lld s before "
		               "and %lld s after",
		               fabs(ahead_s), ahead_s < 0 ? "before" : "after",
		               (long long)(lim->max_past_ms / 1000),
		               (long long)(lim->max_future_ms / 1000));
	r->ts_ms = ms;
	r->has_ts = true;
	return 0;
}

/* ---- containers ---- */

static int
parse_object(struct parser *P, bson_t *dst, int depth)
{
	struct key *keys = NULL;
	size_t nkeys = 0, cap = 0;

	P->p++; /* '{' */
	skip_ws(P);
	if (at(P, '}')) {
		P->p++;
		return 0;
	}
	for (;;) {
		const char *k;
		size_t klen;
		struct scalar sc = {0};

		skip_ws(P);
		if (!at(P, '"'))
			return syntax(P, P->p, "expected a member name in double quotes");
		const char *kstart = P->p;
		if (parse_string(P, &k, &klen) < 0)
			return -1;
		push_key(P, k, klen);
		if (check_key(P, kstart, k, klen) < 0)
			return -1;
		if (nkeys == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct key *nk = bw_arena_alloc(P->a, ncap * sizeof(*nk));
			if (nk == NULL)
				return no_memory(P);
			if (nkeys > 0)
				memcpy(nk, keys, nkeys * sizeof(*nk));
			keys = nk;
			cap = ncap;
		}
		keys[nkeys] = (struct key){.s = k, .len = klen, .pos = nkeys, .at = kstart};
		nkeys++;
		skip_ws(P);
		if (!at(P, ':'))
			return syntax(P, P->p, "expected ':' after a member name");
		P->p++;
		skip_ws(P);
		if (parse_value(P, dst, k, klen, depth, &sc) < 0)
			return -1;
		if (depth == 1 && reading_member(P, k, klen, &sc) < 0)
			return -1;
		pop(P);
		skip_ws(P);
		if (at(P, ',')) {
			P->p++;
			continue;
		}
		if (at(P, '}')) {
			P->p++;
			break;
		}
		return syntax(P, P->p, "expected ',' or '}' in an object");
	}
	/* Sorting reorders keys but keeps each one's position. */
	long dup = find_duplicate(keys, nkeys);
	if (dup >= 0) {
		const struct key *d = NULL;
		for (size_t i = 0; i < nkeys; i++)
			if ((long)keys[i].pos == dup)
				d = &keys[i];
		const char *k = d->s;
		size_t klen = d->len;
		push_key(P, k, klen);
		return fail_at(P, d->at, 400, "invalid_reading", P->index,
		               "the key \"%.*s\" appears more than once in this object",
		               (int)(klen > 64 ? 64 : klen), k);
	}
	return 0;
}

static int
parse_array(struct parser *P, bson_t *dst, int depth)
{
	char numbuf[16];
	const char *key;

	P->p++; /* '[' */
	skip_ws(P);
	if (at(P, ']')) {
		P->p++;
		return 0;
	}
	for (uint32_t i = 0;; i++) {
		struct scalar sc;

		skip_ws(P);
		push_idx(P, i);
		size_t klen = bson_uint32_to_string(i, &key, numbuf, sizeof(numbuf));
		if (parse_value(P, dst, key, klen, depth, &sc) < 0)
			return -1;
		pop(P);
		skip_ws(P);
		if (at(P, ',')) {
			P->p++;
			continue;
		}
		if (at(P, ']')) {
			P->p++;
			return 0;
		}
		return syntax(P, P->p, "expected ',' or ']' in an array");
	}
}

/* Appends the value at P->p to dst under key; depth is dst's level. */
static int
parse_value(struct parser *P, bson_t *dst, const char *key, size_t klen, int depth,
            struct scalar *sc)
{
	bson_t child;
	bool ok = true;
	int rc;

	sc->type = S_OTHER;
	if (P->p >= P->end)
		return syntax(P, P->p, "unexpected end of the body");
	switch (*P->p) {
	case '{':
	case '[':
		if (depth + 1 > BW_TEL_MAX_DEPTH)
			return bad_reading(P, "nesting deeper than %d levels", BW_TEL_MAX_DEPTH);
		if (*P->p == '{') {
			bson_append_document_begin(dst, key, (int)klen, &child);
			rc = parse_object(P, &child, depth + 1);
			ok = bson_append_document_end(dst, &child);
		} else {
			bson_append_array_begin(dst, key, (int)klen, &child);
			rc = parse_array(P, &child, depth + 1);
			ok = bson_append_array_end(dst, &child);
		}
		if (rc < 0)
			return -1;
		break;
	case '"':
		if (parse_string(P, &sc->s, &sc->len) < 0)
			return -1;
		sc->type = S_STRING;
		ok = bson_append_utf8(dst, key, (int)klen, sc->s, (int)sc->len);
		break;
	case 't':
		if (parse_literal(P, "true", 4) < 0)
			return -1;
		ok = bson_append_bool(dst, key, (int)klen, true);
		break;
	case 'f':
		if (parse_literal(P, "false", 5) < 0)
			return -1;
		ok = bson_append_bool(dst, key, (int)klen, false);
		break;
	case 'n':
		if (parse_literal(P, "null", 4) < 0)
			return -1;
		ok = bson_append_null(dst, key, (int)klen);
		break;
	default:
		if (*P->p != '-' && !is_digit(*P->p))
			return syntax(P, P->p, "expected a JSON value");
		if (parse_number(P, sc) < 0)
			return -1;
		if (sc->type == S_DOUBLE) {
			double d;
			memcpy(&d, &sc->i, sizeof(d));
			ok = bson_append_double(dst, key, (int)klen, d);
		} else if (sc->i >= INT32_MIN && sc->i <= INT32_MAX) {
			ok = bson_append_int32(dst, key, (int)klen, (int32_t)sc->i);
		} else {
			ok = bson_append_int64(dst, key, (int)klen, sc->i);
		}
		break;
	}
	if (!ok)
		return bad_reading(P, "the reading is too large as BSON");
	return 0;
}

static void
destroy_bson(void *p)
{
	bson_destroy(p);
}

static int
parse_reading(struct parser *P, struct bw_tel_reading *r, long index)
{
	const char *start = P->p;

	memset(r, 0, sizeof(*r));
	P->index = index;
	if (!at(P, '{'))
		return bad_reading(P, "a reading must be a JSON object");
	r->data = bson_new();
	if (r->data == NULL || bw_arena_defer(P->a, destroy_bson, r->data) < 0) {
		bson_destroy(r->data);
		r->data = NULL;
		return no_memory(P);
	}
	P->cur = r;
	if (parse_object(P, r->data, 1) < 0)
		return -1;
	P->cur = NULL;
	if ((size_t)(P->p - start) > BW_TEL_MAX_READING_BYTES)
		return fail_at(P, start, 400, "invalid_reading", index,
		               "the reading is %zu bytes of JSON; at most %d are allowed",
		               (size_t)(P->p - start), BW_TEL_MAX_READING_BYTES);
	if (!r->has_ts)
		r->ts_ms = P->lim->now_ms;
	P->index = -1;
	return 0;
}

int
bw_tel_parse(struct bw_arena *a, const char *body, size_t len, const struct bw_tel_limits *lim,
             struct bw_tel_reading **out, size_t *n, struct bw_tel_error *err)
{
	struct parser P = {.a = a,
	                   .base = body,
	                   .p = body,
	                   .end = body + len,
	                   .lim = lim,
	                   .err = err,
	                   .index = -1};
	struct bw_tel_reading *rs = NULL;
	size_t count = 0, cap = 0;

	memset(err, 0, sizeof(*err));
	*out = NULL;
	*n = 0;
	skip_ws(&P);
	if (P.p >= P.end)
		return syntax(&P, P.p, "the body is empty");
	if (at(&P, '{')) {
		rs = bw_arena_calloc(a, 1, sizeof(*rs));
		if (rs == NULL)
			return no_memory(&P);
		if (parse_reading(&P, rs, 0) < 0)
			return -1;
		count = 1;
	} else if (at(&P, '[')) {
		P.p++;
		skip_ws(&P);
		if (at(&P, ']'))
			return fail_at(&P, P.p, 400, "invalid_reading", -1,
			               "the batch is empty: send 1 to %d readings",
			               BW_TEL_MAX_READINGS);
		for (;;) {
			skip_ws(&P);
			push_idx(&P, count);
			if (count == BW_TEL_MAX_READINGS)
				return fail_at(&P, P.p, 413, "payload_too_large", (long)count,
				               "more than %d readings in one batch",
				               BW_TEL_MAX_READINGS);
			if (count == cap) {
				size_t ncap = cap ? cap * 4 : 8;
				struct bw_tel_reading *nr = bw_arena_alloc(a, ncap * sizeof(*nr));
				if (nr == NULL)
					return no_memory(&P);
				if (count > 0)
					memcpy(nr, rs, count * sizeof(*nr));
				rs = nr;
				cap = ncap;
			}
			if (parse_reading(&P, &rs[count], (long)count) < 0)
				return -1;
			count++;
			pop(&P);
			skip_ws(&P);
			if (at(&P, ',')) {
				P.p++;
				continue;
			}
			if (at(&P, ']')) {
				P.p++;
				break;
			}
			return syntax(&P, P.p, "expected ',' or ']' after a reading");
		}
	} else {
		return syntax(&P, P.p, "the body must be a JSON object or an array of objects");
	}
	skip_ws(&P);
	if (P.p != P.end)
		return syntax(&P, P.p, "unexpected data after the JSON value");
	*out = rs;
	*n = count;
	return 0;
}

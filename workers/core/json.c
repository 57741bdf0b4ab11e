/* The strict JSON reader (json.h): recursive descent that hands each value
 * to the sink. The path to the value being read is a chain of frames on
 * the C stack, turned into an RFC 6901 pointer only when something fails. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"

/* Objects with more members than this are checked for duplicates by
 * sorting (n log n whatever the names), smaller ones pairwise. */
#define DUP_LINEAR_MAX 16

/* One step of the path: a member (key) or an element (idx). */
struct frame {
	const struct frame *up;
	const char *key; /* NULL for an element */
	size_t klen;
	size_t idx;
};

struct key {
	const char *s;
	size_t len;
	size_t pos;
	const char *at; /* where it starts in the text */
};

struct reader {
	const struct bw_json_reader *r;
	const struct bw_json_sink *sink;
	const char *base, *p, *end;
	const struct frame *top; /* the innermost member or element, NULL at the value read */
	struct bw_json_error *err;
};

static int parse_value(struct reader *R, int depth);

/* ---- errors ---- */

static void
put_pointer(struct bw_buf *b, const struct frame *f)
{
	if (f == NULL)
		return;
	put_pointer(b, f->up);
	if (f->key == NULL)
		bw_buf_printf(b, "/%zu", f->idx);
	else
		bw_json_pointer_step(b, f->key, f->klen);
}

/* Fills the error at `where`; fmt NULL keeps the detail a sink wrote. */
static int fail_at(struct reader *R, enum bw_json_code code, const char *where, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static int
fail_at(struct reader *R, enum bw_json_code code, const char *where, const char *fmt, ...)
{
	struct bw_json_error *e = R->err;
	struct bw_buf b;
	va_list ap;

	e->code = code;
	e->offset = (size_t)(where - R->base);
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
		va_end(ap);
	}
	bw_buf_init(&b, R->r->arena);
	put_pointer(&b, R->top);
	e->pointer = b.failed ? "" : bw_buf_cstr(&b);
	e->pointer_len = b.failed ? 0 : b.len;
	return -1;
}

#define syntax(R, where, ...) fail_at(R, BW_JSON_ESYNTAX, where, __VA_ARGS__)

static int
no_memory(struct reader *R)
{
	return fail_at(R, BW_JSON_ENOMEM, R->p, "out of memory");
}

/* What a sink callback answered about the value (or name) at `at`. */
static int
verdict(struct reader *R, const char *at, int rc)
{
	if (rc == 0)
		return 0;
	if (rc == BW_JSON_EREFUSED)
		return fail_at(R, BW_JSON_EREFUSED, at, NULL);
	return fail_at(R, BW_JSON_ENOMEM, at, "out of memory");
}

int
bw_json_refuse(struct bw_json_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return BW_JSON_EREFUSED;
}

/* ---- lexing ---- */

static void
skip_ws(struct reader *R)
{
	while (R->p < R->end && (*R->p == ' ' || *R->p == '\t' || *R->p == '\n' || *R->p == '\r'))
		R->p++;
}

static bool
at(const struct reader *R, char c)
{
	return R->p < R->end && *R->p == c;
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
unescape(struct reader *R, const char *raw, size_t n, const char **s, size_t *len)
{
	/* Each escape is at least as long as the UTF-8 it stands for. */
	char *out = bw_arena_alloc(R->r->arena, n + 1), *o = out;
	const char *q = raw, *end = raw + n;

	if (out == NULL)
		return no_memory(R);
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
				return syntax(R, esc, "\\u must be followed by four hex digits");
			q += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return syntax(R, esc, "a lone low surrogate \\u%04x", cp);
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int lo =
				    end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return syntax(R, esc,
					              "a high surrogate \\u%04x without its pair",
					              cp);
				q += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			o = put_utf8(o, (unsigned)cp);
			break;
		}
		default:
			return syntax(R, esc, "invalid escape in a string");
		}
	}
	*o = '\0';
	*s = out;
	*len = (size_t)(o - out);
	return 0;
}

/* At '"'. On success *s points into the text (no escapes) or the arena. */
static int
parse_string(struct reader *R, const char **s, size_t *len)
{
	const unsigned char *start = (const unsigned char *)R->p + 1, *p = start;
	const unsigned char *end = (const unsigned char *)R->end;
	bool escaped = false;

	for (;;) {
		if (p >= end)
			return syntax(R, R->end, "unterminated string");
		unsigned c = *p;
		if (c == '"')
			break;
		if (c == '\\') {
			if (end - p < 2)
				return syntax(R, R->end, "unterminated string");
			escaped = true;
			p += 2;
		} else if (c < 0x20) {
			return syntax(R, (const char *)p,
			              "control character 0x%02x must be escaped in a string", c);
		} else if (c < 0x80) {
			p++;
		} else {
			size_t l = bw_utf8_len(p, (size_t)(end - p));
			if (l == 0)
				return syntax(R, (const char *)p, "invalid UTF-8 in a string");
			p += l;
		}
	}
	R->p = (const char *)p + 1;
	if (escaped)
		return unescape(R, (const char *)start, (size_t)(p - start), s, len);
	*s = (const char *)start;
	*len = (size_t)(p - start);
	return 0;
}

/* Clinger's fast path: a decimal w × 10^q with w <= 2^53 and |q| <= 22 is
 * one correctly rounded IEEE operation away from its double, the value
 * strtod gives. s..end is a valid JSON number; false when it is outside
 * the path (most numbers a device sends are inside). */
static bool
fast_double(const char *s, const char *end, double *out)
{
	static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
	                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	const char *p = s + (*s == '-');
	uint64_t w = 0;
	long q = 0, e = 0;
	bool frac = false, eneg = false;

	for (; p < end && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.') {
			frac = true;
			continue;
		}
		w = w * 10 + (uint64_t)(*p - '0');
		if (w > (uint64_t)1 << 53)
			return false;
		q -= frac;
	}
	if (p < end) {
		p++;
		if (*p == '+' || *p == '-')
			eneg = *p++ == '-';
		for (; p < end; p++)
			if ((e = e * 10 + (*p - '0')) > 400)
				return false;
		q += eneg ? -e : e;
	}
	if (q < -22 || q > 22)
		return false;
	double d = q < 0 ? (double)w / pow10[-q] : (double)w * pow10[q];
	*out = *s == '-' ? -d : d;
	return true;
}

/* A JSON number (the grammar exactly): an integer that fits int64, or a
 * finite double. */
static int
parse_number(struct reader *R)
{
	const struct bw_json_sink *k = R->sink;
	const char *s = R->p, *p = s, *end = R->end;
	bool neg = false, real = false;
	double d;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= end || !is_digit(*p))
		return syntax(R, p, "invalid number");
	if (*p == '0')
		p++;
	else
		while (p < end && is_digit(*p))
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			return syntax(R, p, "invalid number: a digit must follow '.'");
		while (p < end && is_digit(*p))
			p++;
		real = true;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return syntax(R, p, "invalid number: a digit must follow the exponent");
		while (p < end && is_digit(*p))
			p++;
		real = true;
	}
	size_t n = (size_t)(p - s);
	if (!real) {
		uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (const char *q = s + neg; q < p; q++)
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(*q - '0'), &v) || v > lim)
				return fail_at(R, BW_JSON_ERANGE, s,
				               "the integer %.*s does not fit in 64 bits",
				               (int)(n > 40 ? 40 : n), s);
		R->p = p;
		int64_t i =
		    neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
		return verdict(R, s, k->integer != NULL ? k->integer(R->r->ctx, i) : 0);
	}
	if (!fast_double(s, p, &d)) {
		/* strtod needs a terminated copy: the text may end right here. */
		char small[64],
		    *copy = n < sizeof(small) ? small : bw_arena_alloc(R->r->arena, n + 1);
		if (copy == NULL)
			return no_memory(R);
		memcpy(copy, s, n);
		copy[n] = '\0';
		d = strtod(copy, NULL);
	}
	if (isinf(d))
		return fail_at(R, BW_JSON_ERANGE, s,
		               "the number %.*s is out of the range of a double",
		               (int)(n > 40 ? 40 : n), s);
	R->p = p;
	return verdict(R, s, k->real != NULL ? k->real(R->r->ctx, d, s, n) : 0);
}

static int
parse_literal(struct reader *R, const char *word, size_t n)
{
	if ((size_t)(R->end - R->p) < n || memcmp(R->p, word, n) != 0)
		return syntax(R, R->p, "expected a JSON value");
	R->p += n;
	return 0;
}

/* ---- duplicate names ---- */

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

/* The earliest repeated name, or NULL. Sorting reorders keys but keeps
 * each one's position. */
static const struct key *
find_duplicate(struct key *keys, size_t n)
{
	const struct key *best = NULL;

	if (n <= DUP_LINEAR_MAX) {
		for (size_t j = 1; j < n; j++)
			for (size_t i = 0; i < j; i++)
				if (key_eq(&keys[i], &keys[j]))
					return &keys[j];
		return NULL;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < n; i++)
		if (key_eq(&keys[i - 1], &keys[i]) && (best == NULL || keys[i].pos < best->pos))
			best = &keys[i];
	return best;
}

/* ---- containers ---- */

/* After a member or an element: 1 at ',' (another follows), 0 at close
 * (the container ends), -1 with the error. */
static inline int
next_or_close(struct reader *R, char close, const char *what)
{
	skip_ws(R);
	if (at(R, ',')) {
		R->p++;
		return 1;
	}
	if (at(R, close)) {
		R->p++;
		return 0;
	}
	return syntax(R, R->p, "expected ',' or '%c' in %s", close, what);
}

static int
parse_object(struct reader *R, int depth)
{
	const struct bw_json_sink *k = R->sink;
	void *ctx = R->r->ctx;
	const char *start = R->p;
	struct frame f = {.up = R->top};
	struct key *keys = NULL;
	size_t nkeys = 0, cap = 0;
	int more;

	R->p++; /* '{' */
	if (verdict(R, start, k->object_begin != NULL ? k->object_begin(ctx) : 0) < 0)
		return -1;
	skip_ws(R);
	if (at(R, '}')) {
		R->p++;
		return verdict(R, start, k->object_end != NULL ? k->object_end(ctx) : 0);
	}
	do {
		skip_ws(R);
		if (!at(R, '"'))
			return syntax(R, R->p, "expected a member name in double quotes");
		const char *kstart = R->p;
		if (parse_string(R, &f.key, &f.klen) < 0)
			return -1;
		R->top = &f;
		if (verdict(R, kstart, k->key != NULL ? k->key(ctx, f.key, f.klen) : 0) < 0)
			return -1;
		if (R->r->unique_keys) {
			if (nkeys == cap && (keys = bw_arena_grow(R->r->arena, keys, &cap, nkeys,
			                                          sizeof(*keys))) == NULL)
				return no_memory(R);
			keys[nkeys] =
			    (struct key){.s = f.key, .len = f.klen, .pos = nkeys, .at = kstart};
			nkeys++;
		}
		skip_ws(R);
		if (!at(R, ':'))
			return syntax(R, R->p, "expected ':' after a member name");
		R->p++;
		skip_ws(R);
		if (parse_value(R, depth) < 0)
			return -1;
		R->top = f.up;
	} while ((more = next_or_close(R, '}', "an object")) > 0);
	if (more < 0)
		return -1;
	const struct key *dup = keys != NULL ? find_duplicate(keys, nkeys) : NULL;
	if (dup != NULL) {
		f.key = dup->s;
		f.klen = dup->len;
		R->top = &f;
		return fail_at(R, BW_JSON_EDUPLICATE, dup->at,
		               "the key \"%.*s\" appears more than once in this object",
		               (int)(dup->len > 64 ? 64 : dup->len), dup->s);
	}
	return verdict(R, start, k->object_end != NULL ? k->object_end(ctx) : 0);
}

static int
parse_array(struct reader *R, int depth)
{
	const struct bw_json_sink *k = R->sink;
	void *ctx = R->r->ctx;
	const char *start = R->p;
	struct frame f = {.up = R->top};
	int more;

	R->p++; /* '[' */
	if (verdict(R, start, k->array_begin != NULL ? k->array_begin(ctx) : 0) < 0)
		return -1;
	skip_ws(R);
	if (at(R, ']')) {
		R->p++;
		return verdict(R, start, k->array_end != NULL ? k->array_end(ctx) : 0);
	}
	do {
		skip_ws(R);
		R->top = &f;
		if (parse_value(R, depth) < 0)
			return -1;
		R->top = f.up;
		f.idx++;
	} while ((more = next_or_close(R, ']', "an array")) > 0);
	if (more < 0)
		return -1;
	return verdict(R, start, k->array_end != NULL ? k->array_end(ctx) : 0);
}

/* The value at R->p; depth is the number of containers open around it. */
static int
parse_value(struct reader *R, int depth)
{
	const struct bw_json_sink *k = R->sink;
	void *ctx = R->r->ctx;
	const char *start = R->p, *s;
	size_t len;

	if (R->p >= R->end)
		return syntax(R, R->p, "unexpected end of the body");
	switch (*R->p) {
	case '{':
	case '[':
		if (depth + 1 > R->r->max_depth)
			return fail_at(R, BW_JSON_EDEPTH, R->p, "nesting deeper than %d levels",
			               R->r->max_depth);
		return *R->p == '{' ? parse_object(R, depth + 1) : parse_array(R, depth + 1);
	case '"':
		if (parse_string(R, &s, &len) < 0)
			return -1;
		return verdict(R, start, k->string != NULL ? k->string(ctx, s, len) : 0);
	case 't':
		if (parse_literal(R, "true", 4) < 0)
			return -1;
		return verdict(R, start, k->boolean != NULL ? k->boolean(ctx, true) : 0);
	case 'f':
		if (parse_literal(R, "false", 5) < 0)
			return -1;
		return verdict(R, start, k->boolean != NULL ? k->boolean(ctx, false) : 0);
	case 'n':
		if (parse_literal(R, "null", 4) < 0)
			return -1;
		return verdict(R, start, k->null != NULL ? k->null(ctx) : 0);
	default:
		if (*R->p != '-' && !is_digit(*R->p))
			return syntax(R, R->p, "expected a JSON value");
		return parse_number(R);
	}
}

/* ---- entry points ---- */

int
bw_json_read_value(const struct bw_json_reader *r, const char *text, size_t len, size_t *pos,
                   struct bw_json_error *err)
{
	struct reader R = {
	    .r = r, .sink = r->sink, .base = text, .p = text + *pos, .end = text + len, .err = err};

	err->code = BW_JSON_OK;
	err->pointer = "";
	err->pointer_len = 0;
	err->detail[0] = '\0';
	skip_ws(&R);
	if (parse_value(&R, 0) < 0)
		return -1;
	*pos = (size_t)(R.p - text);
	return 0;
}

int
bw_json_read(const struct bw_json_reader *r, const char *text, size_t len,
             struct bw_json_error *err)
{
	struct reader R = {.r = r, .base = text, .p = text, .end = text + len, .err = err};
	size_t pos;

	skip_ws(&R);
	if (R.p >= R.end)
		return syntax(&R, R.p, "the body is empty");
	pos = (size_t)(R.p - text);
	if (bw_json_read_value(r, text, len, &pos, err) < 0)
		return -1;
	R.p = text + pos;
	skip_ws(&R);
	if (R.p != R.end)
		return syntax(&R, R.p, "unexpected data after the JSON value");
	return 0;
}

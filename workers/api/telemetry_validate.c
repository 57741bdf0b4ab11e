/* Telemetry body validator: the batch around the readings is walked here,
 * each reading is read by the strict JSON reader (core/json.h) into a BSON
 * sink that applies the contract's rules (telemetry_validate.h) as the
 * values arrive. Every byte it keeps lives in the caller's arena. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/telemetry_validate.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/time.h"

enum member { M_OTHER, M_MSG_ID, M_TS };
enum scalar_type { S_OTHER, S_STRING, S_INT, S_DOUBLE };

/* What the value of the reading's msg_id or ts turned out to be. */
struct scalar {
	enum scalar_type type;
	const char *s;
	size_t len;
	int64_t i;
};

/* The BSON sink: level 1 is the reading, deeper levels are the open
 * children of the level above. */
struct sink {
	struct bw_arena *a;
	const struct bw_tel_limits *lim;
	struct bw_json_error *err;
	struct bw_tel_reading *cur;
	const char *code; /* of a refusal */
	int depth;        /* levels open, 0 before the reading */
	const char *key;  /* the name of the member whose value comes next */
	size_t klen;
	enum member held; /* the reading's member whose value is the level 2 container */
	char numbuf[16];
	bson_t *doc[BW_TEL_MAX_DEPTH + 1];
	bson_t child[BW_TEL_MAX_DEPTH + 1];
	uint32_t next[BW_TEL_MAX_DEPTH + 1]; /* the next index, in an array */
	bool array[BW_TEL_MAX_DEPTH + 1];
};

/* ---- the reading's own members ---- */

static int refuse(struct sink *S, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(struct sink *S, const char *code, const char *fmt, ...)
{
	va_list ap;

	S->code = code;
	va_start(ap, fmt);
	vsnprintf(S->err->detail, sizeof(S->err->detail), fmt, ap);
	va_end(ap);
	return BW_JSON_EREFUSED;
}

static enum member
member_of(const char *k, size_t klen)
{
	if (klen == 6 && memcmp(k, "msg_id", 6) == 0)
		return M_MSG_ID;
	if (klen == 2 && memcmp(k, "ts", 2) == 0)
		return M_TS;
	return M_OTHER;
}

static bool
good_msg_id(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t chars = 0;

	/* One pass: control characters out, characters counted (as bw_utf8_chars). */
	for (size_t i = 0; i < len; i++) {
		if (u[i] < 0x20 || u[i] == 0x7F)
			return false;
		/* C1 controls, U+0080..U+009F, are C2 80..C2 9F in UTF-8. */
		if (u[i] == 0xC2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F)
			return false;
		chars += (u[i] & 0xC0) != 0x80;
	}
	return chars >= 1 && chars <= BW_TEL_MAX_MSG_ID;
}

static int
reading_member(struct sink *S, enum member m, const struct scalar *sc)
{
	struct bw_tel_reading *r = S->cur;
	const struct bw_tel_limits *lim = S->lim;
	int64_t ms;

	if (m == M_MSG_ID) {
		if (sc->type != S_STRING || !good_msg_id(sc->s, sc->len))
			return refuse(S, "invalid_reading",
			              "msg_id must be a string of 1 to %d characters without "
			              "control characters",
			              BW_TEL_MAX_MSG_ID);
		r->msg_id = bw_arena_strndup(S->a, sc->s, sc->len);
		return r->msg_id != NULL ? 0 : BW_JSON_ENOMEM;
	}
	if (m != M_TS)
		return 0;
	if (sc->type == S_INT)
		ms = sc->i;
	else if (sc->type != S_STRING || bw_time_parse_rfc3339(sc->s, sc->len, &ms) < 0)
		return refuse(S, "invalid_reading",
		              "ts must be an RFC 3339 date-time or integer epoch milliseconds");
	/* In doubles: ms may be anything an int64 holds. */
	double ahead_s = ((double)ms - (double)lim->now_ms) / 1000.0;
	if (ms < lim->now_ms - lim->max_past_ms || ms > lim->now_ms + lim->max_future_ms)
		return refuse(S, "clock_skew",
		              "ts is %.0f s %s the time of receipt; accepted: up to %lld s before "
		              "and %lld s after",
		              fabs(ahead_s), ahead_s < 0 ? "before" : "after",
		              (long long)(lim->max_past_ms / 1000),
		              (long long)(lim->max_future_ms / 1000));
	r->ts_ms = ms;
	r->has_ts = true;
	return 0;
}

/* ---- the BSON sink ---- */

/* The document the next value goes into, and its name there. */
static bson_t *
slot(struct sink *S, const char **k, int *klen)
{
	int d = S->depth;

	if (S->array[d]) {
		*klen = (int)bson_uint32_to_string(S->next[d]++, k, S->numbuf, sizeof(S->numbuf));
	} else {
		*k = S->key;
		*klen = (int)S->klen;
	}
	return S->doc[d];
}

/* After a value was appended (ok: it fit): the reading's msg_id and ts. */
static int
appended(struct sink *S, bool ok, const struct scalar *sc)
{
	if (!ok)
		return refuse(S, "invalid_reading", "the reading is too large as BSON");
	if (S->depth == 1)
		return reading_member(S, member_of(S->key, S->klen), sc);
	return 0;
}

static int
open_level(struct sink *S, bool array)
{
	const char *k;
	int klen, d = S->depth;

	if (d == 0) { /* the reading itself */
		S->depth = 1;
		S->doc[1] = S->cur->data;
		S->array[1] = false;
		return 0;
	}
	bson_t *parent = slot(S, &k, &klen);
	if (array)
		bson_append_array_begin(parent, k, klen, &S->child[d + 1]);
	else
		bson_append_document_begin(parent, k, klen, &S->child[d + 1]);
	if (d == 1)
		S->held = member_of(k, (size_t)klen);
	S->depth = d + 1;
	S->doc[d + 1] = &S->child[d + 1];
	S->array[d + 1] = array;
	S->next[d + 1] = 0;
	return 0;
}

static int
close_level(struct sink *S, bool array)
{
	int d = S->depth;
	struct scalar other = {.type = S_OTHER};
	bool ok;

	S->depth = d - 1;
	if (d == 1)
		return 0;
	if (array)
		ok = bson_append_array_end(S->doc[d - 1], &S->child[d]);
	else
		ok = bson_append_document_end(S->doc[d - 1], &S->child[d]);
	if (!ok)
		return refuse(S, "invalid_reading", "the reading is too large as BSON");
	if (d == 2)
		return reading_member(S, S->held, &other);
	return 0;
}

static int
on_object_begin(void *ctx)
{
	return open_level(ctx, false);
}

static int
on_object_end(void *ctx)
{
	return close_level(ctx, false);
}

static int
on_array_begin(void *ctx)
{
	return open_level(ctx, true);
}

static int
on_array_end(void *ctx)
{
	return close_level(ctx, true);
}

static int
on_key(void *ctx, const char *k, size_t klen)
{
	struct sink *S = ctx;
	const char *why = NULL;

	if (klen == 0)
		why = "an empty key is not allowed";
	else if (k[0] == '$')
		why = "a key must not start with '$'";
	else if (memchr(k, '.', klen) != NULL)
		why = "a key must not contain '.'";
	else if (memchr(k, '\0', klen) != NULL)
		why = "a key must not contain NUL";
	if (why != NULL)
		return refuse(S, "invalid_reading", "%s", why);
	S->key = k;
	S->klen = klen;
	return 0;
}

static int
on_string(void *ctx, const char *s, size_t len)
{
	struct sink *S = ctx;
	struct scalar sc = {.type = S_STRING, .s = s, .len = len};
	const char *k;
	int klen;
	bson_t *dst = slot(S, &k, &klen);

	return appended(S, bson_append_utf8(dst, k, klen, s, (int)len), &sc);
}

static int
on_integer(void *ctx, int64_t v)
{
	struct sink *S = ctx;
	struct scalar sc = {.type = S_INT, .i = v};
	const char *k;
	int klen;
	bson_t *dst = slot(S, &k, &klen);
	bool ok = v >= INT32_MIN && v <= INT32_MAX ? bson_append_int32(dst, k, klen, (int32_t)v)
	                                           : bson_append_int64(dst, k, klen, v);

	return appended(S, ok, &sc);
}

static int
on_real(void *ctx, double v, const char *text, size_t len)
{
	struct sink *S = ctx;
	struct scalar sc = {.type = S_DOUBLE};
	const char *k;
	int klen;
	bool nonzero = false;

	/* A value too small for a double would be stored as 0: refused. */
	for (size_t i = 0; i < len && text[i] != 'e' && text[i] != 'E'; i++)
		nonzero = nonzero || (text[i] >= '1' && text[i] <= '9');
	if (v == 0 && nonzero)
		return refuse(S, "invalid_reading",
		              "the number %.*s is out of the range of a double",
		              (int)(len > 40 ? 40 : len), text);
	bson_t *dst = slot(S, &k, &klen);
	return appended(S, bson_append_double(dst, k, klen, v), &sc);
}

static int
on_boolean(void *ctx, bool v)
{
	struct sink *S = ctx;
	struct scalar sc = {.type = S_OTHER};
	const char *k;
	int klen;
	bson_t *dst = slot(S, &k, &klen);

	return appended(S, bson_append_bool(dst, k, klen, v), &sc);
}

static int
on_null(void *ctx)
{
	struct sink *S = ctx;
	struct scalar sc = {.type = S_OTHER};
	const char *k;
	int klen;
	bson_t *dst = slot(S, &k, &klen);

	return appended(S, bson_append_null(dst, k, klen), &sc);
}

static const struct bw_json_sink bson_sink = {
    .object_begin = on_object_begin,
    .object_end = on_object_end,
    .array_begin = on_array_begin,
    .array_end = on_array_end,
    .key = on_key,
    .string = on_string,
    .integer = on_integer,
    .real = on_real,
    .boolean = on_boolean,
    .null = on_null,
};

/* ---- the batch ---- */

struct batch {
	struct bw_arena *a;
	const char *body;
	size_t len, pos;
	const struct bw_tel_limits *lim;
	struct bw_tel_error *err;
	struct sink *sink;
	const struct bw_json_reader *reader;
	struct bw_json_error *json_err;
};

static size_t
skip_ws(const struct batch *B, size_t pos)
{
	while (pos < B->len && (B->body[pos] == ' ' || B->body[pos] == '\t' ||
	                        B->body[pos] == '\n' || B->body[pos] == '\r'))
		pos++;
	return pos;
}

/* A refusal outside any reading's JSON; in_batch: the pointer names index. */
static int fail(struct batch *B, int status, const char *code, long index, bool in_batch,
                size_t offset, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static int
fail(struct batch *B, int status, const char *code, long index, bool in_batch, size_t offset,
     const char *fmt, ...)
{
	struct bw_tel_error *e = B->err;
	va_list ap;

	e->status = status;
	e->code = code;
	e->index = index;
	e->offset = offset;
	e->pointer = in_batch ? bw_arena_printf(B->a, "/%ld", index) : "";
	if (e->pointer == NULL)
		e->pointer = "";
	e->pointer_len = strlen(e->pointer);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return -1;
}

/* The reader's error inside reading index, as the API answers it. */
static int
from_json(struct batch *B, const struct bw_json_error *je, const char *refusal, long index,
          bool in_batch)
{
	struct bw_tel_error *e = B->err;
	struct bw_buf ptr;

	switch (je->code) {
	case BW_JSON_ESYNTAX:
		e->code = "invalid_json";
		break;
	case BW_JSON_EREFUSED:
		e->code = refusal;
		break;
	case BW_JSON_ENOMEM:
	case BW_JSON_OK:
		e->code = "internal_error";
		break;
	default: /* range, depth, a key twice */
		e->code = "invalid_reading";
		break;
	}
	e->status = strcmp(e->code, "internal_error") == 0 ? 500 : 400;
	e->index = index;
	e->offset = je->offset;
	e->pointer = je->pointer;
	e->pointer_len = je->pointer_len;
	if (in_batch) {
		bw_buf_init(&ptr, B->a);
		bw_buf_printf(&ptr, "/%ld", index);
		bw_buf_append(&ptr, je->pointer, je->pointer_len);
		e->pointer = ptr.failed ? "" : bw_buf_cstr(&ptr);
		e->pointer_len = ptr.failed ? 0 : ptr.len;
	}
	memcpy(e->detail, je->detail, sizeof(e->detail));
	return -1;
}

static void
destroy_bson(void *p)
{
	bson_destroy(p);
}

/* The reading at B->pos (a '{'). */
static int
read_reading(struct batch *B, struct bw_tel_reading *r, long index, bool in_batch)
{
	size_t start = B->pos;
	struct sink *S = B->sink;

	memset(r, 0, sizeof(*r));
	r->data = bson_new();
	if (r->data == NULL || bw_arena_defer(B->a, destroy_bson, r->data) < 0) {
		bson_destroy(r->data);
		r->data = NULL;
		return fail(B, 500, "internal_error", index, in_batch, start, "out of memory");
	}
	S->cur = r;
	S->code = NULL;
	S->depth = 0;
	S->key = NULL;
	S->klen = 0;
	S->held = M_OTHER;
	if (bw_json_read_value(B->reader, B->body, B->len, &B->pos, B->json_err) < 0)
		return from_json(B, B->json_err, S->code, index, in_batch);
	if (B->pos - start > BW_TEL_MAX_READING_BYTES)
		return fail(B, 400, "invalid_reading", index, in_batch, start,
		            "the reading is %zu bytes of JSON; at most %d are allowed",
		            B->pos - start, BW_TEL_MAX_READING_BYTES);
	if (!r->has_ts)
		r->ts_ms = B->lim->now_ms;
	return 0;
}

int
bw_tel_parse(struct bw_arena *a, const char *body, size_t len, const struct bw_tel_limits *lim,
             struct bw_tel_reading **out, size_t *n, struct bw_tel_error *err)
{
	struct bw_json_error je;
	/* Not zeroed as a whole (4 KiB of bson_t): each level is set as it opens. */
	struct sink S;
	const struct bw_json_reader rd = {.arena = a,
	                                  .sink = &bson_sink,
	                                  .ctx = &S,
	                                  .max_depth = BW_TEL_MAX_DEPTH,
	                                  .unique_keys = true};
	struct batch B = {.a = a,
	                  .body = body,
	                  .len = len,
	                  .lim = lim,
	                  .err = err,
	                  .sink = &S,
	                  .reader = &rd,
	                  .json_err = &je};
	struct bw_tel_reading *rs = NULL;
	size_t count = 0, cap = 0;

	memset(err, 0, sizeof(*err));
	*out = NULL;
	*n = 0;
	S.a = a;
	S.lim = lim;
	S.err = &je;
	B.pos = skip_ws(&B, 0);
	if (B.pos >= len)
		return fail(&B, 400, "invalid_json", -1, false, B.pos, "the body is empty");
	if (body[B.pos] == '{') {
		rs = bw_arena_calloc(a, 1, sizeof(*rs));
		if (rs == NULL)
			return fail(&B, 500, "internal_error", 0, false, B.pos, "out of memory");
		if (read_reading(&B, rs, 0, false) < 0)
			return -1;
		count = 1;
	} else if (body[B.pos] == '[') {
		B.pos = skip_ws(&B, B.pos + 1);
		if (B.pos < len && body[B.pos] == ']')
			return fail(&B, 400, "invalid_reading", -1, false, B.pos,
			            "the batch is empty: send 1 to %d readings",
			            BW_TEL_MAX_READINGS);
		for (;;) {
			B.pos = skip_ws(&B, B.pos);
			/* Before the reading is read: the count is the first thing wrong. */
			if (count == BW_TEL_MAX_READINGS)
				return fail(&B, 413, "payload_too_large", (long)count, true, B.pos,
				            "more than %d readings in one batch",
				            BW_TEL_MAX_READINGS);
			if (B.pos >= len || body[B.pos] != '{')
				return fail(&B, 400, "invalid_reading", (long)count, true, B.pos,
				            "a reading must be a JSON object");
			struct bw_tel_reading *nr = bw_arena_grow(a, rs, &cap, count, sizeof(*nr));
			if (nr == NULL)
				return fail(&B, 500, "internal_error", (long)count, true, B.pos,
				            "out of memory");
			rs = nr;
			if (read_reading(&B, &rs[count], (long)count, true) < 0)
				return -1;
			count++;
			B.pos = skip_ws(&B, B.pos);
			if (B.pos < len && body[B.pos] == ',') {
				B.pos++;
				continue;
			}
			if (B.pos < len && body[B.pos] == ']') {
				B.pos++;
				break;
			}
			return fail(&B, 400, "invalid_json", -1, false, B.pos,
			            "expected ',' or ']' after a reading");
		}
	} else {
		return fail(&B, 400, "invalid_json", -1, false, B.pos,
		            "the body must be a JSON object or an array of objects");
	}
	B.pos = skip_ws(&B, B.pos);
	if (B.pos != len)
		return fail(&B, 400, "invalid_json", -1, false, B.pos,
		            "unexpected data after the JSON value");
	*out = rs;
	*n = count;
	return 0;
}

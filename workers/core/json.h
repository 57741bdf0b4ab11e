/* The one JSON reader: strict RFC 8259 in one pass, each thing it reads
 * handed to a sink. Strict means no comments, trailing commas, leading
 * zeros, NaN or single quotes; strings of valid UTF-8 whose escapes are
 * valid (a lone surrogate is refused); integers (no fraction, no
 * exponent) that fit int64; other numbers finite as doubles; nesting at
 * most max_depth; optionally (unique_keys) no name twice in one object.
 * The sink decides what the values mean: telemetry builds BSON
 * (api/telemetry_validate.c), ledger bodies a tree (core/json_tree.h).
 * Recursive descent whose depth is checked before each descent, so no
 * input can exhaust the stack; every byte it keeps lives in the arena. */
#ifndef BW_JSON_H
#define BW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_arena;

enum bw_json_code {
	BW_JSON_OK,
	BW_JSON_ESYNTAX,    /* not JSON */
	BW_JSON_ERANGE,     /* an integer past int64, a number past a double's range */
	BW_JSON_EDEPTH,     /* nesting deeper than max_depth */
	BW_JSON_EDUPLICATE, /* a name twice in one object (unique_keys) */
	BW_JSON_EREFUSED,   /* the sink said no: bw_json_refuse wrote the detail */
	BW_JSON_ENOMEM,
};

struct bw_json_error {
	enum bw_json_code code;
	size_t offset;       /* byte offset in the text where the problem was found */
	const char *pointer; /* RFC 6901, from the value read ("" = that value), arena */
	size_t pointer_len;  /* names may hold NUL: use this, not strlen */
	char detail[200];
};

/* What the sink is told, in document order: a member's name (key), then
 * its value. Strings and names are len bytes of UTF-8 that may hold NUL,
 * not NUL-terminated, pointing into the text (or into the arena when they
 * held escapes). A real also comes as written (text, len). Each callback
 * returns 0 to go on, or the code to stop with: BW_JSON_EREFUSED (return
 * bw_json_refuse(…)) or BW_JSON_ENOMEM. A refusal's pointer and offset
 * are those of the value refused (for an end, of its container; for a
 * key, of the name). A NULL callback takes the event and goes on. */
struct bw_json_sink {
	int (*object_begin)(void *ctx);
	int (*object_end)(void *ctx);
	int (*array_begin)(void *ctx);
	int (*array_end)(void *ctx);
	int (*key)(void *ctx, const char *s, size_t len);
	int (*string)(void *ctx, const char *s, size_t len);
	int (*integer)(void *ctx, int64_t v);
	int (*real)(void *ctx, double v, const char *text, size_t len);
	int (*boolean)(void *ctx, bool v);
	int (*null)(void *ctx);
};

struct bw_json_reader {
	struct bw_arena *arena;
	const struct bw_json_sink *sink;
	void *ctx;        /* the sink's */
	int max_depth;    /* levels of nesting; the value read is level 1 */
	bool unique_keys; /* a name twice in one object is BW_JSON_EDUPLICATE */
};

/* Reads the one value text holds, with whitespace around it. 0, or -1
 * with *err filled (a sink's refusal keeps the detail it wrote). */
int bw_json_read(const struct bw_json_reader *r, const char *text, size_t len,
                 struct bw_json_error *err);
/* Reads one value at text[*pos] (whitespace first is skipped) and leaves
 * *pos just past it, for a caller that walks an outer structure itself.
 * Offsets count from text; the pointer from the value read. */
int bw_json_read_value(const struct bw_json_reader *r, const char *text, size_t len, size_t *pos,
                       struct bw_json_error *err);
/* For sinks: writes err->detail and returns BW_JSON_EREFUSED. */
int bw_json_refuse(struct bw_json_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif

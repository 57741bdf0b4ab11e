/* A growable byte buffer in an arena, plus the JSON writing helpers every
 * response and log line uses. */
#ifndef BW_BUF_H
#define BW_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_arena;

struct bw_buf {
	struct bw_arena *arena; /* NULL: heap (malloc/realloc), freed with bw_buf_release */
	char *data;
	size_t len, cap;
	bool failed; /* sticky out-of-memory: later appends are no-ops */
};

void bw_buf_init(struct bw_buf *b, struct bw_arena *arena);
void bw_buf_release(struct bw_buf *b);
void bw_buf_reset(struct bw_buf *b);
void bw_buf_append(struct bw_buf *b, const void *p, size_t n);
void bw_buf_puts(struct bw_buf *b, const char *s);
void bw_buf_putc(struct bw_buf *b, char c);
void bw_buf_printf(struct bw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Always NUL-terminated (an empty buffer gives ""). */
const char *bw_buf_cstr(struct bw_buf *b);

/* Length of the valid UTF-8 sequence at s (1..4 bytes), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are refused. */
size_t bw_utf8_len(const unsigned char *s, size_t n);
/* Characters (code points) in n bytes of valid UTF-8: the API's length unit. */
size_t bw_utf8_chars(const char *s, size_t n);

/* A JSON string literal with quotes; invalid UTF-8 bytes become U+FFFD. */
void bw_json_str(struct bw_buf *b, const char *s);
void bw_json_strn(struct bw_buf *b, const char *s, size_t n);
/* "key": — with a leading comma unless first. */
void bw_json_key(struct bw_buf *b, const char *key, bool first);
void bw_json_kv_str(struct bw_buf *b, const char *key, const char *val, bool first);
void bw_json_kv_int(struct bw_buf *b, const char *key, int64_t val, bool first);
void bw_json_kv_bool(struct bw_buf *b, const char *key, bool val, bool first);
/* One step of an RFC 6901 JSON pointer: "/" and the member name, "~"
 * written ~0 and "/" written ~1 (raw; JSON-escape the whole pointer when
 * writing it as a string). n bytes: a name may hold NUL. */
void bw_json_pointer_step(struct bw_buf *b, const char *name, size_t n);

/* base64url without padding (opaque cursors). decode returns the length,
 * or -1 on a character outside the alphabet; out must hold len*3/4+1. */
void bw_base64url(struct bw_buf *b, const void *data, size_t len);
long bw_base64url_decode(const char *in, unsigned char *out, size_t outlen);

#endif

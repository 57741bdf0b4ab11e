/* The arena byte buffer, UTF-8 checks and the JSON writing helpers (buf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"

void
bw_buf_init(struct bw_buf *b, struct bw_arena *arena)
{
	memset(b, 0, sizeof(*b));
	b->arena = arena;
}

void
bw_buf_release(struct bw_buf *b)
{
	if (b->arena == NULL)
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

void
bw_buf_reset(struct bw_buf *b)
{
	b->len = 0;
	b->failed = false;
}

static bool
reserve(struct bw_buf *b, size_t extra)
{
	if (b->failed)
		return false;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p;
	if (b->arena != NULL) {
		/* Arena memory is never freed one piece at a time: copy and drop. */
		p = bw_arena_alloc(b->arena, cap);
		if (p != NULL && b->len > 0)
			memcpy(p, b->data, b->len);
	} else {
		p = realloc(b->data, cap);
	}
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void
bw_buf_append(struct bw_buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
bw_buf_puts(struct bw_buf *b, const char *s)
{
	bw_buf_append(b, s, strlen(s));
}

void
bw_buf_putc(struct bw_buf *b, char c)
{
	bw_buf_append(b, &c, 1);
}

void
bw_buf_printf(struct bw_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		bw_buf_append(b, small, (size_t)n);
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *
bw_buf_cstr(struct bw_buf *b)
{
	return b->data != NULL ? b->data : "";
}

size_t
bw_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) {
		len = 2;
		cp = c & 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3;
		cp = c & 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

size_t
bw_utf8_chars(const char *s, size_t n)
{
	size_t chars = 0;

	/* Valid UTF-8: every byte but a continuation byte starts a character. */
	for (size_t i = 0; i < n; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	return chars;
}

void
bw_json_strn(struct bw_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0; /* start of the pending run of bytes copied verbatim */

	bw_buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		const char *esc = NULL;
		char ubuf[8];

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = bw_utf8_len(s + i, n - i);
			if (l > 0) {
				i += l;
				continue;
			}
			esc = "\\ufffd";
		} else if (c == '"') {
			esc = "\\\"";
		} else if (c == '\\') {
			esc = "\\\\";
		} else if (c == '\n') {
			esc = "\\n";
		} else if (c == '\r') {
			esc = "\\r";
		} else if (c == '\t') {
			esc = "\\t";
		} else {
			snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
			esc = ubuf;
		}
		bw_buf_append(b, s + run, i - run);
		bw_buf_puts(b, esc);
		i++;
		run = i;
	}
	bw_buf_append(b, s + run, n - run);
	bw_buf_putc(b, '"');
}

void
bw_json_str(struct bw_buf *b, const char *s)
{
	if (s == NULL) {
		bw_buf_puts(b, "null");
		return;
	}
	bw_json_strn(b, s, strlen(s));
}

void
bw_json_key(struct bw_buf *b, const char *key, bool first)
{
	if (!first)
		bw_buf_putc(b, ',');
	bw_json_str(b, key);
	bw_buf_putc(b, ':');
}

void
bw_json_kv_str(struct bw_buf *b, const char *key, const char *val, bool first)
{
	bw_json_key(b, key, first);
	bw_json_str(b, val);
}

void
bw_json_kv_int(struct bw_buf *b, const char *key, int64_t val, bool first)
{
	bw_json_key(b, key, first);
	bw_buf_printf(b, "%lld", (long long)val);
}

void
bw_json_kv_bool(struct bw_buf *b, const char *key, bool val, bool first)
{
	bw_json_key(b, key, first);
	bw_buf_puts(b, val ? "true" : "false");
}

void
bw_json_pointer_step(struct bw_buf *b, const char *name, size_t n)
{
	size_t run = 0; /* start of the pending run of bytes copied as they are */

	bw_buf_putc(b, '/');
	for (size_t i = 0; i < n; i++) {
		if (name[i] != '~' && name[i] != '/')
			continue;
		bw_buf_append(b, name + run, i - run);
		bw_buf_puts(b, name[i] == '~' ? "~0" : "~1");
		run = i + 1;
	}
	bw_buf_append(b, name + run, n - run);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
bw_base64url(struct bw_buf *b, const void *data, size_t len)
{
	const unsigned char *p = data;
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			bw_buf_putc(b, b64url[(acc >> bits) & 63]);
		}
	}
	if (bits > 0)
		bw_buf_putc(b, b64url[(acc << (6 - bits)) & 63]);
}

long
bw_base64url_decode(const char *in, unsigned char *out, size_t outlen)
{
	unsigned acc = 0;
	int bits = 0;
	size_t n = 0;

	for (; *in; in++) {
		const char *c = strchr(b64url, *in);
		if (c == NULL || *in == '\0')
			return -1;
		acc = (acc << 6) | (unsigned)(c - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= outlen)
				return -1;
			out[n++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	return (long)n;
}

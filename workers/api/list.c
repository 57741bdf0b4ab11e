/* Paged lists (list.h): ?limit= and the cursors of ?after= and `next`. */
#include <string.h>

#include "api/list.h"

bool
bw_list_limit(const char *s, int *limit)
{
	size_t n = s != NULL ? strlen(s) : 0;
	int v = 0;

	if (s == NULL) {
		*limit = BW_LIST_DEFAULT;
		return true;
	}
	if (n < 1 || n > 4 || strspn(s, "0123456789") != n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v < 1 || v > BW_LIST_MAX)
		return false;
	*limit = v;
	return true;
}

long
bw_cursor_read(const char *s, unsigned char *out, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;
	long len;

	if (n == 0)
		return 0;
	/* bw_base64url writes len bytes as ceil(len * 4 / 3) characters: any
	 * other length is not a cursor, whatever it decodes to. */
	if (n > (max * 4 + 2) / 3 || (len = bw_base64url_decode(s, out, max)) < 1 ||
	    ((size_t)len * 4 + 2) / 3 != n)
		return -1;
	out[len] = '\0';
	return len;
}

void
bw_cursor_put(struct bw_buf *b, const void *raw, size_t n)
{
	bw_buf_putc(b, '"');
	bw_base64url(b, raw, n);
	bw_buf_putc(b, '"');
}

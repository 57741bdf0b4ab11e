/* Paged lists: the ledger's accounts and entries, telemetry's readings.
 * Every list reads ?limit= and ?after= alike. The cursor a page's `next`
 * carries, and ?after= gives back, is base64url of bytes only its route
 * reads (a tag or version, then the last row's key). */
#ifndef BW_LIST_H
#define BW_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define BW_LIST_DEFAULT 100  /* rows of a page without ?limit= */
#define BW_LIST_MAX     1000 /* the largest ?limit= */
#define BW_CURSOR_MAX   150  /* bytes a cursor wraps at most: 200 characters */

/* ?limit= as given: 1 to 4 decimal digits and nothing else, from 1 to
 * BW_LIST_MAX; NULL (absent) is BW_LIST_DEFAULT. False when it is not one;
 * *limit is then left alone. */
bool bw_list_limit(const char *s, int *limit);
/* ?after= as given: the bytes its cursor wraps go to out, which holds
 * max + 1 (a NUL follows them); returns their count. 0 when s is NULL or
 * empty (the first page); -1 when s is not what bw_cursor_put writes for
 * 1 to max bytes. */
long bw_cursor_read(const char *s, unsigned char *out, size_t max);
/* A page's `next`: the cursor wrapping n bytes, as a JSON string. */
void bw_cursor_put(struct bw_buf *b, const void *raw, size_t n);

#endif

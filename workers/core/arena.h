/* Per-request arena: every byte a request allocates comes from here and is
 * released in one call at the end. Library objects (PGresult, bson_t,
 * redisReply) are registered with bw_arena_defer so they go with it. */
#ifndef BW_ARENA_H
#define BW_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct bw_arena;

struct bw_arena *bw_arena_new(size_t chunk_size);
void *bw_arena_alloc(struct bw_arena *a, size_t size);
void *bw_arena_calloc(struct bw_arena *a, size_t n, size_t size);
/* Room for element n of the array p of *cap elements: p itself, or a copy
 * with twice the room (the old one stays until the arena goes), *cap
 * updated. NULL when out of memory, p left as it was. */
void *bw_arena_grow(struct bw_arena *a, void *p, size_t *cap, size_t n, size_t size);
char *bw_arena_strndup(struct bw_arena *a, const char *s, size_t n);
char *bw_arena_strdup(struct bw_arena *a, const char *s);
char *bw_arena_printf(struct bw_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *bw_arena_vprintf(struct bw_arena *a, const char *fmt, va_list ap);
/* Runs fn(p) when the arena is reset or freed, last registered first. */
int bw_arena_defer(struct bw_arena *a, void (*fn)(void *), void *p);
/* Runs the deferred cleanups and frees every chunk but the first. */
void bw_arena_reset(struct bw_arena *a);
void bw_arena_free(struct bw_arena *a);
/* Bytes handed out since the last reset (for tests and metrics). */
size_t bw_arena_used(const struct bw_arena *a);

#endif

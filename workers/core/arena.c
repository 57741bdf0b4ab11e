/* A bump allocator over a list of chunks. Large requests get a chunk of
 * their own so one big body does not make every later chunk big. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

#define ALIGN 16

struct chunk {
	struct chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *);
	void *p;
};

struct bw_arena {
	struct chunk *head; /* the first chunk, kept across resets */
	struct chunk *cur;
	struct cleanup *cleanups;
	size_t chunk_size;
	size_t handed_out;
};

static struct chunk *
chunk_new(size_t size)
{
	struct chunk *c = malloc(sizeof(*c) + size);

	if (c == NULL)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct bw_arena *
bw_arena_new(size_t chunk_size)
{
	struct bw_arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->chunk_size = chunk_size < 1024 ? 1024 : chunk_size;
	a->head = a->cur = chunk_new(a->chunk_size);
	if (a->head == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

void *
bw_arena_alloc(struct bw_arena *a, size_t size)
{
	size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	struct chunk *c = a->cur;

	if (need < size)
		return NULL;
	if (c->size - c->used < need) {
		size_t csize = need > a->chunk_size / 4 ? need : a->chunk_size;
		struct chunk *n = chunk_new(csize);

		if (n == NULL)
			return NULL;
		if (csize == need) {
			/* Oversized: link it behind cur so cur keeps its free space. */
			n->next = c->next;
			c->next = n;
			n->used = need;
			a->handed_out += need;
			return n->data;
		}
		n->next = c->next;
		c->next = n;
		a->cur = c = n;
	}
	void *p = c->data + c->used;
	c->used += need;
	a->handed_out += need;
	return p;
}

void *
bw_arena_calloc(struct bw_arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = bw_arena_alloc(a, n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

void *
bw_arena_grow(struct bw_arena *a, void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	size_t ncap = *cap == 0 ? 8 : *cap * 2;
	if (ncap <= n || size == 0 || ncap > SIZE_MAX / size) /* <= n: it wrapped */
		return NULL;
	void *np = bw_arena_alloc(a, ncap * size);
	if (np == NULL)
		return NULL;
	if (n > 0)
		memcpy(np, p, n * size);
	*cap = ncap;
	return np;
}

char *
bw_arena_strndup(struct bw_arena *a, const char *s, size_t n)
{
	char *p = bw_arena_alloc(a, n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
bw_arena_strdup(struct bw_arena *a, const char *s)
{
	return bw_arena_strndup(a, s, strlen(s));
}

char *
bw_arena_vprintf(struct bw_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	char *p = bw_arena_alloc(a, (size_t)n + 1);
	if (p != NULL)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
bw_arena_printf(struct bw_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = bw_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

int
bw_arena_defer(struct bw_arena *a, void (*fn)(void *), void *p)
{
	struct cleanup *c = bw_arena_alloc(a, sizeof(*c));

	if (c == NULL)
		return -1;
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

static void
run_cleanups(struct bw_arena *a)
{
	/* A cleanup may not allocate from the arena: the list is detached first. */
	struct cleanup *c = a->cleanups;

	a->cleanups = NULL;
	for (; c != NULL; c = c->next)
		c->fn(c->p);
}

void
bw_arena_reset(struct bw_arena *a)
{
	run_cleanups(a);
	struct chunk *c = a->head->next;
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head->next = NULL;
	a->head->used = 0;
	a->cur = a->head;
	a->handed_out = 0;
}

void
bw_arena_free(struct bw_arena *a)
{
	if (a == NULL)
		return;
	bw_arena_reset(a);
	free(a->head);
	free(a);
}

size_t
bw_arena_used(const struct bw_arena *a)
{
	return a->handed_out;
}

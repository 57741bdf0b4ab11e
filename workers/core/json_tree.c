/* The tree sink of the JSON reader (json_tree.h): each value becomes a
 * node appended to the innermost open container. */
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/json_tree.h"

struct tree {
	struct bw_arena *a;
	struct bw_json_node *root;
	struct bw_json_node **open; /* open containers, outermost first */
	struct bw_json_node **last; /* the last child of each */
	int depth;
	const char *name; /* of the member whose value comes next */
	size_t name_len;
};

/* A new node of type t in its place; NULL when out of memory. */
static struct bw_json_node *
add(struct tree *T, enum bw_json_type t)
{
	struct bw_json_node *n = bw_arena_calloc(T->a, 1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->type = t;
	if (T->depth == 0) {
		T->root = n;
		return n;
	}
	struct bw_json_node *parent = T->open[T->depth - 1];
	if (parent->type == BW_JSON_OBJECT) {
		n->name = T->name;
		n->name_len = T->name_len;
	}
	if (T->last[T->depth - 1] != NULL)
		T->last[T->depth - 1]->next = n;
	else
		parent->child = n;
	T->last[T->depth - 1] = n;
	parent->len++;
	return n;
}

static int
open_node(struct tree *T, enum bw_json_type t)
{
	struct bw_json_node *n = add(T, t);

	if (n == NULL)
		return BW_JSON_ENOMEM;
	/* The reader never opens more than max_depth levels. */
	T->open[T->depth] = n;
	T->last[T->depth] = NULL;
	T->depth++;
	return 0;
}

static int
on_object_begin(void *ctx)
{
	return open_node(ctx, BW_JSON_OBJECT);
}

static int
on_array_begin(void *ctx)
{
	return open_node(ctx, BW_JSON_ARRAY);
}

static int
on_end(void *ctx)
{
	struct tree *T = ctx;

	T->depth--;
	return 0;
}

static int
on_key(void *ctx, const char *s, size_t len)
{
	struct tree *T = ctx;

	T->name = bw_arena_strndup(T->a, s, len);
	T->name_len = len;
	return T->name != NULL ? 0 : BW_JSON_ENOMEM;
}

static int
on_string(void *ctx, const char *s, size_t len)
{
	struct tree *T = ctx;
	struct bw_json_node *n = add(T, BW_JSON_STRING);

	if (n == NULL || (n->str = bw_arena_strndup(T->a, s, len)) == NULL)
		return BW_JSON_ENOMEM;
	n->len = len;
	return 0;
}

static int
on_integer(void *ctx, int64_t v)
{
	struct bw_json_node *n = add(ctx, BW_JSON_INTEGER);

	if (n == NULL)
		return BW_JSON_ENOMEM;
	n->integer = v;
	return 0;
}

static int
on_real(void *ctx, double v, const char *text, size_t len)
{
	struct bw_json_node *n = add(ctx, BW_JSON_REAL);

	if (n == NULL)
		return BW_JSON_ENOMEM;
	n->real = v;
	return 0;
}

static int
on_boolean(void *ctx, bool v)
{
	struct bw_json_node *n = add(ctx, BW_JSON_BOOL);

	if (n == NULL)
		return BW_JSON_ENOMEM;
	n->boolean = v;
	return 0;
}

static int
on_null(void *ctx)
{
	return add(ctx, BW_JSON_NULL) != NULL ? 0 : BW_JSON_ENOMEM;
}

static const struct bw_json_sink tree_sink = {
    .object_begin = on_object_begin,
    .object_end = on_end,
    .array_begin = on_array_begin,
    .array_end = on_end,
    .key = on_key,
    .string = on_string,
    .integer = on_integer,
    .real = on_real,
    .boolean = on_boolean,
    .null = on_null,
};

struct bw_json_node *
bw_json_tree(struct bw_arena *a, const char *text, size_t len, int max_depth, bool unique_keys,
             struct bw_json_error *err)
{
	struct tree T = {.a = a};
	struct bw_json_reader r = {.arena = a,
	                           .sink = &tree_sink,
	                           .ctx = &T,
	                           .max_depth = max_depth,
	                           .unique_keys = unique_keys};

	T.open = bw_arena_calloc(a, (size_t)max_depth + 1, sizeof(*T.open));
	T.last = bw_arena_calloc(a, (size_t)max_depth + 1, sizeof(*T.last));
	if (T.open == NULL || T.last == NULL) {
		memset(err, 0, sizeof(*err));
		err->code = BW_JSON_ENOMEM;
		err->pointer = "";
		snprintf(err->detail, sizeof(err->detail), "out of memory");
		return NULL;
	}
	if (bw_json_read(&r, text, len, err) < 0)
		return NULL;
	return T.root;
}

const struct bw_json_node *
bw_json_member(const struct bw_json_node *obj, const char *name)
{
	size_t n = strlen(name);

	if (obj == NULL || obj->type != BW_JSON_OBJECT)
		return NULL;
	for (const struct bw_json_node *m = obj->child; m != NULL; m = m->next)
		if (m->name_len == n && memcmp(m->name, name, n) == 0)
			return m;
	return NULL;
}

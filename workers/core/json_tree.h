/* A JSON document as a tree in the arena, read by the strict reader
 * (json.h): what a handler that wants a few members of a small body
 * reads (the ledger's, through http/body.c). */
#ifndef BW_JSON_TREE_H
#define BW_JSON_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

enum bw_json_type {
	BW_JSON_NULL,
	BW_JSON_BOOL,
	BW_JSON_INTEGER, /* no fraction, no exponent, within int64 */
	BW_JSON_REAL,    /* any other number */
	BW_JSON_STRING,
	BW_JSON_ARRAY,
	BW_JSON_OBJECT,
};

struct bw_json_node {
	enum bw_json_type type;
	const char *name; /* a member's name, NULL for an element or the root */
	size_t name_len;
	const char *str; /* STRING */
	size_t len;      /* STRING: bytes; ARRAY, OBJECT: elements or members */
	int64_t integer;
	double real;
	bool boolean;
	struct bw_json_node *child; /* ARRAY, OBJECT: the first element or member */
	struct bw_json_node *next;  /* the next element or member of the parent */
};

/* Reads text (one value, whitespace around it) into a tree whose names
 * and strings are NUL-terminated copies in the arena (either may hold NUL
 * too: name_len, len). NULL with *err filled when the reader refuses it. */
struct bw_json_node *bw_json_tree(struct bw_arena *a, const char *text, size_t len, int max_depth,
                                  bool unique_keys, struct bw_json_error *err);
/* The first member of obj named name, or NULL (also when obj is no object). */
const struct bw_json_node *bw_json_member(const struct bw_json_node *obj, const char *name);

#endif

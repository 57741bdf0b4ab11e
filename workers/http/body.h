/* JSON request bodies of the plain API routes (accounts, transfers):
 * strict JSON (core/json.h), a top-level object, no duplicate members,
 * only the members a route knows, no member name anywhere that starts
 * with "$" or holds NUL. Everything lives in the request arena. */
#ifndef BW_BODY_H
#define BW_BODY_H

#include <stdbool.h>
#include <stdint.h>

#include "http/request.h"

struct bw_body;

enum bw_body_type {
	BW_BODY_ABSENT,
	BW_BODY_NULL,
	BW_BODY_STRING,
	BW_BODY_INTEGER,
	BW_BODY_BOOL,
	BW_BODY_OTHER, /* number with a fraction or exponent, array, object */
};

struct bw_body_value {
	enum bw_body_type type;
	const char *str; /* NUL-free UTF-8 for STRING */
	size_t len;      /* its bytes */
	int64_t integer;
	bool boolean;
};

/* Parses req->body. On failure answers 400 (invalid_json, or
 * unknown_field naming the member; 500 out of memory) and returns NULL.
 * `allowed` ends with NULL. */
struct bw_body *bw_body_parse(struct bw_request *req, const char *const *allowed);
struct bw_body_value bw_body_get(const struct bw_body *b, const char *key);

#endif

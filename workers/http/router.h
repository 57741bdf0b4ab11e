/* The route table's row type and the matcher. The table itself lives in
 * routes.c and is the only place routes are listed. */
#ifndef BW_ROUTER_H
#define BW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

typedef void (*bw_handler_fn)(struct bw_request *req);
/* An authentication method (api/auth.h): fills req->who and returns 0, or
 * sets the response (401, 429, 503 …) and returns -1. */
typedef int (*bw_auth_fn)(struct bw_request *req);

enum bw_route_flags {
	BW_ROUTE_JSON_BODY = 1 << 0, /* takes an application/json body */
};

struct bw_route {
	const char *method;
	const char *pattern; /* "/v1/accounts/{id}" */
	bw_handler_fn handler;
	bw_auth_fn auth; /* NULL: open to anyone */
	unsigned flags;
	long body_limit;   /* 0 = config body_limit */
	const char *scope; /* the caller must hold it (api/keys.h); NULL: none */
	const char *name;  /* "GET /v1/accounts/{id}": access log and metrics label */
};

extern const struct bw_route bw_routes[];
extern const size_t bw_nroutes;

enum bw_match { BW_MATCH_OK, BW_MATCH_NOT_FOUND, BW_MATCH_BAD_METHOD };

/* On OK sets req->route and its path parameters. On BAD_METHOD writes the
 * methods that exist for the path into allow ("GET, POST"). HEAD matches GET. */
enum bw_match bw_route_match(struct bw_request *req, char *allow, size_t allowlen);
/* Index of a route in bw_routes (for metrics), or bw_nroutes when unmatched. */
size_t bw_route_index(const struct bw_route *r);
/* True when r needs no scope, or who's comma list of scopes holds it. */
bool bw_route_permits(const struct bw_route *r, const struct bw_identity *who);

#endif

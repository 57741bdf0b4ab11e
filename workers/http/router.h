/* The route table's row type and the matcher. The table itself lives in
 * routes.c and is the only place routes are listed. */
#ifndef BW_ROUTER_H
#define BW_ROUTER_H

#include <stddef.h>

#include "http/request.h"

typedef void (*bw_handler_fn)(struct bw_request *req);

enum bw_route_flags {
	BW_ROUTE_AUTH = 1 << 0,      /* API key required (issue 4) */
	BW_ROUTE_JSON_BODY = 1 << 1, /* takes an application/json body */
};

struct bw_route {
	const char *method;
	const char *pattern; /* "/v1/accounts/{id}" */
	bw_handler_fn handler;
	unsigned flags;
	long body_limit; /* 0 = config body_limit */
	const char *scopes;
	const char *name; /* "GET /v1/accounts/{id}": access log and metrics label */
};

extern const struct bw_route bw_routes[];
extern const size_t bw_nroutes;

enum bw_match { BW_MATCH_OK, BW_MATCH_NOT_FOUND, BW_MATCH_BAD_METHOD };

/* On OK sets req->route and its path parameters. On BAD_METHOD writes the
 * methods that exist for the path into allow ("GET, POST"). HEAD matches GET. */
enum bw_match bw_route_match(struct bw_request *req, char *allow, size_t allowlen);
/* Index of a route in bw_routes (for metrics), or bw_nroutes when unmatched. */
size_t bw_route_index(const struct bw_route *r);

#endif

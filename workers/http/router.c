/* Linear match over the route table: a few dozen rows, compared segment by
 * segment without allocating unless a {param} matches. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "http/router.h"

/* Matches pattern against path; stores params in req when store is true. */
static bool
match_path(const char *pat, const char *path, struct bw_request *req, bool store)
{
	int n = 0;

	while (*pat != '\0' && *path != '\0') {
		if (*pat == '{') {
			const char *close = strchr(pat, '}');
			const char *end = strchr(path, '/');
			if (close == NULL)
				return false;
			if (end == NULL)
				end = path + strlen(path);
			if (end == path || n == BW_MAX_PATH_PARAMS)
				return false;
			if (store) {
				req->param_names[n] = bw_arena_strndup(req->arena, pat + 1,
				                                       (size_t)(close - pat - 1));
				req->param_values[n] =
				    bw_arena_strndup(req->arena, path, (size_t)(end - path));
			}
			n++;
			pat = close + 1;
			path = end;
			continue;
		}
		if (*pat != *path)
			return false;
		pat++;
		path++;
	}
	if (*pat != '\0' || *path != '\0')
		return false;
	if (store)
		req->nparams = n;
	return true;
}

static bool
method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

enum bw_match
bw_route_match(struct bw_request *req, char *allow, size_t allowlen)
{
	bool path_known = false;
	size_t used = 0;

	if (allowlen > 0)
		allow[0] = '\0';
	for (size_t i = 0; i < bw_nroutes; i++) {
		const struct bw_route *r = &bw_routes[i];
		if (!match_path(r->pattern, req->path, req, false))
			continue;
		if (method_matches(r->method, req->method)) {
			match_path(r->pattern, req->path, req, true);
			req->route = r;
			return BW_MATCH_OK;
		}
		path_known = true;
		if (strstr(allow, r->method) == NULL) {
			int w = snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "",
			                 r->method);
			if (w > 0 && (size_t)w < allowlen - used)
				used += (size_t)w;
		}
	}
	if (!path_known)
		return BW_MATCH_NOT_FOUND;
	if (strstr(allow, "GET") != NULL && strstr(allow, "HEAD") == NULL && used + 6 < allowlen) {
		strcat(allow, ", HEAD");
	}
	return BW_MATCH_BAD_METHOD;
}

size_t
bw_route_index(const struct bw_route *r)
{
	if (r == NULL || r < bw_routes || r >= bw_routes + bw_nroutes)
		return bw_nroutes;
	return (size_t)(r - bw_routes);
}

bool
bw_route_permits(const struct bw_route *r, const struct bw_identity *who)
{
	const char *want = r->scope;
	size_t n;

	if (want == NULL)
		return true;
	n = strlen(want);
	for (const char *s = who->scopes; s != NULL && *s;) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if (len == n && strncmp(s, want, n) == 0)
			return true;
		s = comma != NULL ? comma + 1 : NULL;
	}
	return false;
}

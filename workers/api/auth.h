/* Authentication methods ("One request, in order", step 5, in
 * workers/README.md). A route row names
 * the method that guards it (http/router.h, bw_auth_fn); the method fills
 * req->who or answers, and the pipeline then checks the route's scope the
 * same way whatever the method. */
#ifndef BW_AUTH_H
#define BW_AUTH_H

#include <stddef.h>

#include "http/request.h"

/* An API key, "Authorization: Bearer bk_<id>_<secret>". One Redis call
 * identifies the key and applies all of its rate policies, so a denied
 * request gets 429 before any database is touched. Fills req->who and the
 * RateLimit headers; returns 0 to go on, -1 when the response (401, 429,
 * 503) has been set. */
int bw_auth_api_key(struct bw_request *req);

/* IPv4 as is, IPv6 masked to its /64: one bucket per client network. */
void bw_client_prefix(const char *addr, char *out, size_t outlen);

#endif

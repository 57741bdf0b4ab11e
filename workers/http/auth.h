/* API key authentication and rate limiting, DESIGN "One request" step 3:
 * one Redis call identifies the key and applies all of its policies; a
 * denied request gets 429 before any database is touched. */
#ifndef BW_AUTH_H
#define BW_AUTH_H

#include "http/request.h"

/* Fills req->who and the rate-limit headers. Returns 0 to go on, -1 when
 * the response (401, 403, 429, 503) has been set. */
int bw_auth_request(struct bw_request *req);

/* IPv4 as is, IPv6 masked to its /64: one bucket per client network. */
void bw_client_prefix(const char *addr, char *out, size_t outlen);

#endif

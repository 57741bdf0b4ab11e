/* Building responses: JSON bodies, extra headers, RFC 9457 problems. */
#ifndef BW_RESPONSE_H
#define BW_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

const char *bw_status_reason(int status);
void bw_resp_header(struct bw_request *req, const char *name, const char *value);
/* The body is whatever has been written to req->body_out. */
void bw_resp_json(struct bw_request *req, int status);
/* application/problem+json with type, title, status, detail, code, request_id.
 * detail is printf-formatted. */
void bw_resp_problem(struct bw_request *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with extra members: `extra` is a JSON fragment ("\"k\":v,…")
 * placed before request_id. */
void bw_resp_problem_ex(struct bw_request *req, int status, const char *code, const char *extra,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A problem about one place in the request's JSON body: "pointer" (an
 * RFC 6901 pointer, pointer_len bytes: "" is the whole body) first, then
 * extra as in bw_resp_problem_ex (may be NULL). */
void bw_resp_problem_at(struct bw_request *req, int status, const char *code, const char *pointer,
                        size_t pointer_len, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* The same about a member of the body's top-level object, by its name
 * (escaped into the pointer as RFC 6901 says: "~" as ~0, "/" as ~1). */
void bw_resp_problem_member(struct bw_request *req, int status, const char *code, const char *name,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 400 invalid_parameter about a query parameter, named in "parameter";
 * the detail is the name, a space, and why (printf-formatted). */
void bw_resp_invalid_parameter(struct bw_request *req, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Retry-After for a wait of ms: whole seconds, rounded up, at least 1. */
void bw_resp_retry_after(struct bw_request *req, int64_t ms);
/* A dependency is down, busy or too slow: 503 dependency_unavailable with
 * Retry-After for retry_ms. extra as in bw_resp_problem_ex (may be NULL). */
void bw_resp_unavailable(struct bw_request *req, int64_t retry_ms, const char *extra,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

/* Building responses: the status reasons, extra headers, problem bodies. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "http/response.h"

static const struct {
	int status;
	const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {204, "No Content"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *
bw_status_reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

void
bw_resp_header(struct bw_request *req, const char *name, const char *value)
{
	bw_buf_puts(&req->headers, name);
	bw_buf_puts(&req->headers, ": ");
	bw_buf_puts(&req->headers, value);
	bw_buf_puts(&req->headers, "\r\n");
}

void
bw_resp_json(struct bw_request *req, int status)
{
	req->status = status;
	req->out_type = "application/json";
}

static void
problem(struct bw_request *req, int status, const char *code, const char *extra, const char *fmt,
        va_list ap)
{
	char *detail = bw_arena_vprintf(req->arena, fmt, ap);
	struct bw_buf *b = &req->body_out;

	bw_buf_reset(b);
	bw_buf_puts(b, "{");
	bw_json_key(b, "type", true);
	bw_buf_puts(b, "\"https://bulwark.dev/problems/");
	for (const char *p = code; *p; p++)
		bw_buf_putc(b, *p == '_' ? '-' : *p);
	bw_buf_puts(b, "\"");
	bw_json_kv_str(b, "title", bw_status_reason(status), false);
	bw_json_kv_int(b, "status", status, false);
	bw_json_kv_str(b, "detail", detail != NULL ? detail : "", false);
	bw_json_kv_str(b, "code", code, false);
	if (extra != NULL && extra[0] != '\0') {
		bw_buf_putc(b, ',');
		bw_buf_puts(b, extra);
	}
	bw_json_kv_str(b, "request_id", req->request_id, false);
	bw_buf_puts(b, "}");
	req->status = status;
	req->code = code;
	req->out_type = "application/problem+json";
}

void
bw_resp_problem(struct bw_request *req, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(req, status, code, NULL, fmt, ap);
	va_end(ap);
}

void
bw_resp_problem_ex(struct bw_request *req, int status, const char *code, const char *extra,
                   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(req, status, code, extra, fmt, ap);
	va_end(ap);
}

/* "pointer":"…" and then extra, as one extra fragment. */
static const char *
with_pointer(struct bw_request *req, const char *pointer, size_t pointer_len, const char *extra)
{
	struct bw_buf x;

	bw_buf_init(&x, req->arena);
	bw_json_key(&x, "pointer", true);
	bw_json_strn(&x, pointer, pointer_len);
	if (extra != NULL && extra[0] != '\0') {
		bw_buf_putc(&x, ',');
		bw_buf_puts(&x, extra);
	}
	return bw_buf_cstr(&x);
}

void
bw_resp_problem_at(struct bw_request *req, int status, const char *code, const char *pointer,
                   size_t pointer_len, const char *extra, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(req, status, code, with_pointer(req, pointer, pointer_len, extra), fmt, ap);
	va_end(ap);
}

void
bw_resp_problem_member(struct bw_request *req, int status, const char *code, const char *name,
                       const char *fmt, ...)
{
	struct bw_buf ptr;
	va_list ap;

	bw_buf_init(&ptr, req->arena);
	bw_json_pointer_step(&ptr, name, strlen(name));
	va_start(ap, fmt);
	problem(req, status, code, with_pointer(req, bw_buf_cstr(&ptr), ptr.len, NULL), fmt, ap);
	va_end(ap);
}

void
bw_resp_invalid_parameter(struct bw_request *req, const char *name, const char *fmt, ...)
{
	struct bw_buf x;
	va_list ap;

	va_start(ap, fmt);
	char *why = bw_arena_vprintf(req->arena, fmt, ap);
	va_end(ap);
	bw_buf_init(&x, req->arena);
	bw_json_kv_str(&x, "parameter", name, true);
	bw_resp_problem_ex(req, 400, "invalid_parameter", bw_buf_cstr(&x), "%s %s", name,
	                   why != NULL ? why : "");
}

void
bw_resp_retry_after(struct bw_request *req, int64_t ms)
{
	char num[24];
	int64_t s = (ms + 999) / 1000;

	snprintf(num, sizeof(num), "%lld", (long long)(s < 1 ? 1 : s));
	bw_resp_header(req, "Retry-After", num);
}

void
bw_resp_unavailable(struct bw_request *req, int64_t retry_ms, const char *extra, const char *fmt,
                    ...)
{
	va_list ap;

	bw_resp_retry_after(req, retry_ms);
	va_start(ap, fmt);
	problem(req, 503, "dependency_unavailable", extra, fmt, ap);
	va_end(ap);
}

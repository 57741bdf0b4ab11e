/* One request, in order: match, authenticate, read the body, run the
 * handler, send, log. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phase.h"
#include "http/pipeline.h"
#include "http/response.h"
#include "http/router.h"

static bool
is_json_type(const char *ct)
{
	static const char json[] = "application/json";

	if (ct == NULL || strncasecmp(ct, json, sizeof(json) - 1) != 0)
		return false;
	char next = ct[sizeof(json) - 1];
	return next == '\0' || next == ';' || next == ' ';
}

static void
access_log(struct bw_request *req)
{
	char fields[1024];
	struct bw_buf b;
	int64_t dur = bw_now_us() - req->start_us;

	bw_buf_init(&b, req->arena);
	bw_json_kv_str(&b, "type", "access", true);
	bw_json_kv_str(&b, "request_id", req->request_id, false);
	bw_json_kv_str(&b, "method", req->method, false);
	bw_json_kv_str(&b, "route", req->route != NULL ? req->route->pattern : "unmatched", false);
	bw_json_kv_int(&b, "status", req->status, false);
	bw_json_kv_int(&b, "duration_us", dur, false);
	if (req->code != NULL)
		bw_json_kv_str(&b, "code", req->code, false);
	snprintf(fields, sizeof(fields), "%s", bw_buf_cstr(&b));
	bw_log_fields(BW_LOG_INFO, fields, "access");
}

static void
run(struct bw_request *req)
{
	char allow[128];

	switch (bw_route_match(req, allow, sizeof(allow))) {
	case BW_MATCH_NOT_FOUND:
		bw_resp_problem(req, 404, "not_found", "no route for %s", req->path);
		return;
	case BW_MATCH_BAD_METHOD:
		bw_resp_header(req, "Allow", allow);
		bw_resp_problem(req, 405, "method_not_allowed", "%s is not allowed here; use %s",
		                req->method, allow);
		return;
	case BW_MATCH_OK:
		break;
	}
	const struct bw_route *r = req->route;
	bw_phase_begin(r->name);
	if (r->auth != NULL) {
		bw_phase_set("auth");
		if (r->auth(req) < 0)
			return;
		if (!bw_route_permits(r, &req->who)) {
			bw_resp_problem(req, 403, "insufficient_scope",
			                "this route needs the scope %s", r->scope);
			return;
		}
	}
	if (r->flags & BW_ROUTE_JSON_BODY) {
		long limit = r->body_limit > 0 ? r->body_limit : req->cfg->body_limit;
		bw_phase_set("reading");
		if (req->content_length > limit) {
			/* Answer before reading: the limit is known from the header. */
			bw_request_read_body(req, limit);
			bw_resp_problem(req, 413, "payload_too_large",
			                "body of %ld bytes exceeds the limit of %ld bytes",
			                req->content_length, limit);
			return;
		}
		if (!is_json_type(req->content_type)) {
			bw_request_read_body(req, 0);
			bw_resp_problem(req, 415, "unsupported_media_type",
			                "expected Content-Type application/json");
			return;
		}
		int st = bw_request_read_body(req, limit);
		if (st == 413) {
			bw_resp_problem(req, 413, "payload_too_large",
			                "body exceeds the limit of %ld bytes", limit);
			return;
		}
		if (st != 0) {
			bw_resp_problem(req, 400, "invalid_body",
			                "the request body was incomplete");
			return;
		}
	}
	bw_phase_set("handler");
	r->handler(req);
}

size_t
bw_http_serve(struct bw_request *req)
{
	run(req);
	/* Whatever the route did, leave stdin empty for libfcgi. */
	if (req->body == NULL)
		bw_request_read_body(req, 0);
	bw_phase_set("writing");
	bw_request_send(req);
	if (req->cfg->access_log)
		access_log(req);
	return bw_route_index(req->route);
}

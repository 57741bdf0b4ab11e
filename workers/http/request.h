/* One HTTP request as a worker sees it: FastCGI params, the body, path
 * parameters from the route, and the response being built. Everything is
 * allocated from req->arena. */
#ifndef BW_REQUEST_H
#define BW_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct bw_arena;
struct bw_route;
struct bw_config;
struct bw_fcgi;

#define BW_MAX_PATH_PARAMS 4

/* A rate policy as applied to this request (for headers and whoami). */
struct bw_policy_state {
	const char *name; /* "key", "tenant" */
	const char *rate; /* as configured, e.g. "0.5" */
	int64_t burst;
	int64_t interval_us;
	int64_t remaining;
	int64_t reset_us;
	int64_t retry_us;
};

/* Who is calling, once auth.c has accepted the API key. */
struct bw_identity {
	bool authenticated;
	const char *tenant_id;
	const char *key_id;
	const char *scopes; /* comma-separated */
	int npolicies;
	struct bw_policy_state policies[2];
};

struct bw_request {
	struct bw_arena *arena;
	const struct bw_config *cfg;
	struct bw_fcgi *conn; /* the FastCGI connection; only request.c looks inside */
	int64_t start_us;

	const char *method;
	const char *path; /* without the query string, not decoded */
	const char *query;
	const char *request_id;
	const char *content_type;
	const char *remote_addr;
	long content_length; /* -1 when absent */

	const struct bw_route *route;
	int nparams;
	const char *param_names[BW_MAX_PATH_PARAMS];
	const char *param_values[BW_MAX_PATH_PARAMS];

	char *body;
	size_t body_len;

	struct bw_identity who;

	/* The response. */
	int status;
	struct bw_buf headers; /* "Name: value\r\n" lines beyond the standard ones */
	struct bw_buf body_out;
	const char *out_type;
	const char *code; /* problem code, for the access log */
};

/* The FastCGI connection a worker serves its requests on (libfcgi's
 * FCGX_Request). libfcgi's rules, kept here so that no other file needs
 * fcgiapp.h:
 * - its poll timeouts come from the environment, read once by FCGX_Init:
 *   bw_fcgi_init sets them first;
 * - FCGX_Init installs libfcgi's own signal handlers: the worker installs
 *   its own after bw_fcgi_init;
 * - an accepted connection is close-on-exec;
 * - its accept waits (poll, up to the keeper timeout) for the connection's
 *   first bytes and drops the connection when a signal interrupts that
 *   wait: call bw_fcgi_accept with the worker's signals held, and only
 *   when the listen socket is readable (it is non-blocking, so a
 *   connection another worker took costs -EAGAIN, not a wait). */
int bw_fcgi_init(int keeper_timeout_ms, int close_timeout_ms);
/* A connection slot that accepts on listen_fd, which it makes non-blocking
 * (for every process that shares it); NULL on failure. */
struct bw_fcgi *bw_fcgi_open(int listen_fd);
/* Takes the next request: 0; -EAGAIN when no connection was waiting; or
 * another negative errno. */
int bw_fcgi_accept(struct bw_fcgi *c);
/* Ends an accepted request that will not be answered. */
void bw_fcgi_skip(struct bw_fcgi *c);
/* Frees the slot and closes its connection (NULL is a no-op). */
void bw_fcgi_close(struct bw_fcgi *c);

/* Fills the request fields from the FastCGI params of conn (NULL: none). */
int bw_request_init(struct bw_request *req, struct bw_arena *arena, const struct bw_config *cfg,
                    struct bw_fcgi *conn);
/* A request header by its CGI name ("HTTP_AUTHORIZATION"), or NULL. */
const char *bw_request_param(const struct bw_request *req, const char *name);
const char *bw_request_path_param(const struct bw_request *req, const char *name);
/* Decoded value of a query-string argument, or NULL when absent. */
const char *bw_request_query(const struct bw_request *req, const char *name);
/* Reads the body up to limit. Returns 0, or the HTTP status to answer
 * (413 over the limit, 400 when truncated). Always consumes stdin to EOF so
 * the connection is left clean. */
int bw_request_read_body(struct bw_request *req, long limit);
/* True when the client (nginx) already closed the connection. */
bool bw_request_client_gone(const struct bw_request *req);
/* Writes status line, headers and body to the FastCGI stream. */
int bw_request_send(struct bw_request *req);
/* Ends the request and its connection (FCGX_Finish_r), without libfcgi's
 * lingering close when nginx has nothing left to send. */
void bw_request_finish(struct bw_request *req);

#endif

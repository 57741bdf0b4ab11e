/* The FastCGI side of a worker: the connection (accept, finish), and each
 * request's params in, body in, response out. The only file that includes
 * fcgiapp.h. */
#include <ctype.h>
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/pid.h"
#include "core/arena.h"
#include "core/clock.h"
#include "http/request.h"
#include "http/response.h"

/* Reading past this while draining means a peer we should not wait for. */
#define DRAIN_MAX (64L * 1024 * 1024)

struct bw_fcgi {
	FCGX_Request r;
};

int
bw_fcgi_init(int keeper_timeout_ms, int close_timeout_ms)
{
	char env[32];

	snprintf(env, sizeof(env), "%d", keeper_timeout_ms);
	setenv("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT", env, 1);
	snprintf(env, sizeof(env), "%d", close_timeout_ms);
	setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", env, 1);
	return FCGX_Init() == 0 ? 0 : -1;
}

struct bw_fcgi *
bw_fcgi_open(int listen_fd)
{
	struct bw_fcgi *c = malloc(sizeof(*c));

	int fl = fcntl(listen_fd, F_GETFL);

	if (c == NULL)
		return NULL;
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    FCGX_InitRequest(&c->r, listen_fd, 0) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

int
bw_fcgi_accept(struct bw_fcgi *c)
{
	int rc = FCGX_Accept_r(&c->r);

	if (rc < 0)
		return rc;
	fcntl(c->r.ipcFd, F_SETFD, FD_CLOEXEC);
	return 0;
}

void
bw_fcgi_skip(struct bw_fcgi *c)
{
	FCGX_Finish_r(&c->r);
}

void
bw_fcgi_close(struct bw_fcgi *c)
{
	if (c == NULL)
		return;
	FCGX_Free(&c->r, 1);
	free(c);
}

const char *
bw_request_param(const struct bw_request *req, const char *name)
{
	return req->conn != NULL ? FCGX_GetParam(name, req->conn->r.envp) : NULL;
}

static void
make_request_id(struct bw_request *req)
{
	static unsigned long counter;
	req->request_id = bw_arena_printf(req->arena, "%08x%08lx%016llx", (unsigned)bw_pid(),
	                                  ++counter, (unsigned long long)bw_now_us());
}

int
bw_request_init(struct bw_request *req, struct bw_arena *arena, const struct bw_config *cfg,
                struct bw_fcgi *conn)
{
	memset(req, 0, sizeof(*req));
	req->arena = arena;
	req->cfg = cfg;
	req->conn = conn;
	req->start_us = bw_now_us();
	req->content_length = -1;
	bw_buf_init(&req->headers, arena);
	bw_buf_init(&req->body_out, arena);

	const char *m = bw_request_param(req, "REQUEST_METHOD");
	req->method = m != NULL ? m : "GET";
	const char *uri = bw_request_param(req, "REQUEST_URI");
	if (uri == NULL)
		uri = bw_request_param(req, "SCRIPT_NAME");
	if (uri == NULL)
		uri = "/";
	const char *q = strchr(uri, '?');
	if (q != NULL) {
		req->path = bw_arena_strndup(arena, uri, (size_t)(q - uri));
		req->query = q + 1;
	} else {
		req->path = uri;
		req->query = bw_request_param(req, "QUERY_STRING");
	}
	if (req->path == NULL)
		return -1;
	const char *rid = bw_request_param(req, "REQUEST_ID");
	if (rid == NULL || rid[0] == '\0')
		rid = bw_request_param(req, "HTTP_X_REQUEST_ID");
	/* Only a plain token is echoed back: a client value goes into headers and logs. */
	if (rid != NULL && rid[0] != '\0' && strlen(rid) <= 64 &&
	    strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
	        strlen(rid))
		req->request_id = rid;
	else
		make_request_id(req);
	req->content_type = bw_request_param(req, "CONTENT_TYPE");
	req->remote_addr = bw_request_param(req, "REMOTE_ADDR");
	const char *cl = bw_request_param(req, "CONTENT_LENGTH");
	if (cl != NULL && cl[0] != '\0') {
		char *end;
		errno = 0;
		long v = strtol(cl, &end, 10);
		if (errno == 0 && *end == '\0' && v >= 0)
			req->content_length = v;
	}
	return 0;
}

const char *
bw_request_path_param(const struct bw_request *req, const char *name)
{
	for (int i = 0; i < req->nparams; i++)
		if (strcmp(req->param_names[i], name) == 0)
			return req->param_values[i];
	return NULL;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *
url_decode(struct bw_arena *a, const char *s, size_t n)
{
	char *out = bw_arena_alloc(a, n + 1);
	size_t j = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[j++] = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
		           hexval((unsigned char)s[i + 2]) >= 0) {
			out[j++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
			                  hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

const char *
bw_request_query(const struct bw_request *req, const char *name)
{
	const char *q = req->query;
	size_t nlen = strlen(name);

	while (q != NULL && *q != '\0') {
		const char *amp = strchr(q, '&');
		size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq != NULL ? (size_t)(eq - q) : len;
		if (klen == nlen && memcmp(q, name, nlen) == 0) {
			if (eq == NULL)
				return "";
			return url_decode(req->arena, eq + 1, len - klen - 1);
		}
		q = amp != NULL ? amp + 1 : NULL;
	}
	return NULL;
}

/* Reads and discards what is left of stdin, so libfcgi never finds stray
 * STDIN records where it expects the next request. */
static void
drain(FCGX_Request *r, long already)
{
	char scratch[8192];
	long total = already;

	while (total < DRAIN_MAX) {
		int n = FCGX_GetStr(scratch, sizeof(scratch), r->in);
		if (n <= 0)
			break;
		total += n;
	}
}

int
bw_request_read_body(struct bw_request *req, long limit)
{
	FCGX_Request *r = &req->conn->r;

	if (req->content_length > limit) {
		drain(r, 0);
		return 413;
	}
	size_t cap = req->content_length > 0 ? (size_t)req->content_length : 0;
	char *buf = bw_arena_alloc(req->arena, cap + 1);
	size_t len = 0;
	if (buf == NULL)
		return 503;
	for (;;) {
		if (len == cap) {
			/* Without a Content-Length, or a lying one: grow up to the limit. */
			if ((long)cap >= limit) {
				char probe;
				if (FCGX_GetStr(&probe, 1, r->in) > 0) {
					drain(r, (long)len + 1);
					return 413;
				}
				break;
			}
			size_t ncap = cap ? cap * 2 : 8192;
			if ((long)ncap > limit)
				ncap = (size_t)limit;
			char *nb = bw_arena_alloc(req->arena, ncap + 1);
			if (nb == NULL)
				return 503;
			memcpy(nb, buf, len);
			buf = nb;
			cap = ncap;
		}
		int n = FCGX_GetStr(buf + len, (int)(cap - len), r->in);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	req->body = buf;
	req->body_len = len;
	if (req->content_length >= 0 && (long)len != req->content_length)
		return 400;
	return 0;
}

bool
bw_request_client_gone(const struct bw_request *req)
{
	FCGX_Request *r = &req->conn->r;
	struct pollfd p = {.fd = r->ipcFd, .events = POLLRDHUP};

	if (poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void
bw_request_finish(struct bw_request *req)
{
	FCGX_Request *r = &req->conn->r;
	int unread = -1;

	/* libfcgi closes by shutting down its side and waiting for nginx to
	 * close first, so that data nginx is still sending cannot reset the
	 * connection under the response. With the end of stdin seen (the
	 * pipeline reads stdin to its end), no read error and nothing unread
	 * in the socket, nginx has nothing left to send: a plain close loses
	 * nothing and spares the worker a sleep and a wakeup per request. */
	if (FCGX_HasSeenEOF(r->in) == EOF && FCGX_GetError(r->in) == 0 &&
	    ioctl(r->ipcFd, FIONREAD, &unread) == 0 && unread == 0)
		FCGX_Detach(r);
	FCGX_Finish_r(r);
}

int
bw_request_send(struct bw_request *req)
{
	FCGX_Request *r = &req->conn->r;
	char head[512];

	if (req->status == 0)
		req->status = 200;
	int n =
	    snprintf(head, sizeof(head),
	             "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Request-Id: "
	             "%s\r\nCache-Control: no-store\r\n",
	             req->status, bw_status_reason(req->status),
	             req->out_type != NULL ? req->out_type : "application/json", req->body_out.len,
	             req->request_id);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (FCGX_PutStr(head, n, r->out) < 0)
		return -1;
	if (req->headers.len > 0 &&
	    FCGX_PutStr(req->headers.data, (int)req->headers.len, r->out) < 0)
		return -1;
	if (FCGX_PutStr("\r\n", 2, r->out) < 0)
		return -1;
	bool head_only = strcmp(req->method, "HEAD") == 0;
	if (!head_only && req->body_out.len > 0 &&
	    FCGX_PutStr(req->body_out.data, (int)req->body_out.len, r->out) < 0)
		return -1;
	return 0;
}

/* http/request.c without a live FastCGI connection: a param array and
 * streams of our own stand in for libfcgi's (request.c is included for
 * struct bw_fcgi, h2o's trick). */
#include "../unit.h"

#include <sys/socket.h>

#include "../../../workers/http/request.c"
#include "core/config.h"

/* An input stream that hands out its bytes `chunk` at a time, then EOF. */
struct feed {
	const char *p;
	size_t left, chunk;
};

struct fake {
	struct bw_arena *arena;
	struct bw_config cfg;
	struct bw_fcgi conn;
	FCGX_Stream in, out;
	struct feed feed;
	unsigned char outbuf[4096];
	struct bw_request req;
};

static void
feed_fill(FCGX_Stream *s)
{
	struct feed *f = s->data;
	size_t n = f->left < f->chunk ? f->left : f->chunk;

	if (n == 0) {
		s->isClosed = 1;
		return;
	}
	s->rdNext = (unsigned char *)f->p;
	s->stop = s->rdNext + n;
	f->p += n;
	f->left -= n;
}

static void
out_full(FCGX_Stream *s, int do_close)
{
	s->isClosed = 1; /* the test buffer is never meant to fill */
}

/* A request with env (NULL-terminated "NAME=value" strings) and a body. */
static struct bw_request *
fake_request(struct fake *f, char **env, const char *body, size_t chunk)
{
	memset(f, 0, sizeof(*f));
	f->arena = bw_arena_new(4096);
	f->conn.r.envp = env;
	f->conn.r.ipcFd = -1;
	f->conn.r.in = &f->in;
	f->conn.r.out = &f->out;
	f->feed = (struct feed){body, body != NULL ? strlen(body) : 0, chunk};
	f->in.isReader = 1;
	f->in.data = &f->feed;
	f->in.fillBuffProc = feed_fill;
	f->out.wrNext = f->outbuf;
	f->out.stop = f->outbuf + sizeof(f->outbuf);
	f->out.emptyBuffProc = out_full;
	assert_int_equal(bw_request_init(&f->req, f->arena, &f->cfg, &f->conn), 0);
	return &f->req;
}

static void
fake_free(struct fake *f)
{
	bw_arena_free(f->arena);
}

static void
test_uri_splits_into_path_and_query(void **state)
{
	char *env[] = {"REQUEST_METHOD=POST", "REQUEST_URI=/v1/accounts?limit=5&x=a%20b",
	               "QUERY_STRING=ignored=1", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_string_equal(req->method, "POST");
	assert_string_equal(req->path, "/v1/accounts");
	assert_string_equal(req->query, "limit=5&x=a%20b");
	assert_string_equal(bw_request_query(req, "limit"), "5");
	assert_string_equal(bw_request_query(req, "x"), "a b");
	assert_null(bw_request_query(req, "ignored"));
	fake_free(&f);
}

static void
test_script_name_and_query_string(void **state)
{
	char *env[] = {"SCRIPT_NAME=/healthz", "QUERY_STRING=a=1", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_string_equal(req->method, "GET");
	assert_string_equal(req->path, "/healthz");
	assert_string_equal(bw_request_query(req, "a"), "1");
	fake_free(&f);
}

static void
test_defaults_without_params(void **state)
{
	char *env[] = {NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_string_equal(req->method, "GET");
	assert_string_equal(req->path, "/");
	assert_null(req->query);
	assert_null(bw_request_query(req, "a"));
	assert_null(req->content_type);
	assert_null(req->remote_addr);
	assert_int_equal(req->content_length, -1);
	fake_free(&f);

	/* No connection at all: every param is absent. */
	struct bw_request bare;
	struct bw_arena *a = bw_arena_new(1024);
	assert_int_equal(bw_request_init(&bare, a, NULL, NULL), 0);
	assert_null(bw_request_param(&bare, "REQUEST_METHOD"));
	assert_string_equal(bare.path, "/");
	bw_arena_free(a);
}

static void
test_header_lookup_by_cgi_name(void **state)
{
	char *env[] = {"HTTP_AUTHORIZATION=Bearer k.s", "HTTP_X=1", "CONTENT_TYPE=application/json",
	               "REMOTE_ADDR=127.0.0.9", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_string_equal(bw_request_param(req, "HTTP_AUTHORIZATION"), "Bearer k.s");
	assert_string_equal(bw_request_param(req, "HTTP_X"), "1");
	assert_null(bw_request_param(req, "HTTP_AUTH")); /* a prefix is not a name */
	assert_null(bw_request_param(req, "HTTP_X_REQUEST_ID"));
	assert_string_equal(req->content_type, "application/json");
	assert_string_equal(req->remote_addr, "127.0.0.9");
	fake_free(&f);
}

static bool
is_generated_id(const char *id)
{
	return strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

/* The request id a request with these two params ends up with. */
static const char *
request_id(struct fake *f, const char *rid, const char *xrid)
{
	static char a[128], b[128];
	static char *env[3];
	int n = 0;

	if (rid != NULL) {
		snprintf(a, sizeof(a), "REQUEST_ID=%s", rid);
		env[n++] = a;
	}
	if (xrid != NULL) {
		snprintf(b, sizeof(b), "HTTP_X_REQUEST_ID=%s", xrid);
		env[n++] = b;
	}
	env[n] = NULL;
	return fake_request(f, env, NULL, 1)->request_id;
}

static void
test_request_id_only_a_plain_token(void **state)
{
	char max[66];
	struct fake f;

	assert_string_equal(request_id(&f, "nginx-1.a_B", "client"), "nginx-1.a_B");
	fake_free(&f);
	assert_string_equal(request_id(&f, "", "client-2"), "client-2");
	fake_free(&f);
	assert_string_equal(request_id(&f, NULL, "client-3"), "client-3");
	fake_free(&f);
	memset(max, 'r', 64);
	max[64] = '\0';
	assert_string_equal(request_id(&f, max, NULL), max);
	fake_free(&f);

	/* Anything else is replaced: it would go into headers and logs. */
	const char *refused[] = {"a b", "x\"y", "semi;colon", "tab\t", "é"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_true(is_generated_id(request_id(&f, refused[i], NULL)));
		fake_free(&f);
	}
	strcat(max, "r"); /* 65 characters */
	assert_true(is_generated_id(request_id(&f, max, NULL)));
	fake_free(&f);
	assert_true(is_generated_id(request_id(&f, NULL, NULL)));
	fake_free(&f);
	/* Two generated ids differ. */
	char first[33];
	snprintf(first, sizeof(first), "%s", request_id(&f, NULL, NULL));
	fake_free(&f);
	assert_string_not_equal(request_id(&f, NULL, NULL), first);
	fake_free(&f);
}

static long
content_length(const char *value)
{
	char param[64];
	char *env[] = {param, NULL};
	struct fake f;

	snprintf(param, sizeof(param), "CONTENT_LENGTH=%s", value);
	long n = fake_request(&f, env, NULL, 1)->content_length;
	fake_free(&f);
	return n;
}

static void
test_content_length(void **state)
{
	assert_int_equal(content_length("12"), 12);
	assert_int_equal(content_length("0"), 0);
	assert_int_equal(content_length(""), -1);
	assert_int_equal(content_length("-1"), -1);
	assert_int_equal(content_length("12x"), -1);
	assert_int_equal(content_length("99999999999999999999999"), -1);
}

static void
test_query_decoding_and_lookup(void **state)
{
	char *env[] = {"QUERY_STRING=ab=2&a=1&a=3&b=&c&d=%41%2f+x&e=%zz%4&f=%&%67=7", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_string_equal(bw_request_query(req, "a"), "1"); /* the first one */
	assert_string_equal(bw_request_query(req, "ab"), "2");
	assert_string_equal(bw_request_query(req, "b"), "");
	assert_string_equal(bw_request_query(req, "c"), "");
	assert_string_equal(bw_request_query(req, "d"), "A/ x");
	assert_string_equal(bw_request_query(req, "e"), "%zz%4"); /* bad escapes stay as sent */
	assert_string_equal(bw_request_query(req, "f"), "%");
	assert_null(bw_request_query(req, "g")); /* names are not decoded */
	assert_string_equal(bw_request_query(req, "%67"), "7");
	assert_null(bw_request_query(req, "z"));
	assert_null(bw_request_query(req, ""));
	fake_free(&f);
}

static void
test_path_params(void **state)
{
	struct bw_request req;

	memset(&req, 0, sizeof(req));
	req.nparams = 2;
	req.param_names[0] = "id";
	req.param_values[0] = "acc_1";
	req.param_names[1] = "name";
	req.param_values[1] = "n";
	assert_string_equal(bw_request_path_param(&req, "id"), "acc_1");
	assert_string_equal(bw_request_path_param(&req, "name"), "n");
	assert_null(bw_request_path_param(&req, "i"));
}

/* Reads a body of `body` with the given CONTENT_LENGTH (NULL: none). */
static int
read_body(struct fake *f, const char *cl, const char *body, long limit)
{
	static char param[64];
	static char *env[2];

	env[0] = NULL;
	if (cl != NULL) {
		snprintf(param, sizeof(param), "CONTENT_LENGTH=%s", cl);
		env[0] = param;
	}
	return bw_request_read_body(fake_request(f, env, body, 3), limit);
}

static void
test_read_body(void **state)
{
	struct fake f;

	assert_int_equal(read_body(&f, "5", "hello", 10), 0);
	assert_string_equal(f.req.body, "hello");
	assert_int_equal(f.req.body_len, 5);
	fake_free(&f);
	/* Without a Content-Length the buffer grows up to the limit. */
	assert_int_equal(read_body(&f, NULL, "hello, world", 100), 0);
	assert_string_equal(f.req.body, "hello, world");
	fake_free(&f);
	assert_int_equal(read_body(&f, NULL, "", 100), 0);
	assert_string_equal(f.req.body, "");
	fake_free(&f);
	/* Exactly the limit is fine; one byte more is not. */
	assert_int_equal(read_body(&f, NULL, "0123456789", 10), 0);
	assert_int_equal(f.req.body_len, 10);
	fake_free(&f);
}

static void
test_read_body_refusals_drain_stdin(void **state)
{
	struct fake f;

	/* Over the limit by its header: answered before reading, stdin drained. */
	assert_int_equal(read_body(&f, "20", "01234567890123456789", 10), 413);
	assert_null(f.req.body);
	assert_int_equal(f.feed.left, 0);
	assert_true(f.in.isClosed);
	fake_free(&f);
	/* A body longer than the limit without a Content-Length. */
	assert_int_equal(read_body(&f, NULL, "01234567890", 10), 413);
	assert_int_equal(f.feed.left, 0);
	assert_true(f.in.isClosed);
	fake_free(&f);
	/* A Content-Length that lies, either way. */
	assert_int_equal(read_body(&f, "10", "hello", 100), 400);
	fake_free(&f);
	assert_int_equal(read_body(&f, "3", "hello", 100), 400);
	fake_free(&f);
}

static void
test_send_writes_status_headers_body(void **state)
{
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_ID=rid-1", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	req->status = 201;
	bw_buf_puts(&req->headers, "Location: /v1/accounts/a\r\n");
	bw_buf_puts(&req->body_out, "{}");
	assert_int_equal(bw_request_send(req), 0);
	*f.out.wrNext = '\0';
	assert_string_equal((char *)f.outbuf, "Status: 201 Created\r\n"
	                                      "Content-Type: application/json\r\n"
	                                      "Content-Length: 2\r\n"
	                                      "X-Request-Id: rid-1\r\n"
	                                      "Cache-Control: no-store\r\n"
	                                      "Location: /v1/accounts/a\r\n"
	                                      "\r\n"
	                                      "{}");
	fake_free(&f);
}

static void
test_send_head_has_no_body(void **state)
{
	char *env[] = {"REQUEST_METHOD=HEAD", "REQUEST_ID=r", NULL};
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	req->out_type = "text/plain";
	bw_buf_puts(&req->body_out, "ok");
	assert_int_equal(bw_request_send(req), 0);
	assert_int_equal(req->status, 200); /* 0 means 200 */
	*f.out.wrNext = '\0';
	assert_string_equal((char *)f.outbuf, "Status: 200 OK\r\n"
	                                      "Content-Type: text/plain\r\n"
	                                      "Content-Length: 2\r\n"
	                                      "X-Request-Id: r\r\n"
	                                      "Cache-Control: no-store\r\n"
	                                      "\r\n");
	fake_free(&f);
}

static void
test_client_gone(void **state)
{
	char *env[] = {NULL};
	int sv[2];
	struct fake f;
	struct bw_request *req = fake_request(&f, env, NULL, 1);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f.conn.r.ipcFd = sv[0];
	assert_false(bw_request_client_gone(req));
	close(sv[1]);
	assert_true(bw_request_client_gone(req));
	close(sv[0]);
	fake_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_splits_into_path_and_query),
	    cmocka_unit_test(test_script_name_and_query_string),
	    cmocka_unit_test(test_defaults_without_params),
	    cmocka_unit_test(test_header_lookup_by_cgi_name),
	    cmocka_unit_test(test_request_id_only_a_plain_token),
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_query_decoding_and_lookup),
	    cmocka_unit_test(test_path_params),
	    cmocka_unit_test(test_read_body),
	    cmocka_unit_test(test_read_body_refusals_drain_stdin),
	    cmocka_unit_test(test_send_writes_status_headers_body),
	    cmocka_unit_test(test_send_head_has_no_body),
	    cmocka_unit_test(test_client_gone),
	};
	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}

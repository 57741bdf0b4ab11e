/* The master's status socket: clients are read without blocking on each
 * tick of the master loop and answered once their request line is in. The
 * pages come from the pool's snapshot (struct bw_pool_source), whose slot
 * views went through bw_slot_read, so a corrupt slot cannot break them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/io.h"
#include "http/router.h"
#include "pool/listen.h"
#include "pool/status.h"
#include "store/store.h"

#define READ_WAIT_MS   100
#define STATUS_READ_MS 1000

static void
render_status(const struct bw_pool_source *src, struct bw_buf *b)
{
	struct bw_pool_stats s;
	struct bw_pool_process p;
	int64_t now_us = bw_now_us();

	src->stats(src->ctx, &s);
	uint64_t requests = 0;
	for (int r = 0; r < BW_SB_ROUTES; r++)
		for (int k = 0; k < BW_SB_CLASSES; k++)
			requests += s.sum.requests[r][k];

	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "pid", getpid(), true);
	bw_json_kv_int(b, "generation", s.generation, false);
	bw_json_kv_str(b, "state", s.state, false);
	bw_json_kv_bool(b, "ready", s.ready, false);
	bw_json_kv_bool(b, "crash_breaker", s.crash_breaker, false);
	bw_json_kv_int(b, "workers_configured", s.workers_configured, false);
	bw_json_key(b, "workers", false);
	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "total", s.workers_total, true);
	bw_json_kv_int(b, "ready", s.workers_ready, false);
	bw_json_kv_int(b, "idle", s.by_state[BW_SLOT_IDLE], false);
	bw_json_kv_int(b, "busy", s.by_state[BW_SLOT_BUSY], false);
	bw_json_kv_int(b, "starting", s.by_state[BW_SLOT_STARTING], false);
	bw_json_kv_int(b, "exiting", s.by_state[BW_SLOT_EXITING], false);
	bw_buf_puts(b, "}");
	bw_json_key(b, "listen_queue", false);
	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "depth", s.queue_depth, true);
	bw_json_kv_int(b, "backlog", s.backlog, false);
	bw_buf_puts(b, "}");
	bw_json_kv_int(b, "requests_total", (int64_t)requests, false);
	bw_json_kv_int(b, "respawns",
	               (int64_t)(s.spawns > (uint64_t)s.workers_configured
	                             ? s.spawns - (uint64_t)s.workers_configured
	                             : 0),
	               false);
	bw_json_key(b, "exits", false);
	bw_buf_puts(b, "{");
	for (int r = 0; r < BW_CHILD_NEXITS; r++)
		bw_json_kv_int(b, bw_child_exit_name((enum bw_child_exit)r), (int64_t)s.exits[r],
		               r == 0);
	bw_buf_puts(b, "}");
	bw_json_key(b, "processes", false);
	bw_buf_puts(b, "[");
	bool first = true;
	for (int slot = 0; src->next(src->ctx, &slot, &p);) {
		const struct bw_slot_view *v = &p.view;
		int64_t elapsed = v->state == BW_SLOT_BUSY && v->request_start_us > 0
		                      ? (now_us - v->request_start_us) / 1000
		                      : 0;
		bw_buf_puts(b, first ? "{" : ",{");
		first = false;
		bw_json_kv_int(b, "slot", p.slot, true);
		bw_json_kv_int(b, "pid", p.pid, false);
		bw_json_kv_int(b, "generation", p.generation, false);
		bw_json_kv_str(b, "state", bw_slot_state_name(v->state), false);
		bw_json_kv_str(b, "route", v->route, false);
		bw_json_kv_str(b, "phase", v->phase, false);
		bw_json_kv_int(b, "elapsed_ms", elapsed, false);
		bw_json_kv_int(b, "requests", (int64_t)v->requests, false);
		bw_buf_puts(b, "}");
	}
	bw_buf_puts(b, "]}");
}

static void
render_metrics(const struct bw_pool_source *src, struct bw_buf *b)
{
	struct bw_pool_stats s;
	const struct bw_counters *sum = &s.sum;

	src->stats(src->ctx, &s);

	bw_buf_puts(b, "# HELP bulwark_requests_total Requests served, by route and status class.\n"
	               "# TYPE bulwark_requests_total counter\n");
	for (size_t r = 0; r <= bw_nroutes && r < BW_SB_ROUTES; r++) {
		const char *name = r < bw_nroutes ? bw_routes[r].name : "unmatched";
		for (int k = 0; k < BW_SB_CLASSES; k++) {
			if (sum->requests[r][k] == 0)
				continue;
			bw_buf_printf(b,
			              "bulwark_requests_total{route=\"%s\",class=\"%dxx\"} %llu\n",
			              name, k + 1, (unsigned long long)sum->requests[r][k]);
		}
	}
	bw_buf_puts(b, "# HELP bulwark_request_duration_seconds Time from accept to response.\n"
	               "# TYPE bulwark_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (int k = 0; k < BW_SB_BUCKETS; k++) {
		cum += sum->duration_buckets[k];
		if (k < BW_SB_BUCKETS - 1)
			bw_buf_printf(b,
			              "bulwark_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			              bw_sb_bucket_bounds[k], (unsigned long long)cum);
		else
			bw_buf_printf(b,
			              "bulwark_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			              (unsigned long long)cum);
	}
	bw_buf_printf(b, "bulwark_request_duration_seconds_sum %.6f\n",
	              (double)sum->duration_us_sum / 1e6);
	bw_buf_printf(b, "bulwark_request_duration_seconds_count %llu\n", (unsigned long long)cum);

	bw_buf_puts(
	    b, "# HELP bulwark_workers Worker processes by state.\n# TYPE bulwark_workers gauge\n");
	for (int st = BW_SLOT_STARTING; st < BW_SLOT_NSTATES; st++)
		bw_buf_printf(b, "bulwark_workers{state=\"%s\"} %d\n",
		              bw_slot_state_name((enum bw_slot_state)st), s.by_state[st]);
	bw_buf_printf(b,
	              "# HELP bulwark_workers_configured Configured pool size.\n"
	              "# TYPE bulwark_workers_configured gauge\nbulwark_workers_configured %d\n",
	              s.workers_configured);
	bw_buf_puts(b, "# HELP bulwark_worker_exits_total Worker exits by reason.\n"
	               "# TYPE bulwark_worker_exits_total counter\n");
	for (int r = 0; r < BW_CHILD_NEXITS; r++)
		bw_buf_printf(b, "bulwark_worker_exits_total{reason=\"%s\"} %llu\n",
		              bw_child_exit_name((enum bw_child_exit)r),
		              (unsigned long long)s.exits[r]);
	bw_buf_printf(
	    b,
	    "# HELP bulwark_worker_spawns_total Workers forked.\n"
	    "# TYPE bulwark_worker_spawns_total counter\nbulwark_worker_spawns_total %llu\n",
	    (unsigned long long)s.spawns);
	bw_buf_printf(b,
	              "# HELP bulwark_listen_queue_depth Connections waiting for a worker.\n"
	              "# TYPE bulwark_listen_queue_depth gauge\nbulwark_listen_queue_depth %d\n",
	              s.queue_depth);
	bw_buf_printf(b,
	              "# HELP bulwark_listen_backlog Configured listen backlog.\n"
	              "# TYPE bulwark_listen_backlog gauge\nbulwark_listen_backlog %d\n",
	              s.backlog);
	bw_buf_printf(
	    b,
	    "# HELP bulwark_stale_requests_skipped_total Queued requests whose client had gone.\n"
	    "# TYPE bulwark_stale_requests_skipped_total counter\n"
	    "bulwark_stale_requests_skipped_total %llu\n",
	    (unsigned long long)sum->stale_skipped);
	bw_buf_puts(b, "# HELP bulwark_dependency_breaker_open Workers whose circuit breaker for "
	               "the dependency is not closed.\n"
	               "# TYPE bulwark_dependency_breaker_open gauge\n");
	for (int d = 0; d < BW_DEP_COUNT; d++)
		bw_buf_printf(b, "bulwark_dependency_breaker_open{dependency=\"%s\"} %d\n",
		              bw_dep_name((enum bw_dep)d), s.breaker_open[d]);
	bw_buf_printf(b,
	              "# HELP bulwark_crash_breaker 1 while workers are crash-looping.\n"
	              "# TYPE bulwark_crash_breaker gauge\nbulwark_crash_breaker %d\n",
	              s.crash_breaker ? 1 : 0);
	bw_buf_printf(b,
	              "# HELP bulwark_generation Configuration generation being served.\n"
	              "# TYPE bulwark_generation gauge\nbulwark_generation %u\n",
	              s.generation);
}

/* Answers one complete request line. */
static void
respond(const struct bw_pool_source *src, int fd, const char *req)
{
	struct bw_buf body, head;
	bw_buf_init(&body, NULL);
	bw_buf_init(&head, NULL);
	int status = 200;
	const char *type = "application/json";
	if (strncmp(req, "GET /status ", 12) == 0 || strncmp(req, "GET /status?", 12) == 0) {
		render_status(src, &body);
	} else if (strncmp(req, "GET /metrics ", 13) == 0 ||
	           strncmp(req, "GET /metrics?", 13) == 0) {
		render_metrics(src, &body);
		type = "text/plain; version=0.0.4";
	} else {
		status = 404;
		type = "application/problem+json";
		bw_buf_puts(&body,
		            "{\"type\":\"https://bulwark.dev/problems/not-found\",\"title\":\"Not "
		            "Found\",\"status\":404,\"detail\":\"the status socket serves /status "
		            "and /metrics\",\"code\":\"not_found\",\"request_id\":null}");
	}
	bw_buf_printf(&head,
	              "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: "
	              "no-store\r\nConnection: close\r\n\r\n",
	              status, status == 200 ? "OK" : "Not Found", type, body.len);
	bw_write_all(fd, bw_buf_cstr(&head), head.len, READ_WAIT_MS);
	bw_write_all(fd, bw_buf_cstr(&body), body.len, READ_WAIT_MS);
	bw_buf_release(&head);
	bw_buf_release(&body);
}

void
bw_status_init(struct bw_status_server *s)
{
	s->fd = -1;
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		s->clients[k].fd = -1;
}

int
bw_status_open(struct bw_status_server *s, const char *path, char *err, size_t errlen)
{
	s->fd = bw_listen_unix(path, 64, 0660, err, errlen);
	if (s->fd < 0)
		return -1;
	fcntl(s->fd, F_SETFL, O_NONBLOCK);
	return 0;
}

static void
client_close(struct bw_status_client *c)
{
	close(c->fd);
	c->fd = -1;
}

void
bw_status_close(struct bw_status_server *s)
{
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		if (s->clients[k].fd >= 0)
			client_close(&s->clients[k]);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void
bw_status_pollfds(const struct bw_status_server *s, struct pollfd *fds)
{
	fds[0] = (struct pollfd){.fd = s->fd, .events = POLLIN};
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		fds[1 + k] = (struct pollfd){.fd = s->clients[k].fd, .events = POLLIN};
}

static void
accept_clients(struct bw_status_server *s, int64_t now)
{
	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct bw_status_client *slot = NULL;
		for (int k = 0; k < BW_STATUS_CLIENTS; k++) {
			struct bw_status_client *c = &s->clients[k];
			if (c->fd < 0) {
				slot = c;
				break;
			}
			if (slot == NULL || c->deadline_ms < slot->deadline_ms)
				slot = c;
		}
		if (slot->fd >= 0)
			client_close(slot); /* full: the oldest waiter goes */
		slot->fd = fd;
		slot->len = 0;
		slot->deadline_ms = now + STATUS_READ_MS;
	}
}

/* Reads what a client sent; answers once the request line is in. */
static void
serve_client(struct bw_status_client *c, int64_t now, const struct bw_pool_source *src)
{
	for (;;) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			if (memchr(c->buf, '\n', c->len) != NULL || c->len == sizeof(c->buf) - 1) {
				/* Blocking writes with a bounded poll each: the answer is small. */
				fcntl(c->fd, F_SETFL, 0);
				respond(src, c->fd, c->buf);
				client_close(c);
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (now > c->deadline_ms)
				client_close(c);
			return;
		}
		client_close(c); /* EOF or error before a request line */
		return;
	}
}

void
bw_status_serve(struct bw_status_server *s, bool listener_ready, int64_t now,
                const struct bw_pool_source *src)
{
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		if (s->clients[k].fd >= 0)
			serve_client(&s->clients[k], now, src);
	if (s->fd >= 0 && listener_ready)
		accept_clients(s, now);
}

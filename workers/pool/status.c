/* The master's status socket: a tiny HTTP/1.0 server for /status (JSON)
 * and /metrics (Prometheus text). It reads the scoreboard through
 * bw_slot_read only, so a corrupt slot cannot break the page. Each client
 * is read without blocking by the master loop (master.c) and answered here
 * once its request line is complete. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/io.h"
#include "http/router.h"
#include "pool/master.h"
#include "store/store.h"

#define READ_WAIT_MS 100

static const char *
state_name(const struct bw_master *m)
{
	switch (m->state) {
	case BW_MASTER_RELOADING:
		return "reloading";
	case BW_MASTER_STOPPING:
		return "stopping";
	default:
		return "running";
	}
}

static bool
pool_ready(const struct bw_master *m, int ready_workers)
{
	return m->state != BW_MASTER_STOPPING && !m->crash_breaker &&
	       ready_workers >= m->cfg.workers;
}

static void
render_status(struct bw_master *m, struct bw_buf *b)
{
	int by_state[BW_SLOT_NSTATES] = {0};
	int ready = 0, total = 0;
	int64_t now_us = bw_now_us();
	struct bw_counters sum = m->retired;

	for (int i = 0; i < BW_SB_SLOTS; i++) {
		if (m->children[i].pid == 0)
			continue;
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		by_state[v.state]++;
		ready += m->children[i].ready;
		total++;
		bw_counters_add(&sum, &m->sb->slots[i].counters);
	}
	uint64_t requests = 0;
	for (int r = 0; r < BW_SB_ROUTES; r++)
		for (int k = 0; k < BW_SB_CLASSES; k++)
			requests += sum.requests[r][k];

	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "pid", getpid(), true);
	bw_json_kv_int(b, "generation", m->generation, false);
	bw_json_kv_str(b, "state", state_name(m), false);
	bw_json_kv_bool(b, "ready", pool_ready(m, ready), false);
	bw_json_kv_bool(b, "crash_breaker", m->crash_breaker, false);
	bw_json_kv_int(b, "workers_configured", m->cfg.workers, false);
	bw_json_key(b, "workers", false);
	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "total", total, true);
	bw_json_kv_int(b, "ready", ready, false);
	bw_json_kv_int(b, "idle", by_state[BW_SLOT_IDLE], false);
	bw_json_kv_int(b, "busy", by_state[BW_SLOT_BUSY], false);
	bw_json_kv_int(b, "starting", by_state[BW_SLOT_STARTING], false);
	bw_json_kv_int(b, "exiting", by_state[BW_SLOT_EXITING], false);
	bw_buf_puts(b, "}");
	bw_json_key(b, "listen_queue", false);
	bw_buf_puts(b, "{");
	bw_json_kv_int(b, "depth", bw_listen_queue_depth(&m->listener), true);
	bw_json_kv_int(b, "backlog", m->listener.backlog, false);
	bw_buf_puts(b, "}");
	bw_json_kv_int(b, "requests_total", (int64_t)requests, false);
	bw_json_kv_int(b, "respawns",
	               (int64_t)(m->spawns > (uint64_t)m->cfg.workers
	                             ? m->spawns - (uint64_t)m->cfg.workers
	                             : 0),
	               false);
	bw_json_key(b, "exits", false);
	bw_buf_puts(b, "{");
	for (int r = 0; r < BW_CHILD_NEXITS; r++)
		bw_json_kv_int(b, bw_child_exit_name((enum bw_child_exit)r), (int64_t)m->exits[r],
		               r == 0);
	bw_buf_puts(b, "}");
	bw_json_key(b, "processes", false);
	bw_buf_puts(b, "[");
	bool first = true;
	for (int i = 0; i < BW_SB_SLOTS; i++) {
		if (m->children[i].pid == 0)
			continue;
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		int64_t elapsed = v.state == BW_SLOT_BUSY && v.request_start_us > 0
		                      ? (now_us - v.request_start_us) / 1000
		                      : 0;
		bw_buf_puts(b, first ? "{" : ",{");
		first = false;
		bw_json_kv_int(b, "slot", i, true);
		/* The master's own record of the pid and generation, not the slot's. */
		bw_json_kv_int(b, "pid", m->children[i].pid, false);
		bw_json_kv_int(b, "generation", m->children[i].generation, false);
		bw_json_kv_str(b, "state", bw_slot_state_name(v.state), false);
		bw_json_kv_str(b, "route", v.route, false);
		bw_json_kv_str(b, "phase", v.phase, false);
		bw_json_kv_int(b, "elapsed_ms", elapsed, false);
		bw_json_kv_int(b, "requests", (int64_t)v.requests, false);
		bw_buf_puts(b, "}");
	}
	bw_buf_puts(b, "]}");
}

static void
render_metrics(struct bw_master *m, struct bw_buf *b)
{
	struct bw_counters sum = m->retired;
	int by_state[BW_SLOT_NSTATES] = {0};
	int breaker_open[BW_DEP_COUNT] = {0};

	for (int i = 0; i < BW_SB_SLOTS; i++) {
		if (m->children[i].pid == 0)
			continue;
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		by_state[v.state]++;
		for (int d = 0; d < BW_DEP_COUNT; d++)
			breaker_open[d] += v.deps[d] != BW_BREAKER_CLOSED;
		bw_counters_add(&sum, &m->sb->slots[i].counters);
	}

	bw_buf_puts(b, "# HELP bulwark_requests_total Requests served, by route and status class.\n"
	               "# TYPE bulwark_requests_total counter\n");
	for (size_t r = 0; r <= bw_nroutes && r < BW_SB_ROUTES; r++) {
		const char *name = r < bw_nroutes ? bw_routes[r].name : "unmatched";
		for (int k = 0; k < BW_SB_CLASSES; k++) {
			if (sum.requests[r][k] == 0)
				continue;
			bw_buf_printf(b,
			              "bulwark_requests_total{route=\"%s\",class=\"%dxx\"} %llu\n",
			              name, k + 1, (unsigned long long)sum.requests[r][k]);
		}
	}
	bw_buf_puts(b, "# HELP bulwark_request_duration_seconds Time from accept to response.\n"
	               "# TYPE bulwark_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (int k = 0; k < BW_SB_BUCKETS; k++) {
		cum += sum.duration_buckets[k];
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
	              (double)sum.duration_us_sum / 1e6);
	bw_buf_printf(b, "bulwark_request_duration_seconds_count %llu\n", (unsigned long long)cum);

	bw_buf_puts(
	    b, "# HELP bulwark_workers Worker processes by state.\n# TYPE bulwark_workers gauge\n");
	for (int s = BW_SLOT_STARTING; s < BW_SLOT_NSTATES; s++)
		bw_buf_printf(b, "bulwark_workers{state=\"%s\"} %d\n",
		              bw_slot_state_name((enum bw_slot_state)s), by_state[s]);
	bw_buf_printf(b,
	              "# HELP bulwark_workers_configured Configured pool size.\n"
	              "# TYPE bulwark_workers_configured gauge\nbulwark_workers_configured %d\n",
	              m->cfg.workers);
	bw_buf_puts(b, "# HELP bulwark_worker_exits_total Worker exits by reason.\n"
	               "# TYPE bulwark_worker_exits_total counter\n");
	for (int r = 0; r < BW_CHILD_NEXITS; r++)
		bw_buf_printf(b, "bulwark_worker_exits_total{reason=\"%s\"} %llu\n",
		              bw_child_exit_name((enum bw_child_exit)r),
		              (unsigned long long)m->exits[r]);
	bw_buf_printf(
	    b,
	    "# HELP bulwark_worker_spawns_total Workers forked.\n"
	    "# TYPE bulwark_worker_spawns_total counter\nbulwark_worker_spawns_total %llu\n",
	    (unsigned long long)m->spawns);
	bw_buf_printf(b,
	              "# HELP bulwark_listen_queue_depth Connections waiting for a worker.\n"
	              "# TYPE bulwark_listen_queue_depth gauge\nbulwark_listen_queue_depth %d\n",
	              bw_listen_queue_depth(&m->listener));
	bw_buf_printf(b,
	              "# HELP bulwark_listen_backlog Configured listen backlog.\n"
	              "# TYPE bulwark_listen_backlog gauge\nbulwark_listen_backlog %d\n",
	              m->listener.backlog);
	bw_buf_printf(
	    b,
	    "# HELP bulwark_stale_requests_skipped_total Queued requests whose client had gone.\n"
	    "# TYPE bulwark_stale_requests_skipped_total counter\n"
	    "bulwark_stale_requests_skipped_total %llu\n",
	    (unsigned long long)sum.stale_skipped);
	bw_buf_puts(b, "# HELP bulwark_dependency_breaker_open Workers whose circuit breaker for "
	               "the dependency is not closed.\n"
	               "# TYPE bulwark_dependency_breaker_open gauge\n");
	for (int d = 0; d < BW_DEP_COUNT; d++)
		bw_buf_printf(b, "bulwark_dependency_breaker_open{dependency=\"%s\"} %d\n",
		              bw_dep_name((enum bw_dep)d), breaker_open[d]);
	bw_buf_printf(b,
	              "# HELP bulwark_crash_breaker 1 while workers are crash-looping.\n"
	              "# TYPE bulwark_crash_breaker gauge\nbulwark_crash_breaker %d\n",
	              m->crash_breaker ? 1 : 0);
	bw_buf_printf(b,
	              "# HELP bulwark_generation Configuration generation being served.\n"
	              "# TYPE bulwark_generation gauge\nbulwark_generation %u\n",
	              m->generation);
}

void
bw_status_respond(struct bw_master *m, int fd, const char *req)
{
	struct bw_buf body, head;
	bw_buf_init(&body, NULL);
	bw_buf_init(&head, NULL);
	int status = 200;
	const char *type = "application/json";
	if (strncmp(req, "GET /status ", 12) == 0 || strncmp(req, "GET /status?", 12) == 0) {
		render_status(m, &body);
	} else if (strncmp(req, "GET /metrics ", 13) == 0 ||
	           strncmp(req, "GET /metrics?", 13) == 0) {
		render_metrics(m, &body);
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

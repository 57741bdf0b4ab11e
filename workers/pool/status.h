/* The master's status socket (status_listen): a tiny HTTP/1.0 server for
 * /status (JSON) and /metrics (Prometheus text). The master loop polls its
 * descriptors and calls bw_status_serve each tick; no client can block the
 * loop. The socket sees the pool only through struct bw_pool_source, which
 * the master implements: it never reads the master's own records. */
#ifndef BW_STATUS_H
#define BW_STATUS_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pool/children.h"
#include "pool/scoreboard.h"

#define BW_STATUS_CLIENTS 16

/* A status-socket connection waiting for its request line. */
struct bw_status_client {
	int fd;
	int64_t deadline_ms;
	size_t len;
	char buf[512];
};

struct bw_status_server {
	int fd; /* the listener, -1 when status_listen is empty */
	struct bw_status_client clients[BW_STATUS_CLIENTS];
};

/* The pool at one moment, as the status page and metrics show it. */
struct bw_pool_stats {
	const char *state; /* "running", "reloading", "stopping" */
	bool ready;        /* serving: not stopping, no crash loop, all workers ready */
	bool crash_breaker;
	uint32_t generation;
	int workers_configured;
	int workers_total; /* live worker processes */
	int workers_ready;
	int by_state[BW_SLOT_NSTATES];
	int breaker_open[BW_DEP_COUNT]; /* live workers whose breaker is not closed */
	struct bw_counters sum;         /* exited workers' counters plus the live ones' */
	int queue_depth;                /* -1 when unknown */
	int backlog;
	uint64_t spawns;
	uint64_t exits[BW_CHILD_NEXITS];
};

/* One live worker: the master's record of its pid and generation (not the
 * slot's), and a checked copy of its slot. */
struct bw_pool_process {
	int slot;
	pid_t pid;
	uint32_t generation;
	struct bw_slot_view view;
};

/* What the status socket reads from the pool. */
struct bw_pool_source {
	const void *ctx;
	void (*stats)(const void *ctx, struct bw_pool_stats *out);
	/* Fills out with the first live worker in a slot >= *slot and moves
	 * *slot past it; false when there is none. */
	bool (*next)(const void *ctx, int *slot, struct bw_pool_process *out);
};

/* Listens on path (mode 0660, non-blocking). 0, or -1 with err filled. */
int bw_status_open(struct bw_status_server *s, const char *path, char *err, size_t errlen);
/* No listener, no clients (before bw_status_open, or without status_listen). */
void bw_status_init(struct bw_status_server *s);
/* Closes the listener and every client; the caller unlinks the path. */
void bw_status_close(struct bw_status_server *s);
/* The descriptors to poll: fds[0] the listener, fds[1 + k] client k. */
#define BW_STATUS_NFDS (1 + BW_STATUS_CLIENTS)
void bw_status_pollfds(const struct bw_status_server *s, struct pollfd *fds);
/* Reads every waiting client and answers those whose request line is in,
 * then accepts new ones when the listener was readable. */
void bw_status_serve(struct bw_status_server *s, bool listener_ready, int64_t now,
                     const struct bw_pool_source *src);

#endif

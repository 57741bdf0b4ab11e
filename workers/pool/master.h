/* The master: supervises the workers, never touches a store or libfcgi. */
#ifndef BW_MASTER_H
#define BW_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "pool/listen.h"
#include "pool/scoreboard.h"

/* Why a worker process ended, as the master counts it. */
enum bw_child_exit {
	BW_CHILD_STOPPED,
	BW_CHILD_RECYCLED,
	BW_CHILD_KILLED,
	BW_CHILD_CRASHED,
	BW_CHILD_NEXITS
};

/* What the master remembers per scoreboard slot (the slot itself is shared
 * with the worker and untrusted; this is not). */
struct bw_child {
	pid_t pid;
	uint32_t generation;
	uint32_t want_gen; /* keep a worker of this generation here; 0 = slot not wanted */
	int64_t started_ms;
	int64_t respawn_at_ms; /* 0 = nothing scheduled */
	int64_t backoff_ms;
	bool ready;
	bool retiring;
	int64_t retire_deadline_ms; /* a retiring worker still alive then is killed */
	bool killed;                /* by the master for a deadline */
};

/* A status-socket connection waiting for its request line. */
struct bw_status_client {
	int fd;
	int64_t deadline_ms;
	size_t len;
	char buf[512];
};

#define BW_STATUS_CLIENTS 16

enum bw_master_state { BW_MASTER_RUNNING, BW_MASTER_RELOADING, BW_MASTER_STOPPING };

struct bw_master {
	struct bw_config cfg;
	struct bw_config next_cfg; /* valid while reloading */
	const char *config_file;
	struct bw_listener listener;
	int status_fd;
	struct bw_status_client status_clients[BW_STATUS_CLIENTS];
	struct bw_scoreboard *sb;
	struct bw_child children[BW_SB_SLOTS];
	enum bw_master_state state;
	uint32_t generation;
	uint32_t reload_gen;
	uint32_t last_gen; /* highest generation ever started, failed ones too */
	int reload_failures;
	int64_t stop_deadline_ms;
	bool ready_notified;
	bool crash_breaker;
	int64_t crash_times[16];
	int crash_next;
	uint64_t exits[BW_CHILD_NEXITS];
	uint64_t spawns;
	struct bw_counters retired; /* counters of workers that have exited */
};

int bw_master_run(const char *config_file, struct bw_config *cfg);
const char *bw_child_exit_name(enum bw_child_exit r);

/* status.c: answers one complete request line on a status connection. */
void bw_status_respond(struct bw_master *m, int client_fd, const char *request);

#endif

/* The master: supervises the workers, never touches a store or libfcgi.
 * Its parts share struct bw_master: master.c (the loop), children.c,
 * reload.c, with signals.c, notify.c and status.c beside them. */
#ifndef BW_MASTER_H
#define BW_MASTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "pool/children.h"
#include "pool/listen.h"
#include "pool/scoreboard.h"
#include "pool/status.h"

enum bw_master_state { BW_MASTER_RUNNING, BW_MASTER_RELOADING, BW_MASTER_STOPPING };

struct bw_master {
	struct bw_config cfg;
	struct bw_config next_cfg; /* valid while reloading */
	const char *config_file;
	struct bw_listener listener;
	struct bw_status_server status;
	struct bw_scoreboard *sb;
	struct bw_child children[BW_SB_SLOTS];
	enum bw_master_state state;
	uint32_t generation;
	uint32_t reload_gen;
	uint32_t last_gen; /* highest generation ever started, failed ones too */
	int reload_failures;
	int64_t stop_deadline_ms;
	bool ready_notified;
	int64_t status_notified_ms; /* last periodic STATUS line */
	bool crash_breaker;
	int64_t crash_times[16];
	int crash_next;
	uint64_t exits[BW_CHILD_NEXITS];
	uint64_t spawns;
	struct bw_counters retired; /* counters of workers that have exited */
};

/* Runs the master until it is stopped: 0, or 1 when it could not start. */
int bw_master_run(const char *config_file, struct bw_config *cfg);

#endif

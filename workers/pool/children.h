/* The master's children, php-fpm's fpm_children.c: forking a worker into
 * a scoreboard slot, reaping it, respawning it with per-slot backoff,
 * killing one past its deadline, and the crash breaker. */
#ifndef BW_CHILDREN_H
#define BW_CHILDREN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bw_master;

/* Why a worker process ended, as the master counts it. */
enum bw_child_exit {
	BW_CHILD_STOPPED,  /* exit 0 when asked to stop */
	BW_CHILD_RECYCLED, /* BW_WORKER_EXIT_RECYCLED after max_requests */
	BW_CHILD_KILLED,   /* by the master, past a deadline */
	BW_CHILD_CRASHED,  /* anything else */
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

const char *bw_child_exit_name(enum bw_child_exit r);
/* Why a child ended, from its wait status; killed: by the master;
 * stop_asked: it was retiring or the pool is stopping. */
enum bw_child_exit bw_child_exit_reason(int status, bool killed, bool stop_asked);
/* The delay before a slot is refilled: a crash within 10 s of the spawn
 * doubles the previous delay (from 100 ms, at most 30 s); anything else
 * respawns at once (0). */
int64_t bw_child_backoff(int64_t prev_ms, enum bw_child_exit why, int64_t lived_ms);
/* How many of the n crash times fall within the crash window (10 s) before
 * now; 0 entries are empty. Five trip the crash breaker. */
int bw_crashes_recent(const int64_t *times, size_t n, int64_t now);

/* Forks a worker of the slot's wanted generation into slot i. */
void bw_children_spawn(struct bw_master *m, int i);
/* Collects every exited child: counts why, keeps its counters, schedules
 * the respawn. */
void bw_children_reap(struct bw_master *m, int64_t now);
/* Respawns what is due, marks workers ready, kills a worker past its
 * request deadline or a retiring one past its drain deadline. */
void bw_children_check(struct bw_master *m, int64_t now);
/* Trips or resets the crash breaker from the recent crashes. */
void bw_children_crash_breaker(struct bw_master *m, int64_t now);
int bw_children_live(const struct bw_master *m);
void bw_children_signal(const struct bw_master *m, int sig);
/* A slot with no worker and none wanted, or -1. */
int bw_children_free_slot(const struct bw_master *m);
/* Slots wanting generation gen (ready_only: with a live, ready worker). */
int bw_children_count(const struct bw_master *m, uint32_t gen, bool ready_only);

#endif

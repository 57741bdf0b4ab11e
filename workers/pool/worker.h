/* A worker process: one request at a time through libfcgi. */
#ifndef BW_WORKER_H
#define BW_WORKER_H

#include <stdint.h>

struct bw_config;
struct bw_scoreboard;

/* The worker's exit status after max_requests: the master counts it as
 * recycled, not as a crash. */
#define BW_WORKER_EXIT_RECYCLED 3

/* Never returns: exits 0 on a requested stop, BW_WORKER_EXIT_RECYCLED after
 * its share of requests, 1 on a broken socket. */
void bw_worker_run(const struct bw_config *cfg, int listen_fd, struct bw_scoreboard *sb, int slot,
                   uint32_t generation) __attribute__((noreturn));

#endif

/* The rolling reload (SIGHUP), php-fpm's fpm_process_ctl.c: the new
 * configuration starts a new generation beside the old one, each new ready
 * worker lets one old one go, processes stay within N + surge, and a
 * generation that does not become ready is rolled back. */
#ifndef BW_RELOAD_H
#define BW_RELOAD_H

#include <stdint.h>

struct bw_master;
struct bw_config;

/* Loads the configuration file again and, when it is valid, starts the
 * new generation; a reload or stop in progress is left alone. */
void bw_reload_start(struct bw_master *m);
/* One tick of a reload: retire, spawn, then finish or roll back. */
void bw_reload_step(struct bw_master *m, int64_t now);
/* The configuration a worker of generation gen runs with. */
const struct bw_config *bw_reload_cfg_for(const struct bw_master *m, uint32_t gen);

#endif

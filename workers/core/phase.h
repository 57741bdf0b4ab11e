/* What the worker is doing right now ("sleep", "postgres", "redis" …),
 * published to the scoreboard so the master can name it when it kills a
 * worker that overran its deadline. Any layer may set it; only the worker
 * loop decides where it is stored. */
#ifndef BW_PHASE_H
#define BW_PHASE_H

#include <stddef.h>

void bw_phase_bind(char *target, size_t len);
void bw_phase_set(const char *phase);
/* Bounded copy into memory another process reads (the scoreboard). */
void bw_shared_strcpy(char *dst, size_t len, const char *src);

#endif

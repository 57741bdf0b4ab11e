/* What the worker is doing right now ("sleep", "postgres", "redis" …),
 * published to the scoreboard so the master can name it when it kills a
 * worker that overran its deadline. Any layer may set it; only the worker
 * loop decides where it is stored. The same inversion carries the start of
 * a route and the pool's crash-loop flag, so http/ and api/ never see the
 * scoreboard. Unbound (unit tests, CLI commands), each is a no-op. */
#ifndef BW_PHASE_H
#define BW_PHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void bw_phase_bind(char *target, size_t len);
void bw_phase_set(const char *phase);

/* A request matched the route named route ("GET /v1/whoami"): the bound
 * hook publishes it, with the phase cleared and the start time. */
typedef void (*bw_phase_begin_fn)(const char *route);
void bw_phase_bind_begin(bw_phase_begin_fn fn);
void bw_phase_begin(const char *route);

/* The flag the master raises while workers are crash-looping (/readyz). */
void bw_phase_bind_crash_flag(const volatile uint8_t *flag);
bool bw_phase_crash_looping(void);

/* Bounded copy into memory another process reads (the scoreboard). */
void bw_shared_strcpy(char *dst, size_t len, const char *src);

#endif

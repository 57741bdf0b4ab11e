/* Circuit breaker + reconnect backoff shared by the store adapters.
 * Closed: calls go through; `threshold` consecutive failures open it.
 * Open: calls fail at once until `cooldown` passed, then one probe is let
 * through (half-open); success closes it, failure re-opens it with the
 * cooldown doubled up to a cap (the reconnect backoff). */
#ifndef BW_BREAKER_H
#define BW_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rc.h"
#include "store/store.h"

struct bw_breaker {
	enum bw_breaker_state state;
	int failures;
	int threshold;
	int64_t base_cooldown_ms;
	int64_t cooldown_ms;
	int64_t max_cooldown_ms;
	int64_t open_until_ms;
};

void bw_breaker_init(struct bw_breaker *b, int threshold, int64_t cooldown_ms,
                     int64_t max_cooldown_ms);
/* May a call go out now? Moves open → half-open when the cooldown passed. */
bool bw_breaker_allow(struct bw_breaker *b, int64_t now_ms);
void bw_breaker_success(struct bw_breaker *b);
void bw_breaker_failure(struct bw_breaker *b, int64_t now_ms);
/* Milliseconds until a probe is allowed (for Retry-After), 0 when closed. */
int64_t bw_breaker_retry_after_ms(const struct bw_breaker *b, int64_t now_ms);

/* ---- what the adapters share (on the bw_now_ms() clock, with logging) ---- */

/* Tells b how a call to the dependency `name` ended, and logs what
 * changed. why == NULL is a success: "NAME: reachable again, breaker
 * closed" when the breaker was not closed. Otherwise why is the failure:
 * a warning when the breaker was closed ("NAME: WHY; breaker open for N
 * ms" when this failure opened it), a debug line when a probe failed. */
void bw_breaker_note(struct bw_breaker *b, const char *name, const char *why);

/* A health check of `name` behind b, bounded by timeout_ms (the attempt
 * type is in store.h). While b refuses calls: BW_REFUSED at once, no
 * attempt, err saying when the next probe is. Otherwise one attempt, and a
 * second one when the first asked for it (a server restart leaves a kept
 * connection stale) and time is left; the outcome goes to bw_breaker_note.
 * BW_OK or BW_ERR (err filled, the attempt's message). err->retry_after_ms is
 * the breaker's, as with the adapters' calls. */
enum bw_rc bw_breaker_ping(struct bw_breaker *b, const char *name, int timeout_ms,
                           bw_ping_attempt_fn attempt, void *arg, struct bw_err *err);

#endif

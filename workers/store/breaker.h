/* Circuit breaker + reconnect backoff shared by the store adapters.
 * Closed: calls go through; `threshold` consecutive failures open it.
 * Open: calls fail at once until `cooldown` passed, then one probe is let
 * through (half-open); success closes it, failure re-opens it with the
 * cooldown doubled up to a cap (the reconnect backoff). */
#ifndef BW_BREAKER_H
#define BW_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

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

#endif

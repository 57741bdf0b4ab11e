/* Circuit breaker state machine: pure logic on a caller-supplied clock, so
 * it can be unit tested without I/O. The adapters own one breaker each and
 * share what follows it: the logging of transitions, the checked ping. */
#include <stdio.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/breaker.h"

void
bw_breaker_init(struct bw_breaker *b, int threshold, int64_t cooldown_ms, int64_t max_cooldown_ms)
{
	if (threshold < 1)
		threshold = 1;
	if (cooldown_ms < 1)
		cooldown_ms = 1;
	/* A cap below the base would make the first cooldown the longest. */
	if (max_cooldown_ms < cooldown_ms)
		max_cooldown_ms = cooldown_ms;
	b->state = BW_BREAKER_CLOSED;
	b->failures = 0;
	b->threshold = threshold;
	b->base_cooldown_ms = cooldown_ms;
	b->cooldown_ms = cooldown_ms;
	b->max_cooldown_ms = max_cooldown_ms;
	b->open_until_ms = 0;
}

bool
bw_breaker_allow(struct bw_breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case BW_BREAKER_CLOSED:
		return true;
	case BW_BREAKER_OPEN:
	case BW_BREAKER_HALF_OPEN:
		if (now_ms < b->open_until_ms)
			return false;
		/* One probe goes out. In half-open, open_until_ms is the probe's
		 * lease: a probe whose outcome was never reported does not wedge
		 * the breaker, another one is allowed after a cooldown. */
		b->state = BW_BREAKER_HALF_OPEN;
		b->open_until_ms = now_ms + b->cooldown_ms;
		return true;
	}
	return false;
}

void
bw_breaker_success(struct bw_breaker *b)
{
	b->state = BW_BREAKER_CLOSED;
	b->failures = 0;
	b->cooldown_ms = b->base_cooldown_ms;
	b->open_until_ms = 0;
}

void
bw_breaker_failure(struct bw_breaker *b, int64_t now_ms)
{
	if (b->failures < b->threshold)
		b->failures++;
	switch (b->state) {
	case BW_BREAKER_CLOSED:
		if (b->failures < b->threshold)
			return;
		b->cooldown_ms = b->base_cooldown_ms;
		break;
	case BW_BREAKER_HALF_OPEN:
		/* The probe failed: back off further (reconnect backoff). */
		b->cooldown_ms *= 2;
		if (b->cooldown_ms > b->max_cooldown_ms)
			b->cooldown_ms = b->max_cooldown_ms;
		break;
	case BW_BREAKER_OPEN:
		/* A call that did not ask first; keep the current window. */
		return;
	}
	b->state = BW_BREAKER_OPEN;
	b->open_until_ms = now_ms + b->cooldown_ms;
}

int64_t
bw_breaker_retry_after_ms(const struct bw_breaker *b, int64_t now_ms)
{
	if (b->state == BW_BREAKER_CLOSED || now_ms >= b->open_until_ms)
		return 0;
	return b->open_until_ms - now_ms;
}

/* ---- shared by the adapters ---- */

void
bw_breaker_note(struct bw_breaker *b, const char *name, const char *why)
{
	enum bw_breaker_state before = b->state;

	if (why == NULL) {
		if (before != BW_BREAKER_CLOSED)
			bw_info("%s: reachable again, breaker closed", name);
		bw_breaker_success(b);
		return;
	}
	bw_breaker_failure(b, bw_now_ms());
	if (before == BW_BREAKER_CLOSED && b->state == BW_BREAKER_OPEN)
		bw_warn("%s: %s; breaker open for %lld ms", name, why, (long long)b->cooldown_ms);
	else if (before == BW_BREAKER_CLOSED)
		bw_warn("%s: %s", name, why);
	else
		bw_debug("%s: probe failed: %s; next in %lld ms", name, why,
		         (long long)b->cooldown_ms);
}

enum bw_rc
bw_breaker_ping(struct bw_breaker *b, const char *name, int timeout_ms, bw_ping_attempt_fn attempt,
                void *arg, struct bw_err *err)
{
	int64_t now = bw_now_ms();
	int64_t deadline = now + timeout_ms;
	enum bw_rc rc;

	bw_err_clear(err);
	if (!bw_breaker_allow(b, now)) {
		bw_err_set(err, BW_REFUSED, "breaker open, next probe in %lld ms",
		           (long long)bw_breaker_retry_after_ms(b, now));
		err->retry_after_ms = bw_breaker_retry_after_ms(b, now);
		return BW_REFUSED;
	}
	rc = attempt(arg, deadline, err);
	/* A kept connection can be stale (server restarted) and fail at once:
	 * one retry on a fresh connection, within the budget. */
	if (rc == BW_RETRY && bw_now_ms() < deadline)
		rc = attempt(arg, deadline, err);
	if (rc == BW_OK) {
		bw_err_clear(err);
		bw_breaker_note(b, name, NULL);
		return BW_OK;
	}
	bw_breaker_note(b, name, err->message);
	err->rc = BW_ERR;
	err->retry_after_ms = bw_breaker_retry_after_ms(b, bw_now_ms());
	return BW_ERR;
}

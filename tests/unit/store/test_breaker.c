/* Unit tests of workers/store/breaker.c: the state machine on a fake clock,
 * then what the adapters share (transition logging, the checked ping) with
 * a fake attempt in place of a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/breaker.h"

#define THRESHOLD 3
#define COOLDOWN  250
#define MAX_COOL  1000

static void
fail_n(struct bw_breaker *b, int n, int64_t now)
{
	for (int i = 0; i < n; i++) {
		assert_true(bw_breaker_allow(b, now));
		bw_breaker_failure(b, now);
	}
}

static void
test_starts_closed(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_true(bw_breaker_allow(&b, 0));
	assert_int_equal(bw_breaker_retry_after_ms(&b, 0), 0);
}

static void
test_opens_after_threshold(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD - 1, 1000);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	fail_n(&b, 1, 1000);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	assert_int_equal(b.open_until_ms, 1000 + COOLDOWN);
}

static void
test_success_resets_failure_count(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD - 1, 0);
	bw_breaker_success(&b);
	/* Failures must be consecutive to open it. */
	fail_n(&b, THRESHOLD - 1, 0);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
}

static void
test_open_fails_fast(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 1000);
	assert_false(bw_breaker_allow(&b, 1000));
	assert_false(bw_breaker_allow(&b, 1000 + COOLDOWN - 1));
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

static void
test_half_open_after_cooldown(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 1000);
	assert_true(bw_breaker_allow(&b, 1000 + COOLDOWN));
	assert_int_equal(b.state, BW_BREAKER_HALF_OPEN);
	/* Only one probe at a time. */
	assert_false(bw_breaker_allow(&b, 1000 + COOLDOWN));
}

static void
test_probe_success_closes(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 0);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	bw_breaker_success(&b);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
	assert_int_equal(b.cooldown_ms, COOLDOWN);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	assert_int_equal(bw_breaker_retry_after_ms(&b, COOLDOWN), 0);
}

static void
test_probe_failure_doubles_cooldown(void **state)
{
	struct bw_breaker b;
	int64_t now = 0;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, now);
	now += COOLDOWN;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_failure(&b, now);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	assert_int_equal(b.cooldown_ms, 2 * COOLDOWN);
	assert_int_equal(b.open_until_ms, now + 2 * COOLDOWN);
	assert_false(bw_breaker_allow(&b, now + 2 * COOLDOWN - 1));
	now += 2 * COOLDOWN;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_failure(&b, now);
	assert_int_equal(b.cooldown_ms, 4 * COOLDOWN);
}

static void
test_cooldown_capped(void **state)
{
	struct bw_breaker b;
	int64_t now = 0;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, now);
	for (int i = 0; i < 10; i++) {
		now = b.open_until_ms;
		assert_true(bw_breaker_allow(&b, now));
		bw_breaker_failure(&b, now);
		assert_true(b.cooldown_ms <= MAX_COOL);
	}
	assert_int_equal(b.cooldown_ms, MAX_COOL);
	assert_int_equal(b.open_until_ms, now + MAX_COOL);
	/* Success brings back the base cooldown for the next outage. */
	now = b.open_until_ms;
	assert_true(bw_breaker_allow(&b, now));
	bw_breaker_success(&b);
	fail_n(&b, THRESHOLD, now);
	assert_int_equal(b.open_until_ms, now + COOLDOWN);
}

static void
test_cap_below_base(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, 1, 5000, 1000);
	fail_n(&b, 1, 0);
	assert_int_equal(b.open_until_ms, 5000);
	assert_true(bw_breaker_allow(&b, 5000));
	bw_breaker_failure(&b, 5000);
	assert_int_equal(b.cooldown_ms, 5000);
}

static void
test_threshold_at_least_one(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, 0, COOLDOWN, MAX_COOL);
	fail_n(&b, 1, 0);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

static void
test_retry_after(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100), 0);
	fail_n(&b, THRESHOLD, 100);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100), COOLDOWN);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN - 1), 1);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN), 0);
	assert_int_equal(bw_breaker_retry_after_ms(&b, 100 + COOLDOWN + 50), 0);
}

static void
test_lost_probe_does_not_wedge(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, THRESHOLD, COOLDOWN, MAX_COOL);
	fail_n(&b, THRESHOLD, 0);
	assert_true(bw_breaker_allow(&b, COOLDOWN));
	/* The probe's outcome is never reported: after another cooldown a new
	 * probe is allowed rather than refusing forever. */
	assert_false(bw_breaker_allow(&b, 2 * COOLDOWN - 1));
	assert_true(bw_breaker_allow(&b, 2 * COOLDOWN));
	assert_int_equal(b.state, BW_BREAKER_HALF_OPEN);
}

/* ---- bw_breaker_note: what a transition logs ---- */

static FILE *captured;
static int saved_stderr = -1;

/* The log goes to fd 2: point it at a temporary file for a while. */
static void
capture_begin(int level)
{
	fflush(stderr);
	captured = tmpfile();
	assert_non_null(captured);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(captured), STDERR_FILENO) >= 0);
	bw_log_setup(level, NULL);
}

/* What was logged since capture_begin (empty when nothing). */
static const char *
capture_end(void)
{
	static char text[4096];
	size_t n;

	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	rewind(captured);
	n = fread(text, 1, sizeof(text) - 1, captured);
	text[n] = '\0';
	fclose(captured);
	bw_log_setup(BW_LOG_INFO, NULL);
	return text;
}

/* One note, and the single log line (or none) it wrote. */
static void
expect_note(struct bw_breaker *b, const char *why, const char *level, const char *msg)
{
	char want[256];
	const char *text;

	capture_begin(BW_LOG_DEBUG);
	bw_breaker_note(b, "dep", why);
	text = capture_end();
	if (msg == NULL) {
		assert_string_equal(text, "");
		return;
	}
	snprintf(want, sizeof(want), "\"level\":\"%s\"", level);
	if (strstr(text, want) == NULL)
		fail_msg("want %s in %s", want, text);
	snprintf(want, sizeof(want), "\"msg\":\"%s\"", msg);
	if (strstr(text, want) == NULL)
		fail_msg("want %s in %s", want, text);
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
}

static void
test_note_transitions(void **state)
{
	struct bw_breaker b;

	(void)state;
	bw_breaker_init(&b, 2, COOLDOWN, MAX_COOL);
	expect_note(&b, NULL, NULL, NULL); /* closed and fine: quiet */
	expect_note(&b, "connect: refused", "warn", "dep: connect: refused");
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	expect_note(&b, "connect: refused", "warn",
	            "dep: connect: refused; breaker open for 250 ms");
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	/* Open: a probe goes out after the cooldown and fails. */
	assert_true(bw_breaker_allow(&b, b.open_until_ms));
	expect_note(&b, "connect: refused", "debug",
	            "dep: probe failed: connect: refused; next in 500 ms");
	assert_int_equal(b.cooldown_ms, 2 * COOLDOWN);
	assert_true(bw_breaker_allow(&b, b.open_until_ms));
	expect_note(&b, NULL, "info", "dep: reachable again, breaker closed");
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
}

static void
test_note_failure_uses_the_clock(void **state)
{
	struct bw_breaker b;
	int64_t before = bw_now_ms();

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	capture_begin(BW_LOG_ERROR);
	bw_breaker_note(&b, "dep", "down");
	capture_end();
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	assert_true(b.open_until_ms >= before + COOLDOWN);
	assert_true(b.open_until_ms <= bw_now_ms() + COOLDOWN);
}

/* ---- bw_breaker_ping: one attempt, one retry when asked ---- */

struct script {
	enum bw_rc rc[3]; /* what each attempt answers */
	int calls;
	int64_t deadline[3]; /* what each attempt was given */
};

static enum bw_rc
fake_attempt(void *arg, int64_t deadline_ms, struct bw_err *err)
{
	struct script *s = arg;

	s->deadline[s->calls] = deadline_ms;
	bw_err_set(err, s->rc[s->calls], "attempt %d failed", s->calls + 1);
	return s->rc[s->calls++];
}

/* Runs a ping with the script on a fresh breaker that opens at the first
 * failure; returns its code, the error in err. */
static enum bw_rc
ping(struct bw_breaker *b, struct script *s, int timeout_ms, struct bw_err *err)
{
	enum bw_rc rc;

	capture_begin(BW_LOG_ERROR);
	rc = bw_breaker_ping(b, "dep", timeout_ms, fake_attempt, s, err);
	capture_end();
	return rc;
}

static void
test_ping_ok(void **state)
{
	struct bw_breaker b;
	struct script s = {.rc = {BW_OK}};
	struct bw_err err;
	int64_t t0 = bw_now_ms();

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	assert_int_equal(ping(&b, &s, 300, &err), BW_OK);
	assert_int_equal(s.calls, 1);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	/* A success leaves no message behind. */
	assert_int_equal(err.rc, BW_OK);
	assert_string_equal(err.message, "");
	/* The attempt is bounded by the whole budget. */
	assert_true(s.deadline[0] >= t0 + 300 && s.deadline[0] <= bw_now_ms() + 300);
}

static void
test_ping_error_not_retried(void **state)
{
	struct bw_breaker b;
	struct script s = {.rc = {BW_ERR, BW_OK}};
	struct bw_err err;

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	assert_int_equal(ping(&b, &s, 10000, &err), BW_ERR);
	assert_int_equal(s.calls, 1);
	assert_int_equal(err.rc, BW_ERR);
	assert_string_equal(err.message, "attempt 1 failed");
	assert_int_equal(b.state, BW_BREAKER_OPEN);
	/* The breaker this failure opened says when to come back. */
	assert_true(err.retry_after_ms > 0 && err.retry_after_ms <= COOLDOWN);
}

static void
test_ping_retried_once_on_a_stale_connection(void **state)
{
	struct bw_breaker b;
	struct script ok = {.rc = {BW_RETRY, BW_OK}};
	struct script again = {.rc = {BW_RETRY, BW_RETRY, BW_OK}};
	struct bw_err err;

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	assert_int_equal(ping(&b, &ok, 10000, &err), BW_OK);
	assert_int_equal(ok.calls, 2);
	assert_int_equal(b.state, BW_BREAKER_CLOSED);
	assert_int_equal(ok.deadline[1], ok.deadline[0]); /* one budget for both */
	assert_string_equal(err.message, "");
	/* A second stale connection is a failure, not a third attempt. */
	assert_int_equal(ping(&b, &again, 10000, &err), BW_ERR);
	assert_int_equal(again.calls, 2);
	assert_int_equal(err.rc, BW_ERR); /* not the attempt's BW_RETRY */
	assert_string_equal(err.message, "attempt 2 failed");
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

static void
test_ping_no_retry_past_the_deadline(void **state)
{
	struct bw_breaker b;
	struct script s = {.rc = {BW_RETRY, BW_OK}};
	struct bw_err err;

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	assert_int_equal(ping(&b, &s, 0, &err), BW_ERR);
	assert_int_equal(s.calls, 1);
	assert_string_equal(err.message, "attempt 1 failed");
}

static void
test_ping_refused_while_open(void **state)
{
	struct bw_breaker b;
	struct script s = {.rc = {BW_ERR, BW_OK}};
	struct bw_err err;

	(void)state;
	bw_breaker_init(&b, 1, COOLDOWN, MAX_COOL);
	assert_int_equal(ping(&b, &s, 10000, &err), BW_ERR);
	s.calls = 0;
	assert_int_equal(ping(&b, &s, 10000, &err), BW_REFUSED);
	assert_int_equal(s.calls, 0);
	assert_int_equal(err.rc, BW_REFUSED);
	if (strncmp(err.message, "breaker open, next probe in ", 28) != 0)
		fail_msg("err: %s", err.message);
	assert_true(err.retry_after_ms > 0 && err.retry_after_ms <= COOLDOWN);
	assert_int_equal(b.state, BW_BREAKER_OPEN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starts_closed),
	    cmocka_unit_test(test_opens_after_threshold),
	    cmocka_unit_test(test_success_resets_failure_count),
	    cmocka_unit_test(test_open_fails_fast),
	    cmocka_unit_test(test_half_open_after_cooldown),
	    cmocka_unit_test(test_probe_success_closes),
	    cmocka_unit_test(test_probe_failure_doubles_cooldown),
	    cmocka_unit_test(test_cooldown_capped),
	    cmocka_unit_test(test_cap_below_base),
	    cmocka_unit_test(test_threshold_at_least_one),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_lost_probe_does_not_wedge),
	    cmocka_unit_test(test_note_transitions),
	    cmocka_unit_test(test_note_failure_uses_the_clock),
	    cmocka_unit_test(test_ping_ok),
	    cmocka_unit_test(test_ping_error_not_retried),
	    cmocka_unit_test(test_ping_retried_once_on_a_stale_connection),
	    cmocka_unit_test(test_ping_no_retry_past_the_deadline),
	    cmocka_unit_test(test_ping_refused_while_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

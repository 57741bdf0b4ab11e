"""The bottom of the integration harness: what a test fails or skips with,
the environment, and waiting.

Tests wait for an observable state with a deadline (wait_until), never for
a stretch of time.  Every wait's deadline and every absolute wall-clock
bound a test asserts goes through scaled(): BW_IT_TIME_MULT (default 1;
dev/test sets 2, as it runs the sanitizer build) stretches them all."""

import os
import time


class Skip(Exception):
    """Raised by a test (or a helper) to mark the test skipped."""


class Failure(AssertionError):
    pass


def env(name, default=None):
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def _time_mult():
    v = env("BW_IT_TIME_MULT", "1")
    try:
        m = float(v)
    except ValueError:
        m = 0
    if not m >= 1:
        raise SystemExit(f"BW_IT_TIME_MULT={v!r}: want a number >= 1 (it only stretches bounds)")
    return m


TIME_MULT = _time_mult()


def scaled(seconds, cap=None):
    """An absolute wall-clock bound (a latency ceiling, a wait's deadline)
    stretched by BW_IT_TIME_MULT.  cap: how long the wrong behaviour the
    bound tells apart takes (a daemon's timer, a request's length); the
    stretched bound never goes past it.  Lower bounds ("not before") are
    not scaled: a slow machine does not make the daemon early."""
    s = seconds * TIME_MULT
    return s if cap is None else min(s, cap)


def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value; returns that value.
    Exceptions from fn count as falsy (the last one is reported).  The
    deadline is scaled(timeout) from now."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {limit:.1f}s waiting for {what} (last: {last!r})"[:600])
        time.sleep(interval)

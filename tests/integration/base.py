"""The bottom of the integration harness: what a test fails or skips with,
the environment, and waiting.

Tests wait for an observable state with a deadline (wait_until), never for
a stretch of time."""

import os
import time


class Skip(Exception):
    """Raised by a test (or a helper) to mark the test skipped."""


class Failure(AssertionError):
    pass


def env(name, default=None):
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value; returns that value.
    Exceptions from fn count as falsy (the last one is reported)."""
    deadline = time.monotonic() + timeout
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
            raise Failure(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})"[:600])
        time.sleep(interval)

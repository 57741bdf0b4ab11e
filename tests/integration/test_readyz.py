"""/readyz follows the dependencies: a store killed with stack.sh turns it
503 (fast, with Retry-After), a restart turns it back to 200 within a couple
of seconds, and bulwark is never restarted."""

import time

from harness import check_retry_after

DEPS = ("postgres", "redis", "redis_cache", "mongo")
SETTINGS = dict(workers=2)
RECOVER_S = 5.0  # "within a couple of seconds" after the store answers again


def _check_shape(t, r):
    body = r.json()
    t.check(isinstance(body.get("checks"), dict), f"/readyz without checks: {body}")
    for d in DEPS:
        c = body["checks"].get(d)
        t.check(isinstance(c, dict), f"/readyz checks lack {d}: {body}")
        t.check(c.get("status") in ("up", "down"), f"/readyz {d}.status {c}")
        t.check(c.get("breaker") in ("closed", "open", "half_open"), f"/readyz {d}.breaker {c}")
    return body


def test_readyz_all_up(t):
    t.shared_bulwark()
    r = t.wait_ready()
    body = _check_shape(t, r)
    t.eq(body.get("status"), "ready", "/readyz status")
    for d in DEPS:
        t.eq(body["checks"][d]["status"], "up", f"/readyz {d}.status")
        t.eq(body["checks"][d]["breaker"], "closed", f"/readyz {d}.breaker")
    t.check(r.header("X-Request-Id"), "/readyz without X-Request-Id")


def _outage(t, service, dep, must_503=True):
    b = t.shared_bulwark()
    t.wait_ready()
    st0 = b.wait_workers()
    pids0 = b.worker_pids(st0)
    with t.outage(service, how="kill") as o:
        r = t.wait_down(dep, status=503 if must_503 else None)
        body = _check_shape(t, r)
        if must_503:
            t.eq(r.status, 503, f"/readyz with {service} killed")
            t.eq(body.get("status"), "unavailable", "/readyz status with a store down")
            check_retry_after(t, r, "503 /readyz")
        others = [d for d in DEPS if d != dep]  # redis and redis_cache are separate servers
        for d in others:
            t.eq(body["checks"][d]["status"], "up", f"/readyz {d} while only {service} is down")
        # fail fast: while the store is down, answers come in well under a timeout
        slow = []
        for _ in range(6):
            t0 = time.monotonic()
            t.readyz()
            el = time.monotonic() - t0
            if el > t.scaled(1.0):
                slow.append(round(el, 2))
        t.check(not slow, f"/readyz took {slow} s with {service} down (breaker should fail fast)")
        t.eq(t.get("/healthz").status, 200, f"/healthz with {service} down (touches no dependency)")
    r = t.wait_ready(dep, timeout=RECOVER_S)
    t.h.note(f"{service}: ready again {time.monotonic() - o.back:.2f}s after it answered")
    body = _check_shape(t, r)
    t.eq(body["checks"][dep]["status"], "up", f"{dep} after restart")
    st = b.status()
    t.eq(st["pid"], b.pid, "master pid (bulwark must not be restarted)")
    t.check(b.proc.poll() is None, "bulwark exited during the outage")
    t.eq(b.worker_pids(st), pids0, f"workers were replaced during the {service} outage (crashed?)")
    t.eq(st["crash_breaker"], False, "crash breaker after a store outage")


def test_readyz_redis_outage(t):
    _outage(t, "redis", "redis")


def test_readyz_postgres_outage(t):
    _outage(t, "pg", "postgres")


def test_readyz_mongo_outage(t):
    _outage(t, "mongo", "mongo")


def test_readyz_redis_cache_outage(t):
    # the cache is never the truth: the contract only says its check reports it
    _outage(t, "redis_cache", "redis_cache", must_503=False)


def test_breaker_metric_follows_outage(t):
    b = t.shared_bulwark()
    t.wait_ready()
    with t.outage("redis", how="kill"):
        def breaker_open():
            t.readyz()
            m = b.metrics()
            return any(n == "bulwark_dependency_breaker_open" and lab.get("dependency") == "redis" and v >= 1
                       for n, lab, v in m)
        t.wait_until(breaker_open, 5.0, 0.1, "bulwark_dependency_breaker_open{dependency=redis} >= 1")
    t.wait_ready(timeout=RECOVER_S)

    def breaker_closed():
        t.readyz()
        m = b.metrics()
        return all(v == 0 for n, lab, v in m
                   if n == "bulwark_dependency_breaker_open" and lab.get("dependency") == "redis")
    t.wait_until(breaker_closed, 5.0, 0.1, "bulwark_dependency_breaker_open{dependency=redis} back to 0")

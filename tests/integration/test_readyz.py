"""/readyz follows the dependencies: a store killed with stack.sh turns it
503 (fast, with Retry-After), a restart turns it back to 200 within a couple
of seconds, and bulwark is never restarted."""

import time

DEPS = ("postgres", "redis", "redis_cache", "mongo")
SETTINGS = dict(workers=2)
RECOVER_S = 5.0  # "within a couple of seconds" after stack.sh start returned


def _b(t):
    return t.bulwark(shared=True, **SETTINGS)


def _readyz(t):
    r = t.get("/readyz", timeout=10)
    t.check(r.status in (200, 503), f"/readyz answered {r.status}: {r.text[:200]!r}")
    return r


def _check_shape(t, r):
    body = r.json()
    t.check(isinstance(body.get("checks"), dict), f"/readyz without checks: {body}")
    for d in DEPS:
        c = body["checks"].get(d)
        t.check(isinstance(c, dict), f"/readyz checks lack {d}: {body}")
        t.check(c.get("status") in ("up", "down"), f"/readyz {d}.status {c}")
        t.check(c.get("breaker") in ("closed", "open", "half_open"), f"/readyz {d}.breaker {c}")
    return body


def _all_ready(t, n=6):
    """n consecutive 200s (so every worker has seen the dependency again)."""
    for _ in range(n):
        r = _readyz(t)
        if r.status != 200:
            return None
    return r


def test_readyz_all_up(t):
    _b(t)
    r = t.wait_until(lambda: _all_ready(t), 10.0, 0.2, "/readyz 200 with every store up")
    body = _check_shape(t, r)
    t.eq(body.get("status"), "ready", "/readyz status")
    for d in DEPS:
        t.eq(body["checks"][d]["status"], "up", f"/readyz {d}.status")
        t.eq(body["checks"][d]["breaker"], "closed", f"/readyz {d}.breaker")
    t.check(r.header("X-Request-Id"), "/readyz without X-Request-Id")


def _outage(t, service, dep, must_503=True):
    b = _b(t)
    t.wait_until(lambda: _all_ready(t), 10.0, 0.2, "/readyz 200 before the outage")
    st0 = b.wait_workers()
    pids0 = b.worker_pids(st0)
    restarted = {"done": False}

    def restore():
        if not restarted["done"]:
            t.stack("start", service)
    t.defer(restore)
    t.stack("kill", service)

    def down():
        r = _readyz(t)
        body = r.json()
        if body.get("checks", {}).get(dep, {}).get("status") == "down" and (r.status == 503 or not must_503):
            return r
        return None
    r = t.wait_until(down, 5.0, 0.1, f"/readyz to report {dep} down")
    body = _check_shape(t, r)
    if must_503:
        t.eq(r.status, 503, f"/readyz with {service} killed")
        t.eq(body.get("status"), "unavailable", "/readyz status with a store down")
        ra = r.header("Retry-After")
        t.check(ra is not None and ra.isdigit() and int(ra) >= 1, f"503 /readyz Retry-After {ra!r}")
    others = [d for d in DEPS if d != dep]  # redis and redis_cache are separate servers
    for d in others:
        t.eq(body["checks"][d]["status"], "up", f"/readyz {d} while only {service} is down")
    # fail fast: while the store is down, answers come in well under a timeout
    slow = []
    for _ in range(6):
        t0 = time.monotonic()
        _readyz(t)
        el = time.monotonic() - t0
        if el > 1.0:
            slow.append(round(el, 2))
    t.check(not slow, f"/readyz took {slow} s with {service} down (breaker should fail fast)")
    t.eq(t.get("/healthz").status, 200, f"/healthz with {service} down (touches no dependency)")
    t.stack("start", service)
    restarted["done"] = True
    t0 = time.monotonic()
    r = t.wait_until(lambda: _all_ready(t), RECOVER_S, 0.1, f"/readyz 200 after {service} restarted")
    t.h.note(f"{service}: ready again {time.monotonic() - t0:.2f}s after stack.sh start")
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
    b = _b(t)
    t.wait_until(lambda: _all_ready(t), 10.0, 0.2, "/readyz 200 before the outage")
    restarted = {"done": False}

    def restore():
        if not restarted["done"]:
            t.stack("start", "redis")
    t.defer(restore)
    t.stack("kill", "redis")

    def breaker_open():
        _readyz(t)
        m = b.metrics()
        return any(n == "bulwark_dependency_breaker_open" and lab.get("dependency") == "redis" and v >= 1
                   for n, lab, v in m)
    t.wait_until(breaker_open, 5.0, 0.1, "bulwark_dependency_breaker_open{dependency=redis} >= 1")
    t.stack("start", "redis")
    restarted["done"] = True
    t.wait_until(lambda: _all_ready(t), RECOVER_S, 0.1, "/readyz 200 after redis restarted")

    def breaker_closed():
        _readyz(t)
        m = b.metrics()
        return all(v == 0 for n, lab, v in m
                   if n == "bulwark_dependency_breaker_open" and lab.get("dependency") == "redis")
    t.wait_until(breaker_closed, 5.0, 0.1, "bulwark_dependency_breaker_open{dependency=redis} back to 0")

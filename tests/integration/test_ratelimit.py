"""Rate limits through nginx against the real stack: exact burst under
concurrency across all workers (key and tenant policies), denied requests
consume nothing, the headers on 200 and 429, Retry-After honoured,
revocation under load, limits before PostgreSQL (429 with PostgreSQL
stopped), Redis killed under load (the host-local limiter, no error-caused
429 or 500, back to Redis after the restart), ratelimit_on_redis_error
closed and open, and last: no rl:* key without a TTL."""

import math
import re
import threading
import time

from base import env
from clients import RedisClient, http_request, metric_sum
from harness import check_429, check_503, fresh_ip, whoami

SETTINGS = dict(workers=4)
POLICY_RE = re.compile(r'"(\w+)";q=(\d+);w=(\d+)')
STATE_RE = re.compile(r'"(\w+)";r=(\d+);t=(\d+)')


class Shot:
    __slots__ = ("sent", "done", "status", "resp", "key", "err")

    def __init__(self, sent, key):
        self.sent, self.key = sent, key
        self.done, self.status, self.resp, self.err = None, None, None, None


def fire(t, keys, threads, seconds, max_requests=100000, source=None, stop=None, shots=None):
    """`threads` clients sending GET /v1/whoami (round robin over keys) as
    fast as they can for `seconds` (or until max_requests, or stop is set).
    Returns the Shots in send order (appended to `shots` as they are sent,
    so another thread can watch them).  A transport error is status None."""
    url = env("BW_URL")
    if not url:
        t.skip("BW_URL is not set")
    shots, lock = ([] if shots is None else shots), threading.Lock()
    end = time.monotonic() + seconds

    def run():
        while time.monotonic() < end and not (stop is not None and stop.is_set()):
            with lock:
                if len(shots) >= max_requests:
                    return
                k = keys[len(shots) % len(keys)]
                s = Shot(time.monotonic(), k)
                shots.append(s)
            try:
                r = http_request(url, "GET", "/v1/whoami", headers=k.auth(), timeout=10, source=source)
                s.status, s.resp = r.status, r
            except Exception as e:  # noqa: BLE001
                s.err = repr(e)
            s.done = time.monotonic()
    ths = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(seconds + 15)
    return shots


def fire_in_background(t, keys, threads, seconds, **kw):
    """fire() in a thread: returns (thread, stop event, the live list of Shots)."""
    stop, shots = threading.Event(), []
    th = threading.Thread(target=fire, args=(t, keys, threads, seconds), daemon=True,
                          kwargs=dict(kw, stop=stop, shots=shots))
    th.start()
    return th, stop, shots


def wait_answered(t, shots, n, what, pred=lambda s: True):
    """Waits until n Shots matching pred have their answer."""
    t.wait_until(lambda: sum(1 for s in list(shots) if s.done is not None and pred(s)) >= n, 10.0, 0.02,
                 f"{n} answers {what} (so far {statuses([s for s in list(shots) if s.done])})")


def wait_redis_on_every_worker(t, b):
    """Until every worker has served a request since now with its Redis
    breaker closed: each has a connection to the restarted Redis (and, as
    it loads the function library on connect, the library)."""
    served = {p["pid"]: p["requests"] for p in b.status()["processes"] if p.get("pid")}

    def back():
        procs = [p for p in b.status()["processes"] if p.get("pid")]
        return (all(p["requests"] > served.get(p["pid"], 0) for p in procs)
                and metric_sum(b.metrics(), "bulwark_dependency_breaker_open", dependency="redis") == 0)
    t.wait_until(back, 10.0, 0.05, "every worker served through Redis again")


def statuses(shots):
    out = {}
    for s in shots:
        out[s.status] = out.get(s.status, 0) + 1
    return out


def check_no_errors(t, shots, what, allowed=(200, 429)):
    bad = [s for s in shots if s.status not in allowed]
    if bad:
        s = bad[0]
        why = s.err or f"{s.status} {s.resp.text[:160]!r}"
        t.fail(f"{what}: {len(bad)} of {len(shots)} answers were not {allowed} "
               f"(counts {statuses(shots)}; first: {why})")


def policies(t, r):
    """{name: (q, w)} from RateLimit-Policy and {name: (r, t)} from RateLimit."""
    ph, sh = r.header("RateLimit-Policy"), r.header("RateLimit")
    t.check(ph is not None and sh is not None, f"{r.status} without RateLimit-Policy/RateLimit: {r.headers}")
    pol = {m[0]: (int(m[1]), int(m[2])) for m in POLICY_RE.findall(ph)}
    st = {m[0]: (int(m[1]), int(m[2])) for m in STATE_RE.findall(sh)}
    t.eq(re.sub(POLICY_RE, "P", ph), "P, P", f"RateLimit-Policy shape {ph!r}")
    t.eq(re.sub(STATE_RE, "S", sh), "S, S", f"RateLimit shape {sh!r}")
    t.eq(list(pol), ["key", "tenant"], f"RateLimit-Policy names {ph!r}")
    t.eq(list(st), ["key", "tenant"], f"RateLimit names {sh!r}")
    return pol, st


def check_headers(t, r, key_pol, tenant_pol, what):
    """key_pol / tenant_pol = (rate, burst).  Checks the draft's headers and
    the legacy trio (= the policy with the least remaining, tie: later reset)."""
    pol, st = policies(t, r)
    for name, (rate, burst) in (("key", key_pol), ("tenant", tenant_pol)):
        t.eq(pol[name], (burst, math.ceil(burst / rate)), f"{what}: RateLimit-Policy {name} q/w")
        rem, reset = st[name]
        t.check(0 <= rem <= burst, f"{what}: {name} r={rem} outside [0, {burst}]")
        t.check(0 <= reset <= math.ceil(burst / rate), f"{what}: {name} t={reset}")
    strict = min(("key", "tenant"), key=lambda n: (st[n][0], -st[n][1]))
    legacy = (r.header("RateLimit-Limit"), r.header("RateLimit-Remaining"), r.header("RateLimit-Reset"))
    t.eq(legacy, (str(pol[strict][0]), str(st[strict][0]), str(st[strict][1])),
         f"{what}: legacy RateLimit-Limit/-Remaining/-Reset (most restrictive: {strict})")
    return st


def limited_again(t, k, what):
    """After Redis is back: the burst-1 key's bucket is written in Redis and
    every worker applies the limit again (a worker still on the fallback
    would answer 200 in open mode, 503 in closed mode)."""
    rd = t.redis()
    key = f"rl:{{{k.key_id}}}:k"

    def counted():
        r = whoami(t, k)
        t.check(r.status in (200, 429, 503), f"{what}, Redis back: {r.status} {r.text[:160]!r}")
        return rd.call("EXISTS", key) == 1
    t.wait_until(counted, 5.0, 0.1, f"{what}: {key} written in Redis after the restart")
    t0 = time.monotonic()

    def limited():
        for _ in range(8):
            r = whoami(t, k)
            t.check(r.status in (429, 200, 503), f"{what}, Redis back: {r.status} {r.text[:160]!r}")
            if r.status != 429:
                return False
            check_429(t, r, "key", f"{what}, Redis back")
        return True
    t.wait_until(limited, 5.0, 0.1, f"{what}: 8 answers in a row 429 for a burst-1 key after Redis is back")
    t.h.note(f"{what}: limits from Redis on every worker {time.monotonic() - t0:.2f}s after the first count")


# ---------------------------------------------------------------------------

def test_headers_on_200_and_429(t):
    t.shared_bulwark()
    ten = t.new_tenant(rate="0.5", burst=3)
    k = t.new_key(ten.tenant_id, rate=2, burst=5)
    kp, tp = (2, 5), (0.5, 3)
    r = whoami(t, k)
    t.eq(r.status, 200, f"first request ({r.text[:200]!r})")
    st = check_headers(t, r, kp, tp, "first 200")
    t.eq(st, {"key": (4, 1), "tenant": (2, 2)}, "RateLimit after one request")
    t.eq(r.header("RateLimit-Limit"), "3", "legacy limit = the tenant's burst (fewer remaining)")
    t.eq(r.header("Retry-After"), None, "Retry-After on a 200")
    for i in (2, 3):
        r = whoami(t, k)
        t.eq(r.status, 200, f"request {i}")
        check_headers(t, r, kp, tp, f"200 number {i}")
    t.eq(policies(t, r)[1], {"key": (2, 2), "tenant": (0, 6)}, "RateLimit after three requests")
    r = whoami(t, k)
    p, ra = check_429(t, r, "tenant", "tenant exhausted")
    st = check_headers(t, r, kp, tp, "429 tenant")
    t.eq(st, {"key": (2, 2), "tenant": (0, 6)}, "RateLimit on the 429 (nothing consumed)")
    t.check(1000 < p["retry_after_ms"] <= 2000, f"retry_after_ms {p['retry_after_ms']} (one 2 s interval)")
    t.eq(ra, 2, "Retry-After")
    # the key policy as the violated one: a second key, tight, in a roomy tenant
    ten2 = t.new_tenant(rate=1, burst=100)
    k2 = t.new_key(ten2.tenant_id, rate=1, burst=2)
    for i in range(2):
        t.eq(whoami(t, k2).status, 200, f"tight key request {i + 1}")
    r = whoami(t, k2)
    p, ra = check_429(t, r, "key", "key exhausted")
    st = check_headers(t, r, (1, 2), (1, 100), "429 key")
    t.eq(st["key"], (0, 2), "key r/t on the 429")
    t.eq(st["tenant"][0], 98, "tenant remaining on the 429 (two used)")
    t.eq(r.header("RateLimit-Limit"), "2", "legacy limit on the 429 = the key's burst")
    t.eq(ra, 1, "Retry-After of a 1/s key")


def test_exact_burst_under_concurrency(t):
    """32 clients through all 4 workers: allowed = burst + refill over the
    elapsed time (+-1 at the edges), no 5xx; for one key, then for a tenant
    whose two keys share its policy."""
    b = t.shared_bulwark()
    pids = b.worker_pids()
    before = {p["pid"]: p["requests"] for p in b.status()["processes"]}

    def run(keys, rate, burst, policy, what):
        shots = fire(t, keys, threads=32, seconds=1.5, max_requests=8000)
        check_no_errors(t, shots, what)
        ok = sorted((s for s in shots if s.status == 200), key=lambda s: s.done)
        n = len(ok)
        elapsed = max(s.done for s in shots) - min(s.sent for s in shots)
        inner = max(s.sent for s in shots) - min(s.done for s in shots)
        t.h.note(f"{what}: {len(shots)} requests, {n} allowed in {elapsed:.2f}s")
        t.check(len(shots) >= 150, f"{what}: only {len(shots)} requests in 1.5 s (load generator too slow)")
        hi = burst + math.floor(elapsed * rate) + 1
        lo = burst + max(0, math.floor(inner * rate) - 1)
        t.check(lo <= n <= hi, f"{what}: {n} allowed, want {lo}..{hi} "
                f"(burst {burst} + {rate}/s over {elapsed:.2f}s)")
        # before the first refill can have happened: exactly the burst
        start = min(s.sent for s in shots)
        early = [s for s in shots if s.done < start + 1 / rate]
        n_early = sum(1 for s in early if s.status == 200)
        t.check(len(early) > burst + 10, f"{what}: only {len(early)} answers in the first {1 / rate:.2f}s")
        t.eq(n_early, burst, f"{what}: allowed among the {len(early)} answers before the first refill")
        for s in shots:
            if s.status == 429:
                check_429(t, s.resp, policy, what)
                break
        return shots

    ten = t.new_tenant(rate=1000, burst=1000)
    k = t.new_key(ten.tenant_id, rate=2, burst=20)
    run([k], 2, 20, "key", "key policy 2/s burst 20")
    ten2 = t.new_tenant(rate=2, burst=20)
    ka = t.new_key(ten2.tenant_id, rate=1000, burst=1000)
    kb = t.new_key(ten2.tenant_id, rate=1000, burst=1000)
    shots = run([ka, kb], 2, 20, "tenant", "tenant policy 2/s burst 20 over two keys")
    t.check({s.key.key_id for s in shots if s.status == 200} == {ka.key_id, kb.key_id},
            "both keys of the tenant got some of its budget")
    after = {p["pid"]: p["requests"] for p in b.status()["processes"]}
    idle = [p for p in pids if after.get(p, 0) - before.get(p, 0) == 0]
    t.check(not idle, f"workers {idle} served none of the requests (per-worker counts {after})")


def test_denied_requests_consume_nothing(t):
    """Exhaust a key (0.5/s, burst 3) in a roomy tenant, hammer it while it
    is denied; one interval after the burst exactly one more request is
    allowed, and the tenant's counter moved only for allowed requests."""
    t.shared_bulwark()
    ten = t.new_tenant(rate="0.01", burst=100)  # the tenant refills one per 100 s
    k = t.new_key(ten.tenant_id, rate="0.5", burst=3)
    first = None
    for i in range(3):
        s = time.monotonic()
        r = whoami(t, k)
        first = first or (s, time.monotonic())
        t.eq(r.status, 200, f"burst request {i + 1}")
    t.eq(policies(t, r)[1]["tenant"][0], 97, "tenant remaining after three requests")
    # hammer while denied, until ~0.4 s before the first refill
    shots = fire(t, [k], threads=8, seconds=max(0.2, first[0] + 1.6 - time.monotonic()))
    check_no_errors(t, shots, "hammering a denied key", allowed=(429,))
    t.check(len(shots) >= 20, f"only {len(shots)} denied requests sent")
    for s in shots:
        st = policies(t, s.resp)[1]
        t.eq(st["tenant"][0], 97, "tenant remaining reported while the key is denied")
        t.eq(st["key"][0], 0, "key remaining while denied")
        t.check(int(s.resp.header("Retry-After")) <= 2, f"Retry-After grew: {s.resp.header('Retry-After')}")
    # the first refill is due 2 s after the first request reached Redis
    delay = first[1] + 2.0 + 0.15 - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # the input: the bucket refills one request 2 s after the first
    r = whoami(t, k)
    t.eq(r.status, 200, f"after one interval: the refilled request ({r.text[:160]!r}) "
         f"— {len(shots)} denied requests must not have been charged")
    t.eq(policies(t, r)[1]["tenant"][0], 96, "tenant remaining: only the 4 allowed requests count")
    r = whoami(t, k)
    check_429(t, r, "key", "only one request refilled")


def test_retry_after_is_honoured(t):
    t.shared_bulwark()
    ten = t.new_tenant(rate=100, burst=100)
    k = t.new_key(ten.tenant_id, rate="0.8", burst=2)  # one per 1.25 s
    for i in range(2):
        t.eq(whoami(t, k).status, 200, f"burst {i + 1}")
    r = whoami(t, k)
    p, ra = check_429(t, r, "key", "after the burst")
    t.check(1000 < p["retry_after_ms"] <= 1250, f"retry_after_ms {p['retry_after_ms']}")
    t.eq(ra, 2, "Retry-After = 1.25 s rounded up")
    time.sleep(ra)  # the input: a client that waits exactly Retry-After
    r = whoami(t, k)
    t.eq(r.status, 200, f"after waiting exactly Retry-After={ra} s ({r.text[:160]!r})")
    r = whoami(t, k)
    p, ra = check_429(t, r, "key", "right after the refilled request")
    t.eq(ra, 1, f"Retry-After for {p['retry_after_ms']} ms (rounded up, at least 1)")
    time.sleep(ra)  # the input: a client that waits exactly Retry-After
    r = whoami(t, k)
    t.eq(r.status, 200, f"after waiting exactly Retry-After={ra} s again ({r.text[:160]!r})")


def test_revocation_under_load(t):
    """Clients hammer a key through every worker; once `key revoke` has
    returned, no request of that key is allowed any more."""
    t.shared_bulwark()
    k = t.new_tenant(rate=5000, burst=5000)
    t.eq(whoami(t, k).status, 200, "key before revocation")
    ip = fresh_ip()
    th, stop, shots = fire_in_background(t, [k], threads=16, seconds=20, source=ip)
    wait_answered(t, shots, 20, "allowed before the revocation", lambda s: s.status == 200)
    t0 = time.monotonic()
    r = t.cli(["key", "revoke", k.key_id])
    revoked = time.monotonic()
    t.eq(r.returncode, 0, f"key revoke ({r.stderr.strip()[:200]!r})")
    t.h.note(f"key revoke took {revoked - t0:.3f}s")
    wait_answered(t, shots, 30, "sent after the revocation", lambda s: s.sent > revoked)
    stop.set()
    th.join(15)
    check_no_errors(t, shots, "revocation under load", allowed=(200, 401, 429))
    before = [s for s in shots if s.done is not None and s.done < t0]
    after = [s for s in shots if s.sent > revoked]
    t.check(sum(1 for s in before if s.status == 200) >= 20,
            f"too few allowed requests before the revocation: {statuses(before)}")
    t.check(len(after) >= 30, f"too few requests after the revocation: {statuses(after)}")
    leaked = [s for s in after if s.status == 200]
    t.check(not leaked, f"{len(leaked)} requests sent after `key revoke` returned were allowed "
            f"(first {leaked[0].sent - revoked:.3f}s after)" if leaked else "")
    for s in after:
        if s.status == 429:
            t.eq(s.resp.json().get("policy"), "auth_failures", "a 429 after revocation is the address's bucket")
        else:
            t.eq(s.resp.header("WWW-Authenticate", "")[:6], "Bearer", "401 WWW-Authenticate")


def test_limits_run_before_postgres(t):
    """PostgreSQL stopped: a cached key over its limit still gets 429 (not
    503) and one within its limit 200 — the limit and the cached record
    need no database."""
    t.shared_bulwark()
    ten = t.new_tenant(rate=1000, burst=1000)
    tight = t.new_key(ten.tenant_id, rate="0.1", burst=2)
    roomy = t.new_key(ten.tenant_id, rate=100, burst=100)
    for i in range(2):
        t.eq(whoami(t, tight).status, 200, f"tight key {i + 1}")
    check_429(t, whoami(t, tight), "key", "tight key over its limit, PostgreSQL up")
    t.eq(whoami(t, roomy).status, 200, "roomy key, PostgreSQL up")
    with t.outage("pg", how="stop"):
        for i in range(6):
            check_429(t, whoami(t, tight), "key", f"over-limit key with PostgreSQL stopped ({i + 1})")
            r = whoami(t, roomy)
            t.eq(r.status, 200, f"in-limit cached key with PostgreSQL stopped ({r.text[:160]!r})")
            check_headers(t, r, (100, 100), (1000, 1000), "200 with PostgreSQL stopped")
    t.wait_ready("postgres")


def test_redis_killed_under_load(t):
    """Redis killed while clients hammer a roomy key: no 429 caused by the
    error, no 5xx; a tight key gets its burst from the host-local limiter,
    then 429; after `start redis` the function library is loaded again and
    requests are counted in Redis again."""
    b = t.shared_bulwark()
    g = t.new_tenant(rate=2000, burst=4000)
    small_t = t.new_tenant(rate=1000, burst=1000)
    s = t.new_key(small_t.tenant_id, rate="0.5", burst=3)
    t.eq(whoami(t, g).status, 200, "roomy key before the outage")
    t.eq(whoami(t, s).status, 200, "tight key before the outage")
    th, stop, shots = fire_in_background(t, [g], threads=8, seconds=30)
    try:
        wait_answered(t, shots, 20, "before the outage")
        with t.outage("redis", how="kill") as redis:
            t.wait_down("redis")
            local = [whoami(t, s) for _ in range(6)]
            codes = [r.status for r in local]
            t.eq(codes, [200, 200, 200, 429, 429, 429],
                 "tight key (0.5/s, burst 3) with Redis down: the local limiter's burst, then 429 "
                 f"({[r.text[:100] for r in local if r.status not in (200, 429)][:1]})")
            check_429(t, local[3], "key", "local limiter")
            check_headers(t, local[0], (0.5, 3), (1000, 1000), "200 from the local limiter")
            wait_answered(t, shots, 20, "while Redis is down", lambda x: x.sent > redis.down + 0.05)
        killed, restarted = redis.down, redis.back
        wait_redis_on_every_worker(t, b)
        wait_answered(t, shots, 20, "after the restart", lambda x: x.sent > restarted)
    finally:
        stop.set()
        th.join(15)
    check_no_errors(t, shots, "roomy key while Redis was killed and restarted", allowed=(200,))
    during = [x for x in shots if killed + 0.05 < x.sent < restarted - 0.05]
    t.check(len(during) >= 20, f"only {len(during)} requests while Redis was down")

    # back to Redis: the library is reloaded when missing, limits live in Redis again
    rd = RedisClient(env("BULWARK_REDIS"))
    t.defer(rd.close)
    loaded = "loaded the bulwark function library"
    n_loaded = sum(1 for x in b.log_lines() if loaded in x.get("msg", ""))
    rd.call("FUNCTION", "FLUSH")
    key = f"rl:{{{s.key_id}}}:k"
    rd.call("DEL", key)

    def counted():
        r = whoami(t, s)
        return r.status in (200, 429) and rd.call("EXISTS", key) == 1
    t.wait_until(counted, 5.0, 0.1, f"{key} written in Redis again after the restart")
    libs = rd.call("FUNCTION", "LIST", "LIBRARYNAME", "bulwark")
    t.check(libs and libs[0][1] == "bulwark", f"FUNCTION LIST after a request: {libs}")
    t.check(rd.call("PTTL", key) > 0, f"{key} without TTL")
    t.wait_until(lambda: sum(1 for x in b.log_lines() if loaded in x.get("msg", "")) > n_loaded,
                 3.0, 0.1, "a log line: the function library was loaded again")
    t.wait_ready("redis")


def test_redis_down_closed_mode(t):
    """ratelimit_on_redis_error = closed: 503 + Retry-After while Redis is
    down (never 429 or 500); limits from Redis once it is back."""
    ten = t.new_tenant(rate=100, burst=100)
    k = t.new_key(ten.tenant_id, rate="0.1", burst=1)
    t.bulwark(workers=4, ratelimit_on_redis_error="closed")
    with t.outage("redis", how="kill"):
        for i in range(8):
            check_503(t, whoami(t, k), f"closed mode, Redis down, request {i + 1}")
        r = t.get("/v1/whoami", source=fresh_ip())
        t.eq(r.status, 401, f"no key, Redis down ({r.text[:160]!r})")
    limited_again(t, k, "closed mode")


def test_redis_down_open_mode(t):
    """ratelimit_on_redis_error = open: every valid key is allowed while
    Redis is down (the key is still checked in PostgreSQL)."""
    ten = t.new_tenant(rate=100, burst=100)
    k = t.new_key(ten.tenant_id, rate="0.1", burst=1)
    t.bulwark(workers=4, ratelimit_on_redis_error="open")
    with t.outage("redis", how="kill"):
        for i in range(8):
            r = whoami(t, k)
            t.eq(r.status, 200, f"open mode, Redis down, request {i + 1} of a burst-1 key ({r.text[:160]!r})")
            t.eq(r.json().get("key_id"), k.key_id, "whoami in open mode")
        r = t.get("/v1/whoami", headers={"Authorization": f"Bearer bk_{k.key_id}_{'A' * 43}"},
                  source=fresh_ip())
        t.eq(r.status, 401, f"wrong secret in open mode, Redis down ({r.text[:160]!r})")
    limited_again(t, k, "open mode")


def test_no_ratelimit_key_without_ttl(t):
    """Last: after everything above, every rl:* key (both Redis roles), every
    cached key record and negative entry has a TTL."""
    t.shared_bulwark()
    k = t.new_tenant(rate=10, burst=10)
    t.eq(whoami(t, k).status, 200, "one more request")
    for role in ("redis", "redis_cache"):
        rd = t.redis(role)
        keys = rd.scan("rl:*") + (rd.scan("bwk:*") + rd.scan("bwneg:*") if role == "redis" else [])
        immortal = [x for x in keys if rd.call("PTTL", x) == -1]
        t.check(not immortal, f"{role}: {len(immortal)} of {len(keys)} keys without TTL: {immortal[:10]}")
        if role == "redis":
            t.check(f"rl:{{{k.key_id}}}:k" in keys and f"rl:t:{k.tenant_id}" in keys,
                    f"the last request's buckets are missing from Redis ({len(keys)} keys)")

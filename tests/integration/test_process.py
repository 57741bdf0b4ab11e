"""The pool: respawn, hard request deadline, bursts, recycling, the status
socket under saturation, the crash breaker."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from clients import fcgi_request, metric_sum
from harness import bg_get
from procs import children_of, pid_alive


def test_worker_sigkill_replaced(t):
    b = t.bulwark(workers=3)
    st = b.wait_workers()
    pids = b.worker_pids(st)
    t.eq(pids, children_of(b.pid), "status pids vs the master's children")
    respawns = st["respawns"]
    victim = pids[1]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    st2 = b.wait_workers(timeout=2.0, exclude=[victim])
    took = time.monotonic() - t0
    now = b.worker_pids(st2)
    t.check(set(pids) - {victim} <= set(now), f"the other workers were disturbed: {pids} -> {now}")
    t.eq(len(set(now) - set(pids)), 1, f"one new worker expected: {pids} -> {now}")
    t.check(st2["respawns"] >= respawns + 1, f"respawns did not grow: {respawns} -> {st2['respawns']}")
    t.eq(st2["crash_breaker"], False, "one killed worker must not trip the crash breaker")
    t.eq(now, children_of(b.pid), "status pids vs the master's children after respawn")
    t.h.note(f"worker replaced in {took:.2f}s")
    for _ in range(6):
        t.eq(t.get("/healthz").status, 200, "healthz after respawn")
    # the master itself is unharmed
    t.eq(b.status()["pid"], b.pid, "master pid")


def test_master_sigkill_takes_workers_down(t):
    """A master killed with SIGKILL leaves no orphan workers accepting on
    the socket (they notice the parent is gone and exit)."""
    b = t.bulwark(own_sockets=True, workers=3)
    pids = b.worker_pids(b.wait_workers())
    os.kill(b.pid, signal.SIGKILL)
    t.wait_until(lambda: not any(pid_alive(p) for p in pids), 3.0, 0.05, f"workers {pids} to exit after the master died")
    b.finish(expect_code=-9)
    t.check(not b.problems, "; ".join(b.problems))


def test_request_timeout_kills_worker(t):
    b = t.bulwark(workers=2, request_timeout_ms=1000, request_timeout_grace_ms=200)
    b.wait_workers()
    th, res = bg_get(t, "/test/sleep?ms=5000", timeout=15)
    # the scoreboard shows the request while it runs (its handler sets the
    # phase; the route alone is published before that)
    st = b.wait_phase("sleep")
    p = b.in_phase(st, "sleep")[0]
    victim = p["pid"]
    t.eq(p["state"], "busy", f"state of the sleeping worker ({p})")
    t.eq(p["phase"], "sleep", f"phase of the sleeping worker ({p})")
    t.check(p["route"] == "GET /test/sleep", f"route of the sleeping worker ({p})")

    def grown():
        p2 = next((x for x in b.status()["processes"] if x.get("pid") == victim), None)
        return p2 if p2 and p2["elapsed_ms"] > p["elapsed_ms"] else None
    t.wait_until(grown, 0.8, 0.02, f"elapsed_ms of the sleeping worker to grow past {p['elapsed_ms']} ({p})")
    th.join(15)
    t.check("r" in res, f"the timed-out request raised {res.get('e')!r}")
    r = res["r"]
    t.eq(r.status, 502, f"status of the request past the deadline ({r.text[:200]!r})")
    t.check(1.0 <= res["elapsed"] <= t.scaled(3.0),
            f"killed after {res['elapsed']:.2f}s; want about request_timeout_ms + grace (1.2s)")
    t.wait_until(lambda: not pid_alive(victim), 2.0, 0.05, f"worker {victim} to be gone")
    st = b.wait_workers(timeout=3.0, exclude=[victim])
    line = b.wait_log(lambda x: "request timeout" in str(x.get("msg", "")), 3.0, what="'request timeout' log line")
    t.eq(line.get("route"), "GET /test/sleep", f"route in the timeout log line ({line})")
    t.eq(line.get("phase"), "sleep", f"phase in the timeout log line ({line})")
    t.check(line.get("level") in ("warn", "error"), f"timeout log line level ({line})")
    t.eq(line.get("worker_pid"), victim, f"worker_pid in the timeout log line ({line})")
    m = b.metrics()
    t.check(metric_sum(m, "bulwark_worker_exits_total", reason="killed") >= 1,
            "bulwark_worker_exits_total{reason=killed} did not count the kill")
    for _ in range(4):
        t.eq(t.get("/healthz").status, 200, "healthz after the kill")
    # a request under the deadline is not touched
    r = t.get("/test/sleep?ms=600", timeout=10)
    t.eq(r.status, 200, "a 600 ms request under a 1000 ms deadline")


def test_burst_queues(t):
    b = t.bulwark(workers=4)
    b.wait_workers()
    n, ms = 40, 200
    depth = {"max": 0, "busy_max": 0, "total_bad": []}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                st = b.status(timeout=1)
                depth["max"] = max(depth["max"], st["listen_queue"]["depth"])
                depth["busy_max"] = max(depth["busy_max"], st["workers"]["busy"])
                if st["workers"]["total"] != 4:
                    depth["total_bad"].append(st["workers"])
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.02)  # the sampling interval

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda _: t.get(f"/test/sleep?ms={ms}", timeout=30), range(n)))
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join(2)
    bad = [(r.status, r.text[:100]) for r in results if r.status != 200]
    t.check(not bad, f"{len(bad)} of {n} burst requests failed: {bad[:5]}")
    t.check(elapsed >= n * ms / 1000 / 4 * 0.9,
            f"40 x 200 ms on 4 workers took {elapsed:.2f}s: more than 4 ran at once?")
    t.check(elapsed < t.scaled(15), f"burst took {elapsed:.2f}s")
    t.eq(depth["busy_max"], 4, "max busy workers seen in /status during the burst")
    t.check(depth["max"] > 0, "listen_queue.depth never went above 0 during a 40-request burst on 4 workers")
    t.check(not depth["total_bad"], f"worker count changed during the burst: {depth['total_bad'][:3]}")


def test_max_requests_recycle(t):
    b = t.bulwark(workers=2, max_requests=20)
    st0 = b.wait_workers()
    pids0 = set(b.worker_pids(st0))
    fails = []
    for i in range(200):
        try:
            r = t.get("/healthz", timeout=10)
            if r.status != 200:
                fails.append((i, r.status, r.text[:100]))
        except Exception as e:  # noqa: BLE001
            fails.append((i, repr(e)))
    t.check(not fails, f"{len(fails)} of 200 requests failed while recycling: {fails[:5]}")
    st = b.wait_workers(timeout=3)
    pids1 = set(b.worker_pids(st))
    t.check(not (pids0 & pids1), f"workers past max_requests were not recycled: {pids0} -> {pids1}")
    m = b.metrics()
    rec = metric_sum(m, "bulwark_worker_exits_total", reason="recycled")
    t.check(rec >= 6, f"bulwark_worker_exits_total{{reason=recycled}} = {rec}, want about 200/20")
    t.check(metric_sum(m, "bulwark_worker_exits_total", reason="crashed") == 0, "a recycled worker counted as crashed")
    t.eq(st["crash_breaker"], False, "recycling must not trip the crash breaker")
    t.wait_until(lambda: b.status()["ready"], 2.0, 0.05, "/status ready after recycling")
    for p in st["processes"]:
        if p.get("pid"):
            t.check(p["requests"] <= 23, f"a worker served {p['requests']} > max_requests + 10% jitter")


def test_status_while_all_busy(t):
    b = t.bulwark(workers=2)
    b.wait_workers()
    threads = [bg_get(t, "/test/sleep?ms=1500", timeout=20) for _ in range(4)]
    b.wait_phase("sleep", 2)
    b.wait_queue_depth(1)  # the other two passed nginx and wait for a worker
    t0 = time.monotonic()
    r = t.get("/status", timeout=5)
    took = time.monotonic() - t0
    t.eq(r.status, 200, "GET /status through nginx while every worker is busy")
    t.check(took < t.scaled(0.5), f"/status took {took:.2f}s while the pool was busy")
    st = r.json()
    t.eq(st["workers"]["busy"], 2, "busy workers")
    t.eq(st["workers"]["idle"], 0, "idle workers")
    t.eq(sum(1 for p in st["processes"] if p.get("pid") and p.get("route") == "GET /test/sleep"), 2,
         f"processes showing /test/sleep: {st['processes']}")
    t.check(st["listen_queue"]["depth"] >= 1, f"2 requests wait for a worker, listen_queue {st['listen_queue']}")
    t0 = time.monotonic()
    r = t.get("/metrics", timeout=5)
    t.eq(r.status, 200, "/metrics while busy")
    t.check(time.monotonic() - t0 < t.scaled(0.5), "/metrics slow while the pool was busy")
    t.check('bulwark_workers{state="busy"} 2' in r.text, "bulwark_workers{state=\"busy\"} 2 not in /metrics")
    for th, res in threads:
        th.join(20)
        t.check("r" in res and res["r"].status == 200, f"a slow request failed: {res}")


def test_crash_loop_breaker(t):
    """One worker crashing on every request: respawn delays grow, the
    breaker opens, the pool never forks more than its size."""
    b = t.bulwark(workers=1)
    b.wait_workers()
    maxkids = {"n": 0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            maxkids["n"] = max(maxkids["n"], len(children_of(b.pid)))
            time.sleep(0.01)  # the sampling interval

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    delays = []
    breaker = None
    try:
        for _ in range(7):
            r = t.get("/test/crash", timeout=10)
            t.check(r.status in (502, 503), f"/test/crash answered {r.status}")
            t0 = time.monotonic()
            # status answers at once even with no worker
            s0 = time.monotonic()
            st = b.status(timeout=2)
            t.check(time.monotonic() - s0 < t.scaled(0.5), "status slow during a crash loop")
            if st["crash_breaker"]:
                breaker = st
            r = t.get("/healthz", timeout=40)  # queued until the slot is respawned
            t.eq(r.status, 200, "healthz after a crash")
            delays.append(time.monotonic() - t0)
            st = b.status(timeout=2)
            if st["crash_breaker"]:
                breaker = breaker or st
            if breaker and len(delays) >= 4:
                break
    finally:
        stop.set()
        w.join(1)
    t.check(breaker is not None, f"crash_breaker never became true after {len(delays)} crashes (delays {delays})")
    t.eq(breaker["ready"], False, "ready while the crash breaker is open")
    t.check(delays[-1] >= 2 * delays[0] and delays[-1] >= 0.3,
            f"respawn delays do not grow: {[round(d, 2) for d in delays]}")
    t.check(maxkids["n"] <= 1, f"{maxkids['n']} workers at once with workers = 1 (fork bomb?)")
    m = b.metrics()
    t.check(metric_sum(m, "bulwark_worker_exits_total", reason="crashed") >= len(delays),
            "bulwark_worker_exits_total{reason=crashed} does not count the crashes")


def test_light_load_stays_on_few_workers(t):
    """Requests one after another go to the idle worker that started first,
    not to each idle worker in turn: a light load keeps a few processes
    and their caches warm instead of rotating through the whole pool."""
    b = t.bulwark(own_sockets=True, workers=8)
    b.wait_workers()
    pids = []
    for _ in range(40):
        # Without REQUEST_ID the worker makes its own id, which starts with its pid.
        r = fcgi_request(b.listen, "GET", "/healthz", timeout=10,
                         params_override={"REQUEST_ID": None, "HTTP_X_REQUEST_ID": None})
        t.eq(r.status, 200, "GET /healthz")
        rid = r.header("X-Request-Id") or ""
        t.check(len(rid) == 32, f"X-Request-Id {rid!r}")
        pids.append(int(rid[:8], 16))
        b.wait_idle()  # the worker is back waiting before the next one
    served = sorted(set(pids))
    t.check(len(served) <= 2, f"40 requests one after another were spread over {len(served)} of 8 workers "
            f"(pids {served})")
    t.check(all(p in children_of(b.pid) for p in served), f"pids {served} are not workers of the pool")

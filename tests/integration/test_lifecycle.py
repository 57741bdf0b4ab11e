"""Signals: SIGHUP rolling reload (under load, with a new config, with a
broken config), SIGTERM drain, drain deadline, fast stop, SIGUSR1 reopen."""

import json
import os
import signal
import time

from daemon import render_config
from harness import bg_get
from procs import children_of


def _wait_reloaded(t, b, gen, n, timeout=15.0, samples=None):
    """Waits for generation gen with n workers all of generation gen, state
    running; records (idle+busy, children) samples on the way."""
    def done():
        st = b.status(timeout=2)
        if samples is not None:
            live = sum(1 for p in st["processes"] if p.get("pid") and p.get("state") != "exiting")
            samples.append((st["workers"]["idle"] + st["workers"]["busy"], len(children_of(b.pid)), st["state"],
                            live))
        procs = [p for p in st["processes"] if p.get("pid")]
        if st["generation"] == gen and st["state"] == "running" and len(procs) == n \
                and all(p["generation"] == gen for p in procs) and st["workers"]["starting"] == 0:
            return st
        return None
    return t.wait_until(done, timeout, 0.01, f"reload to generation {gen} with {n} workers")


def test_reload_under_load(t):
    n = 3
    b = t.bulwark(workers=n)
    st0 = b.wait_workers()
    gen0, pids0 = st0["generation"], set(b.worker_pids(st0))
    samples = []
    saw_reloading = False
    with t.hammer("/healthz", threads=4, max_seconds=40) as hm:
        hm.wait_ok(10)
        ok_before = hm.ok
        b.signal(signal.SIGHUP)
        st = _wait_reloaded(t, b, gen0 + 1, n, samples=samples)
        saw_reloading = any(s[2] == "reloading" for s in samples)
        hm.wait_ok(max(51, hm.ok + 20))  # the new generation serves too
    t.check(ok_before > 0, "load generator made no request before the reload")
    t.check(not hm.failures, f"{len(hm.failures)} failed requests during the reload: {hm.failures[:5]}")
    t.check(hm.ok > 50, f"only {hm.ok} requests during the reload")
    pids1 = set(b.worker_pids(st))
    t.check(not (pids0 & pids1), f"old workers survived the reload: {sorted(pids0 & pids1)}")
    t.eq(st["pid"], b.pid, "master pid after reload")
    t.check(saw_reloading, f"/status never said state=reloading during the reload ({len(samples)} samples)")
    cap = min(s[0] for s in samples)
    t.check(cap >= n, f"ready workers (idle+busy) dropped to {cap} < {n} during the reload")
    most = max(s[1] for s in samples)
    t.check(most <= 2 * n, f"{most} worker processes during the reload (workers {n})")


def test_reload_connection_budget(t):
    """While old workers finish slow requests, a reload keeps at most
    workers + reload_surge workers that hold store connections (not
    exiting), and the in-flight requests complete."""
    n, surge = 2, 1
    b = t.bulwark(workers=n, reload_surge=surge)
    st0 = b.wait_workers()
    gen0 = st0["generation"]
    slow = [bg_get(t, "/test/sleep?ms=2000", timeout=15) for _ in range(n)]
    b.wait_phase("sleep", n)
    b.signal(signal.SIGHUP)
    samples = []
    _wait_reloaded(t, b, gen0 + 1, n, timeout=15, samples=samples)
    for th, res in slow:
        th.join(10)
        t.check("r" in res and res["r"].status == 200,
                f"a request in flight during the reload failed: {res.get('r') or res.get('e')!r}")
    most = max(s[3] for s in samples)
    t.check(most <= n + surge,
            f"{most} workers not exiting (holding store connections) during the reload; "
            f"workers {n} + reload_surge {surge} = {n + surge}")


def test_reload_applies_new_config(t):
    b = t.bulwark(workers=2)
    st0 = b.wait_workers()
    gen0 = st0["generation"]
    cfg = dict(b.cfg, workers=3)
    b.write_config(cfg)
    b.signal(signal.SIGHUP)
    st = _wait_reloaded(t, b, gen0 + 1, 3)
    t.eq(st["workers_configured"], 3, "workers_configured after reload with workers = 3")
    cfg = dict(b.cfg, workers=2)
    b.write_config(cfg)
    b.signal(signal.SIGHUP)
    st = _wait_reloaded(t, b, gen0 + 2, 2)
    t.eq(st["workers_configured"], 2, "workers_configured after reload with workers = 2")
    t.eq(len(children_of(b.pid)), 2, "worker processes after shrinking")
    for _ in range(4):
        t.eq(t.get("/healthz").status, 200, "healthz after reloads")


def test_reload_broken_config_keeps_serving(t):
    b = t.bulwark(workers=2)
    st0 = b.wait_workers()
    gen0, pids0 = st0["generation"], b.worker_pids(st0)
    good = dict(b.cfg)
    b.write_config(raw=render_config(dict(good, workers="banana")))
    with t.hammer("/healthz", threads=2, max_seconds=20) as hm:
        hm.wait_ok(5)
        b.signal(signal.SIGHUP)
        line = b.wait_log(lambda x: "reload" in json.dumps(x).lower() and "workers" in json.dumps(x)
                          and x.get("type") != "access", 5.0, what="a log line about the failed reload naming 'workers'")
        hm.wait_ok(hm.ok + 50)  # the old workers go on serving after the refusal
    t.check(line.get("level") in ("warn", "error"), f"failed reload logged at level {line.get('level')!r}: {line}")
    t.check(not hm.failures, f"{len(hm.failures)} failed requests after a broken reload: {hm.failures[:5]}")
    st = b.status()
    t.eq(st["generation"], gen0, "generation after a refused reload")
    t.eq(st["state"], "running", "state after a refused reload")
    t.eq(st["ready"], True, "ready after a refused reload")
    t.eq(b.worker_pids(st), pids0, "workers after a refused reload")
    # a fixed file reloads fine
    b.write_config(good)
    b.signal(signal.SIGHUP)
    _wait_reloaded(t, b, gen0 + 1, 2)
    # a file that became unreadable is refused too
    b.write_config(raw="workers 3\n")
    b.signal(signal.SIGHUP)
    t.wait_until(lambda: sum(1 for x in b.log_lines() if "reload rejected" in str(x.get("msg", ""))) >= 2, 5.0,
                 0.05, "a second 'reload rejected' log line (the malformed line)")
    st = b.status()
    t.eq(st["generation"], gen0 + 1, "generation after a reload with a malformed line")
    t.eq(t.get("/healthz").status, 200, "healthz after a refused reload")
    b.write_config(good)  # so the stop below is clean


def test_reload_rollback_when_new_workers_fail(t):
    """A new generation that cannot become ready (test-build key
    test_fail_worker_start: new workers exit before ready) is rolled back:
    the old workers keep serving, no request fails, the generation stays."""
    b = t.bulwark(workers=2, reload_timeout_ms=5000)
    st0 = b.wait_workers()
    gen0, pids0 = st0["generation"], b.worker_pids(st0)
    good = dict(b.cfg)
    b.write_config(dict(good, test_fail_worker_start=True))
    with t.hammer("/healthz", threads=2, max_seconds=30) as hm:
        hm.wait_ok(5)
        b.signal(signal.SIGHUP)
        line = b.wait_log(lambda x: "roll" in str(x.get("msg", "")).lower(), 8.0,
                          what="a log line about the rolled-back reload")
        st = t.wait_until(lambda: (lambda s: s if s["state"] == "running" else None)(b.status()), 3.0, 0.05,
                          "state running after the rollback")
        hm.wait_ok(max(21, hm.ok + 10))  # the old workers serve after the rollback
    t.check(line.get("level") in ("warn", "error"), f"rollback logged at level {line.get('level')!r}")
    t.check(not hm.failures, f"{len(hm.failures)} failed requests during a rolled-back reload: {hm.failures[:5]}")
    t.check(hm.ok > 20, f"only {hm.ok} requests during the rolled-back reload")
    t.eq(st["generation"], gen0, "generation after a rollback")
    t.eq(b.worker_pids(st), pids0, "the old workers after a rollback")
    t.eq(st["workers"]["total"], 2, "workers after a rollback")
    # the file is fixed: the next reload works
    b.write_config(good)
    b.signal(signal.SIGHUP)
    st = t.wait_until(lambda: (lambda s: s if s["generation"] > gen0 and s["state"] == "running"
                               and s["workers"]["total"] == 2 else None)(b.status()), 10.0, 0.05,
                      "a good reload after the rollback")
    t.check(not (set(pids0) & set(b.worker_pids(st))), "old workers survived the good reload")


def test_reload_kills_retired_worker_that_never_exits(t):
    """An old worker that never exits after its SIGTERM (test-build key
    test_hang_on_stop) is killed drain_timeout_ms after it was retired, with
    a log line; the reload completes instead of waiting forever. The new
    workers are ready well within reload_timeout_ms, so its passing while the
    old ones drain is no reason to roll back."""
    b = t.bulwark(workers=2, drain_timeout_ms=3000, reload_timeout_ms=1500,
                  test_hang_on_stop=True)
    st0 = b.wait_workers()
    gen0, pids0 = st0["generation"], set(b.worker_pids(st0))
    good = dict(b.cfg, test_hang_on_stop=False)
    b.write_config(good)
    b.signal(signal.SIGHUP)
    st = _wait_reloaded(t, b, gen0 + 1, 2, timeout=15)
    line = b.wait_log(lambda x: "retired worker" in str(x.get("msg", "")), 2.0,
                      what="a log line about killing a retired worker")
    t.check(line.get("level") == "warn", f"retired worker kill logged at level {line.get('level')!r}")
    t.check(line.get("worker_pid") in pids0, f"killed pid {line.get('worker_pid')} is not an old worker {pids0}")
    t.check(not (pids0 & set(b.worker_pids(st))), "old workers survived the reload")
    t.check(not (pids0 & set(children_of(b.pid))), "old worker processes still alive after the reload")
    t.eq(st["generation"], gen0 + 1, "generation after the reload")
    t.eq(t.get("/healthz").status, 200, "healthz after the reload")


def test_sigterm_drains_in_flight(t):
    b = t.bulwark(workers=2, drain_timeout_ms=5000)
    b.wait_workers()
    th, res = bg_get(t, "/test/sleep?ms=1500", timeout=15)
    b.wait_phase("sleep")
    t_sig = time.monotonic()
    b.signal(signal.SIGTERM)
    # while draining, the master reports it (the status socket stays up)
    st = t.wait_until(lambda: (lambda s: s if s["state"] == "stopping" else None)(b.status(timeout=1)),
                      0.8, 0.02, "/status state=stopping while draining")
    t.eq(st["ready"], False, "/status ready while draining")
    rc = b.wait_exit(10)
    took = time.monotonic() - t_sig
    th.join(10)
    t.check(rc is not None, "master did not exit within 10 s of SIGTERM")
    t.eq(rc, 0, "exit status after a drain")
    t.check("r" in res, f"in-flight request raised {res.get('e')!r}")
    t.eq(res["r"].status, 200, f"in-flight request during drain ({res['r'].text[:200]!r})")
    t.check(took >= 0.8, f"master exited {took:.2f}s after SIGTERM, before the in-flight request could finish")
    # a master that waited out drain_timeout_ms would take 5 s
    t.check(took < t.scaled(5.0, cap=5.0), f"drain took {took:.2f}s for a 1.5 s request")
    b.finish(expect_code=0)
    t.check(not b.problems, "; ".join(b.problems))


def test_drain_deadline(t):
    b = t.bulwark(workers=2, drain_timeout_ms=1000)
    b.wait_workers()
    th, res = bg_get(t, "/test/sleep?ms=8000", timeout=15)
    b.wait_phase("sleep")
    t_sig = time.monotonic()
    b.signal(signal.SIGTERM)
    rc = b.wait_exit(8)
    took = time.monotonic() - t_sig
    th.join(10)
    t.check(rc is not None, "master did not exit within 8 s with drain_timeout_ms = 1000")
    t.check(0.8 <= took <= t.scaled(3.0), f"master exited {took:.2f}s after SIGTERM; drain_timeout_ms = 1000")
    t.check("r" not in res or res["r"].status != 200, "an 8 s request completed despite the 1 s drain deadline")
    b.finish(expect_code=None)
    t.check(not b.problems, "; ".join(b.problems))


def test_second_signal_fast_stop(t):
    for second in (signal.SIGINT, signal.SIGTERM):
        b = t.bulwark(workers=2, drain_timeout_ms=20000)
        b.wait_workers()
        th, res = bg_get(t, "/test/sleep?ms=8000", timeout=15)
        b.wait_phase("sleep")
        b.signal(signal.SIGTERM)
        # the master took the first signal: it drains (or, wrongly, exited)
        t.wait_until(lambda: b.proc.poll() is not None or b.status(timeout=1)["state"] == "stopping", 3.0, 0.02,
                     "/status state=stopping after the first SIGTERM")
        t.check(b.proc.poll() is None, "master exited at once on the first SIGTERM with a request in flight")
        t_sig = time.monotonic()
        b.signal(second)
        rc = b.wait_exit(5)
        took = time.monotonic() - t_sig
        t.check(rc is not None, f"master did not exit within 5 s of a second signal ({second.name})")
        t.check(took < t.scaled(2.0), f"fast stop took {took:.2f}s after {second.name}")
        th.join(10)
        b.finish(expect_code=None)
        t.check(not b.problems, "; ".join(b.problems))


def test_sigusr1_reopens_log(t):
    b = t.bulwark(workers=2)
    pids0 = b.worker_pids(b.wait_workers())
    log = b.log_file
    r = t.get("/healthz")
    rid = r.header("X-Request-Id")
    b.wait_log(lambda x: x.get("request_id") == rid, 3.0, what="access line before rotation")
    os.rename(log, log + ".1")
    b.signal(signal.SIGUSR1)
    t.wait_until(lambda: os.path.exists(log), 2.0, 0.02, f"a new {log} after SIGUSR1")
    # The master logs this after it has sent SIGUSR1 to every worker: the
    # signal is pending in each, and a worker handles it before it serves.
    b.wait_log(lambda x: x.get("msg") == "log file reopened", 3.0, "the master's reopen line in the new file",
               path=log)
    # from now on every process writes to the new file (idle workers too)
    rids = []
    for _ in range(8):
        rr = t.get("/healthz")
        t.eq(rr.status, 200, "healthz after SIGUSR1")
        rids.append(rr.header("X-Request-Id"))
    for i in rids:  # access lines follow the response: wait for each, in whichever file
        b.wait_log(i, path=[log, log + ".1"])
    new = {x.get("request_id") for x in b.log_lines(log)}
    old = {x.get("request_id") for x in b.log_lines(log + ".1")}
    missing = [i for i in rids if i not in new]
    t.check(not missing, f"{len(missing)} of 8 requests after the reopen are not in the new file")
    t.check(not (set(rids) & old), "requests after the reopen went to the rotated file")
    t.check(rid in old, "the rotated file lost its earlier lines")
    t.eq(b.status()["state"], "running", "master state after SIGUSR1")
    t.eq(b.worker_pids(), pids0, "SIGUSR1 must not restart workers")

"""Telemetry when a store fails: the cache Redis down (latest answers from
MongoDB, ingest goes on); MongoDB stalled with SIGSTOP in the middle of a
stream of batches for longer than the write timeout, then SIGCONT (every
batch that did not get a 201 is sent again with the same msg_ids and each
reading ends up stored exactly once); MongoDB killed (503 with Retry-After,
fast once the breaker is open) and started again (success within a second,
no restart of bulwark)."""

import json
import os
import random
import signal
import threading
import time

from base import env
from harness import check_retry_after
from test_telemetry import empty_telemetry, stored

N_BATCHES = 30
PER_BATCH = 20


def dev(prefix):
    return f"{prefix}-{random.getrandbits(40):010x}"


def post(t, key, device, body, timeout=20):
    return t.http("POST", f"/v1/devices/{device}/telemetry", json.dumps(body, separators=(",", ":")),
                  {"Content-Type": "application/json", **key.auth()}, timeout=timeout)


def get(t, key, path):
    return t.get(path, headers=key.auth(), timeout=20)


def msg_ids(t, key, device):
    """Every msg_id stored for device, through the cursor (repeats kept)."""
    out, after = [], None
    while True:
        r = get(t, key, f"/v1/devices/{device}/telemetry?limit=1000" + (f"&after={after}" if after else ""))
        t.eq(r.status, 200, f"list: {r.text[:200]}")
        b = r.json()
        out.extend(g["msg_id"] for g in b["data"])
        after = b["next"]
        if after is None:
            return out


def jongodb_pid(t):
    if env("BW_MONGO_EXTERNAL") == "1":
        t.skip("MongoDB is external: the stack does not control it")
    with open(os.path.join(env("BW_STACK_DIR"), "mongo", "mongo.pid")) as f:
        return int(f.read().strip())


# ---------------------------------------------------------------------------

def test_telemetry_latest_without_cache_redis(t):
    t.bulwark(shared=True, workers=2)
    k = t.new_tenant(rate=100000, burst=100000)
    d = dev("rc")
    base = int(time.time() * 1000) - 60_000
    t.eq(post(t, k, d, {"msg_id": "one", "ts": base}).status, 201, "first reading")
    r = get(t, k, f"/v1/devices/{d}/latest")
    t.eq((r.status, r.header("X-Cache")), (200, "HIT"), "cached by the ingest")
    with t.outage("redis_cache", how="stop"):
        r = get(t, k, f"/v1/devices/{d}/latest")
        t.eq((r.status, r.header("X-Cache"), r.json()["msg_id"]), (200, "MISS", "one"),
             "cache down: latest from MongoDB")
        t.check(r.elapsed < t.scaled(1.0, cap=1.0), f"no timeout waited: {r.elapsed:.3f}s")  # connect_timeout_ms
        r = post(t, k, d, {"msg_id": "two", "ts": base + 1})
        t.eq(r.status, 201, f"ingest with the cache down: {r.text[:200]}")
        r = get(t, k, f"/v1/devices/{d}/latest")
        t.eq((r.status, r.json()["msg_id"]), (200, "two"), "the newest, still from MongoDB")
    # The cache came back empty; the breaker lets a probe through soon.
    t.wait_until(lambda: get(t, k, f"/v1/devices/{d}/latest").header("X-Cache") == "HIT", 5.0,
                 0.1, "latest cached again")
    r = get(t, k, f"/v1/devices/{d}/latest")
    t.eq(r.json()["msg_id"], "two", "the cache holds the newest")


def test_telemetry_mongo_stall_then_retry_stores_each_once(t):
    pid = jongodb_pid(t)
    # Short timeouts so the stall (1.5 s) is longer than a write may take.
    t.bulwark(workers=2, mongo_timeout_ms=500, mongo_wtimeout_ms=300)
    empty_telemetry()
    k = t.new_tenant(rate=100000, burst=100000)
    d = dev("stall")
    base = int(time.time() * 1000) - 600_000
    batches = [[{"msg_id": f"s{i}-{j}", "ts": base + i * 100 + j, "i": i} for j in range(PER_BATCH)]
               for i in range(N_BATCHES)]
    log, done, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + t.scaled(60)

    def sender():
        for i, b in enumerate(batches):
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    r = post(t, k, d, b, timeout=10)
                except Exception as e:  # noqa: BLE001
                    with lock:
                        log.append((i, None, time.monotonic() - t0, repr(e)))
                    time.sleep(0.1)  # a device's back-off before it sends again
                    continue
                with lock:
                    log.append((i, r.status, time.monotonic() - t0, r))
                if r.status == 201:
                    break
                # A real device would wait Retry-After; the test is in a hurry.
                time.sleep(0.1)  # a device's back-off before it sends again
            with lock:
                done[0] = i + 1
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    t.wait_until(lambda: done[0] >= 5, 20, 0.02, "five batches stored before the stall")
    os.kill(pid, signal.SIGSTOP)
    t.defer(lambda: os.kill(pid, signal.SIGCONT))
    stopped_at = done[0]
    time.sleep(1.5)  # the input: the stall, longer than the write timeout
    os.kill(pid, signal.SIGCONT)
    th.join(70)
    t.check(not th.is_alive(), "the sender finished")
    t.check(done[0] == N_BATCHES, f"every batch sent ({done[0]}/{N_BATCHES})")

    statuses = {}
    for i, st, el, r in log:
        statuses[st] = statuses.get(st, 0) + 1
    t.h.note(f"stall at batch {stopped_at}: statuses {statuses}")
    t.check(set(statuses) <= {201, 503}, f"only 201 and 503 (no 500, no gateway error): {statuses}")
    t.check(statuses.get(503, 0) >= 1, f"the stall was noticed: {statuses}")
    for i, st, el, r in log:
        if st != 503:
            continue
        p = r.json()
        t.eq(p["code"], "dependency_unavailable", "503 code")
        check_retry_after(t, r, f"batch {i}")
        t.check(el < t.scaled(3.0), f"a 503 after {el:.2f}s: the write timeout answers, not a hang")
        if "results" in p:
            t.eq([x["msg_id"] for x in p["results"]], [x["msg_id"] for x in batches[i]],
                 "per-item fate of every reading")
            t.check(all(x["status"] in ("stored", "duplicate", "unknown") for x in p["results"]),
                    f"fates {[x['status'] for x in p['results']]}")
    final = {i: r.json() for i, st, el, r in log if st == 201}
    t.eq(sorted(final), list(range(N_BATCHES)), "each batch ended with a 201")
    retried_dups = sum(v["duplicates"] for v in final.values())
    t.h.note(f"readings already stored when their batch was sent again: {retried_dups}")

    got = msg_ids(t, k, d)
    want = [x["msg_id"] for b in batches for x in b]
    t.eq(len(got), len(want), "no reading stored twice, none lost")
    t.eq(sorted(got), sorted(want), "each reading exactly once")
    docs = stored({"tenant_id": k.tenant_id, "device_id": d})
    t.eq(len(docs), len(want), "MongoDB itself holds each reading once")


def test_telemetry_mongo_killed_then_back_without_restart(t):
    jongodb_pid(t)
    b = t.bulwark(workers=2)
    k = t.new_tenant(rate=100000, burst=100000)
    d = dev("kill")
    base = int(time.time() * 1000) - 60_000
    t.eq(post(t, k, d, {"msg_id": "before", "ts": base}).status, 201, "before the kill")
    # jongodb keeps nothing across a restart, and its indexes go with it:
    # put them back for whatever runs next. That a 201 survives a kill is a
    # property of a real MongoDB (journaled, majority), not shown here.
    t.defer(lambda: t.cli(["migrate", "up"]))
    with t.outage("mongo", how="kill") as mongo:
        answers = []
        end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < end:  # the input: 1.5 s of batches while MongoDB is down
            r = post(t, k, d, {"msg_id": f"down-{i}", "ts": base + i})
            answers.append((r.status, r.elapsed, r))
            i += 1
        t.check(all(st == 503 for st, _, _ in answers), f"503 while down: {[a[0] for a in answers]}")
        for st, el, r in answers:
            check_retry_after(t, r, "POST while down")
            t.eq(r.json()["code"], "dependency_unavailable", "code while down")
        late = sorted(el for _, el, _ in answers[-10:])
        t.h.note(f"{len(answers)} answers while down; last ten took {[round(x, 3) for x in late]}")
        t.check(late[len(late) // 2] < t.scaled(0.1),
                f"breaker open: answers within {t.scaled(0.1) * 1000:.0f} ms ({late})")
        r = get(t, k, f"/v1/devices/{d}/telemetry")
        t.eq(r.status, 503, "a list needs MongoDB")
        check_retry_after(t, r, "GET while down")
        r = get(t, k, f"/v1/devices/{d}/latest")
        t.eq((r.status, r.header("X-Cache")), (200, "HIT"), "latest still answers from the cache")
    up = mongo.back
    first = t.wait_until(lambda: post(t, k, d, {"msg_id": "after", "ts": base + 10_000}).status == 201
                         and time.monotonic(), 5.0, 0.02, "a 201 after MongoDB is back")
    t.h.note(f"first 201 {first - up:.3f}s after MongoDB answered again")
    t.check(first - up <= t.scaled(1.0),
            f"success within {t.scaled(1.0):g} s of MongoDB being back ({first - up:.3f}s)")
    # every worker is back (each has its own breaker, probing at least
    # every 800 ms), without a restart
    pids_before = b.worker_pids()
    # the input: the moment the contract speaks of (every breaker has probed)
    time.sleep(max(0.0, up + 1.0 - time.monotonic()))
    ok = sum(post(t, k, d, {"msg_id": f"after-{j}", "ts": base + 20_000 + j}).status == 201
             for j in range(10))
    t.eq(ok, 10, "ten more in a row")
    t.eq(b.worker_pids(), pids_before, "no worker was restarted")
    t.eq(b.proc.poll(), None, "bulwark kept running")

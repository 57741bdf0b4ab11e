"""The ledger under concurrency and failure: many concurrent random
transfers over three tenants (the balances PostgreSQL holds are exactly
those the 201s add up to; per tenant and currency they sum to 0; no
forbidden negative balance; entries sum to balances; no 5xx), and
PostgreSQL killed with SIGKILL in the middle of concurrent transfers
(fast 503s with Retry-After once the breakers are open, recovery within
about a second of `stack.sh start pg` without restarting bulwark, every
201 kept with both entries, every 503 safe to retry with its key)."""

import json
import random
import threading
import time

from harness import check_503
from ledgerlib import (Client, check_invariants, db_balances, median, new_tenant, psql, transfers_by_memo,
                       wait_pg_back)

SETTINGS = dict(workers=6)


def expected_balances(seed, bodies):
    """seed {id: balance} plus the effect of each distinct transfer body."""
    out = dict(seed)
    seen = set()
    for tr in bodies:
        if tr["id"] in seen:
            continue
        seen.add(tr["id"])
        out[tr["from_account"]] = out.get(tr["from_account"], 0) - tr["amount"]
        out[tr["to_account"]] = out.get(tr["to_account"], 0) + tr["amount"]
    return out


def test_ledger_concurrent_random_transfers(t):
    t.shared_bulwark()
    rng = random.Random(random.getrandbits(64))  # replayable: random is seeded per test
    tenants = []
    for n in range(3):
        c = Client(t, new_tenant(t))
        accts = [
            c.create_account("usd bank", "USD", allow_negative=True),
            c.create_account("usd a", "USD"),
            c.create_account("usd b", "USD"),
            c.create_account("eur bank", "EUR", allow_negative=True),
            c.create_account("eur overdraft", "EUR", allow_negative=True),
            c.create_account("eur d", "EUR"),
        ]
        seeds = [c.transfer_ok(accts[0]["id"], accts[1]["id"], 5000, "USD"),
                 c.transfer_ok(accts[0]["id"], accts[2]["id"], 5000, "USD"),
                 c.transfer_ok(accts[3]["id"], accts[5]["id"], 5000, "EUR")]
        tenants.append((c, accts, seeds))
    foreign = tenants[1][1][1]["id"]  # an account of tenant 1, for tenant 0's strays
    results, lock = [], threading.Lock()

    def worker(seed):
        r_ = random.Random(seed)
        for _ in range(40):
            ti = r_.randrange(3)
            c, accts, _s = tenants[ti]
            fa, ta = r_.choice(accts), r_.choice(accts)
            cur = fa["currency"] if r_.random() < 0.9 else ("EUR" if fa["currency"] == "USD" else "USD")
            roll = r_.random()
            amount = (r_.randint(1, 500) if roll < 0.8 else r_.randint(500, 10000) if roll < 0.95
                      else r_.randint(10**9, 10**12))
            stray = ti == 0 and r_.random() < 0.03
            to_id = foreign if stray else ta["id"]
            try:
                r = c.transfer(fa["id"], to_id, amount, cur)
                item = (ti, fa, None if stray else ta, cur, amount, r.status, r.body)
            except Exception as e:  # noqa: BLE001
                item = (ti, fa, ta, cur, amount, None, repr(e).encode())
            with lock:
                results.append(item)
    ths = [threading.Thread(target=worker, args=(rng.random(),), daemon=True) for _ in range(16)]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join(80)
    elapsed = time.monotonic() - t0
    statuses = {}
    for it in results:
        statuses[it[5]] = statuses.get(it[5], 0) + 1
    t.h.note(f"{len(results)} random transfers in {elapsed:.1f}s: {statuses}")
    t.eq(len(results), 16 * 40, "answers collected")
    t.check(set(statuses) <= {201, 404, 422}, f"status codes {statuses} (no 5xx, no transport errors)")
    ok = {i: [] for i in range(3)}
    for ti, fa, ta, cur, amount, st, body in results:
        d = json.loads(body)
        if st == 201:
            t.check(ta is not None and fa["id"] != ta["id"] and fa["currency"] == ta["currency"] == cur,
                    f"a transfer that must be refused was accepted: {d}")
            t.eq((d["from_account"], d["to_account"], d["amount"], d["currency"]),
                 (fa["id"], ta["id"], amount, cur), "201 body")
            ok[ti].append(d)
            continue
        code = d.get("code")
        if ta is None:
            t.eq((st, code), (404, "account_not_found"), "another tenant's account")
        elif fa["id"] == ta["id"]:
            t.eq((st, code), (422, "same_account"), f"same account {d}")
        elif fa["currency"] != ta["currency"] or fa["currency"] != cur:
            t.eq((st, code), (422, "currency_mismatch"), f"currency mismatch {d}")
        else:
            t.eq((st, code), (422, "insufficient_funds"), f"refusal of a valid-looking transfer {d}")
            t.check(not fa["allow_negative"], f"insufficient_funds on an allow_negative account: {d}")
    t.check(all(ok.values()), f"every tenant got some transfers through: {[len(v) for v in ok.values()]}")
    ids = [tid for (c, _a, _s) in tenants for tid in (c.tenant_id,)]
    check_invariants(t, ids)
    for ti, (c, accts, seeds) in enumerate(tenants):
        want = expected_balances({a["id"]: 0 for a in accts}, seeds + ok[ti])
        t.eq(db_balances(t, c.tenant_id), want,
             f"tenant {ti}: balances in PostgreSQL = what the 201s add up to")
        api = {a["id"]: c.balance(a["id"]) for a in accts}
        t.eq(api, want, f"tenant {ti}: balances through the API")
        for a in accts:
            es = c.entries(a["id"])
            t.eq(sum(e["amount"] for e in es), want[a["id"]], f"tenant {ti}: entries of {a['name']} sum")
            if es:
                t.eq(es[0]["balance_after"], want[a["id"]], f"tenant {ti}: newest balance_after of {a['name']}")
        n = int(psql(t, "SELECT count(*) FROM transfers WHERE tenant_id = :'p1';", c.tenant_id)[0])
        t.eq(n, len(seeds) + len(ok[ti]), f"tenant {ti}: transfers in PostgreSQL = 201s")
        s = c.summary().json()
        t.eq(s["transfers"], n, f"tenant {ti}: summary transfers")
        for cur in s["currencies"]:
            t.eq(cur["balance_sum"], 0, f"tenant {ti}: summary balance_sum of {cur['currency']}")
            vol = sum(x["amount"] for x in seeds + ok[ti] if x["currency"] == cur["currency"])
            t.eq(cur["volume"], vol, f"tenant {ti}: summary volume of {cur['currency']}")


def test_ledger_postgres_killed_during_transfers(t):
    b = t.shared_bulwark()
    c = Client(t, new_tenant(t))
    accts = [c.create_account(f"n{i}", "USD", allow_negative=True)["id"] for i in range(4)]
    pids0 = b.worker_pids(b.wait_workers())
    sent, lock = [], threading.Lock()  # (key, body, status, response body, replayed)
    stop = threading.Event()

    def writer(seed):
        r_ = random.Random(seed)
        while not stop.is_set():
            frm, to = r_.sample(accts, 2)
            body = {"from_account": frm, "to_account": to, "amount": r_.randint(1, 1000), "currency": "USD"}
            key = f"kill-{r_.getrandbits(64):016x}"
            body["memo"] = key
            try:
                r = c.req("POST", "/v1/transfers", body, idem_key=key, timeout=20)
                item = (key, body, r.status, r.body, r.header("Idempotent-Replayed"))
            except Exception as e:  # noqa: BLE001
                item = (key, body, None, repr(e).encode(), None)
            with lock:
                sent.append(item)
            if item[2] != 201:
                time.sleep(0.1)  # a client's back-off after a refusal
    ths = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(8)]
    for th in ths:
        th.start()
    t.wait_until(lambda: sum(1 for it in list(sent) if it[2] == 201) >= 20, 10.0, 0.02,
                 "20 transfers before the kill")
    n_before = len(sent)
    with t.outage("pg", how="kill") as pg:
        n_kill = len(sent)
        # the writers meet the outage: as many 503s as there are writers
        t.wait_until(lambda: sum(1 for it in list(sent[n_kill:]) if it[2] == 503) >= len(ths), 10.0, 0.02,
                     f"{len(ths)} answers 503 after the kill")
        stop.set()
        for th in ths:
            th.join(30)
        t.check(not any(th.is_alive() for th in ths), "writers stuck after PostgreSQL was killed")
        t.h.note(f"{n_before} transfers before the kill, {len(sent)} in all; writers stopped "
                 f"{time.monotonic() - pg.down:.2f}s after it")
        # PostgreSQL down: 503 + Retry-After, fast once the breakers are open
        for _ in range(12):  # every worker sees the outage
            check_503(t, c.req("GET", f"/v1/accounts/{accts[0]}"), "GET account with PostgreSQL down")
        lat = []
        for _ in range(20):
            r = c.req("GET", f"/v1/accounts/{accts[0]}")
            check_503(t, r, "GET account with PostgreSQL down, breaker open")
            lat.append(r.elapsed)
        r = c.transfer(accts[0], accts[1], 1)
        check_503(t, r, "POST /v1/transfers with PostgreSQL down")
        sent.append((r.idem_key, None, 503, r.body, None))
        t.h.note(f"503 latency with the breaker open: median {median(lat) * 1000:.1f} ms, "
                 f"max {max(lat) * 1000:.1f} ms")
        t.check(median(lat) < t.scaled(0.100),
                f"median latency of a 503 with the breaker open: {median(lat) * 1000:.1f} ms")
        t.check(max(lat) < t.scaled(2.0), f"a 503 took {max(lat):.2f}s with PostgreSQL down")
    # back: requests succeed again within about a second, bulwark not restarted
    t_up = pg.back
    first_ok, streak, steady = None, 0, None
    while time.monotonic() - t_up < t.scaled(10) and steady is None:
        r = c.req("GET", f"/v1/accounts/{accts[0]}")
        t.check(r.status in (200, 503), f"while PostgreSQL restarts: {r.status} {r.text[:200]!r}")
        if r.status == 200:
            first_ok = first_ok or time.monotonic() - t_up
            streak += 1
            if streak == 12:
                steady = time.monotonic() - t_up
        else:
            streak = 0
            time.sleep(0.02)  # the poll interval of this measured wait
    t.h.note(f"after start pg: first 200 after {first_ok}s, 12 in a row by {steady}s")
    t.check(first_ok is not None and first_ok <= t.scaled(1.0),
            f"first success {first_ok}s after PostgreSQL accepted connections again (want ≤ {t.scaled(1.0):g} s)")
    t.check(steady is not None and steady <= t.scaled(1.5),
            f"every worker succeeded again only after {steady}s (want about 1 s, ≤ {t.scaled(1.5):g} s)")
    t.eq(b.worker_pids(b.wait_workers()), pids0, "the same workers (bulwark was not restarted)")
    # every answer was a 201 or a 503 (a transport error would be a hang or a crash)
    statuses = {}
    for it in sent:
        statuses[it[2]] = statuses.get(it[2], 0) + 1
    t.h.note(f"answers around the kill: {statuses}")
    t.check(set(statuses) <= {201, 503}, f"answers around the kill: {statuses}")
    t.check(statuses.get(503, 0) >= 1, f"no 503 while PostgreSQL was down? {statuses}")
    for key, body, st, rb, _rep in sent:
        if st == 503:
            t.check(json.loads(rb).get("code") == "dependency_unavailable", f"503 body {rb[:200]!r}")
    # retry each 503 with its key: it ran or it did not — never twice
    done = [json.loads(rb) for key, body, st, rb, _ in sent if st == 201]
    fresh = replayed = 0
    for key, body, st, rb, _ in sent:
        if st == 201 or body is None:
            continue
        for _attempt in range(20):
            r = c.req("POST", "/v1/transfers", body, idem_key=key)
            if r.status not in (409, 503):
                break
            time.sleep(0.1)  # a client's back-off before it retries
        t.eq(r.status, 201, f"retry of a 503 with the same key ({r.text[:200]!r})")
        if r.header("Idempotent-Replayed") == "true":
            replayed += 1
        else:
            fresh += 1
        done.append(r.json())
    t.h.note(f"retried 503s: {fresh} ran now, {replayed} had committed before the crash")
    t.check(fresh >= 1, "no 503 was retried as a new request (was a 503 stored as the outcome?)")
    ids = sorted({d["id"] for d in done})
    keys = [body["memo"] for key, body, st, rb, _ in sent if body is not None]
    t.eq(transfers_by_memo(t, c.tenant_id, keys), {k: 1 for k in keys},
         "each key's transfer exists exactly once (memo = key)")
    rows = psql(t, "SELECT count(DISTINCT tr.id), count(e.id) FROM transfers tr JOIN entries e "
                   "ON e.transfer_id = tr.id WHERE tr.id = ANY(:'p1'::uuid[]);", "{" + ",".join(ids) + "}")
    t.eq(rows, [f"{len(ids)}|{2 * len(ids)}"], "every 201'd transfer exists with both entries")
    n = int(psql(t, "SELECT count(*) FROM transfers WHERE tenant_id = :'p1';", c.tenant_id)[0])
    t.eq(n, len(ids), "transfers in PostgreSQL = distinct 201s")
    t.eq(db_balances(t, c.tenant_id), expected_balances({a: 0 for a in accts}, done),
         "balances = what the 201s add up to")
    check_invariants(t, [c.tenant_id])
    wait_pg_back(t, c)

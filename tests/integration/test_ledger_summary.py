"""GET /v1/reports/summary, cache-aside in the cache Redis (sum:{T},
sumgen:{T}, sumlease:{T}; bw_cache_* in workers/lua/bulwark.lua), and the
races of cache-aside that apply: read-your-writes after
every transfer, a stale fill dropped (driven at the Redis level, and
planted entries of another generation never served), the stampede (many
concurrent misses → at most a couple of recomputes, counted by X-Cache:
MISS), stale when PostgreSQL is down, computed directly when the cache
Redis is down, early refresh before expiry, and a TTL on every key."""

import json
import secrets
import time

from clients import RedisError
from harness import REPO, check_503
from ledgerlib import Client, median, new_tenant, together, wait_pg_back

SETTINGS = dict(workers=4)
LUA = REPO / "workers" / "lua" / "bulwark.lua"
FIELDS = ["computed_at", "currencies", "generation", "tenant_id", "top_accounts", "transfers"]


def keys(tenant_id):
    return f"sum:{{{tenant_id}}}", f"sumgen:{{{tenant_id}}}", f"sumlease:{{{tenant_id}}}"


def get_summary(c):
    r = c.req("GET", "/v1/reports/summary")
    c.t.eq(r.status, 200, f"GET /v1/reports/summary ({r.text[:300]!r})")
    return r


def xcache(r):
    return r.header("X-Cache")


def data(body):
    """The part of a summary that depends on the ledger only."""
    s = json.loads(body) if isinstance(body, (bytes, str)) else body
    return {k: s[k] for k in ("tenant_id", "currencies", "transfers", "top_accounts")}


def small_ledger(t, c, n=3):
    bank = c.create_account("bank", "USD", allow_negative=True)
    acct = c.create_account("acct", "USD")
    for i in range(n):
        c.transfer_ok(bank["id"], acct["id"], 10 * (i + 1))
    return bank, acct


# ---------------------------------------------------------------------------

def test_ledger_summary_shape_and_read_your_writes(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    usd_bank = c.create_account("usd bank", "USD", allow_negative=True)
    eur_bank = c.create_account("eur bank", "EUR", allow_negative=True)
    usd = c.create_account("usd", "USD")
    eur = c.create_account("eur", "EUR")
    r = get_summary(c)
    t.eq(xcache(r), "MISS", "X-Cache of the first summary")
    s = r.json()
    t.eq(sorted(s), FIELDS, "summary fields")
    t.eq(s["tenant_id"], c.tenant_id, "tenant_id")
    t.check(isinstance(s["generation"], int) and s["generation"] > 0, f"generation {s['generation']!r}")
    t.eq(s["currencies"], [{"currency": "EUR", "accounts": 2, "balance_sum": 0, "volume": 0, "volume_24h": 0},
                           {"currency": "USD", "accounts": 2, "balance_sum": 0, "volume": 0, "volume_24h": 0}],
         "currencies of a ledger without transfers")
    t.eq((s["transfers"], s["top_accounts"]), (0, []), "no transfers yet")
    r2 = get_summary(c)
    t.eq(xcache(r2), "HIT", "X-Cache of the second summary")
    t.eq(r2.body, r.body, "a HIT serves the stored body byte for byte")
    vol = {"USD": 0, "EUR": 0}
    gen = s["generation"]
    for i in range(8):
        cur = "USD" if i % 2 == 0 else "EUR"
        bank, to = (usd_bank, usd) if cur == "USD" else (eur_bank, eur)
        amount = 10 * (i + 1)
        c.transfer_ok(bank["id"], to["id"], amount, cur)
        vol[cur] += amount
        r = get_summary(c)
        s = r.json()
        t.eq(xcache(r), "MISS", f"the first summary after transfer {i + 1} is recomputed")
        t.eq(s["transfers"], i + 1, f"summary read right after transfer {i + 1}: transfers")
        t.eq({x["currency"]: (x["volume"], x["volume_24h"], x["balance_sum"]) for x in s["currencies"]},
             {k: (v, v, 0) for k, v in vol.items()}, f"summary read right after transfer {i + 1}: currencies")
        t.check(s["generation"] > gen, f"generation after transfer {i + 1}: {s['generation']} <= {gen}")
        gen = s["generation"]
        r2 = get_summary(c)
        t.eq((xcache(r2), r2.body), ("HIT", r.body), f"the read after that one (transfer {i + 1})")
    # an account is a write too
    c.create_account("late", "EUR")
    s = get_summary(c).json()
    t.eq([x["accounts"] for x in s["currencies"]], [3, 2], "accounts per currency right after a creation")
    # top 10 accounts by volume (debits and credits), ties by id
    extra = [c.create_account(f"top {i}", "USD") for i in range(11)]
    for i, a in enumerate(extra):
        c.transfer_ok(usd_bank["id"], a["id"], 100 + i)
    volume = {}
    for a in [usd_bank, eur_bank, usd, eur] + extra:
        es = c.entries(a["id"])
        if es:
            volume[a["id"]] = (a["name"], sum(abs(e["amount"]) for e in es))
    want = sorted(volume.items(), key=lambda kv: (-kv[1][1], kv[0]))[:10]
    s = get_summary(c).json()
    t.eq(s["top_accounts"], [{"id": k, "name": n, "volume": v} for k, (n, v) in want], "top_accounts")
    t.eq(s["transfers"], 8 + 11, "transfers")


def test_ledger_summary_stampede(t):
    """Many concurrent reads of a missing entry → one recompute (at most
    two), counted by X-Cache: MISS; everyone gets the same summary."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, acct = small_ledger(t, c)
    rd = t.redis("redis_cache")
    entry, _gen, _lease = keys(c.tenant_id)
    get_summary(c)
    for rnd, how in enumerate(["flush", "write", "flush", "write"]):
        if how == "flush":
            rd.call("DEL", entry)
        else:
            c.transfer_ok(bank["id"], acct["id"], 1)
        rs = together(32, lambda i: c.req("GET", "/v1/reports/summary"))
        errs = [r for r in rs if isinstance(r, Exception)]
        t.check(not errs, f"round {rnd}: transport errors {errs[:3]}")
        t.check(all(r.status == 200 for r in rs),
                f"round {rnd}: statuses {sorted(set((r.status, r.text[:100]) for r in rs if r.status != 200))}")
        counts = {}
        for r in rs:
            counts[xcache(r)] = counts.get(xcache(r), 0) + 1
        t.h.note(f"stampede round {rnd} ({how}): {counts}, slowest {max(r.elapsed for r in rs):.3f}s")
        t.check(1 <= counts.get("MISS", 0) <= 2, f"round {rnd} ({how}): recomputes (MISS) {counts}")
        t.eq(set(counts) - {"MISS", "HIT"}, set(), f"round {rnd}: X-Cache values {counts}")
        bodies = {json.dumps(data(r.body), sort_keys=True) for r in rs}
        gens = {r.json()["generation"] for r in rs}
        t.eq((len(bodies), len(gens)), (1, 1), f"round {rnd}: one summary for all ({len(bodies)} bodies, gens {gens})")
        want = 3 + sum(1 for h in ["flush", "write", "flush", "write"][:rnd + 1] if h == "write")
        t.eq(json.loads(bodies.pop())["transfers"], want, f"round {rnd}: transfers")
        # a reader left waiting for a lease nobody fills waits out its 5 s
        t.check(max(r.elapsed for r in rs) < t.scaled(3.0, cap=5.0),
                f"round {rnd}: a reader waited {max(r.elapsed for r in rs):.2f}s")


def drop_lib(rd):
    """The daemon loads its own library again on "Function not found"."""
    try:
        rd.call("FUNCTION", "DELETE", "bulwark")
    except RedisError:
        pass


def load_lib(t, rd):
    """The source tree's library (the daemon's may be older or newer): it is
    deleted again at the end of the test."""
    t.defer(lambda: drop_lib(rd))
    t.eq(rd.call("FUNCTION", "LOAD", "REPLACE", LUA.read_text()), "bulwark", "FUNCTION LOAD REPLACE")


def test_ledger_summary_stale_fill_dropped_in_redis(t):
    """bw_cache_get / bw_cache_fill / bw_cache_bump driven directly: a fill
    computed at generation G after a bump to G' is dropped (0, nothing
    stored), whoever holds the lease; the lease is released by its holder's
    fill; a second reader waits; everything written has a TTL."""
    rd = t.redis("redis_cache")
    load_lib(t, rd)
    tenant = "it-" + secrets.token_hex(6)
    entry, gen, lease = keys(tenant)
    t.defer(lambda: rd.call("DEL", entry, gen, lease))

    def get(tok):
        return rd.call("FCALL", "bw_cache_get", 3, entry, gen, lease, tok, 5000, "")

    def fill(tok, g, body, soft_ms=60000, hard_ms=600000):
        return rd.call("FCALL", "bw_cache_fill", 3, entry, gen, lease, tok, g, body, soft_ms, hard_ms)

    st, g1, body = get("tokA")
    t.eq((st, body), ("miss", None), "empty cache: miss, lease taken")
    t.eq(rd.call("GET", lease), "tokA", "the lease holds A's token")
    t.check(0 < rd.call("PTTL", lease) <= 5000, "the lease has a TTL")
    t.check(0 < rd.call("PTTL", gen), "the generation has a TTL")
    t.eq(get("tokB")[0], "wait", "a second reader while A holds the lease")
    g2 = rd.call("FCALL", "bw_cache_bump", 1, gen)
    t.check(int(g2) > int(g1), f"bump: {g2} > {g1}")
    t.eq(fill("tokA", g1, '{"v":"old"}'), 0, "A's fill computed at the old generation is dropped")
    t.eq(rd.call("EXISTS", entry), 0, "nothing stored by the dropped fill")
    t.eq(rd.call("GET", lease), None, "A's fill released A's lease anyway")
    st, g, body = get("tokB")
    t.eq((st, g, body), ("miss", g2, None), "B: miss at the new generation, lease taken")
    t.eq(get("tokC")[0], "wait", "C waits for B")
    t.eq(fill("tokB", g2, '{"v":"new"}'), 1, "B's fill at the current generation is stored")
    t.eq(rd.call("GET", lease), None, "B's fill released B's lease")
    pttl = rd.call("PTTL", entry)
    t.check(0 < pttl <= 600000, f"the entry's PTTL {pttl}")
    t.eq(get("tokC"), ["hit", g2, '{"v":"new"}'], "C: hit")
    # a late fill of an older generation never replaces the current entry
    t.eq(fill("tokC", g1, '{"v":"late"}'), 0, "a late fill of generation G (current G')")
    t.eq(get("tokD"), ["hit", g2, '{"v":"new"}'], "still B's entry")
    # after another write the old body is only offered as stale material
    g3 = rd.call("FCALL", "bw_cache_bump", 1, gen)
    t.eq(get("tokE"), ["miss", g3, '{"v":"new"}'], "after a bump: miss, with the old body for STALE use")
    t.eq(fill("tokE", g2, '{"v":"g2"}'), 0, "a fill of the previous generation after a bump")
    # a lost generation counter never comes back older
    rd.call("DEL", gen, lease)
    st, g4, _ = get("tokF")
    t.check(st == "miss" and int(g4) > int(g3), f"generation after the counter was lost: {st} {g4} (was {g3})")
    t.eq(fill("tokF", g3, '{"v":"g3"}'), 0, "a fill of the lost counter's generation")
    # early refresh: past the soft expiry one reader takes the lease
    t.eq(fill("tokF", g4, '{"v":"g4"}', soft_ms=1), 1, "a fill fresh for 1 ms")
    time.sleep(0.01)  # the input: the 1 ms soft expiry passes
    t.eq(get("tokG"), ["refresh", g4, '{"v":"g4"}'], "past soft expiry: refresh, lease taken")
    t.eq(get("tokH"), ["hit", g4, '{"v":"g4"}'], "others meanwhile: hit on the same generation")


def test_ledger_summary_generation_decides(t):
    """Through HTTP: an entry tagged with another generation is never served
    (a fill computed before a write's bump), one tagged with the current
    generation is (so this test would see a cache that ignored the tag)."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, acct = small_ledger(t, c)
    rd = t.redis("redis_cache")
    entry, gen, _lease = keys(c.tenant_id)
    real = get_summary(c)
    g = int(rd.call("GET", gen))
    t.eq(real.json()["generation"], g, "the summary's generation is the counter's")
    far = str((time.time() + 3600) * 1e6).split(".")[0]
    t.defer(lambda: rd.call("DEL", entry))
    for other in (g - 1, g + 1):
        rd.call("HSET", entry, "gen", str(other), "body", '{"planted":"other generation"}', "soft", far)
        r = get_summary(c)
        t.check(b"planted" not in r.body, f"an entry of generation {other} (current {g}) was served: {r.text[:200]}")
        t.eq((xcache(r), data(r.body)), ("MISS", data(real.body)), f"entry of generation {other}: recomputed")
    rd.call("HSET", entry, "gen", str(g), "body", '{"planted":"current generation"}', "soft", far)
    r = get_summary(c)
    t.eq((xcache(r), r.body), ("HIT", b'{"planted":"current generation"}'),
         "an entry of the current generation is served as is")
    c.transfer_ok(bank["id"], acct["id"], 5)
    r = get_summary(c)
    t.check(b"planted" not in r.body, f"the planted entry outlived a write: {r.text[:200]}")
    t.eq((xcache(r), r.json()["transfers"]), ("MISS", 4), "after a write")


def cached_then_written(t, c):
    """A cached summary, then a write that moves the generation; returns
    the cached (now stale) response."""
    bank, acct = small_ledger(t, c)
    get_summary(c)
    cached = get_summary(c)
    t.eq(xcache(cached), "HIT", "cached before the outage")
    c.transfer_ok(bank["id"], acct["id"], 7)  # the generation moves; the entry is now stale
    return cached


def test_ledger_summary_stale_when_postgres_down(t):
    """PostgreSQL stopped: the last summary is served as STALE (200, the
    older body byte for byte) even though a write moved the generation; a
    tenant with no entry gets 503 + Retry-After; after the restart the
    summary is current again."""
    t.shared_bulwark()
    c, none = Client(t, new_tenant(t)), Client(t, new_tenant(t))
    none.create_account("lonely", "USD")
    cached = cached_then_written(t, c)
    with t.outage("pg", how="stop"):
        for i in range(3):
            r = get_summary(c)
            t.eq((xcache(r), r.body), ("STALE", cached.body), f"summary {i + 1} with PostgreSQL down")
            check_503(t, none.req("GET", "/v1/reports/summary"),
                      f"summary {i + 1} without any cached copy, PostgreSQL down")
    wait_pg_back(t, c)

    def current():
        r = get_summary(c)
        return r.json()["transfers"] == 4 and xcache(r) in ("MISS", "HIT") and r
    t.wait_until(current, 5.0, 0.1, "a current summary after PostgreSQL is back")
    r = get_summary(c)
    t.eq((xcache(r), r.json()["transfers"]), ("HIT", 4), "cached again after the outage")


def test_ledger_summary_fast_when_postgres_down(t):
    """Once the breaker is open, the summary's STALE answer and its 503
    (no cached copy) come fast, like every other route's 503 (issue item 7:
    within 100 ms) — a failed recompute must not leave later readers
    waiting for a lease nobody will fill."""
    t.shared_bulwark()
    c, none = Client(t, new_tenant(t)), Client(t, new_tenant(t))
    none.create_account("lonely", "USD")
    cached_then_written(t, c)
    stale_lat, none_lat = [], []
    with t.outage("pg", how="stop"):
        for i in range(8):
            r = get_summary(c)
            t.eq(xcache(r), "STALE", f"summary {i + 1} with PostgreSQL down")
            stale_lat.append(r.elapsed)
            r = none.req("GET", "/v1/reports/summary")
            check_503(t, r, f"summary {i + 1} without any cached copy, PostgreSQL down")
            none_lat.append(r.elapsed)
    wait_pg_back(t, c)
    t.h.note(f"PostgreSQL down: STALE latencies {[round(x * 1000) for x in stale_lat]} ms, "
             f"503 latencies {[round(x * 1000) for x in none_lat]} ms")
    fast = t.scaled(0.100)
    t.check(median(stale_lat[2:]) < fast and median(none_lat[2:]) < fast,
            f"with the breaker open, STALE (median {median(stale_lat[2:]) * 1000:.0f} ms, "
            f"{[round(x * 1000) for x in stale_lat]}) and 503 (median {median(none_lat[2:]) * 1000:.0f} ms, "
            f"{[round(x * 1000) for x in none_lat]}) must come fast (< {fast * 1000:.0f} ms)")


def test_ledger_summary_redis_cache_down(t):
    """The cache Redis stopped: the summary is computed directly (200, MISS,
    right data), writes still succeed and are visible at once; after the
    restart the cache is used again."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, acct = small_ledger(t, c)
    get_summary(c)
    t.eq(xcache(get_summary(c)), "HIT", "cached before the outage")
    with t.outage("redis_cache", how="stop"):
        lat = []
        for i in range(10):
            r = get_summary(c)
            t.eq(xcache(r), "MISS", f"summary {i + 1} with the cache Redis down")
            t.eq(r.json()["transfers"], 3, f"summary {i + 1} with the cache Redis down: transfers")
            lat.append(r.elapsed)
        r = c.transfer(bank["id"], acct["id"], 1)
        t.eq(r.status, 201, f"a transfer with the cache Redis down ({r.text[:200]!r})")
        s = get_summary(c).json()
        t.eq(s["transfers"], 4, "the summary right after that transfer")
        t.h.note(f"summary latencies with the cache Redis down: {[round(x * 1000) for x in lat]} ms")
        t.check(median(lat[3:]) < t.scaled(0.100), f"median summary latency with the cache Redis down "
                                         f"{median(lat[3:]) * 1000:.0f} ms (breaker open: no per-request timeout)")

    def cached_again():
        get_summary(c)
        r2 = get_summary(c)
        return xcache(r2) == "HIT" and r2.json()["transfers"] == 4
    t.wait_until(cached_again, 10.0, 0.1, "summary served from the cache again after the restart")


def test_ledger_summary_early_refresh(t):
    """cache_ttl_s = 1: past the (jittered) soft expiry, of 16 concurrent
    readers exactly one recomputes (MISS) and the others get the entry
    (HIT); never STALE; the entry lives ten times longer in Redis."""
    t.bulwark(workers=4, cache_ttl_s=1)
    c = Client(t, new_tenant(t))
    small_ledger(t, c)
    rd = t.redis("redis_cache")
    entry, _g, _l = keys(c.tenant_id)
    t.eq(xcache(get_summary(c)), "MISS", "first read")
    for rnd in range(2):
        primed = get_summary(c)
        t.eq(xcache(primed), "HIT", f"round {rnd}: within the TTL")
        pttl = rd.call("PTTL", entry)
        t.check(1000 < pttl <= 11000, f"round {rnd}: entry PTTL {pttl} (soft ~1 s × 10)")
        time.sleep(1.25)  # the input: past the soft expiry (cache_ttl_s = 1, jittered)
        rs = together(16, lambda i: c.req("GET", "/v1/reports/summary"))
        t.check(all(not isinstance(r, Exception) and r.status == 200 for r in rs), f"round {rnd}: {rs[:3]}")
        counts = {}
        for r in rs:
            counts[xcache(r)] = counts.get(xcache(r), 0) + 1
        t.h.note(f"early refresh round {rnd}: {counts}")
        t.eq(counts.get("MISS", 0), 1, f"round {rnd}: one early refresh among 16 readers ({counts})")
        t.eq(counts.get("HIT", 0), 15, f"round {rnd}: the others are served the entry ({counts})")
        miss = next(r for r in rs if xcache(r) == "MISS")
        t.check(miss.json()["computed_at"] > primed.json()["computed_at"], "the refresh recomputed")
        t.eq(data(miss.body), data(primed.body), "same data (nothing was written)")
        after = get_summary(c)
        t.eq((xcache(after), after.body), ("HIT", miss.body), f"round {rnd}: the refreshed entry is served")


def test_ledger_summary_daemon_uses_its_own_functions(t):
    """A library named bulwark that is not this binary's (an older
    version's, left in Redis across an upgrade) is replaced when the
    daemon starts (FUNCTION LOAD REPLACE at worker start), not kept because its function names exist."""
    rd = t.redis("redis_cache")
    src = LUA.read_text()
    marker = "local function bw_cache_get(keys, args)\n"
    t.check(marker in src, "bw_cache_get not found in bulwark.lua")
    old = src.replace(marker, marker + "  if true then return {'hit', '0', '{\"foreign\":\"library\"}'} end\n")
    t.defer(lambda: drop_lib(rd))
    t.eq(rd.call("FUNCTION", "LOAD", "REPLACE", old), "bulwark", "loading an older library")
    t.bulwark(workers=2)
    c = Client(t, new_tenant(t))
    small_ledger(t, c, 1)
    r = get_summary(c)
    t.check(b"foreign" not in r.body,
            f"a daemon started after another library named bulwark was loaded runs that library: "
            f"{r.text[:200]!r} (X-Cache {xcache(r)})")
    t.eq(r.json()["transfers"], 1, "the summary")


def test_ledger_summary_keys_have_ttls(t):
    """Last: every sum:*, sumlease:* and sumgen:* key in the cache Redis has a TTL."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    small_ledger(t, c, 1)
    get_summary(c)
    rd = t.redis("redis_cache")
    found = {}
    for pat in ("sum:*", "sumlease:*", "sumgen:*"):
        ks = rd.scan(pat)
        found[pat] = len(ks)
        immortal = [k for k in ks if rd.call("PTTL", k) == -1]
        t.check(not immortal, f"{pat} keys without a TTL: {immortal[:5]}")
    t.check(found["sum:*"] >= 1 and found["sumgen:*"] >= 1, f"keys found: {found}")

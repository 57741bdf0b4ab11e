"""The Redis function library (workers/lua/bulwark.lua) driven directly in
the stack's Redis with fixed clocks (now_us), no daemon: GCRA burst and
refill to the microsecond, no-penalty denial across the key and tenant
policies, a TTL on everything written, and every auth outcome (miss,
unknown, revoked, bad_secret, ip_limited).  Every key carries a random
prefix, so parallel runs do not collide, and is deleted at the end."""

import hashlib
import secrets

from clients import RedisError
from harness import REPO

LUA = REPO / "workers" / "lua" / "bulwark.lua"
T0 = 1_700_000_000_000_000  # a fixed "Redis TIME" in µs
SEC = 1_000_000


class Lib:
    """The library loaded into Redis plus the names of one test's keys."""

    def __init__(self, t):
        self.t = t
        self.r = t.redis()
        src = LUA.read_text()
        t.eq(self.r.call("FUNCTION", "LOAD", "REPLACE", src), "bulwark", "FUNCTION LOAD REPLACE")
        self.tag = "lt" + secrets.token_hex(5)  # [a-z0-9]: like a real key id
        self.written = set()
        t.defer(self.cleanup)

    def cleanup(self):
        keys = set(self.written)
        for pat in (f"*{self.tag}*",):
            keys.update(self.r.scan(pat))
        if keys:
            self.r.call("DEL", *sorted(keys))

    # key names of one API key id
    def kid(self, n=0):
        return f"{self.tag}{n}"

    def rec(self, kid):
        return f"bwk:{{{kid}}}"

    def neg(self, kid):
        return f"bwneg:{{{kid}}}"

    def kbucket(self, kid):
        return f"rl:{{{kid}}}:k"

    def tenant(self, n=0):
        return f"{self.tag}-tenant{n}"

    def tbucket(self, tenant):
        return f"rl:t:{tenant}"

    def ipkey(self, n=0):
        return f"rl:ip:{self.tag}-ip{n}"

    def put_record(self, kid, secret, tenant, krate, kburst, trate, tburst, scopes="ledger:read"):
        """The record hash as the worker's fill writes it (interval = 1e6 / rate)."""
        h = self.rec(kid)
        self.written.update({h, self.kbucket(kid), self.tbucket(tenant), self.neg(kid)})
        self.r.call("HSET", h, "tenant", tenant, "sha", sha(secret), "scopes", scopes,
                    "kint", round(SEC / krate), "kburst", kburst,
                    "tint", round(SEC / trate), "tburst", tburst,
                    "krate", str(krate), "trate", str(trate))
        self.r.call("PEXPIRE", h, 60_000)

    def auth(self, kid, secret, now, ip=0, ip_interval=SEC, ip_burst=3):
        ipk = self.ipkey(ip)
        self.written.add(ipk)
        return self.r.call("FCALL", "bw_auth", 4, self.rec(kid), self.neg(kid), self.kbucket(kid), ipk,
                           sha(secret), ip_interval, ip_burst, now)

    def get_int(self, key):
        v = self.r.call("GET", key)
        return None if v is None else int(v)


def sha(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def _ok(t, reply, what):
    t.check(isinstance(reply, list) and reply and reply[0] == "ok", f"{what}: want ok, got {reply}")
    t.eq(len(reply), 13, f"{what}: ok reply length")
    return reply


def _limited(t, reply, what):
    t.check(isinstance(reply, list) and reply and reply[0] == "limited",
            f"{what}: want limited, got {reply}")
    t.eq(len(reply), 13, f"{what}: limited reply length")
    return reply


def _pttl_ok(t, lib, key, want_ms, what):
    """PX = whole ms until the bucket is full again, + 1 (the script's rule)."""
    pttl = lib.r.call("PTTL", key)
    t.check(pttl > 0, f"{what}: {key} has PTTL {pttl} (every key the script writes needs a TTL)")
    t.check(want_ms - 1000 <= pttl <= want_ms, f"{what}: {key} PTTL {pttl}, want <= {want_ms} (about)")


def test_lua_burst_then_exact_retry(t):
    """From a full bucket: exactly B allowed at one instant, remaining and
    reset counting down; B+1 denied with retry_after = one interval."""
    lib = Lib(t)
    kid, secret, ten = lib.kid(), "s3cret-" + lib.tag, lib.tenant()
    B, rate = 5, 2  # interval 0.5 s
    iv = SEC // rate
    lib.put_record(kid, secret, ten, rate, B, 1000, 1000)
    for i in range(1, B + 1):
        rep = _ok(t, lib.auth(kid, secret, T0), f"request {i} of the burst")
        t.eq(rep[1], ten, "tenant")
        t.eq(rep[2], "ledger:read", "scopes")
        t.eq(rep[3], str(rate), "krate as stored")
        t.eq(rep[4], B, "kburst")
        t.eq(rep[7], B - i, f"key remaining after {i}")
        t.eq(rep[8], i * iv, f"key reset_us after {i}")
        t.eq(rep[9], 0, "key retry_us when allowed")
        t.eq(rep[12], 0, "tenant retry_us when allowed")
    t.eq(lib.get_int(lib.kbucket(kid)), T0 + B * iv, "key TAT after the burst")
    rep = _limited(t, lib.auth(kid, secret, T0), f"request {B + 1} at the same instant")
    t.eq(rep[7], 0, "key remaining when limited")
    t.eq(rep[8], B * iv, "key reset_us when limited")
    t.eq(rep[9], iv, "key retry_us: exactly one interval")
    t.eq(rep[12], 0, "tenant retry_us (the tenant had room)")
    # half an interval later: still denied, retry is the other half
    rep = _limited(t, lib.auth(kid, secret, T0 + iv // 2), "half an interval later")
    t.eq(rep[9], iv - iv // 2, "retry_us half an interval later")
    # 1 µs before the refill: denied by 1 µs
    rep = _limited(t, lib.auth(kid, secret, T0 + iv - 1), "1 µs before the refill")
    t.eq(rep[9], 1, "retry_us 1 µs before the refill")
    # exactly at the refill: one more, then denied again
    rep = _ok(t, lib.auth(kid, secret, T0 + iv), "exactly one interval later")
    t.eq(rep[7], 0, "remaining after the refilled request")
    rep = _limited(t, lib.auth(kid, secret, T0 + iv), "second request after one interval")
    t.eq(rep[9], iv, "retry_us after the refilled one is used")
    # after a long idle time the bucket is full again, never more than B
    later = T0 + 100 * SEC
    allowed = sum(1 for _ in range(B + 3) if lib.auth(kid, secret, later)[0] == "ok")
    t.eq(allowed, B, "allowed after a long pause (capacity = burst exactly)")


def test_lua_refill_over_time(t):
    """allowed in [0, T] = B + floor(T * rate) for requests every 1 ms of
    fake time (the GCRA contract in integers)."""
    lib = Lib(t)
    kid, secret, ten = lib.kid(), "x" * 43, lib.tenant()
    B, rate = 4, 3  # interval 333333 µs
    iv = round(SEC / rate)
    lib.put_record(kid, secret, ten, rate, B, 1000, 5000)
    allowed, step = 0, 1000
    for k in range(0, 2 * SEC + 1, step):
        if lib.auth(kid, secret, T0 + k)[0] == "ok":
            allowed += 1
    t.eq(allowed, B + (2 * SEC) // iv, "allowed over 2 s of fake time at 1 request/ms")


def test_lua_denied_consumes_nothing(t):
    """A request denied by one policy leaves both TATs as they were, and the
    reply reports the other policy as untouched (remaining + 1)."""
    lib = Lib(t)
    # 1) the key is the tight policy, the tenant has room
    k1, s1, ten1 = lib.kid(1), "secret-one", lib.tenant(1)
    lib.put_record(k1, s1, ten1, 1, 2, 1, 100)
    for _ in range(2):
        _ok(t, lib.auth(k1, s1, T0), "key burst")
    ktat, ttat = lib.get_int(lib.kbucket(k1)), lib.get_int(lib.tbucket(ten1))
    t.eq(ttat, T0 + 2 * SEC, "tenant TAT after two allowed")
    for i in range(20):
        rep = _limited(t, lib.auth(k1, s1, T0 + i * 1000), f"hammer {i} on the exhausted key")
        t.eq(rep[10], 98, "tenant remaining reported while the key is limited")
        t.check(rep[9] > 0 and rep[12] == 0, f"only the key policy is violated: {rep}")
    t.eq(lib.get_int(lib.kbucket(k1)), ktat, "key TAT after 20 denied requests")
    t.eq(lib.get_int(lib.tbucket(ten1)), ttat, "tenant TAT after 20 denied requests (nothing consumed)")
    # after one interval exactly one is allowed: nothing was charged meanwhile
    _ok(t, lib.auth(k1, s1, T0 + SEC), "refill after one interval")
    _limited(t, lib.auth(k1, s1, T0 + SEC), "only one refilled")

    # 2) the tenant is the tight policy and is shared by two keys
    ka, kb, ten2 = lib.kid(2), lib.kid(3), lib.tenant(2)
    # (key intervals of 1 s: the PX of a fake-clock TAT runs in real time)
    lib.put_record(ka, "sa", ten2, 1, 1000, 1, 3)
    lib.put_record(kb, "sb", ten2, 1, 1000, 1, 3)
    _ok(t, lib.auth(ka, "sa", T0), "tenant 1/3")
    _ok(t, lib.auth(kb, "sb", T0), "tenant 2/3")
    _ok(t, lib.auth(ka, "sa", T0), "tenant 3/3")
    ta, tb, tt = (lib.get_int(lib.kbucket(ka)), lib.get_int(lib.kbucket(kb)),
                  lib.get_int(lib.tbucket(ten2)))
    for i in range(10):
        rep = _limited(t, lib.auth(kb if i % 2 else ka, "sb" if i % 2 else "sa", T0 + i),
                       f"tenant exhausted, request {i}")
        t.check(rep[12] > 0 and rep[9] == 0, f"only the tenant policy is violated: {rep}")
        t.eq(rep[11], 3 * SEC - i, "tenant reset_us when limited")
    t.eq((lib.get_int(lib.kbucket(ka)), lib.get_int(lib.kbucket(kb)), lib.get_int(lib.tbucket(ten2))),
         (ta, tb, tt), "key and tenant TATs after denied requests")
    rep = _limited(t, lib.auth(ka, "sa", T0), "tenant limited, key a")
    t.eq(rep[7], 998, "key a remaining reported as untouched (1000 - 2 used)")
    t.eq(rep[8], 2 * SEC, "key a reset_us reported as untouched (2 intervals of 1 s)")


def test_lua_ttls(t):
    """Every key a call writes expires when its bucket is full again."""
    lib = Lib(t)
    kid, secret, ten = lib.kid(), "ttl-secret", lib.tenant()
    lib.put_record(kid, secret, ten, 2, 10, 0.5, 10)  # key interval 0.5 s, tenant 2 s
    for _ in range(3):
        _ok(t, lib.auth(kid, secret, T0), "three requests")
    _pttl_ok(t, lib, lib.kbucket(kid), 3 * 500 + 1, "key bucket")
    _pttl_ok(t, lib, lib.tbucket(ten), 3 * 2000 + 1, "tenant bucket")
    # a failed auth charges the IP bucket: it gets a TTL too
    rep = lib.auth(kid, "wrong", T0, ip=1, ip_interval=100_000, ip_burst=10)
    t.eq(rep[0], "bad_secret", "wrong secret")
    _pttl_ok(t, lib, lib.ipkey(1), 100 + 1, "ip bucket")
    # negative cache and the ip bucket through bw_auth_fail
    unknown = lib.kid(9)
    lib.written.update({lib.neg(unknown), lib.ipkey(2)})
    rep = lib.r.call("FCALL", "bw_auth_fail", 2, lib.neg(unknown), lib.ipkey(2), 5000, 100_000, 10, T0)
    t.eq(rep, [1, 0], "bw_auth_fail with room")
    _pttl_ok(t, lib, lib.neg(unknown), 5000, "negative cache entry")
    _pttl_ok(t, lib, lib.ipkey(2), 101, "ip bucket via bw_auth_fail")
    # the filled record and a tombstone
    k2 = lib.kid(2)
    lib.written.update({lib.rec(k2), lib.neg(k2)})
    t.eq(lib.r.call("FCALL", "bw_key_fill", 2, lib.rec(k2), lib.neg(k2), 3_600_000,
                    "tenant", ten, "sha", sha("s"), "scopes", "", "kint", SEC, "kburst", 1,
                    "tint", SEC, "tburst", 1, "krate", "1", "trate", "1"), 1, "bw_key_fill")
    _pttl_ok(t, lib, lib.rec(k2), 3_600_000, "filled record")
    t.eq(lib.r.call("FCALL", "bw_key_revoke", 1, lib.rec(k2), 604_800_000), 1, "bw_key_revoke")
    _pttl_ok(t, lib, lib.rec(k2), 604_800_000, "tombstone")
    immortal = [k for k in lib.r.scan(f"*{lib.tag}*") if lib.r.call("PTTL", k) < 0]
    t.check(not immortal, f"keys without TTL: {immortal}")


def test_lua_miss_and_negative_cache(t):
    """No record: miss (nothing charged); negative-cached: unknown, charged
    to the IP bucket; a fill clears the negative entry; bw_key_created too."""
    lib = Lib(t)
    kid, ip = lib.kid(), 0
    t.eq(lib.auth(kid, "s", T0, ip=ip), ["miss"], "no record, no negative entry")
    t.eq(lib.r.call("EXISTS", lib.ipkey(ip)), 0, "a miss charges nothing to the IP bucket")
    t.eq(lib.r.call("EXISTS", lib.kbucket(kid)), 0, "a miss writes no key bucket")
    lib.r.call("FCALL", "bw_auth_fail", 2, lib.neg(kid), lib.ipkey(ip), 5000, SEC, 3, T0)
    rep = lib.auth(kid, "s", T0, ip=ip)
    t.eq(rep, ["unknown", 1, 0], "negative-cached id (IP bucket 2 of 3 used)")
    t.eq(lib.get_int(lib.ipkey(ip)), T0 + 2 * SEC, "IP bucket TAT after two failures")
    # bw_key_fill removes the negative entry and makes the key usable
    t.eq(lib.r.call("FCALL", "bw_key_fill", 2, lib.rec(kid), lib.neg(kid), 60_000,
                    "tenant", lib.tenant(), "sha", sha("s"), "scopes", "a", "kint", SEC, "kburst", 2,
                    "tint", SEC, "tburst", 2, "krate", "1", "trate", "1"), 1, "fill")
    t.eq(lib.r.call("EXISTS", lib.neg(kid)), 0, "fill deletes the negative entry")
    lib.written.add(lib.tbucket(lib.tenant()))
    _ok(t, lib.auth(kid, "s", T0, ip=ip), "filled key")
    # a second fill does not overwrite (returns 0)
    t.eq(lib.r.call("FCALL", "bw_key_fill", 2, lib.rec(kid), lib.neg(kid), 60_000,
                    "tenant", "other", "sha", sha("other")), 0, "fill over an existing record")
    t.eq(lib.r.call("HGET", lib.rec(kid), "tenant"), lib.tenant(), "record kept by the second fill")
    # bw_key_created clears a negative entry
    k2 = lib.kid(2)
    lib.written.add(lib.neg(k2))
    lib.r.call("SET", lib.neg(k2), "1", "PX", 5000)
    t.eq(lib.r.call("FCALL", "bw_key_created", 1, lib.neg(k2)), 1, "bw_key_created")
    t.eq(lib.r.call("EXISTS", lib.neg(k2)), 0, "negative entry after bw_key_created")


def test_lua_revoked_bad_secret_ip_limited(t):
    """Revoked and wrong secrets are charged to the IP bucket; once it is
    empty they report ip_ok = 0 with the exact retry; a miss from that
    address is ip_limited (no PostgreSQL lookup) without being charged;
    a tombstone wins over a later fill."""
    lib = Lib(t)
    kid, secret, ten, ip = lib.kid(), "good", lib.tenant(), 0
    lib.put_record(kid, secret, ten, 10, 10, 10, 10)
    kw = dict(ip=ip, ip_interval=SEC, ip_burst=3)
    t.eq(lib.auth(kid, "bad", T0, **kw), ["bad_secret", 1, 0], "bad secret 1")
    t.eq(lib.auth(kid, "bad", T0, **kw), ["bad_secret", 1, 0], "bad secret 2")
    t.eq(lib.r.call("EXISTS", lib.kbucket(kid)), 0, "a bad secret charges nothing to the key")
    t.eq(lib.r.call("FCALL", "bw_key_revoke", 1, lib.rec(kid), 60_000), 1, "revoke")
    t.eq(lib.r.call("HGETALL", lib.rec(kid)), ["revoked", "1"], "tombstone replaces the record")
    t.eq(lib.auth(kid, secret, T0, **kw), ["revoked", 1, 0], "revoked key, 3rd failure")
    t.eq(lib.auth(kid, secret, T0 + 250_000, **kw), ["revoked", 0, 750_000],
         "4th failure: IP bucket empty, retry = rest of one interval")
    t.eq(lib.get_int(lib.ipkey(ip)), T0 + 3 * SEC, "a denied failure does not push the IP TAT")
    # a tombstone is never overwritten by a fill (a worker that read
    # PostgreSQL before the revocation)
    t.eq(lib.r.call("FCALL", "bw_key_fill", 2, lib.rec(kid), lib.neg(kid), 60_000,
                    "tenant", ten, "sha", sha(secret), "scopes", "", "kint", SEC, "kburst", 5,
                    "tint", SEC, "tburst", 5, "krate", "1", "trate", "1"), 0, "fill over a tombstone")
    t.eq(lib.auth(kid, secret, T0 + SEC, **kw)[0], "revoked", "still revoked after the fill")
    # a miss from an address with no failures left: ip_limited, not charged
    unknown = lib.kid(7)
    ipt = lib.get_int(lib.ipkey(ip))
    t.eq(lib.auth(unknown, "x", T0 + SEC, **kw), ["ip_limited", SEC], "miss from an exhausted address")
    t.eq(lib.get_int(lib.ipkey(ip)), ipt, "ip_limited charges nothing")
    # a wrong secret from the exhausted address: bad_secret with ip_ok 0
    k2, ten2 = lib.kid(2), lib.tenant(2)
    lib.put_record(k2, "right", ten2, 10, 10, 10, 10)
    t.eq(lib.auth(k2, "wrong", T0 + SEC, **kw), ["bad_secret", 0, SEC], "bad secret, address exhausted")
    # the right secret from the same address still works: good keys are not blocked
    _ok(t, lib.auth(k2, "right", T0 + SEC, **kw), "valid key from an exhausted address")
    # another address is not affected
    t.eq(lib.auth(k2, "wrong", T0 + SEC, ip=1, ip_interval=SEC, ip_burst=3), ["bad_secret", 1, 0],
         "another address has its own bucket")


def test_lua_redis_time_clock(t):
    """now_us = '' uses Redis TIME: the TAT lands within a second of the
    server's clock, and a denied request reports retry < one interval."""
    lib = Lib(t)
    kid, secret, ten = lib.kid(), "clock", lib.tenant()
    lib.put_record(kid, secret, ten, 1, 1, 1000, 1000)
    sec, usec = lib.r.call("TIME")
    now = int(sec) * SEC + int(usec)
    _ok(t, lib.auth(kid, secret, ""), "first request on Redis TIME")
    tat = lib.get_int(lib.kbucket(kid))
    t.check(now + SEC <= tat <= now + 2 * SEC, f"TAT {tat} vs TIME {now}: clock not Redis TIME?")
    rep = _limited(t, lib.auth(kid, secret, ""), "second request")
    t.check(0 < rep[9] <= SEC, f"retry_us {rep[9]} on Redis TIME")
    # the library answers integers only (no float leaks into replies)
    t.check(all(isinstance(x, (int, str)) for x in rep), f"reply types {rep}")
    try:
        lib.r.call("FCALL", "bw_nope", 0)
    except RedisError:
        pass
    else:
        t.fail("FCALL of an unknown function did not fail")


"""API keys: the tenant / key commands (output, exit codes, only a SHA-256
of the secret stored), GET /v1/whoami, every 401 case with
WWW-Authenticate, scopes, the negative cache of unknown key ids (PostgreSQL
stopped), revocation, and the per-address bucket of failed
authentications (IPv4 through nginx, IPv6 /64 through FastCGI).

Requests that are meant to fail come from a fresh loopback address
(127.x.y.z) so the per-address bucket of one test never leaks into another."""

import base64
import hashlib
import json
import os
import random
import re
import secrets
import subprocess

from base import Failure
from clients import fcgi_request
from harness import check_401, check_429, check_503, fresh_ip, whoami

SETTINGS = dict(workers=4)
ALL_SCOPES = ["ledger:read", "ledger:write", "telemetry:read", "telemetry:write"]
KEY_RE = re.compile(r"bk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EX_USAGE, EX_CONFIG = 64, 78


def random_key_id():
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))


def random_api_key(key_id=None):
    return f"bk_{key_id or random_key_id()}_{secrets.token_urlsafe(32)}"


def psql(t, sql, *params):
    """One query as the schema owner; returns rows of '|'-separated text."""
    conninfo = os.environ.get("BULWARK_POSTGRES_OWNER") or os.environ.get("BULWARK_POSTGRES")
    if not conninfo:
        t.skip("BULWARK_POSTGRES is not set")
    pg_bin = os.environ.get("BW_PG_BIN", "/usr/lib/postgresql/15/bin")
    args = [os.path.join(pg_bin, "psql"), conninfo, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for i, p in enumerate(params):
        args += ["-v", f"p{i + 1}={p}"]
    r = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise Failure(f"psql failed: {r.stderr.strip()[:300]}")
    return [ln for ln in r.stdout.splitlines() if ln]


def key_row(t, key_id):
    """api_keys row as JSON (read as the owner, with bulwark.key_id set so a
    non-superuser owner under FORCE row-level security sees it too)."""
    rows = psql(t, "BEGIN; SELECT set_config('bulwark.key_id', :'p1', true) \\g /dev/null\n"
                   "SELECT row_to_json(k)::text || '|' || length(secret_sha256) || '|' "
                   "|| encode(secret_sha256, 'hex') FROM api_keys k WHERE key_id = :'p1';\nCOMMIT;",
                key_id)
    if len(rows) != 1:
        raise Failure(f"api_keys row of {key_id}: {rows}")
    js, n, hexsha = rows[0].rsplit("|", 2)
    return json.loads(js), int(n), hexsha


def tenant_row(t, tenant_id):
    rows = psql(t, "BEGIN; SELECT set_config('bulwark.tenant_id', :'p1', true) \\g /dev/null\n"
                   "SELECT row_to_json(x)::text FROM tenants x WHERE id = :'p1'::uuid;\nCOMMIT;",
                tenant_id)
    return json.loads(rows[0]) if rows else None


# ---------------------------------------------------------------------------
# the command line

def test_cli_tenant_create_output(t):
    name = f"it-acme-{os.urandom(3).hex()}"
    r = t.cli(["tenant", "create", name, "--rate", "0.5", "--burst", "7"])
    t.eq(r.returncode, 0, f"tenant create exit status ({r.stderr.strip()[:300]})")
    lines = r.stdout.splitlines()
    t.eq(len(lines), 1, f"tenant create prints one line: {r.stdout!r}")
    out = json.loads(lines[0])
    t.eq(sorted(out), ["api_key", "key_id", "tenant_id"], "tenant create JSON fields")
    t.check(UUID_RE.fullmatch(out["tenant_id"]), f"tenant_id {out['tenant_id']!r} is not a UUID")
    m = KEY_RE.fullmatch(out["api_key"])
    t.check(m, f"api_key {out['api_key']!r} is not bk_<12 [a-z0-9]>_<43 base64url>")
    t.eq(m.group(1), out["key_id"], "key_id inside api_key")
    secret = m.group(2)
    t.eq(len(base64.urlsafe_b64decode(secret + "=")), 32, "secret = 32 random bytes")

    row, n, hexsha = key_row(t, out["key_id"])
    t.eq(n, 32, "stored secret_sha256 length (bytes)")
    t.eq(hexsha, hashlib.sha256(secret.encode()).hexdigest(), "stored hash = SHA-256 of the secret")
    raw = base64.urlsafe_b64decode(secret + "=")
    dump = json.dumps(row)
    for needle in (secret, out["api_key"], raw.hex(), base64.b64encode(raw).decode().rstrip("=")):
        t.check(needle not in dump, f"the secret is stored in clear in api_keys: {dump[:300]}")
    t.eq(row["tenant_id"], out["tenant_id"], "api_keys.tenant_id")
    t.eq(sorted(row["scopes"]), ALL_SCOPES, "the first key has every scope")
    t.eq((float(row["rate"]), row["burst"]), (0.5, 7), "key policy = the tenant's --rate/--burst")
    t.eq(row["revoked_at"], None, "revoked_at of a new key")
    ten = tenant_row(t, out["tenant_id"])
    t.check(ten is not None, "tenant row missing")
    t.eq((ten["name"], float(ten["rate"]), ten["burst"]), (name, 0.5, 7), "tenant row")

    # defaults 100/s, burst 200; a second key of the tenant inherits the tenant's policy
    d = t.new_tenant()
    row, _, _ = key_row(t, d.key_id)
    t.eq((float(row["rate"]), row["burst"]), (100.0, 200), "default policy")
    k2 = t.new_key(out["tenant_id"])
    t.eq(k2.tenant_id, out["tenant_id"], "key create: tenant_id")
    t.check(KEY_RE.fullmatch(k2.api_key) and k2.api_key.startswith(f"bk_{k2.key_id}_"),
            f"key create: api_key {k2.api_key!r}")
    t.check(len({k2.key_id, d.key_id, out["key_id"]}) == 3 and k2.secret != secret,
            "two keys share an id or a secret")
    row, _, hexsha = key_row(t, k2.key_id)
    t.eq((float(row["rate"]), row["burst"]), (0.5, 7), "key create without --rate: the tenant's policy")
    t.eq(hexsha, hashlib.sha256(k2.secret.encode()).hexdigest(), "key create: stored hash")
    k3 = t.new_key(out["tenant_id"], rate="2.25", burst=3, scopes="ledger:read,telemetry:write")
    row, _, _ = key_row(t, k3.key_id)
    t.eq((float(row["rate"]), row["burst"]), (2.25, 3), "key create --rate 2.25 --burst 3")
    t.eq(sorted(row["scopes"]), ["ledger:read", "telemetry:write"], "key create --scopes")


def test_cli_bad_arguments(t):
    tenant = t.new_tenant()
    name = f"it-never-{os.urandom(3).hex()}"
    cases = [
        ["tenant", "create", name, "--rate", "0"],
        ["tenant", "create", name, "--rate", "abc"],
        ["tenant", "create", name, "--rate", "-1"],
        ["tenant", "create", name, "--rate", "1.2345"],
        ["tenant", "create", name, "--burst", "0"],
        ["tenant", "create", name, "--burst", "1.5"],
        ["tenant", "create", name, "--burst", "x"],
        ["tenant", "create", name, "--bogus"],
        ["tenant", "create"],
        ["tenant", "create", name, "extra"],
        ["tenant", "delete", name],
        ["key", "create"],
        ["key", "create", "--tenant", tenant.tenant_id, "--scopes", "ledger:admin"],
        ["key", "create", "--tenant", tenant.tenant_id, "--scopes", "ledger:read,,nope"],
        ["key", "create", "--tenant", tenant.tenant_id, "--rate", "0"],
        ["key", "create", "--tenant", tenant.tenant_id, "--burst", "-3"],
        ["key", "revoke"],
        ["key", "revoke", "NOT-AN-ID!"],
        ["key", "revoke", "a", "b"],
        ["key", "rotate", tenant.key_id],
    ]
    for args in cases:
        r = t.cli(args)
        t.eq(r.returncode, EX_USAGE, f"bulwark {' '.join(args)}: exit status (stderr {r.stderr.strip()[:200]!r})")
        t.eq(r.stdout, "", f"bulwark {' '.join(args)}: stdout")
        t.check(r.stderr.strip(), f"bulwark {' '.join(args)}: no message on stderr")
    rows = psql(t, "SELECT count(*) FROM tenants WHERE name = :'p1';", name)
    t.eq(rows, ["0"], "tenants created by rejected commands")
    # bad configuration: 78 with a line naming the key
    r = t.cli(["tenant", "create", name], env_extra={"BULWARK_RATELIMIT_ON_REDIS_ERROR": "sometimes"})
    t.eq(r.returncode, EX_CONFIG, f"bad config: exit status ({r.stderr.strip()[:200]!r})")
    t.check("ratelimit_on_redis_error" in r.stderr, f"bad config: message {r.stderr.strip()[:200]!r}")


def test_cli_revoke(t):
    k = t.new_tenant()
    unknown = random_key_id()
    r = t.cli(["key", "revoke", unknown])
    t.eq(r.returncode, 1, f"revoke of an unknown id: exit status ({r.stderr.strip()[:200]!r})")
    t.eq(r.stdout, "", "revoke of an unknown id: stdout")
    t.check(unknown in r.stderr, f"revoke of an unknown id: message {r.stderr.strip()!r} should name it")
    r = t.cli(["key", "create", "--tenant", "00000000-0000-4000-8000-000000000000"])
    t.eq(r.returncode, 1, f"key create for an unknown tenant ({r.stderr.strip()[:200]!r})")
    t.eq(r.stdout, "", "key create for an unknown tenant: stdout")
    r = t.cli(["key", "create", "--tenant", "not-a-uuid"])
    t.eq(r.returncode, 1, f"key create --tenant not-a-uuid ({r.stderr.strip()[:200]!r})")

    r = t.cli(["key", "revoke", k.key_id])
    t.eq(r.returncode, 0, f"revoke: exit status ({r.stderr.strip()[:200]!r})")
    out = json.loads(r.stdout)
    t.eq(sorted(out), ["key_id", "revoked_at"], "revoke JSON fields")
    t.eq(out["key_id"], k.key_id, "revoke: key_id")
    t.check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", out["revoked_at"]),
            f"revoked_at {out['revoked_at']!r} is not RFC 3339 UTC")
    row, _, _ = key_row(t, k.key_id)
    t.check(row["revoked_at"] is not None, "revoked_at not set in api_keys")
    r2 = t.cli(["key", "revoke", k.key_id])
    t.eq(r2.returncode, 0, "second revoke of the same key")
    t.eq(json.loads(r2.stdout)["revoked_at"], out["revoked_at"], "a second revoke keeps the first time")
    rd = t.redis()
    t.eq(rd.call("HGET", f"bwk:{{{k.key_id}}}", "revoked"), "1", "revoke writes a tombstone to Redis")
    t.check(rd.call("PTTL", f"bwk:{{{k.key_id}}}") > 0, "the tombstone has a TTL")


# ---------------------------------------------------------------------------
# the daemon

def test_whoami(t):
    b = t.shared_bulwark()
    ten = t.new_tenant(rate="0.5", burst=3)
    k = t.new_key(ten.tenant_id, rate=2, burst=5)
    r = whoami(t, k)
    rid = r.header("X-Request-Id")
    t.eq(r.status, 200, f"whoami ({r.text[:200]!r})")
    t.check(r.header("Content-Type", "").startswith("application/json"), f"Content-Type {r.header('Content-Type')!r}")
    body = r.json()
    t.eq(body, {"tenant_id": ten.tenant_id, "key_id": k.key_id, "scopes": ALL_SCOPES,
                "policies": [{"name": "key", "rate": 2, "burst": 5},
                             {"name": "tenant", "rate": 0.5, "burst": 3}]}, "whoami body")
    t.check(isinstance(body["policies"][1]["rate"], float), "rate 0.5 must be a JSON number")
    t.check(r.header("RateLimit-Policy") and r.header("RateLimit"), "whoami without rate-limit headers")
    # the auth scheme is case-insensitive (RFC 9110 11.1)
    r = t.get("/v1/whoami", headers={"Authorization": "bearer " + ten.api_key})
    t.eq(r.status, 200, f"'bearer' in lower case ({r.text[:120]!r})")
    t.eq(r.json()["key_id"], ten.key_id, "whoami of the tenant's first key")
    # the secret never reaches a log line nor the cached record
    rec = t.redis().call("HGETALL", f"bwk:{{{k.key_id}}}")
    t.check(rec and k.secret not in rec, f"cached record {rec}")
    fields = dict(zip(rec[::2], rec[1::2]))
    t.eq(fields.get("sha"), hashlib.sha256(k.secret.encode()).hexdigest(), "cached record: sha")
    b.wait_log(rid)  # the request that carried k's secret has logged all it will
    for p in b.log_paths():
        with open(p, errors="replace") as f:
            t.check(k.secret not in f.read(), f"the secret appears in {p}")


def test_scopes(t):
    t.shared_bulwark()
    ten = t.new_tenant()
    k = t.new_key(ten.tenant_id, scopes="ledger:read")
    r = whoami(t, k)
    t.eq(r.status, 200, f"whoami with scope ledger:read only ({r.text[:200]!r})")
    t.eq(r.json()["scopes"], ["ledger:read"], "scopes of a ledger:read key")
    k2 = t.new_key(ten.tenant_id, scopes="telemetry:write,ledger:read")
    r = whoami(t, k2)
    t.eq(r.status, 200, "whoami with two scopes")
    t.eq(sorted(r.json()["scopes"]), ["ledger:read", "telemetry:write"], "scopes of a two-scope key")


def test_unauthorized_cases(t):
    t.shared_bulwark()
    k = t.new_tenant()
    victim = t.new_key(k.tenant_id)
    t.eq(whoami(t, victim).status, 200, "victim key before revocation")
    t.eq(t.cli(["key", "revoke", victim.key_id]).returncode, 0, "revoke")
    ip = fresh_ip()
    cases = [
        ("no Authorization header", {}),
        ("Basic scheme", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}),
        ("Bearer without a token", {"Authorization": "Bearer"}),
        ("Bearer and spaces", {"Authorization": "Bearer    "}),
        ("not a bk_ key", {"Authorization": "Bearer " + secrets.token_urlsafe(40)}),
        ("bk_ without a secret", {"Authorization": f"Bearer bk_{k.key_id}_"}),
        ("bk_ with a short id", {"Authorization": "Bearer bk_ab_" + k.secret}),
        ("bk_ with an upper-case id", {"Authorization": f"Bearer bk_{k.key_id.upper()}_{k.secret}"}),
        ("a token with a NUL-ish byte", {"Authorization": f"Bearer bk_{k.key_id}_{k.secret}\x7f"}),
        ("unknown key id", {"Authorization": "Bearer " + random_api_key()}),
        ("wrong secret", {"Authorization": "Bearer " + random_api_key(k.key_id)}),
        ("secret one character short", {"Authorization": "Bearer " + k.api_key[:-1]}),
        ("revoked key", victim.auth()),
    ]
    for what, hdrs in cases:
        r = t.get("/v1/whoami", headers=hdrs, source=ip)
        check_401(t, r, what)
    # the right key still works after all of that from the same address
    r = whoami(t, k, source=ip)
    t.eq(r.status, 200, f"valid key after {len(cases)} failures from its address")


def test_revoked_key_stays_revoked_without_tombstone(t):
    """PostgreSQL is the truth: a revoked key whose Redis tombstone is gone
    (Redis lost it, the revoke could not reach Redis, or the tombstone
    expired) must not be cached as valid again from PostgreSQL."""
    t.shared_bulwark()
    k = t.new_tenant()
    t.eq(whoami(t, k).status, 200, "key before revocation")
    t.eq(t.cli(["key", "revoke", k.key_id]).returncode, 0, "revoke")
    ip = fresh_ip()
    check_401(t, whoami(t, k, source=ip), "revoked key")
    t.redis().call("DEL", f"bwk:{{{k.key_id}}}")  # the tombstone is lost
    r = whoami(t, k, source=ip)
    check_401(t, r, "revoked key after its tombstone was lost (PostgreSQL has revoked_at)")
    check_401(t, whoami(t, k, source=ip), "revoked key, next request")


def test_negative_cache_with_postgres_down(t):
    """An unknown key id is looked up once; within negative_cache_ttl_ms it
    is answered from Redis: with PostgreSQL stopped it is still 401, while a
    never-seen id and an uncached valid key get 503 with Retry-After."""
    t.shared_bulwark()
    ip = fresh_ip()
    ten = t.new_tenant()
    uncached = t.new_key(ten.tenant_id)
    unknown = random_api_key()
    unknown_id = unknown.split("_")[1]
    r = t.get("/v1/whoami", headers={"Authorization": "Bearer " + unknown}, source=ip)
    check_401(t, r, "unknown key id (looked up in PostgreSQL)")
    rd = t.redis()
    pttl = rd.call("PTTL", f"bwneg:{{{unknown_id}}}")
    t.check(0 < pttl <= 5000, f"negative cache entry bwneg:{{{unknown_id}}} PTTL {pttl}, want (0, 5000]")
    with t.outage("pg", how="stop"):
        for i in range(4):  # several workers: the entry is in Redis, not in one process
            r = t.get("/v1/whoami", headers={"Authorization": "Bearer " + unknown}, source=ip)
            check_401(t, r, f"negative-cached id with PostgreSQL down (request {i + 1})")
        never = random_api_key()
        r = t.get("/v1/whoami", headers={"Authorization": "Bearer " + never}, source=ip)
        check_503(t, r, "never-seen id with PostgreSQL down")
        r = whoami(t, uncached, source=ip)
        check_503(t, r, "valid key not cached yet, PostgreSQL down")
    t.wait_ready("postgres")  # every worker's PostgreSQL breaker closed again
    r = whoami(t, uncached, source=ip)
    t.eq(r.status, 200, f"the uncached key once PostgreSQL is back ({r.text[:200]!r})")


FAIL_SETTINGS = dict(auth_fail_burst=5, auth_fail_rate=1)  # over SETTINGS


def test_failed_auth_per_address(t):
    """auth_fail_burst failures from one address, then 429 auth_failures;
    a valid key from that address still works; other addresses are not
    affected; IPv6 addresses share a bucket per /64."""
    b = t.shared_bulwark(**FAIL_SETTINGS)
    good = t.new_tenant()
    ip, other = fresh_ip(), fresh_ip()
    t.eq(whoami(t, good, source=other).status, 200, "the valid key (now cached in Redis)")
    bad = [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer " + random_api_key()},
        {"Authorization": "Bearer " + random_api_key(good.key_id)},
        {"Authorization": "Bearer " + random_api_key()},
    ]
    for i, h in enumerate(bad):
        check_401(t, t.get("/v1/whoami", headers=h, source=ip), f"failure {i + 1} of 5")
    for h in bad[:3]:
        r = t.get("/v1/whoami", headers=h, source=ip)
        p, _ra = check_429(t, r, "auth_failures", "6th failure from the address")
        t.check(p["retry_after_ms"] <= 1000, f"retry_after_ms {p['retry_after_ms']!r} (one failure per second refills)")
    r = whoami(t, good, source=ip)
    t.eq(r.status, 200, f"a valid key from the exhausted address ({r.text[:200]!r})")
    check_401(t, t.get("/v1/whoami", source=other), "another address")

    # IPv6 through FastCGI (nginx here listens on 127.0.0.1 only)
    a, c = random.randint(1, 0xfffe), random.randint(1, 0xfffe)
    same64 = [f"2001:db8:{a:x}:{c:x}::1", f"2001:db8:{a:x}:{c:x}:ffff:1:2:3"]
    next64 = f"2001:db8:{a:x}:{c + 1:x}::1"

    def fcgi(addr, hdrs=None):
        return fcgi_request(b.listen, "GET", "/v1/whoami", headers=hdrs or {},
                            params_override={"REMOTE_ADDR": addr})
    for i in range(5):
        r = fcgi(same64[i % 2])
        t.eq(r.status, 401, f"IPv6 failure {i + 1} of 5 ({r.text[:120]!r})")
    r = fcgi(same64[0])
    t.eq(r.status, 429, f"6th failure from the same /64 ({r.text[:120]!r})")
    t.eq(json.loads(r.body).get("policy"), "auth_failures", "IPv6 violated policy")
    r = fcgi(next64)
    t.eq(r.status, 401, f"the next /64 has its own bucket ({r.text[:120]!r})")
    r = fcgi(same64[1], good.auth())
    t.eq(r.status, 200, f"a valid key from the exhausted /64 ({r.text[:120]!r})")
    keys = t.redis().scan(f"rl:ip:2001:db8:{a:x}:{c:x}::*")
    t.eq(keys, [f"rl:ip:2001:db8:{a:x}:{c:x}::/64"], "the /64 bucket's Redis key")


def test_failed_auth_ipv4_mapped_addresses_are_separate(t):
    """Two IPv4 clients seen as IPv4-mapped IPv6 addresses (::ffff:a.b.c.d,
    e.g. from a dual-stack listener) are two clients: the /64 rule is for
    native IPv6 only, else one address exhausts every IPv4 client's bucket."""
    b = t.shared_bulwark(**FAIL_SETTINGS)
    n = random.randint(1, 250)
    one, two = f"::ffff:10.{n}.0.1", f"::ffff:10.{n}.0.2"
    rd = t.redis()

    def cleanup():  # this test exhausts buckets other runs could share
        keys = rd.scan(f"rl:ip:*10.{n}.0.[12]*") + rd.scan("rl:ip:::/64")
        if keys:
            rd.call("DEL", *keys)
    t.defer(cleanup)

    def fcgi(addr):
        return fcgi_request(b.listen, "GET", "/v1/whoami", params_override={"REMOTE_ADDR": addr})
    for i in range(5):
        t.eq(fcgi(one).status, 401, f"failure {i + 1} of 5 from {one}")
    t.eq(fcgi(one).status, 429, f"6th failure from {one}")
    r = fcgi(two)
    t.eq(r.status, 401, f"first failure from another IPv4 client {two} ({r.text[:160]!r})")

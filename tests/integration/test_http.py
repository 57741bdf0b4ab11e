"""Routes through nginx: healthz, problem+json errors, request ids, the
access log, /status and /metrics shapes."""

import re
import time

from clients import fcgi_request, parse_metrics, unix_http
from harness import check_problem
from procs import children_of

BODY_LIMIT = 64 * 1024
SETTINGS = dict(body_limit="64k", workers=2)

PROBLEM_FIELDS = ("type", "title", "status", "detail", "code", "request_id")


def _request_id(t, r, what):
    rid = r.header("X-Request-Id")
    t.check(rid, f"{what}: no X-Request-Id header ({r.headers})")
    t.check(re.fullmatch(r"[0-9a-f]{32}", rid), f"{what}: X-Request-Id is not nginx's $request_id: {rid!r}")
    return rid


def _problem(t, r, status, code, what):
    """check_problem, and every member of the contract, with the request id."""
    p = check_problem(t, r, status, code, what)
    missing = [f for f in PROBLEM_FIELDS if f not in p]
    t.check(not missing, f"{what}: problem lacks {missing}: {p}")
    t.check(isinstance(p["title"], str) and p["title"], f"{what}: empty title")
    t.check(isinstance(p["detail"], str), f"{what}: detail is not a string")
    t.check(isinstance(p["type"], str) and p["type"], f"{what}: empty type")
    rid = _request_id(t, r, what)
    t.eq(p["request_id"], rid, f"{what}: problem request_id vs X-Request-Id")
    return p


def test_healthz(t):
    b = t.shared_bulwark()
    r = t.get("/healthz")
    t.eq(r.status, 200, "GET /healthz status")
    t.eq(r.json(), {"status": "ok"}, "GET /healthz body")
    t.check(r.header("Content-Type", "").startswith("application/json"),
            f"healthz Content-Type {r.header('Content-Type')!r}")
    rid = _request_id(t, r, "healthz")
    r2 = t.get("/healthz")
    t.check(_request_id(t, r2, "healthz") != rid, "two requests got the same X-Request-Id")
    line = b.wait_log(rid)
    for f in ("time", "level", "type", "request_id", "method", "route", "status", "duration_us", "pid"):
        t.check(f in line, f"access line lacks {f!r}: {line}")
    t.eq(line["level"], "info", "access line level")
    t.eq(line["method"], "GET", "access line method")
    t.eq(line["status"], 200, "access line status")
    t.check("/healthz" in str(line["route"]), f"access line route {line['route']!r}")
    t.check(isinstance(line["duration_us"], int) and 0 <= line["duration_us"] < 10_000_000,
            f"access line duration_us {line['duration_us']!r}")
    pids = b.worker_pids()
    t.check(line["pid"] in pids, f"access line pid {line['pid']} is not a worker ({pids})")
    t.check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", str(line["time"])),
            f"access line time is not RFC 3339: {line['time']!r}")
    # every line of the log is one JSON object with time, level, pid
    for x in b.log_lines():
        if x.get("type") != "access":
            for f in ("time", "level", "pid", "msg"):
                t.check(f in x, f"log line lacks {f!r}: {x}")


def test_not_found(t):
    b = t.shared_bulwark()
    r = t.get("/no/such/route")
    p = _problem(t, r, 404, "not_found", "GET /no/such/route")
    line = b.wait_log(p["request_id"])
    t.eq(line["status"], 404, "access line status of a 404")
    # /healthz is an exact route, not a prefix
    r = t.get("/healthzz")
    _problem(t, r, 404, "not_found", "GET /healthzz")


def test_method_not_allowed(t):
    t.shared_bulwark()
    for m in ("POST", "DELETE", "PUT"):
        r = t.http(m, "/healthz", body="{}" if m != "DELETE" else None,
                   headers={"Content-Type": "application/json"})
        _problem(t, r, 405, "method_not_allowed", f"{m} /healthz")
        allow = r.header("Allow")
        t.check(allow is not None, f"{m} /healthz: 405 without Allow header")
        methods = {x.strip() for x in allow.split(",")}
        t.check("GET" in methods, f"{m} /healthz: Allow {allow!r} should list GET")
        t.check(m not in methods, f"{m} /healthz: Allow {allow!r} lists the refused method")
    r = t.http("GET", "/test/echo")
    _problem(t, r, 405, "method_not_allowed", "GET /test/echo")
    t.check("POST" in (r.header("Allow") or ""), f"GET /test/echo: Allow {r.header('Allow')!r}")


def _json_of_size(n):
    """A JSON string literal of exactly n bytes."""
    return '"' + "a" * (n - 2) + '"'


def test_echo_and_payload_too_large(t):
    t.shared_bulwark()
    body = '{"hello": "world", "n": [1, 2, 3]}'
    r = t.http("POST", "/test/echo", body=body, headers={"Content-Type": "application/json"})
    t.eq(r.status, 200, f"POST /test/echo ({r.text[:200]!r})")
    t.eq(r.json().get("bytes"), len(body), "echo bytes")
    r = t.http("POST", "/test/echo", body=body,
               headers={"Content-Type": "application/json; charset=utf-8"})
    t.eq(r.status, 200, f"POST /test/echo with charset parameter ({r.text[:200]!r})")
    # exactly the limit is fine, one byte more is 413 (body_limit = 64k)
    r = t.http("POST", "/test/echo", body=_json_of_size(BODY_LIMIT),
               headers={"Content-Type": "application/json"})
    t.eq(r.status, 200, f"body of exactly body_limit ({r.text[:200]!r})")
    t.eq(r.json().get("bytes"), BODY_LIMIT, "echo bytes at the limit")
    r = t.http("POST", "/test/echo", body=_json_of_size(BODY_LIMIT + 1),
               headers={"Content-Type": "application/json"})
    _problem(t, r, 413, "payload_too_large", "body of body_limit + 1")
    r = t.http("POST", "/test/echo", body=_json_of_size(4 * BODY_LIMIT),
               headers={"Content-Type": "application/json"})
    _problem(t, r, 413, "payload_too_large", "body of 4 x body_limit")
    # the worker that refused a body still serves the next request right
    for _ in range(4):
        r = t.http("POST", "/test/echo", body="[1]", headers={"Content-Type": "application/json"})
        t.eq(r.status, 200, f"echo after 413 ({r.text[:200]!r})")
        t.eq(r.json().get("bytes"), 3, "echo bytes after 413")


def test_unsupported_media_type(t):
    t.shared_bulwark()
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        r = t.http("POST", "/test/echo", body='{"a": 1}', headers={"Content-Type": ct})
        _problem(t, r, 415, "unsupported_media_type", f"POST /test/echo Content-Type {ct}")
    r = t.http("POST", "/test/echo", body='{"a": 1}')  # no Content-Type at all
    t.check(r.status in (400, 415), f"POST /test/echo without Content-Type: {r.status}")


def test_bad_request(t):
    b = t.shared_bulwark()
    # a JSON route without a body
    r = t.http("POST", "/test/echo", body=b"", headers={"Content-Type": "application/json"})
    p = _problem(t, r, 400, None, "POST /test/echo with an empty body")
    t.check(re.fullmatch(r"[a-z][a-z0-9_]*", p["code"]), f"400 code is not snake_case: {p['code']!r}")
    # a bad query parameter
    for q in ("ms=abc", "ms=-1", "ms=", "", "ms=12x"):
        r = t.get(f"/test/sleep?{q}")
        p = _problem(t, r, 400, None, f"GET /test/sleep?{q}")
        t.check(re.fullmatch(r"[a-z][a-z0-9_]*", p["code"]), f"400 code is not snake_case: {p['code']!r}")
    # a body shorter than its CONTENT_LENGTH (FastCGI straight to the pool)
    r = fcgi_request(b.listen, "POST", "/test/echo", body=b'{"a": 1}',
                     headers={"Content-Type": "application/json"}, params_override={"CONTENT_LENGTH": "100"})
    _problem(t, r, 400, None, "body shorter than CONTENT_LENGTH")
    # the pool is fine afterwards
    r = t.http("POST", "/test/echo", body="[1,2]", headers={"Content-Type": "application/json"})
    t.eq(r.status, 200, "echo after bad requests")


def test_status_through_nginx(t):
    b = t.shared_bulwark()
    t0 = time.monotonic()
    r = t.get("/status")
    t.eq(r.status, 200, f"GET /status through nginx ({r.text[:200]!r})")
    t.check(r.header("Content-Type", "").startswith("application/json"),
            f"/status Content-Type {r.header('Content-Type')!r}")
    st = r.json()
    for f in ("pid", "generation", "state", "ready", "crash_breaker", "workers_configured", "workers",
              "listen_queue", "requests_total", "respawns", "processes"):
        t.check(f in st, f"/status lacks {f!r}: {sorted(st)}")
    t.eq(st["pid"], b.pid, "/status pid (the master)")
    t.eq(st["state"], "running", "/status state")
    t.eq(st["ready"], True, "/status ready")
    t.eq(st["crash_breaker"], False, "/status crash_breaker")
    t.eq(st["workers_configured"], SETTINGS["workers"], "/status workers_configured")
    w = st["workers"]
    for f in ("total", "idle", "busy", "starting"):
        t.check(isinstance(w.get(f), int), f"/status workers.{f} is not an int: {w}")
    t.eq(w["total"], SETTINGS["workers"], "/status workers.total")
    t.eq(w["idle"] + w["busy"] + w["starting"], w["total"], "idle + busy + starting = total")
    t.check(isinstance(st["generation"], int) and st["generation"] >= 1,
            f"/status generation {st['generation']!r}")
    lq = st["listen_queue"]
    t.check(isinstance(lq.get("depth"), int) and lq["depth"] >= 0, f"listen_queue.depth {lq}")
    t.check(isinstance(lq.get("backlog"), int) and 0 < lq["backlog"] <= 511, f"listen_queue.backlog {lq}")
    before = st["requests_total"]
    procs = [p for p in st["processes"] if p.get("pid")]
    t.eq(len(procs), SETTINGS["workers"], f"/status processes with a pid: {st['processes']}")
    for p in procs:
        for f in ("slot", "pid", "generation", "state", "route", "phase", "elapsed_ms", "requests"):
            t.check(f in p, f"process lacks {f!r}: {p}")
        t.eq(p["generation"], st["generation"], "process generation")
        t.check(p["pid"] != b.pid, "a worker has the master's pid")
    t.eq(sorted(p["slot"] for p in procs), list(range(SETTINGS["workers"])), "process slots")
    t.eq(sorted(p["pid"] for p in procs), sorted(b.worker_pids()), "status via nginx vs status socket")
    t.eq(sorted(p["pid"] for p in procs), children_of(b.pid), "/status pids vs the master's children")
    for _ in range(5):
        t.eq(t.get("/healthz").status, 200, "healthz")
    st2 = t.get("/status").json()
    t.check(st2["requests_total"] >= before + 5,
            f"requests_total did not count 5 requests: {before} -> {st2['requests_total']}")
    t.check(time.monotonic() - t0 < t.scaled(5), "status took too long")


def test_metrics_through_nginx(t):
    b = t.shared_bulwark()
    for _ in range(3):
        t.get("/healthz")
    t.get("/no/such/route")
    r = t.get("/metrics")
    t.eq(r.status, 200, f"GET /metrics through nginx ({r.text[:200]!r})")
    t.check(r.header("Content-Type", "").startswith("text/plain"),
            f"/metrics Content-Type {r.header('Content-Type')!r}")
    samples, types = parse_metrics(r.text)
    names = {n for n, _l, _v in samples}
    for n in ("bulwark_requests_total", "bulwark_workers", "bulwark_listen_queue_depth",
              "bulwark_request_duration_seconds_bucket", "bulwark_request_duration_seconds_sum",
              "bulwark_request_duration_seconds_count"):
        t.check(n in names, f"/metrics lacks {n}")
    t.eq(types.get("bulwark_requests_total"), "counter", "TYPE of bulwark_requests_total")
    t.eq(types.get("bulwark_request_duration_seconds"), "histogram", "TYPE of the duration histogram")
    ok2xx = [(l, v) for n, l, v in samples
             if n == "bulwark_requests_total" and l.get("class") == "2xx" and "healthz" in l.get("route", "")]
    t.check(ok2xx and ok2xx[0][1] >= 3, f"bulwark_requests_total{{route~healthz,class=2xx}} < 3: {ok2xx}")
    nf = [v for n, l, v in samples if n == "bulwark_requests_total" and l.get("class") == "4xx"]
    t.check(nf and sum(nf) >= 1, "no 4xx counted for the 404")
    # histogram: buckets cumulative, +Inf == count
    buckets = {}
    for n, l, v in samples:
        if n == "bulwark_request_duration_seconds_bucket":
            key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
            buckets.setdefault(key, []).append((float("inf") if l["le"] == "+Inf" else float(l["le"]), v))
    t.check(buckets, "no histogram buckets")
    counts = {tuple(sorted(l.items())): v for n, l, v in samples if n == "bulwark_request_duration_seconds_count"}
    for key, bs in buckets.items():
        bs.sort()
        vals = [v for _le, v in bs]
        t.check(vals == sorted(vals), f"histogram buckets not cumulative: {bs}")
        t.check(bs[-1][0] == float("inf"), f"histogram without +Inf bucket: {bs}")
        if key in counts:
            t.eq(bs[-1][1], counts[key], "+Inf bucket vs _count")
    states = {l.get("state"): v for n, l, v in samples if n == "bulwark_workers"}
    t.check(sum(states.values()) == SETTINGS["workers"], f"bulwark_workers by state {states}")
    exits = {l.get("reason") for n, l, v in samples if n == "bulwark_worker_exits_total"}
    # contract: killed, recycled, crashed (+ the reason of a normal stop/retirement)
    t.check({"killed", "recycled", "crashed"} <= exits,
            f"bulwark_worker_exits_total should export killed, recycled, crashed: {exits}")
    t.check(exits <= {"respawn", "stopped", "killed", "recycled", "crashed"},
            f"bulwark_worker_exits_total has unknown reasons: {exits}")
    deps = {l.get("dependency") for n, l, v in samples if n == "bulwark_dependency_breaker_open"}
    t.check({"postgres", "redis", "mongo"} <= deps, f"bulwark_dependency_breaker_open dependencies {deps}")
    # the status socket serves the same metrics
    direct = {n for n, _l, _v in b.metrics()}
    t.check(names == direct, f"metrics via nginx and the socket differ: {names ^ direct}")


def test_status_socket_unknown_path(t):
    b = t.shared_bulwark()
    r = unix_http(b.status_listen, "GET", "/nope")
    t.eq(r.status, 404, "status socket GET /nope")
    r = unix_http(b.status_listen, "POST", "/status")
    t.eq(r.status, 404, "status socket POST /status (it serves GET /status and GET /metrics only)")
    # garbage on the status socket does not hurt the master
    import socket as so
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.settimeout(3)
    s.connect(b.status_listen)
    s.sendall(b"\x00\xff garbage \r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)  # a client that connects and says nothing
    s.connect(b.status_listen)
    t0 = time.monotonic()
    st = b.status()
    # a blocked master would answer when b.status() gives up (3 s)
    t.check(time.monotonic() - t0 < t.scaled(1.0, cap=3.0), "status blocked by a silent client")
    s.close()
    t.eq(st["state"], "running", "master state after garbage")

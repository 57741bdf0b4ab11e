"""Telemetry against the real stack (jongodb, the cache Redis, nginx): the
201 shape and a reading read back exactly as sent; every validation rule
with its pointer and index, and nothing stored after a refused batch;
dedup inside a batch, across retries, per device and per tenant; pages that
cover every reading exactly once (same-ts readings, several pages, since
and until); `latest` is the newest by ts although batches arrive out of
order and concurrently through several workers, through the cache and
without it; other tenants see nothing (404 device_not_found); scopes."""

import hashlib
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

from base import env

SETTINGS = dict(workers=4)


# ---------------------------------------------------------------------------
# Just enough of MongoDB's wire protocol (OP_MSG) and of BSON to run a
# command, so the tests can look at what is stored and start from an empty
# collection: on jongodb every write costs in proportion to the size of the
# collection (README, "MongoDB in the dev stack").

class ObjectId(bytes):
    pass


class Date(int):
    """A BSON date (Unix ms)."""


def _bson(doc):
    out = b""
    for k, v in doc.items():
        kb = k.encode() + b"\0"
        if isinstance(v, bool):
            out += b"\x08" + kb + (b"\x01" if v else b"\x00")
        elif isinstance(v, Date):
            out += b"\x09" + kb + struct.pack("<q", v)
        elif isinstance(v, int):
            out += (b"\x10" + kb + struct.pack("<i", v)) if -2**31 <= v < 2**31 \
                else (b"\x12" + kb + struct.pack("<q", v))
        elif isinstance(v, float):
            out += b"\x01" + kb + struct.pack("<d", v)
        elif isinstance(v, str):
            e = v.encode()
            out += b"\x02" + kb + struct.pack("<i", len(e) + 1) + e + b"\0"
        elif isinstance(v, ObjectId):
            out += b"\x07" + kb + bytes(v)
        elif v is None:
            out += b"\x0a" + kb
        elif isinstance(v, dict):
            out += b"\x03" + kb + _bson(v)
        elif isinstance(v, list):
            out += b"\x04" + kb + _bson({str(i): x for i, x in enumerate(v)})
        else:
            raise TypeError(f"no BSON for {type(v)}")
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def _unbson(b, pos=0, array=False):
    """Returns (value, end): a dict of (type, value) pairs for documents."""
    size = struct.unpack_from("<i", b, pos)[0]
    end, pos, out = pos + size - 1, pos + 4, {}
    while pos < end:
        t = b[pos]
        k_end = b.index(b"\0", pos + 1)
        k, pos = b[pos + 1:k_end].decode(), k_end + 1
        if t == 1:
            v, pos = struct.unpack_from("<d", b, pos)[0], pos + 8
        elif t == 2:
            n = struct.unpack_from("<i", b, pos)[0]
            v, pos = b[pos + 4:pos + 4 + n - 1].decode(), pos + 4 + n
        elif t in (3, 4):
            v, pos = _unbson(b, pos, t == 4)
        elif t == 7:
            v, pos = ObjectId(b[pos:pos + 12]), pos + 12
        elif t == 8:
            v, pos = b[pos] == 1, pos + 1
        elif t == 9:
            v, pos = Date(struct.unpack_from("<q", b, pos)[0]), pos + 8
        elif t == 10:
            v = None
        elif t == 16:
            v, pos = struct.unpack_from("<i", b, pos)[0], pos + 4
        elif t in (17, 18):
            v, pos = struct.unpack_from("<q", b, pos)[0], pos + 8
        else:
            raise ValueError(f"BSON type {t} not handled")
        out[k] = (t, v)
    if array:
        return [v for _t, v in out.values()], end + 1
    return out, end + 1


def plain(d):
    """Drops the BSON types of an _unbson document."""
    if isinstance(d, dict):
        return {k: plain(v[1]) for k, v in d.items()}
    if isinstance(d, list):
        return [plain(x) for x in d]
    return d


def mongo(command):
    """Runs one command on the stack's MongoDB (BULWARK_MONGO); the reply
    as _unbson gives it. Raises on ok: 0."""
    u = urllib.parse.urlsplit(env("BULWARK_MONGO"))
    db = u.path.strip("/") or "bulwark"
    body = _bson({**command, "$db": db})
    msg = struct.pack("<I", 0) + b"\0" + body
    with socket.create_connection((u.hostname, u.port or 27017), timeout=60) as s:
        s.sendall(struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg)
        def read(n):
            got = b""
            while len(got) < n:
                c = s.recv(n - len(got))
                if not c:
                    raise RuntimeError("MongoDB closed the connection")
                got += c
            return got
        head = read(16)
        data = read(struct.unpack("<i", head[:4])[0] - 16)
    reply, _ = _unbson(data, 5)
    if plain(reply).get("ok") != 1:
        raise RuntimeError(f"MongoDB {list(command)[0]}: {plain(reply)}")
    return reply


def empty_telemetry():
    mongo({"delete": "telemetry", "deletes": [{"q": {}, "limit": 0}]})


def stored(filter_):
    r = mongo({"find": "telemetry", "filter": filter_, "batchSize": 1000})
    return r["cursor"][1]["firstBatch"][1]


def derived_id(tenant, device, msg_id):
    """How bulwark names a reading that has a msg_id (telemetry.c)."""
    h = hashlib.sha256(b"bulwark/telemetry/v1\0" + tenant.encode() + b"\0" + device.encode()
                       + b"\0" + msg_id.encode())
    return h.digest()[:12].hex()


def _key(t):
    return t.new_tenant(rate=100000, burst=100000)


def dev(prefix="d"):
    return f"{prefix}-{random.getrandbits(40):010x}"


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_ms():
    return int(time.time() * 1000)


def post(t, key, device, body, raw=False, ctype="application/json"):
    data = body if raw else json.dumps(body, separators=(",", ":"))
    return t.http("POST", f"/v1/devices/{device}/telemetry", data,
                  {"Content-Type": ctype, **key.auth()}, timeout=20)


def get(t, key, path):
    return t.get(path, headers=key.auth(), timeout=20)


def created(t, r, what):
    t.eq(r.status, 201, f"{what}: status ({r.text[:300]})")
    return r.json()


def all_pages(t, key, device, limit=100, query=""):
    """Every reading of device through the cursor; returns (readings, pages)."""
    out, after, pages = [], None, 0
    while True:
        q = f"?limit={limit}{query}" + (f"&after={after}" if after else "")
        r = get(t, key, f"/v1/devices/{device}/telemetry{q}")
        t.eq(r.status, 200, f"page {pages}: {r.text[:200]}")
        body = r.json()
        pages += 1
        t.check(len(body["data"]) <= limit, f"page of {len(body['data'])} > limit {limit}")
        out.extend(body["data"])
        after = body["next"]
        if after is None:
            return out, pages
        t.check(pages < 10000, "the cursor never ends")


def nothing_stored(t, key, device, what):
    r = get(t, key, f"/v1/devices/{device}/telemetry")
    t.eq((r.status, r.json().get("code")), (404, "device_not_found"), f"{what}: nothing stored")


# ---------------------------------------------------------------------------

def test_telemetry_ingest_and_read_back(t):
    t.shared_bulwark()
    empty_telemetry()
    k = _key(t)
    d = dev()
    ts = datetime.now(timezone.utc) - timedelta(minutes=5)
    sent = [
        {"msg_id": "m-1", "ts": iso(ts), "temp": 21.0, "hum": 40, "ok": True, "none": None,
         "nested": {"a": [1, 2.5, "é😀", {"b": -9223372036854775808}]}, "tiny": 5e-324},
        {"msg_id": "m-2", "ts": int(ts.timestamp()) * 1000 + ts.microsecond // 1000 + 1,
         "x": "\u0000\"\\"},
        {"no_id": 1},
    ]
    t0 = now_ms()
    body = created(t, post(t, k, d, sent), "batch")
    t1 = now_ms()
    t.eq((body["stored"], body["duplicates"]), (3, 0), "counts")
    t.eq([(x["index"], x["msg_id"], x["status"]) for x in body["results"]],
         [(0, "m-1", "stored"), (1, "m-2", "stored"), (2, None, "stored")], "results")
    ids = [x["id"] for x in body["results"]]
    t.check(all(len(i) == 24 and int(i, 16) >= 0 for i in ids), f"ids are ObjectId hex: {ids}")
    # a single object is a batch of one
    one = created(t, post(t, k, d, {"single": True}), "single object")
    t.eq([(x["index"], x["status"]) for x in one["results"]], [(0, "stored")], "single result")

    got, _ = all_pages(t, k, d)
    by_id = {g["id"]: g for g in got}
    t.eq(len(got), 4, "four readings")
    for i, s in zip(ids, sent):
        g = by_id[i]
        t.eq(g["data"], s, f"data of {i} comes back as sent")
        t.eq(set(g), {"id", "device_id", "msg_id", "ts", "received_at", "data"}, "reading members")
        t.eq(g["device_id"], d, "device_id")
        rec = datetime.fromisoformat(g["received_at"].replace("Z", "+00:00"))
        t.check(t0 - 5 <= rec.timestamp() * 1000 <= t1 + 5, f"received_at {g['received_at']}")
    t.eq(by_id[ids[0]]["ts"], iso(ts), "RFC 3339 ts kept to the millisecond")
    t.eq(by_id[ids[1]]["ts"], iso(ts + timedelta(milliseconds=1)), "epoch-ms ts")
    t.eq(by_id[ids[2]]["ts"], by_id[ids[2]]["received_at"], "no ts: ts is received_at")
    t.eq(by_id[ids[2]]["msg_id"], None, "no msg_id: null")
    # a double stays a double in the raw text
    raw = get(t, k, f"/v1/devices/{d}/telemetry").text
    t.check('"temp":21.0' in raw, f"21.0 kept as a double: {raw[:300]}")

    # what MongoDB holds: _id derived from (tenant, device, msg_id) or an
    # ObjectId, dates as BSON dates, the reading under data
    t.eq(ids[0], derived_id(k.tenant_id, d, "m-1"), "_id of a reading with a msg_id")
    t.eq(ids[1], derived_id(k.tenant_id, d, "m-2"), "_id of the second")
    docs = {bytes(x["_id"][1]).hex(): x for x in stored({"tenant_id": k.tenant_id, "device_id": d})}
    t.eq(sorted(docs), sorted(ids + [one["results"][0]["id"]]), "four documents")
    doc = docs[ids[0]]
    t.eq(list(doc), ["_id", "tenant_id", "device_id", "msg_id", "ts", "received_at", "data"], "fields")
    t.eq([doc[f][0] for f in ("_id", "ts", "received_at", "data")], [7, 9, 9, 3], "BSON types")
    t.eq(doc["ts"][1], int(ts.timestamp()) * 1000 + ts.microsecond // 1000, "ts as a BSON date")
    t.eq(plain(doc["data"][1])["nested"]["a"][3]["b"], -9223372036854775808, "int64 kept")
    t.eq(doc["data"][1]["temp"][0], 1, "21.0 stored as a double")
    t.eq(doc["data"][1]["hum"][0], 16, "40 stored as an int32")
    t.check("msg_id" not in docs[ids[2]], "no msg_id: none stored")


def test_telemetry_indexes_from_migrate(t):
    """`bulwark migrate up` ensured the spec of schema/mongo/telemetry_indexes.json."""
    t.shared_bulwark()
    r = t.cli(["migrate", "up"])
    t.eq(r.returncode, 0, f"migrate up: {r.stderr[-300:]}")
    idx = {i["name"]: i for i in plain(mongo({"listIndexes": "telemetry"})["cursor"][1]["firstBatch"][1])}
    t.eq(list(idx["tenant_device_ts"]["key"].items()),
         [("tenant_id", 1), ("device_id", 1), ("ts", -1), ("_id", -1)], "keyset index")
    t.eq((idx["received_at_ttl"]["key"], idx["received_at_ttl"]["expireAfterSeconds"]),
         ({"received_at": 1}, 30 * 86400), "TTL index on received_at (telemetry_retention_days)")
    # a second run has nothing to do
    r = t.cli(["migrate", "up"])
    t.eq((r.returncode, r.stdout.strip()), (0, "up to date"), "idempotent")


CASES = [
    # name, body (JSON text), status, code, pointer, index
    ("dollar key", '[{"a":1},{"$set":{"x":1}}]', 400, "invalid_reading", "/1/$set", 1),
    ("dot key", '[{"a":{"b.c":1}}]', 400, "invalid_reading", "/0/a/b.c", 0),
    ("nul key", '[{"ok":1},{"a\\u0000b":1}]', 400, "invalid_reading", "/1/a\u0000b", 1),
    ("empty key", '{"x":{"":1}}', 400, "invalid_reading", "/x/", 0),
    ("duplicate key", '[{"a":1},{"v":1,"w":2,"v":3}]', 400, "invalid_reading", "/1/v", 1),
    ("depth 33", '[{"a":1},' + '{"a":' * 33 + '1' + '}' * 33 + ']', 400, "invalid_reading",
     "/1" + "/a" * 32, 1),
    ("int too big", '[{"n":9223372036854775808}]', 400, "invalid_reading", "/0/n", 0),
    ("double too big", '[{"n":[0,1e400]}]', 400, "invalid_reading", "/0/n/1", 0),
    ("msg_id too long", '[{"msg_id":"' + "m" * 129 + '"}]', 400, "invalid_reading", "/0/msg_id", 0),
    ("msg_id empty", '[{"msg_id":"a"},{"msg_id":""}]', 400, "invalid_reading", "/1/msg_id", 1),
    ("msg_id number", '{"msg_id":12}', 400, "invalid_reading", "/msg_id", 0),
    ("ts not a time", '[{"ts":"yesterday"}]', 400, "invalid_reading", "/0/ts", 0),
    ("ts fractional ms", '[{"ts":1.5}]', 400, "invalid_reading", "/0/ts", 0),
    ("ts too old", '[{"a":1},{"ts":"2000-01-01T00:00:00Z"}]', 400, "clock_skew", "/1/ts", 1),
    ("ts too new", None, 400, "clock_skew", "/0/ts", 0),  # built at run time
    ("reading over 64 KiB", '[{"a":1},{"s":"' + "x" * 65536 + '"}]', 400, "invalid_reading", "/1", 1),
    ("501 readings", "[" + ",".join(['{"a":1}'] * 501) + "]", 413, "payload_too_large", "/500", 500),
    ("not JSON", '[{"a":1},{"a":}]', 400, "invalid_json", "/1/a", 1),
    ("bad UTF-8", b'[{"a":"\xc3\x28"}]', 400, "invalid_json", "/0/a", 0),
    ("top level", '"reading"', 400, "invalid_json", "", None),
    ("empty batch", "[]", 400, "invalid_reading", "", None),
    ("not an object", '[{"a":1},[1]]', 400, "invalid_reading", "/1", 1),
]


def test_telemetry_validation_refuses_whole_batch(t):
    t.shared_bulwark()
    k = _key(t)
    future = iso(datetime.now(timezone.utc) + timedelta(minutes=10))
    for name, body, status, code, pointer, index in CASES:
        if body is None:
            body = '[{"ts":"' + future + '"}]'
        d = dev("v")
        r = post(t, k, d, body, raw=True)
        t.eq(r.status, status, f"{name}: status ({r.text[:200]})")
        p = r.json()
        t.eq(r.header("Content-Type"), "application/problem+json", f"{name}: problem type")
        t.eq((p["code"], p["pointer"], p["index"]), (code, pointer, index), f"{name}: code/pointer/index")
        t.check(isinstance(p.get("offset"), int) and p.get("detail"), f"{name}: offset and detail: {p}")
        nothing_stored(t, k, d, name)
    # a body over 1 MiB: the pipeline answers 413 from Content-Length
    d = dev("v")
    big = "[" + ",".join(['{"s":"' + "x" * 60000 + '"}'] * 18) + "]"
    r = post(t, k, d, big, raw=True)
    t.eq((r.status, r.json().get("code")), (413, "payload_too_large"), "body over 1 MiB")
    nothing_stored(t, k, d, "body over 1 MiB")
    r = post(t, k, d, '{"a":1}', raw=True, ctype="text/plain")
    t.eq(r.status, 415, "not application/json")
    nothing_stored(t, k, d, "415")


def test_telemetry_validation_limits_accepted(t):
    t.shared_bulwark()
    k = _key(t)
    d = dev("lim")
    edge = datetime.now(timezone.utc) - timedelta(days=7) + timedelta(minutes=1)
    batch = [{"a": i} for i in range(497)]
    batch.append(json.loads('{"a":' * 32 + '1' + '}' * 32))        # depth 32
    batch.append({"msg_id": "é" * 128, "ts": iso(edge)})               # 128 characters, 7 days ago
    batch.append({"s": "x" * (65536 - 8)})                             # exactly 64 KiB of JSON
    body = created(t, post(t, k, d, batch), "500 readings at every limit")
    t.eq(body["stored"], 500, "all stored")


def test_telemetry_dedup_in_batch_and_across_retries(t):
    t.shared_bulwark()
    k = _key(t)
    d = dev("dup")
    batch = [{"msg_id": "a", "v": 1}, {"msg_id": "b", "v": 2}, {"msg_id": "a", "v": 3}]
    body = created(t, post(t, k, d, batch), "first")
    t.eq([x["status"] for x in body["results"]], ["stored", "stored", "duplicate"], "in-batch dup")
    t.eq((body["stored"], body["duplicates"]), (2, 1), "counts")
    t.eq(body["results"][0]["id"], body["results"][2]["id"], "same msg_id, same id")
    again = created(t, post(t, k, d, batch), "retry")
    t.eq([x["status"] for x in again["results"]], ["duplicate"] * 3, "retry: all duplicates")
    t.eq([x["id"] for x in again["results"]], [x["id"] for x in body["results"]], "same ids")
    got, _ = all_pages(t, k, d)
    t.eq(sorted((g["msg_id"], g["data"]["v"]) for g in got), [("a", 1), ("b", 2)],
         "two readings, the first 'a' kept")
    # a msg_id is per device and per tenant
    other = created(t, post(t, k, dev("dup"), batch[:1]), "same msg_id, other device")
    t.eq(other["results"][0]["status"], "stored", "other device")
    t.check(other["results"][0]["id"] != body["results"][0]["id"], "other device, other id")
    k2 = _key(t)
    o2 = created(t, post(t, k2, d, batch[:1]), "same device and msg_id, other tenant")
    t.eq(o2["results"][0]["status"], "stored", "other tenant")
    # readings without msg_id are never deduplicated
    n = created(t, post(t, k, d, [{"v": 9}, {"v": 9}]), "no msg_id")
    t.eq(n["stored"], 2, "two readings without msg_id")


def test_telemetry_pages_cover_every_reading_once(t):
    t.shared_bulwark()
    k = _key(t)
    d = dev("pg")
    base = now_ms() - 3600_000
    readings, n = [], 0
    for s in range(40):                       # 40 distinct ts, 1 to 9 readings each
        for j in range(1 + s % 9):
            r = {"ts": base + s * 1000, "n": n}
            if n % 3:
                r["msg_id"] = f"p{n}"
            readings.append(r)
            n += 1
    random.shuffle(readings)
    for i in range(0, len(readings), 97):
        created(t, post(t, k, d, readings[i:i + 97]), f"chunk {i}")
    for limit in (7, 50, 1000):
        got, pages = all_pages(t, k, d, limit)
        ns = [g["data"]["n"] for g in got]
        t.eq(len(ns), len(readings), f"limit {limit}: count")
        t.eq(sorted(ns), list(range(len(readings))), f"limit {limit}: each reading exactly once")
        t.eq(pages, -(-len(readings) // limit), f"limit {limit}: pages (no empty last page)")
        keys = [(g["ts"], g["id"]) for g in got]
        t.eq(keys, sorted(keys, reverse=True), f"limit {limit}: newest first, then id")
    # since is inclusive, until exclusive; epoch ms or RFC 3339
    since, until = base + 10_000, base + 20_000
    want = sorted(r["n"] for r in readings if since <= r["ts"] < until)
    for q in (f"&since={since}&until={until}",
              f"&since={iso(datetime.fromtimestamp(since / 1000, timezone.utc))}"
              f"&until={iso(datetime.fromtimestamp(until / 1000, timezone.utc))}"):
        got, _ = all_pages(t, k, d, 4, q)
        t.eq(sorted(g["data"]["n"] for g in got), want, f"range {q}")
    r = get(t, k, f"/v1/devices/{d}/telemetry?since={until}&until={since}")
    t.eq((r.status, r.json()), (200, {"data": [], "next": None}), "empty range of a known device")
    r = get(t, k, f"/v1/devices/{d}/telemetry")
    t.eq(len(r.json()["data"]), 100, "default limit 100")
    for q, param in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"),
                     ("since=yesterday", "since"), ("until=2024-13-01T00:00:00Z", "until"),
                     ("after=abc", "after"), ("after=AQAAAaIVHGF5awdzzywemUxHCW5", "after")):
        r = get(t, k, f"/v1/devices/{d}/telemetry?{q}")
        p = r.json()
        t.eq((r.status, p.get("code"), p.get("parameter")), (400, "invalid_parameter", param), q)


def test_telemetry_overlapping_batches_each_stored_once(t):
    """In both write modes, batches sharing msg_ids sent at once through
    several workers: every reading is stored once, and exactly one response
    reports it `stored` (the others `duplicate`)."""
    base = now_ms() - 60_000
    for mode in ("upsert", "insert"):
        t.bulwark(workers=4, telemetry_write_mode=mode)
        k = _key(t)
        d = dev("ov")
        ids = [f"o{i}" for i in range(60)]
        # 24 batches of 20 readings from overlapping windows of the 60 ids
        batches = [[{"msg_id": ids[(b * 7 + j) % 60], "ts": base + (b * 7 + j) % 60}
                    for j in range(20)] for b in range(24)]
        answers, lock = [], threading.Lock()

        def send(part):
            for b in part:
                r = post(t, k, d, b)
                with lock:
                    answers.append(r)
        ths = [threading.Thread(target=send, args=(batches[i::8],)) for i in range(8)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        t.eq(sorted(r.status for r in answers), [201] * len(batches), f"{mode}: every batch 201")
        stored = {}
        for r in answers:
            for x in r.json()["results"]:
                stored[x["msg_id"]] = stored.get(x["msg_id"], 0) + (x["status"] == "stored")
        t.eq(stored, {i: 1 for i in ids}, f"{mode}: each msg_id reported stored exactly once")
        got, _ = all_pages(t, k, d)
        t.eq(sorted(g["msg_id"] for g in got), sorted(ids), f"{mode}: each reading stored once")


def _latest(t, k, d):
    r = get(t, k, f"/v1/devices/{d}/latest")
    t.eq(r.status, 200, f"latest: {r.text[:200]}")
    return r.header("X-Cache"), r.json()


def test_telemetry_latest_is_newest_by_ts(t):
    b = t.shared_bulwark()
    k = _key(t)
    cache = t.redis("redis_cache")
    d = dev("lt")
    base = now_ms() - 600_000
    # out of order: the newest first, then older ones
    created(t, post(t, k, d, [{"msg_id": "new", "ts": base + 5000}]), "newest")
    created(t, post(t, k, d, [{"msg_id": "old", "ts": base + 1000}, {"msg_id": "o2", "ts": base}]),
            "older")
    xc, r = _latest(t, k, d)
    t.eq((xc, r["msg_id"]), ("HIT", "new"), "an older batch does not replace the newest")
    # the same ts: the higher id wins, as in the sort of the list
    tie = created(t, post(t, k, d, [{"msg_id": "t1", "ts": base + 5000}, {"msg_id": "t2", "ts": base + 5000}]),
                  "ties")
    first, _ = all_pages(t, k, d, 1)
    _, r = _latest(t, k, d)
    t.eq(r["id"], first[0]["id"], "latest is the first reading of the list")
    t.check(r["id"] == max([x["id"] for x in tie["results"]] + [r["id"]]), "ties: highest id")

    # concurrently, out of order, through all workers
    d = dev("lc")
    stamps = list(range(base, base + 400 * 7, 7))
    random.shuffle(stamps)
    chunks = [stamps[i:i + 10] for i in range(0, len(stamps), 10)]
    errors, lock = [], threading.Lock()

    def send(part):
        for c in part:
            r = post(t, k, d, [{"msg_id": f"c{s}", "ts": s} for s in c])
            if r.status != 201:
                with lock:
                    errors.append(r.status)
    ths = [threading.Thread(target=send, args=(chunks[i::8],)) for i in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    t.eq(errors, [], "every concurrent batch stored")
    pids = {x.get("pid") for x in b.log_lines() if x.get("type") == "access"
            and x.get("method") == "POST" and x.get("route") == "/v1/devices/{device_id}/telemetry"}
    xc, r = _latest(t, k, d)
    t.eq((xc, r["msg_id"]), ("HIT", f"c{max(stamps)}"), "latest after concurrent batches")
    # without the cache entry: MongoDB answers, refills the cache
    cache.call("DEL", f"tl:{k.tenant_id}:{d}")
    xc, r2 = _latest(t, k, d)
    t.eq((xc, r2), ("MISS", r), "a miss reads MongoDB")
    xc, r3 = _latest(t, k, d)
    t.eq((xc, r3), ("HIT", r), "and fills the cache")
    ttl = cache.call("PTTL", f"tl:{k.tenant_id}:{d}")
    t.check(0 < ttl <= 3600_000, f"the cached latest has a TTL ({ttl} ms)")
    t.check(len(pids) >= 2, f"batches went through several workers ({pids})")


def test_telemetry_tenants_are_isolated(t):
    t.shared_bulwark()
    a, b = _key(t), _key(t)
    d = dev("iso")
    created(t, post(t, a, d, [{"msg_id": "x", "secret": "a"}]), "tenant A")
    for path in (f"/v1/devices/{d}/telemetry", f"/v1/devices/{d}/latest"):
        r = get(t, b, path)
        t.eq((r.status, r.json().get("code")), (404, "device_not_found"), f"B reads A's {path}")
    created(t, post(t, b, d, [{"msg_id": "x", "secret": "b"}]), "tenant B, same device, same msg_id")
    ga, _ = all_pages(t, a, d)
    gb, _ = all_pages(t, b, d)
    t.eq([g["data"]["secret"] for g in ga], ["a"], "A sees only A's")
    t.eq([g["data"]["secret"] for g in gb], ["b"], "B sees only B's")
    t.eq(_latest(t, a, d)[1]["data"]["secret"], "a", "A's latest")
    t.eq(_latest(t, b, d)[1]["data"]["secret"], "b", "B's latest")
    # a cursor made on A's readings only ever pages through B's own
    created(t, post(t, a, d, [{"secret": "a"}, {"secret": "a"}]), "more of A")
    c = get(t, a, f"/v1/devices/{d}/telemetry?limit=1").json()["next"]
    t.check(c is not None, "A has a next page")
    r = get(t, b, f"/v1/devices/{d}/telemetry?limit=5&after={c}")
    t.eq(r.status, 200, "B with A's cursor")
    t.check(all(g["data"]["secret"] == "b" for g in r.json()["data"]), f"B never sees A's: {r.text[:200]}")


def test_telemetry_scopes_and_device_ids(t):
    t.shared_bulwark()
    k = _key(t)
    ro = t.new_key(k.tenant_id, scopes="telemetry:read")
    wo = t.new_key(k.tenant_id, scopes="telemetry:write")
    d = dev("sc")
    r = post(t, ro, d, {"a": 1})
    t.eq((r.status, r.json().get("code")), (403, "insufficient_scope"), "read-only key cannot write")
    created(t, post(t, wo, d, {"a": 1}), "write-only key writes")
    for path in (f"/v1/devices/{d}/telemetry", f"/v1/devices/{d}/latest"):
        r = get(t, wo, path)
        t.eq(r.status, 403, f"write-only key cannot read {path}")
        t.eq(get(t, ro, path).status, 200, f"read-only key reads {path}")
    for bad in ("x" * 129, "a%20b", "a$b", "a%2Fb", "%C3%A9"):
        for method, path in (("POST", f"/v1/devices/{bad}/telemetry"), ("GET", f"/v1/devices/{bad}/telemetry"),
                             ("GET", f"/v1/devices/{bad}/latest")):
            r = t.http(method, path, '{"a":1}' if method == "POST" else None,
                       {"Content-Type": "application/json", **k.auth()})
            t.eq((r.status, r.json().get("code")), (400, "invalid_device_id"), f"{method} {path[:40]}")
    ok = "A-z_0.9:" + "x" * 120
    created(t, post(t, k, ok, {"a": 1}), "128 characters of the allowed set")

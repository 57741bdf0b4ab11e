"""Wire clients of the integration harness: HTTP (through nginx and on the
master's status socket), FastCGI (straight to the workers' socket), RESP
(the stack's Redis), an sd_notify receiver and the Prometheus text parser.

Standard library only; nothing here knows about the daemon or the test
context."""

import contextlib
import http.client
import json
import os
import re
import socket
import struct
import threading
import time
import urllib.parse

from base import Failure, wait_until

# ---------------------------------------------------------------------------
# HTTP

class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.elapsed = elapsed

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Failure(f"response body is not JSON ({e}): {self.text[:300]!r}") from None

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.text[:200]!r}>"


def http_request(base, method, path, body=None, headers=None, timeout=10.0, source=None):
    """source: a local address to connect from (e.g. "127.0.0.23": nginx then
    passes it as REMOTE_ADDR, so a test gets its own client address)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    hdrs = {"Connection": "close"}
    if headers:
        hdrs.update(headers)
    if isinstance(body, str):
        body = body.encode()
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data, time.monotonic() - t0)
    finally:
        conn.close()


def unix_http(sock_path, method, path, timeout=5.0, retries=0):
    """HTTP/1.0 over a unix socket (the master's status socket)."""
    for attempt in range(retries + 1):
        try:
            return _unix_http(sock_path, method, path, timeout)
        except (BrokenPipeError, ConnectionResetError):
            if attempt == retries:
                raise
            time.sleep(0.05)


def _unix_http(sock_path, method, path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect(sock_path)
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        raise Failure(f"status socket {sock_path}: not an HTTP response: {raw[:200]!r}")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip(), v.strip()))
    return Response(status, reason, headers, body, time.monotonic() - t0)


# ---------------------------------------------------------------------------
# FastCGI client (enough for GET/POST against a responder)

FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST = 1, 2, 3
FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 4, 5, 6, 7


def fcgi_record(rtype, req_id, content=b""):
    out = b""
    # split into records of at most 65535 bytes; an empty content is one record
    pos = 0
    while True:
        chunk = content[pos:pos + 65535]
        pad = (8 - len(chunk) % 8) % 8
        out += struct.pack("!BBHHBB", 1, rtype, req_id, len(chunk), pad, 0) + chunk + b"\0" * pad
        pos += len(chunk)
        if pos >= len(content):
            break
    return out


def fcgi_nv(name, value):
    n, v = name.encode(), value.encode()

    def ln(x):
        return struct.pack("!B", len(x)) if len(x) < 128 else struct.pack("!I", len(x) | 0x80000000)

    return ln(n) + ln(v) + n + v


def fcgi_request(sock_path, method, uri, body=b"", headers=None, timeout=10.0, connected_sock=None,
                 params_override=None):
    """One FastCGI request; returns Response (status from the Status: header).
    params_override: raw CGI params to set (or remove with None)."""
    path, _, query = uri.partition("?")
    if isinstance(body, str):
        body = body.encode()
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "bulwark-it",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "DOCUMENT_URI": path,
        "SCRIPT_NAME": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "DOCUMENT_ROOT": "/",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost",
        "REQUEST_ID": "0123456789abcdef0123456789abcdef",
        "HTTP_X_REQUEST_ID": "0123456789abcdef0123456789abcdef",
    }
    for k, v in (headers or {}).items():
        if k.lower() == "content-type":
            params["CONTENT_TYPE"] = v
        else:
            params["HTTP_" + k.upper().replace("-", "_")] = v
    for k, v in (params_override or {}).items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = v
    rid = 1
    msg = fcgi_record(FCGI_BEGIN_REQUEST, rid, struct.pack("!HB5x", 1, 0))
    msg += fcgi_record(FCGI_PARAMS, rid, b"".join(fcgi_nv(k, v) for k, v in params.items()))
    msg += fcgi_record(FCGI_PARAMS, rid)
    if body:
        msg += fcgi_record(FCGI_STDIN, rid, body)
    msg += fcgi_record(FCGI_STDIN, rid)
    t0 = time.monotonic()
    s = connected_sock
    if s is None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(sock_path)
    try:
        s.settimeout(timeout)
        s.sendall(msg)
        buf = b""
        stdout, stderr = b"", b""
        ended = False
        while not ended:
            c = s.recv(65536)
            if not c:
                break
            buf += c
            while len(buf) >= 8:
                _v, rtype, _id, clen, pad, _r = struct.unpack("!BBHHBB", buf[:8])
                if len(buf) < 8 + clen + pad:
                    break
                content = buf[8:8 + clen]
                buf = buf[8 + clen + pad:]
                if rtype == FCGI_STDOUT:
                    stdout += content
                elif rtype == FCGI_STDERR:
                    stderr += content
                elif rtype == FCGI_END_REQUEST:
                    ended = True
    finally:
        s.close()
    if not ended:
        raise Failure(f"FastCGI: connection closed without END_REQUEST (stdout {stdout[:200]!r})")
    head, sep, rbody = stdout.partition(b"\r\n\r\n")
    if not sep:
        head, sep, rbody = stdout.partition(b"\n\n")
    status, reason, hdrs = 200, "OK", []
    for ln in head.decode("latin-1").splitlines():
        k, _, v = ln.partition(":")
        k, v = k.strip(), v.strip()
        if k.lower() == "status":
            st, _, reason = v.partition(" ")
            status = int(st)
        else:
            hdrs.append((k, v))
    return Response(status, reason, hdrs, rbody, time.monotonic() - t0)


# ---------------------------------------------------------------------------
# Redis (RESP2), enough to drive the function library and inspect keys

class RedisError(Exception):
    pass


class RedisClient:
    """One connection to "host:port" (or a unix socket path).  call() returns
    str / int / list / None, and raises RedisError on an error reply."""

    def __init__(self, addr, timeout=5.0):
        if addr.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(addr)
        else:
            host, _, port = addr.rpartition(":")
            self.sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        with contextlib.suppress(OSError):
            self.f.close()
            self.sock.close()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError(f"connection closed mid-reply ({line!r})")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")

    def scan(self, match):
        cursor, keys = "0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", match, "COUNT", 1000)
            keys.extend(batch)
            if cursor == "0":
                return keys


# ---------------------------------------------------------------------------
# sd_notify receiver

class NotifySocket:
    """An AF_UNIX datagram socket like systemd's notify socket.  Collects
    (time, sender_pid, {key: value}) tuples in a background thread."""

    def __init__(self, path):
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        credsize = struct.calcsize("3i")
        while not self.closed:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(credsize))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid, _uid, _gid = struct.unpack("3i", cdata[:credsize])
            kv = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if "=" in line:
                    k, _, v = line.partition("=")
                    kv[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), pid, kv))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait_for(self, key, value=None, timeout=10.0, after=0):
        """Waits for a message (index >= after) carrying key (=value)."""
        def find():
            msgs = self.snapshot()
            for i, (_t, _pid, kv) in enumerate(msgs):
                if i >= after and key in kv and (value is None or kv[key] == value):
                    return (i, msgs[i])
            return None
        return wait_until(find, timeout, what=f"sd_notify {key}={value or '*'}")

    def close(self):
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self.thread.join(1)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# ---------------------------------------------------------------------------
# Prometheus text

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Returns (samples, types): samples = [(name, {labels}, float)]."""
    samples, types = [], {}
    for ln in text.splitlines():
        if not ln.strip():
            continue
        if ln.startswith("#"):
            p = ln.split()
            if len(p) >= 4 and p[1] == "TYPE":
                types[p[2]] = p[3]
            continue
        m = METRIC_LINE.match(ln)
        if not m:
            raise Failure(f"malformed metrics line: {ln!r}")
        labels = dict(LABEL.findall(m.group(3) or ""))
        v = m.group(4)
        try:
            val = float(v)
        except ValueError:
            raise Failure(f"malformed metrics value: {ln!r}") from None
        samples.append((m.group(1), labels, val))
    return samples, types


def metric_sum(samples, name, **labels):
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == val for k, val in labels.items()))


# ---------------------------------------------------------------------------
# unix sockets

def socket_is_live(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()

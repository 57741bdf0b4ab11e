"""Library of the integration harness (run.py is the runner).

Python 3.11, standard library only.  Everything a test needs is reached
through the context object `t` that the runner passes to each test_*
function:

    def test_something(t):
        b = t.bulwark(workers=2)            # start (or reuse) a daemon
        r = t.get("/healthz")               # HTTP through nginx
        t.eq(r.status, 200, "healthz status")

The daemon is started from $BW_BULWARK_BIN with a generated config file and
an environment cleaned of BULWARK_* variables (so the file is what counts
and SIGHUP reloads see file edits), stopped with SIGTERM, and its log,
stderr and sanitizer log files are scanned after it exits.
"""

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "dev" / "lib" / "stack.sh"

# Lines that mean a sanitizer found something.
SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: AddressSanitizer"
    r"|UndefinedBehaviorSanitizer|runtime error:|SUMMARY: AddressSanitizer"
    r"|ERROR: ThreadSanitizer|LeakSanitizer has encountered a fatal error"
)


_SIGTERM = signal.SIGTERM
ALL_HARNESSES = []  # run.py kills what they started on its way out


class Skip(Exception):
    """Raised by a test (or a helper) to mark the test skipped."""


class Failure(AssertionError):
    pass


# ---------------------------------------------------------------------------
# small helpers

def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value; returns that value.
    Exceptions from fn count as falsy (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})"[:600])
        time.sleep(interval)


def env(name, default=None):
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def short_tmp_dir(base):
    """AF_UNIX paths are limited to 107 bytes: keep socket dirs short."""
    os.makedirs(base, exist_ok=True)
    return base


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


def _fcgi_record(rtype, req_id, content=b""):
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


def _fcgi_nv(name, value):
    n, v = name.encode(), value.encode()

    def ln(x):
        return struct.pack("!B", len(x)) if len(x) < 128 else struct.pack("!I", len(x) | 0x80000000)

    return ln(n) + ln(v) + n + v


def bg_get(t, path, timeout=30.0):
    """Starts GET path in a thread; returns (thread, result dict with "r" or
    "e", and "elapsed")."""
    res = {}

    def run():
        t0 = time.monotonic()
        try:
            res["r"] = t.get(path, timeout=timeout)
        except Exception as e:  # noqa: BLE001
            res["e"] = e
        res["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, res


def check_problem(t, r, status, code, what):
    """r is a problem+json response of this status and code (None: any
    code); returns its body."""
    t.eq(r.status, status, f"{what}: status ({r.text[:300]!r})")
    ct = r.header("Content-Type", "")
    t.check(ct.split(";")[0].strip() == "application/problem+json",
            f"{what}: Content-Type {ct!r}, want application/problem+json")
    p = r.json()
    if code is not None:
        t.eq(p.get("code"), code, f"{what}: problem code ({r.text[:300]!r})")
    t.eq(p.get("status"), status, f"{what}: problem status")
    return p


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
    msg = _fcgi_record(FCGI_BEGIN_REQUEST, rid, struct.pack("!HB5x", 1, 0))
    msg += _fcgi_record(FCGI_PARAMS, rid, b"".join(_fcgi_nv(k, v) for k, v in params.items()))
    msg += _fcgi_record(FCGI_PARAMS, rid)
    if body:
        msg += _fcgi_record(FCGI_STDIN, rid, body)
    msg += _fcgi_record(FCGI_STDIN, rid)
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
# /proc helpers

def proc_stat(pid):
    """(state, ppid, pgrp) of a process or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(d))
    return sorted(out)


def group_members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[2] == pgid and st[0] != "Z":
                out.append(int(d))
    return out


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


# ---------------------------------------------------------------------------
# the daemon

def sanitizer_env(san_prefix):
    e = {}
    a = os.environ.get("ASAN_OPTIONS", "")
    e["ASAN_OPTIONS"] = ":".join(x for x in (a, f"log_path={san_prefix}", "detect_leaks=1") if x)
    u = os.environ.get("UBSAN_OPTIONS", "")
    e["UBSAN_OPTIONS"] = ":".join(x for x in (u, f"log_path={san_prefix}", "print_stacktrace=1") if x)
    return e


def clean_env(extra=None):
    """The harness's environment without BULWARK_* (the daemon would read
    them as overrides) plus `extra`."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    if extra:
        e.update({k: str(v) for k, v in extra.items()})
    return e


def render_config(cfg):
    lines = ["# generated by tests/integration/harness.py"]
    for k, v in cfg.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


class Bulwark:
    """One daemon process (master + workers in its own process group)."""

    def __init__(self, harness, name, cfg, env_overrides=None, via_env=False, wait="nginx",
                 extra_env=None, start_timeout=20.0, launcher=None):
        self.h = harness
        self.launcher = launcher  # fn(env, argv) -> argv, e.g. systemd-socket-activate
        self.name = name
        self.cfg = dict(cfg)
        self.env_overrides = dict(env_overrides or {})
        self.via_env = via_env
        self.wait = wait
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.dir = harness.new_dir(name)
        self.conf_path = os.path.join(self.dir, "bulwark.conf")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.san_prefix = os.path.join(self.dir, "san")
        self.proc = None
        self.users = []  # tests that used this instance
        self.problems = []  # filled by stop()
        self.stopped = False
        self.exit_code = None

    # -- lifecycle ---------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    @property
    def listen(self):
        return self.setting("listen")

    @property
    def status_listen(self):
        return self.setting("status_listen")

    @property
    def log_file(self):
        return self.setting("log_file")

    def setting(self, key):
        k = "BULWARK_" + key.upper()
        if k in self.env_overrides:
            return self.env_overrides[k]
        return self.cfg.get(key)

    def drain_timeout(self):
        try:
            return int(self.setting("drain_timeout_ms") or 30000) / 1000.0
        except ValueError:
            return 30.0

    def write_config(self, cfg=None, raw=None):
        """Rewrites the config file (for SIGHUP tests). raw = literal text."""
        if cfg is not None:
            self.cfg = dict(cfg)
        text = raw if raw is not None else render_config(self.cfg)
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)

    def start(self):
        h = self.h
        bin_ = h.require_bin()
        envd = clean_env(sanitizer_env(self.san_prefix))
        envd.update(self.extra_env)
        if self.via_env:
            for k, v in self.cfg.items():
                if v is not None:
                    envd["BULWARK_" + k.upper()] = ("true" if v else "false") if isinstance(v, bool) else str(v)
            argv = [bin_, "serve"]
        else:
            self.write_config()
            argv = [bin_, "serve", "-c", self.conf_path]
        envd.update({k: str(v) for k, v in self.env_overrides.items()})
        if self.launcher:
            argv = self.launcher(envd, argv)
        listen = self.listen
        if listen and listen.startswith("/") and self.wait == "nginx":
            # a leftover daemon on the stack socket would answer for us
            if socket_is_live(listen):
                raise Failure(f"something is already listening on {listen} before start")
        self.stderr_f = open(self.stderr_path, "wb")
        self.t_start = time.monotonic()
        h.all_instances.append(self)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.stderr_f,
                                     stderr=self.stderr_f, env=envd, start_new_session=True,
                                     cwd=self.dir)
        h.note(f"{self.name}: started pid {self.proc.pid}: {' '.join(argv)}")
        try:
            self._wait_up()
        except BaseException:
            self.kill_hard()
            raise
        return self

    def _wait_up(self):
        if self.wait == "none":
            return
        deadline = time.monotonic() + self.start_timeout

        def alive():
            if self.proc.poll() is not None:
                raise Failure(f"bulwark exited with status {self.proc.returncode} during start-up: "
                              f"{self.tail()}")

        def healthy():
            alive()
            if self.wait == "nginx":
                r = self.h.http("GET", "/healthz", timeout=2)
            else:
                r = fcgi_request(self.listen, "GET", "/healthz", timeout=2)
            return r.status == 200

        if self.wait in ("nginx", "fcgi"):
            wait_until(healthy, max(0.5, deadline - time.monotonic()), 0.1,
                       f"{self.name}: /healthz 200 ({self.wait})")
        # best effort: all workers up according to /status
        if self.status_listen:
            def all_up():
                alive()
                st = self.status()
                w = st.get("workers", {})
                return (w.get("total") == st.get("workers_configured") and w.get("starting", 0) == 0
                        and w.get("ready", w.get("total")) == w.get("total"))
            try:
                wait_until(all_up, max(0.5, min(5.0, deadline - time.monotonic())), 0.1, "workers up")
            except Failure as e:
                if self.proc.poll() is not None:
                    raise
                self.h.note(f"{self.name}: {e}")
        self.h.note(f"{self.name}: up after {time.monotonic() - self.t_start:.2f}s")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=_SIGTERM, expect_code=0):
        """Graceful stop. Returns the list of problems (also kept in self.problems)."""
        if self.stopped:
            return self.problems
        if self.proc is None:  # never started
            self.stopped = True
            return self.problems
        limit = self.drain_timeout() + 5.0
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            t0 = time.monotonic()
            if self.wait_exit(limit) is None:
                self.problems.append(f"{self.name}: did not exit within {limit:.1f}s after "
                                     f"{signal.Signals(sig).name}")
                self.kill_hard()
            else:
                self.h.note(f"{self.name}: exited {self.proc.returncode} "
                            f"{time.monotonic() - t0:.2f}s after {signal.Signals(sig).name}")
        self.finish(expect_code)
        return self.problems

    def kill_hard(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def finish(self, expect_code=0):
        """After the master exited: orphans, exit status, sanitizer scan."""
        if self.stopped:
            return self.problems
        self.stopped = True
        if self.proc is None:
            return self.problems
        rc = self.proc.poll()
        if rc is None:
            self.kill_hard()
            rc = self.proc.returncode
        self.exit_code = rc
        # workers must not outlive the master
        try:
            wait_until(lambda: not group_members(self.proc.pid), 2.0, 0.05, "workers to exit")
        except Failure:
            left = group_members(self.proc.pid)
            self.problems.append(f"{self.name}: processes {left} outlived the master")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if expect_code is not None and rc != expect_code:
            self.problems.append(f"{self.name}: exit status {rc}, expected {expect_code}: {self.tail()}")
        with contextlib.suppress(Exception):
            self.stderr_f.close()
        self.problems.extend(self.sanitizer_reports())
        return self.problems

    # -- logs --------------------------------------------------------------
    def log_paths(self):
        paths = [self.stderr_path]
        lf = self.log_file
        if lf:
            d, base = os.path.split(lf)
            with contextlib.suppress(FileNotFoundError):
                for n in sorted(os.listdir(d)):
                    if n == base or n.startswith(base + "."):
                        paths.append(os.path.join(d, n))
        with contextlib.suppress(FileNotFoundError):
            for n in sorted(os.listdir(self.dir)):
                if n.startswith("san."):
                    paths.append(os.path.join(self.dir, n))
        return paths

    def sanitizer_reports(self):
        out = []
        for p in self.log_paths():
            try:
                with open(p, errors="replace") as f:
                    for ln in f:
                        if SANITIZER_PATTERNS.search(ln):
                            out.append(f"{self.name}: sanitizer report in {p}: {ln.strip()[:300]}")
                            break
            except OSError:
                pass
        return out

    def tail(self, n=8):
        try:
            with open(self.stderr_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        if self.log_file:
            with contextlib.suppress(OSError), open(self.log_file, errors="replace") as f:
                lines += f.read().splitlines()
        return " | ".join(lines[-n:])[:1500]

    def log_lines(self, path=None):
        """Parsed JSON lines of the log file (or stderr when log_file is empty)."""
        paths = [path] if path else ([self.log_file] if self.log_file else [self.stderr_path])
        if path is None and self.log_file:
            paths.append(self.stderr_path)
        out = []
        for p in paths:
            try:
                with open(p, errors="replace") as f:
                    for ln in f:
                        ln = ln.strip()
                        if ln.startswith("{"):
                            with contextlib.suppress(ValueError):
                                out.append(json.loads(ln))
            except OSError:
                pass
        return out

    def wait_log(self, pred, timeout=3.0, what="log line", path=None):
        return wait_until(lambda: next((x for x in self.log_lines(path) if pred(x)), None),
                          timeout, 0.05, what)

    # -- status socket -----------------------------------------------------
    def status(self, timeout=3.0):
        # one retry: the master drops a connection whose request is not
        # complete within 100 ms, which a loaded test machine can miss
        r = unix_http(self.status_listen, "GET", "/status", timeout, retries=1)
        if r.status != 200:
            raise Failure(f"/status answered {r.status}: {r.text[:200]}")
        return r.json()

    def metrics(self, timeout=3.0):
        r = unix_http(self.status_listen, "GET", "/metrics", timeout, retries=1)
        if r.status != 200:
            raise Failure(f"/metrics answered {r.status}: {r.text[:200]}")
        return parse_metrics(r.text)[0]

    def worker_pids(self, st=None):
        st = st or self.status()
        return sorted(p["pid"] for p in st.get("processes", []) if p.get("pid"))

    def wait_workers(self, n=None, timeout=5.0, exclude=()):
        """Waits until /status shows n (default: configured) workers, none
        starting, none of them in `exclude`; returns the status."""
        def ok():
            st = self.status()
            want = n if n is not None else st["workers_configured"]
            pids = self.worker_pids(st)
            w = st["workers"]
            if w["total"] == want and w.get("starting", 0) == 0 and len(pids) == want \
                    and w.get("ready", want) == want and not set(pids) & set(exclude):
                return st
            return None
        return wait_until(ok, timeout, 0.05, f"{n or 'configured'} workers ready")


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


# ---------------------------------------------------------------------------
# load generator

class Hammer:
    """Threads sending GETs in a loop until stopped (bounded by max_seconds)."""

    def __init__(self, harness, path="/healthz", threads=4, max_seconds=60.0, timeout=10.0):
        self.h = harness
        self.path = path
        self.n = threads
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def _run(self):
        end = time.monotonic() + self.max_seconds
        while not self.stop_ev.is_set() and time.monotonic() < end:
            try:
                r = self.h.http("GET", self.path, timeout=self.timeout)
                good = r.status == 200
                why = f"{r.status} {r.text[:120]}"
            except Exception as e:  # noqa: BLE001
                good, why = False, repr(e)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failures.append(why)

    def __enter__(self):
        for _ in range(self.n):
            th = threading.Thread(target=self._run, daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(self.timeout + 2)

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------------------
# the per-run harness and the per-test context

class Harness:
    def __init__(self, verbose_stream):
        self.err = verbose_stream
        base = env("BW_IT_DIR") or (os.path.join(env("BW_STACK_DIR"), "it") if env("BW_STACK_DIR")
                                    else "/tmp/bwit-harness")
        self.run_dir = os.path.join(base, time.strftime("%H%M%S") + f"-{os.getpid()}")
        os.makedirs(self.run_dir, exist_ok=True)
        self.counter = 0
        self.shared = None  # Bulwark on the stack socket reused across tests of one file
        self.shared_key = None
        self.shared_all = []  # every shared instance of the current file
        self.stack_instance = None  # whichever instance holds the stack socket now
        self.verbose = env("BW_IT_VERBOSE") not in (None, "0")
        self.all_instances = []
        self.notes = []
        self.bin = env("BW_BULWARK_BIN")
        self.url = env("BW_URL")

    def note(self, msg):
        """Diagnostics: streamed with BW_IT_VERBOSE=1, else kept per test and
        printed (to stderr) only when the test fails."""
        line = f"  # {msg}"
        if self.verbose:
            print(line, file=self.err, flush=True)
        else:
            self.notes.append(line)

    def say(self, msg):
        print(f"# {msg}", file=self.err, flush=True)

    def take_notes(self):
        n, self.notes = self.notes, []
        return n

    def new_dir(self, name):
        self.counter += 1
        d = os.path.join(self.run_dir, f"{self.counter:02d}-{name}")
        os.makedirs(d, exist_ok=True)
        return d

    def require_bin(self):
        if not self.bin:
            raise Skip("BW_BULWARK_BIN is not set")
        if not os.access(self.bin, os.X_OK):
            raise Skip(f"BW_BULWARK_BIN={self.bin} is not an executable file")
        return self.bin

    def require_stack(self):
        missing = [v for v in ("BW_URL", "BW_STACK_DIR", "BULWARK_LISTEN", "BULWARK_STATUS_LISTEN")
                   if not env(v)]
        if missing:
            raise Skip(f"no stack: {', '.join(missing)} not set (source DIR/stack.env)")

    def http(self, method, path, body=None, headers=None, timeout=10.0, source=None):
        if not self.url:
            raise Skip("BW_URL is not set")
        return http_request(self.url, method, path, body, headers, timeout, source)

    def base_config(self, name):
        """Settings every harness-started daemon gets (tests override them)."""
        d = self.new_dir(name + "-logs")
        return {
            "listen": env("BULWARK_LISTEN"),
            "status_listen": env("BULWARK_STATUS_LISTEN"),
            "postgres": env("BULWARK_POSTGRES"),
            "postgres_owner": env("BULWARK_POSTGRES_OWNER"),
            "schema_dir": env("BULWARK_SCHEMA_DIR"),
            "redis": env("BULWARK_REDIS"),
            "redis_cache": env("BULWARK_REDIS_CACHE"),
            "mongo": env("BULWARK_MONGO"),
            "workers": 4,
            "drain_timeout_ms": 5000,
            "log_level": "info",
            "access_log": True,
            "log_file": os.path.join(d, "bulwark.log"),
        }

    def kill_leftovers(self):
        """Last resort at exit: no daemon of this run may outlive it."""
        for b in self.all_instances:
            if b.proc is not None and group_members(b.proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(b.proc.pid, signal.SIGKILL)

    def stop_stack_instance(self, reason=""):
        b = self.stack_instance
        if b is not None and not b.stopped:
            self.note(f"stopping {b.name} {reason}")
            b.stop()
        self.stack_instance = None
        if self.shared is b:
            self.shared, self.shared_key = None, None
        return b

    def stack(self, action, service, timeout=90):
        self.require_stack()
        if not STACK_SH.exists():
            raise Skip(f"{STACK_SH} does not exist")
        cmd = [str(STACK_SH), env("BW_STACK_DIR"), env("BW_STACK_PORT_BASE", ""), action, service]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        self.note(f"stack.sh {action} {service} -> {r.returncode}")
        if r.returncode != 0:
            raise Failure(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout)[-400:]}")
        return r


# The environment the CLI gets from the harness's (stack.env, dev/test).
STORE_ENV = ("BULWARK_POSTGRES", "BULWARK_POSTGRES_OWNER", "BULWARK_REDIS", "BULWARK_REDIS_CACHE",
             "BULWARK_MONGO", "BULWARK_SCHEMA_DIR")


class ApiKey:
    """What `tenant create` / `key create` printed."""

    def __init__(self, d):
        self.tenant_id = d["tenant_id"]
        self.key_id = d["key_id"]
        self.api_key = d["api_key"]
        prefix = f"bk_{self.key_id}_"
        self.secret = self.api_key[len(prefix):] if self.api_key.startswith(prefix) else None

    def auth(self):
        return {"Authorization": "Bearer " + self.api_key}

    def __repr__(self):
        return f"<key {self.key_id} of {self.tenant_id}>"


class Context:
    """What a test function receives."""

    def __init__(self, harness, name):
        self.h = harness
        self.name = name
        self.instances = []  # all instances this test touched
        self.private = []  # instances to stop at the end of the test
        self.cleanups = []
        self._tmp = None

    # -- assertions ----------------------------------------------------------
    @staticmethod
    def check(cond, msg):
        if not cond:
            raise Failure(msg)

    @staticmethod
    def eq(got, want, what):
        if got != want:
            raise Failure(f"{what}: got {got!r}, want {want!r}")

    @staticmethod
    def fail(msg):
        raise Failure(msg)

    @staticmethod
    def skip(msg):
        raise Skip(msg)

    wait_until = staticmethod(wait_until)

    # -- environment -----------------------------------------------------------
    def tmpdir(self):
        """A short private directory (unix socket paths must stay < 108 bytes)."""
        if self._tmp is None:
            self._tmp = short_tmp_dir(f"/tmp/bwt{os.getpid()}-{self.h.counter + 1}")
            self.h.counter += 1
            self.cleanups.append(lambda: subprocess.run(["rm", "-rf", self._tmp], check=False))
        return self._tmp

    def defer(self, fn):
        self.cleanups.append(fn)

    def http(self, method, path, body=None, headers=None, timeout=10.0, source=None):
        return self.h.http(method, path, body, headers, timeout, source)

    def get(self, path, headers=None, timeout=10.0, source=None):
        return self.h.http("GET", path, None, headers, timeout, source)

    def redis(self, role="redis"):
        """A RESP client to the stack's Redis (role "redis" or "redis_cache"),
        closed at the end of the test."""
        addr = env("BULWARK_REDIS" if role == "redis" else "BULWARK_REDIS_CACHE")
        if not addr:
            raise Skip(f"no stack: BULWARK_{role.upper()} is not set")
        c = RedisClient(addr)
        self.cleanups.append(c.close)
        return c

    def stack(self, action, service):
        return self.h.stack(action, service)

    def hammer(self, path="/healthz", threads=4, max_seconds=60.0):
        return Hammer(self.h, path, threads, max_seconds)

    # -- API keys (the tenant / key commands) ----------------------------------
    def cli(self, args, env_extra=None, timeout=20):
        """Runs `bulwark ARGS` with the stack's stores in its environment
        (BULWARK_POSTGRES, BULWARK_POSTGRES_OWNER, BULWARK_REDIS, ...)."""
        e = {k: v for k, v in os.environ.items() if k in STORE_ENV}
        e.update(env_extra or {})
        return self.run_bin(list(args), env_extra=e, timeout=timeout)

    def new_tenant(self, name=None, rate=None, burst=None):
        """`tenant create`: returns ApiKey (the tenant's first key)."""
        args = ["tenant", "create", name or f"it-{self.name}-{os.urandom(3).hex()}"]
        if rate is not None:
            args += ["--rate", str(rate)]
        if burst is not None:
            args += ["--burst", str(burst)]
        return self._key_cmd(args)

    def new_key(self, tenant_id, rate=None, burst=None, scopes=None):
        """`key create`: returns ApiKey."""
        args = ["key", "create", "--tenant", tenant_id]
        if scopes is not None:
            args += ["--scopes", scopes]
        if rate is not None:
            args += ["--rate", str(rate)]
        if burst is not None:
            args += ["--burst", str(burst)]
        return self._key_cmd(args)

    def _key_cmd(self, args):
        r = self.cli(args)
        if r.returncode != 0:
            raise Failure(f"bulwark {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-400:]}")
        try:
            return ApiKey(json.loads(r.stdout))
        except (ValueError, KeyError) as e:
            raise Failure(f"bulwark {' '.join(args)}: unexpected output {r.stdout!r} ({e})") from None

    def notify_socket(self):
        ns = NotifySocket(os.path.join(self.tmpdir(), "notify.sock"))
        self.cleanups.append(ns.close)
        return ns

    # -- daemons ---------------------------------------------------------------
    def bulwark(self, shared=False, env_overrides=None, via_env=False, extra_env=None,
                own_sockets=False, wait=None, start_timeout=20.0, launcher=None, **settings):
        """Starts a daemon with base_config() + settings (None removes a key).

        shared=True: reuse the running instance if an earlier test of the
        same file asked for the same settings.  own_sockets=True: listen and
        status_listen in a private tmp dir, no nginx (waits through FastCGI)."""
        self.h.require_bin()
        if not own_sockets:
            self.h.require_stack()
        key = None
        if shared:
            key = (self.name_module(), tuple(sorted((k, repr(v)) for k, v in settings.items())),
                   tuple(sorted((env_overrides or {}).items())), via_env)
            sh = self.h.shared
            if sh is not None and self.h.shared_key == key and not sh.stopped and sh.proc.poll() is None:
                if self.name not in sh.users:
                    sh.users.append(self.name)
                self.instances.append(sh)
                return sh
        cfg = self.h.base_config(self.name)
        if own_sockets:
            d = self.tmpdir()
            cfg["listen"] = os.path.join(d, f"fcgi{len(self.instances)}.sock")
            cfg["status_listen"] = os.path.join(d, f"status{len(self.instances)}.sock")
        for k, v in settings.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        if wait is None:
            wait = "fcgi" if own_sockets else "nginx"
        if not own_sockets:
            self.h.stop_stack_instance("(another configuration needed)")
        b = Bulwark(self.h, self.name, cfg, env_overrides=env_overrides, via_env=via_env,
                    wait=wait, extra_env=extra_env, start_timeout=start_timeout, launcher=launcher)
        b.users.append(self.name)
        self.instances.append(b)
        if not own_sockets:
            self.h.stack_instance = b
        if shared:
            self.h.shared, self.h.shared_key = b, key
            self.h.shared_all.append(b)
        else:
            self.private.append(b)
        b.start()
        return b

    def name_module(self):
        return getattr(self, "module", "")

    def run_bin(self, args, env_extra=None, timeout=20, cwd=None, keep_bulwark_env=False):
        """Runs the binary to completion in its own process group; returns
        CompletedProcess (text).  Fails the test if it does not exit within
        timeout (the whole group is killed) or a sanitizer reported."""
        bin_ = self.h.require_bin()
        d = cwd or self.tmpdir()
        e = dict(os.environ) if keep_bulwark_env else clean_env()
        e.update(sanitizer_env(os.path.join(d, "san-run")))
        if env_extra:
            e.update({k: str(v) for k, v in env_extra.items()})
        p = subprocess.Popen([bin_] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e, cwd=d, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise Failure(f"bulwark {' '.join(args)} did not exit within {timeout}s") from None
        finally:
            if group_members(p.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        r = subprocess.CompletedProcess([bin_] + list(args), p.returncode, out, err)
        # sanitizer reports of short runs are checked here too
        for n in os.listdir(d):
            if n.startswith("san-run."):
                with open(os.path.join(d, n), errors="replace") as f:
                    txt = f.read()
                os.rename(os.path.join(d, n), os.path.join(d, "seen-" + n))
                if SANITIZER_PATTERNS.search(txt):
                    raise Failure(f"sanitizer report running {args}: {txt.strip()[:400]}")
        if SANITIZER_PATTERNS.search(r.stderr):
            raise Failure(f"sanitizer report running {args}: {r.stderr.strip()[:400]}")
        return r

    # -- end of test -----------------------------------------------------------
    def finish(self, failed):
        """Stops private instances, runs cleanups; returns problems."""
        problems = []
        for b in self.private:
            if not b.stopped:
                problems.extend(b.stop())
            else:
                problems.extend(b.problems)
            if self.h.stack_instance is b:
                self.h.stack_instance = None
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                problems.append(f"cleanup failed: {e!r}")
        if failed and self.h.shared is not None and self.h.shared in self.instances:
            # a failed test may have left the shared daemon in a bad state
            self.h.stop_stack_instance("(test failed)")
        return problems

"""The listening socket: created with mode 0660, a live socket is never
replaced, a stale one is, listen_backlog is what /status reports."""

import os
import signal
import socket
import stat
import struct
import threading
import time

from clients import FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN, fcgi_nv, fcgi_record, fcgi_request, metric_sum
from procs import pid_alive


def test_refuse_live_socket(t):
    d = t.tmpdir()
    path = os.path.join(d, "live.sock")
    status = os.path.join(d, "st.sock")
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(8)
    ino = os.stat(path).st_ino
    try:
        r = t.run_bin(["serve"], env_extra={"BULWARK_LISTEN": path, "BULWARK_STATUS_LISTEN": status,
                                            "BULWARK_WORKERS": "1"}, timeout=15)
        t.eq(r.returncode, 1, f"exit status with a live socket at listen ({r.stderr.strip()[:300]!r})")
        t.check("in use" in r.stderr, f"message should say the socket is in use: {r.stderr.strip()[:300]!r}")
        t.check(path in r.stderr, f"message should name the socket: {r.stderr.strip()[:300]!r}")
        t.check(os.path.exists(path), f"the refused daemon deleted the live socket {path} of another server")
        t.eq(os.stat(path).st_ino, ino, "the live socket file was replaced")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect(path)
        other.settimeout(2)
        conn, _ = other.accept()  # still ours
        conn.close()
        c.close()
    finally:
        other.close()
    # the file is now stale (nobody listens): bulwark replaces it
    t.check(os.path.exists(path), "stale socket file vanished")
    b = t.bulwark(own_sockets=True, listen=path, status_listen=status, workers=1)
    st = os.stat(path)
    t.check(stat.S_ISSOCK(st.st_mode), "listen path is not a socket")
    t.eq(oct(stat.S_IMODE(st.st_mode)), oct(0o660), "mode of the created socket")
    r = fcgi_request(path, "GET", "/healthz")
    t.eq(r.status, 200, "healthz through the replaced socket")
    # a second daemon on the same socket is refused while the first runs
    r = t.run_bin(["serve"], env_extra={"BULWARK_LISTEN": path, "BULWARK_STATUS_LISTEN": status + "2",
                                        "BULWARK_WORKERS": "1"}, timeout=15)
    t.eq(r.returncode, 1, f"a second daemon on a live bulwark socket ({r.stderr.strip()[:300]!r})")
    r = fcgi_request(path, "GET", "/healthz")
    t.eq(r.status, 200, "the first daemon still serves after the second was refused")
    t.check(b.proc.poll() is None, "the first daemon died")
    # the same for the status socket
    r = t.run_bin(["serve"], env_extra={"BULWARK_LISTEN": path + "2", "BULWARK_STATUS_LISTEN": status,
                                        "BULWARK_WORKERS": "1"}, timeout=15)
    t.eq(r.returncode, 1, f"a second daemon on a live status socket ({r.stderr.strip()[:300]!r})")
    t.check("in use" in r.stderr, f"status socket in use: {r.stderr.strip()[:300]!r}")
    t.check(not os.path.exists(path + "2"), "the refused daemon left its own listen socket behind")
    t.eq(b.status()["pid"], b.pid, "the first daemon's status socket after the second was refused")


def test_stack_socket_mode(t):
    b = t.bulwark(shared=True, workers=2)
    st = os.stat(b.listen)
    t.check(stat.S_ISSOCK(st.st_mode), f"{b.listen} is not a socket")
    t.eq(oct(stat.S_IMODE(st.st_mode)), oct(0o660), f"mode of {b.listen}")


def test_listen_backlog_reported(t):
    b = t.bulwark(own_sockets=True, workers=1, listen_backlog=64)
    st = b.status()
    t.eq(st["listen_queue"]["backlog"], 64, "listen_queue.backlog with listen_backlog = 64")


def test_stale_queued_requests(t):
    """Requests whose client hung up while queued do not cost a worker
    their full run: after a burst of abandoned slow requests, a fresh
    request is served within a reasonable time (8.9 #2)."""
    b = t.bulwark(own_sockets=True, workers=1)
    path = b.listen
    # occupy the only worker for 1 s through FastCGI directly
    res = {}
    th = threading.Thread(target=lambda: res.setdefault("r", fcgi_request(path, "GET", "/test/sleep?ms=1000")),
                          daemon=True)
    th.start()
    t.wait_until(lambda: b.status()["workers"]["busy"] == 1, 3.0, 0.02, "worker busy")
    # queue 5 slow requests and hang up on them
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        p = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/test/sleep?ms=1000", "DOCUMENT_URI": "/test/sleep",
             "SCRIPT_NAME": "/test/sleep", "QUERY_STRING": "ms=1000"}
        s.sendall(fcgi_record(FCGI_BEGIN_REQUEST, 1, struct.pack("!HB5x", 1, 0))
                  + fcgi_record(FCGI_PARAMS, 1, b"".join(fcgi_nv(k, v) for k, v in p.items()))
                  + fcgi_record(FCGI_PARAMS, 1) + fcgi_record(FCGI_STDIN, 1))
        s.close()
    t0 = time.monotonic()
    r = fcgi_request(path, "GET", "/healthz", timeout=15)
    took = time.monotonic() - t0
    th.join(5)
    t.eq(r.status, 200, "fresh request after abandoned ones")
    t.check(res.get("r") is not None and res["r"].status == 200, "the request holding the worker failed")
    t.check(took < t.scaled(3.0, cap=5.0),  # not skipped, the 5 abandoned requests would take 5 s
            f"fresh request waited {took:.2f}s behind 5 abandoned 1 s requests (stale requests not skipped)")
    skipped = metric_sum(b.metrics(), "bulwark_stale_requests_skipped_total")
    t.check(skipped >= 3, f"bulwark_stale_requests_skipped_total = {skipped} after 5 abandoned requests")


def test_close_without_linger(t):
    """A worker that has read all nginx sent closes at once instead of
    waiting for nginx to close first (libfcgi's lingering close): with one
    worker and a client that keeps its end open after the response, the
    next request is served without waiting out fcgi_close_timeout_ms."""
    b = t.bulwark(own_sockets=True, workers=1, fcgi_close_timeout_ms=2000)
    path = b.listen
    for method, uri, body in (("GET", "/healthz", b""), ("POST", "/v1/whoami", b'{"x":1}')):
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.settimeout(10)
        holder.connect(path)
        p = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "DOCUMENT_URI": uri, "SCRIPT_NAME": uri,
             "QUERY_STRING": "", "CONTENT_LENGTH": str(len(body)) if body else "",
             "CONTENT_TYPE": "application/json" if body else ""}
        holder.sendall(fcgi_record(FCGI_BEGIN_REQUEST, 1, struct.pack("!HB5x", 1, 0))
                       + fcgi_record(FCGI_PARAMS, 1, b"".join(fcgi_nv(k, v) for k, v in p.items()))
                       + fcgi_record(FCGI_PARAMS, 1)
                       + (fcgi_record(FCGI_STDIN, 1, body) if body else b"")
                       + fcgi_record(FCGI_STDIN, 1))
        got = b""
        while True:  # the whole response, then EOF: the worker closed its end
            c = holder.recv(65536)
            if not c:
                break
            got += c
        t.check(b"Status: " in got, f"{method} {uri}: no response on the held connection: {got[:120]!r}")
        t0 = time.monotonic()
        r = fcgi_request(path, "GET", "/healthz", timeout=10)
        took = time.monotonic() - t0
        holder.close()
        t.eq(r.status, 200, f"the request after {method} {uri}")
        t.check(took < t.scaled(1.0, cap=2.0),
                f"after {method} {uri} the only worker took {took:.2f}s to take the next request "
                f"while the previous client kept its end open (lingering close, 2 s)")


def _syscall(pid):
    """The number of the system call pid is blocked in, or None."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split()
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


POLL_SYSCALLS = (7, 271)  # poll, ppoll on x86_64: libfcgi waiting for a request's first bytes


def test_stop_while_accepting_serves_the_request(t):
    """A stop that reaches a worker inside libfcgi's accept, after accept(2)
    and before the request's first bytes (its "keeper" poll), neither drops
    the connection nor leaves the worker spinning: the worker serves that
    request, then exits. (A reload under load sends exactly such stops.)"""
    if os.uname().machine != "x86_64":
        t.skip("reads /proc/PID/syscall numbers of x86_64")
    b = t.bulwark(own_sockets=True, workers=1, fcgi_keeper_timeout_ms=2000)
    pid = b.worker_pids(b.wait_workers())[0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b.listen)
    t.wait_until(lambda: _syscall(pid) in POLL_SYSCALLS, 3.0, 0.005,
                 "the worker waiting in poll for the connection's first bytes")
    os.kill(pid, signal.SIGTERM)
    r = fcgi_request(b.listen, "GET", "/healthz", connected_sock=s, timeout=10)
    t.eq(r.status, 200, "the request whose connection the worker had accepted when it was stopped")
    t.wait_until(lambda: not pid_alive(pid), 5.0, 0.02, f"worker {pid} exits after serving it")

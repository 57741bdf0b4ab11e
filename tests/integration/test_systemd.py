"""systemd: the units verify, socket activation (LISTEN_FDS) with sd_notify
READY/STATUS/STOPPING, watchdog pings, RELOADING around a reload, and the
blocking ExecReload helper."""

import os
import re
import shutil
import signal
import subprocess
import time

from clients import fcgi_request
from daemon import render_config
from harness import REPO
from procs import group_members

UNITS = REPO / "systemd"
NOTIFY_PASS = ("BULWARK_", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "NOTIFY_SOCKET", "WATCHDOG_")


def _parse_unit(path):
    """{(section, key): [values]} (systemd allows repeated keys)."""
    out, sec = {}, None
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if not ln or ln[0] in "#;":
                continue
            if ln.startswith("["):
                sec = ln.strip("[]")
                continue
            k, _, v = ln.partition("=")
            out.setdefault((sec, k.strip()), []).append(v.strip())
    return out


def _one(t, unit, sec, key):
    v = unit.get((sec, key))
    t.check(v, f"[{sec}] {key}= missing")
    return v[-1]


def test_units_verify(t):
    if not shutil.which("systemd-analyze"):
        t.skip("systemd-analyze not installed")
    d = t.tmpdir()
    exe = t.h.bin if t.h.bin and os.access(t.h.bin, os.X_OK) else "/bin/sleep"
    with open(UNITS / "bulwark.service") as f:
        svc = f.read()
    svc = svc.replace("/usr/bin/bulwark", exe).replace("/usr/libexec/bulwark/bulwark-reload",
                                                       str(UNITS / "bulwark-reload"))
    with open(os.path.join(d, "bulwark.service"), "w") as f:
        f.write(svc)
    shutil.copy(UNITS / "bulwark.socket", d)
    r = subprocess.run(["systemd-analyze", "verify", "./bulwark.service", "./bulwark.socket"],
                       capture_output=True, text=True, cwd=d, timeout=60)
    # verify exits 0 on unknown keys and bad values; any line it prints is a finding
    benign = re.compile(r"bulwark'?\b.*(unknown user|Failed to resolve user)|/usr/bin/bulwark", re.I)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip() and not benign.search(ln)]
    t.check(r.returncode == 0 and not lines, f"systemd-analyze verify ({r.returncode}): {lines[:6]}")
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", "./bulwark.service"],
                       capture_output=True, text=True, cwd=d, timeout=60)
    m = re.search(r"Overall exposure level for bulwark\.service: ([0-9.]+)", r.stdout + r.stderr)
    if m:  # --offline needs systemd >= 252
        t.check(float(m.group(1)) <= 2.5, f"systemd-analyze security exposure {m.group(1)} > 2.5")
    # the contract's settings
    s = _parse_unit(UNITS / "bulwark.service")
    want = {"Type": "notify", "NotifyAccess": "main", "KillMode": "mixed", "KillSignal": "SIGTERM",
            "Restart": "on-failure", "OOMPolicy": "continue", "User": "bulwark", "Group": "www-data",
            "RuntimeDirectory": "bulwark", "UMask": "0007", "NoNewPrivileges": "yes",
            "ProtectSystem": "strict", "MemoryDenyWriteExecute": "yes",
            "SystemCallFilter": "@system-service",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK"}
    for k, v in want.items():
        t.eq(_one(t, s, "Service", k), v, f"bulwark.service {k}")
    t.check(_one(t, s, "Service", "ExecStart").startswith("/usr/bin/bulwark serve -c "), "ExecStart")
    t.check("$MAINPID" in _one(t, s, "Service", "ExecReload"), "ExecReload must get $MAINPID")
    t.check("bulwark.socket" in _one(t, s, "Unit", "Requires"), "Requires=bulwark.socket")
    t.check("bulwark.socket" in _one(t, s, "Unit", "After"), "After=bulwark.socket")
    stop = int(_one(t, s, "Service", "TimeoutStopSec"))
    t.check(stop > 30 + 5, f"TimeoutStopSec={stop} must exceed drain_timeout_ms (30 s) with a margin")
    sock = _parse_unit(UNITS / "bulwark.socket")
    want = {"ListenStream": "/run/bulwark/fcgi.sock", "SocketMode": "0660", "SocketUser": "bulwark",
            "SocketGroup": "www-data", "Backlog": "511", "FileDescriptorName": "fcgi"}
    for k, v in want.items():
        t.eq(_one(t, sock, "Socket", k), v, f"bulwark.socket {k}")


def test_tmpfiles_and_sysusers(t):
    if not shutil.which("systemd-tmpfiles") or not shutil.which("systemd-sysusers"):
        t.skip("systemd-tmpfiles/systemd-sysusers not installed")
    root = t.tmpdir() + "/root"
    os.makedirs(root + "/etc")
    with open(root + "/etc/group", "w") as f:
        f.write("www-data:x:33:\n")
    with open(root + "/etc/passwd", "w") as f:
        f.write("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
    with open(UNITS / "bulwark.sysusers") as f:
        r = subprocess.run(["systemd-sysusers", f"--root={root}", "-"], stdin=f, capture_output=True,
                           text=True, timeout=30)
    t.eq(r.returncode, 0, f"systemd-sysusers: {r.stderr.strip()[:300]}")
    with open(root + "/etc/passwd") as f:
        pw = [ln.split(":") for ln in f if ln.startswith("bulwark:")]
    t.check(pw, "sysusers did not create user bulwark")
    uid = int(pw[0][2])
    with open(UNITS / "bulwark.tmpfiles") as f:
        r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", "-"], stdin=f,
                           capture_output=True, text=True, timeout=30)
    t.eq(r.returncode, 0, f"systemd-tmpfiles: {r.stderr.strip()[:300]}")
    st = os.stat(root + "/run/bulwark")
    t.eq(oct(st.st_mode & 0o7777), oct(0o750), "/run/bulwark mode")
    t.eq((st.st_uid, st.st_gid), (uid, 33), "/run/bulwark owner (bulwark:www-data)")


def _senders(t, ns, pid):
    others = {p for _t, p, _kv in ns.snapshot() if p != pid}
    t.check(not others, f"sd_notify messages from pids {others}, not only the master {pid} (NotifyAccess=main)")


def test_socket_activation(t):
    if not shutil.which("systemd-socket-activate"):
        t.skip("systemd-socket-activate not installed")
    d = t.tmpdir()
    sock = os.path.join(d, "act.sock")
    ns = t.notify_socket()

    def launcher(envd, argv):
        flags = [f"-E{k}={v}" for k, v in envd.items() if k.startswith(NOTIFY_PASS) or k == "PATH"]
        return ["systemd-socket-activate", "-l", sock, "--fdname=fcgi"] + flags + argv

    b = t.bulwark(own_sockets=True, wait="none", launcher=launcher, workers=2, listen=sock,
                  log_file=None, extra_env={"NOTIFY_SOCKET": ns.path})
    t.wait_until(lambda: os.path.exists(sock), 5.0, 0.02, f"systemd-socket-activate to create {sock}")
    ino = os.stat(sock).st_ino
    # the first connection makes systemd-socket-activate exec bulwark with LISTEN_FDS=1
    r = fcgi_request(sock, "GET", "/healthz", timeout=30)
    t.eq(r.status, 200, f"FastCGI GET /healthz on the activated socket ({r.text[:200]!r})")
    t.eq(r.json(), {"status": "ok"}, "healthz body")
    _i, (_tm, pid, _kv) = ns.wait_for("READY", "1", timeout=15)
    t.eq(pid, b.pid, "READY=1 sender (the exec'd master keeps the pid)")
    t.check(any("STATUS" in kv for _tm, _p, kv in ns.snapshot()), "no STATUS= sent")
    for _ in range(5):
        r = fcgi_request(sock, "GET", "/healthz", timeout=10)
        t.eq(r.status, 200, "more requests on the inherited socket")
    t.eq(os.stat(sock).st_ino, ino, "the inherited socket file was replaced (LISTEN_FDS ignored?)")
    st = b.status()
    t.eq(st["pid"], b.pid, "/status pid")
    t.eq(st["workers"]["total"], 2, "workers on the inherited socket")
    b.signal(signal.SIGTERM)
    ns.wait_for("STOPPING", "1", timeout=5, after=0)
    rc = b.wait_exit(b.drain_timeout() + 5)
    t.check(rc is not None, "activated master did not exit after SIGTERM")
    b.finish(expect_code=0)
    t.check(not b.problems, "; ".join(b.problems))
    _senders(t, ns, b.pid)


def test_notify_watchdog_reload_stop(t):
    ns = t.notify_socket()
    b = t.bulwark(own_sockets=True, workers=2,
                  extra_env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"})
    _i, (_tm, pid, _kv) = ns.wait_for("READY", "1", timeout=5)
    t.eq(pid, b.pid, "READY=1 sender")
    t0 = time.monotonic()
    time.sleep(2.2)  # the input: the window in which the pings are counted
    pings = [tm for tm, _p, kv in ns.snapshot() if kv.get("WATCHDOG") == "1" and tm >= t0]
    t.check(len(pings) >= 4, f"{len(pings)} WATCHDOG=1 in 2.2 s with WATCHDOG_USEC=1000000 (want every <= 0.5 s)")
    gen0 = b.status()["generation"]
    mark = len(ns.snapshot())
    b.signal(signal.SIGHUP)
    i, _m = ns.wait_for("RELOADING", "1", timeout=5, after=mark)
    ns.wait_for("READY", "1", timeout=15, after=i + 1)
    st = b.status()
    t.eq(st["generation"], gen0 + 1, "generation when READY=1 follows RELOADING=1")
    t.eq(st["state"], "running", "state when READY=1 follows RELOADING=1")
    mark = len(ns.snapshot())
    b.stop()
    ns.wait_for("STOPPING", "1", timeout=2, after=mark)
    _senders(t, ns, b.pid)


def _run_reload(t, b, env=None, timeout=40):
    e = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    e.update(env or {})
    t0 = time.monotonic()
    r = subprocess.run(["sh", str(UNITS / "bulwark-reload"), str(b.pid), b.conf_path],
                       capture_output=True, text=True, env=e, timeout=timeout)
    return r, time.monotonic() - t0


def test_execreload_helper_blocks(t):
    if not shutil.which("curl"):
        t.skip("curl not installed (bulwark-reload's status mode)")
    b = t.bulwark(own_sockets=True, workers=2)
    st0 = b.wait_workers()
    gen0, pids0 = st0["generation"], set(b.worker_pids(st0))
    # status_listen comes from the config file
    r, took = _run_reload(t, b)
    t.eq(r.returncode, 0, f"bulwark-reload exit status ({r.stderr.strip()[:300]!r})")
    st = b.status()
    t.eq(st["generation"], gen0 + 1, "generation right after bulwark-reload returned")
    t.eq(st["state"], "running", "state right after bulwark-reload returned")
    procs = [p for p in st["processes"] if p.get("pid")]
    t.check(all(p["generation"] == gen0 + 1 for p in procs), f"old-generation workers left: {procs}")
    t.check(not (pids0 & set(b.worker_pids(st))), "old workers still there when bulwark-reload returned")
    # a broken config: the master refuses, the helper says so
    good = dict(b.cfg)
    b.write_config(raw=render_config(dict(good, log_level="loud")))
    r, took = _run_reload(t, b, timeout=30)
    t.eq(r.returncode, 1, f"bulwark-reload with a broken config ({r.stderr.strip()[:300]!r})")
    t.check(took < t.scaled(10), f"bulwark-reload took {took:.1f}s to report a refused reload")
    t.eq(b.status()["generation"], gen0 + 1, "generation after a refused reload")
    # without curl: waits for the old workers to go
    b.write_config(good)
    pids1 = set(b.worker_pids())
    r, took = _run_reload(t, b, env={"BULWARK_RELOAD_NO_CURL": "1"})
    t.eq(r.returncode, 0, f"bulwark-reload (no curl) exit status ({r.stderr.strip()[:300]!r})")
    left = [p for p in pids1 if os.path.exists(f"/proc/{p}") and p in group_members(b.pid)]
    t.check(not left, f"old workers {left} alive when bulwark-reload (no curl) returned")
    t.eq(b.status()["generation"], gen0 + 2, "generation after the no-curl reload")

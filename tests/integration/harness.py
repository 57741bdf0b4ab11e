"""Library of the integration harness (run.py is the runner).

Python 3.11, standard library only.  Everything a test needs is reached
through the context object `t` that the runner passes to each test_*
function (the daemon process is in daemon.py, the wire clients in clients.py,
the /proc helpers in procs.py; Failure, Skip, wait_until and scaled in
base.py):

    def test_something(t):
        b = t.bulwark(workers=2)            # start (or reuse) a daemon
        r = t.get("/healthz")               # HTTP through nginx
        t.eq(r.status, 200, "healthz status")
"""

import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import zlib
from pathlib import Path

from base import TIME_MULT, Failure, Skip, env, scaled, wait_until
from clients import NotifySocket, RedisClient, http_request
from daemon import SANITIZER_PATTERNS, Bulwark, clean_env, sanitizer_env
from procs import group_members

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "dev" / "lib" / "stack.sh"

ALL_HARNESSES = []  # run.py kills what they started on its way out


# ---------------------------------------------------------------------------
# small helpers

def short_tmp_dir(base):
    """AF_UNIX paths are limited to 107 bytes: keep socket dirs short."""
    os.makedirs(base, exist_ok=True)
    return base


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


# ---------------------------------------------------------------------------
# answers as a client sees them

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


def check_retry_after(t, r, what):
    """Retry-After in whole seconds, at least 1; returns it."""
    ra = r.header("Retry-After")
    t.check(ra is not None and ra.isdigit() and int(ra) >= 1, f"{what}: Retry-After {ra!r}")
    return int(ra)


def check_401(t, r, what):
    """An unauthorized problem with WWW-Authenticate: Bearer realm="bulwark"
    and no rate-limit headers (nothing was counted against a key)."""
    p = check_problem(t, r, 401, "unauthorized", what)
    wa = r.header("WWW-Authenticate")
    t.check(wa is not None and re.match(r'Bearer(\s|$)', wa) and 'realm="bulwark"' in wa,
            f"{what}: WWW-Authenticate {wa!r}, want Bearer realm=\"bulwark\"")
    t.check(r.header("RateLimit") is None and r.header("RateLimit-Policy") is None,
            f"{what}: rate-limit headers on an unauthenticated answer")
    return p


def check_429(t, r, policy, what):
    """A rate_limited problem naming the violated policy, with
    retry_after_ms and Retry-After = retry_after_ms rounded up to seconds;
    returns (problem, Retry-After)."""
    p = check_problem(t, r, 429, "rate_limited", what)
    t.eq(p.get("policy"), policy, f"{what}: violated policy")
    ms = p.get("retry_after_ms")
    t.check(isinstance(ms, int) and ms > 0, f"{what}: retry_after_ms {ms!r}")
    ra = check_retry_after(t, r, what)
    t.eq(ra, max(1, math.ceil(ms / 1000)), f"{what}: Retry-After = retry_after_ms rounded up to seconds")
    return p, ra


def check_503(t, r, what):
    """A dependency_unavailable problem with Retry-After."""
    p = check_problem(t, r, 503, "dependency_unavailable", what)
    check_retry_after(t, r, what)
    return p


def fresh_ip():
    """A loopback address of its own (127.x.y.z): nginx passes it as
    REMOTE_ADDR, so the per-address bucket of one test never leaks into
    another."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def whoami(t, key=None, headers=None, source=None):
    """GET /v1/whoami with key's Authorization (and headers)."""
    h = dict(headers or {})
    if key is not None:
        h.update(key.auth())
    return t.get("/v1/whoami", headers=h, source=source)


# ---------------------------------------------------------------------------
# the stack

def service_answers(service):
    """Whether a stack service answers: PostgreSQL a query, Redis PING,
    MongoDB a connection, nginx an HTTP request."""
    if service == "pg":
        psql = os.path.join(env("BW_PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
        r = subprocess.run([psql, env("BULWARK_POSTGRES_OWNER"), "-XAtqc", "SELECT 1"], capture_output=True,
                           text=True, timeout=5)
        return r.returncode == 0 and r.stdout.strip() == "1"
    if service in ("redis", "redis_cache"):
        c = RedisClient(env("BULWARK_REDIS" if service == "redis" else "BULWARK_REDIS_CACHE"), timeout=2)
        try:
            return c.call("PING") == "PONG"
        finally:
            c.close()
    if service == "mongo":
        u = urllib.parse.urlsplit(env("BULWARK_MONGO"))
        socket.create_connection((u.hostname, u.port or 27017), 2).close()
        return True
    if service == "nginx":
        http_request(env("BW_URL"), "GET", "/healthz", timeout=2)
        return True
    raise ValueError(f"unknown service {service!r}")


# ---------------------------------------------------------------------------
# load generator

class Hammer:
    """Threads calling action() in a loop until stopped (at most max_seconds
    each), `pause` seconds between calls of one thread.  action() returns
    (ok, why) or raises (a failure); every call is kept in samples as
    (start, latency, ok, why)."""

    def __init__(self, action, threads=4, max_seconds=60.0, pause=0.0, join_timeout=12.0):
        self.action = action
        self.n = threads
        self.max_seconds = max_seconds
        self.pause = pause
        self.join_timeout = join_timeout
        self.samples = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    @property
    def ok(self):
        with self.lock:
            return sum(1 for s in self.samples if s[2])

    @property
    def failures(self):
        with self.lock:
            return [s[3] for s in self.samples if not s[2]]

    def wait_ok(self, n, timeout=10.0):
        """Waits until n calls in all have succeeded."""
        wait_until(lambda: self.ok >= n, timeout, 0.02, f"{n} successful calls of the load generator "
                   f"(failures: {self.failures[:3]})")

    def _run(self):
        end = time.monotonic() + self.max_seconds
        while not self.stop_ev.is_set() and time.monotonic() < end:
            t0 = time.monotonic()
            try:
                good, why = self.action()
            except Exception as e:  # noqa: BLE001 - kept as a failed sample
                good, why = False, repr(e)
            with self.lock:
                self.samples.append((t0, time.monotonic() - t0, good, why))
            if self.pause:
                self.stop_ev.wait(self.pause)

    def __enter__(self):
        for _ in range(self.n):
            th = threading.Thread(target=self._run, daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(self.join_timeout)

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
        self.run_id = time.strftime("%H%M%S") + f"-{os.getpid()}"
        self.run_dir = os.path.join(base, self.run_id)
        # random is seeded per test from this and the test's name (Context),
        # so one test replays alone (BW_IT_SEED=N and a filter) as in the run
        seed = env("BW_IT_SEED") or str(zlib.crc32(self.run_id.encode()))
        if not seed.isdigit():
            raise SystemExit(f"BW_IT_SEED={seed!r}: want a number (the seed a run printed)")
        self.seed = int(seed)
        self.time_mult = TIME_MULT
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


class Outage:
    """What t.outage() yields: the service and when (time.monotonic()) it
    went down and answered again."""

    def __init__(self, service):
        self.service = service
        self.down = None
        self.back = None


class Context:
    """What a test function receives."""

    def __init__(self, harness, name):
        self.h = harness
        self.name = name
        self.instances = []  # all instances this test touched
        self.private = []  # instances to stop at the end of the test
        self.cleanups = []
        self._tmp = None
        self.settings = {}  # SETTINGS of the test's file (run.py): shared_bulwark()'s
        random.seed(f"{harness.seed}:{name}")

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
    scaled = staticmethod(scaled)

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

    # -- /readyz ---------------------------------------------------------------
    def readyz(self):
        """GET /readyz, which answers 200 or 503 (anything else fails)."""
        r = self.get("/readyz", timeout=10)
        self.check(r.status in (200, 503), f"/readyz answered {r.status}: {r.text[:200]!r}")
        return r

    def wait_ready(self, dep=None, n=6, timeout=10.0):
        """Waits until n answers of /readyz in a row are 200 with dep (a
        check's name; None: just 200) up; n, so that every worker has seen
        the store again.  Returns the last answer."""
        def ready():
            for _ in range(n):
                r = self.readyz()
                if r.status != 200 or (dep is not None and r.json()["checks"][dep]["status"] != "up"):
                    return None
            return r
        return wait_until(ready, timeout, 0.1, f"/readyz 200 with {dep or 'every store'} up ({n} in a row)")

    def wait_down(self, dep, status=None, timeout=5.0):
        """Waits until /readyz reports dep down (with this HTTP status, when
        given); returns that answer."""
        def down():
            r = self.readyz()
            if r.json().get("checks", {}).get(dep, {}).get("status") == "down" and status in (None, r.status):
                return r
            return None
        return wait_until(down, timeout, 0.1, f"/readyz to report {dep} down")

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

    @contextlib.contextmanager
    def outage(self, service, how="kill"):
        """A stack service down for the body of a with block: `stack.sh
        kill` (a crash) or `stop` (graceful).  On the way out, also when
        the body failed, `stack.sh start` and a wait until the service
        answers; the yielded Outage's `back` is when it answered."""
        if how not in ("kill", "stop"):
            raise ValueError(f"outage {service}: how={how!r}, want kill or stop")
        o = Outage(service)
        self.stack(how, service)
        o.down = time.monotonic()
        # the last resort of a test stopped while it brought the service back
        self.defer(lambda: o.back is None and self.stack("start", service))
        try:
            yield o
        except BaseException:
            try:
                self._bring_back(o)
            except Exception as e:  # noqa: BLE001 - the body's failure is the one to report
                self.h.note(f"{service} did not come back after the failed test: {e}")
            raise
        self._bring_back(o)

    def _bring_back(self, o):
        self.stack("start", o.service)
        wait_until(lambda: service_answers(o.service), 10.0, 0.1, f"{o.service} to answer after stack.sh start")
        o.back = time.monotonic()

    def hammer(self, path="/healthz", threads=4, max_seconds=60.0, timeout=10.0):
        """A Hammer of GET path through nginx (ok: status 200)."""
        def get():
            r = self.h.http("GET", path, timeout=timeout)
            return r.status == 200, f"{r.status} {r.text[:120]}"
        return Hammer(get, threads, max_seconds, join_timeout=timeout + 2)

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
    def shared_bulwark(self, **over):
        """The test file's shared daemon: the file's SETTINGS (+ over)."""
        return self.bulwark(shared=True, **dict(self.settings, **over))

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

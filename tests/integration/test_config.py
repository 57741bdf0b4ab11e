"""Configuration through the binary: bad values stop start-up with exit
status 78 and one line on stderr naming the key; -t checks; env wins over
the file; `bulwark version`."""

import os
import re
import subprocess

from clients import fcgi_request

EX_CONFIG = 78

# Every key of the contract with a valid value (postgres carries '=' signs).
VALID = {
    "listen": None,  # filled per test (tmp dir)
    "listen_backlog": "511",
    "status_listen": None,
    "workers": "4",
    "max_requests": "0",
    "max_requests_jitter_pct": "10",
    "request_timeout_ms": "30000",
    "request_timeout_grace_ms": "1000",
    "drain_timeout_ms": "30000",
    "reload_timeout_ms": "30000",
    "reload_surge": "1",
    "fcgi_keeper_timeout_ms": "200",
    "fcgi_close_timeout_ms": "500",
    "postgres": "host=127.0.0.1 port=1 dbname=bulwark user=bulwark connect_timeout=1",
    "redis": "127.0.0.1:1",
    "redis_cache": "127.0.0.1:2",
    "mongo": "mongodb://127.0.0.1:3/bulwark",
    "connect_timeout_ms": "1000",
    "pg_statement_timeout_ms": "5000",
    "redis_timeout_ms": "250",
    "mongo_timeout_ms": "5000",
    "ping_timeout_ms": "500",
    "breaker_threshold": "3",
    "breaker_cooldown_ms": "250",
    "cache_ttl_s": "60",
    "body_limit": "1m",
    "log_level": "debug",
    "log_file": "",
    "access_log": "false",
}

# A value each typed key must refuse.
INVALID = {
    "listen_backlog": "many",
    "workers": "abc",
    "max_requests": "ten",
    "max_requests_jitter_pct": "x",
    "request_timeout_ms": "5 s",
    "request_timeout_grace_ms": "1s",
    "drain_timeout_ms": "soon",
    "reload_timeout_ms": "x1",
    "reload_surge": "two",
    "fcgi_keeper_timeout_ms": "fast",
    "fcgi_close_timeout_ms": "x",
    "connect_timeout_ms": "1e3",
    "pg_statement_timeout_ms": "five",
    "redis_timeout_ms": "",
    "mongo_timeout_ms": "0x",
    "ping_timeout_ms": "ping",
    "breaker_threshold": "three",
    "breaker_cooldown_ms": "cool",
    "cache_ttl_s": "60s",
    "body_limit": "10x",
    "log_level": "loud",
    "access_log": "maybe",
}


def our_lines(stderr):
    """stderr without libmongoc's own start-up notice: Debian's libmongoc
    initialises itself in a library constructor, before main, and says
    "Falling back to malloc for counters" when a shared-memory file of a
    killed process happens to carry its pid (the master removes those of
    its workers; tests also kill masters)."""
    return [ln for ln in stderr.splitlines()
            if ln.strip() and "mongoc: Falling back to malloc for counters" not in ln]


def _paths(t):
    d = t.tmpdir()
    return os.path.join(d, "fcgi.sock"), os.path.join(d, "status.sock")


def _write(t, text, name="bulwark.conf"):
    p = os.path.join(t.tmpdir(), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def _valid_text(t, **changes):
    listen, status = _paths(t)
    cfg = dict(VALID, listen=listen, status_listen=status)
    cfg.update(changes)
    lines = []
    for k, v in cfg.items():
        if v is not None:
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def _expect_bad(t, r, key, what, also=()):
    """Exit 78 and exactly one stderr line `bulwark: ...` naming key."""
    t.eq(r.returncode, EX_CONFIG, f"{what}: exit status (stderr {r.stderr.strip()[:300]!r})")
    lines = our_lines(r.stderr)
    t.eq(len(lines), 1, f"{what}: number of stderr lines ({r.stderr[:400]!r})")
    ln = lines[0]
    t.check(ln.startswith("bulwark: "), f"{what}: stderr line should start with 'bulwark: ': {ln!r}")
    t.check(re.search(r"(^|[^a-z_])" + re.escape(key) + r"([^a-z_]|$)", ln[len("bulwark: "):]),
            f"{what}: stderr line does not name {key!r}: {ln!r}")
    for a in also:
        t.check(a in ln, f"{what}: stderr line should contain {a!r}: {ln!r}")
    listen, status = _paths(t)
    t.check(not os.path.exists(listen), f"{what}: refused config but created {listen}")
    return ln


def _serve(t, conf, env=None, check=False, timeout=20):
    args = ["serve", "-c", conf] + (["-t"] if check else [])
    return t.run_bin(args, env_extra=env, timeout=timeout)


def test_config_check_ok(t):
    conf = _write(t, _valid_text(t))
    r = _serve(t, conf, check=True)
    t.eq(r.returncode, 0, f"-t exit status (stderr {r.stderr.strip()[:300]!r})")
    t.check("configuration ok" in r.stdout, f"-t should print 'configuration ok': {r.stdout!r}")
    listen, status = _paths(t)
    t.check(not os.path.exists(listen) and not os.path.exists(status),
            "-t must not create the sockets")
    # -t on a bad file: 78 and no "ok"
    bad = _write(t, _valid_text(t, workers="0"), "bad.conf")
    r = _serve(t, bad, check=True)
    _expect_bad(t, r, "workers", "-t with workers = 0")
    t.check("configuration ok" not in r.stdout, "-t printed 'configuration ok' for a bad file")


def test_config_comments_and_whitespace(t):
    listen, status = _paths(t)
    text = (f"# leading comment\n\n   # indented comment\nlisten={listen}\n"
            f"status_listen   =   {status}   \n\tworkers\t=\t2\n"
            "postgres = host=127.0.0.1 port=1 dbname=x\n\n")
    r = _serve(t, _write(t, text), check=True)
    t.eq(r.returncode, 0, f"comments/whitespace/'=' in value: exit status ({r.stderr.strip()[:300]!r})")


def test_config_env_only(t):
    listen, status = _paths(t)
    r = t.run_bin(["serve", "-t"], env_extra={"BULWARK_LISTEN": listen, "BULWARK_STATUS_LISTEN": status,
                                              "BULWARK_WORKERS": "3"})
    t.eq(r.returncode, 0, f"env-only -t exit status ({r.stderr.strip()[:300]!r})")
    r = t.run_bin(["serve", "-t"], env_extra={"BULWARK_LISTEN": listen, "BULWARK_STATUS_LISTEN": status,
                                              "BULWARK_WORKERS": "many"})
    _expect_bad(t, r, "workers", "env-only BULWARK_WORKERS=many")


def test_config_bad_int(t):
    for val in ("abc", "4x", "", "99999999999999999999999"):
        r = _serve(t, _write(t, _valid_text(t, workers=val)))
        _expect_bad(t, r, "workers", f"workers = {val!r}")
    r = _serve(t, _write(t, _valid_text(t, max_requests="99999999999999999999999")))
    _expect_bad(t, r, "max_requests", "max_requests overflowing long")


def test_config_out_of_range(t):
    r = _serve(t, _write(t, _valid_text(t, workers="0")))
    ln = _expect_bad(t, r, "workers", "workers = 0", also=['"0"'])
    t.check("256" in ln, f"range message should give the bounds: {ln!r}")
    r = _serve(t, _write(t, _valid_text(t, workers="257")))
    _expect_bad(t, r, "workers", "workers = 257", also=['"257"'])
    r = _serve(t, _write(t, _valid_text(t, workers="256")), check=True)
    t.eq(r.returncode, 0, f"workers = 256 is in range ({r.stderr.strip()[:200]!r})")
    r = _serve(t, _write(t, _valid_text(t, request_timeout_ms="-5")))
    _expect_bad(t, r, "request_timeout_ms", "request_timeout_ms = -5")


def test_config_unknown_key(t):
    text = _valid_text(t) + "wrokers = 4\n"
    r = _serve(t, _write(t, text))
    _expect_bad(t, r, "wrokers", "unknown key in file")


def test_config_bad_bool(t):
    r = _serve(t, _write(t, _valid_text(t, access_log="maybe")))
    _expect_bad(t, r, "access_log", "access_log = maybe")
    for ok in ("true", "false"):
        r = _serve(t, _write(t, _valid_text(t, access_log=ok)), check=True)
        t.eq(r.returncode, 0, f"access_log = {ok} ({r.stderr.strip()[:200]!r})")


def test_config_size_suffix(t):
    for bad in ("10x", "1mb", "k", "-1", "1.5m"):
        r = _serve(t, _write(t, _valid_text(t, body_limit=bad)))
        _expect_bad(t, r, "body_limit", f"body_limit = {bad!r}")
    for ok in ("1048576", "1m", "64k"):
        r = _serve(t, _write(t, _valid_text(t, body_limit=ok)), check=True)
        t.eq(r.returncode, 0, f"body_limit = {ok} ({r.stderr.strip()[:200]!r})")


def test_config_bad_log_level(t):
    r = _serve(t, _write(t, _valid_text(t, log_level="loud")))
    _expect_bad(t, r, "log_level", "log_level = loud")
    for ok in ("debug", "info", "warn", "error"):
        r = _serve(t, _write(t, _valid_text(t, log_level=ok)), check=True)
        t.eq(r.returncode, 0, f"log_level = {ok} ({r.stderr.strip()[:200]!r})")


def test_config_malformed_line(t):
    listen, status = _paths(t)
    text = f"listen = {listen}\nworkers 4\nstatus_listen = {status}\n"
    conf = _write(t, text)
    r = _serve(t, conf)
    t.eq(r.returncode, EX_CONFIG, f"malformed line: exit status ({r.stderr.strip()[:300]!r})")
    lines = our_lines(r.stderr)
    t.eq(len(lines), 1, f"malformed line: stderr lines ({r.stderr[:300]!r})")
    t.check(lines[0].startswith("bulwark: "), f"malformed line: {lines[0]!r}")
    t.check(re.search(r"(:2\b|line 2\b)", lines[0]),
            f"malformed line: message should give line 2: {lines[0]!r}")
    t.check("bulwark.conf" in lines[0], f"malformed line: message should name the file: {lines[0]!r}")


def test_config_missing_file(t):
    r = t.run_bin(["serve", "-c", "/nonexistent/bulwark.conf"])
    t.check(r.returncode != 0, "a missing config file must stop start-up")
    lines = our_lines(r.stderr)
    t.eq(len(lines), 1, f"missing file: stderr lines ({r.stderr[:300]!r})")
    t.check("/nonexistent/bulwark.conf" in lines[0], f"missing file: should name it: {lines[0]!r}")


def test_config_every_key_env_override(t):
    """Each typed key, set to garbage in BULWARK_<KEY> over a valid file,
    stops start-up naming that key: every key is read from the env and
    the env wins over the file."""
    conf = _write(t, _valid_text(t))
    bad = []
    for key, val in INVALID.items():
        r = _serve(t, conf, env={"BULWARK_" + key.upper(): val}, check=True)
        try:
            _expect_bad(t, r, key, f"BULWARK_{key.upper()}={val!r}")
        except AssertionError as e:
            bad.append(str(e))
    t.check(not bad, f"{len(bad)} of {len(INVALID)} keys: " + " | ".join(bad[:4]))


def test_config_every_key_in_file(t):
    """A file setting every key of the contract to a valid value is accepted,
    and each typed key set to garbage in the file is refused by name."""
    r = _serve(t, _write(t, _valid_text(t)), check=True)
    t.eq(r.returncode, 0, f"all keys valid: exit status ({r.stderr.strip()[:300]!r})")
    bad = []
    for key, val in INVALID.items():
        r = _serve(t, _write(t, _valid_text(t, **{key: val})), check=True)
        try:
            _expect_bad(t, r, key, f"file {key} = {val!r}")
        except AssertionError as e:
            bad.append(str(e))
    t.check(not bad, f"{len(bad)} of {len(INVALID)} keys: " + " | ".join(bad[:4]))


def test_config_env_wins_running(t):
    """File says workers = 2, BULWARK_WORKERS=3: the running master has 3."""
    b = t.bulwark(own_sockets=True, workers=2, env_overrides={"BULWARK_WORKERS": "3"})
    st = b.wait_workers(timeout=10)
    t.eq(st["workers_configured"], 3, "workers_configured (env must win over the file)")
    t.eq(len(b.worker_pids(st)), 3, "worker processes")


def _pkg_version(mod):
    try:
        r = subprocess.run(["pkg-config", "--modversion", mod], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except OSError:
        return None


def test_version(t):
    r = t.run_bin(["version"])
    t.eq(r.returncode, 0, f"version exit status ({r.stderr.strip()[:200]!r})")
    out = r.stdout
    t.check(re.search(r"bulwark\S*\s+v?\d+\.\d+", out), f"version should print bulwark's version: {out!r}")
    for lib, pc in (("libfcgi", "fcgi"), ("libpq", "libpq"), ("hiredis", "hiredis"),
                    ("libmongoc", "libmongoc-1.0")):
        m = re.search(re.escape(lib) + r"[^\n\d]*(\d+(?:\.\d+)+)", out, re.I)
        t.check(m, f"version should name {lib} with a version number: {out!r}")
        want = _pkg_version(pc)
        if want:
            t.eq(m.group(1).split(".")[0], want.split(".")[0], f"{lib} major version vs pkg-config {want}")


def test_env_only_daemon(t):
    """No config file at all: every setting from BULWARK_* (a container)."""
    b = t.bulwark(own_sockets=True, via_env=True, workers=3, body_limit="64k", log_file=None)
    st = b.wait_workers(timeout=10)
    t.eq(st["workers_configured"], 3, "workers_configured from BULWARK_WORKERS")
    t.check(b.proc.args[-1] == "serve", f"started with a config file: {b.proc.args}")
    r = fcgi_request(b.listen, "GET", "/healthz")
    t.eq(r.status, 200, "healthz of an env-only daemon")
    r = fcgi_request(b.listen, "POST", "/test/echo", body="x" * (64 * 1024 + 1),
                     headers={"Content-Type": "application/json"})
    t.eq(r.status, 413, "BULWARK_BODY_LIMIT=64k applies")

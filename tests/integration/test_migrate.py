"""bulwark migrate against the stack's PostgreSQL.  Every test works in its
own scratch database (created and dropped here through psql as the owner)
with its own schema directory, so the `bulwark` database the other tests
use is never touched: ordering and checksums, status, a changed applied
file, a file that fails lint, a -- bulwark:no-transaction file with CREATE
INDEX CONCURRENTLY, two concurrent runners, the lock_timeout retry while
another transaction holds a conflicting lock (readers keep flowing), and
the real schema/ with its roles and row-level security."""

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time

from base import Failure, env
from harness import REPO, Hammer

LOCK_KEY = int.from_bytes(b"bulwark", "big")  # migrate.c LOCK_KEY
_counter = [0]


def _psql_bin():
    p = os.path.join(env("BW_PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
    if os.access(p, os.X_OK):
        return p
    return shutil.which("psql") or "/usr/bin/psql"


def _conninfo(dbname, user=None, app=None):
    base = env("BULWARK_POSTGRES_OWNER")
    ci = re.sub(r"\bdbname=\S+", "", base).strip() + f" dbname={dbname}"
    if user:
        ci = re.sub(r"\buser=\S+", "", ci).strip() + f" user={user}"
    if app:
        ci += f" application_name={app}"
    return ci


def psql(conninfo, sql, timeout=30, check=True):
    """Runs sql (-c, so one implicit transaction) and returns stdout
    (unaligned, tuples only)."""
    r = subprocess.run([_psql_bin(), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                        "-c", sql], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise Failure(f"psql {sql[:80]!r}: {r.stderr.strip()[:300]}")
    return r.stdout.strip() if check else r


class Scratch:
    """A scratch database and schema directory for one test."""

    def __init__(self, t, lock_timeout_ms=2000):
        if not env("BULWARK_POSTGRES_OWNER"):
            t.skip("no BULWARK_POSTGRES_OWNER (source the stack's stack.env)")
        t.h.require_bin()
        self.t = t
        _counter[0] += 1
        self.db = f"bwmig_{os.getpid()}_{_counter[0]}"
        self.admin = _conninfo("postgres")
        self.owner = _conninfo(self.db)
        self.dir = os.path.join(t.tmpdir(), "schema")
        os.makedirs(self.dir, exist_ok=True)
        self.lock_timeout_ms = lock_timeout_ms
        self.runs = 0
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        psql(self.admin, f"CREATE DATABASE {self.db}")
        t.defer(lambda: psql(self.admin, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"))

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)
        return hashlib.sha256(text.encode()).hexdigest()

    def migrate(self, *args, timeout=60, schema_dir=None):
        """Runs `bulwark migrate ARGS` as the owner on the scratch database
        (its own working directory, so concurrent runs keep their sanitizer
        logs apart)."""
        self.runs += 1
        cwd = os.path.join(self.t.tmpdir(), f"run{self.runs}")
        os.makedirs(cwd, exist_ok=True)
        r = self.t.run_bin(["migrate"] + list(args), cwd=cwd, timeout=timeout, env_extra={
            "BULWARK_POSTGRES_OWNER": self.owner,
            "BULWARK_SCHEMA_DIR": schema_dir or self.dir,
            "BULWARK_MIGRATE_LOCK_TIMEOUT_MS": self.lock_timeout_ms,
        })
        self.t.h.note(f"migrate {' '.join(args)} -> {r.returncode}\n"
                      f"  stdout: {r.stdout.strip()!r}\n  stderr: {r.stderr.strip()!r}")
        return r

    def q(self, sql):
        return psql(self.owner, sql)

    def applied(self):
        out = self.q("SELECT name || ' ' || sha256 FROM schema_migrations ORDER BY name")
        return [tuple(x.split(" ")) for x in out.splitlines() if x]


def _lines(s):
    return [x for x in s.splitlines() if x.strip()]


def test_migrate_up_applies_in_order_and_records_checksums(t):
    s = Scratch(t)
    sums = {
        "001_a.sql": s.write("001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n"),
        "002_b.sql": s.write("002_b.sql", "-- needs 001\nALTER TABLE a ADD COLUMN b int;\n"),
        "010_c.sql": s.write("010_c.sql", "CREATE TABLE c AS SELECT id, b FROM a;\n"),
    }
    with open(os.path.join(s.dir, "README"), "w") as f:
        f.write("not a migration: ignored\n")
    r = s.migrate("up")
    t.eq(r.returncode, 0, f"migrate up exit status (stderr {r.stderr!r})")
    out = _lines(r.stdout)
    t.eq(len(out), 3, f"one line per applied file: {out}")
    for line, name in zip(out, sorted(sums)):
        t.check(re.fullmatch(rf"applied {re.escape(name)} in \d+ ms", line), f"line {line!r}")
    t.eq(r.stderr.strip(), "", "migrate up is quiet on stderr")
    t.eq(s.applied(), sorted(sums.items()), "schema_migrations (name, sha256)")
    t.eq(s.q("SELECT count(*) FROM schema_migrations WHERE duration_ms >= 0 AND applied_at <= now()"),
         "3", "duration_ms and applied_at recorded")
    r = s.migrate("up")
    t.eq((r.returncode, r.stdout.strip()), (0, "up to date"), "second migrate up")


def test_migrate_status_lists_applied_pending_changed(t):
    s = Scratch(t)
    s.write("001_a.sql", "CREATE TABLE a (id int);\n")
    r = s.migrate("status")
    t.eq((r.returncode, _lines(r.stdout)), (0, ["pending  001_a.sql"]), "status before anything")
    t.eq(s.migrate("up").returncode, 0, "migrate up")
    s.write("002_b.sql", "CREATE TABLE b (id int);\n")
    r = s.migrate("status")
    t.eq(r.returncode, 0, "status exit status")
    out = _lines(r.stdout)
    t.eq(len(out), 2, f"status lines {out}")
    t.check(re.fullmatch(r"applied  001_a\.sql  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out[0]), f"{out[0]!r}")
    t.eq(out[1], "pending  002_b.sql", "pending line")
    s.write("001_a.sql", "CREATE TABLE a (id bigint);\n")
    r = s.migrate("status")
    t.eq(r.returncode, 1, "status exits 1 when an applied file changed")
    out = _lines(r.stdout)
    t.check(out[0].startswith("changed  001_a.sql  applied ") and "SHA-256 differs" in out[0], f"{out}")
    t.eq(out[1], "pending  002_b.sql", "pending line")
    os.unlink(os.path.join(s.dir, "001_a.sql"))
    r = s.migrate("status")
    out = _lines(r.stdout)
    t.check(out[0].startswith("missing  001_a.sql  applied ") and "no such file" in out[0], f"{out}")


def test_migrate_refuses_changed_applied_file(t):
    s = Scratch(t)
    s.write("001_a.sql", "CREATE TABLE a (id int);\n")
    t.eq(s.migrate("up").returncode, 0, "first migrate up")
    s.write("001_a.sql", "CREATE TABLE a (id int); -- edited\n")
    s.write("002_b.sql", "CREATE TABLE b (id int);\n")
    r = s.migrate("up")
    t.eq(r.returncode, 1, "migrate up with a changed applied file")
    err = _lines(r.stderr)
    t.eq(len(err), 1, f"one line on stderr: {err}")
    t.check("001_a.sql" in err[0] and "changed" in err[0], f"the line names the file: {err[0]!r}")
    t.eq(r.stdout.strip(), "", "nothing applied")
    t.eq(s.q("SELECT to_regclass('b') IS NULL"), "t", "002 was not applied")
    t.eq([n for n, _ in s.applied()], ["001_a.sql"], "schema_migrations")


def test_migrate_refuses_file_failing_lint(t):
    s = Scratch(t)
    s.write("001_a.sql", "CREATE TABLE a (id int);\n")
    s.write("002_b.sql", "-- an index on a table that has rows by now\n\nCREATE INDEX a_id ON a (id);\n")
    r = s.migrate("up")
    t.eq(r.returncode, 1, "migrate up with a file failing lint")
    t.check(re.search(r"/002_b\.sql:3: CREATE INDEX .*without CONCURRENTLY", r.stderr),
            f"file:line of the problem: {r.stderr!r}")
    t.eq(r.stdout.strip(), "", "nothing applied")
    t.eq(s.q("SELECT count(*) FROM schema_migrations"), "0", "not even 001 (all or nothing up front)")
    # lint alone needs no database
    r = t.run_bin(["migrate", "lint", "--dir", s.dir], env_extra={
        "BULWARK_POSTGRES_OWNER": "host=127.0.0.1 port=1 dbname=nothing"})
    t.eq(r.returncode, 1, "migrate lint exit status")
    t.check(re.search(r"002_b\.sql:3: ", r.stderr) and "001_a" not in r.stderr, f"lint output {r.stderr!r}")
    os.unlink(os.path.join(s.dir, "002_b.sql"))
    r = t.run_bin(["migrate", "lint", "--dir", s.dir])
    t.eq((r.returncode, r.stdout, r.stderr), (0, "", ""), "clean lint is silent")


def test_migrate_no_transaction_concurrent_index(t):
    s = Scratch(t)
    s.write("001_t.sql", "CREATE TABLE t (a int);\nINSERT INTO t SELECT g FROM generate_series(1, 5000) g;\n")
    s.write("002_t_a.sql", "-- bulwark:no-transaction\n"
                           "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a);\n"
                           "CREATE UNIQUE INDEX CONCURRENTLY t_a_uq ON t (a);\n")
    r = s.migrate("up")
    t.eq(r.returncode, 0, f"migrate up (stderr {r.stderr!r})")
    t.check(r.stdout.count("applied ") == 2, f"two files applied: {r.stdout!r}")
    t.eq(s.q("SELECT string_agg(c.relname || '=' || i.indisvalid, ',' ORDER BY c.relname) FROM pg_index i "
             "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass"),
         "t_a_idx=true,t_a_uq=true", "both indexes exist and are valid")
    t.eq(s.q("SHOW lock_timeout"), "0", "lock_timeout was a session setting of migrate only")
    t.eq([n for n, _ in s.applied()], ["001_t.sql", "002_t_a.sql"], "schema_migrations")


def test_migrate_invalid_concurrent_index_stops_the_run(t):
    s = Scratch(t)
    s.write("001_t.sql", "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (1), (2);\n")
    s.write("002_t_uq.sql", "-- bulwark:no-transaction\n"
                            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a_uq ON t (a);\n")
    r = s.migrate("up")
    t.eq(r.returncode, 1, "a CREATE UNIQUE INDEX CONCURRENTLY over duplicates fails")
    t.check(re.search(r"002_t_uq\.sql:2: could not create unique index", r.stderr), f"stderr {r.stderr!r}")
    t.eq([n for n, _ in s.applied()], ["001_t.sql"], "002 not recorded")
    # It left an INVALID index behind, which IF NOT EXISTS would skip: the
    # validity check catches it.
    r = s.migrate("up")
    t.eq(r.returncode, 1, "second run over the invalid index")
    t.check("left the INVALID index t_a_uq on t" in r.stderr, f"stderr {r.stderr!r}")
    t.eq([n for n, _ in s.applied()], ["001_t.sql"], "002 still not recorded")
    s.q("DELETE FROM t WHERE a = 1")
    s.q("DROP INDEX t_a_uq")
    r = s.migrate("up")
    t.eq((r.returncode, r.stdout.startswith("applied 002_t_uq.sql")), (0, True), f"after the fix: {r.stderr!r}")


def _advisory_held(s):
    return s.q("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
               f" AND classid = {LOCK_KEY >> 32} AND objid = {LOCK_KEY & 0xffffffff} AND objsubid = 1"
               f" AND database = (SELECT oid FROM pg_database WHERE datname = '{s.db}')") == "1"


def test_migrate_concurrent_runners_never_overlap(t):
    s = Scratch(t)
    # Records its own start and end: two runs would leave two rows.
    s.write("001_slow.sql", "CREATE TABLE runs (started timestamptz, ended timestamptz);\n"
                            "INSERT INTO runs (started) VALUES (clock_timestamp());\n"
                            "SELECT pg_sleep(2.5);\n"
                            "UPDATE runs SET ended = clock_timestamp();\n")
    results = {}

    def run(name):
        try:
            results[name] = s.migrate("up")
        except Exception as e:  # noqa: BLE001 - reported below
            results[name] = e
        results[name + "_end"] = time.monotonic()

    first = threading.Thread(target=run, args=("first",), daemon=True)
    first.start()
    t.wait_until(lambda: _advisory_held(s), 10.0, 0.05, "the first runner to hold the migration lock")
    second = threading.Thread(target=run, args=("second",), daemon=True)
    second.start()
    first.join(60)
    second.join(60)
    for name in ("first", "second"):
        r = results.get(name)
        if not isinstance(r, subprocess.CompletedProcess):
            raise Failure(f"{name} runner: {r!r}")
        t.eq(r.returncode, 0, f"{name} runner exit status (stderr {r.stderr!r})")
    a, b = results["first"], results["second"]
    t.check(re.fullmatch(r"applied 001_slow\.sql in \d+ ms", a.stdout.strip()), f"first: {a.stdout!r}")
    t.eq(b.stdout.strip(), "up to date", "the second runner found nothing left to do")
    t.check("waiting for the migration lock held by pid" in b.stderr and "bulwark migrate" in b.stderr,
            f"the second runner says who holds the lock: {b.stderr!r}")
    t.check(results["second_end"] >= results["first_end"] - 0.05, "the second runner finished after the first")
    t.eq(s.q("SELECT count(*) FROM runs WHERE ended IS NOT NULL"), "1", "the file ran once")
    t.eq(len(s.applied()), 1, "one row in schema_migrations")
    # the lock is a session lock: gone with the runners
    t.check(not _advisory_held(s), "the migration lock was released")


def readers(conninfo, n=2):
    """A Hammer of `SELECT count(*) FROM t`, each on a fresh connection (a
    psql process); its samples time every query."""
    def read():
        r = psql(conninfo, "SELECT count(*) FROM t", timeout=30, check=False)
        return r.returncode == 0, r.stderr.strip()[:200]
    return Hammer(read, threads=n, pause=0.02, join_timeout=35)


def test_migrate_lock_timeout_retries_while_readers_flow(t):
    lt_ms = 500
    s = Scratch(t, lock_timeout_ms=lt_ms)
    s.write("001_t.sql", "CREATE TABLE t (a int);\nINSERT INTO t SELECT g FROM generate_series(1, 1000) g;\n")
    t.eq(s.migrate("up").returncode, 0, "001")
    s.write("002_t_c.sql", "ALTER TABLE t ADD COLUMN c int;\n")

    # A long transaction that has read t: it holds ACCESS SHARE until it
    # ends, which blocks the ACCESS EXCLUSIVE lock ADD COLUMN needs.
    blocker = subprocess.Popen([_psql_bin(), "-X", "-q", "-d", _conninfo(s.db, app="bwmig-blocker")],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    t.defer(lambda: (blocker.poll() is None and blocker.kill(), blocker.wait(5)))
    blocker.stdin.write("BEGIN;\nSELECT count(*) FROM t;\n")
    blocker.stdin.flush()
    t.wait_until(lambda: s.q("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                             " WHERE a.application_name = 'bwmig-blocker' AND l.mode = 'AccessShareLock'"
                             " AND l.granted AND l.relation = 't'::regclass") == "1",
                 10.0, 0.05, "the blocking transaction to hold its lock on t")

    hold_s = 3.0
    result = {}
    with readers(_conninfo(s.db, app="bwmig-reader")) as rd:
        rd.wait_ok(5)  # readers before the migration

        def run():
            try:
                result["r"] = s.migrate("up")
            except Exception as e:  # noqa: BLE001 - reported below
                result["r"] = e
            result["end"] = time.monotonic()

        mig = threading.Thread(target=run, daemon=True)
        t_start = time.monotonic()
        mig.start()
        time.sleep(hold_s)  # the input: the conflicting lock is held this long
        t.check(mig.is_alive(), "the migration finished while the conflicting lock was still held")
        blocker.stdin.write("COMMIT;\n")
        blocker.stdin.close()
        t_release = time.monotonic()
        blocker.wait(10)
        mig.join(60)
        # readers after the migration
        t.wait_until(lambda: sum(1 for x in list(rd.samples) if x[0] > result["end"] and x[2]) >= 2, 5.0, 0.02,
                     "two reads after the migration")
    r = result.get("r")
    if not isinstance(r, subprocess.CompletedProcess):
        raise Failure(f"migrate up: {r!r}")
    t.eq(r.returncode, 0, f"migrate up exit status (stderr {r.stderr!r})")
    t.check(re.fullmatch(r"applied 002_t_c\.sql in \d+ ms", r.stdout.strip()), f"stdout {r.stdout!r}")
    retries = re.findall(r"002_t_c\.sql:1: could not get its locks \(try (\d) of 5\); again in (\d+) ms",
                         r.stderr)
    t.check(len(retries) >= 2, f"the migration retried while the lock was held: {r.stderr!r}")
    t.eq([int(x[0]) for x in retries], list(range(1, len(retries) + 1)), "tries counted in order")
    backoffs = [int(x[1]) for x in retries]
    t.eq(backoffs, [min(500 * 2 ** i, 4000) for i in range(len(backoffs))], "backoff doubles from 0.5 s")
    # Each try waited at most lock_timeout: the whole run is bounded by the
    # tries' timeouts plus the backoff sleeps (and the successful try).
    took = result["end"] - t_start
    bound = (len(retries) + 1) * lt_ms / 1000 + sum(backoffs) / 1000 + t.scaled(2.0)
    t.check(took <= bound, f"migrate took {took:.1f}s, more than {bound:.1f}s for {len(retries)} retries")
    t.check(result["end"] > t_release, "the migration succeeded only after the blocking transaction ended")
    t.eq(s.q("SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'"),
         "1", "column c added")

    samples = rd.samples
    bad = [x for x in samples if not x[2]]
    t.check(not bad, f"reader queries failed: {bad[:3]}")
    during = [x for x in samples if t_start <= x[0] <= t_release]
    t.check(len(during) >= 5, f"only {len(during)} reads while the migration was retrying")
    worst = max(x[1] for x in samples)
    t.h.note(f"reads: {len(samples)} ({len(during)} during the retries), worst latency {worst * 1000:.0f} ms")
    # behind a migration queued without lock_timeout, a reader would wait hold_s
    t.check(worst < t.scaled(lt_ms / 1000 + 1.0, cap=hold_s),
            f"a reader waited {worst:.2f}s, more than lock_timeout ({lt_ms} ms) + 1 s")


def test_migrate_schema_roles_and_row_level_security(t):
    s = Scratch(t)
    r = s.migrate("up", schema_dir=str(REPO / "schema"))
    t.eq(r.returncode, 0, f"migrate up of schema/ (stderr {r.stderr!r})")
    t.check("applied 001_tenants_api_keys.sql" in r.stdout, f"stdout {r.stdout!r}")
    t.eq(s.q("SELECT rolcanlogin::text || rolinherit::text || rolsuper::text || rolbypassrls::text"
             " FROM pg_roles WHERE rolname = 'bulwark_app'"), "truefalsefalsefalse",
         "bulwark_app: LOGIN NOINHERIT, not superuser, no BYPASSRLS")
    t.eq(s.q("SELECT count(*) FROM pg_class WHERE relowner = 'bulwark_app'::regrole"), "0",
         "bulwark_app owns nothing")
    t.eq(s.q("SELECT string_agg(relname || ':' || relrowsecurity || relforcerowsecurity, ',' ORDER BY relname)"
             " FROM pg_class WHERE relname IN ('tenants', 'api_keys')"),
         "api_keys:truetrue,tenants:truetrue", "ENABLE and FORCE ROW LEVEL SECURITY")
    t1, t2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    s.q(f"INSERT INTO tenants (id, name, rate, burst) VALUES ('{t1}', 'one', 10, 20), ('{t2}', 'two', 0.5, 1);"
        f"INSERT INTO api_keys (key_id, tenant_id, secret_sha256, rate, burst) VALUES"
        f" ('aaaaaaaa1', '{t1}', sha256('s1'), 5, 10), ('bbbbbbbb2', '{t2}', sha256('s2'), 1, 1)")
    app = _conninfo(s.db, user="bulwark_app")
    t.eq(psql(app, "SELECT count(*) FROM tenants"), "0", "no tenant set: no tenant visible")
    t.eq(psql(app, "SELECT count(*) FROM api_keys"), "0", "no tenant set: no key visible")
    t.eq(psql(app, f"SELECT set_config('bulwark.tenant_id', '{t1}', true) IS NULL;"
                   "SELECT string_agg(name, ',') FROM tenants").splitlines()[-1], "one", "tenant one sees itself")
    t.eq(psql(app, f"SELECT set_config('bulwark.tenant_id', '{t2}', true) IS NULL;"
                   "SELECT string_agg(key_id, ',') FROM api_keys").splitlines()[-1], "bbbbbbbb2",
         "tenant two sees only its keys")
    t.eq(psql(app, "SELECT set_config('bulwark.key_id', 'aaaaaaaa1', true) IS NULL;"
                   "SELECT key_id || ' ' || tenant_id FROM api_keys").splitlines()[-1], f"aaaaaaaa1 {t1}",
         "bulwark.key_id shows that one key before the tenant is known")
    for sql, what in (("INSERT INTO tenants (name, rate, burst) VALUES ('x', 1, 1)", "INSERT on tenants"),
                      ("DELETE FROM api_keys", "DELETE on api_keys"),
                      ("SELECT count(*) FROM schema_migrations", "SELECT on schema_migrations"),
                      ("CREATE TABLE mine (a int)", "CREATE TABLE in public")):
        r = psql(app, sql, check=False)
        t.check(r.returncode != 0 and "permission denied" in r.stderr, f"{what} as bulwark_app: {r.stderr!r}")
    # constraints of the model
    for sql in ("INSERT INTO tenants (name, rate, burst) VALUES ('', 1, 1)",
                "INSERT INTO tenants (name, rate, burst) VALUES ('x', 0, 1)",
                f"INSERT INTO api_keys (key_id, tenant_id, secret_sha256, rate, burst) VALUES"
                f" ('UPPER_bad', '{t1}', sha256('x'), 1, 1)",
                f"INSERT INTO api_keys (key_id, tenant_id, secret_sha256, rate, burst) VALUES"
                f" ('cccccccc3', '{t1}', '\\x00', 1, 1)"):
        r = psql(s.owner, sql, check=False)
        t.check(r.returncode != 0 and "violates check constraint" in r.stderr, f"{sql}: {r.stderr!r}")
    # the summary reads one tenant's entries through an index, not the whole table
    t.eq(s.q("SELECT indisvalid::text || ' ' || pg_get_indexdef(indexrelid) FROM pg_index"
             " WHERE indexrelid = 'entries_tenant_account_idx'::regclass"),
         "true CREATE INDEX entries_tenant_account_idx ON public.entries USING btree (tenant_id, account_id)",
         "entries' tenant index (schema/009), valid")
    t.eq(s.migrate("up", schema_dir=str(REPO / "schema")).stdout.strip(), "up to date", "second up")


def test_migrate_idempotency_cleanup_under_an_owner_that_is_not_superuser(t):
    """With an owner that row-level security binds (not a superuser, no
    BYPASSRLS), idempotency_cleanup() called by bulwark_app still deletes the
    expired records of every tenant (schema/008's owner-only policy), keeps
    younger ones, and bulwark_app still sees no row of any tenant without
    its tenant set."""
    s = Scratch(t)
    role = f"bwowner_{os.getpid()}"
    psql(s.admin, f"DROP ROLE IF EXISTS {role}")
    psql(s.admin, f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
    psql(s.admin, f"ALTER DATABASE {s.db} OWNER TO {role}")
    t.defer(lambda: (psql(s.admin, f"DROP DATABASE IF EXISTS {s.db} WITH (FORCE)"),
                     psql(s.admin, f"DROP ROLE IF EXISTS {role}")))
    superuser = s.owner
    s.owner = _conninfo(s.db, user=role)
    r = s.migrate("up", schema_dir=str(REPO / "schema"))
    t.eq(r.returncode, 0, f"migrate up of schema/ as {role} (stderr {r.stderr!r})")
    t1, t2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    rows = "INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, route, fingerprint, status, body," \
           " created_at) VALUES ('{t}', 'k', '{k}', 'POST /v1/transfers', repeat('0', 64), 201, '{{}}'," \
           " now() - interval '{h} hours');"
    s.q(f"SELECT set_config('bulwark.tenant_id', '{t1}', true);"
        f"INSERT INTO tenants (id, name, rate, burst) VALUES ('{t1}', 'one', 10, 20);"
        + rows.format(t=t1, k="old1", h=73) + rows.format(t=t1, k="young1", h=71)
        + f"SELECT set_config('bulwark.tenant_id', '{t2}', true);"
        f"INSERT INTO tenants (id, name, rate, burst) VALUES ('{t2}', 'two', 10, 20);"
        + rows.format(t=t2, k="old2", h=80))
    app = _conninfo(s.db, user="bulwark_app")
    t.eq(psql(app, "SELECT count(*) FROM idempotency_keys"), "0",
         "bulwark_app with no tenant set sees no record, expired ones included")
    t.eq(psql(app, "SELECT idempotency_cleanup(500)"), "2", "records deleted by one cleanup call")
    t.eq(psql(superuser, "SELECT string_agg(idem_key, ',' ORDER BY idem_key) FROM idempotency_keys"), "young1",
         "records left after the cleanup")

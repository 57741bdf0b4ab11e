"""Helpers of the ledger tests (test_ledger*.py): a small API client for one
key, psql as the schema owner or as bulwark_app, the "nothing written"
snapshot and the ledger invariants checked in SQL.

Every helper takes the test context `t`; nothing here starts a daemon."""

import json
import os
import secrets
import subprocess
import threading
import time

from base import Failure, env

# Tenants of the ledger tests get a limit no test reaches.
GENEROUS = dict(rate=100000, burst=100000)
MAX_AMOUNT = 2**63 - 1


def new_tenant(t, name=None):
    return t.new_tenant(name=name, **GENEROUS)


def new_key(t, tenant_id, scopes=None):
    return t.new_key(tenant_id, scopes=scopes, **GENEROUS)


def idem():
    return "it-" + secrets.token_hex(12)


# ---------------------------------------------------------------------------
# psql

def psql(t, sql, *params, role="owner", check=True, timeout=30):
    """Runs sql with psql (-XAtq, ON_ERROR_STOP) as the schema owner
    (BULWARK_POSTGRES_OWNER) or as the workers' role (role="app":
    BULWARK_POSTGRES, i.e. bulwark_app). :'p1', :'p2', … are the params.
    check=True: returns the output rows ('|'-separated text) and fails on an
    error; check=False: returns the CompletedProcess."""
    conninfo = env("BULWARK_POSTGRES_OWNER") if role == "owner" else env("BULWARK_POSTGRES")
    if not conninfo:
        t.skip("BULWARK_POSTGRES / BULWARK_POSTGRES_OWNER are not set")
    pg_bin = env("BW_PG_BIN", "/usr/lib/postgresql/15/bin")
    args = [os.path.join(pg_bin, "psql"), conninfo, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for i, p in enumerate(params):
        args += ["-v", f"p{i + 1}={p}"]
    r = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=timeout)
    if not check:
        return r
    if r.returncode != 0:
        raise Failure(f"psql ({role}) failed: {r.stderr.strip()[:400]}")
    return [ln for ln in r.stdout.splitlines() if ln]


def psql_json(t, sql, *params):
    """One row of JSON text (owner) → the value."""
    rows = psql(t, sql, *params)
    if len(rows) != 1:
        raise Failure(f"psql: want one row, got {rows[:5]}")
    return json.loads(rows[0])


# ---------------------------------------------------------------------------
# the API, as one key

class Client:
    def __init__(self, t, key):
        self.t = t
        self.key = key

    @property
    def tenant_id(self):
        return self.key.tenant_id

    def req(self, method, path, body=None, idem_key=None, headers=None, raw=False, timeout=15):
        h = dict(self.key.auth())
        if body is not None:
            h["Content-Type"] = "application/json"
            if not raw:
                body = json.dumps(body)
        if idem_key is not None:
            h["Idempotency-Key"] = idem_key
        h.update(headers or {})
        return self.t.http(method, path, body=body, headers=h, timeout=timeout)

    # -- accounts --------------------------------------------------------------
    def create_account(self, name=None, currency="USD", allow_negative=None, idem_key=None):
        body = {"name": name or f"acct-{secrets.token_hex(3)}", "currency": currency}
        if allow_negative is not None:
            body["allow_negative"] = allow_negative
        r = self.req("POST", "/v1/accounts", body, idem_key=idem_key)
        self.t.eq(r.status, 201, f"POST /v1/accounts {body} ({r.text[:300]!r})")
        return r.json()

    def account(self, account_id):
        r = self.req("GET", f"/v1/accounts/{account_id}")
        self.t.eq(r.status, 200, f"GET /v1/accounts/{account_id} ({r.text[:300]!r})")
        return r.json()

    def balance(self, account_id):
        return self.account(account_id)["balance"]

    def pages(self, path, limit=None, max_pages=100):
        """Follows `next` from the first page; returns the list of pages
        (each the decoded {data, next})."""
        out, after = [], None
        for _ in range(max_pages):
            q = []
            if limit is not None:
                q.append(f"limit={limit}")
            if after is not None:
                q.append(f"after={after}")
            r = self.req("GET", path + ("?" + "&".join(q) if q else ""))
            self.t.eq(r.status, 200, f"GET {path} page {len(out) + 1} ({r.text[:300]!r})")
            page = r.json()
            self.t.check(isinstance(page.get("data"), list) and "next" in page,
                         f"GET {path}: not a list page: {r.text[:300]!r}")
            out.append(page)
            after = page["next"]
            if after is None:
                return out
            self.t.check(isinstance(after, str) and after, f"GET {path}: next {after!r}")
        raise Failure(f"GET {path}: more than {max_pages} pages")

    def entries(self, account_id, limit=1000):
        return [e for p in self.pages(f"/v1/accounts/{account_id}/entries", limit) for e in p["data"]]

    # -- transfers -------------------------------------------------------------
    def transfer(self, frm, to, amount, currency="USD", memo=None, idem_key=None, extra=None):
        """POST /v1/transfers with a fresh Idempotency-Key unless given;
        returns the Response (the key is in r.idem_key)."""
        body = {"from_account": frm, "to_account": to, "amount": amount, "currency": currency}
        if memo is not None:
            body["memo"] = memo
        body.update(extra or {})
        k = idem_key or idem()
        r = self.req("POST", "/v1/transfers", body, idem_key=k)
        r.idem_key = k
        return r

    def transfer_ok(self, frm, to, amount, currency="USD", memo=None):
        r = self.transfer(frm, to, amount, currency, memo)
        self.t.eq(r.status, 201, f"transfer {amount} {currency} {frm} -> {to} ({r.text[:300]!r})")
        return r.json()

    def summary(self):
        r = self.req("GET", "/v1/reports/summary")
        self.t.eq(r.status, 200, f"GET /v1/reports/summary ({r.text[:300]!r})")
        return r


# ---------------------------------------------------------------------------
# what PostgreSQL holds (as the owner, who is not bound by row-level security)

def db_state(t, tenant_id):
    """The tenant's ledger rows as the owner sees them: accounts (balance,
    version), transfers, entries; for "nothing written" checks."""
    return psql_json(t, """
        SELECT json_build_object(
          'accounts', (SELECT coalesce(json_object_agg(id, json_build_object(
                          'balance', balance, 'version', version)), '{}')
                       FROM accounts WHERE tenant_id = :'p1'),
          'transfers', (SELECT count(*) FROM transfers WHERE tenant_id = :'p1'),
          'entries', (SELECT count(*) FROM entries WHERE tenant_id = :'p1'),
          'max_entry', (SELECT coalesce(max(id), 0) FROM entries WHERE tenant_id = :'p1'))::text
        """, tenant_id)


def db_balances(t, tenant_id):
    return {k: v["balance"] for k, v in db_state(t, tenant_id)["accounts"].items()}


INVARIANTS = [
    ("balances of one currency in a tenant sum to 0",
     """SELECT tenant_id, currency, sum(balance) FROM accounts WHERE tenant_id = ANY(:'p1'::uuid[])
        GROUP BY 1, 2 HAVING sum(balance) <> 0"""),
    ("no account without allow_negative below 0",
     """SELECT id, balance FROM accounts WHERE tenant_id = ANY(:'p1'::uuid[])
        AND NOT allow_negative AND balance < 0"""),
    ("each account's entries sum to its balance",
     """SELECT a.id, a.balance, coalesce(sum(e.amount), 0) FROM accounts a
        LEFT JOIN entries e ON e.account_id = a.id
        WHERE a.tenant_id = ANY(:'p1'::uuid[]) GROUP BY a.id, a.balance
        HAVING a.balance <> coalesce(sum(e.amount), 0)"""),
    ("each entry's balance_after is the running sum of its account's entries",
     """SELECT id, account_id, balance_after, running FROM (
          SELECT e.id, e.account_id, e.balance_after,
                 sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
          FROM entries e WHERE e.tenant_id = ANY(:'p1'::uuid[])) x
        WHERE balance_after <> running"""),
    ("the last entry's balance_after is the account's balance",
     """SELECT a.id FROM accounts a JOIN LATERAL (SELECT balance_after FROM entries e
          WHERE e.account_id = a.id ORDER BY e.id DESC LIMIT 1) l ON true
        WHERE a.tenant_id = ANY(:'p1'::uuid[]) AND l.balance_after <> a.balance"""),
    ("each transfer has exactly two entries: -amount on from_account, +amount on to_account",
     """SELECT tr.id FROM transfers tr WHERE tr.tenant_id = ANY(:'p1'::uuid[]) AND (
          (SELECT count(*) FROM entries e WHERE e.transfer_id = tr.id) <> 2
          OR NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = tr.id
                         AND e.account_id = tr.from_account AND e.amount = -tr.amount)
          OR NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = tr.id
                         AND e.account_id = tr.to_account AND e.amount = tr.amount))"""),
    ("transfers, entries and their accounts share tenant and currency",
     """SELECT tr.id FROM transfers tr JOIN accounts f ON f.id = tr.from_account
        JOIN accounts o ON o.id = tr.to_account
        WHERE tr.tenant_id = ANY(:'p1'::uuid[]) AND (f.tenant_id <> tr.tenant_id
          OR o.tenant_id <> tr.tenant_id OR f.currency <> tr.currency OR o.currency <> tr.currency)
        UNION ALL
        SELECT e.transfer_id FROM entries e JOIN transfers tr ON tr.id = e.transfer_id
        WHERE e.tenant_id = ANY(:'p1'::uuid[]) AND e.tenant_id <> tr.tenant_id"""),
]


def check_invariants(t, tenant_ids):
    arr = "{" + ",".join(tenant_ids) + "}"
    for what, sql in INVARIANTS:
        rows = psql(t, sql + ";", arr)
        t.check(not rows, f"ledger invariant broken — {what}: {rows[:5]}")


def transfers_by_memo(t, tenant_id, memos):
    """{memo: count of transfers} for the given memos (owner)."""
    arr = "{" + ",".join(json.dumps(m, ensure_ascii=False) for m in memos) + "}"
    rows = psql(t, "SELECT memo, count(*) FROM transfers WHERE tenant_id = :'p1' "
                   "AND memo = ANY(:'p2'::text[]) GROUP BY memo;", tenant_id, arr)
    out = {}
    for ln in rows:
        m, n = ln.rsplit("|", 1)
        out[m] = int(n)
    return out


# ---------------------------------------------------------------------------
# concurrency

def together(n, fn, timeout=60):
    """Runs fn(i) in n threads released at once by a barrier; returns the
    results in index order (an exception is returned as its repr)."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        try:
            barrier.wait(10)
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = e
    ths = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(timeout)
    return out


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def wait_pg_back(t, client, timeout=15.0):
    """Until 8 reads in a row that need PostgreSQL succeed."""
    def ok():
        for _ in range(8):
            r = client.req("GET", "/v1/accounts?limit=1")
            if r.status != 200:
                return False
        return True
    t.wait_until(ok, timeout, 0.1, "ledger reads succeed with PostgreSQL back")


def now():
    return time.monotonic()

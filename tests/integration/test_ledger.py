"""The ledger through nginx against the real stack: accounts (shape,
validation, 404s), transfers (shape, entries, every error code with
nothing written, checked through the API and in PostgreSQL as the owner),
keyset pagination of accounts and entries, scopes, the cross-tenant
matrix over every ledger route, and row-level security proven at the
database level (psql as bulwark_app, a query with no tenant filter)."""

import base64
import json
import re
import threading
import uuid
from pathlib import Path

from harness import check_problem
from ledgerlib import (MAX_AMOUNT, Client, check_invariants, db_state, idem,
                       new_key, new_tenant, psql)

SETTINGS = dict(workers=4)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def cursor(text):
    """A cursor in the daemon's own format (base64url of "c:<key>"), to
    probe how it handles keys it never issued."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def funded(t, c, currency="USD", amount=1000):
    """A bank (allow_negative) and an ordinary account holding `amount`."""
    bank = c.create_account("bank", currency, allow_negative=True)
    acct = c.create_account("holder", currency)
    c.transfer_ok(bank["id"], acct["id"], amount, currency)
    return bank, acct


# ---------------------------------------------------------------------------
# accounts

def test_ledger_account_create_and_get(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    r = c.req("POST", "/v1/accounts", {"name": "Main wallet", "currency": "EUR"})
    t.eq(r.status, 201, f"POST /v1/accounts ({r.text[:300]!r})")
    t.eq(r.header("Content-Type", "").split(";")[0], "application/json", "Content-Type of 201")
    a = r.json()
    t.eq(sorted(a), ["allow_negative", "balance", "created_at", "currency", "id", "name"],
         "account fields")
    t.check(UUID_RE.fullmatch(a["id"]), f"account id {a['id']!r}")
    t.eq((a["name"], a["currency"], a["allow_negative"], a["balance"]),
         ("Main wallet", "EUR", False, 0), "account values")
    t.check(TIME_RE.fullmatch(a["created_at"]), f"created_at {a['created_at']!r} is not RFC 3339 UTC")
    g = c.req("GET", f"/v1/accounts/{a['id']}")
    t.eq(g.status, 200, f"GET the new account ({g.text[:200]!r})")
    t.eq(g.json(), a, "GET /v1/accounts/{id} equals the 201 body")
    t.eq(c.account(a["id"].upper())["id"], a["id"], "GET with the id in capitals")
    n = c.create_account("overdraft", "JPY", allow_negative=True)
    t.eq(n["allow_negative"], True, "allow_negative true")
    # names count characters, not bytes: 200 three-byte characters fit
    long_name = "€" * 200
    t.eq(c.create_account(long_name, "USD")["name"], long_name, "a 200-character (600-byte) name")
    rows = psql(t, "SELECT name, currency, allow_negative, balance FROM accounts WHERE id = :'p1';",
                a["id"])
    t.eq(rows, ["Main wallet|EUR|f|0"], "the row in PostgreSQL")


def test_ledger_account_validation(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    c.create_account("first", "USD")
    before = db_state(t, c.tenant_id)
    cases = [
        ({"currency": "USD"}, "invalid_field", "/name"),
        ({"name": "", "currency": "USD"}, "invalid_field", "/name"),
        ({"name": "x" * 201, "currency": "USD"}, "invalid_field", "/name"),
        ({"name": 42, "currency": "USD"}, "invalid_field", "/name"),
        ({"name": None, "currency": "USD"}, "invalid_field", "/name"),
        ({"name": "a\u0000b", "currency": "USD"}, "invalid_field", "/name"),
        ({"name": "n"}, "invalid_field", "/currency"),
        ({"name": "n", "currency": "usd"}, "invalid_field", "/currency"),
        ({"name": "n", "currency": "US"}, "invalid_field", "/currency"),
        ({"name": "n", "currency": "USDX"}, "invalid_field", "/currency"),
        ({"name": "n", "currency": "U$D"}, "invalid_field", "/currency"),
        ({"name": "n", "currency": 840}, "invalid_field", "/currency"),
        ({"name": "n", "currency": "USD", "allow_negative": "yes"}, "invalid_field", "/allow_negative"),
        ({"name": "n", "currency": "USD", "allow_negative": 1}, "invalid_field", "/allow_negative"),
        ({"name": "n", "currency": "USD", "balance": 100}, "unknown_field", "/balance"),
        ({"name": "n", "currency": "USD", "id": str(uuid.uuid4())}, "unknown_field", "/id"),
    ]
    for body, code, pointer in cases:
        r = c.req("POST", "/v1/accounts", body)
        p = check_problem(t, r, 400, code, f"POST /v1/accounts {body!r:.80}")
        t.eq(p.get("pointer"), pointer, f"pointer of {code} for {body!r:.80}")
    for raw, what in [('{"name": "n", "currency": "USD"', "truncated JSON"),
                      ('[{"name": "n", "currency": "USD"}]', "an array"),
                      ('"USD"', "a string"), ("", "an empty body"),
                      ('{"name": "n", "name": "m", "currency": "USD"}', "a duplicate member")]:
        r = c.req("POST", "/v1/accounts", raw, raw=True)
        check_problem(t, r, 400, "invalid_json", f"POST /v1/accounts with {what}")
    r = c.req("POST", "/v1/accounts", '{"name": "n", "currency": "USD"}', raw=True,
              headers={"Content-Type": "text/plain"})
    t.eq(r.status, 415, f"POST /v1/accounts as text/plain ({r.text[:200]!r})")
    t.eq(db_state(t, c.tenant_id), before, "PostgreSQL after refused account creations")
    t.eq(len(c.pages("/v1/accounts")[0]["data"]), 1, "accounts listed after refused creations")


def test_ledger_account_not_found(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    other = Client(t, new_tenant(t))
    theirs = other.create_account("theirs", "USD")
    for aid, what in [(str(uuid.uuid4()), "an unknown id"), ("not-a-uuid", "a malformed id"),
                      ("0" * 36, "36 zeros"), (theirs["id"], "another tenant's account"),
                      (str(uuid.uuid4()).replace("-", ""), "a uuid without dashes")]:
        for path in (f"/v1/accounts/{aid}", f"/v1/accounts/{aid}/entries"):
            r = c.req("GET", path)
            check_problem(t, r, 404, "account_not_found", f"GET {path} ({what})")


# ---------------------------------------------------------------------------
# transfers

def test_ledger_transfer_shape_and_entries(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank = c.create_account("bank", "USD", allow_negative=True)
    alice = c.create_account("alice", "USD")
    bob = c.create_account("bob", "USD")
    r = c.transfer(bank["id"], alice["id"], 1500, "USD", memo="seed")
    t.eq(r.status, 201, f"first transfer ({r.text[:300]!r})")
    t.check(r.header("Idempotent-Replayed") is None, "Idempotent-Replayed on a first request")
    tr = r.json()
    t.eq(sorted(tr), ["amount", "created_at", "currency", "from_account", "id", "memo", "to_account"],
         "transfer fields")
    t.eq((tr["from_account"], tr["to_account"], tr["amount"], tr["currency"], tr["memo"]),
         (bank["id"], alice["id"], 1500, "USD", "seed"), "transfer values")
    t.check(UUID_RE.fullmatch(tr["id"]) and TIME_RE.fullmatch(tr["created_at"]), f"id/created_at {tr}")
    g = c.req("GET", f"/v1/transfers/{tr['id']}")
    t.eq(g.status, 200, f"GET /v1/transfers/{{id}} ({g.text[:200]!r})")
    t.eq(g.json(), tr, "GET /v1/transfers/{id} equals the 201 body")
    tr2 = c.transfer_ok(alice["id"], bob["id"], 400, "USD")
    t.eq(tr2["memo"], None, "memo absent → null")
    t.eq(c.req("GET", f"/v1/transfers/{tr2['id']}").json(), tr2, "second transfer read back")
    # memo: 500 characters (two bytes each) fit; null is accepted
    tr3 = c.transfer_ok(alice["id"], bob["id"], 1, "USD", memo="é" * 500)
    t.eq(tr3["memo"], "é" * 500, "a 500-character memo")
    r = c.transfer(alice["id"], bob["id"], 1, "USD", extra={"memo": None})
    t.eq(r.status, 201, f"memo null ({r.text[:200]!r})")
    t.eq({x: c.balance(x) for x in (bank["id"], alice["id"], bob["id"])},
         {bank["id"]: -1500, alice["id"]: 1098, bob["id"]: 402}, "balances after four transfers")
    ea = c.entries(alice["id"])
    t.eq([(e["transfer_id"], e["amount"], e["balance_after"]) for e in ea],
         [(r.json()["id"], -1, 1098), (tr3["id"], -1, 1099), (tr2["id"], -400, 1100),
          (tr["id"], 1500, 1500)], "alice's entries, newest first")
    e0 = ea[-1]
    t.eq(sorted(e0), ["account_id", "amount", "balance_after", "created_at", "id", "transfer_id"],
         "entry fields")
    t.eq(e0["account_id"], alice["id"], "entry account_id")
    eb = c.entries(bank["id"])
    t.eq([(e["amount"], e["balance_after"]) for e in eb], [(-1500, -1500)], "the bank's entry")
    # the largest amount: 2^63-1 between two fresh allow_negative accounts
    x = c.create_account("x", "USD", allow_negative=True)
    y = c.create_account("y", "USD", allow_negative=True)
    big = c.transfer(x["id"], y["id"], MAX_AMOUNT, "USD")
    t.eq(big.status, 201, f"amount 2^63-1 ({big.text[:200]!r})")
    t.eq(big.json()["amount"], MAX_AMOUNT, "amount 2^63-1 echoed exactly")
    t.eq((c.balance(x["id"]), c.balance(y["id"])), (-MAX_AMOUNT, MAX_AMOUNT), "balances at ±(2^63-1)")
    # one more unit cannot be represented: refused, nothing written
    before = db_state(t, c.tenant_id)
    r = c.transfer(x["id"], y["id"], 1, "USD")
    check_problem(t, r, 422, "balance_out_of_range", "a transfer past the bigint range")
    t.eq(db_state(t, c.tenant_id), before, "PostgreSQL after the out-of-range transfer")
    check_invariants(t, [c.tenant_id])


def test_ledger_transfer_text_is_data(t):
    """Memo and Idempotency-Key reach PostgreSQL as data whatever they hold
    (quotes, backslashes, SQL): stored and echoed exactly, replayed by the
    same key, never run."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice = funded(t, c, "USD", 100)
    memos = ["it's", "back\\slash \\' \\\\", "'); DELETE FROM accounts; --", "E'\\x41' $$ $q$ ''",
             "line\nbreak\ttab", "\u65e5\u672c \U0001F4B8", "%s %d %n"]
    keys = ["it's\\key", '"quoted \\" and \\\\ and \'); SELECT 1; --"', "$$x$$;'--", "E'\\\\'"]
    stored = {}
    for i, memo in enumerate(memos):
        k = keys[i] if i < len(keys) else idem()
        r = c.transfer(alice["id"], bank["id"], 1, memo=memo, idem_key=k)
        t.eq(r.status, 201, f"memo {memo!r}, key {k!r} ({r.text[:200]!r})")
        tr = r.json()
        t.eq(tr["memo"], memo, f"memo {memo!r} echoed")
        t.eq(c.req("GET", f"/v1/transfers/{tr['id']}").json()["memo"], memo, f"memo {memo!r} read back")
        again = c.transfer(alice["id"], bank["id"], 1, memo=memo, idem_key=k)
        t.eq((again.status, again.header("Idempotent-Replayed"), again.body), (201, "true", r.body),
             f"replay with key {k!r}")
        stored[k] = memo
    rows = psql(t, "SELECT count(*) FROM transfers WHERE tenant_id = :'p1';", c.tenant_id)
    t.eq(rows, [str(1 + len(memos))], "one transfer per memo")
    t.eq(c.balance(alice["id"]), 100 - len(memos), "alice's balance")
    n = int(psql(t, "SELECT count(*) FROM accounts WHERE tenant_id = :'p1';", c.tenant_id)[0])
    t.eq(n, 2, "accounts still there")


def test_ledger_transfer_survives_function_redefinition(t):
    """A worker prepares the transfer statement once per connection. When a
    migration redefines ledger_transfer_request() so that a column's type
    changes, PostgreSQL refuses the prepared statement ("cached plan must
    not change result type"); the worker prepares it again on a new
    connection and the transfer succeeds, with no restart."""
    t.bulwark(workers=1)
    c = Client(t, new_tenant(t))
    bank, alice = funded(t, c, "USD", 100)  # the one worker has prepared it
    sig = "ledger_transfer_request(text, text, text, text, text, text, uuid, uuid, bigint, text, text)"
    latest = [p for p in sorted((Path(__file__).resolve().parents[2] / "schema").glob("*.sql"))
              if "FUNCTION ledger_transfer_request(" in p.read_text()][-1]
    original = latest.read_text()
    changed = original.replace("currency text, memo text,", "currency text, memo varchar,")
    t.check(changed != original, f"schema/{latest.name} no longer declares 'currency text, memo text,'")
    psql(t, f"DROP FUNCTION {sig};\n" + changed)
    try:
        r = c.transfer(alice["id"], bank["id"], 1, memo="after the change")
        t.eq(r.status, 201, f"transfer after the function changed ({r.text[:300]!r})")
        t.eq(r.json()["memo"], "after the change", "memo of the transfer after the change")
    finally:
        psql(t, f"DROP FUNCTION {sig};\n" + original)
    r = c.transfer(alice["id"], bank["id"], 1)
    t.eq(r.status, 201, f"transfer after the function was restored ({r.text[:300]!r})")
    t.eq(c.balance(alice["id"]), 98, "alice's balance after both transfers")


def test_ledger_transfer_ids_are_canonical(t):
    """Account ids in capitals are the same accounts; the 201 names them as
    every later read does (one spelling of an id per resource)."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice = funded(t, c)
    r = c.transfer(bank["id"].upper(), alice["id"].upper(), 5)
    t.eq(r.status, 201, f"transfer between ids in capitals ({r.text[:200]!r})")
    got = c.req("GET", f"/v1/transfers/{r.json()['id']}").json()
    t.eq(r.json(), got, "the 201 body equals GET /v1/transfers/{id}")
    check_problem(t, c.transfer(alice["id"], alice["id"].upper(), 1), 422, "same_account",
                  "the same account spelt two ways")


def test_ledger_transfer_not_found(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    other = Client(t, new_tenant(t))
    a, b = other.create_account("a", "USD", allow_negative=True), other.create_account("b", "USD")
    theirs = other.transfer_ok(a["id"], b["id"], 5)
    for tid, what in [(str(uuid.uuid4()), "an unknown id"), ("nope", "a malformed id"),
                      (theirs["id"], "another tenant's transfer")]:
        check_problem(t, c.req("GET", f"/v1/transfers/{tid}"), 404, "transfer_not_found",
                      f"GET /v1/transfers ({what})")


def test_ledger_transfer_errors_write_nothing(t):
    """Every refusal of POST /v1/transfers: its status and code, and nothing
    written — balances, versions, transfers and entries unchanged in
    PostgreSQL (as the owner) and through the API."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    other = Client(t, new_tenant(t))
    foreign = other.create_account("foreign", "USD", allow_negative=True)
    bank, alice = funded(t, c, "USD", 1000)
    bob = c.create_account("bob", "USD")
    eve = c.create_account("eve", "EUR")
    A, B, E, K = alice["id"], bob["id"], eve["id"], bank["id"]
    unknown = str(uuid.uuid4())
    before = db_state(t, c.tenant_id)
    before_other = db_state(t, other.tenant_id)
    api_before = {x: c.account(x) for x in (A, B, E, K)}
    entries_before = {x: c.entries(x) for x in (A, B, E, K)}

    def body(frm=A, to=B, amount=10, currency="USD", **kw):
        d = {"from_account": frm, "to_account": to, "amount": amount, "currency": currency}
        d.update(kw)
        return d

    refusals = [
        (body(frm=A, to=A), 422, "same_account", None),
        (body(frm=K, to=K), 422, "same_account", None),
        (body(to=unknown), 404, "account_not_found", None),
        (body(frm=unknown), 404, "account_not_found", None),
        (body(to="not-a-uuid"), 404, "account_not_found", None),
        (body(frm="", to=B), 404, "account_not_found", None),
        (body(to=foreign["id"]), 404, "account_not_found", None),
        (body(frm=foreign["id"], to=A), 404, "account_not_found", None),
        (body(to=E), 422, "currency_mismatch", None),
        (body(to=E, currency="EUR"), 422, "currency_mismatch", None),
        (body(currency="EUR"), 422, "currency_mismatch", None),
        (body(frm=K, currency="GBP"), 422, "currency_mismatch", None),
        (body(amount=1001), 422, "insufficient_funds", None),
        (body(frm=B, to=A, amount=1), 422, "insufficient_funds", None),
        (body(amount=MAX_AMOUNT), 422, "insufficient_funds", None),
        (body(amount=0), 400, "invalid_field", "/amount"),
        (body(amount=-1), 400, "invalid_field", "/amount"),
        (body(amount=-MAX_AMOUNT - 1), 400, "invalid_field", "/amount"),
        (body(amount=1.5), 400, "invalid_field", "/amount"),
        (body(amount=10.0), 400, "invalid_field", "/amount"),
        (body(amount=1e3), 400, "invalid_field", "/amount"),
        (body(amount="1"), 400, "invalid_field", "/amount"),
        (body(amount=None), 400, "invalid_field", "/amount"),
        (body(amount=True), 400, "invalid_field", "/amount"),
        (body(amount=[1]), 400, "invalid_field", "/amount"),
        ({"from_account": A, "to_account": B, "currency": "USD"}, 400, "invalid_field", "/amount"),
        (body(currency="usd"), 400, "invalid_field", "/currency"),
        (body(currency="US"), 400, "invalid_field", "/currency"),
        (body(currency=None), 400, "invalid_field", "/currency"),
        ({"to_account": B, "amount": 1, "currency": "USD"}, 400, "invalid_field", "/from_account"),
        (body(frm=123), 400, "invalid_field", "/from_account"),
        (body(to=None), 400, "invalid_field", "/to_account"),
        (body(memo="m" * 501), 400, "invalid_field", "/memo"),
        (body(memo="é" * 501), 400, "invalid_field", "/memo"),
        (body(memo=5), 400, "invalid_field", "/memo"),
        (body(memo="a\u0000b"), 400, "invalid_field", "/memo"),
        (body(note="x"), 400, "unknown_field", "/note"),
        (body(id=str(uuid.uuid4())), 400, "unknown_field", "/id"),
    ]
    for b, status, code, pointer in refusals:
        r = c.req("POST", "/v1/transfers", b, idem_key=idem())
        p = check_problem(t, r, status, code, f"transfer {json.dumps(b)[:160]}")
        if pointer is not None:
            t.eq(p.get("pointer"), pointer, f"pointer of {code} for {json.dumps(b)[:120]}")
    raws = [
        ('{"from_account": "%s", "to_account": "%s", "amount": 9223372036854775808, '
         '"currency": "USD"}' % (A, B), "amount 2^63"),
        ('{"from_account": "%s", "to_account": "%s", "amount": 1,}' % (A, B), "a trailing comma"),
        ('{"from_account": "%s", "to_account": "%s", "amount": 1, "currency": "USD"' % (A, B),
         "truncated JSON"),
        ('{"from_account": "%s", "to_account": "%s", "amount": 1, "amount": 2, "currency": "USD"}'
         % (A, B), "a duplicate member"),
        ('[1, 2]', "an array"),
        ('', "an empty body"),
    ]
    for raw, what in raws:
        r = c.req("POST", "/v1/transfers", raw, raw=True, idem_key=idem())
        check_problem(t, r, 400, "invalid_json", f"transfer with {what}")
    # the Idempotency-Key is required and checked before anything else
    ok_body = body()
    r = c.req("POST", "/v1/transfers", ok_body)
    check_problem(t, r, 400, "idempotency_key_required", "transfer without Idempotency-Key")
    for k, what in [("k" * 256, "256 characters"), ('"' + "k" * 256 + '"', "a 256-character sf-string"),
                    ("two words", "a space"), ('"unterminated', "an unterminated quote"),
                    ('""', "an empty sf-string"), ('"bad\\escape"', "a bad escape"),
                    ("caf\u00e9", "a non-ASCII character")]:
        h = {"Idempotency-Key": k.encode("utf-8").decode("latin-1")}
        r = c.req("POST", "/v1/transfers", ok_body, headers=h)
        check_problem(t, r, 400, "invalid_idempotency_key", f"Idempotency-Key with {what}")
    # nothing written, through the API and in PostgreSQL
    t.eq(db_state(t, c.tenant_id), before, "PostgreSQL (owner) after every refusal")
    t.eq(db_state(t, other.tenant_id), before_other, "the other tenant after every refusal")
    t.eq({x: c.account(x) for x in (A, B, E, K)}, api_before, "accounts through the API")
    t.eq({x: c.entries(x) for x in (A, B, E, K)}, entries_before, "entries through the API")
    # and the accounts still work: exactly the balance moves
    c.transfer_ok(A, B, 1000)
    t.eq((c.balance(A), c.balance(B)), (0, 1000), "balances after a transfer of the whole balance")
    check_invariants(t, [c.tenant_id, other.tenant_id])


def test_ledger_transfer_amount_must_be_a_json_integer(t):
    """An amount is a JSON integer in 1 … 2^63-1, exactly as written: an
    integer too large for int64 is refused (libbson must not wrap it
    around), and MongoDB extended JSON ({"$numberLong": "5"}, which
    libbson's parser understands) is an object, not an integer."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice = funded(t, c)
    x = c.create_account("x", "USD", allow_negative=True)
    before = db_state(t, c.tenant_id)
    for digits in ("18446744073709551616", "99999999999999999999999", "100000000000000000000000000000"):
        raw = ('{"from_account": "%s", "to_account": "%s", "amount": %s, "currency": "USD"}'
               % (x["id"], alice["id"], digits))
        r = c.req("POST", "/v1/transfers", raw, raw=True, idem_key=idem())
        t.check(r.status == 400 and r.json().get("code") in ("invalid_json", "invalid_field"),
                f"amount {digits} (> 2^63-1): want 400 invalid_json or invalid_field, got "
                f"{r.status} {r.text[:300]!r}")
    t.eq(db_state(t, c.tenant_id), before, "PostgreSQL after amounts past 2^63-1")
    for amount in ({"$numberLong": "5"}, {"$numberInt": "5"}):
        r = c.transfer(alice["id"], bank["id"], amount)
        # Refused before libbson sees it: member names starting with $ are not JSON we take.
        t.check(r.status == 400 and r.json().get("code") in ("invalid_json", "invalid_field"),
                f"amount {amount}: want 400 invalid_json or invalid_field, got "
                f"{r.status} {r.text[:300]!r}")
    t.eq(db_state(t, c.tenant_id), before, "PostgreSQL after extended-JSON amounts")


def test_ledger_scopes(t):
    t.shared_bulwark()
    ten = new_tenant(t)
    full = Client(t, ten)
    reader = Client(t, new_key(t, ten.tenant_id, scopes="ledger:read"))
    writer = Client(t, new_key(t, ten.tenant_id, scopes="ledger:write"))
    tele = Client(t, new_key(t, ten.tenant_id, scopes="telemetry:read,telemetry:write"))
    bank, alice = funded(t, full)
    tr = full.transfer_ok(bank["id"], alice["id"], 7)
    before = db_state(t, ten.tenant_id)
    reads = ["/v1/accounts", f"/v1/accounts/{alice['id']}", f"/v1/accounts/{alice['id']}/entries",
             f"/v1/transfers/{tr['id']}", "/v1/reports/summary"]
    for path in reads:
        t.eq(reader.req("GET", path).status, 200, f"ledger:read GET {path}")
        for c, who in ((writer, "ledger:write"), (tele, "telemetry scopes")):
            check_problem(t, c.req("GET", path), 403, "insufficient_scope", f"{who} GET {path}")
    for c, who in ((reader, "ledger:read"), (tele, "telemetry scopes")):
        r = c.req("POST", "/v1/accounts", {"name": "n", "currency": "USD"})
        check_problem(t, r, 403, "insufficient_scope", f"{who} POST /v1/accounts")
        r = c.transfer(bank["id"], alice["id"], 1)
        check_problem(t, r, 403, "insufficient_scope", f"{who} POST /v1/transfers")
    t.eq(db_state(t, ten.tenant_id), before, "nothing written by refused scopes")
    r = writer.transfer(bank["id"], alice["id"], 1)
    t.eq(r.status, 201, f"ledger:write POST /v1/transfers ({r.text[:200]!r})")
    r = writer.req("POST", "/v1/accounts", {"name": "w", "currency": "USD"})
    t.eq(r.status, 201, f"ledger:write POST /v1/accounts ({r.text[:200]!r})")


# ---------------------------------------------------------------------------
# pagination

def test_ledger_accounts_pagination(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    created, lock, errors = [], threading.Lock(), []

    def make(i):
        for j in range(i, 250, 10):
            r = c.req("POST", "/v1/accounts", {"name": f"acct {j:03d}", "currency": "USD"})
            with lock:
                if r.status == 201:
                    created.append(r.json())
                else:
                    errors.append(f"{r.status} {r.text[:120]}")
    ths = [threading.Thread(target=make, args=(i,)) for i in range(10)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    t.check(not errors and len(created) == 250, f"250 accounts created: {len(created)}, {errors[:3]}")
    want = sorted(a["id"] for a in created)
    by_id = {a["id"]: a for a in created}
    pages = c.pages("/v1/accounts", limit=100)
    t.eq([len(p["data"]) for p in pages], [100, 100, 50], "page sizes with limit=100")
    t.eq(pages[-1]["next"], None, "next of the last page")
    got = [a["id"] for p in pages for a in p["data"]]
    t.eq(got, want, "every account exactly once, in id order")
    t.check(all(a == by_id[a["id"]] for p in pages for a in p["data"]), "listed accounts equal the 201 bodies")
    t.eq([len(p["data"]) for p in c.pages("/v1/accounts")], [100, 100, 50], "the default limit is 100")
    one = c.pages("/v1/accounts", limit=1000)
    t.eq((len(one), len(one[0]["data"])), (1, 250), "limit=1000: one page")
    exact = c.pages("/v1/accounts", limit=250)
    t.eq((len(exact), exact[0]["next"]), (1, None), "limit=250 for 250 accounts: no empty last page")
    t.eq([len(p["data"]) for p in c.pages("/v1/accounts", limit=125)], [125, 125], "limit=125")
    first = c.req("GET", "/v1/accounts?limit=100").json()
    again = c.req("GET", f"/v1/accounts?limit=100&after={first['next']}").json()
    t.eq(again, pages[1], "a cursor can be used twice")
    for q in ("limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=10x", "limit=1.5",
              "after=***", "after=bm90LWEtY3Vyc29y", f"after={cursor('c:not-a-uuid')}",
              f"after={cursor('c:12345')}", f"after={cursor('x:' + want[0])}"):
        p = check_problem(t, c.req("GET", f"/v1/accounts?{q}"), 400, "invalid_parameter",
                          f"GET /v1/accounts?{q}")
        t.eq(p.get("parameter"), q.split("=")[0], f"GET /v1/accounts?{q}: the parameter named")


def test_ledger_entries_pagination(t):
    """Newest first across pages — also where entry ids gain a digit (the
    identity is moved just below the next power of ten first, as any
    ledger eventually gets there: 99 → 100, 999 → 1000)."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank = c.create_account("bank", "USD", allow_negative=True)
    acct = c.create_account("acct", "USD")
    last = int(psql(t, "SELECT last_value FROM entries_id_seq;")[0])
    boundary = 10 ** len(str(last + 40))
    if boundary <= 10 ** 15:  # each run on one stack moves it ten times further: stop somewhere
        psql(t, "SELECT setval('entries_id_seq', :'p1');", boundary - 20)
    else:
        t.h.note(f"entry ids already past 10^15 ({last}): not moved to a digit boundary")
    ids = []
    for i in range(25):
        ids.append(c.transfer_ok(bank["id"], acct["id"], i + 1)["id"])
    one = c.entries(acct["id"], limit=1000)
    t.eq([(e["transfer_id"], e["amount"]) for e in one], [(x, n) for n, x in reversed(list(enumerate(ids, 1)))],
         f"entries newest first in one page (entry ids {[e['id'] for e in one]})")
    pages = c.pages(f"/v1/accounts/{acct['id']}/entries", limit=10, max_pages=10)
    t.eq([len(p["data"]) for p in pages], [10, 10, 5], "entry page sizes with limit=10")
    es = [e for p in pages for e in p["data"]]
    t.eq([e["transfer_id"] for e in es], ids[::-1], "entries newest first across pages")
    eids = [int(e["id"]) for e in es]
    t.check(eids == sorted(eids, reverse=True) and len(set(eids)) == 25, f"entry ids {eids}")
    t.eq([e["amount"] for e in es], list(range(25, 0, -1)), "entry amounts")
    t.eq([e["balance_after"] for e in es], [sum(range(1, n + 1)) for n in range(25, 0, -1)],
         "balance_after chain")
    t.eq(es, one, "the same entries in one page")
    t.eq(len(c.pages(f"/v1/accounts/{acct['id']}/entries")), 1, "default limit: one page for 25")
    acc_cursor = c.req("GET", "/v1/accounts?limit=1").json()["next"]
    for q in ("limit=0", "limit=1001", "limit=x", "after=***", f"after={acc_cursor}",
              f"after={cursor('c:abc')}", f"after={cursor('c:-1')}", f"after={cursor('c:1 OR 1=1')}"):
        p = check_problem(t, c.req("GET", f"/v1/accounts/{acct['id']}/entries?{q}"), 400,
                          "invalid_parameter", f"GET entries?{q}")
        t.eq(p.get("parameter"), q.split("=")[0], f"GET entries?{q}: the parameter named")


def test_ledger_entries_cursor_out_of_range(t):
    """A cursor whose entry id does not fit a bigint is not a cursor of this
    list: 400, never 500."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    acct = c.create_account("acct", "USD")
    for key in ("99999999999999999999", "9223372036854775808"):
        r = c.req("GET", f"/v1/accounts/{acct['id']}/entries?after={cursor('c:' + key)}")
        p = check_problem(t, r, 400, "invalid_parameter", f"entries cursor c:{key}")
        t.eq(p.get("parameter"), "after", f"entries cursor c:{key}: the parameter named")
    r = c.req("GET", f"/v1/accounts/{acct['id']}/entries?after={cursor('c:9223372036854775807')}")
    t.eq(r.status, 200, f"entries cursor c:2^63-1 ({r.text[:200]!r})")


# ---------------------------------------------------------------------------
# tenancy

def test_ledger_cross_tenant_matrix(t):
    """Tenant B's key against tenant A's ids, on every ledger route."""
    t.shared_bulwark()
    A, B = Client(t, new_tenant(t)), Client(t, new_tenant(t))
    a_bank, a1 = funded(t, A, "USD", 500)
    a2 = A.create_account("a2", "USD")
    a_tr = A.transfer_ok(a1["id"], a2["id"], 100, memo="tenant A's secret memo")
    a_first = A.req("GET", "/v1/accounts?limit=1").json()
    b_bank, b1 = funded(t, B, "USD", 50)
    a_before, b_before = db_state(t, A.tenant_id), db_state(t, B.tenant_id)
    # reads
    for aid in (a_bank["id"], a1["id"], a2["id"]):
        check_problem(t, B.req("GET", f"/v1/accounts/{aid}"), 404, "account_not_found",
                      "B reads A's account")
        check_problem(t, B.req("GET", f"/v1/accounts/{aid}/entries"), 404, "account_not_found",
                      "B reads A's entries")
        check_problem(t, B.req("GET", f"/v1/accounts/{aid}/entries?limit=1"), 404,
                      "account_not_found", "B reads A's entries with a limit")
    check_problem(t, B.req("GET", f"/v1/transfers/{a_tr['id']}"), 404, "transfer_not_found",
                  "B reads A's transfer")
    # writes that name A's accounts
    for frm, to, what in [(b1["id"], a1["id"], "B → A"), (a1["id"], b1["id"], "A → B"),
                          (a1["id"], a2["id"], "A → A"), (a_bank["id"], b_bank["id"], "A's bank → B's bank"),
                          (b_bank["id"], a2["id"], "B's bank → A")]:
        r = B.transfer(frm, to, 10, "USD")
        check_problem(t, r, 404, "account_not_found", f"B transfers {what}")
    # lists and the summary
    b_ids = {a["id"] for p in B.pages("/v1/accounts") for a in p["data"]}
    t.eq(b_ids, {b_bank["id"], b1["id"]}, "B's account list holds B's accounts only")
    r = B.req("GET", f"/v1/accounts?after={a_first['next']}")
    t.eq(r.status, 200, f"B with a cursor from A's list ({r.text[:200]!r})")
    t.check({a["id"] for a in r.json()["data"]} <= b_ids, f"A's cursor leaked A's accounts to B: {r.text[:300]}")
    s = B.summary().json()
    t.eq(s["tenant_id"], B.tenant_id, "B's summary tenant_id")
    t.eq(s["transfers"], 1, "B's summary counts B's transfers only")
    t.eq([(x["currency"], x["accounts"], x["volume"]) for x in s["currencies"]], [("USD", 2, 50)],
         "B's summary currencies")
    t.check(not {x["id"] for x in s["top_accounts"]} & {a_bank["id"], a1["id"], a2["id"]},
            f"A's accounts in B's top_accounts: {s['top_accounts']}")
    t.check("secret memo" not in json.dumps(s), "A's memo in B's summary")
    # A's view is untouched, and A's same Idempotency-Key is a different request for B
    k = idem()
    r1 = A.transfer(a_bank["id"], a1["id"], 3, idem_key=k)
    t.eq(r1.status, 201, f"A's transfer with key {k}")
    r2 = B.transfer(b_bank["id"], b1["id"], 3, idem_key=k)
    t.eq(r2.status, 201, f"B's transfer with A's key ({r2.text[:200]!r})")
    t.check(r2.header("Idempotent-Replayed") is None and r2.json()["id"] != r1.json()["id"],
            "B got A's stored response for the same Idempotency-Key")
    a_after, b_after = db_state(t, A.tenant_id), db_state(t, B.tenant_id)
    t.eq((a_after["transfers"], b_after["transfers"]), (a_before["transfers"] + 1, b_before["transfers"] + 1),
         "one transfer each after the refused cross-tenant writes")
    check_invariants(t, [A.tenant_id, B.tenant_id])


def test_ledger_rls_database_level(t):
    """Row-level security, not WHERE clauses, does the isolation: as
    bulwark_app, a query with no tenant filter at all sees only the tenant
    set with set_config(…, true); with none set it sees nothing;
    bulwark_app owns nothing and cannot change or delete entries."""
    t.shared_bulwark()
    A, B = Client(t, new_tenant(t)), Client(t, new_tenant(t))
    for c in (A, B):
        bank, acct = funded(t, c, "USD", 10)
        c.transfer_ok(acct["id"], bank["id"], 3)
        r = c.transfer(acct["id"], acct["id"], 1)  # a stored refusal: an idempotency row
        t.eq(r.status, 422, "same_account")
    tables = ("accounts", "transfers", "entries", "idempotency_keys")
    want = {}
    for c in (A, B):
        rows = psql(t, " UNION ALL ".join(
            f"SELECT '{tb}', count(*) FROM {tb} WHERE tenant_id = :'p1'" for tb in tables) + ";",
            c.tenant_id)
        want[c.tenant_id] = dict(ln.split("|") for ln in rows)
    total = dict(ln.split("|") for ln in psql(t, " UNION ALL ".join(
        f"SELECT '{tb}', count(*) FROM {tb}" for tb in tables) + ";"))
    for tb in tables:
        t.check(int(total[tb]) > int(want[A.tenant_id][tb]) > 0,
                f"{tb}: other tenants' rows must exist for this test ({total[tb]} vs {want[A.tenant_id][tb]})")
    counts = "\n".join(f"SELECT '{tb}', count(*) FROM {tb};  -- no WHERE at all" for tb in tables)
    for c in (A, B):
        rows = psql(t, f"BEGIN;\nSELECT set_config('bulwark.tenant_id', :'p1', true) \\g /dev/null\n"
                       f"{counts}\nCOMMIT;", c.tenant_id, role="app")
        t.eq(dict(ln.split("|") for ln in rows), want[c.tenant_id],
             "bulwark_app, tenant set, no WHERE: only that tenant's rows")
    rows = psql(t, f"{counts}\nBEGIN;\nSELECT set_config('bulwark.tenant_id', '', true) \\g /dev/null\n"
                   f"{counts}\nCOMMIT;", role="app")
    t.eq(rows, [f"{tb}|0" for tb in tables] * 2, "bulwark_app with no tenant set sees nothing")
    # the setting is transaction-local: gone after COMMIT on the same session
    rows = psql(t, "BEGIN;\nSELECT set_config('bulwark.tenant_id', :'p1', true) \\g /dev/null\n"
                   "SELECT count(*) FROM accounts;\nCOMMIT;\nSELECT count(*) FROM accounts;",
                A.tenant_id, role="app")
    t.eq(rows, [want[A.tenant_id]["accounts"], "0"], "tenant setting after COMMIT")
    # naming the other tenant explicitly does not help
    rows = psql(t, "BEGIN;\nSELECT set_config('bulwark.tenant_id', :'p1', true) \\g /dev/null\n"
                   "SELECT count(*) FROM accounts WHERE tenant_id = :'p2';\n"
                   "UPDATE accounts SET balance = balance + 1 WHERE tenant_id = :'p2';\nROLLBACK;",
                A.tenant_id, B.tenant_id, role="app")
    t.eq(rows, ["0"], "A's session selecting B's rows by tenant_id")

    def refused(sql, pattern, what, *params):
        r = psql(t, "BEGIN;\nSELECT set_config('bulwark.tenant_id', :'p1', true) \\g /dev/null\n"
                    + sql + "\nROLLBACK;", A.tenant_id, *params, role="app", check=False)
        t.check(r.returncode != 0 and re.search(pattern, r.stderr),
                f"bulwark_app {what}: want an error matching {pattern!r}, got rc {r.returncode} "
                f"{(r.stderr or r.stdout).strip()[:300]!r}")
    refused("INSERT INTO accounts (tenant_id, name, currency) VALUES (:'p2', 'sneaky', 'USD');",
            "row-level security", "inserting an account for another tenant", B.tenant_id)
    refused("UPDATE accounts SET tenant_id = :'p2';", "row-level security",
            "moving an account to another tenant", B.tenant_id)
    for tb in ("entries", "transfers"):
        refused(f"UPDATE {tb} SET created_at = now();", "permission denied", f"UPDATE {tb}")
        refused(f"DELETE FROM {tb};", "permission denied", f"DELETE FROM {tb}")
    refused("DELETE FROM accounts;", "permission denied", "DELETE FROM accounts")
    refused("ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY;", "must be owner", "ALTER TABLE")
    refused("SET row_security = off; SELECT count(*) FROM accounts;", "row-level security|permission",
            "row_security = off")
    refused("SELECT set_config('bulwark.tenant_id', 'not-a-uuid', true); SELECT count(*) FROM accounts;",
            "invalid input syntax for type uuid", "a malformed tenant id")
    # bulwark_app: owns nothing, no superuser, no BYPASSRLS
    rows = psql(t, """
        SELECT 'role', rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles
          WHERE rolname = 'bulwark_app';
        SELECT 'owns', (SELECT count(*) FROM pg_class WHERE relowner = 'bulwark_app'::regrole)
          + (SELECT count(*) FROM pg_proc WHERE proowner = 'bulwark_app'::regrole)
          + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'bulwark_app'::regrole)
          + (SELECT count(*) FROM pg_type WHERE typowner = 'bulwark_app'::regrole);
        SELECT 'rls', relname, relrowsecurity, relforcerowsecurity FROM pg_class
          WHERE relname IN ('accounts', 'transfers', 'entries', 'idempotency_keys')
            AND relnamespace = 'public'::regnamespace ORDER BY relname;
        """)
    t.eq(rows[0], "role|f|f|f|f", "bulwark_app attributes")
    t.eq(rows[1], "owns|0", "objects owned by bulwark_app")
    t.eq(rows[2:], [f"rls|{tb}|t|t" for tb in sorted(tables)], "ENABLE + FORCE row-level security")

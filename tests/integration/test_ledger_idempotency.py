"""Idempotency-Key on POST /v1/transfers and POST /v1/accounts: a replay
gets the stored status and body byte for byte plus Idempotent-Replayed:
true (stored refusals too); another body or route → 422
idempotency_key_reused; a duplicate in flight → 409 (many concurrent
identical requests: exactly one transfer); keys are scoped to tenant and
API key; a 429 is not stored; expired records are cleaned up."""

import json
import time

from harness import check_problem
from ledgerlib import (Client, check_invariants, db_state, idem, new_key, new_tenant,
                       psql, together, transfers_by_memo)

SETTINGS = dict(workers=4)


def setup(t, c, amount=1000):
    bank = c.create_account("bank", "USD", allow_negative=True)
    alice = c.create_account("alice", "USD")
    bob = c.create_account("bob", "USD")
    c.transfer_ok(bank["id"], alice["id"], amount)
    return bank["id"], alice["id"], bob["id"]


def check_replay(t, first, again, what):
    t.eq(again.status, first.status, f"{what}: replayed status ({again.text[:200]!r})")
    t.eq(again.body, first.body, f"{what}: replayed body, byte for byte")
    t.eq(again.header("Idempotent-Replayed"), "true", f"{what}: Idempotent-Replayed")
    t.eq(again.header("Content-Type"), first.header("Content-Type"), f"{what}: Content-Type")


def test_ledger_idem_replay_is_byte_identical(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice, bob = setup(t, c)
    body = {"from_account": alice, "to_account": bob, "amount": 250, "currency": "USD",
            "memo": "rent \u00e9 \"quoted\""}
    k = idem()
    first = c.req("POST", "/v1/transfers", body, idem_key=k)
    t.eq(first.status, 201, f"first request ({first.text[:200]!r})")
    t.check(first.header("Idempotent-Replayed") is None, "Idempotent-Replayed on the first request")
    after_first = db_state(t, c.tenant_id)
    for i in range(3):
        check_replay(t, first, c.req("POST", "/v1/transfers", body, idem_key=k), f"replay {i + 1}")
    # the same key as an RFC 8941 sf-string is the same key
    check_replay(t, first, c.req("POST", "/v1/transfers", body, idem_key=f'"{k}"'), "quoted key")
    t.eq(db_state(t, c.tenant_id), after_first, "PostgreSQL after the replays")
    t.eq((c.balance(alice), c.balance(bob)), (750, 250), "balances moved once")
    t.eq(transfers_by_memo(t, c.tenant_id, [body["memo"]]), {body["memo"]: 1}, "one transfer")
    # a quoted key with escapes is one key
    k2 = '"' + idem() + '\\"x\\\\"'
    r1 = c.transfer(alice, bob, 1, idem_key=k2)
    t.eq(r1.status, 201, f"sf-string key with escapes ({r1.text[:200]!r})")
    check_replay(t, r1, c.transfer(alice, bob, 1, idem_key=k2), "sf-string key with escapes")
    # 255 characters is the longest key
    k3 = "k" * 240 + idem()[-15:]
    t.eq(len(k3), 255, "key length")
    r1 = c.transfer(alice, bob, 2, idem_key=k3)
    t.eq(r1.status, 201, f"a 255-character key ({r1.text[:200]!r})")
    check_replay(t, r1, c.transfer(alice, bob, 2, idem_key=k3), "255-character key")
    check_invariants(t, [c.tenant_id])


def test_ledger_idem_accounts(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    body = {"name": "idempotent", "currency": "GBP"}
    k = idem()
    first = c.req("POST", "/v1/accounts", body, idem_key=k)
    t.eq(first.status, 201, f"POST /v1/accounts with a key ({first.text[:200]!r})")
    check_replay(t, first, c.req("POST", "/v1/accounts", body, idem_key=k), "account replay")
    r = c.req("POST", "/v1/accounts", {"name": "other", "currency": "GBP"}, idem_key=k)
    check_problem(t, r, 422, "idempotency_key_reused", "account key with another body")
    # without a key, each POST creates an account
    c.create_account("no key", "GBP")
    c.create_account("no key", "GBP")
    names = sorted(a["name"] for p in c.pages("/v1/accounts") for a in p["data"])
    t.eq(names, ["idempotent", "no key", "no key"], "accounts created")
    # a key used on /v1/accounts is not a key for /v1/transfers
    a = first.json()["id"]
    other = c.create_account("other", "GBP", allow_negative=True)["id"]
    r = c.transfer(other, a, 5, "GBP", idem_key=k)
    check_problem(t, r, 422, "idempotency_key_reused", "an account's key on POST /v1/transfers")
    t.eq(c.balance(a), 0, "nothing transferred with a reused key")
    r = c.req("POST", "/v1/accounts", body, idem_key="bad key")
    check_problem(t, r, 400, "invalid_idempotency_key", "a malformed key on POST /v1/accounts")


def test_ledger_idem_stored_refusals_replay(t):
    """A refusal is a final outcome: stored and replayed, even once the
    request would succeed (a new key is needed for that)."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice, bob = setup(t, c, 100)
    cases = [
        (dict(frm=alice, to=bob, amount=101), 422, "insufficient_funds"),
        (dict(frm=alice, to=alice, amount=1), 422, "same_account"),
        (dict(frm=alice, to="nope", amount=1), 404, "account_not_found"),
    ]
    firsts = []
    for kw, status, code in cases:
        r = c.transfer(kw["frm"], kw["to"], kw["amount"])
        check_problem(t, r, status, code, f"first {code}")
        firsts.append((kw, r))
    c.transfer_ok(bank, alice, 1000)  # now alice could pay
    before = db_state(t, c.tenant_id)
    for kw, r in firsts:
        again = c.transfer(kw["frm"], kw["to"], kw["amount"], idem_key=r.idem_key)
        check_replay(t, r, again, f"replayed {r.json()['code']}")
    t.eq(db_state(t, c.tenant_id), before, "nothing written by replayed refusals")
    r = c.transfer(alice, bob, 101)
    t.eq(r.status, 201, f"the same transfer with a new key ({r.text[:200]!r})")


def test_ledger_idem_reuse_with_another_body(t):
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice, bob = setup(t, c)
    k = idem()
    first = c.transfer(alice, bob, 10, idem_key=k)
    t.eq(first.status, 201, "first request")
    before = db_state(t, c.tenant_id)
    variants = [
        ({"from_account": alice, "to_account": bob, "amount": 11, "currency": "USD"}, "another amount"),
        ({"from_account": bob, "to_account": alice, "amount": 10, "currency": "USD"}, "reversed accounts"),
        ({"from_account": alice, "to_account": bob, "amount": 10, "currency": "USD", "memo": "x"}, "a memo"),
    ]
    for body, what in variants:
        r = c.req("POST", "/v1/transfers", body, idem_key=k)
        p = check_problem(t, r, 422, "idempotency_key_reused", f"same key, {what}")
        t.check(r.header("Idempotent-Replayed") is None, f"{what}: 422 marked as replayed")
        t.check("id" not in p, f"{what}: the 422 leaks the stored transfer: {p}")
    # the fingerprint is over the body's bytes: other spacing is another body
    raw = json.dumps({"from_account": alice, "to_account": bob, "amount": 10, "currency": "USD"},
                     indent=2)
    r = c.req("POST", "/v1/transfers", raw, raw=True, idem_key=k)
    check_problem(t, r, 422, "idempotency_key_reused", "same key, same JSON with other spacing")
    t.eq(db_state(t, c.tenant_id), before, "nothing written by reused keys")
    check_replay(t, first, c.transfer(alice, bob, 10, idem_key=k), "the original body still replays")


def test_ledger_idem_scoped_to_tenant_and_key(t):
    t.shared_bulwark()
    ten = new_tenant(t)
    c1 = Client(t, ten)
    c2 = Client(t, new_key(t, ten.tenant_id))
    bank, alice, bob = setup(t, c1)
    k = idem()
    r1 = c1.transfer(alice, bob, 10, idem_key=k)
    t.eq(r1.status, 201, "key 1")
    r2 = c2.transfer(alice, bob, 10, idem_key=k)
    t.eq(r2.status, 201, f"the same Idempotency-Key from another API key ({r2.text[:200]!r})")
    t.check(r2.header("Idempotent-Replayed") is None, "another API key got a replay")
    t.check(r2.json()["id"] != r1.json()["id"], "another API key got the first key's transfer")
    t.eq(c1.balance(bob), 20, "two transfers, one per API key")
    check_replay(t, r2, c2.transfer(alice, bob, 10, idem_key=k), "replay for the second API key")
    check_replay(t, r1, c1.transfer(alice, bob, 10, idem_key=k), "replay for the first API key")
    r = c2.transfer(alice, bob, 99, idem_key=k)
    check_problem(t, r, 422, "idempotency_key_reused", "second API key, other body")
    # another tenant: its own request (its accounts are not the first tenant's)
    o = Client(t, new_tenant(t))
    r3 = o.transfer(alice, bob, 10, idem_key=k)
    check_problem(t, r3, 404, "account_not_found", "another tenant with the same key and body")
    t.check(r3.header("Idempotent-Replayed") is None, "another tenant got a replay")
    t.eq(c1.balance(bob), 20, "balances after the other tenant's attempt")


def test_ledger_idem_in_flight(t):
    """20 identical requests at once, five rounds: exactly one transfer per
    round; every answer is the 201 (first or replayed, same body) or 409
    idempotency_key_in_flight."""
    t.shared_bulwark()
    c = Client(t, new_tenant(t))
    bank, alice, bob = setup(t, c, 10**6)
    memos, seen = [], {}
    for rnd in range(5):
        k, memo = idem(), f"in-flight round {rnd} {idem()}"
        memos.append(memo)
        body = {"from_account": alice, "to_account": bob, "amount": 7, "currency": "USD", "memo": memo}
        rs = together(20, lambda i: c.req("POST", "/v1/transfers", body, idem_key=k))
        errs = [r for r in rs if isinstance(r, Exception)]
        t.check(not errs, f"round {rnd}: transport errors {errs[:3]}")
        firsts = [r for r in rs if r.status == 201 and r.header("Idempotent-Replayed") is None]
        replays = [r for r in rs if r.status == 201 and r.header("Idempotent-Replayed") == "true"]
        conflicts = [r for r in rs if r.status == 409]
        others = [r for r in rs if r.status not in (201, 409)]
        t.check(not others, f"round {rnd}: unexpected answers {[(r.status, r.text[:120]) for r in others[:3]]}")
        t.eq(len(firsts), 1, f"round {rnd}: first (not replayed) 201s")
        for r in replays:
            t.eq(r.body, firsts[0].body, f"round {rnd}: a replay's body")
        for r in conflicts:
            check_problem(t, r, 409, "idempotency_key_in_flight", f"round {rnd}: 409")
            t.check(r.header("Idempotent-Replayed") is None, "a 409 marked as replayed")
        for st, n in (("201", 1), ("replayed", len(replays)), ("409", len(conflicts))):
            seen[st] = seen.get(st, 0) + n
        # a 409 is not stored: the same request afterwards is the replay
        check_replay(t, firsts[0], c.req("POST", "/v1/transfers", body, idem_key=k), f"round {rnd}: after")
    t.h.note(f"in-flight rounds: {seen}")
    t.eq(transfers_by_memo(t, c.tenant_id, memos), {m: 1 for m in memos}, "one transfer per round")
    t.eq(c.balance(bob), 5 * 7, "bob's balance: five transfers")
    check_invariants(t, [c.tenant_id])


def test_ledger_idem_429_is_not_stored(t):
    """A request refused by the rate limit never reached the handler: the
    same key afterwards runs the transfer."""
    t.shared_bulwark()
    ten = new_tenant(t)
    c = Client(t, ten)
    bank, alice, bob = setup(t, c)
    slow = Client(t, t.new_key(ten.tenant_id, rate=1, burst=1))
    t.eq(slow.req("GET", "/v1/accounts?limit=1").status, 200, "the slow key's one request")
    k = idem()
    r = slow.transfer(alice, bob, 5, idem_key=k)
    check_problem(t, r, 429, "rate_limited", "the slow key's second request")
    t.eq(c.balance(bob), 0, "nothing transferred by a 429")
    time.sleep(float(r.header("Retry-After", "1")) + 0.1)  # the input: the client waits out the 429
    r2 = slow.transfer(alice, bob, 5, idem_key=k)
    t.eq(r2.status, 201, f"the same key after the 429 ({r2.text[:200]!r})")
    t.check(r2.header("Idempotent-Replayed") is None, "a 429 was replayed")
    t.eq(c.balance(bob), 5, "one transfer")


def _aged_records(t, c):
    """Stores two records of c's key, 73 h and 71 h old; returns their keys."""
    old, young = idem(), idem()
    psql(t, "INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, route, fingerprint, status, body, "
            "created_at) VALUES (:'p1', :'p2', :'p3', 'POST /v1/transfers', repeat('0', 64), 201, '{}', "
            "now() - interval '73 hours'), (:'p1', :'p2', :'p4', 'POST /v1/transfers', repeat('0', 64), "
            "201, '{}', now() - interval '71 hours');",
         c.tenant_id, c.key.key_id, old, young)
    return old, young


def _cleanup_warnings(b):
    return [x.get("msg") for x in b.log_lines() if "idempotency cleanup" in str(x.get("msg"))]


def test_ledger_idem_expired_records_cleaned_up(t):
    """Records older than 72 h are deleted by the workers' periodic cleanup
    (the first transfer of a worker runs it); younger ones are kept, and the
    cleanup does not fail."""
    c = Client(t, new_tenant(t))
    old, young = _aged_records(t, c)
    b = t.bulwark(workers=1)  # a fresh worker: its first transfer runs the cleanup
    bank, alice, bob = setup(t, c)
    rows = psql(t, "SELECT idem_key FROM idempotency_keys WHERE tenant_id = :'p1' AND idem_key IN "
                   "(:'p2', :'p3') ORDER BY created_at;", c.tenant_id, old, young)
    warnings = _cleanup_warnings(b)
    t.check(not warnings, f"the cleanup failed: {warnings[:2]}")
    t.eq(rows, [young], "idempotency records after the cleanup (73 h old gone, 71 h old kept)")
    # a kept record still replays, a deleted one is a new request
    r = c.transfer(alice, bob, 1, idem_key=young)
    check_problem(t, r, 422, "idempotency_key_reused", "a 71-hour-old key with another body")


def test_ledger_idem_cleanup_reaches_every_tenant(t):
    """The cleanup deletes expired records of every tenant, not only of the
    tenant whose transfer ran it: a tenant that sends nothing any more does
    not keep its records for ever. Younger records of that tenant stay."""
    quiet = Client(t, new_tenant(t))
    _, young = _aged_records(t, quiet)
    b = t.bulwark(workers=1)  # a fresh worker: its first transfer runs the cleanup
    busy = Client(t, new_tenant(t))
    setup(t, busy)
    rows = psql(t, "SELECT idem_key FROM idempotency_keys WHERE tenant_id = :'p1' ORDER BY created_at;",
                quiet.tenant_id)
    warnings = _cleanup_warnings(b)
    t.check(not warnings, f"the cleanup failed: {warnings[:2]}")
    t.eq(rows, [young], "the quiet tenant's records after another tenant's transfer (73 h old gone, 71 h kept)")

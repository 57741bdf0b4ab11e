-- The double-entry ledger: accounts, transfers, their entries, and the
-- idempotency records of POST requests. Every table is a tenant table:
-- FORCE row-level security on bulwark.tenant_id, so a query without any
-- tenant filter still sees one tenant only. Money is bigint minor units.

CREATE TABLE accounts (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants(id),
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
	allow_negative boolean NOT NULL DEFAULT false,
	balance bigint NOT NULL DEFAULT 0,
	version bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	-- The last line of defence: whatever the code does, no forbidden overdraft.
	CONSTRAINT accounts_balance_allowed CHECK (allow_negative OR balance >= 0)
);

CREATE INDEX accounts_tenant_id_idx ON accounts (tenant_id, id);

CREATE TABLE transfers (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants(id),
	from_account uuid NOT NULL REFERENCES accounts(id),
	to_account uuid NOT NULL REFERENCES accounts(id),
	amount bigint NOT NULL CHECK (amount > 0),
	currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
	memo text CHECK (length(memo) <= 500),
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK (from_account <> to_account)
);

CREATE INDEX transfers_tenant_created_idx ON transfers (tenant_id, created_at);

-- Append-only: bulwark_app may insert and read, never change or delete.
CREATE TABLE entries (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id uuid NOT NULL REFERENCES tenants(id),
	account_id uuid NOT NULL REFERENCES accounts(id),
	transfer_id uuid NOT NULL REFERENCES transfers(id),
	amount bigint NOT NULL CHECK (amount <> 0),
	balance_after bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX entries_account_idx ON entries (account_id, id DESC);
CREATE INDEX entries_transfer_idx ON entries (transfer_id);

-- A POST's final outcome, replayed for a retry with the same key. Scoped to
-- the tenant and the API key; kept at least 72 h (see the cleanup in
-- workers/api/idempotency.c, which deletes in small batches).
CREATE TABLE idempotency_keys (
	tenant_id uuid NOT NULL REFERENCES tenants(id),
	key_id text NOT NULL,
	idem_key text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
	route text NOT NULL,
	fingerprint text NOT NULL,
	status integer NOT NULL,
	body text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, key_id, idem_key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
ALTER TABLE transfers ENABLE ROW LEVEL SECURITY;
ALTER TABLE transfers FORCE ROW LEVEL SECURITY;
ALTER TABLE entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE entries FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY accounts_isolation ON accounts
	USING (tenant_id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid);
CREATE POLICY transfers_isolation ON transfers
	USING (tenant_id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid);
CREATE POLICY entries_isolation ON entries
	USING (tenant_id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid);
CREATE POLICY idempotency_keys_isolation ON idempotency_keys
	USING (tenant_id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE ON accounts TO bulwark_app;
GRANT SELECT, INSERT ON transfers, entries TO bulwark_app;
GRANT SELECT, INSERT, DELETE ON idempotency_keys TO bulwark_app;

-- RFC 3339 UTC with milliseconds, the API's one time format.
CREATE FUNCTION bw_rfc3339(t timestamptz) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- One transfer, in the caller's transaction and as the caller (row-level
-- security applies). Both accounts are locked in id order, so two
-- transfers over the same pair can never deadlock; every check happens
-- before the first write, so a refusal writes nothing. Returns one row:
-- outcome 'ok' with the transfer's id, time and the two new balances, or
-- the error code the API answers with.
CREATE FUNCTION ledger_transfer(p_from uuid, p_to uuid, p_amount bigint, p_currency text,
                                p_memo text)
	RETURNS TABLE (outcome text, transfer_id uuid, created_at text)
	LANGUAGE plpgsql
	AS $$
DECLARE
	v_tenant uuid := nullif(current_setting('bulwark.tenant_id', true), '')::uuid;
	v_from accounts;
	v_to accounts;
	v_row accounts;
	v_id uuid;
	v_at timestamptz;
	v_from_balance bigint;
	v_to_balance bigint;
BEGIN
	IF p_from = p_to THEN
		RETURN QUERY SELECT 'same_account', NULL::uuid, NULL::text;
		RETURN;
	END IF;
	FOR v_row IN SELECT * FROM accounts a WHERE a.id IN (p_from, p_to) ORDER BY a.id
	             FOR NO KEY UPDATE LOOP
		IF v_row.id = p_from THEN
			v_from := v_row;
		ELSE
			v_to := v_row;
		END IF;
	END LOOP;
	IF v_from.id IS NULL OR v_to.id IS NULL THEN
		RETURN QUERY SELECT 'account_not_found', NULL::uuid, NULL::text;
		RETURN;
	END IF;
	IF v_from.currency <> p_currency OR v_to.currency <> p_currency THEN
		RETURN QUERY SELECT 'currency_mismatch', NULL::uuid, NULL::text;
		RETURN;
	END IF;
	IF NOT v_from.allow_negative AND v_from.balance < p_amount THEN
		RETURN QUERY SELECT 'insufficient_funds', NULL::uuid, NULL::text;
		RETURN;
	END IF;
	-- bigint is the limit of every balance, in both directions.
	IF v_to.balance > 9223372036854775807 - p_amount
	   OR v_from.balance < -9223372036854775807 + p_amount THEN
		RETURN QUERY SELECT 'balance_out_of_range', NULL::uuid, NULL::text;
		RETURN;
	END IF;
	INSERT INTO transfers (tenant_id, from_account, to_account, amount, currency, memo)
	VALUES (v_tenant, p_from, p_to, p_amount, p_currency, p_memo)
	RETURNING id, transfers.created_at INTO v_id, v_at;
	UPDATE accounts SET balance = balance - p_amount, version = version + 1
	WHERE id = p_from RETURNING balance INTO v_from_balance;
	UPDATE accounts SET balance = balance + p_amount, version = version + 1
	WHERE id = p_to RETURNING balance INTO v_to_balance;
	INSERT INTO entries (tenant_id, account_id, transfer_id, amount, balance_after)
	VALUES (v_tenant, p_from, v_id, -p_amount, v_from_balance),
	       (v_tenant, p_to, v_id, p_amount, v_to_balance);
	RETURN QUERY SELECT 'ok', v_id, bw_rfc3339(v_at);
END
$$;

REVOKE ALL ON FUNCTION ledger_transfer(uuid, uuid, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_transfer(uuid, uuid, bigint, text, text) TO bulwark_app;

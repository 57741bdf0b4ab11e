-- ledger_transfer_request() (schema/006) locked both accounts with one
-- `WHERE id IN (from, to) ORDER BY id` scan. PostgreSQL may plan that as an
-- ordered walk of the tenant's (tenant_id, id) index with the ids as a mere
-- filter (row-level security adds the tenant condition): seen on a tenant
-- with 10,000 accounts, each transfer read all of them (2.5 ms instead of
-- 0.05 ms). Two single-row locks by primary key, lower id first, keep the
-- deadlock-free order and leave the planner no such choice. The rest of
-- the body is unchanged.
CREATE OR REPLACE FUNCTION ledger_transfer_request(p_tenant text, p_key_id text, p_idem_key text,
                                        p_route text, p_fingerprint text, p_request_id text,
                                        p_from uuid, p_to uuid, p_amount bigint,
                                        p_currency text, p_memo text)
	RETURNS TABLE (state text, status integer, code text, request_id text, transfer_id uuid,
	               from_account uuid, to_account uuid, amount bigint, currency text, memo text,
	               created_at text, body text)
	LANGUAGE plpgsql
	AS $$
DECLARE
	v_tenant uuid := p_tenant::uuid;
	v_stored idempotency_keys;
	v_from accounts;
	v_to accounts;
	v_outcome text;
	v_id uuid;
	v_at timestamptz;
	v_from_balance bigint;
	v_to_balance bigint;
	v_status integer;
	v_code text;
BEGIN
	PERFORM set_config('bulwark.tenant_id', p_tenant, true);
	IF NOT pg_try_advisory_xact_lock(
	        hashtextextended(p_tenant || '/' || p_key_id || '/' || p_idem_key, 0)) THEN
		state := 'in_flight';
		RETURN NEXT;
		RETURN;
	END IF;
	SELECT * INTO v_stored FROM idempotency_keys i
	WHERE i.tenant_id = v_tenant AND i.key_id = p_key_id AND i.idem_key = p_idem_key;
	IF FOUND THEN
		RETURN QUERY SELECT CASE WHEN v_stored.route = p_route
		                          AND v_stored.fingerprint = p_fingerprint
		                         THEN 'stored' ELSE 'reused' END,
		                    v_stored.status, v_stored.code, v_stored.request_id, t.id,
		                    t.from_account, t.to_account, t.amount, t.currency, t.memo,
		                    bw_rfc3339(t.created_at), v_stored.body
		             FROM (SELECT 1) AS one
		             LEFT JOIN transfers t ON t.id = v_stored.transfer_id;
		RETURN;
	END IF;

	IF p_from = p_to THEN
		v_outcome := 'same_account';
	ELSE
		-- Lower id first, as every transfer does, so two transfers between
		-- the same accounts never deadlock; each row by its primary key.
		IF p_from < p_to THEN
			SELECT * INTO v_from FROM accounts a WHERE a.id = p_from FOR NO KEY UPDATE;
			SELECT * INTO v_to FROM accounts a WHERE a.id = p_to FOR NO KEY UPDATE;
		ELSE
			SELECT * INTO v_to FROM accounts a WHERE a.id = p_to FOR NO KEY UPDATE;
			SELECT * INTO v_from FROM accounts a WHERE a.id = p_from FOR NO KEY UPDATE;
		END IF;
		IF v_from.id IS NULL OR v_to.id IS NULL THEN
			v_outcome := 'account_not_found';
		ELSIF v_from.currency <> p_currency OR v_to.currency <> p_currency THEN
			v_outcome := 'currency_mismatch';
		ELSIF NOT v_from.allow_negative AND v_from.balance < p_amount THEN
			v_outcome := 'insufficient_funds';
		ELSIF v_to.balance > 9223372036854775807 - p_amount
		      OR v_from.balance < -9223372036854775807 + p_amount THEN
			v_outcome := 'balance_out_of_range';
		ELSE
			v_outcome := 'ok';
			INSERT INTO transfers (tenant_id, from_account, to_account, amount, currency, memo)
			VALUES (v_tenant, p_from, p_to, p_amount, p_currency, p_memo)
			RETURNING transfers.id, transfers.created_at INTO v_id, v_at;
			UPDATE accounts SET balance = balance - p_amount, version = version + 1
			WHERE id = p_from RETURNING balance INTO v_from_balance;
			UPDATE accounts SET balance = balance + p_amount, version = version + 1
			WHERE id = p_to RETURNING balance INTO v_to_balance;
			INSERT INTO entries (tenant_id, account_id, transfer_id, amount, balance_after)
			VALUES (v_tenant, p_from, v_id, -p_amount, v_from_balance),
			       (v_tenant, p_to, v_id, p_amount, v_to_balance);
		END IF;
	END IF;

	v_status := CASE v_outcome WHEN 'ok' THEN 201 WHEN 'account_not_found' THEN 404 ELSE 422 END;
	v_code := CASE WHEN v_outcome = 'ok' THEN NULL ELSE v_outcome END;
	INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, route, fingerprint, status,
	                              transfer_id, code, request_id)
	VALUES (v_tenant, p_key_id, p_idem_key, p_route, p_fingerprint, v_status, v_id, v_code,
	        p_request_id);
	state := 'new';
	status := v_status;
	code := v_code;
	request_id := p_request_id;
	IF v_outcome = 'ok' THEN
		transfer_id := v_id;
		from_account := p_from;
		to_account := p_to;
		amount := p_amount;
		currency := p_currency;
		memo := p_memo;
		created_at := bw_rfc3339(v_at);
	END IF;
	RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION ledger_transfer_request(text, text, text, text, text, text, uuid, uuid,
                                               bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_transfer_request(text, text, text, text, text, text, uuid, uuid,
                                                  bigint, text, text) TO bulwark_app;

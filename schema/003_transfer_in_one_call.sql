-- A transfer in one round trip: the Idempotency-Key claim and lookup and
-- ledger_transfer() in one call, so POST /v1/transfers costs two round
-- trips (BEGIN … this; INSERT outcome; COMMIT) instead of five.
--
-- state: 'in_flight' (another transaction holds the key: 409), 'stored'
-- (an outcome exists: replay or 422, decided by the caller from route and
-- fingerprint), or 'new' with ledger_transfer's outcome.
CREATE FUNCTION ledger_transfer_once(p_key_id text, p_idem_key text, p_from uuid, p_to uuid,
                                     p_amount bigint, p_currency text, p_memo text)
	RETURNS TABLE (state text, route text, fingerprint text, status integer, body text,
	               outcome text, transfer_id uuid, created_at text)
	LANGUAGE plpgsql
	AS $$
DECLARE
	v_tenant text := current_setting('bulwark.tenant_id', true);
	v_stored idempotency_keys;
BEGIN
	IF NOT pg_try_advisory_xact_lock(
	        hashtextextended(v_tenant || '/' || p_key_id || '/' || p_idem_key, 0)) THEN
		RETURN QUERY SELECT 'in_flight', NULL::text, NULL::text, NULL::integer, NULL::text,
		                    NULL::text, NULL::uuid, NULL::text;
		RETURN;
	END IF;
	SELECT * INTO v_stored FROM idempotency_keys i
	WHERE i.tenant_id = v_tenant::uuid AND i.key_id = p_key_id AND i.idem_key = p_idem_key;
	IF FOUND THEN
		RETURN QUERY SELECT 'stored', v_stored.route, v_stored.fingerprint, v_stored.status,
		                    v_stored.body, NULL::text, NULL::uuid, NULL::text;
		RETURN;
	END IF;
	RETURN QUERY SELECT 'new', NULL::text, NULL::text, NULL::integer, NULL::text, t.outcome,
	                    t.transfer_id, t.created_at
	             FROM ledger_transfer(p_from, p_to, p_amount, p_currency, p_memo) t;
END
$$;

REVOKE ALL ON FUNCTION ledger_transfer_once(text, text, uuid, uuid, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_transfer_once(text, text, uuid, uuid, bigint, text, text)
	TO bulwark_app;

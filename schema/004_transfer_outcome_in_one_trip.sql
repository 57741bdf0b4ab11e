-- A transfer in one round trip: the outcome is stored by the function
-- itself, so BEGIN, the transfer and COMMIT go in one string and the
-- accounts stay locked only while the server works (not while a reply
-- travels to the worker and its next statement comes back).
--
-- A stored transfer outcome keeps what its response is made of instead of
-- the response text: the transfer (201) or the refusal code, and the
-- request_id of the first response, from which a replay renders the same
-- bytes.
ALTER TABLE idempotency_keys ADD COLUMN transfer_id uuid;
ALTER TABLE idempotency_keys ADD COLUMN code text;
ALTER TABLE idempotency_keys ADD COLUMN request_id text;
ALTER TABLE idempotency_keys ALTER COLUMN body DROP NOT NULL;

-- state: 'in_flight' (another transaction holds the key: 409), 'reused'
-- (stored for another route or body: 422), 'stored' (a replay), 'new'.
-- status, code and request_id describe the outcome; the transfer columns
-- are set when status is 201; body is set for outcomes stored as text.
CREATE FUNCTION ledger_transfer_idempotent(p_key_id text, p_idem_key text, p_route text,
                                           p_fingerprint text, p_request_id text, p_from uuid,
                                           p_to uuid, p_amount bigint, p_currency text,
                                           p_memo text)
	RETURNS TABLE (state text, status integer, code text, request_id text, transfer_id uuid,
	               from_account uuid, to_account uuid, amount bigint, currency text, memo text,
	               created_at text, body text)
	LANGUAGE plpgsql
	AS $$
DECLARE
	v_tenant text := current_setting('bulwark.tenant_id', true);
	v_stored idempotency_keys;
	v_outcome text;
	v_id uuid;
	v_status integer;
BEGIN
	IF NOT pg_try_advisory_xact_lock(
	        hashtextextended(v_tenant || '/' || p_key_id || '/' || p_idem_key, 0)) THEN
		RETURN QUERY SELECT 'in_flight', NULL::integer, NULL::text, NULL::text, NULL::uuid,
		                    NULL::uuid, NULL::uuid, NULL::bigint, NULL::text, NULL::text,
		                    NULL::text, NULL::text;
		RETURN;
	END IF;
	SELECT * INTO v_stored FROM idempotency_keys i
	WHERE i.tenant_id = v_tenant::uuid AND i.key_id = p_key_id AND i.idem_key = p_idem_key;
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
	SELECT l.outcome, l.transfer_id INTO v_outcome, v_id
	FROM ledger_transfer(p_from, p_to, p_amount, p_currency, p_memo) l;
	v_status := CASE v_outcome WHEN 'ok' THEN 201 WHEN 'account_not_found' THEN 404 ELSE 422 END;
	INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, route, fingerprint, status,
	                              transfer_id, code, request_id)
	VALUES (v_tenant::uuid, p_key_id, p_idem_key, p_route, p_fingerprint, v_status, v_id,
	        CASE WHEN v_outcome = 'ok' THEN NULL ELSE v_outcome END, p_request_id);
	RETURN QUERY SELECT 'new', v_status, CASE WHEN v_outcome = 'ok' THEN NULL ELSE v_outcome END,
	                    p_request_id, t.id, t.from_account, t.to_account, t.amount, t.currency,
	                    t.memo, bw_rfc3339(t.created_at), NULL::text
	             FROM (SELECT 1) AS one LEFT JOIN transfers t ON t.id = v_id;
END
$$;

REVOKE ALL ON FUNCTION ledger_transfer_idempotent(text, text, text, text, text, uuid, uuid, bigint,
                                                  text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_transfer_idempotent(text, text, text, text, text, uuid, uuid,
                                                     bigint, text, text) TO bulwark_app;

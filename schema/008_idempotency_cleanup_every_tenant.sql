-- The workers' cleanup of idempotency records ran as bulwark_app with the
-- tenant of the transfer that triggered it: row-level security showed it
-- that tenant's expired records only, so a tenant that stopped sending
-- transfers kept its records for ever. The cleanup is now this function:
-- SECURITY DEFINER, so it runs as the owner, which a policy of its own lets
-- see expired records of every tenant, and nothing younger. bulwark_app's
-- view is unchanged: the policy names the owner only, and the function
-- returns a count, never a row.
--
-- A batch at a time, rows only: SKIP LOCKED, so two workers cleaning at
-- once never wait for each other; the table itself is never locked.
CREATE POLICY idempotency_keys_expired_for_cleanup ON idempotency_keys
	TO CURRENT_USER
	USING (created_at < now() - interval '72 hours');

CREATE FUNCTION idempotency_cleanup(p_batch integer) RETURNS integer
	LANGUAGE sql SECURITY DEFINER
	SET search_path = public, pg_temp
	AS $$
	WITH gone AS (
		DELETE FROM idempotency_keys
		WHERE ctid IN (SELECT ctid FROM idempotency_keys
		               WHERE created_at < now() - interval '72 hours'
		               LIMIT p_batch FOR UPDATE SKIP LOCKED)
		RETURNING 1)
	SELECT count(*)::integer FROM gone
	$$;

REVOKE ALL ON FUNCTION idempotency_cleanup(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION idempotency_cleanup(integer) TO bulwark_app;

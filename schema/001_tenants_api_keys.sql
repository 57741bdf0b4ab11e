-- Tenants and their API keys, and the role the workers connect as.
--
-- bulwark_app owns nothing and may only read these two tables; row-level
-- security (FORCE, so it would bind an owner that is not a superuser too)
-- shows it the rows of the tenant set with
-- set_config('bulwark.tenant_id', …, true) in the request's transaction,
-- or the one key named by bulwark.key_id while a worker authenticates.

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_app') THEN
		CREATE ROLE bulwark_app LOGIN NOINHERIT;
	END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO bulwark_app;

-- The tenant-wide rate policy: requests per second and burst, shared by
-- all of the tenant's keys.
CREATE TABLE tenants (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	rate numeric(12,3) NOT NULL CHECK (rate > 0),
	burst integer NOT NULL CHECK (burst >= 1),
	created_at timestamptz NOT NULL DEFAULT now()
);

-- A key is bk_<key_id>_<secret>; only the SHA-256 of the secret is kept.
CREATE TABLE api_keys (
	key_id text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
	tenant_id uuid NOT NULL REFERENCES tenants(id),
	secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
	scopes text[] NOT NULL DEFAULT '{}',
	rate numeric(12,3) NOT NULL CHECK (rate > 0),
	burst integer NOT NULL CHECK (burst >= 1),
	created_at timestamptz NOT NULL DEFAULT now(),
	revoked_at timestamptz
);

CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY tenants_isolation ON tenants
	USING (id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid);

-- The second arm lets a worker look one key up by its id before it knows
-- the tenant (it sets bulwark.key_id with set_config(…, true)).
CREATE POLICY api_keys_isolation ON api_keys
	USING (tenant_id = nullif(current_setting('bulwark.tenant_id', true), '')::uuid
	       OR key_id = nullif(current_setting('bulwark.key_id', true), ''));

GRANT SELECT ON tenants, api_keys TO bulwark_app;

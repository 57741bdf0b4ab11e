-- Every insert into a table with a foreign key to tenants takes FOR KEY
-- SHARE on the tenant's row; with many transfers of one tenant in flight
-- that row collects a multixact of all of them, and each new locker copies
-- the list: throughput fell as concurrency rose. The tables written per
-- transfer drop that key. Their tenant_id still cannot be wrong: it comes
-- from bulwark.tenant_id inside ledger_transfer(), the accounts it moves
-- money between keep their own key to tenants, and row-level security
-- checks it on every read.
ALTER TABLE transfers DROP CONSTRAINT transfers_tenant_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_tenant_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_tenant_id_fkey;

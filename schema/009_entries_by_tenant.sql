-- bulwark:no-transaction
-- The summary's top accounts aggregate a tenant's entries, and entries had
-- no index that starts with the tenant: every recompute read the whole
-- table, every tenant's rows, to keep one tenant's (on the dev stack, 57 ms
-- for a tenant with no entries at all among 1.5 million). With this index a
-- recompute reads the tenant's entries only, in account order.
CREATE INDEX CONCURRENTLY IF NOT EXISTS entries_tenant_account_idx
	ON entries (tenant_id, account_id);

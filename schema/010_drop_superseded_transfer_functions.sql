-- Three transfer functions no code calls any more: ledger_transfer (002),
-- ledger_transfer_once (003) and ledger_transfer_idempotent (004) were each
-- replaced by the next, and all of them by ledger_transfer_request (006,
-- redefined in 007), the one statement the workers prepare. They were still
-- executable by bulwark_app: a reader of the schema had to find out which
-- transfer function is live, and the worker role could reach code paths
-- nobody tests. 006 kept them for workers of the release before it during a
-- rolling upgrade; every release since calls ledger_transfer_request only,
-- so an upgrade from one older than 006 goes through a release that has
-- 006-009 first. Dropping a function takes no table lock.
DROP FUNCTION ledger_transfer_idempotent(text, text, text, text, text, uuid, uuid, bigint, text,
                                         text);
DROP FUNCTION ledger_transfer_once(text, text, uuid, uuid, bigint, text, text);
DROP FUNCTION ledger_transfer(uuid, uuid, bigint, text, text);

/* What a worker sends for POST /v1/transfers: ledger_transfer_request()
 * (schema/007) as one statement, its own transaction, prepared once per
 * connection. bench/minimal_responder.c sends the very same statement to
 * measure what the database alone allows. */
#ifndef BW_API_TRANSFER_SQL_H
#define BW_API_TRANSFER_SQL_H

/* $1 tenant, $2 key_id, $3 Idempotency-Key, $4 route, $5 body fingerprint,
 * $6 request id, $7 from, $8 to, $9 amount, $10 currency, $11 memo. */
#define TRANSFER_SQL                                                                               \
	"SELECT state, status::text, code, request_id, transfer_id::text, from_account::text, "    \
	"to_account::text, amount::text, currency, memo, created_at, body "                        \
	"FROM ledger_transfer_request($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
#define TRANSFER_NPARAMS 11

/* The columns of its one row. From TRANSFER_ID to TRANSFER_BODY: the
 * transfer, in the order of BW_TRANSFER_COLUMNS (api/transfers.c). */
enum transfer_sql_col {
	TRANSFER_STATE,
	TRANSFER_STATUS,
	TRANSFER_CODE,
	TRANSFER_REQUEST_ID,
	TRANSFER_ID,
	TRANSFER_FROM,
	TRANSFER_TO,
	TRANSFER_AMOUNT,
	TRANSFER_CURRENCY,
	TRANSFER_MEMO,
	TRANSFER_CREATED_AT,
	TRANSFER_BODY,
};

#endif

/* Idempotency-Key (draft-ietf-httpapi-idempotency-key-header), kept in
 * PostgreSQL in the same transaction as the work it protects, so a claim
 * and its outcome commit together. Scoped to tenant and API key; the
 * fingerprint is SHA-256 of the body. */
#ifndef BW_IDEMPOTENCY_H
#define BW_IDEMPOTENCY_H

#include <stdbool.h>

#include "api/db.h"
#include "core/secret.h"

struct bw_idem {
	const char *key; /* NULL: the request has none */
	char fingerprint[BW_SHA256_HEX_LEN + 1];
};

/* Reads the header. required: missing → 400. Returns false when the
 * response (400) is set. */
bool bw_idem_read(struct bw_request *req, struct bw_idem *idem, bool required);

/* Inside the request's transaction: takes the key's advisory lock (busy →
 * 409, the same key is in flight) and looks for a stored outcome (same
 * body → replay with Idempotent-Replayed: true; other body → 422).
 * Returns BW_OK to go on (no outcome stored, the key is ours until COMMIT),
 * BW_DONE when it answered (replay, 409 or 422: the response is set, the
 * transaction rolled back), or what bw_db_query returned (BW_ERR: the
 * response is set; BW_RETRY). */
enum bw_rc bw_idem_check(struct bw_request *req, const struct bw_idem *idem);
/* Answers from a stored outcome (route, fingerprint, status, body): a
 * replay when route and fingerprint match, else 422. */
void bw_idem_answer_stored(struct bw_request *req, const struct bw_idem *idem, const char *route,
                           const char *fingerprint, const char *status, const char *body);
/* Stores the response now set on req when it is final (2xx, or 4xx other
 * than 401, 409, 429), still inside the transaction. Returns as bw_db_query;
 * BW_RETRY too when a twin committed the same key after our check. */
enum bw_rc bw_idem_store(struct bw_request *req, const struct bw_idem *idem);
/* Deletes a batch of records older than 72 h, at most once a minute per
 * worker, in its own short transaction; never blocks the table. */
void bw_idem_cleanup(struct bw_request *req);

#endif

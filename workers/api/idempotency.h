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

enum bw_idem_rc {
	BW_IDEM_NEW,      /* go on: no outcome stored, the key is ours until COMMIT */
	BW_IDEM_ANSWERED, /* replayed (or 409/422): response set, transaction rolled back */
	BW_IDEM_FAILED,   /* database error: response set */
	BW_IDEM_RETRY,
};

/* Inside the request's transaction: takes the key's advisory lock (busy →
 * 409, the same key is in flight) and looks for a stored outcome (same
 * body → replay with Idempotent-Replayed: true; other body → 422). */
enum bw_idem_rc bw_idem_check(struct bw_request *req, const struct bw_idem *idem);
/* Answers from a stored outcome (route, fingerprint, status, body): a
 * replay when route and fingerprint match, else 422. */
void bw_idem_answer_stored(struct bw_request *req, const struct bw_idem *idem, const char *route,
                           const char *fingerprint, const char *status, const char *body);
/* Stores the response now set on req when it is final (2xx, or 4xx other
 * than 401, 409, 429), still inside the transaction. */
enum bw_db_rc bw_idem_store(struct bw_request *req, const struct bw_idem *idem);
/* Deletes a batch of records older than 72 h, at most once a minute per
 * worker, in its own short transaction; never blocks the table. */
void bw_idem_cleanup(struct bw_request *req);

#endif

/* The return codes of the store adapters (store/pg.c, redis.c, mongo.c) and
 * of the request-level database helpers (api/db.c, api/idempotency.c): one
 * small closed vocabulary, in the manner of nginx's NGX_OK/NGX_ERROR. Every
 * code but BW_OK is negative, so `rc < 0` reads "did not go through". A
 * function's contract comment says which of these it can return. */
#ifndef BW_RC_H
#define BW_RC_H

enum bw_rc {
	BW_OK = 0,
	/* Failed: the dependency is down, did not answer in time or broke the
	 * connection (the error is filled: core/err.h; an adapter has told
	 * its breaker). In api/db.c: the response (503, 500) is set, the
	 * transaction is gone. */
	BW_ERR = -1,
	/* The open circuit breaker turned the call away: no I/O was done. */
	BW_REFUSED = -2,
	/* The server is up and refused the request itself (the error's code
	 * says why): not an outage, the breaker is left alone. A bug of ours
	 * (answer 500) unless the caller expects that code, such as a
	 * PostgreSQL serialization failure or unique violation. */
	BW_INVALID = -3,
	/* Nothing that counts was done: run the same work again. A
	 * serialization failure or deadlock (the whole transaction), or a kept
	 * connection found broken (the call, once, on a fresh connection). */
	BW_RETRY = -4,
	/* The response is set and nothing failed (a replayed idempotent
	 * request, 409, 422): stop here. */
	BW_DONE = -5,
};

#endif

/* The error of a call to a store (store/pg.c, redis.c, mongo.c) and of what
 * is built on them (api/db.c, api/keys.c, the health checks of
 * store/breaker.c): one struct, filled the same way by every adapter, so
 * that a caller handles a failure of PostgreSQL, Redis or MongoDB with the
 * same code. The return codes are core/rc.h's.
 *
 * The contract: a function that takes a struct bw_err * and returns an
 * enum bw_rc fills it whenever it returns something other than BW_OK, and
 * returns its rc then. Its contract comment says which codes it can return
 * and what the code field holds for it. The adapters' calls clear it
 * first: after BW_OK its message is "".
 *
 * Not for start-up: a plain message for the operator while the daemon or
 * a command starts (bw_config_load, bw_listen_open, bw_status_open, the
 * migration lint) is written into `char *err, size_t errlen`; nothing
 * decides on it but "stop". The telemetry validator's struct bw_tel_error
 * (a JSON pointer and offset for the client) is not a store error either.
 */
#ifndef BW_ERR_H
#define BW_ERR_H

#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"

struct bw_err {
	enum bw_rc rc; /* BW_ERR, BW_REFUSED, BW_INVALID or BW_RETRY (rc.h) */
	/* The server's own name for the error, "" when it gave none (the
	 * connection failed, the breaker refused): PostgreSQL's SQLSTATE
	 * ("40001"), MongoDB's error code in decimal ("11000"), the first
	 * word of a Redis error reply ("WRONGTYPE"). */
	char code[16];
	/* One line for a log, stderr or /readyz; never in a problem body. */
	char message[256];
	/* For BW_ERR and BW_REFUSED: milliseconds until the dependency's
	 * breaker lets a call through again, 0 when it does now. */
	int64_t retry_after_ms;
};

/* No error: rc BW_OK, empty code and message, no retry_after_ms. */
void bw_err_clear(struct bw_err *e);

/* Fills e: rc, the message from fmt (truncated to fit), no code, no
 * retry_after_ms (the caller sets those it has); the arguments must not
 * point into e. Returns rc, so a failure can end in
 * `return bw_err_set(e, BW_ERR, "…")`. */
enum bw_rc bw_err_set(struct bw_err *e, enum bw_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

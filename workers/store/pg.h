/* PostgreSQL adapter (pg.c is the only file that includes libpq-fe.h).
 * One connection per worker, opened on first use after fork, dropped on any
 * connection-level failure and reopened by the next call the breaker lets
 * through. Everything here is single-threaded, like the worker. */
#ifndef BW_PG_H
#define BW_PG_H

#include <stddef.h>

#include "store/breaker.h"

struct bw_config;

/* Returned instead of -1 when the open breaker refused the call: no I/O
 * was done, err says how long until the next probe. */
#define BW_PG_REFUSED (-2)

/* Keeps cfg (it must outlive the adapter) and resets the breaker, whose
 * probe backoff doubles from breaker_cooldown_ms up to max_cooldown_ms. No I/O. */
void bw_pg_init(const struct bw_config *cfg, int64_t max_cooldown_ms);
/* Closes the connection if this process opened it (a handle inherited over
 * fork is forgotten, never used or closed). */
void bw_pg_close(void);

/* SELECT 1, connecting first if needed; the whole call, connect included,
 * is bounded by timeout_ms. Returns 0 when the server answered, -1 on
 * failure (err filled, breaker told), BW_PG_REFUSED when the breaker is
 * open. A kept connection that fails at once (server restarted) is replaced
 * and the ping retried once within the same budget. */
int bw_pg_ping(int timeout_ms, char *err, size_t errlen);

const struct bw_breaker *bw_pg_breaker(void);

#endif

/* MongoDB adapter (mongo.c is the only file that includes mongoc.h). One
 * single-threaded mongoc_client_t per worker, created on first use after
 * fork (mongoc_init happens then too), destroyed on any network or server
 * selection error and created again by the next call the breaker lets
 * through. */
#ifndef BW_MONGO_H
#define BW_MONGO_H

#include <stddef.h>

#include "store/breaker.h"

struct bw_config;

/* Returned instead of -1 when the open breaker refused the call: no I/O
 * was done, err says how long until the next probe. */
#define BW_MONGO_REFUSED (-2)

/* Keeps cfg (it must outlive the adapter) and resets the breaker, whose
 * probe backoff doubles from breaker_cooldown_ms up to max_cooldown_ms. No I/O,
 * no mongoc calls: safe in the master. */
void bw_mongo_init(const struct bw_config *cfg, int64_t max_cooldown_ms);
/* Destroys the client and calls mongoc_cleanup if this process set them up
 * (a client inherited over fork is reset first, as mongoc requires). */
void bw_mongo_close(void);

/* {ping: 1} on admin, creating the client first if needed. Connect, reads
 * and writes are bounded by timeout_ms; only the hello handshake of a new
 * connection (run by mongoc itself) can take up to connect_timeout_ms, when
 * the server accepts TCP but does not answer. Returns 0 on ok:1, -1 on failure (err
 * filled, breaker told), BW_MONGO_REFUSED when the breaker is open. A kept
 * connection that fails at once (server restarted) is replaced and the
 * ping retried once within the same budget. */
int bw_mongo_ping(int timeout_ms, char *err, size_t errlen);

/* The database named in the URI, "bulwark" when it names none. The first
 * call runs mongoc_init and parses the URI: call it after fork only. */
const char *bw_mongo_db_name(void);

const struct bw_breaker *bw_mongo_breaker(void);

#endif

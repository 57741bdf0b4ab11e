/* MongoDB adapter (mongo.c and its deadline stream, mongo_stream.c, are the
 * only files that include mongoc.h). One single-threaded mongoc_client_t
 * per worker, created on first use after fork (mongoc_init happens then
 * too), destroyed on any network or server selection error and created
 * again by the next call the breaker lets through. */
#ifndef BW_MONGO_H
#define BW_MONGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/err.h"
#include "core/rc.h"
#include "store/breaker.h"

struct bw_config;

/* The mongo dependency (store.h). Its ping is {ping: 1} on admin: connect,
 * reads and writes are bounded by timeout_ms; only the hello handshake of
 * a new connection (run by mongoc itself) can take up to
 * connect_timeout_ms, when the server accepts TCP but does not answer. Its
 * init makes no mongoc call: safe in the master. Its close destroys the
 * client and calls mongoc_cleanup if this process set them up (a client
 * inherited over fork is reset first, as mongoc requires); mongoc cannot
 * be used again in this process afterwards. */
extern const struct bw_dep_ops bw_mongo_ops;

/* bw_mongo_ops' init and close, for the commands other than serve. */
void bw_mongo_init(const struct bw_config *cfg, int64_t max_cooldown_ms);
void bw_mongo_close(void);

/* The database named in the URI, "bulwark" when it names none. The first
 * call runs mongoc_init and parses the URI: call it after fork only. */
const char *bw_mongo_db_name(void);

/* Milliseconds until the breaker lets a call through (0 when closed). */
int64_t bw_mongo_retry_after_ms(void);

/* ---- operations (all bounded by mongo_timeout_ms, all behind the breaker) ----
 * Each returns BW_OK, or with err filled (core/err.h): BW_ERR when MongoDB
 * is unavailable or did not answer in time (breaker told: answer 503),
 * BW_REFUSED when the open breaker refused the call (no I/O), both with
 * err->retry_after_ms; or BW_INVALID when the server refused the request
 * itself (a bug of ours: answer 500). err->code is the server's error code
 * when it gave one. A kept connection that fails at once (server
 * restarted) is replaced and the call tried once more, before anything was
 * returned to the caller. */

/* What is known of one document of bw_mongo_insert_new. */
enum bw_mongo_fate {
	BW_MONGO_UNKNOWN = 0, /* no acknowledgement: it may or may not be stored */
	BW_MONGO_STORED,      /* inserted, acknowledged with the write concern */
	BW_MONGO_DUPLICATE,   /* a document with this _id already existed */
	BW_MONGO_FAILED,      /* the server refused this document (a write error) */
};

/* Inserts docs[i] with _id ids[i] into collection unless a document with
 * that _id exists: one unordered bulk of update_one({_id}, {$setOnInsert:
 * doc}, upsert) -- unlike insert_many, it behaves the same on MongoDB and
 * jongodb and reports each new document's index -- under the configured
 * write concern (mongo_write_w, mongo_write_journal, mongo_wtimeout_ms).
 * insert_first: send an unordered insert_many of {_id, ...doc} first
 * (cheaper on servers whose upserts scan, jongodb), and the upsert bulk
 * only when the server refused that whole over a duplicate _id (jongodb;
 * MongoDB stores the rest and reports each duplicate, which is used as is).
 * Returns BW_OK when everything was acknowledged (every fate STORED or
 * DUPLICATE); BW_ERR otherwise with fates telling what is known (a write
 * concern error leaves the new ones UNKNOWN: written, not confirmed), also
 * when the server refused some documents; BW_INVALID when mongoc refused
 * the bulk before sending it; on BW_REFUSED nothing was sent and every fate
 * is UNKNOWN. Retrying with the same ids is always safe. */
enum bw_rc bw_mongo_insert_new(const char *collection, const bson_oid_t *ids, bson_t *const *docs,
                               size_t n, bool insert_first, enum bw_mongo_fate *fates,
                               struct bw_err *err);

/* Called for each document found, in order; non-zero stops the scan. The
 * document is valid during the call only. */
typedef int (*bw_mongo_doc_fn)(const bson_t *doc, void *arg);

/* find(filter, opts) on collection, calling fn for each document. When it
 * fails after some documents were passed to fn, the caller must discard
 * what it did with them. */
enum bw_rc bw_mongo_find(const char *collection, const bson_t *filter, const bson_t *opts,
                         bw_mongo_doc_fn fn, void *arg, struct bw_err *err);

/* Runs cmd on the database of the URI (createIndexes for `bulwark
 * migrate`, store/mongo_index.c) within timeout_ms. reply is always
 * initialised (the caller destroys it). */
enum bw_rc bw_mongo_command(const bson_t *cmd, bson_t *reply, int timeout_ms, struct bw_err *err);

#endif

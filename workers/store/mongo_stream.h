/* The deadline stream of the MongoDB adapter. mongoc 1.x has no per-call
 * timeout: every read and write on a connection waits up to
 * socketTimeoutMS. The client's streams are therefore wrapped in one that
 * shortens each connect, read and write timeout to what is left of the
 * current call's deadline. Internal to the adapter (store/mongo*.c): it is
 * the other file that includes mongoc.h. */
#ifndef BW_MONGO_STREAM_H
#define BW_MONGO_STREAM_H

#include <stdint.h>

#include <mongoc/mongoc.h>

/* Bounds the stream I/O that follows by deadline_ms (on the bw_now_ms()
 * clock); 0 lifts the bound. Set it around each mongoc call. */
void bw_mongo_deadline_set(int64_t deadline_ms);

/* The stream initiator to install with mongoc_client_set_stream_initiator;
 * its user data must be the client (mongoc's default initiator, which
 * opens the real stream, needs it). */
mongoc_stream_t *bw_mongo_deadline_initiator(const mongoc_uri_t *uri,
                                             const mongoc_host_list_t *host, void *client,
                                             bson_error_t *error);

#endif

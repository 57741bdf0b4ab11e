/* The MongoDB adapter's deadline stream: a mongoc stream vtable that
 * forwards everything to the stream mongoc would have used and shortens
 * each connect, read and write timeout to what is left of the deadline. */

/* mongoc's headers use struct addrinfo, which strict ISO C hides. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <mongoc/mongoc.h>

#include "core/clock.h"
#include "store/mongo_stream.h"

/* libmongoc 1.x exports the transport it uses by default but declares it
 * only in a private header; our initiator wraps what it returns. */
mongoc_stream_t *mongoc_client_default_stream_initiator(const mongoc_uri_t *uri,
                                                        const mongoc_host_list_t *host,
                                                        void *user_data, bson_error_t *error);

struct deadline_stream {
	mongoc_stream_t vtable; /* first: mongoc calls through it */
	mongoc_stream_t *inner;
};

#define INNER(s)             (((struct deadline_stream *)(s))->inner)
#define DEADLINE_STREAM_TYPE 0x6277 /* "bw"; mongoc's own types are 1..7 */

/* bw_now_ms() bound of the current call, 0 = none. One per process: the
 * worker is single-threaded and runs one MongoDB call at a time. */
static int64_t deadline_ms;

void
bw_mongo_deadline_set(int64_t ms)
{
	deadline_ms = ms;
}

/* 0 means "do not block" to mongoc and stays 0; negative means "no limit". */
static int32_t
clamp_timeout(int32_t timeout_ms)
{
	int64_t left;

	if (deadline_ms == 0 || timeout_ms == 0)
		return timeout_ms;
	left = deadline_ms - bw_now_ms();
	if (left < 1)
		left = 1; /* past the deadline: time out at once */
	if (timeout_ms < 0 || timeout_ms > left)
		return (int32_t)left;
	return timeout_ms;
}

static void
ds_destroy(mongoc_stream_t *s)
{
	mongoc_stream_destroy(INNER(s));
	bson_free(s);
}

static void
ds_failed(mongoc_stream_t *s)
{
	mongoc_stream_failed(INNER(s));
	bson_free(s);
}

static int
ds_close(mongoc_stream_t *s)
{
	return mongoc_stream_close(INNER(s));
}

static int
ds_flush(mongoc_stream_t *s)
{
	return mongoc_stream_flush(INNER(s));
}

static ssize_t
ds_writev(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt, int32_t timeout_ms)
{
	return mongoc_stream_writev(INNER(s), iov, iovcnt, clamp_timeout(timeout_ms));
}

static ssize_t
ds_readv(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt, size_t min_bytes,
         int32_t timeout_ms)
{
	return mongoc_stream_readv(INNER(s), iov, iovcnt, min_bytes, clamp_timeout(timeout_ms));
}

static int
ds_setsockopt(mongoc_stream_t *s, int level, int optname, void *optval, mongoc_socklen_t optlen)
{
	return mongoc_stream_setsockopt(INNER(s), level, optname, optval, optlen);
}

/* Exposing the inner stream keeps mongoc_stream_poll (which polls the
 * root socket) and the TLS lookups working through the wrapper. */
static mongoc_stream_t *
ds_base(mongoc_stream_t *s)
{
	return INNER(s);
}

static bool
ds_check_closed(mongoc_stream_t *s)
{
	return mongoc_stream_check_closed(INNER(s));
}

static bool
ds_timed_out(mongoc_stream_t *s)
{
	return mongoc_stream_timed_out(INNER(s));
}

static bool
ds_should_retry(mongoc_stream_t *s)
{
	return mongoc_stream_should_retry(INNER(s));
}

mongoc_stream_t *
bw_mongo_deadline_initiator(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *client,
                            bson_error_t *error)
{
	struct deadline_stream *ds;
	mongoc_stream_t *inner;
	mongoc_uri_t *copy = NULL;
	int32_t ct, left;

	/* The TCP (and TLS) connect reads its timeout from the URI: hand it
	 * a copy that ends at our deadline. The hello that follows is run by
	 * mongoc itself and stays bounded by connectTimeoutMS. */
	ct = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 10000);
	left = clamp_timeout(ct);
	if (left != ct) {
		copy = mongoc_uri_copy(uri);
		mongoc_uri_set_option_as_int32(copy, MONGOC_URI_CONNECTTIMEOUTMS, left);
		uri = copy;
	}
	inner = mongoc_client_default_stream_initiator(uri, host, client, error);
	mongoc_uri_destroy(copy);
	if (inner == NULL)
		return NULL;
	ds = bson_malloc0(sizeof(*ds));
	/* Our own type: mongoc casts streams by type (socket, TLS, GridFS)
	 * and must never mistake the wrapper for one of its own. */
	ds->vtable.type = DEADLINE_STREAM_TYPE;
	ds->vtable.destroy = ds_destroy;
	ds->vtable.failed = ds_failed;
	ds->vtable.close = ds_close;
	ds->vtable.flush = ds_flush;
	ds->vtable.writev = ds_writev;
	ds->vtable.readv = ds_readv;
	ds->vtable.setsockopt = ds_setsockopt;
	ds->vtable.get_base_stream = ds_base;
	ds->vtable.check_closed = ds_check_closed;
	ds->vtable.timed_out = ds_timed_out;
	ds->vtable.should_retry = ds_should_retry;
	ds->inner = inner;
	return &ds->vtable;
}

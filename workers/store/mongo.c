/* MongoDB adapter: one single-threaded mongoc client per worker, created
 * lazily after fork, behind a circuit breaker. mongoc keeps its own
 * topology state (a failed server sits in a 5 s cooldown), so after a
 * network or selection error the client is thrown away and the next probe
 * starts from a fresh one: recovery is then paced by our breaker.
 *
 * mongoc 1.x has no per-call timeout: every read and write on a connection
 * waits up to socketTimeoutMS. To bound a ping by ping_timeout_ms, the
 * client's streams are wrapped (mongoc_client_set_stream_initiator) in a
 * thin stream that shortens each connect, read and write timeout to what
 * is left of the current deadline. */

/* mongoc's headers use struct addrinfo, which strict ISO C hides. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "core/pid.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/mongo.h"

#define MONGO_DEFAULT_DB "bulwark"

/* libmongoc 1.x exports the transport it uses by default but declares it
 * only in a private header; our initiator wraps what it returns. */
mongoc_stream_t *mongoc_client_default_stream_initiator(const mongoc_uri_t *uri,
                                                        const mongoc_host_list_t *host,
                                                        void *user_data, bson_error_t *error);

static struct {
	const struct bw_config *cfg;
	bool inited;  /* mongoc_init ran in this process (or its parent) */
	bool cleaned; /* mongoc_cleanup ran: mongoc cannot be used again */
	mongoc_uri_t *uri;
	mongoc_client_t *client;
	pid_t pid;           /* process that created client */
	int64_t deadline_ms; /* bw_now_ms() bound of the current call, 0 = none */
	struct bw_breaker breaker;
} mg;

/* ---- deadline stream: forwards everything, shortens timeouts ---- */

struct deadline_stream {
	mongoc_stream_t vtable; /* first: mongoc calls through it */
	mongoc_stream_t *inner;
};

#define INNER(s)             (((struct deadline_stream *)(s))->inner)
#define DEADLINE_STREAM_TYPE 0x6277 /* "bw"; mongoc's own types are 1..7 */

/* 0 means "do not block" to mongoc and stays 0; negative means "no limit". */
static int32_t
clamp_timeout(int32_t timeout_ms)
{
	int64_t left;

	if (mg.deadline_ms == 0 || timeout_ms == 0)
		return timeout_ms;
	left = mg.deadline_ms - bw_now_ms();
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

static mongoc_stream_t *
deadline_initiator(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *client,
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

/* ---- client lifecycle ---- */

/* mongoc's messages go to our JSON log instead of its own stderr format. */
static void
on_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
	int l;

	(void)data;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		l = BW_LOG_ERROR;
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		l = BW_LOG_WARN;
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
		l = BW_LOG_INFO;
		break;
	default:
		l = BW_LOG_DEBUG;
		break;
	}
	bw_log(l, "mongoc %s: %s", domain, message);
}

/* Sets a URI option unless the operator already did. */
static void
uri_default_int32(mongoc_uri_t *uri, const char *key, int32_t value)
{
	if (!mongoc_uri_has_option(uri, key))
		mongoc_uri_set_option_as_int32(uri, key, value);
}

/* mongoc_init and the parsed URI, once per process, on first use. */
static int
mongo_setup(char *err, size_t errlen)
{
	const struct bw_config *cfg = mg.cfg;
	bson_error_t e;

	if (mg.cleaned) {
		snprintf(err, errlen, "adapter closed");
		return -1;
	}
	if (!mg.inited) {
		mongoc_log_set_handler(on_mongoc_log, NULL);
		mongoc_init();
		mg.inited = true;
	}
	if (mg.uri != NULL)
		return 0;
	mg.uri = mongoc_uri_new_with_error(cfg->mongo != NULL ? cfg->mongo : "", &e);
	if (mg.uri == NULL) {
		snprintf(err, errlen, "bad URI: %s", e.message);
		return -1;
	}
	uri_default_int32(mg.uri, MONGOC_URI_CONNECTTIMEOUTMS, cfg->connect_timeout_ms);
	uri_default_int32(mg.uri, MONGOC_URI_SOCKETTIMEOUTMS, cfg->mongo_timeout_ms);
	uri_default_int32(mg.uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, cfg->connect_timeout_ms);
	/* serverSelectionTryOnce stays true (the single-threaded default):
	 * one scan, then fail. With false, one call would keep rescanning for
	 * serverSelectionTimeoutMS; our breaker does the retrying instead. */
	if (mongoc_uri_get_appname(mg.uri) == NULL)
		mongoc_uri_set_appname(mg.uri, "bulwark");
	return 0;
}

/* Drops the client without talking to the server: reset first so destroy
 * sends no endSessions to a server we just gave up on (and, for a client
 * inherited over fork, so the parent's sockets are left alone). */
static void
mongo_drop(void)
{
	if (mg.client == NULL)
		return;
	mongoc_client_reset(mg.client);
	mongoc_client_destroy(mg.client);
	mg.client = NULL;
}

static int
mongo_open(char *err, size_t errlen)
{
	bson_error_t e;

	if (mg.client != NULL && mg.pid != bw_pid()) {
		bw_warn("mongo: client inherited over fork, creating a new one");
		mongo_drop();
	}
	if (mg.client != NULL)
		return 0;
	if (mongo_setup(err, errlen) < 0)
		return -1;
	/* No I/O here: mongoc connects on the first command. */
	mg.client = mongoc_client_new_from_uri_with_error(mg.uri, &e);
	if (mg.client == NULL) {
		snprintf(err, errlen, "client: %s", e.message);
		return -1;
	}
	mongoc_client_set_error_api(mg.client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_stream_initiator(mg.client, deadline_initiator, mg.client);
	mg.pid = bw_pid();
	return 0;
}

/* Errors after which the client's connection or topology is suspect. */
static bool
is_connection_error(const bson_error_t *e)
{
	return e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_SERVER_SELECTION ||
	       e->domain == MONGOC_ERROR_PROTOCOL || e->domain == MONGOC_ERROR_CLIENT;
}

static void
mongo_succeeded(void)
{
	if (mg.breaker.state != BW_BREAKER_CLOSED)
		bw_info("mongo: reachable again, breaker closed");
	bw_breaker_success(&mg.breaker);
}

static void
mongo_failed(const char *why)
{
	enum bw_breaker_state before = mg.breaker.state;

	bw_breaker_failure(&mg.breaker, bw_now_ms());
	if (before == BW_BREAKER_CLOSED && mg.breaker.state == BW_BREAKER_OPEN)
		bw_warn("mongo: %s; breaker open for %lld ms", why,
		        (long long)mg.breaker.cooldown_ms);
	else if (before == BW_BREAKER_CLOSED)
		bw_warn("mongo: %s", why);
	else
		bw_debug("mongo: probe failed: %s; next in %lld ms", why,
		         (long long)mg.breaker.cooldown_ms);
}

void
bw_mongo_init(const struct bw_config *cfg, int64_t max_cooldown_ms)
{
	mg.cfg = cfg;
	bw_breaker_init(&mg.breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms,
	                max_cooldown_ms);
}

void
bw_mongo_close(void)
{
	if (mg.client != NULL) {
		/* A clean close ends the sessions on the server, unless the server
		 * is known to be in trouble or the client is the parent's. */
		if (mg.pid == bw_pid() && mg.breaker.state == BW_BREAKER_CLOSED) {
			mongoc_client_destroy(mg.client);
			mg.client = NULL;
		} else {
			mongo_drop();
		}
	}
	if (mg.uri != NULL) {
		mongoc_uri_destroy(mg.uri);
		mg.uri = NULL;
	}
	if (mg.inited && !mg.cleaned) {
		mongoc_cleanup();
		mg.cleaned = true;
	}
}

int
bw_mongo_ping(int timeout_ms, char *err, size_t errlen)
{
	int64_t now = bw_now_ms();
	int64_t deadline = now + timeout_ms;
	bson_t cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	bson_error_t e;
	bool reused, ok;

	err[0] = '\0';
	if (mg.cfg == NULL) {
		snprintf(err, errlen, "store not initialised");
		return -1;
	}
	if (!bw_breaker_allow(&mg.breaker, now)) {
		snprintf(err, errlen, "breaker open, next probe in %lld ms",
		         (long long)bw_breaker_retry_after_ms(&mg.breaker, now));
		return BW_MONGO_REFUSED;
	}
	BSON_APPEND_INT32(&cmd, "ping", 1);
	for (;;) {
		reused = mg.client != NULL && mg.pid == bw_pid();
		if (mongo_open(err, errlen) < 0)
			goto fail;
		bson_destroy(&reply);
		mg.deadline_ms = deadline;
		ok = mongoc_client_command_simple(mg.client, "admin", &cmd, NULL, &reply, &e);
		mg.deadline_ms = 0;
		if (ok)
			break;
		snprintf(err, errlen, "ping: %s", e.message);
		if (!is_connection_error(&e))
			goto fail;
		mongo_drop();
		/* A kept connection can be stale (server restarted) and fail at
		 * once: one retry on a fresh client, within the budget. */
		if (!reused || bw_now_ms() >= deadline)
			goto fail;
	}
	bson_destroy(&cmd);
	bson_destroy(&reply);
	mongo_succeeded();
	return 0;
fail:
	bson_destroy(&cmd);
	bson_destroy(&reply);
	mongo_failed(err);
	return -1;
}

const char *
bw_mongo_db_name(void)
{
	char err[128];
	const char *db;

	if (mg.cfg == NULL || mongo_setup(err, sizeof(err)) < 0)
		return MONGO_DEFAULT_DB;
	db = mongoc_uri_get_database(mg.uri);
	return db != NULL && db[0] != '\0' ? db : MONGO_DEFAULT_DB;
}

const struct bw_breaker *
bw_mongo_breaker(void)
{
	return &mg.breaker;
}

const char *
bw_mongo_lib_version(void)
{
	return mongoc_get_version();
}

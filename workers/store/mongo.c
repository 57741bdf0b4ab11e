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
#include <stdlib.h>
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

enum bw_rc
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
		return BW_ERR;
	}
	if (!bw_breaker_allow(&mg.breaker, now)) {
		snprintf(err, errlen, "breaker open, next probe in %lld ms",
		         (long long)bw_breaker_retry_after_ms(&mg.breaker, now));
		return BW_REFUSED;
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
	return BW_OK;
fail:
	bson_destroy(&cmd);
	bson_destroy(&reply);
	mongo_failed(err);
	return BW_ERR;
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

int64_t
bw_mongo_retry_after_ms(void)
{
	return bw_breaker_retry_after_ms(&mg.breaker, bw_now_ms());
}

/* ---- operations ---- */

/* Server answers that mean "not now" rather than "wrong request": shutting
 * down, stepping down, not (or no longer) the primary, out of time. */
static bool
is_unavailable_error(const bson_error_t *e)
{
	if (e->domain == MONGOC_ERROR_WRITE_CONCERN)
		return true;
	if (e->domain != MONGOC_ERROR_SERVER && e->domain != MONGOC_ERROR_QUERY &&
	    e->domain != MONGOC_ERROR_COMMAND)
		return false;
	switch (e->code) {
	case 50:    /* MaxTimeMSExpired */
	case 91:    /* ShutdownInProgress */
	case 189:   /* PrimarySteppedDown */
	case 262:   /* ExceededTimeLimit */
	case 10107: /* NotWritablePrimary */
	case 11600: /* InterruptedAtShutdown */
	case 11602: /* InterruptedDueToReplStateChange */
	case 13435: /* NotPrimaryNoSecondaryOk */
	case 13436: /* NotPrimaryOrSecondary */
		return true;
	}
	return false;
}

/* Starts a call: the breaker's permission, then a client. */
static enum bw_rc
call_begin(bool *reused, char *err, size_t errlen)
{
	err[0] = '\0';
	if (mg.cfg == NULL) {
		snprintf(err, errlen, "store not initialised");
		return BW_ERR;
	}
	if (!bw_breaker_allow(&mg.breaker, bw_now_ms())) {
		snprintf(err, errlen, "breaker open, next probe in %lld ms",
		         (long long)bw_mongo_retry_after_ms());
		return BW_REFUSED;
	}
	*reused = mg.client != NULL && mg.pid == bw_pid();
	if (mongo_open(err, errlen) < 0) {
		mongo_failed(err);
		return BW_ERR;
	}
	return BW_OK;
}

/* After a failed attempt: should the call be tried once more on a fresh
 * client? Only when a kept connection broke (the server restarted since)
 * and time is left; the client is replaced here. */
static bool
retry_fresh(const bson_error_t *e, bool *reused, int64_t deadline, char *err, size_t errlen)
{
	if (!is_connection_error(e) || !*reused || bw_now_ms() >= deadline)
		return false;
	mongo_drop();
	*reused = false;
	return mongo_open(err, errlen) == 0;
}

/* Ends a call that failed with e: tells the breaker, maps to a return code. */
static enum bw_rc
call_failed(const bson_error_t *e, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, e->message);
	if (is_connection_error(e)) {
		mongo_drop();
		mongo_failed(err);
		return BW_ERR;
	}
	if (is_unavailable_error(e)) {
		mongo_failed(err);
		return BW_ERR;
	}
	/* The server is up and answered: the request itself is at fault. */
	mongo_succeeded();
	return BW_INVALID;
}

static void
append_write_concern(bson_t *opts)
{
	mongoc_write_concern_t *wc = mongoc_write_concern_new();
	const char *w = mg.cfg->mongo_write_w;

	if (strcmp(w, "majority") == 0)
		mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
	else if (w[0] >= '0' && w[0] <= '9')
		mongoc_write_concern_set_w(wc, (int32_t)strtol(w, NULL, 10));
	else
		mongoc_write_concern_set_wtag(wc, w);
	mongoc_write_concern_set_journal(wc, mg.cfg->mongo_write_journal);
	mongoc_write_concern_set_wtimeout_int64(wc, mg.cfg->mongo_wtimeout_ms);
	mongoc_write_concern_append(wc, opts);
	mongoc_write_concern_destroy(wc);
}

static bool
array_of(const bson_t *doc, const char *key, bson_iter_t *child)
{
	bson_iter_t it;

	return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
	       bson_iter_recurse(&it, child);
}

static int64_t
index_of(const bson_iter_t *entry)
{
	bson_iter_t it;

	if (!BSON_ITER_HOLDS_DOCUMENT(entry) || !bson_iter_recurse(entry, &it) ||
	    !bson_iter_find(&it, "index"))
		return -1;
	return bson_iter_as_int64(&it);
}

static int32_t
code_of(const bson_iter_t *entry)
{
	bson_iter_t it;

	if (!BSON_ITER_HOLDS_DOCUMENT(entry) || !bson_iter_recurse(entry, &it) ||
	    !bson_iter_find(&it, "code"))
		return 0;
	return (int32_t)bson_iter_as_int64(&it);
}

static int64_t
count_of(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	return bson_iter_init_find(&it, doc, key) ? bson_iter_as_int64(&it) : 0;
}

/* Reads a bulk reply into fates; returns true when the server answered for
 * every operation (done or in error), so each one is accounted for: an
 * insert not in error stored its document, an upsert that did not upsert
 * matched a document that was already there. */
static bool
read_bulk_reply(const bson_t *reply, size_t n, bool insert, bool *wc_error, size_t *hard,
                enum bw_mongo_fate *fates)
{
	bson_iter_t it;
	int64_t nerrors = 0, done;

	*wc_error = array_of(reply, "writeConcernErrors", &it) && bson_iter_next(&it);
	*hard = 0;
	if (array_of(reply, "writeErrors", &it))
		while (bson_iter_next(&it))
			nerrors++;
	done = insert ? count_of(reply, "nInserted")
	              : count_of(reply, "nMatched") + count_of(reply, "nUpserted");
	bool answered = done + nerrors == (int64_t)n;
	/* An insert written but not confirmed by the write concern: unknown. */
	enum bw_mongo_fate done_fate = BW_MONGO_DUPLICATE;
	if (insert)
		done_fate = *wc_error ? BW_MONGO_UNKNOWN : BW_MONGO_STORED;
	for (size_t i = 0; answered && i < n; i++)
		fates[i] = done_fate;
	if (array_of(reply, "writeErrors", &it))
		while (bson_iter_next(&it)) {
			int64_t i = index_of(&it);
			if (i < 0 || (size_t)i >= n)
				continue;
			/* 11000: already there, or a concurrent write of it won. */
			if (code_of(&it) == 11000) {
				fates[i] = BW_MONGO_DUPLICATE;
			} else {
				fates[i] = BW_MONGO_FAILED;
				(*hard)++;
			}
		}
	if (!insert && array_of(reply, "upserted", &it))
		while (bson_iter_next(&it)) {
			int64_t i = index_of(&it);
			if (i >= 0 && (size_t)i < n)
				fates[i] = *wc_error ? BW_MONGO_UNKNOWN : BW_MONGO_STORED;
		}
	return answered;
}

/* Adds the n operations to bulk; false (err filled) when mongoc refuses
 * one before any I/O. */
static bool
fill_bulk(mongoc_bulk_operation_t *bulk, const bson_oid_t *ids, bson_t *const *docs, size_t n,
          bool insert, char *err, size_t errlen)
{
	bson_t upsert = BSON_INITIALIZER;
	bson_error_t e;
	bool ok = true;

	BSON_APPEND_BOOL(&upsert, "upsert", true);
	for (size_t i = 0; ok && i < n; i++) {
		bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
		BSON_APPEND_OID(&a, "_id", &ids[i]);
		if (insert) {
			bson_concat(&a, docs[i]);
			ok = mongoc_bulk_operation_insert_with_opts(bulk, &a, NULL, &e);
		} else {
			BSON_APPEND_DOCUMENT(&b, "$setOnInsert", docs[i]);
			ok = mongoc_bulk_operation_update_one_with_opts(bulk, &a, &b, &upsert, &e);
		}
		bson_destroy(&a);
		bson_destroy(&b);
	}
	if (!ok)
		snprintf(err, errlen, "bulk: %s", e.message);
	bson_destroy(&upsert);
	return ok;
}

/* Runs one unordered bulk under opts within deadline, once more on a
 * fresh client when a kept connection broke. reply is replaced. Returns 1
 * when acknowledged, 0 when not (e filled), -1 when mongoc refused it
 * before any I/O (err filled). */
static int
run_bulk(const char *collection, const bson_oid_t *ids, bson_t *const *docs, size_t n, bool insert,
         const bson_t *opts, int64_t deadline, bool *reused, bson_t *reply, bson_error_t *e,
         char *err, size_t errlen)
{
	for (;;) {
		mongoc_collection_t *coll =
		    mongoc_client_get_collection(mg.client, bw_mongo_db_name(), collection);
		mongoc_bulk_operation_t *bulk =
		    mongoc_collection_create_bulk_operation_with_opts(coll, opts);
		bool filled = fill_bulk(bulk, ids, docs, n, insert, err, errlen), ok = false;

		if (filled) {
			bson_destroy(reply);
			mg.deadline_ms = deadline;
			ok = mongoc_bulk_operation_execute(bulk, reply, e) != 0;
			mg.deadline_ms = 0;
		}
		mongoc_bulk_operation_destroy(bulk);
		mongoc_collection_destroy(coll);
		if (!filled)
			return -1;
		if (ok || !retry_fresh(e, reused, deadline, err, errlen))
			return ok ? 1 : 0;
		bw_debug("mongo: kept connection broken (%s), writing again on a new one",
		         e->message);
	}
}

enum bw_rc
bw_mongo_insert_new(const char *collection, const bson_oid_t *ids, bson_t *const *docs, size_t n,
                    bool insert_first, enum bw_mongo_fate *fates, char *err, size_t errlen)
{
	bson_t opts = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	bson_error_t e = {0};
	bool reused, insert = insert_first, wc_error, answered;
	size_t hard;
	enum bw_rc rc;
	int ran;

	for (size_t i = 0; i < n; i++)
		fates[i] = BW_MONGO_UNKNOWN;
	rc = call_begin(&reused, err, errlen);
	if (rc != BW_OK)
		return rc;
	BSON_APPEND_BOOL(&opts, "ordered", false);
	append_write_concern(&opts);
	int64_t deadline = bw_now_ms() + mg.cfg->mongo_timeout_ms;
	ran = run_bulk(collection, ids, docs, n, insert, &opts, deadline, &reused, &reply, &e, err,
	               errlen);
	answered = ran >= 0 && read_bulk_reply(&reply, n, insert, &wc_error, &hard, fates);
	if (ran == 0 && insert && !answered && e.domain == MONGOC_ERROR_SERVER && e.code == 11000) {
		/* Refused whole over one duplicate (jongodb; MongoDB stores the
		 * rest): nothing was stored, so the upsert bulk sorts it out. */
		for (size_t i = 0; i < n; i++)
			fates[i] = BW_MONGO_UNKNOWN;
		insert = false;
		ran = run_bulk(collection, ids, docs, n, insert, &opts, deadline, &reused, &reply,
		               &e, err, errlen);
		answered = ran >= 0 && read_bulk_reply(&reply, n, insert, &wc_error, &hard, fates);
	}
	if (ran < 0) {
		rc = BW_INVALID;
	} else if (ran == 1 || (answered && !wc_error && hard == 0)) {
		/* Duplicate-key errors alone still account for every document. */
		mongo_succeeded();
		rc = BW_OK;
	} else if (answered && !wc_error) {
		/* The server is up and refused some documents. */
		snprintf(err, errlen, "bulk write: %zu document%s refused: %s", hard,
		         hard == 1 ? "" : "s", e.message);
		mongo_succeeded();
		rc = BW_ERR;
	} else {
		rc = call_failed(&e, "bulk write", err, errlen);
		if (rc == BW_INVALID)
			rc = BW_ERR;
	}
	bson_destroy(&opts);
	bson_destroy(&reply);
	return rc;
}

enum bw_rc
bw_mongo_find(const char *collection, const bson_t *filter, const bson_t *opts, bw_mongo_doc_fn fn,
              void *arg, char *err, size_t errlen)
{
	bson_error_t e;
	bool reused, failed;
	enum bw_rc rc = call_begin(&reused, err, errlen);

	if (rc != BW_OK)
		return rc;
	int64_t deadline = bw_now_ms() + mg.cfg->mongo_timeout_ms;
	for (;;) {
		mongoc_collection_t *coll =
		    mongoc_client_get_collection(mg.client, bw_mongo_db_name(), collection);
		mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
		const bson_t *doc;
		size_t seen = 0;

		mg.deadline_ms = deadline;
		while (mongoc_cursor_next(cur, &doc)) {
			seen++;
			if (fn(doc, arg) != 0)
				break;
		}
		failed = mongoc_cursor_error(cur, &e);
		mg.deadline_ms = 0;
		mongoc_cursor_destroy(cur);
		mongoc_collection_destroy(coll);
		if (!failed) {
			mongo_succeeded();
			return BW_OK;
		}
		if (seen > 0 || !retry_fresh(&e, &reused, deadline, err, errlen))
			break;
	}
	return call_failed(&e, "find", err, errlen);
}

enum bw_rc
bw_mongo_command(const bson_t *cmd, bson_t *reply, int timeout_ms, int *server_code, char *err,
                 size_t errlen)
{
	bson_error_t e;
	bool reused;
	enum bw_rc rc;

	bson_init(reply);
	*server_code = 0;
	rc = call_begin(&reused, err, errlen);
	if (rc != BW_OK)
		return rc;
	int64_t deadline = bw_now_ms() + timeout_ms;
	for (;;) {
		bson_destroy(reply);
		mg.deadline_ms = deadline;
		bool ok = mongoc_client_command_simple(mg.client, bw_mongo_db_name(), cmd, NULL,
		                                       reply, &e);
		mg.deadline_ms = 0;
		if (ok) {
			mongo_succeeded();
			return BW_OK;
		}
		if (!retry_fresh(&e, &reused, deadline, err, errlen))
			break;
	}
	if (e.domain == MONGOC_ERROR_SERVER)
		*server_code = (int)e.code;
	return call_failed(&e, "command", err, errlen);
}

/* ---- indexes (bulwark migrate) ---- */

/* An integer config key by name (for ttl_days_key), or -1. */
static int64_t
config_int(const char *name)
{
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		const struct bw_config_key *k = &bw_config_keys[i];
		const char *field = (const char *)mg.cfg + k->offset;
		if (strcmp(k->name, name) != 0)
			continue;
		if (k->type == BW_CONF_INT)
			return *(const int *)field;
		if (k->type == BW_CONF_LONG || k->type == BW_CONF_SIZE)
			return *(const long *)field;
	}
	return -1;
}

/* The expireAfterSeconds of index name on coll: -1 when it has none, -2
 * when there is no such index. */
static enum bw_rc
index_ttl(const char *coll, const char *name, int timeout_ms, int64_t *ttl, char *err,
          size_t errlen)
{
	bson_t *cmd = BCON_NEW("listIndexes", BCON_UTF8(coll));
	bson_t reply;
	bson_iter_t it, idx, f;
	int code;
	enum bw_rc rc = bw_mongo_command(cmd, &reply, timeout_ms, &code, err, errlen);

	*ttl = -2;
	if (rc == BW_OK && bson_iter_init(&it, &reply) &&
	    bson_iter_find_descendant(&it, "cursor.firstBatch", &idx) &&
	    BSON_ITER_HOLDS_ARRAY(&idx) && bson_iter_recurse(&idx, &it))
		while (bson_iter_next(&it)) {
			if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &f) ||
			    !bson_iter_find(&f, "name") || !BSON_ITER_HOLDS_UTF8(&f) ||
			    strcmp(bson_iter_utf8(&f, NULL), name) != 0)
				continue;
			*ttl = -1;
			bson_iter_recurse(&it, &f);
			if (bson_iter_find(&f, "expireAfterSeconds"))
				*ttl = bson_iter_as_int64(&f);
		}
	bson_destroy(cmd);
	bson_destroy(&reply);
	return rc;
}

struct ttl_want {
	const char *name;
	int32_t seconds;
};

/* Builds createIndexes from the spec; fills wants (at most nwant). */
static int
build_create(const bson_t *spec, bson_t *cmd, const char **coll, struct ttl_want *wants,
             size_t nwant, size_t *nttl, char *err, size_t errlen)
{
	bson_iter_t it, list, one, f;
	bson_t arr, doc;
	char numbuf[16];
	const char *key;
	uint32_t i = 0;

	*nttl = 0;
	if (!bson_iter_init_find(&it, spec, "collection") || !BSON_ITER_HOLDS_UTF8(&it)) {
		snprintf(err, errlen, "\"collection\" must be a string");
		return -1;
	}
	*coll = bson_iter_utf8(&it, NULL);
	if (!bson_iter_init_find(&list, spec, "indexes") || !BSON_ITER_HOLDS_ARRAY(&list) ||
	    !bson_iter_recurse(&list, &one)) {
		snprintf(err, errlen, "\"indexes\" must be an array");
		return -1;
	}
	BSON_APPEND_UTF8(cmd, "createIndexes", *coll);
	BSON_APPEND_ARRAY_BEGIN(cmd, "indexes", &arr);
	for (; bson_iter_next(&one); i++) {
		const char *name = NULL;
		if (!BSON_ITER_HOLDS_DOCUMENT(&one) || !bson_iter_recurse(&one, &f)) {
			snprintf(err, errlen, "indexes[%u] must be an object", i);
			goto fail;
		}
		bson_uint32_to_string(i, &key, numbuf, sizeof(numbuf));
		BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &doc);
		while (bson_iter_next(&f)) {
			if (strcmp(bson_iter_key(&f), "ttl_days_key") != 0) {
				if (strcmp(bson_iter_key(&f), "name") == 0 &&
				    BSON_ITER_HOLDS_UTF8(&f))
					name = bson_iter_utf8(&f, NULL);
				bson_append_iter(&doc, NULL, 0, &f);
				continue;
			}
			int64_t days =
			    BSON_ITER_HOLDS_UTF8(&f) ? config_int(bson_iter_utf8(&f, NULL)) : -1;
			/* MongoDB keeps expireAfterSeconds in an int32. */
			if (days < 0 || days > INT32_MAX / 86400) {
				snprintf(
				    err, errlen,
				    "indexes[%u].ttl_days_key: not an integer key of 0 to %d days",
				    i, INT32_MAX / 86400);
				bson_append_document_end(&arr, &doc);
				goto fail;
			}
			BSON_APPEND_INT32(&doc, "expireAfterSeconds", (int32_t)(days * 86400));
			if (*nttl < nwant)
				wants[(*nttl)++] = (struct ttl_want){NULL, (int32_t)(days * 86400)};
		}
		bson_append_document_end(&arr, &doc);
		if (name == NULL) {
			snprintf(err, errlen, "indexes[%u].name must be a string", i);
			goto fail;
		}
		if (*nttl > 0 && wants[*nttl - 1].name == NULL)
			wants[*nttl - 1].name = name;
	}
	bson_append_array_end(cmd, &arr);
	return 0;
fail:
	bson_append_array_end(cmd, &arr);
	return -1;
}

static enum bw_rc
set_ttl(const char *coll, const struct ttl_want *w, int timeout_ms, char *err, size_t errlen)
{
	bson_t *cmd = BCON_NEW("collMod", BCON_UTF8(coll), "index", "{", "name", BCON_UTF8(w->name),
	                       "expireAfterSeconds", BCON_INT32(w->seconds), "}");
	bson_t reply;
	int code;
	enum bw_rc rc = bw_mongo_command(cmd, &reply, timeout_ms, &code, err, errlen);

	bson_destroy(cmd);
	bson_destroy(&reply);
	return rc;
}

enum bw_rc
bw_mongo_ensure_indexes(const char *spec, size_t len, int timeout_ms, int *changed, char *err,
                        size_t errlen)
{
	bson_t doc = BSON_INITIALIZER, cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	struct ttl_want wants[16];
	const char *coll = NULL;
	size_t nttl = 0;
	bson_error_t e;
	bson_iter_t it;
	int code = 0;
	enum bw_rc rc = BW_INVALID;
	int64_t ttl, before = 0, after = 0;

	*changed = 0;
	if (!bson_init_from_json(&doc, spec, (ssize_t)len, &e)) {
		snprintf(err, errlen, "not JSON: %s", e.message);
		goto done;
	}
	if (build_create(&doc, &cmd, &coll, wants, 16, &nttl, err, errlen) < 0)
		goto done;
	bson_destroy(&reply);
	rc = bw_mongo_command(&cmd, &reply, timeout_ms, &code, err, errlen);
	/* IndexOptionsConflict / IndexKeySpecsConflict: an index of that name
	 * exists with another TTL; change it in place, then try again. */
	if (rc != BW_OK && (code == 85 || code == 86)) {
		for (size_t i = 0; i < nttl; i++)
			if (set_ttl(coll, &wants[i], timeout_ms, err, errlen) == BW_OK)
				(*changed)++;
		bson_destroy(&reply);
		rc = bw_mongo_command(&cmd, &reply, timeout_ms, &code, err, errlen);
	}
	if (rc != BW_OK)
		goto done;
	if (bson_iter_init_find(&it, &reply, "numIndexesBefore"))
		before = bson_iter_as_int64(&it);
	if (bson_iter_init_find(&it, &reply, "numIndexesAfter"))
		after = bson_iter_as_int64(&it);
	if (after > before)
		*changed += (int)(after - before);
	/* Some servers (jongodb) accept a changed TTL silently: check it. */
	for (size_t i = 0; i < nttl; i++) {
		rc = index_ttl(coll, wants[i].name, timeout_ms, &ttl, err, errlen);
		if (rc == BW_OK && ttl != wants[i].seconds) {
			rc = set_ttl(coll, &wants[i], timeout_ms, err, errlen);
			if (rc == BW_OK)
				rc = index_ttl(coll, wants[i].name, timeout_ms, &ttl, err, errlen);
			if (rc == BW_OK && ttl != wants[i].seconds) {
				snprintf(err, errlen,
				         "index %s.%s keeps expireAfterSeconds %lld instead of %d",
				         coll, wants[i].name, (long long)ttl, wants[i].seconds);
				rc = BW_INVALID;
			} else if (rc != BW_OK) {
				size_t l = strlen(err);
				snprintf(err + l, errlen - l, " (changing the TTL of %s.%s)", coll,
				         wants[i].name);
			}
			if (rc == BW_OK)
				(*changed)++;
		}
		if (rc != BW_OK)
			goto done;
	}
	rc = BW_OK;
done:
	bson_destroy(&doc);
	bson_destroy(&cmd);
	bson_destroy(&reply);
	return rc;
}

const char *
bw_mongo_lib_version(void)
{
	return mongoc_get_version();
}

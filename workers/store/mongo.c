/* MongoDB adapter: one single-threaded mongoc client per worker, created
 * lazily after fork, behind a circuit breaker. mongoc keeps its own
 * topology state (a failed server sits in a 5 s cooldown), so after a
 * network or selection error the client is thrown away and the next probe
 * starts from a fresh one: recovery is then paced by our breaker.
 *
 * mongoc 1.x has no per-call timeout: every read and write on a connection
 * waits up to socketTimeoutMS. To bound a ping by ping_timeout_ms, the
 * client's streams are wrapped in the deadline stream of mongo_stream.c,
 * and each call here sets its deadline. */

/* mongoc's headers use struct addrinfo, which strict ISO C hides. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "core/pid.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/mongo.h"
#include "store/mongo_stream.h"

#define MONGO_DEFAULT_DB "bulwark"

static struct {
	const struct bw_config *cfg;
	bool inited;  /* mongoc_init ran in this process (or its parent) */
	bool cleaned; /* mongoc_cleanup ran: mongoc cannot be used again */
	mongoc_uri_t *uri;
	mongoc_client_t *client;
	pid_t pid; /* process that created client */
	struct bw_breaker breaker;
} mg;

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
mongo_setup(struct bw_err *err)
{
	const struct bw_config *cfg = mg.cfg;
	bson_error_t e;

	if (mg.cleaned) {
		bw_err_set(err, BW_ERR, "adapter closed");
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
		bw_err_set(err, BW_ERR, "bad URI: %s", e.message);
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
mongo_open(struct bw_err *err)
{
	bson_error_t e;

	if (mg.client != NULL && mg.pid != bw_pid()) {
		bw_warn("mongo: client inherited over fork, creating a new one");
		mongo_drop();
	}
	if (mg.client != NULL)
		return 0;
	if (mongo_setup(err) < 0)
		return -1;
	/* No I/O here: mongoc connects on the first command. */
	mg.client = mongoc_client_new_from_uri_with_error(mg.uri, &e);
	if (mg.client == NULL) {
		bw_err_set(err, BW_ERR, "client: %s", e.message);
		return -1;
	}
	mongoc_client_set_error_api(mg.client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_stream_initiator(mg.client, bw_mongo_deadline_initiator, mg.client);
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

/* Tells the breaker how a call went: why == NULL is a success. */
static void
mongo_note(const char *why)
{
	bw_breaker_note(&mg.breaker, bw_mongo_ops.name, why);
}

/* Ends a call that found MongoDB unavailable (err's message filled):
 * tells the breaker, returns BW_ERR with its retry_after_ms. */
static enum bw_rc
call_down(struct bw_err *err)
{
	mongo_note(err->message);
	err->rc = BW_ERR;
	err->retry_after_ms = bw_mongo_retry_after_ms();
	return BW_ERR;
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

/* bw_mongo_ops' ping: one {ping: 1}, creating the client first if needed. */
static enum bw_rc
ping_once(void *arg, int64_t deadline, struct bw_err *err)
{
	bson_t cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	bson_error_t e;
	enum bw_rc rc = BW_ERR;
	bool reused, ok;

	(void)arg;
	reused = mg.client != NULL && mg.pid == bw_pid();
	if (mongo_open(err) < 0)
		return BW_ERR;
	BSON_APPEND_INT32(&cmd, "ping", 1);
	bw_mongo_deadline_set(deadline);
	ok = mongoc_client_command_simple(mg.client, "admin", &cmd, NULL, &reply, &e);
	bw_mongo_deadline_set(0);
	if (ok) {
		rc = BW_OK;
	} else {
		bw_err_set(err, BW_ERR, "ping: %s", e.message);
		if (is_connection_error(&e)) {
			mongo_drop();
			rc = err->rc = reused ? BW_RETRY : BW_ERR;
		}
	}
	bson_destroy(&cmd);
	bson_destroy(&reply);
	return rc;
}

const char *
bw_mongo_db_name(void)
{
	struct bw_err err;
	const char *db;

	if (mg.cfg == NULL || mongo_setup(&err) < 0)
		return MONGO_DEFAULT_DB;
	db = mongoc_uri_get_database(mg.uri);
	return db != NULL && db[0] != '\0' ? db : MONGO_DEFAULT_DB;
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
call_begin(bool *reused, struct bw_err *err)
{
	bw_err_clear(err);
	if (mg.cfg == NULL)
		return bw_err_set(err, BW_ERR, "store not initialised");
	if (!bw_breaker_allow(&mg.breaker, bw_now_ms())) {
		bw_err_set(err, BW_REFUSED, "breaker open, next probe in %lld ms",
		           (long long)bw_mongo_retry_after_ms());
		err->retry_after_ms = bw_mongo_retry_after_ms();
		return BW_REFUSED;
	}
	*reused = mg.client != NULL && mg.pid == bw_pid();
	if (mongo_open(err) < 0)
		return call_down(err);
	return BW_OK;
}

/* After a failed attempt: should the call be tried once more on a fresh
 * client? Only when a kept connection broke (the server restarted since)
 * and time is left; the client is replaced here. */
static bool
retry_fresh(const bson_error_t *e, bool *reused, int64_t deadline, struct bw_err *err)
{
	if (!is_connection_error(e) || !*reused || bw_now_ms() >= deadline)
		return false;
	mongo_drop();
	*reused = false;
	return mongo_open(err) == 0;
}

/* The server's error code of e in err->code ("" when the error is not the
 * server's). */
static void
set_code(struct bw_err *err, const bson_error_t *e)
{
	if (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_WRITE_CONCERN)
		snprintf(err->code, sizeof(err->code), "%u", (unsigned)e->code);
}

/* Ends a call that failed with e: fills err, tells the breaker, maps to
 * a return code. */
static enum bw_rc
call_failed(const bson_error_t *e, const char *what, struct bw_err *err)
{
	bw_err_set(err, BW_ERR, "%s: %s", what, e->message);
	set_code(err, e);
	if (is_connection_error(e)) {
		mongo_drop();
		return call_down(err);
	}
	if (is_unavailable_error(e))
		return call_down(err);
	/* The server is up and answered: the request itself is at fault. */
	mongo_note(NULL);
	err->rc = BW_INVALID;
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

/* Adds the n operations to bulk; false (err filled, BW_INVALID) when
 * mongoc refuses one before any I/O. */
static bool
fill_bulk(mongoc_bulk_operation_t *bulk, const bson_oid_t *ids, bson_t *const *docs, size_t n,
          bool insert, struct bw_err *err)
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
		bw_err_set(err, BW_INVALID, "bulk: %s", e.message);
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
         struct bw_err *err)
{
	for (;;) {
		mongoc_collection_t *coll =
		    mongoc_client_get_collection(mg.client, bw_mongo_db_name(), collection);
		mongoc_bulk_operation_t *bulk =
		    mongoc_collection_create_bulk_operation_with_opts(coll, opts);
		bool filled = fill_bulk(bulk, ids, docs, n, insert, err), ok = false;

		if (filled) {
			bson_destroy(reply);
			bw_mongo_deadline_set(deadline);
			ok = mongoc_bulk_operation_execute(bulk, reply, e) != 0;
			bw_mongo_deadline_set(0);
		}
		mongoc_bulk_operation_destroy(bulk);
		mongoc_collection_destroy(coll);
		if (!filled)
			return -1;
		if (ok || !retry_fresh(e, reused, deadline, err))
			return ok ? 1 : 0;
		bw_debug("mongo: kept connection broken (%s), writing again on a new one",
		         e->message);
	}
}

enum bw_rc
bw_mongo_insert_new(const char *collection, const bson_oid_t *ids, bson_t *const *docs, size_t n,
                    bool insert_first, enum bw_mongo_fate *fates, struct bw_err *err)
{
	bson_t opts = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	bson_error_t e = {0};
	bool reused, insert = insert_first, wc_error, answered;
	size_t hard;
	enum bw_rc rc;
	int ran;

	for (size_t i = 0; i < n; i++)
		fates[i] = BW_MONGO_UNKNOWN;
	rc = call_begin(&reused, err);
	if (rc != BW_OK)
		return rc;
	BSON_APPEND_BOOL(&opts, "ordered", false);
	append_write_concern(&opts);
	int64_t deadline = bw_now_ms() + mg.cfg->mongo_timeout_ms;
	ran = run_bulk(collection, ids, docs, n, insert, &opts, deadline, &reused, &reply, &e, err);
	answered = ran >= 0 && read_bulk_reply(&reply, n, insert, &wc_error, &hard, fates);
	if (ran == 0 && insert && !answered && e.domain == MONGOC_ERROR_SERVER && e.code == 11000) {
		/* Refused whole over one duplicate (jongodb; MongoDB stores the
		 * rest): nothing was stored, so the upsert bulk sorts it out. */
		for (size_t i = 0; i < n; i++)
			fates[i] = BW_MONGO_UNKNOWN;
		insert = false;
		ran = run_bulk(collection, ids, docs, n, insert, &opts, deadline, &reused, &reply,
		               &e, err);
		answered = ran >= 0 && read_bulk_reply(&reply, n, insert, &wc_error, &hard, fates);
	}
	if (ran < 0) {
		rc = BW_INVALID;
	} else if (ran == 1 || (answered && !wc_error && hard == 0)) {
		/* Duplicate-key errors alone still account for every document. */
		bw_err_clear(err);
		mongo_note(NULL);
		rc = BW_OK;
	} else if (answered && !wc_error) {
		/* The server is up and refused some documents. */
		rc = bw_err_set(err, BW_ERR, "bulk write: %zu document%s refused: %s", hard,
		                hard == 1 ? "" : "s", e.message);
		set_code(err, &e);
		mongo_note(NULL);
	} else {
		rc = call_failed(&e, "bulk write", err);
		if (rc == BW_INVALID)
			rc = err->rc = BW_ERR;
	}
	bson_destroy(&opts);
	bson_destroy(&reply);
	return rc;
}

enum bw_rc
bw_mongo_find(const char *collection, const bson_t *filter, const bson_t *opts, bw_mongo_doc_fn fn,
              void *arg, struct bw_err *err)
{
	bson_error_t e;
	bool reused, failed;
	enum bw_rc rc = call_begin(&reused, err);

	if (rc != BW_OK)
		return rc;
	int64_t deadline = bw_now_ms() + mg.cfg->mongo_timeout_ms;
	for (;;) {
		mongoc_collection_t *coll =
		    mongoc_client_get_collection(mg.client, bw_mongo_db_name(), collection);
		mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
		const bson_t *doc;
		size_t seen = 0;

		bw_mongo_deadline_set(deadline);
		while (mongoc_cursor_next(cur, &doc)) {
			seen++;
			if (fn(doc, arg) != 0)
				break;
		}
		failed = mongoc_cursor_error(cur, &e);
		bw_mongo_deadline_set(0);
		mongoc_cursor_destroy(cur);
		mongoc_collection_destroy(coll);
		if (!failed) {
			bw_err_clear(err);
			mongo_note(NULL);
			return BW_OK;
		}
		if (seen > 0 || !retry_fresh(&e, &reused, deadline, err))
			break;
	}
	return call_failed(&e, "find", err);
}

enum bw_rc
bw_mongo_command(const bson_t *cmd, bson_t *reply, int timeout_ms, struct bw_err *err)
{
	bson_error_t e;
	bool reused;
	enum bw_rc rc;

	bson_init(reply);
	rc = call_begin(&reused, err);
	if (rc != BW_OK)
		return rc;
	int64_t deadline = bw_now_ms() + timeout_ms;
	for (;;) {
		bson_destroy(reply);
		bw_mongo_deadline_set(deadline);
		bool ok = mongoc_client_command_simple(mg.client, bw_mongo_db_name(), cmd, NULL,
		                                       reply, &e);
		bw_mongo_deadline_set(0);
		if (ok) {
			bw_err_clear(err);
			mongo_note(NULL);
			return BW_OK;
		}
		if (!retry_fresh(&e, &reused, deadline, err))
			break;
	}
	return call_failed(&e, "command", err);
}

/* Debian's libmongoc keeps its counters in /dev/shm/mongoc-<pid>, removed
 * at exit: a worker that was killed leaves its file behind, in memory,
 * and a later process with the same pid gets a warning on start-up. */
static void
mongo_forget_child(pid_t pid)
{
	char name[32];

	snprintf(name, sizeof(name), "/mongoc-%d", (int)pid);
	shm_unlink(name);
}

const struct bw_dep_ops bw_mongo_ops = {
    .name = "mongo",
    .init = bw_mongo_init,
    .close = bw_mongo_close,
    .ping = ping_once,
    .breaker = &mg.breaker,
    .forget_child = mongo_forget_child,
};

const char *
bw_mongo_lib_version(void)
{
	return mongoc_get_version();
}

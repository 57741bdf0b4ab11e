/* PostgreSQL adapter: the worker's one libpq connection, opened lazily after
 * fork with a non-blocking connect and our own poll() deadline (libpq's
 * connect_timeout is whole seconds, at least 2), used in non-blocking mode so
 * every wait has a deadline, and guarded by a circuit breaker. */

/* O_CLOEXEC, poll, dup2 are POSIX; strict ISO C hides them. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/pid.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/pg.h"

#define PREPARED_MAX 8

static struct {
	const struct bw_config *cfg;
	PGconn *conn;
	pid_t pid; /* process that opened conn */
	struct bw_breaker breaker;
	char version[16];
	const char *conninfo; /* overrides cfg->postgres (CLI commands) */
	bool no_reconnect;    /* a session holds state: never replace it silently */
	/* Statements prepared on conn (names are static strings). */
	const char *prepared[PREPARED_MAX];
	int nprepared;
} pg;

/* Fills err (BW_ERR) with the first line of a libpq message, prefixed;
 * libpq ends its messages with a newline and may add hint lines. */
static void
set_err(struct bw_err *err, const char *prefix, const char *msg)
{
	size_t n = strcspn(msg, "\n");

	while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r'))
		n--;
	bw_err_set(err, BW_ERR, "%s%.*s", prefix, (int)n, msg);
}

/* Waits for events on fd until deadline_ms. Returns 1 when ready (errors
 * and hang-ups count: libpq finds out what happened), 0 on timeout, -1 on
 * a poll error. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	for (;;) {
		int64_t left = deadline_ms - bw_now_ms();
		if (left <= 0)
			return 0;
		int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static void
pg_drop(void)
{
	/* Non-blocking mode: PQfinish's Terminate message cannot stall. */
	if (pg.conn != NULL)
		PQfinish(pg.conn);
	pg.conn = NULL;
}

/* A handle opened by another process (we were forked after opening it)
 * is the parent's session: our copy of its socket is pointed at /dev/null
 * so that PQfinish frees the handle while its goodbye goes nowhere. */
static void
pg_forget_foreign(void)
{
	int fd, nul;

	if (pg.conn == NULL || pg.pid == bw_pid())
		return;
	bw_warn("postgres: connection inherited over fork, opening a new one");
	fd = PQsocket(pg.conn);
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && nul >= 0 && dup2(nul, fd) >= 0)
		PQfinish(pg.conn); /* otherwise leak it rather than talk */
	if (nul >= 0)
		close(nul);
	pg.conn = NULL;
}

static int
pg_connect(int64_t deadline_ms, struct bw_err *err)
{
	const struct bw_config *cfg = pg.cfg;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *c = NULL;
	char options[64], user_timeout[16];

	/* Our values come first and dbname (the expanded conninfo) last, so
	 * anything the operator wrote in the conninfo wins. */
	snprintf(options, sizeof(options), "-c statement_timeout=%d", cfg->pg_statement_timeout_ms);
	/* Unacknowledged data for this long means the peer is gone; ACKs do
	 * not wait for the query, so this does not limit long statements. */
	snprintf(user_timeout, sizeof(user_timeout), "%d",
	         cfg->connect_timeout_ms + cfg->pg_statement_timeout_ms);
	const char *const keys[] = {
	    "fallback_application_name",
	    "keepalives",
	    "keepalives_idle",
	    "keepalives_interval",
	    "keepalives_count",
	    "tcp_user_timeout",
	    "options",
	    "dbname",
	    NULL,
	};
	const char *const values[] = {
	    "bulwark", "1",          "10",    "5",
	    "3",       user_timeout, options, pg.conninfo != NULL ? pg.conninfo : cfg->postgres,
	    NULL,
	};

	c = PQconnectStartParams(keys, values, 1);
	if (c == NULL) {
		bw_err_set(err, BW_ERR, "connect: out of memory");
		goto fail;
	}
	if (PQstatus(c) == CONNECTION_BAD) {
		set_err(err, "connect: ", PQerrorMessage(c));
		goto fail;
	}
	/* The socket can change between polls (several hosts, SSL retry). */
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			set_err(err, "connect: ", PQerrorMessage(c));
			goto fail;
		}
		int w = wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		                deadline_ms);
		if (w == 0) {
			bw_err_set(err, BW_ERR, "connect: timed out");
			goto fail;
		}
		if (w < 0) {
			bw_err_set(err, BW_ERR, "connect: poll: %s", strerror(errno));
			goto fail;
		}
		st = PQconnectPoll(c);
	}
	if (PQsetnonblocking(c, 1) != 0) {
		set_err(err, "connect: ", PQerrorMessage(c));
		goto fail;
	}
	pg.conn = c;
	pg.pid = bw_pid();
	pg.nprepared = 0;
	return 0;
fail:
	if (c != NULL)
		PQfinish(c);
	return -1;
}

/* Sends what PQsend* queued and collects its results until deadline_ms.
 * Returns the last result, or the first error result (caller PQclears it),
 * or NULL with err filled when the connection failed or the deadline passed
 * (*timed_out). */
static PGresult *
pg_collect(PGconn *c, int64_t deadline_ms, bool *timed_out, struct bw_err *err)
{
	PGresult *res = NULL, *r;
	int w = 1, f;

	/* Non-blocking mode may leave part of the query queued. */
	while ((f = PQflush(c)) != 0) {
		if (f < 0)
			goto fail;
		if ((w = wait_fd(PQsocket(c), POLLIN | POLLOUT, deadline_ms)) <= 0)
			goto fail;
		if (!PQconsumeInput(c))
			goto fail;
	}
	for (;;) {
		while (PQisBusy(c)) {
			if ((w = wait_fd(PQsocket(c), POLLIN, deadline_ms)) <= 0)
				goto fail;
			if (!PQconsumeInput(c))
				goto fail;
		}
		r = PQgetResult(c);
		if (r == NULL)
			break;
		/* Of several statements, the first error wins; otherwise the last
		 * rows win over a later command ("…; SELECT …; COMMIT" gives the rows). */
		if (res != NULL && (PQresultStatus(res) == PGRES_FATAL_ERROR ||
		                    (PQresultStatus(res) == PGRES_TUPLES_OK &&
		                     PQresultStatus(r) == PGRES_COMMAND_OK))) {
			PQclear(r);
			continue;
		}
		PQclear(res);
		res = r;
	}
	if (res == NULL)
		goto fail;
	return res;
fail:
	if (w == 0) {
		*timed_out = true;
		bw_err_set(err, BW_ERR, "query: timed out");
	} else if (w < 0) {
		bw_err_set(err, BW_ERR, "query: poll: %s", strerror(errno));
	} else {
		set_err(err, "query: ", PQerrorMessage(c));
	}
	PQclear(res);
	return NULL;
}

/* The SQLSTATE of an error result, "" when it has none. */
static const char *
sqlstate_of(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return state != NULL ? state : "";
}

static bool
is_prepared(const char *name)
{
	for (int i = 0; i < pg.nprepared; i++)
		if (strcmp(pg.prepared[i], name) == 0)
			return true;
	return false;
}

/* Prepares name on c and remembers it. Returns NULL when it is ready,
 * else what pg_collect returned for the Parse (an error result, or NULL
 * with err filled). */
static PGresult *
pg_prepare(PGconn *c, const char *name, const char *sql, int nparams, int64_t deadline_ms,
           bool *timed_out, struct bw_err *err, bool *failed)
{
	PGresult *res;

	*failed = false;
	if (!PQsendPrepare(c, name, sql, nparams, NULL)) {
		set_err(err, "query: ", PQerrorMessage(c));
		*failed = true;
		return NULL;
	}
	res = pg_collect(c, deadline_ms, timed_out, err);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		*failed = true;
		return res;
	}
	PQclear(res);
	pg.prepared[pg.nprepared++] = name;
	return NULL;
}

/* Sends sql (or the statement prepared as name) and collects its results:
 * see pg_collect. */
static PGresult *
pg_run_params(PGconn *c, const char *name, const char *sql, int nparams, const char *const *params,
              int64_t deadline_ms, bool *timed_out, struct bw_err *err)
{
	int sent;

	*timed_out = false;
	if (name != NULL && !is_prepared(name)) {
		bool failed = false;
		PGresult *res = NULL;
		if (pg.nprepared == PREPARED_MAX)
			name = NULL; /* no room to remember it: run it unprepared */
		else
			res =
			    pg_prepare(c, name, sql, nparams, deadline_ms, timed_out, err, &failed);
		if (failed)
			return res;
	}
	if (name != NULL) {
		sent = PQsendQueryPrepared(c, name, nparams, params, NULL, NULL, 0);
	} else if (nparams == 0) {
		sent = PQsendQuery(c, sql);
	} else {
		sent = PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	}
	if (!sent) {
		set_err(err, "query: ", PQerrorMessage(c));
		return NULL;
	}
	return pg_collect(c, deadline_ms, timed_out, err);
}

static PGresult *
pg_run(PGconn *c, const char *sql, int64_t deadline_ms, bool *timed_out, struct bw_err *err)
{
	return pg_run_params(c, NULL, sql, 0, NULL, deadline_ms, timed_out, err);
}

void
bw_pg_init(const struct bw_config *cfg, int64_t max_cooldown_ms)
{
	pg.cfg = cfg;
	pg.conn = NULL;
	bw_breaker_init(&pg.breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms,
	                max_cooldown_ms);
}

void
bw_pg_close(void)
{
	pg_forget_foreign();
	pg_drop();
}

/* bw_pg_ops' ping: one SELECT 1, connecting first if needed. */
static enum bw_rc
ping_once(void *arg, int64_t deadline, struct bw_err *err)
{
	PGresult *res;
	bool reused, timed_out;

	(void)arg;
	pg_forget_foreign();
	reused = pg.conn != NULL;
	if (!reused) {
		int64_t cdl = bw_now_ms() + pg.cfg->connect_timeout_ms;
		if (pg_connect(cdl < deadline ? cdl : deadline, err) < 0)
			return BW_ERR;
	}
	res = pg_run(pg.conn, "SELECT 1", deadline, &timed_out, err);
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
		PQclear(res);
		return BW_OK;
	}
	if (res != NULL)
		set_err(err, "query: ", PQresultErrorMessage(res));
	PQclear(res);
	/* A timed-out query leaves the connection busy; a bad one is dead.
	 * No PQcancel: in libpq 15 it connects and waits for EOF without
	 * any timeout, which hangs on exactly the stalled server we are
	 * giving up on. Closing the socket ends the backend instead. */
	if (!timed_out && PQstatus(pg.conn) == CONNECTION_OK)
		return BW_ERR;
	pg_drop();
	err->rc = reused && !timed_out ? BW_RETRY : BW_ERR;
	return err->rc;
}

static void
clear_result(void *p)
{
	PQclear(p);
}

enum bw_rc
bw_pg_query_prepared(struct bw_arena *a, const char *name, const char *sql, int nparams,
                     const char *const *params, int timeout_ms, struct bw_pg_result *out,
                     struct bw_err *err)
{
	int64_t now = bw_now_ms();
	PGresult *res = NULL;
	bool reused, timed_out, replanned = false;

	memset(out, 0, sizeof(*out));
	bw_err_clear(err);
	if (timeout_ms <= 0)
		timeout_ms = pg.cfg->pg_statement_timeout_ms + pg.cfg->connect_timeout_ms;
	int64_t deadline = now + timeout_ms;
	if (!bw_breaker_allow(&pg.breaker, now)) {
		bw_err_set(err, BW_REFUSED, "postgres unavailable (breaker open)");
		err->retry_after_ms = bw_breaker_retry_after_ms(&pg.breaker, now);
		return BW_REFUSED;
	}
	pg_forget_foreign();
	for (;;) {
		reused = pg.conn != NULL;
		if (!reused) {
			int64_t cdl = now + pg.cfg->connect_timeout_ms;
			if (pg_connect(cdl < deadline ? cdl : deadline, err) < 0)
				goto conn_fail;
		}
		bool in_tx = PQtransactionStatus(pg.conn) != PQTRANS_IDLE;
		res = pg_run_params(pg.conn, name, sql, nparams, params, deadline, &timed_out, err);
		/* A migration that changed what a prepared statement returns:
		 * "cached plan must not change result type". Prepare it afresh
		 * on a new connection, once. */
		if (res != NULL && name != NULL && !in_tx && !replanned && !pg.no_reconnect &&
		    PQresultStatus(res) == PGRES_FATAL_ERROR &&
		    strcmp(sqlstate_of(res), "0A000") == 0) {
			PQclear(res);
			res = NULL;
			pg_drop();
			replanned = true;
			continue;
		}
		if (res != NULL)
			break;
		pg_drop();
		now = bw_now_ms();
		/* Retry only a stale connection that failed at once, outside a
		 * transaction: inside one, the transaction is gone with it. */
		if (!reused || in_tx || timed_out || pg.no_reconnect || now >= deadline)
			goto conn_fail;
	}
	/* A stale connection's failure, replaced since, is no error of this call. */
	bw_err_clear(err);
	bw_breaker_note(&pg.breaker, bw_pg_ops.name, NULL);
	if (a != NULL)
		bw_arena_defer(a, clear_result, res);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *state = sqlstate_of(res);
		set_err(err, "", PQresultErrorMessage(res));
		err->rc = BW_INVALID;
		snprintf(err->code, sizeof(err->code), "%s", state[0] ? state : "XX000");
		if (a == NULL)
			PQclear(res);
		return BW_INVALID;
	}
	out->nrows = PQntuples(res);
	out->ncols = PQnfields(res);
	snprintf(out->cmd_tuples, sizeof(out->cmd_tuples), "%s", PQcmdTuples(res));
	if (a == NULL) {
		/* No arena to own it: the caller wanted the status only (COMMIT, ROLLBACK). */
		PQclear(res);
		out->nrows = 0;
		return BW_OK;
	}
	out->res = res;
	return BW_OK;
conn_fail:
	bw_breaker_note(&pg.breaker, bw_pg_ops.name, err->message);
	err->rc = BW_ERR;
	err->retry_after_ms = bw_breaker_retry_after_ms(&pg.breaker, bw_now_ms());
	return BW_ERR;
}

enum bw_rc
bw_pg_query(struct bw_arena *a, const char *sql, int nparams, const char *const *params,
            int timeout_ms, struct bw_pg_result *out, struct bw_err *err)
{
	return bw_pg_query_prepared(a, NULL, sql, nparams, params, timeout_ms, out, err);
}

const char *
bw_pg_get(const struct bw_pg_result *r, int row, int col)
{
	if (r->res == NULL || row < 0 || row >= r->nrows || col < 0 || col >= r->ncols ||
	    PQgetisnull(r->res, row, col))
		return NULL;
	return PQgetvalue(r->res, row, col);
}

bool
bw_pg_in_transaction(void)
{
	return pg.conn != NULL && PQtransactionStatus(pg.conn) != PQTRANS_IDLE;
}

void
bw_pg_reset(void)
{
	pg_forget_foreign();
	pg_drop();
}

void
bw_pg_use_conninfo(const char *conninfo)
{
	pg.conninfo = conninfo;
	pg_drop();
}

void
bw_pg_keep_session(bool on)
{
	pg.no_reconnect = on;
}

const struct bw_dep_ops bw_pg_ops = {
    .name = "postgres",
    .init = bw_pg_init,
    .close = bw_pg_close,
    .ping = ping_once,
    .breaker = &pg.breaker,
};

const char *
bw_pg_lib_version(void)
{
	int v = PQlibVersion();

	/* 10 and later: major * 10000 + minor; before: 9.6.24 = 90624. */
	if (v >= 100000)
		snprintf(pg.version, sizeof(pg.version), "%d.%d", v / 10000, v % 10000);
	else
		snprintf(pg.version, sizeof(pg.version), "%d.%d.%d", v / 10000, v / 100 % 100,
		         v % 100);
	return pg.version;
}

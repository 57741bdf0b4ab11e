/* bulwark migrate [-c FILE] up|status|lint [--dir DIR] [--wait SECONDS]
 *
 * Applies schema/NNN_name.sql in order as the schema owner, one transaction
 * per file (or none, for a file marked -- bulwark:no-transaction), with a
 * short lock_timeout and retries, so a migration never waits in the lock
 * queue behind a long transaction while every reader waits behind it.
 * Two runners never overlap: a session advisory lock, polled. Each applied
 * file's SHA-256 is recorded; a changed applied file stops the run. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sysexits.h>

#include "cli/cli.h"
#include "cli/lint.h"
#include "cli/sql_scan.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/secret.h"
#include "store/mongo_index.h"
#include "store/pg.h"

/* pg_advisory_lock key: "bulwark" in ASCII, fixed forever. */
#define LOCK_KEY         "27713656437437035"
#define LOCK_POLL_MS     250
#define DEFAULT_WAIT_S   300
#define TRIES            5
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS   4000
#define MAX_FILE_BYTES   (16 << 20)
/* A migration statement may work for hours (CREATE INDEX CONCURRENTLY on a
 * big table); lock waits are what lock_timeout bounds. */
#define STATEMENT_BUDGET_MS (24 * 3600 * 1000)

/* MongoDB index builds may take long on a big collection. */
#define MONGO_INDEX_TIMEOUT_MS (10 * 60 * 1000)

#define USAGE "usage: bulwark migrate [-c FILE] up|status|lint [--dir DIR] [--wait SECONDS]\n"

struct mig_file {
	const char *name, *path;
	char *text;
	size_t len;
	unsigned long long num;
	char sha[BW_SHA256_HEX_LEN + 1];
	/* from schema_migrations */
	bool applied;
	const char *applied_sha, *applied_at;
};

struct applied_row {
	const char *name, *sha, *at;
	bool matched;
};

struct mig {
	struct bw_config cfg;
	bool cfg_loaded;
	struct bw_arena *a;   /* files, rows: the whole run */
	struct bw_arena *tmp; /* one query or statement at a time */
	const char *dir;
	struct mig_file *files;
	size_t nfiles;
	struct applied_row *rows;
	size_t nrows;
	int wait_s;
};

/* ---- files */

static bool
migration_name(const char *n, unsigned long long *num)
{
	size_t d = strspn(n, "0123456789"), len = strlen(n), w;

	if (d == 0 || d > 9 || n[d] != '_' || len < d + 6 || strcmp(n + len - 4, ".sql") != 0)
		return false;
	w = strspn(n + d + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	if (w != len - d - 5)
		return false;
	*num = strtoull(n, NULL, 10);
	return true;
}

static int
read_whole(struct bw_arena *a, const char *path, char **text, size_t *len)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto fail;
	}
	*text = bw_arena_alloc(a, (size_t)st.st_size + 1);
	if (*text == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	while (got < (size_t)st.st_size &&
	       (n = read(fd, *text + got, (size_t)st.st_size - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		got += (size_t)n;
	}
	(*text)[got] = '\0';
	*len = got;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

static int
by_number(const void *x, const void *y)
{
	const struct mig_file *a = x, *b = y;

	if (a->num != b->num)
		return a->num < b->num ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Reads every NNN_name.sql of m->dir, in number order. A .sql file with
 * another name, or two files with one number, is an error: a silently
 * skipped migration is worse than a refused run. */
static int
load_files(struct mig *m)
{
	DIR *d = opendir(m->dir);
	struct dirent *e;
	size_t cap = 0;
	int rc = -1;

	if (d == NULL) {
		fprintf(stderr, "bulwark: migrate: %s: %s\n", m->dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct mig_file f = {0};
		size_t nl = strlen(e->d_name);

		if (e->d_name[0] == '.' || nl < 4 || strcmp(e->d_name + nl - 4, ".sql") != 0)
			continue;
		if (!migration_name(e->d_name, &f.num)) {
			fprintf(stderr,
			        "bulwark: migrate: %s/%s: not a migration name (NNN_name.sql)\n",
			        m->dir, e->d_name);
			goto done;
		}
		f.name = bw_arena_strdup(m->a, e->d_name);
		f.path = bw_arena_printf(m->a, "%s/%s", m->dir, e->d_name);
		if (f.name == NULL || f.path == NULL)
			goto oom;
		if (read_whole(m->a, f.path, &f.text, &f.len) < 0) {
			fprintf(stderr, "bulwark: migrate: %s: %s\n", f.path, strerror(errno));
			goto done;
		}
		bw_sha256_hex(f.text, f.len, f.sha);
		if (m->nfiles == cap) {
			size_t ncap = cap == 0 ? 32 : cap * 2;
			struct mig_file *n = bw_arena_alloc(m->a, ncap * sizeof(*n));
			if (n == NULL)
				goto oom;
			if (m->nfiles > 0)
				memcpy(n, m->files, m->nfiles * sizeof(*n));
			m->files = n;
			cap = ncap;
		}
		m->files[m->nfiles++] = f;
	}
	if (m->nfiles > 0)
		qsort(m->files, m->nfiles, sizeof(*m->files), by_number);
	for (size_t i = 1; i < m->nfiles; i++)
		if (m->files[i].num == m->files[i - 1].num) {
			fprintf(stderr, "bulwark: migrate: %s and %s have the same number\n",
			        m->files[i - 1].path, m->files[i].path);
			goto done;
		}
	rc = 0;
	goto done;
oom:
	fprintf(stderr, "bulwark: migrate: out of memory\n");
done:
	closedir(d);
	return rc;
}

/* Prints each problem as path:line: message; returns how many (-1: OOM). */
static int
lint_file(struct mig *m, const struct mig_file *f)
{
	struct bw_lint_problem *p;
	int n = bw_lint_sql(m->tmp, f->text, f->len, &p);

	if (n < 0)
		fprintf(stderr, "bulwark: migrate: out of memory\n");
	for (int i = 0; i < n; i++)
		fprintf(stderr, "%s:%d: %s\n", f->path, p[i].line, p[i].msg);
	bw_arena_reset(m->tmp);
	return n;
}

/* ---- database */

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The server's message without libpq's "ERROR:  " prefix. */
static const char *
msg_of(const struct bw_err *e)
{
	const char *m = e->message;

	if (strncmp(m, "ERROR:", 6) == 0)
		for (m += 6; *m == ' '; m++)
			;
	return m;
}

/* One query in the scratch arena (reset by the caller); prints
 * "bulwark: migrate: WHAT: message" on failure when what is set. */
static int
q(struct mig *m, const char *what, const char *sql, int n, const char *const *params,
  int timeout_ms, struct bw_pg_result *res, struct bw_err *err)
{
	struct bw_pg_result r;
	struct bw_err e;

	if (res == NULL)
		res = &r;
	if (err == NULL)
		err = &e;
	if (bw_pg_query(m->tmp, sql, n, params, timeout_ms, res, err) == 0)
		return 0;
	if (what != NULL)
		fprintf(stderr, "bulwark: migrate: %s: %s\n", what, msg_of(err));
	return -1;
}

static int
connect_owner(struct mig *m)
{
	/* Quiet (no NOTICEs from IF NOT EXISTS), and no statement_timeout:
	 * lock_timeout bounds the waits, a long statement is doing work. */
	static const char setup[] = "SET application_name = 'bulwark migrate';"
	                            "SET client_min_messages = warning;"
	                            "SET statement_timeout = 0";

	bw_pg_init(&m->cfg, m->cfg.breaker_cooldown_ms);
	bw_pg_use_conninfo(m->cfg.postgres_owner);
	bw_pg_keep_session(true);
	return q(m, "postgres", setup, 0, NULL, 0, NULL, NULL);
}

/* "pid 123 (bulwark migrate, 10.0.0.5, connected 2025-…Z)" or a vaguer
 * text when the holder is gone or hidden. */
static const char *
lock_holder(struct mig *m)
{
	static const char sql[] =
	    "SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'),"
	    " coalesce(host(a.client_addr), 'local'),"
	    " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
	    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
	    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
	    " AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid"
	    " LIMIT 1";
	const char *params[] = {LOCK_KEY};
	struct bw_pg_result r;

	if (q(m, NULL, sql, 1, params, 0, &r, NULL) < 0 || r.nrows < 1)
		return "another session";
	return bw_arena_printf(m->a, "pid %s (%s, %s, connected %s)", bw_pg_get(&r, 0, 0),
	                       bw_pg_get(&r, 0, 1), bw_pg_get(&r, 0, 2), bw_pg_get(&r, 0, 3));
}

static int
take_lock(struct mig *m)
{
	const char *params[] = {LOCK_KEY};
	int64_t deadline = bw_now_ms() + (int64_t)m->wait_s * 1000;
	const char *holder = NULL;
	struct bw_pg_result r;

	for (;;) {
		if (q(m, "advisory lock", "SELECT pg_try_advisory_lock($1::bigint)", 1, params, 0,
		      &r, NULL) < 0)
			return -1;
		if (r.nrows == 1 && strcmp(bw_pg_get(&r, 0, 0), "t") == 0)
			break;
		bw_arena_reset(m->tmp);
		if (holder == NULL) {
			holder = lock_holder(m);
			fprintf(stderr,
			        "bulwark: migrate: waiting for the migration lock held by %s\n",
			        holder != NULL ? holder : "another session");
		}
		if (bw_now_ms() >= deadline) {
			fprintf(
			    stderr,
			    "bulwark: migrate: the migration lock is still held after %d s by %s; "
			    "giving up\n",
			    m->wait_s, lock_holder(m));
			return -1;
		}
		bw_arena_reset(m->tmp);
		sleep_ms(LOCK_POLL_MS);
	}
	bw_arena_reset(m->tmp);
	return 0;
}

static int
ensure_table(struct mig *m)
{
	/* Owned by the owner; bulwark_app gets no grant on it. */
	static const char sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                          " name text PRIMARY KEY,"
	                          " sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),"
	                          " applied_at timestamptz NOT NULL DEFAULT now(),"
	                          " duration_ms bigint NOT NULL CHECK (duration_ms >= 0))";
	int rc = q(m, "schema_migrations", sql, 0, NULL, 0, NULL, NULL);

	bw_arena_reset(m->tmp);
	return rc;
}

/* Reads schema_migrations (none yet: nothing applied) and matches its
 * rows with the files. */
static int
load_applied(struct mig *m)
{
	static const char sql[] =
	    "SELECT name, sha256,"
	    " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	    " FROM schema_migrations ORDER BY name";
	struct bw_pg_result r;
	int rc = -1;

	if (q(m, "postgres", "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, 0, &r,
	      NULL) < 0)
		goto done;
	if (r.nrows != 1 || strcmp(bw_pg_get(&r, 0, 0), "t") != 0) {
		rc = 0;
		goto done;
	}
	if (q(m, "schema_migrations", sql, 0, NULL, 0, &r, NULL) < 0)
		goto done;
	m->rows = bw_arena_calloc(m->a, (size_t)r.nrows + 1, sizeof(*m->rows));
	if (m->rows == NULL) {
		fprintf(stderr, "bulwark: migrate: out of memory\n");
		goto done;
	}
	for (int i = 0; i < r.nrows; i++) {
		struct applied_row *row = &m->rows[m->nrows++];
		row->name = bw_arena_strdup(m->a, bw_pg_get(&r, i, 0));
		row->sha = bw_arena_strdup(m->a, bw_pg_get(&r, i, 1));
		row->at = bw_arena_strdup(m->a, bw_pg_get(&r, i, 2));
		if (row->name == NULL || row->sha == NULL || row->at == NULL)
			goto done;
		for (size_t k = 0; k < m->nfiles; k++) {
			struct mig_file *f = &m->files[k];
			if (strcmp(f->name, row->name) == 0) {
				f->applied = true;
				f->applied_sha = row->sha;
				f->applied_at = row->at;
				row->matched = true;
			}
		}
	}
	rc = 0;
done:
	if (rc < 0 && m->rows != NULL)
		fprintf(stderr, "bulwark: migrate: out of memory\n");
	bw_arena_reset(m->tmp);
	return rc;
}

static bool
changed(const struct mig_file *f)
{
	return f->applied && strcmp(f->sha, f->applied_sha) != 0;
}

static bool
retryable(const struct bw_err *e)
{
	/* lock_not_available (lock_timeout) and deadlock_detected: both mean
	 * "someone else held what we need", not that the SQL is wrong. */
	return e->rc == BW_INVALID &&
	       (strcmp(e->code, "55P03") == 0 || strcmp(e->code, "40P01") == 0);
}

/* Drops what a failed CREATE INDEX CONCURRENTLY left behind (an INVALID
 * index), so its retry does not trip over it. */
static int
drop_invalid_index(struct mig *m, const struct mig_file *f, const char *index)
{
	const char *params[] = {index};
	struct bw_pg_result r;
	char *sql;

	if (q(m, f->name,
	      "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid", 1,
	      params, 0, &r, NULL) < 0)
		return -1;
	if (r.nrows == 0)
		return 0;
	sql = bw_arena_printf(m->tmp, "DROP INDEX CONCURRENTLY IF EXISTS %s", index);
	return sql == NULL ? -1 : q(m, f->name, sql, 0, NULL, STATEMENT_BUDGET_MS, NULL, NULL);
}

/* After a CREATE INDEX CONCURRENTLY: every index of the table is valid. */
static int
check_indexes_valid(struct mig *m, const struct mig_file *f, int line, const char *table)
{
	static const char sql[] =
	    "SELECT string_agg(indexrelid::regclass::text, ', ') FROM pg_index"
	    " WHERE indrelid = to_regclass($1) AND NOT indisvalid";
	const char *params[] = {table};
	struct bw_pg_result r;
	const char *bad;

	if (q(m, f->name, sql, 1, params, 0, &r, NULL) < 0)
		return -1;
	bad = bw_pg_get(&r, 0, 0);
	if (bad == NULL)
		return 0;
	fprintf(stderr,
	        "bulwark: migrate: %s:%d: CREATE INDEX CONCURRENTLY left the INVALID index %s on "
	        "%s; DROP INDEX CONCURRENTLY it and run again\n",
	        f->path, line, bad, table);
	return -1;
}

static void
say_retry(const struct mig_file *f, int line, int try, int64_t backoff)
{
	fprintf(stderr,
	        "bulwark: migrate: %s:%d: could not get its locks (try %d of %d); again in %lld "
	        "ms\n",
	        f->path, line, try, TRIES, (long long)backoff);
}

static void
say_gave_up(const struct mig *m, const struct mig_file *f, int line, bool in_tx)
{
	fprintf(stderr,
	        "bulwark: migrate: %s:%d: could not get its locks in %d tries of %d ms each (a "
	        "long transaction holds them); %s, run again later\n",
	        f->path, line, TRIES, m->cfg.migrate_lock_timeout_ms,
	        in_tx ? "nothing of this file was kept" : "the statements before it were kept");
}

static int
record(struct mig *m, const struct mig_file *f, int64_t ms)
{
	char dur[24];
	const char *params[] = {f->name, f->sha, dur};

	snprintf(dur, sizeof(dur), "%lld", (long long)ms);
	return q(m, f->name,
	         "INSERT INTO schema_migrations (name, sha256, duration_ms) VALUES ($1, $2, $3)", 3,
	         params, 0, NULL, NULL);
}

/* One transaction: SET LOCAL lock_timeout, every statement, the record,
 * COMMIT. Returns 0, 1 to retry (lock timeout; rolled back), -1. */
static int
apply_in_transaction(struct mig *m, const struct mig_file *f, const struct bw_sql_file *sf,
                     int *fail_line)
{
	struct bw_err err;
	char set[64];
	int64_t t0 = bw_now_ms();

	*fail_line = 1;
	snprintf(set, sizeof(set), "SET LOCAL lock_timeout = '%dms'",
	         m->cfg.migrate_lock_timeout_ms);
	if (q(m, f->name, "BEGIN", 0, NULL, 0, NULL, NULL) < 0 ||
	    q(m, f->name, set, 0, NULL, 0, NULL, NULL) < 0)
		goto fail;
	for (size_t i = 0; i < sf->nstmts; i++) {
		const struct bw_sql_stmt *s = &sf->stmts[i];
		char *sql = bw_arena_strndup(m->tmp, f->text + s->start, s->end - s->start);

		*fail_line = s->line;
		if (sql == NULL)
			goto fail;
		if (q(m, NULL, sql, 0, NULL, STATEMENT_BUDGET_MS, NULL, &err) < 0) {
			if (retryable(&err)) {
				int rc = q(m, f->name, "ROLLBACK", 0, NULL, 0, NULL, NULL);
				bw_arena_reset(m->tmp);
				return rc < 0 ? -1 : 1;
			}
			fprintf(stderr, "bulwark: migrate: %s:%d: %s\n", f->path, s->line,
			        msg_of(&err));
			goto fail;
		}
		bw_arena_reset(m->tmp);
	}
	if (record(m, f, bw_now_ms() - t0) < 0 ||
	    q(m, f->name, "COMMIT", 0, NULL, 0, NULL, NULL) < 0)
		goto fail;
	bw_arena_reset(m->tmp);
	return 0;
fail:
	if (bw_pg_in_transaction())
		q(m, NULL, "ROLLBACK", 0, NULL, 0, NULL, NULL);
	bw_arena_reset(m->tmp);
	return -1;
}

/* -- bulwark:no-transaction: statements one by one in autocommit, each
 * retried on its own; what ran before a failure stays applied. */
static int
apply_outside_transaction(struct mig *m, const struct mig_file *f, const struct bw_sql_file *sf)
{
	struct bw_err err;
	char set[64];
	int64_t t0 = bw_now_ms();

	snprintf(set, sizeof(set), "SET lock_timeout = '%dms'", m->cfg.migrate_lock_timeout_ms);
	if (q(m, f->name, set, 0, NULL, 0, NULL, NULL) < 0)
		goto fail;
	for (size_t i = 0; i < sf->nstmts; i++) {
		const struct bw_sql_stmt *s = &sf->stmts[i];
		char *sql = bw_arena_strndup(m->tmp, f->text + s->start, s->end - s->start);
		char *index = NULL, *table = NULL;
		bool cic = bw_sql_concurrent_index(m->tmp, s, f->text, &index, &table);
		int64_t backoff = BACKOFF_FIRST_MS;

		if (sql == NULL)
			goto fail;
		for (int try = 1;; try++) {
			if (q(m, NULL, sql, 0, NULL, STATEMENT_BUDGET_MS, NULL, &err) == 0)
				break;
			if (!retryable(&err)) {
				fprintf(stderr, "bulwark: migrate: %s:%d: %s%s\n", f->path, s->line,
				        msg_of(&err),
				        i > 0
				            ? " (the statements before it were applied: this file "
				              "runs outside a transaction)"
				            : "");
				goto fail;
			}
			if (try == TRIES) {
				say_gave_up(m, f, s->line, false);
				goto fail;
			}
			say_retry(f, s->line, try, backoff);
			sleep_ms(backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			if (cic && index != NULL && drop_invalid_index(m, f, index) < 0)
				goto fail;
		}
		if (cic && check_indexes_valid(m, f, s->line, table) < 0)
			goto fail;
		bw_arena_reset(m->tmp);
	}
	if (q(m, f->name, "RESET lock_timeout", 0, NULL, 0, NULL, NULL) < 0 ||
	    record(m, f, bw_now_ms() - t0) < 0)
		goto fail;
	bw_arena_reset(m->tmp);
	return 0;
fail:
	bw_arena_reset(m->tmp);
	return -1;
}

static int
apply(struct mig *m, const struct mig_file *f)
{
	struct bw_sql_file sf;
	char err[128];
	int line, rc;
	int64_t t0 = bw_now_ms(), backoff = BACKOFF_FIRST_MS;

	/* The file passed lint, so it scans. */
	if (bw_sql_scan(m->a, f->text, f->len, &sf, &line, err, sizeof(err)) < 0) {
		fprintf(stderr, "bulwark: migrate: %s:%d: %s\n", f->path, line, err);
		return -1;
	}
	if (sf.no_transaction) {
		rc = apply_outside_transaction(m, f, &sf);
	} else {
		for (int try = 1;; try++) {
			rc = apply_in_transaction(m, f, &sf, &line);
			if (rc <= 0)
				break;
			if (try == TRIES) {
				say_gave_up(m, f, line, true);
				return -1;
			}
			say_retry(f, line, try, backoff);
			sleep_ms(backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
	if (rc < 0)
		return -1;
	printf("applied %s in %lld ms\n", f->name, (long long)(bw_now_ms() - t0));
	fflush(stdout);
	return 0;
}

/* ---- commands */

static int
cmd_lint(struct mig *m)
{
	int bad = 0;

	for (size_t i = 0; i < m->nfiles; i++) {
		int n = lint_file(m, &m->files[i]);
		if (n != 0)
			bad++;
	}
	return bad > 0 ? 1 : 0;
}

/* ---- MongoDB indexes */

/* Ensures what DIR/mongo/NAME.json describe (store/mongo_index.h), in name
 * order; one line per file where an index was created or changed. */
static int
ensure_mongo_indexes(struct mig *m, int *total)
{
	const char *dir = bw_arena_printf(m->a, "%s/mongo", m->dir);
	struct dirent **names = NULL;
	struct bw_err err;
	int n, rc = 0;

	*total = 0;
	n = dir != NULL ? scandir(dir, &names, NULL, alphasort) : -1;
	if (n < 0) {
		if (dir != NULL && errno == ENOENT)
			return 0;
		fprintf(stderr, "bulwark: migrate: %s: %s\n", dir ? dir : "mongo", strerror(errno));
		return -1;
	}
	if (m->cfg.mongo_timeout_ms < MONGO_INDEX_TIMEOUT_MS)
		m->cfg.mongo_timeout_ms = MONGO_INDEX_TIMEOUT_MS;
	bw_mongo_index_open(&m->cfg);
	for (int i = 0; i < n && rc == 0; i++) {
		const char *name = names[i]->d_name, *path;
		size_t nl = strlen(name), len;
		char *text;
		int changed, mrc;

		if (name[0] == '.' || nl < 6 || strcmp(name + nl - 5, ".json") != 0)
			continue;
		path = bw_arena_printf(m->a, "%s/%s", dir, name);
		if (path == NULL || read_whole(m->a, path, &text, &len) < 0) {
			fprintf(stderr, "bulwark: migrate: %s/%s: %s\n", dir, name,
			        strerror(errno));
			rc = -1;
			continue;
		}
		mrc = bw_mongo_ensure_indexes(text, len, MONGO_INDEX_TIMEOUT_MS, &changed, &err);
		if (mrc == BW_INVALID) {
			fprintf(stderr, "bulwark: migrate: %s: MongoDB: %s\n", path, err.message);
			rc = -1;
		} else if (mrc < 0) {
			/* The daemon runs (503 for telemetry) while MongoDB is down;
			 * its deployment need not stop here either. */
			fprintf(stderr,
			        "bulwark: migrate: MongoDB indexes not ensured, MongoDB is "
			        "unavailable (%s); run bulwark migrate up again once it answers\n",
			        err.message);
			break;
		} else if (changed > 0) {
			printf("ensured mongo/%s: %d index%s created or changed\n", name, changed,
			       changed == 1 ? "" : "es");
			*total += changed;
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	bw_mongo_index_close();
	return rc;
}

static int
cmd_up(struct mig *m)
{
	int nchanged = 0, nbad = 0, napplied = 0, nmongo = 0;

	if (connect_owner(m) < 0 || take_lock(m) < 0 || ensure_table(m) < 0 || load_applied(m) < 0)
		return 1;
	for (size_t i = 0; i < m->nfiles; i++)
		if (changed(&m->files[i])) {
			fprintf(stderr,
			        "bulwark: migrate: %s was changed after it was applied (SHA-256 "
			        "differs); restore it and put the change in a new file\n",
			        m->files[i].path);
			nchanged++;
		}
	if (nchanged > 0)
		return 1;
	for (size_t i = 0; i < m->nfiles; i++)
		if (!m->files[i].applied && lint_file(m, &m->files[i]) != 0)
			nbad++;
	if (nbad > 0) {
		fprintf(stderr,
		        "bulwark: migrate: refusing to apply anything: %d file%s fail lint\n", nbad,
		        nbad == 1 ? "" : "s");
		return 1;
	}
	for (size_t i = 0; i < m->nfiles; i++) {
		if (m->files[i].applied)
			continue;
		if (apply(m, &m->files[i]) < 0)
			return 1;
		napplied++;
	}
	if (ensure_mongo_indexes(m, &nmongo) < 0)
		return 1;
	if (napplied == 0 && nmongo == 0)
		printf("up to date\n");
	return 0;
}

static int
cmd_status(struct mig *m)
{
	int nchanged = 0;

	if (connect_owner(m) < 0 || load_applied(m) < 0)
		return 1;
	for (size_t i = 0; i < m->nrows; i++)
		if (!m->rows[i].matched)
			printf("missing  %s  applied %s, no such file in %s\n", m->rows[i].name,
			       m->rows[i].at, m->dir);
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct mig_file *f = &m->files[i];
		if (changed(f)) {
			printf("changed  %s  applied %s, SHA-256 differs\n", f->name,
			       f->applied_at);
			nchanged++;
		} else if (f->applied) {
			printf("applied  %s  %s\n", f->name, f->applied_at);
		} else {
			printf("pending  %s\n", f->name);
		}
	}
	return nchanged > 0 ? 1 : 0;
}

int
bw_cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct mig m = {.wait_s = DEFAULT_WAIT_S};
	const char *file = NULL, *sub;
	char err[512], *end;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:d:w:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			m.dir = optarg;
			break;
		case 'w': {
			errno = 0;
			long w = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg || w < 0 || w > 86400) {
				fprintf(stderr,
				        "bulwark: migrate: --wait: seconds from 0 to 86400\n");
				return EX_USAGE;
			}
			m.wait_s = (int)w;
			break;
		}
		case 'h':
			printf(USAGE);
			return 0;
		default:
			fprintf(stderr, USAGE);
			return EX_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, USAGE);
		return EX_USAGE;
	}
	sub = argv[optind];
	if (strcmp(sub, "up") != 0 && strcmp(sub, "status") != 0 && strcmp(sub, "lint") != 0) {
		fprintf(stderr, "bulwark: migrate: unknown command \"%s\"\n" USAGE, sub);
		return EX_USAGE;
	}
	/* lint --dir needs neither a config nor a database (make check). */
	if (strcmp(sub, "lint") != 0 || m.dir == NULL || file != NULL) {
		if (bw_config_load(&m.cfg, file, err, sizeof(err)) < 0) {
			fprintf(stderr, "bulwark: %s\n", err);
			return EX_CONFIG;
		}
		m.cfg_loaded = true;
		if (m.dir == NULL)
			m.dir = m.cfg.schema_dir;
		/* Our own lines say what failed; the store's JSON lines are noise. */
		bw_log_setup(BW_LOG_ERROR, NULL);
	}
	m.a = bw_arena_new(64 * 1024);
	m.tmp = bw_arena_new(16 * 1024);
	if (m.a == NULL || m.tmp == NULL) {
		fprintf(stderr, "bulwark: migrate: out of memory\n");
		goto done;
	}
	if (load_files(&m) < 0)
		goto done;
	if (strcmp(sub, "lint") == 0)
		rc = cmd_lint(&m);
	else if (strcmp(sub, "up") == 0)
		rc = cmd_up(&m);
	else
		rc = cmd_status(&m);
done:
	if (m.cfg_loaded) {
		/* Closing the session releases the advisory lock too. */
		bw_pg_close();
		bw_config_free(&m.cfg);
	}
	bw_arena_free(m.tmp);
	bw_arena_free(m.a);
	return rc;
}

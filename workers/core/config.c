/* THE table of configuration keys. Each row: name, type, where it lives in
 * struct bw_config, default, bounds, and a line of help for the README.
 * Sources in order: defaults, the -c file, BULWARK_<KEY> environment. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define KEY(name, type, def, min, max, help)                                                       \
	{                                                                                          \
#name, type, offsetof(struct bw_config, name), def, min, max, help, NULL           \
	}

/* An enum key: the field holds the index of its value in names. */
#define ENUM_KEY(name, names, def, help)                                                           \
	{                                                                                          \
#name, BW_CONF_ENUM, offsetof(struct bw_config, name), def, 0, 0, help, names      \
	}

static const char *const redis_fallback_names[] = {
    [BW_REDIS_FALLBACK_LOCAL] = "local",
    [BW_REDIS_FALLBACK_OPEN] = "open",
    [BW_REDIS_FALLBACK_CLOSED] = "closed",
    NULL,
};

static const char *const telemetry_write_names[] = {
    [BW_TELEMETRY_UPSERT] = "upsert",
    [BW_TELEMETRY_INSERT] = "insert",
    NULL,
};

const struct bw_config_key bw_config_keys[] = {
    KEY(listen, BW_CONF_STRING, "/run/bulwark/fcgi.sock", 0, 0,
        "FastCGI socket: a unix path (made by the master, mode 0660) or host:port; ignored when "
        "systemd passes a socket"),
    KEY(listen_backlog, BW_CONF_INT, "511", 1, 65535, "listen(2) backlog of the FastCGI socket"),
    KEY(status_listen, BW_CONF_STRING, "/run/bulwark/status.sock", 0, 0,
        "unix path of the master's status socket (/status, /metrics); empty disables it"),
    KEY(workers, BW_CONF_INT, "4", 1, 256, "number of worker processes"),
    KEY(max_requests, BW_CONF_LONG, "10000", 0, 1000000000,
        "recycle a worker after this many requests (0 = never)"),
    KEY(max_requests_jitter_pct, BW_CONF_INT, "10", 0, 50,
        "random spread of max_requests, in percent"),
    KEY(request_timeout_ms, BW_CONF_INT, "30000", 100, 3600000,
        "hard deadline of one request; the master kills a worker past it"),
    KEY(request_timeout_grace_ms, BW_CONF_INT, "1000", 0, 60000,
        "extra time before the master kills a late worker"),
    KEY(drain_timeout_ms, BW_CONF_INT, "30000", 0, 3600000,
        "on SIGTERM, and for each worker a reload retires, how long in-flight requests may take "
        "before SIGKILL"),
    KEY(reload_timeout_ms, BW_CONF_INT, "30000", 1000, 3600000,
        "how long new workers have to become ready on reload before rollback"),
    KEY(reload_surge, BW_CONF_INT, "1", 1, 16,
        "new workers started at a time during a rolling reload"),
    KEY(fcgi_keeper_timeout_ms, BW_CONF_INT, "200", 1, 2000,
        "libfcgi AF_UNIX keeper poll (default 2000 stalls a worker)"),
    KEY(fcgi_close_timeout_ms, BW_CONF_INT, "500", 1, 2000,
        "lingering close, when nginx may still be sending (libfcgi default 2000)"),
    KEY(postgres, BW_CONF_STRING, "host=/var/run/postgresql dbname=bulwark", 0, 0,
        "libpq connection string"),
    KEY(postgres_owner, BW_CONF_STRING, "", 0, 0,
        "libpq connection string of the schema owner, for migrate, tenant and key; empty = "
        "postgres"),
    KEY(schema_dir, BW_CONF_STRING, "", 0, 0,
        "where bulwark migrate finds its files; empty = the installed share/bulwark/schema"),
    KEY(migrate_lock_timeout_ms, BW_CONF_INT, "2000", 10, 600000,
        "lock_timeout of each migration; a file that cannot get its locks is retried"),
    KEY(redis, BW_CONF_STRING, "127.0.0.1:6379", 0, 0,
        "Redis for rate limits and key records: host:port or unix path"),
    KEY(redis_cache, BW_CONF_STRING, "", 0, 0, "Redis for the cache; empty = same as redis"),
    KEY(mongo, BW_CONF_STRING, "mongodb://127.0.0.1:27017/bulwark", 0, 0, "MongoDB URI"),
    KEY(mongo_write_w, BW_CONF_STRING, "majority", 0, 0,
        "write concern w of telemetry writes: majority, a number of members (>= 1) or a tag set "
        "name"),
    KEY(mongo_write_journal, BW_CONF_BOOL, "true", 0, 0,
        "write concern j: acknowledged only once in the on-disk journal"),
    KEY(mongo_wtimeout_ms, BW_CONF_INT, "4000", 1, 3600000,
        "write concern wtimeout; keep it below mongo_timeout_ms (a timeout is a 503, the write's "
        "fate unknown)"),
    KEY(telemetry_max_past_s, BW_CONF_INT, "604800", 0, 315360000,
        "oldest accepted reading ts, in seconds before receipt (else 400 clock_skew)"),
    KEY(telemetry_max_future_s, BW_CONF_INT, "300", 0, 86400,
        "newest accepted reading ts, in seconds after receipt (else 400 clock_skew)"),
    KEY(telemetry_retention_days, BW_CONF_INT, "30", 1, 24855,
        "days a reading is kept: the TTL index on received_at, set by bulwark migrate up"),
    KEY(telemetry_latest_ttl_s, BW_CONF_INT, "3600", 1, 604800,
        "how long the cache Redis keeps a device's latest reading"),
    ENUM_KEY(
        telemetry_write_mode, telemetry_write_names, "insert",
        "upsert: each batch is one bulk of update_one upserts ($setOnInsert by _id); insert: an "
        "unordered insert_many first, the upsert bulk only if the server refused it whole over a "
        "duplicate (jongodb)"),
    KEY(connect_timeout_ms, BW_CONF_INT, "1000", 10, 60000, "connect timeout for every store"),
    KEY(pg_statement_timeout_ms, BW_CONF_INT, "5000", 10, 3600000, "PostgreSQL statement_timeout"),
    KEY(redis_timeout_ms, BW_CONF_INT, "250", 10, 60000, "Redis command timeout"),
    KEY(mongo_timeout_ms, BW_CONF_INT, "5000", 10, 3600000, "MongoDB socket timeout"),
    KEY(ping_timeout_ms, BW_CONF_INT, "500", 10, 60000, "timeout of each /readyz check"),
    KEY(breaker_threshold, BW_CONF_INT, "3", 1, 1000,
        "consecutive failures that open a dependency's circuit breaker"),
    KEY(breaker_cooldown_ms, BW_CONF_INT, "250", 10, 60000,
        "time an open breaker waits before one probe"),
    KEY(cache_ttl_s, BW_CONF_INT, "60", 1, 86400, "cache-aside TTL (jittered)"),
    ENUM_KEY(ratelimit_on_redis_error, redis_fallback_names, "local",
             "when Redis fails: local (host-wide limiter in shared memory), open (allow) or closed "
             "(503)"),
    KEY(ratelimit_hosts, BW_CONF_INT, "1", 1, 1000,
        "hosts sharing the limits: the local fallback allows rate and burst divided by this"),
    KEY(auth_fail_rate, BW_CONF_INT, "10", 1, 100000,
        "failed authentications per second allowed from one client address (IPv6: per /64)"),
    KEY(auth_fail_burst, BW_CONF_INT, "100", 1, 1000000,
        "burst of failed authentications per address"),
    KEY(key_cache_ttl_s, BW_CONF_INT, "3600", 1, 604800,
        "how long Redis keeps a cached API key record"),
    KEY(negative_cache_ttl_ms, BW_CONF_INT, "5000", 100, 3600000,
        "how long an unknown key id is remembered as unknown"),
    KEY(revoked_ttl_s, BW_CONF_INT, "604800", 60, 31536000,
        "how long the tombstone of a revoked key stays in Redis"),
    KEY(body_limit, BW_CONF_SIZE, "1m", 1, 67108864,
        "largest request body a route accepts unless it sets its own"),
    KEY(log_level, BW_CONF_LOGLEVEL, "info", 0, 0, "debug, info, warn or error"),
    KEY(log_file, BW_CONF_STRING, "", 0, 0, "log file (reopened on SIGUSR1); empty = stderr"),
    KEY(access_log, BW_CONF_BOOL, "true", 0, 0, "one JSON line per request"),
#ifdef BW_TEST_ROUTES
    KEY(test_fail_worker_start, BW_CONF_BOOL, "false", 0, 0,
        "test builds only: workers exit before becoming ready (reload rollback test)"),
    KEY(test_hang_on_stop, BW_CONF_BOOL, "false", 0, 0,
        "test builds only: a worker asked to stop never exits (retire deadline test)"),
#endif
};

const size_t bw_config_nkeys = sizeof(bw_config_keys) / sizeof(bw_config_keys[0]);

static const struct bw_config_key *
find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < bw_config_nkeys; i++)
		if (strlen(bw_config_keys[i].name) == len &&
		    strncmp(bw_config_keys[i].name, name, len) == 0)
			return &bw_config_keys[i];
	return NULL;
}

static int
parse_long(const char *s, long *out)
{
	char *end;

	errno = 0;
	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
parse_size(const char *s, long *out)
{
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	long v = strtol(s, &end, 10);
	if (errno != 0)
		return -1;
	long mult = 1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'k':
		mult = 1024L;
		end++;
		break;
	case 'm':
		mult = 1024L * 1024;
		end++;
		break;
	case 'g':
		mult = 1024L * 1024 * 1024;
		end++;
		break;
	default:
		return -1;
	}
	if (*end != '\0' || v > LONG_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* "a, b or c" */
static void
join_names(const char *const *names, char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; names[i] != NULL && used < outlen; i++) {
		const char *sep = i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ";
		int w = snprintf(out + used, outlen - used, "%s%s", sep, names[i]);
		if (w < 0)
			return;
		used += (size_t)w;
	}
}

/* Sets one key from its text form. `origin` names where the value came from. */
static int
set_value(struct bw_config *cfg, const struct bw_config_key *k, const char *val, const char *origin,
          char *err, size_t errlen)
{
	char *field = (char *)cfg + k->offset;
	long v = 0;

	switch (k->type) {
	case BW_CONF_STRING: {
		char *copy = strdup(val);
		if (copy == NULL) {
			snprintf(err, errlen, "%s: out of memory", k->name);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case BW_CONF_INT:
	case BW_CONF_LONG:
		if (parse_long(val, &v) < 0) {
			snprintf(err, errlen, "%s%s: must be an integer (got \"%s\")", k->name,
			         origin, val);
			return -1;
		}
		break;
	case BW_CONF_SIZE:
		if (parse_size(val, &v) < 0) {
			snprintf(err, errlen,
			         "%s%s: must be a size like 512, 64k or 1m (got \"%s\")", k->name,
			         origin, val);
			return -1;
		}
		break;
	case BW_CONF_BOOL:
		if (parse_bool(val, (bool *)field) < 0) {
			snprintf(err, errlen, "%s%s: must be true or false (got \"%s\")", k->name,
			         origin, val);
			return -1;
		}
		return 0;
	case BW_CONF_LOGLEVEL:
		for (int l = BW_LOG_DEBUG; l <= BW_LOG_ERROR; l++) {
			if (strcmp(val, bw_log_level_name(l)) == 0) {
				*(int *)field = l;
				return 0;
			}
		}
		snprintf(err, errlen, "%s%s: must be debug, info, warn or error (got \"%s\")",
		         k->name, origin, val);
		return -1;
	case BW_CONF_ENUM: {
		char names[128];
		for (int i = 0; k->names[i] != NULL; i++) {
			if (strcmp(val, k->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		/* Without the origin: these keys were checked after loading once,
		 * and their message has kept that shape. */
		join_names(k->names, names, sizeof(names));
		snprintf(err, errlen, "%s: must be %s (got \"%s\")", k->name, names, val);
		return -1;
	}
	}
	if (v < k->min || v > k->max) {
		snprintf(err, errlen, "%s%s: must be between %ld and %ld (got \"%s\")", k->name,
		         origin, k->min, k->max, val);
		return -1;
	}
	if (k->type == BW_CONF_INT)
		*(int *)field = (int)v;
	else
		*(long *)field = v;
	return 0;
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
load_file(struct bw_config *cfg, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	char line[4096];
	int lineno = 0;
	int rc = -1;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", file, lineno);
			goto fail;
		}
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: expected \"key = value\"", file, lineno);
			goto fail;
		}
		*eq = '\0';
		char *key = trim(s);
		char *val = trim(eq + 1);
		size_t vlen = strlen(val);
		if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
			val[vlen - 1] = '\0';
			val++;
		}
		const struct bw_config_key *k = find_key(key, strlen(key));
		if (k == NULL) {
			snprintf(err, errlen, "%s:%d: unknown key \"%s\"", file, lineno, key);
			goto fail;
		}
		char origin[64];
		snprintf(origin, sizeof(origin), " (%s:%d)", file, lineno);
		if (set_value(cfg, k, val, origin, err, errlen) < 0)
			goto fail;
	}
	rc = 0;
fail:
	fclose(f);
	return rc;
}

static int
load_env(struct bw_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		const struct bw_config_key *k = &bw_config_keys[i];
		char name[64] = "BULWARK_";
		size_t j = strlen(name);
		for (const char *p = k->name; *p && j < sizeof(name) - 1; p++)
			name[j++] = (char)toupper((unsigned char)*p);
		name[j] = '\0';
		const char *val = getenv(name);
		if (val == NULL)
			continue;
		char origin[80];
		snprintf(origin, sizeof(origin), " (from %s)", name);
		if (set_value(cfg, k, val, origin, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int
default_empty(char **field, const char *value)
{
	if ((*field)[0] != '\0')
		return 0;
	char *copy = strdup(value);
	if (copy == NULL)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

static int
check(struct bw_config *cfg, char *err, size_t errlen)
{
	if (cfg->listen[0] == '\0') {
		snprintf(err, errlen, "listen: must not be empty");
		return -1;
	}
	if (cfg->listen[0] == '/' && strlen(cfg->listen) >= 108) {
		snprintf(err, errlen, "listen: unix socket path longer than 107 bytes");
		return -1;
	}
	if (strlen(cfg->status_listen) >= 108) {
		snprintf(err, errlen, "status_listen: unix socket path longer than 107 bytes");
		return -1;
	}
	if (cfg->status_listen[0] != '\0' && cfg->status_listen[0] != '/') {
		snprintf(err, errlen, "status_listen: must be an absolute unix socket path");
		return -1;
	}
	if (strcmp(cfg->status_listen, cfg->listen) == 0) {
		snprintf(err, errlen, "status_listen: must differ from listen");
		return -1;
	}
	/* w = 0 would acknowledge nothing: a 201 must mean written. */
	const char *w = cfg->mongo_write_w;
	bool members = w[0] != '\0' && strspn(w, "0123456789") == strlen(w);
	if (w[0] == '\0' || (members && (strlen(w) > 2 || strtol(w, NULL, 10) < 1))) {
		snprintf(err, errlen,
		         "mongo_write_w: must be majority, a number of members (1 to 99) or a tag "
		         "set name (got \"%s\")",
		         w);
		return -1;
	}
	/* Keys whose empty value means "the same as another". */
	if (default_empty(&cfg->postgres_owner, cfg->postgres) < 0 ||
	    default_empty(&cfg->schema_dir, BW_SCHEMA_DIR) < 0 ||
	    default_empty(&cfg->redis_cache, cfg->redis) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
bw_config_load(struct bw_config *cfg, const char *file, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < bw_config_nkeys; i++)
		if (set_value(cfg, &bw_config_keys[i], bw_config_keys[i].def, " (default)", err,
		              errlen) < 0)
			goto fail;
	if (file != NULL && load_file(cfg, file, err, errlen) < 0)
		goto fail;
	if (load_env(cfg, err, errlen) < 0)
		goto fail;
	if (check(cfg, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	bw_config_free(cfg);
	return -1;
}

void
bw_config_free(struct bw_config *cfg)
{
	for (size_t i = 0; i < bw_config_nkeys; i++)
		if (bw_config_keys[i].type == BW_CONF_STRING) {
			char **p = (char **)((char *)cfg + bw_config_keys[i].offset);
			free(*p);
			*p = NULL;
		}
}

/* The daemon's configuration: one struct filled from the key table in
 * config.c (file, then BULWARK_<KEY> environment overrides). */
#ifndef BW_CONFIG_H
#define BW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum bw_log_level { BW_LOG_DEBUG, BW_LOG_INFO, BW_LOG_WARN, BW_LOG_ERROR };

struct bw_config {
	char *listen;
	int listen_backlog;
	char *status_listen;
	int workers;
	long max_requests;
	int max_requests_jitter_pct;
	int request_timeout_ms;
	int request_timeout_grace_ms;
	int drain_timeout_ms;
	int reload_timeout_ms;
	int reload_surge;
	int fcgi_keeper_timeout_ms;
	int fcgi_close_timeout_ms;
	char *postgres;
	char *postgres_owner;
	char *schema_dir;
	int migrate_lock_timeout_ms;
	char *redis;
	char *redis_cache;
	char *mongo;
	char *mongo_write_w;
	bool mongo_write_journal;
	int mongo_wtimeout_ms;
	int telemetry_max_past_s;
	int telemetry_max_future_s;
	int telemetry_retention_days;
	int telemetry_latest_ttl_s;
	char *telemetry_write_mode;
	int connect_timeout_ms;
	int pg_statement_timeout_ms;
	int redis_timeout_ms;
	int mongo_timeout_ms;
	int ping_timeout_ms;
	int breaker_threshold;
	int breaker_cooldown_ms;
	int cache_ttl_s;
	char *ratelimit_on_redis_error;
	int ratelimit_hosts;
	int auth_fail_rate;
	int auth_fail_burst;
	int key_cache_ttl_s;
	int negative_cache_ttl_ms;
	int revoked_ttl_s;
	long body_limit;
	int log_level;
	char *log_file;
	bool access_log;
	bool test_fail_worker_start; /* test builds only: new workers exit before ready */
	bool test_hang_on_stop;      /* test builds only: a stopping worker never exits */
};

/* One row of the key table: exposed so tests and the README check can walk it. */
enum bw_config_type {
	BW_CONF_STRING,
	BW_CONF_INT,
	BW_CONF_LONG,
	BW_CONF_SIZE,
	BW_CONF_BOOL,
	BW_CONF_LOGLEVEL
};

struct bw_config_key {
	const char *name;
	enum bw_config_type type;
	size_t offset;
	const char *def;
	long min, max;
	const char *help;
};

extern const struct bw_config_key bw_config_keys[];
extern const size_t bw_config_nkeys;

/* Loads defaults, then FILE (may be NULL), then the environment. On error
 * returns -1 and writes one line "KEY: why" (or "FILE:LINE: why") to err. */
int bw_config_load(struct bw_config *cfg, const char *file, char *err, size_t errlen);
void bw_config_free(struct bw_config *cfg);
const char *bw_log_level_name(int level);

#endif

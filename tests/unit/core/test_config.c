#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit.h"
#include "core/config.h"

static char path[64];

static const char *
write_file(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/bw-config-test-%d.conf", (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int
teardown(void **state)
{
	unlink(path);
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		char name[64] = "BULWARK_";
		size_t j = strlen(name);
		for (const char *p = bw_config_keys[i].name; *p; p++)
			name[j++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		name[j] = '\0';
		unsetenv(name);
	}
	return 0;
}

static void
test_defaults_are_valid(void **state)
{
	struct bw_config c;
	char err[256];
	assert_int_equal(bw_config_load(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.listen_backlog, 511);
	assert_int_equal(c.body_limit, 1024 * 1024);
	assert_true(c.access_log);
	assert_int_equal(c.ratelimit_on_redis_error, BW_REDIS_FALLBACK_LOCAL);
	assert_int_equal(c.telemetry_write_mode, BW_TELEMETRY_INSERT);
	/* redis_cache defaults to redis */
	assert_string_equal(c.redis_cache, c.redis);
	bw_config_free(&c);
}

static void
test_file_then_env(void **state)
{
	struct bw_config c;
	char err[256];
	const char *f =
	    write_file("# comment\n\nworkers = 7\nbody_limit = 64k\n"
	               "log_level = debug\naccess_log = off\nmongo = \"mongodb://x/y\"\n");
	setenv("BULWARK_WORKERS", "9", 1);
	assert_int_equal(bw_config_load(&c, f, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 9); /* the environment wins */
	assert_int_equal(c.body_limit, 64 * 1024);
	assert_int_equal(c.log_level, BW_LOG_DEBUG);
	assert_false(c.access_log);
	assert_string_equal(c.mongo, "mongodb://x/y");
	bw_config_free(&c);
}

struct bad_case {
	const char *file; /* NULL: use env */
	const char *env_key, *env_val;
	const char *expect; /* substring of the error */
};

static void
test_bad_values_name_the_key(void **state)
{
	static const struct bad_case cases[] = {
	    {"workers = 0\n", NULL, NULL, "workers"},
	    {"workers = 257\n", NULL, NULL, "between 1 and 256"},
	    {"workers = four\n", NULL, NULL, "workers"},
	    {"workers = 4x\n", NULL, NULL, "must be an integer"},
	    {"body_limit = 10q\n", NULL, NULL, "body_limit"},
	    {"body_limit = 1g\n", NULL, NULL, "body_limit"},
	    {"access_log = maybe\n", NULL, NULL, "access_log"},
	    {"log_level = loud\n", NULL, NULL, "log_level"},
	    {"no_such_key = 1\n", NULL, NULL, "unknown key \"no_such_key\""},
	    {"workers\n", NULL, NULL, "expected \"key = value\""},
	    {"listen = \n", NULL, NULL, "listen"},
	    {"status_listen = relative.sock\n", NULL, NULL, "status_listen"},
	    {NULL, "BULWARK_REQUEST_TIMEOUT_MS", "5",
	     "request_timeout_ms (from BULWARK_REQUEST_TIMEOUT_MS)"},
	    {NULL, "BULWARK_MAX_REQUESTS", "-1", "max_requests"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_config c;
		char err[256] = "";
		const char *f = cases[i].file ? write_file(cases[i].file) : NULL;
		if (cases[i].env_key)
			setenv(cases[i].env_key, cases[i].env_val, 1);
		int rc = bw_config_load(&c, f, err, sizeof(err));
		if (cases[i].env_key)
			unsetenv(cases[i].env_key);
		if (rc != -1 || strstr(err, cases[i].expect) == NULL)
			fail_msg("case %zu: rc=%d err=\"%s\", want \"%s\"", i, rc, err,
			         cases[i].expect);
		assert_null(strchr(err, '\n')); /* one line */
	}
}

/* Enum keys become their enum at load; a value outside the names is refused
 * with the list of names, in one line. */
static void
test_enum_keys(void **state)
{
	struct bw_config c;
	char err[256];
	const char *f = write_file("ratelimit_on_redis_error = closed\n"
	                           "telemetry_write_mode = upsert\n");

	assert_int_equal(bw_config_load(&c, f, err, sizeof(err)), 0);
	assert_int_equal(c.ratelimit_on_redis_error, BW_REDIS_FALLBACK_CLOSED);
	assert_int_equal(c.telemetry_write_mode, BW_TELEMETRY_UPSERT);
	bw_config_free(&c);
	setenv("BULWARK_RATELIMIT_ON_REDIS_ERROR", "open", 1);
	assert_int_equal(bw_config_load(&c, f, err, sizeof(err)), 0);
	assert_int_equal(c.ratelimit_on_redis_error, BW_REDIS_FALLBACK_OPEN);
	bw_config_free(&c);

	setenv("BULWARK_RATELIMIT_ON_REDIS_ERROR", "sometimes", 1);
	assert_int_equal(bw_config_load(&c, NULL, err, sizeof(err)), -1);
	assert_string_equal(
	    err, "ratelimit_on_redis_error: must be local, open or closed (got \"sometimes\")");
	unsetenv("BULWARK_RATELIMIT_ON_REDIS_ERROR");
	f = write_file("telemetry_write_mode = Insert\n");
	assert_int_equal(bw_config_load(&c, f, err, sizeof(err)), -1);
	assert_string_equal(err, "telemetry_write_mode: must be upsert or insert (got \"Insert\")");
}

static void
test_missing_file(void **state)
{
	struct bw_config c;
	char err[256];
	assert_int_equal(bw_config_load(&c, "/nonexistent/bulwark.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/bulwark.conf"));
}

static void
test_table_is_consistent(void **state)
{
	/* Every default must load on its own, and names must be unique. */
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		assert_non_null(bw_config_keys[i].help);
		assert_true((bw_config_keys[i].type == BW_CONF_ENUM) ==
		            (bw_config_keys[i].names != NULL));
		for (size_t j = i + 1; j < bw_config_nkeys; j++)
			assert_string_not_equal(bw_config_keys[i].name, bw_config_keys[j].name);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_defaults_are_valid, teardown),
	    cmocka_unit_test_teardown(test_file_then_env, teardown),
	    cmocka_unit_test_teardown(test_bad_values_name_the_key, teardown),
	    cmocka_unit_test_teardown(test_enum_keys, teardown),
	    cmocka_unit_test_teardown(test_missing_file, teardown),
	    cmocka_unit_test_teardown(test_table_is_consistent, teardown),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

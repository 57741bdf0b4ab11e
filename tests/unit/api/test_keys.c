/* The pure parts of the keys module: Redis key names, the scope list and
 * its validation, emission intervals. */
#include <string.h>

#include "../unit.h"
#include "api/keys.h"
#include "core/arena.h"

static void
test_redis_key_names(void **state)
{
	struct bw_arena *a = bw_arena_new(4096);

	/* The names workers/lua/bulwark.lua documents. */
	assert_string_equal(bw_keys_record(a, "abcdefgh1234"), "bwk:{abcdefgh1234}");
	assert_string_equal(bw_keys_negative(a, "abcdefgh1234"), "bwneg:{abcdefgh1234}");
	assert_string_equal(bw_keys_bucket(a, "abcdefgh1234"), "rl:{abcdefgh1234}:k");
	assert_string_equal(bw_keys_ip_bucket(a, "2001:db8::/64"), "rl:ip:2001:db8::/64");
	bw_arena_free(a);
}

static void
test_scope_list(void **state)
{
	char out[128];

	assert_int_equal(bw_nscopes, 4);
	bw_scopes_join(out, sizeof(out), ",");
	assert_string_equal(out, "ledger:read,ledger:write,telemetry:read,telemetry:write");
	bw_scopes_join(out, sizeof(out), ", ");
	assert_string_equal(out, "ledger:read, ledger:write, telemetry:read, telemetry:write");
	bw_scopes_join(out, 12, ",");
	assert_string_equal(out, "ledger:read"); /* truncated, terminated */
}

static void
test_scope_validation(void **state)
{
	static const char *const good[] = {
	    "ledger:read", "ledger:read,telemetry:write", "telemetry:read,,ledger:write", "", ",",
	};
	static const char *const bad[] = {
	    "ledger", "ledger:read,admin", "Ledger:read", "ledger:read ", " ledger:read",
	};
	char big[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!bw_scopes_valid(good[i]))
			fail_msg("refused \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (bw_scopes_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	/* 256 bytes and more: refused even when made of valid names. */
	big[0] = '\0';
	while (strlen(big) < 256)
		strcat(big, "ledger:read,");
	assert_false(bw_scopes_valid(big));
}

static void
test_interval_of_a_rate(void **state)
{
	assert_int_equal(bw_keys_interval_us("100"), 10000);
	assert_int_equal(bw_keys_interval_us("0.500"), 2000000);
	assert_int_equal(bw_keys_interval_us("3"), 333333);  /* rounded */
	assert_int_equal(bw_keys_interval_us("1000000"), 1); /* 1 µs */
	assert_int_equal(bw_keys_interval_us("1e9"), 1);     /* at least 1 µs */
	assert_int_equal(bw_keys_interval_us("0"), 1000000); /* not > 0: one second */
	assert_int_equal(bw_keys_interval_us(NULL), 1000000);
	assert_int_equal(bw_keys_interval_us("x"), 1000000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redis_key_names),
	    cmocka_unit_test(test_scope_list),
	    cmocka_unit_test(test_scope_validation),
	    cmocka_unit_test(test_interval_of_a_rate),
	};
	return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}

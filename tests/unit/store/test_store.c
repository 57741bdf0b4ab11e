/* Unit tests of workers/store/store.c: the methods table of each
 * dependency as far as it goes without a server (names, breakers after
 * init, checks refused before init, forgetting a dead worker's files). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../unit.h"

#include "core/config.h"
#include "store/store.h"

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(bw_dep_name(BW_DEP_POSTGRES), "postgres");
	assert_string_equal(bw_dep_name(BW_DEP_REDIS), "redis");
	assert_string_equal(bw_dep_name(BW_DEP_REDIS_CACHE), "redis_cache");
	assert_string_equal(bw_dep_name(BW_DEP_MONGO), "mongo");
	assert_string_equal(bw_dep_name(BW_DEP_COUNT), "unknown");
	assert_string_equal(bw_dep_name((enum bw_dep) - 1), "unknown");
}

static void
test_check_before_init(void **state)
{
	struct bw_dep_status st;

	(void)state;
	for (int d = 0; d < BW_DEP_COUNT; d++) {
		bw_store_check((enum bw_dep)d, &st);
		assert_false(st.up);
		assert_string_equal(st.error, "store not initialised");
		assert_int_equal(st.latency_us, -1);
		assert_int_equal(st.breaker, BW_BREAKER_CLOSED);
	}
}

static void
test_init_closes_every_breaker(void **state)
{
	struct bw_config cfg;
	struct bw_dep_status st;
	char err[256];

	(void)state;
	assert_int_equal(bw_config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_int_equal(bw_store_init(&cfg), 0);
	for (int d = 0; d < BW_DEP_COUNT; d++)
		assert_int_equal(bw_store_breaker((enum bw_dep)d), BW_BREAKER_CLOSED);
	assert_int_equal(bw_store_breaker(BW_DEP_COUNT), BW_BREAKER_CLOSED);
	bw_store_check(BW_DEP_COUNT, &st);
	assert_false(st.up);
	assert_string_equal(st.error, "unknown dependency");
	assert_int_equal(st.latency_us, -1);
	/* Nothing was opened: close has nothing to do but must not fail. */
	bw_store_close();
	bw_store_check(BW_DEP_POSTGRES, &st);
	assert_string_equal(st.error, "store not initialised");
	bw_config_free(&cfg);
}

static void
test_forget_child_removes_mongoc_counters(void **state)
{
	char name[32];
	int fd;

	(void)state;
	/* This process's own pid: no other process on the machine has it. */
	snprintf(name, sizeof(name), "/mongoc-%d", (int)getpid());
	fd = shm_open(name, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	bw_store_forget_child(getpid());
	errno = 0;
	fd = shm_open(name, O_RDONLY, 0);
	if (fd >= 0) {
		close(fd);
		shm_unlink(name);
	}
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENOENT);
	/* Nothing to forget is fine too. */
	bw_store_forget_child(getpid());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_check_before_init),
	    cmocka_unit_test(test_init_closes_every_breaker),
	    cmocka_unit_test(test_forget_child_removes_mongoc_counters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The bindings of core/phase.h: unbound they do nothing, bound they reach
 * what the worker loop gave them. */
#include <string.h>

#include "../unit.h"
#include "core/phase.h"

static const char *begun;

static void
on_begin(const char *route)
{
	begun = route;
}

static void
test_unbound_is_a_no_op(void **state)
{
	bw_phase_set("redis");
	bw_phase_begin("GET /healthz");
	assert_false(bw_phase_crash_looping());
}

static void
test_bound_reaches_the_target(void **state)
{
	char phase[8];
	volatile uint8_t flag = 0;

	bw_phase_bind(phase, sizeof(phase));
	bw_phase_set("postgres-too-long");
	assert_string_equal(phase, "postgre"); /* bounded and terminated */
	bw_phase_bind_begin(on_begin);
	bw_phase_begin("GET /v1/whoami");
	assert_string_equal(begun, "GET /v1/whoami");
	bw_phase_bind_crash_flag(&flag);
	assert_false(bw_phase_crash_looping());
	flag = 1;
	assert_true(bw_phase_crash_looping());
	bw_phase_bind(NULL, 0);
	bw_phase_bind_begin(NULL);
	bw_phase_bind_crash_flag(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unbound_is_a_no_op),
	    cmocka_unit_test(test_bound_reaches_the_target),
	};
	return cmocka_run_group_tests_name("phase", tests, NULL, NULL);
}

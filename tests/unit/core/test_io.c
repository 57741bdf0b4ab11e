/* bw_write_all: everything written, or a bounded wait that gives up. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit.h"
#include "core/io.h"

static void
test_writes_everything(void **state)
{
	int p[2];
	char big[200000], back[sizeof(big)];
	size_t got = 0;

	assert_int_equal(pipe(p), 0);
	memset(big, 'x', sizeof(big));
	if (fork() == 0) {
		/* Larger than the pipe: the writer must go round its loop. */
		close(p[0]);
		_exit(bw_write_all(p[1], big, sizeof(big), 1000) == 0 ? 0 : 1);
	}
	close(p[1]);
	for (ssize_t n; (n = read(p[0], back + got, sizeof(back) - got)) > 0;)
		got += (size_t)n;
	close(p[0]);
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(back, big, sizeof(big));
	int status;
	wait(&status);
	assert_int_equal(status, 0);
}

static void
test_bounded_wait_gives_up(void **state)
{
	int p[2];
	char chunk[4096];

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	memset(chunk, 'y', sizeof(chunk));
	while (write(p[1], chunk, sizeof(chunk)) > 0)
		; /* fill the pipe; nobody reads */
	fcntl(p[1], F_SETFL, 0);
	assert_int_equal(bw_write_all(p[1], "z", 1, 20), -1);
	close(p[0]);
	close(p[1]);
}

static void
test_gone_reader_is_an_error(void **state)
{
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(bw_write_all(p[1], "z", 1, -1), -1);
	assert_int_equal(bw_write_all(p[1], "", 0, -1), 0);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writes_everything),
	    cmocka_unit_test(test_bounded_wait_gives_up),
	    cmocka_unit_test(test_gone_reader_is_an_error),
	};
	return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}

/* Signals on both sides of the fork: what each means to the master, the
 * self-pipe, the reset in the child, and the worker's stop. The cases run
 * in order in one process, master side first, as a worker would see them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "../unit.h"
#include "pool/signals.h"

static void
test_master_meaning_of_each_signal(void **state)
{
	assert_int_equal(bw_signal_action(SIGTERM, false), BW_SIG_STOP);
	assert_int_equal(bw_signal_action(SIGQUIT, false), BW_SIG_STOP);
	/* A second SIGTERM during a stop stops fast. */
	assert_int_equal(bw_signal_action(SIGTERM, true), BW_SIG_FAST_STOP);
	assert_int_equal(bw_signal_action(SIGQUIT, true), BW_SIG_FAST_STOP);
	assert_int_equal(bw_signal_action(SIGINT, false), BW_SIG_FAST_STOP);
	assert_int_equal(bw_signal_action(SIGINT, true), BW_SIG_FAST_STOP);
	assert_int_equal(bw_signal_action(SIGHUP, false), BW_SIG_RELOAD);
	assert_int_equal(bw_signal_action(SIGHUP, true), BW_SIG_NONE);
	assert_int_equal(bw_signal_action(SIGUSR1, false), BW_SIG_REOPEN);
	assert_int_equal(bw_signal_action(SIGUSR1, true), BW_SIG_REOPEN);
	assert_int_equal(bw_signal_action(SIGCHLD, false), BW_SIG_NONE);
	assert_int_equal(bw_signal_action(SIGPIPE, false), BW_SIG_NONE);
}

static void
test_master_self_pipe(void **state)
{
	unsigned char buf[8];

	assert_int_equal(bw_signals_init_main(), 0);
	assert_true(bw_signals_fd() >= 0);
	assert_int_equal(bw_signals_read(buf, sizeof(buf)), 0); /* nothing yet, no block */
	errno = 1234;
	raise(SIGHUP);
	raise(SIGUSR1);
	raise(SIGCHLD);
	assert_int_equal(errno, 1234); /* the handler keeps errno */
	assert_int_equal(bw_signals_read(buf, sizeof(buf)), 3);
	assert_int_equal(buf[0], SIGHUP);
	assert_int_equal(buf[1], SIGUSR1);
	assert_int_equal(buf[2], SIGCHLD);
	assert_int_equal(bw_signals_read(buf, sizeof(buf)), 0);
	assert_true(fcntl(bw_signals_fd(), F_GETFD) & FD_CLOEXEC);
	/* SIGPIPE is ignored: a write to a gone peer is an error, not a death. */
	raise(SIGPIPE);
}

static void
test_child_drops_the_master_handlers(void **state)
{
	int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};
	sigset_t old, now;

	bw_signals_block(&old);
	sigprocmask(SIG_SETMASK, NULL, &now);
	assert_true(sigismember(&now, SIGTERM));
	bw_signals_init_child();
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa;
		sigaction(sigs[i], NULL, &sa);
		assert_ptr_equal(sa.sa_handler, SIG_DFL);
	}
	assert_int_equal(bw_signals_fd(), -1);
	bw_signals_unblock(&old);
	sigprocmask(SIG_SETMASK, NULL, &now);
	assert_false(sigismember(&now, SIGTERM));
}

static void
test_worker_stop_and_reopen(void **state)
{
	struct pollfd p;
	sigset_t old;

	bw_signals_init_worker();
	int wake = bw_signals_wake_fd();
	assert_true(wake >= 0);
	assert_int_equal(bw_signals_wake_fd(), wake);

	raise(SIGUSR1);
	assert_true(bw_signals_take_reopen());
	assert_false(bw_signals_take_reopen());
	raise(SIGHUP); /* ignored by a worker */
	assert_false(bw_signals_stopping());

	/* Held (while libfcgi accepts): nothing arrives until the release. */
	bw_signals_hold(&old);
	raise(SIGUSR1);
	raise(SIGTERM);
	assert_false(bw_signals_take_reopen());
	assert_false(bw_signals_stopping());
	p = (struct pollfd){.fd = wake, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	bw_signals_release(&old);
	assert_true(bw_signals_take_reopen());
	assert_true(bw_signals_stopping());
	assert_int_equal(poll(&p, 1, 0), 1); /* the idle wait wakes */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_master_meaning_of_each_signal),
	    cmocka_unit_test(test_master_self_pipe),
	    cmocka_unit_test(test_child_drops_the_master_handlers),
	    cmocka_unit_test(test_worker_stop_and_reopen),
	};
	return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}

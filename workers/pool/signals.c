/* Signal handling for the master and its workers: one self-pipe, one list
 * of the master's signals, handlers that save errno and do no more than a
 * write(2). See signals.h for the life of a signal on each side. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "pool/signals.h"

/* The signals the master handles; the child resets exactly these. */
static const int master_signals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};

static int sig_pipe[2] = {-1, -1};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reopen_requested;

enum bw_sig_action
bw_signal_action(int sig, bool stopping)
{
	switch (sig) {
	case SIGTERM:
	case SIGQUIT:
		return stopping ? BW_SIG_FAST_STOP : BW_SIG_STOP;
	case SIGINT:
		return BW_SIG_FAST_STOP;
	case SIGHUP:
		return stopping ? BW_SIG_NONE : BW_SIG_RELOAD;
	case SIGUSR1:
		return BW_SIG_REOPEN;
	default:
		return BW_SIG_NONE;
	}
}

static void
on_master_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* pipe full: the loop is already awake */
	}
	errno = saved;
}

static int
set_handlers(void (*handler)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = flags;
	sa.sa_handler = handler;
	for (size_t i = 0; i < sizeof(master_signals) / sizeof(master_signals[0]); i++)
		if (sigaction(master_signals[i], &sa, NULL) < 0)
			return -1;
	return 0;
}

static void
set_handler(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = handler;
	sigaction(sig, &sa, NULL);
}

int
bw_signals_init_main(void)
{
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	if (set_handlers(on_master_signal, SA_RESTART) < 0)
		return -1;
	set_handler(SIGPIPE, SIG_IGN);
	return 0;
}

int
bw_signals_fd(void)
{
	return sig_pipe[0];
}

int
bw_signals_read(unsigned char *buf, int len)
{
	ssize_t n = read(sig_pipe[0], buf, (size_t)len);
	return n > 0 ? (int)n : 0;
}

void
bw_signals_block(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, old);
}

void
bw_signals_unblock(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

void
bw_signals_init_child(void)
{
	set_handlers(SIG_DFL, 0);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;
}

static void
on_worker_stop(int sig)
{
	int saved = errno;

	stop_requested = 1;
	if (sig_pipe[1] >= 0)
		(void)!write(sig_pipe[1], "", 1);
	errno = saved;
}

static void
on_worker_usr1(int sig)
{
	reopen_requested = 1;
}

void
bw_signals_init_worker(void)
{
	sigset_t none;

	set_handler(SIGTERM, on_worker_stop);
	set_handler(SIGQUIT, on_worker_stop);
	set_handler(SIGINT, on_worker_stop);
	set_handler(SIGUSR1, on_worker_usr1);
	set_handler(SIGPIPE, SIG_IGN);
	set_handler(SIGHUP, SIG_IGN);
	set_handler(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void
bw_signals_hold(sigset_t *old)
{
	sigset_t held;

	sigemptyset(&held);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGQUIT);
	sigaddset(&held, SIGINT);
	sigaddset(&held, SIGUSR1);
	sigprocmask(SIG_BLOCK, &held, old);
}

void
bw_signals_release(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

int
bw_signals_wake_fd(void)
{
	if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	return sig_pipe[0];
}

bool
bw_signals_stopping(void)
{
	return stop_requested;
}

bool
bw_signals_take_reopen(void)
{
	if (!reopen_requested)
		return false;
	reopen_requested = 0;
	return true;
}

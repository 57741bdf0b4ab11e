/* Signals on both sides of the fork, in one place (php-fpm's fpm_signals.c).
 *
 * The master: each signal of one list (stop, reload, log reopen, child
 * exit) writes its number as one byte into a non-blocking self-pipe, which
 * the master loop polls; nothing else runs in the handler.
 *
 * Around fork: the master blocks every signal, and the child drops the
 * master's handlers and closes the pipe before anything can be delivered.
 *
 * The worker: after libfcgi has installed its own handlers, a stop sets a
 * flag and wakes the idle wait through the same self-pipe; SIGUSR1 only
 * sets a flag, read between requests. Both are held while libfcgi accepts
 * (bw_signals_hold): a signal there breaks its wait for the request's first
 * bytes, and it drops the connection. */
#ifndef BW_SIGNALS_H
#define BW_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

/* What a signal asks of the master. */
enum bw_sig_action {
	BW_SIG_NONE,      /* SIGCHLD: children are reaped every tick anyway */
	BW_SIG_STOP,      /* drain the workers, then exit */
	BW_SIG_FAST_STOP, /* kill the workers, then exit */
	BW_SIG_RELOAD,    /* roll a new generation in */
	BW_SIG_REOPEN     /* reopen the log file, and tell the workers to */
};

/* The master's meaning of signal sig; stopping: a stop is already under
 * way (a second SIGTERM then stops fast, and SIGHUP is ignored). */
enum bw_sig_action bw_signal_action(int sig, bool stopping);

/* Master: creates the self-pipe and installs the handlers; SIGPIPE is
 * ignored. 0, or -1 with errno set. */
int bw_signals_init_main(void);
/* The read end of the self-pipe, for poll(). */
int bw_signals_fd(void);
/* Reads pending signal numbers into buf without blocking: the count, 0
 * when none is pending. */
int bw_signals_read(unsigned char *buf, int len);

/* Master, around fork(): every signal blocked, the old mask kept in old. */
void bw_signals_block(sigset_t *old);
void bw_signals_unblock(const sigset_t *old);
/* Child, right after fork() (signals still blocked): the master's handlers
 * back to their defaults, the self-pipe closed. */
void bw_signals_init_child(void);

/* Worker, after FCGX_Init: installs the stop and reopen handlers and
 * unblocks every signal. */
void bw_signals_init_worker(void);
/* Worker: the stop and reopen signals wait (old keeps the mask) until
 * bw_signals_release, which delivers what arrived meanwhile. */
void bw_signals_hold(sigset_t *old);
void bw_signals_release(const sigset_t *old);
/* Worker: the self-pipe a stop writes to, created on first use, for the
 * idle wait. Its read end, or -1. */
int bw_signals_wake_fd(void);
/* Worker: a stop was asked for. */
bool bw_signals_stopping(void);
/* Worker: true once after each SIGUSR1. */
bool bw_signals_take_reopen(void);

#endif

/* The worker loop. libfcgi rules (DESIGN "Processes"): its poll timeouts are
 * set low before FCGX_Init; our handlers replace its signal handlers after
 * FCGX_Init, with SA_RESTART; a stop swaps a dead socket over the listen fd
 * so an idle accept() returns at once (php-fpm's trick); stdin is always
 * drained; a queued request whose client hung up is skipped. An idle worker
 * waits in epoll with EPOLLEXCLUSIVE before it accepts: the kernel then
 * hands a connection to the idle worker that started first, not to the one
 * idle longest, so a light load stays on a few workers with warm caches. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "http/pipeline.h"
#include "http/request.h"
#include "http/router.h"
#include "pool/scoreboard.h"
#include "pool/worker.h"
#include "store/store.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reopen_requested;
static int listen_fd_g = -1;
static int dead_fd_g = -1;
static int stop_pipe_g[2] = {-1, -1}; /* wakes the idle wait on a stop */

static void
on_stop(int sig)
{
	int saved = errno;

	stop_requested = 1;
	FCGX_ShutdownPending();
	/* accept() restarts on the swapped fd, fails with EINVAL, the loop ends. */
	if (dead_fd_g >= 0)
		dup2(dead_fd_g, listen_fd_g);
	if (stop_pipe_g[1] >= 0)
		(void)!write(stop_pipe_g[1], "", 1);
	errno = saved;
}

static void
on_usr1(int sig)
{
	reopen_requested = 1;
}

static void
reopen_if_asked(void)
{
	if (reopen_requested) {
		reopen_requested = 0;
		bw_log_reopen();
	}
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static long
recycle_after(const struct bw_config *cfg)
{
	if (cfg->max_requests == 0)
		return 0;
	long spread = cfg->max_requests * cfg->max_requests_jitter_pct / 100;
	long jitter = spread > 0 ? (random() % (2 * spread + 1)) - spread : 0;
	long n = cfg->max_requests + jitter;
	return n > 0 ? n : 1;
}

static void
publish_deps(struct bw_slot *slot)
{
	for (int d = 0; d < BW_DEP_COUNT; d++)
		slot->deps[d] = (uint8_t)bw_store_breaker((enum bw_dep)d);
}

/* The idle wait: the listen socket, exclusive, and the stop pipe. Returns
 * -1 when it cannot be set up (the worker then blocks in accept alone). */
static int
idle_wait_setup(int listen_fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = listen_fd};
	struct epoll_event sev = {.events = EPOLLIN, .data.fd = -1};

	if (ep < 0)
		return -1;
	if (pipe2(stop_pipe_g, O_CLOEXEC | O_NONBLOCK) < 0)
		goto fail;
	sev.data.fd = stop_pipe_g[0];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, stop_pipe_g[0], &sev) < 0)
		goto fail;
	return ep;
fail:
	close(ep);
	return -1;
}

/* Waits until a connection is waiting or a stop was asked for. */
static void
idle_wait(int ep)
{
	struct epoll_event ev;

	while (!stop_requested) {
		int n = epoll_wait(ep, &ev, 1, -1);
		if (n > 0 || (n < 0 && errno != EINTR))
			return; /* a connection, the stop pipe, or accept() decides */
		reopen_if_asked();
	}
}

void
bw_worker_run(const struct bw_config *cfg, int listen_fd, struct bw_scoreboard *sb, int slot_idx,
              uint32_t generation)
{
	char env[32];
	FCGX_Request fcgx;
	struct bw_arena *arena = NULL;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0); /* the master died while we were being forked */
	srandom((unsigned)(getpid() ^ bw_now_us()));
	bw_scoreboard_attach(sb, slot_idx);
	struct bw_slot *slot = bw_scoreboard_mine();

	snprintf(env, sizeof(env), "%d", cfg->fcgi_keeper_timeout_ms);
	setenv("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT", env, 1);
	snprintf(env, sizeof(env), "%d", cfg->fcgi_close_timeout_ms);
	setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", env, 1);
	if (FCGX_Init() != 0) {
		bw_error("FCGX_Init failed");
		_exit(1);
	}
	listen_fd_g = listen_fd;
	dead_fd_g = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	install_signals();
	if (bw_log_reopen() < 0)
		bw_warn("cannot reopen log file: %s", strerror(errno));
	if (FCGX_InitRequest(&fcgx, listen_fd, 0) != 0 || dead_fd_g < 0) {
		bw_error("cannot set up the FastCGI request");
		_exit(1);
	}
	if (bw_store_init(cfg) < 0) {
		bw_error("cannot set up the store adapters");
		_exit(1);
	}
#ifdef BW_TEST_ROUTES
	if (cfg->test_fail_worker_start) {
		bw_error("test_fail_worker_start is set: exiting before ready");
		exit(1);
	}
#endif
	arena = bw_arena_new(16384);
	if (arena == NULL)
		_exit(1);

	long limit = recycle_after(cfg);
	long served = 0;
	int ep = idle_wait_setup(listen_fd);
	bw_slot_set_state(slot, BW_SLOT_IDLE);
	while (!stop_requested) {
		reopen_if_asked();
		if (ep >= 0)
			idle_wait(ep);
		if (stop_requested)
			break;
		int rc = FCGX_Accept_r(&fcgx);
		if (rc < 0) {
			if (stop_requested)
				break;
			bw_error("accept on the FastCGI socket failed: %s", strerror(-rc));
			_exit(1);
		}
		fcntl(fcgx.ipcFd, F_SETFD, FD_CLOEXEC);
		/* SIGUSR1 may have arrived while idle in accept (restarted by SA_RESTART). */
		reopen_if_asked();

		struct bw_request req;
		if (bw_request_init(&req, arena, cfg, &fcgx) < 0) {
			FCGX_Finish_r(&fcgx);
			bw_arena_reset(arena);
			continue;
		}
		if (bw_request_client_gone(&req)) {
			/* nginx gave up while this sat in the queue: nobody will read it. */
			slot->counters.stale_skipped++;
			FCGX_Finish_r(&fcgx);
			bw_arena_reset(arena);
			continue;
		}
		size_t route = bw_http_serve(&req);
		bw_request_finish(&req);
		bw_slot_end(slot, route, req.status, bw_now_us() - req.start_us);
		publish_deps(slot);
		bw_arena_reset(arena);
		served++;
		if (limit > 0 && served >= limit)
			break;
		bw_slot_set_state(slot, BW_SLOT_IDLE);
	}
	bw_slot_set_state(slot, BW_SLOT_EXITING);
#ifdef BW_TEST_ROUTES
	if (cfg->test_hang_on_stop && stop_requested) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		for (;;)
			pause(); /* only SIGKILL ends this */
	}
#endif
	if (ep >= 0)
		close(ep);
	bw_arena_free(arena);
	bw_store_close();
	FCGX_Free(&fcgx, 1);
	/* Exit code tells the master why. exit(), not _exit(): LeakSanitizer
	 * checks the worker on the way out. */
	exit(limit > 0 && served >= limit ? BW_WORKER_EXIT_RECYCLED : 0);
}

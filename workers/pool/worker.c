/* The worker loop. libfcgi 2.4.2 rules (README "Processes"): its poll timeouts are
 * set low before FCGX_Init; our handlers replace its signal handlers after
 * FCGX_Init, with SA_RESTART; its accept runs with our signals held, on a
 * non-blocking listen socket (http/request.h says why); stdin is always
 * drained; a queued request whose client hung up is skipped. A worker
 * waits in epoll, for a connection or a stop, with EPOLLEXCLUSIVE: the kernel then hands a
 * connection to the idle worker that started first, not to the one idle longest, so a light load
 * stays on a few workers with warm caches. libfcgi itself is reached only through http/request.h.
 */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "http/pipeline.h"
#include "http/request.h"
#include "http/router.h"
#include "pool/scoreboard.h"
#include "pool/signals.h"
#include "pool/worker.h"
#include "store/store.h"

struct worker {
	const struct bw_config *cfg;
	struct bw_slot *slot;
	struct bw_fcgi *conn;
	struct bw_arena *arena;
	int ep;     /* the idle wait: the listen socket and the stop pipe */
	long limit; /* requests before recycling, 0 = never */
	long served;
};

static void
reopen_if_asked(void)
{
	if (bw_signals_take_reopen())
		bw_log_reopen();
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

/* The idle wait: the listen socket, exclusive, and the stop pipe. -1 when
 * it cannot be set up. */
static int
idle_wait_setup(int listen_fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = listen_fd};
	struct epoll_event sev = {.events = EPOLLIN, .data.fd = -1};

	if (ep < 0)
		return -1;
	sev.data.fd = bw_signals_wake_fd();
	if (sev.data.fd < 0)
		goto fail;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, sev.data.fd, &sev) < 0)
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

	while (!bw_signals_stopping()) {
		int n = epoll_wait(ep, &ev, 1, -1);
		if (n > 0 || (n < 0 && errno != EINTR))
			return; /* a connection, the stop pipe, or accept() decides */
		reopen_if_asked();
	}
}

/* Everything before the first accept; exits the process when a part of the
 * worker cannot be set up. */
static void
worker_init(struct worker *w, const struct bw_config *cfg, int listen_fd, struct bw_scoreboard *sb,
            int slot_idx)
{
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0); /* the master died while we were being forked */
	srandom((unsigned)(getpid() ^ bw_now_us()));
	bw_scoreboard_attach(sb, slot_idx);
	w->slot = bw_scoreboard_mine();

	if (bw_fcgi_init(cfg->fcgi_keeper_timeout_ms, cfg->fcgi_close_timeout_ms) < 0) {
		bw_error("FCGX_Init failed");
		_exit(1);
	}
	bw_signals_init_worker();
	if (bw_log_reopen() < 0)
		bw_warn("cannot reopen log file: %s", strerror(errno));
	w->conn = bw_fcgi_open(listen_fd);
	w->ep = idle_wait_setup(listen_fd);
	if (w->conn == NULL || w->ep < 0) {
		bw_error("cannot set up the FastCGI request: %s", strerror(errno));
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
	w->arena = bw_arena_new(16384);
	if (w->arena == NULL)
		_exit(1);
	w->limit = recycle_after(cfg);
}

/* Waits for one request and serves it. False when the worker should stop:
 * a stop was asked for, or it has served its share. */
static bool
serve_one(struct worker *w)
{
	sigset_t old;

	reopen_if_asked();
	idle_wait(w->ep);
	if (bw_signals_stopping())
		return false;
	/* A stop that arrives now waits until the connection is taken: the
	 * request it carries is then served before the worker goes. */
	bw_signals_hold(&old);
	int rc = bw_fcgi_accept(w->conn);
	bw_signals_release(&old);
	if (rc == -EAGAIN || rc == -EWOULDBLOCK)
		return true; /* another worker took it */
	if (rc < 0) {
		bw_error("accept on the FastCGI socket failed: %s", strerror(-rc));
		_exit(1);
	}
	reopen_if_asked();

	struct bw_request req;
	if (bw_request_init(&req, w->arena, w->cfg, w->conn) < 0) {
		bw_fcgi_skip(w->conn);
		bw_arena_reset(w->arena);
		return true;
	}
	if (bw_request_client_gone(&req)) {
		/* nginx gave up while this sat in the queue: nobody will read it. */
		w->slot->counters.stale_skipped++;
		bw_fcgi_skip(w->conn);
		bw_arena_reset(w->arena);
		return true;
	}
	size_t route = bw_http_serve(&req);
	bw_request_finish(&req);
	bw_slot_end(w->slot, route, req.status, bw_now_us() - req.start_us);
	publish_deps(w->slot);
	bw_arena_reset(w->arena);
	w->served++;
	if (w->limit > 0 && w->served >= w->limit)
		return false;
	bw_slot_set_state(w->slot, BW_SLOT_IDLE);
	return true;
}

static void __attribute__((noreturn)) teardown(struct worker *w)
{
	bw_slot_set_state(w->slot, BW_SLOT_EXITING);
#ifdef BW_TEST_ROUTES
	if (w->cfg->test_hang_on_stop && bw_signals_stopping()) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		for (;;)
			pause(); /* only SIGKILL ends this */
	}
#endif
	close(w->ep);
	bw_arena_free(w->arena);
	bw_store_close();
	bw_fcgi_close(w->conn);
	/* Exit code tells the master why. exit(), not _exit(): LeakSanitizer
	 * checks the worker on the way out. */
	exit(w->limit > 0 && w->served >= w->limit ? BW_WORKER_EXIT_RECYCLED : 0);
}

void
bw_worker_run(const struct bw_config *cfg, int listen_fd, struct bw_scoreboard *sb, int slot_idx,
              uint32_t generation)
{
	struct worker w;

	bool more = true;

	worker_init(&w, cfg, listen_fd, sb, slot_idx);
	bw_slot_set_state(w.slot, BW_SLOT_IDLE);
	while (more && !bw_signals_stopping())
		more = serve_one(&w);
	teardown(&w);
}

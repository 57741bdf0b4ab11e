/* The master loop: one poll over the signal self-pipe (signals.c) and the
 * status socket (status.c), then a tick: signals handled, children reaped
 * and checked (children.c), a reload stepped (reload.c), systemd told
 * (notify.c). The loop never sleeps longer than one tick and never blocks
 * on a child. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/router.h"
#include "pool/limiter.h"
#include "pool/master.h"
#include "pool/notify.h"
#include "pool/reload.h"
#include "pool/signals.h"

#define TICK_MS          50
#define STATUS_NOTIFY_MS 2000

static const char *
state_name(enum bw_master_state st)
{
	switch (st) {
	case BW_MASTER_RELOADING:
		return "reloading";
	case BW_MASTER_STOPPING:
		return "stopping";
	default:
		return "running";
	}
}

/* The pool as status.c and the STATUS line see it: live workers only, each
 * slot read once through bw_slot_read. */
static void
pool_stats(const void *ctx, struct bw_pool_stats *s)
{
	const struct bw_master *m = ctx;

	memset(s, 0, sizeof(*s));
	s->sum = m->retired;
	for (int i = 0; i < BW_SB_SLOTS; i++) {
		if (m->children[i].pid == 0)
			continue;
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		s->by_state[v.state]++;
		s->workers_ready += m->children[i].ready;
		s->workers_total++;
		for (int d = 0; d < BW_DEP_COUNT; d++)
			s->breaker_open[d] += v.deps[d] != BW_BREAKER_CLOSED;
		bw_counters_add(&s->sum, &m->sb->slots[i].counters);
	}
	s->state = state_name(m->state);
	s->ready = m->state != BW_MASTER_STOPPING && !m->crash_breaker &&
	           s->workers_ready >= m->cfg.workers;
	s->crash_breaker = m->crash_breaker;
	s->generation = m->generation;
	s->workers_configured = m->cfg.workers;
	s->queue_depth = bw_listen_queue_depth(&m->listener);
	s->backlog = m->listener.backlog;
	s->spawns = m->spawns;
	memcpy(s->exits, m->exits, sizeof(s->exits));
}

static bool
pool_next(const void *ctx, int *slot, struct bw_pool_process *p)
{
	const struct bw_master *m = ctx;

	for (int i = *slot; i < BW_SB_SLOTS; i++) {
		if (m->children[i].pid == 0)
			continue;
		p->slot = i;
		p->pid = m->children[i].pid;
		p->generation = m->children[i].generation;
		bw_slot_read(&m->sb->slots[i], &p->view);
		*slot = i + 1;
		return true;
	}
	*slot = BW_SB_SLOTS;
	return false;
}

static void
announce_ready(struct bw_master *m)
{
	bw_notify_ready(m->cfg.workers, m->generation);
	m->ready_notified = true;
}

/* The STATUS line systemctl shows, every STATUS_NOTIFY_MS while running. */
static void
notify_status(struct bw_master *m, int64_t now)
{
	struct bw_pool_stats s;

	if (now - m->status_notified_ms < STATUS_NOTIFY_MS || m->state != BW_MASTER_RUNNING ||
	    !m->ready_notified)
		return;
	pool_stats(m, &s);
	bw_notify_status("%d/%d workers ready, %d busy, queue %d%s", s.workers_ready,
	                 m->cfg.workers, s.by_state[BW_SLOT_BUSY], s.queue_depth,
	                 m->crash_breaker ? ", crash-looping" : "");
	m->status_notified_ms = now;
}

static void
start_stop(struct bw_master *m, bool fast)
{
	if (fast) {
		bw_info("fast stop: killing %d workers", bw_children_live(m));
		bw_children_signal(m, SIGKILL);
		m->stop_deadline_ms = bw_now_ms();
	} else {
		bw_info("stopping: draining %d workers (up to %d ms)", bw_children_live(m),
		        m->cfg.drain_timeout_ms);
		bw_children_signal(m, SIGTERM);
		m->stop_deadline_ms = bw_now_ms() + m->cfg.drain_timeout_ms;
	}
	if (m->state == BW_MASTER_RELOADING)
		bw_config_free(&m->next_cfg);
	m->state = BW_MASTER_STOPPING;
	bw_notify_stopping();
}

static void
handle_signals(struct bw_master *m)
{
	unsigned char sigs[64];
	int n;

	while ((n = bw_signals_read(sigs, sizeof(sigs))) > 0) {
		for (int k = 0; k < n; k++) {
			switch (bw_signal_action(sigs[k], m->state == BW_MASTER_STOPPING)) {
			case BW_SIG_STOP:
				start_stop(m, false);
				break;
			case BW_SIG_FAST_STOP:
				start_stop(m, true);
				break;
			case BW_SIG_RELOAD:
				bw_reload_start(m);
				break;
			case BW_SIG_REOPEN:
				if (bw_log_reopen() < 0)
					bw_error("cannot reopen log file: %s", strerror(errno));
				bw_children_signal(m, SIGUSR1);
				bw_info("log file reopened");
				break;
			case BW_SIG_NONE:
				break;
			}
		}
	}
}

/* The set-up, php-fpm's init chain: each step logs its own failure. */

static int
init_signals(struct bw_master *m)
{
	if (bw_signals_init_main() < 0) {
		bw_error("cannot install signal handlers: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
init_sockets(struct bw_master *m)
{
	char err[512];

	if (bw_listen_open(&m->listener, m->cfg.listen, m->cfg.listen_backlog, err, sizeof(err)) <
	    0) {
		bw_error("cannot listen: %s", err);
		fprintf(stderr, "bulwark: %s\n", err);
		return -1;
	}
	if (m->cfg.status_listen[0] != '\0' &&
	    bw_status_open(&m->status, m->cfg.status_listen, err, sizeof(err)) < 0) {
		bw_error("cannot listen on status_listen: %s", err);
		fprintf(stderr, "bulwark: status_listen: %s\n", err);
		return -1;
	}
	return 0;
}

static int
init_shared(struct bw_master *m)
{
	m->sb = bw_scoreboard_create();
	if (m->sb == NULL || bw_limiter_setup() < 0) {
		bw_error("cannot map the scoreboard: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
start_workers(struct bw_master *m)
{
	bw_info("bulwark %s starting %d workers on %s", PACKAGE_VERSION, m->cfg.workers,
	        m->listener.inherited ? "the socket from systemd" : m->cfg.listen);
	for (int i = 0; i < m->cfg.workers; i++) {
		m->children[i].want_gen = m->generation;
		bw_children_spawn(m, i);
	}
	bw_notify_watchdog_setup();
}

static int
master_init(struct bw_master *m, const char *config_file, struct bw_config *cfg)
{
	m->cfg = *cfg;
	m->config_file = config_file;
	m->generation = 1;
	m->last_gen = 1;
	m->listener.fd = -1;
	bw_status_init(&m->status);
	if (init_signals(m) < 0 || init_sockets(m) < 0 || init_shared(m) < 0)
		return -1;
	start_workers(m);
	return 0;
}

/* One pass after poll; false once the master should exit. */
static bool
tick(struct bw_master *m, bool status_readable)
{
	const struct bw_pool_source pool = {m, pool_stats, pool_next};
	int64_t now = bw_now_ms();

	handle_signals(m);
	bw_children_reap(m, now);
	if (m->state == BW_MASTER_STOPPING) {
		if (bw_children_live(m) == 0)
			return false;
		if (now >= m->stop_deadline_ms) {
			bw_warn("drain timeout: killing %d workers", bw_children_live(m));
			bw_children_signal(m, SIGKILL);
			m->stop_deadline_ms = now + 1000;
		}
	} else {
		bw_children_check(m, now);
		bw_children_crash_breaker(m, now);
		if (m->state == BW_MASTER_RELOADING)
			bw_reload_step(m, now);
		if (!m->ready_notified &&
		    bw_children_count(m, m->generation, true) >= m->cfg.workers)
			announce_ready(m);
	}
	bw_status_serve(&m->status, status_readable, now, &pool);
	bw_notify_watchdog(now);
	notify_status(m, now);
	return true;
}

static void
master_loop(struct bw_master *m)
{
	for (;;) {
		struct pollfd fds[1 + BW_STATUS_NFDS];
		fds[0] = (struct pollfd){.fd = bw_signals_fd(), .events = POLLIN};
		bw_status_pollfds(&m->status, &fds[1]);
		if (poll(fds, 1 + BW_STATUS_NFDS, TICK_MS) < 0 && errno != EINTR) {
			bw_error("poll: %s", strerror(errno));
			return;
		}
		if (!tick(m, (fds[1].revents & POLLIN) != 0))
			return;
	}
}

static void
master_teardown(struct bw_master *m)
{
	bool status_open = m->status.fd >= 0;

	bw_status_close(&m->status);
	if (status_open)
		unlink(m->cfg.status_listen);
	bw_listen_close(&m->listener);
	bw_scoreboard_destroy(m->sb);
	bw_config_free(&m->cfg);
}

int
bw_master_run(const char *config_file, struct bw_config *cfg)
{
	static struct bw_master master;
	struct bw_master *m = &master;
	int rc = 1;

	if (bw_nroutes >= BW_SB_ROUTES) {
		bw_error("route table larger than the scoreboard's metrics rows");
		return 1;
	}
	if (master_init(m, config_file, cfg) == 0) {
		master_loop(m);
		bw_info("stopped");
		rc = 0;
	}
	master_teardown(m);
	return rc;
}

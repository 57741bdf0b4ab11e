/* The master loop: signals arrive through a self-pipe, children are reaped
 * and respawned with per-slot backoff, deadlines are enforced from the
 * scoreboard, reloads roll one generation into the next without dropping
 * capacity, and the status socket answers even when every worker is busy.
 * The loop never sleeps longer than one tick and never blocks on a child. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/router.h"
#include "pool/limiter.h"
#include "pool/master.h"
#include "pool/worker.h"
#include "store/store.h"

#define TICK_MS             50
#define BACKOFF_MIN_MS      100
#define BACKOFF_MAX_MS      30000
#define HEALTHY_LIFETIME_MS 10000
#define CRASH_WINDOW_MS     10000
#define CRASH_TRIP          5
#define RELOAD_MAX_FAILURES 3
#define STATUS_READ_MS      1000

static int sig_pipe[2] = {-1, -1};

static void
on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* pipe full: the loop is already awake */
	}
	errno = saved;
}

static int
setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_signal;
	int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -1;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

const char *
bw_exit_reason_name(enum bw_exit_reason r)
{
	static const char *const names[] = {"stopped", "recycled", "killed", "crashed"};
	return r < BW_EXIT_NREASONS ? names[r] : "unknown";
}

static const struct bw_config *
cfg_for(struct bw_master *m, uint32_t gen)
{
	return m->state == BW_MASTER_RELOADING && gen == m->reload_gen ? &m->next_cfg : &m->cfg;
}

static void
spawn(struct bw_master *m, int i)
{
	struct bw_child *c = &m->children[i];
	struct bw_slot *s = &m->sb->slots[i];
	sigset_t all, old;

	memset(s, 0, sizeof(*s));
	s->generation = c->want_gen;
	s->state = BW_SLOT_STARTING;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: drop the master's handlers before anything can arrive. */
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};
		for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
			sigaction(sigs[k], &sa, NULL);
		close(sig_pipe[0]);
		close(sig_pipe[1]);
		if (m->status_fd >= 0)
			close(m->status_fd);
		bw_worker_run(cfg_for(m, c->want_gen), m->listener.fd, m->sb, i, c->want_gen);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		bw_error("fork failed: %s", strerror(errno));
		c->respawn_at_ms = bw_now_ms() + BACKOFF_MIN_MS;
		s->state = BW_SLOT_EMPTY;
		return;
	}
	s->pid = pid;
	c->pid = pid;
	c->generation = c->want_gen;
	c->started_ms = bw_now_ms();
	c->respawn_at_ms = 0;
	c->ready = false;
	c->retiring = false;
	c->killed = false;
	m->spawns++;
}

static int
live_workers(const struct bw_master *m)
{
	int n = 0;
	for (int i = 0; i < BW_SB_SLOTS; i++)
		n += m->children[i].pid > 0;
	return n;
}

static void
signal_all(struct bw_master *m, int sig)
{
	for (int i = 0; i < BW_SB_SLOTS; i++)
		if (m->children[i].pid > 0)
			kill(m->children[i].pid, sig);
}

static int
free_slot(const struct bw_master *m)
{
	for (int i = 0; i < BW_SB_SLOTS; i++)
		if (m->children[i].pid == 0 && m->children[i].want_gen == 0)
			return i;
	return -1;
}

static void
note_crash(struct bw_master *m, int64_t now)
{
	m->crash_times[m->crash_next] = now;
	m->crash_next =
	    (m->crash_next + 1) % (int)(sizeof(m->crash_times) / sizeof(m->crash_times[0]));
}

static void
update_crash_breaker(struct bw_master *m, int64_t now)
{
	int recent = 0;
	for (size_t k = 0; k < sizeof(m->crash_times) / sizeof(m->crash_times[0]); k++)
		recent += m->crash_times[k] > 0 && now - m->crash_times[k] < CRASH_WINDOW_MS;
	bool tripped = recent >= CRASH_TRIP;
	if (tripped != m->crash_breaker) {
		m->crash_breaker = tripped;
		m->sb->crash_breaker = tripped;
		if (tripped) {
			bw_error("crash breaker tripped: %d worker crashes in %d s; respawning "
			         "with backoff",
			         recent, CRASH_WINDOW_MS / 1000);
			sd_notify(0, "STATUS=degraded: workers are crash-looping");
		} else {
			bw_info("crash breaker reset");
		}
	}
}

static void
reap(struct bw_master *m, int64_t now)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int i;
		for (i = 0; i < BW_SB_SLOTS; i++)
			if (m->children[i].pid == pid)
				break;
		if (i == BW_SB_SLOTS)
			continue;
		struct bw_child *c = &m->children[i];
		enum bw_exit_reason why;
		bool exit0 = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (c->killed)
			why = BW_EXIT_KILLED;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
			why = BW_EXIT_RECYCLED;
		else if (exit0 && (c->retiring || m->state == BW_MASTER_STOPPING))
			why = BW_EXIT_STOPPED;
		else
			why = BW_EXIT_CRASHED;
		m->exits[why]++;
		bw_store_forget_child(pid);
		bw_counters_add(&m->retired, &m->sb->slots[i].counters);
		memset(&m->sb->slots[i], 0, sizeof(m->sb->slots[i]));

		int64_t lived = now - c->started_ms;
		if (why == BW_EXIT_CRASHED) {
			char fields[160];
			if (WIFSIGNALED(status))
				snprintf(fields, sizeof(fields),
				         "\"worker_pid\":%d,\"signal\":%d,\"lived_ms\":%lld",
				         (int)pid, WTERMSIG(status), (long long)lived);
			else
				snprintf(fields, sizeof(fields),
				         "\"worker_pid\":%d,\"exit_status\":%d,\"lived_ms\":%lld",
				         (int)pid, WEXITSTATUS(status), (long long)lived);
			bw_log_fields(BW_LOG_ERROR, fields, "worker crashed");
			note_crash(m, now);
			if (m->state == BW_MASTER_RELOADING && c->generation == m->reload_gen)
				m->reload_failures++;
		}
		c->pid = 0;
		c->ready = false;
		if (c->want_gen == 0 || c->want_gen != c->generation ||
		    m->state == BW_MASTER_STOPPING)
			continue;
		if (why == BW_EXIT_CRASHED && lived < HEALTHY_LIFETIME_MS) {
			c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
			if (c->backoff_ms > BACKOFF_MAX_MS)
				c->backoff_ms = BACKOFF_MAX_MS;
			c->respawn_at_ms = now + c->backoff_ms;
		} else {
			c->backoff_ms = 0;
			c->respawn_at_ms = now;
		}
	}
}

static void
check_children(struct bw_master *m, int64_t now)
{
	const struct bw_config *cfg = &m->cfg;
	int64_t now_us = bw_now_us();
	int64_t limit_us =
	    ((int64_t)cfg->request_timeout_ms + cfg->request_timeout_grace_ms) * 1000;

	for (int i = 0; i < BW_SB_SLOTS; i++) {
		struct bw_child *c = &m->children[i];
		if (c->pid == 0) {
			if (c->want_gen != 0 && c->respawn_at_ms != 0 && now >= c->respawn_at_ms &&
			    m->state != BW_MASTER_STOPPING)
				spawn(m, i);
			continue;
		}
		if (c->retiring && !c->killed && now >= c->retire_deadline_ms) {
			/* Stuck on the way out, or in a request past the drain time: a
			 * worker that never exits would hold a reload forever. */
			char fields[64];
			snprintf(fields, sizeof(fields), "\"worker_pid\":%d", (int)c->pid);
			bw_log_fields(
			    BW_LOG_WARN, fields,
			    "retired worker %d still running at its drain deadline: killing it",
			    (int)c->pid);
			c->killed = true;
			kill(c->pid, SIGKILL);
			continue;
		}
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		if (!c->ready && (v.state == BW_SLOT_IDLE || v.state == BW_SLOT_BUSY))
			c->ready = true;
		if (c->killed || v.state != BW_SLOT_BUSY || v.request_start_us <= 0)
			continue;
		int64_t elapsed_us = now_us - v.request_start_us;
		if (elapsed_us <= limit_us)
			continue;
		char fields[256];
		snprintf(fields, sizeof(fields),
		         "\"worker_pid\":%d,\"route\":\"%s\",\"phase\":\"%s\",\"elapsed_ms\":%lld",
		         (int)c->pid, v.route, v.phase[0] ? v.phase : "unknown",
		         (long long)(elapsed_us / 1000));
		bw_log_fields(BW_LOG_ERROR, fields,
		              "request timeout: killing worker %d (%s, phase %s, %lld ms)",
		              (int)c->pid, v.route, v.phase[0] ? v.phase : "unknown",
		              (long long)(elapsed_us / 1000));
		c->killed = true;
		kill(c->pid, SIGKILL);
	}
}

static void
notify_ready(struct bw_master *m)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving with %d workers, generation %u",
	         m->cfg.workers, m->generation);
	sd_notify(0, msg);
	m->ready_notified = true;
}

static int
count_gen(const struct bw_master *m, uint32_t gen, bool ready_only)
{
	int n = 0;
	for (int i = 0; i < BW_SB_SLOTS; i++) {
		const struct bw_child *c = &m->children[i];
		if (c->want_gen == gen && (!ready_only || (c->pid > 0 && c->ready)))
			n++;
	}
	return n;
}

static void
start_reload(struct bw_master *m)
{
	char err[512];

	if (m->state != BW_MASTER_RUNNING) {
		bw_warn("reload ignored: %s in progress",
		        m->state == BW_MASTER_RELOADING ? "a reload is" : "a stop is");
		return;
	}
	if (bw_config_load(&m->next_cfg, m->config_file, err, sizeof(err)) < 0) {
		bw_log_fields(BW_LOG_ERROR, NULL,
		              "reload rejected, keeping the running configuration: %s", err);
		sd_notify(0, "STATUS=reload rejected: bad configuration");
		return;
	}
	if (strcmp(m->next_cfg.listen, m->cfg.listen) != 0 ||
	    strcmp(m->next_cfg.status_listen, m->cfg.status_listen) != 0)
		bw_warn("reload: listen and status_listen changes need a restart; keeping the old "
		        "sockets");
	sd_notify(0, "RELOADING=1\nSTATUS=reloading");
	m->state = BW_MASTER_RELOADING;
	m->reload_gen = ++m->last_gen;
	m->reload_failures = 0;
	bw_info("reload: starting generation %u with %d workers", m->reload_gen,
	        m->next_cfg.workers);
}

/* Stops up to n workers of generation gen after their current request;
 * their slots are not refilled. */
static void
retire(struct bw_master *m, uint32_t gen, int n)
{
	for (int i = 0; i < BW_SB_SLOTS && n > 0; i++) {
		struct bw_child *c = &m->children[i];
		if (c->want_gen != gen)
			continue;
		c->want_gen = 0;
		c->respawn_at_ms = 0;
		if (c->pid > 0) {
			c->retiring = true;
			c->retire_deadline_ms = bw_now_ms() + m->cfg.drain_timeout_ms;
			kill(c->pid, SIGTERM);
		}
		n--;
	}
}

static void
finish_reload(struct bw_master *m, bool ok)
{
	if (ok) {
		bw_config_free(&m->cfg);
		m->cfg = m->next_cfg;
		memset(&m->next_cfg, 0, sizeof(m->next_cfg));
		m->generation = m->reload_gen;
		bw_log_setup(m->cfg.log_level, m->cfg.log_file);
		bw_info("reload: generation %u is serving", m->generation);
	} else {
		/* Roll back: stop the new generation, refill the old one. */
		retire(m, m->reload_gen, BW_SB_SLOTS);
		m->state = BW_MASTER_RUNNING; /* cfg_for() must now pick the old config */
		int have = count_gen(m, m->generation, false);
		for (int i = 0; have < m->cfg.workers && i < BW_SB_SLOTS; i++) {
			struct bw_child *c = &m->children[i];
			if (c->pid == 0 && c->want_gen == 0) {
				c->want_gen = m->generation;
				c->backoff_ms = 0;
				spawn(m, i);
				have++;
			}
		}
		bw_config_free(&m->next_cfg);
		bw_log_fields(
		    BW_LOG_ERROR, NULL,
		    "reload failed: generation %u did not become ready; rolled back to %u",
		    m->reload_gen, m->generation);
	}
	m->state = BW_MASTER_RUNNING;
	notify_ready(m);
}

/* The reload timeout is for each new worker to become ready from its
 * spawn. A wait for old workers to drain, which holds new spawns back
 * within N + surge, is not counted: those have their own deadline
 * (check_children), and a slow old request is no reason to roll back. */
static bool
new_worker_too_slow(const struct bw_master *m, int64_t now)
{
	for (int i = 0; i < BW_SB_SLOTS; i++) {
		const struct bw_child *c = &m->children[i];
		if (c->want_gen == m->reload_gen && c->pid > 0 && !c->ready &&
		    now - c->started_ms > m->next_cfg.reload_timeout_ms)
			return true;
	}
	return false;
}

static void
step_reload(struct bw_master *m, int64_t now)
{
	int want_new = m->next_cfg.workers;
	int surge = m->next_cfg.reload_surge;
	int ready_new = count_gen(m, m->reload_gen, true);
	int slots_new = count_gen(m, m->reload_gen, false);
	int pending_new = slots_new - ready_new;
	int old_left = count_gen(m, m->generation, false);

	if (m->reload_failures >= RELOAD_MAX_FAILURES || new_worker_too_slow(m, now)) {
		finish_reload(m, false);
		return;
	}
	/* Retire an old worker whenever the rest still cover N: each new ready
	 * worker lets one old one go, and a shrinking pool sheds the surplus. */
	while (old_left > 0 && old_left - 1 + ready_new >= want_new) {
		retire(m, m->generation, 1);
		old_left--;
	}
	/* Processes (old ones still finishing included) stay within N + surge,
	 * so store connections never exceed that either. */
	int live = live_workers(m);
	while (slots_new < want_new && pending_new < surge && live < want_new + surge) {
		int i = free_slot(m);
		if (i < 0)
			break;
		m->children[i].want_gen = m->reload_gen;
		m->children[i].backoff_ms = 0;
		spawn(m, i);
		slots_new++;
		pending_new++;
		live++;
	}
	/* Done once only the new generation is left: retired workers that are
	 * finishing a request still count as the old configuration. */
	if (old_left == 0 && ready_new >= want_new && live_workers(m) == slots_new)
		finish_reload(m, true);
}

static void
start_stop(struct bw_master *m, bool fast)
{
	if (fast) {
		bw_info("fast stop: killing %d workers", live_workers(m));
		signal_all(m, SIGKILL);
		m->stop_deadline_ms = bw_now_ms();
	} else {
		bw_info("stopping: draining %d workers (up to %d ms)", live_workers(m),
		        m->cfg.drain_timeout_ms);
		signal_all(m, SIGTERM);
		m->stop_deadline_ms = bw_now_ms() + m->cfg.drain_timeout_ms;
	}
	if (m->state == BW_MASTER_RELOADING)
		bw_config_free(&m->next_cfg);
	m->state = BW_MASTER_STOPPING;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

static void
handle_signals(struct bw_master *m)
{
	unsigned char sigs[64];
	ssize_t n;

	while ((n = read(sig_pipe[0], sigs, sizeof(sigs))) > 0) {
		for (ssize_t k = 0; k < n; k++) {
			switch (sigs[k]) {
			case SIGTERM:
			case SIGQUIT:
				start_stop(m, m->state == BW_MASTER_STOPPING);
				break;
			case SIGINT:
				start_stop(m, true);
				break;
			case SIGHUP:
				if (m->state != BW_MASTER_STOPPING)
					start_reload(m);
				break;
			case SIGUSR1:
				if (bw_log_reopen() < 0)
					bw_error("cannot reopen log file: %s", strerror(errno));
				signal_all(m, SIGUSR1);
				bw_info("log file reopened");
				break;
			default:
				break; /* SIGCHLD: reaped every tick */
			}
		}
	}
}

static void
status_client_close(struct bw_status_client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void
accept_status(struct bw_master *m, int64_t now)
{
	for (;;) {
		int fd = accept4(m->status_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct bw_status_client *slot = NULL;
		for (int k = 0; k < BW_STATUS_CLIENTS; k++) {
			struct bw_status_client *c = &m->status_clients[k];
			if (c->fd < 0) {
				slot = c;
				break;
			}
			if (slot == NULL || c->deadline_ms < slot->deadline_ms)
				slot = c;
		}
		if (slot->fd >= 0)
			status_client_close(slot); /* full: the oldest waiter goes */
		slot->fd = fd;
		slot->len = 0;
		slot->deadline_ms = now + STATUS_READ_MS;
	}
}

/* Reads what a status client sent; answers once the request line is in. */
static void
serve_status_client(struct bw_master *m, struct bw_status_client *c, int64_t now)
{
	for (;;) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			if (memchr(c->buf, '\n', c->len) != NULL || c->len == sizeof(c->buf) - 1) {
				/* Blocking writes with a bounded poll each: the answer is small. */
				fcntl(c->fd, F_SETFL, 0);
				bw_status_respond(m, c->fd, c->buf);
				status_client_close(c);
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (now > c->deadline_ms)
				status_client_close(c);
			return;
		}
		status_client_close(c); /* EOF or error before a request line */
		return;
	}
}

static void
watchdog_and_status(struct bw_master *m, int64_t now, uint64_t wd_usec, int64_t *last_wd,
                    int64_t *last_status)
{
	if (wd_usec > 0 && now - *last_wd >= (int64_t)(wd_usec / 2000)) {
		sd_notify(0, "WATCHDOG=1");
		*last_wd = now;
	}
	if (now - *last_status >= 2000 && m->state == BW_MASTER_RUNNING && m->ready_notified) {
		int busy = 0, ready = 0;
		for (int i = 0; i < BW_SB_SLOTS; i++) {
			if (m->children[i].pid == 0)
				continue;
			ready += m->children[i].ready;
			busy += m->sb->slots[i].state == BW_SLOT_BUSY;
		}
		char msg[160];
		snprintf(msg, sizeof(msg), "STATUS=%d/%d workers ready, %d busy, queue %d%s", ready,
		         m->cfg.workers, busy, bw_listen_queue_depth(&m->listener),
		         m->crash_breaker ? ", crash-looping" : "");
		sd_notify(0, msg);
		*last_status = now;
	}
}

int
bw_master_run(const char *config_file, struct bw_config *cfg)
{
	static struct bw_master master;
	struct bw_master *m = &master;
	char err[512];
	int rc = 1;

	if (bw_nroutes >= BW_SB_ROUTES) {
		bw_error("route table larger than the scoreboard's metrics rows");
		return 1;
	}
	m->cfg = *cfg;
	m->config_file = config_file;
	m->status_fd = -1;
	m->generation = 1;
	m->last_gen = 1;
	m->listener.fd = -1;
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		m->status_clients[k].fd = -1;
	if (setup_signals() < 0) {
		bw_error("cannot install signal handlers: %s", strerror(errno));
		goto out;
	}
	if (bw_listen_open(&m->listener, m->cfg.listen, m->cfg.listen_backlog, err, sizeof(err)) <
	    0) {
		bw_error("cannot listen: %s", err);
		fprintf(stderr, "bulwark: %s\n", err);
		goto out;
	}
	if (m->cfg.status_listen[0] != '\0') {
		m->status_fd = bw_listen_unix(m->cfg.status_listen, 64, 0660, err, sizeof(err));
		if (m->status_fd < 0) {
			bw_error("cannot listen on status_listen: %s", err);
			fprintf(stderr, "bulwark: status_listen: %s\n", err);
			goto out;
		}
		fcntl(m->status_fd, F_SETFL, O_NONBLOCK);
	}
	m->sb = bw_scoreboard_create();
	if (m->sb == NULL || bw_limiter_setup() < 0) {
		bw_error("cannot map the scoreboard: %s", strerror(errno));
		goto out;
	}
	bw_info("bulwark %s starting %d workers on %s%s", PACKAGE_VERSION, m->cfg.workers,
	        m->listener.inherited ? "the socket from systemd" : m->cfg.listen, "");
	for (int i = 0; i < m->cfg.workers; i++) {
		m->children[i].want_gen = m->generation;
		spawn(m, i);
	}

	uint64_t wd_usec = 0;
	if (sd_watchdog_enabled(1, &wd_usec) <= 0)
		wd_usec = 0;
	int64_t last_wd = 0, last_status = 0;
	for (;;) {
		struct pollfd fds[2 + BW_STATUS_CLIENTS] = {{.fd = sig_pipe[0], .events = POLLIN},
		                                            {.fd = m->status_fd, .events = POLLIN}};
		for (int k = 0; k < BW_STATUS_CLIENTS; k++)
			fds[2 + k] =
			    (struct pollfd){.fd = m->status_clients[k].fd, .events = POLLIN};
		if (poll(fds, 2 + BW_STATUS_CLIENTS, TICK_MS) < 0 && errno != EINTR) {
			bw_error("poll: %s", strerror(errno));
			break;
		}
		int64_t now = bw_now_ms();
		handle_signals(m);
		reap(m, now);
		if (m->state == BW_MASTER_STOPPING) {
			if (live_workers(m) == 0)
				break;
			if (now >= m->stop_deadline_ms) {
				bw_warn("drain timeout: killing %d workers", live_workers(m));
				signal_all(m, SIGKILL);
				m->stop_deadline_ms = now + 1000;
			}
		} else {
			check_children(m, now);
			update_crash_breaker(m, now);
			if (m->state == BW_MASTER_RELOADING)
				step_reload(m, now);
			if (!m->ready_notified &&
			    count_gen(m, m->generation, true) >= m->cfg.workers)
				notify_ready(m);
		}
		for (int k = 0; k < BW_STATUS_CLIENTS; k++)
			if (m->status_clients[k].fd >= 0)
				serve_status_client(m, &m->status_clients[k], now);
		if (m->status_fd >= 0 && (fds[1].revents & POLLIN))
			accept_status(m, now);
		watchdog_and_status(m, now, wd_usec, &last_wd, &last_status);
	}
	bw_info("stopped");
	rc = 0;
out:
	for (int k = 0; k < BW_STATUS_CLIENTS; k++)
		if (m->status_clients[k].fd >= 0)
			status_client_close(&m->status_clients[k]);
	if (m->status_fd >= 0) {
		close(m->status_fd);
		unlink(m->cfg.status_listen);
	}
	bw_listen_close(&m->listener);
	bw_scoreboard_destroy(m->sb);
	bw_config_free(&m->cfg);
	return rc;
}

/* The master's children: spawn into a slot, reap, respawn with per-slot
 * backoff, enforce the request and drain deadlines from the scoreboard,
 * and the crash breaker. Nothing here blocks: reaping is WNOHANG, and a
 * child that will not go is SIGKILLed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/children.h"
#include "pool/master.h"
#include "pool/notify.h"
#include "pool/reload.h"
#include "pool/signals.h"
#include "pool/worker.h"
#include "store/store.h"

#define BACKOFF_MIN_MS      100
#define BACKOFF_MAX_MS      30000
#define HEALTHY_LIFETIME_MS 10000
#define CRASH_WINDOW_MS     10000
#define CRASH_TRIP          5

const char *
bw_child_exit_name(enum bw_child_exit r)
{
	static const char *const names[] = {"stopped", "recycled", "killed", "crashed"};
	return r < BW_CHILD_NEXITS ? names[r] : "unknown";
}

enum bw_child_exit
bw_child_exit_reason(int status, bool killed, bool stop_asked)
{
	bool exit0 = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (killed)
		return BW_CHILD_KILLED;
	if (WIFEXITED(status) && WEXITSTATUS(status) == BW_WORKER_EXIT_RECYCLED)
		return BW_CHILD_RECYCLED;
	if (exit0 && stop_asked)
		return BW_CHILD_STOPPED;
	return BW_CHILD_CRASHED;
}

int64_t
bw_child_backoff(int64_t prev_ms, enum bw_child_exit why, int64_t lived_ms)
{
	if (why != BW_CHILD_CRASHED || lived_ms >= HEALTHY_LIFETIME_MS)
		return 0;
	int64_t next = prev_ms ? prev_ms * 2 : BACKOFF_MIN_MS;
	return next > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : next;
}

int
bw_crashes_recent(const int64_t *times, size_t n, int64_t now)
{
	int recent = 0;

	for (size_t k = 0; k < n; k++)
		recent += times[k] > 0 && now - times[k] < CRASH_WINDOW_MS;
	return recent;
}

void
bw_children_spawn(struct bw_master *m, int i)
{
	struct bw_child *c = &m->children[i];
	struct bw_slot *s = &m->sb->slots[i];
	sigset_t old;

	memset(s, 0, sizeof(*s));
	s->generation = c->want_gen;
	s->state = BW_SLOT_STARTING;
	bw_signals_block(&old);
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: drop the master's handlers before anything can arrive. */
		bw_signals_init_child();
		if (m->status.fd >= 0)
			close(m->status.fd);
		bw_worker_run(bw_reload_cfg_for(m, c->want_gen), m->listener.fd, m->sb, i,
		              c->want_gen);
	}
	bw_signals_unblock(&old);
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

int
bw_children_live(const struct bw_master *m)
{
	int n = 0;
	for (int i = 0; i < BW_SB_SLOTS; i++)
		n += m->children[i].pid > 0;
	return n;
}

void
bw_children_signal(const struct bw_master *m, int sig)
{
	for (int i = 0; i < BW_SB_SLOTS; i++)
		if (m->children[i].pid > 0)
			kill(m->children[i].pid, sig);
}

int
bw_children_free_slot(const struct bw_master *m)
{
	for (int i = 0; i < BW_SB_SLOTS; i++)
		if (m->children[i].pid == 0 && m->children[i].want_gen == 0)
			return i;
	return -1;
}

int
bw_children_count(const struct bw_master *m, uint32_t gen, bool ready_only)
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
note_crash(struct bw_master *m, int64_t now)
{
	m->crash_times[m->crash_next] = now;
	m->crash_next =
	    (m->crash_next + 1) % (int)(sizeof(m->crash_times) / sizeof(m->crash_times[0]));
}

void
bw_children_crash_breaker(struct bw_master *m, int64_t now)
{
	int recent = bw_crashes_recent(m->crash_times,
	                               sizeof(m->crash_times) / sizeof(m->crash_times[0]), now);
	bool tripped = recent >= CRASH_TRIP;
	if (tripped != m->crash_breaker) {
		m->crash_breaker = tripped;
		m->sb->crash_breaker = tripped;
		if (tripped) {
			bw_error("crash breaker tripped: %d worker crashes in %d s; respawning "
			         "with backoff",
			         recent, CRASH_WINDOW_MS / 1000);
			bw_notify_status("degraded: workers are crash-looping");
		} else {
			bw_info("crash breaker reset");
		}
	}
}

static void
log_crash(pid_t pid, int status, int64_t lived)
{
	struct bw_buf f;

	bw_buf_init(&f, NULL);
	bw_json_kv_int(&f, "worker_pid", pid, true);
	if (WIFSIGNALED(status))
		bw_json_kv_int(&f, "signal", WTERMSIG(status), false);
	else
		bw_json_kv_int(&f, "exit_status", WEXITSTATUS(status), false);
	bw_json_kv_int(&f, "lived_ms", lived, false);
	bw_log_fields(BW_LOG_ERROR, bw_buf_cstr(&f), "worker crashed");
	bw_buf_release(&f);
}

void
bw_children_reap(struct bw_master *m, int64_t now)
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
		enum bw_child_exit why = bw_child_exit_reason(
		    status, c->killed, c->retiring || m->state == BW_MASTER_STOPPING);
		m->exits[why]++;
		bw_store_forget_child(pid);
		bw_counters_add(&m->retired, &m->sb->slots[i].counters);
		memset(&m->sb->slots[i], 0, sizeof(m->sb->slots[i]));

		int64_t lived = now - c->started_ms;
		if (why == BW_CHILD_CRASHED) {
			log_crash(pid, status, lived);
			note_crash(m, now);
			if (m->state == BW_MASTER_RELOADING && c->generation == m->reload_gen)
				m->reload_failures++;
		}
		c->pid = 0;
		c->ready = false;
		if (c->want_gen == 0 || c->want_gen != c->generation ||
		    m->state == BW_MASTER_STOPPING)
			continue;
		c->backoff_ms = bw_child_backoff(c->backoff_ms, why, lived);
		c->respawn_at_ms = now + c->backoff_ms;
	}
}

static void
kill_at_deadline(struct bw_child *c, const struct bw_slot_view *v, int64_t elapsed_us)
{
	const char *phase = v->phase[0] ? v->phase : "unknown";
	struct bw_buf f;

	/* route and phase come from the worker's slot: escaped like any input. */
	bw_buf_init(&f, NULL);
	bw_json_kv_int(&f, "worker_pid", c->pid, true);
	bw_json_kv_str(&f, "route", v->route, false);
	bw_json_kv_str(&f, "phase", phase, false);
	bw_json_kv_int(&f, "elapsed_ms", elapsed_us / 1000, false);
	bw_log_fields(BW_LOG_ERROR, bw_buf_cstr(&f),
	              "request timeout: killing worker %d (%s, phase %s, %lld ms)", (int)c->pid,
	              v->route, phase, (long long)(elapsed_us / 1000));
	bw_buf_release(&f);
	c->killed = true;
	kill(c->pid, SIGKILL);
}

static void
kill_retired(struct bw_child *c)
{
	struct bw_buf f;

	bw_buf_init(&f, NULL);
	bw_json_kv_int(&f, "worker_pid", c->pid, true);
	bw_log_fields(BW_LOG_WARN, bw_buf_cstr(&f),
	              "retired worker %d still running at its drain deadline: killing it",
	              (int)c->pid);
	bw_buf_release(&f);
	c->killed = true;
	kill(c->pid, SIGKILL);
}

void
bw_children_check(struct bw_master *m, int64_t now)
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
				bw_children_spawn(m, i);
			continue;
		}
		if (c->retiring && !c->killed && now >= c->retire_deadline_ms) {
			/* Stuck on the way out, or in a request past the drain time: a
			 * worker that never exits would hold a reload forever. */
			kill_retired(c);
			continue;
		}
		struct bw_slot_view v;
		bw_slot_read(&m->sb->slots[i], &v);
		if (!c->ready && (v.state == BW_SLOT_IDLE || v.state == BW_SLOT_BUSY))
			c->ready = true;
		if (c->killed || v.state != BW_SLOT_BUSY || v.request_start_us <= 0)
			continue;
		int64_t elapsed_us = now_us - v.request_start_us;
		if (elapsed_us > limit_us)
			kill_at_deadline(c, &v, elapsed_us);
	}
}

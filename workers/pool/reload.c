/* The rolling reload: a state machine stepped once per master tick. The
 * new generation grows as the old one shrinks, so capacity never drops
 * below N and processes never exceed N + surge; a new worker that crashes
 * three times or is not ready within reload_timeout_ms rolls it all back. */
#include <signal.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "pool/children.h"
#include "pool/master.h"
#include "pool/notify.h"
#include "pool/reload.h"

#define RELOAD_MAX_FAILURES 3

const struct bw_config *
bw_reload_cfg_for(const struct bw_master *m, uint32_t gen)
{
	return m->state == BW_MASTER_RELOADING && gen == m->reload_gen ? &m->next_cfg : &m->cfg;
}

void
bw_reload_start(struct bw_master *m)
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
		bw_notify_status("reload rejected: bad configuration");
		return;
	}
	if (strcmp(m->next_cfg.listen, m->cfg.listen) != 0 ||
	    strcmp(m->next_cfg.status_listen, m->cfg.status_listen) != 0)
		bw_warn("reload: listen and status_listen changes need a restart; keeping the old "
		        "sockets");
	bw_notify_reloading();
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
		m->state = BW_MASTER_RUNNING; /* bw_reload_cfg_for() must now pick the old config */
		int have = bw_children_count(m, m->generation, false);
		for (int i = 0; have < m->cfg.workers && i < BW_SB_SLOTS; i++) {
			struct bw_child *c = &m->children[i];
			if (c->pid == 0 && c->want_gen == 0) {
				c->want_gen = m->generation;
				c->backoff_ms = 0;
				bw_children_spawn(m, i);
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
	bw_notify_ready(m->cfg.workers, m->generation);
	m->ready_notified = true;
}

/* The reload timeout is for each new worker to become ready from its
 * spawn. A wait for old workers to drain, which holds new spawns back
 * within N + surge, is not counted: those have their own deadline
 * (bw_children_check), and a slow old request is no reason to roll back. */
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

void
bw_reload_step(struct bw_master *m, int64_t now)
{
	int want_new = m->next_cfg.workers;
	int surge = m->next_cfg.reload_surge;
	int ready_new = bw_children_count(m, m->reload_gen, true);
	int slots_new = bw_children_count(m, m->reload_gen, false);
	int pending_new = slots_new - ready_new;
	int old_left = bw_children_count(m, m->generation, false);

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
	int live = bw_children_live(m);
	while (slots_new < want_new && pending_new < surge && live < want_new + surge) {
		int i = bw_children_free_slot(m);
		if (i < 0)
			break;
		m->children[i].want_gen = m->reload_gen;
		m->children[i].backoff_ms = 0;
		bw_children_spawn(m, i);
		slots_new++;
		pending_new++;
		live++;
	}
	/* Done once only the new generation is left: retired workers that are
	 * finishing a request still count as the old configuration. */
	if (old_left == 0 && ready_new >= want_new && bw_children_live(m) == slots_new)
		finish_reload(m, true);
}

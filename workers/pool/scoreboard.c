/* The scoreboard: made by the master, one slot written by each worker. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
#include "core/phase.h"
#include "pool/scoreboard.h"

#define SB_MAGIC 0x62776b31u /* "bwk1" */

const double bw_sb_bucket_bounds[BW_SB_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0,  0};

static struct bw_slot *mine;

struct bw_scoreboard *
bw_scoreboard_create(void)
{
	struct bw_scoreboard *sb =
	    mmap(NULL, sizeof(*sb), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sb == MAP_FAILED)
		return NULL;
	memset(sb, 0, sizeof(*sb));
	sb->magic = SB_MAGIC;
	return sb;
}

void
bw_scoreboard_destroy(struct bw_scoreboard *sb)
{
	if (sb != NULL)
		munmap(sb, sizeof(*sb));
}

static void
begin_route(const char *route)
{
	bw_slot_begin(mine, route);
}

void
bw_scoreboard_attach(struct bw_scoreboard *sb, int slot)
{
	mine = &sb->slots[slot];
	bw_phase_bind(mine->phase, sizeof(mine->phase));
	bw_phase_bind_begin(begin_route);
	bw_phase_bind_crash_flag(&sb->crash_breaker);
}

struct bw_slot *
bw_scoreboard_mine(void)
{
	return mine;
}

void
bw_slot_set_state(struct bw_slot *s, enum bw_slot_state st)
{
	if (s != NULL)
		s->state = (uint8_t)st;
}

void
bw_slot_begin(struct bw_slot *s, const char *route)
{
	if (s == NULL)
		return;
	bw_shared_strcpy(s->route, sizeof(s->route), route);
	s->phase[0] = '\0';
	s->request_start_us = bw_now_us();
	s->state = BW_SLOT_BUSY;
}

void
bw_slot_end(struct bw_slot *s, size_t route_index, int status, int64_t duration_us)
{
	if (s == NULL)
		return;
	if (route_index >= BW_SB_ROUTES)
		route_index = BW_SB_ROUTES - 1;
	int cls = status / 100 - 1;
	if (cls < 0 || cls >= BW_SB_CLASSES)
		cls = BW_SB_CLASSES - 1;
	s->counters.requests[route_index][cls]++;
	double secs = (double)duration_us / 1e6;
	int b = 0;
	while (b < BW_SB_BUCKETS - 1 && secs > bw_sb_bucket_bounds[b])
		b++;
	s->counters.duration_buckets[b]++;
	s->counters.duration_us_sum += (uint64_t)(duration_us > 0 ? duration_us : 0);
	s->requests++;
	s->request_start_us = 0;
	s->route[0] = '\0';
	s->phase[0] = '\0';
}

void
bw_slot_read(const struct bw_slot *s, struct bw_slot_view *out)
{
	memset(out, 0, sizeof(*out));
	out->pid = s->pid;
	out->generation = s->generation;
	out->state = s->state < BW_SLOT_NSTATES ? (enum bw_slot_state)s->state : BW_SLOT_EMPTY;
	for (int i = 0; i < BW_DEP_COUNT; i++)
		out->deps[i] = s->deps[i] <= BW_BREAKER_HALF_OPEN ? s->deps[i] : BW_BREAKER_CLOSED;
	out->request_start_us = s->request_start_us;
	out->requests = s->requests;
	memcpy(out->route, s->route, sizeof(out->route));
	out->route[sizeof(out->route) - 1] = '\0';
	memcpy(out->phase, s->phase, sizeof(out->phase));
	out->phase[sizeof(out->phase) - 1] = '\0';
	/* Keep only printable bytes: the strings end up in JSON and logs. */
	for (char *p = out->route; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	for (char *p = out->phase; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
}

void
bw_counters_add(struct bw_counters *acc, const struct bw_counters *c)
{
	for (int r = 0; r < BW_SB_ROUTES; r++)
		for (int k = 0; k < BW_SB_CLASSES; k++)
			acc->requests[r][k] += c->requests[r][k];
	for (int b = 0; b < BW_SB_BUCKETS; b++)
		acc->duration_buckets[b] += c->duration_buckets[b];
	acc->duration_us_sum += c->duration_us_sum;
	acc->stale_skipped += c->stale_skipped;
}

const char *
bw_slot_state_name(enum bw_slot_state st)
{
	static const char *const names[] = {"empty", "starting", "idle", "busy", "exiting"};
	return st < BW_SLOT_NSTATES ? names[st] : "unknown";
}

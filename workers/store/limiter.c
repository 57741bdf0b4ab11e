/* Open addressing over a fixed table: an entry whose TAT has passed is a
 * full bucket, the same as no entry, so it may be reused; when a probe
 * finds no room the entry closest to full is taken over, which can only
 * make a limit looser, never stricter. A robust process-shared mutex keeps
 * a worker killed mid-update from locking the others out. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
#include "store/limiter.h"

#define ENTRIES 16384 /* power of two */
#define PROBES  32

struct entry {
	uint64_t hash; /* 0 = empty */
	int64_t tat;
};

struct table {
	pthread_mutex_t lock;
	struct entry e[ENTRIES];
};

static struct table *table;

void
bw_gcra_step(int64_t *tat, int64_t now_us, int64_t interval_us, int64_t burst,
             struct bw_gcra_result *out)
{
	int64_t t = *tat > now_us ? *tat : now_us;
	int64_t new_tat = t + interval_us;
	int64_t limit = burst * interval_us;

	if (new_tat - now_us > limit) {
		*out = (struct bw_gcra_result){.allowed = false,
		                               .remaining = 0,
		                               .reset_us = t - now_us,
		                               .retry_us = new_tat - now_us - limit};
		return;
	}
	*out = (struct bw_gcra_result){.allowed = true,
	                               .remaining = (limit - (new_tat - now_us)) / interval_us,
	                               .reset_us = new_tat - now_us,
	                               .retry_us = 0};
	*tat = new_tat;
}

int
bw_limiter_setup(void)
{
	pthread_mutexattr_t attr;
	struct table *t =
	    mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (t == MAP_FAILED)
		return -1;
	memset(t, 0, sizeof(*t));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	int rc = pthread_mutex_init(&t->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc != 0) {
		munmap(t, sizeof(*t));
		return -1;
	}
	table = t;
	return 0;
}

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

static struct entry *
find(uint64_t h, int64_t now)
{
	struct entry *reuse = NULL, *fullest = NULL;

	for (unsigned i = 0; i < PROBES; i++) {
		struct entry *e = &table->e[(h + i) & (ENTRIES - 1)];
		if (e->hash == h)
			return e;
		/* tat == 0: claimed by the call in progress, not reusable yet. */
		if (reuse == NULL && (e->hash == 0 || (e->tat != 0 && e->tat <= now)))
			reuse = e;
		if (fullest == NULL || e->tat < fullest->tat)
			fullest = e;
	}
	struct entry *e = reuse != NULL ? reuse : fullest;
	e->hash = h;
	e->tat = 0;
	return e;
}

static int
lock(void)
{
	int rc = pthread_mutex_lock(&table->lock);
	if (rc == EOWNERDEAD) {
		/* The holder died mid-update: at worst one TAT is stale. */
		pthread_mutex_consistent(&table->lock);
		rc = 0;
	}
	return rc;
}

int
bw_limiter_apply(const struct bw_gcra_policy *p, int n, struct bw_gcra_result *out)
{
	struct entry *slots[8];
	int64_t tats[8];
	bool all = true;

	if (table == NULL || n > 8)
		return -1;
	if (lock() != 0)
		return -1;
	int64_t now = bw_now_us();
	for (int i = 0; i < n; i++) {
		slots[i] = find(fnv1a(p[i].bucket), now);
		tats[i] = slots[i]->tat;
		bw_gcra_step(&tats[i], now, p[i].interval_us, p[i].burst, &out[i]);
		all = all && out[i].allowed;
	}
	for (int i = 0; i < n; i++) {
		if (all) {
			slots[i]->tat = tats[i];
		} else if (out[i].allowed) {
			/* Denied elsewhere: report this policy as untouched. */
			out[i].remaining++;
			out[i].reset_us -= p[i].interval_us;
		}
	}
	pthread_mutex_unlock(&table->lock);
	return all ? 1 : 0;
}

#include <pthread.h>
#include <unistd.h>

#include "core/pid.h"

static pid_t cached;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
forget(void)
{
	cached = 0;
}

static void
install(void)
{
	pthread_atfork(NULL, NULL, forget);
}

pid_t
bw_pid(void)
{
	if (cached == 0) {
		pthread_once(&once, install);
		cached = getpid();
	}
	return cached;
}

/* sd_notify for the master, php-fpm's fpm_systemd.c: every message the
 * daemon sends to systemd is written here. */
#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "pool/notify.h"

static uint64_t watchdog_usec;
static int64_t watchdog_last_ms;

void
bw_notify_ready(int workers, uint32_t generation)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving with %d workers, generation %u",
	         workers, generation);
	sd_notify(0, msg);
}

void
bw_notify_reloading(void)
{
	sd_notify(0, "RELOADING=1\nSTATUS=reloading");
}

void
bw_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
bw_notify_status(const char *fmt, ...)
{
	char msg[160] = "STATUS=";
	size_t off = sizeof("STATUS=") - 1;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
	va_end(ap);
	sd_notify(0, msg);
}

void
bw_notify_watchdog_setup(void)
{
	if (sd_watchdog_enabled(1, &watchdog_usec) <= 0)
		watchdog_usec = 0;
}

void
bw_notify_watchdog(int64_t now_ms)
{
	if (watchdog_usec > 0 && now_ms - watchdog_last_ms >= (int64_t)(watchdog_usec / 2000)) {
		sd_notify(0, "WATCHDOG=1");
		watchdog_last_ms = now_ms;
	}
}

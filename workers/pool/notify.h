/* The master's messages to systemd (sd_notify): readiness, reload and stop,
 * a human-readable STATUS line, and the watchdog. Each is a no-op when the
 * daemon was not started with NOTIFY_SOCKET. */
#ifndef BW_NOTIFY_H
#define BW_NOTIFY_H

#include <stdint.h>

void bw_notify_ready(int workers, uint32_t generation);
void bw_notify_reloading(void);
void bw_notify_stopping(void);
/* STATUS=<text>; text is printf-formatted. */
void bw_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads the watchdog interval once (and hides it from later children). */
void bw_notify_watchdog_setup(void);
/* WATCHDOG=1 when half the interval has passed since the last one. */
void bw_notify_watchdog(int64_t now_ms);

#endif

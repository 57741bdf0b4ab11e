/* Structured logging: every line is one JSON object on the log fd
 * (stderr, or log_file reopened on SIGUSR1). Lines are written with one
 * write(2) so lines from several workers never interleave. */
#ifndef BW_LOG_H
#define BW_LOG_H

#include <stdint.h>

#include "core/config.h"

void bw_log_setup(int level, const char *file);
/* Reopens log_file (no-op for stderr); safe to call outside a signal handler. */
int bw_log_reopen(void);
int bw_log_enabled(int level);

/* msg is printf-formatted and becomes the "msg" field. */
void bw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For lines with extra fields: `fields` is a JSON fragment of the form
 * "\"k\":v,\"k2\":v2" (already escaped by the caller, may be NULL). */
void bw_log_fields(int level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define bw_debug(...) bw_log(BW_LOG_DEBUG, __VA_ARGS__)
#define bw_info(...)  bw_log(BW_LOG_INFO, __VA_ARGS__)
#define bw_warn(...)  bw_log(BW_LOG_WARN, __VA_ARGS__)
#define bw_error(...) bw_log(BW_LOG_ERROR, __VA_ARGS__)

#endif

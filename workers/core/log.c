/* Log lines are built on the stack and written with a single write(2):
 * O_APPEND makes that atomic enough for lines from several processes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/pid.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/io.h"
#include "core/log.h"

#define LINE_MAX_BYTES 4096

static int log_level = BW_LOG_INFO;
static char log_path[1024];
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *
bw_log_level_name(int level)
{
	if (level < BW_LOG_DEBUG || level > BW_LOG_ERROR)
		return "info";
	return level_names[level];
}

int
bw_log_reopen(void)
{
	if (log_path[0] == '\0')
		return 0;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	/* Keep fd 2 pointing at the log too, so library messages land there. */
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	log_fd = STDERR_FILENO;
	return 0;
}

void
bw_log_setup(int level, const char *file)
{
	log_level = level;
	if (file != NULL && file[0] != '\0') {
		snprintf(log_path, sizeof(log_path), "%s", file);
		if (bw_log_reopen() < 0)
			bw_log(BW_LOG_ERROR, "cannot open log_file %s: %s", file, strerror(errno));
	} else {
		log_path[0] = '\0';
	}
}

int
bw_log_enabled(int level)
{
	return level >= log_level;
}

static void
emit(int level, const char *fields, const char *fmt, va_list ap)
{
	char line[LINE_MAX_BYTES];
	char msg[LINE_MAX_BYTES / 2];
	char now[40];
	struct bw_buf b;
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	bw_wall_rfc3339(now, sizeof(now));
	bw_buf_init(&b, NULL);
	bw_buf_puts(&b, "{");
	bw_json_kv_str(&b, "time", now, true);
	bw_json_kv_str(&b, "level", bw_log_level_name(level), false);
	bw_json_kv_int(&b, "pid", bw_pid(), false);
	bw_json_kv_str(&b, "msg", msg, false);
	if (fields != NULL && fields[0] != '\0') {
		bw_buf_putc(&b, ',');
		bw_buf_puts(&b, fields);
	}
	bw_buf_puts(&b, "}\n");
	const char *out = bw_buf_cstr(&b);
	size_t len = b.len;
	if (b.failed) {
		snprintf(line, sizeof(line),
		         "{\"level\":\"error\",\"msg\":\"log: out of memory\"}\n");
		out = line;
		len = strlen(line);
	}
	bw_write_all(log_fd, out, len, -1);
	bw_buf_release(&b);
	errno = saved;
}

void
bw_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (!bw_log_enabled(level))
		return;
	va_start(ap, fmt);
	emit(level, NULL, fmt, ap);
	va_end(ap);
}

void
bw_log_fields(int level, const char *fields, const char *fmt, ...)
{
	va_list ap;

	if (!bw_log_enabled(level))
		return;
	va_start(ap, fmt);
	emit(level, fields, fmt, ap);
	va_end(ap);
}

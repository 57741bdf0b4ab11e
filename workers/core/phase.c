/* Where the phase, the route start and the crash flag go: bound by the
 * worker loop, called from anywhere. */
#include <string.h>

#include "core/phase.h"

static char *phase_target;
static size_t phase_len;
static bw_phase_begin_fn begin_hook;
static const volatile uint8_t *crash_flag;

void
bw_phase_bind(char *target, size_t len)
{
	phase_target = target;
	phase_len = len;
}

void
bw_phase_set(const char *phase)
{
	if (phase_target == NULL || phase_len == 0)
		return;
	bw_shared_strcpy(phase_target, phase_len, phase);
}

void
bw_phase_bind_begin(bw_phase_begin_fn fn)
{
	begin_hook = fn;
}

void
bw_phase_begin(const char *route)
{
	if (begin_hook != NULL)
		begin_hook(route);
}

void
bw_phase_bind_crash_flag(const volatile uint8_t *flag)
{
	crash_flag = flag;
}

bool
bw_phase_crash_looping(void)
{
	return crash_flag != NULL && *crash_flag;
}

void
bw_shared_strcpy(char *dst, size_t len, const char *src)
{
	/* Terminator first: a reader in another process never sees an unterminated string. */
	size_t n = strlen(src);
	if (n >= len)
		n = len - 1;
	dst[n] = '\0';
	memcpy(dst, src, n);
	dst[n] = '\0';
}

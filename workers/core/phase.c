#include <string.h>

#include "core/phase.h"

static char *phase_target;
static size_t phase_len;

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

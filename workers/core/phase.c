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
	/* Byte by byte with a terminator first: a reader never sees an unterminated string. */
	size_t n = strlen(phase);
	if (n >= phase_len)
		n = phase_len - 1;
	phase_target[n] = '\0';
	memcpy(phase_target, phase, n);
	phase_target[n] = '\0';
}

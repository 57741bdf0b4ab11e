/* The one error struct of the store calls: clearing and filling it. */
#include <stdarg.h>
#include <stdio.h>

#include "core/err.h"

void
bw_err_clear(struct bw_err *e)
{
	*e = (struct bw_err){.rc = BW_OK};
}

enum bw_rc
bw_err_set(struct bw_err *e, enum bw_rc rc, const char *fmt, ...)
{
	va_list ap;

	bw_err_clear(e);
	e->rc = rc;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return rc;
}

/* The summary report's cache (reports.c), as the routes that write see it. */
#ifndef BW_REPORTS_H
#define BW_REPORTS_H

#include "http/request.h"

/* After a COMMIT that changed what the summary shows: bumps the tenant's
 * cache generation, so a read after the response never sees an older one. */
void bw_report_invalidate(struct bw_request *req);

#endif

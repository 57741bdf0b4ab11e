/* One request from route match to access-log line (workers/README.md, "One request, in order"). */
#ifndef BW_PIPELINE_H
#define BW_PIPELINE_H

#include "http/request.h"

/* Runs the request and sends the response. Returns the route index for
 * metrics (bw_nroutes when unmatched). */
size_t bw_http_serve(struct bw_request *req);

#endif

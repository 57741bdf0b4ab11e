/* Handlers, one file per API area; routes.c wires them to paths. */
#ifndef BW_API_H
#define BW_API_H

#include "http/request.h"

void bw_api_healthz(struct bw_request *req);
void bw_api_readyz(struct bw_request *req);
void bw_api_whoami(struct bw_request *req);

#ifdef BW_TEST_ROUTES
void bw_api_test_sleep(struct bw_request *req);
void bw_api_test_echo(struct bw_request *req);
void bw_api_test_crash(struct bw_request *req);
#endif

#endif
